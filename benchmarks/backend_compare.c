/* hltinfer-backend-compare: the example models on every device of every backend, in process
 * (no gRPC): throughput per batch size, where the time of one execute goes (upload / compute /
 * download from backend_timing_t), the engine's per-batch overhead on top of its kernels, and
 * the CPU backend's GEMM rate against a plain cblas_sgemm on the same shapes.
 *
 *   hltinfer-backend-compare [--models=DIR] [--batches=1,16,256] [--reps=3] [--min-ms=300]
 *                            [--csv=FILE] [--md=FILE]
 *
 * Per model, batch and device: one instance, one prepare, 3 warm-up executes (PoCL compiles
 * kernels on first launch), then `reps` repetitions of min-ms each; a repetition's figure is
 * the median execute time (executes timed in chunks of >= 20 us, so a preempted chunk is an
 * outlier rather than a share of the mean), the reported figure the median of the repetitions.
 * Overhead = (execute wall - kernel time [- transfers]) / execute wall:
 *  - cpu: no overhead figure. The engine's executor fuses epilogues and runs packed GEMMs,
 *    so its kernels cannot be timed from outside; the "kernels" column holds the op-by-op
 *    reference instead: the graph's nodes run back to back through their ops.h run functions
 *    (intermediates sharing buffers by liveness), each call timed, per node the median over
 *    ~200 ms, so execute / op-by-op shows what the executor's fusion buys;
 *  - opencl: the execute column is the server's configuration (a queue without profiling);
 *    kernel time = the sum of the kernels' profiling events (ocl_kernel_ns), in a separate
 *    pass on a second instance with a profiling queue (HLT_OPENCL_PROFILING=1) and one event
 *    per kernel; transfers (upload + download events) are taken out too and reported apart,
 *    and the overhead is computed within that pass (its execute wall, reported too), so it is
 *    host-side enqueue, launch and sync;
 *    The reference for that host cost, in the same run: the driver's floor, the same command
 *    sequence (same write/read sizes, same NDRanges) with an empty kernel issued by a bare
 *    loop on a queue without profiling; "floor share" = floor / execute, both without
 *    profiling: the part of the execute that any host code would pay this driver;
 *  - other backends: execute wall minus the upload + compute + download spans they report.
 * Writes one CSV row per (model, batch, device) and a markdown table. Single-threaded BLAS, as
 * in the server (one BLAS thread per instance worker); PoCL uses every core. */
#include "backend/backend.h"
#include "clock.h"
#include "cpu_gemm.h"
#include "engine/graph.h"
#include "engine/ops.h"
#include "engine/shape.h"
#include "model_config.h"
#ifdef HLT_HAVE_OPENCL
#include "backend/opencl/ocl.h"
#endif

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_IO 8

typedef struct opts {
    const char *models, *csv, *md;
    int64_t batches[16];
    int n_batches, reps;
    double min_ms;
    bool pinned;   /* I/O buffers from the backend's host_alloc (as the server's batch staging) */
    int instances; /* > 1: also the steady state of this many instances on one device */
} opts_t;

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

static void *rand_buf(size_t bytes)
{
    float *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        p[i] = frand();
    return p;
}

static size_t bytes_of(const engine_shape_t *s, hlt_dtype t)
{
    return (size_t)shape_numel(s) * hlt_dtype_size(t);
}

/* ---- CPU: per-node kernel time and GEMM rates ---- */

typedef struct cpu_kernels {
    double kernel_ns;                  /* sum over nodes */
    double gemm_flops;                 /* per execute */
    double gemm_ns_ours, gemm_ns_blas; /* per execute, summed over GEMM nodes */
    double pass_ns;                    /* one pass over all nodes, timed as a whole */
} cpu_kernels_t;

/* Median time of one fn(arg) call (ns): calls run in chunks of ~20 us or more, each chunk timed,
 * for about ms milliseconds (at least 5 chunks); the median chunk over its size. Medians of
 * short chunks, not means of long loops: on a shared machine a preempted chunk is an outlier,
 * not a share of the result. */
static double sample(void (*fn)(void *), void *arg, double ms)
{
    int64_t t0 = hlt_now_ns();
    fn(arg);
    const double one = (double)(hlt_now_ns() - t0);
    const int chunk = one >= 20000 ? 1 : (int)(20000 / (one > 1 ? one : 1)) + 1;
    static double v[4096];
    int n = 0;
    const int64_t end = hlt_now_ns() + (int64_t)(ms * 1e6);
    while (n < 4096 && (n < 5 || hlt_now_ns() < end)) {
        t0 = hlt_now_ns();
        for (int i = 0; i < chunk; i++)
            fn(arg);
        v[n++] = (double)(hlt_now_ns() - t0) / chunk;
    }
    return median(v, n);
}

/* A node's or a GEMM's time alone: median of 3 samples of 20 ms. */
static double time_call(void (*fn)(void *), void *arg)
{
    double v[3];
    for (int r = 0; r < 3; r++)
        v[r] = sample(fn, arg, 20);
    return median(v, 3);
}

typedef struct gemm_call {
    bool ta, tb, blas;
    int64_t m, n, k, lda, ldb;
    const float *a, *b;
    float *c;
} gemm_call_t;

static void run_gemm(void *arg)
{
    const gemm_call_t *g = arg;
    if (g->blas)
        cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                    g->tb ? CblasTrans : CblasNoTrans, (int)g->m, (int)g->n, (int)g->k, 1.0f, g->a,
                    (int)g->lda, g->b, (int)g->ldb, 0.0f, g->c, (int)g->n);
    else
        cpu_sgemm(g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a, g->lda, g->b, g->ldb, 0.0f, g->c,
                  g->n);
}

typedef struct pool {
    void *buf[64];
    size_t cap[64];
    bool busy[64];
    int n;
} pool_t;

/* Smallest free buffer of at least bytes, else a new one. */
static void *pool_get(pool_t *p, size_t bytes)
{
    int best = -1;
    for (int k = 0; k < p->n; k++)
        if (!p->busy[k] && p->cap[k] >= bytes && (best < 0 || p->cap[k] < p->cap[best]))
            best = k;
    if (best < 0) {
        if (p->n == 64) {
            fprintf(stderr, "graph too large for the benchmark's buffer pool\n");
            exit(1);
        }
        best = p->n++;
        p->buf[best] = rand_buf(bytes);
        p->cap[best] = bytes;
    }
    p->busy[best] = true;
    return p->buf[best];
}

static void pool_put(pool_t *p, void *buf)
{
    for (int k = 0; k < p->n; k++)
        if (p->buf[k] == buf)
            p->busy[k] = false;
}

static void cpu_kernel_times(const engine_graph_t *g, const engine_shape_t *in, cpu_kernels_t *out)
{
    const int32_t nt = g->n_tensors;
    engine_shape_t *shapes = calloc((size_t)nt, sizeof *shapes);
    void **data = calloc((size_t)nt, sizeof *data);
    void **owned = calloc((size_t)nt, sizeof *owned);
    void **ws_of = calloc((size_t)g->n_nodes + 1, sizeof *ws_of);
    memset(out, 0, sizeof *out);
    char err[256];
    for (int32_t t = 0; t < nt; t++)
        if (g->tensors[t].is_const) {
            shapes[t].rank = g->tensors[t].rank;
            memcpy(shapes[t].dims, g->tensors[t].dims, sizeof shapes[t].dims);
            data[t] = g->tensors[t].data;
        }
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const int32_t t = g->inputs[i];
        shapes[t] = in[i];
        data[t] = owned[t] = rand_buf(bytes_of(&in[i], g->tensors[t].dtype));
    }
    /* Intermediates share buffers by liveness, as in the engine's arena (exec.c), so the
     * kernels see the working set of a real execute: root per view, last use per root, and a
     * pool of buffers handed back after their last reader. */
    int32_t *root = calloc((size_t)nt, sizeof *root), *last = calloc((size_t)nt, sizeof *last);
    pool_t pool = {0};
    for (int32_t t = 0; t < nt; t++)
        root[t] = t;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const graph_node_t *n = &g->nodes[i];
        if (op_def(n->op)->view)
            root[n->out[0]] = root[n->in[0]];
        for (int32_t j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0 && last[root[n->in[j]]] < i)
                last[root[n->in[j]]] = i;
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        last[root[g->outputs[i]]] = g->n_nodes;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const graph_node_t *n = &g->nodes[i];
        size_t ws = 0;
        if (shape_infer_node(g, n, shapes, &ws, err, sizeof err) != HLT_OK) {
            fprintf(stderr, "shape: %s\n", err);
            exit(1);
        }
        const int32_t y = n->out[0];
        if (op_def(n->op)->view) {
            data[y] = data[n->in[0]];
            continue;
        }
        data[y] = pool_get(&pool, bytes_of(&shapes[y], g->tensors[y].dtype) + 64);
        ws_of[i] = ws ? rand_buf(ws) : NULL;
        if (n->op == OP_GEMM || n->op == OP_MATMUL) {
            /* the model's GEMMs are 2-D after folding A's batch into rows (MatMul [N,K]x[K,F]) */
            const engine_shape_t *as = &shapes[n->in[0]], *bs = &shapes[n->in[1]];
            gemm_call_t gc = {.a = data[n->in[0]], .b = data[n->in[1]], .c = data[y]};
            if (n->op == OP_GEMM) {
                gc.ta = n->attrs.trans_a;
                gc.tb = n->attrs.trans_b;
                gc.m = shapes[y].dims[0];
                gc.n = shapes[y].dims[1];
                gc.k = gc.ta ? as->dims[0] : as->dims[1];
                gc.lda = as->dims[1];
                gc.ldb = bs->dims[1];
            } else {
                gc.k = as->dims[as->rank - 1];
                gc.n = bs->dims[bs->rank - 1];
                gc.m = shape_numel(as) / gc.k;
                gc.lda = gc.k;
                gc.ldb = gc.n;
            }
            out->gemm_flops += 2.0 * (double)gc.m * (double)gc.n * (double)gc.k;
            out->gemm_ns_ours += time_call(run_gemm, &gc);
            gc.blas = true;
            out->gemm_ns_blas += time_call(run_gemm, &gc);
        }
        for (int32_t j = 0; j < n->n_in; j++) {
            const int32_t r = n->in[j] >= 0 ? root[n->in[j]] : -1;
            if (r >= 0 && last[r] == i && !g->tensors[r].is_const && g->tensors[r].input_idx < 0)
                pool_put(&pool, data[r]);
        }
    }
    /* Kernel time: the nodes run in graph order as in an execute (same data flow, same cache
     * state), each call timed on its own; per node the median over ~200 ms of passes. */
    enum { PASSES = 2048 };
    double *per = calloc((size_t)g->n_nodes * PASSES, sizeof *per);
    int passes = 0;
    const int64_t end = hlt_now_ns() + 200000000;
    double pass_ns[PASSES];
    while (passes < PASSES && (passes < 5 || hlt_now_ns() < end)) {
        const int64_t tp = hlt_now_ns();
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const graph_node_t *n = &g->nodes[i];
            if (op_def(n->op)->view)
                continue;
            const op_run_t r = {.g = g, .n = n, .shapes = shapes, .data = data, .ws = ws_of[i]};
            const int64_t t0 = hlt_now_ns();
            op_def(n->op)->run(&r);
            per[(size_t)i * PASSES + (size_t)passes] = (double)(hlt_now_ns() - t0);
        }
        pass_ns[passes] = (double)(hlt_now_ns() - tp);
        passes++;
    }
    out->pass_ns = median(pass_ns, passes);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const double tn = median(per + (size_t)i * PASSES, passes);
        if (getenv("HLT_BENCH_DEBUG"))
            fprintf(stderr, "  node %s (%s): %.2f us\n", g->nodes[i].name,
                    op_def(g->nodes[i].op)->name, tn / 1e3);
        out->kernel_ns += tn;
        free(ws_of[i]);
    }
    if (getenv("HLT_BENCH_DEBUG")) {
        fprintf(stderr, "  pass %.2f us, nodes %.2f us\n", out->pass_ns / 1e3,
                out->kernel_ns / 1e3);
    }
    free(per);
    free(ws_of);
    for (int k = 0; k < pool.n; k++)
        free(pool.buf[k]);
    free(root);
    free(last);
    for (int32_t t = 0; t < nt; t++)
        free(owned[t]);
    free(owned);
    free(data);
    free(shapes);
}

/* ---- one backend at one batch ---- */

typedef struct result {
    double exec_ns, upload_ns, compute_ns, download_ns;
    double kernel_ns;    /* -1 when unknown */
    double prof_exec_ns; /* execute wall in the kernel-profiling pass (opencl) */
    double prof_xfer_ns; /* upload + download in that pass */
    double floor_ns;     /* opencl: the same commands with empty kernels, bare loop; -1 */
    double pipe_ns;      /* wall per batch with o->instances instances running at once; 0 = not
                            measured */
} result_t;

/* One execute, its timing added to the sums (the first error sticks and stops the work). */
typedef struct exec_ctx {
    const backend_i *b;
    backend_instance_t *inst;
    const void *const *in;
    void *const *out;
    char *err;
    size_t errlen;
    hlt_status st;
    bool kernels;
    double n, up, co, dn, kern, xfer;
} exec_ctx_t;

static void exec_once(void *arg)
{
    exec_ctx_t *x = arg;
    backend_timing_t t = {0, 0, 0};
    if (x->st == HLT_OK)
        x->st = x->b->execute(x->inst, x->in, x->out, &t, x->err, x->errlen);
    x->n++;
    x->up += (double)t.upload_ns;
    x->co += (double)t.compute_ns;
    x->dn += (double)t.download_ns;
    x->xfer += (double)(t.upload_ns + t.download_ns);
#ifdef HLT_HAVE_OPENCL
    if (x->kernels)
        x->kern += (double)ocl_kernel_ns(x->inst);
#endif
}

/* Random inputs and output buffers for one instance: malloc'ed, or (pinned) from the
 * backend's host_alloc as the server's batch staging buffers are. */
static hlt_status io_alloc(const backend_i *b, backend_instance_t *inst, const engine_graph_t *g,
                           const engine_shape_t *in, const engine_shape_t *oshape, bool pinned,
                           void **inputs, void **outputs)
{
    const size_t ni = engine_graph_num_inputs(g), no = engine_graph_num_outputs(g);
    for (size_t i = 0; i < ni; i++) {
        const size_t bytes = bytes_of(&in[i], engine_graph_input(g, i)->dtype);
        void *r = rand_buf(bytes);
        inputs[i] = pinned ? backend_host_alloc(b, inst, bytes + 64) : r;
        if (!inputs[i] || !r) {
            free(r);
            return HLT_RESOURCE_EXHAUSTED;
        }
        if (pinned) {
            memcpy(inputs[i], r, bytes);
            free(r);
        }
    }
    for (size_t i = 0; i < no; i++) {
        const size_t bytes = bytes_of(&oshape[i], engine_graph_output(g, i)->dtype) + 64;
        outputs[i] = pinned ? backend_host_alloc(b, inst, bytes) : rand_buf(bytes);
        if (!outputs[i])
            return HLT_RESOURCE_EXHAUSTED;
    }
    return HLT_OK;
}

static void io_free(const backend_i *b, backend_instance_t *inst, bool pinned, void **inputs,
                    void **outputs)
{
    for (size_t i = 0; i < MAX_IO; i++) {
        if (pinned) {
            if (inputs[i])
                backend_host_free(b, inst, inputs[i]);
            if (outputs[i])
                backend_host_free(b, inst, outputs[i]);
        } else {
            free(inputs[i]);
            free(outputs[i]);
        }
        inputs[i] = outputs[i] = NULL;
    }
}

/* ---- several instances on one device at once: the server's instance_group count > 1 ---- */

typedef struct pipe_worker {
    const backend_i *b;
    backend_instance_t *inst;
    void *inputs[MAX_IO], *outputs[MAX_IO];
    _Atomic int *go; /* 0 wait, 1 run, 2 stop */
    double n;        /* executes done while go == 1 */
    hlt_status st;
    char err[256];
    pthread_t th;
} pipe_worker_t;

static void *pipe_main(void *arg)
{
    pipe_worker_t *w = arg;
    while (atomic_load(w->go) == 0)
        ;
    while (atomic_load(w->go) == 1 && w->st == HLT_OK) {
        w->st = w->b->execute(w->inst, (const void *const *)w->inputs, w->outputs, NULL, w->err,
                              sizeof w->err);
        if (atomic_load(w->go) == 1)
            w->n++;
    }
    return NULL;
}

/* Wall time per batch while o->instances instances (each its own queue/stream, as the server's
 * instance workers) execute back to back on one device: the steady state with consecutive
 * batches overlapping (one instance's upload/launches during another's kernels). Median of
 * o->reps windows of o->min_ms. */
static hlt_status measure_pipelined(const backend_i *b, int device, const backend_model_t *bm,
                                    const engine_shape_t *in, const opts_t *o, result_t *res,
                                    char *err, size_t errlen)
{
    enum { MAX_INST = 8 };
    const int n = o->instances < MAX_INST ? o->instances : MAX_INST;
    pipe_worker_t w[MAX_INST];
    memset(w, 0, sizeof w);
    _Atomic int go = 0;
    hlt_status st = HLT_OK;
    engine_shape_t oshape[MAX_IO];
    int made = 0;
    for (; made < n && st == HLT_OK; made++) {
        w[made].b = b;
        w[made].go = &go;
        if ((st = b->instance_create(device, bm, &w[made].inst, err, errlen)) != HLT_OK)
            break;
        if ((st = b->prepare(w[made].inst, in, oshape, err, errlen)) != HLT_OK ||
            (st = io_alloc(b, w[made].inst, bm->graph, in, oshape, o->pinned, w[made].inputs,
                           w[made].outputs)) != HLT_OK) {
            made++;
            break;
        }
        for (int k = 0; k < 2 && st == HLT_OK; k++)
            st = b->execute(w[made].inst, (const void *const *)w[made].inputs, w[made].outputs,
                            NULL, err, errlen);
    }
    double v[16];
    int reps = 0;
    for (int r = 0; st == HLT_OK && r < o->reps; r++) {
        atomic_store(&go, 0);
        int started = 0;
        for (int i = 0; i < n; i++, started++) {
            w[i].n = 0;
            if (pthread_create(&w[i].th, NULL, pipe_main, &w[i])) {
                st = HLT_RESOURCE_EXHAUSTED;
                snprintf(err, errlen, "cannot start a thread");
                break;
            }
        }
        atomic_store(&go, 1);
        const int64_t t0 = hlt_now_ns();
        struct timespec ts = {(time_t)(o->min_ms / 1e3), (long)(fmod(o->min_ms, 1e3) * 1e6)};
        nanosleep(&ts, NULL);
        double total = 0;
        for (int i = 0; i < n; i++)
            total += w[i].n;
        const int64_t t1 = hlt_now_ns();
        atomic_store(&go, 2);
        for (int i = 0; i < started; i++) {
            pthread_join(w[i].th, NULL);
            if (w[i].st != HLT_OK && st == HLT_OK) {
                st = w[i].st;
                snprintf(err, errlen, "%s", w[i].err);
            }
        }
        if (total > 0)
            v[reps++] = (double)(t1 - t0) / total;
    }
    if (st == HLT_OK && reps)
        res->pipe_ns = median(v, reps);
    for (int i = 0; i < made; i++)
        if (w[i].inst) {
            io_free(b, w[i].inst, o->pinned, w[i].inputs, w[i].outputs);
            b->instance_destroy(w[i].inst);
        }
    return st;
}

#ifdef HLT_HAVE_OPENCL
/* ---- OpenCL: the driver's own floor for the command sequence of one execute ----
 *
 * The reference for the OpenCL overhead: the same commands an execute enqueues (one write per
 * input of the same size, one NDRange per launch with the same dimensions, global and local
 * sizes, one read per output), issued by a bare loop on a fresh in-order queue without
 * profiling, with an empty kernel, then clFinish. What is left of an execute beyond this floor
 * and the kernels' own time is the engine's cost (not subtracted here: the kernel times come
 * from the profiled pass, whose run-to-run spread on PoCL is larger than that remainder). */
typedef struct floor_ctx {
    cl_command_queue q;
    cl_kernel nop;
    const backend_instance_t *inst;
    size_t in_bytes[MAX_IO], out_bytes[MAX_IO];
    size_t n_in, n_out;
    void *const *in;
    void *const *out;
    cl_int rc;
} floor_ctx_t;

static void floor_once(void *arg)
{
    floor_ctx_t *f = arg;
    const backend_instance_t *inst = f->inst;
    cl_int rc = CL_SUCCESS;
    for (size_t i = 0; i < f->n_in && rc == CL_SUCCESS; i++)
        rc = clEnqueueWriteBuffer(f->q, inst->arena, CL_FALSE, 0, f->in_bytes[i], f->in[i], 0, NULL,
                                  NULL);
    for (int32_t i = 0; i < inst->n_launches && rc == CL_SUCCESS; i++) {
        const ocl_launch_t *l = &inst->launches[i];
        if (!l->skip)
            rc = clEnqueueNDRangeKernel(f->q, f->nop, l->dims, NULL, l->gws, l->lws, 0, NULL, NULL);
    }
    for (size_t i = 0; i < f->n_out && rc == CL_SUCCESS; i++)
        rc = clEnqueueReadBuffer(f->q, inst->arena, CL_FALSE, 0, f->out_bytes[i], f->out[i], 0,
                                 NULL, NULL);
    const cl_int frc = clFinish(f->q);
    if (f->rc == CL_SUCCESS)
        f->rc = rc != CL_SUCCESS ? rc : frc;
}

/* Median floor time (ns) over o->reps samples, or -1 when it cannot be measured. */
static double opencl_floor(const backend_instance_t *inst, const engine_shape_t *in,
                           const engine_shape_t *oshape, void *const *inputs, void *const *outputs,
                           const opts_t *o)
{
    static const char src[] = "__kernel void hlt_nop(void) {}\n";
    const char *srcs[] = {src};
    cl_int rc;
    floor_ctx_t f = {.inst = inst, .in = inputs, .out = outputs};
    const engine_graph_t *g = inst->g;
    f.n_in = engine_graph_num_inputs(g);
    f.n_out = engine_graph_num_outputs(g);
    for (size_t i = 0; i < f.n_in; i++)
        f.in_bytes[i] = bytes_of(&in[i], engine_graph_input(g, i)->dtype);
    for (size_t i = 0; i < f.n_out; i++)
        f.out_bytes[i] = bytes_of(&oshape[i], engine_graph_output(g, i)->dtype);
    cl_program prog = clCreateProgramWithSource(inst->ctx, 1, srcs, NULL, &rc);
    if (rc != CL_SUCCESS)
        return -1;
    double v[16], res = -1;
    if (clBuildProgram(prog, 1, &inst->d->id, "", NULL, NULL) != CL_SUCCESS ||
        !(f.nop = clCreateKernel(prog, "hlt_nop", &rc)) ||
        !(f.q = clCreateCommandQueue(inst->ctx, inst->d->id, 0, &rc)))
        goto out;
    for (int w = 0; w < 3; w++) /* PoCL compiles a work-group function per local size */
        floor_once(&f);
    for (int r = 0; r < o->reps; r++)
        v[r] = sample(floor_once, &f, o->min_ms);
    if (f.rc == CL_SUCCESS)
        res = median(v, o->reps);
out:
    if (f.q)
        clReleaseCommandQueue(f.q);
    if (f.nop)
        clReleaseKernel(f.nop);
    clReleaseProgram(prog);
    return res;
}
#endif

/* An instance of bm on device, prepared for in, with its I/O buffers (io_alloc). */
static hlt_status open_instance(const backend_i *b, int device, const backend_model_t *bm,
                                const engine_shape_t *in, const opts_t *o,
                                backend_instance_t **inst, engine_shape_t *oshape, void **inputs,
                                void **outputs, char *err, size_t errlen)
{
    hlt_status st;
    if ((st = b->instance_create(device, bm, inst, err, errlen)) ||
        (st = b->prepare(*inst, in, oshape, err, errlen)))
        return st;
    if (io_alloc(b, *inst, bm->graph, in, oshape, o->pinned, inputs, outputs) != HLT_OK) {
        snprintf(err, errlen, "out of memory for the I/O buffers");
        return HLT_RESOURCE_EXHAUSTED;
    }
    return HLT_OK;
}

static hlt_status measure(const backend_i *b, int device, const engine_graph_t *g,
                          const engine_shape_t *in, const opts_t *o, result_t *res, char *err,
                          size_t errlen)
{
    model_config_t *cfg = NULL;
    backend_instance_t *inst = NULL;
    hlt_status st = model_config_parse("bench", NULL, 0, &cfg, err, errlen);
    const backend_model_t bm = {g, cfg, "bench"};
    void *inputs[MAX_IO] = {0}, *outputs[MAX_IO] = {0};
    engine_shape_t oshape[MAX_IO];
    if (st ||
        (st = open_instance(b, device, &bm, in, o, &inst, oshape, inputs, outputs, err, errlen)))
        goto out;
    exec_ctx_t x = {.b = b,
                    .inst = inst,
                    .in = (const void *const *)inputs,
                    .out = outputs,
                    .err = err,
                    .errlen = errlen};
    for (int w = 0; w < 3; w++)
        exec_once(&x);
    double ex[16], up[16], co[16], dn[16];
    for (int r = 0; r < o->reps && x.st == HLT_OK; r++) {
        x.n = 0;
        x.up = x.co = x.dn = x.kern = x.xfer = 0;
        ex[r] = sample(exec_once, &x, o->min_ms);
        up[r] = x.up / x.n;
        co[r] = x.co / x.n;
        dn[r] = x.dn / x.n;
    }
    if ((st = x.st))
        goto out;
    res->exec_ns = median(ex, o->reps);
    res->upload_ns = median(up, o->reps);
    res->compute_ns = median(co, o->reps);
    res->download_ns = median(dn, o->reps);
    res->kernel_ns = res->prof_exec_ns = res->prof_xfer_ns = res->floor_ns = -1;
#ifdef HLT_HAVE_OPENCL
    if (!strcmp(b->name, "opencl")) {
        res->floor_ns = opencl_floor(inst, in, oshape, inputs, outputs, o);
        /* the split and the kernel times need a profiling queue, which the server's instances
         * do not have (it slows PoCL): a second instance with one, used from here on */
        io_free(b, inst, o->pinned, inputs, outputs);
        b->instance_destroy(inst);
        inst = NULL;
        setenv("HLT_OPENCL_PROFILING", "1", 1);
        if ((st =
                 open_instance(b, device, &bm, in, o, &inst, oshape, inputs, outputs, err, errlen)))
            goto out;
        x.inst = inst;
        for (int w = 0; w < 3; w++)
            exec_once(&x);
        ocl_set_kernel_profiling(inst, true);
        x.kernels = true;
        double k[16], e[16], xf[16];
        for (int r = 0; r < o->reps && x.st == HLT_OK; r++) {
            x.n = 0;
            x.up = x.co = x.dn = x.kern = x.xfer = 0;
            e[r] = sample(exec_once, &x, o->min_ms);
            k[r] = x.kern / x.n;
            xf[r] = x.xfer / x.n;
            up[r] = x.up / x.n;
            co[r] = x.co / x.n;
            dn[r] = x.dn / x.n;
        }
        if ((st = x.st))
            goto out;
        res->upload_ns = median(up, o->reps);
        res->compute_ns = median(co, o->reps);
        res->download_ns = median(dn, o->reps);
        if (ocl_kernel_ns(inst) >= 0) {
            res->kernel_ns = median(k, o->reps);
            res->prof_exec_ns = median(e, o->reps);
            res->prof_xfer_ns = median(xf, o->reps);
        }
    }
#endif
    if (o->instances > 1 && st == HLT_OK)
        st = measure_pipelined(b, device, &bm, in, o, res, err, errlen);
out:
    unsetenv("HLT_OPENCL_PROFILING");
    if (inst)
        io_free(b, inst, o->pinned, inputs, outputs);
    if (inst)
        b->instance_destroy(inst);
    model_config_destroy(cfg);
    return st;
}

static void parse_batches(opts_t *o, const char *s)
{
    o->n_batches = 0;
    for (char *end; *s && o->n_batches < 16; s = *end ? end + 1 : end)
        o->batches[o->n_batches++] = strtoll(s, &end, 10);
}

int main(int argc, char **argv)
{
    opts_t o = {.models = "models", .reps = 3, .min_ms = 300, .instances = 1};
    parse_batches(&o, "1,16,256,4096,16000");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--models=", 9))
            o.models = a + 9;
        else if (!strncmp(a, "--batches=", 10))
            parse_batches(&o, a + 10);
        else if (!strncmp(a, "--reps=", 7))
            o.reps = atoi(a + 7) < 1 ? 1 : atoi(a + 7) > 15 ? 15 : atoi(a + 7);
        else if (!strncmp(a, "--min-ms=", 9))
            o.min_ms = atof(a + 9);
        else if (!strncmp(a, "--csv=", 6))
            o.csv = a + 6;
        else if (!strncmp(a, "--md=", 5))
            o.md = a + 5;
        else if (!strcmp(a, "--pinned"))
            o.pinned = true;
        else if (!strncmp(a, "--instances=", 12))
            o.instances = atoi(a + 12) < 1 ? 1 : atoi(a + 12) > 8 ? 8 : atoi(a + 12);
        else {
            fprintf(stderr,
                    "usage: %s [--models=DIR] [--batches=1,16,...] [--reps=N] "
                    "[--min-ms=MS] [--pinned] [--instances=N] [--csv=FILE] [--md=FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    cpu_blas_set_threads(1);
    FILE *csv = o.csv ? fopen(o.csv, "w") : stdout;
    FILE *md = o.md ? fopen(o.md, "w") : NULL;
    if (!csv || (o.md && !md)) {
        perror("output");
        return 1;
    }
    fprintf(csv,
            "model,batch,backend,device,exec_us,rows_per_s,upload_us,compute_us,download_us,"
            "kernel_us,overhead_pct,transfer_pct,gemm_gflops_ours,gemm_gflops_openblas,"
            "instances,pipelined_us_per_batch,pipelined_overhead_pct,profiled_exec_us,floor_us,"
            "floor_pct\n");
    /* every device of every backend but xrt (bitstreams only); the CPU first, the reference */
    const backend_i *bes[16];
    int devno[16];
    char dev[16][160];
    int nb = 0;
    for (const char *const *n = backend_names(); *n && nb < 16; n++) {
        const backend_i *b = backend_find(*n);
        char reason[256] = "";
        const int nd = b && strcmp(*n, "xrt") ? backend_devices(b, reason, sizeof reason) : 0;
        if (nd <= 0) {
            fprintf(stderr, "backend %s skipped: %s\n", *n,
                    !b   ? "cannot be loaded"
                    : nd ? reason
                         : "runs no graphs");
            continue;
        }
        for (int d = 0; d < nd && nb < 16; d++) {
            backend_device_info_t info;
            b->device_info(d, &info);
            snprintf(dev[nb], sizeof dev[nb], "%s", info.name);
            devno[nb] = d;
            bes[nb++] = b;
        }
    }
    static const char *const models[] = {"facile", "jet_tagger"};
    if (md)
        fprintf(md,
                "| model | batch | backend | execute µs | rows/s | vs cpu | upload µs | "
                "compute µs | download µs | kernels µs | overhead | transfers | driver floor "
                "µs | floor share | CPU GEMM GFLOP/s (ours / OpenBLAS) |%s\n|---|---|---|---|"
                "---|---|---|---|---|---|---|---|---|---|---|%s\n",
                o.instances > 1 ? " µs per batch, instances at once | overhead then |" : "",
                o.instances > 1 ? "---|---|" : "");
    for (size_t mi = 0; mi < 2; mi++) {
        char path[1024], err[512];
        snprintf(path, sizeof path, "%s/%s/1/model.onnx", o.models, models[mi]);
        engine_graph_t *g = NULL;
        if (engine_graph_load_file(path, &g, err, sizeof err) != HLT_OK) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        for (int bi = 0; bi < o.n_batches; bi++) {
            const int64_t batch = o.batches[bi];
            engine_shape_t in[MAX_IO];
            for (size_t i = 0; i < engine_graph_num_inputs(g); i++) {
                const engine_tensor_desc_t *d = engine_graph_input(g, i);
                in[i].rank = d->rank;
                for (int32_t k = 0; k < d->rank; k++)
                    in[i].dims[k] = d->dims[k] < 0 ? batch : d->dims[k];
            }
            cpu_kernels_t ck;
            cpu_kernel_times(g, in, &ck);
            double cpu_exec = 0;
            for (int k = 0; k < nb; k++) {
                result_t r = {0};
                if (measure(bes[k], devno[k], g, in, &o, &r, err, sizeof err) != HLT_OK) {
                    fprintf(stderr, "%s batch %lld on %s: %s\n", models[mi], (long long)batch,
                            bes[k]->name, err);
                    continue;
                }
                const bool is_cpu = !strcmp(bes[k]->name, "cpu");
                char label[48];
                snprintf(label, sizeof label, "%s:%d", bes[k]->name, devno[k]);
                double kern = -1, over, xfer = (r.upload_ns + r.download_ns) / r.exec_ns;
                if (is_cpu) {
                    /* the engine fuses and packs its GEMMs: the op-by-op pass is a reference
                     * point, not its kernels, so no overhead figure (see the header) */
                    cpu_exec = r.exec_ns;
                    kern = ck.kernel_ns;
                    over = 0.0 / 0.0;
                } else if (r.kernel_ns >= 0) {
                    kern = r.kernel_ns;
                    over = (r.prof_exec_ns - kern - r.prof_xfer_ns) / r.prof_exec_ns;
                } else {
                    over = (r.exec_ns - r.upload_ns - r.compute_ns - r.download_ns) / r.exec_ns;
                }
                /* the driver's floor for the same commands as a share of the execute, both
                 * measured the same way (no profiling) */
                const double fshare = r.floor_ns > 0 ? r.floor_ns / r.exec_ns : 0.0 / 0.0;
                const double rows = (double)batch * 1e9 / r.exec_ns;
                const double g_ours =
                    is_cpu && ck.gemm_ns_ours > 0 ? ck.gemm_flops / ck.gemm_ns_ours : 0;
                const double g_blas =
                    is_cpu && ck.gemm_ns_blas > 0 ? ck.gemm_flops / ck.gemm_ns_blas : 0;
                /* pipelined: the same split against the wall per batch with several
                 * instances at once (kernels and transfers of the synchronous pass) */
                const double kx = kern >= 0 && !is_cpu ? kern + r.prof_xfer_ns
                                                       : r.upload_ns + r.compute_ns + r.download_ns;
                const double pover =
                    r.pipe_ns > 0 && !is_cpu ? (r.pipe_ns - kx) / r.pipe_ns : 0.0 / 0.0;
                fprintf(csv,
                        "%s,%lld,%s,\"%s\",%.2f,%.0f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,"
                        "%d,%.2f,%.2f,%.2f,%.2f,%.2f\n",
                        models[mi], (long long)batch, label, dev[k], r.exec_ns / 1e3, rows,
                        r.upload_ns / 1e3, r.compute_ns / 1e3, r.download_ns / 1e3,
                        kern >= 0 ? kern / 1e3 : -1, 100 * over, 100 * xfer, g_ours, g_blas,
                        o.instances, r.pipe_ns / 1e3, 100 * pover,
                        r.prof_exec_ns > 0 ? r.prof_exec_ns / 1e3 : -1,
                        r.floor_ns > 0 ? r.floor_ns / 1e3 : -1, 100 * fshare);
                fflush(csv);
                if (md) {
                    char gemm[64] = "", ratio[32] = "";
                    if (is_cpu)
                        snprintf(gemm, sizeof gemm, "%.1f / %.1f", g_ours, g_blas);
                    if (cpu_exec > 0)
                        snprintf(ratio, sizeof ratio, "%.2fx", cpu_exec / r.exec_ns);
                    fprintf(md, "| %s | %lld | %s (%s) | %.1f | %.3g | %s | %.1f | %.1f | %.1f | ",
                            models[mi], (long long)batch, label, dev[k], r.exec_ns / 1e3, rows,
                            ratio, r.upload_ns / 1e3, r.compute_ns / 1e3, r.download_ns / 1e3);
                    if (is_cpu)
                        fprintf(md, "%.1f (op by op) | – | ", kern / 1e3);
                    else if (kern >= 0)
                        fprintf(md, "%.1f | %.1f%% (of %.1f) | ", kern / 1e3, 100 * over,
                                r.prof_exec_ns / 1e3);
                    else
                        fprintf(md, "– | %.1f%% (spans) | ", 100 * over);
                    if (is_cpu)
                        fprintf(md, "– | – | – | %s |", gemm);
                    else if (r.floor_ns > 0)
                        fprintf(md, "%.1f%% | %.1f | %.1f%% | |", 100 * xfer, r.floor_ns / 1e3,
                                100 * fshare);
                    else
                        fprintf(md, "%.1f%% | – | – | |", 100 * xfer);
                    if (o.instances > 1 && r.pipe_ns > 0 && !is_cpu)
                        fprintf(md, " %.1f | %.1f%% |\n", r.pipe_ns / 1e3, 100 * pover);
                    else if (o.instances > 1 && r.pipe_ns > 0)
                        fprintf(md, " %.1f | – |\n", r.pipe_ns / 1e3);
                    else if (o.instances > 1)
                        fprintf(md, " – | – |\n");
                    else
                        fprintf(md, "\n");
                }
                fprintf(stderr,
                        "%-10s batch %5lld %-9s %9.1f us  %10.3g rows/s  overhead %5.1f%%"
                        "  | x%d: %.1f us/batch overhead %5.1f%% | floor %.1f us = %.1f%%\n",
                        models[mi], (long long)batch, label, r.exec_ns / 1e3, rows, 100 * over,
                        o.instances, r.pipe_ns / 1e3, 100 * pover, r.floor_ns / 1e3, 100 * fshare);
            }
        }
        engine_graph_destroy(g);
    }
    if (o.csv)
        fclose(csv);
    if (md)
        fclose(md);
    return 0;
}
