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

/* Sums over a row in 16 independent lanes, then added pairwise: a float sum
 * the compiler can vectorise (one accumulator would be a chain of dependent
 * adds), in the same order for every ISA's build. */
#define RECUR_LN_LANES 16
static inline float recur_ln_lanes(float acc[RECUR_LN_LANES]) {
    for (int w = RECUR_LN_LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

/* The mean of v's n values into *mean; returns 1/σ = 1/sqrt(var + ε), population variance. */
static inline float recur_ln_stats(const float *v, int n, float *mean) {
    float s[RECUR_LN_LANES] = {0}, q[RECUR_LN_LANES] = {0};
    int k = 0;
    for (; k + RECUR_LN_LANES <= n; k += RECUR_LN_LANES)
        for (int l = 0; l < RECUR_LN_LANES; l++) s[l] += v[k + l];
    for (; k < n; k++) s[k % RECUR_LN_LANES] += v[k];
    const float m = recur_ln_lanes(s) / (float)n;
    for (k = 0; k + RECUR_LN_LANES <= n; k += RECUR_LN_LANES)
        for (int l = 0; l < RECUR_LN_LANES; l++) q[l] += (v[k + l] - m) * (v[k + l] - m);
    for (; k < n; k++) q[k % RECUR_LN_LANES] += (v[k] - m) * (v[k] - m);
    *mean = m;
    return 1.0f / sqrtf(recur_ln_lanes(q) / (float)n + RECUR_LN_EPS);
}

/* dv of out = LN(v), given dout and out: rstd * (dout - mean(dout) - out * mean(dout * out)).
 * dv may be dout. */
static inline void recur_ln_back(float *dv, const float *dout, const float *out, float rstd, int n) {
    float s1[RECUR_LN_LANES] = {0}, s2[RECUR_LN_LANES] = {0};
    int k = 0;
    for (; k + RECUR_LN_LANES <= n; k += RECUR_LN_LANES)
        for (int l = 0; l < RECUR_LN_LANES; l++) s1[l] += dout[k + l], s2[l] += dout[k + l] * out[k + l];
    for (; k < n; k++) s1[k % RECUR_LN_LANES] += dout[k], s2[k % RECUR_LN_LANES] += dout[k] * out[k];
    const float m1 = recur_ln_lanes(s1) / (float)n, m2 = recur_ln_lanes(s2) / (float)n;
    for (k = 0; k < n; k++) dv[k] = rstd * (dout[k] - m1 - out[k] * m2);
}

/* n copies of v: a row's 1/σ, saved as an H-wide block so that any H fits. */
static inline void recur_ln_fill(float *p, float v, int n) {
    for (int k = 0; k < n; k++) p[k] = v;
}

#endif
