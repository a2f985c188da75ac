/*
 * test-net-dev.c: the net calls on device buffers (recur_net_forward_dev,
 * recur_net_backward_dev, recur_buffer_write_ids) on the device
 * RECUR_TEST_DEVICE names (default cpu; skipped when it has none).
 *
 *   same_bits: two nets made alike, one trained through host pointers and
 *              one through buffers, two steps each (the state carried in
 *              place from the first to the second), agree bit for bit:
 *              loss, count, logits, hT, cT, dh0, dc0, every gradient, the
 *              gradient norm and every parameter after the optimizer's step;
 *              for embedding, one-hot and vector input, every head, both
 *              losses, lengths, bidirectional stacks
 *   errors:    bad buffers and ids refused, each naming the field
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "recur/recur-train.h"

#define OK TEST_OK

static void expect(recur_ctx *ctx, recur_status got, recur_status want, const char *needle, const char *what) {
    const char *msg = ctx ? recur_ctx_error(ctx) : recur_last_error();
    cr_assert_eq(got, want, "%s: status %d (%s), expected %d; message: %s", what, (int)got, recur_status_str(got),
                 (int)want, msg);
    cr_assert(strstr(msg, needle), "%s: message '%s' does not name '%s'", what, msg, needle);
}

static recur_buffer *buf(recur_ctx *ctx, size_t n) {
    recur_buffer *b;
    OK(ctx, recur_buffer_create(ctx, n, &b));
    return b;
}
static recur_buffer *buf_of(recur_ctx *ctx, const float *v, size_t n) {
    recur_buffer *b = buf(ctx, n);
    OK(ctx, recur_buffer_write(b, 0, v, n));
    return b;
}
static recur_buffer *ids_of(recur_ctx *ctx, const int32_t *v, size_t n) {
    recur_buffer *b = buf(ctx, n);
    OK(ctx, recur_buffer_write_ids(b, 0, v, n));
    return b;
}
static float *read_all(recur_ctx *ctx, recur_buffer *b, size_t n) {
    float *v = test_floats(n);
    OK(ctx, recur_buffer_read(b, 0, v, n));
    return v;
}
static void same(const char *what, int step, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        cr_assert(!memcmp(&a[i], &b[i], sizeof *a), "step %d: %s[%zu]: host pointers %.9g, buffers %.9g", step, what,
                  i, (double)a[i], (double)b[i]);
}

struct dcase {
    const char *cell;
    recur_input input;
    recur_head head;
    recur_loss loss;
    recur_direction dir;
    int layers, lengths;
};

/* Two steps of one case both ways; everything compared bit for bit. */
static void same_bits(const struct dcase *c) {
    recur_ctx *ctx = test_open_ctx();
    enum { T = 6, N = 4, E = 5, H = 4, V = 7 };
    int K = c->head == RECUR_HEAD_NONE ? 0 : 3;
    int I = c->input == RECUR_INPUT_ONEHOT ? V : E;
    recur_net_desc d = {.model = {.cell = c->cell, .input_size = I, .hidden_size = H, .num_layers = c->layers,
                                  .direction = c->dir},
                        .input = c->input, .vocab = c->input == RECUR_INPUT_VECTOR ? 0 : V, .head = c->head,
                        .output_size = K, .loss = c->loss};
    recur_net *net[2];
    recur_optim *opt[2];
    recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f);
    od.clip_norm = 0.5f;
    for (int k = 0; k < 2; k++) {
        OK(ctx, recur_net_create(ctx, &d, &net[k]));
        OK(ctx, recur_net_init(net[k], RECUR_INIT_UNIFORM, 11));
        OK(ctx, recur_optim_create(&net[k], 1, &od, &opt[k]));
    }
    int two = !strcmp(c->cell, "lstm");
    int D = c->dir == RECUR_DIR_BIDI_CONCAT || c->dir == RECUR_DIR_BIDI_SUM ? 2 : 1;
    size_t TN = (size_t)T * N, st = (size_t)c->layers * D * N * H;
    size_t R = c->head == RECUR_HEAD_ALL ? TN : c->head == RECUR_HEAD_LAST ? (size_t)N : 0;
    int len[N] = {6, 3, 5, 1};
    const int *lengths = c->lengths ? len : NULL;
    test_rng rng = {42};
    for (int step = 0; step < 2; step++) {
        int32_t tok[T * N], tgt[T * N];
        float *x = test_floats(TN * I), *vals = test_floats(R * K + 1), *h0 = test_floats(st), *c0 = test_floats(st);
        float *dhT = test_floats(st), *dcT = test_floats(st);
        for (size_t i = 0; i < TN; i++) {
            tok[i] = (int32_t)(test_uniform(&rng, 0, V - 0.01));
            tgt[i] = (int32_t)test_uniform(&rng, 0, K + 0.99) - 1; /* some -1: not counted */
            int t = (int)(i / N), n = (int)(i % N);
            if (lengths && t >= lengths[n] && c->head == RECUR_HEAD_ALL) tgt[i] = -1; /* padded */
        }
        for (size_t i = 0; i < TN * I; i++) x[i] = (float)test_uniform(&rng, -1, 1);
        for (size_t i = 0; i < R * K; i++) vals[i] = (float)test_uniform(&rng, -1, 1);
        for (size_t i = 0; i < st; i++) {
            h0[i] = (float)test_uniform(&rng, -0.5, 0.5), c0[i] = (float)test_uniform(&rng, -0.5, 0.5);
            dhT[i] = (float)test_uniform(&rng, -0.1, 0.1), dcT[i] = (float)test_uniform(&rng, -0.1, 0.1);
        }
        int tokens = c->input != RECUR_INPUT_VECTOR, xent = K && c->loss == RECUR_LOSS_XENT, mse = K && !xent;
        /* host pointers: the state carried in place from step 0 (hT = h0) */
        static float hs[1024], cs[1024];
        cr_assert(st <= 1024);
        if (step == 0) memcpy(hs, h0, st * sizeof *hs), memcpy(cs, c0, st * sizeof *cs);
        float *logits_h = test_floats(R * K + 1), *dh0_h = test_floats(st), *dc0_h = test_floats(st);
        recur_net_batch hb = {.T = T, .N = N, .tokens = tokens ? tok : NULL, .x = tokens ? NULL : x,
                              .lengths = lengths, .targets = xent ? tgt : NULL, .values = mse ? vals : NULL,
                              .h0 = hs, .c0 = two ? cs : NULL, .hT = hs, .cT = two ? cs : NULL,
                              .logits = K ? logits_h : NULL};
        double loss_h = 0, loss_d = 0, norm_h = 0, norm_d = 0;
        long long count_h = 0, count_d = -1;
        OK(ctx, recur_net_forward(net[0], RECUR_MODE_TRAINING, &hb, NULL, &count_h));
        recur_net_grad hg = {.dhT = dhT, .dcT = two ? dcT : NULL, .dh0 = dh0_h, .dc0 = two ? dc0_h : NULL};
        OK(ctx, recur_net_backward(net[0], &hb, &hg, RECUR_GRAD_OVERWRITE));
        /* buffers: the same, carried in place on the device */
        static recur_buffer *bh, *bc;
        if (step == 0) bh = buf_of(ctx, h0, st), bc = buf_of(ctx, c0, st);
        recur_buffer *btok = tokens ? ids_of(ctx, tok, TN) : NULL, *bx = tokens ? NULL : buf_of(ctx, x, TN * I);
        recur_buffer *btgt = xent ? ids_of(ctx, tgt, R) : NULL, *bvals = mse ? buf_of(ctx, vals, R * K) : NULL;
        recur_buffer *blog = K ? buf(ctx, R * K) : NULL, *bdhT = buf_of(ctx, dhT, st), *bdcT = buf_of(ctx, dcT, st);
        recur_buffer *bdh0 = buf(ctx, st), *bdc0 = buf(ctx, st);
        recur_net_batch_dev db = {.T = T, .N = N, .lengths = lengths, .tokens = btok, .x = bx, .targets = btgt,
                                  .values = bvals, .h0 = bh, .c0 = two ? bc : NULL, .hT = bh,
                                  .cT = two ? bc : NULL, .logits = blog};
        OK(ctx, recur_net_forward_dev(net[1], RECUR_MODE_TRAINING, &db, &count_d));
        recur_net_grad_dev dg = {.dhT = bdhT, .dcT = two ? bdcT : NULL, .dh0 = bdh0, .dc0 = two ? bdc0 : NULL};
        OK(ctx, recur_net_backward_dev(net[1], &db, &dg, RECUR_GRAD_OVERWRITE));
        cr_assert_eq(count_d, count_h, "step %d: count %lld with buffers, %lld with host pointers", step, count_d,
                     count_h);
        if (K) {
            OK(ctx, recur_optim_step(opt[0], &norm_h));
            OK(ctx, recur_optim_step(opt[1], &norm_d));
            OK(ctx, recur_net_loss(net[0], &loss_h, NULL));
            OK(ctx, recur_net_loss(net[1], &loss_d, NULL));
            cr_assert(!memcmp(&loss_h, &loss_d, sizeof loss_h), "step %d: loss %.17g and %.17g", step, loss_h,
                      loss_d);
            cr_assert(!memcmp(&norm_h, &norm_d, sizeof norm_h), "step %d: norm %.17g and %.17g", step, norm_h,
                      norm_d);
            float *lg = read_all(ctx, blog, R * K);
            same("logits", step, logits_h, lg, R * K);
            free(lg);
        }
        float *v = read_all(ctx, bh, st);
        same("hT", step, hs, v, st);
        free(v);
        v = read_all(ctx, bdh0, st);
        same("dh0", step, dh0_h, v, st);
        free(v);
        if (two) {
            v = read_all(ctx, bc, st);
            same("cT", step, cs, v, st);
            free(v);
            v = read_all(ctx, bdc0, st);
            same("dc0", step, dc0_h, v, st);
            free(v);
        }
        for (size_t i = 0; i < recur_net_param_count(net[0]); i++) {
            recur_param_info p;
            OK(ctx, recur_net_param_info(net[0], i, &p));
            float *a = test_floats(p.count), *b = test_floats(p.count);
            OK(ctx, recur_net_grad_get(net[0], p.name, a, p.count));
            OK(ctx, recur_net_grad_get(net[1], p.name, b, p.count));
            same(p.name, step, a, b, p.count); /* the gradient */
            OK(ctx, recur_net_param_get(net[0], p.name, a, p.count));
            OK(ctx, recur_net_param_get(net[1], p.name, b, p.count));
            same(p.name, step, a, b, p.count); /* after the update */
            free(a), free(b);
        }
        recur_buffer *all[] = {btok, bx, btgt, bvals, blog, bdhT, bdcT, bdh0, bdc0};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) recur_buffer_free(all[i]);
        free(x), free(vals), free(h0), free(c0), free(dhT), free(dcT), free(logits_h), free(dh0_h), free(dc0_h);
    }
    recur_ctx_free(ctx); /* the nets, optimizers and the state buffers */
}

Test(same_bits, lstm_embedding_all_xent_bidi_lengths) {
    same_bits(&(struct dcase){"lstm", RECUR_INPUT_EMBEDDING, RECUR_HEAD_ALL, RECUR_LOSS_XENT, RECUR_DIR_BIDI_CONCAT,
                              2, 1});
}
Test(same_bits, lstm_embedding_all_xent_dense) {
    same_bits(&(struct dcase){"lstm", RECUR_INPUT_EMBEDDING, RECUR_HEAD_ALL, RECUR_LOSS_XENT, RECUR_DIR_FORWARD, 1, 0});
}
Test(same_bits, gru_vector_last_mse_lengths) {
    same_bits(&(struct dcase){"gru", RECUR_INPUT_VECTOR, RECUR_HEAD_LAST, RECUR_LOSS_MSE, RECUR_DIR_BIDI_SUM, 1, 1});
}
Test(same_bits, rnn_vector_all_mse_lengths) {
    same_bits(&(struct dcase){"rnn", RECUR_INPUT_VECTOR, RECUR_HEAD_ALL, RECUR_LOSS_MSE, RECUR_DIR_REVERSE, 2, 1});
}
Test(same_bits, lstm_onehot_last_xent) {
    same_bits(&(struct dcase){"lstm", RECUR_INPUT_ONEHOT, RECUR_HEAD_LAST, RECUR_LOSS_XENT, RECUR_DIR_FORWARD, 2, 1});
}
Test(same_bits, gru_embedding_encoder_no_head) {
    same_bits(&(struct dcase){"gru", RECUR_INPUT_EMBEDDING, RECUR_HEAD_NONE, RECUR_LOSS_XENT, RECUR_DIR_BIDI_CONCAT,
                              1, 1});
}

/* Bad buffers and ids: refused, the message naming the field; nothing runs. */
Test(errors, bad_buffers_are_named) {
    recur_ctx *ctx = test_open_ctx(), *other;
    cr_assert_eq(recur_ctx_create(&other, "cpu"), RECUR_OK, "%s", recur_last_error());
    enum { T = 3, N = 2, V = 5, H = 4, K = 3 };
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = 4, .hidden_size = H, .num_layers = 1},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = V, .head = RECUR_HEAD_ALL, .output_size = K};
    recur_net *net;
    OK(ctx, recur_net_create(ctx, &d, &net));
    OK(ctx, recur_net_init(net, RECUR_INIT_UNIFORM, 1));
    int32_t tok[T * N] = {0, 1, 2, 3, 4, 0}, tgt[T * N] = {1, 2, 0, -1, 2, 1};
    recur_buffer *btok = ids_of(ctx, tok, T * N), *btgt = ids_of(ctx, tgt, T * N), *small = buf(ctx, T * N - 1);
    recur_buffer *h = buf(ctx, N * H), *c = buf(ctx, N * H), *foreign, *big = buf(ctx, 64);
    float zeros[N * H] = {0};
    OK(ctx, recur_buffer_write(h, 0, zeros, N * H));
    OK(ctx, recur_buffer_write(c, 0, zeros, N * H));
    OK(other, recur_buffer_create(other, N * H, &foreign));
    recur_net_batch_dev good = {.T = T, .N = N, .tokens = btok, .targets = btgt, .h0 = h, .c0 = c, .hT = h, .cT = c};
    recur_net_batch_dev b;
    const char *fw = "recur_net_forward_dev";

    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, NULL, NULL), RECUR_ERR_NULL, "batch is NULL", fw);
    expect(NULL, recur_net_forward_dev(NULL, RECUR_MODE_TRAINING, &good, NULL), RECUR_ERR_NULL, "net is NULL", fw);
    b = good, b.tokens = NULL;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_NULL, "batch->tokens",
           "no tokens");
    b = good, b.tokens = small;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_BUFFER_SIZE, "batch->tokens",
           "tokens too small");
    b = good, b.targets = small;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_BUFFER_SIZE, "batch->targets",
           "targets too small");
    b = good, b.h0 = foreign;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "batch->h0",
           "another context's h0");
    b = good, b.cT = foreign;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "batch->cT",
           "another context's cT");
    b = good, b.logits = h;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_BUFFER_SIZE, "batch->logits",
           "logits too small");
    b = good, b.cT = h;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "two outputs",
           "hT and cT one buffer");
    b = good, b.x = big;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "batch->x",
           "x to a token net");
    /* ids: range-checked from the host copy, naming the position */
    int32_t bad[T * N] = {0, 1, 2, 5, 4, 0};
    recur_buffer *bbad = ids_of(ctx, bad, T * N);
    b = good, b.tokens = bbad;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "tokens[1][1] is 5",
           "token out of range");
    b = good, b.targets = bbad; /* 5 >= K */
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "targets[1][1] is 5",
           "target out of range");
    /* padded positions: the device reads them */
    int len[N] = {3, 1};
    b = good, b.lengths = len;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "targets[2][1] is 1",
           "a padded target that is not -1");
    int32_t tok_pad[T * N] = {0, 1, 2, -3, 4, 0}, tgt_pad[T * N] = {1, 2, 0, -1, 2, -1};
    recur_buffer *btp = ids_of(ctx, tok_pad, T * N), *bgp = ids_of(ctx, tgt_pad, T * N);
    b = good, b.lengths = len, b.tokens = btp, b.targets = bgp;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "tokens[1][1] is -3",
           "a padded token outside the vocabulary");
    /* ids the buffer cannot vouch for: floats, overwritten, a call's output */
    float f[T * N] = {0};
    recur_buffer *bf = buf_of(ctx, f, T * N);
    b = good, b.tokens = bf;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "recur_buffer_write_ids",
           "floats as tokens");
    OK(ctx, recur_buffer_write_ids(bf, 0, tok, T * N));
    OK(ctx, recur_net_forward_dev(net, RECUR_MODE_INFERENCE, &b, NULL));
    OK(ctx, recur_buffer_write(bf, 2, f, 1)); /* one float over the ids */
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "batch->tokens",
           "ids overwritten by a float");
    OK(ctx, recur_buffer_write_ids(bf, 0, tok, 3));
    OK(ctx, recur_buffer_write_ids(bf, 4, tok + 4, 2)); /* apart from the span: it starts again */
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "batch->tokens",
           "a gap in the ids");
    OK(ctx, recur_buffer_write_ids(bf, 0, tok, 4)); /* touches [4, 6): the union covers it all */
    OK(ctx, recur_net_forward_dev(net, RECUR_MODE_INFERENCE, &b, NULL));
    recur_buffer *lg = buf(ctx, T * N * K);
    OK(ctx, recur_buffer_write_ids(lg, 0, tok, T * N));
    b = good, b.logits = lg;
    OK(ctx, recur_net_forward_dev(net, RECUR_MODE_INFERENCE, &b, NULL)); /* lg written: its ids forgotten */
    b = good, b.tokens = lg;
    expect(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL), RECUR_ERR_ARG, "batch->tokens",
           "ids of a buffer a call wrote");
    /* backward's buffers */
    OK(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &good, NULL));
    const char *bw = "recur_net_backward_dev";
    expect(ctx, recur_net_backward_dev(net, NULL, NULL, RECUR_GRAD_OVERWRITE), RECUR_ERR_NULL, "batch is NULL", bw);
    recur_net_grad_dev g = {.dh0 = small};
    expect(ctx, recur_net_backward_dev(net, &good, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_BUFFER_SIZE, "grad->dh0",
           "dh0 too small");
    g = (recur_net_grad_dev){.dhT = foreign};
    expect(ctx, recur_net_backward_dev(net, &good, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_ARG, "grad->dhT",
           "another context's dhT");
    g = (recur_net_grad_dev){.dh0 = h, .dc0 = h};
    expect(ctx, recur_net_backward_dev(net, &good, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_ARG, "two outputs",
           "dh0 and dc0 one buffer");
    b = good, b.T = 2;
    expect(ctx, recur_net_backward_dev(net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE, "T 2", "another shape");
    OK(ctx, recur_net_backward_dev(net, &good, NULL, RECUR_GRAD_OVERWRITE));
    /* write_ids's own checks */
    cr_assert_eq(recur_buffer_write_ids(btok, 1, tok, T * N), RECUR_ERR_BUFFER_SIZE);
    cr_assert_eq(recur_buffer_write_ids(btok, 0, NULL, 1), RECUR_ERR_NULL);
    cr_assert_eq(recur_buffer_write_ids(NULL, 0, tok, 1), RECUR_ERR_NULL);
    OK(ctx, recur_ctx_sync(ctx));
    recur_ctx_free(other);
    recur_ctx_free(ctx);
}
