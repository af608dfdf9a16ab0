/* client_meta's asynchronous ServerLive (hlt_client_server_live_async) against a real
 * hltinfer-server on 127.0.0.1: callbacks and handles, a callback that submits the next call
 * (the closed loop hltinfer-bench runs), errors reaching the caller, retries against a dead
 * port, and hlt_client_destroy cancelling calls in flight. The synchronous metadata RPCs are
 * covered by test_client.c. */
#include "fixture.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

static hlt_client_t *connect_to(const char *addresses, const hlt_client_options_t *opts)
{
    char err[1024];
    hlt_client_t *c = NULL;
    hlt_status st = hlt_client_create(addresses, opts, &c, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "hlt_client_create(%s): %s", addresses, err);
    return c;
}

/* Completions counted under a lock, waited for with a bounded timeout. */
typedef struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t done, ok, live, cancelled, other;
    hlt_status last;
    char msg[1024];
} tally_t;

static void tally_init(tally_t *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
}

static bool tally_wait(tally_t *t, size_t n, int seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&t->mu);
    while (t->done < n)
        if (pthread_cond_timedwait(&t->cond, &t->mu, &until) != 0)
            break;
    bool ok = t->done >= n;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void on_live(hlt_status st, bool live, const char *msg, void *user)
{
    tally_t *t = user;
    pthread_mutex_lock(&t->mu);
    t->done++;
    t->ok += st == HLT_OK;
    t->live += st == HLT_OK && live;
    t->cancelled += st == HLT_CANCELLED;
    t->other += st != HLT_OK && st != HLT_CANCELLED;
    t->last = st;
    snprintf(t->msg, sizeof t->msg, "%s", msg);
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

TestSuite(client_meta, .init = start_server, .fini = stop_server, .timeout = 240);

Test(client_meta, live_async_callbacks_all_in_flight)
{
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    tally_t t;
    tally_init(&t);
    enum { N = 256 };
    for (int i = 0; i < N; i++)
        cr_assert_eq(hlt_client_server_live_async(c, on_live, &t, NULL, err, sizeof err), HLT_OK,
                     "%s", err);
    cr_assert(tally_wait(&t, N, 60), "only %zu of %d callbacks ran", t.done, N);
    cr_expect_eq(t.ok, N, "last error: %s", t.msg);
    cr_expect_eq(t.live, N);
    cr_expect_str_eq(t.msg, "", "the message is empty on success");
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.calls, N);
    cr_expect_eq(s.failures, 0);
    hlt_client_destroy(c);
}

Test(client_meta, live_async_handles)
{
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    enum { N = 16 };
    hlt_infer_handle_t *h[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(hlt_client_server_live_async(c, NULL, NULL, &h[i], err, sizeof err), HLT_OK,
                     "%s", err);
        cr_assert_not_null(h[i]);
    }
    for (int i = 0; i < N; i++) {
        cr_assert(hlt_infer_wait(h[i], 30000), "handle %d never completed", i);
        cr_expect(hlt_infer_poll(h[i]));
        bool live = false;
        cr_expect_eq(hlt_live_handle_result(h[i], &live, err, sizeof err), HLT_OK, "%s", err);
        cr_expect(live);
        /* Read twice: the answer stays in the handle. */
        live = false;
        cr_expect_eq(hlt_live_handle_result(h[i], &live, err, sizeof err), HLT_OK, "%s", err);
        cr_expect(live);
        hlt_infer_result_t *r = (hlt_infer_result_t *)1;
        cr_expect_eq(hlt_infer_handle_result(h[i], &r, err, sizeof err), HLT_OK);
        cr_expect_null(r, "a ServerLive handle carries no inference result");
        hlt_infer_handle_free(h[i]);
    }
    hlt_client_destroy(c);
}

/* The closed loop of hltinfer-bench: every completion submits the next call. */
typedef struct chain {
    hlt_client_t *c;
    tally_t t;
    size_t left;
    hlt_status submit_st;
} chain_t;

static void chain_next(hlt_status st, bool live, const char *msg, void *user)
{
    chain_t *ch = user;
    if (st == HLT_OK && live) {
        pthread_mutex_lock(&ch->t.mu);
        bool more = ch->left > 0;
        if (more)
            ch->left--;
        pthread_mutex_unlock(&ch->t.mu);
        if (more) {
            char err[256];
            hlt_status s =
                hlt_client_server_live_async(ch->c, chain_next, ch, NULL, err, sizeof err);
            if (s == HLT_OK)
                return;
            pthread_mutex_lock(&ch->t.mu);
            ch->submit_st = s;
            pthread_mutex_unlock(&ch->t.mu);
        }
    }
    on_live(st, live, msg, &ch->t); /* the end of the chain */
}

Test(client_meta, live_async_callback_submits_the_next_call)
{
    chain_t ch = {.c = connect_to(srv.url, NULL), .left = 500};
    tally_init(&ch.t);
    char err[1024];
    cr_assert_eq(hlt_client_server_live_async(ch.c, chain_next, &ch, NULL, err, sizeof err), HLT_OK,
                 "%s", err);
    cr_assert(tally_wait(&ch.t, 1, 60), "the chain did not finish");
    cr_expect_eq(ch.t.ok, 1, "%s", ch.t.msg);
    cr_expect_eq(ch.t.live, 1);
    cr_expect_eq(ch.left, 0);
    cr_expect_eq(ch.submit_st, HLT_OK);
    hlt_client_stats_t s;
    hlt_client_get_stats(ch.c, &s);
    cr_expect_eq(s.calls, 501);
    hlt_client_destroy(ch.c);
}

Test(client_meta, destroy_cancels_live_calls_in_flight)
{
    hlt_client_t *c = connect_to(srv.url, NULL);
    char err[1024];
    tally_t t;
    tally_init(&t);
    enum { N = 128 };
    for (int i = 0; i < N; i++)
        cr_assert_eq(hlt_client_server_live_async(c, on_live, &t, NULL, err, sizeof err), HLT_OK,
                     "%s", err);
    hlt_client_destroy(c); /* waits for every completion */
    cr_expect_eq(t.done, N, "each callback runs exactly once");
    cr_expect_eq(t.ok + t.cancelled, N, "%zu ended otherwise: %s", t.other, t.msg);
}

TestSuite(client_meta_offline, .timeout = 120);

Test(client_meta_offline, live_async_needs_one_of_callback_and_handle)
{
    int port, dead = fx_dead_port_open(&port);
    cr_assert_geq(dead, 0);
    char url[64], err[1024];
    snprintf(url, sizeof url, "127.0.0.1:%d", port);
    hlt_client_t *c = connect_to(url, NULL);
    tally_t t;
    tally_init(&t);
    hlt_infer_handle_t *h = (hlt_infer_handle_t *)1;
    cr_expect_eq(hlt_client_server_live_async(c, on_live, &t, &h, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_expect_null(h);
    cr_expect(strstr(err, "exactly one"), "%s", err);
    cr_expect_eq(hlt_client_server_live_async(c, NULL, NULL, NULL, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 0, "nothing was sent");
    cr_expect_eq(t.done, 0, "no callback for a call refused at submission");
    hlt_client_destroy(c);
    fx_dead_port_close(dead);
}

Test(client_meta_offline, live_async_dead_server_is_unavailable_after_retries)
{
    int port, dead = fx_dead_port_open(&port);
    cr_assert_geq(dead, 0);
    char url[64], err[1024];
    snprintf(url, sizeof url, "127.0.0.1:%d", port);
    hlt_client_t *c = connect_to(url, &(hlt_client_options_t){.timeout_ms = 30000});
    tally_t t;
    tally_init(&t);
    cr_assert_eq(hlt_client_server_live_async(c, on_live, &t, NULL, err, sizeof err), HLT_OK);
    cr_assert(tally_wait(&t, 1, 60));
    cr_expect_eq(t.last, HLT_UNAVAILABLE, "%s", t.msg);
    cr_expect(strstr(t.msg, "gave up after 3 attempts"), "%s", t.msg);

    hlt_infer_handle_t *h;
    cr_assert_eq(hlt_client_server_live_async(c, NULL, NULL, &h, err, sizeof err), HLT_OK);
    cr_assert(hlt_infer_wait(h, 60000));
    bool live = true;
    cr_expect_eq(hlt_live_handle_result(h, &live, err, sizeof err), HLT_UNAVAILABLE);
    cr_expect(!live);
    hlt_infer_handle_free(h);
    hlt_client_stats_t s;
    hlt_client_get_stats(c, &s);
    cr_expect_eq(s.attempts, 6);
    cr_expect_eq(s.retries, 4);
    cr_expect_eq(s.failures, 2);
    hlt_client_destroy(c);
    fx_dead_port_close(dead);
}

/* A port that accepts TCP connections (the kernel completes the handshake for the backlog) but
 * never speaks HTTP/2, so a call to it stays in flight until its deadline. */
static int silent_port_open(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

Test(client_meta_offline, live_handle_in_flight_is_failed_precondition)
{
    int port, fd = silent_port_open(&port);
    cr_assert_geq(fd, 0);
    char url[64], err[1024];
    snprintf(url, sizeof url, "127.0.0.1:%d", port);
    hlt_client_t *c =
        connect_to(url, &(hlt_client_options_t){.timeout_ms = 1500, .max_retries = -1});
    hlt_infer_handle_t *h;
    cr_assert_eq(hlt_client_server_live_async(c, NULL, NULL, &h, err, sizeof err), HLT_OK);
    bool live = true;
    cr_expect_eq(hlt_live_handle_result(h, &live, err, sizeof err), HLT_FAILED_PRECONDITION);
    cr_expect(strstr(err, "in flight"), "%s", err);
    cr_expect(!live);
    cr_expect(!hlt_infer_poll(h));
    cr_assert(hlt_infer_wait(h, 30000), "the deadline did not end the call");
    hlt_status st = hlt_live_handle_result(h, &live, err, sizeof err);
    cr_expect(st == HLT_DEADLINE_EXCEEDED || st == HLT_UNAVAILABLE, "status %s: %s",
              hlt_status_name(st), err);
    cr_expect(!live);
    hlt_infer_handle_free(h);
    hlt_client_destroy(c);
    close(fd);
}
