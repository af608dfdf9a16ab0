/* cpu_unary: vectorisable activations and softmax.
 *
 * exp: x = n ln2 + r with |r| <= ln2/2 (n by the float "magic number" rounding trick, so no
 * float->int conversion, which is undefined for NaN), e^r by the Cephes expf minimax polynomial
 * (about 1 ulp on the reduced range), 2^n applied as two power-of-two factors so results stay
 * exact into the subnormal range and overflow to +inf above ln(FLT_MAX). Relative error against
 * double-precision exp measured in tests/engine/test_cpu_kernels.c: < 3e-7 over [-87, 88].
 * tanh: odd Cephes polynomial for |x| < 0.625, 1 - 2 / (e^{2|x|} + 1) above (no cancellation
 * there since tanh >= 0.55). sigmoid: 1 / (1 + e^{-|x|}), mirrored, so the tiny tail keeps
 * full relative precision. Both branches are computed and selected so the loops vectorise. */
#include "cpu_unary.h"

#include "cpu_target.h"

#include <math.h>
#include <string.h>

/* 2^e for e in [-126, 127]; unsigned arithmetic so a NaN's garbage exponent is not UB. */
static inline float pow2i(int32_t e)
{
    const uint32_t u = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline int32_t to_bits(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

static inline float fast_expf(float x)
{
    x = x > 89.0f ? 89.0f : x;       /* e^89 overflows to +inf below, as it should */
    x = x < -104.0f ? -104.0f : x;   /* e^-104 underflows to 0 below */
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float t = x * 1.44269504088896341f + magic;
    const float n = t - magic;
    const int32_t ni = to_bits(t) - to_bits(magic);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    const int32_t n1 = ni >> 1, n2 = ni - n1; /* each in [-75, 64]: a normal power of two */
    return p * pow2i(n1) * pow2i(n2);
}

CPU_CLONES void cpu_exp_f32(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = fast_expf(x[i]);
}

CPU_CLONES void cpu_relu_f32(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

CPU_CLONES void cpu_leaky_relu_f32(const float *x, float *y, int64_t n, float alpha)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];
}

CPU_CLONES void cpu_sigmoid_f32(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float e = fast_expf(v < 0.0f ? v : -v);
        const float s = 1.0f / (1.0f + e);
        y[i] = v >= 0.0f ? s : e * s;
    }
}

CPU_CLONES void cpu_tanh_f32(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float a = v < 0.0f ? -v : v;
        const float z = v * v;
        float p = -5.70498872745e-3f;
        p = p * z + 2.06390887954e-2f;
        p = p * z - 5.37397155531e-2f;
        p = p * z + 1.33314422036e-1f;
        p = p * z - 3.33332819422e-1f;
        const float small = p * z * v + v;
        const float big = 1.0f - 2.0f / (fast_expf(2.0f * a) + 1.0f);
        y[i] = a < 0.625f ? small : (v < 0.0f ? -big : big);
    }
}

#define LANES 16

/* Softmax of contiguous rows of len elements. */
CPU_CLONES static void softmax_rows(const float *x, float *y, int64_t rows, int64_t len)
{
    const int64_t lv = len - len % LANES;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        float m[LANES];
        for (int l = 0; l < LANES; l++)
            m[l] = -INFINITY;
        for (int64_t i = 0; i < lv; i += LANES)
            for (int l = 0; l < LANES; l++)
                m[l] = xr[i + l] > m[l] ? xr[i + l] : m[l];
        float mx = -INFINITY;
        for (int l = 0; l < LANES; l++)
            mx = m[l] > mx ? m[l] : mx;
        for (int64_t i = lv; i < len; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        float s[LANES] = {0};
        for (int64_t i = 0; i < lv; i += LANES)
            for (int l = 0; l < LANES; l++) {
                const float e = fast_expf(xr[i + l] - mx);
                yr[i + l] = e;
                s[l] += e;
            }
        float sum = 0.0f;
        for (int l = 0; l < LANES; l++)
            sum += s[l];
        for (int64_t i = lv; i < len; i++) {
            const float e = fast_expf(xr[i] - mx);
            yr[i] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < len; i++)
            yr[i] *= inv;
    }
}

/* Softmax along a strided axis: every loop runs along the contiguous inner dimension. */
CPU_CLONES static void softmax_strided(const float *x, float *y, int64_t outer, int64_t len,
                                       int64_t inner, float *restrict mx, float *restrict sum)
{
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * len * inner;
        float *yo = y + o * len * inner;
        for (int64_t j = 0; j < inner; j++) {
            mx[j] = xo[j];
            sum[j] = 0.0f;
        }
        for (int64_t k = 1; k < len; k++)
            for (int64_t j = 0; j < inner; j++)
                mx[j] = xo[k * inner + j] > mx[j] ? xo[k * inner + j] : mx[j];
        for (int64_t k = 0; k < len; k++)
            for (int64_t j = 0; j < inner; j++) {
                const float e = fast_expf(xo[k * inner + j] - mx[j]);
                yo[k * inner + j] = e;
                sum[j] += e;
            }
        for (int64_t j = 0; j < inner; j++)
            sum[j] = 1.0f / sum[j];
        for (int64_t k = 0; k < len; k++)
            for (int64_t j = 0; j < inner; j++)
                yo[k * inner + j] *= sum[j];
    }
}

void cpu_softmax_f32(const float *x, float *y, int64_t outer, int64_t len, int64_t inner, float *ws)
{
    if (outer <= 0 || len <= 0 || inner <= 0)
        return;
    if (inner == 1)
        softmax_rows(x, y, outer, len);
    else
        softmax_strided(x, y, outer, len, inner, ws, ws + inner);
}

void cpu_bn_coeffs_f32(const float *scale, const float *bias, const float *mean, const float *var,
                       float eps, int64_t channels, float *a, float *b)
{
    for (int64_t c = 0; c < channels; c++) {
        /* In double: var + eps and the division are where precision would go. */
        const double ac = (double)scale[c] / sqrt((double)var[c] + (double)eps);
        a[c] = (float)ac;
        b[c] = (float)((double)bias[c] - (double)mean[c] * ac);
    }
}

CPU_CLONES void cpu_channel_affine_f32(const float *x, float *y, int64_t outer, int64_t channels,
                                       int64_t inner, const float *a, const float *b)
{
    if (inner == 1) {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t c = 0; c < channels; c++)
                y[o * channels + c] = x[o * channels + c] * a[c] + b[c];
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < channels; c++) {
            const float ac = a[c], bc = b[c];
            const float *xc = x + (o * channels + c) * inner;
            float *yc = y + (o * channels + c) * inner;
            for (int64_t i = 0; i < inner; i++)
                yc[i] = xc[i] * ac + bc;
        }
}
