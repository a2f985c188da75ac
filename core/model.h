/*
 * model.h: the model object (a stack of layers and directions), shared by
 * model.c (creation, parameters, the stack's forward and backward) and
 * modelfile.c (safetensors files).
 */
#ifndef RECUR_MODEL_H
#define RECUR_MODEL_H

#include "layer.h"

#define RECUR_MAX_LAYERS 64

struct recur_model {
    recur_ctx *ctx;
    recur_model_desc desc; /* cell and variant point into the cell's descriptor */
    int L, D, O;           /* layers, directions, output width */
    recur_layer **layers;  /* [L*D], index l*D + d */
    uint64_t calls;        /* training forwards so far: the dropout RNG's call number */
    /* device buffers of the stack's last training forward, grown as needed */
    struct recur_mem acts;  /* every layer's output (and dropped-out input) */
    size_t acts_floats;
    struct recur_mem stage; /* the caller's arrays on a non-host device */
    size_t stage_floats;
    int trained_T, trained_N, trained_batch_first;
    int *trained_len; /* the lengths of the last training forward (NULL: all T) */
    uint64_t trained_stream; /* the call number of the last training forward */
    struct recur_model *prev, *next; /* the context's live models */
};

/* The param info of tensor i (PyTorch order) and the layer it belongs to;
 * *block is 0..3 for weight_ih, weight_hh, bias_ih, bias_hh. */
recur_status recur_model_param_at(const recur_model *m, size_t i, recur_param_info *info, recur_layer **layer,
                                  int *block);

/* The model-file loaders on a buffer in memory (modelfile.c); `name` stands
 * for the file in messages. recur_model_load and _load_weights read the file
 * and call these; the fuzz target calls them directly. */
recur_status recur_model_load_memory(recur_ctx *ctx, const char *name, const void *buf, size_t len, uint32_t flags,
                                     recur_model **out);
recur_status recur_model_load_weights_memory(recur_model *model, const char *name, const void *buf, size_t len,
                                             uint32_t flags);

#endif
