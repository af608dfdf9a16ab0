/* hltinfer status codes, shared by the server and libhltinfer.
 *
 * Every fallible function returns an hlt_status: 0 is success, every other value equals the
 * gRPC status code with the same meaning, so a status travels over the wire unchanged. */
#ifndef HLTINFER_STATUS_H
#define HLTINFER_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hlt_status {
    HLT_OK = 0,
    HLT_CANCELLED = 1,
    HLT_UNKNOWN = 2,
    HLT_INVALID_ARGUMENT = 3,
    HLT_DEADLINE_EXCEEDED = 4,
    HLT_NOT_FOUND = 5,
    HLT_ALREADY_EXISTS = 6,
    HLT_PERMISSION_DENIED = 7,
    HLT_RESOURCE_EXHAUSTED = 8,
    HLT_FAILED_PRECONDITION = 9,
    HLT_ABORTED = 10,
    HLT_OUT_OF_RANGE = 11,
    HLT_UNIMPLEMENTED = 12,
    HLT_INTERNAL = 13,
    HLT_UNAVAILABLE = 14,
    HLT_DATA_LOSS = 15,
    HLT_UNAUTHENTICATED = 16,
} hlt_status;

/* Upper-case gRPC name of a status ("INVALID_ARGUMENT"); "UNKNOWN" for values out of range.
 * Returns a static string. Thread-safe. */
const char *hlt_status_name(hlt_status s);

#ifdef __cplusplus
}
#endif
#endif
