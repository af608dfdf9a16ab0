/* engine/fuse: the fusion decisions device backends share, and the chain blob's documented
 * meaning (fuse.h) checked by evaluating it here in plain C against the CPU engine. */
#include <criterion/criterion.h>

#include "engine.h"
#include "fuse.h"
#include "graph.h"
#include "ops.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static engine_graph_t *load(const char *model)
{
    char path[1024], err[512];
    const char *root = getenv("HLT_SOURCE_ROOT");
    cr_assert_not_null(root, "HLT_SOURCE_ROOT not set (run through meson test)");
    snprintf(path, sizeof path, "%s/models/%s/1/model.onnx", root, model);
    engine_graph_t *g = NULL;
    cr_assert_eq(engine_graph_load_file(path, &g, err, sizeof err), HLT_OK, "%s", err);
    return g;
}

static int32_t find_op(const engine_graph_t *g, op_kind op)
{
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == op)
            return i;
    return -1;
}

static int32_t tensor(const engine_graph_t *g, const char *name)
{
    for (int32_t t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].name && !strcmp(g->tensors[t].name, name))
            return t;
    return -1;
}

/* The only chain head of g (asserted unique). */
static int32_t the_head(const engine_graph_t *g, const engine_fuse_t *f)
{
    int32_t head = -1;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (f[i].chain_layers) {
            cr_assert_eq(head, -1, "a second chain head at node %d", i);
            head = i;
        }
    cr_assert_geq(head, 0, "no chain");
    return head;
}

/* fuse.h's formula, in double: x [m, k0] through the blob into y [m, n] (and z, the
 * pre-softmax values, when not NULL). */
static void eval_blob(const void *blob, const float *x, int64_t m, double *y, double *z)
{
    const int32_t *d = blob;
    const float *p = blob;
    for (int64_t r = 0; r < m; r++) {
        double h[2][ENGINE_CHAIN_MAX_WIDTH];
        const int32_t k0 = d[1];
        for (int32_t k = 0; k < k0; k++)
            h[0][k] = x[r * k0 + k];
        int cur = 0, n = 0;
        for (int32_t l = 0; l < d[0]; l++) {
            const int32_t *dl = d + 1 + 8 * l;
            const int32_t kk = dl[0], act = dl[2];
            const float *w = p + dl[3], *e = p + dl[4];
            float aa, alpha;
            memcpy(&aa, &dl[5], sizeof aa);
            memcpy(&alpha, &dl[6], sizeof alpha);
            n = dl[1];
            for (int32_t j = 0; j < n; j++) {
                double acc = 0;
                for (int32_t k = 0; k < kk; k++)
                    acc += (double)w[j * kk + k] * h[cur][k];
                double v = (alpha * acc + e[j]) * e[n + j] + e[2 * n + j];
                if (act == 1)
                    v = v > 0 ? v : 0;
                else if (act == 2)
                    v = v >= 0 ? v : aa * v;
                else if (act == 3)
                    v = 1 / (1 + exp(-v));
                else if (act == 4)
                    v = tanh(v);
                h[cur ^ 1][j] = v;
            }
            cur ^= 1;
        }
        if (z)
            for (int32_t j = 0; j < n; j++)
                z[r * n + j] = h[cur][j];
        if (d[1 + 8 * d[0]]) {
            double mx = h[cur][0], s = 0;
            for (int32_t j = 1; j < n; j++)
                mx = fmax(mx, h[cur][j]);
            for (int32_t j = 0; j < n; j++)
                s += (h[cur][j] = exp(h[cur][j] - mx));
            for (int32_t j = 0; j < n; j++)
                h[cur][j] /= s;
        }
        for (int32_t j = 0; j < n; j++)
            y[r * n + j] = h[cur][j];
    }
}

/* The CPU engine's outputs of g for m random rows of k0 features. */
static void engine_outputs(const engine_graph_t *g, const float *x, int64_t m, int64_t k0,
                           float **outs, int64_t *widths)
{
    char err[512];
    engine_exec_t *e = NULL;
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK, "%s", err);
    const engine_shape_t in = {2, {m, k0}};
    engine_shape_t os[4];
    cr_assert_eq(engine_exec_prepare(e, &in, os, err, sizeof err), HLT_OK, "%s", err);
    void *o[4] = {0};
    for (size_t i = 0; i < engine_graph_num_outputs(g); i++) {
        widths[i] = os[i].dims[1];
        o[i] = outs[i] = malloc(sizeof(float) * (size_t)tu_numel(&os[i]));
    }
    const void *const ins[] = {x};
    cr_assert_eq(engine_exec_run(e, ins, o, err, sizeof err), HLT_OK, "%s", err);
    engine_exec_destroy(e);
}

static void check_chain(const char *model, int64_t k0, int32_t layers, bool softmax)
{
    engine_graph_t *g = load(model);
    engine_fuse_t *f = calloc((size_t)g->n_nodes, sizeof *f);
    int32_t *owner = calloc((size_t)g->n_nodes, sizeof *owner);
    engine_fuse_plan(g, true, true, f);
    const int32_t head = the_head(g, f);
    cr_assert_eq(f[head].chain_layers, layers, "%s: %d layers", model, f[head].chain_layers);
    /* every node runs inside the one kernel */
    engine_fuse_chain_owner(g, f, owner);
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!op_def(g->nodes[i].op)->view)
            cr_assert_eq(owner[i], head, "%s: node %s outside the chain", model, g->nodes[i].name);
    const size_t bytes = engine_fuse_chain_blob(g, f, head, NULL);
    void *blob = malloc(bytes);
    cr_assert_eq(engine_fuse_chain_blob(g, f, head, blob), bytes);
    const int32_t *d = blob;
    cr_assert_eq(d[0], layers);
    cr_assert_eq(d[1], k0, "first layer K %d", d[1]);
    cr_assert_eq(d[1 + 8 * layers], softmax);
    for (int32_t l = 1; l < layers; l++)
        cr_assert_eq(d[1 + 8 * l], d[1 + 8 * (l - 1) + 1], "layer %d K != previous N", l);
    /* the blob evaluated by fuse.h's formula agrees with the CPU engine */
    const int64_t m = 37;
    float *x = malloc(sizeof(float) * (size_t)(m * k0));
    uint64_t seed = 7;
    tu_fill(&seed, x, m * k0, -2, 2);
    float *outs[4] = {0};
    int64_t widths[4];
    engine_outputs(g, x, m, k0, outs, widths);
    const int64_t n = d[1 + 8 * (layers - 1) + 1];
    double *y = malloc(sizeof(double) * (size_t)(m * n)), *z = malloc(sizeof *z * (size_t)(m * n));
    eval_blob(blob, x, m, y, z);
    cr_assert_eq(widths[0], n);
    tu_close(model, outs[0], y, NULL, m * n, 1e-4, 1e-5);
    if (f[head].chain_logits >= 0) {
        cr_assert_eq(engine_graph_num_outputs(g), 2);
        tu_close("logits", outs[1], z, NULL, m * n, 1e-4, 1e-5);
    }
    for (int i = 0; i < 4; i++)
        free(outs[i]);
    free(x);
    free(y);
    free(z);
    free(blob);
    free(owner);
    free(f);
    engine_graph_destroy(g);
}

Test(fuse, facile_is_one_chain_and_its_blob_computes_the_model)
{
    check_chain("facile", 15, 3, false);
}

Test(fuse, jet_tagger_is_one_chain_with_softmax_and_logits)
{
    check_chain("jet_tagger", 64, 4, true);
    engine_graph_t *g = load("jet_tagger");
    engine_fuse_t *f = calloc((size_t)g->n_nodes, sizeof *f);
    engine_fuse_plan(g, true, true, f);
    const int32_t head = the_head(g, f);
    cr_assert_eq(f[head].chain_softmax, find_op(g, OP_SOFTMAX));
    cr_assert_eq(f[head].chain_logits, tensor(g, "logits"));
    cr_assert_eq(f[head].out, tensor(g, "probabilities"));
    free(f);
    engine_graph_destroy(g);
}

Test(fuse, switches_turn_chains_and_epilogues_off)
{
    engine_graph_t *g = load("jet_tagger");
    engine_fuse_t *f = calloc((size_t)g->n_nodes, sizeof *f);
    int32_t *owner = calloc((size_t)g->n_nodes, sizeof *owner);
    /* epilogues only: each MatMul absorbs its Add (and Relu); no chain, no owner */
    engine_fuse_plan(g, true, false, f);
    int32_t gemms = 0, absorbed = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        cr_assert_eq(f[i].chain_layers, 0);
        gemms += g->nodes[i].op == OP_MATMUL;
        absorbed += f[i].fused_into >= 0;
        if (g->nodes[i].op == OP_MATMUL)
            cr_assert_geq(f[i].add, 0, "MatMul %s kept its Add", g->nodes[i].name);
    }
    cr_assert_eq(gemms, 4);
    cr_assert_eq(absorbed, 4 + 3, "4 Adds and 3 Relus absorbed, got %d", absorbed);
    engine_fuse_chain_owner(g, f, owner);
    for (int32_t i = 0; i < g->n_nodes; i++)
        cr_assert_eq(owner[i], -1);
    /* nothing */
    engine_fuse_plan(g, false, true, f);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        cr_assert_eq(f[i].fused_into, -1);
        cr_assert_eq(f[i].chain_layers, 0);
        cr_assert_eq(f[i].out, g->nodes[i].out[0]);
    }
    free(owner);
    free(f);
    engine_graph_destroy(g);
}
