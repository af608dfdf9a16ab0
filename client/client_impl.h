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

/* snprintf into a caller's error buffer (NULL / 0 allowed); returns st. */
hlt_status client_fail(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
