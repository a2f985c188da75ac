/*
 * lstm-peephole.c: the LSTM with peephole connections of Gers and
 * Schmidhuber (2000), as oneDNN's vanilla_lstm with weights_peephole: the
 * input and forget gates see c^{<t-1>}, the output gate sees c^{<t>}, each
 * through a diagonal (one weight per unit). Gates i, f, g, o as PyTorch's
 * nn.LSTM; the peepholes are the cell's own parameter weight_peephole [3, H]
 * (rows i, f, o: oneDNN's order).
 */
#include "recur/recur-cell.h"

RECUR_CELL_CPU_TABLES(lstm_peephole)
extern const char lstm_peephole_opencl[];

static const struct recur_cell_gate gates[] = {
    {.name = "i", .torch_index = 0},
    {.name = "f", .torch_index = 1},
    {.name = "g", .torch_index = 2},
    {.name = "o", .torch_index = 3},
};
static const struct recur_cell_stage stages[] = {{0, 4}};
static const struct recur_cell_param params[] = {
    {.name = "weight_peephole", .rows = 3, .cols = RECUR_CELL_DIM_H, .init = RECUR_CELL_INIT_UNIFORM},
};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "lstm-peephole",
    .version = "1.0",
    .summary = "LSTM with peepholes (oneDNN): i, f see p*c^{<t-1>}, o sees p*c^{<t>}",
    .n_gates = 4,
    .gates = gates,
    .n_states = 2,
    .n_save = 5,
    .n_stages = 1,
    .stages = stages,
    .flags = RECUR_CELL_PROJECTABLE, /* a^{<t-1>} only through W_hh: proj_size works */
    .n_params = 1,
    .params = params,
    .cpu = lstm_peephole_cpu,
    RECUR_CELL_OPENCL(lstm_peephole_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = lstm_peephole_cpu_fill();
    *out = &desc;
    return 0;
}
