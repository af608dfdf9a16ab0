/* eltwise.cl: Add/Sub/Mul/Div with numpy broadcasting, and the activations.
 *
 * Binary ops: the host merges dims the way kernels/cpu/cpu_binary.c does, so the output is
 * [outer..., L] where the innermost run of L elements is contiguous in Y and, in A and B,
 * either contiguous (stride 1) or one broadcast value (stride 0). Dimension 0 of the NDRange
 * walks that run four elements at a time (float4 loads), dimension 1 the outer index, whose
 * offsets in A and B come from the outer dims and strides (od, as, bs; ro of them).
 * INT64 variants follow the CPU backend: wrap-around, and 0 for x / 0 and INT64_MIN / -1. */

#define F_ADD(a, b) ((a) + (b))
#define F_SUB(a, b) ((a) - (b))
#define F_MUL(a, b) ((a) * (b))
#define F_DIV(a, b) ((a) / (b))

#define BINARY_F32(NAME, OP)                                                                       \
    __kernel void NAME(__global const float *A, int ao, __global const float *B, int bo,           \
                       __global float *Y, int yo, int L, int ai, int bi, int n_outer, int ro,      \
                       int8 od, int8 as, int8 bs)                                                  \
    {                                                                                              \
        const int j = get_global_id(0) * 4, o = get_global_id(1);                                 \
        if (j >= L || o >= n_outer)                                                                \
            return;                                                                                \
        __global const float *a = A + ao + strided_offset(o, ro, od, as);                         \
        __global const float *b = B + bo + strided_offset(o, ro, od, bs);                         \
        __global float *y = Y + yo + o * L;                                                        \
        if (j + 4 <= L) {                                                                          \
            const float4 va = ai ? vload4(0, a + j) : (float4)(a[0]);                              \
            const float4 vb = bi ? vload4(0, b + j) : (float4)(b[0]);                              \
            vstore4(OP(va, vb), 0, y + j);                                                         \
        } else {                                                                                   \
            for (int k = j; k < L; k++)                                                            \
                y[k] = OP(a[k * ai], b[k * bi]);                                                   \
        }                                                                                          \
    }

BINARY_F32(add_f32, F_ADD)
BINARY_F32(sub_f32, F_SUB)
BINARY_F32(mul_f32, F_MUL)
BINARY_F32(div_f32, F_DIV)

long i64_div(long a, long b)
{
    return b == 0 || (a == LONG_MIN && b == -1) ? 0 : a / b;
}
#define I_ADD(a, b) as_long(as_ulong(a) + as_ulong(b))
#define I_SUB(a, b) as_long(as_ulong(a) - as_ulong(b))
#define I_MUL(a, b) as_long(as_ulong(a) * as_ulong(b))
#define I_DIV(a, b) i64_div(a, b)

#define BINARY_I64(NAME, OP)                                                                       \
    __kernel void NAME(__global const long *A, int ao, __global const long *B, int bo,             \
                       __global long *Y, int yo, int L, int ai, int bi, int n_outer, int ro,       \
                       int8 od, int8 as, int8 bs)                                                  \
    {                                                                                              \
        const int j = get_global_id(0) * 4, o = get_global_id(1);                                 \
        if (j >= L || o >= n_outer)                                                                \
            return;                                                                                \
        __global const long *a = A + ao + strided_offset(o, ro, od, as);                          \
        __global const long *b = B + bo + strided_offset(o, ro, od, bs);                          \
        __global long *y = Y + yo + o * L;                                                         \
        for (int k = j; k < min(j + 4, L); k++)                                                    \
            y[k] = OP(a[k * ai], b[k * bi]);                                                       \
    }

BINARY_I64(add_i64, I_ADD)
BINARY_I64(sub_i64, I_SUB)
BINARY_I64(mul_i64, I_MUL)
BINARY_I64(div_i64, I_DIV)

/* Activations over n contiguous elements, four per work-item. */
float4 f_relu(float4 x, float alpha)
{
    return fmax(x, 0.0f);
}
float4 f_leaky(float4 x, float alpha)
{
    return select(alpha * x, x, x >= 0.0f);
}
/* 1 / (1 + e^-|x|) mirrored, so the tail for x << 0 keeps its relative precision. */
float4 f_sigmoid(float4 x, float alpha)
{
    const float4 e = exp(-fabs(x));
    const float4 s = 1.0f / (1.0f + e);
    return select(e * s, s, x >= 0.0f);
}
float4 f_tanh(float4 x, float alpha)
{
    return tanh(x);
}

#define UNARY(NAME, FN)                                                                            \
    __kernel void NAME(__global const float *X, int xo, __global float *Y, int yo, int n,          \
                       float alpha)                                                                \
    {                                                                                              \
        const int i = get_global_id(0) * 4;                                                        \
        if (i >= n)                                                                                \
            return;                                                                                \
        X += xo;                                                                                   \
        Y += yo;                                                                                   \
        if (i + 4 <= n) {                                                                          \
            vstore4(FN(vload4(0, X + i), alpha), 0, Y + i);                                        \
        } else {                                                                                   \
            for (int k = i; k < n; k++)                                                            \
                Y[k] = FN((float4)(X[k]), alpha).s0;                                               \
        }                                                                                          \
    }

UNARY(relu_f32, f_relu)
UNARY(leaky_relu_f32, f_leaky)
UNARY(sigmoid_f32, f_sigmoid)
UNARY(tanh_f32, f_tanh)
