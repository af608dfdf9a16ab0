/* fixed_point: float <-> ap_fixed codes and bus packing, checked against references written
 * here independently: quantisation with exact integer arithmetic (__int128 on the float's
 * mantissa and exponent), dequantisation with long double, packing bit by bit. */
#include "backend/xrt/fixed_point.h"

#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef __int128 i128;

static fxp_format_t fmt(const char *s)
{
    fxp_format_t f;
    char err[256];
    cr_assert_eq(fxp_parse(s, &f, err, sizeof err), 0, "%s: %s", s, err);
    return f;
}

/* ---- the reference ---- */

static i128 floor_div(i128 a, i128 d)
{
    i128 q = a / d;
    return (a % d < 0) ? q - 1 : q;
}

static uint32_t ref_quant(const fxp_format_t *f, float x)
{
    int w = f->width, F = f->width - f->int_bits;
    i128 lo = f->is_signed ? -((i128)1 << (w - 1)) : 0;
    i128 hi = f->is_signed ? ((i128)1 << (w - 1)) - 1 : ((i128)1 << w) - 1;
    if (f->overflow == FXP_SAT_SYM)
        lo = -hi;
    i128 mod = (i128)1 << w;
    if (isnan(x))
        return 0;
    if (isinf(x))
        return (uint32_t)((x > 0 ? hi : lo) & (mod - 1));
    if (x == 0)
        return 0;
    int e;
    float fr = frexpf(x, &e);
    i128 m = (i128)(int32_t)ldexpf(fr, 24); /* x = m * 2^(e-24), exactly */
    int s = e - 24 + F;                     /* t = x * 2^F = m * 2^s */
    i128 q = 0;
    bool huge = false;
    if (s >= 0) {
        if (s > 90)
            huge = true;
        else
            q = m * ((i128)1 << s);
    } else {
        int k = -s;
        if (k > 60) { /* |t| < 2^-36: only the sign matters for every mode */
            m = m < 0 ? -1 : 1;
            k = 60;
        }
        i128 den = (i128)1 << k, fl = floor_div(m, den), rem = m - fl * den, half = den / 2;
        int c = rem > half ? 1 : rem < half ? -1 : 0; /* fraction vs one half */
        switch (f->round) {
        case FXP_TRN:
            q = fl;
            break;
        case FXP_TRN_ZERO:
            q = (m < 0 && rem) ? fl + 1 : fl;
            break;
        case FXP_RND:
            q = c >= 0 ? fl + 1 : fl;
            break;
        case FXP_RND_MIN_INF:
            q = c > 0 ? fl + 1 : fl;
            break;
        case FXP_RND_ZERO:
            q = c > 0 ? fl + 1 : c < 0 ? fl : (m < 0 ? fl + 1 : fl);
            break;
        case FXP_RND_INF:
            q = c > 0 ? fl + 1 : c < 0 ? fl : (m < 0 ? fl : fl + 1);
            break;
        case FXP_RND_CONV:
            q = c > 0 ? fl + 1 : c < 0 ? fl : ((fl & 1) ? fl + 1 : fl);
            break;
        }
    }
    if (f->overflow == FXP_WRAP)
        return huge ? 0 : (uint32_t)(q & (mod - 1)); /* 2^90 * n mod 2^W = 0 */
    if (huge)
        q = m > 0 ? hi + 1 : lo - 1;
    if (q < lo || q > hi) {
        if (f->overflow == FXP_SAT_ZERO)
            return 0;
        q = q < lo ? lo : hi;
    }
    return (uint32_t)(q & (mod - 1));
}

static float ref_dequant(const fxp_format_t *f, uint32_t code)
{
    int w = f->width;
    long long v = code & (w == 32 ? 0xffffffffull : (1ull << w) - 1);
    if (f->is_signed && (v >> (w - 1)) & 1)
        v -= 1ll << w;
    return (float)ldexpl((long double)v, f->int_bits - f->width);
}

/* ---- inputs ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* In range, beyond the range, exact ties, tiny values, both signs. */
static void fill_values(const fxp_format_t *f, float *x, size_t n, bool specials)
{
    int F = f->width - f->int_bits;
    double step = ldexp(1.0, -F), range = ldexp(1.0, f->int_bits - (f->is_signed ? 1 : 0));
    for (size_t i = 0; i < n; i++) {
        double u = (double)(next() % 2000001) / 1e6 - 1.0; /* [-1, 1] */
        switch (next() % 6) {
        case 0:
            x[i] = (float)(u * range);
            break; /* in range */
        case 1:
            x[i] = (float)(u * range * 3);
            break; /* overflow */
        case 2:
            x[i] = (float)((floor(u * range / step) + 0.5) * step);
            break; /* a tie */
        case 3:
            x[i] = (float)(floor(u * range / step) * step);
            break; /* a code */
        case 4:
            x[i] = (float)(u * step * 2);
            break; /* tiny */
        default:
            x[i] = (float)((floor(u * 50) + 0.5) * step);
            break; /* small tie */
        }
        if (specials && next() % 16 == 0) {
            const float sp[] = {NAN,     INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e30f,   -1e30f,
                                FLT_MIN, -FLT_MIN, 1e-45f,    -1e-45f, -0.0f,    0x1p40f, -0x1p40f};
            x[i] = sp[next() % (sizeof sp / sizeof sp[0])];
        }
    }
}

static const char *const formats[] = {
    "ap_fixed<16,6>",  "ap_fixed<18,8>",  "ap_fixed<8,3>",    "ap_fixed<32,16>", "ap_ufixed<8,4>",
    "ap_fixed<12,-2>", "ap_fixed<10,14>", "ap_int<8>",        "ap_uint<16>",     "ap_ufixed<32,20>",
    "ap_fixed<1,1>",   "ap_fixed<24,1>",  "ap_fixed<32,-20>",
};
static const char *const rounds[] = {"AP_TRN",         "AP_TRN_ZERO", "AP_RND",     "AP_RND_ZERO",
                                     "AP_RND_MIN_INF", "AP_RND_INF",  "AP_RND_CONV"};
static const char *const ovfs[] = {"AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM"};

/* Every format x mode: the fast (in-range blocks) and exact (blocks with specials) paths. */
static void check_all(bool specials)
{
    enum { N = 3000 };
    float *x = malloc(N * sizeof *x);
    uint32_t *c = malloc(N * sizeof *c);
    for (size_t fi = 0; fi < sizeof formats / sizeof formats[0]; fi++)
        for (int r = 0; r < 7; r++)
            for (int o = 0; o < 4; o++) {
                char s[96], base[64];
                snprintf(base, sizeof base, "%s", formats[fi]);
                base[strcspn(base, ">")] = '\0';
                snprintf(s, sizeof s, "%s,%s,%s>", base, rounds[r], ovfs[o]);
                if (!strncmp(formats[fi], "ap_int", 6) || !strncmp(formats[fi], "ap_uint", 7)) {
                    int w = atoi(strchr(formats[fi], '<') + 1);
                    snprintf(s, sizeof s, "ap_%sfixed<%d,%d,%s,%s>",
                             formats[fi][3] == 'u' ? "u" : "", w, w, rounds[r], ovfs[o]);
                }
                if ((strstr(formats[fi], "ufixed") || strstr(formats[fi], "uint")) && o == 3)
                    continue; /* AP_SAT_SYM is signed only */
                fxp_format_t f = fmt(s);
                fill_values(&f, x, N, specials);
                fxp_quantize(&f, x, c, N);
                for (size_t i = 0; i < N; i++)
                    cr_assert_eq(c[i], ref_quant(&f, x[i]), "%s: x=%a: code 0x%x, reference 0x%x",
                                 s, (double)x[i], c[i], ref_quant(&f, x[i]));
            }
    free(x);
    free(c);
}

Test(fixed_point, quantize_matches_integer_reference_in_range)
{
    check_all(false);
}

Test(fixed_point, quantize_matches_integer_reference_with_nan_inf_and_huge_values)
{
    check_all(true);
}

Test(fixed_point, every_code_round_trips_exactly)
{
    const char *fs[] = {"ap_fixed<8,3>",   "ap_fixed<16,6>",  "ap_fixed<18,8>", "ap_ufixed<8,4>",
                        "ap_fixed<12,-2>", "ap_fixed<10,14>", "ap_fixed<1,1>"};
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++)
        for (int r = 0; r < 7; r++) {
            char s[80], base[64];
            snprintf(base, sizeof base, "%s", fs[k]);
            base[strcspn(base, ">")] = '\0';
            snprintf(s, sizeof s, "%s,%s,AP_SAT>", base, rounds[r]);
            fxp_format_t f = fmt(s);
            size_t n = (size_t)1 << f.width;
            uint32_t *c = malloc(n * sizeof *c), *back = malloc(n * sizeof *back);
            float *x = malloc(n * sizeof *x);
            for (size_t i = 0; i < n; i++)
                c[i] = (uint32_t)i;
            fxp_dequantize(&f, c, x, n);
            fxp_quantize(&f, x, back, n);
            for (size_t i = 0; i < n; i++) {
                cr_assert_eq(x[i], ref_dequant(&f, c[i]), "%s code %zu", s, i);
                cr_assert_eq(back[i], c[i], "%s: code 0x%zx -> %a -> 0x%x", s, i, (double)x[i],
                             back[i]);
            }
            free(c);
            free(back);
            free(x);
        }
}

Test(fixed_point, wide_codes_dequantize_to_the_nearest_float)
{
    fxp_format_t f = fmt("ap_fixed<32,16>");
    uint32_t c[4096];
    float x[4096];
    for (size_t i = 0; i < 4096; i++)
        c[i] = (uint32_t)next();
    c[0] = 0x7fffffff;
    c[1] = 0x80000000;
    c[2] = 0x00ffffff + 0x01000001; /* 25 significant bits: needs rounding */
    fxp_dequantize(&f, c, x, 4096);
    for (size_t i = 0; i < 4096; i++)
        cr_assert_eq(x[i], ref_dequant(&f, c[i]), "code 0x%x", c[i]);
    cr_assert_eq(x[0], 32768.0f); /* 32767.99998 rounds up to the next float */
    cr_assert_eq(x[1], -32768.0f);
}

static float q1(const char *s, float x) /* quantise then dequantise one value */
{
    fxp_format_t f = fmt(s);
    uint32_t c;
    float y;
    fxp_quantize(&f, &x, &c, 1);
    fxp_dequantize(&f, &c, &y, 1);
    return y;
}

Test(fixed_point, saturates_at_both_ends)
{
    cr_assert_eq(q1("ap_fixed<16,6,AP_RND,AP_SAT>", 32.5f), 32.0f - 1.0f / 1024);
    cr_assert_eq(q1("ap_fixed<16,6,AP_RND,AP_SAT>", 1e9f), 32.0f - 1.0f / 1024);
    cr_assert_eq(q1("ap_fixed<16,6,AP_RND,AP_SAT>", -40.0f), -32.0f);
    cr_assert_eq(q1("ap_fixed<16,6,AP_RND,AP_SAT>", -INFINITY), -32.0f);
    cr_assert_eq(q1("ap_fixed<16,6,AP_TRN,AP_SAT_SYM>", -40.0f), -32.0f + 1.0f / 1024);
    cr_assert_eq(q1("ap_fixed<16,6,AP_TRN,AP_SAT_ZERO>", 40.0f), 0.0f);
    cr_assert_eq(q1("ap_ufixed<8,4,AP_TRN,AP_SAT>", -1.0f), 0.0f);
    cr_assert_eq(q1("ap_ufixed<8,4,AP_TRN,AP_SAT>", 99.0f), 16.0f - 1.0f / 16);
    /* rounding up into overflow saturates too: 31.9995 rounds to 32 */
    cr_assert_eq(q1("ap_fixed<16,6,AP_RND,AP_SAT>", 31.9999f), 32.0f - 1.0f / 1024);
}

Test(fixed_point, wraps_around_modulo_two_to_the_w)
{
    cr_assert_eq(q1("ap_fixed<8,3>", 4.0f), -4.0f); /* AP_TRN, AP_WRAP by default */
    cr_assert_eq(q1("ap_fixed<8,3>", 5.5f), -2.5f);
    cr_assert_eq(q1("ap_fixed<8,3>", -4.03125f), 4.0f - 1.0f / 32);
    cr_assert_eq(q1("ap_ufixed<8,4>", -1.0f), 15.0f);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND,AP_WRAP>", 3.99f), -4.0f); /* rounds to 4, wraps */
    cr_assert_eq(q1("ap_fixed<8,3>", 0x1p40f), 0.0f);               /* multiple of 2^W */
    cr_assert_eq(q1("ap_fixed<8,3>", NAN), 0.0f);
}

Test(fixed_point, negative_values_truncate_toward_minus_infinity)
{
    cr_assert_eq(q1("ap_fixed<8,3,AP_TRN>", -0.01f), -1.0f / 32);
    cr_assert_eq(q1("ap_fixed<8,3,AP_TRN_ZERO>", -0.01f), 0.0f);
    cr_assert_eq(q1("ap_fixed<8,3,AP_TRN>", -1.0f / 32), -1.0f / 32);
    cr_assert_eq(q1("ap_fixed<16,6,AP_TRN>", -2.7f), -2.7001953125f);
}

Test(fixed_point, rounds_ties_as_each_mode_says)
{
    const float t = 1.0f / 64, t3 = 3.0f / 64; /* halfway between codes of <8,3> (step 1/32) */
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND>", t), 1.0f / 32); /* half toward +inf */
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND>", -t), 0.0f);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_ZERO>", t), 0.0f);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_ZERO>", -t), 0.0f);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_MIN_INF>", t), 0.0f);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_MIN_INF>", -t), -1.0f / 32);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_INF>", t), 1.0f / 32);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_INF>", -t), -1.0f / 32);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_CONV>", t), 0.0f); /* half to even */
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_CONV>", t3), 2.0f / 32);
    cr_assert_eq(q1("ap_fixed<8,3,AP_RND_CONV>", -t3), -2.0f / 32);
    cr_assert_eq(q1("ap_fixed<8,3,AP_TRN>", t3), 1.0f / 32);
    /* just off a tie: every round-to-nearest mode agrees */
    for (int r = 2; r < 7; r++) {
        char s[64];
        snprintf(s, sizeof s, "ap_fixed<8,3,%s>", rounds[r]);
        cr_assert_eq(q1(s, nextafterf(t, 1.0f)), 1.0f / 32, "%s", s);
        cr_assert_eq(q1(s, nextafterf(t, 0.0f)), 0.0f, "%s", s);
    }
}

/* ---- bus packing ---- */

static uint32_t ref_lane(const uint8_t *bus, size_t row_bytes, size_t row, size_t j, unsigned vpw,
                         int w)
{
    const uint8_t *word = bus + row * row_bytes + (j / vpw) * FXP_BUS_BYTES;
    size_t bit0 = (j % vpw) * (size_t)w;
    uint32_t v = 0;
    for (int b = 0; b < w; b++) {
        size_t bit = bit0 + (size_t)b;
        v |= (uint32_t)((word[bit / 8] >> (bit % 8)) & 1) << b;
    }
    return v;
}

static void check_packing(const char *s, unsigned vpw, size_t per_row, size_t rows)
{
    fxp_format_t f = fmt(s);
    size_t rb = fxp_row_bytes(per_row, vpw), n = rows * per_row;
    float *x = malloc(n * sizeof *x), *back = malloc(n * sizeof *back);
    uint32_t *codes = malloc(n * sizeof *codes), scratch[256];
    uint8_t *bus = malloc(rows * rb);
    memset(bus, 0xa5, rows * rb); /* the packer must write padding too */
    fill_values(&f, x, n, false);
    fxp_quantize(&f, x, codes, n);
    fxp_pack_rows(&f, vpw, x, rows, per_row, bus, scratch, 256);
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < per_row; j++)
            cr_assert_eq(ref_lane(bus, rb, r, j, vpw, f.width), codes[r * per_row + j],
                         "%s vpw=%u row %zu value %zu", s, vpw, r, j);
        /* bits past the last value of the row are zero */
        for (size_t bit = (per_row % vpw ? per_row % vpw : vpw) * (size_t)f.width;
             bit < FXP_BUS_BYTES * 8; bit++) {
            const uint8_t *last = bus + r * rb + rb - FXP_BUS_BYTES;
            cr_assert_eq((last[bit / 8] >> (bit % 8)) & 1, 0, "%s row %zu pad bit %zu", s, r, bit);
        }
        for (size_t wd = 0; wd + 1 < rb / FXP_BUS_BYTES; wd++)
            for (size_t bit = vpw * (size_t)f.width; bit < FXP_BUS_BYTES * 8; bit++) {
                const uint8_t *word = bus + r * rb + wd * FXP_BUS_BYTES;
                cr_assert_eq((word[bit / 8] >> (bit % 8)) & 1, 0, "%s unused lane bit", s);
            }
    }
    fxp_unpack_rows(&f, vpw, bus, rows, per_row, back, scratch, 256);
    for (size_t i = 0; i < n; i++)
        if (f.is_float)
            cr_assert_eq(memcmp(&back[i], &x[i], 4), 0, "%s value %zu", s, i);
        else
            cr_assert_eq(back[i], ref_dequant(&f, codes[i]), "%s value %zu", s, i);
    free(x);
    free(back);
    free(codes);
    free(bus);
}

Test(fixed_point, packs_lanes_little_endian_rows_on_word_boundaries)
{
    check_packing("ap_fixed<16,6,AP_RND,AP_SAT>", 32, 15, 9); /* FACILE: 15 of 32 lanes */
    check_packing("ap_fixed<16,6,AP_RND,AP_SAT>", 32, 64, 3); /* exactly two words */
    check_packing("ap_fixed<16,6,AP_RND,AP_SAT>", 15, 40, 5); /* fewer lanes than fit */
    check_packing("ap_fixed<18,8,AP_RND,AP_SAT>", 28, 57, 4); /* 18-bit lanes cross bytes */
    check_packing("ap_fixed<18,8,AP_RND,AP_SAT>", 5, 11, 3);
    check_packing("ap_fixed<8,3,AP_RND,AP_SAT>", 64, 100, 6);
    check_packing("ap_fixed<32,16,AP_RND,AP_SAT>", 16, 17, 5);
    check_packing("ap_fixed<7,2,AP_RND,AP_SAT>", 73, 80, 2); /* odd width, 511 bits used */
    check_packing("ap_ufixed<12,4,AP_TRN,AP_SAT>", 42, 90, 3);
    check_packing("float32", 16, 20, 3);
}

static void check_stream(const char *s, unsigned vpw, size_t n, size_t scratch_len)
{
    fxp_format_t f = fmt(s);
    size_t bytes = fxp_row_bytes(n, vpw);
    float *x = malloc(n * sizeof *x), *back = malloc(n * sizeof *back);
    uint32_t *codes = malloc(n * sizeof *codes), *scratch = malloc(scratch_len * 4);
    uint8_t *bus = malloc(bytes);
    memset(bus, 0x5a, bytes);
    fill_values(&f, x, n, true);
    fxp_quantize(&f, x, codes, n);
    fxp_pack_stream(&f, vpw, x, n, bus, scratch, scratch_len);
    for (size_t g = 0; g < n; g++) /* value g: word g / vpw, lane g % vpw */
        cr_assert_eq(ref_lane(bus, 0, 0, g, vpw, f.width), codes[g], "%s value %zu", s, g);
    for (size_t bit = (n % vpw ? n % vpw : vpw) * (size_t)f.width; bit < FXP_BUS_BYTES * 8; bit++)
        cr_assert_eq((bus[bytes - FXP_BUS_BYTES + bit / 8] >> (bit % 8)) & 1, 0, "%s tail", s);
    fxp_unpack_stream(&f, vpw, bus, n, back, scratch, scratch_len);
    for (size_t g = 0; g < n; g++)
        cr_assert_eq(back[g], ref_dequant(&f, codes[g]), "%s value %zu", s, g);
    free(x);
    free(back);
    free(codes);
    free(scratch);
    free(bus);
}

Test(fixed_point, packs_dense_streams_across_rows)
{
    check_stream("ap_fixed<16,6>", 32, 16384, 4096); /* FaaST's output: 32 rows a word */
    check_stream("ap_fixed<16,6>", 32, 1000, 40);    /* passes of one word */
    check_stream("ap_fixed<18,8,AP_RND,AP_SAT>", 28, 999, 300);
    check_stream("ap_fixed<8,3>", 64, 129, 64);
    check_stream("ap_ufixed<5,1>", 102, 1021, 4096);
}

Test(fixed_point, packs_the_facile_word_as_faast_does)
{
    fxp_format_t f = fmt("ap_fixed<16,6>");
    float x[2] = {1.0f, -1.0f};
    uint8_t bus[64];
    uint32_t scratch[2];
    fxp_pack_rows(&f, 32, x, 1, 2, bus, scratch, 2);
    /* 1.0 = 0x0400, -1.0 = 0xfc00, lane 0 in bytes 0-1, lane 1 in bytes 2-3 */
    const uint8_t want[4] = {0x00, 0x04, 0x00, 0xfc};
    cr_assert_arr_eq(bus, want, 4);
    for (int i = 4; i < 64; i++)
        cr_assert_eq(bus[i], 0);
    cr_assert_eq(fxp_row_bytes(15, 32), 64);
    cr_assert_eq(fxp_row_bytes(33, 32), 128);
    cr_assert_eq(fxp_default_lanes(&f), 32);
}

Test(fixed_point, parses_hls4ml_spellings)
{
    fxp_format_t f = fmt(" ap_fixed< 16 , 6 , AP_RND , AP_SAT > ");
    cr_assert(f.is_signed && f.width == 16 && f.int_bits == 6);
    cr_assert(f.round == FXP_RND && f.overflow == FXP_SAT);
    f = fmt("ap_fixed<16,6>");
    cr_assert(f.round == FXP_TRN && f.overflow == FXP_WRAP);
    f = fmt("fixed<18,8,RND_CONV,SAT>");
    cr_assert(f.round == FXP_RND_CONV && f.overflow == FXP_SAT && f.width == 18);
    f = fmt("ap_ufixed<8,0,AP_TRN,AP_WRAP,0>");
    cr_assert(!f.is_signed && f.int_bits == 0);
    f = fmt("ap_uint<12>");
    cr_assert(!f.is_signed && f.width == 12 && f.int_bits == 12);
    f = fmt("float32");
    cr_assert(f.is_float && f.width == 32);
    char name[64];
    fxp_format_name(
        &(fxp_format_t){
            .is_signed = true, .width = 16, .int_bits = 6, .round = FXP_RND, .overflow = FXP_SAT},
        name, sizeof name);
    cr_assert_str_eq(name, "ap_fixed<16,6,AP_RND,AP_SAT>");
}

Test(fixed_point, rejects_bad_formats_with_a_reason)
{
    const char *bad[][2] = {
        {"ap_fixed<0,0>", "width"},
        {"ap_fixed<33,6>", "width"},
        {"ap_fixed<16>", "integer bits"},
        {"ap_fixed<16,6,AP_ROUND>", "quantisation"},
        {"ap_fixed<16,6,AP_RND,AP_WRAP_SM>", "AP_WRAP_SM"},
        {"ap_fixed<16,6,AP_RND,AP_SAT,2>", "saturation bits"},
        {"ap_ufixed<8,4,AP_TRN,AP_SAT_SYM>", "signed"},
        {"ap_fixed<16,100>", "fractional"},
        {"ap_fixd<16,6>", "unknown type"},
        {"float64", "expected"},
        {"ap_int<8,2>", "one parameter"},
        {"ap_fixed<16,6,AP_RND,AP_SAT,0,1>", "too many"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fxp_format_t f;
        char err[256] = "";
        cr_assert_eq(fxp_parse(bad[i][0], &f, err, sizeof err), -1, "%s accepted", bad[i][0]);
        cr_assert(strstr(err, bad[i][1]) && strstr(err, bad[i][0]), "%s: '%s'", bad[i][0], err);
    }
}
