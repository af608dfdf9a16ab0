/* cuda_ops: device kernels of the CUDA backend (see cuda_kernels.h).
 *
 * One .cu file on purpose: nvcc costs ~2 s per translation unit whatever its size.
 *
 * Every kernel is a grid-stride loop over its output, so any size runs with a bounded grid.
 * Broadcast and strided indexing decompose the flat output index dim by dim; the index type is
 * 32-bit whenever every index and offset of the call fits (integer division by a 64-bit value
 * is several times slower on the GPU), 64-bit otherwise. At the sizes of trigger models these
 * kernels are bound by launch latency and memory traffic, not by arithmetic. */
#include "cuda_kernels.h"

#include <cuda_runtime.h>
#include <math.h>

namespace
{

constexpr int THREADS = 256;
constexpr int64_t MAX_BLOCKS = 65535;

unsigned blocks_for(int64_t n)
{
    const int64_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < MAX_BLOCKS ? b : MAX_BLOCKS);
}

template <typename I> struct iter {
    int32_t rank;
    I dims[CUDAK_MAX_RANK];
    I sa[CUDAK_MAX_RANK];
    I sb[CUDAK_MAX_RANK];
};

template <typename I> iter<I> narrow(const cudak_iter_t *it)
{
    iter<I> r{};
    r.rank = it->rank;
    for (int d = 0; d < it->rank; d++) {
        r.dims[d] = (I)it->dims[d];
        r.sa[d] = (I)it->sa[d];
        r.sb[d] = (I)it->sb[d];
    }
    return r;
}

int64_t numel(const cudak_iter_t *it)
{
    int64_t n = 1;
    for (int d = 0; d < it->rank; d++)
        n *= it->dims[d];
    return n;
}

/* True when every flat index and every operand offset of it fits in int32. */
bool fits32(const cudak_iter_t *it)
{
    int64_t n = numel(it), ma = 0, mb = 0;
    for (int d = 0; d < it->rank; d++) {
        ma += (it->dims[d] - 1) * it->sa[d];
        mb += (it->dims[d] - 1) * it->sb[d];
    }
    return n <= INT32_MAX && ma <= INT32_MAX && mb <= INT32_MAX;
}

/* Offsets of flat output index i in operands a and b. */
template <typename I> __device__ __forceinline__ void offsets(const iter<I> &it, I i, I &oa, I &ob)
{
    if (it.rank == 1) {
        oa = i * it.sa[0];
        ob = i * it.sb[0];
        return;
    }
    I rem = i;
    oa = 0;
    ob = 0;
#pragma unroll
    for (int d = CUDAK_MAX_RANK - 1; d >= 0; d--) {
        if (d < it.rank) {
            const I q = rem / it.dims[d];
            const I r = rem - q * it.dims[d];
            oa += r * it.sa[d];
            ob += r * it.sb[d];
            rem = q;
        }
    }
}

__device__ __forceinline__ float apply(cudak_binop op, float x, float z)
{
    switch (op) {
    case CUDAK_ADD:
        return x + z;
    case CUDAK_SUB:
        return x - z;
    case CUDAK_MUL:
        return x * z;
    default:
        return x / z;
    }
}

__device__ __forceinline__ int64_t apply(cudak_binop op, int64_t x, int64_t z)
{
    switch (op) {
    case CUDAK_ADD:
        return (int64_t)((uint64_t)x + (uint64_t)z);
    case CUDAK_SUB:
        return (int64_t)((uint64_t)x - (uint64_t)z);
    case CUDAK_MUL:
        return (int64_t)((uint64_t)x * (uint64_t)z);
    default:
        return (z == 0 || (x == INT64_MIN && z == -1)) ? 0 : x / z;
    }
}

template <typename T, cudak_binop OP, typename I>
__global__ void binary_k(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ y,
                         iter<I> it, I n)
{
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I oa, ob;
        offsets(it, i, oa, ob);
        y[i] = apply(OP, a[oa], b[ob]);
    }
}

template <typename T, cudak_binop OP, typename I>
void binary_launch(const T *a, const T *b, T *y, const cudak_iter_t *it, int64_t n, cudaStream_t s)
{
    binary_k<T, OP, I><<<blocks_for(n), THREADS, 0, s>>>(a, b, y, narrow<I>(it), (I)n);
}

template <typename T, cudak_binop OP>
void binary_dispatch(const T *a, const T *b, T *y, const cudak_iter_t *it, cudaStream_t s)
{
    const int64_t n = numel(it);
    if (fits32(it))
        binary_launch<T, OP, uint32_t>(a, b, y, it, n, s);
    else
        binary_launch<T, OP, int64_t>(a, b, y, it, n, s);
}

template <typename T>
cudaError_t binary(cudak_binop op, const T *a, const T *b, T *y, const cudak_iter_t *it,
                   cudaStream_t s)
{
    if (numel(it) == 0)
        return cudaSuccess;
    switch (op) {
    case CUDAK_ADD:
        binary_dispatch<T, CUDAK_ADD>(a, b, y, it, s);
        break;
    case CUDAK_SUB:
        binary_dispatch<T, CUDAK_SUB>(a, b, y, it, s);
        break;
    case CUDAK_MUL:
        binary_dispatch<T, CUDAK_MUL>(a, b, y, it, s);
        break;
    case CUDAK_DIV:
        binary_dispatch<T, CUDAK_DIV>(a, b, y, it, s);
        break;
    }
    return cudaGetLastError();
}

/* sigmoid through e^{-|x|}, mirrored, so the small tail keeps its relative precision. */
__device__ __forceinline__ float sigmoid(float v)
{
    const float e = expf(v < 0.0f ? v : -v);
    const float r = 1.0f / (1.0f + e);
    return v >= 0.0f ? r : e * r;
}

template <cudak_unop OP> __global__ void unary_k(const float *x, float *y, int64_t n, float alpha)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float v = x[i];
        float r;
        if (OP == CUDAK_RELU)
            r = v > 0.0f ? v : 0.0f;
        else if (OP == CUDAK_LEAKY_RELU)
            r = v >= 0.0f ? v : alpha * v;
        else if (OP == CUDAK_SIGMOID)
            r = sigmoid(v);
        else
            r = tanhf(v);
        y[i] = r;
    }
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* One warp per softmax row; lanes stride over its len elements (stride inner in memory). */
__global__ void softmax_k(const float *__restrict__ x, float *__restrict__ y, int64_t rows,
                          int64_t len, int64_t inner)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
        const int64_t o = r / inner, in = r - o * inner;
        const float *xr = x + o * len * inner + in;
        float *yr = y + o * len * inner + in;
        float m = -INFINITY;
        for (int64_t k = lane; k < len; k += 32)
            m = fmaxf(m, xr[k * inner]);
        m = warp_max(m);
        float sum = 0.0f;
        for (int64_t k = lane; k < len; k += 32)
            sum += expf(xr[k * inner] - m);
        sum = warp_sum(sum);
        const float inv = 1.0f / sum;
        for (int64_t k = lane; k < len; k += 32)
            yr[k * inner] = expf(xr[k * inner] - m) * inv;
    }
}

__global__ void bn_coeffs_k(const float *scale, const float *bias, const float *mean,
                            const float *var, float eps, int64_t c, float *a, float *b)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < c;
         i += (int64_t)gridDim.x * blockDim.x) {
        const double ac = (double)scale[i] / sqrt((double)var[i] + (double)eps);
        a[i] = (float)ac;
        b[i] = (float)((double)bias[i] - (double)mean[i] * ac);
    }
}

__global__ void channel_affine_k(const float *__restrict__ x, float *__restrict__ y, int64_t n,
                                 int64_t c, int64_t inner, const float *__restrict__ a,
                                 const float *__restrict__ b)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t ch = (i / inner) % c;
        y[i] = x[i] * a[ch] + b[ch];
    }
}

template <typename T, typename I>
__global__ void gather_k(const T *__restrict__ x, T *__restrict__ y, iter<I> it, I n)
{
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I ox, unused;
        offsets(it, i, ox, unused);
        y[i] = x[ox];
    }
}

template <typename T>
void gather_launch(const void *x, void *y, const cudak_iter_t *it, cudaStream_t s)
{
    const int64_t n = numel(it);
    if (fits32(it))
        gather_k<T, uint32_t><<<blocks_for(n), THREADS, 0, s>>>((const T *)x, (T *)y,
                                                                narrow<uint32_t>(it), (uint32_t)n);
    else
        gather_k<T, int64_t>
            <<<blocks_for(n), THREADS, 0, s>>>((const T *)x, (T *)y, narrow<int64_t>(it), n);
}

} // namespace

extern "C" cudaError_t cudak_binary_f32(cudak_binop op, const float *a, const float *b, float *y,
                                        const cudak_iter_t *it, cudaStream_t s)
{
    return binary<float>(op, a, b, y, it, s);
}

extern "C" cudaError_t cudak_binary_i64(cudak_binop op, const int64_t *a, const int64_t *b,
                                        int64_t *y, const cudak_iter_t *it, cudaStream_t s)
{
    return binary<int64_t>(op, a, b, y, it, s);
}

extern "C" cudaError_t cudak_unary_f32(cudak_unop op, const float *x, float *y, int64_t n,
                                       float alpha, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = blocks_for(n);
    switch (op) {
    case CUDAK_RELU:
        unary_k<CUDAK_RELU><<<g, THREADS, 0, s>>>(x, y, n, alpha);
        break;
    case CUDAK_LEAKY_RELU:
        unary_k<CUDAK_LEAKY_RELU><<<g, THREADS, 0, s>>>(x, y, n, alpha);
        break;
    case CUDAK_SIGMOID:
        unary_k<CUDAK_SIGMOID><<<g, THREADS, 0, s>>>(x, y, n, alpha);
        break;
    case CUDAK_TANH:
        unary_k<CUDAK_TANH><<<g, THREADS, 0, s>>>(x, y, n, alpha);
        break;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t cudak_softmax_f32(const float *x, float *y, int64_t outer, int64_t len,
                                         int64_t inner, cudaStream_t s)
{
    const int64_t rows = outer * inner;
    if (rows <= 0 || len <= 0)
        return cudaSuccess;
    softmax_k<<<blocks_for(rows * 32), THREADS, 0, s>>>(x, y, rows, len, inner);
    return cudaGetLastError();
}

extern "C" cudaError_t cudak_batchnorm_f32(const float *x, float *y, int64_t outer, int64_t c,
                                           int64_t inner, const float *scale, const float *bias,
                                           const float *mean, const float *var, float eps,
                                           float *ws, cudaStream_t s)
{
    const int64_t n = outer * c * inner;
    if (n <= 0)
        return cudaSuccess;
    float *a = ws, *b = ws + c;
    bn_coeffs_k<<<blocks_for(c), THREADS, 0, s>>>(scale, bias, mean, var, eps, c, a, b);
    channel_affine_k<<<blocks_for(n), THREADS, 0, s>>>(x, y, n, c, inner, a, b);
    return cudaGetLastError();
}

extern "C" cudaError_t cudak_channel_affine_f32(const float *x, float *y, int64_t outer, int64_t c,
                                                int64_t inner, const float *a, const float *b,
                                                cudaStream_t s)
{
    const int64_t n = outer * c * inner;
    if (n <= 0)
        return cudaSuccess;
    channel_affine_k<<<blocks_for(n), THREADS, 0, s>>>(x, y, n, c, inner, a, b);
    return cudaGetLastError();
}

extern "C" cudaError_t cudak_gather(size_t esize, const void *x, void *y, const cudak_iter_t *it,
                                    cudaStream_t s)
{
    if (numel(it) == 0)
        return cudaSuccess;
    if (esize == 8)
        gather_launch<uint64_t>(x, y, it, s);
    else if (esize == 4)
        gather_launch<uint32_t>(x, y, it, s);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

/* ---- dense chains (fuse.h's blob: D = ints, P = the same bytes as floats) ---- */

__device__ __forceinline__ float chain_act(float v, int act, float alpha)
{
    if (act == 1)
        return v > 0.0f ? v : 0.0f;
    if (act == 2)
        return v >= 0.0f ? v : alpha * v;
    if (act == 3)
        return sigmoid(v);
    if (act == 4)
        return tanhf(v);
    return v;
}

__global__ void chain_k(const float *__restrict__ x, float *__restrict__ y, float *__restrict__ z,
                        int64_t m, const int32_t *__restrict__ d, const float *__restrict__ p)
{
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= m)
        return;
    float h[2][CUDAK_CHAIN_MAX];
    const int layers = __ldg(&d[0]), k0 = __ldg(&d[1]);
    for (int k = 0; k < k0; k++)
        h[0][k] = x[r * k0 + k];
    int cur = 0, n = 0;
    for (int l = 0; l < layers; l++) {
        const int32_t *dl = d + 1 + 8 * l;
        const int kk = __ldg(&dl[0]), act = __ldg(&dl[2]);
        const float *w = p + __ldg(&dl[3]), *e = p + __ldg(&dl[4]);
        const float aa = __int_as_float(__ldg(&dl[5])), alpha = __int_as_float(__ldg(&dl[6]));
        n = __ldg(&dl[1]);
        for (int j = 0; j < n; j++) {
            const float *wj = w + j * kk;
            float acc = 0.0f;
            for (int k = 0; k < kk; k++)
                acc += __ldg(&wj[k]) * h[cur][k];
            const float v = (alpha * acc + __ldg(&e[j])) * __ldg(&e[n + j]) + __ldg(&e[2 * n + j]);
            h[cur ^ 1][j] = chain_act(v, act, aa);
        }
        cur ^= 1;
    }
    if (__ldg(&d[1 + 8 * layers])) {
        if (z)
            for (int j = 0; j < n; j++)
                z[r * n + j] = h[cur][j];
        float mx = h[cur][0];
        for (int j = 1; j < n; j++)
            mx = fmaxf(mx, h[cur][j]);
        float sum = 0.0f;
        for (int j = 0; j < n; j++)
            sum += expf(h[cur][j] - mx);
        const float inv = 1.0f / sum;
        for (int j = 0; j < n; j++)
            h[cur][j] = expf(h[cur][j] - mx) * inv;
    }
    for (int j = 0; j < n; j++)
        y[r * n + j] = h[cur][j];
}

extern "C" cudaError_t cudak_chain_f32(const float *x, float *y, float *z, int64_t m,
                                       const void *blob, cudaStream_t s)
{
    if (m <= 0)
        return cudaSuccess;
    const int threads = 128;
    const unsigned blocks = (unsigned)((m + threads - 1) / threads);
    chain_k<<<blocks, threads, 0, s>>>(x, y, z, m, (const int32_t *)blob, (const float *)blob);
    return cudaGetLastError();
}
