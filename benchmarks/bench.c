/* hltinfer-bench: closed-loop load generator for hltinfer-server (or any KServe v2 / Triton
 * gRPC server), in the spirit of Triton's perf_analyzer.
 *
 * It keeps N asynchronous calls in flight through libhltinfer (one or several clients, each
 * its own channel and completion thread), for a fixed time or request count, and reports
 * throughput, latency percentiles, the server-side queue / compute split from ModelStatistics
 * deltas over the measured window, and, in the same run, the same figures for a bare
 * ServerLive call at the same concurrency: the transport floor the inference is compared with.
 * `--mode live` measures ServerLive only, so it can target hltinfer-echo (the bare gRPC-core
 * server of benchmarks/echo_server.c).
 *
 * This file: options, input generation from ModelMetadata, the window snapshots
 * (ModelStatistics, CPU time) and the orchestration. The load loop is bench_load.c, the
 * figures and output bench_report.c. */
#include "bench_load.h"
#include "bench_report.h"
#include "hltinfer/client.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_CONCURRENCY 65536
#define MAX_CLIENTS 256
#define MAX_INPUTS 16
#define MAX_RANK 8
#define MAX_DURATION_S 3600.0

typedef struct opts {
    const char *url, *model, *version, *mode, *csv, *label;
    bool allow_remote, floor, quiet;
    uint32_t batch, concurrency, clients;
    double duration_s, warmup_s, max_time_s;
    uint64_t requests, max_errors, seed;
    int64_t timeout_ms;
    pid_t server_pid;
} opts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: hltinfer-bench [OPTIONS]\n"
            "Closed-loop load against one model of a KServe v2 / Triton gRPC server through\n"
            "libhltinfer's asynchronous path; reports throughput, latency percentiles, the\n"
            "server's queue / compute split (ModelStatistics deltas) and, in the same run, the\n"
            "same figures for ServerLive at the same concurrency (the transport floor).\n"
            "\n"
            "  --url=HOST:PORT       server (default 127.0.0.1:8001)\n"
            "  --allow-remote        allow a non-loopback server (refused by default, so a load\n"
            "                        test never hits a production farm by mistake)\n"
            "  --mode=infer|live     ModelInfer (default) or ServerLive only (works against\n"
            "                        hltinfer-echo)\n"
            "  --model=NAME          model to call (required for --mode=infer)\n"
            "  --model-version=V     model version (default: the server's choice)\n"
            "  --batch=B             rows per request: replaces the -1 batch dimension of the\n"
            "                        ModelMetadata shapes (default 1)\n"
            "  --concurrency=N       calls kept in flight (default 1, at most %d)\n"
            "  --clients=K           clients (channels, completion threads) the calls are\n"
            "                        spread over (default 1, at most %d)\n"
            "  --duration=S          measured window in seconds (default 5)\n"
            "  --warmup=S            load before the window, not measured (default 1)\n"
            "  --requests=N          measure N completed calls instead of a duration\n"
            "  --max-time=S          with --requests: close the window after S s anyway (300)\n"
            "  --timeout-ms=MS       deadline of every call (default 10000)\n"
            "  --max-errors=N        stop the run after more than N failed calls (default 1000)\n"
            "  --floor / --no-floor  also measure ServerLive at the same concurrency (default on)\n"
            "  --server-pid=PID      also report the server's CPU time per call (/proc/PID/stat;\n"
            "                        meaningful when the server runs on this machine)\n"
            "  --csv=FILE            append one row per measured mode (header when new)\n"
            "  --label=TEXT          label column of the CSV rows\n"
            "  --seed=N              seed of the random inputs (default 1)\n"
            "  --quiet               no progress lines on stderr\n"
            "  -h, --help            this text\n"
            "Exit status: 0 when every measured call succeeded, 1 when some failed or the run\n"
            "stopped early, 2 for bad options or when nothing could be measured.\n",
            MAX_CONCURRENCY, MAX_CLIENTS);
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_secs(const char *s, double lo, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < lo || v > MAX_DURATION_S)
        return false;
    *out = v;
    return true;
}

/* Loopback unless allowed otherwise: the host part of HOST:PORT, [v6]:PORT or a unix: URI. */
static bool is_loopback(const char *url)
{
    if (!strncmp(url, "unix:", 5))
        return true;
    if (!strncmp(url, "ipv4:", 5) || !strncmp(url, "dns:", 4))
        url = strchr(url, ':') + 1;
    while (*url == '/')
        url++;
    return !strncmp(url, "127.", 4) || !strncmp(url, "localhost:", 10) ||
           !strncmp(url, "[::1]:", 6);
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.url = "127.0.0.1:8001",
                  .mode = "infer",
                  .label = "",
                  .floor = true,
                  .batch = 1,
                  .concurrency = 1,
                  .clients = 1,
                  .duration_s = 5,
                  .warmup_s = 1,
                  .max_time_s = 300,
                  .max_errors = 1000,
                  .seed = 1,
                  .timeout_ms = 10000};
    enum {
        O_URL = 256,
        O_REMOTE,
        O_MODE,
        O_MODEL,
        O_VERSION,
        O_BATCH,
        O_CONC,
        O_CLIENTS,
        O_DUR,
        O_WARM,
        O_REQ,
        O_MAXT,
        O_TMO,
        O_MAXERR,
        O_FLOOR,
        O_NOFLOOR,
        O_PID,
        O_CSV,
        O_LABEL,
        O_SEED,
        O_QUIET
    };
    static const struct option lo[] = {{"url", required_argument, 0, O_URL},
                                       {"allow-remote", no_argument, 0, O_REMOTE},
                                       {"mode", required_argument, 0, O_MODE},
                                       {"model", required_argument, 0, O_MODEL},
                                       {"model-version", required_argument, 0, O_VERSION},
                                       {"batch", required_argument, 0, O_BATCH},
                                       {"concurrency", required_argument, 0, O_CONC},
                                       {"clients", required_argument, 0, O_CLIENTS},
                                       {"duration", required_argument, 0, O_DUR},
                                       {"warmup", required_argument, 0, O_WARM},
                                       {"requests", required_argument, 0, O_REQ},
                                       {"max-time", required_argument, 0, O_MAXT},
                                       {"timeout-ms", required_argument, 0, O_TMO},
                                       {"max-errors", required_argument, 0, O_MAXERR},
                                       {"floor", no_argument, 0, O_FLOOR},
                                       {"no-floor", no_argument, 0, O_NOFLOOR},
                                       {"server-pid", required_argument, 0, O_PID},
                                       {"csv", required_argument, 0, O_CSV},
                                       {"label", required_argument, 0, O_LABEL},
                                       {"seed", required_argument, 0, O_SEED},
                                       {"quiet", no_argument, 0, O_QUIET},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case O_URL:
            o->url = optarg;
            break;
        case O_REMOTE:
            o->allow_remote = true;
            break;
        case O_MODE:
            o->mode = optarg;
            ok = !strcmp(optarg, "infer") || !strcmp(optarg, "live");
            break;
        case O_MODEL:
            o->model = optarg;
            break;
        case O_VERSION:
            o->version = optarg;
            break;
        case O_BATCH:
            ok = parse_u64(optarg, 1, 1u << 30, &v);
            o->batch = (uint32_t)v;
            break;
        case O_CONC:
            ok = parse_u64(optarg, 1, MAX_CONCURRENCY, &v);
            o->concurrency = (uint32_t)v;
            break;
        case O_CLIENTS:
            ok = parse_u64(optarg, 1, MAX_CLIENTS, &v);
            o->clients = (uint32_t)v;
            break;
        case O_DUR:
            ok = parse_secs(optarg, 0.01, &o->duration_s);
            break;
        case O_WARM:
            ok = parse_secs(optarg, 0, &o->warmup_s);
            break;
        case O_REQ:
            ok = parse_u64(optarg, 1, UINT64_MAX / 2, &o->requests);
            break;
        case O_MAXT:
            ok = parse_secs(optarg, 0.01, &o->max_time_s);
            break;
        case O_TMO:
            ok = parse_u64(optarg, 1, 3600000, &v);
            o->timeout_ms = (int64_t)v;
            break;
        case O_MAXERR:
            ok = parse_u64(optarg, 0, UINT64_MAX / 2, &o->max_errors);
            break;
        case O_FLOOR:
            o->floor = true;
            break;
        case O_NOFLOOR:
            o->floor = false;
            break;
        case O_PID:
            ok = parse_u64(optarg, 1, INT32_MAX, &v);
            o->server_pid = (pid_t)v;
            break;
        case O_CSV:
            o->csv = optarg;
            break;
        case O_LABEL:
            o->label = optarg;
            break;
        case O_SEED:
            ok = parse_u64(optarg, 0, UINT64_MAX, &o->seed);
            break;
        case O_QUIET:
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (!ok) {
            const char *name = "?";
            for (const struct option *p = lo; p->name; p++)
                if (p->val == c)
                    name = p->name;
            fprintf(stderr, "hltinfer-bench: bad value '%s' for --%s\n", optarg, name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hltinfer-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    bool live = !strcmp(o->mode, "live");
    if (!live && !o->model) {
        fprintf(stderr, "hltinfer-bench: --model is required (or --mode=live)\n");
        return -1;
    }
    if (live)
        o->floor = false;
    if (o->clients > o->concurrency)
        o->clients = o->concurrency;
    if (!o->allow_remote && !is_loopback(o->url)) {
        fprintf(stderr,
                "hltinfer-bench: %s is not a loopback address; pass --allow-remote to "
                "load a remote server\n",
                o->url);
        return -1;
    }
    return 0;
}

/* ---- inputs ---- */

typedef struct inputs {
    hlt_input_t in[MAX_INPUTS];
    int64_t shape[MAX_INPUTS][MAX_RANK];
    void *data[MAX_INPUTS];
    size_t n, bytes;
} inputs_t;

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: inputs only need to be varied and reproducible */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(void *p, hlt_dtype t, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next(rng);
        double u = (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0; /* [-1, 1) */
        switch (t) {
        case HLT_TYPE_FP32:
            ((float *)p)[i] = (float)u;
            break;
        case HLT_TYPE_FP64:
            ((double *)p)[i] = u;
            break;
        case HLT_TYPE_BOOL:
            ((uint8_t *)p)[i] = r & 1;
            break;
        default: {
            size_t es = hlt_dtype_size(t); /* small non-negative integers; FP16/BF16: zeros */
            memset((char *)p + i * es, 0, es);
            if (t != HLT_TYPE_FP16 && t != HLT_TYPE_BF16)
                ((uint8_t *)p)[i * es] = (uint8_t)(r % 10);
        }
        }
    }
}

static void inputs_free(inputs_t *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->data[i]);
    x->n = 0;
}

/* Builds one request's inputs from the model's metadata, -1 batch dimension = batch. */
static int inputs_make(hlt_client_t *ctl, const opts_t *o, inputs_t *x, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    hlt_model_metadata_t *md;
    hlt_status st = hlt_client_model_metadata(ctl, o->model, o->version, &md, err, errlen);
    if (st) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (ModelMetadata of '%s': %s)", o->model,
                 hlt_status_name(st));
        return -1;
    }
    int rc = -1;
    uint64_t rng = o->seed;
    if (md->n_inputs == 0 || md->n_inputs > MAX_INPUTS) {
        snprintf(err, errlen, "model '%s' has %zu inputs (1..%d supported)", o->model, md->n_inputs,
                 MAX_INPUTS);
        goto done;
    }
    for (size_t i = 0; i < md->n_inputs; i++) {
        const hlt_tensor_metadata_t *t = &md->inputs[i];
        size_t es = hlt_dtype_size(t->datatype);
        if (es == 0) {
            snprintf(err, errlen,
                     "input '%s' of '%s' has datatype %s, which hltinfer-bench "
                     "cannot generate",
                     t->name, o->model, t->datatype_name);
            goto done;
        }
        if (t->rank > MAX_RANK) {
            snprintf(err, errlen, "input '%s' has rank %zu (at most %d)", t->name, t->rank,
                     MAX_RANK);
            goto done;
        }
        size_t count = 1;
        for (size_t d = 0; d < t->rank; d++) {
            int64_t v = t->shape[d];
            if (v == -1 && d == 0)
                v = o->batch;
            else if (v < 0) {
                snprintf(err, errlen,
                         "input '%s' has a variable dimension %zu that is not the "
                         "batch dimension",
                         t->name, d);
                goto done;
            }
            x->shape[i][d] = v;
            count *= (size_t)v;
        }
        if (o->batch != 1 && (t->rank == 0 || t->shape[0] != -1)) {
            snprintf(err, errlen,
                     "model '%s' does not batch (input '%s' has no -1 batch "
                     "dimension): use --batch=1",
                     o->model, t->name);
            goto done;
        }
        size_t bytes = count * es;
        x->data[i] = malloc(bytes ? bytes : 1);
        if (!x->data[i]) {
            snprintf(err, errlen, "out of memory for input '%s' (%zu bytes)", t->name, bytes);
            goto done;
        }
        x->n = i + 1;
        fill(x->data[i], t->datatype, count, &rng);
        x->in[i] =
            (hlt_input_t){strdup(t->name), t->datatype, t->rank, x->shape[i], x->data[i], bytes};
        x->bytes += bytes;
    }
    rc = 0;
done:
    if (rc) {
        for (size_t i = 0; i < x->n; i++)
            free((char *)x->in[i].name);
        inputs_free(x);
    }
    hlt_model_metadata_free(md);
    return rc;
}

/* ---- window snapshots ---- */

typedef struct snap {
    bool ok;
    hlt_model_stat_t m; /* scalar fields only */
    double client_cpu_s, server_cpu_s;
} snap_t;

typedef struct edge_ctx {
    hlt_client_t *ctl;
    const opts_t *o;
    bool want_stats;
    snap_t s[2];
    bool have[2];
    char err[512];
} edge_ctx_t;

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of a process, in seconds; < 0 when unreadable. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut, stt;
    /* after "comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static void add_dur(hlt_duration_stat_t *a, const hlt_duration_stat_t *b)
{
    a->count += b->count;
    a->ns += b->ns;
}

static void on_edge(load_edge_t edge, void *arg)
{
    edge_ctx_t *e = arg;
    snap_t *s = &e->s[edge];
    memset(s, 0, sizeof *s);
    s->client_cpu_s = self_cpu_s();
    s->server_cpu_s = e->o->server_pid ? proc_cpu_s(e->o->server_pid) : -1;
    e->have[edge] = true;
    if (!e->want_stats)
        return;
    hlt_model_statistics_t *ms;
    char err[400];
    hlt_status st =
        hlt_client_model_statistics(e->ctl, e->o->model, e->o->version, &ms, err, sizeof err);
    if (st) {
        snprintf(e->err, sizeof e->err, "ModelStatistics: %s (%s)", err, hlt_status_name(st));
        return;
    }
    /* Every version of the model together (one, unless a version list is served). */
    for (size_t i = 0; i < ms->n_models; i++) {
        const hlt_model_stat_t *m = &ms->models[i];
        if (strcmp(m->name, e->o->model))
            continue;
        s->ok = true;
        s->m.inference_count += m->inference_count;
        s->m.execution_count += m->execution_count;
        add_dur(&s->m.success, &m->success);
        add_dur(&s->m.queue, &m->queue);
        add_dur(&s->m.compute_input, &m->compute_input);
        add_dur(&s->m.compute_infer, &m->compute_infer);
        add_dur(&s->m.compute_output, &m->compute_output);
    }
    if (!s->ok)
        snprintf(e->err, sizeof e->err, "ModelStatistics has no entry for '%s'", e->o->model);
    hlt_model_statistics_free(ms);
}

static double per_req_us(const hlt_duration_stat_t *a, const hlt_duration_stat_t *b)
{
    uint64_t n = b->count - a->count;
    return n ? (double)(b->ns - a->ns) / (double)n / 1e3 : 0;
}

static void split_from(const edge_ctx_t *e, summary_t *s)
{
    s->client_cpu_us = s->server_cpu_us = -1;
    if (!e->have[0] || !e->have[1])
        return;
    if (s->requests) {
        s->client_cpu_us = (e->s[1].client_cpu_s - e->s[0].client_cpu_s) * 1e6 / s->requests;
        if (e->s[0].server_cpu_s >= 0 && e->s[1].server_cpu_s >= 0)
            s->server_cpu_us = (e->s[1].server_cpu_s - e->s[0].server_cpu_s) * 1e6 / s->requests;
    }
    if (!e->s[0].ok || !e->s[1].ok)
        return;
    const hlt_model_stat_t *a = &e->s[0].m, *b = &e->s[1].m;
    server_split_t *v = &s->server;
    v->valid = true;
    v->d_requests = b->success.count - a->success.count;
    v->d_inferences = b->inference_count - a->inference_count;
    v->d_executions = b->execution_count - a->execution_count;
    v->success_us = per_req_us(&a->success, &b->success);
    v->queue_us = per_req_us(&a->queue, &b->queue);
    v->compute_input_us = per_req_us(&a->compute_input, &b->compute_input);
    v->compute_infer_us = per_req_us(&a->compute_infer, &b->compute_infer);
    v->compute_output_us = per_req_us(&a->compute_output, &b->compute_output);
    v->mean_batch = v->d_executions ? (double)v->d_inferences / (double)v->d_executions : 0;
}

/* ---- one measured mode ---- */

typedef struct measured {
    summary_t sum;
    load_result_t res;
    bool ran;
} measured_t;

static int measure(const opts_t *o, hlt_client_t *const *clients, hlt_client_t *ctl,
                   load_mode_t mode, const hlt_infer_request_t *req, size_t req_bytes,
                   measured_t *out)
{
    memset(out, 0, sizeof *out);
    edge_ctx_t e = {.ctl = ctl, .o = o, .want_stats = mode == LOAD_INFER};
    load_spec_t spec = {.mode = mode,
                        .clients = clients,
                        .n_clients = o->clients,
                        .req = req,
                        .concurrency = o->concurrency,
                        .warmup_s = o->warmup_s,
                        .duration_s = o->duration_s,
                        .requests = o->requests,
                        .max_time_s = o->max_time_s,
                        .drain_s = (double)o->timeout_ms / 1e3 + 5,
                        .max_errors = o->max_errors,
                        .on_edge = on_edge,
                        .edge_arg = &e};
    /* "floor": ServerLive measured beside an inference run; "live": --mode=live alone. */
    const char *name = mode == LOAD_INFER ? "infer" : !strcmp(o->mode, "infer") ? "floor" : "live";
    if (!o->quiet)
        fprintf(stderr,
                "hltinfer-bench: %s: concurrency %u over %u client(s), warm-up %.1f s, "
                "%s...\n",
                name, o->concurrency, o->clients, o->warmup_s,
                o->requests ? "counting requests" : "measuring");
    char err[512] = "";
    if (load_run(&spec, &out->res, err, sizeof err) != 0) {
        fprintf(stderr, "hltinfer-bench: %s: %s\n", name, err);
        return -1;
    }
    out->ran = true;
    summary_t *s = &out->sum;
    s->label = o->label;
    s->mode = name;
    s->model = mode == LOAD_INFER ? o->model : "";
    s->batch = mode == LOAD_INFER ? o->batch : 1;
    s->concurrency = o->concurrency;
    s->clients = o->clients;
    s->request_bytes = mode == LOAD_INFER ? req_bytes : 0;
    s->p50_vs_live = s->throughput_vs_live = -1;
    report_summarize(&out->res, s->batch, s);
    split_from(&e, s);
    if (err[0])
        fprintf(stderr, "hltinfer-bench: %s: %s\n", name, err);
    if (e.err[0] && mode == LOAD_INFER)
        fprintf(stderr, "hltinfer-bench: %s: no server split: %s\n", name, e.err);
    load_result_t *r = &out->res;
    if (r->errors_total)
        fprintf(stderr,
                "hltinfer-bench: %s: %llu failed calls (%llu inside the window); first: "
                "%s: %s\n",
                name, (unsigned long long)r->errors_total, (unsigned long long)r->errors,
                hlt_status_name(r->first_error), r->first_message);
    if (r->stopped_early == 1)
        fprintf(stderr, "hltinfer-bench: %s: stopped early after more than %llu errors\n", name,
                (unsigned long long)o->max_errors);
    if (r->stopped_early == 2)
        fprintf(stderr, "hltinfer-bench: %s: --max-time reached after %llu of %llu requests\n",
                name, (unsigned long long)(r->ok + r->errors), (unsigned long long)o->requests);
    if (r->lost_samples)
        fprintf(stderr, "hltinfer-bench: %s: %llu latency samples lost (out of memory)\n", name,
                (unsigned long long)r->lost_samples);
    return 0;
}

static bool clean(const measured_t *m)
{
    return m->ran && m->res.errors_total == 0 && !m->res.stopped_early && !m->res.abandoned &&
           m->sum.requests > 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    /* Many channels (--clients) each hold a socket; a thousand-way run needs nothing more,
     * but raise the soft limit anyway so large --clients values work. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char err[1024];
    int rc = 2;
    hlt_client_options_t copts = {.timeout_ms = o.timeout_ms};
    hlt_client_t *ctl = NULL;
    hlt_client_t **clients = calloc(o.clients, sizeof *clients);
    inputs_t x = {0};
    measured_t mi = {0}, ml = {0};
    if (!clients) {
        fprintf(stderr, "hltinfer-bench: out of memory\n");
        return 2;
    }
    if (hlt_client_create(o.url, &copts, &ctl, err, sizeof err) != HLT_OK) {
        fprintf(stderr, "hltinfer-bench: %s\n", err);
        goto done;
    }
    bool live = false;
    hlt_status st = hlt_client_server_live(ctl, &live, err, sizeof err);
    if (st || !live) {
        fprintf(stderr, "hltinfer-bench: server %s is not live: %s (%s)\n", o.url,
                st ? err : "live = false", hlt_status_name(st));
        goto done;
    }
    bool infer = !strcmp(o.mode, "infer");
    hlt_infer_request_t req = {0};
    if (infer) {
        if (inputs_make(ctl, &o, &x, err, sizeof err) != 0) {
            fprintf(stderr, "hltinfer-bench: %s\n", err);
            goto done;
        }
        req = (hlt_infer_request_t){
            .model = o.model, .version = o.version, .inputs = x.in, .n_inputs = x.n};
        /* One synchronous call first: a model that rejects the inputs fails here, clearly. */
        hlt_infer_result_t *r;
        st = hlt_client_infer(ctl, &req, &r, err, sizeof err);
        if (st) {
            fprintf(stderr, "hltinfer-bench: a first ModelInfer of '%s' failed: %s (%s)\n", o.model,
                    err, hlt_status_name(st));
            goto done;
        }
        hlt_infer_result_free(r);
    }
    for (uint32_t i = 0; i < o.clients; i++) {
        /* gRPC core shares one connection between channels with the same target and
         * arguments (its global subchannel pool), so K plain clients would still be one TCP
         * connection. A query in the target URI, which the resolvers ignore, makes each
         * client's channel distinct: K clients = K connections. */
        char target[600];
        if (o.clients == 1)
            snprintf(target, sizeof target, "%s", o.url);
        else
            snprintf(target, sizeof target, "%s%s%shltinfer-bench-client=%u",
                     strstr(o.url, ":/") || !strncmp(o.url, "ipv4:", 5) ||
                             !strncmp(o.url, "ipv6:", 5) || !strncmp(o.url, "unix:", 5)
                         ? ""
                         : "dns:///",
                     o.url, strchr(o.url, '?') ? "&" : "?", i);
        const char *one = target;
        if (hlt_client_create_list(&one, 1, &copts, &clients[i], err, sizeof err) != HLT_OK) {
            fprintf(stderr, "hltinfer-bench: %s\n", err);
            goto done;
        }
    }

    if (infer && measure(&o, clients, ctl, LOAD_INFER, &req, x.bytes, &mi) != 0)
        goto done;
    if ((!infer || o.floor) && measure(&o, clients, ctl, LOAD_LIVE, NULL, 0, &ml) != 0)
        goto done;
    if (mi.ran && ml.ran && ml.sum.p50_us > 0 && ml.sum.throughput > 0) {
        mi.sum.p50_vs_live = mi.sum.p50_us / ml.sum.p50_us;
        mi.sum.throughput_vs_live = mi.sum.throughput / ml.sum.throughput;
    }

    printf("hltinfer-bench: url=%s mode=%s%s%s batch=%u concurrency=%u clients=%u "
           "window=%s\n",
           o.url, o.mode, infer ? " model=" : "", infer ? o.model : "", infer ? o.batch : 1,
           o.concurrency, o.clients, o.requests ? "requests" : "duration");
    if (infer)
        printf("  request: %zu input bytes (%zu input%s)\n", x.bytes, x.n, x.n == 1 ? "" : "s");
    report_table_header(stdout);
    measured_t *all[2] = {&mi, &ml};
    for (int i = 0; i < 2; i++)
        if (all[i]->ran)
            report_table_row(stdout, &all[i]->sum);
    for (int i = 0; i < 2; i++)
        if (all[i]->ran && (all[i]->sum.server.valid || all[i]->sum.client_cpu_us >= 0)) {
            printf("%s:\n", all[i]->sum.mode);
            report_server_split(stdout, &all[i]->sum);
        }
    if (mi.ran && ml.ran && mi.sum.p50_vs_live >= 0)
        printf("ratios: infer p50 / floor (ServerLive) p50 = %.2fx; infer throughput / floor "
               "throughput = %.2f\n",
               mi.sum.p50_vs_live, mi.sum.throughput_vs_live);
    if (infer && x.bytes >= 100000 && mi.sum.throughput > 0)
        printf("effective input rate: %.1f MB/s\n", mi.sum.throughput * (double)x.bytes / 1e6);
    fflush(stdout);
    rc = 0;
    for (int i = 0; i < 2; i++) {
        if (!all[i]->ran)
            continue;
        if (o.csv && !report_csv_append(o.csv, &all[i]->sum, o.url, err, sizeof err)) {
            fprintf(stderr, "hltinfer-bench: %s\n", err);
            rc = 2;
        }
        if (!clean(all[i]) && rc == 0)
            rc = 1;
    }
done:
    for (uint32_t i = 0; clients && i < o.clients; i++)
        hlt_client_destroy(clients[i]); /* cancels and waits for anything still in flight */
    free(clients);
    hlt_client_destroy(ctl);
    free(mi.res.lat_ns);
    free(ml.res.lat_ns);
    for (size_t i = 0; i < x.n; i++)
        free((char *)x.in[i].name);
    inputs_free(&x);
    return rc;
}
