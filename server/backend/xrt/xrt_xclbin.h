/* xrt_xclbin: reads what the XRT backend needs to know about an xclbin before handing it to
 * XRT: its UUID, the kernels it holds, and for one kernel its compute units (IP_LAYOUT, in base
 * address order, which is XRT's CU index order) and arguments (EMBEDDED_METADATA). The backend
 * uses this to check a model's config against the bitstream and to report mismatches in the
 * model's own terms instead of XRT's exceptions.
 *
 * Reads only the header and the two metadata sections (pread), never the bitstream. Pure
 * function of the file: thread-safe. */
#ifndef HLT_XRT_XCLBIN_H
#define HLT_XRT_XCLBIN_H

#include "hltinfer/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XRT_MAX_CUS 64
#define XRT_MAX_ARGS 16
#define XRT_NAME_MAX 64

typedef struct xrt_kernel_arg {
    char name[XRT_NAME_MAX];
    bool is_buffer; /* addressQualifier 1 (global memory); else a scalar */
} xrt_kernel_arg_t;

typedef struct xrt_kernel_desc {
    uint8_t uuid[16];
    char kernels[256]; /* every kernel in the xclbin, comma-separated, for messages */
    int n_cus;
    char cus[XRT_MAX_CUS][XRT_NAME_MAX]; /* CU instance names of the kernel (no "kernel:") */
    int n_args;
    xrt_kernel_arg_t args[XRT_MAX_ARGS];
} xrt_kernel_desc_t;

/* Describes kernel `kernel` of the xclbin at path into *out (caller-owned). NOT_FOUND when the
 * file cannot be read, INVALID_ARGUMENT when it is not an xclbin or has no such kernel; err says
 * which (it names the file and, for a missing kernel, lists the kernels there are). */
hlt_status xrt_xclbin_describe(const char *path, const char *kernel, xrt_kernel_desc_t *out,
                               char *err, size_t errlen);

#endif
