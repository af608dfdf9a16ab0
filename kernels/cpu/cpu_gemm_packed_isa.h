/* cpu_gemm_packed_isa.h: the register-blocked kernel of cpu_gemm_packed.c for one vector ISA.
 *
 * A template, not a header: cpu_gemm_packed.c includes it once per ISA after defining
 *   ISA              name suffix (avx2, avx512)
 *   ATTR             the target attribute every function here carries
 *   VW, V            lanes per vector, the vector type; H the half-width vector type (VW / 2)
 *   VLOAD(p), VBCAST(p) (broadcast *p), VFMA(a, b, c) (a*b + c, one rounding),
 *   VRELU(x) (x > 0 ? x : 0, NaN -> 0), VLEAKY(x, va) (x >= 0 ? x : a*x, NaN stays NaN),
 *   VSTORE(p, v), VSTORE_PART(p, v, cnt) (first cnt < VW lanes),
 *   HLOAD, HFMA, HRELU, HLEAKY, HSTORE, HSTORE_PART the same on H, and HLOW(v) (v's low half)
 *   MR1..MR4         tile rows for 1..4 vector registers per row of C
 *   REGS_MAX         vector registers per row of C in a panel (AVX2 3, AVX-512 4)
 *
 * The tile: MR rows x (NV vectors + HALF half vector) of C live in registers, initialised from
 * the bias, updated per p by one broadcast of A(i, p) per row and NV (+ half) loads of packed B
 * row p (FMA), then the ReLU/LeakyReLU epilogue and a store (the matrix's last vector masked).
 * MR is chosen so that accumulators, the B vectors and one broadcast fit the register file (16
 * ymm, 32 zmm). The half vector covers a column tail of at most VW / 2 (36 = 4 x 8 + 4) without
 * computing the padding: on AVX2 an xmm FMA costs half a ymm one on AMD Zen 1/2; with
 * AVX-512 a ymm tail saves a quarter of the 36-wide layer. */

#define PK_CAT2(a, b) a##_##b
#define PK_CAT(a, b) PK_CAT2(a, b)
#define PK_FN(name) PK_CAT(name, ISA)
#define PK_HW (VW / 2)

ATTR static inline __attribute__((always_inline)) void PK_FN(tile)(
    const int mr, const int nv, const int half, int64_t k, const float *restrict a, int64_t lda,
    const float *restrict b, int64_t ldb, const float *restrict bias, int act, float alpha,
    float *restrict c, int64_t ldc, int tail)
{
    V acc[MR1][8];
    H acch[MR1];
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            acc[r][v] = VLOAD(bias + v * VW);
        if (half)
            acch[r] = HLOAD(bias + nv * VW);
    }
    for (int64_t p = 0; p < k; p++) {
        V bv[8];
        H bh = {0};
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            bv[v] = VLOAD(b + p * ldb + v * VW);
        if (half)
            bh = HLOAD(b + p * ldb + nv * VW);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
            const V av = VBCAST(a + r * lda + p);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[r][v] = VFMA(av, bv[v], acc[r][v]);
            if (half)
                acch[r] = HFMA(HLOW(av), bh, acch[r]);
        }
    }
    if (act == CPU_ACT_RELU) {
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[r][v] = VRELU(acc[r][v]);
            if (half)
                acch[r] = HRELU(acch[r]);
        }
    } else if (act == CPU_ACT_LEAKY_RELU) {
        const V va = VBCAST(&alpha);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[r][v] = VLEAKY(acc[r][v], va);
            if (half)
                acch[r] = HLEAKY(acch[r], HLOW(va));
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (half) {
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                VSTORE(cr + v * VW, acc[r][v]);
            if (tail == PK_HW)
                HSTORE(cr + nv * VW, acch[r]);
            else
                HSTORE_PART(cr + nv * VW, acch[r], tail);
        } else {
#pragma GCC unroll 8
            for (int v = 0; v < nv - 1; v++)
                VSTORE(cr + v * VW, acc[r][v]);
            if (tail == VW)
                VSTORE(cr + (nv - 1) * VW, acc[r][nv - 1]);
            else
                VSTORE_PART(cr + (nv - 1) * VW, acc[r][nv - 1], tail);
        }
    }
}

/* Rows [0, m) of one panel: full MR tiles, then single rows. */
#define PK_PANEL(MR, NVC, HALF)                                                                  \
    do {                                                                                         \
        int64_t i = 0;                                                                           \
        for (; i + (MR) <= m; i += (MR))                                                         \
            PK_FN(tile)((MR), (NVC), (HALF), k, a + i * lda, lda, b, ldb, bias, act, alpha,      \
                        c + i * ldc, ldc, tail);                                                 \
        for (; i < m; i++)                                                                       \
            PK_FN(tile)(1, (NVC), (HALF), k, a + i * lda, lda, b, ldb, bias, act, alpha,         \
                        c + i * ldc, ldc, tail);                                                 \
    } while (0)

/* A panel of nv vectors (+ a half vector when half) of columns; tail = valid lanes of its last
 * (half) vector. nv + half is 1..4, or nv is 8 (single rows only). */
ATTR static void PK_FN(panel)(int nv, int half, int64_t m, int64_t k, const float *a, int64_t lda,
                              const float *b, int64_t ldb, const float *bias, int act, float alpha,
                              float *c, int64_t ldc, int tail)
{
    switch (nv * 2 + half) {
    case 1:
        PK_PANEL(MR1, 0, 1);
        break;
    case 2:
        PK_PANEL(MR1, 1, 0);
        break;
    case 3:
        PK_PANEL(MR2, 1, 1);
        break;
    case 4:
        PK_PANEL(MR2, 2, 0);
        break;
    case 5:
        PK_PANEL(MR3, 2, 1);
        break;
    case 6:
        PK_PANEL(MR3, 3, 0);
        break;
    case 7:
        PK_PANEL(MR4, 3, 1);
        break;
    case 8:
        PK_PANEL(MR4, 4, 0);
        break;
    default: /* 16: single rows (m <= 2), eight vectors of accumulators */
        PK_PANEL(1, 8, 0);
        break;
    }
}
#undef PK_PANEL

/* The next panel for rem (> 0) columns: *nv vectors (+ *half), *tail valid lanes in its last
 * one; returns the columns it covers. At most REGS_MAX vector registers per row of C, or 8
 * vectors when rows go one at a time (wide: m <= 2, a vector times a matrix). */
static inline int64_t PK_FN(next_panel)(int64_t rem, bool wide, int *nv, int *half, int *tail)
{
    const int full = (int)(rem / VW), r = (int)(rem % VW), need = full + (r ? 1 : 0);
    *half = 0;
    *tail = VW;
    if (wide && need > 4) {
        *nv = need >= 8 && (need > 8 || r == 0) ? 8 : 4;
        return (int64_t)*nv * VW;
    }
    if (!wide && need > REGS_MAX) {
        /* leave the last panel at least two registers when one more would overflow it */
        *nv = need == REGS_MAX + 1 && REGS_MAX == 3 ? 2 : REGS_MAX;
        return (int64_t)*nv * VW;
    }
    *nv = full;
    if (r > 0 && r <= PK_HW) {
        *half = 1;
        *tail = r;
    } else if (r > 0) {
        *nv = full + 1;
        *tail = r;
    }
    return rem;
}

/* C[m, n] = act(A[m, k] B + bias) with B in the row form ([k][np] after np bias floats). Row
 * blocks of PK_ROW_BLOCK keep A's block in L1 while every panel of columns passes over it. */
ATTR static void PK_FN(rows)(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                             const float *pk, int act, float alpha, float *c, int64_t ldc)
{
    const int64_t np = pk_round16(n);
    const float *bias = pk, *b = pk + np;
    const bool wide = m <= 2;
    for (int64_t i0 = 0; i0 < m; i0 += PK_ROW_BLOCK) {
        const int64_t mb = m - i0 < PK_ROW_BLOCK ? m - i0 : PK_ROW_BLOCK;
        for (int64_t j0 = 0; j0 < n;) {
            int nv, half, tail;
            const int64_t w = PK_FN(next_panel)(n - j0, wide, &nv, &half, &tail);
            PK_FN(panel)(nv, half, mb, k, a + i0 * lda, lda, b + j0, np, bias + j0, act, alpha,
                         c + i0 * ldc + j0, ldc, tail);
            j0 += w;
        }
    }
}

#undef PK_HW
#undef PK_FN
#undef PK_CAT
#undef PK_CAT2
