/* Tests for server/batcher.c: batch formation (size, delay, preferred sizes, shapes, max_jobs),
 * priorities and queue policies, deadlines and cancellation, admission limits, accounting, and
 * the blocking batcher_next used by the workers.
 *
 * batcher_poll takes the time as an argument, so every scheduling test drives its own clock
 * (T0 + offsets) and asserts exactly which jobs were dispatched or expired, in which order, and
 * the returned wake_ns. Jobs are infer_job_t structs built by hand (no gRPC, no model): two
 * config inputs x and y whose request inputs are stored in the opposite order (y first), so that
 * the shape comparison has to go through in_map. The batcher_next tests use real time only with
 * a zero delay (or an hour-long one that only a wake-up can cut short), and every wait is on a
 * condition with a bounded timeout. */
#include "batcher.h"
#include "clock.h"
#include "model_config.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ERRLEN 512
#define MAXJ 32   /* jobs a test may build; also the largest max_jobs passed to poll */
#define WAIT_S 30 /* bound on any wait for a worker thread: a hang fails instead of stalling */

#define US INT64_C(1000)
#define MS INT64_C(1000000)
#define T0 INT64_C(1000000000000) /* an arbitrary monotonic instant, far from 0 */
#define BYTES 100                 /* default msg_bytes of a job */

typedef struct tjob {
    infer_job_t job; /* first: &g_j[i].job identifies job i */
    infer_input_t in[2];
} tjob_t;

static model_config_t *g_cfg;
static batcher_t *g_b;
static tjob_t g_j[MAXJ];
static infer_job_t *g_jobs[MAXJ], *g_exp[MAXJ];
static hlt_status g_est[MAXJ];
static batch_t g_out;
static bool g_thread_running; /* a worker may still be inside the batcher: keep it alive */

static void teardown(void)
{
    if (!g_thread_running)
        batcher_destroy(g_b);
    model_config_destroy(g_cfg);
}

TestSuite(batcher, .fini = teardown, .timeout = 60);

/* ---- fixture ---- */

/* A model "trigger" with max_batch_size mbs, inputs x and y of one variable dim, and the given
 * dynamic_batching object (NULL: no section). */
static void setup_limits(int mbs, const char *dynamic_batching, size_t max_requests,
                         size_t max_bytes)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"max_batch_size\": %d, \"input\": ["
             "{\"name\": \"x\", \"data_type\": \"TYPE_FP32\", \"dims\": [-1]}, "
             "{\"name\": \"y\", \"data_type\": \"TYPE_FP32\", \"dims\": [-1]}]%s%s}",
             mbs, dynamic_batching ? ", \"dynamic_batching\": " : "",
             dynamic_batching ? dynamic_batching : "");
    char err[ERRLEN] = "";
    hlt_status st = model_config_parse("trigger", json, strlen(json), &g_cfg, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "config: %s (%s)", err, json);
    cr_assert_eq(g_cfg->n_inputs, 2);
    batcher_limits_t lim = {.max_queued_requests = max_requests, .max_queued_bytes = max_bytes};
    g_b = batcher_create(g_cfg, &lim);
    cr_assert_not_null(g_b);
}

static void setup(int mbs, const char *dynamic_batching)
{
    setup_limits(mbs, dynamic_batching, 1000, (size_t)1 << 30);
}

/* Job i with `rows` rows and non-batch dims x=[xd], y=[yd]; no deadline, no priority/timeout
 * parameters, BYTES message bytes. */
static infer_job_t *mkjob_shape(int i, int64_t rows, int64_t xd, int64_t yd)
{
    cr_assert_lt(i, MAXJ);
    tjob_t *t = &g_j[i];
    memset(t, 0, sizeof *t);
    t->in[0] = (infer_input_t){.rank = 2, .shape = {rows, yd}}; /* y */
    t->in[1] = (infer_input_t){.rank = 2, .shape = {rows, xd}}; /* x */
    infer_job_t *j = &t->job;
    j->msg.n_inputs = 2;
    j->msg.inputs = t->in;
    j->in_map[0] = 1; /* config input x -> request input 1 */
    j->in_map[1] = 0; /* config input y -> request input 0 */
    j->batch = rows;
    j->deadline_ns = INT64_MAX;
    j->msg_bytes = BYTES;
    atomic_init(&j->cancelled, false);
    return j;
}

static infer_job_t *mkjob(int i, int64_t rows)
{
    return mkjob_shape(i, rows, 4, 2);
}

static infer_job_t *J(int i)
{
    return &g_j[i].job;
}

static int job_index(const infer_job_t *j)
{
    for (int i = 0; i < MAXJ; i++)
        if (j == &g_j[i].job)
            return i;
    return -1;
}

static infer_job_t *with_priority(infer_job_t *j, uint64_t priority)
{
    j->msg.has_priority = true;
    j->msg.priority = priority;
    return j;
}

static infer_job_t *with_timeout(infer_job_t *j, int64_t timeout_us)
{
    j->msg.has_timeout = true;
    j->msg.timeout_us = timeout_us;
    return j;
}

static void submit_ok(infer_job_t *j, int64_t now)
{
    char err[ERRLEN] = "";
    hlt_status st = batcher_submit(g_b, j, now, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "submit of job %d: status %d (%s)", job_index(j), st, err);
}

/* Submit must fail with want_st and a message containing every string in want (NULL
 * terminated); the caller keeps the job, so nothing is counted as queued. */
static void submit_fails_v(int line, infer_job_t *j, int64_t now, hlt_status want_st,
                           const char *const *want)
{
    size_t queued = batcher_queued(g_b), bytes = batcher_queued_bytes(g_b);
    char err[ERRLEN] = "";
    hlt_status st = batcher_submit(g_b, j, now, err, sizeof err);
    cr_assert_eq(st, want_st, "line %d: submit of job %d: status %d (%s), want %d", line,
                 job_index(j), st, err, want_st);
    for (size_t i = 0; want[i]; i++)
        cr_assert(strstr(err, want[i]), "line %d: message \"%s\" should contain \"%s\"", line, err,
                  want[i]);
    cr_assert_eq(batcher_queued(g_b), queued, "line %d: a refused job is not queued", line);
    cr_assert_eq(batcher_queued_bytes(g_b), bytes, "line %d: a refused job holds no bytes", line);
}
#define SUBMIT_FAILS(j, now, st, ...)                                                              \
    submit_fails_v(__LINE__, (j), (now), (st), (const char *const[]){__VA_ARGS__, NULL})

/* Polls at `now` with the output poisoned, so that every field must be written. */
static void poll_at(int64_t now, size_t max_jobs)
{
    cr_assert_leq(max_jobs, MAXJ);
    for (size_t i = 0; i < MAXJ; i++) {
        g_jobs[i] = g_exp[i] = NULL;
        g_est[i] = HLT_UNKNOWN;
    }
    g_out = (batch_t){.n = 77,
                      .jobs = g_jobs,
                      .rows = -77,
                      .n_expired = 77,
                      .expired = g_exp,
                      .expired_status = g_est,
                      .wake_ns = -77};
    batcher_poll(g_b, now, max_jobs, &g_out);
}

static void poll_now(int64_t now)
{
    poll_at(now, MAXJ);
}

/* The last poll dispatched exactly jobs want[0..n) in this order, with `rows` rows, and expired
 * nothing. */
static void expect_batch_v(int line, int64_t rows, const int *want, size_t n)
{
    cr_assert_eq(g_out.n_expired, 0, "line %d: %zu jobs expired, none expected", line,
                 g_out.n_expired);
    cr_assert_eq(g_out.n, n, "line %d: batch of %zu jobs, want %zu (first: job %d)", line, g_out.n,
                 n, g_out.n ? job_index(g_jobs[0]) : -1);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(g_jobs[i], J(want[i]), "line %d: batch[%zu] is job %d, want job %d", line, i,
                     job_index(g_jobs[i]), want[i]);
    cr_assert_eq(g_out.rows, rows, "line %d: batch rows %" PRId64 ", want %" PRId64, line,
                 g_out.rows, rows);
}
#define EXPECT_BATCH(rows, ...)                                                                    \
    expect_batch_v(__LINE__, (rows), (const int[]){__VA_ARGS__},                                   \
                   sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

/* The last poll decided nothing and asked to be called again at wake_ns. */
static void expect_wait_v(int line, int64_t wake_ns)
{
    cr_assert_eq(g_out.n, 0, "line %d: batch of %zu jobs (first: job %d), want none", line, g_out.n,
                 g_out.n ? job_index(g_jobs[0]) : -1);
    cr_assert_eq(g_out.n_expired, 0, "line %d: %zu jobs expired (first: job %d), want none", line,
                 g_out.n_expired, g_out.n_expired ? job_index(g_exp[0]) : -1);
    cr_assert_eq(g_out.wake_ns, wake_ns,
                 "line %d: wake_ns = T0%+" PRId64 " ns, want T0%+" PRId64 " ns", line,
                 g_out.wake_ns - T0, wake_ns - T0);
}
#define EXPECT_WAIT(wake_ns) expect_wait_v(__LINE__, (wake_ns))
#define EXPECT_IDLE() expect_wait_v(__LINE__, INT64_MAX)

/* The last poll expired exactly jobs want[0..n) in this order, each with status st, and
 * dispatched none of them. */
static void expect_expired_v(int line, hlt_status st, const int *want, size_t n)
{
    cr_assert_eq(g_out.n_expired, n, "line %d: %zu jobs expired (first: job %d), want %zu", line,
                 g_out.n_expired, g_out.n_expired ? job_index(g_exp[0]) : -1, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(g_exp[i], J(want[i]), "line %d: expired[%zu] is job %d, want job %d", line, i,
                     job_index(g_exp[i]), want[i]);
        cr_assert_eq(g_est[i], st, "line %d: expired[%zu] status %d, want %d", line, i, g_est[i],
                     st);
    }
    for (size_t i = 0; i < g_out.n; i++)
        for (size_t k = 0; k < n; k++)
            cr_assert_neq(g_jobs[i], J(want[k]), "line %d: expired job %d is also in the batch",
                          line, want[k]);
}
#define EXPECT_EXPIRED(st, ...)                                                                    \
    expect_expired_v(__LINE__, (st), (const int[]){__VA_ARGS__},                                   \
                     sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static void expect_empty(void)
{
    cr_assert_eq(batcher_queued(g_b), 0, "queued = %zu, want 0", batcher_queued(g_b));
    cr_assert_eq(batcher_queued_bytes(g_b), 0, "queued_bytes = %zu, want 0",
                 batcher_queued_bytes(g_b));
}

/* ---- without dynamic batching ---- */

Test(batcher, without_dynamic_batching_dispatches_one_job_per_batch_in_arrival_order)
{
    setup(8, NULL);
    submit_ok(mkjob(0, 1), T0);
    submit_ok(mkjob(1, 2), T0 + 1);
    submit_ok(mkjob(2, 1), T0 + 2);
    poll_now(T0 + 3);
    EXPECT_BATCH(1, 0);
    poll_now(T0 + 3);
    EXPECT_BATCH(2, 1);
    poll_now(T0 + 3);
    EXPECT_BATCH(1, 2);
    poll_now(T0 + 3);
    EXPECT_IDLE();
    expect_empty();
}

Test(batcher, max_batch_size_zero_dispatches_one_job_per_batch_even_with_dynamic_batching)
{
    setup(0, "{\"max_queue_delay_microseconds\": 1000, \"preferred_batch_size\": [2]}");
    for (int i = 0; i < 3; i++)
        submit_ok(mkjob(i, 1), T0 + i);
    for (int i = 0; i < 3; i++) {
        poll_now(T0 + 3); /* long before the delay: it does not apply */
        EXPECT_BATCH(1, i);
    }
    poll_now(T0 + 3);
    EXPECT_IDLE();
    expect_empty();
}

Test(batcher, empty_queue_is_idle)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100}");
    poll_now(T0);
    EXPECT_IDLE();
    expect_empty();
}

/* ---- batch formation by size ---- */

Test(batcher, dispatches_at_once_when_rows_reach_max_batch_size)
{
    setup(4, "{\"max_queue_delay_microseconds\": 1000000}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000000 * US);
    submit_ok(mkjob(1, 1), T0 + 1 * US);
    poll_now(T0 + 1 * US);
    EXPECT_WAIT(T0 + 1000000 * US);
    submit_ok(mkjob(2, 2), T0 + 2 * US);
    poll_now(T0 + 2 * US);
    EXPECT_BATCH(4, 0, 1, 2);
    poll_now(T0 + 2 * US);
    EXPECT_IDLE();
    expect_empty();
}

Test(batcher, job_that_does_not_fit_stays_for_the_next_batch)
{
    setup(4, "{\"max_queue_delay_microseconds\": 100}");
    submit_ok(mkjob(0, 2), T0);
    submit_ok(mkjob(1, 1), T0 + 1 * US);
    submit_ok(mkjob(2, 3), T0 + 2 * US);
    /* 2 + 1 rows, and job 2's 3 rows would make 6 > 4: the batch cannot grow, it goes now. */
    poll_now(T0 + 2 * US);
    EXPECT_BATCH(3, 0, 1);
    /* Job 2 alone (3 of 4 rows) waits for its own delay. */
    poll_now(T0 + 2 * US);
    EXPECT_WAIT(T0 + 102 * US);
    poll_now(T0 + 102 * US - 1);
    EXPECT_WAIT(T0 + 102 * US);
    poll_now(T0 + 102 * US);
    EXPECT_BATCH(3, 2);
    expect_empty();
}

Test(batcher, multi_row_jobs_count_their_rows)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000}");
    submit_ok(mkjob(0, 3), T0);
    submit_ok(mkjob(1, 3), T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000 * US); /* 6 of 8 rows */
    submit_ok(mkjob(2, 2), T0 + 1);
    poll_now(T0 + 1);
    EXPECT_BATCH(8, 0, 1, 2);
    expect_empty();
}

Test(batcher, single_job_of_max_batch_size_goes_at_once)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000}");
    submit_ok(mkjob(0, 8), T0);
    poll_now(T0);
    EXPECT_BATCH(8, 0);
    expect_empty();
}

/* ---- batch formation by delay ---- */

Test(batcher, flushes_everything_pending_on_max_queue_delay)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100}");
    submit_ok(mkjob(0, 1), T0);
    submit_ok(mkjob(1, 2), T0 + 10 * US);
    submit_ok(mkjob(2, 1), T0 + 20 * US);
    poll_now(T0 + 50 * US);
    EXPECT_WAIT(T0 + 100 * US); /* the oldest job's enqueue + delay */
    poll_now(T0 + 100 * US - 1);
    EXPECT_WAIT(T0 + 100 * US);
    poll_now(T0 + 100 * US);
    EXPECT_BATCH(4, 0, 1, 2);
    poll_now(T0 + 100 * US);
    EXPECT_IDLE();
    expect_empty();
}

Test(batcher, zero_delay_dispatches_immediately)
{
    setup(8, "{}");
    submit_ok(mkjob(0, 1), T0);
    submit_ok(mkjob(1, 2), T0);
    poll_now(T0);
    EXPECT_BATCH(3, 0, 1);
    submit_ok(mkjob(2, 1), T0 + 1);
    poll_now(T0 + 1);
    EXPECT_BATCH(1, 2);
    expect_empty();
}

/* ---- preferred batch sizes ---- */

Test(batcher, preferred_size_prefix_dispatches_at_once)
{
    setup(16, "{\"preferred_batch_size\": [4, 8], \"max_queue_delay_microseconds\": 1000000}");
    for (int i = 0; i < 5; i++)
        submit_ok(mkjob(i, 1), T0);
    poll_now(T0);
    EXPECT_BATCH(4, 0, 1, 2, 3);
    /* The fifth row is no preferred size: it waits for the delay. */
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000000 * US);
    poll_now(T0 + 1000000 * US);
    EXPECT_BATCH(1, 4);
    expect_empty();
}

Test(batcher, largest_preferred_prefix_wins)
{
    setup(16, "{\"preferred_batch_size\": [4, 8], \"max_queue_delay_microseconds\": 1000000}");
    for (int i = 0; i < 9; i++)
        submit_ok(mkjob(i, 1), T0);
    poll_now(T0);
    EXPECT_BATCH(8, 0, 1, 2, 3, 4, 5, 6, 7);
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000000 * US);
}

Test(batcher, preferred_size_needs_an_exact_prefix_with_multi_row_jobs)
{
    setup(16, "{\"preferred_batch_size\": [4], \"max_queue_delay_microseconds\": 1000}");
    /* Prefixes 3 and 5 rows skip over 4: no preferred batch. */
    submit_ok(mkjob(0, 3), T0);
    submit_ok(mkjob(1, 2), T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000 * US);
    submit_ok(mkjob(2, 1), T0 + 1);
    poll_now(T0 + 1);
    EXPECT_WAIT(T0 + 1000 * US); /* 3, 5, 6 */
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(6, 0, 1, 2);

    /* Prefix 1 + 3 = 4 rows is preferred: those two go, the third stays. */
    submit_ok(mkjob(3, 1), T0 + 2000 * US);
    submit_ok(mkjob(4, 3), T0 + 2000 * US);
    submit_ok(mkjob(5, 2), T0 + 2000 * US);
    poll_now(T0 + 2000 * US);
    EXPECT_BATCH(4, 3, 4);
    poll_now(T0 + 2000 * US);
    EXPECT_WAIT(T0 + 3000 * US);
}

/* ---- priorities ---- */

Test(batcher, higher_priority_requests_lead_the_batch)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100, \"priority_levels\": 2, "
             "\"default_priority_level\": 2}");
    submit_ok(with_priority(mkjob(0, 1), 2), T0);
    submit_ok(with_priority(mkjob(1, 1), 2), T0 + 1);
    submit_ok(with_priority(mkjob(2, 1), 1), T0 + 2);
    submit_ok(with_priority(mkjob(3, 1), 1), T0 + 3);
    poll_now(T0 + 50 * US);
    EXPECT_WAIT(T0 + 100 * US); /* oldest is job 0, at the lower level */
    poll_now(T0 + 100 * US);
    EXPECT_BATCH(4, 2, 3, 0, 1);
    expect_empty();
}

Test(batcher, higher_priority_requests_are_dispatched_first)
{
    setup(2, "{\"max_queue_delay_microseconds\": 100, \"priority_levels\": 2, "
             "\"default_priority_level\": 2}");
    submit_ok(with_priority(mkjob(0, 1), 2), T0);
    submit_ok(with_priority(mkjob(1, 1), 2), T0 + 1);
    submit_ok(with_priority(mkjob(2, 1), 1), T0 + 2);
    submit_ok(with_priority(mkjob(3, 1), 1), T0 + 3);
    poll_now(T0 + 4);
    EXPECT_BATCH(2, 2, 3);
    poll_now(T0 + 4);
    EXPECT_BATCH(2, 0, 1);
    expect_empty();
}

Test(batcher, priority_zero_or_absent_means_default_priority_level)
{
    setup(2, "{\"max_queue_delay_microseconds\": 100, \"priority_levels\": 2, "
             "\"default_priority_level\": 2}");
    submit_ok(with_priority(mkjob(0, 1), 0), T0); /* -> level 2 */
    submit_ok(with_priority(mkjob(1, 1), 1), T0 + 1);
    submit_ok(mkjob(2, 1), T0 + 2); /* no priority parameter -> level 2, behind job 0 */
    poll_now(T0 + 3);
    EXPECT_BATCH(2, 1, 0);
    poll_now(T0 + 3);
    EXPECT_WAIT(T0 + 2 + 100 * US);
    poll_now(T0 + 2 + 100 * US);
    EXPECT_BATCH(1, 2);
    expect_empty();
}

Test(batcher, default_priority_level_one_puts_unprioritised_requests_first)
{
    setup(2, "{\"max_queue_delay_microseconds\": 100, \"priority_levels\": 2, "
             "\"default_priority_level\": 1}");
    submit_ok(with_priority(mkjob(0, 1), 2), T0);
    submit_ok(with_priority(mkjob(1, 1), 0), T0 + 1); /* -> level 1 */
    submit_ok(mkjob(2, 1), T0 + 2);                   /* -> level 1 */
    poll_now(T0 + 3);
    EXPECT_BATCH(2, 1, 2);
    poll_now(T0 + 3);
    EXPECT_WAIT(T0 + 100 * US);
}

Test(batcher, priority_above_levels_is_invalid_argument)
{
    setup(8, "{\"priority_levels\": 2, \"default_priority_level\": 1}");
    infer_job_t *j = with_priority(mkjob(0, 1), 3);
    SUBMIT_FAILS(j, T0, HLT_INVALID_ARGUMENT, "'trigger'", "priority 3", "1..2");
    /* The caller kept the job and may submit it again, corrected. */
    j->msg.priority = 2;
    submit_ok(j, T0 + 1);
    poll_now(T0 + 1);
    EXPECT_BATCH(1, 0);
    expect_empty();
}

/* batcher.h: INVALID_ARGUMENT for a priority outside 1..priority_levels, whatever the number
 * of levels. */
Test(batcher, priority_above_a_single_configured_level_is_invalid_argument)
{
    setup(8, "{\"priority_levels\": 1, \"default_priority_level\": 1}");
    SUBMIT_FAILS(with_priority(mkjob(0, 1), 2), T0, HLT_INVALID_ARGUMENT, "'trigger'",
                 "priority 2");
    expect_empty();
}

/* ---- queue policies ---- */

Test(batcher, queue_timeout_reject_expires_without_computing)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000000, \"default_queue_policy\": "
             "{\"timeout_action\": \"REJECT\", \"default_timeout_microseconds\": 100}}");
    submit_ok(mkjob(0, 1), T0);
    submit_ok(mkjob(1, 1), T0 + 50 * US);
    poll_now(T0 + 10 * US);
    EXPECT_WAIT(T0 + 100 * US);
    poll_now(T0 + 100 * US - 1);
    EXPECT_WAIT(T0 + 100 * US);
    poll_now(T0 + 100 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 0);
    cr_assert_eq(g_out.n, 0);
    cr_assert_eq(batcher_queued(g_b), 1);
    poll_now(T0 + 100 * US);
    EXPECT_WAIT(T0 + 150 * US);
    poll_now(T0 + 150 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 1);
    expect_empty();
}

Test(batcher, queue_timeout_delay_moves_the_job_behind_the_others)
{
    setup(2, "{\"max_queue_delay_microseconds\": 1000, \"default_queue_policy\": "
             "{\"timeout_action\": \"DELAY\", \"default_timeout_microseconds\": 100}}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 100 * US);
    /* Timed out: not expired, and no longer a reason to hurry (it waits for the delay). */
    poll_now(T0 + 100 * US);
    EXPECT_WAIT(T0 + 1000 * US);
    cr_assert_eq(batcher_queued(g_b), 1);
    /* Two fresh jobs fill a batch of 2 ahead of the delayed one. */
    submit_ok(mkjob(1, 1), T0 + 200 * US);
    submit_ok(mkjob(2, 1), T0 + 201 * US);
    poll_now(T0 + 201 * US);
    EXPECT_BATCH(2, 1, 2);
    poll_now(T0 + 201 * US);
    EXPECT_WAIT(T0 + 1000 * US);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(1, 0);
    expect_empty();
}

Test(batcher, delayed_jobs_go_behind_fresh_ones_in_the_same_batch)
{
    setup(2, "{\"max_queue_delay_microseconds\": 1000, \"default_queue_policy\": "
             "{\"timeout_action\": \"DELAY\", \"default_timeout_microseconds\": 100}}");
    submit_ok(mkjob(0, 1), T0);
    submit_ok(mkjob(1, 1), T0 + 50 * US);
    poll_now(T0 + 100 * US); /* job 0 timed out, job 1 not yet: job 1 leads */
    EXPECT_BATCH(2, 1, 0);
    /* Delayed jobs keep their order among themselves. */
    submit_ok(mkjob(2, 1), T0 + 1000 * US);
    submit_ok(mkjob(3, 1), T0 + 1050 * US);
    poll_now(T0 + 1200 * US);
    EXPECT_BATCH(2, 2, 3);
    expect_empty();
}

Test(batcher, timeout_override_may_shorten_but_not_lengthen_the_default)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000000, \"default_queue_policy\": "
             "{\"default_timeout_microseconds\": 100, \"allow_timeout_override\": true}}");
    submit_ok(with_timeout(mkjob(0, 1), 50), T0);
    submit_ok(with_timeout(mkjob(1, 1), 500), T0);
    submit_ok(mkjob(2, 1), T0 + 10 * US);
    poll_now(T0);
    EXPECT_WAIT(T0 + 50 * US);
    poll_now(T0 + 50 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 0);
    poll_now(T0 + 50 * US);
    EXPECT_WAIT(T0 + 100 * US); /* job 1 keeps the default, not its longer 500 us */
    poll_now(T0 + 100 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 1);
    poll_now(T0 + 100 * US);
    EXPECT_WAIT(T0 + 110 * US);
    poll_now(T0 + 110 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 2);
    expect_empty();
}

Test(batcher, request_timeout_is_ignored_without_override)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000000, \"default_queue_policy\": "
             "{\"default_timeout_microseconds\": 100}}");
    submit_ok(with_timeout(mkjob(0, 1), 50), T0);
    poll_now(T0 + 50 * US);
    EXPECT_WAIT(T0 + 100 * US);
    poll_now(T0 + 100 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 0);
    expect_empty();
}

Test(batcher, request_timeout_is_ignored_without_queue_policy)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000}");
    submit_ok(with_timeout(mkjob(0, 1), 50), T0);
    poll_now(T0 + 50 * US);
    EXPECT_WAIT(T0 + 1000 * US);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(1, 0);
    expect_empty();
}

/* The request timeout is a client-supplied int64 (microseconds): one too large for the
 * nanosecond clock means "no timeout in practice", never a deadline that wrapped into the past
 * (nor, under UBSan, a signed overflow). */
Test(batcher, huge_request_timeout_does_not_overflow)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000, \"default_queue_policy\": "
             "{\"allow_timeout_override\": true}}");
    submit_ok(with_timeout(mkjob(0, 1), INT64_MAX), T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000 * US);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(1, 0);
    expect_empty();
}

Test(batcher, huge_default_timeout_does_not_overflow)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000, \"default_queue_policy\": "
             "{\"default_timeout_microseconds\": 9223372036854775807}}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000 * US);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(1, 0);
    expect_empty();
}

/* A delay too long for the nanosecond clock waits for a full batch (or a submit), it does not
 * wrap into "dispatch now". */
Test(batcher, huge_max_queue_delay_does_not_overflow)
{
    setup(8, "{\"max_queue_delay_microseconds\": 9223372036854775807}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0 + 1);
    cr_assert_eq(g_out.n, 0, "dispatched at once: the delay wrapped around");
    cr_assert_eq(g_out.n_expired, 0);
    cr_assert_geq(g_out.wake_ns, T0 + 3600 * 1000 * MS, "wake_ns = %" PRId64, g_out.wake_ns);
    submit_ok(mkjob(1, 7), T0 + 2);
    poll_now(T0 + 2);
    EXPECT_BATCH(8, 0, 1);
    expect_empty();
}

Test(batcher, per_level_queue_policy_applies_to_its_level_only)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000000, \"priority_levels\": 2, "
             "\"default_priority_level\": 2, \"priority_queue_policy\": "
             "{\"1\": {\"default_timeout_microseconds\": 100}}}");
    submit_ok(with_priority(mkjob(0, 1), 1), T0);
    submit_ok(with_priority(mkjob(1, 1), 2), T0);
    poll_now(T0 + 100 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 0);
    poll_now(T0 + 100 * US);
    EXPECT_WAIT(T0 + 1000000 * US);
    poll_now(T0 + 1000000 * US);
    EXPECT_BATCH(1, 1);
    expect_empty();
}

Test(batcher, max_queue_size_per_level_is_unavailable)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000, \"priority_levels\": 2, "
             "\"default_priority_level\": 2, \"default_queue_policy\": {\"max_queue_size\": 2}, "
             "\"priority_queue_policy\": {\"1\": {\"max_queue_size\": 1}}}");
    submit_ok(with_priority(mkjob(0, 1), 1), T0);
    SUBMIT_FAILS(with_priority(mkjob(1, 1), 1), T0, HLT_UNAVAILABLE, "'trigger'",
                 "maximum queue size 1", "priority level 1");
    submit_ok(with_priority(mkjob(2, 1), 2), T0);
    submit_ok(mkjob(3, 1), T0); /* default level 2 */
    SUBMIT_FAILS(with_priority(mkjob(4, 1), 2), T0, HLT_UNAVAILABLE, "'trigger'",
                 "maximum queue size 2", "priority level 2");
    cr_assert_eq(batcher_queued(g_b), 3);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(3, 0, 2, 3);
    /* Room again: the refused jobs, kept by the caller, go in. */
    submit_ok(J(1), T0 + 1000 * US);
    submit_ok(J(4), T0 + 1000 * US);
    poll_now(T0 + 2000 * US);
    EXPECT_BATCH(2, 1, 4);
    expect_empty();
}

/* A job whose queue timeout passed with DELAY is still in its level's queue (Triton counts its
 * delayed requests in max_queue_size). */
Test(batcher, max_queue_size_counts_delayed_jobs)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000, \"default_queue_policy\": "
             "{\"timeout_action\": \"DELAY\", \"default_timeout_microseconds\": 100, "
             "\"max_queue_size\": 1}}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0 + 100 * US); /* job 0 is now delayed */
    EXPECT_WAIT(T0 + 1000 * US);
    SUBMIT_FAILS(mkjob(1, 1), T0 + 100 * US, HLT_UNAVAILABLE, "'trigger'", "maximum queue size 1");
}

Test(batcher, max_queued_requests_is_unavailable_and_caller_keeps_the_job)
{
    setup_limits(8, "{\"max_queue_delay_microseconds\": 1000}", 2, (size_t)1 << 30);
    submit_ok(mkjob(0, 1), T0);
    submit_ok(mkjob(1, 1), T0);
    infer_job_t *j2 = mkjob(2, 1);
    SUBMIT_FAILS(j2, T0, HLT_UNAVAILABLE, "'trigger'", "queue full", "2 requests");
    cr_assert_null(j2->next, "a refused job is not linked into a queue");
    cr_assert_null(j2->prev);
    cr_assert_eq(batcher_queued(g_b), 2);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(2, 0, 1);
    submit_ok(j2, T0 + 1000 * US);
    poll_now(T0 + 2000 * US);
    EXPECT_BATCH(1, 2);
    expect_empty();
}

Test(batcher, max_queued_bytes_is_unavailable)
{
    setup_limits(8, "{\"max_queue_delay_microseconds\": 1000}", 100, 250);
    submit_ok(mkjob(0, 1), T0);
    submit_ok(mkjob(1, 1), T0);
    cr_assert_eq(batcher_queued_bytes(g_b), 2 * BYTES);
    SUBMIT_FAILS(mkjob(2, 1), T0, HLT_UNAVAILABLE, "'trigger'", "200 bytes", "limit 250");
    /* Exactly at the limit is allowed. */
    infer_job_t *j3 = mkjob(3, 1);
    j3->msg_bytes = 50;
    submit_ok(j3, T0);
    cr_assert_eq(batcher_queued_bytes(g_b), 250);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(3, 0, 1, 3);
    expect_empty();
}

Test(batcher, oversize_request_is_admitted_into_an_empty_queue)
{
    setup_limits(8, "{\"max_queue_delay_microseconds\": 1000}", 100, 50);
    infer_job_t *j0 = mkjob(0, 1);
    j0->msg_bytes = 1000;
    submit_ok(j0, T0);
    cr_assert_eq(batcher_queued_bytes(g_b), 1000);
    infer_job_t *j1 = mkjob(1, 1);
    j1->msg_bytes = 1;
    SUBMIT_FAILS(j1, T0, HLT_UNAVAILABLE, "'trigger'", "limit 50");
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(1, 0);
    expect_empty();
    submit_ok(j1, T0 + 1000 * US);
    poll_now(T0 + 2000 * US);
    EXPECT_BATCH(1, 1);
    expect_empty();
}

/* ---- deadlines ---- */

Test(batcher, job_past_its_deadline_expires)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000}");
    infer_job_t *j0 = mkjob(0, 1);
    j0->deadline_ns = T0 + 30 * US;
    submit_ok(j0, T0);
    submit_ok(mkjob(1, 1), T0);
    poll_now(T0 + 30 * US - 1);
    EXPECT_WAIT(T0 + 30 * US);
    poll_now(T0 + 30 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 0);
    cr_assert_eq(batcher_queued(g_b), 1);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(1, 1);
    expect_empty();
}

Test(batcher, job_submitted_past_its_deadline_expires_on_the_next_poll)
{
    setup(8, "{}");
    infer_job_t *j0 = mkjob(0, 1);
    j0->deadline_ns = T0;
    submit_ok(j0, T0);
    poll_now(T0);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 0);
    cr_assert_eq(g_out.n, 0);
    expect_empty();
}

Test(batcher, forming_batch_never_waits_past_its_earliest_deadline)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000}");
    submit_ok(mkjob(0, 1), T0);
    infer_job_t *j1 = mkjob(1, 1);
    j1->deadline_ns = T0 + 500 * US;
    submit_ok(j1, T0 + 10 * US);
    poll_now(T0 + 20 * US);
    EXPECT_WAIT(T0 + 500 * US); /* min(oldest + delay, deadline - no estimate yet) */

    /* With an execution estimate the batch has to leave that much earlier. */
    batcher_note_exec_time(g_b, 100 * US);
    poll_now(T0 + 20 * US);
    EXPECT_WAIT(T0 + 400 * US);
    batcher_note_exec_time(g_b, 100 * US);
    poll_now(T0 + 20 * US);
    EXPECT_WAIT(T0 + 400 * US);
    poll_now(T0 + 400 * US - 1);
    EXPECT_WAIT(T0 + 400 * US);
    poll_now(T0 + 400 * US);
    EXPECT_BATCH(2, 0, 1);
    expect_empty();
}

Test(batcher, far_deadline_does_not_shorten_the_delay)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000}");
    batcher_note_exec_time(g_b, 100 * US);
    infer_job_t *j0 = mkjob(0, 1);
    j0->deadline_ns = T0 + 5000 * US;
    submit_ok(j0, T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 1000 * US);
    poll_now(T0 + 1000 * US);
    EXPECT_BATCH(1, 0);
    expect_empty();
}

/* batcher.h: when n == 0, wake_ns is the next instant a decision can change; INT64_MAX would
 * mean that only a submit can. After expiring jobs, the jobs still queued remain due (here at
 * once, then at their delay), so a caller that sleeps until wake_ns must not sleep forever. */
Test(batcher, poll_that_expires_jobs_still_reports_when_the_rest_is_due)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100}");
    infer_job_t *j0 = mkjob(0, 1);
    j0->deadline_ns = T0 + 10 * US;
    submit_ok(j0, T0);
    submit_ok(mkjob(1, 1), T0);
    poll_now(T0 + 10 * US);
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 0);
    cr_assert(g_out.n > 0 || g_out.wake_ns <= T0 + 100 * US,
              "job 1 is due at T0+100us but wake_ns = %" PRId64, g_out.wake_ns);

    infer_job_t *j2 = mkjob(2, 1);
    j2->deadline_ns = T0 + 300 * US;
    submit_ok(j2, T0 + 200 * US);
    submit_ok(mkjob(3, 1), T0 + 200 * US);
    cr_assert_eq(batcher_queued(g_b), 3);
    poll_now(T0 + 300 * US); /* job 2 expires; jobs 1 and 3 are overdue */
    EXPECT_EXPIRED(HLT_DEADLINE_EXCEEDED, 2);
    cr_assert(g_out.n > 0 || g_out.wake_ns <= T0 + 300 * US,
              "jobs 1 and 3 are due now but wake_ns = %" PRId64, g_out.wake_ns);
}

/* ---- cancellation ---- */

Test(batcher, cancelled_job_is_expired_with_cancelled_and_never_batched)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000}");
    for (int i = 0; i < 3; i++)
        submit_ok(mkjob(i, 1), T0);
    poll_now(T0 + 1);
    EXPECT_WAIT(T0 + 1000 * US);
    atomic_store(&J(1)->cancelled, true);
    poll_now(T0 + 1000 * US);
    EXPECT_EXPIRED(HLT_CANCELLED, 1);
    cr_assert_eq(batcher_queued(g_b), g_out.n ? 0 : 2);
    if (g_out.n == 0) /* the batch may come with the expiry or on the next poll */
        poll_now(T0 + 1000 * US);
    EXPECT_BATCH(2, 0, 2);
    expect_empty();
}

Test(batcher, cancelled_delayed_job_is_expired)
{
    setup(8, "{\"max_queue_delay_microseconds\": 1000, \"default_queue_policy\": "
             "{\"timeout_action\": \"DELAY\", \"default_timeout_microseconds\": 100}}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0 + 100 * US);
    EXPECT_WAIT(T0 + 1000 * US);
    atomic_store(&J(0)->cancelled, true);
    poll_now(T0 + 200 * US);
    EXPECT_EXPIRED(HLT_CANCELLED, 0);
    expect_empty();
}

Test(batcher, cancellation_wins_over_an_expired_deadline)
{
    setup(8, "{}");
    infer_job_t *j0 = mkjob(0, 1);
    j0->deadline_ns = T0;
    submit_ok(j0, T0);
    atomic_store(&j0->cancelled, true);
    poll_now(T0 + 1);
    EXPECT_EXPIRED(HLT_CANCELLED, 0);
    expect_empty();
}

/* ---- shapes ---- */

Test(batcher, different_shapes_never_share_a_batch)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100}");
    submit_ok(mkjob_shape(0, 1, 3, 2), T0);
    submit_ok(mkjob_shape(1, 1, 5, 2), T0); /* differs in x */
    submit_ok(mkjob_shape(2, 2, 3, 2), T0);
    submit_ok(mkjob_shape(3, 1, 3, 7), T0); /* differs in y (request input 0, via in_map) */
    submit_ok(mkjob_shape(4, 1, 5, 2), T0);
    poll_now(T0 + 50 * US);
    EXPECT_WAIT(T0 + 100 * US);
    poll_now(T0 + 100 * US);
    EXPECT_BATCH(3, 0, 2);
    poll_now(T0 + 100 * US);
    EXPECT_BATCH(2, 1, 4);
    poll_now(T0 + 100 * US);
    EXPECT_BATCH(1, 3);
    poll_now(T0 + 100 * US);
    EXPECT_IDLE();
    expect_empty();
}

Test(batcher, full_batch_of_one_shape_skips_other_shapes)
{
    setup(2, "{\"max_queue_delay_microseconds\": 1000}");
    submit_ok(mkjob_shape(0, 1, 3, 2), T0);
    submit_ok(mkjob_shape(1, 1, 5, 2), T0 + 1);
    submit_ok(mkjob_shape(2, 1, 3, 2), T0 + 2);
    poll_now(T0 + 2);
    EXPECT_BATCH(2, 0, 2);
    poll_now(T0 + 2);
    EXPECT_WAIT(T0 + 1 + 1000 * US);
    poll_now(T0 + 1 + 1000 * US);
    EXPECT_BATCH(1, 1);
    expect_empty();
}

/* ---- max_jobs ---- */

Test(batcher, batch_holds_at_most_max_jobs)
{
    setup(16, "{}");
    for (int i = 0; i < 5; i++)
        submit_ok(mkjob(i, 1), T0);
    poll_at(T0, 2);
    EXPECT_BATCH(2, 0, 1);
    poll_at(T0, 2);
    EXPECT_BATCH(2, 2, 3);
    poll_at(T0, 2);
    EXPECT_BATCH(1, 4);
    poll_at(T0, 2);
    EXPECT_IDLE();
    expect_empty();
}

Test(batcher, max_jobs_bounds_the_expired_list_too)
{
    setup(16, "{\"max_queue_delay_microseconds\": 1000}");
    for (int i = 0; i < 4; i++)
        submit_ok(mkjob(i, 1), T0);
    for (int i = 0; i < 3; i++)
        atomic_store(&J(i)->cancelled, true);
    poll_at(T0 + 1, 2);
    EXPECT_EXPIRED(HLT_CANCELLED, 0, 1);
    cr_assert_eq(g_out.n, 0);
    poll_at(T0 + 1, 2);
    EXPECT_EXPIRED(HLT_CANCELLED, 2);
    cr_assert_eq(batcher_queued(g_b), g_out.n ? 0 : 1);
    if (g_out.n == 0)
        poll_at(T0 + 1, 2);
    EXPECT_WAIT(T0 + 1000 * US);
    poll_at(T0 + 1000 * US, 2);
    EXPECT_BATCH(1, 3);
    expect_empty();
}

/* ---- accounting ---- */

Test(batcher, queued_and_queued_bytes_return_to_zero)
{
    setup(4, "{\"max_queue_delay_microseconds\": 1000}");
    expect_empty();
    size_t sizes[5] = {10, 20, 30, 40, 50}, total = 0;
    for (int i = 0; i < 5; i++) {
        infer_job_t *j = mkjob(i, 1);
        j->msg_bytes = sizes[i];
        submit_ok(j, T0);
        total += sizes[i];
        cr_assert_eq(batcher_queued(g_b), (size_t)i + 1);
        cr_assert_eq(batcher_queued_bytes(g_b), total);
    }
    atomic_store(&J(4)->cancelled, true);
    poll_now(T0);
    EXPECT_EXPIRED(HLT_CANCELLED, 4);
    cr_assert_eq(batcher_queued(g_b), 4);
    cr_assert_eq(batcher_queued_bytes(g_b), 100);
    poll_now(T0);
    EXPECT_BATCH(4, 0, 1, 2, 3);
    expect_empty();
}

/* ---- close ---- */

Test(batcher, submit_after_close_is_unavailable)
{
    setup(8, "{}");
    batcher_close(g_b);
    SUBMIT_FAILS(mkjob(0, 1), T0, HLT_UNAVAILABLE, "'trigger'");
    expect_empty();
}

Test(batcher, destroy_accepts_null)
{
    batcher_destroy(NULL);
}

static infer_job_t *g_njobs[MAXJ], *g_nexp[MAXJ];
static hlt_status g_nest[MAXJ];

static bool next_now(batch_t *out)
{
    *out = (batch_t){.jobs = g_njobs, .expired = g_nexp, .expired_status = g_nest};
    return batcher_next(g_b, 8, out);
}

Test(batcher, next_drains_queued_jobs_after_close_then_returns_false)
{
    setup(2, "{}");
    for (int i = 0; i < 3; i++)
        submit_ok(mkjob(i, 1), hlt_now_ns());
    batcher_close(g_b);
    SUBMIT_FAILS(mkjob(3, 1), hlt_now_ns(), HLT_UNAVAILABLE, "'trigger'");
    batch_t out;
    cr_assert(next_now(&out));
    cr_assert_eq(out.n, 2);
    cr_assert_eq(out.n_expired, 0);
    cr_assert_eq(g_njobs[0], J(0));
    cr_assert_eq(g_njobs[1], J(1));
    cr_assert(next_now(&out));
    cr_assert_eq(out.n, 1);
    cr_assert_eq(g_njobs[0], J(2));
    cr_assert_not(next_now(&out));
    expect_empty();
}

/* ---- batcher_next with a worker thread ---- */

typedef struct worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, done, ret;
    infer_job_t *jobs[MAXJ], *exp[MAXJ];
    hlt_status est[MAXJ];
    batch_t out;
} worker_t;

static worker_t g_w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->started = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    w->out = (batch_t){.jobs = w->jobs, .expired = w->exp, .expired_status = w->est};
    bool r = batcher_next(g_b, 8, &w->out);
    pthread_mutex_lock(&w->mu);
    w->ret = r;
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void start_worker(void)
{
    g_thread_running = true;
    cr_assert_eq(pthread_create(&g_w.th, NULL, worker_main, &g_w), 0);
}

/* Waits (bounded) until *flag is set by the worker. */
static bool wait_worker(const bool *flag)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&g_w.mu);
    int rc = 0;
    while (!*flag && rc == 0)
        rc = pthread_cond_timedwait(&g_w.cv, &g_w.mu, &until);
    bool ok = *flag;
    pthread_mutex_unlock(&g_w.mu);
    return ok;
}

static void join_worker(void)
{
    cr_assert_eq(pthread_join(g_w.th, NULL), 0);
    g_thread_running = false;
}

Test(batcher, next_wakes_a_waiting_worker_on_submit)
{
    setup(8, "{}");
    start_worker();
    cr_assert(wait_worker(&g_w.started), "the worker did not start");
    /* Whether it is already waiting or about to, the submit must reach it. */
    submit_ok(mkjob(0, 1), hlt_now_ns());
    cr_assert(wait_worker(&g_w.done), "batcher_next did not return after a submit");
    join_worker();
    cr_assert(g_w.ret);
    cr_assert_eq(g_w.out.n, 1);
    cr_assert_eq(g_w.out.n_expired, 0);
    cr_assert_eq(g_w.jobs[0], J(0));
    expect_empty();
}

Test(batcher, kick_wakes_a_waiting_worker_to_answer_a_cancellation)
{
    setup(8, "{\"max_queue_delay_microseconds\": 3600000000}"); /* an hour */
    submit_ok(mkjob(0, 1), hlt_now_ns());
    start_worker();
    cr_assert(wait_worker(&g_w.started), "the worker did not start");
    atomic_store(&J(0)->cancelled, true);
    batcher_kick(g_b);
    cr_assert(wait_worker(&g_w.done), "batcher_next did not return after a kick");
    join_worker();
    cr_assert(g_w.ret);
    cr_assert_eq(g_w.out.n, 0);
    cr_assert_eq(g_w.out.n_expired, 1);
    cr_assert_eq(g_w.exp[0], J(0));
    cr_assert_eq(g_w.est[0], HLT_CANCELLED);
    expect_empty();
}

Test(batcher, close_wakes_an_idle_worker_which_returns_false)
{
    setup(8, "{}");
    start_worker();
    cr_assert(wait_worker(&g_w.started), "the worker did not start");
    batcher_close(g_b);
    cr_assert(wait_worker(&g_w.done), "batcher_next did not return after close");
    join_worker();
    cr_assert_not(g_w.ret);
    expect_empty();
}

/* ---- adaptive delay ---- */

Test(batcher, sparse_arrivals_do_not_wait_for_company)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0);
    EXPECT_WAIT(T0 + 100000); /* nothing known about the arrival rate yet: wait */
    poll_now(T0 + 100000);
    EXPECT_BATCH(1, 0);
    /* The next request arrives 1 ms later, ten delays apart: a closed loop of one client. */
    submit_ok(mkjob(1, 1), T0 + 1000000);
    poll_now(T0 + 1000000);
    EXPECT_BATCH(1, 1);
}

Test(batcher, dense_arrivals_still_wait_for_the_delay)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100}");
    for (int i = 0; i < 4; i++)
        submit_ok(mkjob(i, 1), T0 + i * 1000); /* 1 us apart: much denser than the delay */
    poll_now(T0 + 3000);
    EXPECT_WAIT(T0 + 100000);
    poll_now(T0 + 100000);
    EXPECT_BATCH(4, 0, 1, 2, 3);
}

Test(batcher, adaptive_delay_can_be_turned_off)
{
    setup(8, "{\"max_queue_delay_microseconds\": 100}, \"parameters\": "
             "{\"adaptive_queue_delay\": {\"string_value\": \"false\"}}");
    submit_ok(mkjob(0, 1), T0);
    poll_now(T0 + 100000);
    EXPECT_BATCH(1, 0);
    submit_ok(mkjob(1, 1), T0 + 1000000);
    poll_now(T0 + 1000000);
    EXPECT_WAIT(T0 + 1100000);
}

/* ---- direct dispatch (batcher_try_direct) ---- */

/* Two jobs submitted and drained 1 ms apart, ending at `end`: arrivals are sparse. */
static void sparse_history(int64_t end)
{
    for (int i = 0; i < 2; i++) {
        const int64_t t = end - (1 - i) * MS;
        submit_ok(mkjob(30 + i, 1), t);
        poll_now(t + 2 * MS);
        cr_assert_eq(g_out.n, 1);
    }
}

Test(batcher, direct_needs_a_timed_batch_within_the_bound)
{
    setup(8, NULL); /* no dynamic batching: every job is a batch of its own at once */
    sparse_history(T0 - MS);
    cr_assert_not(batcher_try_direct(g_b, mkjob(0, 1), T0, 50 * US, true),
                  "no batch timed yet: the estimate is unknown");
    batcher_note_exec_time(g_b, 20 * US);
    cr_assert_not(batcher_try_direct(g_b, mkjob(0, 1), T0, 10 * US, true), "above the bound");
    cr_assert(batcher_try_direct(g_b, mkjob(0, 1), T0 + 5 * US, 50 * US, false));
    cr_assert_eq(J(0)->t_enqueue_ns, 0, "a check without take leaves the job alone");
    cr_assert(batcher_try_direct(g_b, mkjob(0, 1), T0 + 7 * US, 50 * US, true));
    cr_assert_eq(J(0)->t_enqueue_ns, T0 + 7 * US, "taken: the arrival is recorded");
    cr_assert_eq(batcher_queued(g_b), 0, "a direct job is never queued");
    cr_assert_not(batcher_try_direct(g_b, with_priority(mkjob(1, 1), 1), T0, 50 * US, false),
                  "only the default priority");
}

Test(batcher, direct_only_with_an_empty_open_queue)
{
    setup(8, NULL);
    batcher_note_exec_time(g_b, 1 * US);
    sparse_history(T0 - MS);
    submit_ok(mkjob(0, 1), T0);
    cr_assert_not(batcher_try_direct(g_b, mkjob(1, 1), T0, 50 * US, true),
                  "a queued job goes first");
    poll_now(T0);
    cr_assert_eq(g_out.n, 1);
    cr_assert(batcher_try_direct(g_b, mkjob(1, 1), T0 + MS, 50 * US, true));
    batcher_close(g_b);
    cr_assert_not(batcher_try_direct(g_b, mkjob(2, 1), T0, 50 * US, true), "closed");
}

Test(batcher, direct_only_while_arrivals_are_sparse)
{
    setup(8, NULL);
    batcher_note_exec_time(g_b, 1 * US);
    /* dense arrivals (20 us apart): the frontend thread is busy, the workers take the jobs */
    int64_t t = T0;
    for (int i = 0; i < 8; i++, t += 20 * US) {
        submit_ok(mkjob(i, 1), t);
        poll_now(t);
        cr_assert_eq(g_out.n, 1);
    }
    cr_assert_not(batcher_try_direct(g_b, mkjob(10, 1), t, 50 * US, true));
    /* then sparse ones (1 ms apart): once the average gap passes the bound, direct */
    int taken_at = -1;
    for (int i = 0; i < 40 && taken_at < 0; i++) {
        t += MS;
        if (batcher_try_direct(g_b, mkjob(11, 1), t, 50 * US, true)) {
            taken_at = i;
        } else {
            submit_ok(J(11), t);
            poll_now(t);
            cr_assert_eq(g_out.n, 1);
        }
    }
    cr_assert_geq(taken_at, 0, "sparse arrivals never went direct");
}

Test(batcher, direct_with_dynamic_batching_only_when_nothing_is_worth_waiting_for)
{
    setup(16, "{\"preferred_batch_size\": [4], \"max_queue_delay_microseconds\": 1000}");
    batcher_note_exec_time(g_b, 1 * US);
    /* arrivals 200 us apart: sparse for the frontend, dense for the 1000 us delay */
    int64_t t = T0;
    for (int i = 0; i < 8; i++, t += 200 * US) {
        submit_ok(mkjob(i, 1), t);
        poll_now(t + 1500 * US); /* drained after its delay */
    }
    cr_assert_not(batcher_try_direct(g_b, mkjob(10, 1), t, 50 * US, true),
                  "a batch may form: wait for it");
    cr_assert(batcher_try_direct(g_b, mkjob(10, 4), t, 50 * US, true),
              "a job of a preferred size is a batch at once");
    cr_assert(batcher_try_direct(g_b, mkjob(11, 16), t + 300 * US, 50 * US, true),
              "a job of max_batch_size rows is a batch at once");
    /* arrivals 10 ms apart: the adaptive delay would not wait */
    int taken_at = -1;
    for (int i = 0; i < 40 && taken_at < 0; i++) {
        t += 10 * MS;
        if (batcher_try_direct(g_b, mkjob(12, 1), t, 50 * US, true)) {
            taken_at = i;
        } else {
            submit_ok(J(12), t);
            poll_now(t + 1500 * US);
            cr_assert_eq(g_out.n, 1);
        }
    }
    cr_assert_geq(taken_at, 0, "sparse arrivals never went direct");
}
