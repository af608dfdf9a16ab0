/* Model configuration: JSON (jansson) -> model_config_t -> completed from the graph ->
 * ModelConfig protobuf (protobuf-c). The JSON side follows protobuf's JSON mapping of Triton's
 * ModelConfig: 64-bit integers may be numbers or strings, enums are their names (or numbers),
 * unknown fields are ignored so that configs written for Triton load unchanged. */
#include "model_config.h"

#include "inference.pb-c.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hlt_status fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hlt_status fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return HLT_INVALID_ARGUMENT;
}

/* Integer from a JSON number or a decimal string (protobuf JSON writes 64-bit ints as
 * strings). */
static bool json_int(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || end == s || *end)
            return false;
        *out = x;
        return true;
    }
    return false;
}

static bool json_bool(const json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return false;
    *out = json_is_true(v);
    return true;
}

static hlt_status parse_dims(const char *what, const json_t *arr, int32_t *rank, int64_t *dims,
                             char *err, size_t errlen)
{
    if (!json_is_array(arr))
        return fail(err, errlen, "%s: 'dims' must be an array", what);
    if (json_array_size(arr) > ENGINE_MAX_RANK)
        return fail(err, errlen, "%s: 'dims' has %zu entries, at most %d supported", what,
                    json_array_size(arr), ENGINE_MAX_RANK);
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d)
    {
        int64_t x;
        if (!json_int(d, &x) || x < -1 || x == 0)
            return fail(err, errlen, "%s: dims[%zu] must be a positive integer or -1", what, i);
        dims[i] = x;
    }
    *rank = (int32_t)json_array_size(arr);
    return HLT_OK;
}

static hlt_status parse_dtype(const char *what, const json_t *v, hlt_dtype *out, char *err,
                              size_t errlen)
{
    int64_t n;
    if (json_is_string(v)) {
        *out = hlt_dtype_from_config_name(json_string_value(v));
        if (*out == HLT_TYPE_INVALID)
            return fail(err, errlen, "%s: unknown data_type '%s'", what, json_string_value(v));
        return HLT_OK;
    }
    if (json_int(v, &n) && n > 0 && n < HLT_TYPE_COUNT) {
        *out = (hlt_dtype)n;
        return HLT_OK;
    }
    return fail(err, errlen, "%s: 'data_type' must be a TYPE_* name", what);
}

static hlt_status parse_tensors(const char *model, const char *key, const json_t *arr,
                                model_tensor_cfg_t **out, size_t *n, char *err, size_t errlen)
{
    if (!arr)
        return HLT_OK;
    if (!json_is_array(arr))
        return fail(err, errlen, "model '%s': '%s' must be an array", model, key);
    size_t cnt = json_array_size(arr);
    model_tensor_cfg_t *t = calloc(cnt ? cnt : 1, sizeof *t);
    if (!t)
        return HLT_RESOURCE_EXHAUSTED;
    *out = t;
    *n = cnt;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        char what[256];
        if (!json_is_object(e))
            return fail(err, errlen, "model '%s': %s[%zu] must be an object", model, key, i);
        const json_t *name = json_object_get(e, "name");
        if (!json_is_string(name) || !*json_string_value(name))
            return fail(err, errlen, "model '%s': %s[%zu] needs a 'name'", model, key, i);
        t[i].name = strdup(json_string_value(name));
        t[i].rank = -1;
        snprintf(what, sizeof what, "model '%s': %s '%s'", model, key, t[i].name);
        const json_t *v;
        hlt_status st;
        if ((v = json_object_get(e, "data_type")) &&
            (st = parse_dtype(what, v, &t[i].dtype, err, errlen)))
            return st;
        if ((v = json_object_get(e, "dims")) &&
            (st = parse_dims(what, v, &t[i].rank, t[i].dims, err, errlen)))
            return st;
        if ((v = json_object_get(e, "optional")) && !json_bool(v, &t[i].optional))
            return fail(err, errlen, "%s: 'optional' must be a boolean", what);
        if (json_object_get(e, "reshape"))
            return fail(err, errlen, "%s: 'reshape' is not supported", what);
    }
    return HLT_OK;
}

static hlt_status parse_queue_policy(const char *what, const json_t *o, model_queue_policy_t *p,
                                     char *err, size_t errlen)
{
    if (!json_is_object(o))
        return fail(err, errlen, "%s must be an object", what);
    const json_t *v;
    int64_t x;
    if ((v = json_object_get(o, "timeout_action"))) {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, "REJECT"))
            p->timeout_action = QUEUE_TIMEOUT_REJECT;
        else if (s && !strcmp(s, "DELAY"))
            p->timeout_action = QUEUE_TIMEOUT_DELAY;
        else if (json_int(v, &x) && (x == 0 || x == 1))
            p->timeout_action = (queue_timeout_action)x;
        else
            return fail(err, errlen, "%s: 'timeout_action' must be REJECT or DELAY", what);
    }
    if ((v = json_object_get(o, "default_timeout_microseconds"))) {
        if (!json_int(v, &x) || x < 0)
            return fail(err, errlen, "%s: 'default_timeout_microseconds' must be >= 0", what);
        p->default_timeout_us = (uint64_t)x;
    }
    if ((v = json_object_get(o, "allow_timeout_override")) &&
        !json_bool(v, &p->allow_timeout_override))
        return fail(err, errlen, "%s: 'allow_timeout_override' must be a boolean", what);
    if ((v = json_object_get(o, "max_queue_size"))) {
        if (!json_int(v, &x) || x < 0 || x > UINT32_MAX)
            return fail(err, errlen, "%s: 'max_queue_size' must be a uint32", what);
        p->max_queue_size = (uint32_t)x;
    }
    return HLT_OK;
}

static hlt_status parse_dynamic_batching(const char *model, const json_t *o,
                                         model_dynamic_batching_t *db, char *err, size_t errlen)
{
    char what[300];
    snprintf(what, sizeof what, "model '%s': dynamic_batching", model);
    if (!json_is_object(o))
        return fail(err, errlen, "%s must be an object", what);
    db->enabled = true;
    db->priority_levels = 0;
    const json_t *v;
    int64_t x;
    if ((v = json_object_get(o, "preferred_batch_size"))) {
        if (!json_is_array(v))
            return fail(err, errlen, "%s: 'preferred_batch_size' must be an array", what);
        db->n_preferred = json_array_size(v);
        db->preferred_batch_size = calloc(db->n_preferred + 1, sizeof(int32_t));
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_int(e, &x) || x <= 0 || x > INT32_MAX)
                return fail(err, errlen, "%s: preferred_batch_size[%zu] must be positive", what, i);
            db->preferred_batch_size[i] = (int32_t)x;
        }
    }
    if ((v = json_object_get(o, "max_queue_delay_microseconds"))) {
        if (!json_int(v, &x) || x < 0)
            return fail(err, errlen, "%s: 'max_queue_delay_microseconds' must be >= 0", what);
        db->max_queue_delay_us = (uint64_t)x;
    }
    if ((v = json_object_get(o, "preserve_ordering")) && !json_bool(v, &db->preserve_ordering))
        return fail(err, errlen, "%s: 'preserve_ordering' must be a boolean", what);
    if ((v = json_object_get(o, "priority_levels"))) {
        if (!json_int(v, &x) || x < 0)
            return fail(err, errlen, "%s: 'priority_levels' must be >= 0", what);
        db->priority_levels = (uint64_t)x;
    }
    if ((v = json_object_get(o, "default_priority_level"))) {
        if (!json_int(v, &x) || x < 0 || (uint64_t)x > db->priority_levels)
            return fail(err, errlen,
                        "%s: 'default_priority_level' must be between 0 and priority_levels", what);
        db->default_priority_level = (uint64_t)x;
    }
    hlt_status st;
    if ((v = json_object_get(o, "default_queue_policy"))) {
        char w2[340];
        snprintf(w2, sizeof w2, "%s.default_queue_policy", what);
        if ((st = parse_queue_policy(w2, v, &db->default_queue_policy, err, errlen)))
            return st;
    }
    if ((v = json_object_get(o, "priority_queue_policy"))) {
        if (!json_is_object(v))
            return fail(err, errlen, "%s: 'priority_queue_policy' must be an object", what);
        db->priority_policies = calloc(json_object_size(v) + 1, sizeof *db->priority_policies);
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            char *end;
            errno = 0;
            unsigned long long lvl = strtoull(k, &end, 10);
            if (errno || end == k || *end || lvl == 0 || lvl > db->priority_levels)
                return fail(err, errlen,
                            "%s: priority_queue_policy key '%s' must be a level in 1..%" PRIu64,
                            what, k, db->priority_levels);
            model_priority_policy_t *pp = &db->priority_policies[db->n_priority_policies++];
            pp->level = lvl;
            pp->policy = db->default_queue_policy;
            char w2[400];
            snprintf(w2, sizeof w2, "%s.priority_queue_policy[%s]", what, k);
            if ((st = parse_queue_policy(w2, e, &pp->policy, err, errlen)))
                return st;
        }
    }
    return HLT_OK;
}

static hlt_status parse_instance_groups(const char *model, const json_t *arr, model_config_t *cfg,
                                        char *err, size_t errlen)
{
    if (!json_is_array(arr))
        return fail(err, errlen, "model '%s': 'instance_group' must be an array", model);
    cfg->n_instance_groups = json_array_size(arr);
    cfg->instance_groups = calloc(cfg->n_instance_groups + 1, sizeof *cfg->instance_groups);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        model_instance_group_t *g = &cfg->instance_groups[i];
        g->count = 1;
        if (!json_is_object(e))
            return fail(err, errlen, "model '%s': instance_group[%zu] must be an object", model, i);
        const json_t *v;
        int64_t x;
        if ((v = json_object_get(e, "name")) && json_is_string(v))
            g->name = strdup(json_string_value(v));
        if ((v = json_object_get(e, "count"))) {
            if (!json_int(v, &x) || x < 1 || x > 256)
                return fail(err, errlen, "model '%s': instance_group[%zu].count must be in 1..256",
                            model, i);
            g->count = (int32_t)x;
        }
        if ((v = json_object_get(e, "kind"))) {
            static const char *kinds[] = {"KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"};
            const char *s = json_string_value(v);
            int k = -1;
            for (int j = 0; s && j < 4; j++)
                if (!strcmp(s, kinds[j]))
                    k = j;
            if (k < 0 && json_int(v, &x) && x >= 0 && x < 4)
                k = (int)x;
            if (k < 0)
                return fail(err, errlen, "model '%s': instance_group[%zu].kind is not a KIND_*",
                            model, i);
            g->kind = (instance_kind)k;
        }
        if ((v = json_object_get(e, "gpus"))) {
            if (!json_is_array(v))
                return fail(err, errlen, "model '%s': instance_group[%zu].gpus must be an array",
                            model, i);
            g->n_gpus = json_array_size(v);
            g->gpus = calloc(g->n_gpus + 1, sizeof *g->gpus);
            for (size_t j = 0; j < g->n_gpus; j++) {
                if (!json_int(json_array_get(v, j), &x) || x < 0 || x > INT32_MAX)
                    return fail(err, errlen, "model '%s': instance_group[%zu].gpus[%zu] invalid",
                                model, i, j);
                g->gpus[j] = (int32_t)x;
            }
        }
    }
    return HLT_OK;
}

static hlt_status parse_version_policy(const char *model, const json_t *o, model_config_t *cfg,
                                       char *err, size_t errlen)
{
    const json_t *v;
    int64_t x;
    if (!json_is_object(o))
        return fail(err, errlen, "model '%s': 'version_policy' must be an object", model);
    if ((v = json_object_get(o, "latest"))) {
        cfg->version_policy = VERSION_POLICY_LATEST;
        const json_t *n = json_object_get(v, "num_versions");
        if (n) {
            if (!json_int(n, &x) || x < 1 || x > 1000)
                return fail(err, errlen,
                            "model '%s': version_policy.latest.num_versions must be >= 1", model);
            cfg->latest_num_versions = (uint32_t)x;
        }
    } else if (json_object_get(o, "all")) {
        cfg->version_policy = VERSION_POLICY_ALL;
    } else if ((v = json_object_get(o, "specific"))) {
        cfg->version_policy = VERSION_POLICY_SPECIFIC;
        const json_t *arr = json_object_get(v, "versions");
        if (!json_is_array(arr) || json_array_size(arr) == 0)
            return fail(err, errlen,
                        "model '%s': version_policy.specific.versions must list versions", model);
        cfg->n_specific_versions = json_array_size(arr);
        cfg->specific_versions = calloc(cfg->n_specific_versions, sizeof(int64_t));
        for (size_t i = 0; i < cfg->n_specific_versions; i++)
            if (!json_int(json_array_get(arr, i), &cfg->specific_versions[i]) ||
                cfg->specific_versions[i] < 0)
                return fail(err, errlen,
                            "model '%s': version_policy.specific.versions[%zu] invalid", model, i);
    } else {
        return fail(err, errlen, "model '%s': version_policy needs latest, all or specific", model);
    }
    return HLT_OK;
}

static hlt_status parse_kv_object(const char *what, const json_t *o, bool model_param,
                                  model_kv_t **out, size_t *n, char *err, size_t errlen)
{
    if (!json_is_object(o))
        return fail(err, errlen, "%s must be an object", what);
    *out = calloc(json_object_size(o) + 1, sizeof **out);
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)o, k, e)
    {
        /* ModelParameter is {"string_value": "..."}; agent parameters are plain strings. */
        const json_t *sv = model_param ? json_object_get(e, "string_value") : e;
        if (!json_is_string(sv))
            return fail(err, errlen, "%s['%s'] must be %s", what, k,
                        model_param ? "{\"string_value\": \"...\"}" : "a string");
        (*out)[*n].key = strdup(k);
        (*out)[*n].value = strdup(json_string_value(sv));
        (*n)++;
    }
    return HLT_OK;
}

static hlt_status parse_agents(const char *model, const json_t *o, model_config_t *cfg, char *err,
                               size_t errlen)
{
    const json_t *arr = json_object_get(o, "agents");
    if (!json_is_array(arr))
        return fail(err, errlen, "model '%s': model_repository_agents.agents must be an array",
                    model);
    cfg->n_agents = json_array_size(arr);
    cfg->agents = calloc(cfg->n_agents + 1, sizeof *cfg->agents);
    for (size_t i = 0; i < cfg->n_agents; i++) {
        const json_t *a = json_array_get(arr, i);
        const json_t *name = json_object_get(a, "name");
        if (!json_is_string(name))
            return fail(err, errlen, "model '%s': model_repository_agents.agents[%zu] needs a name",
                        model, i);
        cfg->agents[i].name = strdup(json_string_value(name));
        const json_t *p = json_object_get(a, "parameters");
        char what[300];
        snprintf(what, sizeof what, "model '%s': agent '%s' parameters", model,
                 cfg->agents[i].name);
        hlt_status st;
        if (p && (st = parse_kv_object(what, p, false, &cfg->agents[i].params,
                                       &cfg->agents[i].n_params, err, errlen)))
            return st;
    }
    return HLT_OK;
}

static hlt_status parse_doc(model_config_t *cfg, const json_t *root, char *err, size_t errlen)
{
    const char *m = cfg->name;
    if (!json_is_object(root))
        return fail(err, errlen, "model '%s': config.json must hold a JSON object", m);
    const json_t *v;
    int64_t x;
    hlt_status st;
    if ((v = json_object_get(root, "name")) && json_is_string(v) &&
        strcmp(json_string_value(v), m) != 0)
        return fail(err, errlen,
                    "model '%s': config.json names the model '%s'; the name must match the "
                    "directory",
                    m, json_string_value(v));
    if ((v = json_object_get(root, "backend"))) {
        if (!json_is_string(v))
            return fail(err, errlen, "model '%s': 'backend' must be a string", m);
        cfg->backend = strdup(json_string_value(v));
    }
    if ((v = json_object_get(root, "platform"))) {
        if (!json_is_string(v))
            return fail(err, errlen, "model '%s': 'platform' must be a string", m);
        cfg->platform = strdup(json_string_value(v));
    }
    if ((v = json_object_get(root, "max_batch_size"))) {
        if (!json_int(v, &x) || x < 0 || x > INT32_MAX)
            return fail(err, errlen, "model '%s': 'max_batch_size' must be a non-negative int32",
                        m);
        cfg->max_batch_size = (int32_t)x;
        cfg->max_batch_size_set = true;
    }
    if ((st = parse_tensors(m, "input", json_object_get(root, "input"), &cfg->inputs,
                            &cfg->n_inputs, err, errlen)))
        return st;
    if ((st = parse_tensors(m, "output", json_object_get(root, "output"), &cfg->outputs,
                            &cfg->n_outputs, err, errlen)))
        return st;
    if ((v = json_object_get(root, "dynamic_batching")) &&
        (st = parse_dynamic_batching(m, v, &cfg->dynamic_batching, err, errlen)))
        return st;
    if (json_object_get(root, "sequence_batching") || json_object_get(root, "ensemble_scheduling"))
        return fail(err, errlen,
                    "model '%s': sequence_batching and ensemble_scheduling are not supported", m);
    if ((v = json_object_get(root, "instance_group")) &&
        (st = parse_instance_groups(m, v, cfg, err, errlen)))
        return st;
    if ((v = json_object_get(root, "version_policy")) &&
        (st = parse_version_policy(m, v, cfg, err, errlen)))
        return st;
    if ((v = json_object_get(root, "parameters"))) {
        char what[300];
        snprintf(what, sizeof what, "model '%s': parameters", m);
        if ((st =
                 parse_kv_object(what, v, true, &cfg->parameters, &cfg->n_parameters, err, errlen)))
            return st;
    }
    if ((v = json_object_get(root, "model_repository_agents")) &&
        (st = parse_agents(m, v, cfg, err, errlen)))
        return st;
    if ((v = json_object_get(root, "default_model_filename"))) {
        const char *s = json_string_value(v);
        if (!s || !*s || strchr(s, '/') || !strcmp(s, "..") || !strcmp(s, "."))
            return fail(err, errlen, "model '%s': 'default_model_filename' must be a file name", m);
        cfg->default_model_filename = strdup(s);
    }
    return HLT_OK;
}

hlt_status model_config_parse(const char *name, const char *text, size_t len, model_config_t **out,
                              char *err, size_t errlen)
{
    model_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return HLT_RESOURCE_EXHAUSTED;
    cfg->name = strdup(name);
    cfg->version_policy = VERSION_POLICY_LATEST;
    cfg->latest_num_versions = 1;
    hlt_status st = HLT_OK;
    if (text) {
        json_error_t jerr;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
            st = fail(err, errlen, "model '%s': config.json line %d column %d: %s", name, jerr.line,
                      jerr.column, jerr.text);
            goto done;
        }
        st = parse_doc(cfg, root, err, errlen);
        json_decref(root);
    }
done:
    if (st) {
        model_config_destroy(cfg);
        return st;
    }
    *out = cfg;
    return HLT_OK;
}

hlt_status model_config_load(const char *dir, const char *name, model_config_t **out, char *err,
                             size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return model_config_parse(name, NULL, 0, out, err, errlen);
        return fail(err, errlen, "model '%s': cannot read %s: %s", name, path, strerror(errno));
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    hlt_status st = HLT_OK;
    for (;;) {
        if (len + 4096 > cap) {
            if (cap > (64u << 20)) {
                st = fail(err, errlen, "model '%s': config.json is larger than 64 MiB", name);
                goto done;
            }
            char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
            if (!nb) {
                st = HLT_RESOURCE_EXHAUSTED;
                goto done;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        st = fail(err, errlen, "model '%s': error reading %s", name, path);
        goto done;
    }
    st = model_config_parse(name, buf, len, out, err, errlen);
done:
    fclose(f);
    free(buf);
    return st;
}

static void free_kv(model_kv_t *kv, size_t n)
{
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void model_config_destroy(model_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; cfg->inputs && i < cfg->n_inputs; i++)
        free(cfg->inputs[i].name);
    for (size_t i = 0; cfg->outputs && i < cfg->n_outputs; i++)
        free(cfg->outputs[i].name);
    free(cfg->inputs);
    free(cfg->outputs);
    free(cfg->dynamic_batching.preferred_batch_size);
    free(cfg->dynamic_batching.priority_policies);
    for (size_t i = 0; cfg->instance_groups && i < cfg->n_instance_groups; i++) {
        free(cfg->instance_groups[i].name);
        free(cfg->instance_groups[i].gpus);
    }
    free(cfg->instance_groups);
    free(cfg->specific_versions);
    free_kv(cfg->parameters, cfg->n_parameters);
    for (size_t i = 0; cfg->agents && i < cfg->n_agents; i++) {
        free(cfg->agents[i].name);
        free_kv(cfg->agents[i].params, cfg->agents[i].n_params);
    }
    free(cfg->agents);
    free(cfg->default_model_filename);
    free(cfg->name);
    free(cfg->backend);
    free(cfg->platform);
    free(cfg);
}

/* ---- completion from the graph ---- */

static bool leading_dim_batches(const engine_tensor_desc_t *d)
{
    return d->rank >= 1 && d->dims[0] == -1;
}

static void fill_from_graph(model_tensor_cfg_t *t, const engine_tensor_desc_t *d, bool batching)
{
    if (!t->name)
        t->name = strdup(d->name);
    if (t->dtype == HLT_TYPE_INVALID)
        t->dtype = d->dtype;
    if (t->rank < 0 && d->rank >= 0) {
        int skip = batching ? 1 : 0;
        t->rank = d->rank - skip;
        for (int32_t i = 0; i < t->rank; i++)
            t->dims[i] = d->dims[i + skip];
    }
}

/* Checks one config tensor against the graph's declaration of the same tensor. */
static hlt_status check_tensor(const char *model, const char *kind, const model_tensor_cfg_t *t,
                               const engine_tensor_desc_t *d, bool batching, char *err,
                               size_t errlen)
{
    if (t->dtype != d->dtype)
        return fail(
            err, errlen, "model '%s': %s '%s': config data_type %s does not match the model's %s",
            model, kind, t->name, hlt_dtype_config_name(t->dtype), hlt_dtype_config_name(d->dtype));
    if (t->rank < 0)
        return fail(err, errlen, "model '%s': %s '%s': no dims in the config or the model", model,
                    kind, t->name);
    if (d->rank < 0)
        return HLT_OK;
    int skip = batching ? 1 : 0;
    if (batching && !leading_dim_batches(d))
        return fail(err, errlen,
                    "model '%s': %s '%s': max_batch_size > 0 needs a symbolic or -1 leading dim "
                    "in the model, which declares %" PRId64,
                    model, kind, t->name, d->rank ? d->dims[0] : 0);
    if (t->rank != d->rank - skip)
        return fail(err, errlen, "model '%s': %s '%s': config has %d dims%s, the model has %d",
                    model, kind, t->name, t->rank, batching ? " (+ batch)" : "", d->rank);
    for (int32_t i = 0; i < t->rank; i++) {
        int64_t gd = d->dims[i + skip];
        if (gd != -1 && t->dims[i] != -1 && gd != t->dims[i])
            return fail(err, errlen,
                        "model '%s': %s '%s': config dims[%d] = %" PRId64
                        " but the model declares %" PRId64,
                        model, kind, t->name, i, t->dims[i], gd);
    }
    return HLT_OK;
}

static hlt_status complete_list(const char *model, const char *kind, model_tensor_cfg_t **list,
                                size_t *n, size_t ng,
                                const engine_tensor_desc_t *(*get)(const engine_graph_t *, size_t),
                                const engine_graph_t *g, bool batching, char *err, size_t errlen)
{
    if (*n == 0) {
        free(*list);
        *list = calloc(ng + 1, sizeof **list);
        if (!*list)
            return HLT_RESOURCE_EXHAUSTED;
        *n = ng;
        for (size_t i = 0; i < ng; i++)
            (*list)[i].rank = -1;
    }
    for (size_t i = 0; i < *n; i++) {
        model_tensor_cfg_t *t = &(*list)[i];
        const engine_tensor_desc_t *d = NULL;
        if (!t->name) {
            d = get(g, i);
        } else {
            for (size_t j = 0; j < ng && !d; j++)
                if (!strcmp(get(g, j)->name, t->name))
                    d = get(g, j);
            if (!d)
                return fail(err, errlen, "model '%s': config %s '%s' is not in the model", model,
                            kind, t->name);
        }
        fill_from_graph(t, d, batching);
        hlt_status st = check_tensor(model, kind, t, d, batching, err, errlen);
        if (st)
            return st;
        for (size_t j = 0; j < i; j++)
            if (!strcmp((*list)[j].name, t->name))
                return fail(err, errlen, "model '%s': %s '%s' is listed twice", model, kind,
                            t->name);
    }
    return HLT_OK;
}

hlt_status model_config_complete(model_config_t *cfg, const engine_graph_t *g,
                                 int32_t default_max_batch, char *err, size_t errlen)
{
    const char *m = cfg->name;
    size_t ni = engine_graph_num_inputs(g), no = engine_graph_num_outputs(g);
    if (cfg->backend && *cfg->backend && strcmp(cfg->backend, "onnxruntime") &&
        strcmp(cfg->backend, "onnx") && strcmp(cfg->backend, "hltinfer"))
        return fail(err, errlen,
                    "model '%s': backend '%s' is not supported here (ONNX models use "
                    "'onnxruntime')",
                    m, cfg->backend);
    if (cfg->platform && *cfg->platform && strcmp(cfg->platform, "onnxruntime_onnx"))
        return fail(err, errlen,
                    "model '%s': platform '%s' is not supported (use onnxruntime_onnx)", m,
                    cfg->platform);
    free(cfg->backend);
    free(cfg->platform);
    cfg->backend = strdup("onnxruntime");
    cfg->platform = strdup("onnxruntime_onnx");

    if (!cfg->max_batch_size_set) {
        bool all = ni + no > 0;
        for (size_t i = 0; i < ni; i++)
            all = all && leading_dim_batches(engine_graph_input(g, i));
        for (size_t i = 0; i < no; i++)
            all = all && leading_dim_batches(engine_graph_output(g, i));
        cfg->max_batch_size = all ? default_max_batch : 0;
        cfg->max_batch_size_set = true;
    }
    bool batching = cfg->max_batch_size > 0;
    hlt_status st;
    if ((st = complete_list(m, "input", &cfg->inputs, &cfg->n_inputs, ni, engine_graph_input, g,
                            batching, err, errlen)))
        return st;
    if ((st = complete_list(m, "output", &cfg->outputs, &cfg->n_outputs, no, engine_graph_output, g,
                            batching, err, errlen)))
        return st;
    for (size_t i = 0; i < ni; i++) {
        const engine_tensor_desc_t *d = engine_graph_input(g, i);
        if (model_config_find_input(cfg, d->name, strlen(d->name)) < 0)
            return fail(err, errlen, "model '%s': the model's input '%s' is missing in the config",
                        m, d->name);
    }
    if (cfg->n_instance_groups == 0) {
        cfg->instance_groups = calloc(1, sizeof *cfg->instance_groups);
        if (!cfg->instance_groups)
            return HLT_RESOURCE_EXHAUSTED;
        cfg->n_instance_groups = 1;
        cfg->instance_groups[0].count = 1;
    }
    for (size_t i = 0; i < cfg->n_instance_groups; i++) {
        model_instance_group_t *ig = &cfg->instance_groups[i];
        if (ig->kind == INSTANCE_KIND_AUTO)
            ig->kind = INSTANCE_KIND_CPU; /* as Triton without a GPU in the group: CPU */
        if (ig->kind == INSTANCE_KIND_MODEL)
            return fail(err, errlen,
                        "model '%s': instance_group[%zu] is KIND_MODEL, which only bitstream "
                        "(FPGA) models use",
                        m, i);
        if (!ig->name) {
            char nm[300];
            snprintf(nm, sizeof nm, "%s_%zu", m, i);
            ig->name = strdup(nm);
        }
    }
    return HLT_OK;
}

static hlt_status check_declared(const char *m, const char *kind, const model_tensor_cfg_t *t,
                                 size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return fail(err, errlen, "model '%s': a bitstream model must declare its %ss", m, kind);
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name)
            return fail(err, errlen, "model '%s': %s[%zu] needs a name", m, kind, i);
        if (t[i].dtype == HLT_TYPE_INVALID || t[i].dtype == HLT_TYPE_BYTES)
            return fail(err, errlen, "model '%s': %s '%s' needs a numeric data_type", m, kind,
                        t[i].name);
        if (t[i].rank < 1)
            return fail(err, errlen, "model '%s': %s '%s' needs dims", m, kind, t[i].name);
        for (int32_t d = 0; d < t[i].rank; d++)
            if (t[i].dims[d] < 1)
                return fail(err, errlen, "model '%s': %s '%s': dims must be fixed (no -1)", m, kind,
                            t[i].name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t[j].name, t[i].name))
                return fail(err, errlen, "model '%s': %s '%s' is listed twice", m, kind, t[i].name);
    }
    return HLT_OK;
}

hlt_status model_config_complete_declared(model_config_t *cfg, char *err, size_t errlen)
{
    const char *m = cfg->name;
    hlt_status st;
    if ((st = check_declared(m, "input", cfg->inputs, cfg->n_inputs, err, errlen)) ||
        (st = check_declared(m, "output", cfg->outputs, cfg->n_outputs, err, errlen)))
        return st;
    if (!cfg->max_batch_size_set)
        cfg->max_batch_size_set = true; /* 0: whole tensors as declared */
    free(cfg->platform);
    cfg->platform = strdup("xrt_xclbin");
    if (cfg->n_instance_groups == 0) {
        cfg->instance_groups = calloc(1, sizeof *cfg->instance_groups);
        if (!cfg->instance_groups)
            return HLT_RESOURCE_EXHAUSTED;
        cfg->n_instance_groups = 1;
        cfg->instance_groups[0].count = 1;
        cfg->instance_groups[0].kind = INSTANCE_KIND_MODEL;
    }
    for (size_t i = 0; i < cfg->n_instance_groups; i++) {
        model_instance_group_t *ig = &cfg->instance_groups[i];
        if (ig->kind == INSTANCE_KIND_AUTO)
            ig->kind = INSTANCE_KIND_MODEL;
        if (ig->kind != INSTANCE_KIND_MODEL)
            return fail(err, errlen,
                        "model '%s': instance_group[%zu]: a bitstream model runs on its own "
                        "device (KIND_MODEL or KIND_AUTO)",
                        m, i);
        if (!ig->name) {
            char nm[300];
            snprintf(nm, sizeof nm, "%s_%zu", m, i);
            ig->name = strdup(nm);
        }
    }
    return HLT_OK;
}

int model_config_find_input(const model_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_inputs; i++)
        if (strlen(cfg->inputs[i].name) == len && !memcmp(cfg->inputs[i].name, name, len))
            return (int)i;
    return -1;
}

int model_config_find_output(const model_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_outputs; i++)
        if (strlen(cfg->outputs[i].name) == len && !memcmp(cfg->outputs[i].name, name, len))
            return (int)i;
    return -1;
}

int32_t model_config_instance_count(const model_config_t *cfg)
{
    int32_t n = 0;
    for (size_t i = 0; i < cfg->n_instance_groups; i++)
        n += cfg->instance_groups[i].count;
    return n;
}

/* ---- ModelConfig protobuf ---- */

/* Everything the packed message points to lives in one arena freed after packing. */
typedef struct arena {
    void *blocks[4096];
    size_t n;
    bool failed;
} arena_t;

static void *arena_alloc(arena_t *a, size_t size)
{
    if (a->n == sizeof a->blocks / sizeof a->blocks[0]) {
        a->failed = true;
        return NULL;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p)
        a->failed = true;
    else
        a->blocks[a->n++] = p;
    return p;
}

static void arena_free(arena_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
}

static void fill_input(arena_t *a, Inference__ModelInput *pi, const model_tensor_cfg_t *t)
{
    inference__model_input__init(pi);
    pi->name = t->name;
    pi->data_type = (Inference__DataType)t->dtype;
    pi->n_dims = (size_t)(t->rank > 0 ? t->rank : 0);
    pi->dims = arena_alloc(a, sizeof(int64_t) * (pi->n_dims + 1));
    if (pi->dims)
        memcpy(pi->dims, t->dims, sizeof(int64_t) * pi->n_dims);
    pi->optional = t->optional;
}

static void fill_output(arena_t *a, Inference__ModelOutput *po, const model_tensor_cfg_t *t)
{
    inference__model_output__init(po);
    po->name = t->name;
    po->data_type = (Inference__DataType)t->dtype;
    po->n_dims = (size_t)(t->rank > 0 ? t->rank : 0);
    po->dims = arena_alloc(a, sizeof(int64_t) * (po->n_dims + 1));
    if (po->dims)
        memcpy(po->dims, t->dims, sizeof(int64_t) * po->n_dims);
}

static void fill_queue_policy(Inference__ModelQueuePolicy *q, const model_queue_policy_t *p)
{
    inference__model_queue_policy__init(q);
    q->timeout_action = (Inference__ModelQueuePolicy__TimeoutAction)p->timeout_action;
    q->default_timeout_microseconds = p->default_timeout_us;
    q->allow_timeout_override = p->allow_timeout_override;
    q->max_queue_size = p->max_queue_size;
}

static void fill_dynamic_batching(arena_t *a, Inference__ModelConfig *pc,
                                  const model_dynamic_batching_t *db)
{
    Inference__ModelDynamicBatching *d = arena_alloc(a, sizeof *d);
    if (!d)
        return;
    inference__model_dynamic_batching__init(d);
    d->n_preferred_batch_size = db->n_preferred;
    d->preferred_batch_size = db->preferred_batch_size;
    d->max_queue_delay_microseconds = db->max_queue_delay_us;
    d->preserve_ordering = db->preserve_ordering;
    d->priority_levels = db->priority_levels;
    d->default_priority_level = db->default_priority_level;
    d->default_queue_policy = arena_alloc(a, sizeof *d->default_queue_policy);
    if (d->default_queue_policy)
        fill_queue_policy(d->default_queue_policy, &db->default_queue_policy);
    if (db->n_priority_policies) {
        d->n_priority_queue_policy = db->n_priority_policies;
        d->priority_queue_policy = arena_alloc(a, sizeof(void *) * db->n_priority_policies);
        for (size_t i = 0; d->priority_queue_policy && i < db->n_priority_policies; i++) {
            Inference__ModelDynamicBatching__PriorityQueuePolicyEntry *e =
                arena_alloc(a, sizeof *e);
            Inference__ModelQueuePolicy *q = arena_alloc(a, sizeof *q);
            if (!e || !q)
                return;
            inference__model_dynamic_batching__priority_queue_policy_entry__init(e);
            e->key = db->priority_policies[i].level;
            fill_queue_policy(q, &db->priority_policies[i].policy);
            e->value = q;
            d->priority_queue_policy[i] = e;
        }
    }
    pc->scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING;
    pc->dynamic_batching = d;
}

static void fill_version_policy(arena_t *a, Inference__ModelConfig *pc, const model_config_t *cfg)
{
    Inference__ModelVersionPolicy *vp = arena_alloc(a, sizeof *vp);
    if (!vp)
        return;
    inference__model_version_policy__init(vp);
    if (cfg->version_policy == VERSION_POLICY_ALL) {
        Inference__ModelVersionPolicy__All *all = arena_alloc(a, sizeof *all);
        if (!all)
            return;
        inference__model_version_policy__all__init(all);
        vp->policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL;
        vp->all = all;
    } else if (cfg->version_policy == VERSION_POLICY_SPECIFIC) {
        Inference__ModelVersionPolicy__Specific *sp = arena_alloc(a, sizeof *sp);
        if (!sp)
            return;
        inference__model_version_policy__specific__init(sp);
        sp->n_versions = cfg->n_specific_versions;
        sp->versions = cfg->specific_versions;
        vp->policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC;
        vp->specific = sp;
    } else {
        Inference__ModelVersionPolicy__Latest *l = arena_alloc(a, sizeof *l);
        if (!l)
            return;
        inference__model_version_policy__latest__init(l);
        l->num_versions = cfg->latest_num_versions;
        vp->policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST;
        vp->latest = l;
    }
    pc->version_policy = vp;
}

static void fill_instance_groups(arena_t *a, Inference__ModelConfig *pc, const model_config_t *cfg)
{
    pc->n_instance_group = cfg->n_instance_groups;
    pc->instance_group = arena_alloc(a, sizeof(void *) * (cfg->n_instance_groups + 1));
    for (size_t i = 0; pc->instance_group && i < cfg->n_instance_groups; i++) {
        const model_instance_group_t *g = &cfg->instance_groups[i];
        Inference__ModelInstanceGroup *pg = arena_alloc(a, sizeof *pg);
        if (!pg)
            return;
        inference__model_instance_group__init(pg);
        pg->name = g->name;
        pg->kind = (Inference__ModelInstanceGroup__Kind)g->kind;
        pg->count = g->count;
        pg->n_gpus = g->n_gpus;
        pg->gpus = g->gpus;
        pc->instance_group[i] = pg;
    }
}

static void fill_parameters_and_agents(arena_t *a, Inference__ModelConfig *pc,
                                       const model_config_t *cfg)
{
    pc->n_parameters = cfg->n_parameters;
    pc->parameters = arena_alloc(a, sizeof(void *) * (cfg->n_parameters + 1));
    for (size_t i = 0; pc->parameters && i < cfg->n_parameters; i++) {
        Inference__ModelConfig__ParametersEntry *e = arena_alloc(a, sizeof *e);
        Inference__ModelParameter *p = arena_alloc(a, sizeof *p);
        if (!e || !p)
            return;
        inference__model_config__parameters_entry__init(e);
        inference__model_parameter__init(p);
        p->string_value = cfg->parameters[i].value;
        e->key = cfg->parameters[i].key;
        e->value = p;
        pc->parameters[i] = e;
    }
    if (!cfg->n_agents)
        return;
    Inference__ModelRepositoryAgents *ra = arena_alloc(a, sizeof *ra);
    if (!ra)
        return;
    inference__model_repository_agents__init(ra);
    ra->n_agents = cfg->n_agents;
    ra->agents = arena_alloc(a, sizeof(void *) * cfg->n_agents);
    for (size_t i = 0; ra->agents && i < cfg->n_agents; i++) {
        Inference__ModelRepositoryAgents__Agent *ag = arena_alloc(a, sizeof *ag);
        if (!ag)
            return;
        inference__model_repository_agents__agent__init(ag);
        ag->name = cfg->agents[i].name;
        ag->n_parameters = cfg->agents[i].n_params;
        ag->parameters = arena_alloc(a, sizeof(void *) * (ag->n_parameters + 1));
        for (size_t j = 0; ag->parameters && j < ag->n_parameters; j++) {
            Inference__ModelRepositoryAgents__Agent__ParametersEntry *e = arena_alloc(a, sizeof *e);
            if (!e)
                return;
            inference__model_repository_agents__agent__parameters_entry__init(e);
            e->key = cfg->agents[i].params[j].key;
            e->value = cfg->agents[i].params[j].value;
            ag->parameters[j] = e;
        }
        ra->agents[i] = ag;
    }
    pc->model_repository_agents = ra;
}

hlt_status model_config_pack_response(const model_config_t *cfg, uint8_t **buf, size_t *len)
{
    arena_t *a = calloc(1, sizeof *a);
    if (!a)
        return HLT_RESOURCE_EXHAUSTED;
    Inference__ModelConfig pc = INFERENCE__MODEL_CONFIG__INIT;
    pc.name = cfg->name;
    pc.platform = cfg->platform ? cfg->platform : (char *)"";
    pc.backend = cfg->backend ? cfg->backend : (char *)"";
    pc.max_batch_size = cfg->max_batch_size;
    pc.n_input = cfg->n_inputs;
    pc.input = arena_alloc(a, sizeof(void *) * (cfg->n_inputs + 1));
    for (size_t i = 0; pc.input && i < cfg->n_inputs; i++) {
        pc.input[i] = arena_alloc(a, sizeof(Inference__ModelInput));
        if (pc.input[i])
            fill_input(a, pc.input[i], &cfg->inputs[i]);
    }
    pc.n_output = cfg->n_outputs;
    pc.output = arena_alloc(a, sizeof(void *) * (cfg->n_outputs + 1));
    for (size_t i = 0; pc.output && i < cfg->n_outputs; i++) {
        pc.output[i] = arena_alloc(a, sizeof(Inference__ModelOutput));
        if (pc.output[i])
            fill_output(a, pc.output[i], &cfg->outputs[i]);
    }
    if (cfg->dynamic_batching.enabled)
        fill_dynamic_batching(a, &pc, &cfg->dynamic_batching);
    fill_version_policy(a, &pc, cfg);
    fill_instance_groups(a, &pc, cfg);
    fill_parameters_and_agents(a, &pc, cfg);
    if (cfg->default_model_filename)
        pc.default_model_filename = cfg->default_model_filename;

    hlt_status st = HLT_OK;
    if (a->failed) {
        st = HLT_RESOURCE_EXHAUSTED;
        goto done;
    }
    Inference__ModelConfigResponse resp = INFERENCE__MODEL_CONFIG_RESPONSE__INIT;
    resp.config = &pc;
    *len = inference__model_config_response__get_packed_size(&resp);
    *buf = malloc(*len ? *len : 1);
    if (!*buf) {
        st = HLT_RESOURCE_EXHAUSTED;
        goto done;
    }
    inference__model_config_response__pack(&resp, *buf);
done:
    arena_free(a);
    free(a);
    return st;
}
