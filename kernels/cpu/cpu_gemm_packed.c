/* cpu_gemm_packed: the skinny-GEMM kernel with a fused bias + activation epilogue.
 *
 * For the dense layers of HLT models: A is [m, k] with many rows, the constant weight op(B) is
 * small (k, n from a few to a few hundred). cblas_sgemm packs A and B on every call and runs a
 * 16x2 / 6x16 tile that fits none of 15x36, 36x36 or 36x1; the bias and activation are then
 * separate passes over C. Here B is packed once (cpu_sgemm_pack, when the engine plans the
 * layer), A is read in place, and each tile of C is produced in registers from the bias, its
 * activation applied before the single store.
 *
 * Two packed forms, picked by n alone (so every ISA reads the same packed buffer):
 *  - rows (n > PK_DOT_MAX_N): [np bias][k x np] with np = n rounded up to 16 and zero columns
 *    beyond n. The tile is MR rows x NV vectors of C: per p one broadcast of A(i,p) per row and
 *    NV vector loads of B row p, MR*NV FMAs. Tiles (rows x vectors), chosen to fill the
 *    register file with accumulators: AVX2 8x1 6x2 4x3 (16 ymm), AVX-512 16x1 12x2 8x3 6x4
 *    (32 zmm). Row blocks of PK_ROW_BLOCK rows keep A's block in L1 while every panel of
 *    columns passes over it.
 *  - dots (n <= PK_DOT_MAX_N, e.g. a regression head 36 -> 1): [16 bias][n x kp], op(B)
 *    transposed (B's columns contiguous), kp = k rounded up to 16. Vectorises along k: 8 rows
 *    at a time, one accumulator per row, A's last partial vector read piecewise (nothing past
 *    row end is touched), the 8 sums reduced by an hadd tree into one vector of 8 outputs.
 *
 * ISA: explicit AVX-512 and AVX2+FMA versions (target attributes, cpu_gemm_packed_isa.h
 * instantiated twice) and a portable C version, picked at run time from the CPU
 * (__builtin_cpu_supports, which also checks that the OS saves the registers), overridable
 * downwards by cpu_gemm_set_isa for tests and benchmarks. GCC's target_clones (cpu_target.h)
 * cannot do this one: register blocking needs the vector width in the source.
 * Sigmoid and Tanh run after the tile stores, per call, on C while it is in cache, through
 * cpu_unary's functions, so fused and unfused results are identical for them. */
#include "cpu_gemm.h"

#include "cpu_target.h"
#include "cpu_unary.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define PK_X86 1
#include <immintrin.h>
#else
#define PK_X86 0
#endif

/* Largest n packed in the dots form. */
#define PK_DOT_MAX_N 4
/* Rows per block in the row-form kernel: a multiple of every tile height (8 6 4 3 / 16 12 8 6). */
#define PK_ROW_BLOCK 96

static inline int64_t pk_round16(int64_t x)
{
    return (x + 15) & ~(int64_t)15;
}

/* ---- ISA selection ----------------------------------------------------------------------- */

static atomic_int isa_cap; /* 0 = not yet forced: best available */

static cpu_isa isa_detect(void)
{
    static atomic_int cached;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v == 0) {
        v = CPU_ISA_BASELINE;
#if PK_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            v = CPU_ISA_AVX2;
        if (v == CPU_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq"))
            v = CPU_ISA_AVX512;
#endif
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return (cpu_isa)v;
}

cpu_isa cpu_gemm_isa(void)
{
    const cpu_isa best = isa_detect();
    const int cap = atomic_load_explicit(&isa_cap, memory_order_relaxed);
    return cap != 0 && cap < (int)best ? (cpu_isa)cap : best;
}

cpu_isa cpu_gemm_set_isa(cpu_isa want)
{
    atomic_store_explicit(&isa_cap, want == CPU_ISA_AUTO ? 0 : (int)want, memory_order_relaxed);
    return cpu_gemm_isa();
}

const char *cpu_isa_name(cpu_isa isa)
{
    switch (isa) {
    case CPU_ISA_AVX512:
        return "avx512";
    case CPU_ISA_AVX2:
        return "avx2";
    case CPU_ISA_BASELINE:
        return "baseline";
    default:
        return "auto";
    }
}

/* ---- packing ----------------------------------------------------------------------------- */

size_t cpu_sgemm_packed_floats(int64_t n, int64_t k)
{
    if (n <= 0 || k < 0)
        return 16;
    if (n <= PK_DOT_MAX_N)
        return (size_t)(16 + n * pk_round16(k));
    return (size_t)((k + 1) * pk_round16(n));
}

void cpu_sgemm_pack(bool trans_b, int64_t n, int64_t k, float alpha, const float *b, int64_t ldb,
                    const float *bias, float *packed)
{
    memset(packed, 0, cpu_sgemm_packed_floats(n, k) * sizeof(float));
    if (n <= 0 || k < 0)
        return;
    if (bias)
        memcpy(packed, bias, (size_t)n * sizeof(float));
    if (n <= PK_DOT_MAX_N) {
        const int64_t kp = pk_round16(k);
        float *bt = packed + 16;
        for (int64_t j = 0; j < n; j++)
            for (int64_t p = 0; p < k; p++)
                bt[j * kp + p] = alpha * (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
    } else {
        const int64_t np = pk_round16(n);
        float *bp = packed + np;
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < n; j++)
                bp[p * np + j] = alpha * (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
    }
}

/* ---- portable version -------------------------------------------------------------------- */

static inline float act_scalar(float x, int act, float alpha)
{
    if (act == CPU_ACT_RELU)
        return x > 0.0f ? x : 0.0f;
    if (act == CPU_ACT_LEAKY_RELU)
        return x >= 0.0f ? x : alpha * x;
    return x;
}

static void rows_base(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                      const float *pk, int act, float alpha, float *c, int64_t ldc)
{
    const int64_t np = pk_round16(n);
    const float *bias = pk, *b = pk + np;
    for (int64_t i = 0; i < m; i++) {
        float *restrict ci = c + i * ldc;
        const float *ai = a + i * lda;
        for (int64_t j = 0; j < n; j++)
            ci[j] = bias[j];
        for (int64_t p = 0; p < k; p++) {
            const float ap = ai[p];
            const float *restrict bp = b + p * np;
            for (int64_t j = 0; j < n; j++)
                ci[j] += ap * bp[j];
        }
        for (int64_t j = 0; j < n; j++)
            ci[j] = act_scalar(ci[j], act, alpha);
    }
}

static void dots_base(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                      const float *pk, int act, float alpha, float *c, int64_t ldc)
{
    const int64_t kp = pk_round16(k);
    const float *bias = pk, *bt = pk + 16;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            const float *ai = a + i * lda, *bj = bt + j * kp;
            float s = 0.0f;
            for (int64_t p = 0; p < k; p++)
                s += ai[p] * bj[p];
            c[i * ldc + j] = act_scalar(s + bias[j], act, alpha);
        }
}

#if PK_X86

/* ---- AVX2 + FMA -------------------------------------------------------------------------- */

#define PK_AVX2 __attribute__((target("avx2,fma")))

PK_AVX2 static inline void pk_store_part_avx2(float *p, __m256 v, int cnt)
{
    __m128 x = _mm256_castps256_ps128(v);
    if (cnt >= 4) {
        _mm_storeu_ps(p, x);
        x = _mm256_extractf128_ps(v, 1);
        p += 4;
        cnt -= 4;
    }
    if (cnt >= 2) {
        _mm_storel_epi64((__m128i_u *)(void *)p, _mm_castps_si128(x));
        x = _mm_movehl_ps(x, x);
        p += 2;
        cnt -= 2;
    }
    if (cnt)
        _mm_store_ss(p, x);
}

PK_AVX2 static inline void pk_store_part_sse(float *p, __m128 x, int cnt)
{
    if (cnt >= 2) {
        _mm_storel_epi64((__m128i_u *)(void *)p, _mm_castps_si128(x));
        x = _mm_movehl_ps(x, x);
        p += 2;
        cnt -= 2;
    }
    if (cnt)
        _mm_store_ss(p, x);
}

#define ISA avx2
#define ATTR PK_AVX2
#define VW 8
#define V __m256
#define VLOAD(p) _mm256_loadu_ps(p)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(x, y, z) _mm256_fmadd_ps(x, y, z)
#define VRELU(x) _mm256_max_ps(x, _mm256_setzero_ps())
#define VLEAKY(x, va)                                                                            \
    _mm256_blendv_ps(_mm256_mul_ps(x, va), x, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ))
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSTORE_PART(p, v, cnt) pk_store_part_avx2(p, v, cnt)
#define H __m128
#define HLOW(v) _mm256_castps256_ps128(v)
#define HLOAD(p) _mm_loadu_ps(p)
#define HFMA(x, y, z) _mm_fmadd_ps(x, y, z)
#define HRELU(x) _mm_max_ps(x, _mm_setzero_ps())
#define HLEAKY(x, va) _mm_blendv_ps(_mm_mul_ps(x, va), x, _mm_cmp_ps(x, _mm_setzero_ps(), _CMP_GE_OQ))
#define HSTORE(p, v) _mm_storeu_ps(p, v)
#define HSTORE_PART(p, v, cnt) pk_store_part_sse(p, v, cnt)
#define MR1 8
#define MR2 6
#define MR3 4
#define MR4 3
#define REGS_MAX 3
#include "cpu_gemm_packed_isa.h"
#undef ISA
#undef ATTR
#undef VW
#undef V
#undef VLOAD
#undef VBCAST
#undef VFMA
#undef VRELU
#undef VLEAKY
#undef VSTORE
#undef VSTORE_PART
#undef MR1
#undef MR2
#undef MR3
#undef MR4
#undef REGS_MAX
#undef H
#undef HLOW
#undef HLOAD
#undef HFMA
#undef HRELU
#undef HLEAKY
#undef HSTORE
#undef HSTORE_PART

/* Sums of a0..a7 (8 lanes each) as one vector [sum a0, ..., sum a7]. */
PK_AVX2 static inline __m256 pk_reduce8(const __m256 *acc)
{
    const __m256 s01 = _mm256_hadd_ps(acc[0], acc[1]), s23 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 s45 = _mm256_hadd_ps(acc[4], acc[5]), s67 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                         _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

/* Elements p[0, t) (t in 0..3) in the low lanes, zero above; reads nothing beyond them. */
PK_AVX2 static inline __m128 pk_load_part_sse(const float *p, int t)
{
    switch (t) {
    case 1:
        return _mm_load_ss(p);
    case 2:
        return _mm_castsi128_ps(_mm_loadl_epi64((const __m128i_u *)(const void *)p));
    case 3:
        return _mm_movelh_ps(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i_u *)(const void *)p)),
                             _mm_load_ss(p + 2));
    default:
        return _mm_setzero_ps();
    }
}

/* p[0, t) for t in 1..7, zero above. (vmaskmovps would do, but is microcoded on AMD Zen 1 and
 * costs as much as the rest of a 36-long dot product.) */
PK_AVX2 static inline __m256 pk_load_tail_avx2(const float *p, int t)
{
    if (t >= 4)
        return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)),
                                    pk_load_part_sse(p + 4, t - 4), 1);
    return _mm256_insertf128_ps(_mm256_castps128_ps256(pk_load_part_sse(p, t)), _mm_setzero_ps(),
                                1);
}

/* Dots form, 8 rows at a time (a partial group re-reads its first row for the missing ones and
 * stores only its own). Also what the AVX-512 build runs: 8-lane sums reduce more cheaply. */
PK_AVX2 static void dots_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                              const float *pk, int act, float alpha, float *c, int64_t ldc)
{
    const int64_t kp = pk_round16(k), kv = k & ~(int64_t)7;
    const int kt = (int)(k - kv);
    const float *bias = pk, *bt = pk + 16;
    const __m256 zero = _mm256_setzero_ps(), va = _mm256_set1_ps(alpha);
    for (int64_t i = 0; i < m; i += 8) {
        const int rows = m - i < 8 ? (int)(m - i) : 8;
        const float *ar[8];
        for (int r = 0; r < 8; r++)
            ar[r] = a + (i + (r < rows ? r : 0)) * lda;
        for (int64_t j = 0; j < n; j++) {
            const float *bj = bt + j * kp;
            __m256 acc[8];
            for (int r = 0; r < 8; r++)
                acc[r] = zero;
            for (int64_t p = 0; p < kv; p += 8) {
                const __m256 bv = _mm256_loadu_ps(bj + p);
                for (int r = 0; r < 8; r++)
                    acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(ar[r] + p), bv, acc[r]);
            }
            if (kv < k) {
                const __m256 bv = _mm256_loadu_ps(bj + kv); /* zero beyond k */
                for (int r = 0; r < 8; r++)
                    acc[r] = _mm256_fmadd_ps(pk_load_tail_avx2(ar[r] + kv, kt), bv, acc[r]);
            }
            __m256 s = _mm256_add_ps(pk_reduce8(acc), _mm256_set1_ps(bias[j]));
            if (act == CPU_ACT_RELU)
                s = _mm256_max_ps(s, zero);
            else if (act == CPU_ACT_LEAKY_RELU)
                s = _mm256_blendv_ps(_mm256_mul_ps(s, va), s, _mm256_cmp_ps(s, zero, _CMP_GE_OQ));
            if (ldc == 1 && rows == 8) {
                _mm256_storeu_ps(c + i, s);
            } else {
                float t[8];
                _mm256_storeu_ps(t, s);
                for (int r = 0; r < rows; r++)
                    c[(i + r) * ldc + j] = t[r];
            }
        }
    }
}

/* ---- AVX-512 ----------------------------------------------------------------------------- */

#define PK_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))

#define ISA avx512
#define ATTR PK_AVX512
#define VW 16
#define V __m512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(x, y, z) _mm512_fmadd_ps(x, y, z)
#define VRELU(x) _mm512_max_ps(x, _mm512_setzero_ps())
#define VLEAKY(x, va)                                                                            \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ),               \
                         _mm512_mul_ps(x, va), x)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSTORE_PART(p, v, cnt) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (cnt)) - 1u), v)
#define H __m256
#define HLOW(v) _mm512_castps512_ps256(v)
#define HLOAD(p) _mm256_loadu_ps(p)
#define HFMA(x, y, z) _mm256_fmadd_ps(x, y, z)
#define HRELU(x) _mm256_max_ps(x, _mm256_setzero_ps())
#define HLEAKY(x, va)                                                                            \
    _mm256_mask_blend_ps(_mm256_cmp_ps_mask(x, _mm256_setzero_ps(), _CMP_GE_OQ),               \
                         _mm256_mul_ps(x, va), x)
#define HSTORE(p, v) _mm256_storeu_ps(p, v)
#define HSTORE_PART(p, v, cnt) _mm256_mask_storeu_ps(p, (__mmask8)((1u << (cnt)) - 1u), v)
#define MR1 16
#define MR2 12
#define MR3 8
#define MR4 6
#define REGS_MAX 4
#include "cpu_gemm_packed_isa.h"
#undef ISA
#undef ATTR
#undef VW
#undef V
#undef VLOAD
#undef VBCAST
#undef VFMA
#undef VRELU
#undef VLEAKY
#undef VSTORE
#undef VSTORE_PART
#undef MR1
#undef MR2
#undef MR3
#undef MR4
#undef REGS_MAX
#undef H
#undef HLOW
#undef HLOAD
#undef HFMA
#undef HRELU
#undef HLEAKY
#undef HSTORE
#undef HSTORE_PART

#endif /* PK_X86 */

/* ---- entry points ------------------------------------------------------------------------ */

void cpu_sgemm_packed(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                      const float *packed, cpu_act act, float act_alpha, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k < 0)
        k = 0;
    const int reg_act = act == CPU_ACT_RELU || act == CPU_ACT_LEAKY_RELU ? (int)act : 0;
    const cpu_isa isa = cpu_gemm_isa();
    (void)isa;
    if (n <= PK_DOT_MAX_N) {
#if PK_X86
        if (isa >= CPU_ISA_AVX2)
            dots_avx2(m, n, k, a, lda, packed, reg_act, act_alpha, c, ldc);
        else
#endif
            dots_base(m, n, k, a, lda, packed, reg_act, act_alpha, c, ldc);
    } else {
#if PK_X86
        if (isa == CPU_ISA_AVX512)
            rows_avx512(m, n, k, a, lda, packed, reg_act, act_alpha, c, ldc);
        else if (isa == CPU_ISA_AVX2)
            rows_avx2(m, n, k, a, lda, packed, reg_act, act_alpha, c, ldc);
        else
#endif
            rows_base(m, n, k, a, lda, packed, reg_act, act_alpha, c, ldc);
    }
    if (act == CPU_ACT_SIGMOID || act == CPU_ACT_TANH) {
        void (*f)(const float *, float *, int64_t) =
            act == CPU_ACT_SIGMOID ? cpu_sigmoid_f32 : cpu_tanh_f32;
        if (ldc == n)
            f(c, c, m * n);
        else
            for (int64_t i = 0; i < m; i++)
                f(c + i * ldc, c + i * ldc, n);
    }
}

CPU_CLONES static void bias_act_rows(int64_t m, int64_t n, const float *bias, int act, float alpha,
                                     float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *restrict ci = c + i * ldc;
        if (bias)
            for (int64_t j = 0; j < n; j++)
                ci[j] += bias[j];
        if (act == CPU_ACT_RELU)
            for (int64_t j = 0; j < n; j++)
                ci[j] = ci[j] > 0.0f ? ci[j] : 0.0f;
        else if (act == CPU_ACT_LEAKY_RELU)
            for (int64_t j = 0; j < n; j++)
                ci[j] = ci[j] >= 0.0f ? ci[j] : alpha * ci[j];
    }
}

void cpu_bias_act_f32(int64_t m, int64_t n, const float *bias, cpu_act act, float act_alpha,
                      float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    const int reg_act = act == CPU_ACT_RELU || act == CPU_ACT_LEAKY_RELU ? (int)act : 0;
    if (bias || reg_act)
        bias_act_rows(m, n, bias, reg_act, act_alpha, c, ldc);
    if (act == CPU_ACT_SIGMOID || act == CPU_ACT_TANH) {
        void (*f)(const float *, float *, int64_t) =
            act == CPU_ACT_SIGMOID ? cpu_sigmoid_f32 : cpu_tanh_f32;
        if (ldc == n)
            f(c, c, m * n);
        else
            for (int64_t i = 0; i < m; i++)
                f(c + i * ldc, c + i * ldc, n);
    }
}
