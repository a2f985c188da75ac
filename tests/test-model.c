/*
 * test-model.c: models (stacks, directions, variable lengths, batch-first,
 * dropout) against the double-precision reference composed one sequence at
 * a time (tests/ref/ref-model.c), and zoneout against the recurrence
 * stepped with its masks, on the CPU backend (and OpenCL, when a
 * device exists: RECUR_TEST_DEVICE).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backends/philox.h"
#include "common.h"
#include "recur/recur.h"
#include "ref/ref-cell.h"
#include "ref/ref-model.h"

#define RTOL 2e-5
#define PAD 0.5f

static double scale_of(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

struct mcase {
    const char *cell, *variant;
    int ref_variant, dir, L, T, N, I, H, batch_first;
    const int *lengths;
    float dropout;
    recur_dtype prec; /* of the products (recur_model_set_precision), against the reference's rounded products */
};

static const recur_direction dirs[] = {RECUR_DIR_FORWARD, RECUR_DIR_REVERSE, RECUR_DIR_BIDI_CONCAT, RECUR_DIR_BIDI_SUM};

/* [T][N][w] time-major <-> [N][T][w] batch-first. */
static void to_batch_first(float *dst, const float *src, int T, int N, int w) {
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) memcpy(dst + ((size_t)n * T + t) * w, src + ((size_t)t * N + n) * w, w * sizeof(float));
}

static void from_batch_first(float *dst, const float *src, int T, int N, int w) {
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) memcpy(dst + ((size_t)t * N + n) * w, src + ((size_t)n * T + t) * w, w * sizeof(float));
}

static const char *device(void) {
    const char *d = getenv("RECUR_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

/* A context on the test's device; skipped (never passed) when it has none. */
static recur_ctx *open_ctx(void) {
    recur_ctx *ctx;
    recur_status st = recur_ctx_create(&ctx, device());
    if (st == RECUR_ERR_DEVICE || st == RECUR_ERR_UNSUPPORTED) cr_skip_test("%s: %s", device(), recur_last_error());
    cr_assert_eq(st, RECUR_OK, "%s", recur_last_error());
    cr_log_info("device %s", device());
    return ctx;
}

static recur_model *make_model(recur_ctx *ctx, const struct mcase *c, uint64_t seed) {
    recur_model_desc d = {.cell = c->cell, .variant = c->variant, .input_size = c->I, .hidden_size = c->H,
                          .num_layers = c->L, .direction = dirs[c->dir], .dropout = c->dropout, .seed = seed};
    recur_model *m;
    cr_assert_eq(recur_model_create(ctx, &d, &m), RECUR_OK, "%s", recur_ctx_error(ctx));
    return m;
}

/* Set every layer's canonical weights from the reference's layout. */
static void set_weights(recur_model *m, const ref_model *rm, const float *w) {
    int D = ref_model_dirs(rm);
    for (int l = 0; l < rm->L; l++)
        for (int d = 0; d < D; d++) {
            recur_layer *y;
            cr_assert_eq(recur_model_layer(m, l, d, &y), RECUR_OK);
            cr_assert_eq(recur_layer_weights_set(y, RECUR_LAYOUT_CANONICAL, w + ref_model_weight_offset(rm, l, d),
                                                 recur_layer_weight_count(y)),
                         RECUR_OK);
        }
}

static void get_grads(recur_model *m, const ref_model *rm, float *dw) {
    int D = ref_model_dirs(rm);
    for (int l = 0; l < rm->L; l++)
        for (int d = 0; d < D; d++) {
            recur_layer *y;
            cr_assert_eq(recur_model_layer(m, l, d, &y), RECUR_OK);
            cr_assert_eq(recur_layer_grads_get(y, RECUR_LAYOUT_CANONICAL, dw + ref_model_weight_offset(rm, l, d),
                                               recur_layer_weight_count(y)),
                         RECUR_OK);
        }
}

/* The dropout masks recur draws for training call `call`: Philox by element. */
static double *masks_of(const struct mcase *c, int O, uint64_t seed, uint64_t call) {
    size_t per = (size_t)c->T * c->N * O;
    double *mk = test_doubles(per * c->L);
    for (int l = 1; l < c->L; l++)
        for (size_t i = 0; i < per; i++)
            mk[l * per + i] = recur_philox_uniform(seed, call * 64 + (uint64_t)l, i) >= c->dropout
                                  ? 1.0 / (1.0 - (double)c->dropout)
                                  : 0.0;
    return mk;
}

/* After `warm` training forwards (so the checked one is dropout call number warm). */
static void check_model_after(const struct mcase *c, int warm) {
    ref_model rm = {c->cell, c->ref_variant, c->I, c->H, c->L, c->dir};
    int D = ref_model_dirs(&rm), O = ref_model_out(&rm), two = strcmp(c->cell, "lstm") == 0;
    int T = c->T, N = c->N;
    size_t nw = ref_model_weight_count(&rm), nx = (size_t)T * N * c->I, ny = (size_t)T * N * O;
    size_t ns = (size_t)c->L * D * N * c->H;
    test_rng rng = {0xabcdefu + (uint64_t)c->dir * 7 + (uint64_t)c->L};
    float *w = test_floats(nw), *x = test_floats(nx), *h0 = test_floats(ns), *c0 = test_floats(ns);
    float *dy = test_floats(ny), *dhT = test_floats(ns), *dcT = test_floats(ns);
    double *wd = test_doubles(nw), *xd = test_doubles(nx), *h0d = test_doubles(ns), *c0d = test_doubles(ns);
    double *dyd = test_doubles(ny), *dhTd = test_doubles(ns), *dcTd = test_doubles(ns);
    double k = fmin(1.2 / sqrt((double)c->H), 0.8);
    test_fill(&rng, wd, w, nw, -k, k);
    test_fill(&rng, xd, x, nx, -1, 1);
    test_fill(&rng, h0d, h0, ns, -1, 1);
    test_fill(&rng, c0d, c0, ns, -1, 1);
    test_fill(&rng, dyd, dy, ny, -1, 1);
    test_fill(&rng, dhTd, dhT, ns, -1, 1);
    test_fill(&rng, dcTd, dcT, ns, -1, 1);
    /* PyTorch's convention: dy past a sequence's end does not exist; zero it in the reference. */
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++)
            if (c->lengths && t >= c->lengths[n])
                for (int j = 0; j < O; j++) dyd[((size_t)t * N + n) * O + j] = 0;

    recur_ctx *ctx = open_ctx();
    uint64_t seed = 42;
    recur_model *m = make_model(ctx, c, seed);
    cr_assert_eq(recur_model_output_size(m), O);
    set_weights(m, &rm, w);
    cr_assert_eq(recur_model_set_precision(m, c->prec), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_precision(m), c->prec);
    /* bf16, f16: what is left besides the reference's own rounding is
     * float32's sums and, rarely, an operand on the other side of a rounding
     * tie (2^-8 or 2^-11 of one product term), so the tolerances are wider
     * than float32's: measured 1e-7 (float32 noise) where the exact
     * reference is 5e-4 to 5e-3 (bf16) or 1e-4 to 6e-4 (f16) away */
    int rounded = c->prec != RECUR_DTYPE_F32;
    double ytol = rounded ? 5e-4 : 2e-5, gtol = rounded ? 5e-4 : 1e-5;
    ref_set_products(c->prec == RECUR_DTYPE_BF16 ? REF_BF16 : c->prec == RECUR_DTYPE_F16 ? REF_F16 : REF_EXACT);

    float *y = test_floats(ny), *hT = test_floats(ns), *cT = test_floats(ns), *dx = test_floats(nx);
    float *dh0 = test_floats(ns), *dc0 = test_floats(ns), *dw = test_floats(nw);
    float *xin = x, *dyin = dy, *yb = y, *dxb = dx;
    if (c->batch_first) {
        xin = test_floats(nx), dyin = test_floats(ny), yb = test_floats(ny), dxb = test_floats(nx);
        to_batch_first(xin, x, T, N, c->I);
        to_batch_first(dyin, dy, T, N, O);
    }
    recur_model_io io = {.T = T, .N = N, .batch_first = c->batch_first, .lengths = c->lengths, .pad = PAD,
                         .x = xin, .h0 = h0, .c0 = two ? c0 : NULL, .y = yb, .hT = hT, .cT = two ? cT : NULL};
    for (int k = 0; k <= warm; k++)
        cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_model_grad_io g = {.dy = dyin, .dhT = dhT, .dcT = two ? dcT : NULL, .dx = dxb, .dh0 = dh0,
                             .dc0 = two ? dc0 : NULL};
    cr_assert_eq(recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    if (c->batch_first) {
        from_batch_first(y, yb, T, N, O);
        from_batch_first(dx, dxb, T, N, c->I);
    }
    get_grads(m, &rm, dw);

    double *masks = c->dropout > 0 ? masks_of(c, O, seed, (uint64_t)warm) : NULL;
    double *yd = test_doubles(ny), *hTd = test_doubles(ns), *cTd = test_doubles(ns), *dxd = test_doubles(nx);
    double *dh0d = test_doubles(ns), *dc0d = test_doubles(ns), *dwd = test_doubles(nw);
    ref_model_forward(&rm, T, N, c->lengths, wd, xd, h0d, c0d, masks, yd, hTd, cTd);
    ref_model_backward(&rm, T, N, c->lengths, wd, xd, h0d, c0d, masks, dyd, dhTd, dcTd, dxd, dh0d, dc0d, dwd);

    char what[160];
#define LABEL(name)                                                                                          \
    snprintf(what, sizeof what, "%s %s%s%s dir %d L%d T%d N%d%s%s%s%s: " name, device(), c->cell,              \
             c->variant ? ":" : "", c->variant ? c->variant : "", c->dir, c->L, T, N, c->lengths ? " lengths" : "", \
             c->batch_first ? " batch-first" : "", c->dropout > 0 ? " dropout" : rounded ? " " : "", rounded ? recur_dtype_name(c->prec) : "")
    /* Past each sequence's end: exactly the pad value in y, exactly zero in dx. */
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++)
            if (c->lengths && t >= c->lengths[n]) {
                for (int j = 0; j < O; j++) {
                    cr_assert_eq(y[((size_t)t * N + n) * O + j], PAD, "y[%d][%d][%d] past the end is not the pad", t, n, j);
                    yd[((size_t)t * N + n) * O + j] = PAD;
                }
                for (int i = 0; i < c->I; i++)
                    cr_assert_eq(dx[((size_t)t * N + n) * c->I + i], 0.0f, "dx[%d][%d][%d] past the end is not 0", t, n, i);
            }
    LABEL("y");
    ASSERT_CLOSE(what, y, yd, ny, RTOL, ytol);
    LABEL("hT");
    ASSERT_CLOSE(what, hT, hTd, ns, RTOL, ytol);
    LABEL("dx");
    ASSERT_CLOSE(what, dx, dxd, nx, RTOL, gtol * (1 + scale_of(dxd, nx)));
    LABEL("dh0");
    ASSERT_CLOSE(what, dh0, dh0d, ns, RTOL, gtol * (1 + scale_of(dh0d, ns)));
    LABEL("dw");
    ASSERT_CLOSE(what, dw, dwd, nw, RTOL, gtol * (1 + scale_of(dwd, nw)));
    if (two) {
        LABEL("cT");
        ASSERT_CLOSE(what, cT, cTd, ns, RTOL, ytol);
        LABEL("dc0");
        ASSERT_CLOSE(what, dc0, dc0d, ns, RTOL, gtol * (1 + scale_of(dc0d, ns)));
    }
    if (rounded) {
        /* the rounding happened where the reference's did: on average recur
         * is several times closer to the rounded reference than to the exact
         * one. (Not at every element: an operand within float32's noise of a
         * rounding tie may round the other way in recur than in the double
         * reference, one ulp of the type in one product term, and a state or
         * a gate's gradient is an operand of a whole row or column of dw.
         * f16's ties are 8 times denser than bf16's.) */
        double *ye = test_doubles(ny), *dwe = test_doubles(nw);
        ref_set_products(REF_EXACT);
        ref_model_forward(&rm, T, N, c->lengths, wd, xd, h0d, c0d, masks, ye, NULL, NULL);
        ref_model_backward(&rm, T, N, c->lengths, wd, xd, h0d, c0d, masks, dyd, dhTd, dcTd, NULL, NULL, NULL, dwe);
        ref_set_products(c->prec == RECUR_DTYPE_BF16 ? REF_BF16 : REF_F16);
        double y16 = 0, yex = 0, w16 = 0, wex = 0;
        for (size_t i = 0; i < ny; i++)
            if (ye[i] == ye[i] && !(c->lengths && y[i] == PAD && yd[i] == PAD)) {
                y16 += fabs(y[i] - yd[i]);
                yex += fabs(y[i] - ye[i]);
            }
        for (size_t i = 0; i < nw; i++) {
            w16 += fabs(dw[i] - dwd[i]);
            wex += fabs(dw[i] - dwe[i]);
        }
        LABEL("rounding");
        cr_assert(yex > 4 * y16 && wex > 4 * w16,
                  "%s: y differs from the exact reference by %.3g and from the rounded one by %.3g; dw by %.3g and "
                  "%.3g (sums of |difference|)",
                  what, yex, y16, wex, w16);
        cr_log_info("%s: sums of |difference| from the exact and the rounded reference: y %.3g, %.3g; dw %.3g, %.3g",
                    what, yex, y16, wex, w16);
        free(ye);
        free(dwe);
    }

    /* Inference: no dropout, the same outputs as the reference without masks. */
    float *y2 = test_floats(ny), *yb2 = c->batch_first ? test_floats(ny) : y2;
    recur_model_io io2 = io;
    io2.y = yb2;
    io2.hT = io2.cT = NULL;
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_INFERENCE, &io2), RECUR_OK, "%s", recur_ctx_error(ctx));
    if (c->batch_first) from_batch_first(y2, yb2, T, N, O);
    ref_model_forward(&rm, T, N, c->lengths, wd, xd, h0d, c0d, NULL, yd, NULL, NULL);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++)
            if (c->lengths && t >= c->lengths[n])
                for (int j = 0; j < O; j++) yd[((size_t)t * N + n) * O + j] = PAD;
    LABEL("inference y");
    ASSERT_CLOSE(what, y2, yd, ny, RTOL, ytol);
    ref_set_products(REF_EXACT);

    recur_ctx_free(ctx);
    free(masks);
    float *fs[] = {w, x, h0, c0, dy, dhT, dcT, y, hT, cT, dx, dh0, dc0, dw, y2};
    double *ds[] = {wd, xd, h0d, c0d, dyd, dhTd, dcTd, yd, hTd, cTd, dxd, dh0d, dc0d, dwd};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) free(fs[i]);
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) free(ds[i]);
    if (c->batch_first) free(xin), free(dyin), free(yb), free(dxb), free(yb2);
}

static void check_model(const struct mcase *c) { check_model_after(c, 0); }

static const int lens5[] = {5, 2, 4, 1};

static void check_cell_models(const char *cell, const char *variant, int rv) {
    for (int dir = 0; dir < 4; dir++)
        for (int L = 1; L <= 2; L++)
            for (int withlen = 0; withlen < 2; withlen++) {
                struct mcase c = {cell, variant, rv, dir, L, 5, 4, 3, 5, 0, withlen ? lens5 : NULL, 0, 0};
                check_model(&c);
            }
    struct mcase bf = {cell, variant, rv, RECUR_DIR_BIDI_CONCAT, 2, 5, 4, 3, 5, 1, lens5, 0, 0};
    check_model(&bf);
}

/* bf16 or f16 products: a stack of both directions with lengths and one batch-first run, per cell */
static void check_cell_models_in(recur_dtype prec, const char *cell, const char *variant, int rv) {
    struct mcase c = {cell, variant, rv, 2, 2, 5, 4, 6, 9, 0, lens5, 0, prec};
    check_model(&c);
    struct mcase bf = {cell, variant, rv, RECUR_DIR_FORWARD, 1, 6, 3, 5, 8, 1, NULL, 0, prec};
    check_model(&bf);
}

Test(model, bf16_products) {
    check_cell_models_in(RECUR_DTYPE_BF16, "lstm", NULL, 0);
    check_cell_models_in(RECUR_DTYPE_BF16, "gru", NULL, 0);
    check_cell_models_in(RECUR_DTYPE_BF16, "gru-lbr", NULL, 0);
    check_cell_models_in(RECUR_DTYPE_BF16, "rnn", "tanh", 0);
}

Test(model, f16_products) {
    check_cell_models_in(RECUR_DTYPE_F16, "lstm", NULL, 0);
    check_cell_models_in(RECUR_DTYPE_F16, "gru", NULL, 0);
    check_cell_models_in(RECUR_DTYPE_F16, "gru-lbr", NULL, 0);
    check_cell_models_in(RECUR_DTYPE_F16, "rnn", "tanh", 0);
}

Test(model, rnn_tanh) { check_cell_models("rnn", "tanh", 0); }
Test(model, rnn_relu) { check_cell_models("rnn", "relu", 1); }
Test(model, gru) { check_cell_models("gru", NULL, 0); }
Test(model, gru_lbr) { check_cell_models("gru-lbr", NULL, 0); }
Test(model, lstm) { check_cell_models("lstm", NULL, 0); }

/* Dropout between layers: recur's masks are Philox draws by element, so the
 * reference given the same masks must agree, gradients included. */
Test(model, dropout_matches_reference_with_its_masks) {
    struct mcase c = {"lstm", NULL, 0, RECUR_DIR_BIDI_CONCAT, 3, 5, 4, 3, 5, 0, lens5, 0.4f, 0};
    check_model(&c);
    struct mcase g = {"gru", NULL, 0, RECUR_DIR_FORWARD, 2, 6, 3, 4, 6, 1, NULL, 0.25f, 0};
    check_model(&g);
    /* Backward after the third training forward goes back through call 2's
     * masks (the call number it is given, not the model's counter). */
    struct mcase w = {"rnn", NULL, 0, RECUR_DIR_BIDI_SUM, 3, 5, 4, 3, 5, 0, lens5, 0.3f, 0};
    check_model_after(&w, 2);
}

Test(model, dropout_is_repeatable_and_changes_per_call) {
    struct mcase c = {"rnn", NULL, 0, RECUR_DIR_FORWARD, 2, 4, 3, 3, 8, 0, NULL, 0.5f, 0};
    recur_ctx *ctx = open_ctx();
    size_t nx = (size_t)c.T * c.N * c.I, ny = (size_t)c.T * c.N * c.H;
    float *x = test_floats(nx), *y[3] = {test_floats(ny), test_floats(ny), test_floats(ny)};
    test_rng rng = {7};
    for (size_t i = 0; i < nx; i++) x[i] = (float)test_uniform(&rng, -1, 1);
    for (int run = 0; run < 2; run++) {
        recur_model *m = make_model(ctx, &c, 1234);
        size_t n = recur_model_param_count(m);
        for (size_t i = 0; i < n; i++) {
            recur_param_info info;
            cr_assert_eq(recur_model_param_info(m, i, &info), RECUR_OK);
            float *v = test_floats(info.count);
            for (size_t j = 0; j < info.count; j++) v[j] = 0.3f * (float)sin((double)(i * 31 + j));
            cr_assert_eq(recur_model_param_set(m, info.name, v, info.count), RECUR_OK);
            free(v);
        }
        recur_model_io io = {.T = c.T, .N = c.N, .x = x, .y = y[run]};
        cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK);
        if (run == 0) {
            io.y = y[2];
            cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK); /* call 1: new masks */
        }
        recur_model_free(m);
    }
    cr_assert_arr_eq(y[0], y[1], ny * sizeof(float), "the same seed and call must draw the same masks");
    cr_assert(memcmp(y[0], y[2], ny * sizeof(float)) != 0, "the next training call must draw new masks");
    recur_ctx_free(ctx);
    free(x), free(y[0]), free(y[1]), free(y[2]);
}

Test(model, philox_known_answers) {
    /* Random123's kat_vectors for philox4x32_10. */
    uint32_t c1[4] = {0, 0, 0, 0};
    recur_philox4x32(c1, 0, 0);
    cr_assert(c1[0] == 0x6627e8d5u && c1[1] == 0xe169c58du && c1[2] == 0xbc57ac4cu && c1[3] == 0x9b00dbd8u,
              "philox(0, 0) = %08x %08x %08x %08x", c1[0], c1[1], c1[2], c1[3]);
    uint32_t c2[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    recur_philox4x32(c2, 0xffffffffu, 0xffffffffu);
    cr_assert(c2[0] == 0x408f276du && c2[1] == 0x41c83b0eu && c2[2] == 0xa20bc7c6u && c2[3] == 0x6d5451fdu,
              "philox(ff, ff) = %08x %08x %08x %08x", c2[0], c2[1], c2[2], c2[3]);
    uint32_t c3[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    recur_philox4x32(c3, 0xa4093822u, 0x299f31d0u);
    cr_assert(c3[0] == 0xd16cfe09u && c3[1] == 0x94fdccebu && c3[2] == 0x5001e420u && c3[3] == 0x24126ea1u,
              "philox(pi) = %08x %08x %08x %08x", c3[0], c3[1], c3[2], c3[3]);
}

Test(model, bad_lengths_are_named_and_nothing_runs) {
    struct mcase c = {"lstm", NULL, 0, RECUR_DIR_BIDI_CONCAT, 2, 4, 3, 2, 3, 0, NULL, 0, 0};
    recur_ctx *ctx = open_ctx();
    recur_model *m = make_model(ctx, &c, 0);
    size_t ny = (size_t)4 * 3 * 6;
    float x[4 * 3 * 2] = {0}, *y = test_floats(ny);
    for (size_t i = 0; i < ny; i++) y[i] = 99.0f;
    const int zero[] = {4, 0, 2}, high[] = {4, 5, 2}, neg[] = {-1, 4, 4};
    const int *bad[] = {zero, high, neg};
    const char *needle[] = {"lengths[1] is 0", "lengths[1] is 5", "lengths[0] is -1"};
    for (int i = 0; i < 3; i++) {
        recur_model_io io = {.T = 4, .N = 3, .lengths = bad[i], .x = x, .y = y};
        cr_assert_eq(recur_model_forward(m, RECUR_MODE_INFERENCE, &io), RECUR_ERR_ARG);
        cr_assert(strstr(recur_ctx_error(ctx), needle[i]), "message '%s' lacks '%s'", recur_ctx_error(ctx), needle[i]);
        for (size_t j = 0; j < ny; j++) cr_assert_eq(y[j], 99.0f, "y was written by a refused call");
    }
    /* A backward whose lengths differ from the training forward's (same sum):
     * refused before anything is written. */
    const int trained[] = {3, 1, 2}, other[] = {2, 2, 2};
    recur_model_io tio = {.T = 4, .N = 3, .lengths = trained, .x = x, .y = y};
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &tio), RECUR_OK, "%s", recur_ctx_error(ctx));
    float dx[4 * 3 * 2], dy[4 * 3 * 6] = {0};
    for (size_t j = 0; j < sizeof dx / sizeof dx[0]; j++) dx[j] = 99.0f;
    recur_model_io oio = tio;
    oio.lengths = other;
    recur_model_grad_io gio = {.dy = dy, .dx = dx};
    cr_assert_eq(recur_model_backward(m, &oio, &gio, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE);
    cr_assert(strstr(recur_ctx_error(ctx), "lengths[0] is 2"), "%s", recur_ctx_error(ctx));
    for (size_t j = 0; j < sizeof dx / sizeof dx[0]; j++) cr_assert_eq(dx[j], 99.0f, "dx written by a refused backward");
    cr_assert_eq(recur_model_backward(m, &tio, &gio, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));

    recur_model_io negn = {.T = 4, .N = -2, .x = x, .y = y};
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_INFERENCE, &negn), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(ctx), "N -2"), "%s", recur_ctx_error(ctx));
    recur_layer *l0;
    cr_assert_eq(recur_model_layer(m, 0, 0, &l0), RECUR_OK);
    recur_sizes sz;
    cr_assert_eq(recur_layer_sizes(l0, 1 << 30, 1 << 30, &sz), RECUR_ERR_ARG, "sizes must refuse what cannot be run");
    recur_sizes ms, ms2;
    cr_assert_eq(recur_model_sizes(m, 4, 3, &ms), RECUR_OK);
    cr_assert_eq(recur_model_sizes(m, 8, 3, &ms2), RECUR_OK);
    size_t nw = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info info;
        recur_model_param_info(m, i, &info);
        nw += info.count;
    }
    cr_assert_eq(ms.weights, nw * sizeof(float), "weights: %zu bytes for %zu floats", ms.weights, nw);
    cr_assert(ms.workspace > 0 && ms2.reserve > ms.reserve && ms2.workspace > ms.workspace, "sizes grow with T");
    cr_assert_eq(recur_model_sizes(m, 0, 3, &ms), RECUR_ERR_ARG);
    recur_model_desc nocell = {.cell = "nosuch", .input_size = 2, .hidden_size = 3, .num_layers = 2,
                               .direction = RECUR_DIR_BIDI_CONCAT};
    recur_model *m3 = (recur_model *)&nocell;
    cr_assert_eq(recur_model_create(ctx, &nocell, &m3), RECUR_ERR_UNKNOWN_CELL);
    cr_assert_null(m3, "*out must be NULL on failure");
    cr_assert(strstr(recur_ctx_error(ctx), "nosuch"), "%s", recur_ctx_error(ctx));
    nocell.cell = "rnn";
    nocell.variant = "sigmoid"; /* fails in the first layer's creation */
    cr_assert_eq(recur_model_create(ctx, &nocell, &m3), RECUR_ERR_UNKNOWN_NAME);
    cr_assert(strstr(recur_ctx_error(ctx), "tanh, relu"), "%s", recur_ctx_error(ctx));
    recur_model_desc bad_desc = {.cell = "lstm", .input_size = 2, .hidden_size = 3, .num_layers = 0};
    recur_model *m2;
    cr_assert_eq(recur_model_create(ctx, &bad_desc, &m2), RECUR_ERR_ARG);
    bad_desc.num_layers = 1;
    bad_desc.dropout = 1.0f;
    cr_assert_eq(recur_model_create(ctx, &bad_desc, &m2), RECUR_ERR_ARG);
    recur_ctx_free(ctx);
    free(y);
}

Test(model, parameters_by_pytorch_names) {
    struct mcase c = {"gru", NULL, 0, RECUR_DIR_BIDI_CONCAT, 2, 1, 1, 3, 2, 0, NULL, 0, 0};
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK);
    recur_model *m = make_model(ctx, &c, 0);
    const char *names[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                           "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
                           "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
                           "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
    cr_assert_eq(recur_model_param_count(m), 16);
    for (size_t i = 0; i < 16; i++) {
        recur_param_info info;
        cr_assert_eq(recur_model_param_info(m, i, &info), RECUR_OK);
        cr_assert_str_eq(info.name, names[i]);
        int cols = i % 4 == 0 ? (i < 8 ? 3 : 4) : i % 4 == 1 ? 2 : 1;
        cr_assert_eq(info.rows, 6, "%s rows", info.name);
        cr_assert_eq(info.cols, cols, "%s cols %d", info.name, info.cols);
    }
    /* The original gru in PyTorch's naming: rows r, z, n with z = 1 - Γ_u stored as -W_u. */
    recur_layer *y;
    cr_assert_eq(recur_model_layer(m, 1, 1, &y), RECUR_OK);
    float u[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, r[2 * 4] = {9, 10, 11, 12, 13, 14, 15, 16}, cc[2 * 4] = {0};
    cr_assert_eq(recur_layer_gate_set(y, RECUR_PARAM_W_IH, "u", u, 8), RECUR_OK);
    cr_assert_eq(recur_layer_gate_set(y, RECUR_PARAM_W_IH, "r", r, 8), RECUR_OK);
    cr_assert_eq(recur_layer_gate_set(y, RECUR_PARAM_W_IH, "c", cc, 8), RECUR_OK);
    float t[6 * 4];
    cr_assert_eq(recur_model_param_get(m, "weight_ih_l1_reverse", t, 24), RECUR_OK);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(t[i], r[i], "torch gate 0 is r");
        cr_assert_eq(t[8 + i], -u[i], "torch gate 1 is z = -u");
    }
    cr_assert_eq(recur_model_param_get(m, "weight_ih_l2", t, 24), RECUR_ERR_UNKNOWN_NAME);
    cr_assert_eq(recur_model_param_get(m, "weight_ih_l1", t, 23), RECUR_ERR_BUFFER_SIZE);
    cr_assert_eq(recur_model_param_set(m, "weight_ih_l1", t, 25), RECUR_ERR_SHAPE);
    recur_layer *owned;
    cr_assert_eq(recur_model_layer(m, 0, 0, &owned), RECUR_OK);
    recur_layer_free(owned); /* ignored: the model owns it */
    recur_ctx_free(ctx);      /* frees the model */
}

/* ---- device-resident calls (recur_buffer) ---- */

static void fill_rand(float *v, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((double)(*s >> 40) / (double)(1ull << 24) - 0.5);
    }
}

static recur_buffer *buffer_of(recur_ctx *ctx, const float *v, size_t n) {
    recur_buffer *b;
    cr_assert_eq(recur_buffer_create(ctx, n, &b), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_buffer_count(b), n);
    cr_assert_eq(recur_buffer_bytes(b), n * sizeof(float));
    if (v) cr_assert_eq(recur_buffer_write(b, 0, v, n), RECUR_OK, "%s", recur_ctx_error(ctx));
    return b;
}

static void read_back(recur_ctx *ctx, const recur_buffer *b, float *v, size_t n) {
    cr_assert_eq(recur_buffer_read(b, 0, v, n), RECUR_OK, "%s", recur_ctx_error(ctx));
}

static void expect_msg(recur_ctx *ctx, const char *part) {
    cr_assert(strstr(recur_ctx_error(ctx), part), "message '%s' lacks '%s'", recur_ctx_error(ctx), part);
}

/* Forward and backward on buffers give the host-pointer calls' bits (the
 * same device, weights and batch: lengths, two layers, both directions);
 * bad buffers are refused by name and nothing runs. */
Test(model, device_buffers_match_host_pointers) {
    recur_ctx *ctx = open_ctx();
    enum { I = 5, H = 6, L = 2, D = 2, T = 7, N = 3 };
    recur_model_desc md = {.cell = "lstm", .input_size = I, .hidden_size = H, .num_layers = L,
                           .direction = RECUR_DIR_BIDI_CONCAT};
    recur_model *m;
    cr_assert_eq(recur_model_create(ctx, &md, &m), RECUR_OK, "%s", recur_ctx_error(ctx));
    uint64_t seed = 11;
    size_t np = recur_model_param_count(m);
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        cr_assert_eq(recur_model_param_info(m, i, &info), RECUR_OK);
        float *w = malloc(info.count * sizeof *w);
        fill_rand(w, info.count, &seed);
        cr_assert_eq(recur_model_param_set(m, info.name, w, info.count), RECUR_OK, "%s", recur_ctx_error(ctx));
        free(w);
    }
    const int O = 2 * H, lengths[N] = {7, 4, 1};
    const size_t nx = (size_t)T * N * I, ny = (size_t)T * N * O, ns = (size_t)L * D * N * H;
    /* inputs, then each output twice: [0] host pointers, [1] buffers */
    float x[T * N * I], h0[L * D * N * H], c0[L * D * N * H], dy[T * N * 2 * H], dhT[L * D * N * H],
        dcT[L * D * N * H];
    fill_rand(x, nx, &seed), fill_rand(h0, ns, &seed), fill_rand(c0, ns, &seed);
    fill_rand(dy, ny, &seed), fill_rand(dhT, ns, &seed), fill_rand(dcT, ns, &seed);
    static float y[2][T * N * 2 * H], hT[2][L * D * N * H], cT[2][L * D * N * H], dx[2][T * N * I],
        dh0[2][L * D * N * H], dc0[2][L * D * N * H];
    float *grads[2];
    size_t total = 0;
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        recur_model_param_info(m, i, &info);
        total += info.count;
    }
    for (int k = 0; k < 2; k++) grads[k] = malloc(total * sizeof(float));

    recur_model_io io = {.T = T, .N = N, .lengths = lengths, .pad = -1.0f, .x = x, .h0 = h0, .c0 = c0,
                         .y = y[0], .hT = hT[0], .cT = cT[0]};
    recur_model_grad_io g = {.dy = dy, .dhT = dhT, .dcT = dcT, .dx = dx[0], .dh0 = dh0[0], .dc0 = dc0[0]};
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));

    recur_buffer *bx = buffer_of(ctx, x, nx), *bh0 = buffer_of(ctx, h0, ns), *bc0 = buffer_of(ctx, c0, ns);
    recur_buffer *by = buffer_of(ctx, NULL, ny), *bhT = buffer_of(ctx, NULL, ns), *bcT = buffer_of(ctx, NULL, ns);
    recur_buffer *bdy = buffer_of(ctx, dy, ny), *bdhT = buffer_of(ctx, dhT, ns), *bdcT = buffer_of(ctx, dcT, ns);
    recur_buffer *bdx = buffer_of(ctx, NULL, nx), *bdh0 = buffer_of(ctx, NULL, ns), *bdc0 = buffer_of(ctx, NULL, ns);
    recur_model_io_dev dio = {.T = T, .N = N, .lengths = lengths, .pad = -1.0f, .x = bx, .h0 = bh0, .c0 = bc0,
                              .y = by, .hT = bhT, .cT = bcT};
    recur_model_grad_dev dg = {.dy = bdy, .dhT = bdhT, .dcT = bdcT, .dx = bdx, .dh0 = bdh0, .dc0 = bdc0};
    /* grads[0] after the host-pointer calls; then the buffer calls */
    for (int k = 0; k < 2; k++) {
        if (k == 1) {
            cr_assert_eq(recur_model_forward_dev(m, RECUR_MODE_TRAINING, &dio), RECUR_OK, "%s", recur_ctx_error(ctx));
            cr_assert_eq(recur_model_backward_dev(m, &dio, &dg, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s",
                         recur_ctx_error(ctx));
            cr_assert_eq(recur_ctx_sync(ctx), RECUR_OK, "%s", recur_ctx_error(ctx));
            read_back(ctx, by, y[1], ny), read_back(ctx, bhT, hT[1], ns), read_back(ctx, bcT, cT[1], ns);
            read_back(ctx, bdx, dx[1], nx), read_back(ctx, bdh0, dh0[1], ns), read_back(ctx, bdc0, dc0[1], ns);
        }
        size_t at = 0;
        for (size_t i = 0; i < np; i++) {
            recur_param_info info;
            recur_model_param_info(m, i, &info);
            cr_assert_eq(recur_model_grad_get(m, info.name, grads[k] + at, info.count), RECUR_OK);
            at += info.count;
        }
    }
    cr_assert(!memcmp(y[0], y[1], sizeof y[0]), "y differs");
    cr_assert(!memcmp(hT[0], hT[1], sizeof hT[0]) && !memcmp(cT[0], cT[1], sizeof cT[0]), "final states differ");
    cr_assert(!memcmp(dx[0], dx[1], sizeof dx[0]), "dx differs");
    cr_assert(!memcmp(dh0[0], dh0[1], sizeof dh0[0]) && !memcmp(dc0[0], dc0[1], sizeof dc0[0]), "dh0/dc0 differ");
    cr_assert(!memcmp(grads[0], grads[1], total * sizeof(float)), "weight gradients differ");
    cr_assert_eq(y[1][(size_t)(6 * N + 2) * O], -1.0f, "padding"); /* t = 6 is past sequence 2's length 1 */

    /* bad arguments: each named, and y keeps what it had */
    recur_model_io_dev bad = dio;
    bad.x = NULL;
    cr_assert_eq(recur_model_forward_dev(m, RECUR_MODE_INFERENCE, &bad), RECUR_ERR_NULL);
    expect_msg(ctx, "recur_model_forward_dev: io->x is NULL");
    recur_ctx *other = open_ctx();
    recur_buffer *foreign = buffer_of(other, h0, ns), *small = buffer_of(ctx, NULL, ny - 1);
    bad = dio;
    bad.h0 = foreign;
    cr_assert_eq(recur_model_forward_dev(m, RECUR_MODE_INFERENCE, &bad), RECUR_ERR_ARG);
    expect_msg(ctx, "io->h0 is a buffer of another context");
    bad = dio;
    bad.y = small;
    cr_assert_eq(recur_model_forward_dev(m, RECUR_MODE_INFERENCE, &bad), RECUR_ERR_BUFFER_SIZE);
    expect_msg(ctx, "io->y holds");
    bad = dio;
    bad.hT = bh0;
    cr_assert_eq(recur_model_forward_dev(m, RECUR_MODE_INFERENCE, &bad), RECUR_ERR_ARG);
    expect_msg(ctx, "io->h0 and io->hT are the same buffer");
    recur_model_grad_dev gbad = dg;
    recur_buffer *tiny = buffer_of(ctx, NULL, nx - 1);
    gbad.dx = tiny;
    cr_assert_eq(recur_model_backward_dev(m, &dio, &gbad, RECUR_GRAD_OVERWRITE), RECUR_ERR_BUFFER_SIZE);
    expect_msg(ctx, "grad->dx holds 104 floats; the batch needs 105");
    gbad = dg;
    gbad.dh0 = foreign;
    cr_assert_eq(recur_model_backward_dev(m, &dio, &gbad, RECUR_GRAD_OVERWRITE), RECUR_ERR_ARG);
    expect_msg(ctx, "grad->dh0 is a buffer of another context");
    cr_assert_eq(recur_model_backward_dev(m, &dio, NULL, RECUR_GRAD_OVERWRITE), RECUR_ERR_NULL);
    float keep[T * N * 2 * H];
    read_back(ctx, by, keep, ny);
    cr_assert(!memcmp(keep, y[1], sizeof keep), "a refused call ran");

    /* the buffer calls themselves */
    recur_buffer *none = (recur_buffer *)&seed;
    cr_assert_eq(recur_buffer_create(ctx, 0, &none), RECUR_ERR_ARG);
    cr_assert_null(none);
    cr_assert_eq(recur_buffer_create(NULL, 4, &none), RECUR_ERR_NULL);
    cr_assert_eq(recur_buffer_create(ctx, (size_t)-1, &none), RECUR_ERR_ARG);
    cr_assert_eq(recur_buffer_write(small, ny - 2, x, 2), RECUR_ERR_BUFFER_SIZE);
    expect_msg(ctx, "recur_buffer_write: 2 floats at");
    cr_assert_eq(recur_buffer_read(small, (size_t)-1, keep, 2), RECUR_ERR_BUFFER_SIZE);
    cr_assert_eq(recur_buffer_read(NULL, 0, keep, 1), RECUR_ERR_NULL);
    cr_assert_eq(recur_buffer_write(small, 0, NULL, 1), RECUR_ERR_NULL);
    cr_assert_eq(recur_ctx_sync(NULL), RECUR_ERR_NULL);
    /* a partial write lands at its offset */
    float two[2] = {3.5f, -2.25f}, got[3];
    cr_assert_eq(recur_buffer_write(small, 5, two, 2), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_buffer_read(small, 4, got, 3), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert(got[1] == 3.5f && got[2] == -2.25f);
    cr_assert_eq(recur_buffer_count(NULL), 0);

    recur_buffer_free(small);
    recur_buffer_free(NULL);
    recur_ctx_free(other); /* frees foreign */
    for (int k = 0; k < 2; k++) free(grads[k]);
    recur_ctx_free(ctx); /* frees the other buffers and the model */
}

/* ---- zoneout ---- */

/* Two models of one shape and weights: zoneout p and none. */
static void zoneout_pair(recur_ctx *ctx, const char *cell, int I, int H, float p, uint64_t seed, recur_model **zm,
                         recur_model **plain) {
    recur_model_desc d = {.cell = cell, .input_size = I, .hidden_size = H, .num_layers = 1,
                          .direction = RECUR_DIR_FORWARD, .seed = seed, .zoneout = p};
    cr_assert_eq(recur_model_create(ctx, &d, zm), RECUR_OK, "%s", recur_ctx_error(ctx));
    d.zoneout = 0;
    cr_assert_eq(recur_model_create(ctx, &d, plain), RECUR_OK, "%s", recur_ctx_error(ctx));
    size_t n = recur_model_param_count(*zm);
    for (size_t i = 0; i < n; i++) {
        recur_param_info info;
        cr_assert_eq(recur_model_param_info(*zm, i, &info), RECUR_OK);
        float *v = test_floats(info.count);
        for (size_t j = 0; j < info.count; j++) v[j] = 0.5f * (float)sin((double)(i * 17 + j) * 0.7);
        cr_assert_eq(recur_model_param_set(*zm, info.name, v, info.count), RECUR_OK);
        cr_assert_eq(recur_model_param_set(*plain, info.name, v, info.count), RECUR_OK);
        free(v);
    }
}

/* The zoneout mask of layer 0, direction 0, training call 0: state k of
 * sequence n at its own step t (the engine's draw, recomputed here). */
static int zo_mask(uint64_t seed, float p, int k, int t, int n, int j, int T, int N, int H) {
    uint64_t stream = (uint64_t)1 << 63, i = ((((uint64_t)k * T + t) * N + n) * H + j);
    return recur_philox_uniform(seed, stream, i) < p;
}

/* A training forward with zoneout equals the recurrence stepped one step at
 * a time by the model without it, each state blended with the masks drawn
 * here: s_t = m ? s_{t-1} : s~_t, per sequence at its own step (variable
 * lengths, so the engine's packing must not change the draw). LSTM: both
 * states; the outputs and the final states are the zoned-out ones. */
static void check_zoneout_forward(const char *cell, int two) {
    recur_ctx *ctx = open_ctx();
    const int T = 5, N = 4, I = 3, H = 6;
    const int lengths[4] = {3, 5, 1, 4};
    const float p = 0.35f;
    const uint64_t seed = 77;
    recur_model *zm, *plain;
    zoneout_pair(ctx, cell, I, H, p, seed, &zm, &plain);
    size_t NH = (size_t)N * H;
    float *x = test_floats((size_t)T * N * I), *y = test_floats((size_t)T * N * H);
    float *h0 = test_floats(NH), *c0 = test_floats(NH), *hT = test_floats(NH), *cT = test_floats(NH);
    test_rng rng = {31};
    for (size_t i = 0; i < (size_t)T * N * I; i++) x[i] = (float)test_uniform(&rng, -1, 1);
    for (size_t i = 0; i < NH; i++) h0[i] = (float)test_uniform(&rng, -1, 1), c0[i] = (float)test_uniform(&rng, -1, 1);
    recur_model_io io = {.T = T, .N = N, .lengths = lengths, .x = x, .h0 = h0, .c0 = two ? c0 : NULL, .y = y,
                         .hT = hT, .cT = two ? cT : NULL};
    cr_assert_eq(recur_model_forward(zm, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));

    /* The same by steps: s[k] the zoned-out states of every sequence. */
    float *s[2] = {test_floats(NH), test_floats(NH)}, *raw[2] = {test_floats(NH), test_floats(NH)};
    memcpy(s[0], h0, NH * sizeof(float));
    memcpy(s[1], c0, NH * sizeof(float));
    float *yt = test_floats(NH);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        recur_model_io st = {.T = 1, .N = N, .x = x + (size_t)t * N * I, .h0 = s[0], .c0 = two ? s[1] : NULL,
                             .y = yt, .hT = raw[0], .cT = two ? raw[1] : NULL};
        cr_assert_eq(recur_model_forward(plain, RECUR_MODE_INFERENCE, &st), RECUR_OK, "%s", recur_ctx_error(ctx));
        for (int n = 0; n < N; n++) {
            if (t >= lengths[n]) continue;
            for (int k = 0; k < 1 + two; k++)
                for (int j = 0; j < H; j++) {
                    size_t e = (size_t)n * H + j;
                    s[k][e] = zo_mask(seed, p, k, t, n, j, T, N, H) ? s[k][e] : raw[k][e];
                }
            for (int j = 0; j < H; j++)
                worst = fmax(worst, fabs((double)y[((size_t)t * N + n) * H + j] - s[0][(size_t)n * H + j]));
        }
    }
    for (size_t e = 0; e < NH; e++) {
        worst = fmax(worst, fabs((double)hT[e] - s[0][e]));
        if (two) worst = fmax(worst, fabs((double)cT[e] - s[1][e]));
    }
    cr_assert(worst < 1e-5, "%s: zoneout training forward differs from the stepped one by %g", cell, worst);
    recur_model_free(zm);
    recur_model_free(plain);
    recur_ctx_free(ctx);
    free(x), free(y), free(h0), free(c0), free(hT), free(cT), free(s[0]), free(s[1]), free(raw[0]), free(raw[1]);
    free(yt);
}

Test(model, zoneout_training_forward_is_the_masked_recurrence) {
    check_zoneout_forward("lstm", 1);
    check_zoneout_forward("gru", 0);
}

/* Inference: s_1 = p s_0 + (1 - p) s~_1, on one step from known states. */
Test(model, zoneout_inference_is_the_expectation) {
    recur_ctx *ctx = open_ctx();
    const int N = 3, I = 2, H = 5;
    const float p = 0.25f;
    recur_model *zm, *plain;
    zoneout_pair(ctx, "lstm", I, H, p, 5, &zm, &plain);
    size_t NH = (size_t)N * H;
    float x[6] = {0.3f, -0.7f, 1.1f, 0.2f, -0.4f, 0.9f};
    float *h0 = test_floats(NH), *c0 = test_floats(NH);
    for (size_t i = 0; i < NH; i++) h0[i] = 0.1f * (float)i - 0.6f, c0[i] = 0.8f - 0.07f * (float)i;
    float *y[2] = {test_floats(NH), test_floats(NH)}, *cT[2] = {test_floats(NH), test_floats(NH)};
    recur_model *ms[2] = {zm, plain};
    for (int i = 0; i < 2; i++) {
        recur_model_io io = {.T = 1, .N = N, .x = x, .h0 = h0, .c0 = c0, .y = y[i], .cT = cT[i]};
        cr_assert_eq(recur_model_forward(ms[i], RECUR_MODE_INFERENCE, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    }
    for (size_t e = 0; e < NH; e++) {
        double want_h = (double)p * h0[e] + (1.0 - p) * y[1][e], want_c = (double)p * c0[e] + (1.0 - p) * cT[1][e];
        cr_assert(fabs(y[0][e] - want_h) < 1e-6, "h[%zu] = %.9g, expected %.9g", e, (double)y[0][e], want_h);
        cr_assert(fabs(cT[0][e] - want_c) < 1e-6, "c[%zu] = %.9g, expected %.9g", e, (double)cT[0][e], want_c);
    }
    recur_model_free(zm);
    recur_model_free(plain);
    recur_ctx_free(ctx);
    free(h0), free(c0), free(y[0]), free(y[1]), free(cT[0]), free(cT[1]);
}

Test(model, zoneout_outside_0_1_is_refused) {
    recur_ctx *ctx = open_ctx();
    const float bad[] = {1.0f, -0.1f, NAN, 2.5f};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        recur_model_desc d = {.cell = "gru", .input_size = 2, .hidden_size = 3, .num_layers = 1, .zoneout = bad[i]};
        recur_model *m = (recur_model *)&d;
        cr_assert_eq(recur_model_create(ctx, &d, &m), RECUR_ERR_ARG, "zoneout %g", (double)bad[i]);
        cr_assert_null(m);
        cr_assert(strstr(recur_ctx_error(ctx), "zoneout"), "%s", recur_ctx_error(ctx));
    }
    recur_model_desc d = {.cell = "gru", .input_size = 2, .hidden_size = 3, .num_layers = 1, .zoneout = 0.5f};
    recur_model *m;
    cr_assert_eq(recur_model_create(ctx, &d, &m), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_model_desc got;
    cr_assert_eq(recur_model_desc_get(m, &got), RECUR_OK);
    cr_assert(got.zoneout == 0.5f);
    recur_model_free(m);
    recur_ctx_free(ctx);
}

/* recur_ctx_cell_compare: every registered cell's kernels on the test's
 * device agree with its scalar C kernels, stage by stage, at H = 19 (a whole
 * AVX-512 vector and a tail) and H = 6, for every variant (the check must not
 * cry wolf, as gradcheck runs it to name the stage of a real disagreement);
 * and its arguments are checked. */
Test(model, cell_kernels_agree_with_the_scalar_reference) {
    recur_ctx *ctx = open_ctx();
    size_t n = recur_cell_count();
    cr_assert_geq(n, 4);
    int checked = 0;
    for (size_t k = 0; k < n; k++) {
        recur_cell_info ci;
        cr_assert_eq(recur_cell_get(k, &ci), RECUR_OK);
        if (recur_ctx_cell_supported(ctx, ci.name) != RECUR_OK) continue;
        for (int v = 0; v < (ci.n_variants ? ci.n_variants : 1); v++)
            for (int h = 6; h <= 19; h += 13) {
                const char *var = ci.n_variants ? ci.variants[v] : NULL;
                recur_cell_diff df;
                memset(&df, 0x5a, sizeof df);
                cr_assert_eq(recur_ctx_cell_compare(ctx, ci.name, var, h, 3, 1e-4, &df), RECUR_OK, "%s: %s", ci.name,
                             recur_ctx_error(ctx));
                cr_assert_eq(df.struct_size, sizeof df);
                cr_assert_eq(df.stage, -1,
                             "%s%s%s at H=%d on %s: stage %d's %s kernel differs in %s (row %d, place %d: %g, reference %g; "
                             "relative %g; written outside: %d floats; into an input: %d)",
                             ci.name, var ? ":" : "", var ? var : "", h, device(), df.stage,
                             df.backward ? "backward" : "forward", df.tensor, df.row, df.col, df.value, df.reference,
                             df.diff, df.outside, df.read_only);
                checked++;
            }
    }
    cr_assert_geq(checked, 8, "only %d cell kernels compared", checked);
    recur_cell_diff df;
    cr_assert_eq(recur_ctx_cell_compare(ctx, "no-such-cell", NULL, 6, 3, 1e-3, &df), RECUR_ERR_UNKNOWN_CELL);
    cr_assert(strstr(recur_ctx_error(ctx), "no-such-cell"), "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_ctx_cell_compare(ctx, "rnn", "sigmoid", 6, 3, 1e-3, &df), RECUR_ERR_UNKNOWN_NAME);
    cr_assert(strstr(recur_ctx_error(ctx), "sigmoid"), "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_ctx_cell_compare(ctx, "lstm", NULL, 0, 3, 1e-3, &df), RECUR_ERR_ARG);
    cr_assert_eq(recur_ctx_cell_compare(ctx, "lstm", NULL, 6, 3, 0, &df), RECUR_ERR_ARG);
    cr_assert_eq(recur_ctx_cell_compare(ctx, "lstm", NULL, 6, 3, 1e-3, NULL), RECUR_ERR_NULL);
    cr_assert_eq(recur_ctx_cell_compare_sized(ctx, "lstm", NULL, 6, 3, 1e-3, &df, 8), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(ctx), "recur_cell_diff of 8 bytes"), "%s", recur_ctx_error(ctx));
    recur_ctx_free(ctx);
}

/* proj_size: 0 or 1..H-1, and only for cells flagged RECUR_CELL_PROJECTABLE;
 * each refusal names the value and leaves *out NULL. A projecting layer's
 * arrays are P wide where a's are (y, h0, hT) and H wide for c. */
Test(model, projection_arguments_and_widths) {
    recur_ctx *ctx = open_ctx();
    const struct {
        const char *cell;
        int H, P;
        recur_status st;
        const char *needle;
    } bad[] = {{"lstm", 4, 4, RECUR_ERR_ARG, "proj_size 4"},  {"lstm", 4, -1, RECUR_ERR_ARG, "proj_size -1"},
               {"lstm", 4, 9, RECUR_ERR_ARG, "proj_size 9"},  {"gru", 4, 2, RECUR_ERR_UNSUPPORTED, "cell 'gru' cannot"},
               {"rnn", 4, 2, RECUR_ERR_UNSUPPORTED, "RECUR_CELL_PROJECTABLE"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        recur_model_desc d = {.cell = bad[i].cell, .input_size = 2, .hidden_size = bad[i].H, .num_layers = 2,
                              .proj_size = bad[i].P};
        recur_model *m = (recur_model *)&d;
        cr_assert_eq(recur_model_create(ctx, &d, &m), bad[i].st, "%s P=%d", bad[i].cell, bad[i].P);
        cr_assert_null(m);
        cr_assert(strstr(recur_ctx_error(ctx), bad[i].needle), "'%s' not in: %s", bad[i].needle, recur_ctx_error(ctx));
        recur_layer_desc ld = {.cell = bad[i].cell, .input_size = 2, .hidden_size = bad[i].H, .proj_size = bad[i].P};
        recur_layer *l = (recur_layer *)&ld;
        cr_assert_eq(recur_layer_create(ctx, &ld, &l), bad[i].st, "layer %s P=%d", bad[i].cell, bad[i].P);
        cr_assert_null(l);
    }
    /* A layer: G*H*I + G*H*P + 2*G*H + P*H weights; y, h0, hT P wide; c H wide. */
    const int T = 3, N = 2, I = 2, H = 5, P = 3;
    recur_layer_desc ld = {.cell = "lstm", .input_size = I, .hidden_size = H, .proj_size = P};
    recur_layer *l;
    cr_assert_eq(recur_layer_create(ctx, &ld, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_weight_count(l), (size_t)(4 * H * I + 4 * H * P + 8 * H + P * H));
    size_t nw = recur_layer_weight_count(l);
    float *w = test_floats(nw), x[T * N * I], y[T * N * P], h0[N * P], hT[N * P], c0[N * H], cT[N * H];
    test_rng r = {77};
    for (size_t k = 0; k < nw; k++) w[k] = (float)test_uniform(&r, -0.5, 0.5);
    for (int k = 0; k < T * N * I; k++) x[k] = (float)test_uniform(&r, -1, 1);
    for (int k = 0; k < N * P; k++) h0[k] = (float)test_uniform(&r, -1, 1);
    for (int k = 0; k < N * H; k++) c0[k] = (float)test_uniform(&r, -1, 1);
    cr_assert_eq(recur_layer_weights_set(l, RECUR_LAYOUT_TORCH, w, nw), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_io io = {.T = T, .N = N, .x = x, .h0 = h0, .c0 = c0, .y = y, .hT = hT, .cT = cT};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_INFERENCE, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    /* by hand, in double: W_ih, W_hh [4H, P], b_ih, b_hh, W_hr [P, H] */
    const float *wih = w, *whh = wih + 4 * H * I, *bih = whh + 4 * H * P, *bhh = bih + 4 * H, *whr = bhh + 4 * H;
    double h[N][P], c[N][H], worst = 0;
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < P; j++) h[n][j] = h0[n * P + j];
        for (int j = 0; j < H; j++) c[n][j] = c0[n * H + j];
    }
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double g[4 * H], a[H];
            for (int k = 0; k < 4 * H; k++) {
                g[k] = (double)bih[k] + bhh[k];
                for (int i = 0; i < I; i++) g[k] += (double)wih[k * I + i] * x[(t * N + n) * I + i];
                for (int j = 0; j < P; j++) g[k] += (double)whh[k * P + j] * h[n][j];
            }
            for (int j = 0; j < H; j++) {
                double gi = 1 / (1 + exp(-g[j])), gf = 1 / (1 + exp(-g[H + j])), gg = tanh(g[2 * H + j]);
                double go = 1 / (1 + exp(-g[3 * H + j]));
                c[n][j] = gf * c[n][j] + gi * gg;
                a[j] = go * tanh(c[n][j]);
            }
            for (int p = 0; p < P; p++) {
                double v = 0;
                for (int j = 0; j < H; j++) v += (double)whr[p * H + j] * a[j];
                h[n][p] = v;
                worst = fmax(worst, fabs(v - y[(t * N + n) * P + p]));
            }
        }
    for (int n = 0; n < N; n++) {
        for (int p = 0; p < P; p++) worst = fmax(worst, fabs(h[n][p] - hT[n * P + p]));
        for (int j = 0; j < H; j++) worst = fmax(worst, fabs(c[n][j] - cT[n * H + j]));
    }
    cr_assert_lt(worst, 1e-5, "layer with projection against the double loop: %g", worst);
    free(w);
    recur_ctx_free(ctx);
}
