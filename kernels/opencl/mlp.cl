/* mlp.cl: a whole chain of small dense layers in one launch (the host's ocl_ops_fuse_mlp).
 *
 * Trigger models are mostly MLPs of a few layers at most HLT_MLP_MAX wide (FACILE 15-36-36-1,
 * the jet tagger 64-128-64-32-5). Layer by layer they are three to five GEMM launches whose
 * kernels are microseconds on a GPU; one launch carries a row through every layer with the
 * hidden activations in private memory and the weights read from the constant buffer, so a
 * batch is one write, one kernel, one read.
 *
 * D (ints, at element offset dof of the constants buffer) describes the chain: D[0] = layers;
 * layer l at D[1 + 8*l]: K, N, activation (0 none, 1 Relu, 2 LeakyRelu, 3 Sigmoid, 4 Tanh),
 * element offset in P of W (N x K, row n contiguous), of the epilogue bias|scale|shift (3 x N),
 * the activation's alpha (float bits), alpha of the GEMM (float bits), 0. D[1 + 8*layers] = 1
 * applies a softmax over the last layer's N outputs. Per output n of a layer:
 *     y = act((alpha * (W[n,:] . h) + bias[n]) * scale[n] + shift[n])
 * the order of gemm.cl's epilogue (bias = beta * C + the fused Add's bias). With has_z the
 * last layer's outputs before the softmax are stored to Z as well (logits that are a graph
 * output of their own).
 *
 * Two shapes, as gemm.cl: mlp_rows8 (CPU-like devices) carries 8 rows per work-item in the
 * lanes of float8 values, so every multiply-add is a vector one without relying on the
 * compiler's work-item vectoriser; mlp_row (GPUs) one row per work-item, the weights the same
 * for the whole group (broadcast loads). X is [M, K0] and Y [M, N_last], row-major. */
#ifndef HLT_MLP_MAX
#define HLT_MLP_MAX 128
#endif

/* Activation of gemm.cl's epilogue, for a scalar or a vector y (a statement). */
#define MLP_ACT(T, y, act, a)                                                                      \
    do {                                                                                           \
        if ((act) == 1) {                                                                          \
            y = fmax(y, 0.0f);                                                                     \
        } else if ((act) == 2) {                                                                   \
            y = y >= 0.0f ? y : (a) * y;                                                           \
        } else if ((act) == 3) {                                                                   \
            const T ex = exp(-fabs(y)), sg = 1.0f / (1.0f + ex);                                   \
            y = y >= 0.0f ? sg : ex * sg;                                                          \
        } else if ((act) == 4) {                                                                   \
            y = tanh(y);                                                                           \
        }                                                                                          \
    } while (0)

/* Row r of X, column k, for lanes rows r0..r0+L-1 (rows past M repeat row M-1; never stored). */
float8 mlp_ld8(__global const float *x, int r0, int M, int ld, int k)
{
    const int l = M - 1;
    return (float8)(x[min(r0, l) * ld + k], x[min(r0 + 1, l) * ld + k],
                    x[min(r0 + 2, l) * ld + k], x[min(r0 + 3, l) * ld + k],
                    x[min(r0 + 4, l) * ld + k], x[min(r0 + 5, l) * ld + k],
                    x[min(r0 + 6, l) * ld + k], x[min(r0 + 7, l) * ld + k]);
}

void mlp_st8(__global float *y, int r0, int M, int ld, int n, float8 v)
{
    float t[8];
    vstore8(v, 0, t);
    const int rows = min(8, M - r0);
    for (int i = 0; i < rows; i++)
        y[(r0 + i) * ld + n] = t[i];
}

float mlp_ld1(__global const float *x, int r0, int M, int ld, int k)
{
    return x[min(r0, M - 1) * ld + k];
}

void mlp_st1(__global float *y, int r0, int M, int ld, int n, float v)
{
    if (r0 < M)
        y[r0 * ld + n] = v;
}

/* Output j of the current layer from its dot product (uses the body's locals). */
#define MLP_OUT(T, acc, jj)                                                                        \
    do {                                                                                           \
        T y = (alpha * (acc) + e[jj]) * e[n + (jj)] + e[2 * n + (jj)];                             \
        MLP_ACT(T, y, act, aa);                                                                    \
        h[cur ^ 1][jj] = y;                                                                        \
    } while (0)

/* The kernel body for lanes of type T holding L rows; LD/ST load and store one column. */
#define MLP_BODY(T, L, LD, ST)                                                                     \
    const int r0 = get_global_id(0) * (L);                                                         \
    if (r0 >= M)                                                                                   \
        return;                                                                                    \
    X += xo;                                                                                       \
    Y += yo;                                                                                       \
    P += po;                                                                                       \
    D += dof;                                                                                      \
    T h[2][HLT_MLP_MAX];                                                                           \
    const int layers = D[0], k0 = D[1];                                                            \
    for (int k = 0; k < k0; k++)                                                                   \
        h[0][k] = LD(X, r0, M, k0, k);                                                             \
    int cur = 0, n = 0;                                                                            \
    for (int l = 0; l < layers; l++) {                                                             \
        __global const int *d = D + 1 + 8 * l;                                                     \
        const int K = d[0], act = d[2];                                                            \
        __global const float *w = P + d[3], *e = P + d[4];                                         \
        const float aa = as_float(d[5]), alpha = as_float(d[6]);                                   \
        n = d[1];                                                                                  \
        int j = 0;                                                                                 \
        for (; j + 4 <= n; j += 4) { /* four outputs share each load of h */                       \
            __global const float *w0 = w + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;        \
            T a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;                                          \
            for (int k = 0; k < K; k++) {                                                          \
                const T x = h[cur][k];                                                             \
                a0 += w0[k] * x;                                                                   \
                a1 += w1[k] * x;                                                                   \
                a2 += w2[k] * x;                                                                   \
                a3 += w3[k] * x;                                                                   \
            }                                                                                      \
            MLP_OUT(T, a0, j);                                                                     \
            MLP_OUT(T, a1, j + 1);                                                                 \
            MLP_OUT(T, a2, j + 2);                                                                 \
            MLP_OUT(T, a3, j + 3);                                                                 \
        }                                                                                          \
        for (; j < n; j++) {                                                                       \
            __global const float *wj = w + j * K;                                                  \
            T acc = 0.0f;                                                                          \
            for (int k = 0; k < K; k++)                                                            \
                acc += wj[k] * h[cur][k];                                                          \
            MLP_OUT(T, acc, j);                                                                    \
        }                                                                                          \
        cur ^= 1;                                                                                  \
    }                                                                                              \
    if (D[1 + 8 * layers]) {                                                                       \
        for (int j = 0; has_z && j < n; j++)                                                       \
            ST(Z + zo, r0, M, n, j, h[cur][j]);                                                    \
        T m = h[cur][0];                                                                           \
        for (int j = 1; j < n; j++)                                                                \
            m = fmax(m, h[cur][j]);                                                                \
        T s = 0.0f;                                                                                \
        for (int j = 0; j < n; j++) {                                                              \
            h[cur][j] = exp(h[cur][j] - m);                                                        \
            s += h[cur][j];                                                                        \
        }                                                                                          \
        const T r = 1.0f / s;                                                                      \
        for (int j = 0; j < n; j++)                                                                \
            h[cur][j] *= r;                                                                        \
    }                                                                                              \
    for (int j = 0; j < n; j++)                                                                    \
        ST(Y, r0, M, n, j, h[cur][j]);

__kernel void mlp_rows8(__global const float *X, int xo, __global float *Y, int yo, int M,
                        __global const float *P, int po, __global const int *D, int dof,
                        __global float *Z, int zo, int has_z)
{
    MLP_BODY(float8, 8, mlp_ld8, mlp_st8)
}

__kernel void mlp_row(__global const float *X, int xo, __global float *Y, int yo, int M,
                      __global const float *P, int po, __global const int *D, int dof,
                      __global float *Z, int zo, int has_z)
{
    MLP_BODY(float, 1, mlp_ld1, mlp_st1)
}
