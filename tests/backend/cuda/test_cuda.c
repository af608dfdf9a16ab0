/* CUDA backend (server/backend/cuda) against the CPU backend, the reference.
 *
 * Every test that needs a GPU asks the registry first and skips with the reason when the
 * backend reports no device (no driver, no GPU, module not loadable). On a GPU, each op runs
 * as a one-node graph (tests/engine/test_util.h builds it) on one CUDA instance and one CPU
 * instance, over a sequence of batch sizes that exercises the paths of the backend: batch 1,
 * odd sizes, and 4096 / 4099 / 16000 rows that split into chunks (4099: a shorter last chunk)
 * pipelined over two streams; the
 * sequence goes back and forth so plans, captured graphs and grown buffers are reused and
 * replaced. Each CUDA execution runs twice (the second replays a captured CUDA graph) into
 * outputs poisoned with NaN. Tolerance: |cuda - cpu| <= 1e-4 |cpu| + 1e-5 for FP32, equality
 * for INT64. The example models run against their references in models/<m>/reference. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "test_util.h"

#define REL 1e-4
#define ABS 1e-5
#define MAX_IO 4

static const int64_t BATCHES[] = {1, 7, 4096, 16000, 7, 16000, 1, 4099};
#define N_BATCHES (sizeof BATCHES / sizeof BATCHES[0])
static const int64_t SMALL[] = {1, 7, 64, 3};

static model_config_t cfg = {.name = "cuda_test"};

static const backend_i *cuda_or_skip(void)
{
    const backend_i *b = backend_find("cuda");
    char reason[256] = "";
    if (!b) {
        char all[1024];
        backend_describe_all(all, sizeof all);
        cr_skip_test("CUDA backend not available: %s", all);
    }
    if (backend_devices(b, reason, sizeof reason) <= 0)
        cr_skip_test("no CUDA device: %s", reason);
    return b;
}

static backend_instance_t *create(const backend_i *b, const engine_graph_t *g)
{
    backend_model_t bm = {g, &cfg, NULL};
    backend_instance_t *inst = NULL;
    char err[512] = "";
    hlt_status st = b->instance_create(0, &bm, &inst, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s instance_create: %s", b->name, err);
    return inst;
}

static engine_graph_t *load(mb_t *m)
{
    engine_graph_t *g = NULL;
    char err[512] = "";
    hlt_status st = mb_load(m, &g, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "load: %s", err);
    mb_free(m);
    return g;
}

static float *rnd(uint64_t *s, int64_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    cr_assert_not_null(x);
    tu_fill(s, x, n, lo, hi);
    return x;
}

static size_t bytes_of(hlt_dtype t, const engine_shape_t *s)
{
    return (size_t)tu_numel(s) * hlt_dtype_size(t);
}

static void check_close(const char *what, const float *got, const float *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= REL * fabs((double)want[i]) + ABS))
            cr_assert_fail("%s: element %lld is %.9g, expected %.9g", what, (long long)i,
                           (double)got[i], (double)want[i]);
    }
}

static void compare(const char *what, hlt_dtype t, const void *got, const void *want, size_t bytes)
{
    if (t == HLT_TYPE_FP32)
        check_close(what, got, want, (int64_t)(bytes / sizeof(float)));
    else
        cr_assert(memcmp(got, want, bytes) == 0, "%s: INT64 results differ", what);
}

typedef struct pair {
    const backend_i *gpu, *cpu;
    backend_instance_t *gi, *ci;
    engine_graph_t *g;
    bool pinned; /* CUDA inputs/outputs from the backend's host_alloc */
} pair_t;

static pair_t pair_new(engine_graph_t *g)
{
    pair_t p = {.gpu = cuda_or_skip(), .cpu = &backend_cpu, .g = g};
    p.gi = create(p.gpu, g);
    p.ci = create(p.cpu, g);
    return p;
}

static void pair_free(pair_t *p)
{
    p->gpu->instance_destroy(p->gi);
    p->cpu->instance_destroy(p->ci);
    engine_graph_destroy(p->g);
}

/* One batch through both backends; CUDA twice. Inputs uniform in [lo, hi) (INT64: integers in
 * [-5, 5]). */
static void run_both(pair_t *p, const engine_shape_t *in_shapes, float lo, float hi, uint64_t seed,
                     const char *name)
{
    const size_t n_in = engine_graph_num_inputs(p->g), n_out = engine_graph_num_outputs(p->g);
    void *in[MAX_IO] = {0}, *want[MAX_IO] = {0}, *got[MAX_IO] = {0};
    engine_shape_t gs[MAX_IO], cs[MAX_IO];
    char err[512] = "", what[256];
    cr_assert(n_in <= MAX_IO && n_out <= MAX_IO);
    for (size_t i = 0; i < n_in; i++) {
        const hlt_dtype t = engine_graph_input(p->g, i)->dtype;
        const size_t bytes = bytes_of(t, &in_shapes[i]);
        in[i] = p->pinned ? backend_host_alloc(p->gpu, p->gi, bytes) : malloc(bytes ? bytes : 1);
        cr_assert_not_null(in[i]);
        if (t == HLT_TYPE_INT64)
            for (size_t k = 0; k < bytes / 8; k++)
                ((int64_t *)in[i])[k] = (int64_t)tu_rand(&seed, -5.0f, 6.0f) - (k % 2);
        else
            tu_fill(&seed, in[i], (int64_t)(bytes / 4), lo, hi);
    }
    hlt_status st = p->cpu->prepare(p->ci, in_shapes, cs, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s: cpu prepare: %s", name, err);
    st = p->gpu->prepare(p->gi, in_shapes, gs, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s: cuda prepare: %s", name, err);
    for (size_t i = 0; i < n_out; i++) {
        const hlt_dtype t = engine_graph_output(p->g, i)->dtype;
        cr_assert(gs[i].rank == cs[i].rank && tu_numel(&gs[i]) == tu_numel(&cs[i]),
                  "%s: output %zu shape differs", name, i);
        const size_t bytes = bytes_of(t, &cs[i]);
        want[i] = malloc(bytes ? bytes : 1);
        got[i] = p->pinned ? backend_host_alloc(p->gpu, p->gi, bytes) : malloc(bytes ? bytes : 1);
        cr_assert(want[i] && got[i]);
    }
    st = p->cpu->execute(p->ci, (const void *const *)in, want, NULL, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s: cpu execute: %s", name, err);
    for (int rep = 0; rep < 2; rep++) {
        for (size_t i = 0; i < n_out; i++)
            memset(got[i], 0xff, bytes_of(engine_graph_output(p->g, i)->dtype, &cs[i]));
        backend_timing_t tm = {-1, -1, -1};
        st =
            p->gpu->execute(p->gi, (const void *const *)in, got, rep ? &tm : NULL, err, sizeof err);
        cr_assert_eq(st, HLT_OK, "%s: cuda execute: %s", name, err);
        if (rep)
            cr_assert(tm.upload_ns >= 0 && tm.compute_ns >= 0 && tm.download_ns >= 0,
                      "%s: timing not filled", name);
        for (size_t i = 0; i < n_out; i++) {
            const hlt_dtype t = engine_graph_output(p->g, i)->dtype;
            snprintf(what, sizeof what, "%s batch %lld output %zu (run %d)", name,
                     in_shapes[0].rank ? (long long)in_shapes[0].dims[0] : 0LL, i, rep);
            compare(what, t, got[i], want[i], bytes_of(t, &cs[i]));
        }
    }
    for (size_t i = 0; i < n_in; i++)
        p->pinned ? backend_host_free(p->gpu, p->gi, in[i]) : free(in[i]);
    for (size_t i = 0; i < n_out; i++) {
        free(want[i]);
        p->pinned ? backend_host_free(p->gpu, p->gi, got[i]) : free(got[i]);
    }
}

/* Runs g over the batch sizes: every -1 in an input's dims becomes the batch. A graph without
 * -1 runs once. */
static void check_graph(engine_graph_t *g, const engine_shape_t *tmpl, const int64_t *batches,
                        size_t n_batches, float lo, float hi, const char *name)
{
    pair_t p = pair_new(g);
    const size_t n_in = engine_graph_num_inputs(g);
    bool has_batch = false;
    for (size_t i = 0; i < n_in; i++)
        for (int32_t k = 0; k < tmpl[i].rank; k++)
            has_batch |= tmpl[i].dims[k] < 0;
    for (size_t b = 0; b < (has_batch ? n_batches : 1); b++) {
        engine_shape_t s[MAX_IO];
        for (size_t i = 0; i < n_in; i++) {
            s[i] = tmpl[i];
            for (int32_t k = 0; k < s[i].rank; k++)
                if (s[i].dims[k] < 0)
                    s[i].dims[k] = batches[b];
        }
        run_both(&p, s, lo, hi, 1000 + b, name);
    }
    pair_free(&p);
}

static engine_shape_t shp(int32_t rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    engine_shape_t s = {.rank = rank, .dims = {d0, d1, d2, d3}};
    return s;
}

/* ---- graph builders ---------------------------------------------------------------------- */

static void init_rand(mb_t *m, const char *name, int32_t rank, const int64_t *dims, uint64_t *s,
                      float lo, float hi)
{
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++)
        n *= dims[i];
    float *w = rnd(s, n, lo, hi);
    mb_init_f32(m, name, rank, dims, w, false);
    free(w);
}

/* One node "op" reading inputs X (and Y) of the given shapes (-1: the batch), output Z. */
static mb_t *one_node(int64_t opset, const char *op, int32_t type, int32_t rx, const int64_t *dx,
                      int32_t ry, const int64_t *dy, const char *inputs, Onnx__NodeProto **node)
{
    mb_t *m = mb_new(opset);
    mb_input(m, "X", type, rx, dx);
    if (ry >= 0)
        mb_input(m, "Y", type, ry, dy);
    *node = mb_node(m, op, "n", inputs, "Z");
    mb_output(m, "Z", type, -1, NULL);
    return m;
}

/* ---- tests ------------------------------------------------------------------------------- */

Test(cuda, probe_reports_devices_or_a_reason)
{
    const backend_i *b = backend_find("cuda");
    if (!b)
        cr_skip_test("the CUDA module cannot be loaded here");
    char reason[256] = "";
    const int n = backend_devices(b, reason, sizeof reason);
    if (n == 0) {
        cr_assert(strstr(reason, "CUDA") != NULL, "reason '%s' should name CUDA", reason);
        return;
    }
    backend_device_info_t info;
    b->device_info(0, &info);
    cr_assert(info.name[0] && info.kind == BACKEND_DEVICE_GPU);
    cr_assert(info.memory_bytes > 0 && info.compute_units > 0);
}

Test(cuda, refuses_bitstream_models)
{
    const backend_i *b = backend_find("cuda");
    if (!b)
        cr_skip_test("the CUDA module cannot be loaded here");
    backend_model_t bm = {NULL, &cfg, "model.xclbin"};
    backend_instance_t *inst = NULL;
    char err[256] = "";
    cr_assert_eq(b->instance_create(0, &bm, &inst, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "cuda_test") != NULL, "%s", err);
}

Test(cuda, gemm_matches_cpu, .timeout = 300)
{
    struct {
        int64_t k, n;
        bool ta, tb;
        float alpha, beta;
        int32_t c_rank;
        int64_t cd[2];
    } cases[] = {
        {15, 36, false, true, 1.0f, 1.0f, 1, {36}},  /* facile's first layer */
        {36, 36, false, false, 1.0f, 0.0f, -1, {0}}, /* no C */
        {36, 1, false, true, 1.0f, 1.0f, 1, {1}},
        {33, 17, false, false, 0.5f, 2.0f, 2, {1, 17}},
        {64, 128, false, false, 1.0f, 1.0f, 0, {0}},
        {13, 9, true, false, 1.0f, 1.0f, 2, {1, 9}}, /* transA: batch is M, not splittable */
    };
    uint64_t s = 7;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mb_t *m = mb_new(13);
        const int64_t ad[2] = {cases[c].ta ? cases[c].k : -1, cases[c].ta ? -1 : cases[c].k};
        const int64_t bd[2] = {cases[c].tb ? cases[c].n : cases[c].k,
                               cases[c].tb ? cases[c].k : cases[c].n};
        mb_input(m, "A", TU_FLOAT, 2, ad);
        init_rand(m, "B", 2, bd, &s, -1, 1);
        if (cases[c].c_rank >= 0)
            init_rand(m, "C", cases[c].c_rank, cases[c].cd, &s, -1, 1);
        Onnx__NodeProto *n =
            mb_node(m, "Gemm", "gemm", cases[c].c_rank >= 0 ? "A,B,C" : "A,B", "Y");
        mb_attr_float(n, "alpha", cases[c].alpha);
        mb_attr_float(n, "beta", cases[c].beta);
        mb_attr_int(n, "transA", cases[c].ta);
        mb_attr_int(n, "transB", cases[c].tb);
        mb_output(m, "Y", TU_FLOAT, -1, NULL);
        const engine_shape_t t = shp(2, ad[0], ad[1], 0, 0);
        char name[64];
        snprintf(name, sizeof name, "gemm case %zu", c);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, name);
    }
    /* Fixed shapes with a full C and a per-row C. */
    for (int full = 0; full < 2; full++) {
        mb_t *m = mb_new(13);
        const int64_t ad[2] = {7, 13}, bd[2] = {13, 5}, cd[2] = {7, full ? 5 : 1};
        mb_input(m, "A", TU_FLOAT, 2, ad);
        init_rand(m, "B", 2, bd, &s, -1, 1);
        init_rand(m, "C", 2, cd, &s, -1, 1);
        mb_node(m, "Gemm", "gemm", "A,B,C", "Y");
        mb_output(m, "Y", TU_FLOAT, -1, NULL);
        const engine_shape_t t = shp(2, 7, 13, 0, 0);
        check_graph(load(m), &t, BATCHES, 1, -1, 1, full ? "gemm C [m,n]" : "gemm C [m,1]");
    }
}

Test(cuda, matmul_matches_cpu, .timeout = 300)
{
    uint64_t s = 11;
    Onnx__NodeProto *n;
    { /* [N,64] x [64,128] */
        const int64_t xd[2] = {-1, 64}, wd[2] = {64, 128};
        mb_t *m = one_node(13, "MatMul", TU_FLOAT, 2, xd, -1, NULL, "X,W", &n);
        init_rand(m, "W", 2, wd, &s, -1, 1);
        const engine_shape_t t = shp(2, -1, 64, 0, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "matmul 2d");
    }
    { /* [N,5,7] x [7,3]: one GEMM over all rows */
        const int64_t xd[3] = {-1, 5, 7}, wd[2] = {7, 3};
        mb_t *m = one_node(13, "MatMul", TU_FLOAT, 3, xd, -1, NULL, "X,W", &n);
        init_rand(m, "W", 2, wd, &s, -1, 1);
        const engine_shape_t t = shp(3, -1, 5, 7, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "matmul 3d x 2d");
    }
    { /* [N,2,3,4] x [2,4,5]: batched B broadcast over N */
        const int64_t xd[4] = {-1, 2, 3, 4}, wd[3] = {2, 4, 5};
        mb_t *m = one_node(13, "MatMul", TU_FLOAT, 4, xd, -1, NULL, "X,W", &n);
        init_rand(m, "W", 3, wd, &s, -1, 1);
        const engine_shape_t t = shp(4, -1, 2, 3, 4);
        check_graph(load(m), &t, SMALL, 4, -1, 1, "matmul batched B");
    }
    { /* [N,3,4] x [N,4,2]: both inputs, strided batched */
        const int64_t xd[3] = {-1, 3, 4}, yd[3] = {-1, 4, 2};
        mb_t *m = one_node(13, "MatMul", TU_FLOAT, 3, xd, 3, yd, "X,Y", &n);
        const engine_shape_t t[2] = {shp(3, -1, 3, 4, 0), shp(3, -1, 4, 2, 0)};
        check_graph(load(m), t, BATCHES, N_BATCHES, -1, 1, "matmul both batched");
    }
    { /* [N,6] x [6] -> [N] */
        const int64_t xd[2] = {-1, 6}, wd[1] = {6};
        mb_t *m = one_node(13, "MatMul", TU_FLOAT, 2, xd, -1, NULL, "X,W", &n);
        init_rand(m, "W", 1, wd, &s, -1, 1);
        const engine_shape_t t = shp(2, -1, 6, 0, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "matmul x vector");
    }
}

Test(cuda, binary_ops_broadcast_like_cpu, .timeout = 300)
{
    const char *ops[] = {"Add", "Sub", "Mul", "Div"};
    uint64_t s = 13;
    Onnx__NodeProto *n;
    for (int o = 0; o < 4; o++) {
        const int64_t xd[2] = {-1, 33}, cd[2] = {-1, 1};
        mb_t *m = one_node(13, ops[o], TU_FLOAT, 2, xd, 2, xd, "X,Y", &n);
        const engine_shape_t t[2] = {shp(2, -1, 33, 0, 0), shp(2, -1, 33, 0, 0)};
        check_graph(load(m), t, BATCHES, N_BATCHES, 0.5f, 2.0f, ops[o]);
        m = one_node(13, ops[o], TU_FLOAT, 2, xd, 2, cd, "X,Y", &n);
        const engine_shape_t t2[2] = {shp(2, -1, 33, 0, 0), shp(2, -1, 1, 0, 0)};
        check_graph(load(m), t2, SMALL, 4, 0.5f, 2.0f, "column broadcast");
    }
    { /* bias row, constant first operand, scalar, 3-D broadcast */
        const int64_t xd[2] = {-1, 33}, bd[1] = {33}, rd[2] = {1, 33}, x3[3] = {-1, 1, 5},
                      c3[2] = {3, 1};
        mb_t *m = one_node(13, "Add", TU_FLOAT, 2, xd, -1, NULL, "X,B", &n);
        init_rand(m, "B", 1, bd, &s, -1, 1);
        const engine_shape_t t = shp(2, -1, 33, 0, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "bias add");
        m = one_node(13, "Sub", TU_FLOAT, 2, xd, -1, NULL, "B,X", &n);
        init_rand(m, "B", 2, rd, &s, -1, 1);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "constant minus batch");
        m = one_node(13, "Div", TU_FLOAT, 2, xd, -1, NULL, "X,B", &n);
        init_rand(m, "B", 0, NULL, &s, 0.5f, 2);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "divide by scalar");
        m = one_node(13, "Mul", TU_FLOAT, 3, x3, -1, NULL, "X,B", &n);
        init_rand(m, "B", 2, c3, &s, -1, 1);
        const engine_shape_t t3 = shp(3, -1, 1, 5, 0);
        check_graph(load(m), &t3, BATCHES, N_BATCHES, -1, 1, "3-D broadcast");
    }
    { /* INT64, with division by zero */
        const int64_t xd[2] = {-1, 6};
        for (int o = 0; o < 4; o++) {
            mb_t *m = one_node(13, ops[o], TU_INT64, 2, xd, 2, xd, "X,Y", &n);
            const engine_shape_t t[2] = {shp(2, -1, 6, 0, 0), shp(2, -1, 6, 0, 0)};
            check_graph(load(m), t, BATCHES, N_BATCHES, 0, 0, "int64");
        }
    }
}

Test(cuda, activations_match_cpu, .timeout = 300)
{
    const char *ops[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh"};
    Onnx__NodeProto *n;
    for (int o = 0; o < 4; o++) {
        const int64_t xd[2] = {-1, 33};
        mb_t *m = one_node(13, ops[o], TU_FLOAT, 2, xd, -1, NULL, "X", &n);
        if (o == 1)
            mb_attr_float(n, "alpha", 0.2f);
        const engine_shape_t t = shp(2, -1, 33, 0, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -10, 10, ops[o]);
    }
}

Test(cuda, softmax_both_semantics, .timeout = 300)
{
    struct {
        int64_t opset, axis;
        int32_t rank;
        int64_t d[3];
        const int64_t *batches;
        size_t nb;
    } cases[] = {
        {13, -1, 2, {-1, 5}, BATCHES, N_BATCHES},   /* jet_tagger's */
        {13, 1, 3, {-1, 4, 6}, BATCHES, N_BATCHES}, /* inner > 1 */
        {11, 1, 3, {-1, 3, 4}, BATCHES, N_BATCHES}, /* opset < 13: 2-D coercion */
        {13, 0, 2, {-1, 5}, BATCHES, N_BATCHES},    /* across the batch: one chunk */
        {13, -1, 2, {-1, 1000}, SMALL, 4},          /* long rows */
    };
    Onnx__NodeProto *n;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mb_t *m = one_node(cases[c].opset, "Softmax", TU_FLOAT, cases[c].rank, cases[c].d, -1, NULL,
                           "X", &n);
        mb_attr_int(n, "axis", cases[c].axis);
        const engine_shape_t t = shp(cases[c].rank, -1, cases[c].d[1], cases[c].d[2], 0);
        char name[64];
        snprintf(name, sizeof name, "softmax case %zu", c);
        check_graph(load(m), &t, cases[c].batches, cases[c].nb, -8, 8, name);
    }
}

Test(cuda, batchnorm_matches_cpu, .timeout = 300)
{
    uint64_t s = 17;
    for (int r = 2; r <= 3; r++) {
        const int64_t xd[3] = {-1, r == 2 ? 36 : 3, 5}, pd[1] = {xd[1]};
        mb_t *m = mb_new(13);
        mb_input(m, "X", TU_FLOAT, r, xd);
        init_rand(m, "scale", 1, pd, &s, 0.5f, 2);
        init_rand(m, "B", 1, pd, &s, -1, 1);
        init_rand(m, "mean", 1, pd, &s, -1, 1);
        init_rand(m, "var", 1, pd, &s, 0.1f, 2);
        Onnx__NodeProto *n = mb_node(m, "BatchNormalization", "bn", "X,scale,B,mean,var", "Z");
        mb_attr_float(n, "epsilon", 1e-3f);
        mb_output(m, "Z", TU_FLOAT, -1, NULL);
        const engine_shape_t t = shp(r, -1, xd[1], 5, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -3, 3,
                    r == 2 ? "batchnorm 2d" : "batchnorm 3d");
    }
    { /* the scale is an input: coefficients computed on the device per run */
        const int64_t xd[2] = {-1, 12}, pd[1] = {12};
        mb_t *m = mb_new(13);
        mb_input(m, "X", TU_FLOAT, 2, xd);
        mb_input(m, "scale", TU_FLOAT, 1, pd);
        init_rand(m, "B", 1, pd, &s, -1, 1);
        init_rand(m, "mean", 1, pd, &s, -1, 1);
        init_rand(m, "var", 1, pd, &s, 0.1f, 2);
        mb_node(m, "BatchNormalization", "bn", "X,scale,B,mean,var", "Z");
        mb_output(m, "Z", TU_FLOAT, -1, NULL);
        const engine_shape_t t[2] = {shp(2, -1, 12, 0, 0), shp(1, 12, 0, 0, 0)};
        check_graph(load(m), t, BATCHES, N_BATCHES, 0.5f, 2, "batchnorm, scale an input");
    }
}

Test(cuda, transpose_and_concat, .timeout = 300)
{
    Onnx__NodeProto *n;
    { /* keeps the batch first: splittable */
        const int64_t xd[3] = {-1, 3, 5}, perm[3] = {0, 2, 1};
        mb_t *m = one_node(13, "Transpose", TU_FLOAT, 3, xd, -1, NULL, "X", &n);
        mb_attr_ints(n, "perm", 3, perm);
        const engine_shape_t t = shp(3, -1, 3, 5, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "transpose 021");
        m = one_node(13, "Transpose", TU_INT64, 3, xd, -1, NULL, "X", &n);
        mb_attr_ints(n, "perm", 3, perm);
        check_graph(load(m), &t, BATCHES, N_BATCHES, 0, 0, "transpose int64");
    }
    { /* default perm moves the batch last: one chunk */
        const int64_t xd[2] = {-1, 7};
        mb_t *m = one_node(13, "Transpose", TU_FLOAT, 2, xd, -1, NULL, "X", &n);
        const engine_shape_t t = shp(2, -1, 7, 0, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -1, 1, "transpose default");
    }
    struct {
        int64_t axis;
        int32_t rank;
        int64_t a[3], b[3];
        int32_t type;
    } cases[] = {
        {1, 2, {-1, 3}, {-1, 5}, TU_FLOAT},
        {-1, 3, {-1, 2, 3}, {-1, 2, 4}, TU_FLOAT},
        {0, 2, {-1, 4}, {-1, 4}, TU_FLOAT}, /* along the batch: one chunk */
        {1, 2, {-1, 2}, {-1, 3}, TU_INT64},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mb_t *m = one_node(13, "Concat", cases[c].type, cases[c].rank, cases[c].a, cases[c].rank,
                           cases[c].b, "X,Y", &n);
        mb_attr_int(n, "axis", cases[c].axis);
        const engine_shape_t t[2] = {shp(cases[c].rank, -1, cases[c].a[1], cases[c].a[2], 0),
                                     shp(cases[c].rank, -1, cases[c].b[1], cases[c].b[2], 0)};
        char name[64];
        snprintf(name, sizeof name, "concat case %zu", c);
        check_graph(load(m), t, BATCHES, N_BATCHES, -1, 1, name);
    }
}

Test(cuda, views_alias_without_copies, .timeout = 300)
{
    { /* Flatten -> Relu -> Reshape [0,2,8] -> Unsqueeze [1] -> Squeeze [1] -> Sigmoid */
        mb_t *m = mb_new(13);
        const int64_t xd[3] = {-1, 4, 4}, sd[1] = {3}, sv[3] = {0, 2, 8}, ad[1] = {1}, av[1] = {1};
        mb_input(m, "X", TU_FLOAT, 3, xd);
        mb_init_i64(m, "shape", 1, sd, sv, false);
        mb_init_i64(m, "axes", 1, ad, av, false);
        mb_attr_int(mb_node(m, "Flatten", "f", "X", "a"), "axis", 1);
        mb_node(m, "Relu", "r", "a", "b");
        mb_node(m, "Reshape", "rs", "b,shape", "c");
        mb_node(m, "Unsqueeze", "u", "c,axes", "d");
        mb_node(m, "Squeeze", "sq", "d,axes", "e");
        mb_node(m, "Sigmoid", "s", "e", "Z");
        mb_output(m, "Z", TU_FLOAT, -1, NULL);
        const engine_shape_t t = shp(3, -1, 4, 4, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -3, 3, "view chain");
    }
    { /* the output is the input itself */
        Onnx__NodeProto *n;
        const int64_t xd[2] = {-1, 9};
        mb_t *m = one_node(13, "Identity", TU_FLOAT, 2, xd, -1, NULL, "X", &n);
        const engine_shape_t t = shp(2, -1, 9, 0, 0);
        check_graph(load(m), &t, BATCHES, N_BATCHES, -3, 3, "identity");
    }
}

/* ---- example models ---------------------------------------------------------------------- */

static const char *source_root(void)
{
    const char *r = getenv("HLT_SOURCE_ROOT");
    return r && *r ? r : HLT_TEST_SOURCE_ROOT;
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)n + 1);
    cr_assert(p && fread(p, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static engine_graph_t *load_model(const char *model)
{
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/models/%s/1/model.onnx", source_root(), model);
    engine_graph_t *g = NULL;
    cr_assert_eq(engine_graph_load_file(path, &g, err, sizeof err), HLT_OK, "%s", err);
    return g;
}

/* One reference case through a prepared CUDA instance. */
static void check_reference(const backend_i *b, backend_instance_t *inst, const engine_graph_t *g,
                            const char *model, const char *ref)
{
    char dir[1024], path[1280], err[512] = "";
    snprintf(dir, sizeof dir, "%s/models/%s/reference", source_root(), model);
    snprintf(path, sizeof path, "%s/%s.json", dir, ref);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root, "%s: %s", path, je.text);
    json_t *ins = json_object_get(root, "inputs"), *outs = json_object_get(root, "outputs");
    const size_t n_in = engine_graph_num_inputs(g), n_out = engine_graph_num_outputs(g);
    cr_assert(json_array_size(ins) == n_in && json_array_size(outs) == n_out);
    engine_shape_t s[MAX_IO], os[MAX_IO];
    void *in[MAX_IO], *got[MAX_IO];
    for (size_t i = 0; i < n_in; i++) {
        json_t *e = json_array_get(ins, i), *sh = json_object_get(e, "shape");
        s[i].rank = (int32_t)json_array_size(sh);
        for (int32_t k = 0; k < s[i].rank; k++)
            s[i].dims[k] = json_integer_value(json_array_get(sh, (size_t)k));
        snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(e, "file")));
        size_t len;
        in[i] = read_file(path, &len);
        cr_assert_eq(len, bytes_of(HLT_TYPE_FP32, &s[i]));
    }
    cr_assert_eq(b->prepare(inst, s, os, err, sizeof err), HLT_OK, "%s", err);
    for (size_t i = 0; i < n_out; i++) {
        got[i] = malloc(bytes_of(HLT_TYPE_FP32, &os[i]));
        memset(got[i], 0xff, bytes_of(HLT_TYPE_FP32, &os[i]));
    }
    for (int rep = 0; rep < 2; rep++) {
        cr_assert_eq(b->execute(inst, (const void *const *)in, got, NULL, err, sizeof err), HLT_OK,
                     "%s", err);
        for (size_t i = 0; i < n_out; i++) {
            json_t *e = json_array_get(outs, i);
            snprintf(path, sizeof path, "%s/%s", dir,
                     json_string_value(json_object_get(e, "file")));
            size_t len;
            float *want = read_file(path, &len);
            cr_assert_eq(len, bytes_of(HLT_TYPE_FP32, &os[i]), "%s %s: output size", model, ref);
            char what[256];
            snprintf(what, sizeof what, "%s %s %s", model, ref,
                     json_string_value(json_object_get(e, "name")));
            check_close(what, got[i], want, (int64_t)(len / 4));
            free(want);
        }
    }
    for (size_t i = 0; i < n_in; i++)
        free(in[i]);
    for (size_t i = 0; i < n_out; i++)
        free(got[i]);
    json_decref(root);
}

static void check_model(const char *model, const char *const *refs, size_t n_refs)
{
    const backend_i *b = cuda_or_skip();
    engine_graph_t *g = load_model(model);
    backend_instance_t *inst = create(b, g);
    for (int pass = 0; pass < 2; pass++) /* twice: the second replays captured graphs */
        for (size_t r = 0; r < n_refs; r++)
            check_reference(b, inst, g, model, refs[r]);
    b->instance_destroy(inst);
    /* Sizes without a reference: against the CPU backend. */
    const engine_tensor_desc_t *d = engine_graph_input(g, 0);
    engine_shape_t t = {.rank = d->rank};
    memcpy(t.dims, d->dims, sizeof t.dims);
    t.dims[0] = -1;
    const int64_t big[] = {256, 4096, 16000, 1, 16000};
    check_graph(g, &t, big, 5, -2, 2, model);
}

Test(cuda, facile_matches_reference, .timeout = 300)
{
    const char *refs[] = {"n1", "n7", "n16000"};
    check_model("facile", refs, 3);
}

Test(cuda, jet_tagger_matches_reference, .timeout = 300)
{
    const char *refs[] = {"batch1", "batch3", "batch64"};
    check_model("jet_tagger", refs, 3);
}

/* ---- execution paths and knobs ----------------------------------------------------------- */

static void jet_tagger_vs_cpu(bool pinned)
{
    engine_graph_t *g = load_model("jet_tagger");
    pair_t p = pair_new(g);
    p.pinned = pinned;
    const int64_t batches[] = {16000, 3, 4096, 16000};
    for (size_t b = 0; b < 4; b++) {
        const engine_shape_t s = shp(2, batches[b], 64, 0, 0);
        run_both(&p, &s, -2, 2, 77 + b, "jet_tagger");
    }
    pair_free(&p);
}

Test(cuda, pinned_buffers_skip_staging, .timeout = 300)
{
    jet_tagger_vs_cpu(true);
}

Test(cuda, forced_chunk_count, .timeout = 300)
{
    setenv("HLT_CUDA_CHUNKS", "5", 1);
    jet_tagger_vs_cpu(false);
}

Test(cuda, one_chunk_no_graphs, .timeout = 300)
{
    setenv("HLT_CUDA_MAX_CHUNKS", "1", 1);
    setenv("HLT_CUDA_GRAPHS", "0", 1);
    jet_tagger_vs_cpu(false);
}

Test(cuda, three_slots_many_chunks, .timeout = 300)
{
    setenv("HLT_CUDA_SLOTS", "3", 1);
    setenv("HLT_CUDA_CHUNKS", "37", 1);
    jet_tagger_vs_cpu(false);
}

Test(cuda, one_slot, .timeout = 300)
{
    setenv("HLT_CUDA_SLOTS", "1", 1);
    setenv("HLT_CUDA_CHUNKS", "4", 1);
    jet_tagger_vs_cpu(false);
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(cuda, errors_are_statuses, .timeout = 120)
{
    const backend_i *b = cuda_or_skip();
    engine_graph_t *g = load_model("facile");
    backend_instance_t *inst = create(b, g);
    char err[512] = "";
    float x[15] = {0}, y[1];
    const void *in[1] = {x};
    void *out[1] = {y};
    cr_assert_eq(b->execute(inst, in, out, NULL, err, sizeof err), HLT_FAILED_PRECONDITION);
    engine_shape_t s = shp(3, 1, 15, 1, 0), os[1];
    cr_assert_eq(b->prepare(inst, &s, os, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "input") != NULL, "%s", err);
    s = shp(2, 1, 14, 0, 0);
    cr_assert_eq(b->prepare(inst, &s, os, err, sizeof err), HLT_INVALID_ARGUMENT);
    s = shp(2, 1, 15, 0, 0);
    cr_assert_eq(b->prepare(inst, &s, os, err, sizeof err), HLT_OK, "%s", err);
    const void *none[1] = {NULL};
    cr_assert_eq(b->execute(inst, none, out, NULL, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert_eq(b->execute(inst, in, out, NULL, err, sizeof err), HLT_OK, "%s", err);
    b->instance_destroy(inst);
    b->instance_destroy(NULL);
    engine_graph_destroy(g);
}

/* ---- chains of dense layers in one kernel (HLT_CUDA_CHAINS=1, engine/fuse.h) ---------------- */

/* Both example models are one chain each; the chain kernel against the CPU at batch 1, odd and
 * full-size batches (jet_tagger's logits output included), whole and split into chunks. */
static void chains_vs_cpu(const char *model, int64_t k0)
{
    setenv("HLT_CUDA_CHAINS", "1", 1);
    engine_graph_t *g = load_model(model);
    pair_t p = pair_new(g);
    const int64_t batches[] = {1, 7, 256, 4099, 16000};
    for (size_t b = 0; b < 5; b++) {
        const engine_shape_t s = shp(2, batches[b], k0, 0, 0);
        run_both(&p, &s, -3, 3, 300 + b, model);
    }
    pair_free(&p);
}

Test(cuda, chain_kernel_facile, .timeout = 300)
{
    chains_vs_cpu("facile", 15);
}

Test(cuda, chain_kernel_jet_tagger, .timeout = 300)
{
    chains_vs_cpu("jet_tagger", 64);
}

Test(cuda, chain_kernel_in_chunks_without_graphs, .timeout = 300)
{
    setenv("HLT_CUDA_CHUNKS", "5", 1);
    setenv("HLT_CUDA_GRAPHS", "0", 1);
    chains_vs_cpu("jet_tagger", 64);
}
