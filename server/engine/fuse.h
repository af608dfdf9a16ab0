/* fuse: which nodes a device backend runs inside another node's kernel, decided on the graph
 * alone (no shapes, no device) and shared by the OpenCL backend (ocl_ops.c: gemm.cl's epilogue,
 * mlp.cl) and the CUDA backend (cuda_chain.c: the chain kernel of kernels/cuda/).
 *
 * Epilogue fusion: a Gemm/MatMul with constant weights absorbs the run of single-consumer nodes
 * after it: an Add of a constant bias [N] (or [1, N] for Gemm), a BatchNormalization with
 * constant parameters (Gemm only), then one activation (Relu, LeakyRelu, Sigmoid, Tanh). The
 * absorbed nodes run nothing; the GEMM's kernel writes `out`.
 *
 * Chain fusion, on top: a run of such GEMMs, each consuming only the previous one's `out`, every
 * K and N at most ENGINE_CHAIN_MAX_WIDTH, optionally ending in a Softmax over the last axis
 * (whose input may also be a graph output: a tagger's logits, written as well), is one kernel
 * owned by its first GEMM, which carries each row through every layer. Trigger models are such
 * chains (FACILE 15-36-36-1, the example jet tagger 64-128-64-32-5): one launch instead of one
 * per layer and epilogue.
 *
 * The chain's constants for that kernel (engine_fuse_chain_blob), in elements of 4 bytes:
 *   D[0] = layers; layer l at D[1 + 8 l]: K, N, activation (0 none, 1 Relu, 2 LeakyRelu,
 *   3 Sigmoid, 4 Tanh), offset of W (N x K, row n contiguous), offset of the epilogue
 *   bias | scale | shift (3 x N), the activation's alpha (float bits), the GEMM's alpha (float
 *   bits), 0; D[1 + 8 layers] = 1 when a Softmax ends the chain. Offsets count from the blob's
 *   start; the descriptor is padded to 16 elements. Per output n of a layer:
 *       y = act((alpha * (W[n,:] . h) + bias[n]) * scale[n] + shift[n])
 *   with bias = beta * C + the fused Add's bias, and BatchNormalization folded to scale/shift in
 *   double (cpu_bn_coeffs_f32, as the CPU backend). */
#ifndef HLT_ENGINE_FUSE_H
#define HLT_ENGINE_FUSE_H

#include "graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENGINE_CHAIN_MAX_WIDTH 128

typedef struct engine_fuse {
    int32_t fused_into;    /* node whose kernel runs this one (its GEMM or chain head), or -1 */
    int32_t out;           /* tensor this node's kernel writes (its own output unless fused) */
    int32_t add, bn, act;  /* nodes absorbed into a GEMM's epilogue, or -1 */
    int32_t chain_layers;  /* GEMMs in the chain this node heads, 0 if none */
    int32_t chain_next;    /* next GEMM of the chain, or -1 */
    int32_t chain_softmax; /* Softmax ending the chain (on its head), or -1 */
    int32_t chain_logits;  /* the Softmax's input when it is also a graph output, or -1 */
} engine_fuse_t;

/* Fills f[0..g->n_nodes): epilogue fusion when `epilogues`, chains too when `chains` (they need
 * the epilogues). Without memory for its scratch it fuses nothing, which is always correct. */
void engine_fuse_plan(const engine_graph_t *g, bool epilogues, bool chains, engine_fuse_t *f);

/* N of a Gemm/MatMul whose B is a constant matrix, else -1. */
int64_t engine_fuse_gemm_n(const engine_graph_t *g, const graph_node_t *n);

/* Whether a Gemm uses its C input (present and beta != 0). */
bool engine_fuse_gemm_has_c(const graph_node_t *n);

/* Node `node`'s epilogue as bias | scale | shift (3 x n floats; identity where absent), C not
 * included (gemm.cl adds beta * C itself). */
void engine_fuse_epilogue(const engine_graph_t *g, const engine_fuse_t *f, int32_t node, int64_t n,
                          float *e);

/* Bytes of the chain headed by `head` (layout above); fills dst when not NULL (4-byte aligned). */
size_t engine_fuse_chain_blob(const engine_graph_t *g, const engine_fuse_t *f, int32_t head,
                              void *dst);

/* For every node, the chain head whose kernel runs it (the head itself included), or -1. */
void engine_fuse_chain_owner(const engine_graph_t *g, const engine_fuse_t *f, int32_t *owner);

#endif
