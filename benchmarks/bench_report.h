/* bench_report: turns a load run into the figures hltinfer-bench reports (throughput,
 * latency percentiles, the server-side split from ModelStatistics deltas, CPU per call) and
 * writes them as a human table and as CSV rows. Called by bench.c only; not thread-safe. */
#ifndef HLT_BENCH_REPORT_H
#define HLT_BENCH_REPORT_H

#include "bench_load.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Per-request server figures from two ModelStatistics snapshots, as perf_analyzer computes
 * them: each duration's delta ns over its delta count, in µs, and the mean executed batch
 * size = delta inference_count / delta execution_count. */
typedef struct server_split {
    bool valid;
    double success_us, queue_us, compute_input_us, compute_infer_us, compute_output_us;
    double mean_batch;
    uint64_t d_requests, d_inferences, d_executions;
} server_split_t;

typedef struct summary {
    const char *label, *mode, *model; /* borrowed */
    uint32_t batch, concurrency, clients;
    uint64_t requests, errors;
    double duration_s;
    double throughput, rows_per_s;
    double p50_us, p90_us, p95_us, p99_us, mean_us, max_us;
    server_split_t server;
    double client_cpu_us; /* client CPU per successful call, µs; <0: unknown */
    double server_cpu_us; /* server process CPU per successful call, µs; <0: unknown */
    size_t request_bytes; /* input tensor bytes per request */
    double p50_vs_live, throughput_vs_live; /* <0: no floor measured */
} summary_t;

/* Fills the latency and throughput fields of s from r (sorts r->lat_ns in place). */
void report_summarize(load_result_t *r, uint32_t batch, summary_t *s);

/* Prints the human table: a header once, then one line per summary. */
void report_table_header(FILE *f);
void report_table_row(FILE *f, const summary_t *s);
void report_server_split(FILE *f, const summary_t *s);

/* Appends one CSV row to path, writing the header first when the file is new or empty.
 * Returns false (message in err) when the file cannot be written. Ownership: all borrowed. */
bool report_csv_append(const char *path, const summary_t *s, const char *url, char *err,
                       size_t errlen);

#endif
