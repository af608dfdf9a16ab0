/* cuda_exec: execute for the CUDA backend: the batch through the GPU as a pipeline of chunks.
 *
 * A prepared batch is one chunk, or (cuda_plan.c decided it may be split and is large enough)
 * chunks of chunk_rows rows plus a shorter tail. Chunk k goes to slot k mod S (S = 2 by
 * default: double buffering). For each chunk the host
 *   1. waits for the chunk that last used the slot (k - S) and copies its outputs from the
 *      slot's pinned staging into the caller's buffers,
 *   2. copies the chunk's input rows from the caller's buffers into the slot's pinned staging,
 *   3. enqueues on the slot's stream: H2D copies, the plan's kernels (one CUDA graph launch),
 *      D2H copies into the staging, an event.
 * Streams are independent, so while chunk k uploads (one copy engine) chunk k-1 computes (the
 * SMs) or downloads (the other copy engine), and the host stages the next chunk meanwhile; with
 * S = 3, chunk k-2 can still be downloading too. The batch then takes about the time of the
 * slowest stage times the number of chunks, plus one pass of the others to fill and drain the
 * pipeline, instead of the sum of all stages. Each chunk also replays the whole graph, a fixed
 * cost of launch latency, so few large chunks win (cuda_plan.c chooses; measurements in
 * benchmarks/results/cuda_bench.md). Caller buffers already in pinned memory (backend
 * host_alloc) skip the staging copy and are moved by DMA directly.
 *
 * Timing (backend_timing_t): upload_ns sums, over chunks, the host staging copy of the inputs
 * plus the H2D interval between CUDA events; compute_ns the kernel interval; download_ns the
 * D2H interval plus the host copy out. With the pipeline these are busy times of overlapping
 * stages: their sum exceeds the wall time of execute by what the overlap saved. */
#include "cuda_internal.h"

#include "clock.h"
#include "shape.h"

#include <string.h>

typedef struct job {
    backend_instance_t *inst;
    const void *const *in;
    void *const *out;
    bool *pin_in, *pin_out;
    backend_timing_t *t;
    char *err;
    size_t errlen;
} job_t;

static bool is_pinned(const void *p)
{
    struct cudaPointerAttributes a;
    if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost;
}

static size_t tbytes(const backend_instance_t *inst, const cuda_plan_t *p, int32_t t)
{
    return (size_t)shape_numel(&p->shapes[t]) * hlt_dtype_size(inst->g->tensors[t].dtype);
}

static size_t align_up(size_t n)
{
    return (n + CUDA_ALIGN - 1) & ~(size_t)(CUDA_ALIGN - 1);
}

static hlt_status cuda_err(const job_t *j, const char *what, cudaError_t e)
{
    (void)cudaGetLastError();
    return cuda_errf(HLT_INTERNAL, j->err, j->errlen, "model '%s': %s: %s", j->inst->model, what,
                     cudaGetErrorString(e));
}

static int64_t ev_ns(cudaEvent_t a, cudaEvent_t b)
{
    float ms = 0.0f;
    if (cudaEventElapsedTime(&ms, a, b) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return (int64_t)((double)ms * 1e6);
}

/* Waits for slot s's chunk and delivers its outputs. */
static hlt_status finish(const job_t *j, int s)
{
    backend_instance_t *inst = j->inst;
    cuda_slot_t *sl = &inst->slot[s];
    if (!sl->busy)
        return HLT_OK;
    sl->busy = false;
    const cudaError_t e = cudaEventSynchronize(sl->done);
    if (e != cudaSuccess)
        return cuda_err(j, "running a chunk", e);
    const int64_t t0 = hlt_now_ns();
    size_t so = 0;
    for (int32_t o = 0; o < inst->n_out; o++) {
        const int32_t t = inst->g->outputs[o];
        const size_t bytes = tbytes(inst, sl->plan, t);
        if (bytes && !j->pin_out[o])
            memcpy((uint8_t *)j->out[o] + (size_t)sl->row0 * inst->out_row[o], sl->stage_out + so,
                   bytes);
        so += align_up(bytes);
    }
    if (j->t) {
        j->t->download_ns += hlt_now_ns() - t0;
        if (sl->timed) {
            j->t->upload_ns += ev_ns(sl->ev[0], sl->ev[1]);
            j->t->compute_ns += ev_ns(sl->ev[1], sl->ev[2]);
            j->t->download_ns += ev_ns(sl->ev[2], sl->ev[3]);
        }
    }
    return HLT_OK;
}

/* Stages and enqueues rows [row0, row0 + plan rows) on slot s. */
static hlt_status issue(const job_t *j, int s, cuda_plan_t *p, int64_t row0)
{
    backend_instance_t *inst = j->inst;
    cuda_slot_t *sl = &inst->slot[s];
    const engine_graph_t *g = inst->g;
    const uint8_t *src[inst->n_in + 1];
    const int64_t t0 = hlt_now_ns();
    size_t so = 0;
    for (int32_t i = 0; i < inst->n_in; i++) {
        const size_t bytes = tbytes(inst, p, g->inputs[i]);
        src[i] = (const uint8_t *)j->in[i] + (size_t)row0 * inst->in_row[i];
        if (bytes && !j->pin_in[i]) {
            memcpy(sl->stage_in + so, src[i], bytes);
            src[i] = sl->stage_in + so;
        }
        so += align_up(bytes);
    }
    if (j->t)
        j->t->upload_ns += hlt_now_ns() - t0;
    sl->timed = j->t != NULL;
    cudaError_t e = sl->timed ? cudaEventRecord(sl->ev[0], sl->stream) : cudaSuccess;
    for (int32_t i = 0; i < inst->n_in && e == cudaSuccess; i++) {
        const size_t bytes = tbytes(inst, p, g->inputs[i]);
        if (bytes)
            e = cudaMemcpyAsync(cuda_dptr(inst, p, s, g->inputs[i]), src[i], bytes,
                                cudaMemcpyHostToDevice, sl->stream);
    }
    if (e == cudaSuccess && sl->timed)
        e = cudaEventRecord(sl->ev[1], sl->stream);
    if (e != cudaSuccess)
        return cuda_err(j, "uploading the inputs", e);
    hlt_status st = cuda_run_plan(inst, p, s, j->err, j->errlen);
    if (st != HLT_OK)
        return st;
    e = sl->timed ? cudaEventRecord(sl->ev[2], sl->stream) : cudaSuccess;
    so = 0;
    for (int32_t o = 0; o < inst->n_out && e == cudaSuccess; o++) {
        const int32_t t = g->outputs[o];
        const size_t bytes = tbytes(inst, p, t);
        uint8_t *dst = j->pin_out[o] ? (uint8_t *)j->out[o] + (size_t)row0 * inst->out_row[o]
                                     : sl->stage_out + so;
        if (bytes)
            e = cudaMemcpyAsync(dst, cuda_dptr(inst, p, s, t), bytes, cudaMemcpyDeviceToHost,
                                sl->stream);
        so += align_up(bytes);
    }
    if (e == cudaSuccess && sl->timed)
        e = cudaEventRecord(sl->ev[3], sl->stream);
    if (e == cudaSuccess)
        e = cudaEventRecord(sl->done, sl->stream);
    if (e != cudaSuccess)
        return cuda_err(j, "downloading the outputs", e);
    sl->busy = true;
    sl->row0 = row0;
    sl->plan = p;
    return HLT_OK;
}

/* After a failure: let every stream finish so no copy still reads or writes the buffers. */
static void drain(backend_instance_t *inst)
{
    for (int s = 0; s < inst->nslots; s++) {
        if (inst->slot[s].busy)
            (void)cudaStreamSynchronize(inst->slot[s].stream);
        inst->slot[s].busy = false;
    }
    (void)cudaGetLastError();
}

hlt_status cuda_execute(backend_instance_t *inst, const void *const *in, void *const *out,
                        backend_timing_t *t, char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    if (!inst->prepared)
        return cuda_errf(HLT_FAILED_PRECONDITION, err, errlen,
                         "model '%s': execute before a successful prepare", inst->model);
    bool pin_in[inst->n_in + 1], pin_out[inst->n_out + 1];
    for (int32_t i = 0; i < inst->n_in; i++) {
        if (!in[i] && tbytes(inst, &inst->main, g->inputs[i]))
            return cuda_errf(HLT_INVALID_ARGUMENT, err, errlen, "input '%s' has no data",
                             g->tensors[g->inputs[i]].name);
    }
    for (int32_t i = 0; i < inst->n_out; i++)
        if (!out[i] && shape_numel(&inst->last_out[i]))
            return cuda_errf(HLT_INVALID_ARGUMENT, err, errlen, "output '%s' has no buffer",
                             g->tensors[g->outputs[i]].name);
    cudaError_t e = cudaSetDevice(inst->device);
    if (e != cudaSuccess)
        return cuda_errf(HLT_UNAVAILABLE, err, errlen, "CUDA device %d: %s", inst->device,
                         cudaGetErrorString(e));
    for (int32_t i = 0; i < inst->n_in; i++)
        pin_in[i] = is_pinned(in[i]);
    for (int32_t i = 0; i < inst->n_out; i++)
        pin_out[i] = is_pinned(out[i]);
    if (t)
        *t = (backend_timing_t){0, 0, 0};
    const job_t j = {inst, in, out, pin_in, pin_out, t, err, errlen};
    const int64_t c = inst->chunk_rows;
    const int64_t chunks = c ? (inst->batch + c - 1) / c : 1;
    hlt_status st = HLT_OK;
    int64_t k = 0;
    for (; k < chunks && st == HLT_OK; k++) {
        const int s = (int)(k % inst->nslots);
        st = finish(&j, s);
        const bool last_short = c && k == chunks - 1 && inst->batch % c;
        if (st == HLT_OK)
            st = issue(&j, s, last_short ? &inst->tail : &inst->main, k * c);
    }
    /* Deliver the chunks still in flight, oldest first. */
    for (int64_t q = k - inst->nslots; q < k && st == HLT_OK; q++)
        if (q >= 0)
            st = finish(&j, (int)(q % inst->nslots));
    if (st != HLT_OK)
        drain(inst);
    return st;
}
