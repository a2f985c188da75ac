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
    /* recur_buffer_write_ids: a host copy of the ids written, valid for the
     * elements [ids_lo, ids_hi) (empty when equal). A float write over them
     * or a call that writes the buffer forgets them (recur_buffer_forget_ids). */
    int32_t *ids;
    size_t ids_lo, ids_hi;
    struct recur_buffer *prev, *next;
};
/* Free every buffer of ctx (recur_ctx_free). */
void recur_buffers_free(recur_ctx *ctx);
/* The device wrote b (an output of a call): its ids are no longer known. */
void recur_buffer_forget_ids(const recur_buffer *b);
/* The ids of b's elements [0, count) as written by recur_buffer_write_ids,
 * or NULL when some of them were not (or were overwritten since). */
const int32_t *recur_buffer_ids(const recur_buffer *b, size_t count);

/* One buffer argument of a device-resident call: its field name, the floats
 * the batch needs, whether the call writes it, and where the call finds it. */
struct recur_dev_arg {
    const char *name;
    const recur_buffer *buf;
    size_t floats;
    int out;
    struct recur_mem *dev;
};
/* Each given buffer on ctx, large enough, and no output sharing a buffer
 * with another argument (inputs_copied: with another output; an output may
 * then be an input, which the call copies before it writes anything). Each
 * refusal names the field (fn: the call). */
recur_status recur_dev_args(recur_ctx *ctx, const char *fn, const struct recur_dev_arg *a, int n, int inputs_copied);
/* The call passed its checks and will write its outputs: they forget their ids. */
void recur_dev_args_written(const struct recur_dev_arg *a, int n);

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
