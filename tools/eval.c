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
    fprintf(f, "usage: recur eval --model FILE [--corpus FILE] [--data FILE] [--size N] [--seed S]\n"
               "                  [--precision f32|bf16|f16]\n"
               "The quality of a checkpoint of recur train, on RECUR_DEVICE.\n"
               "  lm:             loss (nats) and bits per char over --corpus FILE, by default over the\n"
               "                  checkpoint's own validation text (its corpus, split as in training)\n"
               "  classify/dates: accuracy (dates: exact match) over N generated examples (default: the\n"
               "                  held-out set of the training, N = its --val-size); --seed S draws another\n"
               "  trained on --data: accuracy (classify), exact match (seq2seq) or loss (generate) over the\n"
               "                  checkpoint's held-out examples (its data file, rebuilt), or every example\n"
               "                  of --data FILE\n"
               "  --precision P:  of the matrix products (default: the checkpoint's, so that the loss is the\n"
               "                  one training reported; f32 evaluates a bf16-trained model in float32)\n");
}

/* A model trained on --data: over the checkpoint's held-out examples (its data
 * file, checked by its hash), or over every example of --data FILE. The exit code. */
static int eval_data(struct model *m, const recur_file *f, const char *model, const char *data) {
    struct dataset d;
    char err[1200];
    const char *path = data ? data : m->r.data;
    if (dataset_load(path, m->r.task != TASK_SEQ2SEQ, run_seed(&m->r, SEED_HELDOUT), m->r.val_frac, &d, err,
                     sizeof err)) {
        fprintf(stderr, "recur %s: data %s\n", CMD, err);
        return 1;
    }
    size_t from = d.n_train;
    if (!data) {
        if (!meta_hash_is(f, "recur.data_hash", d.hash)) {
            fprintf(stderr, "recur %s: data %s is not the file %s was trained on; give --data FILE\n", CMD, path,
                    model);
            dataset_free(&d);
            return 1;
        }
    } else {
        from = 0;
    }
    int n = (int)(d.n - from), rc = 1, bad = 0;
    const struct example **p = calloc((size_t)n, sizeof *p);
    struct examples e;
    m->Ta = m->r.task == TASK_SEQ2SEQ ? d.max_a : d.max_b;
    m->Tb = d.max_b + 1;
    if (!p || examples_alloc(&e, m, n)) {
        fprintf(stderr, "recur %s: out of memory for %d examples\n", CMD, n);
        free(p);
        dataset_free(&d);
        return 1;
    }
    for (int i = 0; i < n; i++) p[i] = &d.ex[from + (size_t)i];
    /* each example first, to name the line of one that does not fit the model */
    const struct example *x = NULL;
    for (int i = 0; i < n && !x; i++)
        if (examples_from_data(&e, m, &p[i], 1, &bad)) x = p[i];
    if (x || examples_from_data(&e, m, p, n, &bad)) {
        if (!x) x = p[0];
        if (bad == -2) fprintf(stderr, "recur %s: %s:%zu: the label '%s' is not one of the model's\n", CMD, path,
                               x->line, x->a);
        else if (bad >= 0) fprintf(stderr, "recur %s: %s:%zu: the byte 0x%02x is not in the model's vocabulary\n",
                                   CMD, path, x->line, bad);
        else fprintf(stderr, "recur %s: %s:%zu: longer than the model's examples\n", CMD, path, x->line);
    } else {
        double loss, acc;
        recur_status st = examples_eval(m, &e, &loss, &acc);
        if (st != RECUR_OK) model_fail(m, CMD, "evaluating", st);
        else {
            const char *what = data ? "examples of --data" : "held-out examples";
            if (m->r.task == TASK_GENERATE)
                printf("loss %.4f nats, %.4f bits per symbol (%d %s)\n", loss, loss / log(2), n, what);
            else
                printf("%s %.4f (%d/%d %s), loss %.4f\n", m->r.task == TASK_CLASSIFY ? "accuracy" : "exact match", acc,
                       (int)lround(acc * n), n, what, loss);
            rc = 0;
        }
    }
    examples_free(&e);
    free(p);
    dataset_free(&d);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *corpus = NULL, *data = NULL;
    int size = 0, precision = 0;
    uint64_t seed = 0;
    struct opt opts[] = {
        {.name = "--model", .kind = OPT_STRING, .dst = &model},
        {.name = "--corpus", .kind = OPT_STRING, .dst = &corpus},
        {.name = "--data", .kind = OPT_STRING, .dst = &data},
        {.name = "--size", .kind = OPT_INT, .dst = &size, .lo = 1, .hi = 1000000}, /* --val-size's range */
        {.name = "--seed", .kind = OPT_U64, .dst = &seed},
        {.name = "--precision", .kind = OPT_DTYPE, .dst = &precision},
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
            if (!meta_hash_is(f, "recur.corpus_hash", corpus_hash(&c)) || memcmp(&c.v, &m.v, sizeof c.v)) {
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
    if (run_has_data(&m.r)) {
        if (opt_given(opts, "--size") || opt_given(opts, "--seed"))
            rc = tool_usage_error(CMD, "--size and --seed are for generated examples; %s was trained on --data", model);
        else
            rc = eval_data(&m, f, model, data);
        goto out;
    }
    if (data) {
        rc = tool_usage_error(CMD, "--data is for models trained on --data; %s is not", model);
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
