/* client/infer_wire.c: the hand-written ModelInferRequest encoder is checked by decoding its
 * output with protobuf-c, and the in-place ModelInferResponse parser by feeding it messages
 * that protobuf-c encoded (plus malformed ones). No server needed. */
#include "infer_wire.h"

#include "inference.pb-c.h"

#include <criterion/criterion.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>

static void init(void)
{
    grpc_init();
}

static void fini(void)
{
    grpc_shutdown();
}

TestSuite(infer_wire, .init = init, .fini = fini);

static uint8_t *encode(const hlt_infer_request_t *req, size_t *size)
{
    char err[512];
    cr_assert_eq(infer_request_size(req, size, err, sizeof err), HLT_OK, "%s", err);
    uint8_t *buf = malloc(*size + 1);
    infer_request_write(req, buf, *size);
    return buf;
}

Test(infer_wire, request_decodes_with_protobuf_c)
{
    float a[2][3] = {{1, 2, 3}, {4, 5, 6}};
    int64_t b[4] = {-1, 0, 1, 1LL << 40};
    int64_t sa[2] = {2, 3}, sb[1] = {4};
    hlt_input_t in[2] = {
        {"a", HLT_TYPE_FP32, 2, sa, a, sizeof a},
        {"b", HLT_TYPE_INT64, 1, sb, b, sizeof b},
    };
    const char *outs[] = {"y", "z"};
    hlt_infer_request_t req = {.model = "m",
                               .version = "3",
                               .id = "req-7",
                               .inputs = in,
                               .n_inputs = 2,
                               .outputs = outs,
                               .n_outputs = 2,
                               .priority = 300};
    size_t n;
    uint8_t *buf = encode(&req, &n);
    Inference__ModelInferRequest *m = inference__model_infer_request__unpack(NULL, n, buf);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->model_name, "m");
    cr_expect_str_eq(m->model_version, "3");
    cr_expect_str_eq(m->id, "req-7");
    cr_assert_eq(m->n_parameters, 1);
    cr_expect_str_eq(m->parameters[0]->key, "priority");
    cr_expect_eq(m->parameters[0]->value->parameter_choice_case,
                 INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM);
    cr_expect_eq(m->parameters[0]->value->uint64_param, 300);
    cr_assert_eq(m->n_inputs, 2);
    cr_expect_str_eq(m->inputs[0]->name, "a");
    cr_expect_str_eq(m->inputs[0]->datatype, "FP32");
    cr_assert_eq(m->inputs[0]->n_shape, 2);
    cr_expect(m->inputs[0]->shape[0] == 2 && m->inputs[0]->shape[1] == 3);
    cr_expect_str_eq(m->inputs[1]->datatype, "INT64");
    cr_expect(m->inputs[1]->n_shape == 1 && m->inputs[1]->shape[0] == 4);
    cr_expect_null(m->inputs[0]->contents);
    cr_assert_eq(m->n_outputs, 2);
    cr_expect_str_eq(m->outputs[1]->name, "z");
    cr_assert_eq(m->n_raw_input_contents, 2);
    cr_expect(m->raw_input_contents[0].len == sizeof a &&
              !memcmp(m->raw_input_contents[0].data, a, sizeof a));
    cr_expect(m->raw_input_contents[1].len == sizeof b &&
              !memcmp(m->raw_input_contents[1].data, b, sizeof b));
    inference__model_infer_request__free_unpacked(m, NULL);
    free(buf);
}

Test(infer_wire, request_minimal_and_scalar)
{
    uint8_t flag = 1;
    hlt_input_t in = {"flag", HLT_TYPE_BOOL, 0, NULL, &flag, 1};
    hlt_infer_request_t req = {.model = "m", .version = "", .inputs = &in, .n_inputs = 1};
    size_t n;
    uint8_t *buf = encode(&req, &n);
    Inference__ModelInferRequest *m = inference__model_infer_request__unpack(NULL, n, buf);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->model_version, "");
    cr_expect_eq(m->n_parameters, 0);
    cr_expect_eq(m->inputs[0]->n_shape, 0);
    cr_expect_eq(m->n_outputs, 0);
    cr_expect(m->n_raw_input_contents == 1 && m->raw_input_contents[0].len == 1);
    inference__model_infer_request__free_unpacked(m, NULL);
    free(buf);
    /* BYTES sizes are not checked (4-byte length prefixes are the caller's business). */
    const char bytes[] = "\3\0\0\0abc";
    int64_t one = 1;
    hlt_input_t s = {"s", HLT_TYPE_BYTES, 1, &one, bytes, 7};
    req.inputs = &s;
    buf = encode(&req, &n);
    free(buf);
}

Test(infer_wire, request_checks_name_with_message)
{
    float x[4];
    int64_t shape[2] = {2, 3};
    hlt_input_t in = {"x", HLT_TYPE_FP32, 2, shape, x, sizeof x};
    hlt_infer_request_t req = {.model = "mdl", .inputs = &in, .n_inputs = 1};
    char err[512];
    size_t n;
    cr_expect_eq(infer_request_size(&req, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect_str_eq(err, "model 'mdl': input 'x': 16 bytes of data, but its shape and datatype "
                          "FP32 need 24");
    int64_t huge[2] = {INT64_MAX, 4};
    in.shape = huge;
    cr_expect_eq(infer_request_size(&req, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "more than"), "%s", err);
    in.shape = NULL;
    cr_expect_eq(infer_request_size(&req, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "no shape"), "%s", err);
    in.shape = shape;
    in.data = NULL;
    cr_expect_eq(infer_request_size(&req, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    req.inputs = NULL;
    cr_expect_eq(infer_request_size(&req, &n, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect_eq(infer_request_size(NULL, &n, NULL, 0), HLT_INVALID_ARGUMENT);
}

/* A protobuf-c encoded response with the given outputs, as one slice. */
static grpc_slice pack_response(Inference__ModelInferResponse *resp)
{
    size_t n = inference__model_infer_response__get_packed_size(resp);
    grpc_slice s = grpc_slice_malloc(n);
    inference__model_infer_response__pack(resp, GRPC_SLICE_START_PTR(s));
    return s;
}

typedef struct resp_builder {
    Inference__ModelInferResponse resp;
    Inference__ModelInferResponse__InferOutputTensor t[2], *tp[2];
    int64_t shape[2][2];
    ProtobufCBinaryData raw[2];
} resp_builder_t;

static void build(resp_builder_t *b, const float *p, const float *l)
{
    inference__model_infer_response__init(&b->resp);
    b->resp.model_name = "jet_tagger";
    b->resp.model_version = "1";
    b->resp.id = "x1";
    static const char *names[2] = {"probabilities", "logits"};
    for (int i = 0; i < 2; i++) {
        inference__model_infer_response__infer_output_tensor__init(&b->t[i]);
        b->t[i].name = (char *)names[i];
        b->t[i].datatype = "FP32";
        b->shape[i][0] = 2;
        b->shape[i][1] = 5;
        b->t[i].n_shape = 2;
        b->t[i].shape = b->shape[i];
        b->tp[i] = &b->t[i];
    }
    b->raw[0] = (ProtobufCBinaryData){40, (uint8_t *)p};
    b->raw[1] = (ProtobufCBinaryData){40, (uint8_t *)l};
    b->resp.n_outputs = 2;
    b->resp.outputs = b->tp;
    b->resp.n_raw_output_contents = 2;
    b->resp.raw_output_contents = b->raw;
}

Test(infer_wire, response_parsed_in_place)
{
    float p[10], l[10];
    for (int i = 0; i < 10; i++) {
        p[i] = 0.1f * (float)i;
        l[i] = -(float)i;
    }
    resp_builder_t b;
    build(&b, p, l);
    grpc_slice s = pack_response(&b.resp);
    const uint8_t *lo = GRPC_SLICE_START_PTR(s), *hi = lo + GRPC_SLICE_LENGTH(s);
    hlt_infer_result_t *r;
    char err[512];
    cr_assert_eq(infer_result_parse(s, &r, err, sizeof err), HLT_OK, "%s", err);
    cr_expect_str_eq(hlt_infer_result_model_name(r), "jet_tagger");
    cr_expect_str_eq(hlt_infer_result_model_version(r), "1");
    cr_expect_str_eq(hlt_infer_result_id(r), "x1");
    cr_assert_eq(hlt_infer_result_output_count(r), 2);
    const hlt_output_t *o = hlt_infer_result_output_by_name(r, "logits");
    cr_assert_not_null(o);
    cr_expect_eq(o, hlt_infer_result_output(r, 1));
    cr_expect_eq(o->datatype, HLT_TYPE_FP32);
    cr_expect_str_eq(o->datatype_name, "FP32");
    cr_expect(o->rank == 2 && o->shape[0] == 2 && o->shape[1] == 5);
    cr_expect_eq(o->size, 40);
    cr_expect((const uint8_t *)o->data >= lo && (const uint8_t *)o->data + 40 <= hi,
              "the view points into the received message (zero-copy)");
    cr_expect(!memcmp(o->data, l, 40));
    cr_expect(!memcmp(hlt_infer_result_output(r, 0)->data, p, 40));
    hlt_infer_result_free(r); /* releases the slice reference the result took over */
}

Test(infer_wire, response_errors_leave_the_slice_with_the_caller)
{
    float p[10] = {0}, l[10] = {0};
    resp_builder_t b;
    char err[512];
    hlt_infer_result_t *r;

    grpc_slice junk = grpc_slice_from_copied_string("\xff\xff\xff");
    cr_expect_eq(infer_result_parse(junk, &r, err, sizeof err), HLT_INTERNAL);
    cr_expect(strstr(err, "not a valid protobuf"), "%s", err);
    grpc_slice_unref(junk);

    build(&b, p, l);
    b.resp.n_raw_output_contents = 1;
    grpc_slice s = pack_response(&b.resp);
    cr_expect_eq(infer_result_parse(s, &r, err, sizeof err), HLT_INTERNAL);
    cr_expect(strstr(err, "1 raw_output_contents for 2 outputs"), "%s", err);
    grpc_slice_unref(s);

    build(&b, p, l);
    b.shape[1][1] = 6; /* 2x6 FP32 needs 48 bytes, 40 sent */
    s = pack_response(&b.resp);
    cr_expect_eq(infer_result_parse(s, &r, err, sizeof err), HLT_INTERNAL);
    cr_expect(strstr(err, "'logits'"), "%s", err);
    grpc_slice_unref(s);

    build(&b, p, l);
    b.shape[0][0] = -2;
    s = pack_response(&b.resp);
    cr_expect_eq(infer_result_parse(s, &r, err, sizeof err), HLT_INTERNAL);
    grpc_slice_unref(s);

    /* Typed contents instead of raw: what no Triton-compatible server sends. */
    build(&b, p, l);
    Inference__InferTensorContents tc = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    tc.n_fp32_contents = 10;
    tc.fp32_contents = p;
    b.t[0].contents = &tc;
    b.t[1].contents = &tc;
    b.resp.n_raw_output_contents = 0;
    s = pack_response(&b.resp);
    cr_expect_eq(infer_result_parse(s, &r, err, sizeof err), HLT_UNIMPLEMENTED);
    grpc_slice_unref(s);

    /* Unknown datatype strings and an empty response are accepted. */
    build(&b, p, l);
    b.t[0].datatype = "COMPLEX64";
    s = pack_response(&b.resp);
    cr_assert_eq(infer_result_parse(s, &r, err, sizeof err), HLT_OK, "%s", err);
    cr_expect_eq(hlt_infer_result_output(r, 0)->datatype, HLT_TYPE_INVALID);
    hlt_infer_result_free(r);
    cr_assert_eq(infer_result_parse(grpc_empty_slice(), &r, err, sizeof err), HLT_OK);
    cr_expect_eq(hlt_infer_result_output_count(r), 0);
    cr_expect_str_eq(hlt_infer_result_model_name(r), "");
    hlt_infer_result_free(r);
}

Test(infer_wire, response_with_unpacked_shape)
{
    /* outputs { name "o" datatype "INT8" shape 2 shape 3 (unpacked varints) parameters {} }
     * raw_output_contents (6 bytes); the empty parameters entry must be skipped. */
    static const uint8_t msg[] = {
        0x2a, 15, 0x0a, 1, 'o',  0x12, 4, 'I', 'N', 'T', '8', 0x18, 2,
        0x18, 3,  0x22, 0, 0x32, 6,    1, 2,   3,   4,   5,   6,
    };
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)msg, sizeof msg);
    hlt_infer_result_t *r;
    char err[512];
    cr_assert_eq(infer_result_parse(s, &r, err, sizeof err), HLT_OK, "%s", err);
    const hlt_output_t *o = hlt_infer_result_output(r, 0);
    cr_expect(o->rank == 2 && o->shape[0] == 2 && o->shape[1] == 3);
    cr_expect_eq(o->datatype, HLT_TYPE_INT8);
    cr_expect_eq(((const uint8_t *)o->data)[5], 6);
    hlt_infer_result_free(r);
}
