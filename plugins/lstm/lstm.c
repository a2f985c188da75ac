/*
 * lstm.c: the LSTM cell plugin, PyTorch's nn.LSTM (no peepholes).
 * One stage: one recurrent product of a^{<t-1>} with all four gates, one
 * pointwise kernel. Gate order i, f, g, o, the same as PyTorch's.
 */
#include "recur/recur-cell.h"

/* lstm_cpu[]: the kernel tables lstm-kernels.c makes, one per ISA of this architecture. */
RECUR_CELL_CPU_TABLES(lstm)
extern const char lstm_opencl[];

static const struct recur_cell_gate gates[] = {
    {.name = "i", .torch_index = 0},
    {.name = "f", .torch_index = 1},
    {.name = "g", .torch_index = 2},
    {.name = "o", .torch_index = 3},
};

static const struct recur_cell_stage stages[] = {{0, 4}};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "lstm",
    .version = "1.0",
    .summary = "LSTM, PyTorch's nn.LSTM: gates i, f, g, o; c = f*c + i*g, a = o*tanh(c)",
    .n_gates = 4,
    .gates = gates,
    .n_states = 2,
    .n_save = 5,
    .n_stages = 1,
    .stages = stages,
    .flags = RECUR_CELL_PROJECTABLE, /* a^{<t-1>} only through W_hh: proj_size works */
    .cpu = lstm_cpu,
    RECUR_CELL_OPENCL(lstm_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = lstm_cpu_fill();
    *out = &desc;
    return 0;
}
