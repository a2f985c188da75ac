/*
 * demo.c: `recur demo`, the default job until training lands: for each cell,
 * a forward pass and BPTT over a default batch on the chosen device, with
 * the gradient checked against central finite differences.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recur/recur.h"
#include "tool.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float uniform(float lo, float hi) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* L = 0.5 * sum(y^2), so dL/dy = y. */
static double loss_of(recur_layer *l, const recur_io *io, size_t ny) {
    if (recur_layer_forward(l, RECUR_MODE_INFERENCE, io) != RECUR_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < ny; i++) s += 0.5 * (double)io->y[i] * io->y[i];
    return s;
}

static int run_cell(recur_ctx *ctx, const char *cell, const char *variant, int T, int N, int I, int H) {
    recur_layer *l = NULL;
    recur_layer_desc d = {.cell = cell, .variant = variant, .input_size = I, .hidden_size = H};
    if (recur_layer_create(ctx, &d, &l) != RECUR_OK) {
        fprintf(stderr, "recur demo: %s\n", recur_ctx_error(ctx));
        return 1;
    }
    size_t nw = recur_layer_weight_count(l), nx = (size_t)T * N * I, ny = (size_t)T * N * H;
    float *w = malloc(nw * sizeof *w), *g = malloc(nw * sizeof *g), *x = malloc(nx * sizeof *x);
    float *y = malloc(ny * sizeof *y), *dy = malloc(ny * sizeof *dy), *dx = malloc(nx * sizeof *dx);
    int rc = 1;
    if (!w || !g || !x || !y || !dy || !dx) goto out;
    float k = 1.0f / sqrtf((float)H); /* PyTorch's default init */
    for (size_t i = 0; i < nw; i++) w[i] = uniform(-k, k);
    for (size_t i = 0; i < nx; i++) x[i] = uniform(-1, 1);
    recur_io io = {.T = T, .N = N, .x = x, .y = y};
    recur_grad_io gio = {.dy = dy, .dx = dx};
    double t0 = now();
    if (recur_layer_weights_set(l, RECUR_LAYOUT_TORCH, w, nw) != RECUR_OK ||
        recur_layer_forward(l, RECUR_MODE_TRAINING, &io) != RECUR_OK)
        goto fail;
    double t1 = now();
    double loss = 0;
    for (size_t i = 0; i < ny; i++) {
        dy[i] = y[i];
        loss += 0.5 * (double)y[i] * y[i];
    }
    if (recur_layer_backward(l, &io, &gio, RECUR_GRAD_OVERWRITE) != RECUR_OK) goto fail;
    double t2 = now();
    if (recur_layer_grads_get(l, RECUR_LAYOUT_TORCH, g, nw) != RECUR_OK) goto fail;
    double gnorm = 0;
    for (size_t i = 0; i < nw; i++) gnorm += (double)g[i] * g[i];

    /* Central differences along random directions v of the whole weight
     * vector: (L(w + eps v) - L(w - eps v)) / 2 eps against g . v. A
     * direction averages over every weight, so a float loss resolves it well
     * and a ReLU kink crossed by a few units barely moves it. */
    double worst = 0;
    const float eps = 1e-4f;
    float *v = malloc(nw * sizeof *v), *wp = malloc(nw * sizeof *wp);
    if (!v || !wp) {
        free(v), free(wp);
        goto out;
    }
    for (int s = 0; s < 3; s++) {
        double gv = 0;
        for (size_t i = 0; i < nw; i++) {
            v[i] = uniform(-1, 1);
            gv += (double)g[i] * v[i];
        }
        for (size_t i = 0; i < nw; i++) wp[i] = w[i] + eps * v[i];
        recur_layer_weights_set(l, RECUR_LAYOUT_TORCH, wp, nw);
        double lp = loss_of(l, &io, ny);
        for (size_t i = 0; i < nw; i++) wp[i] = w[i] - eps * v[i];
        recur_layer_weights_set(l, RECUR_LAYOUT_TORCH, wp, nw);
        double lm = loss_of(l, &io, ny);
        double fd = (lp - lm) / (2 * eps), err = fabs(fd - gv) / fmax(fmax(fabs(fd), fabs(gv)), 1e-12);
        if (!(err <= worst)) worst = err;
    }
    free(v), free(wp);
    /* ReLU's kinks put an error of order eps into any finite difference, so
     * its check is approximate; the smooth cells must agree to 1e-2. */
    int kinked = variant && strcmp(variant, "relu") == 0;
    double tol = kinked ? 0.25 : 1e-2;
    char name[48];
    snprintf(name, sizeof name, "%s%s%s", cell, variant ? ":" : "", variant ? variant : "");
    printf("%-10s loss %10.5f  |dL/dW| %9.5f  forward %7.3f ms  BPTT %7.3f ms  finite-difference error %.1e  %s\n",
           name, loss, sqrt(gnorm), 1e3 * (t1 - t0), 1e3 * (t2 - t1), worst, worst < tol ? (kinked ? "ok (approximate: ReLU kinks)" : "ok") : "FAILED");
    rc = worst < tol ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "recur demo: %s: %s\n", cell, recur_ctx_error(ctx));
out:
    free(w), free(g), free(x), free(y), free(dy), free(dx);
    recur_layer_free(l);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    int T = 20, N = 8, I = 16, H = 32;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: recur demo [--cell NAME] [--steps T] [--batch N] [--input I] [--hidden H]\n"
                   "Forward and BPTT of each cell (or one) on random data on the RECUR_DEVICE device,\n"
                   "with dL/dW checked against central finite differences. Defaults: T=20 N=8 I=16 H=32.\n");
            return 0;
        }
        int *dst = !strcmp(a, "--steps") ? &T : !strcmp(a, "--batch") ? &N : !strcmp(a, "--input") ? &I
                 : !strcmp(a, "--hidden") ? &H : NULL;
        if (!dst && strcmp(a, "--cell")) return tool_usage_error("demo", "unknown option '%s'", a);
        if (i + 1 >= argc) return tool_usage_error("demo", "option '%s' needs a value", a);
        const char *v = argv[++i];
        if (!dst) {
            only = v;
            continue;
        }
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 1 << 20) return tool_usage_error("demo", "%s '%s': expected an integer 1..1048576", a, v);
        *dst = (int)n;
    }
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, NULL) != RECUR_OK) {
        fprintf(stderr, "recur demo: %s\n", recur_last_error());
        return 1;
    }
    recur_device_info info;
    recur_ctx_device(ctx, &info);
    printf("recur %s on %s (%s): T=%d N=%d I=%d H=%d, loss = 0.5 sum(y^2)\n", RECUR_VERSION_STRING, info.selector,
           info.detail, T, N, I, H);
    int rc = 0;
    if (only) {
        rc = run_cell(ctx, only, NULL, T, N, I, H);
    } else {
        size_t n = recur_cell_count();
        for (size_t i = 0; i < n; i++) {
            recur_cell_info c;
            recur_cell_get(i, &c);
            if (c.n_variants == 0) rc |= run_cell(ctx, c.name, NULL, T, N, I, H);
            for (int v = 0; v < c.n_variants; v++) rc |= run_cell(ctx, c.name, c.variants[v], T, N, I, H);
        }
        if (n == 0) {
            fprintf(stderr, "recur demo: no cell plugins found; set RECUR_PLUGIN_PATH\n");
            rc = 1;
        }
    }
    recur_ctx_free(ctx);
    return rc;
}
