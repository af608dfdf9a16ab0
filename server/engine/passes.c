/* passes: load-time rewrites of the graph IR (see passes.h).
 *
 * BatchNormalization folding. In inference form BN is a per-channel affine map,
 * y = (x - mean) * s + beta with s = scale / sqrt(var + eps), so after a linear layer it folds
 * exactly into the layer's constants: w'[:, j] = w[:, j] * s[j] (column j of op(B)) and
 * b'[j] = (b[j] - mean[j]) * s[j] + beta[j]. The patterns (PyTorch's Linear + BatchNorm1d, Keras'
 * Dense + BatchNormalization), each only when every tensor between the nodes has no other reader
 * and is no graph output, the weight is a constant matrix and BN's parameters are constant
 * vectors of the layer's width n:
 *
 *   Gemm(A, B[, C]) -> BN            Gemm(A, B', C')  alpha = beta = 1, writes BN's output
 *   Gemm|MatMul -> Add(const) -> BN  same node with B' (and C'), Add(const'), Add writes BN's output
 *   MatMul(A, B) -> BN               MatMul(A, B'), the BN node becomes Add(const')
 *
 * MatMul is folded only when its output is known to be 2-D (BN's channel axis is 1, the
 * layer's columns only then). Coefficients are computed in double and rounded once. A constant
 * with no other reader is rewritten in place, else a new constant is added (named after the BN
 * node); the BN node is marked dead and pruned by graph_finalize. The result holds only ops every
 * backend already runs (Gemm, MatMul, Add), with unchanged semantics; numerically it differs
 * from the unfolded graph by float32 rounding only. */
#include "passes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Live nodes reading t (an input listed twice counts twice). */
static int32_t readers(const engine_graph_t *g, int32_t t, int32_t *only)
{
    int32_t cnt = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const graph_node_t *n = &g->nodes[i];
        if (n->dead)
            continue;
        for (int32_t j = 0; j < n->n_in; j++)
            if (n->in[j] == t) {
                cnt++;
                *only = i;
            }
    }
    return cnt;
}

static bool is_output(const engine_graph_t *g, int32_t t)
{
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == t)
            return true;
    return false;
}

/* true when node `node` is the only reader of t and t is no graph output. */
static bool only_reader(const engine_graph_t *g, int32_t t, int32_t node)
{
    int32_t who = -1;
    return t >= 0 && !is_output(g, t) && readers(g, t, &who) == 1 && who == node;
}

static const graph_tensor_t *const_f32(const engine_graph_t *g, int32_t t)
{
    if (t < 0)
        return NULL;
    const graph_tensor_t *gt = &g->tensors[t];
    return gt->is_const && gt->data && gt->dtype == HLT_TYPE_FP32 && gt->rank >= 0 ? gt : NULL;
}

/* Broadcasts along rows to [m, n] as one value per column (see exec.c's per_column). */
static bool per_column(const graph_tensor_t *c, int64_t n, bool *per_col)
{
    if (!c || c->rank > 2 || (c->rank == 2 && c->dims[0] != 1))
        return false;
    const int64_t last = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    if (last != 1 && last != n)
        return false;
    *per_col = last == n && n != 1;
    return true;
}

/* Rank of tensor t if the graph determines it without input data, else -1. */
static int32_t known_rank(const engine_graph_t *g, int32_t t, int depth)
{
    const graph_tensor_t *gt = &g->tensors[t];
    if (gt->is_const || gt->input_idx >= 0)
        return gt->rank;
    if (gt->producer < 0 || depth > 64)
        return -1;
    const graph_node_t *n = &g->nodes[gt->producer];
    switch (n->op) {
    case OP_GEMM:
    case OP_FLATTEN:
        return 2;
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_SOFTMAX:
    case OP_BATCHNORM:
    case OP_IDENTITY:
        return known_rank(g, n->in[0], depth + 1);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV: {
        const int32_t a = known_rank(g, n->in[0], depth + 1), b = known_rank(g, n->in[1], depth + 1);
        return a < 0 || b < 0 ? -1 : a > b ? a : b;
    }
    case OP_MATMUL: {
        const int32_t a = known_rank(g, n->in[0], depth + 1), b = known_rank(g, n->in[1], depth + 1);
        if (a < 1 || b < 1)
            return -1;
        if (a == 1 || b == 1)
            return a + b - 2;
        return a > b ? a : b;
    }
    case OP_RESHAPE: {
        const graph_tensor_t *s = &g->tensors[n->in[1]];
        return s->is_const && s->rank == 1 ? (int32_t)s->dims[0] : -1;
    }
    default:
        return -1;
    }
}

/* A constant float tensor for node `user`'s input slot *slot: rewritten in place when `user`
 * is its only reader, else a new tensor; on return *slot names it and *out its data (n values,
 * shape [n], or B's shape when shape is given). */
static hlt_status writable_const(engine_graph_t *g, int32_t user, int32_t *slot, const char *base,
                                 const char *what, int32_t rank, const int64_t *dims,
                                 float **out, char *err, size_t errlen)
{
    const int64_t cnt = graph_numel(rank, dims);
    const int32_t cur = *slot;
    if (cur >= 0 && only_reader(g, cur, user) && g->tensors[cur].rank == rank &&
        graph_numel(g->tensors[cur].rank, g->tensors[cur].dims) == cnt) {
        *out = g->tensors[cur].data;
        return HLT_OK;
    }
    float *data = malloc(sizeof(float) * (size_t)(cnt > 0 ? cnt : 1));
    if (!data)
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    char name[512];
    int32_t id = -1;
    for (int k = 0; k < 1000; k++) {
        if (k == 0)
            snprintf(name, sizeof name, "%s/%s", base, what);
        else
            snprintf(name, sizeof name, "%s/%s#%d", base, what, k);
        if (graph_find(g, name) < 0)
            break;
    }
    hlt_status st = graph_add_tensor(g, name, &id, err, errlen);
    if (st != HLT_OK) {
        free(data);
        return st;
    }
    graph_tensor_t *t = &g->tensors[id];
    t->dtype = HLT_TYPE_FP32;
    t->onnx_type = 1; /* TensorProto.FLOAT */
    t->rank = rank;
    for (int32_t i = 0; i < ENGINE_MAX_RANK; i++)
        t->dims[i] = i < rank ? dims[i] : 0;
    t->data = data;
    t->is_const = true;
    *slot = id;
    *out = data;
    return HLT_OK;
}

/* Folds BN node bi into the layer before it, if the pattern holds. */
static hlt_status fold_one(engine_graph_t *g, int32_t bi, char *err, size_t errlen)
{
    const graph_node_t *bn = &g->nodes[bi];
    const int32_t x = bn->in[0];
    if (x < 0 || g->tensors[x].producer < 0 || !only_reader(g, x, bi))
        return HLT_OK;
    int32_t add = -1, lin = g->tensors[x].producer, add_slot = -1;
    if (g->nodes[lin].op == OP_ADD) {
        add = lin;
        const graph_node_t *an = &g->nodes[add];
        for (int32_t s = 0; s < 2 && add_slot < 0; s++) {
            const int32_t z = an->in[1 - s];
            if (const_f32(g, an->in[s]) && z >= 0 && g->tensors[z].producer >= 0 &&
                only_reader(g, z, add))
                add_slot = s;
        }
        if (add_slot < 0)
            return HLT_OK;
        lin = g->tensors[an->in[1 - add_slot]].producer;
    }
    const graph_node_t *ln = &g->nodes[lin];
    if (ln->dead || (ln->op != OP_GEMM && ln->op != OP_MATMUL))
        return HLT_OK;
    const graph_tensor_t *w = const_f32(g, ln->in[1]);
    if (!w || w->rank != 2)
        return HLT_OK;
    const bool gemm = ln->op == OP_GEMM, tb = gemm && ln->attrs.trans_b;
    const int64_t n = tb ? w->dims[0] : w->dims[1];
    if (!gemm && known_rank(g, ln->in[0], 0) != 2)
        return HLT_OK;
    const graph_tensor_t *c = NULL, *d = NULL;
    bool c_col = false, d_col = false;
    if (gemm && ln->n_in > 2 && ln->in[2] >= 0 && ln->attrs.beta != 0.0f) {
        c = const_f32(g, ln->in[2]);
        if (!per_column(c, n, &c_col))
            return HLT_OK;
    }
    if (add >= 0 && !per_column(d = const_f32(g, g->nodes[add].in[add_slot]), n, &d_col))
        return HLT_OK;
    const graph_tensor_t *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = const_f32(g, bn->in[i + 1]);
        if (!p[i] || p[i]->rank != 1 || p[i]->dims[0] != n)
            return HLT_OK; /* shape errors stay prepare's to report */
    }
    double *s = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    float *cv = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)); /* beta * C, per column */
    float *dv = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)); /* the Add's constant */
    hlt_status st = HLT_OK;
    if (!s || !cv || !dv) {
        st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto done;
    }
    const float *scale = p[0]->data, *bias = p[1]->data, *mean = p[2]->data, *var = p[3]->data;
    for (int64_t j = 0; j < n; j++) {
        s[j] = (double)scale[j] / sqrt((double)var[j] + (double)bn->attrs.epsilon);
        if (!isfinite(s[j]))
            goto done; /* leave such a BN to run as written */
        cv[j] = c ? ln->attrs.beta * ((const float *)c->data)[c_col ? j : 0] : 0.0f;
        dv[j] = d ? ((const float *)d->data)[d_col ? j : 0] : 0.0f;
    }
    /* Names for new constants, and the node fields we need, before tensors may move. */
    char base[400];
    snprintf(base, sizeof base, "%s", bn->name);
    const int32_t y = bn->out[0];
    const float alpha = gemm ? ln->attrs.alpha : 1.0f;
    const float *w_old = w->data;
    const int64_t wd[2] = {w->dims[0], w->dims[1]};
    float *wn = NULL;
    if ((st = writable_const(g, lin, &g->nodes[lin].in[1], base, "folded_weight", 2, wd, &wn, err,
                             errlen)) != HLT_OK)
        goto done;
    for (int64_t r = 0; r < wd[0]; r++)
        for (int64_t q = 0; q < wd[1]; q++) {
            const int64_t j = tb ? r : q; /* column of op(B) */
            wn[r * wd[1] + q] = (float)((double)alpha * w_old[r * wd[1] + q] * s[j]);
        }
    const int64_t nd[1] = {n};
    float *bias_new = NULL;
    if (add >= 0) {
        /* Add keeps its constant slot: (d - mean) s + beta; Gemm's C becomes beta C s. */
        if ((st = writable_const(g, add, &g->nodes[add].in[add_slot], base, "folded_bias", 1, nd,
                                 &bias_new, err, errlen)) != HLT_OK)
            goto done;
        for (int64_t j = 0; j < n; j++)
            bias_new[j] = (float)(((double)dv[j] - mean[j]) * s[j] + bias[j]);
        if (c) {
            float *cn = NULL;
            if ((st = writable_const(g, lin, &g->nodes[lin].in[2], base, "folded_c", 1, nd, &cn,
                                     err, errlen)) != HLT_OK)
                goto done;
            for (int64_t j = 0; j < n; j++)
                cn[j] = (float)((double)cv[j] * s[j]);
        }
        g->nodes[add].out[0] = y;
    } else if (gemm) {
        graph_node_t *gn = &g->nodes[lin];
        if (gn->n_in < 3) {
            int32_t *in = realloc(gn->in, sizeof(int32_t) * 3);
            if (!in) {
                st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
                goto done;
            }
            gn->in = in;
            gn->in[2] = -1;
            gn->n_in = 3;
        }
        if (!c)
            gn->in[2] = -1; /* beta 0: C was ignored; the folded bias replaces it */
        if ((st = writable_const(g, lin, &g->nodes[lin].in[2], base, "folded_bias", 1, nd,
                                 &bias_new, err, errlen)) != HLT_OK)
            goto done;
        for (int64_t j = 0; j < n; j++)
            bias_new[j] = (float)(((double)cv[j] - mean[j]) * s[j] + bias[j]);
        gn = &g->nodes[lin];
        gn->attrs.beta = 1.0f;
        gn->out[0] = y;
    } else {
        /* MatMul: the BN node itself becomes the bias Add. */
        int32_t slot = -1;
        if ((st = writable_const(g, bi, &slot, base, "folded_bias", 1, nd, &bias_new, err,
                                 errlen)) != HLT_OK)
            goto done;
        for (int64_t j = 0; j < n; j++)
            bias_new[j] = (float)(bias[j] - (double)mean[j] * s[j]);
        graph_node_t *b = &g->nodes[bi];
        b->op = OP_ADD;
        b->n_in = 2;
        b->n_out = 1; /* BN's training outputs: unread (check_unsupported), now gone */
        b->in[1] = slot;
        memset(&b->attrs, 0, sizeof b->attrs);
        goto done;
    }
    if (gemm)
        g->nodes[lin].attrs.alpha = 1.0f;
    g->tensors[y].producer = add >= 0 ? add : lin;
    g->nodes[bi].dead = true;
done:
    free(s);
    free(cv);
    free(dv);
    return st;
}

hlt_status graph_fold_batchnorm(engine_graph_t *g, char *err, size_t errlen)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead || g->nodes[i].op != OP_BATCHNORM)
            continue;
        const hlt_status st = fold_one(g, i, err, errlen);
        if (st != HLT_OK)
            return st;
    }
    return HLT_OK;
}
