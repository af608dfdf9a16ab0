/* infer_wire: libhltinfer's ModelInferRequest encoder and in-place ModelInferResponse parser.
 *
 * Why by hand (and not protobuf-c): protobuf-c packs `bytes` fields from an intermediate
 * message tree and copies every `bytes` field on unpack. Here the request is written straight
 * into the buffer gRPC sends (each input's bytes copied exactly once, into its
 * raw_input_contents field), and the response is parsed where gRPC received it: outputs are
 * (pointer, size) views into the message, which the result keeps alive.
 *
 * Called by client.c (encode on the submitting thread, parse on the thread that sees the
 * completion). No shared state: thread-safe for distinct objects. */
#ifndef HLT_CLIENT_INFER_WIRE_H
#define HLT_CLIENT_INFER_WIRE_H

#include "hltinfer/client.h"

#include <grpc/slice.h>
#include <stddef.h>
#include <stdint.h>

/* Checks the request on the client side (model name, tensor names, datatypes, shapes, and that
 * every fixed-size input carries prod(shape) * element-size bytes) and computes the size of its
 * encoding. INVALID_ARGUMENT with a message naming the model and tensor otherwise.
 * Ownership: req borrowed. */
hlt_status infer_request_size(const hlt_infer_request_t *req, size_t *size, char *err,
                              size_t errlen);

/* Writes the ModelInferRequest into buf, exactly `size` bytes as infer_request_size computed
 * for the same request. Ownership: req and buf borrowed. */
void infer_request_write(const hlt_infer_request_t *req, uint8_t *buf, size_t size);

/* Parses a ModelInferResponse held in `msg` (one contiguous slice) without copying tensor
 * bytes. On HLT_OK the slice reference moves into *out (released by hlt_infer_result_free);
 * on error nothing moves (the caller still owns msg) and the status is INTERNAL (malformed
 * message, raw_output_contents that do not match the outputs or their shapes) or UNIMPLEMENTED
 * (typed `contents` outputs, which no Triton-compatible server sends). */
hlt_status infer_result_parse(grpc_slice msg, hlt_infer_result_t **out, char *err, size_t errlen);

#endif
