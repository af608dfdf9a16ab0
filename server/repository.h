/* repository: the model repository on disk (Triton layout) and the set of model versions being
 * served. Scans `<root>/<model>/` directories, loads the versions the version policy selects,
 * records the state and reason of every model (a failed load is reported, never fatal),
 * resolves (name, version) to a referenced model for each request, and loads, reloads or
 * unloads models at run time without dropping in-flight requests (the old version finishes
 * what it has queued before it goes).
 *
 * Thread-safety: every function is thread-safe. Loads and unloads are serialised among
 * themselves; lookups never wait for a load. */
#ifndef HLT_REPOSITORY_H
#define HLT_REPOSITORY_H

#include "model.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct repo repo_t;

typedef struct repo_options {
    const char *root;
    model_load_options_t load;
} repo_options_t;

/* Owned by the caller (repo_destroy). NULL on allocation failure. opts->root is copied. */
repo_t *repo_create(const repo_options_t *opts);
/* Retires and releases every model. Accepts NULL. */
void repo_destroy(repo_t *r);

/* Loads every model directory under the root; failures are recorded and logged. Returns the
 * number of models that loaded. */
size_t repo_load_all(repo_t *r);
/* Loads (or reloads, if served) one model by directory name. On failure the model's entry
 * records the reason; a previously served version keeps serving. */
hlt_status repo_load(repo_t *r, const char *name, char *err, size_t errlen);
/* Stops serving a model; queued requests complete first. NOT_FOUND if it is unknown. */
hlt_status repo_unload(repo_t *r, const char *name, char *err, size_t errlen);

/* Resolves a request's model: version "" (or len 0) is the highest served version. On success
 * *out holds a reference (model_unref). NOT_FOUND for an unknown model or version,
 * INVALID_ARGUMENT for a non-numeric version, UNAVAILABLE for a model that is not ready (with
 * its reason). */
hlt_status repo_get(repo_t *r, const char *name, size_t name_len, const char *version,
                    size_t version_len, model_t **out, char *err, size_t errlen);

typedef struct repo_index_entry {
    char *name, *version, *state, *reason;
} repo_index_entry_t;

/* Lists every model directory in the repository (also those never loaded) with one entry per
 * served or failed version. *out is owned by the caller (repo_index_free). */
size_t repo_index(repo_t *r, bool ready_only, repo_index_entry_t **out);
void repo_index_free(repo_index_entry_t *e, size_t n);

/* References to every served model version, optionally only those named name (NULL = all).
 * *out is owned by the caller: unref each, then free(). */
size_t repo_collect(repo_t *r, const char *name, model_t ***out);

/* true when every model the repository tried to load is being served. */
bool repo_all_ready(repo_t *r);

#endif
