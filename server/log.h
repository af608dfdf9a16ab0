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

#endif
