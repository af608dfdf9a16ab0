/* Data-movement ops (ops_shape.c) and Constant through the whole engine: output shapes and
 * exact values (no arithmetic, so results must be bit-identical), FP32 and INT64, with the
 * opset-dependent forms of Squeeze/Unsqueeze (axes attribute before 13, input from 13). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static float *iota(int64_t n)
{
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    cr_assert_not_null(x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)i * 0.5f - 3.0f;
    return x;
}

static void expect_shape(const engine_shape_t *s, int32_t r, const int64_t *d)
{
    cr_assert_eq(s->rank, r, "rank %d, want %d", s->rank, r);
    for (int32_t i = 0; i < r; i++)
        cr_assert_eq(s->dims[i], d[i], "dim %d: %lld, want %lld", i, (long long)s->dims[i],
                     (long long)d[i]);
}

/* One-input graph: x -> node -> y; checks the shape and that the data is x unchanged (the
 * relabelling ops). */
static void check_relabel(mb_t *mb, int32_t r, const int64_t *d, int32_t yr, const int64_t *yd)
{
    int64_t n = 1;
    for (int32_t i = 0; i < r; i++)
        n *= d[i];
    float *x = iota(n);
    engine_shape_t in = tu_shape(r, d), out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(mb, &in, inp, &out, o);
    expect_shape(&out, yr, yd);
    cr_assert_arr_eq(o[0], x, sizeof(float) * (size_t)n);
    free(o[0]);
    free(x);
}

Test(ops_shape, flatten_axes)
{
    const int64_t d[] = {2, 3, 4, 5};
    const struct {
        int64_t axis;
        int64_t y[2];
    } cases[] = {{0, {1, 120}}, {1, {2, 60}},  {2, {6, 20}},
                 {4, {120, 1}}, {-1, {24, 5}}, {-4, {1, 120}}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mb_t *mb = mb_new(13);
        mb_input(mb, "x", TU_FLOAT, 4, d);
        mb_attr_int(mb_node(mb, "Flatten", "f", "x", "y"), "axis", cases[i].axis);
        mb_output(mb, "y", TU_FLOAT, 2, cases[i].y);
        check_relabel(mb, 4, d, 2, cases[i].y);
        mb_free(mb);
    }
    /* default axis 1 */
    mb_t *mb = mb_new(11);
    const int64_t y[] = {2, 60};
    mb_input(mb, "x", TU_FLOAT, 4, d);
    mb_node(mb, "Flatten", "f", "x", "y");
    mb_output(mb, "y", TU_FLOAT, 2, y);
    check_relabel(mb, 4, d, 2, y);
    mb_free(mb);
}

static void check_reshape(int32_t r, const int64_t *d, int32_t k, const int64_t *shape,
                          bool allowzero, int32_t yr, const int64_t *yd)
{
    mb_t *mb = mb_new(14);
    const int64_t sd[] = {k};
    mb_input(mb, "x", TU_FLOAT, r, d);
    mb_init_i64(mb, "shape", 1, sd, shape, false);
    Onnx__NodeProto *n = mb_node(mb, "Reshape", "r", "x,shape", "y");
    if (allowzero)
        mb_attr_int(n, "allowzero", 1);
    mb_output(mb, "y", TU_FLOAT, -1, NULL);
    check_relabel(mb, r, d, yr, yd);
    mb_free(mb);
}

Test(ops_shape, reshape_zero_copies_and_minus_one_infers)
{
    const int64_t d[] = {2, 3, 4};
    const int64_t s1[] = {0, -1}, y1[] = {2, 12};
    const int64_t s2[] = {-1, 4}, y2[] = {6, 4};
    const int64_t s3[] = {0, 0, 2, 2}, y3[] = {2, 3, 2, 2};
    const int64_t s4[] = {24}, y4[] = {24};
    const int64_t s5[] = {1, -1, 1}, y5[] = {1, 24, 1};
    check_reshape(3, d, 2, s1, false, 2, y1);
    check_reshape(3, d, 2, s2, false, 2, y2);
    check_reshape(3, d, 4, s3, false, 4, y3);
    check_reshape(3, d, 1, s4, false, 1, y4);
    check_reshape(3, d, 3, s5, false, 3, y5);
    /* allowzero: 0 is a real zero-sized dim */
    const int64_t dz[] = {0, 3}, sz[] = {3, 0}, yz[] = {3, 0};
    check_reshape(2, dz, 2, sz, true, 2, yz);
}

Test(ops_shape, reshape_shape_from_constant_node)
{
    mb_t *mb = mb_new(13);
    const int64_t d[] = {-1, 6}, sd[] = {3}, shape[] = {0, 2, -1}, y[] = {4, 2, 3};
    mb_input(mb, "x", TU_FLOAT, 2, d);
    Onnx__NodeProto *c = mb_node(mb, "Constant", "c", "", "shape");
    mb_attr_tensor(c, "value", mb_tensor("shape", TU_INT64, 1, sd, shape, sizeof shape));
    mb_node(mb, "Reshape", "r", "x,shape", "y");
    mb_output(mb, "y", TU_FLOAT, 3, (const int64_t[]){-1, 2, 3});
    const int64_t x[] = {4, 6};
    check_relabel(mb, 2, x, 3, y);
    mb_free(mb);
}

static void check_transpose(int32_t r, const int64_t *d, const int64_t *perm, bool int64)
{
    int64_t n = 1, yd[8], xs[8];
    for (int32_t i = r - 1; i >= 0; i--) {
        xs[i] = n;
        n *= d[i];
    }
    for (int32_t i = 0; i < r; i++)
        yd[i] = d[perm ? perm[i] : r - 1 - i];
    void *x = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) {
        if (int64)
            ((int64_t *)x)[i] = i * 3 - 7;
        else
            ((float *)x)[i] = (float)i * 0.25f;
    }
    mb_t *mb = mb_new(13);
    mb_input(mb, "x", int64 ? TU_INT64 : TU_FLOAT, r, d);
    Onnx__NodeProto *node = mb_node(mb, "Transpose", "t", "x", "y");
    if (perm)
        mb_attr_ints(node, "perm", r, perm);
    mb_output(mb, "y", int64 ? TU_INT64 : TU_FLOAT, r, yd);
    engine_shape_t in = tu_shape(r, d), out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(mb, &in, inp, &out, o);
    expect_shape(&out, r, yd);
    /* y[j0..jr] = x[i] with i_perm[k] = j_k */
    for (int64_t t = 0; t < n; t++) {
        int64_t rem = t, src = 0;
        for (int32_t k = r - 1; k >= 0; k--) {
            const int64_t j = rem % yd[k];
            rem /= yd[k];
            src += j * xs[perm ? perm[k] : r - 1 - k];
        }
        if (int64)
            cr_assert_eq(((int64_t *)o[0])[t], ((int64_t *)x)[src], "element %lld", (long long)t);
        else
            cr_assert_eq(((float *)o[0])[t], ((float *)x)[src], "element %lld", (long long)t);
    }
    free(o[0]);
    free(x);
    mb_free(mb);
}

Test(ops_shape, transpose_default_and_perms)
{
    const int64_t d2[] = {37, 70}, d3[] = {2, 3, 4}, d4[] = {2, 3, 4, 5}, d1[] = {5};
    const int64_t p3a[] = {0, 2, 1}, p3b[] = {1, 0, 2}, p3c[] = {2, 0, 1};
    const int64_t p4a[] = {0, 2, 3, 1}, p4b[] = {3, 1, 2, 0}, p4c[] = {0, 1, 2, 3};
    check_transpose(2, d2, NULL, false);
    check_transpose(3, d3, NULL, false);
    check_transpose(3, d3, p3a, false);
    check_transpose(3, d3, p3b, false);
    check_transpose(3, d3, p3c, true);
    check_transpose(4, d4, p4a, false);
    check_transpose(4, d4, p4b, true);
    check_transpose(4, d4, p4c, false);
    check_transpose(1, d1, NULL, false);
}

static void check_concat(int64_t axis, int32_t n_in, const int64_t (*dims)[3], bool int64)
{
    mb_t *mb = mb_new(13);
    char names[64] = "";
    void *xs[4];
    engine_shape_t in[4];
    const int32_t type = int64 ? TU_INT64 : TU_FLOAT;
    int64_t base = 0;
    for (int32_t i = 0; i < n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        mb_input(mb, nm, type, 3, dims[i]);
        strcat(names, i ? "," : "");
        strcat(names, nm);
        in[i] = tu_shape(3, dims[i]);
        const int64_t n = tu_numel(&in[i]);
        xs[i] = malloc((size_t)(n ? n : 1) * 8);
        for (int64_t k = 0; k < n; k++) {
            if (int64)
                ((int64_t *)xs[i])[k] = base + k;
            else
                ((float *)xs[i])[k] = (float)(base + k);
        }
        base += 1000;
    }
    mb_attr_int(mb_node(mb, "Concat", "cat", names, "y"), "axis", axis);
    mb_output(mb, "y", type, -1, NULL);
    engine_shape_t out;
    void *o[1];
    tu_run(mb, in, (const void *const *)xs, &out, o);
    const int64_t ax = axis < 0 ? axis + 3 : axis;
    int64_t yd[3] = {dims[0][0], dims[0][1], dims[0][2]};
    yd[ax] = 0;
    for (int32_t i = 0; i < n_in; i++)
        yd[ax] += dims[i][ax];
    expect_shape(&out, 3, yd);
    /* walk the output and find each element's source */
    int64_t t = 0;
    for (int64_t a = 0; a < yd[0]; a++)
        for (int64_t b = 0; b < yd[1]; b++)
            for (int64_t c = 0; c < yd[2]; c++, t++) {
                int64_t idx[3] = {a, b, c}, src = 0;
                while (idx[ax] >= dims[src][ax])
                    idx[ax] -= dims[src++][ax];
                const int64_t k = (idx[0] * dims[src][1] + idx[1]) * dims[src][2] + idx[2];
                const double want = (double)(src * 1000 + k);
                const double got = int64 ? (double)((int64_t *)o[0])[t] : ((float *)o[0])[t];
                cr_assert_eq(got, want, "axis %lld element %lld", (long long)axis, (long long)t);
            }
    for (int32_t i = 0; i < n_in; i++)
        free(xs[i]);
    free(o[0]);
    mb_free(mb);
}

Test(ops_shape, concat_axes_and_dtypes)
{
    const int64_t a0[][3] = {{2, 3, 4}, {1, 3, 4}, {3, 3, 4}};
    const int64_t a1[][3] = {{2, 1, 4}, {2, 5, 4}};
    const int64_t a2[][3] = {{2, 3, 1}, {2, 3, 2}, {2, 3, 3}};
    const int64_t e[][3] = {{2, 0, 4}, {2, 3, 4}}; /* an empty input */
    check_concat(0, 3, a0, false);
    check_concat(1, 2, a1, false);
    check_concat(-2, 2, a1, true);
    check_concat(2, 3, a2, false);
    check_concat(-1, 3, a2, true);
    check_concat(1, 2, e, false);
}

Test(ops_shape, identity_passes_fp32_and_int64)
{
    const int64_t d[] = {3, 5};
    mb_t *mb = mb_new(13);
    mb_input(mb, "x", TU_FLOAT, 2, d);
    mb_node(mb, "Identity", "i", "x", "y");
    mb_output(mb, "y", TU_FLOAT, 2, d);
    check_relabel(mb, 2, d, 2, d);
    mb_free(mb);
    mb = mb_new(13);
    mb_input(mb, "x", TU_INT64, 2, d);
    mb_node(mb, "Identity", "i", "x", "y");
    mb_output(mb, "y", TU_INT64, 2, d);
    int64_t xi[15];
    for (int i = 0; i < 15; i++)
        xi[i] = (int64_t)1 << (i * 4);
    engine_shape_t in = tu_shape(2, d), out;
    const void *inp[] = {xi};
    void *o[1];
    tu_run(mb, &in, inp, &out, o);
    cr_assert_arr_eq(o[0], xi, sizeof xi);
    free(o[0]);
    mb_free(mb);
}

/* Constant forms: value tensor, value_float(s), value_int(s); outputs are the constants. */
Test(ops_shape, constant_value_forms)
{
    mb_t *mb = mb_new(13);
    const int64_t td[] = {2, 2};
    const float tv[] = {1.5f, -2, 3, 4.25f}, fs[] = {0.5f, 7};
    const int64_t is[] = {-1, 0, 9};
    mb_attr_tensor(mb_node(mb, "Constant", "c0", "", "t"), "value",
                   mb_tensor("t", TU_FLOAT, 2, td, tv, sizeof tv));
    mb_attr_float(mb_node(mb, "Constant", "c1", "", "f"), "value_float", 2.5f);
    mb_attr_floats(mb_node(mb, "Constant", "c2", "", "fs"), "value_floats", 2, fs);
    mb_attr_int(mb_node(mb, "Constant", "c3", "", "i"), "value_int", -42);
    mb_attr_ints(mb_node(mb, "Constant", "c4", "", "is"), "value_ints", 3, is);
    mb_output(mb, "t", TU_FLOAT, 2, td);
    mb_output(mb, "f", TU_FLOAT, 0, NULL);
    mb_output(mb, "fs", TU_FLOAT, -1, NULL);
    mb_output(mb, "i", TU_INT64, 0, NULL);
    mb_output(mb, "is", TU_INT64, -1, NULL);
    engine_shape_t out[5];
    void *o[5];
    tu_run(mb, NULL, NULL, out, o);
    expect_shape(&out[0], 2, td);
    cr_assert_arr_eq(o[0], tv, sizeof tv);
    cr_assert_eq(out[1].rank, 0);
    cr_assert_eq(*(float *)o[1], 2.5f);
    cr_assert_eq(out[2].rank, 1);
    cr_assert_arr_eq(o[2], fs, sizeof fs);
    cr_assert_eq(*(int64_t *)o[3], -42);
    cr_assert_arr_eq(o[4], is, sizeof is);
    for (int i = 0; i < 5; i++)
        free(o[i]);
    mb_free(mb);
}

/* Unsqueeze then Squeeze back, axes as attribute (opset 11) or as input (opset 13). */
static void check_unsqueeze_squeeze(int64_t opset, int32_t k, const int64_t *axes, int32_t ur,
                                    const int64_t *ud)
{
    const int64_t d[] = {3, 4}, ad[] = {k};
    mb_t *mb = mb_new(opset);
    mb_input(mb, "x", TU_FLOAT, 2, d);
    if (opset < 13) {
        mb_attr_ints(mb_node(mb, "Unsqueeze", "u", "x", "u"), "axes", k, axes);
        mb_attr_ints(mb_node(mb, "Squeeze", "s", "u", "s"), "axes", k, axes);
    } else {
        mb_init_i64(mb, "axes", 1, ad, axes, true);
        mb_node(mb, "Unsqueeze", "u", "x,axes", "u");
        mb_node(mb, "Squeeze", "s", "u,axes", "s");
    }
    mb_output(mb, "u", TU_FLOAT, -1, NULL);
    mb_output(mb, "s", TU_FLOAT, -1, NULL);
    float *x = iota(12);
    engine_shape_t in = tu_shape(2, d), out[2];
    const void *inp[] = {x};
    void *o[2];
    tu_run(mb, &in, inp, out, o);
    expect_shape(&out[0], ur, ud);
    expect_shape(&out[1], 2, d);
    cr_assert_arr_eq(o[0], x, 48);
    cr_assert_arr_eq(o[1], x, 48);
    free(o[0]);
    free(o[1]);
    free(x);
    mb_free(mb);
}

Test(ops_shape, unsqueeze_squeeze_opset11_attribute)
{
    const int64_t a1[] = {0}, u1[] = {1, 3, 4};
    const int64_t a2[] = {1, -1}, u2[] = {3, 1, 4, 1};
    const int64_t a3[] = {3, 0}, u3[] = {1, 3, 4, 1};
    check_unsqueeze_squeeze(11, 1, a1, 3, u1);
    check_unsqueeze_squeeze(11, 2, a2, 4, u2);
    check_unsqueeze_squeeze(11, 2, a3, 4, u3);
}

Test(ops_shape, unsqueeze_squeeze_opset13_input)
{
    const int64_t a1[] = {2}, u1[] = {3, 4, 1};
    const int64_t a2[] = {-4, 2}, u2[] = {1, 3, 1, 4};
    check_unsqueeze_squeeze(13, 1, a1, 3, u1);
    check_unsqueeze_squeeze(13, 2, a2, 4, u2);
}

Test(ops_shape, squeeze_without_axes_drops_every_one)
{
    for (int64_t opset = 11; opset <= 13; opset += 2) {
        mb_t *mb = mb_new(opset);
        const int64_t d[] = {1, 3, 1, 4, 1}, y[] = {3, 4};
        mb_input(mb, "x", TU_FLOAT, 5, d);
        mb_node(mb, "Squeeze", "s", "x", "y");
        mb_output(mb, "y", TU_FLOAT, 2, y);
        check_relabel(mb, 5, d, 2, y);
        mb_free(mb);
    }
}
