/* xrt_device: environment checks, device count, one xclbin per card (see xrt_device.h). */
#include "xrt_device.h"

#include "log.h"

#include <xrt/xrt_device.h>

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct xrt_dev {
    int idx;
    xrtDeviceHandle h;
    int users;
    uint8_t uuid[16];
    bool loaded;
    char owner[128]; /* model whose xclbin the card holds */
};

/* Process-wide, like the devices they stand for. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int n_devices;
static bool emulation;
static char probe_reason[512];
static xrt_dev_t devs[XRT_MAX_DEVICES];

static const char *const shim_libs[] = {"libxrt_core.so.2", "libxrt_coreutil.so.2",
                                        "libxrt_noop.so.2", "libxrt_swemu.so.2",
                                        "libxrt_hwemu.so.2"};

static int say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(probe_reason, sizeof probe_reason, fmt, ap);
    va_end(ap);
    return -1;
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The shim XRT will dlopen for the selected mode, or NULL for an unknown mode. */
static const char *mode_shim(const char *mode)
{
    if (!mode || !*mode)
        return "libxrt_core.so.2";
    if (!strcmp(mode, "noop"))
        return "libxrt_noop.so.2";
    if (!strcmp(mode, "sw_emu"))
        return "libxrt_swemu.so.2";
    if (!strcmp(mode, "hw_emu"))
        return "libxrt_hwemu.so.2";
    return NULL;
}

/* A private folder dir/lib with links to the libraries in libdir: what XILINX_XRT must look
 * like. Under $XDG_RUNTIME_DIR when there is one (private by construction), else /tmp, in a
 * per-user folder that must be ours and closed to others before we trust it. */
static int make_shim_dir(const char *libdir, char *dir, size_t len)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    struct stat sb;
    if (!base || !*base || stat(base, &sb) != 0 || !S_ISDIR(sb.st_mode))
        base = "/tmp";
    if (snprintf(dir, len, "%s/hltinfer-xrt-%u", base, (unsigned)getuid()) >= (int)len)
        return say("path too long for the XRT shim folder under %s", base);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return say("cannot create the XRT shim folder %s: %s", dir, strerror(errno));
    if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != getuid() || (sb.st_mode & 022))
        return say("%s is not a private folder of this user; set XILINX_XRT instead", dir);
    char lib[PATH_MAX], link[PATH_MAX], target[PATH_MAX], cur[PATH_MAX];
    if (snprintf(lib, sizeof lib, "%s/lib", dir) >= (int)sizeof lib)
        return say("path too long: %s/lib", dir);
    if (mkdir(lib, 0700) != 0 && errno != EEXIST)
        return say("cannot create %s: %s", lib, strerror(errno));
    for (size_t i = 0; i < sizeof shim_libs / sizeof shim_libs[0]; i++) {
        if (snprintf(target, sizeof target, "%s/%s", libdir, shim_libs[i]) >= (int)sizeof target ||
            !is_file(target))
            continue;
        if (snprintf(link, sizeof link, "%s/%s", lib, shim_libs[i]) >= (int)sizeof link)
            return say("path too long: %s", lib);
        ssize_t n = readlink(link, cur, sizeof cur - 1);
        if (n >= 0) {
            cur[n] = '\0';
            if (!strcmp(cur, target))
                continue;
            unlink(link);
        }
        if (symlink(target, link) != 0 && errno != EEXIST)
            return say("cannot link %s: %s", link, strerror(errno));
    }
    return 0;
}

/* XILINX_XRT for an XRT whose libraries were found by the dynamic linker: the install root if
 * they live in <root>/lib (AMD's packages), else a shim folder (Debian's multiarch layout). */
static int set_xilinx_xrt(void)
{
    Dl_info info;
    char real[PATH_MAX], dir[PATH_MAX];
    if (!dladdr((void *)xrtDeviceOpen, &info) || !info.dli_fname || !realpath(info.dli_fname, real))
        return say("XILINX_XRT is unset and the XRT library folder cannot be found");
    char *libdir = dirname(real);
    snprintf(dir, sizeof dir, "%s", libdir);
    char *base = basename(dir);
    if (!strcmp(base, "lib")) {
        snprintf(dir, sizeof dir, "%s", libdir);
        char *root = dirname(dir);
        setenv("XILINX_XRT", root, 1);
        return 0;
    }
    if (make_shim_dir(libdir, dir, sizeof dir))
        return -1;
    setenv("XILINX_XRT", dir, 1);
    HLT_LOG(HLT_LOG_INFO, "event=xrt_env XILINX_XRT=%s libraries=%s", dir, libdir);
    return 0;
}

static int check_env(void)
{
    const char *mode = getenv("XCL_EMULATION_MODE");
    const char *shim = mode_shim(mode);
    if (!shim)
        return say("XCL_EMULATION_MODE=%s is not an XRT mode (noop, sw_emu, hw_emu, or unset "
                   "for hardware)",
                   mode);
    emulation = mode && *mode;
    if (emulation && strcmp(mode, "noop") && !getenv("XILINX_VITIS"))
        return say("XCL_EMULATION_MODE=%s needs AMD Vitis (XILINX_VITIS is unset)", mode);
    const char *xrt = getenv("XILINX_XRT");
    if ((!xrt || !*xrt) && set_xilinx_xrt())
        return -1;
    xrt = getenv("XILINX_XRT");
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/lib/%s", xrt, shim) >= (int)sizeof path || !is_file(path))
        return say("XILINX_XRT=%s has no lib/%s (an XRT install or a folder linking to one is "
                   "needed)",
                   xrt, shim);
    /* Load it now: a library that does not load would make XRT throw inside its C API. The
     * handle stays open for the process, as XRT keeps its own. */
    if (!dlopen(path, RTLD_NOW | RTLD_LOCAL))
        return say("XRT shim %s does not load: %s", path, dlerror());
    return 0;
}

static void probe(void)
{
    if (check_env()) {
        n_devices = 0;
        return;
    }
    if (emulation) { /* emulation shims open any index: one device */
        n_devices = 1;
        return;
    }
    int n = 0;
    for (; n < XRT_MAX_DEVICES; n++) {
        xrtDeviceHandle h = xrtDeviceOpen((unsigned)n);
        if (!h)
            break;
        xrtDeviceClose(h);
    }
    n_devices = n;
    if (!n)
        say("no FPGA device (XRT found none with XILINX_XRT=%s)", getenv("XILINX_XRT"));
}

int xrt_device_probe(char *reason, size_t len)
{
    pthread_once(&probe_once, probe);
    if (reason && len)
        snprintf(reason, len, "%s", n_devices ? "" : probe_reason);
    return n_devices;
}

void xrt_device_name(int idx, char *buf, size_t len)
{
    if (emulation)
        snprintf(buf, len, "XRT %s emulation", getenv("XCL_EMULATION_MODE"));
    else
        snprintf(buf, len, "Xilinx FPGA #%d (XRT)", idx);
}

static void uuid_str(const uint8_t u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

hlt_status xrt_device_acquire(int idx, const char *path, const uint8_t uuid[16], const char *model,
                              xrt_dev_t **out, char *err, size_t errlen)
{
    if (xrt_device_probe(NULL, 0) <= idx || idx < 0) {
        snprintf(err, errlen, "XRT device %d is not available: %s", idx,
                 n_devices ? "index out of range" : probe_reason);
        return HLT_UNAVAILABLE;
    }
    hlt_status st = HLT_OK;
    pthread_mutex_lock(&mu);
    xrt_dev_t *d = &devs[idx];
    d->idx = idx;
    if (!d->h && !(d->h = xrtDeviceOpen((unsigned)idx))) {
        snprintf(err, errlen, "XRT cannot open device %d (errno %d)", idx, errno);
        st = HLT_UNAVAILABLE;
        goto done;
    }
    if (d->loaded && memcmp(d->uuid, uuid, 16) && d->users > 0) {
        char a[37], b[37];
        uuid_str(d->uuid, a);
        uuid_str(uuid, b);
        snprintf(err, errlen,
                 "device %d holds xclbin %s for model '%s'; a card runs one xclbin at a time, "
                 "so %s (%s) cannot load while that model is loaded",
                 idx, a, d->owner, path, b);
        st = HLT_UNAVAILABLE;
        goto done;
    }
    if (!d->loaded || memcmp(d->uuid, uuid, 16)) {
        if (xrtDeviceLoadXclbinFile(d->h, path) != 0) {
            snprintf(err, errlen, "XRT cannot load %s on device %d (errno %d)", path, idx, errno);
            st = HLT_INVALID_ARGUMENT;
            goto done;
        }
        memcpy(d->uuid, uuid, 16);
        d->loaded = true;
        snprintf(d->owner, sizeof d->owner, "%s", model);
        HLT_LOG(HLT_LOG_INFO, "event=xrt_xclbin_loaded device=%d model=%s xclbin=%s", idx, model,
                path);
    }
    d->users++;
    *out = d;
done:
    if (st && d->h && d->users == 0) {
        xrtDeviceClose(d->h);
        d->h = NULL;
        d->loaded = false;
    }
    pthread_mutex_unlock(&mu);
    return st;
}

void xrt_device_release(xrt_dev_t *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&mu);
    if (--d->users == 0) {
        xrtDeviceClose(d->h);
        d->h = NULL;
        d->loaded = false;
    }
    pthread_mutex_unlock(&mu);
}

void *xrt_device_handle(const xrt_dev_t *d)
{
    return d->h;
}
