/* Bounds-checked protobuf wire readers (see wire.h for why they exist). */
#include "wire.h"

bool wire_read_varint(wire_reader_t *r, uint64_t *v)
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

bool wire_read_key(wire_reader_t *r, uint32_t *field, uint32_t *wtype)
{
    uint64_t k;
    if (!wire_read_varint(r, &k) || (k >> 3) == 0 || (k >> 3) > 0x1fffffff)
        return false;
    *field = (uint32_t)(k >> 3);
    *wtype = (uint32_t)(k & 7);
    return true;
}

bool wire_read_len(wire_reader_t *r, const uint8_t **data, size_t *len)
{
    uint64_t n;
    if (!wire_read_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return false;
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return true;
}

bool wire_skip(wire_reader_t *r, uint32_t wtype)
{
    uint64_t v;
    const uint8_t *d;
    size_t n;
    switch (wtype) {
    case WIRE_VARINT:
        return wire_read_varint(r, &v);
    case WIRE_I64:
        if (r->end - r->p < 8)
            return false;
        r->p += 8;
        return true;
    case WIRE_LEN:
        return wire_read_len(r, &d, &n);
    case WIRE_I32:
        if (r->end - r->p < 4)
            return false;
        r->p += 4;
        return true;
    default:
        return false;
    }
}
