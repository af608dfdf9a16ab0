/* hltinfer-server: command line, process-wide settings, start-up and graceful shutdown.
 *
 * Order matters (reference/grpc-core.md): allocator thresholds and the signal mask are set
 * before grpc_init creates threads; SIGINT/SIGTERM are then collected by sigwait on the main
 * thread, which stops the frontend (in-flight calls finish within --exit-timeout-secs) and
 * the repository (queued requests finish) before grpc_shutdown. */
#include "backend/backend.h"
#include "engine/engine.h"
#include "frontend.h"
#include "http.h"
#include "log.h"
#include "repository.h"

#include <cblas.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef HLT_DEFAULT_MODEL_REPOSITORY
#define HLT_DEFAULT_MODEL_REPOSITORY "models"
#endif

typedef struct options {
    const char *model_repository;
    const char *address;
    int grpc_port;
    int log_verbose;
    const char *control_mode; /* all | explicit | none */
    const char *load_models[64];
    int n_load_models;
    bool strict_readiness;
    int exit_timeout_secs;
    int default_max_batch;
    int infer_slots;
    int max_queue_size;
    long max_queued_mb;
    int direct_dispatch_us;
    int http_port, metrics_port;
    bool allow_http, allow_metrics;
    int admission_queue_us, admission_window_ms;
} options_t;

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: hltinfer-server [OPTIONS]\n"
        "Serves the models of a Triton-layout model repository over the KServe v2 / Triton\n"
        "gRPC protocol (tritonclient, perf_analyzer and CMSSW SonicTriton work unchanged).\n"
        "\n"
        "  --model-repository=PATH      model repository (default: %s)\n"
        "  --grpc-port=PORT             gRPC port (default 8001; 0 picks a free port)\n"
        "  --grpc-address=ADDR          address to listen on (default 0.0.0.0)\n"
        "  --log-verbose=N              0 = info, refused requests at most 20 lines/s\n"
        "                               (default); 1 = every refused request\n"
        "  --model-control-mode=MODE    all: load every model at start, load/unload RPCs\n"
        "                               allowed (default); explicit: load only --load-model\n"
        "                               models at start, RPCs allowed; none: load every model,\n"
        "                               RPCs refused\n"
        "  --load-model=NAME            with explicit mode: model to load at start (repeat;\n"
        "                               '*' = all)\n"
        "  --strict-readiness=BOOL      ServerReady only when every model loaded (default true)\n"
        "  --exit-timeout-secs=N        grace period for in-flight requests on SIGTERM (30)\n"
        "  --default-max-batch-size=N   max_batch_size given to batching ONNX models whose\n"
        "                               config leaves it out (default 1024)\n"
        "  --grpc-infer-slots=N         pre-posted ModelInfer call slots (default 64)\n"
        "  --max-queue-size=N           requests queued per model version before UNAVAILABLE\n"
        "                               (default 1024)\n"
        "  --max-queued-mb=N            request bytes queued per model version before\n"
        "                               UNAVAILABLE, in MiB (default 1024)\n"
        "  --direct-dispatch-us=N       run a request that forms a batch of its own at once on\n"
        "                               the gRPC thread when the model's batches take at most\n"
        "                               N us on the CPU (default 20; 0 = always hand over to\n"
        "                               the instance workers)\n"
        "  --http-port=PORT             HTTP health endpoints /v2/health/{live,ready} and\n"
        "                               /v2/models/NAME/ready (default 8000; 0 = free port)\n"
        "  --metrics-port=PORT          Prometheus /metrics (default 8002; 0 = free port)\n"
        "  --allow-http=BOOL            serve the HTTP port (default true)\n"
        "  --allow-metrics=BOOL         serve the metrics port (default true)\n"
        "  --admission-queue-us=N       refuse RepositoryIndex (UNAVAILABLE) while the average\n"
        "                               queue time per request exceeds N us, so new jobs go\n"
        "                               elsewhere (SuperSONIC-style admission; 0 = off)\n"
        "  --admission-window-ms=N      window over which that average is taken (1000)\n"
        "  --backend-config=BACKEND,SETTING=VALUE\n"
        "                               restrict a backend (repeat): devices=I[,J...] lets\n"
        "                               instances use only these device indices (the\n"
        "                               backend's own numbering); devices=none or\n"
        "                               enabled=false disables the backend\n"
        "  -h, --help                   this text\n"
        "\n"
        "Backends in this build:",
        HLT_DEFAULT_MODEL_REPOSITORY);
    for (const char *const *n = backend_names(); *n; n++)
        fprintf(f, " %s", *n);
    fprintf(f, "\n");
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(s, "false") || !strcmp(s, "0")) {
        *out = false;
        return true;
    }
    return false;
}

/* Returns 0 to run, 1 after --help, 2 on a bad flag. */
static int parse_args(int argc, char **argv, options_t *o)
{
    enum {
        O_REPO = 256,
        O_PORT,
        O_ADDR,
        O_VERBOSE,
        O_MODE,
        O_LOAD,
        O_STRICT,
        O_EXIT,
        O_DMB,
        O_SLOTS,
        O_QUEUE,
        O_QMB,
        O_DIRECT,
        O_HTTP,
        O_METRICS,
        O_AHTTP,
        O_AMETRICS,
        O_ADM,
        O_ADMWIN,
        O_BACKEND_CONFIG
    };
    static const struct option longopts[] = {
        {"model-repository", required_argument, NULL, O_REPO},
        {"grpc-port", required_argument, NULL, O_PORT},
        {"grpc-address", required_argument, NULL, O_ADDR},
        {"log-verbose", required_argument, NULL, O_VERBOSE},
        {"model-control-mode", required_argument, NULL, O_MODE},
        {"load-model", required_argument, NULL, O_LOAD},
        {"strict-readiness", required_argument, NULL, O_STRICT},
        {"exit-timeout-secs", required_argument, NULL, O_EXIT},
        {"default-max-batch-size", required_argument, NULL, O_DMB},
        {"grpc-infer-slots", required_argument, NULL, O_SLOTS},
        {"max-queue-size", required_argument, NULL, O_QUEUE},
        {"max-queued-mb", required_argument, NULL, O_QMB},
        {"direct-dispatch-us", required_argument, NULL, O_DIRECT},
        {"http-port", required_argument, NULL, O_HTTP},
        {"metrics-port", required_argument, NULL, O_METRICS},
        {"allow-http", required_argument, NULL, O_AHTTP},
        {"allow-metrics", required_argument, NULL, O_AMETRICS},
        {"admission-queue-us", required_argument, NULL, O_ADM},
        {"admission-window-ms", required_argument, NULL, O_ADMWIN},
        {"backend-config", required_argument, NULL, O_BACKEND_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case O_REPO:
            o->model_repository = optarg;
            break;
        case O_PORT:
            ok = parse_int(optarg, 0, 65535, &o->grpc_port);
            break;
        case O_ADDR:
            o->address = optarg;
            break;
        case O_VERBOSE:
            ok = parse_int(optarg, 0, 10, &o->log_verbose);
            break;
        case O_MODE:
            o->control_mode = optarg;
            ok = !strcmp(optarg, "all") || !strcmp(optarg, "explicit") || !strcmp(optarg, "none");
            break;
        case O_LOAD:
            ok = o->n_load_models < 64;
            if (ok)
                o->load_models[o->n_load_models++] = optarg;
            break;
        case O_STRICT:
            ok = parse_bool(optarg, &o->strict_readiness);
            break;
        case O_EXIT:
            ok = parse_int(optarg, 0, 3600, &o->exit_timeout_secs);
            break;
        case O_DMB:
            ok = parse_int(optarg, 1, INT_MAX, &o->default_max_batch);
            break;
        case O_SLOTS:
            ok = parse_int(optarg, 1, 100000, &o->infer_slots);
            break;
        case O_QUEUE:
            ok = parse_int(optarg, 1, 10000000, &o->max_queue_size);
            break;
        case O_QMB: {
            int mb = 0;
            ok = parse_int(optarg, 1, 1 << 20, &mb);
            o->max_queued_mb = mb;
            break;
        }
        case O_DIRECT:
            ok = parse_int(optarg, 0, 1000000, &o->direct_dispatch_us);
            break;
        case O_HTTP:
            ok = parse_int(optarg, 0, 65535, &o->http_port);
            break;
        case O_METRICS:
            ok = parse_int(optarg, 0, 65535, &o->metrics_port);
            break;
        case O_AHTTP:
            ok = parse_bool(optarg, &o->allow_http);
            break;
        case O_AMETRICS:
            ok = parse_bool(optarg, &o->allow_metrics);
            break;
        case O_ADM:
            ok = parse_int(optarg, 0, INT_MAX, &o->admission_queue_us);
            break;
        case O_ADMWIN:
            ok = parse_int(optarg, 1, 3600000, &o->admission_window_ms);
            break;
        case O_BACKEND_CONFIG: {
            /* applied at once: nothing has probed a backend yet */
            char err[512];
            if (backend_configure(optarg, err, sizeof err)) {
                fprintf(stderr, "hltinfer-server: %s\n", err);
                return 2;
            }
            if (err[0]) /* accepted with a warning (a backend this build lacks) */
                fprintf(stderr, "hltinfer-server: warning: %s\n", err);
            break;
        }
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "hltinfer-server: invalid value '%s' for --%s\n", optarg,
                    longopts[c - O_REPO].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hltinfer-server: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* OpenBLAS 0.3.21 picks its kernels once, when the library loads, and does not recognise newer
 * AVX-512 CPUs (Zen 5): it falls back to AVX2 kernels at half the GEMM rate. The choice can only
 * be forced through OPENBLAS_CORETYPE before the library loads, so if the CPU has AVX-512 and
 * OpenBLAS chose a non-AVX-512 core, re-execute once with the variable set. */
static void ensure_blas_avx512(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("HLT_NO_BLAS_REEXEC"))
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f"))
        return;
    const char *core = openblas_get_corename();
    if (core && (strcasestr(core, "skylakex") || strcasestr(core, "cooperlake") ||
                 strcasestr(core, "sapphire")))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: run on with the slower kernels */
}

/* Threads that exist before main blocks the signals (OpenBLAS starts its pool when the library
 * loads) could take SIGTERM's default action and kill the process. Such a thread runs this
 * handler instead, which forwards the signal to the main thread, where it stays pending for
 * sigwait. */
static pthread_t main_thread;

static void forward_signal(int sig)
{
    pthread_kill(main_thread, sig);
}

static bool ready_cb(void *arg)
{
    return frontend_server_ready(arg);
}

int main(int argc, char **argv)
{
    options_t o = {
        .model_repository = HLT_DEFAULT_MODEL_REPOSITORY,
        .address = "0.0.0.0",
        .grpc_port = 8001,
        .control_mode = "all",
        .strict_readiness = true,
        .exit_timeout_secs = 30,
        .default_max_batch = MODEL_CONFIG_DEFAULT_MAX_BATCH,
        .infer_slots = 64,
        .max_queue_size = 1024,
        .max_queued_mb = 1024,
        .direct_dispatch_us = 20,
        .http_port = 8000,
        .metrics_port = 8002,
        .allow_http = true,
        .allow_metrics = true,
        .admission_window_ms = 1000,
    };
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    ensure_blas_avx512(argv);
    hlt_log_level = o.log_verbose > 0 ? HLT_LOG_VERBOSE : HLT_LOG_INFO;

    /* glibc trimming and unmapping large chunks costs TLB shootdowns on every big message. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    /* Thousands of client connections: raise the descriptor limit to what we may. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* One BLAS thread per instance worker: the server sizes its own threads. */
    openblas_set_num_threads(1);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    main_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    grpc_init();
    repo_options_t ropts = {
        .root = o.model_repository,
        .load = {.default_max_batch = o.default_max_batch,
                 .queue_capacity = (size_t)o.max_queue_size,
                 .max_queued_bytes = (size_t)o.max_queued_mb << 20,
                 .direct_dispatch_ns = (int64_t)o.direct_dispatch_us * 1000},
    };
    repo_t *repo = repo_create(&ropts);
    if (!repo) {
        fprintf(stderr, "hltinfer-server: out of memory\n");
        return 1;
    }
    HLT_LOG(HLT_LOG_INFO, "event=starting model_repository=%s blas_core=%s control_mode=%s",
            o.model_repository, openblas_get_corename(), o.control_mode);
    char backends[1024];
    backend_describe_all(backends, sizeof backends);
    HLT_LOG(HLT_LOG_INFO, "event=backends %s", backends);
    bool explicit_mode = !strcmp(o.control_mode, "explicit");
    bool load_all = !explicit_mode;
    for (int i = 0; i < o.n_load_models; i++)
        load_all = load_all || !strcmp(o.load_models[i], "*");
    if (load_all) {
        repo_load_all(repo);
    } else {
        for (int i = 0; i < o.n_load_models; i++) {
            char err[1024];
            repo_load(repo, o.load_models[i], err, sizeof err);
        }
    }
    frontend_options_t fopts = {
        .address = o.address,
        .port = o.grpc_port,
        .allow_model_control = strcmp(o.control_mode, "none") != 0,
        .strict_readiness = o.strict_readiness,
        .slots_per_method = o.infer_slots,
        .admission_queue_us = o.admission_queue_us,
        .admission_window_ms = o.admission_window_ms,
    };
    frontend_t *fe = NULL;
    int port = 0;
    char err[512];
    if (frontend_start(&fopts, repo, &fe, &port, err, sizeof err)) {
        HLT_LOG(HLT_LOG_ERROR, "event=start_failed reason=\"%s\"", err);
        repo_destroy(repo);
        grpc_shutdown();
        return 1;
    }
    http_options_t hopts = {
        .address = o.address,
        .http_port = o.allow_http ? o.http_port : -1,
        .metrics_port = o.allow_metrics ? o.metrics_port : -1,
        .server_ready = ready_cb,
        .ready_arg = fe,
    };
    http_server_t *http = NULL;
    int http_port = -1, metrics_port = -1;
    if (http_start(&hopts, repo, &http, &http_port, &metrics_port, err, sizeof err)) {
        HLT_LOG(HLT_LOG_ERROR, "event=start_failed reason=\"%s\"", err);
        frontend_stop(fe, 0);
        repo_destroy(repo);
        grpc_shutdown();
        return 1;
    }
    HLT_LOG(HLT_LOG_INFO,
            "event=server_started grpc_address=%s grpc_port=%d http_port=%d metrics_port=%d",
            o.address, port, http_port, metrics_port);

    int sig = 0;
    sigwait(&sigs, &sig);
    HLT_LOG(HLT_LOG_INFO, "event=shutdown_requested signal=%s grace_s=%d",
            sig == SIGINT ? "SIGINT" : "SIGTERM", o.exit_timeout_secs);
    frontend_stop(fe, (int64_t)o.exit_timeout_secs * 1000);
    http_stop(http);
    repo_destroy(repo);
    grpc_shutdown();
    HLT_LOG(HLT_LOG_INFO, "event=stopped");
    return 0;
}
