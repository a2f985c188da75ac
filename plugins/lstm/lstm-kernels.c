/*
 * lstm-kernels.c: the pointwise kernels of the LSTM (PyTorch's nn.LSTM).
 * Compiled once per ISA; RECUR_CELL_CPU_TABLE names this build's table and
 * RECUR_KERNEL_ISA its instruction set (see meson.build).
 */
#include <string.h>

#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"

/*
 * Gates in PyTorch's order i, f, g, o, each pre = xw + hw (biases included):
 *   Γ_i = σ(pre_i)   Γ_f = σ(pre_f)   c̃^{<t>} = tanh(pre_g)   Γ_o = σ(pre_o)
 *   c^{<t>} = Γ_f * c^{<t-1>} + Γ_i * c̃^{<t>}
 *   a^{<t>} = Γ_o * tanh(c^{<t>})
 * Saved for BPTT, per unit: Γ_i, Γ_f, c̃, Γ_o, tanh(c^{<t>}).
 */
static void lstm_forward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 4 * H;
    for (int r = 0; r < a->n; r++) {
        float *p = a->hw + (size_t)r * GH;
        const float *xw = a->xw + (size_t)r * GH;
        const float *c_prev = a->prev[1] + (size_t)r * H;
        float *c = a->next[1] + (size_t)r * H, *h = a->next[0] + (size_t)r * H;
        for (int j = 0; j < GH; j++) p[j] += xw[j];
        recur_vsigmoid(p, p, 2 * H);
        recur_vtanh(p + 2 * H, p + 2 * H, H);
        recur_vsigmoid(p + 3 * H, p + 3 * H, H);
        const float *gi = p, *gf = p + H, *gg = p + 2 * H, *go = p + 3 * H;
        for (int j = 0; j < H; j++) c[j] = gf[j] * c_prev[j] + gi[j] * gg[j];
        float *tc = h; /* tanh(c) goes to a^{<t>} (or the save), then times Γ_o */
        if (a->training) {
            float *s = a->save + (size_t)r * 5 * H;
            memcpy(s, p, (size_t)GH * sizeof(float));
            tc = s + GH;
        }
        recur_vtanh(tc, c, H);
        for (int j = 0; j < H; j++) h[j] = go[j] * tc[j];
    }
}

/*
 * Backward, with da = dL/da^{<t>} and dc_in = dL/dc^{<t>} from later steps:
 *   dΓ_o = da * tanh(c)          dc = dc_in + da * Γ_o * (1 - tanh²(c))
 *   dΓ_i = dc * c̃   dΓ_f = dc * c^{<t-1>}   dc̃ = dc * Γ_i
 *   dL/dc^{<t-1>} = dc * Γ_f     (dL/da^{<t-1>} comes only from the product)
 *   dpre = dΓ * σ' (σ' = σ(1-σ)) for i, f, o and dc̃ * (1 - c̃²) for g
 */
static void lstm_backward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 4 * H;
    for (int r = 0; r < a->n; r++) {
        const float *s = a->save + (size_t)r * 5 * H;
        const float *gi = s, *gf = s + H, *gg = s + 2 * H, *go = s + 3 * H, *tc = s + 4 * H;
        const float *da = a->dnext[0] + (size_t)r * H, *dc_in = a->dnext[1] + (size_t)r * H;
        const float *c_prev = a->prev[1] + (size_t)r * H;
        float *d = a->dxw + (size_t)r * GH;
        float *da_prev = a->dprev[0] + (size_t)r * H, *dc_prev = a->dprev[1] + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            float dc = dc_in[j] + da[j] * go[j] * (1.0f - tc[j] * tc[j]);
            d[j] = dc * gg[j] * gi[j] * (1.0f - gi[j]);
            d[H + j] = dc * c_prev[j] * gf[j] * (1.0f - gf[j]);
            d[2 * H + j] = dc * gi[j] * (1.0f - gg[j] * gg[j]);
            d[3 * H + j] = da[j] * tc[j] * go[j] * (1.0f - go[j]);
            dc_prev[j] = dc * gf[j];
            da_prev[j] = 0.0f;
        }
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {lstm_forward},
    .backward = {lstm_backward},
};
