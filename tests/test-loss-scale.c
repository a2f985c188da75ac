/*
 * test-loss-scale.c: dynamic loss scaling (recur_optim_set_loss_scale) on
 * the device RECUR_TEST_DEVICE names (default cpu; skipped when it has none).
 *
 *   exact:     a power-of-two scale changes no bit: nets trained in f32 and
 *              in bf16 with and without it (the scale growing on the way)
 *              end with the same parameters, losses and norms, and the
 *              gradients read between are the scale times the unscaled ones;
 *              an encoder fed a scaled decoder's dh0 too
 *   underflow: in f16 small gate gradients vanish as operands (below
 *              2^-25), so the weight gradients of a small dhT are far from
 *              those of a dhT 2^16 times larger (divided by 2^16); scaled
 *              by 2^16 they are exactly the larger one's, and the step
 *              divides by the scale
 *   overflow:  in f16 a scale too large makes the gradients Inf: the step
 *              is skipped (no weight changes, not counted), the scale
 *              halved, until a step goes through
 *   growth:    the scale doubles after growth_interval good steps
 *   state:     saved and restored with the optimizer; bad values in a file
 *              and bad arguments named; a scale changed between a net's
 *              forward and the step refused, nothing changed
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "recur/recur-train.h"

#define OK TEST_OK

enum { T = 6, N = 4, V = 7, K = 5, E = 3, H = 8 };

struct run {
    recur_ctx *ctx;
    recur_net *net;
    recur_optim *opt;
    int32_t tokens[T * N], targets[T * N];
    int lengths[N];
};

/* A net (LSTM, embedding, every-step head, cross-entropy) from `seed`, in
 * precision prec, with Adam (clipping at `clip`, 0: none); data from the seed. */
static void run_make(struct run *r, recur_dtype prec, uint64_t seed, float clip) {
    memset(r, 0, sizeof *r);
    r->ctx = test_open_ctx();
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = E, .hidden_size = H, .num_layers = 2},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = V, .head = RECUR_HEAD_ALL, .output_size = K};
    OK(r->ctx, recur_net_create(r->ctx, &d, &r->net));
    OK(r->ctx, recur_net_init(r->net, RECUR_INIT_UNIFORM, seed));
    OK(r->ctx, recur_model_set_precision(recur_net_model(r->net), prec));
    recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f);
    od.clip_norm = clip;
    od.weight_decay = 0.01f;
    OK(r->ctx, recur_optim_create(&r->net, 1, &od, &r->opt));
    test_rng g = {seed};
    for (int i = 0; i < T * N; i++) {
        r->tokens[i] = (int32_t)test_uniform(&g, 0, V - 0.001);
        r->targets[i] = (int32_t)test_uniform(&g, 0, K - 0.001);
    }
    const int len[N] = {6, 3, 5, 1};
    memcpy(r->lengths, len, sizeof len);
}

static void run_free(struct run *r) { recur_ctx_free(r->ctx); }

static recur_net_batch batch(struct run *r) {
    return (recur_net_batch){.T = T, .N = N, .tokens = r->tokens, .lengths = r->lengths, .targets = r->targets};
}

/* forward and backward; the loss */
static double pass(struct run *r) {
    recur_net_batch b = batch(r);
    double loss = 0;
    OK(r->ctx, recur_net_forward(r->net, RECUR_MODE_TRAINING, &b, &loss, NULL));
    OK(r->ctx, recur_net_backward(r->net, &b, NULL, RECUR_GRAD_OVERWRITE));
    return loss;
}

/* Every parameter (or gradient) of the net, concatenated; *n their count. */
static float *all_of(struct run *r, int grads, size_t *n) {
    size_t total = 0, count = recur_net_param_count(r->net);
    for (size_t i = 0; i < count; i++) {
        recur_param_info pi;
        OK(r->ctx, recur_net_param_info(r->net, i, &pi));
        total += pi.count;
    }
    float *v = test_floats(total);
    for (size_t i = 0, at = 0; i < count; i++) {
        recur_param_info pi;
        OK(r->ctx, recur_net_param_info(r->net, i, &pi));
        if (grads) OK(r->ctx, recur_net_grad_get(r->net, pi.name, v + at, pi.count));
        else OK(r->ctx, recur_net_param_get(r->net, pi.name, v + at, pi.count));
        at += pi.count;
    }
    *n = total;
    return v;
}

/* A scaled run and an unscaled one, step for step: the same bits. */
static void same_bits(recur_dtype prec, float clip) {
    struct run a, b;
    run_make(&a, prec, 5, clip);
    run_make(&b, prec, 5, clip);
    OK(b.ctx, recur_optim_set_loss_scale(b.opt, 1024.0, 2));
    cr_assert_eq(recur_optim_loss_scale(a.opt), 1.0);
    cr_assert_eq(recur_optim_loss_scale(b.opt), 1024.0);
    for (int s = 0; s < 5; s++) {
        double S = recur_optim_loss_scale(b.opt);
        double la = pass(&a), lb = pass(&b);
        cr_assert_eq(la, lb, "%s step %d: loss %.17g scaled, %.17g not", recur_dtype_name(prec), s, lb, la);
        size_t n;
        float *ga = all_of(&a, 1, &n), *gb = all_of(&b, 1, &n);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq((double)gb[i], S * ga[i], "%s step %d: gradient %zu is %.9g at scale %g, %.9g unscaled",
                         recur_dtype_name(prec), s, i, gb[i], S, ga[i]);
        free(ga), free(gb);
        double na = 0, nb = 0;
        OK(a.ctx, recur_optim_step(a.opt, &na));
        OK(b.ctx, recur_optim_step(b.opt, &nb));
        cr_assert_eq(na, nb, "%s step %d: norm %.17g scaled, %.17g not", recur_dtype_name(prec), s, nb, na);
    }
    /* 5 good steps at growth interval 2: doubled twice */
    cr_assert_eq(recur_optim_loss_scale(b.opt), 4096.0);
    cr_assert_eq(recur_optim_steps(b.opt), 5);
    cr_assert_eq(recur_optim_skipped(b.opt), 0);
    size_t n;
    float *pa = all_of(&a, 0, &n), *pb = all_of(&b, 0, &n);
    cr_assert(!memcmp(pa, pb, n * sizeof *pa), "%s: the parameters differ after 5 steps", recur_dtype_name(prec));
    free(pa), free(pb);
    run_free(&a), run_free(&b);
}

Test(exact, f32_scaled_has_the_unscaled_bits) { same_bits(RECUR_DTYPE_F32, 0.0f); }
Test(exact, f32_scaled_and_clipped_has_the_unscaled_bits) { same_bits(RECUR_DTYPE_F32, 0.5f); }
Test(exact, bf16_scaled_has_the_unscaled_bits) { same_bits(RECUR_DTYPE_BF16, 0.5f); }

/* An encoder (no head) whose final states start a decoder: the decoder's
 * dh0/dc0 come back scaled and go into the encoder's backward as they are;
 * both nets' parameters after a step equal the unscaled run's. */
Test(exact, encoder_takes_the_scaled_dh0) {
    recur_net *enc[2], *dec[2];
    recur_optim *opt[2];
    recur_ctx *ctx = test_open_ctx();
    enum { L = 1, TS = 4 };
    recur_net_desc de = {.model = {.cell = "gru", .input_size = E, .hidden_size = H, .num_layers = L},
                         .input = RECUR_INPUT_EMBEDDING, .vocab = V, .head = RECUR_HEAD_NONE};
    recur_net_desc dd = de;
    dd.head = RECUR_HEAD_ALL;
    dd.output_size = K;
    int32_t src[TS * N], tgt_in[TS * N], tgt[TS * N];
    test_rng g = {17};
    for (int i = 0; i < TS * N; i++) {
        src[i] = (int32_t)test_uniform(&g, 0, V - 0.001);
        tgt_in[i] = (int32_t)test_uniform(&g, 0, V - 0.001);
        tgt[i] = (int32_t)test_uniform(&g, 0, K - 0.001);
    }
    float hT[L * N * H], dh0[L * N * H];
    for (int k = 0; k < 2; k++) {
        OK(ctx, recur_net_create(ctx, &de, &enc[k]));
        OK(ctx, recur_net_create(ctx, &dd, &dec[k]));
        OK(ctx, recur_net_init(enc[k], RECUR_INIT_UNIFORM, 3));
        OK(ctx, recur_net_init(dec[k], RECUR_INIT_UNIFORM, 4));
        recur_net *both[2] = {enc[k], dec[k]};
        recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_SGD, 0.5f);
        OK(ctx, recur_optim_create(both, 2, &od, &opt[k]));
        if (k) OK(ctx, recur_optim_set_loss_scale(opt[k], 65536.0, 2000));
        recur_net_batch be = {.T = TS, .N = N, .tokens = src, .hT = hT};
        OK(ctx, recur_net_forward(enc[k], RECUR_MODE_TRAINING, &be, NULL, NULL));
        recur_net_batch bd = {.T = TS, .N = N, .tokens = tgt_in, .targets = tgt, .h0 = hT};
        OK(ctx, recur_net_forward(dec[k], RECUR_MODE_TRAINING, &bd, NULL, NULL));
        recur_net_grad gd = {.dh0 = dh0};
        OK(ctx, recur_net_backward(dec[k], &bd, &gd, RECUR_GRAD_OVERWRITE));
        recur_net_grad ge = {.dhT = dh0};
        OK(ctx, recur_net_backward(enc[k], &be, &ge, RECUR_GRAD_OVERWRITE));
        OK(ctx, recur_optim_step(opt[k], NULL));
    }
    for (int which = 0; which < 2; which++) {
        recur_net *a = which ? dec[0] : enc[0], *b = which ? dec[1] : enc[1];
        for (size_t i = 0; i < recur_net_param_count(a); i++) {
            recur_param_info pi;
            OK(ctx, recur_net_param_info(a, i, &pi));
            float *va = test_floats(pi.count), *vb = test_floats(pi.count);
            OK(ctx, recur_net_param_get(a, pi.name, va, pi.count));
            OK(ctx, recur_net_param_get(b, pi.name, vb, pi.count));
            cr_assert(!memcmp(va, vb, pi.count * sizeof *va), "%s %s differs scaled", which ? "decoder" : "encoder",
                      pi.name);
            free(va), free(vb);
        }
    }
    recur_ctx_free(ctx);
}

/* Three f16 runs of one net without a head (an encoder) taking the
 * gradient of its final states from the caller: "big" with dhT = D 2^-10,
 * "small" with D 2^-26 (its gate gradients fall below f16's subnormals),
 * and "small" with the loss scale 2^16, which a caller's own dhT is
 * multiplied by (recur_optim_set_loss_scale), so that it is exactly big's.
 * Powers of two: every scaling is exact. */
struct urun {
    recur_ctx *ctx;
    recur_net *net;
    recur_optim *opt;
};

static void underflow_run(struct urun *u, float dscale, double scale, float lr) {
    u->ctx = test_open_ctx();
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = E, .hidden_size = H, .num_layers = 2},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = V, .head = RECUR_HEAD_NONE};
    OK(u->ctx, recur_net_create(u->ctx, &d, &u->net));
    OK(u->ctx, recur_net_init(u->net, RECUR_INIT_UNIFORM, 8));
    OK(u->ctx, recur_model_set_precision(recur_net_model(u->net), RECUR_DTYPE_F16));
    recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_SGD, lr);
    OK(u->ctx, recur_optim_create(&u->net, 1, &od, &u->opt));
    if (scale != 0) OK(u->ctx, recur_optim_set_loss_scale(u->opt, scale, 2000));
    int32_t tokens[T * N];
    float dhT[2 * N * H], dcT[2 * N * H];
    test_rng g = {9};
    for (int i = 0; i < T * N; i++) tokens[i] = (int32_t)test_uniform(&g, 0, V - 0.001);
    double S = recur_optim_loss_scale(u->opt);
    for (int i = 0; i < 2 * N * H; i++) {
        dhT[i] = (float)(test_uniform(&g, -1, 1) * dscale * S);
        dcT[i] = (float)(test_uniform(&g, -1, 1) * dscale * S);
    }
    recur_net_batch b = {.T = T, .N = N, .tokens = tokens};
    OK(u->ctx, recur_net_forward(u->net, RECUR_MODE_TRAINING, &b, NULL, NULL));
    recur_net_grad gr = {.dhT = dhT, .dcT = dcT};
    OK(u->ctx, recur_net_backward(u->net, &b, &gr, RECUR_GRAD_OVERWRITE));
}

/* The weight matrices' gradients (rnn.weight_*) of a and b * factor:
 * sum |a - b factor| / sum |b factor|. */
static double weight_grad_error(struct urun *a, struct urun *b, double factor) {
    double err = 0, mag = 0;
    for (size_t i = 0; i < recur_net_param_count(a->net); i++) {
        recur_param_info pi;
        OK(a->ctx, recur_net_param_info(a->net, i, &pi));
        if (strncmp(pi.name, "rnn.weight_", 11)) continue;
        float *ga = test_floats(pi.count), *gb = test_floats(pi.count);
        OK(a->ctx, recur_net_grad_get(a->net, pi.name, ga, pi.count));
        OK(b->ctx, recur_net_grad_get(b->net, pi.name, gb, pi.count));
        for (size_t k = 0; k < pi.count; k++) {
            err += fabs(ga[k] - gb[k] * factor);
            mag += fabs(gb[k] * factor);
        }
        free(ga), free(gb);
    }
    cr_assert(mag > 0);
    return err / mag;
}

Test(underflow, f16_gradients_vanish_unscaled_and_come_back_scaled) {
    struct urun big, small, scaled;
    underflow_run(&big, 0x1p-10f, 0, 0.5f * 0x1p-16f);
    underflow_run(&small, 0x1p-26f, 0, 0.5f);
    underflow_run(&scaled, 0x1p-26f, 0x1p16, 0.5f);
    double lost = weight_grad_error(&small, &big, 0x1p-16), kept = weight_grad_error(&scaled, &big, 1.0);
    cr_log_info("f16 weight gradients of a small dhT against a dhT 2^16 larger: unscaled %.3g off, scaled "
                "by 2^16 %.3g off",
                lost, kept);
    cr_assert(lost > 0.5, "f16 unscaled: the weight gradients are only %.3g off", lost);
    cr_assert_eq(kept, 0.0, "f16 scaled: the gradients are not the larger dhT's: %.3g off", kept);
    /* the step divides by the scale: the update is big's at lr 2^-16 */
    OK(big.ctx, recur_optim_step(big.opt, NULL));
    OK(scaled.ctx, recur_optim_step(scaled.opt, NULL));
    for (size_t i = 0; i < recur_net_param_count(big.net); i++) {
        recur_param_info pi;
        OK(big.ctx, recur_net_param_info(big.net, i, &pi));
        float *a = test_floats(pi.count), *b = test_floats(pi.count);
        OK(big.ctx, recur_net_param_get(big.net, pi.name, a, pi.count));
        OK(scaled.ctx, recur_net_param_get(scaled.net, pi.name, b, pi.count));
        cr_assert(!memcmp(a, b, pi.count * sizeof *a), "%s after the scaled step", pi.name);
        free(a), free(b);
    }
    recur_ctx_free(big.ctx), recur_ctx_free(small.ctx), recur_ctx_free(scaled.ctx);
}

/* In f16 at 2^40 the scaled gate gradients pass 65504: Inf. Skips halve the
 * scale until the gradients fit; the skipped steps change nothing. */
Test(overflow, f16_skips_and_halves_until_a_step_goes_through) {
    struct run r;
    run_make(&r, RECUR_DTYPE_F16, 11, 0.0f);
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 0x1p40, 2000));
    size_t n;
    float *p0 = all_of(&r, 0, &n);
    int skipped = 0;
    for (;;) {
        cr_assert(skipped < 40, "no step went through");
        pass(&r);
        double norm = 0;
        OK(r.ctx, recur_optim_step(r.opt, &norm));
        float *p = all_of(&r, 0, &n);
        int same = !memcmp(p, p0, n * sizeof *p);
        free(p);
        if (isfinite(norm)) {
            cr_assert(!same, "a step with a finite norm changed nothing");
            break;
        }
        cr_assert(same, "a skipped step changed the weights");
        skipped++;
        cr_assert_eq(recur_optim_skipped(r.opt), skipped);
        cr_assert_eq(recur_optim_steps(r.opt), 0, "a skipped step was counted");
        cr_assert_eq(recur_optim_loss_scale(r.opt), ldexp(1.0, 40 - skipped));
    }
    cr_log_info("f16 at 2^40: %d steps skipped, the scale 2^%d", skipped, 40 - skipped);
    cr_assert(skipped >= 10, "only %d skips from 2^40", skipped); /* |gradients| * 2^30 past 65504 */
    cr_assert_eq(recur_optim_steps(r.opt), 1);
    free(p0);
    run_free(&r);
}

/* Non-finite gradients at scale 1 (a NaN weight): RECUR_ERR_ARG as without scaling. */
Test(overflow, nan_at_scale_one_is_an_error) {
    struct run r;
    run_make(&r, RECUR_DTYPE_F32, 12, 0.0f);
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 2.0, 2000));
    recur_param_info pi;
    OK(r.ctx, recur_net_param_info(r.net, 0, &pi));
    float *w = test_floats(pi.count);
    OK(r.ctx, recur_net_param_get(r.net, pi.name, w, pi.count));
    for (size_t i = 0; i < pi.count; i++) w[i] = NAN;
    OK(r.ctx, recur_net_param_set(r.net, pi.name, w, pi.count));
    pass(&r);
    OK(r.ctx, recur_optim_step(r.opt, NULL)); /* at 2: skipped, now 1 */
    cr_assert_eq(recur_optim_skipped(r.opt), 1);
    cr_assert_eq(recur_optim_loss_scale(r.opt), 1.0);
    pass(&r);
    cr_assert_eq(recur_optim_step(r.opt, NULL), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(r.ctx), "loss scale 1"), "%s", recur_ctx_error(r.ctx));
    free(w);
    run_free(&r);
}

Test(growth, doubles_after_the_interval) {
    struct run r;
    run_make(&r, RECUR_DTYPE_F32, 13, 0.0f);
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 2.0, 3));
    const double want[] = {2, 2, 4, 4, 4, 8, 8};
    for (int s = 0; s < 7; s++) {
        pass(&r);
        OK(r.ctx, recur_optim_step(r.opt, NULL));
        cr_assert_eq(recur_optim_loss_scale(r.opt), want[s], "after step %d: %g", s + 1, recur_optim_loss_scale(r.opt));
    }
    /* off again: 1, and the nets' losses unscaled */
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 0.0, 0));
    cr_assert_eq(recur_optim_loss_scale(r.opt), 1.0);
    pass(&r);
    OK(r.ctx, recur_optim_step(r.opt, NULL));
    run_free(&r);
}

Test(state, bad_arguments_are_named) {
    struct run r;
    run_make(&r, RECUR_DTYPE_F32, 14, 0.0f);
    const double bad[] = {3.0, 0.5, -2.0, 0x1p101, INFINITY, NAN, 1e-300};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(recur_optim_set_loss_scale(r.opt, bad[i], 2000), RECUR_ERR_ARG, "%g", bad[i]);
        cr_assert(strstr(recur_ctx_error(r.ctx), "init_scale"), "%s", recur_ctx_error(r.ctx));
        cr_assert_eq(recur_optim_loss_scale(r.opt), 1.0);
    }
    cr_assert_eq(recur_optim_set_loss_scale(r.opt, 1024.0, 0), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(r.ctx), "growth_interval"), "%s", recur_ctx_error(r.ctx));
    cr_assert_eq(recur_optim_set_loss_scale(NULL, 1024.0, 1), RECUR_ERR_NULL);
    cr_assert_eq(recur_optim_loss_scale(NULL), 1.0);
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 1.0, 1));
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 0x1p100, 1));

    /* gradients made at one scale, the scale changed before the step: refused */
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 256.0, 10));
    pass(&r);
    cr_assert_eq(recur_optim_set_loss_scale(r.opt, 512.0, 10), RECUR_ERR_STATE);
    cr_assert_eq(recur_optim_loss_scale(r.opt), 256.0);
    OK(r.ctx, recur_optim_step(r.opt, NULL));
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 512.0, 10)); /* after the step: fine */
    run_free(&r);
}

Test(state, saved_and_restored) {
    struct run r;
    run_make(&r, RECUR_DTYPE_F16, 15, 0.0f);
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 0x1p40, 3));
    for (int s = 0; s < 40 && recur_optim_steps(r.opt) < 2; s++) {
        pass(&r);
        OK(r.ctx, recur_optim_step(r.opt, NULL));
    }
    double S = recur_optim_loss_scale(r.opt);
    long long skipped = recur_optim_skipped(r.opt);
    cr_assert(skipped > 0 && S < 0x1p40);
    char path[] = "/tmp/recur-loss-scale-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    recur_file *f;
    OK(r.ctx, recur_file_create(&f));
    OK(r.ctx, recur_file_put_optim(f, r.opt, NULL));
    cr_assert_str_eq(recur_file_meta(f, "optim.loss_scale_good"), "2");
    OK(r.ctx, recur_file_save(f, path));
    recur_file_free(f);

    struct run b;
    run_make(&b, RECUR_DTYPE_F16, 15, 0.0f);
    OK(b.ctx, recur_file_open(path, &f));
    OK(b.ctx, recur_file_get_optim(f, b.opt, NULL)); /* not scaling: the state is not taken */
    cr_assert_eq(recur_optim_loss_scale(b.opt), 1.0);
    OK(b.ctx, recur_optim_set_loss_scale(b.opt, 2.0, 3));
    OK(b.ctx, recur_file_get_optim(f, b.opt, NULL));
    cr_assert_eq(recur_optim_loss_scale(b.opt), S);
    cr_assert_eq(recur_optim_skipped(b.opt), skipped);
    /* one more good step: the growth counter came back too (2 of 3) */
    pass(&b);
    OK(b.ctx, recur_optim_step(b.opt, NULL));
    cr_assert_eq(recur_optim_loss_scale(b.opt), 2 * S);
    recur_file_free(f);

    /* a bad value in the file: named, the optimizer untouched */
    OK(b.ctx, recur_file_create(&f));
    OK(b.ctx, recur_file_put_optim(f, b.opt, NULL));
    OK(b.ctx, recur_file_put_meta(f, "optim.loss_scale_log2", "101"));
    cr_assert_eq(recur_file_get_optim(f, b.opt, NULL), RECUR_ERR_FILE_METADATA);
    cr_assert(strstr(recur_ctx_error(b.ctx), "loss_scale_log2") || strstr(recur_last_error(), "loss_scale_log2"),
              "%s", recur_last_error());
    cr_assert_eq(recur_optim_loss_scale(b.opt), 2 * S);
    recur_file_free(f);
    unlink(path);
    run_free(&r), run_free(&b);
}

/* Gradients of two scales never add up: a net's gradients made at 256, its
 * optimizer freed (the net's scale back to 1), then a pass adding to them:
 * RECUR_ERR_STATE before anything is written; overwriting is fine. */
Test(state, two_scales_never_add) {
    struct run r;
    run_make(&r, RECUR_DTYPE_F32, 16, 0.0f);
    OK(r.ctx, recur_optim_set_loss_scale(r.opt, 256.0, 10));
    pass(&r);
    recur_optim_free(r.opt);
    recur_net_batch b = batch(&r);
    OK(r.ctx, recur_net_forward(r.net, RECUR_MODE_TRAINING, &b, NULL, NULL));
    size_t n;
    float *g0 = all_of(&r, 1, &n);
    cr_assert_eq(recur_net_backward(r.net, &b, NULL, RECUR_GRAD_ADD), RECUR_ERR_STATE);
    cr_assert(strstr(recur_ctx_error(r.ctx), "scaled by 1") && strstr(recur_ctx_error(r.ctx), "scaled by 256"), "%s",
              recur_ctx_error(r.ctx));
    float *g1 = all_of(&r, 1, &n);
    cr_assert(!memcmp(g0, g1, n * sizeof *g0), "the refused pass wrote a gradient");
    OK(r.ctx, recur_net_backward(r.net, &b, NULL, RECUR_GRAD_OVERWRITE));
    free(g0), free(g1);
    run_free(&r);
}
