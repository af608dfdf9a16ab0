/* client: libhltinfer's connections, call engine (deadlines, retries, fail-over) and inference.
 *
 * What it owns: one gRPC channel per server address, one NEXT completion queue with one thread
 * for asynchronous calls, and a small pool of PLUCK completion queues for synchronous calls.
 * The completion thread starts with the first asynchronous call: an idle thread blocked in
 * grpc_completion_queue_next is a second poller of gRPC's epoll1 engine, which then hands
 * socket reads from one thread to the other (reference/grpc-core.md, section 6). Measured here,
 * a trivial synchronous call took ~40 us longer with it, so a job that only calls synchronously
 * runs without it.
 *
 * - Synchronous calls (hlt_client_infer, every metadata RPC) run entirely on the caller's
 *   thread: it borrows a pluck queue from the pool, starts the call, plucks its completion and
 *   sleeps through retry backoffs itself. No hand-off to another thread, so a synchronous call
 *   costs what a bare gRPC call costs, and many job threads poll in parallel.
 * - Asynchronous calls start on the submitting thread; the completion thread sees their
 *   completions, re-issues retries (backoffs wait in a list whose earliest due time bounds the
 *   thread's grpc_completion_queue_next) and then runs the callback or completes the handle.
 *
 * Request encoding, the zero-copy choice: the ModelInferRequest is packed straight into ONE
 * grpc_slice_malloc'd slice (size computed first, header fields written, each input's bytes
 * memcpy'd once into its raw_input_contents field). The alternative, a multi-slice byte buffer
 * whose data slices reference the caller's buffers with a no-op destroy, was rejected because:
 *   1. gRPC may still hold references to sent slices after the call has completed (the call
 *      ends early on a deadline, cancellation or an early error status while chttp2 is still
 *      writing its outbuf): a slice over a caller buffer the caller has since freed is then read
 *      after free, or an unmapped large buffer faults on a gRPC thread;
 *   2. with one owned slice, hlt_client_infer_async lets the caller reuse its buffers as soon
 *      as submission returns, and every retry / fail-over re-sends the same slice by reference
 *      (no re-encoding, no caller memory needed later);
 *   3. the one memcpy costs ~0.1 ms per MiB, against ~0.7 ms per MiB for the loopback TCP
 *      transfer itself (reference/grpc-core.md), i.e. it is not where the time goes.
 * Responses are parsed in place (infer_wire.c): output views point into the received message.
 *
 * Locking: client->mu guards the list of asynchronous calls in flight and the closing flag's
 * hand-shake with hlt_client_destroy; op->mu guards an asynchronous call's grpc_call pointer
 * (so destroy can cancel it) and its handle state. Order: client->mu before op->mu. */
#include "client_impl.h"
#include "infer_wire.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_RETRIES 2
#define DEFAULT_BACKOFF_MS 10
#define MAX_BACKOFF_NS 1000000000LL
#define DEFAULT_RECONNECT_MAX_MS 2000
#define CQ_POOL_MAX 64
#define RETRY_POLL_NS 50000000LL /* completion thread re-checks `closing` this often */
#define MSG_MAX 1280
#define NO_DEADLINE INT64_MAX

typedef enum { MODE_SYNC, MODE_CALLBACK, MODE_HANDLE } op_mode_t;

/* One call, across all its attempts. For asynchronous infer this is also the user's handle. */
typedef struct hlt_infer_handle call_op_t;
struct hlt_infer_handle {
    hlt_client_t *c;
    grpc_slice method;
    grpc_slice request;
    bool has_request;
    bool is_infer;
    int64_t deadline_ns; /* CLOCK_MONOTONIC; NO_DEADLINE for none */
    /* retry chain */
    size_t server, servers_tried;
    int tries_here, attempts;
    int64_t retry_at_ns;
    call_op_t *next_retry;  /* completion thread's retry list */
    call_op_t *prev, *next; /* client's list of asynchronous calls in flight */
    /* current attempt */
    grpc_call *call;
    grpc_metadata_array md_initial, md_trailing;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_status_code gstatus;
    grpc_slice details;
    /* outcome */
    hlt_status st;
    char msg[MSG_MAX];
    grpc_slice response;
    bool has_response;
    hlt_infer_result_t *result;
    /* asynchronous completion: cb for infer, raw_cb (+ raw_fn) for the other RPCs */
    op_mode_t mode;
    hlt_infer_callback cb;
    client_async_cb raw_cb;
    void (*raw_fn)(void);
    void *user;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    atomic_int refs;
};

struct hlt_client {
    size_t n_servers;
    char **addresses;
    grpc_channel **channels;
    int64_t timeout_ms; /* -1: none */
    int max_retries;
    int64_t backoff_ns;
    int max_message;
    grpc_completion_queue *cq;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t idle;
    atomic_bool closing;
    size_t n_inflight;
    call_op_t *inflight;
    call_op_t *retry_list; /* completion thread only */
    pthread_mutex_t pool_mu;
    grpc_completion_queue *pool[CQ_POOL_MAX];
    size_t n_pool;
    atomic_size_t preferred;
    atomic_uint_fast64_t calls, attempts, retries, failovers, failures;
};

hlt_status client_fail(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static void copy_msg(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* gRPC's monotonic clock has its own epoch, so convert through the time left. */
static gpr_timespec to_gpr(int64_t deadline_ns)
{
    if (deadline_ns == NO_DEADLINE)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    int64_t left = deadline_ns - now_ns();
    if (left < 0)
        left = 0;
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(left, GPR_TIMESPAN));
}

/* now + ms, saturating to "no deadline" instead of overflowing. */
static int64_t deadline_after(int64_t now, int64_t ms)
{
    if (ms < 0 || ms > (NO_DEADLINE - now) / 1000000)
        return NO_DEADLINE;
    return now + ms * 1000000;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- completion-queue pool for synchronous calls ---- */

static grpc_completion_queue *pool_get(hlt_client_t *c)
{
    grpc_completion_queue *cq = NULL;
    pthread_mutex_lock(&c->pool_mu);
    if (c->n_pool)
        cq = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->pool_mu);
    return cq ? cq : grpc_completion_queue_create_for_pluck(NULL);
}

static void pool_put(hlt_client_t *c, grpc_completion_queue *cq)
{
    pthread_mutex_lock(&c->pool_mu);
    if (c->n_pool < CQ_POOL_MAX) {
        c->pool[c->n_pool++] = cq;
        cq = NULL;
    }
    pthread_mutex_unlock(&c->pool_mu);
    if (cq) {
        grpc_completion_queue_shutdown(cq);
        grpc_completion_queue_destroy(cq);
    }
}

/* ---- one call ---- */

static void op_init(call_op_t *op, hlt_client_t *c, const char *method, grpc_slice request,
                    int64_t deadline_ns)
{
    op->c = c;
    op->method = grpc_slice_from_static_string(method);
    op->request = request;
    op->has_request = true;
    op->deadline_ns = deadline_ns;
    op->server = atomic_load(&c->preferred) % c->n_servers;
    op->servers_tried = 1;
    op->details = grpc_empty_slice();
}

/* Releases what the call holds, not the op's own memory. */
static void op_release(call_op_t *op)
{
    if (op->has_request)
        grpc_slice_unref(op->request);
    op->has_request = false;
    if (op->has_response)
        grpc_slice_unref(op->response);
    op->has_response = false;
    hlt_infer_result_free(op->result);
    op->result = NULL;
}

static void op_unref(call_op_t *op)
{
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    op_release(op);
    pthread_mutex_destroy(&op->mu);
    pthread_cond_destroy(&op->cond);
    free(op);
}

static void set_msg(call_op_t *op, hlt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_msg(call_op_t *op, hlt_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->msg, sizeof op->msg, fmt, ap);
    va_end(ap);
    op->st = st;
}

/* The received message as one slice: a reference when gRPC delivered it in one piece,
 * otherwise one copy (large messages arrive in several slices). */
static bool contiguous(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return false;
    size_t total = grpc_byte_buffer_length(bb);
    grpc_slice *first = NULL;
    if (total == 0)
        *out = grpc_empty_slice();
    else if (grpc_byte_buffer_reader_peek(&r, &first) && GRPC_SLICE_LENGTH(*first) == total)
        *out = grpc_slice_ref(*first);
    else {
        grpc_byte_buffer_reader_destroy(&r);
        if (!grpc_byte_buffer_reader_init(&r, bb))
            return false;
        *out = grpc_byte_buffer_reader_readall(&r);
    }
    grpc_byte_buffer_reader_destroy(&r);
    return true;
}

static void attempt_cleanup(call_op_t *op, grpc_call *call)
{
    grpc_byte_buffer_destroy(op->send_bb);
    grpc_byte_buffer_destroy(op->recv_bb);
    op->send_bb = op->recv_bb = NULL;
    grpc_metadata_array_destroy(&op->md_initial);
    grpc_metadata_array_destroy(&op->md_trailing);
    grpc_slice_unref(op->details);
    op->details = grpc_empty_slice();
    if (call)
        grpc_call_unref(call);
}

/* Starts the next attempt of op on its current server. On failure op->st / op->msg say why and
 * nothing is in flight. */
static bool attempt_start(call_op_t *op, grpc_completion_queue *cq)
{
    hlt_client_t *c = op->c;
    const char *addr = c->addresses[op->server];
    bool async = op->mode != MODE_SYNC;
    if (async)
        pthread_mutex_lock(&op->mu);
    if (async && atomic_load(&c->closing)) {
        pthread_mutex_unlock(&op->mu);
        set_msg(op, HLT_CANCELLED, "call cancelled: the client is being destroyed");
        return false;
    }
    grpc_call *call =
        grpc_channel_create_call(c->channels[op->server], NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 op->method, NULL, to_gpr(op->deadline_ns), NULL);
    if (!call) {
        if (async)
            pthread_mutex_unlock(&op->mu);
        set_msg(op, HLT_INTERNAL, "could not create a gRPC call to %s", addr);
        return false;
    }
    grpc_metadata_array_init(&op->md_initial);
    grpc_metadata_array_init(&op->md_trailing);
    op->send_bb = grpc_raw_byte_buffer_create(&op->request, 1);
    op->recv_bb = NULL;
    op->gstatus = GRPC_STATUS_OK;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = op->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    /* Without RECV_INITIAL_METADATA the status never completes (reference pitfall 4). */
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &op->md_initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &op->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &op->md_trailing;
    ops[5].data.recv_status_on_client.status = &op->gstatus;
    ops[5].data.recv_status_on_client.status_details = &op->details;
    op->attempts++;
    atomic_fetch_add(&c->attempts, 1);
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, op, NULL);
    if (e != GRPC_CALL_OK) {
        if (async)
            pthread_mutex_unlock(&op->mu);
        attempt_cleanup(op, call);
        set_msg(op, HLT_INTERNAL, "grpc_call_start_batch to %s failed: %s", addr,
                grpc_call_error_to_string(e));
        return false;
    }
    op->call = call;
    if (async)
        pthread_mutex_unlock(&op->mu);
    return true;
}

/* Collects the outcome of the attempt whose batch completed. */
static void attempt_finish(call_op_t *op, bool success)
{
    grpc_call *call;
    if (op->mode != MODE_SYNC)
        pthread_mutex_lock(&op->mu);
    call = op->call;
    op->call = NULL;
    if (op->mode != MODE_SYNC)
        pthread_mutex_unlock(&op->mu);
    hlt_status st = (hlt_status)op->gstatus;
    if (st != HLT_OK) {
        size_t n = GRPC_SLICE_LENGTH(op->details);
        if (n)
            set_msg(op, st, "%.*s", (int)(n > INT_MAX ? INT_MAX : n),
                    (const char *)GRPC_SLICE_START_PTR(op->details));
        else
            set_msg(op, st, "%s from %s", hlt_status_name(st), op->c->addresses[op->server]);
    } else if (!success) {
        set_msg(op, HLT_INTERNAL, "the gRPC batch to %s failed", op->c->addresses[op->server]);
    } else if (!op->recv_bb) {
        set_msg(op, HLT_INTERNAL, "%s answered OK without a response message",
                op->c->addresses[op->server]);
    } else if (!contiguous(op->recv_bb, &op->response)) {
        set_msg(op, HLT_INTERNAL, "could not read the response from %s",
                op->c->addresses[op->server]);
    } else {
        op->has_response = true;
        op->st = HLT_OK;
        op->msg[0] = '\0';
    }
    attempt_cleanup(op, call);
}

/* After a failed attempt: true when another one should be made, after *delay_ns. Only
 * UNAVAILABLE (which covers connection errors) is retried: first on the same server with a
 * doubling backoff, then on the next server of the list, all within the deadline. */
static bool plan_retry(call_op_t *op, int64_t *delay_ns)
{
    hlt_client_t *c = op->c;
    if (op->st != HLT_UNAVAILABLE || atomic_load(&c->closing))
        return false;
    int64_t now = now_ns();
    if (now >= op->deadline_ns)
        return false;
    if (op->tries_here < c->max_retries) {
        int64_t d = c->backoff_ns;
        for (int i = 0; i < op->tries_here && d < MAX_BACKOFF_NS; i++)
            d *= 2;
        if (d > MAX_BACKOFF_NS)
            d = MAX_BACKOFF_NS;
        if (op->deadline_ns == NO_DEADLINE || d < op->deadline_ns - now) {
            op->tries_here++;
            atomic_fetch_add(&c->retries, 1);
            *delay_ns = d;
            return true;
        }
    }
    if (op->servers_tried < c->n_servers) {
        op->server = (op->server + 1) % c->n_servers;
        op->servers_tried++;
        op->tries_here = 0;
        atomic_fetch_add(&c->failovers, 1);
        *delay_ns = 0;
        return true;
    }
    return false;
}

/* Bookkeeping common to every finished call; parses an infer response. */
static void op_conclude(call_op_t *op)
{
    hlt_client_t *c = op->c;
    if (op->has_request) {
        grpc_slice_unref(op->request);
        op->has_request = false;
    }
    if (op->st == HLT_OK && op->is_infer) {
        char err[MSG_MAX];
        hlt_status st = infer_result_parse(op->response, &op->result, err, sizeof err);
        if (st)
            set_msg(op, st, "%s (from %s)", err, c->addresses[op->server]);
        else
            op->has_response = false; /* moved into the result */
    }
    if (op->st == HLT_OK) {
        if (atomic_load(&c->preferred) != op->server)
            atomic_store(&c->preferred, op->server); /* stay where the fail-over led */
    } else {
        atomic_fetch_add(&c->failures, 1);
        if (op->st == HLT_CANCELLED && atomic_load(&c->closing))
            set_msg(op, HLT_CANCELLED, "call cancelled: the client is being destroyed");
        if (op->st == HLT_UNAVAILABLE && op->attempts > 1) {
            size_t n = strlen(op->msg);
            snprintf(op->msg + n, sizeof op->msg - n,
                     " (gave up after %d attempts on %zu of %zu servers)", op->attempts,
                     op->servers_tried, c->n_servers);
        }
    }
}

static void run_sync(call_op_t *op)
{
    hlt_client_t *c = op->c;
    atomic_fetch_add(&c->calls, 1);
    if (now_ns() >= op->deadline_ns) {
        set_msg(op, HLT_DEADLINE_EXCEEDED, "deadline exceeded before the call was sent");
        op_conclude(op);
        return;
    }
    grpc_completion_queue *cq = pool_get(c);
    if (!cq) {
        set_msg(op, HLT_RESOURCE_EXHAUSTED, "cannot create a completion queue");
        op_conclude(op);
        return;
    }
    for (;;) {
        if (!attempt_start(op, cq))
            break;
        grpc_event ev =
            grpc_completion_queue_pluck(cq, op, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        attempt_finish(op, ev.type == GRPC_OP_COMPLETE && ev.success);
        int64_t delay = 0;
        if (op->st == HLT_OK || !plan_retry(op, &delay))
            break;
        if (delay)
            sleep_ns(delay);
    }
    pool_put(c, cq);
    op_conclude(op);
}

hlt_status client_unary(hlt_client_t *c, const char *method, grpc_slice request,
                        grpc_slice *response, char *err, size_t errlen)
{
    call_op_t op;
    memset(&op, 0, sizeof op);
    int64_t deadline = deadline_after(now_ns(), c->timeout_ms);
    op_init(&op, c, method, request, deadline);
    run_sync(&op);
    if (op.st == HLT_OK) {
        *response = op.response;
        op.has_response = false;
    } else {
        copy_msg(err, errlen, op.msg);
    }
    op_release(&op);
    return op.st;
}

/* ---- asynchronous calls and the completion thread ---- */

/* Final step of an asynchronous call, on the completion thread (or the submitter when the
 * first attempt could not start). */
static void async_finalize(call_op_t *op)
{
    hlt_client_t *c = op->c;
    op_conclude(op);
    pthread_mutex_lock(&c->mu);
    if (op->prev)
        op->prev->next = op->next;
    else
        c->inflight = op->next;
    if (op->next)
        op->next->prev = op->prev;
    pthread_mutex_unlock(&c->mu);
    if (op->mode == MODE_CALLBACK && op->raw_cb) {
        grpc_slice resp = op->has_response ? op->response : grpc_empty_slice();
        op->raw_cb(op->st, resp, op->st == HLT_OK ? "" : op->msg, op->raw_fn, op->user);
    } else if (op->mode == MODE_CALLBACK) {
        hlt_infer_result_t *res = op->result;
        op->result = NULL;
        op->cb(op->st, res, op->st == HLT_OK ? "" : op->msg, op->user);
    } else {
        pthread_mutex_lock(&op->mu);
        op->done = true;
        pthread_cond_broadcast(&op->cond);
        pthread_mutex_unlock(&op->mu);
    }
    op_unref(op);
    pthread_mutex_lock(&c->mu);
    if (--c->n_inflight == 0)
        pthread_cond_broadcast(&c->idle);
    pthread_mutex_unlock(&c->mu);
}

static void async_restart(call_op_t *op)
{
    if (!attempt_start(op, op->c->cq))
        async_finalize(op);
}

static void run_due_retries(hlt_client_t *c)
{
    int64_t now = now_ns();
    bool closing = atomic_load(&c->closing);
    call_op_t **pp = &c->retry_list;
    while (*pp) {
        call_op_t *op = *pp;
        if (!closing && op->retry_at_ns > now) {
            pp = &op->next_retry;
            continue;
        }
        *pp = op->next_retry;
        op->next_retry = NULL;
        if (closing) {
            set_msg(op, HLT_CANCELLED, "call cancelled: the client is being destroyed");
            async_finalize(op);
        } else {
            async_restart(op);
        }
    }
}

static gpr_timespec next_wakeup(hlt_client_t *c)
{
    if (!c->retry_list)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    int64_t now = now_ns(), due = now + RETRY_POLL_NS;
    for (call_op_t *op = c->retry_list; op; op = op->next_retry)
        if (op->retry_at_ns < due)
            due = op->retry_at_ns;
    return to_gpr(due > now ? due : now);
}

static void *cq_main(void *arg)
{
    hlt_client_t *c = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(c->cq, next_wakeup(c), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            call_op_t *op = ev.tag;
            attempt_finish(op, ev.success);
            int64_t delay = 0;
            if (op->st == HLT_OK || !plan_retry(op, &delay)) {
                async_finalize(op);
            } else if (delay == 0) {
                async_restart(op);
            } else {
                op->retry_at_ns = now_ns() + delay;
                op->next_retry = c->retry_list;
                c->retry_list = op;
            }
        }
        run_due_retries(c);
    }
    return NULL;
}

static hlt_status encode_infer(hlt_client_t *c, const hlt_infer_request_t *req, grpc_slice *out,
                               int64_t *deadline, char *err, size_t errlen)
{
    size_t size;
    hlt_status st = infer_request_size(req, &size, err, errlen);
    if (st)
        return st;
    if (size > (size_t)c->max_message)
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen,
                           "model '%s': the request is %zu bytes, more than the client's "
                           "max_message_size (%d)",
                           req->model, size, c->max_message);
    int64_t now = now_ns();
    if (req->deadline_ns)
        *deadline = req->deadline_ns;
    else if (req->timeout_ms < 0 || (req->timeout_ms == 0 && c->timeout_ms < 0))
        *deadline = NO_DEADLINE;
    else
        *deadline = deadline_after(now, req->timeout_ms ? req->timeout_ms : c->timeout_ms);
    if (now >= *deadline)
        return client_fail(HLT_DEADLINE_EXCEEDED, err, errlen,
                           "model '%s': deadline exceeded before the call was sent", req->model);
    *out = grpc_slice_malloc(size);
    infer_request_write(req, GRPC_SLICE_START_PTR(*out), size);
    return HLT_OK;
}

hlt_status hlt_client_infer(hlt_client_t *c, const hlt_infer_request_t *req,
                            hlt_infer_result_t **result, char *err, size_t errlen)
{
    *result = NULL;
    grpc_slice msg;
    int64_t deadline = 0;
    hlt_status st = encode_infer(c, req, &msg, &deadline, err, errlen);
    if (st) {
        atomic_fetch_add(&c->calls, 1);
        atomic_fetch_add(&c->failures, 1);
        return st;
    }
    call_op_t op;
    memset(&op, 0, sizeof op);
    op_init(&op, c, HLT_RPC("ModelInfer"), msg, deadline);
    op.is_infer = true;
    run_sync(&op);
    st = op.st;
    if (st == HLT_OK) {
        *result = op.result;
        op.result = NULL;
    } else {
        copy_msg(err, errlen, op.msg);
    }
    op_release(&op);
    return st;
}

/* Shared by every asynchronous call: registers op (already op_init'ed with its request) in the
 * client's list, starts the completion thread if needed, and starts the first attempt. `msg`
 * moves into the call on every path. */
static hlt_status async_submit(hlt_client_t *c, const char *method, grpc_slice msg,
                               int64_t deadline, bool is_infer, hlt_infer_callback callback,
                               client_async_cb raw_cb, void (*raw_fn)(void), void *user_data,
                               hlt_infer_handle_t **handle, char *err, size_t errlen)
{
    call_op_t *op = calloc(1, sizeof *op);
    if (!op) {
        grpc_slice_unref(msg);
        atomic_fetch_add(&c->failures, 1);
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    op_init(op, c, method, msg, deadline);
    op->is_infer = is_infer;
    op->mode = callback || raw_cb ? MODE_CALLBACK : MODE_HANDLE;
    op->cb = callback;
    op->raw_cb = raw_cb;
    op->raw_fn = raw_fn;
    op->user = user_data;
    pthread_mutex_init(&op->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&op->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&op->refs, handle ? 2 : 1);

    pthread_mutex_lock(&c->mu);
    bool closing = atomic_load(&c->closing);
    int e = 0;
    if (!closing && !c->thread_started) {
        e = pthread_create(&c->thread, NULL, cq_main, c);
        c->thread_started = e == 0;
    }
    if (!closing && !e) {
        op->next = c->inflight;
        if (c->inflight)
            c->inflight->prev = op;
        c->inflight = op;
        c->n_inflight++;
    }
    pthread_mutex_unlock(&c->mu);
    if (closing || e) {
        atomic_store(&op->refs, 1);
        op_unref(op);
        atomic_fetch_add(&c->failures, 1);
        if (e)
            return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen,
                               "cannot start the completion thread: %s", strerror(e));
        return client_fail(HLT_CANCELLED, err, errlen, "the client is being destroyed");
    }
    if (handle)
        *handle = op; /* the user's reference keeps op alive past a fast completion */
    if (!attempt_start(op, c->cq)) {
        /* Nothing was sent: report here, as documented, and not later. */
        hlt_status st = op->st;
        copy_msg(err, errlen, op->msg);
        op->mode = MODE_HANDLE; /* no callback for a call that never started */
        async_finalize(op);
        if (handle) {
            op_unref(op);
            *handle = NULL;
        }
        return st;
    }
    return HLT_OK;
}

hlt_status hlt_client_infer_async(hlt_client_t *c, const hlt_infer_request_t *req,
                                  hlt_infer_callback callback, void *user_data,
                                  hlt_infer_handle_t **handle, char *err, size_t errlen)
{
    if (handle)
        *handle = NULL;
    if (!callback == !handle)
        return client_fail(HLT_INVALID_ARGUMENT, err, errlen,
                           "hlt_client_infer_async needs exactly one of a callback and a "
                           "handle");
    grpc_slice msg;
    int64_t deadline = 0;
    atomic_fetch_add(&c->calls, 1);
    hlt_status st = encode_infer(c, req, &msg, &deadline, err, errlen);
    if (st) {
        atomic_fetch_add(&c->failures, 1);
        return st;
    }
    return async_submit(c, HLT_RPC("ModelInfer"), msg, deadline, true, callback, NULL, NULL,
                        user_data, handle, err, errlen);
}

hlt_status client_unary_async(hlt_client_t *c, const char *method, grpc_slice request,
                              client_async_cb cb, void (*fn)(void), void *user,
                              hlt_infer_handle_t **handle, char *err, size_t errlen)
{
    if (handle)
        *handle = NULL;
    atomic_fetch_add(&c->calls, 1);
    int64_t deadline = deadline_after(now_ns(), c->timeout_ms);
    return async_submit(c, method, request, deadline, false, NULL, cb, fn, user, handle, err,
                        errlen);
}

hlt_status client_handle_response(hlt_infer_handle_t *h, grpc_slice *response, char *err,
                                  size_t errlen)
{
    pthread_mutex_lock(&h->mu);
    hlt_status st;
    if (!h->done) {
        st = client_fail(HLT_FAILED_PRECONDITION, err, errlen, "the call is still in flight");
    } else {
        st = h->st;
        copy_msg(err, errlen, h->msg);
        if (st == HLT_OK)
            *response = h->has_response ? grpc_slice_ref(h->response) : grpc_empty_slice();
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

bool hlt_infer_poll(hlt_infer_handle_t *h)
{
    pthread_mutex_lock(&h->mu);
    bool done = h->done;
    pthread_mutex_unlock(&h->mu);
    return done;
}

bool hlt_infer_wait(hlt_infer_handle_t *h, int64_t timeout_ms)
{
    struct timespec until;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(timeout_ms / 1000);
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&h->mu);
    while (!h->done && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&h->cond, &h->mu);
        else if (pthread_cond_timedwait(&h->cond, &h->mu, &until) == ETIMEDOUT)
            break;
    }
    bool done = h->done;
    pthread_mutex_unlock(&h->mu);
    return done;
}

hlt_status hlt_infer_handle_result(hlt_infer_handle_t *h, hlt_infer_result_t **result, char *err,
                                   size_t errlen)
{
    if (result)
        *result = NULL;
    pthread_mutex_lock(&h->mu);
    hlt_status st;
    if (!h->done) {
        st = client_fail(HLT_FAILED_PRECONDITION, err, errlen, "the call is still in flight");
    } else {
        st = h->st;
        copy_msg(err, errlen, h->msg);
        if (result) {
            *result = h->result;
            h->result = NULL;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

void hlt_infer_handle_free(hlt_infer_handle_t *h)
{
    if (h)
        op_unref(h); /* in flight: the completion drops the library's reference and frees */
}

/* ---- client ---- */

size_t hlt_client_address_count(const hlt_client_t *c)
{
    return c->n_servers;
}

const char *hlt_client_address(const hlt_client_t *c, size_t i)
{
    return i < c->n_servers ? c->addresses[i] : NULL;
}

void hlt_client_get_stats(const hlt_client_t *c, hlt_client_stats_t *out)
{
    hlt_client_t *m = (hlt_client_t *)c; /* atomics are read-only here */
    out->calls = atomic_load(&m->calls);
    out->attempts = atomic_load(&m->attempts);
    out->retries = atomic_load(&m->retries);
    out->failovers = atomic_load(&m->failovers);
    out->failures = atomic_load(&m->failures);
}

hlt_status hlt_client_create_list(const char *const *addresses, size_t n,
                                  const hlt_client_options_t *opts, hlt_client_t **out, char *err,
                                  size_t errlen)
{
    *out = NULL;
    if (n == 0 || !addresses)
        return client_fail(HLT_INVALID_ARGUMENT, err, errlen, "no server address given");
    for (size_t i = 0; i < n; i++)
        if (!addresses[i] || !*addresses[i])
            return client_fail(HLT_INVALID_ARGUMENT, err, errlen, "server address %zu is empty", i);
    hlt_client_options_t o = opts ? *opts : (hlt_client_options_t){0};
    hlt_status st = HLT_OK;
    hlt_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    grpc_init();
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->idle, NULL);
    pthread_mutex_init(&c->pool_mu, NULL);
    c->timeout_ms = o.timeout_ms == 0 ? DEFAULT_TIMEOUT_MS : o.timeout_ms < 0 ? -1 : o.timeout_ms;
    c->max_retries = o.max_retries == 0  ? DEFAULT_MAX_RETRIES
                     : o.max_retries < 0 ? 0
                                         : o.max_retries;
    c->backoff_ns =
        (int64_t)(o.retry_backoff_ms > 0 ? o.retry_backoff_ms : DEFAULT_BACKOFF_MS) * 1000000;
    c->max_message =
        o.max_message_size <= 0 || o.max_message_size > INT_MAX ? INT_MAX : (int)o.max_message_size;
    int reconnect =
        o.reconnect_backoff_max_ms > 0 ? o.reconnect_backoff_max_ms : DEFAULT_RECONNECT_MAX_MS;

    c->addresses = calloc(n, sizeof *c->addresses);
    c->channels = calloc(n, sizeof *c->channels);
    if (!c->addresses || !c->channels) {
        st = client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto fail;
    }
    c->n_servers = n;
    grpc_arg args[5];
    memset(args, 0, sizeof args);
    args[0].type = args[1].type = args[2].type = args[3].type = args[4].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = c->max_message;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = c->max_message;
    /* Retries are ours (status-aware, with fail-over); gRPC's would also buffer every message. */
    args[2].key = (char *)GRPC_ARG_ENABLE_RETRIES;
    args[2].value.integer = 0;
    args[3].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    args[3].value.integer = reconnect;
    args[4].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    args[4].value.integer = reconnect < 1000 ? reconnect : 1000;
    grpc_channel_args chargs = {5, args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    for (size_t i = 0; i < n; i++) {
        c->addresses[i] = strdup(addresses[i]);
        if (!c->addresses[i]) {
            st = client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
            break;
        }
        c->channels[i] = grpc_channel_create(addresses[i], creds, &chargs);
        if (!c->channels[i]) {
            st = client_fail(HLT_INVALID_ARGUMENT, err, errlen, "cannot create a channel to '%s'",
                             addresses[i]);
            break;
        }
    }
    grpc_channel_credentials_release(creds);
    if (st)
        goto fail;
    c->cq = grpc_completion_queue_create_for_next(NULL);
    if (!c->cq) {
        st = client_fail(HLT_INTERNAL, err, errlen, "cannot create a completion queue");
        goto fail;
    }
    *out = c;
    return HLT_OK;
fail:
    hlt_client_destroy(c);
    return st;
}

hlt_status hlt_client_create(const char *addresses, const hlt_client_options_t *opts,
                             hlt_client_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!addresses)
        return client_fail(HLT_INVALID_ARGUMENT, err, errlen, "no server address given");
    char *copy = strdup(addresses);
    size_t n = 1;
    for (const char *p = addresses; *p; p++)
        n += *p == ',';
    const char **list = calloc(n, sizeof *list);
    hlt_status st;
    if (!copy || !list) {
        st = client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto done;
    }
    n = 0;
    char *tok = copy, *s;
    while ((s = strsep(&tok, ",")) != NULL) {
        while (*s == ' ')
            s++;
        char *e = s + strlen(s);
        while (e > s && e[-1] == ' ')
            *--e = '\0';
        list[n++] = s;
    }
    st = hlt_client_create_list(list, n, opts, out, err, errlen);
done:
    free(list);
    free(copy);
    return st;
}

void hlt_client_destroy(hlt_client_t *c)
{
    if (!c)
        return;
    /* 1. Cancel the asynchronous calls in flight and wait for their completions. */
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->closing, true);
    for (call_op_t *op = c->inflight; op; op = op->next) {
        pthread_mutex_lock(&op->mu);
        if (op->call)
            grpc_call_cancel(op->call, NULL);
        pthread_mutex_unlock(&op->mu);
    }
    while (c->n_inflight)
        pthread_cond_wait(&c->idle, &c->mu);
    pthread_mutex_unlock(&c->mu);
    /* 2. Channels (no call is left), then the completion queues (reference pitfall 13). */
    for (size_t i = 0; c->channels && i < c->n_servers; i++)
        if (c->channels[i])
            grpc_channel_destroy(c->channels[i]);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        if (c->thread_started)
            pthread_join(c->thread, NULL); /* it drains the queue up to GRPC_QUEUE_SHUTDOWN */
        else
            while (
                grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
                GRPC_QUEUE_SHUTDOWN) {
            }
        grpc_completion_queue_destroy(c->cq);
    }
    for (size_t i = 0; i < c->n_pool; i++) {
        grpc_completion_queue_shutdown(c->pool[i]);
        grpc_completion_queue_destroy(c->pool[i]);
    }
    for (size_t i = 0; c->addresses && i < c->n_servers; i++)
        free(c->addresses[i]);
    free(c->addresses);
    free(c->channels);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->idle);
    pthread_mutex_destroy(&c->pool_mu);
    free(c);
    grpc_shutdown(); /* last: after every call, channel and queue is gone */
}
