/* cuda_blas: see cuda_blas.h. The library is looked up by soname first (LD_LIBRARY_PATH,
 * ld.so.conf), then in the CUDA toolkit's library folder meson found at build time
 * (HLT_CUDA_LIBDIR). It is never closed: its handles may live until the process exits. */
#include "cuda_blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define STR2(x) #x
#define STR(x) STR2(x)
#define SONAME "libcublas.so." STR(CUBLAS_VER_MAJOR)

#ifndef HLT_CUDA_LIBDIR
#define HLT_CUDA_LIBDIR "/usr/local/cuda/lib64"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static cuda_blas_t table;
static const cuda_blas_t *loaded;
static char why[256];

static void *sym(void *h, const char *name, int *missing)
{
    void *p = dlsym(h, name);
    if (!p && !*missing) {
        *missing = 1;
        snprintf(why, sizeof why, "%s lacks %s", SONAME, name);
    }
    return p;
}

static void load(void)
{
    const char *paths[] = {SONAME, HLT_CUDA_LIBDIR "/" SONAME};
    void *h = NULL;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0] && !h; i++)
        h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, sizeof why, "cannot load cuBLAS (%s): %s", SONAME, e ? e : "not found");
        return;
    }
    int missing = 0;
    /* POSIX guarantees data and function pointers convert through void * for dlsym. */
    *(void **)&table.create = sym(h, "cublasCreate_v2", &missing);
    *(void **)&table.destroy = sym(h, "cublasDestroy_v2", &missing);
    *(void **)&table.set_stream = sym(h, "cublasSetStream_v2", &missing);
    *(void **)&table.set_workspace = sym(h, "cublasSetWorkspace_v2", &missing);
    *(void **)&table.sgemm = sym(h, "cublasSgemm_v2", &missing);
    *(void **)&table.sgemm_strided = sym(h, "cublasSgemmStridedBatched", &missing);
    *(void **)&table.status_name = sym(h, "cublasGetStatusName", &missing);
    if (missing) {
        dlclose(h);
        return;
    }
    loaded = &table;
}

const cuda_blas_t *cuda_blas_get(char *err, size_t errlen)
{
    pthread_once(&once, load);
    if (!loaded && err && errlen)
        snprintf(err, errlen, "%s", why);
    return loaded;
}
