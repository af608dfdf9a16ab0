/* Datatype and status tables shared by the server and the client library. */
#include "hltinfer/dtype.h"
#include "hltinfer/status.h"

#include <string.h>

static const struct {
    const char *name;
    const char *config_name;
    size_t size;
} types[HLT_TYPE_COUNT] = {
    [HLT_TYPE_INVALID] = {NULL, NULL, 0},
    [HLT_TYPE_BOOL] = {"BOOL", "TYPE_BOOL", 1},
    [HLT_TYPE_UINT8] = {"UINT8", "TYPE_UINT8", 1},
    [HLT_TYPE_UINT16] = {"UINT16", "TYPE_UINT16", 2},
    [HLT_TYPE_UINT32] = {"UINT32", "TYPE_UINT32", 4},
    [HLT_TYPE_UINT64] = {"UINT64", "TYPE_UINT64", 8},
    [HLT_TYPE_INT8] = {"INT8", "TYPE_INT8", 1},
    [HLT_TYPE_INT16] = {"INT16", "TYPE_INT16", 2},
    [HLT_TYPE_INT32] = {"INT32", "TYPE_INT32", 4},
    [HLT_TYPE_INT64] = {"INT64", "TYPE_INT64", 8},
    [HLT_TYPE_FP16] = {"FP16", "TYPE_FP16", 2},
    [HLT_TYPE_FP32] = {"FP32", "TYPE_FP32", 4},
    [HLT_TYPE_FP64] = {"FP64", "TYPE_FP64", 8},
    [HLT_TYPE_BYTES] = {"BYTES", "TYPE_STRING", 0},
    [HLT_TYPE_BF16] = {"BF16", "TYPE_BF16", 2},
};

const char *hlt_dtype_name(hlt_dtype t)
{
    return (unsigned)t < HLT_TYPE_COUNT ? types[t].name : NULL;
}

const char *hlt_dtype_config_name(hlt_dtype t)
{
    return (unsigned)t < HLT_TYPE_COUNT ? types[t].config_name : NULL;
}

size_t hlt_dtype_size(hlt_dtype t)
{
    return (unsigned)t < HLT_TYPE_COUNT ? types[t].size : 0;
}

hlt_dtype hlt_dtype_from_name(const char *s, size_t len)
{
    for (int i = 1; i < HLT_TYPE_COUNT; i++)
        if (strlen(types[i].name) == len && memcmp(types[i].name, s, len) == 0)
            return (hlt_dtype)i;
    return HLT_TYPE_INVALID;
}

hlt_dtype hlt_dtype_from_config_name(const char *s)
{
    for (int i = 1; i < HLT_TYPE_COUNT; i++)
        if (strcmp(types[i].config_name, s) == 0)
            return (hlt_dtype)i;
    return HLT_TYPE_INVALID;
}

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *hlt_status_name(hlt_status s)
{
    if ((unsigned)s < sizeof status_names / sizeof status_names[0])
        return status_names[s];
    return "UNKNOWN";
}
