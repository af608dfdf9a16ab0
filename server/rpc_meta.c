/* Handlers for every RPC except ModelInfer: health, metadata, config, statistics, repository
 * index, load/unload and grpc.health.v1. These are small messages, so protobuf-c unpacks and
 * packs them; they run inline on the completion-queue thread (microseconds), except load and
 * unload, which run on the control thread. */
#include "hltinfer/dtype.h"
#include "health.pb-c.h"
#include "inference.pb-c.h"
#include "backend/backend.h"
#include "clock.h"
#include "log.h"
#include "model.h"
#include "frontend.h"
#include "rpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVER_NAME "hltinfer"
#define SERVER_VERSION "0.1.0"

/* Only what is implemented end to end (reference section 6.7: an advertised extension must
 * work). */
static const char *const extensions[] = {"model_configuration", "model_repository", "statistics",
                                         "parameters"};

#define UNPACK_OR_FAIL(type, fn, c, var)                                                           \
    type *var = fn(NULL, GRPC_SLICE_LENGTH((c)->req), GRPC_SLICE_START_PTR((c)->req));             \
    if (!var) {                                                                                    \
        rpc_reply_error(c, HLT_INVALID_ARGUMENT, "malformed %s: not a valid protobuf message",     \
                        #type + 11);                                                               \
        return;                                                                                    \
    }

bool frontend_server_ready(frontend_t *fe)
{
    if (atomic_load(&fe->shutting_down))
        return false;
    return !fe->strict_readiness || repo_all_ready(fe->repo);
}

static void server_live(call_ctx_t *c)
{
    Inference__ServerLiveResponse resp = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    resp.live = true;
    rpc_reply_pb(c, &resp.base);
}

static void server_ready_rpc(call_ctx_t *c)
{
    Inference__ServerReadyResponse resp = INFERENCE__SERVER_READY_RESPONSE__INIT;
    resp.ready = frontend_server_ready(c->fe);
    rpc_reply_pb(c, &resp.base);
}

/* Resolves (name, version) and replies with the error if that fails; NULL then. */
static model_t *resolve(call_ctx_t *c, const char *name, const char *version)
{
    char err[1024];
    model_t *m = NULL;
    hlt_status st =
        repo_get(c->fe->repo, name, strlen(name), version, strlen(version), &m, err, sizeof err);
    if (st) {
        rpc_reply(c, st, err, NULL);
        return NULL;
    }
    return m;
}

static void model_ready(call_ctx_t *c)
{
    UNPACK_OR_FAIL(Inference__ModelReadyRequest, inference__model_ready_request__unpack, c, req);
    Inference__ModelReadyResponse resp = INFERENCE__MODEL_READY_RESPONSE__INIT;
    char err[1024];
    model_t *m = NULL;
    hlt_status st = repo_get(c->fe->repo, req->name, strlen(req->name), req->version,
                             strlen(req->version), &m, err, sizeof err);
    if (st == HLT_INVALID_ARGUMENT) {
        rpc_reply(c, st, err, NULL);
    } else { /* as Triton: an unknown or failed model is simply not ready */
        resp.ready = st == HLT_OK && !atomic_load(&c->fe->shutting_down);
        rpc_reply_pb(c, &resp.base);
    }
    model_unref(m);
    inference__model_ready_request__free_unpacked(req, NULL);
}

#define N_EXTENSIONS (sizeof extensions / sizeof extensions[0])
#define MAX_BACKENDS 8

/* The extensions, then one "backend:<name>=<state>" string per backend ("backend:cpu=1 device
 * (...)", "backend:cuda=unavailable (...)"): extensions is the only free-form field of
 * ServerMetadataResponse. Main probed every backend at start, so describing them is cheap. */
static void server_metadata(call_ctx_t *c)
{
    Inference__ServerMetadataResponse resp = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    char *ext[N_EXTENSIONS + MAX_BACKENDS];
    char states[MAX_BACKENDS][600];
    size_t n = 0;
    for (; n < N_EXTENSIONS; n++)
        ext[n] = (char *)extensions[n];
    const char *const *names = backend_names();
    for (size_t i = 0; names[i] && i < MAX_BACKENDS; i++) {
        char state[512];
        backend_describe(names[i], state, sizeof state);
        snprintf(states[i], sizeof states[i], "backend:%s=%s", names[i], state);
        ext[n++] = states[i];
    }
    resp.name = (char *)SERVER_NAME;
    resp.version = (char *)SERVER_VERSION;
    resp.n_extensions = n;
    resp.extensions = ext;
    rpc_reply_pb(c, &resp.base);
}

static void fill_tensor_md(Inference__ModelMetadataResponse__TensorMetadata *t,
                           const model_tensor_cfg_t *cfg, bool batching, int64_t *shape)
{
    inference__model_metadata_response__tensor_metadata__init(t);
    t->name = cfg->name;
    t->datatype = (char *)hlt_dtype_name(cfg->dtype);
    size_t n = 0;
    if (batching)
        shape[n++] = -1; /* clients (perf_analyzer, SONIC) expect the batch dim here */
    for (int32_t i = 0; i < cfg->rank; i++)
        shape[n++] = cfg->dims[i];
    t->n_shape = n;
    t->shape = shape;
}

static void model_metadata(call_ctx_t *c)
{
    UNPACK_OR_FAIL(Inference__ModelMetadataRequest, inference__model_metadata_request__unpack, c,
                   req);
    model_t *m = resolve(c, req->name, req->version);
    inference__model_metadata_request__free_unpacked(req, NULL);
    if (!m)
        return;
    const model_config_t *cfg = model_config(m);
    bool batching = cfg->max_batch_size > 0;
    size_t nt = cfg->n_inputs + cfg->n_outputs;
    Inference__ModelMetadataResponse__TensorMetadata *tm = calloc(nt + 1, sizeof *tm);
    Inference__ModelMetadataResponse__TensorMetadata **ptrs = calloc(nt + 1, sizeof *ptrs);
    int64_t *shapes = calloc((nt + 1) * (ENGINE_MAX_RANK + 1), sizeof *shapes);
    if (!tm || !ptrs || !shapes) {
        rpc_reply_error(c, HLT_RESOURCE_EXHAUSTED, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nt; i++) {
        const model_tensor_cfg_t *t =
            i < cfg->n_inputs ? &cfg->inputs[i] : &cfg->outputs[i - cfg->n_inputs];
        fill_tensor_md(&tm[i], t, batching, shapes + i * (ENGINE_MAX_RANK + 1));
        ptrs[i] = &tm[i];
    }
    Inference__ModelMetadataResponse resp = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    char *versions[1] = {(char *)model_version_str(m)};
    resp.name = (char *)model_name(m);
    resp.n_versions = 1;
    resp.versions = versions;
    resp.platform = cfg->platform;
    resp.n_inputs = cfg->n_inputs;
    resp.inputs = ptrs;
    resp.n_outputs = cfg->n_outputs;
    resp.outputs = ptrs + cfg->n_inputs;
    rpc_reply_pb(c, &resp.base);
done:
    free(tm);
    free(ptrs);
    free(shapes);
    model_unref(m);
}

static void model_config_rpc(call_ctx_t *c)
{
    UNPACK_OR_FAIL(Inference__ModelConfigRequest, inference__model_config_request__unpack, c, req);
    model_t *m = resolve(c, req->name, req->version);
    inference__model_config_request__free_unpacked(req, NULL);
    if (!m)
        return;
    uint8_t *buf;
    size_t len;
    if (model_config_pack_response(model_reported_config(m), &buf, &len)) {
        rpc_reply_error(c, HLT_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        grpc_slice s = grpc_slice_new(buf, len, free);
        rpc_reply(c, HLT_OK, NULL, &s);
        grpc_slice_unref(s);
    }
    model_unref(m);
}

static void set_duration(Inference__StatisticDuration *d, const stat_duration_t *s)
{
    inference__statistic_duration__init(d);
    d->count = s->count;
    d->ns = s->ns;
}

/* One ModelStatistics message and everything it points to, in one allocation. */
typedef struct stats_msg {
    Inference__ModelStatistics ms;
    Inference__InferStatistics is;
    Inference__StatisticDuration d[6];
    Inference__InferBatchStatistics bs[STATS_MAX_BATCH_SIZES];
    Inference__InferBatchStatistics *bsp[STATS_MAX_BATCH_SIZES];
    Inference__StatisticDuration bd[STATS_MAX_BATCH_SIZES][3];
    Inference__StatisticDuration cache_zero;
    model_stats_snapshot_t snap;
} stats_msg_t;

static void fill_stats(stats_msg_t *sm, model_t *m)
{
    model_stats_snapshot_t *s = &sm->snap;
    stats_snapshot(model_stats(m), s);
    inference__model_statistics__init(&sm->ms);
    inference__infer_statistics__init(&sm->is);
    sm->ms.name = (char *)model_name(m);
    sm->ms.version = (char *)model_version_str(m);
    sm->ms.last_inference = s->last_inference_ms;
    sm->ms.inference_count = s->inference_count;
    sm->ms.execution_count = s->execution_count;
    const stat_duration_t *src[6] = {&s->success,       &s->fail,          &s->queue,
                                     &s->compute_input, &s->compute_infer, &s->compute_output};
    for (int i = 0; i < 6; i++)
        set_duration(&sm->d[i], src[i]);
    stat_duration_t zero = {0, 0};
    set_duration(&sm->cache_zero, &zero);
    sm->is.success = &sm->d[0];
    sm->is.fail = &sm->d[1];
    sm->is.queue = &sm->d[2];
    sm->is.compute_input = &sm->d[3];
    sm->is.compute_infer = &sm->d[4];
    sm->is.compute_output = &sm->d[5];
    sm->is.cache_hit = &sm->cache_zero;
    sm->is.cache_miss = &sm->cache_zero;
    sm->ms.inference_stats = &sm->is;
    for (size_t i = 0; i < s->n_batch; i++) {
        Inference__InferBatchStatistics *b = &sm->bs[i];
        inference__infer_batch_statistics__init(b);
        b->batch_size = s->batch[i].batch_size;
        set_duration(&sm->bd[i][0], &s->batch[i].compute_input);
        set_duration(&sm->bd[i][1], &s->batch[i].compute_infer);
        set_duration(&sm->bd[i][2], &s->batch[i].compute_output);
        b->compute_input = &sm->bd[i][0];
        b->compute_infer = &sm->bd[i][1];
        b->compute_output = &sm->bd[i][2];
        sm->bsp[i] = b;
    }
    sm->ms.n_batch_stats = s->n_batch;
    sm->ms.batch_stats = sm->bsp;
}

static void model_statistics(call_ctx_t *c)
{
    UNPACK_OR_FAIL(Inference__ModelStatisticsRequest, inference__model_statistics_request__unpack,
                   c, req);
    model_t **ms;
    size_t n = repo_collect(c->fe->repo, *req->name ? req->name : NULL, &ms);
    size_t k = 0;
    stats_msg_t *sm = calloc(n + 1, sizeof *sm);
    Inference__ModelStatistics **ptrs = calloc(n + 1, sizeof *ptrs);
    if (!sm || !ptrs) {
        rpc_reply_error(c, HLT_RESOURCE_EXHAUSTED, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (*req->version && strcmp(req->version, model_version_str(ms[i])))
            continue;
        fill_stats(&sm[k], ms[i]);
        ptrs[k] = &sm[k].ms;
        k++;
    }
    if (*req->name && k == 0) {
        if (*req->version)
            rpc_reply_error(c, HLT_NOT_FOUND,
                            "Request for unknown model: '%s' version %s is not found or not ready",
                            req->name, req->version);
        else
            rpc_reply_error(c, HLT_NOT_FOUND,
                            "Request for unknown model: '%s' is not found or not ready", req->name);
        goto done;
    }
    Inference__ModelStatisticsResponse resp = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
    resp.n_model_stats = k;
    resp.model_stats = ptrs;
    rpc_reply_pb(c, &resp.base);
done:
    for (size_t i = 0; i < n; i++)
        model_unref(ms[i]);
    free(ms);
    free(sm);
    free(ptrs);
    inference__model_statistics_request__free_unpacked(req, NULL);
}

/* Average queue time per request over the last complete window, all models. Runs on the CQ
 * thread only (RepositoryIndex), so the window state needs no lock. */
static int64_t admission_avg_queue_ns(frontend_t *fe)
{
    int64_t now = hlt_now_ns();
    if (fe->adm_t0 && now - fe->adm_t0 < fe->admission_window_ns)
        return fe->adm_avg_ns;
    model_t **ms;
    size_t n = repo_collect(fe->repo, NULL, &ms);
    uint64_t qns = 0, cnt = 0;
    for (size_t i = 0; i < n; i++) {
        model_stats_snapshot_t s;
        stats_snapshot(model_stats(ms[i]), &s);
        qns += s.waited.ns;
        cnt += s.waited.count;
        model_unref(ms[i]);
    }
    free(ms);
    /* Totals can shrink when a model is reloaded; then the window restarts. */
    if (fe->adm_t0 && cnt > fe->adm_count0 && qns >= fe->adm_queue_ns0)
        fe->adm_avg_ns = (int64_t)((qns - fe->adm_queue_ns0) / (cnt - fe->adm_count0));
    else
        fe->adm_avg_ns = 0;
    fe->adm_t0 = now;
    fe->adm_queue_ns0 = qns;
    fe->adm_count0 = cnt;
    return fe->adm_avg_ns;
}

static void repository_index(call_ctx_t *c)
{
    UNPACK_OR_FAIL(Inference__RepositoryIndexRequest, inference__repository_index_request__unpack,
                   c, req);
    if (c->fe->admission_queue_ns > 0) {
        int64_t avg = admission_avg_queue_ns(c->fe);
        if (avg > c->fe->admission_queue_ns) {
            rpc_reply_error(c, HLT_UNAVAILABLE,
                            "server overloaded: average queue time %" PRId64
                            " us exceeds the admission limit of %" PRId64
                            " us; new clients should use another server",
                            avg / 1000, c->fe->admission_queue_ns / 1000);
            inference__repository_index_request__free_unpacked(req, NULL);
            return;
        }
    }
    repo_index_entry_t *rows;
    size_t n = repo_index(c->fe->repo, req->ready, &rows);
    Inference__RepositoryIndexResponse__ModelIndex *mi = calloc(n + 1, sizeof *mi);
    Inference__RepositoryIndexResponse__ModelIndex **ptrs = calloc(n + 1, sizeof *ptrs);
    if (!mi || !ptrs) {
        rpc_reply_error(c, HLT_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            inference__repository_index_response__model_index__init(&mi[i]);
            mi[i].name = rows[i].name;
            mi[i].version = rows[i].version;
            mi[i].state = rows[i].state;
            mi[i].reason = rows[i].reason;
            ptrs[i] = &mi[i];
        }
        Inference__RepositoryIndexResponse resp = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
        resp.n_models = n;
        resp.models = ptrs;
        rpc_reply_pb(c, &resp.base);
    }
    free(mi);
    free(ptrs);
    repo_index_free(rows, n);
    inference__repository_index_request__free_unpacked(req, NULL);
}

static void health_check(call_ctx_t *c)
{
    Grpc__Health__V1__HealthCheckRequest *req = grpc__health__v1__health_check_request__unpack(
        NULL, GRPC_SLICE_LENGTH(c->req), GRPC_SLICE_START_PTR(c->req));
    if (!req) {
        rpc_reply_error(c, HLT_INVALID_ARGUMENT, "malformed HealthCheckRequest");
        return;
    }
    if (*req->service && strcmp(req->service, "inference.GRPCInferenceService")) {
        rpc_reply_error(c, HLT_NOT_FOUND, "unknown service '%s'", req->service);
    } else {
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = frontend_server_ready(c->fe)
                          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        rpc_reply_pb(c, &resp.base);
    }
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
}

void rpc_handle_meta(call_ctx_t *c)
{
    switch (c->method) {
    case M_SERVER_LIVE:
        server_live(c);
        break;
    case M_SERVER_READY:
        server_ready_rpc(c);
        break;
    case M_MODEL_READY:
        model_ready(c);
        break;
    case M_SERVER_METADATA:
        server_metadata(c);
        break;
    case M_MODEL_METADATA:
        model_metadata(c);
        break;
    case M_MODEL_CONFIG:
        model_config_rpc(c);
        break;
    case M_MODEL_STATISTICS:
        model_statistics(c);
        break;
    case M_REPOSITORY_INDEX:
        repository_index(c);
        break;
    case M_HEALTH_CHECK:
        health_check(c);
        break;
    default:
        rpc_reply_error(c, HLT_INTERNAL, "no handler for method %d", c->method);
    }
}

void rpc_handle_control(call_ctx_t *c)
{
    if (!c->fe->allow_model_control) {
        rpc_reply_error(c, HLT_UNAVAILABLE,
                        "explicit model load / unload is not allowed: the server runs with "
                        "--model-control-mode=none");
        return;
    }
    char err[1024];
    hlt_status st;
    if (c->method == M_REPOSITORY_LOAD) {
        UNPACK_OR_FAIL(Inference__RepositoryModelLoadRequest,
                       inference__repository_model_load_request__unpack, c, req);
        if (req->n_parameters) {
            rpc_reply_error(c, HLT_INVALID_ARGUMENT,
                            "model '%s': load parameters (config/file overrides) are not "
                            "supported; edit the repository and load again",
                            req->model_name);
            inference__repository_model_load_request__free_unpacked(req, NULL);
            return;
        }
        st = repo_load(c->fe->repo, req->model_name, err, sizeof err);
        HLT_LOG(HLT_LOG_INFO, "event=rpc_load model=%s status=%s", req->model_name,
                hlt_status_name(st));
        inference__repository_model_load_request__free_unpacked(req, NULL);
        if (st) {
            rpc_reply(c, st, err, NULL);
            return;
        }
        Inference__RepositoryModelLoadResponse resp =
            INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
        rpc_reply_pb(c, &resp.base);
    } else {
        UNPACK_OR_FAIL(Inference__RepositoryModelUnloadRequest,
                       inference__repository_model_unload_request__unpack, c, req);
        st = repo_unload(c->fe->repo, req->model_name, err, sizeof err);
        inference__repository_model_unload_request__free_unpacked(req, NULL);
        if (st) {
            rpc_reply(c, st, err, NULL);
            return;
        }
        Inference__RepositoryModelUnloadResponse resp =
            INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
        rpc_reply_pb(c, &resp.base);
    }
}
