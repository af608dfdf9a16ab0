/* Engine execution end to end: the exporter-style models in data/ against onnxruntime's
 * outputs (gen_test_models.py) and the bundled models/ against their float64 references, plus
 * the exec contract: prepare checks, prepare caching, buffer sharing, misaligned caller
 * buffers, run before prepare; and the plan: fused layers and row-blocked chains against a
 * float64 forward pass, one block of intermediates, no allocation in run.
 *
 * Tolerance against onnxruntime: |ours - ort| <= 1e-5 * |ort| + 1e-5 (absolute floor for
 * outputs near zero after cancellations; values are O(1)). INT64 outputs must match exactly. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "test_util.h"

#define E2E_REL 1e-5
#define E2E_ABS 1e-5

/* This suite is linked with -Wl,--wrap for the allocator (tests/engine/meson.build): every
 * allocation made by the engine and kernel libraries passes through here and is counted. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
static long engine_allocs;
void *__wrap_malloc(size_t n)
{
    engine_allocs++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s)
{
    engine_allocs++;
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n)
{
    engine_allocs++;
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    engine_allocs++;
    return __real_aligned_alloc(a, n);
}

static char *data_path(const char *file)
{
    const char *root = getenv("HLT_SOURCE_ROOT");
    cr_assert_not_null(root, "HLT_SOURCE_ROOT not set (run through meson test)");
    char *p = malloc(strlen(root) + strlen(file) + 32);
    cr_assert_not_null(p);
    sprintf(p, "%s/tests/engine/data/%s", root, file);
    return p;
}

static void *read_bin(const char *file, size_t want)
{
    char *path = data_path(file);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    void *buf = malloc(want + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, want + 1, f), want, "%s: unexpected size", path);
    fclose(f);
    free(path);
    return buf;
}

typedef struct tensor_rec {
    char name[128];
    hlt_dtype dtype;
    engine_shape_t shape;
    char file[256];
} tensor_rec_t;

/* Parses "in|out <name> <dtype> <rank> <dims...> <file>" after the keyword. */
static void parse_tensor(char *line, tensor_rec_t *t)
{
    char dt[16];
    int pos = 0;
    int rank;
    cr_assert_eq(sscanf(line, "%127s %15s %d%n", t->name, dt, &rank, &pos), 3, "bad: %s", line);
    t->dtype = strcmp(dt, "INT64") == 0 ? HLT_TYPE_INT64 : HLT_TYPE_FP32;
    t->shape.rank = rank;
    char *p = line + pos;
    for (int i = 0; i < rank; i++) {
        long long d;
        int n;
        cr_assert_eq(sscanf(p, "%lld%n", &d, &n), 1);
        t->shape.dims[i] = d;
        p += n;
    }
    cr_assert_eq(sscanf(p, "%255s", t->file), 1);
}

static size_t bytes_of(const tensor_rec_t *t)
{
    return (size_t)tu_numel(&t->shape) * hlt_dtype_size(t->dtype);
}

static int run_case(engine_graph_t *g, const char *model, int64_t batch, tensor_rec_t *ins,
                    size_t n_in, tensor_rec_t *outs, size_t n_out)
{
    char err[512] = "";
    cr_assert_eq(engine_graph_num_inputs(g), n_in, "%s", model);
    cr_assert_eq(engine_graph_num_outputs(g), n_out, "%s", model);
    engine_exec_t *e = NULL;
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK, "%s", err);
    engine_shape_t in_shapes[8], out_shapes[8];
    const void *in_data[8];
    void *out_data[8];
    for (size_t i = 0; i < n_in; i++) {
        cr_assert_str_eq(engine_graph_input(g, i)->name, ins[i].name);
        in_shapes[i] = ins[i].shape;
        in_data[i] = read_bin(ins[i].file, bytes_of(&ins[i]));
    }
    cr_assert_eq(engine_exec_prepare(e, in_shapes, out_shapes, err, sizeof err), HLT_OK,
                 "%s batch %lld: %s", model, (long long)batch, err);
    for (size_t i = 0; i < n_out; i++) {
        cr_assert_str_eq(engine_graph_output(g, i)->name, outs[i].name);
        cr_assert_eq(engine_graph_output(g, i)->dtype, outs[i].dtype);
        cr_assert_eq(out_shapes[i].rank, outs[i].shape.rank, "%s: output %s rank", model,
                     outs[i].name);
        for (int32_t d = 0; d < out_shapes[i].rank; d++)
            cr_assert_eq(out_shapes[i].dims[d], outs[i].shape.dims[d], "%s: %s dim %d", model,
                         outs[i].name, d);
        out_data[i] = malloc(bytes_of(&outs[i]) + 1);
    }
    cr_assert_eq(engine_exec_run(e, in_data, out_data, err, sizeof err), HLT_OK, "%s", err);
    for (size_t i = 0; i < n_out; i++) {
        void *want = read_bin(outs[i].file, bytes_of(&outs[i]));
        const int64_t n = tu_numel(&outs[i].shape);
        char what[300];
        snprintf(what, sizeof what, "%s batch %lld output %s", model, (long long)batch,
                 outs[i].name);
        if (outs[i].dtype == HLT_TYPE_INT64) {
            cr_assert_arr_eq(out_data[i], want, bytes_of(&outs[i]), "%s", what);
        } else {
            double *w = malloc(sizeof(double) * (size_t)(n + 1));
            for (int64_t k = 0; k < n; k++)
                w[k] = ((const float *)want)[k];
            tu_close(what, out_data[i], w, NULL, n, E2E_REL, E2E_ABS);
            free(w);
        }
        free(want);
        free(out_data[i]);
    }
    for (size_t i = 0; i < n_in; i++)
        free((void *)in_data[i]);
    engine_exec_destroy(e);
    return 1;
}

Test(exec, matches_onnxruntime_on_exported_models)
{
    char *path = data_path("manifest.txt");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char line[1024], model[256] = "", err[512];
    engine_graph_t *g = NULL;
    tensor_rec_t ins[8], outs[8];
    size_t n_in = 0, n_out = 0;
    int64_t batch = -1;
    int models = 0, cases = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "model ", 6) == 0) {
            cr_assert_lt(strlen(line + 6), sizeof model);
            memcpy(model, line + 6, strlen(line + 6) + 1);
            char *mp = data_path(model);
            hlt_status st = engine_graph_load_file(mp, &g, err, sizeof err);
            cr_assert_eq(st, HLT_OK, "%s: %s", model, err);
            free(mp);
            models++;
        } else if (strncmp(line, "case ", 5) == 0 || strcmp(line, "end") == 0) {
            if (batch >= 0)
                cases += run_case(g, model, batch, ins, n_in, outs, n_out);
            n_in = n_out = 0;
            batch = -1;
            if (line[0] == 'c') {
                batch = atoll(line + 5);
            } else {
                engine_graph_destroy(g);
                g = NULL;
            }
        } else if (strncmp(line, "in ", 3) == 0) {
            cr_assert_lt(n_in, 8);
            parse_tensor(line + 3, &ins[n_in++]);
        } else if (strncmp(line, "out ", 4) == 0) {
            cr_assert_lt(n_out, 8);
            parse_tensor(line + 4, &outs[n_out++]);
        }
    }
    fclose(f);
    free(path);
    cr_assert_geq(models, 12, "manifest lists %d models", models);
    cr_assert_geq(cases, 22, "manifest lists %d cases", cases);
}

/* x[N,8] -> Gemm(W[16,8]^T) -> Relu -> Gemm(W2[4,16]^T) -> Sigmoid: a chain whose buffers can
 * be shared. */
static mb_t *chain_model(void)
{
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, 8}, yd[] = {-1, 4}, w1d[] = {16, 8}, w2d[] = {4, 16};
    float w1[128], w2[64];
    uint64_t s = 7;
    tu_fill(&s, w1, 128, -1, 1);
    tu_fill(&s, w2, 64, -1, 1);
    mb_input(m, "x", TU_FLOAT, 2, xd);
    mb_init_f32(m, "w1", 2, w1d, w1, false);
    mb_init_f32(m, "w2", 2, w2d, w2, false);
    mb_attr_int(mb_node(m, "Gemm", "fc1", "x,w1", "h1"), "transB", 1);
    mb_node(m, "Relu", "act1", "h1", "a1");
    mb_node(m, "Tanh", "act2", "a1", "a2");
    mb_attr_int(mb_node(m, "Gemm", "fc2", "a2,w2", "h2"), "transB", 1);
    mb_node(m, "Sigmoid", "out", "h2", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    return m;
}

static engine_graph_t *load(mb_t *m)
{
    char err[512] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    return g;
}

Test(exec, reuses_buffers_of_dead_tensors)
{
    mb_t *m = chain_model();
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256];
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t in = {.rank = 2, .dims = {64, 8}}, out;
    cr_assert_eq(engine_exec_prepare(e, &in, &out, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.dims[0], 64);
    cr_assert_eq(out.dims[1], 4);
    /* h1, a1, a2 are 64x16 floats each; a chain needs two of them live at once. */
    cr_assert_lt(exec_arena_bytes(e), exec_unshared_bytes(e), "arena %zu, unshared %zu",
                 exec_arena_bytes(e), exec_unshared_bytes(e));
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, repeated_prepare_with_same_shapes_allocates_nothing)
{
    mb_t *m = chain_model();
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256];
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t big = {.rank = 2, .dims = {32, 8}}, small = {.rank = 2, .dims = {2, 8}}, out;
    cr_assert_eq(engine_exec_prepare(e, &big, &out, err, sizeof err), HLT_OK);
    const uint64_t a0 = exec_arena_allocations(e);
    cr_assert_eq(a0, 1);
    cr_assert_eq(engine_exec_prepare(e, &big, &out, err, sizeof err), HLT_OK);
    cr_assert_eq(engine_exec_prepare(e, &small, &out, err, sizeof err), HLT_OK);
    cr_assert_eq(out.dims[0], 2);
    cr_assert_eq(engine_exec_prepare(e, &big, &out, err, sizeof err), HLT_OK);
    cr_assert_eq(out.dims[0], 32);
    cr_assert_eq(exec_arena_allocations(e), a0, "a smaller or equal plan must reuse the arena");
    float x[32 * 8], y[32 * 4];
    uint64_t s = 3;
    tu_fill(&s, x, 256, -2, 2);
    const void *in[] = {x};
    void *outp[] = {y};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(engine_exec_run(e, in, outp, err, sizeof err), HLT_OK);
    cr_assert_eq(exec_arena_allocations(e), a0);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, run_and_same_shape_prepare_never_allocate)
{
    mb_t *m = chain_model();
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256];
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t in = {.rank = 2, .dims = {7, 8}}, out;
    cr_assert_eq(engine_exec_prepare(e, &in, &out, err, sizeof err), HLT_OK);
    float x[56], y[28];
    uint64_t s = 5;
    tu_fill(&s, x, 56, -1, 1);
    unsigned char *xb = malloc(sizeof x + 1); /* misaligned input: copied, still no malloc */
    memcpy(xb + 1, x, sizeof x);
    const void *inp[] = {xb + 1};
    void *outp[] = {y};
    const long before = engine_allocs;
    cr_assert_gt(before, 0, "the allocator wrap is not active");
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(engine_exec_prepare(e, &in, &out, err, sizeof err), HLT_OK);
        cr_assert_eq(engine_exec_run(e, inp, outp, err, sizeof err), HLT_OK);
    }
    cr_assert_eq(engine_allocs, before, "%ld allocations in prepare(same shapes) + run",
                 engine_allocs - before);
    free(xb);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, results_do_not_depend_on_caller_buffer_alignment)
{
    mb_t *m = chain_model();
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256];
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t in = {.rank = 2, .dims = {5, 8}}, out;
    cr_assert_eq(engine_exec_prepare(e, &in, &out, err, sizeof err), HLT_OK);
    float x[40], ya[20];
    uint64_t s = 11;
    tu_fill(&s, x, 40, -2, 2);
    const void *in_a[] = {x};
    void *out_a[] = {ya};
    cr_assert_eq(engine_exec_run(e, in_a, out_a, err, sizeof err), HLT_OK);
    /* Same data at an odd address in, odd address out. */
    unsigned char *xb = malloc(sizeof x + 1), *yb = malloc(sizeof ya + 3);
    memcpy(xb + 1, x, sizeof x);
    const void *in_b[] = {xb + 1};
    void *out_b[] = {yb + 3};
    cr_assert_eq(engine_exec_run(e, in_b, out_b, err, sizeof err), HLT_OK);
    cr_assert_arr_eq(yb + 3, ya, sizeof ya);
    free(xb);
    free(yb);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, run_before_prepare_fails)
{
    mb_t *m = chain_model();
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256] = "";
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    float x[8], y[4];
    const void *in[] = {x};
    void *out[] = {y};
    cr_assert_eq(engine_exec_run(e, in, out, err, sizeof err), HLT_FAILED_PRECONDITION);
    cr_assert(strstr(err, "prepare"), "%s", err);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, prepare_rejects_wrong_rank_and_fixed_dims)
{
    mb_t *m = chain_model();
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256] = "";
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t bad_rank = {.rank = 3, .dims = {1, 8, 1}}, bad_dim = {.rank = 2, .dims = {4, 9}};
    engine_shape_t neg = {.rank = 2, .dims = {-2, 8}}, out;
    cr_assert_eq(engine_exec_prepare(e, &bad_rank, &out, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'x'") && strstr(err, "rank"), "%s", err);
    cr_assert_eq(engine_exec_prepare(e, &bad_dim, &out, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'x'") && strstr(err, "dim 1 is 9"), "%s", err);
    cr_assert_eq(engine_exec_prepare(e, &neg, &out, err, sizeof err), HLT_INVALID_ARGUMENT);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, prepare_rejects_inconsistent_symbolic_dims)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 4};
    mb_input(m, "a", TU_FLOAT, 2, d);
    mb_input(m, "b", TU_FLOAT, 2, d);
    mb_node(m, "Add", "add", "a,b", "y");
    mb_output(m, "y", TU_FLOAT, 2, d);
    engine_graph_t *g = load(m);
    cr_assert_str_eq(engine_graph_input(g, 1)->dim_params[0], "N");
    cr_assert_eq(engine_graph_input(g, 1)->dims[0], -1);
    engine_exec_t *e = NULL;
    char err[256] = "";
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t in[2] = {{.rank = 2, .dims = {2, 4}}, {.rank = 2, .dims = {3, 4}}}, out;
    cr_assert_eq(engine_exec_prepare(e, in, &out, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'b'") && strstr(err, "N"), "%s", err);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, prepare_reports_the_node_whose_shapes_disagree)
{
    /* [N,8] x [6,4]: MatMul's K does not match; the model is fine until shapes are known. */
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, -2}, wd[] = {6, 4}, yd[] = {-1, 4};
    float w[24] = {0};
    mb_input(m, "x", TU_FLOAT, 2, xd);
    mb_init_f32(m, "w", 2, wd, w, false);
    mb_node(m, "MatMul", "dense", "x,w", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256] = "";
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t bad = {.rank = 2, .dims = {3, 8}}, good = {.rank = 2, .dims = {3, 6}}, out;
    cr_assert_eq(engine_exec_prepare(e, &bad, &out, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'dense'") && strstr(err, "MatMul") && strstr(err, "[3,8]"), "%s", err);
    /* A failed prepare leaves nothing runnable; a good one recovers. */
    float x[18] = {0}, y[12];
    const void *in[] = {x};
    void *outp[] = {y};
    cr_assert_eq(engine_exec_run(e, in, outp, err, sizeof err), HLT_FAILED_PRECONDITION);
    cr_assert_eq(engine_exec_prepare(e, &good, &out, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(engine_exec_run(e, in, outp, err, sizeof err), HLT_OK, "%s", err);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(exec, outputs_may_be_inputs_constants_or_views)
{
    /* y0 = x (graph input as output), y1 = Identity(x), y2 = a constant, y3 = Reshape view
     * also consumed by a later node, y4 = Relu(y3). */
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, 3}, cd[] = {2}, sd[] = {1};
    const float c[] = {1.5f, -2.5f};
    const int64_t shp[] = {-1};
    mb_input(m, "x", TU_FLOAT, 2, xd);
    mb_init_f32(m, "c", 1, cd, c, true);
    mb_init_i64(m, "shp", 1, sd, shp, true);
    mb_node(m, "Identity", "id", "x", "y1");
    mb_node(m, "Reshape", "flat", "x,shp", "y3");
    mb_node(m, "Relu", "relu", "y3", "y4");
    mb_output(m, "x", TU_FLOAT, 2, xd);
    mb_output(m, "y1", TU_FLOAT, 2, xd);
    mb_output(m, "c", TU_FLOAT, 1, cd);
    mb_output(m, "y3", TU_FLOAT, -1, NULL);
    mb_output(m, "y4", TU_FLOAT, -1, NULL);
    const float x[6] = {1, -2, 3, -4, 5, -6};
    engine_shape_t in = {.rank = 2, .dims = {2, 3}}, out[5];
    const void *inp[] = {x};
    void *o[5];
    tu_run(m, &in, inp, out, o);
    cr_assert_arr_eq(o[0], x, sizeof x);
    cr_assert_arr_eq(o[1], x, sizeof x);
    cr_assert_arr_eq(o[2], c, sizeof c);
    cr_assert_eq(out[3].rank, 1);
    cr_assert_eq(out[3].dims[0], 6);
    cr_assert_arr_eq(o[3], x, sizeof x);
    const float relu[6] = {1, 0, 3, 0, 5, 0};
    cr_assert_arr_eq(o[4], relu, sizeof relu);
    for (int i = 0; i < 5; i++)
        free(o[i]);
    mb_free(m);
}

Test(exec, zero_batch_runs_and_writes_nothing)
{
    mb_t *m = chain_model();
    engine_shape_t in = {.rank = 2, .dims = {0, 8}}, out;
    const void *inp[] = {NULL}; /* no data for zero elements */
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.dims[0], 0);
    cr_assert_eq(out.dims[1], 4);
    free(o[0]);
    mb_free(m);
}

/* ---- fused layers and row-blocked chains ----------------------------------------------------- */

#define MK0 13
#define MH1 36
#define MH2 20
#define MH3 9
#define MH4 5

typedef struct mlp {
    float w1[MH1 * MK0], c1[MH1], w2[MH1 * MH2], b2[MH2], w3[MH2 * MH3], w4[MH3 * MH4], b4[MH4];
} mlp_t;

/* x[N,13] -> Gemm(transB, C) -> LeakyRelu(0.1) [a1] -> MatMul -> Add -> Sigmoid
 * -> Gemm(alpha 0.5, no C) -> Tanh -> MatMul -> Add [logits, output] -> Softmax [probs, output];
 * side: also Relu(a1) as a third output (a1 then has two readers). */
static mb_t *mlp_model(mlp_t *p, bool side)
{
    uint64_t s = 77;
    tu_fill(&s, p->w1, MH1 * MK0, -0.5f, 0.5f);
    tu_fill(&s, p->c1, MH1, -0.5f, 0.5f);
    tu_fill(&s, p->w2, MH1 * MH2, -0.4f, 0.4f);
    tu_fill(&s, p->b2, MH2, -0.5f, 0.5f);
    tu_fill(&s, p->w3, MH2 * MH3, -1, 1);
    tu_fill(&s, p->w4, MH3 * MH4, -1, 1);
    tu_fill(&s, p->b4, MH4, -0.5f, 0.5f);
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, MK0}, w1d[] = {MH1, MK0}, c1d[] = {MH1}, w2d[] = {MH1, MH2},
                  b2d[] = {MH2}, w3d[] = {MH2, MH3}, w4d[] = {MH3, MH4}, b4d[] = {1, MH4},
                  yd[] = {-1, MH4}, sd[] = {-1, MH1};
    mb_input(m, "x", TU_FLOAT, 2, xd);
    mb_init_f32(m, "w1", 2, w1d, p->w1, false);
    mb_init_f32(m, "c1", 1, c1d, p->c1, false);
    mb_init_f32(m, "w2", 2, w2d, p->w2, false);
    mb_init_f32(m, "b2", 1, b2d, p->b2, false);
    mb_init_f32(m, "w3", 2, w3d, p->w3, false);
    mb_init_f32(m, "w4", 2, w4d, p->w4, false);
    mb_init_f32(m, "b4", 2, b4d, p->b4, false);
    mb_attr_int(mb_node(m, "Gemm", "fc1", "x,w1,c1", "h1"), "transB", 1);
    mb_attr_float(mb_node(m, "LeakyRelu", "act1", "h1", "a1"), "alpha", 0.1f);
    mb_node(m, "MatMul", "mm2", "a1,w2", "h2");
    mb_node(m, "Add", "add2", "b2,h2", "s2");
    mb_node(m, "Sigmoid", "act2", "s2", "a2");
    mb_attr_float(mb_node(m, "Gemm", "fc3", "a2,w3", "h3"), "alpha", 0.5f);
    mb_node(m, "Tanh", "act3", "h3", "a3");
    mb_node(m, "MatMul", "mm4", "a3,w4", "h4");
    mb_node(m, "Add", "add4", "h4,b4", "logits");
    mb_node(m, "Softmax", "sm", "logits", "probs");
    mb_output(m, "logits", TU_FLOAT, 2, yd);
    mb_output(m, "probs", TU_FLOAT, 2, yd);
    if (side) {
        mb_node(m, "Relu", "side", "a1", "r1");
        mb_output(m, "r1", TU_FLOAT, 2, sd);
    }
    return m;
}

/* float64 forward pass; mag: magnitude of the terms behind each logit (error scale). */
static void mlp_ref(const mlp_t *p, const float *x, int64_t n, double *logits, double *lmag,
                    double *probs, double *r1)
{
    for (int64_t i = 0; i < n; i++) {
        double a1[MH1], m1[MH1], a2[MH2], m2[MH2], a3[MH3], m3[MH3];
        for (int j = 0; j < MH1; j++) {
            double v = p->c1[j], mg = fabs(v);
            for (int q = 0; q < MK0; q++) {
                v += (double)x[i * MK0 + q] * p->w1[j * MK0 + q];
                mg += fabs((double)x[i * MK0 + q] * p->w1[j * MK0 + q]);
            }
            a1[j] = v >= 0 ? v : 0.1 * v;
            m1[j] = mg;
            if (r1)
                r1[i * MH1 + j] = a1[j] > 0 ? a1[j] : 0;
        }
        for (int j = 0; j < MH2; j++) {
            double v = p->b2[j], mg = fabs(v);
            for (int q = 0; q < MH1; q++) {
                v += a1[q] * p->w2[q * MH2 + j];
                mg += m1[q] * fabs(p->w2[q * MH2 + j]);
            }
            a2[j] = 1 / (1 + exp(-v));
            m2[j] = mg;
        }
        for (int j = 0; j < MH3; j++) {
            double v = 0, mg = 0;
            for (int q = 0; q < MH2; q++) {
                v += 0.5 * a2[q] * p->w3[q * MH3 + j];
                mg += 0.5 * (a2[q] + m2[q]) * fabs(p->w3[q * MH3 + j]);
            }
            a3[j] = tanh(v);
            m3[j] = mg;
        }
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < MH4; j++) {
            double v = p->b4[j], mg = fabs(v);
            for (int q = 0; q < MH3; q++) {
                v += a3[q] * p->w4[q * MH4 + j];
                mg += (fabs(a3[q]) + m3[q]) * fabs(p->w4[q * MH4 + j]);
            }
            logits[i * MH4 + j] = v;
            lmag[i * MH4 + j] = mg;
            mx = v > mx ? v : mx;
        }
        for (int j = 0; j < MH4; j++)
            sum += exp(logits[i * MH4 + j] - mx);
        for (int j = 0; j < MH4; j++)
            probs[i * MH4 + j] = exp(logits[i * MH4 + j] - mx) / sum;
    }
}

static void check_mlp(bool side, int64_t n)
{
    mlp_t p;
    mb_t *m = mlp_model(&p, side);
    float *x = malloc(sizeof(float) * (size_t)(n * MK0 + 1));
    uint64_t s = (uint64_t)n + 5;
    tu_fill(&s, x, n * MK0, -2, 2);
    double *logits = malloc(sizeof(double) * (size_t)(n * MH4 + 1));
    double *lmag = malloc(sizeof(double) * (size_t)(n * MH4 + 1));
    double *probs = malloc(sizeof(double) * (size_t)(n * MH4 + 1));
    double *r1 = side ? malloc(sizeof(double) * (size_t)(n * MH1 + 1)) : NULL;
    mlp_ref(&p, x, n, logits, lmag, probs, r1);
    engine_shape_t in = {.rank = 2, .dims = {n, MK0}}, out[3];
    const void *inp[] = {x};
    void *o[3];
    tu_run(m, &in, inp, out, o);
    char what[96];
    snprintf(what, sizeof what, "mlp side=%d N=%lld logits", side, (long long)n);
    tu_close(what, o[0], logits, lmag, n * MH4, TU_REL, TU_ABS);
    snprintf(what, sizeof what, "mlp side=%d N=%lld probs", side, (long long)n);
    tu_close(what, o[1], probs, lmag, n * MH4, TU_REL, TU_ABS);
    if (side) {
        snprintf(what, sizeof what, "mlp N=%lld side output", (long long)n);
        tu_close(what, o[2], r1, NULL, n * MH1, TU_REL, TU_ABS);
        free(o[2]);
    }
    free(o[0]);
    free(o[1]);
    free(x);
    free(logits);
    free(lmag);
    free(probs);
    free(r1);
    mb_free(m);
}

Test(exec, fused_layers_and_row_blocked_chains_match_float64)
{
    /* Every fused form (Gemm + C + LeakyRelu, Add(bias, MatMul) + Sigmoid, Gemm alpha + Tanh,
     * MatMul + Add [1,n] into a graph output read by Softmax), unblocked (small N) and
     * row-blocked (N above one block, including a partial last block), with and without an
     * intermediate that something outside the chain also reads. */
    static const int64_t ns[] = {1, 2, 7, 48, 300, 3001};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        check_mlp(false, ns[i]);
        check_mlp(true, ns[i]);
    }
}

Test(exec, row_blocked_chain_needs_one_block_of_intermediates)
{
    mlp_t p;
    mb_t *m = mlp_model(&p, false);
    engine_graph_t *g = load(m);
    engine_exec_t *e = NULL;
    char err[256];
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK, "%s", err);
    const int64_t n = 20000;
    engine_shape_t in = {.rank = 2, .dims = {n, MK0}}, out[2];
    cr_assert_eq(engine_exec_prepare(e, &in, out, err, sizeof err), HLT_OK, "%s", err);
    /* The 36-wide activations alone would take n * 36 * 4 bytes; blocked, the arena holds the
     * two outputs (n x 5 each) and a few blocks. */
    const size_t full = (size_t)n * MH1 * sizeof(float);
    cr_assert_lt(exec_arena_bytes(e), full, "arena %zu", exec_arena_bytes(e));
    float *x = malloc(sizeof(float) * (size_t)(n * MK0));
    float *y0 = malloc(sizeof(float) * (size_t)(n * MH4)), *y1 = malloc(sizeof(float) * (size_t)(n * MH4));
    uint64_t s = 9;
    tu_fill(&s, x, n * MK0, -1, 1);
    const void *inp[] = {x};
    void *outp[] = {y0, y1};
    const long before = engine_allocs;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(engine_exec_prepare(e, &in, out, err, sizeof err), HLT_OK);
        cr_assert_eq(engine_exec_run(e, inp, outp, err, sizeof err), HLT_OK, "%s", err);
    }
    cr_assert_eq(engine_allocs, before, "%ld allocations in prepare(same shapes) + run",
                 engine_allocs - before);
    /* A misaligned input is copied into the arena first; its slot must survive the chain. */
    unsigned char *xb = malloc(sizeof(float) * (size_t)(n * MK0) + 1);
    memcpy(xb + 1, x, sizeof(float) * (size_t)(n * MK0));
    float *z0 = malloc(sizeof(float) * (size_t)(n * MH4)), *z1 = malloc(sizeof(float) * (size_t)(n * MH4));
    const void *inb[] = {xb + 1};
    void *outb[] = {z0, z1};
    cr_assert_eq(engine_exec_run(e, inb, outb, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_arr_eq(z0, y0, sizeof(float) * (size_t)(n * MH4));
    cr_assert_arr_eq(z1, y1, sizeof(float) * (size_t)(n * MH4));
    free(xb);
    free(z0);
    free(z1);
    for (int64_t i = 0; i < n; i += 997) {
        double sum = 0;
        for (int j = 0; j < MH4; j++)
            sum += y1[i * MH4 + j];
        cr_assert_float_eq(sum, 1.0, 1e-5, "row %lld", (long long)i);
    }
    free(x);
    free(y0);
    free(y1);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

/* ---- the bundled example models (models/) against their float64 references ----------------- */

static void *read_model_file(const char *rel, size_t want)
{
    const char *root = getenv("HLT_SOURCE_ROOT");
    cr_assert_not_null(root);
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", root, rel);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    void *buf = malloc(want + 1);
    cr_assert_eq(fread(buf, 1, want + 1, f), want, "%s: unexpected size", path);
    fclose(f);
    return buf;
}

/* models/README.md: |ours - ref| <= 1e-6 S + 1e-5 |ref|, S = max(1, max |ref|). */
static void check_bundled(const char *model, const char *cas, const char *in_name, int64_t cols,
                          int64_t n, const char *const *outs, const int64_t *out_cols, int n_out)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/models/%s/1/model.onnx", getenv("HLT_SOURCE_ROOT"), model);
    engine_graph_t *g = NULL;
    cr_assert_eq(engine_graph_load_file(path, &g, err, sizeof err), HLT_OK, "%s", err);
    engine_exec_t *e = NULL;
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK, "%s", err);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/reference/%s.%s.bin", model, cas, in_name);
    float *x = read_model_file(rel, (size_t)(n * cols) * sizeof(float));
    engine_shape_t in = {.rank = 2, .dims = {n, cols}}, os[4];
    cr_assert_eq(engine_exec_prepare(e, &in, os, err, sizeof err), HLT_OK, "%s", err);
    void *y[4] = {0};
    for (int i = 0; i < n_out; i++)
        y[i] = malloc(sizeof(float) * (size_t)(n * out_cols[i]));
    const void *inp[] = {x};
    cr_assert_eq(engine_exec_run(e, inp, y, err, sizeof err), HLT_OK, "%s", err);
    for (int i = 0; i < n_out; i++) {
        const int64_t cnt = n * out_cols[i];
        snprintf(rel, sizeof rel, "%s/reference/%s.%s.bin", model, cas, outs[i]);
        float *ref = read_model_file(rel, (size_t)cnt * sizeof(float));
        double *want = malloc(sizeof(double) * (size_t)cnt), scale = 1;
        for (int64_t q = 0; q < cnt; q++) {
            want[q] = ref[q];
            scale = fabs(want[q]) > scale ? fabs(want[q]) : scale;
        }
        char what[128];
        snprintf(what, sizeof what, "%s %s %s", model, cas, outs[i]);
        tu_close(what, y[i], want, NULL, cnt, 1e-5, 1e-6 * scale);
        free(ref);
        free(want);
        free(y[i]);
    }
    free(x);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
}

Test(exec, bundled_models_match_their_references)
{
    const char *const facile_out[] = {"output"};
    const int64_t facile_cols[] = {1};
    check_bundled("facile", "n1", "input", 15, 1, facile_out, facile_cols, 1);
    check_bundled("facile", "n7", "input", 15, 7, facile_out, facile_cols, 1);
    check_bundled("facile", "n16000", "input", 15, 16000, facile_out, facile_cols, 1);
    const char *const jet_out[] = {"probabilities", "logits"};
    const int64_t jet_cols[] = {5, 5};
    check_bundled("jet_tagger", "batch1", "jet_features", 64, 1, jet_out, jet_cols, 2);
    check_bundled("jet_tagger", "batch3", "jet_features", 64, 3, jet_out, jet_cols, 2);
    check_bundled("jet_tagger", "batch64", "jet_features", 64, 64, jet_out, jet_cols, 2);
}
