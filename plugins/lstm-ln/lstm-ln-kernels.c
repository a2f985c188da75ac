/*
 * lstm-ln-kernels.c: the pointwise kernels of the layer-normalised LSTM
 * (lstm-ln.c has the formulas). Compiled once per ISA (plugins/meson.build).
 *
 * Save, per row, in blocks of H: nx (4 blocks: LN(W_ih x)), nh (4: LN(W_hh a)),
 * the gates Γ_i, Γ_f, c̃, Γ_o (4), nc = LN(c) (1), th = tanh(γ_c nc + β_c) (1),
 * and 1/σ of x, h and c (3 blocks, each filled with its row's value).
 */
#include <string.h>

#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"
#include "../layer-norm.h"

enum { NX = 0, NH = 4, GATES = 8, NC = 12, TH = 13, RX = 14, RH = 15, RC = 16, NSAVE = 17 };

static void lstm_ln_forward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 4 * H;
    const float *gx = a->param[0], *gh = a->param[1], *b = a->param[2], *gc = a->param[3], *bc = a->param[4];
    for (int r = 0; r < a->n; r++) {
        const float *xw = a->xw + (size_t)r * GH, *c_prev = a->prev[1] + (size_t)r * H;
        float *hw = a->hw + (size_t)r * GH, *c = a->next[1] + (size_t)r * H, *h = a->next[0] + (size_t)r * H;
        float *s = a->training ? a->save + (size_t)r * NSAVE * H : NULL;
        float mx, mh, mc;
        const float rx = recur_ln_stats(xw, GH, &mx), rh = recur_ln_stats(hw, GH, &mh);
        /* v = γ_x nx + γ_h nh + b, into hw */
        for (int k = 0; k < GH; k++) {
            float nx = (xw[k] - mx) * rx, nh = (hw[k] - mh) * rh;
            if (s) s[NX * H + k] = nx, s[NH * H + k] = nh;
            hw[k] = gx[k] * nx + gh[k] * nh + b[k];
        }
        recur_vsigmoid(hw, hw, 2 * H);
        recur_vtanh(hw + 2 * H, hw + 2 * H, H);
        recur_vsigmoid(hw + 3 * H, hw + 3 * H, H);
        const float *gi = hw, *gf = hw + H, *gg = hw + 2 * H, *go = hw + 3 * H;
        for (int j = 0; j < H; j++) c[j] = gf[j] * c_prev[j] + gi[j] * gg[j];
        /* th = tanh(γ_c nc + β_c), built in h; then a = Γ_o th */
        const float rc = recur_ln_stats(c, H, &mc);
        for (int j = 0; j < H; j++) {
            float nc = (c[j] - mc) * rc;
            if (s) s[NC * H + j] = nc;
            h[j] = gc[j] * nc + bc[j];
        }
        recur_vtanh(h, h, H);
        if (s) {
            memcpy(s + GATES * H, hw, (size_t)GH * sizeof(float));
            memcpy(s + TH * H, h, (size_t)H * sizeof(float));
            recur_ln_fill(s + RX * H, rx, H);
            recur_ln_fill(s + RH * H, rh, H);
            recur_ln_fill(s + RC * H, rc, H);
        }
        for (int j = 0; j < H; j++) h[j] *= go[j];
    }
}

/*
 * Backward, with da = dL/da^{<t>}, dc_in = dL/dc^{<t>} from later steps:
 *   dΓ_o = da * th;  ds = da * Γ_o * (1 - th²);  dγ_c += ds * nc;  dβ_c += ds
 *   dc = dc_in + LN_back(ds * γ_c)                  (over H)
 *   dv_i = dc c̃ σ'(i)  dv_f = dc c^{<t-1>} σ'(f)  dv_g = dc Γ_i (1 - c̃²)  dv_o = dΓ_o σ'(o)
 *   db += dv;  dγ_x += dv * nx;  dγ_h += dv * nh
 *   dxw = LN_back(dv * γ_x),  dhw = LN_back(dv * γ_h)  (over 4H)
 *   dL/dc^{<t-1>} = dc * Γ_f   (dL/da^{<t-1>} comes only from the product)
 */
static void lstm_ln_backward(const struct recur_cell_args *a) {
    const int H = a->H, GH = 4 * H;
    const float *gx = a->param[0], *gh = a->param[1], *gc = a->param[3];
    for (int r = 0; r < a->n; r++) {
        const float *s = a->save + (size_t)r * NSAVE * H;
        const float *nx = s + NX * H, *nh = s + NH * H, *gi = s + GATES * H, *gf = gi + H, *gg = gi + 2 * H,
                    *go = gi + 3 * H, *nc = s + NC * H, *th = s + TH * H;
        const float rx = s[RX * H], rh = s[RH * H], rc = s[RC * H];
        const float *da = a->dnext[0] + (size_t)r * H, *dc_in = a->dnext[1] + (size_t)r * H;
        const float *c_prev = a->prev[1] + (size_t)r * H;
        float *dxw = a->dxw + (size_t)r * GH, *dhw = a->dhw + (size_t)r * GH;
        float *dgx = a->dparam[0] + (size_t)r * GH, *dgh = a->dparam[1] + (size_t)r * GH;
        float *db = a->dparam[2] + (size_t)r * GH, *dgc = a->dparam[3] + (size_t)r * H;
        float *dbc = a->dparam[4] + (size_t)r * H;
        float *da_prev = a->dprev[0] + (size_t)r * H, *dc_prev = a->dprev[1] + (size_t)r * H;
        /* dnc = ds * γ_c into dc_prev (scratch), its LN backward into da_prev (scratch) */
        for (int j = 0; j < H; j++) {
            float ds = da[j] * go[j] * (1.0f - th[j] * th[j]);
            dgc[j] += ds * nc[j];
            dbc[j] += ds;
            dc_prev[j] = ds * gc[j];
        }
        recur_ln_back(da_prev, dc_prev, nc, rc, H);
        /* dc into dc_prev (scratch); then each gate's dv over the row, one contiguous pass per gate
         * (unit by unit across the four gates, the blocks H floats apart alias in the cache) */
        for (int j = 0; j < H; j++) dc_prev[j] = dc_in[j] + da_prev[j];
        const float *dc = dc_prev;
        for (int g = 0; g < 4; g++) {
            const int o = g * H;
            for (int j = 0; j < H; j++) {
                float dv = g == 0   ? dc[j] * gg[j] * gi[j] * (1.0f - gi[j])
                           : g == 1 ? dc[j] * c_prev[j] * gf[j] * (1.0f - gf[j])
                           : g == 2 ? dc[j] * gi[j] * (1.0f - gg[j] * gg[j])
                                    : da[j] * th[j] * go[j] * (1.0f - go[j]);
                db[o + j] += dv;
                dgx[o + j] += dv * nx[o + j];
                dgh[o + j] += dv * nh[o + j];
                dxw[o + j] = dv * gx[o + j]; /* d LN(x), made d(W_ih x) below */
                dhw[o + j] = dv * gh[o + j];
            }
        }
        for (int j = 0; j < H; j++) {
            dc_prev[j] = dc[j] * gf[j];
            da_prev[j] = 0.0f;
        }
        recur_ln_back(dxw, dxw, nx, rx, GH);
        recur_ln_back(dhw, dhw, nh, rh, GH);
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {lstm_ln_forward},
    .backward = {lstm_ln_backward},
};
