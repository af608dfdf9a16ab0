/* Every engine op on every backend the registry has a device for, compared with the CPU
 * backend (the reference), plus the example models (models/) against their committed
 * references through every backend.
 *
 * Tolerance: FP32 |got - cpu| <= 1e-4 |cpu| + 1e-5, INT64 exact (backend_util.h). Shapes: batch
 * 1, odd row counts (7, 33, 257), a large batch (4096), features 15 and 63 (odd, not multiples
 * of any vector width). Backends without a device are skipped with their reason
 * (cr_log_info); "cpu" is the reference, "xrt" runs no graphs. Graphs are built in memory with
 * the engine suites' ONNX builder (tests/engine/test_util.h); the exporter-style models of
 * tests/engine/data run at their manifest shapes. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_util.h"
#include "test_util.h"

static const int64_t ROWS[] = {1, 7, 33, 257, 4096};
#define N_ROWS 5

static engine_graph_t *load(mb_t *m)
{
    engine_graph_t *g = NULL;
    char err[512] = "";
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    mb_free(m);
    return g;
}

/* Shape sets where every input's leading dim is the row count and the rest is fixed. */
typedef struct in_spec {
    int32_t rank;
    int64_t dims[ENGINE_MAX_RANK]; /* dims[0] ignored when batched */
    bool batched;
} in_spec_t;

static int check_rows(const char *what, engine_graph_t *g, int n_in, const in_spec_t *spec,
                      float lo, float hi)
{
    engine_shape_t sets[N_ROWS][BU_MAX_IO];
    for (int r = 0; r < N_ROWS; r++)
        for (int i = 0; i < n_in; i++) {
            sets[r][i].rank = spec[i].rank;
            memcpy(sets[r][i].dims, spec[i].dims, sizeof spec[i].dims);
            if (spec[i].batched)
                sets[r][i].dims[0] = ROWS[r];
        }
    const int nb = bu_check(what, g, N_ROWS, (const engine_shape_t(*)[BU_MAX_IO])sets, lo, hi);
    engine_graph_destroy(g);
    return nb;
}

static void skip_if_none(int nb)
{
    if (nb == 0)
        cr_skip_test("no backend besides the CPU has a device");
}

static float *rnd(uint64_t seed, int64_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    cr_assert_not_null(x);
    uint64_t s = seed;
    tu_fill(&s, x, n, lo, hi);
    return x;
}

/* ---- Gemm / MatMul ---- */

/* Y = alpha * op(X) op(W) + beta * C; X [N,K] (or [K,N] with transA), W constant or an input. */
static engine_graph_t *gemm_graph(int64_t k, int64_t n, bool ta, bool tb, float alpha, float beta,
                                  int c_rank, const int64_t *cd, bool b_input)
{
    mb_t *m = mb_new(13);
    const int64_t xd[2] = {ta ? k : -1, ta ? -1 : k}, wd[2] = {tb ? n : k, tb ? k : n};
    mb_input(m, "X", TU_FLOAT, 2, xd);
    if (b_input) {
        mb_input(m, "W", TU_FLOAT, 2, wd);
    } else {
        float *w = rnd((uint64_t)(k * 31 + n), k * n, -1, 1);
        mb_init_f32(m, "W", 2, wd, w, false);
        free(w);
    }
    if (c_rank >= 0) {
        int64_t cn = 1;
        for (int i = 0; i < c_rank; i++)
            cn *= cd[i];
        float *c = rnd(7, cn, -1, 1);
        mb_init_f32(m, "C", c_rank, cd, c, false);
        free(c);
    }
    Onnx__NodeProto *node = mb_node(m, "Gemm", "gemm", c_rank >= 0 ? "X,W,C" : "X,W", "Y");
    mb_attr_float(node, "alpha", alpha);
    mb_attr_float(node, "beta", beta);
    mb_attr_int(node, "transA", ta);
    mb_attr_int(node, "transB", tb);
    const int64_t yd[2] = {-1, n};
    mb_output(m, "Y", TU_FLOAT, 2, yd);
    return load(m);
}

Test(backend_ops, gemm)
{
    static const int64_t kn[][2] = {{15, 36}, {63, 5}, {15, 1}, {63, 63}};
    int nb = 0;
    for (size_t i = 0; i < sizeof kn / sizeof kn[0]; i++) {
        const int64_t k = kn[i][0], n = kn[i][1], cd[1] = {n};
        const in_spec_t x = {2, {0, k}, true};
        char what[96];
        /* the exporters' layer: W [out, in] with transB, bias [out] */
        snprintf(what, sizeof what, "Gemm transB K=%lld N=%lld", (long long)k, (long long)n);
        nb = check_rows(what, gemm_graph(k, n, false, true, 1, 1, 1, cd, false), 1, &x, -1, 1);
        snprintf(what, sizeof what, "Gemm K=%lld N=%lld", (long long)k, (long long)n);
        const int64_t c2[2] = {1, n};
        nb = check_rows(what, gemm_graph(k, n, false, false, 0.5f, 2.0f, 2, c2, false), 1, &x, -1,
                        1);
    }
    skip_if_none(nb);
}

Test(backend_ops, gemm_transposes_and_broadcasts)
{
    const int64_t k = 15, n = 7;
    /* transA: X is [K, N] */
    engine_shape_t sets[N_ROWS][BU_MAX_IO];
    for (int r = 0; r < N_ROWS; r++)
        sets[r][0] = (engine_shape_t){2, {k, ROWS[r]}};
    const int64_t c0[1] = {1};
    engine_graph_t *g = gemm_graph(k, n, true, false, 1.5f, -1.0f, 1, c0, false);
    int nb =
        bu_check("Gemm transA, C [1]", g, N_ROWS, (const engine_shape_t(*)[BU_MAX_IO])sets, -1, 1);
    engine_graph_destroy(g);
    /* runtime W with transB (strided columns), no C; then C scalar */
    const in_spec_t xw[2] = {{2, {0, k}, true}, {2, {n, k}, false}};
    nb = check_rows("Gemm runtime W transB", gemm_graph(k, n, false, true, 1, 1, -1, NULL, true), 2,
                    xw, -1, 1);
    const in_spec_t xw2[2] = {{2, {0, k}, true}, {2, {k, n}, false}};
    nb = check_rows("Gemm runtime W, C []", gemm_graph(k, n, false, false, 1, 0.5f, 0, NULL, true),
                    2, xw2, -1, 1);
    /* C [N? rows, 1] as an input: per-row bias */
    mb_t *m = mb_new(13);
    const int64_t xd[2] = {-1, k}, wd[2] = {k, n}, cd[2] = {-1, 1}, yd[2] = {-1, n};
    mb_input(m, "X", TU_FLOAT, 2, xd);
    mb_input(m, "C", TU_FLOAT, 2, cd);
    float *w = rnd(3, k * n, -1, 1);
    mb_init_f32(m, "W", 2, wd, w, false);
    free(w);
    mb_node(m, "Gemm", "gemm", "X,W,C", "Y");
    mb_output(m, "Y", TU_FLOAT, 2, yd);
    const in_spec_t xc[2] = {{2, {0, k}, true}, {2, {0, 1}, true}};
    nb = check_rows("Gemm C [M,1]", load(m), 2, xc, -1, 1);
    skip_if_none(nb);
}

static engine_graph_t *matmul_graph(int32_t ra, const int64_t *ad, int32_t rb, const int64_t *bd,
                                    bool b_const)
{
    mb_t *m = mb_new(13);
    mb_input(m, "A", TU_FLOAT, ra, ad);
    if (b_const) {
        int64_t bn = 1;
        for (int i = 0; i < rb; i++)
            bn *= bd[i];
        float *b = rnd(11, bn, -1, 1);
        mb_init_f32(m, "B", rb, bd, b, false);
        free(b);
    } else {
        mb_input(m, "B", TU_FLOAT, rb, bd);
    }
    mb_node(m, "MatMul", "mm", "A,B", "Y");
    mb_output(m, "Y", TU_FLOAT, -1, NULL);
    return load(m);
}

Test(backend_ops, matmul)
{
    int nb;
    {
        const int64_t ad[2] = {-1, 63}, bd[2] = {63, 36};
        const in_spec_t s = {2, {0, 63}, true};
        nb = check_rows("MatMul [N,63]x[63,36]", matmul_graph(2, ad, 2, bd, true), 1, &s, -1, 1);
    }
    {
        const int64_t ad[3] = {-1, 7, 15}, bd[2] = {15, 5};
        const in_spec_t s = {3, {0, 7, 15}, true};
        nb = check_rows("MatMul [N,7,15]x[15,5]", matmul_graph(3, ad, 2, bd, true), 1, &s, -1, 1);
    }
    {
        const int64_t ad[3] = {-1, 4, 15}, bd[3] = {-1, 15, 9};
        const in_spec_t s[2] = {{3, {0, 4, 15}, true}, {3, {0, 15, 9}, true}};
        nb = check_rows("MatMul batched [N,4,15]x[N,15,9]", matmul_graph(3, ad, 3, bd, false), 2, s,
                        -1, 1);
    }
    {
        const int64_t ad[4] = {-1, 1, 3, 15}, bd[3] = {2, 15, 5};
        const in_spec_t s = {4, {0, 1, 3, 15}, true};
        nb = check_rows("MatMul broadcast [N,1,3,15]x[2,15,5]", matmul_graph(4, ad, 3, bd, true), 1,
                        &s, -1, 1);
    }
    {
        const int64_t ad[2] = {-1, 63}, bd[1] = {63};
        const in_spec_t s = {2, {0, 63}, true};
        nb = check_rows("MatMul [N,63]x[63]", matmul_graph(2, ad, 1, bd, true), 1, &s, -1, 1);
    }
    {
        const int64_t ad[1] = {15}, bd[3] = {-1, 15, 3};
        const in_spec_t s[2] = {{1, {15}, false}, {3, {0, 15, 3}, true}};
        nb = check_rows("MatMul [15]x[N,15,3]", matmul_graph(1, ad, 3, bd, false), 2, s, -1, 1);
    }
    skip_if_none(nb);
}

/* ---- elementwise ---- */

static void check_binary(const char *op, int32_t onnx_type)
{
    const int64_t f = 63;
    mb_t *m = mb_new(13);
    const int64_t xd[2] = {-1, f}, sd[2] = {-1, 1}, vd[1] = {f};
    mb_input(m, "X", onnx_type, 2, xd);
    mb_input(m, "Y", onnx_type, 2, xd);
    mb_input(m, "S", onnx_type, 2, sd);
    if (onnx_type == TU_FLOAT) {
        float *v = rnd(5, f, 0.5f, 2.0f), c = 1.75f;
        mb_init_f32(m, "V", 1, vd, v, false);
        mb_init_f32(m, "c", 0, NULL, &c, false);
        free(v);
    } else {
        int64_t v[63], c = -3;
        for (int i = 0; i < f; i++)
            v[i] = i % 2 ? i - 40 : 7 - i;
        mb_init_i64(m, "V", 1, vd, v, false);
        mb_init_i64(m, "c", 0, NULL, &c, false);
    }
    mb_node(m, op, "same", "X,Y", "o_same");
    mb_node(m, op, "row", "X,V", "o_row");
    mb_node(m, op, "col", "X,S", "o_col");
    mb_node(m, op, "rev", "V,X", "o_rev");
    mb_node(m, op, "scalar", "X,c", "o_scalar");
    mb_node(m, op, "outer", "S,V", "o_outer");
    const char *outs[] = {"o_same", "o_row", "o_col", "o_rev", "o_scalar", "o_outer"};
    for (int i = 0; i < 6; i++)
        mb_output(m, outs[i], onnx_type, -1, NULL);
    const in_spec_t s[3] = {{2, {0, f}, true}, {2, {0, f}, true}, {2, {0, 1}, true}};
    char what[64];
    snprintf(what, sizeof what, "%s %s", op, onnx_type == TU_FLOAT ? "FP32" : "INT64");
    /* [0.5, 2): Div stays away from 0; INT64 inputs are drawn in [-50, 50] (0 included). */
    int nb = check_rows(what, load(m), 3, s, 0.5f, 2.0f);
    /* 3-D broadcast both ways: [N,1,15] op [1,7,15] */
    m = mb_new(13);
    const int64_t pd[3] = {-1, 1, 15}, qd[3] = {1, 7, 15};
    mb_input(m, "P", onnx_type, 3, pd);
    mb_input(m, "Q", onnx_type, 3, qd);
    mb_node(m, op, "bc", "P,Q", "Z");
    mb_output(m, "Z", onnx_type, -1, NULL);
    const in_spec_t s3[2] = {{3, {0, 1, 15}, true}, {3, {1, 7, 15}, false}};
    snprintf(what, sizeof what, "%s %s 3-D broadcast", op,
             onnx_type == TU_FLOAT ? "FP32" : "INT64");
    nb = check_rows(what, load(m), 2, s3, 0.5f, 2.0f);
    skip_if_none(nb);
}

Test(backend_ops, add)
{
    check_binary("Add", TU_FLOAT);
}
Test(backend_ops, sub)
{
    check_binary("Sub", TU_FLOAT);
}
Test(backend_ops, mul)
{
    check_binary("Mul", TU_FLOAT);
}
Test(backend_ops, div)
{
    check_binary("Div", TU_FLOAT);
}
Test(backend_ops, int64_arithmetic)
{
    check_binary("Add", TU_INT64);
    check_binary("Sub", TU_INT64);
    check_binary("Mul", TU_INT64);
    check_binary("Div", TU_INT64);
}

static void check_unary(const char *op, float alpha, float lo, float hi)
{
    int nb = 0;
    static const int64_t feats[] = {15, 63};
    for (int i = 0; i < 2; i++) {
        mb_t *m = mb_new(13);
        const int64_t xd[2] = {-1, feats[i]};
        mb_input(m, "X", TU_FLOAT, 2, xd);
        Onnx__NodeProto *n = mb_node(m, op, "u", "X", "Y");
        if (alpha != 0)
            mb_attr_float(n, "alpha", alpha);
        mb_output(m, "Y", TU_FLOAT, 2, xd);
        const in_spec_t s = {2, {0, feats[i]}, true};
        char what[64];
        snprintf(what, sizeof what, "%s F=%lld", op, (long long)feats[i]);
        nb = check_rows(what, load(m), 1, &s, lo, hi);
    }
    skip_if_none(nb);
}

Test(backend_ops, relu)
{
    check_unary("Relu", 0, -4, 4);
}
Test(backend_ops, leaky_relu)
{
    check_unary("LeakyRelu", 0.1f, -4, 4);
    check_unary("LeakyRelu", 0, -4, 4); /* default alpha 0.01 */
}
Test(backend_ops, sigmoid)
{
    check_unary("Sigmoid", 0, -20, 20);
}
Test(backend_ops, tanh)
{
    check_unary("Tanh", 0, -6, 6);
}

/* ---- Softmax ---- */

static engine_graph_t *softmax_graph(int64_t opset, int32_t rank, const int64_t *xd, bool has_axis,
                                     int64_t axis)
{
    mb_t *m = mb_new(opset);
    mb_input(m, "X", TU_FLOAT, rank, xd);
    Onnx__NodeProto *n = mb_node(m, "Softmax", "sm", "X", "Y");
    if (has_axis)
        mb_attr_int(n, "axis", axis);
    mb_output(m, "Y", TU_FLOAT, rank, xd);
    return load(m);
}

Test(backend_ops, softmax)
{
    const int64_t d2[2] = {-1, 63}, d3[3] = {-1, 7, 15};
    const in_spec_t s2 = {2, {0, 63}, true}, s3 = {3, {0, 7, 15}, true};
    int nb =
        check_rows("Softmax opset 13 axis -1", softmax_graph(13, 2, d2, true, -1), 1, &s2, -5, 5);
    nb = check_rows("Softmax opset 13 axis 1 of 3-D (strided)", softmax_graph(13, 3, d3, true, 1),
                    1, &s3, -5, 5);
    nb = check_rows("Softmax opset 13 default axis of 3-D", softmax_graph(13, 3, d3, false, 0), 1,
                    &s3, -5, 5);
    /* opset < 13: coerced to 2-D at axis (default 1) */
    nb = check_rows("Softmax opset 11 default axis of 3-D", softmax_graph(11, 3, d3, false, 0), 1,
                    &s3, -5, 5);
    nb = check_rows("Softmax opset 11 axis 2 of 3-D", softmax_graph(11, 3, d3, true, 2), 1, &s3, -5,
                    5);
    nb = check_rows("Softmax opset 11 axis 0", softmax_graph(11, 2, d2, true, 0), 1, &s2, -5, 5);
    skip_if_none(nb);
}

/* ---- BatchNormalization ---- */

static engine_graph_t *bn_graph(int32_t rank, const int64_t *xd, int64_t c, bool scale_input)
{
    mb_t *m = mb_new(15);
    mb_input(m, "X", TU_FLOAT, rank, xd);
    const int64_t cd[1] = {c};
    if (scale_input)
        mb_input(m, "scale", TU_FLOAT, 1, cd);
    float *p = rnd((uint64_t)c, 4 * c, 0.25f, 2.0f);
    if (!scale_input)
        mb_init_f32(m, "scale", 1, cd, p, false);
    for (int64_t i = 0; i < c; i++)
        p[c + i] -= 1.0f; /* bias and mean of both signs */
    mb_init_f32(m, "B", 1, cd, p + c, false);
    mb_init_f32(m, "mean", 1, cd, p + 2 * c, false);
    mb_init_f32(m, "var", 1, cd, p + 3 * c, false);
    free(p);
    Onnx__NodeProto *n = mb_node(m, "BatchNormalization", "bn", "X,scale,B,mean,var", "Y");
    mb_attr_float(n, "epsilon", 1e-3f);
    mb_output(m, "Y", TU_FLOAT, rank, xd);
    return load(m);
}

Test(backend_ops, batchnorm)
{
    const int64_t d2[2] = {-1, 63}, d3[3] = {-1, 15, 5};
    const in_spec_t s2 = {2, {0, 63}, true}, s3 = {3, {0, 15, 5}, true};
    int nb = check_rows("BatchNormalization [N,63]", bn_graph(2, d2, 63, false), 1, &s2, -3, 3);
    nb = check_rows("BatchNormalization [N,15,5]", bn_graph(3, d3, 15, false), 1, &s3, -3, 3);
    const in_spec_t sr[2] = {{3, {0, 15, 5}, true}, {1, {15}, false}};
    /* scale computed at run time: coefficients on the device; keep scale positive */
    nb = check_rows("BatchNormalization runtime scale", bn_graph(3, d3, 15, true), 2, sr, 0.25f,
                    2.0f);
    skip_if_none(nb);
}

/* ---- views, Transpose, Concat ---- */

Test(backend_ops, views)
{
    mb_t *m = mb_new(13);
    const int64_t xd[3] = {-1, 3, 5}, shp[2] = {-1, 15}, ax1[1] = {1}, ax13[2] = {1, 3};
    mb_input(m, "X", TU_FLOAT, 3, xd);
    mb_init_i64(m, "shape", 1, (const int64_t[]){2}, shp, false);
    mb_init_i64(m, "ax1", 1, (const int64_t[]){1}, ax1, false);
    mb_init_i64(m, "ax13", 1, (const int64_t[]){2}, ax13, false);
    mb_attr_int(mb_node(m, "Flatten", "fl", "X", "f"), "axis", 1);
    mb_node(m, "Relu", "r1", "f", "y_flatten");
    mb_node(m, "Reshape", "rs", "X,shape", "r");
    mb_node(m, "Sigmoid", "s1", "r", "y_reshape");
    mb_node(m, "Unsqueeze", "us", "X,ax13", "u");
    mb_node(m, "Tanh", "t1", "u", "u2");
    mb_node(m, "Squeeze", "sq", "u2,ax13", "y_squeeze");
    mb_node(m, "Identity", "id", "X", "y_identity");
    mb_node(m, "Unsqueeze", "us2", "y_identity,ax1", "y_unsqueeze");
    const char *outs[] = {"y_flatten", "y_reshape", "y_squeeze", "y_identity", "y_unsqueeze"};
    for (int i = 0; i < 5; i++)
        mb_output(m, outs[i], TU_FLOAT, -1, NULL);
    const in_spec_t s = {3, {0, 3, 5}, true};
    skip_if_none(check_rows("Flatten/Reshape/Squeeze/Unsqueeze/Identity", load(m), 1, &s, -3, 3));
}

static engine_graph_t *transpose_graph(int32_t onnx_type, int32_t rank, const int64_t *xd,
                                       const int64_t *perm)
{
    mb_t *m = mb_new(13);
    mb_input(m, "X", onnx_type, rank, xd);
    Onnx__NodeProto *n = mb_node(m, "Transpose", "tr", "X", "Y");
    if (perm)
        mb_attr_ints(n, "perm", rank, perm);
    mb_output(m, "Y", onnx_type, -1, NULL);
    return load(m);
}

Test(backend_ops, transpose)
{
    const int64_t d2[2] = {-1, 63}, d3[3] = {-1, 3, 15}, d4[4] = {-1, 2, 3, 4};
    const int64_t p3a[3] = {2, 0, 1}, p3b[3] = {0, 2, 1}, p3c[3] = {1, 0, 2}, p4[4] = {3, 1, 0, 2};
    const in_spec_t s2 = {2, {0, 63}, true}, s3 = {3, {0, 3, 15}, true},
                    s4 = {4, {0, 2, 3, 4}, true};
    int nb = check_rows("Transpose 2-D default perm", transpose_graph(TU_FLOAT, 2, d2, NULL), 1,
                        &s2, -1, 1);
    nb = check_rows("Transpose [2,0,1]", transpose_graph(TU_FLOAT, 3, d3, p3a), 1, &s3, -1, 1);
    nb = check_rows("Transpose [0,2,1]", transpose_graph(TU_FLOAT, 3, d3, p3b), 1, &s3, -1, 1);
    nb = check_rows("Transpose [1,0,2]", transpose_graph(TU_FLOAT, 3, d3, p3c), 1, &s3, -1, 1);
    nb = check_rows("Transpose 4-D", transpose_graph(TU_FLOAT, 4, d4, p4), 1, &s4, -1, 1);
    nb = check_rows("Transpose INT64", transpose_graph(TU_INT64, 3, d3, p3a), 1, &s3, -1, 1);
    skip_if_none(nb);
}

static engine_graph_t *concat_graph(int32_t onnx_type, int n, int32_t rank, const int64_t (*d)[3],
                                    int64_t axis)
{
    mb_t *m = mb_new(13);
    char names[64] = "";
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "X%d", i);
        mb_input(m, nm, onnx_type, rank, d[i]);
        strcat(names, i ? "," : "");
        strcat(names, nm);
    }
    mb_attr_int(mb_node(m, "Concat", "cc", names, "Y"), "axis", axis);
    mb_output(m, "Y", onnx_type, -1, NULL);
    return load(m);
}

Test(backend_ops, concat)
{
    const int64_t d2[3][3] = {{-1, 15}, {-1, 63}, {-1, 1}};
    const in_spec_t s2[3] = {{2, {0, 15}, true}, {2, {0, 63}, true}, {2, {0, 1}, true}};
    int nb = check_rows("Concat axis 1", concat_graph(TU_FLOAT, 3, 2, d2, 1), 3, s2, -1, 1);
    const int64_t d0[2][3] = {{-1, 15}, {-1, 15}};
    const in_spec_t s0[2] = {{2, {0, 15}, true}, {2, {0, 15}, true}};
    nb = check_rows("Concat axis 0", concat_graph(TU_FLOAT, 2, 2, d0, 0), 2, s0, -1, 1);
    const int64_t d3[2][3] = {{-1, 3, 4}, {-1, 3, 2}};
    const in_spec_t s3[2] = {{3, {0, 3, 4}, true}, {3, {0, 3, 2}, true}};
    nb = check_rows("Concat axis -1 of 3-D", concat_graph(TU_FLOAT, 2, 3, d3, -1), 2, s3, -1, 1);
    nb = check_rows("Concat INT64 axis -1", concat_graph(TU_INT64, 2, 3, d3, -1), 2, s3, -1, 1);
    skip_if_none(nb);
}

/* ---- exporter-style models of tests/engine/data at their manifest shapes ---- */

Test(backend_ops, engine_test_models)
{
    size_t len;
    char *man = bu_read_file("tests/engine/data/manifest.txt", &len);
    cr_assert_not_null(man, "tests/engine/data/manifest.txt missing");
    engine_graph_t *g = NULL;
    engine_shape_t sets[4][BU_MAX_IO];
    int n_sets = 0, n_in = 0, models = 0, nb = 0;
    char model[256] = "";
    for (char *line = strtok(man, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "model ", 6)) {
            snprintf(model, sizeof model, "tests/engine/data/%s", line + 6);
            g = bu_load(model);
            n_sets = 0;
            models++;
        } else if (!strncmp(line, "case ", 5)) {
            n_sets++;
            n_in = 0;
            cr_assert_leq(n_sets, 4);
        } else if (!strncmp(line, "in ", 3)) {
            /* in <name> <dtype> <rank> <dims...> <file> */
            char name[64], dt[16];
            int rank, off;
            cr_assert_eq(sscanf(line + 3, "%63s %15s %d%n", name, dt, &rank, &off), 3);
            engine_shape_t *s = &sets[n_sets - 1][n_in++];
            s->rank = rank;
            const char *p = line + 3 + off;
            for (int k = 0; k < rank; k++) {
                long long v;
                int used;
                cr_assert_eq(sscanf(p, "%lld%n", &v, &used), 1);
                s->dims[k] = v;
                p += used;
            }
        } else if (!strcmp(line, "end")) {
            nb = bu_check(model, g, n_sets, (const engine_shape_t(*)[BU_MAX_IO])sets, -2, 2);
            engine_graph_destroy(g);
            g = NULL;
        }
    }
    free(man);
    cr_assert_geq(models, 12);
    skip_if_none(nb);
}

/* ---- the example models against their committed references ---- */

typedef struct ref_tensor {
    char name[64];
    engine_shape_t shape;
    float *data;
} ref_tensor_t;

static int read_refs(const char *dir, json_t *list, ref_tensor_t *out)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        cr_assert_lt(i, BU_MAX_IO);
        ref_tensor_t *t = &out[i];
        snprintf(t->name, sizeof t->name, "%s", json_string_value(json_object_get(e, "name")));
        json_t *shape = json_object_get(e, "shape");
        t->shape.rank = (int32_t)json_array_size(shape);
        for (int32_t k = 0; k < t->shape.rank; k++)
            t->shape.dims[k] = json_integer_value(json_array_get(shape, (size_t)k));
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(e, "file")));
        size_t len;
        t->data = bu_read_file(path, &len);
        cr_assert_not_null(t->data, "%s", path);
        cr_assert_eq(len, sizeof(float) * (size_t)tu_numel(&t->shape), "%s", path);
    }
    return (int)json_array_size(list);
}

/* Runs case <model>/reference/<name>.json on b (CPU included) against the reference. */
static void check_reference(const backend_i *b, const char *model, const char *name)
{
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "models/%s/reference", model);
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    size_t len;
    char *text = bu_read_file(path, &len);
    cr_assert_not_null(text, "%s", path);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", path, jerr.text);
    ref_tensor_t ins[BU_MAX_IO], outs[BU_MAX_IO];
    const int n_in = read_refs(dir, json_object_get(root, "inputs"), ins);
    const int n_out = read_refs(dir, json_object_get(root, "outputs"), outs);
    snprintf(path, sizeof path, "models/%s/1/model.onnx", model);
    engine_graph_t *g = bu_load(path);
    cr_assert_eq((int)engine_graph_num_inputs(g), n_in);
    engine_shape_t shapes[BU_MAX_IO];
    const void *in[BU_MAX_IO];
    for (int i = 0; i < n_in; i++) /* graph input order, matched by name */
        for (int j = 0; j < n_in; j++)
            if (!strcmp(engine_graph_input(g, (size_t)i)->name, ins[j].name)) {
                shapes[i] = ins[j].shape;
                in[i] = ins[j].data;
            }
    bu_inst_t bi;
    bu_inst_create(&bi, b, g);
    bu_result_t got;
    bu_run(&bi, g, shapes, in, &got, NULL);
    for (int o = 0; o < got.n; o++) {
        const char *oname = engine_graph_output(g, (size_t)o)->name;
        for (int j = 0; j < n_out; j++) {
            if (strcmp(oname, outs[j].name))
                continue;
            bu_result_t want = {
                .n = 1, .shape = {outs[j].shape}, .dtype = {HLT_TYPE_FP32}, .data = {outs[j].data}};
            bu_result_t one = {
                .n = 1, .shape = {got.shape[o]}, .dtype = {got.dtype[o]}, .data = {got.data[o]}};
            char what[256];
            snprintf(what, sizeof what, "%s %s output '%s' on %s", model, name, oname, b->name);
            bu_compare(what, &one, &want);
        }
    }
    bu_result_free(&got);
    bu_inst_destroy(&bi);
    engine_graph_destroy(g);
    for (int i = 0; i < n_in; i++)
        free(ins[i].data);
    for (int i = 0; i < n_out; i++)
        free(outs[i].data);
    json_decref(root);
    free(text);
}

static void check_model(const char *model, const char *const *cases)
{
    const backend_i *list[8];
    const int nb = bu_backends(list);
    for (const char *const *c = cases; *c; c++) {
        check_reference(&backend_cpu, model, *c);
        for (int b = 0; b < nb && b < 8; b++)
            check_reference(list[b], model, *c);
    }
    /* and at other batch sizes, against the CPU */
    char path[256];
    snprintf(path, sizeof path, "models/%s/1/model.onnx", model);
    engine_graph_t *g = bu_load(path);
    const int64_t f = engine_graph_input(g, 0)->dims[1];
    const in_spec_t s = {2, {0, f}, true};
    check_rows(model, g, 1, &s, -3, 3);
    skip_if_none(nb);
}

Test(backend_models, facile)
{
    static const char *const cases[] = {"n1", "n7", "n16000", NULL};
    check_model("facile", cases);
}

Test(backend_models, jet_tagger)
{
    static const char *const cases[] = {"batch1", "batch3", "batch64", NULL};
    check_model("jet_tagger", cases);
}
