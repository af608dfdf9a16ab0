/* pbwire: protobuf wire-format primitives for the hand-written ModelInfer codecs of the server
 * (server/infer_codec.c) and of libhltinfer (client/infer_wire.c).
 *
 * protobuf-c copies every `bytes` field on unpack and packs through an intermediate buffer, so
 * the tensor-carrying messages are read and written by hand with these helpers: tensor bytes
 * stay where gRPC received them and outputs are written once, into the reply. Header-only
 * (static inline), so libhltinfer does not link server code: size functions and writers for
 * encoding into a buffer sized in advance, and bounds-checked readers that return false on
 * malformed input and never read outside [p, end). Nothing here aborts. */
#ifndef HLT_PBWIRE_H
#define HLT_PBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

typedef struct pb_reader {
    const uint8_t *p, *end;
} pb_reader_t;

static inline bool pb_read_varint(pb_reader_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return false;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static inline bool pb_read_key(pb_reader_t *r, uint32_t *field, uint32_t *wtype)
{
    uint64_t k;
    if (!pb_read_varint(r, &k) || (k >> 3) == 0 || (k >> 3) > 0x1fffffff)
        return false;
    *field = (uint32_t)(k >> 3);
    *wtype = (uint32_t)(k & 7);
    return true;
}

/* Length-delimited payload; *data borrows from the reader's buffer. */
static inline bool pb_read_len(pb_reader_t *r, const uint8_t **data, size_t *len)
{
    uint64_t n;
    if (!pb_read_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return false;
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return true;
}

static inline bool pb_skip(pb_reader_t *r, uint32_t wtype)
{
    uint64_t v;
    const uint8_t *d;
    size_t n;
    switch (wtype) {
    case PB_VARINT:
        return pb_read_varint(r, &v);
    case PB_I64:
        if (r->end - r->p < 8)
            return false;
        r->p += 8;
        return true;
    case PB_LEN:
        return pb_read_len(r, &d, &n);
    case PB_I32:
        if (r->end - r->p < 4)
            return false;
        r->p += 4;
        return true;
    default:
        return false;
    }
}

static inline size_t pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Key + length + payload of a length-delimited field numbered below 16. */
static inline size_t pb_len_field_size(size_t len)
{
    return 1 + pb_varint_size(len) + len;
}

static inline uint8_t *pb_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *pb_put_key(uint8_t *p, uint32_t field, uint32_t wtype)
{
    return pb_put_varint(p, ((uint64_t)field << 3) | wtype);
}

static inline uint8_t *pb_put_len_header(uint8_t *p, uint32_t field, size_t len)
{
    return pb_put_varint(pb_put_key(p, field, PB_LEN), len);
}

static inline uint8_t *pb_put_bytes(uint8_t *p, uint32_t field, const void *data, size_t len)
{
    p = pb_put_len_header(p, field, len);
    if (len)
        memcpy(p, data, len);
    return p + len;
}

#endif
