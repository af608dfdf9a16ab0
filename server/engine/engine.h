/* engine: ONNX model -> graph IR with shapes -> CPU execution.
 *
 * Owns the loaded graph (immutable after load, shared read-only by every instance of a model)
 * and per-instance execution state (scratch buffers, resolved shapes). Called by the server's
 * model module: load once per model version, one engine_exec per instance worker.
 *
 * Thread-safety: an engine_graph_t is read-only after engine_graph_load_* returns and may be
 * used from any number of threads. An engine_exec_t belongs to one thread at a time.
 * The engine never creates threads; BLAS threading is the caller's to set. */
#ifndef HLT_ENGINE_H
#define HLT_ENGINE_H

#include "hltinfer/dtype.h"
#include "hltinfer/status.h"

#include <stddef.h>
#include <stdint.h>

#define ENGINE_MAX_RANK 8

typedef struct engine_graph engine_graph_t;
typedef struct engine_exec engine_exec_t;

/* A graph input or output as the model declares it. */
typedef struct engine_tensor_desc {
    const char *name;                         /* owned by the graph */
    hlt_dtype dtype;                          /* FP32 or INT64 */
    int32_t rank;                             /* -1 if the model declares no shape */
    int64_t dims[ENGINE_MAX_RANK];            /* -1 where the dim is symbolic or unknown */
    const char *dim_params[ENGINE_MAX_RANK];  /* symbolic name ("N", "batch") or NULL */
} engine_tensor_desc_t;

typedef struct engine_shape {
    int32_t rank;
    int64_t dims[ENGINE_MAX_RANK];
} engine_shape_t;

/* Loads an ONNX file. On success *out is owned by the caller (free with engine_graph_destroy).
 * On failure *out is untouched and err (may be NULL) says what, naming the node and op where one
 * is at fault:
 *  INVALID_ARGUMENT  missing or unreadable file, not ONNX (garbage, truncated), malformed graph
 *                    (undefined or duplicate names, cycle, wrong input count, bad attribute type
 *                    or value, initializer data of the wrong size, constant shapes that do not
 *                    fit together);
 *  UNIMPLEMENTED     valid ONNX the engine does not run: "unsupported op 'Conv' (node 'conv1',
 *                    domain '')", an attribute value such as training_mode=1, graph inputs or
 *                    outputs other than FLOAT/INT64, external tensor data, a Reshape shape or
 *                    Squeeze/Unsqueeze axes computed at run time;
 *  RESOURCE_EXHAUSTED  out of memory.
 * Thread-safe: loads may run concurrently. */
hlt_status engine_graph_load_file(const char *path, engine_graph_t **out, char *err,
                                  size_t errlen);
/* Same from bytes in memory; data is borrowed for the call only. */
hlt_status engine_graph_load_buffer(const uint8_t *data, size_t len, engine_graph_t **out,
                                    char *err, size_t errlen);
/* Accepts NULL. */
void engine_graph_destroy(engine_graph_t *g);

/* Graph inputs (initializers excluded) and outputs, in the order the model declares them.
 * Returned pointers are borrowed from the graph. */
size_t engine_graph_num_inputs(const engine_graph_t *g);
const engine_tensor_desc_t *engine_graph_input(const engine_graph_t *g, size_t i);
size_t engine_graph_num_outputs(const engine_graph_t *g);
const engine_tensor_desc_t *engine_graph_output(const engine_graph_t *g, size_t i);

/* Creates execution state for one instance. g is borrowed and must outlive the exec.
 * On success *out is owned by the caller (free with engine_exec_destroy). */
hlt_status engine_exec_create(const engine_graph_t *g, engine_exec_t **out, char *err,
                              size_t errlen);
/* Accepts NULL. */
void engine_exec_destroy(engine_exec_t *e);

/* Checks input shapes (graph input order) against the graph's declared inputs: ranks, fixed
 * dims, non-negative dims, one size per symbolic dim name across inputs, element counts that
 * fit. INVALID_ARGUMENT naming the input and the problem. Every backend's prepare runs it. */
hlt_status engine_check_inputs(const engine_graph_t *g, const engine_shape_t *in, char *err,
                               size_t errlen);

/* Resolves every tensor's shape for concrete input shapes (graph input order; in_shapes may be
 * NULL for a graph without inputs) and sizes the scratch arena.
 * Fills out_shapes (graph output order, caller-allocated array of engine_graph_num_outputs
 * entries) with the computed shapes; the shapes a model declares for its outputs are not
 * enforced (exporters get them wrong; onnxruntime only warns). INVALID_ARGUMENT with a message
 * naming the input, or the node and op, when the shapes do not fit the graph; after a failure
 * the exec needs a successful prepare before it runs again. RESOURCE_EXHAUSTED when the arena
 * cannot grow. A repeated call with the same input shapes returns at once, and a call whose plan
 * fits the arena already held allocates nothing. */
hlt_status engine_exec_prepare(engine_exec_t *e, const engine_shape_t *in_shapes,
                               engine_shape_t *out_shapes, char *err, size_t errlen);

/* Runs the graph on the shapes of the last successful engine_exec_prepare. inputs[i] points to
 * input i's contiguous row-major data (borrowed, read-only, any alignment: read in place when
 * aligned to its element size, else copied first); outputs[i] to a caller-allocated buffer of
 * the size given by the prepared output shape (any alignment), written in full; outputs must
 * not overlap inputs. Never allocates. FAILED_PRECONDITION without a successful prepare,
 * INVALID_ARGUMENT when a non-empty tensor's pointer is NULL. */
hlt_status engine_exec_run(engine_exec_t *e, const void *const *inputs, void *const *outputs,
                           char *err, size_t errlen);

#endif
