/*
 * rnn-kernels.c: the pointwise kernels of the vanilla (Elman) RNN.
 * Compiled once per ISA (see meson.build).
 */
#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"

enum { VARIANT_TANH = 0, VARIANT_RELU = 1 };

/*
 *   a^{<t>} = g(W_aa a^{<t-1>} + W_ax x^{<t>} + b_a),  g = tanh or relu
 * Nothing is saved: backward needs only a^{<t>}.
 */
static void rnn_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        float *p = a->hw + (size_t)row * H, *h = a->next[0] + (size_t)row * H;
        const float *xw = a->xw + (size_t)row * H;
        if (a->variant == VARIANT_RELU) {
            for (int j = 0; j < H; j++) {
                float v = p[j] + xw[j];
                h[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int j = 0; j < H; j++) p[j] += xw[j];
            recur_vtanh(h, p, H);
        }
    }
}

/*
 *   dpre = da * g'(pre): tanh' = 1 - a², relu' = [a > 0]
 *   (dL/da^{<t-1>} comes only from the product)
 */
static void rnn_backward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *h = a->next[0] + (size_t)row * H, *da = a->dnext[0] + (size_t)row * H;
        float *d = a->dxw + (size_t)row * H, *da_prev = a->dprev[0] + (size_t)row * H;
        if (a->variant == VARIANT_RELU)
            for (int j = 0; j < H; j++) d[j] = h[j] > 0.0f ? da[j] : 0.0f;
        else
            for (int j = 0; j < H; j++) d[j] = da[j] * (1.0f - h[j] * h[j]);
        for (int j = 0; j < H; j++) da_prev[j] = 0.0f;
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {rnn_forward},
    .backward = {rnn_backward},
};
