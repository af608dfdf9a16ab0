/* batchnorm.cl: inference BatchNormalization as a per-channel affine map.
 *
 * When scale, B, mean and var are constants (every exporter's case) the host folds them once at
 * instance creation, in double precision like the CPU backend, and only channel_affine_f32
 * runs. bn_coeffs_f32 folds them on the device when they are computed at run time; ab holds
 * a[0..C) then b[0..C). */
__kernel void bn_coeffs_f32(__global const float *S, int so, __global const float *Bi, int bo,
                            __global const float *Me, int mo, __global const float *V, int vo,
                            float eps, int channels, __global float *AB, int abo)
{
    const int c = get_global_id(0);
    if (c >= channels)
        return;
    const float a = S[so + c] / sqrt(V[vo + c] + eps);
    AB[abo + c] = a;
    AB[abo + channels + c] = Bi[bo + c] - Me[mo + c] * a;
}

/* Y[o, c, i] = X[o, c, i] * a[c] + b[c]; dimension 0 walks c*inner + i, dimension 1 o. */
__kernel void channel_affine_f32(__global const float *X, int xo, __global float *Y, int yo,
                                 __global const float *AB, int abo, int outer, int channels,
                                 int inner)
{
    const int k = get_global_id(0), o = get_global_id(1), row = channels * inner;
    if (k >= row || o >= outer)
        return;
    const int c = inner == 1 ? k : k / inner;
    const int idx = o * row + k;
    Y[yo + idx] = X[xo + idx] * AB[abo + c] + AB[abo + channels + c];
}
