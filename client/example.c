/* example: a trigger job tags its jets with the remote jet_tagger model through libhltinfer.
 *
 *   build/client/hltinfer-example [HOST:PORT[,HOST:PORT...]]
 *
 * One client per job (shared by all its threads), borrowed input buffers, a per-call deadline,
 * and fail-over to the second server if the first one is down. */
#include <hltinfer/client.h>

#include <stdio.h>
#include <string.h>

#define N_JETS 3
#define N_FEATURES 64
#define N_CLASSES 5

int main(int argc, char **argv)
{
    char err[1024];
    hlt_client_t *client;
    hlt_client_options_t opts = {.timeout_ms = 500}; /* an HLT path cannot wait longer */
    if (hlt_client_create(argc > 1 ? argv[1] : "127.0.0.1:8001", &opts, &client, err, sizeof err) !=
        HLT_OK) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }

    /* The job's own buffer: borrowed by the call, copied once into the request. */
    float features[N_JETS][N_FEATURES];
    for (int j = 0; j < N_JETS; j++)
        for (int f = 0; f < N_FEATURES; f++)
            features[j][f] = 0.01f * (float)((j + 1) * (f % 7) - 3);

    int64_t shape[2] = {N_JETS, N_FEATURES};
    hlt_input_t input = {"jet_features", HLT_TYPE_FP32, 2, shape, features, sizeof features};
    const char *wanted[] = {"probabilities"};
    hlt_infer_request_t req = {
        .model = "jet_tagger",
        .inputs = &input,
        .n_inputs = 1,
        .outputs = wanted,
        .n_outputs = 1,
    };

    hlt_infer_result_t *result;
    hlt_status st = hlt_client_infer(client, &req, &result, err, sizeof err);
    if (st != HLT_OK) {
        fprintf(stderr, "error: %s: %s\n", hlt_status_name(st), err);
        hlt_client_destroy(client);
        return 1;
    }
    /* The output is a view into the response; copy it out for aligned float access. */
    float probs[N_JETS][N_CLASSES];
    st =
        hlt_infer_result_copy_output(result, "probabilities", probs, sizeof probs, err, sizeof err);
    if (st == HLT_OK) {
        static const char *const classes[N_CLASSES] = {"b", "c", "uds", "g", "tau"};
        for (int j = 0; j < N_JETS; j++) {
            int best = 0;
            for (int k = 1; k < N_CLASSES; k++)
                if (probs[j][k] > probs[j][best])
                    best = k;
            printf("jet %d: %s (p = %.3f)\n", j, classes[best], probs[j][best]);
        }
    } else {
        fprintf(stderr, "error: %s: %s\n", hlt_status_name(st), err);
    }
    hlt_infer_result_free(result);
    hlt_client_destroy(client);
    return st == HLT_OK ? 0 : 1;
}
