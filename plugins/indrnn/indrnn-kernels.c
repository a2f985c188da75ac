/*
 * indrnn-kernels.c: the pointwise kernels of IndRNN. Compiled once per ISA
 * (see plugins/meson.build). hw is not computed (no recurrent product).
 */
#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"

enum { VARIANT_RELU = 0, VARIANT_TANH = 1 };

/*
 *   a^{<t>} = g(xw + u * a^{<t-1>})   (xw holds W_ih x + b_ih + b_hh)
 * Nothing is saved: backward needs only a^{<t>}. hw is scratch.
 */
static void indrnn_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    const float *u = a->param[0];
    for (int r = 0; r < a->n; r++) {
        const float *xw = a->xw + (size_t)r * H, *h_prev = a->prev[0] + (size_t)r * H;
        float *p = a->hw + (size_t)r * H, *h = a->next[0] + (size_t)r * H;
        for (int j = 0; j < H; j++) p[j] = xw[j] + u[j] * h_prev[j];
        if (a->variant == VARIANT_RELU)
            for (int j = 0; j < H; j++) h[j] = p[j] > 0.0f ? p[j] : 0.0f;
        else
            recur_vtanh(h, p, H);
    }
}

/*
 *   dpre = da * g'(pre): relu' = [a > 0], tanh' = 1 - a²
 *   dL/da^{<t-1>} = dpre * u   (the only part: there is no product)
 *   du += dpre * a^{<t-1>}
 */
static void indrnn_backward(const struct recur_cell_args *a) {
    const int H = a->H;
    const float *u = a->param[0];
    for (int r = 0; r < a->n; r++) {
        const float *h = a->next[0] + (size_t)r * H, *da = a->dnext[0] + (size_t)r * H;
        const float *h_prev = a->prev[0] + (size_t)r * H;
        float *d = a->dxw + (size_t)r * H, *dh_prev = a->dprev[0] + (size_t)r * H;
        float *du = a->dparam[0] + (size_t)r * H;
        if (a->variant == VARIANT_RELU)
            for (int j = 0; j < H; j++) d[j] = h[j] > 0.0f ? da[j] : 0.0f;
        else
            for (int j = 0; j < H; j++) d[j] = da[j] * (1.0f - h[j] * h[j]);
        for (int j = 0; j < H; j++) {
            dh_prev[j] = d[j] * u[j];
            du[j] += d[j] * h_prev[j];
        }
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {indrnn_forward},
    .backward = {indrnn_backward},
};
