/* Hand-written ModelInferRequest / ModelInferResponse codec (see infer_codec.h for why).
 * Field numbers are those of proto/inference.proto:
 *   ModelInferRequest   1 model_name, 2 model_version, 3 id, 4 parameters (map), 5 inputs,
 *                       6 outputs, 7 raw_input_contents
 *   InferInputTensor    1 name, 2 datatype, 3 shape (packed or not), 4 parameters, 5 contents
 *   InferRequestedOutputTensor  1 name, 2 parameters
 *   map entry           1 key, 2 value (InferParameter: 1 bool, 2 int64, 3 string, 4 double,
 *                       5 uint64)
 *   ModelInferResponse  1 model_name, 2 model_version, 3 id, 5 outputs, 6 raw_output_contents
 *   InferOutputTensor   1 name, 2 datatype, 3 shape (packed) */
#include "infer_codec.h"

#include "pbwire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hlt_status bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hlt_status bad(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return HLT_INVALID_ARGUMENT;
}

static bool sv_eq(str_view_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* Parsed InferParameter value: which arm, and its scalar. */
typedef struct param_val {
    uint32_t arm;
    uint64_t u;
    str_view_t s;
} param_val_t;

/* Parses a map<string, InferParameter> entry. */
static bool parse_param_entry(const uint8_t *p, size_t len, str_view_t *key, param_val_t *val)
{
    pb_reader_t r = {p, p + len};
    key->p = "";
    key->len = 0;
    memset(val, 0, sizeof *val);
    while (r.p < r.end) {
        uint32_t f, wt;
        const uint8_t *d;
        size_t n;
        if (!pb_read_key(&r, &f, &wt))
            return false;
        if (f == 1 && wt == PB_LEN) {
            if (!pb_read_len(&r, &d, &n))
                return false;
            key->p = (const char *)d;
            key->len = n;
        } else if (f == 2 && wt == PB_LEN) {
            if (!pb_read_len(&r, &d, &n))
                return false;
            pb_reader_t v = {d, d + n};
            while (v.p < v.end) {
                uint32_t vf, vwt;
                if (!pb_read_key(&v, &vf, &vwt))
                    return false;
                val->arm = vf;
                if (vwt == PB_VARINT) {
                    if (!pb_read_varint(&v, &val->u))
                        return false;
                } else if (vwt == PB_LEN) {
                    const uint8_t *sd;
                    size_t sn;
                    if (!pb_read_len(&v, &sd, &sn))
                        return false;
                    val->s.p = (const char *)sd;
                    val->s.len = sn;
                } else if (!pb_skip(&v, vwt)) {
                    return false;
                }
            }
        } else if (!pb_skip(&r, wt)) {
            return false;
        }
    }
    return true;
}

static bool read_str(pb_reader_t *r, uint32_t wt, str_view_t *out)
{
    const uint8_t *d;
    size_t n;
    if (wt != PB_LEN || !pb_read_len(r, &d, &n))
        return false;
    out->p = (const char *)d;
    out->len = n;
    return true;
}

static hlt_status parse_input(const uint8_t *p, size_t len, infer_input_t *in, str_view_t *contents,
                              size_t idx, char *err, size_t errlen)
{
    pb_reader_t r = {p, p + len};
    in->name.p = in->datatype.p = "";
    while (r.p < r.end) {
        uint32_t f, wt;
        const uint8_t *d;
        size_t n;
        if (!pb_read_key(&r, &f, &wt))
            goto malformed;
        if (f == 1) {
            if (!read_str(&r, wt, &in->name))
                goto malformed;
        } else if (f == 2) {
            if (!read_str(&r, wt, &in->datatype))
                goto malformed;
        } else if (f == 3 && wt == PB_LEN) { /* packed shape */
            if (!pb_read_len(&r, &d, &n))
                goto malformed;
            pb_reader_t s = {d, d + n};
            while (s.p < s.end) {
                uint64_t v;
                if (!pb_read_varint(&s, &v))
                    goto malformed;
                if (in->rank == INFER_MAX_RANK)
                    return bad(err, errlen, "input '%.*s': shape has more than %d dims",
                               (int)in->name.len, in->name.p, INFER_MAX_RANK);
                in->shape[in->rank++] = (int64_t)v;
            }
        } else if (f == 3 && wt == PB_VARINT) { /* unpacked shape */
            uint64_t v;
            if (!pb_read_varint(&r, &v))
                goto malformed;
            if (in->rank == INFER_MAX_RANK)
                return bad(err, errlen, "input '%.*s': shape has more than %d dims",
                           (int)in->name.len, in->name.p, INFER_MAX_RANK);
            in->shape[in->rank++] = (int64_t)v;
        } else if (f == 4 && wt == PB_LEN) {
            str_view_t key;
            param_val_t val;
            if (!pb_read_len(&r, &d, &n) || !parse_param_entry(d, n, &key, &val))
                goto malformed;
            if (sv_eq(key, "shared_memory_region"))
                in->shm = true;
        } else if (f == 5 && wt == PB_LEN) {
            if (!pb_read_len(&r, &d, &n))
                goto malformed;
            in->has_contents = true;
            contents->p = (const char *)d;
            contents->len = n;
        } else if (!pb_skip(&r, wt)) {
            goto malformed;
        }
    }
    return HLT_OK;
malformed:
    return bad(err, errlen,
               "malformed ModelInferRequest: inputs[%zu] is not a valid "
               "InferInputTensor",
               idx);
}

static bool parse_output(const uint8_t *p, size_t len, infer_output_req_t *o)
{
    pb_reader_t r = {p, p + len};
    o->name.p = "";
    while (r.p < r.end) {
        uint32_t f, wt;
        const uint8_t *d;
        size_t n;
        if (!pb_read_key(&r, &f, &wt))
            return false;
        if (f == 1) {
            if (!read_str(&r, wt, &o->name))
                return false;
        } else if (f == 2 && wt == PB_LEN) {
            str_view_t key;
            param_val_t val;
            if (!pb_read_len(&r, &d, &n) || !parse_param_entry(d, n, &key, &val))
                return false;
            if (sv_eq(key, "classification"))
                o->classification = true;
            else if (sv_eq(key, "shared_memory_region"))
                o->shm = true;
        } else if (!pb_skip(&r, wt)) {
            return false;
        }
    }
    return true;
}

hlt_status infer_request_decode(const uint8_t *buf, size_t len, infer_request_msg_t *msg, char *err,
                                size_t errlen)
{
    memset(msg, 0, sizeof *msg);
    msg->model_name.p = msg->model_version.p = msg->id.p = "";
    /* Pass 1: validate framing and count repeated fields, so pass 2 allocates once. */
    size_t ni = 0, no = 0, nr = 0;
    pb_reader_t r = {buf, buf + len};
    while (r.p < r.end) {
        uint32_t f, wt;
        if (!pb_read_key(&r, &f, &wt) || !pb_skip(&r, wt))
            return bad(err, errlen, "malformed ModelInferRequest: not a valid protobuf message");
        if (wt == PB_LEN) {
            ni += f == 5;
            no += f == 6;
            nr += f == 7;
        }
    }
    size_t total = ni * (sizeof(infer_input_t) + sizeof(str_view_t)) +
                   no * sizeof(infer_output_req_t) + nr * sizeof(str_view_t);
    char *mem = total ? calloc(1, total) : NULL;
    if (total && !mem)
        return HLT_RESOURCE_EXHAUSTED;
    msg->inputs = (infer_input_t *)mem;
    msg->contents = (str_view_t *)(mem + ni * sizeof(infer_input_t));
    msg->outputs = (infer_output_req_t *)((char *)msg->contents + ni * sizeof(str_view_t));
    msg->raw = (str_view_t *)((char *)msg->outputs + no * sizeof(infer_output_req_t));

    r.p = buf;
    hlt_status st = HLT_OK;
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
        switch (f) {
        case 1:
            msg->model_name = (str_view_t){(const char *)d, n};
            break;
        case 2:
            msg->model_version = (str_view_t){(const char *)d, n};
            break;
        case 3:
            msg->id = (str_view_t){(const char *)d, n};
            break;
        case 4: {
            str_view_t key;
            param_val_t val;
            if (!parse_param_entry(d, n, &key, &val))
                goto malformed;
            /* Triton's clients send priority as uint64 (arm 5); accept int64 (arm 2) too. */
            if (sv_eq(key, "priority") && (val.arm == 5 || val.arm == 2)) {
                if (val.arm == 2 && (int64_t)val.u < 0) {
                    st = bad(err, errlen, "request parameter 'priority' must not be negative");
                    goto fail;
                }
                msg->has_priority = true;
                msg->priority = val.u;
            } else if (sv_eq(key, "timeout") && (val.arm == 2 || val.arm == 5)) {
                msg->has_timeout = true;
                msg->timeout_us = (int64_t)val.u;
            }
            break; /* unknown parameters are ignored, as the protocol requires */
        }
        case 5:
            if ((st = parse_input(d, n, &msg->inputs[msg->n_inputs], &msg->contents[msg->n_inputs],
                                  msg->n_inputs, err, errlen)))
                goto fail;
            msg->n_inputs++;
            break;
        case 6:
            if (!parse_output(d, n, &msg->outputs[msg->n_outputs]))
                goto malformed;
            msg->n_outputs++;
            break;
        case 7:
            msg->raw[msg->n_raw++] = (str_view_t){(const char *)d, n};
            break;
        default:
            break;
        }
    }
    return HLT_OK;
malformed:
    st = bad(err, errlen, "malformed ModelInferRequest: not a valid protobuf message");
fail:
    infer_request_msg_free(msg);
    return st;
}

/* Converts typed contents to little-endian bytes of dtype. Returns false if the arm for dtype
 * is absent while another arm is present (reported by the caller). */
static hlt_status convert_contents(const infer_input_t *in, str_view_t c, hlt_dtype dtype,
                                   void **out, size_t *out_size, const char *model, char *err,
                                   size_t errlen)
{
    /* InferTensorContents arms: 1 bool, 2 int32, 3 int64, 4 uint32, 5 uint64, 6 fp32,
     * 7 fp64, 8 bytes. */
    uint32_t want;
    switch (dtype) {
    case HLT_TYPE_BOOL:
        want = 1;
        break;
    case HLT_TYPE_INT8:
    case HLT_TYPE_INT16:
    case HLT_TYPE_INT32:
        want = 2;
        break;
    case HLT_TYPE_INT64:
        want = 3;
        break;
    case HLT_TYPE_UINT8:
    case HLT_TYPE_UINT16:
    case HLT_TYPE_UINT32:
        want = 4;
        break;
    case HLT_TYPE_UINT64:
        want = 5;
        break;
    case HLT_TYPE_FP32:
        want = 6;
        break;
    case HLT_TYPE_FP64:
        want = 7;
        break;
    default:
        return bad(err, errlen,
                   "model '%s': input '%.*s': datatype %s cannot be sent as typed contents; use "
                   "raw_input_contents",
                   model, (int)in->name.len, in->name.p, hlt_dtype_name(dtype));
    }
    size_t esize = hlt_dtype_size(dtype);
    /* Count elements first (packed or unpacked encodings may both appear). */
    size_t count = 0;
    pb_reader_t r = {(const uint8_t *)c.p, (const uint8_t *)c.p + c.len};
    for (int pass = 0; pass < 2; pass++) {
        uint8_t *dst = pass ? *out : NULL;
        r.p = (const uint8_t *)c.p;
        size_t k = 0;
        while (r.p < r.end) {
            uint32_t f, wt;
            if (!pb_read_key(&r, &f, &wt))
                goto malformed;
            if (f != want) {
                if (f >= 1 && f <= 8)
                    return bad(err, errlen,
                               "model '%s': input '%.*s': typed contents do not match datatype "
                               "%s",
                               model, (int)in->name.len, in->name.p, hlt_dtype_name(dtype));
                if (!pb_skip(&r, wt))
                    goto malformed;
                continue;
            }
            const uint8_t *d = r.p, *e = r.p;
            size_t n;
            bool packed = wt == PB_LEN;
            if (packed) {
                if (!pb_read_len(&r, &d, &n))
                    goto malformed;
                e = d + n;
            }
            pb_reader_t v = packed ? (pb_reader_t){d, e} : r;
            if (packed && d == e)
                continue; /* an empty packed field holds no elements */
            do {
                uint8_t tmp[8];
                if (want == 6 || want == 7) { /* fixed32 / fixed64 */
                    size_t w = want == 6 ? 4 : 8;
                    if ((size_t)(v.end - v.p) < w ||
                        (!packed && wt != (want == 6 ? PB_I32 : PB_I64)))
                        goto malformed;
                    memcpy(tmp, v.p, w);
                    v.p += w;
                } else {
                    uint64_t x;
                    if (!pb_read_varint(&v, &x) || (!packed && wt != PB_VARINT))
                        goto malformed;
                    for (size_t b = 0; b < 8; b++)
                        tmp[b] = (uint8_t)(x >> (8 * b)); /* narrowing keeps the low bytes */
                }
                if (dst)
                    memcpy(dst + k * esize, tmp, esize);
                k++;
            } while (packed && v.p < v.end);
            if (!packed)
                r.p = v.p;
        }
        if (!pass) {
            count = k;
            *out_size = count * esize;
            *out = malloc(*out_size ? *out_size : 1);
            if (!*out)
                return HLT_RESOURCE_EXHAUSTED;
        }
    }
    return HLT_OK;
malformed:
    return bad(err, errlen, "model '%s': input '%.*s': malformed typed contents", model,
               (int)in->name.len, in->name.p);
}

hlt_status infer_request_resolve_data(infer_request_msg_t *msg, const hlt_dtype *dtypes,
                                      const char *model, char *err, size_t errlen)
{
    size_t raw_idx = 0;
    for (size_t i = 0; i < msg->n_inputs; i++) {
        infer_input_t *in = &msg->inputs[i];
        if (in->shm)
            return bad(err, errlen,
                       "model '%s': input '%.*s': shared memory is not supported by this server",
                       model, (int)in->name.len, in->name.p);
        if (in->has_contents) {
            if (msg->n_raw)
                return bad(err, errlen,
                           "model '%s': input '%.*s': contents must not be given when "
                           "raw_input_contents is used",
                           model, (int)in->name.len, in->name.p);
            free(in->owned); /* resolving again (after a reload) starts afresh */
            in->owned = NULL;
            hlt_status st = convert_contents(in, msg->contents[i], dtypes[i], &in->owned, &in->size,
                                             model, err, errlen);
            if (st)
                return st;
            in->data = in->owned;
            continue;
        }
        if (raw_idx >= msg->n_raw)
            return bad(err, errlen,
                       "model '%s': input '%.*s': no data (neither contents nor a "
                       "raw_input_contents entry)",
                       model, (int)in->name.len, in->name.p);
        in->data = (const uint8_t *)msg->raw[raw_idx].p;
        in->size = msg->raw[raw_idx].len;
        raw_idx++;
    }
    if (raw_idx != msg->n_raw)
        return bad(err, errlen,
                   "model '%s': request has %zu raw_input_contents entries for %zu inputs", model,
                   msg->n_raw, raw_idx);
    return HLT_OK;
}

void infer_request_msg_free(infer_request_msg_t *msg)
{
    for (size_t i = 0; msg->inputs && i < msg->n_inputs; i++)
        free(msg->inputs[i].owned);
    free(msg->inputs); /* one block holds every array */
    memset(msg, 0, sizeof *msg);
}

/* ---- response ---- */

static size_t output_tensor_size(const infer_output_desc_t *o)
{
    size_t shape = 0;
    for (int32_t d = 0; d < o->rank; d++)
        shape += pb_varint_size((uint64_t)o->shape[d]);
    const char *dt = hlt_dtype_name(o->dtype);
    return pb_len_field_size(strlen(o->name)) + pb_len_field_size(strlen(dt)) +
           (o->rank ? pb_len_field_size(shape) : 0);
}

size_t infer_response_size(const char *model_name, const char *version, str_view_t id,
                           const infer_output_desc_t *outs, size_t n)
{
    size_t s = pb_len_field_size(strlen(model_name)) + pb_len_field_size(strlen(version));
    if (id.len)
        s += pb_len_field_size(id.len);
    for (size_t i = 0; i < n; i++)
        s += pb_len_field_size(output_tensor_size(&outs[i])) + pb_len_field_size(outs[i].size);
    return s;
}

static uint8_t *put_str(uint8_t *p, uint32_t field, const char *s, size_t len)
{
    p = pb_put_len_header(p, field, len);
    memcpy(p, s, len);
    return p + len;
}

void infer_response_write(uint8_t *buf, const char *model_name, const char *version, str_view_t id,
                          const infer_output_desc_t *outs, size_t n, uint8_t **payload)
{
    uint8_t *p = buf;
    p = put_str(p, 1, model_name, strlen(model_name));
    p = put_str(p, 2, version, strlen(version));
    if (id.len)
        p = put_str(p, 3, id.p, id.len);
    for (size_t i = 0; i < n; i++) {
        const infer_output_desc_t *o = &outs[i];
        p = pb_put_len_header(p, 5, output_tensor_size(o));
        p = put_str(p, 1, o->name, strlen(o->name));
        const char *dt = hlt_dtype_name(o->dtype);
        p = put_str(p, 2, dt, strlen(dt));
        if (o->rank) {
            size_t shape = 0;
            for (int32_t d = 0; d < o->rank; d++)
                shape += pb_varint_size((uint64_t)o->shape[d]);
            p = pb_put_len_header(p, 3, shape);
            for (int32_t d = 0; d < o->rank; d++)
                p = pb_put_varint(p, (uint64_t)o->shape[d]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        p = pb_put_len_header(p, 6, outs[i].size);
        payload[i] = p;
        p += outs[i].size;
    }
}
