/* Dynamic batcher (see batcher.h). One mutex guards the queues; every decision is made by
 * batcher_poll at an explicit time. Queues are intrusive doubly linked lists, one per priority
 * level plus one for requests whose queue timeout passed with timeout_action DELAY (served
 * after everything else). Batch formation follows Triton's dynamic batcher: take requests in
 * priority then arrival order that share the first one's non-batch shapes, up to
 * max_batch_size rows; dispatch at once when the batch is full, or when a prefix of it is
 * exactly a preferred size (the largest such prefix); otherwise wait until the oldest request
 * has waited max_queue_delay, or until the earliest deadline in the batch minus the recent
 * execution time, whichever comes first. */
#include "batcher.h"

#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job_list {
    infer_job_t *head, *tail;
    size_t n;
} job_list_t;

typedef struct level_policy {
    model_queue_policy_t p;
} level_policy_t;

struct batcher {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    const model_config_t *cfg;
    bool dynamic;      /* dynamic_batching configured and the model batches */
    uint32_t n_levels; /* priority levels (>= 1) */
    uint32_t default_level;
    level_policy_t *policies; /* per level */
    job_list_t *lists;        /* n_levels + 1 (the last: delayed) */
    int64_t delay_ns;
    batcher_limits_t limits;
    size_t queued, queued_bytes;
    size_t *level_n; /* queued per priority level, delayed jobs included (max_queue_size) */
    uint32_t configured_levels; /* priority_levels as configured (0 = priorities ignored) */
    uint64_t next_seq;
    int64_t exec_estimate_ns;
    /* Adaptive delay: when requests arrive further apart than max_queue_delay, waiting for
     * company only adds latency (a closed loop of one client never brings a second request
     * while the first waits), so a partial batch leaves at once. */
    bool adaptive;
    int64_t last_arrival_ns, gap_ewma_ns;
    bool closed;
    int kicks; /* wake-ups requested while nobody could see a state change */
};

/* Saturating time arithmetic: client-supplied timeouts must not overflow into the past. */
static int64_t sat_us_to_ns(uint64_t us)
{
    return us > (uint64_t)(INT64_MAX / 1000) ? INT64_MAX : (int64_t)us * 1000;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    return b > 0 && a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void list_push(job_list_t *l, infer_job_t *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static void list_remove(job_list_t *l, infer_job_t *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->next = j->prev = NULL;
    l->n--;
}

batcher_t *batcher_create(const model_config_t *cfg, const batcher_limits_t *limits)
{
    batcher_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    const model_dynamic_batching_t *db = &cfg->dynamic_batching;
    b->cfg = cfg;
    b->dynamic = db->enabled && cfg->max_batch_size > 0;
    b->n_levels = db->enabled && db->priority_levels > 0 ? (uint32_t)db->priority_levels : 1;
    b->default_level = db->enabled && db->default_priority_level > 0
                           ? (uint32_t)db->default_priority_level - 1
                           : 0;
    if (b->default_level >= b->n_levels)
        b->default_level = b->n_levels - 1;
    b->configured_levels = db->enabled ? (uint32_t)db->priority_levels : 0;
    b->policies = calloc(b->n_levels, sizeof *b->policies);
    b->lists = calloc(b->n_levels + 1, sizeof *b->lists);
    b->level_n = calloc(b->n_levels, sizeof *b->level_n);
    if (!b->policies || !b->lists || !b->level_n) {
        free(b->policies);
        free(b->lists);
        free(b->level_n);
        free(b);
        return NULL;
    }
    for (uint32_t l = 0; l < b->n_levels; l++) {
        if (db->enabled)
            b->policies[l].p = db->default_queue_policy;
        for (size_t k = 0; db->enabled && k < db->n_priority_policies; k++)
            if (db->priority_policies[k].level == l + 1)
                b->policies[l].p = db->priority_policies[k].policy;
    }
    b->delay_ns = db->enabled ? sat_us_to_ns(db->max_queue_delay_us) : 0;
    b->adaptive = true;
    for (size_t i = 0; i < cfg->n_parameters; i++)
        if (!strcmp(cfg->parameters[i].key, "adaptive_queue_delay") &&
            !strcmp(cfg->parameters[i].value, "false"))
            b->adaptive = false;
    b->limits = *limits;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    return b;
}

void batcher_destroy(batcher_t *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
    free(b->policies);
    free(b->lists);
    free(b->level_n);
    free(b);
}

static hlt_status reject(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hlt_status reject(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

hlt_status batcher_submit(batcher_t *b, infer_job_t *job, int64_t now_ns, char *err, size_t errlen)
{
    const char *m = b->cfg->name;
    uint32_t level = b->default_level;
    if (job->msg.has_priority && job->msg.priority != 0 && b->configured_levels > 0) {
        if (job->msg.priority > b->n_levels)
            return reject(err, errlen, HLT_INVALID_ARGUMENT,
                          "model '%s': priority %" PRIu64 " is outside 1..%u", m, job->msg.priority,
                          b->n_levels);
        level = (uint32_t)job->msg.priority - 1;
    }
    const model_queue_policy_t *p = &b->policies[level].p;
    uint64_t timeout_us = p->default_timeout_us;
    if (job->msg.has_timeout && job->msg.timeout_us > 0 && p->allow_timeout_override &&
        (timeout_us == 0 || (uint64_t)job->msg.timeout_us < timeout_us))
        timeout_us = (uint64_t)job->msg.timeout_us; /* an override may only shorten it */
    job->level = level;
    job->delayed = false;
    job->t_enqueue_ns = now_ns;
    job->queue_deadline_ns = timeout_us ? sat_add(now_ns, sat_us_to_ns(timeout_us)) : INT64_MAX;

    hlt_status st = HLT_OK;
    pthread_mutex_lock(&b->mu);
    if (b->closed) {
        st = reject(err, errlen, HLT_UNAVAILABLE, "model '%s' is unloading; retry elsewhere", m);
    } else if (b->queued >= b->limits.max_queued_requests) {
        st = reject(err, errlen, HLT_UNAVAILABLE,
                    "model '%s': queue full (%zu requests waiting); server overloaded, retry "
                    "later or elsewhere",
                    m, b->queued);
    } else if (p->max_queue_size && b->level_n[level] >= p->max_queue_size) {
        st = reject(err, errlen, HLT_UNAVAILABLE,
                    "model '%s': exceeds maximum queue size %u of priority level %u", m,
                    p->max_queue_size, level + 1);
    } else if (b->queued && b->queued_bytes + job->msg_bytes > b->limits.max_queued_bytes) {
        st = reject(err, errlen, HLT_UNAVAILABLE,
                    "model '%s': queued requests already hold %zu bytes (limit %zu); server "
                    "overloaded, retry later or elsewhere",
                    m, b->queued_bytes, b->limits.max_queued_bytes);
    } else {
        job->seq = b->next_seq++;
        if (b->last_arrival_ns) {
            int64_t gap = now_ns - b->last_arrival_ns;
            b->gap_ewma_ns = b->gap_ewma_ns ? b->gap_ewma_ns + (gap - b->gap_ewma_ns) / 8 : gap;
        }
        b->last_arrival_ns = now_ns;
        list_push(&b->lists[level], job);
        b->level_n[level]++;
        b->queued++;
        b->queued_bytes += job->msg_bytes;
        pthread_cond_signal(&b->cond);
    }
    pthread_mutex_unlock(&b->mu);
    return st;
}

bool batcher_try_direct(batcher_t *b, infer_job_t *job, int64_t now_ns, int64_t max_exec_ns,
                        bool take)
{
    if (job->msg.has_priority && job->msg.priority != 0)
        return false;
    pthread_mutex_lock(&b->mu);
    bool ok = !b->closed && b->queued == 0 && b->exec_estimate_ns > 0 &&
              b->exec_estimate_ns <= max_exec_ns;
    /* the inter-arrival average including this arrival, as a submit would make it */
    int64_t gap_ewma = b->gap_ewma_ns;
    if (b->last_arrival_ns) {
        const int64_t gap = now_ns - b->last_arrival_ns;
        gap_ewma = gap_ewma ? gap_ewma + (gap - gap_ewma) / 8 : gap;
    }
    /* Only while requests are sparse: under load the calling (gRPC) thread is the bottleneck
     * and the instance workers add the parallelism it lacks. */
    ok = ok && gap_ewma >= BATCHER_DIRECT_MIN_GAP_NS;
    if (ok && b->dynamic) {
        bool at_once = job->batch >= b->cfg->max_batch_size;
        for (size_t k = 0; k < b->cfg->dynamic_batching.n_preferred && !at_once; k++)
            at_once = job->batch == b->cfg->dynamic_batching.preferred_batch_size[k];
        ok = at_once || (b->adaptive && gap_ewma > b->delay_ns);
    }
    if (ok && take) { /* recorded as a submit would (a refused arrival is counted by its submit) */
        job->level = b->default_level;
        job->delayed = false;
        job->t_enqueue_ns = now_ns;
        job->queue_deadline_ns = INT64_MAX;
        job->seq = b->next_seq++;
        b->gap_ewma_ns = gap_ewma;
        b->last_arrival_ns = now_ns;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

static void take(batcher_t *b, job_list_t *l, infer_job_t *j)
{
    list_remove(l, j);
    b->level_n[j->level]--;
    b->queued--;
    b->queued_bytes -= j->msg_bytes;
}

/* Same non-batch shape on every input: only such requests can share a batch. */
static bool same_shapes(const batcher_t *b, const infer_job_t *a, const infer_job_t *c)
{
    for (size_t i = 0; i < b->cfg->n_inputs; i++) {
        const infer_input_t *x = &a->msg.inputs[a->in_map[i]];
        const infer_input_t *y = &c->msg.inputs[c->in_map[i]];
        if (x->rank != y->rank ||
            memcmp(x->shape + 1, y->shape + 1, sizeof(int64_t) * (size_t)(x->rank - 1)))
            return false;
    }
    return true;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Removes cancelled and expired jobs; moves DELAY-timed-out ones to the delayed list. Returns
 * the earliest future instant at which some job's deadline or queue timeout falls. */
static int64_t expire(batcher_t *b, int64_t now, size_t max_jobs, batch_t *out)
{
    int64_t next = INT64_MAX;
    for (uint32_t l = 0; l <= b->n_levels; l++) {
        infer_job_t *j = b->lists[l].head;
        while (j) {
            infer_job_t *nx = j->next;
            hlt_status st = HLT_OK;
            if (atomic_load_explicit(&j->cancelled, memory_order_relaxed))
                st = HLT_CANCELLED;
            else if (now >= j->deadline_ns)
                st = HLT_DEADLINE_EXCEEDED;
            else if (!j->delayed && now >= j->queue_deadline_ns) {
                if (b->policies[j->level].p.timeout_action == QUEUE_TIMEOUT_REJECT) {
                    st = HLT_DEADLINE_EXCEEDED;
                } else {
                    list_remove(&b->lists[l], j);
                    j->delayed = true;
                    list_push(&b->lists[b->n_levels], j);
                }
            }
            if (st != HLT_OK) {
                if (out->n_expired == max_jobs)
                    return now; /* more to expire: poll again at once */
                take(b, &b->lists[l], j);
                out->expired[out->n_expired] = j;
                out->expired_status[out->n_expired++] = st;
            } else {
                next = min64(next, j->deadline_ns);
                if (!j->delayed)
                    next = min64(next, j->queue_deadline_ns);
            }
            j = nx;
        }
    }
    return next;
}

static infer_job_t *first_job(batcher_t *b)
{
    for (uint32_t l = 0; l <= b->n_levels; l++)
        if (b->lists[l].head)
            return b->lists[l].head;
    return NULL;
}

static void dispatch(batcher_t *b, batch_t *out, size_t n)
{
    out->rows = 0;
    for (size_t i = 0; i < n; i++) {
        infer_job_t *j = out->jobs[i];
        take(b, &b->lists[j->delayed ? b->n_levels : j->level], j);
        out->rows += j->batch;
    }
    out->n = n;
}

static void poll_locked(batcher_t *b, int64_t now, size_t max_jobs, batch_t *out)
{
    out->n = 0;
    out->n_expired = 0;
    out->rows = 0;
    out->wake_ns = INT64_MAX;
    int64_t next_expiry = expire(b, now, max_jobs, out);
    if (out->n_expired) {
        out->wake_ns = now; /* the rest may be due too: poll again at once */
        return;
    }
    infer_job_t *head = first_job(b);
    if (!head)
        return;
    if (!b->dynamic) {
        out->jobs[0] = head;
        dispatch(b, out, 1);
        return;
    }
    /* Candidates in priority then arrival order, sharing head's shapes, up to max rows. */
    int64_t max_rows = b->cfg->max_batch_size, rows = 0, best_pref_rows = 0;
    size_t n = 0, best_pref_n = 0;
    bool full = false;
    int64_t oldest = head->t_enqueue_ns, earliest_deadline = INT64_MAX;
    for (uint32_t l = 0; l <= b->n_levels && !full; l++) {
        for (infer_job_t *j = b->lists[l].head; j; j = j->next) {
            if (!same_shapes(b, head, j))
                continue;
            if (rows + j->batch > max_rows || n == max_jobs) {
                full = true;
                break;
            }
            out->jobs[n++] = j;
            rows += j->batch;
            oldest = min64(oldest, j->t_enqueue_ns);
            earliest_deadline =
                min64(earliest_deadline,
                      min64(j->deadline_ns, j->delayed ? INT64_MAX : j->queue_deadline_ns));
            for (size_t k = 0; k < b->cfg->dynamic_batching.n_preferred; k++)
                if (rows == b->cfg->dynamic_batching.preferred_batch_size[k] &&
                    rows > best_pref_rows) {
                    best_pref_rows = rows;
                    best_pref_n = n;
                }
        }
    }
    if (full || rows == max_rows) {
        dispatch(b, out, n);
        return;
    }
    if (best_pref_n) {
        dispatch(b, out, best_pref_n);
        return;
    }
    /* No one to wait for: closed, or requests arrive sparser than the delay (adaptive). */
    bool sparse = b->adaptive && b->gap_ewma_ns > b->delay_ns;
    int64_t wake = b->closed || sparse ? now : sat_add(oldest, b->delay_ns);
    if (earliest_deadline != INT64_MAX)
        wake = min64(wake, earliest_deadline - b->exec_estimate_ns);
    if (now >= wake) {
        dispatch(b, out, n);
        return;
    }
    out->wake_ns = min64(wake, next_expiry);
}

void batcher_poll(batcher_t *b, int64_t now_ns, size_t max_jobs, batch_t *out)
{
    pthread_mutex_lock(&b->mu);
    poll_locked(b, now_ns, max_jobs, out);
    pthread_mutex_unlock(&b->mu);
}

bool batcher_next(batcher_t *b, size_t max_jobs, batch_t *out)
{
    pthread_mutex_lock(&b->mu);
    for (;;) {
        poll_locked(b, hlt_now_ns(), max_jobs, out);
        if (out->n || out->n_expired)
            break;
        if (b->closed && b->queued == 0) {
            pthread_mutex_unlock(&b->mu);
            return false;
        }
        if (b->kicks) {
            b->kicks--;
            continue;
        }
        if (out->wake_ns == INT64_MAX) {
            pthread_cond_wait(&b->cond, &b->mu);
        } else {
            struct timespec ts = {out->wake_ns / 1000000000, out->wake_ns % 1000000000};
            pthread_cond_timedwait(&b->cond, &b->mu, &ts);
        }
    }
    /* Another worker may find work too (a second batch of another shape). */
    if (b->queued)
        pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
    return true;
}

void batcher_note_exec_time(batcher_t *b, int64_t exec_ns)
{
    pthread_mutex_lock(&b->mu);
    /* exponential moving average, weight 1/8 */
    b->exec_estimate_ns =
        b->exec_estimate_ns ? b->exec_estimate_ns + (exec_ns - b->exec_estimate_ns) / 8 : exec_ns;
    pthread_mutex_unlock(&b->mu);
}

void batcher_close(batcher_t *b)
{
    pthread_mutex_lock(&b->mu);
    b->closed = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

void batcher_kick(batcher_t *b)
{
    pthread_mutex_lock(&b->mu);
    b->kicks = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

size_t batcher_queued(batcher_t *b)
{
    pthread_mutex_lock(&b->mu);
    size_t n = b->queued;
    pthread_mutex_unlock(&b->mu);
    return n;
}

size_t batcher_queued_bytes(batcher_t *b)
{
    pthread_mutex_lock(&b->mu);
    size_t n = b->queued_bytes;
    pthread_mutex_unlock(&b->mu);
    return n;
}
