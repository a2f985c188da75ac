/*
 * layer.c: the layer engine. One recurrent layer, one direction: forward
 * (inference and training) and backpropagation through time, for every cell
 * alike, through the dispatch table only.
 *
 * The shape of the work (rules that keep it fast):
 *   forward:  XW = X W_ih^T + bx                one GEMM for all T steps
 *             per step, per stage s:            one GEMM + one cell kernel
 *               HW[s] = A_s W_hh[s]^T
 *   backward: per step, stages in reverse:      one cell kernel + one GEMM
 *             after the loop:                   dW_ih, dW_hh, dX by GEMM,
 *                                               db by column sums
 * where bx = b_ih + b_hh (b_hh only of gates without bias_hh_in_hw) and A_0
 * is a^{<t-1>}, A_1 the src of stage 0. Nothing is allocated and nothing is
 * copied between host and device inside the time loop.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"

/* ---- memory plan ---- */

/* Offsets (in floats) of every region of the workspace and the reserve for
 * one run shape. A region a backend gets in place from the caller (host
 * memory) has no offset (SIZE_MAX). */
struct plan {
    /* forward */
    size_t x, xw, hw, bx, y, h0, cs, src;
    /* backward */
    size_t dy, dxw, dhw, carry, other, dsrc, dx;
    size_t ws_fwd, ws_bwd;
    /* reserve */
    size_t hs, save, srcs, rs;
};

#define NONE SIZE_MAX

static size_t take(size_t *top, size_t n) {
    size_t at = *top;
    *top += (n + 15) & ~(size_t)15; /* keep each region 64-byte aligned */
    return at;
}

static void make_plan(const recur_layer *l, int T, int N, struct plan *p) {
    size_t TN = (size_t)T * N, GH = (size_t)l->G * l->H, H = (size_t)l->H, I = (size_t)l->I;
    size_t S = (size_t)l->n_states, extra_stages = (size_t)l->n_stages - 1;
    int direct = l->ctx->be.iface->host_memory;
    size_t top = 0;
    p->x = direct ? NONE : take(&top, TN * I);
    p->xw = take(&top, TN * GH);
    p->hw = take(&top, (size_t)N * GH);
    p->bx = take(&top, GH);
    p->y = direct ? NONE : take(&top, TN * H);
    /* inference only: the initial a, and two c buffers to alternate */
    p->h0 = take(&top, (size_t)N * H);
    p->cs = S > 1 ? take(&top, 2 * (size_t)N * H) : NONE;
    p->src = extra_stages ? take(&top, (size_t)N * H) : NONE;
    p->ws_fwd = top;

    top = 0;
    size_t x_bwd = direct ? NONE : take(&top, TN * I); /* X again, for dW_ih */
    (void)x_bwd;
    p->dy = direct ? NONE : take(&top, TN * H);
    p->dxw = take(&top, TN * GH);
    p->dhw = l->split_grad ? take(&top, TN * GH) : p->dxw;
    p->carry = take(&top, S * N * H);
    p->other = take(&top, S * N * H);
    p->dsrc = extra_stages ? take(&top, (size_t)N * H) : NONE;
    p->dx = direct ? NONE : take(&top, TN * I);
    p->ws_bwd = top;

    top = 0;
    p->hs = take(&top, S * (TN + N) * H);
    p->save = take(&top, TN * (size_t)l->n_save * H);
    p->srcs = extra_stages ? take(&top, extra_stages * TN * H) : NONE;
    p->rs = top;
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
    RETURN_IF(G * H > INT_MAX / 4 || G * H * (I + H + 2) > (size_t)INT_MAX, ctx, RECUR_ERR_ARG,
              "input_size %zu, hidden_size %zu: %zu gates of that size exceed the supported %d weights", I,
              H, G, INT_MAX);
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
    l->n_weights = G * H * (I + H + 2);
    recur_status st = recur_be_cell_open(&ctx->be, cell, &l->kern);
    if (st != RECUR_OK) {
        free(l);
        return st;
    }
    size_t bytes = l->n_weights * sizeof(float);
    if ((st = recur_be_alloc(&ctx->be, bytes, &l->w)) != RECUR_OK ||
        (st = recur_be_alloc(&ctx->be, bytes, &l->dw)) != RECUR_OK ||
        (st = recur_be_fill(&ctx->be, l->w, 0.0f, l->n_weights)) != RECUR_OK ||
        (st = recur_be_fill(&ctx->be, l->dw, 0.0f, l->n_weights)) != RECUR_OK) {
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

void recur_layer_destroy(recur_layer *l) {
    struct recur_backend *be = &l->ctx->be;
    recur_be_free(be, &l->w);
    recur_be_free(be, &l->dw);
    recur_be_free(be, &l->ws);
    recur_be_free(be, &l->rs);
    if (l->kern) recur_be_cell_close(be, l->kern);
    if (l->prev) l->prev->next = l->next;
    else if (l->ctx->layers == l) l->ctx->layers = l->next;
    if (l->next) l->next->prev = l->prev;
    free(l);
}

recur_status recur_layer_sizes(const recur_layer *l, int T, int N, recur_sizes *out) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_sizes: layer is NULL");
    recur_err_clear(l->ctx);
    RETURN_IF(!out, l->ctx, RECUR_ERR_NULL, "recur_layer_sizes: out is NULL");
    RETURN_IF(T < 1 || N < 1, l->ctx, RECUR_ERR_ARG, "T %d, N %d: both must be at least 1", T, N);
    struct plan p;
    make_plan(l, T, N, &p);
    out->weights = l->n_weights * sizeof(float);
    out->workspace = (p.ws_fwd > p.ws_bwd ? p.ws_fwd : p.ws_bwd) * sizeof(float);
    out->reserve = p.rs * sizeof(float);
    return RECUR_OK;
}

size_t recur_layer_weight_count(const recur_layer *l) { return l ? l->n_weights : 0; }

/* ---- run helpers ---- */

/* Grow a buffer to at least `floats` floats; the old contents are dropped. */
static recur_status ensure(recur_layer *l, struct recur_mem *m, size_t *have, size_t floats) {
    if (*have >= floats) return RECUR_OK;
    recur_be_free(&l->ctx->be, m);
    *have = 0;
    TRY(recur_be_alloc(&l->ctx->be, floats * sizeof(float), m));
    *have = floats;
    return RECUR_OK;
}

/* Region `at` of buffer m, or NONE: the caller's host pointer in place. */
static struct recur_mem region(struct recur_mem m, size_t at, const void *host) {
    if (at == NONE) {
        struct recur_mem h = {(void *)host, 0};
        return h;
    }
    return recur_mem_at(m, at);
}

/* Check the shape of a run and that the sizes fit GEMM's int dimensions. */
static recur_status check_io(recur_layer *l, const recur_io *io, const char *fn) {
    RETURN_IF(!io, l->ctx, RECUR_ERR_NULL, "%s: io is NULL", fn);
    RETURN_IF(io->T < 1 || io->N < 1, l->ctx, RECUR_ERR_ARG, "%s: T %d, N %d: both must be at least 1", fn,
              io->T, io->N);
    RETURN_IF(!io->x || !io->y, l->ctx, RECUR_ERR_NULL, "%s: io->%s is NULL", fn, io->x ? "y" : "x");
    RETURN_IF(l->n_states < 2 && (io->c0 || io->cT), l->ctx, RECUR_ERR_SHAPE,
              "%s: io->%s given, but cell '%s' has no cell state", fn, io->c0 ? "c0" : "cT", l->cell->desc->name);
    size_t TN = (size_t)io->T * (size_t)io->N;
    size_t widest = (size_t)l->G * l->H > (size_t)l->I ? (size_t)l->G * l->H : (size_t)l->I;
    RETURN_IF(TN > INT_MAX / 2 || TN * widest > (size_t)INT_MAX * 8, l->ctx, RECUR_ERR_ARG,
              "%s: T %d x N %d is too large for one call; split the sequence", fn, io->T, io->N);
    return RECUR_OK;
}

/* bx = b_ih + b_hh, with b_hh only for gates that keep it out of hw. */
static recur_status make_bx(recur_layer *l, struct recur_mem bx) {
    struct recur_backend *be = &l->ctx->be;
    size_t GH = (size_t)l->G * l->H, H = (size_t)l->H;
    struct recur_mem b_ih = recur_mem_at(l->w, GH * (l->I + l->H)), b_hh = recur_mem_at(b_ih, GH);
    TRY(recur_be_copy(be, bx, b_ih, GH * sizeof(float)));
    for (int g = 0; g < l->G; g++)
        if (!l->cell->desc->gates[g].bias_hh_in_hw)
            TRY(recur_be_add(be, recur_mem_at(bx, g * H), recur_mem_at(b_hh, g * H), H));
    return RECUR_OK;
}

/* One forward step: for each stage, its product into hw, then its kernel. */
static recur_status forward_step(recur_layer *l, int N, struct recur_step *st, struct recur_mem hw,
                                 struct recur_mem src) {
    struct recur_backend *be = &l->ctx->be;
    const struct recur_cell_desc *d = l->cell->desc;
    int H = l->H, GH = l->G * l->H;
    struct recur_mem w_hh = recur_mem_at(l->w, (size_t)GH * l->I);
    for (int s = 0; s < l->n_stages; s++) {
        int g0 = d->stages[s].gate_begin, g1 = d->stages[s].gate_end;
        struct recur_mem a = s == 0 ? st->prev[0] : src;
        TRY(recur_be_gemm(be, 0, 1, N, (g1 - g0) * H, H, 1.0f, a, H, recur_mem_at(w_hh, (size_t)g0 * H * H), H,
                          0.0f, recur_mem_at(hw, (size_t)g0 * H), GH));
        st->src = s + 1 < l->n_stages ? src : (struct recur_mem){0};
        TRY(recur_be_cell_run(be, l->kern, s, 0, st));
    }
    return RECUR_OK;
}

recur_status recur_layer_forward(recur_layer *l, recur_mode mode, const recur_io *io) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_forward: layer is NULL");
    recur_err_clear(l->ctx);
    RETURN_IF(mode != RECUR_MODE_INFERENCE && mode != RECUR_MODE_TRAINING, l->ctx, RECUR_ERR_ARG,
              "recur_layer_forward: mode %d: expected RECUR_MODE_INFERENCE or RECUR_MODE_TRAINING", (int)mode);
    TRY(check_io(l, io, "recur_layer_forward"));
    struct recur_backend *be = &l->ctx->be;
    int T = io->T, N = io->N, H = l->H, I = l->I, GH = l->G * l->H, S = l->n_states;
    int training = mode == RECUR_MODE_TRAINING;
    size_t TN = (size_t)T * N, NH = (size_t)N * H;
    struct plan p;
    make_plan(l, T, N, &p);
    l->trained_T = l->trained_N = 0; /* the reserve is invalid until this run ends well */
    TRY(ensure(l, &l->ws, &l->ws_floats, p.ws_fwd > p.ws_bwd ? p.ws_fwd : p.ws_bwd));
    if (training) TRY(ensure(l, &l->rs, &l->rs_floats, p.rs));

    struct recur_mem x = region(l->ws, p.x, io->x), xw = recur_mem_at(l->ws, p.xw);
    struct recur_mem hw = recur_mem_at(l->ws, p.hw), bx = recur_mem_at(l->ws, p.bx);
    struct recur_mem y = region(l->ws, p.y, io->y);
    if (p.x != NONE) TRY(recur_be_write(be, x, io->x, TN * I * sizeof(float)));

    /* XW = X W_ih^T + bx, all steps at once. */
    TRY(make_bx(l, bx));
    TRY(recur_be_rows_set(be, xw, (int)TN, GH, GH, bx));
    TRY(recur_be_gemm(be, 0, 1, (int)TN, GH, I, 1.0f, x, I, l->w, I, 1.0f, xw, GH));

    /* Where each step's states live: the reserve's sequences in training,
     * y itself (a) and two alternating buffers (c) in inference. */
    const float *init[2] = {io->h0, io->c0};
    struct recur_mem seq[2], first[2];
    for (int k = 0; k < S; k++) {
        if (training) {
            seq[k] = recur_mem_at(l->rs, p.hs + (size_t)k * (TN + N) * H);
            first[k] = seq[k];
        } else {
            first[k] = k == 0 ? recur_mem_at(l->ws, p.h0) : recur_mem_at(l->ws, p.cs);
        }
        if (init[k])
            TRY(recur_be_write(be, first[k], init[k], NH * sizeof(float)));
        else
            TRY(recur_be_fill(be, first[k], 0.0f, NH));
    }

    struct recur_step st;
    memset(&st, 0, sizeof st);
    st.n = N;
    st.H = H;
    st.variant = l->variant;
    st.training = training;
    st.hw = hw;
    st.b_hh = recur_mem_at(l->w, (size_t)GH * (I + H) + GH);
    for (int t = 0; t < T; t++) {
        st.xw = recur_mem_at(xw, (size_t)t * N * GH);
        for (int k = 0; k < S; k++) {
            if (training) {
                st.prev[k] = recur_mem_at(seq[k], (size_t)t * NH);
                st.next[k] = recur_mem_at(seq[k], (size_t)(t + 1) * NH);
            } else if (k == 0) {
                st.prev[0] = t == 0 ? first[0] : recur_mem_at(y, (size_t)(t - 1) * NH);
                st.next[0] = recur_mem_at(y, (size_t)t * NH);
            } else {
                st.prev[k] = recur_mem_at(first[k], (size_t)(t % 2) * NH);
                st.next[k] = recur_mem_at(first[k], (size_t)((t + 1) % 2) * NH);
            }
        }
        st.save = training && l->n_save ? recur_mem_at(l->rs, p.save + (size_t)t * N * l->n_save * H)
                                        : (struct recur_mem){0};
        struct recur_mem src = {0};
        if (l->n_stages > 1)
            src = training ? recur_mem_at(l->rs, p.srcs + (size_t)t * NH) : recur_mem_at(l->ws, p.src);
        TRY(forward_step(l, N, &st, hw, src));
    }

    /* Outputs: y (copied from the reserve in training), then the finals. */
    struct recur_mem last[2];
    for (int k = 0; k < S; k++) last[k] = st.next[k];
    if (training) TRY(recur_be_copy(be, y, recur_mem_at(seq[0], NH), TN * H * sizeof(float)));
    TRY(recur_be_sync(be));
    if (p.y != NONE) TRY(recur_be_read(be, io->y, y, TN * H * sizeof(float)));
    if (io->hT) TRY(recur_be_read(be, io->hT, last[0], NH * sizeof(float)));
    if (io->cT) TRY(recur_be_read(be, io->cT, last[1], NH * sizeof(float)));
    if (training) {
        l->trained_T = T;
        l->trained_N = N;
    }
    return RECUR_OK;
}

recur_status recur_layer_backward(recur_layer *l, const recur_io *io, const recur_grad_io *g,
                                  recur_grad_mode mode) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_backward: layer is NULL");
    recur_err_clear(l->ctx);
    TRY(check_io(l, io, "recur_layer_backward"));
    RETURN_IF(!g, l->ctx, RECUR_ERR_NULL, "recur_layer_backward: grad is NULL");
    RETURN_IF(mode != RECUR_GRAD_OVERWRITE && mode != RECUR_GRAD_ADD, l->ctx, RECUR_ERR_ARG,
              "recur_layer_backward: mode %d: expected RECUR_GRAD_OVERWRITE or RECUR_GRAD_ADD", (int)mode);
    RETURN_IF(l->n_states < 2 && (g->dcT || g->dc0), l->ctx, RECUR_ERR_SHAPE,
              "recur_layer_backward: grad->%s given, but cell '%s' has no cell state", g->dcT ? "dcT" : "dc0",
              l->cell->desc->name);
    RETURN_IF(l->trained_T == 0, l->ctx, RECUR_ERR_STATE,
              "recur_layer_backward: no training forward to go back through (run recur_layer_forward "
              "with RECUR_MODE_TRAINING first)");
    RETURN_IF(l->trained_T != io->T || l->trained_N != io->N, l->ctx, RECUR_ERR_STATE,
              "recur_layer_backward: io has T %d, N %d but the training forward had T %d, N %d", io->T, io->N,
              l->trained_T, l->trained_N);
    struct recur_backend *be = &l->ctx->be;
    const struct recur_cell_desc *d = l->cell->desc;
    int T = io->T, N = io->N, H = l->H, I = l->I, GH = l->G * l->H, S = l->n_states;
    size_t TN = (size_t)T * N, NH = (size_t)N * H;
    struct plan p;
    make_plan(l, T, N, &p);

    struct recur_mem x = region(l->ws, p.x, io->x);
    struct recur_mem dy = region(l->ws, p.dy, g->dy);
    struct recur_mem dxw = recur_mem_at(l->ws, p.dxw), dhw = recur_mem_at(l->ws, p.dhw);
    struct recur_mem carry = recur_mem_at(l->ws, p.carry), other = recur_mem_at(l->ws, p.other);
    struct recur_mem dsrc = p.dsrc == NONE ? (struct recur_mem){0} : recur_mem_at(l->ws, p.dsrc);
    struct recur_mem dx = region(l->ws, p.dx, g->dx);
    struct recur_mem w_hh = recur_mem_at(l->w, (size_t)GH * I);
    if (p.x != NONE) TRY(recur_be_write(be, x, io->x, TN * I * sizeof(float)));
    if (g->dy && p.dy != NONE) TRY(recur_be_write(be, dy, g->dy, TN * H * sizeof(float)));

    /* carry[k] holds dL/d state k at the step being processed. */
    const float *fin[2] = {g->dhT, g->dcT};
    for (int k = 0; k < S; k++) {
        struct recur_mem c = recur_mem_at(carry, (size_t)k * NH);
        if (fin[k])
            TRY(recur_be_write(be, c, fin[k], NH * sizeof(float)));
        else
            TRY(recur_be_fill(be, c, 0.0f, NH));
    }

    struct recur_mem seq[2];
    for (int k = 0; k < S; k++) seq[k] = recur_mem_at(l->rs, p.hs + (size_t)k * (TN + N) * H);
    struct recur_step st;
    memset(&st, 0, sizeof st);
    st.n = N;
    st.H = H;
    st.variant = l->variant;
    st.training = 1;
    for (int t = T - 1; t >= 0; t--) {
        if (g->dy) TRY(recur_be_add(be, carry, recur_mem_at(dy, (size_t)t * NH), NH));
        for (int k = 0; k < S; k++) {
            st.prev[k] = recur_mem_at(seq[k], (size_t)t * NH);
            st.next[k] = recur_mem_at(seq[k], (size_t)(t + 1) * NH);
            st.dnext[k] = recur_mem_at(carry, (size_t)k * NH);
            st.dprev[k] = recur_mem_at(other, (size_t)k * NH);
        }
        st.save = l->n_save ? recur_mem_at(l->rs, p.save + (size_t)t * N * l->n_save * H) : (struct recur_mem){0};
        st.dxw = recur_mem_at(dxw, (size_t)t * N * GH);
        st.dhw = recur_mem_at(dhw, (size_t)t * N * GH);
        for (int s = l->n_stages - 1; s >= 0; s--) {
            int last = s == l->n_stages - 1;
            st.src = last ? (struct recur_mem){0} : recur_mem_at(l->rs, p.srcs + ((size_t)s * T + t) * NH);
            st.dsrc = last ? (struct recur_mem){0} : dsrc;
            if (!last) {
                /* dsrc = dhw[stage s+1] W_hh[stage s+1] */
                int g0 = d->stages[s + 1].gate_begin, g1 = d->stages[s + 1].gate_end;
                TRY(recur_be_gemm(be, 0, 0, N, H, (g1 - g0) * H, 1.0f, recur_mem_at(st.dhw, (size_t)g0 * H), GH,
                                  recur_mem_at(w_hh, (size_t)g0 * H * H), H, 0.0f, dsrc, H));
            }
            TRY(recur_be_cell_run(be, l->kern, s, 1, &st));
        }
        /* dL/d a^{<t-1>} += dhw[stage 0] W_hh[stage 0] */
        int g1 = d->stages[0].gate_end;
        TRY(recur_be_gemm(be, 0, 0, N, H, g1 * H, 1.0f, st.dhw, GH, w_hh, H, 1.0f, other, H));
        struct recur_mem swap = carry;
        carry = other;
        other = swap;
    }

    /* Weight gradients, one GEMM per block over all steps. */
    float beta = mode == RECUR_GRAD_ADD ? 1.0f : 0.0f;
    struct recur_mem dw_ih = l->dw, dw_hh = recur_mem_at(l->dw, (size_t)GH * I);
    struct recur_mem db_ih = recur_mem_at(l->dw, (size_t)GH * (I + H)), db_hh = recur_mem_at(db_ih, (size_t)GH);
    TRY(recur_be_gemm(be, 1, 0, GH, I, (int)TN, 1.0f, dxw, GH, x, I, beta, dw_ih, I));
    for (int s = 0; s < l->n_stages; s++) {
        int g0 = d->stages[s].gate_begin, g1 = d->stages[s].gate_end;
        struct recur_mem a = s == 0 ? seq[0] : recur_mem_at(l->rs, p.srcs + (size_t)(s - 1) * TN * H);
        TRY(recur_be_gemm(be, 1, 0, (g1 - g0) * H, H, (int)TN, 1.0f, recur_mem_at(dhw, (size_t)g0 * H), GH, a, H,
                          beta, recur_mem_at(dw_hh, (size_t)g0 * H * H), H));
    }
    TRY(recur_be_colsum(be, db_ih, beta, dxw, (int)TN, GH, GH));
    for (int gi = 0; gi < l->G; gi++) {
        /* b_hh acted through hw for bias_hh_in_hw gates, else through xw. */
        struct recur_mem from = d->gates[gi].bias_hh_in_hw ? dhw : dxw;
        TRY(recur_be_colsum(be, recur_mem_at(db_hh, (size_t)gi * H), beta, recur_mem_at(from, (size_t)gi * H),
                            (int)TN, H, GH));
    }
    if (g->dx) TRY(recur_be_gemm(be, 0, 0, (int)TN, I, GH, 1.0f, dxw, GH, l->w, I, 0.0f, dx, I));

    TRY(recur_be_sync(be));
    if (g->dx && p.dx != NONE) TRY(recur_be_read(be, g->dx, dx, TN * I * sizeof(float)));
    if (g->dh0) TRY(recur_be_read(be, g->dh0, carry, NH * sizeof(float)));
    if (g->dc0) TRY(recur_be_read(be, g->dc0, recur_mem_at(carry, NH), NH * sizeof(float)));
    return RECUR_OK;
}
