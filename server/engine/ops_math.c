/* ops_math: run functions of the compute ops, mapping a node onto hltkernels_cpu.
 *
 * Gemm and MatMul reduce to cpu_sgemm calls (which picks OpenBLAS or our small kernel, see
 * kernels/cpu/cpu_gemm.c). MatMul with a broadcast (batch-free) B runs as one GEMM over all of
 * A's rows, which is how [N,T,K] x [K,F] layers stay a single BLAS call; other batched cases
 * loop over the broadcast batch index. Shapes were checked by shape.c; nothing here fails or
 * allocates. */
#include <string.h>

#include "cpu_binary.h"
#include "cpu_gemm.h"
#include "cpu_unary.h"
#include "ops.h"
#include "shape.h"

static const engine_shape_t *in_shape(const op_run_t *r, int i)
{
    return &r->shapes[r->n->in[i]];
}

static const void *in_data(const op_run_t *r, int i)
{
    return r->data[r->n->in[i]];
}

void ops_run_gemm(const op_run_t *r)
{
    const op_attrs_t *at = &r->n->attrs;
    const engine_shape_t *as = in_shape(r, 0), *bs = in_shape(r, 1);
    const engine_shape_t *ys = &r->shapes[r->n->out[0]];
    const float *a = in_data(r, 0), *b = in_data(r, 1);
    float *y = r->data[r->n->out[0]];
    const int64_t m = ys->dims[0], n = ys->dims[1];
    const int64_t k = at->trans_a ? as->dims[0] : as->dims[1];
    float beta = 0.0f;
    if (r->n->n_in > 2 && r->n->in[2] >= 0 && at->beta != 0.0f && m > 0 && n > 0) {
        /* Y = C broadcast to [m,n], then Y = alpha*op(A)op(B) + beta*Y. */
        const engine_shape_t *cs = in_shape(r, 2);
        const float *c = in_data(r, 2);
        const int64_t c0 = cs->rank == 2 ? cs->dims[0] : 1;
        const int64_t c1 = cs->rank >= 1 ? cs->dims[cs->rank - 1] : 1;
        for (int64_t i = 0; i < m; i++) {
            const float *ci = c + (c0 == m ? i : 0) * c1;
            float *yi = y + i * n;
            if (c1 == n)
                memcpy(yi, ci, sizeof(float) * (size_t)n);
            else
                for (int64_t j = 0; j < n; j++)
                    yi[j] = ci[0];
        }
        beta = at->beta;
    }
    cpu_sgemm(at->trans_a, at->trans_b, m, n, k, at->alpha, a, as->dims[1], b, bs->dims[1], beta, y,
              n);
}

void ops_run_matmul(const op_run_t *r)
{
    const engine_shape_t *as = in_shape(r, 0), *bs = in_shape(r, 1);
    const engine_shape_t *ys = &r->shapes[r->n->out[0]];
    const float *a = in_data(r, 0), *b = in_data(r, 1);
    float *y = r->data[r->n->out[0]];
    const bool a1 = as->rank == 1, b1 = bs->rank == 1;
    const int64_t m = a1 ? 1 : as->dims[as->rank - 2];
    const int64_t k = as->dims[as->rank - 1];
    const int64_t n = b1 ? 1 : bs->dims[bs->rank - 1];
    /* Batch dims of Y, and of A and B right-aligned to them (rank <= 6). */
    const int32_t yb = ys->rank - (a1 ? 0 : 1) - (b1 ? 0 : 1);
    const int32_t ab = as->rank > 2 ? as->rank - 2 : 0, bb = bs->rank > 2 ? bs->rank - 2 : 0;
    int64_t b_batch = 1;
    for (int32_t i = 0; i < bb; i++)
        b_batch *= bs->dims[i];
    if (b_batch == 1) {
        /* B is one matrix: fold all of A's (and so Y's) batch into the rows. */
        int64_t rows = m;
        for (int32_t i = 0; i < ab; i++)
            rows *= as->dims[i];
        cpu_sgemm(false, false, rows, n, k, 1.0f, a, k, b, n, 0.0f, y, n);
        return;
    }
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK], dims[ENGINE_MAX_RANK];
    int64_t acc_a = m * k, acc_b = k * n;
    for (int32_t i = yb - 1; i >= 0; i--) {
        const int32_t ia = i - (yb - ab), ib = i - (yb - bb);
        const int64_t da = ia >= 0 ? as->dims[ia] : 1, db = ib >= 0 ? bs->dims[ib] : 1;
        dims[i] = ys->dims[i];
        sa[i] = da == 1 ? 0 : acc_a;
        sb[i] = db == 1 ? 0 : acc_b;
        acc_a *= da;
        acc_b *= db;
    }
    int64_t total = 1;
    for (int32_t i = 0; i < yb; i++)
        total *= dims[i];
    int64_t idx[ENGINE_MAX_RANK] = {0};
    for (int64_t t = 0; t < total; t++) {
        int64_t oa = 0, ob = 0;
        for (int32_t i = 0; i < yb; i++) {
            oa += idx[i] * sa[i];
            ob += idx[i] * sb[i];
        }
        cpu_sgemm(false, false, m, n, k, 1.0f, a + oa, k, b + ob, n, 0.0f, y + t * m * n, n);
        for (int32_t i = yb - 1; i >= 0 && ++idx[i] == dims[i]; i--)
            idx[i] = 0;
    }
}

void ops_run_binary(const op_run_t *r)
{
    static const cpu_binop ops[] = {[OP_ADD] = CPU_BIN_ADD,
                                    [OP_SUB] = CPU_BIN_SUB,
                                    [OP_MUL] = CPU_BIN_MUL,
                                    [OP_DIV] = CPU_BIN_DIV};
    const engine_shape_t *as = in_shape(r, 0), *bs = in_shape(r, 1);
    const engine_shape_t *ys = &r->shapes[r->n->out[0]];
    const cpu_binop op = ops[r->n->op];
    if (r->g->tensors[r->n->out[0]].dtype == HLT_TYPE_INT64)
        cpu_binary_i64(op, in_data(r, 0), as->rank, as->dims, in_data(r, 1), bs->rank, bs->dims,
                       r->data[r->n->out[0]], ys->rank, ys->dims);
    else
        cpu_binary_f32(op, in_data(r, 0), as->rank, as->dims, in_data(r, 1), bs->rank, bs->dims,
                       r->data[r->n->out[0]], ys->rank, ys->dims);
}

void ops_run_unary(const op_run_t *r)
{
    const float *x = in_data(r, 0);
    float *y = r->data[r->n->out[0]];
    const int64_t n = shape_numel(in_shape(r, 0));
    switch (r->n->op) {
    case OP_RELU:
        cpu_relu_f32(x, y, n);
        break;
    case OP_LEAKY_RELU:
        cpu_leaky_relu_f32(x, y, n, r->n->attrs.alpha);
        break;
    case OP_SIGMOID:
        cpu_sigmoid_f32(x, y, n);
        break;
    case OP_TANH:
        cpu_tanh_f32(x, y, n);
        break;
    default:
        break;
    }
}

void ops_run_softmax(const op_run_t *r)
{
    const engine_shape_t *xs = in_shape(r, 0);
    const int64_t axis = r->n->attrs.axis < 0 ? r->n->attrs.axis + xs->rank : r->n->attrs.axis;
    int64_t outer = 1, len = 1, inner = 1;
    for (int32_t i = 0; i < xs->rank; i++) {
        if (i < axis)
            outer *= xs->dims[i];
        else if (i == axis || r->n->attrs.softmax_2d)
            len *= xs->dims[i]; /* opset < 13: everything from axis on is one row */
        else
            inner *= xs->dims[i];
    }
    cpu_softmax_f32(in_data(r, 0), r->data[r->n->out[0]], outer, len, inner, r->ws);
}

void ops_run_batchnorm(const op_run_t *r)
{
    const engine_shape_t *xs = in_shape(r, 0);
    const int64_t c = xs->dims[1];
    int64_t inner = 1;
    for (int32_t i = 2; i < xs->rank; i++)
        inner *= xs->dims[i];
    float *a = r->ws, *b = a + c;
    cpu_bn_coeffs_f32(in_data(r, 1), in_data(r, 2), in_data(r, 3), in_data(r, 4),
                      r->n->attrs.epsilon, c, a, b);
    cpu_channel_affine_f32(in_data(r, 0), r->data[r->n->out[0]], xs->dims[0], c, inner, a, b);
}
