/*
 * train.c: the training API (recur/recur-train.h) in one page. A character
 * language model learns one sentence, then writes it out greedily.
 *
 *   cc train.c $(pkg-config --cflags --libs recur) -o train && ./train
 *
 * Exits 1 unless the loss falls to a tenth of where it started.
 */
#include <recur/recur-train.h>
#include <stdio.h>
#include <string.h>

enum { STEPS = 16 /* per chunk (truncated BPTT) */, SEQS = 4 /* per batch */, H = 48 };

static int check(recur_status st, const char *what) {
    if (st != RECUR_OK) fprintf(stderr, "%s: %s: %s\n", what, recur_status_str(st), recur_last_error());
    return st != RECUR_OK;
}

int main(void) {
    const char *text = "the quick brown fox jumps over the lazy dog. ";
    size_t len = strlen(text);
    int id[256], V = 0;
    char sym[256];
    memset(id, -1, sizeof id);
    for (size_t i = 0; i < len; i++)
        if (id[(unsigned char)text[i]] < 0) sym[V] = text[i], id[(unsigned char)text[i]] = V++;

    recur_ctx *ctx;
    if (check(recur_ctx_create(&ctx, NULL), "recur_ctx_create")) return 1;
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = 16, .hidden_size = H, .num_layers = 1},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = V,
                        .head = RECUR_HEAD_ALL, .output_size = V, .loss = RECUR_LOSS_XENT};
    recur_net *net;
    recur_optim *opt;
    recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f);
    od.clip_norm = 5.0f;
    if (check(recur_net_create(ctx, &d, &net), "recur_net_create") ||
        check(recur_net_init(net, RECUR_INIT_UNIFORM, 42), "recur_net_init") ||
        check(recur_optim_create(&net, 1, &od, &opt), "recur_optim_create"))
        return 1;

    /* N streams through the text at different offsets; the state carries over. */
    int32_t tokens[STEPS * SEQS], targets[STEPS * SEQS];
    float h[SEQS * H] = {0}, c[SEQS * H] = {0};
    double first = 0, loss = 0;
    size_t pos = 0;
    for (int step = 0; step < 300; step++) {
        for (int t = 0; t < STEPS; t++)
            for (int n = 0; n < SEQS; n++) {
                size_t at = pos + (size_t)t + (size_t)n * 11;
                tokens[t * SEQS + n] = id[(unsigned char)text[at % len]];
                targets[t * SEQS + n] = id[(unsigned char)text[(at + 1) % len]];
            }
        pos += STEPS;
        recur_net_batch b = {.T = STEPS, .N = SEQS, .tokens = tokens, .targets = targets, .h0 = h, .c0 = c, .hT = h, .cT = c};
        if (check(recur_net_forward(net, RECUR_MODE_TRAINING, &b, &loss, NULL), "forward") ||
            check(recur_net_backward(net, &b, NULL, RECUR_GRAD_OVERWRITE), "backward") ||
            check(recur_optim_step(opt, NULL), "step"))
            return 1;
        if (step == 0) first = loss;
        if (step % 100 == 0 || step == 299) printf("step %3d  loss %.4f\n", step, loss);
    }

    /* Generation: one step at a time from 't', the state carried, greedy. */
    int32_t tok = id['t'];
    float hs[H] = {0}, cs[H] = {0}, logits[64];
    printf("t");
    for (int i = 0; i < 60; i++) {
        recur_net_batch b = {.T = 1, .N = 1, .tokens = &tok, .h0 = hs, .c0 = cs, .hT = hs, .cT = cs, .logits = logits};
        if (check(recur_net_forward(net, RECUR_MODE_INFERENCE, &b, NULL, NULL), "generate")) return 1;
        int best = 0;
        for (int k = 1; k < V; k++)
            if (logits[k] > logits[best]) best = k;
        tok = best;
        putchar(sym[best]);
    }
    printf("\n");
    recur_ctx_free(ctx); /* frees the net and the optimizer with it */
    return loss < first / 10 ? 0 : 1;
}
