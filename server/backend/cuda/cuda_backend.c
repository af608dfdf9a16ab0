/* cuda_backend: the CUDA backend's backend_i (exported as hlt_backend_cuda; the registry
 * dlopens this module on first use, see registry.c).
 *
 * Instance lifecycle: create uploads every constant the graph reads (once), creates the slots
 * (stream, cuBLAS handle with its own workspace, events) and loads cuBLAS on first use in the
 * process (cuda_blas.c); prepare plans device and pinned host buffers (cuda_plan.c); execute
 * runs the pipeline (cuda_exec.c); destroy releases everything. Every entry point selects the
 * instance's device first, since model.c creates an instance on one thread and runs it on its
 * worker thread.
 *
 * Tuning, read from the environment at instance_create (defaults in brackets):
 *   HLT_CUDA_SLOTS        streams/buffer sets an instance pipelines over, 1..4 [2]
 *   HLT_CUDA_CHUNKS       split every splittable batch into this many chunks [unset: by size]
 *   HLT_CUDA_MAX_CHUNKS   at most this many chunks when splitting by size; 1 disables [2]
 *   HLT_CUDA_CHUNK_KB     split only when each chunk moves at least this much I/O [384]
 *   HLT_CUDA_GRAPHS       0 launches kernels one by one instead of replaying CUDA graphs [1]
 *   HLT_CUDA_CHAINS       1 runs each chain of small dense layers (engine/fuse.h) as one
 *                         kernel instead of cuBLAS + epilogue kernels per layer [0: built and
 *                         compiled, not yet run on a GPU; on by default once test_cuda's
 *                         chain tests and bench_cuda have run on one]
 * The defaults come from benchmarks/results/cuda_bench.md (H100, PCIe 5): a chunk costs a
 * fixed ~15-25 us of launch latency however small, so splitting pays only when each chunk
 * moves enough bytes: 2 chunks were best for both example models at 4096-16000 rows, with
 * pageable and with pinned I/O; 4 or more lost to the per-chunk cost.
 *
 * Warm-up: CUDA loads kernels lazily and cuBLAS sets itself up on its first call, ~100 ms
 * that would land on the first request. instance_create therefore runs the model on zeros,
 * at batch 1 and at the config's max_batch_size, when every input has a known shape apart
 * from the batch. */
#include "cuda_internal.h"

#include "backend/warm_up.h"
#include "ops.h"
#include "shape.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLAS_WS_BYTES ((size_t)8 << 20)

hlt_status cuda_errf(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static int cu_probe(char *reason, size_t len)
{
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* the count is left untouched; the error must not linger */
        const char *what = e == cudaErrorInsufficientDriver ? "no CUDA driver"
                           : e == cudaErrorNoDevice         ? "no CUDA device"
                           : e == cudaErrorStubLibrary      ? "no CUDA driver (stub library)"
                                                            : "CUDA unavailable";
        snprintf(reason, len, "%s (%s)", what, cudaGetErrorName(e));
        return 0;
    }
    if (n <= 0) {
        snprintf(reason, len, "no CUDA device");
        return 0;
    }
    return n;
}

static void cu_device_info(int device, backend_device_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->kind = BACKEND_DEVICE_GPU;
    struct cudaDeviceProp p;
    const cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(out->name, sizeof out->name, "CUDA device %d (%s)", device, cudaGetErrorName(e));
        return;
    }
    snprintf(out->name, sizeof out->name, "%.*s", (int)sizeof out->name - 1, p.name);
    out->memory_bytes = (uint64_t)p.totalGlobalMem;
    out->compute_units = p.multiProcessorCount;
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end)
        return def;
    return v < lo ? lo : v > hi ? hi : v;
}

static void destroy_slot(const backend_instance_t *inst, cuda_slot_t *s)
{
    if (s->busy && s->stream)
        (void)cudaStreamSynchronize(s->stream);
    if (s->blas)
        inst->blas->destroy(s->blas);
    cudaFree(s->blas_ws);
    cudaFree(s->arena);
    cudaFreeHost(s->stage_in);
    cudaFreeHost(s->stage_out);
    if (s->done)
        cudaEventDestroy(s->done);
    for (int i = 0; i < 4; i++)
        if (s->ev[i])
            cudaEventDestroy(s->ev[i]);
    if (s->stream)
        cudaStreamDestroy(s->stream);
}

static void cu_destroy(backend_instance_t *inst)
{
    if (!inst)
        return;
    (void)cudaSetDevice(inst->device);
    for (int i = 0; i < CUDA_MAX_SLOTS; i++)
        destroy_slot(inst, &inst->slot[i]);
    cuda_plan_free(&inst->main);
    cuda_plan_free(&inst->tail);
    cudaFree(inst->weights);
    free(inst->root);
    free(inst->woff);
    free(inst->bnoff);
    free(inst->chainoff);
    free(inst->fuse);
    free(inst->chain_owner);
    free(inst->full);
    free(inst->last_in);
    free(inst->last_out);
    free(inst->batched);
    free(inst->in_row);
    free(inst->out_row);
    (void)cudaGetLastError();
    free(inst);
}

/* Constants a node or a graph output reads, packed into one device allocation. */
static hlt_status upload_weights(backend_instance_t *inst, char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    size_t total = 0;
    for (int32_t t = 0; t < inst->nt; t++)
        inst->woff[t] = CUDA_NO_SLOT;
    for (int32_t i = 0; i <= inst->nn; i++) {
        const int32_t n_in = i < inst->nn ? g->nodes[i].n_in : g->n_outputs;
        const int32_t *ids = i < inst->nn ? g->nodes[i].in : g->outputs;
        for (int32_t j = 0; j < n_in; j++) {
            const int32_t t = ids[j];
            if (t < 0 || !g->tensors[t].is_const || !g->tensors[t].data ||
                inst->woff[t] != CUDA_NO_SLOT)
                continue;
            const int64_t n = graph_numel(g->tensors[t].rank, g->tensors[t].dims);
            inst->woff[t] = total;
            total += ((size_t)n * hlt_dtype_size(g->tensors[t].dtype) + CUDA_ALIGN - 1) &
                     ~(size_t)(CUDA_ALIGN - 1);
        }
    }
    /* BatchNormalization over constant parameters: y = x * a + b with a, b folded here in
     * double, as the CPU backend does per run (kernels/cpu/cpu_unary.c). */
    for (int32_t i = 0; i < inst->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        inst->bnoff[i] = CUDA_NO_SLOT;
        bool konst = n->op == OP_BATCHNORM;
        for (int32_t j = 1; j < 5 && konst; j++)
            konst = inst->woff[n->in[j]] != CUDA_NO_SLOT;
        if (konst) {
            inst->bnoff[i] = total;
            total += (2 * sizeof(float) * (size_t)g->tensors[n->in[1]].dims[0] + CUDA_ALIGN - 1) &
                     ~(size_t)(CUDA_ALIGN - 1);
        }
    }
    /* chains: each head's blob (engine/fuse.h) */
    for (int32_t i = 0; i < inst->nn; i++) {
        inst->chainoff[i] = CUDA_NO_SLOT;
        if (inst->chain_owner && inst->chain_owner[i] == i) {
            inst->chainoff[i] = total;
            total += (engine_fuse_chain_blob(g, inst->fuse, i, NULL) + CUDA_ALIGN - 1) &
                     ~(size_t)(CUDA_ALIGN - 1);
        }
    }
    if (!total)
        return HLT_OK;
    cudaError_t e = cudaMalloc((void **)&inst->weights, total);
    if (e != cudaSuccess)
        return cuda_errf(HLT_RESOURCE_EXHAUSTED, err, errlen,
                         "cannot allocate %zu bytes of device memory for the weights: %s", total,
                         cudaGetErrorString(e));
    for (int32_t t = 0; t < inst->nt && e == cudaSuccess; t++) {
        const graph_tensor_t *gt = &g->tensors[t];
        if (inst->woff[t] != CUDA_NO_SLOT)
            e = cudaMemcpy(inst->weights + inst->woff[t], gt->data,
                           (size_t)graph_numel(gt->rank, gt->dims) * hlt_dtype_size(gt->dtype),
                           cudaMemcpyHostToDevice);
    }
    for (int32_t i = 0; i < inst->nn && e == cudaSuccess; i++) {
        const graph_node_t *n = &g->nodes[i];
        if (inst->bnoff[i] == CUDA_NO_SLOT)
            continue;
        const int64_t c = g->tensors[n->in[1]].dims[0];
        float *ab = malloc(2 * sizeof(float) * (size_t)(c ? c : 1));
        if (!ab)
            return cuda_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        const float *scale = g->tensors[n->in[1]].data, *bias = g->tensors[n->in[2]].data;
        const float *mean = g->tensors[n->in[3]].data, *var = g->tensors[n->in[4]].data;
        for (int64_t k = 0; k < c; k++) {
            const double a = (double)scale[k] / sqrt((double)var[k] + (double)n->attrs.epsilon);
            ab[k] = (float)a;
            ab[c + k] = (float)((double)bias[k] - (double)mean[k] * a);
        }
        e = cudaMemcpy(inst->weights + inst->bnoff[i], ab, 2 * sizeof(float) * (size_t)c,
                       cudaMemcpyHostToDevice);
        free(ab);
    }
    for (int32_t i = 0; i < inst->nn && e == cudaSuccess; i++) {
        if (inst->chainoff[i] == CUDA_NO_SLOT)
            continue;
        const size_t bytes = engine_fuse_chain_blob(g, inst->fuse, i, NULL);
        void *blob = malloc(bytes);
        if (!blob)
            return cuda_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        engine_fuse_chain_blob(g, inst->fuse, i, blob);
        e = cudaMemcpy(inst->weights + inst->chainoff[i], blob, bytes, cudaMemcpyHostToDevice);
        free(blob);
    }
    if (e != cudaSuccess)
        return cuda_errf(HLT_INTERNAL, err, errlen, "uploading the weights: %s",
                         cudaGetErrorString(e));
    return HLT_OK;
}

static hlt_status create_slot(backend_instance_t *inst, cuda_slot_t *s, char *err, size_t errlen)
{
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming);
    for (int i = 0; i < 4 && e == cudaSuccess; i++)
        e = cudaEventCreate(&s->ev[i]);
    if (e == cudaSuccess)
        e = cudaMalloc(&s->blas_ws, BLAS_WS_BYTES);
    if (e != cudaSuccess)
        return cuda_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "creating a stream: %s",
                         cudaGetErrorString(e));
    cublasStatus_t b = inst->blas->create(&s->blas);
    if (b == CUBLAS_STATUS_SUCCESS)
        b = inst->blas->set_stream(s->blas, s->stream);
    /* An explicit workspace per handle: cuBLAS then never allocates while a graph is being
     * captured, and two slots never share scratch. */
    if (b == CUBLAS_STATUS_SUCCESS)
        b = inst->blas->set_workspace(s->blas, s->blas_ws, BLAS_WS_BYTES);
    if (b != CUBLAS_STATUS_SUCCESS)
        return cuda_errf(HLT_UNAVAILABLE, err, errlen, "creating a cuBLAS handle: %s",
                         inst->blas->status_name(b));
    return HLT_OK;
}

extern __attribute__((visibility("default"))) const backend_i hlt_backend_cuda; /* below */

/* Warm-up at batch 1 and at the largest batch the config allows (capped: cuBLAS picks other
 * kernels for large M, and the chunk plans only exist there). The instance is left
 * unprepared, as the caller expects; plans and buffers stay cached. */
static void warm_ups(backend_instance_t *inst, const model_config_t *cfg)
{
    backend_warm_up(&hlt_backend_cuda, inst, inst->g, cfg ? cfg->max_batch_size : 1);
    (void)cudaGetLastError();
    inst->prepared = false;
}

static hlt_status cu_create(int device, const backend_model_t *model, backend_instance_t **out,
                            char *err, size_t errlen)
{
    const char *name = model->cfg && model->cfg->name ? model->cfg->name : "?";
    if (!model->graph)
        return cuda_errf(HLT_INVALID_ARGUMENT, err, errlen,
                         "model '%s': the CUDA backend runs ONNX graphs only", name);
    char why[256];
    const cuda_blas_t *blas = cuda_blas_get(why, sizeof why);
    if (!blas)
        return cuda_errf(HLT_UNAVAILABLE, err, errlen, "model '%s': %s", name, why);
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return cuda_errf(HLT_UNAVAILABLE, err, errlen, "model '%s': CUDA device %d: %s", name,
                         device, cudaGetErrorString(e));
    }
    backend_instance_t *inst = calloc(1, sizeof *inst);
    if (!inst)
        return cuda_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    const engine_graph_t *g = model->graph;
    inst->device = device;
    inst->g = g;
    inst->blas = blas;
    snprintf(inst->model, sizeof inst->model, "%s", name);
    inst->nt = g->n_tensors;
    inst->nn = g->n_nodes;
    inst->n_in = g->n_inputs;
    inst->n_out = g->n_outputs;
    inst->nslots = (int)env_long("HLT_CUDA_SLOTS", 2, 1, CUDA_MAX_SLOTS);
    inst->force_chunks = (int)env_long("HLT_CUDA_CHUNKS", 0, 0, 1 << 16);
    inst->max_chunks = (int)env_long("HLT_CUDA_MAX_CHUNKS", 2, 1, 1 << 16);
    inst->chunk_bytes = (size_t)env_long("HLT_CUDA_CHUNK_KB", 384, 1, 1 << 30) << 10;
    inst->use_graphs = env_long("HLT_CUDA_GRAPHS", 1, 0, 1) != 0;
    const bool chains = env_long("HLT_CUDA_CHAINS", 0, 0, 1) != 0;

    const size_t nt = (size_t)inst->nt + 1, nn = (size_t)inst->nn + 1;
    const size_t ni = (size_t)inst->n_in + 1, no = (size_t)inst->n_out + 1;
    inst->root = calloc(nt, sizeof *inst->root);
    inst->woff = calloc(nt, sizeof *inst->woff);
    inst->bnoff = calloc(nn, sizeof *inst->bnoff);
    inst->chainoff = calloc(nn, sizeof *inst->chainoff);
    if (chains) {
        inst->fuse = calloc(nn, sizeof *inst->fuse);
        inst->chain_owner = calloc(nn, sizeof *inst->chain_owner);
    }
    inst->full = calloc(nt, sizeof *inst->full);
    inst->batched = calloc(nt, sizeof *inst->batched);
    inst->last_in = calloc(ni, sizeof *inst->last_in);
    inst->last_out = calloc(no, sizeof *inst->last_out);
    inst->in_row = calloc(ni, sizeof *inst->in_row);
    inst->out_row = calloc(no, sizeof *inst->out_row);
    bool ok = inst->root && inst->woff && inst->bnoff && inst->chainoff &&
              (!chains || (inst->fuse && inst->chain_owner)) && inst->full && inst->batched &&
              inst->last_in && inst->last_out && inst->in_row && inst->out_row;
    cuda_plan_t *plans[2] = {&inst->main, &inst->tail};
    for (int i = 0; i < 2 && ok; i++) {
        plans[i]->key = calloc(ni, sizeof *plans[i]->key);
        plans[i]->shapes = calloc(nt, sizeof *plans[i]->shapes);
        plans[i]->off = calloc(nt, sizeof *plans[i]->off);
        plans[i]->ws_off = calloc(nn, sizeof *plans[i]->ws_off);
        ok = plans[i]->key && plans[i]->shapes && plans[i]->off && plans[i]->ws_off;
    }
    hlt_status st = ok ? HLT_OK : cuda_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    if (st == HLT_OK) {
        for (int32_t t = 0; t < inst->nt; t++) {
            inst->root[t] = t;
            const graph_tensor_t *gt = &g->tensors[t];
            if (gt->is_const) { /* constants keep their shape in every plan */
                inst->full[t] = (engine_shape_t){.rank = gt->rank};
                memcpy(inst->full[t].dims, gt->dims, sizeof gt->dims);
            }
        }
        for (int32_t i = 0; i < inst->nn; i++) {
            const graph_node_t *n = &g->nodes[i];
            if (op_def(n->op)->view)
                inst->root[n->out[0]] = inst->root[n->in[0]];
        }
        if (chains) {
            engine_fuse_plan(g, true, true, inst->fuse);
            engine_fuse_chain_owner(g, inst->fuse, inst->chain_owner);
        }
        st = upload_weights(inst, err, errlen);
    }
    for (int i = 0; i < inst->nslots && st == HLT_OK; i++)
        st = create_slot(inst, &inst->slot[i], err, errlen);
    if (st != HLT_OK) {
        (void)cudaGetLastError();
        cu_destroy(inst);
        return st;
    }
    warm_ups(inst, model->cfg);
    *out = inst;
    return HLT_OK;
}

static hlt_status cu_prepare(backend_instance_t *inst, const engine_shape_t *in,
                             engine_shape_t *out, char *err, size_t errlen)
{
    return cuda_prepare(inst, in, out, err, errlen);
}

static hlt_status cu_execute(backend_instance_t *inst, const void *const *in, void *const *out,
                             backend_timing_t *t, char *err, size_t errlen)
{
    return cuda_execute(inst, in, out, t, err, errlen);
}

/* Pinned, portable host memory: execute moves it by DMA without staging. */
static void *cu_host_alloc(backend_instance_t *inst, size_t bytes)
{
    void *p = NULL;
    (void)cudaSetDevice(inst->device);
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cu_host_free(backend_instance_t *inst, void *p)
{
    (void)inst;
    if (p)
        cudaFreeHost(p);
}

__attribute__((visibility("default"))) const backend_i hlt_backend_cuda = {
    .api_version = BACKEND_API_VERSION,
    .name = "cuda",
    .probe = cu_probe,
    .device_info = cu_device_info,
    .instance_create = cu_create,
    .instance_destroy = cu_destroy,
    .prepare = cu_prepare,
    .execute = cu_execute,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
};
