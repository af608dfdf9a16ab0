/* HTTP health endpoints and Prometheus metrics on libmicrohttpd (see http.h). Each response is
 * rendered into one buffer; nothing here touches the inference path except reading the
 * statistics snapshot, which takes each model's stats mutex briefly. */
#include "http.h"

#include "log.h"
#include "model.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_server {
    struct MHD_Daemon *http, *metrics;
    repo_t *repo;
    bool (*server_ready)(void *arg);
    void *ready_arg;
};

/* A growing text buffer; on allocation failure it stays failed and yields NULL. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

typedef struct metric {
    const char *name, *type, *help;
} metric_t;

/* Label values are model names (directory names) and numeric versions; escape anyway. */
static void put_labels(sbuf_t *b, model_t *m)
{
    sb_printf(b, "{model=\"");
    for (const char *s = model_name(m); *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(b, "\\%c", *s);
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *s);
    }
    sb_printf(b, "\",version=\"%s\"}", model_version_str(m));
}

char *http_render_metrics(repo_t *repo)
{
    static const metric_t metrics[] = {
        {"nv_inference_request_success", "counter",
         "Number of successful inference requests, all batch sizes"},
        {"nv_inference_request_failure", "counter",
         "Number of failed inference requests, all batch sizes"},
        {"nv_inference_count", "counter", "Number of inferences performed (a batch of n counts n)"},
        {"nv_inference_exec_count", "counter",
         "Number of model executions performed (a dynamic batch counts 1)"},
        {"nv_inference_request_duration_us", "counter",
         "Cumulative inference request duration in microseconds (includes cached requests)"},
        {"nv_inference_queue_duration_us", "counter",
         "Cumulative inference queuing duration in microseconds"},
        {"nv_inference_compute_input_duration_us", "counter",
         "Cumulative compute input duration in microseconds"},
        {"nv_inference_compute_infer_duration_us", "counter",
         "Cumulative compute inference duration in microseconds"},
        {"nv_inference_compute_output_duration_us", "counter",
         "Cumulative inference compute output duration in microseconds"},
        {"nv_inference_pending_request_count", "gauge",
         "Instantaneous number of pending requests awaiting execution per-model"},
        {"hlt_queue_depth", "gauge", "Requests waiting in the model's batcher queue"},
    };
    enum { N_METRICS = sizeof metrics / sizeof metrics[0] };
    model_t **ms;
    size_t n = repo_collect(repo, NULL, &ms);
    model_stats_snapshot_t *snaps = calloc(n + 1, sizeof *snaps);
    size_t *depth = calloc(n + 1, sizeof *depth);
    sbuf_t b = {0};
    if (!snaps || !depth) {
        b.failed = true;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        stats_snapshot(model_stats(ms[i]), &snaps[i]);
        depth[i] = model_queue_length(ms[i]);
    }
    for (int k = 0; k < N_METRICS; k++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", metrics[k].name, metrics[k].help,
                  metrics[k].name, metrics[k].type);
        for (size_t i = 0; i < n; i++) {
            const model_stats_snapshot_t *s = &snaps[i];
            uint64_t v = 0;
            switch (k) {
            case 0:
                v = s->success.count;
                break;
            case 1:
                v = s->fail.count;
                break;
            case 2:
                v = s->inference_count;
                break;
            case 3:
                v = s->execution_count;
                break;
            case 4:
                v = (s->success.ns + s->fail.ns) / 1000;
                break;
            case 5:
                v = s->queue.ns / 1000;
                break;
            case 6:
                v = s->compute_input.ns / 1000;
                break;
            case 7:
                v = s->compute_infer.ns / 1000;
                break;
            case 8:
                v = s->compute_output.ns / 1000;
                break;
            default:
                v = depth[i];
                break;
            }
            sb_printf(&b, "%s", metrics[k].name);
            put_labels(&b, ms[i]);
            sb_printf(&b, " %" PRIu64 "\n", v);
        }
    }
    /* Executed batch sizes as a histogram over powers of two: shows at a glance whether the
     * dynamic batcher is forming batches (Triton users' "batching stays at 1" complaint). */
    sb_printf(&b, "# HELP hlt_batch_size Rows per executed batch\n"
                  "# TYPE hlt_batch_size histogram\n");
    for (size_t i = 0; i < n; i++) {
        const model_stats_snapshot_t *s = &snaps[i];
        uint64_t cum = 0, sum = 0, total = 0;
        for (size_t j = 0; j < s->n_batch; j++) {
            total += s->batch[j].compute_infer.count;
            sum += s->batch[j].batch_size * s->batch[j].compute_infer.count;
        }
        for (uint64_t le = 1; le <= (1u << 16); le *= 2) {
            cum = 0;
            for (size_t j = 0; j < s->n_batch; j++)
                if (s->batch[j].batch_size <= le)
                    cum += s->batch[j].compute_infer.count;
            sb_printf(&b,
                      "hlt_batch_size_bucket{model=\"%s\",version=\"%s\",le=\"%" PRIu64
                      "\"} %" PRIu64 "\n",
                      model_name(ms[i]), model_version_str(ms[i]), le, cum);
        }
        sb_printf(&b,
                  "hlt_batch_size_bucket{model=\"%s\",version=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                  model_name(ms[i]), model_version_str(ms[i]), total);
        sb_printf(&b, "hlt_batch_size_sum");
        put_labels(&b, ms[i]);
        sb_printf(&b, " %" PRIu64 "\nhlt_batch_size_count", sum);
        put_labels(&b, ms[i]);
        sb_printf(&b, " %" PRIu64 "\n", total);
    }
done:
    for (size_t i = 0; i < n; i++)
        model_unref(ms[i]);
    free(ms);
    free(snaps);
    free(depth);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             const char *ctype)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* /v2/models/{name}[/versions/{v}]/ready */
static enum MHD_Result model_ready(http_server_t *h, struct MHD_Connection *conn, const char *url)
{
    const char *p = url + strlen("/v2/models/");
    const char *slash = strchr(p, '/');
    if (!slash)
        return reply(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}", "application/json");
    size_t name_len = (size_t)(slash - p);
    const char *version = "";
    size_t version_len = 0;
    if (!strncmp(slash, "/versions/", 10)) {
        version = slash + 10;
        const char *end = strchr(version, '/');
        if (!end || strcmp(end, "/ready"))
            return reply(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}", "application/json");
        version_len = (size_t)(end - version);
    } else if (strcmp(slash, "/ready")) {
        return reply(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}", "application/json");
    }
    model_t *m = NULL;
    char err[512];
    hlt_status st = repo_get(h->repo, p, name_len, version, version_len, &m, err, sizeof err);
    model_unref(m);
    if (st == HLT_OK && h->server_ready(h->ready_arg))
        return reply(conn, MHD_HTTP_OK, "", NULL);
    return reply(conn,
                 st == HLT_INVALID_ARGUMENT ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_SERVICE_UNAVAILABLE,
                 "", NULL);
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    http_server_t *h = cls;
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"error\":\"method not allowed\"}",
                     "application/json");
    if (!strcmp(url, "/v2/health/live"))
        return reply(conn, MHD_HTTP_OK, "", NULL);
    if (!strcmp(url, "/v2/health/ready"))
        return reply(conn,
                     h->server_ready(h->ready_arg) ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "",
                     NULL);
    if (!strncmp(url, "/v2/models/", 11))
        return model_ready(h, conn, url);
    return reply(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}", "application/json");
}

static enum MHD_Result on_metrics(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    http_server_t *h = cls;
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "text/plain");
    if (strcmp(url, "/metrics"))
        return reply(conn, MHD_HTTP_NOT_FOUND, "not found\n", "text/plain");
    char *text = http_render_metrics(h->repo);
    if (!text)
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", "text/plain");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static struct MHD_Daemon *start_daemon(const char *address, int port, MHD_AccessHandlerCallback cb,
                                       http_server_t *h, int *bound)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
        return NULL;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL, NULL, cb, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 256u,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d)
        return NULL;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = info ? info->port : port;
    return d;
}

hlt_status http_start(const http_options_t *opts, repo_t *repo, http_server_t **out, int *http_port,
                      int *metrics_port, char *err, size_t errlen)
{
    http_server_t *h = calloc(1, sizeof *h);
    if (!h)
        return HLT_RESOURCE_EXHAUSTED;
    h->repo = repo;
    h->server_ready = opts->server_ready;
    h->ready_arg = opts->ready_arg;
    *http_port = *metrics_port = -1;
    if (opts->http_port >= 0 &&
        !(h->http = start_daemon(opts->address, opts->http_port, on_http, h, http_port))) {
        snprintf(err, errlen, "cannot serve HTTP on %s:%d (in use?)", opts->address,
                 opts->http_port);
        http_stop(h);
        return HLT_UNAVAILABLE;
    }
    if (opts->metrics_port >= 0 && !(h->metrics = start_daemon(opts->address, opts->metrics_port,
                                                               on_metrics, h, metrics_port))) {
        snprintf(err, errlen, "cannot serve metrics on %s:%d (in use?)", opts->address,
                 opts->metrics_port);
        http_stop(h);
        return HLT_UNAVAILABLE;
    }
    *out = h;
    return HLT_OK;
}

void http_stop(http_server_t *h)
{
    if (!h)
        return;
    if (h->http)
        MHD_stop_daemon(h->http);
    if (h->metrics)
        MHD_stop_daemon(h->metrics);
    free(h);
}
