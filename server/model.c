/* Model version: config + graph + queue + instance workers.
 *
 * The worker loop is where inference runs; it never runs on a completion-queue thread. The
 * dynamic batcher (later) plugs in between the queue and run_job: today each job is one engine
 * execution of the request's own rows. */
#include "model.h"

#include "clock.h"
#include "engine/engine.h"
#include "log.h"
#include "queue.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct instance {
    struct model *model;
    pthread_t thread;
    bool started;
    engine_exec_t *exec;
    void *scratch; /* outputs the client did not ask for */
    size_t scratch_size;
    int index;
} instance_t;

struct model {
    atomic_int refs;
    char *name;
    int64_t version;
    char version_str[24];
    model_config_t *cfg;
    engine_graph_t *graph;
    /* config input/output index -> graph input/output index */
    int16_t cfg_in_to_graph[HLT_MAX_IO], cfg_out_to_graph[HLT_MAX_IO];
    queue_t *queue;
    int n_instances;
    instance_t *instances;
    model_stats_t stats;
    pthread_mutex_t retire_mu;
    bool retired;
};

static size_t tensor_bytes(hlt_dtype t, const engine_shape_t *s)
{
    size_t n = hlt_dtype_size(t);
    for (int32_t i = 0; i < s->rank; i++)
        n *= (size_t)s->dims[i];
    return n;
}

static void finish_fail(model_t *m, infer_job_t *job, hlt_status st, const char *msg)
{
    stats_record_fail(&m->stats, (uint64_t)(hlt_now_ns() - job->t_recv_ns));
    job->complete(job, st, msg);
}

/* Executes one job on this instance and completes it. */
static void run_job(instance_t *inst, infer_job_t *job)
{
    model_t *m = inst->model;
    char err[512];
    int64_t t_start = hlt_now_ns();
    if (t_start >= job->deadline_ns) {
        snprintf(err, sizeof err,
                 "model '%s': request deadline expired after %" PRId64 " us in queue, not "
                 "computed",
                 m->name, (t_start - job->t_enqueue_ns) / 1000);
        finish_fail(m, job, HLT_DEADLINE_EXCEEDED, err);
        return;
    }
    size_t ng_in = engine_graph_num_inputs(m->graph), ng_out = engine_graph_num_outputs(m->graph);
    engine_shape_t in_shapes[HLT_MAX_IO], out_shapes[HLT_MAX_IO];
    const void *in_ptrs[HLT_MAX_IO];
    void *out_ptrs[HLT_MAX_IO];
    for (size_t c = 0; c < m->cfg->n_inputs; c++) {
        const infer_input_t *in = &job->msg.inputs[job->in_map[c]];
        int g = m->cfg_in_to_graph[c];
        in_shapes[g].rank = in->rank;
        memcpy(in_shapes[g].dims, in->shape, sizeof(int64_t) * (size_t)in->rank);
        in_ptrs[g] = in->data;
    }
    (void)ng_in;
    hlt_status st = engine_exec_prepare(inst->exec, in_shapes, out_shapes, err, sizeof err);
    if (st) {
        char msg[700];
        snprintf(msg, sizeof msg, "model '%s': %s", m->name, err);
        finish_fail(m, job, st, msg);
        return;
    }
    infer_output_desc_t descs[HLT_MAX_IO];
    uint8_t *payload[HLT_MAX_IO];
    for (uint16_t i = 0; i < job->n_out; i++) {
        int c = job->out_idx[i];
        int g = m->cfg_out_to_graph[c];
        descs[i] = (infer_output_desc_t){m->cfg->outputs[c].name, m->cfg->outputs[c].dtype,
                                         out_shapes[g].rank, out_shapes[g].dims,
                                         tensor_bytes(m->cfg->outputs[c].dtype, &out_shapes[g])};
    }
    size_t size = infer_response_size(m->name, m->version_str, job->msg.id, descs, job->n_out);
    uint8_t *buf = job->alloc_response(job, size);
    if (!buf) {
        finish_fail(m, job, HLT_RESOURCE_EXHAUSTED, "out of memory for the response");
        return;
    }
    infer_response_write(buf, m->name, m->version_str, job->msg.id, descs, job->n_out, payload);
    /* Unrequested outputs still have to be computed somewhere: the instance's scratch. */
    size_t scratch_need = 0;
    for (size_t g = 0; g < ng_out; g++)
        out_ptrs[g] = NULL;
    for (uint16_t i = 0; i < job->n_out; i++)
        out_ptrs[m->cfg_out_to_graph[job->out_idx[i]]] = payload[i];
    for (size_t g = 0; g < ng_out; g++)
        if (!out_ptrs[g])
            scratch_need += tensor_bytes(engine_graph_output(m->graph, g)->dtype, &out_shapes[g]);
    if (scratch_need > inst->scratch_size) {
        void *p = realloc(inst->scratch, scratch_need);
        if (!p) {
            finish_fail(m, job, HLT_RESOURCE_EXHAUSTED, "out of memory for unrequested outputs");
            return;
        }
        inst->scratch = p;
        inst->scratch_size = scratch_need;
    }
    uint8_t *sp = inst->scratch;
    for (size_t g = 0; g < ng_out; g++)
        if (!out_ptrs[g]) {
            out_ptrs[g] = sp;
            sp += tensor_bytes(engine_graph_output(m->graph, g)->dtype, &out_shapes[g]);
        }
    int64_t t_in = hlt_now_ns();
    st = engine_exec_run(inst->exec, in_ptrs, out_ptrs, err, sizeof err);
    int64_t t_inf = hlt_now_ns();
    if (st) {
        char msg[700];
        snprintf(msg, sizeof msg, "model '%s': execution failed: %s", m->name, err);
        finish_fail(m, job, st, msg);
        return;
    }
    /* Statistics are recorded before the reply goes out, so a client that reads them after
     * its response always sees its own request counted. The send itself is asynchronous
     * (grpc_call_start_batch queues it), so compute_output ends here. */
    int64_t t_out = hlt_now_ns();
    stats_record_execution(&m->stats, (uint64_t)job->batch, (uint64_t)(t_in - t_start),
                           (uint64_t)(t_inf - t_in), (uint64_t)(t_out - t_inf));
    stats_record_success(&m->stats, (uint64_t)(t_out - job->t_recv_ns),
                         (uint64_t)(t_start - job->t_enqueue_ns), (uint64_t)(t_in - t_start),
                         (uint64_t)(t_inf - t_in), (uint64_t)(t_out - t_inf));
    job->complete(job, HLT_OK, NULL);
}

static void *worker_main(void *arg)
{
    instance_t *inst = arg;
    infer_job_t *job;
    while ((job = queue_pop(inst->model->queue)))
        run_job(inst, job);
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
    if (engine_graph_num_inputs(m->graph) != cfg->n_inputs)
        return fail(err, errlen, HLT_INVALID_ARGUMENT,
                    "model '%s': the config lists %zu inputs, the model has %zu", m->name,
                    cfg->n_inputs, engine_graph_num_inputs(m->graph));
    return HLT_OK;
}

static hlt_status start_instances(model_t *m, char *err, size_t errlen)
{
    int n = model_config_instance_count(m->cfg);
    m->instances = calloc((size_t)n, sizeof *m->instances);
    if (!m->instances)
        return HLT_RESOURCE_EXHAUSTED;
    m->n_instances = n;
    for (int i = 0; i < n; i++) {
        instance_t *inst = &m->instances[i];
        inst->model = m;
        inst->index = i;
        char eerr[400];
        hlt_status st = engine_exec_create(m->graph, &inst->exec, eerr, sizeof eerr);
        if (st)
            return fail(err, errlen, st, "model '%s': instance %d: %s", m->name, i, eerr);
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&m->instances[i].thread, NULL, worker_main, &m->instances[i]))
            return fail(err, errlen, HLT_RESOURCE_EXHAUSTED,
                        "model '%s': cannot start instance thread %d", m->name, i);
        m->instances[i].started = true;
    }
    return HLT_OK;
}

static void model_free(model_t *m)
{
    model_retire(m);
    for (int i = 0; m->instances && i < m->n_instances; i++) {
        engine_exec_destroy(m->instances[i].exec);
        free(m->instances[i].scratch);
    }
    free(m->instances);
    queue_destroy(m->queue);
    engine_graph_destroy(m->graph);
    model_config_destroy(m->cfg);
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
    hlt_status st = model_config_load(model_dir, name, &m->cfg, err, errlen);
    if (st)
        goto fail;
    char path[4096];
    snprintf(path, sizeof path, "%s/%" PRId64 "/%s", model_dir, version,
             m->cfg->default_model_filename ? m->cfg->default_model_filename : "model.onnx");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = fail(err, errlen, HLT_NOT_FOUND,
                  "model '%s' version %" PRId64 ": model file %s not found", name, version, path);
        goto fail;
    }
    char eerr[512];
    st = engine_graph_load_file(path, &m->graph, eerr, sizeof eerr);
    if (st) {
        st = fail(err, errlen, st, "model '%s' version %" PRId64 ": %s", name, version, eerr);
        goto fail;
    }
    if ((st = model_config_complete(m->cfg, m->graph, opts->default_max_batch, err, errlen)))
        goto fail;
    if ((st = map_io(m, err, errlen)))
        goto fail;
    size_t cap = opts->queue_capacity ? opts->queue_capacity : 1024;
    const model_dynamic_batching_t *db = &m->cfg->dynamic_batching;
    if (db->enabled && db->default_queue_policy.max_queue_size &&
        db->default_queue_policy.max_queue_size < cap)
        cap = db->default_queue_policy.max_queue_size;
    if (!(m->queue = queue_create(cap))) {
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
        if (m->queue)
            queue_close(m->queue);
        for (int i = 0; m->instances && i < m->n_instances; i++)
            if (m->instances[i].started)
                pthread_join(m->instances[i].thread, NULL);
    }
    pthread_mutex_unlock(&m->retire_mu);
}

hlt_status model_submit(model_t *m, infer_job_t *job, char *err, size_t errlen)
{
    job->t_enqueue_ns = hlt_now_ns();
    if (queue_push(m->queue, job))
        return HLT_OK;
    if (m->retired)
        return fail(err, errlen, HLT_ABORTED, "model '%s' version %s was replaced or unloaded",
                    m->name, m->version_str);
    return fail(err, errlen, HLT_UNAVAILABLE,
                "model '%s' version %s: request queue is full or the model is unloading; retry "
                "later or elsewhere",
                m->name, m->version_str);
}

const model_config_t *model_config(const model_t *m)
{
    return m->cfg;
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
size_t model_queue_length(model_t *m)
{
    return queue_length(m->queue);
}
