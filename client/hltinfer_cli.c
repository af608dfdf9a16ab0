/* hltinfer: the command-line client of hltinfer (and of any KServe v2 / Triton gRPC server).
 *
 *   hltinfer [--url HOST:PORT[,HOST:PORT...]] [--timeout SECONDS] COMMAND [ARGS]
 *
 * Commands: health, models, metadata MODEL, config MODEL, infer MODEL, stats [MODEL]. Every
 * command goes through libhltinfer (so retries and fail-over apply); config additionally
 * unpacks the ModelConfig with protobuf-c and prints it as JSON (jansson). Errors end the
 * program with "error: <STATUS_NAME>: <message>" on stderr and a non-zero exit code. */
#include "cli.h"

#include "inference.pb-c.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "127.0.0.1:8001"

typedef enum {
    CMD_NONE,
    CMD_HEALTH,
    CMD_MODELS,
    CMD_METADATA,
    CMD_CONFIG,
    CMD_INFER,
    CMD_STATS
} cmd_t;

static const struct {
    const char *name;
    cmd_t cmd;
    const char *usage;
} commands[] = {
    {"health", CMD_HEALTH,
     "Usage: hltinfer [GLOBAL OPTIONS] health\n"
     "Asks whether the server is live and ready (ServerLive, ServerReady). Prints both; exits 0\n"
     "only when the server is live and ready.\n"},
    {"models", CMD_MODELS,
     "Usage: hltinfer [GLOBAL OPTIONS] models\n"
     "Lists the models of the server's repository (RepositoryIndex) with their version, state\n"
     "and, for a model that is not ready, the reason.\n"},
    {"metadata", CMD_METADATA,
     "Usage: hltinfer [GLOBAL OPTIONS] metadata MODEL [--model-version V]\n"
     "Prints a model's metadata (ModelMetadata): platform, versions, and each input and output\n"
     "with its datatype and shape (-1 = variable, a leading -1 is the batch dimension).\n"},
    {"config", CMD_CONFIG,
     "Usage: hltinfer [GLOBAL OPTIONS] config MODEL [--model-version V]\n"
     "Prints a model's configuration (ModelConfig) as JSON with Triton's field names.\n"},
    {"infer", CMD_INFER,
     "Usage: hltinfer [GLOBAL OPTIONS] infer MODEL [OPTIONS]\n"
     "Runs one inference (ModelInfer) and prints, per output, its datatype, shape, first values\n"
     "and min / max / mean.\n"
     "\n"
     "  --input NAME=PATH      input NAME from a file: PATH.npy (NumPy, dtype and shape from\n"
     "                         its header) or raw little-endian bytes (datatype from the model's\n"
     "                         metadata; shape from --shape, or the model's shape with its one\n"
     "                         variable dimension taken from the file size)\n"
     "  --random NAME=SHAPE    input NAME filled with random values, e.g. jet_features=4x64\n"
     "  --shape NAME=SHAPE     shape of a raw --input file, e.g. input=16x15\n"
     "  --output NAME          ask for this output only (repeat; default: all outputs)\n"
     "  --output-dir DIR       also write every output to DIR/NAME.npy\n"
     "  --model-version V      model version (default: the server's choice)\n"
     "  --id ID                request id (echoed by the server)\n"
     "  --seed N               seed of --random (default 1)\n"},
    {"stats", CMD_STATS,
     "Usage: hltinfer [GLOBAL OPTIONS] stats [MODEL] [--model-version V]\n"
     "Prints the inference statistics of one model, or of every model (ModelStatistics): counts\n"
     "and average queue / compute times per request and per batch size.\n"},
};

static const char global_usage[] =
    "Usage: hltinfer [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "Command-line client of hltinfer and other KServe v2 / Triton gRPC inference servers.\n"
    "\n"
    "Commands:\n"
    "  health             is the server live and ready\n"
    "  models             the models of the server's repository and their state\n"
    "  metadata MODEL     a model's inputs and outputs\n"
    "  config MODEL       a model's configuration, as JSON\n"
    "  infer MODEL        run one inference (see hltinfer infer --help)\n"
    "  stats [MODEL]      inference statistics\n"
    "\n"
    "Global options:\n"
    "  -u, --url HOST:PORT[,HOST:PORT...]  server, or a fail-over list (default " DEFAULT_URL ")\n"
    "  -t, --timeout SECONDS               deadline of each call (default 10)\n"
    "  -h, --help                          this text; COMMAND --help describes COMMAND\n"
    "\n"
    "Exit status: 0 on success, 1 when a call or a file fails, 2 for a wrong command line\n"
    "(also: an input name the model does not have). Errors are printed as\n"
    "'error: <STATUS_NAME>: <message>'.\n";

int cli_error(int usage, hlt_status st, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "error: %s: %s\n", hlt_status_name(st), msg);
    return usage ? CLI_USAGE : CLI_FAILED;
}

bool cli_parse_shape(const char *s, int64_t *dims, size_t max, size_t *rank)
{
    *rank = 0;
    if (!*s)
        return false;
    while (*s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || *rank == max)
            return false;
        dims[(*rank)++] = v;
        s = end;
        if (*s == 'x' || *s == 'X' || *s == ',') {
            s++;
            if (!*s)
                return false;
        } else if (*s) {
            return false;
        }
    }
    return true;
}

/* ---- simple commands ---- */

static void print_shape(FILE *f, size_t rank, const int64_t *shape)
{
    fputc('[', f);
    for (size_t d = 0; d < rank; d++)
        fprintf(f, "%s%" PRId64, d ? ", " : "", shape[d]);
    fputc(']', f);
}

static int cmd_health(hlt_client_t *c)
{
    char err[1024];
    bool live = false, ready = false;
    hlt_status st = hlt_client_server_live(c, &live, err, sizeof err);
    if (st)
        return cli_error(0, st, "%s", err);
    printf("live: %s\n", live ? "true" : "false");
    st = hlt_client_server_ready(c, &ready, err, sizeof err);
    if (st)
        return cli_error(0, st, "%s", err);
    printf("ready: %s\n", ready ? "true" : "false");
    if (!live || !ready)
        return cli_error(0, HLT_UNAVAILABLE, "the server is %s",
                         live ? "live but not ready" : "not live");
    return CLI_OK;
}

static int cmd_models(hlt_client_t *c)
{
    char err[1024];
    hlt_repository_index_t *idx;
    hlt_status st = hlt_client_repository_index(c, false, &idx, err, sizeof err);
    if (st)
        return cli_error(0, st, "%s", err);
    int w = 4;
    for (size_t i = 0; i < idx->n_models; i++)
        if ((int)strlen(idx->models[i].name) > w)
            w = (int)strlen(idx->models[i].name);
    printf("%-*s  %-7s  %-11s  %s\n", w, "NAME", "VERSION", "STATE", "REASON");
    for (size_t i = 0; i < idx->n_models; i++) {
        const hlt_model_index_entry_t *m = &idx->models[i];
        printf("%-*s  %-7s  %-11s  %s\n", w, m->name, m->version, m->state, m->reason);
    }
    hlt_repository_index_free(idx);
    return CLI_OK;
}

static void print_tensors(const char *title, size_t n, const hlt_tensor_metadata_t *t)
{
    printf("%s:\n", title);
    for (size_t i = 0; i < n; i++) {
        printf("  %s  %s  ", t[i].name, t[i].datatype_name);
        print_shape(stdout, t[i].rank, t[i].shape);
        putchar('\n');
    }
}

static int cmd_metadata(hlt_client_t *c, const char *model, const cli_opts_t *o)
{
    char err[1024];
    hlt_model_metadata_t *md;
    hlt_status st = hlt_client_model_metadata(c, model, o->version, &md, err, sizeof err);
    if (st)
        return cli_error(0, st, "%s", err);
    printf("model: %s\nplatform: %s\nversions:", md->name, md->platform);
    for (size_t i = 0; i < md->n_versions; i++)
        printf(" %s", md->versions[i]);
    putchar('\n');
    print_tensors("inputs", md->n_inputs, md->inputs);
    print_tensors("outputs", md->n_outputs, md->outputs);
    hlt_model_metadata_free(md);
    return CLI_OK;
}

/* ModelConfig -> JSON with Triton's field names (main fields; defaults left out as protobuf's
 * JSON mapping does, except max_batch_size which clients always read). */
static json_t *dims_json(size_t n, const int64_t *d)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(d[i]));
    return a;
}

static const char *type_name(int t)
{
    const char *n = hlt_dtype_config_name((hlt_dtype)t);
    return n ? n : "TYPE_INVALID";
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

static json_t *config_json(const Inference__ModelConfig *cfg)
{
    json_t *j = json_object();
    set_str(j, "name", cfg->name);
    set_str(j, "platform", cfg->platform);
    set_str(j, "backend", cfg->backend);
    set_str(j, "runtime", cfg->runtime);
    if (cfg->version_policy) {
        json_t *vp = json_object();
        const Inference__ModelVersionPolicy *p = cfg->version_policy;
        if (p->policy_choice_case == INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST) {
            json_t *l = json_object();
            json_object_set_new(l, "num_versions",
                                json_integer(p->latest ? p->latest->num_versions : 0));
            json_object_set_new(vp, "latest", l);
        } else if (p->policy_choice_case == INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL) {
            json_object_set_new(vp, "all", json_object());
        } else if (p->policy_choice_case ==
                       INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC &&
                   p->specific) {
            json_t *s = json_object();
            json_object_set_new(s, "versions",
                                dims_json(p->specific->n_versions, p->specific->versions));
            json_object_set_new(vp, "specific", s);
        }
        json_object_set_new(j, "version_policy", vp);
    }
    json_object_set_new(j, "max_batch_size", json_integer(cfg->max_batch_size));
    json_t *in = json_array();
    for (size_t i = 0; i < cfg->n_input; i++) {
        json_t *t = json_object();
        set_str(t, "name", cfg->input[i]->name);
        json_object_set_new(t, "data_type", json_string(type_name(cfg->input[i]->data_type)));
        json_object_set_new(t, "dims", dims_json(cfg->input[i]->n_dims, cfg->input[i]->dims));
        if (cfg->input[i]->optional)
            json_object_set_new(t, "optional", json_true());
        json_array_append_new(in, t);
    }
    json_object_set_new(j, "input", in);
    json_t *out = json_array();
    for (size_t i = 0; i < cfg->n_output; i++) {
        json_t *t = json_object();
        set_str(t, "name", cfg->output[i]->name);
        json_object_set_new(t, "data_type", json_string(type_name(cfg->output[i]->data_type)));
        json_object_set_new(t, "dims", dims_json(cfg->output[i]->n_dims, cfg->output[i]->dims));
        set_str(t, "label_filename", cfg->output[i]->label_filename);
        json_array_append_new(out, t);
    }
    json_object_set_new(j, "output", out);
    if (cfg->n_instance_group) {
        static const char *const kinds[] = {"KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"};
        json_t *g = json_array();
        for (size_t i = 0; i < cfg->n_instance_group; i++) {
            const Inference__ModelInstanceGroup *ig = cfg->instance_group[i];
            json_t *t = json_object();
            set_str(t, "name", ig->name);
            json_object_set_new(
                t, "kind", json_string((unsigned)ig->kind < 4 ? kinds[ig->kind] : "KIND_UNKNOWN"));
            json_object_set_new(t, "count", json_integer(ig->count));
            if (ig->n_gpus) {
                json_t *gpus = json_array();
                for (size_t k = 0; k < ig->n_gpus; k++)
                    json_array_append_new(gpus, json_integer(ig->gpus[k]));
                json_object_set_new(t, "gpus", gpus);
            }
            json_array_append_new(g, t);
        }
        json_object_set_new(j, "instance_group", g);
    }
    if (cfg->scheduling_choice_case ==
            INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING &&
        cfg->dynamic_batching) {
        const Inference__ModelDynamicBatching *db = cfg->dynamic_batching;
        json_t *d = json_object();
        if (db->n_preferred_batch_size) {
            json_t *p = json_array();
            for (size_t k = 0; k < db->n_preferred_batch_size; k++)
                json_array_append_new(p, json_integer(db->preferred_batch_size[k]));
            json_object_set_new(d, "preferred_batch_size", p);
        }
        json_object_set_new(d, "max_queue_delay_microseconds",
                            json_integer((json_int_t)db->max_queue_delay_microseconds));
        if (db->preserve_ordering)
            json_object_set_new(d, "preserve_ordering", json_true());
        if (db->priority_levels)
            json_object_set_new(d, "priority_levels",
                                json_integer((json_int_t)db->priority_levels));
        if (db->default_priority_level)
            json_object_set_new(d, "default_priority_level",
                                json_integer((json_int_t)db->default_priority_level));
        if (db->default_queue_policy) {
            const Inference__ModelQueuePolicy *q = db->default_queue_policy;
            json_t *qp = json_object();
            json_object_set_new(qp, "timeout_action",
                                json_string(q->timeout_action ? "DELAY" : "REJECT"));
            json_object_set_new(qp, "default_timeout_microseconds",
                                json_integer((json_int_t)q->default_timeout_microseconds));
            json_object_set_new(qp, "allow_timeout_override",
                                json_boolean(q->allow_timeout_override));
            json_object_set_new(qp, "max_queue_size", json_integer(q->max_queue_size));
            json_object_set_new(d, "default_queue_policy", qp);
        }
        json_object_set_new(j, "dynamic_batching", d);
    } else if (cfg->scheduling_choice_case ==
               INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_SEQUENCE_BATCHING) {
        json_object_set_new(j, "sequence_batching", json_object());
    } else if (cfg->scheduling_choice_case ==
               INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_ENSEMBLE_SCHEDULING) {
        json_object_set_new(j, "ensemble_scheduling", json_object());
    }
    set_str(j, "default_model_filename", cfg->default_model_filename);
    if (cfg->n_parameters) {
        json_t *p = json_object();
        for (size_t k = 0; k < cfg->n_parameters; k++) {
            json_t *v = json_object();
            const Inference__ModelParameter *mp = cfg->parameters[k]->value;
            json_object_set_new(v, "string_value",
                                json_string(mp && mp->string_value ? mp->string_value : ""));
            json_object_set_new(p, cfg->parameters[k]->key, v);
        }
        json_object_set_new(j, "parameters", p);
    }
    if (cfg->model_transaction_policy && cfg->model_transaction_policy->decoupled) {
        json_t *t = json_object();
        json_object_set_new(t, "decoupled", json_true());
        json_object_set_new(j, "model_transaction_policy", t);
    }
    if (cfg->response_cache && cfg->response_cache->enable) {
        json_t *t = json_object();
        json_object_set_new(t, "enable", json_true());
        json_object_set_new(j, "response_cache", t);
    }
    return j;
}

static int cmd_config(hlt_client_t *c, const char *model, const cli_opts_t *o)
{
    char err[1024];
    hlt_model_config_t *cfg;
    hlt_status st = hlt_client_model_config(c, model, o->version, &cfg, err, sizeof err);
    if (st)
        return cli_error(0, st, "%s", err);
    Inference__ModelConfig *m =
        inference__model_config__unpack(NULL, cfg->serialized_size, cfg->serialized);
    hlt_model_config_free(cfg);
    if (!m)
        return cli_error(0, HLT_INTERNAL, "the server's ModelConfig is not a valid message");
    json_t *j = config_json(m);
    inference__model_config__free_unpacked(m, NULL);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text)
        return cli_error(0, HLT_RESOURCE_EXHAUSTED, "out of memory");
    printf("%s\n", text);
    free(text);
    return CLI_OK;
}

static double avg_us(hlt_duration_stat_t d)
{
    return d.count ? (double)d.ns / (double)d.count / 1000.0 : 0.0;
}

static int cmd_stats(hlt_client_t *c, const char *model, const cli_opts_t *o)
{
    char err[1024];
    hlt_model_statistics_t *s;
    hlt_status st = hlt_client_model_statistics(c, model, o->version, &s, err, sizeof err);
    if (st)
        return cli_error(0, st, "%s", err);
    for (size_t i = 0; i < s->n_models; i++) {
        const hlt_model_stat_t *m = &s->models[i];
        printf("model: %s  version: %s\n", m->name, m->version);
        printf("  inference_count: %" PRIu64 "  execution_count: %" PRIu64
               "  last_inference_ms: %" PRIu64 "\n",
               m->inference_count, m->execution_count, m->last_inference);
        printf("  success: %" PRIu64 " (avg %.1f us)  fail: %" PRIu64 " (avg %.1f us)\n",
               m->success.count, avg_us(m->success), m->fail.count, avg_us(m->fail));
        printf("  avg per request: queue %.1f us, compute input %.1f us, infer %.1f us, "
               "output %.1f us\n",
               avg_us(m->queue), avg_us(m->compute_input), avg_us(m->compute_infer),
               avg_us(m->compute_output));
        for (size_t k = 0; k < m->n_batch_stats; k++) {
            const hlt_batch_stat_t *b = &m->batch_stats[k];
            printf("  batch %" PRIu64 ": %" PRIu64 " executions, avg compute input %.1f us, "
                   "infer %.1f us, output %.1f us\n",
                   b->batch_size, b->compute_infer.count, avg_us(b->compute_input),
                   avg_us(b->compute_infer), avg_us(b->compute_output));
        }
    }
    hlt_model_statistics_free(s);
    return CLI_OK;
}

/* ---- command line ---- */

static cmd_t find_command(const char *name, const char **usage)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name)) {
            *usage = commands[i].usage;
            return commands[i].cmd;
        }
    return CMD_NONE;
}

static bool split_kv(char *arg, cli_kv_t *kv)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return false;
    *eq = '\0';
    kv->name = arg;
    kv->value = eq + 1;
    return true;
}

enum {
    O_URL = 'u',
    O_TIMEOUT = 't',
    O_HELP = 'h',
    O_INPUT = 256,
    O_RANDOM,
    O_SHAPE,
    O_OUTPUT,
    O_OUTPUT_DIR,
    O_VERSION,
    O_ID,
    O_SEED
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, O_HELP},
        {"input", required_argument, NULL, O_INPUT},
        {"random", required_argument, NULL, O_RANDOM},
        {"shape", required_argument, NULL, O_SHAPE},
        {"output", required_argument, NULL, O_OUTPUT},
        {"output-dir", required_argument, NULL, O_OUTPUT_DIR},
        {"model-version", required_argument, NULL, O_VERSION},
        {"id", required_argument, NULL, O_ID},
        {"seed", required_argument, NULL, O_SEED},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    memset(&o, 0, sizeof o);
    o.url = DEFAULT_URL;
    o.seed = 1;
    bool help = false, infer_only = false, versioned = false;
    const char *infer_flag = NULL;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":u:t:h", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case O_URL:
            o.url = optarg;
            break;
        case O_TIMEOUT:
            o.timeout_s = strtod(optarg, &end);
            if (end == optarg || *end || !(o.timeout_s > 0) || o.timeout_s > 1e6)
                return cli_error(1, HLT_INVALID_ARGUMENT,
                                 "--timeout wants a positive number of seconds, not '%s'", optarg);
            break;
        case O_HELP:
            help = true;
            break;
        case O_INPUT:
        case O_RANDOM:
        case O_SHAPE: {
            cli_kv_t *arr = ch == O_INPUT ? o.inputs : ch == O_RANDOM ? o.randoms : o.shapes;
            size_t *n = ch == O_INPUT ? &o.n_inputs : ch == O_RANDOM ? &o.n_randoms : &o.n_shapes;
            const char *flag = ch == O_INPUT ? "--input" : ch == O_RANDOM ? "--random" : "--shape";
            if (*n == CLI_MAX_ARGS)
                return cli_error(1, HLT_INVALID_ARGUMENT, "too many %s options", flag);
            if (!split_kv(optarg, &arr[*n]))
                return cli_error(1, HLT_INVALID_ARGUMENT, "%s wants NAME=%s, not '%s'", flag,
                                 ch == O_INPUT ? "PATH" : "SHAPE", optarg);
            (*n)++;
            infer_only = true;
            infer_flag = flag;
            break;
        }
        case O_OUTPUT:
            if (o.n_outputs == CLI_MAX_ARGS)
                return cli_error(1, HLT_INVALID_ARGUMENT, "too many --output options");
            o.outputs[o.n_outputs++] = optarg;
            infer_only = true;
            infer_flag = "--output";
            break;
        case O_OUTPUT_DIR:
            o.output_dir = optarg;
            infer_only = true;
            infer_flag = "--output-dir";
            break;
        case O_ID:
            o.id = optarg;
            infer_only = true;
            infer_flag = "--id";
            break;
        case O_SEED:
            o.seed = strtoull(optarg, &end, 10);
            if (end == optarg || *end)
                return cli_error(1, HLT_INVALID_ARGUMENT, "--seed wants an integer, not '%s'",
                                 optarg);
            infer_only = true;
            infer_flag = "--seed";
            break;
        case O_VERSION:
            o.version = optarg;
            versioned = true;
            break;
        case ':':
            return cli_error(1, HLT_INVALID_ARGUMENT,
                             "option '%s' needs a value (see hltinfer --help)", argv[optind - 1]);
        default:
            return cli_error(1, HLT_INVALID_ARGUMENT, "unknown option '%s' (see hltinfer --help)",
                             argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        if (help) {
            fputs(global_usage, stdout);
            return CLI_OK;
        }
        fputs(global_usage, stderr);
        return cli_error(1, HLT_INVALID_ARGUMENT, "no command given");
    }
    const char *usage = NULL;
    const char *name = argv[optind];
    cmd_t cmd = find_command(name, &usage);
    if (cmd == CMD_NONE)
        return cli_error(1, HLT_INVALID_ARGUMENT, "unknown command '%s' (see hltinfer --help)",
                         name);
    if (help) {
        fputs(usage, stdout);
        fputs("\nGlobal options: --url HOST:PORT[,HOST:PORT...], --timeout SECONDS\n", stdout);
        return CLI_OK;
    }
    int nargs = argc - optind - 1;
    const char *model = nargs > 0 ? argv[optind + 1] : NULL;
    int want_min = 0, want_max = 0;
    if (cmd == CMD_METADATA || cmd == CMD_CONFIG || cmd == CMD_INFER)
        want_min = want_max = 1;
    else if (cmd == CMD_STATS)
        want_max = 1;
    if (nargs < want_min || nargs > want_max) {
        fputs(usage, stderr);
        return cli_error(1, HLT_INVALID_ARGUMENT, "'%s' takes %s", name,
                         want_max == 0   ? "no arguments"
                         : want_min == 1 ? "exactly one argument, the model name"
                                         : "at most one argument, a model name");
    }
    if (infer_only && cmd != CMD_INFER)
        return cli_error(1, HLT_INVALID_ARGUMENT, "%s only applies to 'infer'", infer_flag);
    if (versioned && (cmd == CMD_HEALTH || cmd == CMD_MODELS))
        return cli_error(1, HLT_INVALID_ARGUMENT, "--model-version does not apply to '%s'", name);

    char err[1024];
    hlt_client_options_t copts = {0};
    if (o.timeout_s > 0) {
        copts.timeout_ms = (int64_t)ceil(o.timeout_s * 1000.0);
    }
    hlt_client_t *c;
    hlt_status st = hlt_client_create(o.url, &copts, &c, err, sizeof err);
    if (st)
        return cli_error(1, st, "%s", err);
    int rc;
    switch (cmd) {
    case CMD_HEALTH:
        rc = cmd_health(c);
        break;
    case CMD_MODELS:
        rc = cmd_models(c);
        break;
    case CMD_METADATA:
        rc = cmd_metadata(c, model, &o);
        break;
    case CMD_CONFIG:
        rc = cmd_config(c, model, &o);
        break;
    case CMD_INFER:
        rc = cli_infer(c, model, &o);
        break;
    case CMD_STATS:
        rc = cmd_stats(c, model, &o);
        break;
    default:
        rc = CLI_USAGE;
        break;
    }
    hlt_client_destroy(c);
    return rc;
}
