/* ModelInferRequest encoder / ModelInferResponse parser (see infer_wire.h for why by hand).
 * Field numbers are those of proto/inference.proto:
 *   ModelInferRequest   1 model_name, 2 model_version, 3 id, 4 parameters (map), 5 inputs,
 *                       6 outputs, 7 raw_input_contents
 *   InferInputTensor    1 name, 2 datatype, 3 shape (packed)
 *   InferRequestedOutputTensor  1 name
 *   map entry           1 key, 2 value (InferParameter: 5 uint64_param)
 *   ModelInferResponse  1 model_name, 2 model_version, 3 id, 4 parameters, 5 outputs,
 *                       6 raw_output_contents
 *   InferOutputTensor   1 name, 2 datatype, 3 shape (packed or not), 4 parameters, 5 contents */
#include "infer_wire.h"

#include "pbwire.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/slice.h>

struct hlt_infer_result {
    grpc_slice msg; /* the response message: every view points into it */
    const char *model_name, *model_version, *id;
    size_t n_outputs;
    hlt_output_t *outputs;
};

static hlt_status fail(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hlt_status fail(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static bool nonempty(const char *s)
{
    return s && *s;
}

/* ---- request ---- */

static size_t shape_payload_size(const hlt_input_t *in)
{
    size_t n = 0;
    for (size_t d = 0; d < in->rank; d++)
        n += pb_varint_size((uint64_t)in->shape[d]);
    return n;
}

static size_t input_tensor_size(const hlt_input_t *in)
{
    size_t s = pb_len_field_size(strlen(in->name)) +
               pb_len_field_size(strlen(hlt_dtype_name(in->datatype)));
    if (in->rank)
        s += pb_len_field_size(shape_payload_size(in));
    return s;
}

static size_t priority_entry_size(uint64_t prio)
{
    /* entry { key = "priority"; value = InferParameter { uint64_param (5) = prio } } */
    size_t param = 1 + pb_varint_size(prio);
    return pb_len_field_size(8) + pb_len_field_size(param);
}

static hlt_status check_input(const hlt_infer_request_t *req, size_t i, char *err, size_t errlen)
{
    const hlt_input_t *in = &req->inputs[i];
    if (!nonempty(in->name))
        return fail(HLT_INVALID_ARGUMENT, err, errlen, "model '%s': input %zu has no name",
                    req->model, i);
    if (!hlt_dtype_name(in->datatype))
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    "model '%s': input '%s': invalid datatype %d", req->model, in->name,
                    (int)in->datatype);
    if (in->rank && !in->shape)
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    "model '%s': input '%s': rank %zu but no shape", req->model, in->name,
                    in->rank);
    if (in->size && !in->data)
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    "model '%s': input '%s': %zu bytes announced but data is NULL", req->model,
                    in->name, in->size);
    size_t esize = hlt_dtype_size(in->datatype);
    size_t want = esize;
    bool overflow = false;
    for (size_t d = 0; d < in->rank; d++) {
        if (in->shape[d] < 0)
            return fail(HLT_INVALID_ARGUMENT, err, errlen,
                        "model '%s': input '%s': shape[%zu] = %lld is negative", req->model,
                        in->name, d, (long long)in->shape[d]);
        if (__builtin_mul_overflow(want, (size_t)in->shape[d], &want))
            overflow = true;
    }
    if (esize && (overflow || want != in->size))
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    "model '%s': input '%s': %zu bytes of data, but its shape and datatype %s "
                    "need %s%zu",
                    req->model, in->name, in->size, hlt_dtype_name(in->datatype),
                    overflow ? "more than " : "", overflow ? SIZE_MAX : want);
    return HLT_OK;
}

hlt_status infer_request_size(const hlt_infer_request_t *req, size_t *size, char *err,
                              size_t errlen)
{
    if (!req || !nonempty(req->model))
        return fail(HLT_INVALID_ARGUMENT, err, errlen, "infer request without a model name");
    if (req->n_inputs && !req->inputs)
        return fail(HLT_INVALID_ARGUMENT, err, errlen, "model '%s': %zu inputs but no array",
                    req->model, req->n_inputs);
    if (req->n_outputs && !req->outputs)
        return fail(HLT_INVALID_ARGUMENT, err, errlen, "model '%s': %zu outputs but no array",
                    req->model, req->n_outputs);
    size_t s = pb_len_field_size(strlen(req->model));
    if (nonempty(req->version))
        s += pb_len_field_size(strlen(req->version));
    if (nonempty(req->id))
        s += pb_len_field_size(strlen(req->id));
    if (req->priority)
        s += pb_len_field_size(priority_entry_size(req->priority));
    for (size_t i = 0; i < req->n_inputs; i++) {
        hlt_status st = check_input(req, i, err, errlen);
        if (st)
            return st;
        s += pb_len_field_size(input_tensor_size(&req->inputs[i]));
        if (__builtin_add_overflow(s, pb_len_field_size(req->inputs[i].size), &s))
            return fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "model '%s': request too large",
                        req->model);
    }
    for (size_t i = 0; i < req->n_outputs; i++) {
        if (!nonempty(req->outputs[i]))
            return fail(HLT_INVALID_ARGUMENT, err, errlen,
                        "model '%s': requested output %zu has no name", req->model, i);
        s += pb_len_field_size(pb_len_field_size(strlen(req->outputs[i])));
    }
    *size = s;
    return HLT_OK;
}

static uint8_t *put_str(uint8_t *p, uint32_t field, const char *s)
{
    return pb_put_bytes(p, field, s, strlen(s));
}

void infer_request_write(const hlt_infer_request_t *req, uint8_t *buf, size_t size)
{
    uint8_t *p = buf;
    p = put_str(p, 1, req->model);
    if (nonempty(req->version))
        p = put_str(p, 2, req->version);
    if (nonempty(req->id))
        p = put_str(p, 3, req->id);
    if (req->priority) {
        p = pb_put_len_header(p, 4, priority_entry_size(req->priority));
        p = put_str(p, 1, "priority");
        p = pb_put_len_header(p, 2, 1 + pb_varint_size(req->priority));
        p = pb_put_key(p, 5, PB_VARINT);
        p = pb_put_varint(p, req->priority);
    }
    for (size_t i = 0; i < req->n_inputs; i++) {
        const hlt_input_t *in = &req->inputs[i];
        p = pb_put_len_header(p, 5, input_tensor_size(in));
        p = put_str(p, 1, in->name);
        p = put_str(p, 2, hlt_dtype_name(in->datatype));
        if (in->rank) {
            p = pb_put_len_header(p, 3, shape_payload_size(in));
            for (size_t d = 0; d < in->rank; d++)
                p = pb_put_varint(p, (uint64_t)in->shape[d]);
        }
    }
    for (size_t i = 0; i < req->n_outputs; i++) {
        p = pb_put_len_header(p, 6, pb_len_field_size(strlen(req->outputs[i])));
        p = put_str(p, 1, req->outputs[i]);
    }
    /* The tensor bytes: the one copy an input makes on its way to the wire. */
    for (size_t i = 0; i < req->n_inputs; i++)
        p = pb_put_bytes(p, 7, req->inputs[i].data, req->inputs[i].size);
    assert((size_t)(p - buf) == size); /* infer_request_size and this must agree */
    (void)size;
}

/* ---- response ---- */

typedef struct out_desc {
    const uint8_t *name, *dtype;
    size_t name_len, dtype_len;
    size_t rank;
    bool has_contents;
} out_desc_t;

/* Parses an InferOutputTensor; writes its dims to shape (may be NULL to count only). */
static bool parse_output(const uint8_t *p, size_t len, out_desc_t *o, int64_t *shape)
{
    pb_reader_t r = {p, p + len};
    memset(o, 0, sizeof *o);
    while (r.p < r.end) {
        uint32_t f, wt;
        const uint8_t *d;
        size_t n;
        uint64_t v;
        if (!pb_read_key(&r, &f, &wt))
            return false;
        if ((f == 1 || f == 2) && wt == PB_LEN) {
            if (!pb_read_len(&r, &d, &n))
                return false;
            if (f == 1) {
                o->name = d;
                o->name_len = n;
            } else {
                o->dtype = d;
                o->dtype_len = n;
            }
        } else if (f == 3 && wt == PB_LEN) { /* packed shape */
            if (!pb_read_len(&r, &d, &n))
                return false;
            pb_reader_t s = {d, d + n};
            while (s.p < s.end) {
                if (!pb_read_varint(&s, &v))
                    return false;
                if (shape)
                    shape[o->rank] = (int64_t)v;
                o->rank++;
            }
        } else if (f == 3 && wt == PB_VARINT) { /* unpacked shape */
            if (!pb_read_varint(&r, &v))
                return false;
            if (shape)
                shape[o->rank] = (int64_t)v;
            o->rank++;
        } else {
            if (f == 5)
                o->has_contents = true;
            if (!pb_skip(&r, wt))
                return false;
        }
    }
    return true;
}

static char *put_cstr(char **arena, const uint8_t *s, size_t n)
{
    char *dst = *arena;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
    *arena += n + 1;
    return dst;
}

hlt_status infer_result_parse(grpc_slice msg, hlt_infer_result_t **out, char *err, size_t errlen)
{
    const uint8_t *buf = GRPC_SLICE_START_PTR(msg);
    size_t len = GRPC_SLICE_LENGTH(msg);
    /* Pass 1: validate the framing, count outputs, dims and string bytes. */
    size_t n_out = 0, n_raw = 0, total_rank = 0, strbytes = 0;
    bool contents = false;
    pb_reader_t r = {buf, buf + len};
    while (r.p < r.end) {
        uint32_t f, wt;
        const uint8_t *d;
        size_t n;
        if (!pb_read_key(&r, &f, &wt))
            goto malformed;
        if (wt != PB_LEN) {
            if (!pb_skip(&r, wt))
                goto malformed;
            continue;
        }
        if (!pb_read_len(&r, &d, &n))
            goto malformed;
        if (f >= 1 && f <= 3) {
            strbytes += n + 1;
        } else if (f == 5) {
            out_desc_t o;
            if (!parse_output(d, n, &o, NULL))
                goto malformed;
            n_out++;
            total_rank += o.rank;
            strbytes += o.name_len + o.dtype_len + 2;
            contents |= o.has_contents;
        } else if (f == 6) {
            n_raw++;
        }
    }
    if (n_raw != n_out) {
        if (n_raw == 0 && contents)
            return fail(HLT_UNIMPLEMENTED, err, errlen,
                        "the server answered with typed output contents; libhltinfer reads "
                        "raw_output_contents only (as Triton sends)");
        return fail(HLT_INTERNAL, err, errlen,
                    "malformed ModelInferResponse: %zu raw_output_contents for %zu outputs", n_raw,
                    n_out);
    }
    strbytes += 3; /* model_name, model_version, id default to "" */
    size_t mem = sizeof(hlt_infer_result_t) + n_out * sizeof(hlt_output_t) +
                 total_rank * sizeof(int64_t) + strbytes;
    hlt_infer_result_t *res = calloc(1, mem);
    if (!res)
        return fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory for an infer result");
    res->outputs = (hlt_output_t *)(res + 1);
    int64_t *shapes = (int64_t *)(res->outputs + n_out);
    char *arena = (char *)(shapes + total_rank);
    res->model_name = res->model_version = res->id = put_cstr(&arena, NULL, 0);

    /* Pass 2: fill (framing is known to be valid). */
    size_t oi = 0, ri = 0;
    r.p = buf;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        const uint8_t *d = NULL;
        size_t n = 0;
        if (!pb_read_key(&r, &f, &wt)) /* cannot fail: pass 1 checked the framing */
            break;
        if (wt != PB_LEN) {
            if (!pb_skip(&r, wt))
                break;
            continue;
        }
        if (!pb_read_len(&r, &d, &n))
            break;
        switch (f) {
        case 1:
            res->model_name = put_cstr(&arena, d, n);
            break;
        case 2:
            res->model_version = put_cstr(&arena, d, n);
            break;
        case 3:
            res->id = put_cstr(&arena, d, n);
            break;
        case 5: {
            out_desc_t o;
            hlt_output_t *ho = &res->outputs[oi++];
            (void)parse_output(d, n, &o, shapes);
            ho->name = put_cstr(&arena, o.name, o.name_len);
            ho->datatype_name = put_cstr(&arena, o.dtype, o.dtype_len);
            ho->datatype = hlt_dtype_from_name(ho->datatype_name, o.dtype_len);
            ho->rank = o.rank;
            ho->shape = shapes;
            shapes += o.rank;
            break;
        }
        case 6:
            res->outputs[ri].data = d;
            res->outputs[ri].size = n;
            ri++;
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < n_out; i++) {
        hlt_output_t *o = &res->outputs[i];
        size_t want = hlt_dtype_size(o->datatype);
        bool bad_dim = false;
        for (size_t d = 0; d < o->rank; d++) {
            if (o->shape[d] < 0 || __builtin_mul_overflow(want, (size_t)o->shape[d], &want))
                bad_dim = true;
        }
        /* Variable-size (BYTES) and unknown datatypes cannot be checked. */
        if (bad_dim || (hlt_dtype_size(o->datatype) && want != o->size)) {
            hlt_status st = fail(HLT_INTERNAL, err, errlen,
                                 "malformed ModelInferResponse: output '%s' (%s, rank %zu) "
                                 "carries %zu bytes, which does not match its shape",
                                 o->name, o->datatype_name, o->rank, o->size);
            free(res);
            return st;
        }
    }
    res->n_outputs = n_out;
    res->msg = msg;
    *out = res;
    return HLT_OK;
malformed:
    return fail(HLT_INTERNAL, err, errlen,
                "malformed ModelInferResponse: not a valid protobuf message (%zu bytes)", len);
}

/* ---- public accessors ---- */

const char *hlt_infer_result_model_name(const hlt_infer_result_t *r)
{
    return r->model_name;
}

const char *hlt_infer_result_model_version(const hlt_infer_result_t *r)
{
    return r->model_version;
}

const char *hlt_infer_result_id(const hlt_infer_result_t *r)
{
    return r->id;
}

size_t hlt_infer_result_output_count(const hlt_infer_result_t *r)
{
    return r->n_outputs;
}

const hlt_output_t *hlt_infer_result_output(const hlt_infer_result_t *r, size_t i)
{
    return i < r->n_outputs ? &r->outputs[i] : NULL;
}

const hlt_output_t *hlt_infer_result_output_by_name(const hlt_infer_result_t *r, const char *name)
{
    for (size_t i = 0; name && i < r->n_outputs; i++)
        if (strcmp(r->outputs[i].name, name) == 0)
            return &r->outputs[i];
    return NULL;
}

hlt_status hlt_infer_result_copy_output(const hlt_infer_result_t *r, const char *name, void *dst,
                                        size_t dst_size, char *err, size_t errlen)
{
    const hlt_output_t *o = hlt_infer_result_output_by_name(r, name);
    if (!o)
        return fail(HLT_NOT_FOUND, err, errlen, "the result has no output '%s'",
                    name ? name : "(null)");
    if (dst_size < o->size || (o->size && !dst))
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    "output '%s' has %zu bytes, the destination only %zu", o->name, o->size,
                    dst ? dst_size : 0);
    if (o->size)
        memcpy(dst, o->data, o->size);
    return HLT_OK;
}

void hlt_infer_result_free(hlt_infer_result_t *r)
{
    if (!r)
        return;
    grpc_slice_unref(r->msg);
    free(r);
}
