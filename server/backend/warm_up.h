/* warm_up: one execute on zeros at batch 1 and at the largest batch a model allows, run by the
 * device backends (OpenCL, CUDA) at instance_create so the first request does not pay the
 * driver's lazy work (PoCL compiles each kernel at its first launch for the work-group size it
 * gets, ~0.1-1 s; CUDA loads kernels lazily and cuBLAS sets itself up on its first call). */
#ifndef HLT_BACKEND_WARM_UP_H
#define HLT_BACKEND_WARM_UP_H

#include "backend/backend.h"

#include <stdint.h>

/* Through b's prepare and execute on inst: batch 1, then max_batch (capped at 16384) when it is
 * above 1, for graphs whose inputs' only unknown dim is the leading one. Best effort: a graph
 * with other unknown dims, or a run that fails, is skipped (the first real batch meets the
 * driver cold). The instance is left prepared for the last shape run; callers that promise an
 * unprepared instance reset that themselves. */
void backend_warm_up(const backend_i *b, backend_instance_t *inst, const engine_graph_t *g,
                     int64_t max_batch);

#endif
