/* http: the HTTP side, as Triton has it: `--http-port` (8000) serves the KServe v2 health
 * endpoints (/v2/health/live, /v2/health/ready, /v2/models/{name}[/versions/{v}]/ready), and
 * `--metrics-port` (8002) serves /metrics in Prometheus text format with Triton's
 * nv_inference_* names (labels model and version) plus our batch-size histogram and queue-depth
 * gauge, so Prometheus scrapes and SuperSONIC's autoscaling queries work unchanged.
 *
 * libmicrohttpd runs each daemon on its own internal thread; handlers only read the repository
 * and the statistics. Started and stopped by main. */
#ifndef HLT_HTTP_H
#define HLT_HTTP_H

#include "hltinfer/status.h"
#include "repository.h"

#include <stdbool.h>

typedef struct http_server http_server_t;

typedef struct http_options {
    const char *address; /* listen address ("0.0.0.0") */
    int http_port;       /* -1 = disabled, 0 = pick a free port */
    int metrics_port;    /* -1 = disabled, 0 = pick a free port */
    /* Readiness as ServerReady reports it (shutdown, strict readiness). */
    bool (*server_ready)(void *arg);
    void *ready_arg;
} http_options_t;

/* Starts the daemons. repo is borrowed and must outlive the server. On success *out is owned
 * by the caller (http_stop) and the bound ports are stored in *http_port / *metrics_port (-1
 * when disabled). UNAVAILABLE with a message when a port cannot be bound. */
hlt_status http_start(const http_options_t *opts, repo_t *repo, http_server_t **out, int *http_port,
                      int *metrics_port, char *err, size_t errlen);
/* Accepts NULL. */
void http_stop(http_server_t *h);

/* Renders the Prometheus text exposition of every served model into a malloc'd string
 * (free()); NULL on allocation failure. Exposed for tests. */
char *http_render_metrics(repo_t *repo);

#endif
