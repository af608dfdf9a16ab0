/* XRT backend: runs bitstream models (an hls4ml-style kernel: input buffers, output buffers, a
 * row count, fixed-point values on a 512-bit bus) on Xilinx/AMD FPGAs through XRT's C API. It
 * runs no ONNX graph: the model is the xclbin.
 *
 * One instance drives every compute unit (CU) the config selects. At creation it loads the
 * xclbin (xrt_device.c), opens one kernel handle per CU ("kernel:{cu}", so a run goes to that
 * CU), and allocates a ring of buffer sets once: ring_slots per CU, interleaved so that
 * consecutive slots belong to different CUs (FaaST's NBUFFER scheme). Each slot owns one buffer
 * object per tensor argument in the bank the CU is connected to, and one run handle whose
 * buffer arguments are bound once.
 *
 * execute splits a batch into runs (rows_per_run rows, zero-padded; or the batch spread over the
 * CUs, at most max_rows_per_run each) and feeds them to the ring in order: pack floats into the
 * slot's input buffers, sync to the device, start; when the ring comes back to a slot that is
 * still in flight, wait for it, sync its outputs back and unpack them into the caller's output
 * rows. So up to ring_slots runs per CU are in flight and packing overlaps the kernels. The ring
 * position carries over between executes, so small batches rotate over the CUs too.
 *
 * Each completed run is logged at verbose level (event=xrt_run ... cu=<name> state=COMPLETED)
 * and counted per CU; the counts are logged when the instance closes.
 *
 * Threads: an instance belongs to one worker thread (execute is never concurrent on it);
 * instances of one or several models may run concurrently on one card: XRT's handles are
 * thread-safe and the device table (xrt_device.c) has its own lock. */
#include "backend/backend.h"

#include "clock.h"
#include "log.h"
#include "xrt_config.h"
#include "xrt_device.h"

#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cu {
    xrtKernelHandle k;
    char name[XRT_NAME_MAX];
    uint64_t runs;
} cu_t;

typedef struct slot {
    int cu;
    xrtRunHandle run;
    xrtBufferHandle bo[XRT_MAX_ARGS];
    uint8_t *map[XRT_MAX_ARGS];
    bool busy;
    uint64_t gen;       /* the execute that started the run */
    int64_t row0, rows; /* the batch rows this run computes */
} slot_t;

struct backend_instance {
    const model_config_t *cfg;
    xrt_model_cfg_t mc;
    xrt_dev_t *dev;
    int n_cus;
    cu_t *cus;
    int n_slots, next;
    slot_t *slots;
    int64_t cap_rows;               /* rows one slot holds */
    size_t row_bytes[XRT_MAX_ARGS]; /* bus bytes per row ("row" layout), per argument */
    size_t per_row[XRT_MAX_ARGS];   /* values per row, per kernel argument */
    bool dense[XRT_MAX_ARGS];       /* "dense" layout: rows share bus words */
    unsigned vpw[XRT_MAX_ARGS];     /* values per bus word */
    int64_t rows;                   /* of the prepared batch */
    uint32_t *scratch;              /* fixed-point codes */
    size_t scratch_len;
    float *stage;          /* rows of a misaligned caller buffer */
    const void *const *in; /* the current execute's buffers */
    void *const *out;
    uint64_t gen; /* executes so far */
};

static hlt_status fail(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hlt_status fail(char *err, size_t errlen, hlt_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* Bus bytes `rows` rows of argument a take. */
static size_t arg_bytes(const backend_instance_t *in, int a, int64_t rows)
{
    return in->dense[a] ? fxp_row_bytes((size_t)rows * in->per_row[a], in->vpw[a])
                        : (size_t)rows * in->row_bytes[a];
}

static int xrt_probe(char *reason, size_t len)
{
    return xrt_device_probe(reason, len);
}

static void xrt_device_info(int device, backend_device_info_t *out)
{
    memset(out, 0, sizeof *out);
    xrt_device_name(device, out->name, sizeof out->name);
    out->kind = BACKEND_DEVICE_FPGA;
}

static const char *state_name(int s)
{
    static const char *const names[] = {"0",         "NEW",        "QUEUED", "RUNNING",
                                        "COMPLETED", "ERROR",      "ABORT",  "SUBMITTED",
                                        "TIMEOUT",   "NORESPONSE", "SKERROR"};
    return s >= 0 && s <= 10 ? names[s] : "UNKNOWN";
}

/* Waits for a slot's run and unpacks its outputs into the current execute's output rows. A run
 * left over from an earlier execute (it outlived run_timeout_ms there) is waited for and its
 * outputs dropped: that execute has already failed and its buffers are gone. */
static hlt_status finish(backend_instance_t *in, slot_t *s, char *err, size_t errlen)
{
    const xrt_model_cfg_t *mc = &in->mc;
    bool stale = s->gen != in->gen;
    enum ert_cmd_state st = xrtRunWaitFor(s->run, mc->run_timeout_ms);
    if (st != ERT_CMD_STATE_COMPLETED) {
        if (st != ERT_CMD_STATE_RUNNING && st != ERT_CMD_STATE_QUEUED && st != ERT_CMD_STATE_NEW &&
            st != ERT_CMD_STATE_SUBMITTED)
            s->busy = false; /* ended badly; the slot can run again */
        HLT_LOG(HLT_LOG_VERBOSE, "event=xrt_run model=%s cu=%s state=%s", in->cfg->name,
                in->cus[s->cu].name, state_name(st));
        return fail(err, errlen, HLT_INTERNAL, "kernel run on compute unit %s ended %s%s",
                    in->cus[s->cu].name, state_name(st),
                    s->busy ? " (still running after run_timeout_ms)" : "");
    }
    s->busy = false;
    in->cus[s->cu].runs++;
    if (stale)
        return HLT_OK;
    HLT_LOG(HLT_LOG_VERBOSE,
            "event=xrt_run model=%s cu=%s slot=%d rows=%" PRId64 " state=COMPLETED runs=%" PRIu64,
            in->cfg->name, in->cus[s->cu].name, (int)(s - in->slots), s->rows, in->cus[s->cu].runs);
    for (int a = 0; a < mc->n_args; a++) {
        if (mc->args[a].role != XRT_ROLE_OUTPUT)
            continue;
        size_t per = in->per_row[a], bytes = arg_bytes(in, a, s->rows);
        if (xrtBOSync(s->bo[a], XCL_BO_SYNC_BO_FROM_DEVICE, bytes, 0))
            return fail(err, errlen, HLT_INTERNAL, "XRT cannot read back output '%s' (errno %d)",
                        in->cfg->outputs[mc->args[a].tensor].name, errno);
        float *dst = (float *)in->out[mc->args[a].tensor] + (size_t)s->row0 * per;
        bool aligned = ((uintptr_t)dst & (sizeof(float) - 1)) == 0;
        if (in->dense[a])
            fxp_unpack_stream(&mc->out_fmt, in->vpw[a], s->map[a], (size_t)s->rows * per,
                              aligned ? dst : in->stage, in->scratch, in->scratch_len);
        else
            fxp_unpack_rows(&mc->out_fmt, in->vpw[a], s->map[a], (size_t)s->rows, per,
                            aligned ? dst : in->stage, in->scratch, in->scratch_len);
        if (!aligned)
            memcpy(dst, in->stage, (size_t)s->rows * per * sizeof(float));
    }
    return HLT_OK;
}

/* Packs rows [row0, row0+rows) into slot s and starts its run. */
static hlt_status start(backend_instance_t *in, slot_t *s, int64_t row0, int64_t rows, char *err,
                        size_t errlen)
{
    const xrt_model_cfg_t *mc = &in->mc;
    int64_t run_rows = mc->rows_per_run ? mc->rows_per_run : rows;
    for (int a = 0; a < mc->n_args; a++) {
        if (mc->args[a].role != XRT_ROLE_INPUT)
            continue;
        size_t per = in->per_row[a];
        const float *src = (const float *)in->in[mc->args[a].tensor] + (size_t)row0 * per;
        if (((uintptr_t)src & (sizeof(float) - 1)) != 0) {
            memcpy(in->stage, src, (size_t)rows * per * sizeof(float));
            src = in->stage;
        }
        if (in->dense[a])
            fxp_pack_stream(&mc->in_fmt, in->vpw[a], src, (size_t)rows * per, s->map[a],
                            in->scratch, in->scratch_len);
        else
            fxp_pack_rows(&mc->in_fmt, in->vpw[a], src, (size_t)rows, per, s->map[a], in->scratch,
                          in->scratch_len);
        size_t used = arg_bytes(in, a, rows), total = arg_bytes(in, a, run_rows);
        memset(s->map[a] + used, 0, total - used);
        if (xrtBOSync(s->bo[a], XCL_BO_SYNC_BO_TO_DEVICE, total, 0))
            return fail(err, errlen, HLT_INTERNAL, "XRT cannot send input '%s' (errno %d)",
                        in->cfg->inputs[mc->args[a].tensor].name, errno);
    }
    if (mc->rows_arg >= 0 && xrtRunSetArg(s->run, mc->rows_arg, (unsigned)run_rows))
        return fail(err, errlen, HLT_INTERNAL, "XRT cannot set the row count (errno %d)", errno);
    if (xrtRunStart(s->run))
        return fail(err, errlen, HLT_INTERNAL, "XRT cannot start a run on compute unit %s",
                    in->cus[s->cu].name);
    s->busy = true;
    s->gen = in->gen;
    s->row0 = row0;
    s->rows = rows;
    return HLT_OK;
}

static hlt_status xrt_execute(backend_instance_t *in, const void *const *inputs,
                              void *const *outputs, backend_timing_t *t, char *err, size_t errlen)
{
    int64_t t0 = hlt_now_ns();
    in->gen++;
    in->in = inputs;
    in->out = outputs;
    const xrt_model_cfg_t *mc = &in->mc;
    int64_t chunk = mc->rows_per_run;
    if (!chunk) {
        chunk = (in->rows + in->n_cus - 1) / in->n_cus;
        chunk = chunk < 1 ? 1 : chunk > in->cap_rows ? in->cap_rows : chunk;
    }
    hlt_status st = HLT_OK;
    for (int64_t r = 0; r < in->rows && !st; r += chunk) {
        slot_t *s = &in->slots[in->next];
        in->next = (in->next + 1) % in->n_slots;
        if (s->busy && (st = finish(in, s, err, errlen)))
            break;
        st = start(in, s, r, in->rows - r < chunk ? in->rows - r : chunk, err, errlen);
    }
    /* Drain in ring order (oldest first), also after an error: no run may outlive the
     * caller's buffers' turn. */
    for (int i = 0; i < in->n_slots; i++) {
        slot_t *s = &in->slots[(in->next + i) % in->n_slots];
        if (!s->busy)
            continue;
        char e2[256];
        hlt_status st2 = finish(in, s, e2, sizeof e2);
        if (st2 && !st)
            st = fail(err, errlen, st2, "%s", e2);
    }
    in->in = NULL;
    in->out = NULL;
    if (t)
        *t = (backend_timing_t){0, hlt_now_ns() - t0, 0};
    return st;
}

static hlt_status xrt_prepare(backend_instance_t *in, const engine_shape_t *shapes,
                              engine_shape_t *out_shapes, char *err, size_t errlen)
{
    const model_config_t *cfg = in->cfg;
    bool batching = cfg->max_batch_size > 0;
    int64_t rows = batching ? shapes[0].dims[0] : 1;
    for (size_t i = 0; i < cfg->n_inputs; i++) {
        const model_tensor_cfg_t *t = &cfg->inputs[i];
        int32_t off = batching ? 1 : 0;
        bool ok = shapes[i].rank == t->rank + off && (!batching || shapes[i].dims[0] == rows);
        for (int32_t d = 0; ok && d < t->rank; d++)
            ok = shapes[i].dims[d + off] == t->dims[d];
        if (!ok || rows < 0 || rows > in->mc.max_rows)
            return fail(err, errlen, HLT_INVALID_ARGUMENT,
                        "input '%s' has a shape the bitstream does not take (config dims, "
                        "batch up to %" PRId64 ")",
                        t->name, in->mc.max_rows);
    }
    for (size_t o = 0; o < cfg->n_outputs; o++) {
        const model_tensor_cfg_t *t = &cfg->outputs[o];
        engine_shape_t *s = &out_shapes[o];
        s->rank = 0;
        if (batching)
            s->dims[s->rank++] = rows;
        for (int32_t d = 0; d < t->rank; d++)
            s->dims[s->rank++] = t->dims[d];
    }
    in->rows = rows;
    return HLT_OK;
}

static void xrt_destroy(backend_instance_t *in)
{
    if (!in)
        return;
    for (int i = 0; in->slots && i < in->n_slots; i++) {
        slot_t *s = &in->slots[i];
        if (s->busy)
            xrtRunWaitFor(s->run, in->mc.run_timeout_ms);
        if (s->run)
            xrtRunClose(s->run);
        for (int a = 0; a < XRT_MAX_ARGS; a++)
            if (s->bo[a])
                xrtBOFree(s->bo[a]);
    }
    for (int c = 0; in->cus && c < in->n_cus; c++) {
        if (in->cus[c].k) {
            HLT_LOG(HLT_LOG_INFO, "event=xrt_cu_closed model=%s cu=%s runs=%" PRIu64, in->cfg->name,
                    in->cus[c].name, in->cus[c].runs);
            xrtKernelClose(in->cus[c].k);
        }
    }
    xrt_device_release(in->dev);
    free(in->slots);
    free(in->cus);
    free(in->scratch);
    free(in->stage);
    free(in);
}

/* Opens the CUs and allocates the ring. */
static hlt_status open_cus(backend_instance_t *in, char names[][XRT_NAME_MAX],
                           const uint8_t uuid[16], char *err, size_t errlen)
{
    const xrt_model_cfg_t *mc = &in->mc;
    xrtDeviceHandle dh = xrt_device_handle(in->dev);
    int group[XRT_MAX_CUS][XRT_MAX_ARGS];
    for (int c = 0; c < in->n_cus; c++) {
        cu_t *cu = &in->cus[c];
        char spec[2 * XRT_NAME_MAX + 4];
        snprintf(cu->name, sizeof cu->name, "%s", names[c]);
        snprintf(spec, sizeof spec, "%s:{%s}", mc->kernel, names[c]);
        if (!(cu->k = xrtPLKernelOpen(dh, uuid, spec)))
            return fail(err, errlen, HLT_UNAVAILABLE,
                        "XRT cannot open compute unit '%s' (errno %d)", spec, errno);
        for (int a = 0; a < mc->n_args; a++)
            group[c][a] = mc->args[a].role == XRT_ROLE_ROWS ? -1 : xrtKernelArgGroupId(cu->k, a);
    }
    for (int i = 0; i < in->n_slots; i++) {
        slot_t *s = &in->slots[i];
        s->cu = i % in->n_cus;
        if (!(s->run = xrtRunOpen(in->cus[s->cu].k)))
            return fail(err, errlen, HLT_RESOURCE_EXHAUSTED, "XRT cannot create a run handle");
        for (int a = 0; a < mc->n_args; a++) {
            if (mc->args[a].role == XRT_ROLE_ROWS)
                continue;
            /* whole pages: DMA-friendly, and XRT's host-side buffers come from
             * aligned_alloc(4096, size), which wants a multiple of the alignment */
            size_t bytes = (arg_bytes(in, a, in->cap_rows) + 4095) & ~(size_t)4095;
            int g = group[s->cu][a];
            if (g < 0)
                return fail(err, errlen, HLT_INVALID_ARGUMENT,
                            "kernel argument %d of compute unit %s has no memory bank", a,
                            in->cus[s->cu].name);
            if (!(s->bo[a] = xrtBOAlloc(dh, bytes, 0, (xrtMemoryGroup)g)) ||
                !(s->map[a] = xrtBOMap(s->bo[a])))
                return fail(err, errlen, HLT_RESOURCE_EXHAUSTED,
                            "XRT cannot allocate a %zu-byte buffer in bank %d for compute unit "
                            "%s",
                            bytes, g, in->cus[s->cu].name);
            memset(s->map[a], 0, bytes);
            if (xrtRunSetArg(s->run, a, s->bo[a]))
                return fail(err, errlen, HLT_INTERNAL, "XRT cannot bind argument %d", a);
        }
    }
    return HLT_OK;
}

static hlt_status xrt_create(int device, const backend_model_t *model, backend_instance_t **out,
                             char *err, size_t errlen)
{
    const model_config_t *cfg = model->cfg;
    if (model->graph)
        return fail(err, errlen, HLT_INVALID_ARGUMENT,
                    "model '%s': the xrt backend runs xclbin bitstreams, not ONNX graphs",
                    cfg->name);
    backend_instance_t *in = calloc(1, sizeof *in);
    if (!in)
        return HLT_RESOURCE_EXHAUSTED;
    in->cfg = cfg;
    xrt_kernel_desc_t *k = malloc(sizeof *k);
    char(*names)[XRT_NAME_MAX] = malloc(XRT_MAX_CUS * XRT_NAME_MAX);
    char e[600];
    hlt_status st;
    if (!k || !names) {
        st = HLT_RESOURCE_EXHAUSTED;
        goto fail;
    }
    if ((st = xrt_config_parse(cfg, &in->mc, err, errlen)))
        goto fail;
    if ((st = xrt_xclbin_describe(model->model_path, in->mc.kernel, k, e, sizeof e))) {
        st = fail(err, errlen, st, "model '%s': %s%s", cfg->name,
                  st == HLT_NOT_FOUND ? "" : "parameter 'kernel_name': ", e);
        goto fail;
    }
    if ((st = xrt_config_bind(cfg, &in->mc, k, model->model_path, names, &in->n_cus, err, errlen)))
        goto fail;
    const xrt_model_cfg_t *mc = &in->mc;
    size_t max_per = 1;
    for (int a = 0; a < mc->n_args; a++) {
        const xrt_arg_bind_t *b = &mc->args[a];
        if (b->role == XRT_ROLE_ROWS)
            continue;
        bool is_in = b->role == XRT_ROLE_INPUT;
        in->per_row[a] = is_in ? mc->in_per_row[b->tensor] : mc->out_per_row[b->tensor];
        in->vpw[a] = is_in ? mc->in_vpw : mc->out_vpw;
        in->dense[a] = is_in ? mc->in_dense : mc->out_dense;
        in->row_bytes[a] = fxp_row_bytes(in->per_row[a], in->vpw[a]);
        max_per = in->per_row[a] > max_per ? in->per_row[a] : max_per;
    }
    int64_t spread = (mc->max_rows + in->n_cus - 1) / in->n_cus;
    in->cap_rows = mc->rows_per_run                ? mc->rows_per_run
                   : spread < mc->max_rows_per_run ? spread
                                                   : mc->max_rows_per_run;
    in->scratch_len = max_per > 4096 ? max_per : 4096;
    in->n_slots = in->n_cus * mc->ring_slots;
    in->scratch = malloc(in->scratch_len * sizeof *in->scratch);
    in->stage = malloc((size_t)in->cap_rows * max_per * sizeof(float));
    in->cus = calloc((size_t)in->n_cus, sizeof *in->cus);
    in->slots = calloc((size_t)in->n_slots, sizeof *in->slots);
    if (!in->scratch || !in->stage || !in->cus || !in->slots) {
        st = HLT_RESOURCE_EXHAUSTED;
        goto fail;
    }
    if ((st = xrt_device_acquire(device, model->model_path, k->uuid, cfg->name, &in->dev, e,
                                 sizeof e))) {
        st = fail(err, errlen, st, "model '%s': %s", cfg->name, e);
        goto fail;
    }
    if ((st = open_cus(in, names, k->uuid, e, sizeof e))) {
        st = fail(err, errlen, st, "model '%s': %s", cfg->name, e);
        goto fail;
    }
    char fin[64], fout[64];
    fxp_format_name(&mc->in_fmt, fin, sizeof fin);
    fxp_format_name(&mc->out_fmt, fout, sizeof fout);
    HLT_LOG(HLT_LOG_INFO,
            "event=xrt_instance model=%s kernel=%s cus=%d ring_slots=%d rows_per_slot=%" PRId64
            " input_format=%s/%u%s output_format=%s/%u%s",
            cfg->name, mc->kernel, in->n_cus, mc->ring_slots, in->cap_rows, fin, mc->in_vpw,
            mc->in_dense ? "/dense" : "", fout, mc->out_vpw, mc->out_dense ? "/dense" : "");
    free(k);
    free(names);
    *out = in;
    return HLT_OK;
fail:
    free(k);
    free(names);
    xrt_destroy(in);
    return st;
}

const backend_i backend_xrt = {
    .api_version = BACKEND_API_VERSION,
    .name = "xrt",
    .probe = xrt_probe,
    .device_info = xrt_device_info,
    .instance_create = xrt_create,
    .instance_destroy = xrt_destroy,
    .prepare = xrt_prepare,
    .execute = xrt_execute,
};
