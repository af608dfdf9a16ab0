/* OpenCL backend specifics (server/backend/opencl): probing without a runtime, device facts,
 * program build errors, the per-model plan (shared program, constants, arena growth), timing,
 * the GPU-style kernels run on whatever device is here, concurrent instances.
 *
 * Criterion forks per test and no OpenCL call happens before the fork, so each test gets a
 * fresh ICD loader and may set OCL_ICD_VENDORS / POCL_CACHE_DIR before its first call. Tests
 * that need a device skip with the probe's reason when there is none. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/opencl/ocl.h"
#include "engine/shape.h"
#include "backend_util.h"
#include "test_util.h"

static int devices_or_skip(void)
{
    char reason[256] = "";
    const int n = backend_devices(&backend_opencl, reason, sizeof reason);
    if (n <= 0)
        cr_skip_test("no OpenCL device: %s", reason);
    return n;
}

Test(opencl, probe_without_icd_reports_no_device)
{
    char dir[] = "/tmp/hlt-ocl-vendors-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    setenv("OCL_ICD_VENDORS", dir, 1);
    unsetenv("OCL_ICD_FILENAMES");
    char reason[256] = "";
    cr_assert_eq(backend_opencl.probe(reason, sizeof reason), 0);
    cr_assert(strstr(reason, "platform"), "reason: %s", reason);
    /* the registry says the same and the server would carry on */
    cr_assert_eq(backend_devices(backend_find("opencl"), reason, sizeof reason), 0);
    cr_assert(reason[0]);
    rmdir(dir);
}

Test(opencl, unwritable_pocl_cache_means_no_device)
{
    setenv("POCL_CACHE_DIR", "/proc/hltinfer-no-such-dir", 1);
    char reason[256] = "";
    const int n = backend_opencl.probe(reason, sizeof reason);
    /* PoCL hides its devices; another vendor's driver may still be there */
    for (int i = 0; i < n; i++)
        cr_assert_null(strstr(ocl_device(i)->name, "pthread"), "PoCL device with no cache");
    if (n == 0)
        cr_assert(strstr(reason, "device") || strstr(reason, "platform"), "reason: %s", reason);
}

Test(opencl, probe_sets_pocl_cache_dir)
{
    unsetenv("POCL_CACHE_DIR");
    char reason[256];
    backend_opencl.probe(reason, sizeof reason);
    const char *d = getenv("POCL_CACHE_DIR");
    cr_assert_not_null(d);
    cr_assert(strncmp(d, "/tmp/hltinfer-pocl-", 19) == 0, "%s", d);
    cr_assert_eq(access(d, W_OK), 0, "%s is not writable", d);
}

Test(opencl, device_info_is_sane)
{
    const int n = devices_or_skip();
    for (int i = 0; i < n; i++) {
        backend_device_info_t info;
        backend_opencl.device_info(i, &info);
        const ocl_device_t *d = ocl_device(i);
        cr_assert_not_null(d);
        cr_assert(info.name[0]);
        cr_assert_gt(info.memory_bytes, 0);
        cr_assert_geq(info.compute_units, 1);
        cr_assert_eq(info.kind,
                     d->type & CL_DEVICE_TYPE_GPU ? BACKEND_DEVICE_GPU : BACKEND_DEVICE_CPU);
        cr_assert_geq(d->max_wg, 1);
        cr_log_info("opencl device %d: %s, %s, %llu MiB, %d compute units, max work-group %zu", i,
                    info.name, info.kind == BACKEND_DEVICE_GPU ? "GPU" : "CPU",
                    (unsigned long long)(info.memory_bytes >> 20), info.compute_units, d->max_wg);
    }
    backend_device_info_t none;
    backend_opencl.device_info(n, &none); /* out of range: zeroed, no crash */
    cr_assert_eq(none.name[0], '\0');
}

Test(opencl, program_build_errors_are_reported)
{
    devices_or_skip();
    cl_context ctx;
    cl_program prog, bad = NULL;
    char err[1024] = "";
    cr_assert_eq(ocl_shared_acquire(0, &ctx, &prog, err, sizeof err), HLT_OK, "%s", err);
    const char *src = "__kernel void broken(__global float *x) { x[0] = no_such_name; }\n";
    const hlt_status st = ocl_program_build(ctx, ocl_device(0)->id, src, strlen(src),
                                            "-cl-std=CL1.2", &bad, err, sizeof err);
    cr_assert_eq(st, HLT_INTERNAL);
    cr_assert_null(bad);
    cr_assert(strstr(err, "build failed"), "%s", err);
    cr_assert(strstr(err, "no_such_name"), "the build log should name the culprit: %s", err);
    ocl_shared_release(0);
}

static engine_graph_t *facile(void)
{
    return bu_load("models/facile/1/model.onnx");
}

Test(opencl, instances_share_the_program_and_refuse_bitstreams)
{
    devices_or_skip();
    engine_graph_t *g = facile();
    bu_inst_t a, b;
    bu_inst_create(&a, &backend_opencl, g);
    bu_inst_create(&b, &backend_opencl, g);
    cr_assert_eq(a.inst->prog, b.inst->prog, "the program is built once per device");
    cr_assert_neq(a.inst->q, b.inst->q, "each instance has its own queue");
    cr_assert_not_null(a.inst->consts, "weights are uploaded at create");
    bu_inst_destroy(&a);
    bu_inst_destroy(&b);
    /* an FPGA bitstream model has no graph */
    backend_instance_t *inst = NULL;
    char err[256] = "";
    const backend_model_t m = {.graph = NULL, .cfg = NULL, .model_path = "model.xclbin"};
    cr_assert_eq(backend_opencl.instance_create(0, &m, &inst, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "ONNX"), "%s", err);
    cr_assert_null(inst);
    const backend_model_t m2 = {.graph = g, .cfg = NULL, .model_path = "x"};
    cr_assert_eq(backend_opencl.instance_create(99, &m2, &inst, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    backend_opencl.instance_destroy(NULL);
    engine_graph_destroy(g);
}

Test(opencl, prepare_and_execute_errors)
{
    devices_or_skip();
    engine_graph_t *g = facile();
    bu_inst_t bi;
    bu_inst_create(&bi, &backend_opencl, g);
    char err[512] = "";
    float x[15] = {0}, y[1];
    const void *in[] = {x};
    void *out[] = {y};
    cr_assert_eq(backend_opencl.execute(bi.inst, in, out, NULL, err, sizeof err),
                 HLT_FAILED_PRECONDITION);
    engine_shape_t bad = {2, {1, 14}}, outs[1];
    cr_assert_eq(backend_opencl.prepare(bi.inst, &bad, outs, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "input"), "%s", err);
    engine_shape_t ok = {2, {1, 15}};
    cr_assert_eq(backend_opencl.prepare(bi.inst, &ok, outs, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(outs[0].rank, 2);
    cr_assert_eq(outs[0].dims[0], 1);
    cr_assert_eq(outs[0].dims[1], 1);
    const void *no_in[] = {NULL};
    cr_assert_eq(backend_opencl.execute(bi.inst, no_in, out, NULL, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_assert_eq(backend_opencl.execute(bi.inst, in, out, NULL, err, sizeof err), HLT_OK, "%s",
                 err);
    bu_inst_destroy(&bi);
    engine_graph_destroy(g);
}

Test(opencl, arena_grows_only_and_results_follow_the_shapes)
{
    devices_or_skip();
    engine_graph_t *g = facile();
    bu_inst_t cpu, ocl;
    bu_inst_create(&cpu, &backend_cpu, g);
    bu_inst_create(&ocl, &backend_opencl, g);
    static const int64_t rows[] = {4096, 7, 1, 4096, 257};
    cl_mem arena = NULL;
    size_t cap = 0;
    for (int r = 0; r < 5; r++) {
        engine_shape_t s = {2, {rows[r], 15}};
        void **in = bu_inputs(g, &s, (uint64_t)r, -3, 3);
        bu_result_t want, got;
        bu_run(&cpu, g, &s, (const void *const *)in, &want, NULL);
        bu_run(&ocl, g, &s, (const void *const *)in, &got, NULL);
        bu_compare("facile", &got, &want);
        if (r == 0) {
            arena = ocl.inst->arena;
            cap = ocl.inst->arena_cap;
        }
        cr_assert_eq(ocl.inst->arena, arena, "the arena was reallocated at %lld rows",
                     (long long)rows[r]);
        cr_assert_eq(ocl.inst->arena_cap, cap);
        bu_result_free(&want);
        bu_result_free(&got);
        bu_inputs_free(g, in);
    }
    bu_inst_destroy(&cpu);
    bu_inst_destroy(&ocl);
    engine_graph_destroy(g);
}

Test(opencl, timing_splits_upload_compute_download)
{
    devices_or_skip();
    if (!ocl_device(0)->profiling)
        cr_skip_test("device queues have no profiling");
    setenv("HLT_OPENCL_PROFILING", "1", 1);
    engine_graph_t *g = facile();
    bu_inst_t bi;
    bu_inst_create(&bi, &backend_opencl, g);
    cr_assert(bi.inst->profiling, "HLT_OPENCL_PROFILING=1 gives a profiling queue");
    engine_shape_t s = {2, {4096, 15}};
    void **in = bu_inputs(g, &s, 1, -1, 1);
    bu_result_t out;
    backend_timing_t t = {-1, -1, -1};
    bu_run(&bi, g, &s, (const void *const *)in, &out, &t);
    cr_assert_gt(t.upload_ns, 0);
    cr_assert_gt(t.compute_ns, 0);
    cr_assert_gt(t.download_ns, 0);
    bu_result_free(&out);
    cr_assert_eq(ocl_kernel_ns(bi.inst), -1, "per-kernel time is off by default");
    ocl_set_kernel_profiling(bi.inst, true);
    bu_run(&bi, g, &s, (const void *const *)in, &out, &t);
    const int64_t k = ocl_kernel_ns(bi.inst);
    cr_assert_gt(k, 0);
    cr_assert_leq(k, t.compute_ns, "kernels %lld ns inside a compute span of %lld ns", (long long)k,
                  (long long)t.compute_ns);
    bu_result_free(&out);
    bu_inputs_free(g, in);
    bu_inst_destroy(&bi);
    engine_graph_destroy(g);
}

/* Without HLT_OPENCL_PROFILING the queue has no profiling and the whole execute is compute. */
Test(opencl, no_profiling_by_default)
{
    devices_or_skip();
    unsetenv("HLT_OPENCL_PROFILING");
    engine_graph_t *g = facile();
    bu_inst_t bi;
    bu_inst_create(&bi, &backend_opencl, g);
    cr_assert_not(bi.inst->profiling);
    engine_shape_t s = {2, {64, 15}};
    void **in = bu_inputs(g, &s, 1, -1, 1);
    bu_result_t out;
    backend_timing_t t = {-1, -1, -1};
    bu_run(&bi, g, &s, (const void *const *)in, &out, &t);
    cr_assert_eq(t.upload_ns, 0);
    cr_assert_gt(t.compute_ns, 0);
    cr_assert_eq(t.download_ns, 0);
    bu_result_free(&out);
    bu_inputs_free(g, in);
    bu_inst_destroy(&bi);
    engine_graph_destroy(g);
}

/* host_alloc hands out mapped device-visible buffers; executing from and into them gives the
 * CPU's answers, freeing one leaves the others usable, and destroy releases what is left. */
Test(opencl, host_alloc_buffers_run_and_free)
{
    devices_or_skip();
    engine_graph_t *g = facile();
    bu_inst_t cpu, ocl;
    bu_inst_create(&cpu, &backend_cpu, g);
    bu_inst_create(&ocl, &backend_opencl, g);
    cr_assert_not_null(backend_opencl.host_alloc);
    engine_shape_t s = {2, {300, 15}}, os[4];
    void **in = bu_inputs(g, &s, 1, -1, 7);
    bu_result_t want;
    bu_run(&cpu, g, &s, (const void *const *)in, &want, NULL);
    const size_t in_bytes = 300 * 15 * sizeof(float);
    void *extra = backend_opencl.host_alloc(ocl.inst, 1 << 20);
    float *pin = backend_opencl.host_alloc(ocl.inst, in_bytes);
    cr_assert(extra && pin);
    memset(extra, 0x5a, 1 << 20);
    memcpy(pin, in[0], in_bytes);
    char err[256];
    cr_assert_eq(backend_opencl.prepare(ocl.inst, &s, os, err, sizeof err), HLT_OK, "%s", err);
    const size_t out_n = (size_t)shape_numel(&os[0]);
    cr_assert_eq(out_n, (size_t)shape_numel(&want.shape[0]));
    float *pout = backend_opencl.host_alloc(ocl.inst, out_n * sizeof(float));
    cr_assert_not_null(pout);
    backend_opencl.host_free(ocl.inst, extra);
    const void *ins[1] = {pin};
    void *outs[1] = {pout};
    cr_assert_eq(backend_opencl.execute(ocl.inst, ins, outs, NULL, err, sizeof err), HLT_OK, "%s",
                 err);
    bu_result_t got = want;
    got.n = 1;
    got.data[0] = malloc(out_n * sizeof(float));
    cr_assert_not_null(got.data[0]);
    memcpy(got.data[0], pout, out_n * sizeof(float));
    for (int i = 1; i < BU_MAX_IO; i++)
        got.data[i] = NULL;
    bu_result_t want1 = want;
    want1.n = 1;
    bu_compare("facile from host_alloc buffers", &got, &want1);
    free(got.data[0]);
    backend_opencl.host_free(ocl.inst, pin); /* pout is left for destroy to release */
    bu_result_free(&want);
    bu_inputs_free(g, in);
    bu_inst_destroy(&cpu);
    bu_inst_destroy(&ocl);
    engine_graph_destroy(g);
}

/* The tiled (local-memory) GEMM is what GPUs run; it must be right on any device. */
Test(opencl, gpu_style_kernels_match_the_cpu)
{
    setenv("HLT_OPENCL_KERNELS", "gpu", 1);
    devices_or_skip();
    engine_graph_t *gs[] = {facile(), bu_load("models/jet_tagger/1/model.onnx"),
                            bu_load("tests/engine/data/mlp_gemm_opset11.onnx")};
    const int64_t feats[] = {15, 64, 16};
    for (int m = 0; m < 3; m++) {
        bu_inst_t probe;
        bu_inst_create(&probe, &backend_opencl, gs[m]);
        const bool tiled = probe.inst->tiled;
        bu_inst_destroy(&probe);
        if (!tiled)
            cr_skip_test("the device's work-groups are too small for the tiled GEMM");
        engine_shape_t sets[4][BU_MAX_IO];
        const int64_t rows[] = {1, 33, 257, 4096};
        for (int r = 0; r < 4; r++)
            sets[r][0] = (engine_shape_t){2, {rows[r], feats[m]}};
        cr_assert_geq(bu_check("tiled", gs[m], 4, (const engine_shape_t(*)[BU_MAX_IO])sets, -2, 2),
                      1);
        engine_graph_destroy(gs[m]);
    }
}

typedef struct worker {
    const engine_graph_t *g;
    int id;
    int failures;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char err[512];
    backend_instance_t *cpu = NULL, *ocl = NULL;
    const backend_model_t m = {.graph = w->g, .cfg = NULL, .model_path = "x"};
    if (backend_cpu.instance_create(0, &m, &cpu, err, sizeof err) ||
        backend_opencl.instance_create(0, &m, &ocl, err, sizeof err)) {
        w->failures++;
        goto out;
    }
    for (int it = 0; it < 20; it++) {
        engine_shape_t s = {2, {1 + (w->id * 37 + it * 101) % 600, 64}}, o[2], o2[2];
        void **in = bu_inputs(w->g, &s, (uint64_t)(w->id * 100 + it), -2, 2);
        const size_t n = (size_t)s.dims[0] * 5;
        float *a[2] = {malloc(n * 4), malloc(n * 4)}, *b[2] = {malloc(n * 4), malloc(n * 4)};
        if (backend_cpu.prepare(cpu, &s, o, err, sizeof err) ||
            backend_cpu.execute(cpu, (const void *const *)in, (void *const *)a, NULL, err,
                                sizeof err) ||
            backend_opencl.prepare(ocl, &s, o2, err, sizeof err) ||
            backend_opencl.execute(ocl, (const void *const *)in, (void *const *)b, NULL, err,
                                   sizeof err))
            w->failures++;
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < n; i++) {
                const float d = a[k][i] - b[k][i];
                if (!((d < 0 ? -d : d) <= 1e-4f * (a[k][i] < 0 ? -a[k][i] : a[k][i]) + 1e-5f))
                    w->failures++;
            }
            free(a[k]);
            free(b[k]);
        }
        bu_inputs_free(w->g, in);
    }
out:
    backend_cpu.instance_destroy(cpu);
    backend_opencl.instance_destroy(ocl);
    return NULL;
}

/* The server runs one thread per instance; instances share the device's context and program. */
Test(opencl, concurrent_instances)
{
    devices_or_skip();
    engine_graph_t *g = bu_load("models/jet_tagger/1/model.onnx");
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){g, i, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].failures, 0, "worker %d: %d failures", i, w[i].failures);
    }
    engine_graph_destroy(g);
}

/* ---- epilogue fusion ---- */

static int launches(const engine_graph_t *g)
{
    bu_inst_t bi;
    bu_inst_create(&bi, &backend_opencl, g);
    const int n = bi.inst->n_launches;
    bu_inst_destroy(&bi);
    return n;
}

Test(opencl, example_models_fuse_their_epilogues)
{
    devices_or_skip();
    engine_graph_t *f = facile(), *j = bu_load("models/jet_tagger/1/model.onnx");
    /* both are chains of small dense layers: one mlp.cl launch each */
    cr_assert_eq(launches(f), 1);
    cr_assert_eq(launches(j), 1);
    /* epilogues only: facile Gemm -> [BN] -> Relu (x2) -> Gemm: one launch per Gemm;
     * jet_tagger MatMul -> Add -> Relu (x3) -> MatMul -> Add [logits] -> Softmax */
    setenv("HLT_OPENCL_MLP", "0", 1);
    cr_assert_eq(launches(f), 3);
    cr_assert_eq(launches(j), 5);
    unsetenv("HLT_OPENCL_MLP");
    /* unfused: one launch per node (the engine may already fold BN into the Gemm weights) */
    setenv("HLT_OPENCL_FUSE", "0", 1);
    cr_assert_eq(launches(f), f->n_nodes);
    cr_assert_eq(launches(j), 12);
    engine_graph_destroy(f);
    engine_graph_destroy(j);
}

static void add_f32(mb_t *m, const char *name, int32_t rank, const int64_t *d, uint64_t seed,
                    float lo, float hi)
{
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++)
        n *= d[i];
    float *v = malloc(sizeof(float) * (size_t)n);
    uint64_t s = seed;
    tu_fill(&s, v, n, lo, hi);
    mb_init_f32(m, name, rank, d, v, false);
    free(v);
}

/* Chains that fuse, chains that must not, each compared with the CPU at odd and large batches,
 * with and without fusion, with both kernel styles. */
Test(opencl, fused_chains_match_the_cpu)
{
    devices_or_skip();
    const int64_t k = 15, f = 63;
    mb_t *m = mb_new(15);
    const int64_t xd[2] = {-1, k}, x3[3] = {-1, 7, k}, wt[2] = {f, k}, w[2] = {k, f}, v[1] = {f},
                  v2[2] = {1, f};
    mb_input(m, "X", TU_FLOAT, 2, xd);
    mb_input(m, "X3", TU_FLOAT, 3, x3);
    add_f32(m, "Wt", 2, wt, 1, -1, 1);
    add_f32(m, "W", 2, w, 2, -1, 1);
    add_f32(m, "bias", 1, v, 3, -1, 1);
    add_f32(m, "bias2", 2, v2, 4, -1, 1);
    add_f32(m, "scale", 1, v, 5, 0.5f, 2);
    add_f32(m, "B", 1, v, 6, -1, 1);
    add_f32(m, "mean", 1, v, 7, -1, 1);
    add_f32(m, "var", 1, v, 8, 0.5f, 2);
    /* 1: Gemm(transB) -> Add(bias, bias first) -> BN -> LeakyRelu: one launch */
    mb_attr_int(mb_node(m, "Gemm", "g1", "X,Wt", "g1"), "transB", 1);
    mb_node(m, "Add", "a1", "bias,g1", "a1");
    mb_node(m, "BatchNormalization", "bn1", "a1,scale,B,mean,var", "b1");
    mb_attr_float(mb_node(m, "LeakyRelu", "l1", "b1", "y1"), "alpha", 0.2f);
    /* 2: MatMul 3-D -> Add([F]) -> Sigmoid: one launch */
    mb_node(m, "MatMul", "m2", "X3,W", "m2");
    mb_node(m, "Add", "a2", "m2,bias", "a2");
    mb_node(m, "Sigmoid", "s2", "a2", "y2");
    /* 3: Gemm whose output is also a graph output: Tanh stays apart */
    mb_node(m, "Gemm", "g3", "X,W", "y3a");
    mb_node(m, "Tanh", "t3", "y3a", "y3");
    /* 4: MatMul -> Add of a [1,F] bias (may broadcast a 1-D A): not fused; Relu after it is */
    mb_node(m, "MatMul", "m4", "X,W", "m4");
    mb_node(m, "Add", "a4", "m4,bias2", "a4");
    mb_node(m, "Relu", "y4", "a4", "y4");
    /* 5: Gemm feeding two nodes: nothing fuses */
    mb_node(m, "Gemm", "g5", "X,W", "g5");
    mb_node(m, "Relu", "r5", "g5", "y5a");
    mb_node(m, "Sigmoid", "s5", "g5", "y5b");
    const char *outs[] = {"y1", "y2", "y3a", "y3", "y4", "y5a", "y5b"};
    for (int i = 0; i < 7; i++)
        mb_output(m, outs[i], TU_FLOAT, -1, NULL);
    engine_graph_t *g = NULL;
    char err[512];
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    mb_free(m);
    /* chain 1: 1, chain 2: 1, chain 3: Gemm + Tanh, chain 4: MatMul + Add + Relu, chain 5: 3 */
    const int fused = launches(g);
    cr_assert_eq(fused, 1 + 1 + 2 + 3 + 3, "launches with fusion: %d", fused);
    engine_shape_t sets[4][BU_MAX_IO];
    const int64_t rows[] = {1, 7, 257, 4096};
    for (int r = 0; r < 4; r++) {
        sets[r][0] = (engine_shape_t){2, {rows[r], k}};
        sets[r][1] = (engine_shape_t){3, {rows[r], 7, k}};
    }
    static const char *const modes[][2] = {{"1", "cpu"}, {"1", "gpu"}, {"0", "cpu"}};
    for (int i = 0; i < 3; i++) {
        setenv("HLT_OPENCL_FUSE", modes[i][0], 1);
        setenv("HLT_OPENCL_KERNELS", modes[i][1], 1);
        char what[64];
        snprintf(what, sizeof what, "fusion=%s kernels=%s", modes[i][0], modes[i][1]);
        bu_check(what, g, 4, (const engine_shape_t(*)[BU_MAX_IO])sets, -2, 2);
    }
    engine_graph_destroy(g);
}

/* ---- chain fusion (mlp.cl) ---- */

static void add_rand(mb_t *m, const char *name, int64_t d0, int64_t d1, uint64_t seed, float lo,
                     float hi)
{
    const int64_t d[2] = {d0, d1};
    add_f32(m, name, d1 > 0 ? 2 : 1, d, seed, lo, hi);
}

/* Chains that fuse whole (one ending in logits that are a graph output and their Softmax),
 * chains that split (a layer wider than OCL_MLP_MAX, an intermediate that is also a graph
 * output, a 3-D MatMul input, a Softmax over the batch axis), every activation and epilogue
 * form, compared with the CPU at batch 1, odd and large batches, in
 * both kernel styles and with chain fusion off. */
Test(opencl, fused_mlp_chains_match_the_cpu)
{
    devices_or_skip();
    mb_t *m = mb_new(15);
    const int64_t xd[2] = {-1, 15}, x3[3] = {-1, 7, 15};
    mb_input(m, "X", TU_FLOAT, 2, xd);
    mb_input(m, "X3", TU_FLOAT, 3, x3);
    /* A: Gemm(transB, C [33], alpha, beta) -> BN -> Relu -> Gemm(C scalar) -> LeakyRelu ->
     * MatMul -> Add -> Sigmoid -> Gemm(transB, no C) -> Tanh -> Softmax: one launch */
    add_rand(m, "W1t", 33, 15, 11, -0.5f, 0.5f);
    add_rand(m, "c1", 33, 0, 12, -1, 1);
    add_rand(m, "bs", 33, 0, 13, 0.5f, 2);
    add_rand(m, "bb", 33, 0, 14, -1, 1);
    add_rand(m, "bm", 33, 0, 15, -1, 1);
    add_rand(m, "bv", 33, 0, 16, 0.5f, 2);
    add_rand(m, "W2", 33, 128, 17, -0.3f, 0.3f);
    add_rand(m, "c2", 1, 0, 18, -1, 1);
    add_rand(m, "W3", 128, 7, 19, -0.2f, 0.2f);
    add_rand(m, "b3", 7, 0, 20, -1, 1);
    add_rand(m, "W4t", 5, 7, 21, -1, 1);
    Onnx__NodeProto *g1 = mb_node(m, "Gemm", "g1", "X,W1t,c1", "g1");
    mb_attr_int(g1, "transB", 1);
    mb_attr_float(g1, "alpha", 0.5f);
    mb_attr_float(g1, "beta", 2.0f);
    mb_node(m, "BatchNormalization", "bn1", "g1,bs,bb,bm,bv", "n1");
    mb_node(m, "Relu", "r1", "n1", "a1");
    mb_node(m, "Gemm", "g2", "a1,W2,c2", "g2");
    mb_attr_float(mb_node(m, "LeakyRelu", "l2", "g2", "a2"), "alpha", 0.1f);
    mb_node(m, "MatMul", "m3", "a2,W3", "m3");
    mb_node(m, "Add", "ad3", "m3,b3", "s3");
    mb_node(m, "Sigmoid", "sg3", "s3", "a3");
    mb_attr_int(mb_node(m, "Gemm", "g4", "a3,W4t", "g4"), "transB", 1);
    mb_node(m, "Tanh", "t4", "g4", "a4");
    mb_attr_int(mb_node(m, "Softmax", "sm", "a4", "yA"), "axis", -1);
    /* B: 15 -> 130 (too wide) -> 9 -> 3 -> 2: the 130-wide layers run alone, 9 -> 3 -> 2 is a
     * chain: three launches */
    add_rand(m, "W5", 15, 130, 22, -0.5f, 0.5f);
    add_rand(m, "W6", 130, 9, 23, -0.2f, 0.2f);
    add_rand(m, "W7", 9, 3, 24, -1, 1);
    add_rand(m, "W8", 3, 2, 25, -1, 1);
    mb_node(m, "Gemm", "g5", "X,W5", "g5");
    mb_node(m, "Relu", "r5", "g5", "b1");
    mb_node(m, "Gemm", "g6", "b1,W6", "g6");
    mb_node(m, "Relu", "r6", "g6", "b2");
    mb_node(m, "Gemm", "g7", "b2,W7", "g7");
    mb_node(m, "Relu", "r7", "g7", "bo3");
    mb_node(m, "Gemm", "g8", "bo3,W8", "yB");
    /* C: the first layer's output is also a graph output: no chain, two launches */
    add_rand(m, "W9", 15, 6, 26, -1, 1);
    add_rand(m, "W10", 6, 4, 27, -1, 1);
    mb_node(m, "Gemm", "g9", "X,W9", "g9");
    mb_node(m, "Relu", "r9", "g9", "c1o");
    mb_node(m, "Gemm", "g10", "c1o,W10", "yC");
    /* D: MatMul of a 3-D input: batch dimensions fold into rows, not a chain: two launches */
    add_rand(m, "W11", 15, 8, 28, -1, 1);
    add_rand(m, "W12", 8, 4, 29, -1, 1);
    mb_node(m, "MatMul", "m11", "X3,W11", "m11");
    mb_node(m, "Relu", "r11", "m11", "d1");
    mb_node(m, "MatMul", "m12", "d1,W12", "yD");
    /* E: Softmax over the batch axis stays apart: chain + softmax, two launches */
    add_rand(m, "W13", 15, 4, 30, -1, 1);
    add_rand(m, "W14", 4, 3, 31, -1, 1);
    mb_node(m, "Gemm", "g13", "X,W13", "g13");
    mb_node(m, "Relu", "r13", "g13", "e1");
    mb_node(m, "Gemm", "g14", "e1,W14", "g14");
    mb_attr_int(mb_node(m, "Softmax", "sm14", "g14", "yE"), "axis", 0);
    /* F: logits that are a graph output, then their Softmax: one launch writing both */
    add_rand(m, "W15", 15, 6, 32, -1, 1);
    add_rand(m, "W16", 6, 4, 33, -1, 1);
    mb_node(m, "Gemm", "g15", "X,W15", "g15");
    mb_node(m, "Relu", "r15", "g15", "f1");
    mb_node(m, "Gemm", "g16", "f1,W16", "yF");
    mb_attr_int(mb_node(m, "Softmax", "sm16", "yF", "yFp"), "axis", 1);
    const char *outs[] = {"yA", "yB", "c1o", "yC", "yD", "yE", "yFp", "yF"};
    for (int i = 0; i < 8; i++)
        mb_output(m, outs[i], TU_FLOAT, -1, NULL);
    engine_graph_t *g = NULL;
    char err[512];
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    mb_free(m);
    const int chained = launches(g);
    cr_assert_eq(chained, 1 + 3 + 2 + 2 + 2 + 1, "launches with chain fusion: %d", chained);
    setenv("HLT_OPENCL_MLP", "0", 1);
    const int unchained = launches(g);
    cr_assert_eq(unchained, 5 + 4 + 2 + 2 + 3 + 3, "launches without chain fusion: %d", unchained);
    unsetenv("HLT_OPENCL_MLP");
    engine_shape_t sets[5][BU_MAX_IO];
    const int64_t rows[] = {1, 7, 9, 257, 4096};
    for (int r = 0; r < 5; r++) {
        sets[r][0] = (engine_shape_t){2, {rows[r], 15}};
        sets[r][1] = (engine_shape_t){3, {rows[r], 7, 15}};
    }
    static const char *const modes[][2] = {{"1", "cpu"}, {"1", "gpu"}, {"0", "cpu"}};
    for (int i = 0; i < 3; i++) {
        setenv("HLT_OPENCL_MLP", modes[i][0], 1);
        setenv("HLT_OPENCL_KERNELS", modes[i][1], 1);
        char what[64];
        snprintf(what, sizeof what, "mlp=%s kernels=%s", modes[i][0], modes[i][1]);
        bu_check(what, g, 5, (const engine_shape_t(*)[BU_MAX_IO])sets, -2, 2);
    }
    engine_graph_destroy(g);
}

/* The example models as one chain launch each, in both kernel styles, against the CPU engine
 * at batch 1, a few rows and the largest batch (facile's 16000-row event). */
Test(opencl, example_models_run_as_one_chain)
{
    devices_or_skip();
    engine_graph_t *f = facile(), *j = bu_load("models/jet_tagger/1/model.onnx");
    engine_shape_t fs[3][BU_MAX_IO] = {{{2, {1, 15}}}, {{2, {7, 15}}}, {{2, {16000, 15}}}};
    engine_shape_t js[3][BU_MAX_IO] = {{{2, {1, 64}}}, {{2, {3, 64}}}, {{2, {1024, 64}}}};
    static const char *const kinds[] = {"cpu", "gpu"};
    for (int i = 0; i < 2; i++) {
        setenv("HLT_OPENCL_KERNELS", kinds[i], 1);
        cr_assert_eq(launches(f), 1);
        cr_assert_eq(launches(j), 1);
        bu_check(kinds[i], f, 3, (const engine_shape_t(*)[BU_MAX_IO])fs, -3, 3);
        bu_check(kinds[i], j, 3, (const engine_shape_t(*)[BU_MAX_IO])js, -3, 3);
    }
    engine_graph_destroy(f);
    engine_graph_destroy(j);
}
