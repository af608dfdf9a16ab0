/* backend_util: helpers of the backend suites (tests/backend/...): run a graph on any backend
 * through its backend_i and compare it with the CPU backend, the reference.
 *
 * Tolerance of every comparison, FP32: |got - want| <= 1e-4 * |want| + 1e-5 (INT64: exact).
 * Everything asserts (criterion) on failure. Not thread-safe; criterion runs each test in its
 * own process, so OpenCL contexts are created inside the test, never before the fork. */
#ifndef HLT_TEST_BACKEND_UTIL_H
#define HLT_TEST_BACKEND_UTIL_H

#include "backend/backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BU_REL 1e-4
#define BU_ABS 1e-5
#define BU_MAX_IO 8

/* Backends compared with the CPU: every backend the registry knows with at least one device,
 * except "cpu" (the reference) and "xrt" (runs no graphs). Those without a device are logged
 * (cr_log_info) with the reason, once per process. Returns the count; fills list (may be
 * NULL) with up to 8. */
int bu_backends(const backend_i **list);

/* Outputs of one run; data owned (bu_result_free). */
typedef struct bu_result {
    int n;
    engine_shape_t shape[BU_MAX_IO];
    hlt_dtype dtype[BU_MAX_IO];
    void *data[BU_MAX_IO];
} bu_result_t;
void bu_result_free(bu_result_t *r);

/* A model instance on device 0 of b for graph g (borrowed, outlives it). Asserts success. */
typedef struct bu_inst {
    const backend_i *b;
    backend_instance_t *inst;
    void *cfg; /* model_config_t, owned */
} bu_inst_t;
void bu_inst_create(bu_inst_t *bi, const backend_i *b, const engine_graph_t *g);
void bu_inst_destroy(bu_inst_t *bi);

/* prepare + execute on bi with the given input shapes and data; outputs into *out. timing may
 * be NULL. Asserts success. */
void bu_run(bu_inst_t *bi, const engine_graph_t *g, const engine_shape_t *shapes,
            const void *const *inputs, bu_result_t *out, backend_timing_t *timing);

/* Asserts got == want within the tolerance above, naming `what` and the output. */
void bu_compare(const char *what, const bu_result_t *got, const bu_result_t *want);

/* Deterministic random inputs for g at shapes: FP32 uniform in [lo, hi), INT64 in [-50, 50].
 * Returns a malloc'd array of malloc'd buffers (bu_inputs_free). */
void **bu_inputs(const engine_graph_t *g, const engine_shape_t *shapes, uint64_t seed, float lo,
                 float hi);
void bu_inputs_free(const engine_graph_t *g, void **in);

/* The core check: for each of n_sets input shape sets (sets[s][0..n_inputs)), random inputs
 * in [lo, hi), run on the CPU and on every backend of bu_backends() (one instance per backend
 * for all sets, so changing shapes are exercised too), compare. Returns the number of
 * backends compared (0: none available). */
int bu_check(const char *what, const engine_graph_t *g, int n_sets,
             const engine_shape_t (*sets)[BU_MAX_IO], float lo, float hi);

/* Loads an ONNX file; asserts success. Path relative to $HLT_SOURCE_ROOT. */
engine_graph_t *bu_load(const char *rel_path);

/* Reads a whole file relative to $HLT_SOURCE_ROOT; NULL when absent. *len gets the size. */
void *bu_read_file(const char *rel_path, size_t *len);

#endif
