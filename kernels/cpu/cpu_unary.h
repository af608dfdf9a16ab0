/* cpu_unary: elementwise activations, softmax and per-channel affine (inference batch norm).
 *
 * Called by the engine's op layer (server/engine/ops_math.c). exp, sigmoid and tanh use our own
 * branch-free polynomial approximations (Cephes-style, a few ulp, see cpu_unary.c) instead of
 * libm, because libm calls keep GCC from vectorising the loop; everything is multi-versioned
 * (cpu_target.h). Counts are elements. Pointers are borrowed; outputs may equal inputs
 * (in place) except where stated. Pure functions: thread-safe, no allocation. */
#ifndef HLT_CPU_UNARY_H
#define HLT_CPU_UNARY_H

#include <stdint.h>

void cpu_relu_f32(const float *x, float *y, int64_t n);
/* y = x >= 0 ? x : alpha * x */
void cpu_leaky_relu_f32(const float *x, float *y, int64_t n, float alpha);
void cpu_sigmoid_f32(const float *x, float *y, int64_t n);
void cpu_tanh_f32(const float *x, float *y, int64_t n);
void cpu_exp_f32(const float *x, float *y, int64_t n);

/* Softmax over the middle axis of x viewed as [outer, len, inner] (row-major). ws: 2 * inner
 * floats of scratch when inner > 1, unused (may be NULL) when inner == 1. y must not overlap x
 * when inner > 1. */
void cpu_softmax_f32(const float *x, float *y, int64_t outer, int64_t len, int64_t inner,
                     float *ws);

/* Folds inference batch-norm parameters into a per-channel affine map:
 * a[c] = scale[c] / sqrt(var[c] + eps), b[c] = bias[c] - mean[c] * a[c]. */
void cpu_bn_coeffs_f32(const float *scale, const float *bias, const float *mean, const float *var,
                       float eps, int64_t channels, float *a, float *b);

/* y[o, c, i] = x[o, c, i] * a[c] + b[c] for x viewed as [outer, channels, inner]. */
void cpu_channel_affine_f32(const float *x, float *y, int64_t outer, int64_t channels,
                            int64_t inner, const float *a, const float *b);

#endif
