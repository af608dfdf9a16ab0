/* Tests for server/backend/registry.c: --backend-config parsing (backend_configure), the
 * allowed-device logic, what the registry reports for a restricted or disabled backend; and,
 * in suite `placement`, how model.c places instances under those restrictions and what
 * ModelConfig then reports (model_reported_config). The placement tests need an OpenCL device
 * (PoCL's CPU device is enough: POCL_DEVICES="pthread pthread" makes two) and skip without one;
 * they live here rather than in tests/server because OpenCL runtimes need backend_test_env's
 * LeakSanitizer suppressions.
 *
 * The registry probes each backend once per process and configuration must come first:
 * criterion runs every test in its own process, so each test starts unprobed and unconfigured. */
#include "backend/backend.h"
#include "inference.pb-c.h"
#include "model.h"

#include "log.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRLEN 1024

static void quiet(void)
{
    hlt_log_level = -1; /* expected load failures would otherwise log */
}

TestSuite(registry, .init = quiet, .timeout = 120);

static bool built(const char *name)
{
    for (const char *const *n = backend_names(); *n; n++)
        if (!strcmp(*n, name))
            return true;
    return false;
}

/* Configures spec and expects INVALID_ARGUMENT with every string of want (NULL-ended) in the
 * message. */
static void rejects(const char *spec, const char *const *want)
{
    char err[ERRLEN] = "";
    hlt_status st = backend_configure(spec, err, sizeof err);
    cr_assert_eq(st, HLT_INVALID_ARGUMENT, "'%s': status %d (%s)", spec, st, err);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "--backend-config=%s: ", spec);
    cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0, "'%s' should start with '%s'", err,
                 prefix);
    for (size_t i = 0; want[i]; i++)
        cr_assert(strstr(err, want[i]), "message \"%s\" should contain \"%s\"", err, want[i]);
}

static void configure_ok(const char *spec)
{
    char err[ERRLEN] = "";
    cr_assert_eq(backend_configure(spec, err, sizeof err), HLT_OK, "'%s': %s", spec, err);
    cr_assert_str_empty(err);
}

Test(registry, unknown_backend_is_refused_naming_the_backends_of_this_build)
{
    rejects("nosuch,devices=0",
            (const char *const[]){"unknown backend 'nosuch'", "backends in this build: cpu", NULL});
    char err[ERRLEN];
    backend_configure("nosuch,devices=0", err, sizeof err);
    for (const char *const *n = backend_names(); *n; n++)
        cr_assert(strstr(err, *n), "\"%s\" should name backend %s", err, *n);
    rejects(",devices=0", (const char *const[]){"backends in this build: cpu", NULL});
    rejects("CPU,devices=0", (const char *const[]){"unknown backend 'CPU'", NULL});
}

/* A backend of the project missing from this build is accepted with a warning (one deployment
 * script for every build), after the same checks of the setting. */
Test(registry, project_backend_missing_from_this_build_only_warns)
{
    static const char *const project[] = {"cpu", "opencl", "cuda", "xrt"};
    const char *missing = NULL;
    for (size_t i = 0; i < 4 && !missing; i++)
        if (!built(project[i]))
            missing = project[i];
    if (!missing)
        cr_skip_test("every backend of the project is built here");
    char spec[64], err[ERRLEN] = "";
    snprintf(spec, sizeof spec, "%s,enabled=false", missing);
    cr_assert_eq(backend_configure(spec, err, sizeof err), HLT_OK, "%s", err);
    cr_assert(strstr(err, "is not built into this server; the setting has no effect"), "%s", err);
    snprintf(spec, sizeof spec, "%s,colour=red", missing);
    rejects(spec, (const char *const[]){"unknown setting 'colour'", NULL});
    snprintf(spec, sizeof spec, "%s,devices=x", missing);
    rejects(spec, (const char *const[]){"devices must be", NULL});
}

Test(registry, unknown_setting_is_refused_naming_the_settings)
{
    rejects("cpu,colour=red", (const char *const[]){"unknown setting 'colour' for backend 'cpu'",
                                                    "devices=<index>[,<index>...]", "devices=none",
                                                    "enabled=true|false", NULL});
    rejects("cpu,=1", (const char *const[]){"unknown setting ''", NULL});
    rejects("cpu,device=0", (const char *const[]){"unknown setting 'device'", NULL});
}

Test(registry, spec_without_setting_is_refused)
{
    const char *const want[] = {"expected <backend>,<setting>=<value>", "enabled=true|false", NULL};
    rejects("cpu", want);
    rejects("cpu,", want);
    rejects("cpu,devices", want);
    rejects("", want);
}

Test(registry, malformed_device_lists_are_refused)
{
    const char *bad[] = {"",
                         "0,,1",
                         ",0",
                         "0,",
                         "-1",
                         "+1",
                         "1a",
                         " 1",
                         "1 ",
                         "256",
                         "0x1",
                         "1e2",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char spec[64], quoted[64];
        snprintf(spec, sizeof spec, "cpu,devices=%s", bad[i]);
        snprintf(quoted, sizeof quoted, "not '%s'", bad[i]);
        rejects(spec, (const char *const[]){"devices must be 'none' or a comma-separated list of "
                                            "device indices 0..255",
                                            quoted, NULL});
    }
}

Test(registry, malformed_enabled_values_are_refused)
{
    const char *bad[] = {"", "maybe", "TRUE", "1", "no"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "cpu,enabled=%s", bad[i]);
        rejects(spec, (const char *const[]){"enabled must be true or false", NULL});
    }
}

Test(registry, refused_spec_changes_nothing)
{
    char err[ERRLEN];
    cr_assert_eq(backend_configure("cpu,devices=0,x", err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert_eq(backend_configure("cpu,enabled=nope", err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert_null(backend_config_devices(&backend_cpu));
    cr_assert_eq(backend_devices(&backend_cpu, err, sizeof err), 1, "%s", err);
}

Test(registry, unrestricted_backend_allows_every_device_it_has)
{
    char reason[256] = "x", desc[512];
    cr_assert_eq(backend_devices(&backend_cpu, reason, sizeof reason), 1);
    cr_assert_str_empty(reason);
    cr_assert_null(backend_config_devices(&backend_cpu));
    cr_assert(backend_device_allowed(&backend_cpu, 0));
    cr_assert_not(backend_device_allowed(&backend_cpu, 1), "device 1 does not exist");
    cr_assert_not(backend_device_allowed(&backend_cpu, -1));
    cr_assert_not(backend_device_allowed(NULL, 0));
    int devs[4] = {-1, -1, -1, -1};
    cr_assert_eq(backend_allowed_devices(&backend_cpu, devs, 4), 1);
    cr_assert_eq(devs[0], 0);
    cr_assert_eq(devs[1], -1);
    backend_describe("cpu", desc, sizeof desc);
    cr_assert_eq(strncmp(desc, "1 device (", 10), 0, "%s", desc);
}

Test(registry, device_list_may_hold_commas_and_devices_the_machine_lacks)
{
    configure_ok("cpu,devices=3,0,7");
    cr_assert_str_eq(backend_config_devices(&backend_cpu), "3,0,7");
    char reason[256] = "x", desc[512];
    cr_assert_eq(backend_devices(&backend_cpu, reason, sizeof reason), 1, "%s", reason);
    cr_assert(backend_device_allowed(&backend_cpu, 0));
    cr_assert_not(backend_device_allowed(&backend_cpu, 3), "listed but not found");
    int devs[4] = {-1, -1, -1, -1};
    cr_assert_eq(backend_allowed_devices(&backend_cpu, devs, 4), 1);
    cr_assert_eq(devs[0], 0);
    backend_describe("cpu", desc, sizeof desc);
    cr_assert_eq(strncmp(desc, "1 of 1 device allowed (--backend-config devices=3,0,7) (", 56), 0,
                 "%s", desc);
    char all[2048];
    backend_describe_all(all, sizeof all);
    cr_assert(strstr(all, "cpu: 1 of 1 device allowed (--backend-config devices=3,0,7) ("), "%s",
              all);
}

Test(registry, device_list_leaving_no_found_device_reports_none_with_the_flag)
{
    configure_ok("cpu,devices=3");
    char reason[256] = "", desc[512];
    cr_assert_eq(backend_devices(&backend_cpu, reason, sizeof reason), 0);
    cr_assert_str_eq(reason, "--backend-config=cpu,devices=3 leaves none of the 1 device found");
    cr_assert_not(backend_device_allowed(&backend_cpu, 0));
    cr_assert_not(backend_device_allowed(&backend_cpu, 3));
    int devs[1] = {-1};
    cr_assert_eq(backend_allowed_devices(&backend_cpu, devs, 1), 0);
    cr_assert_eq(devs[0], -1);
    backend_describe("cpu", desc, sizeof desc);
    cr_assert_str_eq(desc,
                     "unavailable (--backend-config=cpu,devices=3 leaves none of the 1 device "
                     "found)");
}

Test(registry, enabled_false_disables_with_the_flag_as_reason)
{
    configure_ok("cpu,enabled=false");
    char reason[256] = "", desc[512];
    cr_assert_eq(backend_devices(&backend_cpu, reason, sizeof reason), 0);
    cr_assert_str_eq(reason, "disabled by --backend-config=cpu,enabled=false");
    cr_assert_not(backend_device_allowed(&backend_cpu, 0));
    int devs[1];
    cr_assert_eq(backend_allowed_devices(&backend_cpu, devs, 1), 0);
    const backend_i *b = (const backend_i *)1;
    cr_assert_eq(backend_lookup("cpu", &b, reason, sizeof reason), 0);
    cr_assert_eq(b, &backend_cpu, "a compiled-in backend still resolves");
    cr_assert_str_eq(reason, "disabled by --backend-config=cpu,enabled=false");
    backend_describe("cpu", desc, sizeof desc);
    cr_assert_str_eq(desc, "unavailable (disabled by --backend-config=cpu,enabled=false)");
}

Test(registry, devices_none_disables_with_the_flag_as_reason)
{
    configure_ok("cpu,devices=none");
    char reason[256] = "";
    cr_assert_eq(backend_devices(&backend_cpu, reason, sizeof reason), 0);
    cr_assert_str_eq(reason, "disabled by --backend-config=cpu,devices=none");
    cr_assert_null(backend_config_devices(&backend_cpu));
}

Test(registry, later_value_of_a_setting_replaces_the_earlier)
{
    configure_ok("cpu,enabled=false");
    configure_ok("cpu,enabled=true");
    configure_ok("cpu,devices=none");
    configure_ok("cpu,devices=5");
    configure_ok("cpu,devices=0");
    cr_assert_str_eq(backend_config_devices(&backend_cpu), "0");
    char reason[256] = "";
    cr_assert_eq(backend_devices(&backend_cpu, reason, sizeof reason), 1, "%s", reason);
    cr_assert(backend_device_allowed(&backend_cpu, 0));
}

Test(registry, enabled_false_wins_over_a_device_list)
{
    configure_ok("cpu,devices=0");
    configure_ok("cpu,enabled=false");
    char reason[256] = "";
    cr_assert_eq(backend_devices(&backend_cpu, reason, sizeof reason), 0);
    cr_assert_str_eq(reason, "disabled by --backend-config=cpu,enabled=false");
}

Test(registry, configuring_a_probed_backend_is_refused)
{
    char err[ERRLEN] = "";
    cr_assert_eq(backend_devices(&backend_cpu, NULL, 0), 1);
    cr_assert_eq(backend_configure("cpu,devices=none", err, sizeof err), HLT_FAILED_PRECONDITION);
    cr_assert_str_eq(err, "--backend-config=cpu,devices=none: backend 'cpu' was already probed");
    cr_assert_eq(backend_devices(&backend_cpu, NULL, 0), 1, "the refused value changed nothing");
    /* a bad value is still reported as such */
    cr_assert_eq(backend_configure("cpu,colour=red", err, sizeof err), HLT_INVALID_ARGUMENT);
}

Test(registry, lookup_of_an_unknown_backend_says_so)
{
    const backend_i *b = (const backend_i *)1;
    char reason[256] = "";
    cr_assert_eq(backend_lookup("nosuch", &b, reason, sizeof reason), 0);
    cr_assert_null(b);
    cr_assert_str_eq(reason, "not built into this server");
    char desc[256];
    backend_describe("nosuch", desc, sizeof desc);
    cr_assert_str_eq(desc, "unavailable (not built into this server)");
}

/* Whether a shared object whose path contains name is mapped into this process. */
static bool mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

Test(registry, disabled_cuda_module_is_never_loaded)
{
    if (!built("cuda"))
        cr_skip_test("built without the CUDA backend");
    configure_ok("cuda,enabled=false");
    cr_assert_null(backend_find("cuda"));
    const backend_i *b = (const backend_i *)1;
    char reason[256] = "", all[2048];
    cr_assert_eq(backend_lookup("cuda", &b, reason, sizeof reason), 0);
    cr_assert_null(b);
    cr_assert_str_eq(reason, "disabled by --backend-config=cuda,enabled=false");
    backend_describe_all(all, sizeof all);
    cr_assert(strstr(all, "cuda: unavailable (disabled by --backend-config=cuda,enabled=false)"),
              "%s", all);
    cr_assert_not(mapped("libhltbackend_cuda"), "the CUDA module was loaded");
}

Test(registry, cuda_module_is_loaded_on_first_use_when_enabled)
{
    /* the control for the test above: the module's name is what mapped() looks for */
    if (!built("cuda"))
        cr_skip_test("built without the CUDA backend");
    configure_ok("cuda,enabled=true");
    cr_assert_not(mapped("libhltbackend_cuda"));
    if (!backend_find("cuda"))
        cr_skip_test("the CUDA module does not load here");
    cr_assert(mapped("libhltbackend_cuda"));
}

/* ---- placement: model.c under --backend-config ---- */

/* The same timeout as suite registry: criterion 2.4.1 leaks in its runner process (a report
 * under LeakSanitizer) when the suites of one executable differ in timeout. */
TestSuite(placement, .init = quiet, .timeout = 120);

static char tmp_root[256];

static void rm_tree(void)
{
    if (!tmp_root[0])
        return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    cr_assert_eq(system(cmd), 0);
    tmp_root[0] = '\0';
}

/* A model directory <tmp>/jet_tagger holding the example jet_tagger (model file linked) with
 * config.json = config. Returns the directory (static buffer). */
static const char *model_dir(const char *config)
{
    const char *src = getenv("HLT_SOURCE_ROOT");
    cr_assert(src && *src, "HLT_SOURCE_ROOT is not set (run the suite through meson test)");
    snprintf(tmp_root, sizeof tmp_root, "/tmp/hlt-test-registry-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_root));
    static char dir[512];
    char path[1024], target[1024];
    snprintf(dir, sizeof dir, "%s/jet_tagger", tmp_root);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/1", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/1/model.onnx", dir);
    snprintf(target, sizeof target, "%s/models/jet_tagger/1/model.onnx", src);
    cr_assert_eq(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(config, f);
    fclose(f);
    return dir;
}

/* Two PoCL CPU devices (no effect on other OpenCL platforms), then the number of OpenCL devices
 * found; skips the test unless there are at least `need`. Call after configuring. */
static int opencl_devices(int need)
{
    if (!built("opencl"))
        cr_skip_test("built without the OpenCL backend");
    setenv("POCL_DEVICES", "pthread pthread", 1);
    const backend_i *b = NULL;
    char reason[256] = "";
    int n = backend_lookup("opencl", &b, reason, sizeof reason);
    if (n == 0 && !strstr(reason, "--backend-config"))
        cr_skip_test("no OpenCL device: %s", reason);
    if (n < need && !strstr(reason, "--backend-config"))
        cr_skip_test("%d OpenCL device(s), the test needs %d", n, need);
    return n;
}

static model_t *load_ok(const char *config)
{
    model_load_options_t opts = {64, 0, 0, 0};
    model_t *m = NULL;
    char err[ERRLEN] = "";
    hlt_status st = model_load(model_dir(config), "jet_tagger", 1, &opts, &m, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "model_load: %s", err);
    return m;
}

static void load_fails(const char *config, hlt_status want_st, const char *want)
{
    model_load_options_t opts = {64, 0, 0, 0};
    model_t *m = NULL;
    char err[ERRLEN] = "";
    hlt_status st = model_load(model_dir(config), "jet_tagger", 1, &opts, &m, err, sizeof err);
    cr_assert_eq(st, want_st, "status %d (%s)", st, err);
    cr_assert_null(m);
    cr_assert(strstr(err, want), "message \"%s\" should contain \"%s\"", err, want);
}

static const char *param(const model_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_parameters; i++)
        if (!strcmp(cfg->parameters[i].key, key))
            return cfg->parameters[i].value;
    return NULL;
}

#define GPU_CFG(group, params) "{\"instance_group\": [" group "], \"parameters\": {" params "}}"
#define OPENCL_PARAM "\"gpu_backend\": {\"string_value\": \"opencl\"}"

Test(placement, kind_gpu_without_gpus_runs_on_every_allowed_device, .fini = rm_tree)
{
    configure_ok("opencl,devices=1");
    opencl_devices(2);
    model_t *m =
        load_ok(GPU_CFG("{\"name\": \"g\", \"kind\": \"KIND_GPU\", \"count\": 2}", OPENCL_PARAM));
    cr_assert_str_eq(model_placement(m), "opencl:1 x2");
    const model_config_t *rep = model_reported_config(m), *cfg = model_config(m);
    cr_assert_eq(rep->n_instance_groups, 1);
    cr_assert_eq(rep->instance_groups[0].n_gpus, 1);
    cr_assert_eq(rep->instance_groups[0].gpus[0], 1);
    cr_assert_eq(rep->instance_groups[0].count, 2);
    cr_assert_eq(cfg->instance_groups[0].n_gpus, 0, "the loaded config itself is untouched");
    cr_assert_eq(rep->n_parameters, cfg->n_parameters, "gpu_backend was given: nothing added");
    model_unref(m);
}

Test(placement, kind_gpu_without_gpus_or_flag_uses_every_device, .fini = rm_tree)
{
    opencl_devices(2);
    model_t *m = load_ok(GPU_CFG("{\"kind\": \"KIND_GPU\"}", OPENCL_PARAM));
    cr_assert_str_eq(model_placement(m), "opencl:0 x1, opencl:1 x1");
    const model_config_t *rep = model_reported_config(m);
    cr_assert_eq(rep->instance_groups[0].n_gpus, 2);
    cr_assert_eq(rep->instance_groups[0].gpus[0], 0);
    cr_assert_eq(rep->instance_groups[0].gpus[1], 1);
    model_unref(m);
}

Test(placement, listed_gpus_keep_the_backend_numbering, .fini = rm_tree)
{
    configure_ok("opencl,devices=1");
    opencl_devices(2);
    model_t *m = load_ok(GPU_CFG("{\"kind\": \"KIND_GPU\", \"gpus\": [1]}", OPENCL_PARAM));
    cr_assert_str_eq(model_placement(m), "opencl:1 x1", "gpus [1] is device 1, not renumbered");
    model_unref(m);
}

Test(placement, listed_gpu_the_flag_excludes_fails_the_load, .fini = rm_tree)
{
    configure_ok("opencl,devices=1");
    opencl_devices(2);
    load_fails(GPU_CFG("{\"name\": \"g\", \"kind\": \"KIND_GPU\", \"gpus\": [1, 0]}", OPENCL_PARAM),
               HLT_INVALID_ARGUMENT,
               "model 'jet_tagger': instance group 'g' names opencl:0, which "
               "--backend-config=opencl,devices=1 excludes");
}

Test(placement, listed_gpu_the_machine_lacks_fails_the_load, .fini = rm_tree)
{
    int n = opencl_devices(1);
    char want[200];
    snprintf(want, sizeof want,
             "model 'jet_tagger': instance group 'g' names device 5, but backend opencl has %d", n);
    load_fails(GPU_CFG("{\"name\": \"g\", \"kind\": \"KIND_GPU\", \"gpus\": [5]}", OPENCL_PARAM),
               HLT_INVALID_ARGUMENT, want);
}

Test(placement, flag_leaving_no_device_makes_the_model_unavailable, .fini = rm_tree)
{
    configure_ok("opencl,devices=7");
    int n = opencl_devices(1);
    cr_assert_eq(n, 0);
    load_fails(GPU_CFG("{\"name\": \"g\", \"kind\": \"KIND_GPU\"}", OPENCL_PARAM), HLT_UNAVAILABLE,
               "model 'jet_tagger': instance group 'g' (KIND_GPU) has no device: opencl: "
               "--backend-config=opencl,devices=7 leaves none of the ");
}

Test(placement, disabled_backend_makes_the_model_unavailable, .fini = rm_tree)
{
    if (!built("opencl"))
        cr_skip_test("built without the OpenCL backend");
    configure_ok("opencl,enabled=false");
    load_fails(GPU_CFG("{\"name\": \"g\", \"kind\": \"KIND_GPU\"}", OPENCL_PARAM), HLT_UNAVAILABLE,
               "has no device: opencl: disabled by --backend-config=opencl,enabled=false");
}

Test(placement, chosen_gpu_backend_is_reported, .fini = rm_tree)
{
    if (built("cuda"))
        configure_ok("cuda,enabled=false"); /* so that KIND_GPU alone picks OpenCL here */
    opencl_devices(1);
    model_t *m = load_ok("{\"instance_group\": [{\"kind\": \"KIND_GPU\", \"gpus\": [0]}, "
                         "{\"kind\": \"KIND_CPU\", \"count\": 2}], "
                         "\"parameters\": {\"note\": {\"string_value\": \"x\"}}}");
    cr_assert_str_eq(model_placement(m), "opencl:0 x1, cpu:0 x2");
    const model_config_t *rep = model_reported_config(m), *cfg = model_config(m);
    cr_assert_null(param(cfg, "gpu_backend"), "the loaded config itself is untouched");
    cr_assert_eq(rep->n_parameters, cfg->n_parameters + 1);
    cr_assert_str_eq(param(rep, "note"), "x");
    cr_assert_str_eq(param(rep, "gpu_backend"), "opencl");
    cr_assert_eq(rep->instance_groups[1].n_gpus, 0, "KIND_CPU lists no devices");

    /* what the ModelConfig RPC sends */
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(model_config_pack_response(rep, &buf, &len), HLT_OK);
    Inference__ModelConfigResponse *r = inference__model_config_response__unpack(NULL, len, buf);
    cr_assert_not_null(r);
    Inference__ModelConfig *pc = r->config;
    cr_assert_eq(pc->n_instance_group, 2);
    cr_assert_eq(pc->instance_group[0]->n_gpus, 1);
    cr_assert_eq(pc->instance_group[0]->gpus[0], 0);
    cr_assert_eq(pc->instance_group[1]->n_gpus, 0);
    bool seen = false;
    for (size_t i = 0; i < pc->n_parameters; i++)
        if (!strcmp(pc->parameters[i]->key, "gpu_backend"))
            seen = !strcmp(pc->parameters[i]->value->string_value, "opencl");
    cr_assert(seen, "gpu_backend=opencl in the packed config");
    inference__model_config_response__free_unpacked(r, NULL);
    free(buf);
    model_unref(m);
}

Test(placement, kind_cpu_model_reports_its_config_unchanged, .fini = rm_tree)
{
    model_t *m = load_ok("{\"instance_group\": [{\"kind\": \"KIND_CPU\", \"count\": 2}]}");
    cr_assert_str_eq(model_placement(m), "cpu:0 x2");
    const model_config_t *rep = model_reported_config(m), *cfg = model_config(m);
    cr_assert_eq(rep->instance_groups[0].n_gpus, 0);
    cr_assert_eq(rep->n_parameters, cfg->n_parameters);
    cr_assert_null(param(rep, "gpu_backend"));
    model_unref(m);
}

Test(placement, cpu_flag_leaving_no_device_makes_cpu_models_unavailable, .fini = rm_tree)
{
    configure_ok("cpu,devices=1");
    load_fails("{\"instance_group\": [{\"name\": \"c\", \"kind\": \"KIND_CPU\"}]}", HLT_UNAVAILABLE,
               "model 'jet_tagger': instance group 'c' (KIND_CPU) has no device: cpu: "
               "--backend-config=cpu,devices=1 leaves none of the 1 device found");
}
