/* ocl_launch: kernel arguments and NDRanges of every node for the prepared shapes.
 *
 * Called by ocl_plan.c at prepare (once per distinct input shape), after the shapes are
 * resolved by shape_infer_node (every shape check lives there) and the arena is placed. The
 * kernel objects were chosen at create (ocl_ops.c); execute only enqueues them.
 *
 * Work-groups: CPU-like devices (PoCL) get a fixed 1-D size `wg` laid along one dimension,
 * because PoCL compiles one work-group function per distinct local size (0.1-0.4 s each) and
 * batch sizes change from request to request; GPUs get power-of-two groups fitted to the
 * shape (their drivers do not recompile per local size), and HLT_TS x HLT_TS for the tiled
 * GEMM. Global sizes are rounded up to a multiple of the local size; kernels guard. */
#include "ocl.h"

#include "engine/ops.h"
#include "engine/shape.h"

#include <stdio.h>
#include <string.h>

/* ---- argument setting ---- */

typedef struct args {
    cl_kernel k;
    cl_uint i;
    cl_int rc;
} args_t;

static void arg(args_t *a, size_t size, const void *v)
{
    if (a->rc == CL_SUCCESS)
        a->rc = clSetKernelArg(a->k, a->i, size, v);
    a->i++;
}
static void arg_i(args_t *a, int64_t v)
{
    const cl_int x = (cl_int)v;
    arg(a, sizeof x, &x);
}
static void arg_f(args_t *a, float v)
{
    arg(a, sizeof v, &v);
}
static void arg_v8(args_t *a, const int64_t *v, int32_t n, cl_int fill)
{
    cl_int8 x;
    for (int32_t i = 0; i < 8; i++)
        x.s[i] = i < n ? (cl_int)v[i] : fill;
    arg(a, sizeof x, &x);
}
/* Tensor t's buffer and element offset. */
static void arg_t(args_t *a, const backend_instance_t *inst, int32_t t)
{
    cl_mem m;
    cl_int off;
    ocl_tensor_loc(inst, t, &m, &off);
    arg(a, sizeof m, &m);
    arg(a, sizeof off, &off);
}
static void arg_mem(args_t *a, cl_mem m, size_t byte_off)
{
    arg(a, sizeof m, &m);
    arg_i(a, (int64_t)(byte_off / sizeof(float)));
}

static size_t pow2_at_least(size_t n, size_t cap)
{
    size_t p = 1;
    while (p < n && p < cap)
        p <<= 1;
    return p;
}

static size_t round_to(size_t n, size_t m)
{
    return (n + m - 1) / m * m;
}

/* NDRange of g0 x g1 x g2 work-items (g1, g2 >= 1), local size as described in the header. */
static void range(const backend_instance_t *inst, ocl_launch_t *l, int64_t g0, int64_t g1,
                  int64_t g2)
{
    l->skip = g0 <= 0 || g1 <= 0 || g2 <= 0;
    l->dims = 3;
    if (l->skip)
        return;
    size_t l0, l1;
    if (inst->tiled) {
        l0 = pow2_at_least((size_t)g0, inst->wg);
        l1 = pow2_at_least((size_t)g1, inst->wg / l0);
    } else if (g1 == 1 || (size_t)g0 >= inst->wg) {
        l0 = inst->wg;
        l1 = 1;
    } else {
        l0 = 1;
        l1 = inst->wg;
    }
    l->lws[0] = l0;
    l->lws[1] = l1;
    l->lws[2] = 1;
    l->gws[0] = round_to((size_t)g0, l0);
    l->gws[1] = round_to((size_t)g1, l1);
    l->gws[2] = (size_t)g2;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static hlt_status done(const backend_instance_t *inst, const graph_node_t *n, const args_t *a,
                       char *err, size_t errlen)
{
    if (a->rc == CL_SUCCESS)
        return HLT_OK;
    snprintf(err, errlen, "model '%s': node '%s' (%s): setting argument %u: %s (%d)", inst->model,
             n->name, op_def(n->op)->name, a->i - 1, ocl_strerror(a->rc), a->rc);
    return HLT_INTERNAL;
}

/* One GEMM launch over Y [batch, M, N]; see gemm.cl for the argument contract. */
typedef struct gemm_desc {
    int32_t a, b, y; /* tensor ids */
    cl_mem bmem;     /* folded B, or NULL */
    size_t boff;
    int64_t am, ak, bk, bn;
    int64_t m, n, k, batch;
    int32_t nb;
    int64_t bdims[ENGINE_MAX_RANK], sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
} gemm_desc_t;

static void gemm_launch(const backend_instance_t *inst, const graph_node_t *n, ocl_launch_t *l,
                        const gemm_desc_t *g, args_t *a)
{
    const op_attrs_t *at = &n->attrs;
    arg_t(a, inst, g->a);
    arg_i(a, g->am);
    arg_i(a, g->ak);
    if (g->bmem)
        arg_mem(a, g->bmem, g->boff);
    else
        arg_t(a, inst, g->b);
    arg_i(a, g->bk);
    arg_i(a, g->bn);
    if (ocl_gemm_has_c(n)) {
        const engine_shape_t *cs = &inst->shapes[n->in[2]];
        const int64_t c0 = cs->rank == 2 ? cs->dims[0] : 1;
        const int64_t c1 = cs->rank >= 1 ? cs->dims[cs->rank - 1] : 1;
        arg_t(a, inst, n->in[2]);
        arg_i(a, c0 == 1 ? 0 : c1);
        arg_i(a, c1 == 1 ? 0 : 1);
        arg_i(a, 1);
    } else {
        arg_t(a, inst, g->a); /* never read */
        arg_i(a, 0);
        arg_i(a, 0);
        arg_i(a, 0);
    }
    const ocl_node_t *on = &inst->nodes[n - inst->g->nodes];
    const engine_fuse_t *fu = &inst->fuse[n - inst->g->nodes];
    arg_t(a, inst, fu->out);
    arg_i(a, g->m);
    arg_i(a, g->n);
    arg_i(a, g->k);
    arg_f(a, n->op == OP_GEMM ? at->alpha : 1.0f);
    arg_f(a, n->op == OP_GEMM ? at->beta : 0.0f);
    arg_i(a, g->nb);
    arg_v8(a, g->bdims, g->nb, 1);
    arg_v8(a, g->sa, g->nb, 0);
    arg_v8(a, g->sb, g->nb, 0);
    if (ocl_gemm_epilogue(fu)) {
        arg_mem(a, inst->consts, on->derived + ocl_gemm_bt_bytes(inst, n));
        arg_i(a, 1);
    } else {
        arg_t(a, inst, g->a); /* never read */
        arg_i(a, 0);
    }
    static const int acts[OP_KIND_COUNT] = {
        [OP_RELU] = 1, [OP_LEAKY_RELU] = 2, [OP_SIGMOID] = 3, [OP_TANH] = 4};
    const graph_node_t *an = fu->act >= 0 ? &inst->g->nodes[fu->act] : NULL;
    arg_i(a, an ? acts[an->op] : 0);
    arg_f(a, an ? an->attrs.alpha : 0.0f);
    if (inst->tiled) {
        const int64_t ts = (int64_t)ocl_tile(inst->d);
        l->skip = g->m <= 0 || g->n <= 0 || g->batch <= 0;
        l->dims = 3;
        l->lws[0] = l->lws[1] = (size_t)ts;
        l->lws[2] = 1;
        l->gws[0] = (size_t)(ceil_div(g->n, ts) * ts);
        l->gws[1] = (size_t)(ceil_div(g->m, ts) * ts);
        l->gws[2] = (size_t)g->batch;
    } else {
        range(inst, l, ceil_div(g->n, 8), ceil_div(g->m, 4), g->batch);
    }
}

static void setup_gemm(const backend_instance_t *inst, const graph_node_t *n, ocl_launch_t *l,
                       args_t *a)
{
    const engine_shape_t *as = &inst->shapes[n->in[0]], *bs = &inst->shapes[n->in[1]];
    const engine_shape_t *ys = &inst->shapes[n->out[0]];
    gemm_desc_t g = {.a = n->in[0], .b = n->in[1], .y = n->out[0], .batch = 1};
    g.m = ys->dims[0];
    g.n = ys->dims[1];
    g.k = n->attrs.trans_a ? as->dims[0] : as->dims[1];
    g.am = n->attrs.trans_a ? 1 : as->dims[1];
    g.ak = n->attrs.trans_a ? as->dims[1] : 1;
    if (ocl_gemm_b_folded(inst, n)) {
        g.bmem = inst->consts;
        g.boff = inst->nodes[n - inst->g->nodes].derived;
        g.bk = g.n;
        g.bn = 1;
    } else {
        g.bk = n->attrs.trans_b ? 1 : bs->dims[1];
        g.bn = n->attrs.trans_b ? bs->dims[1] : 1;
    }
    gemm_launch(inst, n, l, &g, a);
}

static void setup_matmul(const backend_instance_t *inst, const graph_node_t *n, ocl_launch_t *l,
                         args_t *a)
{
    const engine_shape_t *as = &inst->shapes[n->in[0]], *bs = &inst->shapes[n->in[1]];
    const engine_shape_t *ys = &inst->shapes[n->out[0]];
    const bool a1 = as->rank == 1, b1 = bs->rank == 1;
    gemm_desc_t g = {.a = n->in[0], .b = n->in[1], .y = n->out[0], .batch = 1};
    g.m = a1 ? 1 : as->dims[as->rank - 2];
    g.k = as->dims[as->rank - 1];
    g.n = b1 ? 1 : bs->dims[bs->rank - 1];
    g.am = g.k;
    g.ak = 1;
    g.bk = g.n;
    g.bn = 1;
    const int32_t yb = ys->rank - (a1 ? 0 : 1) - (b1 ? 0 : 1);
    const int32_t ab = as->rank > 2 ? as->rank - 2 : 0, bb = bs->rank > 2 ? bs->rank - 2 : 0;
    int64_t b_batch = 1;
    for (int32_t i = 0; i < bb; i++)
        b_batch *= bs->dims[i];
    if (b_batch == 1) {
        /* B is one matrix: all of A's batch folds into the rows (one launch, as on the CPU). */
        for (int32_t i = 0; i < ab; i++)
            g.m *= as->dims[i];
    } else {
        int64_t acc_a = g.m * g.k, acc_b = g.k * g.n;
        g.nb = yb;
        for (int32_t i = yb - 1; i >= 0; i--) {
            const int32_t ia = i - (yb - ab), ib = i - (yb - bb);
            const int64_t da = ia >= 0 ? as->dims[ia] : 1, db = ib >= 0 ? bs->dims[ib] : 1;
            g.bdims[i] = ys->dims[i];
            g.sa[i] = da == 1 ? 0 : acc_a;
            g.sb[i] = db == 1 ? 0 : acc_b;
            acc_a *= da;
            acc_b *= db;
            g.batch *= ys->dims[i];
        }
    }
    gemm_launch(inst, n, l, &g, a);
}

/* Right-aligned contiguous strides of x within y's rank, 0 where x broadcasts. */
static void bcast_strides(const engine_shape_t *x, const engine_shape_t *y, int64_t *st)
{
    int64_t acc = 1;
    for (int32_t i = y->rank - 1; i >= 0; i--) {
        const int32_t ix = i - (y->rank - x->rank);
        const int64_t d = ix >= 0 ? x->dims[ix] : 1;
        st[i] = d == 1 ? 0 : acc;
        acc *= d;
    }
}

static void setup_binary(const backend_instance_t *inst, const graph_node_t *n, ocl_launch_t *l,
                         args_t *a)
{
    const engine_shape_t *ys = &inst->shapes[n->out[0]];
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    bcast_strides(&inst->shapes[n->in[0]], ys, sa);
    bcast_strides(&inst->shapes[n->in[1]], ys, sb);
    /* Drop size-1 dims, merge neighbours that are contiguous in A, B and Y alike. */
    int64_t d[ENGINE_MAX_RANK], xa[ENGINE_MAX_RANK], xb[ENGINE_MAX_RANK];
    int32_t r = 0;
    for (int32_t i = 0; i < ys->rank; i++) {
        if (ys->dims[i] == 1)
            continue;
        if (r > 0 && xa[r - 1] == sa[i] * ys->dims[i] && xb[r - 1] == sb[i] * ys->dims[i]) {
            d[r - 1] *= ys->dims[i];
            xa[r - 1] = sa[i];
            xb[r - 1] = sb[i];
            continue;
        }
        d[r] = ys->dims[i];
        xa[r] = sa[i];
        xb[r] = sb[i];
        r++;
    }
    if (r == 0) { /* one element */
        d[0] = 1;
        xa[0] = xb[0] = 1;
        r = 1;
    }
    int64_t outer = 1;
    for (int32_t i = 0; i < r - 1; i++)
        outer *= d[i];
    const int64_t len = shape_numel(ys) == 0 ? 0 : d[r - 1];
    arg_t(a, inst, n->in[0]);
    arg_t(a, inst, n->in[1]);
    arg_t(a, inst, n->out[0]);
    arg_i(a, len);
    arg_i(a, xa[r - 1]);
    arg_i(a, xb[r - 1]);
    arg_i(a, outer);
    arg_i(a, r - 1);
    arg_v8(a, d, r - 1, 1);
    arg_v8(a, xa, r - 1, 0);
    arg_v8(a, xb, r - 1, 0);
    range(inst, l, ceil_div(len, 4), outer, 1);
}

static void setup_softmax(const backend_instance_t *inst, const graph_node_t *n, ocl_launch_t *l,
                          args_t *a)
{
    const engine_shape_t *xs = &inst->shapes[n->in[0]];
    const int64_t axis = n->attrs.axis < 0 ? n->attrs.axis + xs->rank : n->attrs.axis;
    int64_t outer = 1, len = 1, inner = 1;
    for (int32_t i = 0; i < xs->rank; i++) {
        if (i < axis)
            outer *= xs->dims[i];
        else if (i == axis || n->attrs.softmax_2d)
            len *= xs->dims[i]; /* opset < 13: everything from axis on is one row */
        else
            inner *= xs->dims[i];
    }
    arg_t(a, inst, n->in[0]);
    arg_t(a, inst, n->out[0]);
    arg_i(a, outer);
    arg_i(a, len);
    arg_i(a, inner);
    range(inst, l, len ? inner : 0, outer, 1);
}

static void setup_transpose(const backend_instance_t *inst, const graph_node_t *n, ocl_launch_t *l,
                            args_t *a)
{
    const engine_shape_t *xs = &inst->shapes[n->in[0]];
    int64_t xst[ENGINE_MAX_RANK], od[ENGINE_MAX_RANK], st[ENGINE_MAX_RANK], total = 1;
    for (int32_t i = xs->rank - 1; i >= 0; i--) {
        xst[i] = total;
        total *= xs->dims[i];
    }
    int32_t r = 0;
    for (int32_t i = 0; i < xs->rank; i++) {
        const int64_t p = n->attrs.has_ints ? n->attrs.ints[i] : xs->rank - 1 - i;
        const int64_t d = xs->dims[p], s = xst[p];
        if (d == 1)
            continue;
        if (r > 0 && st[r - 1] == s * d) {
            od[r - 1] *= d;
            st[r - 1] = s;
            continue;
        }
        od[r] = d;
        st[r] = s;
        r++;
    }
    arg_t(a, inst, n->in[0]);
    arg_t(a, inst, n->out[0]);
    arg_i(a, total);
    arg_i(a, r);
    arg_v8(a, od, r, 1);
    arg_v8(a, st, r, 0);
    range(inst, l, total, 1, 1);
}

/* A fused chain (mlp.cl): X [M, K0] -> the chain's output [M, N]. CPU-like devices carry 8
 * rows per work-item in groups of OCL_MLP_WG_CPU (a fixed local size, as range() keeps for
 * PoCL, small so that a 256-row batch still spreads over the cores); GPUs one row per
 * work-item in groups of up to 64. */
#define OCL_MLP_WG_CPU 4
static hlt_status setup_mlp(const backend_instance_t *inst, const graph_node_t *n,
                            const ocl_node_t *on, const engine_fuse_t *fu, ocl_launch_t *l,
                            args_t *a, char *err, size_t errlen)
{
    const engine_shape_t *xs = &inst->shapes[n->in[0]];
    if (xs->rank != 2) {
        snprintf(err, errlen, "model '%s': node '%s': fused layers need a 2-D input, got rank %d",
                 inst->model, n->name, (int)xs->rank);
        return HLT_INTERNAL;
    }
    const int64_t m = xs->dims[0];
    arg_t(a, inst, n->in[0]);
    arg_t(a, inst, fu->out);
    arg_i(a, m);
    arg_mem(a, inst->consts, on->derived); /* weights and epilogues */
    arg_mem(a, inst->consts, on->derived); /* the descriptor, read as ints */
    arg_t(a, inst, fu->chain_logits >= 0 ? fu->chain_logits : fu->out);
    arg_i(a, fu->chain_logits >= 0);
    const size_t lanes = inst->tiled ? 1 : 8;
    const size_t lws = inst->tiled ? (inst->wg < 64 ? inst->wg : 64) : OCL_MLP_WG_CPU;
    l->dims = 1;
    l->skip = m <= 0;
    l->lws[0] = lws;
    l->gws[0] = round_to((size_t)ceil_div(m, (int64_t)lanes), lws);
    l->lws[1] = l->lws[2] = l->gws[1] = l->gws[2] = 1;
    return HLT_OK;
}

hlt_status ocl_launch_setup(backend_instance_t *inst, int32_t i, char *err, size_t errlen)
{
    const graph_node_t *n = &inst->g->nodes[i];
    const ocl_node_t *on = &inst->nodes[i];
    ocl_launch_t *l = &inst->launches[on->first];
    const engine_shape_t *ys = &inst->shapes[n->out[0]];
    args_t a = {.k = on->count ? l->k : NULL};
    hlt_status st;
    if (inst->fuse[i].fused_into >= 0)
        return HLT_OK;
    if (inst->fuse[i].chain_layers) {
        if ((st = setup_mlp(inst, n, on, &inst->fuse[i], l, &a, err, errlen)) != HLT_OK)
            return st;
        return done(inst, n, &a, err, errlen);
    }
    switch (n->op) {
    case OP_GEMM:
        setup_gemm(inst, n, l, &a);
        break;
    case OP_MATMUL:
        setup_matmul(inst, n, l, &a);
        break;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
        setup_binary(inst, n, l, &a);
        break;
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH: {
        const int64_t cnt = shape_numel(ys);
        arg_t(&a, inst, n->in[0]);
        arg_t(&a, inst, n->out[0]);
        arg_i(&a, cnt);
        arg_f(&a, n->attrs.alpha);
        range(inst, l, ceil_div(cnt, 4), 1, 1);
        break;
    }
    case OP_SOFTMAX:
        setup_softmax(inst, n, l, &a);
        break;
    case OP_BATCHNORM: {
        const int64_t outer = ys->dims[0], c = ys->dims[1];
        const int64_t inner = c ? shape_numel(ys) / (outer ? outer : 1) / c : 0;
        cl_mem abm = inst->consts;
        size_t abo = on->derived;
        if (on->count == 2) {
            abm = inst->arena;
            abo = inst->ws_off[i];
            for (int32_t j = 1; j <= 4; j++)
                arg_t(&a, inst, n->in[j]);
            arg_f(&a, n->attrs.epsilon);
            arg_i(&a, c);
            arg_mem(&a, abm, abo);
            range(inst, l, c, 1, 1);
            if ((st = done(inst, n, &a, err, errlen)) != HLT_OK)
                return st;
            l++;
            a = (args_t){.k = l->k};
        }
        arg_t(&a, inst, n->in[0]);
        arg_t(&a, inst, n->out[0]);
        arg_mem(&a, abm, abo);
        arg_i(&a, outer);
        arg_i(&a, c);
        arg_i(&a, inner);
        range(inst, l, c * inner, outer, 1);
        break;
    }
    case OP_TRANSPOSE:
        setup_transpose(inst, n, l, &a);
        break;
    case OP_CONCAT: {
        const int64_t axis = n->attrs.axis < 0 ? n->attrs.axis + ys->rank : n->attrs.axis;
        int64_t outer = 1, inner = 1, col = 0;
        for (int32_t k = 0; k < ys->rank; k++) {
            if (k < axis)
                outer *= ys->dims[k];
            else if (k > axis)
                inner *= ys->dims[k];
        }
        const int64_t row = ys->dims[axis] * inner;
        for (int32_t j = 0; j < n->n_in; j++, l++) {
            const int64_t chunk = inst->shapes[n->in[j]].dims[axis] * inner;
            a = (args_t){.k = l->k};
            arg_t(&a, inst, n->in[j]);
            arg_t(&a, inst, n->out[0]);
            arg_i(&a, outer);
            arg_i(&a, chunk);
            arg_i(&a, row);
            arg_i(&a, col);
            range(inst, l, chunk, outer, 1);
            col += chunk;
            if ((st = done(inst, n, &a, err, errlen)) != HLT_OK)
                return st;
        }
        return HLT_OK;
    }
    default:
        return HLT_OK; /* views */
    }
    return done(inst, n, &a, err, errlen);
}
