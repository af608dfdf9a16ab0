/* shape: per-op shape rules (see shape.h).
 *
 * Follows the ONNX operator specification: numpy broadcasting for the elementwise ops and the
 * batch dims of MatMul, unidirectional broadcasting for Gemm's C, negative axes counted from the
 * end, Reshape's 0 (copy, unless allowzero) and -1 (inferred), Softmax's opset < 13 coercion to
 * 2-D, Squeeze without axes removing every 1. */
#include "shape.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops.h"

int64_t shape_numel(const engine_shape_t *s)
{
    int64_t n = 1;
    for (int32_t i = 0; i < s->rank; i++) {
        if (s->dims[i] < 0 || __builtin_mul_overflow(n, s->dims[i], &n))
            return -1;
    }
    return n;
}

const char *shape_str(const engine_shape_t *s, char *buf, size_t len)
{
    size_t o = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int32_t i = 0; i < s->rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ",%lld" : "%lld", (long long)s->dims[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
    return buf;
}

bool shape_broadcast(const engine_shape_t *a, const engine_shape_t *b, engine_shape_t *out)
{
    const int32_t r = a->rank > b->rank ? a->rank : b->rank;
    if (r > ENGINE_MAX_RANK)
        return false;
    engine_shape_t o = {.rank = r};
    for (int32_t i = 0; i < r; i++) {
        const int32_t ia = i - (r - a->rank), ib = i - (r - b->rank);
        const int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        o.dims[i] = da == 1 ? db : da;
    }
    *out = o;
    return true;
}

/* Node-prefixed error. */
static hlt_status fail(const graph_node_t *n, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hlt_status fail(const graph_node_t *n, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "node '%s' (%s): %s", n->name,
                       op_def(n->op)->name, msg);
}

/* axis in [-r, r-1] (or [-r, r] when allow_end) -> [0, r-1] ([0, r]). */
static bool norm_axis(int64_t axis, int32_t r, bool allow_end, int64_t *out)
{
    const int64_t hi = allow_end ? r : r - 1;
    if (axis < -(int64_t)r || axis > hi)
        return false;
    *out = axis < 0 ? axis + r : axis;
    return true;
}

/* Axes/perm from the attribute, or from constant input 1. *count = -1 when absent. */
static hlt_status node_ints(const engine_graph_t *g, const graph_node_t *n, int32_t *count,
                            int64_t *vals, char *err, size_t errlen)
{
    if (n->attrs.has_ints) {
        *count = n->attrs.n_ints;
        memcpy(vals, n->attrs.ints, sizeof(int64_t) * (size_t)n->attrs.n_ints);
        return HLT_OK;
    }
    if (n->n_in < 2 || n->in[1] < 0) {
        *count = -1;
        return HLT_OK;
    }
    const graph_tensor_t *t = &g->tensors[n->in[1]];
    engine_shape_t ts = {.rank = t->rank};
    memcpy(ts.dims, t->dims, sizeof(int64_t) * (size_t)(t->rank > 0 ? t->rank : 0));
    const int64_t k = shape_numel(&ts);
    if (!t->is_const || !t->data)
        return fail(n, err, errlen, "input '%s' must be a constant", t->name);
    if (t->rank > 1 || k < 0 || k > ENGINE_MAX_RANK)
        return fail(n, err, errlen, "input '%s' must be a 1-D list of at most %d values", t->name,
                    ENGINE_MAX_RANK);
    *count = (int32_t)k;
    memcpy(vals, t->data, sizeof(int64_t) * (size_t)k);
    return HLT_OK;
}

static hlt_status infer_gemm(const graph_node_t *n, engine_shape_t *s, char *err, size_t errlen)
{
    const engine_shape_t *a = &s[n->in[0]], *b = &s[n->in[1]];
    char sa[96], sb[96];
    if (a->rank != 2 || b->rank != 2)
        return fail(n, err, errlen, "A %s and B %s must both be 2-D", shape_str(a, sa, 96),
                    shape_str(b, sb, 96));
    const int64_t m = n->attrs.trans_a ? a->dims[1] : a->dims[0];
    const int64_t k = n->attrs.trans_a ? a->dims[0] : a->dims[1];
    const int64_t kb = n->attrs.trans_b ? b->dims[1] : b->dims[0];
    const int64_t nn = n->attrs.trans_b ? b->dims[0] : b->dims[1];
    if (k != kb)
        return fail(n, err, errlen, "A %s (transA=%d) and B %s (transB=%d) disagree on K",
                    shape_str(a, sa, 96), n->attrs.trans_a, shape_str(b, sb, 96), n->attrs.trans_b);
    engine_shape_t *y = &s[n->out[0]];
    *y = (engine_shape_t){.rank = 2, .dims = {m, nn}};
    if (n->n_in > 2 && n->in[2] >= 0) {
        const engine_shape_t *c = &s[n->in[2]];
        bool ok = c->rank <= 2;
        for (int32_t i = 0; ok && i < c->rank; i++) {
            const int64_t want = y->dims[2 - c->rank + i];
            ok = c->dims[i] == 1 || c->dims[i] == want;
        }
        if (!ok)
            return fail(n, err, errlen, "C %s does not broadcast to [%lld,%lld]",
                        shape_str(c, sa, 96), (long long)m, (long long)nn);
    }
    return HLT_OK;
}

static hlt_status infer_matmul(const graph_node_t *n, engine_shape_t *s, char *err, size_t errlen)
{
    const engine_shape_t *a = &s[n->in[0]], *b = &s[n->in[1]];
    char sa[96], sb[96];
    if (a->rank < 1 || b->rank < 1)
        return fail(n, err, errlen, "inputs must have rank >= 1, got %s and %s",
                    shape_str(a, sa, 96), shape_str(b, sb, 96));
    const int64_t k = a->dims[a->rank - 1];
    const int64_t kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    if (k != kb)
        return fail(n, err, errlen, "A %s and B %s disagree on K", shape_str(a, sa, 96),
                    shape_str(b, sb, 96));
    engine_shape_t ba = {.rank = a->rank > 2 ? a->rank - 2 : 0};
    engine_shape_t bb = {.rank = b->rank > 2 ? b->rank - 2 : 0};
    memcpy(ba.dims, a->dims, sizeof(int64_t) * (size_t)ba.rank);
    memcpy(bb.dims, b->dims, sizeof(int64_t) * (size_t)bb.rank);
    engine_shape_t y;
    if (!shape_broadcast(&ba, &bb, &y))
        return fail(n, err, errlen, "batch dims of A %s and B %s do not broadcast",
                    shape_str(a, sa, 96), shape_str(b, sb, 96));
    if (a->rank > 1)
        y.dims[y.rank++] = a->dims[a->rank - 2];
    if (b->rank > 1)
        y.dims[y.rank++] = b->dims[b->rank - 1];
    s[n->out[0]] = y;
    return HLT_OK;
}

static hlt_status infer_reshape(const engine_graph_t *g, const graph_node_t *n, engine_shape_t *s,
                                char *err, size_t errlen)
{
    const engine_shape_t *x = &s[n->in[0]];
    const graph_tensor_t *t = &g->tensors[n->in[1]];
    if (!t->is_const || !t->data || t->rank != 1)
        return fail(n, err, errlen, "shape '%s' must be a constant 1-D INT64 tensor", t->name);
    if (t->dims[0] > ENGINE_MAX_RANK)
        return fail(n, err, errlen, "shape '%s' has %lld dims; at most %d are supported", t->name,
                    (long long)t->dims[0], ENGINE_MAX_RANK);
    const int64_t *want = t->data;
    engine_shape_t y = {.rank = (int32_t)t->dims[0]};
    int32_t infer_at = -1;
    int64_t known = 1;
    char sx[96];
    for (int32_t i = 0; i < y.rank; i++) {
        int64_t d = want[i];
        if (d == 0 && !n->attrs.allowzero) {
            if (i >= x->rank)
                return fail(n, err, errlen, "shape[%d] = 0 copies a dim the input %s lacks", i,
                            shape_str(x, sx, 96));
            d = x->dims[i];
        } else if (d == -1) {
            if (infer_at >= 0)
                return fail(n, err, errlen, "shape has more than one -1");
            infer_at = i;
            continue;
        } else if (d < 0) {
            return fail(n, err, errlen, "shape[%d] = %lld is invalid", i, (long long)d);
        }
        y.dims[i] = d;
        if (__builtin_mul_overflow(known, d, &known))
            return fail(n, err, errlen, "shape overflows");
    }
    const int64_t total = shape_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || total % known != 0)
            return fail(n, err, errlen,
                        "cannot infer the -1 dim: input %s has %lld elements, "
                        "the other dims make %lld",
                        shape_str(x, sx, 96), (long long)total, (long long)known);
        y.dims[infer_at] = total / known;
    } else if (known != total) {
        return fail(n, err, errlen, "input %s has %lld elements, the target shape %lld",
                    shape_str(x, sx, 96), (long long)total, (long long)known);
    }
    s[n->out[0]] = y;
    return HLT_OK;
}

static hlt_status infer_concat(const graph_node_t *n, engine_shape_t *s, char *err, size_t errlen)
{
    engine_shape_t y = s[n->in[0]];
    int64_t axis;
    char sa[96], sb[96];
    if (!norm_axis(n->attrs.axis, y.rank, false, &axis))
        return fail(n, err, errlen, "axis %lld out of range for rank %d", (long long)n->attrs.axis,
                    y.rank);
    for (int32_t i = 1; i < n->n_in; i++) {
        const engine_shape_t *x = &s[n->in[i]];
        bool ok = x->rank == y.rank;
        for (int32_t d = 0; ok && d < y.rank; d++)
            ok = d == axis || x->dims[d] == y.dims[d];
        if (!ok)
            return fail(n, err, errlen, "input %d %s does not match input 0 %s off axis %lld", i,
                        shape_str(x, sa, 96), shape_str(&s[n->in[0]], sb, 96), (long long)axis);
        if (__builtin_add_overflow(y.dims[axis], x->dims[axis], &y.dims[axis]))
            return fail(n, err, errlen, "concatenated dim overflows");
    }
    s[n->out[0]] = y;
    return HLT_OK;
}

static hlt_status infer_unsqueeze(const engine_graph_t *g, const graph_node_t *n, engine_shape_t *s,
                                  char *err, size_t errlen)
{
    const engine_shape_t *x = &s[n->in[0]];
    int32_t k;
    int64_t axes[ENGINE_MAX_RANK];
    hlt_status st = node_ints(g, n, &k, axes, err, errlen);
    if (st != HLT_OK)
        return st;
    if (k < 0)
        return fail(n, err, errlen, "axes are required");
    const int32_t r = x->rank + k;
    if (r > ENGINE_MAX_RANK)
        return fail(n, err, errlen, "result rank %d exceeds %d", r, ENGINE_MAX_RANK);
    bool mark[ENGINE_MAX_RANK] = {false};
    for (int32_t i = 0; i < k; i++) {
        int64_t a;
        if (!norm_axis(axes[i], r, false, &a) || mark[a])
            return fail(n, err, errlen, "axis %lld is out of range or repeated for rank %d",
                        (long long)axes[i], r);
        mark[a] = true;
    }
    engine_shape_t y = {.rank = r};
    for (int32_t i = 0, j = 0; i < r; i++)
        y.dims[i] = mark[i] ? 1 : x->dims[j++];
    s[n->out[0]] = y;
    return HLT_OK;
}

static hlt_status infer_squeeze(const engine_graph_t *g, const graph_node_t *n, engine_shape_t *s,
                                char *err, size_t errlen)
{
    const engine_shape_t *x = &s[n->in[0]];
    int32_t k;
    int64_t axes[ENGINE_MAX_RANK];
    hlt_status st = node_ints(g, n, &k, axes, err, errlen);
    if (st != HLT_OK)
        return st;
    bool drop[ENGINE_MAX_RANK] = {false};
    char sx[96];
    for (int32_t i = 0; i < k; i++) {
        int64_t a;
        if (!norm_axis(axes[i], x->rank, false, &a) || drop[a])
            return fail(n, err, errlen, "axis %lld is out of range or repeated for rank %d",
                        (long long)axes[i], x->rank);
        if (x->dims[a] != 1)
            return fail(n, err, errlen, "cannot squeeze axis %lld of input %s: size is not 1",
                        (long long)axes[i], shape_str(x, sx, 96));
        drop[a] = true;
    }
    engine_shape_t y = {.rank = 0};
    for (int32_t i = 0; i < x->rank; i++) {
        const bool d = k < 0 ? x->dims[i] == 1 : drop[i];
        if (!d)
            y.dims[y.rank++] = x->dims[i];
    }
    s[n->out[0]] = y;
    return HLT_OK;
}

static hlt_status infer_transpose(const graph_node_t *n, engine_shape_t *s, char *err,
                                  size_t errlen)
{
    const engine_shape_t *x = &s[n->in[0]];
    engine_shape_t y = {.rank = x->rank};
    bool seen[ENGINE_MAX_RANK] = {false};
    if (n->attrs.has_ints && n->attrs.n_ints != x->rank)
        return fail(n, err, errlen, "perm has %d entries for an input of rank %d", n->attrs.n_ints,
                    x->rank);
    for (int32_t i = 0; i < x->rank; i++) {
        const int64_t p = n->attrs.has_ints ? n->attrs.ints[i] : x->rank - 1 - i;
        if (p < 0 || p >= x->rank || seen[p])
            return fail(n, err, errlen, "perm is not a permutation of 0..%d", x->rank - 1);
        seen[p] = true;
        y.dims[i] = x->dims[p];
    }
    s[n->out[0]] = y;
    return HLT_OK;
}

static hlt_status infer_batchnorm(const graph_node_t *n, engine_shape_t *s, size_t *ws, char *err,
                                  size_t errlen)
{
    const engine_shape_t *x = &s[n->in[0]];
    char sx[96], sp[96];
    if (x->rank < 2)
        return fail(n, err, errlen, "X %s must have rank >= 2 (N, C, ...)", shape_str(x, sx, 96));
    static const char *const pname[] = {"", "scale", "B", "input_mean", "input_var"};
    for (int32_t i = 1; i < 5; i++) {
        const engine_shape_t *p = &s[n->in[i]];
        if (p->rank != 1 || p->dims[0] != x->dims[1])
            return fail(n, err, errlen, "%s %s must be [C] = [%lld] for X %s", pname[i],
                        shape_str(p, sp, 96), (long long)x->dims[1], shape_str(x, sx, 96));
    }
    s[n->out[0]] = *x;
    *ws = 2 * sizeof(float) * (size_t)x->dims[1];
    return HLT_OK;
}

hlt_status shape_infer_node(const engine_graph_t *g, const graph_node_t *n, engine_shape_t *shapes,
                            size_t *ws_bytes, char *err, size_t errlen)
{
    engine_shape_t *s = shapes;
    const engine_shape_t *x = &s[n->in[0]];
    engine_shape_t *y = &s[n->out[0]];
    hlt_status st = HLT_OK;
    char sa[96], sb[96];
    *ws_bytes = 0;
    switch (n->op) {
    case OP_GEMM:
        st = infer_gemm(n, s, err, errlen);
        break;
    case OP_MATMUL:
        st = infer_matmul(n, s, err, errlen);
        break;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
        if (!shape_broadcast(x, &s[n->in[1]], y))
            st = fail(n, err, errlen, "shapes %s and %s do not broadcast", shape_str(x, sa, 96),
                      shape_str(&s[n->in[1]], sb, 96));
        break;
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_IDENTITY:
        *y = *x;
        break;
    case OP_SOFTMAX: {
        int64_t axis;
        if (x->rank < 1 || !norm_axis(n->attrs.axis, x->rank, false, &axis)) {
            st = fail(n, err, errlen, "axis %lld out of range for input %s",
                      (long long)n->attrs.axis, shape_str(x, sa, 96));
            break;
        }
        *y = *x;
        if (!n->attrs.softmax_2d) {
            int64_t inner = 1;
            for (int32_t i = (int32_t)axis + 1; i < x->rank; i++)
                inner *= x->dims[i];
            if (inner > 1)
                *ws_bytes = 2 * sizeof(float) * (size_t)inner;
        }
        break;
    }
    case OP_BATCHNORM:
        st = infer_batchnorm(n, s, ws_bytes, err, errlen);
        break;
    case OP_FLATTEN: {
        int64_t axis;
        if (!norm_axis(n->attrs.axis, x->rank, true, &axis)) {
            st = fail(n, err, errlen, "axis %lld out of range for input %s",
                      (long long)n->attrs.axis, shape_str(x, sa, 96));
            break;
        }
        engine_shape_t o = {.rank = 2, .dims = {1, 1}};
        for (int32_t i = 0; i < x->rank; i++)
            o.dims[i < axis ? 0 : 1] *= x->dims[i];
        *y = o;
        break;
    }
    case OP_RESHAPE:
        st = infer_reshape(g, n, s, err, errlen);
        break;
    case OP_TRANSPOSE:
        st = infer_transpose(n, s, err, errlen);
        break;
    case OP_CONCAT:
        st = infer_concat(n, s, err, errlen);
        break;
    case OP_UNSQUEEZE:
        st = infer_unsqueeze(g, n, s, err, errlen);
        break;
    case OP_SQUEEZE:
        st = infer_squeeze(g, n, s, err, errlen);
        break;
    case OP_KIND_COUNT:
        st = fail(n, err, errlen, "invalid op");
        break;
    }
    if (st == HLT_OK && shape_numel(y) < 0)
        st = fail(n, err, errlen, "output %s is too large", shape_str(y, sa, 96));
    return st;
}
