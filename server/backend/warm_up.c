/* warm_up: see warm_up.h. */
#include "backend/warm_up.h"

#include "engine/shape.h"

#include <stdlib.h>

static void warm_up_at(const backend_i *b, backend_instance_t *inst, const engine_graph_t *g,
                       int64_t rows)
{
    const int32_t ni = (int32_t)engine_graph_num_inputs(g);
    const int32_t no = (int32_t)engine_graph_num_outputs(g);
    engine_shape_t in[ni + 1], out[no + 1];
    void *bufs[ni + no + 1];
    char e[8];
    for (int32_t i = 0; i < ni; i++) {
        const engine_tensor_desc_t *d = engine_graph_input(g, (size_t)i);
        if (d->rank < 1)
            return;
        in[i] = (engine_shape_t){.rank = d->rank};
        for (int32_t k = 0; k < d->rank; k++) {
            in[i].dims[k] = k == 0 && d->dims[0] < 0 ? rows : d->dims[k];
            if (in[i].dims[k] < 0)
                return;
        }
    }
    if (b->prepare(inst, in, out, e, sizeof e) != HLT_OK)
        return;
    int32_t nb = 0;
    bool ok = true;
    for (int32_t i = 0; i < ni + no && ok; i++) {
        const engine_shape_t *s = i < ni ? &in[i] : &out[i - ni];
        bufs[nb] = calloc((size_t)shape_numel(s) + 1, sizeof(int64_t));
        ok = bufs[nb++] != NULL;
    }
    if (ok)
        (void)b->execute(inst, (const void *const *)bufs, bufs + ni, NULL, e, sizeof e);
    for (int32_t i = 0; i < nb; i++)
        free(bufs[i]);
}

void backend_warm_up(const backend_i *b, backend_instance_t *inst, const engine_graph_t *g,
                     int64_t max_batch)
{
    warm_up_at(b, inst, g, 1);
    if (max_batch > 1)
        warm_up_at(b, inst, g, max_batch < 16384 ? max_batch : 16384);
}
