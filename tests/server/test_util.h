/* Helpers shared by the server suites: building ModelInferRequest bytes with protobuf-c,
 * reading the example models' reference vectors, temporary model repositories, and float
 * comparison with the tolerance the reference data asks for (models/README.md).
 * Header-only (static functions) so that every suite stays one executable of one .c file. */
#ifndef HLT_TEST_SERVER_UTIL_H
#define HLT_TEST_SERVER_UTIL_H

#include "inference.pb-c.h"
#include "onnx.pb-c.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TU_UNUSED __attribute__((unused))

/* Tolerance for model outputs against the float64 references (models/README.md). */
#define TU_RTOL 1e-4
#define TU_ATOL 1e-5

/* ---- paths ---- */

/* The repository root, from HLT_SOURCE_ROOT (set by tests/meson.build for meson test). */
static TU_UNUSED const char *tu_source_root(void)
{
    const char *r = getenv("HLT_SOURCE_ROOT");
    cr_assert(r && *r, "HLT_SOURCE_ROOT is not set (run the suite through meson test)");
    return r;
}

static TU_UNUSED void tu_models_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/models", tu_source_root());
}

/* ---- files ---- */

/* Whole file into a malloc'd buffer (NUL-terminated for convenience); NULL if unreadable. */
static TU_UNUSED uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 131072;
            uint8_t *nb = realloc(buf, cap);
            cr_assert_not_null(nb);
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static TU_UNUSED void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static TU_UNUSED void tu_write_text(const char *path, const char *text)
{
    tu_write_file(path, text, strlen(text));
}

static TU_UNUSED void tu_copy_file(const char *from, const char *to)
{
    size_t len;
    uint8_t *data = tu_read_file(from, &len);
    cr_assert_not_null(data, "cannot read %s", from);
    tu_write_file(to, data, len);
    free(data);
}

static TU_UNUSED void tu_mkdir(const char *path)
{
    cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
}

/* printf into a path buffer of PATH_MAX-ish size. */
#define TU_PATH(buf, ...) snprintf((buf), sizeof(buf), __VA_ARGS__)

/* Temporary directories made by this test, removed by tu_cleanup_temp_dirs (a suite's .fini,
 * which criterion runs even after a failed assertion, so a failing test leaves nothing in
 * /tmp). Each criterion test runs in its own process: the list is per test. */
static char *tu_temp_dirs[32];
static size_t tu_n_temp_dirs;

static TU_UNUSED void tu_rm_rf(const char *path);

/* Creates a fresh directory /tmp/hlt-utest-XXXXXX; returns a malloc'd path. */
static TU_UNUSED char *tu_mkdtemp(void)
{
    char *t = strdup("/tmp/hlt-utest-XXXXXX");
    cr_assert_not_null(mkdtemp(t), "mkdtemp: %s", strerror(errno));
    if (tu_n_temp_dirs < sizeof tu_temp_dirs / sizeof tu_temp_dirs[0])
        tu_temp_dirs[tu_n_temp_dirs++] = strdup(t);
    return t;
}

static TU_UNUSED void tu_cleanup_temp_dirs(void)
{
    for (size_t i = 0; i < tu_n_temp_dirs; i++) {
        tu_rm_rf(tu_temp_dirs[i]);
        free(tu_temp_dirs[i]);
    }
    tu_n_temp_dirs = 0;
}

/* rm -r, in plain C. */
static TU_UNUSED void tu_rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char sub[4096];
                TU_PATH(sub, "%s/%s", path, de->d_name);
                tu_rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Copies models/<model>/config.json (if with_config) and models/<model>/1/model.onnx into
 * <repo>/<as_name>/ with version directory <version>. */
static TU_UNUSED void tu_install_model(const char *repo, const char *model, const char *as_name,
                                       int version, bool with_config)
{
    char src[4096], dst[4096];
    TU_PATH(dst, "%s/%s", repo, as_name);
    tu_mkdir(dst);
    if (with_config) {
        TU_PATH(src, "%s/models/%s/config.json", tu_source_root(), model);
        TU_PATH(dst, "%s/%s/config.json", repo, as_name);
        tu_copy_file(src, dst);
    }
    TU_PATH(dst, "%s/%s/%d", repo, as_name, version);
    tu_mkdir(dst);
    TU_PATH(src, "%s/models/%s/1/model.onnx", tu_source_root(), model);
    TU_PATH(dst, "%s/%s/%d/model.onnx", repo, as_name, version);
    tu_copy_file(src, dst);
}

/* ---- reference vectors ---- */

typedef struct tu_tensor {
    char name[64];
    char datatype[16];
    int32_t rank;
    int64_t shape[8];
    float *data; /* malloc'd */
    size_t count;
} tu_tensor_t;

typedef struct tu_case {
    size_t n_in, n_out;
    tu_tensor_t in[4], out[4];
} tu_case_t;

static TU_UNUSED void tu_load_tensors(const char *dir, json_t *arr, tu_tensor_t *t, size_t *n)
{
    cr_assert(json_is_array(arr));
    *n = json_array_size(arr);
    cr_assert_leq(*n, 4);
    for (size_t i = 0; i < *n; i++) {
        json_t *e = json_array_get(arr, i);
        snprintf(t[i].name, sizeof t[i].name, "%s", json_string_value(json_object_get(e, "name")));
        snprintf(t[i].datatype, sizeof t[i].datatype, "%s",
                 json_string_value(json_object_get(e, "datatype")));
        json_t *shape = json_object_get(e, "shape");
        t[i].rank = (int32_t)json_array_size(shape);
        t[i].count = 1;
        for (int32_t d = 0; d < t[i].rank; d++) {
            t[i].shape[d] = json_integer_value(json_array_get(shape, (size_t)d));
            t[i].count *= (size_t)t[i].shape[d];
        }
        char path[4096];
        TU_PATH(path, "%s/%s", dir, json_string_value(json_object_get(e, "file")));
        size_t len;
        t[i].data = (float *)tu_read_file(path, &len);
        cr_assert_not_null(t[i].data, "cannot read %s", path);
        cr_assert_eq(len, t[i].count * sizeof(float), "%s: size", path);
    }
}

/* Loads models/<model>/reference/<name>.json and its .bin files. */
static TU_UNUSED void tu_load_case(const char *model, const char *name, tu_case_t *c)
{
    memset(c, 0, sizeof *c);
    char dir[4096], path[4200];
    TU_PATH(dir, "%s/models/%s/reference", tu_source_root(), model);
    TU_PATH(path, "%s/%s.json", dir, name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", path, jerr.text);
    tu_load_tensors(dir, json_object_get(root, "inputs"), c->in, &c->n_in);
    tu_load_tensors(dir, json_object_get(root, "outputs"), c->out, &c->n_out);
    json_decref(root);
}

static TU_UNUSED void tu_free_case(tu_case_t *c)
{
    for (size_t i = 0; i < c->n_in; i++)
        free(c->in[i].data);
    for (size_t i = 0; i < c->n_out; i++)
        free(c->out[i].data);
}

static TU_UNUSED const tu_tensor_t *tu_case_output(const tu_case_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_out; i++)
        if (!strcmp(c->out[i].name, name))
            return &c->out[i];
    cr_assert_fail("reference has no output '%s'", name);
    return NULL;
}

/* Asserts |got - want| <= atol + rtol * |want| element-wise; got may be unaligned bytes. */
static TU_UNUSED void tu_assert_close(const char *what, const void *got_bytes, const float *want,
                                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float g;
        memcpy(&g, (const uint8_t *)got_bytes + i * sizeof g, sizeof g);
        double tol = TU_ATOL + TU_RTOL * fabs((double)want[i]);
        cr_assert(isfinite(g) && fabs((double)g - (double)want[i]) <= tol,
                  "%s[%zu]: got %.9g, want %.9g (tolerance %.3g)", what, i, (double)g,
                  (double)want[i], tol);
    }
}

/* ---- ModelInferRequest building (protobuf-c) ---- */

typedef struct tu_input {
    const char *name, *datatype;
    int32_t rank;
    int64_t shape[8];
    const void *data; /* raw_input_contents entry, or NULL for none */
    size_t size;
} tu_input_t;

/* Packs a ModelInferRequest whose inputs carry raw_input_contents (in input order), asking for
 * the n_outputs named outputs (0 = all). Returns malloc'd bytes. */
static TU_UNUSED uint8_t *tu_pack_raw_request(const char *model, const char *version,
                                              const char *id, const tu_input_t *in, size_t n_in,
                                              const char *const *outputs, size_t n_outputs,
                                              size_t *len)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor it[8], *itp[8];
    Inference__ModelInferRequest__InferRequestedOutputTensor ot[8], *otp[8];
    ProtobufCBinaryData raw[8];
    int64_t shapes[8][8];
    cr_assert_leq(n_in, 8);
    cr_assert_leq(n_outputs, 8);
    req.model_name = (char *)model;
    req.model_version = (char *)(version ? version : "");
    req.id = (char *)(id ? id : "");
    size_t n_raw = 0;
    for (size_t i = 0; i < n_in; i++) {
        inference__model_infer_request__infer_input_tensor__init(&it[i]);
        it[i].name = (char *)in[i].name;
        it[i].datatype = (char *)in[i].datatype;
        it[i].n_shape = (size_t)in[i].rank;
        memcpy(shapes[i], in[i].shape, sizeof(int64_t) * (size_t)in[i].rank);
        it[i].shape = shapes[i];
        itp[i] = &it[i];
        if (in[i].data)
            raw[n_raw++] = (ProtobufCBinaryData){in[i].size, (uint8_t *)in[i].data};
    }
    req.n_inputs = n_in;
    req.inputs = itp;
    for (size_t i = 0; i < n_outputs; i++) {
        inference__model_infer_request__infer_requested_output_tensor__init(&ot[i]);
        ot[i].name = (char *)outputs[i];
        otp[i] = &ot[i];
    }
    req.n_outputs = n_outputs;
    req.outputs = otp;
    req.n_raw_input_contents = n_raw;
    req.raw_input_contents = raw;
    *len = inference__model_infer_request__get_packed_size(&req);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(inference__model_infer_request__pack(&req, buf), *len);
    return buf;
}

static TU_UNUSED uint8_t *tu_pack(const Inference__ModelInferRequest *req, size_t *len)
{
    *len = inference__model_infer_request__get_packed_size(req);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(inference__model_infer_request__pack(req, buf), *len);
    return buf;
}

/* ---- tiny ONNX models (protobuf-c over proto/onnx.proto) ---- */

/* One FP32 graph input or output; dims[i] < 0 is a symbolic dim ("N"). */
typedef struct tu_onnx_io {
    const char *name;
    int32_t rank;
    int64_t dims[4];
} tu_onnx_io_t;

/* A one-node graph: op_type(inputs...) -> outputs, opset 13, all FP32. Returns malloc'd bytes
 * of the ModelProto. Used for shapes and ops the example models do not have. */
static TU_UNUSED uint8_t *tu_onnx_one_node(const char *op_type, const tu_onnx_io_t *in, size_t n_in,
                                           const tu_onnx_io_t *out, size_t n_out, size_t *len)
{
    enum { MAXIO = 4 };
    cr_assert_leq(n_in, MAXIO);
    cr_assert_leq(n_out, MAXIO);
    Onnx__TensorShapeProto__Dimension dim[2 * MAXIO][4], *dimp[2 * MAXIO][4];
    Onnx__TensorShapeProto shape[2 * MAXIO];
    Onnx__TypeProto__Tensor tt[2 * MAXIO];
    Onnx__TypeProto type[2 * MAXIO];
    Onnx__ValueInfoProto vi[2 * MAXIO], *vin[MAXIO], *vout[MAXIO];
    char *node_in[MAXIO], *node_out[MAXIO];
    for (size_t k = 0; k < n_in + n_out; k++) {
        const tu_onnx_io_t *io = k < n_in ? &in[k] : &out[k - n_in];
        for (int32_t d = 0; d < io->rank; d++) {
            onnx__tensor_shape_proto__dimension__init(&dim[k][d]);
            if (io->dims[d] < 0) {
                dim[k][d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                dim[k][d].dim_param = "N";
            } else {
                dim[k][d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                dim[k][d].dim_value = io->dims[d];
            }
            dimp[k][d] = &dim[k][d];
        }
        onnx__tensor_shape_proto__init(&shape[k]);
        shape[k].n_dim = (size_t)io->rank;
        shape[k].dim = dimp[k];
        onnx__type_proto__tensor__init(&tt[k]);
        tt[k].has_elem_type = 1;
        tt[k].elem_type = 1; /* FLOAT */
        tt[k].shape = &shape[k];
        onnx__type_proto__init(&type[k]);
        type[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        type[k].tensor_type = &tt[k];
        onnx__value_info_proto__init(&vi[k]);
        vi[k].name = (char *)io->name;
        vi[k].type = &type[k];
        if (k < n_in) {
            vin[k] = &vi[k];
            node_in[k] = (char *)io->name;
        } else {
            vout[k - n_in] = &vi[k];
            node_out[k - n_in] = (char *)io->name;
        }
    }
    Onnx__NodeProto node, *nodep = &node;
    onnx__node_proto__init(&node);
    node.op_type = (char *)op_type;
    node.name = "node0";
    node.n_input = n_in;
    node.input = node_in;
    node.n_output = n_out;
    node.output = node_out;
    Onnx__GraphProto graph;
    onnx__graph_proto__init(&graph);
    graph.name = "tiny";
    graph.n_node = 1;
    graph.node = &nodep;
    graph.n_input = n_in;
    graph.input = vin;
    graph.n_output = n_out;
    graph.output = vout;
    Onnx__OperatorSetIdProto opset, *opsetp = &opset;
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.producer_name = "hltinfer-tests";
    model.graph = &graph;
    model.n_opset_import = 1;
    model.opset_import = &opsetp;
    *len = onnx__model_proto__get_packed_size(&model);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    cr_assert_eq(onnx__model_proto__pack(&model, buf), *len);
    return buf;
}

/* Writes tu_onnx_one_node's model to path. */
static TU_UNUSED void tu_write_onnx_one_node(const char *path, const char *op_type,
                                             const tu_onnx_io_t *in, size_t n_in,
                                             const tu_onnx_io_t *out, size_t n_out)
{
    size_t len;
    uint8_t *buf = tu_onnx_one_node(op_type, in, n_in, out, n_out, &len);
    tu_write_file(path, buf, len);
    free(buf);
}

#endif
