/* graph: the engine's graph IR and the load-time passes over it.
 *
 * Owns struct engine_graph: tensors (name, dtype, declared shape, constant data), nodes (op,
 * input/output tensor ids, parsed attributes), graph inputs/outputs with their public
 * descriptors. Built by onnx_load.c (the only ONNX-aware module), finished by graph_finalize()
 * (name resolution, dead-node pruning, topological sort, dtype checks, constant folding), then
 * read-only: shared by every engine_exec (exec.c) of a model, from any thread.
 *
 * Constant folding runs every node whose inputs are all constant through the same shape rules
 * (shape.c) and kernels (ops_*.c) as execution, so folded shape arithmetic (PyTorch's
 * Constant/Unsqueeze/Concat/Reshape chains) cannot disagree with the runtime. */
#ifndef HLT_ENGINE_GRAPH_H
#define HLT_ENGINE_GRAPH_H

#include "engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum op_kind {
    OP_GEMM,
    OP_MATMUL,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_RELU,
    OP_LEAKY_RELU,
    OP_SIGMOID,
    OP_TANH,
    OP_SOFTMAX,
    OP_BATCHNORM,
    OP_FLATTEN,
    OP_RESHAPE,
    OP_TRANSPOSE,
    OP_CONCAT,
    OP_IDENTITY,
    OP_UNSQUEEZE,
    OP_SQUEEZE,
    OP_KIND_COUNT,
} op_kind;

/* Attributes of every supported op, parsed and defaulted at load (onnx_load.c). */
typedef struct op_attrs {
    float alpha;     /* Gemm (1), LeakyRelu (0.01) */
    float beta;      /* Gemm (1) */
    float epsilon;   /* BatchNormalization (1e-5) */
    bool trans_a;    /* Gemm */
    bool trans_b;    /* Gemm */
    bool softmax_2d; /* Softmax before opset 13: coerce to 2-D at axis */
    bool allowzero;  /* Reshape (opset 14) */
    bool has_ints;   /* ints holds perm (Transpose) or axes (Squeeze/Unsqueeze) */
    int64_t axis;    /* Softmax, Flatten, Concat; not yet normalised (may be negative) */
    int32_t n_ints;
    int64_t ints[ENGINE_MAX_RANK];
} op_attrs_t;

typedef struct graph_node {
    char *name; /* owned; the node's name, or "#<index>" when the model gives none */
    op_kind op;
    int32_t n_in; /* inputs as the model lists them; -1 marks an omitted optional input */
    int32_t n_out;
    int32_t *in;  /* owned; tensor ids */
    int32_t *out; /* owned; tensor ids */
    op_attrs_t attrs;
    bool dead; /* folded or unused; removed by graph_finalize */
} graph_node_t;

typedef struct graph_tensor {
    char *name;        /* owned */
    hlt_dtype dtype;   /* FP32 or INT64 once finalized; see onnx_type */
    int32_t onnx_type; /* ONNX TensorProto.DataType as declared (for messages) */
    int32_t rank;      /* -1 when unknown; exact for constants, declared for graph I/O */
    int64_t dims[ENGINE_MAX_RANK];    /* -1 where symbolic or unknown */
    char *dim_param[ENGINE_MAX_RANK]; /* owned symbolic names (graph I/O), or NULL */
    void *data;                       /* owned constant data (FP32 or INT64, row-major), or NULL */
    int32_t producer;                 /* node index, -1 for graph inputs and constants */
    int32_t input_idx;                /* position among graph inputs, or -1 */
    bool is_const;
    bool unsupported; /* extra node output (e.g. BatchNormalization's training outputs) or a
                         constant of a type we cannot compute with; an error if consumed */
} graph_tensor_t;

struct engine_graph {
    graph_tensor_t *tensors; /* owned, n_tensors valid of cap_tensors */
    int32_t n_tensors, cap_tensors;
    graph_node_t *nodes; /* owned; after finalize: live nodes in execution order */
    int32_t n_nodes, cap_nodes;
    int32_t *inputs; /* owned; tensor ids of graph inputs (initializers excluded) */
    int32_t n_inputs;
    int32_t *outputs; /* owned; tensor ids of graph outputs */
    int32_t n_outputs;
    engine_tensor_desc_t *input_desc;  /* owned; parallel to inputs */
    engine_tensor_desc_t *output_desc; /* owned; parallel to outputs */
    int64_t opset;                     /* default-domain opset version */
    /* name -> tensor id (open addressing, ids + 1, 0 = empty) */
    int32_t *index;
    uint32_t index_cap;
};

/* printf into a caller's error buffer; err may be NULL. Returns st for `return errf(...)`. */
hlt_status engine_errf(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* New empty graph; owned by the caller (engine_graph_destroy). NULL on allocation failure. */
engine_graph_t *graph_create(int64_t opset);

/* Id of the tensor with this name, or -1. name borrowed. */
int32_t graph_find(const engine_graph_t *g, const char *name);

/* Adds a tensor (name copied) and returns its id in *id. INVALID_ARGUMENT when the name is
 * taken (SSA: one definition per name), RESOURCE_EXHAUSTED on allocation failure. Pointers into
 * g->tensors are valid until the next graph_add_tensor. */
hlt_status graph_add_tensor(engine_graph_t *g, const char *name, int32_t *id, char *err,
                            size_t errlen);

/* Adds a node with room for n_in inputs and n_out outputs (all -1); name copied (NULL or ""
 * gets "#<index>"). Returns its index in *idx. The node pointer is valid until the next
 * graph_add_node. */
hlt_status graph_add_node(engine_graph_t *g, const char *name, op_kind op, int32_t n_in,
                          int32_t n_out, int32_t *idx, char *err, size_t errlen);

/* Load-time passes, in order: prune unused nodes, sort topologically, check dtypes, fold
 * constants, fold BatchNormalization into the Gemm/MatMul before it (passes.c: rewrites that
 * layer's constant inputs and drops the BN node, or turns it into an Add of a constant after a
 * MatMul; only existing ops, same semantics), prune again, check inputs that must be constant,
 * build the public descriptors.
 * Called once by the loader after every tensor and node is added. On failure the graph is left
 * for the caller to destroy. */
hlt_status graph_finalize(engine_graph_t *g, char *err, size_t errlen);

/* Number of elements of a shape; -1 on int64 overflow. */
int64_t graph_numel(int32_t rank, const int64_t *dims);

#endif
