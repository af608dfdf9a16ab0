/* ocl_ops: the create-time decisions that map engine ops onto kernels/opencl/ (*.cl).
 *
 * Which nodes fuse into a GEMM's epilogue or a chain (ocl_ops_fuse, decided by engine/fuse.c),
 * which kernels a node launches
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
    return engine_fuse_gemm_has_c(n);
}

static bool bn_folded(const backend_instance_t *inst, const graph_node_t *n)
{
    return n->op == OP_BATCHNORM && is_const(inst, n->in[1]) && is_const(inst, n->in[2]) &&
           is_const(inst, n->in[3]) && is_const(inst, n->in[4]);
}

void ocl_ops_fuse(backend_instance_t *inst)
{
    const char *all = getenv("HLT_OPENCL_FUSE"), *mlp = getenv("HLT_OPENCL_MLP");
    const bool epilogues = !all || strcmp(all, "0");
    engine_fuse_plan(inst->g, epilogues, epilogues && (!mlp || strcmp(mlp, "0")), inst->fuse);
}

bool ocl_gemm_epilogue(const engine_fuse_t *f)
{
    return f->add >= 0 || f->bn >= 0;
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
    if (inst->fuse[n - inst->g->nodes].fused_into >= 0)
        return 0;
    if (inst->fuse[n - inst->g->nodes].chain_layers) {
        if (names)
            names[0] = inst->tiled ? "mlp_row" : "mlp_rows8";
        return 1;
    }
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
    if (op_def(n->op)->view || inst->fuse[n - inst->g->nodes].fused_into >= 0)
        return false;
    if (inst->fuse[n - inst->g->nodes].chain_layers)
        return j == 0; /* weights and epilogues are in the chain's descriptor (ocl_ops_derived) */
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
    const int32_t i = (int32_t)(n - inst->g->nodes);
    const engine_fuse_t *fu = &inst->fuse[i];
    *bytes = 0;
    if (fu->fused_into >= 0)
        return;
    if (fu->chain_layers) {
        *bytes = engine_fuse_chain_blob(inst->g, inst->fuse, i, dst);
        return;
    }
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
        if (!ocl_gemm_epilogue(fu))
            return;
        const int64_t nn = engine_fuse_gemm_n(inst->g, n);
        *bytes = bt + 3 * sizeof(float) * (size_t)nn;
        if (!dst)
            return;
        engine_fuse_epilogue(inst->g, inst->fuse, i, nn, (float *)((uint8_t *)dst + bt));
    } else if (bn_folded(inst, n)) {
        const int64_t c = inst->shapes[inst->root[n->in[1]]].dims[0];
        *bytes = 2 * sizeof(float) * (size_t)c;
        if (dst)
            cpu_bn_coeffs_f32(const_data(inst, n->in[1]), const_data(inst, n->in[2]),
                              const_data(inst, n->in[3]), const_data(inst, n->in[4]),
                              n->attrs.epsilon, c, dst, (float *)dst + c);
    }
}
