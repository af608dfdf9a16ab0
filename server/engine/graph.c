/* graph: IR storage, name index and the load-time passes (see graph.h).
 *
 * Sorting: ONNX requires nodes in topological order and exporters emit them so; we still sort
 * (stable, by repeated passes: one pass for an already sorted graph, quadratic only for
 * pathological files) rather than only check, so a hand-edited file with shuffled nodes loads.
 * A cycle or an input nobody defines is an INVALID_ARGUMENT naming the node. */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "passes.h"
#include "shape.h"

hlt_status engine_errf(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

int64_t graph_numel(int32_t rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++)
        if (dims[i] < 0 || __builtin_mul_overflow(n, dims[i], &n))
            return -1;
    return n;
}

engine_graph_t *graph_create(int64_t opset)
{
    engine_graph_t *g = calloc(1, sizeof *g);
    if (g)
        g->opset = opset;
    return g;
}

void engine_graph_destroy(engine_graph_t *g)
{
    if (!g)
        return;
    for (int32_t i = 0; i < g->n_tensors; i++) {
        free(g->tensors[i].name);
        free(g->tensors[i].data);
        for (int32_t d = 0; d < ENGINE_MAX_RANK; d++)
            free(g->tensors[i].dim_param[d]);
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].in);
        free(g->nodes[i].out);
    }
    free(g->tensors);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->input_desc);
    free(g->output_desc);
    free(g->index);
    free(g);
}

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int32_t graph_find(const engine_graph_t *g, const char *name)
{
    if (!g->index_cap)
        return -1;
    for (uint32_t h = hash_name(name) & (g->index_cap - 1);; h = (h + 1) & (g->index_cap - 1)) {
        const int32_t v = g->index[h];
        if (v == 0)
            return -1;
        if (strcmp(g->tensors[v - 1].name, name) == 0)
            return v - 1;
    }
}

static void index_put(engine_graph_t *g, int32_t id)
{
    uint32_t h = hash_name(g->tensors[id].name) & (g->index_cap - 1);
    while (g->index[h] != 0)
        h = (h + 1) & (g->index_cap - 1);
    g->index[h] = id + 1;
}

hlt_status graph_add_tensor(engine_graph_t *g, const char *name, int32_t *id, char *err,
                            size_t errlen)
{
    if (graph_find(g, name) >= 0)
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                           "tensor '%s' is defined more than once", name);
    if (g->n_tensors == g->cap_tensors) {
        const int32_t cap = g->cap_tensors ? 2 * g->cap_tensors : 64;
        graph_tensor_t *t = realloc(g->tensors, sizeof *t * (size_t)cap);
        if (!t)
            goto oom;
        g->tensors = t;
        g->cap_tensors = cap;
    }
    if ((uint32_t)(g->n_tensors + 1) * 2 > g->index_cap) {
        const uint32_t cap = g->index_cap ? 2 * g->index_cap : 128;
        int32_t *idx = calloc(cap, sizeof *idx);
        if (!idx)
            goto oom;
        free(g->index);
        g->index = idx;
        g->index_cap = cap;
        for (int32_t i = 0; i < g->n_tensors; i++)
            index_put(g, i);
    }
    char *copy = strdup(name);
    if (!copy)
        goto oom;
    graph_tensor_t *t = &g->tensors[g->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->rank = -1;
    t->producer = -1;
    t->input_idx = -1;
    *id = g->n_tensors++;
    index_put(g, *id);
    return HLT_OK;
oom:
    return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory adding tensor '%s'",
                       name);
}

hlt_status graph_add_node(engine_graph_t *g, const char *name, op_kind op, int32_t n_in,
                          int32_t n_out, int32_t *idx, char *err, size_t errlen)
{
    if (g->n_nodes == g->cap_nodes) {
        const int32_t cap = g->cap_nodes ? 2 * g->cap_nodes : 32;
        graph_node_t *nn = realloc(g->nodes, sizeof *nn * (size_t)cap);
        if (!nn)
            goto oom;
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    graph_node_t *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    char anon[24];
    if (!name || !*name) {
        snprintf(anon, sizeof anon, "#%d", (int)g->n_nodes);
        name = anon;
    }
    n->name = strdup(name);
    n->in = malloc(sizeof(int32_t) * (size_t)(n_in > 0 ? n_in : 1));
    n->out = malloc(sizeof(int32_t) * (size_t)(n_out > 0 ? n_out : 1));
    if (!n->name || !n->in || !n->out) {
        free(n->name);
        free(n->in);
        free(n->out);
        goto oom;
    }
    for (int32_t i = 0; i < n_in; i++)
        n->in[i] = -1;
    for (int32_t i = 0; i < n_out; i++)
        n->out[i] = -1;
    n->op = op;
    n->n_in = n_in;
    n->n_out = n_out;
    *idx = g->n_nodes++;
    return HLT_OK;
oom:
    return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory adding a node");
}

/* Marks nodes that no graph output depends on as dead. */
static hlt_status prune(engine_graph_t *g, char *err, size_t errlen)
{
    int32_t *stack = malloc(sizeof(int32_t) * (size_t)(g->n_tensors + 1));
    bool *seen = calloc((size_t)g->n_tensors + 1, 1);
    bool *live = calloc((size_t)g->n_nodes + 1, 1);
    hlt_status st = HLT_OK;
    if (!stack || !seen || !live) {
        st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto done;
    }
    int32_t sp = 0;
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (!seen[g->outputs[i]]) {
            seen[g->outputs[i]] = true;
            stack[sp++] = g->outputs[i];
        }
    while (sp > 0) {
        const int32_t p = g->tensors[stack[--sp]].producer;
        if (p < 0 || live[p] || g->nodes[p].dead)
            continue;
        live[p] = true;
        for (int32_t i = 0; i < g->nodes[p].n_in; i++) {
            const int32_t t = g->nodes[p].in[i];
            if (t >= 0 && !seen[t]) {
                seen[t] = true;
                stack[sp++] = t;
            }
        }
    }
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!live[i])
            g->nodes[i].dead = true;
done:
    free(stack);
    free(seen);
    free(live);
    return st;
}

/* Drops dead nodes and reorders the rest as order[] says (indices into the old array).
 * On allocation failure the graph is unchanged. */
static hlt_status compact(engine_graph_t *g, const int32_t *order, int32_t n_order, char *err,
                          size_t errlen)
{
    graph_node_t *sorted = malloc(sizeof *sorted * (size_t)(g->cap_nodes ? g->cap_nodes : 1));
    if (!sorted)
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    for (int32_t i = 0; i < n_order; i++)
        sorted[i] = g->nodes[order[i]];
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].dead) {
            free(g->nodes[i].name);
            free(g->nodes[i].in);
            free(g->nodes[i].out);
        }
    free(g->nodes);
    g->nodes = sorted;
    g->n_nodes = n_order;
    for (int32_t t = 0; t < g->n_tensors; t++)
        g->tensors[t].producer = -1;
    for (int32_t i = 0; i < n_order; i++)
        for (int32_t o = 0; o < g->nodes[i].n_out; o++)
            if (g->nodes[i].out[o] >= 0 && !g->tensors[g->nodes[i].out[o]].is_const)
                g->tensors[g->nodes[i].out[o]].producer = i;
    return HLT_OK;
}

/* A live node consuming, or a graph output naming, a tensor we cannot provide. */
static hlt_status check_unsupported(const engine_graph_t *g, char *err, size_t errlen)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const graph_node_t *n = &g->nodes[i];
        for (int32_t j = 0; !n->dead && j < n->n_in; j++) {
            const graph_tensor_t *t = n->in[j] >= 0 ? &g->tensors[n->in[j]] : NULL;
            if (t && t->unsupported)
                return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                                   "node '%s' (%s): input %d '%s' is %s", n->name,
                                   op_def(n->op)->name, (int)j, t->name,
                                   t->is_const ? "a constant of an unsupported data type"
                                               : "an optional output this engine does not "
                                                 "compute");
        }
    }
    for (int32_t i = 0; i < g->n_outputs; i++) {
        const graph_tensor_t *t = &g->tensors[g->outputs[i]];
        if (t->unsupported)
            return engine_errf(HLT_UNIMPLEMENTED, err, errlen, "graph output '%s' is %s", t->name,
                               t->is_const ? "a constant of an unsupported data type"
                                           : "an optional output this engine does not compute");
    }
    return HLT_OK;
}

/* Live nodes in a dependency-respecting order into order[]; *n_order their count. */
static hlt_status toposort(engine_graph_t *g, int32_t *order, int32_t *n_order, char *err,
                           size_t errlen)
{
    bool *ready = calloc((size_t)g->n_tensors + 1, 1);
    bool *placed = calloc((size_t)g->n_nodes + 1, 1);
    hlt_status st = HLT_OK;
    if (!ready || !placed) {
        st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto done;
    }
    int32_t live = 0, k = 0;
    for (int32_t t = 0; t < g->n_tensors; t++)
        ready[t] = g->tensors[t].producer < 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        live += !g->nodes[i].dead;
    for (bool progress = true; progress && k < live;) {
        progress = false;
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const graph_node_t *n = &g->nodes[i];
            if (n->dead || placed[i])
                continue;
            bool ok = true;
            for (int32_t j = 0; ok && j < n->n_in; j++)
                ok = n->in[j] < 0 || ready[n->in[j]];
            if (!ok)
                continue;
            placed[i] = true;
            order[k++] = i;
            progress = true;
            for (int32_t j = 0; j < n->n_out; j++)
                if (n->out[j] >= 0)
                    ready[n->out[j]] = true;
        }
    }
    if (k < live) {
        for (int32_t i = 0; i < g->n_nodes; i++)
            if (!g->nodes[i].dead && !placed[i]) {
                st = engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                                 "node '%s' (%s) is part of a cycle", g->nodes[i].name,
                                 op_def(g->nodes[i].op)->name);
                break;
            }
    }
    *n_order = k;
done:
    free(ready);
    free(placed);
    return st;
}

/* Evaluates node n (all inputs constant) and turns its output into a constant. */
static hlt_status fold_node(engine_graph_t *g, graph_node_t *n, engine_shape_t *shapes, void **data,
                            char *err, size_t errlen)
{
    for (int32_t i = 0; i < n->n_in; i++) {
        const int32_t t = n->in[i];
        if (t < 0)
            continue;
        shapes[t].rank = g->tensors[t].rank;
        memcpy(shapes[t].dims, g->tensors[t].dims, sizeof shapes[t].dims);
        data[t] = g->tensors[t].data;
    }
    size_t ws_bytes = 0;
    hlt_status st = shape_infer_node(g, n, shapes, &ws_bytes, err, errlen);
    if (st != HLT_OK)
        return st;
    graph_tensor_t *out = &g->tensors[n->out[0]];
    const engine_shape_t *ys = &shapes[n->out[0]];
    const size_t bytes = (size_t)shape_numel(ys) * hlt_dtype_size(out->dtype);
    void *y = malloc(bytes ? bytes : 1);
    void *ws = ws_bytes ? aligned_alloc(64, (ws_bytes + 63) & ~(size_t)63) : NULL;
    if (!y || (ws_bytes && !ws)) {
        free(y);
        free(ws);
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory folding node '%s'",
                           n->name);
    }
    data[n->out[0]] = y;
    const op_run_t r = {.g = g, .n = n, .shapes = shapes, .data = data, .ws = ws};
    op_def(n->op)->run(&r);
    free(ws);
    free(out->data);
    out->data = y;
    out->is_const = true;
    out->rank = ys->rank;
    memcpy(out->dims, ys->dims, sizeof out->dims);
    for (int32_t d = 0; d < ENGINE_MAX_RANK; d++) {
        free(out->dim_param[d]);
        out->dim_param[d] = NULL;
    }
    out->producer = -1;
    n->dead = true;
    return HLT_OK;
}

static hlt_status fold_constants(engine_graph_t *g, char *err, size_t errlen)
{
    engine_shape_t *shapes = calloc((size_t)g->n_tensors + 1, sizeof *shapes);
    void **data = calloc((size_t)g->n_tensors + 1, sizeof *data);
    hlt_status st = HLT_OK;
    if (!shapes || !data) {
        st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < g->n_nodes && st == HLT_OK; i++) {
        graph_node_t *n = &g->nodes[i];
        bool all_const = true;
        for (int32_t j = 0; all_const && j < n->n_in; j++)
            all_const = n->in[j] < 0 || g->tensors[n->in[j]].is_const;
        if (all_const)
            st = fold_node(g, n, shapes, data, err, errlen);
    }
done:
    free(shapes);
    free(data);
    return st;
}

static hlt_status build_desc(engine_graph_t *g, char *err, size_t errlen)
{
    g->input_desc = calloc((size_t)g->n_inputs + 1, sizeof *g->input_desc);
    g->output_desc = calloc((size_t)g->n_outputs + 1, sizeof *g->output_desc);
    if (!g->input_desc || !g->output_desc)
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    for (int32_t k = 0; k < g->n_inputs + g->n_outputs; k++) {
        const bool is_in = k < g->n_inputs;
        const graph_tensor_t *t = &g->tensors[is_in ? g->inputs[k] : g->outputs[k - g->n_inputs]];
        engine_tensor_desc_t *d = is_in ? &g->input_desc[k] : &g->output_desc[k - g->n_inputs];
        d->name = t->name;
        d->dtype = t->dtype;
        d->rank = t->rank;
        for (int32_t i = 0; i < ENGINE_MAX_RANK; i++) {
            d->dims[i] = i < t->rank ? t->dims[i] : -1;
            d->dim_params[i] = i < t->rank ? t->dim_param[i] : NULL;
        }
    }
    return HLT_OK;
}

hlt_status graph_finalize(engine_graph_t *g, char *err, size_t errlen)
{
    int32_t *order = malloc(sizeof(int32_t) * (size_t)(g->n_nodes + 1));
    int32_t n_order = 0;
    hlt_status st = HLT_OK;
    if (!order) {
        st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto done;
    }
    if ((st = prune(g, err, errlen)) != HLT_OK)
        goto done;
    if ((st = check_unsupported(g, err, errlen)) != HLT_OK)
        goto done;
    if ((st = toposort(g, order, &n_order, err, errlen)) != HLT_OK)
        goto done;
    if ((st = compact(g, order, n_order, err, errlen)) != HLT_OK)
        goto done;
    for (int32_t i = 0; i < g->n_nodes && st == HLT_OK; i++)
        st = op_check_types(g, &g->nodes[i], err, errlen);
    if (st != HLT_OK)
        goto done;
    if ((st = fold_constants(g, err, errlen)) != HLT_OK)
        goto done;
    if ((st = graph_fold_batchnorm(g, err, errlen)) != HLT_OK)
        goto done;
    if ((st = prune(g, err, errlen)) != HLT_OK)
        goto done;
    n_order = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead)
            order[n_order++] = i;
    if ((st = compact(g, order, n_order, err, errlen)) != HLT_OK)
        goto done;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const graph_node_t *n = &g->nodes[i];
        const op_def_t *d = op_def(n->op);
        for (int32_t j = 0; j < n->n_in; j++)
            if ((d->const_in >> j & 1u) && n->in[j] >= 0 && !g->tensors[n->in[j]].is_const) {
                st = engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                                 "node '%s' (%s): input %d '%s' is computed at run time; only "
                                 "constant values are supported there",
                                 n->name, d->name, (int)j, g->tensors[n->in[j]].name);
                goto done;
            }
    }
    st = build_desc(g, err, errlen);
done:
    free(order);
    return st;
}

size_t engine_graph_num_inputs(const engine_graph_t *g)
{
    return (size_t)g->n_inputs;
}

const engine_tensor_desc_t *engine_graph_input(const engine_graph_t *g, size_t i)
{
    return i < (size_t)g->n_inputs ? &g->input_desc[i] : NULL;
}

size_t engine_graph_num_outputs(const engine_graph_t *g)
{
    return (size_t)g->n_outputs;
}

const engine_tensor_desc_t *engine_graph_output(const engine_graph_t *g, size_t i)
{
    return i < (size_t)g->n_outputs ? &g->output_desc[i] : NULL;
}
