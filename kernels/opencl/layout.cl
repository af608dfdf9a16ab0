/* layout.cl: Transpose and Concat, for 4-byte (FP32) and 8-byte (INT64) elements.
 *
 * Transpose: the host drops size-1 dims and merges output dims that stay adjacent in the input
 * (as kernels/cpu/cpu_layout.c does); one work-item per output element gathers from the input
 * through the merged output dims od and their input strides st.
 * Concat: one launch per input copies its [outer, chunk] block into the output rows of `row`
 * elements at column offset col. */
#define TRANSPOSE(NAME, T)                                                                         \
    __kernel void NAME(__global const T *X, int xo, __global T *Y, int yo, int n, int rank,         \
                       int8 od, int8 st)                                                           \
    {                                                                                              \
        const int i = get_global_id(0);                                                            \
        if (i >= n)                                                                                \
            return;                                                                                \
        Y[yo + i] = X[xo + strided_offset(i, rank, od, st)];                                      \
    }
TRANSPOSE(transpose_4, uint)
TRANSPOSE(transpose_8, ulong)

#define COPY_ROWS(NAME, T)                                                                         \
    __kernel void NAME(__global const T *X, int xo, __global T *Y, int yo, int outer, int chunk,   \
                       int row, int col)                                                           \
    {                                                                                              \
        const int i = get_global_id(0), o = get_global_id(1);                                      \
        if (i >= chunk || o >= outer)                                                              \
            return;                                                                                \
        Y[yo + o * row + col + i] = X[xo + o * chunk + i];                                         \
    }
COPY_ROWS(copy_rows_4, uint)
COPY_ROWS(copy_rows_8, ulong)
