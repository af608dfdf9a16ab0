/* Monotonic nanosecond clock used for every latency and deadline inside the server. */
#ifndef HLT_CLOCK_H
#define HLT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t hlt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
