/* cpu_binary: Add, Sub, Mul, Div with numpy/ONNX multidirectional broadcasting.
 *
 * Called by the engine's op layer (server/engine/ops_math.c) and by load-time constant folding
 * of INT64 shape arithmetic. Shapes are right-aligned as in numpy; the caller has already
 * computed and checked the broadcast output shape (server/engine/shape.c). Dimensions where
 * both operands are contiguous are merged first, so the same-shape case is one flat loop and a
 * bias row ([M,N] + [N]) or a per-row scalar ([M,N] * [M,1]) is one vectorised loop per row.
 * Pointers borrowed; y may equal a or b when that operand has y's shape. Pure: thread-safe, no
 * allocation. */
#ifndef HLT_CPU_BINARY_H
#define HLT_CPU_BINARY_H

#include <stdint.h>

#define CPU_MAX_RANK 8

typedef enum cpu_binop {
    CPU_BIN_ADD,
    CPU_BIN_SUB,
    CPU_BIN_MUL,
    CPU_BIN_DIV,
} cpu_binop;

/* y = a op b. ra, rb <= ry <= CPU_MAX_RANK; dy is the broadcast of da and db. */
void cpu_binary_f32(cpu_binop op, const float *a, int32_t ra, const int64_t *da, const float *b,
                    int32_t rb, const int64_t *db, float *y, int32_t ry, const int64_t *dy);

/* Same on int64 with wrap-around on overflow; integer division truncates toward zero and a
 * division by zero (or INT64_MIN / -1) yields 0 instead of trapping. */
void cpu_binary_i64(cpu_binop op, const int64_t *a, int32_t ra, const int64_t *da, const int64_t *b,
                    int32_t rb, const int64_t *db, int64_t *y, int32_t ry, const int64_t *dy);

#endif
