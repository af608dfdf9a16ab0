/* onnx_load: ONNX ModelProto bytes -> engine graph IR.
 *
 * Implements engine_graph_load_file and engine_graph_load_buffer (engine.h). The only module
 * that sees protobuf-c types (proto/onnx.proto, our subset of ONNX's schema): it unpacks the
 * model, converts initializers and Constant nodes to constant tensors, parses and defaults each
 * supported op's attributes according to the model's default-domain opset, resolves tensor
 * names, and hands the result to graph_finalize(). Called by the server's model loader, once
 * per model version; thread-safe (no shared state).
 *
 * Rules it applies:
 *  - graph inputs that are also initializers are constants, not inputs (ONNX IR >= 4; for older
 *    IR such inputs only carried defaults, which we treat the same way);
 *  - initializers: FLOAT and INT64 as stored, INT32 widened to INT64 and DOUBLE narrowed to
 *    FLOAT (the engine computes in those two types); any other type loads only if no live node
 *    uses it; data from raw_data (little-endian) or the typed repeated field; external data is
 *    UNIMPLEMENTED with a message saying how to embed it;
 *  - graph inputs and outputs must be FLOAT or INT64 (UNIMPLEMENTED otherwise);
 *  - an op outside the supported set, or in a non-default domain, is UNIMPLEMENTED:
 *    "unsupported op 'Conv' (node 'conv1', domain '')". */
#ifndef HLT_ENGINE_ONNX_LOAD_H
#define HLT_ENGINE_ONNX_LOAD_H

#include "engine.h"

/* ONNX TensorProto.DataType name ("FLOAT16"), or "UNKNOWN". Static string; thread-safe. */
const char *onnx_dtype_name(int32_t onnx_type);

/* hlt dtype for an ONNX data type (HLT_TYPE_INVALID if there is no counterpart). */
hlt_dtype onnx_to_hlt_dtype(int32_t onnx_type);

#endif
