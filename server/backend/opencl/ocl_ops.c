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

/* K of a GEMM whose B is a constant matrix, else -1. */
static int64_t gemm_const_k(const engine_graph_t *g, const graph_node_t *n)
{
    const graph_tensor_t *b = &g->tensors[n->in[1]];
    if (!const_root(g, n->in[1]) || b->rank != 2)
        return -1;
    return n->op == OP_GEMM && n->attrs.trans_b ? b->dims[1] : b->dims[0];
}

/* Whether node i can be a layer of a fused chain (mlp.cl): an FP32 Gemm (A not transposed, C
 * absent or a constant of N or 1 values) or MatMul with a constant 2-D B, already heading its
 * epilogue, K and N at most OCL_MLP_MAX. `first`: the chain's input must be 2-D (a MatMul's A
 * of another rank would fold batch dimensions; later layers read 2-D GEMM outputs). */
static bool mlp_layer_ok(const backend_instance_t *inst, int32_t i, bool first)
{
    const engine_graph_t *g = inst->g;
    const graph_node_t *n = &g->nodes[i];
    if ((n->op != OP_GEMM && n->op != OP_MATMUL) || inst->nodes[i].fused_into >= 0 ||
        inst->nodes[i].mlp_layers || n->in[0] == n->in[1])
        return false;
    const int64_t k = gemm_const_k(g, n), nn = gemm_const_n(g, n);
    const graph_tensor_t *a = &g->tensors[n->in[0]], *b = &g->tensors[n->in[1]];
    if (k <= 0 || nn <= 0 || k > OCL_MLP_MAX || nn > OCL_MLP_MAX || b->dtype != HLT_TYPE_FP32 ||
        a->dtype != HLT_TYPE_FP32 || g->tensors[n->out[0]].dtype != HLT_TYPE_FP32)
        return false;
    if (first && n->op == OP_MATMUL && a->rank != 2)
        return false;
    if (n->op == OP_GEMM) {
        if (n->attrs.trans_a)
            return false;
        if (ocl_gemm_has_c(n)) {
            const graph_tensor_t *c = &g->tensors[n->in[2]];
            const int64_t cnt = c->rank >= 0 ? graph_numel(c->rank, c->dims) : -1;
            if (!const_root(g, n->in[2]) || c->dtype != HLT_TYPE_FP32 || c->rank > 2 ||
                (cnt != nn && cnt != 1) || (c->rank == 2 && c->dims[0] != 1 && cnt != 1))
                return false;
        }
    }
    return true;
}

static bool is_graph_output(const engine_graph_t *g, int32_t t)
{
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == t)
            return true;
    return false;
}

/* Chains of GEMM layers into one mlp.cl launch (see ocl_node_t); uses/user as ocl_ops_fuse. */
static void fuse_mlp(backend_instance_t *inst, const int32_t *uses, const int32_t *user)
{
    const engine_graph_t *g = inst->g;
    for (int32_t i = 0; i < inst->nn; i++) {
        if (!mlp_layer_ok(inst, i, true))
            continue;
        int32_t layers = 1, last = i, t = inst->nodes[i].fuse_out;
        while (uses[t] == 1 && g->nodes[user[t]].in[0] == t &&
               mlp_layer_ok(inst, user[t], false) &&
               gemm_const_k(g, &g->nodes[user[t]]) == gemm_const_n(g, &g->nodes[last])) {
            last = user[t];
            layers++;
            t = inst->nodes[last].fuse_out;
        }
        /* a Softmax over the last axis, the only node reading t; t may be a graph output too
         * (a tagger's logits beside its probabilities), then the kernel writes both */
        int32_t sm = -1;
        const bool out = uses[t] == 3 && is_graph_output(g, t);
        if ((uses[t] == 1 || out) && g->nodes[user[t]].op == OP_SOFTMAX &&
            g->nodes[user[t]].in[0] == t &&
            (g->nodes[user[t]].attrs.axis == 1 || g->nodes[user[t]].attrs.axis == -1))
            sm = user[t];
        if (layers + (sm >= 0) < 2)
            continue;
        ocl_node_t *head = &inst->nodes[i];
        head->mlp_layers = layers;
        head->mlp_softmax = sm;
        head->mlp_logits = sm >= 0 && out ? t : -1;
        for (int32_t c = i; c != last;) {
            const int32_t next = user[inst->nodes[c].fuse_out];
            inst->nodes[c].mlp_next = next;
            inst->nodes[next].fused_into = i;
            c = next;
        }
        if (sm >= 0)
            inst->nodes[sm].fused_into = i;
        head->fuse_out = sm >= 0 ? g->nodes[sm].out[0] : t;
    }
}

void ocl_ops_fuse(backend_instance_t *inst)
{
    const engine_graph_t *g = inst->g;
    for (int32_t i = 0; i < inst->nn; i++)
        inst->nodes[i] = (ocl_node_t){.fused_into = -1,
                                      .fuse_out = g->nodes[i].out[0],
                                      .fuse_add = -1,
                                      .fuse_bn = -1,
                                      .fuse_act = -1,
                                      .mlp_next = -1,
                                      .mlp_softmax = -1,
                                      .mlp_logits = -1};
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
    const char *mlp = getenv("HLT_OPENCL_MLP");
    if (!mlp || strcmp(mlp, "0"))
        fuse_mlp(inst, uses, user);
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
    if (inst->nodes[n - inst->g->nodes].mlp_layers) {
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
    if (op_def(n->op)->view || inst->nodes[n - inst->g->nodes].fused_into >= 0)
        return false;
    if (inst->nodes[n - inst->g->nodes].mlp_layers)
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

/* Layer l's bias|scale|shift (3 x N) as gemm.cl's epilogue applies it, with beta * C folded
 * into the bias. */
static void gemm_epilogue_coeffs(const backend_instance_t *inst, const graph_node_t *n, int64_t nn,
                                 float *e)
{
    const ocl_node_t *on = &inst->nodes[n - inst->g->nodes];
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
}

/* Elements of the chain descriptor before the weights (mlp.cl's D), 16-element aligned. */
static size_t mlp_header(int32_t layers)
{
    return ((size_t)(2 + 8 * layers) + 15) / 16 * 16;
}

/* The chain headed by n as mlp.cl reads it: descriptor D, then per layer W (N x K, row n
 * contiguous) and its epilogue (3 x N). Offsets in elements from the start of the blob. */
static void mlp_derived(const backend_instance_t *inst, const graph_node_t *n, size_t *bytes,
                        void *dst)
{
    static const int32_t acts[OP_KIND_COUNT] = {
        [OP_RELU] = 1, [OP_LEAKY_RELU] = 2, [OP_SIGMOID] = 3, [OP_TANH] = 4};
    const engine_graph_t *g = inst->g;
    const ocl_node_t *head = &inst->nodes[n - g->nodes];
    size_t at = mlp_header(head->mlp_layers);
    int32_t *d = dst;
    float *p = dst;
    if (d)
        d[0] = head->mlp_layers;
    int32_t l = 0;
    for (const graph_node_t *c = n; c; l++) {
        const ocl_node_t *on = &inst->nodes[c - g->nodes];
        const int64_t k = gemm_const_k(g, c), nn = gemm_const_n(g, c);
        if (d) {
            const bool bt = c->op == OP_GEMM && c->attrs.trans_b; /* B stored [N, K] */
            const float *b = const_data(inst, c->in[1]);
            float *w = p + at, *e = w + nn * k;
            for (int64_t j = 0; j < nn; j++)
                for (int64_t q = 0; q < k; q++)
                    w[j * k + q] = bt ? b[j * k + q] : b[q * nn + j];
            gemm_epilogue_coeffs(inst, c, nn, e);
            if (ocl_gemm_has_c(c)) {
                const graph_tensor_t *ct = &g->tensors[inst->root[c->in[2]]];
                const int64_t cnt = graph_numel(ct->rank, ct->dims);
                const float *cv = const_data(inst, c->in[2]);
                for (int64_t j = 0; j < nn; j++)
                    e[j] += c->attrs.beta * cv[cnt == 1 ? 0 : j];
            }
            const graph_node_t *an = on->fuse_act >= 0 ? &g->nodes[on->fuse_act] : NULL;
            const float aa = an ? an->attrs.alpha : 0.0f;
            const float alpha = c->op == OP_GEMM ? c->attrs.alpha : 1.0f;
            int32_t *dl = d + 1 + 8 * l;
            dl[0] = (int32_t)k;
            dl[1] = (int32_t)nn;
            dl[2] = an ? acts[an->op] : 0;
            dl[3] = (int32_t)at;
            dl[4] = (int32_t)(at + (size_t)(nn * k));
            memcpy(&dl[5], &aa, sizeof aa);
            memcpy(&dl[6], &alpha, sizeof alpha);
            dl[7] = 0;
        }
        at += (size_t)(nn * k + 3 * nn);
        c = on->mlp_next >= 0 ? &g->nodes[on->mlp_next] : NULL;
    }
    if (d)
        d[1 + 8 * l] = head->mlp_softmax >= 0;
    *bytes = at * sizeof(float);
}

void ocl_ops_derived(const backend_instance_t *inst, const graph_node_t *n, size_t *bytes,
                     void *dst)
{
    const ocl_node_t *on = &inst->nodes[n - inst->g->nodes];
    *bytes = 0;
    if (on->fused_into >= 0)
        return;
    if (on->mlp_layers) {
        mlp_derived(inst, n, bytes, dst);
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
        if (!ocl_gemm_epilogue(on))
            return;
        const int64_t nn = gemm_const_n(inst->g, n);
        *bytes = bt + 3 * sizeof(float) * (size_t)nn;
        if (!dst)
            return;
        gemm_epilogue_coeffs(inst, n, nn, (float *)((uint8_t *)dst + bt));
    } else if (bn_folded(inst, n)) {
        const int64_t c = inst->shapes[inst->root[n->in[1]]].dims[0];
        *bytes = 2 * sizeof(float) * (size_t)c;
        if (dst)
            cpu_bn_coeffs_f32(const_data(inst, n->in[1]), const_data(inst, n->in[2]),
                              const_data(inst, n->in[3]), const_data(inst, n->in[4]),
                              n->attrs.epsilon, c, dst, (float *)dst + c);
    }
}
