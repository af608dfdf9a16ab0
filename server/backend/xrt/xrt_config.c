/* xrt_config: bitstream model parameters (see xrt_config.h). */
#include "xrt_config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hlt_status bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hlt_status bad(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return HLT_INVALID_ARGUMENT;
}

static const char *param(const model_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_parameters; i++)
        if (!strcmp(cfg->parameters[i].key, name))
            return cfg->parameters[i].value;
    return NULL;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end;
    long long v = strtoll(s, &end, 10);
    while (end != s && isspace((unsigned char)*end))
        end++;
    if (end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Splits a list written "a,b", "a, b" or ["a","b"] into trimmed items (in place). */
static int split_list(char *s, char **items, int max)
{
    int n = 0;
    for (char *p = s; *p; p++)
        if (*p == '[' || *p == ']' || *p == '"' || *p == '\'')
            *p = ' ';
    char *save = NULL;
    for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        char *e = t + strlen(t);
        while (e > t && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (n == max)
            return -1;
        items[n++] = t;
    }
    return n;
}

/* CU names as v++ writes them (instance names are identifiers). */
static bool is_ident(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= XRT_NAME_MAX || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static hlt_status parse_cus(const char *m, const char *v, xrt_model_cfg_t *out, char *err,
                            size_t errlen)
{
    int64_t n;
    if (parse_i64(v, 1, XRT_MAX_CUS, &n)) {
        out->n_cus = (int)n;
        return HLT_OK;
    }
    char buf[XRT_MAX_CUS * XRT_NAME_MAX], *items[XRT_MAX_CUS + 1];
    snprintf(buf, sizeof buf, "%s", v);
    int k = split_list(buf, items, XRT_MAX_CUS);
    if (k <= 0)
        return bad(err, errlen,
                   "model '%s': parameter 'compute_units': '%s' is neither a count (1..%d) nor a "
                   "list of compute unit names",
                   m, v, XRT_MAX_CUS);
    for (int i = 0; i < k; i++) {
        if (!is_ident(items[i]))
            return bad(err, errlen,
                       "model '%s': parameter 'compute_units': bad name '%s' (a count 1..%d or "
                       "compute unit names)",
                       m, items[i], XRT_MAX_CUS);
        for (int j = 0; j < i; j++)
            if (!strcmp(items[i], items[j]))
                return bad(err, errlen,
                           "model '%s': parameter 'compute_units': '%s' is listed twice", m,
                           items[i]);
        snprintf(out->cu_names[i], XRT_NAME_MAX, "%s", items[i]);
    }
    out->n_cu_names = k;
    return HLT_OK;
}

static int find_tensor(const model_tensor_cfg_t *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return (int)i;
    return -1;
}

static hlt_status parse_args(const model_config_t *cfg, const char *v, xrt_model_cfg_t *out,
                             char *err, size_t errlen)
{
    const char *m = cfg->name;
    char buf[2048], *items[XRT_MAX_ARGS + 1];
    snprintf(buf, sizeof buf, "%s", v);
    int k = split_list(buf, items, XRT_MAX_ARGS);
    if (k <= 0)
        return bad(err, errlen,
                   "model '%s': parameter 'argument_order': '%s' must list 1..%d kernel "
                   "arguments",
                   m, v, XRT_MAX_ARGS);
    bool used_in[XRT_MAX_ARGS] = {false}, used_out[XRT_MAX_ARGS] = {false};
    out->rows_arg = -1;
    for (int a = 0; a < k; a++) {
        const char *t = items[a];
        int i = find_tensor(cfg->inputs, cfg->n_inputs, t);
        int o = i < 0 ? find_tensor(cfg->outputs, cfg->n_outputs, t) : -1;
        if (i < 0 && o < 0 && !strcmp(t, "input") && cfg->n_inputs == 1)
            i = 0;
        if (i < 0 && o < 0 && !strcmp(t, "output") && cfg->n_outputs == 1)
            o = 0;
        if (i >= 0 || o >= 0) {
            bool *used = i >= 0 ? &used_in[i] : &used_out[o];
            if (*used)
                return bad(err, errlen,
                           "model '%s': parameter 'argument_order': tensor '%s' is bound twice", m,
                           t);
            *used = true;
            out->args[a] =
                (xrt_arg_bind_t){i >= 0 ? XRT_ROLE_INPUT : XRT_ROLE_OUTPUT, i >= 0 ? i : o};
        } else if (!strcmp(t, "rows")) {
            if (out->rows_arg >= 0)
                return bad(err, errlen,
                           "model '%s': parameter 'argument_order': 'rows' appears twice", m);
            out->rows_arg = a;
            out->args[a] = (xrt_arg_bind_t){XRT_ROLE_ROWS, -1};
        } else {
            return bad(err, errlen,
                       "model '%s': parameter 'argument_order': '%s' is not an input, an output "
                       "or 'rows'",
                       m, t);
        }
    }
    out->n_args = k;
    for (size_t i = 0; i < cfg->n_inputs; i++)
        if (!used_in[i])
            return bad(err, errlen,
                       "model '%s': parameter 'argument_order': input '%s' is not bound to a "
                       "kernel argument",
                       m, cfg->inputs[i].name);
    for (size_t o = 0; o < cfg->n_outputs; o++)
        if (!used_out[o])
            return bad(err, errlen,
                       "model '%s': parameter 'argument_order': output '%s' is not bound to a "
                       "kernel argument",
                       m, cfg->outputs[o].name);
    return HLT_OK;
}

static hlt_status parse_format(const model_config_t *cfg, const char *side, fxp_format_t *f,
                               unsigned *vpw, bool *dense, char *err, size_t errlen)
{
    char key[40], why[256];
    const char *m = cfg->name, *v;
    snprintf(key, sizeof key, "%s_format", side);
    const char *which = (v = param(cfg, key)) ? key : "io_format";
    if (!v)
        v = param(cfg, "io_format");
    if (fxp_parse(v ? v : "float32", f, why, sizeof why))
        return bad(err, errlen, "model '%s': parameter '%s': %s", m, which, why);
    snprintf(key, sizeof key, "%s_values_per_word", side);
    which = (v = param(cfg, key)) ? key : "values_per_word";
    if (!v)
        v = param(cfg, "values_per_word");
    int64_t n = fxp_default_lanes(f);
    if (v && !parse_i64(v, 1, fxp_default_lanes(f), &n))
        return bad(err, errlen,
                   "model '%s': parameter '%s': '%s' must be 1..%u (%u-bit values in a 512-bit "
                   "word)",
                   m, which, v, fxp_default_lanes(f), (unsigned)f->width);
    *vpw = (unsigned)n;
    snprintf(key, sizeof key, "%s_layout", side);
    which = (v = param(cfg, key)) ? key : "io_layout";
    if (!v)
        v = param(cfg, "io_layout");
    if (v && strcmp(v, "row") && strcmp(v, "dense"))
        return bad(err, errlen,
                   "model '%s': parameter '%s': '%s' must be \"row\" (each row starts a bus "
                   "word) or \"dense\" (rows share words)",
                   m, which, v);
    *dense = v && !strcmp(v, "dense");
    return HLT_OK;
}

static hlt_status check_tensors(const model_config_t *cfg, xrt_model_cfg_t *out, char *err,
                                size_t errlen)
{
    if (cfg->n_inputs > XRT_MAX_ARGS || cfg->n_outputs > XRT_MAX_ARGS)
        return bad(err, errlen, "model '%s': more than %d inputs or outputs", cfg->name,
                   XRT_MAX_ARGS);
    for (int side = 0; side < 2; side++) {
        const model_tensor_cfg_t *t = side ? cfg->outputs : cfg->inputs;
        size_t n = side ? cfg->n_outputs : cfg->n_inputs;
        for (size_t i = 0; i < n; i++) {
            if (t[i].dtype != HLT_TYPE_FP32)
                return bad(err, errlen,
                           "model '%s': %s '%s' is %s; the xrt backend takes FP32 tensors and "
                           "converts them to the kernel's io_format",
                           cfg->name, side ? "output" : "input", t[i].name,
                           hlt_dtype_config_name(t[i].dtype));
            size_t per = 1;
            for (int32_t d = 0; d < t[i].rank; d++)
                per *= (size_t)t[i].dims[d];
            (side ? out->out_per_row : out->in_per_row)[i] = per;
        }
    }
    return HLT_OK;
}

hlt_status xrt_config_parse(const model_config_t *cfg, xrt_model_cfg_t *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *m = cfg->name, *v;
    hlt_status st;
    if ((st = check_tensors(cfg, out, err, errlen)))
        return st;
    out->max_rows = cfg->max_batch_size > 0 ? cfg->max_batch_size : 1;
    if (!(v = param(cfg, "kernel_name")) || !*v)
        return bad(err, errlen,
                   "model '%s': parameter 'kernel_name' is required (the kernel in model.xclbin)",
                   m);
    if (!is_ident(v))
        return bad(err, errlen, "model '%s': parameter 'kernel_name': '%s' is not a kernel name", m,
                   v);
    snprintf(out->kernel, sizeof out->kernel, "%s", v);
    if ((v = param(cfg, "compute_units")) && strcmp(v, "all") &&
        (st = parse_cus(m, v, out, err, errlen)))
        return st;
    if ((st = parse_args(cfg, (v = param(cfg, "argument_order")) ? v : "input,output,rows", out,
                         err, errlen)))
        return st;
    int64_t n;
    if ((v = param(cfg, "rows_per_run"))) {
        if (!parse_i64(v, 1, (int64_t)1 << 30, &n))
            return bad(err, errlen,
                       "model '%s': parameter 'rows_per_run': '%s' must be a positive row count", m,
                       v);
        out->rows_per_run = n;
    }
    out->max_rows_per_run = XRT_DEFAULT_MAX_ROWS;
    if ((v = param(cfg, "max_rows_per_run"))) {
        if (!parse_i64(v, 1, (int64_t)1 << 30, &n))
            return bad(err, errlen,
                       "model '%s': parameter 'max_rows_per_run': '%s' must be a positive row "
                       "count",
                       m, v);
        out->max_rows_per_run = n;
    }
    if ((st =
             parse_format(cfg, "input", &out->in_fmt, &out->in_vpw, &out->in_dense, err, errlen)) ||
        (st = parse_format(cfg, "output", &out->out_fmt, &out->out_vpw, &out->out_dense, err,
                           errlen)))
        return st;
    out->ring_slots = XRT_DEFAULT_RING_SLOTS;
    if ((v = param(cfg, "ring_slots"))) {
        if (!parse_i64(v, 1, XRT_MAX_RING_SLOTS, &n))
            return bad(err, errlen, "model '%s': parameter 'ring_slots': '%s' must be 1..%d", m, v,
                       XRT_MAX_RING_SLOTS);
        out->ring_slots = (int)n;
    }
    out->run_timeout_ms = 10000;
    if ((v = param(cfg, "run_timeout_ms"))) {
        if (!parse_i64(v, 1, 3600000, &n))
            return bad(err, errlen,
                       "model '%s': parameter 'run_timeout_ms': '%s' must be 1..3600000", m, v);
        out->run_timeout_ms = (uint32_t)n;
    }
    return HLT_OK;
}

static void arg_list(const xrt_kernel_desc_t *k, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < k->n_args && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s %s", i ? ", " : "",
                         k->args[i].is_buffer ? "buffer" : "scalar", k->args[i].name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

hlt_status xrt_config_bind(const model_config_t *cfg, const xrt_model_cfg_t *mc,
                           const xrt_kernel_desc_t *k, const char *xclbin, char cus[][XRT_NAME_MAX],
                           int *n_out, char *err, size_t errlen)
{
    const char *m = cfg->name;
    char args[700];
    arg_list(k, args, sizeof args);
    if (k->n_args != mc->n_args)
        return bad(err, errlen,
                   "model '%s': parameter 'argument_order' lists %d arguments, but kernel '%s' "
                   "in %s takes %d (%s)",
                   m, mc->n_args, mc->kernel, xclbin, k->n_args, args);
    for (int a = 0; a < mc->n_args; a++) {
        bool want_buffer = mc->args[a].role != XRT_ROLE_ROWS;
        if (k->args[a].is_buffer != want_buffer)
            return bad(err, errlen,
                       "model '%s': parameter 'argument_order': argument %d binds %s, but "
                       "kernel '%s' argument %d ('%s') is a %s (kernel arguments: %s)",
                       m, a, want_buffer ? "a tensor" : "'rows'", mc->kernel, a, k->args[a].name,
                       k->args[a].is_buffer ? "buffer" : "scalar", args);
    }
    if (mc->n_cu_names) {
        for (int i = 0; i < mc->n_cu_names; i++) {
            bool found = false;
            for (int j = 0; j < k->n_cus && !found; j++)
                found = !strcmp(k->cus[j], mc->cu_names[i]);
            if (!found) {
                char have[600] = "";
                for (int j = 0, off = 0; j < k->n_cus && off < (int)sizeof have; j++)
                    off += snprintf(have + off, sizeof have - (size_t)off, "%s%s", j ? ", " : "",
                                    k->cus[j]);
                return bad(err, errlen,
                           "model '%s': parameter 'compute_units': '%s' is not a compute unit of "
                           "kernel '%s' in %s (it has: %s)",
                           m, mc->cu_names[i], mc->kernel, xclbin, have);
            }
            snprintf(cus[i], XRT_NAME_MAX, "%s", mc->cu_names[i]);
        }
        *n_out = mc->n_cu_names;
        return HLT_OK;
    }
    int n = mc->n_cus ? mc->n_cus : k->n_cus;
    if (n > k->n_cus)
        return bad(err, errlen,
                   "model '%s': parameter 'compute_units' asks for %d, kernel '%s' in %s has %d", m,
                   n, mc->kernel, xclbin, k->n_cus);
    for (int i = 0; i < n; i++)
        snprintf(cus[i], XRT_NAME_MAX, "%s", k->cus[i]);
    *n_out = n;
    return HLT_OK;
}
