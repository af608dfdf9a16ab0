/* softmax.cl: softmax over the middle axis of X viewed as [outer, len, inner].
 *
 * The host derives outer/len/inner from the axis; for the opset < 13 form (attrs.softmax_2d)
 * everything from the axis on is one row (inner = 1). One work-item owns one (o, j) column of
 * len elements, stride inner: three passes (max, sum of exp, scale). HLT models put softmax
 * over a handful of classes, where a work-group reduction would only add barriers. */
__kernel void softmax_f32(__global const float *X, int xo, __global float *Y, int yo, int outer,
                          int len, int inner)
{
    const int j = get_global_id(0), o = get_global_id(1);
    if (j >= inner || o >= outer)
        return;
    __global const float *x = X + xo + o * len * inner + j;
    __global float *y = Y + yo + o * len * inner + j;
    float m = x[0];
    for (int k = 1; k < len; k++)
        m = fmax(m, x[k * inner]);
    float s = 0.0f;
    for (int k = 0; k < len; k++) {
        const float e = exp(x[k * inner] - m);
        y[k * inner] = e;
        s += e;
    }
    const float r = 1.0f / s;
    for (int k = 0; k < len; k++)
        y[k * inner] *= r;
}
