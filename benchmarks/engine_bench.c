/* engine_bench: CPU engine compute time on the bundled models, against two references.
 *
 * Times engine_exec_run (inputs already in memory, outputs copied out: what a server instance
 * spends in compute_infer) on models/facile at N = 1, 256, 4096, 16000 rows and
 * models/jet_tagger at 1, 64, 1024, and reports per shape the median (and minimum) of several
 * samples, ns per row and GFLOP/s (the GEMM multiply-adds only: 3,744 FLOP a row for facile,
 * 37,184 for jet_tagger). Side by side, in the same process:
 *
 *  - "blas": the same layers as bare cblas_sgemm calls (same m, n, k and transposes, no bias,
 *    no activation, no BatchNormalization, no output copy): a lower bound for any engine that
 *    runs the layers through OpenBLAS one by one;
 *  - "ort": onnxruntime 1-thread (intra_op_num_threads = 1, sequential) on the same model and
 *    shapes, driven from Python (--python, default .venv/bin/python under the source root;
 *    skipped when that does not run). Its times include a Python sess.run call (~5-10 us),
 *    which matters only at the smallest shapes;
 *  - "check": max |engine - reference| / max(1, max|reference|) on the committed reference
 *    vectors of models/<model>/reference (facile n16000, jet_tagger batch64), so a fast but
 *    wrong engine is visible here too.
 *
 *   engine_bench [--models DIR] [--python PATH|--no-ort] [--samples S] [--target-ms T]
 *                [--gemm]  (also: one layer, relu(A op(B) + bias), per shape through
 *                           cpu_sgemm_packed, cblas_sgemm and cpu_sgemm_small)
 *                [--wall]  (wall-clock time instead of the thread's CPU time)
 *                [--isa avx512|avx2|baseline]  (cap the packed kernel's instruction set)
 *
 * Methodology: one warm-up pass, then S samples (default 15) of `iters` runs each, iters sized
 * so one sample lasts about T ms (default 4); a sample's time / iters is one observation; the
 * median of the S observations is reported. Time is the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID; Python's time.thread_time for onnxruntime, whose 1-thread session
 * computes on the calling thread), so that other processes on a shared machine do not count;
 * --wall times by CLOCK_MONOTONIC instead. The process pins itself to one CPU (the engine runs
 * 1 thread per instance) and OpenBLAS to 1 thread. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu_gemm.h"
#include "engine.h"

#ifndef ENGINE_BENCH_SOURCE_ROOT
#define ENGINE_BENCH_SOURCE_ROOT "."
#endif

static int g_samples = 15;
static double g_target_ms = 4.0;
static bool g_wall = false;

/* Thread CPU time by default: on a shared machine other processes take the core away for whole
 * time slices, which wall time counts and CPU time does not (--wall to time by the clock). */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(g_wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct timing {
    double median_ns, min_ns;
} timing_t;

typedef void (*bench_fn)(void *ctx);

/* Median and minimum ns per call of fn(ctx). */
static timing_t time_fn(bench_fn fn, void *ctx)
{
    fn(ctx); /* warm-up: caches, page faults, lazy BLAS init */
    double t0 = now_ns();
    int64_t calib = 0;
    do {
        fn(ctx);
        calib++;
    } while (now_ns() - t0 < 1e6 && calib < 1000000);
    const double per = (now_ns() - t0) / (double)calib;
    int64_t iters = (int64_t)(g_target_ms * 1e6 / per);
    if (iters < 1)
        iters = 1;
    double obs[256];
    const int s = g_samples < 256 ? g_samples : 256;
    for (int i = 0; i < s; i++) {
        const double a = now_ns();
        for (int64_t k = 0; k < iters; k++)
            fn(ctx);
        obs[i] = (now_ns() - a) / (double)iters;
    }
    qsort(obs, (size_t)s, sizeof obs[0], cmp_double);
    return (timing_t){obs[s / 2], obs[0]};
}

/* ---- random data ---------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float rnd_normal(void)
{
    /* sum of 4 uniforms, scaled to unit variance: standardised-feature-like */
    float s = 0.0f;
    for (int i = 0; i < 4; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(rng_state >> 40) / (float)(1u << 24) - 0.5f;
    }
    return s * 1.7320508f;
}

static float *rnd_buf(int64_t n)
{
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = rnd_normal();
    return p;
}

/* ---- the models ------------------------------------------------------------------------ */

typedef struct layer {
    bool trans_b;
    int64_t k, n;
} layer_t;

typedef struct model {
    const char *name;
    const char *input;   /* name of the input (for the ort script) */
    int64_t in_cols;     /* input features */
    const layer_t *layers;
    int n_layers;
    const int64_t *rows; /* N values to time */
    int n_rows;
    const char *ref_case; /* reference/<case>.json */
    int64_t ref_rows;
    const char *ref_out; /* output tensor checked (graph output 0) */
} model_t;

static const layer_t facile_layers[] = {{true, 15, 36}, {true, 36, 36}, {true, 36, 1}};
static const layer_t jet_layers[] = {{false, 64, 128}, {false, 128, 64}, {false, 64, 32},
                                     {false, 32, 5}};
static const int64_t facile_rows[] = {1, 256, 4096, 16000};
static const int64_t jet_rows[] = {1, 64, 1024};

static const model_t models[] = {
    {"facile", "input", 15, facile_layers, 3, facile_rows, 4, "n16000", 16000, "output"},
    {"jet_tagger", "jet_features", 64, jet_layers, 4, jet_rows, 3, "batch64", 64,
     "probabilities"},
};

static double flop_per_row(const model_t *m)
{
    double f = 0;
    for (int i = 0; i < m->n_layers; i++)
        f += 2.0 * (double)m->layers[i].k * (double)m->layers[i].n;
    return f;
}

typedef struct eng_ctx {
    engine_exec_t *e;
    const void *in[1];
    void *out[4];
} eng_ctx_t;

static void run_engine(void *p)
{
    eng_ctx_t *c = p;
    char err[256];
    if (engine_exec_run(c->e, c->in, (void *const *)c->out, err, sizeof err) != HLT_OK) {
        fprintf(stderr, "engine_exec_run: %s\n", err);
        exit(1);
    }
}

typedef struct blas_ctx {
    const model_t *m;
    int64_t rows;
    float *act[8]; /* act[0] input, act[i+1] output of layer i */
    float *w[8];
} blas_ctx_t;

static void run_blas(void *p)
{
    blas_ctx_t *c = p;
    for (int i = 0; i < c->m->n_layers; i++) {
        const layer_t *l = &c->m->layers[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, l->trans_b ? CblasTrans : CblasNoTrans,
                    (blasint)c->rows, (blasint)l->n, (blasint)l->k, 1.0f, c->act[i],
                    (blasint)l->k, c->w[i], (blasint)(l->trans_b ? l->k : l->n), 0.0f,
                    c->act[i + 1], (blasint)l->n);
    }
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p && len)
        *len = (size_t)n;
    return p;
}

/* Max |got - ref| / max(1, max|ref|) over the reference case, or -1 if unavailable. */
static double check_reference(const char *dir, const model_t *m, engine_graph_t *g)
{
    char path[1024];
    size_t in_len = 0, out_len = 0;
    snprintf(path, sizeof path, "%s/%s/reference/%s.%s.bin", dir, m->name, m->ref_case, m->input);
    float *in = read_file(path, &in_len);
    snprintf(path, sizeof path, "%s/%s/reference/%s.%s.bin", dir, m->name, m->ref_case,
             m->ref_out);
    float *ref = read_file(path, &out_len);
    double worst = -1;
    engine_exec_t *e = NULL;
    char err[256];
    if (!in || !ref || in_len != (size_t)(m->ref_rows * m->in_cols) * 4)
        goto done;
    if (engine_exec_create(g, &e, err, sizeof err) != HLT_OK)
        goto done;
    engine_shape_t s = {2, {m->ref_rows, m->in_cols}};
    engine_shape_t os[4];
    if (engine_exec_prepare(e, &s, os, err, sizeof err) != HLT_OK)
        goto done;
    const size_t nout = engine_graph_num_outputs(g);
    void *outs[4] = {0};
    int64_t n0 = 1;
    for (int32_t i = 0; i < os[0].rank; i++)
        n0 *= os[0].dims[i];
    if ((size_t)n0 * 4 != out_len)
        goto done;
    for (size_t i = 0; i < nout && i < 4; i++) {
        int64_t n = 1;
        for (int32_t d = 0; d < os[i].rank; d++)
            n *= os[i].dims[d];
        outs[i] = malloc((size_t)n * 4 + 4);
    }
    const void *ins[1] = {in};
    if (engine_exec_run(e, ins, outs, err, sizeof err) == HLT_OK) {
        double scale = 1, d = 0;
        for (int64_t i = 0; i < n0; i++)
            scale = fmax(scale, fabs(ref[i]));
        for (int64_t i = 0; i < n0; i++)
            d = fmax(d, fabs((double)((float *)outs[0])[i] - ref[i]));
        worst = d / scale;
    }
    for (size_t i = 0; i < 4; i++)
        free(outs[i]);
done:
    engine_exec_destroy(e);
    free(in);
    free(ref);
    return worst;
}

/* ---- onnxruntime through Python --------------------------------------------------------- */

static const char ort_script[] =
    "import sys, time\n"
    "import numpy as np\n"
    "import onnxruntime as ort\n"
    "samples, target, wall = int(sys.argv[1]), float(sys.argv[2]) * 1e-3, sys.argv[3] == '1'\n"
    "clock = time.perf_counter if wall else time.thread_time\n"
    "so = ort.SessionOptions()\n"
    "so.intra_op_num_threads = 1\n"
    "so.inter_op_num_threads = 1\n"
    "so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL\n"
    "so.log_severity_level = 3\n"
    "rng = np.random.default_rng(1)\n"
    "for spec in sys.argv[4:]:\n"
    "    name, path, inp, cols, rows = spec.split(',')\n"
    "    sess = ort.InferenceSession(path, sess_options=so, providers=['CPUExecutionProvider'])\n"
    "    outs = [o.name for o in sess.get_outputs()]\n"
    "    for n in rows.split(':'):\n"
    "        x = rng.standard_normal((int(n), int(cols))).astype(np.float32)\n"
    "        feed = {inp: x}\n"
    "        sess.run(outs, feed)\n"
    "        t0 = clock(); k = 0\n"
    "        while clock() - t0 < 1e-3 or k < 1:\n"
    "            sess.run(outs, feed); k += 1\n"
    "        iters = max(1, int(target / ((clock() - t0) / k)))\n"
    "        obs = []\n"
    "        for s in range(samples):\n"
    "            a = clock()\n"
    "            for i in range(iters):\n"
    "                sess.run(outs, feed)\n"
    "            obs.append((clock() - a) / iters * 1e9)\n"
    "        obs.sort()\n"
    "        print('ort', name, n, obs[len(obs) // 2], obs[0], flush=True)\n";

#define MAX_ORT 32
static struct {
    char model[32];
    int64_t rows;
    double med, min;
} ort_res[MAX_ORT];
static int n_ort;

static void run_ort(const char *python, const char *dir)
{
    char script[] = "/tmp/engine_bench_ort_XXXXXX";
    const int fd = mkstemp(script);
    if (fd < 0)
        return;
    if (write(fd, ort_script, sizeof ort_script - 1) != (ssize_t)(sizeof ort_script - 1)) {
        close(fd);
        unlink(script);
        return;
    }
    close(fd);
    char cmd[4096];
    int len = snprintf(cmd, sizeof cmd, "taskset -c %d '%s' '%s' %d %g %d", sched_getcpu(),
                       python, script, g_samples, g_target_ms, g_wall ? 1 : 0);
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const model_t *m = &models[i];
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s,%s/%s/1/model.onnx,%s,%lld,",
                        m->name, dir, m->name, m->input, (long long)m->in_cols);
        for (int r = 0; r < m->n_rows; r++)
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, "%s%lld", r ? ":" : "",
                            (long long)m->rows[r]);
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, "'");
    }
    len += snprintf(cmd + len, sizeof cmd - (size_t)len, " 2>/dev/null");
    FILE *p = popen(cmd, "r");
    if (p) {
        char line[256];
        while (fgets(line, sizeof line, p) && n_ort < MAX_ORT) {
            long long rows;
            if (sscanf(line, "ort %31s %lld %lf %lf", ort_res[n_ort].model, &rows,
                       &ort_res[n_ort].med, &ort_res[n_ort].min) == 4) {
                ort_res[n_ort].rows = rows;
                n_ort++;
            }
        }
        pclose(p);
    }
    unlink(script);
}

static const double *ort_lookup(const char *model, int64_t rows)
{
    for (int i = 0; i < n_ort; i++)
        if (strcmp(ort_res[i].model, model) == 0 && ort_res[i].rows == rows)
            return &ort_res[i].med;
    return NULL;
}

/* ---- GEMM path sweep -------------------------------------------------------------------- */

/* Per shape, the same layer (C = relu(A op(B) + bias)) three ways: cpu_sgemm_packed (B packed
 * once, epilogue fused; when this build has it), cblas_sgemm + the bias/ReLU pass the engine
 * runs after it (cpu_bias_act_f32), and cpu_sgemm_small (the unpacked kernel cpu_sgemm uses for
 * m <= 2) + the same pass. */
typedef struct gemm_ctx {
    int how; /* 0 packed, 1 blas, 2 small */
    bool tb;
    int64_t m, n, k;
    const float *a, *b, *bias, *packed;
    float *c;
} gemm_ctx_t;

static void bias_relu(const gemm_ctx_t *g)
{
#ifdef CPU_GEMM_PACK_MAX_KN
    cpu_bias_act_f32(g->m, g->n, g->bias, CPU_ACT_RELU, 0.0f, g->c, g->n);
    return;
#endif
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++) {
            const float v = g->c[i * g->n + j] + g->bias[j];
            g->c[i * g->n + j] = v > 0.0f ? v : 0.0f;
        }
}

static void run_gemm(void *p)
{
    gemm_ctx_t *g = p;
    const int64_t ldb = g->tb ? g->k : g->n;
#ifdef CPU_GEMM_PACK_MAX_KN
    if (g->how == 0) {
        cpu_sgemm_packed(g->m, g->n, g->k, g->a, g->k, g->packed, CPU_ACT_RELU, 0.0f, g->c, g->n);
        return;
    }
#endif
    if (g->how == 2)
        cpu_sgemm_small(false, g->tb, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, ldb, 0.0f, g->c,
                        g->n);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                    (blasint)g->m, (blasint)g->n, (blasint)g->k, 1.0f, g->a, (blasint)g->k, g->b,
                    (blasint)ldb, 0.0f, g->c, (blasint)g->n);
    bias_relu(g);
}

static void gemm_sweep(void)
{
    static const int64_t kn[][2] = {{15, 36}, {36, 36}, {36, 1},   {64, 128}, {128, 64},
                                    {64, 32}, {32, 5},  {256, 256}, {512, 512}};
    static const int64_t ms[] = {1, 2, 4, 16, 64, 256, 1024, 16000};
#ifdef CPU_GEMM_PACK_MAX_KN
    const bool have_packed = true;
    printf("\n## Layer C = relu(A op(B) + bias): GFLOP/s, 1 thread, ISA %s\n\n",
           cpu_isa_name(cpu_gemm_isa()));
#else
    const bool have_packed = false;
    printf("\n## Layer C = relu(A op(B) + bias): GFLOP/s, 1 thread\n\n");
#endif
    printf("| op | k | n | m | packed | blas+epi | small+epi | blas/packed time | choose |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int tb = 1; tb >= 0; tb--)
        for (size_t s = 0; s < sizeof kn / sizeof kn[0]; s++)
            for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                const int64_t k = kn[s][0], n = kn[s][1], m = ms[mi];
                if (m * k * n > (int64_t)1 << 31)
                    continue;
                float *a = rnd_buf(m * k), *b = rnd_buf(k * n), *c = rnd_buf(m * n);
                float *bias = rnd_buf(n), *packed = NULL;
#ifdef CPU_GEMM_PACK_MAX_KN
                packed = aligned_alloc(64, cpu_sgemm_packed_floats(n, k) * sizeof(float));
                cpu_sgemm_pack(tb, n, k, 1.0f, b, tb ? k : n, bias, packed);
#endif
                gemm_ctx_t g = {0, tb, m, n, k, a, b, bias, packed, c};
                const double fl = 2.0 * (double)m * (double)n * (double)k;
                double t[3] = {0, 0, 0};
                for (int how = have_packed ? 0 : 1; how < 3; how++) {
                    g.how = how;
                    t[how] = time_fn(run_gemm, &g).median_ns;
                }
                char pk[32] = "-", ratio[32] = "-", choose[16] = "-";
                if (have_packed) {
                    snprintf(pk, sizeof pk, "%.2f", fl / t[0]);
                    snprintf(ratio, sizeof ratio, "%.2f", t[1] / t[0]);
#ifdef CPU_GEMM_PACK_MAX_KN
                    snprintf(choose, sizeof choose, "%s",
                             cpu_gemm_choose_packed(tb, m, n, k) == CPU_GEMM_BLAS ? "blas" : "packed");
#endif
                }
                printf("| %s | %lld | %lld | %lld | %s | %.2f | %.2f | %s | %s |\n", tb ? "NT" : "NN",
                       (long long)k, (long long)n, (long long)m, pk, fl / t[1], fl / t[2], ratio,
                       choose);
                fflush(stdout);
                free(a);
                free(b);
                free(c);
                free(bias);
                free(packed);
            }
}

/* ---- main ----------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *dir = ENGINE_BENCH_SOURCE_ROOT "/models";
    char python_buf[1024];
    snprintf(python_buf, sizeof python_buf, "%s/.venv/bin/python", ENGINE_BENCH_SOURCE_ROOT);
    const char *python = python_buf;
    bool sweep = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--models") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc)
            python = argv[++i];
        else if (strcmp(argv[i], "--no-ort") == 0)
            python = NULL;
        else if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc)
            g_samples = atoi(argv[++i]);
        else if (strcmp(argv[i], "--target-ms") == 0 && i + 1 < argc)
            g_target_ms = atof(argv[++i]);
        else if (strcmp(argv[i], "--gemm") == 0)
            sweep = true;
        else if (strcmp(argv[i], "--wall") == 0)
            g_wall = true;
#ifdef CPU_GEMM_PACK_MAX_KN
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            cpu_gemm_set_isa(strcmp(v, "avx512") == 0 ? CPU_ISA_AVX512
                             : strcmp(v, "avx2") == 0 ? CPU_ISA_AVX2
                             : strcmp(v, "baseline") == 0 ? CPU_ISA_BASELINE
                                                          : CPU_ISA_AUTO);
        }
#endif
        else {
            fprintf(stderr,
                    "usage: %s [--models DIR] [--python PATH | --no-ort] [--samples S] "
                    "[--target-ms T] [--gemm] [--wall] [--isa avx512|avx2|baseline]\n",
                    argv[0]);
            return 2;
        }
    }
    if (g_samples < 1)
        g_samples = 1;
    /* One core, like a server instance worker; OpenBLAS single-threaded. */
    cpu_set_t set;
    CPU_ZERO(&set);
    const int cpu = sched_getcpu();
    CPU_SET(cpu >= 0 ? cpu : 0, &set);
    sched_setaffinity(0, sizeof set, &set);
    openblas_set_num_threads(1);

    if (python && access(python, X_OK) == 0)
        run_ort(python, dir);

    char blas_msg[256];
    cpu_blas_check(blas_msg, sizeof blas_msg);
#ifdef CPU_GEMM_PACK_MAX_KN
    printf("# engine_bench: %s; packed kernel %s; cpu %d; %d samples of ~%g ms %s time, "
           "median\n\n",
           blas_msg, cpu_isa_name(cpu_gemm_isa()), cpu, g_samples, g_target_ms,
           g_wall ? "wall" : "thread CPU");
#else
    printf("# engine_bench: %s; cpu %d; %d samples of ~%g ms %s time, median\n\n", blas_msg,
           cpu, g_samples, g_target_ms, g_wall ? "wall" : "thread CPU");
#endif
    printf("| model | N | engine us | ns/row | GFLOP/s | blas-only us | GFLOP/s | ort us | "
           "engine/blas | engine/ort |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        const model_t *m = &models[mi];
        char path[1024], err[512];
        snprintf(path, sizeof path, "%s/%s/1/model.onnx", dir, m->name);
        engine_graph_t *g = NULL;
        if (engine_graph_load_file(path, &g, err, sizeof err) != HLT_OK) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        const double fpr = flop_per_row(m);
        for (int r = 0; r < m->n_rows; r++) {
            const int64_t rows = m->rows[r];
            eng_ctx_t c = {0};
            if (engine_exec_create(g, &c.e, err, sizeof err) != HLT_OK) {
                fprintf(stderr, "create: %s\n", err);
                return 1;
            }
            engine_shape_t s = {2, {rows, m->in_cols}}, os[4];
            if (engine_exec_prepare(c.e, &s, os, err, sizeof err) != HLT_OK) {
                fprintf(stderr, "prepare: %s\n", err);
                return 1;
            }
            float *x = rnd_buf(rows * m->in_cols);
            c.in[0] = x;
            for (size_t o = 0; o < engine_graph_num_outputs(g) && o < 4; o++) {
                int64_t n = 1;
                for (int32_t d = 0; d < os[o].rank; d++)
                    n *= os[o].dims[d];
                c.out[o] = rnd_buf(n);
            }
            const timing_t te = time_fn(run_engine, &c);

            blas_ctx_t b = {.m = m, .rows = rows};
            b.act[0] = x;
            for (int l = 0; l < m->n_layers; l++) {
                b.w[l] = rnd_buf(m->layers[l].k * m->layers[l].n);
                for (int64_t q = 0; q < m->layers[l].k * m->layers[l].n; q++)
                    b.w[l][q] *= 0.2f;
                b.act[l + 1] = rnd_buf(rows * m->layers[l].n);
            }
            const timing_t tb = time_fn(run_blas, &b);
            const double *ort = ort_lookup(m->name, rows);
            char ort_s[32] = "-", ratio_s[32] = "-";
            if (ort) {
                snprintf(ort_s, sizeof ort_s, "%.2f", *ort / 1e3);
                snprintf(ratio_s, sizeof ratio_s, "%.2f", te.median_ns / *ort);
            }
            printf("| %s | %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %.2f | %s |\n", m->name,
                   (long long)rows, te.median_ns / 1e3, te.median_ns / (double)rows,
                   fpr * (double)rows / te.median_ns, tb.median_ns / 1e3,
                   fpr * (double)rows / tb.median_ns, ort_s, te.median_ns / tb.median_ns,
                   ratio_s);
            fflush(stdout);
            for (int l = 0; l < m->n_layers; l++) {
                free(b.w[l]);
                free(b.act[l + 1]);
            }
            for (int o = 0; o < 4; o++)
                free(c.out[o]);
            free(x);
            engine_exec_destroy(c.e);
        }
        const double chk = check_reference(dir, m, g);
        printf("| %s | check %s | max err / scale = %.2e | | | | | | | |\n", m->name, m->ref_case,
               chk);
        engine_graph_destroy(g);
    }
    if (sweep)
        gemm_sweep();
    return 0;
}
