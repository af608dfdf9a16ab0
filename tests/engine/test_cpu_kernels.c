/* hltkernels_cpu called directly (the engine suites reach them through graphs): accuracy of our
 * exp/sigmoid/tanh over their whole range and at special values, GEMM on both paths against a
 * float64 reference and against each other, broadcasting and transpose corner cases, and the
 * OpenBLAS facts the server logs. Lives in tests/engine because the kernels have no suite of
 * their own yet; it mirrors kernels/cpu/. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_binary.h"
#include "cpu_gemm.h"
#include "cpu_layout.h"
#include "cpu_unary.h"
#include "test_util.h"

static double max_rel_err(const float *got, const double *want, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - want[i]) / fabs(want[i]);
        if (e > worst)
            worst = e;
    }
    return worst;
}

Test(cpu_kernels, exp_is_accurate_over_the_float_range)
{
    const int64_t n = 200001;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    double *want = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = -87.0f + 175.0f * (float)i / (float)(n - 1); /* [-87, 88]: normal results */
        want[i] = exp((double)x[i]);
    }
    cpu_exp_f32(x, y, n);
    const double err = max_rel_err(y, want, n);
    cr_assert_lt(err, 3e-7, "max relative error %.3g", err);
    free(x);
    free(y);
    free(want);
}

Test(cpu_kernels, exp_special_values)
{
    const float x[] = {0.0f,    -0.0f,    1.0f,      89.0f, 1000.0f, INFINITY,
                       -104.0f, -1000.0f, -INFINITY, NAN,   -100.0f, 88.5f};
    float y[12];
    cpu_exp_f32(x, y, 12);
    cr_assert_eq(y[0], 1.0f);
    cr_assert_eq(y[1], 1.0f);
    cr_assert_float_eq(y[2], 2.718281828f, 1e-6);
    cr_assert(isinf(y[3]) && isinf(y[4]) && isinf(y[5]), "overflow must give +inf");
    cr_assert(y[6] < 1e-44f && y[7] == 0.0f && y[8] == 0.0f, "underflow must give 0");
    cr_assert(isnan(y[9]));
    /* subnormal result: e^-100 = 3.72e-44 is a few denormal ulps; within one of them */
    cr_assert(fabs(y[10] - exp(-100.0)) <= 1.5e-45, "e^-100 = %g", (double)y[10]);
    cr_assert_lt(fabs(y[11] - exp(88.5)) / exp(88.5), 3e-7);
}

Test(cpu_kernels, sigmoid_and_tanh_accuracy_and_limits)
{
    const int64_t n = 100001;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    double *ws = malloc(sizeof(double) * n), *wt = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = -30.0f + 60.0f * (float)i / (float)(n - 1);
        ws[i] = 1.0 / (1.0 + exp(-(double)x[i]));
        wt[i] = tanh((double)x[i]);
    }
    cpu_sigmoid_f32(x, y, n);
    double e = max_rel_err(y, ws, n);
    cr_assert_lt(e, 1e-6, "sigmoid max relative error %.3g", e);
    cpu_tanh_f32(x, y, n);
    for (int64_t i = 0; i < n; i++)
        if (x[i] == 0.0f)
            wt[i] = 1.0, y[i] = 1.0f; /* relative error undefined at 0; checked below */
    e = max_rel_err(y, wt, n);
    cr_assert_lt(e, 1e-6, "tanh max relative error %.3g", e);
    const float s[] = {INFINITY, -INFINITY, 0.0f, 1e-30f, -1e-30f};
    float o[5];
    cpu_sigmoid_f32(s, o, 5);
    cr_assert(o[0] == 1.0f && o[1] == 0.0f && o[2] == 0.5f);
    cpu_tanh_f32(s, o, 5);
    cr_assert(o[0] == 1.0f && o[1] == -1.0f && o[2] == 0.0f);
    cr_assert(o[3] == 1e-30f && o[4] == -1e-30f, "tiny tanh(x) = x");
    free(x);
    free(y);
    free(ws);
    free(wt);
}

static void gemm_ref(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, const float *c0,
                     int64_t ldc, double *ref, double *mag)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0, am = 0;
            for (int64_t p = 0; p < k; p++) {
                const double v = (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                                 (tb ? b[j * ldb + p] : b[p * ldb + j]);
                acc += v;
                am += fabs(v);
            }
            const double cv = beta == 0.0f ? 0.0 : (double)beta * c0[i * ldc + j];
            ref[i * n + j] = alpha * acc + cv;
            mag[i * n + j] = fabs(alpha) * am + fabs(cv);
        }
}

/* Runs one shape through cpu_sgemm and cpu_sgemm_small with padded leading dims. */
static void check_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, float beta)
{
    uint64_t s = (uint64_t)(m * 7919 + n * 31 + k + ta * 3 + tb);
    const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
    const int64_t ar = ta ? k : m, br = tb ? n : k;
    float *a = malloc(sizeof(float) * (size_t)(ar * lda + 1));
    float *b = malloc(sizeof(float) * (size_t)(br * ldb + 1));
    float *c0 = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    float *c1 = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    float *c2 = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    tu_fill(&s, a, ar * lda, -1, 1);
    tu_fill(&s, b, br * ldb, -1, 1);
    tu_fill(&s, c0, m * ldc, -1, 1);
    if (beta == 0.0f)
        for (int64_t i = 0; i < m * ldc; i += 5)
            c0[i] = NAN; /* beta 0 must ignore C entirely */
    memcpy(c1, c0, sizeof(float) * (size_t)(m * ldc));
    memcpy(c2, c0, sizeof(float) * (size_t)(m * ldc));
    double *ref = malloc(sizeof(double) * (size_t)(m * n + 1));
    double *mag = malloc(sizeof(double) * (size_t)(m * n + 1));
    gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, ref, mag);
    cpu_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    cpu_sgemm_small(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
    float *g1 = malloc(sizeof(float) * (size_t)(m * n + 1)),
          *g2 = malloc(sizeof(float) * (size_t)(m * n + 1));
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            g1[i * n + j] = c1[i * ldc + j];
            g2[i * n + j] = c2[i * ldc + j];
        }
    char what[96];
    snprintf(what, sizeof what, "sgemm %s m=%lld n=%lld k=%lld tA=%d tB=%d",
             cpu_gemm_choose(ta, tb, m, n, k) == CPU_GEMM_BLAS ? "blas" : "small", (long long)m,
             (long long)n, (long long)k, ta, tb);
    tu_close(what, g1, ref, mag, m * n, TU_REL, TU_ABS);
    snprintf(what, sizeof what, "sgemm_small m=%lld n=%lld k=%lld tA=%d tB=%d", (long long)m,
             (long long)n, (long long)k, ta, tb);
    tu_close(what, g2, ref, mag, m * n, TU_REL, TU_ABS);
    /* padding between rows untouched */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = n; j < ldc; j++) {
            cr_assert(memcmp(&c1[i * ldc + j], &c0[i * ldc + j], 4) == 0);
            cr_assert(memcmp(&c2[i * ldc + j], &c0[i * ldc + j], 4) == 0);
        }
    free(a);
    free(b);
    free(c0);
    free(c1);
    free(c2);
    free(ref);
    free(mag);
    free(g1);
    free(g2);
}

Test(cpu_kernels, sgemm_paths_agree_with_float64)
{
    const int64_t shapes[][3] = {{1, 1, 1},   {1, 17, 33},   {2, 64, 64},  {3, 5, 7},
                                 {8, 16, 15}, {33, 47, 129}, {64, 65, 66}, {1, 300, 200}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_sgemm(ta, tb, shapes[i][0], shapes[i][1], shapes[i][2], 1.0f, 0.0f);
                check_sgemm(ta, tb, shapes[i][0], shapes[i][1], shapes[i][2], -0.5f, 1.5f);
            }
    check_sgemm(false, false, 4, 6, 0, 1.0f, 2.0f); /* k = 0: C = beta C */
    check_sgemm(false, true, 4, 6, 3, 0.0f, 1.0f);  /* alpha = 0 */
}

Test(cpu_kernels, gemm_path_rule_and_blas_report)
{
    const char *core = cpu_blas_corename();
    cr_assert(core && *core);
    char msg[256] = "";
    const hlt_status st = cpu_blas_check(msg, sizeof msg);
    cr_assert(*msg, "check leaves a message");
    cr_assert(strstr(msg, core), "%s", msg);
    cr_assert_eq(st == HLT_OK, cpu_blas_usable(), "%s", msg);
    /* batch 1-2 against a large weight: ours whatever the core */
    cr_assert_eq(cpu_gemm_choose(false, true, 1, 1024, 1024), CPU_GEMM_SMALL);
    cr_assert_eq(cpu_gemm_choose(false, false, 2, 1024, 1024), CPU_GEMM_SMALL);
    /* small ones: ours unless OpenBLAS runs AVX-512 kernels (which have small-matrix paths) */
    const bool avx512_core = cpu_blas_usable() && (strncmp(core, "SkylakeX", 8) == 0 ||
                                                   strncmp(core, "Cooperlake", 10) == 0 ||
                                                   strncmp(core, "SapphireRapids", 14) == 0);
    cr_assert_eq(cpu_gemm_choose(false, false, 2, 64, 64),
                 avx512_core ? CPU_GEMM_BLAS : CPU_GEMM_SMALL);
    cr_assert_eq(cpu_gemm_choose(false, true, 64, 64, 64),
                 cpu_blas_usable() ? CPU_GEMM_BLAS : CPU_GEMM_SMALL);
    cr_assert_eq(cpu_gemm_choose(true, false, 1, 64, 64),
                 cpu_blas_usable() ? CPU_GEMM_BLAS : CPU_GEMM_SMALL);
    const char *rec = cpu_blas_recommended_coretype();
    cr_assert(rec == NULL || (cpu_has_avx512() && strcmp(rec, "SkylakeX") == 0));
    cr_assert_eq(cpu_blas_check(NULL, 0), st);
    cpu_blas_set_threads(1);
}

Test(cpu_kernels, binary_broadcast_at_max_rank)
{
    /* rank 8 with alternating broadcast dims: no merging possible */
    const int64_t da[8] = {2, 1, 2, 1, 2, 1, 2, 3}, db[6] = {2, 1, 2, 1, 2, 1};
    const int64_t dy[8] = {2, 2, 2, 2, 2, 2, 2, 3};
    int64_t na = 1, nb = 1, ny = 1;
    for (int i = 0; i < 8; i++) {
        na *= da[i];
        ny *= dy[i];
    }
    for (int i = 0; i < 6; i++)
        nb *= db[i];
    float a[48], b[8], y[384];
    for (int i = 0; i < na; i++)
        a[i] = (float)i;
    for (int i = 0; i < nb; i++)
        b[i] = (float)(i * 100);
    cpu_binary_f32(CPU_BIN_ADD, a, 8, da, b, 6, db, y, 8, dy);
    for (int64_t t = 0; t < ny; t++) {
        int64_t rem = t, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = 7; d >= 0; d--) {
            const int64_t idx = rem % dy[d];
            rem /= dy[d];
            ia += (da[d] == 1 ? 0 : idx) * sa;
            sa *= da[d];
            if (d >= 2) {
                ib += (db[d - 2] == 1 ? 0 : idx) * sb;
                sb *= db[d - 2];
            }
        }
        cr_assert_eq(y[t], a[ia] + b[ib], "element %lld", (long long)t);
    }
}

Test(cpu_kernels, int64_division_never_traps)
{
    const int64_t a[4] = {7, INT64_MIN, -7, 5}, b[4] = {0, -1, 2, -2}, d[1] = {4};
    int64_t y[4];
    cpu_binary_i64(CPU_BIN_DIV, a, 1, d, b, 1, d, y, 1, d);
    cr_assert_eq(y[0], 0);
    cr_assert_eq(y[1], 0);
    cr_assert_eq(y[2], -3);
    cr_assert_eq(y[3], -2);
    const int64_t big[1] = {INT64_MAX}, one[1] = {1}, s[1] = {1};
    cpu_binary_i64(CPU_BIN_ADD, big, 1, s, one, 1, s, y, 1, s);
    cr_assert_eq(y[0], INT64_MIN, "wraps");
}

Test(cpu_kernels, transpose_small_element_sizes)
{
    const int64_t dims[3] = {3, 5, 7}, perm[3] = {2, 0, 1};
    uint8_t x1[105], y1[105];
    uint16_t x2[105], y2[105];
    for (int i = 0; i < 105; i++) {
        x1[i] = (uint8_t)i;
        x2[i] = (uint16_t)(i * 300);
    }
    cpu_transpose(1, x1, 3, dims, perm, y1);
    cpu_transpose(2, x2, 3, dims, perm, y2);
    int t = 0;
    for (int k = 0; k < 7; k++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++, t++) {
                cr_assert_eq(y1[t], x1[(i * 5 + j) * 7 + k]);
                cr_assert_eq(y2[t], x2[(i * 5 + j) * 7 + k]);
            }
}

Test(cpu_kernels, softmax_strided_matches_rows)
{
    /* softmax over the middle axis of [3, 9, 17] equals the row kernel on the transposed data */
    float x[3 * 9 * 17], y[3 * 9 * 17], xt[3 * 17 * 9], yt[3 * 17 * 9], ws[2 * 17];
    uint64_t s = 99;
    tu_fill(&s, x, 3 * 9 * 17, -5, 5);
    const int64_t d[3] = {3, 9, 17}, p[3] = {0, 2, 1};
    cpu_transpose(4, x, 3, d, p, xt);
    cpu_softmax_f32(x, y, 3, 9, 17, ws);
    cpu_softmax_f32(xt, yt, 3 * 17, 9, 1, NULL);
    for (int o = 0; o < 3; o++)
        for (int k = 0; k < 9; k++)
            for (int j = 0; j < 17; j++)
                cr_assert_float_eq(y[(o * 9 + k) * 17 + j], yt[(o * 17 + j) * 9 + k], 1e-7);
}

/* ---- packed GEMM with the fused epilogue ---------------------------------------------------- */

static double act_ref(cpu_act act, double x, float alpha)
{
    switch (act) {
    case CPU_ACT_RELU:
        return x > 0 ? x : 0;
    case CPU_ACT_LEAKY_RELU:
        return x >= 0 ? x : alpha * x;
    case CPU_ACT_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    case CPU_ACT_TANH:
        return tanh(x);
    default:
        return x;
    }
}

/* One shape through pack + cpu_sgemm_packed with padded lda/ldc against float64; the padding
 * of C must stay untouched. */
static void check_packed(bool tb, int64_t m, int64_t n, int64_t k, float alpha, bool with_bias,
                         cpu_act act)
{
    uint64_t s = (uint64_t)(m * 7919 + n * 104729 + k * 31 + tb * 7 + act);
    const int64_t lda = k + 2, ldc = n + 3, ldb = (tb ? k : n) + 1, br = tb ? n : k;
    float *a = malloc(sizeof(float) * (size_t)(m * lda + 1));
    float *b = malloc(sizeof(float) * (size_t)(br * ldb + 1));
    float *bias = malloc(sizeof(float) * (size_t)(n + 1));
    float *c = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    float *got = malloc(sizeof(float) * (size_t)(m * n + 1));
    double *ref = malloc(sizeof(double) * (size_t)(m * n + 1));
    double *mag = malloc(sizeof(double) * (size_t)(m * n + 1));
    float *pk = aligned_alloc(64, cpu_sgemm_packed_floats(n, k) * sizeof(float));
    cr_assert(a && b && bias && c && got && ref && mag && pk);
    tu_fill(&s, a, m * lda, -1, 1);
    tu_fill(&s, b, br * ldb, -1, 1);
    tu_fill(&s, bias, n, -1, 1);
    for (int64_t i = 0; i < m * ldc; i++)
        c[i] = NAN; /* every element of C is written, padding never */
    cpu_sgemm_pack(tb, n, k, alpha, b, ldb, with_bias ? bias : NULL, pk);
    cpu_sgemm_packed(m, n, k, a, lda, pk, act, 0.125f, c, ldc);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = with_bias ? bias[j] : 0.0, am = fabs(acc);
            for (int64_t p = 0; p < k; p++) {
                const double v = (double)a[i * lda + p] * alpha * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                acc += v;
                am += fabs(v);
            }
            ref[i * n + j] = act_ref(act, acc, 0.125f);
            mag[i * n + j] = am;
            got[i * n + j] = c[i * ldc + j];
        }
    char what[128];
    snprintf(what, sizeof what, "packed %s tB=%d m=%lld n=%lld k=%lld act=%d bias=%d",
             cpu_isa_name(cpu_gemm_isa()), tb, (long long)m, (long long)n, (long long)k, act,
             with_bias);
    tu_close(what, got, ref, mag, m * n, TU_REL, TU_ABS);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = n; j < ldc; j++)
            cr_assert(isnan(c[i * ldc + j]), "%s: padding (%lld,%lld) written", what,
                      (long long)i, (long long)j);
    free(a);
    free(b);
    free(bias);
    free(c);
    free(got);
    free(ref);
    free(mag);
    free(pk);
}

Test(cpu_kernels, packed_gemm_matches_float64_on_every_isa)
{
    /* widths around every vector and half-vector boundary of 4, 8 and 16 lanes, the dots form
     * (n <= 4), the 8-vector single-row panels, and the shapes of the bundled models */
    static const int64_t ns[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  11, 12, 13,  15,  16,  17,
                                 20, 23, 24, 25, 28, 31, 32, 33, 36, 40, 44, 47,  48,  56,  63,
                                 64, 65, 72, 80, 96, 100, 112, 127, 128, 129, 136, 144, 200};
    static const int64_t ms[] = {1, 2, 3, 5, 7, 8, 9, 13, 17, 25, 97, 100, 193};
    static const int64_t ks[] = {0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 36, 64, 130};
    static const cpu_act acts[] = {CPU_ACT_NONE, CPU_ACT_RELU, CPU_ACT_LEAKY_RELU,
                                   CPU_ACT_SIGMOID, CPU_ACT_TANH};
    const cpu_isa best = cpu_gemm_set_isa(CPU_ISA_AUTO);
    for (int isa = CPU_ISA_BASELINE; isa <= (int)best; isa++) {
        cr_assert_eq(cpu_gemm_set_isa((cpu_isa)isa), (cpu_isa)isa);
        int q = 0;
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (int rep = 0; rep < 4; rep++, q++) {
                const int64_t m = ms[(size_t)(q * 5 + rep) % (sizeof ms / sizeof ms[0])];
                const int64_t k = ks[(size_t)(q * 3 + rep * 7) % (sizeof ks / sizeof ks[0])];
                check_packed(q & 1, m, ns[i], k, rep == 3 ? -0.75f : 1.0f, rep != 2,
                             acts[(size_t)q % 5]);
            }
        /* the bundled models' layers, and batch 1 and 2 */
        static const int64_t layers[][2] = {{15, 36}, {36, 36}, {36, 1}, {64, 128},
                                            {128, 64}, {64, 32},  {32, 5}};
        for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++)
            for (int64_t m = 1; m <= 3; m++) {
                check_packed(true, m, layers[l][1], layers[l][0], 1.0f, true, CPU_ACT_RELU);
                check_packed(false, m * 97, layers[l][1], layers[l][0], 1.0f, true, CPU_ACT_NONE);
            }
        check_packed(false, 0, 8, 8, 1.0f, true, CPU_ACT_RELU); /* no rows: nothing written */
    }
    cpu_gemm_set_isa(CPU_ISA_AUTO);
}

Test(cpu_kernels, packed_epilogue_special_values)
{
    /* ReLU maps NaN to 0 and LeakyRelu keeps it, as cpu_relu_f32 / cpu_leaky_relu_f32 do */
    const float b[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}; /* [9 x 1], NN: n = 1, k = 9 -> dots form */
    const float a[] = {NAN, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const cpu_isa best = cpu_gemm_set_isa(CPU_ISA_AUTO);
    for (int isa = CPU_ISA_BASELINE; isa <= (int)best; isa++) {
        cpu_gemm_set_isa((cpu_isa)isa);
        for (int64_t n = 1; n <= 40; n += 39) { /* dots form and row form */
            float *w = calloc((size_t)(9 * n), sizeof(float));
            float *pk = aligned_alloc(64, cpu_sgemm_packed_floats(n, 9) * sizeof(float));
            float c[2 * 40];
            for (int64_t p = 0; p < 9; p++)
                w[p * n] = b[p];
            cpu_sgemm_pack(false, n, 9, 1.0f, w, n, NULL, pk);
            cpu_sgemm_packed(2, n, 9, a, 9, pk, CPU_ACT_RELU, 0.0f, c, n);
            cr_assert_eq(c[0], 0.0f, "%s n=%lld: relu(NaN) = %g", cpu_isa_name((cpu_isa)isa),
                         (long long)n, c[0]);
            cr_assert_eq(c[n], 0.0f);
            cpu_sgemm_packed(2, n, 9, a, 9, pk, CPU_ACT_LEAKY_RELU, 0.5f, c, n);
            cr_assert(isnan(c[0]), "%s: leaky(NaN) = %g", cpu_isa_name((cpu_isa)isa), c[0]);
            cr_assert_eq(c[n], -0.5f);
            free(w);
            free(pk);
        }
    }
    cpu_gemm_set_isa(CPU_ISA_AUTO);
}

Test(cpu_kernels, bias_act_epilogue_matches_float64)
{
    uint64_t s = 11;
    const int64_t m = 7, n = 37, ldc = 40;
    float c0[7 * 40], c[7 * 40], bias[37], got[7 * 37];
    double ref[7 * 37];
    tu_fill(&s, c0, m * ldc, -3, 3);
    tu_fill(&s, bias, n, -1, 1);
    for (int act = CPU_ACT_NONE; act <= CPU_ACT_TANH; act++)
        for (int wb = 0; wb < 2; wb++) {
            memcpy(c, c0, sizeof c);
            cpu_bias_act_f32(m, n, wb ? bias : NULL, (cpu_act)act, 0.2f, c, ldc);
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    ref[i * n + j] =
                        act_ref((cpu_act)act, (double)c0[i * ldc + j] + (wb ? bias[j] : 0.0f), 0.2f);
                    got[i * n + j] = c[i * ldc + j];
                }
            tu_close("bias_act", got, ref, NULL, m * n, TU_REL, TU_ABS);
            for (int64_t i = 0; i < m; i++)
                cr_assert(memcmp(&c[i * ldc + n], &c0[i * ldc + n], 3 * sizeof(float)) == 0);
        }
}

Test(cpu_kernels, packed_path_rule)
{
    /* packable layers take our kernel when it is vectorised; bigger ones OpenBLAS */
    const bool usable = cpu_blas_usable();
    const bool vec = cpu_gemm_isa() >= CPU_ISA_AVX2;
    cr_assert_eq(cpu_gemm_choose_packed(true, 16000, 36, 15),
                 !usable || vec ? CPU_GEMM_SMALL : CPU_GEMM_BLAS);
    cr_assert_eq(cpu_gemm_choose_packed(false, 1024, 64, 128),
                 !usable || vec ? CPU_GEMM_SMALL : CPU_GEMM_BLAS);
    cr_assert_eq(cpu_gemm_choose_packed(false, 1, 128, 64), CPU_GEMM_SMALL);
    cr_assert_eq(cpu_gemm_choose_packed(true, 64, 1024, 1024),
                 usable ? CPU_GEMM_BLAS : CPU_GEMM_SMALL);
    cr_assert_geq(cpu_sgemm_packed_floats(36, 15), (size_t)(15 * 36 + 36));
    cr_assert_eq(cpu_sgemm_packed_floats(36, 15) % 16, 0);
    cr_assert_str_eq(cpu_isa_name(CPU_ISA_AVX2), "avx2");
}
