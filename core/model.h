/*
 * model.h: the model object (a stack of layers and directions), shared by
 * model.c (creation, parameters), stack.c (forward and backward),
 * modelfile.c (model files) and the nets (net.c, optim.c, trainfile.c).
 */
#ifndef RECUR_MODEL_H
#define RECUR_MODEL_H

#include "layer.h"

#define RECUR_MAX_LAYERS 64

/* A net's backward pass, as it goes, for whoever reduces gradients while it
 * runs (core/dist.c, over MPI). The pass calls the hook with BEGIN before it
 * writes any gradient, then once each part's gradients are final (the last
 * write to them enqueued), in the order backward finishes them: HEAD (the
 * head's weight and bias, net.c), LAYER l for l = L-1 .. 0 (both directions
 * of layer l, stack.c), INPUT (the embedding, net.c); and POLL at every
 * step of a layer's backward time loop. A status other than
 * RECUR_OK fails the backward call with it. Core only: the backend never
 * sees it, and a model outside a net has none. */
enum recur_grad_part {
    RECUR_GRAD_PART_BEGIN,
    RECUR_GRAD_PART_HEAD,
    RECUR_GRAD_PART_LAYER,
    RECUR_GRAD_PART_INPUT,
    RECUR_GRAD_PART_POLL /* no part: a step of a layer's time loop (engine.c), to move messages */
};
struct recur_grad_hook {
    recur_status (*fn)(void *arg, enum recur_grad_part part, int layer);
    void *arg;
};

struct recur_model {
    recur_ctx *ctx;
    recur_model_desc desc; /* cell and variant point into the cell's descriptor */
    int L, D, O;           /* layers, directions, output width (D*P for concat, else P) */
    int P;                 /* a layer's output and state-0 width: proj_size, or H */
    recur_layer **layers;  /* [L*D], index l*D + d */
    uint64_t calls;        /* training forwards so far: the dropout RNG's call number */
    struct recur_arena acts; /* every layer's output (and dropped-out input) and two gradients */
    struct recur_arena io;   /* the public calls' host arrays on a non-host device */
    int trained_T, trained_N, trained_batch_first;
    int *trained_len;        /* the lengths of the last training forward (NULL: all T) */
    uint64_t trained_call;   /* the call number of the last training forward */
    struct recur_model *prev, *next; /* the context's live models (not a net's) */
    int owned;                       /* 1: part of a net, which frees it */
    struct recur_grad_hook grad_hook; /* a net's, set by an optimizer over MPI; fn NULL: none */
};

/* recur_grad_ready: the hook's call, nothing when no hook is set. */
static inline recur_status recur_grad_ready(const recur_model *m, enum recur_grad_part part, int layer) {
    return m->grad_hook.fn ? m->grad_hook.fn(m->grad_hook.arg, part, layer) : RECUR_OK;
}

/* Floats of state k of every layer and direction for N sequences: a's
 * ([L*D, N, P], k 0) or c's ([L*D, N, H], k 1). */
static inline size_t recur_model_states(const recur_model *m, int N, int k) {
    return (size_t)m->L * (size_t)m->D * (size_t)N * (size_t)(k ? m->desc.hidden_size : m->P);
}

/* A net adopts a model: off the context's list, and recur_model_free
 * leaves it to the net, which frees it with recur_model_destroy. */
void recur_model_adopt(recur_model *m);
void recur_model_destroy(recur_model *m);

/* The param info of tensor i (PyTorch order) and the layer it belongs to;
 * *block indexes the layer's tensors (layer->t: weight_ih, weight_hh, bias_ih,
 * bias_hh, those the cell has, then its own parameters). */
recur_status recur_model_param_at(const recur_model *m, size_t i, recur_param_info *info, recur_layer **layer,
                                  int *block);
/* The first recur_param_info, which every caller's must hold (recur_*_param_info_sized). */
#define RECUR_PARAM_INFO_FIRST (offsetof(recur_param_info, count) + sizeof(size_t))

/* The model-file loaders on a buffer in memory (modelfile.c); `name` stands
 * for the file in messages. recur_model_load and _load_weights read the file
 * and call these; the fuzz target calls them directly. */
recur_status recur_model_load_memory(recur_ctx *ctx, const char *name, const void *buf, size_t len, uint32_t flags,
                                     recur_model **out);
recur_status recur_model_load_weights_memory(recur_model *model, const char *name, const void *buf, size_t len,
                                             uint32_t flags);

/* A model call on device memory (stack.c), for the public calls (which copy
 * the caller's host arrays through host I/O, arena.h) and for nets
 * (core/net.c), whose tensors live on the device. A mem whose buf is NULL means zeros (inputs) or not wanted.
 * The shapes are recur_model_io's. */
struct recur_stack_io {
    int T, N, batch_first;
    const int *lengths; /* host [N] or NULL */
    float pad;
    struct recur_mem x, y, h0, c0, hT, cT;
};
struct recur_stack_grad {
    struct recur_mem dy, dhT, dcT, dx, dh0, dc0;
};
/* Checked as the public calls are (T, N, lengths; backward: the training
 * forward it goes back through). Asynchronous: the caller syncs. */
recur_status recur_stack_forward(recur_model *m, recur_mode mode, const struct recur_stack_io *io);
recur_status recur_stack_backward(recur_model *m, const struct recur_stack_io *io, const struct recur_stack_grad *g,
                                  recur_grad_mode mode);

#endif
