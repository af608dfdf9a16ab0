/* onnx_load: protobuf-c unpack -> graph IR (see onnx_load.h for the rules applied).
 *
 * The whole file is read into memory and unpacked in one go: protobuf-c needs the complete
 * buffer and copies bytes fields (raw_data) while unpacking; the initializers are then copied
 * once more into the graph so the unpacked message can be freed before the graph is used. That
 * briefly holds three copies of the weights, which is acceptable for a load-time path and the
 * model sizes a trigger farm serves (protobuf caps a model file at 2 GiB anyway). */
#include "onnx_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph.h"
#include "onnx.pb-c.h"
#include "ops.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "raw_data is little-endian; the loader copies it as is");

typedef Onnx__AttributeProto attr_t;

static const char *const onnx_names[] = {
    "UNDEFINED",      "FLOAT",      "UINT8",          "INT8",       "UINT16",   "INT16",
    "INT32",          "INT64",      "STRING",         "BOOL",       "FLOAT16",  "DOUBLE",
    "UINT32",         "UINT64",     "COMPLEX64",      "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
    "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4",      "INT4",     "FLOAT4E2M1",
};

const char *onnx_dtype_name(int32_t t)
{
    return t >= 0 && (size_t)t < sizeof onnx_names / sizeof onnx_names[0] ? onnx_names[t]
                                                                          : "UNKNOWN";
}

hlt_dtype onnx_to_hlt_dtype(int32_t t)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        return HLT_TYPE_FP32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
        return HLT_TYPE_UINT8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
        return HLT_TYPE_INT8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
        return HLT_TYPE_UINT16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
        return HLT_TYPE_INT16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        return HLT_TYPE_INT32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        return HLT_TYPE_INT64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__STRING:
        return HLT_TYPE_BYTES;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return HLT_TYPE_BOOL;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
        return HLT_TYPE_FP16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        return HLT_TYPE_FP64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        return HLT_TYPE_UINT32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return HLT_TYPE_UINT64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
        return HLT_TYPE_BF16;
    default:
        return HLT_TYPE_INVALID;
    }
}

static const char *str(const char *s)
{
    return s ? s : "";
}

/* ---- attributes ------------------------------------------------------------------------ */

typedef struct node_ctx {
    const Onnx__NodeProto *np;
    const char *name; /* for messages */
    const char *op;
    char *err;
    size_t errlen;
} node_ctx_t;

static const attr_t *attr_find(const node_ctx_t *c, const char *name)
{
    for (size_t i = 0; i < c->np->n_attribute; i++)
        if (strcmp(str(c->np->attribute[i]->name), name) == 0)
            return c->np->attribute[i];
    return NULL;
}

static hlt_status bad_attr(const node_ctx_t *c, const char *name, const char *what)
{
    return engine_errf(HLT_INVALID_ARGUMENT, c->err, c->errlen, "node '%s' (%s): attribute '%s' %s",
                       c->name, c->op, name, what);
}

/* IR < 0.0.2 files carry no type; accept the field that is set. */
static bool attr_is(const attr_t *a, Onnx__AttributeProto__AttributeType want, bool has_field)
{
    return a->has_type ? a->type == want
                       : (a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED && has_field);
}

static hlt_status attr_int(const node_ctx_t *c, const char *name, int64_t def, int64_t *out)
{
    const attr_t *a = attr_find(c, name);
    *out = def;
    if (!a)
        return HLT_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i))
        return bad_attr(c, name, "must be an INT");
    *out = a->i;
    return HLT_OK;
}

static hlt_status attr_bool(const node_ctx_t *c, const char *name, bool *out)
{
    int64_t v;
    hlt_status st = attr_int(c, name, 0, &v);
    if (st != HLT_OK)
        return st;
    if (v != 0 && v != 1)
        return bad_attr(c, name, "must be 0 or 1");
    *out = v == 1;
    return HLT_OK;
}

static hlt_status attr_float(const node_ctx_t *c, const char *name, float def, float *out)
{
    const attr_t *a = attr_find(c, name);
    *out = def;
    if (!a)
        return HLT_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f))
        return bad_attr(c, name, "must be a FLOAT");
    *out = a->f;
    return HLT_OK;
}

/* INTS attribute into attrs->ints (has_ints set when present). */
static hlt_status attr_ints(const node_ctx_t *c, const char *name, op_attrs_t *attrs)
{
    const attr_t *a = attr_find(c, name);
    if (!a)
        return HLT_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints > 0))
        return bad_attr(c, name, "must be INTS");
    if (a->n_ints > ENGINE_MAX_RANK)
        return bad_attr(c, name, "has more entries than the supported rank (8)");
    attrs->has_ints = true;
    attrs->n_ints = (int32_t)a->n_ints;
    memcpy(attrs->ints, a->ints, sizeof(int64_t) * a->n_ints);
    return HLT_OK;
}

/* Attributes of a supported (non-Constant) op, with the opset's defaults. */
static hlt_status parse_attrs(const node_ctx_t *c, op_kind op, int64_t opset, op_attrs_t *at)
{
    hlt_status st = HLT_OK;
    int64_t v;
    switch (op) {
    case OP_GEMM:
        if ((st = attr_float(c, "alpha", 1.0f, &at->alpha)) == HLT_OK &&
            (st = attr_float(c, "beta", 1.0f, &at->beta)) == HLT_OK &&
            (st = attr_bool(c, "transA", &at->trans_a)) == HLT_OK)
            st = attr_bool(c, "transB", &at->trans_b);
        break;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
        if (attr_find(c, "axis"))
            st = engine_errf(HLT_UNIMPLEMENTED, c->err, c->errlen,
                             "node '%s' (%s): legacy (opset < 7) broadcasting with 'axis' is "
                             "not supported",
                             c->name, c->op);
        break;
    case OP_LEAKY_RELU:
        st = attr_float(c, "alpha", 0.01f, &at->alpha);
        break;
    case OP_SOFTMAX:
        at->softmax_2d = opset < 13;
        st = attr_int(c, "axis", opset < 13 ? 1 : -1, &at->axis);
        break;
    case OP_BATCHNORM:
        if ((st = attr_float(c, "epsilon", 1e-5f, &at->epsilon)) != HLT_OK)
            break;
        if ((st = attr_int(c, "spatial", 1, &v)) == HLT_OK && v != 1)
            st = engine_errf(HLT_UNIMPLEMENTED, c->err, c->errlen,
                             "node '%s' (%s): spatial=0 is not supported", c->name, c->op);
        if (st == HLT_OK && (st = attr_int(c, "training_mode", 0, &v)) == HLT_OK && v != 0)
            st = engine_errf(HLT_UNIMPLEMENTED, c->err, c->errlen,
                             "node '%s' (%s): training_mode=1 is not supported", c->name, c->op);
        break;
    case OP_FLATTEN:
        st = attr_int(c, "axis", 1, &at->axis);
        break;
    case OP_RESHAPE:
        st = attr_bool(c, "allowzero", &at->allowzero);
        break;
    case OP_TRANSPOSE:
        st = attr_ints(c, "perm", at);
        break;
    case OP_CONCAT:
        if (!attr_find(c, "axis"))
            return bad_attr(c, "axis", "is required");
        st = attr_int(c, "axis", 0, &at->axis);
        break;
    case OP_UNSQUEEZE:
    case OP_SQUEEZE:
        /* opset < 13: attribute; opset >= 13: second input (read at shape inference). */
        st = attr_ints(c, "axes", at);
        if (st == HLT_OK && op == OP_UNSQUEEZE && opset < 13 && !at->has_ints)
            st = bad_attr(c, "axes", "is required before opset 13");
        break;
    default:
        break;
    }
    return st;
}

/* ---- tensors --------------------------------------------------------------------------- */

/* Copies count elements of esize bytes from raw (if it has exactly that many bytes) or from
 * the typed field (n_typed elements, converted by conv). */
static hlt_status tensor_data(graph_tensor_t *t, const Onnx__TensorProto *tp, int64_t count,
                              char *err, size_t errlen)
{
    const int32_t ot = tp->data_type;
    const size_t esize = hlt_dtype_size(t->dtype);
    void *buf = calloc((size_t)(count ? count : 1), esize);
    if (!buf)
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory for tensor '%s'",
                           t->name);
    size_t typed = 0;
    switch (ot) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        typed = tp->n_float_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        typed = tp->n_int64_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        typed = tp->n_int32_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        typed = tp->n_double_data;
        break;
    }
    const size_t src_esize = ot == ONNX__TENSOR_PROTO__DATA_TYPE__INT32   ? 4
                             : ot == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? 4
                                                                          : 8;
    const bool raw = tp->has_raw_data;
    if (raw ? tp->raw_data.len != (size_t)count * src_esize : typed != (size_t)count) {
        free(buf);
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                           "tensor '%s': %zu %s of %s data for %lld elements", t->name,
                           raw ? tp->raw_data.len : typed, raw ? "bytes" : "values",
                           onnx_dtype_name(ot), (long long)count);
    }
    const uint8_t *rb = raw ? tp->raw_data.data : NULL;
    for (int64_t i = 0; i < count; i++) {
        switch (ot) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
            if (raw)
                memcpy((float *)buf + i, rb + 4 * i, 4);
            else
                ((float *)buf)[i] = tp->float_data[i];
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
            if (raw)
                memcpy((int64_t *)buf + i, rb + 8 * i, 8);
            else
                ((int64_t *)buf)[i] = tp->int64_data[i];
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: {
            int32_t v;
            if (raw)
                memcpy(&v, rb + 4 * i, 4);
            else
                v = tp->int32_data[i];
            ((int64_t *)buf)[i] = v;
            break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
            double v;
            if (raw)
                memcpy(&v, rb + 8 * i, 8);
            else
                v = tp->double_data[i];
            ((float *)buf)[i] = (float)v;
            break;
        }
        }
    }
    t->data = buf;
    return HLT_OK;
}

/* Makes tensor id a constant from a TensorProto (initializer or Constant's value). */
static hlt_status tensor_from_proto(engine_graph_t *g, int32_t id, const Onnx__TensorProto *tp,
                                    char *err, size_t errlen)
{
    graph_tensor_t *t = &g->tensors[id];
    if ((tp->has_data_location &&
         tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        tp->n_external_data > 0) {
        const char *loc = "?";
        for (size_t i = 0; i < tp->n_external_data; i++)
            if (strcmp(str(tp->external_data[i]->key), "location") == 0)
                loc = str(tp->external_data[i]->value);
        return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                           "tensor '%s' keeps its data in an external file ('%s'); external "
                           "data is not supported: save the model with its data embedded",
                           t->name, loc);
    }
    if (tp->segment)
        return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                           "tensor '%s' is segmented; not supported", t->name);
    if (tp->n_dims > ENGINE_MAX_RANK)
        return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                           "tensor '%s' has rank %zu; at most %d is supported", t->name, tp->n_dims,
                           ENGINE_MAX_RANK);
    t->is_const = true;
    t->rank = (int32_t)tp->n_dims;
    if (tp->n_dims) /* a scalar has dims == NULL */
        memcpy(t->dims, tp->dims, sizeof(int64_t) * tp->n_dims);
    const int64_t count = graph_numel(t->rank, t->dims);
    if (count < 0)
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                           "tensor '%s' has a negative or overflowing shape", t->name);
    t->onnx_type = tp->data_type;
    switch (tp->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        t->dtype = HLT_TYPE_FP32;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        t->dtype = HLT_TYPE_INT64;
        break;
    default:
        /* Fine as long as no live node reads it (graph_finalize checks). */
        t->dtype = onnx_to_hlt_dtype(tp->data_type);
        t->unsupported = true;
        return HLT_OK;
    }
    return tensor_data(t, tp, count, err, errlen);
}

/* Constant node -> constant tensor for its output. */
static hlt_status load_constant(engine_graph_t *g, const node_ctx_t *c)
{
    const Onnx__NodeProto *np = c->np;
    if (np->n_output != 1 || !*np->output[0])
        return engine_errf(HLT_INVALID_ARGUMENT, c->err, c->errlen,
                           "node '%s' (Constant) must have one output", c->name);
    int32_t id;
    hlt_status st = graph_add_tensor(g, np->output[0], &id, c->err, c->errlen);
    if (st != HLT_OK)
        return st;
    if (np->n_attribute != 1)
        return engine_errf(HLT_INVALID_ARGUMENT, c->err, c->errlen,
                           "node '%s' (Constant) must have exactly one value attribute", c->name);
    const attr_t *a = np->attribute[0];
    const char *an = str(a->name);
    graph_tensor_t *t = &g->tensors[id];
    if (strcmp(an, "value") == 0 && a->t)
        return tensor_from_proto(g, id, a->t, c->err, c->errlen);
    t->is_const = true;
    if (strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0) {
        const bool f = an[6] == 'f';
        if (f ? !attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f)
              : !attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i))
            return bad_attr(c, an, f ? "must be a FLOAT" : "must be an INT");
        t->rank = 0;
        t->dtype = f ? HLT_TYPE_FP32 : HLT_TYPE_INT64;
        t->data = malloc(8);
        if (!t->data)
            return engine_errf(HLT_RESOURCE_EXHAUSTED, c->err, c->errlen, "out of memory");
        if (f)
            *(float *)t->data = a->f;
        else
            *(int64_t *)t->data = a->i;
        return HLT_OK;
    }
    if (strcmp(an, "value_floats") == 0 || strcmp(an, "value_ints") == 0) {
        const bool f = an[6] == 'f';
        const size_t n = f ? a->n_floats : a->n_ints;
        if (a->has_type && a->type != (f ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
                                         : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS))
            return bad_attr(c, an, f ? "must be FLOATS" : "must be INTS");
        t->rank = 1;
        t->dims[0] = (int64_t)n;
        t->dtype = f ? HLT_TYPE_FP32 : HLT_TYPE_INT64;
        t->data = malloc(n ? 8 * n : 8);
        if (!t->data)
            return engine_errf(HLT_RESOURCE_EXHAUSTED, c->err, c->errlen, "out of memory");
        if (n)
            memcpy(t->data, f ? (void *)a->floats : (void *)a->ints, n * (f ? 4 : 8));
        return HLT_OK;
    }
    return engine_errf(HLT_UNIMPLEMENTED, c->err, c->errlen,
                       "node '%s' (Constant): attribute '%s' is not supported (value, "
                       "value_float(s), value_int(s) are)",
                       c->name, an);
}

/* ---- graph inputs/outputs -------------------------------------------------------------- */

/* Declared type and shape of a graph input/output into tensor t. */
static hlt_status value_info(graph_tensor_t *t, const Onnx__ValueInfoProto *vi, const char *kind,
                             char *err, size_t errlen)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp)
        return HLT_OK; /* outputs may omit their type; inputs are checked by the caller */
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                           "graph %s '%s' is not a tensor (sequence, map and optional values "
                           "are not supported)",
                           kind, t->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != 0 &&
        tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
        tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                           "graph %s '%s' has data type %s; only FLOAT and INT64 are supported",
                           kind, t->name, onnx_dtype_name(tt->elem_type));
    t->onnx_type = tt->has_elem_type ? tt->elem_type : 0;
    if (!tt->shape)
        return HLT_OK;
    if (tt->shape->n_dim > ENGINE_MAX_RANK)
        return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                           "graph %s '%s' has rank %zu; at most %d is supported", kind, t->name,
                           tt->shape->n_dim, ENGINE_MAX_RANK);
    t->rank = (int32_t)tt->shape->n_dim;
    for (int32_t i = 0; i < t->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        t->dims[i] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            d->dim_value >= 0)
            t->dims[i] = d->dim_value;
        else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                 d->dim_param && *d->dim_param) {
            t->dim_param[i] = strdup(d->dim_param);
            if (!t->dim_param[i])
                return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        }
    }
    return HLT_OK;
}

static hlt_status load_inputs(engine_graph_t *g, const Onnx__GraphProto *gp, char *err,
                              size_t errlen)
{
    g->inputs = malloc(sizeof(int32_t) * (gp->n_input + 1));
    if (!g->inputs)
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const char *name = str(vi->name);
        if (!*name)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "graph input %zu has no name", i);
        const int32_t existing = graph_find(g, name);
        if (existing >= 0 && g->tensors[existing].is_const)
            continue; /* an initializer: a constant, not an input */
        int32_t id;
        hlt_status st = graph_add_tensor(g, name, &id, err, errlen);
        if (st != HLT_OK)
            return st;
        graph_tensor_t *t = &g->tensors[id];
        if (!vi->type)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                               "graph input '%s' declares no type", name);
        if ((st = value_info(t, vi, "input", err, errlen)) != HLT_OK)
            return st;
        if (t->onnx_type == 0)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                               "graph input '%s' declares no element type", name);
        t->dtype = onnx_to_hlt_dtype(t->onnx_type);
        t->input_idx = g->n_inputs;
        g->inputs[g->n_inputs++] = id;
    }
    return HLT_OK;
}

static hlt_status load_outputs(engine_graph_t *g, const Onnx__GraphProto *gp, char *err,
                               size_t errlen)
{
    if (gp->n_output == 0)
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "the graph declares no output");
    g->outputs = malloc(sizeof(int32_t) * gp->n_output);
    if (!g->outputs)
        return engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        const int32_t id = graph_find(g, str(vi->name));
        if (id < 0)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                               "graph output '%s' is not produced by any node, initializer or "
                               "input",
                               str(vi->name));
        graph_tensor_t *t = &g->tensors[id];
        g->outputs[g->n_outputs++] = id;
        if (t->producer < 0)
            continue; /* an input or a constant (its own type and shape describe it), or an
                         output we do not compute (reported by graph_finalize) */
        graph_tensor_t decl = {.name = t->name, .rank = -1};
        hlt_status st = value_info(&decl, vi, "output", err, errlen);
        if (st == HLT_OK) {
            t->onnx_type = decl.onnx_type;
            t->rank = decl.rank;
            memcpy(t->dims, decl.dims, sizeof t->dims);
        }
        for (int32_t d = 0; d < ENGINE_MAX_RANK; d++) {
            if (st == HLT_OK && !t->dim_param[d])
                t->dim_param[d] = decl.dim_param[d];
            else
                free(decl.dim_param[d]);
        }
        if (st != HLT_OK)
            return st;
    }
    return HLT_OK;
}

/* ---- nodes ----------------------------------------------------------------------------- */

static bool default_domain(const char *d)
{
    return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

/* Pass 1: registers the node and its outputs (names resolved in pass 2). */
static hlt_status load_node(engine_graph_t *g, const Onnx__NodeProto *np, size_t idx, char *err,
                            size_t errlen)
{
    char anon[24];
    snprintf(anon, sizeof anon, "#%zu", idx);
    node_ctx_t c = {.np = np,
                    .name = np->name && *np->name ? np->name : anon,
                    .op = str(np->op_type),
                    .err = err,
                    .errlen = errlen};
    op_kind op;
    if (default_domain(np->domain) && strcmp(c.op, "Constant") == 0)
        return load_constant(g, &c);
    if (!default_domain(np->domain) || !op_kind_from_name(c.op, &op))
        return engine_errf(HLT_UNIMPLEMENTED, err, errlen,
                           "unsupported op '%s' (node '%s', domain '%s')", c.op, c.name,
                           str(np->domain));
    const op_def_t *d = op_def(op);
    if ((int64_t)np->n_input < d->min_in || (d->max_in >= 0 && (int64_t)np->n_input > d->max_in))
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                           "node '%s' (%s) has %zu inputs; expected %d to %d", c.name, c.op,
                           np->n_input, d->min_in, d->max_in);
    if (np->n_output < 1 || !*np->output[0])
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "node '%s' (%s) has no output",
                           c.name, c.op);
    if (op == OP_UNSQUEEZE && g->opset >= 13 && np->n_input < 2 && !attr_find(&c, "axes"))
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                           "node '%s' (Unsqueeze) needs its axes input from opset 13", c.name);
    int32_t ni;
    hlt_status st = graph_add_node(g, c.name, op, (int32_t)np->n_input, 1, &ni, err, errlen);
    if (st != HLT_OK)
        return st;
    if ((st = parse_attrs(&c, op, g->opset, &g->nodes[ni].attrs)) != HLT_OK)
        return st;
    for (size_t o = 0; o < np->n_output; o++) {
        if (!*np->output[o])
            continue;
        int32_t t;
        if ((st = graph_add_tensor(g, np->output[o], &t, err, errlen)) != HLT_OK)
            return st;
        if (o == 0) {
            g->tensors[t].producer = ni;
            g->nodes[ni].out[0] = t;
        } else {
            g->tensors[t].unsupported = true; /* e.g. BatchNormalization's running stats */
        }
    }
    return HLT_OK;
}

/* Pass 2: input names -> tensor ids. */
static hlt_status resolve_inputs(engine_graph_t *g, const Onnx__GraphProto *gp, char *err,
                                 size_t errlen)
{
    int32_t ni = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (default_domain(np->domain) && strcmp(str(np->op_type), "Constant") == 0)
            continue;
        graph_node_t *n = &g->nodes[ni++];
        for (size_t j = 0; j < np->n_input; j++) {
            if (!*np->input[j]) {
                const bool optional =
                    (n->op == OP_GEMM && j == 2) || (n->op == OP_SQUEEZE && j == 1);
                if (!optional)
                    return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                                       "node '%s' (%s): required input %zu is empty", n->name,
                                       op_def(n->op)->name, j);
                continue;
            }
            const int32_t t = graph_find(g, np->input[j]);
            if (t < 0)
                return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                                   "node '%s' (%s): input '%s' is not defined by any node, "
                                   "initializer or graph input",
                                   n->name, op_def(n->op)->name, np->input[j]);
            n->in[j] = t;
        }
    }
    return HLT_OK;
}

static hlt_status load_graph(engine_graph_t *g, const Onnx__GraphProto *gp, char *err,
                             size_t errlen)
{
    hlt_status st;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        int32_t id;
        if (!tp->name || !*tp->name)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "initializer %zu has no name", i);
        if ((st = graph_add_tensor(g, tp->name, &id, err, errlen)) != HLT_OK)
            return st;
        if ((st = tensor_from_proto(g, id, tp, err, errlen)) != HLT_OK)
            return st;
    }
    if ((st = load_inputs(g, gp, err, errlen)) != HLT_OK)
        return st;
    for (size_t i = 0; i < gp->n_node; i++)
        if ((st = load_node(g, gp->node[i], i, err, errlen)) != HLT_OK)
            return st;
    if ((st = resolve_inputs(g, gp, err, errlen)) != HLT_OK)
        return st;
    if ((st = load_outputs(g, gp, err, errlen)) != HLT_OK)
        return st;
    if ((st = graph_finalize(g, err, errlen)) != HLT_OK)
        return st;
    for (int32_t i = 0; i < g->n_outputs; i++) {
        const graph_tensor_t *t = &g->tensors[g->outputs[i]];
        if (t->onnx_type != 0 && onnx_to_hlt_dtype(t->onnx_type) != t->dtype)
            return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                               "graph output '%s' is declared %s but computes %s", t->name,
                               onnx_dtype_name(t->onnx_type), hlt_dtype_name(t->dtype));
    }
    return HLT_OK;
}

hlt_status engine_graph_load_buffer(const uint8_t *data, size_t len, engine_graph_t **out,
                                    char *err, size_t errlen)
{
    engine_graph_t *g = NULL;
    hlt_status st = HLT_OK;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
    if (!m)
        return engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                           "not an ONNX model: %zu bytes do not parse as a ModelProto "
                           "(truncated or not ONNX)",
                           len);
    if (!m->has_ir_version || !m->graph) {
        st = engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "not an ONNX model: no %s",
                         m->graph ? "ir_version" : "graph");
        goto done;
    }
    int64_t opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (default_domain(m->opset_import[i]->domain) && m->opset_import[i]->has_version)
            opset = m->opset_import[i]->version;
    if (opset < 1) {
        st = engine_errf(HLT_INVALID_ARGUMENT, err, errlen,
                         "the model imports no version of the default ONNX operator set");
        goto done;
    }
    g = graph_create(opset);
    if (!g) {
        st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
        goto done;
    }
    st = load_graph(g, m->graph, err, errlen);
done:
    onnx__model_proto__free_unpacked(m, NULL);
    if (st != HLT_OK) {
        engine_graph_destroy(g);
        return st;
    }
    *out = g;
    return HLT_OK;
}

hlt_status engine_graph_load_file(const char *path, engine_graph_t **out, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    hlt_status st = HLT_OK;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        st = engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "cannot open '%s': %s", path,
                         strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "'%s' is not a regular file", path);
        goto done;
    }
    const size_t len = (size_t)sb.st_size;
    buf = malloc(len ? len : 1);
    if (!buf) {
        st = engine_errf(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory reading '%s'", path);
        goto done;
    }
    if (fread(buf, 1, len, f) != len) {
        st = engine_errf(HLT_INVALID_ARGUMENT, err, errlen, "cannot read '%s': %s", path,
                         ferror(f) ? strerror(errno) : "file shrank while reading");
        goto done;
    }
    st = engine_graph_load_buffer(buf, len, out, err, errlen);
done:
    if (f)
        fclose(f);
    free(buf);
    return st;
}
