/* xrt_config: the XRT backend's reading of a bitstream model's config.json: which kernel, which
 * compute units, how the kernel's arguments map to the model's tensors, the fixed-point format
 * on the bus and the ring depth. Parameters are ModelParameter string values:
 *
 *   kernel_name        kernel in the xclbin (required)
 *   compute_units      "N" (the first N CUs of the kernel), "cu_a,cu_b" or ["cu_a","cu_b"]
 *                      (those CUs); default: every CU of the kernel
 *   argument_order     kernel arguments in order: tensor names, "input"/"output" for the only
 *                      input/output, "rows" for the row count; default "input,output,rows"
 *   rows_per_run       fixed rows per kernel run; batches are split and zero-padded to it
 *   max_rows_per_run   without rows_per_run: at most this many rows per run (default: the
 *                      batch spread over the CUs, at most 16384)
 *   io_format          float32 | ap_fixed<W,I[,Q,O]> | ap_ufixed<...> | ap_int<W> | ap_uint<W>
 *                      (default float32); input_format / output_format override it per side
 *   values_per_word    values per 512-bit bus word (default 512 / W); input_values_per_word /
 *                      output_values_per_word override it per side
 *   io_layout          "row": every row starts a new bus word (default); "dense": rows follow
 *                      each other in the stream of values (FaaST's output, 32 rows a word);
 *                      input_layout / output_layout override it per side
 *   ring_slots         buffer sets per compute unit (runs in flight per CU; default 8)
 *   run_timeout_ms     longest wait for one kernel run (default 10000)
 *
 * Pure parsing: no XRT calls, thread-safe. Used by xrt_backend.c at instance creation. */
#ifndef HLT_XRT_CONFIG_H
#define HLT_XRT_CONFIG_H

#include "fixed_point.h"
#include "model_config.h"
#include "xrt_xclbin.h"

#include "hltinfer/status.h"

#define XRT_DEFAULT_RING_SLOTS 8
#define XRT_MAX_RING_SLOTS 64
#define XRT_DEFAULT_MAX_ROWS 16384

typedef enum xrt_role { XRT_ROLE_INPUT, XRT_ROLE_OUTPUT, XRT_ROLE_ROWS } xrt_role;

typedef struct xrt_arg_bind {
    xrt_role role;
    int tensor; /* config input/output index; -1 for rows */
} xrt_arg_bind_t;

typedef struct xrt_model_cfg {
    char kernel[XRT_NAME_MAX];
    int n_cus;      /* "N": the first N; 0 = all (or the named ones) */
    int n_cu_names; /* > 0: exactly these CUs */
    char cu_names[XRT_MAX_CUS][XRT_NAME_MAX];
    int n_args;
    xrt_arg_bind_t args[XRT_MAX_ARGS];
    int rows_arg;         /* index of the rows argument, -1 if none */
    int64_t rows_per_run; /* 0 = as the batch comes */
    int64_t max_rows_per_run;
    fxp_format_t in_fmt, out_fmt;
    unsigned in_vpw, out_vpw;
    bool in_dense, out_dense; /* "dense" layout: rows share bus words */
    int ring_slots;
    uint32_t run_timeout_ms;
    int64_t max_rows; /* most rows one execute gets: max_batch_size, or 1 without batching */
    size_t in_per_row[XRT_MAX_ARGS], out_per_row[XRT_MAX_ARGS]; /* values per row, per tensor */
} xrt_model_cfg_t;

/* Reads the backend parameters of cfg (borrowed) into *out. INVALID_ARGUMENT with a message that
 * names the model and the parameter (or tensor) otherwise. */
hlt_status xrt_config_parse(const model_config_t *cfg, xrt_model_cfg_t *out, char *err,
                            size_t errlen);

/* Checks the argument mapping against the kernel as the xclbin describes it and resolves the
 * compute units into cus (n_out of them). INVALID_ARGUMENT naming the parameter otherwise. */
hlt_status xrt_config_bind(const model_config_t *cfg, const xrt_model_cfg_t *mc,
                           const xrt_kernel_desc_t *k, const char *xclbin, char cus[][XRT_NAME_MAX],
                           int *n_out, char *err, size_t errlen);

#endif
