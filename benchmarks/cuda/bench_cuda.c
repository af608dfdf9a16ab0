/* bench_cuda: the CUDA backend measured through its backend_i, on a GPU.
 *
 *   bench_cuda startup   cost of loading the module, probing, a CUDA context, cuBLAS and the
 *                        first instances (run it first, in its own process)
 *   bench_cuda models    example models at batch 1, 256, 4096, 16000: wall time per execute,
 *                        throughput, upload / compute / download busy times; the chunk count
 *                        swept at 16000 rows to show the pipeline overlap; each model as one
 *                        chain kernel (HLT_CUDA_CHAINS=1); the CPU backend on the same host
 *                        for scale
 *   bench_cuda gemm      our Gemm node against bare cuBLAS on the same shapes (pinned I/O both)
 *
 * Every number is the median of 3 repetitions; a repetition averages as many executions as
 * fit in about 0.2 s after a warm-up. Inputs live in ordinary (pageable) memory, as gRPC
 * messages do, unless a row says pinned. Markdown on stdout. Not a test: it only reports.
 * cuBLAS is reached through the backend's own loader (cuda_blas.c), so this program does not
 * link it and the start-up numbers stay honest. */
#include <cblas.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "clock.h"
#include "cuda_blas.h"
#include "test_util.h"

#define REP_S 0.2
#define MAX_IO 4

static model_config_t cfg = {.name = "bench", .max_batch_size = 16000}; /* warm-up size */

static double now_us(void)
{
    return (double)hlt_now_ns() / 1e3;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_cuda: %s: %s\n", what, err);
    exit(1);
}

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median3(double *v)
{
    qsort(v, 3, sizeof *v, cmp_d);
    return v[1];
}

static const backend_i *cuda(void)
{
    const backend_i *b = backend_find("cuda");
    char reason[256] = "module not loadable";
    if (!b || backend_devices(b, reason, sizeof reason) <= 0)
        die("no CUDA device", reason);
    return b;
}

static backend_instance_t *create(const backend_i *b, const engine_graph_t *g)
{
    backend_model_t bm = {g, &cfg, NULL};
    backend_instance_t *inst = NULL;
    char err[512] = "";
    if (b->instance_create(0, &bm, &inst, err, sizeof err) != HLT_OK)
        die("instance_create", err);
    return inst;
}

static engine_graph_t *load_model(const char *model)
{
    const char *root = getenv("HLT_SOURCE_ROOT");
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/models/%s/1/model.onnx", root && *root ? root : ".", model);
    engine_graph_t *g = NULL;
    if (engine_graph_load_file(path, &g, err, sizeof err) != HLT_OK)
        die(path, err);
    return g;
}

/* ---- one configuration: buffers + timed loops ---------------------------------------------- */

typedef struct run {
    const backend_i *b;
    backend_instance_t *inst;
    const engine_graph_t *g;
    size_t n_in, n_out;
    void *in[MAX_IO], *out[MAX_IO];
    bool pinned;
} run_t;

typedef struct meas {
    double wall, up, comp, down; /* us per execute */
} meas_t;

static void run_setup(run_t *r, const backend_i *b, const engine_graph_t *g, int64_t rows,
                      bool pinned)
{
    char err[512] = "";
    *r = (run_t){.b = b, .g = g, .pinned = pinned};
    r->inst = create(b, g);
    r->n_in = engine_graph_num_inputs(g);
    r->n_out = engine_graph_num_outputs(g);
    engine_shape_t s[MAX_IO], os[MAX_IO];
    uint64_t seed = 42;
    for (size_t i = 0; i < r->n_in; i++) {
        const engine_tensor_desc_t *d = engine_graph_input(g, i);
        s[i].rank = d->rank;
        memcpy(s[i].dims, d->dims, sizeof s[i].dims);
        s[i].dims[0] = rows;
        const size_t bytes = (size_t)tu_numel(&s[i]) * 4;
        r->in[i] = pinned ? backend_host_alloc(b, r->inst, bytes) : malloc(bytes);
        tu_fill(&seed, r->in[i], tu_numel(&s[i]), -2, 2);
    }
    if (b->prepare(r->inst, s, os, err, sizeof err) != HLT_OK)
        die("prepare", err);
    for (size_t i = 0; i < r->n_out; i++) {
        const size_t bytes = (size_t)tu_numel(&os[i]) * 4;
        r->out[i] = pinned ? backend_host_alloc(b, r->inst, bytes) : malloc(bytes);
    }
}

static void run_free(run_t *r)
{
    for (size_t i = 0; i < r->n_in; i++)
        r->pinned ? backend_host_free(r->b, r->inst, r->in[i]) : free(r->in[i]);
    for (size_t i = 0; i < r->n_out; i++)
        r->pinned ? backend_host_free(r->b, r->inst, r->out[i]) : free(r->out[i]);
    r->b->instance_destroy(r->inst);
}

static void exec(run_t *r, backend_timing_t *t)
{
    char err[512] = "";
    if (r->b->execute(r->inst, (const void *const *)r->in, r->out, t, err, sizeof err) != HLT_OK)
        die("execute", err);
}

/* Median of 3 repetitions: wall time without timing events, then the split with them. */
static meas_t measure(run_t *r)
{
    for (int i = 0; i < 5; i++) /* warm-up: first runs capture graphs, touch buffers */
        exec(r, NULL);
    double t0 = now_us();
    exec(r, NULL);
    const double once = now_us() - t0;
    int iters = (int)(REP_S * 1e6 / (once > 1 ? once : 1));
    iters = iters < 3 ? 3 : iters > 20000 ? 20000 : iters;
    double wall[3], up[3], comp[3], down[3];
    for (int rep = 0; rep < 3; rep++) {
        t0 = now_us();
        for (int i = 0; i < iters; i++)
            exec(r, NULL);
        wall[rep] = (now_us() - t0) / iters;
        double u = 0, c = 0, d = 0;
        for (int i = 0; i < iters; i++) {
            backend_timing_t t;
            exec(r, &t);
            u += (double)t.upload_ns;
            c += (double)t.compute_ns;
            d += (double)t.download_ns;
        }
        up[rep] = u / iters / 1e3;
        comp[rep] = c / iters / 1e3;
        down[rep] = d / iters / 1e3;
    }
    return (meas_t){median3(wall), median3(up), median3(comp), median3(down)};
}

/* ---- startup ------------------------------------------------------------------------------- */

static void bench_startup(void)
{
    char reason[256] = "";
    double t0 = now_us();
    const backend_i *b = backend_find("cuda");
    const int n = b ? backend_devices(b, reason, sizeof reason) : 0;
    const double t_probe = now_us() - t0;
    printf("| step | ms |\n|---|---:|\n");
    printf("| load the module + probe (registry: backend_find, backend_devices) -> %d device%s%s%s "
           "| %.1f |\n",
           n, n == 1 ? "" : "s", n ? "" : ": ", n ? "" : reason, t_probe / 1e3);
    if (!n) {
        char e[256] = "";
        t0 = now_us();
        const bool ok = cuda_blas_get(e, sizeof e) != NULL;
        printf("| dlopen cuBLAS (what the first instance would pay) | %.1f%s%s |\n",
               (now_us() - t0) / 1e3, ok ? "" : " failed: ", e);
        return;
    }
    t0 = now_us();
    cudaFree(NULL); /* creates the primary context */
    const double t_ctx = now_us() - t0;
    char err[256] = "";
    t0 = now_us();
    const cuda_blas_t *blas = cuda_blas_get(err, sizeof err);
    const double t_blas = now_us() - t0;
    if (!blas)
        die("cuBLAS", err);
    engine_graph_t *g = load_model("facile");
    t0 = now_us();
    backend_instance_t *i1 = create(b, g);
    const double t_i1 = now_us() - t0;
    t0 = now_us();
    backend_instance_t *i2 = create(b, g);
    const double t_i2 = now_us() - t0;
    run_t r;
    t0 = now_us();
    run_setup(&r, b, g, 16000, false);
    exec(&r, NULL);
    const double t_first = now_us() - t0;
    t0 = now_us();
    exec(&r, NULL);
    exec(&r, NULL);
    const double t_graph = now_us() - t0;
    run_free(&r);
    b->instance_destroy(i1);
    b->instance_destroy(i2);
    engine_graph_destroy(g);
    printf("| CUDA context (first cudaFree) | %.1f |\n", t_ctx / 1e3);
    printf("| dlopen cuBLAS (first instance only) | %.1f |\n", t_blas / 1e3);
    printf("| instance_create facile (streams, 2 cuBLAS handles, weights, warm-up run) | %.1f |\n",
           t_i1 / 1e3);
    printf("| instance_create again | %.1f |\n", t_i2 / 1e3);
    printf("| create + prepare + first execute, batch 16000 | %.1f |\n", t_first / 1e3);
    printf("| 2nd + 3rd execute (graph capture, replay) | %.1f |\n", t_graph / 1e3);
}

/* ---- models -------------------------------------------------------------------------------- */

static void row(const char *model, const char *config, int64_t rows, meas_t m)
{
    const double sum = m.up + m.comp + m.down;
    double mx = m.up > m.comp ? m.up : m.comp;
    mx = m.down > mx ? m.down : mx;
    printf("| %s | %s | %lld | %.1f | %.3g | %.1f | %.1f | %.1f | %.1f | %.2f |\n", model, config,
           (long long)rows, m.wall, (double)rows / m.wall * 1e6, m.up, m.comp, m.down, sum,
           m.wall / sum);
    fflush(stdout);
}

static void bench_one(const backend_i *b, engine_graph_t *g, const char *model, const char *config,
                      int64_t rows, bool pinned)
{
    run_t r;
    run_setup(&r, b, g, rows, pinned);
    row(model, config, rows, measure(&r));
    run_free(&r);
}

static void bench_models(void)
{
    const backend_i *b = cuda();
    const char *models[] = {"facile", "jet_tagger"};
    const int64_t batches[] = {1, 256, 4096, 16000};
    printf("| model | config | batch | wall us | rows/s | upload us | compute us | download us "
           "| sum us | wall/sum |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int mi = 0; mi < 2; mi++) {
        engine_graph_t *g = load_model(models[mi]);
        for (int pinned = 0; pinned < 2; pinned++)
            for (int k = 0; k < 4; k++)
                bench_one(b, g, models[mi], pinned ? "cuda default, pinned I/O" : "cuda default",
                          batches[k], pinned);
        const char *chunks[] = {"1", "2", "4", "8"};
        for (int pinned = 0; pinned < 2; pinned++)
            for (int c = 0; c < 4 - pinned; c++) {
                char label[64];
                setenv("HLT_CUDA_CHUNKS", chunks[c], 1);
                if (c == 0)
                    setenv("HLT_CUDA_MAX_CHUNKS", "1", 1);
                snprintf(label, sizeof label, "cuda %s chunk%s%s", chunks[c], c ? "s" : "",
                         pinned ? ", pinned I/O" : "");
                bench_one(b, g, models[mi], label, 16000, pinned);
                unsetenv("HLT_CUDA_MAX_CHUNKS");
            }
        setenv("HLT_CUDA_CHUNKS", "4", 1);
        setenv("HLT_CUDA_SLOTS", "3", 1);
        bench_one(b, g, models[mi], "cuda 4 chunks, 3 slots", 16000, false);
        unsetenv("HLT_CUDA_SLOTS");
        setenv("HLT_CUDA_GRAPHS", "0", 1);
        bench_one(b, g, models[mi], "cuda 4 chunks, no CUDA graphs", 16000, false);
        unsetenv("HLT_CUDA_GRAPHS");
        unsetenv("HLT_CUDA_CHUNKS");
        /* the whole model as one chain kernel (engine/fuse.h) instead of cuBLAS per layer */
        setenv("HLT_CUDA_CHAINS", "1", 1);
        for (int pinned = 0; pinned < 2; pinned++)
            for (int k = 0; k < 4; k++)
                bench_one(b, g, models[mi], pinned ? "cuda chains, pinned I/O" : "cuda chains",
                          batches[k], pinned);
        unsetenv("HLT_CUDA_CHAINS");
        for (int k = 0; k < 4; k++)
            bench_one(&backend_cpu, g, models[mi], "cpu (1 BLAS thread)", batches[k], false);
        engine_graph_destroy(g);
    }
}

/* ---- gemm ---------------------------------------------------------------------------------- */

typedef struct gshape {
    const char *label;
    int64_t m, k, n;
    bool tb;
} gshape_t;

static engine_graph_t *gemm_graph(const gshape_t *s)
{
    mb_t *m = mb_new(13);
    const int64_t ad[2] = {-1, s->k}, bd[2] = {s->tb ? s->n : s->k, s->tb ? s->k : s->n};
    mb_input(m, "A", TU_FLOAT, 2, ad);
    uint64_t seed = 5;
    float *w = malloc(sizeof(float) * (size_t)(s->k * s->n));
    tu_fill(&seed, w, s->k * s->n, -1, 1);
    mb_init_f32(m, "B", 2, bd, w, false);
    free(w);
    Onnx__NodeProto *n = mb_node(m, "Gemm", "gemm", "A,B", "Y");
    mb_attr_int(n, "transB", s->tb);
    mb_output(m, "Y", TU_FLOAT, -1, NULL);
    engine_graph_t *g = NULL;
    char err[512] = "";
    if (mb_load(m, &g, err, sizeof err) != HLT_OK)
        die("gemm graph", err);
    mb_free(m);
    return g;
}

/* Bare cuBLAS, the same call our backend makes: device time per call amortised over a loop
 * (dev), device time of one call between two events as our backend times it (one), wall per
 * call with a sync (sync), and wall per call with the H2D of A and D2H of Y from pinned memory
 * around it (io: what our execute does with pinned I/O). */
static void bare(const gshape_t *s, double *dev_us, double *one_us, double *sync_us, double *io_us)
{
    char err[256] = "";
    const cuda_blas_t *bl = cuda_blas_get(err, sizeof err);
    if (!bl)
        die("cuBLAS", err);
    const size_t a_n = (size_t)(s->m * s->k), b_n = (size_t)(s->k * s->n),
                 y_n = (size_t)(s->m * s->n);
    float *ha, *hy, *hb = malloc(b_n * 4), *a, *b, *y;
    cudaHostAlloc((void **)&ha, a_n * 4, cudaHostAllocPortable);
    cudaHostAlloc((void **)&hy, y_n * 4, cudaHostAllocPortable);
    uint64_t seed = 9;
    tu_fill(&seed, ha, (int64_t)a_n, -1, 1);
    tu_fill(&seed, hb, (int64_t)b_n, -1, 1);
    cudaMalloc((void **)&a, a_n * 4);
    cudaMalloc((void **)&b, b_n * 4);
    cudaMalloc((void **)&y, y_n * 4);
    cudaMemcpy(a, ha, a_n * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(b, hb, b_n * 4, cudaMemcpyHostToDevice);
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    cublasHandle_t h;
    void *ws;
    cudaMalloc(&ws, (size_t)8 << 20);
    bl->create(&h);
    bl->set_stream(h, st);
    bl->set_workspace(h, ws, (size_t)8 << 20);
    const float one = 1.0f, zero = 0.0f;
#define CALL()                                                                                     \
    bl->sgemm(h, s->tb ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)s->n, (int)s->m, (int)s->k,  \
              &one, b, (int)(s->tb ? s->k : s->n), a, (int)s->k, &zero, y, (int)s->n)
    for (int i = 0; i < 10; i++)
        CALL();
    cudaStreamSynchronize(st);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double t0 = now_us();
    CALL();
    cudaStreamSynchronize(st);
    const double once = now_us() - t0;
    int iters = (int)(REP_S * 1e6 / (once > 1 ? once : 1));
    iters = iters < 3 ? 3 : iters > 20000 ? 20000 : iters;
    double dv[3], on[3], sy[3], io[3];
    for (int rep = 0; rep < 3; rep++) {
        cudaEventRecord(e0, st);
        for (int i = 0; i < iters; i++)
            CALL();
        cudaEventRecord(e1, st);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        dv[rep] = ms * 1e3 / iters;
        double sum = 0;
        for (int i = 0; i < iters; i++) {
            cudaEventRecord(e0, st);
            CALL();
            cudaEventRecord(e1, st);
            cudaEventSynchronize(e1);
            cudaEventElapsedTime(&ms, e0, e1);
            sum += ms * 1e3;
        }
        on[rep] = sum / iters;
        t0 = now_us();
        for (int i = 0; i < iters; i++) {
            CALL();
            cudaStreamSynchronize(st);
        }
        sy[rep] = (now_us() - t0) / iters;
        t0 = now_us();
        for (int i = 0; i < iters; i++) {
            cudaMemcpyAsync(a, ha, a_n * 4, cudaMemcpyHostToDevice, st);
            CALL();
            cudaMemcpyAsync(hy, y, y_n * 4, cudaMemcpyDeviceToHost, st);
            cudaStreamSynchronize(st);
        }
        io[rep] = (now_us() - t0) / iters;
    }
#undef CALL
    *dev_us = median3(dv);
    *one_us = median3(on);
    *sync_us = median3(sy);
    *io_us = median3(io);
    bl->destroy(h);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaStreamDestroy(st);
    cudaFree(ws);
    cudaFree(a);
    cudaFree(b);
    cudaFree(y);
    cudaFreeHost(ha);
    cudaFreeHost(hy);
    free(hb);
}

static void bench_gemm(void)
{
    const backend_i *b = cuda();
    const gshape_t shapes[] = {
        {"facile L1", 16000, 15, 36, true},       {"facile L2", 16000, 36, 36, true},
        {"facile L3", 16000, 36, 1, true},        {"jet L1", 16000, 64, 128, false},
        {"jet L2", 16000, 128, 64, false},        {"jet L3", 16000, 64, 32, false},
        {"jet L4", 16000, 32, 5, false},          {"jet L1 b256", 256, 64, 128, false},
        {"jet L1 b1", 1, 64, 128, false},         {"square 1024", 1024, 1024, 1024, false},
        {"square 4096", 4096, 4096, 4096, false},
    };
    setenv("HLT_CUDA_MAX_CHUNKS", "1", 1); /* one sgemm per execute */
    printf("| shape | M x K x N | ours: GEMM device us | cuBLAS: 1 call device us | cuBLAS: "
           "amortised device us | ours GFLOP/s | cuBLAS GFLOP/s (amortised) | cuBLAS+sync wall us "
           "| cuBLAS+H2D+D2H wall us | ours execute wall us | our overhead us "
           "|\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const gshape_t *s = &shapes[i];
        engine_graph_t *g = gemm_graph(s);
        run_t r;
        run_setup(&r, b, g, s->m, true);
        const meas_t m = measure(&r);
        run_free(&r);
        engine_graph_destroy(g);
        double dev, one, sync, io;
        bare(s, &dev, &one, &sync, &io);
        const double flop = 2.0 * (double)s->m * (double)s->k * (double)s->n;
        printf("| %s | %lld x %lld x %lld%s | %.2f | %.2f | %.2f | %.0f | %.0f | %.1f | %.1f | "
               "%.1f | %.1f |\n",
               s->label, (long long)s->m, (long long)s->k, (long long)s->n, s->tb ? " (B^T)" : "",
               m.comp, one, dev, flop / m.comp / 1e3, flop / dev / 1e3, sync, io, m.wall,
               m.wall - io);
        fflush(stdout);
    }
    unsetenv("HLT_CUDA_MAX_CHUNKS");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "models";
    openblas_set_num_threads(1); /* as the server runs its CPU instances */
    if (!strcmp(mode, "startup"))
        bench_startup();
    else if (!strcmp(mode, "models"))
        bench_models();
    else if (!strcmp(mode, "gemm"))
        bench_gemm();
    else {
        fprintf(stderr, "usage: bench_cuda startup|models|gemm\n");
        return 2;
    }
    return 0;
}
