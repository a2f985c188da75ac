/*
 * device-train.c: training a net with its data on the device (recur_buffer,
 * recur-train.h's _dev calls). A character-level language model reads a
 * text in chunks (truncated BPTT): each step writes its tokens and targets
 * with recur_buffer_write_ids, carries the LSTM's state from chunk to chunk
 * in place in two device buffers (hT = h0), and waits once, in the
 * optimizer's step, which also brings the loss back. The same steps through
 * the host-pointer calls must give the same bits.
 *
 *   RECUR_DEVICE=opencl ./device-train-example     (any device; unset: the default)
 *
 * Exit 0 when both ways agree and the loss falls, 1 on an error or a
 * difference, 77 when RECUR_DEVICE names a device this machine lacks.
 */
#include <stdio.h>
#include <string.h>

#include "recur/recur-train.h"

enum { V = 27, E = 8, H = 32, T = 12, N = 4, STEPS = 60 };
static const char text[] = "the quick brown fox jumps over the lazy dog and the dog sleeps in the sun while the fox "
                           "runs over the hills and far away to the river where the fish swim in the cold water ";

static int check(recur_ctx *ctx, recur_status st, const char *what) {
    if (st != RECUR_OK) fprintf(stderr, "%s: %s\n", what, ctx ? recur_ctx_error(ctx) : recur_last_error());
    return st != RECUR_OK;
}

static int32_t id(char c) { return c == ' ' ? 0 : c - 'a' + 1; }

/* Step k's chunk: column b reads the text from b * cl + k * T (wrapping). */
static void chunk(int k, int32_t *tok, int32_t *tgt) {
    int n = (int)strlen(text), cl = n / N;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < N; b++) {
            int p = b * cl + (k * T + t) % (cl - 1);
            tok[t * N + b] = id(text[p]);
            tgt[t * N + b] = id(text[p + 1]);
        }
}

/* STEPS training steps; device: through buffers, else host pointers. Losses into loss[]. */
static int train(recur_ctx *ctx, int device, double *loss, float *w, size_t nw) {
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = E, .hidden_size = H, .num_layers = 1},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = V, .head = RECUR_HEAD_ALL, .output_size = V};
    recur_net *net;
    recur_optim *opt;
    recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f);
    od.clip_norm = 1.0f;
    if (check(ctx, recur_net_create(ctx, &d, &net), "recur_net_create") ||
        check(ctx, recur_net_init(net, RECUR_INIT_UNIFORM, 1), "recur_net_init") ||
        check(ctx, recur_optim_create(&net, 1, &od, &opt), "recur_optim_create"))
        return 1;
    static float h[N * H], c[N * H]; /* the host-pointer way's state, carried in place; zeros at first */
    memset(h, 0, sizeof h), memset(c, 0, sizeof c);
    recur_buffer *btok, *btgt, *bh, *bc;
    if (check(ctx, recur_buffer_create(ctx, T * N, &btok), "buffer") ||
        check(ctx, recur_buffer_create(ctx, T * N, &btgt), "buffer") ||
        check(ctx, recur_buffer_create(ctx, N * H, &bh), "buffer") ||
        check(ctx, recur_buffer_create(ctx, N * H, &bc), "buffer") ||
        check(ctx, recur_buffer_write(bh, 0, h, N * H), "write") ||
        check(ctx, recur_buffer_write(bc, 0, c, N * H), "write"))
        return 1;
    for (int k = 0; k < STEPS; k++) {
        int32_t tok[T * N], tgt[T * N];
        chunk(k, tok, tgt);
        recur_status st;
        if (device) {
            recur_net_batch_dev b = {.T = T, .N = N, .tokens = btok, .targets = btgt, .h0 = bh, .c0 = bc,
                                     .hT = bh, .cT = bc};
            st = recur_buffer_write_ids(btok, 0, tok, T * N); /* checked against the vocabulary at the call */
            if (st == RECUR_OK) st = recur_buffer_write_ids(btgt, 0, tgt, T * N);
            if (st == RECUR_OK) st = recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL);
            if (st == RECUR_OK) st = recur_net_backward_dev(net, &b, NULL, RECUR_GRAD_OVERWRITE);
        } else {
            recur_net_batch b = {.T = T, .N = N, .tokens = tok, .targets = tgt, .h0 = h, .c0 = c, .hT = h, .cT = c};
            st = recur_net_forward(net, RECUR_MODE_TRAINING, &b, NULL, NULL); /* reads hT, cT back: waits */
            if (st == RECUR_OK) st = recur_net_backward(net, &b, NULL, RECUR_GRAD_OVERWRITE);
        }
        if (st == RECUR_OK) st = recur_optim_step(opt, NULL); /* the step's one wait: norm and loss */
        if (st == RECUR_OK) st = recur_net_loss(net, &loss[k], NULL);
        if (check(ctx, st, device ? "a step on buffers" : "a step on host pointers")) return 1;
    }
    if (check(ctx, recur_net_param_get(net, "rnn.weight_hh_l0", w, nw), "recur_net_param_get")) return 1;
    recur_optim_free(opt);
    recur_net_free(net);
    recur_buffer_free(btok), recur_buffer_free(btgt), recur_buffer_free(bh), recur_buffer_free(bc);
    return 0;
}

int main(void) {
    recur_ctx *ctx;
    recur_status cst = recur_ctx_create(&ctx, NULL);
    if (cst == RECUR_ERR_DEVICE || cst == RECUR_ERR_UNSUPPORTED) {
        fprintf(stderr, "no such device here: %s\n", recur_last_error());
        return 77; /* meson's "skipped" */
    }
    if (check(NULL, cst, "recur_ctx_create")) return 1;
    static double loss[2][STEPS];
    static float w[2][4 * H * H];
    if (train(ctx, 1, loss[1], w[1], 4 * H * H) || train(ctx, 0, loss[0], w[0], 4 * H * H)) return 1;
    int same = !memcmp(loss[0], loss[1], sizeof loss[0]) && !memcmp(w[0], w[1], sizeof w[0]);
    int falls = loss[1][STEPS - 1] < 0.8 * loss[1][0];
    recur_device_info dev;
    recur_ctx_device(ctx, &dev);
    printf("%d steps on %s: loss %.4f -> %.4f; host pointers and buffers %s\n", STEPS, dev.selector, loss[1][0],
           loss[1][STEPS - 1], same ? "agree bit for bit" : "DIFFER");
    recur_ctx_free(ctx);
    return same && falls ? 0 : 1;
}
