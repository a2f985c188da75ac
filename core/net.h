/*
 * net.h: nets and optimizers (recur-train.h), shared by net.c, optim.c and
 * trainfile.c.
 */
#ifndef RECUR_NET_H
#define RECUR_NET_H

#include "recur/recur-train.h"
#include "model.h"

/* Where one call's tensors live in the net's scratch arena (offsets in
 * floats; the int32 arrays take one float's room per entry). 0-sized ones
 * are unused. */
struct net_plan {
    size_t gidx, aidx, tgt, x, y, h0, c0, hT, cT, logits, dz, vals, loss, parts;
    size_t dy, dx, dhT, dcT, dh0, dc0, total;
};

struct recur_net {
    recur_ctx *ctx;
    recur_net_desc desc;  /* desc.model.cell and .variant point into the cell's descriptor */
    recur_model *model;
    int V, I, O, F, K, H, L, D, S; /* vocab, model input, model output, head input, head output, ... */
    int P;                         /* a state's width of a (proj_size, or H); c's is H */
    /* the net's own parameters on the device, [embedding | head.weight | head.bias],
     * and their gradients in the same layout */
    size_t n_emb, n_hw, n_hb, n_own;
    struct recur_mem p, dp;
    struct recur_mem eye; /* RECUR_INPUT_ONEHOT: the [V, V] identity the lookup reads */
    struct recur_arena buf; /* scratch of the last forward, laid out by pl */
    struct net_plan pl;
    int32_t *host; /* host scratch for indices and targets */
    size_t host_cap;
    /* The loss of the last forward with targets: NET_LOSS_NONE, _DEVICE (the
     * partial sums wait at pl.parts: forward was given no loss pointer) or
     * _HOST (in loss); loss_count targets, loss_div the mean's divisor. */
    enum { NET_LOSS_NONE, NET_LOSS_DEVICE, NET_LOSS_HOST } loss_state;
    double loss, loss_div;
    long long loss_count;
    /* the last training forward: its shape and lengths; trained_T 0: none */
    int trained_T, trained_N, has_targets;
    int *trained_len;
    /* Loss scaling (recur_optim_set_loss_scale): the scale a forward
     * multiplies its loss's gradient by (1: none), the one the last
     * training forward with a loss used, and the one behind the gradients
     * since the last optimizer step (0: no loss's gradient in them). */
    double loss_scale, trained_scale, grad_scale;
    struct recur_net *prev, *next; /* the context's live nets */
};

struct recur_optim {
    recur_ctx *ctx;
    recur_optim_desc d;
    recur_net **nets;
    int n_nets;
    /* one group per contiguous parameter buffer: each net's own block, then
     * each of its model's layers */
    struct optim_group {
        struct recur_mem w, g; /* the parameters and gradients (not owned) */
        struct recur_mem m, v; /* the state (owned); v unused by SGD */
        size_t count;
        recur_layer *layer; /* touched after an update; NULL for a net's own block */
        int net;
        char name[48]; /* "own", "rnn.l0", "rnn.l0_reverse" */
    } *g;
    size_t n_groups;
    /* RECUR_SUM_PARTS per group for the norm, then per net for a loss that
     * a forward left on the device: both come back in one read */
    struct recur_mem parts;
    float *host_parts;
    long long steps;
    /* dynamic loss scaling: on, the scale 2^scale_log2, updates since it
     * last changed, its growth interval, and the steps skipped so far */
    int scaling, scale_log2, growth_interval;
    long long scale_good, skipped;
    struct recur_dist *dist; /* recur_optim_set_comm (dist.c); NULL: one process */
    double grad_weight;      /* this rank's weight in the average (1 by default) */
    size_t bucket_bytes;     /* recur_optim_set_bucket_size; bucket_set: given (else RECUR_MPI_BUCKET or default) */
    int bucket_set, accum;   /* accum: recur_optim_set_accum (1 by default) */
    struct recur_optim *prev, *next; /* the context's live optimizers */
};

/* Every net of the optimizer to multiply its loss's gradient by the
 * optimizer's loss scale (optim.c; trainfile.c after restoring it). */
void recur_optim_tell_nets(recur_optim *o);
#define RECUR_SCALE_LOG2_MAX 100

/* dist.c: the ranks' weighted mean of every group's gradients, in place
 * (nothing when o->dist is NULL): what the backward pass has not started
 * yet (through the models' grad_hook), then waits for all of it;
 * recur_dist_free on recur_optim_free. */
#define RECUR_DIST_BUCKET_DEFAULT ((size_t)1 << 20)
recur_status recur_dist_average(recur_optim *o);
void recur_dist_free(struct recur_dist *d);

/* The pieces of a net call that recur_net_forward/backward (host arrays,
 * net.c) and recur_net_forward_dev/backward_dev (buffers, netdev.c) share:
 * each checks its arguments, puts the batch into the net's scratch (n->pl)
 * its own way (staged host arrays, or device copies of the buffers), runs
 * the same recur_net_run_* and takes its outputs from the scratch. */
/* The batch's checks (T, N, lengths, tokens, targets, states); *count: the
 * targets counted. Fields are tested for presence; tokens and targets read. */
recur_status recur_net_check_batch(recur_net *n, const recur_net_batch *b, const char *fn, long long *count);
/* A forward's start: the scratch laid out for the batch and grown; what an
 * earlier forward kept is dropped. */
recur_status recur_net_begin(recur_net *n, int T, int N, int training);
/* The forward once the scratch holds the batch (gidx, aidx: token indices;
 * tgt: targets or MSE's row selection; x for vector input; vals; h0, c0 when
 * has_h0, has_c0): the lookup, the model, the head, the loss (its partial
 * sums read back when read_loss), and what backward needs kept. */
recur_status recur_net_run_forward(recur_net *n, recur_mode mode, int T, int N, const int *lengths, int has_h0,
                                   int has_c0, int has_targets, long long cnt, int read_loss);
/* RECUR_ERR_STATE unless the last forward was a training one of this shape. */
recur_status recur_net_check_backward(recur_net *n, const char *fn, int T, int N, const int *lengths);
/* The backward once the scratch holds dhT and dcT; dh0, dc0 left in the
 * scratch when wanted. */
recur_status recur_net_run_backward(recur_net *n, int T, int N, const int *lengths, int has_h0, int has_c0,
                                    int want_dh0, int want_dc0, recur_grad_mode mode);

/* RECUR_OK when a net of these settings can be made (the model's own checks
 * aside), else RECUR_ERR_ARG/SHAPE naming the field. */
recur_status recur_net_desc_check(recur_ctx *ctx, const recur_net_desc *d);
/* "vector", "embedding", "onehot"; "all", "last", "none" (file metadata). */
const char *recur_net_input_name(recur_input i);
const char *recur_net_head_name(recur_head h);
/* A float buffer as large as the net's largest parameter tensor (at least 1
 * float), for moving parameters one tensor at a time; NULL when out of
 * memory. The caller frees it. */
float *recur_net_param_buffer(const recur_net *n);

/* recur_file_open on a buffer in memory; `name` stands for the file in
 * messages (trainfile.c; the fuzz target calls it). */
/* The mean loss from its RECUR_SUM_PARTS partial sums (added in double, in order). */
void recur_net_loss_from_parts(recur_net *n, const float *parts);

recur_status recur_file_open_memory(const char *name, const void *buf, size_t len, recur_file **out);

#endif
