/*
 * engine.c: the layer engine. One recurrent layer, one direction, forward
 * (inference and training) and backpropagation through time, for every cell
 * alike, through the dispatch table only.
 *
 * Variable lengths (contract 3). The engine sorts the batch by length,
 * longest first, and packs it: step t runs only the bs[t] sequences still
 * active, which are the first bs[t] sorted rows, so every step's inputs,
 * states and outputs are a prefix of the step before. Work follows the sum of
 * the lengths R, not T x N. The reverse direction packs each sequence from
 * its own last step. Inputs are gathered into packed order once, outputs
 * scattered back once; a dense, left-to-right, time-major batch needs
 * neither and is used in place. The index arrays of a call are written
 * without waiting (recur_be_write_owned: the backend keeps the host copy
 * until its queue drains), so a layer's call never drains the queue.
 *
 * The shape of the work (rules that keep it fast):
 *   forward:  XW = X W_ih^T + bx                one GEMM over all R rows
 *             per step, per stage s:            one GEMM + one cell kernel
 *               HW[s] = A_s W_hh[s]^T
 *   backward: per step, stages in reverse:      one cell kernel + one GEMM
 *             after the loop:                   dW_ih, dW_hh, dX by GEMM,
 *                                               db by column sums
 * where bx = b_ih + b_hh (b_hh only of gates without bias_hh_in_hw; none for
 * a cell with raw products) and A_0 is a^{<t-1>}, A_s the src of stage s-1.
 * A projecting layer (proj_size P) adds per step h = a W_hr^T forward and
 * da = dh W_hr backward, and dW_hr = dH^T A after the loop; its state 0 is
 * the P-wide h (what A_0 and the outputs are), its kernels see the H-wide a.
 * A stage without gates has no product, only its kernel. A cell's own
 * parameters' gradients come from the kernels row by row (dparam) and are
 * summed by one column sum each after the loop. Nothing is allocated and
 * nothing is copied between host and device inside the time loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ---- the packing plan (host side, per call) ---- */

struct pack {
    int T, N, R;
    int dense;      /* all lengths T, not reversed: packed order is time-major order */
    int *perm;      /* [N] sorted position k -> sequence */
    int *len;       /* [N] length of sorted sequence k */
    int *bs, *off;  /* [T] active rows of step t; [T+1] first packed row of step t */
    int32_t *ints;  /* idx_x [R], idx_y [R], prev [R], last [N], perm [N], clast [N] */
};

enum { IX_X, IX_Y, IX_PREV, IX_LAST, IX_PERM, IX_CLAST, IX_COUNT };

static size_t ints_at(const struct pack *p, int which) {
    size_t R = (size_t)p->R, N = (size_t)p->N;
    size_t at[IX_COUNT] = {0, R, 2 * R, 3 * R, 3 * R + N, 3 * R + 2 * N};
    return at[which];
}
/* The index arrays' int32s for R packed rows of N sequences. */
static size_t ints_count(size_t R, size_t N) { return 3 * R + 3 * N; }
static size_t ints_total(const struct pack *p) { return ints_count((size_t)p->R, (size_t)p->N); }

static void pack_free(struct pack *p) {
    free(p->perm), free(p->len), free(p->bs), free(p->off), free(p->ints);
    memset(p, 0, sizeof *p);
}

/* Row index of (t, n) in a view's row space. */
static int32_t view_row(const struct recur_seqview *v, int t, int n) { return (int32_t)(t * v->st + n * v->sn); }

/* Pack r's batch; rows of xv and yv (which carry x/dx and y/dy strides) get index arrays. */
static recur_status pack_make(recur_layer *l, const struct recur_run *r, const struct recur_seqview *xv,
                             const struct recur_seqview *yv, struct pack *p) {
    int T = r->T, N = r->N;
    memset(p, 0, sizeof *p);
    p->T = T;
    p->N = N;
    p->perm = malloc((size_t)N * sizeof(int));
    p->len = malloc((size_t)N * sizeof(int));
    p->bs = calloc((size_t)T, sizeof(int));
    p->off = calloc((size_t)T + 1, sizeof(int));
    if (!p->perm || !p->len || !p->bs || !p->off) goto oom;
    /* Stable counting sort by length, longest first. */
    int *count = calloc((size_t)T + 2, sizeof(int));
    if (!count) goto oom;
    for (int n = 0; n < N; n++) count[r->lengths ? r->lengths[n] : T]++;
    int at = 0;
    for (int len = T; len >= 1; len--) {
        int c = count[len];
        count[len] = at;
        at += c;
    }
    for (int n = 0; n < N; n++) {
        int len = r->lengths ? r->lengths[n] : T, k = count[len]++;
        p->perm[k] = n;
        p->len[k] = len;
    }
    free(count);
    for (int k = 0; k < N; k++)
        for (int t = 0; t < p->len[k]; t++) p->bs[t]++;
    for (int t = 0; t < T; t++) p->off[t + 1] = p->off[t] + p->bs[t];
    p->R = p->off[T];
    p->dense = !r->reverse && p->R == T * N;
    p->ints = malloc(ints_total(p) * sizeof(int32_t));
    if (!p->ints) goto oom;
    int32_t *ix = p->ints + ints_at(p, IX_X), *iy = p->ints + ints_at(p, IX_Y);
    int32_t *prev = p->ints + ints_at(p, IX_PREV), *last = p->ints + ints_at(p, IX_LAST);
    int32_t *perm = p->ints + ints_at(p, IX_PERM), *clast = p->ints + ints_at(p, IX_CLAST);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < p->bs[t]; k++) {
            int n = p->perm[k], pos = r->reverse ? p->len[k] - 1 - t : t, row = p->off[t] + k;
            ix[row] = view_row(xv, pos, n);
            iy[row] = view_row(yv, pos, n);
            prev[row] = t == 0 ? k : N + p->off[t - 1] + k;
        }
    for (int k = 0; k < N; k++) {
        last[k] = p->off[p->len[k] - 1] + k;
        perm[k] = p->perm[k];
        clast[k] = (p->len[k] % 2) * N + k; /* where inference leaves c: see forward */
    }
    return RECUR_OK;
oom:
    pack_free(p);
    return recur_err(l->ctx, RECUR_ERR_NO_MEMORY, "out of memory planning a batch of %d sequences", N);
}

/* Whether a view is the packed layout itself: dense time-major rows of `width`. */
static int view_direct(const struct pack *p, const struct recur_seqview *v, int width) {
    return p->dense && v->st == p->N && v->sn == 1 && v->ld == width && v->col == 0;
}

/* ---- memory plan ---- */

#define NONE SIZE_MAX

struct plan {
    size_t ints;                                   /* both: the index arrays (int32 in float slots) */
    size_t x, xw, hw, bx, yp, h0, cs, src, fin;    /* forward */
    size_t dyp, dxw, dhw, carry, other, dsrc, dxp, hprev, dpar, dbs; /* backward (dbs: dxw's column sums) */
    size_t zprev, araw, bzprev, dscr, dprojs;      /* projection: forward's zeros for prev[0] and a;
                                                    * backward's zeros, scratch and dL/dh of each row */
    size_t ws;                                     /* workspace: the larger of the two */
    size_t zt, zkeep;                              /* zoneout: raw states (inference), kept gradients */
    size_t fsave, bsave;                           /* bf16 saves: one step's saved values in floats */
    size_t hs, save, srcs, zraw, araws, rs;        /* reserve (save: in bf16 when saved16) */
};

/* State k's width: a^{<t>} (state 0) is P wide (the projection's, or H),
 * c is H wide. A block of `rows` rows of every state holds state 0's rows
 * first, then state 1's. */
static size_t state_width(const recur_layer *l, int k) { return k ? (size_t)l->H : (size_t)l->P; }
static size_t state_off(const recur_layer *l, int k, size_t rows) { return k ? rows * (size_t)l->P : 0; }
static size_t states_floats(const recur_layer *l, size_t rows) {
    return rows * ((size_t)l->P + (l->n_states > 1 ? (size_t)l->H : 0));
}

/* Whether the reserve keeps the cell's saved values in bf16 (recur_layer_set_saved_dtype). */
static int saved16(const recur_layer *l) { return l->saved == RECUR_DTYPE_BF16 && l->n_save > 0; }

/* Regions for R packed rows of N sequences; direct_* say which caller
 * views are used in place (no region needed); s16: the saved values in bf16. */
static recur_status plan_make(const recur_layer *l, int N, size_t R, size_t n_ints, int direct_x, int direct_y,
                              int contiguous_prev, int s16, struct plan *p) {
    size_t GH = (size_t)l->G * l->H, H = (size_t)l->H, P = (size_t)l->P, I = (size_t)l->I, NN = (size_t)N;
    size_t S = (size_t)l->n_states, extra = (size_t)l->n_stages - 1;
    int zo = l->zoneout > 0.0f, pj = l->proj > 0;
    size_t nsH = (size_t)l->n_save * H;
    struct recur_plan f = recur_plan_start(l->ctx, "layer workspace");
    p->ints = recur_plan_take(&f, "index arrays", n_ints, 1, 1);
    p->x = direct_x ? NONE : recur_plan_take(&f, "x", R, I, 1);
    struct recur_plan b = f; /* backward reuses everything after X (which it needs again for dW_ih) */
    p->xw = recur_plan_take(&f, "xw", R, GH, 1);
    p->hw = recur_plan_take(&f, "hw", NN, GH, 1);
    p->bx = l->raw ? NONE : recur_plan_take(&f, "bx", GH, 1, 1);
    p->yp = direct_y ? NONE : recur_plan_take(&f, "y", R, P, 1);
    p->h0 = recur_plan_take(&f, "h0", NN, P, 1);
    p->cs = S > 1 ? recur_plan_take(&f, "c", 2, NN, H) : NONE;
    p->src = extra ? recur_plan_take(&f, "src", NN, H, 1) : NONE;
    p->fin = recur_plan_take(&f, "finals", NN, H, 1); /* the widest state: H >= P */
    p->zt = zo ? recur_plan_take(&f, "zoneout states", states_floats(l, NN), 1, 1) : NONE;
    p->zprev = pj ? recur_plan_take(&f, "zeros", NN, H, 1) : NONE;
    p->araw = pj ? recur_plan_take(&f, "unprojected a", NN, H, 1) : NONE;
    p->fsave = s16 ? recur_plan_take(&f, "a step's saved values", NN, nsH, 1) : NONE;

    p->dyp = direct_y ? NONE : recur_plan_take(&b, "dy", R, P, 1);
    p->dxw = recur_plan_take(&b, "dxw", R, GH, 1);
    p->dhw = l->split_grad ? recur_plan_take(&b, "dhw", R, GH, 1) : p->dxw;
    p->carry = recur_plan_take(&b, "carry", states_floats(l, NN), 1, 1);
    p->other = recur_plan_take(&b, "other", states_floats(l, NN), 1, 1);
    p->dsrc = extra ? recur_plan_take(&b, "dsrc", NN, H, 1) : NONE;
    p->dxp = direct_x ? NONE : recur_plan_take(&b, "dx", R, I, 1);
    p->hprev = contiguous_prev ? NONE : recur_plan_take(&b, "previous states", R, P, 1);
    p->dpar = l->n_params ? recur_plan_take(&b, "parameter gradients", R, l->param_floats, 1) : NONE;
    p->dbs = l->raw ? NONE : recur_plan_take(&b, "bias gradient sums", GH, 1, 1);
    p->zkeep = zo ? recur_plan_take(&b, "zoneout gradients", states_floats(l, NN), 1, 1) : NONE;
    p->bzprev = pj ? recur_plan_take(&b, "zeros", NN, H, 1) : NONE;
    p->dscr = pj ? recur_plan_take(&b, "dL/d unprojected a", 2, NN, H) : NONE;
    p->dprojs = pj ? recur_plan_take(&b, "projected gradients", R, P, 1) : NONE;
    p->bsave = s16 ? recur_plan_take(&b, "a step's saved values", NN, nsH, 1) : NONE;
    p->ws = f.top > b.top ? f.top : b.top;

    struct recur_plan r = recur_plan_start(l->ctx, "layer reserve");
    p->hs = recur_plan_take(&r, "states", states_floats(l, NN + R), 1, 1);
    /* bf16: R x nsH values of 2 bytes, at value row x nsH (in floats: half, rounded up) */
    p->save = recur_plan_take(&r, s16 ? "saved (bf16)" : "saved", R, s16 ? (nsH + 1) / 2 : nsH, 1);
    p->srcs = extra ? recur_plan_take(&r, "srcs", extra, R, H) : NONE;
    /* zoneout: the kernels' own states s~ (seq holds the zoned-out ones) */
    p->zraw = zo ? recur_plan_take(&r, "raw states", states_floats(l, R), 1, 1) : NONE;
    p->araws = pj ? recur_plan_take(&r, "unprojected outputs", R, H, 1) : NONE;
    p->rs = r.top;
    TRY(f.st);
    TRY(b.st);
    return r.st;
}

int recur_lengths_keep(int **keep, const int *lengths, int N) {
    free(*keep);
    *keep = NULL;
    if (!lengths) return 0;
    *keep = malloc((size_t)N * sizeof(int));
    if (!*keep) return -1;
    memcpy(*keep, lengths, (size_t)N * sizeof(int));
    return 0;
}

int recur_lengths_differ(const int *a, const int *b, int N, int T) {
    for (int n = 0; n < N; n++)
        if ((a ? a[n] : T) != (b ? b[n] : T)) return n;
    return -1;
}

recur_status recur_engine_sizes(const recur_layer *l, int T, int N, size_t *ws_floats, size_t *rs_floats) {
    struct plan p;
    size_t R = (size_t)T * N;
    TRY(plan_make(l, N, R, ints_count(R, (size_t)N), 0, 0, 1, saved16(l), &p));
    *ws_floats = p.ws;
    *rs_floats = p.rs;
    return RECUR_OK;
}

static struct recur_mem at(struct recur_mem m, size_t floats) { return recur_mem_at(m, floats); }
#define WS (l->ws.mem) /* the workspace and the reserve */
#define RS (l->rs.mem)

recur_status recur_engine_saved(const recur_layer *l, struct recur_mem *where, size_t *count, int *bf16) {
    RETURN_IF(l->trained_T == 0, l->ctx, RECUR_ERR_STATE, "no training forward's saved values");
    struct plan p;
    size_t R = (size_t)l->trained_R;
    TRY(plan_make(l, l->trained_N, R, ints_count(R, (size_t)l->trained_N), 0, 0, 1, l->trained_s16, &p));
    *where = at(RS, p.save);
    *count = R * (size_t)l->n_save * (size_t)l->H;
    *bf16 = l->trained_s16;
    return RECUR_OK;
}
static struct recur_mem view_base(const struct recur_seqview *v) { return recur_mem_at(v->m, (size_t)v->col); }
static const struct recur_mem no_mem = {0};

/* A tensor of the layer's weights (w) or gradients (dw). */
static struct recur_mem tensor(const recur_layer *l, struct recur_mem base, int t) {
    return t < 0 ? no_mem : at(base, l->t[t].off);
}

/* Whether stage s multiplies anything. */
static int has_product(const struct recur_cell_desc *d, int s) { return d->stages[s].gate_end > d->stages[s].gate_begin; }

/* The kernels' view of the cell's own parameters. */
static void step_params(const recur_layer *l, struct recur_step *st) {
    for (int k = 0, p = 0; k < l->n_tensors; k++)
        if (l->t[k].kind == RECUR_T_PARAM) st->param[p++] = tensor(l, l->w, k);
}

/* bx = b_ih + b_hh, with b_hh only for gates that keep it out of hw. */
static recur_status make_bx(recur_layer *l, struct recur_mem bx) {
    struct recur_backend *be = &l->ctx->be;
    size_t GH = (size_t)l->G * l->H, H = (size_t)l->H;
    struct recur_mem b_ih = tensor(l, l->w, l->tb_ih), b_hh = tensor(l, l->w, l->tb_hh);
    TRY(recur_be_copy(be, bx, b_ih, GH * sizeof(float)));
    for (int g = 0; g < l->G; g++)
        if (!l->cell->desc->gates[g].bias_hh_in_hw)
            TRY(recur_be_add(be, at(bx, g * H), at(b_hh, g * H), H));
    return RECUR_OK;
}

/* One forward step: for each stage, its product into hw, then its kernel.
 * Stage 0 multiplies a0, a^{<t-1>} (P wide; st->prev[0] is the same but for
 * a projecting layer, whose kernels see zeros there). */
static recur_status forward_step(recur_layer *l, struct recur_step *st, struct recur_mem a0, struct recur_mem hw,
                                 struct recur_mem src) {
    struct recur_backend *be = &l->ctx->be;
    const struct recur_cell_desc *d = l->cell->desc;
    int H = l->H, GH = l->G * l->H, n = st->n;
    for (int s = 0; s < l->n_stages; s++) {
        int g0 = d->stages[s].gate_begin, g1 = d->stages[s].gate_end, K = s == 0 ? l->P : H;
        struct recur_mem a = s == 0 ? a0 : src;
        /* hw[stage] = a W_hh[stage]^T, through the transposed copy */
        if (has_product(d, s))
            TRY(recur_wgemm(l, RECUR_WP_HH_T + s, 0, K, (g1 - g0) * H, at(l->wt, (size_t)g0 * H), l->Grec * H, n, a,
                            K, 0.0f, at(hw, (size_t)g0 * H), GH));
        st->src = s + 1 < l->n_stages ? src : no_mem;
        TRY(recur_be_cell_run(be, l->kern, s, 0, st));
    }
    return RECUR_OK;
}

/* Zoneout masks: state k, step t of sequence n (its own index, its own step
 * t of the sweep, whatever the packing) draws elements ((k*T + t)*N + n)*W + j
 * (W: the state's width). */
static uint64_t zo_base(const struct pack *pk, int k, int t) {
    return ((uint64_t)k * (uint64_t)pk->T + (uint64_t)t) * (uint64_t)pk->N;
}

/* Final states of width w: dst[perm[k]] = src[idx[k]] for the N sorted rows, via fin. */
static recur_status finals_out(recur_layer *l, const struct pack *pk, struct recur_mem ints, const struct plan *p,
                               struct recur_mem dst, struct recur_mem src, int which, int w) {
    if (!dst.buf) return RECUR_OK;
    struct recur_backend *be = &l->ctx->be;
    struct recur_mem fin = at(WS, p->fin);
    TRY(recur_be_gather(be, fin, w, src, w, at(ints, ints_at(pk, which)), pk->N, w));
    return recur_be_scatter(be, dst, w, fin, w, at(ints, ints_at(pk, IX_PERM)), pk->N, w, 0);
}

/* Initial states of width w in sorted order: dst[k] = src[perm[k]], or zeros. */
static recur_status initials_in(recur_layer *l, const struct pack *pk, struct recur_mem ints, struct recur_mem dst,
                                struct recur_mem src, int w) {
    struct recur_backend *be = &l->ctx->be;
    if (!src.buf) return recur_be_fill(be, dst, 0.0f, (size_t)pk->N * w);
    return recur_be_gather(be, dst, w, src, w, at(ints, ints_at(pk, IX_PERM)), pk->N, w);
}

recur_status recur_engine_forward(recur_layer *l, recur_mode mode, const struct recur_run *r) {
    struct recur_backend *be = &l->ctx->be;
    int N = r->N, H = l->H, P = l->P, I = l->I, GH = l->G * l->H, S = l->n_states;
    int training = mode == RECUR_MODE_TRAINING, pj = l->proj > 0, s16 = training && saved16(l);
    size_t nsH = (size_t)l->n_save * H;
    struct pack pk;
    TRY(pack_make(l, r, &r->x, &r->y, &pk));
    int direct_x = view_direct(&pk, &r->x, I);
    /* In training the outputs come from the state sequence, never in place. */
    int direct_y = !training && !r->y_add && view_direct(&pk, &r->y, P);
    struct plan p;
    recur_status st = RECUR_OK;
#define DO(call)                                                                                               \
    do {                                                                                                       \
        if ((st = (call)) != RECUR_OK) goto out;                                                               \
    } while (0)
    DO(plan_make(l, N, (size_t)pk.R, ints_total(&pk), direct_x, direct_y, pk.R == pk.T * N, s16, &p));
    /* A training run overwrites the reserve: invalid until it ends well.
     * An inference run leaves it (and a pending backward) alone. */
    if (training) l->trained_T = l->trained_N = 0;
    DO(recur_arena_grow(l->ctx, &l->ws, p.ws, 0));
    if (training) DO(recur_arena_grow(l->ctx, &l->rs, p.rs, 0));

    struct recur_mem ints = at(WS, p.ints);
    /* The index arrays go without waiting; the backend frees them once the queue drains. */
    int32_t *ints_host = pk.ints;
    pk.ints = NULL; /* the backend's from here, even when the write fails */
    DO(recur_be_write_owned(be, ints, ints_host, ints_total(&pk) * sizeof(int32_t)));
    size_t R = (size_t)pk.R, NH = (size_t)N * H, NP = (size_t)N * P;
    struct recur_mem x = direct_x ? view_base(&r->x) : at(WS, p.x);
    if (!direct_x) DO(recur_be_gather(be, x, I, view_base(&r->x), r->x.ld, at(ints, ints_at(&pk, IX_X)), pk.R, I));

    /* W_hr^T [H, P] after W_hh^T in wt */
    struct recur_mem w_hr_t = pj ? at(l->wt, (size_t)l->Grec * H * P) : no_mem;
    if (l->wt_version != l->w_version) {
        if (l->Grec)
            DO(recur_be_transpose(be, l->wt, l->Grec * H, tensor(l, l->w, l->tw_hh), P, l->Grec * H, P));
        if (pj) DO(recur_be_transpose(be, w_hr_t, P, tensor(l, l->w, l->tw_hr), H, P, H));
        l->wt_version = l->w_version;
    }
    /* XW = X W_ih^T + bx, all steps at once (raw products: no bias). */
    struct recur_mem xw = at(WS, p.xw), hw = at(WS, p.hw);
    if (!l->raw) {
        struct recur_mem bx = at(WS, p.bx);
        DO(make_bx(l, bx));
        DO(recur_be_rows_set(be, xw, pk.R, GH, GH, bx));
    }
    DO(recur_wgemm(l, RECUR_WP_IH_T, 1, I, GH, l->w, I, pk.R, x, I, l->raw ? 0.0f : 1.0f, xw, GH));

    /* Where the states live. Training: the reserve's sequences, N initial
     * rows then the R packed rows. Inference: a^{<t>} in the packed output,
     * c in two alternating buffers (sorted row k of step t reads buffer t%2
     * and writes (t+1)%2, so its last value stays in buffer len%2). */
    struct recur_mem init[2] = {r->h0, r->c0}, seq[2] = {{0}, {0}};
    struct recur_mem yp = direct_y ? view_base(&r->y) : at(WS, p.yp);
    for (int k = 0; k < S; k++) {
        if (training) seq[k] = at(RS, p.hs + state_off(l, k, N + R));
        struct recur_mem first = training ? seq[k] : k == 0 ? at(WS, p.h0) : at(WS, p.cs);
        DO(initials_in(l, &pk, ints, first, init[k], (int)state_width(l, k)));
    }
    /* Projection: the kernels see zeros for a^{<t-1>} (which they never read) and write the unprojected a. */
    struct recur_mem zprev = pj ? at(WS, p.zprev) : no_mem;
    if (pj) DO(recur_be_fill(be, zprev, 0.0f, NH));

    int zo = l->zoneout > 0.0f;
    struct recur_mem perm = at(ints, ints_at(&pk, IX_PERM));
    struct recur_step step;
    memset(&step, 0, sizeof step);
    step.H = H;
    step.variant = l->variant;
    step.training = training;
    step.hw = hw;
    step.b_hh = tensor(l, l->w, l->tb_hh);
    step_params(l, &step);
    for (int t = 0; t < pk.T; t++) {
        size_t row = (size_t)pk.off[t], prow = t ? (size_t)pk.off[t - 1] : 0;
        step.n = pk.bs[t];
        step.xw = at(xw, row * GH);
        for (int k = 0; k < S; k++) {
            size_t w = state_width(l, k);
            if (training) {
                step.prev[k] = at(seq[k], t ? (N + prow) * w : 0);
                step.next[k] = at(seq[k], (N + row) * w);
            } else if (k == 0) {
                step.prev[0] = t ? at(yp, prow * P) : at(WS, p.h0);
                step.next[0] = at(yp, row * P);
            } else {
                step.prev[k] = at(WS, p.cs + (size_t)(t % 2) * NH);
                step.next[k] = at(WS, p.cs + (size_t)((t + 1) % 2) * NH);
            }
        }
        /* bf16 saves: the kernels write a step's values to fsave, rounded into the reserve below */
        struct recur_mem save16 = s16 ? recur_mem_at16(at(RS, p.save), row * nsH) : no_mem;
        step.save = !training || !l->n_save ? no_mem : s16 ? at(WS, p.fsave) : at(RS, p.save + row * nsH);
        struct recur_mem src = no_mem;
        if (l->n_stages > 1) src = training ? at(RS, p.srcs + row * H) : at(WS, p.src);
        /* Zoneout: the kernels write s~ aside; the blend with s_{t-1} goes where they would have. */
        struct recur_mem zdst[2] = {{0}, {0}};
        for (int k = 0; zo && k < S; k++) {
            zdst[k] = step.next[k];
            step.next[k] = training ? at(RS, p.zraw + state_off(l, k, R) + row * state_width(l, k))
                                    : at(WS, p.zt + state_off(l, k, N));
        }
        struct recur_mem a0 = step.prev[0], h = step.next[0];
        if (pj) {
            step.prev[0] = zprev;
            step.next[0] = training ? at(RS, p.araws + row * H) : at(WS, p.araw);
        }
        DO(forward_step(l, &step, a0, hw, src));
        if (s16) DO(recur_be_to_bf16(be, save16, step.save, step.n * nsH));
        /* h^{<t>} = W_hr a^{<t>}, through the transposed copy */
        if (pj) DO(recur_wgemm(l, RECUR_WP_HR_T, 0, H, P, w_hr_t, P, step.n, step.next[0], H, 0.0f, h, P));
        step.prev[0] = a0;
        step.next[0] = h;
        for (int k = 0; zo && k < S; k++)
            DO(recur_be_zoneout(be, training ? RECUR_ZO_TRAIN : RECUR_ZO_INFER, zdst[k], step.prev[k], step.next[k],
                                step.n, (int)state_width(l, k), perm, zo_base(&pk, k, t), l->zoneout, l->zo_seed,
                                r->zo_stream));
    }

    /* Outputs: packed rows back to the caller's layout, then the finals. */
    struct recur_mem ys = training ? at(seq[0], NP) : yp;
    if (!direct_y)
        DO(recur_be_scatter(be, view_base(&r->y), r->y.ld, ys, P, at(ints, ints_at(&pk, IX_Y)), pk.R, P, r->y_add));
    if (training) {
        DO(finals_out(l, &pk, ints, &p, r->hT, at(seq[0], NP), IX_LAST, P));
        if (S > 1) DO(finals_out(l, &pk, ints, &p, r->cT, at(seq[1], NH), IX_LAST, H));
    } else {
        DO(finals_out(l, &pk, ints, &p, r->hT, yp, IX_LAST, P));
        if (S > 1) DO(finals_out(l, &pk, ints, &p, r->cT, at(WS, p.cs), IX_CLAST, H));
    }
    if (training) {
        if (recur_lengths_keep(&l->trained_len, r->lengths, N) != 0) {
            st = recur_err(l->ctx, RECUR_ERR_NO_MEMORY, "out of memory keeping %d lengths", N);
            goto out;
        }
        l->trained_T = r->T;
        l->trained_N = N;
        l->trained_R = pk.R;
        l->trained_reverse = r->reverse;
        l->trained_s16 = s16;
    }
out:
#undef DO
    pack_free(&pk);
    return st;
}

recur_status recur_engine_backward(recur_layer *l, const struct recur_run *r, recur_grad_mode mode) {
    struct recur_backend *be = &l->ctx->be;
    const struct recur_cell_desc *d = l->cell->desc;
    int N = r->N, H = l->H, P = l->P, I = l->I, GH = l->G * l->H, S = l->n_states, pj = l->proj > 0;
    int s16 = l->trained_s16; /* as the forward saved them, whatever the setting is now */
    size_t nsH = (size_t)l->n_save * H;
    struct pack pk;
    TRY(pack_make(l, r, &r->x, &r->dy, &pk));
    recur_status st = RECUR_OK;
#define DO(call)                                                                                               \
    do {                                                                                                       \
        if ((st = (call)) != RECUR_OK) goto out;                                                               \
    } while (0)
    int bad = recur_lengths_differ(r->lengths, l->trained_len, N, r->T);
    if (bad >= 0 || r->reverse != l->trained_reverse) {
        st = recur_err(l->ctx, RECUR_ERR_STATE, "backward: %s the training forward's", bad < 0 ? "the direction differs from"
                       : "a length differs from");
        goto out;
    }
    int direct_x = view_direct(&pk, &r->x, I), direct_dy = view_direct(&pk, &r->dy, P);
    int direct_dx = !r->dx_add && view_direct(&pk, &r->dx, I);
    struct plan p;
    DO(plan_make(l, N, (size_t)pk.R, ints_total(&pk), direct_x && direct_dx, direct_dy, pk.R == pk.T * N, s16,
                 &p));
    DO(recur_arena_grow(l->ctx, &l->ws, p.ws, 0));
    size_t R = (size_t)pk.R, NH = (size_t)N * H;
    struct recur_mem ints = at(WS, p.ints);
    /* The index arrays go without waiting; the backend frees them once the queue drains. */
    int32_t *ints_host = pk.ints;
    pk.ints = NULL; /* the backend's from here, even when the write fails */
    DO(recur_be_write_owned(be, ints, ints_host, ints_total(&pk) * sizeof(int32_t)));

    struct recur_mem x = direct_x ? view_base(&r->x) : at(WS, p.x);
    if (!direct_x) DO(recur_be_gather(be, x, I, view_base(&r->x), r->x.ld, at(ints, ints_at(&pk, IX_X)), pk.R, I));
    struct recur_mem dy = no_mem;
    if (r->dy.m.buf) {
        dy = direct_dy ? view_base(&r->dy) : at(WS, p.dyp);
        if (!direct_dy)
            DO(recur_be_gather(be, dy, P, view_base(&r->dy), r->dy.ld, at(ints, ints_at(&pk, IX_Y)), pk.R, P));
    }
    struct recur_mem dxw = at(WS, p.dxw), dhw = at(WS, p.dhw);
    struct recur_mem carry = at(WS, p.carry), other = at(WS, p.other);
    struct recur_mem dsrc = p.dsrc == NONE ? no_mem : at(WS, p.dsrc);
    struct recur_mem w_hh = tensor(l, l->w, l->tw_hh), w_hr = tensor(l, l->w, l->tw_hr);
    /* dparam k: [R, count_k] rows, zero until the kernels add to them */
    struct recur_mem dpar[RECUR_CELL_MAX_PARAMS];
    size_t psize[RECUR_CELL_MAX_PARAMS];
    int ptensor[RECUR_CELL_MAX_PARAMS], np = 0;
    for (int k = 0; k < l->n_tensors; k++)
        if (l->t[k].kind == RECUR_T_PARAM) {
            dpar[np] = at(WS, p.dpar + R * (l->t[k].off - l->t[l->n_tensors - l->n_params].off));
            psize[np] = l->t[k].count;
            ptensor[np++] = k;
        }
    if (np) DO(recur_be_fill(be, dpar[0], 0.0f, R * l->param_floats));

    /* carry[k] holds dL/d state k for the sorted rows. A sequence joins the
     * backward sweep at its own last step with dL/d of its final state; the
     * rows of both buffers past the active prefix are never written by a step,
     * so starting both with the finals serves every length. */
    struct recur_mem fin[2] = {r->dhT, r->dcT};
    for (int k = 0; k < S; k++) {
        size_t o = state_off(l, k, N), w = state_width(l, k);
        DO(initials_in(l, &pk, ints, at(carry, o), fin[k], (int)w));
        DO(recur_be_copy(be, at(other, o), at(carry, o), (size_t)N * w * sizeof(float)));
    }
    /* Projection: the kernels get dL/d of the unprojected a (da) and a
     * scratch dprev[0] (they write zeros there); a^{<t-1>} reads as zeros. */
    struct recur_mem zprev = pj ? at(WS, p.bzprev) : no_mem, da = pj ? at(WS, p.dscr) : no_mem;
    struct recur_mem dscr = pj ? at(WS, p.dscr + NH) : no_mem, dprojs = pj ? at(WS, p.dprojs) : no_mem;
    if (pj) DO(recur_be_fill(be, zprev, 0.0f, NH));

    struct recur_mem seq[2];
    for (int k = 0; k < S; k++) seq[k] = at(RS, p.hs + state_off(l, k, N + R));
    int zo = l->zoneout > 0.0f;
    struct recur_mem perm = at(ints, ints_at(&pk, IX_PERM)), zkeep = zo ? at(WS, p.zkeep) : no_mem;
    struct recur_step step;
    memset(&step, 0, sizeof step);
    step.H = H;
    step.variant = l->variant;
    step.training = 1;
    step.b_hh = tensor(l, l->w, l->tb_hh);
    step_params(l, &step);
    for (int t = pk.T - 1; t >= 0; t--) {
        size_t row = (size_t)pk.off[t], prow = t ? (size_t)pk.off[t - 1] : 0;
        int n = pk.bs[t];
        if (r->poll) DO(r->poll(r->poll_arg));
        step.n = n;
        if (dy.buf) DO(recur_be_add(be, carry, at(dy, row * P), (size_t)n * P));
        for (int k = 0; k < S; k++) {
            size_t o = state_off(l, k, N), w = state_width(l, k);
            step.prev[k] = at(seq[k], t ? (N + prow) * w : 0);
            step.next[k] = zo ? at(RS, p.zraw + state_off(l, k, R) + row * w) : at(seq[k], (N + row) * w);
            step.dnext[k] = at(carry, o);
            step.dprev[k] = at(other, o);
            /* Zoneout: the kernel gets (1 - m) carry; m carry goes to s_{t-1} below. */
            if (zo)
                DO(recur_be_zoneout(be, RECUR_ZO_BACK, step.dnext[k], at(zkeep, o), step.dnext[k], n, (int)w, perm,
                                    zo_base(&pk, k, t), l->zoneout, l->zo_seed, r->zo_stream));
        }
        struct recur_mem dprev0 = step.dprev[0];
        if (pj) {
            /* dh^{<t>} kept for dW_hr; da = dh W_hr */
            DO(recur_be_copy(be, at(dprojs, row * P), step.dnext[0], (size_t)n * P * sizeof(float)));
            DO(recur_wgemm(l, RECUR_WP_HR, 0, P, H, w_hr, H, n, step.dnext[0], P, 0.0f, da, H));
            step.prev[0] = zprev;
            step.next[0] = at(RS, p.araws + row * H);
            step.dnext[0] = da;
            step.dprev[0] = dscr;
        }
        step.save = !l->n_save ? no_mem : s16 ? at(WS, p.bsave) : at(RS, p.save + row * nsH);
        if (s16) DO(recur_be_from_bf16(be, step.save, recur_mem_at16(at(RS, p.save), row * nsH), n * nsH));
        step.dxw = at(dxw, row * GH);
        step.dhw = at(dhw, row * GH);
        for (int k = 0; k < np; k++) step.dparam[k] = at(dpar[k], row * psize[k]);
        for (int s = l->n_stages - 1; s >= 0; s--) {
            int last = s == l->n_stages - 1, product = !last && has_product(d, s + 1);
            step.src = last ? no_mem : at(RS, p.srcs + ((size_t)s * R + row) * H);
            step.dsrc = product ? dsrc : no_mem;
            if (product) {
                /* dsrc = dhw[stage s+1] W_hh[stage s+1] (never with projection: later stages have no product) */
                int g0 = d->stages[s + 1].gate_begin, g1 = d->stages[s + 1].gate_end;
                DO(recur_wgemm(l, RECUR_WP_HH + s + 1, 0, (g1 - g0) * H, H, at(w_hh, (size_t)g0 * H * H), H, n,
                               at(step.dhw, (size_t)g0 * H), GH, 0.0f, dsrc, H));
            }
            DO(recur_be_cell_run(be, l->kern, s, 1, &step));
        }
        /* dL/d a^{<t-1>} += dhw[stage 0] W_hh[stage 0]; with projection the
         * kernels' part is zero (RECUR_CELL_PROJECTABLE), so it is only this. */
        int g1 = d->stages[0].gate_end;
        if (has_product(d, 0))
            DO(recur_wgemm(l, RECUR_WP_HH0, 0, g1 * H, P, w_hh, P, n, step.dhw, GH, pj ? 0.0f : 1.0f, dprev0, P));
        for (int k = 0; zo && k < S; k++)
            DO(recur_be_add(be, at(other, state_off(l, k, N)), at(zkeep, state_off(l, k, N)),
                            (size_t)n * state_width(l, k)));
        struct recur_mem swap = carry;
        carry = other;
        other = swap;
    }

    /* Weight gradients, one GEMM per block over all packed rows. */
    float beta = mode == RECUR_GRAD_ADD ? 1.0f : 0.0f;
    struct recur_mem dw_ih = l->dw, dw_hh = tensor(l, l->dw, l->tw_hh);
    struct recur_mem db_ih = tensor(l, l->dw, l->tb_ih), db_hh = tensor(l, l->dw, l->tb_hh);
    DO(recur_be_gemm_prec(be, l->prec, 1, 0, GH, I, pk.R, 1.0f, dxw, GH, x, I, beta, dw_ih, I));
    struct recur_mem hprev = seq[0]; /* dense batches: the previous states are one block */
    if (p.hprev != NONE) {
        hprev = at(WS, p.hprev);
        DO(recur_be_gather(be, hprev, P, seq[0], P, at(ints, ints_at(&pk, IX_PREV)), pk.R, P));
    }
    for (int s = 0; s < l->n_stages; s++) {
        int g0 = d->stages[s].gate_begin, g1 = d->stages[s].gate_end, K = s == 0 ? P : H;
        struct recur_mem a = s == 0 ? hprev : at(RS, p.srcs + (size_t)(s - 1) * R * H);
        if (has_product(d, s))
            DO(recur_be_gemm_prec(be, l->prec, 1, 0, (g1 - g0) * H, K, pk.R, 1.0f, at(dhw, (size_t)g0 * H), GH, a,
                                  K, beta, at(dw_hh, (size_t)g0 * H * K), K));
    }
    /* dW_hr = sum over rows of dh^T a */
    if (pj)
        DO(recur_be_gemm_prec(be, l->prec, 1, 0, P, H, pk.R, 1.0f, dprojs, P, at(RS, p.araws), H, beta,
                              tensor(l, l->dw, l->tw_hr), H));
    if (!l->raw) {
        /* One pass over dxw: its column sums are db_ih and, for the gates whose b_hh acted through xw, their
         * part of db_hh too (the second pass this replaced cost 1.4% of an LSTM's training step at config B).
         * A gate with bias_hh_in_hw has its b_hh in hw: its sums are dhw's. With RECUR_GRAD_ADD the sums go to a
         * scratch and are added, so accumulating gives the same bits as adding the gradients taken alone. */
        struct recur_mem sums = beta == 0.0f ? db_ih : at(WS, p.dbs);
        DO(recur_be_colsum(be, sums, 0.0f, dxw, pk.R, GH, GH));
        if (beta != 0.0f) DO(recur_be_add(be, db_ih, sums, GH));
        /* runs of gates alike, one call each (the LSTM's four are one run) */
        for (int g0 = 0, g1; g0 < l->G; g0 = g1) {
            int in_hw = !!d->gates[g0].bias_hh_in_hw;
            for (g1 = g0 + 1; g1 < l->G && !!d->gates[g1].bias_hh_in_hw == in_hw; g1++) continue;
            size_t o = (size_t)g0 * H, w = (size_t)(g1 - g0) * H;
            struct recur_mem db = at(db_hh, o), part = at(sums, o); /* adding: db_ih has taken part already */
            if (in_hw) DO(recur_be_colsum(be, beta == 0.0f ? db : part, 0.0f, at(dhw, o), pk.R, (int)w, GH));
            if (beta != 0.0f) DO(recur_be_add(be, db, part, w));
            else if (!in_hw) DO(recur_be_copy(be, db, part, w * sizeof(float)));
        }
    }
    for (int k = 0; k < np; k++)
        DO(recur_be_colsum(be, tensor(l, l->dw, ptensor[k]), beta, dpar[k], pk.R, (int)psize[k], (int)psize[k]));
    if (r->dx.m.buf) {
        struct recur_mem dx = direct_dx ? view_base(&r->dx) : at(WS, p.dxp);
        DO(recur_wgemm(l, RECUR_WP_IH, 0, GH, I, l->w, I, pk.R, dxw, GH, 0.0f, dx, I));
        if (!direct_dx)
            DO(recur_be_scatter(be, view_base(&r->dx), r->dx.ld, dx, I, at(ints, ints_at(&pk, IX_X)), pk.R, I,
                                r->dx_add));
    }
    struct recur_mem dst0[2] = {r->dh0, r->dc0};
    for (int k = 0; k < S; k++)
        if (dst0[k].buf) {
            int w = (int)state_width(l, k);
            DO(recur_be_scatter(be, dst0[k], w, at(carry, state_off(l, k, N)), w, at(ints, ints_at(&pk, IX_PERM)),
                                N, w, 0));
        }
out:
#undef DO
    pack_free(&pk);
    return st;
}
