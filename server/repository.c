/* Model repository: directory scan, version selection, state table, hot reload.
 *
 * The table maps a model name to its served versions (each a referenced model_t) and its
 * state. Lookups take the table mutex for a few comparisons and a reference increment; loads
 * build the new versions outside it and swap them in, so requests never wait for a load. A
 * replaced or unloaded version is retired after the swap: it finishes its queued requests,
 * then goes. */
#include "repository.h"

#include "log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct version_slot {
    int64_t version;
    model_t *model; /* NULL when this version failed to load */
    char *reason;
} version_slot_t;

typedef struct entry {
    char *name;
    bool tried;    /* a load was attempted */
    bool unloaded; /* explicitly unloaded */
    char *reason;  /* why the last load failed (whole model) or NULL */
    size_t n_versions;
    version_slot_t *versions; /* highest version first */
} entry_t;

struct repo {
    char *root;
    model_load_options_t load;
    pthread_mutex_t mu;      /* guards entries */
    pthread_mutex_t load_mu; /* serialises loads and unloads */
    size_t n_entries, cap_entries;
    entry_t *entries;
};

static hlt_status fail(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hlt_status fail(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

repo_t *repo_create(const repo_options_t *opts)
{
    repo_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->root = strdup(opts->root);
    r->load = opts->load;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->load_mu, NULL);
    return r;
}

static void free_versions(version_slot_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        if (v[i].model) {
            model_retire(v[i].model);
            model_unref(v[i].model);
        }
        free(v[i].reason);
    }
    free(v);
}

void repo_destroy(repo_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_entries; i++) {
        free_versions(r->entries[i].versions, r->entries[i].n_versions);
        free(r->entries[i].name);
        free(r->entries[i].reason);
    }
    free(r->entries);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->load_mu);
    free(r->root);
    free(r);
}

static bool is_model_dir_name(const char *s)
{
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256;
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool parse_version(const char *s, size_t len, int64_t *v)
{
    if (len == 0 || len > 18)
        return false;
    int64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Numeric subdirectories of dir, highest first. Non-numeric ones (reference data, labels) are
 * not versions and are ignored, as in Triton. */
static size_t list_versions(const char *dir, int64_t **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t v;
        char path[4352];
        if (!parse_version(de->d_name, strlen(de->d_name), &v))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path ||
            !is_dir(path))
            continue;
        if (n == cap) {
            int64_t *nv = realloc(*out, (cap = cap ? cap * 2 : 8) * sizeof **out);
            if (!nv)
                break;
            *out = nv;
        }
        (*out)[n++] = v;
    }
    closedir(d);
    if (n)
        qsort(*out, n, sizeof **out, cmp_desc);
    return n;
}

static entry_t *find_entry(repo_t *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->n_entries; i++)
        if (strlen(r->entries[i].name) == len && !memcmp(r->entries[i].name, name, len))
            return &r->entries[i];
    return NULL;
}

static entry_t *get_or_add_entry(repo_t *r, const char *name)
{
    entry_t *e = find_entry(r, name, strlen(name));
    if (e)
        return e;
    if (r->n_entries == r->cap_entries) {
        size_t cap = r->cap_entries ? r->cap_entries * 2 : 16;
        entry_t *ne = realloc(r->entries, cap * sizeof *ne);
        if (!ne)
            return NULL;
        r->entries = ne;
        r->cap_entries = cap;
    }
    e = &r->entries[r->n_entries++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    return e;
}

/* Marks the model's load as failed with reason; served versions stay. Caller holds load_mu. */
static void record_failure(repo_t *r, const char *name, const char *reason)
{
    pthread_mutex_lock(&r->mu);
    entry_t *e = get_or_add_entry(r, name);
    if (e) {
        e->tried = true;
        e->unloaded = false; /* the failure is the news now, not the earlier unload */
        free(e->reason);
        e->reason = strdup(reason);
    }
    pthread_mutex_unlock(&r->mu);
    HLT_LOG(HLT_LOG_ERROR, "event=model_load_failed model=%s reason=\"%s\"", name, reason);
}

static size_t select_versions(const model_config_t *cfg, const int64_t *all, size_t n, int64_t *sel)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool take = false;
        if (cfg->version_policy == VERSION_POLICY_ALL)
            take = true;
        else if (cfg->version_policy == VERSION_POLICY_LATEST)
            take = i < cfg->latest_num_versions;
        else
            for (size_t j = 0; j < cfg->n_specific_versions; j++)
                take = take || cfg->specific_versions[j] == all[i];
        if (take)
            sel[k++] = all[i];
    }
    return k;
}

static hlt_status load_locked(repo_t *r, const char *name, char *err, size_t errlen)
{
    char dir[4352];
    char reason[1024];
    hlt_status st;
    if (!is_model_dir_name(name) ||
        snprintf(dir, sizeof dir, "%s/%s", r->root, name) >= (int)sizeof dir || !is_dir(dir))
        return fail(err, errlen, HLT_NOT_FOUND, "model '%s' is not in the model repository %s",
                    name, r->root);
    model_config_t *cfg = NULL;
    if ((st = model_config_load(dir, name, &cfg, reason, sizeof reason))) {
        record_failure(r, name, reason);
        return fail(err, errlen, st, "%s", reason);
    }
    int64_t *all = NULL;
    size_t n_all = list_versions(dir, &all);
    int64_t *sel = calloc(n_all + 1, sizeof *sel);
    size_t n_sel = sel ? select_versions(cfg, all, n_all, sel) : 0;
    model_config_destroy(cfg);
    free(all);
    if (n_sel == 0) {
        snprintf(reason, sizeof reason,
                 "model '%s': no version directory (%.700s/<N>/) matches the version policy", name,
                 dir);
        free(sel);
        record_failure(r, name, reason);
        return fail(err, errlen, HLT_NOT_FOUND, "%s", reason);
    }
    version_slot_t *slots = calloc(n_sel, sizeof *slots);
    size_t n_ok = 0;
    for (size_t i = 0; slots && i < n_sel; i++) {
        slots[i].version = sel[i];
        st = model_load(dir, name, sel[i], &r->load, &slots[i].model, reason, sizeof reason);
        if (st) {
            slots[i].model = NULL;
            slots[i].reason = strdup(reason);
            HLT_LOG(HLT_LOG_ERROR,
                    "event=model_load_failed model=%s version=%" PRId64 " reason=\"%s\"", name,
                    sel[i], reason);
        } else {
            n_ok++;
        }
    }
    free(sel);
    if (!slots)
        return HLT_RESOURCE_EXHAUSTED;
    if (n_ok == 0) {
        snprintf(reason, sizeof reason, "%s", slots[0].reason);
        free_versions(slots, n_sel);
        record_failure(r, name, reason);
        return fail(err, errlen, HLT_INVALID_ARGUMENT, "%s", reason);
    }
    pthread_mutex_lock(&r->mu);
    entry_t *e = get_or_add_entry(r, name);
    version_slot_t *old = NULL;
    size_t n_old = 0;
    if (e) {
        old = e->versions;
        n_old = e->n_versions;
        e->versions = slots;
        e->n_versions = n_sel;
        e->tried = true;
        e->unloaded = false;
        free(e->reason);
        e->reason = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (!e) {
        free_versions(slots, n_sel);
        return HLT_RESOURCE_EXHAUSTED;
    }
    free_versions(old, n_old); /* retire: finishes what the old versions had queued */
    return HLT_OK;
}

hlt_status repo_load(repo_t *r, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->load_mu);
    hlt_status st = load_locked(r, name, err, errlen);
    pthread_mutex_unlock(&r->load_mu);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the model directories under root. */
static size_t list_model_dirs(const char *root, char ***out)
{
    *out = NULL;
    DIR *d = opendir(root);
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char path[4352];
        if (!is_model_dir_name(de->d_name))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", root, de->d_name) >= (int)sizeof path ||
            !is_dir(path))
            continue;
        if (n == cap) {
            char **nn = realloc(*out, (cap = cap ? cap * 2 : 16) * sizeof **out);
            if (!nn)
                break;
            *out = nn;
        }
        (*out)[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n)
        qsort(*out, n, sizeof **out, cmp_str);
    return n;
}

size_t repo_load_all(repo_t *r)
{
    char **names;
    size_t n = list_model_dirs(r->root, &names), ok = 0;
    if (!n)
        HLT_LOG(HLT_LOG_WARN, "event=repository_empty root=%s", r->root);
    for (size_t i = 0; i < n; i++) {
        char err[1024];
        ok += repo_load(r, names[i], err, sizeof err) == HLT_OK;
        free(names[i]);
    }
    free(names);
    return ok;
}

hlt_status repo_unload(repo_t *r, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->load_mu);
    pthread_mutex_lock(&r->mu);
    entry_t *e = find_entry(r, name, strlen(name));
    version_slot_t *old = NULL;
    size_t n_old = 0;
    if (e) {
        old = e->versions;
        n_old = e->n_versions;
        e->versions = NULL;
        e->n_versions = 0;
        e->unloaded = true;
        free(e->reason);
        e->reason = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    hlt_status st = HLT_OK;
    if (!e)
        st = fail(err, errlen, HLT_NOT_FOUND, "model '%s' is not loaded", name);
    else
        HLT_LOG(HLT_LOG_INFO, "event=model_unloaded model=%s", name);
    free_versions(old, n_old);
    pthread_mutex_unlock(&r->load_mu);
    return st;
}

hlt_status repo_get(repo_t *r, const char *name, size_t name_len, const char *version,
                    size_t version_len, model_t **out, char *err, size_t errlen)
{
    int64_t v = -1;
    *out = NULL;
    if (version_len && !parse_version(version, version_len, &v))
        return fail(err, errlen, HLT_INVALID_ARGUMENT,
                    "model '%.*s': version '%.*s' is not a non-negative integer", (int)name_len,
                    name, (int)version_len, version);
    hlt_status st = HLT_OK;
    pthread_mutex_lock(&r->mu);
    entry_t *e = find_entry(r, name, name_len);
    model_t *m = NULL;
    if (!e || (!e->n_versions && !e->tried)) {
        st = fail(err, errlen, HLT_NOT_FOUND, "Request for unknown model: '%.*s' is not found",
                  (int)name_len, name);
    } else if (e->unloaded) {
        st = fail(err, errlen, HLT_UNAVAILABLE, "model '%.*s' is not ready: unloaded",
                  (int)name_len, name);
    } else {
        const version_slot_t *slot = NULL;
        for (size_t i = 0; i < e->n_versions && !slot; i++)
            if ((v < 0 && e->versions[i].model) || e->versions[i].version == v)
                slot = &e->versions[i];
        if (slot && slot->model) {
            m = slot->model;
            model_ref(m);
        } else if (slot) {
            st = fail(err, errlen, HLT_UNAVAILABLE,
                      "model '%.*s' version %" PRId64 " is not ready: %s", (int)name_len, name, v,
                      slot->reason);
        } else if (v >= 0 && e->n_versions) {
            st = fail(err, errlen, HLT_NOT_FOUND,
                      "Request for unknown model: '%.*s' version %" PRId64 " is not found",
                      (int)name_len, name, v);
        } else {
            st = fail(err, errlen, HLT_UNAVAILABLE, "model '%.*s' is not ready: %s", (int)name_len,
                      name, e->reason ? e->reason : "failed to load");
        }
    }
    pthread_mutex_unlock(&r->mu);
    *out = m;
    return st;
}

static bool add_row(repo_index_entry_t **rows, size_t *n, size_t *cap, const char *name,
                    const char *version, const char *state, const char *reason)
{
    if (*n == *cap) {
        repo_index_entry_t *nr = realloc(*rows, (*cap = *cap ? *cap * 2 : 16) * sizeof *nr);
        if (!nr)
            return false;
        *rows = nr;
    }
    (*rows)[(*n)++] = (repo_index_entry_t){strdup(name), strdup(version), strdup(state),
                                           strdup(reason ? reason : "")};
    return true;
}

size_t repo_index(repo_t *r, bool ready_only, repo_index_entry_t **out)
{
    char **names;
    size_t n_names = list_model_dirs(r->root, &names);
    repo_index_entry_t *rows = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&r->mu);
    /* Directories first (sorted), then table entries whose directory has gone. */
    for (size_t pass = 0; pass < 2; pass++) {
        size_t count = pass ? r->n_entries : n_names;
        for (size_t i = 0; i < count; i++) {
            const char *name = pass ? r->entries[i].name : names[i];
            if (pass) {
                bool listed = false;
                for (size_t j = 0; j < n_names && !listed; j++)
                    listed = !strcmp(names[j], name);
                if (listed)
                    continue;
            }
            entry_t *e = find_entry(r, name, strlen(name));
            if (!e || (!e->tried && !e->unloaded)) {
                if (!ready_only)
                    add_row(&rows, &n, &cap, name, "", "", "");
                continue;
            }
            if (e->unloaded) {
                if (!ready_only)
                    add_row(&rows, &n, &cap, name, "", "UNAVAILABLE", "unloaded");
                continue;
            }
            if (!e->n_versions && !ready_only)
                add_row(&rows, &n, &cap, name, "", "UNAVAILABLE", e->reason);
            for (size_t k = 0; k < e->n_versions; k++) {
                char ver[24];
                snprintf(ver, sizeof ver, "%" PRId64, e->versions[k].version);
                if (e->versions[k].model) /* reason of a ready model: where it runs */
                    add_row(&rows, &n, &cap, name, ver, "READY",
                            model_placement(e->versions[k].model));
                else if (!ready_only)
                    add_row(&rows, &n, &cap, name, ver, "UNAVAILABLE", e->versions[k].reason);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    *out = rows;
    return n;
}

void repo_index_free(repo_index_entry_t *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].name);
        free(e[i].version);
        free(e[i].state);
        free(e[i].reason);
    }
    free(e);
}

size_t repo_collect(repo_t *r, const char *name, model_t ***out)
{
    pthread_mutex_lock(&r->mu);
    size_t total = 0;
    for (size_t i = 0; i < r->n_entries; i++)
        total += r->entries[i].n_versions;
    model_t **ms = calloc(total + 1, sizeof *ms);
    size_t n = 0;
    for (size_t i = 0; ms && i < r->n_entries; i++) {
        if (name && strcmp(name, r->entries[i].name))
            continue;
        for (size_t k = 0; k < r->entries[i].n_versions; k++)
            if (r->entries[i].versions[k].model) {
                ms[n] = r->entries[i].versions[k].model;
                model_ref(ms[n++]);
            }
    }
    pthread_mutex_unlock(&r->mu);
    *out = ms;
    return n;
}

bool repo_all_ready(repo_t *r)
{
    bool ready = true;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_entries; i++) {
        const entry_t *e = &r->entries[i];
        if (e->tried && !e->unloaded && !e->n_versions)
            ready = false;
    }
    pthread_mutex_unlock(&r->mu);
    return ready;
}
