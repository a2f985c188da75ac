/*
 * test-onednn.c: the lstm-peephole cell against oneDNN's LSTM with peepholes
 * (dnnl_lstm_forward_desc_init_v2 / dnnl_lstm_backward_desc_init_v2 with
 * weights_peephole), an implementation written independently of recur's.
 * Float against float, through recur's public API only, on every CPU ISA
 * compiled (one this CPU lacks is skipped): y, hT, cT, then dx, dh0, dc0,
 * dW_ih, dW_hh, db_ih, db_hh (each equal to oneDNN's diff_bias) and the
 * peepholes' gradient. The shapes include N=1, T=1 and hidden sizes that are
 * not a multiple of 8.
 *
 * oneDNN's layouts: src_layer tnc [T, N, I]; src_iter, src_iter_c ldnc
 * [1, 1, N, H]; weights ldigo [1, 1, I, 4, H] (W^T per gate, gates i, f, g, o
 * as recur's canonical ones); bias ldgo [1, 1, 4, H] = b_ih + b_hh;
 * weights_peephole ldgo [1, 1, 3, H] with rows i, f, o, as recur's
 * weight_peephole.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "recur/recur-cell.h"
#include "recur/recur.h"

struct shape {
    int T, N, I, H;
};

static const struct shape shapes[] = {
    {1, 1, 3, 5}, {6, 4, 7, 19}, {5, 1, 16, 32}, {4, 3, 33, 17}, {12, 2, 8, 13}, {3, 9, 24, 64},
};

/* Forward outputs are O(1): 1e-5 relative and absolute (the worst seen is
 * about 1e-6). Gradients are sums over T*N steps, done in another order by
 * each library: 1e-5 relative plus 1e-5 of the tensor's largest magnitude.
 * A peephole with the wrong sign in one gate, forward or backward, is off by
 * orders of magnitude more. */
#define RTOL 1e-5
#define ATOL_FWD 1e-5
#define ATOL_GRAD 1e-5

/* Asserts a oneDNN call succeeded, naming it and oneDNN's status. */
#define DN(call)                                                                                             \
    do {                                                                                                     \
        dnnl_status_t st_ = (call);                                                                          \
        cr_assert_eq(st_, dnnl_success, "%s: %s", #call, dnnl_status2str(st_));                              \
    } while (0)

/* Everything one case draws and both libraries compute; w and dw in recur's
 * canonical layout [W_ih (4H x I), W_hh (4H x H), b_ih (4H), b_hh (4H), P (3H)]. */
struct tensors {
    float *w, *x, *h0, *c0, *dy, *dhT, *dcT;
    float *y, *hT, *cT, *dx, *dh0, *dc0, *dw;
};

static size_t weight_count(const struct shape *s) {
    size_t GH = 4 * (size_t)s->H;
    return GH * (size_t)s->I + GH * (size_t)s->H + 2 * GH + 3 * (size_t)s->H;
}

static void tensors_alloc(struct tensors *t, const struct shape *s) {
    size_t nw = weight_count(s), nx = (size_t)s->T * s->N * s->I, nh = (size_t)s->N * s->H, ny = (size_t)s->T * nh;
    float **a[] = {&t->w, &t->x, &t->h0, &t->c0, &t->dy, &t->dhT, &t->dcT,
                   &t->y, &t->hT, &t->cT, &t->dx, &t->dh0, &t->dc0, &t->dw};
    size_t n[] = {nw, nx, nh, nh, ny, nh, nh, ny, nh, nh, nx, nh, nh, nw};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) *a[i] = test_floats(n[i]);
}

static void tensors_free(struct tensors *t) {
    float *a[] = {t->w, t->x, t->h0, t->c0, t->dy, t->dhT, t->dcT, t->y, t->hT, t->cT, t->dx, t->dh0, t->dc0, t->dw};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) free(a[i]);
}

static void fill(test_rng *r, float *f, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) f[i] = (float)test_uniform(r, lo, hi);
}

/* ---- recur ------------------------------------------------------------------ */

static void recur_run(const char *device, const struct shape *s, struct tensors *t) {
    size_t nw = weight_count(s), nh = (size_t)s->N * s->H;
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, device), RECUR_OK, "%s", recur_last_error());
    recur_layer *l;
    recur_layer_desc d = {.cell = "lstm-peephole", .input_size = s->I, .hidden_size = s->H};
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_weight_count(l), nw, "lstm-peephole I%d H%d: %zu weights, expected %zu", s->I, s->H,
                 recur_layer_weight_count(l), nw);
    cr_assert_eq(recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, t->w, nw), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_io io = {.T = s->T, .N = s->N, .x = t->x, .h0 = t->h0, .c0 = t->c0, .y = t->y, .hT = t->hT, .cT = t->cT};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_grad_io g = {.dy = t->dy, .dhT = t->dhT, .dcT = t->dcT, .dx = t->dx, .dh0 = t->dh0, .dc0 = t->dc0};
    cr_assert_eq(recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, t->dw, nw), RECUR_OK, "%s", recur_ctx_error(ctx));

    /* The inference forward gives the training one's outputs, bit for bit or nearly. */
    float *y2 = test_floats((size_t)s->T * nh), *hT2 = test_floats(nh);
    recur_io io2 = {.T = s->T, .N = s->N, .x = t->x, .h0 = t->h0, .c0 = t->c0, .y = y2, .hT = hT2};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_INFERENCE, &io2), RECUR_OK, "%s", recur_ctx_error(ctx));
    for (size_t i = 0; i < (size_t)s->T * nh; i++)
        cr_assert(fabsf(y2[i] - t->y[i]) <= 1e-6f, "%s inference y[%zu] %.9g, training %.9g", device, i, y2[i],
                  t->y[i]);
    for (size_t i = 0; i < nh; i++)
        cr_assert(fabsf(hT2[i] - t->hT[i]) <= 1e-6f, "%s inference hT[%zu] %.9g, training %.9g", device, i,
                  hT2[i], t->hT[i]);
    free(y2), free(hT2);
    recur_ctx_free(ctx); /* frees the layer too */
}

/* ---- oneDNN ----------------------------------------------------------------- */

struct dnn {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_memory_t mem[48];
    int n_mem;
};

/* A new memory of md, owned by dn, holding src (plain layouts only) or zeros. */
static dnnl_memory_t dn_mem(struct dnn *dn, const dnnl_memory_desc_t *md, const float *src) {
    cr_assert(dn->n_mem < (int)(sizeof dn->mem / sizeof dn->mem[0]), "too many oneDNN memories");
    dnnl_memory_t m;
    void *h;
    DN(dnnl_memory_create(&m, md, dn->engine, DNNL_MEMORY_ALLOCATE));
    dn->mem[dn->n_mem++] = m;
    DN(dnnl_memory_get_data_handle(m, &h));
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (src)
        memcpy(h, src, bytes);
    else
        memset(h, 0, bytes);
    return m;
}

static void dn_read(dnnl_memory_t m, float *dst) {
    const dnnl_memory_desc_t *md;
    void *h;
    DN(dnnl_memory_get_memory_desc(m, &md));
    DN(dnnl_memory_get_data_handle(m, &h));
    memcpy(dst, h, dnnl_memory_desc_get_size(md));
}

static void dn_reorder(struct dnn *dn, dnnl_memory_t src, dnnl_memory_t dst) {
    const dnnl_memory_desc_t *smd, *dmd;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    DN(dnnl_memory_get_memory_desc(src, &smd));
    DN(dnnl_memory_get_memory_desc(dst, &dmd));
    DN(dnnl_reorder_primitive_desc_create(&pd, smd, dn->engine, dmd, dn->engine, NULL));
    DN(dnnl_primitive_create(&p, pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    DN(dnnl_primitive_execute(p, dn->stream, 2, args));
    DN(dnnl_stream_wait(dn->stream));
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
}

/* The memory descriptor pd wants for argument arg (asserted present). */
static const dnnl_memory_desc_t *dn_arg_md(const_dnnl_primitive_desc_t pd, int arg) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    cr_assert(md && md->ndims > 0, "oneDNN primitive has no memory descriptor for argument %d", arg);
    return md;
}

/* user (a plain layout), reordered into the layout pd wants for arg. */
static dnnl_memory_t dn_in(struct dnn *dn, const_dnnl_primitive_desc_t pd, int arg, dnnl_memory_t user) {
    const dnnl_memory_desc_t *umd, *want = dn_arg_md(pd, arg);
    DN(dnnl_memory_get_memory_desc(user, &umd));
    if (dnnl_memory_desc_equal(umd, want)) return user;
    dnnl_memory_t m = dn_mem(dn, want, NULL);
    dn_reorder(dn, user, m);
    return m;
}

/* Canonical rows W [4H x K] (gate blocks of H rows) <-> oneDNN's ldigo [K, 4, H]. */
static void to_ldigo(const float *w, float *o, int K, int H) {
    for (int k = 0; k < K; k++)
        for (int r = 0; r < 4 * H; r++) o[(size_t)k * 4 * H + r] = w[(size_t)r * K + k];
}

static void from_ldigo(const float *o, float *w, int K, int H) {
    for (int k = 0; k < K; k++)
        for (int r = 0; r < 4 * H; r++) w[(size_t)r * K + k] = o[(size_t)k * 4 * H + r];
}

/* oneDNN's forward_training and backward of one unidirectional layer: t's
 * inputs in, outputs into o (o->dw in recur's canonical layout). */
static void onednn_run(const struct shape *s, const struct tensors *t, struct tensors *o) {
    const int T = s->T, N = s->N, I = s->I, H = s->H;
    const size_t GH = 4 * (size_t)H;
    struct dnn dn = {0};
    DN(dnnl_engine_create(&dn.engine, dnnl_cpu, 0));
    DN(dnnl_stream_create(&dn.stream, dn.engine, dnnl_stream_default_flags));

    dnnl_memory_desc_t md_x, md_y, md_st, md_wl, md_wi, md_wl_any, md_wi_any, md_b, md_p;
    dnnl_dims_t dx_ = {T, N, I}, dy_ = {T, N, H}, dst_ = {1, 1, N, H};
    dnnl_dims_t dwl = {1, 1, I, 4, H}, dwi = {1, 1, H, 4, H}, db = {1, 1, 4, H}, dp = {1, 1, 3, H};
    DN(dnnl_memory_desc_init_by_tag(&md_x, 3, dx_, dnnl_f32, dnnl_tnc));
    DN(dnnl_memory_desc_init_by_tag(&md_y, 3, dy_, dnnl_f32, dnnl_tnc));
    DN(dnnl_memory_desc_init_by_tag(&md_st, 4, dst_, dnnl_f32, dnnl_ldnc));
    DN(dnnl_memory_desc_init_by_tag(&md_wl, 5, dwl, dnnl_f32, dnnl_ldigo));
    DN(dnnl_memory_desc_init_by_tag(&md_wi, 5, dwi, dnnl_f32, dnnl_ldigo));
    DN(dnnl_memory_desc_init_by_tag(&md_wl_any, 5, dwl, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&md_wi_any, 5, dwi, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&md_b, 4, db, dnnl_f32, dnnl_ldgo));
    DN(dnnl_memory_desc_init_by_tag(&md_p, 4, dp, dnnl_f32, dnnl_ldgo));

    const dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;
    dnnl_rnn_desc_t fd, bd;
    dnnl_primitive_desc_t fpd, bpd;
    DN(dnnl_lstm_forward_desc_init_v2(&fd, dnnl_forward_training, dir, &md_x, &md_st, &md_st, &md_wl_any,
                                      &md_wi_any, &md_p, &md_b, &md_y, &md_st, &md_st, dnnl_rnn_flags_undef));
    DN(dnnl_primitive_desc_create(&fpd, &fd, NULL, dn.engine, NULL));
    DN(dnnl_lstm_backward_desc_init_v2(&bd, dnnl_backward, dir, &md_x, &md_st, &md_st, &md_wl_any, &md_wi_any,
                                       &md_p, &md_b, &md_y, &md_st, &md_st, &md_x, &md_st, &md_st, &md_wl_any,
                                       &md_wi_any, &md_p, &md_b, &md_y, &md_st, &md_st, dnnl_rnn_flags_undef));
    DN(dnnl_primitive_desc_create(&bpd, &bd, NULL, dn.engine, fpd));

    /* User memories in plain layouts. */
    const float *w_ih = t->w, *w_hh = w_ih + GH * I, *b_ih = w_hh + GH * H, *b_hh = b_ih + GH, *peep = b_hh + GH;
    float *wl = test_floats(GH * I), *wi = test_floats(GH * H), *b = test_floats(GH);
    to_ldigo(w_ih, wl, I, H);
    to_ldigo(w_hh, wi, H, H);
    for (size_t j = 0; j < GH; j++) b[j] = b_ih[j] + b_hh[j];
    dnnl_memory_t m_x = dn_mem(&dn, &md_x, t->x), m_h0 = dn_mem(&dn, &md_st, t->h0), m_c0 = dn_mem(&dn, &md_st, t->c0);
    dnnl_memory_t m_wl = dn_mem(&dn, &md_wl, wl), m_wi = dn_mem(&dn, &md_wi, wi);
    dnnl_memory_t m_b = dn_mem(&dn, &md_b, b), m_p = dn_mem(&dn, &md_p, peep);
    dnnl_memory_t m_y = dn_mem(&dn, &md_y, NULL), m_hT = dn_mem(&dn, &md_st, NULL), m_cT = dn_mem(&dn, &md_st, NULL);
    dnnl_memory_t m_dy = dn_mem(&dn, &md_y, t->dy), m_dhT = dn_mem(&dn, &md_st, t->dhT);
    dnnl_memory_t m_dcT = dn_mem(&dn, &md_st, t->dcT);
    dnnl_memory_t m_dx = dn_mem(&dn, &md_x, NULL), m_dh0 = dn_mem(&dn, &md_st, NULL), m_dc0 = dn_mem(&dn, &md_st, NULL);
    dnnl_memory_t m_dwl_user = dn_mem(&dn, &md_wl, NULL), m_dwi_user = dn_mem(&dn, &md_wi, NULL);
    dnnl_memory_t m_db = dn_mem(&dn, &md_b, NULL), m_dp = dn_mem(&dn, &md_p, NULL);
    /* The primitives' own weight layouts, never the plain ones (oneDNN 2.6
     * on AVX2 chose ldigo with 4H padded to a multiple of 32 forward and for
     * the diff weights, ldgoi with I padded to 16 backward), so every weight
     * goes through a reorder. The diff weights, bias and peepholes start at
     * zero: oneDNN adds its gradients to them (a second backward doubles them). */
    dnnl_memory_t m_dwl = dn_mem(&dn, dn_arg_md(bpd, DNNL_ARG_DIFF_WEIGHTS_LAYER), NULL);
    dnnl_memory_t m_dwi = dn_mem(&dn, dn_arg_md(bpd, DNNL_ARG_DIFF_WEIGHTS_ITER), NULL);
    dnnl_memory_t m_ws = dn_mem(&dn, dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0), NULL);

    /* The forward's arguments, which the backward takes too: the inputs in
     * the layout each primitive wants, the outputs and workspace as they are. */
    const int in_arg[] = {DNNL_ARG_SRC_LAYER,    DNNL_ARG_SRC_ITER,         DNNL_ARG_SRC_ITER_C, DNNL_ARG_WEIGHTS_LAYER,
                          DNNL_ARG_WEIGHTS_ITER, DNNL_ARG_WEIGHTS_PEEPHOLE, DNNL_ARG_BIAS};
    const dnnl_memory_t in_mem[] = {m_x, m_h0, m_c0, m_wl, m_wi, m_p, m_b};
    const dnnl_exec_arg_t fwd_out[] = {
        {DNNL_ARG_DST_LAYER, m_y}, {DNNL_ARG_DST_ITER, m_hT}, {DNNL_ARG_DST_ITER_C, m_cT}, {DNNL_ARG_WORKSPACE, m_ws}};
    const dnnl_exec_arg_t bwd_only[] = {
        {DNNL_ARG_DIFF_DST_LAYER, dn_in(&dn, bpd, DNNL_ARG_DIFF_DST_LAYER, m_dy)},
        {DNNL_ARG_DIFF_DST_ITER, dn_in(&dn, bpd, DNNL_ARG_DIFF_DST_ITER, m_dhT)},
        {DNNL_ARG_DIFF_DST_ITER_C, dn_in(&dn, bpd, DNNL_ARG_DIFF_DST_ITER_C, m_dcT)},
        {DNNL_ARG_DIFF_SRC_LAYER, m_dx},
        {DNNL_ARG_DIFF_SRC_ITER, m_dh0},
        {DNNL_ARG_DIFF_SRC_ITER_C, m_dc0},
        {DNNL_ARG_DIFF_WEIGHTS_LAYER, m_dwl},
        {DNNL_ARG_DIFF_WEIGHTS_ITER, m_dwi},
        {DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE, m_dp},
        {DNNL_ARG_DIFF_BIAS, m_db},
    };
    enum { N_IN = sizeof in_arg / sizeof in_arg[0], N_FWD = N_IN + sizeof fwd_out / sizeof fwd_out[0] };
    dnnl_exec_arg_t fargs[N_FWD], bargs[N_FWD + sizeof bwd_only / sizeof bwd_only[0]];
    for (int k = 0; k < N_IN; k++) {
        fargs[k] = (dnnl_exec_arg_t){in_arg[k], dn_in(&dn, fpd, in_arg[k], in_mem[k])};
        bargs[k] = (dnnl_exec_arg_t){in_arg[k], dn_in(&dn, bpd, in_arg[k], in_mem[k])};
    }
    memcpy(fargs + N_IN, fwd_out, sizeof fwd_out);
    memcpy(bargs + N_IN, fwd_out, sizeof fwd_out);
    memcpy(bargs + N_FWD, bwd_only, sizeof bwd_only);
    /* The outputs and the state descriptors were given in plain layouts, so
     * the primitives must use them as given (read back below as such). */
    const int plain_out[] = {DNNL_ARG_DST_LAYER, DNNL_ARG_DST_ITER, DNNL_ARG_DST_ITER_C};
    for (size_t k = 0; k < sizeof plain_out / sizeof plain_out[0]; k++) {
        const dnnl_memory_desc_t *want = dn_arg_md(fpd, plain_out[k]);
        cr_assert(dnnl_memory_desc_equal(want, plain_out[k] == DNNL_ARG_DST_LAYER ? &md_y : &md_st),
                  "oneDNN forward wants another layout for output %d", plain_out[k]);
    }
    const int plain_bwd[] = {DNNL_ARG_DIFF_SRC_LAYER, DNNL_ARG_DIFF_SRC_ITER, DNNL_ARG_DIFF_SRC_ITER_C,
                             DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE, DNNL_ARG_DIFF_BIAS};
    const dnnl_memory_desc_t *plain_bwd_md[] = {&md_x, &md_st, &md_st, &md_p, &md_b};
    for (size_t k = 0; k < sizeof plain_bwd / sizeof plain_bwd[0]; k++)
        cr_assert(dnnl_memory_desc_equal(dn_arg_md(bpd, plain_bwd[k]), plain_bwd_md[k]),
                  "oneDNN backward wants another layout for output %d", plain_bwd[k]);

    dnnl_primitive_t fwd, bwd;
    DN(dnnl_primitive_create(&fwd, fpd));
    DN(dnnl_primitive_create(&bwd, bpd));
    DN(dnnl_primitive_execute(fwd, dn.stream, (int)(sizeof fargs / sizeof fargs[0]), fargs));
    DN(dnnl_primitive_execute(bwd, dn.stream, (int)(sizeof bargs / sizeof bargs[0]), bargs));
    DN(dnnl_stream_wait(dn.stream));
    dn_reorder(&dn, m_dwl, m_dwl_user);
    dn_reorder(&dn, m_dwi, m_dwi_user);

    dn_read(m_y, o->y);
    dn_read(m_hT, o->hT);
    dn_read(m_cT, o->cT);
    dn_read(m_dx, o->dx);
    dn_read(m_dh0, o->dh0);
    dn_read(m_dc0, o->dc0);
    float *dw_ih = o->dw, *dw_hh = dw_ih + GH * I, *db_ih = dw_hh + GH * H, *db_hh = db_ih + GH, *dpeep = db_hh + GH;
    dn_read(m_dwl_user, wl);
    dn_read(m_dwi_user, wi);
    from_ldigo(wl, dw_ih, I, H);
    from_ldigo(wi, dw_hh, H, H);
    dn_read(m_db, db_ih);
    memcpy(db_hh, db_ih, GH * sizeof(float));
    dn_read(m_dp, dpeep);

    free(wl), free(wi), free(b);
    dnnl_primitive_destroy(bwd);
    dnnl_primitive_destroy(fwd);
    dnnl_primitive_desc_destroy(bpd);
    dnnl_primitive_desc_destroy(fpd);
    for (int k = 0; k < dn.n_mem; k++) dnnl_memory_destroy(dn.mem[k]);
    dnnl_stream_destroy(dn.stream);
    dnnl_engine_destroy(dn.engine);
}

/* ---- the comparison ---------------------------------------------------------- */

/* recur's a against oneDNN's b: |a - b| <= atol_rel * max|b| (or atol when
 * atol_rel is 0) + RTOL |b|; reports the worst absolute and scaled
 * differences on stderr (the meson test log). */
static void compare(const char *device, const struct shape *s, const char *what, const float *a, const float *b,
                    size_t n, double atol, double atol_rel) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    if (atol_rel > 0) atol = atol_rel * (1 + scale);
    double *bd = test_doubles(n);
    for (size_t i = 0; i < n; i++) {
        bd[i] = b[i];
        worst = fmax(worst, fabs((double)a[i] - bd[i]));
    }
    char name[160];
    snprintf(name, sizeof name, "%s lstm-peephole T%d N%d I%d H%d: %s (recur vs oneDNN)", device, s->T, s->N, s->I,
             s->H, what);
    fprintf(stderr, "%-52s max|diff| %.3e  max|oneDNN| %.3e  tolerance %.3e + %.0e|v|\n", name, worst, scale, atol,
            RTOL);
    ASSERT_CLOSE(name, a, bd, n, RTOL, atol);
    free(bd);
}

static void check_case(const char *device, const struct shape *s) {
    const size_t GH = 4 * (size_t)s->H, nh = (size_t)s->N * s->H, nx = (size_t)s->T * s->N * s->I;
    struct tensors in, ref;
    tensors_alloc(&in, s);
    tensors_alloc(&ref, s);
    test_rng rng = {0x5eedu + (uint64_t)s->T * 131 + (uint64_t)s->N * 17 + (uint64_t)s->H};
    fill(&rng, in.w, weight_count(s), -0.3, 0.3);
    fill(&rng, in.x, nx, -1, 1);
    fill(&rng, in.h0, nh, -1, 1);
    fill(&rng, in.c0, nh, -1, 1);
    fill(&rng, in.dy, (size_t)s->T * nh, -1, 1);
    fill(&rng, in.dhT, nh, -1, 1);
    fill(&rng, in.dcT, nh, -1, 1);

    recur_run(device, s, &in);
    onednn_run(s, &in, &ref);

    compare(device, s, "y", in.y, ref.y, (size_t)s->T * nh, ATOL_FWD, 0);
    compare(device, s, "hT", in.hT, ref.hT, nh, ATOL_FWD, 0);
    compare(device, s, "cT", in.cT, ref.cT, nh, ATOL_FWD, 0);
    compare(device, s, "dx", in.dx, ref.dx, nx, 0, ATOL_GRAD);
    compare(device, s, "dh0", in.dh0, ref.dh0, nh, 0, ATOL_GRAD);
    compare(device, s, "dc0", in.dc0, ref.dc0, nh, 0, ATOL_GRAD);
    size_t off = 0;
    const struct {
        const char *name;
        size_t n;
    } blocks[] = {{"dW_ih", GH * s->I}, {"dW_hh", GH * s->H}, {"db_ih", GH}, {"db_hh", GH},
                  {"dweight_peephole", 3 * (size_t)s->H}};
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
        compare(device, s, blocks[k].name, in.dw + off, ref.dw + off, blocks[k].n, 0, ATOL_GRAD);
        off += blocks[k].n;
    }
    cr_assert_eq(off, weight_count(s));
    tensors_free(&in);
    tensors_free(&ref);
}

static void check_device(const char *device) {
    test_need_device(device);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_case(device, &shapes[i]);
}

/* Every ISA of the architecture compiled (RECUR_ISA_LIST); one this CPU lacks is skipped. */
#define ONEDNN_ISA(u, ID, name, bit, arch, implies, flags)                                                   \
    RECUR_ISA_IF(arch)(Test(onednn, lstm_peephole_##name) { check_device("cpu:" #name); })
RECUR_ISA_LIST(ONEDNN_ISA, )

/* Large enough that recur splits the batch across threads. */
Test(onednn, lstm_peephole_wide_batch) {
    test_need_device("cpu");
    struct shape s = {3, 64, 8, 160};
    check_case("cpu", &s);
}
