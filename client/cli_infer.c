/* cli_infer: the `hltinfer infer MODEL` subcommand.
 *
 * Builds the inputs from files (.npy with their own dtype and shape, or raw bytes typed by the
 * model's metadata) and from --random NAME=SHAPE, runs one synchronous hlt_client_infer, and
 * prints a summary per output (datatype, shape, first values, min / max / mean), optionally
 * writing each output to DIR/NAME.npy. */
#include "cli.h"
#include "cli_npy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_VALUES 6

typedef struct input_buf {
    hlt_input_t in;
    int64_t shape[NPY_MAX_RANK];
    void *mem; /* file contents or random data (free) */
} input_buf_t;

static const hlt_tensor_metadata_t *find_md(const hlt_model_metadata_t *md, const char *name)
{
    for (size_t i = 0; i < md->n_inputs; i++)
        if (!strcmp(md->inputs[i].name, name))
            return &md->inputs[i];
    return NULL;
}

static int no_such_input(const hlt_model_metadata_t *md, const char *model, const char *name)
{
    char names[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < md->n_inputs && off < sizeof names; i++)
        off += (size_t)snprintf(names + off, sizeof names - off, "%s'%s'", i ? ", " : "",
                                md->inputs[i].name);
    return cli_error(1, HLT_INVALID_ARGUMENT, "model '%s' has no input '%s' (its inputs: %s)",
                     model, name, names);
}

static int read_file(const char *path, void **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error(0, HLT_NOT_FOUND, "cannot open %s: %s", path, strerror(errno));
    int rc = CLI_OK;
    void *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = cli_error(0, HLT_UNKNOWN, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        rc = cli_error(0, HLT_RESOURCE_EXHAUSTED, "%s: out of memory (%ld bytes)", path, n);
        goto done;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        rc = cli_error(0, HLT_UNKNOWN, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
        goto done;
    }
    *data = buf;
    *size = (size_t)n;
done:
    fclose(f);
    return rc;
}

static const char *find_shape_opt(const cli_opts_t *o, const char *name)
{
    for (size_t i = 0; i < o->n_shapes; i++)
        if (!strcmp(o->shapes[i].name, name))
            return o->shapes[i].value;
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Shape of a raw file: --shape, or the model's shape whose one variable dimension is what the
 * file size makes it. */
static int raw_shape(const char *model, const cli_opts_t *o, const hlt_tensor_metadata_t *t,
                     const char *path, size_t size, input_buf_t *b)
{
    const char *s = find_shape_opt(o, t->name);
    if (s) {
        if (!cli_parse_shape(s, b->shape, NPY_MAX_RANK, &b->in.rank))
            return cli_error(1, HLT_INVALID_ARGUMENT, "--shape %s=%s: not a shape like 4x64",
                             t->name, s);
        return CLI_OK;
    }
    size_t esize = hlt_dtype_size(t->datatype), known = esize;
    int var = -1;
    if (!esize || t->rank > NPY_MAX_RANK)
        return cli_error(1, HLT_INVALID_ARGUMENT,
                         "input '%s' (%s): give its shape with --shape %s=...", t->name,
                         t->datatype_name, t->name);
    for (size_t d = 0; d < t->rank; d++) {
        if (t->shape[d] < 0) {
            if (var >= 0)
                return cli_error(1, HLT_INVALID_ARGUMENT,
                                 "input '%s' of model '%s' has several variable dimensions: "
                                 "give its shape with --shape %s=...",
                                 t->name, model, t->name);
            var = (int)d;
        } else {
            known *= (size_t)t->shape[d];
        }
        b->shape[d] = t->shape[d];
    }
    b->in.rank = t->rank;
    if (var >= 0) {
        if (known == 0 || size % known)
            return cli_error(0, HLT_INVALID_ARGUMENT,
                             "%s: %zu bytes is not a whole number of '%s' rows (%zu bytes each)",
                             path, size, t->name, known);
        b->shape[var] = (int64_t)(size / known);
    }
    return CLI_OK;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: reproducible for a given --seed, good enough for test data. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void fill_random(void *mem, hlt_dtype t, size_t count, uint64_t *s)
{
    for (size_t i = 0; i < count; i++) {
        uint64_t r = rng_next(s);
        double u = (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0; /* [-1, 1) */
        switch (t) {
        case HLT_TYPE_FP32:
            ((float *)mem)[i] = (float)u;
            break;
        case HLT_TYPE_FP64:
            ((double *)mem)[i] = u;
            break;
        case HLT_TYPE_BOOL:
            ((uint8_t *)mem)[i] = (uint8_t)(r >> 63);
            break;
        default: {
            /* integers: small non-negative values fit every integer type */
            uint64_t v = (r >> 40) % 100;
            memcpy((uint8_t *)mem + i * hlt_dtype_size(t), &v, hlt_dtype_size(t));
            break;
        }
        }
    }
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return h & 0x8000 ? -v : v;
}

static double bf16_to_double(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Element i of an (unaligned) output as a double. */
static double element(const hlt_output_t *o, size_t i)
{
    const uint8_t *p = (const uint8_t *)o->data + i * hlt_dtype_size(o->datatype);
    union {
        float f;
        double d;
        int8_t i8;
        int16_t i16;
        int32_t i32;
        int64_t i64;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
    } v;
    memcpy(&v, p, hlt_dtype_size(o->datatype));
    switch (o->datatype) {
    case HLT_TYPE_BOOL:
        return v.u8 != 0;
    case HLT_TYPE_UINT8:
        return v.u8;
    case HLT_TYPE_UINT16:
        return v.u16;
    case HLT_TYPE_UINT32:
        return v.u32;
    case HLT_TYPE_UINT64:
        return (double)v.u64;
    case HLT_TYPE_INT8:
        return v.i8;
    case HLT_TYPE_INT16:
        return v.i16;
    case HLT_TYPE_INT32:
        return v.i32;
    case HLT_TYPE_INT64:
        return (double)v.i64;
    case HLT_TYPE_FP16:
        return half_to_double(v.u16);
    case HLT_TYPE_BF16:
        return bf16_to_double(v.u16);
    case HLT_TYPE_FP32:
        return v.f;
    case HLT_TYPE_FP64:
        return v.d;
    default:
        return NAN;
    }
}

static void print_output(const hlt_output_t *o)
{
    printf("%s  %s  [", o->name, o->datatype_name);
    for (size_t d = 0; d < o->rank; d++)
        printf("%s%" PRId64, d ? ", " : "", o->shape[d]);
    printf("]");
    size_t esize = hlt_dtype_size(o->datatype);
    if (!esize) {
        printf("  %zu bytes\n", o->size);
        return;
    }
    size_t n = o->size / esize;
    if (n == 0) {
        printf("  (empty)\n");
        return;
    }
    printf("  first:");
    for (size_t i = 0; i < n && i < FIRST_VALUES; i++)
        printf(" %.6g", element(o, i));
    if (n > FIRST_VALUES)
        printf(" ...");
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) {
        double v = element(o, i);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        sum += v;
    }
    printf("  min %.6g  max %.6g  mean %.6g\n", mn, mx, sum / (double)n);
}

int cli_infer(hlt_client_t *c, const char *model, const cli_opts_t *o)
{
    char err[1024];
    int rc = CLI_OK;
    size_t nb = o->n_inputs + o->n_randoms;
    input_buf_t *bufs = calloc(nb + 1, sizeof *bufs);
    hlt_input_t *inputs = calloc(nb + 1, sizeof *inputs);
    hlt_model_metadata_t *md = NULL;
    hlt_infer_result_t *res = NULL;
    if (!bufs || !inputs) {
        rc = cli_error(0, HLT_RESOURCE_EXHAUSTED, "out of memory");
        goto done;
    }
    hlt_status st = hlt_client_model_metadata(c, model, o->version, &md, err, sizeof err);
    if (st) {
        rc = cli_error(0, st, "%s", err);
        goto done;
    }
    for (size_t i = 0; i < o->n_inputs; i++) {
        input_buf_t *b = &bufs[i];
        const char *name = o->inputs[i].name, *path = o->inputs[i].value;
        size_t size = 0;
        if ((rc = read_file(path, &b->mem, &size)))
            goto done;
        b->in.name = name;
        b->in.shape = b->shape;
        if (ends_with(path, ".npy")) {
            npy_array_t a;
            st = npy_parse(b->mem, size, &a, err, sizeof err);
            if (st) {
                rc = cli_error(0, st, "%s: %s", path, err);
                goto done;
            }
            b->in.datatype = a.dtype;
            b->in.rank = a.rank;
            memcpy(b->shape, a.shape, a.rank * sizeof a.shape[0]);
            b->in.data = a.data;
            b->in.size = a.size;
        } else {
            const hlt_tensor_metadata_t *t = find_md(md, name);
            if (!t) {
                rc = no_such_input(md, model, name);
                goto done;
            }
            b->in.datatype = t->datatype;
            if ((rc = raw_shape(model, o, t, path, size, b)))
                goto done;
            b->in.data = b->mem;
            b->in.size = size;
        }
    }
    uint64_t seed = o->seed ? o->seed : 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < o->n_randoms; i++) {
        input_buf_t *b = &bufs[o->n_inputs + i];
        const char *name = o->randoms[i].name;
        const hlt_tensor_metadata_t *t = find_md(md, name);
        if (!t) {
            rc = no_such_input(md, model, name);
            goto done;
        }
        size_t esize = hlt_dtype_size(t->datatype);
        if (!esize) {
            rc = cli_error(1, HLT_INVALID_ARGUMENT, "--random cannot fill input '%s' of type %s",
                           name, t->datatype_name);
            goto done;
        }
        if (!cli_parse_shape(o->randoms[i].value, b->shape, NPY_MAX_RANK, &b->in.rank)) {
            rc = cli_error(1, HLT_INVALID_ARGUMENT, "--random %s=%s: not a shape like 4x64", name,
                           o->randoms[i].value);
            goto done;
        }
        size_t count = 1;
        for (size_t d = 0; d < b->in.rank; d++)
            if (__builtin_mul_overflow(count, (size_t)b->shape[d], &count) ||
                count > ((size_t)1 << 31) / esize) {
                rc = cli_error(1, HLT_INVALID_ARGUMENT, "--random %s=%s: too large", name,
                               o->randoms[i].value);
                goto done;
            }
        b->mem = malloc(count * esize + 1);
        if (!b->mem) {
            rc = cli_error(0, HLT_RESOURCE_EXHAUSTED, "out of memory");
            goto done;
        }
        fill_random(b->mem, t->datatype, count, &seed);
        b->in.name = name;
        b->in.datatype = t->datatype;
        b->in.shape = b->shape;
        b->in.data = b->mem;
        b->in.size = count * esize;
    }
    for (size_t i = 0; i < nb; i++)
        inputs[i] = bufs[i].in;
    hlt_infer_request_t req = {
        .model = model,
        .version = o->version,
        .id = o->id,
        .inputs = inputs,
        .n_inputs = nb,
        .outputs = o->outputs,
        .n_outputs = o->n_outputs,
    };
    st = hlt_client_infer(c, &req, &res, err, sizeof err);
    if (st) {
        rc = cli_error(0, st, "%s", err);
        goto done;
    }
    printf("model: %s  version: %s", hlt_infer_result_model_name(res),
           hlt_infer_result_model_version(res));
    if (*hlt_infer_result_id(res))
        printf("  id: %s", hlt_infer_result_id(res));
    putchar('\n');
    for (size_t i = 0; i < hlt_infer_result_output_count(res); i++) {
        const hlt_output_t *out = hlt_infer_result_output(res, i);
        print_output(out);
        if (o->output_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.npy", o->output_dir, out->name);
            st = npy_write(path, out->datatype, out->rank, out->shape, out->data, out->size, err,
                           sizeof err);
            if (st) {
                rc = cli_error(0, st, "%s", err);
                goto done;
            }
            printf("  -> %s\n", path);
        }
    }
done:
    for (size_t i = 0; bufs && i < nb; i++)
        free(bufs[i].mem);
    free(bufs);
    free(inputs);
    hlt_model_metadata_free(md);
    hlt_infer_result_free(res);
    return rc;
}
