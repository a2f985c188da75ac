/*
 * layer.h: the layer object, shared by layer.c (creation, the public calls),
 * engine.c (forward and backward), weights.c (the weights by block and gate)
 * and the models that own layers (model.c, stack.c, modelfile.c, nets).
 */
#ifndef RECUR_LAYER_H
#define RECUR_LAYER_H

#include "arena.h"

struct recur_layer {
    recur_ctx *ctx;
    const struct recur_cell *cell;
    void *kern; /* the backend's handle for the cell (recur_be_cell_open) */
    int I, H, G, n_states, n_save, n_stages, variant, split_grad;
    size_t n_weights;
    /* canonical layout on the device: [W_ih, W_hh, b_ih, b_hh] */
    struct recur_mem w, dw;
    /* W_hh^T [H, G*H]: the per-step product a W_hh^T as a plain (N, N)
     * GEMM, about 3x faster at small batch than transposing W_hh each call.
     * Rebuilt when w_version moves past wt_version. */
    struct recur_mem wt;
    unsigned w_version, wt_version;
    /* the engine's scratch (workspace) and saved activations (reserve) */
    struct recur_arena ws, rs;
    /* shape of the training forward whose activations the reserve holds; 0: none */
    int trained_T, trained_N, trained_R; /* R: the sum of its lengths */
    int *trained_len;                    /* its lengths ([trained_N]; NULL: all T) */
    int trained_reverse;
    struct recur_arena io;               /* the public calls' host arrays on a non-host device */
    struct recur_layer *prev, *next; /* the context's live layers (not a model's) */
    int owned;                       /* 1: part of a model, which frees it */
};

/* Note that the weights changed (every writer of l->w calls it). */
static inline void recur_layer_touch(recur_layer *l) { l->w_version++; }

/* RECUR_ERR_ARG when T x N rows of this layer would not fit GEMM's int
 * dimensions or a buffer's size_t. */
recur_status recur_layer_check_size(const recur_layer *l, int T, int N, const char *fn);

/* Checks the public calls of layers, models and nets share, each an error
 * naming fn and the value: a mode outside its enum (RECUR_ERR_ARG); an
 * array of the cell state (a or b, named as the caller spells them,
 * "io->c0") given to a cell without one (RECUR_ERR_SHAPE); and a backward's
 * mode and dcT, dc0 (l: the first layer). */
recur_status recur_check_mode(recur_ctx *ctx, const char *fn, recur_mode mode);
recur_status recur_layer_check_c(const recur_layer *l, const char *fn, const void *a, const char *a_name, const void *b,
                                 const char *b_name);
recur_status recur_layer_check_grad(const recur_layer *l, const char *fn, recur_grad_mode mode, const float *dcT,
                                    const float *dc0);

/* Take a layer off its context's list of live layers (a model adopts it). */
void recur_layer_unlink(recur_layer *l);

/* Free a layer, whoever owns it. */
void recur_layer_destroy(recur_layer *l);

/* One of the four blocks (0 W_ih, 1 W_hh, 2 b_ih, 3 b_hh) in a layout:
 * its size in floats, and access to the weights or (grads 1) gradients. */
size_t recur_layer_block_count(const recur_layer *l, int block);
recur_status recur_layer_block_set(recur_layer *l, int block, recur_layout layout, const float *src);
recur_status recur_layer_block_get(const recur_layer *l, int block, recur_layout layout, int grads, float *dst);

#endif /* RECUR_LAYER_H */
