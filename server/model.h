/* model: one loaded version of a model: its completed config, the engine graph, the bounded
 * request queue and the instance workers that execute requests (one thread per instance, each
 * with its own engine state, so `execute` never runs concurrently on an instance).
 *
 * Lifetime: reference counted. The repository holds one reference while the version is served;
 * every in-flight job holds one. model_retire stops intake, lets the workers finish what is
 * queued, and joins them; memory goes with the last reference.
 * Thread-safety: all functions are thread-safe except model_retire (call once, from one
 * thread, never from a worker). */
#ifndef HLT_MODEL_H
#define HLT_MODEL_H

#include "infer_job.h"
#include "model_config.h"
#include "stats.h"

#include <stdint.h>

typedef struct model model_t;

typedef struct model_load_options {
    int32_t default_max_batch; /* for configs that leave max_batch_size out */
    size_t queue_capacity;     /* requests queued per model version */
    size_t max_queued_bytes;   /* request bytes queued per model version */
    int64_t direct_dispatch_ns; /* run on the submitting thread requests that would be a batch of
                                   their own at once when batches take at most this on the CPU
                                   (model_submit); 0 = always through the instance workers */
} model_load_options_t;

/* Loads version `version` of the model in directory model_dir (named name): reads
 * config.json, loads <model_dir>/<version>/<model file>, completes the config, starts the
 * instance workers. On success *out holds one reference (model_unref). On failure the reason
 * is in err and nothing is left running. */
hlt_status model_load(const char *model_dir, const char *name, int64_t version,
                      const model_load_options_t *opts, model_t **out, char *err, size_t errlen);

void model_ref(model_t *m);
/* Accepts NULL. */
void model_unref(model_t *m);
/* Stops taking jobs, completes every queued job, joins the workers. Idempotent. */
void model_retire(model_t *m);

/* Queues a job; ownership of job moves to the model on success. UNAVAILABLE (with a message)
 * when the queue is full, ABORTED when the model was retired (a reload swapped it out: resolve
 * the model again); the caller keeps the job. */
hlt_status model_submit(model_t *m, infer_job_t *job, char *err, size_t errlen);

/* Makes the workers look at the queue again (a queued job was cancelled). */
void model_kick(model_t *m);

/* Borrowed views, valid while a reference is held. */
const model_config_t *model_config(const model_t *m);
/* The config as the ModelConfig RPC reports it: model_config, except that each KIND_GPU and
 * KIND_MODEL instance group lists in `gpus` the devices its instances run on (filled in when
 * the config left it empty) and, when a KIND_GPU group exists and the config names no
 * gpu_backend, the parameters hold gpu_backend = the backend chosen ("cuda", "opencl"). */
const model_config_t *model_reported_config(const model_t *m);
const char *model_name(const model_t *m);
int64_t model_version(const model_t *m);
const char *model_version_str(const model_t *m);
model_stats_t *model_stats(model_t *m);
size_t model_queue_length(model_t *m);
/* Where the instances run: "cpu:0 x1, opencl:0 x2". */
const char *model_placement(const model_t *m);

#endif
