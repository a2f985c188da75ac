/*
 * writes-input.c: a cell whose forward uses prev[0] as scratch, though the
 * engine keeps a^{<t-1>} there for backward: RECUR_ERR_PLUGIN_INVALID from
 * the loader's probe (core/cellprobe.c), naming prev[0].
 */
#include "echo-cell.h"

static void scribble_forward(const struct recur_cell_args *a) {
    echo_forward(a);
    float *prev = (float *)a->prev[0]; /* the bug: prev is read only */
    for (int i = 0; i < a->n * a->H; i++) prev[i] = 0.0f;
}

static const struct recur_cell_cpu scribble_cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {scribble_forward}, .backward = {echo_backward}},
};

static struct recur_cell_desc desc = {ECHO_DESC("writes-input")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.cpu = scribble_cpu;
    *out = &desc;
    return 0;
}
