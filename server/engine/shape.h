/* shape: shape rules of every supported op, for concrete input shapes.
 *
 * Called by exec.c at engine_exec_prepare (once per distinct set of input shapes, never per
 * run) and by graph.c while folding constants. Owns nothing. All checks that depend on shapes
 * live here, so kernels can assume consistent shapes. Thread-safe (pure). */
#ifndef HLT_ENGINE_SHAPE_H
#define HLT_ENGINE_SHAPE_H

#include "graph.h"

/* Writes the shapes of n's outputs into shapes[] (indexed by tensor id) from its inputs'
 * shapes there, reading constant inputs (Reshape's shape, axes) from g. Sets *ws_bytes to the
 * scratch the node needs at run time (0 if none). INVALID_ARGUMENT naming the node and the op
 * when the shapes are inconsistent; shapes[] of the outputs is then unspecified. g, n borrowed. */
hlt_status shape_infer_node(const engine_graph_t *g, const graph_node_t *n, engine_shape_t *shapes,
                            size_t *ws_bytes, char *err, size_t errlen);

/* numpy/ONNX multidirectional broadcast of a and b into out; false if incompatible. */
bool shape_broadcast(const engine_shape_t *a, const engine_shape_t *b, engine_shape_t *out);

/* Elements in s; -1 if the count overflows int64 or a dim is negative. */
int64_t shape_numel(const engine_shape_t *s);

/* "[2,3,4]" into buf (always terminated). Returns buf. */
const char *shape_str(const engine_shape_t *s, char *buf, size_t len);

#endif
