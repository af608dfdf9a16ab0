/* Loader (onnx_load.c): every error path a model file can take, with the status and the words
 * the message must contain, and the descriptors and conversions of good files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

/* x[N,4] -> Gemm(w[3,4]^T, b[3]) -> Relu -> y[N,3] */
static mb_t *small_model(void)
{
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, 4}, wd[] = {3, 4}, bd[] = {3}, yd[] = {-1, 3};
    const float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, b[3] = {1, 0, -1};
    mb_input(m, "x", TU_FLOAT, 2, xd);
    mb_init_f32(m, "w", 2, wd, w, false);
    mb_init_f32(m, "b", 1, bd, b, false);
    mb_attr_int(mb_node(m, "Gemm", "fc", "x,w,b", "h"), "transB", 1);
    mb_node(m, "Relu", "act", "h", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    return m;
}

static void expect_fail(mb_t *m, hlt_status want, const char *const *words)
{
    char err[512] = "";
    engine_graph_t *g = (engine_graph_t *)0x1; /* must stay untouched on failure */
    const hlt_status st = mb_load(m, &g, err, sizeof err);
    cr_assert_eq(st, want, "status %s, want %s: %s", hlt_status_name(st), hlt_status_name(want),
                 err);
    cr_assert_eq(g, (engine_graph_t *)0x1, "*out changed on failure");
    for (; words && *words; words++)
        cr_assert(strstr(err, *words), "message lacks '%s': %s", *words, err);
    /* the same failure without an error buffer */
    cr_assert_eq(mb_load(m, &g, NULL, 0), want);
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(onnx_load, loads_a_small_model_and_describes_it)
{
    mb_t *m = small_model();
    engine_graph_t *g = NULL;
    char err[256];
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(engine_graph_num_inputs(g), 1); /* initializers are not inputs */
    const engine_tensor_desc_t *x = engine_graph_input(g, 0);
    cr_assert_str_eq(x->name, "x");
    cr_assert_eq(x->dtype, HLT_TYPE_FP32);
    cr_assert_eq(x->rank, 2);
    cr_assert_eq(x->dims[0], -1);
    cr_assert_str_eq(x->dim_params[0], "N");
    cr_assert_eq(x->dims[1], 4);
    cr_assert_null(x->dim_params[1]);
    cr_assert_eq(engine_graph_num_outputs(g), 1);
    const engine_tensor_desc_t *y = engine_graph_output(g, 0);
    cr_assert_str_eq(y->name, "y");
    cr_assert_eq(y->dims[1], 3);
    cr_assert_null(engine_graph_input(g, 1));
    cr_assert_null(engine_graph_output(g, 1));
    engine_graph_destroy(g);
    engine_graph_destroy(NULL);
    mb_free(m);
}

Test(onnx_load, initializer_listed_as_input_is_a_constant)
{
    mb_t *m = small_model();
    const int64_t wd[] = {3, 4};
    mb_input(m, "w", TU_FLOAT, 2, wd); /* IR < 4 style: weights repeated among the inputs */
    engine_graph_t *g = NULL;
    char err[256];
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    cr_assert_eq(engine_graph_num_inputs(g), 1);
    cr_assert_str_eq(engine_graph_input(g, 0)->name, "x");
    engine_graph_destroy(g);
    mb_free(m);
}

Test(onnx_load, rejects_garbage_bytes)
{
    static const char *const samples[] = {"this is not an onnx model at all",
                                          "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "", "\x08"};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char err[256] = "";
        engine_graph_t *g = NULL;
        const hlt_status st = engine_graph_load_buffer((const uint8_t *)samples[i],
                                                       strlen(samples[i]), &g, err, sizeof err);
        cr_assert_eq(st, HLT_INVALID_ARGUMENT, "sample %zu: %s", i, err);
        cr_assert(strstr(err, "not an ONNX model"), "sample %zu: %s", i, err);
        cr_assert_null(g);
    }
}

Test(onnx_load, rejects_every_truncation)
{
    mb_t *m = small_model();
    size_t len;
    uint8_t *buf = mb_pack(m, &len);
    for (size_t cut = 0; cut < len; cut++) {
        engine_graph_t *g = NULL;
        char err[256] = "";
        const hlt_status st = engine_graph_load_buffer(buf, cut, &g, err, sizeof err);
        cr_assert_neq(st, HLT_OK, "truncated to %zu of %zu bytes loaded", cut, len);
        cr_assert_null(g);
    }
    /* and through a file */
    char path[] = "/tmp/hlt_truncXXXXXX";
    const int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, buf, len / 2), (ssize_t)(len / 2));
    close(fd);
    engine_graph_t *g = NULL;
    char err[256] = "";
    cr_assert_eq(engine_graph_load_file(path, &g, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "not an ONNX model"), "%s", err);
    unlink(path);
    free(buf);
    mb_free(m);
}

Test(onnx_load, reports_missing_and_unreadable_files)
{
    engine_graph_t *g = NULL;
    char err[256] = "";
    cr_assert_eq(engine_graph_load_file("/nonexistent/model.onnx", &g, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "/nonexistent/model.onnx") && strstr(err, "No such file"), "%s", err);
    cr_assert_eq(engine_graph_load_file("/tmp", &g, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "not a regular file"), "%s", err);
    cr_assert_null(g);
}

Test(onnx_load, loads_a_file)
{
    mb_t *m = small_model();
    size_t len;
    uint8_t *buf = mb_pack(m, &len);
    char path[] = "/tmp/hlt_modelXXXXXX";
    const int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
    engine_graph_t *g = NULL;
    char err[256] = "";
    cr_assert_eq(engine_graph_load_file(path, &g, err, sizeof err), HLT_OK, "%s", err);
    engine_graph_destroy(g);
    unlink(path);
    free(buf);
    mb_free(m);
}

Test(onnx_load, rejects_models_without_graph_ir_or_opset)
{
    mb_t *m = small_model();
    mb_proto(m)->has_ir_version = 0;
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("not an ONNX model", "ir_version"));
    mb_proto(m)->has_ir_version = 1;
    free(mb_proto(m)->opset_import[0]->domain);
    mb_proto(m)->opset_import[0]->domain = strdup("ai.onnx.ml");
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("operator set"));
    mb_free(m);
}

Test(onnx_load, unsupported_op_names_op_node_and_domain)
{
    mb_t *m = small_model();
    mb_node(m, "Conv", "conv1", "x,w", "c");
    char err[256] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_UNIMPLEMENTED);
    cr_assert_str_eq(err, "unsupported op 'Conv' (node 'conv1', domain '')");
    mb_free(m);
    m = small_model();
    Onnx__NodeProto *n = mb_node(m, "Gemm", "fused", "x,w", "c");
    n->domain = strdup("com.microsoft");
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("unsupported op 'Gemm'", "'fused'", "com.microsoft"));
    mb_free(m);
    m = small_model();
    mb_node(m, "LSTM", NULL, "x", "c"); /* unnamed node: named by its position */
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'LSTM'", "node '#2'"));
    mb_free(m);
}

Test(onnx_load, bad_attributes)
{
    static const char *const words[6][5] = {
        {"'g2'", "Gemm", "transA", "0 or 1", NULL},
        {"'lr'", "alpha", "FLOAT", NULL},
        {"'cat'", "axis", "required", NULL},
        {"'tr'", "perm", "INTS", NULL},
        {"'sm'", "axis", "INT", NULL},
        {"'un'", "axes", NULL},
    };
    const float fperm[] = {1, 0};
    for (int c = 0; c < 6; c++) {
        mb_t *m = small_model();
        const int64_t d[] = {-1, 3};
        switch (c) {
        case 0:
            mb_attr_int(mb_node(m, "Gemm", "g2", "x,w", "z"), "transA", 2);
            break;
        case 1:
            mb_attr_int(mb_node(m, "LeakyRelu", "lr", "y", "z"), "alpha", 1);
            break;
        case 2:
            mb_node(m, "Concat", "cat", "y,y", "z");
            break;
        case 3:
            mb_attr_floats(mb_node(m, "Transpose", "tr", "y", "z"), "perm", 2, fperm);
            break;
        case 4:
            mb_attr_string(mb_node(m, "Softmax", "sm", "y", "z"), "axis", "last");
            break;
        case 5:
            mb_node(m, "Unsqueeze", "un", "y", "z"); /* opset 13 needs the axes input */
            break;
        }
        mb_output(m, "z", TU_FLOAT, -1, d);
        expect_fail(m, HLT_INVALID_ARGUMENT, words[c]);
        mb_free(m);
    }
}

Test(onnx_load, unsupported_attribute_values)
{
    mb_t *m = small_model();
    const int64_t cd[] = {3};
    const float p[3] = {1, 1, 1};
    mb_init_f32(m, "p", 1, cd, p, false);
    Onnx__NodeProto *n = mb_node(m, "BatchNormalization", "bn", "y,p,p,p,p", "z");
    mb_attr_int(n, "training_mode", 1);
    mb_output(m, "z", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'bn'", "training_mode"));
    mb_free(m);
    m = small_model();
    mb_attr_int(mb_node(m, "Add", "legacy", "y,y", "z"), "axis", 1);
    mb_output(m, "z", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'legacy'", "axis"));
    mb_free(m);
}

Test(onnx_load, wrong_number_of_inputs)
{
    mb_t *m = small_model();
    mb_node(m, "Gemm", "g1", "x", "z");
    mb_output(m, "z", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("'g1'", "Gemm", "1 inputs"));
    mb_free(m);
    m = small_model();
    mb_node(m, "Relu", "r", "x,", "z"); /* a present-but-empty optional Relu cannot have */
    mb_output(m, "z", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("'r'", "Relu"));
    mb_free(m);
}

Test(onnx_load, external_data_is_refused_with_advice)
{
    mb_t *m = small_model();
    Onnx__TensorProto *w = mb_proto(m)->graph->initializer[0];
    free(w->raw_data.data);
    w->has_raw_data = 0;
    w->raw_data.data = NULL;
    w->raw_data.len = 0;
    w->has_data_location = 1;
    w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    Onnx__StringStringEntryProto *kv = calloc(1, sizeof *kv);
    onnx__string_string_entry_proto__init(kv);
    kv->key = strdup("location");
    kv->value = strdup("weights.bin");
    w->external_data = calloc(1, sizeof *w->external_data);
    w->external_data[0] = kv;
    w->n_external_data = 1;
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'w'", "external", "weights.bin", "embedded"));
    mb_free(m);
}

Test(onnx_load, initializer_with_wrong_data_size)
{
    mb_t *m = small_model();
    mb_proto(m)->graph->initializer[1]->raw_data.len = 8; /* b: 3 floats need 12 bytes */
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("'b'", "8 bytes", "3 elements"));
    mb_free(m);
}

Test(onnx_load, io_types_other_than_float_and_int64)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 4};
    mb_input(m, "half", TU_FLOAT16, 2, d);
    mb_node(m, "Identity", "i", "half", "y");
    mb_output(m, "y", TU_FLOAT16, 2, d);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("input 'half'", "FLOAT16", "FLOAT and INT64"));
    mb_free(m);
    m = small_model();
    mb_proto(m)->graph->output[0]->type->tensor_type->elem_type = TU_DOUBLE;
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("output 'y'", "DOUBLE"));
    mb_free(m);
    m = small_model();
    mb_proto(m)->graph->output[0]->type->tensor_type->elem_type = TU_INT64;
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("output 'y'", "declared INT64", "FP32"));
    mb_free(m);
}

Test(onnx_load, dtype_errors_name_node_and_tensor)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {2, 2};
    mb_input(m, "ids", TU_INT64, 2, d);
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_node(m, "MatMul", "mm", "ids,ids", "y");
    mb_output(m, "y", TU_INT64, -1, NULL);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'mm'", "MatMul", "'ids'", "INT64"));
    mb_free(m);
    m = mb_new(13);
    mb_input(m, "ids", TU_INT64, 2, d);
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_node(m, "Add", "mix", "x,ids", "y");
    mb_output(m, "y", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("'mix'", "'ids'", "INT64", "FP32"));
    mb_free(m);
}

Test(onnx_load, undefined_duplicate_and_unproduced_names)
{
    mb_t *m = small_model();
    mb_node(m, "Relu", "r2", "nowhere", "z");
    mb_output(m, "z", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("'r2'", "'nowhere'", "not defined"));
    mb_free(m);
    m = small_model();
    mb_node(m, "Relu", "again", "x", "h"); /* h is already produced by fc */
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("'h'", "more than once"));
    mb_free(m);
    m = small_model();
    mb_output(m, "ghost", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("output 'ghost'", "not produced"));
    mb_free(m);
}

Test(onnx_load, cycle_is_reported)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {2};
    mb_input(m, "x", TU_FLOAT, 1, d);
    mb_node(m, "Add", "a", "x,c", "b");
    mb_node(m, "Relu", "loop", "b", "c");
    mb_output(m, "c", TU_FLOAT, 1, d);
    expect_fail(m, HLT_INVALID_ARGUMENT, WORDS("cycle"));
    mb_free(m);
}

Test(onnx_load, reshape_shape_must_be_constant)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {2, 3}, sd[] = {2};
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_input(m, "shape", TU_INT64, 1, sd);
    mb_node(m, "Reshape", "dyn", "x,shape", "y");
    mb_output(m, "y", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'dyn'", "Reshape", "'shape'", "run time"));
    mb_free(m);
}

Test(onnx_load, batchnorm_training_outputs_cannot_be_used)
{
    mb_t *m = small_model();
    const int64_t cd[] = {3};
    const float p[3] = {1, 1, 1};
    mb_init_f32(m, "p", 1, cd, p, false);
    mb_node(m, "BatchNormalization", "bn", "y,p,p,p,p", "z,running_mean");
    mb_output(m, "z", TU_FLOAT, -1, NULL);
    char err[256] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "unused extra outputs load: %s", err);
    engine_graph_destroy(g);
    mb_output(m, "running_mean", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'running_mean'", "optional output"));
    mb_free(m);
}

Test(onnx_load, constant_forms_we_do_not_support)
{
    mb_t *m = small_model();
    mb_attr_string(mb_node(m, "Constant", "s", "", "str"), "value_string", "hello");
    mb_output(m, "str", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'s'", "value_string"));
    mb_free(m);
}

Test(onnx_load, converts_int32_and_double_initializers)
{
    /* Reshape by an INT32 shape, Add a DOUBLE bias: widened / narrowed at load. */
    mb_t *m = mb_new(13);
    const int64_t xd[] = {2, 3}, sd[] = {2}, bd[] = {3}, yd[] = {3, 2};
    const int32_t shape[] = {3, -1};
    const double bias[] = {0.5, -1.0, 2.0};
    mb_input(m, "x", TU_FLOAT, 2, xd);
    Onnx__GraphProto *gp = mb_proto(m)->graph;
    Onnx__TensorProto *ts = mb_tensor("shape", TU_INT32, 1, sd, NULL, 0);
    ts->n_int32_data = 2;
    ts->int32_data = malloc(sizeof shape);
    memcpy(ts->int32_data, shape, sizeof shape);
    Onnx__TensorProto *tb = mb_tensor("bias", TU_DOUBLE, 1, bd, bias, sizeof bias);
    gp->initializer = realloc(gp->initializer, sizeof *gp->initializer * 2);
    gp->initializer[0] = ts;
    gp->initializer[1] = tb;
    gp->n_initializer = 2;
    mb_node(m, "Add", "add", "x,bias", "a");
    mb_node(m, "Reshape", "r", "a,shape", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    const float x[6] = {1, 2, 3, 4, 5, 6};
    engine_shape_t in = tu_shape(2, xd), out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.dims[0], 3);
    cr_assert_eq(out.dims[1], 2);
    const float want[6] = {1.5f, 1, 5, 4.5f, 4, 8};
    cr_assert_arr_eq(o[0], want, sizeof want);
    free(o[0]);
    mb_free(m);
}

Test(onnx_load, unsupported_typed_initializer_only_matters_when_used)
{
    mb_t *m = small_model();
    const int64_t d[] = {2};
    const uint16_t half[2] = {0x3c00, 0x4000};
    Onnx__GraphProto *gp = mb_proto(m)->graph;
    gp->initializer = realloc(gp->initializer, sizeof *gp->initializer * (gp->n_initializer + 1));
    gp->initializer[gp->n_initializer++] = mb_tensor("h16", TU_FLOAT16, 1, d, half, sizeof half);
    engine_graph_t *g = NULL;
    char err[256] = "";
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    engine_graph_destroy(g);
    mb_node(m, "Add", "use16", "h16,h16", "z");
    mb_output(m, "z", TU_FLOAT, -1, NULL);
    expect_fail(m, HLT_UNIMPLEMENTED, WORDS("'use16'", "'h16'", "unsupported data type"));
    mb_free(m);
}
