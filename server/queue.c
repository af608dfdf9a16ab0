/* Bounded FIFO as a ring of pointers under one mutex. The server's queues carry whole requests
 * (one lock round-trip per request), so a lock-free ring would not change the per-request cost
 * measurably; the mutex keeps close/drain semantics simple. */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    size_t cap, head, len;
    bool closed;
    void **ring;
};

queue_t *queue_create(size_t capacity)
{
    queue_t *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->ring = calloc(capacity ? capacity : 1, sizeof *q->ring);
    if (!q->ring) {
        free(q);
        return NULL;
    }
    q->cap = capacity ? capacity : 1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->nonempty, &ca);
    pthread_condattr_destroy(&ca);
    return q;
}

void queue_destroy(queue_t *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->nonempty);
    free(q->ring);
    free(q);
}

bool queue_push(queue_t *q, void *item)
{
    pthread_mutex_lock(&q->mu);
    bool ok = !q->closed && q->len < q->cap;
    if (ok) {
        q->ring[(q->head + q->len) % q->cap] = item;
        q->len++;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static void *take(queue_t *q)
{
    void *item = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return item;
}

void *queue_pop(queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->len == 0 && !q->closed)
        pthread_cond_wait(&q->nonempty, &q->mu);
    void *item = q->len ? take(q) : NULL;
    pthread_mutex_unlock(&q->mu);
    return item;
}

void *queue_pop_timed(queue_t *q, int64_t timeout_ns)
{
    /* Clamp: a negative wait means "do not wait"; a huge one must not overflow. */
    if (timeout_ns < 0)
        timeout_ns = 0;
    if (timeout_ns > (int64_t)365 * 24 * 3600 * 1000000000)
        timeout_ns = (int64_t)365 * 24 * 3600 * 1000000000;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + timeout_ns;
    until.tv_sec += ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    while (q->len == 0 && !q->closed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q->nonempty, &q->mu, &until);
    void *item = q->len ? take(q) : NULL;
    pthread_mutex_unlock(&q->mu);
    return item;
}

void queue_close(queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
}

size_t queue_length(queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}
