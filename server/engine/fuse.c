/* fuse: epilogue and chain fusion decisions for device backends (see fuse.h). */
#include "fuse.h"

#include "cpu_unary.h"

#include <stdlib.h>
#include <string.h>

static bool const_t(const engine_graph_t *g, int32_t t)
{
    return t >= 0 && g->tensors[t].is_const; /* no view of a constant survives constant folding */
}

int64_t engine_fuse_gemm_n(const engine_graph_t *g, const graph_node_t *n)
{
    if (n->op != OP_GEMM && n->op != OP_MATMUL)
        return -1;
    const graph_tensor_t *b = &g->tensors[n->in[1]];
    if (!const_t(g, n->in[1]) || b->rank < 2)
        return -1;
    if (n->op == OP_GEMM)
        return n->attrs.trans_b ? b->dims[0] : b->dims[1];
    return b->dims[b->rank - 1];
}

/* K of a GEMM whose B is a constant matrix, else -1. */
static int64_t gemm_k(const engine_graph_t *g, const graph_node_t *n)
{
    const graph_tensor_t *b = &g->tensors[n->in[1]];
    if (!const_t(g, n->in[1]) || b->rank != 2)
        return -1;
    return n->op == OP_GEMM && n->attrs.trans_b ? b->dims[1] : b->dims[0];
}

bool engine_fuse_gemm_has_c(const graph_node_t *n)
{
    return n->op == OP_GEMM && n->n_in > 2 && n->in[2] >= 0 && n->attrs.beta != 0.0f;
}

static bool is_activation(op_kind k)
{
    return k == OP_RELU || k == OP_LEAKY_RELU || k == OP_SIGMOID || k == OP_TANH;
}

static bool is_graph_output(const engine_graph_t *g, int32_t t)
{
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == t)
            return true;
    return false;
}

/* GEMM i's epilogue: the single-consumer nodes after it it can absorb (see fuse.h). */
static void fuse_epilogue(const engine_graph_t *g, const int32_t *uses, const int32_t *user,
                          int32_t i, engine_fuse_t *f)
{
    const graph_node_t *n = &g->nodes[i];
    engine_fuse_t *on = &f[i];
    const int64_t nn = engine_fuse_gemm_n(g, n);
    if (nn < 0)
        return;
    int32_t t = n->out[0];
    while (uses[t] == 1) {
        const int32_t c = user[t];
        const graph_node_t *cn = &g->nodes[c];
        if (cn->op == OP_ADD && on->add < 0 && on->bn < 0 && on->act < 0) {
            const int32_t bias = cn->in[0] == t ? cn->in[1] : cn->in[0];
            const graph_tensor_t *bt = &g->tensors[bias];
            const int64_t cnt = bt->rank >= 0 ? graph_numel(bt->rank, bt->dims) : -1;
            const bool fits =
                bt->rank == 1 || (n->op == OP_GEMM && bt->rank == 2 && bt->dims[0] == 1);
            if (!const_t(g, bias) || bt->dtype != HLT_TYPE_FP32 || !fits || cnt != nn ||
                cn->in[0] == cn->in[1])
                break;
            on->add = c;
        } else if (cn->op == OP_BATCHNORM && n->op == OP_GEMM && cn->in[0] == t && on->bn < 0 &&
                   on->act < 0) {
            bool ok = true;
            for (int32_t j = 1; j <= 4; j++)
                ok = ok && const_t(g, cn->in[j]) && g->tensors[cn->in[j]].rank == 1 &&
                     g->tensors[cn->in[j]].dims[0] == nn;
            if (!ok)
                break;
            on->bn = c;
        } else if (is_activation(cn->op) && on->act < 0) {
            on->act = c;
        } else {
            break;
        }
        f[c].fused_into = i;
        t = cn->out[0];
    }
    on->out = t;
}

/* Whether node i can be a layer of a chain: an FP32 Gemm (A not transposed, C absent or a
 * constant of N or 1 values) or MatMul with a constant 2-D B, heading its own epilogue, K and N
 * at most ENGINE_CHAIN_MAX_WIDTH. `first`: the chain's input must be a 2-D non-constant tensor
 * (a MatMul's A of another rank would fold batch dimensions; later layers read 2-D GEMM
 * outputs). */
static bool layer_ok(const engine_graph_t *g, const engine_fuse_t *f, int32_t i, bool first)
{
    const graph_node_t *n = &g->nodes[i];
    if ((n->op != OP_GEMM && n->op != OP_MATMUL) || f[i].fused_into >= 0 || f[i].chain_layers ||
        n->in[0] == n->in[1])
        return false;
    const int64_t k = gemm_k(g, n), nn = engine_fuse_gemm_n(g, n);
    const graph_tensor_t *a = &g->tensors[n->in[0]], *b = &g->tensors[n->in[1]];
    if (k <= 0 || nn <= 0 || k > ENGINE_CHAIN_MAX_WIDTH || nn > ENGINE_CHAIN_MAX_WIDTH ||
        b->dtype != HLT_TYPE_FP32 || a->dtype != HLT_TYPE_FP32 ||
        g->tensors[n->out[0]].dtype != HLT_TYPE_FP32)
        return false;
    if (first && ((n->op == OP_MATMUL && a->rank != 2) || a->is_const))
        return false;
    if (n->op == OP_GEMM) {
        if (n->attrs.trans_a)
            return false;
        if (engine_fuse_gemm_has_c(n)) {
            const graph_tensor_t *c = &g->tensors[n->in[2]];
            const int64_t cnt = c->rank >= 0 ? graph_numel(c->rank, c->dims) : -1;
            if (!const_t(g, n->in[2]) || c->dtype != HLT_TYPE_FP32 || c->rank > 2 ||
                (cnt != nn && cnt != 1) || (c->rank == 2 && c->dims[0] != 1 && cnt != 1))
                return false;
        }
    }
    return true;
}

static void fuse_chains(const engine_graph_t *g, const int32_t *uses, const int32_t *user,
                        engine_fuse_t *f)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (!layer_ok(g, f, i, true))
            continue;
        int32_t layers = 1, last = i, t = f[i].out;
        while (uses[t] == 1 && g->nodes[user[t]].in[0] == t && layer_ok(g, f, user[t], false) &&
               gemm_k(g, &g->nodes[user[t]]) == engine_fuse_gemm_n(g, &g->nodes[last])) {
            last = user[t];
            layers++;
            t = f[last].out;
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
        engine_fuse_t *head = &f[i];
        head->chain_layers = layers;
        head->chain_softmax = sm;
        head->chain_logits = sm >= 0 && out ? t : -1;
        for (int32_t c = i; c != last;) {
            const int32_t next = user[f[c].out];
            f[c].chain_next = next;
            f[next].fused_into = i;
            c = next;
        }
        if (sm >= 0)
            f[sm].fused_into = i;
        head->out = sm >= 0 ? g->nodes[sm].out[0] : t;
    }
}

void engine_fuse_plan(const engine_graph_t *g, bool epilogues, bool chains, engine_fuse_t *f)
{
    for (int32_t i = 0; i < g->n_nodes; i++)
        f[i] = (engine_fuse_t){.fused_into = -1,
                               .out = g->nodes[i].out[0],
                               .add = -1,
                               .bn = -1,
                               .act = -1,
                               .chain_next = -1,
                               .chain_softmax = -1,
                               .chain_logits = -1};
    if (!epilogues)
        return;
    /* consumers per tensor; a graph output counts as two consumers that cannot be fused */
    int32_t *uses = calloc((size_t)g->n_tensors + 1, sizeof *uses);
    int32_t *user = calloc((size_t)g->n_tensors + 1, sizeof *user);
    if (uses && user) {
        for (int32_t i = 0; i < g->n_nodes; i++)
            for (int32_t j = 0; j < g->nodes[i].n_in; j++)
                if (g->nodes[i].in[j] >= 0) {
                    uses[g->nodes[i].in[j]]++;
                    user[g->nodes[i].in[j]] = i;
                }
        for (int32_t i = 0; i < g->n_outputs; i++)
            uses[g->outputs[i]] += 2;
        for (int32_t i = 0; i < g->n_nodes; i++)
            fuse_epilogue(g, uses, user, i, f);
        if (chains)
            fuse_chains(g, uses, user, f);
    }
    free(uses);
    free(user);
}

void engine_fuse_epilogue(const engine_graph_t *g, const engine_fuse_t *f, int32_t node, int64_t n,
                          float *e)
{
    const engine_fuse_t *on = &f[node];
    for (int64_t j = 0; j < n; j++) {
        e[j] = 0.0f;
        e[n + j] = 1.0f;
        e[2 * n + j] = 0.0f;
    }
    if (on->add >= 0) {
        const graph_node_t *an = &g->nodes[on->add];
        const int32_t bias = g->tensors[an->in[0]].is_const ? an->in[0] : an->in[1];
        memcpy(e, g->tensors[bias].data, sizeof(float) * (size_t)n);
    }
    if (on->bn >= 0) {
        const graph_node_t *bn = &g->nodes[on->bn];
        cpu_bn_coeffs_f32(g->tensors[bn->in[1]].data, g->tensors[bn->in[2]].data,
                          g->tensors[bn->in[3]].data, g->tensors[bn->in[4]].data, bn->attrs.epsilon,
                          n, e + n, e + 2 * n);
    }
}

/* Elements of the chain descriptor before the weights, 16-element aligned. */
static size_t chain_header(int32_t layers)
{
    return ((size_t)(2 + 8 * layers) + 15) / 16 * 16;
}

size_t engine_fuse_chain_blob(const engine_graph_t *g, const engine_fuse_t *f, int32_t head,
                              void *dst)
{
    static const int32_t acts[OP_KIND_COUNT] = {
        [OP_RELU] = 1, [OP_LEAKY_RELU] = 2, [OP_SIGMOID] = 3, [OP_TANH] = 4};
    const engine_fuse_t *h = &f[head];
    size_t at = chain_header(h->chain_layers);
    int32_t *d = dst;
    float *p = dst;
    if (d)
        d[0] = h->chain_layers;
    int32_t l = 0;
    for (int32_t ci = head; ci >= 0; l++) {
        const graph_node_t *c = &g->nodes[ci];
        const engine_fuse_t *on = &f[ci];
        const int64_t k = gemm_k(g, c), nn = engine_fuse_gemm_n(g, c);
        if (d) {
            const bool bt = c->op == OP_GEMM && c->attrs.trans_b; /* B stored [N, K] */
            const float *b = g->tensors[c->in[1]].data;
            float *w = p + at, *e = w + nn * k;
            for (int64_t j = 0; j < nn; j++)
                for (int64_t q = 0; q < k; q++)
                    w[j * k + q] = bt ? b[j * k + q] : b[q * nn + j];
            engine_fuse_epilogue(g, f, ci, nn, e);
            if (engine_fuse_gemm_has_c(c)) {
                const graph_tensor_t *ct = &g->tensors[c->in[2]];
                const int64_t cnt = graph_numel(ct->rank, ct->dims);
                const float *cv = ct->data;
                for (int64_t j = 0; j < nn; j++)
                    e[j] += c->attrs.beta * cv[cnt == 1 ? 0 : j];
            }
            const graph_node_t *an = on->act >= 0 ? &g->nodes[on->act] : NULL;
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
        ci = on->chain_next;
    }
    if (d)
        d[1 + 8 * l] = h->chain_softmax >= 0;
    return at * sizeof(float);
}

void engine_fuse_chain_owner(const engine_graph_t *g, const engine_fuse_t *f, int32_t *owner)
{
    for (int32_t i = 0; i < g->n_nodes; i++)
        owner[i] = -1;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (!f[i].chain_layers)
            continue;
        for (int32_t c = i; c >= 0; c = f[c].chain_next) {
            owner[c] = i;
            if (f[c].add >= 0)
                owner[f[c].add] = i;
            if (f[c].bn >= 0)
                owner[f[c].bn] = i;
            if (f[c].act >= 0)
                owner[f[c].act] = i;
        }
        if (f[i].chain_softmax >= 0)
            owner[f[i].chain_softmax] = i;
    }
}
