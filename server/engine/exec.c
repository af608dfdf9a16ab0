/* exec: execution plan, buffer planning and the run loop (see exec.h).
 *
 * Plan (CPU only; the graph IR is not changed, other backends never see any of this):
 *
 *  - Layer fusion. At create, each Gemm (transA = 0) or MatMul whose B is a constant matrix
 *    becomes a "layer": its weight is packed once for cpu_sgemm_packed (kernels/cpu) when
 *    k * n <= CPU_GEMM_PACK_MAX_KN, and the nodes right after it that only it feeds are folded
 *    into the kernel's epilogue: an Add of a constant per-column bias (Keras/TF MatMul + Add),
 *    then one Relu / LeakyRelu / Sigmoid / Tanh. Gemm's own C (beta * C, when it broadcasts per
 *    column) is the bias too. The fused nodes' intermediate tensors are never materialised.
 *    At prepare a layer whose Add would broadcast the output to another shape runs unfused.
 *    Per layer and batch size the plan picks cpu_sgemm_packed or cblas_sgemm + the epilogue
 *    (cpu_gemm_choose_packed). The graph's BatchNormalization nodes after a layer were already
 *    folded into its weights at load (passes.c).
 *  - Row blocking. A chain of steps that each map row i of their input to row i of their
 *    output (layers, elementwise activations, a last-axis Softmax), each step feeding the
 *    next, runs block by block of rows (SEG_BYTES of activations per block) instead of layer
 *    by layer, so the chain's intermediates stay in L1/L2 instead of streaming through memory.
 *    An intermediate that nothing else reads gets a buffer of one block only; the others keep
 *    full-size buffers, live for the whole chain.
 *
 * Buffers: every tensor a step writes, every node's workspace and a landing slot per graph
 * input get an offset in one arena, sized at prepare; buffers whose live ranges (first write ..
 * last read, in step order) do not overlap share bytes. Planning (engine_plan_place in plan.c,
 * shared with the OpenCL backend) is greedy by size (largest first), placing each buffer at the
 * lowest offset that does not collide with an already placed buffer whose live range overlaps:
 * the classic heuristic ML runtimes use for activation memory, close to optimal for the
 * chain-like graphs exported from dense networks. Steps: 0 = graph inputs arrive, step s runs at
 * s + 1, graph outputs are copied out at n_steps + 1.
 * Reshape/Flatten/Squeeze/Unsqueeze/Identity outputs alias their input and extend its live
 * range instead of taking space. engine_exec_run then only walks the steps: it never
 * allocates, so a server worker's latency does not depend on malloc.
 *
 * Graph inputs are read in place when suitably aligned for their element type; otherwise (a
 * tensor inside a gRPC message can sit at any offset) they are first copied to their slot, so
 * kernels always see aligned data. Outputs are computed in the arena and copied to the
 * caller's buffers, which may have any alignment. */
#include "exec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_unary.h"
#include "graph.h"
#include "ops.h"
#include "plan.h"
#include "shape.h"

#define ALIGN 64
#define NO_SLOT SIZE_MAX
/* Bytes of activations (input row + every step's output row, times the rows) per row block. */
#define SEG_BYTES (256 * 1024)
/* Row blocks are a multiple of this (every tile height of cpu_sgemm_packed divides it). */
#define SEG_ROW_QUANTUM 48
/* Rows per cblas_sgemm call of a layer on the BLAS path, so its epilogue finds C in cache. */
#define BLAS_CHUNK_ROWS 256

typedef engine_plan_item_t plan_item_t; /* plan.h */

/* A Gemm/MatMul with a constant weight and the nodes fused into its epilogue (create time). */
typedef struct layer {
    int32_t node, add, act; /* node indices; add, act -1 when not fused */
    int32_t x, y;           /* tensor ids: A, and what the layer writes (last fused output) */
    int64_t k, n;
    bool trans_b;
    float alpha;            /* cblas path; the packed weight includes it */
    const float *b;         /* the weight as the graph holds it (cblas path) */
    int64_t ldb;
    float *bias;            /* owned, [n], or NULL: beta * C (+ the fused Add's constant) */
    float *packed;          /* owned (cpu_sgemm_pack) or NULL when too large */
    cpu_act act_kind;
    float act_alpha;
} layer_t;

enum { STEP_NODE, STEP_LAYER };

typedef struct step {
    int32_t idx; /* node index (STEP_NODE) or layer index (STEP_LAYER) */
    uint8_t kind;
    bool packed;       /* layer: cpu_sgemm_packed, else cpu_sgemm + epilogue */
    bool rowwise;      /* maps input rows to output rows (can join a row-blocked chain) */
    int32_t x, y;      /* rowwise: input and output tensor */
    int64_t rows;      /* rowwise: rows of x and y */
    int64_t xcols, ycols;
    int32_t seg_last;  /* first step of a row-blocked chain: its last step; else -1 */
    int64_t seg_rows;  /* first step of a chain: rows per block */
} step_t;

struct engine_exec {
    const engine_graph_t *g;
    int32_t nt, nn;
    engine_shape_t *shapes; /* per tensor */
    void **data;            /* per tensor, resolved per run */
    int32_t *root;          /* per tensor: tensor whose buffer it uses */
    int32_t *consumers;     /* per tensor: node inputs reading it */
    bool *is_output;        /* per tensor */
    int32_t *start, *end;   /* per root: live steps (per prepare) */
    size_t *off;            /* per tensor root: arena offset, NO_SLOT if it has none */
    bool *blocked;          /* per tensor: a one-block buffer of a row-blocked chain */
    size_t *ws_bytes;       /* per node */
    size_t *ws_off;         /* per node */
    int32_t *layer_of;      /* per node: layer it heads, or -1 */
    bool *fused;            /* per node: folded into a layer's epilogue (this prepare) */
    layer_t *layers;
    int32_t n_layers;
    step_t *steps;          /* per prepare */
    int32_t n_steps;
    plan_item_t *items;     /* nt + nn */
    int32_t *by_off;        /* placed items sorted by offset */
    uint8_t *arena;
    size_t arena_size, arena_cap, unshared;
    uint64_t arena_allocs;
    bool prepared;
    engine_shape_t *last_in;  /* n_inputs */
    engine_shape_t *last_out; /* n_outputs */
};

static size_t round_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

void engine_exec_destroy(engine_exec_t *e)
{
    if (!e)
        return;
    for (int32_t i = 0; i < e->n_layers; i++) {
        free(e->layers[i].bias);
        free(e->layers[i].packed);
    }
    free(e->layers);
    free(e->shapes);
    free(e->data);
    free(e->root);
    free(e->consumers);
    free(e->is_output);
    free(e->start);
    free(e->end);
    free(e->off);
    free(e->blocked);
    free(e->ws_bytes);
    free(e->ws_off);
    free(e->layer_of);
    free(e->fused);
    free(e->steps);
    free(e->items);
    free(e->by_off);
    free(e->arena);
    free(e->last_in);
    free(e->last_out);
    free(e);
}

static const graph_tensor_t *const_f32(const engine_graph_t *g, int32_t t)
{
    if (t < 0)
        return NULL;
    const graph_tensor_t *gt = &g->tensors[t];
    return gt->is_const && gt->data && gt->dtype == HLT_TYPE_FP32 && gt->rank >= 0 ? gt : NULL;
}

/* A constant that broadcasts along rows to [.., n] (rank <= 2, leading dim 1, last dim 1 or n),
 * as a per-column value: c(j) = data[per_col ? j : 0]. */
static bool per_column(const graph_tensor_t *c, int64_t n, bool *per_col)
{
    if (!c || c->rank > 2)
        return false;
    if (c->rank == 2 && c->dims[0] != 1)
        return false;
    const int64_t last = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    if (last != 1 && last != n)
        return false;
    *per_col = last == n && n != 1;
    return true;
}

static bool is_activation(op_kind op)
{
    return op == OP_RELU || op == OP_LEAKY_RELU || op == OP_SIGMOID || op == OP_TANH;
}

/* The only node reading tensor t, or -1 (several readers, none, or a graph output). */
static int32_t sole_consumer(const engine_exec_t *e, int32_t t)
{
    if (e->consumers[t] != 1 || e->is_output[t])
        return -1;
    for (int32_t i = 0; i < e->nn; i++) {
        const graph_node_t *n = &e->g->nodes[i];
        for (int32_t j = 0; j < n->n_in; j++)
            if (n->in[j] == t)
                return i;
    }
    return -1;
}

/* Builds the layer headed by node i if it is one (see the file comment). */
static hlt_status make_layer(engine_exec_t *e, int32_t i, char *err, size_t errlen)
{
    const engine_graph_t *g = e->g;
    const graph_node_t *nd = &g->nodes[i];
    if (nd->op != OP_GEMM && nd->op != OP_MATMUL)
        return HLT_OK;
    const graph_tensor_t *w = const_f32(g, nd->in[1]);
    if (!w || w->rank != 2 || (nd->op == OP_GEMM && nd->attrs.trans_a))
        return HLT_OK;
    layer_t L = {.node = i, .add = -1, .act = -1, .x = nd->in[0], .y = nd->out[0]};
    L.trans_b = nd->op == OP_GEMM && nd->attrs.trans_b;
    L.alpha = nd->op == OP_GEMM ? nd->attrs.alpha : 1.0f;
    L.k = L.trans_b ? w->dims[1] : w->dims[0];
    L.n = L.trans_b ? w->dims[0] : w->dims[1];
    L.b = w->data;
    L.ldb = w->dims[1];
    if (L.n <= 0 || L.k < 0)
        return HLT_OK;
    const graph_tensor_t *c = NULL, *d = NULL;
    bool c_col = false, d_col = false;
    if (nd->op == OP_GEMM && nd->n_in > 2 && nd->in[2] >= 0 && nd->attrs.beta != 0.0f) {
        c = const_f32(g, nd->in[2]);
        if (!per_column(c, L.n, &c_col))
            return HLT_OK; /* a run-time or per-row C: the plain Gemm op handles it */
    }
    int32_t nx = sole_consumer(e, L.y);
    if (nx >= 0 && g->nodes[nx].op == OP_ADD) {
        const graph_node_t *an = &g->nodes[nx];
        const int32_t other = an->in[0] == L.y ? an->in[1] : an->in[0];
        d = const_f32(g, other);
        if (per_column(d, L.n, &d_col)) {
            L.add = nx;
            L.y = an->out[0];
            nx = sole_consumer(e, L.y);
        } else {
            d = NULL;
        }
    }
    if (nx >= 0 && is_activation(g->nodes[nx].op)) {
        static const cpu_act acts[] = {[OP_RELU] = CPU_ACT_RELU,
                                       [OP_LEAKY_RELU] = CPU_ACT_LEAKY_RELU,
                                       [OP_SIGMOID] = CPU_ACT_SIGMOID,
                                       [OP_TANH] = CPU_ACT_TANH};
        L.act = nx;
        L.act_kind = acts[g->nodes[nx].op];
        L.act_alpha = g->nodes[nx].attrs.alpha;
        L.y = g->nodes[nx].out[0];
    }
    if (c || d) {
        L.bias = malloc(sizeof(float) * (size_t)L.n);
        if (!L.bias)
            goto oom;
        for (int64_t j = 0; j < L.n; j++) {
            float v = c ? nd->attrs.beta * ((const float *)c->data)[c_col ? j : 0] : 0.0f;
            if (d)
                v += ((const float *)d->data)[d_col ? j : 0];
            L.bias[j] = v;
        }
    }
    if (L.k * L.n <= CPU_GEMM_PACK_MAX_KN) {
        const size_t fl = cpu_sgemm_packed_floats(L.n, L.k);
        L.packed = aligned_alloc(ALIGN, round_up(fl * sizeof(float)));
        if (!L.packed)
            goto oom;
        cpu_sgemm_pack(L.trans_b, L.n, L.k, L.alpha, L.b, L.ldb, L.bias, L.packed);
    }
    e->layer_of[i] = e->n_layers;
    e->layers[e->n_layers++] = L;
    return HLT_OK;
oom:
    free(L.bias);
    return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory planning node '%s'",
                       nd->name);
}

hlt_status engine_exec_create(const engine_graph_t *g, engine_exec_t **out, char *err,
                              size_t errlen)
{
    engine_exec_t *e = calloc(1, sizeof *e);
    if (!e)
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    const size_t nt = (size_t)g->n_tensors + 1, nn = (size_t)g->n_nodes + 1;
    e->g = g;
    e->nt = g->n_tensors;
    e->nn = g->n_nodes;
    e->shapes = calloc(nt, sizeof *e->shapes);
    e->data = calloc(nt, sizeof *e->data);
    e->root = calloc(nt, sizeof *e->root);
    e->consumers = calloc(nt, sizeof *e->consumers);
    e->is_output = calloc(nt, sizeof *e->is_output);
    e->start = calloc(nt, sizeof *e->start);
    e->end = calloc(nt, sizeof *e->end);
    e->off = calloc(nt, sizeof *e->off);
    e->blocked = calloc(nt, sizeof *e->blocked);
    e->ws_bytes = calloc(nn, sizeof *e->ws_bytes);
    e->ws_off = calloc(nn, sizeof *e->ws_off);
    e->layer_of = calloc(nn, sizeof *e->layer_of);
    e->fused = calloc(nn, sizeof *e->fused);
    e->layers = calloc(nn, sizeof *e->layers);
    e->steps = calloc(nn, sizeof *e->steps);
    e->items = calloc(nt + nn, sizeof *e->items);
    e->by_off = calloc(nt + nn, sizeof *e->by_off);
    e->last_in = calloc((size_t)g->n_inputs + 1, sizeof *e->last_in);
    e->last_out = calloc((size_t)g->n_outputs + 1, sizeof *e->last_out);
    if (!e->shapes || !e->data || !e->root || !e->consumers || !e->is_output || !e->start ||
        !e->end || !e->off || !e->blocked || !e->ws_bytes || !e->ws_off || !e->layer_of ||
        !e->fused || !e->layers || !e->steps || !e->items || !e->by_off || !e->last_in ||
        !e->last_out) {
        engine_exec_destroy(e);
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    /* Shape-independent facts: constants, storage roots, readers, layers. */
    for (int32_t t = 0; t < e->nt; t++) {
        const graph_tensor_t *gt = &g->tensors[t];
        e->root[t] = t;
        if (gt->is_const) {
            e->data[t] = gt->data;
            e->shapes[t].rank = gt->rank;
            memcpy(e->shapes[t].dims, gt->dims, sizeof e->shapes[t].dims);
        }
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        e->is_output[g->outputs[i]] = true;
    for (int32_t i = 0; i < e->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        if (op_def(n->op)->view)
            e->root[n->out[0]] = e->root[n->in[0]];
        for (int32_t j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0)
                e->consumers[n->in[j]]++;
        e->layer_of[i] = -1;
    }
    for (int32_t i = 0; i < e->nn; i++) {
        const hlt_status st = make_layer(e, i, err, errlen);
        if (st != HLT_OK) {
            engine_exec_destroy(e);
            return st;
        }
    }
    *out = e;
    return HLT_OK;
}

hlt_status engine_check_inputs(const engine_graph_t *g, const engine_shape_t *in, char *err,
                               size_t errlen)
{
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const engine_tensor_desc_t *d = &g->input_desc[i];
        const engine_shape_t *s = &in[i];
        char ss[96];
        if (s->rank < 0 || s->rank > ENGINE_MAX_RANK || (d->rank >= 0 && s->rank != d->rank))
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                               "input '%s': rank %d, the model expects %d", d->name, s->rank,
                               d->rank);
        for (int32_t k = 0; k < s->rank; k++) {
            if (s->dims[k] < 0)
                return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                                   "input '%s': negative dim %d in %s", d->name, k,
                                   shape_str(s, ss, sizeof ss));
            if (d->rank >= 0 && d->dims[k] >= 0 && s->dims[k] != d->dims[k])
                return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                                   "input '%s': dim %d is %lld, the model expects %lld", d->name, k,
                                   (long long)s->dims[k], (long long)d->dims[k]);
            if (d->rank < 0 || !d->dim_params[k])
                continue;
            /* The same symbolic name must mean the same size everywhere. */
            for (int32_t j = 0; j <= i; j++)
                for (int32_t q = 0; q < g->input_desc[j].rank && q < in[j].rank; q++) {
                    const char *p = g->input_desc[j].dim_params[q];
                    if ((j < i || q < k) && p && strcmp(p, d->dim_params[k]) == 0 &&
                        in[j].dims[q] != s->dims[k])
                        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                                           "input '%s': dim %d (%s) is %lld but input '%s' "
                                           "gives %s = %lld",
                                           d->name, k, p, (long long)s->dims[k],
                                           g->input_desc[j].name, p, (long long)in[j].dims[q]);
                }
        }
        if (shape_numel(s) < 0)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "input '%s' is too large",
                               d->name);
    }
    return HLT_OK;
}

static bool same_inputs(const engine_exec_t *e, const engine_shape_t *in)
{
    for (int32_t i = 0; i < e->g->n_inputs; i++) {
        if (in[i].rank != e->last_in[i].rank)
            return false;
        for (int32_t k = 0; k < in[i].rank; k++)
            if (in[i].dims[k] != e->last_in[i].dims[k])
                return false;
    }
    return true;
}

static bool same_shape(const engine_shape_t *a, const engine_shape_t *b)
{
    if (a->rank != b->rank)
        return false;
    for (int32_t i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

static size_t tensor_bytes(const engine_exec_t *e, int32_t t)
{
    return (size_t)shape_numel(&e->shapes[t]) * hlt_dtype_size(e->g->tensors[t].dtype);
}

/* Row facts of a non-layer node that may continue a row-blocked chain after step prev. */
static bool rowwise_node(const engine_exec_t *e, const graph_node_t *n, const step_t *prev,
                         step_t *st)
{
    if (!prev || !prev->rowwise || n->in[0] != prev->y || prev->rows <= 0)
        return false;
    const engine_shape_t *xs = &e->shapes[n->in[0]];
    if (is_activation(n->op)) {
        st->xcols = st->ycols = prev->ycols;
    } else if (n->op == OP_SOFTMAX && xs->rank >= 1) {
        const int64_t axis = n->attrs.axis < 0 ? n->attrs.axis + xs->rank : n->attrs.axis;
        if (axis != xs->rank - 1)
            return false; /* rows are only the last axis (opset 13) or from axis on (opset 11) */
        st->xcols = st->ycols = xs->dims[xs->rank - 1];
        if (st->xcols != prev->ycols)
            return false;
    } else {
        return false;
    }
    st->rowwise = true;
    st->x = n->in[0];
    st->y = n->out[0];
    st->rows = prev->rows;
    return true;
}

/* Steps, row-blocked chains and live ranges for the shapes in e->shapes. */
static void plan_steps(engine_exec_t *e)
{
    const engine_graph_t *g = e->g;
    memset(e->fused, 0, sizeof *e->fused * (size_t)e->nn);
    e->n_steps = 0;
    for (int32_t i = 0; i < e->nn; i++) {
        if (e->fused[i])
            continue;
        step_t *st = &e->steps[e->n_steps];
        step_t *prev = e->n_steps ? &e->steps[e->n_steps - 1] : NULL;
        *st = (step_t){.idx = i, .kind = STEP_NODE, .x = -1, .y = -1, .seg_last = -1};
        const int32_t li = e->layer_of[i];
        const layer_t *L = li >= 0 ? &e->layers[li] : NULL;
        /* The fused Add must not broadcast the layer's output to another shape. */
        if (L && L->add >= 0 &&
            !same_shape(&e->shapes[g->nodes[L->add].out[0]], &e->shapes[g->nodes[i].out[0]]))
            L = NULL;
        if (L) {
            st->kind = STEP_LAYER;
            st->idx = li;
            st->rowwise = true;
            st->x = L->x;
            st->y = L->y;
            st->xcols = L->k;
            st->ycols = L->n;
            st->rows = shape_numel(&e->shapes[L->y]) / L->n;
            if (L->add >= 0)
                e->fused[L->add] = true;
            if (L->act >= 0)
                e->fused[L->act] = true;
        } else {
            rowwise_node(e, &g->nodes[i], prev, st);
        }
        e->n_steps++;
    }
    /* Row-blocked chains: a layer, then steps that each read the previous one's output. */
    for (int32_t s = 0; s < e->n_steps;) {
        step_t *st = &e->steps[s];
        int32_t t = s + 1;
        if (st->kind == STEP_LAYER && st->rows > 0)
            while (t < e->n_steps && e->steps[t].rowwise && e->steps[t].x == e->steps[t - 1].y &&
                   e->steps[t].rows == st->rows)
                t++;
        int64_t row_bytes = st->xcols;
        for (int32_t q = s; q < t; q++)
            row_bytes += e->steps[q].ycols;
        row_bytes *= (int64_t)sizeof(float);
        int64_t block = row_bytes > 0 ? SEG_BYTES / row_bytes : 0;
        block = block < SEG_ROW_QUANTUM ? SEG_ROW_QUANTUM : block;
        if (t - s >= 2 && st->rows > block) {
            /* equal blocks, so that the last one is not a sliver */
            const int64_t nblk = (st->rows + block - 1) / block;
            block = (st->rows + nblk - 1) / nblk;
            block = (block + SEG_ROW_QUANTUM - 1) / SEG_ROW_QUANTUM * SEG_ROW_QUANTUM;
        }
        if (t - s >= 2 && st->rows > block) {
            st->seg_last = t - 1;
            st->seg_rows = block;
        }
        s = t;
    }
    /* Packed kernel or OpenBLAS, for the rows each call of the layer gets. */
    for (int32_t s = 0; s < e->n_steps; s++) {
        const int32_t last = e->steps[s].seg_last >= 0 ? e->steps[s].seg_last : s;
        const int64_t m = e->steps[s].seg_last >= 0 ? e->steps[s].seg_rows : e->steps[s].rows;
        for (int32_t q = s; q <= last; q++) {
            step_t *sq = &e->steps[q];
            if (sq->kind != STEP_LAYER)
                continue;
            const layer_t *L = &e->layers[sq->idx];
            sq->packed =
                L->packed && cpu_gemm_choose_packed(L->trans_b, m, L->n, L->k) == CPU_GEMM_SMALL;
        }
        s = last;
    }
}

/* Live ranges (in step order) and block buffers for the current steps. */
static void plan_liveness(engine_exec_t *e)
{
    const engine_graph_t *g = e->g;
    for (int32_t t = 0; t < e->nt; t++) {
        e->start[t] = e->end[t] = g->tensors[t].input_idx >= 0 ? 0 : -1;
        e->blocked[t] = false;
    }
    for (int32_t s = 0; s < e->n_steps; s++) {
        const step_t *st = &e->steps[s];
        const int32_t tau = s + 1;
        if (st->kind == STEP_LAYER) {
            const int32_t x = e->root[st->x];
            if (e->end[x] < tau)
                e->end[x] = tau;
            e->start[st->y] = e->end[st->y] = tau;
            continue;
        }
        const graph_node_t *n = &g->nodes[st->idx];
        for (int32_t j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0 && e->end[e->root[n->in[j]]] < tau)
                e->end[e->root[n->in[j]]] = tau;
        if (!op_def(n->op)->view)
            e->start[n->out[0]] = e->end[n->out[0]] = tau;
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        e->end[e->root[g->outputs[i]]] = e->n_steps + 1;
    /* A chain runs all its steps block by block: whatever it reads or writes is live from its
     * first step to its last; intermediates only the next step reads need one block. */
    for (int32_t s = 0; s < e->n_steps; s++) {
        const step_t *st = &e->steps[s];
        if (st->seg_last < 0)
            continue;
        const int32_t first = s + 1, last = st->seg_last + 1;
        for (int32_t q = s; q <= st->seg_last; q++) {
            const step_t *sq = &e->steps[q];
            const int32_t x = e->root[sq->x], y = sq->y;
            if (e->end[x] < last)
                e->end[x] = last;
            e->start[y] = first;
            if (e->end[y] < last)
                e->end[y] = last;
            if (q < st->seg_last && e->consumers[y] == 1 && !e->is_output[y])
                e->blocked[y] = true;
        }
        s = st->seg_last;
    }
}

hlt_status engine_exec_prepare(engine_exec_t *e, const engine_shape_t *in_shapes,
                               engine_shape_t *out_shapes, char *err, size_t errlen)
{
    const engine_graph_t *g = e->g;
    hlt_status st = engine_check_inputs(g, in_shapes, err, errlen);
    if (st != HLT_OK)
        return st;
    if (e->prepared && same_inputs(e, in_shapes))
        goto done;
    e->prepared = false;
    for (int32_t i = 0; i < g->n_inputs; i++)
        e->shapes[g->inputs[i]] = in_shapes[i];
    for (int32_t i = 0; i < e->nn; i++)
        if ((st = shape_infer_node(g, &g->nodes[i], e->shapes, &e->ws_bytes[i], err, errlen)) !=
            HLT_OK)
            return st;
    plan_steps(e);
    plan_liveness(e);
    int32_t n = 0;
    size_t unshared = 0;
    for (int32_t t = 0; t < e->nt; t++)
        e->off[t] = NO_SLOT;
    for (int32_t s = 0; s < e->n_steps; s++) {
        const step_t *sc = &e->steps[s];
        if (sc->seg_last < 0)
            continue;
        for (int32_t q = s; q <= sc->seg_last; q++) {
            const int32_t y = e->steps[q].y;
            if (!e->blocked[y])
                continue;
            const size_t bytes = round_up((size_t)sc->seg_rows * (size_t)e->steps[q].ycols *
                                          sizeof(float));
            e->items[n++] = (plan_item_t){bytes, 0, e->start[y], e->end[y], y};
            unshared += bytes;
        }
        s = sc->seg_last;
    }
    for (int32_t t = 0; t < e->nt; t++) {
        if (e->root[t] != t || e->start[t] < 0 || e->blocked[t] || g->tensors[t].is_const)
            continue; /* a view, a constant, a tensor nothing computes, or a block buffer */
        const size_t bytes = round_up(tensor_bytes(e, t));
        e->items[n++] = (plan_item_t){bytes, 0, e->start[t], e->end[t], t};
        unshared += bytes;
    }
    for (int32_t s = 0; s < e->n_steps; s++) {
        const int32_t i = e->steps[s].idx;
        if (e->steps[s].kind == STEP_NODE && e->ws_bytes[i]) {
            e->items[n++] = (plan_item_t){round_up(e->ws_bytes[i]), 0, s + 1, s + 1, e->nt + i};
            unshared += round_up(e->ws_bytes[i]);
        }
    }
    const size_t total = engine_plan_place(e->items, n, e->by_off);
    for (int32_t k = 0; k < n; k++) {
        const plan_item_t *it = &e->items[k];
        if (it->owner < e->nt)
            e->off[it->owner] = it->off;
        else
            e->ws_off[it->owner - e->nt] = it->off;
    }
    /* Never leave the arena NULL: zero-sized tensors still get a (never dereferenced) pointer
     * into it, and pointer arithmetic on NULL is undefined. */
    const size_t need = total ? total : ALIGN;
    if (need > e->arena_cap) {
        uint8_t *a = aligned_alloc(ALIGN, need);
        if (!a)
            return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen,
                               "cannot allocate %zu bytes of scratch memory", need);
        free(e->arena);
        e->arena = a;
        e->arena_cap = need;
        e->arena_allocs++;
    }
    e->arena_size = total;
    e->unshared = unshared;
    for (int32_t i = 0; i < g->n_inputs; i++)
        e->last_in[i] = in_shapes[i];
    for (int32_t i = 0; i < g->n_outputs; i++)
        e->last_out[i] = e->shapes[g->outputs[i]];
    e->prepared = true;
done:
    if (g->n_outputs)
        memcpy(out_shapes, e->last_out, sizeof *out_shapes * (size_t)g->n_outputs);
    return HLT_OK;
}

/* Layer L on rows: x [rows, k] -> y [rows, n]. */
static void run_layer(const layer_t *L, bool packed, const float *x, float *y, int64_t rows)
{
    if (packed) {
        cpu_sgemm_packed(rows, L->n, L->k, x, L->k, L->packed, L->act_kind, L->act_alpha, y, L->n);
        return;
    }
    for (int64_t r = 0; r < rows; r += BLAS_CHUNK_ROWS) {
        const int64_t m = rows - r < BLAS_CHUNK_ROWS ? rows - r : BLAS_CHUNK_ROWS;
        cpu_sgemm(false, L->trans_b, m, L->n, L->k, L->alpha, x + r * L->k, L->k, L->b, L->ldb,
                  0.0f, y + r * L->n, L->n);
        cpu_bias_act_f32(m, L->n, L->bias, L->act_kind, L->act_alpha, y + r * L->n, L->n);
    }
}

/* A row-wise step on rows: x [rows, xcols] -> y [rows, ycols]. */
static void run_rows(const engine_exec_t *e, const step_t *st, const float *x, float *y,
                     int64_t rows)
{
    if (st->kind == STEP_LAYER) {
        run_layer(&e->layers[st->idx], st->packed, x, y, rows);
        return;
    }
    const graph_node_t *n = &e->g->nodes[st->idx];
    const int64_t cnt = rows * st->xcols;
    switch (n->op) {
    case OP_RELU:
        cpu_relu_f32(x, y, cnt);
        break;
    case OP_LEAKY_RELU:
        cpu_leaky_relu_f32(x, y, cnt, n->attrs.alpha);
        break;
    case OP_SIGMOID:
        cpu_sigmoid_f32(x, y, cnt);
        break;
    case OP_TANH:
        cpu_tanh_f32(x, y, cnt);
        break;
    case OP_SOFTMAX:
        cpu_softmax_f32(x, y, rows, st->xcols, 1, NULL);
        break;
    default:
        break;
    }
}

/* Steps s..last, block by block of rows. */
static void run_chain(engine_exec_t *e, int32_t s, int32_t last)
{
    const int64_t rows = e->steps[s].rows, block = e->steps[s].seg_rows;
    for (int32_t q = s; q <= last; q++)
        e->data[e->steps[q].y] = e->arena + e->off[e->steps[q].y];
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
        const int64_t m = rows - r0 < block ? rows - r0 : block;
        for (int32_t q = s; q <= last; q++) {
            const step_t *st = &e->steps[q];
            const float *x = (const float *)e->data[st->x] + (e->blocked[st->x] ? 0 : r0 * st->xcols);
            float *y = (float *)e->data[st->y] + (e->blocked[st->y] ? 0 : r0 * st->ycols);
            run_rows(e, st, x, y, m);
        }
    }
}

hlt_status engine_exec_run(engine_exec_t *e, const void *const *inputs, void *const *outputs,
                           char *err, size_t errlen)
{
    const engine_graph_t *g = e->g;
    if (!e->prepared)
        return engine_errf(HLT_FAILED_PRECONDITION, err, errlen,
                           "engine_exec_run before a successful engine_exec_prepare");
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const int32_t t = g->inputs[i];
        const size_t bytes = tensor_bytes(e, t);
        const size_t es = hlt_dtype_size(g->tensors[t].dtype);
        if (!inputs[i] && bytes)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "input '%s' has no data",
                               g->tensors[t].name);
        if (((uintptr_t)inputs[i] & (es - 1)) == 0) {
            e->data[t] = (void *)(uintptr_t)inputs[i]; /* read-only from here on */
        } else {
            e->data[t] = e->arena + e->off[t];
            memcpy(e->data[t], inputs[i], bytes);
        }
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (!outputs[i] && tensor_bytes(e, g->outputs[i]))
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "output '%s' has no buffer",
                               g->tensors[g->outputs[i]].name);
    for (int32_t s = 0; s < e->n_steps; s++) {
        const step_t *st = &e->steps[s];
        if (st->seg_last >= 0) {
            run_chain(e, s, st->seg_last);
            s = st->seg_last;
            continue;
        }
        if (st->kind == STEP_LAYER) {
            e->data[st->y] = e->arena + e->off[st->y];
            run_layer(&e->layers[st->idx], st->packed, e->data[st->x], e->data[st->y], st->rows);
            continue;
        }
        const graph_node_t *n = &g->nodes[st->idx];
        const op_def_t *d = op_def(n->op);
        const int32_t y = n->out[0];
        if (d->view) {
            e->data[y] = e->data[n->in[0]];
            continue;
        }
        e->data[y] = e->arena + e->off[y];
        const op_run_t r = {.g = g,
                            .n = n,
                            .shapes = e->shapes,
                            .data = e->data,
                            .ws = e->ws_bytes[st->idx] ? e->arena + e->ws_off[st->idx] : NULL};
        d->run(&r);
    }
    for (int32_t i = 0; i < g->n_outputs; i++) {
        const int32_t t = g->outputs[i];
        const size_t bytes = tensor_bytes(e, t);
        if (bytes)
            memcpy(outputs[i], e->data[t], bytes);
    }
    return HLT_OK;
}

size_t exec_arena_bytes(const engine_exec_t *e)
{
    return e->prepared ? e->arena_size : 0;
}

size_t exec_unshared_bytes(const engine_exec_t *e)
{
    return e->prepared ? e->unshared : 0;
}

uint64_t exec_arena_allocations(const engine_exec_t *e)
{
    return e->arena_allocs;
}
