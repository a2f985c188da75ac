/*
 * echo-cell.h: the pieces of a tiny, valid one-gate cell that the test
 * plugins of this folder share (each plugin breaks one thing on purpose).
 *
 *   a^{<t>} = pre = W_ih x^{<t>} + b_ih + b_hh + W_hh a^{<t-1>}   (identity activation)
 *   forward:  next[0] = xw + hw
 *   backward: dxw = dnext[0], dprev[0] = 0 (the engine adds the product)
 */
#ifndef ECHO_CELL_H
#define ECHO_CELL_H

#include "recur/recur-cell.h"

static void echo_forward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *xw = a->xw + (size_t)row * H, *hw = a->hw + (size_t)row * H;
        float *h = a->next[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) h[j] = xw[j] + hw[j];
    }
}

static void echo_backward(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int row = 0; row < a->n; row++) {
        const float *dh = a->dnext[0] + (size_t)row * H;
        float *dxw = a->dxw + (size_t)row * H, *dprev = a->dprev[0] + (size_t)row * H;
        for (int j = 0; j < H; j++) {
            dxw[j] = dh[j];
            dprev[j] = 0.0f;
        }
    }
}

static const struct recur_cell_gate echo_gates[] = {{.name = "a", .torch_index = 0}};
static const struct recur_cell_stage echo_stages[] = {{0, 1}};
static const struct recur_cell_cpu echo_cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {echo_forward}, .backward = {echo_backward}},
};

/* The initialiser of a complete, valid descriptor named `cell_name`. A broken
 * plugin starts from it and spoils one field in its entry function. */
#define ECHO_DESC(cell_name)                                                                        \
    .abi_version = RECUR_CELL_ABI_VERSION, .struct_size = sizeof(struct recur_cell_desc),           \
    .name = (cell_name), .version = "0.1", .summary = "test cell: a = W_ih x + b + W_hh a",       \
    .n_gates = 1, .gates = echo_gates, .n_states = 1, .n_save = 0, .n_stages = 1,                   \
    .stages = echo_stages, .n_variants = 0, .variants = NULL, .flags = 0, .n_cpu = 1,               \
    .cpu = echo_cpu

#endif
