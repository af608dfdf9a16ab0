/* hltinfer-echo: the bare gRPC-core floor that hltinfer-server is measured against.
 *
 * A minimal unary server on the same gRPC core C API and the same structure as our frontend
 * (one NEXT completion queue and thread, pre-posted slots, READ_INITIAL_BYTE_BUFFER, the reply
 * as one 4-op batch) with no application work at all. It answers two methods:
 *   /inference.GRPCInferenceService/ServerLive  -> a constant ServerLiveResponse{live: true},
 *     so the very same client code (hltinfer-bench, h2load) can call it and our server;
 *   /bench.Echo/Echo -> the request bytes back (or, with --reply-bytes N, N zero bytes).
 * Anything we measure above this is our own overhead. Stops on SIGINT/SIGTERM. */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_LIVE, M_ECHO, M_COUNT };
enum { K_NEW, K_DONE, K_SHUTDOWN };

typedef struct slot slot_t;
typedef struct tag {
    int kind;
    slot_t *slot;
} tag_t;

struct slot {
    tag_t t_new, t_done;
    int method;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    int cancelled;
};

static grpc_server *server;
static grpc_completion_queue *cq;
static void *methods[M_COUNT];
static volatile int stopping;
static long reply_bytes = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int shutdown_seen;

static void post(int method)
{
    slot_t *s = calloc(1, sizeof *s);
    s->method = method;
    s->t_new = (tag_t){K_NEW, s};
    s->t_done = (tag_t){K_DONE, s};
    grpc_metadata_array_init(&s->md);
    if (grpc_server_request_registered_call(server, methods[method], &s->call, &s->deadline, &s->md,
                                            &s->payload, cq, cq, &s->t_new) != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&s->md);
        free(s);
    }
}

static void release(slot_t *s)
{
    if (s->payload)
        grpc_byte_buffer_destroy(s->payload);
    grpc_metadata_array_destroy(&s->md);
    if (s->call)
        grpc_call_unref(s->call);
    free(s);
}

static void reply(slot_t *s)
{
    static const unsigned char live[] = {0x08, 0x01}; /* ServerLiveResponse{live: true} */
    grpc_byte_buffer *bb;
    if (s->method == M_LIVE) {
        grpc_slice sl = grpc_slice_from_static_buffer(live, sizeof live);
        bb = grpc_raw_byte_buffer_create(&sl, 1);
    } else if (reply_bytes >= 0) {
        grpc_slice sl = grpc_slice_malloc((size_t)reply_bytes);
        memset(GRPC_SLICE_START_PTR(sl), 0, (size_t)reply_bytes);
        bb = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
    } else {
        bb = s->payload ? grpc_byte_buffer_copy(s->payload) : grpc_raw_byte_buffer_create(NULL, 0);
    }
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
    ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[3].data.recv_close_on_server.cancelled = &s->cancelled;
    if (grpc_call_start_batch(s->call, ops, 4, &s->t_done, NULL) != GRPC_CALL_OK)
        release(s);
    grpc_byte_buffer_destroy(bb);
}

static void *loop(void *arg)
{
    (void)arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        tag_t *t = ev.tag;
        if (t->kind == K_SHUTDOWN) {
            pthread_mutex_lock(&mu);
            shutdown_seen = 1;
            pthread_cond_signal(&cond);
            pthread_mutex_unlock(&mu);
            continue;
        }
        if (t->kind == K_DONE || !ev.success) {
            release(t->slot);
            continue;
        }
        if (!stopping)
            post(t->slot->method);
        reply(t->slot);
    }
}

int main(int argc, char **argv)
{
    int port = 0, slots = 64;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--port=", 7))
            port = atoi(argv[i] + 7);
        else if (!strncmp(argv[i], "--slots=", 8))
            slots = atoi(argv[i] + 8);
        else if (!strncmp(argv[i], "--reply-bytes=", 14))
            reply_bytes = atol(argv[i] + 14);
        else {
            fprintf(stderr, "usage: hltinfer-echo [--port=N] [--slots=N] [--reply-bytes=N]\n");
            return 2;
        }
    }
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    grpc_init();
    grpc_arg args[2];
    memset(args, 0, sizeof args);
    args[0].type = args[1].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = INT_MAX;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = INT_MAX;
    grpc_channel_args cargs = {2, args};
    server = grpc_server_create(&cargs, NULL);
    cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server, cq, NULL);
    methods[M_LIVE] =
        grpc_server_register_method(server, "/inference.GRPCInferenceService/ServerLive", NULL,
                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    methods[M_ECHO] = grpc_server_register_method(server, "/bench.Echo/Echo", NULL,
                                                  GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int bound = grpc_server_add_http2_port(server, addr, creds);
    grpc_server_credentials_release(creds);
    if (!bound) {
        fprintf(stderr, "hltinfer-echo: cannot bind %s\n", addr);
        return 1;
    }
    grpc_server_start(server);
    for (int m = 0; m < M_COUNT; m++)
        for (int i = 0; i < slots; i++)
            post(m);
    pthread_t th;
    pthread_create(&th, NULL, loop, NULL);
    fprintf(stderr, "event=server_started grpc_port=%d\n", bound);
    int sig;
    sigwait(&sigs, &sig);
    stopping = 1;
    tag_t st = {K_SHUTDOWN, NULL};
    grpc_server_shutdown_and_notify(server, cq, &st);
    grpc_server_cancel_all_calls(server);
    pthread_mutex_lock(&mu); /* destroying the server before the tag fires aborts */
    while (!shutdown_seen)
        pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    grpc_server_destroy(server);
    grpc_completion_queue_shutdown(cq);
    pthread_join(th, NULL);
    grpc_completion_queue_destroy(cq);
    grpc_shutdown();
    return 0;
}
