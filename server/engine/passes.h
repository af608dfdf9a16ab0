/* passes: load-time rewrites of the graph IR that make it cheaper to run on every backend.
 *
 * Called by graph_finalize after constant folding, before the final prune; the rewritten graph
 * uses only existing op kinds with their usual semantics (see passes.c for each rewrite).
 * Private to server/engine. */
#ifndef HLT_ENGINE_PASSES_H
#define HLT_ENGINE_PASSES_H

#include "graph.h"

/* Folds inference BatchNormalization nodes that follow a Gemm or MatMul (optionally through
 * an Add of a constant bias) into that layer's constants and marks them dead. Fails only on
 * allocation failure (RESOURCE_EXHAUSTED); the graph is then left for the caller to destroy. */
hlt_status graph_fold_batchnorm(engine_graph_t *g, char *err, size_t errlen);

#endif
