/* test_util: see test_util.h. Everything the builder allocates comes from malloc, so
 * protobuf-c's free_unpacked (system allocator) releases the whole message tree. */
#include "test_util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mb {
    Onnx__ModelProto *model;
};

static void *xcalloc(size_t n, size_t s)
{
    void *p = calloc(n ? n : 1, s);
    cr_assert_not_null(p);
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    cr_assert_not_null(p);
    return p;
}

#define PUSH(arr, n, item)                                                                         \
    do {                                                                                           \
        void *grown_ = realloc((arr), sizeof(*(arr)) * ((n) + 1));                                 \
        cr_assert_not_null(grown_);                                                                \
        (arr) = grown_;                                                                            \
        (arr)[(n)++] = (item);                                                                     \
    } while (0)

mb_t *mb_new(int64_t opset)
{
    mb_t *m = xcalloc(1, sizeof *m);
    Onnx__ModelProto *p = xcalloc(1, sizeof *p);
    onnx__model_proto__init(p);
    p->has_ir_version = 1;
    p->ir_version = 8;
    p->producer_name = xstrdup("hltinfer-tests");
    Onnx__OperatorSetIdProto *os = xcalloc(1, sizeof *os);
    onnx__operator_set_id_proto__init(os);
    os->domain = xstrdup("");
    os->has_version = 1;
    os->version = opset;
    PUSH(p->opset_import, p->n_opset_import, os);
    p->graph = xcalloc(1, sizeof *p->graph);
    onnx__graph_proto__init(p->graph);
    p->graph->name = xstrdup("test");
    m->model = p;
    return m;
}

void mb_free(mb_t *m)
{
    if (!m)
        return;
    onnx__model_proto__free_unpacked(m->model, NULL);
    free(m);
}

Onnx__ModelProto *mb_proto(mb_t *m)
{
    return m->model;
}

static Onnx__ValueInfoProto *value_info(const char *name, int32_t type, int32_t rank,
                                        const int64_t *dims)
{
    Onnx__ValueInfoProto *v = xcalloc(1, sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = xstrdup(name);
    v->type = xcalloc(1, sizeof *v->type);
    onnx__type_proto__init(v->type);
    v->type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    Onnx__TypeProto__Tensor *tt = xcalloc(1, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = type;
    v->type->tensor_type = tt;
    if (rank < 0)
        return v;
    tt->shape = xcalloc(1, sizeof *tt->shape);
    onnx__tensor_shape_proto__init(tt->shape);
    for (int32_t i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = xcalloc(1, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = xstrdup(dims[i] == -1 ? "N" : "M");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        PUSH(tt->shape->dim, tt->shape->n_dim, d);
    }
    return v;
}

void mb_input(mb_t *m, const char *name, int32_t onnx_type, int32_t rank, const int64_t *dims)
{
    Onnx__GraphProto *g = m->model->graph;
    PUSH(g->input, g->n_input, value_info(name, onnx_type, rank, dims));
}

void mb_output(mb_t *m, const char *name, int32_t onnx_type, int32_t rank, const int64_t *dims)
{
    Onnx__GraphProto *g = m->model->graph;
    PUSH(g->output, g->n_output, value_info(name, onnx_type, rank, dims));
}

Onnx__TensorProto *mb_tensor(const char *name, int32_t onnx_type, int32_t rank, const int64_t *dims,
                             const void *raw, size_t raw_len)
{
    Onnx__TensorProto *t = xcalloc(1, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = xstrdup(name);
    t->has_data_type = 1;
    t->data_type = onnx_type;
    t->n_dims = (size_t)rank;
    t->dims = xcalloc((size_t)rank, sizeof(int64_t));
    if (rank > 0)
        memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
    if (raw) {
        t->has_raw_data = 1;
        t->raw_data.len = raw_len;
        t->raw_data.data = xcalloc(raw_len, 1);
        memcpy(t->raw_data.data, raw, raw_len);
    }
    return t;
}

static int64_t numel(int32_t rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++)
        n *= dims[i];
    return n;
}

Onnx__TensorProto *mb_init_f32(mb_t *m, const char *name, int32_t rank, const int64_t *dims,
                               const float *data, bool typed)
{
    const size_t n = (size_t)numel(rank, dims);
    Onnx__TensorProto *t = mb_tensor(name, TU_FLOAT, rank, dims, typed ? NULL : data, n * 4);
    if (typed) {
        t->n_float_data = n;
        t->float_data = xcalloc(n, sizeof(float));
        if (n)
            memcpy(t->float_data, data, n * sizeof(float));
    }
    Onnx__GraphProto *g = m->model->graph;
    PUSH(g->initializer, g->n_initializer, t);
    return t;
}

Onnx__TensorProto *mb_init_i64(mb_t *m, const char *name, int32_t rank, const int64_t *dims,
                               const int64_t *data, bool typed)
{
    const size_t n = (size_t)numel(rank, dims);
    Onnx__TensorProto *t = mb_tensor(name, TU_INT64, rank, dims, typed ? NULL : data, n * 8);
    if (typed) {
        t->n_int64_data = n;
        t->int64_data = xcalloc(n, sizeof(int64_t));
        if (n)
            memcpy(t->int64_data, data, n * sizeof(int64_t));
    }
    Onnx__GraphProto *g = m->model->graph;
    PUSH(g->initializer, g->n_initializer, t);
    return t;
}

/* Splits "a,b,,c" into strdup'd names (empty ones kept). */
static void split(const char *list, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!list || !*list)
        return;
    const char *p = list;
    for (;;) {
        const char *c = strchr(p, ',');
        const size_t len = c ? (size_t)(c - p) : strlen(p);
        char *s = xcalloc(len + 1, 1);
        memcpy(s, p, len);
        PUSH(*out, *n, s);
        if (!c)
            break;
        p = c + 1;
    }
}

Onnx__NodeProto *mb_node(mb_t *m, const char *op, const char *name, const char *inputs,
                         const char *outputs)
{
    Onnx__NodeProto *n = xcalloc(1, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = xstrdup(op);
    if (name)
        n->name = xstrdup(name);
    split(inputs, &n->input, &n->n_input);
    split(outputs, &n->output, &n->n_output);
    Onnx__GraphProto *g = m->model->graph;
    PUSH(g->node, g->n_node, n);
    return n;
}

static Onnx__AttributeProto *attr(Onnx__NodeProto *n, const char *name,
                                  Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = xcalloc(1, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = xstrdup(name);
    a->has_type = 1;
    a->type = type;
    PUSH(n->attribute, n->n_attribute, a);
    return a;
}

void mb_attr_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

void mb_attr_float(Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

void mb_attr_ints(Onnx__NodeProto *n, const char *name, int32_t count, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)count;
    a->ints = xcalloc((size_t)count, sizeof(int64_t));
    if (count > 0)
        memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
}

void mb_attr_floats(Onnx__NodeProto *n, const char *name, int32_t count, const float *v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = (size_t)count;
    a->floats = xcalloc((size_t)count, sizeof(float));
    if (count > 0)
        memcpy(a->floats, v, sizeof(float) * (size_t)count);
}

void mb_attr_string(Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)xstrdup(v);
}

void mb_attr_tensor(Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
}

uint8_t *mb_pack(mb_t *m, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(m->model);
    uint8_t *buf = xcalloc(*len, 1);
    cr_assert_eq(onnx__model_proto__pack(m->model, buf), *len);
    return buf;
}

hlt_status mb_load(mb_t *m, engine_graph_t **g, char *err, size_t errlen)
{
    size_t len;
    uint8_t *buf = mb_pack(m, &len);
    hlt_status st = engine_graph_load_buffer(buf, len, g, err, errlen);
    free(buf);
    return st;
}

engine_shape_t tu_shape(int32_t rank, const int64_t *dims)
{
    engine_shape_t s = {.rank = rank};
    if (rank > 0)
        memcpy(s.dims, dims, sizeof(int64_t) * (size_t)rank);
    return s;
}

int64_t tu_numel(const engine_shape_t *s)
{
    return numel(s->rank, s->dims);
}

void tu_run(mb_t *m, const engine_shape_t *in_shapes, const void *const *inputs,
            engine_shape_t *out_shapes, void **outs)
{
    char err[512] = "";
    engine_graph_t *g = NULL;
    engine_exec_t *e = NULL;
    hlt_status st = mb_load(m, &g, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "load: %s", err);
    st = engine_exec_create(g, &e, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "create: %s", err);
    st = engine_exec_prepare(e, in_shapes, out_shapes, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "prepare: %s", err);
    const size_t no = engine_graph_num_outputs(g);
    for (size_t i = 0; i < no; i++) {
        const size_t es = hlt_dtype_size(engine_graph_output(g, i)->dtype);
        outs[i] = xcalloc((size_t)tu_numel(&out_shapes[i]) + 1, es);
    }
    st = engine_exec_run(e, inputs, (void *const *)outs, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "run: %s", err);
    engine_exec_destroy(e);
    engine_graph_destroy(g);
}

float tu_rand(uint64_t *s, float lo, float hi)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 11) / 9007199254740992.0);
}

void tu_fill(uint64_t *state, float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = tu_rand(state, lo, hi);
}

void tu_close(const char *what, const float *got, const double *want, const double *mag, int64_t n,
              double rel, double abs_floor)
{
    for (int64_t i = 0; i < n; i++) {
        double scale = fabs(want[i]);
        if (mag && mag[i] > scale)
            scale = mag[i];
        const double diff = fabs((double)got[i] - want[i]);
        if (!(diff <= rel * scale + abs_floor))
            cr_assert_fail("%s: element %lld: got %.9g, want %.9g (diff %.3g > %.3g)", what,
                           (long long)i, (double)got[i], want[i], diff, rel * scale + abs_floor);
    }
}
