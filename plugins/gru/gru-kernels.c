/*
 * gru-kernels.c: the pointwise kernels of the original GRU of the course
 * notes (Cho et al. 2014; ONNX linear_before_reset=0), where the reset gate
 * multiplies the state BEFORE the matrix product. Two stages, so two
 * kernels each way. Compiled once per ISA (see meson.build).
 */
#include "recur/recur-cell.h"
#include "recur/recur-vmath.h"

/*
 * Stage 0, after the engine's product hw_{u,r} = W_{u,r} c^{<t-1>}:
 *   Γ_u = σ(W_u [c^{<t-1>}, x^{<t>}] + b_u)
 *   Γ_r = σ(W_r [c^{<t-1>}, x^{<t>}] + b_r)
 *   src = Γ_r * c^{<t-1>}           (the input of stage 1's product)
 * Γ_u waits in hw_u for stage 1; in training Γ_u and Γ_r are saved.
 */
static void gru_forward_gates(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    for (int row = 0; row < a->n; row++) {
        float *p = a->hw + (size_t)row * GH;
        const float *xw = a->xw + (size_t)row * GH, *c_prev = a->prev[0] + (size_t)row * H;
        float *src = a->src + (size_t)row * H;
        for (int j = 0; j < 2 * H; j++) p[j] += xw[j];
        recur_vsigmoid(p, p, 2 * H);
        for (int j = 0; j < H; j++) src[j] = p[H + j] * c_prev[j];
        if (a->training) {
            float *s = a->save + (size_t)row * 3 * H;
            for (int j = 0; j < 2 * H; j++) s[j] = p[j];
        }
    }
}

/*
 * Stage 1, after hw_c = W_c src:
 *   c̃^{<t>} = tanh(W_c [Γ_r * c^{<t-1>}, x^{<t>}] + b_c)
 *   c^{<t>} = Γ_u * c̃^{<t>} + (1 - Γ_u) * c^{<t-1>}
 * Γ_u weights the candidate (the notes' polarity; PyTorch's z = 1 - Γ_u).
 */
static void gru_forward_candidate(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    for (int row = 0; row < a->n; row++) {
        float *p = a->hw + (size_t)row * GH;
        const float *xw = a->xw + (size_t)row * GH, *c_prev = a->prev[0] + (size_t)row * H;
        float *c = a->next[0] + (size_t)row * H;
        const float *u = p;
        float *cand = p + 2 * H;
        for (int j = 0; j < H; j++) cand[j] += xw[2 * H + j];
        recur_vtanh(cand, cand, H);
        for (int j = 0; j < H; j++) c[j] = u[j] * cand[j] + (1.0f - u[j]) * c_prev[j];
        if (a->training) {
            float *s = a->save + (size_t)row * 3 * H + 2 * H;
            for (int j = 0; j < H; j++) s[j] = cand[j];
        }
    }
}

/*
 * Backward of stage 1 (runs first), with dc = dL/dc^{<t>}:
 *   dc̃ = dc * Γ_u        dΓ_u = dc * (c̃ - c^{<t-1>})     dL/dc^{<t-1>} = dc * (1 - Γ_u)
 *   dpre_c = dc̃ * (1 - c̃²)        dpre_u = dΓ_u * Γ_u (1 - Γ_u)
 */
static void gru_backward_candidate(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    for (int row = 0; row < a->n; row++) {
        const float *s = a->save + (size_t)row * 3 * H;
        const float *u = s, *cand = s + 2 * H;
        const float *dc = a->dnext[0] + (size_t)row * H, *c_prev = a->prev[0] + (size_t)row * H;
        float *d = a->dxw + (size_t)row * GH, *dc_prev = a->dprev[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) {
            d[j] = dc[j] * (cand[j] - c_prev[j]) * u[j] * (1.0f - u[j]);
            d[2 * H + j] = dc[j] * u[j] * (1.0f - cand[j] * cand[j]);
            dc_prev[j] = dc[j] * (1.0f - u[j]);
        }
    }
}

/*
 * Backward of stage 0, with dsrc = dL/d(Γ_r * c^{<t-1>}) from the engine:
 *   dΓ_r = dsrc * c^{<t-1>}     dL/dc^{<t-1>} += dsrc * Γ_r
 *   dpre_r = dΓ_r * Γ_r (1 - Γ_r)
 */
static void gru_backward_gates(const struct recur_cell_args *a) {
    const int H = a->H, GH = 3 * H;
    for (int row = 0; row < a->n; row++) {
        const float *rg = a->save + (size_t)row * 3 * H + H;
        const float *dsrc = a->dsrc + (size_t)row * H, *c_prev = a->prev[0] + (size_t)row * H;
        float *d = a->dxw + (size_t)row * GH, *dc_prev = a->dprev[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) {
            d[H + j] = dsrc[j] * c_prev[j] * rg[j] * (1.0f - rg[j]);
            dc_prev[j] += dsrc[j] * rg[j];
        }
    }
}

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {gru_forward_gates, gru_forward_candidate},
    .backward = {gru_backward_gates, gru_backward_candidate},
};
