/* rpc: the per-call state shared by the frontend's completion-queue loop and the RPC handlers
 * (rpc_meta.c for health/metadata/config/statistics/repository, rpc_infer.c for ModelInfer).
 * Private to the frontend. */
#ifndef HLT_RPC_H
#define HLT_RPC_H

#include "infer_job.h"
#include "queue.h"
#include "repository.h"

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef enum method_id {
    M_SERVER_LIVE,
    M_SERVER_READY,
    M_MODEL_READY,
    M_SERVER_METADATA,
    M_MODEL_METADATA,
    M_MODEL_INFER,
    M_MODEL_CONFIG,
    M_MODEL_STATISTICS,
    M_REPOSITORY_INDEX,
    M_REPOSITORY_LOAD,
    M_REPOSITORY_UNLOAD,
    M_HEALTH_CHECK,
    M_COUNT,
    M_GENERIC = M_COUNT,
} method_id;

enum tag_kind { TAG_NEW_CALL, TAG_DONE, TAG_CLOSE, TAG_SHUTDOWN };

typedef struct call_ctx call_ctx_t;

typedef struct call_tag {
    enum tag_kind kind;
    call_ctx_t *call;
} call_tag_t;

struct frontend {
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t cq_thread;
    repo_t *repo;
    void *registered[M_COUNT];
    atomic_bool shutting_down;
    atomic_long in_flight;
    bool allow_model_control;
    bool strict_readiness;
    int64_t admission_queue_ns, admission_window_ns;
    /* Last admission window (CQ thread only): start time and queue totals at its start. */
    int64_t adm_t0, adm_avg_ns;
    uint64_t adm_queue_ns0, adm_count0;
    int slots_infer;
    queue_t *control; /* load/unload calls for the control thread */
    pthread_t control_thread;
    call_tag_t shutdown_tag;
    pthread_mutex_t mu; /* guards shutdown_done */
    pthread_cond_t cond;
    bool shutdown_done;
};

struct call_ctx {
    call_tag_t tag_new, tag_done, tag_close;
    atomic_int pending; /* completion events still to come; the last one frees the call */
    bool early_close;   /* RECV_CLOSE_ON_SERVER was posted on its own (cancellation notice) */
    struct frontend *fe;
    int method;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* generic slots only */
    int cancelled;
    grpc_slice req; /* the request message as one contiguous slice */
    bool has_req;
    grpc_slice resp; /* ModelInfer response, allocated by the worker */
    bool has_resp;
    infer_job_t job; /* ModelInfer only */
    bool has_job;
};

/* Sends the whole reply in one batch: body (may be NULL for an error), status and message.
 * Safe from any thread, once per call. */
void rpc_reply(call_ctx_t *c, hlt_status st, const char *message, grpc_slice *body);
/* Packs a protobuf-c message as the OK reply. */
void rpc_reply_pb(call_ctx_t *c, const ProtobufCMessage *msg);
/* Replies with status st and a formatted message. */
void rpc_reply_error(call_ctx_t *c, hlt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Handlers, called on the completion-queue thread with the request in c->req. */
void rpc_handle_meta(call_ctx_t *c);
void rpc_handle_infer(call_ctx_t *c);
/* Runs a load/unload on the control thread. */
void rpc_handle_control(call_ctx_t *c);
/* Asks gRPC to report the client going away (cancel or deadline) as soon as it happens. */
void rpc_watch_cancel(call_ctx_t *c);
/* Releases what a ModelInfer call holds (job message, model reference). */
void rpc_infer_release(call_ctx_t *c);

#endif
