/*
 * gru-ln-kernels.c: the pointwise kernels of the layer-normalised GRU
 * (gru-ln.c has the formulas). Compiled once per ISA (plugins/meson.build).
 *
 * Save, per row, in blocks of H: nx (3 blocks: LN(W_ih x)), nh (3: LN(W_hh a)),
 * the gates r, z, n (3), hv_n = γ_h nh_n + b_r,n (1), and 1/σ of x and h
 * (2 blocks, each filled with its row's value).
 */
#include <string.h>

#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"
#include "../layer-norm.h"

enum { NX = 0, NH = 3, GATES = 6, HVN = 9, RX = 10, RH = 11, NSAVE = 12 };

static void gru_ln_forward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    const float *gx = a->param[0], *gh = a->param[1], *b = a->param[2], *br = a->param[3];
    for (int r = 0; r < a->n; r++) {
        const float *xw = a->xw + (size_t)r * GH, *h_prev = a->prev[0] + (size_t)r * H;
        float *hw = a->hw + (size_t)r * GH, *h = a->next[0] + (size_t)r * H;
        float *s = a->training ? a->save + (size_t)r * NSAVE * H : NULL;
        float mx, mh;
        const float rx = recur_ln_stats(xw, GH, &mx), rh = recur_ln_stats(hw, GH, &mh);
        /* xv = γ_x nx + b, hv = γ_h nh + b_r: xv + hv into hw for r and z, hv alone for n */
        for (int k = 0; k < GH; k++) {
            float nx = (xw[k] - mx) * rx, nh = (hw[k] - mh) * rh;
            if (s) s[NX * H + k] = nx, s[NH * H + k] = nh;
            const float hv = gh[k] * nh + br[k];
            hw[k] = k < 2 * H ? gx[k] * nx + b[k] + hv : hv;
        }
        if (s) memcpy(s + HVN * H, hw + 2 * H, (size_t)H * sizeof(float));
        recur_vsigmoid(hw, hw, 2 * H);
        const float *gr = hw, *gz = hw + H;
        float *gn = hw + 2 * H;
        /* n = tanh(xv_n + r hv_n) */
        for (int j = 0; j < H; j++) {
            const int k = 2 * H + j;
            gn[j] = gx[k] * ((xw[k] - mx) * rx) + b[k] + gr[j] * gn[j];
        }
        recur_vtanh(gn, gn, H);
        /* a = z a^{<t-1>} + (1 - z) n */
        for (int j = 0; j < H; j++) h[j] = gz[j] * h_prev[j] + (1.0f - gz[j]) * gn[j];
        if (s) {
            memcpy(s + GATES * H, hw, (size_t)GH * sizeof(float));
            recur_ln_fill(s + RX * H, rx, H);
            recur_ln_fill(s + RH * H, rh, H);
        }
    }
}

/*
 * Backward, with da = dL/da^{<t>}:
 *   dv_n = da (1 - z)(1 - n²)   dv_r = dv_n hv_n r(1 - r)   dv_z = da (a^{<t-1>} - n) z(1 - z)
 *   dxv = (dv_r, dv_z, dv_n)    dhv = (dv_r, dv_z, dv_n r)
 *   db += dxv;  db_r += dhv;  dγ_x += dxv * nx;  dγ_h += dhv * nh
 *   dxw = LN_back(dxv * γ_x),  dhw = LN_back(dhv * γ_h)  (over 3H)
 *   dL/da^{<t-1>} = da z  (+ the product's, which the engine adds)
 */
static void gru_ln_backward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    const float *gx = a->param[0], *gh = a->param[1];
    for (int r = 0; r < a->n; r++) {
        const float *s = a->save + (size_t)r * NSAVE * H;
        const float *nx = s + NX * H, *nh = s + NH * H, *gr = s + GATES * H, *gz = gr + H, *gn = gr + 2 * H,
                    *hvn = s + HVN * H;
        const float rx = s[RX * H], rh = s[RH * H];
        const float *da = a->dnext[0] + (size_t)r * H, *h_prev = a->prev[0] + (size_t)r * H;
        float *dxw = a->dxw + (size_t)r * GH, *dhw = a->dhw + (size_t)r * GH;
        float *dgx = a->dparam[0] + (size_t)r * GH, *dgh = a->dparam[1] + (size_t)r * GH;
        float *db = a->dparam[2] + (size_t)r * GH, *dbr = a->dparam[3] + (size_t)r * GH;
        float *da_prev = a->dprev[0] + (size_t)r * H;
        /* each gate's dv over the row, one contiguous pass per gate (unit by unit across the
         * gates, the blocks H floats apart alias in the cache) */
        for (int g = 0; g < 3; g++) {
            const int o = g * H;
            for (int j = 0; j < H; j++) {
                const float dvn = da[j] * (1.0f - gz[j]) * (1.0f - gn[j] * gn[j]);
                const float dx = g == 0   ? dvn * hvn[j] * gr[j] * (1.0f - gr[j])
                                 : g == 1 ? da[j] * (h_prev[j] - gn[j]) * gz[j] * (1.0f - gz[j])
                                          : dvn;
                const float dh = g == 2 ? dvn * gr[j] : dx;
                db[o + j] += dx;
                dbr[o + j] += dh;
                dgx[o + j] += dx * nx[o + j];
                dgh[o + j] += dh * nh[o + j];
                dxw[o + j] = dx * gx[o + j]; /* d LN(x), made d(W_ih x) below */
                dhw[o + j] = dh * gh[o + j];
            }
        }
        for (int j = 0; j < H; j++) da_prev[j] = da[j] * gz[j];
        recur_ln_back(dxw, dxw, nx, rx, GH);
        recur_ln_back(dhw, dhw, nh, rh, GH);
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {gru_ln_forward},
    .backward = {gru_ln_backward},
};
