/* libhltinfer against a real hltinfer-server (started per test on 127.0.0.1): results checked
 * against the reference vectors, asynchronous calls, many threads on one client, deadlines,
 * fail-over, the retry policy, and the server's error codes reaching the caller. */
#include "fixture.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static fx_server_t srv;

static void start_server(void)
{
    cr_assert(fx_server_start(&srv, NULL), "hltinfer-server did not start (built in %s?)",
              fx_build_root());
}

static void stop_server(void)
{
    int st = fx_server_stop(&srv);
    cr_expect_eq(st, 0, "hltinfer-server exited with status %d", st);
}

TestSuite(client, .init = start_server, .fini = stop_server, .timeout = 240);

static hlt_client_t *connect_to(const char *addresses, const hlt_client_options_t *opts)
{
    char err[1024];
    hlt_client_t *c = NULL;
    hlt_status st = hlt_client_create(addresses, opts, &c, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "hlt_client_create(%s): %s", addresses, err);
    return c;
}

static const struct {
    const char *model, *name;
} cases[] = {
    {"facile", "n1"},         {"facile", "n7"},         {"facile", "n16000"},
    {"jet_tagger", "batch1"}, {"jet_tagger", "batch3"}, {"jet_tagger", "batch64"},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static void load_all(fx_case_t *cs)
{
    for (size_t i = 0; i < N_CASES; i++)
        cr_assert(fx_case_load(cases[i].model, cases[i].name, &cs[i]), "reference %s/%s",
                  cases[i].model, cases[i].name);
}

static void free_all(fx_case_t *cs)
{
    for (size_t i = 0; i < N_CASES; i++)
        fx_case_free(&cs[i]);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- health, metadata, config, repository, statistics ---- */

Test(client, health_and_metadata)
{
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    bool live = false, ready = false;
    cr_assert_eq(hlt_client_server_live(c, &live, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(hlt_client_server_ready(c, &ready, err, sizeof err), HLT_OK, "%s", err);
    cr_expect(live && ready);
    cr_assert_eq(hlt_client_model_ready(c, "jet_tagger", NULL, &ready, err, sizeof err), HLT_OK);
    cr_expect(ready);
    /* hltinfer (like Triton's HTTP side) answers "not ready" for a model it does not know. */
    cr_expect_eq(hlt_client_model_ready(c, "nosuch", "", &ready, err, sizeof err), HLT_OK, "%s",
                 err);
    cr_expect(!ready);

    hlt_server_metadata_t *sm;
    cr_assert_eq(hlt_client_server_metadata(c, &sm, err, sizeof err), HLT_OK, "%s", err);
    cr_expect_str_eq(sm->name, "hltinfer");
    bool has_stats = false;
    for (size_t i = 0; i < sm->n_extensions; i++)
        has_stats |= !strcmp(sm->extensions[i], "statistics");
    cr_expect(has_stats);
    hlt_server_metadata_free(sm);

    hlt_model_metadata_t *md;
    cr_assert_eq(hlt_client_model_metadata(c, "jet_tagger", NULL, &md, err, sizeof err), HLT_OK,
                 "%s", err);
    cr_expect_str_eq(md->name, "jet_tagger");
    cr_assert_eq(md->n_inputs, 1);
    cr_expect_str_eq(md->inputs[0].name, "jet_features");
    cr_expect_eq(md->inputs[0].datatype, HLT_TYPE_FP32);
    cr_assert_eq(md->inputs[0].rank, 2);
    cr_expect_eq(md->inputs[0].shape[0], -1);
    cr_expect_eq(md->inputs[0].shape[1], 64);
    cr_assert_eq(md->n_outputs, 2);
    cr_expect_str_eq(md->outputs[0].name, "probabilities");
    cr_expect_str_eq(md->outputs[1].name, "logits");
    cr_expect_eq(md->outputs[1].shape[1], 5);
    cr_expect(md->n_versions == 1 && !strcmp(md->versions[0], "1"));
    hlt_model_metadata_free(md);
    cr_expect_eq(hlt_client_model_metadata(c, "nosuch", NULL, &md, err, sizeof err), HLT_NOT_FOUND);
    cr_expect_null(md);

    hlt_model_config_t *cfg;
    cr_assert_eq(hlt_client_model_config(c, "facile", NULL, &cfg, err, sizeof err), HLT_OK, "%s",
                 err);
    cr_expect_str_eq(cfg->name, "facile");
    cr_expect_eq(cfg->max_batch_size, 16000);
    cr_assert_eq(cfg->n_inputs, 1); /* completed from the ONNX graph */
    cr_expect_str_eq(cfg->inputs[0].name, "input");
    cr_expect_eq(cfg->inputs[0].datatype, HLT_TYPE_FP32);
    cr_expect(cfg->inputs[0].n_dims == 1 && cfg->inputs[0].dims[0] == 15);
    cr_expect(cfg->n_outputs == 1 && cfg->outputs[0].dims[0] == 1);
    cr_expect(cfg->dynamic_batching);
    cr_expect_eq(cfg->max_queue_delay_us, 100);
    cr_expect(cfg->n_instance_groups == 1 && !strcmp(cfg->instance_groups[0].kind, "KIND_CPU"));
    cr_expect_gt(cfg->serialized_size, 0);
    hlt_model_config_free(cfg);
    cr_assert_eq(hlt_client_model_config(c, "jet_tagger", NULL, &cfg, err, sizeof err), HLT_OK);
    cr_expect(cfg->n_preferred_batch_sizes == 2 && cfg->preferred_batch_sizes[0] == 64 &&
              cfg->preferred_batch_sizes[1] == 256);
    hlt_model_config_free(cfg);

    hlt_repository_index_t *idx;
    cr_assert_eq(hlt_client_repository_index(c, false, &idx, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(idx->n_models, 2);
    for (size_t i = 0; i < idx->n_models; i++) {
        cr_expect(!strcmp(idx->models[i].name, "facile") ||
                  !strcmp(idx->models[i].name, "jet_tagger"));
        cr_expect_str_eq(idx->models[i].state, "READY");
    }
    hlt_repository_index_free(idx);
    hlt_client_destroy(c);
}

Test(client, statistics_count_inferences)
{
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch3", &fc));
    hlt_infer_request_t req = fx_case_request("jet_tagger", &fc);
    for (int i = 0; i < 2; i++) {
        hlt_infer_result_t *r;
        cr_assert_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_OK, "%s", err);
        hlt_infer_result_free(r);
    }
    hlt_model_statistics_t *s;
    cr_assert_eq(hlt_client_model_statistics(c, "jet_tagger", NULL, &s, err, sizeof err), HLT_OK,
                 "%s", err);
    cr_assert_eq(s->n_models, 1);
    cr_expect_str_eq(s->models[0].name, "jet_tagger");
    cr_expect_str_eq(s->models[0].version, "1");
    cr_expect_eq(s->models[0].success.count, 2);
    cr_expect_eq(s->models[0].inference_count, 6);
    cr_expect_geq(s->models[0].n_batch_stats, 1);
    hlt_model_statistics_free(s);
    cr_assert_eq(hlt_client_model_statistics(c, NULL, NULL, &s, err, sizeof err), HLT_OK);
    cr_expect_eq(s->n_models, 2);
    hlt_model_statistics_free(s);
    cr_expect_eq(hlt_client_model_statistics(c, "nosuch", NULL, &s, err, sizeof err),
                 HLT_NOT_FOUND);
    fx_case_free(&fc);
    hlt_client_destroy(c);
}

/* ---- synchronous inference ---- */

Test(client, infer_sync_matches_reference)
{
    fx_case_t cs[N_CASES];
    load_all(cs);
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024], why[512];
    for (size_t i = 0; i < N_CASES; i++) {
        hlt_infer_request_t req = fx_case_request(cases[i].model, &cs[i]);
        req.id = cases[i].name;
        hlt_infer_result_t *r;
        hlt_status st = hlt_client_infer(c, &req, &r, err, sizeof err);
        cr_assert_eq(st, HLT_OK, "%s/%s: %s: %s", cases[i].model, cases[i].name,
                     hlt_status_name(st), err);
        cr_expect(fx_case_check(&cs[i], r, false, why, sizeof why), "%s/%s: %s", cases[i].model,
                  cases[i].name, why);
        cr_expect_str_eq(hlt_infer_result_model_name(r), cases[i].model);
        cr_expect_str_eq(hlt_infer_result_model_version(r), "1");
        cr_expect_str_eq(hlt_infer_result_id(r), cases[i].name);
        cr_expect_null(hlt_infer_result_output(r, hlt_infer_result_output_count(r)));
        hlt_infer_result_free(r);
    }
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.calls, N_CASES);
    cr_expect_eq(s.attempts, N_CASES);
    cr_expect_eq(s.failures, 0);
    hlt_client_destroy(c);
    free_all(cs);
}

Test(client, infer_requested_output_subset_and_copy)
{
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch64", &fc));
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024], why[512];
    const char *want[] = {"logits"};
    hlt_infer_request_t req = fx_case_request("jet_tagger", &fc);
    req.outputs = want;
    req.n_outputs = 1;
    req.version = "1";
    req.priority = 1;
    hlt_infer_result_t *r;
    cr_assert_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(hlt_infer_result_output_count(r), 1);
    cr_expect_str_eq(hlt_infer_result_output(r, 0)->name, "logits");
    cr_expect_null(hlt_infer_result_output_by_name(r, "probabilities"));
    cr_expect(fx_case_check(&fc, r, true, why, sizeof why), "%s", why);
    /* The view is zero-copy; the copy helper gives an aligned array. */
    float *logits = malloc(64 * 5 * sizeof(float));
    cr_assert_eq(
        hlt_infer_result_copy_output(r, "logits", logits, 64 * 5 * sizeof(float), err, sizeof err),
        HLT_OK);
    cr_expect(fx_close_f32(logits, fc.out[1].data, 64 * 5, why, sizeof why), "%s", why);
    cr_expect_eq(hlt_infer_result_copy_output(r, "logits", logits, 16, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_expect_eq(hlt_infer_result_copy_output(r, "nosuch", logits, 16, err, sizeof err),
                 HLT_NOT_FOUND);
    free(logits);
    hlt_infer_result_free(r);
    hlt_client_destroy(c);
    fx_case_free(&fc);
}

Test(client, result_outlives_client)
{
    fx_case_t fc;
    cr_assert(fx_case_load("facile", "n16000", &fc));
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024], why[512];
    hlt_infer_request_t req = fx_case_request("facile", &fc);
    hlt_infer_result_t *r;
    cr_assert_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_OK, "%s", err);
    hlt_client_destroy(c);
    cr_expect(fx_case_check(&fc, r, false, why, sizeof why), "%s", why);
    hlt_infer_result_free(r);
    fx_case_free(&fc);
}

/* ---- asynchronous inference ---- */

typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t done;
} collector_t;

typedef struct slot {
    collector_t *col;
    hlt_status st;
    hlt_infer_result_t *res;
    char msg[1024];
} slot_t;

static void on_done(hlt_status st, hlt_infer_result_t *res, const char *msg, void *user)
{
    slot_t *s = user;
    s->st = st;
    s->res = res;
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    pthread_mutex_lock(&s->col->mu);
    s->col->done++;
    pthread_cond_broadcast(&s->col->cond);
    pthread_mutex_unlock(&s->col->mu);
}

static void collector_init(collector_t *col)
{
    pthread_mutex_init(&col->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&col->cond, &ca);
    pthread_condattr_destroy(&ca);
    col->done = 0;
}

static bool collector_wait(collector_t *col, size_t n, int seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&col->mu);
    while (col->done < n)
        if (pthread_cond_timedwait(&col->cond, &col->mu, &until) != 0)
            break;
    bool ok = col->done >= n;
    pthread_mutex_unlock(&col->mu);
    return ok;
}

#define ASYNC_ROUNDS 8

Test(client, infer_async_callbacks_and_handles)
{
    fx_case_t cs[N_CASES];
    load_all(cs);
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024], why[512];
    enum { N = N_CASES * ASYNC_ROUNDS };
    static slot_t slots[N];
    static hlt_infer_handle_t *handles[N];
    collector_t col;
    collector_init(&col);
    size_t n_cb = 0;
    /* Everything in flight at once: even-numbered calls report by callback, odd by handle. */
    for (size_t k = 0; k < N; k++) {
        size_t i = k % N_CASES;
        hlt_infer_request_t req = fx_case_request(cases[i].model, &cs[i]);
        slots[k].col = &col;
        hlt_status st;
        if (k % 2 == 0) {
            st = hlt_client_infer_async(c, &req, on_done, &slots[k], NULL, err, sizeof err);
            n_cb++;
        } else {
            st = hlt_client_infer_async(c, &req, NULL, NULL, &handles[k], err, sizeof err);
        }
        cr_assert_eq(st, HLT_OK, "submit %zu: %s", k, err);
    }
    for (size_t k = 1; k < N; k += 2) {
        cr_assert(hlt_infer_wait(handles[k], 60000), "call %zu did not complete", k);
        cr_expect(hlt_infer_poll(handles[k]));
        hlt_infer_result_t *r;
        hlt_status st = hlt_infer_handle_result(handles[k], &r, err, sizeof err);
        cr_assert_eq(st, HLT_OK, "call %zu: %s", k, err);
        cr_expect(fx_case_check(&cs[k % N_CASES], r, false, why, sizeof why), "call %zu: %s", k,
                  why);
        hlt_infer_result_t *again = (hlt_infer_result_t *)1;
        cr_expect_eq(hlt_infer_handle_result(handles[k], &again, err, sizeof err), HLT_OK);
        cr_expect_null(again, "the result moves out only once");
        hlt_infer_result_free(r);
        hlt_infer_handle_free(handles[k]);
    }
    cr_assert(collector_wait(&col, n_cb, 60), "callbacks: %zu of %zu", col.done, n_cb);
    for (size_t k = 0; k < N; k += 2) {
        cr_assert_eq(slots[k].st, HLT_OK, "call %zu: %s", k, slots[k].msg);
        cr_expect(fx_case_check(&cs[k % N_CASES], slots[k].res, false, why, sizeof why),
                  "call %zu: %s", k, why);
        hlt_infer_result_free(slots[k].res);
    }
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.calls, N);
    cr_expect_eq(s.attempts, N);
    hlt_client_destroy(c);
    free_all(cs);
}

Test(client, async_errors_reach_the_caller)
{
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    float x[2 * 63] = {0};
    int64_t shape[2] = {2, 63};
    hlt_input_t in = {"jet_features", HLT_TYPE_FP32, 2, shape, x, sizeof x};
    hlt_infer_request_t bad = {.model = "jet_tagger", .inputs = &in, .n_inputs = 1};
    hlt_infer_request_t missing = {.model = "nosuch", .inputs = &in, .n_inputs = 1};
    collector_t col;
    collector_init(&col);
    slot_t s1 = {.col = &col}, s2 = {.col = &col};
    cr_assert_eq(hlt_client_infer_async(c, &bad, on_done, &s1, NULL, err, sizeof err), HLT_OK);
    cr_assert_eq(hlt_client_infer_async(c, &missing, on_done, &s2, NULL, err, sizeof err), HLT_OK);
    hlt_infer_handle_t *h;
    cr_assert_eq(hlt_client_infer_async(c, &bad, NULL, NULL, &h, err, sizeof err), HLT_OK);
    cr_assert(collector_wait(&col, 2, 60));
    cr_expect_eq(s1.st, HLT_INVALID_ARGUMENT, "%s", s1.msg);
    cr_expect(strstr(s1.msg, "jet_features"), "%s", s1.msg);
    cr_expect_null(s1.res);
    cr_expect_eq(s2.st, HLT_NOT_FOUND, "%s", s2.msg);
    cr_expect(strstr(s2.msg, "nosuch"), "%s", s2.msg);
    cr_assert(hlt_infer_wait(h, -1));
    hlt_infer_result_t *r = (hlt_infer_result_t *)1;
    cr_expect_eq(hlt_infer_handle_result(h, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect_null(r);
    cr_expect(strstr(err, "shape"), "%s", err);
    hlt_infer_handle_free(h);
    hlt_client_stats_t st;
    hlt_client_get_stats(c, &st);
    cr_expect_eq(st.attempts, 3, "errors other than UNAVAILABLE are never retried");
    cr_expect_eq(st.failures, 3);
    hlt_client_destroy(c);
}

/* A callback may submit the next asynchronous call (a chain, as an event loop would). */
typedef struct chain {
    hlt_client_t *c;
    hlt_infer_request_t req;
    fx_case_t *fc;
    collector_t col;
    int left, ok;
    char why[1024];
} chain_t;

static void chain_next(hlt_status st, hlt_infer_result_t *res, const char *msg, void *user)
{
    chain_t *ch = user;
    char err[1024];
    bool good = st == HLT_OK && fx_case_check(ch->fc, res, false, ch->why, sizeof ch->why);
    if (st != HLT_OK)
        snprintf(ch->why, sizeof ch->why, "%s: %s", hlt_status_name(st), msg);
    hlt_infer_result_free(res);
    ch->ok += good;
    if (good && --ch->left > 0 &&
        hlt_client_infer_async(ch->c, &ch->req, chain_next, ch, NULL, err, sizeof err) == HLT_OK)
        return;
    pthread_mutex_lock(&ch->col.mu);
    ch->col.done = 1;
    pthread_cond_broadcast(&ch->col.cond);
    pthread_mutex_unlock(&ch->col.mu);
}

Test(client, callback_submits_the_next_call)
{
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch3", &fc));
    static chain_t ch;
    ch.c = connect_to(srv.url, NULL);
    ch.req = fx_case_request("jet_tagger", &fc);
    ch.fc = &fc;
    ch.left = 5;
    collector_init(&ch.col);
    char err[1024];
    cr_assert_eq(hlt_client_infer_async(ch.c, &ch.req, chain_next, &ch, NULL, err, sizeof err),
                 HLT_OK, "%s", err);
    cr_assert(collector_wait(&ch.col, 1, 60));
    cr_expect_eq(ch.ok, 5, "%s", ch.why);
    hlt_client_destroy(ch.c);
    fx_case_free(&fc);
}

/* ---- many threads, one client ---- */

#define N_THREADS 32
#define CALLS_PER_THREAD 12

typedef struct worker {
    hlt_client_t *c;
    fx_case_t *cs;
    int index;
    int ok;
    char why[1400];
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char err[1024];
    for (int k = 0; k < CALLS_PER_THREAD; k++) {
        size_t i = (size_t)(w->index + k) % N_CASES;
        hlt_infer_request_t req = fx_case_request(cases[i].model, &w->cs[i]);
        hlt_infer_result_t *r = NULL;
        hlt_status st;
        if (k % 3 == 2) { /* some asynchronous calls in the mix */
            hlt_infer_handle_t *h = NULL;
            st = hlt_client_infer_async(w->c, &req, NULL, NULL, &h, err, sizeof err);
            if (st == HLT_OK) {
                hlt_infer_wait(h, -1);
                st = hlt_infer_handle_result(h, &r, err, sizeof err);
                hlt_infer_handle_free(h);
            }
        } else {
            st = hlt_client_infer(w->c, &req, &r, err, sizeof err);
        }
        if (st != HLT_OK) {
            snprintf(w->why, sizeof w->why, "call %d (%s/%s): %s: %s", k, cases[i].model,
                     cases[i].name, hlt_status_name(st), err);
            return NULL;
        }
        bool good = fx_case_check(&w->cs[i], r, false, w->why, sizeof w->why);
        hlt_infer_result_free(r);
        if (!good)
            return NULL;
        w->ok++;
    }
    return NULL;
}

Test(client, shared_by_32_threads)
{
    fx_case_t cs[N_CASES];
    load_all(cs);
    hlt_client_t *c = connect_to(srv.url, &(hlt_client_options_t){.timeout_ms = 60000});
    worker_t w[N_THREADS];
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker_t){.c = c, .cs = cs, .index = i};
        cr_assert_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N_THREADS; i++)
        cr_expect_eq(w[i].ok, CALLS_PER_THREAD, "thread %d: %s", i, w[i].why);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.calls, N_THREADS * CALLS_PER_THREAD);
    cr_expect_eq(s.failures, 0);
    hlt_client_destroy(c);
    free_all(cs);
}

/* ---- deadlines ---- */

Test(client, deadline_already_past_is_deadline_exceeded)
{
    fx_case_t fc;
    cr_assert(fx_case_load("facile", "n16000", &fc));
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    hlt_infer_request_t req = fx_case_request("facile", &fc);
    req.deadline_ns = mono_ns() - 1000000;
    hlt_infer_result_t *r = (hlt_infer_result_t *)1;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_DEADLINE_EXCEEDED);
    cr_expect_null(r);
    cr_expect(strstr(err, "deadline"), "%s", err);
    hlt_infer_handle_t *h = (hlt_infer_handle_t *)1;
    cr_expect_eq(hlt_client_infer_async(c, &req, NULL, NULL, &h, err, sizeof err),
                 HLT_DEADLINE_EXCEEDED);
    cr_expect_null(h);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 0, "nothing is sent past the deadline");
    cr_expect_eq(s.failures, 2);
    hlt_client_destroy(c);
    fx_case_free(&fc);
}

Test(client, deadline_expires_while_the_server_stalls)
{
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch3", &fc));
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    bool live;
    cr_assert_eq(hlt_client_server_live(c, &live, err, sizeof err), HLT_OK, "%s", err);
    kill(srv.pid, SIGSTOP); /* connected, but nothing will answer */
    hlt_infer_request_t req = fx_case_request("jet_tagger", &fc);
    req.timeout_ms = 200;
    hlt_infer_result_t *r;
    hlt_status st = hlt_client_infer(c, &req, &r, err, sizeof err);
    hlt_infer_handle_t *h = NULL;
    hlt_status ast = hlt_client_infer_async(c, &req, NULL, NULL, &h, err, sizeof err);
    bool done = ast == HLT_OK && hlt_infer_wait(h, 30000);
    hlt_status hst = done ? hlt_infer_handle_result(h, NULL, err, sizeof err) : HLT_OK;
    kill(srv.pid, SIGCONT);
    cr_expect_eq(st, HLT_DEADLINE_EXCEEDED, "%s", hlt_status_name(st));
    cr_expect_eq(ast, HLT_OK);
    cr_expect(done);
    cr_expect_eq(hst, HLT_DEADLINE_EXCEEDED, "%s", hlt_status_name(hst));
    hlt_infer_handle_free(h);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 3, "one ServerLive + one attempt per infer, no retry");
    hlt_client_destroy(c);
    fx_case_free(&fc);
}

Test(client, poll_wait_and_abandon_in_flight_calls)
{
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch1", &fc));
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    bool live;
    cr_assert_eq(hlt_client_server_live(c, &live, err, sizeof err), HLT_OK);
    kill(srv.pid, SIGSTOP);
    hlt_infer_request_t req = fx_case_request("jet_tagger", &fc);
    hlt_infer_handle_t *h1, *h2;
    cr_assert_eq(hlt_client_infer_async(c, &req, NULL, NULL, &h1, err, sizeof err), HLT_OK);
    cr_assert_eq(hlt_client_infer_async(c, &req, NULL, NULL, &h2, err, sizeof err), HLT_OK);
    bool polled = hlt_infer_poll(h1), waited = hlt_infer_wait(h1, 0),
         waited50 = hlt_infer_wait(h1, 50);
    hlt_status early = hlt_infer_handle_result(h1, NULL, err, sizeof err);
    hlt_infer_handle_free(h2); /* abandoned while in flight */
    kill(srv.pid, SIGCONT);
    cr_expect(!polled && !waited && !waited50);
    cr_expect_eq(early, HLT_FAILED_PRECONDITION);
    cr_assert(hlt_infer_wait(h1, 60000));
    cr_expect_eq(hlt_infer_handle_result(h1, NULL, err, sizeof err), HLT_OK, "%s", err);
    hlt_infer_handle_free(h1); /* frees the result left in it */
    hlt_client_destroy(c);
    fx_case_free(&fc);
}

Test(client, destroy_cancels_calls_in_flight)
{
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch1", &fc));
    hlt_client_t *c = connect_to(srv.url, &(hlt_client_options_t){.timeout_ms = -1});
    char err[1024];
    bool live;
    cr_assert_eq(hlt_client_server_live(c, &live, err, sizeof err), HLT_OK);
    kill(srv.pid, SIGSTOP);
    hlt_infer_request_t req = fx_case_request("jet_tagger", &fc);
    collector_t col;
    collector_init(&col);
    slot_t slots[4];
    hlt_infer_handle_t *h[4];
    for (int i = 0; i < 4; i++) {
        slots[i] = (slot_t){.col = &col};
        cr_assert_eq(hlt_client_infer_async(c, &req, on_done, &slots[i], NULL, err, sizeof err),
                     HLT_OK);
        cr_assert_eq(hlt_client_infer_async(c, &req, NULL, NULL, &h[i], err, sizeof err), HLT_OK);
    }
    hlt_client_destroy(c); /* no deadline: only the cancellation can end these calls */
    kill(srv.pid, SIGCONT);
    cr_expect_eq(col.done, 4, "every callback ran before destroy returned");
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(slots[i].st, HLT_CANCELLED, "%s", slots[i].msg);
        cr_expect(hlt_infer_poll(h[i]));
        cr_expect_eq(hlt_infer_handle_result(h[i], NULL, err, sizeof err), HLT_CANCELLED);
        cr_expect(strstr(err, "destroyed"), "%s", err);
        hlt_infer_handle_free(h[i]);
    }
    fx_case_free(&fc);
}

/* ---- retries and fail-over ---- */

Test(client, fails_over_to_the_second_address)
{
    int dead_port, dead = fx_dead_port_open(&dead_port);
    cr_assert_geq(dead, 0);
    char urls[128];
    snprintf(urls, sizeof urls, "127.0.0.1:%d,%s", dead_port, srv.url);
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch3", &fc));
    hlt_client_t *c = connect_to(urls, &(hlt_client_options_t){.timeout_ms = 30000});
    cr_expect_eq(hlt_client_address_count(c), 2);
    cr_expect_str_eq(hlt_client_address(c, 1), srv.url);
    char err[1024], why[512];
    hlt_infer_request_t req = fx_case_request("jet_tagger", &fc);
    hlt_infer_result_t *r;
    cr_assert_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_OK, "%s", err);
    cr_expect(fx_case_check(&fc, r, false, why, sizeof why), "%s", why);
    hlt_infer_result_free(r);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.failovers, 1);
    cr_expect_eq(s.retries, 2, "the default two retries on the first server");
    cr_expect_eq(s.attempts, 4);
    /* Later calls start at the server that answered. */
    cr_assert_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_OK, "%s", err);
    hlt_infer_result_free(r);
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 5);
    hlt_client_destroy(c);

    /* Asynchronous calls fail over too (re-issued from the completion thread). */
    c = connect_to(urls, &(hlt_client_options_t){.timeout_ms = 30000, .max_retries = 1});
    hlt_infer_handle_t *h;
    cr_assert_eq(hlt_client_infer_async(c, &req, NULL, NULL, &h, err, sizeof err), HLT_OK);
    cr_assert(hlt_infer_wait(h, 60000));
    cr_assert_eq(hlt_infer_handle_result(h, &r, err, sizeof err), HLT_OK, "%s", err);
    cr_expect(fx_case_check(&fc, r, false, why, sizeof why), "%s", why);
    hlt_infer_result_free(r);
    hlt_infer_handle_free(h);
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.failovers, 1);
    cr_expect_eq(s.retries, 1);
    cr_expect_eq(s.attempts, 3);
    /* Metadata calls take the same chain (from the server that answered). */
    bool ready;
    cr_expect_eq(hlt_client_server_ready(c, &ready, err, sizeof err), HLT_OK, "%s", err);
    hlt_client_destroy(c);
    fx_dead_port_close(dead);
    fx_case_free(&fc);
}

Test(client, invalid_argument_is_never_retried)
{
    char urls[160];
    snprintf(urls, sizeof urls, "%s,%s", srv.url, srv.url);
    hlt_client_t *c = connect_to(urls, NULL);
    char err[1024];
    float x[2 * 63] = {0};
    int64_t shape[2] = {2, 63};
    hlt_input_t in = {"jet_features", HLT_TYPE_FP32, 2, shape, x, sizeof x};
    hlt_infer_request_t req = {.model = "jet_tagger", .inputs = &in, .n_inputs = 1};
    hlt_infer_result_t *r;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect_null(r);
    cr_expect_str_eq(err, "model 'jet_tagger': input 'jet_features': shape[1] = 63, expected 64",
                     "the server's message, unchanged");
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 1);
    cr_expect_eq(s.retries, 0);
    cr_expect_eq(s.failovers, 0);
    /* A batch over the 4 MiB gRPC default: the server's own check answers, not a size limit. */
    size_t big_rows = 20000;
    float *big = calloc(big_rows * 64, sizeof *big);
    int64_t big_shape[2] = {(int64_t)big_rows, 64};
    hlt_input_t bin = {"jet_features", HLT_TYPE_FP32, 2, big_shape, big, big_rows * 64 * 4};
    req.inputs = &bin;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT, "%s", err);
    cr_expect(strstr(err, "max_batch_size"), "%s", err);
    free(big);
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 2);
    hlt_client_destroy(c);
}

Test(client, not_found_passes_through)
{
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    float x[64] = {0};
    int64_t shape[2] = {1, 64};
    hlt_input_t in = {"jet_features", HLT_TYPE_FP32, 2, shape, x, sizeof x};
    hlt_infer_request_t req = {.model = "nosuch", .inputs = &in, .n_inputs = 1};
    hlt_infer_result_t *r;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_NOT_FOUND);
    cr_expect(strstr(err, "'nosuch'"), "%s", err);
    req.model = "jet_tagger";
    req.version = "7";
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_NOT_FOUND, "%s", err);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 2);
    hlt_client_destroy(c);
}

Test(client, unavailable_is_retried_then_reported)
{
    fx_case_t fc;
    cr_assert(fx_case_load("jet_tagger", "batch1", &fc));
    hlt_client_t *c = connect_to(srv.url, &(hlt_client_options_t){.timeout_ms = 30000});
    char err[1024];
    cr_assert_eq(hlt_client_model_unload(c, "jet_tagger", err, sizeof err), HLT_OK, "%s", err);
    hlt_client_stats_t before, s;
    hlt_client_get_stats(c, &before);
    hlt_infer_request_t req = fx_case_request("jet_tagger", &fc);
    hlt_infer_result_t *r;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_UNAVAILABLE, "%s", err);
    cr_expect(strstr(err, "model 'jet_tagger' is not ready"), "the server's message: %s", err);
    cr_expect(strstr(err, "gave up after 3 attempts"), "%s", err);
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts - before.attempts, 3, "1 + max_retries (2) on the only server");
    cr_expect_eq(s.retries - before.retries, 2);
    /* The asynchronous path retries from the completion thread. */
    hlt_infer_handle_t *h;
    cr_assert_eq(hlt_client_infer_async(c, &req, NULL, NULL, &h, err, sizeof err), HLT_OK);
    cr_assert(hlt_infer_wait(h, 60000));
    cr_expect_eq(hlt_infer_handle_result(h, NULL, err, sizeof err), HLT_UNAVAILABLE);
    cr_expect(strstr(err, "is not ready"), "%s", err);
    hlt_infer_handle_free(h);
    hlt_client_get_stats(c, &before);
    cr_expect_eq(before.attempts - s.attempts, 3);
    bool ready = true;
    cr_expect_eq(hlt_client_model_ready(c, "jet_tagger", NULL, &ready, err, sizeof err), HLT_OK);
    cr_expect(!ready);
    cr_assert_eq(hlt_client_model_load(c, "jet_tagger", err, sizeof err), HLT_OK, "%s", err);
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_OK, "%s", err);
    hlt_infer_result_free(r);
    cr_expect_eq(hlt_client_model_load(c, "nosuch", err, sizeof err), HLT_NOT_FOUND, "%s", err);
    hlt_client_destroy(c);
    fx_case_free(&fc);
}

Test(client, refused_model_control_is_unavailable)
{
    fx_server_t locked;
    const char *args[] = {"--model-control-mode=none", NULL};
    cr_assert(fx_server_start(&locked, args));
    hlt_client_t *c = connect_to(locked.url, &(hlt_client_options_t){.max_retries = -1});
    char err[1024];
    cr_expect_eq(hlt_client_model_unload(c, "facile", err, sizeof err), HLT_UNAVAILABLE);
    cr_expect(strstr(err, "--model-control-mode=none"), "the server's message: %s", err);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 1, "max_retries -1: no retry");
    hlt_client_destroy(c);
    cr_expect_eq(fx_server_stop(&locked), 0);
}

/* ---- without a server ---- */

TestSuite(client_offline, .timeout = 120);

Test(client_offline, every_server_down_is_unavailable)
{
    int p1, p2, d1 = fx_dead_port_open(&p1), d2 = fx_dead_port_open(&p2);
    cr_assert(d1 >= 0 && d2 >= 0);
    char urls[128], err[1024];
    snprintf(urls, sizeof urls, "127.0.0.1:%d, 127.0.0.1:%d", p1, p2);
    hlt_client_t *c = connect_to(urls, &(hlt_client_options_t){.timeout_ms = 30000});
    char second[64];
    snprintf(second, sizeof second, "127.0.0.1:%d", p2);
    cr_expect_str_eq(hlt_client_address(c, 1), second, "spaces around commas are trimmed");
    bool live = true;
    cr_expect_eq(hlt_client_server_live(c, &live, err, sizeof err), HLT_UNAVAILABLE);
    cr_expect(!live);
    cr_expect(strstr(err, "gave up after 6 attempts on 2 of 2 servers"), "%s", err);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 6);
    cr_expect_eq(s.retries, 4);
    cr_expect_eq(s.failovers, 1);
    cr_expect_eq(s.failures, 1);
    hlt_client_destroy(c);
    /* No retries when asked for none. */
    c = connect_to(urls, &(hlt_client_options_t){.max_retries = -1});
    cr_expect_eq(hlt_client_server_live(c, &live, err, sizeof err), HLT_UNAVAILABLE);
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 2);
    hlt_client_destroy(c);
    fx_dead_port_close(d1);
    fx_dead_port_close(d2);
}

Test(client_offline, create_rejects_bad_addresses)
{
    char err[1024];
    hlt_client_t *c = (hlt_client_t *)1;
    cr_expect_eq(hlt_client_create("", NULL, &c, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect_null(c);
    cr_expect_eq(hlt_client_create("a:1,,b:2", NULL, &c, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "empty"), "%s", err);
    cr_expect_eq(hlt_client_create(NULL, NULL, &c, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect_eq(hlt_client_create_list(NULL, 0, NULL, &c, NULL, 0), HLT_INVALID_ARGUMENT);
    hlt_client_destroy(NULL);
    hlt_infer_result_free(NULL);
    hlt_infer_handle_free(NULL);
    hlt_server_metadata_free(NULL);
    hlt_model_metadata_free(NULL);
    hlt_model_config_free(NULL);
    hlt_repository_index_free(NULL);
    hlt_model_statistics_free(NULL);
}

Test(client_offline, client_side_checks_send_nothing)
{
    int port, dead = fx_dead_port_open(&port);
    char url[64], err[1024];
    snprintf(url, sizeof url, "127.0.0.1:%d", port);
    hlt_client_t *c = connect_to(url, &(hlt_client_options_t){.max_message_size = 4096});
    float x[2 * 64] = {0};
    int64_t shape[2] = {2, 64}, neg[2] = {-1, 64};
    hlt_input_t in = {"jet_features", HLT_TYPE_FP32, 2, shape, x, sizeof x - 4};
    hlt_infer_request_t req = {.model = "jet_tagger", .inputs = &in, .n_inputs = 1};
    hlt_infer_result_t *r;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "508 bytes") && strstr(err, "512"), "%s", err);
    in.size = sizeof x;
    in.shape = neg;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "negative"), "%s", err);
    in.shape = shape;
    in.datatype = (hlt_dtype)99;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    in.datatype = HLT_TYPE_FP32;
    in.name = "";
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    in.name = "jet_features";
    const char *outs[] = {NULL};
    req.outputs = outs;
    req.n_outputs = 1;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    req.n_outputs = 0;
    req.model = NULL;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_INVALID_ARGUMENT);
    req.model = "jet_tagger";
    float big[4096];
    int64_t bshape[2] = {64, 64};
    hlt_input_t bin = {"jet_features", HLT_TYPE_FP32, 2, bshape, big, sizeof big};
    req.inputs = &bin;
    cr_expect_eq(hlt_client_infer(c, &req, &r, err, sizeof err), HLT_RESOURCE_EXHAUSTED);
    cr_expect(strstr(err, "max_message_size"), "%s", err);
    hlt_infer_handle_t *h;
    cr_expect_eq(hlt_client_infer_async(c, &req, on_done, NULL, &h, err, sizeof err),
                 HLT_INVALID_ARGUMENT, "a callback and a handle");
    cr_expect_eq(hlt_client_infer_async(c, &req, NULL, NULL, NULL, err, sizeof err),
                 HLT_INVALID_ARGUMENT, "neither a callback nor a handle");
    cr_expect_eq(hlt_client_infer_async(c, &req, NULL, NULL, &h, err, sizeof err),
                 HLT_RESOURCE_EXHAUSTED);
    cr_expect_null(h);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 0);
    hlt_client_destroy(c);
    fx_dead_port_close(dead);
}
