/* Tests for server/infer_codec.c: ModelInferRequest decoding in place and ModelInferResponse
 * encoding. Requests are built with protobuf-c (the reference encoder), or byte by byte with
 * the wire writers where protobuf-c cannot produce the encoding under test; responses are
 * checked by unpacking them with protobuf-c. Buffers are heap copies of exactly the message
 * bytes so that the ASan build catches any read past the end. */
#include "infer_codec.h"
#include "test_util.h"
#include "pbwire.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 512

/* ---- building blocks ---- */

#define ARM_BOOL INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM
#define ARM_INT64 INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM
#define ARM_STRING INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM
#define ARM_DOUBLE INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM
#define ARM_UINT64 INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM

typedef struct req_param {
    Inference__ModelInferRequest__ParametersEntry e;
    Inference__InferParameter v;
} req_param_t;

static void req_param(req_param_t *p, const char *key, int arm, uint64_t u, const char *s)
{
    inference__model_infer_request__parameters_entry__init(&p->e);
    inference__infer_parameter__init(&p->v);
    p->e.key = (char *)key;
    p->e.value = &p->v;
    p->v.parameter_choice_case = (Inference__InferParameter__ParameterChoiceCase)arm;
    switch (arm) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
        p->v.bool_param = u != 0;
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
        p->v.int64_param = (int64_t)u;
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
        p->v.string_param = (char *)s;
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM:
        p->v.double_param = (double)u;
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
        p->v.uint64_param = u;
        break;
    }
}

/* A request with the given request-level parameters and one FP32 input of raw data. */
static uint8_t *pack_with_params(req_param_t *params, size_t n, size_t *len)
{
    static const float data[2] = {1.0f, 2.0f};
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__ParametersEntry *pp[8];
    for (size_t i = 0; i < n; i++)
        pp[i] = &params[i].e;
    Inference__ModelInferRequest__InferInputTensor in;
    inference__model_infer_request__infer_input_tensor__init(&in);
    int64_t shape[2] = {1, 2};
    in.name = "x";
    in.datatype = "FP32";
    in.n_shape = 2;
    in.shape = shape;
    Inference__ModelInferRequest__InferInputTensor *inp = &in;
    ProtobufCBinaryData raw = {sizeof data, (uint8_t *)data};
    req.model_name = "m";
    req.n_parameters = n;
    req.parameters = pp;
    req.n_inputs = 1;
    req.inputs = &inp;
    req.n_raw_input_contents = 1;
    req.raw_input_contents = &raw;
    return tu_pack(&req, len);
}

/* Decodes and expects success. */
static void decode_ok(const uint8_t *buf, size_t len, infer_request_msg_t *msg)
{
    char err[ERRLEN] = "";
    hlt_status st = infer_request_decode(buf, len, msg, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "decode failed: %s", err);
}

/* Decodes and expects INVALID_ARGUMENT with a message containing want. */
static void decode_fails(const uint8_t *buf, size_t len, const char *want)
{
    char err[ERRLEN] = "";
    infer_request_msg_t msg;
    hlt_status st = infer_request_decode(buf, len, &msg, err, sizeof err);
    cr_assert_eq(st, HLT_INVALID_ARGUMENT, "status %d for a bad request", st);
    cr_assert(strstr(err, want), "message '%s' should mention '%s'", err, want);
    cr_assert_eq(msg.n_inputs, 0, "a failed decode leaves msg empty");
    cr_assert_null(msg.inputs);
    infer_request_msg_free(&msg); /* still allowed */
}

static bool sv_is(str_view_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static bool points_into(const void *p, size_t n, const uint8_t *buf, size_t len)
{
    const uint8_t *q = p;
    return q >= buf && q + n <= buf + len;
}

/* ---- decoding: names, shapes, raw data ---- */

Test(infer_codec, decode_gives_views_of_names_version_and_id)
{
    const float x[3] = {1, 2, 3};
    tu_input_t in = {"input0", "FP32", 2, {1, 3}, x, sizeof x};
    size_t len;
    uint8_t *buf = tu_pack_raw_request("my_model", "17", "req-42", &in, 1, NULL, 0, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert(sv_is(msg.model_name, "my_model"));
    cr_assert(sv_is(msg.model_version, "17"));
    cr_assert(sv_is(msg.id, "req-42"));
    cr_assert(points_into(msg.model_name.p, msg.model_name.len, buf, len),
              "names are views into the message, not copies");
    cr_assert(points_into(msg.id.p, msg.id.len, buf, len));
    cr_assert_eq(msg.n_inputs, 1);
    cr_assert(sv_is(msg.inputs[0].name, "input0"));
    cr_assert(sv_is(msg.inputs[0].datatype, "FP32"));
    cr_assert_not(msg.has_priority);
    cr_assert_not(msg.has_timeout);
    cr_assert_eq(msg.n_outputs, 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, decode_of_empty_message_gives_empty_views)
{
    uint8_t *buf = calloc(1, 1);
    infer_request_msg_t msg;
    decode_ok(buf, 0, &msg);
    cr_assert_eq(msg.model_name.len, 0);
    cr_assert_not_null(msg.model_name.p);
    cr_assert_eq(msg.model_version.len, 0);
    cr_assert_eq(msg.id.len, 0);
    cr_assert_eq(msg.n_inputs, 0);
    cr_assert_eq(msg.n_outputs, 0);
    cr_assert_eq(msg.n_raw, 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, decode_reads_packed_shapes_of_every_input)
{
    const float a[6] = {0}, b[2] = {0};
    tu_input_t in[2] = {{"a", "FP32", 3, {1, 2, 3}, a, sizeof a},
                        {"b", "FP32", 2, {2, 100000000000LL}, b, sizeof b}};
    size_t len;
    uint8_t *buf = tu_pack_raw_request("m", NULL, NULL, in, 2, NULL, 0, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert_eq(msg.n_inputs, 2);
    cr_assert_eq(msg.inputs[0].rank, 3);
    cr_assert_eq(msg.inputs[0].shape[0], 1);
    cr_assert_eq(msg.inputs[0].shape[1], 2);
    cr_assert_eq(msg.inputs[0].shape[2], 3);
    cr_assert_eq(msg.inputs[1].rank, 2);
    cr_assert_eq(msg.inputs[1].shape[1], 100000000000LL);
    infer_request_msg_free(&msg);
    free(buf);
}

/* proto2-style writers send repeated int64 unpacked (one key per element); both must parse. */
Test(infer_codec, decode_reads_unpacked_shape)
{
    uint8_t in[64], *p = in;
    p = pb_put_len_header(p, 1, 1);
    *p++ = 'x';
    p = pb_put_len_header(p, 2, 5);
    memcpy(p, "INT64", 5);
    p += 5;
    for (int d = 1; d <= 3; d++) {
        p = pb_put_key(p, 3, PB_VARINT);
        p = pb_put_varint(p, (uint64_t)(d * 10));
    }
    size_t in_len = (size_t)(p - in);
    uint8_t msgbuf[128], *q = msgbuf;
    q = pb_put_len_header(q, 5, in_len);
    memcpy(q, in, in_len);
    q += in_len;
    size_t len = (size_t)(q - msgbuf);
    uint8_t *buf = malloc(len);
    memcpy(buf, msgbuf, len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert_eq(msg.n_inputs, 1);
    cr_assert_eq(msg.inputs[0].rank, 3);
    cr_assert_eq(msg.inputs[0].shape[0], 10);
    cr_assert_eq(msg.inputs[0].shape[1], 20);
    cr_assert_eq(msg.inputs[0].shape[2], 30);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, raw_contents_point_into_the_message)
{
    const float a[4] = {1, 2, 3, 4};
    const int64_t b[2] = {-5, 7};
    tu_input_t in[2] = {{"a", "FP32", 2, {1, 4}, a, sizeof a}, {"b", "INT64", 1, {2}, b, sizeof b}};
    size_t len;
    uint8_t *buf = tu_pack_raw_request("m", NULL, NULL, in, 2, NULL, 0, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert_eq(msg.n_raw, 2);
    hlt_dtype dt[2] = {HLT_TYPE_FP32, HLT_TYPE_INT64};
    char err[ERRLEN] = "";
    cr_assert_eq(infer_request_resolve_data(&msg, dt, "m", err, sizeof err), HLT_OK, "%s", err);
    for (size_t i = 0; i < 2; i++) {
        cr_assert(points_into(msg.inputs[i].data, msg.inputs[i].size, buf, len),
                  "input %zu's data must be a view into the received buffer", i);
        cr_assert_null(msg.inputs[i].owned, "raw data is never copied");
    }
    cr_assert_eq(msg.inputs[0].size, sizeof a);
    cr_assert_eq(memcmp(msg.inputs[0].data, a, sizeof a), 0);
    cr_assert_eq(msg.inputs[1].size, sizeof b);
    cr_assert_eq(memcmp(msg.inputs[1].data, b, sizeof b), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

/* ---- parameters ---- */

Test(infer_codec, priority_in_uint64_arm_is_read)
{
    req_param_t p[1];
    req_param(&p[0], "priority", ARM_UINT64, 3, NULL);
    size_t len;
    uint8_t *buf = pack_with_params(p, 1, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert(msg.has_priority);
    cr_assert_eq(msg.priority, 3);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, priority_in_int64_arm_is_read)
{
    req_param_t p[1];
    req_param(&p[0], "priority", ARM_INT64, 2, NULL);
    size_t len;
    uint8_t *buf = pack_with_params(p, 1, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert(msg.has_priority);
    cr_assert_eq(msg.priority, 2);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, priority_zero_is_present)
{
    req_param_t p[1];
    req_param(&p[0], "priority", ARM_UINT64, 0, NULL);
    size_t len;
    uint8_t *buf = pack_with_params(p, 1, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert(msg.has_priority);
    cr_assert_eq(msg.priority, 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, negative_int64_priority_is_rejected)
{
    req_param_t p[1];
    req_param(&p[0], "priority", ARM_INT64, (uint64_t)(int64_t)-1, NULL);
    size_t len;
    uint8_t *buf = pack_with_params(p, 1, &len);
    decode_fails(buf, len, "priority");
    free(buf);
}

Test(infer_codec, timeout_is_read_from_int64_and_uint64_arms)
{
    req_param_t p[1];
    req_param(&p[0], "timeout", ARM_INT64, 250000, NULL);
    size_t len;
    uint8_t *buf = pack_with_params(p, 1, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert(msg.has_timeout);
    cr_assert_eq(msg.timeout_us, 250000);
    cr_assert_not(msg.has_priority);
    infer_request_msg_free(&msg);
    free(buf);

    req_param(&p[0], "timeout", ARM_UINT64, 1000, NULL);
    buf = pack_with_params(p, 1, &len);
    decode_ok(buf, len, &msg);
    cr_assert(msg.has_timeout);
    cr_assert_eq(msg.timeout_us, 1000);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, unknown_parameters_are_ignored)
{
    req_param_t p[6];
    req_param(&p[0], "sequence_id", ARM_UINT64, 77, NULL);
    req_param(&p[1], "sequence_start", ARM_BOOL, 1, NULL);
    req_param(&p[2], "triton_enable_empty_final_response", ARM_BOOL, 0, NULL);
    req_param(&p[3], "headers", ARM_STRING, 0, "x-trace: 1");
    req_param(&p[4], "ratio", ARM_DOUBLE, 2, NULL);
    req_param(&p[5], "priority", ARM_STRING, 0, "high"); /* wrong arm: not a priority */
    size_t len;
    uint8_t *buf = pack_with_params(p, 6, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert_not(msg.has_priority);
    cr_assert_not(msg.has_timeout);
    cr_assert_eq(msg.n_inputs, 1);
    cr_assert_eq(msg.n_raw, 1);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, priority_and_timeout_together)
{
    req_param_t p[3];
    req_param(&p[0], "timeout", ARM_INT64, 5, NULL);
    req_param(&p[1], "other", ARM_STRING, 0, "v");
    req_param(&p[2], "priority", ARM_UINT64, 1, NULL);
    size_t len;
    uint8_t *buf = pack_with_params(p, 3, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert(msg.has_priority);
    cr_assert_eq(msg.priority, 1);
    cr_assert(msg.has_timeout);
    cr_assert_eq(msg.timeout_us, 5);
    infer_request_msg_free(&msg);
    free(buf);
}

/* ---- requested outputs ---- */

Test(infer_codec, requested_outputs_are_listed_in_order)
{
    const float x[1] = {0};
    tu_input_t in = {"x", "FP32", 1, {1}, x, sizeof x};
    const char *outs[3] = {"logits", "probabilities", "z"};
    size_t len;
    uint8_t *buf = tu_pack_raw_request("m", NULL, NULL, &in, 1, outs, 3, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert_eq(msg.n_outputs, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert(sv_is(msg.outputs[i].name, outs[i]), "output %zu", i);
        cr_assert_not(msg.outputs[i].classification);
        cr_assert_not(msg.outputs[i].shm);
    }
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, output_parameters_flag_classification_and_shared_memory)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferRequestedOutputTensor o[2], *op[2] = {&o[0], &o[1]};
    Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry e[3], *ep0[1],
        *ep1[2];
    Inference__InferParameter v[3];
    for (int i = 0; i < 3; i++) {
        inference__model_infer_request__infer_requested_output_tensor__parameters_entry__init(
            &e[i]);
        inference__infer_parameter__init(&v[i]);
        e[i].value = &v[i];
    }
    e[0].key = "classification";
    v[0].parameter_choice_case = ARM_INT64;
    v[0].int64_param = 3;
    e[1].key = "shared_memory_region";
    v[1].parameter_choice_case = ARM_STRING;
    v[1].string_param = "region0";
    e[2].key = "unknown";
    v[2].parameter_choice_case = ARM_BOOL;
    v[2].bool_param = 1;
    ep0[0] = &e[0];
    ep1[0] = &e[2];
    ep1[1] = &e[1];
    inference__model_infer_request__infer_requested_output_tensor__init(&o[0]);
    inference__model_infer_request__infer_requested_output_tensor__init(&o[1]);
    o[0].name = "a";
    o[0].n_parameters = 1;
    o[0].parameters = ep0;
    o[1].name = "b";
    o[1].n_parameters = 2;
    o[1].parameters = ep1;
    req.model_name = "m";
    req.n_outputs = 2;
    req.outputs = op;
    size_t len;
    uint8_t *buf = tu_pack(&req, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert_eq(msg.n_outputs, 2);
    cr_assert(msg.outputs[0].classification);
    cr_assert_not(msg.outputs[0].shm);
    cr_assert_not(msg.outputs[1].classification);
    cr_assert(msg.outputs[1].shm);
    infer_request_msg_free(&msg);
    free(buf);
}

/* ---- typed contents ---- */

/* A request with one input of `datatype` whose data is the typed contents c. */
static uint8_t *pack_typed(const char *datatype, int64_t n, Inference__InferTensorContents *c,
                           bool with_raw, size_t *len)
{
    static const uint8_t raw_bytes[8] = {0};
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor in, *inp = &in;
    inference__model_infer_request__infer_input_tensor__init(&in);
    int64_t shape[1] = {n};
    in.name = "t";
    in.datatype = (char *)datatype;
    in.n_shape = 1;
    in.shape = shape;
    in.contents = c;
    ProtobufCBinaryData raw = {sizeof raw_bytes, (uint8_t *)raw_bytes};
    req.model_name = "m";
    req.n_inputs = 1;
    req.inputs = &inp;
    if (with_raw) {
        req.n_raw_input_contents = 1;
        req.raw_input_contents = &raw;
    }
    return tu_pack(&req, len);
}

/* Decodes + resolves one typed input as dtype; returns the message for inspection. */
static void resolve_typed(const uint8_t *buf, size_t len, hlt_dtype dt, infer_request_msg_t *msg)
{
    decode_ok(buf, len, msg);
    cr_assert_eq(msg->n_inputs, 1);
    cr_assert(msg->inputs[0].has_contents);
    char err[ERRLEN] = "";
    hlt_status st = infer_request_resolve_data(msg, &dt, "m", err, sizeof err);
    cr_assert_eq(st, HLT_OK, "resolve: %s", err);
    cr_assert_not_null(msg->inputs[0].owned);
    cr_assert_eq(msg->inputs[0].data, msg->inputs[0].owned,
                 "typed contents are converted into an owned buffer");
}

Test(infer_codec, typed_fp32_contents_become_little_endian_bytes)
{
    float v[5] = {1.5f, -2.25f, 0.0f, 3.4e38f, -1e-30f};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_fp32_contents = 5;
    c.fp32_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("FP32", 5, &c, false, &len);
    infer_request_msg_t msg;
    resolve_typed(buf, len, HLT_TYPE_FP32, &msg);
    cr_assert_eq(msg.inputs[0].size, sizeof v);
    cr_assert_eq(memcmp(msg.inputs[0].data, v, sizeof v), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, typed_int64_contents_keep_sign_and_range)
{
    int64_t v[4] = {-1, INT64_MIN, INT64_MAX, 12345678901LL};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_int64_contents = 4;
    c.int64_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("INT64", 4, &c, false, &len);
    infer_request_msg_t msg;
    resolve_typed(buf, len, HLT_TYPE_INT64, &msg);
    cr_assert_eq(msg.inputs[0].size, sizeof v);
    cr_assert_eq(memcmp(msg.inputs[0].data, v, sizeof v), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, typed_int_contents_narrow_to_int8)
{
    int32_t v[5] = {-1, 127, -128, 0, 5};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_int_contents = 5;
    c.int_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("INT8", 5, &c, false, &len);
    infer_request_msg_t msg;
    resolve_typed(buf, len, HLT_TYPE_INT8, &msg);
    const int8_t want[5] = {-1, 127, -128, 0, 5};
    cr_assert_eq(msg.inputs[0].size, sizeof want);
    cr_assert_eq(memcmp(msg.inputs[0].data, want, sizeof want), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, typed_int_contents_narrow_to_int16)
{
    int32_t v[4] = {-30000, 32767, -32768, 1};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_int_contents = 4;
    c.int_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("INT16", 4, &c, false, &len);
    infer_request_msg_t msg;
    resolve_typed(buf, len, HLT_TYPE_INT16, &msg);
    const int16_t want[4] = {-30000, 32767, -32768, 1};
    cr_assert_eq(msg.inputs[0].size, sizeof want);
    cr_assert_eq(memcmp(msg.inputs[0].data, want, sizeof want), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, typed_uint_contents_narrow_to_uint8)
{
    uint32_t v[3] = {0, 255, 128};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_uint_contents = 3;
    c.uint_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("UINT8", 3, &c, false, &len);
    infer_request_msg_t msg;
    resolve_typed(buf, len, HLT_TYPE_UINT8, &msg);
    const uint8_t want[3] = {0, 255, 128};
    cr_assert_eq(msg.inputs[0].size, sizeof want);
    cr_assert_eq(memcmp(msg.inputs[0].data, want, sizeof want), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

Test(infer_codec, typed_fp64_bool_and_int32_contents)
{
    double d[2] = {1e300, -0.5};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_fp64_contents = 2;
    c.fp64_contents = d;
    size_t len;
    uint8_t *buf = pack_typed("FP64", 2, &c, false, &len);
    infer_request_msg_t msg;
    resolve_typed(buf, len, HLT_TYPE_FP64, &msg);
    cr_assert_eq(msg.inputs[0].size, sizeof d);
    cr_assert_eq(memcmp(msg.inputs[0].data, d, sizeof d), 0);
    infer_request_msg_free(&msg);
    free(buf);

    protobuf_c_boolean b[3] = {1, 0, 1};
    c = (Inference__InferTensorContents)INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_bool_contents = 3;
    c.bool_contents = b;
    buf = pack_typed("BOOL", 3, &c, false, &len);
    resolve_typed(buf, len, HLT_TYPE_BOOL, &msg);
    const uint8_t wb[3] = {1, 0, 1};
    cr_assert_eq(msg.inputs[0].size, 3);
    cr_assert_eq(memcmp(msg.inputs[0].data, wb, 3), 0);
    infer_request_msg_free(&msg);
    free(buf);

    int32_t i32[2] = {INT32_MIN, INT32_MAX};
    c = (Inference__InferTensorContents)INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_int_contents = 2;
    c.int_contents = i32;
    buf = pack_typed("INT32", 2, &c, false, &len);
    resolve_typed(buf, len, HLT_TYPE_INT32, &msg);
    cr_assert_eq(msg.inputs[0].size, sizeof i32);
    cr_assert_eq(memcmp(msg.inputs[0].data, i32, sizeof i32), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

/* Unpacked (one key per element) fp32 contents, as a proto2-style writer sends them. */
Test(infer_codec, typed_contents_unpacked_encoding)
{
    uint8_t c[64], *p = c;
    const float v[2] = {4.0f, -8.5f};
    for (int i = 0; i < 2; i++) {
        p = pb_put_key(p, 6, PB_I32);
        memcpy(p, &v[i], 4);
        p += 4;
    }
    size_t c_len = (size_t)(p - c);
    uint8_t in[128], *q = in;
    q = pb_put_len_header(q, 1, 1);
    *q++ = 't';
    q = pb_put_len_header(q, 5, c_len);
    memcpy(q, c, c_len);
    q += c_len;
    size_t in_len = (size_t)(q - in);
    uint8_t m[256], *r = m;
    r = pb_put_len_header(r, 5, in_len);
    memcpy(r, in, in_len);
    r += in_len;
    size_t len = (size_t)(r - m);
    uint8_t *buf = malloc(len);
    memcpy(buf, m, len);
    infer_request_msg_t msg;
    resolve_typed(buf, len, HLT_TYPE_FP32, &msg);
    cr_assert_eq(msg.inputs[0].size, sizeof v);
    cr_assert_eq(memcmp(msg.inputs[0].data, v, sizeof v), 0);
    infer_request_msg_free(&msg);
    free(buf);
}

/* A zero-length packed field is valid protobuf (an empty repeated field); it carries zero
 * elements and must not be reported as malformed. */
Test(infer_codec, typed_contents_empty_packed_field_has_no_elements)
{
    uint8_t in[64], *q = in;
    q = pb_put_len_header(q, 1, 1);
    *q++ = 't';
    q = pb_put_len_header(q, 5, 2); /* contents: one empty packed fp32_contents */
    q = pb_put_len_header(q, 6, 0);
    size_t in_len = (size_t)(q - in);
    uint8_t m[128], *r = m;
    r = pb_put_len_header(r, 5, in_len);
    memcpy(r, in, in_len);
    r += in_len;
    size_t len = (size_t)(r - m);
    uint8_t *buf = malloc(len);
    memcpy(buf, m, len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    hlt_dtype dt = HLT_TYPE_FP32;
    char err[ERRLEN] = "";
    hlt_status st = infer_request_resolve_data(&msg, &dt, "m", err, sizeof err);
    cr_assert_eq(st, HLT_OK, "an empty packed field is valid protobuf, got: %s", err);
    cr_assert_eq(msg.inputs[0].size, 0);
    infer_request_msg_free(&msg);
    free(buf);
}

/* ---- resolve errors ---- */

static void resolve_fails(const uint8_t *buf, size_t len, const hlt_dtype *dt, const char *want)
{
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    char err[ERRLEN] = "";
    hlt_status st = infer_request_resolve_data(&msg, dt, "mymodel", err, sizeof err);
    cr_assert_eq(st, HLT_INVALID_ARGUMENT, "status %d", st);
    cr_assert(strstr(err, want), "message '%s' should mention '%s'", err, want);
    cr_assert(strstr(err, "mymodel"), "message '%s' should name the model", err);
    infer_request_msg_free(&msg);
}

Test(infer_codec, raw_and_typed_data_together_are_rejected)
{
    float v[2] = {1, 2};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_fp32_contents = 2;
    c.fp32_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("FP32", 2, &c, true, &len);
    hlt_dtype dt = HLT_TYPE_FP32;
    resolve_fails(buf, len, &dt, "contents must not be given");
    free(buf);
}

Test(infer_codec, input_without_data_is_rejected)
{
    tu_input_t in[2] = {{"a", "FP32", 1, {1}, "abcd", 4}, {"b", "FP32", 1, {1}, NULL, 0}};
    size_t len;
    uint8_t *buf = tu_pack_raw_request("m", NULL, NULL, in, 2, NULL, 0, &len);
    hlt_dtype dt[2] = {HLT_TYPE_FP32, HLT_TYPE_FP32};
    resolve_fails(buf, len, dt, "'b': no data");
    free(buf);
}

Test(infer_codec, leftover_raw_entries_are_rejected)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor in, *inp = &in;
    inference__model_infer_request__infer_input_tensor__init(&in);
    int64_t shape[1] = {1};
    in.name = "a";
    in.datatype = "FP32";
    in.n_shape = 1;
    in.shape = shape;
    ProtobufCBinaryData raw[2] = {{4, (uint8_t *)"abcd"}, {4, (uint8_t *)"efgh"}};
    req.model_name = "m";
    req.n_inputs = 1;
    req.inputs = &inp;
    req.n_raw_input_contents = 2;
    req.raw_input_contents = raw;
    size_t len;
    uint8_t *buf = tu_pack(&req, &len);
    hlt_dtype dt = HLT_TYPE_FP32;
    resolve_fails(buf, len, &dt, "2 raw_input_contents entries for 1 inputs");
    free(buf);
}

Test(infer_codec, typed_contents_in_the_wrong_arm_are_rejected)
{
    int64_t v[2] = {1, 2};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_int64_contents = 2;
    c.int64_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("FP32", 2, &c, false, &len);
    hlt_dtype dt = HLT_TYPE_FP32;
    resolve_fails(buf, len, &dt, "do not match datatype FP32");
    free(buf);
}

Test(infer_codec, typed_contents_for_fp16_or_bytes_are_rejected)
{
    uint32_t v[1] = {1};
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    c.n_uint_contents = 1;
    c.uint_contents = v;
    size_t len;
    uint8_t *buf = pack_typed("FP16", 1, &c, false, &len);
    hlt_dtype dt = HLT_TYPE_FP16;
    resolve_fails(buf, len, &dt, "use raw_input_contents");
    dt = HLT_TYPE_BYTES;
    resolve_fails(buf, len, &dt, "use raw_input_contents");
    free(buf);
}

Test(infer_codec, malformed_typed_contents_are_rejected)
{
    /* fp32_contents packed with 3 bytes: not a whole float. */
    uint8_t in[64], *q = in;
    q = pb_put_len_header(q, 1, 1);
    *q++ = 't';
    q = pb_put_len_header(q, 5, 5);
    q = pb_put_len_header(q, 6, 3);
    *q++ = 1;
    *q++ = 2;
    *q++ = 3;
    size_t in_len = (size_t)(q - in);
    uint8_t m[128], *r = m;
    r = pb_put_len_header(r, 5, in_len);
    memcpy(r, in, in_len);
    r += in_len;
    size_t len = (size_t)(r - m);
    uint8_t *buf = malloc(len);
    memcpy(buf, m, len);
    hlt_dtype dt = HLT_TYPE_FP32;
    resolve_fails(buf, len, &dt, "malformed typed contents");
    free(buf);
}

Test(infer_codec, shared_memory_input_is_rejected_at_resolve)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor in, *inp = &in;
    inference__model_infer_request__infer_input_tensor__init(&in);
    Inference__ModelInferRequest__InferInputTensor__ParametersEntry e, *ep = &e;
    inference__model_infer_request__infer_input_tensor__parameters_entry__init(&e);
    Inference__InferParameter v = INFERENCE__INFER_PARAMETER__INIT;
    v.parameter_choice_case = ARM_STRING;
    v.string_param = "region";
    e.key = "shared_memory_region";
    e.value = &v;
    int64_t shape[1] = {1};
    in.name = "a";
    in.datatype = "FP32";
    in.n_shape = 1;
    in.shape = shape;
    in.n_parameters = 1;
    in.parameters = &ep;
    req.model_name = "m";
    req.n_inputs = 1;
    req.inputs = &inp;
    size_t len;
    uint8_t *buf = tu_pack(&req, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg);
    cr_assert(msg.inputs[0].shm);
    infer_request_msg_free(&msg);
    hlt_dtype dt = HLT_TYPE_FP32;
    resolve_fails(buf, len, &dt, "shared memory");
    free(buf);
}

/* ---- decode errors ---- */

Test(infer_codec, garbage_bytes_are_rejected)
{
    const uint8_t g[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    uint8_t *buf = malloc(sizeof g);
    memcpy(buf, g, sizeof g);
    decode_fails(buf, sizeof g, "malformed ModelInferRequest");
    free(buf);
    /* A group start (wire type 3) is not accepted either. */
    const uint8_t grp[] = {(1 << 3) | 3, 0x00};
    buf = malloc(sizeof grp);
    memcpy(buf, grp, sizeof grp);
    decode_fails(buf, sizeof grp, "malformed");
    free(buf);
}

Test(infer_codec, truncated_message_is_rejected)
{
    float x[16] = {0};
    tu_input_t in = {"input", "FP32", 2, {1, 16}, x, sizeof x};
    size_t len;
    uint8_t *full = tu_pack_raw_request("model", "1", "id", &in, 1, NULL, 0, &len);
    /* The raw contents are the last field: cutting into them breaks its length. */
    for (size_t cut = len - sizeof x + 1; cut < len; cut += 7) {
        uint8_t *buf = malloc(cut);
        memcpy(buf, full, cut);
        decode_fails(buf, cut, "malformed");
        free(buf);
    }
    free(full);
}

/* Decodes (and resolves) every prefix of full: each must decode cleanly or be rejected, never
 * read past its end (checked by ASan: each prefix is its own exact-size heap block). */
static void check_prefixes(const uint8_t *full, size_t len, const hlt_dtype *dt)
{
    size_t ok = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        uint8_t *buf = malloc(cut ? cut : 1);
        memcpy(buf, full, cut);
        infer_request_msg_t msg;
        char err[ERRLEN];
        hlt_status st = infer_request_decode(buf, cut, &msg, err, sizeof err);
        cr_assert(st == HLT_OK || st == HLT_INVALID_ARGUMENT, "prefix %zu: status %d", cut, st);
        if (st == HLT_OK) {
            cr_assert_leq(msg.n_inputs, 2);
            st = infer_request_resolve_data(&msg, dt, "model", err, sizeof err);
            cr_assert(st == HLT_OK || st == HLT_INVALID_ARGUMENT, "prefix %zu: resolve %d", cut,
                      st);
            ok++;
        }
        infer_request_msg_free(&msg);
        free(buf);
    }
    cr_assert_geq(ok, 2, "at least the empty and the full message decode");
}

/* A request with every kind of field: parameters, two inputs, an output, data either raw or
 * typed (never both: the protocol forbids mixing them in one request). */
static uint8_t *pack_full_request(bool typed, const float *x, const int32_t *iv, size_t *len)
{
    Inference__InferTensorContents c[2] = {INFERENCE__INFER_TENSOR_CONTENTS__INIT,
                                           INFERENCE__INFER_TENSOR_CONTENTS__INIT};
    c[0].n_fp32_contents = 4;
    c[0].fp32_contents = (float *)x;
    c[1].n_int_contents = 2;
    c[1].int_contents = (int32_t *)iv;
    req_param_t p[2];
    req_param(&p[0], "priority", ARM_UINT64, 2, NULL);
    req_param(&p[1], "timeout", ARM_INT64, 99, NULL);
    Inference__ModelInferRequest__ParametersEntry *pp[2] = {&p[0].e, &p[1].e};
    Inference__ModelInferRequest__InferInputTensor in[2], *inp[2] = {&in[0], &in[1]};
    int64_t s0[2] = {1, 4}, s1[1] = {2};
    inference__model_infer_request__infer_input_tensor__init(&in[0]);
    inference__model_infer_request__infer_input_tensor__init(&in[1]);
    in[0].name = "a";
    in[0].datatype = "FP32";
    in[0].n_shape = 2;
    in[0].shape = s0;
    in[1].name = "b";
    in[1].datatype = "INT32";
    in[1].n_shape = 1;
    in[1].shape = s1;
    Inference__ModelInferRequest__InferRequestedOutputTensor o, *op = &o;
    inference__model_infer_request__infer_requested_output_tensor__init(&o);
    o.name = "out";
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    req.model_name = "model";
    req.model_version = "3";
    req.id = "abc";
    req.n_parameters = 2;
    req.parameters = pp;
    req.n_inputs = 2;
    req.inputs = inp;
    req.n_outputs = 1;
    req.outputs = &op;
    ProtobufCBinaryData raw[2] = {{4 * sizeof *x, (uint8_t *)x}, {2 * sizeof *iv, (uint8_t *)iv}};
    if (typed) {
        in[0].contents = &c[0];
        in[1].contents = &c[1];
    } else {
        req.n_raw_input_contents = 2;
        req.raw_input_contents = raw;
    }
    return tu_pack(&req, len);
}

Test(infer_codec, every_prefix_decodes_or_is_rejected)
{
    const float x[4] = {1, 2, 3, 4};
    const int32_t iv[2] = {-1, 5};
    const hlt_dtype dt[2] = {HLT_TYPE_FP32, HLT_TYPE_INT32};
    for (int typed = 0; typed < 2; typed++) {
        size_t len;
        uint8_t *full = pack_full_request(typed, x, iv, &len);
        check_prefixes(full, len, dt);
        /* The whole message resolves to the right data. */
        infer_request_msg_t msg;
        decode_ok(full, len, &msg);
        char err[ERRLEN] = "";
        cr_assert_eq(infer_request_resolve_data(&msg, dt, "model", err, sizeof err), HLT_OK, "%s",
                     err);
        cr_assert(msg.has_priority && msg.has_timeout);
        cr_assert_eq(msg.n_outputs, 1);
        cr_assert_eq(msg.inputs[0].size, sizeof x);
        cr_assert_eq(memcmp(msg.inputs[0].data, x, sizeof x), 0);
        cr_assert_eq(msg.inputs[1].size, sizeof iv);
        cr_assert_eq(memcmp(msg.inputs[1].data, iv, sizeof iv), 0);
        infer_request_msg_free(&msg);
        free(full);
    }
}

Test(infer_codec, malformed_input_tensor_is_rejected)
{
    /* inputs[0] whose name field claims more bytes than the sub-message holds. */
    const uint8_t m[] = {(5 << 3) | 2, 3, (1 << 3) | 2, 9, 'x'};
    uint8_t *buf = malloc(sizeof m);
    memcpy(buf, m, sizeof m);
    decode_fails(buf, sizeof m, "inputs[0]");
    free(buf);
    /* inputs[0] whose name is sent as a varint. */
    const uint8_t m2[] = {(5 << 3) | 2, 2, (1 << 3) | 0, 1};
    buf = malloc(sizeof m2);
    memcpy(buf, m2, sizeof m2);
    decode_fails(buf, sizeof m2, "inputs[0]");
    free(buf);
}

Test(infer_codec, malformed_parameter_entry_is_rejected)
{
    /* parameters entry (field 4) holding a truncated key. */
    const uint8_t m[] = {(4 << 3) | 2, 2, (1 << 3) | 2, 5};
    uint8_t *buf = malloc(sizeof m);
    memcpy(buf, m, sizeof m);
    decode_fails(buf, sizeof m, "malformed");
    free(buf);
}

Test(infer_codec, malformed_requested_output_is_rejected)
{
    const uint8_t m[] = {(6 << 3) | 2, 2, (1 << 3) | 2, 4};
    uint8_t *buf = malloc(sizeof m);
    memcpy(buf, m, sizeof m);
    decode_fails(buf, sizeof m, "malformed");
    free(buf);
}

Test(infer_codec, shape_of_more_than_8_dims_is_rejected)
{
    const float x[1] = {0};
    tu_input_t in = {"deep", "FP32", 8, {1, 1, 1, 1, 1, 1, 1, 1}, x, sizeof x};
    size_t len;
    uint8_t *buf = tu_pack_raw_request("m", NULL, NULL, &in, 1, NULL, 0, &len);
    infer_request_msg_t msg;
    decode_ok(buf, len, &msg); /* 8 dims are fine */
    cr_assert_eq(msg.inputs[0].rank, 8);
    infer_request_msg_free(&msg);
    free(buf);

    /* 9 dims, packed (protobuf-c) */
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor it, *itp = &it;
    inference__model_infer_request__infer_input_tensor__init(&it);
    int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    it.name = "deep";
    it.datatype = "FP32";
    it.n_shape = 9;
    it.shape = shape;
    req.n_inputs = 1;
    req.inputs = &itp;
    buf = tu_pack(&req, &len);
    decode_fails(buf, len, "more than 8 dims");
    free(buf);

    /* 9 dims, unpacked */
    uint8_t t[64], *p = t;
    p = pb_put_len_header(p, 1, 4);
    memcpy(p, "deep", 4);
    p += 4;
    for (int d = 0; d < 9; d++) {
        p = pb_put_key(p, 3, PB_VARINT);
        p = pb_put_varint(p, 1);
    }
    size_t t_len = (size_t)(p - t);
    uint8_t m[128], *q = m;
    q = pb_put_len_header(q, 5, t_len);
    memcpy(q, t, t_len);
    q += t_len;
    len = (size_t)(q - m);
    buf = malloc(len);
    memcpy(buf, m, len);
    decode_fails(buf, len, "'deep': shape has more than 8 dims");
    free(buf);
}

Test(infer_codec, free_accepts_zeroed_message)
{
    infer_request_msg_t msg;
    memset(&msg, 0, sizeof msg);
    infer_request_msg_free(&msg);
    infer_request_msg_free(&msg); /* and leaves it zeroed */
}

/* ---- response ---- */

static Inference__ModelInferResponse *write_and_unpack(const char *model, const char *version,
                                                       str_view_t id,
                                                       const infer_output_desc_t *outs, size_t n,
                                                       const void *const *data)
{
    size_t size = infer_response_size(model, version, id, outs, n);
    uint8_t *buf = malloc(size ? size : 1);
    uint8_t *payload[8] = {0};
    infer_response_write(buf, model, version, id, outs, n, payload);
    for (size_t i = 0; i < n; i++) {
        cr_assert(points_into(payload[i], outs[i].size, buf, size),
                  "payload %zu must lie inside the response buffer", i);
        memcpy(payload[i], data[i], outs[i].size);
    }
    if (n)
        cr_assert_eq(payload[n - 1] + outs[n - 1].size, buf + size,
                     "the last payload ends the message: the size is exact");
    Inference__ModelInferResponse *r = inference__model_infer_response__unpack(NULL, size, buf);
    cr_assert_not_null(r, "protobuf-c cannot parse the response");
    free(buf);
    return r;
}

Test(infer_codec, response_round_trips_through_protobuf_c)
{
    const float probs[10] = {0.1f, 0.2f, 0.3f, 0.4f, 0.0f, 1, 0, 0, 0, 0};
    const int64_t idx[2] = {-7, 1LL << 40};
    int64_t s0[2] = {2, 5}, s1[1] = {2};
    infer_output_desc_t outs[2] = {{"probabilities", HLT_TYPE_FP32, 2, s0, sizeof probs},
                                   {"index", HLT_TYPE_INT64, 1, s1, sizeof idx}};
    const void *data[2] = {probs, idx};
    str_view_t id = {"request-1", 9};
    Inference__ModelInferResponse *r = write_and_unpack("jet_tagger", "3", id, outs, 2, data);
    cr_assert_str_eq(r->model_name, "jet_tagger");
    cr_assert_str_eq(r->model_version, "3");
    cr_assert_str_eq(r->id, "request-1");
    cr_assert_eq(r->n_outputs, 2);
    cr_assert_str_eq(r->outputs[0]->name, "probabilities");
    cr_assert_str_eq(r->outputs[0]->datatype, "FP32");
    cr_assert_eq(r->outputs[0]->n_shape, 2);
    cr_assert_eq(r->outputs[0]->shape[0], 2);
    cr_assert_eq(r->outputs[0]->shape[1], 5);
    cr_assert_str_eq(r->outputs[1]->name, "index");
    cr_assert_str_eq(r->outputs[1]->datatype, "INT64");
    cr_assert_eq(r->outputs[1]->n_shape, 1);
    cr_assert_eq(r->outputs[1]->shape[0], 2);
    cr_assert_eq(r->n_raw_output_contents, 2, "one raw_output_contents entry per output");
    cr_assert_eq(r->raw_output_contents[0].len, sizeof probs);
    cr_assert_eq(memcmp(r->raw_output_contents[0].data, probs, sizeof probs), 0);
    cr_assert_eq(r->raw_output_contents[1].len, sizeof idx);
    cr_assert_eq(memcmp(r->raw_output_contents[1].data, idx, sizeof idx), 0);
    inference__model_infer_response__free_unpacked(r, NULL);
}

Test(infer_codec, response_without_id_has_empty_id)
{
    const float v[1] = {42};
    int64_t s[2] = {1, 1};
    infer_output_desc_t out = {"output", HLT_TYPE_FP32, 2, s, sizeof v};
    const void *data[1] = {v};
    Inference__ModelInferResponse *r =
        write_and_unpack("facile", "1", (str_view_t){"", 0}, &out, 1, data);
    cr_assert_str_eq(r->id, "");
    cr_assert_str_eq(r->model_name, "facile");
    cr_assert_eq(r->n_raw_output_contents, 1);
    cr_assert_eq(memcmp(r->raw_output_contents[0].data, v, sizeof v), 0);
    inference__model_infer_response__free_unpacked(r, NULL);
}

Test(infer_codec, response_with_large_payload_and_scalar_output)
{
    /* 200,000 bytes: the length varints take 3 bytes; a rank-0 output has no shape field. */
    size_t n = 50000;
    float *big = malloc(n * sizeof *big);
    for (size_t i = 0; i < n; i++)
        big[i] = (float)i;
    const float scalar[1] = {-1};
    int64_t s0[2] = {(int64_t)n, 1};
    infer_output_desc_t outs[2] = {{"big", HLT_TYPE_FP32, 2, s0, n * sizeof *big},
                                   {"scalar", HLT_TYPE_FP32, 0, NULL, sizeof scalar}};
    const void *data[2] = {big, scalar};
    Inference__ModelInferResponse *r =
        write_and_unpack("m", "12", (str_view_t){"x", 1}, outs, 2, data);
    cr_assert_eq(r->n_outputs, 2);
    cr_assert_eq(r->outputs[0]->shape[0], (int64_t)n);
    cr_assert_eq(r->outputs[1]->n_shape, 0);
    cr_assert_eq(r->raw_output_contents[0].len, n * sizeof *big);
    cr_assert_eq(memcmp(r->raw_output_contents[0].data, big, n * sizeof *big), 0);
    cr_assert_eq(memcmp(r->raw_output_contents[1].data, scalar, sizeof scalar), 0);
    inference__model_infer_response__free_unpacked(r, NULL);
    free(big);
}

Test(infer_codec, response_with_no_outputs_and_empty_payload)
{
    Inference__ModelInferResponse *r =
        write_and_unpack("m", "1", (str_view_t){"id", 2}, NULL, 0, NULL);
    cr_assert_eq(r->n_outputs, 0);
    cr_assert_eq(r->n_raw_output_contents, 0);
    inference__model_infer_response__free_unpacked(r, NULL);

    int64_t s[2] = {0, 5};
    infer_output_desc_t out = {"empty", HLT_TYPE_FP32, 2, s, 0};
    const void *data[1] = {""};
    r = write_and_unpack("m", "1", (str_view_t){"", 0}, &out, 1, data);
    cr_assert_eq(r->n_raw_output_contents, 1, "an empty output still has its entry");
    cr_assert_eq(r->raw_output_contents[0].len, 0);
    cr_assert_eq(r->outputs[0]->shape[0], 0);
    inference__model_infer_response__free_unpacked(r, NULL);
}
