/* Tensor element types of the KServe v2 protocol.
 *
 * The numeric values are those of Triton's ModelConfig DataType enum (TYPE_BOOL = 1, ...), so a
 * value converts to and from the config enum without a table. */
#ifndef HLTINFER_DTYPE_H
#define HLTINFER_DTYPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hlt_dtype {
    HLT_TYPE_INVALID = 0,
    HLT_TYPE_BOOL = 1,
    HLT_TYPE_UINT8 = 2,
    HLT_TYPE_UINT16 = 3,
    HLT_TYPE_UINT32 = 4,
    HLT_TYPE_UINT64 = 5,
    HLT_TYPE_INT8 = 6,
    HLT_TYPE_INT16 = 7,
    HLT_TYPE_INT32 = 8,
    HLT_TYPE_INT64 = 9,
    HLT_TYPE_FP16 = 10,
    HLT_TYPE_FP32 = 11,
    HLT_TYPE_FP64 = 12,
    HLT_TYPE_BYTES = 13,
    HLT_TYPE_BF16 = 14,
} hlt_dtype;

#define HLT_TYPE_COUNT 15

/* Protocol string ("FP32", "BYTES"), or NULL for HLT_TYPE_INVALID / out of range. Static. */
const char *hlt_dtype_name(hlt_dtype t);
/* Config enum name ("TYPE_FP32", "TYPE_STRING"), or NULL. Static. */
const char *hlt_dtype_config_name(hlt_dtype t);
/* Parses a protocol string of len bytes (not NUL-terminated); HLT_TYPE_INVALID if unknown. */
hlt_dtype hlt_dtype_from_name(const char *s, size_t len);
/* Parses a config enum name ("TYPE_FP32"); HLT_TYPE_INVALID if unknown. */
hlt_dtype hlt_dtype_from_config_name(const char *s);
/* Bytes per element; 0 for BYTES (variable) and INVALID. */
size_t hlt_dtype_size(hlt_dtype t);

#ifdef __cplusplus
}
#endif
#endif
