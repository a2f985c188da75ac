/*
 * dev-calls.c: the per-call cost of the host-pointer model calls against the
 * device-resident ones (recur_buffer, recur_model_forward_dev), issue 11.
 * Not a timed test: run it by hand and copy the figures into
 * docs/performance.md.
 *
 *   recur-dev-calls [DEVICE [CELL [T N H [CALLS [ROUNDS]]]]]
 *
 * Defaults: opencl, lstm, config A of recur-bench (T 100, N 1, H 256, one
 * layer, inference), 50 calls a round, 7 rounds. A round times CALLS
 * forwards each way, alternating: host pointers (x copied in, y copied
 * back, a wait per call) and buffers (x and y stay on the device, one
 * recur_ctx_sync after the last call). Prints the medians in ms per call
 * and checks that both ways give the same bits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recur/recur.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int fail(recur_ctx *ctx, const char *what) {
    fprintf(stderr, "recur-dev-calls: %s: %s\n", what, ctx ? recur_ctx_error(ctx) : recur_last_error());
    return 1;
}

static int positive(const char *s, const char *what, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 1 << 20) {
        fprintf(stderr, "recur-dev-calls: %s '%s': expected 1..%d\n", what, s, 1 << 20);
        return 1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    const char *device = argc > 1 ? argv[1] : "opencl", *cell = argc > 2 ? argv[2] : "lstm";
    int T = 100, N = 1, H = 256, calls = 50, rounds = 7;
    if ((argc > 3 && positive(argv[3], "T", &T)) || (argc > 4 && positive(argv[4], "N", &N)) ||
        (argc > 5 && positive(argv[5], "H", &H)) || (argc > 6 && positive(argv[6], "CALLS", &calls)) ||
        (argc > 7 && positive(argv[7], "ROUNDS", &rounds)))
        return 2;
    if (rounds > 64) rounds = 64;
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, device) != RECUR_OK) return fail(NULL, device);
    recur_model_desc md = {.cell = cell, .input_size = H, .hidden_size = H, .num_layers = 1};
    recur_model *m;
    if (recur_model_create(ctx, &md, &m) != RECUR_OK) return fail(ctx, cell);
    size_t np = recur_model_param_count(m), nx = (size_t)T * N * H;
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        recur_model_param_info(m, i, &info);
        float *w = malloc(info.count * sizeof *w);
        if (!w) return fail(ctx, "out of memory");
        for (size_t k = 0; k < info.count; k++) w[k] = (float)((k * 2654435761u % 1000) / 1000.0 - 0.5) * 0.1f;
        recur_status st = recur_model_param_set(m, info.name, w, info.count);
        free(w);
        if (st != RECUR_OK) return fail(ctx, info.name);
    }
    float *x = malloc(nx * sizeof *x), *y = malloc(nx * sizeof *y), *y2 = malloc(nx * sizeof *y2);
    if (!x || !y || !y2) return fail(ctx, "out of memory");
    for (size_t k = 0; k < nx; k++) x[k] = (float)((k * 40503u % 997) / 997.0 - 0.5);
    recur_buffer *bx, *by;
    if (recur_buffer_create(ctx, nx, &bx) != RECUR_OK || recur_buffer_create(ctx, nx, &by) != RECUR_OK ||
        recur_buffer_write(bx, 0, x, nx) != RECUR_OK)
        return fail(ctx, "buffers");
    recur_model_io io = {.T = T, .N = N, .x = x, .y = y};
    recur_model_io_dev dio = {.T = T, .N = N, .x = bx, .y = by};
    double host[64], dev[64];
    /* one call each to warm up (programs, workspace) */
    if (recur_model_forward(m, RECUR_MODE_INFERENCE, &io) != RECUR_OK ||
        recur_model_forward_dev(m, RECUR_MODE_INFERENCE, &dio) != RECUR_OK || recur_ctx_sync(ctx) != RECUR_OK)
        return fail(ctx, "forward");
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ms();
        for (int c = 0; c < calls; c++)
            if (recur_model_forward(m, RECUR_MODE_INFERENCE, &io) != RECUR_OK) return fail(ctx, "forward");
        double t1 = now_ms();
        for (int c = 0; c < calls; c++)
            if (recur_model_forward_dev(m, RECUR_MODE_INFERENCE, &dio) != RECUR_OK) return fail(ctx, "forward_dev");
        if (recur_ctx_sync(ctx) != RECUR_OK) return fail(ctx, "sync");
        double t2 = now_ms();
        host[r] = (t1 - t0) / calls;
        dev[r] = (t2 - t1) / calls;
    }
    if (recur_buffer_read(by, 0, y2, nx) != RECUR_OK) return fail(ctx, "read");
    int same = !memcmp(y, y2, nx * sizeof *y);
    qsort(host, (size_t)rounds, sizeof *host, cmp);
    qsort(dev, (size_t)rounds, sizeof *dev, cmp);
    recur_device_info info;
    recur_ctx_device(ctx, &info);
    printf("device %s (%s); %s T %d N %d H %d, inference, %d calls x %d rounds\n", info.selector, info.name, cell, T,
           N, H, calls, rounds);
    printf("host pointers: %.3f ms a call (median; %.3f..%.3f)\n", host[rounds / 2], host[0], host[rounds - 1]);
    printf("buffers:       %.3f ms a call (median; %.3f..%.3f)\n", dev[rounds / 2], dev[0], dev[rounds - 1]);
    printf("difference:    %.3f ms a call; y %s\n", host[rounds / 2] - dev[rounds / 2],
           same ? "the same bits" : "DIFFERS");
    free(x), free(y), free(y2);
    recur_ctx_free(ctx);
    return same ? 0 : 1;
}
