/*
 * gru-simple.c: the simplified GRU of the course notes, update gate only:
 *   c̃^{<t>} = tanh(W_c [c^{<t-1>}, x^{<t>}] + b_c)
 *   Γ_u = σ(W_u [c^{<t-1>}, x^{<t>}] + b_u)
 *   c^{<t>} = Γ_u * c̃^{<t>} + (1 - Γ_u) * c^{<t-1>},   a^{<t>} = c^{<t>}
 * Gates u, c in that order, one stage. No PyTorch module has it; its layout
 * is the canonical one.
 */
#include "recur/recur-cell.h"

RECUR_CELL_CPU_TABLES(gru_simple)
extern const char gru_simple_opencl[];

static const struct recur_cell_gate gates[] = {{.name = "u", .torch_index = 0}, {.name = "c", .torch_index = 1}};
static const struct recur_cell_stage stages[] = {{0, 2}};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "gru-simple",
    .version = "1.0",
    .summary = "simplified GRU of the course notes: c = u*tanh(W_c[c, x] + b_c) + (1-u)*c, no reset gate",
    .n_gates = 2,
    .gates = gates,
    .n_states = 1,
    .n_save = 2,
    .n_stages = 1,
    .stages = stages,
    .cpu = gru_simple_cpu,
    RECUR_CELL_OPENCL(gru_simple_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = gru_simple_cpu_fill();
    *out = &desc;
    return 0;
}
