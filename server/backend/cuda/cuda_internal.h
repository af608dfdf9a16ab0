/* cuda_internal: the CUDA backend's instance state, shared by its modules.
 *
 *   cuda_backend.c  the backend_i table: probe, devices, instance create/destroy, host buffers
 *   cuda_plan.c     prepare: shapes (the engine's shape_infer_node), the batch-split decision,
 *                   per-chunk device buffer plans, buffer growth
 *   cuda_run.c      one chunk's nodes as kernel / cuBLAS launches, direct or as a CUDA graph
 *   cuda_exec.c     execute: the chunked upload / compute / download pipeline and its timing
 *
 * Data lives in three places: weights (every constant a node reads, and BatchNormalization's
 * folded coefficients, uploaded once at instance_create), one device arena per slot (graph inputs
 * and every computed tensor of one chunk; views alias their root's bytes) and two pinned host
 * staging buffers per slot (the chunk's inputs and outputs, filled and drained by the CPU). A slot
 * is a stream with its own cuBLAS handle, arena and staging; consecutive chunks go to consecutive
 * slots, so one chunk's upload overlaps the previous chunk's compute (see cuda_exec.c).
 *
 * An instance belongs to one thread at a time (backend.h: execute is never concurrent on one
 * instance). Nothing here is shared between instances. */
#ifndef HLT_CUDA_INTERNAL_H
#define HLT_CUDA_INTERNAL_H

#include "backend/backend.h"
#include "cuda_blas.h"
#include "fuse.h"
#include "graph.h"

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stdint.h>

#define CUDA_MAX_SLOTS 4
#define CUDA_ALIGN 256
#define CUDA_NO_SLOT SIZE_MAX

/* Where every tensor of one chunk size lives, and the graphs captured for it. */
typedef struct cuda_plan {
    bool valid;
    int64_t rows;           /* dim 0 of every graph input in this plan */
    engine_shape_t *key;    /* the input shapes it was built for (n_in) */
    engine_shape_t *shapes; /* per tensor */
    size_t *off;            /* per storage root: offset in a slot's arena, or CUDA_NO_SLOT */
    size_t *ws_off;         /* per node: scratch offset in the arena, or CUDA_NO_SLOT */
    size_t arena_bytes;
    size_t in_bytes, out_bytes; /* staging this plan needs (all inputs, all outputs) */
    uint32_t runs;              /* executions so far: a graph is captured from the second */
    bool graph_failed;          /* capture failed once: launch directly from now on */
    cudaGraphExec_t graph[CUDA_MAX_SLOTS];
} cuda_plan_t;

typedef struct cuda_slot {
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;
    uint8_t *arena;
    size_t arena_cap;
    uint8_t *stage_in, *stage_out; /* pinned */
    size_t stage_in_cap, stage_out_cap;
    cudaEvent_t done;        /* end of the slot's last chunk (no timing: cheapest to record) */
    cudaEvent_t ev[4];       /* upload start, upload end, compute end, download end */
    bool busy, timed;        /* a chunk is in flight on this slot */
    int64_t row0;            /* its first batch row */
    const cuda_plan_t *plan; /* and its plan */
} cuda_slot_t;

struct backend_instance {
    int device;
    const engine_graph_t *g;
    const cuda_blas_t *blas;
    char model[128];
    int32_t nt, nn, n_in, n_out;
    int32_t *root;    /* per tensor: the tensor whose bytes it uses (itself unless a view) */
    size_t *woff;     /* per tensor: offset in weights, or CUDA_NO_SLOT */
    size_t *bnoff;    /* per node: BatchNormalization (a, b) tables in weights, or CUDA_NO_SLOT */
    size_t *chainoff; /* per node: a chain head's blob (engine/fuse.h) in weights, or
                         CUDA_NO_SLOT */
    engine_fuse_t *fuse;  /* per node, with HLT_CUDA_CHAINS=1 only (else NULL) */
    int32_t *chain_owner; /* per node: the chain head whose kernel runs it, or -1; NULL when
                             chains are off */
    uint8_t *weights;
    /* tuning, read from the environment at create (cuda_backend.c) */
    int nslots;
    int max_chunks;     /* 1: never split a batch */
    int force_chunks;   /* > 0: split into this many chunks whenever the graph allows */
    size_t chunk_bytes; /* aim for at least this much I/O per chunk */
    bool use_graphs;
    cuda_slot_t slot[CUDA_MAX_SLOTS];
    /* prepare */
    bool prepared;
    engine_shape_t *full;     /* per tensor: shapes of the whole batch */
    engine_shape_t *last_in;  /* n_in */
    engine_shape_t *last_out; /* n_out */
    int8_t *batched;          /* per tensor scratch of the split analysis */
    int64_t batch;            /* rows of the whole batch */
    int64_t chunk_rows;       /* 0: run the batch as one chunk on plan main */
    size_t *in_row, *out_row; /* bytes per batch row of each input / output */
    cuda_plan_t main, tail;   /* chunk_rows rows (or the whole batch), and the last chunk */
};

/* Device address of tensor t in slot s under plan p. */
static inline void *cuda_dptr(const backend_instance_t *inst, const cuda_plan_t *p, int s,
                              int32_t t)
{
    const int32_t r = inst->root[t];
    if (inst->woff[r] != CUDA_NO_SLOT)
        return inst->weights + inst->woff[r];
    return inst->slot[s].arena + p->off[r];
}

/* printf into err; returns st. */
hlt_status cuda_errf(hlt_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* cuda_plan.c */
hlt_status cuda_prepare(backend_instance_t *inst, const engine_shape_t *in, engine_shape_t *out,
                        char *err, size_t errlen);
/* Frees a plan's arrays and graphs (not the plan struct). */
void cuda_plan_free(cuda_plan_t *p);
/* Destroys a plan's captured graphs (buffers they point into moved). */
void cuda_plan_drop_graphs(cuda_plan_t *p);

/* cuda_run.c: enqueues plan p's nodes on slot s's stream, replaying or capturing a CUDA graph
 * when the instance uses them. */
hlt_status cuda_run_plan(backend_instance_t *inst, cuda_plan_t *p, int s, char *err, size_t errlen);

/* cuda_exec.c */
hlt_status cuda_execute(backend_instance_t *inst, const void *const *in, void *const *out,
                        backend_timing_t *t, char *err, size_t errlen);

#endif
