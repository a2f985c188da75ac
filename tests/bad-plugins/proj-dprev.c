/*
 * proj-dprev.c: claims RECUR_CELL_PROJECTABLE, but its backward kernel
 * writes dL/da^{<t>} into dprev[0] instead of zeros (the engine drops
 * dprev[0] of a projecting layer, so that gradient would be lost):
 * RECUR_ERR_PLUGIN_INVALID naming dprev[0].
 */
#include "echo-cell.h"

static void leaky_backward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *dh = a->dnext[0] + (size_t)row * H;
        float *dxw = a->dxw + (size_t)row * H, *dprev = a->dprev[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) {
            dxw[j] = dh[j];
            dprev[j] = 0.5f * dh[j];
        }
    }
}

static const struct recur_cell_cpu cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {echo_forward}, .backward = {leaky_backward}},
};

static struct recur_cell_desc desc = {ECHO_DESC("proj-dprev")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.flags = RECUR_CELL_PROJECTABLE;
    desc.cpu = cpu;
    *out = &desc;
    return 0;
}
