/*
 * indrnn.c: the independently recurrent network of Li et al. (2018):
 *   a^{<t>} = g(W_ih x^{<t>} + b_ih + b_hh + u * a^{<t-1>}),  g = relu (default) or tanh
 * Each unit sees only its own past through the diagonal u: no recurrent
 * matrix, so the cell's one stage has no product (a pointwise stage) and u
 * is its own parameter, weight_hh [H]. Two biases, as PyTorch's nn.RNN.
 */
#include "recur/recur-cell.h"

RECUR_CELL_CPU_TABLES(indrnn)
extern const char indrnn_opencl[];

static const struct recur_cell_gate gates[] = {{.name = "a", .torch_index = 0}};
static const struct recur_cell_stage stages[] = {{0, 0}}; /* no recurrent product */
static const struct recur_cell_param params[] = {
    {.name = "weight_hh", .rows = 1, .cols = RECUR_CELL_DIM_H, .init = RECUR_CELL_INIT_UNIFORM},
};
static const char *const variants[] = {"relu", "tanh"};

static struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "indrnn",
    .version = "1.0",
    .summary = "IndRNN (Li et al. 2018): a = g(W x + b + u*a), u a diagonal; g = relu or tanh",
    .n_gates = 1,
    .gates = gates,
    .n_states = 1,
    .n_save = 0,
    .n_stages = 1,
    .stages = stages,
    .n_variants = 2,
    .variants = variants,
    .n_params = 1,
    .params = params,
    .cpu = indrnn_cpu,
    RECUR_CELL_OPENCL(indrnn_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_cpu = indrnn_cpu_fill();
    *out = &desc;
    return 0;
}
