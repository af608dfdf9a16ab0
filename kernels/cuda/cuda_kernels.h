/* cuda_kernels: the CUDA backend's device kernels, behind C launchers.
 *
 * Called by the CUDA backend (server/backend/cuda/cuda_run.c) once per graph node per chunk,
 * possibly while a stream is being captured into a CUDA graph, so launchers only enqueue work
 * on the given stream: they never allocate, never synchronise and never read device memory
 * from the host. Each returns the launch status (cudaGetLastError after the launch;
 * cudaSuccess and nothing enqueued for an empty tensor). GEMM is not here: the backend calls
 * cuBLAS for it.
 *
 * Numerics follow the CPU reference (kernels/cpu): the same operation order where it matters
 * (BatchNormalization's coefficients in double, softmax with the row maximum subtracted),
 * CUDA's full-precision expf/tanhf rather than the fast intrinsics. Thread-safe: pure. */
#ifndef HLT_CUDA_KERNELS_H
#define HLT_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUDAK_MAX_RANK 8

typedef enum cudak_binop {
    CUDAK_ADD,
    CUDAK_SUB,
    CUDAK_MUL,
    CUDAK_DIV,
} cudak_binop;

typedef enum cudak_unop {
    CUDAK_RELU,
    CUDAK_LEAKY_RELU,
    CUDAK_SIGMOID,
    CUDAK_TANH,
} cudak_unop;

/* An output of `rank` dims, row-major and contiguous, read from one or two operands through
 * element strides (0 where an operand is broadcast). Built by the caller with size-1 dims
 * dropped and contiguous neighbours merged, so a same-shape operation is rank 1. */
typedef struct cudak_iter {
    int32_t rank;
    int64_t dims[CUDAK_MAX_RANK];
    int64_t sa[CUDAK_MAX_RANK];
    int64_t sb[CUDAK_MAX_RANK];
} cudak_iter_t;

/* y = a op b over it (sa for a, sb for b). INT64: wrap-around, division truncates and x/0 or
 * INT64_MIN/-1 give 0, as the CPU kernels. */
cudaError_t cudak_binary_f32(cudak_binop op, const float *a, const float *b, float *y,
                             const cudak_iter_t *it, cudaStream_t s);
cudaError_t cudak_binary_i64(cudak_binop op, const int64_t *a, const int64_t *b, int64_t *y,
                             const cudak_iter_t *it, cudaStream_t s);

/* y = f(x) elementwise over n elements; alpha is LeakyRelu's slope. y may equal x. */
cudaError_t cudak_unary_f32(cudak_unop op, const float *x, float *y, int64_t n, float alpha,
                            cudaStream_t s);

/* Softmax over len elements at stride inner, for each of outer * inner positions. */
cudaError_t cudak_softmax_f32(const float *x, float *y, int64_t outer, int64_t len, int64_t inner,
                              cudaStream_t s);

/* Inference BatchNormalization of x [outer, c, inner]: coefficients a = scale / sqrt(var + eps),
 * b = bias - mean * a computed in double into ws (2 * c floats), then y = x * a + b. */
cudaError_t cudak_batchnorm_f32(const float *x, float *y, int64_t outer, int64_t c, int64_t inner,
                                const float *scale, const float *bias, const float *mean,
                                const float *var, float eps, float *ws, cudaStream_t s);

/* y = x * a[ch] + b[ch] over x [outer, c, inner] (BatchNormalization with folded coefficients). */
cudaError_t cudak_channel_affine_f32(const float *x, float *y, int64_t outer, int64_t c,
                                     int64_t inner, const float *a, const float *b, cudaStream_t s);

/* Strided gather: y (contiguous, dims it->dims) [i] = x[sum idx_d * it->sa[d]] for elements of
 * esize 4 or 8 bytes (sb unused). Transpose (permuted strides) and broadcasting copies (zero
 * strides) are both this. */
cudaError_t cudak_gather(size_t esize, const void *x, void *y, const cudak_iter_t *it,
                         cudaStream_t s);

#define CUDAK_CHAIN_MAX 128 /* widest layer of a chain (ENGINE_CHAIN_MAX_WIDTH) */

/* A chain of dense layers in one launch (server/engine/fuse.h): x [m, K0] through the chain
 * described by blob (its layout in fuse.h, on the device) into y [m, N]; z (may be NULL) gets
 * the last layer's values before the Softmax (logits that are a graph output). One thread per
 * row, hidden values in registers/local memory, weights read through the read-only cache (the
 * same address across a warp: broadcast). */
cudaError_t cudak_chain_f32(const float *x, float *y, float *z, int64_t m, const void *blob,
                            cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
