/* Tests for server/engine/plan.c: arena placement of intermediate buffers (engine_plan_place),
 * shared by the CPU executor and the OpenCL backend. */
#include "plan.h"

#include <criterion/criterion.h>
#include <stdlib.h>

static bool overlap_live(const engine_plan_item_t *a, const engine_plan_item_t *b)
{
    return !(a->end < b->start || b->end < a->start);
}

static bool overlap_bytes(const engine_plan_item_t *a, const engine_plan_item_t *b)
{
    return a->off < b->off + b->size && b->off < a->off + a->size;
}

/* Every pair live at the same time is disjoint in the arena, and everything fits in total. */
static void check(const engine_plan_item_t *it, int32_t n, size_t total)
{
    for (int32_t i = 0; i < n; i++) {
        cr_assert_leq(it[i].off + it[i].size, total, "item %d ends past the arena", it[i].owner);
        for (int32_t j = i + 1; j < n; j++)
            if (overlap_live(&it[i], &it[j]))
                cr_assert_not(overlap_bytes(&it[i], &it[j]), "items %d and %d share bytes",
                              it[i].owner, it[j].owner);
    }
}

Test(plan, a_chain_reuses_memory_of_dead_buffers)
{
    /* x0 -> x1 -> x2 -> x3: each buffer lives for two steps, so two slots suffice */
    engine_plan_item_t it[4];
    for (int32_t i = 0; i < 4; i++)
        it[i] = (engine_plan_item_t){.size = 1024, .start = i, .end = i + 1, .owner = i};
    int32_t by_off[4];
    const size_t total = engine_plan_place(it, 4, by_off);
    check(it, 4, total);
    cr_assert_eq(total, 2048);
    for (int32_t k = 1; k < 4; k++)
        cr_assert_leq(it[by_off[k - 1]].off, it[by_off[k]].off, "by_off is sorted by offset");
}

Test(plan, buffers_live_together_get_disjoint_bytes)
{
    engine_plan_item_t it[3] = {
        {.size = 64, .start = 0, .end = 5, .owner = 0},
        {.size = 256, .start = 2, .end = 3, .owner = 1},
        {.size = 128, .start = 3, .end = 9, .owner = 2},
    };
    int32_t by_off[3];
    const size_t total = engine_plan_place(it, 3, by_off);
    check(it, 3, total);
    cr_assert_eq(total, 64 + 256 + 128);
    cr_assert_eq(it[0].size, 256, "largest first");
    cr_assert_eq(it[0].off, 0);
}

Test(plan, a_small_buffer_fills_a_gap)
{
    /* A (0..1) and C (4..5) may share; B (0..5) overlaps both. The largest goes first at 0. */
    engine_plan_item_t it[3] = {
        {.size = 512, .start = 0, .end = 1, .owner = 0},
        {.size = 256, .start = 0, .end = 5, .owner = 1},
        {.size = 512, .start = 4, .end = 5, .owner = 2},
    };
    int32_t by_off[3];
    const size_t total = engine_plan_place(it, 3, by_off);
    check(it, 3, total);
    cr_assert_eq(total, 768, "A and C share their slot");
}

Test(plan, random_lifetimes_never_collide_and_the_result_is_deterministic)
{
    enum { N = 200 };
    engine_plan_item_t a[N], b[N];
    uint64_t s = 12345;
    for (int32_t i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const int32_t start = (int32_t)((s >> 33) % 50), len = (int32_t)((s >> 17) % 10);
        a[i] = (engine_plan_item_t){
            .size = 64 * (1 + (size_t)((s >> 40) % 32)), .start = start, .end = start + len,
            .owner = i};
    }
    for (int32_t i = 0; i < N; i++)
        b[N - 1 - i] = a[i]; /* same items, other order */
    int32_t by_off[N];
    const size_t ta = engine_plan_place(a, N, by_off);
    const size_t tb = engine_plan_place(b, N, by_off);
    check(a, N, ta);
    cr_assert_eq(ta, tb);
    for (int32_t i = 0; i < N; i++) {
        cr_assert_eq(a[i].owner, b[i].owner);
        cr_assert_eq(a[i].off, b[i].off);
    }
    size_t sum = 0;
    for (int32_t i = 0; i < N; i++)
        sum += a[i].size;
    cr_assert_lt(ta, sum, "lifetimes that never meet share memory");
}

Test(plan, nothing_to_place)
{
    int32_t by_off[1];
    cr_assert_eq(engine_plan_place(NULL, 0, by_off), 0);
}
