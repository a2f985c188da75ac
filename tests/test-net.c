/*
 * test-net.c: nets, optimizers and training files (recur-train.h) on the
 * device RECUR_TEST_DEVICE names (default cpu; skipped when it has none).
 *
 *   torch:   four PyTorch training runs (tests/fixtures/gen_train.py): the
 *            loss and gradient norm of every step and the parameters after
 *            the last, for embedding / one-hot / vector input, every-step and
 *            last-state heads, cross-entropy with ignored targets and MSE,
 *            Adam and SGD with momentum and weight decay, clipping on and off
 *   ref:     the loss and every gradient of a net against a double-precision
 *            reference built on the model's own (separately tested) forward
 *            and backward, and against finite differences of the loss
 *   carry:   one forward of 2T steps equals two of T with the state carried
 *   file:    save/load round trip, then training continues bit for bit
 *   errors:  bad arguments and bad files, each named, nothing changed
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "recur/recur-train.h"

static const char *device(void) {
    const char *d = getenv("RECUR_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

static recur_ctx *open_ctx(void) {
    recur_ctx *ctx;
    recur_status st = recur_ctx_create(&ctx, device());
    if (st == RECUR_ERR_DEVICE || st == RECUR_ERR_UNSUPPORTED) cr_skip_test("%s: %s", device(), recur_last_error());
    cr_assert_eq(st, RECUR_OK, "%s", recur_last_error());
    return ctx;
}

static const char *fixture(const char *name, char *buf, size_t len) {
    const char *dir = getenv("RECUR_FIXTURES");
    cr_assert(dir, "RECUR_FIXTURES is not set");
    snprintf(buf, len, "%s/../train/%s.safetensors", dir, name);
    return buf;
}

static double meta_num(const recur_file *f, const char *key) {
    const char *v = recur_file_meta(f, key);
    cr_assert(v, "fixture lacks metadata '%s'", key);
    return strtod(v, NULL);
}

static float *tensor(const recur_file *f, const char *name, size_t *count) {
    int nd;
    int64_t shape[4];
    if (recur_file_tensor(f, name, &nd, shape, NULL, 0) != RECUR_OK) return NULL;
    size_t c = 1;
    for (int k = 0; k < nd; k++) c *= (size_t)shape[k];
    float *v = test_floats(c ? c : 1);
    cr_assert_eq(recur_file_tensor(f, name, NULL, NULL, v, c), RECUR_OK, "%s", recur_last_error());
    if (count) *count = c;
    return v;
}

static int32_t *ints_of(const float *v, size_t n) {
    int32_t *r = calloc(n ? n : 1, sizeof *r);
    cr_assert(r);
    for (size_t i = 0; i < n; i++) r[i] = (int32_t)lrintf(v[i]);
    return r;
}

static void check_close(const char *what, const float *a, const float *b, size_t n, double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), tol = atol + rtol * fabs((double)b[i]);
        cr_assert(d <= tol, "%s[%zu] is %.9g, expected %.9g (diff %.3g, tolerance %.3g)", what, i, (double)a[i],
                  (double)b[i], d, tol);
    }
}

static void run_torch_case(const char *name) {
    char path[1024];
    recur_file *f;
    cr_assert_eq(recur_file_open(fixture(name, path, sizeof path), &f), RECUR_OK, "%s", recur_last_error());
    recur_ctx *ctx = open_ctx();
    recur_net *net;
    cr_assert_eq(recur_file_get_net(f, "", ctx, RECUR_LOAD_CHECK_FINITE, &net), RECUR_OK, "%s", recur_last_error());
    recur_net_desc d;
    recur_net_desc_get(net, &d);
    int T = (int)meta_num(f, "test.T"), N = (int)meta_num(f, "test.N"), steps = (int)meta_num(f, "test.steps");
    recur_optim_desc od = {0};
    const char *kind = recur_file_meta(f, "test.kind");
    od.kind = !strcmp(kind, "adam") ? RECUR_OPTIM_ADAM : RECUR_OPTIM_SGD;
    od.lr = (float)meta_num(f, "test.lr");
    od.weight_decay = (float)meta_num(f, "test.weight_decay");
    od.clip_norm = (float)meta_num(f, "test.clip_norm");
    if (od.kind == RECUR_OPTIM_ADAM) {
        od.beta1 = (float)meta_num(f, "test.beta1");
        od.beta2 = (float)meta_num(f, "test.beta2");
        od.eps = (float)meta_num(f, "test.eps");
    } else {
        od.momentum = (float)meta_num(f, "test.momentum");
    }
    recur_optim *opt;
    cr_assert_eq(recur_optim_create(&net, 1, &od, &opt), RECUR_OK, "%s", recur_last_error());

    size_t nt = 0, ng = 0, nl = 0;
    float *tok = tensor(f, "batch.tokens", &nt), *x = tensor(f, "batch.x", NULL);
    float *tg = tensor(f, "batch.targets", &ng), *vals = tensor(f, "batch.values", NULL);
    float *lf = tensor(f, "batch.lengths", &nl);
    float *losses = tensor(f, "losses", NULL), *norms = tensor(f, "norms", NULL);
    int32_t *tokens = tok ? ints_of(tok, nt) : NULL, *targets = tg ? ints_of(tg, ng) : NULL;
    int *lengths = NULL;
    if (lf) {
        lengths = calloc(nl, sizeof *lengths);
        for (size_t i = 0; i < nl; i++) lengths[i] = (int)lf[i];
    }
    recur_net_batch b = {.T = T, .N = N, .tokens = tokens, .x = x, .lengths = lengths, .targets = targets,
                         .values = vals};
    for (int s = 0; s < steps; s++) {
        double loss = NAN, norm;
        long long count;
        /* odd steps leave the loss on the device: recur_optim_step brings it back */
        int defer = s % 2;
        cr_assert_eq(recur_net_forward(net, RECUR_MODE_TRAINING, &b, defer ? NULL : &loss, &count), RECUR_OK,
                     "step %d: %s", s, recur_ctx_error(ctx));
        cr_assert_eq(recur_net_backward(net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
        cr_assert_eq(recur_optim_step(opt, &norm), RECUR_OK, "%s", recur_ctx_error(ctx));
        double again = NAN;
        long long count2 = -1;
        cr_assert_eq(recur_net_loss(net, &again, &count2), RECUR_OK, "%s", recur_ctx_error(ctx));
        cr_assert_eq(count2, count);
        if (defer) loss = again;
        else cr_assert_eq(again, loss, "%s step %d: recur_net_loss %.17g, forward's %.17g", name, s, again, loss);
        cr_assert(fabs(loss - losses[s]) <= 2e-5 * fabs(losses[s]) + 1e-6, "%s step %d: loss %.9g, torch %.9g", name,
                  s, loss, (double)losses[s]);
        cr_assert(fabs(norm - norms[s]) <= 1e-4 * fabs(norms[s]) + 1e-6, "%s step %d: grad norm %.9g, torch %.9g",
                  name, s, norm, (double)norms[s]);
    }
    cr_assert_eq(recur_optim_steps(opt), steps);
    size_t np = recur_net_param_count(net);
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        cr_assert_eq(recur_net_param_info(net, i, &info), RECUR_OK);
        char an[96];
        snprintf(an, sizeof an, "after.%s", info.name);
        size_t c;
        float *want = tensor(f, an, &c), *got = test_floats(info.count);
        cr_assert(want && c == info.count, "fixture lacks %s", an);
        cr_assert_eq(recur_net_param_get(net, info.name, got, info.count), RECUR_OK);
        check_close(info.name, got, want, c, 1e-4, 2e-5);
        free(want);
        free(got);
    }
    free(tok), free(x), free(tg), free(vals), free(lf), free(losses), free(norms), free(tokens), free(targets);
    free(lengths);
    recur_optim_free(opt);
    recur_net_free(net);
    recur_ctx_free(ctx);
    recur_file_free(f);
}

Test(torch, lstm_embedding_all_xent_adam) { run_torch_case("lstm-embed-all-xent-adam"); }
Test(torch, gru_lbr_embedding_last_xent_sgd) { run_torch_case("gru-lbr-embed-last-xent-sgd"); }
Test(torch, rnn_vector_all_mse_adam) { run_torch_case("rnn-vector-all-mse-adam"); }
Test(torch, lstm_onehot_last_xent_sgd) { run_torch_case("lstm-onehot-last-xent-sgd"); }

/* ---- a small net on random data, for the other tests ---- */

struct toy {
    recur_ctx *ctx;
    recur_net *net;
    int T, N, V, K, H, L, D;
    int32_t *tokens, *targets;
    int lengths[4];
};

static void toy_make(struct toy *t, const char *cell, recur_head head, recur_direction dir, int L, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->ctx = open_ctx();
    t->T = 5, t->N = 4, t->V = 6, t->K = head == RECUR_HEAD_NONE ? 0 : 5, t->H = 4, t->L = L;
    t->D = dir >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    recur_net_desc d = {.model = {.cell = cell, .input_size = 3, .hidden_size = t->H, .num_layers = L,
                                  .direction = dir},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = t->V, .head = head, .output_size = t->K};
    cr_assert_eq(recur_net_create(t->ctx, &d, &t->net), RECUR_OK, "%s", recur_ctx_error(t->ctx));
    cr_assert_eq(recur_net_init(t->net, RECUR_INIT_UNIFORM, seed), RECUR_OK);
    test_rng r = {seed};
    size_t TN = (size_t)t->T * t->N;
    t->tokens = calloc(TN, sizeof *t->tokens);
    t->targets = calloc(TN, sizeof *t->targets);
    for (size_t i = 0; i < TN; i++) {
        t->tokens[i] = (int32_t)test_uniform(&r, 0, t->V - 0.001);
        t->targets[i] = t->K ? (int32_t)test_uniform(&r, 0, t->K - 0.001) : 0;
    }
    int len[4] = {5, 2, 4, 3};
    memcpy(t->lengths, len, sizeof len);
}

static void toy_free(struct toy *t) {
    free(t->tokens);
    free(t->targets);
    recur_net_free(t->net);
    recur_ctx_free(t->ctx);
}

static double toy_loss(struct toy *t, recur_head head) {
    recur_net_batch b = {.T = t->T, .N = t->N, .tokens = t->tokens, .lengths = t->lengths, .targets = t->targets};
    double loss;
    (void)head;
    cr_assert_eq(recur_net_forward(t->net, RECUR_MODE_INFERENCE, &b, &loss, NULL), RECUR_OK, "%s",
                 recur_ctx_error(t->ctx));
    return loss;
}

/* Central differences of the loss along each parameter tensor's gradient
 * direction: (L(w + e g/|g|) - L(w - e g/|g|)) / 2e must equal |g|. */
static void fd_check(const char *cell, recur_head head, recur_direction dir, int L) {
    struct toy t;
    toy_make(&t, cell, head, dir, L, 11);
    recur_net_batch b = {.T = t.T, .N = t.N, .tokens = t.tokens, .lengths = t.lengths, .targets = t.targets};
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_OK);
    cr_assert_eq(recur_net_backward(t.net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(t.ctx));
    size_t np = recur_net_param_count(t.net);
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        recur_net_param_info(t.net, i, &info);
        float *w = test_floats(info.count), *g = test_floats(info.count), *wp = test_floats(info.count);
        recur_net_param_get(t.net, info.name, w, info.count);
        recur_net_grad_get(t.net, info.name, g, info.count);
        double gn = 0;
        for (size_t k = 0; k < info.count; k++) gn += (double)g[k] * g[k];
        gn = sqrt(gn);
        if (gn < 1e-6) {
            /* an unused embedding row set could be zero; every tensor here is used */
            cr_assert_fail("%s: zero gradient", info.name);
        }
        double best = INFINITY;
        const double eps[] = {3e-2, 1e-2, 3e-3};
        for (int e = 0; e < 3; e++) {
            double lp, lm;
            for (size_t k = 0; k < info.count; k++) wp[k] = (float)(w[k] + eps[e] * g[k] / gn);
            recur_net_param_set(t.net, info.name, wp, info.count);
            lp = toy_loss(&t, head);
            for (size_t k = 0; k < info.count; k++) wp[k] = (float)(w[k] - eps[e] * g[k] / gn);
            recur_net_param_set(t.net, info.name, wp, info.count);
            lm = toy_loss(&t, head);
            double fd = (lp - lm) / (2 * eps[e]), err = fabs(fd - gn) / gn;
            if (err < best) best = err;
        }
        recur_net_param_set(t.net, info.name, w, info.count);
        cr_assert(best < 2e-3, "%s %s: directional derivative off by %.3g relative (|g| %.6g)", cell, info.name, best,
                  gn);
        free(w), free(g), free(wp);
    }
    toy_free(&t);
}

Test(ref, fd_lstm_all_bidi) { fd_check("lstm", RECUR_HEAD_ALL, RECUR_DIR_BIDI_CONCAT, 2); }
Test(ref, fd_gru_last_sum) { fd_check("gru", RECUR_HEAD_LAST, RECUR_DIR_BIDI_SUM, 1); }
Test(ref, fd_rnn_last_reverse) { fd_check("rnn", RECUR_HEAD_LAST, RECUR_DIR_REVERSE, 2); }

/* The head and loss in double from the model's own outputs: logits, the
 * loss, and the head's gradients. */
Test(ref, head_and_xent_against_double) {
    struct toy t;
    toy_make(&t, "lstm", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 1, 5);
    int T = t.T, N = t.N, K = t.K, H = t.H, V = t.V, I = 3;
    size_t TN = (size_t)T * N;
    float *E = test_floats((size_t)V * I), *W = test_floats((size_t)K * H), *bias = test_floats(K);
    recur_net_param_get(t.net, "embedding.weight", E, (size_t)V * I);
    recur_net_param_get(t.net, "head.weight", W, (size_t)K * H);
    recur_net_param_get(t.net, "head.bias", bias, K);
    float *x = test_floats(TN * I), *y = test_floats(TN * H), *logits = test_floats(TN * K);
    for (size_t r = 0; r < TN; r++) memcpy(x + r * I, E + (size_t)t.tokens[r] * I, I * sizeof(float));
    recur_model_io io = {.T = T, .N = N, .lengths = t.lengths, .x = x, .y = y};
    cr_assert_eq(recur_model_forward(recur_net_model(t.net), RECUR_MODE_INFERENCE, &io), RECUR_OK);
    recur_net_batch b = {.T = T, .N = N, .tokens = t.tokens, .lengths = t.lengths, .targets = t.targets,
                         .logits = logits};
    double loss;
    long long count;
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, &loss, &count), RECUR_OK);
    double ref = 0;
    long long rc = 0;
    double *z = test_doubles(TN * K);
    for (int tt = 0; tt < T; tt++)
        for (int n = 0; n < N; n++) {
            size_t r = (size_t)tt * N + n;
            for (int k = 0; k < K; k++) {
                double s = bias[k];
                for (int h = 0; h < H; h++) s += (double)y[r * H + h] * W[(size_t)k * H + h];
                z[r * K + k] = s;
            }
            if (tt >= t.lengths[n]) continue;
            double mx = -INFINITY, se = 0;
            for (int k = 0; k < K; k++) mx = fmax(mx, z[r * K + k]);
            for (int k = 0; k < K; k++) se += exp(z[r * K + k] - mx);
            ref += mx + log(se) - z[r * K + t.targets[r]];
            rc++;
        }
    ASSERT_CLOSE("logits", logits, z, TN * K, 1e-5, 1e-6);
    cr_assert_eq(count, rc);
    cr_assert(fabs(loss - ref / rc) < 1e-5 * fabs(ref / rc), "loss %.9g, reference %.9g", loss, ref / rc);
    free(E), free(W), free(bias), free(x), free(y), free(logits), free(z);
    toy_free(&t);
}

/* Truncated BPTT: a forward over 2T steps equals T steps, then T more
 * starting from the carried state. */
Test(carry, two_chunks_equal_one) {
    recur_ctx *ctx = open_ctx();
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = 4, .hidden_size = 5, .num_layers = 2},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = 7, .head = RECUR_HEAD_ALL, .output_size = 7};
    recur_net *net;
    cr_assert_eq(recur_net_create(ctx, &d, &net), RECUR_OK);
    cr_assert_eq(recur_net_init(net, RECUR_INIT_ORTHOGONAL, 3), RECUR_OK);
    int T = 6, N = 3;
    int32_t tok[18];
    for (int i = 0; i < 18; i++) tok[i] = (i * 5 + 1) % 7;
    float full[18 * 7], half[18 * 7], h[2 * 3 * 5], c[2 * 3 * 5];
    recur_net_batch b = {.T = T, .N = N, .tokens = tok, .logits = full};
    cr_assert_eq(recur_net_forward(net, RECUR_MODE_INFERENCE, &b, NULL, NULL), RECUR_OK);
    recur_net_batch b1 = {.T = 3, .N = N, .tokens = tok, .logits = half, .hT = h, .cT = c};
    cr_assert_eq(recur_net_forward(net, RECUR_MODE_INFERENCE, &b1, NULL, NULL), RECUR_OK);
    recur_net_batch b2 = {.T = 3, .N = N, .tokens = tok + 9, .logits = half + 9 * 7, .h0 = h, .c0 = c};
    cr_assert_eq(recur_net_forward(net, RECUR_MODE_INFERENCE, &b2, NULL, NULL), RECUR_OK);
    double ref[18 * 7];
    for (int i = 0; i < 18 * 7; i++) ref[i] = full[i];
    ASSERT_CLOSE("chunked logits", half, ref, 18 * 7, 1e-6, 1e-6);
    recur_net_free(net);
    recur_ctx_free(ctx);
}

/* Orthogonal init: every gate's W_hh block has orthonormal rows. */
Test(init, orthogonal_blocks_and_uniform_bounds) {
    recur_ctx *ctx = open_ctx();
    int H = 8;
    recur_net_desc d = {.model = {.cell = "gru-lbr", .input_size = 3, .hidden_size = H, .num_layers = 1},
                        .input = RECUR_INPUT_VECTOR, .head = RECUR_HEAD_LAST, .output_size = 2};
    recur_net *net;
    cr_assert_eq(recur_net_create(ctx, &d, &net), RECUR_OK);
    cr_assert_eq(recur_net_init(net, RECUR_INIT_ORTHOGONAL, 9), RECUR_OK);
    float w[3 * 8 * 8], wi[3 * 8 * 3];
    cr_assert_eq(recur_net_param_get(net, "rnn.weight_hh_l0", w, sizeof w / sizeof *w), RECUR_OK);
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < H; j++) {
                double s = 0;
                for (int k = 0; k < H; k++) s += (double)w[(g * H + i) * H + k] * w[(g * H + j) * H + k];
                cr_assert(fabs(s - (i == j)) < 1e-5, "gate %d: row %d . row %d = %g", g, i, j, s);
            }
    cr_assert_eq(recur_net_param_get(net, "rnn.weight_ih_l0", wi, sizeof wi / sizeof *wi), RECUR_OK);
    double mx = 0;
    for (size_t k = 0; k < sizeof wi / sizeof *wi; k++) mx = fmax(mx, fabs(wi[k]));
    cr_assert(mx <= 1 / sqrt(H) && mx > 0.5 / sqrt(H), "weight_ih max |w| %g for bound %g", mx, 1 / sqrt(H));
    /* the same seed gives the same weights; another seed others */
    float again[3 * 8 * 8];
    cr_assert_eq(recur_net_init(net, RECUR_INIT_ORTHOGONAL, 9), RECUR_OK);
    recur_net_param_get(net, "rnn.weight_hh_l0", again, sizeof again / sizeof *again);
    cr_assert(!memcmp(w, again, sizeof w));
    cr_assert_eq(recur_net_init(net, RECUR_INIT_ORTHOGONAL, 10), RECUR_OK);
    recur_net_param_get(net, "rnn.weight_hh_l0", again, sizeof again / sizeof *again);
    cr_assert(memcmp(w, again, sizeof w));
    recur_net_free(net);
    recur_ctx_free(ctx);
}

/* Train a few steps, save net + optimizer, load both into fresh objects,
 * and the next steps are the same on both, bit for bit on the CPU. */
static void train_steps(struct toy *t, recur_optim *o, int steps, double *last) {
    recur_net_batch b = {.T = t->T, .N = t->N, .tokens = t->tokens, .lengths = t->lengths, .targets = t->targets};
    for (int s = 0; s < steps; s++) {
        cr_assert_eq(recur_net_forward(t->net, RECUR_MODE_TRAINING, &b, last, NULL), RECUR_OK);
        cr_assert_eq(recur_net_backward(t->net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_OK);
        cr_assert_eq(recur_optim_step(o, NULL), RECUR_OK, "%s", recur_ctx_error(t->ctx));
    }
}

Test(file, round_trip_then_identical_training) {
    struct toy t;
    toy_make(&t, "lstm", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 2, 21);
    recur_optim_desc od = {.kind = RECUR_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .clip_norm = 1.0f};
    recur_optim *o;
    cr_assert_eq(recur_optim_create(&t.net, 1, &od, &o), RECUR_OK);
    double first, l1, l2;
    train_steps(&t, o, 1, &first);
    train_steps(&t, o, 3, &l1);
    cr_assert(l1 < first, "loss went from %g to %g", first, l1);
    char path[] = "/tmp/recur-test-net-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    recur_file *f;
    cr_assert_eq(recur_file_create(&f), RECUR_OK);
    cr_assert_eq(recur_file_put_net(f, "", t.net), RECUR_OK, "%s", recur_last_error());
    cr_assert_eq(recur_file_put_optim(f, o, NULL), RECUR_OK, "%s", recur_last_error());
    cr_assert_eq(recur_file_put_meta(f, "app.note", "hello \"quoted\""), RECUR_OK);
    int64_t shape[2] = {2, 3};
    float extra[6] = {1, 2, 3, 4, 5, 6};
    cr_assert_eq(recur_file_put_tensor(f, "app.extra", 2, shape, extra), RECUR_OK);
    cr_assert_eq(recur_file_save(f, path), RECUR_OK, "%s", recur_last_error());
    recur_file_free(f);

    cr_assert_eq(recur_file_open(path, &f), RECUR_OK, "%s", recur_last_error());
    cr_assert_str_eq(recur_file_meta(f, "app.note"), "hello \"quoted\"");
    float back[6];
    int nd;
    int64_t sh[4];
    cr_assert_eq(recur_file_tensor(f, "app.extra", &nd, sh, back, 6), RECUR_OK);
    cr_assert(nd == 2 && sh[0] == 2 && sh[1] == 3 && !memcmp(back, extra, sizeof back));
    cr_assert_eq(recur_file_tensor(f, "app.extra", NULL, NULL, back, 5), RECUR_ERR_FILE_SHAPE);
    cr_assert_eq(recur_file_tensor(f, "app.none", NULL, NULL, NULL, 0), RECUR_ERR_FILE_MISSING);
    recur_net *net2;
    cr_assert_eq(recur_file_get_net(f, "", t.ctx, RECUR_LOAD_CHECK_FINITE, &net2), RECUR_OK, "%s", recur_last_error());
    recur_optim *o2;
    cr_assert_eq(recur_optim_create(&net2, 1, &od, &o2), RECUR_OK);
    cr_assert_eq(recur_file_get_optim(f, o2, NULL), RECUR_OK, "%s", recur_last_error());
    cr_assert_eq(recur_optim_steps(o2), 4);
    recur_file_free(f);
    unlink(path);

    struct toy t2 = t;
    t2.net = net2;
    train_steps(&t, o, 3, &l1);
    train_steps(&t2, o2, 3, &l2);
    int cpu = !strncmp(device(), "cpu", 3);
    if (cpu) cr_assert(l1 == l2, "resumed loss %.17g, uninterrupted %.17g", l2, l1);
    else cr_assert(fabs(l1 - l2) < 1e-5 * fabs(l1), "resumed loss %.9g, uninterrupted %.9g", l2, l1);
    size_t np = recur_net_param_count(t.net);
    for (size_t i = 0; i < np && cpu; i++) {
        recur_param_info info;
        recur_net_param_info(t.net, i, &info);
        float *a = test_floats(info.count), *b = test_floats(info.count);
        recur_net_param_get(t.net, info.name, a, info.count);
        recur_net_param_get(net2, info.name, b, info.count);
        cr_assert(!memcmp(a, b, info.count * sizeof *a), "%s differs after resuming", info.name);
        free(a), free(b);
    }
    recur_optim_free(o2);
    recur_optim_free(o);
    recur_net_free(net2);
    toy_free(&t);
}

/* A file with one thing wrong: the error names it, nothing is made. */
Test(file, bad_files) {
    struct toy t;
    toy_make(&t, "gru", RECUR_HEAD_LAST, RECUR_DIR_FORWARD, 1, 4);
    char path[] = "/tmp/recur-test-netbad-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    recur_net *out = (recur_net *)&t; /* must become NULL */
    struct {
        const char *what;
        recur_status want;
    } cases[] = {{"missing", RECUR_ERR_FILE_MISSING}, {"extra", RECUR_ERR_FILE_EXTRA},
                 {"shape", RECUR_ERR_FILE_SHAPE},     {"meta", RECUR_ERR_FILE_METADATA},
                 {"nan", RECUR_ERR_FILE_NONFINITE},   {"format", RECUR_ERR_FILE_METADATA},
                 /* settings that claim a net far larger than the file's tensors: refused
                  * before anything is allocated (making it would fail on memory first) */
                 {"huge", RECUR_ERR_FILE_SHAPE}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        recur_file *f;
        recur_file_create(&f);
        cr_assert_eq(recur_file_put_net(f, "", t.net), RECUR_OK);
        float v[64] = {0};
        int64_t s1[1] = {5}, s2[2] = {5, 3};
        if (!strcmp(cases[c].what, "missing")) {
            /* replace head.bias by a tensor of another name: re-create without it */
            recur_file_free(f);
            recur_file_create(&f);
            recur_file_put_net(f, "enc.", t.net);
            recur_file_put_meta(f, "format", "recur-train");
            const char *keys[] = {"cell", "variant", "input_size", "hidden_size", "num_layers", "direction",
                                  "dropout", "seed", "dropout_calls", "input", "vocab", "head", "output_size",
                                  "loss", "recur_version"};
            for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
                char key[64];
                snprintf(key, sizeof key, "enc.%s", keys[k]);
                recur_file_put_meta(f, keys[k], recur_file_meta(f, key));
            }
        } else if (!strcmp(cases[c].what, "extra")) {
            recur_file_put_tensor(f, "rnn.weight_ih_l5", 1, s1, v);
        } else if (!strcmp(cases[c].what, "shape")) {
            recur_file_put_tensor(f, "head.weight", 2, s2, v);
        } else if (!strcmp(cases[c].what, "meta")) {
            recur_file_put_meta(f, "hidden_size", "four");
        } else if (!strcmp(cases[c].what, "nan")) {
            float nanv[5] = {0, 0, NAN, 0, 0};
            recur_file_put_tensor(f, "head.bias", 1, s1, nanv);
        } else if (!strcmp(cases[c].what, "huge")) {
            recur_file_put_meta(f, "vocab", "16777216");
            recur_file_put_meta(f, "input_size", "16777216");
        } else {
            recur_file_put_meta(f, "format", "recur");
        }
        cr_assert_eq(recur_file_save(f, path), RECUR_OK);
        recur_file_free(f);
        cr_assert_eq(recur_file_open(path, &f), RECUR_OK, "%s", recur_last_error());
        recur_status st = recur_file_get_net(f, "", t.ctx, RECUR_LOAD_CHECK_FINITE, &out);
        cr_assert_eq(st, cases[c].want, "%s: got %s: %s", cases[c].what, recur_status_str(st), recur_last_error());
        cr_assert_null(out, "%s: a net was made", cases[c].what);
        recur_file_free(f);
    }
    /* not a safetensors file at all */
    FILE *fp = fopen(path, "wb");
    fputs("hello", fp);
    fclose(fp);
    recur_file *f = (recur_file *)&t;
    cr_assert_eq(recur_file_open(path, &f), RECUR_ERR_FILE_TRUNCATED);
    cr_assert_null(f);
    cr_assert(strstr(recur_last_error(), path), "message does not name the file: %s", recur_last_error());
    cr_assert_eq(recur_file_open("/nonexistent/recur.safetensors", &f), RECUR_ERR_IO);
    unlink(path);
    toy_free(&t);
}

Test(errors, bad_batches_are_named) {
    struct toy t;
    toy_make(&t, "lstm", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 1, 8);
    recur_net_batch b = {.T = t.T, .N = t.N, .tokens = t.tokens, .lengths = t.lengths, .targets = t.targets};
    t.tokens[7] = 99;
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(t.ctx), "tokens[1][3] is 99"), "%s", recur_ctx_error(t.ctx));
    t.tokens[7] = 1;
    t.targets[0] = 5;
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(t.ctx), "targets[0][0] is 5"), "%s", recur_ctx_error(t.ctx));
    t.targets[0] = 1;
    /* garbage at a padded position is not looked at */
    t.tokens[4 * 4 + 1] = -7; /* t = 4, n = 1 has length 2 */
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_OK, "%s",
                 recur_ctx_error(t.ctx));
    int bad_len[4] = {5, 0, 4, 3};
    b.lengths = bad_len;
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_ERR_ARG);
    b.lengths = t.lengths;
    recur_net_batch b2 = b;
    b2.N = 3;
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_OK);
    cr_assert_eq(recur_net_backward(t.net, &b2, NULL, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE);
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_INFERENCE, &b, NULL, NULL), RECUR_OK);
    cr_assert_eq(recur_net_backward(t.net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE);
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = 3, .hidden_size = 4, .num_layers = 1},
                        .input = RECUR_INPUT_ONEHOT, .vocab = 5, .head = RECUR_HEAD_ALL, .output_size = 2};
    recur_net *n = (recur_net *)&t;
    cr_assert_eq(recur_net_create(t.ctx, &d, &n), RECUR_ERR_SHAPE);
    cr_assert_null(n);
    d.input = RECUR_INPUT_EMBEDDING;
    d.output_size = 0;
    cr_assert_eq(recur_net_create(t.ctx, &d, &n), RECUR_ERR_ARG);
    recur_optim_desc od = {.kind = RECUR_OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 1.5f, .eps = 1e-8f};
    recur_optim *o = (recur_optim *)&t;
    cr_assert_eq(recur_optim_create(&t.net, 1, &od, &o), RECUR_ERR_ARG);
    cr_assert_null(o);
    cr_assert(strstr(recur_ctx_error(t.ctx), "beta2"), "%s", recur_ctx_error(t.ctx));
    /* a forward without targets has no loss to give */
    double l;
    recur_net_batch nb = {.T = t.T, .N = t.N, .tokens = t.tokens, .lengths = t.lengths};
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_INFERENCE, &nb, NULL, NULL), RECUR_OK);
    cr_assert_eq(recur_net_loss(t.net, &l, NULL), RECUR_ERR_STATE);
    cr_assert(strstr(recur_ctx_error(t.ctx), "recur_net_loss: the last forward computed no loss"), "%s",
              recur_ctx_error(t.ctx));
    cr_assert_eq(recur_net_loss(t.net, NULL, NULL), RECUR_ERR_NULL);
    cr_assert_eq(recur_net_loss(NULL, &l, NULL), RECUR_ERR_NULL);
    toy_free(&t);
}

/* A NaN gradient stops the step before any weight moves. */
Test(errors, nonfinite_gradient_changes_nothing) {
    struct toy t;
    toy_make(&t, "rnn", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 1, 2);
    float bias[5] = {0, NAN, 0, 0, 0}, before[5], after[5];
    recur_net_param_set(t.net, "head.bias", bias, 5);
    recur_optim_desc od = {.kind = RECUR_OPTIM_SGD, .lr = 0.1f};
    recur_optim *o;
    cr_assert_eq(recur_optim_create(&t.net, 1, &od, &o), RECUR_OK);
    recur_net_batch b = {.T = t.T, .N = t.N, .tokens = t.tokens, .targets = t.targets};
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_OK);
    cr_assert_eq(recur_net_backward(t.net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_OK);
    float w0[4 * 3], w1[4 * 3];
    recur_net_param_get(t.net, "rnn.weight_ih_l0", w0, 12);
    recur_net_param_get(t.net, "head.bias", before, 5);
    cr_assert_eq(recur_optim_step(o, NULL), RECUR_ERR_ARG);
    recur_net_param_get(t.net, "rnn.weight_ih_l0", w1, 12);
    recur_net_param_get(t.net, "head.bias", after, 5);
    cr_assert(!memcmp(w0, w1, sizeof w0) && !memcmp(before, after, sizeof before));
    cr_assert_eq(recur_optim_steps(o), 0);
    recur_optim_free(o);
    toy_free(&t);
}

/* The MPI calls' refusals, without MPI started (or built): named, and the
 * optimizer works alone as before. */
Test(errors, mpi_comm_and_weight_refusals) {
    struct toy t;
    toy_make(&t, "rnn", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 1, 2);
    recur_optim_desc od = {.kind = RECUR_OPTIM_SGD, .lr = 0.1f};
    recur_optim *o;
    cr_assert_eq(recur_optim_create(&t.net, 1, &od, &o), RECUR_OK);
    long fake_comm = 0;
    recur_status st = recur_optim_set_comm(o, &fake_comm);
    cr_assert(st == RECUR_ERR_ARG || st == RECUR_ERR_UNSUPPORTED, "status %d", (int)st);
    cr_assert(strstr(recur_ctx_error(t.ctx), "not initialised") || strstr(recur_ctx_error(t.ctx), "without MPI"), "%s",
              recur_ctx_error(t.ctx));
    cr_assert_eq(recur_optim_set_comm(o, NULL), RECUR_OK); /* detach: nothing attached */
    cr_assert_eq(recur_optim_set_comm(NULL, NULL), RECUR_ERR_NULL);
    cr_assert_eq(recur_optim_set_grad_weight(o, -1), RECUR_ERR_ARG);
    cr_assert_eq(recur_optim_set_grad_weight(o, NAN), RECUR_ERR_ARG);
    cr_assert_eq(recur_optim_set_grad_weight(o, INFINITY), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(t.ctx), "recur_optim_set_grad_weight"), "%s", recur_ctx_error(t.ctx));
    cr_assert_eq(recur_optim_set_grad_weight(o, 3), RECUR_OK); /* alone, the weight changes nothing */
    cr_assert_eq(recur_optim_set_bucket_size(NULL, 0), RECUR_ERR_NULL);
    cr_assert_eq(recur_optim_set_bucket_size(o, ((size_t)1 << 31) + 1), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(t.ctx), "2147483649 bytes"), "%s", recur_ctx_error(t.ctx));
    cr_assert_eq(recur_optim_set_bucket_size(o, 0), RECUR_OK);
    cr_assert_eq(recur_optim_set_bucket_size(o, 4), RECUR_OK); /* alone, the buckets change nothing */
    cr_assert_eq(recur_optim_set_accum(NULL, 1), RECUR_ERR_NULL);
    cr_assert_eq(recur_optim_set_accum(o, 0), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(t.ctx), "recur_optim_set_accum: 0 backward passes"), "%s",
              recur_ctx_error(t.ctx));
    cr_assert_eq(recur_optim_set_accum(o, 1000001), RECUR_ERR_ARG);
    cr_assert_eq(recur_optim_set_accum(o, 2), RECUR_OK);
    recur_net_batch b = {.T = t.T, .N = t.N, .tokens = t.tokens, .targets = t.targets};
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_OK);
    cr_assert_eq(recur_net_backward(t.net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_OK);
    cr_assert_eq(recur_optim_step(o, NULL), RECUR_OK, "%s", recur_ctx_error(t.ctx));
    recur_optim_free(o);
    toy_free(&t);
}

/* Encoder-decoder wiring: the decoder's dh0/dc0 are the encoder's dhT/dcT.
 * Checked by finite differences of the decoder's loss in one encoder weight
 * direction. */
Test(ref, encoder_decoder_gradient_flows) {
    recur_ctx *ctx = open_ctx();
    recur_net_desc ed = {.model = {.cell = "lstm", .input_size = 3, .hidden_size = 4, .num_layers = 2},
                         .input = RECUR_INPUT_EMBEDDING, .vocab = 6, .head = RECUR_HEAD_NONE};
    recur_net_desc dd = ed;
    dd.head = RECUR_HEAD_ALL;
    dd.output_size = 5;
    recur_net *enc, *dec;
    cr_assert_eq(recur_net_create(ctx, &ed, &enc), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_net_create(ctx, &dd, &dec), RECUR_OK);
    recur_net_init(enc, RECUR_INIT_UNIFORM, 1);
    recur_net_init(dec, RECUR_INIT_UNIFORM, 2);
    int32_t src[4 * 2] = {1, 2, 3, 4, 5, 0, 2, 2}, din[3 * 2] = {0, 0, 3, 1, 4, 2}, tgt[3 * 2] = {3, 1, 4, 2, 1, 0};
    int slen[2] = {4, 3};
    float h[2 * 2 * 4], c[2 * 2 * 4], dh[2 * 2 * 4], dc[2 * 2 * 4];
    recur_net_batch eb = {.T = 4, .N = 2, .tokens = src, .lengths = slen, .hT = h, .cT = c};
    recur_net_batch db = {.T = 3, .N = 2, .tokens = din, .targets = tgt, .h0 = h, .c0 = c};
    double loss0;
    cr_assert_eq(recur_net_forward(enc, RECUR_MODE_TRAINING, &eb, NULL, NULL), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_net_forward(dec, RECUR_MODE_TRAINING, &db, &loss0, NULL), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_net_grad dg = {.dh0 = dh, .dc0 = dc};
    cr_assert_eq(recur_net_backward(dec, &db, &dg, RECUR_GRAD_OVERWRITE), RECUR_OK);
    recur_net_grad eg = {.dhT = dh, .dcT = dc};
    cr_assert_eq(recur_net_backward(enc, &eb, &eg, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    const char *name = "rnn.weight_hh_l0";
    size_t n = 16 * 4;
    float *w = test_floats(n), *g = test_floats(n), *wp = test_floats(n);
    recur_net_param_get(enc, name, w, n);
    recur_net_grad_get(enc, name, g, n);
    double gn = 0;
    for (size_t k = 0; k < n; k++) gn += (double)g[k] * g[k];
    gn = sqrt(gn);
    cr_assert(gn > 1e-6);
    double best = INFINITY;
    const double eps[] = {3e-2, 1e-2, 3e-3};
    for (int e = 0; e < 3; e++) {
        double l[2];
        for (int s = 0; s < 2; s++) {
            for (size_t k = 0; k < n; k++) wp[k] = (float)(w[k] + (s ? -1 : 1) * eps[e] * g[k] / gn);
            recur_net_param_set(enc, name, wp, n);
            eb.hT = h, eb.cT = c;
            cr_assert_eq(recur_net_forward(enc, RECUR_MODE_INFERENCE, &eb, NULL, NULL), RECUR_OK);
            cr_assert_eq(recur_net_forward(dec, RECUR_MODE_INFERENCE, &db, &l[s], NULL), RECUR_OK);
        }
        best = fmin(best, fabs((l[0] - l[1]) / (2 * eps[e]) - gn) / gn);
    }
    cr_assert(best < 2e-3, "encoder gradient through the decoder's initial state off by %.3g", best);
    free(w), free(g), free(wp);
    recur_ctx_free(ctx); /* frees both nets with it */
}

/* Optimizer state from another kind of optimizer, or over other nets: named, and
 * the optimizer keeps its own state. */
Test(file, optimizer_state_mismatch) {
    struct toy t, u;
    toy_make(&t, "lstm", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 1, 31);
    toy_make(&u, "lstm", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 2, 31);
    recur_optim *adam, *sgd, *two;
    recur_optim_desc ad = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f), sd = recur_optim_defaults(RECUR_OPTIM_SGD, 0.1f);
    cr_assert_eq(recur_optim_create(&t.net, 1, &ad, &adam), RECUR_OK);
    cr_assert_eq(recur_optim_create(&t.net, 1, &sd, &sgd), RECUR_OK);
    cr_assert_eq(recur_optim_create(&u.net, 1, &ad, &two), RECUR_OK);
    train_steps(&t, adam, 2, &(double){0});
    recur_file *f;
    recur_file_create(&f);
    cr_assert_eq(recur_file_put_optim(f, adam, NULL), RECUR_OK);
    cr_assert_eq(recur_file_get_optim(f, sgd, NULL), RECUR_ERR_FILE_METADATA);
    cr_assert(strstr(recur_last_error(), "adam"), "%s", recur_last_error());
    cr_assert_eq(recur_file_get_optim(f, two, NULL), RECUR_ERR_FILE_METADATA); /* 2 layers: 3 groups, not 2 */
    cr_assert_eq(recur_optim_steps(two), 0);
    recur_file_put_meta(f, "optim.steps", "-3");
    cr_assert_eq(recur_file_get_optim(f, adam, NULL), RECUR_ERR_FILE_METADATA);
    cr_assert_eq(recur_optim_steps(adam), 2);
    recur_file_free(f);
    recur_net *nets[2] = {t.net, t.net};
    recur_optim *o = (recur_optim *)&t;
    cr_assert_eq(recur_optim_create(nets, 2, &ad, &o), RECUR_ERR_ARG); /* the same net twice */
    cr_assert_null(o);
    toy_free(&u); /* freeing a context frees its optimizers (ASan checks) */
    toy_free(&t);
}

/* A net's model belongs to the net, as a model's layer belongs to the model:
 * recur_model_free ignores it. Without that, the forward below reads the
 * freed model and toy_free frees it again (ASan: heap-use-after-free). */
Test(errors, freeing_a_nets_model_is_ignored) {
    struct toy t;
    toy_make(&t, "gru", RECUR_HEAD_ALL, RECUR_DIR_BIDI_CONCAT, 2, 12);
    double before = toy_loss(&t, RECUR_HEAD_ALL);
    recur_model *m = recur_net_model(t.net);
    cr_assert_not_null(m);
    recur_model_free(m);
    cr_assert_eq(recur_net_model(t.net), m);
    recur_model_desc d;
    cr_assert_eq(recur_model_desc_get(m, &d), RECUR_OK);
    cr_assert_eq(d.num_layers, 2);
    double after = toy_loss(&t, RECUR_HEAD_ALL);
    cr_assert_eq(before, after, "the loss changed from %.9g to %.9g", before, after);
    toy_free(&t); /* frees the model with the net, once */
}

/* A net takes either tokens or vectors: the other one given is refused and
 * named, not silently ignored. */
Test(errors, the_other_input_is_refused) {
    struct toy t;
    toy_make(&t, "lstm", RECUR_HEAD_ALL, RECUR_DIR_FORWARD, 1, 13);
    float *x = calloc((size_t)t.T * t.N * 3, sizeof *x);
    cr_assert(x);
    recur_net_batch b = {.T = t.T, .N = t.N, .tokens = t.tokens, .x = x, .targets = t.targets};
    double loss = -1;
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, &loss, NULL), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(t.ctx), "batch->x given"), "%s", recur_ctx_error(t.ctx));
    cr_assert(strstr(recur_ctx_error(t.ctx), "embedding"), "%s", recur_ctx_error(t.ctx));
    cr_assert_eq(loss, -1, "a refused batch wrote the loss");
    b.x = NULL;
    cr_assert_eq(recur_net_forward(t.net, RECUR_MODE_TRAINING, &b, &loss, NULL), RECUR_OK, "%s",
                 recur_ctx_error(t.ctx));

    recur_net_desc d = {.model = {.cell = "rnn", .input_size = 3, .hidden_size = 4, .num_layers = 1},
                        .input = RECUR_INPUT_VECTOR, .head = RECUR_HEAD_ALL, .output_size = 5};
    recur_net *v;
    cr_assert_eq(recur_net_create(t.ctx, &d, &v), RECUR_OK, "%s", recur_ctx_error(t.ctx));
    recur_net_batch vb = {.T = t.T, .N = t.N, .x = x, .tokens = t.tokens, .targets = t.targets};
    cr_assert_eq(recur_net_forward(v, RECUR_MODE_INFERENCE, &vb, NULL, NULL), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(t.ctx), "batch->tokens given"), "%s", recur_ctx_error(t.ctx));
    vb.tokens = NULL;
    cr_assert_eq(recur_net_forward(v, RECUR_MODE_INFERENCE, &vb, NULL, NULL), RECUR_OK, "%s", recur_ctx_error(t.ctx));
    free(x);
    toy_free(&t); /* frees v with the context */
}
