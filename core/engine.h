/*
 * engine.h: the layer engine's entry points (engine.c), over device memory,
 * for the public layer API (layer.c) and the stack (stack.c).
 */
#ifndef RECUR_ENGINE_H
#define RECUR_ENGINE_H

#include "layer.h"

/* A [T, N, width] sequence tensor on the device: element (t, n, j) lives at
 * m + ((t*st + n*sn) * ld + col + j) floats. Time-major dense: st = N, sn = 1,
 * ld = width, col = 0; batch-first: st = 1, sn = T. */
struct recur_seqview {
    struct recur_mem m;
    int ld, col, st, sn;
};

/* One call: a batch, its lengths and direction, and where everything is.
 * A mem or view whose buffer is NULL means zeros (inputs) or not wanted
 * (outputs). dy shares y's strides and dx shares x's. States are [N, H] in
 * the caller's sequence order. */
struct recur_run {
    int T, N;
    const int *lengths; /* host [N], each 1..T; NULL: all T */
    int reverse;        /* each sequence from its own last step to its first */
    struct recur_seqview x, y;
    int y_add;          /* add the outputs into y instead of writing them */
    struct recur_mem h0, c0, hT, cT;
    struct recur_seqview dy, dx;
    int dx_add;         /* add dx into the view instead of writing it */
    struct recur_mem dhT, dcT, dh0, dc0;
    uint64_t zo_stream; /* the zoneout masks' Philox stream (layer->zoneout > 0) */
    /* (optional) called at each step of backward's time loop, so that a
     * reduction over MPI moves its messages meanwhile (stack.c, dist.c) */
    recur_status (*poll)(void *arg);
    void *poll_arg;
};

/* Keep a copy of lengths (NULL: all T) in *keep; 0 on success. */
int recur_lengths_keep(int **keep, const int *lengths, int N);
/* The first n where two length arrays differ (NULL meaning all T), or -1. */
int recur_lengths_differ(const int *a, const int *b, int N, int T);

/* Forward; in training mode the layer's reserve keeps what backward needs. */
recur_status recur_engine_forward(recur_layer *l, recur_mode mode, const struct recur_run *r);
/* BPTT over the layer's last training forward, which had the same T, N and lengths. */
recur_status recur_engine_backward(recur_layer *l, const struct recur_run *r, recur_grad_mode mode);
/* Workspace and reserve floats of a dense batch, for recur_layer_sizes
 * (the forward and backward plan their buffers the same way). */
recur_status recur_engine_sizes(const recur_layer *l, int T, int N, size_t *ws_floats, size_t *rs_floats);
/* Where the reserve holds the saved values of the last training forward
 * (what its backward will read), how many, and whether as bf16 (2 bytes
 * each; else floats). RECUR_ERR_STATE when no backward is pending. */
recur_status recur_engine_saved(const recur_layer *l, struct recur_mem *at, size_t *count, int *bf16);

#endif
