/* fixed_point: float32 <-> ap_fixed codes and 512-bit bus packing (see fixed_point.h).
 *
 * Hand-written: the HLS types live in C++ headers (ap_fixed.h) that a C server cannot use, and
 * no C library implements their quantisation and overflow modes.
 *
 * Quantisation runs in blocks. A block whose scaled values are all exact floats within +-2^30
 * (no NaN, Inf or underflow: the common case) goes through plain 32-bit-lane loops the compiler
 * vectorises (see round_block). Any other block goes through quant_one, which handles every
 * float exactly (ldexp, floor, fmod on doubles). Dequantisation is (float)q * 2^-F: the
 * conversion rounds once (W > 24 only) and the power of two is exact. */
#include "fixed_point.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fixed_point.c packs bus words for a little-endian host"
#endif

#define BLOCK 256
#define FAST_LIMIT 0x1p30f

/* ---- format ---- */

static const char *const round_names[] = {"AP_TRN",      "AP_TRN_ZERO",    "AP_RND",
                                          "AP_RND_ZERO", "AP_RND_MIN_INF", "AP_RND_INF",
                                          "AP_RND_CONV"};
static const char *const ovf_names[] = {"AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM"};

static int perr(char *err, size_t errlen, const char *s, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "'%s': %s", s, why);
    return -1;
}

/* Mode name with or without the AP_ prefix (hls4ml writes both). -1 if none matches. */
static int find_name(const char *tok, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(tok, names[i]) || !strcmp(tok, names[i] + 3))
            return i;
    return -1;
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

int fxp_parse(const char *s, fxp_format_t *out, char *err, size_t errlen)
{
    char buf[128];
    size_t n = 0;
    for (const char *p = s; *p; p++)
        if (!isspace((unsigned char)*p)) {
            if (n + 1 >= sizeof buf)
                return perr(err, errlen, s, "too long");
            buf[n++] = *p;
        }
    buf[n] = '\0';
    *out = (fxp_format_t){.round = FXP_TRN, .overflow = FXP_WRAP};
    if (!strcmp(buf, "float32") || !strcmp(buf, "float")) {
        *out = (fxp_format_t){.is_float = true, .is_signed = true, .width = 32};
        return 0;
    }
    char *lt = strchr(buf, '<');
    if (!lt || n < 2 || buf[n - 1] != '>')
        return perr(err, errlen, s,
                    "expected float32, ap_fixed<W,I[,Q,O]>, ap_ufixed<...>, ap_int<W> or "
                    "ap_uint<W>");
    *lt = '\0';
    buf[n - 1] = '\0';
    const char *type = strncmp(buf, "ap_", 3) ? buf : buf + 3;
    bool fixed = !strcmp(type, "fixed") || !strcmp(type, "ufixed");
    bool integer = !strcmp(type, "int") || !strcmp(type, "uint");
    if (!fixed && !integer)
        return perr(err, errlen, s, "unknown type (ap_fixed, ap_ufixed, ap_int, ap_uint, float32)");
    out->is_signed = type[0] != 'u';
    char *args[6];
    int na = 0;
    char *save = NULL;
    for (char *t = strtok_r(lt + 1, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (na == 6)
            return perr(err, errlen, s, "too many parameters");
        args[na++] = t;
    }
    if (na < 1 || !parse_int(args[0], 1, 32, &out->width))
        return perr(err, errlen, s, "width W must be 1..32 (the bus lanes are at most 32 bits)");
    if (integer) {
        if (na != 1)
            return perr(err, errlen, s, "ap_int/ap_uint take one parameter");
        out->int_bits = out->width;
        return 0;
    }
    if (na < 2 || !parse_int(args[1], -1000, 1000, &out->int_bits))
        return perr(err, errlen, s, "integer bits I missing or not a number");
    if (out->width - out->int_bits < -64 || out->width - out->int_bits > 64)
        return perr(err, errlen, s, "W-I (fractional bits) must be within -64..64");
    if (na >= 3 && (int)(out->round = (fxp_round)find_name(args[2], round_names, 7)) < 0)
        return perr(err, errlen, s,
                    "quantisation mode must be AP_TRN, AP_TRN_ZERO, AP_RND, AP_RND_ZERO, "
                    "AP_RND_MIN_INF, AP_RND_INF or AP_RND_CONV");
    if (na >= 4 && (int)(out->overflow = (fxp_overflow)find_name(args[3], ovf_names, 4)) < 0)
        return perr(err, errlen, s,
                    "overflow mode must be AP_WRAP, AP_SAT, AP_SAT_ZERO or AP_SAT_SYM "
                    "(AP_WRAP_SM is not supported)");
    int nsat;
    if (na >= 5 && (!parse_int(args[4], 0, 0, &nsat)))
        return perr(err, errlen, s, "saturation bits N other than 0 are not supported");
    if (na == 6)
        return perr(err, errlen, s, "too many parameters");
    if (out->overflow == FXP_SAT_SYM && !out->is_signed)
        return perr(err, errlen, s, "AP_SAT_SYM needs a signed type");
    return 0;
}

void fxp_format_name(const fxp_format_t *f, char *buf, size_t len)
{
    if (f->is_float)
        snprintf(buf, len, "float32");
    else
        snprintf(buf, len, "ap_%sfixed<%d,%d,%s,%s>", f->is_signed ? "" : "u", f->width,
                 f->int_bits, round_names[f->round], ovf_names[f->overflow]);
}

int64_t fxp_min_code(const fxp_format_t *f)
{
    if (!f->is_signed)
        return 0;
    int64_t m = -((int64_t)1 << (f->width - 1));
    return f->overflow == FXP_SAT_SYM ? m + 1 : m;
}

int64_t fxp_max_code(const fxp_format_t *f)
{
    return f->is_signed ? ((int64_t)1 << (f->width - 1)) - 1 : ((int64_t)1 << f->width) - 1;
}

static uint32_t code_mask(const fxp_format_t *f)
{
    return f->width == 32 ? 0xffffffffu : (1u << f->width) - 1u;
}

/* ---- float -> code ---- */

/* One value, any float, exactly. The reference the fast loops must agree with. */
static uint32_t quant_one(const fxp_format_t *f, float x)
{
    int64_t lo = fxp_min_code(f), hi = fxp_max_code(f);
    uint32_t mask = code_mask(f);
    if (isnan(x))
        return 0;
    if (isinf(x))
        return (uint32_t)(x > 0 ? hi : lo) & mask;
    double t = ldexp((double)x, f->width - f->int_bits); /* exact */
    double r;
    switch (f->round) {
    case FXP_TRN:
        r = floor(t);
        break;
    case FXP_TRN_ZERO:
        r = trunc(t);
        break;
    case FXP_RND:
        r = floor(t) + (t - floor(t) >= 0.5);
        break;
    case FXP_RND_MIN_INF:
        r = ceil(t) - (ceil(t) - t >= 0.5);
        break;
    case FXP_RND_ZERO:
        r = t >= 0 ? ceil(t) - (ceil(t) - t >= 0.5) : floor(t) + (t - floor(t) >= 0.5);
        break;
    case FXP_RND_INF:
        r = t >= 0 ? floor(t) + (t - floor(t) >= 0.5) : ceil(t) - (ceil(t) - t >= 0.5);
        break;
    default: { /* FXP_RND_CONV */
        double fl = floor(t), d = t - fl;
        r = d > 0.5 || (d == 0.5 && fmod(fl, 2.0) != 0) ? fl + 1 : fl;
    }
    }
    if (f->overflow == FXP_WRAP) {
        double m = ldexp(1.0, f->width);
        r = fmod(r, m); /* exact on integral doubles */
        if (r < 0)
            r += m;
        return (uint32_t)(uint64_t)r & mask;
    }
    if (r < (double)lo || r > (double)hi) {
        if (f->overflow == FXP_SAT_ZERO)
            return 0;
        r = r < (double)lo ? (double)lo : (double)hi;
    }
    return (uint32_t)(int64_t)r & mask;
}

/* The rounding loop for one mode over a block known to be exact in float: every scaled value t
 * is 0 (from 0) or normal, and |t| < 2^30. Then t = x * 2^F is exact, fl = floor(t) comes from
 * an int32 conversion, and frac = t - fl is exact, so comparing frac with one half decides
 * every mode. All lanes are 32 bits wide: the loops vectorise with plain SSE2. */
#define ROUND_LOOP(EXPR)                                                                           \
    for (size_t i = 0; i < n; i++) {                                                               \
        float t = in[i] * scale;                                                                   \
        int32_t tr = (int32_t)t;                                                                   \
        int32_t fl = tr - (t < (float)tr);                                                         \
        float frac = t - (float)fl;                                                                \
        q[i] = (EXPR);                                                                             \
        (void)frac;                                                                                \
    }

static void round_block(const fxp_format_t *f, const float *in, int32_t *q, size_t n, float scale)
{
    switch (f->round) {
    case FXP_TRN:
        ROUND_LOOP(fl) break;
    case FXP_TRN_ZERO:
        ROUND_LOOP(tr) break;
    case FXP_RND:
        ROUND_LOOP(fl + (frac >= 0.5f)) break;
    case FXP_RND_MIN_INF:
        ROUND_LOOP(fl + (frac > 0.5f)) break;
    case FXP_RND_ZERO:
        ROUND_LOOP(fl + ((frac > 0.5f) | ((frac == 0.5f) & (t < 0)))) break;
    case FXP_RND_INF:
        ROUND_LOOP(fl + ((frac > 0.5f) | ((frac == 0.5f) & (t >= 0)))) break;
    case FXP_RND_CONV:
        ROUND_LOOP(fl + ((frac > 0.5f) | ((frac == 0.5f) & (fl & 1)))) break;
    }
}

static void overflow_block(const fxp_format_t *f, const int32_t *q, uint32_t *codes, size_t n)
{
    int64_t lo64 = fxp_min_code(f), hi64 = fxp_max_code(f);
    /* |q| <= 2^30 + 1 here, so bounds beyond int32 never bind */
    int32_t lo = lo64 < INT32_MIN ? INT32_MIN : (int32_t)lo64;
    int32_t hi = hi64 > INT32_MAX ? INT32_MAX : (int32_t)hi64;
    uint32_t mask = code_mask(f);
    switch (f->overflow) {
    case FXP_WRAP:
        for (size_t i = 0; i < n; i++)
            codes[i] = (uint32_t)q[i] & mask;
        break;
    case FXP_SAT:
    case FXP_SAT_SYM:
        for (size_t i = 0; i < n; i++) {
            int32_t v = q[i] < lo ? lo : q[i] > hi ? hi : q[i];
            codes[i] = (uint32_t)v & mask;
        }
        break;
    case FXP_SAT_ZERO:
        for (size_t i = 0; i < n; i++)
            codes[i] = (q[i] < lo || q[i] > hi ? 0u : (uint32_t)q[i]) & mask;
        break;
    }
}

void fxp_quantize(const fxp_format_t *f, const float *in, uint32_t *codes, size_t n)
{
    if (f->is_float) {
        memcpy(codes, in, n * sizeof *codes);
        return;
    }
    float scale = ldexpf(1.0f, f->width - f->int_bits); /* 2^-64..2^64: normal */
    int32_t q[BLOCK];
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t m = n - b < BLOCK ? n - b : BLOCK;
        const float *x = in + b;
        int bad = 0;
        for (size_t i = 0; i < m; i++) { /* NaN, Inf, |t| >= 2^30, or t lost bits to underflow */
            float a = fabsf(x[i] * scale);
            bad |= (!(a < FAST_LIMIT)) | ((a < 0x1p-126f) & (x[i] != 0));
        }
        if (bad) {
            for (size_t i = 0; i < m; i++)
                codes[b + i] = quant_one(f, x[i]);
            continue;
        }
        round_block(f, x, q, m, scale);
        overflow_block(f, q, codes + b, m);
    }
}

/* ---- code -> float ---- */

void fxp_dequantize(const fxp_format_t *f, const uint32_t *codes, float *out, size_t n)
{
    if (f->is_float) {
        memcpy(out, codes, n * sizeof *out);
        return;
    }
    float step = ldexpf(1.0f, f->int_bits - f->width);
    int sh = 32 - f->width;
    uint32_t mask = code_mask(f);
    if (f->is_signed) {
        for (size_t i = 0; i < n; i++) /* shift the sign bit to bit 31 and back (arithmetic) */
            out[i] = (float)((int32_t)(codes[i] << sh) >> sh) * step;
    } else if (f->width < 32) {
        for (size_t i = 0; i < n; i++)
            out[i] = (float)(int32_t)(codes[i] & mask) * step;
    } else {
        for (size_t i = 0; i < n; i++)
            out[i] = (float)codes[i] * step;
    }
}

/* ---- bus words ---- */

unsigned fxp_default_lanes(const fxp_format_t *f)
{
    return (unsigned)(FXP_BUS_BYTES * 8 / f->width);
}

size_t fxp_row_bytes(size_t per_row, unsigned vpw)
{
    return (per_row + vpw - 1) / vpw * FXP_BUS_BYTES;
}

/* One row of codes into its words (dst zeroed by the caller). */
static void pack_row(int w, unsigned vpw, const uint32_t *c, size_t per_row, uint8_t *dst)
{
    if (w == 8 || w == 16 || w == 32) { /* byte lanes: plain stores */
        size_t bytes = (size_t)w / 8;
        for (size_t j0 = 0; j0 < per_row; j0 += vpw, dst += FXP_BUS_BYTES) {
            size_t m = per_row - j0 < vpw ? per_row - j0 : vpw;
            if (bytes == 2) {
                uint16_t tmp[32];
                for (size_t j = 0; j < m; j++)
                    tmp[j] = (uint16_t)c[j0 + j];
                memcpy(dst, tmp, m * 2);
            } else if (bytes == 1) {
                for (size_t j = 0; j < m; j++)
                    dst[j] = (uint8_t)c[j0 + j];
            } else {
                memcpy(dst, c + j0, m * 4);
            }
        }
        return;
    }
    for (size_t j0 = 0; j0 < per_row; j0 += vpw, dst += FXP_BUS_BYTES) {
        uint64_t limb[8] = {0};
        size_t m = per_row - j0 < vpw ? per_row - j0 : vpw;
        for (size_t l = 0; l < m; l++) {
            unsigned off = (unsigned)l * (unsigned)w, k = off >> 6, s = off & 63;
            uint64_t v = c[j0 + l];
            limb[k] |= v << s;
            if (s + (unsigned)w > 64)
                limb[k + 1] |= v >> (64 - s);
        }
        memcpy(dst, limb, sizeof limb);
    }
}

static void unpack_row(int w, unsigned vpw, const uint8_t *src, size_t per_row, uint32_t *c)
{
    uint64_t mask = w == 32 ? 0xffffffffu : (1u << w) - 1u;
    for (size_t j0 = 0; j0 < per_row; j0 += vpw, src += FXP_BUS_BYTES) {
        size_t m = per_row - j0 < vpw ? per_row - j0 : vpw;
        if (w == 16) {
            uint16_t tmp[32];
            memcpy(tmp, src, m * 2);
            for (size_t j = 0; j < m; j++)
                c[j0 + j] = tmp[j];
            continue;
        }
        if (w == 32) {
            memcpy(c + j0, src, m * 4);
            continue;
        }
        uint64_t limb[8];
        memcpy(limb, src, sizeof limb);
        for (size_t l = 0; l < m; l++) {
            unsigned off = (unsigned)l * (unsigned)w, k = off >> 6, s = off & 63;
            uint64_t v = limb[k] >> s;
            if (s + (unsigned)w > 64)
                v |= limb[k + 1] << (64 - s);
            c[j0 + l] = (uint32_t)(v & mask);
        }
    }
}

void fxp_pack_rows(const fxp_format_t *f, unsigned vpw, const float *in, size_t rows,
                   size_t per_row, void *bus, uint32_t *scratch, size_t scratch_len)
{
    size_t rb = fxp_row_bytes(per_row, vpw), step = per_row ? scratch_len / per_row : 1;
    uint8_t *dst = bus;
    memset(dst, 0, rows * rb);
    for (size_t r = 0; r < rows && per_row; r += step) {
        size_t k = rows - r < step ? rows - r : step;
        fxp_quantize(f, in + r * per_row, scratch, k * per_row);
        for (size_t i = 0; i < k; i++)
            pack_row(f->width, vpw, scratch + i * per_row, per_row, dst + (r + i) * rb);
    }
}

void fxp_unpack_rows(const fxp_format_t *f, unsigned vpw, const void *bus, size_t rows,
                     size_t per_row, float *out, uint32_t *scratch, size_t scratch_len)
{
    size_t rb = fxp_row_bytes(per_row, vpw), step = per_row ? scratch_len / per_row : 1;
    const uint8_t *src = bus;
    for (size_t r = 0; r < rows && per_row; r += step) {
        size_t k = rows - r < step ? rows - r : step;
        for (size_t i = 0; i < k; i++)
            unpack_row(f->width, vpw, src + (r + i) * rb, per_row, scratch + i * per_row);
        fxp_dequantize(f, scratch, out + r * per_row, k * per_row);
    }
}

void fxp_pack_stream(const fxp_format_t *f, unsigned vpw, const float *in, size_t n, void *bus,
                     uint32_t *scratch, size_t scratch_len)
{
    size_t piece = scratch_len / vpw * vpw; /* whole words per pass */
    uint8_t *dst = bus;
    memset(dst, 0, fxp_row_bytes(n, vpw));
    for (size_t g = 0; g < n; g += piece) {
        size_t k = n - g < piece ? n - g : piece;
        fxp_quantize(f, in + g, scratch, k);
        pack_row(f->width, vpw, scratch, k, dst + g / vpw * FXP_BUS_BYTES);
    }
}

void fxp_unpack_stream(const fxp_format_t *f, unsigned vpw, const void *bus, size_t n, float *out,
                       uint32_t *scratch, size_t scratch_len)
{
    size_t piece = scratch_len / vpw * vpw;
    const uint8_t *src = bus;
    for (size_t g = 0; g < n; g += piece) {
        size_t k = n - g < piece ? n - g : piece;
        unpack_row(f->width, vpw, src + g / vpw * FXP_BUS_BYTES, k, scratch);
        fxp_dequantize(f, scratch, out + g, k);
    }
}
