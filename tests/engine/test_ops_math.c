/* Compute ops (ops_math.c) through the whole engine, one single-node graph per case, against
 * float64 references written here from the ONNX operator definitions.
 *
 * Tolerances: elementwise ops and activations |got - ref| <= 1e-5 |ref| + 1e-6; reductions
 * (Gemm, MatMul, Softmax's sum) relative to the magnitude of the terms, |got - ref| <= 1e-5 *
 * sum|terms| + 1e-6, which is the bound float32 accumulation can honour whatever the order. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static float *rnd(uint64_t *s, int64_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    cr_assert_not_null(x);
    tu_fill(s, x, n, lo, hi);
    return x;
}

static double *dalloc(int64_t n)
{
    double *x = calloc((size_t)(n ? n : 1), sizeof(double));
    cr_assert_not_null(x);
    return x;
}

static int64_t prod(int32_t r, const int64_t *d)
{
    int64_t n = 1;
    for (int32_t i = 0; i < r; i++)
        n *= d[i];
    return n;
}

/* ---- Gemm ------------------------------------------------------------------------------ */

/* c_rank -1: no C. */
static void check_gemm(int64_t m, int64_t n, int64_t k, bool ta, bool tb, float alpha, float beta,
                       int32_t c_rank, const int64_t *cd)
{
    uint64_t s = (uint64_t)(m * 1000003 + n * 1009 + k * 7 + ta * 2 + tb);
    const int64_t ad[2] = {ta ? k : m, ta ? m : k}, bd[2] = {tb ? n : k, tb ? k : n};
    float *a = rnd(&s, m * k, -1, 1), *b = rnd(&s, k * n, -1, 1);
    const int64_t cn = c_rank >= 0 ? prod(c_rank, cd) : 0;
    float *c = rnd(&s, cn, -1, 1);
    mb_t *mb = mb_new(13);
    mb_input(mb, "A", TU_FLOAT, 2, ad);
    mb_init_f32(mb, "B", 2, bd, b, false);
    if (c_rank >= 0)
        mb_init_f32(mb, "C", c_rank, cd, c, false);
    Onnx__NodeProto *node = mb_node(mb, "Gemm", "gemm", c_rank >= 0 ? "A,B,C" : "A,B", "Y");
    mb_attr_float(node, "alpha", alpha);
    mb_attr_float(node, "beta", beta);
    mb_attr_int(node, "transA", ta);
    mb_attr_int(node, "transB", tb);
    const int64_t yd[2] = {m, n};
    mb_output(mb, "Y", TU_FLOAT, 2, yd);
    double *ref = dalloc(m * n), *mag = dalloc(m * n);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0, am = 0;
            for (int64_t p = 0; p < k; p++) {
                const double av = ta ? a[p * m + i] : a[i * k + p];
                const double bv = tb ? b[j * k + p] : b[p * n + j];
                acc += av * bv;
                am += fabs(av * bv);
            }
            double cv = 0;
            if (c_rank >= 0) {
                const int64_t c0 = c_rank == 2 ? cd[0] : 1, c1 = c_rank >= 1 ? cd[c_rank - 1] : 1;
                cv = c[(c0 == 1 ? 0 : i) * c1 + (c1 == 1 ? 0 : j)];
            }
            ref[i * n + j] = alpha * acc + beta * cv;
            mag[i * n + j] = fabs(alpha) * am + fabs(beta * cv);
        }
    engine_shape_t in = tu_shape(2, ad), out;
    const void *inp[] = {a};
    void *o[1];
    tu_run(mb, &in, inp, &out, o);
    cr_assert_eq(out.dims[0], m);
    cr_assert_eq(out.dims[1], n);
    char what[128];
    snprintf(what, sizeof what, "Gemm m=%lld n=%lld k=%lld tA=%d tB=%d C rank %d", (long long)m,
             (long long)n, (long long)k, ta, tb, c_rank);
    tu_close(what, o[0], ref, mag, m * n, TU_REL, TU_ABS);
    free(o[0]);
    free(a);
    free(b);
    free(c);
    free(ref);
    free(mag);
    mb_free(mb);
}

Test(ops_math, gemm_pytorch_linear_shapes)
{
    const int64_t bias_n[] = {33};
    /* batch 1 (our kernel), batch 2, odd sizes, and sizes on the OpenBLAS path */
    check_gemm(1, 33, 17, false, true, 1.0f, 1.0f, 1, bias_n);
    check_gemm(2, 33, 64, false, true, 1.0f, 1.0f, 1, bias_n);
    check_gemm(7, 33, 5, false, true, 1.0f, 1.0f, 1, bias_n);
    check_gemm(64, 33, 130, false, true, 1.0f, 1.0f, 1, bias_n);
    check_gemm(1, 1024, 1000, false, true, 1.0f, 1.0f, -1, NULL); /* ours on every core */
}

Test(ops_math, gemm_all_transpose_combinations)
{
    const int64_t cd[] = {9, 11};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(9, 11, 13, ta, tb, 0.75f, -0.5f, 2, cd);
            check_gemm(1, 11, 40, ta, tb, 1.0f, 1.0f, -1, NULL);
            check_gemm(40, 70, 31, ta, tb, 1.25f, 2.0f, -1, NULL);
        }
}

Test(ops_math, gemm_c_broadcasts_unidirectionally)
{
    const int64_t scalar[] = {0}, one_one[] = {1, 1}, row[] = {1, 6}, vec[] = {6}, col[] = {5, 1},
                  full[] = {5, 6};
    check_gemm(5, 6, 4, false, false, 1.0f, 1.0f, 0, scalar);
    check_gemm(5, 6, 4, false, false, 1.0f, 0.5f, 2, one_one);
    check_gemm(5, 6, 4, false, false, 1.0f, 1.0f, 2, row);
    check_gemm(5, 6, 4, false, false, 1.0f, 1.0f, 1, vec);
    check_gemm(5, 6, 4, false, false, 2.0f, -1.0f, 2, col);
    check_gemm(5, 6, 4, false, false, 1.0f, 3.0f, 2, full);
    check_gemm(5, 6, 4, false, false, 1.0f, 0.0f, 2, full); /* beta 0 ignores C */
}

/* ---- MatMul ---------------------------------------------------------------------------- */

static void check_matmul(int32_t ra, const int64_t *ad, int32_t rb, const int64_t *bd, bool b_const)
{
    uint64_t s = (uint64_t)(ra * 31 + rb * 7 + ad[ra - 1] * 101 + bd[0]);
    const int64_t na = prod(ra, ad), nb = prod(rb, bd);
    float *a = rnd(&s, na, -1, 1), *b = rnd(&s, nb, -1, 1);
    /* numpy semantics, written out: promote 1-D operands, broadcast batch dims */
    int64_t A[8], B[8];
    int32_t pa = ra, pb = rb;
    memcpy(A, ad, sizeof(int64_t) * (size_t)ra);
    memcpy(B, bd, sizeof(int64_t) * (size_t)rb);
    if (ra == 1) {
        A[0] = 1;
        A[1] = ad[0];
        pa = 2;
    }
    if (rb == 1) {
        B[0] = bd[0];
        B[1] = 1;
        pb = 2;
    }
    const int64_t m = A[pa - 2], k = A[pa - 1], n = B[pb - 1];
    const int32_t br = (pa > pb ? pa : pb) - 2;
    int64_t bdims[8] = {0};
    for (int32_t i = 0; i < br; i++) {
        const int32_t ia = i - (br - (pa - 2)), ib = i - (br - (pb - 2));
        const int64_t x = ia >= 0 ? A[ia] : 1, y = ib >= 0 ? B[ib] : 1;
        cr_assert(x == y || x == 1 || y == 1);
        bdims[i] = x == 1 ? y : x;
    }
    const int64_t nbatch = prod(br, bdims);
    double *ref = dalloc(nbatch * m * n), *mag = dalloc(nbatch * m * n);
    for (int64_t t = 0; t < nbatch; t++) {
        /* batch index -> offsets into A and B */
        int64_t rem = t, oa = 0, ob = 0, sa = m * k, sb = k * n;
        for (int32_t i = br - 1; i >= 0; i--) {
            const int64_t idx = rem % bdims[i];
            rem /= bdims[i];
            const int32_t ia = i - (br - (pa - 2)), ib = i - (br - (pb - 2));
            if (ia >= 0) {
                oa += (A[ia] == 1 ? 0 : idx) * sa;
                sa *= A[ia];
            }
            if (ib >= 0) {
                ob += (B[ib] == 1 ? 0 : idx) * sb;
                sb *= B[ib];
            }
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0, am = 0;
                for (int64_t p = 0; p < k; p++) {
                    const double v = (double)a[oa + i * k + p] * b[ob + p * n + j];
                    acc += v;
                    am += fabs(v);
                }
                ref[(t * m + i) * n + j] = acc;
                mag[(t * m + i) * n + j] = am;
            }
    }
    mb_t *mb = mb_new(13);
    mb_input(mb, "A", TU_FLOAT, ra, ad);
    if (b_const)
        mb_init_f32(mb, "B", rb, bd, b, false);
    else
        mb_input(mb, "B", TU_FLOAT, rb, bd);
    mb_node(mb, "MatMul", "mm", "A,B", "Y");
    mb_output(mb, "Y", TU_FLOAT, -1, NULL);
    engine_shape_t in[2] = {tu_shape(ra, ad), tu_shape(rb, bd)}, out;
    const void *inp[] = {a, b};
    void *o[1];
    tu_run(mb, in, inp, &out, o);
    /* expected output shape: batch + [m] unless A was 1-D + [n] unless B was 1-D */
    int32_t yr = br;
    int64_t yd[8];
    memcpy(yd, bdims, sizeof(int64_t) * (size_t)br);
    if (ra > 1)
        yd[yr++] = m;
    if (rb > 1)
        yd[yr++] = n;
    cr_assert_eq(out.rank, yr);
    for (int32_t i = 0; i < yr; i++)
        cr_assert_eq(out.dims[i], yd[i], "dim %d", i);
    tu_close("MatMul", o[0], ref, mag, nbatch * m * n, TU_REL, TU_ABS);
    free(o[0]);
    free(a);
    free(b);
    free(ref);
    free(mag);
    mb_free(mb);
}

Test(ops_math, matmul_2d_including_batch_one)
{
    const int64_t a1[] = {1, 24}, a2[] = {3, 24}, a3[] = {70, 24}, b[] = {24, 19};
    check_matmul(2, a1, 2, b, true);
    check_matmul(2, a2, 2, b, true);
    check_matmul(2, a3, 2, b, true);
}

Test(ops_math, matmul_batched_and_broadcast)
{
    const int64_t a[] = {4, 5, 8}, w[] = {8, 3}, b[] = {4, 8, 6}, a4[] = {2, 1, 3, 8},
                  b3[] = {5, 8, 2}, b1[] = {1, 8, 6};
    check_matmul(3, a, 2, w, true);    /* one GEMM over all rows */
    check_matmul(3, a, 3, b, false);   /* per batch */
    check_matmul(4, a4, 3, b3, false); /* [2,1,3,8] x [5,8,2] -> [2,5,3,2] */
    check_matmul(3, a, 3, b1, true);   /* B batch of one */
    const int64_t a2[] = {5, 8};
    check_matmul(2, a2, 3, b, false); /* [5,8] x [4,8,6] -> [4,5,6], A shared */
}

Test(ops_math, matmul_one_dimensional_operands)
{
    const int64_t v[] = {8}, mat[] = {8, 5}, a[] = {3, 8}, bat[] = {2, 8, 4};
    check_matmul(1, v, 2, mat, true); /* [8] x [8,5] -> [5] */
    check_matmul(2, a, 1, v, true);   /* [3,8] x [8] -> [3] */
    check_matmul(1, v, 1, v, false);  /* dot -> [] */
    check_matmul(1, v, 3, bat, true); /* [8] x [2,8,4] -> [2,4] */
}

/* ---- Add, Sub, Mul, Div ---------------------------------------------------------------- */

static double ref_op(const char *op, double x, double y)
{
    switch (op[0]) {
    case 'A':
        return x + y;
    case 'S':
        return x - y;
    case 'M':
        return x * y;
    default:
        return x / y;
    }
}

/* Reference broadcasting by explicit index arithmetic on the output multi-index. */
static void check_binary(const char *op, int32_t ra, const int64_t *ad, int32_t rb,
                         const int64_t *bd, bool b_const)
{
    uint64_t s = (uint64_t)(op[0] * 131 + ra * 17 + rb);
    const int64_t na = prod(ra, ad), nb = prod(rb, bd);
    float *a = rnd(&s, na, -2, 2), *b = rnd(&s, nb, 0.5f, 2.5f); /* b away from 0 for Div */
    const int32_t ry = ra > rb ? ra : rb;
    int64_t yd[8];
    for (int32_t i = 0; i < ry; i++) {
        const int64_t x = i - (ry - ra) >= 0 ? ad[i - (ry - ra)] : 1;
        const int64_t y = i - (ry - rb) >= 0 ? bd[i - (ry - rb)] : 1;
        yd[i] = x == 1 ? y : x;
    }
    const int64_t ny = prod(ry, yd);
    double *ref = dalloc(ny);
    for (int64_t t = 0; t < ny; t++) {
        int64_t rem = t, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int32_t i = ry - 1; i >= 0; i--) {
            const int64_t idx = rem % yd[i];
            rem /= yd[i];
            const int32_t ka = i - (ry - ra), kb = i - (ry - rb);
            if (ka >= 0) {
                ia += (ad[ka] == 1 ? 0 : idx) * sa;
                sa *= ad[ka];
            }
            if (kb >= 0) {
                ib += (bd[kb] == 1 ? 0 : idx) * sb;
                sb *= bd[kb];
            }
        }
        ref[t] = ref_op(op, a[ia], b[ib]);
    }
    mb_t *mb = mb_new(13);
    mb_input(mb, "a", TU_FLOAT, ra, ad);
    if (b_const)
        mb_init_f32(mb, "b", rb, bd, b, false);
    else
        mb_input(mb, "b", TU_FLOAT, rb, bd);
    mb_node(mb, op, "op", "a,b", "y");
    mb_output(mb, "y", TU_FLOAT, ry, yd);
    engine_shape_t in[2] = {tu_shape(ra, ad), tu_shape(rb, bd)}, out;
    const void *inp[] = {a, b};
    void *o[1];
    tu_run(mb, in, inp, &out, o);
    cr_assert_eq(out.rank, ry);
    for (int32_t i = 0; i < ry; i++)
        cr_assert_eq(out.dims[i], yd[i]);
    char what[64];
    snprintf(what, sizeof what, "%s rank %d by rank %d", op, ra, rb);
    tu_close(what, o[0], ref, NULL, ny, TU_REL, TU_ABS);
    free(o[0]);
    free(a);
    free(b);
    free(ref);
    mb_free(mb);
}

static const char *const binops[] = {"Add", "Sub", "Mul", "Div"};

Test(ops_math, binary_same_shape)
{
    const int64_t d1[] = {1}, d2[] = {7, 33}, d3[] = {1, 3, 1000};
    for (int i = 0; i < 4; i++) {
        check_binary(binops[i], 1, d1, 1, d1, false);
        check_binary(binops[i], 2, d2, 2, d2, false);
        check_binary(binops[i], 3, d3, 3, d3, true);
    }
}

Test(ops_math, binary_bias_row_and_column_broadcast)
{
    const int64_t x[] = {5, 37}, row[] = {37}, row2[] = {1, 37}, col[] = {5, 1}, sc[] = {0};
    for (int i = 0; i < 4; i++) {
        check_binary(binops[i], 2, x, 1, row, true);
        check_binary(binops[i], 2, x, 2, row2, true);
        check_binary(binops[i], 2, x, 2, col, true);
        check_binary(binops[i], 2, x, 0, sc, true);
        check_binary(binops[i], 0, sc, 2, x, false); /* scalar on the left */
    }
}

Test(ops_math, binary_multidirectional_broadcast)
{
    const int64_t a[] = {3, 1, 5}, b[] = {1, 4, 1}, c[] = {2, 3, 4, 5}, d[] = {3, 1, 1},
                  e[] = {4, 6, 10}, f[] = {6, 1};
    for (int i = 0; i < 4; i++) {
        check_binary(binops[i], 3, a, 3, b, false);
        check_binary(binops[i], 4, c, 3, d, false);
        check_binary(binops[i], 3, e, 2, f, true); /* [N,C,L] + [C,1] */
        check_binary(binops[i], 2, f, 3, e, false);
    }
}

Test(ops_math, binary_int64_for_shape_arithmetic)
{
    mb_t *mb = mb_new(13);
    const int64_t d[] = {4}, one[] = {1};
    const int64_t a[] = {10, -7, 9, 100}, b[] = {3};
    mb_input(mb, "a", TU_INT64, 1, d);
    mb_init_i64(mb, "b", 1, one, b, true);
    mb_node(mb, "Div", "div", "a,b", "q");
    mb_node(mb, "Mul", "mul", "q,b", "p");
    mb_node(mb, "Sub", "sub", "a,p", "r");
    mb_output(mb, "q", TU_INT64, 1, d);
    mb_output(mb, "r", TU_INT64, 1, d);
    engine_shape_t in = tu_shape(1, d), out[2];
    const void *inp[] = {a};
    void *o[2];
    tu_run(mb, &in, inp, out, o);
    const int64_t q[] = {3, -2, 3, 33}, r[] = {1, -1, 0, 1}; /* truncating division */
    cr_assert_arr_eq(o[0], q, sizeof q);
    cr_assert_arr_eq(o[1], r, sizeof r);
    free(o[0]);
    free(o[1]);
    mb_free(mb);
}

/* ---- activations ----------------------------------------------------------------------- */

static void check_unary(const char *op, int64_t n, float lo, float hi, float alpha)
{
    uint64_t s = (uint64_t)(op[0] * 7 + n);
    float *x = rnd(&s, n, lo, hi);
    if (n > 3) {
        x[0] = 0.0f;
        x[1] = lo;
        x[2] = hi;
    }
    double *ref = dalloc(n);
    for (int64_t i = 0; i < n; i++) {
        const double v = x[i];
        if (strcmp(op, "Relu") == 0)
            ref[i] = v > 0 ? v : 0;
        else if (strcmp(op, "LeakyRelu") == 0)
            ref[i] = v >= 0 ? v : (double)alpha * v;
        else if (strcmp(op, "Sigmoid") == 0)
            ref[i] = 1.0 / (1.0 + exp(-v));
        else
            ref[i] = tanh(v);
    }
    mb_t *mb = mb_new(13);
    const int64_t d[] = {n};
    mb_input(mb, "x", TU_FLOAT, 1, d);
    Onnx__NodeProto *node = mb_node(mb, op, "act", "x", "y");
    if (alpha != 0.01f && strcmp(op, "LeakyRelu") == 0)
        mb_attr_float(node, "alpha", alpha);
    mb_output(mb, "y", TU_FLOAT, 1, d);
    engine_shape_t in = tu_shape(1, d), out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(mb, &in, inp, &out, o);
    char what[64];
    snprintf(what, sizeof what, "%s n=%lld on [%g,%g]", op, (long long)n, lo, hi);
    tu_close(what, o[0], ref, NULL, n, TU_REL, TU_ABS);
    free(o[0]);
    free(x);
    free(ref);
    mb_free(mb);
}

Test(ops_math, relu_and_leaky_relu)
{
    check_unary("Relu", 1, -1, 1, 0);
    check_unary("Relu", 1001, -5, 5, 0);
    check_unary("LeakyRelu", 37, -5, 5, 0.01f); /* default alpha */
    check_unary("LeakyRelu", 1001, -5, 5, 0.2f);
}

Test(ops_math, sigmoid_and_tanh_full_range)
{
    check_unary("Sigmoid", 1, -1, 1, 0);
    check_unary("Sigmoid", 4099, -20, 20, 0);
    check_unary("Sigmoid", 257, -0.01f, 0.01f, 0);
    check_unary("Sigmoid", 333, -85, -20, 0); /* the tail keeps relative precision */
    check_unary("Tanh", 1, -1, 1, 0);
    check_unary("Tanh", 4099, -12, 12, 0);
    check_unary("Tanh", 513, -0.7f, 0.7f, 0); /* both sides of the polynomial switch */
    check_unary("Tanh", 129, -1e-4f, 1e-4f, 0);
}

/* ---- Softmax --------------------------------------------------------------------------- */

/* opset < 13: rows are everything from axis on; opset >= 13: the single axis. */
static void check_softmax(int64_t opset, int32_t r, const int64_t *d, int64_t axis, bool set_axis,
                          float scale)
{
    uint64_t s = (uint64_t)(opset * 13 + r * 5 + axis + 100);
    const int64_t n = prod(r, d);
    float *x = rnd(&s, n, -scale, scale);
    const int64_t def = opset < 13 ? 1 : -1;
    const int64_t ax =
        (set_axis ? axis : def) < 0 ? (set_axis ? axis : def) + r : (set_axis ? axis : def);
    double *ref = dalloc(n), *mag = dalloc(n);
    int64_t outer = prod((int32_t)ax, d), len, inner;
    if (opset < 13) {
        len = prod(r - (int32_t)ax, d + ax);
        inner = 1;
    } else {
        len = d[ax];
        inner = prod(r - (int32_t)ax - 1, d + ax + 1);
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < len; k++)
                mx = fmax(mx, x[(o * len + k) * inner + j]);
            for (int64_t k = 0; k < len; k++)
                sum += exp(x[(o * len + k) * inner + j] - mx);
            for (int64_t k = 0; k < len; k++) {
                const int64_t i = (o * len + k) * inner + j;
                ref[i] = exp(x[i] - mx) / sum;
                mag[i] = ref[i];
            }
        }
    mb_t *mb = mb_new(opset);
    mb_input(mb, "x", TU_FLOAT, r, d);
    Onnx__NodeProto *node = mb_node(mb, "Softmax", "sm", "x", "y");
    if (set_axis)
        mb_attr_int(node, "axis", axis);
    mb_output(mb, "y", TU_FLOAT, r, d);
    engine_shape_t in = tu_shape(r, d), out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(mb, &in, inp, &out, o);
    char what[96];
    snprintf(what, sizeof what, "Softmax opset %lld axis %lld%s", (long long)opset,
             (long long)(set_axis ? axis : def), set_axis ? "" : " (default)");
    tu_close(what, o[0], ref, mag, n, TU_REL, TU_ABS);
    free(o[0]);
    free(x);
    free(ref);
    free(mag);
    mb_free(mb);
}

Test(ops_math, softmax_opset11_coerces_to_2d)
{
    const int64_t d[] = {2, 3, 5};
    check_softmax(11, 3, d, 1, false, 3); /* default axis 1: rows of 15 */
    for (int64_t a = -3; a < 3; a++)
        check_softmax(11, 3, d, a, true, 3);
}

Test(ops_math, softmax_opset13_uses_one_axis)
{
    const int64_t d[] = {2, 3, 5}, big[] = {1, 4099};
    check_softmax(13, 3, d, -1, false, 3); /* default axis -1 */
    for (int64_t a = -3; a < 3; a++)
        check_softmax(13, 3, d, a, true, 3);
    check_softmax(13, 2, big, 1, true, 80); /* large logits: max subtraction keeps it finite */
}

Test(ops_math, softmax_semantics_differ_between_opsets)
{
    /* The same node on the same data: axis=1 on [2,3,5] normalises 15 values before 13 and 3
     * after; the results must differ. */
    const int64_t d[] = {2, 3, 5};
    float x[30];
    uint64_t s = 5;
    tu_fill(&s, x, 30, -1, 1);
    void *o11[1], *o13[1];
    engine_shape_t in = tu_shape(3, d), out;
    const void *inp[] = {x};
    for (int v = 0; v < 2; v++) {
        mb_t *mb = mb_new(v ? 13 : 11);
        mb_input(mb, "x", TU_FLOAT, 3, d);
        mb_attr_int(mb_node(mb, "Softmax", "sm", "x", "y"), "axis", 1);
        mb_output(mb, "y", TU_FLOAT, 3, d);
        tu_run(mb, &in, inp, &out, v ? o13 : o11);
        mb_free(mb);
    }
    double sum11 = 0, sum13 = 0;
    for (int i = 0; i < 15; i++)
        sum11 += ((float *)o11[0])[i];
    for (int i = 0; i < 3; i++)
        sum13 += ((float *)o13[0])[i * 5];
    cr_assert_float_eq(sum11, 1.0, 1e-5);
    cr_assert_float_eq(sum13, 1.0, 1e-5);
    free(o11[0]);
    free(o13[0]);
}

/* ---- BatchNormalization ---------------------------------------------------------------- */

static void check_batchnorm(int32_t r, const int64_t *d, float eps)
{
    uint64_t s = (uint64_t)(r * 3 + d[0] * 11 + d[1]);
    const int64_t n = prod(r, d), c = d[1];
    float *x = rnd(&s, n, -3, 3), *sc = rnd(&s, c, 0.5f, 1.5f), *bi = rnd(&s, c, -1, 1);
    float *mean = rnd(&s, c, -1, 1), *var = rnd(&s, c, 0.1f, 2.0f);
    const int64_t inner = prod(r - 2, d + 2);
    double *ref = dalloc(n), *mag = dalloc(n);
    for (int64_t i = 0; i < n; i++) {
        const int64_t ch = (i / inner) % c;
        const double k = sc[ch] / sqrt((double)var[ch] + eps);
        ref[i] = (x[i] - mean[ch]) * k + bi[ch];
        mag[i] = fabs(x[i] * k) + fabs(mean[ch] * k) + fabs(bi[ch]);
    }
    mb_t *mb = mb_new(15);
    const int64_t cd[] = {c};
    mb_input(mb, "x", TU_FLOAT, r, d);
    mb_init_f32(mb, "scale", 1, cd, sc, false);
    mb_init_f32(mb, "bias", 1, cd, bi, true);
    mb_init_f32(mb, "mean", 1, cd, mean, false);
    mb_init_f32(mb, "var", 1, cd, var, false);
    Onnx__NodeProto *node = mb_node(mb, "BatchNormalization", "bn", "x,scale,bias,mean,var", "y");
    if (eps != 1e-5f)
        mb_attr_float(node, "epsilon", eps);
    mb_output(mb, "y", TU_FLOAT, r, d);
    engine_shape_t in = tu_shape(r, d), out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(mb, &in, inp, &out, o);
    tu_close("BatchNormalization", o[0], ref, mag, n, TU_REL, TU_ABS);
    free(o[0]);
    free(x);
    free(sc);
    free(bi);
    free(mean);
    free(var);
    free(ref);
    free(mag);
    mb_free(mb);
}

Test(ops_math, batchnorm_on_nc_ncl_nchw)
{
    const int64_t nc1[] = {1, 7}, nc[] = {5, 7}, ncl[] = {3, 4, 9}, nchw[] = {2, 3, 4, 5};
    check_batchnorm(2, nc1, 1e-5f);
    check_batchnorm(2, nc, 1e-3f);
    check_batchnorm(3, ncl, 1e-5f);
    check_batchnorm(4, nchw, 1e-5f);
}
