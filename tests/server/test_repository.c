/* Tests for server/repository.c on temporary model repositories (mkdtemp under /tmp, models
 * copied from models/ in plain C): scanning, failure reporting (state + reason, never fatal),
 * version policies, lookups, unload and hot reload while requests hold the old version. */
#include "repository.h"
#include "test_jobs.h"
#include "test_util.h"

#include "log.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static void quiet(void)
{
    hlt_log_level = -1; /* the broken models below would otherwise log their failures */
}

TestSuite(repository, .init = quiet, .fini = tu_cleanup_temp_dirs, .timeout = 110);

/* ---- fixtures ---- */

static repo_t *make_repo(const char *root)
{
    repo_options_t opts = {root, {MODEL_CONFIG_DEFAULT_MAX_BATCH, 0, 0, 0}};
    repo_t *r = repo_create(&opts);
    cr_assert_not_null(r);
    return r;
}

static void write_in(const char *repo, const char *rel, const char *text)
{
    char path[4200];
    TU_PATH(path, "%s/%s", repo, rel);
    tu_write_text(path, text);
}

static void mkdir_in(const char *repo, const char *rel)
{
    char path[4200];
    TU_PATH(path, "%s/%s", repo, rel);
    tu_mkdir(path);
}

/* The two example models (with non-numeric subdirectories that are not versions) plus broken
 * models, each broken in one way. */
static char *mixed_repo(void)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, "facile", "facile", 1, true);
    tu_install_model(repo, "jet_tagger", "jet_tagger", 1, true);
    mkdir_in(repo, "facile/reference");
    write_in(repo, "facile/reference/n1.json", "{}");
    mkdir_in(repo, "jet_tagger/labels");
    write_in(repo, "jet_tagger/labels.txt", "b\nc\nuds\ng\ntau\n");

    /* garbage bytes as model.onnx */
    mkdir_in(repo, "garbage");
    mkdir_in(repo, "garbage/1");
    write_in(repo, "garbage/1/model.onnx", "\x08\x07\xff\xff\xff\xff garbage, not ONNX");
    /* version directory without a model file */
    mkdir_in(repo, "nofile");
    mkdir_in(repo, "nofile/1");
    /* invalid config.json next to a good model */
    tu_install_model(repo, "facile", "badconfig", 1, false);
    write_in(repo, "badconfig/config.json", "{\"name\": \"badconfig\",\n  \"max_batch_size\": }");
    /* an op the engine does not implement */
    mkdir_in(repo, "unsupported");
    mkdir_in(repo, "unsupported/1");
    char path[4200];
    TU_PATH(path, "%s/unsupported/1/model.onnx", repo);
    tu_onnx_io_t x = {"x", 4, {-1, 1, 8, 8}}, y = {"y", 4, {-1, 1, 8, 8}};
    tu_write_onnx_one_node(path, "Conv", &x, 1, &y, 1);
    /* no version directory at all */
    mkdir_in(repo, "noversion");
    write_in(repo, "noversion/config.json", "{\"name\": \"noversion\"}");
    mkdir_in(repo, "noversion/reference");
    /* not model directories */
    write_in(repo, "README.md", "not a model");
    mkdir_in(repo, ".hidden");
    return repo;
}

static void drop_repo(char *repo)
{
    tu_rm_rf(repo);
    free(repo);
}

typedef struct index_rows {
    repo_index_entry_t *e;
    size_t n;
} index_rows_t;

static index_rows_t index_of(repo_t *r, bool ready_only)
{
    index_rows_t rows;
    rows.n = repo_index(r, ready_only, &rows.e);
    return rows;
}

/* The row for name (and version, if not NULL); fails the test if absent. */
static const repo_index_entry_t *row(const index_rows_t *rows, const char *name,
                                     const char *version)
{
    for (size_t i = 0; i < rows->n; i++)
        if (!strcmp(rows->e[i].name, name) && (!version || !strcmp(rows->e[i].version, version)))
            return &rows->e[i];
    cr_assert_fail("no index row for %s version %s", name, version ? version : "(any)");
    return NULL;
}

static bool has_row(const index_rows_t *rows, const char *name)
{
    for (size_t i = 0; i < rows->n; i++)
        if (!strcmp(rows->e[i].name, name))
            return true;
    return false;
}

static model_t *get_ok(repo_t *r, const char *name, const char *version)
{
    model_t *m = NULL;
    char err[ERRLEN] = "";
    hlt_status st = repo_get(r, name, strlen(name), version, strlen(version), &m, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "repo_get(%s, '%s'): %s", name, version, err);
    cr_assert_not_null(m);
    return m;
}

/* repo_get that must fail with want_st and a message containing want. */
static void get_fails(repo_t *r, const char *name, const char *version, hlt_status want_st,
                      const char *want)
{
    model_t *m = NULL;
    char err[ERRLEN] = "";
    hlt_status st = repo_get(r, name, strlen(name), version, strlen(version), &m, err, sizeof err);
    cr_assert_eq(st, want_st, "repo_get(%s, '%s'): status %d (%s)", name, version, st, err);
    cr_assert_null(m, "no model on failure");
    cr_assert(strstr(err, want), "message \"%s\" should contain \"%s\"", err, want);
}

/* ---- scanning and reporting ---- */

Test(repository, load_all_serves_good_models_and_reports_broken_ones)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 2, "facile and jet_tagger load; the others fail");

    index_rows_t rows = index_of(r, false);
    cr_assert_eq(rows.n, 7, "one row per model directory (a failed model has one row)");
    for (size_t i = 1; i < rows.n; i++)
        cr_assert_lt(strcmp(rows.e[i - 1].name, rows.e[i].name), 0, "rows sorted by name");
    const repo_index_entry_t *e = row(&rows, "facile", "1");
    cr_assert_str_eq(e->state, "READY");
    cr_assert_str_eq(e->reason, "cpu:0 x1"); /* READY: where the instances run */
    e = row(&rows, "jet_tagger", "1");
    cr_assert_str_eq(e->state, "READY");
    cr_assert_not(has_row(&rows, "README.md"));
    cr_assert_not(has_row(&rows, ".hidden"));

    struct {
        const char *name, *reason;
    } broken[] = {
        {"garbage", "model 'garbage' version 1"}, {"nofile", "model file"},
        {"badconfig", "config.json line 2"},      {"unsupported", "Conv"},
        {"noversion", "no version directory"},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        e = row(&rows, broken[i].name, NULL);
        cr_assert_str_eq(e->state, "UNAVAILABLE", "%s", broken[i].name);
        cr_assert(strstr(e->reason, broken[i].reason), "%s: reason \"%s\" should name \"%s\"",
                  broken[i].name, e->reason, broken[i].reason);
    }
    repo_index_free(rows.e, rows.n);

    rows = index_of(r, true);
    cr_assert_eq(rows.n, 2, "ready_only lists the served versions only");
    cr_assert_str_eq(rows.e[0].name, "facile");
    cr_assert_str_eq(rows.e[1].name, "jet_tagger");
    repo_index_free(rows.e, rows.n);

    cr_assert_not(repo_all_ready(r), "broken models make the repository not all-ready");
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, non_numeric_subdirectories_are_not_versions)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, "facile", "facile", 1, true);
    mkdir_in(repo, "facile/reference");
    mkdir_in(repo, "facile/2a");
    mkdir_in(repo, "facile/-3");
    write_in(repo, "facile/7", "a file named like a version is not a version directory");
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    index_rows_t rows = index_of(r, false);
    cr_assert_eq(rows.n, 1);
    cr_assert_str_eq(rows.e[0].version, "1");
    cr_assert_str_eq(rows.e[0].state, "READY");
    repo_index_free(rows.e, rows.n);
    cr_assert(repo_all_ready(r));
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, index_lists_directories_never_loaded)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    char err[ERRLEN] = "";
    cr_assert_eq(repo_load(r, "facile", err, sizeof err), HLT_OK, "%s", err);
    index_rows_t rows = index_of(r, false);
    cr_assert_eq(rows.n, 7);
    const repo_index_entry_t *e = row(&rows, "jet_tagger", NULL);
    cr_assert_str_eq(e->state, "", "a model never loaded has no state");
    cr_assert_str_eq(row(&rows, "facile", "1")->state, "READY");
    repo_index_free(rows.e, rows.n);
    get_fails(r, "jet_tagger", "", HLT_NOT_FOUND, "jet_tagger");
    cr_assert(repo_all_ready(r), "only models the repository tried count");
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, empty_or_missing_root_loads_nothing)
{
    char *repo = tu_mkdtemp();
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 0);
    index_rows_t rows = index_of(r, false);
    cr_assert_eq(rows.n, 0);
    repo_index_free(rows.e, rows.n);
    cr_assert(repo_all_ready(r));
    repo_destroy(r);

    char missing[4200];
    TU_PATH(missing, "%s/does-not-exist", repo);
    r = make_repo(missing);
    cr_assert_eq(repo_load_all(r), 0);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, destroy_accepts_null)
{
    repo_destroy(NULL);
    repo_index_free(NULL, 0);
}

/* ---- lookups ---- */

Test(repository, get_resolves_latest_and_explicit_versions)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    repo_load_all(r);
    model_t *m = get_ok(r, "facile", "");
    cr_assert_str_eq(model_name(m), "facile");
    cr_assert_eq(model_version(m), 1);
    model_t *m1 = get_ok(r, "facile", "1");
    cr_assert_eq(m1, m, "the same served version");
    model_unref(m1);
    model_unref(m);

    /* name and version are (pointer, length) views, not NUL-terminated strings */
    m = NULL;
    char err[ERRLEN] = "";
    cr_assert_eq(repo_get(r, "jet_taggerXYZ", 10, "1junk", 1, &m, err, sizeof err), HLT_OK, "%s",
                 err);
    cr_assert_str_eq(model_name(m), "jet_tagger");
    model_unref(m);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, get_errors_name_the_problem)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    repo_load_all(r);
    get_fails(r, "facile", "2", HLT_NOT_FOUND, "version 2");
    get_fails(r, "nosuch", "", HLT_NOT_FOUND, "'nosuch'");
    get_fails(r, "nosuch", "1", HLT_NOT_FOUND, "'nosuch'");
    get_fails(r, "facile", "latest", HLT_INVALID_ARGUMENT, "version 'latest'");
    get_fails(r, "facile", "-1", HLT_INVALID_ARGUMENT, "'-1'");
    get_fails(r, "facile", "1.0", HLT_INVALID_ARGUMENT, "'1.0'");
    /* failed models: UNAVAILABLE with the reason of the failure */
    get_fails(r, "garbage", "", HLT_UNAVAILABLE, "model 'garbage' version 1");
    get_fails(r, "garbage", "1", HLT_UNAVAILABLE, "model 'garbage' version 1");
    get_fails(r, "badconfig", "", HLT_UNAVAILABLE, "config.json line 2");
    get_fails(r, "nofile", "", HLT_UNAVAILABLE, "not ready");
    get_fails(r, "unsupported", "", HLT_UNAVAILABLE, "Conv");
    get_fails(r, "noversion", "", HLT_UNAVAILABLE, "no version directory");
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, load_of_unknown_or_invalid_name_is_not_found)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    char err[ERRLEN] = "";
    cr_assert_eq(repo_load(r, "nosuch", err, sizeof err), HLT_NOT_FOUND);
    cr_assert(strstr(err, "'nosuch'"), "%s", err);
    cr_assert_eq(repo_load(r, "../facile", err, sizeof err), HLT_NOT_FOUND);
    cr_assert_eq(repo_load(r, "", err, sizeof err), HLT_NOT_FOUND);
    cr_assert_eq(repo_load(r, ".hidden", err, sizeof err), HLT_NOT_FOUND);
    cr_assert_eq(repo_load(r, "README.md", err, sizeof err), HLT_NOT_FOUND, "a file is no model");
    cr_assert_eq(repo_load(r, "garbage", err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "garbage"), "%s", err);
    cr_assert_eq(repo_load(r, "noversion", err, sizeof err), HLT_NOT_FOUND);
    cr_assert(strstr(err, "no version directory"), "%s", err);
    repo_destroy(r);
    drop_repo(repo);
}

/* ---- version policies ---- */

/* facile as versions 1, 2 and 3 of model "multi", with the given config. */
static char *multi_repo(const char *config_json)
{
    char *repo = tu_mkdtemp();
    for (int v = 1; v <= 3; v++)
        tu_install_model(repo, "facile", "multi", v, false);
    if (config_json)
        write_in(repo, "multi/config.json", config_json);
    return repo;
}

static void expect_versions(repo_t *r, const char *const *ready, size_t n)
{
    index_rows_t rows = index_of(r, false);
    cr_assert_eq(rows.n, n, "%zu rows, expected %zu", rows.n, n);
    for (size_t i = 0; i < n; i++) {
        const repo_index_entry_t *e = row(&rows, "multi", ready[i]);
        cr_assert_str_eq(e->state, "READY");
    }
    repo_index_free(rows.e, rows.n);
}

Test(repository, default_policy_serves_the_latest_version)
{
    char *repo = multi_repo(NULL);
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    expect_versions(r, (const char *const[]){"3"}, 1);
    model_t *m = get_ok(r, "multi", "");
    cr_assert_eq(model_version(m), 3);
    model_unref(m);
    get_fails(r, "multi", "2", HLT_NOT_FOUND, "version 2");
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, latest_two_serves_the_two_highest)
{
    char *repo = multi_repo("{\"version_policy\": {\"latest\": {\"num_versions\": 2}}}");
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    expect_versions(r, (const char *const[]){"3", "2"}, 2);
    model_t *m = get_ok(r, "multi", "");
    cr_assert_eq(model_version(m), 3, "no version asked: the highest served");
    model_unref(m);
    m = get_ok(r, "multi", "2");
    cr_assert_eq(model_version(m), 2);
    cr_assert_str_eq(model_version_str(m), "2");
    model_unref(m);
    get_fails(r, "multi", "1", HLT_NOT_FOUND, "version 1");
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, specific_policy_serves_the_listed_versions)
{
    char *repo = multi_repo("{\"version_policy\": {\"specific\": {\"versions\": [1, 3, 9]}}}");
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    expect_versions(r, (const char *const[]){"3", "1"}, 2);
    model_t *m = get_ok(r, "multi", "1");
    cr_assert_eq(model_version(m), 1);
    model_unref(m);
    get_fails(r, "multi", "2", HLT_NOT_FOUND, "version 2");
    get_fails(r, "multi", "9", HLT_NOT_FOUND, "version 9");
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, all_policy_serves_every_version)
{
    char *repo = multi_repo("{\"version_policy\": {\"all\": {}}}");
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    expect_versions(r, (const char *const[]){"3", "2", "1"}, 3);
    model_t **ms = NULL;
    size_t n = repo_collect(r, "multi", &ms);
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++)
        model_unref(ms[i]);
    free(ms);
    n = repo_collect(r, "other", &ms);
    cr_assert_eq(n, 0);
    free(ms);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, specific_policy_without_matching_directory_fails)
{
    char *repo = multi_repo("{\"version_policy\": {\"specific\": {\"versions\": [7]}}}");
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 0);
    get_fails(r, "multi", "", HLT_UNAVAILABLE, "no version directory");
    cr_assert_not(repo_all_ready(r));
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, one_broken_version_is_reported_beside_served_ones)
{
    char *repo = multi_repo("{\"version_policy\": {\"all\": {}}}");
    write_in(repo, "multi/2/model.onnx", "broken");
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    index_rows_t rows = index_of(r, false);
    cr_assert_eq(rows.n, 3);
    cr_assert_str_eq(row(&rows, "multi", "3")->state, "READY");
    cr_assert_str_eq(row(&rows, "multi", "1")->state, "READY");
    const repo_index_entry_t *e = row(&rows, "multi", "2");
    cr_assert_str_eq(e->state, "UNAVAILABLE");
    cr_assert(strstr(e->reason, "version 2"), "%s", e->reason);
    repo_index_free(rows.e, rows.n);
    get_fails(r, "multi", "2", HLT_UNAVAILABLE, "version 2");
    model_t *m = get_ok(r, "multi", "");
    cr_assert_eq(model_version(m), 3);
    model_unref(m);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, latest_skips_a_broken_highest_version_for_lookups)
{
    char *repo = multi_repo("{\"version_policy\": {\"latest\": {\"num_versions\": 2}}}");
    write_in(repo, "multi/3/model.onnx", "broken");
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    model_t *m = get_ok(r, "multi", "");
    cr_assert_eq(model_version(m), 2, "the highest version that is being served");
    model_unref(m);
    get_fails(r, "multi", "3", HLT_UNAVAILABLE, "not ready");
    repo_destroy(r);
    drop_repo(repo);
}

/* ---- unload and reload ---- */

Test(repository, unload_makes_model_unavailable_until_reloaded)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    repo_load_all(r);
    char err[ERRLEN] = "";
    cr_assert_eq(repo_unload(r, "facile", err, sizeof err), HLT_OK, "%s", err);
    get_fails(r, "facile", "", HLT_UNAVAILABLE, "unloaded");
    get_fails(r, "facile", "1", HLT_UNAVAILABLE, "unloaded");
    index_rows_t rows = index_of(r, false);
    const repo_index_entry_t *e = row(&rows, "facile", NULL);
    cr_assert_str_eq(e->state, "UNAVAILABLE");
    cr_assert_str_eq(e->reason, "unloaded");
    repo_index_free(rows.e, rows.n);
    rows = index_of(r, true);
    cr_assert_not(has_row(&rows, "facile"));
    repo_index_free(rows.e, rows.n);
    model_t **ms = NULL;
    cr_assert_eq(repo_collect(r, "facile", &ms), 0);
    free(ms);

    cr_assert_eq(repo_load(r, "facile", err, sizeof err), HLT_OK, "%s", err);
    model_t *m = get_ok(r, "facile", "");
    model_unref(m);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, unload_of_unknown_model_is_not_found)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    char err[ERRLEN] = "";
    cr_assert_eq(repo_unload(r, "facile", err, sizeof err), HLT_NOT_FOUND,
                 "never loaded: nothing to unload");
    cr_assert(strstr(err, "'facile'"), "%s", err);
    cr_assert_eq(repo_unload(r, "nosuch", err, sizeof err), HLT_NOT_FOUND);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, unloading_broken_models_makes_repository_ready)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    repo_load_all(r);
    cr_assert_not(repo_all_ready(r));
    const char *broken[] = {"garbage", "nofile", "badconfig", "unsupported", "noversion"};
    char err[ERRLEN] = "";
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(repo_unload(r, broken[i], err, sizeof err), HLT_OK, "%s: %s", broken[i], err);
    cr_assert(repo_all_ready(r));
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, model_added_after_start_loads_on_request)
{
    char *repo = tu_mkdtemp();
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 0);
    get_fails(r, "jet_tagger", "", HLT_NOT_FOUND, "jet_tagger");
    tu_install_model(repo, "jet_tagger", "jet_tagger", 1, true);
    char err[ERRLEN] = "";
    cr_assert_eq(repo_load(r, "jet_tagger", err, sizeof err), HLT_OK, "%s", err);
    model_t *m = get_ok(r, "jet_tagger", "1");
    model_unref(m);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, fixing_a_broken_model_and_reloading_serves_it)
{
    char *repo = mixed_repo();
    repo_t *r = make_repo(repo);
    repo_load_all(r);
    get_fails(r, "badconfig", "", HLT_UNAVAILABLE, "config.json");
    write_in(repo, "badconfig/config.json", "{\"name\": \"badconfig\", \"max_batch_size\": 8}");
    char err[ERRLEN] = "";
    cr_assert_eq(repo_load(r, "badconfig", err, sizeof err), HLT_OK, "%s", err);
    model_t *m = get_ok(r, "badconfig", "");
    cr_assert_eq(model_config(m)->max_batch_size, 8);
    model_unref(m);
    index_rows_t rows = index_of(r, false);
    const repo_index_entry_t *e = row(&rows, "badconfig", "1");
    cr_assert_str_eq(e->state, "READY");
    cr_assert_str_eq(e->reason, "cpu:0 x1", "the old failure reason is gone: a READY reason says where it runs");
    repo_index_free(rows.e, rows.n);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, failed_reload_keeps_serving_the_old_version)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, "facile", "facile", 1, true);
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    model_t *before = get_ok(r, "facile", "");
    write_in(repo, "facile/1/model.onnx", "corrupted on disk");
    char err[ERRLEN] = "";
    cr_assert_neq(repo_load(r, "facile", err, sizeof err), HLT_OK);
    cr_assert(strstr(err, "facile"), "%s", err);
    model_t *after = get_ok(r, "facile", "");
    cr_assert_eq(after, before, "the previously served version keeps serving");
    model_unref(after);
    model_unref(before);
    repo_destroy(r);
    drop_repo(repo);
}

/* An explicit load that fails after an unload is a failure like any other: the index and
 * lookups give its reason (not the stale "unloaded"), and the repository is not all-ready. */
Test(repository, failed_load_after_unload_reports_the_failure)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, "facile", "facile", 1, true);
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    char err[ERRLEN] = "";
    cr_assert_eq(repo_unload(r, "facile", err, sizeof err), HLT_OK, "%s", err);
    write_in(repo, "facile/1/model.onnx", "corrupted on disk");
    cr_assert_neq(repo_load(r, "facile", err, sizeof err), HLT_OK);
    index_rows_t rows = index_of(r, false);
    const repo_index_entry_t *e = row(&rows, "facile", NULL);
    cr_assert_str_eq(e->state, "UNAVAILABLE");
    cr_assert(strstr(e->reason, "model 'facile' version 1"),
              "the index should give the load failure, not \"%s\"", e->reason);
    repo_index_free(rows.e, rows.n);
    get_fails(r, "facile", "", HLT_UNAVAILABLE, "model 'facile' version 1");
    cr_assert_not(repo_all_ready(r), "the repository tried to load facile and failed");
    repo_destroy(r);
    drop_repo(repo);
}

static void *reload_thread(void *arg)
{
    repo_t *r = arg;
    char err[ERRLEN] = "";
    hlt_status st = repo_load(r, "facile", err, sizeof err);
    return (void *)(uintptr_t)st;
}

Test(repository, reload_while_holding_the_old_version)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, "facile", "facile", 1, true);
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    tu_case_t c;
    tu_load_case("facile", "n7", &c);

    model_t *old = get_ok(r, "facile", "");
    /* Job a is held inside its completion, so job b is still queued on the old version when
     * the reload swaps it out. */
    tjob_t *a = make_job(old, &c, NULL, 0, "a"), *b = make_job(old, &c, NULL, 0, "b");
    a->gate = true;
    submit_ok(old, a);
    wait_flag(&a->in_complete, "the old version's worker to hold job a");
    submit_ok(old, b);

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reload_thread, r), 0);
    release(a);
    void *ret;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    cr_assert_eq(pthread_timedjoin_np(th, &ret, &until), 0, "repo_load did not return");
    cr_assert_eq((hlt_status)(uintptr_t)ret, HLT_OK);

    /* The queued job finished on the old version with a correct result. */
    cr_assert(flag_now(&b->done), "job queued on the old version was dropped");
    cr_assert_eq(b->st, HLT_OK, "%s", b->message);
    Inference__ModelInferResponse *resp =
        inference__model_infer_response__unpack(NULL, b->resp_size, b->resp);
    cr_assert_not_null(resp);
    check_output(resp, 0, &c, "output");
    inference__model_infer_response__free_unpacked(resp, NULL);

    /* The new version is served; the old one stays valid for its holders. */
    model_t *new_m = get_ok(r, "facile", "");
    cr_assert_neq(new_m, old, "the reload serves a new model object");
    cr_assert_str_eq(model_name(old), "facile");
    cr_assert_eq(model_config(old)->max_batch_size, 16000);
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(old), &s);
    cr_assert_eq(s.success.count, 2, "the old version counted both of its jobs");
    tjob_t *n = make_job(new_m, &c, NULL, 0, "n");
    Inference__ModelInferResponse *rn = run_ok(new_m, n);
    check_output(rn, 0, &c, "output");
    inference__model_infer_response__free_unpacked(rn, NULL);

    free_job(n);
    free_job(a);
    free_job(b);
    model_unref(new_m);
    model_unref(old); /* the last reference to the old version frees it */
    tu_free_case(&c);
    repo_destroy(r);
    drop_repo(repo);
}

Test(repository, index_keeps_models_whose_directory_was_removed)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, "facile", "facile", 1, true);
    tu_install_model(repo, "jet_tagger", "jet_tagger", 1, true);
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 2);
    char dir[4200];
    TU_PATH(dir, "%s/facile", repo);
    tu_rm_rf(dir);
    index_rows_t rows = index_of(r, false);
    cr_assert_eq(rows.n, 2);
    cr_assert_str_eq(row(&rows, "facile", "1")->state, "READY", "still served from memory");
    repo_index_free(rows.e, rows.n);
    model_t *m = get_ok(r, "facile", "");
    model_unref(m);
    repo_destroy(r);
    drop_repo(repo);
}

/* Lookups racing with reloads: every lookup either gets a live model (valid until unref, which
 * the ASan build checks) or none; the swap never exposes a gap in which the model is missing. */
typedef struct lookup_ctx {
    repo_t *r;
    atomic_bool stop;
    atomic_long lookups, failures;
} lookup_ctx_t;

static void *lookup_loop(void *arg)
{
    lookup_ctx_t *ctx = arg;
    while (!atomic_load(&ctx->stop)) {
        model_t *m = NULL;
        char err[ERRLEN];
        if (repo_get(ctx->r, "facile", 6, "", 0, &m, err, sizeof err) == HLT_OK &&
            model_config(m)->max_batch_size == 16000 && !strcmp(model_name(m), "facile"))
            atomic_fetch_add(&ctx->lookups, 1);
        else
            atomic_fetch_add(&ctx->failures, 1);
        model_unref(m);
    }
    return NULL;
}

/* Spins (yielding) until the lookup threads have done `target` lookups in all. */
static void await_lookups(lookup_ctx_t *ctx, long target)
{
    while (atomic_load(&ctx->lookups) + atomic_load(&ctx->failures) < target)
        sched_yield();
}

Test(repository, lookups_during_reloads_always_find_a_live_model)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, "facile", "facile", 1, true);
    repo_t *r = make_repo(repo);
    cr_assert_eq(repo_load_all(r), 1);
    lookup_ctx_t ctx = {.r = r};
    atomic_init(&ctx.stop, false);
    atomic_init(&ctx.lookups, 0);
    atomic_init(&ctx.failures, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, lookup_loop, &ctx), 0);
    char err[ERRLEN] = "";
    for (long i = 1; i <= 5; i++) {
        await_lookups(&ctx, i * 50); /* lookups overlap every reload */
        cr_assert_eq(repo_load(r, "facile", err, sizeof err), HLT_OK, "%s", err);
    }
    await_lookups(&ctx, 300);
    atomic_store(&ctx.stop, true);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(atomic_load(&ctx.failures), 0, "a lookup found no model during a reload");
    cr_assert_geq(atomic_load(&ctx.lookups), 300);
    repo_destroy(r);
    drop_repo(repo);
}
