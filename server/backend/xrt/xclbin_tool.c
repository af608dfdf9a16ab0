/* hltinfer-make-xclbin: writes a metadata-only xclbin (no bitstream) for XRT's noop emulation,
 * so the XRT backend can be tested end to end without an FPGA. A test helper; not installed.
 *
 *   hltinfer-make-xclbin OUT.xclbin --kernel NAME [--cus N | --cus a,b,c]
 *                        [--args input:buffer,output:buffer,rows:scalar] [--banks N] */
#include "xclbin_writer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: hltinfer-make-xclbin OUT.xclbin --kernel NAME [--cus N|a,b,...] "
                    "[--args name:buffer|scalar,...] [--banks N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *kernel = NULL;
    char args_s[1024] = "input:buffer,output:buffer,rows:scalar", cus_s[4096] = "1";
    int banks = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--kernel") && has_val)
            kernel = argv[++i];
        else if (!strcmp(a, "--cus") && has_val)
            snprintf(cus_s, sizeof cus_s, "%s", argv[++i]);
        else if (!strcmp(a, "--args") && has_val)
            snprintf(args_s, sizeof args_s, "%s", argv[++i]);
        else if (!strcmp(a, "--banks") && has_val)
            banks = atoi(argv[++i]);
        else if (a[0] != '-' && !out)
            out = a;
        else
            return usage();
    }
    if (!out || !kernel)
        return usage();
    xclbin_arg_t args[XCLBIN_MAX_ARGS];
    int n_args = xclbin_parse_args(args_s, args, XCLBIN_MAX_ARGS);
    if (n_args < 1) {
        fprintf(stderr, "hltinfer-make-xclbin: bad --args\n");
        return 2;
    }
    const char *names[XCLBIN_MAX_CUS];
    int n_cus = 0;
    char *end;
    long n = strtol(cus_s, &end, 10);
    if (*end == '\0' && n > 0) {
        n_cus = (int)n;
    } else {
        char *save = NULL;
        for (char *t = strtok_r(cus_s, ",", &save); t && n_cus < XCLBIN_MAX_CUS;
             t = strtok_r(NULL, ",", &save))
            names[n_cus++] = t;
    }
    xclbin_spec_t spec = {kernel, n_cus, n == 0 || *end ? names : NULL, n_args, args, banks};
    char err[256];
    if (xclbin_write(out, &spec, err, sizeof err)) {
        fprintf(stderr, "hltinfer-make-xclbin: %s\n", err);
        return 1;
    }
    return 0;
}
