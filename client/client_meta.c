/* client_meta: health, metadata, config, repository and statistics RPCs of libhltinfer.
 *
 * These messages are small, so protobuf-c packs the requests and unpacks the responses (no
 * hand-written codec needed). Each public result struct is the first member of a private box
 * that also owns the unpacked message its strings and arrays point into, so one _free releases
 * everything. All calls go through client_unary (synchronous, deadline, retries, fail-over). */
#include "client_impl.h"

#include "inference.pb-c.h"

#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* Packs req, runs method, unpacks the response with desc. */
static hlt_status call_pb(hlt_client_t *c, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp,
                          char *err, size_t errlen)
{
    *resp = NULL;
    size_t n = protobuf_c_message_get_packed_size(req);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(s));
    grpc_slice out;
    hlt_status st = client_unary(c, method, s, &out, err, errlen);
    if (st)
        return st;
    *resp =
        protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(out), GRPC_SLICE_START_PTR(out));
    grpc_slice_unref(out);
    if (!*resp)
        return client_fail(HLT_INTERNAL, err, errlen,
                           "malformed %s from the server: not a valid protobuf message",
                           desc->short_name);
    return HLT_OK;
}

/* ---- health ---- */

hlt_status hlt_client_server_live(hlt_client_t *c, bool *live, char *err, size_t errlen)
{
    Inference__ServerLiveRequest req = INFERENCE__SERVER_LIVE_REQUEST__INIT;
    ProtobufCMessage *m;
    *live = false;
    hlt_status st = call_pb(c, HLT_RPC("ServerLive"), &req.base,
                            &inference__server_live_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    *live = ((Inference__ServerLiveResponse *)m)->live;
    protobuf_c_message_free_unpacked(m, NULL);
    return HLT_OK;
}

/* ServerLiveResponse{live = 1 (bool)}; a missing field is false, as in protobuf. */
static hlt_status parse_live(grpc_slice resp, bool *live, char *err, size_t errlen)
{
    Inference__ServerLiveResponse *m = inference__server_live_response__unpack(
        NULL, GRPC_SLICE_LENGTH(resp), GRPC_SLICE_START_PTR(resp));
    if (!m)
        return client_fail(HLT_INTERNAL, err, errlen,
                           "malformed ServerLiveResponse from the server: not a valid protobuf "
                           "message");
    *live = m->live;
    inference__server_live_response__free_unpacked(m, NULL);
    return HLT_OK;
}

static void live_done(hlt_status st, grpc_slice resp, const char *message, void (*fn)(void),
                      void *user)
{
    bool live = false;
    char err[256];
    if (st == HLT_OK && (st = parse_live(resp, &live, err, sizeof err)) != HLT_OK)
        message = err;
    ((hlt_live_callback)fn)(st, live, message, user);
}

hlt_status hlt_client_server_live_async(hlt_client_t *c, hlt_live_callback callback,
                                        void *user_data, hlt_infer_handle_t **handle, char *err,
                                        size_t errlen)
{
    if (handle)
        *handle = NULL;
    if (!callback == !handle)
        return client_fail(HLT_INVALID_ARGUMENT, err, errlen,
                           "hlt_client_server_live_async needs exactly one of a callback and a "
                           "handle");
    /* ServerLiveRequest has no fields: the message is empty. */
    return client_unary_async(c, HLT_RPC("ServerLive"), grpc_empty_slice(),
                              callback ? live_done : NULL, (void (*)(void))callback, user_data,
                              handle, err, errlen);
}

hlt_status hlt_live_handle_result(hlt_infer_handle_t *h, bool *live, char *err, size_t errlen)
{
    *live = false;
    grpc_slice resp;
    hlt_status st = client_handle_response(h, &resp, err, errlen);
    if (st)
        return st;
    st = parse_live(resp, live, err, errlen);
    grpc_slice_unref(resp);
    return st;
}

hlt_status hlt_client_server_ready(hlt_client_t *c, bool *ready, char *err, size_t errlen)
{
    Inference__ServerReadyRequest req = INFERENCE__SERVER_READY_REQUEST__INIT;
    ProtobufCMessage *m;
    *ready = false;
    hlt_status st = call_pb(c, HLT_RPC("ServerReady"), &req.base,
                            &inference__server_ready_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    *ready = ((Inference__ServerReadyResponse *)m)->ready;
    protobuf_c_message_free_unpacked(m, NULL);
    return HLT_OK;
}

hlt_status hlt_client_model_ready(hlt_client_t *c, const char *model, const char *version,
                                  bool *ready, char *err, size_t errlen)
{
    Inference__ModelReadyRequest req = INFERENCE__MODEL_READY_REQUEST__INIT;
    req.name = (char *)str_or_empty(model);
    req.version = (char *)str_or_empty(version);
    ProtobufCMessage *m;
    *ready = false;
    hlt_status st = call_pb(c, HLT_RPC("ModelReady"), &req.base,
                            &inference__model_ready_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    *ready = ((Inference__ModelReadyResponse *)m)->ready;
    protobuf_c_message_free_unpacked(m, NULL);
    return HLT_OK;
}

/* ---- server metadata ---- */

typedef struct {
    hlt_server_metadata_t pub;
    Inference__ServerMetadataResponse *msg;
} server_md_box_t;

hlt_status hlt_client_server_metadata(hlt_client_t *c, hlt_server_metadata_t **out, char *err,
                                      size_t errlen)
{
    *out = NULL;
    Inference__ServerMetadataRequest req = INFERENCE__SERVER_METADATA_REQUEST__INIT;
    ProtobufCMessage *m;
    hlt_status st = call_pb(c, HLT_RPC("ServerMetadata"), &req.base,
                            &inference__server_metadata_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    server_md_box_t *b = calloc(1, sizeof *b);
    if (!b) {
        protobuf_c_message_free_unpacked(m, NULL);
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    b->msg = (Inference__ServerMetadataResponse *)m;
    b->pub.name = b->msg->name;
    b->pub.version = b->msg->version;
    b->pub.n_extensions = b->msg->n_extensions;
    b->pub.extensions = (const char *const *)b->msg->extensions;
    *out = &b->pub;
    return HLT_OK;
}

void hlt_server_metadata_free(hlt_server_metadata_t *m)
{
    if (!m)
        return;
    server_md_box_t *b = (server_md_box_t *)m;
    inference__server_metadata_response__free_unpacked(b->msg, NULL);
    free(b);
}

/* ---- model metadata ---- */

typedef struct {
    hlt_model_metadata_t pub;
    Inference__ModelMetadataResponse *msg;
    hlt_tensor_metadata_t tensors[];
} model_md_box_t;

static void fill_tensor_md(hlt_tensor_metadata_t *t,
                           const Inference__ModelMetadataResponse__TensorMetadata *m)
{
    t->name = m->name;
    t->datatype_name = m->datatype;
    t->datatype = hlt_dtype_from_name(m->datatype, strlen(m->datatype));
    t->rank = m->n_shape;
    t->shape = m->shape;
}

hlt_status hlt_client_model_metadata(hlt_client_t *c, const char *model, const char *version,
                                     hlt_model_metadata_t **out, char *err, size_t errlen)
{
    *out = NULL;
    Inference__ModelMetadataRequest req = INFERENCE__MODEL_METADATA_REQUEST__INIT;
    req.name = (char *)str_or_empty(model);
    req.version = (char *)str_or_empty(version);
    ProtobufCMessage *m;
    hlt_status st = call_pb(c, HLT_RPC("ModelMetadata"), &req.base,
                            &inference__model_metadata_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    Inference__ModelMetadataResponse *msg = (Inference__ModelMetadataResponse *)m;
    size_t nt = msg->n_inputs + msg->n_outputs;
    model_md_box_t *b = calloc(1, sizeof *b + nt * sizeof b->tensors[0]);
    if (!b) {
        protobuf_c_message_free_unpacked(m, NULL);
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    b->msg = msg;
    b->pub.name = msg->name;
    b->pub.platform = msg->platform;
    b->pub.n_versions = msg->n_versions;
    b->pub.versions = (const char *const *)msg->versions;
    for (size_t i = 0; i < msg->n_inputs; i++)
        fill_tensor_md(&b->tensors[i], msg->inputs[i]);
    for (size_t i = 0; i < msg->n_outputs; i++)
        fill_tensor_md(&b->tensors[msg->n_inputs + i], msg->outputs[i]);
    b->pub.n_inputs = msg->n_inputs;
    b->pub.inputs = b->tensors;
    b->pub.n_outputs = msg->n_outputs;
    b->pub.outputs = b->tensors + msg->n_inputs;
    *out = &b->pub;
    return HLT_OK;
}

void hlt_model_metadata_free(hlt_model_metadata_t *m)
{
    if (!m)
        return;
    model_md_box_t *b = (model_md_box_t *)m;
    inference__model_metadata_response__free_unpacked(b->msg, NULL);
    free(b);
}

/* ---- model config ---- */

typedef struct {
    hlt_model_config_t pub;
    Inference__ModelConfigResponse *msg;
    void *serialized;
    hlt_instance_group_t *groups;
    hlt_config_tensor_t tensors[];
} config_box_t;

static const char *kind_name(Inference__ModelInstanceGroup__Kind k)
{
    switch (k) {
    case INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_AUTO:
        return "KIND_AUTO";
    case INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_GPU:
        return "KIND_GPU";
    case INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU:
        return "KIND_CPU";
    case INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_MODEL:
        return "KIND_MODEL";
    default:
        return "KIND_UNKNOWN";
    }
}

hlt_status hlt_client_model_config(hlt_client_t *c, const char *model, const char *version,
                                   hlt_model_config_t **out, char *err, size_t errlen)
{
    *out = NULL;
    Inference__ModelConfigRequest req = INFERENCE__MODEL_CONFIG_REQUEST__INIT;
    req.name = (char *)str_or_empty(model);
    req.version = (char *)str_or_empty(version);
    ProtobufCMessage *m;
    hlt_status st = call_pb(c, HLT_RPC("ModelConfig"), &req.base,
                            &inference__model_config_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    Inference__ModelConfigResponse *msg = (Inference__ModelConfigResponse *)m;
    if (!msg->config) {
        protobuf_c_message_free_unpacked(m, NULL);
        return client_fail(HLT_INTERNAL, err, errlen,
                           "the server's ModelConfigResponse for '%s' carries no config",
                           str_or_empty(model));
    }
    const Inference__ModelConfig *cfg = msg->config;
    size_t nt = cfg->n_input + cfg->n_output;
    config_box_t *b = calloc(1, sizeof *b + nt * sizeof b->tensors[0]);
    size_t ser = protobuf_c_message_get_packed_size(&cfg->base);
    if (b) {
        b->serialized = malloc(ser ? ser : 1);
        b->groups = calloc(cfg->n_instance_group + 1, sizeof *b->groups);
    }
    if (!b || !b->serialized || !b->groups) {
        if (b) {
            free(b->serialized);
            free(b->groups);
        }
        free(b);
        protobuf_c_message_free_unpacked(m, NULL);
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    b->msg = msg;
    protobuf_c_message_pack(&cfg->base, b->serialized);
    hlt_model_config_t *p = &b->pub;
    p->name = cfg->name;
    p->platform = cfg->platform;
    p->backend = cfg->backend;
    p->max_batch_size = cfg->max_batch_size;
    for (size_t i = 0; i < cfg->n_input; i++) {
        hlt_config_tensor_t *t = &b->tensors[i];
        t->name = cfg->input[i]->name;
        t->datatype = (hlt_dtype)cfg->input[i]->data_type;
        t->n_dims = cfg->input[i]->n_dims;
        t->dims = cfg->input[i]->dims;
    }
    for (size_t i = 0; i < cfg->n_output; i++) {
        hlt_config_tensor_t *t = &b->tensors[cfg->n_input + i];
        t->name = cfg->output[i]->name;
        t->datatype = (hlt_dtype)cfg->output[i]->data_type;
        t->n_dims = cfg->output[i]->n_dims;
        t->dims = cfg->output[i]->dims;
    }
    p->n_inputs = cfg->n_input;
    p->inputs = b->tensors;
    p->n_outputs = cfg->n_output;
    p->outputs = b->tensors + cfg->n_input;
    for (size_t i = 0; i < cfg->n_instance_group; i++) {
        b->groups[i].name = cfg->instance_group[i]->name;
        b->groups[i].kind = kind_name(cfg->instance_group[i]->kind);
        b->groups[i].count = cfg->instance_group[i]->count;
    }
    p->n_instance_groups = cfg->n_instance_group;
    p->instance_groups = b->groups;
    if (cfg->scheduling_choice_case ==
            INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING &&
        cfg->dynamic_batching) {
        p->dynamic_batching = true;
        p->n_preferred_batch_sizes = cfg->dynamic_batching->n_preferred_batch_size;
        p->preferred_batch_sizes = cfg->dynamic_batching->preferred_batch_size;
        p->max_queue_delay_us = cfg->dynamic_batching->max_queue_delay_microseconds;
    }
    p->serialized = b->serialized;
    p->serialized_size = ser;
    *out = p;
    return HLT_OK;
}

void hlt_model_config_free(hlt_model_config_t *m)
{
    if (!m)
        return;
    config_box_t *b = (config_box_t *)m;
    inference__model_config_response__free_unpacked(b->msg, NULL);
    free(b->serialized);
    free(b->groups);
    free(b);
}

/* ---- repository ---- */

typedef struct {
    hlt_repository_index_t pub;
    Inference__RepositoryIndexResponse *msg;
    hlt_model_index_entry_t entries[];
} index_box_t;

hlt_status hlt_client_repository_index(hlt_client_t *c, bool ready_only,
                                       hlt_repository_index_t **out, char *err, size_t errlen)
{
    *out = NULL;
    Inference__RepositoryIndexRequest req = INFERENCE__REPOSITORY_INDEX_REQUEST__INIT;
    req.ready = ready_only;
    ProtobufCMessage *m;
    hlt_status st = call_pb(c, HLT_RPC("RepositoryIndex"), &req.base,
                            &inference__repository_index_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    Inference__RepositoryIndexResponse *msg = (Inference__RepositoryIndexResponse *)m;
    index_box_t *b = calloc(1, sizeof *b + msg->n_models * sizeof b->entries[0]);
    if (!b) {
        protobuf_c_message_free_unpacked(m, NULL);
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    b->msg = msg;
    for (size_t i = 0; i < msg->n_models; i++) {
        b->entries[i].name = msg->models[i]->name;
        b->entries[i].version = msg->models[i]->version;
        b->entries[i].state = msg->models[i]->state;
        b->entries[i].reason = msg->models[i]->reason;
    }
    b->pub.n_models = msg->n_models;
    b->pub.models = b->entries;
    *out = &b->pub;
    return HLT_OK;
}

void hlt_repository_index_free(hlt_repository_index_t *idx)
{
    if (!idx)
        return;
    index_box_t *b = (index_box_t *)idx;
    inference__repository_index_response__free_unpacked(b->msg, NULL);
    free(b);
}

hlt_status hlt_client_model_load(hlt_client_t *c, const char *model, char *err, size_t errlen)
{
    Inference__RepositoryModelLoadRequest req = INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__INIT;
    req.model_name = (char *)str_or_empty(model);
    ProtobufCMessage *m;
    hlt_status st =
        call_pb(c, HLT_RPC("RepositoryModelLoad"), &req.base,
                &inference__repository_model_load_response__descriptor, &m, err, errlen);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return st;
}

hlt_status hlt_client_model_unload(hlt_client_t *c, const char *model, char *err, size_t errlen)
{
    Inference__RepositoryModelUnloadRequest req = INFERENCE__REPOSITORY_MODEL_UNLOAD_REQUEST__INIT;
    req.model_name = (char *)str_or_empty(model);
    ProtobufCMessage *m;
    hlt_status st =
        call_pb(c, HLT_RPC("RepositoryModelUnload"), &req.base,
                &inference__repository_model_unload_response__descriptor, &m, err, errlen);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return st;
}

/* ---- statistics ---- */

typedef struct {
    hlt_model_statistics_t pub;
    Inference__ModelStatisticsResponse *msg;
    hlt_batch_stat_t *batches;
    hlt_model_stat_t models[];
} stats_box_t;

static hlt_duration_stat_t dur(const Inference__StatisticDuration *d)
{
    return d ? (hlt_duration_stat_t){d->count, d->ns} : (hlt_duration_stat_t){0, 0};
}

hlt_status hlt_client_model_statistics(hlt_client_t *c, const char *model, const char *version,
                                       hlt_model_statistics_t **out, char *err, size_t errlen)
{
    *out = NULL;
    Inference__ModelStatisticsRequest req = INFERENCE__MODEL_STATISTICS_REQUEST__INIT;
    req.name = (char *)str_or_empty(model);
    req.version = (char *)str_or_empty(version);
    ProtobufCMessage *m;
    hlt_status st = call_pb(c, HLT_RPC("ModelStatistics"), &req.base,
                            &inference__model_statistics_response__descriptor, &m, err, errlen);
    if (st)
        return st;
    Inference__ModelStatisticsResponse *msg = (Inference__ModelStatisticsResponse *)m;
    size_t nb = 0;
    for (size_t i = 0; i < msg->n_model_stats; i++)
        nb += msg->model_stats[i]->n_batch_stats;
    stats_box_t *b = calloc(1, sizeof *b + msg->n_model_stats * sizeof b->models[0]);
    if (b)
        b->batches = calloc(nb + 1, sizeof *b->batches);
    if (!b || !b->batches) {
        free(b);
        protobuf_c_message_free_unpacked(m, NULL);
        return client_fail(HLT_RESOURCE_EXHAUSTED, err, errlen, "out of memory");
    }
    b->msg = msg;
    hlt_batch_stat_t *bs = b->batches;
    for (size_t i = 0; i < msg->n_model_stats; i++) {
        const Inference__ModelStatistics *s = msg->model_stats[i];
        hlt_model_stat_t *o = &b->models[i];
        o->name = s->name;
        o->version = s->version;
        o->last_inference = s->last_inference;
        o->inference_count = s->inference_count;
        o->execution_count = s->execution_count;
        const Inference__InferStatistics *is = s->inference_stats;
        if (is) {
            o->success = dur(is->success);
            o->fail = dur(is->fail);
            o->queue = dur(is->queue);
            o->compute_input = dur(is->compute_input);
            o->compute_infer = dur(is->compute_infer);
            o->compute_output = dur(is->compute_output);
            o->cache_hit = dur(is->cache_hit);
            o->cache_miss = dur(is->cache_miss);
        }
        o->batch_stats = bs;
        o->n_batch_stats = s->n_batch_stats;
        for (size_t k = 0; k < s->n_batch_stats; k++, bs++) {
            bs->batch_size = s->batch_stats[k]->batch_size;
            bs->compute_input = dur(s->batch_stats[k]->compute_input);
            bs->compute_infer = dur(s->batch_stats[k]->compute_infer);
            bs->compute_output = dur(s->batch_stats[k]->compute_output);
        }
    }
    b->pub.n_models = msg->n_model_stats;
    b->pub.models = b->models;
    *out = &b->pub;
    return HLT_OK;
}

void hlt_model_statistics_free(hlt_model_statistics_t *s)
{
    if (!s)
        return;
    stats_box_t *b = (stats_box_t *)s;
    inference__model_statistics_response__free_unpacked(b->msg, NULL);
    free(b->batches);
    free(b);
}
