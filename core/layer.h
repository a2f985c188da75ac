/*
 * layer.h: the layer object, shared by layer.c (creation, the public calls),
 * engine.c (forward and backward), weights.c (the weights by block and gate)
 * and the models that own layers (model.c, stack.c, modelfile.c, nets).
 */
#ifndef RECUR_LAYER_H
#define RECUR_LAYER_H

#include "arena.h"

/* A weight operand of a layer's matrix products, op(B) (K x N) read from
 * the layer's weights (or their transposed copy wt). On a backend that
 * packs (the CPU with oneDNN), it is packed once per weight version,
 * precision and thread count and reused by every product until one of them
 * changes; elsewhere each product is a GEMM on B itself (core/precision.c). */
struct recur_wpack {
    void *packed;          /* the backend's, or NULL */
    struct recur_mem B;    /* what it was packed from, and how: */
    int trans, K, N, ldb, threads;
    recur_dtype prec;
    unsigned version;
};

/* The operands the engine multiplies by (core/engine.c): W_ih^T (xw),
 * W_ih (dx), W_hr^T and W_hr (projection), W_hh's stage-0 rows (dprev),
 * then per stage s W_hh^T (hw) and W_hh (dsrc). */
enum {
    RECUR_WP_IH_T,
    RECUR_WP_IH,
    RECUR_WP_HR_T,
    RECUR_WP_HR,
    RECUR_WP_HH0,
    RECUR_WP_HH_T,
    RECUR_WP_HH = RECUR_WP_HH_T + RECUR_CELL_MAX_STAGES,
    RECUR_WP_COUNT = RECUR_WP_HH + RECUR_CELL_MAX_STAGES
};

/* One tensor of a layer's weights: W_ih, W_hh, b_ih, b_hh (those the cell
 * has), W_hr (a projecting layer's) and then the cell's own parameters, in
 * this order in the canonical flat vector. */
enum recur_tensor_kind { RECUR_T_W_IH, RECUR_T_W_HH, RECUR_T_B_IH, RECUR_T_B_HH, RECUR_T_W_HR, RECUR_T_PARAM };
#define RECUR_MAX_TENSORS (5 + RECUR_CELL_MAX_PARAMS)

struct recur_tensor {
    int kind;      /* enum recur_tensor_kind */
    int param;     /* RECUR_T_PARAM: index into the cell's params; else -1 */
    const char *name; /* "weight_ih", ..., or the parameter's name */
    int gates;     /* gate blocks (of H rows each) it holds: G, Grec, or 0 for W_hr and a cell parameter */
    int ndim;      /* 2, or 1 for a bias or a one-row parameter */
    int rows, cols; /* the model's tensor: [rows, cols]; cols 1 for a 1-D tensor */
    size_t off;    /* floats from the start of the layer's weights */
    size_t count;  /* rows * cols */
};

/* The tensors of a cell's layer of input size I, hidden size H and
 * projection P (0: none), into t[RECUR_MAX_TENSORS]; returns their number.
 * Sizes must have been checked (recur_layer_create). */
int recur_cell_tensors(const struct recur_cell_desc *d, size_t I, size_t H, size_t P, struct recur_tensor *t);
/* Grec: the gates with a recurrent product (those the stages cover). */
int recur_cell_recurrent_gates(const struct recur_cell_desc *d);

struct recur_layer {
    recur_ctx *ctx;
    const struct recur_cell *cell;
    void *kern; /* the backend's handle for the cell (recur_be_cell_open) */
    int I, H, G, n_states, n_save, n_stages, variant, split_grad;
    int proj;  /* proj_size: 0, or the width W_hr projects a^{<t>} to */
    int P;     /* the width of state 0 (the output): proj, or H */
    int Grec;  /* gates with a recurrent product: W_hh is [Grec*H, P] */
    int raw;   /* RECUR_CELL_RAW_PRODUCTS: no b_ih, b_hh */
    int n_params;         /* the cell's own parameters: the last n_params tensors */
    size_t param_floats;  /* their floats together */
    size_t n_weights;
    /* canonical layout on the device: [W_ih, W_hh, b_ih, b_hh, W_hr, params...],
     * the tensors t[0..n_tensors) */
    struct recur_mem w, dw;
    int n_tensors;
    struct recur_tensor t[RECUR_MAX_TENSORS];
    int tw_ih, tw_hh, tb_ih, tb_hh, tw_hr; /* index of each in t, or -1 when absent */
    /* W_hh^T [P, Grec*H], then with projection W_hr^T [H, P] (Grec*H*P floats in):
     * the per-step products a W_hh^T and h = a W_hr^T as plain (N, N)
     * GEMMs, about 3x faster at small batch than transposing each call.
     * Rebuilt when w_version moves past wt_version. */
    struct recur_mem wt;
    unsigned w_version, wt_version;
    /* the engine's scratch (workspace) and saved activations (reserve) */
    struct recur_arena ws, rs;
    /* shape of the training forward whose activations the reserve holds; 0: none */
    int trained_T, trained_N, trained_R; /* R: the sum of its lengths */
    int *trained_len;                    /* its lengths ([trained_N]; NULL: all T) */
    int trained_reverse;
    int trained_s16;                     /* its saved values are bf16 (l->saved when it ran) */
    struct recur_arena io;               /* the public calls' host arrays on a non-host device */
    struct recur_layer *prev, *next; /* the context's live layers (not a model's) */
    int owned;                       /* 1: part of a model, which frees it */
    /* zoneout probability of the states (a model's setting; 0 for a layer of
     * its own) and the key of its masks; the stream comes with each run */
    float zoneout;
    uint64_t zo_seed;
    recur_dtype prec;  /* the precision of its products (recur_layer_set_precision) */
    recur_dtype saved; /* the type of the reserve's saved values (recur_layer_set_saved_dtype) */
    struct recur_wpack wp[RECUR_WP_COUNT];
};

/* C = A op(B) + beta C (beta 0 or 1) in the layer's precision, op(B) the
 * K x N weight operand `which` (RECUR_WP_*) read from B (row-major, ldb,
 * transposed when trans): through its pack when the backend packs (made
 * again when the weights, the precision or the thread count changed), else
 * one GEMM. */
recur_status recur_wgemm(recur_layer *l, int which, int trans, int K, int N, struct recur_mem B, int ldb, int M,
                         struct recur_mem A, int lda, float beta, struct recur_mem C, int ldc);
/* Free a layer's packs. */
void recur_wpack_release(recur_layer *l);

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

/* One tensor (an index into l->t) in a layout: its size in floats, and
 * access to the weights or (grads 1) gradients. */
size_t recur_layer_block_count(const recur_layer *l, int block);
recur_status recur_layer_block_set(recur_layer *l, int block, recur_layout layout, const float *src);
recur_status recur_layer_block_get(const recur_layer *l, int block, recur_layout layout, int grads, float *dst);

#endif /* RECUR_LAYER_H */
