/* frontend: the gRPC server (gRPC core C API). Owns the grpc_server, one completion queue and
 * its thread (pre-posted call slots for every registered method, plus generic slots that answer
 * UNIMPLEMENTED for unknown methods), and a control thread for repository load/unload.
 * Replies are sent as one 4-op batch; ModelInfer replies are sent by the model's worker.
 *
 * Thread-safety: frontend_start/frontend_stop are called once each, from the main thread. */
#ifndef HLT_FRONTEND_H
#define HLT_FRONTEND_H

#include "hltinfer/status.h"
#include "repository.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct frontend frontend_t;

typedef struct frontend_options {
    const char *address;      /* e.g. "0.0.0.0" */
    int port;                 /* 0 = pick a free port */
    bool allow_model_control; /* RepositoryModelLoad/Unload allowed */
    bool strict_readiness;    /* ServerReady needs every model ready */
    /* Admission (SuperSONIC-style): when the average queue time per request over the last
     * window exceeds this, RepositoryIndex answers UNAVAILABLE so that new jobs pick another
     * server while running jobs keep their service. 0 = off. */
    int64_t admission_queue_us;
    int64_t admission_window_ms;
    int slots_per_method; /* pre-posted ModelInfer slots; other methods get fewer */
} frontend_options_t;

/* Starts serving. repo is borrowed and must outlive the frontend. On success *out is owned by
 * the caller (frontend_stop) and *bound_port is the port actually bound. */
hlt_status frontend_start(const frontend_options_t *opts, repo_t *repo, frontend_t **out,
                          int *bound_port, char *err, size_t errlen);

/* Readiness as ServerReady answers it: not shutting down and (with strict readiness) every
 * model loaded. Thread-safe. */
bool frontend_server_ready(frontend_t *fe);

/* Stops taking new calls, lets in-flight calls finish for up to grace_ms, then cancels what is
 * left, and frees everything. Accepts NULL. */
void frontend_stop(frontend_t *fe, int64_t grace_ms);

#endif
