/*
 * layer.c: the public layer API: creation, sizes, and forward and backward
 * over host arrays, which it hands to the engine (engine.c) through host I/O
 * (arena.h): in place on a host-memory device, copied once each way on any
 * other.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ---- the tensors of a cell ---- */

int recur_cell_recurrent_gates(const struct recur_cell_desc *d) { return d->stages[d->n_stages - 1].gate_end; }

int recur_cell_tensors(const struct recur_cell_desc *d, size_t I, size_t H, size_t P, struct recur_tensor *t) {
    int G = d->n_gates, Grec = recur_cell_recurrent_gates(d), n = 0;
    int raw = (d->flags & RECUR_CELL_RAW_PRODUCTS) != 0;
    size_t off = 0;
#define STD(k, nm, g, c)                                                                                       \
    do {                                                                                                       \
        t[n] = (struct recur_tensor){k, -1, nm, g, (c) == 1 && k >= RECUR_T_B_IH ? 1 : 2, (int)((size_t)(g) * H),   \
                                     (int)(c), off, (size_t)(g) * H * (c)};                                    \
        off += t[n++].count;                                                                                   \
    } while (0)
    STD(RECUR_T_W_IH, "weight_ih", G, I);
    if (Grec) STD(RECUR_T_W_HH, "weight_hh", Grec, P ? P : H);
    if (!raw) {
        STD(RECUR_T_B_IH, "bias_ih", G, 1);
        STD(RECUR_T_B_HH, "bias_hh", G, 1);
    }
#undef STD
    if (P) { /* W_hr [P, H], PyTorch's weight_hr_l{k}: no gate blocks */
        t[n] = (struct recur_tensor){RECUR_T_W_HR, -1, "weight_hr", 0, 2, (int)P, (int)H, off, P * H};
        off += t[n++].count;
    }
    for (int k = 0; k < d->n_params; k++) {
        const struct recur_cell_param *p = &d->params[k];
        size_t cols = p->cols == RECUR_CELL_DIM_GH ? (size_t)G * H : H;
        /* A one-row parameter is a 1-D tensor, as a bias. */
        int rows = p->rows == 1 ? (int)cols : p->rows, c = p->rows == 1 ? 1 : (int)cols;
        t[n] = (struct recur_tensor){RECUR_T_PARAM, k, p->name, 0, p->rows == 1 ? 1 : 2, rows, c, off,
                                     (size_t)p->rows * cols};
        off += t[n++].count;
    }
    return n;
}

/* ---- creation ---- */

recur_status recur_layer_create(recur_ctx *ctx, const recur_layer_desc *desc, recur_layer **out) {
    recur_err_clear(ctx);
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_layer_create: ctx is NULL");
    RETURN_IF(!desc || !out, ctx, RECUR_ERR_NULL, "recur_layer_create: %s is NULL", desc ? "out" : "desc");
    *out = NULL;
    RETURN_IF(!desc->cell, ctx, RECUR_ERR_NULL, "recur_layer_create: desc->cell is NULL");
    RETURN_IF(desc->input_size < 1, ctx, RECUR_ERR_ARG, "input_size %d: must be at least 1", desc->input_size);
    RETURN_IF(desc->hidden_size < 1, ctx, RECUR_ERR_ARG, "hidden_size %d: must be at least 1",
              desc->hidden_size);
    RETURN_IF(desc->proj_size < 0 || desc->proj_size >= desc->hidden_size, ctx, RECUR_ERR_ARG,
              "proj_size %d: must be 0 (none) or 1..hidden_size-1 (%d)", desc->proj_size, desc->hidden_size - 1);
    const struct recur_cell *cell = recur_cell_find(desc->cell);
    if (!cell) {
        char names[512];
        recur_cell_names(names, sizeof names);
        return recur_err(ctx, RECUR_ERR_UNKNOWN_CELL, "cell '%s': not registered; cells: %s", desc->cell, names);
    }
    const struct recur_cell_desc *d = cell->desc;
    int variant = 0;
    if (desc->variant) {
        variant = -1;
        for (int v = 0; v < d->n_variants; v++)
            if (strcmp(d->variants[v], desc->variant) == 0) variant = v;
        if (variant < 0) {
            char names[256] = "none";
            size_t used = 0;
            for (int v = 0; v < d->n_variants && used < sizeof names; v++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", v ? ", " : "", d->variants[v]);
            return recur_err(ctx, RECUR_ERR_UNKNOWN_NAME, "cell '%s': unknown variant '%s'; variants: %s",
                             d->name, desc->variant, names);
        }
    }
    /* Every size the engine computes must fit the int dimensions of GEMM. */
    size_t G = (size_t)d->n_gates, H = (size_t)desc->hidden_size, I = (size_t)desc->input_size;
    /* Own parameters are at most MAX_GATES rows of G*H: within G*H*(I+H+2+MAX_GATES). */
    RETURN_IF(G * H > INT_MAX / 4 || G * H * (I + H + 2 + RECUR_CELL_MAX_GATES) + H * H > (size_t)INT_MAX, ctx,
              RECUR_ERR_ARG, "input_size %zu, hidden_size %zu: %zu gates of that size exceed the supported %d weights",
              I, H, G, INT_MAX);
    RETURN_IF(desc->proj_size && !(d->flags & RECUR_CELL_PROJECTABLE), ctx, RECUR_ERR_UNSUPPORTED,
              "proj_size %d: cell '%s' cannot project its output (its kernels read a^{<t-1>} themselves; "
              "projecting cells are flagged RECUR_CELL_PROJECTABLE, such as lstm)", desc->proj_size, d->name);
    TRY(recur_be_supports(&ctx->be, cell));

    recur_layer *l = calloc(1, sizeof *l);
    RETURN_IF(!l, ctx, RECUR_ERR_NO_MEMORY, "recur_layer_create: out of memory");
    l->ctx = ctx;
    l->cell = cell;
    l->I = desc->input_size;
    l->H = desc->hidden_size;
    l->G = d->n_gates;
    l->n_states = d->n_states;
    l->n_save = d->n_save;
    l->n_stages = d->n_stages;
    l->variant = variant;
    l->split_grad = (d->flags & RECUR_CELL_SPLIT_RECURRENT_GRAD) != 0;
    l->raw = (d->flags & RECUR_CELL_RAW_PRODUCTS) != 0;
    l->Grec = recur_cell_recurrent_gates(d);
    l->proj = desc->proj_size;
    l->P = l->proj ? l->proj : l->H;
    l->n_tensors = recur_cell_tensors(d, I, H, (size_t)l->proj, l->t);
    l->tw_ih = l->tw_hh = l->tb_ih = l->tb_hh = l->tw_hr = -1;
    for (int k = 0; k < l->n_tensors; k++) {
        int *at[] = {&l->tw_ih, &l->tw_hh, &l->tb_ih, &l->tb_hh, &l->tw_hr};
        if (l->t[k].kind != RECUR_T_PARAM) *at[l->t[k].kind] = k;
    }
    l->n_weights = l->t[l->n_tensors - 1].off + l->t[l->n_tensors - 1].count;
    l->n_params = d->n_params;
    l->param_floats = l->n_params ? l->n_weights - l->t[l->n_tensors - l->n_params].off : 0;
    l->w_version = 1; /* wt (version 0) is stale */
    recur_status st = recur_be_cell_open(&ctx->be, cell, &l->kern);
    if (st != RECUR_OK) {
        free(l);
        return st;
    }
    size_t bytes = l->n_weights * sizeof(float);
    if ((st = recur_be_alloc(&ctx->be, bytes, &l->w)) != RECUR_OK ||
        (st = recur_be_alloc(&ctx->be, bytes, &l->dw)) != RECUR_OK ||
        (st = recur_be_fill(&ctx->be, l->w, 0.0f, l->n_weights)) != RECUR_OK ||
        (st = recur_be_fill(&ctx->be, l->dw, 0.0f, l->n_weights)) != RECUR_OK ||
        ((l->Grec || l->proj) &&
         (st = recur_be_alloc(&ctx->be, ((size_t)l->Grec + (l->proj ? 1 : 0)) * l->H * l->P * sizeof(float),
                              &l->wt)) != RECUR_OK)) {
        recur_layer_free(l);
        return st;
    }
    l->next = ctx->layers;
    if (ctx->layers) ctx->layers->prev = l;
    ctx->layers = l;
    *out = l;
    return RECUR_OK;
}

void recur_layer_free(recur_layer *l) {
    if (!l) return;
    if (l->owned) { /* a model's layer: the model frees it */
        recur_log(RECUR_LOG_WARN, "recur_layer_free: the layer belongs to a model; free the model instead");
        return;
    }
    recur_layer_destroy(l);
}

void recur_layer_unlink(recur_layer *l) {
    if (l->prev) l->prev->next = l->next;
    else if (l->ctx->layers == l) l->ctx->layers = l->next;
    if (l->next) l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

void recur_layer_destroy(recur_layer *l) {
    struct recur_backend *be = &l->ctx->be;
    recur_be_free(be, &l->w);
    recur_be_free(be, &l->dw);
    recur_be_free(be, &l->wt);
    recur_wpack_release(l);
    recur_arena_free(l->ctx, &l->ws);
    recur_arena_free(l->ctx, &l->rs);
    recur_arena_free(l->ctx, &l->io);
    free(l->trained_len);
    if (l->kern) recur_be_cell_close(be, l->kern);
    recur_layer_unlink(l);
    free(l);
}

/* T x N rows must fit GEMM's int dimensions and their buffers a size_t. */
recur_status recur_layer_check_size(const recur_layer *l, int T, int N, const char *fn) {
    size_t TN = (size_t)T * (size_t)N;
    size_t widest = (size_t)l->G * l->H > (size_t)l->I ? (size_t)l->G * l->H : (size_t)l->I;
    RETURN_IF(TN > INT_MAX / 2 || TN * widest > (size_t)INT_MAX * 8, l->ctx, RECUR_ERR_ARG,
              "%s: T %d x N %d is too large for one call; split the sequence", fn, T, N);
    return RECUR_OK;
}

recur_status recur_layer_sizes(const recur_layer *l, int T, int N, recur_sizes *out) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_sizes: layer is NULL");
    recur_err_clear(l->ctx);
    RETURN_IF(!out, l->ctx, RECUR_ERR_NULL, "recur_layer_sizes: out is NULL");
    RETURN_IF(T < 1 || N < 1, l->ctx, RECUR_ERR_ARG, "T %d, N %d: both must be at least 1", T, N);
    TRY(recur_layer_check_size(l, T, N, "recur_layer_sizes"));
    size_t ws, rs;
    TRY(recur_engine_sizes(l, T, N, &ws, &rs));
    out->weights = l->n_weights * sizeof(float);
    out->workspace = ws * sizeof(float);
    out->reserve = rs * sizeof(float);
    return RECUR_OK;
}

size_t recur_layer_weight_count(const recur_layer *l) { return l ? l->n_weights : 0; }

/* ---- forward and backward over host arrays ---- */

recur_status recur_check_mode(recur_ctx *ctx, const char *fn, recur_mode mode) {
    RETURN_IF(mode != RECUR_MODE_INFERENCE && mode != RECUR_MODE_TRAINING, ctx, RECUR_ERR_ARG,
              "%s: mode %d: expected RECUR_MODE_INFERENCE or RECUR_MODE_TRAINING", fn, (int)mode);
    return RECUR_OK;
}

recur_status recur_layer_check_c(const recur_layer *l, const char *fn, const void *a, const char *a_name, const void *b,
                                 const char *b_name) {
    RETURN_IF(l->n_states < 2 && (a || b), l->ctx, RECUR_ERR_SHAPE, "%s: %s given, but cell '%s' has no cell state",
              fn, a ? a_name : b_name, l->cell->desc->name);
    return RECUR_OK;
}

recur_status recur_layer_check_grad(const recur_layer *l, const char *fn, recur_grad_mode mode, const float *dcT,
                                    const float *dc0) {
    RETURN_IF(mode != RECUR_GRAD_OVERWRITE && mode != RECUR_GRAD_ADD, l->ctx, RECUR_ERR_ARG,
              "%s: mode %d: expected RECUR_GRAD_OVERWRITE or RECUR_GRAD_ADD", fn, (int)mode);
    return recur_layer_check_c(l, fn, dcT, "grad->dcT", dc0, "grad->dc0");
}

/* Check the shape of a run and that the sizes fit GEMM's int dimensions. */
static recur_status check_io(recur_layer *l, const recur_io *io, const char *fn) {
    RETURN_IF(!io, l->ctx, RECUR_ERR_NULL, "%s: io is NULL", fn);
    RETURN_IF(io->T < 1 || io->N < 1, l->ctx, RECUR_ERR_ARG, "%s: T %d, N %d: both must be at least 1", fn,
              io->T, io->N);
    RETURN_IF(!io->x || !io->y, l->ctx, RECUR_ERR_NULL, "%s: io->%s is NULL", fn, io->x ? "y" : "x");
    TRY(recur_layer_check_c(l, fn, io->c0, "io->c0", io->cT, "io->cT"));
    return recur_layer_check_size(l, io->T, io->N, fn);
}

static struct recur_seqview dense(struct recur_mem m, int T, int N, int width) {
    (void)T;
    struct recur_seqview v = {m, width, 0, N, 1};
    return v;
}

recur_status recur_layer_forward(recur_layer *l, recur_mode mode, const recur_io *io) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_forward: layer is NULL");
    recur_err_clear(l->ctx);
    TRY(recur_check_mode(l->ctx, "recur_layer_forward", mode));
    TRY(check_io(l, io, "recur_layer_forward"));
    size_t TN = (size_t)io->T * io->N, NH = (size_t)io->N * l->H, NP = (size_t)io->N * l->P;
    struct recur_mem x, y, h0, c0, hT, cT;
    const struct recur_hostio h[] = {
        {"x", io->x, NULL, TN * l->I, &x},   {"y", NULL, io->y, TN * l->P, &y}, {"h0", io->h0, NULL, NP, &h0},
        {"c0", io->c0, NULL, NH, &c0},       {"hT", NULL, io->hT, NP, &hT},     {"cT", NULL, io->cT, NH, &cT},
    };
    TRY(recur_hostio_in(l->ctx, &l->io, h, RECUR_COUNT(h)));
    struct recur_run r = {.T = io->T, .N = io->N, .x = dense(x, io->T, io->N, l->I),
                          .y = dense(y, io->T, io->N, l->P), .h0 = h0, .c0 = c0, .hT = hT, .cT = cT};
    TRY(recur_engine_forward(l, mode, &r));
    return recur_hostio_out(l->ctx, h, RECUR_COUNT(h));
}

/* Backward's arguments: io as forward's, the grads and the mode, and a
 * training forward of the same shape to go back through. */
static recur_status check_backward(recur_layer *l, const recur_io *io, const recur_grad_io *g, recur_grad_mode mode) {
    const char *fn = "recur_layer_backward";
    TRY(check_io(l, io, fn));
    RETURN_IF(!g, l->ctx, RECUR_ERR_NULL, "%s: grad is NULL", fn);
    TRY(recur_layer_check_grad(l, fn, mode, g->dcT, g->dc0));
    RETURN_IF(l->trained_T == 0, l->ctx, RECUR_ERR_STATE,
              "%s: no training forward to go back through (run recur_layer_forward with RECUR_MODE_TRAINING first)",
              fn);
    RETURN_IF(l->trained_T != io->T || l->trained_N != io->N, l->ctx, RECUR_ERR_STATE,
              "%s: io has T %d, N %d but the training forward had T %d, N %d", fn, io->T, io->N, l->trained_T,
              l->trained_N);
    return RECUR_OK;
}

recur_status recur_layer_backward(recur_layer *l, const recur_io *io, const recur_grad_io *g,
                                  recur_grad_mode mode) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_backward: layer is NULL");
    recur_err_clear(l->ctx);
    TRY(check_backward(l, io, g, mode));
    size_t TN = (size_t)io->T * io->N, NH = (size_t)io->N * l->H, NP = (size_t)io->N * l->P;
    struct recur_mem x, dy, dhT, dcT, dx, dh0, dc0;
    const struct recur_hostio h[] = {
        {"x", io->x, NULL, TN * l->I, &x},    {"dy", g->dy, NULL, TN * l->P, &dy}, {"dhT", g->dhT, NULL, NP, &dhT},
        {"dcT", g->dcT, NULL, NH, &dcT},      {"dx", NULL, g->dx, TN * l->I, &dx}, {"dh0", NULL, g->dh0, NP, &dh0},
        {"dc0", NULL, g->dc0, NH, &dc0},
    };
    TRY(recur_hostio_in(l->ctx, &l->io, h, RECUR_COUNT(h)));
    struct recur_run r = {.T = io->T, .N = io->N, .x = dense(x, io->T, io->N, l->I),
                          .dy = dense(dy, io->T, io->N, l->P), .dhT = dhT, .dcT = dcT,
                          .dx = dense(dx, io->T, io->N, l->I), .dh0 = dh0, .dc0 = dc0};
    TRY(recur_engine_backward(l, &r, mode));
    return recur_hostio_out(l->ctx, h, RECUR_COUNT(h));
}
