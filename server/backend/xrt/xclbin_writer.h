/* xclbin_writer: writes a metadata-only xclbin (axlf container with MEM_TOPOLOGY, IP_LAYOUT,
 * CONNECTIVITY and EMBEDDED_METADATA sections, no bitstream) for one HLS-style kernel with N
 * compute units. XRT's noop shim (XCL_EMULATION_MODE=noop) accepts such a file and runs the
 * whole C API flow on it (load, kernel open per CU, buffers, runs), computing nothing; that is
 * how the XRT backend is tested without an FPGA. Used by the tests and by the
 * hltinfer-make-xclbin tool; the server itself never writes xclbins.
 *
 * Hand-written because no library writes xclbins: AMD's xclbinutil needs a full XRT install
 * (Debian's wrapper is broken), and the format is four small packed structs plus an XML blob. */
#ifndef HLT_XCLBIN_WRITER_H
#define HLT_XCLBIN_WRITER_H

#include <stddef.h>
#include <stdint.h>

#define XCLBIN_MAX_CUS 64
#define XCLBIN_MAX_ARGS 16

typedef enum xclbin_arg_kind {
    XCLBIN_ARG_BUFFER, /* global memory pointer (m_axi), 64-bit in the register map */
    XCLBIN_ARG_SCALAR, /* 32-bit scalar (s_axilite), e.g. the row count */
} xclbin_arg_kind;

typedef struct xclbin_arg {
    const char *name; /* borrowed */
    xclbin_arg_kind kind;
} xclbin_arg_t;

typedef struct xclbin_spec {
    const char *kernel_name;     /* borrowed */
    int n_cus;                   /* 1..XCLBIN_MAX_CUS */
    const char *const *cu_names; /* n_cus names (borrowed), or NULL: "<kernel>_1".. */
    int n_args;                  /* 1..XCLBIN_MAX_ARGS, in kernel argument order */
    const xclbin_arg_t *args;    /* borrowed */
    int n_banks;                 /* memory banks; CU i uses bank i % n_banks; 0 = 1 */
} xclbin_spec_t;

/* Writes the xclbin for spec to path (created or truncated). 0 on success, -1 with a message
 * in err. Thread-safe (no shared state). */
int xclbin_write(const char *path, const xclbin_spec_t *spec, char *err, size_t errlen);

/* Parses the tool's argument string "input:buffer,output:buffer,rows:scalar" (kind may be
 * "buf"/"buffer"/"scalar"/"u32") into args (names point into the writable string s, which is
 * modified). Returns the count, or -1 on a malformed string. */
int xclbin_parse_args(char *s, xclbin_arg_t *args, int max);

#endif
