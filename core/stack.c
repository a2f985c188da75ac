/*
 * stack.c: a model's forward and backward through its layers and
 * directions (contract 3). Everything runs through the layer engine on
 * device memory; the caller's host arrays are staged in and out once.
 *
 *   layer 0 reads x; layer l > 0 reads A_{l-1} (after dropout in training);
 *   direction d of layer l writes A_l: columns [d*H, (d+1)*H) for
 *   bidirectional concat, all H columns (the second direction adding) for
 *   bidirectional sum. The last layer writes y.
 *
 * Backward runs the layers from the top; both directions of a layer send
 * their dx into one buffer (the second adds), which, through the dropout
 * mask of the forward, is dy of the layer below.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "model.h"

/* Floats of one [T, N, O] activation. */
static size_t act_floats(const recur_model *m, int T, int N) { return (size_t)T * N * m->O; }

/* Activations: A_0 .. A_{L-2}, then the dropped-out inputs D_1 .. D_{L-1}
 * (training with dropout), then two gradient buffers. */
struct acts {
    size_t a, d, g0, g1, total;
};

static void acts_plan(const recur_model *m, int T, int N, struct acts *p) {
    size_t one = act_floats(m, T, N), inner = (size_t)(m->L - 1);
    p->a = 0;
    p->d = inner * one;
    p->g0 = p->d + (m->desc.dropout > 0 ? inner * one : 0);
    p->g1 = p->g0 + (m->L > 1 ? one : 0);
    p->total = p->g1 + (m->L > 2 ? one : 0);
}

recur_status recur_model_sizes(const recur_model *m, int T, int N, recur_sizes *out) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_sizes: model is NULL");
    recur_err_clear(m->ctx);
    RETURN_IF(!out, m->ctx, RECUR_ERR_NULL, "recur_model_sizes: out is NULL");
    recur_sizes total = {0, 0, 0};
    for (int i = 0; i < m->L * m->D; i++) {
        recur_sizes s;
        TRY(recur_layer_sizes(m->layers[i], T, N, &s));
        total.weights += s.weights;
        total.reserve += s.reserve;
        if (s.workspace > total.workspace) total.workspace = s.workspace;
    }
    struct acts ap;
    acts_plan(m, T, N, &ap);
    total.workspace += ap.total * sizeof(float);
    *out = total;
    return RECUR_OK;
}

/* What every stack call checks: T, N, the lengths and the layers' size limit. */
static recur_status check_shape(recur_model *m, int T, int N, const int *lengths, const char *fn) {
    RETURN_IF(T < 1 || N < 1, m->ctx, RECUR_ERR_ARG, "%s: T %d, N %d: both must be at least 1", fn, T, N);
    /* The layers' own limit (the widest is the last, or the first when I > O). */
    TRY(recur_layer_check_size(m->layers[0], T, N, fn));
    TRY(recur_layer_check_size(m->layers[(m->L - 1) * m->D], T, N, fn));
    if (lengths)
        for (int n = 0; n < N; n++)
            RETURN_IF(lengths[n] < 1 || lengths[n] > T, m->ctx, RECUR_ERR_ARG,
                      "%s: lengths[%d] is %d: each length must be 1..T (T = %d)", fn, n, lengths[n], T);
    return RECUR_OK;
}

static recur_status check_model_io(recur_model *m, const recur_model_io *io, const char *fn) {
    RETURN_IF(!io, m->ctx, RECUR_ERR_NULL, "%s: io is NULL", fn);
    RETURN_IF(io->T < 1 || io->N < 1, m->ctx, RECUR_ERR_ARG, "%s: T %d, N %d: both must be at least 1", fn, io->T,
              io->N);
    RETURN_IF(!io->x || !io->y, m->ctx, RECUR_ERR_NULL, "%s: io->%s is NULL", fn, io->x ? "y" : "x");
    RETURN_IF(m->layers[0]->n_states < 2 && (io->c0 || io->cT), m->ctx, RECUR_ERR_SHAPE,
              "%s: io->%s given, but cell '%s' has no cell state", fn, io->c0 ? "c0" : "cT", m->desc.cell);
    return check_shape(m, io->T, io->N, io->lengths, fn);
}

/* The caller's [T, N, width] array as a view (batch_first or time-major). */
static struct recur_seqview user_view(const struct recur_stack_io *io, struct recur_mem m, int col, int ld) {
    struct recur_seqview v = {m, ld, col, io->batch_first ? 1 : io->N, io->batch_first ? io->T : 1};
    return v;
}

static struct recur_seqview act_view(const struct recur_stack_io *io, struct recur_mem m, int O, int col) {
    struct recur_seqview v = {m, O, col, io->N, 1};
    return v;
}

/* Which direction of the sequence direction d of the model runs. */
static int is_reverse(const recur_model *m, int d) { return m->desc.direction == RECUR_DIR_REVERSE || d == 1; }

/* The output column of direction d (bidirectional sum: both write column 0). */
static int out_col(const recur_model *m, int d) {
    return m->desc.direction == RECUR_DIR_BIDI_CONCAT ? d * m->desc.hidden_size : 0;
}

static uint64_t dropout_stream(const recur_model *m, int layer) { return m->calls * RECUR_MAX_LAYERS + (uint64_t)layer; }

static struct recur_mem state_at(struct recur_mem m, size_t off) {
    struct recur_mem none = {0};
    return m.buf ? recur_mem_at(m, off) : none;
}

recur_status recur_stack_forward(recur_model *m, recur_mode mode, const struct recur_stack_io *io) {
    struct recur_backend *be = &m->ctx->be;
    TRY(check_shape(m, io->T, io->N, io->lengths, "recur_model_forward"));
    int T = io->T, N = io->N, H = m->desc.hidden_size, I = m->desc.input_size, L = m->L, D = m->D;
    int training = mode == RECUR_MODE_TRAINING, S = m->layers[0]->n_states;
    size_t TN = (size_t)T * N, NH = (size_t)N * H;
    (void)I;
    m->trained_T = m->trained_N = 0;

    struct acts ap;
    acts_plan(m, T, N, &ap);
    if (m->acts_floats < ap.total) {
        recur_be_free(be, &m->acts);
        m->acts_floats = 0;
        TRY(recur_be_alloc(be, ap.total * sizeof(float), &m->acts));
        m->acts_floats = ap.total;
        /* Padded positions of activations are never read; zero them once so
         * they never hold garbage. */
        TRY(recur_be_fill(be, m->acts, 0.0f, ap.total));
    }
    if (io->lengths) TRY(recur_be_fill(be, io->y, io->pad, TN * m->O));

    float p = training ? m->desc.dropout : 0.0f;
    for (int l = 0; l < L; l++) {
        struct recur_seqview x;
        if (l == 0) {
            x = user_view(io, io->x, 0, m->desc.input_size);
        } else {
            struct recur_mem in = recur_mem_at(m->acts, ap.a + (size_t)(l - 1) * TN * m->O);
            if (p > 0) {
                struct recur_mem dropped = recur_mem_at(m->acts, ap.d + (size_t)(l - 1) * TN * m->O);
                TRY(recur_be_dropout(be, dropped, in, TN * m->O, p, m->desc.seed, dropout_stream(m, l)));
                in = dropped;
            }
            x = act_view(io, in, m->O, 0);
        }
        for (int d = 0; d < D; d++) {
            size_t sd = (size_t)(l * D + d) * NH;
            struct recur_run r = {.T = T, .N = N, .lengths = io->lengths, .reverse = is_reverse(m, d), .x = x};
            if (l == L - 1)
                r.y = user_view(io, io->y, out_col(m, d), m->O);
            else
                r.y = act_view(io, recur_mem_at(m->acts, ap.a + (size_t)l * TN * m->O), m->O, out_col(m, d));
            r.y_add = m->desc.direction == RECUR_DIR_BIDI_SUM && d == 1;
            struct recur_mem none = {0};
            r.h0 = state_at(io->h0, sd);
            r.c0 = state_at(io->c0, sd);
            r.hT = state_at(io->hT, sd);
            r.cT = S > 1 ? state_at(io->cT, sd) : none;
            TRY(recur_engine_forward(m->layers[l * D + d], mode, &r));
        }
    }
    if (training) {
        if (recur_lengths_keep(&m->trained_len, io->lengths, N) != 0)
            return recur_err(m->ctx, RECUR_ERR_NO_MEMORY, "recur_model_forward: out of memory keeping %d lengths", N);
        m->trained_T = T;
        m->trained_N = N;
        m->trained_batch_first = io->batch_first;
        m->trained_stream = m->calls;
        m->calls++;
    }
    return RECUR_OK;
}

recur_status recur_stack_backward(recur_model *m, const struct recur_stack_io *io, const struct recur_stack_grad *g,
                                  recur_grad_mode mode) {
    TRY(check_shape(m, io->T, io->N, io->lengths, "recur_model_backward"));
    RETURN_IF(m->trained_T == 0, m->ctx, RECUR_ERR_STATE,
              "recur_model_backward: no training forward to go back through (run recur_model_forward with "
              "RECUR_MODE_TRAINING first)");
    RETURN_IF(m->trained_T != io->T || m->trained_N != io->N || m->trained_batch_first != io->batch_first, m->ctx,
              RECUR_ERR_STATE, "recur_model_backward: io has T %d, N %d%s but the training forward had T %d, N %d%s",
              io->T, io->N, io->batch_first ? " (batch first)" : "", m->trained_T, m->trained_N,
              m->trained_batch_first ? " (batch first)" : "");
    int bad = recur_lengths_differ(io->lengths, m->trained_len, io->N, io->T);
    RETURN_IF(bad >= 0, m->ctx, RECUR_ERR_STATE,
              "recur_model_backward: lengths[%d] is %d, the training forward's was %d", bad,
              io->lengths ? io->lengths[bad] : io->T, m->trained_len ? m->trained_len[bad] : io->T);
    struct recur_backend *be = &m->ctx->be;
    int T = io->T, N = io->N, H = m->desc.hidden_size, I = m->desc.input_size, L = m->L, D = m->D;
    int S = m->layers[0]->n_states;
    size_t TN = (size_t)T * N, NH = (size_t)N * H, one = TN * m->O;
    struct acts ap;
    acts_plan(m, T, N, &ap);
    /* dx at padded positions is zero; valid ones are written below. */
    if (g->dx.buf && io->lengths) TRY(recur_be_fill(be, g->dx, 0.0f, TN * I));

    float p = m->desc.dropout;
    uint64_t calls = m->calls;
    m->calls = m->trained_stream; /* dropout_stream() of the forward */
    recur_status st = RECUR_OK;
    struct recur_seqview dy = user_view(io, g->dy, 0, m->O);
    for (int l = L - 1; l >= 0 && st == RECUR_OK; l--) {
        struct recur_seqview x, dx;
        struct recur_mem gbuf = {0};
        if (l == 0) {
            x = user_view(io, io->x, 0, I);
            dx = user_view(io, g->dx, 0, I);
        } else {
            struct recur_mem in = recur_mem_at(m->acts, (p > 0 ? ap.d : ap.a) + (size_t)(l - 1) * one);
            x = act_view(io, in, m->O, 0);
            gbuf = recur_mem_at(m->acts, (L - 1 - l) % 2 ? ap.g1 : ap.g0);
            dx = act_view(io, gbuf, m->O, 0);
        }
        for (int d = 0; d < D && st == RECUR_OK; d++) {
            size_t sd = (size_t)(l * D + d) * NH;
            struct recur_mem none = {0};
            struct recur_run r = {.T = T, .N = N, .lengths = io->lengths, .reverse = is_reverse(m, d), .x = x,
                                  .dx = dx, .dx_add = d == 1};
            r.dy = dy;
            r.dy.col = dy.col + out_col(m, d);
            if (!dy.m.buf) r.dy.m = none;
            r.dhT = state_at(g->dhT, sd);
            r.dcT = S > 1 ? state_at(g->dcT, sd) : none;
            r.dh0 = state_at(g->dh0, sd);
            r.dc0 = S > 1 ? state_at(g->dc0, sd) : none;
            st = recur_engine_backward(m->layers[l * D + d], &r, mode);
        }
        if (st == RECUR_OK && l > 0) {
            /* Through the dropout mask of layer l's input: the same Philox draw. */
            if (p > 0) st = recur_be_dropout(be, gbuf, gbuf, one, p, m->desc.seed, dropout_stream(m, l));
            dy = act_view(io, gbuf, m->O, 0);
        }
    }
    m->calls = calls;
    return st;
}

/* ---- the public calls: host arrays staged through device memory ---- */

struct user {
    struct recur_stage s;
    struct recur_stack_io io;
    struct recur_stack_grad g;
};

static void user_io(const recur_model_io *io, struct recur_stack_io *d) {
    d->T = io->T;
    d->N = io->N;
    d->batch_first = io->batch_first;
    d->lengths = io->lengths;
    d->pad = io->pad;
}

recur_status recur_model_forward(recur_model *m, recur_mode mode, const recur_model_io *io) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_forward: model is NULL");
    recur_err_clear(m->ctx);
    RETURN_IF(mode != RECUR_MODE_INFERENCE && mode != RECUR_MODE_TRAINING, m->ctx, RECUR_ERR_ARG,
              "recur_model_forward: mode %d: expected RECUR_MODE_INFERENCE or RECUR_MODE_TRAINING", (int)mode);
    TRY(check_model_io(m, io, "recur_model_forward"));
    struct recur_backend *be = &m->ctx->be;
    size_t TN = (size_t)io->T * io->N, LDNH = (size_t)m->L * m->D * io->N * m->desc.hidden_size;
    struct user u = {0};
    user_io(io, &u.io);
    TRY(recur_stage_begin(&u.s, be, &m->stage, &m->stage_floats, TN * (m->desc.input_size + m->O) + 4 * LDNH));
    TRY(recur_stage_in(&u.s, io->x, TN * m->desc.input_size, 1, &u.io.x));
    TRY(recur_stage_in(&u.s, io->y, TN * m->O, 0, &u.io.y));
    TRY(recur_stage_in(&u.s, io->h0, LDNH, 1, &u.io.h0));
    TRY(recur_stage_in(&u.s, io->c0, LDNH, 1, &u.io.c0));
    TRY(recur_stage_in(&u.s, io->hT, LDNH, 0, &u.io.hT));
    TRY(recur_stage_in(&u.s, io->cT, LDNH, 0, &u.io.cT));
    TRY(recur_stack_forward(m, mode, &u.io));
    TRY(recur_be_sync(be));
    TRY(recur_stage_out(&u.s, io->y, u.io.y, TN * m->O));
    TRY(recur_stage_out(&u.s, io->hT, u.io.hT, LDNH));
    return recur_stage_out(&u.s, io->cT, u.io.cT, LDNH);
}

recur_status recur_model_backward(recur_model *m, const recur_model_io *io, const recur_model_grad_io *g,
                                  recur_grad_mode mode) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_backward: model is NULL");
    recur_err_clear(m->ctx);
    TRY(check_model_io(m, io, "recur_model_backward"));
    RETURN_IF(!g, m->ctx, RECUR_ERR_NULL, "recur_model_backward: grad is NULL");
    RETURN_IF(mode != RECUR_GRAD_OVERWRITE && mode != RECUR_GRAD_ADD, m->ctx, RECUR_ERR_ARG,
              "recur_model_backward: mode %d: expected RECUR_GRAD_OVERWRITE or RECUR_GRAD_ADD", (int)mode);
    RETURN_IF(m->layers[0]->n_states < 2 && (g->dcT || g->dc0), m->ctx, RECUR_ERR_SHAPE,
              "recur_model_backward: grad->%s given, but cell '%s' has no cell state", g->dcT ? "dcT" : "dc0",
              m->desc.cell);
    struct recur_backend *be = &m->ctx->be;
    int I = m->desc.input_size;
    size_t TN = (size_t)io->T * io->N, LDNH = (size_t)m->L * m->D * io->N * m->desc.hidden_size;
    struct user u = {0};
    user_io(io, &u.io);
    TRY(recur_stage_begin(&u.s, be, &m->stage, &m->stage_floats, TN * (2 * I + m->O) + 4 * LDNH));
    TRY(recur_stage_in(&u.s, io->x, TN * I, 1, &u.io.x));
    TRY(recur_stage_in(&u.s, g->dy, TN * m->O, 1, &u.g.dy));
    TRY(recur_stage_in(&u.s, g->dhT, LDNH, 1, &u.g.dhT));
    TRY(recur_stage_in(&u.s, g->dcT, LDNH, 1, &u.g.dcT));
    TRY(recur_stage_in(&u.s, g->dx, TN * I, 0, &u.g.dx));
    TRY(recur_stage_in(&u.s, g->dh0, LDNH, 0, &u.g.dh0));
    TRY(recur_stage_in(&u.s, g->dc0, LDNH, 0, &u.g.dc0));
    TRY(recur_stack_backward(m, &u.io, &u.g, mode));
    TRY(recur_be_sync(be));
    TRY(recur_stage_out(&u.s, g->dx, u.g.dx, TN * I));
    TRY(recur_stage_out(&u.s, g->dh0, u.g.dh0, LDNH));
    return recur_stage_out(&u.s, g->dc0, u.g.dc0, LDNH);
}
