/*
 * nan-avx2.c: a complete, valid test plugin of two stages whose AVX2 kernels
 * differ from its scalar C kernels (the reference) in one place: stage 1's
 * backward writes NaN for the last unit of each row, the slip of a SIMD copy's
 * tail loop. The fixture on which `recur gradcheck` on cpu:avx2 must fail and
 * name stage 1's backward kernel and dxw (tests/meson.build); on cpu:scalar
 * it passes.
 *
 * The cell "nan-avx2", two gates, one state, two stages:
 *   stage 0:  r = tanh(W_ih[0] x + b[0] + W_hh[0] a^{<t-1>}),  src = r, save = r
 *   stage 1:  a^{<t>} = tanh(W_ih[1] x + b[1] + W_hh[1] r)
 *   backward: dpre1 = da (1 - a²);  dpre0 = dsrc (1 - r²), where the engine
 *             makes dsrc = W_hh[1]^T dpre1 and adds W_hh[0]^T dpre0 to dL/da^{<t-1>}
 */
#include <math.h>

#include "recur/recur-cell.h"

static void fwd0(const struct recur_cell_args *a) {
    const int H = a->H, GH = 2 * H;
    for (int row = 0; row < a->n; row++)
        for (int j = 0; j < H; j++) {
            float r = tanhf(a->xw[(size_t)row * GH + j] + a->hw[(size_t)row * GH + j]);
            a->src[(size_t)row * H + j] = r;
            if (a->save) a->save[(size_t)row * H + j] = r; /* NULL in inference */
        }
}

static void fwd1(const struct recur_cell_args *a) {
    const int H = a->H, GH = 2 * H;
    for (int row = 0; row < a->n; row++)
        for (int j = 0; j < H; j++)
            a->next[0][(size_t)row * H + j] = tanhf(a->xw[(size_t)row * GH + H + j] + a->hw[(size_t)row * GH + H + j]);
}

/* dpre1 = da (1 - a²); the last unit NaN in the AVX2 copy */
static void bwd1_with(const struct recur_cell_args *a, int nan_tail) {
    const int H = a->H, GH = 2 * H;
    for (int row = 0; row < a->n; row++)
        for (int j = 0; j < H; j++) {
            size_t i = (size_t)row * H + j;
            float h = a->next[0][i];
            a->dxw[(size_t)row * GH + H + j] = nan_tail && j == H - 1 ? NAN : a->dnext[0][i] * (1.0f - h * h);
            a->dprev[0][i] = 0.0f; /* the engine adds the products */
        }
}
static void bwd1(const struct recur_cell_args *a) { bwd1_with(a, 0); }
static void bwd1_avx2(const struct recur_cell_args *a) { bwd1_with(a, 1); }

static void bwd0(const struct recur_cell_args *a) {
    const int H = a->H, GH = 2 * H;
    for (int row = 0; row < a->n; row++)
        for (int j = 0; j < H; j++) {
            size_t i = (size_t)row * H + j;
            float r = a->save[i];
            a->dxw[(size_t)row * GH + j] = a->dsrc[i] * (1.0f - r * r);
        }
}

static const struct recur_cell_gate gates[] = {{.name = "r", .torch_index = 0}, {.name = "a", .torch_index = 1}};
static const struct recur_cell_stage stages[] = {{0, 1}, {1, 2}};
static const struct recur_cell_cpu cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {fwd0, fwd1}, .backward = {bwd0, bwd1}},
    {.isa = RECUR_ISA_AVX2, .forward = {fwd0, fwd1}, .backward = {bwd0, bwd1_avx2}},
};

static const struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "nan-avx2",
    .version = "0.1",
    .summary = "test cell: two tanh stages; the AVX2 copy of stage 1's backward writes NaN at a row's last unit",
    .n_gates = 2,
    .gates = gates,
    .n_states = 1,
    .n_save = 1,
    .n_stages = 2,
    .stages = stages,
    .n_cpu = 2,
    .cpu = cpu,
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
