/* backend_util: see backend_util.h. */
#include "backend_util.h"

#include "model_config.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bu_backends(const backend_i **list)
{
    static bool logged;
    int n = 0;
    for (const char *const *name = backend_names(); *name; name++) {
        if (!strcmp(*name, "cpu") || !strcmp(*name, "xrt"))
            continue;
        const backend_i *b = backend_find(*name);
        char reason[256] = "";
        const int dev = b ? backend_devices(b, reason, sizeof reason) : 0;
        if (dev <= 0) {
            if (!logged)
                cr_log_info("backend %s skipped: %s", *name, b ? reason : "cannot be loaded");
            continue;
        }
        if (list && n < 8)
            list[n] = b;
        n++;
    }
    logged = true;
    return n;
}

void bu_result_free(bu_result_t *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->data[i]);
    memset(r, 0, sizeof *r);
}

void bu_inst_create(bu_inst_t *bi, const backend_i *b, const engine_graph_t *g)
{
    char err[512] = "";
    model_config_t *cfg = NULL;
    cr_assert_eq(model_config_parse("test_model", NULL, 0, &cfg, err, sizeof err), HLT_OK, "%s",
                 err);
    const backend_model_t m = {.graph = g, .cfg = cfg, .model_path = "memory"};
    bi->b = b;
    bi->cfg = cfg;
    bi->inst = NULL;
    const hlt_status st = b->instance_create(0, &m, &bi->inst, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s: instance_create: %s", b->name, err);
}

void bu_inst_destroy(bu_inst_t *bi)
{
    if (bi->b)
        bi->b->instance_destroy(bi->inst);
    model_config_destroy(bi->cfg);
    memset(bi, 0, sizeof *bi);
}

static size_t numel(const engine_shape_t *s)
{
    size_t n = 1;
    for (int32_t i = 0; i < s->rank; i++)
        n *= (size_t)s->dims[i];
    return n;
}

void bu_run(bu_inst_t *bi, const engine_graph_t *g, const engine_shape_t *shapes,
            const void *const *inputs, bu_result_t *out, backend_timing_t *timing)
{
    char err[512] = "";
    memset(out, 0, sizeof *out);
    out->n = (int)engine_graph_num_outputs(g);
    cr_assert_leq(out->n, BU_MAX_IO);
    hlt_status st = bi->b->prepare(bi->inst, shapes, out->shape, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s: prepare: %s", bi->b->name, err);
    for (int i = 0; i < out->n; i++) {
        out->dtype[i] = engine_graph_output(g, (size_t)i)->dtype;
        const size_t bytes = numel(&out->shape[i]) * hlt_dtype_size(out->dtype[i]);
        out->data[i] = malloc(bytes ? bytes : 1);
        cr_assert_not_null(out->data[i]);
        memset(out->data[i], 0xff, bytes); /* NaN: an output left unwritten fails the compare */
    }
    st = bi->b->execute(bi->inst, inputs, out->data, timing, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s: execute: %s", bi->b->name, err);
}

void bu_compare(const char *what, const bu_result_t *got, const bu_result_t *want)
{
    cr_assert_eq(got->n, want->n, "%s: %d outputs, want %d", what, got->n, want->n);
    for (int o = 0; o < want->n; o++) {
        cr_assert_eq(got->shape[o].rank, want->shape[o].rank, "%s: output %d rank", what, o);
        for (int32_t k = 0; k < want->shape[o].rank; k++)
            cr_assert_eq(got->shape[o].dims[k], want->shape[o].dims[k], "%s: output %d dim %d",
                         what, o, k);
        const size_t n = numel(&want->shape[o]);
        if (want->dtype[o] == HLT_TYPE_INT64) {
            const int64_t *a = got->data[o], *b = want->data[o];
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(a[i], b[i], "%s: output %d element %zu: got %lld, want %lld", what, o,
                             i, (long long)a[i], (long long)b[i]);
            continue;
        }
        const float *a = got->data[o], *b = want->data[o];
        for (size_t i = 0; i < n; i++) {
            const double d = fabs((double)a[i] - (double)b[i]);
            if (!(d <= BU_REL * fabs((double)b[i]) + BU_ABS))
                cr_assert_fail("%s: output %d element %zu: got %.9g, want %.9g (diff %.3g)", what,
                               o, i, (double)a[i], (double)b[i], d);
        }
    }
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

void **bu_inputs(const engine_graph_t *g, const engine_shape_t *shapes, uint64_t seed, float lo,
                 float hi)
{
    const size_t n = engine_graph_num_inputs(g);
    void **in = calloc(n + 1, sizeof *in);
    cr_assert_not_null(in);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        const hlt_dtype t = engine_graph_input(g, i)->dtype;
        const size_t cnt = numel(&shapes[i]);
        in[i] = malloc(cnt * hlt_dtype_size(t) + 1);
        cr_assert_not_null(in[i]);
        for (size_t k = 0; k < cnt; k++) {
            const uint64_t r = next(&s);
            if (t == HLT_TYPE_INT64)
                ((int64_t *)in[i])[k] = (int64_t)(r % 101) - 50;
            else
                ((float *)in[i])[k] = lo + (hi - lo) * (float)((r >> 40) * (1.0 / 16777216.0));
        }
    }
    return in;
}

void bu_inputs_free(const engine_graph_t *g, void **in)
{
    if (!in)
        return;
    for (size_t i = 0; i < engine_graph_num_inputs(g); i++)
        free(in[i]);
    free(in);
}

int bu_check(const char *what, const engine_graph_t *g, int n_sets,
             const engine_shape_t (*sets)[BU_MAX_IO], float lo, float hi)
{
    const backend_i *list[8];
    const int nb = bu_backends(list);
    bu_inst_t cpu, other[8];
    bu_inst_create(&cpu, &backend_cpu, g);
    for (int b = 0; b < nb && b < 8; b++)
        bu_inst_create(&other[b], list[b], g);
    for (int s = 0; s < n_sets; s++) {
        void **in = bu_inputs(g, sets[s], (uint64_t)s + 1, lo, hi);
        bu_result_t want;
        bu_run(&cpu, g, sets[s], (const void *const *)in, &want, NULL);
        for (int b = 0; b < nb && b < 8; b++) {
            char label[256];
            char shp[96] = "";
            size_t o = 0;
            for (size_t i = 0; i < engine_graph_num_inputs(g) && o < sizeof shp; i++)
                for (int32_t k = 0; k <= sets[s][i].rank && o < sizeof shp; k++)
                    o += (size_t)snprintf(shp + o, sizeof shp - o,
                                          k == sets[s][i].rank ? "] "
                                          : k                  ? ",%lld"
                                                               : "[%lld",
                                          (long long)sets[s][i].dims[k]);
            snprintf(label, sizeof label, "%s on %s, inputs %s", what, list[b]->name, shp);
            bu_result_t got;
            bu_run(&other[b], g, sets[s], (const void *const *)in, &got, NULL);
            bu_compare(label, &got, &want);
            bu_result_free(&got);
        }
        bu_result_free(&want);
        bu_inputs_free(g, in);
    }
    for (int b = 0; b < nb && b < 8; b++)
        bu_inst_destroy(&other[b]);
    bu_inst_destroy(&cpu);
    return nb;
}

static char *src_path(const char *rel)
{
    const char *root = getenv("HLT_SOURCE_ROOT");
    char *p = malloc(4096);
    cr_assert_not_null(p);
    snprintf(p, 4096, "%s/%s", root ? root : ".", rel);
    return p;
}

engine_graph_t *bu_load(const char *rel_path)
{
    char err[512] = "";
    char *p = src_path(rel_path);
    engine_graph_t *g = NULL;
    const hlt_status st = engine_graph_load_file(p, &g, err, sizeof err);
    cr_assert_eq(st, HLT_OK, "%s: %s", p, err);
    free(p);
    return g;
}

void *bu_read_file(const char *rel_path, size_t *len)
{
    char *p = src_path(rel_path);
    FILE *f = fopen(p, "rb");
    free(p);
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}
