/* Tests for common/pbwire.h: the bounds-checked protobuf wire primitives under the hand-written
 * ModelInfer codecs (server and libhltinfer). Every reader must reject malformed or truncated
 * input without reading past the end of its buffer (the ASan build checks the latter: buffers are heap copies of exactly
 * the bytes under test). */
#include "pbwire.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Heap copy of exactly n bytes, so that ASan catches a read one past the end. */
static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    cr_assert_not_null(b);
    if (n)
        memcpy(b, p, n);
    return b;
}

static void check_varint_round_trip(uint64_t v, size_t want_size)
{
    uint8_t buf[16];
    cr_assert_eq(pb_varint_size(v), want_size, "size of %llu", (unsigned long long)v);
    uint8_t *end = pb_put_varint(buf, v);
    cr_assert_eq((size_t)(end - buf), want_size, "bytes written for %llu", (unsigned long long)v);
    uint8_t *copy = dup_bytes(buf, want_size);
    pb_reader_t r = {copy, copy + want_size};
    uint64_t got = ~v;
    cr_assert(pb_read_varint(&r, &got), "reading back %llu", (unsigned long long)v);
    cr_assert_eq(got, v);
    cr_assert_eq(r.p, r.end, "the reader must consume exactly the varint");
    free(copy);
}

Test(wire, varint_round_trips_boundary_values)
{
    check_varint_round_trip(0, 1);
    check_varint_round_trip(1, 1);
    check_varint_round_trip(127, 1);
    check_varint_round_trip(128, 2);
    check_varint_round_trip(300, 2);
    check_varint_round_trip(16383, 2);
    check_varint_round_trip(16384, 3);
    check_varint_round_trip(UINT32_MAX, 5);
    check_varint_round_trip((uint64_t)1 << 63, 10);
    check_varint_round_trip(UINT64_MAX, 10);
    check_varint_round_trip((uint64_t)(int64_t)-1, 10); /* negative int64 fields */
}

Test(wire, varint_encodings_match_protobuf)
{
    uint8_t buf[16];
    cr_assert_eq(pb_put_varint(buf, 0) - buf, 1);
    cr_assert_eq(buf[0], 0x00);
    pb_put_varint(buf, 127);
    cr_assert_eq(buf[0], 0x7f);
    pb_put_varint(buf, 128);
    cr_assert_eq(buf[0], 0x80);
    cr_assert_eq(buf[1], 0x01);
    pb_put_varint(buf, 300);
    cr_assert_eq(buf[0], 0xac);
    cr_assert_eq(buf[1], 0x02);
}

Test(wire, varint_reader_advances_over_consecutive_values)
{
    const uint8_t bytes[] = {0x01, 0x80, 0x01, 0x7f};
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    pb_reader_t r = {b, b + sizeof bytes};
    uint64_t v;
    cr_assert(pb_read_varint(&r, &v));
    cr_assert_eq(v, 1);
    cr_assert(pb_read_varint(&r, &v));
    cr_assert_eq(v, 128);
    cr_assert(pb_read_varint(&r, &v));
    cr_assert_eq(v, 127);
    cr_assert_not(pb_read_varint(&r, &v), "no bytes left");
    free(b);
}

Test(wire, truncated_varint_is_rejected)
{
    const uint8_t bytes[] = {0x80, 0x80, 0x80};
    for (size_t n = 0; n <= sizeof bytes; n++) {
        uint8_t *b = dup_bytes(bytes, n);
        pb_reader_t r = {b, b + n};
        uint64_t v;
        cr_assert_not(pb_read_varint(&r, &v), "a varint cut after %zu bytes", n);
        free(b);
    }
}

Test(wire, overlong_varint_is_rejected)
{
    /* Eleven bytes with the continuation bit: longer than any 64-bit varint. */
    uint8_t bytes[11];
    memset(bytes, 0x80, 10);
    bytes[10] = 0x01;
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    pb_reader_t r = {b, b + sizeof bytes};
    uint64_t v;
    cr_assert_not(pb_read_varint(&r, &v));
    free(b);
}

Test(wire, key_parses_field_and_wire_type)
{
    uint8_t buf[16];
    uint8_t *end = pb_put_key(buf, 7, PB_LEN);
    cr_assert_eq(end - buf, 1);
    cr_assert_eq(buf[0], (7 << 3) | 2);
    end = pb_put_key(end, 0x1fffffff, PB_I32); /* the largest field number */
    size_t n = (size_t)(end - buf);
    uint8_t *b = dup_bytes(buf, n);
    pb_reader_t r = {b, b + n};
    uint32_t f, wt;
    cr_assert(pb_read_key(&r, &f, &wt));
    cr_assert_eq(f, 7);
    cr_assert_eq(wt, PB_LEN);
    cr_assert(pb_read_key(&r, &f, &wt));
    cr_assert_eq(f, 0x1fffffff);
    cr_assert_eq(wt, PB_I32);
    cr_assert_eq(r.p, r.end);
    free(b);
}

Test(wire, key_with_field_zero_is_rejected)
{
    const uint8_t bytes[] = {0x00 << 3 | PB_VARINT, 0x01};
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    pb_reader_t r = {b, b + sizeof bytes};
    uint32_t f, wt;
    cr_assert_not(pb_read_key(&r, &f, &wt));
    free(b);
}

Test(wire, key_with_field_number_too_large_is_rejected)
{
    uint8_t buf[16];
    uint8_t *end = pb_put_varint(buf, ((uint64_t)0x20000000 << 3) | PB_VARINT);
    size_t n = (size_t)(end - buf);
    uint8_t *b = dup_bytes(buf, n);
    pb_reader_t r = {b, b + n};
    uint32_t f, wt;
    cr_assert_not(pb_read_key(&r, &f, &wt));
    free(b);
}

Test(wire, truncated_key_is_rejected)
{
    const uint8_t bytes[] = {0x80};
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    pb_reader_t r = {b, b + sizeof bytes};
    uint32_t f, wt;
    cr_assert_not(pb_read_key(&r, &f, &wt));
    free(b);
}

Test(wire, len_field_borrows_payload_from_buffer)
{
    uint8_t buf[32];
    uint8_t *p = pb_put_len_header(buf, 3, 5);
    memcpy(p, "hello", 5);
    p += 5;
    size_t n = (size_t)(p - buf);
    cr_assert_eq(n, pb_len_field_size(5));
    uint8_t *b = dup_bytes(buf, n);
    pb_reader_t r = {b, b + n};
    uint32_t f, wt;
    cr_assert(pb_read_key(&r, &f, &wt));
    cr_assert_eq(f, 3);
    cr_assert_eq(wt, PB_LEN);
    const uint8_t *d;
    size_t len;
    cr_assert(pb_read_len(&r, &d, &len));
    cr_assert_eq(len, 5);
    cr_assert_eq(d, b + 2, "the payload is a view into the buffer, not a copy");
    cr_assert_eq(memcmp(d, "hello", 5), 0);
    cr_assert_eq(r.p, r.end);
    free(b);
}

Test(wire, empty_len_field_is_accepted)
{
    const uint8_t bytes[] = {0x00};
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    pb_reader_t r = {b, b + sizeof bytes};
    const uint8_t *d = NULL;
    size_t len = 99;
    cr_assert(pb_read_len(&r, &d, &len));
    cr_assert_eq(len, 0);
    cr_assert_eq(r.p, r.end);
    free(b);
}

Test(wire, len_beyond_buffer_is_rejected)
{
    /* Length 5 but only 4 payload bytes. */
    const uint8_t bytes[] = {0x05, 'a', 'b', 'c', 'd'};
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    pb_reader_t r = {b, b + sizeof bytes};
    const uint8_t *d;
    size_t len;
    cr_assert_not(pb_read_len(&r, &d, &len));
    free(b);
}

Test(wire, huge_len_is_rejected_without_overflow)
{
    /* A length near 2^64 must not wrap the pointer arithmetic. */
    uint8_t buf[16];
    uint8_t *end = pb_put_varint(buf, UINT64_MAX - 1);
    *end++ = 'x';
    size_t n = (size_t)(end - buf);
    uint8_t *b = dup_bytes(buf, n);
    pb_reader_t r = {b, b + n};
    const uint8_t *d;
    size_t len;
    cr_assert_not(pb_read_len(&r, &d, &len));
    free(b);
}

Test(wire, len_with_truncated_length_is_rejected)
{
    const uint8_t bytes[] = {0x80};
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    pb_reader_t r = {b, b + sizeof bytes};
    const uint8_t *d;
    size_t len;
    cr_assert_not(pb_read_len(&r, &d, &len));
    free(b);
}

/* A message of one field of each wire type, then a sentinel varint field. */
Test(wire, skip_handles_every_wire_type)
{
    uint8_t buf[64], *p = buf;
    p = pb_put_key(p, 1, PB_VARINT);
    p = pb_put_varint(p, 1234567890123ull);
    p = pb_put_key(p, 2, PB_I64);
    memset(p, 0xab, 8);
    p += 8;
    p = pb_put_len_header(p, 3, 3);
    memcpy(p, "xyz", 3);
    p += 3;
    p = pb_put_key(p, 4, PB_I32);
    memset(p, 0xcd, 4);
    p += 4;
    p = pb_put_key(p, 5, PB_VARINT);
    p = pb_put_varint(p, 42);
    size_t n = (size_t)(p - buf);
    uint8_t *b = dup_bytes(buf, n);
    pb_reader_t r = {b, b + n};
    for (uint32_t want = 1; want <= 4; want++) {
        uint32_t f, wt;
        cr_assert(pb_read_key(&r, &f, &wt));
        cr_assert_eq(f, want);
        cr_assert(pb_skip(&r, wt), "skipping field %u (wire type %u)", f, wt);
    }
    uint32_t f, wt;
    uint64_t v;
    cr_assert(pb_read_key(&r, &f, &wt));
    cr_assert_eq(f, 5);
    cr_assert(pb_read_varint(&r, &v));
    cr_assert_eq(v, 42);
    cr_assert_eq(r.p, r.end);
    free(b);
}

Test(wire, skip_of_truncated_fixed_values_is_rejected)
{
    const uint8_t bytes[7] = {0};
    for (size_t n = 0; n < 8; n++) {
        uint8_t *b = dup_bytes(bytes, n < 7 ? n : 7);
        pb_reader_t r = {b, b + (n < 7 ? n : 7)};
        cr_assert_not(pb_skip(&r, PB_I64), "fixed64 with %zu bytes", n < 7 ? n : 7);
        free(b);
    }
    for (size_t n = 0; n < 4; n++) {
        uint8_t *b = dup_bytes(bytes, n);
        pb_reader_t r = {b, b + n};
        cr_assert_not(pb_skip(&r, PB_I32), "fixed32 with %zu bytes", n);
        free(b);
    }
}

Test(wire, skip_of_truncated_varint_and_len_is_rejected)
{
    const uint8_t v[] = {0xff};
    uint8_t *b = dup_bytes(v, sizeof v);
    pb_reader_t r = {b, b + sizeof v};
    cr_assert_not(pb_skip(&r, PB_VARINT));
    free(b);
    const uint8_t l[] = {0x03, 'a'};
    b = dup_bytes(l, sizeof l);
    r = (pb_reader_t){b, b + sizeof l};
    cr_assert_not(pb_skip(&r, PB_LEN));
    free(b);
}

Test(wire, skip_rejects_groups_and_unknown_wire_types)
{
    const uint8_t bytes[16] = {0};
    uint8_t *b = dup_bytes(bytes, sizeof bytes);
    for (uint32_t wt = 3; wt <= 7; wt++) {
        if (wt == PB_I32)
            continue;
        pb_reader_t r = {b, b + sizeof bytes};
        cr_assert_not(pb_skip(&r, wt), "wire type %u", wt);
    }
    free(b);
}

Test(wire, len_field_size_counts_key_length_and_payload)
{
    cr_assert_eq(pb_len_field_size(0), 2);
    cr_assert_eq(pb_len_field_size(127), 1 + 1 + 127);
    cr_assert_eq(pb_len_field_size(128), 1 + 2 + 128);
    cr_assert_eq(pb_len_field_size(1u << 20), 1 + 3 + (1u << 20));
}
