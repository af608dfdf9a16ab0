/* Backend registry: the backends this binary knows, probed once each on first use, and the
 * operator's restrictions on them (--backend-config).
 *
 * CPU is always compiled in. OpenCL and XRT are compiled in when meson finds them
 * (HLT_HAVE_OPENCL, HLT_HAVE_XRT). CUDA is a loadable module (HLT_HAVE_CUDA): dlopen'ed on first
 * use, so a process that never asks for a GPU does not pay for loading the CUDA libraries, and
 * one whose CUDA backend is disabled (--backend-config=cuda,enabled=false) never loads them.
 *
 * Restrictions are set by backend_configure before the first probe (main, while parsing flags)
 * and only read afterwards; a slot's probe result is written once under its pthread_once, so
 * every reader after ensure_probed sees it. Device indices stay each backend's own numbering. */
#include "backend.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HLT_HAVE_OPENCL
extern const backend_i backend_opencl;
#endif
#ifdef HLT_HAVE_XRT
extern const backend_i backend_xrt;
#endif

#define SETTINGS_HELP "devices=<index>[,<index>...] | devices=none | enabled=true|false"

typedef struct slot {
    const char *name;
    const backend_i *b; /* NULL until resolved (cuda: loaded) */
    pthread_once_t once;
    atomic_bool probing; /* set when the probe starts: configuring is too late from then on */
    int devices;         /* found by the probe, or 0 (then reason says why) */
    int n_allowed;       /* found and allowed */
    char reason[256];
    char state[512]; /* backend_describe's line, written with the probe */
    /* --backend-config */
    bool off_enabled, off_devices; /* enabled=false, devices=none */
    bool restricted;               /* devices=<list> */
    bool allow[BACKEND_MAX_DEVICES];
    char devices_spec[128]; /* the list as given: "0,2" */
} slot_t;

static slot_t slots[] = {
    {.name = "cpu", .b = &backend_cpu, .once = PTHREAD_ONCE_INIT},
#ifdef HLT_HAVE_OPENCL
    {.name = "opencl", .b = &backend_opencl, .once = PTHREAD_ONCE_INIT},
#endif
#ifdef HLT_HAVE_CUDA
    {.name = "cuda", .b = NULL, .once = PTHREAD_ONCE_INIT},
#endif
#ifdef HLT_HAVE_XRT
    {.name = "xrt", .b = &backend_xrt, .once = PTHREAD_ONCE_INIT},
#endif
};
#define N_SLOTS (sizeof slots / sizeof slots[0])

static const char *names[N_SLOTS + 1];

#ifdef HLT_HAVE_CUDA
/* The CUDA module: HLT_CUDA_MODULE (environment) or the build/install path. */
static const backend_i *load_cuda(char *reason, size_t len)
{
    const char *paths[] = {getenv("HLT_CUDA_MODULE"), HLT_CUDA_MODULE_BUILD,
                           HLT_CUDA_MODULE_INSTALL};
    const char *last = "not found";
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!paths[i] || !*paths[i])
            continue;
        void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            last = dlerror();
            continue;
        }
        const backend_i *b = dlsym(h, "hlt_backend_cuda");
        if (b && b->api_version == BACKEND_API_VERSION)
            return b;
        last = b ? "module built for another backend API version" : "symbol missing";
        dlclose(h);
    }
    snprintf(reason, len, "CUDA backend module cannot be loaded: %s", last);
    return NULL;
}
#endif

static slot_t *find_slot(const char *name)
{
    for (size_t i = 0; i < N_SLOTS; i++)
        if (!strcmp(slots[i].name, name))
            return &slots[i];
    return NULL;
}

static void probe_devices(slot_t *s)
{
    s->devices = s->n_allowed = 0;
    if (s->off_enabled || s->off_devices) { /* never probed: not even initialised */
        snprintf(s->reason, sizeof s->reason, "disabled by --backend-config=%s,%s", s->name,
                 s->off_enabled ? "enabled=false" : "devices=none");
        return;
    }
#ifdef HLT_HAVE_CUDA
    if (!s->b && !strcmp(s->name, "cuda")) {
        s->b = load_cuda(s->reason, sizeof s->reason);
        if (!s->b)
            return;
    }
#endif
    s->devices = s->b->probe(s->reason, sizeof s->reason);
    if (s->devices < 0)
        s->devices = 0;
    for (int d = 0; d < s->devices; d++)
        if (!s->restricted || (d < BACKEND_MAX_DEVICES && s->allow[d]))
            s->n_allowed++;
    if (s->devices > 0 && s->n_allowed == 0)
        snprintf(s->reason, sizeof s->reason,
                 "--backend-config=%s,devices=%s leaves none of the %d device%s found", s->name,
                 s->devices_spec, s->devices, s->devices > 1 ? "s" : "");
}

static int usable(const slot_t *s)
{
    return s->n_allowed > 0 ? s->devices : 0;
}

/* Probes once and writes the state line then, so that describing a backend later (every
 * ServerMetadata call) does not query the device again. */
static void probe_slot(slot_t *s)
{
    atomic_store(&s->probing, true);
    probe_devices(s);
    if (!usable(s)) {
        snprintf(s->state, sizeof s->state, "unavailable (%s)", s->reason);
        return;
    }
    int first = 0;
    while (s->restricted && !s->allow[first])
        first++; /* usable: some found device is allowed */
    backend_device_info_t info;
    memset(&info, 0, sizeof info);
    s->b->device_info(first, &info);
    if (s->restricted)
        snprintf(s->state, sizeof s->state,
                 "%d of %d device%s allowed (--backend-config devices=%s) (%s)", s->n_allowed,
                 s->devices, s->devices > 1 ? "s" : "", s->devices_spec, info.name);
    else
        snprintf(s->state, sizeof s->state, "%d device%s (%s)", s->devices,
                 s->devices > 1 ? "s" : "", info.name);
}

/* pthread_once takes no argument: one trampoline per slot index. */
#define TRAMP(i)                                                                                   \
    static void probe_##i(void)                                                                    \
    {                                                                                              \
        if (i < N_SLOTS)                                                                           \
            probe_slot(&slots[i]);                                                                 \
    }
TRAMP(0)
TRAMP(1)
TRAMP(2)
TRAMP(3)
static void (*const probes[4])(void) = {probe_0, probe_1, probe_2, probe_3};

static void ensure_probed(slot_t *s)
{
    size_t i = (size_t)(s - slots);
    pthread_once(&s->once, probes[i]);
}

static void join_names(char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_SLOTS && off < len; i++) {
        int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", slots[i].name);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

static hlt_status config_error(char *err, size_t len, const char *spec, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hlt_status config_error(char *err, size_t len, const char *spec, const char *fmt, ...)
{
    if (!err || !len)
        return HLT_INVALID_ARGUMENT;
    int n = snprintf(err, len, "--backend-config=%s: ", spec);
    if (n >= 0 && (size_t)n < len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return HLT_INVALID_ARGUMENT;
}

/* "0,2,3": indices 0..BACKEND_MAX_DEVICES-1, no empty items, no signs or spaces. */
static bool parse_devices(const char *v, bool allow[BACKEND_MAX_DEVICES])
{
    memset(allow, 0, sizeof(bool) * BACKEND_MAX_DEVICES);
    const char *p = v;
    for (;;) {
        if (*p < '0' || *p > '9')
            return false;
        long x = 0;
        while (*p >= '0' && *p <= '9') {
            x = x * 10 + (*p++ - '0');
            if (x >= BACKEND_MAX_DEVICES)
                return false;
        }
        allow[x] = true;
        if (!*p)
            return true;
        if (*p++ != ',')
            return false;
    }
}

hlt_status backend_configure(const char *spec, char *err, size_t len)
{
    if (err && len)
        err[0] = '\0';
    const char *comma = strchr(spec, ',');
    const char *eq = comma ? strchr(comma + 1, '=') : NULL;
    if (!comma || !eq)
        return config_error(err, len, spec, "expected <backend>,<setting>=<value> (settings: %s)",
                            SETTINGS_HELP);
    char backend[64], setting[64], known[128];
    size_t nb = (size_t)(comma - spec), ns = (size_t)(eq - comma - 1);
    const char *value = eq + 1;
    join_names(known, sizeof known);
    if (nb == 0 || nb >= sizeof backend)
        return config_error(err, len, spec,
                            "expected <backend>,<setting>=<value> with a backend "
                            "name (backends in this build: %s)",
                            known);
    memcpy(backend, spec, nb);
    backend[nb] = '\0';
    slot_t *s = find_slot(backend);
    /* A backend of the project this build lacks (e.g. cuda where nvcc was absent): the flag is
     * accepted with a warning, so one deployment script serves every build. */
    static const char *const project[] = {"cpu", "opencl", "cuda", "xrt"};
    bool known_elsewhere = false;
    for (size_t i = 0; !s && i < sizeof project / sizeof project[0]; i++)
        known_elsewhere = known_elsewhere || !strcmp(backend, project[i]);
    if (!s && !known_elsewhere)
        return config_error(err, len, spec, "unknown backend '%s' (backends in this build: %s)",
                            backend, known);
    if (ns >= sizeof setting)
        ns = sizeof setting - 1;
    memcpy(setting, comma + 1, ns);
    setting[ns] = '\0';
    bool is_devices = !strcmp(setting, "devices"), is_enabled = !strcmp(setting, "enabled");
    if (!is_devices && !is_enabled)
        return config_error(err, len, spec, "unknown setting '%s' for backend '%s' (settings: %s)",
                            setting, backend, SETTINGS_HELP);
    if (!s) {
        bool scratch[BACKEND_MAX_DEVICES];
        if (is_enabled && strcmp(value, "true") && strcmp(value, "false"))
            return config_error(err, len, spec, "enabled must be true or false, not '%s'", value);
        if (is_devices && strcmp(value, "none") && !parse_devices(value, scratch))
            return config_error(err, len, spec,
                                "devices must be 'none' or a comma-separated list of device "
                                "indices 0..%d, not '%s'",
                                BACKEND_MAX_DEVICES - 1, value);
        if (err && len)
            snprintf(err, len,
                     "--backend-config=%s: backend '%s' is not built into this server; the "
                     "setting has no effect (backends in this build: %s)",
                     spec, backend, known);
        return HLT_OK;
    }
    if (atomic_load(&s->probing)) {
        if (err && len)
            snprintf(err, len, "--backend-config=%s: backend '%s' was already probed", spec,
                     backend);
        return HLT_FAILED_PRECONDITION;
    }
    if (is_enabled) {
        if (strcmp(value, "true") && strcmp(value, "false"))
            return config_error(err, len, spec, "enabled must be true or false, not '%s'", value);
        s->off_enabled = !strcmp(value, "false");
        return HLT_OK;
    }
    /* a later devices= for the same backend replaces the earlier one */
    if (!strcmp(value, "none")) {
        s->off_devices = true;
        s->restricted = false;
        return HLT_OK;
    }
    bool allow[BACKEND_MAX_DEVICES];
    if (strlen(value) >= sizeof s->devices_spec || !parse_devices(value, allow))
        return config_error(err, len, spec,
                            "devices must be 'none' or a comma-separated list of device indices "
                            "0..%d, not '%s'",
                            BACKEND_MAX_DEVICES - 1, value);
    s->off_devices = false;
    s->restricted = true;
    memcpy(s->allow, allow, sizeof allow);
    snprintf(s->devices_spec, sizeof s->devices_spec, "%s", value);
    return HLT_OK;
}

const backend_i *backend_find(const char *name)
{
    slot_t *s = find_slot(name);
    if (!s)
        return NULL;
    if (!s->b) /* a loadable module: resolving it means loading it */
        ensure_probed(s);
    return s->b;
}

int backend_devices(const backend_i *b, char *reason, size_t len)
{
    slot_t *s = b ? find_slot(b->name) : NULL;
    if (!s)
        return 0;
    ensure_probed(s);
    if (reason && len)
        snprintf(reason, len, "%s", usable(s) ? "" : s->reason);
    return usable(s);
}

int backend_lookup(const char *name, const backend_i **out, char *reason, size_t len)
{
    slot_t *s = find_slot(name);
    *out = NULL;
    if (!s) {
        if (reason && len)
            snprintf(reason, len, "not built into this server");
        return 0;
    }
    ensure_probed(s);
    *out = s->b;
    if (reason && len)
        snprintf(reason, len, "%s", usable(s) ? "" : s->reason);
    return usable(s);
}

bool backend_device_allowed(const backend_i *b, int dev)
{
    slot_t *s = b ? find_slot(b->name) : NULL;
    if (!s || dev < 0)
        return false;
    ensure_probed(s);
    return dev < usable(s) && (!s->restricted || (dev < BACKEND_MAX_DEVICES && s->allow[dev]));
}

int backend_allowed_devices(const backend_i *b, int *out, int max)
{
    int n = 0;
    for (int d = 0; b && d < backend_devices(b, NULL, 0); d++)
        if (backend_device_allowed(b, d)) {
            if (n < max)
                out[n] = d;
            n++;
        }
    return n;
}

const char *backend_config_devices(const backend_i *b)
{
    slot_t *s = b ? find_slot(b->name) : NULL;
    return s && s->restricted ? s->devices_spec : NULL;
}

const char *const *backend_names(void)
{
    for (size_t i = 0; i < N_SLOTS; i++)
        names[i] = slots[i].name;
    names[N_SLOTS] = NULL;
    return names;
}

void backend_describe(const char *name, char *buf, size_t len)
{
    slot_t *s = find_slot(name);
    if (!s) {
        snprintf(buf, len, "unavailable (not built into this server)");
        return;
    }
    ensure_probed(s);
    snprintf(buf, len, "%s", s->state);
}

void backend_describe_all(char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_SLOTS && off < len; i++) {
        char one[512];
        backend_describe(slots[i].name, one, sizeof one);
        int n = snprintf(buf + off, len - off, "%s%s: %s", i ? "; " : "", slots[i].name, one);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

void *backend_host_alloc(const backend_i *b, backend_instance_t *inst, size_t bytes)
{
    return b->host_alloc ? b->host_alloc(inst, bytes) : malloc(bytes ? bytes : 1);
}

void backend_host_free(const backend_i *b, backend_instance_t *inst, void *p)
{
    if (b->host_free)
        b->host_free(inst, p);
    else
        free(p);
}
