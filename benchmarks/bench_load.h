/* bench_load: the closed-loop load engine of hltinfer-bench.
 *
 * Keeps exactly `concurrency` asynchronous calls in flight through libhltinfer (ModelInfer via
 * hlt_client_infer_async, or ServerLive via hlt_client_server_live_async), spread round-robin
 * over the given clients: every completion records its latency and, from the completion
 * callback itself, submits the next call of its slot. Phases: warm-up (not recorded), the
 * measured window (latencies and counts of the calls that complete inside it), a cool-down
 * while the caller takes its end-of-window snapshots (load still running, nothing recorded),
 * then drain (no new submissions; waits for the calls in flight within a bounded time).
 *
 * Called by bench.c only; one run at a time per load_spec. Latencies are collected per client
 * without locks, since libhltinfer runs every callback of one client on that client's single
 * completion thread. */
#ifndef HLT_BENCH_LOAD_H
#define HLT_BENCH_LOAD_H

#include "hltinfer/client.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { LOAD_INFER, LOAD_LIVE } load_mode_t;

typedef enum { EDGE_START, EDGE_END } load_edge_t;

/* Called on the caller's thread right before the window opens and right after it closes
 * (load still running), e.g. to snapshot ModelStatistics and CPU time. */
typedef void (*load_edge_fn)(load_edge_t edge, void *arg);

typedef struct load_spec {
    load_mode_t mode;
    hlt_client_t *const *clients; /* borrowed; n_clients >= 1 */
    size_t n_clients;
    const hlt_infer_request_t *req; /* LOAD_INFER: borrowed for the whole run */
    uint32_t concurrency;
    double warmup_s;
    double duration_s;    /* time mode: length of the window */
    uint64_t requests;    /* >0: count mode, the window closes at the N-th completion */
    double max_time_s;    /* count mode: the window closes after this long in any case */
    double drain_s;       /* longest wait for the calls in flight after the window */
    uint64_t max_errors;  /* the run stops early after more errors than this */
    load_edge_fn on_edge; /* may be NULL */
    void *edge_arg;
} load_spec_t;

typedef struct load_result {
    uint64_t ok;           /* successful calls completed inside the window */
    uint64_t errors;       /* failed calls completed inside the window */
    uint64_t errors_total; /* failed calls over the whole run (warm-up, submission included) */
    uint64_t lost_samples; /* latencies not kept (out of memory) */
    uint64_t abandoned;    /* calls still in flight when the drain time ran out */
    double window_s;
    int stopped_early; /* 1: max_errors exceeded; 2: count mode hit max_time_s */
    hlt_status first_error;
    char first_message[512];
    int64_t *lat_ns; /* latencies of the successful calls of the window; owned (free) */
    size_t n_lat;
} load_result_t;

/* Runs the load. Returns 0 when the run took place (its errors are in *out, the caller judges
 * them), -1 when it could not start at all (message in err). Ownership: spec borrowed; out is
 * caller storage whose lat_ns the caller frees. Not thread-safe (one run at a time). */
int load_run(const load_spec_t *spec, load_result_t *out, char *err, size_t errlen);

#endif
