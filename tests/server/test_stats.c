/* Tests for server/stats.c: ModelStatistics counters (Triton semantics: success/fail/queue/
 * compute_* are (count, cumulative ns) per request; inference_count counts batch rows and
 * execution_count executed batches; batch_stats are per distinct batch size). */
#include "stats.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(stats, starts_at_zero)
{
    model_stats_t st;
    stats_init(&st);
    model_stats_snapshot_t s;
    memset(&s, 0xff, sizeof s);
    stats_snapshot(&st, &s);
    cr_assert_eq(s.success.count, 0);
    cr_assert_eq(s.success.ns, 0);
    cr_assert_eq(s.fail.count, 0);
    cr_assert_eq(s.queue.count, 0);
    cr_assert_eq(s.inference_count, 0);
    cr_assert_eq(s.execution_count, 0);
    cr_assert_eq(s.last_inference_ms, 0);
    cr_assert_eq(s.n_batch, 0);
    stats_destroy(&st);
}

Test(stats, success_adds_count_and_durations_per_request)
{
    model_stats_t st;
    stats_init(&st);
    uint64_t before = now_ms();
    stats_record_success(&st, 1000, 100, 10, 800, 20);
    stats_record_success(&st, 2000, 200, 20, 1600, 40);
    uint64_t after = now_ms();
    model_stats_snapshot_t s;
    stats_snapshot(&st, &s);
    cr_assert_eq(s.success.count, 2);
    cr_assert_eq(s.success.ns, 3000);
    cr_assert_eq(s.queue.count, 2);
    cr_assert_eq(s.queue.ns, 300);
    cr_assert_eq(s.compute_input.count, 2);
    cr_assert_eq(s.compute_input.ns, 30);
    cr_assert_eq(s.compute_infer.count, 2);
    cr_assert_eq(s.compute_infer.ns, 2400);
    cr_assert_eq(s.compute_output.count, 2);
    cr_assert_eq(s.compute_output.ns, 60);
    /* Wall-clock ms of the last success (Triton's last_inference); only "now-ish" is checked,
     * with an hour of slack so that a wall-clock step cannot fail the test. */
    cr_assert_gt(s.last_inference_ms + 3600 * 1000, before);
    cr_assert_lt(s.last_inference_ms, after + 3600 * 1000);
    /* Request-level records do not count executions or rows. */
    cr_assert_eq(s.execution_count, 0);
    cr_assert_eq(s.inference_count, 0);
    cr_assert_eq(s.fail.count, 0);
    stats_destroy(&st);
}

Test(stats, fail_counts_only_failures)
{
    model_stats_t st;
    stats_init(&st);
    stats_record_fail(&st, 500);
    stats_record_fail(&st, 700);
    model_stats_snapshot_t s;
    stats_snapshot(&st, &s);
    cr_assert_eq(s.fail.count, 2);
    cr_assert_eq(s.fail.ns, 1200);
    cr_assert_eq(s.success.count, 0);
    cr_assert_eq(s.queue.count, 0);
    cr_assert_eq(s.execution_count, 0);
    cr_assert_eq(s.last_inference_ms, 0, "a failure is not an inference");
    stats_destroy(&st);
}

Test(stats, execution_counts_rows_and_batches)
{
    model_stats_t st;
    stats_init(&st);
    stats_record_execution(&st, 7, 1, 2, 3);
    stats_record_execution(&st, 16, 4, 5, 6);
    stats_record_execution(&st, 7, 10, 20, 30);
    model_stats_snapshot_t s;
    stats_snapshot(&st, &s);
    cr_assert_eq(s.inference_count, 30, "inference_count sums the rows of every batch");
    cr_assert_eq(s.execution_count, 3);
    cr_assert_eq(s.n_batch, 2, "one batch_stats entry per distinct batch size");
    const batch_stat_t *b7 = NULL, *b16 = NULL;
    for (size_t i = 0; i < s.n_batch; i++) {
        if (s.batch[i].batch_size == 7)
            b7 = &s.batch[i];
        if (s.batch[i].batch_size == 16)
            b16 = &s.batch[i];
    }
    cr_assert_not_null(b7);
    cr_assert_not_null(b16);
    cr_assert_eq(b7->compute_input.count, 2);
    cr_assert_eq(b7->compute_input.ns, 11);
    cr_assert_eq(b7->compute_infer.count, 2);
    cr_assert_eq(b7->compute_infer.ns, 22);
    cr_assert_eq(b7->compute_output.count, 2);
    cr_assert_eq(b7->compute_output.ns, 33);
    cr_assert_eq(b16->compute_input.count, 1);
    cr_assert_eq(b16->compute_input.ns, 4);
    cr_assert_eq(b16->compute_infer.ns, 5);
    cr_assert_eq(b16->compute_output.ns, 6);
    /* Executions are not requests. */
    cr_assert_eq(s.success.count, 0);
    stats_destroy(&st);
}

Test(stats, batch_sizes_beyond_table_fold_into_totals_only)
{
    model_stats_t st;
    stats_init(&st);
    uint64_t rows = 0;
    for (uint64_t b = 1; b <= STATS_MAX_BATCH_SIZES + 10; b++) {
        stats_record_execution(&st, b, 1, 1, 1);
        rows += b;
    }
    stats_record_execution(&st, 1, 1, 1, 1); /* a size already in the table still counts */
    rows += 1;
    model_stats_snapshot_t s;
    stats_snapshot(&st, &s);
    cr_assert_eq(s.n_batch, STATS_MAX_BATCH_SIZES);
    cr_assert_eq(s.execution_count, STATS_MAX_BATCH_SIZES + 11);
    cr_assert_eq(s.inference_count, rows);
    for (size_t i = 0; i < s.n_batch; i++)
        cr_assert_leq(s.batch[i].batch_size, STATS_MAX_BATCH_SIZES);
    cr_assert_eq(s.batch[0].batch_size, 1);
    cr_assert_eq(s.batch[0].compute_infer.count, 2);
    stats_destroy(&st);
}

Test(stats, snapshot_is_a_copy)
{
    model_stats_t st;
    stats_init(&st);
    stats_record_fail(&st, 1);
    model_stats_snapshot_t s;
    stats_snapshot(&st, &s);
    stats_record_fail(&st, 1);
    cr_assert_eq(s.fail.count, 1);
    stats_snapshot(&st, &s);
    cr_assert_eq(s.fail.count, 2);
    stats_destroy(&st);
}

#define UPDATERS 4
#define UPDATES 5000

static void *updater(void *arg)
{
    model_stats_t *st = arg;
    for (int i = 0; i < UPDATES; i++) {
        stats_record_success(st, 2, 1, 0, 1, 0);
        stats_record_fail(st, 3);
        stats_record_execution(st, (uint64_t)(i % 3) + 1, 0, 1, 0);
    }
    return NULL;
}

Test(stats, concurrent_updates_are_not_lost, .timeout = 60)
{
    model_stats_t st;
    stats_init(&st);
    pthread_t t[UPDATERS];
    for (int i = 0; i < UPDATERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, updater, &st), 0);
    for (int i = 0; i < UPDATERS; i++)
        cr_assert_eq(pthread_join(t[i], NULL), 0);
    model_stats_snapshot_t s;
    stats_snapshot(&st, &s);
    cr_assert_eq(s.success.count, (uint64_t)UPDATERS * UPDATES);
    cr_assert_eq(s.success.ns, (uint64_t)UPDATERS * UPDATES * 2);
    cr_assert_eq(s.fail.count, (uint64_t)UPDATERS * UPDATES);
    cr_assert_eq(s.fail.ns, (uint64_t)UPDATERS * UPDATES * 3);
    cr_assert_eq(s.execution_count, (uint64_t)UPDATERS * UPDATES);
    uint64_t rows = 0;
    for (int i = 0; i < UPDATES; i++)
        rows += (uint64_t)(i % 3) + 1;
    cr_assert_eq(s.inference_count, rows * UPDATERS);
    cr_assert_eq(s.n_batch, 3);
    stats_destroy(&st);
}
