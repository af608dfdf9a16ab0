/* client_impl: what client.c (connections, call engine, inference) shares with client_meta.c
 * (health, metadata, repository and statistics RPCs). Private to libhltinfer. */
#ifndef HLT_CLIENT_IMPL_H
#define HLT_CLIENT_IMPL_H

#include "hltinfer/client.h"

#include <grpc/slice.h>
#include <stdarg.h>
#include <stddef.h>

/* Full method paths of the KServe v2 / Triton service. */
#define HLT_RPC(name) "/inference.GRPCInferenceService/" name

/* Runs one unary RPC synchronously on the caller's thread, with the client's default deadline,
 * retries and fail-over. `request` (the encoded request message) moves into the call on every
 * path. On HLT_OK *response owns the whole response message as one contiguous slice
 * (grpc_slice_unref it); on error *response is untouched and err holds the message.
 * Thread-safe. */
hlt_status client_unary(hlt_client_t *c, const char *method, grpc_slice request,
                        grpc_slice *response, char *err, size_t errlen);

/* Completion of an asynchronous unary call other than ModelInfer, on the client's completion
 * thread: `response` (the whole response message; empty unless st is HLT_OK) and `message`
 * ("" on success) are borrowed for the duration of the call; `fn` and `user` are what the
 * submitter passed (fn: the public callback, cast back by the caller's module). */
typedef void (*client_async_cb)(hlt_status st, grpc_slice response, const char *message,
                                void (*fn)(void), void *user);

/* Starts one unary RPC asynchronously, with the client's default deadline, retries and
 * fail-over (re-issued by the completion thread), reported either to cb (handle NULL) or
 * through *handle (cb NULL; read it with client_handle_response). `request` moves into the call
 * on every path. Errors found before sending are returned here and nothing is reported later.
 * Thread-safe. */
hlt_status client_unary_async(hlt_client_t *c, const char *method, grpc_slice request,
                              client_async_cb cb, void (*fn)(void), void *user,
                              hlt_infer_handle_t **handle, char *err, size_t errlen);

/* The outcome of a completed asynchronous unary call: its status (message in err) and, on
 * HLT_OK, a new reference to its response message (grpc_slice_unref it). FAILED_PRECONDITION
 * while the call is in flight. Thread-safe. */
hlt_status client_handle_response(hlt_infer_handle_t *h, grpc_slice *response, char *err,
                                  size_t errlen);

/* snprintf into a caller's error buffer (NULL / 0 allowed); returns st. */
hlt_status client_fail(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
