/* plan: placement of a graph's intermediate buffers in one arena, shared by the CPU executor
 * (exec.c) and the OpenCL backend (ocl_plan.c).
 *
 * Each item is a buffer with a size and a live range (first write .. last read, in execution
 * steps). engine_plan_place gives every item an offset so that no two items whose live ranges
 * overlap share bytes: greedy by size, largest first, each at the lowest offset that does not
 * collide with an already placed overlapping item — the classic heuristic ML runtimes use for
 * activation memory. Deterministic (ties broken by owner). */
#ifndef HLT_ENGINE_PLAN_H
#define HLT_ENGINE_PLAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct engine_plan_item {
    size_t size;        /* bytes (callers round to their alignment) */
    size_t off;         /* out: byte offset in the arena */
    int32_t start, end; /* live steps, inclusive */
    int32_t owner;      /* caller's id (tensor, or n_tensors + node for a workspace) */
} engine_plan_item_t;

/* Assigns items[0..n).off (items are reordered: sorted by size, largest first) and returns the
 * arena size. by_off: caller's scratch of n entries (on return, indices of items sorted by
 * offset). Never allocates. */
size_t engine_plan_place(engine_plan_item_t *items, int32_t n, int32_t *by_off);

#endif
