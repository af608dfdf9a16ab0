/* Model version: config + graph + dynamic batcher + instance workers.
 *
 * The worker loop is where inference runs; it never runs on a completion-queue thread. Each
 * idle instance asks the model's batcher for the next batch (batcher.h decides what and when),
 * runs it as one engine execution and answers every request in it. */
#include "model.h"

#include "clock.h"
#include "backend/backend.h"
#include "engine/engine.h"
#include "log.h"
#include "batcher.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

typedef struct held {
    infer_job_t *job;
    hlt_status st;
    char *msg;
    struct held *next;
} held_t;

typedef struct instance {
    struct model *model;
    pthread_t thread;
    bool started;
    const backend_i *be;
    backend_instance_t *bi;
    int device;
    void *scratch; /* outputs the client did not ask for */
    size_t scratch_size;
    void *in_stage[HLT_MAX_IO], *out_stage[HLT_MAX_IO]; /* batch gather/scatter, per graph io */
    size_t in_cap[HLT_MAX_IO], out_cap[HLT_MAX_IO];
    int index;
    /* Held while a batch runs on this instance: by its worker, or by a frontend thread that
     * runs a request directly (model_submit's direct dispatch). */
    pthread_mutex_t run_mu;
    bool run_mu_ready;
} instance_t;

/* Most requests one batch may hold (each has at least one row). */
#define BATCH_MAX_JOBS 1024

struct model {
    atomic_int refs;
    char *name;
    int64_t version;
    char version_str[24];
    model_config_t *cfg;
    engine_graph_t *graph; /* NULL for bitstream (FPGA) models */
    char *model_path;
    char *placement; /* where the instances run, e.g. "cpu:0 x1" */
    /* The config as ModelConfig reports it: a shallow copy of *cfg whose instance groups list
     * the devices the instances run on and whose parameters name the chosen gpu_backend. Only
     * the arrays below are owned here; every other pointer is borrowed from cfg. */
    model_config_t reported;
    model_instance_group_t *rep_groups;
    int32_t **rep_gpus; /* per group: resolved device list (NULL for KIND_CPU) */
    model_kv_t *rep_params;
    char gpu_backend_key[16], gpu_backend_name[16];
    /* config input/output index -> model I/O index (graph order, or config order) */
    int16_t cfg_in_to_graph[HLT_MAX_IO], cfg_out_to_graph[HLT_MAX_IO];
    hlt_dtype io_out_dtype[HLT_MAX_IO]; /* per model output (model I/O order) */
    size_t n_io_out;                    /* model outputs (the config may list fewer) */
    batcher_t *batcher;
    int n_instances;
    instance_t *instances;
    model_stats_t stats;
    pthread_mutex_t retire_mu;
    bool retired;
    pthread_mutex_t order_mu; /* preserve_ordering */
    int64_t direct_ns;        /* direct dispatch of batches expected to run within this; 0 = off */
    uint64_t next_seq;
    held_t *held;
};

static size_t tensor_bytes(hlt_dtype t, const engine_shape_t *s)
{
    size_t n = hlt_dtype_size(t);
    for (int32_t i = 0; i < s->rank; i++)
        n *= (size_t)s->dims[i];
    return n;
}

/* preserve_ordering: responses leave in submission order. A finished job whose predecessors
 * are still running waits in model.held, sorted by sequence number. */

static void complete_job(model_t *m, infer_job_t *job, hlt_status st, const char *msg)
{
    if (!m->cfg->dynamic_batching.preserve_ordering) {
        job->complete(job, st, msg);
        return;
    }
    pthread_mutex_lock(&m->order_mu);
    held_t *h = malloc(sizeof *h);
    if (h) {
        *h = (held_t){job, st, msg ? strdup(msg) : NULL, NULL};
        held_t **pp = &m->held;
        while (*pp && (*pp)->job->seq < job->seq)
            pp = &(*pp)->next;
        h->next = *pp;
        *pp = h;
    } else {
        job->complete(job, st, msg); /* out of memory: answer now rather than never */
        m->next_seq++;
    }
    while (m->held && m->held->job->seq == m->next_seq) {
        held_t *x = m->held;
        m->held = x->next;
        m->next_seq++;
        x->job->complete(x->job, x->st, x->msg);
        free(x->msg);
        free(x);
    }
    pthread_mutex_unlock(&m->order_mu);
}

static void finish_fail(model_t *m, infer_job_t *job, hlt_status st, const char *msg)
{
    stats_record_fail(&m->stats, (uint64_t)(hlt_now_ns() - job->t_recv_ns));
    complete_job(m, job, st, msg);
}

/* Grows an instance staging buffer. Staging comes from the backend's host allocator (pinned
 * memory for CUDA, so batched transfers run at full speed); contents need not survive. */
static bool ensure(instance_t *inst, void **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t grown = need + need / 4;
    void *p = backend_host_alloc(inst->be, inst->bi, grown);
    if (!p)
        return false;
    if (*buf)
        backend_host_free(inst->be, inst->bi, *buf);
    *buf = p;
    *cap = grown;
    return true;
}

static void fail_all(model_t *m, batch_t *b, hlt_status st, const char *msg)
{
    for (size_t i = 0; i < b->n; i++)
        finish_fail(m, b->jobs[i], st, msg);
}

/* Builds job's response for outputs of out_shapes (row count replaced by the job's own) and
 * copies its rows from the batch staging buffers, or (direct) lets the engine write there. */
static hlt_status respond(model_t *m, infer_job_t *job, const engine_shape_t *out_shapes,
                          int64_t row0, uint8_t **stage, uint8_t **payload)
{
    infer_output_desc_t descs[HLT_MAX_IO];
    engine_shape_t shapes[HLT_MAX_IO];
    bool batching = m->cfg->max_batch_size > 0;
    for (uint16_t i = 0; i < job->n_out; i++) {
        int c = job->out_idx[i];
        shapes[i] = out_shapes[m->cfg_out_to_graph[c]];
        if (batching && stage)
            shapes[i].dims[0] = job->batch;
        descs[i] = (infer_output_desc_t){m->cfg->outputs[c].name, m->cfg->outputs[c].dtype,
                                         shapes[i].rank, shapes[i].dims,
                                         tensor_bytes(m->cfg->outputs[c].dtype, &shapes[i])};
    }
    size_t size = infer_response_size(m->name, m->version_str, job->msg.id, descs, job->n_out);
    uint8_t *buf = job->alloc_response(job, size);
    if (!buf)
        return HLT_RESOURCE_EXHAUSTED;
    infer_response_write(buf, m->name, m->version_str, job->msg.id, descs, job->n_out, payload);
    if (stage)
        for (uint16_t i = 0; i < job->n_out; i++) {
            int g = m->cfg_out_to_graph[job->out_idx[i]];
            size_t row_bytes = job->batch ? descs[i].size / (size_t)job->batch : 0;
            memcpy(payload[i], stage[g] + (size_t)row0 * row_bytes, descs[i].size);
        }
    return HLT_OK;
}

/* Executes one batch (jobs sharing non-batch shapes) as one engine run, answers every job. A
 * batch of one request runs in place: inputs are read where gRPC received them and outputs are
 * written straight into the response message. Larger batches gather rows into the instance's
 * staging buffers and scatter the results. */
static void run_batch(instance_t *inst, batch_t *b)
{
    model_t *m = inst->model;
    char err[512], msg[700];
    int64_t t_start = hlt_now_ns();
    size_t ng_out = m->n_io_out;
    bool direct = b->n == 1;
    infer_job_t *j0 = b->jobs[0];
    engine_shape_t in_shapes[HLT_MAX_IO], out_shapes[HLT_MAX_IO];
    const void *in_ptrs[HLT_MAX_IO];
    void *out_ptrs[HLT_MAX_IO];
    for (size_t c = 0; c < m->cfg->n_inputs; c++) {
        const infer_input_t *in = &j0->msg.inputs[j0->in_map[c]];
        int g = m->cfg_in_to_graph[c];
        in_shapes[g].rank = in->rank;
        memcpy(in_shapes[g].dims, in->shape, sizeof(int64_t) * (size_t)in->rank);
        if (direct) {
            in_ptrs[g] = in->data;
            continue;
        }
        in_shapes[g].dims[0] = b->rows;
        size_t row_bytes = in->size / (size_t)j0->batch, off = 0;
        if (!ensure(inst, &inst->in_stage[g], &inst->in_cap[g], row_bytes * (size_t)b->rows)) {
            fail_all(m, b, HLT_RESOURCE_EXHAUSTED, "out of memory for the batch inputs");
            return;
        }
        for (size_t k = 0; k < b->n; k++) {
            const infer_input_t *ik = &b->jobs[k]->msg.inputs[b->jobs[k]->in_map[c]];
            memcpy((uint8_t *)inst->in_stage[g] + off, ik->data, ik->size);
            off += ik->size;
        }
        in_ptrs[g] = inst->in_stage[g];
    }
    hlt_status st = inst->be->prepare(inst->bi, in_shapes, out_shapes, err, sizeof err);
    if (st) {
        snprintf(msg, sizeof msg, "model '%s': %s", m->name, err);
        fail_all(m, b, st, msg);
        return;
    }
    uint8_t *payload[HLT_MAX_IO];
    for (size_t g = 0; g < ng_out; g++)
        out_ptrs[g] = NULL;
    if (!direct) {
        for (size_t g = 0; g < ng_out; g++) {
            size_t bytes = tensor_bytes(m->io_out_dtype[g], &out_shapes[g]);
            if (out_shapes[g].rank < 1 || out_shapes[g].dims[0] != b->rows) {
                snprintf(msg, sizeof msg,
                         "model '%s': output %zu does not keep the batch dim; cannot batch",
                         m->name, g);
                fail_all(m, b, HLT_INTERNAL, msg);
                return;
            }
            if (!ensure(inst, &inst->out_stage[g], &inst->out_cap[g], bytes)) {
                fail_all(m, b, HLT_RESOURCE_EXHAUSTED, "out of memory for the batch outputs");
                return;
            }
            out_ptrs[g] = inst->out_stage[g];
        }
    } else {
        st = respond(m, j0, out_shapes, 0, NULL, payload);
        if (st) {
            finish_fail(m, j0, st, "out of memory for the response");
            return;
        }
        for (uint16_t i = 0; i < j0->n_out; i++)
            out_ptrs[m->cfg_out_to_graph[j0->out_idx[i]]] = payload[i];
        /* Unrequested outputs are still computed: into the instance's scratch. */
        size_t need = 0;
        for (size_t g = 0; g < ng_out; g++)
            if (!out_ptrs[g])
                need += tensor_bytes(m->io_out_dtype[g], &out_shapes[g]);
        if (!ensure(inst, &inst->scratch, &inst->scratch_size, need)) {
            finish_fail(m, j0, HLT_RESOURCE_EXHAUSTED, "out of memory for unrequested outputs");
            return;
        }
        uint8_t *sp = inst->scratch;
        for (size_t g = 0; g < ng_out; g++)
            if (!out_ptrs[g]) {
                out_ptrs[g] = sp;
                sp += tensor_bytes(m->io_out_dtype[g], &out_shapes[g]);
            }
    }
    int64_t t_in = hlt_now_ns();
    st = inst->be->execute(inst->bi, in_ptrs, out_ptrs, NULL, err, sizeof err);
    int64_t t_inf = hlt_now_ns();
    batcher_note_exec_time(m->batcher, t_inf - t_in);
    if (st) {
        snprintf(msg, sizeof msg, "model '%s': execution failed: %s", m->name, err);
        fail_all(m, b, st, msg);
        return;
    }
    bool ok[BATCH_MAX_JOBS];
    int64_t row = 0;
    for (size_t k = 0; k < b->n; k++) {
        ok[k] = direct ||
                respond(m, b->jobs[k], out_shapes, row, (uint8_t **)out_ptrs, payload) == HLT_OK;
        row += b->jobs[k]->batch;
    }
    /* Statistics are recorded before the replies go out, so a client that reads them after
     * its response always sees its own request counted. Sending is asynchronous
     * (grpc_call_start_batch queues it), so compute_output ends here. */
    int64_t t_out = hlt_now_ns();
    stats_record_execution(&m->stats, (uint64_t)b->rows, (uint64_t)(t_in - t_start),
                           (uint64_t)(t_inf - t_in), (uint64_t)(t_out - t_inf));
    for (size_t k = 0; k < b->n; k++) {
        infer_job_t *job = b->jobs[k];
        if (!ok[k]) {
            finish_fail(m, job, HLT_RESOURCE_EXHAUSTED, "out of memory for the response");
            continue;
        }
        stats_record_success(&m->stats, (uint64_t)(t_out - job->t_recv_ns),
                             (uint64_t)(t_start - job->t_enqueue_ns), (uint64_t)(t_in - t_start),
                             (uint64_t)(t_inf - t_in), (uint64_t)(t_out - t_inf));
        complete_job(m, job, HLT_OK, NULL);
    }
}

static void *worker_main(void *arg)
{
    /* The batcher's waits are tens of microseconds: Linux's default 50 us timer slack would
     * make every one of them end late. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    instance_t *inst = arg;
    model_t *m = inst->model;
    infer_job_t *jobs[BATCH_MAX_JOBS], *expired[BATCH_MAX_JOBS];
    hlt_status expired_st[BATCH_MAX_JOBS];
    batch_t b = {.jobs = jobs, .expired = expired, .expired_status = expired_st};
    while (batcher_next(m->batcher, BATCH_MAX_JOBS, &b)) {
        int64_t now = hlt_now_ns();
        for (size_t i = 0; i < b.n_expired; i++)
            stats_record_wait(&m->stats, (uint64_t)(now - expired[i]->t_enqueue_ns));
        for (size_t i = 0; i < b.n; i++)
            stats_record_wait(&m->stats, (uint64_t)(now - jobs[i]->t_enqueue_ns));
        for (size_t i = 0; i < b.n_expired; i++) {
            char msg[300];
            infer_job_t *j = expired[i];
            if (expired_st[i] == HLT_CANCELLED)
                snprintf(msg, sizeof msg, "model '%s': request cancelled by the client", m->name);
            else
                snprintf(msg, sizeof msg,
                         "model '%s': %s expired after %" PRId64 " us in queue, not computed",
                         m->name,
                         hlt_now_ns() >= j->deadline_ns ? "request deadline" : "queue timeout",
                         (hlt_now_ns() - j->t_enqueue_ns) / 1000);
            finish_fail(m, j, expired_st[i], msg);
        }
        if (b.n) {
            pthread_mutex_lock(&inst->run_mu);
            run_batch(inst, &b);
            pthread_mutex_unlock(&inst->run_mu);
        }
    }
    return NULL;
}

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

static hlt_status map_io(model_t *m, char *err, size_t errlen)
{
    const model_config_t *cfg = m->cfg;
    if (cfg->n_inputs > HLT_MAX_IO || cfg->n_outputs > HLT_MAX_IO)
        return fail(err, errlen, HLT_INVALID_ARGUMENT, "model '%s': more than %d inputs or outputs",
                    m->name, HLT_MAX_IO);
    if (!m->graph) { /* bitstream models: the config's order is the model's order */
        for (size_t c = 0; c < cfg->n_inputs; c++)
            m->cfg_in_to_graph[c] = (int16_t)c;
        for (size_t c = 0; c < cfg->n_outputs; c++) {
            m->cfg_out_to_graph[c] = (int16_t)c;
            m->io_out_dtype[c] = cfg->outputs[c].dtype;
        }
        m->n_io_out = cfg->n_outputs;
        return HLT_OK;
    }
    /* Every graph input must be fed; the config may expose a subset of the outputs (the
     * others are computed into scratch and never sent). */
    if (engine_graph_num_inputs(m->graph) != cfg->n_inputs ||
        engine_graph_num_outputs(m->graph) > HLT_MAX_IO)
        return fail(err, errlen, HLT_INVALID_ARGUMENT,
                    "model '%s': the config lists %zu inputs, the model has %zu", m->name,
                    cfg->n_inputs, engine_graph_num_inputs(m->graph));
    m->n_io_out = engine_graph_num_outputs(m->graph);
    for (size_t c = 0; c < cfg->n_inputs; c++) {
        m->cfg_in_to_graph[c] = -1;
        for (size_t g = 0; g < engine_graph_num_inputs(m->graph); g++)
            if (!strcmp(engine_graph_input(m->graph, g)->name, cfg->inputs[c].name))
                m->cfg_in_to_graph[c] = (int16_t)g;
    }
    for (size_t c = 0; c < cfg->n_outputs; c++) {
        m->cfg_out_to_graph[c] = -1;
        for (size_t g = 0; g < engine_graph_num_outputs(m->graph); g++)
            if (!strcmp(engine_graph_output(m->graph, g)->name, cfg->outputs[c].name))
                m->cfg_out_to_graph[c] = (int16_t)g;
    }
    for (size_t g = 0; g < m->n_io_out; g++)
        m->io_out_dtype[g] = engine_graph_output(m->graph, g)->dtype;
    return HLT_OK;
}

/* The parameter `name` of the config (ModelParameter string_value), or NULL. */
static const char *config_param(const model_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_parameters; i++)
        if (!strcmp(cfg->parameters[i].key, name))
            return cfg->parameters[i].value;
    return NULL;
}

static const char *kind_name(instance_kind k)
{
    return k == INSTANCE_KIND_GPU     ? "KIND_GPU"
           : k == INSTANCE_KIND_CPU   ? "KIND_CPU"
           : k == INSTANCE_KIND_MODEL ? "KIND_MODEL"
                                      : "KIND_AUTO";
}

/* Picks the backend of an instance group: KIND_CPU runs on "cpu"; KIND_GPU on the backend the
 * config names (parameter "gpu_backend": "cuda" | "opencl") or else CUDA when it has a device
 * --backend-config allows, OpenCL otherwise; KIND_MODEL on the backend the config names
 * (bitstream models: "xrt"). *n_devices: the devices the backend found (its own numbering). */
static hlt_status pick_backend(model_t *m, const model_instance_group_t *ig, const backend_i **out,
                               int *n_devices, char *err, size_t errlen)
{
    char why[768] = "", reason[256];
    const char *names_gpu[] = {"cuda", "opencl"};
    const char *wanted = NULL;
    if (ig->kind == INSTANCE_KIND_CPU)
        wanted = "cpu";
    else if (ig->kind == INSTANCE_KIND_MODEL)
        wanted = m->cfg->backend;
    else
        wanted = config_param(m->cfg, "gpu_backend");
    for (size_t i = 0; i < (wanted ? 1 : 2); i++) {
        const char *name = wanted ? wanted : names_gpu[i];
        const backend_i *be = NULL;
        int n = backend_lookup(name, &be, reason, sizeof reason);
        if (n > 0 && be) {
            *out = be;
            *n_devices = n;
            return HLT_OK;
        }
        size_t off = strlen(why);
        snprintf(why + off, sizeof why - off, "%s%s: %s", off ? "; " : "", name, reason);
    }
    return fail(err, errlen, HLT_UNAVAILABLE,
                "model '%s': instance group '%s' (%s) has no device: %s", m->name,
                ig->name ? ig->name : "", kind_name(ig->kind), why);
}

/* The devices group ig runs on (each with ig->count instances), into devs (capacity max):
 * KIND_CPU device 0; KIND_GPU its `gpus`, or else every device --backend-config allows;
 * KIND_MODEL its `gpus` (cards), or else the first allowed one. A listed device must exist and
 * be allowed. Returns the number of devices, or -1 with the reason in err. */
static int group_devices(model_t *m, const model_instance_group_t *ig, const backend_i *be,
                         int ndev, int *devs, int max, char *err, size_t errlen)
{
    const char *gname = ig->name ? ig->name : "";
    for (size_t k = 0; k < ig->n_gpus; k++) {
        int d = ig->gpus[k];
        if (d >= ndev) {
            fail(err, errlen, HLT_INVALID_ARGUMENT,
                 "model '%s': instance group '%s' names device %d, but backend %s has %d", m->name,
                 gname, d, be->name, ndev);
            return -1;
        }
        if (ig->kind != INSTANCE_KIND_CPU && !backend_device_allowed(be, d)) {
            const char *allowed = backend_config_devices(be);
            fail(err, errlen, HLT_INVALID_ARGUMENT,
                 "model '%s': instance group '%s' names %s:%d, which "
                 "--backend-config=%s,devices=%s excludes",
                 m->name, gname, be->name, d, be->name, allowed ? allowed : "?");
            return -1;
        }
    }
    if (ig->kind == INSTANCE_KIND_CPU) {
        devs[0] = 0;
        return 1;
    }
    if (ig->n_gpus) {
        if (ig->n_gpus > (size_t)max) {
            fail(err, errlen, HLT_INVALID_ARGUMENT,
                 "model '%s': instance group '%s' lists more than %d devices", m->name, gname, max);
            return -1;
        }
        for (size_t k = 0; k < ig->n_gpus; k++)
            devs[k] = ig->gpus[k];
        return (int)ig->n_gpus;
    }
    /* Without gpus: every allowed device, as Triton does for KIND_GPU; one card for KIND_MODEL.
     * pick_backend made sure at least one is allowed. */
    int n = backend_allowed_devices(be, devs, max);
    if (n > max)
        n = max;
    return ig->kind == INSTANCE_KIND_MODEL && n > 1 ? 1 : n;
}

/* Fills m->reported from m->cfg and the devices each group resolved to (devs[g], ndevs[g]). */
static hlt_status build_reported_config(model_t *m, int devs[][BACKEND_MAX_DEVICES],
                                        const int *ndevs, const backend_i *gpu_backend)
{
    const model_config_t *cfg = m->cfg;
    m->reported = *cfg;
    m->rep_groups = calloc(cfg->n_instance_groups + 1, sizeof *m->rep_groups);
    m->rep_gpus = calloc(cfg->n_instance_groups + 1, sizeof *m->rep_gpus);
    if (!m->rep_groups || !m->rep_gpus)
        return HLT_RESOURCE_EXHAUSTED;
    for (size_t g = 0; g < cfg->n_instance_groups; g++) {
        m->rep_groups[g] = cfg->instance_groups[g];
        if (cfg->instance_groups[g].kind == INSTANCE_KIND_CPU)
            continue;
        if (!(m->rep_gpus[g] = calloc((size_t)ndevs[g] + 1, sizeof(int32_t))))
            return HLT_RESOURCE_EXHAUSTED;
        for (int k = 0; k < ndevs[g]; k++)
            m->rep_gpus[g][k] = devs[g][k];
        m->rep_groups[g].n_gpus = (size_t)ndevs[g];
        m->rep_groups[g].gpus = m->rep_gpus[g];
    }
    m->reported.instance_groups = m->rep_groups;
    if (gpu_backend && !config_param(cfg, "gpu_backend")) {
        if (!(m->rep_params = calloc(cfg->n_parameters + 1, sizeof *m->rep_params)))
            return HLT_RESOURCE_EXHAUSTED;
        for (size_t i = 0; i < cfg->n_parameters; i++)
            m->rep_params[i] = cfg->parameters[i];
        snprintf(m->gpu_backend_key, sizeof m->gpu_backend_key, "gpu_backend");
        snprintf(m->gpu_backend_name, sizeof m->gpu_backend_name, "%s", gpu_backend->name);
        m->rep_params[cfg->n_parameters] = (model_kv_t){m->gpu_backend_key, m->gpu_backend_name};
        m->reported.parameters = m->rep_params;
        m->reported.n_parameters = cfg->n_parameters + 1;
    }
    return HLT_OK;
}

static hlt_status start_instances(model_t *m, char *err, size_t errlen)
{
    const model_config_t *cfg = m->cfg;
    int n = 0;
    const backend_i *be[64], *gpu_backend = NULL;
    int ndev[64], ngd[64];
    if (cfg->n_instance_groups > 64)
        return fail(err, errlen, HLT_INVALID_ARGUMENT, "model '%s': more than 64 instance groups",
                    m->name);
    int(*gdev)[BACKEND_MAX_DEVICES] = calloc(cfg->n_instance_groups + 1, sizeof *gdev);
    if (!gdev)
        return HLT_RESOURCE_EXHAUSTED;
    hlt_status st = HLT_OK;
    for (size_t g = 0; g < cfg->n_instance_groups; g++) {
        const model_instance_group_t *ig = &cfg->instance_groups[g];
        if ((st = pick_backend(m, ig, &be[g], &ndev[g], err, errlen)))
            goto out;
        ngd[g] = group_devices(m, ig, be[g], ndev[g], gdev[g], BACKEND_MAX_DEVICES, err, errlen);
        if (ngd[g] < 0) {
            st = HLT_INVALID_ARGUMENT;
            goto out;
        }
        if (ig->kind == INSTANCE_KIND_GPU && !gpu_backend)
            gpu_backend = be[g];
        n += ngd[g] * ig->count;
    }
    if ((st = build_reported_config(m, gdev, ngd, gpu_backend)))
        goto out;
    m->instances = calloc((size_t)n, sizeof *m->instances);
    if (!m->instances) {
        st = HLT_RESOURCE_EXHAUSTED;
        goto out;
    }
    backend_model_t bm = {m->graph, m->cfg, m->model_path};
    char place[512] = "";
    int i = 0;
    for (size_t g = 0; g < cfg->n_instance_groups; g++) {
        const model_instance_group_t *ig = &cfg->instance_groups[g];
        for (int d = 0; d < ngd[g]; d++) {
            int dev = gdev[g][d];
            size_t off = strlen(place);
            snprintf(place + off, sizeof place - off, "%s%s:%d x%d", off ? ", " : "", be[g]->name,
                     dev, ig->count);
            for (int c = 0; c < ig->count; c++, i++) {
                instance_t *inst = &m->instances[i];
                inst->model = m;
                inst->index = i;
                pthread_mutex_init(&inst->run_mu, NULL);
                inst->run_mu_ready = true;
                inst->be = be[g];
                inst->device = dev;
                m->n_instances = i + 1;
                char eerr[400];
                st = be[g]->instance_create(dev, &bm, &inst->bi, eerr, sizeof eerr);
                if (st) {
                    fail(err, errlen, st, "model '%s': instance %d on %s:%d: %s", m->name, i,
                         be[g]->name, dev, eerr);
                    goto out;
                }
            }
        }
    }
    m->placement = strdup(place);
    for (i = 0; i < n; i++) {
        if (pthread_create(&m->instances[i].thread, NULL, worker_main, &m->instances[i])) {
            st = fail(err, errlen, HLT_RESOURCE_EXHAUSTED,
                      "model '%s': cannot start instance thread %d", m->name, i);
            goto out;
        }
        m->instances[i].started = true;
    }
out:
    free(gdev);
    return st;
}

static void model_free(model_t *m)
{
    model_retire(m);
    for (int i = 0; m->instances && i < m->n_instances; i++) {
        instance_t *inst = &m->instances[i];
        if (!inst->be)
            continue;
        /* staging first: it may belong to the instance's device context */
        if (inst->scratch)
            backend_host_free(inst->be, inst->bi, inst->scratch);
        for (int k = 0; k < HLT_MAX_IO; k++) {
            if (inst->in_stage[k])
                backend_host_free(inst->be, inst->bi, inst->in_stage[k]);
            if (inst->out_stage[k])
                backend_host_free(inst->be, inst->bi, inst->out_stage[k]);
        }
        inst->be->instance_destroy(inst->bi);
    }
    for (int i = 0; m->instances && i < m->n_instances; i++)
        if (m->instances[i].run_mu_ready)
            pthread_mutex_destroy(&m->instances[i].run_mu);
    free(m->instances);
    batcher_destroy(m->batcher);
    pthread_mutex_destroy(&m->order_mu);
    engine_graph_destroy(m->graph);
    for (size_t g = 0; m->rep_gpus && m->cfg && g < m->cfg->n_instance_groups; g++)
        free(m->rep_gpus[g]);
    free(m->rep_gpus);
    free(m->rep_groups);
    free(m->rep_params);
    model_config_destroy(m->cfg);
    free(m->model_path);
    free(m->placement);
    stats_destroy(&m->stats);
    pthread_mutex_destroy(&m->retire_mu);
    free(m->name);
    free(m);
}

hlt_status model_load(const char *model_dir, const char *name, int64_t version,
                      const model_load_options_t *opts, model_t **out, char *err, size_t errlen)
{
    model_t *m = calloc(1, sizeof *m);
    if (!m)
        return HLT_RESOURCE_EXHAUSTED;
    atomic_init(&m->refs, 1);
    m->name = strdup(name);
    m->version = version;
    snprintf(m->version_str, sizeof m->version_str, "%" PRId64, version);
    stats_init(&m->stats);
    pthread_mutex_init(&m->retire_mu, NULL);
    pthread_mutex_init(&m->order_mu, NULL);
    hlt_status st = model_config_load(model_dir, name, &m->cfg, err, errlen);
    if (st)
        goto fail;
    /* Bitstream (FPGA) models carry no ONNX graph: the config declares their I/O. */
    bool bitstream = m->cfg->backend && !strcmp(m->cfg->backend, "xrt");
    char path[4096];
    snprintf(path, sizeof path, "%s/%" PRId64 "/%s", model_dir, version,
             m->cfg->default_model_filename ? m->cfg->default_model_filename
             : bitstream                    ? "model.xclbin"
                                            : "model.onnx");
    m->model_path = strdup(path);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = fail(err, errlen, HLT_NOT_FOUND,
                  "model '%s' version %" PRId64 ": model file %s not found", name, version, path);
        goto fail;
    }
    if (bitstream) {
        if ((st = model_config_complete_declared(m->cfg, err, errlen)))
            goto fail;
    } else {
        char eerr[512];
        st = engine_graph_load_file(path, &m->graph, eerr, sizeof eerr);
        if (st) {
            st = fail(err, errlen, st, "model '%s' version %" PRId64 ": %s", name, version, eerr);
            goto fail;
        }
        if ((st = model_config_complete(m->cfg, m->graph, opts->default_max_batch, err, errlen)))
            goto fail;
    }
    if ((st = map_io(m, err, errlen)))
        goto fail;
    batcher_limits_t limits = {
        .max_queued_requests = opts->queue_capacity ? opts->queue_capacity : 1024,
        .max_queued_bytes = opts->max_queued_bytes ? opts->max_queued_bytes : (size_t)1 << 30,
    };
    m->direct_ns = opts->direct_dispatch_ns;
    if (!(m->batcher = batcher_create(m->cfg, &limits))) {
        st = HLT_RESOURCE_EXHAUSTED;
        goto fail;
    }
    if ((st = start_instances(m, err, errlen)))
        goto fail;
    HLT_LOG(HLT_LOG_INFO,
            "event=model_loaded model=%s version=%" PRId64
            " max_batch_size=%d inputs=%zu outputs=%zu instances=%d",
            name, version, m->cfg->max_batch_size, m->cfg->n_inputs, m->cfg->n_outputs,
            m->n_instances);
    *out = m;
    return HLT_OK;
fail:
    model_free(m);
    return st;
}

void model_ref(model_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void model_unref(model_t *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        model_free(m);
}

void model_retire(model_t *m)
{
    pthread_mutex_lock(&m->retire_mu);
    if (!m->retired) {
        m->retired = true;
        if (m->batcher)
            batcher_close(m->batcher);
        for (int i = 0; m->instances && i < m->n_instances; i++)
            if (m->instances[i].started)
                pthread_join(m->instances[i].thread, NULL);
    }
    pthread_mutex_unlock(&m->retire_mu);
}

/* Direct dispatch: a request that would leave the queue at once as a batch of its own, on a
 * model whose batches take at most m->direct_ns on the CPU, runs on the calling (frontend)
 * thread on an idle CPU instance, answered before this returns. It skips the two thread
 * hand-offs of the worker path (frontend -> worker, worker -> frontend), which cost more than
 * such a batch computes. Everything else a batch does is the same (run_batch: statistics,
 * response, scratch buffers of that instance). Not with preserve_ordering. */
static bool run_direct(model_t *m, infer_job_t *job, int64_t now)
{
    /* check first: claiming an instance a worker is about to use would put the worker to sleep
     * on its run_mu */
    if (m->cfg->dynamic_batching.preserve_ordering ||
        !batcher_try_direct(m->batcher, job, now, m->direct_ns, false))
        return false;
    for (int i = 0; i < m->n_instances; i++) {
        instance_t *inst = &m->instances[i];
        if (strcmp(inst->be->name, "cpu") || pthread_mutex_trylock(&inst->run_mu))
            continue;
        bool taken = batcher_try_direct(m->batcher, job, now, m->direct_ns, true);
        if (taken) {
            infer_job_t *jobs[1] = {job};
            batch_t b = {.jobs = jobs, .n = 1, .rows = job->batch};
            stats_record_wait(&m->stats, (uint64_t)(hlt_now_ns() - job->t_enqueue_ns));
            run_batch(inst, &b);
        }
        pthread_mutex_unlock(&inst->run_mu);
        return taken;
    }
    return false;
}

hlt_status model_submit(model_t *m, infer_job_t *job, char *err, size_t errlen)
{
    if (m->retired)
        return fail(err, errlen, HLT_ABORTED, "model '%s' version %s was replaced or unloaded",
                    m->name, m->version_str);
    const int64_t now = hlt_now_ns();
    if (m->direct_ns > 0 && run_direct(m, job, now))
        return HLT_OK;
    hlt_status st = batcher_submit(m->batcher, job, now, err, errlen);
    if (st == HLT_UNAVAILABLE && m->retired)
        return fail(err, errlen, HLT_ABORTED, "model '%s' version %s was replaced or unloaded",
                    m->name, m->version_str);
    return st;
}

void model_kick(model_t *m)
{
    batcher_kick(m->batcher);
}

const model_config_t *model_config(const model_t *m)
{
    return m->cfg;
}
const model_config_t *model_reported_config(const model_t *m)
{
    return m->rep_groups ? &m->reported : m->cfg;
}
const char *model_name(const model_t *m)
{
    return m->name;
}
int64_t model_version(const model_t *m)
{
    return m->version;
}
const char *model_version_str(const model_t *m)
{
    return m->version_str;
}
model_stats_t *model_stats(model_t *m)
{
    return &m->stats;
}
const char *model_placement(const model_t *m)
{
    return m->placement ? m->placement : "";
}

size_t model_queue_length(model_t *m)
{
    return batcher_queued(m->batcher);
}
