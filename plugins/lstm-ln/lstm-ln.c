/*
 * lstm-ln.c: the layer-normalised LSTM of Haste (lmnt-com/haste,
 * LayerNormLSTM; Ba et al. 2016's LN-LSTM as Haste implements it):
 *
 *   v = γ_x * LN(W_ih x^{<t>}) + γ_h * LN(W_hh a^{<t-1>}) + b      (each LN over the row's 4H)
 *   Γ_i, Γ_f, Γ_o = σ(v_i), σ(v_f), σ(v_o)    c̃ = tanh(v_g)
 *   c^{<t>} = Γ_f * c^{<t-1>} + Γ_i * c̃                             (carried un-normalised)
 *   a^{<t>} = Γ_o * tanh(γ_c * LN(c^{<t>}) + β_c)                    (LN over H)
 *
 * LN(v) = (v - mean) / sqrt(var + 1e-5), population variance, no shift of
 * its own. Gates i, f, g, o (Haste orders its blocks i, g, f, o; the LN over
 * all 4H does not depend on the order). The products are raw (no b_ih, b_hh):
 * the cell's own parameters are gamma_x, gamma_h [4H] (Haste's gamma[0],
 * gamma[1]), bias [4H], gamma_c, beta_c [H] (Haste's gamma_h, beta_h). Its
 * OpenCL kernels are row kernels: one work-group per row, reducing with
 * barriers.
 */
#include "recur/recur-cell.h"

RECUR_CELL_CPU_TABLES(lstm_ln)
extern const char lstm_ln_opencl[];

static const struct recur_cell_gate gates[] = {
    {.name = "i", .torch_index = 0},
    {.name = "f", .torch_index = 1},
    {.name = "g", .torch_index = 2},
    {.name = "o", .torch_index = 3},
};
static const struct recur_cell_stage stages[] = {{0, 4}};
static const struct recur_cell_param params[] = {
    {.name = "gamma_x", .rows = 1, .cols = RECUR_CELL_DIM_GH, .init = RECUR_CELL_INIT_ONE},
    {.name = "gamma_h", .rows = 1, .cols = RECUR_CELL_DIM_GH, .init = RECUR_CELL_INIT_ONE},
    {.name = "bias", .rows = 1, .cols = RECUR_CELL_DIM_GH, .init = RECUR_CELL_INIT_ZERO},
    {.name = "gamma_c", .rows = 1, .cols = RECUR_CELL_DIM_H, .init = RECUR_CELL_INIT_ONE},
    {.name = "beta_c", .rows = 1, .cols = RECUR_CELL_DIM_H, .init = RECUR_CELL_INIT_ZERO},
};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "lstm-ln",
    .version = "1.0",
    .summary = "layer-normalised LSTM (Haste's LayerNormLSTM): LN of each product, and of c before tanh",
    .n_gates = 4,
    .gates = gates,
    .n_states = 2,
    /* per unit: LN(W_ih x), LN(W_hh a) and the gates (4 each), LN(c), tanh(...), and three
     * H-wide blocks holding one row's 1/σ of x, h and c (any H, even 1) */
    .n_save = 17,
    .n_stages = 1,
    .stages = stages,
    .flags = RECUR_CELL_RAW_PRODUCTS | RECUR_CELL_SPLIT_RECURRENT_GRAD | RECUR_CELL_ROW_KERNELS |
             RECUR_CELL_PROJECTABLE,
    .n_params = 5,
    .params = params,
    .cpu = lstm_ln_cpu,
    RECUR_CELL_OPENCL(lstm_ln_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = lstm_ln_cpu_fill();
    *out = &desc;
    return 0;
}
