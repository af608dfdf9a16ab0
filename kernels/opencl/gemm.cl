/* gemm.cl: Y = alpha * op(A) op(B) + beta * C for Gemm and (batched) MatMul.
 *
 * Element (i, p) of A is A[ao + i*sam + p*sak]; (p, j) of B is B[bo + p*sbk + j*sbn], so
 * transA/transB are only strides. C is broadcast through its strides (0 on a broadcast axis);
 * has_c == 0 (or beta == 0 on the host side) ignores C. MatMul's batch index is dimension 2 of
 * the NDRange: t decomposes over bdims[0..nb) into offsets through the batch strides sa/sb
 * (0 where A or B is broadcast); Y is contiguous [batch, M, N].
 *
 * Two shapes of the same contract:
 *  gemm_rows  for CPU-like devices (PoCL): one work-item computes a 4-row x 8-column block with
 *             float8 loads of B and float8 accumulators; no local memory, no barrier, so
 *             PoCL's work-group loops stay simple and its vectoriser sees straight-line code.
 *  gemm_tiled for GPUs: HLT_TS x HLT_TS work-groups stage tiles of A and B in local memory
 *             (padded against bank conflicts), one output element per work-item. */

void batch_offsets(int nb, int8 bdims, int8 sa, int8 sb, int *oa, int *ob)
{
    int t = get_global_id(2), a = 0, b = 0;
    for (int d = nb - 1; d >= 0; d--) {
        const int n = v8_get(bdims, d), i = t % n;
        a += i * v8_get(sa, d);
        b += i * v8_get(sb, d);
        t /= n;
    }
    *oa = a;
    *ob = b;
}

/* Fused epilogue (the host's ocl_ops_fuse): E holds bias[N] | scale[N] | shift[N] (an Add of
 * a constant bias, then BatchNormalization folded to y * scale + shift, identity where absent),
 * applied in the CPU backend's order; then activation `act`: 0 none, 1 Relu, 2 LeakyRelu
 * (act_alpha), 3 Sigmoid, 4 Tanh, with the formulas of eltwise.cl. */
float epilogue(float acc, float alpha, float beta, int has_c, __global const float *C, int co,
               int scm, int scn, int i, int j, __global const float *E, int eo, int N, int epi,
               int act, float act_alpha)
{
    float y = alpha * acc;
    if (has_c)
        y += beta * C[co + i * scm + j * scn];
    if (epi)
        y = (y + E[eo + j]) * E[eo + N + j] + E[eo + 2 * N + j];
    switch (act) {
    case 1:
        return fmax(y, 0.0f);
    case 2:
        return y >= 0.0f ? y : act_alpha * y;
    case 3: {
        const float e = exp(-fabs(y)), s = 1.0f / (1.0f + e);
        return y >= 0.0f ? s : e * s;
    }
    case 4:
        return tanh(y);
    default:
        return y;
    }
}

#define GEMM_ARGS                                                                                  \
    __global const float *A, int ao, int sam, int sak, __global const float *B, int bo, int sbk,   \
        int sbn, __global const float *C, int co, int scm, int scn, int has_c, __global float *Y,   \
        int yo, int M, int N, int K, float alpha, float beta, int nb, int8 bdims, int8 sa, int8 sb, \
        __global const float *E, int eo, int epi, int act, float act_alpha

#define EPILOGUE(acc, i, j)                                                                        \
    epilogue(acc, alpha, beta, has_c, C, co, scm, scn, i, j, E, eo, N, epi, act, act_alpha)

__kernel void gemm_rows(GEMM_ARGS)
{
    const int j0 = get_global_id(0) * 8, i0 = get_global_id(1) * 4;
    if (j0 >= N || i0 >= M)
        return;
    int oa, ob;
    batch_offsets(nb, bdims, sa, sb, &oa, &ob);
    A += ao + oa;
    B += bo + ob;
    Y += yo + get_global_id(2) * M * N;
    /* Rows past M read row M-1 (never stored) so the k-loop has no branch. */
    __global const float *a0 = A + min(i0, M - 1) * sam;
    __global const float *a1 = A + min(i0 + 1, M - 1) * sam;
    __global const float *a2 = A + min(i0 + 2, M - 1) * sam;
    __global const float *a3 = A + min(i0 + 3, M - 1) * sam;
    float8 c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
    if (j0 + 8 <= N && sbn == 1) {
        if (sak == 1) {
            for (int p = 0; p < K; p++) {
                const float8 b = vload8(0, B + p * sbk + j0);
                c0 += a0[p] * b;
                c1 += a1[p] * b;
                c2 += a2[p] * b;
                c3 += a3[p] * b;
            }
        } else {
            for (int p = 0; p < K; p++) {
                const float8 b = vload8(0, B + p * sbk + j0);
                const int q = p * sak;
                c0 += a0[q] * b;
                c1 += a1[q] * b;
                c2 += a2[q] * b;
                c3 += a3[q] * b;
            }
        }
    } else {
        /* Last partial block, or a B whose columns are strided: gather, clamping the column. */
        const int l = N - 1;
        for (int p = 0; p < K; p++) {
            __global const float *bp = B + p * sbk;
            const float8 b = (float8)(bp[min(j0, l) * sbn], bp[min(j0 + 1, l) * sbn],
                                      bp[min(j0 + 2, l) * sbn], bp[min(j0 + 3, l) * sbn],
                                      bp[min(j0 + 4, l) * sbn], bp[min(j0 + 5, l) * sbn],
                                      bp[min(j0 + 6, l) * sbn], bp[min(j0 + 7, l) * sbn]);
            const int q = p * sak;
            c0 += a0[q] * b;
            c1 += a1[q] * b;
            c2 += a2[q] * b;
            c3 += a3[q] * b;
        }
    }
    float acc[4][8];
    vstore8(c0, 0, acc[0]);
    vstore8(c1, 0, acc[1]);
    vstore8(c2, 0, acc[2]);
    vstore8(c3, 0, acc[3]);
    const int rows = min(4, M - i0), cols = min(8, N - j0);
    for (int r = 0; r < rows; r++) {
        __global float *y = Y + (i0 + r) * N + j0;
        for (int c = 0; c < cols; c++)
            y[c] = EPILOGUE(acc[r][c], i0 + r, j0 + c);
    }
}

__kernel void gemm_tiled(GEMM_ARGS)
{
    __local float As[HLT_TS][HLT_TS + 1];
    __local float Bs[HLT_TS][HLT_TS + 1];
    const int lc = get_local_id(0), lr = get_local_id(1);
    const int j = get_group_id(0) * HLT_TS + lc, i = get_group_id(1) * HLT_TS + lr;
    int oa, ob;
    batch_offsets(nb, bdims, sa, sb, &oa, &ob);
    A += ao + oa;
    B += bo + ob;
    Y += yo + get_global_id(2) * M * N;
    float acc = 0.0f;
    for (int t = 0; t < K; t += HLT_TS) {
        const int pa = t + lc, pb = t + lr;
        As[lr][lc] = i < M && pa < K ? A[i * sam + pa * sak] : 0.0f;
        Bs[lr][lc] = pb < K && j < N ? B[pb * sbk + j * sbn] : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int q = 0; q < HLT_TS; q++)
            acc += As[lr][q] * Bs[q][lc];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (i < M && j < N)
        Y[i * N + j] = EPILOGUE(acc, i, j);
}
