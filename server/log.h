/* Server logging: one line per event, key=value fields, level checked before the arguments
 * are evaluated. The level is set once at start-up (main) before any thread is created and
 * only read afterwards. */
#ifndef HLT_LOG_H
#define HLT_LOG_H

enum hlt_log_level { HLT_LOG_ERROR = 0, HLT_LOG_WARN = 1, HLT_LOG_INFO = 2, HLT_LOG_VERBOSE = 3 };

extern int hlt_log_level;

#define HLT_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) <= hlt_log_level)                                                              \
            hlt_log_write((level), __VA_ARGS__);                                                   \
    } while (0)

/* Writes one line to stderr with a timestamp and level tag. Thread-safe (one write(2)). */
void hlt_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Per-event lines that a client can cause in bulk (rejected requests): at most `burst` lines per
 * second pass; the others are counted. hlt_log_limit_take returns true when a line may be
 * written and then sets *dropped to the lines suppressed since the last one that passed (0 if
 * none), for the caller to report. Thread-safe; zero-initialised (HLT_LOG_LIMITER_INIT). */
typedef struct hlt_log_limiter {
    int burst;
    long window_s; /* CLOCK_MONOTONIC second of the current window */
    int used;      /* lines passed in the window */
    unsigned long dropped;
    int lock; /* spin lock: the error path only, a few instructions held */
} hlt_log_limiter_t;
#define HLT_LOG_LIMITER_INIT(n) {.burst = (n)}
int hlt_log_limit_take(hlt_log_limiter_t *l, unsigned long *dropped);

#endif
