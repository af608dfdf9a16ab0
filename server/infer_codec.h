/* infer_codec: ModelInferRequest decoding and ModelInferResponse encoding, by hand.
 *
 * The request is parsed in place: names, ids and raw tensor bytes are (pointer, length) views
 * into the received message, which the caller keeps alive. Typed `contents` (rare; small) are
 * converted into an owned little-endian buffer so that every input ends up as one contiguous
 * byte range. The response is laid out in one buffer whose output payload regions are handed
 * to the engine, which writes the results straight into the message that gRPC sends.
 *
 * Called by the frontend (decode, on the completion-queue thread) and by the model workers
 * (encode). No shared state; thread-safe for distinct objects. */
#ifndef HLT_INFER_CODEC_H
#define HLT_INFER_CODEC_H

#include "hltinfer/dtype.h"
#include "hltinfer/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INFER_MAX_RANK 8

typedef struct str_view {
    const char *p;
    size_t len;
} str_view_t;

typedef struct infer_input {
    str_view_t name, datatype;
    int32_t rank;
    int64_t shape[INFER_MAX_RANK];
    bool has_contents;   /* typed InferTensorContents present */
    bool shm;            /* shared_memory_region parameter present */
    const uint8_t *data; /* resolved by infer_request_resolve_data */
    size_t size;
    void *owned; /* converted typed contents (free()) */
} infer_input_t;

typedef struct infer_output_req {
    str_view_t name;
    bool classification;
    bool shm;
} infer_output_req_t;

typedef struct infer_request_msg {
    str_view_t model_name, model_version, id;
    size_t n_inputs, n_outputs, n_raw;
    infer_input_t *inputs;
    infer_output_req_t *outputs;
    str_view_t *raw; /* raw_input_contents entries (bytes) */
    bool has_priority, has_timeout;
    uint64_t priority;
    int64_t timeout_us;
    /* typed contents sub-messages kept for resolve: (ptr,len) per input, NULL if absent */
    str_view_t *contents;
} infer_request_msg_t;

/* Decodes a ModelInferRequest of len bytes. The message buffer is borrowed and must outlive
 * *msg. On success msg's arrays are owned (infer_request_msg_free). INVALID_ARGUMENT with a
 * message on malformed protobuf or on a shape of more than INFER_MAX_RANK dims; msg is then
 * left empty (freeing it is still allowed). */
hlt_status infer_request_decode(const uint8_t *buf, size_t len, infer_request_msg_t *msg, char *err,
                                size_t errlen);

/* Gives every input its data: the raw_input_contents entry (running index over inputs without
 * typed contents or shared memory, as Triton does) or its typed contents converted to
 * little-endian bytes of `dtype` (the model's declared type for that input, used to pick the
 * contents arm). dtypes[i] is for msg->inputs[i]. INVALID_ARGUMENT (naming model and tensor)
 * when both raw and typed data are given, data is missing, a raw entry is left over, or the
 * typed arm does not match. */
hlt_status infer_request_resolve_data(infer_request_msg_t *msg, const hlt_dtype *dtypes,
                                      const char *model, char *err, size_t errlen);

/* Accepts a zeroed msg. */
void infer_request_msg_free(infer_request_msg_t *msg);

/* One output of a response: name (NUL-terminated), datatype, shape and payload size. */
typedef struct infer_output_desc {
    const char *name;
    hlt_dtype dtype;
    int32_t rank;
    const int64_t *shape;
    size_t size;
} infer_output_desc_t;

/* Size of the ModelInferResponse carrying these outputs. */
size_t infer_response_size(const char *model_name, const char *version, str_view_t id,
                           const infer_output_desc_t *outs, size_t n);
/* Writes the response into buf (exactly infer_response_size bytes) and sets payload[i] to
 * where output i's raw bytes go; the caller (the engine) fills them afterwards. */
void infer_response_write(uint8_t *buf, const char *model_name, const char *version, str_view_t id,
                          const infer_output_desc_t *outs, size_t n, uint8_t **payload);

#endif
