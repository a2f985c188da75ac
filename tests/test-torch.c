/*
 * test-torch.c: parity with PyTorch. tests/fixtures/gen_torch.py wrote, in
 * float64 with Debian's torch, the outputs, final states and every gradient
 * of nn.RNN (tanh, relu), nn.GRU, nn.LSTM and a hand-written original GRU;
 * recur must match them within 1e-5 relative, on every CPU ISA.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fixtures/fixture.h"
#include "recur/recur.h"

/* Relative 1e-5, with an absolute floor of 1e-5 of the array's largest value
 * for elements near zero (float32 against float64). */
static void check(const char *file, const char *name, const float *got, const fixture *f) {
    size_t n;
    const double *want = fixture_array(f, name, &n);
    cr_assert(want, "%s: no array '%s'", file, name);
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(want[i]));
    char what[256];
    snprintf(what, sizeof what, "%s: %s", file, name);
    ASSERT_CLOSE(what, got, want, n, 1e-5, 1e-5 * m + 1e-7);
}

/* Every output and gradient of a run against the fixture's. */
static void check_all(const char *file, const char *device, const fixture *f, int two, const float *y,
                      const float *hT, const float *cT, const float *dx, const float *dh0, const float *dc0,
                      const float *dw) {
    char label[512];
    snprintf(label, sizeof label, "%s on %s", file, device);
    check(label, "y", y, f);
    check(label, "hT", hT, f);
    check(label, "dx", dx, f);
    check(label, "dh0", dh0, f);
    check(label, "dw", dw, f);
    if (two) {
        check(label, "cT", cT, f);
        check(label, "dc0", dc0, f);
    }
}

static float *floats_of(const fixture *f, const char *name, size_t *n) {
    const double *d = fixture_array(f, name, n);
    if (!d) return NULL;
    float *v = test_floats(*n);
    for (size_t i = 0; i < *n; i++) v[i] = (float)d[i];
    return v;
}

static int run_fixture(const char *device, const char *dir, const char *file) {
    char path[2304];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    fixture f;
    cr_assert_eq(fixture_load(path, &f), 0, "cannot load %s", path);
    int two = strcmp(f.cell, "lstm") == 0;
    size_t nw, nx, nh, ny, nc = 0, ndy, ndh, ndc = 0;
    float *w = floats_of(&f, "w", &nw), *x = floats_of(&f, "x", &nx), *h0 = floats_of(&f, "h0", &nh);
    float *c0 = two ? floats_of(&f, "c0", &nc) : NULL, *dy = floats_of(&f, "dy", &ndy);
    float *dhT = floats_of(&f, "dhT", &ndh), *dcT = two ? floats_of(&f, "dcT", &ndc) : NULL;
    ny = (size_t)f.T * f.N * f.H;
    float *y = test_floats(ny), *hT = test_floats(nh), *cT = test_floats(nh), *dx = test_floats(nx);
    float *dh0 = test_floats(nh), *dc0 = test_floats(nh), *dw = test_floats(nw);

    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, device), RECUR_OK, "%s", recur_last_error());
    recur_layer *l;
    recur_layer_desc d = {.cell = f.cell, .variant = strcmp(f.cell, "rnn") == 0 ? f.variant : NULL,
                          .input_size = f.I, .hidden_size = f.H};
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_OK, "%s: %s", file, recur_ctx_error(ctx));
    /* The fixtures store PyTorch's state_dict order; for the original gru
     * (no PyTorch module) they store its canonical u, r, c. */
    recur_layout layout = strcmp(f.cell, "gru") == 0 ? RECUR_LAYOUT_CANONICAL : RECUR_LAYOUT_TORCH;
    cr_assert_eq(recur_layer_weights_set(l, layout, w, nw), RECUR_OK, "%s: %s", file, recur_ctx_error(ctx));
    recur_io io = {.T = f.T, .N = f.N, .x = x, .h0 = h0, .c0 = c0, .y = y, .hT = hT, .cT = two ? cT : NULL};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_grad_io g = {.dy = dy, .dhT = dhT, .dcT = dcT, .dx = dx, .dh0 = dh0, .dc0 = two ? dc0 : NULL};
    cr_assert_eq(recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_grads_get(l, layout, dw, nw), RECUR_OK);

    check_all(file, device, &f, two, y, hT, cT, dx, dh0, dc0, dw);
    recur_ctx_free(ctx);
    float *all[] = {w, x, h0, c0, dy, dhT, dcT, y, hT, cT, dx, dh0, dc0, dw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    fixture_free(&f);
    return 1;
}

static void run_all(const char *device) {
    test_need_device(device);
    const char *dir = getenv("RECUR_FIXTURES");
    cr_assert(dir, "RECUR_FIXTURES is not set (meson test sets it)");
    DIR *dp = opendir(dir);
    cr_assert(dp, "cannot open %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strstr(e->d_name, ".txt")) n += run_fixture(device, dir, e->d_name);
    closedir(dp);
    /* rnn-tanh, rnn-relu, gru, gru-lbr, lstm at three shapes each */
    cr_assert_geq(n, 15, "only %d fixtures in %s", n, dir);
}

Test(torch, cpu_scalar) { run_all("cpu:scalar"); }
/* "opencl": the first GPU, else the first OpenCL device; RECUR_TEST_OPENCL overrides. */
#define OPENCL_DEVICE (getenv("RECUR_TEST_OPENCL") ? getenv("RECUR_TEST_OPENCL") : "opencl")
Test(torch, opencl) { run_all(OPENCL_DEVICE); }
#if defined(__x86_64__)
Test(torch, cpu_avx2) { run_all("cpu:avx2"); }
Test(torch, cpu_avx512) { run_all("cpu:avx512"); }
#endif

/* ---- stacked, bidirectional, packed: tests/fixtures/torch-stack ---- */

static int run_stack_fixture(const char *device, const char *dir, const char *file) {
    char path[2304];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    fixture f;
    cr_assert_eq(fixture_load(path, &f), 0, "cannot load %s", path);
    int two = strcmp(f.cell, "lstm") == 0;
    size_t nw, nx, ns, nl, nc = 0, ndy, ndh, ndc = 0;
    float *w = floats_of(&f, "w", &nw), *x = floats_of(&f, "x", &nx), *h0 = floats_of(&f, "h0", &ns);
    float *c0 = two ? floats_of(&f, "c0", &nc) : NULL, *dy = floats_of(&f, "dy", &ndy);
    float *dhT = floats_of(&f, "dhT", &ndh), *dcT = two ? floats_of(&f, "dcT", &ndc) : NULL;
    float *lf = floats_of(&f, "lengths", &nl);
    int *lengths = calloc(nl, sizeof(int));
    for (size_t i = 0; i < nl; i++) lengths[i] = (int)lf[i];
    size_t ny = ndy;
    size_t ncs = two ? nc : ns; /* c's states are H wide, a's P wide with a projection */
    float *y = test_floats(ny), *hT = test_floats(ns), *cT = test_floats(ncs), *dx = test_floats(nx);
    float *dh0 = test_floats(ns), *dc0 = test_floats(ncs), *dw = test_floats(nw);

    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, device), RECUR_OK, "%s", recur_last_error());
    recur_model_desc d = {.cell = f.cell, .variant = strcmp(f.cell, "rnn") == 0 ? f.variant : NULL,
                          .input_size = f.I, .hidden_size = f.H, .num_layers = f.L,
                          .direction = f.D == 2 ? RECUR_DIR_BIDI_CONCAT : RECUR_DIR_FORWARD, .proj_size = f.P};
    recur_model *m;
    cr_assert_eq(recur_model_create(ctx, &d, &m), RECUR_OK, "%s: %s", file, recur_ctx_error(ctx));
    /* w is the state_dict flattened in order: recur's parameter order. */
    size_t at = 0, np = recur_model_param_count(m);
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        cr_assert_eq(recur_model_param_info(m, i, &info), RECUR_OK);
        cr_assert_leq(at + info.count, nw, "%s: w too short for %s", file, info.name);
        cr_assert_eq(recur_model_param_set(m, info.name, w + at, info.count), RECUR_OK, "%s", recur_ctx_error(ctx));
        at += info.count;
    }
    cr_assert_eq(at, nw, "%s: w has %zu values, the model %zu", file, nw, at);
    recur_model_io io = {.T = f.T, .N = f.N, .lengths = lengths, .pad = 0.0f, .x = x, .h0 = h0, .c0 = c0,
                         .y = y, .hT = hT, .cT = two ? cT : NULL};
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_model_grad_io g = {.dy = dy, .dhT = dhT, .dcT = dcT, .dx = dx, .dh0 = dh0, .dc0 = two ? dc0 : NULL};
    cr_assert_eq(recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    at = 0;
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        recur_model_param_info(m, i, &info);
        cr_assert_eq(recur_model_grad_get(m, info.name, dw + at, info.count), RECUR_OK);
        at += info.count;
    }
    check_all(file, device, &f, two, y, hT, cT, dx, dh0, dc0, dw);
    recur_ctx_free(ctx);
    float *all[] = {w, x, h0, c0, dy, dhT, dcT, lf, y, hT, cT, dx, dh0, dc0, dw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(lengths);
    fixture_free(&f);
    return 1;
}

static void run_stack_all(const char *device) {
    test_need_device(device);
    const char *base = getenv("RECUR_FIXTURES");
    cr_assert(base, "RECUR_FIXTURES is not set (meson test sets it)");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/../torch-stack", base);
    DIR *dp = opendir(dir);
    cr_assert(dp, "cannot open %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strstr(e->d_name, ".txt")) n += run_stack_fixture(device, dir, e->d_name);
    closedir(dp);
    cr_assert_geq(n, 13, "only %d fixtures in %s (3 of the LSTM with projection)", n, dir);
}

Test(torch_stack, cpu) { run_stack_all("cpu"); }
Test(torch_stack, opencl) { run_stack_all(OPENCL_DEVICE); }
Test(torch_stack, cpu_scalar) { run_stack_all("cpu:scalar"); }
