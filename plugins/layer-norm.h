/*
 * layer-norm.h: the row statistics of the layer-normalised cells' CPU kernels
 * (lstm-ln, gru-ln), Haste's layer norm: mean and population variance over
 * the row, 1/sqrt(var + 1e-5). Included by their NAME-kernels.c, so it is
 * compiled once per ISA with them.
 */
#ifndef RECUR_PLUGINS_LAYER_NORM_H
#define RECUR_PLUGINS_LAYER_NORM_H

#include <math.h>

#define RECUR_LN_EPS 1e-5f

/* The mean of v's n values into *mean; returns 1/σ = 1/sqrt(var + ε), population variance. */
static inline float recur_ln_stats(const float *v, int n, float *mean) {
    float m = 0.0f, var = 0.0f;
    for (int k = 0; k < n; k++) m += v[k];
    m /= (float)n;
    for (int k = 0; k < n; k++) var += (v[k] - m) * (v[k] - m);
    *mean = m;
    return 1.0f / sqrtf(var / (float)n + RECUR_LN_EPS);
}

/* dv of out = LN(v), given dout and out: rstd * (dout - mean(dout) - out * mean(dout * out)).
 * dv may be dout. */
static inline void recur_ln_back(float *dv, const float *dout, const float *out, float rstd, int n) {
    float m1 = 0.0f, m2 = 0.0f;
    for (int k = 0; k < n; k++) m1 += dout[k], m2 += dout[k] * out[k];
    m1 /= (float)n;
    m2 /= (float)n;
    for (int k = 0; k < n; k++) dv[k] = rstd * (dout[k] - m1 - out[k] * m2);
}

/* n copies of v: a row's 1/σ, saved as an H-wide block so that any H fits. */
static inline void recur_ln_fill(float *p, float v, int n) {
    for (int k = 0; k < n; k++) p[k] = v;
}

#endif
