/* ocl_ops: the create-time decisions that map engine ops onto kernels/opencl/ (*.cl).
 *
 * Which nodes fuse into a GEMM's epilogue (ocl_ops_fuse), which kernels a node launches
 * (ocl_ops_count), which constants it reads from the device (ocl_ops_reads_const) and what it
 * folds on the host before upload (ocl_ops_derived). Arguments and NDRanges, which depend on
 * the shapes, are set at prepare by ocl_launch.c. Called by ocl_plan.c. */
#include "ocl.h"

#include "cpu_unary.h"
#include "engine/ops.h"
#include "engine/shape.h"

#include <stdio.h>
#include <string.h>

static bool is_const(const backend_instance_t *inst, int32_t t)
{
    return t >= 0 && inst->g->tensors[inst->root[t]].is_const;
}

bool ocl_gemm_b_folded(const backend_instance_t *inst, const graph_node_t *n)
{
    return n->op == OP_GEMM && n->attrs.trans_b && is_const(inst, n->in[1]);
}

bool ocl_gemm_has_c(const graph_node_t *n)
{
    return n->op == OP_GEMM && n->n_in > 2 && n->in[2] >= 0 && n->attrs.beta != 0.0f;
}

static bool bn_folded(const backend_instance_t *inst, const graph_node_t *n)
{
    return n->op == OP_BATCHNORM && is_const(inst, n->in[1]) && is_const(inst, n->in[2]) &&
           is_const(inst, n->in[3]) && is_const(inst, n->in[4]);
}

static bool const_root(const engine_graph_t *g, int32_t t)
{
    return t >= 0 && g->tensors[t].is_const; /* before roots exist: no view of a constant
                                                 survives constant folding */
}

/* N of a GEMM whose B is constant (known at create), else -1. */
static int64_t gemm_const_n(const engine_graph_t *g, const graph_node_t *n)
{
    const graph_tensor_t *b = &g->tensors[n->in[1]];
    if (!const_root(g, n->in[1]) || b->rank < 2)
        return -1;
    if (n->op == OP_GEMM)
        return n->attrs.trans_b ? b->dims[0] : b->dims[1];
    return b->dims[b->rank - 1];
}

static bool is_activation(op_kind k)
{
    return k == OP_RELU || k == OP_LEAKY_RELU || k == OP_SIGMOID || k == OP_TANH;
}

void ocl_ops_fuse(backend_instance_t *inst)
{
    const engine_graph_t *g = inst->g;
    for (int32_t i = 0; i < inst->nn; i++)
        inst->nodes[i] = (ocl_node_t){.fused_into = -1,
                                      .fuse_out = g->nodes[i].out[0],
                                      .fuse_add = -1,
                                      .fuse_bn = -1,
                                      .fuse_act = -1};
    const char *env = getenv("HLT_OPENCL_FUSE");
    if (env && !strcmp(env, "0"))
        return;
    /* consumers per tensor; graph outputs count as a consumer that cannot be fused */
    int32_t *uses = calloc((size_t)inst->nt + 1, sizeof *uses);
    int32_t *user = calloc((size_t)inst->nt + 1, sizeof *user);
    if (!uses || !user)
        goto out; /* no fusion is always correct */
    for (int32_t i = 0; i < inst->nn; i++)
        for (int32_t j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].in[j] >= 0) {
                uses[g->nodes[i].in[j]]++;
                user[g->nodes[i].in[j]] = i;
            }
    for (int32_t i = 0; i < g->n_outputs; i++)
        uses[g->outputs[i]] += 2;
    for (int32_t i = 0; i < inst->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        ocl_node_t *on = &inst->nodes[i];
        const int64_t nn = n->op == OP_GEMM || n->op == OP_MATMUL ? gemm_const_n(g, n) : -1;
        if (nn < 0)
            continue;
        int32_t t = n->out[0];
        while (uses[t] == 1) {
            const int32_t c = user[t];
            const graph_node_t *cn = &g->nodes[c];
            if (cn->op == OP_ADD && on->fuse_add < 0 && on->fuse_bn < 0 && on->fuse_act < 0) {
                const int32_t bias = cn->in[0] == t ? cn->in[1] : cn->in[0];
                const graph_tensor_t *bt = &g->tensors[bias];
                const int64_t cnt = bt->rank >= 0 ? graph_numel(bt->rank, bt->dims) : -1;
                const bool fits =
                    bt->rank == 1 || (n->op == OP_GEMM && bt->rank == 2 && bt->dims[0] == 1);
                if (!const_root(g, bias) || bt->dtype != HLT_TYPE_FP32 || !fits || cnt != nn ||
                    cn->in[0] == cn->in[1])
                    break;
                on->fuse_add = c;
            } else if (cn->op == OP_BATCHNORM && n->op == OP_GEMM && cn->in[0] == t &&
                       on->fuse_bn < 0 && on->fuse_act < 0) {
                bool ok = true;
                for (int32_t j = 1; j <= 4; j++)
                    ok = ok && const_root(g, cn->in[j]) && g->tensors[cn->in[j]].rank == 1 &&
                         g->tensors[cn->in[j]].dims[0] == nn;
                if (!ok)
                    break;
                on->fuse_bn = c;
            } else if (is_activation(cn->op) && on->fuse_act < 0) {
                on->fuse_act = c;
            } else {
                break;
            }
            inst->nodes[c].fused_into = i;
            t = cn->out[0];
        }
        on->fuse_out = t;
    }
out:
    free(uses);
    free(user);
}

bool ocl_gemm_epilogue(const ocl_node_t *on)
{
    return on->fuse_add >= 0 || on->fuse_bn >= 0;
}

/* Bytes of a folded (transposed) Gemm B, rounded to OCL_ALIGN; the epilogue follows it. */
size_t ocl_gemm_bt_bytes(const backend_instance_t *inst, const graph_node_t *n)
{
    if (!ocl_gemm_b_folded(inst, n))
        return 0;
    const engine_shape_t *bs = &inst->shapes[inst->root[n->in[1]]];
    const size_t b = sizeof(float) * (size_t)(bs->dims[0] * bs->dims[1]);
    return (b + OCL_ALIGN - 1) / OCL_ALIGN * OCL_ALIGN;
}

static size_t esize(const backend_instance_t *inst, int32_t t)
{
    return hlt_dtype_size(inst->g->tensors[t].dtype);
}

int32_t ocl_ops_count(const backend_instance_t *inst, const graph_node_t *n, const char **names)
{
    static const char *const bin_f32[] = {"add_f32", "sub_f32", "mul_f32", "div_f32"};
    static const char *const bin_i64[] = {"add_i64", "sub_i64", "mul_i64", "div_i64"};
    const char *one = NULL;
    const bool wide = esize(inst, n->out[0]) == 8;
    if (inst->nodes[n - inst->g->nodes].fused_into >= 0)
        return 0;
    switch (n->op) {
    case OP_GEMM:
    case OP_MATMUL:
        one = inst->tiled ? "gemm_tiled" : "gemm_rows";
        break;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
        one = (wide ? bin_i64 : bin_f32)[n->op - OP_ADD];
        break;
    case OP_RELU:
        one = "relu_f32";
        break;
    case OP_LEAKY_RELU:
        one = "leaky_relu_f32";
        break;
    case OP_SIGMOID:
        one = "sigmoid_f32";
        break;
    case OP_TANH:
        one = "tanh_f32";
        break;
    case OP_SOFTMAX:
        one = "softmax_f32";
        break;
    case OP_BATCHNORM:
        if (bn_folded(inst, n)) {
            one = "channel_affine_f32";
            break;
        }
        if (names) {
            names[0] = "bn_coeffs_f32";
            names[1] = "channel_affine_f32";
        }
        return 2;
    case OP_TRANSPOSE:
        one = wide ? "transpose_8" : "transpose_4";
        break;
    case OP_CONCAT:
        for (int32_t j = 0; names && j < n->n_in; j++)
            names[j] = wide ? "copy_rows_8" : "copy_rows_4";
        return n->n_in;
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_IDENTITY:
    case OP_UNSQUEEZE:
    case OP_SQUEEZE:
    case OP_KIND_COUNT:
        return 0; /* views: the output aliases the input's buffer */
    }
    if (names)
        names[0] = one;
    return 1;
}

bool ocl_ops_reads_const(const backend_instance_t *inst, const graph_node_t *n, int32_t j)
{
    if (op_def(n->op)->view || inst->nodes[n - inst->g->nodes].fused_into >= 0)
        return false;
    if (n->op == OP_GEMM &&
        ((j == 1 && ocl_gemm_b_folded(inst, n)) || (j == 2 && !ocl_gemm_has_c(n))))
        return false;
    if (n->op == OP_BATCHNORM && j > 0 && bn_folded(inst, n))
        return false;
    return true;
}

static const float *const_data(const backend_instance_t *inst, int32_t t)
{
    return inst->g->tensors[inst->root[t]].data;
}

void ocl_ops_derived(const backend_instance_t *inst, const graph_node_t *n, size_t *bytes,
                     void *dst)
{
    const ocl_node_t *on = &inst->nodes[n - inst->g->nodes];
    *bytes = 0;
    if (n->op == OP_GEMM || n->op == OP_MATMUL) {
        const size_t bt = ocl_gemm_bt_bytes(inst, n);
        if (bt && dst) {
            /* B [N,K] stored as [K,N]: the row kernel then loads 8 consecutive columns. */
            const engine_shape_t *bs = &inst->shapes[inst->root[n->in[1]]];
            const int64_t nn = bs->dims[0], k = bs->dims[1];
            const float *b = const_data(inst, n->in[1]);
            float *t = dst;
            for (int64_t p = 0; p < k; p++)
                for (int64_t j = 0; j < nn; j++)
                    t[p * nn + j] = b[j * k + p];
        }
        *bytes = bt;
        if (!ocl_gemm_epilogue(on))
            return;
        const int64_t nn = gemm_const_n(inst->g, n);
        *bytes = bt + 3 * sizeof(float) * (size_t)nn;
        if (!dst)
            return;
        float *e = (float *)((uint8_t *)dst + bt);
        for (int64_t j = 0; j < nn; j++) {
            e[j] = 0.0f;
            e[nn + j] = 1.0f;
            e[2 * nn + j] = 0.0f;
        }
        if (on->fuse_add >= 0) {
            const graph_node_t *an = &inst->g->nodes[on->fuse_add];
            const int32_t bias = inst->g->tensors[an->in[0]].is_const ? an->in[0] : an->in[1];
            memcpy(e, const_data(inst, bias), sizeof(float) * (size_t)nn);
        }
        if (on->fuse_bn >= 0) {
            const graph_node_t *bn = &inst->g->nodes[on->fuse_bn];
            cpu_bn_coeffs_f32(const_data(inst, bn->in[1]), const_data(inst, bn->in[2]),
                              const_data(inst, bn->in[3]), const_data(inst, bn->in[4]),
                              bn->attrs.epsilon, nn, e + nn, e + 2 * nn);
        }
    } else if (bn_folded(inst, n)) {
        const int64_t c = inst->shapes[inst->root[n->in[1]]].dims[0];
        *bytes = 2 * sizeof(float) * (size_t)c;
        if (dst)
            cpu_bn_coeffs_f32(const_data(inst, n->in[1]), const_data(inst, n->in[2]),
                              const_data(inst, n->in[3]), const_data(inst, n->in[4]),
                              n->attrs.epsilon, c, dst, (float *)dst + c);
    }
}
