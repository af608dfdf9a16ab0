/* Tests for server/queue.c: the bounded MPMC FIFO every thread hand-off goes through.
 * Waits are bounded (pthread_timedjoin_np, criterion .timeout) so that a broken queue fails a
 * test instead of hanging it; nothing here measures time. */
#include "queue.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define ITEM(i) ((void *)(uintptr_t)((i) + 1)) /* never NULL */
#define INDEX(p) ((size_t)(uintptr_t)(p)-1)

/* Joins t, failing the test if it does not end within 10 s (a hang, not a timing check). */
static void join_bounded(pthread_t t, void **ret)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int rc = pthread_timedjoin_np(t, ret, &until);
    cr_assert_eq(rc, 0, "thread did not finish (pthread_timedjoin_np: %d)", rc);
}

Test(queue, pops_in_fifo_order)
{
    queue_t *q = queue_create(8);
    cr_assert_not_null(q);
    for (size_t i = 0; i < 8; i++)
        cr_assert(queue_push(q, ITEM(i)));
    cr_assert_eq(queue_length(q), 8);
    for (size_t i = 0; i < 8; i++)
        cr_assert_eq(INDEX(queue_pop(q)), i);
    cr_assert_eq(queue_length(q), 0);
    queue_destroy(q);
}

Test(queue, keeps_fifo_order_across_ring_wraparound)
{
    queue_t *q = queue_create(3);
    size_t next_in = 0, next_out = 0;
    for (int round = 0; round < 10; round++) {
        cr_assert(queue_push(q, ITEM(next_in++)));
        cr_assert(queue_push(q, ITEM(next_in++)));
        cr_assert_eq(INDEX(queue_pop(q)), next_out++);
        cr_assert_eq(INDEX(queue_pop_timed(q, 0)), next_out++);
    }
    cr_assert_eq(queue_length(q), 0);
    queue_destroy(q);
}

Test(queue, push_on_full_returns_false_and_caller_keeps_item)
{
    queue_t *q = queue_create(2);
    cr_assert(queue_push(q, ITEM(0)));
    cr_assert(queue_push(q, ITEM(1)));
    cr_assert_not(queue_push(q, ITEM(2)));
    cr_assert_eq(queue_length(q), 2);
    cr_assert_eq(INDEX(queue_pop(q)), 0);
    cr_assert(queue_push(q, ITEM(2)), "a freed slot must accept a push again");
    cr_assert_eq(INDEX(queue_pop(q)), 1);
    cr_assert_eq(INDEX(queue_pop(q)), 2);
    queue_destroy(q);
}

Test(queue, zero_capacity_holds_one_item)
{
    queue_t *q = queue_create(0);
    cr_assert_not_null(q);
    cr_assert(queue_push(q, ITEM(0)));
    cr_assert_not(queue_push(q, ITEM(1)));
    cr_assert_eq(INDEX(queue_pop(q)), 0);
    queue_destroy(q);
}

Test(queue, close_drains_remaining_items_then_returns_null)
{
    queue_t *q = queue_create(4);
    cr_assert(queue_push(q, ITEM(0)));
    cr_assert(queue_push(q, ITEM(1)));
    queue_close(q);
    cr_assert_not(queue_push(q, ITEM(2)), "push after close must fail");
    cr_assert_eq(queue_length(q), 2);
    cr_assert_eq(INDEX(queue_pop(q)), 0);
    cr_assert_eq(INDEX(queue_pop_timed(q, 1000000000)), 1);
    cr_assert_null(queue_pop(q));
    cr_assert_null(queue_pop_timed(q, 1000000000));
    queue_close(q); /* closing twice is harmless */
    cr_assert_null(queue_pop(q));
    queue_destroy(q);
}

static void *pop_one(void *arg)
{
    return queue_pop(arg);
}

static void *pop_one_timed(void *arg)
{
    /* Far longer than the test's own bound: only close can end this wait in time. */
    return queue_pop_timed(arg, (int64_t)3600 * 1000000000);
}

Test(queue, close_wakes_blocked_poppers, .timeout = 30)
{
    queue_t *q = queue_create(4);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, i % 2 ? pop_one_timed : pop_one, q), 0);
    queue_close(q);
    for (int i = 0; i < 4; i++) {
        void *ret = ITEM(99);
        join_bounded(t[i], &ret);
        cr_assert_null(ret, "a popper woken by close on an empty queue gets NULL");
    }
    queue_destroy(q);
}

Test(queue, blocked_popper_receives_pushed_item, .timeout = 30)
{
    queue_t *q = queue_create(1);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, pop_one, q), 0);
    cr_assert(queue_push(q, ITEM(7)));
    void *ret = NULL;
    join_bounded(t, &ret);
    cr_assert_eq(INDEX(ret), 7);
    queue_destroy(q);
}

Test(queue, timed_pop_on_empty_queue_returns_null)
{
    queue_t *q = queue_create(4);
    cr_assert_null(queue_pop_timed(q, 1000000)); /* 1 ms; only the result is checked */
    cr_assert_null(queue_pop_timed(q, 0));
    queue_destroy(q);
}

Test(queue, timed_pop_returns_item_already_queued)
{
    queue_t *q = queue_create(4);
    cr_assert(queue_push(q, ITEM(3)));
    cr_assert_eq(INDEX(queue_pop_timed(q, 0)), 3);
    queue_destroy(q);
}

/* A deadline already in the past (a batcher computing "deadline - now") must behave like a zero
 * timeout, not fail the wait forever. */
Test(queue, timed_pop_with_negative_timeout_returns_null, .timeout = 10)
{
    queue_t *q = queue_create(4);
    cr_assert_null(queue_pop_timed(q, -1));
    cr_assert_null(queue_pop_timed(q, -1500000000));
    cr_assert(queue_push(q, ITEM(1)));
    cr_assert_eq(INDEX(queue_pop_timed(q, -1500000000)), 1);
    queue_destroy(q);
}

/* "No deadline" expressed as the largest timeout must not overflow the deadline arithmetic
 * (signed overflow; the UBSan build reports it). */
Test(queue, timed_pop_with_int64_max_timeout_returns_queued_item, .timeout = 10)
{
    queue_t *q = queue_create(4);
    cr_assert(queue_push(q, ITEM(5)));
    cr_assert_eq(INDEX(queue_pop_timed(q, INT64_MAX)), 5);
    queue_destroy(q);
}

Test(queue, destroy_accepts_null)
{
    queue_destroy(NULL);
}

/* ---- multi-producer / multi-consumer ---- */

#define N_PRODUCERS 4
#define N_CONSUMERS 4
#define PER_PRODUCER 20000

typedef struct mpmc {
    queue_t *q;
    atomic_int seen[N_PRODUCERS * PER_PRODUCER];
    atomic_size_t order_violations;
    atomic_size_t received;
} mpmc_t;

typedef struct producer_arg {
    mpmc_t *s;
    size_t id;
} producer_arg_t;

static void *producer(void *arg)
{
    producer_arg_t *p = arg;
    for (size_t i = 0; i < PER_PRODUCER; i++) {
        void *item = ITEM(p->id * PER_PRODUCER + i);
        while (!queue_push(p->s->q, item)) /* full: the caller keeps the item and retries */
            sched_yield();
    }
    return NULL;
}

static void *consumer(void *arg)
{
    mpmc_t *s = arg;
    /* Each producer's items must reach any one consumer in the order they were pushed. */
    size_t last[N_PRODUCERS];
    for (size_t i = 0; i < N_PRODUCERS; i++)
        last[i] = SIZE_MAX;
    void *item;
    while ((item = queue_pop(s->q))) {
        size_t idx = INDEX(item), prod = idx / PER_PRODUCER, seq = idx % PER_PRODUCER;
        if (idx >= N_PRODUCERS * PER_PRODUCER)
            continue; /* counted as missing below */
        atomic_fetch_add(&s->seen[idx], 1);
        if (last[prod] != SIZE_MAX && seq <= last[prod])
            atomic_fetch_add(&s->order_violations, 1);
        last[prod] = seq;
        atomic_fetch_add(&s->received, 1);
    }
    return NULL;
}

Test(queue, mpmc_delivers_every_item_exactly_once, .timeout = 60)
{
    mpmc_t *s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    s->q = queue_create(16);
    pthread_t prod[N_PRODUCERS], cons[N_CONSUMERS];
    producer_arg_t pa[N_PRODUCERS];
    for (size_t i = 0; i < N_CONSUMERS; i++)
        cr_assert_eq(pthread_create(&cons[i], NULL, consumer, s), 0);
    for (size_t i = 0; i < N_PRODUCERS; i++) {
        pa[i] = (producer_arg_t){s, i};
        cr_assert_eq(pthread_create(&prod[i], NULL, producer, &pa[i]), 0);
    }
    for (size_t i = 0; i < N_PRODUCERS; i++)
        join_bounded(prod[i], NULL);
    queue_close(s->q); /* consumers drain what is left, then get NULL */
    for (size_t i = 0; i < N_CONSUMERS; i++)
        join_bounded(cons[i], NULL);

    cr_assert_eq(atomic_load(&s->received), (size_t)N_PRODUCERS * PER_PRODUCER);
    for (size_t i = 0; i < N_PRODUCERS * PER_PRODUCER; i++)
        cr_assert_eq(atomic_load(&s->seen[i]), 1, "item %zu received %d times", i,
                     atomic_load(&s->seen[i]));
    cr_assert_eq(atomic_load(&s->order_violations), 0);
    cr_assert_eq(queue_length(s->q), 0);
    queue_destroy(s->q);
    free(s);
}
