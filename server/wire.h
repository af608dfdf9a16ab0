/* wire: protobuf wire-format primitives for the hand-written ModelInfer codec.
 *
 * protobuf-c copies every `bytes` field on unpack and packs through an intermediate buffer;
 * the tensor-carrying messages are therefore read and written by hand with these helpers, so
 * tensor bytes stay where gRPC received them and outputs are written once, into the reply.
 * Every reader is bounds-checked and returns false on malformed input; nothing here aborts. */
#ifndef HLT_WIRE_H
#define HLT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

typedef struct wire_reader {
    const uint8_t *p, *end;
} wire_reader_t;

bool wire_read_varint(wire_reader_t *r, uint64_t *v);
/* Reads a field key; false at a malformed key. Sets *field and *wtype. */
bool wire_read_key(wire_reader_t *r, uint32_t *field, uint32_t *wtype);
/* Reads a length-delimited payload: *data borrows from the reader's buffer. */
bool wire_read_len(wire_reader_t *r, const uint8_t **data, size_t *len);
/* Skips a value of the given wire type (groups are rejected). */
bool wire_skip(wire_reader_t *r, uint32_t wtype);

/* Size of v as a varint. */
static inline size_t wire_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
/* Size of a length-delimited field (key + length + payload) for field numbers < 16. */
static inline size_t wire_len_field_size(size_t len)
{
    return 1 + wire_varint_size(len) + len;
}

/* Writers into a buffer the caller sized with the functions above; return the advanced
 * pointer. */
static inline uint8_t *wire_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}
static inline uint8_t *wire_put_key(uint8_t *p, uint32_t field, uint32_t wtype)
{
    return wire_put_varint(p, ((uint64_t)field << 3) | wtype);
}
/* Writes key + length of a length-delimited field; the caller writes the payload after. */
static inline uint8_t *wire_put_len_header(uint8_t *p, uint32_t field, size_t len)
{
    return wire_put_varint(wire_put_key(p, field, WIRE_LEN), len);
}

#endif
