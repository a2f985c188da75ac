/*
 * rnn.c: the vanilla (Elman) RNN plugin, PyTorch's nn.RNN:
 *   a^{<t>} = g(W_aa a^{<t-1>} + W_ax x^{<t>} + b_a), g = tanh (default) or relu.
 * PyTorch's weight_hh is W_aa, weight_ih is W_ax, and b_a = bias_ih + bias_hh.
 */
#include "recur/recur-cell.h"

/* rnn_cpu[]: the kernel tables rnn-kernels.c makes, one per ISA of this architecture. */
RECUR_CELL_CPU_TABLES(rnn)
extern const char rnn_opencl[];

static const struct recur_cell_gate gates[] = {{.name = "a", .torch_index = 0}};
static const struct recur_cell_stage stages[] = {{0, 1}};
static const char *const variants[] = {"tanh", "relu"};
static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "rnn",
    .version = "1.0",
    .summary = "vanilla RNN, PyTorch's nn.RNN: a = g(W_aa a + W_ax x + b), g = tanh or relu",
    .n_gates = 1,
    .gates = gates,
    .n_states = 1,
    .n_save = 0,
    .n_stages = 1,
    .stages = stages,
    .n_variants = 2,
    .variants = variants,
    .cpu = rnn_cpu,
    RECUR_CELL_OPENCL(rnn_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = rnn_cpu_fill();
    *out = &desc;
    return 0;
}
