/* cuda_plan: prepare for the CUDA backend (see cuda_internal.h).
 *
 * Shapes come from the engine's own rules (shape_infer_node), for the whole batch and then for
 * each chunk size, so the GPU can never disagree with the CPU on a shape.
 *
 * Splitting a batch into chunks is only correct when every output row depends on the same row
 * of the inputs and nothing else. `splittable` proves that conservatively from the ops: dim 0 of
 * the inputs must flow to dim 0 of every tensor computed from them through row-wise ops
 * (elementwise with constants that do not vary along dim 0, Gemm/MatMul with a constant right
 * operand, Softmax/Concat/Transpose that leave axis 0 alone, views that keep dim 0); anything
 * else runs the batch as one chunk. The chunk plans are then checked against the whole-batch
 * shapes (a Reshape to a literal batch size fails there and also falls back to one chunk).
 *
 * Buffers: one bump-allocated arena per slot (each computed tensor, and the coefficient table of
 * a BatchNormalization whose parameters are not constants, gets its own 256-byte aligned range; no
 * reuse between tensors whose lives do not overlap: trigger models are a few MB at the largest
 * batch), grown only at prepare. Pinned staging likewise. Graph captures point into the arena and
 * are dropped when it moves. */
#include "cuda_internal.h"

#include "ops.h"
#include "shape.h"

#include <stdlib.h>
#include <string.h>

static size_t align_up(size_t n)
{
    return (n + CUDA_ALIGN - 1) & ~(size_t)(CUDA_ALIGN - 1);
}

static size_t shape_bytes(const backend_instance_t *inst, const engine_shape_t *s, int32_t t)
{
    return (size_t)shape_numel(s) * hlt_dtype_size(inst->g->tensors[t].dtype);
}

void cuda_plan_drop_graphs(cuda_plan_t *p)
{
    for (int s = 0; s < CUDA_MAX_SLOTS; s++)
        if (p->graph[s]) {
            cudaGraphExecDestroy(p->graph[s]);
            p->graph[s] = NULL;
        }
}

void cuda_plan_free(cuda_plan_t *p)
{
    cuda_plan_drop_graphs(p);
    free(p->key);
    free(p->shapes);
    free(p->off);
    free(p->ws_off);
}

static bool same_shapes(const engine_shape_t *a, const engine_shape_t *b, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        if (a[i].rank != b[i].rank)
            return false;
        for (int32_t k = 0; k < a[i].rank; k++)
            if (a[i].dims[k] != b[i].dims[k])
                return false;
    }
    return true;
}

/* Shapes of every node output into s (inputs and constants already there). */
static hlt_status infer(const backend_instance_t *inst, engine_shape_t *s, size_t *ws, char *err,
                        size_t errlen)
{
    for (int32_t i = 0; i < inst->nn; i++) {
        size_t w;
        hlt_status st = shape_infer_node(inst->g, &inst->g->nodes[i], s, &w, err, errlen);
        if (st != HLT_OK)
            return st;
        if (ws)
            ws[i] = w;
    }
    return HLT_OK;
}

static int64_t norm_axis(int64_t axis, int32_t rank)
{
    return axis < 0 ? axis + rank : axis;
}

/* Does y = n(x...) keep the rows of dim 0 independent? b[t]: 1 row-wise in the batch, 0
 * constant (reads no input), -1 depends on the inputs in another way. */
static int8_t row_wise(const backend_instance_t *inst, const graph_node_t *n)
{
    const engine_shape_t *s = inst->full;
    const int8_t *b = inst->batched;
    bool dep = false;
    for (int32_t j = 0; j < n->n_in; j++)
        if (n->in[j] >= 0 && b[n->in[j]] != 0)
            dep = true;
    if (!dep)
        return 0;
    const int32_t x = n->in[0], y = n->out[0];
    const bool bx = b[x] == 1;
    /* A constant operand must not vary along the output's dim 0. */
#define FLAT0(t) (b[t] == 0 && (s[t].rank < s[y].rank || s[t].dims[0] == 1))
    switch (n->op) {
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_IDENTITY:
        return bx ? 1 : -1;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
        for (int32_t j = 0; j < 2; j++) {
            const int32_t t = n->in[j];
            if (!(b[t] == 1 && s[t].rank == s[y].rank) && !FLAT0(t))
                return -1;
        }
        return 1;
    case OP_GEMM: {
        const bool c_ok = n->n_in < 3 || n->in[2] < 0 ||
                          (b[n->in[2]] == 0 && (s[n->in[2]].rank < 2 || s[n->in[2]].dims[0] == 1));
        return bx && !n->attrs.trans_a && b[n->in[1]] == 0 && c_ok ? 1 : -1;
    }
    case OP_MATMUL: {
        const engine_shape_t *bs = &s[n->in[1]];
        const int32_t ra = s[x].rank;
        const bool b_ok = bs->rank <= 2 || bs->rank < ra || (bs->rank == ra && bs->dims[0] == 1);
        return bx && ra >= 2 && b[n->in[1]] == 0 && b_ok ? 1 : -1;
    }
    case OP_SOFTMAX:
        return bx && norm_axis(n->attrs.axis, s[x].rank) >= 1 ? 1 : -1;
    case OP_BATCHNORM:
        for (int32_t j = 1; j < 5; j++)
            if (b[n->in[j]] != 0)
                return -1;
        return bx ? 1 : -1;
    case OP_FLATTEN:
        return bx && norm_axis(n->attrs.axis, s[x].rank) == 1 ? 1 : -1;
    case OP_RESHAPE:
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
        return bx && s[y].rank >= 1 && s[y].dims[0] == s[x].dims[0] ? 1 : -1;
    case OP_TRANSPOSE: {
        const int64_t p0 = n->attrs.has_ints ? n->attrs.ints[0] : s[x].rank - 1;
        return bx && p0 == 0 ? 1 : -1;
    }
    case OP_CONCAT:
        for (int32_t j = 0; j < n->n_in; j++)
            if (b[n->in[j]] != 1)
                return -1;
        return norm_axis(n->attrs.axis, s[y].rank) >= 1 ? 1 : -1;
    case OP_KIND_COUNT:
        break;
    }
#undef FLAT0
    return -1;
}

/* True when the batch of `rows` rows may run as independent chunks of rows. */
static bool splittable(backend_instance_t *inst, int64_t rows)
{
    const engine_graph_t *g = inst->g;
    if (inst->n_in == 0 || rows < 2)
        return false;
    memset(inst->batched, 0, (size_t)inst->nt);
    for (int32_t i = 0; i < inst->n_in; i++) {
        const engine_shape_t *s = &inst->full[g->inputs[i]];
        if (s->rank < 1 || s->dims[0] != rows)
            return false;
        inst->batched[g->inputs[i]] = 1;
    }
    for (int32_t i = 0; i < inst->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        const int8_t r = row_wise(inst, n);
        if (r < 0)
            return false;
        inst->batched[n->out[0]] = r;
    }
    for (int32_t i = 0; i < inst->n_out; i++) {
        const int32_t t = g->outputs[i];
        if (inst->batched[t] != 1 || inst->full[t].dims[0] != rows)
            return false;
    }
    return true;
}

/* Rows per chunk for a batch of `rows`, or 0 to run it as one chunk. */
static int64_t choose_chunk(backend_instance_t *inst, int64_t rows)
{
    const engine_graph_t *g = inst->g;
    if ((inst->nslots < 2 && inst->force_chunks == 0) || !splittable(inst, rows))
        return 0;
    size_t per_row = 0;
    for (int32_t i = 0; i < inst->n_in; i++) {
        const int32_t t = g->inputs[i];
        inst->in_row[i] = shape_bytes(inst, &inst->full[t], t) / (size_t)rows;
        per_row += inst->in_row[i];
    }
    for (int32_t i = 0; i < inst->n_out; i++) {
        const int32_t t = g->outputs[i];
        inst->out_row[i] = shape_bytes(inst, &inst->full[t], t) / (size_t)rows;
        per_row += inst->out_row[i];
    }
    int64_t k = inst->force_chunks;
    if (k == 0) {
        k = (int64_t)(per_row * (size_t)rows / inst->chunk_bytes);
        if (k > inst->max_chunks)
            k = inst->max_chunks;
    }
    if (k < 2)
        return 0;
    if (k > rows)
        k = rows;
    int64_t c = (rows + k - 1) / k;
    if (c > 32)
        c = (c + 31) / 32 * 32; /* whole warps of rows for the row-wise kernels */
    return c < rows ? c : 0;
}

/* Shapes and offsets of p for the inputs `in` with dim 0 set to rows (rows < 0: as given).
 * A chunk plan whose shapes do not follow the whole batch's (see the header) leaves *ok
 * false. A plan already built for the same shapes is kept, with its graphs. */
static hlt_status plan_build(backend_instance_t *inst, cuda_plan_t *p, const engine_shape_t *in,
                             int64_t rows, bool *ok, char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    *ok = true;
    engine_shape_t key[inst->n_in + 1];
    for (int32_t i = 0; i < inst->n_in; i++) {
        key[i] = in[i];
        if (rows >= 0)
            key[i].dims[0] = rows;
    }
    if (p->valid && same_shapes(key, p->key, inst->n_in))
        return HLT_OK;
    cuda_plan_drop_graphs(p);
    p->valid = false;
    p->runs = 0;
    p->graph_failed = false;
    memcpy(p->shapes, inst->full, sizeof *p->shapes * (size_t)inst->nt);
    for (int32_t i = 0; i < inst->n_in; i++)
        p->shapes[g->inputs[i]] = key[i];
    size_t ws[inst->nn + 1];
    char e2[8];
    hlt_status st =
        infer(inst, p->shapes, ws, rows >= 0 ? e2 : err, rows >= 0 ? sizeof e2 : errlen);
    if (st != HLT_OK) {
        *ok = false;
        return rows >= 0 ? HLT_OK : st;
    }
    size_t cur = 0;
    for (int32_t t = 0; t < inst->nt; t++)
        p->off[t] = CUDA_NO_SLOT;
    for (int32_t i = 0; i <= inst->nn; i++) {
        const int32_t *ids = i < inst->nn ? g->nodes[i].out : g->inputs;
        const int32_t n = i < inst->nn ? (op_def(g->nodes[i].op)->view ? 0 : 1) : inst->n_in;
        for (int32_t j = 0; j < n; j++) {
            const int32_t t = ids[j];
            if (p->off[t] != CUDA_NO_SLOT || inst->woff[t] != CUDA_NO_SLOT)
                continue;
            p->off[t] = cur;
            cur += align_up(shape_bytes(inst, &p->shapes[t], t));
        }
        if (i < inst->nn) {
            p->ws_off[i] = CUDA_NO_SLOT;
            if (g->nodes[i].op == OP_BATCHNORM && inst->bnoff[i] == CUDA_NO_SLOT) {
                p->ws_off[i] = cur;
                cur += align_up(ws[i]);
            }
        }
    }
    p->arena_bytes = cur ? cur : CUDA_ALIGN;
    if (rows >= 0) { /* every computed tensor must be the whole batch's with dim 0 = rows */
        for (int32_t i = 0; i < inst->nn && *ok; i++) {
            const int32_t t = g->nodes[i].out[0];
            const engine_shape_t *a = &p->shapes[t], *f = &inst->full[t];
            *ok = a->rank == f->rank && a->rank >= 1 && a->dims[0] == rows;
            for (int32_t k = 1; k < a->rank && *ok; k++)
                *ok = a->dims[k] == f->dims[k];
        }
        if (!*ok)
            return HLT_OK;
    }
    p->in_bytes = p->out_bytes = 0;
    for (int32_t i = 0; i < inst->n_in; i++)
        p->in_bytes += align_up(shape_bytes(inst, &p->shapes[g->inputs[i]], g->inputs[i]));
    for (int32_t i = 0; i < inst->n_out; i++)
        p->out_bytes += align_up(shape_bytes(inst, &p->shapes[g->outputs[i]], g->outputs[i]));
    p->rows = rows;
    memcpy(p->key, key, sizeof *key * (size_t)inst->n_in);
    p->valid = true;
    return HLT_OK;
}

/* Grows a device (pinned == false) or pinned host buffer to at least need bytes. */
static hlt_status grow(uint8_t **buf, size_t *cap, size_t need, bool pinned, bool *moved, char *err,
                       size_t errlen)
{
    if (need <= *cap)
        return HLT_OK;
    need += need / 4; /* a slightly larger batch next time should not reallocate */
    if (pinned)
        cudaFreeHost(*buf);
    else
        cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    const cudaError_t e = pinned ? cudaHostAlloc((void **)buf, need, cudaHostAllocPortable)
                                 : cudaMalloc((void **)buf, need);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *buf = NULL;
        return cuda_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "cannot allocate %zu bytes of %s: %s",
                         need, pinned ? "pinned host memory" : "device memory",
                         cudaGetErrorString(e));
    }
    *cap = need;
    *moved = true;
    return HLT_OK;
}

static hlt_status grow_buffers(backend_instance_t *inst, char *err, size_t errlen)
{
    const cuda_plan_t *m = &inst->main,
                      *t = inst->chunk_rows && inst->tail.valid ? &inst->tail : NULL;
    const size_t arena = t && t->arena_bytes > m->arena_bytes ? t->arena_bytes : m->arena_bytes;
    const size_t sin = t && t->in_bytes > m->in_bytes ? t->in_bytes : m->in_bytes;
    const size_t sout = t && t->out_bytes > m->out_bytes ? t->out_bytes : m->out_bytes;
    hlt_status st = HLT_OK;
    for (int i = 0; i < inst->nslots && st == HLT_OK; i++) {
        cuda_slot_t *s = &inst->slot[i];
        bool moved = false, unused = false;
        st = grow(&s->arena, &s->arena_cap, arena, false, &moved, err, errlen);
        if (st == HLT_OK)
            st = grow(&s->stage_in, &s->stage_in_cap, sin, true, &unused, err, errlen);
        if (st == HLT_OK)
            st = grow(&s->stage_out, &s->stage_out_cap, sout, true, &unused, err, errlen);
        if (moved || st != HLT_OK) {
            cuda_plan_drop_graphs(&inst->main);
            cuda_plan_drop_graphs(&inst->tail);
        }
    }
    return st;
}

hlt_status cuda_prepare(backend_instance_t *inst, const engine_shape_t *in, engine_shape_t *out,
                        char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    hlt_status st = engine_check_inputs(inst->g, in, err, errlen);
    if (st != HLT_OK)
        return st;
    if (inst->prepared && same_shapes(in, inst->last_in, inst->n_in))
        goto done;
    inst->prepared = false;
    cudaError_t e = cudaSetDevice(inst->device);
    if (e != cudaSuccess)
        return cuda_errf(HLT_UNAVAILABLE, err, errlen, "CUDA device %d: %s", inst->device,
                         cudaGetErrorString(e));
    for (int32_t i = 0; i < inst->n_in; i++)
        inst->full[g->inputs[i]] = in[i];
    if ((st = infer(inst, inst->full, NULL, err, errlen)) != HLT_OK)
        return st;
    const int64_t rows = inst->n_in && in[0].rank >= 1 ? in[0].dims[0] : -1;
    int64_t c = choose_chunk(inst, rows);
    bool ok = true;
    if (c) {
        st = plan_build(inst, &inst->main, in, c, &ok, err, errlen);
        if (st == HLT_OK && ok && rows % c)
            st = plan_build(inst, &inst->tail, in, rows % c, &ok, err, errlen);
        if (st != HLT_OK || !ok)
            c = 0;
    }
    if (!c && (st = plan_build(inst, &inst->main, in, -1, &ok, err, errlen)) != HLT_OK)
        return st;
    inst->chunk_rows = c;
    inst->batch = rows;
    if ((st = grow_buffers(inst, err, errlen)) != HLT_OK)
        return st;
    memcpy(inst->last_in, in, sizeof *in * (size_t)inst->n_in);
    for (int32_t i = 0; i < inst->n_out; i++)
        inst->last_out[i] = inst->full[g->outputs[i]];
    inst->prepared = true;
done:
    if (inst->n_out)
        memcpy(out, inst->last_out, sizeof *out * (size_t)inst->n_out);
    return HLT_OK;
}
