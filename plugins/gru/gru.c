/*
 * gru.c: the GRU of the course notes, reset applied before the product:
 *   c̃ = tanh(W_c [Γ_r * c^{<t-1>}, x^{<t>}] + b_c),  c = Γ_u * c̃ + (1 - Γ_u) * c^{<t-1>}
 * Two stages: the product for Γ_u, Γ_r; then, once Γ_r is known, the product
 * of Γ_r * c^{<t-1>} for the candidate. Gates in canonical order u, r, c.
 *
 * PyTorch has no such GRU. Its layout for this cell (RECUR_LAYOUT_TORCH) is
 * the ONNX / Keras (reset_after=False) one with gates r, z, n and z = 1 - Γ_u,
 * stored negated (1 - σ(a) = σ(-a)): torch gate 0 = r, 1 = -u, 2 = c.
 */
#include "recur/recur-cell.h"

/* gru_cpu[]: the kernel tables gru-kernels.c makes, one per ISA of this architecture. */
RECUR_CELL_CPU_TABLES(gru)
extern const char gru_opencl[];

static const struct recur_cell_gate gates[] = {
    {.name = "u", .torch_index = 1, .torch_negate = 1},
    {.name = "r", .torch_index = 0},
    {.name = "c", .torch_index = 2},
};

static const struct recur_cell_stage stages[] = {{0, 2}, {2, 3}};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "gru",
    .version = "1.0",
    .summary = "GRU of the course notes, reset before the product: c~ = tanh(W_c[r*c, x] + b_c)",
    .n_gates = 3,
    .gates = gates,
    .n_states = 1,
    .n_save = 3,
    .n_stages = 2,
    .stages = stages,
    .cpu = gru_cpu,
    RECUR_CELL_OPENCL(gru_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = gru_cpu_fill();
    *out = &desc;
    return 0;
}
