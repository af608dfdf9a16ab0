/* bench_report: figures, table and CSV of hltinfer-bench (see bench_report.h). */
#include "bench_report.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v (n > 0), in µs. */
static double pct(const int64_t *v, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1e3;
}

void report_summarize(load_result_t *r, uint32_t batch, summary_t *s)
{
    s->requests = r->ok;
    s->errors = r->errors;
    s->duration_s = r->window_s;
    s->throughput = r->window_s > 0 ? (double)r->ok / r->window_s : 0;
    s->rows_per_s = s->throughput * batch;
    s->p50_us = s->p90_us = s->p95_us = s->p99_us = s->mean_us = s->max_us = 0;
    if (r->n_lat) {
        qsort(r->lat_ns, r->n_lat, sizeof *r->lat_ns, cmp_i64);
        double sum = 0;
        for (size_t i = 0; i < r->n_lat; i++)
            sum += (double)r->lat_ns[i];
        s->p50_us = pct(r->lat_ns, r->n_lat, 50);
        s->p90_us = pct(r->lat_ns, r->n_lat, 90);
        s->p95_us = pct(r->lat_ns, r->n_lat, 95);
        s->p99_us = pct(r->lat_ns, r->n_lat, 99);
        s->mean_us = sum / (double)r->n_lat / 1e3;
        s->max_us = (double)r->lat_ns[r->n_lat - 1] / 1e3;
    }
}

void report_table_header(FILE *f)
{
    fprintf(f, "%-6s %5s %6s %9s %7s %11s %12s %9s %9s %9s %9s %9s\n", "mode", "batch", "conc",
            "requests", "errors", "calls/s", "rows/s", "p50 us", "p90 us", "p95 us", "p99 us",
            "mean us");
}

void report_table_row(FILE *f, const summary_t *s)
{
    fprintf(f, "%-6s %5u %6u %9llu %7llu %11.0f %12.0f %9.1f %9.1f %9.1f %9.1f %9.1f\n", s->mode,
            s->batch, s->concurrency, (unsigned long long)s->requests,
            (unsigned long long)s->errors, s->throughput, s->rows_per_s, s->p50_us, s->p90_us,
            s->p95_us, s->p99_us, s->mean_us);
}

void report_server_split(FILE *f, const summary_t *s)
{
    if (s->server.valid)
        fprintf(f,
                "  server, per request (ModelStatistics deltas over the window, %llu requests): "
                "total %.1f us = queue %.1f + compute_input %.1f + compute_infer %.1f + "
                "compute_output %.1f (+ frontend); mean executed batch %.2f rows "
                "(%llu rows in %llu executions)\n",
                (unsigned long long)s->server.d_requests, s->server.success_us, s->server.queue_us,
                s->server.compute_input_us, s->server.compute_infer_us, s->server.compute_output_us,
                s->server.mean_batch, (unsigned long long)s->server.d_inferences,
                (unsigned long long)s->server.d_executions);
    if (s->client_cpu_us >= 0 || s->server_cpu_us >= 0) {
        fprintf(f, "  CPU per call:");
        if (s->client_cpu_us >= 0)
            fprintf(f, " client %.1f us", s->client_cpu_us);
        if (s->server_cpu_us >= 0)
            fprintf(f, " server %.1f us", s->server_cpu_us);
        fprintf(f, "\n");
    }
}

static const char *const columns =
    "label,mode,model,batch,concurrency,clients,requests,errors,duration_s,throughput,"
    "rows_per_s,p50_us,p90_us,p95_us,p99_us,mean_us,max_us,server_queue_us,"
    "server_compute_input_us,server_compute_infer_us,server_compute_output_us,mean_batch,"
    "server_total_us,client_cpu_us,server_cpu_us,request_bytes,p50_vs_live,"
    "throughput_vs_live,url\n";

/* A CSV field: quoted when it holds a comma, quote or newline. */
static void csv_str(FILE *f, const char *s)
{
    if (!s)
        s = "";
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, bool have, double v, int prec)
{
    if (have)
        fprintf(f, "%.*f", prec, v);
}

bool report_csv_append(const char *path, const summary_t *s, const char *url, char *err,
                       size_t errlen)
{
    struct stat st;
    bool fresh = stat(path, &st) != 0 || st.st_size == 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        snprintf(err, errlen, "cannot open %s for appending", path);
        return false;
    }
    if (fresh)
        fputs(columns, f);
    bool sv = s->server.valid;
    csv_str(f, s->label);
    fputc(',', f);
    csv_str(f, s->mode);
    fputc(',', f);
    csv_str(f, s->model);
    fprintf(f, ",%u,%u,%u,%llu,%llu,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,", s->batch,
            s->concurrency, s->clients, (unsigned long long)s->requests,
            (unsigned long long)s->errors, s->duration_s, s->throughput, s->rows_per_s, s->p50_us,
            s->p90_us, s->p95_us, s->p99_us, s->mean_us, s->max_us);
    csv_num(f, sv, s->server.queue_us, 2);
    fputc(',', f);
    csv_num(f, sv, s->server.compute_input_us, 2);
    fputc(',', f);
    csv_num(f, sv, s->server.compute_infer_us, 2);
    fputc(',', f);
    csv_num(f, sv, s->server.compute_output_us, 2);
    fputc(',', f);
    csv_num(f, sv, s->server.mean_batch, 2);
    fputc(',', f);
    csv_num(f, sv, s->server.success_us, 2);
    fputc(',', f);
    csv_num(f, s->client_cpu_us >= 0, s->client_cpu_us, 2);
    fputc(',', f);
    csv_num(f, s->server_cpu_us >= 0, s->server_cpu_us, 2);
    fprintf(f, ",%zu,", s->request_bytes);
    csv_num(f, s->p50_vs_live >= 0, s->p50_vs_live, 3);
    fputc(',', f);
    csv_num(f, s->throughput_vs_live >= 0, s->throughput_vs_live, 3);
    fputc(',', f);
    csv_str(f, url);
    fputc('\n', f);
    bool ok = !ferror(f);
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        snprintf(err, errlen, "error writing %s", path);
    return ok;
}
