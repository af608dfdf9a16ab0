/* cli: what the hltinfer command's modules share. hltinfer_cli.c parses the command line and
 * runs every subcommand except infer, which lives in cli_infer.c. Single-threaded. */
#ifndef HLT_CLI_H
#define HLT_CLI_H

#include "hltinfer/client.h"

#include <stdint.h>

#define CLI_MAX_ARGS 64

/* Exit codes: 0 success, 1 an RPC or file failed, 2 the command line is wrong. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef struct cli_kv {
    const char *name; /* points into argv (the '=' is replaced by a NUL) */
    const char *value;
} cli_kv_t;

typedef struct cli_opts {
    const char *url;
    double timeout_s;
    const char *version;
    /* infer */
    cli_kv_t inputs[CLI_MAX_ARGS];
    size_t n_inputs;
    cli_kv_t randoms[CLI_MAX_ARGS];
    size_t n_randoms;
    cli_kv_t shapes[CLI_MAX_ARGS];
    size_t n_shapes;
    const char *outputs[CLI_MAX_ARGS];
    size_t n_outputs;
    const char *output_dir;
    const char *id;
    uint64_t seed;
} cli_opts_t;

/* Prints "error: <STATUS_NAME>: <message>" on stderr; returns CLI_USAGE for
 * INVALID_ARGUMENT raised by the command line itself (usage != 0), CLI_FAILED otherwise. */
int cli_error(int usage, hlt_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The infer subcommand. Ownership: c, model and o borrowed. Returns an exit code. */
int cli_infer(hlt_client_t *c, const char *model, const cli_opts_t *o);

/* Parses "4x64", "4,64" or "4" into at most max dims; false on anything else. */
bool cli_parse_shape(const char *s, int64_t *dims, size_t max, size_t *rank);

#endif
