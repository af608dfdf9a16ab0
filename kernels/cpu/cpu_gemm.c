/* cpu_gemm: sgemm dispatch between OpenBLAS and our small-matrix kernels.
 *
 * Which path runs when (cpu_gemm_choose), from measurements (1 thread, time(OpenBLAS) /
 * time(ours), > 1 means ours is faster; n = k):
 *
 *   build host, AMD EPYC (AVX2), core "Zen"     device host, Xeon (AVX-512), core "SkylakeX"
 *            n,k= 64   256   1024                        n,k= 64   256   512   768   1024
 *     NN m=1      3.4  5.0   5.1                  NN m=1      0.7  0.96  1.1   1.1   2.9
 *     NN m=4      1.0  1.2   1.2                  NN m=2      0.4  0.5   0.6   1.4   1.5
 *     NN m=16     0.7  2.1   1.4                  NN m=4      0.3  0.3   1.3   0.7   0.8
 *     NT m=1      2.8  5.2   6.2                  NT m=1      0.4  0.9   0.9   1.0   3.1
 *     NT m=4      0.8  1.3   1.5                  NT m=2      0.3  0.5   0.5   1.5   1.7
 *     NT m=16     0.5  0.7   0.8                  NT m=4      0.2  0.3   1.4   0.7   0.8
 *   (the same Xeon with the core OpenBLAS picks by itself, "Prescott", SSE3: m=1 2.4-4.6,
 *   m=2 1.4-3.0, m=4 0.9-2.2)
 *
 *  - m <= 2 (batch-1/2 dense layers, a vector times a matrix): our kernel, unless OpenBLAS runs
 *    an AVX-512 core and m*n*k <= 100^3. OpenBLAS 0.3.21 packs A and B for thin products and
 *    runs its 16x2/6x16 tile mostly empty; only its AVX-512 cores have direct small-matrix
 *    kernels, and those stop at 100^3 multiply-adds (the ratio jumps from ~1 to ~3 there).
 *  - trans_a, or m > 2: OpenBLAS (at m = 4 results are mixed; beyond, OpenBLAS wins).
 *  - OpenBLAS unusable (cpu_blas_usable() false: an AVX-512 core forced on a CPU without
 *    AVX-512) or a dimension beyond INT32_MAX (OpenBLAS's blasint): our kernel, every shape.
 *
 * Our kernel: row-major, no packing, no allocation. NN and TN are row updates
 * (c_i += a_ip * b_p, four p at a time) that vectorise along n; NT is four dot products at a
 * time with 16 independent partial sums (so GCC vectorises without reassociating) that
 * vectorise along k. Each is multi-versioned (cpu_target.h).
 *
 * Layers with a constant B (the engine's Gemm/MatMul with weights; cpu_gemm_choose_packed):
 * the packed kernel of cpu_gemm_packed.c with its fused bias + activation, against
 * cblas_sgemm followed by cpu_bias_act_f32 (what the engine would run instead). Measured with
 * `hltinfer-engine-bench --gemm` (C = relu(A op(B) + bias), 1 thread, thread CPU time),
 * time(OpenBLAS + epilogue) / time(packed), > 1 means packed is faster:
 *
 *   AMD EPYC (Zen 1, AVX2), OpenBLAS 0.3.21 "Zen"        Xeon (AVX-512), OpenBLAS 0.3.26 "Cooperlake"
 *     k x n      m=1   2    4    16   64   1024 16000      m=1   2    4    16   64   1024 16000
 *   NT 15x36     5.2  4.4  2.8  2.1  2.0  1.9  2.5         11.7 9.2  7.7  3.8  2.5  2.4  2.4
 *   NT 36x36     4.7  2.5  2.3  1.9  1.9  1.7  1.8         2.3  2.2  2.1  4.0  2.0  1.7  1.7
 *   NT 36x1      3.3  2.7  4.2  4.0  4.3  3.0  2.8         1.1  1.2  1.4  2.0  2.0  1.8  3.4
 *   NN 64x128    4.4  2.7  1.8  1.5  1.4  1.4  1.3         1.4  0.98 0.71 0.92 1.2  1.5  1.6
 *   NN 128x64    5.9  2.9  1.8  1.4  1.3  1.4  1.3         1.1  0.70 0.46 0.87 1.0  1.4  1.3
 *   NN 64x32     6.1  3.8  1.5  1.5  1.4  1.3  1.4         1.4  0.91 0.79 0.95 1.1  1.8  1.3
 *   NN 32x5      4.2  2.9  2.0  2.4  2.1  1.8  1.8         2.2  1.8  1.4  2.0  2.0  2.0  2.4
 *   NN 256x256   4.8  2.6  2.1  1.5  1.3  1.2  1.2         0.94 0.56 0.39 1.4  1.2  1.1  1.1
 *   NT 512x512   4.7  2.5  2.0  2.3  1.3  0.84  -          0.89 0.52 2.5  1.5  1.3  1.1   -
 *   NN 512x512   3.8  1.9  1.5  1.0  0.88 0.86  -          1.1  0.58 1.5  1.3  1.1  1.1   -
 *
 *  - k * n > CPU_GEMM_PACK_MAX_KN (512 x 512): OpenBLAS; the engine does not pack those.
 *  - k * n > 64K and m > 16: OpenBLAS. Our kernel does not block k, so its B panel leaves L1
 *    beyond k ~ 300, where OpenBLAS's cache blocking starts to win (512 x 512 above).
 *  - no AVX2 (portable C kernel): OpenBLAS for m > 2.
 *  - OpenBLAS on an AVX-512 core: its small-matrix kernels win for NN with 2 <= m <= 16 and
 *    k * n >= 2048, and for 2 <= m <= 4 and k * n >= 64K; OpenBLAS there.
 *  - everything else: the packed kernel. On the AVX2 host it wins every other measured shape,
 *    by 1.2x (256 x 256) to 5x (batch 1); 2-2.5x on the thin FACILE layers, whose B OpenBLAS
 *    packs again on every call and whose 36 columns fit none of its tiles. */
#include "cpu_gemm.h"

#include "cpu_target.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Up to this many rows of C our kernel beats a cblas_sgemm call (see the header comment). */
#define SMALL_M 2
/* OpenBLAS's AVX-512 small-matrix kernels handle m*n*k up to this. */
#define BLAS_SMALL_MNK (INT64_C(100) * 100 * 100)

static void scale_rows(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    if (beta == 1.0f)
        return;
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, (size_t)n * sizeof(float));
        else
            for (int64_t j = 0; j < n; j++)
                ci[j] *= beta;
    }
}

/* c_i += alpha * sum_p a(i,p) b_p for B [k,n]; a(i,p) = a[i*sam + p*sak]. */
CPU_CLONES static void gemm_rowupdate(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                                      int64_t sam, int64_t sak, const float *b, int64_t ldb,
                                      float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *restrict ci = c + i * ldc;
        const float *ai = a + i * sam;
        int64_t p = 0;
        for (; p + 4 <= k; p += 4) {
            const float a0 = alpha * ai[p * sak], a1 = alpha * ai[(p + 1) * sak];
            const float a2 = alpha * ai[(p + 2) * sak], a3 = alpha * ai[(p + 3) * sak];
            const float *restrict b0 = b + p * ldb;
            const float *restrict b1 = b0 + ldb;
            const float *restrict b2 = b1 + ldb;
            const float *restrict b3 = b2 + ldb;
            for (int64_t j = 0; j < n; j++)
                ci[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
        for (; p < k; p++) {
            const float a0 = alpha * ai[p * sak];
            const float *restrict b0 = b + p * ldb;
            for (int64_t j = 0; j < n; j++)
                ci[j] += a0 * b0[j];
        }
    }
}

#define LANES 16

static inline float hsum(const float *s)
{
    float t = 0.0f;
    for (int l = 0; l < LANES; l++)
        t += s[l];
    return t;
}

/* c[i,j] += alpha * dot(A row i, B row j) for B [n,k] (trans_b), A [m,k] contiguous rows. */
CPU_CLONES static void gemm_dots(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                                 int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc)
{
    const int64_t kv = k - k % LANES;
    for (int64_t i = 0; i < m; i++) {
        const float *restrict ai = a + i * lda;
        float *ci = c + i * ldc;
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const float *restrict b0 = b + j * ldb;
            const float *restrict b1 = b0 + ldb;
            const float *restrict b2 = b1 + ldb;
            const float *restrict b3 = b2 + ldb;
            float s0[LANES] = {0}, s1[LANES] = {0}, s2[LANES] = {0}, s3[LANES] = {0};
            for (int64_t p = 0; p < kv; p += LANES)
                for (int l = 0; l < LANES; l++) {
                    const float av = ai[p + l];
                    s0[l] += av * b0[p + l];
                    s1[l] += av * b1[p + l];
                    s2[l] += av * b2[p + l];
                    s3[l] += av * b3[p + l];
                }
            float t0 = hsum(s0), t1 = hsum(s1), t2 = hsum(s2), t3 = hsum(s3);
            for (int64_t p = kv; p < k; p++) {
                t0 += ai[p] * b0[p];
                t1 += ai[p] * b1[p];
                t2 += ai[p] * b2[p];
                t3 += ai[p] * b3[p];
            }
            ci[j] += alpha * t0;
            ci[j + 1] += alpha * t1;
            ci[j + 2] += alpha * t2;
            ci[j + 3] += alpha * t3;
        }
        for (; j < n; j++) {
            const float *restrict b0 = b + j * ldb;
            float s0[LANES] = {0};
            for (int64_t p = 0; p < kv; p += LANES)
                for (int l = 0; l < LANES; l++)
                    s0[l] += ai[p + l] * b0[p + l];
            float t0 = hsum(s0);
            for (int64_t p = kv; p < k; p++)
                t0 += ai[p] * b0[p];
            ci[j] += alpha * t0;
        }
    }
}

/* Both transposed: only reached when OpenBLAS is unusable. Plain loops. */
static void gemm_tt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float t = 0.0f;
            for (int64_t p = 0; p < k; p++)
                t += a[p * lda + i] * b[j * ldb + p];
            c[i * ldc + j] += alpha * t;
        }
}

void cpu_sgemm_small(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    scale_rows(m, n, beta, c, ldc);
    if (k <= 0 || alpha == 0.0f)
        return;
    if (!trans_b)
        gemm_rowupdate(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, ldb, c, ldc);
    else if (!trans_a)
        gemm_dots(m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else
        gemm_tt(m, n, k, alpha, a, lda, b, ldb, c, ldc);
}

static bool core_needs_avx512(const char *core)
{
    static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof avx512_cores / sizeof avx512_cores[0]; i++)
        if (strncasecmp(core, avx512_cores[i], strlen(avx512_cores[i])) == 0)
            return true;
    return false;
}

const char *cpu_blas_corename(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

bool cpu_has_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    /* What OpenBLAS's SkylakeX kernels execute. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
    return false;
#endif
}

enum { BLAS_UNKNOWN = 0, BLAS_OK = 1, BLAS_OK_AVX512 = 2, BLAS_UNUSABLE = 3 };

/* A fact about this process that never changes once OpenBLAS has initialised: computed once,
 * cached. Racing first calls compute the same value. */
static int blas_state(void)
{
    static atomic_int cached;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v == BLAS_UNKNOWN) {
        const bool wants = core_needs_avx512(cpu_blas_corename());
        v = !wants ? BLAS_OK : cpu_has_avx512() ? BLAS_OK_AVX512 : BLAS_UNUSABLE;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

bool cpu_blas_usable(void)
{
    return blas_state() != BLAS_UNUSABLE;
}

const char *cpu_blas_recommended_coretype(void)
{
    return blas_state() == BLAS_OK && cpu_has_avx512() ? "SkylakeX" : NULL;
}

cpu_gemm_path cpu_gemm_choose(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k)
{
    (void)trans_b;
    const int st = blas_state();
    if (st == BLAS_UNUSABLE || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
        return CPU_GEMM_SMALL;
    if (m <= 0 || n <= 0 || k <= 0)
        return CPU_GEMM_SMALL; /* nothing to multiply: a scale of C at most */
    if (trans_a || m > SMALL_M)
        return CPU_GEMM_BLAS;
    /* m <= 2 and all < 2^31: m*n*k < 2^63 */
    if (st == BLAS_OK_AVX512 && m * n * k <= BLAS_SMALL_MNK)
        return CPU_GEMM_BLAS;
    return CPU_GEMM_SMALL;
}

void cpu_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc)
{
    if (cpu_gemm_choose(trans_a, trans_b, m, n, k) == CPU_GEMM_SMALL || lda > INT32_MAX ||
        ldb > INT32_MAX || ldc > INT32_MAX) {
        cpu_sgemm_small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, alpha, a,
                (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

hlt_status cpu_blas_check(char *err, size_t errlen)
{
    const char *core = cpu_blas_corename();
    const bool avx512 = cpu_has_avx512();
    hlt_status st = HLT_OK;
    char msg[256];
    if (core_needs_avx512(core) && !avx512) {
        snprintf(msg, sizeof msg,
                 "OpenBLAS core %s needs AVX-512, which this CPU lacks (OPENBLAS_CORETYPE set "
                 "for another host?): GEMM runs on the built-in kernel, unset "
                 "OPENBLAS_CORETYPE",
                 core);
        st = HLT_FAILED_PRECONDITION;
    } else if (avx512 && !core_needs_avx512(core)) {
        snprintf(msg, sizeof msg,
                 "OpenBLAS core %s does not use this CPU's AVX-512: start the server with "
                 "OPENBLAS_CORETYPE=SkylakeX in its environment for 2-4x the GEMM rate",
                 core);
    } else {
        snprintf(msg, sizeof msg, "OpenBLAS core %s, cpu avx512=%s", core, avx512 ? "yes" : "no");
    }
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return st;
}

void cpu_blas_set_threads(int32_t n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}

cpu_gemm_path cpu_gemm_choose_packed(bool trans_b, int64_t m, int64_t n, int64_t k)
{
    const int st = blas_state();
    if (st == BLAS_UNUSABLE || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
        return CPU_GEMM_SMALL;
    if (n > 0 && k > CPU_GEMM_PACK_MAX_KN / n)
        return CPU_GEMM_BLAS; /* never packed */
    if (n * k > 65536 && m > 16)
        return CPU_GEMM_BLAS; /* B beyond L1 at some point: OpenBLAS's blocking wins */
    if (cpu_gemm_isa() == CPU_ISA_BASELINE)
        return m > SMALL_M ? CPU_GEMM_BLAS : CPU_GEMM_SMALL; /* portable C: OpenBLAS's SSE wins */
    /* OpenBLAS's AVX-512 small-matrix kernels beat a few rows of ours on wide NN layers */
    if (st == BLAS_OK_AVX512 && m >= 2 && ((!trans_b && m <= 16 && n * k >= 2048) ||
                                           (m <= 4 && n * k >= 65536)))
        return CPU_GEMM_BLAS;
    return CPU_GEMM_SMALL;
}
