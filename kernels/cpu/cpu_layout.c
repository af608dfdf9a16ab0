/* cpu_layout: N-d transpose.
 *
 * Size-1 dims are dropped and output dims that stay adjacent in the input are merged, so
 * e.g. [N,T,F] -> [T,N,F] becomes a copy of contiguous F-element runs (memcpy) and a 2-D
 * transpose stays 2-D. A remaining innermost strided gather is tiled 2-D (TILE x TILE blocks)
 * so both the reads and the writes stay within a few cache lines. */
#include "cpu_layout.h"

#include "cpu_target.h"

#include <assert.h>
#include <string.h>

#define MAXR 8
#define TILE 32

/* y[i * ys_i + j] = x[i * xs_i + j * xs_j] over a rows x cols tile grid, for elements of type T. */
#define GATHER2D(T)                                                                                \
    CPU_CLONES static void gather2d_##T(const T *x, T *y, int64_t rows, int64_t cols,              \
                                        int64_t xs_r, int64_t xs_c)                                \
    {                                                                                              \
        for (int64_t i0 = 0; i0 < rows; i0 += TILE)                                                \
            for (int64_t j0 = 0; j0 < cols; j0 += TILE) {                                          \
                const int64_t i1 = i0 + TILE < rows ? i0 + TILE : rows;                            \
                const int64_t j1 = j0 + TILE < cols ? j0 + TILE : cols;                            \
                for (int64_t i = i0; i < i1; i++)                                                  \
                    for (int64_t j = j0; j < j1; j++)                                              \
                        y[i * cols + j] = x[i * xs_r + j * xs_c];                                  \
            }                                                                                      \
    }
GATHER2D(uint8_t)
GATHER2D(uint16_t)
GATHER2D(uint32_t)
GATHER2D(uint64_t)

static void gather2d(size_t esize, const char *x, char *y, int64_t rows, int64_t cols, int64_t xs_r,
                     int64_t xs_c)
{
    switch (esize) {
    case 1:
        gather2d_uint8_t((const uint8_t *)x, (uint8_t *)y, rows, cols, xs_r, xs_c);
        break;
    case 2:
        gather2d_uint16_t((const uint16_t *)x, (uint16_t *)y, rows, cols, xs_r, xs_c);
        break;
    case 4:
        gather2d_uint32_t((const uint32_t *)x, (uint32_t *)y, rows, cols, xs_r, xs_c);
        break;
    case 8:
        gather2d_uint64_t((const uint64_t *)x, (uint64_t *)y, rows, cols, xs_r, xs_c);
        break;
    default:
        assert(!"cpu_transpose: element size must be 1, 2, 4 or 8");
    }
}

void cpu_transpose(size_t esize, const void *x, int32_t rank, const int64_t *dims,
                   const int64_t *perm, void *y)
{
    assert(rank <= MAXR);
    int64_t xs[MAXR], total = 1;
    for (int32_t i = rank - 1; i >= 0; i--) {
        xs[i] = total;
        total *= dims[i];
    }
    if (total == 0)
        return;
    /* Output dims in output order with their input strides; drop 1s, merge runs. */
    int32_t r = 0;
    int64_t od[MAXR], st[MAXR];
    for (int32_t i = 0; i < rank; i++) {
        const int64_t d = dims[perm[i]], s = xs[perm[i]];
        if (d == 1)
            continue;
        if (r > 0 && st[r - 1] == s * d) {
            od[r - 1] *= d;
            st[r - 1] = s;
            continue;
        }
        od[r] = d;
        st[r] = s;
        r++;
    }
    if (r == 0 || (r == 1 && st[0] == 1)) {
        memcpy(y, x, (size_t)total * esize);
        return;
    }
    const char *xb = x;
    char *yb = y;
    if (st[r - 1] == 1) {
        /* Innermost run is contiguous in x: copy runs of od[r-1] elements. */
        const size_t run = (size_t)od[r - 1] * esize;
        int64_t idx[MAXR] = {0}, off = 0;
        for (;;) {
            memcpy(yb, xb + off * (int64_t)esize, run);
            yb += run;
            int32_t d = r - 2;
            for (; d >= 0; d--) {
                off += st[d];
                if (++idx[d] < od[d])
                    break;
                off -= st[d] * od[d];
                idx[d] = 0;
            }
            if (d < 0)
                return;
        }
    }
    /* Innermost output dim strided in x: tile over the two innermost output dims. */
    const int64_t rows = r >= 2 ? od[r - 2] : 1, cols = od[r - 1];
    const int64_t xs_r = r >= 2 ? st[r - 2] : 0, xs_c = st[r - 1];
    const int32_t outer_r = r >= 2 ? r - 2 : 0;
    int64_t idx[MAXR] = {0}, off = 0;
    for (;;) {
        gather2d(esize, xb + off * (int64_t)esize, yb, rows, cols, xs_r, xs_c);
        yb += (size_t)(rows * cols) * esize;
        int32_t d = outer_r - 1;
        for (; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < od[d])
                break;
            off -= st[d] * od[d];
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}
