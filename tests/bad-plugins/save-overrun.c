/*
 * save-overrun.c: a cell that saves two floats per unit but declares
 * n_save = 1, so each row's forward writes H floats past its share of save
 * (in a model: over the next row's, or past the workspace). The loader's
 * probe (core/cellprobe.c) must refuse it: RECUR_ERR_PLUGIN_INVALID, naming
 * save.
 */
#include "echo-cell.h"

static void overrun_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *xw = a->xw + (size_t)row * H, *hw = a->hw + (size_t)row * H;
        float *h = a->next[0] + (size_t)row * H;
        float *save = a->save + (size_t)row * 2 * H; /* the bug: 2 floats per unit, 1 declared */
        for (int j = 0; j < H; j++) {
            h[j] = xw[j] + hw[j];
            save[j] = xw[j];
            save[H + j] = hw[j];
        }
    }
}

static const struct recur_cell_cpu overrun_cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {overrun_forward}, .backward = {echo_backward}},
};

static struct recur_cell_desc desc = {ECHO_DESC("save-overrun")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.n_save = 1;
    desc.cpu = overrun_cpu;
    *out = &desc;
    return 0;
}
