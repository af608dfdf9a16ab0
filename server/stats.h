/* stats: per-model-version inference statistics with ModelStatistics semantics (as
 * perf_analyzer and Triton read them): success/fail/queue/compute_* as (count, cumulative ns),
 * inference_count per batch row, execution_count per executed batch, per-batch-size stats and
 * the time of the last inference. Owned by a model; updated by its workers and the frontend,
 * read by the ModelStatistics RPC. Thread-safe (one mutex; one update per request/batch). */
#ifndef HLT_STATS_H
#define HLT_STATS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct stat_duration {
    uint64_t count, ns;
} stat_duration_t;

typedef struct batch_stat {
    uint64_t batch_size;
    stat_duration_t compute_input, compute_infer, compute_output;
} batch_stat_t;

#define STATS_MAX_BATCH_SIZES 64

typedef struct model_stats_snapshot {
    stat_duration_t success, fail, queue, compute_input, compute_infer, compute_output;
    uint64_t inference_count, execution_count, last_inference_ms;
    /* Time every request spent queued, whatever its outcome (served, timed out, cancelled):
     * the load signal of the admission policy. Not part of the protocol's statistics. */
    stat_duration_t waited;
    size_t n_batch;
    batch_stat_t batch[STATS_MAX_BATCH_SIZES];
} model_stats_snapshot_t;

typedef struct model_stats {
    pthread_mutex_t mu;
    model_stats_snapshot_t s;
} model_stats_t;

void stats_init(model_stats_t *st);
void stats_destroy(model_stats_t *st);
/* One request answered successfully: total_ns from receipt to reply, queue_ns waiting. */
void stats_record_success(model_stats_t *st, uint64_t total_ns, uint64_t queue_ns,
                          uint64_t input_ns, uint64_t infer_ns, uint64_t output_ns);
/* One request failed after it reached the model. */
void stats_record_fail(model_stats_t *st, uint64_t total_ns);
/* One executed batch of batch_size rows (requests' rows summed). Batch sizes beyond
 * STATS_MAX_BATCH_SIZES distinct values are folded into the counters only. */
void stats_record_execution(model_stats_t *st, uint64_t batch_size, uint64_t input_ns,
                            uint64_t infer_ns, uint64_t output_ns);
/* A request left the queue after waiting wait_ns. */
void stats_record_wait(model_stats_t *st, uint64_t wait_ns);
void stats_snapshot(model_stats_t *st, model_stats_snapshot_t *out);

#endif
