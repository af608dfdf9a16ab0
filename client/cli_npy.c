/* .npy reading and writing (see cli_npy.h). Format: "\x93NUMPY", major, minor, header length
 * (uint16 LE for 1.x, uint32 LE for 2.x / 3.x), then a Python dict literal padded with spaces
 * and ended by '\n', then the raw array bytes. */
#include "cli_npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const struct {
    const char *descr;
    hlt_dtype dtype;
} descrs[] = {
    {"<f4", HLT_TYPE_FP32},   {"<f8", HLT_TYPE_FP64},   {"<f2", HLT_TYPE_FP16},
    {"|i1", HLT_TYPE_INT8},   {"<i2", HLT_TYPE_INT16},  {"<i4", HLT_TYPE_INT32},
    {"<i8", HLT_TYPE_INT64},  {"|u1", HLT_TYPE_UINT8},  {"<u2", HLT_TYPE_UINT16},
    {"<u4", HLT_TYPE_UINT32}, {"<u8", HLT_TYPE_UINT64}, {"|b1", HLT_TYPE_BOOL},
};

const char *npy_descr(hlt_dtype t)
{
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (descrs[i].dtype == t)
            return descrs[i].descr;
    return NULL;
}

/* Accepts '<', '|' and '=' (native, little-endian on every platform we build for) as
 * byte-order marks; one-byte types carry any of them. */
static hlt_dtype dtype_from_descr(const char *d, size_t n)
{
    if (n != 3 || (d[0] != '<' && d[0] != '|' && d[0] != '='))
        return HLT_TYPE_INVALID;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (memcmp(descrs[i].descr + 1, d + 1, 2) == 0)
            return descrs[i].dtype;
    return HLT_TYPE_INVALID;
}

typedef struct cursor {
    const char *p, *end;
} cursor_t;

static void skip_ws(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool eat(cursor_t *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A Python string literal in single or double quotes (no escapes occur in .npy headers). */
static bool read_quoted(cursor_t *c, const char **s, size_t *n)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return false;
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q)
        c->p++;
    if (c->p >= c->end)
        return false;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return true;
}

static bool read_word(cursor_t *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return true;
    }
    return false;
}

static bool read_shape(cursor_t *c, npy_array_t *a)
{
    if (!eat(c, '('))
        return false;
    a->rank = 0;
    for (;;) {
        if (eat(c, ')'))
            return true;
        skip_ws(c);
        int64_t v = 0;
        const char *start = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') /* Python 2 longs */
            c->p++;
        if (c->p == start || a->rank == NPY_MAX_RANK)
            return false;
        a->shape[a->rank++] = v;
        if (!eat(c, ',')) {
            if (!eat(c, ')'))
                return false;
            return true;
        }
    }
}

hlt_status npy_parse(const uint8_t *buf, size_t len, npy_array_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return fail(HLT_INVALID_ARGUMENT, err, errlen, "not a .npy file (bad magic)");
    uint8_t major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return fail(HLT_INVALID_ARGUMENT, err, errlen, "truncated .npy header");
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        return fail(HLT_INVALID_ARGUMENT, err, errlen, ".npy format version %u.%u is not supported",
                    major, buf[7]);
    }
    if (hlen > len - hstart)
        return fail(HLT_INVALID_ARGUMENT, err, errlen, "truncated .npy header");
    cursor_t c = {(const char *)buf + hstart, (const char *)buf + hstart + hlen};
    const char *descr = NULL;
    size_t descr_len = 0;
    bool have_shape = false, fortran = false;
    if (!eat(&c, '{'))
        goto malformed;
    while (!eat(&c, '}')) {
        const char *key;
        size_t kn;
        if (!read_quoted(&c, &key, &kn) || !eat(&c, ':'))
            goto malformed;
        if (kn == 5 && memcmp(key, "descr", 5) == 0) {
            if (!read_quoted(&c, &descr, &descr_len))
                return fail(HLT_INVALID_ARGUMENT, err, errlen,
                            ".npy structured dtypes are not supported");
        } else if (kn == 13 && memcmp(key, "fortran_order", 13) == 0) {
            if (read_word(&c, "True"))
                fortran = true;
            else if (!read_word(&c, "False"))
                goto malformed;
        } else if (kn == 5 && memcmp(key, "shape", 5) == 0) {
            if (!read_shape(&c, out))
                goto malformed;
            have_shape = true;
        } else {
            goto malformed;
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                goto malformed;
            break;
        }
    }
    if (!descr || !have_shape)
        goto malformed;
    if (fortran)
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    ".npy arrays in Fortran order are not supported (save a C-contiguous array)");
    out->dtype = dtype_from_descr(descr, descr_len);
    if (out->dtype == HLT_TYPE_INVALID) {
        if (descr_len && descr[0] == '>')
            return fail(HLT_INVALID_ARGUMENT, err, errlen,
                        "big-endian .npy data ('%.*s') is not supported; the protocol is "
                        "little-endian",
                        (int)descr_len, descr);
        return fail(HLT_INVALID_ARGUMENT, err, errlen, ".npy dtype '%.*s' is not supported",
                    (int)descr_len, descr);
    }
    size_t need = hlt_dtype_size(out->dtype);
    for (size_t d = 0; d < out->rank; d++)
        if (__builtin_mul_overflow(need, (size_t)out->shape[d], &need))
            return fail(HLT_INVALID_ARGUMENT, err, errlen, ".npy shape is too large");
    size_t have = len - hstart - hlen;
    if (have < need)
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    ".npy data section has %zu bytes, its shape needs %zu", have, need);
    out->data = buf + hstart + hlen;
    out->size = need;
    return HLT_OK;
malformed:
    return fail(HLT_INVALID_ARGUMENT, err, errlen, "malformed .npy header");
}

hlt_status npy_write(const char *path, hlt_dtype dtype, size_t rank, const int64_t *shape,
                     const void *data, size_t size, char *err, size_t errlen)
{
    const char *descr = npy_descr(dtype);
    if (!descr)
        return fail(HLT_INVALID_ARGUMENT, err, errlen, "datatype %s cannot be stored in .npy",
                    hlt_dtype_name(dtype) ? hlt_dtype_name(dtype) : "INVALID");
    size_t need = hlt_dtype_size(dtype);
    for (size_t d = 0; d < rank; d++)
        need *= (size_t)shape[d];
    if (need != size || rank > NPY_MAX_RANK)
        return fail(HLT_INVALID_ARGUMENT, err, errlen,
                    "%zu bytes do not match the shape of the array to write", size);
    char dict[512];
    int n =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (size_t d = 0; d < rank; d++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", d ? ", " : "",
                      (long long)shape[d]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", rank == 1 ? "," : "");
    size_t total = 10 + (size_t)n + 1; /* + '\n' */
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)n + pad + 1;
    uint8_t head[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f)
        return fail(HLT_UNKNOWN, err, errlen, "cannot write %s: %s", path, strerror(errno));
    bool ok = fwrite(head, 1, sizeof head, f) == sizeof head &&
              fwrite(dict, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && (size == 0 || fwrite(data, 1, size, f) == size);
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        return fail(HLT_UNKNOWN, err, errlen, "cannot write %s: %s", path, strerror(errno));
    return HLT_OK;
}
