/* Arena placement of intermediate buffers (see plan.h). */
#include "plan.h"

#include <stdlib.h>

static int cmp_size_desc(const void *pa, const void *pb)
{
    const engine_plan_item_t *a = pa, *b = pb;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    return a->owner - b->owner; /* deterministic */
}

size_t engine_plan_place(engine_plan_item_t *items, int32_t n, int32_t *by_off)
{
    if (n <= 0)
        return 0;
    qsort(items, (size_t)n, sizeof *items, cmp_size_desc);
    size_t total = 0;
    int32_t placed = 0;
    for (int32_t i = 0; i < n; i++) {
        engine_plan_item_t *it = &items[i];
        size_t cand = 0;
        for (int32_t k = 0; k < placed; k++) { /* placed items, by ascending offset */
            const engine_plan_item_t *p = &items[by_off[k]];
            if (p->end < it->start || it->end < p->start)
                continue; /* never live at the same time */
            if (cand + it->size <= p->off)
                break; /* fits in the gap before p; later items lie further up */
            if (p->off + p->size > cand)
                cand = p->off + p->size;
        }
        it->off = cand;
        int32_t k = placed++;
        while (k > 0 && items[by_off[k - 1]].off > cand) {
            by_off[k] = by_off[k - 1];
            k--;
        }
        by_off[k] = i;
        if (cand + it->size > total)
            total = cand + it->size;
    }
    return total;
}
