/*
 * gru-ln.c: the layer-normalised GRU of Haste (lmnt-com/haste,
 * LayerNormGRU; a linear-before-reset GRU, arXiv 1406.1078v1, with layer
 * normalisation of its two products):
 *
 *   xv = γ_x * LN(W_ih x^{<t>}) + b        hv = γ_h * LN(W_hh a^{<t-1>}) + b_r   (each LN over 3H)
 *   r = σ(xv_r + hv_r)    z = σ(xv_z + hv_z)    n = tanh(xv_n + r * hv_n)
 *   a^{<t>} = z * a^{<t-1>} + (1 - z) * n
 *
 * LN(v) = (v - mean) / sqrt(var + 1e-5), population variance, no shift of
 * its own; nothing else is normalised. Gates r, z, n as PyTorch's nn.GRU
 * (Haste orders its blocks z, r, g). The products are raw (no b_ih, b_hh):
 * the cell's own parameters are gamma_x, gamma_h [3H] (Haste's gamma[0],
 * gamma[1]), bias [3H] (Haste's bias, added outside the LN of the input
 * product) and recurrent_bias [3H] (Haste's recurrent_bias, inside the reset
 * product r * hv_n). Its OpenCL kernels are row kernels: one work-group per
 * row, reducing with barriers. tests/ref/ref-cell.c cites Haste's lines.
 */
#include "recur/recur-cell.h"

RECUR_CELL_CPU_TABLES(gru_ln)
extern const char gru_ln_opencl[];

static const struct recur_cell_gate gates[] = {
    {.name = "r", .torch_index = 0},
    {.name = "z", .torch_index = 1},
    {.name = "n", .torch_index = 2},
};
static const struct recur_cell_stage stages[] = {{0, 3}};
static const struct recur_cell_param params[] = {
    {.name = "gamma_x", .rows = 1, .cols = RECUR_CELL_DIM_GH, .init = RECUR_CELL_INIT_ONE},
    {.name = "gamma_h", .rows = 1, .cols = RECUR_CELL_DIM_GH, .init = RECUR_CELL_INIT_ONE},
    {.name = "bias", .rows = 1, .cols = RECUR_CELL_DIM_GH, .init = RECUR_CELL_INIT_ZERO},
    {.name = "recurrent_bias", .rows = 1, .cols = RECUR_CELL_DIM_GH, .init = RECUR_CELL_INIT_ZERO},
};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "gru-ln",
    .version = "1.0",
    .summary = "layer-normalised GRU (Haste's LayerNormGRU): LN of each product, b_r inside r * (...)",
    .n_gates = 3,
    .gates = gates,
    .n_states = 1,
    /* per unit: LN(W_ih x), LN(W_hh a) and the gates (3 each), hv_n, and two H-wide
     * blocks holding one row's 1/σ of x and h (any H, even 1) */
    .n_save = 12,
    .n_stages = 1,
    .stages = stages,
    .flags = RECUR_CELL_RAW_PRODUCTS | RECUR_CELL_SPLIT_RECURRENT_GRAD | RECUR_CELL_ROW_KERNELS,
    .n_params = 4,
    .params = params,
    .cpu = gru_ln_cpu,
    RECUR_CELL_OPENCL(gru_ln_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = gru_ln_cpu_fill();
    *out = &desc;
    return 0;
}
