/* cpu_gemm: single-precision matrix multiply for the CPU backend, and the OpenBLAS facts the
 * server reports.
 *
 * Owns the choice between OpenBLAS's cblas_sgemm and our own small-matrix kernel. Called by the
 * engine's Gemm and MatMul ops (server/engine/ops_math.c) and by the server at start-up to log
 * which BLAS kernels run.
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
