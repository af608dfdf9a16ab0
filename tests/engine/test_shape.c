/* Shape rules (shape.c): broadcasting, and for each op the shape error engine_exec_prepare
 * reports (INVALID_ARGUMENT naming node and op) when a model meets inputs it cannot take. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "shape.h"
#include "test_util.h"

static engine_shape_t S(int32_t r, int64_t a, int64_t b, int64_t c, int64_t d)
{
    engine_shape_t s = {.rank = r, .dims = {a, b, c, d}};
    return s;
}

Test(shape, broadcast_rules)
{
    engine_shape_t o;
    engine_shape_t a = S(3, 2, 1, 5, 0), b = S(2, 4, 1, 0, 0);
    cr_assert(shape_broadcast(&a, &b, &o));
    cr_assert_eq(o.rank, 3);
    cr_assert_eq(o.dims[0], 2);
    cr_assert_eq(o.dims[1], 4);
    cr_assert_eq(o.dims[2], 5);
    engine_shape_t scalar = S(0, 0, 0, 0, 0);
    cr_assert(shape_broadcast(&scalar, &a, &o));
    cr_assert_eq(o.rank, 3);
    engine_shape_t zero = S(2, 0, 5, 0, 0), one = S(2, 1, 5, 0, 0);
    cr_assert(shape_broadcast(&zero, &one, &o));
    cr_assert_eq(o.dims[0], 0, "1 broadcasts to 0");
    engine_shape_t bad1 = S(2, 3, 4, 0, 0), bad2 = S(1, 3, 0, 0, 0);
    cr_assert_not(shape_broadcast(&bad1, &bad2, &o));
}

Test(shape, numel_and_printing)
{
    engine_shape_t s = S(3, 2, 3, 4, 0), neg = S(1, -1, 0, 0, 0);
    cr_assert_eq(shape_numel(&s), 24);
    cr_assert_eq(shape_numel(&neg), -1);
    engine_shape_t huge = {.rank = 3, .dims = {INT64_MAX / 2, 3, 3}};
    cr_assert_eq(shape_numel(&huge), -1);
    char buf[32];
    cr_assert_str_eq(shape_str(&s, buf, sizeof buf), "[2,3,4]");
    engine_shape_t sc = S(0, 0, 0, 0, 0);
    cr_assert_str_eq(shape_str(&sc, buf, sizeof buf), "[]");
}

/* Builds x -> <node> -> y with the node's extra inputs as initializers, then prepares with
 * x's shape and expects INVALID_ARGUMENT whose message contains all words. */
typedef struct init_spec {
    const char *name;
    int32_t type;
    int32_t rank;
    int64_t dims[4];
    int64_t ivals[4];
} init_spec_t;

static void expect_prepare_fails(int64_t opset, const char *op, const char *inputs,
                                 const init_spec_t *inits, int n_inits, const char *attr,
                                 int64_t ival, const int64_t *ints, int32_t n_ints,
                                 engine_shape_t xs, const char *const *words)
{
    mb_t *m = mb_new(opset);
    mb_input(m, "x", TU_FLOAT, -1, NULL); /* no declared shape: only prepare can tell */
    for (int i = 0; i < n_inits; i++) {
        const init_spec_t *s = &inits[i];
        int64_t n = 1;
        for (int32_t k = 0; k < s->rank; k++)
            n *= s->dims[k];
        if (s->type == TU_INT64) {
            mb_init_i64(m, s->name, s->rank, s->dims, s->ivals, false);
        } else {
            float *v = calloc((size_t)n + 1, sizeof(float));
            mb_init_f32(m, s->name, s->rank, s->dims, v, false);
            free(v);
        }
    }
    Onnx__NodeProto *n = mb_node(m, op, "victim", inputs, "y");
    if (attr && ints)
        mb_attr_ints(n, attr, n_ints, ints);
    else if (attr)
        mb_attr_int(n, attr, ival);
    mb_output(m, "y", TU_FLOAT, -1, NULL);
    char err[512] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s: %s", op, err);
    engine_exec_t *e = NULL;
    cr_assert_eq(engine_exec_create(g, &e, err, sizeof err), HLT_OK);
    engine_shape_t out;
    cr_assert_eq(engine_exec_prepare(e, &xs, &out, err, sizeof err), HLT_INVALID_ARGUMENT,
                 "%s prepared", op);
    cr_assert(strstr(err, "node 'victim'") && strstr(err, op), "%s", err);
    for (; words && *words; words++)
        cr_assert(strstr(err, *words), "message lacks '%s': %s", *words, err);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
    mb_free(m);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(shape, gemm_errors)
{
    const init_spec_t w[] = {{"w", TU_FLOAT, 2, {5, 3}, {0}}};
    expect_prepare_fails(13, "Gemm", "x,w", w, 1, NULL, 0, NULL, 0, S(2, 2, 4, 0, 0),
                         W("disagree on K", "[2,4]", "[5,3]"));
    expect_prepare_fails(13, "Gemm", "x,w", w, 1, NULL, 0, NULL, 0, S(3, 2, 5, 1, 0), W("2-D"));
    const init_spec_t wc[] = {{"w", TU_FLOAT, 2, {5, 3}, {0}}, {"c", TU_FLOAT, 1, {4}, {0}}};
    expect_prepare_fails(13, "Gemm", "x,w,c", wc, 2, NULL, 0, NULL, 0, S(2, 2, 5, 0, 0),
                         W("C [4]", "[2,3]"));
}

Test(shape, matmul_and_elementwise_errors)
{
    const init_spec_t w[] = {{"w", TU_FLOAT, 3, {3, 4, 2}, {0}}};
    expect_prepare_fails(13, "MatMul", "x,w", w, 1, NULL, 0, NULL, 0, S(2, 5, 3, 0, 0),
                         W("disagree on K"));
    expect_prepare_fails(13, "MatMul", "x,w", w, 1, NULL, 0, NULL, 0, S(3, 2, 5, 4, 0),
                         W("batch dims"));
    const init_spec_t b[] = {{"b", TU_FLOAT, 1, {3}, {0}}};
    expect_prepare_fails(13, "Add", "x,b", b, 1, NULL, 0, NULL, 0, S(2, 2, 4, 0, 0),
                         W("[2,4]", "[3]", "broadcast"));
    expect_prepare_fails(13, "Div", "x,b", b, 1, NULL, 0, NULL, 0, S(2, 3, 2, 0, 0),
                         W("broadcast"));
}

Test(shape, reshape_errors)
{
    const init_spec_t bad_count[] = {{"s", TU_INT64, 1, {2}, {5, -1}}};
    expect_prepare_fails(13, "Reshape", "x,s", bad_count, 1, NULL, 0, NULL, 0, S(2, 2, 3, 0, 0),
                         W("-1"));
    const init_spec_t two_minus[] = {{"s", TU_INT64, 1, {2}, {-1, -1}}};
    expect_prepare_fails(13, "Reshape", "x,s", two_minus, 1, NULL, 0, NULL, 0, S(2, 2, 3, 0, 0),
                         W("more than one -1"));
    const init_spec_t wrong[] = {{"s", TU_INT64, 1, {2}, {4, 4}}};
    expect_prepare_fails(13, "Reshape", "x,s", wrong, 1, NULL, 0, NULL, 0, S(2, 2, 3, 0, 0),
                         W("6 elements", "16"));
    const init_spec_t zero_beyond[] = {{"s", TU_INT64, 1, {3}, {6, 1, 0}}};
    expect_prepare_fails(13, "Reshape", "x,s", zero_beyond, 1, NULL, 0, NULL, 0, S(2, 2, 3, 0, 0),
                         W("copies a dim"));
    const init_spec_t neg[] = {{"s", TU_INT64, 1, {2}, {-3, 2}}};
    expect_prepare_fails(13, "Reshape", "x,s", neg, 1, NULL, 0, NULL, 0, S(2, 2, 3, 0, 0),
                         W("invalid"));
}

Test(shape, axis_errors)
{
    expect_prepare_fails(13, "Softmax", "x", NULL, 0, "axis", 3, NULL, 0, S(3, 1, 2, 3, 0),
                         W("axis 3"));
    expect_prepare_fails(11, "Softmax", "x", NULL, 0, "axis", -4, NULL, 0, S(3, 1, 2, 3, 0),
                         W("axis -4"));
    expect_prepare_fails(13, "Flatten", "x", NULL, 0, "axis", 4, NULL, 0, S(3, 1, 2, 3, 0),
                         W("axis 4"));
    expect_prepare_fails(13, "Concat", "x,x", NULL, 0, "axis", 2, NULL, 0, S(2, 1, 2, 0, 0),
                         W("axis 2"));
    const init_spec_t other[] = {{"o", TU_FLOAT, 2, {2, 3}, {0}}};
    expect_prepare_fails(13, "Concat", "x,o", other, 1, "axis", 0, NULL, 0, S(2, 1, 2, 0, 0),
                         W("does not match"));
}

Test(shape, transpose_squeeze_unsqueeze_errors)
{
    const int64_t short_perm[] = {1, 0}, dup_perm[] = {0, 0, 1};
    expect_prepare_fails(13, "Transpose", "x", NULL, 0, "perm", 0, short_perm, 2, S(3, 1, 2, 3, 0),
                         W("perm"));
    expect_prepare_fails(13, "Transpose", "x", NULL, 0, "perm", 0, dup_perm, 3, S(3, 1, 2, 3, 0),
                         W("permutation"));
    const int64_t ax1[] = {1}, ax_dup[] = {0, 0}, ax_far[] = {5};
    expect_prepare_fails(11, "Squeeze", "x", NULL, 0, "axes", 0, ax1, 1, S(2, 1, 3, 0, 0),
                         W("size is not 1"));
    const init_spec_t axes[] = {{"a", TU_INT64, 1, {1}, {1}}};
    expect_prepare_fails(13, "Squeeze", "x,a", axes, 1, NULL, 0, NULL, 0, S(2, 1, 3, 0, 0),
                         W("size is not 1"));
    expect_prepare_fails(11, "Unsqueeze", "x", NULL, 0, "axes", 0, ax_dup, 2, S(1, 3, 0, 0, 0),
                         W("repeated"));
    expect_prepare_fails(11, "Unsqueeze", "x", NULL, 0, "axes", 0, ax_far, 1, S(1, 3, 0, 0, 0),
                         W("out of range"));
}

Test(shape, batchnorm_errors)
{
    const init_spec_t p[] = {{"p", TU_FLOAT, 1, {4}, {0}}};
    expect_prepare_fails(15, "BatchNormalization", "x,p,p,p,p", p, 1, NULL, 0, NULL, 0,
                         S(2, 2, 3, 0, 0), W("scale", "[4]", "[3]"));
    expect_prepare_fails(15, "BatchNormalization", "x,p,p,p,p", p, 1, NULL, 0, NULL, 0,
                         S(1, 4, 0, 0, 0), W("rank >= 2"));
}
