/*
 * layer.h: the layer object shared by layer.c (the engine) and weights.c.
 */
#ifndef RECUR_LAYER_H
#define RECUR_LAYER_H

#include "context.h"

struct recur_layer {
    recur_ctx *ctx;
    const struct recur_cell *cell;
    void *kern; /* the backend's handle for the cell (recur_be_cell_open) */
    int I, H, G, n_states, n_save, n_stages, variant, split_grad;
    size_t n_weights;
    /* canonical layout on the device: [W_ih, W_hh, b_ih, b_hh] */
    struct recur_mem w, dw;
    /* scratch and saved activations, grown (outside the time loop) as needed */
    struct recur_mem ws, rs;
    size_t ws_floats, rs_floats;
    /* shape of the training forward whose activations the reserve holds; 0: none */
    int trained_T, trained_N;
    struct recur_layer *prev, *next; /* the context's live layers */
};

#endif /* RECUR_LAYER_H */
