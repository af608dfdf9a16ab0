/* Hand-built inference jobs for the model and repository suites: a job is built the way
 * rpc_infer.c builds one (decode a packed ModelInferRequest, map config inputs and outputs,
 * resolve the data) and completed through test callbacks instead of gRPC. A job can be held
 * inside its complete callback (gate) so that a test knows exactly what its model's queue holds;
 * every wait is on a condition with a bounded timeout. */
#ifndef HLT_TEST_SERVER_JOBS_H
#define HLT_TEST_SERVER_JOBS_H

#include "model.h"
#include "test_util.h"

#include "clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ERRLEN
#define ERRLEN 1024
#endif
#define WAIT_S 60 /* bound on any wait: a hang fails the test instead of stalling CI */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

typedef struct tjob {
    infer_job_t job; /* first: the callbacks get &tjob->job */
    uint8_t *req;
    size_t req_len;
    bool gate; /* complete() waits until released */
    bool released;
    bool fail_alloc;  /* alloc_response returns NULL */
    bool in_complete; /* complete() has been entered */
    bool done;        /* complete() has returned control of the job */
    int alloc_calls;
    hlt_status st;
    char message[ERRLEN];
    uint8_t *resp;
    size_t resp_size;
} tjob_t;

static TU_UNUSED uint8_t *t_alloc_response(infer_job_t *job, size_t size)
{
    tjob_t *t = (tjob_t *)job;
    pthread_mutex_lock(&g_mu);
    t->alloc_calls++;
    pthread_mutex_unlock(&g_mu);
    if (t->fail_alloc)
        return NULL;
    t->resp = malloc(size ? size : 1);
    t->resp_size = size;
    return t->resp;
}

static TU_UNUSED void t_complete(infer_job_t *job, hlt_status st, const char *message)
{
    tjob_t *t = (tjob_t *)job;
    pthread_mutex_lock(&g_mu);
    t->st = st;
    snprintf(t->message, sizeof t->message, "%s", message ? message : "");
    t->in_complete = true;
    pthread_cond_broadcast(&g_cv);
    while (t->gate && !t->released)
        pthread_cond_wait(&g_cv, &g_mu);
    t->done = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* Waits (bounded) until *flag is true. */
static TU_UNUSED void wait_flag(const bool *flag, const char *what)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&g_mu);
    int rc = 0;
    while (!*flag && rc == 0)
        rc = pthread_cond_timedwait(&g_cv, &g_mu, &until);
    bool ok = *flag;
    pthread_mutex_unlock(&g_mu);
    cr_assert(ok, "timed out waiting for %s", what);
}

static TU_UNUSED bool flag_now(const bool *flag)
{
    pthread_mutex_lock(&g_mu);
    bool v = *flag;
    pthread_mutex_unlock(&g_mu);
    return v;
}

static TU_UNUSED void release(tjob_t *t)
{
    pthread_mutex_lock(&g_mu);
    t->released = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* Builds a job for model m from the reference inputs of c (or the given inputs), as
 * rpc_infer.c does: decode, map inputs by name, resolve data, map requested outputs. */
static TU_UNUSED tjob_t *make_job_from(model_t *m, const tu_input_t *in, size_t n_in,
                                       const char *const *outs, size_t n_outs, const char *id)
{
    tjob_t *t = calloc(1, sizeof *t);
    cr_assert_not_null(t);
    const model_config_t *cfg = model_config(m);
    t->req = tu_pack_raw_request(model_name(m), model_version_str(m), id, in, n_in, outs, n_outs,
                                 &t->req_len);
    infer_job_t *job = &t->job;
    char err[ERRLEN] = "";
    cr_assert_eq(infer_request_decode(t->req, t->req_len, &job->msg, err, sizeof err), HLT_OK, "%s",
                 err);
    cr_assert_leq(job->msg.n_inputs, HLT_MAX_IO);
    hlt_dtype dtypes[HLT_MAX_IO];
    for (size_t i = 0; i < job->msg.n_inputs; i++) {
        const infer_input_t *mi = &job->msg.inputs[i];
        int c = model_config_find_input(cfg, mi->name.p, mi->name.len);
        cr_assert_geq(c, 0, "input '%.*s' is not in the config", (int)mi->name.len, mi->name.p);
        job->in_map[c] = (int16_t)i;
        dtypes[i] = cfg->inputs[c].dtype;
        job->batch = cfg->max_batch_size > 0 ? mi->shape[0] : 1;
    }
    cr_assert_eq(infer_request_resolve_data(&job->msg, dtypes, model_name(m), err, sizeof err),
                 HLT_OK, "%s", err);
    if (job->msg.n_outputs == 0) {
        job->n_out = (uint16_t)cfg->n_outputs;
        for (size_t c = 0; c < cfg->n_outputs; c++)
            job->out_idx[c] = (int16_t)c;
    } else {
        for (size_t i = 0; i < job->msg.n_outputs; i++) {
            const infer_output_req_t *o = &job->msg.outputs[i];
            int c = model_config_find_output(cfg, o->name.p, o->name.len);
            cr_assert_geq(c, 0);
            job->out_idx[i] = (int16_t)c;
        }
        job->n_out = (uint16_t)job->msg.n_outputs;
    }
    model_ref(m);
    job->model = m;
    job->t_recv_ns = hlt_now_ns();
    job->deadline_ns = INT64_MAX;
    job->alloc_response = t_alloc_response;
    job->complete = t_complete;
    return t;
}

static TU_UNUSED tjob_t *make_job(model_t *m, const tu_case_t *c, const char *const *outs,
                                  size_t n_outs, const char *id)
{
    tu_input_t in[4];
    for (size_t i = 0; i < c->n_in; i++) {
        in[i] = (tu_input_t){c->in[i].name, c->in[i].datatype, c->in[i].rank,
                             {0},           c->in[i].data,     c->in[i].count * sizeof(float)};
        memcpy(in[i].shape, c->in[i].shape, sizeof(int64_t) * (size_t)c->in[i].rank);
    }
    return make_job_from(m, in, c->n_in, outs, n_outs, id);
}

static TU_UNUSED void free_job(tjob_t *t)
{
    if (!t)
        return;
    infer_request_msg_free(&t->job.msg);
    model_unref(t->job.model);
    free(t->req);
    free(t->resp);
    free(t);
}

static TU_UNUSED void submit_ok(model_t *m, tjob_t *t)
{
    char err[ERRLEN] = "";
    hlt_status st = model_submit(m, &t->job, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "submit: %s", err);
}

/* Submits, waits for completion, expects OK; returns the unpacked response. */
static TU_UNUSED Inference__ModelInferResponse *run_ok(model_t *m, tjob_t *t)
{
    submit_ok(m, t);
    wait_flag(&t->done, "the job to complete");
    cr_assert_eq(t->st, HLT_OK, "job failed (%d): %s", t->st, t->message);
    cr_assert_eq(t->alloc_calls, 1);
    Inference__ModelInferResponse *r =
        inference__model_infer_response__unpack(NULL, t->resp_size, t->resp);
    cr_assert_not_null(r, "the response does not parse as ModelInferResponse");
    return r;
}

/* Asserts that output i of r is the reference tensor called name. */
static TU_UNUSED void check_output(const Inference__ModelInferResponse *r, size_t i,
                                   const tu_case_t *c, const char *name)
{
    const tu_tensor_t *ref = tu_case_output(c, name);
    cr_assert_lt(i, r->n_outputs);
    cr_assert_str_eq(r->outputs[i]->name, name);
    cr_assert_str_eq(r->outputs[i]->datatype, "FP32");
    cr_assert_eq(r->outputs[i]->n_shape, (size_t)ref->rank, "%s: rank", name);
    for (int32_t d = 0; d < ref->rank; d++)
        cr_assert_eq(r->outputs[i]->shape[d], ref->shape[d], "%s: shape[%d]", name, d);
    cr_assert_eq(r->n_raw_output_contents, r->n_outputs);
    cr_assert_eq(r->raw_output_contents[i].len, ref->count * sizeof(float), "%s: bytes", name);
    tu_assert_close(name, r->raw_output_contents[i].data, ref->data, ref->count);
}

#endif
