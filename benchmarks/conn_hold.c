/* hltinfer-conn-hold: opens N gRPC connections to a server on this machine and holds them, so
 * the server's memory per open client connection can be measured (benchmarks/run_batching.sh
 * reads the server's VmRSS before and while they are held).
 *
 * Each connection is its own channel with a local subchannel pool (otherwise gRPC core shares
 * one TCP connection between channels to the same target) and makes one ServerLive call, so
 * the HTTP/2 connection is really established and the server has accepted it. Prints
 * "ready N" on stdout when all are up, then waits for end of input on stdin or for
 * SIGINT/SIGTERM, and closes everything. Written on the gRPC core C API directly (not
 * libhltinfer) because each libhltinfer client would add a completion thread and pluck queues,
 * which is not what is being measured. Loopback only. */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_CONNS 100000

typedef struct conn {
    grpc_channel *ch;
    grpc_call *call;
    grpc_metadata_array md_initial, md_trailing;
    grpc_byte_buffer *send, *recv;
    grpc_status_code status;
    grpc_slice details;
} conn_t;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Starts a ServerLive call on connection k; completion tagged with k's address. */
static int start_live(conn_t *k, grpc_completion_queue *cq, int timeout_s)
{
    grpc_slice empty = grpc_empty_slice();
    gpr_timespec dl =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(timeout_s, GPR_TIMESPAN));
    k->call = grpc_channel_create_call(
        k->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
        grpc_slice_from_static_string("/inference.GRPCInferenceService/ServerLive"), NULL, dl,
        NULL);
    if (!k->call)
        return -1;
    grpc_metadata_array_init(&k->md_initial);
    grpc_metadata_array_init(&k->md_trailing);
    k->send = grpc_raw_byte_buffer_create(&empty, 1);
    k->details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = k->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA; /* needed for the status (pitfall 4) */
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &k->md_initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &k->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &k->md_trailing;
    ops[5].data.recv_status_on_client.status = &k->status;
    ops[5].data.recv_status_on_client.status_details = &k->details;
    return grpc_call_start_batch(k->call, ops, 6, k, NULL) == GRPC_CALL_OK ? 0 : -1;
}

static void finish_call(conn_t *k)
{
    grpc_byte_buffer_destroy(k->send);
    grpc_byte_buffer_destroy(k->recv);
    k->send = k->recv = NULL;
    grpc_metadata_array_destroy(&k->md_initial);
    grpc_metadata_array_destroy(&k->md_trailing);
    grpc_slice_unref(k->details);
    grpc_call_unref(k->call);
    k->call = NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: hltinfer-conn-hold PORT N [TIMEOUT_S]\n"
                        "Opens N connections to 127.0.0.1:PORT (one ServerLive call each), "
                        "prints 'ready N', holds them until stdin closes or SIGINT/SIGTERM.\n");
        return 2;
    }
    long port = strtol(argv[1], NULL, 10), n = strtol(argv[2], NULL, 10);
    int timeout_s = argc > 3 ? atoi(argv[3]) : 60;
    if (port <= 0 || port > 65535 || n <= 0 || n > MAX_CONNS || timeout_s <= 0) {
        fprintf(stderr, "hltinfer-conn-hold: bad port, count (1..%d) or timeout\n", MAX_CONNS);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)n + 64 > rl.rlim_cur)
        fprintf(stderr,
                "hltinfer-conn-hold: warning: %ld connections need more descriptors than "
                "the limit of %llu\n",
                n, (unsigned long long)rl.rlim_cur);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    grpc_init();
    conn_t *conns = calloc((size_t)n, sizeof *conns);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%ld", port);
    grpc_arg args[1];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[0].value.integer = 1;
    grpc_channel_args chargs = {1, args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    long inflight = 0, ok = 0, failed = 0;
    int rc = 1;
    if (!conns) {
        fprintf(stderr, "hltinfer-conn-hold: out of memory\n");
        goto done;
    }
    /* In waves of 256, so the server's accept queue is never flooded. */
    for (long i = 0; i < n && !stop; i++) {
        conns[i].ch = grpc_channel_create(target, creds, &chargs);
        if (!conns[i].ch || start_live(&conns[i], cq, timeout_s) != 0) {
            failed++;
            if (conns[i].call)
                finish_call(&conns[i]);
        } else {
            inflight++;
        }
        if ((i + 1) % 256 != 0 && i != n - 1)
            continue;
        while (inflight > 0 && !stop) {
            grpc_event ev = grpc_completion_queue_next(
                cq,
                gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                             gpr_time_from_seconds(timeout_s + 5, GPR_TIMESPAN)),
                NULL);
            if (ev.type != GRPC_OP_COMPLETE) {
                fprintf(stderr, "hltinfer-conn-hold: timed out waiting for connections\n");
                stop = 1;
                break;
            }
            conn_t *k = ev.tag;
            inflight--;
            if (ev.success && k->status == GRPC_STATUS_OK) {
                ok++;
            } else if (++failed <= 3) {
                fprintf(stderr, "hltinfer-conn-hold: connection %ld: status %d\n",
                        (long)(k - conns), (int)k->status);
            }
            finish_call(k);
        }
    }
    printf("ready %ld\n", ok);
    fflush(stdout);
    if (failed)
        fprintf(stderr, "hltinfer-conn-hold: %ld of %ld connections failed\n", failed, n);
    rc = ok == n ? 0 : 1;
    /* Hold until stdin closes or a signal arrives. */
    while (!stop) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int r = poll(&p, 1, 500);
        if (r > 0) {
            char buf[256];
            ssize_t m = read(0, buf, sizeof buf);
            if (m <= 0)
                break;
        } else if (r < 0 && errno != EINTR) {
            break;
        }
    }
done:
    grpc_channel_credentials_release(creds);
    for (long i = 0; conns && i < n; i++) {
        if (conns[i].call) {
            grpc_call_cancel(conns[i].call, NULL);
            /* its completion is drained below */
        }
    }
    for (long i = 0; conns && i < n; i++)
        if (conns[i].ch && !conns[i].call)
            grpc_channel_destroy(conns[i].ch);
    grpc_completion_queue_shutdown(cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        conn_t *k = ev.tag;
        finish_call(k);
        grpc_channel_destroy(k->ch);
    }
    grpc_completion_queue_destroy(cq);
    free(conns);
    grpc_shutdown();
    return rc;
}
