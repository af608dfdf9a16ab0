/* infer_job: one ModelInfer request on its way from the frontend through a model's queue to an
 * instance worker. The frontend creates it (embedding it in its call state), fills the decoded
 * message and the mapping of config inputs/outputs, and supplies two callbacks; the model's
 * worker computes, asks the frontend for the response buffer, and completes it. Keeping gRPC
 * behind these callbacks lets the model module run (and be tested) without a network. */
#ifndef HLT_INFER_JOB_H
#define HLT_INFER_JOB_H

#include "infer_codec.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define HLT_MAX_IO 64

struct model;

typedef struct infer_job infer_job_t;
struct infer_job {
    infer_request_msg_t msg;
    struct model *model;        /* reference held by the job */
    int64_t batch;              /* rows in this request (1 for non-batching models) */
    int16_t in_map[HLT_MAX_IO]; /* config input i -> msg.inputs index */
    uint16_t n_out;
    int16_t out_idx[HLT_MAX_IO]; /* config output indices to return, in response order */
    int64_t t_recv_ns, t_enqueue_ns;
    int64_t deadline_ns; /* monotonic (clock.h); INT64_MAX = none */
    size_t msg_bytes;    /* size of the request message, for the queued-memory bound */
    atomic_bool cancelled; /* set by the frontend when the client goes away */
    /* Owned by the batcher while queued. */
    uint32_t level;             /* priority level index (0 = highest) */
    bool delayed;               /* queue timeout passed with timeout_action DELAY */
    int64_t queue_deadline_ns;  /* queue-policy timeout; INT64_MAX = none */
    uint64_t seq;               /* submission order, for preserve_ordering */
    infer_job_t *next, *prev;   /* intrusive queue links */
    /* Returns a buffer of size bytes that becomes the response message, owned by the job's
     * creator; NULL on allocation failure. Called at most once, by the worker. */
    uint8_t *(*alloc_response)(infer_job_t *job, size_t size);
    /* Finishes the job: st == HLT_OK sends the response buffer, else the status and message.
     * Ownership of the job moves to the callee. */
    void (*complete)(infer_job_t *job, hlt_status st, const char *message);
};

#endif
