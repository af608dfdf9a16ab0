/* exec: per-instance execution state for a loaded graph (implements engine_exec_* of engine.h).
 *
 * Owns the CPU execution plan of one engine_exec_t: at create, each Gemm/MatMul with a constant
 * weight becomes a fused layer (weight packed once for cpu_sgemm_packed; a following bias Add
 * and activation folded into the kernel's epilogue); at prepare, the steps, the row-blocked
 * chains of layers (run block by block of rows so intermediates stay in cache) and one scratch
 * arena sized from the resolved shapes: every intermediate tensor, every node's workspace and a
 * landing slot per graph input get an offset, and buffers whose live ranges (first write ..
 * last read, in step order) do not overlap share bytes. Reshape/Flatten/Squeeze/Unsqueeze/
 * Identity outputs alias their input and extend its live range instead of taking space.
 * engine_exec_run then only walks the steps: it never allocates, so a server worker's latency
 * does not depend on malloc. The plan is private to the CPU engine: the graph IR other backends
 * read is not changed by it.
 *
 * Called by the server's CPU backend instance worker: create once per instance, prepare when the
 * batch shape changes (a repeated prepare with the same shapes returns at once), run per batch.
 * One engine_exec_t per thread; the graph it reads is shared. The functions below expose plan
 * facts for tests and logs. */
#ifndef HLT_ENGINE_EXEC_H
#define HLT_ENGINE_EXEC_H

#include "engine.h"

#include <stdint.h>

/* Bytes of arena the last successful prepare planned (0 before any). */
size_t exec_arena_bytes(const engine_exec_t *e);

/* Bytes the same buffers would take without sharing (sum of all planned sizes). */
size_t exec_unshared_bytes(const engine_exec_t *e);

/* How many times the arena has been (re)allocated since create. */
uint64_t exec_arena_allocations(const engine_exec_t *e);

#endif
