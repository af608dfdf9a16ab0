/* fixed_point: float32 <-> Vivado/Vitis HLS arbitrary-precision fixed point (ap_fixed<W,I,Q,O>,
 * ap_ufixed, ap_int, ap_uint) as hls4ml declares its kernel I/O, and packing of W-bit values
 * into 512-bit bus words (the m_axi width of an Alveo kernel).
 *
 * Semantics follow the HLS types: a value of ap_fixed<W,I> is an integer code q of W bits (two's
 * complement when signed) times 2^-(W-I); I may be larger than W or negative. Quantisation mode
 * Q decides how bits below 2^-(W-I) are dropped, overflow mode O what happens outside the range:
 *   AP_TRN (floor, the default)   AP_TRN_ZERO (toward zero)   AP_RND (half toward +inf)
 *   AP_RND_ZERO (half toward 0)   AP_RND_MIN_INF (half toward -inf)
 *   AP_RND_INF (half away from 0) AP_RND_CONV (half to even)
 *   AP_WRAP (keep the low W bits, the default)   AP_SAT (clamp)   AP_SAT_ZERO (0 on overflow)
 *   AP_SAT_SYM (clamp to +-max, signed only)
 * Rounding happens before the overflow check, as in HLS. Values the HLS types cannot express
 * from a float: NaN becomes 0, +-Inf the largest/smallest code in every overflow mode.
 * Dequantisation is exact when W <= 24; wider codes round to the nearest float.
 *
 * Bus layouts. Row: a row (one sample of one tensor) starts on a new 64-byte word; value j of
 * the row sits in word j / vpw, lane j % vpw, at bits [lane*W, lane*W + W) of the
 * little-endian word; unused lanes are zero. Stream ("dense"): the values of consecutive rows
 * follow each other, value g in word g / vpw, lane g % vpw. FaaST's FACILE kernel reads its
 * input in the row layout (one 512-bit word per channel, 16-bit lanes) and writes its output
 * as a stream (32 one-value rows per word).
 *
 * Pure functions, no state: thread-safe. Called by the XRT backend (xrt_backend.c) per batch. */
#ifndef HLT_FIXED_POINT_H
#define HLT_FIXED_POINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FXP_BUS_BYTES 64 /* one 512-bit bus word */

typedef enum fxp_round {
    FXP_TRN,
    FXP_TRN_ZERO,
    FXP_RND,
    FXP_RND_ZERO,
    FXP_RND_MIN_INF,
    FXP_RND_INF,
    FXP_RND_CONV,
} fxp_round;

typedef enum fxp_overflow {
    FXP_WRAP,
    FXP_SAT,
    FXP_SAT_ZERO,
    FXP_SAT_SYM,
} fxp_overflow;

typedef struct fxp_format {
    bool is_float;  /* "float32": IEEE bits on the bus, no conversion */
    bool is_signed; /* ap_fixed / ap_int */
    int width;      /* W, 1..32 (32 for float32) */
    int int_bits;   /* I */
    fxp_round round;
    fxp_overflow overflow;
} fxp_format_t;

/* Parses "float32", "ap_fixed<W,I[,Q[,O[,N]]]>", "ap_ufixed<...>", "ap_int<W>", "ap_uint<W>"
 * (spaces allowed; N, the saturation bit count, must be 0). 0 on success; -1 with a message in
 * err otherwise. W must be 1..32 and W-I within -64..64. */
int fxp_parse(const char *s, fxp_format_t *out, char *err, size_t errlen);
/* Writes the canonical spelling of f ("ap_fixed<16,6,AP_RND,AP_SAT>") into buf. */
void fxp_format_name(const fxp_format_t *f, char *buf, size_t len);

/* Smallest and largest code values (as signed integers) and the value of one code step. */
int64_t fxp_min_code(const fxp_format_t *f);
int64_t fxp_max_code(const fxp_format_t *f);

/* n floats -> n codes (low W bits of each uint32; the upper bits are zero). */
void fxp_quantize(const fxp_format_t *f, const float *in, uint32_t *codes, size_t n);
/* n codes (low W bits used) -> n floats. */
void fxp_dequantize(const fxp_format_t *f, const uint32_t *codes, float *out, size_t n);

/* Default lanes per bus word for f: 512 / W. */
unsigned fxp_default_lanes(const fxp_format_t *f);
/* Bytes one row of per_row values takes on the bus with vpw lanes per word. */
size_t fxp_row_bytes(size_t per_row, unsigned vpw);

/* Quantises rows x per_row floats and packs them row by row into bus (rows *
 * fxp_row_bytes(per_row, vpw) bytes, all written, padding zeroed). scratch holds scratch_len
 * >= per_row codes (more lets more rows be quantised per pass). 1 <= vpw, vpw * W <= 512. */
void fxp_pack_rows(const fxp_format_t *f, unsigned vpw, const float *in, size_t rows,
                   size_t per_row, void *bus, uint32_t *scratch, size_t scratch_len);
/* The inverse: unpacks rows rows from bus and dequantises them into out. */
void fxp_unpack_rows(const fxp_format_t *f, unsigned vpw, const void *bus, size_t rows,
                     size_t per_row, float *out, uint32_t *scratch, size_t scratch_len);

/* Quantises n floats and packs them as one stream into bus (fxp_row_bytes(n, vpw) bytes, all
 * written). scratch holds scratch_len >= vpw codes. */
void fxp_pack_stream(const fxp_format_t *f, unsigned vpw, const float *in, size_t n, void *bus,
                     uint32_t *scratch, size_t scratch_len);
/* The inverse: n values from the stream in bus into out. */
void fxp_unpack_stream(const fxp_format_t *f, unsigned vpw, const void *bus, size_t n, float *out,
                       uint32_t *scratch, size_t scratch_len);

#endif
