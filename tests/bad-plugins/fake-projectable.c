/*
 * fake-projectable.c: claims RECUR_CELL_PROJECTABLE, but its forward kernel
 * reads a^{<t-1>} itself (a = xw + hw + a^{<t-1>}/2, a leaky echo): a layer
 * that projected it would hand it zeros there. The probe sees the outputs
 * change with prev[0]: RECUR_ERR_PLUGIN_INVALID naming prev[0].
 */
#include "echo-cell.h"

static void leaky_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *xw = a->xw + (size_t)row * H, *hw = a->hw + (size_t)row * H;
        const float *prev = a->prev[0] + (size_t)row * H;
        float *h = a->next[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) h[j] = xw[j] + hw[j] + 0.5f * prev[j];
    }
}

static const struct recur_cell_cpu leaky_cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {leaky_forward}, .backward = {echo_backward}},
};

static struct recur_cell_desc desc = {ECHO_DESC("fake-projectable")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.flags = RECUR_CELL_PROJECTABLE;
    desc.cpu = leaky_cpu;
    *out = &desc;
    return 0;
}
