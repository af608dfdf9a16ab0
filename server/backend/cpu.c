/* CPU backend: the engine's own executor (engine_exec_*), one engine_exec per instance. It is
 * the reference every other backend is compared with. BLAS threading is set once by the
 * server (one thread per instance worker), so instances never oversubscribe the cores. */
#include "backend.h"

#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct backend_instance {
    engine_exec_t *exec;
};

static int cpu_probe(char *reason, size_t len)
{
    (void)reason;
    (void)len;
    return 1;
}

static void cpu_device_info(int device, backend_device_info_t *out)
{
    (void)device;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "host CPU");
    out->kind = BACKEND_DEVICE_CPU;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    out->compute_units = cores > 0 ? (int32_t)cores : 1;
    out->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

static hlt_status cpu_create(int device, const backend_model_t *model, backend_instance_t **out,
                             char *err, size_t errlen)
{
    (void)device;
    if (!model->graph) {
        snprintf(err, errlen, "model '%s': the CPU backend runs ONNX graphs only",
                 model->cfg->name);
        return HLT_INVALID_ARGUMENT;
    }
    backend_instance_t *inst = calloc(1, sizeof *inst);
    if (!inst)
        return HLT_RESOURCE_EXHAUSTED;
    hlt_status st = engine_exec_create(model->graph, &inst->exec, err, errlen);
    if (st) {
        free(inst);
        return st;
    }
    *out = inst;
    return HLT_OK;
}

static void cpu_destroy(backend_instance_t *inst)
{
    if (!inst)
        return;
    engine_exec_destroy(inst->exec);
    free(inst);
}

static hlt_status cpu_prepare(backend_instance_t *inst, const engine_shape_t *in,
                              engine_shape_t *out, char *err, size_t errlen)
{
    return engine_exec_prepare(inst->exec, in, out, err, errlen);
}

static hlt_status cpu_execute(backend_instance_t *inst, const void *const *in, void *const *out,
                              backend_timing_t *t, char *err, size_t errlen)
{
    int64_t t0 = hlt_now_ns();
    hlt_status st = engine_exec_run(inst->exec, in, out, err, errlen);
    if (t)
        *t = (backend_timing_t){0, hlt_now_ns() - t0, 0};
    return st;
}

const backend_i backend_cpu = {
    .api_version = BACKEND_API_VERSION,
    .name = "cpu",
    .probe = cpu_probe,
    .device_info = cpu_device_info,
    .instance_create = cpu_create,
    .instance_destroy = cpu_destroy,
    .prepare = cpu_prepare,
    .execute = cpu_execute,
};
