/* cuda_run: one chunk of the graph as launches on a slot's stream (see cuda_internal.h).
 *
 * Gemm and MatMul go to cuBLAS. Our tensors are row-major and cuBLAS is column-major, so
 * Y = op(A) op(B) is computed as the column-major product Y^T = op(B)^T op(A)^T: the operands
 * swap places, every matrix is passed with its row-major leading dimension, and no data is
 * transposed. Gemm's C is first broadcast into Y (a gather kernel) and cuBLAS adds beta * Y.
 * MatMul with a batch-free B is one GEMM over all of A's rows; batched MatMul is one
 * strided-batched call per index of the leading batch dims (stride 0 broadcasts).
 * Concat is one 2-D device copy per input; views launch nothing.
 *
 * Launch overhead dominates trigger-sized models (a few microseconds per kernel against
 * sub-microsecond kernels), so once a plan has run, its launches are captured into a CUDA graph
 * per slot and replayed: one launch per chunk. A failed capture falls back to direct launches
 * for that plan. With HLT_CUDA_CHAINS=1 a chain of small dense layers (engine/fuse.h) is one
 * kernel (cudak_chain_f32) instead of a cuBLAS call and epilogue kernels per layer. */
#include "cuda_internal.h"

#include "cuda_kernels.h"
#include "ops.h"
#include "shape.h"

#include <limits.h>
#include <string.h>

typedef struct run {
    backend_instance_t *inst;
    const cuda_plan_t *p;
    int s;
    cudaStream_t stream;
    const graph_node_t *n;
    char *err;
    size_t errlen;
} run_t;

static hlt_status cuda_fail(const run_t *r, cudaError_t e)
{
    return cuda_errf(HLT_INTERNAL, r->err, r->errlen, "node '%s' (%s): %s", r->n->name,
                     op_def(r->n->op)->name, cudaGetErrorString(e));
}

static hlt_status blas_fail(const run_t *r, cublasStatus_t b)
{
    return cuda_errf(HLT_INTERNAL, r->err, r->errlen, "node '%s' (%s): cuBLAS: %s", r->n->name,
                     op_def(r->n->op)->name, r->inst->blas->status_name(b));
}

static const engine_shape_t *shp(const run_t *r, int32_t t)
{
    return &r->p->shapes[t];
}

static void *ptr(const run_t *r, int32_t t)
{
    return cuda_dptr(r->inst, r->p, r->s, t);
}

/* Broadcast iteration of y = a op b: size-1 dims dropped, contiguous neighbours merged (as
 * kernels/cpu/cpu_binary.c does), so the common cases are rank 1 or 2. */
static void make_iter(const engine_shape_t *a, const engine_shape_t *b, const engine_shape_t *y,
                      cudak_iter_t *it)
{
    int64_t sta[ENGINE_MAX_RANK], stb[ENGINE_MAX_RANK], acc = 1;
    for (int32_t i = a->rank - 1; i >= 0; acc *= a->dims[i--])
        sta[i] = acc;
    acc = 1;
    for (int32_t i = b->rank - 1; i >= 0; acc *= b->dims[i--])
        stb[i] = acc;
    int32_t n = 0;
    int64_t dims[ENGINE_MAX_RANK], sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    for (int32_t i = y->rank - 1; i >= 0; i--) {
        if (y->dims[i] == 1)
            continue;
        const int32_t ia = i - (y->rank - a->rank), ib = i - (y->rank - b->rank);
        const int64_t as = ia >= 0 && a->dims[ia] != 1 ? sta[ia] : 0;
        const int64_t bs = ib >= 0 && b->dims[ib] != 1 ? stb[ib] : 0;
        if (n > 0 && as == sa[n - 1] * dims[n - 1] && bs == sb[n - 1] * dims[n - 1]) {
            dims[n - 1] *= y->dims[i];
            continue;
        }
        dims[n] = y->dims[i];
        sa[n] = as;
        sb[n] = bs;
        n++;
    }
    memset(it, 0, sizeof *it);
    it->rank = n;
    for (int32_t i = 0; i < n; i++) {
        it->dims[i] = dims[n - 1 - i];
        it->sa[i] = sa[n - 1 - i];
        it->sb[i] = sb[n - 1 - i];
    }
}

static int ld(int64_t v)
{
    return v < 1 ? 1 : (int)v;
}

static bool too_big(int64_t a, int64_t b, int64_t c)
{
    return a > INT_MAX || b > INT_MAX || c > INT_MAX;
}

static hlt_status run_gemm(const run_t *r)
{
    const graph_node_t *n = r->n;
    const op_attrs_t *at = &n->attrs;
    const engine_shape_t *as = shp(r, n->in[0]), *bs = shp(r, n->in[1]), *ys = shp(r, n->out[0]);
    const int64_t m = ys->dims[0], nn = ys->dims[1], k = at->trans_a ? as->dims[0] : as->dims[1];
    if (m == 0 || nn == 0)
        return HLT_OK;
    if (too_big(m, nn, k))
        return cuda_errf(HLT_UNIMPLEMENTED, r->err, r->errlen,
                         "node '%s' (Gemm): dimensions beyond cuBLAS's int range", n->name);
    float *y = ptr(r, n->out[0]);
    float beta = 0.0f;
    if (n->n_in > 2 && n->in[2] >= 0 && at->beta != 0.0f) {
        const engine_shape_t *cs = shp(r, n->in[2]);
        const int64_t c0 = cs->rank == 2 ? cs->dims[0] : 1;
        const int64_t c1 = cs->rank >= 1 ? cs->dims[cs->rank - 1] : 1;
        cudak_iter_t it = {.rank = 2, .dims = {m, nn}};
        it.sa[0] = c0 == 1 ? 0 : c1;
        it.sa[1] = c1 == 1 ? 0 : 1;
        const cudaError_t e = cudak_gather(sizeof(float), ptr(r, n->in[2]), y, &it, r->stream);
        if (e != cudaSuccess)
            return cuda_fail(r, e);
        beta = at->beta;
    }
    const float alpha = at->alpha;
    const cublasStatus_t b = r->inst->blas->sgemm(
        r->inst->slot[r->s].blas, at->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
        at->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)nn, (int)m, (int)k, &alpha, ptr(r, n->in[1]),
        ld(bs->dims[1]), ptr(r, n->in[0]), ld(as->dims[1]), &beta, y, (int)nn);
    return b == CUBLAS_STATUS_SUCCESS ? HLT_OK : blas_fail(r, b);
}

static hlt_status run_matmul(const run_t *r)
{
    const graph_node_t *n = r->n;
    const engine_shape_t *as = shp(r, n->in[0]), *bs = shp(r, n->in[1]), *ys = shp(r, n->out[0]);
    const float *a = ptr(r, n->in[0]), *b = ptr(r, n->in[1]);
    float *y = ptr(r, n->out[0]);
    const bool a1 = as->rank == 1, b1 = bs->rank == 1;
    const int64_t m = a1 ? 1 : as->dims[as->rank - 2];
    const int64_t k = as->dims[as->rank - 1];
    const int64_t nn = b1 ? 1 : bs->dims[bs->rank - 1];
    const int32_t yb = ys->rank - (a1 ? 0 : 1) - (b1 ? 0 : 1);
    const int32_t ab = as->rank > 2 ? as->rank - 2 : 0, bb = bs->rank > 2 ? bs->rank - 2 : 0;
    const float one = 1.0f, zero = 0.0f;
    cublasHandle_t h = r->inst->slot[r->s].blas;
    int64_t b_batch = 1, rows = m;
    for (int32_t i = 0; i < bb; i++)
        b_batch *= bs->dims[i];
    for (int32_t i = 0; i < ab; i++)
        rows *= as->dims[i];
    if (shape_numel(ys) == 0)
        return HLT_OK;
    if (b_batch == 1) {
        if (too_big(rows, nn, k))
            goto big;
        const cublasStatus_t st =
            r->inst->blas->sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)nn, (int)rows, (int)k, &one, b,
                                 ld(nn), a, ld(k), &zero, y, ld(nn));
        return st == CUBLAS_STATUS_SUCCESS ? HLT_OK : blas_fail(r, st);
    }
    /* Batch dims of Y, and A's and B's strides along them (0 where broadcast). */
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK], dims[ENGINE_MAX_RANK];
    int64_t acc_a = m * k, acc_b = k * nn;
    for (int32_t i = yb - 1; i >= 0; i--) {
        const int32_t ia = i - (yb - ab), ib = i - (yb - bb);
        const int64_t da = ia >= 0 ? as->dims[ia] : 1, db = ib >= 0 ? bs->dims[ib] : 1;
        dims[i] = ys->dims[i];
        sa[i] = da == 1 ? 0 : acc_a;
        sb[i] = db == 1 ? 0 : acc_b;
        acc_a *= da;
        acc_b *= db;
    }
    const int32_t last = yb - 1;
    if (too_big(m, nn, k) || dims[last] > INT_MAX)
        goto big;
    int64_t outer = 1, idx[ENGINE_MAX_RANK] = {0};
    for (int32_t i = 0; i < last; i++)
        outer *= dims[i];
    for (int64_t t = 0; t < outer; t++) {
        int64_t oa = 0, ob = 0;
        for (int32_t i = 0; i < last; i++) {
            oa += idx[i] * sa[i];
            ob += idx[i] * sb[i];
        }
        const cublasStatus_t st = r->inst->blas->sgemm_strided(
            h, CUBLAS_OP_N, CUBLAS_OP_N, (int)nn, (int)m, (int)k, &one, b + ob, ld(nn), sb[last],
            a + oa, ld(k), sa[last], &zero, y + t * dims[last] * m * nn, ld(nn), m * nn,
            (int)dims[last]);
        if (st != CUBLAS_STATUS_SUCCESS)
            return blas_fail(r, st);
        for (int32_t i = last - 1; i >= 0 && ++idx[i] == dims[i]; i--)
            idx[i] = 0;
    }
    return HLT_OK;
big:
    return cuda_errf(HLT_UNIMPLEMENTED, r->err, r->errlen,
                     "node '%s' (MatMul): dimensions beyond cuBLAS's int range", n->name);
}

static cudaError_t run_softmax(const run_t *r)
{
    const graph_node_t *n = r->n;
    const engine_shape_t *xs = shp(r, n->in[0]);
    const int64_t axis = n->attrs.axis < 0 ? n->attrs.axis + xs->rank : n->attrs.axis;
    int64_t outer = 1, len = 1, inner = 1;
    for (int32_t i = 0; i < xs->rank; i++) {
        if (i < axis)
            outer *= xs->dims[i];
        else if (i == axis || n->attrs.softmax_2d)
            len *= xs->dims[i]; /* opset < 13: everything from axis on is one row */
        else
            inner *= xs->dims[i];
    }
    return cudak_softmax_f32(ptr(r, n->in[0]), ptr(r, n->out[0]), outer, len, inner, r->stream);
}

static cudaError_t run_batchnorm(const run_t *r, int32_t node)
{
    const graph_node_t *n = r->n;
    const engine_shape_t *xs = shp(r, n->in[0]);
    int64_t inner = 1;
    for (int32_t i = 2; i < xs->rank; i++)
        inner *= xs->dims[i];
    if (r->inst->bnoff[node] != CUDA_NO_SLOT) { /* folded at instance_create */
        const float *a = (const float *)(r->inst->weights + r->inst->bnoff[node]);
        return cudak_channel_affine_f32(ptr(r, n->in[0]), ptr(r, n->out[0]), xs->dims[0],
                                        xs->dims[1], inner, a, a + xs->dims[1], r->stream);
    }
    float *ws = (float *)(r->inst->slot[r->s].arena + r->p->ws_off[node]);
    return cudak_batchnorm_f32(ptr(r, n->in[0]), ptr(r, n->out[0]), xs->dims[0], xs->dims[1], inner,
                               ptr(r, n->in[1]), ptr(r, n->in[2]), ptr(r, n->in[3]),
                               ptr(r, n->in[4]), n->attrs.epsilon, ws, r->stream);
}

static cudaError_t run_transpose(const run_t *r, size_t es)
{
    const graph_node_t *n = r->n;
    const engine_shape_t *xs = shp(r, n->in[0]), *ys = shp(r, n->out[0]);
    int64_t stride[ENGINE_MAX_RANK], acc = 1;
    for (int32_t i = xs->rank - 1; i >= 0; acc *= xs->dims[i--])
        stride[i] = acc;
    cudak_iter_t it = {.rank = ys->rank};
    for (int32_t d = 0; d < ys->rank; d++) {
        const int64_t p = n->attrs.has_ints ? n->attrs.ints[d] : xs->rank - 1 - d;
        it.dims[d] = ys->dims[d];
        it.sa[d] = stride[p];
    }
    return cudak_gather(es, ptr(r, n->in[0]), ptr(r, n->out[0]), &it, r->stream);
}

static cudaError_t run_concat(const run_t *r, size_t es)
{
    const graph_node_t *n = r->n;
    const engine_shape_t *ys = shp(r, n->out[0]);
    const int64_t axis = n->attrs.axis < 0 ? n->attrs.axis + ys->rank : n->attrs.axis;
    int64_t outer = 1, inner = 1;
    for (int32_t i = 0; i < ys->rank; i++) {
        if (i < axis)
            outer *= ys->dims[i];
        else if (i > axis)
            inner *= ys->dims[i];
    }
    uint8_t *y = ptr(r, n->out[0]);
    const size_t pitch = (size_t)(ys->dims[axis] * inner) * es;
    for (int32_t j = 0; j < n->n_in && outer > 0; j++) {
        const size_t w = (size_t)(shp(r, n->in[j])->dims[axis] * inner) * es;
        if (!w)
            continue;
        const cudaError_t e = cudaMemcpy2DAsync(y, pitch, ptr(r, n->in[j]), w, w, (size_t)outer,
                                                cudaMemcpyDeviceToDevice, r->stream);
        if (e != cudaSuccess)
            return e;
        y += w;
    }
    return cudaSuccess;
}

static hlt_status run_node(run_t *r, int32_t i)
{
    static const cudak_binop bin[] = {
        [OP_ADD] = CUDAK_ADD, [OP_SUB] = CUDAK_SUB, [OP_MUL] = CUDAK_MUL, [OP_DIV] = CUDAK_DIV};
    static const cudak_unop un[] = {[OP_RELU] = CUDAK_RELU,
                                    [OP_LEAKY_RELU] = CUDAK_LEAKY_RELU,
                                    [OP_SIGMOID] = CUDAK_SIGMOID,
                                    [OP_TANH] = CUDAK_TANH};
    const graph_node_t *n = r->n = &r->inst->g->nodes[i];
    const int32_t y = n->out[0];
    const hlt_dtype dt = r->inst->g->tensors[y].dtype;
    cudaError_t e = cudaSuccess;
    if (op_def(n->op)->view)
        return HLT_OK;
    switch (n->op) {
    case OP_GEMM:
        return run_gemm(r);
    case OP_MATMUL:
        return run_matmul(r);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV: {
        cudak_iter_t it;
        make_iter(shp(r, n->in[0]), shp(r, n->in[1]), shp(r, y), &it);
        e = dt == HLT_TYPE_INT64 ? cudak_binary_i64(bin[n->op], ptr(r, n->in[0]), ptr(r, n->in[1]),
                                                    ptr(r, y), &it, r->stream)
                                 : cudak_binary_f32(bin[n->op], ptr(r, n->in[0]), ptr(r, n->in[1]),
                                                    ptr(r, y), &it, r->stream);
        break;
    }
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
        e = cudak_unary_f32(un[n->op], ptr(r, n->in[0]), ptr(r, y), shape_numel(shp(r, y)),
                            n->attrs.alpha, r->stream);
        break;
    case OP_SOFTMAX:
        e = run_softmax(r);
        break;
    case OP_BATCHNORM:
        e = run_batchnorm(r, i);
        break;
    case OP_TRANSPOSE:
        e = run_transpose(r, hlt_dtype_size(dt));
        break;
    case OP_CONCAT:
        e = run_concat(r, hlt_dtype_size(dt));
        break;
    default:
        return cuda_errf(HLT_UNIMPLEMENTED, r->err, r->errlen,
                         "node '%s' (%s): not implemented in the CUDA backend", n->name,
                         op_def(n->op)->name);
    }
    return e == cudaSuccess ? HLT_OK : cuda_fail(r, e);
}

/* Chain head i: its input [m, K0] through every layer of the chain (engine/fuse.h) in one
 * kernel, writing the chain's output and, when they are a graph output, the logits. */
static hlt_status run_chain(run_t *r, int32_t i)
{
    const engine_fuse_t *f = &r->inst->fuse[i];
    const graph_node_t *n = r->n = &r->inst->g->nodes[i];
    const engine_shape_t *xs = shp(r, n->in[0]);
    if (xs->rank != 2)
        return cuda_errf(HLT_INTERNAL, r->err, r->errlen,
                         "node '%s': a fused chain needs a 2-D input, got rank %d", n->name,
                         (int)xs->rank);
    const cudaError_t e = cudak_chain_f32(
        ptr(r, n->in[0]), ptr(r, f->out), f->chain_logits >= 0 ? ptr(r, f->chain_logits) : NULL,
        xs->dims[0], r->inst->weights + r->inst->chainoff[i], r->stream);
    return e == cudaSuccess ? HLT_OK : cuda_fail(r, e);
}

static hlt_status run_nodes(backend_instance_t *inst, const cuda_plan_t *p, int s, char *err,
                            size_t errlen)
{
    run_t r = {inst, p, s, inst->slot[s].stream, NULL, err, errlen};
    for (int32_t i = 0; i < inst->nn; i++) {
        const int32_t owner = inst->chain_owner ? inst->chain_owner[i] : -1;
        if (owner >= 0 && owner != i)
            continue; /* runs inside its chain's kernel */
        hlt_status st = owner == i ? run_chain(&r, i) : run_node(&r, i);
        if (st != HLT_OK)
            return st;
    }
    return HLT_OK;
}

/* Records the plan's launches on slot s into p->graph[s]; false (and nothing kept, nothing
 * run) when any step refuses to be captured. */
static bool capture(backend_instance_t *inst, cuda_plan_t *p, int s)
{
    cudaStream_t stream = inst->slot[s].stream;
    if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    char e[8];
    const hlt_status st = run_nodes(inst, p, s, e, sizeof e);
    cudaGraph_t graph = NULL;
    bool ok = cudaStreamEndCapture(stream, &graph) == cudaSuccess && st == HLT_OK && graph;
    if (ok)
        ok = cudaGraphInstantiate(&p->graph[s], graph, 0) == cudaSuccess;
    if (graph)
        cudaGraphDestroy(graph);
    if (!ok) {
        p->graph[s] = NULL;
        (void)cudaGetLastError();
    }
    return ok;
}

hlt_status cuda_run_plan(backend_instance_t *inst, cuda_plan_t *p, int s, char *err, size_t errlen)
{
    if (!p->graph[s] && inst->use_graphs && !p->graph_failed && p->runs > 0 && !capture(inst, p, s))
        p->graph_failed = true;
    p->runs++;
    if (p->graph[s]) {
        const cudaError_t e = cudaGraphLaunch(p->graph[s], inst->slot[s].stream);
        if (e != cudaSuccess)
            return cuda_errf(HLT_INTERNAL, err, errlen, "model '%s': launching a CUDA graph: %s",
                             inst->model, cudaGetErrorString(e));
        return HLT_OK;
    }
    return run_nodes(inst, p, s, err, errlen);
}
