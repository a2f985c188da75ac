/*
 * device.c: data that stays on the device (recur_buffer). A long sequence
 * runs in chunks, the final states of one chunk starting the next, with
 * every input, output and state in device buffers: the calls are queued
 * without waiting, and the program waits once, to read the outputs. The
 * same chunks through the host-pointer calls must give the same bits.
 *
 *   RECUR_DEVICE=opencl ./device-example     (any device; unset: the default)
 *
 * Exit 0 when both ways agree, 1 on an error or a difference, 77 when
 * RECUR_DEVICE names a device this machine lacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recur/recur.h"

enum { I = 8, H = 16, T = 10, N = 2, CHUNKS = 5 };

static int check(recur_ctx *ctx, recur_status st, const char *what) {
    if (st != RECUR_OK) fprintf(stderr, "%s: %s\n", what, ctx ? recur_ctx_error(ctx) : recur_last_error());
    return st != RECUR_OK;
}

int main(void) {
    recur_ctx *ctx;
    recur_status cst = recur_ctx_create(&ctx, NULL);
    if (cst == RECUR_ERR_DEVICE || cst == RECUR_ERR_UNSUPPORTED) {
        fprintf(stderr, "no such device here: %s\n", recur_last_error());
        return 77; /* meson's "skipped" */
    }
    if (check(NULL, cst, "recur_ctx_create")) return 1;
    recur_model_desc d = {.cell = "lstm", .input_size = I, .hidden_size = H, .num_layers = 1};
    recur_model *m;
    if (check(ctx, recur_model_create(ctx, &d, &m), "recur_model_create")) return 1;
    for (size_t i = 0; i < recur_model_param_count(m); i++) { /* small fixed weights */
        recur_param_info p;
        recur_model_param_info(m, i, &p);
        float *w = malloc(p.count * sizeof *w);
        for (size_t k = 0; k < p.count; k++) w[k] = (float)((k * 37 + i * 11) % 19) / 19.0f - 0.5f;
        recur_status st = recur_model_param_set(m, p.name, w, p.count);
        free(w);
        if (check(ctx, st, p.name)) return 1;
    }
    static float x[CHUNKS][T * N * I], y_host[CHUNKS][T * N * H], y_dev[CHUNKS][T * N * H];
    for (int c = 0; c < CHUNKS; c++)
        for (int k = 0; k < T * N * I; k++) x[c][k] = (float)((c * 131 + k * 7) % 23) / 23.0f - 0.5f;

    /* on the device: x and y per chunk, the states in two buffers that take turns */
    recur_buffer *bx[CHUNKS], *by[CHUNKS], *h[2], *cs[2];
    for (int c = 0; c < CHUNKS; c++)
        if (check(ctx, recur_buffer_create(ctx, T * N * I, &bx[c]), "buffer") ||
            check(ctx, recur_buffer_create(ctx, T * N * H, &by[c]), "buffer") ||
            check(ctx, recur_buffer_write(bx[c], 0, x[c], T * N * I), "write"))
            return 1;
    for (int k = 0; k < 2; k++)
        if (check(ctx, recur_buffer_create(ctx, N * H, &h[k]), "buffer") ||
            check(ctx, recur_buffer_create(ctx, N * H, &cs[k]), "buffer"))
            return 1;
    for (int c = 0; c < CHUNKS; c++) {
        int in = c % 2, out = 1 - in; /* chunk 0 starts from zeros */
        recur_model_io_dev io = {.T = T, .N = N, .x = bx[c], .y = by[c], .h0 = c ? h[in] : NULL,
                                 .c0 = c ? cs[in] : NULL, .hT = h[out], .cT = cs[out]};
        if (check(ctx, recur_model_forward_dev(m, RECUR_MODE_INFERENCE, &io), "recur_model_forward_dev")) return 1;
    }
    for (int c = 0; c < CHUNKS; c++) /* the first read waits for all of it */
        if (check(ctx, recur_buffer_read(by[c], 0, y_dev[c], T * N * H), "read")) return 1;

    /* the same through host pointers */
    static float hs[N * H], csh[N * H];
    for (int c = 0; c < CHUNKS; c++) {
        recur_model_io io = {.T = T, .N = N, .x = x[c], .y = y_host[c], .h0 = c ? hs : NULL, .c0 = c ? csh : NULL,
                             .hT = hs, .cT = csh};
        if (check(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io), "recur_model_forward")) return 1;
    }
    int same = !memcmp(y_host, y_dev, sizeof y_dev);
    recur_device_info dev;
    recur_ctx_device(ctx, &dev);
    printf("%d chunks of %d steps on %s: y[last] = %f; host pointers and buffers %s\n", CHUNKS, T, dev.selector,
           y_dev[CHUNKS - 1][T * N * H - 1], same ? "agree bit for bit" : "DIFFER");
    recur_ctx_free(ctx); /* frees the buffers and the model */
    return same ? 0 : 1;
}
