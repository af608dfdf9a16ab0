/* cuda_blas: cuBLAS, loaded with dlopen the first time an instance needs it.
 *
 * Linking libcublas costs about half a second at every process start (its initialisers run at
 * load, GPU or not), and the registry loads this module whenever the server describes its
 * backends. So the module links only the CUDA runtime and resolves the handful of cuBLAS
 * functions it calls here, once per process, on the first instance_create. The table is
 * immutable after that; cuda_blas_get is thread-safe. */
#ifndef HLT_CUDA_BLAS_H
#define HLT_CUDA_BLAS_H

#include <cublas_v2.h>
#include <stddef.h>

typedef struct cuda_blas {
    __typeof__(cublasCreate_v2) *create;
    __typeof__(cublasDestroy_v2) *destroy;
    __typeof__(cublasSetStream_v2) *set_stream;
    __typeof__(cublasSetWorkspace_v2) *set_workspace;
    __typeof__(cublasSgemm_v2) *sgemm;
    __typeof__(cublasSgemmStridedBatched) *sgemm_strided;
    __typeof__(cublasGetStatusName) *status_name;
} cuda_blas_t;

/* The loaded table, or NULL with the reason in err (library or symbol missing). Borrowed,
 * valid for the life of the process. */
const cuda_blas_t *cuda_blas_get(char *err, size_t errlen);

#endif
