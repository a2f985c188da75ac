/*
 * stack.c: a model's forward and backward through its layers and
 * directions (contract 3). Everything runs through the layer engine on
 * device memory; the public calls copy the caller's host arrays in and out
 * once (host I/O, arena.h).
 *
 *   layer 0 reads x; layer l > 0 reads A_{l-1} (after dropout in training);
 *   direction d of layer l writes A_l: columns [d*P, (d+1)*P) for
 *   bidirectional concat, all P columns (the second direction adding) for
 *   bidirectional sum (P: proj_size, or H). The last layer writes y.
 *   States: a's are [L*D, N, P], c's [L*D, N, H].
 *
 * Backward runs the layers from the top; both directions of a layer send
 * their dx into one buffer (the second adds), which, through the dropout
 * mask of the forward, is dy of the layer below.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "model.h"

/* Activations: A_0 .. A_{L-2}, then the dropped-out inputs D_1 .. D_{L-1}
 * (training with dropout), then two gradient buffers; each [T, N, O]. */
struct acts {
    size_t a, d, g0, g1, total;
};

static recur_status acts_plan(const recur_model *m, int T, int N, struct acts *p) {
    size_t TN = (size_t)T * N, inner = (size_t)(m->L - 1), O = (size_t)m->O;
    struct recur_plan pl = recur_plan_start(m->ctx, "model activations");
    p->a = recur_plan_take(&pl, "outputs", inner, TN, O);
    p->d = recur_plan_take(&pl, "dropped-out inputs", m->desc.dropout > 0 ? inner : 0, TN, O);
    p->g0 = recur_plan_take(&pl, "gradient 0", m->L > 1 ? 1 : 0, TN, O);
    p->g1 = recur_plan_take(&pl, "gradient 1", m->L > 2 ? 1 : 0, TN, O);
    p->total = pl.top;
    return pl.st;
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
    TRY(acts_plan(m, T, N, &ap));
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
    RETURN_IF(io->batch_first != 0 && io->batch_first != 1, m->ctx, RECUR_ERR_ARG,
              "%s: io->batch_first is %d: expected 0 or 1", fn, io->batch_first);
    TRY(recur_layer_check_c(m->layers[0], fn, io->c0, "io->c0", io->cT, "io->cT"));
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
    return m->desc.direction == RECUR_DIR_BIDI_CONCAT ? d * m->P : 0;
}

/* dst = dropout(src) as drawn for layer `layer`'s input by training call
 * `call`: forward draws with the call's own number, backward with that of
 * the forward it goes back through, so both apply the same mask. */
static recur_status dropout(recur_model *m, uint64_t call, int layer, struct recur_mem dst, struct recur_mem src,
                            size_t count) {
    uint64_t stream = call * RECUR_MAX_LAYERS + (uint64_t)layer;
    return recur_be_dropout(&m->ctx->be, dst, src, count, m->desc.dropout, m->desc.seed, stream);
}

/* The zoneout masks' stream of layer `layer`, direction d, training call
 * `call`: the top bit set, so never one of dropout's. */
static uint64_t zo_stream(uint64_t call, int layer, int d) {
    return (uint64_t)1 << 63 | ((call * RECUR_MAX_LAYERS + (uint64_t)layer) * 2 + (uint64_t)d);
}

static struct recur_mem state_at(struct recur_mem m, size_t off) {
    struct recur_mem none = {0};
    return m.buf ? recur_mem_at(m, off) : none;
}

recur_status recur_stack_forward(recur_model *m, recur_mode mode, const struct recur_stack_io *io) {
    struct recur_backend *be = &m->ctx->be;
    TRY(check_shape(m, io->T, io->N, io->lengths, "recur_model_forward"));
    int T = io->T, N = io->N, H = m->desc.hidden_size, I = m->desc.input_size, L = m->L, D = m->D;
    int training = mode == RECUR_MODE_TRAINING, S = m->layers[0]->n_states;
    size_t TN = (size_t)T * N, NH = (size_t)N * H, NP = (size_t)N * m->P;
    (void)I;
    m->trained_T = m->trained_N = 0;

    struct acts ap;
    TRY(acts_plan(m, T, N, &ap));
    /* Padded positions of activations are never read; a new buffer starts
     * as zeros so they never hold garbage. */
    TRY(recur_arena_grow(m->ctx, &m->acts, ap.total, 1));
    if (io->lengths) TRY(recur_be_fill(be, io->y, io->pad, TN * m->O));

    float p = training ? m->desc.dropout : 0.0f;
    for (int l = 0; l < L; l++) {
        struct recur_seqview x;
        if (l == 0) {
            x = user_view(io, io->x, 0, m->desc.input_size);
        } else {
            struct recur_mem in = recur_mem_at(m->acts.mem, ap.a + (size_t)(l - 1) * TN * m->O);
            if (p > 0) {
                struct recur_mem dropped = recur_mem_at(m->acts.mem, ap.d + (size_t)(l - 1) * TN * m->O);
                TRY(dropout(m, m->calls, l, dropped, in, TN * m->O));
                in = dropped;
            }
            x = act_view(io, in, m->O, 0);
        }
        for (int d = 0; d < D; d++) {
            size_t sd = (size_t)(l * D + d) * NH, sp = (size_t)(l * D + d) * NP;
            struct recur_run r = {.T = T, .N = N, .lengths = io->lengths, .reverse = is_reverse(m, d), .x = x};
            if (l == L - 1)
                r.y = user_view(io, io->y, out_col(m, d), m->O);
            else
                r.y = act_view(io, recur_mem_at(m->acts.mem, ap.a + (size_t)l * TN * m->O), m->O, out_col(m, d));
            r.y_add = m->desc.direction == RECUR_DIR_BIDI_SUM && d == 1;
            struct recur_mem none = {0};
            r.h0 = state_at(io->h0, sp);
            r.c0 = state_at(io->c0, sd);
            r.hT = state_at(io->hT, sp);
            r.cT = S > 1 ? state_at(io->cT, sd) : none;
            r.zo_stream = zo_stream(m->calls, l, d);
            TRY(recur_engine_forward(m->layers[l * D + d], mode, &r));
        }
    }
    if (training) {
        if (recur_lengths_keep(&m->trained_len, io->lengths, N) != 0)
            return recur_err(m->ctx, RECUR_ERR_NO_MEMORY, "recur_model_forward: out of memory keeping %d lengths", N);
        m->trained_T = T;
        m->trained_N = N;
        m->trained_batch_first = io->batch_first;
        m->trained_call = m->calls;
        m->calls++;
    }
    return RECUR_OK;
}

/* The engine's poll at each backward step: the grad hook's POLL. */
static recur_status grad_poll(void *m) { return recur_grad_ready(m, RECUR_GRAD_PART_POLL, 0); }

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
    size_t TN = (size_t)T * N, NH = (size_t)N * H, NP = (size_t)N * m->P, one = TN * m->O;
    struct acts ap;
    TRY(acts_plan(m, T, N, &ap));
    /* dx at padded positions is zero; valid ones are written below. */
    if (g->dx.buf && io->lengths) TRY(recur_be_fill(be, g->dx, 0.0f, TN * I));

    float p = m->desc.dropout;
    struct recur_seqview dy = user_view(io, g->dy, 0, m->O);
    for (int l = L - 1; l >= 0; l--) {
        struct recur_seqview x, dx;
        struct recur_mem gbuf = {0};
        if (l == 0) {
            x = user_view(io, io->x, 0, I);
            dx = user_view(io, g->dx, 0, I);
        } else {
            struct recur_mem in = recur_mem_at(m->acts.mem, (p > 0 ? ap.d : ap.a) + (size_t)(l - 1) * one);
            x = act_view(io, in, m->O, 0);
            gbuf = recur_mem_at(m->acts.mem, (L - 1 - l) % 2 ? ap.g1 : ap.g0);
            dx = act_view(io, gbuf, m->O, 0);
        }
        for (int d = 0; d < D; d++) {
            size_t sd = (size_t)(l * D + d) * NH, sp = (size_t)(l * D + d) * NP;
            struct recur_mem none = {0};
            struct recur_run r = {.T = T, .N = N, .lengths = io->lengths, .reverse = is_reverse(m, d), .x = x,
                                  .dx = dx, .dx_add = d == 1};
            r.dy = dy;
            r.dy.col = dy.col + out_col(m, d);
            if (!dy.m.buf) r.dy.m = none;
            r.dhT = state_at(g->dhT, sp);
            r.dcT = S > 1 ? state_at(g->dcT, sd) : none;
            r.dh0 = state_at(g->dh0, sp);
            r.dc0 = S > 1 ? state_at(g->dc0, sd) : none;
            r.zo_stream = zo_stream(m->trained_call, l, d);
            r.poll = m->grad_hook.fn ? grad_poll : NULL, r.poll_arg = m;
            TRY(recur_engine_backward(m->layers[l * D + d], &r, mode));
        }
        TRY(recur_grad_ready(m, RECUR_GRAD_PART_LAYER, l)); /* layer l's weight gradients are final */
        if (l > 0) {
            /* Through the dropout mask of layer l's input: the forward's draw. */
            if (p > 0) TRY(dropout(m, m->trained_call, l, gbuf, gbuf, one));
            dy = act_view(io, gbuf, m->O, 0);
        }
    }
    return RECUR_OK;
}

/* ---- the public calls: host arrays through host I/O (arena.h) ---- */

static struct recur_stack_io user_io(const recur_model_io *io) {
    struct recur_stack_io d = {.T = io->T, .N = io->N, .batch_first = io->batch_first, .lengths = io->lengths,
                               .pad = io->pad};
    return d;
}

recur_status recur_model_forward(recur_model *m, recur_mode mode, const recur_model_io *io) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_forward: model is NULL");
    recur_err_clear(m->ctx);
    TRY(recur_check_mode(m->ctx, "recur_model_forward", mode));
    TRY(check_model_io(m, io, "recur_model_forward"));
    size_t TN = (size_t)io->T * io->N, LDNP = recur_model_states(m, io->N, 0), LDNH = recur_model_states(m, io->N, 1);
    struct recur_stack_io d = user_io(io);
    const struct recur_hostio h[] = {
        {"x", io->x, NULL, TN * m->desc.input_size, &d.x}, {"y", NULL, io->y, TN * m->O, &d.y},
        {"h0", io->h0, NULL, LDNP, &d.h0},                  {"c0", io->c0, NULL, LDNH, &d.c0},
        {"hT", NULL, io->hT, LDNP, &d.hT},                  {"cT", NULL, io->cT, LDNH, &d.cT},
    };
    TRY(recur_hostio_in(m->ctx, &m->io, h, RECUR_COUNT(h)));
    TRY(recur_stack_forward(m, mode, &d));
    return recur_hostio_out(m->ctx, h, RECUR_COUNT(h));
}

recur_status recur_model_backward(recur_model *m, const recur_model_io *io, const recur_model_grad_io *g,
                                  recur_grad_mode mode) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_backward: model is NULL");
    recur_err_clear(m->ctx);
    TRY(check_model_io(m, io, "recur_model_backward"));
    RETURN_IF(!g, m->ctx, RECUR_ERR_NULL, "recur_model_backward: grad is NULL");
    TRY(recur_layer_check_grad(m->layers[0], "recur_model_backward", mode, g->dcT, g->dc0));
    size_t TN = (size_t)io->T * io->N, TNI = TN * m->desc.input_size;
    size_t LDNP = recur_model_states(m, io->N, 0), LDNH = recur_model_states(m, io->N, 1);
    struct recur_stack_io d = user_io(io);
    struct recur_stack_grad dg;
    const struct recur_hostio h[] = {
        {"x", io->x, NULL, TNI, &d.x},          {"dy", g->dy, NULL, TN * m->O, &dg.dy},
        {"dhT", g->dhT, NULL, LDNP, &dg.dhT},   {"dcT", g->dcT, NULL, LDNH, &dg.dcT},
        {"dx", NULL, g->dx, TNI, &dg.dx},       {"dh0", NULL, g->dh0, LDNP, &dg.dh0},
        {"dc0", NULL, g->dc0, LDNH, &dg.dc0},
    };
    TRY(recur_hostio_in(m->ctx, &m->io, h, RECUR_COUNT(h)));
    TRY(recur_stack_backward(m, &d, &dg, mode));
    return recur_hostio_out(m->ctx, h, RECUR_COUNT(h));
}

/* ---- the device-resident calls (recur.h): the caller's buffers in place ---- */

/* The host-pointer form of io for the shared checks: a field is present
 * (never read) when its buffer is. */
static float present;
static recur_model_io shape_of(const recur_model_io_dev *io) {
    recur_model_io h = {.T = io->T, .N = io->N, .batch_first = io->batch_first, .lengths = io->lengths,
                        .pad = io->pad, .x = io->x ? &present : NULL, .h0 = io->h0 ? &present : NULL,
                        .c0 = io->c0 ? &present : NULL, .y = io->y ? &present : NULL,
                        .hT = io->hT ? &present : NULL, .cT = io->cT ? &present : NULL};
    return h;
}

recur_status recur_model_forward_dev(recur_model *m, recur_mode mode, const recur_model_io_dev *io) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_forward_dev: model is NULL");
    recur_err_clear(m->ctx);
    TRY(recur_check_mode(m->ctx, "recur_model_forward_dev", mode));
    RETURN_IF(!io, m->ctx, RECUR_ERR_NULL, "recur_model_forward_dev: io is NULL");
    recur_model_io h = shape_of(io);
    TRY(check_model_io(m, &h, "recur_model_forward_dev"));
    size_t TN = (size_t)io->T * io->N, LDNP = recur_model_states(m, io->N, 0), LDNH = recur_model_states(m, io->N, 1);
    struct recur_stack_io d = user_io(&h);
    const struct recur_dev_arg a[] = {
        {"io->x", io->x, TN * m->desc.input_size, 0, &d.x}, {"io->h0", io->h0, LDNP, 0, &d.h0},
        {"io->c0", io->c0, LDNH, 0, &d.c0},                  {"io->y", io->y, TN * m->O, 1, &d.y},
        {"io->hT", io->hT, LDNP, 1, &d.hT},                  {"io->cT", io->cT, LDNH, 1, &d.cT},
    };
    TRY(recur_dev_args(m->ctx, "recur_model_forward_dev", a, RECUR_COUNT(a), 0));
    recur_dev_args_written(a, RECUR_COUNT(a));
    return recur_stack_forward(m, mode, &d);
}

recur_status recur_model_backward_dev(recur_model *m, const recur_model_io_dev *io, const recur_model_grad_dev *g,
                                      recur_grad_mode mode) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_backward_dev: model is NULL");
    recur_err_clear(m->ctx);
    RETURN_IF(!io, m->ctx, RECUR_ERR_NULL, "recur_model_backward_dev: io is NULL");
    recur_model_io h = shape_of(io);
    TRY(check_model_io(m, &h, "recur_model_backward_dev"));
    RETURN_IF(!g, m->ctx, RECUR_ERR_NULL, "recur_model_backward_dev: grad is NULL");
    TRY(recur_layer_check_grad(m->layers[0], "recur_model_backward_dev", mode, g->dcT ? &present : NULL,
                               g->dc0 ? &present : NULL));
    size_t TN = (size_t)io->T * io->N, TNI = TN * m->desc.input_size;
    size_t LDNP = recur_model_states(m, io->N, 0), LDNH = recur_model_states(m, io->N, 1);
    struct recur_stack_io d = user_io(&h);
    struct recur_stack_grad dg;
    struct recur_mem y_unused;
    const struct recur_dev_arg a[] = {
        {"io->x", io->x, TNI, 0, &d.x},         {"io->y", io->y, TN * m->O, 0, &y_unused},
        {"grad->dy", g->dy, TN * m->O, 0, &dg.dy}, {"grad->dhT", g->dhT, LDNP, 0, &dg.dhT},
        {"grad->dcT", g->dcT, LDNH, 0, &dg.dcT},   {"grad->dx", g->dx, TNI, 1, &dg.dx},
        {"grad->dh0", g->dh0, LDNP, 1, &dg.dh0},   {"grad->dc0", g->dc0, LDNH, 1, &dg.dc0},
    };
    TRY(recur_dev_args(m->ctx, "recur_model_backward_dev", a, RECUR_COUNT(a), 0));
    recur_dev_args_written(a, RECUR_COUNT(a));
    return recur_stack_backward(m, &d, &dg, mode);
}
