/*
 * cl-save-overrun.c: a complete, valid test plugin whose C kernels keep to
 * n_save = 1 but whose OpenCL forward saves two floats per unit, as if n_save
 * were 2: each row writes over the next row's save and the last row past the
 * end of save (in a model, into the reserve after it). The loader probes only
 * the CPU kernels, and the outputs may well agree, so the fixture on which
 * `recur gradcheck` on OpenCL must fail by its kernel-by-kernel check,
 * naming stage 0's forward kernel and save (tests/meson.build).
 *
 * The cell "cl-save-overrun", one gate, one state:
 *   a^{<t>} = tanh(pre),  save = pre,  dpre = da (1 - a²)
 * where pre = W_ih x + b_ih + b_hh + W_hh a^{<t-1>}.
 */
#include <math.h>

#include "recur/recur-cell.h"

static void so_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++)
        for (int j = 0; j < H; j++) {
            size_t i = (size_t)row * H + j;
            float pre = a->xw[i] + a->hw[i];
            a->next[0][i] = tanhf(pre);
            if (a->save) a->save[i] = pre; /* NULL in inference */
        }
}

static void so_backward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++)
        for (int j = 0; j < H; j++) {
            size_t i = (size_t)row * H + j;
            float h = a->next[0][i];
            a->dxw[i] = a->dnext[0][i] * (1.0f - h * h);
            a->dprev[0][i] = 0.0f; /* the engine adds W_hh^T dxw */
        }
}

static const char so_opencl[] =
    "RECUR_CELL_KERNEL(cl_save_overrun_forward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t i = (size_t)r * (size_t)H + (size_t)j;\n"
    "    const float pre = xw[i] + hw[i];\n"
    "    next0[i] = tanh(pre);\n"
    "    if (save) {\n"
    "        save[(size_t)r * 2 * H + j] = pre;          /* the bug: two floats a unit, */\n"
    "        save[(size_t)r * 2 * H + H + j] = next0[i]; /* n_save = 1 declared */\n"
    "    }\n"
    "}\n"
    "RECUR_CELL_KERNEL(cl_save_overrun_backward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t i = (size_t)r * (size_t)H + (size_t)j;\n"
    "    const float h = next0[i];\n"
    "    dxw[i] = dnext0[i] * (1.0f - h * h);\n"
    "    dprev0[i] = 0.0f;\n"
    "}\n";

static const struct recur_cell_gate gates[] = {{.name = "a", .torch_index = 0}};
static const struct recur_cell_stage stages[] = {{0, 1}};
static const struct recur_cell_cpu cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {so_forward}, .backward = {so_backward}},
};

static const struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "cl-save-overrun",
    .version = "0.1",
    .summary = "test cell: tanh; its OpenCL forward saves 2 floats a unit with n_save = 1 (gradcheck must fail on OpenCL)",
    .n_gates = 1,
    .gates = gates,
    .n_states = 1,
    .n_save = 1,
    .n_stages = 1,
    .stages = stages,
    .n_cpu = 1,
    .cpu = cpu,
    RECUR_CELL_OPENCL(so_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
