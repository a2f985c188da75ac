/*
 * gru-simple-kernels.c: the pointwise kernels of the simplified GRU (update
 * gate only). Compiled once per ISA (see plugins/meson.build).
 */
#include <string.h>

#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"

/*
 * pre = xw + hw for gates u, c:
 *   Γ_u = σ(pre_u)   c̃ = tanh(pre_c)   c^{<t>} = Γ_u * c̃ + (1 - Γ_u) * c^{<t-1>}
 * Saved per unit: Γ_u, c̃.
 */
static void gru_simple_forward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 2 * H;
    for (int r = 0; r < a->n; r++) {
        float *p = a->hw + (size_t)r * GH;
        const float *xw = a->xw + (size_t)r * GH, *c_prev = a->prev[0] + (size_t)r * H;
        float *c = a->next[0] + (size_t)r * H;
        for (int j = 0; j < GH; j++) p[j] += xw[j];
        recur_vsigmoid(p, p, H);
        recur_vtanh(p + H, p + H, H);
        const float *gu = p, *cc = p + H;
        for (int j = 0; j < H; j++) c[j] = gu[j] * cc[j] + (1.0f - gu[j]) * c_prev[j];
        if (a->training) memcpy(a->save + (size_t)r * GH, p, (size_t)GH * sizeof(float));
    }
}

/*
 * With dc = dL/dc^{<t>}:
 *   dpre_u = dc * (c̃ - c^{<t-1>}) * Γ_u (1 - Γ_u)   dpre_c = dc * Γ_u * (1 - c̃²)
 *   dL/dc^{<t-1>} = dc * (1 - Γ_u)   (the engine adds the product's part)
 */
static void gru_simple_backward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 2 * H;
    for (int r = 0; r < a->n; r++) {
        const float *s = a->save + (size_t)r * GH, *gu = s, *cc = s + H;
        const float *dc = a->dnext[0] + (size_t)r * H, *c_prev = a->prev[0] + (size_t)r * H;
        float *d = a->dxw + (size_t)r * GH, *dc_prev = a->dprev[0] + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            d[j] = dc[j] * (cc[j] - c_prev[j]) * gu[j] * (1.0f - gu[j]);
            d[H + j] = dc[j] * gu[j] * (1.0f - cc[j] * cc[j]);
            dc_prev[j] = dc[j] * (1.0f - gu[j]);
        }
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {gru_simple_forward},
    .backward = {gru_simple_backward},
};
