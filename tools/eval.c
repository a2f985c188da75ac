/*
 * eval.c: `recur eval`, the quality of a checkpoint of recur train:
 *   lm        mean cross-entropy (nats) and bits per char over a text: by
 *             default the checkpoint's own validation split, rebuilt from its
 *             settings (the number training reported), or --corpus FILE
 *   classify  held-out accuracy over a generated set
 *   dates     exact match of the greedy translations over a generated set
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#define CMD "eval"

static void usage(FILE *f) {
    fprintf(f, "usage: recur eval --model FILE [--corpus FILE] [--size N] [--seed S]\n"
               "The quality of a checkpoint of recur train, on RECUR_DEVICE.\n"
               "  lm:             loss (nats) and bits per char over --corpus FILE, by default over the\n"
               "                  checkpoint's own validation text (its corpus, split as in training)\n"
               "  classify/dates: accuracy (dates: exact match) over N generated examples (default: the\n"
               "                  held-out set of the training, N = its --val-size); --seed S draws another\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *corpus = NULL;
    int size = 0;
    uint64_t seed = 0;
    struct opt opts[] = {
        {.name = "--model", .kind = OPT_STRING, .dst = &model},
        {.name = "--corpus", .kind = OPT_STRING, .dst = &corpus},
        {.name = "--size", .kind = OPT_INT, .dst = &size, .lo = 1, .hi = 1000000}, /* --val-size's range */
        {.name = "--seed", .kind = OPT_U64, .dst = &seed},
        {.name = NULL},
    };
    recur_ctx *ctx;
    struct model m;
    recur_file *f = NULL;
    int rc = cmd_begin_model(CMD, argc, argv, opts, usage, &model, &ctx, &m, &f);
    if (rc >= 0) return rc;
    rc = 1;
    if (m.r.task == TASK_LM) {
        if (opt_given(opts, "--size") || opt_given(opts, "--seed")) {
            rc = tool_usage_error(CMD, "--size and --seed are for classify and dates models; %s is an lm", model);
            goto out;
        }
        struct corpus c;
        int32_t *s = NULL;
        size_t n = 0;
        char what[4200];
        if (!corpus) {
            if (run_corpus(&m.r, CMD, &c)) goto out;
            char mine[32];
            snprintf(mine, sizeof mine, "%016llx", (unsigned long long)corpus_hash(&c));
            const char *h = recur_file_meta(f, "recur.corpus_hash");
            if (!h || strcmp(h, mine) || memcmp(&c.v, &m.v, sizeof c.v)) {
                fprintf(stderr, "recur %s: corpus %s is not the text %s was trained on; give --corpus FILE\n", CMD,
                        m.r.corpus, model);
                corpus_free(&c);
                goto out;
            }
            s = c.val, n = c.n_val;
            snprintf(what, sizeof what, "the validation text of %s", m.r.corpus);
        } else {
            char err[1024];
            if (corpus_load(corpus, 0, 1e-9, 1, &c, err, sizeof err)) {
                fprintf(stderr, "recur %s: %s\n", CMD, err);
                goto out;
            }
            n = c.n_train + c.n_val;
            s = malloc((n ? n : 1) * sizeof *s);
            if (!s) {
                fprintf(stderr, "recur %s: corpus %s: out of memory for %zu tokens\n", CMD, corpus, n);
                corpus_free(&c);
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                unsigned char ch = c.v.sym[i < c.n_train ? c.train[i] : c.val[i - c.n_train]];
                s[i] = m.v.id[ch];
                if (s[i] < 0) {
                    fprintf(stderr, "recur %s: corpus %s: byte 0x%02x ('%c') at offset %zu is not in the model's "
                                    "vocabulary\n", CMD, corpus, ch, ch >= 32 && ch < 127 ? ch : '?', i);
                    free(s);
                    corpus_free(&c);
                    goto out;
                }
            }
            snprintf(what, sizeof what, "%s", corpus);
        }
        int N = m.r.batch;
        if (n / (size_t)N < 2) N = (int)(n / 2);
        double loss = 0;
        long long count = 0;
        recur_status st = N >= 1 ? lm_stream_loss(&m, s, n, N, m.r.bptt, &loss, &count) : RECUR_ERR_ARG;
        if (st != RECUR_OK) {
            if (N < 1) fprintf(stderr, "recur %s: %s is too short to evaluate (%zu bytes)\n", CMD, what, n);
            else model_fail(&m, CMD, "evaluating", st);
        } else {
            printf("loss %.4f nats, %.4f bits per char over %lld targets (%s)\n", loss, loss / log(2), count, what);
            rc = 0;
        }
        if (corpus) free(s);
        corpus_free(&c);
        goto out;
    }
    if (corpus) {
        rc = tool_usage_error(CMD, "--corpus is for lm models; %s is a %s model", model, task_names[m.r.task]);
        goto out;
    }
    struct examples e;
    int n = size ? size : m.r.val_size;
    if (examples_alloc(&e, &m, n)) {
        fprintf(stderr, "recur %s: out of memory for --size %d\n", CMD, n);
        goto out;
    }
    struct rng r = {opt_given(opts, "--seed") ? seed : run_seed(&m.r, SEED_HELDOUT)};
    examples_draw(&e, &m, &r);
    double loss, acc;
    recur_status st = examples_eval(&m, &e, &loss, &acc);
    if (st != RECUR_OK) {
        model_fail(&m, CMD, "evaluating", st);
    } else {
        int right = (int)lround(acc * n);
        if (m.r.task == TASK_CLASSIFY)
            printf("accuracy %.4f (%d/%d %s sequences), loss %.4f\n", acc, right, n,
                   opt_given(opts, "--seed") ? "generated" : "held-out", loss);
        else
            printf("exact match %.4f (%d/%d %s dates), loss %.4f\n", acc, right, n,
                   opt_given(opts, "--seed") ? "generated" : "held-out", loss);
        rc = 0;
    }
    examples_free(&e);
out:
    recur_file_free(f);
    model_free(&m);
    recur_ctx_free(ctx);
    return rc;
}
