/* Test fixtures for libhltinfer and the hltinfer command: a real hltinfer-server on 127.0.0.1
 * (a free port, read from its start-up log line), the reference vectors of models/<model>/
 * reference/, a port nobody listens on, and a subprocess runner. */
#ifndef HLT_TEST_CLIENT_FIXTURE_H
#define HLT_TEST_CLIENT_FIXTURE_H

#include "hltinfer/client.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

const char *fx_source_root(void);
const char *fx_build_root(void);

/* ---- server ---- */

typedef struct fx_server {
    pid_t pid;
    int port;
    char url[64];
    int fd; /* read end of the server's stderr */
    pthread_t reader;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char *log;
    size_t log_len, log_cap;
    bool eof;
} fx_server_t;

/* Starts build/server/hltinfer-server on 127.0.0.1 with a free port and models/ as repository,
 * plus extra_args (NULL-terminated, may be NULL); waits (at most 60 s) for its
 * event=server_started line. False when it did not start (the log says why). */
bool fx_server_start(fx_server_t *s, const char *const *extra_args);
/* SIGTERM, then waits (at most 60 s, then SIGKILL) and reaps it. Returns the exit status
 * (0 = clean, which under ASan also means no leak), or -1 when it had to be killed. */
int fx_server_stop(fx_server_t *s);
/* The server's stderr so far (for failure messages). */
const char *fx_server_log(fx_server_t *s);

/* A TCP port bound on 127.0.0.1 that does not listen: connecting to it is refused at once. The
 * socket stays bound (so nobody else takes the port) until fx_dead_port_close. */
int fx_dead_port_open(int *port);
void fx_dead_port_close(int fd);

/* ---- reference vectors ---- */

#define FX_MAX_TENSORS 4

typedef struct fx_tensor {
    char name[64];
    hlt_dtype datatype;
    size_t rank;
    int64_t shape[8];
    void *data; /* owned */
    size_t size;
} fx_tensor_t;

typedef struct fx_case {
    fx_tensor_t in[FX_MAX_TENSORS], out[FX_MAX_TENSORS];
    size_t n_in, n_out;
    hlt_input_t inputs[FX_MAX_TENSORS]; /* views of in[], ready for a request */
} fx_case_t;

/* Loads models/<model>/reference/<name>.json and its .bin files. */
bool fx_case_load(const char *model, const char *name, fx_case_t *c);
void fx_case_free(fx_case_t *c);
/* A request for the case (views into c). */
hlt_infer_request_t fx_case_request(const char *model, fx_case_t *c);
/* Compares every output of the case the result carries (all of them unless only_present) with
 * the reference, |got - want| <= 1e-5 + 1e-4 |want|. On mismatch false with why. */
bool fx_case_check(const fx_case_t *c, const hlt_infer_result_t *r, bool only_present, char *why,
                   size_t whylen);
/* Compares n little-endian float32 values at got (any alignment) with want. */
bool fx_close_f32(const void *got, const void *want, size_t n, char *why, size_t whylen);

/* ---- subprocesses ---- */

typedef struct fx_run {
    int status; /* exit code, or 128 + signal */
    char *out, *err;
} fx_run_t;

/* Runs argv (NULL-terminated) with stdout and stderr captured; false if it could not start. */
bool fx_run(const char *const *argv, fx_run_t *r);
void fx_run_free(fx_run_t *r);

/* A fresh temporary directory (mkdtemp) and its recursive removal. */
bool fx_tmpdir(char *path, size_t len);
void fx_rmdir(const char *path);

/* Reads a whole file (owned, NUL-terminated); NULL on error. */
void *fx_read_file(const char *path, size_t *size);

#endif
