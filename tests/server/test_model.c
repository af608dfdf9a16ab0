/* Tests for server/model.c: loading the example models, running jobs through the bounded queue
 * and the instance workers, and checking the responses against the reference vectors
 * (models/<m>/reference, rtol 1e-4 + atol 1e-5). Jobs are built by hand the way rpc_infer.c
 * builds them (decode a packed ModelInferRequest, map config inputs/outputs, resolve data) with
 * test callbacks in place of gRPC. Everything that waits, waits on a condition with a bounded
 * timeout; workers are held in a gate inside the complete callback when a test needs the queue
 * in a known state. */
#include "model.h"
#include "test_jobs.h"
#include "test_util.h"

#include "log.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static void quiet(void)
{
    hlt_log_level = -1; /* expected load failures would otherwise log */
}

TestSuite(model, .init = quiet, .fini = tu_cleanup_temp_dirs, .timeout = 110);

/* ---- loading ---- */

static model_t *load(const char *dir, const char *name, int64_t version,
                     const model_load_options_t *opts)
{
    model_load_options_t def = {MODEL_CONFIG_DEFAULT_MAX_BATCH, 0, 0, 0};
    model_t *m = NULL;
    char err[ERRLEN] = "";
    hlt_status st = model_load(dir, name, version, opts ? opts : &def, &m, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "model_load %s: %s", dir, err);
    cr_assert_not_null(m);
    return m;
}

static model_t *load_example(const char *name, const model_load_options_t *opts)
{
    char dir[4096];
    TU_PATH(dir, "%s/models/%s", tu_source_root(), name);
    return load(dir, name, 1, opts);
}

/* Loads and expects failure with want in the message. */
static void load_fails(const char *dir, const char *name, int64_t version, hlt_status want_st,
                       const char *want)
{
    model_load_options_t opts = {64, 0, 0, 0};
    model_t *m = (model_t *)(uintptr_t)0x1;
    char err[ERRLEN] = "";
    hlt_status st = model_load(dir, name, version, &opts, &m, err, sizeof err);
    cr_assert_eq(st, want_st, "status %d (%s)", st, err);
    cr_assert_eq(m, (model_t *)(uintptr_t)0x1, "*out untouched on failure");
    cr_assert(strstr(err, want), "message \"%s\" should contain \"%s\"", err, want);
}

/* A temporary repository holding a copy of one example model with its config replaced by
 * config_json (NULL: keep the example's). */
static char *temp_model(const char *model, const char *config_json)
{
    char *repo = tu_mkdtemp();
    tu_install_model(repo, model, model, 1, true);
    if (config_json) {
        char path[4200];
        TU_PATH(path, "%s/%s/config.json", repo, model);
        tu_write_text(path, config_json);
    }
    return repo;
}

static void temp_dir_path(char *out, size_t n, const char *repo, const char *model)
{
    snprintf(out, n, "%s/%s", repo, model);
}

Test(model, loads_examples_with_completed_configs)
{
    model_t *m = load_example("facile", NULL);
    cr_assert_str_eq(model_name(m), "facile");
    cr_assert_eq(model_version(m), 1);
    cr_assert_str_eq(model_version_str(m), "1");
    const model_config_t *cfg = model_config(m);
    cr_assert_eq(cfg->max_batch_size, 16000);
    cr_assert_eq(cfg->n_inputs, 1);
    cr_assert_str_eq(cfg->inputs[0].name, "input");
    cr_assert_eq(cfg->inputs[0].dims[0], 15);
    cr_assert_eq(model_queue_length(m), 0);
    model_retire(m);
    model_unref(m);

    m = load_example("jet_tagger", NULL);
    cr_assert_eq(model_config(m)->n_outputs, 2);
    model_unref(m); /* the last reference retires too */
}

Test(model, unref_accepts_null)
{
    model_unref(NULL);
}

Test(model, load_reports_missing_model_file)
{
    char *repo = temp_model("facile", NULL);
    char dir[4200];
    temp_dir_path(dir, sizeof dir, repo, "facile");
    load_fails(dir, "facile", 2, HLT_NOT_FOUND, "model file");
    tu_rm_rf(repo);
    free(repo);
}

Test(model, load_reports_bad_config)
{
    char *repo = temp_model("facile", "{\"name\": \"facile\", \"max_batch_size\": \"lots\"}");
    char dir[4200];
    temp_dir_path(dir, sizeof dir, repo, "facile");
    load_fails(dir, "facile", 1, HLT_INVALID_ARGUMENT, "'max_batch_size'");
    tu_rm_rf(repo);
    free(repo);
}

Test(model, load_reports_garbage_model_file)
{
    char *repo = temp_model("facile", NULL);
    char path[4300], dir[4200];
    TU_PATH(path, "%s/facile/1/model.onnx", repo);
    tu_write_text(path, "this is not an ONNX model \xff\xfe\x01");
    temp_dir_path(dir, sizeof dir, repo, "facile");
    load_fails(dir, "facile", 1, HLT_INVALID_ARGUMENT, "model 'facile' version 1");
    tu_rm_rf(repo);
    free(repo);
}

Test(model, load_reports_config_graph_mismatch)
{
    char *repo = temp_model("jet_tagger", "{\"input\": [{\"name\": \"jet_features\", "
                                          "\"data_type\": \"TYPE_FP32\", \"dims\": [32]}]}");
    char dir[4200];
    temp_dir_path(dir, sizeof dir, repo, "jet_tagger");
    load_fails(dir, "jet_tagger", 1, HLT_INVALID_ARGUMENT, "dims[0] = 32");
    tu_rm_rf(repo);
    free(repo);
}

Test(model, load_uses_default_model_filename)
{
    char *repo = temp_model("facile", "{\"default_model_filename\": \"net.onnx\"}");
    char from[4300], to[4300], dir[4200];
    TU_PATH(from, "%s/facile/1/model.onnx", repo);
    TU_PATH(to, "%s/facile/1/net.onnx", repo);
    cr_assert_eq(rename(from, to), 0);
    temp_dir_path(dir, sizeof dir, repo, "facile");
    model_t *m = load(dir, "facile", 1, NULL);
    cr_assert_eq(model_config(m)->max_batch_size, MODEL_CONFIG_DEFAULT_MAX_BATCH,
                 "no max_batch_size in this config: the default applies");
    model_unref(m);
    tu_rm_rf(repo);
    free(repo);
}

/* ---- inference against the reference vectors ---- */

Test(model, facile_n7_matches_reference)
{
    tu_case_t c;
    tu_load_case("facile", "n7", &c);
    model_t *m = load_example("facile", NULL);
    tjob_t *t = make_job(m, &c, NULL, 0, "facile-7");
    Inference__ModelInferResponse *r = run_ok(m, t);
    cr_assert_str_eq(r->model_name, "facile");
    cr_assert_str_eq(r->model_version, "1");
    cr_assert_str_eq(r->id, "facile-7", "the request id is echoed");
    cr_assert_eq(r->n_outputs, 1);
    check_output(r, 0, &c, "output");
    inference__model_infer_response__free_unpacked(r, NULL);
    free_job(t);
    model_unref(m);
    tu_free_case(&c);
}

Test(model, jet_tagger_batch3_matches_reference)
{
    tu_case_t c;
    tu_load_case("jet_tagger", "batch3", &c);
    model_t *m = load_example("jet_tagger", NULL);
    tjob_t *t = make_job(m, &c, NULL, 0, NULL);
    Inference__ModelInferResponse *r = run_ok(m, t);
    cr_assert_str_eq(r->model_name, "jet_tagger");
    cr_assert_str_eq(r->id, "");
    cr_assert_eq(r->n_outputs, 2, "all outputs when none are requested");
    check_output(r, 0, &c, "probabilities");
    check_output(r, 1, &c, "logits");
    inference__model_infer_response__free_unpacked(r, NULL);
    free_job(t);
    model_unref(m);
    tu_free_case(&c);
}

Test(model, requested_output_subset_returns_only_those)
{
    tu_case_t c;
    tu_load_case("jet_tagger", "batch3", &c);
    model_t *m = load_example("jet_tagger", NULL);
    const char *only[1] = {"logits"};
    tjob_t *t = make_job(m, &c, only, 1, "subset");
    Inference__ModelInferResponse *r = run_ok(m, t);
    cr_assert_eq(r->n_outputs, 1);
    check_output(r, 0, &c, "logits");
    inference__model_infer_response__free_unpacked(r, NULL);
    free_job(t);

    const char *both[2] = {"logits", "probabilities"}; /* response order = request order */
    t = make_job(m, &c, both, 2, NULL);
    r = run_ok(m, t);
    cr_assert_eq(r->n_outputs, 2);
    check_output(r, 0, &c, "logits");
    check_output(r, 1, &c, "probabilities");
    inference__model_infer_response__free_unpacked(r, NULL);
    free_job(t);
    model_unref(m);
    tu_free_case(&c);
}

Test(model, every_reference_case_matches)
{
    const char *cases[2][3] = {{"facile", "n1", "n16000"}, {"jet_tagger", "batch1", "batch64"}};
    for (int k = 0; k < 2; k++) {
        model_t *m = load_example(cases[k][0], NULL);
        for (int i = 1; i < 3; i++) {
            tu_case_t c;
            tu_load_case(cases[k][0], cases[k][i], &c);
            tjob_t *t = make_job(m, &c, NULL, 0, NULL);
            Inference__ModelInferResponse *r = run_ok(m, t);
            for (size_t o = 0; o < c.n_out; o++)
                check_output(r, o, &c, c.out[o].name);
            inference__model_infer_response__free_unpacked(r, NULL);
            free_job(t);
            tu_free_case(&c);
        }
        model_unref(m);
    }
}

Test(model, subset_config_outputs_still_compute)
{
    /* A config that lists only logits: probabilities is computed into scratch, never sent. */
    char *repo = temp_model("jet_tagger", "{\"output\": [{\"name\": \"logits\"}]}");
    char dir[4200];
    temp_dir_path(dir, sizeof dir, repo, "jet_tagger");
    model_t *m = load(dir, "jet_tagger", 1, NULL);
    cr_assert_eq(model_config(m)->n_outputs, 1);
    tu_case_t c;
    tu_load_case("jet_tagger", "batch3", &c);
    tjob_t *t = make_job(m, &c, NULL, 0, NULL);
    Inference__ModelInferResponse *r = run_ok(m, t);
    cr_assert_eq(r->n_outputs, 1);
    check_output(r, 0, &c, "logits");
    inference__model_infer_response__free_unpacked(r, NULL);
    free_job(t);
    model_unref(m);
    tu_free_case(&c);
    tu_rm_rf(repo);
    free(repo);
}

Test(model, several_instances_compute_concurrent_jobs)
{
    char *repo = temp_model("facile", "{\"instance_group\": [{\"kind\": \"KIND_CPU\", \"count\": "
                                      "3}]}");
    char dir[4200];
    temp_dir_path(dir, sizeof dir, repo, "facile");
    model_t *m = load(dir, "facile", 1, NULL);
    cr_assert_eq(model_config_instance_count(model_config(m)), 3);
    tu_case_t c;
    tu_load_case("facile", "n7", &c);
    enum { N = 24 };
    tjob_t *t[N];
    for (int i = 0; i < N; i++) {
        t[i] = make_job(m, &c, NULL, 0, NULL);
        submit_ok(m, t[i]);
    }
    for (int i = 0; i < N; i++) {
        wait_flag(&t[i]->done, "a job to complete");
        cr_assert_eq(t[i]->st, HLT_OK, "%s", t[i]->message);
        Inference__ModelInferResponse *r =
            inference__model_infer_response__unpack(NULL, t[i]->resp_size, t[i]->resp);
        cr_assert_not_null(r);
        check_output(r, 0, &c, "output");
        inference__model_infer_response__free_unpacked(r, NULL);
    }
    model_retire(m);
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.success.count, N);
    cr_assert_eq(s.execution_count, N);
    cr_assert_eq(s.inference_count, (uint64_t)N * 7);
    for (int i = 0; i < N; i++)
        free_job(t[i]);
    model_unref(m);
    tu_free_case(&c);
    tu_rm_rf(repo);
    free(repo);
}

/* ---- failures ---- */

Test(model, expired_deadline_is_not_computed)
{
    tu_case_t c;
    tu_load_case("facile", "n7", &c);
    model_t *m = load_example("facile", NULL);
    tjob_t *t = make_job(m, &c, NULL, 0, NULL);
    t->job.deadline_ns = t->job.t_recv_ns - 1; /* already expired */
    submit_ok(m, t);
    wait_flag(&t->done, "the expired job to complete");
    cr_assert_eq(t->st, HLT_DEADLINE_EXCEEDED, "status %d", t->st);
    cr_assert(strstr(t->message, "model 'facile'"), "%s", t->message);
    cr_assert(strstr(t->message, "deadline"), "%s", t->message);
    cr_assert_eq(t->alloc_calls, 0, "no response is built for an expired job");
    model_retire(m); /* workers joined: every stats update has landed */
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.fail.count, 1);
    cr_assert_eq(s.success.count, 0);
    cr_assert_eq(s.execution_count, 0, "an expired job is never executed");
    cr_assert_eq(s.inference_count, 0);
    free_job(t);
    model_unref(m);
    tu_free_case(&c);
}

Test(model, response_allocation_failure_is_resource_exhausted)
{
    tu_case_t c;
    tu_load_case("facile", "n7", &c);
    model_t *m = load_example("facile", NULL);
    tjob_t *t = make_job(m, &c, NULL, 0, NULL);
    t->fail_alloc = true;
    submit_ok(m, t);
    wait_flag(&t->done, "the job to complete");
    cr_assert_eq(t->st, HLT_RESOURCE_EXHAUSTED, "status %d", t->st);
    cr_assert_gt(strlen(t->message), 0);
    model_retire(m);
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.fail.count, 1);
    cr_assert_eq(s.success.count, 0);
    free_job(t);
    model_unref(m);
    tu_free_case(&c);
}

Test(model, shape_the_graph_rejects_fails_the_job)
{
    /* rpc_infer validates shapes first; the worker must still fail cleanly if the engine
     * rejects them. facile wants [N, 15]; send [2, 14]. */
    model_t *m = load_example("facile", NULL);
    float x[28] = {0};
    tu_input_t in = {"input", "FP32", 2, {2, 14}, x, sizeof x};
    tjob_t *t = make_job_from(m, &in, 1, NULL, 0, NULL);
    submit_ok(m, t);
    wait_flag(&t->done, "the job to complete");
    cr_assert_eq(t->st, HLT_INVALID_ARGUMENT, "status %d: %s", t->st, t->message);
    cr_assert(strstr(t->message, "model 'facile'"), "%s", t->message);
    cr_assert_eq(t->alloc_calls, 0);
    model_retire(m);
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.fail.count, 1);
    cr_assert_eq(s.execution_count, 0);
    free_job(t);
    model_unref(m);
}

/* With one worker held inside job A's complete callback, the queue holds exactly what the test
 * submits next: no timing involved. */
static void queue_full_case(model_t *m)
{
    tu_case_t c;
    tu_load_case("facile", "n1", &c);
    tjob_t *a = make_job(m, &c, NULL, 0, "a"), *b = make_job(m, &c, NULL, 0, "b"),
           *d = make_job(m, &c, NULL, 0, "c");
    a->gate = true;
    submit_ok(m, a);
    wait_flag(&a->in_complete, "the worker to hold job a");
    submit_ok(m, b); /* the one queue slot */
    cr_assert_eq(model_queue_length(m), 1);
    char err[ERRLEN] = "";
    hlt_status st = model_submit(m, &d->job, err, sizeof err);
    cr_assert_eq(st, HLT_UNAVAILABLE, "status %d", st);
    cr_assert(strstr(err, "model 'facile'"), "%s", err);
    cr_assert(strstr(err, "queue full") || strstr(err, "maximum queue size"), "%s", err);
    cr_assert_not(flag_now(&d->in_complete), "a refused job stays with the caller");
    release(a);
    wait_flag(&b->done, "job b");
    cr_assert_eq(a->st, HLT_OK);
    cr_assert_eq(b->st, HLT_OK);
    submit_ok(m, d); /* the caller kept d and may retry */
    wait_flag(&d->done, "job c");
    cr_assert_eq(d->st, HLT_OK);
    model_retire(m);
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.success.count, 3);
    cr_assert_eq(s.fail.count, 0, "a refused submit is not counted by the model");
    free_job(a);
    free_job(b);
    free_job(d);
    tu_free_case(&c);
}

Test(model, full_queue_answers_unavailable)
{
    model_load_options_t opts = {MODEL_CONFIG_DEFAULT_MAX_BATCH, 1, 0, 0};
    model_t *m = load_example("facile", &opts);
    queue_full_case(m);
    model_unref(m);
}

Test(model, config_max_queue_size_bounds_the_queue)
{
    char *repo = temp_model("facile", "{\"dynamic_batching\": {\"default_queue_policy\": "
                                      "{\"max_queue_size\": 1}}}");
    char dir[4200];
    temp_dir_path(dir, sizeof dir, repo, "facile");
    model_load_options_t opts = {MODEL_CONFIG_DEFAULT_MAX_BATCH, 1024, 0, 0};
    model_t *m = load(dir, "facile", 1, &opts);
    queue_full_case(m);
    model_unref(m);
    tu_rm_rf(repo);
    free(repo);
}

static void *retire_thread(void *arg)
{
    model_retire(arg);
    return NULL;
}

Test(model, retire_completes_queued_jobs)
{
    tu_case_t c;
    tu_load_case("facile", "n7", &c);
    model_t *m = load_example("facile", NULL);
    enum { QUEUED = 5 };
    tjob_t *a = make_job(m, &c, NULL, 0, NULL), *q[QUEUED];
    a->gate = true;
    submit_ok(m, a);
    wait_flag(&a->in_complete, "the worker to hold job a");
    for (int i = 0; i < QUEUED; i++) {
        q[i] = make_job(m, &c, NULL, 0, NULL);
        submit_ok(m, q[i]);
    }
    cr_assert_eq(model_queue_length(m), QUEUED);
    /* Retire while the jobs are queued; it returns only once they are all done. */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, retire_thread, m), 0);
    release(a);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    cr_assert_eq(pthread_timedjoin_np(th, NULL, &until), 0, "model_retire did not return");
    for (int i = 0; i < QUEUED; i++) {
        cr_assert(flag_now(&q[i]->done), "queued job %d was not completed by retire", i);
        cr_assert_eq(q[i]->st, HLT_OK, "%s", q[i]->message);
    }
    /* Retired: no more intake, and retiring again is harmless. */
    tjob_t *late = make_job(m, &c, NULL, 0, NULL);
    char err[ERRLEN] = "";
    cr_assert_eq(model_submit(m, &late->job, err, sizeof err), HLT_ABORTED);
    cr_assert(strstr(err, "unloaded"), "%s", err);
    model_retire(m);
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.success.count, QUEUED + 1);
    free_job(late);
    free_job(a);
    for (int i = 0; i < QUEUED; i++)
        free_job(q[i]);
    model_unref(m);
    tu_free_case(&c);
}

/* ---- statistics ---- */

Test(model, stats_after_n_requests)
{
    model_t *m = load_example("jet_tagger", NULL);
    const char *names[5] = {"batch1", "batch3", "batch3", "batch64", "batch1"};
    uint64_t rows = 0;
    for (int i = 0; i < 5; i++) {
        tu_case_t c;
        tu_load_case("jet_tagger", names[i], &c);
        tjob_t *t = make_job(m, &c, NULL, 0, NULL);
        Inference__ModelInferResponse *r = run_ok(m, t);
        rows += (uint64_t)c.in[0].shape[0];
        inference__model_infer_response__free_unpacked(r, NULL);
        free_job(t);
        tu_free_case(&c);
    }
    model_retire(m); /* joins the worker: the last job's stats have landed */
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.success.count, 5);
    cr_assert_eq(s.queue.count, 5);
    cr_assert_eq(s.compute_infer.count, 5);
    cr_assert_eq(s.fail.count, 0);
    cr_assert_eq(s.execution_count, 5, "one execution per request (no batcher yet)");
    cr_assert_eq(s.inference_count, rows, "inference_count counts rows");
    cr_assert_eq(rows, 72);
    cr_assert_eq(s.n_batch, 3, "batch sizes 1, 3 and 64");
    for (size_t i = 0; i < s.n_batch; i++) {
        uint64_t want = s.batch[i].batch_size == 64 ? 1 : 2;
        cr_assert(s.batch[i].batch_size == 1 || s.batch[i].batch_size == 3 ||
                  s.batch[i].batch_size == 64);
        cr_assert_eq(s.batch[i].compute_infer.count, want, "batch size %llu",
                     (unsigned long long)s.batch[i].batch_size);
    }
    cr_assert_gt(s.last_inference_ms, 0);
    model_unref(m);
}

/* Direct dispatch (model_submit runs a request that would be a batch of its own at once on the
 * submitting thread): once a batch has been timed, a sparse request on a model without dynamic
 * batching is answered before model_submit returns, with the same answer and statistics. */
Test(model, direct_dispatch_answers_within_submit)
{
    char *repo = temp_model("facile", "{\"name\": \"facile\", \"max_batch_size\": 16000}");
    char dir[4200];
    TU_PATH(dir, "%s/facile", repo);
    model_load_options_t opts = {MODEL_CONFIG_DEFAULT_MAX_BATCH, 0, 0, 1000000000};
    model_t *m = load(dir, "facile", 1, &opts);
    free(repo);
    tu_case_t c;
    tu_load_case("facile", "n7", &c);
    /* the first goes through the worker: no batch has been timed yet */
    tjob_t *t = make_job(m, &c, NULL, 0, NULL);
    Inference__ModelInferResponse *r = run_ok(m, t);
    inference__model_infer_response__free_unpacked(r, NULL);
    free_job(t);
    for (int i = 0; i < 3; i++) {
        t = make_job(m, &c, NULL, 0, "direct");
        usleep(2000); /* sparse arrivals (BATCHER_DIRECT_MIN_GAP_NS) */
        submit_ok(m, t);
        cr_assert(flag_now(&t->done), "request %d was not answered within model_submit", i);
        cr_assert_eq(t->st, HLT_OK, "%s", t->message);
        r = inference__model_infer_response__unpack(NULL, t->resp_size, t->resp);
        cr_assert_not_null(r);
        cr_assert_str_eq(r->id, "direct");
        check_output(r, 0, &c, "output");
        inference__model_infer_response__free_unpacked(r, NULL);
        free_job(t);
    }
    model_retire(m);
    model_stats_snapshot_t s;
    stats_snapshot(model_stats(m), &s);
    cr_assert_eq(s.success.count, 4);
    cr_assert_eq(s.queue.count, 4);
    cr_assert_eq(s.execution_count, 4);
    cr_assert_eq(s.inference_count, 28);
    model_unref(m);
    tu_free_case(&c);
}

/* With a direct-dispatch bound below the model's batch time, requests go to the worker. */
Test(model, direct_dispatch_respects_its_time_bound)
{
    char *repo = temp_model("facile", "{\"name\": \"facile\", \"max_batch_size\": 16000}");
    char dir[4200];
    TU_PATH(dir, "%s/facile", repo);
    model_load_options_t opts = {MODEL_CONFIG_DEFAULT_MAX_BATCH, 0, 0, 1};
    model_t *m = load(dir, "facile", 1, &opts);
    free(repo);
    tu_case_t c;
    tu_load_case("facile", "n7", &c);
    for (int i = 0; i < 3; i++) {
        tjob_t *t = make_job(m, &c, NULL, 0, NULL);
        t->gate = true; /* held in complete() on the worker: not done when submit returns */
        submit_ok(m, t);
        cr_assert_not(flag_now(&t->done), "request %d (1 ns bound) ran within model_submit", i);
        release(t);
        wait_flag(&t->done, "worker completion");
        cr_assert_eq(t->st, HLT_OK, "%s", t->message);
        free_job(t);
    }
    model_unref(m);
    tu_free_case(&c);
}
