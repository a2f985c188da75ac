/*
 * gru-lbr-kernels.c: the pointwise kernels of the linear-before-reset GRU
 * (PyTorch's nn.GRU, cuDNN's GRU). Compiled once per ISA (see meson.build).
 */
#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"

/*
 * Gates in PyTorch's order r, z, n. xw holds W_i x + b_i (+ b_h for r, z);
 * hw holds W_h a^{<t-1>}; b_hn is added here (n has bias_hh_in_hw):
 *   r = σ(xw_r + hw_r)     z = σ(xw_z + hw_z)
 *   n = tanh(xw_n + r * hw_n)            (hw_n = W_hn a^{<t-1>} + b_hn)
 *   a^{<t>} = (1 - z) * n + z * a^{<t-1>}
 * z weights the OLD state here (PyTorch's polarity; the course notes' Γ_u
 * weights the candidate: Γ_u = 1 - z). Saved per unit: r, z, n, hw_n.
 */
static void gru_lbr_forward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    for (int row = 0; row < a->n; row++) {
        float *p = a->hw + (size_t)row * GH;
        const float *xw = a->xw + (size_t)row * GH;
        const float *h_prev = a->prev[0] + (size_t)row * H;
        float *h = a->next[0] + (size_t)row * H;
        float *s = a->training ? a->save + (size_t)row * 4 * H : NULL;
        const float *b_hn = a->b_hh + 2 * H;
        for (int j = 0; j < H; j++) p[2 * H + j] += b_hn[j];
        if (s)
            for (int j = 0; j < H; j++) s[3 * H + j] = p[2 * H + j];
        for (int j = 0; j < 2 * H; j++) p[j] += xw[j];
        recur_vsigmoid(p, p, 2 * H);
        const float *r = p, *z = p + H;
        float *n = p + 2 * H;
        for (int j = 0; j < H; j++) n[j] = xw[2 * H + j] + r[j] * n[j];
        recur_vtanh(n, n, H);
        for (int j = 0; j < H; j++) h[j] = (1.0f - z[j]) * n[j] + z[j] * h_prev[j];
        if (s)
            for (int j = 0; j < 3 * H; j++) s[j] = p[j];
    }
}

/*
 * Backward, with da = dL/da^{<t>}:
 *   dn = da * (1 - z)    dz = da * (a^{<t-1>} - n)    dL/da^{<t-1>} = da * z (+ product)
 *   dpre_n = dn * (1 - n²)          -> dxw_n; dhw_n = dpre_n * r
 *   dr = dpre_n * hw_n; dpre_r = dr * r(1 - r); dpre_z = dz * z(1 - z)   (dxw = dhw for r, z)
 */
static void gru_lbr_backward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    for (int row = 0; row < a->n; row++) {
        const float *s = a->save + (size_t)row * 4 * H;
        const float *r = s, *z = s + H, *n = s + 2 * H, *hwn = s + 3 * H;
        const float *da = a->dnext[0] + (size_t)row * H, *h_prev = a->prev[0] + (size_t)row * H;
        float *dx = a->dxw + (size_t)row * GH, *dh = a->dhw + (size_t)row * GH;
        float *da_prev = a->dprev[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) {
            float dpre_n = da[j] * (1.0f - z[j]) * (1.0f - n[j] * n[j]);
            float dpre_r = dpre_n * hwn[j] * r[j] * (1.0f - r[j]);
            float dpre_z = da[j] * (h_prev[j] - n[j]) * z[j] * (1.0f - z[j]);
            dx[j] = dh[j] = dpre_r;
            dx[H + j] = dh[H + j] = dpre_z;
            dx[2 * H + j] = dpre_n;
            dh[2 * H + j] = dpre_n * r[j];
            da_prev[j] = da[j] * z[j];
        }
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {gru_lbr_forward},
    .backward = {gru_lbr_backward},
};
