/* gRPC frontend on the core C API, structured as reference/grpc-core.md recommends: one
 * NEXT completion queue and thread (on a 2-core box one thread beats two), every method
 * registered with READ_INITIAL_BYTE_BUFFER so a call arrives with its message, calls bound to
 * the queue they were requested on, replies sent as one 4-op batch (2 CQ events per unary RPC),
 * generic slots answering UNIMPLEMENTED so unknown methods never hang, and the shutdown order
 * of pitfall 13. Load/unload runs on a separate control thread because it reads files and
 * compiles models. */
#include "frontend.h"

#include "log.h"
#include "model.h"
#include "rpc.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const method_paths[M_COUNT] = {
    [M_SERVER_LIVE] = "/inference.GRPCInferenceService/ServerLive",
    [M_SERVER_READY] = "/inference.GRPCInferenceService/ServerReady",
    [M_MODEL_READY] = "/inference.GRPCInferenceService/ModelReady",
    [M_SERVER_METADATA] = "/inference.GRPCInferenceService/ServerMetadata",
    [M_MODEL_METADATA] = "/inference.GRPCInferenceService/ModelMetadata",
    [M_MODEL_INFER] = "/inference.GRPCInferenceService/ModelInfer",
    [M_MODEL_CONFIG] = "/inference.GRPCInferenceService/ModelConfig",
    [M_MODEL_STATISTICS] = "/inference.GRPCInferenceService/ModelStatistics",
    [M_REPOSITORY_INDEX] = "/inference.GRPCInferenceService/RepositoryIndex",
    [M_REPOSITORY_LOAD] = "/inference.GRPCInferenceService/RepositoryModelLoad",
    [M_REPOSITORY_UNLOAD] = "/inference.GRPCInferenceService/RepositoryModelUnload",
    [M_HEALTH_CHECK] = "/grpc.health.v1.Health/Check",
};

#define GENERIC_SLOTS 4
#define SMALL_SLOTS 64

static void post_slot(frontend_t *fe, int method)
{
    call_ctx_t *c = calloc(1, sizeof *c);
    if (!c) {
        HLT_LOG(HLT_LOG_ERROR, "event=slot_alloc_failed method=%d", method);
        return;
    }
    c->fe = fe;
    c->method = method;
    c->tag_new = (call_tag_t){TAG_NEW_CALL, c};
    c->tag_done = (call_tag_t){TAG_DONE, c};
    c->tag_close = (call_tag_t){TAG_CLOSE, c};
    grpc_metadata_array_init(&c->md);
    grpc_call_error e;
    if (method == M_GENERIC) {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(fe->server, &c->call, &c->details, &c->md, fe->cq, fe->cq,
                                     &c->tag_new);
    } else {
        e = grpc_server_request_registered_call(fe->server, fe->registered[method], &c->call,
                                                &c->deadline, &c->md, &c->payload, fe->cq, fe->cq,
                                                &c->tag_new);
    }
    if (e != GRPC_CALL_OK) {
        HLT_LOG(HLT_LOG_ERROR, "event=request_call_failed method=%d error=%d", method, e);
        grpc_metadata_array_destroy(&c->md);
        if (method == M_GENERIC)
            grpc_call_details_destroy(&c->details);
        free(c);
    }
}

static void free_call(call_ctx_t *c)
{
    if (c->has_job)
        rpc_infer_release(c);
    if (c->has_req)
        grpc_slice_unref(c->req);
    if (c->has_resp)
        grpc_slice_unref(c->resp);
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    grpc_metadata_array_destroy(&c->md);
    if (c->method == M_GENERIC)
        grpc_call_details_destroy(&c->details);
    if (c->call)
        grpc_call_unref(c->call);
    free(c);
}

/* Drops one pending completion; the last frees the call. */
static void release_call(call_ctx_t *c)
{
    if (atomic_fetch_sub(&c->pending, 1) == 1) {
        atomic_fetch_sub(&c->fe->in_flight, 1);
        free_call(c);
    }
}

/* Every error answered is logged at INFO, at most 20 lines a second (a flood of bad requests
 * must not flood the log or slow the server); the count of lines held back rides on the next
 * line that passes. --log-verbose=1 logs every one. */
static void log_rejected(int method, hlt_status st, const char *message)
{
    const char *path = method >= 0 && method < M_COUNT ? method_paths[method] : "(unknown method)";
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    static hlt_log_limiter_t limiter = HLT_LOG_LIMITER_INIT(20);
    if (hlt_log_level >= HLT_LOG_VERBOSE) {
        HLT_LOG(HLT_LOG_VERBOSE, "event=rpc_error method=%s status=%s message=\"%s\"", name,
                hlt_status_name(st), message ? message : "");
        return;
    }
    unsigned long dropped = 0;
    if (hlt_log_level < HLT_LOG_INFO || !hlt_log_limit_take(&limiter, &dropped))
        return;
    if (dropped)
        HLT_LOG(HLT_LOG_INFO,
                "event=rpc_error method=%s status=%s message=\"%s\" suppressed_before=%lu",
                name, hlt_status_name(st), message ? message : "", dropped);
    else
        HLT_LOG(HLT_LOG_INFO, "event=rpc_error method=%s status=%s message=\"%s\"", name,
                hlt_status_name(st), message ? message : "");
}

void rpc_reply(call_ctx_t *c, hlt_status st, const char *message, grpc_slice *body)
{
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    grpc_byte_buffer *bb = NULL;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (body && st == HLT_OK) {
        bb = grpc_raw_byte_buffer_create(body, 1);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
    }
    grpc_slice details = grpc_slice_from_static_string(message ? message : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)st;
    ops[n++].data.send_status_from_server.status_details = message ? &details : NULL;
    if (!c->early_close) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    }
    if (st != HLT_OK)
        log_rejected(c->method, st, message);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag_done, NULL);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    if (e != GRPC_CALL_OK) {
        /* Cannot happen with a well-formed batch; the call would leak its slot otherwise. */
        HLT_LOG(HLT_LOG_ERROR, "event=start_batch_failed method=%d error=%d", c->method, e);
        release_call(c);
    }
}

void rpc_watch_cancel(call_ctx_t *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    atomic_fetch_add(&c->pending, 1);
    if (grpc_call_start_batch(c->call, &op, 1, &c->tag_close, NULL) == GRPC_CALL_OK)
        c->early_close = true;
    else
        atomic_fetch_sub(&c->pending, 1);
}

void rpc_reply_pb(call_ctx_t *c, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    rpc_reply(c, HLT_OK, NULL, &s);
    grpc_slice_unref(s);
}

void rpc_reply_error(call_ctx_t *c, hlt_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rpc_reply(c, st, msg, NULL);
}

/* The received message as one slice: a reference when gRPC delivered it in one piece,
 * otherwise one copy (large messages arrive in several slices). */
static grpc_slice payload_slice(grpc_byte_buffer *bb)
{
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1)
        return grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return grpc_empty_slice();
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return s;
}

static void dispatch(call_ctx_t *c)
{
    frontend_t *fe = c->fe;
    atomic_fetch_add(&fe->in_flight, 1);
    atomic_store(&c->pending, 1);
    if (c->method == M_GENERIC) {
        char *path = grpc_slice_to_c_string(c->details.method);
        rpc_reply_error(c, HLT_UNIMPLEMENTED, "method %s is not implemented by hltinfer", path);
        gpr_free(path);
        return;
    }
    if (!c->payload) {
        rpc_reply_error(c, HLT_INVALID_ARGUMENT, "the call carried no request message");
        return;
    }
    c->req = payload_slice(c->payload);
    c->has_req = true;
    grpc_byte_buffer_destroy(c->payload);
    c->payload = NULL;
    switch (c->method) {
    case M_MODEL_INFER:
        rpc_handle_infer(c);
        break;
    case M_REPOSITORY_LOAD:
    case M_REPOSITORY_UNLOAD:
        if (!queue_push(fe->control, c))
            rpc_reply_error(c, HLT_UNAVAILABLE,
                            "too many repository load/unload requests pending; retry later");
        break;
    default:
        rpc_handle_meta(c);
        break;
    }
}

static void *cq_main(void *arg)
{
    frontend_t *fe = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(fe->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        call_tag_t *tag = ev.tag;
        if (tag->kind == TAG_SHUTDOWN) {
            pthread_mutex_lock(&fe->mu);
            fe->shutdown_done = true;
            pthread_cond_broadcast(&fe->cond);
            pthread_mutex_unlock(&fe->mu);
            continue;
        }
        call_ctx_t *c = tag->call;
        if (tag->kind == TAG_NEW_CALL) {
            if (!ev.success) { /* server shutting down: the slot is never used */
                free_call(c);
                continue;
            }
            if (!atomic_load(&fe->shutting_down))
                post_slot(fe, c->method);
            dispatch(c);
        } else if (tag->kind == TAG_CLOSE) {
            /* The client cancelled or its deadline passed: drop the job if still queued. */
            if (c->cancelled && c->has_job && c->job.model) {
                atomic_store(&c->job.cancelled, true);
                model_kick(c->job.model);
            }
            release_call(c);
        } else {
            release_call(c);
        }
    }
    return NULL;
}

static void *control_main(void *arg)
{
    frontend_t *fe = arg;
    call_ctx_t *c;
    while ((c = queue_pop(fe->control)))
        rpc_handle_control(c);
    return NULL;
}

static hlt_status fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hlt_status fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return HLT_UNAVAILABLE;
}

hlt_status frontend_start(const frontend_options_t *opts, repo_t *repo, frontend_t **out,
                          int *bound_port, char *err, size_t errlen)
{
    frontend_t *fe = calloc(1, sizeof *fe);
    if (!fe)
        return HLT_RESOURCE_EXHAUSTED;
    fe->repo = repo;
    fe->allow_model_control = opts->allow_model_control;
    fe->strict_readiness = opts->strict_readiness;
    fe->admission_queue_ns = opts->admission_queue_us * 1000;
    fe->admission_window_ns =
        (opts->admission_window_ms > 0 ? opts->admission_window_ms : 1000) * 1000000;
    fe->slots_infer = opts->slots_per_method > 0 ? opts->slots_per_method : 64;
    fe->shutdown_tag.kind = TAG_SHUTDOWN;
    fe->control = queue_create(64);
    pthread_mutex_init(&fe->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fe->cond, &ca);
    pthread_condattr_destroy(&ca);

    /* Triton's limit both ways: INT32_MAX. */
    grpc_arg args[3];
    memset(args, 0, sizeof args);
    args[0].type = args[1].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = INT_MAX;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = INT_MAX;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    grpc_channel_args cargs = {3, args};
    fe->server = grpc_server_create(&cargs, NULL);
    fe->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(fe->server, fe->cq, NULL);
    for (int m = 0; m < M_COUNT; m++)
        fe->registered[m] = grpc_server_register_method(
            fe->server, method_paths[m], NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%d", opts->address, opts->port);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(fe->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        grpc_server_destroy(fe->server);
        grpc_completion_queue_shutdown(fe->cq);
        while (grpc_completion_queue_next(fe->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(fe->cq);
        queue_destroy(fe->control);
        free(fe);
        return fail(err, errlen, "cannot bind gRPC port %s (in use?)", addr);
    }
    grpc_server_start(fe->server);
    for (int m = 0; m < M_COUNT; m++) {
        int n = m == M_MODEL_INFER ? fe->slots_infer : SMALL_SLOTS;
        for (int i = 0; i < n; i++)
            post_slot(fe, m);
    }
    for (int i = 0; i < GENERIC_SLOTS; i++)
        post_slot(fe, M_GENERIC);
    pthread_create(&fe->control_thread, NULL, control_main, fe);
    pthread_create(&fe->cq_thread, NULL, cq_main, fe);
    *bound_port = port;
    *out = fe;
    return HLT_OK;
}

void frontend_stop(frontend_t *fe, int64_t grace_ms)
{
    if (!fe)
        return;
    atomic_store(&fe->shutting_down, true);
    /* The shutdown tag arrives on the server's own (registered) queue; the CQ thread signals. */
    grpc_server_shutdown_and_notify(fe->server, fe->cq, &fe->shutdown_tag);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + (grace_ms % 1000) * 1000000;
    until.tv_sec += grace_ms / 1000 + ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&fe->mu);
    int rc = 0;
    while (!fe->shutdown_done && rc == 0)
        rc = pthread_cond_timedwait(&fe->cond, &fe->mu, &until);
    bool done = fe->shutdown_done;
    pthread_mutex_unlock(&fe->mu);
    if (!done) {
        HLT_LOG(HLT_LOG_WARN, "event=shutdown_grace_expired in_flight=%ld",
                atomic_load(&fe->in_flight));
        grpc_server_cancel_all_calls(fe->server);
        pthread_mutex_lock(&fe->mu);
        while (!fe->shutdown_done)
            pthread_cond_wait(&fe->cond, &fe->mu);
        pthread_mutex_unlock(&fe->mu);
    }
    queue_close(fe->control);
    pthread_join(fe->control_thread, NULL);
    grpc_server_destroy(fe->server);
    grpc_completion_queue_shutdown(fe->cq);
    pthread_join(fe->cq_thread, NULL);
    grpc_completion_queue_destroy(fe->cq);
    queue_destroy(fe->control);
    pthread_mutex_destroy(&fe->mu);
    pthread_cond_destroy(&fe->cond);
    free(fe);
}
