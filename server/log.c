/* Logging to stderr. Each line is formatted into a stack buffer and written with one write(2),
 * so concurrent threads never interleave within a line and the error path never allocates. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int hlt_log_level = HLT_LOG_INFO;

void hlt_log_write(int level, const char *fmt, ...)
{
    static const char tags[] = "EWIV";
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof line, "%c%02d%02d %02d:%02d:%02d.%06ld ",
                 tags[level < 0   ? 0
                      : level > 3 ? 3
                                  : level],
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len =
        (size_t)n +
        ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

int hlt_log_limit_take(hlt_log_limiter_t *l, unsigned long *dropped)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    while (__atomic_exchange_n(&l->lock, 1, __ATOMIC_ACQUIRE))
        ;
    if (ts.tv_sec != l->window_s) {
        l->window_s = ts.tv_sec;
        l->used = 0;
    }
    int ok = l->used < l->burst;
    if (ok) {
        l->used++;
        *dropped = l->dropped;
        l->dropped = 0;
    } else {
        l->dropped++;
    }
    __atomic_store_n(&l->lock, 0, __ATOMIC_RELEASE);
    return ok;
}
