/* The hltinfer command, run as a subprocess against a real hltinfer-server: each subcommand,
 * file and random inputs, .npy outputs checked against the reference vectors, and the exit
 * codes and "error: <STATUS_NAME>: <message>" lines of failing calls. */
#include "cli_npy.h"
#include "fixture.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fx_server_t srv;
static char cli[4096];

static void find_cli(void)
{
    snprintf(cli, sizeof cli, "%s/client/hltinfer", fx_build_root());
}

static void start_server(void)
{
    find_cli();
    cr_assert(fx_server_start(&srv, NULL), "hltinfer-server did not start");
}

static void stop_server(void)
{
    int st = fx_server_stop(&srv);
    cr_expect_eq(st, 0, "hltinfer-server exited with status %d", st);
}

TestSuite(cli, .init = start_server, .fini = stop_server, .timeout = 120);
TestSuite(cli_usage, .init = find_cli, .timeout = 60);

/* Runs hltinfer --url <server> ARGS...; the argument list ends with NULL. */
static fx_run_t run(const char *url, ...)
{
    const char *argv[40] = {cli};
    size_t n = 1;
    if (url) {
        argv[n++] = "--url";
        argv[n++] = url;
    }
    va_list ap;
    va_start(ap, url);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 39)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    fx_run_t r;
    cr_assert(fx_run(argv, &r), "cannot run %s", cli);
    return r;
}

#define EXPECT_OK(r) cr_expect_eq((r).status, 0, "exit %d, stderr: %s", (r).status, (r).err)

Test(cli, health)
{
    fx_run_t r = run(srv.url, "health", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "live: true") && strstr(r.out, "ready: true"), "%s", r.out);
    fx_run_free(&r);
}

Test(cli, models)
{
    fx_run_t r = run(srv.url, "models", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "NAME"), "%s", r.out);
    cr_expect(strstr(r.out, "facile      1        READY"), "%s", r.out);
    cr_expect(strstr(r.out, "jet_tagger  1        READY"), "%s", r.out);
    fx_run_free(&r);
}

Test(cli, metadata)
{
    fx_run_t r = run(srv.url, "metadata", "jet_tagger", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "model: jet_tagger\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  jet_features  FP32  [-1, 64]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  probabilities  FP32  [-1, 5]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  logits  FP32  [-1, 5]\n"), "%s", r.out);
    fx_run_free(&r);
}

Test(cli, config_prints_json)
{
    fx_run_t r = run(srv.url, "config", "facile", "--model-version", "1", NULL);
    EXPECT_OK(r);
    json_error_t je;
    json_t *j = json_loads(r.out, 0, &je);
    cr_assert_not_null(j, "not JSON (%s): %s", je.text, r.out);
    cr_expect_str_eq(json_string_value(json_object_get(j, "name")), "facile");
    cr_expect_eq(json_integer_value(json_object_get(j, "max_batch_size")), 16000);
    json_t *in = json_array_get(json_object_get(j, "input"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(in, "name")), "input");
    cr_expect_str_eq(json_string_value(json_object_get(in, "data_type")), "TYPE_FP32");
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(in, "dims"), 0)), 15);
    json_t *db = json_object_get(j, "dynamic_batching");
    cr_expect_eq(json_integer_value(json_object_get(db, "max_queue_delay_microseconds")), 100);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "instance_group"), 0), "kind")),
                     "KIND_CPU");
    json_decref(j);
    fx_run_free(&r);
}

/* Reads DIR/NAME.npy and compares it with the reference output NAME of case c. */
static void expect_npy_matches(const char *dir, const fx_case_t *c, size_t out)
{
    char path[4096], err[512], why[512];
    snprintf(path, sizeof path, "%s/%s.npy", dir, c->out[out].name);
    size_t n;
    uint8_t *buf = fx_read_file(path, &n);
    cr_assert_not_null(buf, "%s was not written", path);
    npy_array_t a;
    cr_assert_eq(npy_parse(buf, n, &a, err, sizeof err), HLT_OK, "%s: %s", path, err);
    cr_expect_eq(a.dtype, HLT_TYPE_FP32);
    cr_expect_eq(a.rank, c->out[out].rank);
    cr_expect(!memcmp(a.shape, c->out[out].shape, a.rank * sizeof a.shape[0]));
    cr_assert_eq(a.size, c->out[out].size);
    cr_expect(fx_close_f32(a.data, c->out[out].data, a.size / 4, why, sizeof why), "%s: %s", path,
              why);
    free(buf);
}

Test(cli, infer_raw_file_to_npy_outputs)
{
    fx_case_t c;
    cr_assert(fx_case_load("jet_tagger", "batch64", &c));
    char dir[256], input[4200];
    cr_assert(fx_tmpdir(dir, sizeof dir));
    snprintf(input, sizeof input,
             "jet_features=%s/models/jet_tagger/reference/batch64.jet_features.bin",
             fx_source_root());
    fx_run_t r = run(srv.url, "infer", "jet_tagger", "--input", input, "--output-dir", dir, "--id",
                     "cli-1", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "model: jet_tagger  version: 1  id: cli-1"), "%s", r.out);
    cr_expect(strstr(r.out, "probabilities  FP32  [64, 5]  first: "), "%s", r.out);
    cr_expect(strstr(r.out, "min ") && strstr(r.out, "max ") && strstr(r.out, "mean 0.2"),
              "softmax rows average 1/5: %s", r.out);
    expect_npy_matches(dir, &c, 0);
    expect_npy_matches(dir, &c, 1);
    fx_run_free(&r);
    fx_rmdir(dir);
    fx_case_free(&c);
}

Test(cli, infer_npy_input_and_output_subset)
{
    fx_case_t c;
    cr_assert(fx_case_load("facile", "n7", &c));
    char dir[256], npy[300], arg[400], err[512];
    cr_assert(fx_tmpdir(dir, sizeof dir));
    snprintf(npy, sizeof npy, "%s/in.npy", dir);
    cr_assert_eq(npy_write(npy, HLT_TYPE_FP32, c.in[0].rank, c.in[0].shape, c.in[0].data,
                           c.in[0].size, err, sizeof err),
                 HLT_OK, "%s", err);
    snprintf(arg, sizeof arg, "input=%s", npy);
    fx_run_t r = run(srv.url, "infer", "facile", "--input", arg, "--output", "output",
                     "--output-dir", dir, NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "output  FP32  [7, 1]"), "%s", r.out);
    expect_npy_matches(dir, &c, 0);
    fx_run_free(&r);
    fx_rmdir(dir);
    fx_case_free(&c);
}

Test(cli, infer_raw_file_with_explicit_shape)
{
    char input[4200];
    snprintf(input, sizeof input, "input=%s/models/facile/reference/n7.input.bin",
             fx_source_root());
    fx_run_t r = run(srv.url, "infer", "facile", "--input", input, "--shape", "input=7x15", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "output  FP32  [7, 1]"), "%s", r.out);
    fx_run_free(&r);
    r = run(srv.url, "infer", "facile", "--input", input, "--shape", "input=5x15", NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "error: INVALID_ARGUMENT: model 'facile': input 'input': 420 bytes"),
              "%s", r.err);
    fx_run_free(&r);
}

Test(cli, infer_random)
{
    fx_run_t r = run(srv.url, "infer", "jet_tagger", "--random", "jet_features=4x64", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "probabilities  FP32  [4, 5]  first: "), "%s", r.out);
    cr_expect(strstr(r.out, "logits  FP32  [4, 5]  first: "), "%s", r.out);
    fx_run_free(&r);
}

Test(cli, stats)
{
    fx_run_t r = run(srv.url, "infer", "jet_tagger", "--random", "jet_features=3x64", NULL);
    EXPECT_OK(r);
    fx_run_free(&r);
    r = run(srv.url, "stats", "jet_tagger", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "model: jet_tagger  version: 1"), "%s", r.out);
    cr_expect(strstr(r.out, "inference_count: 3"), "%s", r.out);
    cr_expect(strstr(r.out, "success: 1 "), "%s", r.out);
    fx_run_free(&r);
    r = run(srv.url, "stats", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "model: facile") && strstr(r.out, "model: jet_tagger"), "%s", r.out);
    fx_run_free(&r);
}

Test(cli, failing_calls_print_the_status)
{
    fx_run_t r = run(srv.url, "metadata", "nosuch", NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(!strncmp(r.err, "error: NOT_FOUND: ", 18), "%s", r.err);
    cr_expect(strstr(r.err, "'nosuch'"), "%s", r.err);
    fx_run_free(&r);
    r = run(srv.url, "infer", "jet_tagger", "--random", "jet_features=2x63", NULL);
    cr_expect_eq(r.status, 1);
    cr_expect_str_eq(r.err, "error: INVALID_ARGUMENT: model 'jet_tagger': input 'jet_features': "
                            "shape[1] = 63, expected 64\n");
    fx_run_free(&r);
    r = run(srv.url, "infer", "jet_tagger", "--random", "nosuch=2x64", NULL);
    cr_expect_eq(r.status, 2, "a wrong command line");
    cr_expect(strstr(r.err, "error: INVALID_ARGUMENT: model 'jet_tagger' has no input 'nosuch'"),
              "%s", r.err);
    fx_run_free(&r);
    r = run(srv.url, "infer", "jet_tagger", "--input", "jet_features=/nonexistent.bin", NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "error: NOT_FOUND: cannot open /nonexistent.bin"), "%s", r.err);
    fx_run_free(&r);
    char dir[256], bad[300], arg[400];
    cr_assert(fx_tmpdir(dir, sizeof dir));
    snprintf(bad, sizeof bad, "%s/bad.npy", dir);
    FILE *f = fopen(bad, "wb");
    cr_assert_not_null(f);
    fputs("0123456789abcdef", f);
    fclose(f);
    snprintf(arg, sizeof arg, "input=%s", bad);
    r = run(srv.url, "infer", "facile", "--input", arg, NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "error: INVALID_ARGUMENT: ") && strstr(r.err, "bad magic"), "%s",
              r.err);
    fx_run_free(&r);
    snprintf(arg, sizeof arg, "input=%s/bad.npy.bin", dir);
    rename(bad, arg + 6);
    r = run(srv.url, "infer", "facile", "--input", arg, NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "16 bytes is not a whole number of 'input' rows (60 bytes each)"), "%s",
              r.err);
    fx_run_free(&r);
    fx_rmdir(dir);
    r = run(srv.url, "config", "nosuch", NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(!strncmp(r.err, "error: NOT_FOUND: ", 18), "%s", r.err);
    fx_run_free(&r);
}

Test(cli_usage, unreachable_server)
{
    int port, dead = fx_dead_port_open(&port);
    char url[64];
    snprintf(url, sizeof url, "127.0.0.1:%d", port);
    fx_run_t r = run(url, "--timeout", "5", "health", NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(!strncmp(r.err, "error: UNAVAILABLE: ", 20), "%s", r.err);
    fx_run_free(&r);
    fx_dead_port_close(dead);
}

Test(cli_usage, help_for_every_command)
{
    static const char *const cmds[] = {"health", "models", "metadata", "config", "infer", "stats"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        fx_run_t r = run(NULL, cmds[i], "--help", NULL);
        EXPECT_OK(r);
        char want[64];
        snprintf(want, sizeof want, "Usage: hltinfer [GLOBAL OPTIONS] %s", cmds[i]);
        cr_expect(strstr(r.out, want), "%s --help: %s", cmds[i], r.out);
        fx_run_free(&r);
    }
    fx_run_t r = run(NULL, "--help", NULL);
    EXPECT_OK(r);
    cr_expect(strstr(r.out, "Commands:"), "%s", r.out);
    fx_run_free(&r);
}

Test(cli_usage, bad_command_lines_exit_2)
{
    fx_run_t r = run(NULL, "frobnicate", NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "error: INVALID_ARGUMENT: unknown command 'frobnicate'"), "%s", r.err);
    fx_run_free(&r);
    r = run(NULL, NULL);
    cr_expect_eq(r.status, 2);
    fx_run_free(&r);
    r = run(NULL, "infer", NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "the model name"), "%s", r.err);
    fx_run_free(&r);
    r = run(NULL, "health", "--bogus", NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "unknown option '--bogus'"), "%s", r.err);
    fx_run_free(&r);
    r = run(NULL, "metadata", "m", "--random", "x=2", NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--random only applies to 'infer'"), "%s", r.err);
    fx_run_free(&r);
    r = run(NULL, "infer", "m", "--input", "novalue", NULL);
    cr_expect_eq(r.status, 2);
    fx_run_free(&r);
    r = run(NULL, "--timeout", "-3", "health", NULL);
    cr_expect_eq(r.status, 2);
    fx_run_free(&r);
}
