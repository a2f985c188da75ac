/*
 * mgu-check.c: the MGU plugin against an independent float64 reference of
 * its formula, through recur's public API on any device (RECUR_DEVICE).
 *
 * The reference is the formula itself, written again in double with nothing
 * shared with mgu.c: a forward over T steps. Its gradients are central finite
 * differences of that double forward, exact to about 1e-9 here, so no
 * hand-written BPTT can share a mistake with the plugin's. Checked: y, hT,
 * and dL/dW for every weight and dL/dx, dL/dh0 of L = sum(y * dy).
 *
 *   make check     (RECUR_PLUGIN_PATH=$PWD ./mgu-check)
 */
#include <math.h>
#include <recur/recur.h>
#include <stdio.h>
#include <stdlib.h>

enum { T = 5, N = 3, I = 4, H = 6, G = 2 };
enum { NW = G * H * I + G * H * H + 2 * G * H, NX = T * N * I, NH = N * H, NY = T * N * H };

/* Canonical layout: W_ih [2H, I] (gates f, a), W_hh [2H, H], b_ih [2H], b_hh [2H]. */
static double ref_forward(const double *w, const double *x, const double *h0, double *y, double *hT,
                          const double *dy) {
    const double *Wih = w, *Whh = w + G * H * I, *bih = Whh + G * H * H, *bhh = bih + G * H;
    double h[N][H], loss = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < H; j++) h[n][j] = h0[n * H + j];
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            const double *xt = x + (t * N + n) * I;
            double f[H], fh[H], next[H];
            for (int j = 0; j < H; j++) { /* f = σ(W_f [h, x] + b_f) */
                double v = bih[j] + bhh[j];
                for (int k = 0; k < I; k++) v += Wih[j * I + k] * xt[k];
                for (int k = 0; k < H; k++) v += Whh[j * H + k] * h[n][k];
                f[j] = 1 / (1 + exp(-v));
                fh[j] = f[j] * h[n][j];
            }
            for (int j = 0; j < H; j++) { /* ã = tanh(W_a [f * h, x] + b_a); h = (1 - f) h + f ã */
                double v = bih[H + j] + bhh[H + j];
                for (int k = 0; k < I; k++) v += Wih[(H + j) * I + k] * xt[k];
                for (int k = 0; k < H; k++) v += Whh[(H + j) * H + k] * fh[k];
                next[j] = (1 - f[j]) * h[n][j] + f[j] * tanh(v);
            }
            for (int j = 0; j < H; j++) {
                h[n][j] = next[j];
                if (y) y[(t * N + n) * H + j] = next[j];
                loss += next[j] * dy[(t * N + n) * H + j];
            }
        }
    for (int n = 0; hT && n < N; n++)
        for (int j = 0; j < H; j++) hT[n * H + j] = h[n][j];
    return loss;
}

/* d loss / d v[i] by central differences of the double forward. */
static double fd(double *v, int i, const double *w, const double *x, const double *h0, const double *dy) {
    const double e = 1e-6, keep = v[i];
    v[i] = keep + e;
    double up = ref_forward(w, x, h0, NULL, NULL, dy);
    v[i] = keep - e;
    double down = ref_forward(w, x, h0, NULL, NULL, dy);
    v[i] = keep;
    return (up - down) / (2 * e);
}

static int close_to(const char *what, const float *got, const double *want, int n, double tol) {
    double worst = 0, scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - want[i]) / (1 + scale));
    printf("%-4s %4d values, worst error %.2e (relative to 1 + the largest, %.3g)%s\n", what, n, worst, scale,
           worst <= tol ? "" : "  FAILED");
    return worst <= tol;
}

int main(void) {
    static double w[NW], x[NX], h0[NH], dy[NY], y[NY], hT[NH], dw[NW], dx[NX], dh0[NH];
    static float wf[NW], xf[NX], h0f[NH], dyf[NY], yf[NY], hTf[NH], dwf[NW], dxf[NX], dh0f[NH];
    unsigned s = 12345;
#define RAND(scale) ((scale) * (((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0 - 0.5))
    for (int i = 0; i < NW; i++) wf[i] = (float)RAND(1.2), w[i] = wf[i];
    for (int i = 0; i < NX; i++) xf[i] = (float)RAND(2.0), x[i] = xf[i];
    for (int i = 0; i < NH; i++) h0f[i] = (float)RAND(1.0), h0[i] = h0f[i];
    for (int i = 0; i < NY; i++) dyf[i] = (float)RAND(2.0), dy[i] = dyf[i];

    recur_ctx *ctx;
    recur_layer *l;
    recur_layer_desc d = {.cell = "mgu", .input_size = I, .hidden_size = H};
    if (recur_ctx_create(&ctx, NULL) != RECUR_OK) return fprintf(stderr, "%s\n", recur_last_error()), 1;
    recur_io io = {.T = T, .N = N, .x = xf, .h0 = h0f, .y = yf, .hT = hTf};
    recur_grad_io g = {.dy = dyf, .dx = dxf, .dh0 = dh0f};
    if (recur_layer_create(ctx, &d, &l) != RECUR_OK || recur_layer_weight_count(l) != NW ||
        recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, wf, NW) != RECUR_OK ||
        recur_layer_forward(l, RECUR_MODE_TRAINING, &io) != RECUR_OK ||
        recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE) != RECUR_OK ||
        recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, dwf, NW) != RECUR_OK) {
        fprintf(stderr, "mgu-check: %s\n", recur_ctx_error(ctx));
        recur_ctx_free(ctx);
        return 1;
    }
    recur_device_info dev;
    recur_ctx_device(ctx, &dev);
    printf("cell mgu on %s against a float64 reference (T %d, N %d, I %d, H %d)\n", dev.selector, T, N, I, H);
    ref_forward(w, x, h0, y, hT, dy);
    for (int i = 0; i < NW; i++) dw[i] = fd(w, i, w, x, h0, dy);
    for (int i = 0; i < NX; i++) dx[i] = fd(x, i, w, x, h0, dy);
    for (int i = 0; i < NH; i++) dh0[i] = fd(h0, i, w, x, h0, dy);
    int ok = close_to("y", yf, y, NY, 1e-5) & close_to("hT", hTf, hT, NH, 1e-5) &
             close_to("dW", dwf, dw, NW, 1e-4) & close_to("dx", dxf, dx, NX, 1e-4) &
             close_to("dh0", dh0f, dh0, NH, 1e-4);
    recur_ctx_free(ctx);
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
