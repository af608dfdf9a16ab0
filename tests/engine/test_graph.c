/* Load-time passes of graph.c and passes.c: constant folding, dead-node pruning, topological
 * sorting, BatchNormalization folding. Looks inside the IR (graph.h) to check what the passes
 * left, and runs the rewritten graphs against float64 references of the original ones. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "test_util.h"

static engine_graph_t *load(mb_t *m)
{
    char err[512] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    return g;
}

Test(graph, folds_pytorch_shape_arithmetic)
{
    /* shape = Concat(Unsqueeze(Constant(-1)), Unsqueeze(Mul(Constant(3), Constant(4)))) as
     * torch.onnx writes x.view(-1, 3 * 4); everything but the Reshape folds. */
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, 2, 6}, ax[] = {0}, one[] = {1}, yd[] = {-1, 12};
    const int64_t m1 = -1, three = 3, four = 4;
    mb_input(m, "x", TU_FLOAT, 3, xd);
    mb_attr_tensor(mb_node(m, "Constant", "c0", "", "cm1"), "value",
                   mb_tensor("cm1", TU_INT64, 0, NULL, &m1, 8));
    mb_attr_int(mb_node(m, "Constant", "c1", "", "c3"), "value_int", three);
    mb_attr_tensor(mb_node(m, "Constant", "c2", "", "c4"), "value",
                   mb_tensor("c4", TU_INT64, 0, NULL, &four, 8));
    mb_init_i64(m, "axes", 1, one, ax, true);
    mb_node(m, "Mul", "mul", "c3,c4", "c12");
    mb_node(m, "Unsqueeze", "u0", "cm1,axes", "u0");
    mb_node(m, "Unsqueeze", "u1", "c12,axes", "u1");
    mb_attr_int(mb_node(m, "Concat", "cat", "u0,u1", "shape"), "axis", 0);
    mb_node(m, "Reshape", "view", "x,shape", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 1, "%d nodes left", g->n_nodes);
    cr_assert_eq(g->nodes[0].op, OP_RESHAPE);
    const graph_tensor_t *shape = &g->tensors[g->nodes[0].in[1]];
    cr_assert(shape->is_const);
    cr_assert_eq(shape->rank, 1);
    cr_assert_eq(shape->dims[0], 2);
    cr_assert_eq(((int64_t *)shape->data)[0], -1);
    cr_assert_eq(((int64_t *)shape->data)[1], 12);
    engine_graph_destroy(g);
    /* and it runs */
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    engine_shape_t in = {.rank = 3, .dims = {2, 2, 6}}, out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.dims[0], 2);
    cr_assert_eq(out.dims[1], 12);
    cr_assert_arr_eq(o[0], x, sizeof x);
    free(o[0]);
    mb_free(m);
}

Test(graph, folds_weight_transposes)
{
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, 3}, wd[] = {2, 3}, yd[] = {-1, 2};
    const float w[6] = {1, 2, 3, 4, 5, 6};
    mb_input(m, "x", TU_FLOAT, 2, xd);
    mb_init_f32(m, "w", 2, wd, w, false);
    mb_node(m, "Transpose", "wt", "w", "w_t");
    mb_node(m, "MatMul", "mm", "x,w_t", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 1);
    cr_assert_eq(g->nodes[0].op, OP_MATMUL);
    engine_graph_destroy(g);
    const float x[3] = {1, 0, -1};
    engine_shape_t in = {.rank = 2, .dims = {1, 3}}, out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    const float want[2] = {-2, -2};
    cr_assert_arr_eq(o[0], want, sizeof want);
    free(o[0]);
    mb_free(m);
}

Test(graph, prunes_nodes_no_output_needs)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 4};
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_node(m, "Relu", "used", "x", "y");
    mb_node(m, "Sigmoid", "dead1", "x", "d1");
    mb_node(m, "Tanh", "dead2", "d1", "d2");
    mb_output(m, "y", TU_FLOAT, 2, d);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 1);
    cr_assert_str_eq(g->nodes[0].name, "used");
    engine_graph_destroy(g);
    mb_free(m);
}

Test(graph, sorts_nodes_listed_out_of_order)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 3};
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_node(m, "Relu", "last", "b", "y"); /* consumers listed before producers */
    mb_node(m, "Mul", "middle", "a,a", "b");
    mb_node(m, "Sub", "first", "x,x", "a0");
    mb_node(m, "Add", "second", "a0,x", "a");
    mb_output(m, "y", TU_FLOAT, 2, d);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 4);
    cr_assert_str_eq(g->nodes[0].name, "first");
    cr_assert_str_eq(g->nodes[1].name, "second");
    cr_assert_str_eq(g->nodes[2].name, "middle");
    cr_assert_str_eq(g->nodes[3].name, "last");
    engine_graph_destroy(g);
    const float x[6] = {1, -2, 3, -4, 5, 0.5f};
    engine_shape_t in = {.rank = 2, .dims = {2, 3}}, out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(((float *)o[0])[i], x[i] * x[i]); /* (x - x + x)^2, relu'd */
    free(o[0]);
    mb_free(m);
}

Test(graph, one_graph_serves_independent_execs)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 2}, cd[] = {2};
    const float c[2] = {10, 20};
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_init_f32(m, "c", 1, cd, c, false);
    mb_node(m, "Add", "add", "x,c", "y");
    mb_output(m, "y", TU_FLOAT, 2, d);
    engine_graph_t *g = load(m);
    engine_exec_t *e1 = NULL, *e2 = NULL;
    char err[256];
    cr_assert_eq(engine_exec_create(g, &e1, err, sizeof err), HLT_OK);
    cr_assert_eq(engine_exec_create(g, &e2, err, sizeof err), HLT_OK);
    engine_shape_t s1 = {.rank = 2, .dims = {1, 2}}, s2 = {.rank = 2, .dims = {3, 2}}, o1, o2;
    cr_assert_eq(engine_exec_prepare(e1, &s1, &o1, err, sizeof err), HLT_OK);
    cr_assert_eq(engine_exec_prepare(e2, &s2, &o2, err, sizeof err), HLT_OK);
    const float x1[2] = {1, 2}, x2[6] = {1, 2, 3, 4, 5, 6};
    float y1[2], y2[6];
    const void *i1[] = {x1}, *i2[] = {x2};
    void *p1[] = {y1}, *p2[] = {y2};
    cr_assert_eq(engine_exec_run(e1, i1, p1, err, sizeof err), HLT_OK);
    cr_assert_eq(engine_exec_run(e2, i2, p2, err, sizeof err), HLT_OK);
    const float w1[2] = {11, 22}, w2[6] = {11, 22, 13, 24, 15, 26};
    cr_assert_arr_eq(y1, w1, sizeof w1);
    cr_assert_arr_eq(y2, w2, sizeof w2);
    engine_exec_destroy(e1);
    engine_exec_destroy(e2);
    engine_exec_destroy(NULL);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(graph, folding_reports_shape_errors_at_load)
{
    /* A constant subgraph with inconsistent shapes fails when folded, naming the node. */
    mb_t *m = mb_new(13);
    const int64_t a[] = {2}, b[] = {3}, d[] = {2};
    const int64_t va[] = {1, 2}, vb[] = {1, 2, 3};
    mb_input(m, "x", TU_FLOAT, 1, d);
    mb_init_i64(m, "a", 1, a, va, true);
    mb_init_i64(m, "b", 1, b, vb, true);
    mb_node(m, "Add", "bad_add", "a,b", "s");
    mb_node(m, "Reshape", "r", "x,s", "y");
    mb_output(m, "y", TU_FLOAT, -1, NULL);
    char err[256] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'bad_add'") && strstr(err, "broadcast"), "%s", err);
    mb_free(m);
}

/* ---- BatchNormalization folding (passes.c) -------------------------------------------------- */

#define BN_N 6
#define BN_K 5
#define BN_C 7

typedef struct bn_ref {
    float w[BN_C * BN_K], c[BN_C], d[BN_C];
    float scale[BN_C], bias[BN_C], mean[BN_C], var[BN_C];
    float x[BN_N * BN_K];
} bn_ref_t;

static void bn_data(bn_ref_t *r, uint64_t seed)
{
    uint64_t s = seed;
    tu_fill(&s, r->w, BN_C * BN_K, -1, 1);
    tu_fill(&s, r->c, BN_C, -1, 1);
    tu_fill(&s, r->d, BN_C, -1, 1);
    tu_fill(&s, r->scale, BN_C, 0.5f, 1.5f);
    tu_fill(&s, r->bias, BN_C, -0.5f, 0.5f);
    tu_fill(&s, r->mean, BN_C, -0.5f, 0.5f);
    tu_fill(&s, r->var, BN_C, 0.2f, 2.0f);
    tu_fill(&s, r->x, BN_N * BN_K, -2, 2);
}

static void bn_inits(mb_t *m, const bn_ref_t *r)
{
    const int64_t cd[] = {BN_C};
    mb_init_f32(m, "scale", 1, cd, r->scale, false);
    mb_init_f32(m, "bnb", 1, cd, r->bias, false);
    mb_init_f32(m, "mean", 1, cd, r->mean, false);
    mb_init_f32(m, "var", 1, cd, r->var, false);
}

static int count_op(const engine_graph_t *g, op_kind op)
{
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i].op == op;
    return n;
}

enum { L_GEMM, L_GEMM_NOC, L_GEMM_BETA0, L_GEMM_ADD, L_MATMUL_ADD, L_MATMUL, L_COUNT };

/* x[N,K] -> layer (kind) -> BN(eps 1e-3) -> Relu -> y; ref: float64 of the unfolded graph. */
static mb_t *bn_model(int kind, const bn_ref_t *r, double *ref, double *mag)
{
    mb_t *m = mb_new(15);
    const int64_t xd[] = {-1, BN_K}, yd[] = {-1, BN_C}, wt[] = {BN_C, BN_K}, cd[] = {BN_C},
                  rowd[] = {1, BN_C};
    const bool gemm = kind <= L_GEMM_ADD, tb = kind != L_GEMM_NOC;
    const float alpha = kind == L_GEMM ? 0.5f : 1.0f, beta = kind == L_GEMM ? 2.0f : 1.0f;
    float w[BN_C * BN_K];
    /* stored [C,K] with transB, else [K,C] */
    for (int j = 0; j < BN_C; j++)
        for (int p = 0; p < BN_K; p++)
            w[tb && gemm ? j * BN_K + p : p * BN_C + j] = r->w[j * BN_K + p];
    mb_input(m, "x", TU_FLOAT, 2, xd);
    const int64_t wd[] = {BN_K, BN_C};
    mb_init_f32(m, "w", 2, tb && gemm ? wt : wd, w, false);
    float cnan[BN_C];
    for (int j = 0; j < BN_C; j++)
        cnan[j] = NAN;
    if (kind == L_GEMM || kind == L_GEMM_ADD)
        mb_init_f32(m, "c", kind == L_GEMM ? 2 : 1, kind == L_GEMM ? rowd : cd, r->c, false);
    if (kind == L_GEMM_BETA0)
        mb_init_f32(m, "c", 1, cd, cnan, false);
    if (kind == L_GEMM_ADD || kind == L_MATMUL_ADD)
        mb_init_f32(m, "d", 1, cd, r->d, false);
    bn_inits(m, r);
    const char *lin_in = kind == L_GEMM || kind == L_GEMM_ADD || kind == L_GEMM_BETA0 ? "x,w,c" : "x,w";
    const bool add = kind == L_GEMM_ADD || kind == L_MATMUL_ADD;
    if (gemm) {
        Onnx__NodeProto *n = mb_node(m, "Gemm", "fc", lin_in, "h");
        mb_attr_int(n, "transB", tb);
        mb_attr_float(n, "alpha", alpha);
        mb_attr_float(n, "beta", kind == L_GEMM_BETA0 ? 0.0f : beta);
    } else {
        mb_node(m, "MatMul", "fc", "x,w", "h");
    }
    if (add)
        mb_node(m, "Add", "add", kind == L_MATMUL_ADD ? "d,h" : "h,d", "h2");
    mb_attr_float(mb_node(m, "BatchNormalization", "bn", add ? "h2,scale,bnb,mean,var"
                                                                : "h,scale,bnb,mean,var",
                          "z"),
                  "epsilon", 1e-3f);
    mb_node(m, "Relu", "act", "z", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    for (int i = 0; i < BN_N; i++)
        for (int j = 0; j < BN_C; j++) {
            double acc = 0, am = 0;
            for (int p = 0; p < BN_K; p++) {
                const double v = (double)r->x[i * BN_K + p] * r->w[j * BN_K + p];
                acc += v;
                am += fabs(v);
            }
            acc *= alpha;
            am *= fabs(alpha);
            if (kind == L_GEMM || kind == L_GEMM_ADD)
                acc += (double)beta * r->c[j], am += fabs(beta * r->c[j]);
            if (add)
                acc += r->d[j], am += fabs(r->d[j]);
            const double s = r->scale[j] / sqrt((double)r->var[j] + 1e-3);
            const double z = (acc - r->mean[j]) * s + r->bias[j];
            ref[i * BN_C + j] = z > 0 ? z : 0;
            mag[i * BN_C + j] = (am + fabs(r->mean[j])) * fabs(s) + fabs(r->bias[j]);
        }
    return m;
}

static void run_bn_model(mb_t *m, const bn_ref_t *r, const double *ref, const double *mag,
                         const char *what)
{
    const int64_t xd[] = {BN_N, BN_K};
    engine_shape_t in = tu_shape(2, xd), out[2];
    const void *inp[] = {r->x};
    void *o[2] = {NULL, NULL}; /* the second output, when the model has one, is freed too */
    tu_run(m, &in, inp, out, o);
    cr_assert_eq(out[0].dims[0], BN_N);
    cr_assert_eq(out[0].dims[1], BN_C);
    tu_close(what, o[0], ref, mag, BN_N * BN_C, TU_REL, TU_ABS);
    free(o[0]);
    free(o[1]);
}

Test(graph, folds_batchnorm_into_the_layer_before_it)
{
    static const char *const names[] = {"Gemm(transB, C [1,C], alpha, beta)", "Gemm without C",
                                        "Gemm beta 0 (C ignored)", "Gemm + Add",
                                        "MatMul + Add(d, h)", "MatMul"};
    for (int kind = 0; kind < L_COUNT; kind++) {
        bn_ref_t r;
        bn_data(&r, (uint64_t)kind + 100);
        double ref[BN_N * BN_C], mag[BN_N * BN_C];
        mb_t *m = bn_model(kind, &r, ref, mag);
        engine_graph_t *g = load(m);
        cr_assert_eq(count_op(g, OP_BATCHNORM), 0, "%s: BN left in the graph", names[kind]);
        /* Gemm -> Relu; Gemm|MatMul -> Add -> Relu; MatMul -> Add(BN turned into it) -> Relu */
        const int want = kind <= L_GEMM_BETA0 ? 2 : 3;
        cr_assert_eq(g->n_nodes, want, "%s: %d nodes", names[kind], g->n_nodes);
        engine_graph_destroy(g);
        run_bn_model(m, &r, ref, mag, names[kind]);
        mb_free(m);
    }
}

Test(graph, keeps_batchnorm_it_cannot_fold)
{
    /* The layer's output is also a graph output: folding would change it. */
    bn_ref_t r;
    bn_data(&r, 7);
    double ref[BN_N * BN_C], mag[BN_N * BN_C];
    mb_t *m = bn_model(L_GEMM_NOC, &r, ref, mag);
    const int64_t yd[] = {-1, BN_C};
    mb_output(m, "h", TU_FLOAT, 2, yd);
    engine_graph_t *g = load(m);
    cr_assert_eq(count_op(g, OP_BATCHNORM), 1);
    engine_graph_destroy(g);
    run_bn_model(m, &r, ref, mag, "BN after a Gemm whose output is also read");
    mb_free(m);

    /* MatMul on [N,T,K]: BN's channels are T, not the layer's columns. */
    m = mb_new(15);
    const int64_t xd[] = {-1, BN_C, BN_K}, wd[] = {BN_K, BN_C}, y3[] = {-1, BN_C, BN_C};
    mb_input(m, "x", TU_FLOAT, 3, xd);
    mb_init_f32(m, "w", 2, wd, r.w, false);
    bn_inits(m, &r);
    mb_node(m, "MatMul", "fc", "x,w", "h");
    mb_node(m, "BatchNormalization", "bn", "h,scale,bnb,mean,var", "y");
    mb_output(m, "y", TU_FLOAT, 3, y3);
    g = load(m);
    cr_assert_eq(count_op(g, OP_BATCHNORM), 1);
    engine_graph_destroy(g);
    float x[2 * BN_C * BN_K];
    uint64_t s = 5;
    tu_fill(&s, x, 2 * BN_C * BN_K, -1, 1);
    double want[2 * BN_C * BN_C], wm[2 * BN_C * BN_C];
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < BN_C; t++)
            for (int j = 0; j < BN_C; j++) {
                double acc = 0, am = 0;
                for (int p = 0; p < BN_K; p++) {
                    const double v = (double)x[(b * BN_C + t) * BN_K + p] * r.w[p * BN_C + j];
                    acc += v;
                    am += fabs(v);
                }
                const double sc = r.scale[t] / sqrt((double)r.var[t] + 1e-5);
                want[(b * BN_C + t) * BN_C + j] = (acc - r.mean[t]) * sc + r.bias[t];
                wm[(b * BN_C + t) * BN_C + j] = (am + fabs(r.mean[t])) * fabs(sc) + fabs(r.bias[t]);
            }
    const int64_t in3[] = {2, BN_C, BN_K};
    engine_shape_t in = tu_shape(3, in3), out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    tu_close("MatMul [N,T,K] + BN over T", o[0], want, wm, 2 * BN_C * BN_C, TU_REL, TU_ABS);
    free(o[0]);
    mb_free(m);
}

Test(graph, folding_leaves_shared_weights_intact)
{
    /* Two Gemms share W and C; only the first is followed by BN. */
    bn_ref_t r;
    bn_data(&r, 9);
    double ref[BN_N * BN_C], mag[BN_N * BN_C];
    mb_t *m = bn_model(L_GEMM, &r, ref, mag);
    Onnx__NodeProto *n = mb_node(m, "Gemm", "fc_b", "x,w,c", "y2");
    mb_attr_int(n, "transB", 1);
    const int64_t yd[] = {-1, BN_C};
    mb_output(m, "y2", TU_FLOAT, 2, yd);
    engine_graph_t *g = load(m);
    cr_assert_eq(count_op(g, OP_BATCHNORM), 0);
    cr_assert_eq(count_op(g, OP_GEMM), 2);
    const int32_t w0 = graph_find(g, "w");
    int uses = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        uses += g->nodes[i].op == OP_GEMM && g->nodes[i].in[1] == w0;
    cr_assert_eq(uses, 1, "the unfolded Gemm keeps the original weight, the folded one a copy");
    engine_graph_destroy(g);
    const int64_t xd[] = {BN_N, BN_K};
    engine_shape_t in = tu_shape(2, xd), out[2];
    const void *inp[] = {r.x};
    void *o[2];
    tu_run(m, &in, inp, out, o);
    tu_close("folded Gemm", o[0], ref, mag, BN_N * BN_C, TU_REL, TU_ABS);
    double want[BN_N * BN_C], wm[BN_N * BN_C];
    for (int i = 0; i < BN_N; i++)
        for (int j = 0; j < BN_C; j++) {
            double acc = r.c[j], am = fabs(r.c[j]);
            for (int p = 0; p < BN_K; p++) {
                acc += (double)r.x[i * BN_K + p] * r.w[j * BN_K + p];
                am += fabs((double)r.x[i * BN_K + p] * r.w[j * BN_K + p]);
            }
            want[i * BN_C + j] = acc;
            wm[i * BN_C + j] = am;
        }
    tu_close("Gemm sharing the weight", o[1], want, wm, BN_N * BN_C, TU_REL, TU_ABS);
    free(o[0]);
    free(o[1]);
    mb_free(m);
}
