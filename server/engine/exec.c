/* exec: buffer planning and the run loop (see exec.h).
 *
 * Planning is greedy by size (largest first), placing each buffer at the lowest offset that
 * does not collide with an already placed buffer whose live range overlaps: the classic
 * heuristic ML runtimes use for activation memory, close to optimal for the chain-like graphs
 * exported from dense networks. Steps: 0 = graph inputs arrive, node i runs at step i + 1,
 * graph outputs are copied out at step n_nodes + 1.
 *
 * Graph inputs are read in place when suitably aligned for their element type; otherwise (a
 * tensor inside a gRPC message can sit at any offset) they are first copied to their slot, so
 * kernels always see aligned data. Outputs are computed in the arena and copied to the
 * caller's buffers, which may have any alignment. */
#include "exec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "ops.h"
#include "shape.h"

#define ALIGN 64
#define NO_SLOT SIZE_MAX

typedef struct plan_item {
    size_t size;
    size_t off;
    int32_t start, end; /* live steps, inclusive */
    int32_t owner;      /* tensor id, or n_tensors + node index for a workspace */
} plan_item_t;

struct engine_exec {
    const engine_graph_t *g;
    int32_t nt, nn;
    engine_shape_t *shapes; /* per tensor */
    void **data;            /* per tensor, resolved per run */
    int32_t *root;          /* per tensor: tensor whose buffer it uses */
    int32_t *start, *end;   /* per root: live steps */
    size_t *off;            /* per tensor root: arena offset, NO_SLOT if it has none */
    size_t *ws_bytes;       /* per node */
    size_t *ws_off;         /* per node */
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
    free(e->shapes);
    free(e->data);
    free(e->root);
    free(e->start);
    free(e->end);
    free(e->off);
    free(e->ws_bytes);
    free(e->ws_off);
    free(e->items);
    free(e->by_off);
    free(e->arena);
    free(e->last_in);
    free(e->last_out);
    free(e);
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
    e->start = calloc(nt, sizeof *e->start);
    e->end = calloc(nt, sizeof *e->end);
    e->off = calloc(nt, sizeof *e->off);
    e->ws_bytes = calloc(nn, sizeof *e->ws_bytes);
    e->ws_off = calloc(nn, sizeof *e->ws_off);
    e->items = calloc(nt + nn, sizeof *e->items);
    e->by_off = calloc(nt + nn, sizeof *e->by_off);
    e->last_in = calloc((size_t)g->n_inputs + 1, sizeof *e->last_in);
    e->last_out = calloc((size_t)g->n_outputs + 1, sizeof *e->last_out);
    if (!e->shapes || !e->data || !e->root || !e->start || !e->end || !e->off || !e->ws_bytes ||
        !e->ws_off || !e->items || !e->by_off || !e->last_in || !e->last_out) {
        engine_exec_destroy(e);
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    /* Shape-independent facts: constants, storage roots, live ranges. */
    for (int32_t t = 0; t < e->nt; t++) {
        const graph_tensor_t *gt = &g->tensors[t];
        e->root[t] = t;
        e->start[t] = e->end[t] = gt->input_idx >= 0 ? 0 : -1;
        if (gt->is_const) {
            e->data[t] = gt->data;
            e->shapes[t].rank = gt->rank;
            memcpy(e->shapes[t].dims, gt->dims, sizeof e->shapes[t].dims);
        }
    }
    for (int32_t i = 0; i < e->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        const int32_t y = n->out[0];
        if (op_def(n->op)->view)
            e->root[y] = e->root[n->in[0]];
        else
            e->start[y] = e->end[y] = i + 1;
        for (int32_t j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0 && e->end[e->root[n->in[j]]] < i + 1)
                e->end[e->root[n->in[j]]] = i + 1;
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        e->end[e->root[g->outputs[i]]] = e->nn + 1;
    *out = e;
    return HLT_OK;
}

static int cmp_size_desc(const void *pa, const void *pb)
{
    const plan_item_t *a = pa, *b = pb;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    return a->owner - b->owner; /* deterministic */
}

/* Assigns offsets to items[0..n), returns the arena size. */
static size_t place(plan_item_t *items, int32_t n, int32_t *by_off)
{
    qsort(items, (size_t)n, sizeof *items, cmp_size_desc);
    size_t total = 0;
    int32_t placed = 0;
    for (int32_t i = 0; i < n; i++) {
        plan_item_t *it = &items[i];
        size_t cand = 0;
        for (int32_t k = 0; k < placed; k++) {
            const plan_item_t *p = &items[by_off[k]];
            if (p->end < it->start || it->end < p->start)
                continue; /* never live at the same time */
            if (cand + it->size <= p->off)
                break; /* fits in the gap before p; later items lie further up */
            if (p->off + p->size > cand)
                cand = p->off + p->size;
        }
        it->off = cand;
        int32_t k = placed++;
        while (k > 0 && items[by_off[k - 1]].off > cand) {
            by_off[k] = by_off[k - 1];
            k--;
        }
        by_off[k] = i;
        if (cand + it->size > total)
            total = cand + it->size;
    }
    return total;
}

static hlt_status check_inputs(engine_exec_t *e, const engine_shape_t *in, char *err, size_t errlen)
{
    const engine_graph_t *g = e->g;
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

static size_t tensor_bytes(const engine_exec_t *e, int32_t t)
{
    return (size_t)shape_numel(&e->shapes[t]) * hlt_dtype_size(e->g->tensors[t].dtype);
}

hlt_status engine_exec_prepare(engine_exec_t *e, const engine_shape_t *in_shapes,
                               engine_shape_t *out_shapes, char *err, size_t errlen)
{
    const engine_graph_t *g = e->g;
    hlt_status st = check_inputs(e, in_shapes, err, errlen);
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
    int32_t n = 0;
    size_t unshared = 0;
    for (int32_t t = 0; t < e->nt; t++) {
        e->off[t] = NO_SLOT;
        if (e->root[t] != t || e->start[t] < 0)
            continue; /* a view, a constant, or a tensor nothing computes */
        const size_t bytes = tensor_bytes(e, t);
        e->items[n++] = (plan_item_t){round_up(bytes), 0, e->start[t], e->end[t], t};
        unshared += round_up(bytes);
    }
    for (int32_t i = 0; i < e->nn; i++)
        if (e->ws_bytes[i]) {
            e->items[n++] = (plan_item_t){round_up(e->ws_bytes[i]), 0, i + 1, i + 1, e->nt + i};
            unshared += round_up(e->ws_bytes[i]);
        }
    const size_t total = place(e->items, n, e->by_off);
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
    for (int32_t i = 0; i < e->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
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
                            .ws = e->ws_bytes[i] ? e->arena + e->ws_off[i] : NULL};
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
