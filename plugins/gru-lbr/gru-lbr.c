/*
 * gru-lbr.c: the linear-before-reset GRU plugin, PyTorch's nn.GRU (cuDNN's).
 * One stage: W_h a^{<t-1>} for all three gates is one product, because the
 * reset gate multiplies the product's result (r * (W_hn a + b_hn)), not its
 * input. Gate order r, z, n, the same as PyTorch's.
 */
#include "recur/recur-cell.h"

/* gru_lbr_cpu[]: the kernel tables gru-lbr-kernels.c makes, one per ISA of this architecture. */
RECUR_CELL_CPU_TABLES(gru_lbr)
extern const char gru_lbr_opencl[];

static const struct recur_cell_gate gates[] = {
    {.name = "r", .torch_index = 0},
    {.name = "z", .torch_index = 1},
    {.name = "n", .torch_index = 2, .bias_hh_in_hw = 1},
};

static const struct recur_cell_stage stages[] = {{0, 3}};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "gru-lbr",
    .version = "1.0",
    .summary = "GRU, linear before reset (PyTorch's nn.GRU, cuDNN): n = tanh(W_in x + r*(W_hn a + b_hn))",
    .n_gates = 3,
    .gates = gates,
    .n_states = 1,
    .n_save = 4,
    .n_stages = 1,
    .stages = stages,
    .flags = RECUR_CELL_SPLIT_RECURRENT_GRAD,
    .cpu = gru_lbr_cpu,
    RECUR_CELL_OPENCL(gru_lbr_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = gru_lbr_cpu_fill();
    *out = &desc;
    return 0;
}
