/* ops: operator table and dtype rules (see ops.h).
 *
 * Compute ops (Gemm, MatMul, activations, Softmax, BatchNormalization) run on FP32 only; the
 * elementwise arithmetic and every data-movement op also take INT64, which is what shape
 * subgraphs compute with. */
#include "ops.h"

#include <string.h>

static const op_def_t defs[OP_KIND_COUNT] = {
    [OP_GEMM] = {"Gemm", 2, 3, 0, false, ops_run_gemm},
    [OP_MATMUL] = {"MatMul", 2, 2, 0, false, ops_run_matmul},
    [OP_ADD] = {"Add", 2, 2, 0, false, ops_run_binary},
    [OP_SUB] = {"Sub", 2, 2, 0, false, ops_run_binary},
    [OP_MUL] = {"Mul", 2, 2, 0, false, ops_run_binary},
    [OP_DIV] = {"Div", 2, 2, 0, false, ops_run_binary},
    [OP_RELU] = {"Relu", 1, 1, 0, false, ops_run_unary},
    [OP_LEAKY_RELU] = {"LeakyRelu", 1, 1, 0, false, ops_run_unary},
    [OP_SIGMOID] = {"Sigmoid", 1, 1, 0, false, ops_run_unary},
    [OP_TANH] = {"Tanh", 1, 1, 0, false, ops_run_unary},
    [OP_SOFTMAX] = {"Softmax", 1, 1, 0, false, ops_run_softmax},
    [OP_BATCHNORM] = {"BatchNormalization", 5, 5, 0, false, ops_run_batchnorm},
    [OP_FLATTEN] = {"Flatten", 1, 1, 0, true, ops_run_copy},
    [OP_RESHAPE] = {"Reshape", 2, 2, 1u << 1, true, ops_run_copy},
    [OP_TRANSPOSE] = {"Transpose", 1, 1, 0, false, ops_run_transpose},
    [OP_CONCAT] = {"Concat", 1, -1, 0, false, ops_run_concat},
    [OP_IDENTITY] = {"Identity", 1, 1, 0, true, ops_run_copy},
    [OP_UNSQUEEZE] = {"Unsqueeze", 1, 2, 1u << 1, true, ops_run_copy},
    [OP_SQUEEZE] = {"Squeeze", 1, 2, 1u << 1, true, ops_run_copy},
};

const op_def_t *op_def(op_kind k)
{
    return &defs[k];
}

bool op_kind_from_name(const char *op_type, op_kind *k)
{
    for (int i = 0; i < OP_KIND_COUNT; i++)
        if (strcmp(defs[i].name, op_type) == 0) {
            *k = (op_kind)i;
            return true;
        }
    return false;
}

static const char *dtname(hlt_dtype t)
{
    const char *s = hlt_dtype_name(t);
    return s ? s : "unsupported type";
}

/* Input i of n must have dtype want (or, when want is INVALID, FP32 or INT64). */
static hlt_status need(const engine_graph_t *g, const graph_node_t *n, int i, hlt_dtype want,
                       char *err, size_t errlen)
{
    if (i >= n->n_in || n->in[i] < 0)
        return HLT_OK;
    const graph_tensor_t *t = &g->tensors[n->in[i]];
    const bool ok = want == HLT_TYPE_INVALID
                        ? (t->dtype == HLT_TYPE_FP32 || t->dtype == HLT_TYPE_INT64)
                        : t->dtype == want;
    if (ok)
        return HLT_OK;
    return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                       "node '%s' (%s): input %d '%s' has type %s; supported: %s", n->name,
                       defs[n->op].name, i, t->name, dtname(t->dtype),
                       want == HLT_TYPE_INVALID ? "FP32, INT64" : dtname(want));
}

hlt_status op_check_types(engine_graph_t *g, const graph_node_t *n, char *err, size_t errlen)
{
    hlt_status st = HLT_OK;
    hlt_dtype out = HLT_TYPE_FP32;
    switch (n->op) {
    case OP_GEMM:
    case OP_MATMUL:
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_SOFTMAX:
    case OP_BATCHNORM:
        for (int32_t i = 0; i < n->n_in && st == HLT_OK; i++)
            st = need(g, n, i, HLT_TYPE_FP32, err, errlen);
        break;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_CONCAT:
        st = need(g, n, 0, HLT_TYPE_INVALID, err, errlen);
        out = g->tensors[n->in[0]].dtype;
        for (int32_t i = 1; i < n->n_in && st == HLT_OK; i++)
            if (n->in[i] >= 0 && g->tensors[n->in[i]].dtype != out)
                st = engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                                 "node '%s' (%s): input %d '%s' has type %s but input 0 '%s' "
                                 "has %s",
                                 n->name, defs[n->op].name, (int)i, g->tensors[n->in[i]].name,
                                 dtname(g->tensors[n->in[i]].dtype), g->tensors[n->in[0]].name,
                                 dtname(out));
        break;
    case OP_RESHAPE:
    case OP_UNSQUEEZE:
    case OP_SQUEEZE:
        st = need(g, n, 0, HLT_TYPE_INVALID, err, errlen);
        if (st == HLT_OK)
            st = need(g, n, 1, HLT_TYPE_INT64, err, errlen);
        out = g->tensors[n->in[0]].dtype;
        break;
    case OP_FLATTEN:
    case OP_TRANSPOSE:
    case OP_IDENTITY:
        st = need(g, n, 0, HLT_TYPE_INVALID, err, errlen);
        out = g->tensors[n->in[0]].dtype;
        break;
    case OP_KIND_COUNT:
        break;
    }
    if (st != HLT_OK)
        return st;
    g->tensors[n->out[0]].dtype = out;
    return HLT_OK;
}
