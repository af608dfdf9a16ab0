/* ModelInfer on the completion-queue thread: decode in place, resolve the model, validate
 * every tensor against the config (the message names model, tensor and what is wrong), check
 * the deadline, and hand the job to the model's bounded queue. Never computes. The job's
 * callbacks give the worker a gRPC slice to write the response into and send it. */
#include "clock.h"
#include "log.h"
#include "model.h"
#include "rpc.h"

#include <grpc/support/time.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *alloc_response(infer_job_t *job, size_t size)
{
    call_ctx_t *c = (call_ctx_t *)((char *)job - offsetof(call_ctx_t, job));
    c->resp = grpc_slice_malloc(size);
    c->has_resp = true;
    return GRPC_SLICE_START_PTR(c->resp);
}

static void complete(infer_job_t *job, hlt_status st, const char *message)
{
    call_ctx_t *c = (call_ctx_t *)((char *)job - offsetof(call_ctx_t, job));
    rpc_reply(c, st, message, st == HLT_OK ? &c->resp : NULL);
}

void rpc_infer_release(call_ctx_t *c)
{
    infer_request_msg_free(&c->job.msg);
    model_unref(c->job.model);
    c->job.model = NULL;
    c->has_job = false;
}

static int64_t deadline_ns(gpr_timespec deadline)
{
    if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0)
        return INT64_MAX;
    gpr_timespec left = gpr_time_sub(gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC),
                                     gpr_now(GPR_CLOCK_MONOTONIC));
    return hlt_now_ns() + (int64_t)left.tv_sec * 1000000000 + left.tv_nsec;
}

/* Validates the decoded request against the model and fills the job's maps. */
static hlt_status validate(infer_job_t *job, const model_t *m, char *err, size_t errlen)
{
    const model_config_t *cfg = model_config(m);
    const char *mn = model_name(m);
    infer_request_msg_t *msg = &job->msg;
    bool batching = cfg->max_batch_size > 0;
    hlt_dtype dtypes[HLT_MAX_IO];
    for (size_t c = 0; c < cfg->n_inputs; c++)
        job->in_map[c] = -1;
    if (msg->n_inputs > HLT_MAX_IO)
        goto too_many;
    for (size_t i = 0; i < msg->n_inputs; i++) {
        const infer_input_t *in = &msg->inputs[i];
        int c = model_config_find_input(cfg, in->name.p, in->name.len);
        if (c < 0) {
            char names[256] = "";
            for (size_t k = 0, off = 0; k < cfg->n_inputs && off < sizeof names; k++)
                off += (size_t)snprintf(names + off, sizeof names - off, "%s'%s'", k ? ", " : "",
                                        cfg->inputs[k].name);
            snprintf(err, errlen, "model '%s': unexpected input '%.*s' (the model's inputs: %s)",
                     mn, (int)in->name.len, in->name.p, names);
            return HLT_INVALID_ARGUMENT;
        }
        if (job->in_map[c] >= 0) {
            snprintf(err, errlen, "model '%s': input '%s' is given twice", mn, cfg->inputs[c].name);
            return HLT_INVALID_ARGUMENT;
        }
        job->in_map[c] = (int16_t)i;
        const model_tensor_cfg_t *t = &cfg->inputs[c];
        hlt_dtype got = hlt_dtype_from_name(in->datatype.p, in->datatype.len);
        if (got != t->dtype) {
            snprintf(err, errlen,
                     "model '%s': input '%s': datatype %.*s does not match the "
                     "model's %s",
                     mn, t->name, (int)in->datatype.len, in->datatype.p, hlt_dtype_name(t->dtype));
            return HLT_INVALID_ARGUMENT;
        }
        dtypes[i] = got;
        int32_t want_rank = t->rank + (batching ? 1 : 0);
        if (in->rank != want_rank) {
            snprintf(err, errlen, "model '%s': input '%s': shape has %d dims, expected %d%s", mn,
                     t->name, in->rank, want_rank, batching ? " (batch + dims)" : "");
            return HLT_INVALID_ARGUMENT;
        }
        int skip = batching ? 1 : 0;
        for (int32_t d = 0; d < t->rank; d++) {
            int64_t v = in->shape[d + skip];
            if (v < 0 || (t->dims[d] != -1 && v != t->dims[d])) {
                snprintf(err, errlen,
                         "model '%s': input '%s': shape[%d] = %" PRId64 ", expected %" PRId64, mn,
                         t->name, d + skip, v, t->dims[d]);
                return HLT_INVALID_ARGUMENT;
            }
        }
        if (batching) {
            int64_t b = in->shape[0];
            if (b < 1 || b > cfg->max_batch_size) {
                snprintf(err, errlen,
                         "model '%s': input '%s': batch size %" PRId64
                         " is outside 1..max_batch_size (%d)",
                         mn, t->name, b, cfg->max_batch_size);
                return HLT_INVALID_ARGUMENT;
            }
            if (i > 0 && b != job->batch) {
                snprintf(err, errlen,
                         "model '%s': input '%s': batch size %" PRId64
                         " differs from the other inputs' %" PRId64,
                         mn, t->name, b, job->batch);
                return HLT_INVALID_ARGUMENT;
            }
            job->batch = b;
        } else {
            job->batch = 1;
        }
    }
    for (size_t c = 0; c < cfg->n_inputs; c++)
        if (job->in_map[c] < 0) {
            snprintf(err, errlen, "model '%s': missing input '%s' (%zu of %zu inputs given)", mn,
                     cfg->inputs[c].name, msg->n_inputs, cfg->n_inputs);
            return HLT_INVALID_ARGUMENT;
        }
    hlt_status st = infer_request_resolve_data(msg, dtypes, mn, err, errlen);
    if (st)
        return st;
    for (size_t i = 0; i < msg->n_inputs; i++) {
        const infer_input_t *in = &msg->inputs[i];
        size_t want = hlt_dtype_size(dtypes[i]);
        for (int32_t d = 0; d < in->rank; d++)
            want *= (size_t)in->shape[d];
        if (in->size != want) {
            snprintf(err, errlen,
                     "model '%s': input '%.*s': %zu bytes of data, but shape and datatype need "
                     "%zu",
                     mn, (int)in->name.len, in->name.p, in->size, want);
            return HLT_INVALID_ARGUMENT;
        }
    }
    if (msg->n_outputs > HLT_MAX_IO)
        goto too_many;
    if (msg->n_outputs == 0) {
        job->n_out = (uint16_t)cfg->n_outputs;
        for (size_t c = 0; c < cfg->n_outputs; c++)
            job->out_idx[c] = (int16_t)c;
    }
    for (size_t i = 0; i < msg->n_outputs; i++) {
        const infer_output_req_t *o = &msg->outputs[i];
        int c = model_config_find_output(cfg, o->name.p, o->name.len);
        if (c < 0) {
            snprintf(err, errlen, "model '%s': unknown requested output '%.*s'", mn,
                     (int)o->name.len, o->name.p);
            return HLT_INVALID_ARGUMENT;
        }
        if (o->classification || o->shm) {
            snprintf(err, errlen, "model '%s': output '%s': %s is not supported by this server", mn,
                     cfg->outputs[c].name, o->classification ? "classification" : "shared memory");
            return HLT_INVALID_ARGUMENT;
        }
        for (size_t j = 0; j < i; j++)
            if (job->out_idx[j] == c) {
                snprintf(err, errlen, "model '%s': output '%s' is requested twice", mn,
                         cfg->outputs[c].name);
                return HLT_INVALID_ARGUMENT;
            }
        job->out_idx[i] = (int16_t)c;
        job->n_out = (uint16_t)(i + 1);
    }
    return HLT_OK;
too_many:
    snprintf(err, errlen, "model '%s': more than %d tensors in the request", mn, HLT_MAX_IO);
    return HLT_INVALID_ARGUMENT;
}

void rpc_handle_infer(call_ctx_t *c)
{
    char err[1024];
    infer_job_t *job = &c->job;
    c->has_job = true;
    job->t_recv_ns = hlt_now_ns();
    job->deadline_ns = deadline_ns(c->deadline);
    job->alloc_response = alloc_response;
    job->complete = complete;
    job->msg_bytes = GRPC_SLICE_LENGTH(c->req);
    rpc_watch_cancel(c);
    hlt_status st = infer_request_decode(GRPC_SLICE_START_PTR(c->req), GRPC_SLICE_LENGTH(c->req),
                                         &job->msg, err, sizeof err);
    if (st) {
        rpc_reply(c, st, err, NULL);
        return;
    }
    /* A reload can retire the version between lookup and submit; then look it up again, so
     * that a reload never drops a request. */
    for (int attempt = 0;; attempt++) {
        st = repo_get(c->fe->repo, job->msg.model_name.p, job->msg.model_name.len,
                      job->msg.model_version.p, job->msg.model_version.len, &job->model, err,
                      sizeof err);
        if (st) {
            rpc_reply(c, st, err, NULL);
            return;
        }
        if ((st = validate(job, job->model, err, sizeof err)))
            goto failed;
        if (job->t_recv_ns >= job->deadline_ns) {
            st = HLT_DEADLINE_EXCEEDED;
            snprintf(err, sizeof err, "model '%s': deadline expired before the request was queued",
                     model_name(job->model));
            goto failed;
        }
        st = model_submit(job->model, job, err, sizeof err);
        if (st == HLT_OK)
            return;
        if (st != HLT_ABORTED || attempt == 3)
            break;
        model_unref(job->model);
        job->model = NULL;
    }
    if (st == HLT_ABORTED)
        st = HLT_UNAVAILABLE;
failed:
    stats_record_fail(model_stats(job->model), (uint64_t)(hlt_now_ns() - job->t_recv_ns));
    rpc_reply(c, st, err, NULL);
}
