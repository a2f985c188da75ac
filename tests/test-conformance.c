/*
 * test-conformance.c: every cell x every CPU ISA variant compiled and
 * supported x several shapes, against the double-precision reference
 * (tests/ref, itself checked by finite differences in test-ref.c).
 * Checks y, the final states, dx, the initial-state gradients and every
 * weight and bias gradient. The shapes include T=1, N=1 and hidden sizes
 * that are not a multiple of any vector width.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "recur/recur-cell.h"
#include "recur/recur.h"
#include "ref/ref-cell.h"

struct shape {
    int T, N, I, H;
};

static const struct shape shapes[] = {
    {1, 1, 3, 5}, {6, 4, 7, 19}, {3, 5, 16, 32}, {9, 2, 1, 1}, {4, 3, 33, 17}, {2, 17, 8, 40}, {10, 3, 16, 300},
};

/* Float against double: forward values are O(1); gradients are sums over
 * T*N terms, so their absolute floor grows with the shape. 2e-5 relative
 * catches one gate's gradient 2e-4 off (checked by mutating the LSTM's). */
#define RTOL 2e-5
#define ATOL_Y 2e-5

struct run {
    size_t nw, nx, nh, ny;
    float *w, *x, *h0, *c0, *y, *hT, *cT, *dy, *dhT, *dcT, *dx, *dh0, *dc0, *dw;
    double *wd, *xd, *h0d, *c0d, *yd, *hTd, *cTd, *dyd, *dhTd, *dcTd, *dxd, *dh0d, *dc0d, *dwd;
};

static void run_alloc(struct run *r, const ref_cell *rc, const struct shape *s, test_rng *rng) {
    r->nw = ref_weight_count(rc);
    r->nx = (size_t)s->T * s->N * s->I;
    r->nh = (size_t)s->N * s->H;
    r->ny = (size_t)s->T * r->nh;
#define PAIR(name, n, lo, hi)                                                                                \
    do {                                                                                                     \
        r->name = test_floats(n);                                                                            \
        r->name##d = test_doubles(n);                                                                        \
        if ((hi) > (lo)) test_fill(rng, r->name##d, r->name, n, lo, hi);                                     \
    } while (0)
    /* Large enough for the nonlinear regime, small enough that the recurrent
     * map does not amplify float rounding (spectral radius ~ k sqrt(H/3) < 1). */
    double k = fmin(1.5 / sqrt((double)s->H), 0.8);
    PAIR(w, r->nw, -k, k);
    PAIR(x, r->nx, -1, 1);
    PAIR(h0, r->nh, -1, 1);
    PAIR(c0, r->nh, -1, 1);
    PAIR(dy, r->ny, -1, 1);
    PAIR(dhT, r->nh, -1, 1);
    PAIR(dcT, r->nh, -1, 1);
    PAIR(y, r->ny, 0, 0);
    PAIR(hT, r->nh, 0, 0);
    PAIR(cT, r->nh, 0, 0);
    PAIR(dx, r->nx, 0, 0);
    PAIR(dh0, r->nh, 0, 0);
    PAIR(dc0, r->nh, 0, 0);
    PAIR(dw, r->nw, 0, 0);
#undef PAIR
}

static void run_free(struct run *r) {
    float *f[] = {r->w, r->x, r->h0, r->c0, r->y, r->hT, r->cT, r->dy, r->dhT, r->dcT, r->dx, r->dh0, r->dc0, r->dw};
    double *d[] = {r->wd, r->xd, r->h0d, r->c0d, r->yd, r->hTd, r->cTd, r->dyd, r->dhTd, r->dcTd, r->dxd, r->dh0d,
                   r->dc0d, r->dwd};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]), free(d[i]);
}

/* Largest |v| of an array: the scale of a gradient's absolute tolerance. */
static double scale_of(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

static void check_case(const char *device, const char *cell, const char *variant, int ref_variant,
                       const struct shape *s) {
    ref_cell rc = {.cell = cell, .variant = ref_variant, .I = s->I, .H = s->H};
    int two = ref_states(&rc) == 2;
    test_rng rng = {0x1234u + (uint64_t)s->T * 131 + (uint64_t)s->H};
    struct run r;
    run_alloc(&r, &rc, s, &rng);

    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, device), RECUR_OK, "%s", recur_last_error());
    recur_layer *l;
    recur_layer_desc d = {.cell = cell, .variant = variant, .input_size = s->I, .hidden_size = s->H};
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_weight_count(l), r.nw);
    cr_assert_eq(recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, r.w, r.nw), RECUR_OK);

    recur_io io = {.T = s->T, .N = s->N, .x = r.x, .h0 = r.h0, .c0 = two ? r.c0 : NULL, .y = r.y,
                   .hT = r.hT, .cT = two ? r.cT : NULL};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_grad_io g = {.dy = r.dy, .dhT = r.dhT, .dcT = two ? r.dcT : NULL, .dx = r.dx, .dh0 = r.dh0,
                       .dc0 = two ? r.dc0 : NULL};
    cr_assert_eq(recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, r.dw, r.nw), RECUR_OK);

    ref_forward(&rc, s->T, s->N, r.wd, r.xd, r.h0d, r.c0d, r.yd, r.hTd, r.cTd);
    ref_backward(&rc, s->T, s->N, r.wd, r.xd, r.h0d, r.c0d, r.dyd, r.dhTd, r.dcTd, r.dxd, r.dh0d, r.dc0d, r.dwd);

    char what[128];
#define CHECK(arr, n, atol)                                                                                  \
    do {                                                                                                     \
        snprintf(what, sizeof what, "%s %s%s%s T%d N%d I%d H%d: " #arr, device, cell, variant ? ":" : "",    \
                 variant ? variant : "", s->T, s->N, s->I, s->H);                                            \
        ASSERT_CLOSE(what, r.arr, r.arr##d, n, RTOL, atol);                                                  \
    } while (0)
    double gscale = 1e-5 * (1 + scale_of(r.dwd, r.nw));
    CHECK(y, r.ny, ATOL_Y);
    CHECK(hT, r.nh, ATOL_Y);
    CHECK(dx, r.nx, 1e-5 * (1 + scale_of(r.dxd, r.nx)));
    CHECK(dh0, r.nh, 1e-5 * (1 + scale_of(r.dh0d, r.nh)));
    CHECK(dw, r.nw, gscale);
    if (two) {
        CHECK(cT, r.nh, ATOL_Y);
        CHECK(dc0, r.nh, 1e-5 * (1 + scale_of(r.dc0d, r.nh)));
    }

    /* The inference forward gives the same outputs as the training one. */
    float *y2 = test_floats(r.ny), *hT2 = test_floats(r.nh);
    recur_io io2 = io;
    io2.y = y2;
    io2.hT = hT2;
    io2.cT = NULL;
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_INFERENCE, &io2), RECUR_OK);
    snprintf(what, sizeof what, "%s %s inference y", device, cell);
    ASSERT_CLOSE(what, y2, r.yd, r.ny, RTOL, ATOL_Y);

    /* RECUR_GRAD_ADD adds: a second backward doubles the weight gradients. */
    float *first = test_floats(r.nw);
    memcpy(first, r.dw, r.nw * sizeof(float));
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_TRAINING, &io), RECUR_OK);
    recur_grad_io g2 = {.dy = r.dy, .dhT = r.dhT, .dcT = two ? r.dcT : NULL};
    cr_assert_eq(recur_layer_backward(l, &io, &g2, RECUR_GRAD_ADD), RECUR_OK);
    cr_assert_eq(recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, r.dw, r.nw), RECUR_OK);
    for (size_t i = 0; i < r.nw; i++) r.dwd[i] *= 2;
    snprintf(what, sizeof what, "%s %s dw after RECUR_GRAD_ADD", device, cell);
    ASSERT_CLOSE(what, r.dw, r.dwd, r.nw, RTOL, 2 * gscale);
    /* The bias gradients' column sums are taken apart and then added: exactly twice the first ones. */
    if (ref_has_biases(&rc)) {
        size_t GH = (size_t)ref_gates(&rc) * (size_t)s->H;
        size_t b0 = GH * (size_t)s->I + (size_t)ref_recurrent_gates(&rc) * (size_t)s->H * (size_t)s->H;
        for (size_t i = b0; i < b0 + 2 * GH; i++)
            cr_assert(r.dw[i] == 2 * first[i], "%s: bias gradient %zu is %a, not twice %a", what, i - b0, r.dw[i],
                      first[i]);
    }
    free(first);

    free(y2), free(hT2);
    recur_layer_free(l);
    recur_ctx_free(ctx);
    run_free(&r);
}

/* Zero initial states and no final-state gradients (NULL pointers) match the reference's zeros. */
static void check_zero_states(const char *device, const char *cell, const char *variant, int ref_variant) {
    struct shape s = {5, 3, 4, 6};
    ref_cell rc = {.cell = cell, .variant = ref_variant, .I = s.I, .H = s.H};
    test_rng rng = {99};
    struct run r;
    run_alloc(&r, &rc, &s, &rng);
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, device), RECUR_OK, "%s", recur_last_error());
    recur_layer *l;
    recur_layer_desc d = {.cell = cell, .variant = variant, .input_size = s.I, .hidden_size = s.H};
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, r.w, r.nw), RECUR_OK);
    recur_io io = {.T = s.T, .N = s.N, .x = r.x, .y = r.y};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_TRAINING, &io), RECUR_OK);
    recur_grad_io g = {.dy = r.dy, .dx = r.dx, .dh0 = r.dh0};
    cr_assert_eq(recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK);
    cr_assert_eq(recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, r.dw, r.nw), RECUR_OK);
    ref_forward(&rc, s.T, s.N, r.wd, r.xd, NULL, NULL, r.yd, NULL, NULL);
    ref_backward(&rc, s.T, s.N, r.wd, r.xd, NULL, NULL, r.dyd, NULL, NULL, r.dxd, r.dh0d, NULL, r.dwd);
    ASSERT_CLOSE("zero-state y", r.y, r.yd, r.ny, RTOL, ATOL_Y);
    ASSERT_CLOSE("zero-state dx", r.dx, r.dxd, r.nx, RTOL, 1e-5 * (1 + scale_of(r.dxd, r.nx)));
    ASSERT_CLOSE("zero-state dh0", r.dh0, r.dh0d, r.nh, RTOL, 1e-5 * (1 + scale_of(r.dh0d, r.nh)));
    ASSERT_CLOSE("zero-state dw", r.dw, r.dwd, r.nw, RTOL, 1e-5 * (1 + scale_of(r.dwd, r.nw)));
    recur_ctx_free(ctx); /* frees the layer too */
    run_free(&r);
}

static void check_cell(const char *device, const char *cell, const char *variant, int ref_variant) {
    test_need_device(device);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_case(device, cell, variant, ref_variant, &shapes[i]);
    check_zero_states(device, cell, variant, ref_variant);
}

#define CONFORMANCE(isa)                                                                                     \
    Test(conformance_##isa, rnn_tanh) { check_cell("cpu:" #isa, "rnn", "tanh", 0); }                        \
    Test(conformance_##isa, rnn_relu) { check_cell("cpu:" #isa, "rnn", "relu", 1); }                        \
    Test(conformance_##isa, gru) { check_cell("cpu:" #isa, "gru", NULL, 0); }                               \
    Test(conformance_##isa, gru_lbr) { check_cell("cpu:" #isa, "gru-lbr", NULL, 0); }                       \
    Test(conformance_##isa, lstm) { check_cell("cpu:" #isa, "lstm", NULL, 0); }                             \
    NEW_CELLS(isa, "cpu:" #isa)

/* The cells of ABI 2 (plugins/, and the example's mgu): own parameters, a
 * pointwise stage, raw products and row reductions. */
#define NEW_CELLS(tag, dev)                                                                                  \
    Test(conformance_##tag, gru_simple) { check_cell(dev, "gru-simple", NULL, 0); }                         \
    Test(conformance_##tag, mgu) { check_cell(dev, "mgu", NULL, 0); }                                       \
    Test(conformance_##tag, indrnn_relu) { check_cell(dev, "indrnn", "relu", 0); }                          \
    Test(conformance_##tag, indrnn_tanh) { check_cell(dev, "indrnn", "tanh", 1); }                          \
    Test(conformance_##tag, lstm_peephole) { check_cell(dev, "lstm-peephole", NULL, 0); }                   \
    Test(conformance_##tag, lstm_ln) { check_cell(dev, "lstm-ln", NULL, 0); }                               \
    Test(conformance_##tag, gru_ln) { check_cell(dev, "gru-ln", NULL, 0); }

/* Every ISA of the architecture compiled (RECUR_ISA_LIST); one this CPU lacks is skipped. */
#define CONFORMANCE_ISA(u, ID, name, bit, arch, implies, flags) RECUR_ISA_IF(arch)(CONFORMANCE(name))
RECUR_ISA_LIST(CONFORMANCE_ISA, )

/* The OpenCL backend, on the first OpenCL device (PoCL in CI). */
#define CONFORMANCE_OPENCL(tag, dev)                                                                         \
    Test(conformance_##tag, rnn_tanh) { check_cell(dev, "rnn", "tanh", 0); }                                \
    Test(conformance_##tag, rnn_relu) { check_cell(dev, "rnn", "relu", 1); }                                \
    Test(conformance_##tag, gru) { check_cell(dev, "gru", NULL, 0); }                                       \
    Test(conformance_##tag, gru_lbr) { check_cell(dev, "gru-lbr", NULL, 0); }                               \
    Test(conformance_##tag, lstm) { check_cell(dev, "lstm", NULL, 0); }                                     \
    NEW_CELLS(tag, dev)
/* "opencl": the first GPU, else the first OpenCL device; RECUR_TEST_OPENCL overrides. */
#define OPENCL_DEVICE (getenv("RECUR_TEST_OPENCL") ? getenv("RECUR_TEST_OPENCL") : "opencl")
CONFORMANCE_OPENCL(opencl, OPENCL_DEVICE)

/* Large enough that the CPU backend splits rows across threads. */
Test(conformance_threads, lstm_wide_batch) {
    test_need_device("cpu");
    struct shape s = {3, 64, 8, 160};
    check_case("cpu", "lstm", NULL, 0, &s);
    check_case("cpu", "gru", NULL, 0, &s);
    check_case("cpu", "gru-lbr", NULL, 0, &s);
    check_case("cpu", "lstm-peephole", NULL, 0, &s);
    check_case("cpu", "lstm-ln", NULL, 0, &s);
    check_case("cpu", "gru-ln", NULL, 0, &s);
}
