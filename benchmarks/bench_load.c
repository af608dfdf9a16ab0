/* bench_load: closed-loop load through libhltinfer's asynchronous path (see bench_load.h).
 *
 * Why callbacks and not handles: a closed loop must resubmit the moment a call completes; a
 * callback does that on the completion thread with no hand-off to another thread, which is
 * what an event-driven trigger framework would do, and is the cheapest client path the
 * library has. The same path serves ModelInfer and ServerLive, so their ratio isolates what
 * the server does between receiving a call and answering it. */
#include "bench_load.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PH_WARMUP, PH_MEASURE, PH_COOLDOWN, PH_DRAIN };

typedef struct load load_t;

typedef struct lclient {
    load_t *L;
    hlt_client_t *c;
    int64_t *lat; /* touched only by this client's completion thread while the load runs */
    size_t n, cap;
    uint64_t ok, errors, lost;
} lclient_t;

typedef struct slot {
    lclient_t *lc;
    int64_t t_start;
} slot_t;

struct load {
    const load_spec_t *spec;
    atomic_int phase;
    atomic_uint_fast64_t measured; /* completions inside the window (count mode) */
    atomic_uint_fast64_t errors_total;
    int64_t t_end; /* count mode: set by the callback that closes the window */
    int stopped_early;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t outstanding;
    hlt_status first_error;
    char first_message[512];
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void note_error(load_t *L, hlt_status st, const char *msg)
{
    uint64_t n = atomic_fetch_add(&L->errors_total, 1) + 1;
    pthread_mutex_lock(&L->mu);
    if (L->first_error == HLT_OK) {
        L->first_error = st;
        snprintf(L->first_message, sizeof L->first_message, "%s", msg ? msg : "");
    }
    if (n > L->spec->max_errors && atomic_load(&L->phase) < PH_COOLDOWN) {
        L->stopped_early = 1;
        L->t_end = now_ns();
        atomic_store(&L->phase, PH_COOLDOWN);
        pthread_cond_broadcast(&L->cond);
    }
    pthread_mutex_unlock(&L->mu);
}

static void slot_finished(load_t *L)
{
    pthread_mutex_lock(&L->mu);
    if (--L->outstanding == 0)
        pthread_cond_broadcast(&L->cond);
    pthread_mutex_unlock(&L->mu);
}

static void record(lclient_t *lc, int64_t ns)
{
    if (lc->n == lc->cap) {
        size_t cap = lc->cap ? lc->cap * 2 : 65536;
        int64_t *p = realloc(lc->lat, cap * sizeof *p);
        if (!p) {
            lc->lost++;
            return;
        }
        lc->lat = p;
        lc->cap = cap;
    }
    lc->lat[lc->n++] = ns;
}

static void on_infer(hlt_status st, hlt_infer_result_t *res, const char *msg, void *user);
static void on_live(hlt_status st, bool live, const char *msg, void *user);

static hlt_status submit(slot_t *s, char *err, size_t errlen)
{
    lclient_t *lc = s->lc;
    s->t_start = now_ns();
    if (lc->L->spec->mode == LOAD_INFER)
        return hlt_client_infer_async(lc->c, lc->L->spec->req, on_infer, s, NULL, err, errlen);
    return hlt_client_server_live_async(lc->c, on_live, s, NULL, err, errlen);
}

/* One call of slot s completed (on its client's completion thread). */
static void complete(slot_t *s, hlt_status st, const char *msg)
{
    int64_t end = now_ns();
    lclient_t *lc = s->lc;
    load_t *L = lc->L;
    if (atomic_load(&L->phase) == PH_MEASURE) {
        if (st == HLT_OK) {
            lc->ok++;
            record(lc, end - s->t_start);
        } else {
            lc->errors++;
        }
        if (L->spec->requests && atomic_fetch_add(&L->measured, 1) + 1 == L->spec->requests) {
            pthread_mutex_lock(&L->mu);
            L->t_end = end;
            atomic_store(&L->phase, PH_COOLDOWN);
            pthread_cond_broadcast(&L->cond);
            pthread_mutex_unlock(&L->mu);
        }
    }
    if (st != HLT_OK)
        note_error(L, st, msg);
    if (atomic_load(&L->phase) < PH_DRAIN) {
        char err[512];
        hlt_status sst = submit(s, err, sizeof err);
        if (sst == HLT_OK)
            return;
        note_error(L, sst, err);
    }
    slot_finished(L);
}

static void on_infer(hlt_status st, hlt_infer_result_t *res, const char *msg, void *user)
{
    hlt_infer_result_free(res);
    complete(user, st, msg);
}

static void on_live(hlt_status st, bool live, const char *msg, void *user)
{
    if (st == HLT_OK && !live) {
        st = HLT_UNAVAILABLE;
        msg = "ServerLive answered live = false";
    }
    complete(user, st, msg);
}

/* Waits until the phase reaches `phase` or `deadline` (monotonic ns) passes. */
static void wait_phase(load_t *L, int phase, int64_t deadline)
{
    struct timespec ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
    pthread_mutex_lock(&L->mu);
    while (atomic_load(&L->phase) < phase)
        if (pthread_cond_timedwait(&L->cond, &L->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&L->mu);
}

static int64_t secs(double s)
{
    return (int64_t)(s * 1e9);
}

int load_run(const load_spec_t *spec, load_result_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (spec->n_clients == 0 || spec->concurrency == 0 ||
        (spec->mode == LOAD_INFER && !spec->req)) {
        snprintf(err, errlen, "bad load specification");
        return -1;
    }
    /* On the heap: if calls are still in flight after the drain time, their callbacks (run when
     * the caller destroys the clients) still use it, so it is then left allocated. */
    load_t *L = calloc(1, sizeof *L);
    if (!L) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    L->spec = spec;
    atomic_init(&L->phase, spec->warmup_s > 0 ? PH_WARMUP : PH_MEASURE);
    atomic_init(&L->measured, 0);
    atomic_init(&L->errors_total, 0);
    pthread_mutex_init(&L->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&L->cond, &ca);
    pthread_condattr_destroy(&ca);
    lclient_t *lcs = calloc(spec->n_clients, sizeof *lcs);
    slot_t *slots = calloc(spec->concurrency, sizeof *slots);
    int rc = -1;
    if (!lcs || !slots) {
        snprintf(err, errlen, "out of memory for %u slots", spec->concurrency);
        goto done;
    }
    for (size_t i = 0; i < spec->n_clients; i++) {
        lcs[i].L = L;
        lcs[i].c = spec->clients[i];
    }

    if (spec->on_edge && spec->warmup_s <= 0)
        spec->on_edge(EDGE_START, spec->edge_arg);
    int64_t t0 = now_ns();
    size_t started = 0;
    char serr[512];
    /* outstanding is raised before each submit: the call may complete before submit returns. */
    for (uint32_t i = 0; i < spec->concurrency; i++) {
        slots[i].lc = &lcs[i % spec->n_clients];
        pthread_mutex_lock(&L->mu);
        L->outstanding++;
        pthread_mutex_unlock(&L->mu);
        hlt_status st = submit(&slots[i], serr, sizeof serr);
        if (st != HLT_OK) {
            note_error(L, st, serr);
            slot_finished(L);
            continue;
        }
        started++;
    }
    if (started == 0) {
        snprintf(err, errlen, "no call could be submitted: %s (%s)", L->first_message,
                 hlt_status_name(L->first_error));
        goto done;
    }

    if (spec->warmup_s > 0) {
        wait_phase(L, PH_COOLDOWN, t0 + secs(spec->warmup_s)); /* returns early on abort */
        if (atomic_load(&L->phase) == PH_WARMUP) {
            if (spec->on_edge)
                spec->on_edge(EDGE_START, spec->edge_arg);
            t0 = now_ns();
            int expected = PH_WARMUP;
            atomic_compare_exchange_strong(&L->phase, &expected, PH_MEASURE);
        }
    }
    double limit = spec->requests ? spec->max_time_s : spec->duration_s;
    wait_phase(L, PH_COOLDOWN, t0 + secs(limit));
    pthread_mutex_lock(&L->mu);
    int64_t t1 = L->t_end;
    if (atomic_load(&L->phase) < PH_COOLDOWN) {
        t1 = now_ns();
        if (spec->requests)
            L->stopped_early = 2;
        atomic_store(&L->phase, PH_COOLDOWN);
    }
    pthread_mutex_unlock(&L->mu);
    if (spec->on_edge)
        spec->on_edge(EDGE_END, spec->edge_arg);
    atomic_store(&L->phase, PH_DRAIN);

    /* Drain: every slot ends at its next completion. hlt_client_destroy (by the caller) cancels
     * whatever is still in flight after this bounded wait. */
    int64_t dl = now_ns() + secs(spec->drain_s > 0 ? spec->drain_s : 10);
    struct timespec ts = {(time_t)(dl / 1000000000), (long)(dl % 1000000000)};
    pthread_mutex_lock(&L->mu);
    while (L->outstanding > 0)
        if (pthread_cond_timedwait(&L->cond, &L->mu, &ts) != 0)
            break;
    out->abandoned = L->outstanding;
    pthread_mutex_unlock(&L->mu);

    out->window_s = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    out->stopped_early = L->stopped_early;
    out->first_error = L->first_error;
    snprintf(out->first_message, sizeof out->first_message, "%s", L->first_message);
    out->errors_total = atomic_load(&L->errors_total);
    if (out->abandoned) {
        /* Callbacks may still run on the clients' threads: leave their buffers alone (the
         * caller destroys the clients, which waits for them) and report counts only. */
        for (size_t i = 0; i < spec->n_clients; i++) {
            out->ok += lcs[i].ok;
            out->errors += lcs[i].errors;
        }
        snprintf(err, errlen, "%llu calls still in flight after the drain time",
                 (unsigned long long)out->abandoned);
        return 0; /* L, lcs and slots stay allocated: calls in flight still reference them */
    }
    size_t total = 0;
    for (size_t i = 0; i < spec->n_clients; i++)
        total += lcs[i].n;
    out->lat_ns = malloc((total ? total : 1) * sizeof *out->lat_ns);
    for (size_t i = 0; i < spec->n_clients; i++) {
        if (out->lat_ns && lcs[i].n)
            memcpy(out->lat_ns + out->n_lat, lcs[i].lat, lcs[i].n * sizeof *out->lat_ns);
        out->n_lat += out->lat_ns ? lcs[i].n : 0;
        out->lost_samples += lcs[i].lost + (out->lat_ns ? 0 : lcs[i].n);
        out->ok += lcs[i].ok;
        out->errors += lcs[i].errors;
    }
    rc = 0;
done:
    if (lcs)
        for (size_t i = 0; i < spec->n_clients; i++)
            free(lcs[i].lat);
    free(lcs);
    free(slots);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cond);
    free(L);
    return rc;
}
