/* Backend registry: the backends this binary knows, probed once each on first use.
 *
 * CPU is always compiled in. OpenCL and XRT are compiled in when meson finds them
 * (HLT_HAVE_OPENCL, HLT_HAVE_XRT). CUDA is a loadable module (HLT_HAVE_CUDA): dlopen'ed on first
 * use, so a process that never asks for a GPU does not pay for loading the CUDA libraries. */
#include "backend.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HLT_HAVE_OPENCL
extern const backend_i backend_opencl;
#endif
#ifdef HLT_HAVE_XRT
extern const backend_i backend_xrt;
#endif

typedef struct slot {
    const char *name;
    const backend_i *b; /* NULL until resolved (cuda: loaded) */
    pthread_once_t once;
    int devices;
    char reason[256];
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

static void probe_slot(slot_t *s)
{
#ifdef HLT_HAVE_CUDA
    if (!s->b && !strcmp(s->name, "cuda")) {
        s->b = load_cuda(s->reason, sizeof s->reason);
        if (!s->b) {
            s->devices = 0;
            return;
        }
    }
#endif
    s->devices = s->b->probe(s->reason, sizeof s->reason);
    if (s->devices < 0)
        s->devices = 0;
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
        snprintf(reason, len, "%s", s->devices ? "" : s->reason);
    return s->devices;
}

const char *const *backend_names(void)
{
    for (size_t i = 0; i < N_SLOTS; i++)
        names[i] = slots[i].name;
    names[N_SLOTS] = NULL;
    return names;
}

void backend_describe_all(char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_SLOTS && off < len; i++) {
        slot_t *s = &slots[i];
        ensure_probed(s);
        int n;
        if (s->devices > 0) {
            backend_device_info_t info;
            memset(&info, 0, sizeof info);
            s->b->device_info(0, &info);
            n = snprintf(buf + off, len - off, "%s%s: %d device%s (%s)", i ? "; " : "", s->name,
                         s->devices, s->devices > 1 ? "s" : "", info.name);
        } else {
            n = snprintf(buf + off, len - off, "%s%s: unavailable (%s)", i ? "; " : "", s->name,
                         s->reason);
        }
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
