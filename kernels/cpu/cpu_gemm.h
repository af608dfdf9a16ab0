/* cpu_gemm: single-precision matrix multiply for the CPU backend, and the OpenBLAS facts the
 * server reports.
 *
 * Owns the choice between OpenBLAS's cblas_sgemm and our own kernels: cpu_sgemm (any operands;
 * our unpacked small-matrix kernel for batch 1-2) and, for dense layers with a constant weight,
 * cpu_sgemm_packed (cpu_gemm_packed.c: weight packed once, register-blocked AVX-512/AVX2 tiles,
 * bias + activation fused). Called by the engine's execution plan (server/engine/exec.c) for
 * its layers, by its Gemm and MatMul ops (server/engine/ops_math.c) for everything else, and by
 * the server at start-up to log which BLAS kernels run.
 *
 * OpenBLAS on this project's hosts (Debian 12, OpenBLAS 0.3.21, DYNAMIC_ARCH) does not know
 * recent CPUs: on AMD Zen 5 it picks its Zen/Haswell (AVX2) kernels, on a Sapphire-Rapids-class
 * Xeon even "Prescott" (SSE3): measured 31 GFLOP/s for a 512^3 sgemm on one core there, against
 * 112 with OPENBLAS_CORETYPE=SkylakeX (200 on two cores). The variable must be in the
 * environment *before the process starts*: OpenBLAS picks its kernels in a library constructor,
 * so setenv() in main() is too late (a server can re-exec itself; see
 * cpu_blas_recommended_coretype). OpenBLAS does not check the override against the CPU: on a
 * host without AVX-512 (e.g. the AVX2 build VM) the first sgemm dies with SIGILL. cpu_sgemm
 * therefore never calls OpenBLAS when the selected core needs AVX-512 that the CPU lacks (our
 * kernel takes every shape instead), and cpu_blas_check() lets the server say so at start-up.
 *
 * Threads: nothing here creates threads. OpenBLAS's own pool is sized by the server with
 * cpu_blas_set_threads() (or OPENBLAS_NUM_THREADS); every function is thread-safe. */
#ifndef HLT_CPU_GEMM_H
#define HLT_CPU_GEMM_H

#include "hltinfer/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cpu_gemm_path {
    CPU_GEMM_SMALL = 0, /* our kernel: call overhead dominates, or OpenBLAS is unusable */
    CPU_GEMM_BLAS = 1,  /* cblas_sgemm */
} cpu_gemm_path;

/* C[m,n] = alpha * op(A) * op(B) + beta * C, row-major, op(X) = X or X^T. A is [m,k] ([k,m] when
 * trans_a), B is [k,n] ([n,k] when trans_b). beta == 0 ignores C's previous contents (NaN
 * included). All pointers borrowed; c must not overlap a or b. Thread-safe. */
void cpu_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc);

/* Which path cpu_sgemm takes for these arguments (for tests, logs and benchmarks). */
cpu_gemm_path cpu_gemm_choose(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k);

/* Always our own kernel, whatever the shape; the reference the BLAS path is tested against and
 * the fallback when OpenBLAS is unusable. Same contract as cpu_sgemm. */
void cpu_sgemm_small(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc);

/* ---- Packed-B kernel with a fused epilogue (cpu_gemm_packed.c) ----------------------------
 *
 * For dense layers: C[m, n] = act(A[m, k] * alpha op(B) + bias), where op(B) ([k, n]) is a
 * constant the caller packs once with cpu_sgemm_pack and A has many rows. Register-blocked for
 * AVX-512 and AVX2+FMA (chosen at run time), portable C elsewhere. No allocation; thread-safe;
 * the packed buffer is read-only once written and may be shared between threads. */

typedef enum cpu_act {
    CPU_ACT_NONE = 0,
    CPU_ACT_RELU,       /* x > 0 ? x : 0 (as cpu_relu_f32) */
    CPU_ACT_LEAKY_RELU, /* x >= 0 ? x : alpha * x */
    CPU_ACT_SIGMOID,    /* cpu_sigmoid_f32 */
    CPU_ACT_TANH,       /* cpu_tanh_f32 */
} cpu_act;

typedef enum cpu_isa {
    CPU_ISA_AUTO = 0, /* cpu_gemm_set_isa: the best this CPU has */
    CPU_ISA_BASELINE = 1,
    CPU_ISA_AVX2 = 2,   /* AVX2 + FMA (x86-64-v3) */
    CPU_ISA_AVX512 = 3, /* AVX-512 F/VL/BW/DQ (x86-64-v4) */
} cpu_isa;

/* Floats a packed operand takes (a multiple of 16; allocate 64-byte aligned). */
size_t cpu_sgemm_packed_floats(int64_t n, int64_t k);

/* Packs alpha * op(B) (B [k, n], or [n, k] when trans_b, leading dim ldb) and bias ([n], or NULL
 * for none) into packed (cpu_sgemm_packed_floats(n, k) floats). */
void cpu_sgemm_pack(bool trans_b, int64_t n, int64_t k, float alpha, const float *b, int64_t ldb,
                    const float *bias, float *packed);

/* C[m, n] = act(A op(B) + bias) from a packed operand; A [m, k] row-major with leading dim lda,
 * C with leading dim ldc (columns beyond n untouched); c must not overlap a. act_alpha is
 * LeakyRelu's alpha. */
void cpu_sgemm_packed(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                      const float *packed, cpu_act act, float act_alpha, float *c, int64_t ldc);

/* The epilogue alone, in place: C[m, n] = act(C + bias) (bias [n] or NULL). For layers that
 * run through cblas_sgemm. */
void cpu_bias_act_f32(int64_t m, int64_t n, const float *bias, cpu_act act, float act_alpha,
                      float *c, int64_t ldc);

/* Which kernel a layer C[m, n] = A[m, k] op(B) (+ epilogue) with a constant B should use:
 * CPU_GEMM_SMALL = cpu_sgemm_packed, CPU_GEMM_BLAS = cpu_sgemm + cpu_bias_act_f32 (measurements
 * in cpu_gemm.c). BLAS whenever k * n > CPU_GEMM_PACK_MAX_KN (the engine does not pack those). */
cpu_gemm_path cpu_gemm_choose_packed(bool trans_b, int64_t m, int64_t n, int64_t k);

/* Largest k * n the engine packs (bigger layers always go to OpenBLAS). */
#define CPU_GEMM_PACK_MAX_KN (INT64_C(1) << 18)

/* ISA cpu_sgemm_packed runs; cpu_gemm_set_isa caps it (tests, benchmarks: CPU_ISA_AUTO lifts
 * the cap) and returns the ISA now in use. Process-wide. */
cpu_isa cpu_gemm_isa(void);
cpu_isa cpu_gemm_set_isa(cpu_isa want);
const char *cpu_isa_name(cpu_isa isa);

/* OpenBLAS's kernel family for this process ("Zen", "Haswell", "SkylakeX", ...). Static string
 * owned by OpenBLAS. */
const char *cpu_blas_corename(void);

/* true when the CPU has AVX-512 F, BW, VL and DQ (what OpenBLAS's SkylakeX kernels use). */
bool cpu_has_avx512(void);

/* "SkylakeX" when this CPU has AVX-512 but OpenBLAS runs older kernels (so the process should be
 * started with OPENBLAS_CORETYPE set to that value), else NULL. Static string. */
const char *cpu_blas_recommended_coretype(void);

/* false when OpenBLAS was told (OPENBLAS_CORETYPE) to run AVX-512 kernels on a CPU without
 * AVX-512: cpu_sgemm then never calls it. */
bool cpu_blas_usable(void);

/* Checks the OpenBLAS set-up. Returns HLT_FAILED_PRECONDITION with a message when OpenBLAS would
 * fault (AVX-512 kernels forced on a CPU without AVX-512; cpu_sgemm still works, without BLAS).
 * Returns HLT_OK otherwise; when the CPU has AVX-512 but OpenBLAS runs AVX2 kernels the message
 * is advice ("set OPENBLAS_CORETYPE=SkylakeX ..."), else it describes the set-up. err may be
 * NULL. */
hlt_status cpu_blas_check(char *err, size_t errlen);

/* Sets OpenBLAS's thread count for the whole process (its pool is process-wide). */
void cpu_blas_set_threads(int32_t n);

#endif
