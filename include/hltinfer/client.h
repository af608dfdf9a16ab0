/* libhltinfer: the C client of hltinfer (and of any KServe v2 / Triton gRPC server).
 *
 * A trigger or reconstruction job calls a model on a remote server as if it were a local
 * function:
 *
 *     hlt_client_t *c;
 *     hlt_client_create("10.0.0.1:8001,10.0.0.2:8001", NULL, &c, err, sizeof err);
 *     int64_t shape[2] = {n_jets, 64};
 *     hlt_input_t in = {"jet_features", HLT_TYPE_FP32, 2, shape, features, n_jets * 64 * 4};
 *     hlt_infer_request_t req = {.model = "jet_tagger", .inputs = &in, .n_inputs = 1};
 *     hlt_infer_result_t *res;
 *     if (hlt_client_infer(c, &req, &res, err, sizeof err) == HLT_OK) {
 *         const hlt_output_t *p = hlt_infer_result_output_by_name(res, "probabilities");
 *         ... p->data, p->size, p->shape ...
 *         hlt_infer_result_free(res);
 *     }
 *     hlt_client_destroy(c);
 *
 * Conventions (as in every hltinfer interface):
 * - Fallible functions return hlt_status: HLT_OK (0) or a gRPC status code. Errors the server
 *   reports arrive with the server's own message, copied into the caller's `err` buffer of
 *   `errlen` bytes (always NUL-terminated; `err` may be NULL). The library never aborts or exits
 *   the process, and frees everything on every path.
 * - Ownership is stated above each prototype: "borrowed" (the library does not keep it past
 *   the call), "owned" (the caller frees it with the named function), "moved" (on success
 *   ownership passes; on failure nothing moves).
 * - Thread safety is stated per function. In short: one client is shared by any number of
 *   threads; result objects are immutable and may be read from several threads; only the
 *   _destroy/_free functions need the caller to ensure nobody else uses the object.
 * - Every _destroy / _free accepts NULL.
 *
 * Retries and fail-over (the SONIC retry chain): a call that fails with UNAVAILABLE (which
 * includes every connection error) is retried on the same server up to `max_retries` times with
 * a doubling backoff, then tried on the next server of the list, and so on until every server
 * was tried or the call's deadline has passed. Every other status (INVALID_ARGUMENT,
 * NOT_FOUND, DEADLINE_EXCEEDED, ...) is returned at once, never retried. After a successful
 * fail-over the client starts later calls at the server that answered. */
#ifndef HLTINFER_CLIENT_H
#define HLTINFER_CLIENT_H

#include "hltinfer/dtype.h"
#include "hltinfer/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HLTINFER_CLIENT_API_VERSION 1

/* ---------------------------------------------------------------------------------------------
 * Client
 * ------------------------------------------------------------------------------------------- */

typedef struct hlt_client hlt_client_t;

/* Zero in any field selects its default, so `{.timeout_ms = 500}` is a valid options value. */
typedef struct hlt_client_options {
    /* Deadline of every call that does not set its own, in ms. Default 10000; -1: no deadline. */
    int64_t timeout_ms;
    /* Retries on the same server after UNAVAILABLE, before moving to the next server.
     * Default 2; -1: none. */
    int32_t max_retries;
    /* First retry backoff in ms; doubled for every further retry on the same server, capped at
     * 1000 ms and at the call's deadline. Default 10. */
    int32_t retry_backoff_ms;
    /* Largest message sent or received, in bytes, capped at INT32_MAX (gRPC's limit). Default
     * INT32_MAX (as Triton and tritonclient use; gRPC's own default would be 4 MiB). */
    int64_t max_message_size;
    /* Longest wait between reconnection attempts to a server that went away, in ms. Default
     * 2000 (gRPC's own default is 120 s, far too long for a trigger farm). */
    int32_t reconnect_backoff_max_ms;
} hlt_client_options_t;

/* Creates a client for `addresses`: one "host:port" or a comma-separated fail-over list
 * ("a:8001,b:8001"), tried in that order. Channels connect lazily (at the first call), so an
 * unreachable server is not an error here. `opts` may be NULL (all defaults).
 * Ownership: addresses and opts are borrowed; *out is owned (hlt_client_destroy).
 * INVALID_ARGUMENT for an empty list or an empty address. Thread-safe. */
hlt_status hlt_client_create(const char *addresses, const hlt_client_options_t *opts,
                             hlt_client_t **out, char *err, size_t errlen);

/* As hlt_client_create, from an array of n "host:port" strings (each borrowed). Thread-safe. */
hlt_status hlt_client_create_list(const char *const *addresses, size_t n,
                                  const hlt_client_options_t *opts, hlt_client_t **out, char *err,
                                  size_t errlen);

/* Cancels every asynchronous call still in flight (each completes with CANCELLED: its
 * callback runs, or its handle becomes complete), waits for those completions, then releases
 * the connections and the completion thread. Results and handles obtained from the client stay
 * valid and are freed with their own functions. Accepts NULL.
 * NOT thread-safe: no other thread may use the client during or after this call, and it must
 * not be called from an infer callback. */
void hlt_client_destroy(hlt_client_t *c);

/* Number of server addresses, and the i-th one (borrowed from the client; NULL out of range).
 * Thread-safe. */
size_t hlt_client_address_count(const hlt_client_t *c);
const char *hlt_client_address(const hlt_client_t *c, size_t i);

/* Counters since creation, all calls and threads together. Thread-safe (each counter is read
 * atomically; the set is not one snapshot). */
typedef struct hlt_client_stats {
    uint64_t calls;     /* calls made (every RPC: infer, health, metadata, ...) */
    uint64_t attempts;  /* RPCs sent to a server: calls + retries + fail-overs */
    uint64_t retries;   /* re-sends to the same server after UNAVAILABLE */
    uint64_t failovers; /* moves to the next server of the list */
    uint64_t failures;  /* calls that ended with a status other than HLT_OK */
} hlt_client_stats_t;
/* Ownership: out is borrowed (caller's storage). Thread-safe. */
void hlt_client_get_stats(const hlt_client_t *c, hlt_client_stats_t *out);

/* ---------------------------------------------------------------------------------------------
 * Health, metadata, repository, statistics
 *
 * Every call here is synchronous, uses the client's default deadline, retries / fails over as
 * described above, and is thread-safe. `version` arguments may be NULL or "" (the server picks
 * the version, normally the latest).
 * ------------------------------------------------------------------------------------------- */

/* ServerLive / ServerReady. Ownership: *live / *ready are caller storage. */
hlt_status hlt_client_server_live(hlt_client_t *c, bool *live, char *err, size_t errlen);
hlt_status hlt_client_server_ready(hlt_client_t *c, bool *ready, char *err, size_t errlen);

/* Asynchronous ServerLive, in the completion style of hlt_client_infer_async (declared below):
 * reported either to `callback` (then `handle` must be NULL) or through a handle (then
 * `callback` must be NULL; poll / wait on it with hlt_infer_poll / hlt_infer_wait, read it
 * with hlt_live_handle_result, release it with hlt_infer_handle_free). Uses the client's default
 * deadline, retries and fail-over. Meant for health checks from an event loop and for measuring
 * the transport floor (hltinfer-bench --mode live) with the same client path as inference.
 * The callback runs on the client's completion thread with the same rules as
 * hlt_infer_callback; `live` is meaningful only when status is HLT_OK; `message` is borrowed
 * for the duration of the callback ("" on success). */
typedef void (*hlt_live_callback)(hlt_status status, bool live, const char *message,
                                  void *user_data);
/* The handle of an asynchronous call: inference, or ServerLive here. */
typedef struct hlt_infer_handle hlt_infer_handle_t;
/* Errors found before sending (bad arguments, a client being destroyed) are returned here and
 * then nothing is reported later. Ownership: user_data borrowed until the callback has run;
 * *handle owned (hlt_infer_handle_free). Thread-safe. */
hlt_status hlt_client_server_live_async(hlt_client_t *c, hlt_live_callback callback,
                                        void *user_data, hlt_infer_handle_t **handle, char *err,
                                        size_t errlen);
/* Outcome of a completed hlt_client_server_live_async handle: its status (message in err) and,
 * on HLT_OK, the server's answer in *live (caller storage). FAILED_PRECONDITION while the call
 * is in flight. (hlt_infer_handle_result on such a handle gives the status and no result.)
 * Thread-safe. */
hlt_status hlt_live_handle_result(hlt_infer_handle_t *h, bool *live, char *err, size_t errlen);

/* ModelReady. Servers differ on an unknown model: hltinfer answers ready = false, others
 * NOT_FOUND. Ownership: model and version borrowed. */
hlt_status hlt_client_model_ready(hlt_client_t *c, const char *model, const char *version,
                                  bool *ready, char *err, size_t errlen);

/* ServerMetadata. */
typedef struct hlt_server_metadata {
    const char *name;
    const char *version;
    size_t n_extensions;
    const char *const *extensions;
} hlt_server_metadata_t;
/* Ownership: *out is owned (hlt_server_metadata_free); its strings live as long as it does. */
hlt_status hlt_client_server_metadata(hlt_client_t *c, hlt_server_metadata_t **out, char *err,
                                      size_t errlen);
/* Accepts NULL. Not thread-safe for the same object. */
void hlt_server_metadata_free(hlt_server_metadata_t *m);

/* ModelMetadata: tensor names, datatypes and shapes (-1 = variable; a batching model has a
 * leading -1 batch dimension). */
typedef struct hlt_tensor_metadata {
    const char *name;
    hlt_dtype datatype;        /* HLT_TYPE_INVALID if the server sent a string we do not know */
    const char *datatype_name; /* as the server sent it ("FP32") */
    size_t rank;
    const int64_t *shape;
} hlt_tensor_metadata_t;

typedef struct hlt_model_metadata {
    const char *name;
    const char *platform;
    size_t n_versions;
    const char *const *versions;
    size_t n_inputs;
    const hlt_tensor_metadata_t *inputs;
    size_t n_outputs;
    const hlt_tensor_metadata_t *outputs;
} hlt_model_metadata_t;
/* Ownership: model, version borrowed; *out owned (hlt_model_metadata_free). */
hlt_status hlt_client_model_metadata(hlt_client_t *c, const char *model, const char *version,
                                     hlt_model_metadata_t **out, char *err, size_t errlen);
/* Accepts NULL. Not thread-safe for the same object. */
void hlt_model_metadata_free(hlt_model_metadata_t *m);

/* ModelConfig: the main fields of Triton's ModelConfig, plus the whole message as received so
 * a program with its own inference.proto can read every other field. */
typedef struct hlt_config_tensor {
    const char *name;
    hlt_dtype datatype;
    size_t n_dims;
    const int64_t *dims; /* without the batch dimension */
} hlt_config_tensor_t;

typedef struct hlt_instance_group {
    const char *name;
    const char *kind; /* "KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL" */
    int32_t count;
} hlt_instance_group_t;

typedef struct hlt_model_config {
    const char *name;
    const char *platform;
    const char *backend;
    int32_t max_batch_size; /* 0: the model does not batch */
    size_t n_inputs;
    const hlt_config_tensor_t *inputs;
    size_t n_outputs;
    const hlt_config_tensor_t *outputs;
    size_t n_instance_groups;
    const hlt_instance_group_t *instance_groups;
    bool dynamic_batching;
    size_t n_preferred_batch_sizes;
    const int32_t *preferred_batch_sizes;
    uint64_t max_queue_delay_us;
    const void *serialized; /* inference.ModelConfig, protobuf-encoded */
    size_t serialized_size;
} hlt_model_config_t;
/* Ownership: model, version borrowed; *out owned (hlt_model_config_free). */
hlt_status hlt_client_model_config(hlt_client_t *c, const char *model, const char *version,
                                   hlt_model_config_t **out, char *err, size_t errlen);
/* Accepts NULL. Not thread-safe for the same object. */
void hlt_model_config_free(hlt_model_config_t *m);

/* RepositoryIndex: every model the server knows, with its state ("READY", "UNAVAILABLE",
 * "LOADING", ...) and the reason when it is not ready. ready_only asks for ready models only. */
typedef struct hlt_model_index_entry {
    const char *name;
    const char *version;
    const char *state;
    const char *reason;
} hlt_model_index_entry_t;

typedef struct hlt_repository_index {
    size_t n_models;
    const hlt_model_index_entry_t *models;
} hlt_repository_index_t;
/* Ownership: *out owned (hlt_repository_index_free). */
hlt_status hlt_client_repository_index(hlt_client_t *c, bool ready_only,
                                       hlt_repository_index_t **out, char *err, size_t errlen);
/* Accepts NULL. Not thread-safe for the same object. */
void hlt_repository_index_free(hlt_repository_index_t *idx);

/* RepositoryModelLoad / RepositoryModelUnload (the server may refuse them: UNAVAILABLE when it
 * runs with --model-control-mode=none). Ownership: model borrowed. */
hlt_status hlt_client_model_load(hlt_client_t *c, const char *model, char *err, size_t errlen);
hlt_status hlt_client_model_unload(hlt_client_t *c, const char *model, char *err, size_t errlen);

/* ModelStatistics: cumulative counters and nanosecond totals since the model was loaded. */
typedef struct hlt_duration_stat {
    uint64_t count;
    uint64_t ns;
} hlt_duration_stat_t;

typedef struct hlt_batch_stat {
    uint64_t batch_size;
    hlt_duration_stat_t compute_input, compute_infer, compute_output;
} hlt_batch_stat_t;

typedef struct hlt_model_stat {
    const char *name;
    const char *version;
    uint64_t last_inference; /* ms since the epoch */
    uint64_t inference_count;
    uint64_t execution_count;
    hlt_duration_stat_t success, fail, queue, compute_input, compute_infer, compute_output,
        cache_hit, cache_miss;
    size_t n_batch_stats;
    const hlt_batch_stat_t *batch_stats;
} hlt_model_stat_t;

typedef struct hlt_model_statistics {
    size_t n_models;
    const hlt_model_stat_t *models;
} hlt_model_statistics_t;
/* model NULL or "": every model. Ownership: model, version borrowed; *out owned
 * (hlt_model_statistics_free). */
hlt_status hlt_client_model_statistics(hlt_client_t *c, const char *model, const char *version,
                                       hlt_model_statistics_t **out, char *err, size_t errlen);
/* Accepts NULL. Not thread-safe for the same object. */
void hlt_model_statistics_free(hlt_model_statistics_t *s);

/* ---------------------------------------------------------------------------------------------
 * Inference
 * ------------------------------------------------------------------------------------------- */

/* One input tensor. Everything is borrowed for the duration of the submitting call only:
 * the request is encoded (data copied once, into the outgoing gRPC message) before
 * hlt_client_infer / hlt_client_infer_async return, so the caller may reuse or free its
 * buffers as soon as they return, even while an asynchronous call is still in flight. */
typedef struct hlt_input {
    const char *name;
    hlt_dtype datatype;
    size_t rank;
    const int64_t *shape; /* full shape, batch dimension included for batching models */
    const void *data;     /* row-major, little-endian; BYTES: 4-byte LE length + bytes each */
    size_t size;          /* bytes; must equal prod(shape) * element size (except BYTES) */
} hlt_input_t;

typedef struct hlt_infer_request {
    const char *model;   /* required */
    const char *version; /* NULL or "": the server's choice (latest) */
    const char *id;      /* NULL or "": none; echoed by the server in the result */
    const hlt_input_t *inputs;
    size_t n_inputs;
    const char *const *outputs; /* names of the outputs wanted; NULL / 0: all of them */
    size_t n_outputs;
    /* Deadline: 0 uses the client's default timeout; -1: none; otherwise ms from submission. */
    int64_t timeout_ms;
    /* Absolute deadline in CLOCK_MONOTONIC nanoseconds (clock_gettime), overriding timeout_ms
     * when non-zero: lets a job give several calls one per-event deadline. */
    int64_t deadline_ns;
    /* Scheduling priority (1 = highest), sent as the "priority" parameter; 0: none. */
    uint64_t priority;
} hlt_infer_request_t;

/* One output of a result. `data` points INTO the response message that gRPC received: no copy
 * is made (except when gRPC delivered a large message in several pieces, which are joined once
 * into one buffer). Consequently `data` is NOT aligned to the element size: read it with
 * memcpy (or hlt_infer_result_copy_output), not by casting to float *. Everything stays valid
 * until hlt_infer_result_free. */
typedef struct hlt_output {
    const char *name;
    hlt_dtype datatype;        /* HLT_TYPE_INVALID if the server sent an unknown string */
    const char *datatype_name; /* as sent ("FP32") */
    size_t rank;
    const int64_t *shape;
    const void *data;
    size_t size; /* bytes */
} hlt_output_t;

typedef struct hlt_infer_result hlt_infer_result_t;

/* Synchronous inference: encodes the request, sends it (with retries and fail-over), waits for
 * the answer within the deadline. On HLT_OK *result is owned by the caller
 * (hlt_infer_result_free); on error *result is NULL and err holds the message (the server's,
 * for errors the server reported). Client-side checks (missing model name, data size that does
 * not match shape and datatype, a message over max_message_size) fail before anything is sent
 * with INVALID_ARGUMENT / RESOURCE_EXHAUSTED. A deadline already past gives DEADLINE_EXCEEDED
 * without sending. Ownership: req and everything it points to borrowed for this call only.
 * Thread-safe: any number of threads may infer through one client at the same time. */
hlt_status hlt_client_infer(hlt_client_t *c, const hlt_infer_request_t *req,
                            hlt_infer_result_t **result, char *err, size_t errlen);

/* Completion callback of an asynchronous call. Runs on the client's completion thread: keep it
 * short, never block in it and never call hlt_client_destroy from it (submitting new
 * asynchronous calls is fine). `result` is moved to the callback (free with
 * hlt_infer_result_free; NULL unless status is HLT_OK). `message` is borrowed for the duration
 * of the callback ("" on success). */
typedef void (*hlt_infer_callback)(hlt_status status, hlt_infer_result_t *result,
                                   const char *message, void *user_data);

/* Asynchronous inference: encodes the request and returns at once; the call (and its retries,
 * which the completion thread re-issues) proceeds in the background. Completion is reported
 * either to `callback` (then `handle` must be NULL) or through a handle (then `callback` must
 * be NULL and *handle receives it: poll / wait on it, then hlt_infer_handle_result). Errors
 * found before sending (the client-side checks of hlt_client_infer, an expired deadline, a
 * client being destroyed) are returned here and then nothing is reported later.
 * Ownership: req borrowed for this call only (see hlt_input_t); user_data borrowed until the
 * callback has run; *handle owned (hlt_infer_handle_free). Thread-safe. */
hlt_status hlt_client_infer_async(hlt_client_t *c, const hlt_infer_request_t *req,
                                  hlt_infer_callback callback, void *user_data,
                                  hlt_infer_handle_t **handle, char *err, size_t errlen);

/* True once the call has completed. Never blocks. Thread-safe. */
bool hlt_infer_poll(hlt_infer_handle_t *h);

/* Waits until the call completes or timeout_ms passes (-1: no limit; 0: same as poll). True
 * when complete. Thread-safe (several threads may wait on one handle). */
bool hlt_infer_wait(hlt_infer_handle_t *h, int64_t timeout_ms);

/* Outcome of a completed call: its status, with the message in err. On HLT_OK the result is
 * moved to *result the first time (later calls give NULL), owned by the caller
 * (hlt_infer_result_free); result may be NULL to leave it in the handle (freed with it).
 * FAILED_PRECONDITION if the call has not completed yet. Thread-safe. */
hlt_status hlt_infer_handle_result(hlt_infer_handle_t *h, hlt_infer_result_t **result, char *err,
                                   size_t errlen);

/* Releases a handle. If the call is still in flight it is abandoned: it finishes in the
 * background (within its deadline, or at hlt_client_destroy) and its result is discarded.
 * Accepts NULL. Not thread-safe for the same handle (no waiter may remain). */
void hlt_infer_handle_free(hlt_infer_handle_t *h);

/* Result accessors. All are thread-safe (a result is immutable) and return pointers borrowed
 * from the result. */
const char *hlt_infer_result_model_name(const hlt_infer_result_t *r);
const char *hlt_infer_result_model_version(const hlt_infer_result_t *r);
const char *hlt_infer_result_id(const hlt_infer_result_t *r); /* "" when none */
size_t hlt_infer_result_output_count(const hlt_infer_result_t *r);
/* i-th output in the server's order; NULL when i is out of range. */
const hlt_output_t *hlt_infer_result_output(const hlt_infer_result_t *r, size_t i);
/* Output by name; NULL when the result has no such output. */
const hlt_output_t *hlt_infer_result_output_by_name(const hlt_infer_result_t *r, const char *name);
/* Copies output `name` into dst (caller storage of dst_size bytes, any alignment suitable for
 * the caller's type). NOT_FOUND for an unknown name, INVALID_ARGUMENT when dst_size is smaller
 * than the output. Ownership: name borrowed. Thread-safe. */
hlt_status hlt_infer_result_copy_output(const hlt_infer_result_t *r, const char *name, void *dst,
                                        size_t dst_size, char *err, size_t errlen);
/* Releases the result and the response bytes its views point into. Accepts NULL. May be called
 * after hlt_client_destroy. Not thread-safe for the same result. */
void hlt_infer_result_free(hlt_infer_result_t *r);

#ifdef __cplusplus
}
#endif
#endif
