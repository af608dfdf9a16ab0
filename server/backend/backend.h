/* backend: the interface every compute backend implements (CPU, OpenCL, CUDA, XRT), layered
 * like ggml's: a registry of backends -> the devices each one found -> model instances on a
 * device (load a model, execute a batch, destroy).
 *
 * A backend is a `const backend_i` of function pointers; optional slots may be NULL and the
 * wrappers below supply the default. A backend whose runtime or device is absent reports zero
 * devices and a reason (never aborts, never fails the server). The model module (model.c) owns
 * instances: one per instance worker thread, so `execute` is never called concurrently on one
 * instance (different instances may run concurrently, also on one device).
 *
 * Tensor order at this boundary is the model's I/O order: the ONNX graph's input/output order
 * for graph models, the config's order for bitstream (FPGA) models. All buffers handed to
 * `execute` are host memory; moving them to and from the device is the backend's job.
 *
 * API version: BACKEND_API_VERSION; a backend states the version it was written against. */
#ifndef HLT_BACKEND_H
#define HLT_BACKEND_H

#include "engine/engine.h"
#include "hltinfer/status.h"
#include "model_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BACKEND_API_VERSION 1

typedef enum backend_device_kind {
    BACKEND_DEVICE_CPU,
    BACKEND_DEVICE_GPU,
    BACKEND_DEVICE_FPGA,
} backend_device_kind;

typedef struct backend_device_info {
    char name[128]; /* "NVIDIA H100 80GB HBM3", "pthread-AMD EPYC" */
    backend_device_kind kind;
    uint64_t memory_bytes; /* global memory; 0 if unknown */
    int32_t compute_units;
} backend_device_info_t;

/* Where the time of one execute went (ns); a backend fills what it can measure. */
typedef struct backend_timing {
    int64_t upload_ns, compute_ns, download_ns;
} backend_timing_t;

/* What an instance is created from. All borrowed; they outlive the instance. */
typedef struct backend_model {
    const engine_graph_t *graph; /* ONNX graph models; NULL for bitstream models */
    const model_config_t *cfg;   /* completed config */
    const char *model_path;      /* the version's model file (model.onnx, model.xclbin) */
} backend_model_t;

typedef struct backend_instance backend_instance_t; /* backend-private */

typedef struct backend_i {
    int api_version;  /* BACKEND_API_VERSION */
    const char *name; /* "cpu", "opencl", "cuda", "xrt" */
    /* Finds devices, once per process (the registry calls it at most once). Returns the device
     * count; 0 with a reason in `reason` when the runtime or device is absent. */
    int (*probe)(char *reason, size_t len);
    void (*device_info)(int device, backend_device_info_t *out);
    /* Loads the model for one instance on `device`. On success *out is owned by the caller
     * (instance_destroy). INVALID_ARGUMENT/UNIMPLEMENTED with a message naming the model and
     * the problem (e.g. an op this backend lacks). */
    hlt_status (*instance_create)(int device, const backend_model_t *model,
                                  backend_instance_t **out, char *err, size_t errlen);
    void (*instance_destroy)(backend_instance_t *inst);
    /* Resolves shapes for the next executions (model I/O order). Repeated calls with the same
     * input shapes are cheap. */
    hlt_status (*prepare)(backend_instance_t *inst, const engine_shape_t *in_shapes,
                          engine_shape_t *out_shapes, char *err, size_t errlen);
    /* Runs one batch on the shapes of the last prepare: inputs[i] host data (any alignment,
     * read-only), outputs[i] host buffers of the prepared sizes, written in full before
     * return. timing may be NULL. */
    hlt_status (*execute)(backend_instance_t *inst, const void *const *inputs, void *const *outputs,
                          backend_timing_t *timing, char *err, size_t errlen);
    /* Optional: host buffers the backend moves fastest (pinned memory). NULL = malloc/free. */
    void *(*host_alloc)(backend_instance_t *inst, size_t bytes);
    void (*host_free)(backend_instance_t *inst, void *p);
} backend_i;

/* ---- registry ---- */

/* Highest device index + 1 that --backend-config devices= can name. */
#define BACKEND_MAX_DEVICES 256

/* Applies one --backend-config value, Triton's syntax "<backend>,<setting>=<value>" (split at
 * the first comma, so the value may hold commas). Settings:
 *   devices=<i>[,<j>...]  only these devices of the backend may run instances; indices are the
 *                         backend's own numbering (not renumbered). Indices the machine lacks
 *                         are dropped after probing; if none is left the backend reports 0
 *                         devices with a reason naming the flag.
 *   devices=none          disables the backend (as enabled=false)
 *   enabled=true|false    false: the backend is never probed (cuda: never loaded) and reports
 *                         0 devices with reason "disabled by --backend-config=..."
 * A later value for the same backend and setting replaces the earlier one. INVALID_ARGUMENT
 * with a message naming the accepted backends or settings for an unknown backend, an unknown
 * setting or a malformed value; FAILED_PRECONDITION when the backend was already probed. A
 * backend of the project that this build lacks (cuda without nvcc, xrt without XRT) is
 * accepted after the same checks: HLT_OK with a warning in err (err[0] != 0 then).
 * err (borrowed, may be NULL) receives the message. Not thread-safe: call from main before
 * anything uses the registry. */
hlt_status backend_configure(const char *spec, char *err, size_t len);

/* The backend called name, compiled in or loadable, or NULL (also for a loadable backend that
 * does not load or is disabled). Never probes a compiled-in backend. Thread-safe. */
const backend_i *backend_find(const char *name);
/* Number of devices of a backend (probing it on first use) and, when 0, why. Devices are
 * numbered 0..n-1 in the backend's own numbering; 0 is also returned when --backend-config
 * allows none of them. Some of 0..n-1 may still be excluded: see backend_device_allowed.
 * Thread-safe. */
int backend_devices(const backend_i *b, char *reason, size_t len);
/* As backend_find + backend_devices by name, giving the reason also when the backend cannot be
 * resolved (not built, module not loadable, disabled): *out is then NULL. Thread-safe. */
int backend_lookup(const char *name, const backend_i **out, char *reason, size_t len);
/* Whether device dev of b exists and --backend-config allows it. Probes. Thread-safe. */
bool backend_device_allowed(const backend_i *b, int dev);
/* The allowed devices of b in ascending order: writes up to max of them into out and returns
 * how many there are. Probes. Thread-safe. */
int backend_allowed_devices(const backend_i *b, int *out, int max);
/* The devices= list given for b by --backend-config ("0,2"), or NULL when unrestricted.
 * Borrowed, static. Thread-safe after configuration. */
const char *backend_config_devices(const backend_i *b);
/* Names of every backend this build knows, for logs and --help. Static array, NULL-ended. */
const char *const *backend_names(void);
/* State of one backend, for logs and ServerMetadata: "1 device (pthread-...)",
 * "1 of 2 devices allowed (--backend-config devices=0) (...)", "unavailable (reason)".
 * Probes it. Writes into buf (always terminated). Thread-safe. */
void backend_describe(const char *name, char *buf, size_t len);
/* One line for all backends: "cpu: 1 device (...); cuda: unavailable (no GPU)". Probes all.
 * Writes into buf (always terminated). */
void backend_describe_all(char *buf, size_t len);

/* Default host allocation when a backend has no host_alloc. */
void *backend_host_alloc(const backend_i *b, backend_instance_t *inst, size_t bytes);
void backend_host_free(const backend_i *b, backend_instance_t *inst, void *p);

/* Backends compiled into this binary (defined in their own modules). */
extern const backend_i backend_cpu;
#ifdef HLT_HAVE_OPENCL
extern const backend_i backend_opencl;
#endif
#ifdef HLT_HAVE_XRT
extern const backend_i backend_xrt;
#endif

#endif
