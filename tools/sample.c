/*
 * sample.c: `recur sample`, generation from a checkpoint of recur train:
 *   lm        one-to-many: --n samples from '\n' (+ --start), softmax with a
 *             temperature over the top-k tokens, seeded
 *   dates     --input "3rd of March 1998": the greedy ISO translation
 *             (without --input: --n random dates and their translations)
 *   classify  --input "0 1 2 1 0": the class (without: --n random sequences)
 *   --data models: classify --input TEXT (its label), seq2seq --input SOURCE
 *             (greedy), generate [--input LABEL] (--n sequences, sampled)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#define CMD "sample"

static void usage(FILE *f) {
    fprintf(f, "usage: recur sample --model FILE [--n K] [--length L] [--temperature X] [--top-k K] [--seed S]\n"
               "                    [--start TEXT] [--input TEXT] [--precision f32|bf16|f16]\n"
               "Generate from a checkpoint of recur train (runs/TASK/checkpoint.safetensors) on RECUR_DEVICE.\n"
               "  lm:       K samples (8), one per line, each from a newline and TEXT (--start) to the next\n"
               "            newline or L bytes (100); temperature 0.8 (0: greedy), top-k 0 (all), seed 1\n"
               "  dates:    --input \"3rd of March 1998\" prints its ISO 8601 form (greedy decoding);\n"
               "            without --input, K random dates and their translations\n"
               "  classify: --input \"0 1 2 1 0\" prints the class (1: the first symbol is the last one);\n"
               "            without --input, K random sequences\n"
               "  trained on --data (docs/tasks.md):\n"
               "    classify: --input TEXT prints its label and probability\n"
               "    seq2seq:  --input SOURCE prints the greedy decoding (at most L bytes)\n"
               "    generate: K sequences (LABEL<TAB>TEXT), of --input LABEL or of each label in turn;\n"
               "              temperature, top-k and seed as for lm\n"
               "  --precision P: of the matrix products (default: the checkpoint's, as it trained)\n");
}

/* "0 1 2, 3" -> symbols; -1 naming the bad one. */
static int parse_symbols(const char *s, int alphabet, int32_t *out, int cap, int *n) {
    *n = 0;
    while (*s) {
        if (*s == ' ' || *s == ',' || *s == '\t') {
            s++;
            continue;
        }
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v >= alphabet || *n >= cap) return -1;
        out[(*n)++] = (int32_t)v;
        s = end;
        if (*s && *s != ' ' && *s != ',' && *s != '\t') return -1;
    }
    return *n ? 0 : -1;
}

/* classify with --data: the label of TEXT. -1 after a message. */
static int classify_text(struct model *m, const char *input) {
    struct example x = {.b = input, .lb = (int)strlen(input)};
    const struct example *p = &x;
    struct examples e;
    float *logits = malloc((size_t)m->K * sizeof *logits);
    int bad = 0, rc = -1;
    if (!logits || examples_alloc(&e, m, 1)) {
        fprintf(stderr, "recur %s: out of memory\n", CMD);
        free(logits);
        return -1;
    }
    if (examples_from_data(&e, m, &p, 1, &bad)) {
        if (bad < 0) fprintf(stderr, "recur %s: --input: expected 1..%d bytes\n", CMD, DATA_FIELD_MAX);
        else fprintf(stderr, "recur %s: --input: the byte 0x%02x ('%c') is not in the model's vocabulary\n", CMD, bad,
                     bad >= 32 && bad < 127 ? bad : '?');
    } else {
        recur_status st = classify_logits(m, &e, logits);
        if (st != RECUR_OK) {
            model_fail(m, CMD, "classifying", st);
        } else { /* the softmax's largest */
            int k = sample_logits(logits, m->K, 0, 0, NULL);
            double sum = 0;
            for (int i = 0; i < m->K; i++) sum += exp((double)logits[i] - logits[k]);
            printf("%s (p %.3f)\n", m->labels.name[k], 1 / sum);
            rc = 0;
        }
    }
    examples_free(&e);
    free(logits);
    return rc;
}

/* A model trained on --data: classify --input TEXT; seq2seq --input SOURCE;
 * generate [--input LABEL] --n K. The exit code. */
static int sample_data(struct model *m, const struct opt *opts, const char *input, int n, int length,
                       double temperature, int top_k, struct rng *r) {
    int task = m->r.task;
    const char *const not_classify[] = {"--start", "--length", "--temperature", "--top-k", "--n", NULL},
                      *const not_seq2seq[] = {"--start", "--temperature", "--top-k", "--n", NULL},
                      *const not_generate[] = {"--start", NULL};
    const char *const *bad = task == TASK_CLASSIFY ? not_classify : task == TASK_SEQ2SEQ ? not_seq2seq : not_generate;
    for (; *bad; bad++)
        if (opt_given(opts, *bad))
            return tool_usage_error(CMD, "%s is not an option of a %s model", *bad, task_names[task]);
    if (task != TASK_GENERATE && !input)
        return tool_usage_error(CMD, "--input %s is required for a %s model", task == TASK_CLASSIFY ? "TEXT" : "SOURCE",
                                task_names[task]);
    if (task == TASK_CLASSIFY) return classify_text(m, input) ? 1 : 0;
    if (task == TASK_SEQ2SEQ) {
        struct example x = {.a = input, .la = (int)strlen(input)};
        return data_decode_print(m, CMD, &x, 1, length, 0, 0, NULL, stdout) ? 1 : 0;
    }
    struct example *ex = calloc((size_t)n, sizeof *ex);
    if (!ex) return 1;
    for (int i = 0; i < n; i++) ex[i].a = input ? input : m->labels.name[i % m->labels.n];
    int rc = data_decode_print(m, CMD, ex, n, length, temperature, top_k, r, stdout) ? 1 : 0;
    free(ex);
    return rc;
}

int cmd_sample(int argc, char **argv) {
    const char *model = NULL, *start = NULL, *input = NULL;
    int n = 8, length = 100, top_k = 0, precision = 0;
    double temperature = 0.8;
    uint64_t seed = 1;
    struct opt opts[] = {
        {.name = "--model", .kind = OPT_STRING, .dst = &model},
        {.name = "--n", .kind = OPT_INT, .dst = &n, .lo = 1, .hi = 100000},
        {.name = "--length", .kind = OPT_INT, .dst = &length, .lo = 1, .hi = 1000000},
        {.name = "--temperature", .kind = OPT_DOUBLE, .dst = &temperature, .lo = 0, .hi = 100},
        {.name = "--top-k", .kind = OPT_INT, .dst = &top_k, .lo = 0, .hi = 256},
        {.name = "--seed", .kind = OPT_U64, .dst = &seed},
        {.name = "--start", .kind = OPT_TEXT, .dst = &start},
        {.name = "--input", .kind = OPT_STRING, .dst = &input},
        {.name = "--precision", .kind = OPT_DTYPE, .dst = &precision},
        {.name = NULL},
    };
    recur_ctx *ctx;
    struct model m;
    int rc = cmd_begin_model(CMD, argc, argv, opts, usage, &model, &ctx, &m, NULL);
    if (rc >= 0) return rc;
    rc = 1;
    struct rng r = {seed};
    const char *task = task_names[m.r.task];
    if (m.r.task == TASK_LM) {
        if (input) {
            rc = tool_usage_error(CMD, "--input is for dates and classify models; %s is an lm (--start primes it)",
                                  model);
            goto out;
        }
        rc = lm_sample(&m, CMD, n, length, temperature, top_k, &r, start ? start : "", stdout) ? 1 : 0;
        goto out;
    }
    if (run_has_data(&m.r)) {
        rc = sample_data(&m, opts, input, n, length, temperature, top_k, &r);
        goto out;
    }
    if (start || opt_given(opts, "--top-k") || opt_given(opts, "--temperature") || opt_given(opts, "--length")) {
        rc = tool_usage_error(CMD, "--start, --length, --temperature and --top-k are for lm models; %s is a %s "
                                   "model (use --input)", model, task);
        goto out;
    }
    struct examples e;
    if (examples_alloc(&e, &m, input ? 1 : n)) {
        fprintf(stderr, "recur %s: out of memory for --n %d examples\n", CMD, input ? 1 : n);
        goto out;
    }
    if (m.r.task == TASK_CLASSIFY) {
        int32_t *seq = malloc(4096 * sizeof *seq);
        float *logits = malloc((size_t)e.n * 2 * sizeof *logits);
        int len = 0;
        if (!seq || !logits) {
            fprintf(stderr, "recur %s: out of memory for --n %d sequences\n", CMD, e.n);
        } else if (input && parse_symbols(input, m.r.alphabet, seq, 4096, &len)) {
            rc = tool_usage_error(CMD, "--input '%s': expected 1..4096 symbols 0..%d separated by spaces", input,
                                  m.r.alphabet - 1);
        } else {
            if (input) {
                /* One sequence of any length: its own batch. */
                examples_free(&e);
                e = (struct examples){.n = 1, .T = len, .tok = seq, .len = &len};
            } else {
                examples_draw(&e, &m, &r);
            }
            recur_status st = classify_logits(&m, &e, logits);
            if (st != RECUR_OK) {
                model_fail(&m, CMD, "classifying", st);
            } else {
                for (int b = 0; b < e.n; b++) {
                    double z = (double)logits[2 * b + 1] - logits[2 * b], p1 = 1 / (1 + exp(-z));
                    int cls = p1 > 0.5;
                    if (input) {
                        printf("class %d (p %.3f)\n", cls, cls ? p1 : 1 - p1);
                    } else {
                        for (int t = 0; t < e.len[b]; t++) printf("%s%d", t ? " " : "", e.tok[t * e.n + b]);
                        printf(" -> class %d (p %.3f), label %d%s\n", cls, cls ? p1 : 1 - p1, e.label[b],
                               cls == e.label[b] ? "" : "  (wrong)");
                    }
                }
                rc = 0;
            }
            if (input) e = (struct examples){0};
        }
        free(seq), free(logits);
        examples_free(&e);
        goto out;
    }
    /* dates */
    char(*got)[DATE_ISO_LEN + 1] = calloc((size_t)e.n, sizeof *got);
    int bad = 0;
    if (!got) {
        fprintf(stderr, "recur %s: out of memory for --n %d dates\n", CMD, e.n);
    } else if (input && examples_from_text(&e, &m, &input, 1, &bad)) {
        if (bad < 0)
            rc = tool_usage_error(CMD, "--input '%s': expected 1..%d bytes", input, DATE_SRC_MAX);
        else
            rc = tool_usage_error(CMD, "--input '%s': the character '%c' (0x%02x) is not in the model's source "
                                       "vocabulary", input, bad >= 32 && bad < 127 ? bad : '?', bad);
    } else {
        if (!input) examples_draw(&e, &m, &r);
        recur_status st = dates_greedy(&m, &e, got);
        if (st != RECUR_OK) {
            model_fail(&m, CMD, "translating", st);
        } else {
            for (int b = 0; b < e.n; b++) {
                if (input) printf("%s\n", got[b]);
                else printf("%-28s -> %s%s\n", e.src[b], got[b], strcmp(got[b], e.iso[b]) ? "  (wrong)" : "");
            }
            rc = 0;
        }
    }
    free(got);
    examples_free(&e);
out:
    model_free(&m);
    recur_ctx_free(ctx);
    return rc;
}
