/* client/cli_npy.c: .npy writing and reading, NumPy's header variants, and every rejection. */
#include "cli_npy.h"
#include "fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hlt_status parse_str(const char *header, size_t data_bytes, npy_array_t *a, char *err)
{
    /* version 1.0 file around a header dict, followed by data_bytes zero bytes */
    static uint8_t buf[4096];
    size_t hl = strlen(header);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hl & 0xff);
    buf[9] = (uint8_t)(hl >> 8);
    memcpy(buf + 10, header, hl);
    memset(buf + 10 + hl, 0, data_bytes);
    return npy_parse(buf, 10 + hl + data_bytes, a, err, 512);
}

Test(npy, write_then_parse_round_trip)
{
    char dir[256], path[300], err[512];
    cr_assert(fx_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/a.npy", dir);
    float x[2][3] = {{1, 2, 3}, {4, 5, 6}};
    int64_t shape[2] = {2, 3};
    cr_assert_eq(npy_write(path, HLT_TYPE_FP32, 2, shape, x, sizeof x, err, sizeof err), HLT_OK,
                 "%s", err);
    size_t n;
    uint8_t *buf = fx_read_file(path, &n);
    cr_assert_not_null(buf);
    cr_expect_eq((n - sizeof x) % 64, 0, "header padded to 64 bytes as NumPy does");
    cr_expect(
        strstr((char *)buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
    npy_array_t a;
    cr_assert_eq(npy_parse(buf, n, &a, err, sizeof err), HLT_OK, "%s", err);
    cr_expect_eq(a.dtype, HLT_TYPE_FP32);
    cr_expect(a.rank == 2 && a.shape[0] == 2 && a.shape[1] == 3);
    cr_expect(a.size == sizeof x && !memcmp(a.data, x, sizeof x));
    free(buf);

    int64_t v[4] = {1, -2, 3, -4}, s1 = 4;
    cr_assert_eq(npy_write(path, HLT_TYPE_INT64, 1, &s1, v, sizeof v, err, sizeof err), HLT_OK);
    buf = fx_read_file(path, &n);
    cr_expect(strstr((char *)buf + 10, "'shape': (4,)"), "one-element tuples keep their comma");
    cr_assert_eq(npy_parse(buf, n, &a, err, sizeof err), HLT_OK, "%s", err);
    cr_expect(a.dtype == HLT_TYPE_INT64 && a.rank == 1 && a.shape[0] == 4);
    free(buf);

    double d = 2.5;
    cr_assert_eq(npy_write(path, HLT_TYPE_FP64, 0, NULL, &d, sizeof d, err, sizeof err), HLT_OK);
    buf = fx_read_file(path, &n);
    cr_assert_eq(npy_parse(buf, n, &a, err, sizeof err), HLT_OK, "%s", err);
    cr_expect(a.rank == 0 && a.size == 8);
    free(buf);

    cr_expect_eq(npy_write(path, HLT_TYPE_BYTES, 1, &s1, v, 4, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_expect_eq(npy_write(path, HLT_TYPE_INT64, 1, &s1, v, 8, err, sizeof err),
                 HLT_INVALID_ARGUMENT);
    cr_expect_eq(
        npy_write("/nonexistent/dir/x.npy", HLT_TYPE_INT64, 1, &s1, v, sizeof v, err, sizeof err),
        HLT_UNKNOWN);
    fx_rmdir(dir);
}

Test(npy, header_variants)
{
    npy_array_t a;
    char err[512];
    cr_expect_eq(
        parse_str("{\"descr\":\"|u1\",\"shape\":(3,),\"fortran_order\":False}\n", 3, &a, err),
        HLT_OK, "%s", err);
    cr_expect(a.dtype == HLT_TYPE_UINT8 && a.rank == 1 && a.shape[0] == 3);
    cr_expect_eq(
        parse_str("{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2), }   \n", 4, &a, err),
        HLT_OK, "%s", err);
    cr_expect_eq(a.dtype, HLT_TYPE_BOOL);
    cr_expect_eq(parse_str("{'descr': '<i2', 'fortran_order': False, 'shape': (), }\n", 2, &a, err),
                 HLT_OK, "%s", err);
    cr_expect(a.dtype == HLT_TYPE_INT16 && a.rank == 0);
    cr_expect_eq(
        parse_str("{'descr': '<f2', 'fortran_order': False, 'shape': (1L, 2L), }\n", 4, &a, err),
        HLT_OK, "%s", err);
    cr_expect(a.dtype == HLT_TYPE_FP16 && a.shape[1] == 2);

    /* version 2.0: 4-byte header length */
    static uint8_t v2[128];
    const char *h = "{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }\n";
    size_t hl = strlen(h);
    memcpy(v2, "\x93NUMPY\x02\x00", 8);
    v2[8] = (uint8_t)hl;
    memcpy(v2 + 12, h, hl);
    cr_expect_eq(npy_parse(v2, 12 + hl + 8, &a, err, sizeof err), HLT_OK, "%s", err);
    cr_expect_eq(a.dtype, HLT_TYPE_UINT64);
}

Test(npy, rejections)
{
    npy_array_t a;
    char err[512];
    cr_expect_eq(
        parse_str("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", 16, &a, err),
        HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "Fortran"), "%s", err);
    cr_expect_eq(
        parse_str("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", 8, &a, err),
        HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "big-endian"), "%s", err);
    cr_expect_eq(
        parse_str("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n", 16, &a, err),
        HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "'<c8'"), "%s", err);
    cr_expect_eq(
        parse_str("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 20, &a, err),
        HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "24"), "%s", err);
    cr_expect_eq(
        parse_str("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}\n", 4, &a, err),
        HLT_INVALID_ARGUMENT);
    cr_expect_eq(parse_str("{'descr': '<f4', 'shape': (2, x), }\n", 8, &a, err),
                 HLT_INVALID_ARGUMENT);
    cr_expect_eq(parse_str("{'descr': '<f4', 'fortran_order': False}\n", 8, &a, err),
                 HLT_INVALID_ARGUMENT, "no shape");
    cr_expect_eq(parse_str("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, &a, err),
                 HLT_INVALID_ARGUMENT, "unterminated dict");
    cr_expect_eq(
        npy_parse((const uint8_t *)"NUMPY\x01\x00\x00\x00\x00\x00", 11, &a, err, sizeof err),
        HLT_INVALID_ARGUMENT);
    cr_expect(strstr(err, "magic"), "%s", err);
    static const uint8_t trunc[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x00, '{'};
    cr_expect_eq(npy_parse(trunc, sizeof trunc, &a, err, sizeof err), HLT_INVALID_ARGUMENT);
    static const uint8_t v9[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 9, 0, 0, 0, 0, 0};
    cr_expect_eq(npy_parse(v9, sizeof v9, &a, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_expect_null(npy_descr(HLT_TYPE_BYTES));
    cr_expect_str_eq(npy_descr(HLT_TYPE_INT8), "|i1");
}
