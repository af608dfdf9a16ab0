/* test_util: helpers shared by the engine's criterion suites.
 *
 * - mb_*: builds ONNX ModelProto messages in memory with protobuf-c (our proto/onnx.proto), so a
 *   test states its graph next to its float64 reference instead of depending on files;
 * - tu_run: load + create + prepare + run one model and hand back its outputs;
 * - tu_rand: a deterministic generator; tu_close: the tolerance check every suite uses.
 * Everything aborts the current test (criterion assert) on failure. Not thread-safe; criterion
 * runs each test in its own process. */
#ifndef HLT_TEST_UTIL_H
#define HLT_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "onnx.pb-c.h"

/* ONNX TensorProto.DataType codes used by the tests. */
#define TU_FLOAT 1
#define TU_INT32 6
#define TU_INT64 7
#define TU_FLOAT16 10
#define TU_DOUBLE 11

typedef struct mb mb_t;

/* New model with the default-domain opset and ir_version 8. Free with mb_free. */
mb_t *mb_new(int64_t opset);
void mb_free(mb_t *m);
/* The ModelProto being built (owned by m), for tests that corrupt it on purpose. */
Onnx__ModelProto *mb_proto(mb_t *m);

/* Graph input / output. dims: -1 becomes the symbolic dim "N", -2 "M"; rank -1 omits the
 * shape. */
void mb_input(mb_t *m, const char *name, int32_t onnx_type, int32_t rank, const int64_t *dims);
void mb_output(mb_t *m, const char *name, int32_t onnx_type, int32_t rank, const int64_t *dims);

/* Initializers (data copied; stored as raw_data unless typed is true). */
Onnx__TensorProto *mb_init_f32(mb_t *m, const char *name, int32_t rank, const int64_t *dims,
                               const float *data, bool typed);
Onnx__TensorProto *mb_init_i64(mb_t *m, const char *name, int32_t rank, const int64_t *dims,
                               const int64_t *data, bool typed);
/* A detached TensorProto (e.g. for a Constant's value); owned by whoever attaches it. */
Onnx__TensorProto *mb_tensor(const char *name, int32_t onnx_type, int32_t rank, const int64_t *dims,
                             const void *raw, size_t raw_len);

/* Node with comma-separated input and output names ("a,,c" leaves input 1 empty). */
Onnx__NodeProto *mb_node(mb_t *m, const char *op, const char *name, const char *inputs,
                         const char *outputs);
void mb_attr_int(Onnx__NodeProto *n, const char *name, int64_t v);
void mb_attr_float(Onnx__NodeProto *n, const char *name, float v);
void mb_attr_ints(Onnx__NodeProto *n, const char *name, int32_t count, const int64_t *v);
void mb_attr_floats(Onnx__NodeProto *n, const char *name, int32_t count, const float *v);
void mb_attr_string(Onnx__NodeProto *n, const char *name, const char *v);
void mb_attr_tensor(Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t); /* moves t */

/* Serialises the model; free the result with free(). */
uint8_t *mb_pack(mb_t *m, size_t *len);
/* Packs and loads; returns the status and fills *g on success. */
hlt_status mb_load(mb_t *m, engine_graph_t **g, char *err, size_t errlen);

/* Loads m (asserting success), prepares with in_shapes, runs on inputs and returns malloc'd
 * outputs in outs[i] (free each) with their shapes in out_shapes. */
void tu_run(mb_t *m, const engine_shape_t *in_shapes, const void *const *inputs,
            engine_shape_t *out_shapes, void **outs);

/* Deterministic uniform float in [lo, hi). */
float tu_rand(uint64_t *state, float lo, float hi);
void tu_fill(uint64_t *state, float *x, int64_t n, float lo, float hi);

/* |got - want| <= rel * scale + abs_floor, scale = max(|want|, mag). Asserts with index and
 * context on failure. mag may be NULL (then scale = |want|). */
void tu_close(const char *what, const float *got, const double *want, const double *mag, int64_t n,
              double rel, double abs_floor);

/* Shape literal helpers. */
engine_shape_t tu_shape(int32_t rank, const int64_t *dims);
int64_t tu_numel(const engine_shape_t *s);

/* Default tolerance of the op tests: 1e-5 relative + 1e-6 absolute. */
#define TU_REL 1e-5
#define TU_ABS 1e-6

#endif
