/* XRT backend: device discovery that never aborts, config and xclbin checks, and the whole XRT
 * C API flow under XRT's noop emulation (XCL_EMULATION_MODE=noop) on xclbins written by
 * xclbin_writer. noop computes nothing: these tests check plumbing (buffers, runs, the ring,
 * errors), not numbers; fixed-point numbers are test_fixed_point's job.
 *
 * Criterion runs every test in its own process, so each sets its own environment and gets a
 * fresh, unprobed backend. */
#include "backend/backend.h"
#include "backend/xrt/xclbin_writer.h"
#include "backend/xrt/xrt_config.h"
#include "backend/xrt/xrt_xclbin.h"
#include "model_config.h"

#include <criterion/criterion.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const backend_i backend_xrt;

static char tmp[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/hlt-xrt-test-XXXXXX");
    cr_assert(mkdtemp(tmp));
    setenv("XDG_RUNTIME_DIR", tmp, 1); /* the shim folder goes here, private to the test */
    unsetenv("XILINX_XRT");
    setenv("XCL_EMULATION_MODE", "noop", 1);
}

static void teardown(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(xrt, .init = setup, .fini = teardown);

static const char *path_in(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp, name);
    return p[k];
}

static const char *xclbin(const char *name, const char *kernel, int cus, const char *args)
{
    char a[256], err[256];
    snprintf(a, sizeof a, "%s", args ? args : "input:buffer,output:buffer,rows:scalar");
    xclbin_arg_t av[XCLBIN_MAX_ARGS];
    int n = xclbin_parse_args(a, av, XCLBIN_MAX_ARGS);
    cr_assert_gt(n, 0);
    xclbin_spec_t spec = {kernel, cus, NULL, n, av, cus};
    const char *p = path_in(name);
    cr_assert_eq(xclbin_write(p, &spec, err, sizeof err), 0, "%s", err);
    return p;
}

/* A FACILE-like bitstream model: input [15] -> output [1]; params is a JSON fragment of
 * extra "parameters" entries. */
static model_config_t *config(const char *params, int max_batch, const char *dtype)
{
    char text[4096], err[512], ps[2048];
    params = params ? params : "";
    /* defaults unless params sets them */
    snprintf(ps, sizeof ps, "%s%s%s%s%s",
             strstr(params, "\"kernel_name\"") ? ""
                                               : "\"kernel_name\": {\"string_value\": \"facile\"}",
             strstr(params, "\"kernel_name\"") ? "" : ", ",
             strstr(params, "\"io_format\"")
                 ? ""
                 : "\"io_format\": {\"string_value\": \"ap_fixed<16,6,AP_RND,AP_SAT>\"}",
             strstr(params, "\"io_format\"") || !*params ? "" : ", ", params);
    size_t l = strlen(ps);
    while (l && (ps[l - 1] == ' ' || ps[l - 1] == ','))
        ps[--l] = '\0';
    snprintf(text, sizeof text,
             "{\"name\": \"fpga\", \"backend\": \"xrt\", \"max_batch_size\": %d,"
             " \"input\": [{\"name\": \"x\", \"data_type\": \"%s\", \"dims\": [15]}],"
             " \"output\": [{\"name\": \"y\", \"data_type\": \"TYPE_FP32\", \"dims\": [1]}],"
             " \"parameters\": {%s}}",
             max_batch, dtype ? dtype : "TYPE_FP32", ps);
    model_config_t *cfg = NULL;
    cr_assert_eq(model_config_parse("fpga", text, strlen(text), &cfg, err, sizeof err), HLT_OK,
                 "%s: %s", err, text);
    cr_assert_eq(model_config_complete_declared(cfg, err, sizeof err), HLT_OK, "%s", err);
    return cfg;
}

static hlt_status create(const model_config_t *cfg, const char *xclbin_path,
                         backend_instance_t **out, char *err, size_t errlen)
{
    backend_model_t bm = {NULL, cfg, xclbin_path};
    char reason[256];
    cr_assert_eq(backend_xrt.probe(reason, sizeof reason), 1, "%s", reason);
    return backend_xrt.instance_create(0, &bm, out, err, errlen);
}

/* ---- discovery ---- */

Test(xrt, probe_without_xrt_reports_zero_devices_and_a_reason)
{
    setenv("XILINX_XRT", tmp, 1); /* an empty folder: XRT would abort the process */
    char reason[512];
    cr_assert_eq(backend_xrt.probe(reason, sizeof reason), 0);
    cr_assert(strstr(reason, "has no lib/libxrt_noop.so.2") && strstr(reason, tmp), "%s", reason);
}

Test(xrt, probe_rejects_an_unknown_emulation_mode_without_aborting)
{
    setenv("XCL_EMULATION_MODE", "fast_emu", 1);
    char reason[512];
    cr_assert_eq(backend_xrt.probe(reason, sizeof reason), 0);
    cr_assert(strstr(reason, "XCL_EMULATION_MODE=fast_emu"), "%s", reason);
}

Test(xrt, probe_of_sw_emu_without_vitis_reports_why)
{
    setenv("XCL_EMULATION_MODE", "sw_emu", 1);
    unsetenv("XILINX_VITIS");
    char reason[512];
    cr_assert_eq(backend_xrt.probe(reason, sizeof reason), 0);
    cr_assert(strstr(reason, "XILINX_VITIS"), "%s", reason);
}

Test(xrt, probe_without_xilinx_xrt_links_debian_libraries_into_a_private_folder)
{
    char reason[512], want[512], link[700];
    cr_assert_eq(backend_xrt.probe(reason, sizeof reason), 1, "%s", reason);
    snprintf(want, sizeof want, "%s/hltinfer-xrt-%u", tmp, (unsigned)getuid());
    cr_assert_str_eq(getenv("XILINX_XRT"), want);
    snprintf(link, sizeof link, "%s/lib/libxrt_noop.so.2", want);
    struct stat sb;
    cr_assert(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode));
    cr_assert(stat(want, &sb) == 0 && (sb.st_mode & 077) == 0);
    backend_device_info_t info;
    backend_xrt.device_info(0, &info);
    cr_assert(strstr(info.name, "noop") && info.kind == BACKEND_DEVICE_FPGA, "%s", info.name);
}

Test(xrt, probe_in_hardware_mode_without_a_card_finds_none)
{
    unsetenv("XCL_EMULATION_MODE");
    char reason[512];
    int n = backend_xrt.probe(reason, sizeof reason);
    if (n > 0)
        cr_skip_test("this machine has %d FPGA card(s)", n);
    cr_assert(strstr(reason, "no FPGA device"), "%s", reason);
}

Test(xrt, probe_refuses_a_shared_shim_folder)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/hltinfer-xrt-%u", tmp, (unsigned)getuid());
    cr_assert_eq(mkdir(dir, 0777), 0);
    chmod(dir, 0777); /* others may write: not trusted */
    char reason[512];
    cr_assert_eq(backend_xrt.probe(reason, sizeof reason), 0);
    cr_assert(strstr(reason, "not a private folder"), "%s", reason);
}

/* ---- config ---- */

static void expect_config_error(const char *params, const char *dtype, const char *f1,
                                const char *f2)
{
    model_config_t *cfg = config(params, 64, dtype);
    xrt_model_cfg_t mc;
    char err[512] = "";
    cr_assert_eq(xrt_config_parse(cfg, &mc, err, sizeof err), HLT_INVALID_ARGUMENT, "accepted: %s",
                 params);
    cr_assert(strstr(err, "model 'fpga'") && strstr(err, f1) && strstr(err, f2), "%s -> '%s'",
              params, err);
    model_config_destroy(cfg);
}

Test(xrt, config_errors_name_the_model_and_the_parameter)
{
    expect_config_error("\"kernel_name\": {\"string_value\": \"\"}", NULL, "'kernel_name'",
                        "required");
    expect_config_error("\"kernel_name\": {\"string_value\": \"a:{b}\"}", NULL, "'kernel_name'",
                        "not a kernel name");
    expect_config_error("\"compute_units\": {\"string_value\": \"0\"}", NULL, "'compute_units'",
                        "bad name");
    expect_config_error("\"compute_units\": {\"string_value\": \"[\\\"a\\\", \\\"a\\\"]\"}", NULL,
                        "'compute_units'", "listed twice");
    expect_config_error("\"argument_order\": {\"string_value\": \"x,y,count\"}", NULL,
                        "'argument_order'", "'count'");
    expect_config_error("\"argument_order\": {\"string_value\": \"x,rows\"}", NULL,
                        "'argument_order'", "output 'y' is not bound");
    expect_config_error("\"argument_order\": {\"string_value\": \"x,x,y\"}", NULL,
                        "'argument_order'", "bound twice");
    expect_config_error("\"argument_order\": {\"string_value\": \"x,y,rows,rows\"}", NULL,
                        "'argument_order'", "twice");
    expect_config_error("\"rows_per_run\": {\"string_value\": \"-4\"}", NULL, "'rows_per_run'",
                        "-4");
    expect_config_error("\"max_rows_per_run\": {\"string_value\": \"lots\"}", NULL,
                        "'max_rows_per_run'", "lots");
    expect_config_error("\"io_format\": {\"string_value\": \"ap_fixed<40,6>\"}", NULL,
                        "'io_format'", "width");
    expect_config_error("\"output_format\": {\"string_value\": \"ap_fixed<16,6,AP_NEAREST>\"}",
                        NULL, "'output_format'", "quantisation mode");
    expect_config_error("\"values_per_word\": {\"string_value\": \"33\"}", NULL,
                        "'values_per_word'", "1..32");
    expect_config_error("\"input_values_per_word\": {\"string_value\": \"0\"}", NULL,
                        "'input_values_per_word'", "1..32");
    expect_config_error("\"ring_slots\": {\"string_value\": \"0\"}", NULL, "'ring_slots'", "1..64");
    expect_config_error("\"run_timeout_ms\": {\"string_value\": \"0\"}", NULL, "'run_timeout_ms'",
                        "1..");
    expect_config_error("\"output_layout\": {\"string_value\": \"packed\"}", NULL,
                        "'output_layout'", "dense");
    expect_config_error("", "TYPE_INT16", "input 'x'", "FP32");
}

Test(xrt, config_defaults_and_overrides)
{
    model_config_t *cfg = config("\"compute_units\": {\"string_value\": \"[\\\"cu_b\\\", "
                                 "\\\"cu_a\\\"]\"}, \"output_format\": {\"string_value\": "
                                 "\"ap_fixed<18,8>\"}, \"rows_per_run\": {\"string_value\": "
                                 "\"32\"}",
                                 500, NULL);
    xrt_model_cfg_t mc;
    char err[512];
    cr_assert_eq(xrt_config_parse(cfg, &mc, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_str_eq(mc.kernel, "facile");
    cr_assert_eq(mc.n_cu_names, 2);
    cr_assert_str_eq(mc.cu_names[0], "cu_b");
    cr_assert_eq(mc.n_args, 3);
    cr_assert(mc.args[0].role == XRT_ROLE_INPUT && mc.args[1].role == XRT_ROLE_OUTPUT &&
              mc.args[2].role == XRT_ROLE_ROWS && mc.rows_arg == 2);
    cr_assert(mc.in_fmt.width == 16 && mc.in_vpw == 32 && mc.out_fmt.width == 18 &&
              mc.out_vpw == 28);
    cr_assert(mc.rows_per_run == 32 && mc.ring_slots == XRT_DEFAULT_RING_SLOTS &&
              mc.max_rows == 500 && mc.in_per_row[0] == 15 && mc.out_per_row[0] == 1);
    model_config_destroy(cfg);
}

/* ---- xclbin ---- */

Test(xrt, describes_the_xclbin_it_writes)
{
    const char *p = xclbin("k.xclbin", "facile", 3, "in:buffer,out:buffer,n:scalar,scale:u32");
    xrt_kernel_desc_t k;
    char err[512];
    cr_assert_eq(xrt_xclbin_describe(p, "facile", &k, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(k.n_cus, 3);
    cr_assert_str_eq(k.cus[0], "facile_1");
    cr_assert_str_eq(k.cus[2], "facile_3");
    cr_assert_eq(k.n_args, 4);
    cr_assert(k.args[0].is_buffer && k.args[1].is_buffer && !k.args[2].is_buffer);
    cr_assert_str_eq(k.args[3].name, "scale");
    cr_assert_str_eq(k.kernels, "facile");
}

Test(xrt, describe_reports_missing_files_foreign_files_and_kernels)
{
    xrt_kernel_desc_t k;
    char err[512];
    cr_assert_eq(xrt_xclbin_describe(path_in("none.xclbin"), "k", &k, err, sizeof err),
                 HLT_NOT_FOUND);
    FILE *f = fopen(path_in("junk.xclbin"), "w");
    fputs("this is not an xclbin, but it is long enough to hold a header .......................",
          f);
    for (int i = 0; i < 600; i++)
        fputc('x', f);
    fclose(f);
    cr_assert_eq(xrt_xclbin_describe(path_in("junk.xclbin"), "k", &k, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "not an xclbin"), "%s", err);
    const char *p = xclbin("k.xclbin", "facile", 1, NULL);
    cr_assert_eq(xrt_xclbin_describe(p, "facile_v2", &k, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'facile_v2' is not in") && strstr(err, "its kernels: facile"), "%s",
              err);
}

Test(xrt, bind_checks_arguments_and_compute_units_against_the_kernel)
{
    const char *p = xclbin("k.xclbin", "facile", 2, "in:buffer,out:buffer,n:scalar,s:scalar");
    xrt_kernel_desc_t k;
    char err[512], cus[XRT_MAX_CUS][XRT_NAME_MAX];
    int n;
    cr_assert_eq(xrt_xclbin_describe(p, "facile", &k, err, sizeof err), HLT_OK);
    model_config_t *cfg = config("", 64, NULL);
    xrt_model_cfg_t mc;
    cr_assert_eq(xrt_config_parse(cfg, &mc, err, sizeof err), HLT_OK);
    cr_assert_eq(xrt_config_bind(cfg, &mc, &k, p, cus, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'argument_order' lists 3 arguments") && strstr(err, "takes 4") &&
                  strstr(err, "scalar s"),
              "%s", err);
    model_config_destroy(cfg);

    p = xclbin("k2.xclbin", "facile", 2, "in:buffer,n:scalar,out:buffer");
    cr_assert_eq(xrt_xclbin_describe(p, "facile", &k, err, sizeof err), HLT_OK);
    cfg = config("", 64, NULL);
    cr_assert_eq(xrt_config_parse(cfg, &mc, err, sizeof err), HLT_OK);
    cr_assert_eq(xrt_config_bind(cfg, &mc, &k, p, cus, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "argument 1 binds a tensor") && strstr(err, "is a scalar"), "%s", err);
    model_config_destroy(cfg);

    p = xclbin("k3.xclbin", "facile", 2, NULL);
    cr_assert_eq(xrt_xclbin_describe(p, "facile", &k, err, sizeof err), HLT_OK);
    cfg = config("\"compute_units\": {\"string_value\": \"facile_1, facile_9\"}", 64, NULL);
    cr_assert_eq(xrt_config_parse(cfg, &mc, err, sizeof err), HLT_OK);
    cr_assert_eq(xrt_config_bind(cfg, &mc, &k, p, cus, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'facile_9' is not a compute unit") &&
                  strstr(err, "it has: facile_1, facile_2"),
              "%s", err);
    model_config_destroy(cfg);
    cfg = config("\"compute_units\": {\"string_value\": \"1\"}", 64, NULL);
    cr_assert_eq(xrt_config_parse(cfg, &mc, err, sizeof err), HLT_OK);
    cr_assert_eq(xrt_config_bind(cfg, &mc, &k, p, cus, &n, err, sizeof err), HLT_OK);
    cr_assert(n == 1 && !strcmp(cus[0], "facile_1"));
    model_config_destroy(cfg);
}

/* ---- the XRT flow under noop ---- */

/* Runs batches of the given row counts; outputs start as NaN and must come back written (noop
 * leaves the output buffers as allocated: zero). Buffers are misaligned when `skew`. */
static void run_batches(backend_instance_t *in, const int64_t *rows, int n, bool skew)
{
    for (int b = 0; b < n; b++) {
        size_t nin = (size_t)rows[b] * 15, nout = (size_t)rows[b];
        char *ib = malloc(nin * 4 + 1), *ob = malloc(nout * 4 + 1);
        float *x = (float *)(void *)(ib + skew), *y = (float *)(void *)(ob + skew);
        for (size_t i = 0; i < nin; i++) {
            float v = (float)i * 0.01f;
            memcpy((char *)x + i * 4, &v, 4);
        }
        for (size_t i = 0; i < nout; i++) {
            float v = NAN;
            memcpy((char *)y + i * 4, &v, 4);
        }
        engine_shape_t in_s = {.rank = 2, .dims = {rows[b], 15}}, out_s;
        char err[512];
        cr_assert_eq(backend_xrt.prepare(in, &in_s, &out_s, err, sizeof err), HLT_OK, "%s", err);
        cr_assert(out_s.rank == 2 && out_s.dims[0] == rows[b] && out_s.dims[1] == 1);
        const void *ins[1] = {x};
        void *outs[1] = {y};
        backend_timing_t t;
        cr_assert_eq(backend_xrt.execute(in, ins, outs, &t, err, sizeof err), HLT_OK, "%s", err);
        for (size_t i = 0; i < nout; i++) {
            float v;
            memcpy(&v, (char *)y + i * 4, 4);
            cr_assert_eq(v, 0.0f, "batch %d row %zu not written", b, i);
        }
        free(ib);
        free(ob);
    }
}

Test(xrt, noop_plumbing_executes_batches_through_the_ring)
{
    const char *p = xclbin("m.xclbin", "facile", 2, NULL);
    model_config_t *cfg = config("\"ring_slots\": {\"string_value\": \"2\"}, "
                                 "\"max_rows_per_run\": {\"string_value\": \"100\"}",
                                 1000, NULL);
    backend_instance_t *in = NULL;
    char err[512];
    cr_assert_eq(create(cfg, p, &in, err, sizeof err), HLT_OK, "%s", err);
    /* 1000 rows = 10 runs of 100 through 4 slots: the ring wraps inside one batch */
    const int64_t rows[] = {1, 7, 1000, 3, 999, 1, 2};
    run_batches(in, rows, 7, false);
    run_batches(in, rows, 3, true);
    backend_xrt.instance_destroy(in);
    model_config_destroy(cfg);
}

Test(xrt, noop_plumbing_pads_to_rows_per_run)
{
    const char *p = xclbin("m.xclbin", "facile", 3, NULL);
    model_config_t *cfg = config("\"rows_per_run\": {\"string_value\": \"64\"}, "
                                 "\"io_format\": {\"string_value\": \"float32\"}",
                                 256, NULL);
    backend_instance_t *in = NULL;
    char err[512];
    cr_assert_eq(create(cfg, p, &in, err, sizeof err), HLT_OK, "%s", err);
    const int64_t rows[] = {150, 256, 1, 64};
    run_batches(in, rows, 4, false);
    backend_xrt.instance_destroy(in);
    model_config_destroy(cfg);
}

Test(xrt, noop_plumbing_serves_a_faast_style_kernel)
{
    /* FaaST's alveo_hls4ml: (in, out) only, 16384 rows a run, input one word per row, output a
     * dense stream of 16-bit values */
    const char *p = xclbin("m.xclbin", "alveo_hls4ml", 2, "in:buffer,out:buffer");
    model_config_t *cfg = config("\"kernel_name\": {\"string_value\": \"alveo_hls4ml\"}, "
                                 "\"argument_order\": {\"string_value\": \"input,output\"}, "
                                 "\"rows_per_run\": {\"string_value\": \"16384\"}, "
                                 "\"output_layout\": {\"string_value\": \"dense\"}",
                                 16000, NULL);
    backend_instance_t *in = NULL;
    char err[512];
    cr_assert_eq(create(cfg, p, &in, err, sizeof err), HLT_OK, "%s", err);
    const int64_t rows[] = {16000, 1, 33, 16000};
    run_batches(in, rows, 4, false);
    backend_xrt.instance_destroy(in);
    model_config_destroy(cfg);
}

Test(xrt, noop_plumbing_without_batching_runs_the_whole_tensor)
{
    const char *p = xclbin("m.xclbin", "facile", 1, "x:buffer,y:buffer");
    model_config_t *cfg = config("\"argument_order\": {\"string_value\": \"x,y\"}", 0, NULL);
    backend_instance_t *in = NULL;
    char err[512];
    cr_assert_eq(create(cfg, p, &in, err, sizeof err), HLT_OK, "%s", err);
    float x[15] = {0}, y[1] = {NAN};
    engine_shape_t in_s = {.rank = 1, .dims = {15}}, out_s;
    cr_assert_eq(backend_xrt.prepare(in, &in_s, &out_s, err, sizeof err), HLT_OK, "%s", err);
    cr_assert(out_s.rank == 1 && out_s.dims[0] == 1);
    const void *ins[1] = {x};
    void *outs[1] = {y};
    cr_assert_eq(backend_xrt.execute(in, ins, outs, NULL, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(y[0], 0.0f);
    engine_shape_t bad = {.rank = 1, .dims = {14}};
    cr_assert_eq(backend_xrt.prepare(in, &bad, &out_s, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "input 'x'"), "%s", err);
    backend_xrt.instance_destroy(in);
    model_config_destroy(cfg);
}

Test(xrt, create_reports_load_errors_precisely)
{
    model_config_t *cfg = config("", 64, NULL);
    backend_instance_t *in = NULL;
    char err[512];
    cr_assert_eq(create(cfg, path_in("missing.xclbin"), &in, err, sizeof err), HLT_NOT_FOUND);
    cr_assert(strstr(err, "model 'fpga'") && strstr(err, "missing.xclbin"), "%s", err);
    const char *p = xclbin("other.xclbin", "not_facile", 1, NULL);
    cr_assert_eq(create(cfg, p, &in, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "model 'fpga'") && strstr(err, "'kernel_name'") &&
                  strstr(err, "not_facile"),
              "%s", err);
    p = xclbin("four.xclbin", "facile", 1, "a:buffer,b:buffer,n:scalar,s:scalar");
    cr_assert_eq(create(cfg, p, &in, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'argument_order'") && strstr(err, "takes 4"), "%s", err);
    cr_assert_null(in);
    model_config_destroy(cfg);
    /* an ONNX graph is not a bitstream */
    engine_graph_t *fake = (engine_graph_t *)(void *)&cfg;
    cfg = config("", 64, NULL);
    backend_model_t bm = {fake, cfg, p};
    cr_assert_eq(backend_xrt.instance_create(0, &bm, &in, err, sizeof err), HLT_INVALID_ARGUMENT);
    model_config_destroy(cfg);
}

Test(xrt, a_card_holds_one_xclbin_at_a_time)
{
    const char *pa = xclbin("a.xclbin", "facile", 2, NULL);
    const char *pb = xclbin("b.xclbin", "facile", 3, NULL); /* another design, same kernel name */
    model_config_t *cfg = config("", 64, NULL);
    backend_instance_t *a1 = NULL, *a2 = NULL, *b = NULL;
    char err[512];
    cr_assert_eq(create(cfg, pa, &a1, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(create(cfg, pa, &a2, err, sizeof err), HLT_OK, "%s", err); /* same xclbin */
    cr_assert_eq(create(cfg, pb, &b, err, sizeof err), HLT_UNAVAILABLE);
    cr_assert(strstr(err, "one xclbin at a time") && strstr(err, "b.xclbin"), "%s", err);
    backend_xrt.instance_destroy(a1);
    cr_assert_eq(create(cfg, pb, &b, err, sizeof err), HLT_UNAVAILABLE); /* a2 still there */
    backend_xrt.instance_destroy(a2);
    cr_assert_eq(create(cfg, pb, &b, err, sizeof err), HLT_OK, "%s", err);
    const int64_t rows[] = {5};
    run_batches(b, rows, 1, false);
    backend_xrt.instance_destroy(b);
    backend_xrt.instance_destroy(NULL);
    model_config_destroy(cfg);
}
