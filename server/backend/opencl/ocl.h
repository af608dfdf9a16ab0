/* ocl: private interface of the OpenCL backend (backend_opencl), shared by its modules.
 *
 *   ocl_device.c   device discovery (probe, device_info), the per-device context and program
 *                  shared by every instance on that device, program building with its log
 *   ocl_plan.c     one model on one device: constants uploaded once, kernels created once,
 *                  shapes and the intermediate buffer plan resolved per prepare
 *   ocl_ops.c      per-op decisions at create: epilogue fusion, kernels, constants to upload
 *   ocl_launch.c   per-op kernel arguments and NDRanges at prepare
 *   ocl_backend.c  the backend_i glue: execute (upload, enqueue, download) and its timing
 *
 * The kernels (kernels/opencl/ (*.cl)) are compiled into the server by kernels/opencl/embed.py.
 * Hand-written because no maintained C library runs an ONNX-style graph on OpenCL 1.2 (clBLAS
 * is unmaintained and would only cover the GEMMs); the ops are few and small.
 *
 * Threads: the device table is written once by ocl_probe (the registry runs it under
 * pthread_once) and read-only afterwards; the shared context/program table is guarded by a
 * mutex; an instance belongs to one thread at a time (backend.h). */
#ifndef HLT_OCL_H
#define HLT_OCL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "backend/backend.h"
#include "engine/fuse.h"
#include "engine/graph.h"
#include "engine/plan.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCL_MAX_DEVICES 16
#define OCL_ALIGN 64 /* bytes between planned tensors: a multiple of every element size */
#define OCL_MLP_MAX ENGINE_CHAIN_MAX_WIDTH /* widest chain layer (mlp.cl's HLT_MLP_MAX) */

typedef struct ocl_device {
    cl_platform_id platform;
    cl_device_id id;
    cl_device_type type;
    char name[128];
    cl_ulong global_mem;
    cl_ulong max_alloc;
    cl_uint compute_units;
    size_t max_wg; /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    cl_ulong local_mem;
    bool profiling; /* the device supports CL_QUEUE_PROFILING_ENABLE */
} ocl_device_t;

/* The backend (ocl_backend.c); registry.c declares it too. */
extern const backend_i backend_opencl;

/* ---- ocl_device.c ---- */

/* Finds every available OpenCL device of any type with OpenCL C >= 1.2 and a compiler. Sets
 * POCL_CACHE_DIR first when unset (a per-user folder under /tmp) so PoCL works with a read-only
 * home. Returns the count; 0 with a reason when there is no ICD, platform or device. Never
 * aborts. Called once per process by the registry (tests may call it again in a fresh
 * process). */
int ocl_probe(char *reason, size_t len);

/* Device i of the last probe, or NULL. Borrowed, static. */
const ocl_device_t *ocl_device(int i);

/* Message for an OpenCL error code ("CL_OUT_OF_RESOURCES"). Static string. */
const char *ocl_strerror(cl_int code);

/* Builds src (len bytes) for dev with options opts. On success *out is owned by the caller
 * (clReleaseProgram). On failure INTERNAL with the first lines of the build log in err. */
hlt_status ocl_program_build(cl_context ctx, cl_device_id dev, const char *src, size_t len,
                             const char *opts, cl_program *out, char *err, size_t errlen);

/* The context and the hltinfer kernel program of device `dev`, created and built on first use
 * and shared by every instance on the device (the program is built once, not per instance).
 * On success *ctx and *prog are borrowed until the matching ocl_shared_release. Thread-safe. */
hlt_status ocl_shared_acquire(int dev, cl_context *ctx, cl_program *prog, char *err, size_t errlen);
void ocl_shared_release(int dev);

/* The GEMM tile edge compiled into device dev's program (work-group HLT_TS x HLT_TS). */
size_t ocl_tile(const ocl_device_t *d);

/* ---- ocl_plan.c / ocl_ops.c / ocl_launch.c ---- */

/* One kernel launch, arguments set at prepare. */
typedef struct ocl_launch {
    cl_kernel k; /* owned */
    cl_uint dims;
    size_t gws[3], lws[3];
    bool skip; /* empty range at the prepared shapes */
} ocl_launch_t;

typedef engine_plan_item_t ocl_plan_item_t; /* placed by engine_plan_place (engine/plan.h) */

/* Per-node facts fixed at create. */
typedef struct ocl_node {
    int32_t first, count; /* launches [first, first + count) */
    size_t derived;       /* byte offset in consts of a folded constant (transposed Gemm B and
                             its epilogue, BatchNormalization's a|b, a chain's blob), or
                             SIZE_MAX */
    bool needs_ws;        /* device scratch planned in the arena (BatchNormalization
                             coefficients computed at run time) */
} ocl_node_t;

struct backend_instance {
    const engine_graph_t *g; /* borrowed */
    char model[96];
    int dev;
    const ocl_device_t *d;
    bool tiled;         /* GPU-style kernels (gemm_tiled, pow2 work-groups) */
    size_t wg;          /* 1-D work-group size */
    cl_context ctx;     /* borrowed from the shared table */
    cl_program prog;    /* borrowed from the shared table */
    cl_command_queue q; /* owned, in order */
    bool profiling;
    cl_mem consts;     /* owned; every constant a kernel reads, uploaded once */
    size_t *const_off; /* per tensor: byte offset in consts, SIZE_MAX if not uploaded */
    cl_mem arena;      /* owned; graph inputs, intermediates, workspaces */
    size_t arena_cap;
    int32_t nt, nn;
    ocl_node_t *nodes;      /* nn */
    engine_fuse_t *fuse;    /* nn: what runs inside which kernel (engine/fuse.h; ocl_ops_fuse) */
    ocl_launch_t *launches; /* n_launches */
    int32_t n_launches;
    int32_t *root, *start, *end; /* per tensor: storage root, live steps of roots */
    engine_shape_t *shapes;      /* per tensor */
    size_t *off;                 /* per tensor root: byte offset in arena, SIZE_MAX if none */
    size_t *ws_bytes, *ws_off;   /* per node */
    ocl_plan_item_t *items;      /* nt + nn */
    int32_t *by_off;
    bool prepared;
    engine_shape_t *last_in, *last_out;
    /* host_alloc: mapped CL_MEM_ALLOC_HOST_PTR buffers (pinned on GPU drivers) */
    struct ocl_pinned {
        void *p;
        cl_mem m;
    } * pinned;
    int32_t n_pinned, cap_pinned;
    /* benchmark hook: per-kernel events of the last execute */
    bool prof_kernels;
    cl_event *kev; /* n_launches */
    int64_t kernel_ns;
};

/* Where tensor t lives at the prepared shapes: buffer and element offset. */
void ocl_tensor_loc(const backend_instance_t *inst, int32_t t, cl_mem *mem, cl_int *elem_off);

/* ocl_plan.c: create/prepare/destroy of an instance (see backend.h for the contracts). */
hlt_status ocl_plan_create(int device, const backend_model_t *model, backend_instance_t **out,
                           char *err, size_t errlen);
void ocl_plan_destroy(backend_instance_t *inst);
hlt_status ocl_plan_prepare(backend_instance_t *inst, const engine_shape_t *in, engine_shape_t *out,
                            char *err, size_t errlen);

/* ocl_ops.c */
/* Decides epilogue and then chain fusion for every node into inst->fuse (engine/fuse.h: a GEMM
 * runs its epilogue in gemm.cl, a chain is one mlp.cl launch; absorbed nodes launch nothing and
 * their intermediate tensors get no storage); HLT_OPENCL_FUSE=0 disables both,
 * HLT_OPENCL_MLP=0 only the chains (tests and benchmarks compare). */
void ocl_ops_fuse(backend_instance_t *inst);
/* Number of launches node n needs and, when names is not NULL, their kernel names. */
int32_t ocl_ops_count(const backend_instance_t *inst, const graph_node_t *n, const char **names);
/* Host-side constant a node folds at create (NULL bytes = none): Gemm's constant B with
 * transB stored transposed, BatchNormalization's coefficients when all four are constant.
 * Writes *bytes; when dst is not NULL fills it. */
void ocl_ops_derived(const backend_instance_t *inst, const graph_node_t *n, size_t *bytes,
                     void *dst);
/* Whether node n's kernels read input j's raw constant data from the device. */
bool ocl_ops_reads_const(const backend_instance_t *inst, const graph_node_t *n, int32_t j);
/* GEMM facts shared with ocl_launch.c: B constant and transposed (stored as B^T), C used
 * (present, beta != 0), a fused bias/BatchNormalization epilogue, and the bytes of the stored
 * B^T (OCL_ALIGN-rounded; the epilogue's bias|scale|shift follows it in consts). */
bool ocl_gemm_b_folded(const backend_instance_t *inst, const graph_node_t *n);
bool ocl_gemm_has_c(const graph_node_t *n);
bool ocl_gemm_epilogue(const engine_fuse_t *f);
size_t ocl_gemm_bt_bytes(const backend_instance_t *inst, const graph_node_t *n);

/* ocl_launch.c */
/* Sets arguments and NDRange of node i's launches for the prepared shapes. INTERNAL with a
 * message on an OpenCL error. */
hlt_status ocl_launch_setup(backend_instance_t *inst, int32_t i, char *err, size_t errlen);

/* ---- ocl_backend.c ---- */

/* Host buffers the device moves fastest: a CL_MEM_ALLOC_HOST_PTR buffer mapped once (page-
 * locked on GPU drivers, so writes/reads from it are DMA without a driver staging copy). NULL
 * on failure. ocl_host_free unmaps and releases; ocl_plan_destroy releases any left. */
void *ocl_host_alloc(backend_instance_t *inst, size_t bytes);
void ocl_host_free(backend_instance_t *inst, void *p);
void ocl_host_release_all(backend_instance_t *inst);

/* ---- ocl_backend.c: benchmark hooks (not part of backend_i) ---- */

/* Record one event per kernel in later executes, so ocl_kernel_ns can sum kernel time. */
void ocl_set_kernel_profiling(backend_instance_t *inst, bool on);
/* Sum of the kernels' device time in the last execute (ns); -1 when not recorded. */
int64_t ocl_kernel_ns(const backend_instance_t *inst);

#endif
