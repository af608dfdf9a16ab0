/* Tests for server/model_config.c: Triton's ModelConfig in protobuf's JSON mapping -> parsed
 * config; completion and validation against the example ONNX graphs (models/); packing as a
 * ModelConfigResponse, checked by unpacking with protobuf-c. Every error path asserts on the
 * message, since the message is what an operator reads in the repository index. */
#include "model_config.h"
#include "test_util.h"

#include "engine/engine.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 1024

TestSuite(model_config, .fini = tu_cleanup_temp_dirs);

static model_config_t *parse_ok(const char *name, const char *json)
{
    model_config_t *cfg = NULL;
    char err[ERRLEN] = "";
    hlt_status st = model_config_parse(name, json, json ? strlen(json) : 0, &cfg, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "parse failed: %s", err);
    cr_assert_not_null(cfg);
    return cfg;
}

/* Parses a bad document: INVALID_ARGUMENT whose message contains every string in want (NULL
 * terminated), and *out untouched. */
static void parse_err_v(const char *name, const char *json, const char *const *want)
{
    model_config_t *cfg = (model_config_t *)(uintptr_t)0x1;
    char err[ERRLEN] = "";
    hlt_status st = model_config_parse(name, json, strlen(json), &cfg, err, sizeof err);
    cr_assert_eq(st, HLT_INVALID_ARGUMENT, "status %d for %s", st, json);
    cr_assert_eq(cfg, (model_config_t *)(uintptr_t)0x1, "*out must be untouched on failure");
    for (size_t i = 0; want[i]; i++)
        cr_assert(strstr(err, want[i]), "message \"%s\" should contain \"%s\"", err, want[i]);
}
#define parse_err(name, json, ...)                                                                 \
    parse_err_v((name), (json), (const char *const[]){__VA_ARGS__, NULL})

/* ---- parsing valid documents ---- */

static const char *full_config =
    "{\n"
    "  \"name\": \"full\",\n"
    "  \"backend\": \"onnxruntime\",\n"
    "  \"platform\": \"onnxruntime_onnx\",\n"
    "  \"max_batch_size\": \"128\",\n"
    "  \"input\": [\n"
    "    {\"name\": \"a\", \"data_type\": \"TYPE_FP32\", \"dims\": [\"64\", -1]},\n"
    "    {\"name\": \"b\", \"data_type\": 9, \"dims\": [3], \"optional\": true}\n"
    "  ],\n"
    "  \"output\": [{\"name\": \"y\", \"data_type\": \"TYPE_INT8\", \"dims\": [5]}],\n"
    "  \"dynamic_batching\": {\n"
    "    \"preferred_batch_size\": [4, \"8\"],\n"
    "    \"max_queue_delay_microseconds\": \"9007199254740993\",\n"
    "    \"preserve_ordering\": true,\n"
    "    \"priority_levels\": \"3\",\n"
    "    \"default_priority_level\": 2,\n"
    "    \"default_queue_policy\": {\"timeout_action\": \"DELAY\",\n"
    "        \"default_timeout_microseconds\": \"5000\", \"allow_timeout_override\": true,\n"
    "        \"max_queue_size\": 10},\n"
    "    \"priority_queue_policy\": {\n"
    "      \"1\": {\"timeout_action\": \"REJECT\", \"default_timeout_microseconds\": 7,\n"
    "            \"allow_timeout_override\": false, \"max_queue_size\": 1},\n"
    "      \"3\": {\"timeout_action\": 1, \"max_queue_size\": \"4294967295\"}\n"
    "    }\n"
    "  },\n"
    "  \"instance_group\": [\n"
    "    {\"name\": \"cpus\", \"kind\": \"KIND_CPU\", \"count\": 2},\n"
    "    {\"kind\": \"KIND_GPU\", \"count\": \"1\", \"gpus\": [0, \"1\"]},\n"
    "    {\"kind\": 3}\n"
    "  ],\n"
    "  \"version_policy\": {\"specific\": {\"versions\": [1, \"3\"]}},\n"
    "  \"parameters\": {\"threads\": {\"string_value\": \"4\"},\n"
    "                 \"mode\": {\"string_value\": \"fast\"}},\n"
    "  \"model_repository_agents\": {\"agents\": [\n"
    "    {\"name\": \"checksum\", \"parameters\": {\"MD5:1/model.onnx\": \"abc123\"}},\n"
    "    {\"name\": \"noop\"}\n"
    "  ]},\n"
    "  \"default_model_filename\": \"net.onnx\",\n"
    "  \"optimization\": {\"graph\": {\"level\": 1}},\n"
    "  \"model_warmup\": []\n"
    "}\n";

static const model_kv_t *find_kv(const model_kv_t *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].key, key))
            return &kv[i];
    return NULL;
}

Test(model_config, parses_every_field_of_a_triton_config)
{
    model_config_t *cfg = parse_ok("full", full_config);
    cr_assert_str_eq(cfg->name, "full");
    cr_assert_str_eq(cfg->backend, "onnxruntime");
    cr_assert_str_eq(cfg->platform, "onnxruntime_onnx");
    cr_assert_eq(cfg->max_batch_size, 128, "64-bit ints may be strings");
    cr_assert(cfg->max_batch_size_set);

    cr_assert_eq(cfg->n_inputs, 2);
    cr_assert_str_eq(cfg->inputs[0].name, "a");
    cr_assert_eq(cfg->inputs[0].dtype, HLT_TYPE_FP32);
    cr_assert_eq(cfg->inputs[0].rank, 2);
    cr_assert_eq(cfg->inputs[0].dims[0], 64);
    cr_assert_eq(cfg->inputs[0].dims[1], -1);
    cr_assert_not(cfg->inputs[0].optional);
    cr_assert_str_eq(cfg->inputs[1].name, "b");
    cr_assert_eq(cfg->inputs[1].dtype, HLT_TYPE_INT64, "data_type may be the enum number");
    cr_assert(cfg->inputs[1].optional);
    cr_assert_eq(cfg->n_outputs, 1);
    cr_assert_eq(cfg->outputs[0].dtype, HLT_TYPE_INT8);
    cr_assert_eq(cfg->outputs[0].rank, 1);
    cr_assert_eq(cfg->outputs[0].dims[0], 5);
    cr_assert_eq(model_config_find_input(cfg, "b", 1), 1);
    cr_assert_eq(model_config_find_input(cfg, "bb", 1), 1, "len bytes of the name are compared");
    cr_assert_eq(model_config_find_input(cfg, "c", 1), -1);
    cr_assert_eq(model_config_find_output(cfg, "y", 1), 0);
    cr_assert_eq(model_config_find_output(cfg, "a", 1), -1);

    const model_dynamic_batching_t *db = &cfg->dynamic_batching;
    cr_assert(db->enabled);
    cr_assert_eq(db->n_preferred, 2);
    cr_assert_eq(db->preferred_batch_size[0], 4);
    cr_assert_eq(db->preferred_batch_size[1], 8);
    cr_assert_eq(db->max_queue_delay_us, 9007199254740993ull, "beyond double precision");
    cr_assert(db->preserve_ordering);
    cr_assert_eq(db->priority_levels, 3);
    cr_assert_eq(db->default_priority_level, 2);
    cr_assert_eq(db->default_queue_policy.timeout_action, QUEUE_TIMEOUT_DELAY);
    cr_assert_eq(db->default_queue_policy.default_timeout_us, 5000);
    cr_assert(db->default_queue_policy.allow_timeout_override);
    cr_assert_eq(db->default_queue_policy.max_queue_size, 10);
    cr_assert_eq(db->n_priority_policies, 2);
    const model_priority_policy_t *p1 = NULL, *p3 = NULL;
    for (size_t i = 0; i < db->n_priority_policies; i++) {
        if (db->priority_policies[i].level == 1)
            p1 = &db->priority_policies[i];
        if (db->priority_policies[i].level == 3)
            p3 = &db->priority_policies[i];
    }
    cr_assert_not_null(p1);
    cr_assert_not_null(p3);
    cr_assert_eq(p1->policy.timeout_action, QUEUE_TIMEOUT_REJECT);
    cr_assert_eq(p1->policy.default_timeout_us, 7);
    cr_assert_not(p1->policy.allow_timeout_override);
    cr_assert_eq(p1->policy.max_queue_size, 1);
    cr_assert_eq(p3->policy.timeout_action, QUEUE_TIMEOUT_DELAY, "enum as number");
    cr_assert_eq(p3->policy.max_queue_size, UINT32_MAX);

    cr_assert_eq(cfg->n_instance_groups, 3);
    cr_assert_str_eq(cfg->instance_groups[0].name, "cpus");
    cr_assert_eq(cfg->instance_groups[0].kind, INSTANCE_KIND_CPU);
    cr_assert_eq(cfg->instance_groups[0].count, 2);
    cr_assert_eq(cfg->instance_groups[1].kind, INSTANCE_KIND_GPU);
    cr_assert_eq(cfg->instance_groups[1].count, 1);
    cr_assert_eq(cfg->instance_groups[1].n_gpus, 2);
    cr_assert_eq(cfg->instance_groups[1].gpus[0], 0);
    cr_assert_eq(cfg->instance_groups[1].gpus[1], 1);
    cr_assert_eq(cfg->instance_groups[2].kind, INSTANCE_KIND_MODEL);
    cr_assert_eq(cfg->instance_groups[2].count, 1, "count defaults to 1");
    cr_assert_eq(model_config_instance_count(cfg), 4);

    cr_assert_eq(cfg->version_policy, VERSION_POLICY_SPECIFIC);
    cr_assert_eq(cfg->n_specific_versions, 2);
    cr_assert_eq(cfg->specific_versions[0], 1);
    cr_assert_eq(cfg->specific_versions[1], 3);

    cr_assert_eq(cfg->n_parameters, 2);
    const model_kv_t *kv = find_kv(cfg->parameters, cfg->n_parameters, "threads");
    cr_assert_not_null(kv);
    cr_assert_str_eq(kv->value, "4");
    kv = find_kv(cfg->parameters, cfg->n_parameters, "mode");
    cr_assert_not_null(kv);
    cr_assert_str_eq(kv->value, "fast");

    cr_assert_eq(cfg->n_agents, 2);
    cr_assert_str_eq(cfg->agents[0].name, "checksum");
    cr_assert_eq(cfg->agents[0].n_params, 1);
    cr_assert_str_eq(cfg->agents[0].params[0].key, "MD5:1/model.onnx");
    cr_assert_str_eq(cfg->agents[0].params[0].value, "abc123");
    cr_assert_str_eq(cfg->agents[1].name, "noop");
    cr_assert_eq(cfg->agents[1].n_params, 0);
    cr_assert_str_eq(cfg->default_model_filename, "net.onnx");
    model_config_destroy(cfg);
}

Test(model_config, missing_document_gives_empty_config)
{
    model_config_t *cfg = parse_ok("bare", NULL);
    cr_assert_str_eq(cfg->name, "bare");
    cr_assert_not(cfg->max_batch_size_set);
    cr_assert_eq(cfg->n_inputs, 0);
    cr_assert_eq(cfg->n_outputs, 0);
    cr_assert_not(cfg->dynamic_batching.enabled);
    cr_assert_eq(cfg->version_policy, VERSION_POLICY_LATEST);
    cr_assert_eq(cfg->latest_num_versions, 1);
    cr_assert_eq(cfg->n_instance_groups, 0);
    cr_assert_null(cfg->backend);
    cr_assert_null(cfg->default_model_filename);
    model_config_destroy(cfg);
}

Test(model_config, empty_object_and_absent_name_are_accepted)
{
    model_config_t *cfg = parse_ok("m", "{}");
    cr_assert_str_eq(cfg->name, "m");
    model_config_destroy(cfg);
    cfg = parse_ok("m", "{\"name\": \"m\", \"max_batch_size\": 0}");
    cr_assert(cfg->max_batch_size_set);
    cr_assert_eq(cfg->max_batch_size, 0);
    model_config_destroy(cfg);
}

Test(model_config, version_policy_latest_all_and_specific)
{
    model_config_t *cfg =
        parse_ok("m", "{\"version_policy\": {\"latest\": {\"num_versions\": 2}}}");
    cr_assert_eq(cfg->version_policy, VERSION_POLICY_LATEST);
    cr_assert_eq(cfg->latest_num_versions, 2);
    model_config_destroy(cfg);
    cfg = parse_ok("m", "{\"version_policy\": {\"latest\": {}}}");
    cr_assert_eq(cfg->version_policy, VERSION_POLICY_LATEST);
    cr_assert_eq(cfg->latest_num_versions, 1);
    model_config_destroy(cfg);
    cfg = parse_ok("m", "{\"version_policy\": {\"all\": {}}}");
    cr_assert_eq(cfg->version_policy, VERSION_POLICY_ALL);
    model_config_destroy(cfg);
    cfg = parse_ok("m", "{\"version_policy\": {\"specific\": {\"versions\": [\"7\"]}}}");
    cr_assert_eq(cfg->version_policy, VERSION_POLICY_SPECIFIC);
    cr_assert_eq(cfg->n_specific_versions, 1);
    cr_assert_eq(cfg->specific_versions[0], 7);
    model_config_destroy(cfg);
}

Test(model_config, dynamic_batching_empty_object_enables_it)
{
    model_config_t *cfg = parse_ok("m", "{\"dynamic_batching\": {}}");
    cr_assert(cfg->dynamic_batching.enabled);
    cr_assert_eq(cfg->dynamic_batching.n_preferred, 0);
    cr_assert_eq(cfg->dynamic_batching.max_queue_delay_us, 0);
    cr_assert_eq(cfg->dynamic_batching.n_priority_policies, 0);
    model_config_destroy(cfg);
}

Test(model_config, example_configs_parse)
{
    char path[4200], dir[4096];
    const char *models[2] = {"facile", "jet_tagger"};
    for (int i = 0; i < 2; i++) {
        TU_PATH(dir, "%s/models/%s", tu_source_root(), models[i]);
        TU_PATH(path, "%s/config.json", dir);
        model_config_t *cfg = NULL;
        char err[ERRLEN] = "";
        cr_assert_eq(model_config_load(dir, models[i], &cfg, err, sizeof err), HLT_OK, "%s: %s",
                     path, err);
        cr_assert_str_eq(cfg->name, models[i]);
        cr_assert(cfg->dynamic_batching.enabled);
        cr_assert_eq(cfg->dynamic_batching.max_queue_delay_us, 100);
        model_config_destroy(cfg);
    }
}

/* ---- parse errors ---- */

Test(model_config, bad_json_reports_line_and_column)
{
    parse_err("m", "{\n  \"name\": \"m\",\n  \"max_batch_size\": ,\n}", "model 'm'", "line 3",
              "column");
    parse_err("m", "", "line");
    parse_err("m", "{\"a\": 1, \"a\": 2}", "duplicate");
}

Test(model_config, root_must_be_an_object)
{
    parse_err("m", "[1, 2]", "must hold a JSON object");
    parse_err("m", "[]", "must hold a JSON object");
    parse_err("m", "\"text\"", "line 1"); /* jansson takes only objects and arrays */
}

Test(model_config, name_must_match_the_directory)
{
    parse_err("facile", "{\"name\": \"other\"}", "model 'facile'", "'other'", "directory");
}

Test(model_config, bad_backend_platform_and_max_batch_size)
{
    parse_err("m", "{\"backend\": 3}", "'backend' must be a string");
    parse_err("m", "{\"platform\": []}", "'platform' must be a string");
    parse_err("m", "{\"max_batch_size\": -1}", "'max_batch_size'");
    parse_err("m", "{\"max_batch_size\": 2147483648}", "'max_batch_size'");
    parse_err("m", "{\"max_batch_size\": \"12x\"}", "'max_batch_size'");
    parse_err("m", "{\"max_batch_size\": 1.5}", "'max_batch_size'");
}

Test(model_config, bad_tensor_lists_are_rejected)
{
    parse_err("m", "{\"input\": {}}", "'input' must be an array");
    parse_err("m", "{\"output\": [3]}", "output[0] must be an object");
    parse_err("m", "{\"input\": [{\"dims\": [1]}]}", "input[0] needs a 'name'");
    parse_err("m", "{\"input\": [{\"name\": \"\"}]}", "input[0] needs a 'name'");
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"optional\": 1}]}", "input 'x'",
              "'optional' must be a boolean");
}

Test(model_config, bad_dims_are_rejected)
{
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"dims\": [0]}]}", "input 'x'", "dims[0]");
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"dims\": [4, -2]}]}", "dims[1]",
              "positive integer or -1");
    parse_err("m", "{\"output\": [{\"name\": \"y\", \"dims\": [\"abc\"]}]}", "output 'y'",
              "dims[0]");
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"dims\": 4}]}", "'dims' must be an array");
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"dims\": [1,1,1,1,1,1,1,1,1]}]}",
              "'dims' has 9 entries");
}

Test(model_config, bad_data_type_is_rejected)
{
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FLOAT\"}]}", "input 'x'",
              "unknown data_type 'TYPE_FLOAT'");
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"data_type\": 99}]}", "TYPE_* name");
    parse_err("m", "{\"output\": [{\"name\": \"y\", \"data_type\": 0}]}", "TYPE_* name");
}

Test(model_config, reshape_is_not_supported)
{
    parse_err("m", "{\"input\": [{\"name\": \"x\", \"reshape\": {\"shape\": [1]}}]}", "input 'x'",
              "'reshape' is not supported");
}

Test(model_config, sequence_batching_and_ensembles_are_not_supported)
{
    parse_err("m", "{\"sequence_batching\": {}}", "sequence_batching", "not supported");
    parse_err("m", "{\"ensemble_scheduling\": {\"step\": []}}", "not supported");
}

Test(model_config, bad_kind_is_rejected)
{
    parse_err("m", "{\"instance_group\": [{\"kind\": \"KIND_TPU\"}]}", "instance_group[0].kind",
              "KIND_*");
    parse_err("m", "{\"instance_group\": [{}, {\"kind\": 7}]}", "instance_group[1].kind");
}

Test(model_config, bad_instance_groups_are_rejected)
{
    parse_err("m", "{\"instance_group\": {}}", "'instance_group' must be an array");
    parse_err("m", "{\"instance_group\": [1]}", "instance_group[0] must be an object");
    parse_err("m", "{\"instance_group\": [{\"count\": 0}]}", "count must be in 1..256");
    parse_err("m", "{\"instance_group\": [{\"count\": 257}]}", "count must be in 1..256");
    parse_err("m", "{\"instance_group\": [{\"gpus\": 0}]}", "gpus must be an array");
    parse_err("m", "{\"instance_group\": [{\"gpus\": [0, -1]}]}", "gpus[1] invalid");
}

Test(model_config, bad_timeout_action_is_rejected)
{
    parse_err("m",
              "{\"dynamic_batching\": {\"default_queue_policy\": {\"timeout_action\": "
              "\"DROP\"}}}",
              "default_queue_policy", "'timeout_action' must be REJECT or DELAY");
    parse_err("m", "{\"dynamic_batching\": {\"default_queue_policy\": {\"timeout_action\": 2}}}",
              "'timeout_action' must be REJECT or DELAY");
}

Test(model_config, bad_queue_policy_fields_are_rejected)
{
    parse_err("m", "{\"dynamic_batching\": {\"default_queue_policy\": 1}}", "must be an object");
    parse_err("m",
              "{\"dynamic_batching\": {\"default_queue_policy\": "
              "{\"default_timeout_microseconds\": -5}}}",
              "'default_timeout_microseconds' must be >= 0");
    parse_err("m",
              "{\"dynamic_batching\": {\"default_queue_policy\": "
              "{\"allow_timeout_override\": \"yes\"}}}",
              "'allow_timeout_override' must be a boolean");
    parse_err("m",
              "{\"dynamic_batching\": {\"default_queue_policy\": "
              "{\"max_queue_size\": 4294967296}}}",
              "'max_queue_size' must be a uint32");
}

Test(model_config, bad_priority_key_is_rejected)
{
    parse_err("m",
              "{\"dynamic_batching\": {\"priority_levels\": 2, \"priority_queue_policy\": "
              "{\"3\": {}}}}",
              "priority_queue_policy key '3'", "1..2");
    parse_err("m",
              "{\"dynamic_batching\": {\"priority_levels\": 2, \"priority_queue_policy\": "
              "{\"0\": {}}}}",
              "priority_queue_policy key '0'");
    parse_err("m",
              "{\"dynamic_batching\": {\"priority_levels\": 2, \"priority_queue_policy\": "
              "{\"high\": {}}}}",
              "priority_queue_policy key 'high'");
    parse_err("m", "{\"dynamic_batching\": {\"priority_queue_policy\": {\"1\": {}}}}",
              "priority_queue_policy key '1'", "1..0");
    parse_err("m",
              "{\"dynamic_batching\": {\"priority_levels\": 2, \"priority_queue_policy\": "
              "{\"1\": {\"timeout_action\": \"X\"}}}}",
              "priority_queue_policy[1]", "timeout_action");
    parse_err("m", "{\"dynamic_batching\": {\"priority_queue_policy\": []}}",
              "'priority_queue_policy' must be an object");
}

Test(model_config, bad_dynamic_batching_fields_are_rejected)
{
    parse_err("m", "{\"dynamic_batching\": true}", "dynamic_batching must be an object");
    parse_err("m", "{\"dynamic_batching\": {\"preferred_batch_size\": 4}}",
              "'preferred_batch_size' must be an array");
    parse_err("m", "{\"dynamic_batching\": {\"preferred_batch_size\": [4, 0]}}",
              "preferred_batch_size[1] must be positive");
    parse_err("m", "{\"dynamic_batching\": {\"max_queue_delay_microseconds\": -1}}",
              "'max_queue_delay_microseconds' must be >= 0");
    parse_err("m", "{\"dynamic_batching\": {\"preserve_ordering\": 1}}",
              "'preserve_ordering' must be a boolean");
    parse_err("m", "{\"dynamic_batching\": {\"priority_levels\": -1}}",
              "'priority_levels' must be >= 0");
    parse_err("m",
              "{\"dynamic_batching\": {\"priority_levels\": 2, \"default_priority_level\": 3}}",
              "'default_priority_level' must be between 0 and priority_levels");
}

Test(model_config, bad_version_policy_is_rejected)
{
    parse_err("m", "{\"version_policy\": 1}", "'version_policy' must be an object");
    parse_err("m", "{\"version_policy\": {}}", "version_policy needs latest, all or specific");
    parse_err("m", "{\"version_policy\": {\"latest\": {\"num_versions\": 0}}}",
              "num_versions must be >= 1");
    parse_err("m", "{\"version_policy\": {\"specific\": {\"versions\": []}}}",
              "specific.versions must list versions");
    parse_err("m", "{\"version_policy\": {\"specific\": {}}}",
              "specific.versions must list versions");
    parse_err("m", "{\"version_policy\": {\"specific\": {\"versions\": [1, -2]}}}",
              "versions[1] invalid");
}

Test(model_config, bad_parameters_and_agents_are_rejected)
{
    parse_err("m", "{\"parameters\": []}", "parameters must be an object");
    parse_err("m", "{\"parameters\": {\"k\": \"v\"}}", "parameters['k']", "string_value");
    parse_err("m", "{\"parameters\": {\"k\": {\"string_value\": 3}}}", "parameters['k']");
    parse_err("m", "{\"model_repository_agents\": {}}", "agents must be an array");
    parse_err("m", "{\"model_repository_agents\": {\"agents\": [{}]}}", "agents[0] needs a name");
    parse_err("m",
              "{\"model_repository_agents\": {\"agents\": [{\"name\": \"c\", "
              "\"parameters\": {\"k\": 1}}]}}",
              "agent 'c' parameters['k'] must be a string");
}

Test(model_config, bad_default_model_filename_is_rejected)
{
    parse_err("m", "{\"default_model_filename\": \"../x.onnx\"}", "'default_model_filename'");
    parse_err("m", "{\"default_model_filename\": \"..\"}", "'default_model_filename'");
    parse_err("m", "{\"default_model_filename\": \"\"}", "'default_model_filename'");
    parse_err("m", "{\"default_model_filename\": 1}", "'default_model_filename'");
}

/* ---- model_config_load ---- */

Test(model_config, load_without_config_file_gives_empty_config)
{
    char *dir = tu_mkdtemp();
    model_config_t *cfg = NULL;
    char err[ERRLEN] = "";
    cr_assert_eq(model_config_load(dir, "x", &cfg, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_str_eq(cfg->name, "x");
    cr_assert_not(cfg->max_batch_size_set);
    model_config_destroy(cfg);
    tu_rm_rf(dir);
    free(dir);
}

Test(model_config, load_reads_the_file_and_reports_its_errors)
{
    char *dir = tu_mkdtemp();
    char path[4096];
    TU_PATH(path, "%s/config.json", dir);
    tu_write_text(path, "{\"name\": \"x\", \"max_batch_size\": 8}");
    model_config_t *cfg = NULL;
    char err[ERRLEN] = "";
    cr_assert_eq(model_config_load(dir, "x", &cfg, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(cfg->max_batch_size, 8);
    model_config_destroy(cfg);

    tu_write_text(path, "{\"name\": \"x\",\n\"max_batch_size\": }");
    cfg = NULL;
    cr_assert_eq(model_config_load(dir, "x", &cfg, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert_null(cfg);
    cr_assert(strstr(err, "line 2"), "%s", err);
    tu_rm_rf(dir);
    free(dir);
}

Test(model_config, load_of_unreadable_config_is_an_error)
{
    char *dir = tu_mkdtemp();
    char path[4096];
    TU_PATH(path, "%s/config.json", dir);
    tu_mkdir(path); /* a directory where the file should be */
    model_config_t *cfg = NULL;
    char err[ERRLEN] = "";
    hlt_status st = model_config_load(dir, "x", &cfg, err, sizeof err);
    cr_assert_eq(st, HLT_INVALID_ARGUMENT, "status %d", st);
    cr_assert_null(cfg);
    cr_assert(strstr(err, "model 'x'"), "%s", err);
    tu_rm_rf(dir);
    free(dir);
}

Test(model_config, destroy_accepts_null)
{
    model_config_destroy(NULL);
}

/* ---- completion from the example graphs ---- */

static engine_graph_t *load_graph(const char *model)
{
    char path[4096];
    TU_PATH(path, "%s/models/%s/1/model.onnx", tu_source_root(), model);
    engine_graph_t *g = NULL;
    char err[ERRLEN] = "";
    hlt_status st = engine_graph_load_file(path, &g, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "engine cannot load %s: %s", path, err);
    return g;
}

static model_config_t *load_example_config(const char *model)
{
    char dir[4096];
    TU_PATH(dir, "%s/models/%s", tu_source_root(), model);
    model_config_t *cfg = NULL;
    char err[ERRLEN] = "";
    cr_assert_eq(model_config_load(dir, model, &cfg, err, sizeof err), HLT_OK, "%s", err);
    return cfg;
}

static void complete_ok(model_config_t *cfg, const engine_graph_t *g, int32_t def)
{
    char err[ERRLEN] = "";
    hlt_status st = model_config_complete(cfg, g, def, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "complete failed: %s", err);
}

/* Parses json for `model`, completes it against the model's graph and expects failure with
 * every string of want in the message. */
static void complete_err_v(const char *model, const char *json, const char *const *want)
{
    engine_graph_t *g = load_graph(model);
    model_config_t *cfg = parse_ok(model, json);
    char err[ERRLEN] = "";
    hlt_status st = model_config_complete(cfg, g, 64, err, sizeof err);
    cr_assert_eq(st, HLT_INVALID_ARGUMENT, "status %d for %s", st, json);
    for (size_t i = 0; want[i]; i++)
        cr_assert(strstr(err, want[i]), "message \"%s\" should contain \"%s\"", err, want[i]);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}
#define complete_err(model, json, ...)                                                             \
    complete_err_v((model), (json), (const char *const[]){__VA_ARGS__, NULL})

Test(model_config, example_graphs_declare_expected_io)
{
    engine_graph_t *g = load_graph("facile");
    cr_assert_eq(engine_graph_num_inputs(g), 1);
    cr_assert_eq(engine_graph_num_outputs(g), 1);
    cr_assert_str_eq(engine_graph_input(g, 0)->name, "input");
    cr_assert_eq(engine_graph_input(g, 0)->rank, 2);
    cr_assert_eq(engine_graph_input(g, 0)->dims[0], -1);
    cr_assert_eq(engine_graph_input(g, 0)->dims[1], 15);
    engine_graph_destroy(g);
    g = load_graph("jet_tagger");
    cr_assert_eq(engine_graph_num_inputs(g), 1);
    cr_assert_eq(engine_graph_num_outputs(g), 2);
    engine_graph_destroy(g);
}

Test(model_config, completes_partial_facile_config_from_graph)
{
    engine_graph_t *g = load_graph("facile");
    model_config_t *cfg = load_example_config("facile");
    cr_assert_eq(cfg->n_inputs, 0, "the example config is partial");
    complete_ok(cfg, g, MODEL_CONFIG_DEFAULT_MAX_BATCH);
    cr_assert_eq(cfg->max_batch_size, 16000, "the configured max_batch_size is kept");
    cr_assert_str_eq(cfg->backend, "onnxruntime");
    cr_assert_str_eq(cfg->platform, "onnxruntime_onnx");
    cr_assert_eq(cfg->n_inputs, 1);
    cr_assert_str_eq(cfg->inputs[0].name, "input");
    cr_assert_eq(cfg->inputs[0].dtype, HLT_TYPE_FP32);
    cr_assert_eq(cfg->inputs[0].rank, 1, "the batch dim is stripped");
    cr_assert_eq(cfg->inputs[0].dims[0], 15);
    cr_assert_eq(cfg->n_outputs, 1);
    cr_assert_str_eq(cfg->outputs[0].name, "output");
    cr_assert_eq(cfg->outputs[0].dtype, HLT_TYPE_FP32);
    cr_assert_eq(cfg->outputs[0].rank, 1);
    cr_assert_eq(cfg->outputs[0].dims[0], 1);
    cr_assert_eq(cfg->n_instance_groups, 1);
    cr_assert_eq(cfg->instance_groups[0].kind, INSTANCE_KIND_CPU);
    cr_assert_eq(cfg->instance_groups[0].count, 1);
    cr_assert_not_null(cfg->instance_groups[0].name, "instance groups get a name");
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, max_batch_size_defaults_when_absent_and_graph_batches)
{
    engine_graph_t *g = load_graph("facile");
    model_config_t *cfg = parse_ok("facile", NULL);
    complete_ok(cfg, g, 77);
    cr_assert(cfg->max_batch_size_set);
    cr_assert_eq(cfg->max_batch_size, 77);
    cr_assert_eq(cfg->inputs[0].rank, 1);
    cr_assert_eq(cfg->n_instance_groups, 1, "one KIND_CPU instance by default");
    cr_assert_eq(cfg->instance_groups[0].kind, INSTANCE_KIND_CPU);
    cr_assert_eq(model_config_instance_count(cfg), 1);
    model_config_destroy(cfg);

    cfg = parse_ok("facile", "{}");
    complete_ok(cfg, g, MODEL_CONFIG_DEFAULT_MAX_BATCH);
    cr_assert_eq(cfg->max_batch_size, MODEL_CONFIG_DEFAULT_MAX_BATCH);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, max_batch_size_zero_keeps_batch_dim_in_dims)
{
    engine_graph_t *g = load_graph("facile");
    model_config_t *cfg = parse_ok("facile", "{\"max_batch_size\": 0}");
    complete_ok(cfg, g, 64);
    cr_assert_eq(cfg->max_batch_size, 0);
    cr_assert_eq(cfg->inputs[0].rank, 2, "without batching the leading dim is a model dim");
    cr_assert_eq(cfg->inputs[0].dims[0], -1);
    cr_assert_eq(cfg->inputs[0].dims[1], 15);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, validates_complete_jet_tagger_config)
{
    engine_graph_t *g = load_graph("jet_tagger");
    model_config_t *cfg = load_example_config("jet_tagger");
    complete_ok(cfg, g, MODEL_CONFIG_DEFAULT_MAX_BATCH);
    cr_assert_eq(cfg->max_batch_size, 1024);
    cr_assert_eq(cfg->n_inputs, 1);
    cr_assert_str_eq(cfg->inputs[0].name, "jet_features");
    cr_assert_eq(cfg->inputs[0].dims[0], 64);
    cr_assert_eq(cfg->n_outputs, 2);
    cr_assert_str_eq(cfg->outputs[0].name, "probabilities");
    cr_assert_str_eq(cfg->outputs[1].name, "logits");
    cr_assert_eq(cfg->outputs[1].dims[0], 5);
    cr_assert_eq(model_config_find_output(cfg, "logits", 6), 1);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, partial_tensor_entries_are_filled_from_graph)
{
    /* Name only: datatype and dims come from the graph; a config may list a subset of the
     * outputs. */
    engine_graph_t *g = load_graph("jet_tagger");
    model_config_t *cfg = parse_ok("jet_tagger", "{\"input\": [{\"name\": \"jet_features\"}], "
                                                 "\"output\": [{\"name\": \"logits\"}]}");
    complete_ok(cfg, g, 32);
    cr_assert_eq(cfg->max_batch_size, 32);
    cr_assert_eq(cfg->inputs[0].dtype, HLT_TYPE_FP32);
    cr_assert_eq(cfg->inputs[0].rank, 1);
    cr_assert_eq(cfg->inputs[0].dims[0], 64);
    cr_assert_eq(cfg->n_outputs, 1);
    cr_assert_eq(cfg->outputs[0].dims[0], 5);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, config_dims_of_minus_one_accept_fixed_model_dims)
{
    engine_graph_t *g = load_graph("jet_tagger");
    model_config_t *cfg = parse_ok("jet_tagger", "{\"max_batch_size\": 8, \"input\": [{\"name\": "
                                                 "\"jet_features\", \"data_type\": \"TYPE_FP32\", "
                                                 "\"dims\": [-1]}]}");
    complete_ok(cfg, g, 64);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, mismatching_dtype_is_rejected)
{
    complete_err("jet_tagger",
                 "{\"input\": [{\"name\": \"jet_features\", \"data_type\": \"TYPE_INT64\", "
                 "\"dims\": [64]}]}",
                 "model 'jet_tagger'", "input 'jet_features'", "TYPE_INT64",
                 "does not match the model's TYPE_FP32");
    complete_err("facile", "{\"output\": [{\"name\": \"output\", \"data_type\": \"TYPE_FP64\"}]}",
                 "output 'output'", "TYPE_FP64");
}

Test(model_config, mismatching_dims_are_rejected)
{
    complete_err("jet_tagger",
                 "{\"max_batch_size\": 8, \"input\": [{\"name\": \"jet_features\", \"data_type\": "
                 "\"TYPE_FP32\", \"dims\": [63]}]}",
                 "input 'jet_features'", "dims[0] = 63", "declares 64");
    complete_err("jet_tagger",
                 "{\"max_batch_size\": 8, \"input\": [{\"name\": \"jet_features\", \"dims\": "
                 "[8, 8]}]}",
                 "input 'jet_features'", "config has 2 dims (+ batch), the model has 2");
    complete_err("facile",
                 "{\"max_batch_size\": 0, \"input\": [{\"name\": \"input\", \"dims\": "
                 "[15]}]}",
                 "config has 1 dims, the model has 2");
}

Test(model_config, unknown_tensor_names_are_rejected)
{
    complete_err("jet_tagger", "{\"input\": [{\"name\": \"jets\"}]}",
                 "config input 'jets' is not in the model");
    complete_err("jet_tagger", "{\"output\": [{\"name\": \"scores\"}]}",
                 "config output 'scores' is not in the model");
}

Test(model_config, tensor_listed_twice_is_rejected)
{
    complete_err("jet_tagger", "{\"output\": [{\"name\": \"logits\"}, {\"name\": \"logits\"}]}",
                 "output 'logits' is listed twice");
}

Test(model_config, kind_model_is_rejected_for_graph_models_and_kind_gpu_accepted)
{
    /* KIND_GPU is resolved to a backend when the instances start (model.c), not here. */
    engine_graph_t *g = load_graph("facile");
    model_config_t *cfg =
        parse_ok("facile", "{\"instance_group\": [{\"kind\": \"KIND_GPU\", \"gpus\": [0]}]}");
    complete_ok(cfg, g, 64);
    cr_assert_eq(cfg->instance_groups[0].kind, INSTANCE_KIND_GPU);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
    complete_err("facile",
                 "{\"instance_group\": [{\"kind\": \"KIND_CPU\"}, {\"kind\": "
                 "\"KIND_MODEL\"}]}",
                 "instance_group[1]", "KIND_MODEL");
}

Test(model_config, kind_auto_resolves_to_cpu)
{
    engine_graph_t *g = load_graph("facile");
    model_config_t *cfg = parse_ok("facile", "{\"instance_group\": [{\"kind\": \"KIND_AUTO\", "
                                             "\"count\": 3, \"name\": \"workers\"}]}");
    complete_ok(cfg, g, 64);
    cr_assert_eq(cfg->instance_groups[0].kind, INSTANCE_KIND_CPU);
    cr_assert_str_eq(cfg->instance_groups[0].name, "workers");
    cr_assert_eq(model_config_instance_count(cfg), 3);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, unsupported_backend_or_platform_is_rejected)
{
    complete_err("facile", "{\"backend\": \"tensorflow\"}", "backend 'tensorflow'",
                 "not supported");
    complete_err("facile", "{\"platform\": \"tensorrt_plan\"}", "platform 'tensorrt_plan'",
                 "not supported");
}

Test(model_config, max_batch_size_zero_on_a_batching_model_is_accepted)
{
    engine_graph_t *g = load_graph("jet_tagger");
    model_config_t *cfg = parse_ok("jet_tagger", "{\"max_batch_size\": 0}");
    complete_ok(cfg, g, 64);
    cr_assert_eq(cfg->max_batch_size, 0);
    cr_assert_eq(cfg->inputs[0].rank, 2);
    cr_assert_eq(cfg->outputs[0].rank, 2);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

/* Graphs the example models do not cover, built with protobuf-c. */
static engine_graph_t *tiny_graph(const char *op, const tu_onnx_io_t *in, size_t n_in,
                                  const tu_onnx_io_t *out, size_t n_out)
{
    size_t len;
    uint8_t *buf = tu_onnx_one_node(op, in, n_in, out, n_out, &len);
    engine_graph_t *g = NULL;
    char err[ERRLEN] = "";
    hlt_status st = engine_graph_load_buffer(buf, len, &g, err, sizeof err);
    free(buf);
    cr_assert_eq(st, HLT_OK, "engine cannot load the tiny %s graph: %s", op, err);
    return g;
}

static void tiny_complete_err(engine_graph_t *g, const char *json, const char *want)
{
    model_config_t *cfg = parse_ok("tiny", json);
    char err[ERRLEN] = "";
    hlt_status st = model_config_complete(cfg, g, 64, err, sizeof err);
    cr_assert_eq(st, HLT_INVALID_ARGUMENT, "status %d for %s", st, json);
    cr_assert(strstr(err, want), "message \"%s\" should contain \"%s\"", err, want);
    model_config_destroy(cfg);
}

Test(model_config, fixed_leading_dim_means_no_batching)
{
    tu_onnx_io_t x = {"x", 2, {2, 3}}, y = {"y", 2, {2, 3}};
    engine_graph_t *g = tiny_graph("Relu", &x, 1, &y, 1);
    model_config_t *cfg = parse_ok("tiny", NULL);
    complete_ok(cfg, g, 64);
    cr_assert_eq(cfg->max_batch_size, 0, "a fixed leading dim is not a batch dim");
    cr_assert_eq(cfg->inputs[0].rank, 2);
    cr_assert_eq(cfg->inputs[0].dims[0], 2);
    cr_assert_eq(cfg->inputs[0].dims[1], 3);
    model_config_destroy(cfg);
    tiny_complete_err(g, "{\"max_batch_size\": 4}",
                      "max_batch_size > 0 needs a symbolic or -1 leading dim");
    engine_graph_destroy(g);
}

Test(model_config, one_fixed_output_disables_default_batching)
{
    /* Every input and output must have a batch dim for max_batch_size to default. */
    tu_onnx_io_t in[2] = {{"a", 2, {-1, 3}}, {"b", 2, {2, 3}}}, y = {"y", 2, {-1, 3}};
    engine_graph_t *g = tiny_graph("Add", in, 2, &y, 1);
    model_config_t *cfg = parse_ok("tiny", "{}");
    complete_ok(cfg, g, 64);
    cr_assert_eq(cfg->max_batch_size, 0);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, graph_input_missing_from_config_is_rejected)
{
    tu_onnx_io_t in[2] = {{"a", 2, {-1, 3}}, {"b", 2, {-1, 3}}}, y = {"y", 2, {-1, 3}};
    engine_graph_t *g = tiny_graph("Add", in, 2, &y, 1);
    tiny_complete_err(g, "{\"input\": [{\"name\": \"a\"}]}",
                      "the model's input 'b' is missing in the config");
    model_config_t *cfg = parse_ok("tiny", "{\"input\": [{\"name\": \"b\"}, {\"name\": \"a\"}]}");
    complete_ok(cfg, g, 64);
    cr_assert_eq(cfg->max_batch_size, 64);
    cr_assert_eq(model_config_find_input(cfg, "a", 1), 1, "config order is kept");
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

/* ---- ModelConfigResponse ---- */

static Inference__ModelConfig *pack_and_unpack(const model_config_t *cfg,
                                               Inference__ModelConfigResponse **resp)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(model_config_pack_response(cfg, &buf, &len), HLT_OK);
    *resp = inference__model_config_response__unpack(NULL, len, buf);
    free(buf);
    cr_assert_not_null(*resp, "protobuf-c cannot parse the ModelConfigResponse");
    cr_assert_not_null((*resp)->config);
    return (*resp)->config;
}

Test(model_config, pack_response_of_completed_example_config)
{
    engine_graph_t *g = load_graph("jet_tagger");
    model_config_t *cfg = load_example_config("jet_tagger");
    complete_ok(cfg, g, MODEL_CONFIG_DEFAULT_MAX_BATCH);
    Inference__ModelConfigResponse *resp;
    Inference__ModelConfig *c = pack_and_unpack(cfg, &resp);
    cr_assert_str_eq(c->name, "jet_tagger");
    cr_assert_str_eq(c->platform, "onnxruntime_onnx");
    cr_assert_str_eq(c->backend, "onnxruntime");
    cr_assert_eq(c->max_batch_size, 1024);
    cr_assert_eq(c->n_input, 1);
    cr_assert_str_eq(c->input[0]->name, "jet_features");
    cr_assert_eq(c->input[0]->data_type, INFERENCE__DATA_TYPE__TYPE_FP32);
    cr_assert_eq(c->input[0]->n_dims, 1);
    cr_assert_eq(c->input[0]->dims[0], 64);
    cr_assert_eq(c->n_output, 2);
    cr_assert_str_eq(c->output[0]->name, "probabilities");
    cr_assert_str_eq(c->output[1]->name, "logits");
    cr_assert_eq(c->output[1]->data_type, INFERENCE__DATA_TYPE__TYPE_FP32);
    cr_assert_eq(c->output[1]->n_dims, 1);
    cr_assert_eq(c->output[1]->dims[0], 5);
    cr_assert_eq(c->scheduling_choice_case,
                 INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING);
    cr_assert_eq(c->dynamic_batching->n_preferred_batch_size, 2);
    cr_assert_eq(c->dynamic_batching->preferred_batch_size[0], 64);
    cr_assert_eq(c->dynamic_batching->preferred_batch_size[1], 256);
    cr_assert_eq(c->dynamic_batching->max_queue_delay_microseconds, 100);
    cr_assert_eq(c->n_instance_group, 1);
    cr_assert_eq(c->instance_group[0]->kind, INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU);
    cr_assert_eq(c->instance_group[0]->count, 1);
    cr_assert_not_null(c->version_policy);
    cr_assert_eq(c->version_policy->policy_choice_case,
                 INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST);
    cr_assert_eq(c->version_policy->latest->num_versions, 1);
    inference__model_config_response__free_unpacked(resp, NULL);
    model_config_destroy(cfg);
    engine_graph_destroy(g);
}

Test(model_config, pack_response_carries_every_parsed_field)
{
    model_config_t *cfg = parse_ok("full", full_config);
    Inference__ModelConfigResponse *resp;
    Inference__ModelConfig *c = pack_and_unpack(cfg, &resp);
    cr_assert_str_eq(c->name, "full");
    cr_assert_eq(c->max_batch_size, 128);
    cr_assert_eq(c->n_input, 2);
    cr_assert_eq(c->input[0]->n_dims, 2);
    cr_assert_eq(c->input[0]->dims[1], -1);
    cr_assert_eq(c->input[1]->data_type, INFERENCE__DATA_TYPE__TYPE_INT64);
    cr_assert(c->input[1]->optional);
    cr_assert_eq(c->output[0]->data_type, INFERENCE__DATA_TYPE__TYPE_INT8);

    Inference__ModelDynamicBatching *db = c->dynamic_batching;
    cr_assert_not_null(db);
    cr_assert_eq(db->max_queue_delay_microseconds, 9007199254740993ull);
    cr_assert(db->preserve_ordering);
    cr_assert_eq(db->priority_levels, 3);
    cr_assert_eq(db->default_priority_level, 2);
    cr_assert_not_null(db->default_queue_policy);
    cr_assert_eq(db->default_queue_policy->timeout_action,
                 INFERENCE__MODEL_QUEUE_POLICY__TIMEOUT_ACTION__DELAY);
    cr_assert_eq(db->default_queue_policy->default_timeout_microseconds, 5000);
    cr_assert(db->default_queue_policy->allow_timeout_override);
    cr_assert_eq(db->default_queue_policy->max_queue_size, 10);
    cr_assert_eq(db->n_priority_queue_policy, 2);
    bool saw1 = false, saw3 = false;
    for (size_t i = 0; i < db->n_priority_queue_policy; i++) {
        Inference__ModelDynamicBatching__PriorityQueuePolicyEntry *e = db->priority_queue_policy[i];
        if (e->key == 1) {
            saw1 = true;
            cr_assert_eq(e->value->max_queue_size, 1);
            cr_assert_eq(e->value->default_timeout_microseconds, 7);
        } else if (e->key == 3) {
            saw3 = true;
            cr_assert_eq(e->value->max_queue_size, UINT32_MAX);
        }
    }
    cr_assert(saw1 && saw3);

    cr_assert_eq(c->n_instance_group, 3);
    cr_assert_str_eq(c->instance_group[0]->name, "cpus");
    cr_assert_eq(c->instance_group[0]->count, 2);
    cr_assert_eq(c->instance_group[1]->kind, INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_GPU);
    cr_assert_eq(c->instance_group[1]->n_gpus, 2);
    cr_assert_eq(c->instance_group[1]->gpus[1], 1);
    cr_assert_eq(c->instance_group[2]->kind, INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_MODEL);

    cr_assert_eq(c->version_policy->policy_choice_case,
                 INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC);
    cr_assert_eq(c->version_policy->specific->n_versions, 2);
    cr_assert_eq(c->version_policy->specific->versions[1], 3);

    cr_assert_eq(c->n_parameters, 2);
    bool saw_threads = false;
    for (size_t i = 0; i < c->n_parameters; i++)
        if (!strcmp(c->parameters[i]->key, "threads")) {
            saw_threads = true;
            cr_assert_str_eq(c->parameters[i]->value->string_value, "4");
        }
    cr_assert(saw_threads);

    cr_assert_not_null(c->model_repository_agents);
    cr_assert_eq(c->model_repository_agents->n_agents, 2);
    Inference__ModelRepositoryAgents__Agent *a = c->model_repository_agents->agents[0];
    cr_assert_str_eq(a->name, "checksum");
    cr_assert_eq(a->n_parameters, 1);
    cr_assert_str_eq(a->parameters[0]->key, "MD5:1/model.onnx");
    cr_assert_str_eq(a->parameters[0]->value, "abc123");
    cr_assert_str_eq(c->model_repository_agents->agents[1]->name, "noop");
    cr_assert_str_eq(c->default_model_filename, "net.onnx");
    inference__model_config_response__free_unpacked(resp, NULL);
    model_config_destroy(cfg);
}

Test(model_config, pack_response_version_policy_all_and_latest)
{
    model_config_t *cfg = parse_ok("m", "{\"version_policy\": {\"all\": {}}}");
    Inference__ModelConfigResponse *resp;
    Inference__ModelConfig *c = pack_and_unpack(cfg, &resp);
    cr_assert_eq(c->version_policy->policy_choice_case,
                 INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL);
    cr_assert_eq(c->scheduling_choice_case, INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE__NOT_SET,
                 "no dynamic_batching in the config, none in the response");
    cr_assert_null(c->model_repository_agents);
    inference__model_config_response__free_unpacked(resp, NULL);
    model_config_destroy(cfg);

    cfg = parse_ok("m", "{\"version_policy\": {\"latest\": {\"num_versions\": 3}}}");
    c = pack_and_unpack(cfg, &resp);
    cr_assert_eq(c->version_policy->policy_choice_case,
                 INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST);
    cr_assert_eq(c->version_policy->latest->num_versions, 3);
    inference__model_config_response__free_unpacked(resp, NULL);
    model_config_destroy(cfg);
}
