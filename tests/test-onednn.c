/*
 * test-onednn.c: recur's LSTMs against oneDNN's (dnnl_lstm_forward_desc_init_v3
 * / dnnl_lstm_backward_desc_init_v3), an implementation written independently
 * of recur's:
 *   - the lstm-peephole cell against oneDNN's LSTM with peepholes
 *     (weights_peephole);
 *   - lstm with proj_size P against oneDNN's LSTM with projection
 *     (weights_projection, "LSTMP"), and lstm-peephole with both on the
 *     native ISA.
 * Float against float, through recur's public API only, on every CPU ISA
 * compiled (one this CPU lacks is skipped) and on OpenCL where a device is:
 * y, hT, cT, then dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh (each equal to
 * oneDNN's diff_bias), the projection's dW_hr and the peepholes' gradient.
 * oneDNN 2.6 runs LSTMP backward on the CPU (its reference RNN driver with
 * jitted GEMMs), so every gradient is checked, not only the forward. The
 * shapes include N=1, T=1, P=1 and hidden sizes that are not a multiple of 8.
 *
 * oneDNN's layouts (R: the width of h, P with projection, else H):
 * src_layer tnc [T, N, I]; dst_layer tnc [T, N, R]; src_iter, dst_iter ldnc
 * [1, 1, N, R]; src_iter_c, dst_iter_c ldnc [1, 1, N, H]; weights_layer ldigo
 * [1, 1, I, 4, H] and weights_iter ldigo [1, 1, R, 4, H] (W^T per gate,
 * gates i, f, g, o as recur's canonical ones); bias ldgo [1, 1, 4, H] =
 * b_ih + b_hh; weights_peephole ldgo [1, 1, 3, H] with rows i, f, o, as
 * recur's weight_peephole; weights_projection ldio [1, 1, H, P] = W_hr^T
 * (h = W_hr (o * tanh c), applied to the output and to the recurrent state).
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

/* P: proj_size, 0 for none. */
struct shape {
    int T, N, I, H, P;
};

static const struct shape peephole_shapes[] = {
    {1, 1, 3, 5, 0}, {6, 4, 7, 19, 0}, {5, 1, 16, 32, 0}, {4, 3, 33, 17, 0}, {12, 2, 8, 13, 0}, {3, 9, 24, 64, 0},
};

static const struct shape proj_shapes[] = {
    {1, 1, 3, 5, 2}, {6, 4, 7, 19, 5}, {5, 1, 16, 32, 8}, {4, 3, 33, 17, 16}, {12, 2, 8, 13, 1}, {3, 9, 24, 64, 40},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Forward outputs are O(1): 1e-5 relative and absolute (the worst seen is
 * about 1e-6). Gradients are sums over T*N steps, done in another order by
 * each library: 1e-5 relative plus 1e-5 of the tensor's largest magnitude.
 * A peephole with the wrong sign in one gate, or a projection transposed,
 * forward or backward, is off by orders of magnitude more. */
#define RTOL 1e-5
#define ATOL_FWD 1e-5
#define ATOL_GRAD 1e-5

/* Asserts a oneDNN call succeeded, naming it and oneDNN's status. */
#define DN(call)                                                                                             \
    do {                                                                                                     \
        dnnl_status_t st_ = (call);                                                                          \
        cr_assert_eq(st_, dnnl_success, "%s: %s", #call, dnnl_status2str(st_));                              \
    } while (0)

/* One case: a cell (lstm or lstm-peephole) on one shape. */
struct kase {
    const char *cell;
    int peep; /* lstm-peephole's weight_peephole [3, H] */
    struct shape s;
};

/* The width of h: the projection's, or H. */
static int h_width(const struct shape *s) { return s->P ? s->P : s->H; }

/* The blocks of recur's canonical weights, in order: [W_ih (4H x I),
 * W_hh (4H x R), b_ih (4H), b_hh (4H), W_hr (P x H) with projection,
 * weight_peephole (3H) for lstm-peephole]. */
enum { B_W_IH, B_W_HH, B_B_IH, B_B_HH, B_W_HR, B_PEEP, B_COUNT };
static const char *const block_name[B_COUNT] = {"dW_ih", "dW_hh", "db_ih", "db_hh", "dW_hr", "dweight_peephole"};

static void weight_blocks(const struct kase *k, size_t n[B_COUNT]) {
    size_t GH = 4 * (size_t)k->s.H, H = (size_t)k->s.H;
    n[B_W_IH] = GH * (size_t)k->s.I;
    n[B_W_HH] = GH * (size_t)h_width(&k->s);
    n[B_B_IH] = n[B_B_HH] = GH;
    n[B_W_HR] = (size_t)k->s.P * H;
    n[B_PEEP] = k->peep ? 3 * H : 0;
}

static size_t weight_count(const struct kase *k) {
    size_t n[B_COUNT], sum = 0;
    weight_blocks(k, n);
    for (int b = 0; b < B_COUNT; b++) sum += n[b];
    return sum;
}

/* Everything one case draws and both libraries compute; w and dw in recur's
 * canonical layout (weight_blocks). */
struct tensors {
    float *w, *x, *h0, *c0, *dy, *dhT, *dcT;
    float *y, *hT, *cT, *dx, *dh0, *dc0, *dw;
};

static void tensors_alloc(struct tensors *t, const struct kase *k) {
    const struct shape *s = &k->s;
    size_t nw = weight_count(k), nx = (size_t)s->T * s->N * s->I, nh = (size_t)s->N * h_width(s);
    size_t nc = (size_t)s->N * s->H, ny = (size_t)s->T * nh;
    float **a[] = {&t->w, &t->x, &t->h0, &t->c0, &t->dy, &t->dhT, &t->dcT,
                   &t->y, &t->hT, &t->cT, &t->dx, &t->dh0, &t->dc0, &t->dw};
    size_t n[] = {nw, nx, nh, nc, ny, nh, nc, ny, nh, nc, nx, nh, nc, nw};
    for (size_t i = 0; i < COUNT(a); i++) *a[i] = test_floats(n[i]);
}

static void tensors_free(struct tensors *t) {
    float *a[] = {t->w, t->x, t->h0, t->c0, t->dy, t->dhT, t->dcT, t->y, t->hT, t->cT, t->dx, t->dh0, t->dc0, t->dw};
    for (size_t i = 0; i < COUNT(a); i++) free(a[i]);
}

static void fill(test_rng *r, float *f, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) f[i] = (float)test_uniform(r, lo, hi);
}

/* ---- recur ------------------------------------------------------------------ */

static void recur_run(const char *device, const struct kase *k, struct tensors *t) {
    const struct shape *s = &k->s;
    size_t nw = weight_count(k), nh = (size_t)s->N * h_width(s);
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, device), RECUR_OK, "%s", recur_last_error());
    recur_layer *l;
    recur_layer_desc d = {.cell = k->cell, .input_size = s->I, .hidden_size = s->H, .proj_size = s->P};
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_weight_count(l), nw, "%s I%d H%d P%d: %zu weights, expected %zu", k->cell, s->I, s->H,
                 s->P, recur_layer_weight_count(l), nw);
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
    dnnl_memory_t mem[64];
    int n_mem;
};

/* A new memory of md, owned by dn, holding src (plain layouts only) or zeros. */
static dnnl_memory_t dn_mem(struct dnn *dn, const dnnl_memory_desc_t *md, const float *src) {
    cr_assert(dn->n_mem < (int)COUNT(dn->mem), "too many oneDNN memories");
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

/* Where pd writes output arg: user (a plain layout) when pd wants that
 * layout, else a zeroed memory in pd's, which dn_out_back reorders into user. */
static dnnl_memory_t dn_out(struct dnn *dn, const_dnnl_primitive_desc_t pd, int arg, dnnl_memory_t user) {
    const dnnl_memory_desc_t *umd, *want = dn_arg_md(pd, arg);
    DN(dnnl_memory_get_memory_desc(user, &umd));
    return dnnl_memory_desc_equal(umd, want) ? user : dn_mem(dn, want, NULL);
}

static void dn_out_back(struct dnn *dn, dnnl_memory_t m, dnnl_memory_t user) {
    if (m != user) dn_reorder(dn, m, user);
}

/* o = w^T for a row-major w [rows x cols]: canonical W [4H x K] <-> ldigo
 * [K, 4, H], W_hr [P x H] <-> ldio [H, P]. */
static void transpose(const float *w, float *o, size_t rows, size_t cols) {
    for (size_t c = 0; c < cols; c++)
        for (size_t r = 0; r < rows; r++) o[c * rows + r] = w[r * cols + c];
}

/* Appends {arg, m} to args[*n]. */
static void arg_add(dnnl_exec_arg_t *args, int *n, int max, int arg, dnnl_memory_t m) {
    cr_assert(*n < max, "too many oneDNN arguments");
    args[(*n)++] = (dnnl_exec_arg_t){arg, m};
}

/* oneDNN's forward_training and backward of one unidirectional layer: t's
 * inputs in, outputs into o (o->dw in recur's canonical layout). */
static void onednn_run(const struct kase *k, const struct tensors *t, struct tensors *o) {
    const int T = k->s.T, N = k->s.N, I = k->s.I, H = k->s.H, P = k->s.P, R = h_width(&k->s);
    const size_t GH = 4 * (size_t)H;
    struct dnn dn = {0};
    DN(dnnl_engine_create(&dn.engine, dnnl_cpu, 0));
    DN(dnnl_stream_create(&dn.stream, dn.engine, dnnl_stream_default_flags));

    dnnl_memory_desc_t md_x, md_y, md_sh, md_sc, md_wl, md_wi, md_wl_any, md_wi_any, md_b, md_p, md_r, md_r_any;
    dnnl_dims_t dx_ = {T, N, I}, dy_ = {T, N, R}, dsh = {1, 1, N, R}, dsc = {1, 1, N, H};
    dnnl_dims_t dwl = {1, 1, I, 4, H}, dwi = {1, 1, R, 4, H}, db = {1, 1, 4, H}, dp = {1, 1, 3, H}, dr = {1, 1, H, P};
    DN(dnnl_memory_desc_init_by_tag(&md_x, 3, dx_, dnnl_f32, dnnl_tnc));
    DN(dnnl_memory_desc_init_by_tag(&md_y, 3, dy_, dnnl_f32, dnnl_tnc));
    DN(dnnl_memory_desc_init_by_tag(&md_sh, 4, dsh, dnnl_f32, dnnl_ldnc));
    DN(dnnl_memory_desc_init_by_tag(&md_sc, 4, dsc, dnnl_f32, dnnl_ldnc));
    DN(dnnl_memory_desc_init_by_tag(&md_wl, 5, dwl, dnnl_f32, dnnl_ldigo));
    DN(dnnl_memory_desc_init_by_tag(&md_wi, 5, dwi, dnnl_f32, dnnl_ldigo));
    DN(dnnl_memory_desc_init_by_tag(&md_wl_any, 5, dwl, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&md_wi_any, 5, dwi, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&md_b, 4, db, dnnl_f32, dnnl_ldgo));
    DN(dnnl_memory_desc_init_by_tag(&md_p, 4, dp, dnnl_f32, dnnl_ldgo));
    if (P) {
        DN(dnnl_memory_desc_init_by_tag(&md_r, 4, dr, dnnl_f32, dnnl_ldio));
        DN(dnnl_memory_desc_init_by_tag(&md_r_any, 4, dr, dnnl_f32, dnnl_format_tag_any));
    }
    /* NULL: no peepholes, no projection (v3 is then v2, or the plain LSTM). */
    const dnnl_memory_desc_t *peep_md = k->peep ? &md_p : NULL, *proj_md = P ? &md_r_any : NULL;

    const dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;
    dnnl_rnn_desc_t fd, bd;
    dnnl_primitive_desc_t fpd, bpd;
    DN(dnnl_lstm_forward_desc_init_v3(&fd, dnnl_forward_training, dir, &md_x, &md_sh, &md_sc, &md_wl_any,
                                      &md_wi_any, peep_md, proj_md, &md_b, &md_y, &md_sh, &md_sc,
                                      dnnl_rnn_flags_undef));
    DN(dnnl_primitive_desc_create(&fpd, &fd, NULL, dn.engine, NULL));
    DN(dnnl_lstm_backward_desc_init_v3(&bd, dnnl_backward, dir, &md_x, &md_sh, &md_sc, &md_wl_any, &md_wi_any,
                                       peep_md, proj_md, &md_b, &md_y, &md_sh, &md_sc, &md_x, &md_sh, &md_sc,
                                       &md_wl_any, &md_wi_any, peep_md, proj_md, &md_b, &md_y, &md_sh, &md_sc,
                                       dnnl_rnn_flags_undef));
    DN(dnnl_primitive_desc_create(&bpd, &bd, NULL, dn.engine, fpd));

    /* User memories in plain layouts. */
    size_t nb[B_COUNT];
    const float *blk[B_COUNT];
    weight_blocks(k, nb);
    blk[0] = t->w;
    for (int b = 1; b < B_COUNT; b++) blk[b] = blk[b - 1] + nb[b - 1];
    float *wl = test_floats(nb[B_W_IH]), *wi = test_floats(nb[B_W_HH]), *b = test_floats(GH);
    float *wr = test_floats(nb[B_W_HR]);
    transpose(blk[B_W_IH], wl, GH, (size_t)I);
    transpose(blk[B_W_HH], wi, GH, (size_t)R);
    transpose(blk[B_W_HR], wr, (size_t)P, (size_t)H);
    for (size_t j = 0; j < GH; j++) b[j] = blk[B_B_IH][j] + blk[B_B_HH][j];
    dnnl_memory_t m_x = dn_mem(&dn, &md_x, t->x), m_h0 = dn_mem(&dn, &md_sh, t->h0), m_c0 = dn_mem(&dn, &md_sc, t->c0);
    dnnl_memory_t m_wl = dn_mem(&dn, &md_wl, wl), m_wi = dn_mem(&dn, &md_wi, wi), m_b = dn_mem(&dn, &md_b, b);
    dnnl_memory_t m_y = dn_mem(&dn, &md_y, NULL), m_hT = dn_mem(&dn, &md_sh, NULL), m_cT = dn_mem(&dn, &md_sc, NULL);
    dnnl_memory_t m_dy = dn_mem(&dn, &md_y, t->dy), m_dhT = dn_mem(&dn, &md_sh, t->dhT);
    dnnl_memory_t m_dcT = dn_mem(&dn, &md_sc, t->dcT);
    dnnl_memory_t m_ws = dn_mem(&dn, dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0), NULL);

    /* The forward's inputs, which the backward takes too, each in the layout
     * each primitive wants (oneDNN 2.6 on AVX2 chose ldigo with 4H padded to
     * a multiple of 32 forward, ldgoi with I padded to 16 backward). */
    int in_arg[8], n_in = 0;
    dnnl_memory_t in_mem[8];
#define IN(arg, m) (in_arg[n_in] = (arg), in_mem[n_in++] = (m))
    IN(DNNL_ARG_SRC_LAYER, m_x), IN(DNNL_ARG_SRC_ITER, m_h0), IN(DNNL_ARG_SRC_ITER_C, m_c0);
    IN(DNNL_ARG_WEIGHTS_LAYER, m_wl), IN(DNNL_ARG_WEIGHTS_ITER, m_wi), IN(DNNL_ARG_BIAS, m_b);
    if (k->peep) IN(DNNL_ARG_WEIGHTS_PEEPHOLE, dn_mem(&dn, &md_p, blk[B_PEEP]));
    if (P) IN(DNNL_ARG_WEIGHTS_PROJECTION, dn_mem(&dn, &md_r, wr));
#undef IN
    /* The backward's outputs, in plain user memories read back below. The
     * diff weights, bias, peepholes and projection start at zero: oneDNN
     * adds its gradients to them (a second backward doubles them). */
    struct {
        int arg;
        dnnl_memory_t user, m;
    } outs[10];
    int n_out = 0;
#define OUT(arg_, md_) (outs[n_out].arg = (arg_), outs[n_out++].user = dn_mem(&dn, (md_), NULL))
    OUT(DNNL_ARG_DIFF_SRC_LAYER, &md_x), OUT(DNNL_ARG_DIFF_SRC_ITER, &md_sh), OUT(DNNL_ARG_DIFF_SRC_ITER_C, &md_sc);
    OUT(DNNL_ARG_DIFF_WEIGHTS_LAYER, &md_wl), OUT(DNNL_ARG_DIFF_WEIGHTS_ITER, &md_wi), OUT(DNNL_ARG_DIFF_BIAS, &md_b);
    if (k->peep) OUT(DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE, &md_p);
    if (P) OUT(DNNL_ARG_DIFF_WEIGHTS_PROJECTION, &md_r);
#undef OUT

    enum { MAX_ARGS = 32 };
    dnnl_exec_arg_t fargs[MAX_ARGS], bargs[MAX_ARGS];
    int nf = 0, nbw = 0;
    for (int j = 0; j < n_in; j++) {
        arg_add(fargs, &nf, MAX_ARGS, in_arg[j], dn_in(&dn, fpd, in_arg[j], in_mem[j]));
        arg_add(bargs, &nbw, MAX_ARGS, in_arg[j], dn_in(&dn, bpd, in_arg[j], in_mem[j]));
    }
    const dnnl_exec_arg_t fwd_out[] = {
        {DNNL_ARG_DST_LAYER, m_y}, {DNNL_ARG_DST_ITER, m_hT}, {DNNL_ARG_DST_ITER_C, m_cT}, {DNNL_ARG_WORKSPACE, m_ws}};
    for (size_t j = 0; j < COUNT(fwd_out); j++) {
        arg_add(fargs, &nf, MAX_ARGS, fwd_out[j].arg, fwd_out[j].memory);
        arg_add(bargs, &nbw, MAX_ARGS, fwd_out[j].arg, fwd_out[j].memory);
    }
    arg_add(bargs, &nbw, MAX_ARGS, DNNL_ARG_DIFF_DST_LAYER, dn_in(&dn, bpd, DNNL_ARG_DIFF_DST_LAYER, m_dy));
    arg_add(bargs, &nbw, MAX_ARGS, DNNL_ARG_DIFF_DST_ITER, dn_in(&dn, bpd, DNNL_ARG_DIFF_DST_ITER, m_dhT));
    arg_add(bargs, &nbw, MAX_ARGS, DNNL_ARG_DIFF_DST_ITER_C, dn_in(&dn, bpd, DNNL_ARG_DIFF_DST_ITER_C, m_dcT));
    for (int j = 0; j < n_out; j++) {
        outs[j].m = dn_out(&dn, bpd, outs[j].arg, outs[j].user);
        arg_add(bargs, &nbw, MAX_ARGS, outs[j].arg, outs[j].m);
    }
    /* The forward's outputs were given in plain layouts, which the backward
     * reads too, so the primitives must use them as given. */
    const int plain_out[] = {DNNL_ARG_DST_LAYER, DNNL_ARG_DST_ITER, DNNL_ARG_DST_ITER_C};
    const dnnl_memory_desc_t *plain_out_md[] = {&md_y, &md_sh, &md_sc};
    for (size_t j = 0; j < COUNT(plain_out); j++)
        cr_assert(dnnl_memory_desc_equal(dn_arg_md(fpd, plain_out[j]), plain_out_md[j]),
                  "oneDNN forward wants another layout for output %d", plain_out[j]);

    dnnl_primitive_t fwd, bwd;
    DN(dnnl_primitive_create(&fwd, fpd));
    DN(dnnl_primitive_create(&bwd, bpd));
    DN(dnnl_primitive_execute(fwd, dn.stream, nf, fargs));
    DN(dnnl_primitive_execute(bwd, dn.stream, nbw, bargs));
    DN(dnnl_stream_wait(dn.stream));
    for (int j = 0; j < n_out; j++) dn_out_back(&dn, outs[j].m, outs[j].user);

    dn_read(m_y, o->y);
    dn_read(m_hT, o->hT);
    dn_read(m_cT, o->cT);
    float *dblk[B_COUNT];
    dblk[0] = o->dw;
    for (int j = 1; j < B_COUNT; j++) dblk[j] = dblk[j - 1] + nb[j - 1];
    for (int j = 0; j < n_out; j++) switch (outs[j].arg) {
        case DNNL_ARG_DIFF_SRC_LAYER: dn_read(outs[j].user, o->dx); break;
        case DNNL_ARG_DIFF_SRC_ITER: dn_read(outs[j].user, o->dh0); break;
        case DNNL_ARG_DIFF_SRC_ITER_C: dn_read(outs[j].user, o->dc0); break;
        case DNNL_ARG_DIFF_WEIGHTS_LAYER: dn_read(outs[j].user, wl), transpose(wl, dblk[B_W_IH], (size_t)I, GH); break;
        case DNNL_ARG_DIFF_WEIGHTS_ITER: dn_read(outs[j].user, wi), transpose(wi, dblk[B_W_HH], (size_t)R, GH); break;
        case DNNL_ARG_DIFF_BIAS:
            dn_read(outs[j].user, dblk[B_B_IH]);
            memcpy(dblk[B_B_HH], dblk[B_B_IH], GH * sizeof(float));
            break;
        case DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE: dn_read(outs[j].user, dblk[B_PEEP]); break;
        case DNNL_ARG_DIFF_WEIGHTS_PROJECTION:
            dn_read(outs[j].user, wr), transpose(wr, dblk[B_W_HR], (size_t)H, (size_t)P);
            break;
        default: cr_assert_fail("unexpected oneDNN output %d", outs[j].arg);
        }

    free(wl), free(wi), free(wr), free(b);
    dnnl_primitive_destroy(bwd);
    dnnl_primitive_destroy(fwd);
    dnnl_primitive_desc_destroy(bpd);
    dnnl_primitive_desc_destroy(fpd);
    for (int j = 0; j < dn.n_mem; j++) dnnl_memory_destroy(dn.mem[j]);
    dnnl_stream_destroy(dn.stream);
    dnnl_engine_destroy(dn.engine);
}

/* ---- the comparison ---------------------------------------------------------- */

/* recur's a against oneDNN's b: |a - b| <= atol_rel * max|b| (or atol when
 * atol_rel is 0) + RTOL |b|; reports the worst absolute and scaled
 * differences on stderr (the meson test log). */
static void compare(const char *device, const struct kase *k, const char *what, const float *a, const float *b,
                    size_t n, double atol, double atol_rel) {
    const struct shape *s = &k->s;
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    if (atol_rel > 0) atol = atol_rel * (1 + scale);
    double *bd = test_doubles(n);
    for (size_t i = 0; i < n; i++) {
        bd[i] = b[i];
        worst = fmax(worst, fabs((double)a[i] - bd[i]));
    }
    char name[192];
    snprintf(name, sizeof name, "%s %s T%d N%d I%d H%d P%d: %s (recur vs oneDNN)", device, k->cell, s->T, s->N,
             s->I, s->H, s->P, what);
    fprintf(stderr, "%-60s max|diff| %.3e  max|oneDNN| %.3e  tolerance %.3e + %.0e|v|\n", name, worst, scale, atol,
            RTOL);
    ASSERT_CLOSE(name, a, bd, n, RTOL, atol);
    free(bd);
}

static void check_case(const char *device, const struct kase *k) {
    const struct shape *s = &k->s;
    const size_t nh = (size_t)s->N * h_width(s), nc = (size_t)s->N * s->H, nx = (size_t)s->T * s->N * s->I;
    struct tensors in, ref;
    tensors_alloc(&in, k);
    tensors_alloc(&ref, k);
    test_rng rng = {0x5eedu + (uint64_t)s->T * 131 + (uint64_t)s->N * 17 + (uint64_t)s->H + (uint64_t)s->P * 7919};
    fill(&rng, in.w, weight_count(k), -0.3, 0.3);
    fill(&rng, in.x, nx, -1, 1);
    fill(&rng, in.h0, nh, -1, 1);
    fill(&rng, in.c0, nc, -1, 1);
    fill(&rng, in.dy, (size_t)s->T * nh, -1, 1);
    fill(&rng, in.dhT, nh, -1, 1);
    fill(&rng, in.dcT, nc, -1, 1);

    recur_run(device, k, &in);
    onednn_run(k, &in, &ref);

    compare(device, k, "y", in.y, ref.y, (size_t)s->T * nh, ATOL_FWD, 0);
    compare(device, k, "hT", in.hT, ref.hT, nh, ATOL_FWD, 0);
    compare(device, k, "cT", in.cT, ref.cT, nc, ATOL_FWD, 0);
    compare(device, k, "dx", in.dx, ref.dx, nx, 0, ATOL_GRAD);
    compare(device, k, "dh0", in.dh0, ref.dh0, nh, 0, ATOL_GRAD);
    compare(device, k, "dc0", in.dc0, ref.dc0, nc, 0, ATOL_GRAD);
    size_t nb[B_COUNT], off = 0;
    weight_blocks(k, nb);
    for (int b = 0; b < B_COUNT; b++) {
        if (nb[b]) compare(device, k, block_name[b], in.dw + off, ref.dw + off, nb[b], 0, ATOL_GRAD);
        off += nb[b];
    }
    cr_assert_eq(off, weight_count(k));
    tensors_free(&in);
    tensors_free(&ref);
}

/* Every shape of shapes[n] with cell on device (skipped when device is not here). */
static void check_device(const char *device, const char *cell, const struct shape *shapes, size_t n) {
    test_need_device(device);
    for (size_t i = 0; i < n; i++) {
        struct kase k = {cell, !strcmp(cell, "lstm-peephole"), shapes[i]};
        check_case(device, &k);
    }
}

/* Every ISA of the architecture compiled (RECUR_ISA_LIST); one this CPU lacks is skipped. */
#define ONEDNN_ISA(u, ID, name, bit, arch, implies, flags)                                                   \
    RECUR_ISA_IF(arch)(Test(onednn, lstm_peephole_##name) {                                                  \
        check_device("cpu:" #name, "lstm-peephole", peephole_shapes, COUNT(peephole_shapes));                \
    } Test(onednn, lstm_proj_##name) { check_device("cpu:" #name, "lstm", proj_shapes, COUNT(proj_shapes)); })
RECUR_ISA_LIST(ONEDNN_ISA, )

/* Peepholes and projection together (oneDNN's v3 takes both). */
Test(onednn, lstm_peephole_proj) {
    check_device("cpu", "lstm-peephole", proj_shapes, COUNT(proj_shapes));
}

/* The OpenCL backend (RECUR_TEST_OPENCL names the device; skipped without one). */
static const char *opencl_device(void) {
    return getenv("RECUR_TEST_OPENCL") ? getenv("RECUR_TEST_OPENCL") : "opencl";
}

Test(onednn, lstm_peephole_opencl) {
    check_device(opencl_device(), "lstm-peephole", peephole_shapes, COUNT(peephole_shapes));
}

Test(onednn, lstm_proj_opencl) {
    check_device(opencl_device(), "lstm", proj_shapes, COUNT(proj_shapes));
}

/* Large enough that recur splits the batch across threads. */
Test(onednn, lstm_peephole_wide_batch) {
    test_need_device("cpu");
    struct kase k = {"lstm-peephole", 1, {3, 64, 8, 160, 0}};
    check_case("cpu", &k);
}

Test(onednn, lstm_proj_wide_batch) {
    test_need_device("cpu");
    struct kase k = {"lstm", 0, {3, 64, 8, 160, 72}};
    check_case("cpu", &k);
}
