/*
 * wrong-backward.c: a complete, valid test plugin whose backward is wrong on
 * purpose, the fixture that `recur gradcheck` must reject (exit 1).
 *
 * The cell "wrong-backward" is the one-gate identity cell
 *
 *   a^{<t>} = W_ih x^{<t>} + b_ih + b_hh + W_hh a^{<t-1>}
 *
 * whose true backward is dxw = da^{<t>}. This one returns dxw = 1.1 da^{<t>},
 * so every weight, bias and input gradient comes out too large (by 10% and
 * more, as the error compounds through W_hh over the steps). Forward is
 * right, so the loss and finite differences are the true ones. It ships the
 * same (wrong) kernels in OpenCL C, so the check fails for the same reason
 * on every device, not because a device cannot run the cell.
 */
#include "recur/recur-cell.h"

#define WRONG_FACTOR 1.1f

static void wrong_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *xw = a->xw + (size_t)row * H, *hw = a->hw + (size_t)row * H;
        float *h = a->next[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) h[j] = xw[j] + hw[j];
    }
}

static void wrong_backward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *dh = a->dnext[0] + (size_t)row * H;
        float *dxw = a->dxw + (size_t)row * H, *dprev = a->dprev[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) {
            dxw[j] = WRONG_FACTOR * dh[j]; /* the bug: the true value is dh[j] */
            dprev[j] = 0.0f;               /* the engine adds W_hh^T dxw */
        }
    }
}

/* The same kernels for the OpenCL backend (recur-cell-cl.h is prepended). */
static const char wrong_opencl[] =
    "RECUR_CELL_KERNEL(wrong_backward_forward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t i = (size_t)r * (size_t)H + (size_t)j;\n"
    "    next0[i] = xw[i] + hw[i];\n"
    "}\n"
    "RECUR_CELL_KERNEL(wrong_backward_backward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t i = (size_t)r * (size_t)H + (size_t)j;\n"
    "    dxw[i] = 1.1f * dnext0[i];\n"
    "    dprev0[i] = 0.0f;\n"
    "}\n";

static const struct recur_cell_gate gates[] = {{.name = "a", .torch_index = 0}};
static const struct recur_cell_stage stages[] = {{0, 1}};
static const struct recur_cell_cpu cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {wrong_forward}, .backward = {wrong_backward}},
};

static const struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "wrong-backward",
    .version = "0.1",
    .summary = "test cell: a = W_ih x + b + W_hh a, with a backward 10% too large (gradcheck must fail)",
    .n_gates = 1,
    .gates = gates,
    .n_states = 1,
    .n_save = 0,
    .n_stages = 1,
    .stages = stages,
    .n_variants = 0,
    .variants = NULL,
    .flags = 0,
    .n_cpu = 1,
    .cpu = cpu,
    RECUR_CELL_OPENCL(wrong_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
