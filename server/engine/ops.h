/* ops: the supported operator set and the map from a graph node to CPU kernels.
 *
 * ops.c owns the op table (ONNX name, arity, which inputs must be constant, zero-copy views)
 * and the dtype rules checked at load. The run functions live by family: ops_math.c (Gemm,
 * MatMul, elementwise, activations, Softmax, BatchNormalization) and ops_shape.c (Flatten,
 * Reshape, Squeeze, Unsqueeze, Identity, Transpose, Concat). Shapes are resolved before a run
 * (shape.c), so run functions only move data; they never fail and never allocate. Called by
 * exec.c per request and by graph.c for constant folding. */
#ifndef HLT_ENGINE_OPS_H
#define HLT_ENGINE_OPS_H

#include "graph.h"

/* Everything a run function sees. All borrowed. */
typedef struct op_run {
    const engine_graph_t *g;
    const graph_node_t *n;
    const engine_shape_t *shapes; /* indexed by tensor id, resolved for this run */
    void *const *data;            /* indexed by tensor id; inputs are read-only */
    void *ws;                     /* the node's scratch (size from shape_infer_node), 64-aligned */
} op_run_t;

typedef void (*op_run_fn)(const op_run_t *r);

typedef struct op_def {
    const char *name; /* ONNX op_type */
    int8_t min_in;
    int8_t max_in;    /* -1: any number */
    uint8_t const_in; /* bit i set: input i must be constant once folding is done */
    bool view;        /* output = input 0's bytes with another shape: no copy at run time */
    op_run_fn run;
} op_def_t;

/* Table entry for a kind. Static; thread-safe. */
const op_def_t *op_def(op_kind k);

/* Kind for an ONNX op_type of the default domain; false if we do not support it. */
bool op_kind_from_name(const char *op_type, op_kind *k);

/* Checks the dtypes of n's inputs and sets its output tensors' dtype. UNIMPLEMENTED when the op
 * does not compute on that dtype, INVALID_ARGUMENT when inputs disagree; message names node,
 * op and tensor. */
hlt_status op_check_types(engine_graph_t *g, const graph_node_t *n, char *err, size_t errlen);

/* ops_math.c */
void ops_run_gemm(const op_run_t *r);
void ops_run_matmul(const op_run_t *r);
void ops_run_binary(const op_run_t *r);
void ops_run_unary(const op_run_t *r);
void ops_run_softmax(const op_run_t *r);
void ops_run_batchnorm(const op_run_t *r);

/* ops_shape.c */
void ops_run_copy(const op_run_t *r); /* Flatten, Reshape, Squeeze, Unsqueeze, Identity */
void ops_run_transpose(const op_run_t *r);
void ops_run_concat(const op_run_t *r);

#endif
