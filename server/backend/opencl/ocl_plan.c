/* ocl_plan: one model on one OpenCL device (instance create / prepare / destroy).
 *
 * At create (once per instance, on the model-load thread): the shared program of the device,
 * an in-order queue (with profiling when the device has it), every constant a kernel reads
 * packed into one read-only buffer and uploaded once (Gemm weights stored transposed when
 * transB, BatchNormalization folded into a|b in double like the CPU backend), and every
 * kernel object, one per launch, so an execute never creates anything.
 *
 * At prepare: shapes from the engine's own rules (shape_infer_node, never duplicated here);
 * graph inputs, intermediates and workspaces then get offsets in ONE device buffer, the arena,
 * shared by live range with the greedy largest-first placement of server/engine/exec.c (views
 * alias their input). The arena only grows, so alternating batch sizes stop allocating after
 * the largest one, and kernels take (buffer, element offset) pairs instead of sub-buffers.
 * Kernel arguments are set here, once per distinct input shape. */
#include "ocl.h"

#include "engine/ops.h"
#include "engine/shape.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_SLOT SIZE_MAX

static size_t round_up(size_t n)
{
    return (n + OCL_ALIGN - 1) & ~(size_t)(OCL_ALIGN - 1);
}

void ocl_plan_destroy(backend_instance_t *inst)
{
    if (!inst)
        return;
    for (int32_t i = 0; inst->launches && i < inst->n_launches; i++) {
        if (inst->launches[i].k)
            clReleaseKernel(inst->launches[i].k);
        if (inst->kev && inst->kev[i])
            clReleaseEvent(inst->kev[i]);
    }
    ocl_host_release_all(inst);
    if (inst->arena)
        clReleaseMemObject(inst->arena);
    if (inst->consts)
        clReleaseMemObject(inst->consts);
    if (inst->q)
        clReleaseCommandQueue(inst->q);
    if (inst->prog)
        ocl_shared_release(inst->dev);
    free(inst->launches);
    free(inst->kev);
    free(inst->nodes);
    free(inst->fuse);
    free(inst->const_off);
    free(inst->root);
    free(inst->start);
    free(inst->end);
    free(inst->shapes);
    free(inst->off);
    free(inst->ws_bytes);
    free(inst->ws_off);
    free(inst->items);
    free(inst->by_off);
    free(inst->last_in);
    free(inst->last_out);
    free(inst);
}

static hlt_status oom(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return HLT_RESOURCE_EXHAUSTED;
}

/* Constants: which ones kernels read, plus per-node folded data, packed into one buffer. */
static hlt_status upload_constants(backend_instance_t *inst, char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    size_t total = 0;
    for (int32_t t = 0; t < inst->nt; t++)
        inst->const_off[t] = NO_SLOT;
    for (int32_t i = 0; i < inst->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        for (int32_t j = 0; j < n->n_in; j++) {
            const int32_t t = n->in[j] >= 0 ? inst->root[n->in[j]] : -1;
            if (t < 0 || !g->tensors[t].is_const || inst->const_off[t] != NO_SLOT ||
                !ocl_ops_reads_const(inst, n, j))
                continue;
            engine_shape_t s = inst->shapes[t];
            inst->const_off[t] = total;
            total += round_up((size_t)shape_numel(&s) * hlt_dtype_size(g->tensors[t].dtype));
        }
        size_t bytes = 0;
        ocl_ops_derived(inst, n, &bytes, NULL);
        inst->nodes[i].derived = bytes ? total : NO_SLOT;
        total += round_up(bytes);
    }
    if (total == 0)
        return HLT_OK;
    if (total > inst->d->max_alloc) {
        snprintf(err, errlen, "constants take %zu bytes, more than the device's largest buffer",
                 total);
        return HLT_RESOURCE_EXHAUSTED;
    }
    uint8_t *host = calloc(1, total);
    if (!host)
        return oom(err, errlen);
    for (int32_t t = 0; t < inst->nt; t++)
        if (inst->const_off[t] != NO_SLOT) {
            const size_t bytes =
                (size_t)shape_numel(&inst->shapes[t]) * hlt_dtype_size(g->tensors[t].dtype);
            if (bytes)
                memcpy(host + inst->const_off[t], g->tensors[t].data, bytes);
        }
    for (int32_t i = 0; i < inst->nn; i++)
        if (inst->nodes[i].derived != NO_SLOT) {
            size_t bytes = 0;
            ocl_ops_derived(inst, &g->nodes[i], &bytes, host + inst->nodes[i].derived);
        }
    cl_int rc;
    inst->consts =
        clCreateBuffer(inst->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, total, host, &rc);
    free(host);
    if (rc != CL_SUCCESS) {
        snprintf(err, errlen, "cannot upload %zu bytes of constants: %s (%d)", total,
                 ocl_strerror(rc), rc);
        return HLT_RESOURCE_EXHAUSTED;
    }
    return HLT_OK;
}

static hlt_status create_kernels(backend_instance_t *inst, char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    int32_t total = 0;
    for (int32_t i = 0; i < inst->nn; i++) {
        inst->nodes[i].first = total;
        inst->nodes[i].count = ocl_ops_count(inst, &g->nodes[i], NULL);
        inst->nodes[i].needs_ws = g->nodes[i].op == OP_BATCHNORM && inst->nodes[i].count == 2;
        total += inst->nodes[i].count;
    }
    inst->launches = calloc((size_t)total + 1, sizeof *inst->launches);
    inst->kev = calloc((size_t)total + 1, sizeof *inst->kev);
    if (!inst->launches || !inst->kev)
        return oom(err, errlen);
    inst->n_launches = total;
    for (int32_t i = 0; i < inst->nn; i++) {
        const char *names[ENGINE_MAX_RANK * 8];
        const graph_node_t *n = &g->nodes[i];
        if (inst->nodes[i].count > (int32_t)(sizeof names / sizeof names[0])) {
            snprintf(err, errlen, "node '%s' (%s): too many inputs for the OpenCL backend", n->name,
                     op_def(n->op)->name);
            return HLT_UNIMPLEMENTED;
        }
        ocl_ops_count(inst, n, names);
        for (int32_t k = 0; k < inst->nodes[i].count; k++) {
            cl_int rc;
            ocl_launch_t *l = &inst->launches[inst->nodes[i].first + k];
            l->k = clCreateKernel(inst->prog, names[k], &rc);
            if (rc != CL_SUCCESS) {
                snprintf(err, errlen, "node '%s' (%s): kernel '%s': %s (%d)", n->name,
                         op_def(n->op)->name, names[k], ocl_strerror(rc), rc);
                return HLT_INTERNAL;
            }
        }
    }
    return HLT_OK;
}

/* Shape-independent facts: storage roots and live ranges, as exec.c computes them. */
static void plan_lifetimes(backend_instance_t *inst)
{
    const engine_graph_t *g = inst->g;
    for (int32_t t = 0; t < inst->nt; t++) {
        const graph_tensor_t *gt = &g->tensors[t];
        inst->root[t] = t;
        inst->start[t] = inst->end[t] = gt->input_idx >= 0 ? 0 : -1;
        if (gt->is_const) {
            inst->shapes[t].rank = gt->rank;
            memcpy(inst->shapes[t].dims, gt->dims, sizeof inst->shapes[t].dims);
        }
    }
    for (int32_t i = 0; i < inst->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        const int32_t y = n->out[0];
        if (op_def(n->op)->view)
            inst->root[y] = inst->root[n->in[0]];
        else if (inst->fuse[i].fused_into < 0) /* absorbed nodes' outputs take no storage */
            inst->start[inst->fuse[i].out] = inst->end[inst->fuse[i].out] = i + 1;
        if (inst->fuse[i].chain_logits >= 0) /* a chain's second output */
            inst->start[inst->fuse[i].chain_logits] = inst->end[inst->fuse[i].chain_logits] = i + 1;
        for (int32_t j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0 && inst->end[inst->root[n->in[j]]] < i + 1)
                inst->end[inst->root[n->in[j]]] = i + 1;
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        inst->end[inst->root[g->outputs[i]]] = inst->nn + 1;
}

hlt_status ocl_plan_create(int device, const backend_model_t *model, backend_instance_t **out,
                           char *err, size_t errlen)
{
    const engine_graph_t *g = model->graph;
    const char *name = model->cfg && model->cfg->name ? model->cfg->name : "?";
    if (!g) {
        snprintf(err, errlen, "model '%s': the OpenCL backend runs ONNX graphs only", name);
        return HLT_INVALID_ARGUMENT;
    }
    const ocl_device_t *d = ocl_device(device);
    if (!d) {
        snprintf(err, errlen, "model '%s': no OpenCL device %d", name, device);
        return HLT_INVALID_ARGUMENT;
    }
    backend_instance_t *inst = calloc(1, sizeof *inst);
    if (!inst)
        return oom(err, errlen);
    snprintf(inst->model, sizeof inst->model, "%s", name);
    inst->g = g;
    inst->dev = device;
    inst->d = d;
    inst->nt = g->n_tensors;
    inst->nn = g->n_nodes;
    /* GPU-style kernels on GPUs; HLT_OPENCL_KERNELS=gpu|cpu overrides (tests run both). */
    const char *force = getenv("HLT_OPENCL_KERNELS");
    inst->tiled = force && *force ? strcmp(force, "gpu") == 0 : (d->type & CL_DEVICE_TYPE_GPU);
    const size_t nt = (size_t)inst->nt + 1, nn = (size_t)inst->nn + 1;
    inst->nodes = calloc(nn, sizeof *inst->nodes);
    inst->fuse = calloc(nn, sizeof *inst->fuse);
    inst->const_off = calloc(nt, sizeof *inst->const_off);
    inst->root = calloc(nt, sizeof *inst->root);
    inst->start = calloc(nt, sizeof *inst->start);
    inst->end = calloc(nt, sizeof *inst->end);
    inst->shapes = calloc(nt, sizeof *inst->shapes);
    inst->off = calloc(nt, sizeof *inst->off);
    inst->ws_bytes = calloc(nn, sizeof *inst->ws_bytes);
    inst->ws_off = calloc(nn, sizeof *inst->ws_off);
    inst->items = calloc(nt + nn, sizeof *inst->items);
    inst->by_off = calloc(nt + nn, sizeof *inst->by_off);
    inst->last_in = calloc((size_t)g->n_inputs + 1, sizeof *inst->last_in);
    inst->last_out = calloc((size_t)g->n_outputs + 1, sizeof *inst->last_out);
    hlt_status st = HLT_OK;
    char msg[400];
    if (!inst->nodes || !inst->fuse || !inst->const_off || !inst->root || !inst->start ||
        !inst->end || !inst->shapes || !inst->off || !inst->ws_bytes || !inst->ws_off ||
        !inst->items || !inst->by_off || !inst->last_in || !inst->last_out) {
        st = oom(msg, sizeof msg);
        goto fail;
    }
    ocl_ops_fuse(inst);
    plan_lifetimes(inst);
    if ((st = ocl_shared_acquire(device, &inst->ctx, &inst->prog, msg, sizeof msg)) != HLT_OK)
        goto fail;
    /* Profiling queues only on request (HLT_OPENCL_PROFILING=1, the benchmarks): PoCL's event
     * timestamps cost facile at batch 256 ~100 of ~330 us (benchmarks/results/backends-notes.md).
     * Without them the whole execute counts as compute in the statistics. */
    const char *pe = getenv("HLT_OPENCL_PROFILING");
    inst->profiling = d->profiling && pe && !strcmp(pe, "1");
    cl_int rc;
    inst->q = clCreateCommandQueue(inst->ctx, d->id,
                                   inst->profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &rc);
    if (rc != CL_SUCCESS) {
        snprintf(msg, sizeof msg, "clCreateCommandQueue: %s (%d)", ocl_strerror(rc), rc);
        st = HLT_UNAVAILABLE;
        goto fail;
    }
    if ((st = create_kernels(inst, msg, sizeof msg)) != HLT_OK ||
        (st = upload_constants(inst, msg, sizeof msg)) != HLT_OK)
        goto fail;
    /* 1-D work-group: the device's preferred multiple of the elementwise kernel times a few,
     * within the device's and the kernel's limits; CPU devices take small groups (each group is
     * one task for PoCL's threads), GPUs 256. */
    size_t kmax = d->max_wg, mult = 1;
    for (int32_t i = 0; i < inst->n_launches; i++) {
        size_t v = 0;
        if (clGetKernelWorkGroupInfo(inst->launches[i].k, d->id, CL_KERNEL_WORK_GROUP_SIZE,
                                     sizeof v, &v, NULL) == CL_SUCCESS &&
            v && v < kmax)
            kmax = v;
    }
    if (inst->n_launches)
        clGetKernelWorkGroupInfo(inst->launches[0].k, d->id,
                                 CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE, sizeof mult, &mult,
                                 NULL);
    size_t want = inst->tiled ? 256 : 64;
    if (mult > 1 && want % mult)
        want = (want / mult + 1) * mult;
    inst->wg = want < kmax ? want : kmax;
    if (inst->tiled && inst->wg < ocl_tile(d) * ocl_tile(d))
        inst->tiled = false; /* the tiled GEMM needs HLT_TS^2 work-items per group */
    *out = inst;
    return HLT_OK;
fail:
    snprintf(err, errlen, "model '%s' on OpenCL device '%s': %s", name, d->name, msg);
    ocl_plan_destroy(inst);
    return st;
}

static bool same_inputs(const backend_instance_t *inst, const engine_shape_t *in)
{
    for (int32_t i = 0; i < inst->g->n_inputs; i++) {
        if (in[i].rank != inst->last_in[i].rank)
            return false;
        for (int32_t k = 0; k < in[i].rank; k++)
            if (in[i].dims[k] != inst->last_in[i].dims[k])
                return false;
    }
    return true;
}

/* The engine's input checks, then the limit of the kernels' 32-bit indexing. */
static hlt_status check_inputs(const backend_instance_t *inst, const engine_shape_t *in, char *err,
                               size_t errlen)
{
    const engine_graph_t *g = inst->g;
    hlt_status st = engine_check_inputs(g, in, err, errlen);
    if (st != HLT_OK)
        return st;
    for (int32_t i = 0; i < g->n_inputs; i++)
        if (shape_numel(&in[i]) > INT_MAX) {
            snprintf(err, errlen,
                     "input '%s': more than %d elements: too large for the OpenCL backend's "
                     "32-bit indexing",
                     g->input_desc[i].name, INT_MAX);
            return HLT_INVALID_ARGUMENT;
        }
    return HLT_OK;
}

hlt_status ocl_plan_prepare(backend_instance_t *inst, const engine_shape_t *in, engine_shape_t *out,
                            char *err, size_t errlen)
{
    const engine_graph_t *g = inst->g;
    hlt_status st = check_inputs(inst, in, err, errlen);
    if (st != HLT_OK)
        return st;
    if (inst->prepared && same_inputs(inst, in))
        goto done;
    inst->prepared = false;
    for (int32_t i = 0; i < g->n_inputs; i++)
        inst->shapes[g->inputs[i]] = in[i];
    for (int32_t i = 0; i < inst->nn; i++) {
        const graph_node_t *n = &g->nodes[i];
        if ((st = shape_infer_node(g, n, inst->shapes, &inst->ws_bytes[i], err, errlen)))
            return st;
        if (!inst->nodes[i].needs_ws)
            inst->ws_bytes[i] = 0;
        if (shape_numel(&inst->shapes[n->out[0]]) > INT_MAX) {
            snprintf(err, errlen,
                     "node '%s' (%s): output of more than %d elements: too large "
                     "for the OpenCL backend's 32-bit indexing",
                     n->name, op_def(n->op)->name, INT_MAX);
            return HLT_INVALID_ARGUMENT;
        }
    }
    int32_t n = 0;
    for (int32_t t = 0; t < inst->nt; t++) {
        inst->off[t] = NO_SLOT;
        if (inst->root[t] != t || inst->start[t] < 0 || g->tensors[t].is_const)
            continue;
        const size_t bytes =
            (size_t)shape_numel(&inst->shapes[t]) * hlt_dtype_size(g->tensors[t].dtype);
        inst->items[n++] = (ocl_plan_item_t){round_up(bytes), 0, inst->start[t], inst->end[t], t};
    }
    for (int32_t i = 0; i < inst->nn; i++)
        if (inst->ws_bytes[i])
            inst->items[n++] =
                (ocl_plan_item_t){round_up(inst->ws_bytes[i]), 0, i + 1, i + 1, inst->nt + i};
    const size_t total = engine_plan_place(inst->items, n, inst->by_off);
    for (int32_t k = 0; k < n; k++) {
        const ocl_plan_item_t *it = &inst->items[k];
        if (it->owner < inst->nt)
            inst->off[it->owner] = it->off;
        else
            inst->ws_off[it->owner - inst->nt] = it->off;
    }
    if (total / sizeof(float) > INT_MAX || total > inst->d->max_alloc) {
        snprintf(err, errlen, "intermediate tensors need %zu bytes: too large for the device",
                 total);
        return HLT_RESOURCE_EXHAUSTED;
    }
    const size_t need = total ? total : OCL_ALIGN; /* clCreateBuffer refuses 0 bytes */
    if (need > inst->arena_cap) {
        cl_int rc;
        if (inst->arena)
            clReleaseMemObject(inst->arena);
        inst->arena_cap = 0;
        inst->arena = clCreateBuffer(inst->ctx, CL_MEM_READ_WRITE, need, NULL, &rc);
        if (rc != CL_SUCCESS) {
            inst->arena = NULL;
            snprintf(err, errlen, "cannot allocate %zu bytes on the device: %s (%d)", need,
                     ocl_strerror(rc), rc);
            return HLT_RESOURCE_EXHAUSTED;
        }
        inst->arena_cap = need;
    }
    for (int32_t i = 0; i < inst->nn; i++)
        if ((st = ocl_launch_setup(inst, i, err, errlen)) != HLT_OK)
            return st;
    for (int32_t i = 0; i < g->n_inputs; i++)
        inst->last_in[i] = in[i];
    for (int32_t i = 0; i < g->n_outputs; i++)
        inst->last_out[i] = inst->shapes[g->outputs[i]];
    inst->prepared = true;
done:
    if (g->n_outputs)
        memcpy(out, inst->last_out, sizeof *out * (size_t)g->n_outputs);
    return HLT_OK;
}

void ocl_tensor_loc(const backend_instance_t *inst, int32_t t, cl_mem *mem, cl_int *elem_off)
{
    const int32_t r = inst->root[t];
    const size_t es = hlt_dtype_size(inst->g->tensors[t].dtype);
    if (inst->g->tensors[r].is_const) {
        *mem = inst->consts;
        *elem_off = (cl_int)(inst->const_off[r] / es);
    } else {
        *mem = inst->arena;
        *elem_off = (cl_int)(inst->off[r] == NO_SLOT ? 0 : inst->off[r] / es);
    }
}
