/* Statistics counters under one mutex: updated once per request and once per batch, far below
 * the cost of the request itself. */
#include "stats.h"

#include <string.h>
#include <time.h>

void stats_init(model_stats_t *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
}

void stats_destroy(model_stats_t *st)
{
    pthread_mutex_destroy(&st->mu);
}

static void add(stat_duration_t *d, uint64_t ns)
{
    d->count++;
    d->ns += ns;
}

void stats_record_success(model_stats_t *st, uint64_t total_ns, uint64_t queue_ns,
                          uint64_t input_ns, uint64_t infer_ns, uint64_t output_ns)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&st->mu);
    add(&st->s.success, total_ns);
    add(&st->s.queue, queue_ns);
    add(&st->s.compute_input, input_ns);
    add(&st->s.compute_infer, infer_ns);
    add(&st->s.compute_output, output_ns);
    st->s.last_inference_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    pthread_mutex_unlock(&st->mu);
}

void stats_record_fail(model_stats_t *st, uint64_t total_ns)
{
    pthread_mutex_lock(&st->mu);
    add(&st->s.fail, total_ns);
    pthread_mutex_unlock(&st->mu);
}

void stats_record_execution(model_stats_t *st, uint64_t batch_size, uint64_t input_ns,
                            uint64_t infer_ns, uint64_t output_ns)
{
    pthread_mutex_lock(&st->mu);
    st->s.inference_count += batch_size;
    st->s.execution_count++;
    batch_stat_t *b = NULL;
    for (size_t i = 0; i < st->s.n_batch && !b; i++)
        if (st->s.batch[i].batch_size == batch_size)
            b = &st->s.batch[i];
    if (!b && st->s.n_batch < STATS_MAX_BATCH_SIZES) {
        b = &st->s.batch[st->s.n_batch++];
        b->batch_size = batch_size;
    }
    if (b) {
        add(&b->compute_input, input_ns);
        add(&b->compute_infer, infer_ns);
        add(&b->compute_output, output_ns);
    }
    pthread_mutex_unlock(&st->mu);
}

void stats_record_wait(model_stats_t *st, uint64_t wait_ns)
{
    pthread_mutex_lock(&st->mu);
    add(&st->s.waited, wait_ns);
    pthread_mutex_unlock(&st->mu);
}

void stats_snapshot(model_stats_t *st, model_stats_snapshot_t *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->s;
    pthread_mutex_unlock(&st->mu);
}
