/*
 * lstm-peephole-kernels.c: the pointwise kernels of the peephole LSTM.
 * Compiled once per ISA (see plugins/meson.build).
 */
#include <string.h>

#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"

/*
 * Gates i, f, g, o, each pre = xw + hw (biases included); P = weight_peephole
 * with rows p_i, p_f, p_o:
 *   Γ_i = σ(pre_i + p_i * c^{<t-1>})   Γ_f = σ(pre_f + p_f * c^{<t-1>})
 *   c̃ = tanh(pre_g)                    c^{<t>} = Γ_f * c^{<t-1>} + Γ_i * c̃
 *   Γ_o = σ(pre_o + p_o * c^{<t>})      a^{<t>} = Γ_o * tanh(c^{<t>})
 * Saved per unit: Γ_i, Γ_f, c̃, Γ_o, tanh(c^{<t>}).
 */
static void lstm_peephole_forward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 4 * H;
    const float *pi = a->param[0], *pf = pi + H, *po = pi + 2 * H;
    for (int r = 0; r < a->n; r++) {
        float *p = a->hw + (size_t)r * GH;
        const float *xw = a->xw + (size_t)r * GH;
        const float *c_prev = a->prev[1] + (size_t)r * H;
        float *c = a->next[1] + (size_t)r * H, *h = a->next[0] + (size_t)r * H;
        for (int j = 0; j < GH; j++) p[j] += xw[j];
        for (int j = 0; j < H; j++) {
            p[j] += pi[j] * c_prev[j];
            p[H + j] += pf[j] * c_prev[j];
        }
        recur_vsigmoid(p, p, 2 * H);
        recur_vtanh(p + 2 * H, p + 2 * H, H);
        const float *gi = p, *gf = p + H, *gg = p + 2 * H;
        float *go = p + 3 * H;
        for (int j = 0; j < H; j++) c[j] = gf[j] * c_prev[j] + gi[j] * gg[j];
        for (int j = 0; j < H; j++) go[j] += po[j] * c[j];
        recur_vsigmoid(go, go, H);
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
 *   dpre_o = da * tanh(c) * σ'(o)
 *   dc = dc_in + da * Γ_o * (1 - tanh²(c)) + dpre_o * p_o
 *   dpre_i = dc * c̃ * σ'(i)   dpre_f = dc * c^{<t-1>} * σ'(f)   dpre_g = dc * Γ_i * (1 - c̃²)
 *   dL/dc^{<t-1>} = dc * Γ_f + dpre_i * p_i + dpre_f * p_f
 *   dp_i += dpre_i * c^{<t-1>}   dp_f += dpre_f * c^{<t-1>}   dp_o += dpre_o * c^{<t>}
 */
static void lstm_peephole_backward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 4 * H;
    const float *pi = a->param[0], *pf = pi + H, *po = pi + 2 * H;
    for (int r = 0; r < a->n; r++) {
        const float *s = a->save + (size_t)r * 5 * H;
        const float *gi = s, *gf = s + H, *gg = s + 2 * H, *go = s + 3 * H, *tc = s + 4 * H;
        const float *da = a->dnext[0] + (size_t)r * H, *dc_in = a->dnext[1] + (size_t)r * H;
        const float *c_prev = a->prev[1] + (size_t)r * H, *c = a->next[1] + (size_t)r * H;
        float *d = a->dxw + (size_t)r * GH, *dp = a->dparam[0] + (size_t)r * 3 * H;
        float *da_prev = a->dprev[0] + (size_t)r * H, *dc_prev = a->dprev[1] + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            float d_o = da[j] * tc[j] * go[j] * (1.0f - go[j]);
            float dc = dc_in[j] + da[j] * go[j] * (1.0f - tc[j] * tc[j]) + d_o * po[j];
            float d_i = dc * gg[j] * gi[j] * (1.0f - gi[j]);
            float d_f = dc * c_prev[j] * gf[j] * (1.0f - gf[j]);
            d[j] = d_i;
            d[H + j] = d_f;
            d[2 * H + j] = dc * gi[j] * (1.0f - gg[j] * gg[j]);
            d[3 * H + j] = d_o;
            dc_prev[j] = dc * gf[j] + d_i * pi[j] + d_f * pf[j];
            da_prev[j] = 0.0f;
            dp[j] += d_i * c_prev[j];
            dp[H + j] += d_f * c_prev[j];
            dp[2 * H + j] += d_o * c[j];
        }
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {lstm_peephole_forward},
    .backward = {lstm_peephole_backward},
};
