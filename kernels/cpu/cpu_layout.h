/* cpu_layout: data movement kernels (Transpose; Concat is plain memcpy in the op layer).
 *
 * Called by the engine's op layer (server/engine/ops_shape.c) at run time and during load-time
 * constant folding (weights stored transposed). Pure: thread-safe, no allocation. */
#ifndef HLT_CPU_LAYOUT_H
#define HLT_CPU_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

/* y = x transposed by perm: y.dims[i] = dims[perm[i]]. esize is 1, 2, 4 or 8 bytes; rank <= 8;
 * perm a permutation of 0..rank-1 (checked by the caller). x, y borrowed, must not overlap. */
void cpu_transpose(size_t esize, const void *x, int32_t rank, const int64_t *dims,
                   const int64_t *perm, void *y);

#endif
