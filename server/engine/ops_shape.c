/* ops_shape: run functions of the data-movement ops.
 *
 * Flatten, Reshape, Squeeze, Unsqueeze and Identity only relabel a buffer: the execution plan
 * (exec.c) makes their output share the input's bytes and never calls them; ops_run_copy is
 * what constant folding, or any plan that gives the output its own buffer, uses. Transpose and
 * Concat work on any element size (FP32 and INT64 shape tensors alike). */
#include <string.h>

#include "cpu_layout.h"
#include "ops.h"
#include "shape.h"

static size_t esize_of(const op_run_t *r)
{
    return hlt_dtype_size(r->g->tensors[r->n->out[0]].dtype);
}

void ops_run_copy(const op_run_t *r)
{
    const void *x = r->data[r->n->in[0]];
    void *y = r->data[r->n->out[0]];
    const size_t bytes = (size_t)shape_numel(&r->shapes[r->n->out[0]]) * esize_of(r);
    if (x != y && bytes)
        memcpy(y, x, bytes);
}

void ops_run_transpose(const op_run_t *r)
{
    const engine_shape_t *xs = &r->shapes[r->n->in[0]];
    int64_t perm[ENGINE_MAX_RANK];
    for (int32_t i = 0; i < xs->rank; i++)
        perm[i] = r->n->attrs.has_ints ? r->n->attrs.ints[i] : xs->rank - 1 - i;
    cpu_transpose(esize_of(r), r->data[r->n->in[0]], xs->rank, xs->dims, perm,
                  r->data[r->n->out[0]]);
}

void ops_run_concat(const op_run_t *r)
{
    const engine_shape_t *ys = &r->shapes[r->n->out[0]];
    const int64_t axis = r->n->attrs.axis < 0 ? r->n->attrs.axis + ys->rank : r->n->attrs.axis;
    const size_t es = esize_of(r);
    int64_t outer = 1, inner = 1;
    for (int32_t i = 0; i < ys->rank; i++) {
        if (i < axis)
            outer *= ys->dims[i];
        else if (i > axis)
            inner *= ys->dims[i];
    }
    char *y = r->data[r->n->out[0]];
    for (int64_t o = 0; o < outer; o++)
        for (int32_t j = 0; j < r->n->n_in; j++) {
            const int32_t t = r->n->in[j];
            const size_t chunk = (size_t)(r->shapes[t].dims[axis] * inner) * es;
            if (chunk) {
                memcpy(y, (const char *)r->data[t] + (size_t)o * chunk, chunk);
                y += chunk;
            }
        }
}
