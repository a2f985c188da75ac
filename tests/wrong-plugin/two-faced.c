/*
 * two-faced.c: a complete, valid test plugin whose OpenCL kernels compute a
 * different function from its C kernels, each with its own correct
 * gradient: the fixture on which `recur gradcheck` must fail on OpenCL
 * (its outputs disagree with cpu:scalar's) although its finite differences
 * pass there.
 *
 * The cell "two-faced", one gate, one state:
 *   C (the reference):  a^{<t>} =  tanh(pre),  dpre =  da (1 - a²)
 *   OpenCL:             a^{<t>} = -tanh(pre),  dpre = -da (1 - a²)
 * where pre = W_ih x + b_ih + b_hh + W_hh a^{<t-1>}: the sign slip of a
 * gate's polarity copied wrongly from one file to the other.
 */
#include <math.h>

#include "recur/recur-cell.h"

static void tf_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *xw = a->xw + (size_t)row * H, *hw = a->hw + (size_t)row * H;
        float *h = a->next[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) h[j] = tanhf(xw[j] + hw[j]);
    }
}

static void tf_backward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *h = a->next[0] + (size_t)row * H, *dh = a->dnext[0] + (size_t)row * H;
        float *dxw = a->dxw + (size_t)row * H, *dprev = a->dprev[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) {
            dxw[j] = dh[j] * (1.0f - h[j] * h[j]);
            dprev[j] = 0.0f; /* the engine adds W_hh^T dxw */
        }
    }
}

static const char tf_opencl[] =
    "RECUR_CELL_KERNEL(two_faced_forward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t i = (size_t)r * (size_t)H + (size_t)j;\n"
    "    next0[i] = -tanh(xw[i] + hw[i]);\n"
    "}\n"
    "RECUR_CELL_KERNEL(two_faced_backward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t i = (size_t)r * (size_t)H + (size_t)j;\n"
    "    const float h = next0[i];\n"
    "    dxw[i] = -dnext0[i] * (1.0f - h * h);\n"
    "    dprev0[i] = 0.0f;\n"
    "}\n";

static const struct recur_cell_gate gates[] = {{.name = "a", .torch_index = 0}};
static const struct recur_cell_stage stages[] = {{0, 1}};
static const struct recur_cell_cpu cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {tf_forward}, .backward = {tf_backward}},
};

static const struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "two-faced",
    .version = "0.1",
    .summary = "test cell: tanh in C, -tanh in OpenCL, each with its own right gradient (gradcheck must fail on OpenCL)",
    .n_gates = 1,
    .gates = gates,
    .n_states = 1,
    .n_save = 0,
    .n_stages = 1,
    .stages = stages,
    .n_cpu = 1,
    .cpu = cpu,
    RECUR_CELL_OPENCL(tf_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
