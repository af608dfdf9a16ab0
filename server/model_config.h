/* model_config: a model's configuration, read from `<model>/config.json` (Triton's ModelConfig
 * in protobuf's JSON mapping), completed from the ONNX graph the way Triton completes it, and
 * converted to the ModelConfig protobuf for the ModelConfig RPC.
 *
 * Owned by the model module (one per loaded model version); immutable after
 * model_config_complete, so any thread may read it. */
#ifndef HLT_MODEL_CONFIG_H
#define HLT_MODEL_CONFIG_H

#include "engine/engine.h"
#include "hltinfer/dtype.h"
#include "hltinfer/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Used when the config leaves max_batch_size out and the graph batches (every input and output
 * has a symbolic or -1 leading dim). Triton's default is 4; trigger clients send up to
 * thousands of rows per request, so ours is larger. Overridable with
 * --default-max-batch-size. */
#define MODEL_CONFIG_DEFAULT_MAX_BATCH 1024

typedef struct model_tensor_cfg {
    char *name;
    hlt_dtype dtype;
    int32_t rank;                  /* number of dims, batch dim excluded when batching */
    int64_t dims[ENGINE_MAX_RANK]; /* -1 = any size */
    bool optional;
} model_tensor_cfg_t;

typedef enum { QUEUE_TIMEOUT_REJECT = 0, QUEUE_TIMEOUT_DELAY = 1 } queue_timeout_action;

typedef struct model_queue_policy {
    queue_timeout_action timeout_action;
    uint64_t default_timeout_us;
    bool allow_timeout_override;
    uint32_t max_queue_size; /* 0 = the server's bound */
} model_queue_policy_t;

typedef struct model_priority_policy {
    uint64_t level;
    model_queue_policy_t policy;
} model_priority_policy_t;

typedef struct model_dynamic_batching {
    bool enabled;
    size_t n_preferred;
    int32_t *preferred_batch_size;
    uint64_t max_queue_delay_us;
    bool preserve_ordering;
    uint64_t priority_levels;
    uint64_t default_priority_level;
    model_queue_policy_t default_queue_policy;
    size_t n_priority_policies;
    model_priority_policy_t *priority_policies;
} model_dynamic_batching_t;

typedef enum {
    INSTANCE_KIND_AUTO = 0,
    INSTANCE_KIND_GPU = 1,
    INSTANCE_KIND_CPU = 2,
    INSTANCE_KIND_MODEL = 3
} instance_kind;

typedef struct model_instance_group {
    char *name;
    instance_kind kind;
    int32_t count;
    size_t n_gpus;
    int32_t *gpus;
} model_instance_group_t;

typedef enum { VERSION_POLICY_LATEST, VERSION_POLICY_ALL, VERSION_POLICY_SPECIFIC } version_policy;

typedef struct model_kv {
    char *key, *value;
} model_kv_t;

typedef struct model_agent {
    char *name;
    size_t n_params;
    model_kv_t *params;
} model_agent_t;

typedef struct model_config {
    char *name;
    char *backend;  /* as configured; "onnxruntime" when completed for an ONNX model */
    char *platform; /* "onnxruntime_onnx" for ONNX models */
    int32_t max_batch_size;
    bool max_batch_size_set;
    size_t n_inputs, n_outputs;
    model_tensor_cfg_t *inputs, *outputs;
    model_dynamic_batching_t dynamic_batching;
    size_t n_instance_groups;
    model_instance_group_t *instance_groups;
    version_policy version_policy;
    uint32_t latest_num_versions;
    size_t n_specific_versions;
    int64_t *specific_versions;
    size_t n_parameters;
    model_kv_t *parameters; /* ModelParameter string_value */
    size_t n_agents;
    model_agent_t *agents; /* model_repository_agents, echoed as given (SONIC checksums) */
    char *default_model_filename;
} model_config_t;

/* Parses a config.json document (text of len bytes) for the model in directory `name`.
 * text == NULL means "no config file": an empty config named `name`. On success *out is owned
 * by the caller (model_config_destroy). INVALID_ARGUMENT with a message naming the field on a
 * bad document. */
hlt_status model_config_parse(const char *name, const char *text, size_t len, model_config_t **out,
                              char *err, size_t errlen);
/* Reads <dir>/config.json if present and parses it as above. */
hlt_status model_config_load(const char *dir, const char *name, model_config_t **out, char *err,
                             size_t errlen);
/* Accepts NULL. */
void model_config_destroy(model_config_t *cfg);

/* Completes a parsed config from the ONNX graph as Triton does: missing inputs/outputs, dims
 * and datatypes come from the graph; a missing max_batch_size becomes default_max_batch when
 * every graph input and output has a symbolic or -1 leading dim, else 0. Then checks that the
 * config and the graph agree (names, datatypes, ranks, fixed dims) and fills defaults
 * (instance_group: one KIND_CPU instance). INVALID_ARGUMENT with a precise message if not.
 * g is borrowed. */
hlt_status model_config_complete(model_config_t *cfg, const engine_graph_t *g,
                                 int32_t default_max_batch, char *err, size_t errlen);

/* Completes the config of a bitstream (FPGA) model, which has no graph: inputs and outputs
 * must be declared with numeric datatypes and fixed dims; the instance group defaults to one
 * KIND_MODEL instance. INVALID_ARGUMENT with a precise message otherwise. */
hlt_status model_config_complete_declared(model_config_t *cfg, char *err, size_t errlen);

/* Packs the config as an inference.ModelConfigResponse message. On success *buf is owned by the
 * caller (free()). */
hlt_status model_config_pack_response(const model_config_t *cfg, uint8_t **buf, size_t *len);

/* Index of the input/output called name (len bytes), or -1. */
int model_config_find_input(const model_config_t *cfg, const char *name, size_t len);
int model_config_find_output(const model_config_t *cfg, const char *name, size_t len);

/* Total number of instances the config asks for (sum of instance_group counts). */
int32_t model_config_instance_count(const model_config_t *cfg);

#endif
