/*
 * row-overrun.c: a cell whose forward kernel writes one float past its row
 * of next[0] (a loop to j <= H: in a model, over the first unit of the next
 * row, which a thread working on that row may be writing at the same time,
 * and past the end of the last row). The loader's probe (core/cellprobe.c)
 * must refuse it: RECUR_ERR_PLUGIN_INVALID, naming the cell, the stage, the
 * forward kernel and next[0].
 */
#include "echo-cell.h"

static void row_overrun_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *xw = a->xw + (size_t)row * H, *hw = a->hw + (size_t)row * H;
        float *h = a->next[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) h[j] = xw[j] + hw[j];
        h[H] = 0.0f; /* the bug: one past the row */
    }
}

static const struct recur_cell_cpu row_overrun_cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {row_overrun_forward}, .backward = {echo_backward}},
};

static struct recur_cell_desc desc = {ECHO_DESC("row-overrun")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.cpu = row_overrun_cpu;
    *out = &desc;
    return 0;
}
