/* queue: a bounded multi-producer multi-consumer FIFO of pointers.
 *
 * Every hand-off between threads in the server goes through one of these. A full queue refuses
 * at once (queue_push returns false) so that memory never grows without bound; consumers block
 * with a bounded or unbounded wait. Thread-safe. */
#ifndef HLT_QUEUE_H
#define HLT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct queue queue_t;

/* Creates a queue holding at most capacity items. Owned by the caller (queue_destroy). NULL on
 * allocation failure. */
queue_t *queue_create(size_t capacity);
/* Accepts NULL. Items still queued are not freed: drain first. */
void queue_destroy(queue_t *q);
/* Appends item (ownership moves to the queue on success). false when full or closed; the caller
 * keeps the item. */
bool queue_push(queue_t *q, void *item);
/* Removes the oldest item, waiting while empty. Returns NULL once the queue is closed and empty.
 * The caller owns the returned item. */
void *queue_pop(queue_t *q);
/* Like queue_pop but returns NULL if nothing arrives within timeout_ns (or when closed+empty). */
void *queue_pop_timed(queue_t *q, int64_t timeout_ns);
/* Closes the queue: pushes fail from now on, poppers drain what is left then get NULL. */
void queue_close(queue_t *q);
size_t queue_length(queue_t *q);

#endif
