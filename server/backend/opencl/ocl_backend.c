/* ocl_backend: backend_opencl, the OpenCL implementation of backend_i (backend.h).
 *
 * execute = upload the inputs (non-blocking writes), enqueue every kernel in graph order on the
 * instance's in-order queue, read the outputs back, wait once at the end. With profiling
 * queues (HLT_OPENCL_PROFILING=1 at instance_create; off by default) the timing comes from
 * events: upload = first write's start .. last write's end,
 * compute = first kernel's start .. last kernel's end, download likewise; without, the whole
 * wall time counts as compute. One event per kernel is kept only for the benchmark hook
 * (ocl_set_kernel_profiling), so a normal execute creates at most six events.
 *
 * A model runs here with "instance_group": [{"kind": "KIND_GPU"}] when no CUDA device is
 * found, or always with "parameters": {"gpu_backend": {"string_value": "opencl"}} (model.c's
 * pick_backend). */
#include "ocl.h"

#include "backend/warm_up.h"
#include "clock.h"
#include "engine/shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ocl_backend_probe(char *reason, size_t len)
{
    return ocl_probe(reason, len);
}

static void ocl_device_info(int device, backend_device_info_t *out)
{
    memset(out, 0, sizeof *out);
    const ocl_device_t *d = ocl_device(device);
    if (!d)
        return;
    snprintf(out->name, sizeof out->name, "%s", d->name);
    out->kind = d->type & CL_DEVICE_TYPE_GPU ? BACKEND_DEVICE_GPU : BACKEND_DEVICE_CPU;
    out->memory_bytes = d->global_mem;
    out->compute_units = (int32_t)d->compute_units;
}

static hlt_status ocl_create(int device, const backend_model_t *model, backend_instance_t **out,
                             char *err, size_t errlen)
{
    hlt_status st = ocl_plan_create(device, model, out, err, errlen);
    if (st != HLT_OK || !model->graph)
        return st;
    /* PoCL compiles each kernel at its first launch; the instance is left unprepared, as the
     * caller expects */
    backend_warm_up(&backend_opencl, *out, model->graph,
                    model->cfg ? model->cfg->max_batch_size : 1);
    (*out)->prepared = false;
    return HLT_OK;
}

void *ocl_host_alloc(backend_instance_t *inst, size_t bytes)
{
    if (!bytes)
        bytes = 1;
    if (inst->n_pinned == inst->cap_pinned) {
        const int32_t cap = inst->cap_pinned ? 2 * inst->cap_pinned : 8;
        struct ocl_pinned *p = realloc(inst->pinned, sizeof *p * (size_t)cap);
        if (!p)
            return NULL;
        inst->pinned = p;
        inst->cap_pinned = cap;
    }
    cl_int rc;
    cl_mem m =
        clCreateBuffer(inst->ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &rc);
    if (rc != CL_SUCCESS)
        return NULL;
    void *p = clEnqueueMapBuffer(inst->q, m, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL,
                                 NULL, &rc);
    if (rc != CL_SUCCESS || !p) {
        clReleaseMemObject(m);
        return NULL;
    }
    inst->pinned[inst->n_pinned++] = (struct ocl_pinned){p, m};
    return p;
}

static void unmap(backend_instance_t *inst, struct ocl_pinned *x)
{
    if (clEnqueueUnmapMemObject(inst->q, x->m, x->p, 0, NULL, NULL) == CL_SUCCESS)
        clFinish(inst->q);
    clReleaseMemObject(x->m);
}

void ocl_host_free(backend_instance_t *inst, void *p)
{
    if (!p)
        return;
    for (int32_t i = 0; i < inst->n_pinned; i++)
        if (inst->pinned[i].p == p) {
            unmap(inst, &inst->pinned[i]);
            inst->pinned[i] = inst->pinned[--inst->n_pinned];
            return;
        }
}

void ocl_host_release_all(backend_instance_t *inst)
{
    for (int32_t i = 0; inst->q && i < inst->n_pinned; i++)
        unmap(inst, &inst->pinned[i]);
    inst->n_pinned = 0;
    free(inst->pinned);
    inst->pinned = NULL;
}

static void ocl_destroy(backend_instance_t *inst)
{
    ocl_plan_destroy(inst);
}

static hlt_status ocl_prepare(backend_instance_t *inst, const engine_shape_t *in,
                              engine_shape_t *out, char *err, size_t errlen)
{
    hlt_status st = ocl_plan_prepare(inst, in, out, err, errlen);
    if (st != HLT_OK && err && errlen) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", err);
        snprintf(err, errlen, "OpenCL: %s", msg);
    }
    return st;
}

static size_t bytes_of(const backend_instance_t *inst, int32_t t)
{
    return (size_t)shape_numel(&inst->shapes[t]) * hlt_dtype_size(inst->g->tensors[t].dtype);
}

static int64_t span(cl_event first, cl_event last)
{
    cl_ulong s = 0, e = 0;
    if (!first || !last ||
        clGetEventProfilingInfo(first, CL_PROFILING_COMMAND_START, sizeof s, &s, NULL) ||
        clGetEventProfilingInfo(last, CL_PROFILING_COMMAND_END, sizeof e, &e, NULL))
        return 0;
    return e > s ? (int64_t)(e - s) : 0;
}

/* Event slot for command i of n in a phase: the first and the last one get an event. */
static cl_event *mark(bool prof, cl_event ev[2], int i, int n)
{
    if (!prof)
        return NULL;
    return i == 0 ? &ev[0] : i == n - 1 ? &ev[1] : NULL;
}

static void release(cl_event *ev, int n)
{
    for (int i = 0; i < n; i++)
        if (ev[i]) {
            clReleaseEvent(ev[i]);
            ev[i] = NULL;
        }
}

static hlt_status ocl_execute(backend_instance_t *inst, const void *const *in, void *const *out,
                              backend_timing_t *timing, char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    if (!inst->prepared) {
        snprintf(err, errlen, "OpenCL: execute before a successful prepare");
        return HLT_FAILED_PRECONDITION;
    }
    const int64_t t0 = hlt_now_ns();
    const bool prof = inst->profiling;
    cl_event up[2] = {0}, run[2] = {0}, down[2] = {0};
    cl_int rc = CL_SUCCESS;
    const char *what = "";
    hlt_status st = HLT_OK;
    int n_up = 0, n_run = 0, n_down = 0, k = 0;
    for (int32_t i = 0; i < g->n_inputs; i++)
        n_up += bytes_of(inst, g->inputs[i]) > 0;
    for (int32_t i = 0; i < inst->n_launches; i++)
        n_run += !inst->launches[i].skip;
    for (int32_t i = 0; i < g->n_outputs; i++)
        n_down +=
            bytes_of(inst, g->outputs[i]) > 0 && !g->tensors[inst->root[g->outputs[i]]].is_const;
    for (int32_t i = 0; i < g->n_inputs && rc == CL_SUCCESS; i++) {
        const int32_t t = g->inputs[i];
        const size_t bytes = bytes_of(inst, t);
        if (!bytes)
            continue;
        if (!in[i]) {
            snprintf(err, errlen, "OpenCL: input '%s' has no data", g->tensors[t].name);
            st = HLT_INVALID_ARGUMENT;
            goto out;
        }
        what = "clEnqueueWriteBuffer";
        rc = clEnqueueWriteBuffer(inst->q, inst->arena, CL_FALSE, inst->off[t], bytes, in[i], 0,
                                  NULL, mark(prof, up, k, n_up));
        k++;
    }
    k = 0;
    for (int32_t i = 0; i < inst->n_launches && rc == CL_SUCCESS; i++) {
        const ocl_launch_t *l = &inst->launches[i];
        if (l->skip)
            continue;
        cl_event *ev = inst->prof_kernels && prof ? &inst->kev[i] : mark(prof, run, k, n_run);
        what = "clEnqueueNDRangeKernel";
        rc = clEnqueueNDRangeKernel(inst->q, l->k, l->dims, NULL, l->gws, l->lws, 0, NULL, ev);
        k++;
    }
    k = 0;
    for (int32_t i = 0; i < g->n_outputs && rc == CL_SUCCESS; i++) {
        const int32_t t = g->outputs[i], r = inst->root[t];
        const size_t bytes = bytes_of(inst, t);
        if (!bytes)
            continue;
        if (!out[i]) {
            snprintf(err, errlen, "OpenCL: output '%s' has no buffer", g->tensors[t].name);
            st = HLT_INVALID_ARGUMENT;
            goto out;
        }
        if (g->tensors[r].is_const) { /* a constant output: no device round trip */
            memcpy(out[i], g->tensors[r].data, bytes);
            continue;
        }
        what = "clEnqueueReadBuffer";
        rc = clEnqueueReadBuffer(inst->q, inst->arena, CL_FALSE, inst->off[r], bytes, out[i], 0,
                                 NULL, mark(prof, down, k, n_down));
        k++;
    }
out:;
    /* Always drain: the queue may still read the caller's input buffers. */
    const cl_int frc = clFinish(inst->q);
    if (rc == CL_SUCCESS && frc != CL_SUCCESS) {
        rc = frc;
        what = "clFinish";
    }
    if (st == HLT_OK && rc != CL_SUCCESS) {
        snprintf(err, errlen, "OpenCL: model '%s': %s: %s (%d)", inst->model, what,
                 ocl_strerror(rc), rc);
        st = rc == CL_MEM_OBJECT_ALLOCATION_FAILURE || rc == CL_OUT_OF_RESOURCES ||
                     rc == CL_OUT_OF_HOST_MEMORY
                 ? HLT_RESOURCE_EXHAUSTED
                 : HLT_INTERNAL;
    }
    if (inst->prof_kernels && prof) {
        int32_t first = -1, last = -1;
        inst->kernel_ns = 0;
        for (int32_t i = 0; i < inst->n_launches; i++)
            if (inst->kev[i]) {
                inst->kernel_ns += span(inst->kev[i], inst->kev[i]);
                if (first < 0)
                    first = i;
                last = i;
            }
        if (timing && first >= 0)
            timing->compute_ns = span(inst->kev[first], inst->kev[last]);
        release(inst->kev, inst->n_launches);
    } else if (timing && prof) {
        timing->compute_ns = n_run == 1 ? span(run[0], run[0]) : span(run[0], run[1]);
    }
    if (timing) {
        if (prof) {
            timing->upload_ns = n_up == 1 ? span(up[0], up[0]) : span(up[0], up[1]);
            timing->download_ns = n_down == 1 ? span(down[0], down[0]) : span(down[0], down[1]);
            if (!n_run && !inst->prof_kernels)
                timing->compute_ns = 0;
        } else {
            *timing = (backend_timing_t){0, hlt_now_ns() - t0, 0};
        }
    }
    release(up, 2);
    release(run, 2);
    release(down, 2);
    return st;
}

void ocl_set_kernel_profiling(backend_instance_t *inst, bool on)
{
    inst->prof_kernels = on;
    inst->kernel_ns = -1;
}

int64_t ocl_kernel_ns(const backend_instance_t *inst)
{
    return inst->prof_kernels && inst->profiling ? inst->kernel_ns : -1;
}

const backend_i backend_opencl = {
    .api_version = BACKEND_API_VERSION,
    .name = "opencl",
    .probe = ocl_backend_probe,
    .device_info = ocl_device_info,
    .instance_create = ocl_create,
    .instance_destroy = ocl_destroy,
    .prepare = ocl_prepare,
    .execute = ocl_execute,
    .host_alloc = ocl_host_alloc,
    .host_free = ocl_host_free,
};
