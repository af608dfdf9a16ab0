/* batcher: the per-model dynamic batcher and scheduler between the frontend and the instance
 * workers, with Triton's dynamic_batching semantics: max_batch_size, preferred batch sizes,
 * max_queue_delay, priority levels with per-level queue policies (timeout REJECT/DELAY,
 * default timeout, timeout override, max queue size), per-request priority and timeout, gRPC
 * deadlines, cancellation, shape-separated batches and bounded memory.
 *
 * Scheduling is a pure function of the queue and a time value (batcher_poll), so unit tests
 * drive it with their own clock; batcher_next wraps it for the workers with a condition
 * variable and the monotonic clock.
 *
 * Owned by a model. Thread-safe: submit from the frontend, next/poll from any number of
 * workers. */
#ifndef HLT_BATCHER_H
#define HLT_BATCHER_H

#include "infer_job.h"
#include "model_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct batcher batcher_t;

typedef struct batcher_limits {
    size_t max_queued_requests; /* whole model, all levels */
    size_t max_queued_bytes;    /* request message bytes held by queued requests */
} batcher_limits_t;

/* cfg is borrowed and must outlive the batcher (it belongs to the same model). */
batcher_t *batcher_create(const model_config_t *cfg, const batcher_limits_t *limits);
/* Accepts NULL. Queued jobs must have been drained (batcher_close + batcher_next). */
void batcher_destroy(batcher_t *b);

/* Queues a job at time now_ns. The job's priority/timeout request parameters, rows and
 * deadline must be set (job->msg, job->batch, job->deadline_ns; message bytes in
 * job->msg_bytes). On success the job moves to the batcher. On failure the caller keeps it:
 * INVALID_ARGUMENT (priority outside 1..priority_levels), UNAVAILABLE (queue or memory bound
 * reached, or closed), with a message. */
hlt_status batcher_submit(batcher_t *b, infer_job_t *job, int64_t now_ns, char *err, size_t errlen);

/* What the scheduler decided at one instant. */
typedef struct batch {
    size_t n;           /* jobs to execute together (0 = none now) */
    infer_job_t **jobs; /* caller-provided array of max_jobs entries */
    int64_t rows;       /* sum of the jobs' rows */
    size_t n_expired;   /* jobs to answer without computing */
    infer_job_t **expired;
    hlt_status *expired_status; /* DEADLINE_EXCEEDED or CANCELLED, per expired job */
    int64_t wake_ns;            /* when n == 0: the next instant a decision can change (INT64_MAX =
                                   only a submit can change it) */
} batch_t;

/* Decides at time now_ns: removes expired and cancelled jobs into out->expired (at most
 * max_jobs), and forms at most one batch into out->jobs (at most max_jobs). Non-blocking.
 * Jobs returned move to the caller. */
void batcher_poll(batcher_t *b, int64_t now_ns, size_t max_jobs, batch_t *out);

/* Blocking form for workers: waits until batcher_poll has something (a batch or expired jobs)
 * or the batcher is closed and empty (returns false). */
bool batcher_next(batcher_t *b, size_t max_jobs, batch_t *out);

/* Feeds the recent execution time of one batch, used to dispatch early enough for the
 * earliest deadline in a forming batch. */
void batcher_note_exec_time(batcher_t *b, int64_t exec_ns);

/* Direct dispatch (the caller runs the job itself, on its own thread, skipping the hand-off to
 * an instance worker). True when job, arriving at now_ns, would leave the queue at once as a
 * batch of its own anyway: the queue is empty and open, the job has the default priority, and
 * either the model has no dynamic batching, or the job's rows reach max_batch_size or a
 * preferred size, or the adaptive delay sees arrivals sparser than the delay; arrivals are
 * sparse (BATCHER_DIRECT_MIN_GAP_NS); and the batches
 * measured so far (batcher_note_exec_time) take at most max_exec_ns. With take, the arrival is
 * then recorded as a submit would (t_enqueue_ns = now_ns, inter-arrival statistics) and the job
 * is the caller's to run; without, nothing changes (a check before claiming an instance). False
 * changes nothing: submit as usual. */
bool batcher_try_direct(batcher_t *b, infer_job_t *job, int64_t now_ns, int64_t max_exec_ns,
                        bool take);
/* Direct dispatch also needs requests to arrive at least this far apart on average (fewer than
 * 10 000 a second per model): under load the frontend thread is the bottleneck and handing
 * batches to the workers keeps it free. */
#define BATCHER_DIRECT_MIN_GAP_NS INT64_C(100000)

/* Refuses further submits; batcher_next drains what is queued then returns false. */
void batcher_close(batcher_t *b);
/* Wakes waiting workers so that they re-poll (after a cancellation). */
void batcher_kick(batcher_t *b);

size_t batcher_queued(batcher_t *b);
size_t batcher_queued_bytes(batcher_t *b);

#endif
