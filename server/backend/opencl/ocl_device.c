/* ocl_device: OpenCL device discovery, the per-device shared context/program, program builds.
 *
 * Every device of every platform counts (CPU devices too: PoCL's CPU device is how KIND_GPU
 * models run in CI), provided it is available, has a compiler and speaks OpenCL C 1.2.
 * An absent runtime is an answer, not an error: no ICD loader vendors (-1001), no platform, no
 * device, or PoCL with an unwritable kernel cache (clGetDeviceIDs returns -1) all give 0
 * devices and a reason.
 *
 * The kernel program is built once per device and shared by every instance on it (and so by
 * every model), refcounted: PoCL's cold build of our kernels takes about a second, its warm
 * (on-disk cache) build tens of milliseconds; a NVIDIA or AMD driver caches binaries itself. */
#include "ocl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const char ocl_kernel_source[];
extern const size_t ocl_kernel_source_len;

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

static ocl_device_t devices[OCL_MAX_DEVICES];
static int n_devices;

typedef struct shared {
    cl_context ctx;
    cl_program prog;
    int refs;
} shared_t;
static shared_t shared[OCL_MAX_DEVICES];
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

const char *ocl_strerror(cl_int code)
{
    switch (code) {
#define E(x)                                                                                       \
    case x:                                                                                        \
        return #x;
        E(CL_SUCCESS)
        E(CL_DEVICE_NOT_FOUND)
        E(CL_DEVICE_NOT_AVAILABLE)
        E(CL_COMPILER_NOT_AVAILABLE)
        E(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        E(CL_OUT_OF_RESOURCES)
        E(CL_OUT_OF_HOST_MEMORY)
        E(CL_BUILD_PROGRAM_FAILURE)
        E(CL_INVALID_VALUE)
        E(CL_INVALID_PLATFORM)
        E(CL_INVALID_DEVICE)
        E(CL_INVALID_CONTEXT)
        E(CL_INVALID_COMMAND_QUEUE)
        E(CL_INVALID_MEM_OBJECT)
        E(CL_INVALID_BUILD_OPTIONS)
        E(CL_INVALID_PROGRAM)
        E(CL_INVALID_PROGRAM_EXECUTABLE)
        E(CL_INVALID_KERNEL_NAME)
        E(CL_INVALID_KERNEL)
        E(CL_INVALID_ARG_INDEX)
        E(CL_INVALID_ARG_VALUE)
        E(CL_INVALID_ARG_SIZE)
        E(CL_INVALID_KERNEL_ARGS)
        E(CL_INVALID_WORK_DIMENSION)
        E(CL_INVALID_WORK_GROUP_SIZE)
        E(CL_INVALID_WORK_ITEM_SIZE)
        E(CL_INVALID_GLOBAL_OFFSET)
        E(CL_INVALID_EVENT)
        E(CL_INVALID_OPERATION)
        E(CL_INVALID_BUFFER_SIZE)
        E(CL_INVALID_GLOBAL_WORK_SIZE)
        E(CL_PROFILING_INFO_NOT_AVAILABLE)
#undef E
    case CL_PLATFORM_NOT_FOUND_KHR:
        return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
        return "unknown OpenCL error";
    }
}

/* PoCL keeps compiled kernels under $POCL_CACHE_DIR, else under ~/.cache, and reports no device
 * at all when it cannot write there. setenv is done before the first OpenCL call of the
 * process (the registry's probe); the variable is only set when absent. */
static void ensure_pocl_cache_dir(void)
{
    if (getenv("POCL_CACHE_DIR"))
        return;
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/hltinfer-pocl-%u", (unsigned)getuid());
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return;
    setenv("POCL_CACHE_DIR", dir, 0);
}

/* "OpenCL C 1.2 ..." -> 102; 0 when unparsable. */
static int c_version(cl_device_id d)
{
    char v[128] = "";
    int major = 0, minor = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_OPENCL_C_VERSION, sizeof v - 1, v, NULL) != CL_SUCCESS ||
        sscanf(v, "OpenCL C %d.%d", &major, &minor) != 2)
        return 0;
    return major * 100 + minor;
}

static void add_device(cl_platform_id p, cl_device_id id, char *skipped, size_t len)
{
    cl_bool avail = CL_FALSE, compiler = CL_FALSE;
    ocl_device_t d = {.platform = p, .id = id};
    clGetDeviceInfo(id, CL_DEVICE_NAME, sizeof d.name - 1, d.name, NULL);
    clGetDeviceInfo(id, CL_DEVICE_AVAILABLE, sizeof avail, &avail, NULL);
    clGetDeviceInfo(id, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
    const char *why = !avail ? "not available" : !compiler ? "no compiler" : NULL;
    if (!why && c_version(id) < 102)
        why = "OpenCL C older than 1.2";
    if (why) {
        size_t off = strlen(skipped);
        snprintf(skipped + off, len - off, "%s%s: %s", off ? "; " : "", d.name, why);
        return;
    }
    cl_command_queue_properties qp = 0;
    clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof d.type, &d.type, NULL);
    clGetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof d.global_mem, &d.global_mem, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof d.max_alloc, &d.max_alloc, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof d.compute_units, &d.compute_units,
                    NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof d.max_wg, &d.max_wg, NULL);
    clGetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof d.local_mem, &d.local_mem, NULL);
    clGetDeviceInfo(id, CL_DEVICE_QUEUE_PROPERTIES, sizeof qp, &qp, NULL);
    d.profiling = (qp & CL_QUEUE_PROFILING_ENABLE) != 0;
    if (d.max_wg == 0)
        d.max_wg = 1;
    if (n_devices < OCL_MAX_DEVICES)
        devices[n_devices++] = d;
}

int ocl_probe(char *reason, size_t len)
{
    char skipped[256] = "";
    cl_platform_id plats[8];
    cl_uint np = 0;
    n_devices = 0;
    ensure_pocl_cache_dir();
    cl_int rc = clGetPlatformIDs(8, plats, &np);
    if (rc == CL_PLATFORM_NOT_FOUND_KHR || (rc == CL_SUCCESS && np == 0)) {
        snprintf(reason, len, "no OpenCL platform (the ICD loader found no vendor driver)");
        return 0;
    }
    if (rc != CL_SUCCESS) {
        snprintf(reason, len, "clGetPlatformIDs failed: %s (%d)", ocl_strerror(rc), rc);
        return 0;
    }
    if (np > 8)
        np = 8;
    cl_int last = CL_SUCCESS;
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id ids[OCL_MAX_DEVICES];
        cl_uint nd = 0;
        rc = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, OCL_MAX_DEVICES, ids, &nd);
        if (rc != CL_SUCCESS) {
            last = rc;
            continue;
        }
        for (cl_uint i = 0; i < nd && i < OCL_MAX_DEVICES; i++)
            add_device(plats[p], ids[i], skipped, sizeof skipped);
    }
    if (n_devices == 0) {
        if (skipped[0])
            snprintf(reason, len, "no usable OpenCL device (%s)", skipped);
        else if (last == CL_DEVICE_NOT_FOUND)
            snprintf(reason, len,
                     "no OpenCL device (%d platform%s; for PoCL, check that POCL_CACHE_DIR is "
                     "writable)",
                     (int)np, np == 1 ? "" : "s");
        else
            snprintf(reason, len, "no OpenCL device: clGetDeviceIDs failed: %s (%d)",
                     ocl_strerror(last), last);
    }
    return n_devices;
}

const ocl_device_t *ocl_device(int i)
{
    return i >= 0 && i < n_devices ? &devices[i] : NULL;
}

size_t ocl_tile(const ocl_device_t *d)
{
    /* 16 x 16 work-groups where the device allows them and local memory holds two tiles. */
    return d->max_wg >= 256 && d->local_mem >= 2 * 16 * 17 * sizeof(float) ? 16 : 8;
}

hlt_status ocl_program_build(cl_context ctx, cl_device_id dev, const char *src, size_t len,
                             const char *opts, cl_program *out, char *err, size_t errlen)
{
    cl_int rc;
    cl_program p = clCreateProgramWithSource(ctx, 1, &src, &len, &rc);
    if (rc != CL_SUCCESS) {
        snprintf(err, errlen, "clCreateProgramWithSource: %s (%d)", ocl_strerror(rc), rc);
        return HLT_INTERNAL;
    }
    rc = clBuildProgram(p, 1, &dev, opts, NULL, NULL);
    if (rc == CL_SUCCESS) {
        *out = p;
        return HLT_OK;
    }
    char log[1024] = "";
    size_t n = 0;
    clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &n);
    if (n == 0 || n > sizeof log - 1) /* log larger than our buffer: its head is enough */
        log[sizeof log - 1] = '\0';
    for (char *c = log; *c; c++)
        if (*c == '\n')
            *c = ' ';
    snprintf(err, errlen, "OpenCL program build failed: %s (%d): %s", ocl_strerror(rc), rc, log);
    clReleaseProgram(p);
    return HLT_INTERNAL;
}

hlt_status ocl_shared_acquire(int dev, cl_context *ctx, cl_program *prog, char *err, size_t errlen)
{
    const ocl_device_t *d = ocl_device(dev);
    hlt_status st = HLT_OK;
    if (!d) {
        snprintf(err, errlen, "no OpenCL device %d", dev);
        return HLT_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(&shared_mu);
    shared_t *s = &shared[dev];
    if (s->refs == 0) {
        cl_int rc;
        const cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                               (cl_context_properties)d->platform, 0};
        s->ctx = clCreateContext(props, 1, &d->id, NULL, NULL, &rc);
        if (rc != CL_SUCCESS) {
            snprintf(err, errlen, "clCreateContext on '%s': %s (%d)", d->name, ocl_strerror(rc),
                     rc);
            st = HLT_UNAVAILABLE;
            goto out;
        }
        char opts[96];
        snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DHLT_TS=%zu -DHLT_MLP_MAX=%d", ocl_tile(d),
                 OCL_MLP_MAX);
        st = ocl_program_build(s->ctx, d->id, ocl_kernel_source, ocl_kernel_source_len, opts,
                               &s->prog, err, errlen);
        if (st != HLT_OK) {
            clReleaseContext(s->ctx);
            goto out;
        }
    }
    s->refs++;
    *ctx = s->ctx;
    *prog = s->prog;
out:
    pthread_mutex_unlock(&shared_mu);
    return st;
}

void ocl_shared_release(int dev)
{
    if (dev < 0 || dev >= OCL_MAX_DEVICES)
        return;
    pthread_mutex_lock(&shared_mu);
    shared_t *s = &shared[dev];
    if (s->refs > 0 && --s->refs == 0) {
        clReleaseProgram(s->prog);
        clReleaseContext(s->ctx);
        s->prog = NULL;
        s->ctx = NULL;
    }
    pthread_mutex_unlock(&shared_mu);
}
