/* common.cl: helpers shared by every hltinfer OpenCL kernel (OpenCL C 1.2).
 *
 * All kernel files are concatenated into one program in this order: common.cl first, then the
 * others (see server/backend/opencl/meson.build). Conventions of every kernel:
 *  - a tensor is a buffer plus an element offset (`x, xo`): the host plans all intermediates in
 *    one arena buffer and all constants in another, and never creates sub-buffers (whose
 *    offsets would have to honour CL_DEVICE_MEM_BASE_ADDR_ALIGN);
 *  - index arithmetic is 32-bit `int` (the host refuses tensors over INT_MAX elements);
 *  - global sizes are rounded up to the work-group size, so every kernel guards its range;
 *  - shapes up to rank 8 travel as int8 vectors (dims, strides), unused trailing entries 1/0.
 * The host defines HLT_TS (GEMM tile edge) when building the program. */
#ifndef HLT_TS
#define HLT_TS 16
#endif

/* Component i (0..7) of an int8 without dynamic vector indexing (not allowed in OpenCL C). */
int v8_get(int8 v, int i)
{
    switch (i) {
    case 0: return v.s0;
    case 1: return v.s1;
    case 2: return v.s2;
    case 3: return v.s3;
    case 4: return v.s4;
    case 5: return v.s5;
    case 6: return v.s6;
    default: return v.s7;
    }
}

/* Offset of flat row-major index `idx` over dims[0..rank) in a tensor with strides st. */
int strided_offset(int idx, int rank, int8 dims, int8 st)
{
    int off = 0;
    for (int d = rank - 1; d >= 0; d--) {
        const int n = v8_get(dims, d);
        off += (idx % n) * v8_get(st, d);
        idx /= n;
    }
    return off;
}
