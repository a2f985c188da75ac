/*
 * context.h: the context object shared by the core's files.
 */
#ifndef RECUR_CONTEXT_H
#define RECUR_CONTEXT_H

#include "backend-impl.h"
#include "error.h"

struct recur_ctx {
    struct recur_backend be; /* the opened device */
    char msg[RECUR_MSG_MAX]; /* last failure on this context */
    struct recur_layer *layers; /* live layers, freed with the context */
    struct recur_model *models; /* live models, freed with the context */
    struct recur_net *nets;     /* live nets (recur-train.h), freed before the models */
    struct recur_optim *optims; /* live optimizers, freed first */
    struct recur_buffer *buffers; /* live device buffers (recur_buffer_create), freed last */
};

/* A device buffer of the public API (core/buffer.c). */
struct recur_buffer {
    recur_ctx *ctx;
    struct recur_mem mem;
    size_t count; /* floats */
    struct recur_buffer *prev, *next;
};
/* Free every buffer of ctx (recur_ctx_free). */
void recur_buffers_free(recur_ctx *ctx);

/* The plugin registry (core/plugin.c). Loads on first use; thread-safe. */
size_t recur_cells_loaded(void);
const struct recur_cell *recur_cell_at(size_t i);
const struct recur_cell *recur_cell_find(const char *name);
/* A comma-separated list of the registered cell names, for messages. */
void recur_cell_names(char *buf, size_t len);

/* cellprobe.c: runs each CPU kernel variant of d that cpu_isa can run on
 * tiny guarded arrays; NULL when every kernel kept to its arrays, else why
 * (written to why). */
const char *recur_cell_probe(const struct recur_cell_desc *d, uint32_t cpu_isa, char *why, size_t len);

#endif /* RECUR_CONTEXT_H */
