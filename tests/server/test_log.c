/* Tests for server/log.c's rate limiter (hlt_log_limit_take): the per-second burst, the count
 * of held-back lines handed to the next line that passes. */
#include "log.h"

#include <criterion/criterion.h>
#include <time.h>

static long now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long)ts.tv_sec;
}

Test(log, burst_then_counted)
{
    /* Retried when a second boundary falls inside the calls (then the window restarts). */
    for (int attempt = 0; attempt < 5; attempt++) {
        hlt_log_limiter_t l = HLT_LOG_LIMITER_INIT(5);
        const long t0 = now_s();
        int passed = 0;
        unsigned long reported = 0;
        for (int i = 0; i < 12; i++) {
            unsigned long d = 99;
            if (hlt_log_limit_take(&l, &d)) {
                passed++;
                reported += d;
            } else {
                cr_assert_eq(d, 99, "*dropped is only written when a line passes");
            }
        }
        cr_assert_eq((unsigned long)passed + reported + l.dropped, 12,
                     "every call is either a line or counted");
        if (now_s() != t0)
            continue;
        cr_assert_eq(passed, 5);
        cr_assert_eq(reported, 0);
        cr_assert_eq(l.dropped, 7);
        return;
    }
    cr_assert_fail("five second boundaries in a row");
}

Test(log, next_window_reports_what_was_held_back)
{
    hlt_log_limiter_t l = HLT_LOG_LIMITER_INIT(1);
    unsigned long d = 0;
    cr_assert(hlt_log_limit_take(&l, &d));
    l.used = 1;
    l.dropped = 3;   /* as if three lines were held back in this window */
    l.window_s -= 1; /* and the window is over */
    cr_assert(hlt_log_limit_take(&l, &d));
    cr_assert_eq(d, 3);
    cr_assert_eq(l.dropped, 0);
}

Test(log, zero_burst_passes_nothing)
{
    hlt_log_limiter_t l = HLT_LOG_LIMITER_INIT(0);
    unsigned long d = 0;
    for (int i = 0; i < 4; i++)
        cr_assert_not(hlt_log_limit_take(&l, &d));
    cr_assert_eq(l.dropped, 4);
}
