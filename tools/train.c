/*
 * train.c: `recur train`, training a recurrent net on one of five tasks
 * (docs/tasks.md):
 *
 *   lm        many-to-many: a character-level language model of a text
 *             (default: Debian's word list, lines shuffled)
 *   classify  many-to-one: is the first symbol of a sequence its last one?
 *             or, with --data FILE, the label of each LABEL<TAB>SEQUENCE line
 *   generate  one-to-many: a sequence from its label (--data, LABEL<TAB>SEQUENCE)
 *   seq2seq   encoder-decoder: SOURCE<TAB>TARGET lines (--data)
 *   dates     encoder-decoder: dates in human formats to ISO 8601
 *
 * with a learning-rate schedule (warm-up, then constant, cosine or step),
 * early stopping on the validation loss, the best checkpoint kept beside the
 * last, gradient accumulation, and a metrics file (a JSON line per evaluation);
 * and checkpoints that resume bit for bit (on the CPU backend, training
 * --steps 40 then --resume --steps 80 writes the same file as --steps 80):
 * a checkpoint holds the nets, the optimizer's state, every setting, the
 * data generator's state, the lm's carried state and the loss histories, and
 * nothing that depends on when or where it was written. Evaluation runs in
 * inference mode on its own buffers and draws from its own generator, so
 * when it runs changes nothing of the training.
 *
 * The lm's batching (bench/torch_compare.py reproduces it): the training
 * stream S of n tokens is cut into N = --batch columns of cl = n / N tokens
 * (the rest dropped); chunks = (cl - 1) / T with T = --bptt; step k reads
 * tokens[t][b] = col_b[p + t], targets[t][b] = col_b[p + t + 1] with
 * p = (k % chunks) * T, carries the final states into the next step and
 * starts from zeros when k % chunks == 0 (truncated BPTT). Validation: the
 * same columns over the validation stream, every target counted (the last
 * chunk may be shorter), state carried from zeros.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

#define CMD "train"
#define SAMPLE_MAXLEN 100

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* The Ctrl-C handler runs on a stack of its own (SA_ONSTACK). While a CPU
 * product runs in this thread, oneDNN's JIT GEMM kernels (oneDNN issue
 * 4845, fixed in March 2026, after Debian 12's 2.6.3) point rsp into the
 * heap, and a handler taken there wrote its signal frame over heap memory:
 * glibc aborted at a later free() about one Ctrl-C in 30. recur's worker
 * threads block the signal, so it comes to this thread. 1: a stack was set
 * here (handler_stack_off takes it back); 0: the thread had one already (a
 * sanitizer's); -1: none could be set. */
static int handler_stack_on(void) {
    static _Alignas(64) char mem[256 * 1024]; /* AVX-512 state alone is 2.7 KB of the frame */
    stack_t had, ss = {.ss_sp = mem, .ss_size = sizeof mem, .ss_flags = 0};
    if (sigaltstack(NULL, &had) == 0 && !(had.ss_flags & SS_DISABLE)) return 0;
    return sigaltstack(&ss, NULL) == 0 ? 1 : -1;
}

static void handler_stack_off(int set) {
    stack_t off = {.ss_flags = SS_DISABLE};
    if (set == 1) sigaltstack(&off, NULL);
}

/* A run of recur train: the invocation, the nets, the data and the histories. */
struct trainer {
    /* the invocation (train_settings) */
    int resume, quiet, samples, top_k;
    double temperature;
    int corpus_given; /* --corpus given: not the default corpus */
    int precision_given;  /* --precision given (else the checkpoint's, or f32) */
    int ck_precision;     /* --resume: the checkpoint's precision */
    struct run run;   /* the settings, until train_open makes m (then m.r) */
    recur_file *ck;   /* --resume: the checkpoint, open until restored */
    char out[4096], ckpt[4200], svg[4200], best[4200], metrics[4200];
    /* the model (train_open) */
    recur_ctx *ctx;
    struct model m;
    recur_optim *opt;
    long long step; /* steps done */
    struct rng data;
    /* lm under mpirun (tools/dist.c): this rank's columns b0..b0+nb-1 of the batch */
    int nb, b0;
    /* lm */
    struct corpus corp;
    int have_corpus;
    /* --data: the examples; batch: room for a step's pointers into them */
    struct dataset ds;
    int have_data, data_given;
    const struct example **batch;
    size_t cl, chunks;
    uint64_t hash;
    int32_t *tok, *tgt;
    /* lm: the carried state (between checkpoints only on the device, in
     * dev_h and dev_c); dates: the encoder's final states */
    float *h, *c, *hT, *cT;
    /* lm: a step's tokens and targets and the carried state on the device
     * (recur_buffer), so a training step waits for the device once */
    recur_buffer *dev_tok, *dev_tgt, *dev_h, *dev_c;
    float *dh, *dc; /* dates: the decoder's dh0, dc0 */
    struct examples ex, held;
    /* the loop (train_loop) */
    struct curve loss, val, acc;
    struct curve scale, skips; /* at each evaluation with a loss scale: the scale, the steps skipped so far */
    int val_final; /* the last val point is the end-of-run one, off the schedule */
    double train_s, tokens;
    double t_start, last_loss, vloss, vacc;
    long long first; /* the step this invocation started from */
    /* early stopping and the best checkpoint (in the checkpoint: recur.best_loss, best_step, bad_evals) */
    double best_loss;   /* the lowest scheduled validation loss so far (INFINITY: none yet) */
    long long best_step;
    int bad_evals;      /* scheduled evaluations since best_step */
};

/* Steps skipped for an overflow at the loss scale (recur.skipped): the run's steps the optimizer
 * did not count (recur_optim_step skips them without an update). */
static long long skipped_steps(const struct trainer *t) { return t->step - recur_optim_steps(t->opt); }

static void usage(FILE *f) {
    fprintf(f,
            "usage: recur train [OPTIONS]\n"
            "Train a recurrent net on RECUR_DEVICE; checkpoints, a loss curve and (lm) samples in --out.\n\n"
            "the task:\n"
            "  --task lm|classify|generate|seq2seq|dates\n"
            "                        lm: character-level language model (many-to-many, default);\n"
            "                        classify: a label for a sequence (many-to-one; without --data: is\n"
            "                        the first symbol the last one); generate: a sequence from a label\n"
            "                        (one-to-many); seq2seq: a sequence to another (encoder-decoder);\n"
            "                        dates: human dates to ISO 8601 (encoder-decoder)\n"
            "  --data FILE           classify, generate: LABEL<TAB>SEQUENCE a line; seq2seq:\n"
            "                        SOURCE<TAB>TARGET; a regular file of at most 64 MiB (docs/tasks.md)\n"
            "  --corpus FILE         lm: the text, a regular file of at most 256 MiB (default %s,\n"
            "                        lines shuffled)\n"
            "  --shuffle             lm: shuffle the lines of --corpus too\n"
            "  --val-frac F          lm: the last F of the lines are the validation text; --data: the\n"
            "                        share of the examples held out (0.05)\n"
            "  --alphabet A, --min-len N, --max-len N   classify without --data: symbols and lengths\n"
            "                        (8, 2, 30)\n"
            "  --val-size N          classify without --data, dates: the held-out set (1000)\n"
            "the net:\n"
            "  --cell NAME           any loaded cell plugin (lstm); --variant NAME its variant\n"
            "  --hidden H, --layers L, --embed E   (lm 256 1 32; classify 64 1 16; others 128 1 32)\n"
            "  --direction forward|reverse|bidi_concat|bidi_sum   (all but classify: forward only;\n"
            "                        the older bidi, concat and sum are accepted too)\n"
            "  --dropout P           between layers (0)\n"
            "  --zoneout P           of every layer's states in training (0; Krueger et al. 2016)\n"
            "  --proj P              project each layer's output to P < H units (0: none; LSTM with\n"
            "                        projection, PyTorch's proj_size; lstm, lstm-peephole, lstm-ln)\n"
            "  --init uniform|orthogonal   (uniform: PyTorch's); --seed S (1)\n"
            "training:\n"
            "  --precision f32|bf16|f16   of the matrix products (f32): bf16 rounds their operands to\n"
            "                        bfloat16 (f16: IEEE half) and sums in float32; bf16 also keeps the\n"
            "                        values saved for backward in bf16 (half their memory); the weights,\n"
            "                        states and gradients stay float32. A device that cannot refuses it.\n"
            "                        With --resume: the checkpoint's unless given (it may change: the\n"
            "                        weights are float32)\n"
            "  --loss-scale auto|off|S   dynamic loss scaling from S, a power of two in 1..2^100: the loss\n"
            "                        times S before backward, so small f16 gradients keep their bits; a step\n"
            "                        whose gradients overflow is skipped and S halved, S doubles after\n"
            "                        --loss-scale-interval N steps without one (2000). auto: 65536 in f16,\n"
            "                        off otherwise. With --resume: the checkpoint's unless given\n"
            "  --steps N             total steps, counting resumed ones; 0: save the initial net (lm 7000,\n"
            "                        classify 5000, generate 2000, seq2seq and dates 3000)\n"
            "  --batch N             sequences per step (lm 32, classify 32, generate 32, others 64)\n"
            "  --bptt T              lm: steps per chunk (64)\n"
            "  --optim adam|sgd, --lr X, --momentum M (sgd), --clip G (global norm, 0: off; 5)\n"
            "                        lr: lm 2e-3, the others 3e-3\n"
            "  --eval-every N, --checkpoint-every N   (classify 500 1000, the others 250 1000)\n"
            "  --lr-schedule constant|cosine|step   after --warmup N steps of linear warm-up (0):\n"
            "                        constant; cosine down to lr/100 at --steps; step: times --lr-gamma G\n"
            "                        (0.5) every --lr-decay-every N steps (1000)\n"
            "  --patience P          stop when P evaluations in a row do not lower the validation loss\n"
            "                        (0: never)\n"
            "  --accum K             add the gradients of K batches before each step (1)\n"
            "  --out DIR             (runs/TASK): checkpoint.safetensors (the last), best.safetensors (the\n"
            "                        lowest validation loss), loss.svg and metrics.jsonl (a line an evaluation)\n"
            "  --resume              continue DIR's checkpoint to --steps, with its settings\n"
            "  --samples K, --temperature X, --top-k K   lm, generate: samples printed at the end (8, 0.8,\n"
            "                        0: all)\n"
            "  --quiet               no progress line on stderr (validation lines stay)\n"
            "Ctrl-C saves a checkpoint after the current step (exit 130); --resume continues it.\n",
            CORPUS_DEFAULT);
}

/* ---- histories as tensors [n, 2] ---- */

static recur_status put_curve(recur_file *f, const char *name, const struct curve *c) {
    if (c->n == 0) return RECUR_OK;
    float *d = malloc(c->n * 2 * sizeof *d);
    if (!d) return RECUR_ERR_NO_MEMORY;
    for (size_t i = 0; i < c->n; i++) d[2 * i] = (float)c->x[i], d[2 * i + 1] = (float)c->y[i];
    int64_t shape[2] = {(int64_t)c->n, 2};
    recur_status st = recur_file_put_tensor(f, name, 2, shape, d);
    free(d);
    return st;
}

/* A history from a checkpoint: its steps (x) whole, in 0..max_x (as a float
 * stores it) and in order, or -1; the values are the caller's to check. */
static int get_curve(const recur_file *f, const char *name, struct curve *c, long long max_x) {
    int nd;
    int64_t shape[4];
    if (recur_file_tensor(f, name, &nd, shape, NULL, 0) != RECUR_OK) return 0; /* absent: empty */
    if (nd != 2 || shape[1] != 2 || shape[0] < 0 || shape[0] > (int64_t)1 << 30) return -1;
    size_t n = (size_t)shape[0];
    float *d = malloc((n ? n : 1) * 2 * sizeof *d);
    if (!d || recur_file_tensor(f, name, &nd, shape, d, n * 2) != RECUR_OK) {
        free(d);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        double x = d[2 * i];
        if (!(x >= (i ? d[2 * i - 2] : 0) && x <= (double)(float)max_x && x == floor(x)) ||
            curve_add(c, x, d[2 * i + 1])) {
            free(d);
            return -1;
        }
    }
    free(d);
    return 0;
}

/* The loss scale's history: powers of two in 1..2^100; the skips: at the same steps (both are
 * added at each evaluation), whole, 0..their step. */
static int scale_curves_ok(const struct curve *scale, const struct curve *skips) {
    if (scale->n != skips->n) return 0;
    for (size_t i = 0; i < scale->n; i++) {
        int e;
        double s = scale->y[i], k = skips->y[i];
        if (scale->x[i] != skips->x[i] || !(frexp(s, &e) == 0.5 && s >= 1 && s <= LOSS_SCALE_MAX) ||
            !(k >= 0 && k <= skips->x[i] && k == floor(k)))
            return 0;
    }
    return 1;
}

/* Floats of a carried state, a (k 0: [LD, nb, P]) or c (k 1: [LD, nb, H]): this rank's columns. */
static size_t state_count(const struct trainer *t, int k) {
    return (size_t)t->m.LD * (t->nb ? t->nb : t->m.r.batch) * (k ? t->m.H : t->m.P);
}

static int save_checkpoint_file(struct trainer *t, const char *path, const float *h, const float *c);

/* lm: the carried state from the device into t->h, t->c (a wait; at checkpoints only). */
static int states_from_device(struct trainer *t) {
    recur_status st = recur_buffer_read(t->dev_h, 0, t->h, state_count(t, 0));
    if (st == RECUR_OK && t->dev_c) st = recur_buffer_read(t->dev_c, 0, t->c, state_count(t, 1));
    if (st != RECUR_OK) fprintf(stderr, "recur %s: reading the carried state: %s\n", CMD, recur_ctx_error(t->ctx));
    return st == RECUR_OK ? 0 : -1;
}

/* lm: t->h, t->c (zeros, or a checkpoint's) onto the device, without waiting. */
static int states_to_device(struct trainer *t) {
    recur_status st = recur_buffer_write(t->dev_h, 0, t->h, state_count(t, 0));
    if (st == RECUR_OK && t->dev_c) st = recur_buffer_write(t->dev_c, 0, t->c, state_count(t, 1));
    if (st != RECUR_OK) fprintf(stderr, "recur %s: writing the carried state: %s\n", CMD, recur_ctx_error(t->ctx));
    return st == RECUR_OK ? 0 : -1;
}

static int save_checkpoint(struct trainer *t, const char *path) {
    if (t->m.r.task == TASK_LM && t->dev_h && states_from_device(t)) return -1;
    /* Under mpirun every rank gives its columns of the carried state, rank 0 writes. */
    float *h = t->h, *c = t->c, *fh = NULL, *fc = NULL;
    if (t->m.r.task == TASK_LM && dist_size() > 1) {
        size_t full = (size_t)t->m.LD * t->m.r.batch * t->m.P, fullc = (size_t)t->m.LD * t->m.r.batch * t->m.H;
        if (dist_rank() == 0) {
            fh = malloc(full * sizeof *fh);
            if (t->m.states == 2) fc = malloc(fullc * sizeof *fc);
            if (!fh || (t->m.states == 2 && !fc)) {
                fprintf(stderr, "recur %s: rank 0: out of memory gathering the carried state\n", CMD);
                free(fh), free(fc);
                return -1;
            }
        }
        int bad = dist_gather_rows(fh, t->h, t->m.LD, t->nb, t->m.P);
        if (!bad && t->m.states == 2) bad = dist_gather_rows(fc, t->c, t->m.LD, t->nb, t->m.H);
        if (bad) {
            fprintf(stderr, "recur %s: rank %d: gathering the carried state failed (MPI)\n", CMD, dist_rank());
            free(fh), free(fc);
            return -1;
        }
        h = fh, c = fc;
    }
    if (dist_rank() != 0) return 0;
    int rc = save_checkpoint_file(t, path, h, c);
    free(fh), free(fc);
    return rc;
}

/* The checkpoint file, with the carried state h, c ([LD, batch, P] and [LD, batch, H]). */
static int save_checkpoint_file(struct trainer *t, const char *path, const float *h, const float *c) {
    recur_file *f;
    if (recur_file_create(&f) != RECUR_OK) {
        fprintf(stderr, "recur %s: %s\n", CMD, recur_last_error());
        return -1;
    }
    const char *const *pre = model_prefixes(&t->m);
    recur_status st = RECUR_OK;
    for (int i = 0; i < t->m.n_nets && st == RECUR_OK; i++) st = recur_file_put_net(f, pre[i], t->m.net[i]);
    if (st == RECUR_OK) st = recur_file_put_optim(f, t->opt, pre);
    if (st == RECUR_OK) st = run_to_file(f, &t->m);
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", t->step);
    if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.step", buf);
    snprintf(buf, sizeof buf, "%016" PRIx64, t->data.s);
    if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.rng", buf);
    if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.val_final", t->val_final ? "1" : "0");
    snprintf(buf, sizeof buf, "%.17g", t->best_loss);
    if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.best_loss", buf);
    snprintf(buf, sizeof buf, "%lld", t->best_step);
    if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.best_step", buf);
    snprintf(buf, sizeof buf, "%d", t->bad_evals);
    if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.bad_evals", buf);
    snprintf(buf, sizeof buf, "%lld", skipped_steps(t));
    if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.skipped", buf);
    if (t->have_data) {
        snprintf(buf, sizeof buf, "%016" PRIx64, t->ds.hash);
        if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.data_hash", buf);
    }
    if (t->m.r.task == TASK_LM) {
        snprintf(buf, sizeof buf, "%016" PRIx64, t->hash);
        if (st == RECUR_OK) st = recur_file_put_meta(f, "recur.corpus_hash", buf);
        int64_t shape[3] = {t->m.LD, t->m.r.batch, t->m.P}, shapec[3] = {t->m.LD, t->m.r.batch, t->m.H};
        if (st == RECUR_OK) st = recur_file_put_tensor(f, "train.h", 3, shape, h);
        if (st == RECUR_OK && t->m.states == 2) st = recur_file_put_tensor(f, "train.c", 3, shapec, c);
    }
    if (st == RECUR_OK) st = put_curve(f, "train.loss", &t->loss);
    if (st == RECUR_OK) st = put_curve(f, "train.val", &t->val);
    if (st == RECUR_OK && task_has_accuracy(t->m.r.task)) st = put_curve(f, "train.accuracy", &t->acc);
    if (st == RECUR_OK) st = put_curve(f, "train.loss_scale", &t->scale);
    if (st == RECUR_OK) st = put_curve(f, "train.skipped", &t->skips);
    if (st == RECUR_OK) st = recur_file_save(f, path);
    if (st != RECUR_OK) fprintf(stderr, "recur %s: saving the checkpoint %s: %s\n", CMD, path, recur_last_error());
    recur_file_free(f);
    return st == RECUR_OK ? 0 : -1;
}

/* A carried state of a checkpoint ([LD, batch, W], W: P for h, H for c) into
 * dst: under mpirun, this rank's columns of it. Non-zero on failure
 * (recur_last_error says why). */
static int read_state(const struct trainer *t, const recur_file *f, const char *name, int W, float *dst) {
    size_t n = (size_t)t->m.LD * t->m.r.batch * W;
    int nd;
    int64_t shape[4];
    float *full = dist_size() > 1 ? malloc(n * sizeof *full) : dst;
    if (!full) {
        fprintf(stderr, "recur %s: out of memory for the carried state (%zu floats)\n", CMD, n);
        return -1;
    }
    int bad = recur_file_tensor(f, name, &nd, shape, full, n) != RECUR_OK;
    if (full != dst) {
        if (!bad) dist_slice_rows(dst, full, t->m.LD, t->nb, W);
        free(full);
    }
    return bad;
}

/* Restore what a checkpoint holds beyond the nets. -1 after printing. */
static int restore(struct trainer *t, const recur_file *f) {
    const char *path = t->ckpt;
    if (recur_file_get_optim(f, t->opt, model_prefixes(&t->m)) != RECUR_OK) {
        fprintf(stderr, "recur %s: checkpoint %s: the optimizer state: %s\n", CMD, path, recur_last_error());
        return -1;
    }
    const char *s = recur_file_meta(f, "recur.step"), *r = recur_file_meta(f, "recur.rng"),
               *vf = recur_file_meta(f, "recur.val_final");
    char *end;
    if (!s || !r || !vf) goto bad;
    t->step = strtoll(s, &end, 10);
    if (*end || t->step < 0) goto bad;
    t->data.s = strtoull(r, &end, 16);
    if (*end || strlen(r) != 16) goto bad;
    t->val_final = !strcmp(vf, "1");
    /* early stopping's state (absent in an older checkpoint: none yet) */
    const char *bl = recur_file_meta(f, "recur.best_loss"), *bs = recur_file_meta(f, "recur.best_step"),
               *be = recur_file_meta(f, "recur.bad_evals");
    if (bl || bs || be) {
        if (!bl || !bs || !be) goto bad_best;
        t->best_loss = strtod(bl, &end);
        if (*end || !(t->best_loss >= 0)) goto bad_best; /* inf: no evaluation yet */
        t->best_step = strtoll(bs, &end, 10);
        if (*end || t->best_step < 0 || t->best_step > t->step) goto bad_best;
        long bad = strtol(be, &end, 10);
        if (*end || bad < 0 || bad > 1000000000) goto bad_best;
        t->bad_evals = (int)bad;
    }
    /* steps skipped at the loss scale (absent in an older checkpoint: none) made no update */
    const char *sk = recur_file_meta(f, "recur.skipped");
    long long skipped = 0;
    if (sk) {
        skipped = strtoll(sk, &end, 10);
        if (!*sk || *end || skipped < 0 || skipped > t->step) {
            fprintf(stderr, "recur %s: checkpoint %s: recur.skipped '%.40s': expected a count in 0..%lld\n", CMD,
                    path, sk, t->step);
            return -1;
        }
    }
    if (recur_optim_steps(t->opt) + skipped != t->step) {
        fprintf(stderr, "recur %s: checkpoint %s is inconsistent: recur.step %lld, the optimizer made %lld steps "
                        "and skipped %lld (recur.skipped)\n", CMD, path, t->step, recur_optim_steps(t->opt),
                skipped);
        return -1;
    }
    if (get_curve(f, "train.loss", &t->loss, t->step) || get_curve(f, "train.val", &t->val, t->step) ||
        (task_has_accuracy(t->m.r.task) && get_curve(f, "train.accuracy", &t->acc, t->step)) ||
        get_curve(f, "train.loss_scale", &t->scale, t->step) || get_curve(f, "train.skipped", &t->skips, t->step) ||
        !scale_curves_ok(&t->scale, &t->skips))
        goto bad;
    /* An end-of-run evaluation off the schedule: a run that had gone on would not have it. */
    if (t->val_final) {
        if (t->val.n) t->val.n--;
        if (t->acc.n) t->acc.n--;
        double last = t->val.n ? t->val.x[t->val.n - 1] : -1; /* the scale's points past it go too */
        while (t->scale.n && t->scale.x[t->scale.n - 1] > last) t->scale.n--;
        while (t->skips.n && t->skips.x[t->skips.n - 1] > last) t->skips.n--;
        t->val_final = 0;
    }
    if (t->m.r.task == TASK_LM) {
        if (read_state(t, f, "train.h", t->m.P, t->h) ||
            (t->m.states == 2 && read_state(t, f, "train.c", t->m.H, t->c))) {
            fprintf(stderr, "recur %s: checkpoint %s: the carried state: %s\n", CMD, path, recur_last_error());
            return -1;
        }
    }
    return 0;
bad:
    fprintf(stderr, "recur %s: checkpoint %s: recur.step, recur.rng or the loss histories are missing or malformed\n",
            CMD, path);
    return -1;
bad_best:
    fprintf(stderr, "recur %s: checkpoint %s: recur.best_loss '%.40s', recur.best_step '%.40s', recur.bad_evals "
                    "'%.40s': expected a loss >= 0 (or inf), a step in 0..%lld and a count in 0..1000000000\n",
            CMD, path, bl ? bl : "(missing)", bs ? bs : "(missing)", be ? be : "(missing)", t->step);
    return -1;
}

/* ---- one step of each task ---- */

/* One batch's forward and backward: k, the batch's index over the run (step * accum + j);
 * gm, RECUR_GRAD_ADD for all but a step's first batch. The batch and the
 * carried state stay on the device (recur_net_forward_dev: the state is
 * carried in place, hT = h0), so nothing here waits for it; loss (when not
 * NULL, with --accum) is read back, a wait. */
static recur_status lm_step(struct trainer *t, long long k, recur_grad_mode gm, double *loss, double *tokens) {
    struct run *r = &t->m.r;
    int N = t->nb, T = r->bptt;
    size_t chunk = (size_t)(k % (long long)t->chunks), p = chunk * T;
    recur_status st = RECUR_OK;
    if (chunk == 0) {
        memset(t->h, 0, state_count(t, 0) * sizeof *t->h);
        if (t->c) memset(t->c, 0, state_count(t, 1) * sizeof *t->c);
        st = recur_buffer_write(t->dev_h, 0, t->h, state_count(t, 0));
        if (st == RECUR_OK && t->dev_c) st = recur_buffer_write(t->dev_c, 0, t->c, state_count(t, 1));
    }
    for (int i = 0; i < T; i++)
        for (int b = 0; b < N; b++) {
            const int32_t *col = t->corp.train + (size_t)(t->b0 + b) * t->cl;
            t->tok[(size_t)i * N + b] = col[p + i];
            t->tgt[(size_t)i * N + b] = col[p + i + 1];
        }
    size_t TN = (size_t)T * N;
    if (st == RECUR_OK) st = recur_buffer_write_ids(t->dev_tok, 0, t->tok, TN);
    if (st == RECUR_OK) st = recur_buffer_write_ids(t->dev_tgt, 0, t->tgt, TN);
    recur_net_batch_dev batch = {.T = T, .N = N, .tokens = t->dev_tok, .targets = t->dev_tgt, .h0 = t->dev_h,
                                 .c0 = t->dev_c, .hT = t->dev_h, .cT = t->dev_c};
    if (st == RECUR_OK) st = recur_net_forward_dev(t->m.net[0], RECUR_MODE_TRAINING, &batch, NULL);
    if (st == RECUR_OK && loss) st = recur_net_loss(t->m.net[0], loss, NULL);
    if (st == RECUR_OK) st = recur_net_backward_dev(t->m.net[0], &batch, NULL, gm);
    if (st != RECUR_OK) return st;
    *tokens = (double)T * N;
    return RECUR_OK;
}

/* A batch into t->ex: fresh synthetic examples, or --data's training examples drawn uniformly. */
static void draw_batch(struct trainer *t) {
    if (!t->have_data) {
        examples_draw(&t->ex, &t->m, &t->data);
        return;
    }
    for (int b = 0; b < t->m.r.batch; b++) t->batch[b] = &t->ds.ex[rng_below(&t->data, t->ds.n_train)];
    examples_from_data(&t->ex, &t->m, t->batch, t->m.r.batch, NULL); /* checked by open_data */
}

/* classify (the head reads each sequence's last step) and generate (one-to-many:
 * the net reads the label, then the sequence; it predicts the sequence, then the end). */
static recur_status one_net_step(struct trainer *t, long long k, recur_grad_mode gm, double *loss, double *tokens) {
    (void)k;
    draw_batch(t);
    const struct examples *e = &t->ex;
    recur_net_batch batch = t->m.r.task == TASK_GENERATE
                                ? (recur_net_batch){.T = e->Td, .N = e->n, .tokens = e->din, .targets = e->dtgt}
                                : (recur_net_batch){.T = e->T, .N = e->n, .tokens = e->tok, .lengths = e->len,
                                                    .targets = e->label};
    recur_status st = recur_net_forward(t->m.net[0], RECUR_MODE_TRAINING, &batch, loss, NULL);
    if (st == RECUR_OK) st = recur_net_backward(t->m.net[0], &batch, NULL, gm);
    *tokens = 0;
    for (int b = 0; b < e->n; b++) *tokens += e->len[b];
    return st;
}

/* dates and seq2seq: the encoder's final states start the decoder, teacher-forced. */
static recur_status dates_step(struct trainer *t, long long k, recur_grad_mode gm, double *loss, double *tokens) {
    (void)k;
    draw_batch(t);
    int N = t->ex.n;
    recur_net_batch enc = {.T = t->ex.T, .N = N, .tokens = t->ex.tok, .lengths = t->ex.len, .hT = t->h,
                           .cT = t->c};
    recur_net_batch dec = {.T = t->ex.Td, .N = N, .tokens = t->ex.din, .targets = t->ex.dtgt, .h0 = t->h,
                           .c0 = t->c};
    recur_net_grad gdec = {.dh0 = t->dh, .dc0 = t->dc}, genc = {.dhT = t->dh, .dcT = t->dc};
    recur_status st = recur_net_forward(t->m.net[0], RECUR_MODE_TRAINING, &enc, NULL, NULL);
    if (st == RECUR_OK) st = recur_net_forward(t->m.net[1], RECUR_MODE_TRAINING, &dec, loss, NULL);
    if (st == RECUR_OK) st = recur_net_backward(t->m.net[1], &dec, &gdec, gm);
    if (st == RECUR_OK) st = recur_net_backward(t->m.net[0], &enc, &genc, gm);
    *tokens = 0;
    for (int b = 0; b < N; b++) *tokens += t->ex.len[b] + t->ex.Td;
    return st;
}

/* ---- evaluation ---- */

/* Validation at the current step: the loss into t->val (and accuracy), a line. */
/* The validation loss (and accuracy) of the current weights, computed on
 * rank 0 (under mpirun every rank holds the same weights) and given to every
 * rank, then added to the histories on each, so that all decide alike.
 * 0, or non-zero after a message. */
static int evaluate(struct trainer *t, double *vloss, double *vacc) {
    double v[3] = {0, NAN, NAN}; /* failed, loss, accuracy */
    if (dist_rank() == 0) {
        recur_status st;
        if (t->m.r.task == TASK_LM) {
            long long count;
            st = lm_stream_loss(&t->m, t->corp.val, t->corp.n_val, t->m.r.batch, t->m.r.bptt, &v[1], &count);
        } else {
            st = examples_eval(&t->m, &t->held, &v[1], &v[2]);
        }
        if (st != RECUR_OK) {
            model_fail(&t->m, CMD, "validation", st);
            v[0] = 1;
        }
    }
    if (dist_bcast(v, 3)) {
        fprintf(stderr, "recur %s: rank %d: sharing the validation result failed (MPI)\n", CMD, dist_rank());
        return 1;
    }
    if (v[0]) return 1;
    *vloss = v[1], *vacc = v[2];
    /* The histories hold what a checkpoint keeps (floats), so that a resumed run's are the same. */
    if (curve_add(&t->val, (double)t->step, (float)*vloss) ||
        (task_has_accuracy(t->m.r.task) && curve_add(&t->acc, (double)t->step, (float)*vacc)) ||
        (run_loss_scale(&t->m.r) > 0 && (curve_add(&t->scale, (double)t->step, (float)recur_optim_loss_scale(t->opt)) ||
                                         curve_add(&t->skips, (double)t->step, (float)skipped_steps(t))))) {
        fprintf(stderr, "recur %s: out of memory for the validation history (step %lld)\n", CMD, t->step);
        return -1;
    }
    return 0;
}

static void eval_text(const struct trainer *t, double vloss, double vacc, char *buf, size_t len) {
    switch (t->m.r.task) {
    case TASK_LM: snprintf(buf, len, "val loss %.4f (%.3f bits/char)", vloss, vloss / log(2)); break;
    case TASK_CLASSIFY: snprintf(buf, len, "val loss %.4f, held-out accuracy %.4f", vloss, vacc); break;
    case TASK_GENERATE: snprintf(buf, len, "val loss %.4f (%.3f bits/symbol)", vloss, vloss / log(2)); break;
    default: snprintf(buf, len, "val loss %.4f, held-out exact match %.4f", vloss, vacc);
    }
}

static void write_svg(const struct trainer *t) {
    if (dist_rank() != 0) return; /* under mpirun rank 0 writes */
    char title[256];
    const struct run *r = &t->m.r;
    char proj[24] = "";
    if (r->proj) snprintf(proj, sizeof proj, " P=%d", r->proj);
    snprintf(title, sizeof title, "recur train --task %s: %s%s%s H=%d%s L=%d, %s lr %g, %s", task_names[r->task],
             r->cell, r->variant[0] ? ":" : "", r->variant, r->hidden, proj, r->layers, optim_names[r->optim], r->lr,
             recur_dtype_name((recur_dtype)r->precision));
    if (t->loss.n && svg_loss_curve(t->svg, title, &t->loss, &t->val, task_has_accuracy(r->task) ? &t->acc : NULL))
        fprintf(stderr, "recur %s: warning: writing %s: %s\n", CMD, t->svg, strerror(errno));
}

/* The mean training loss of steps after+1..upto (NaN when none): the loss
 * history holds step k at index k - 1. */
static double train_mean(const struct curve *loss, long long after, long long upto) {
    double sum = 0;
    long long n = 0;
    for (long long k = after; k < upto && k < (long long)loss->n; k++) sum += loss->y[k], n++;
    return n ? sum / (double)n : NAN;
}

/* A number for JSON: NaN and Inf are not numbers there. */
static void json_num(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, ",\"%s\":%.6g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

/* Evaluation i of the histories as a line of metrics.jsonl. */
static void metrics_line(FILE *f, const struct trainer *t, size_t i) {
    const struct run *r = &t->m.r;
    long long step = (long long)t->val.x[i], prev = i ? (long long)t->val.x[i - 1] : 0;
    fprintf(f, "{\"step\":%lld", step);
    if (r->task == TASK_LM) fprintf(f, ",\"epoch\":%lld", (step - 1) * r->accum / (long long)t->chunks + 1);
    json_num(f, "lr", run_lr(r, step > 0 ? step - 1 : 0));
    json_num(f, "train_loss", train_mean(&t->loss, prev, step));
    json_num(f, "val_loss", t->val.y[i]);
    if (task_has_accuracy(r->task) && i < t->acc.n) json_num(f, "accuracy", t->acc.y[i]);
    /* with a loss scale (a resumed run may have turned it on or off: found by step) */
    for (size_t k = t->scale.n; k-- > 0;)
        if ((long long)t->scale.x[k] == step) {
            fprintf(f, ",\"loss_scale\":%.17g", t->scale.y[k]); /* a power of two, exactly */
            fprintf(f, ",\"skipped\":%lld", (long long)t->skips.y[k]); /* the same steps */
            break;
        }
    fputs("}\n", f);
}

/* metrics.jsonl: all: written anew from the histories (a resumed run's lines
 * are then the uninterrupted run's); otherwise the last evaluation appended. */
static void write_metrics(const struct trainer *t, int all) {
    if (dist_rank() != 0) return;
    FILE *f = fopen(t->metrics, all ? "w" : "a");
    if (f) {
        for (size_t i = all ? 0 : t->val.n - 1; i < t->val.n; i++) metrics_line(f, t, i);
        if (fclose(f) == 0) return;
    }
    fprintf(stderr, "recur %s: warning: writing %s: %s\n", CMD, t->metrics, strerror(errno));
}

/* ---- setup ---- */

static int check_out_dir(const char *out) {
    if (mkdir_p(out)) {
        fprintf(stderr, "recur %s: --out %s: cannot create the directory: %s\n", CMD, out, strerror(errno));
        return -1;
    }
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.recur-write-test-%ld", out, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "recur %s: --out %s: the directory is not writable: %s\n", CMD, out, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

static int check_cell(const char *cell, const char *variant) {
    size_t n = recur_cell_count();
    char names[512] = "";
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        if (recur_cell_get(i, &c) != RECUR_OK) continue;
        k += (size_t)snprintf(names + k, k < sizeof names ? sizeof names - k : 0, "%s%s", i ? ", " : "", c.name);
        if (strcmp(c.name, cell)) continue;
        if (!variant || !*variant) return 0;
        if (c.n_variants == 0) return tool_usage_error(CMD, "--variant '%s': cell %s has no variants", variant, cell);
        char vs[256] = "";
        size_t j = 0;
        for (int v = 0; v < c.n_variants; v++) {
            if (!strcmp(c.variants[v], variant)) return 0;
            j += (size_t)snprintf(vs + j, j < sizeof vs ? sizeof vs - j : 0, "%s%s", v ? ", " : "", c.variants[v]);
        }
        return tool_usage_error(CMD, "--variant '%s': cell %s has variants %s", variant, cell, vs);
    }
    if (n == 0) {
        fprintf(stderr, "recur %s: no cell plugins found; set RECUR_PLUGIN_PATH\n", CMD);
        return 1;
    }
    return tool_usage_error(CMD, "--cell '%s': no such cell (loaded: %s)", cell, names);
}

static long long param_total(const struct model *m) {
    long long n = 0;
    for (int i = 0; i < m->n_nets; i++)
        for (size_t k = 0; k < recur_net_param_count(m->net[i]); k++) {
            recur_param_info pi;
            if (recur_net_param_info(m->net[i], k, &pi) == RECUR_OK) n += (long long)pi.count;
        }
    return n;
}

static void fmt_duration(double s, char *buf, size_t len) {
    if (s < 60) snprintf(buf, len, "%.1f s", s);
    else snprintf(buf, len, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
}

static void trainer_free(struct trainer *t) {
    recur_optim_free(t->opt);
    model_free(&t->m);
    if (t->have_corpus) corpus_free(&t->corp);
    if (t->have_data) dataset_free(&t->ds);
    free(t->batch);
    free(t->tok), free(t->tgt), free(t->h), free(t->c), free(t->hT), free(t->cT), free(t->dh), free(t->dc);
    examples_free(&t->ex);
    examples_free(&t->held);
    curve_free(&t->loss), curve_free(&t->val), curve_free(&t->acc);
    curve_free(&t->scale), curve_free(&t->skips);
    recur_file_free(t->ck);
    recur_ctx_free(t->ctx);
}

/* "--x is an option of --task lm" when o does not belong to task. */
static int check_task_option(const struct opt *o, int task) {
    if (!o->given || !o->tasks || (o->tasks & TASK_BIT(task))) return 0;
    char list[64] = "";
    for (int k = 0, n = 0; task_names[k]; k++)
        if (o->tasks & TASK_BIT(k))
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", n++ ? " and " : "", task_names[k]);
    return tool_usage_error(CMD, "%s is an option of --task %s, not %s", o->name, list, task_names[task]);
}

/* --resume: the checkpoint's settings into t->run, the runtime ones given kept.
 * -1 after a message when an option given disagrees (another model). */
static int take_checkpoint_settings(struct trainer *t, const struct opt *opts, const struct run *ckr) {
    for (size_t i = 0; i < n_run_settings; i++) {
        const struct setting *s = &run_settings[i];
        if (s->runtime || !opt_given(opts, s->opt.name) || setting_equal(s, &t->run, ckr)) continue;
        char a[4200], b[4200];
        setting_format(s, &t->run, a, sizeof a);
        setting_format(s, ckr, b, sizeof b);
        fprintf(stderr, "recur %s: checkpoint %s is a different model: %s %s, but the checkpoint has %s\n", CMD,
                t->ckpt, s->opt.name, a, b);
        return -1;
    }
    for (size_t i = 0; i < n_run_settings; i++) {
        const struct setting *s = &run_settings[i];
        if (!s->runtime || !opt_given(opts, s->opt.name)) setting_copy(s, &t->run, ckr);
    }
    return 0;
}

/*
 * The run's settings into t->run: the task's defaults, then (--resume) the
 * checkpoint's, then the options given; and the cell checked. -1: go on;
 * otherwise the exit code, after a message.
 */
#define SAMPLING (TASK_BIT(TASK_LM) | TASK_BIT(TASK_GENERATE)) /* the tasks that sample at the end */
static int train_settings(struct trainer *t, int argc, char **argv) {
    struct run cli;
    memset(&cli, 0, sizeof cli);
    const char *out = NULL;
    t->samples = 8;
    t->temperature = 0.8;
    /* The settings' options (their ranges: task.c's run_settings), then the invocation's. */
    struct opt opts[64];
    size_t k = 0;
    for (size_t i = 0; i < n_run_settings; i++) {
        opts[k] = run_settings[i].opt;
        opts[k++].dst = (char *)&cli + run_settings[i].off;
    }
    const struct opt more[] = {
        {.name = "--out", .kind = OPT_STRING, .dst = &out},
        {.name = "--resume", .kind = OPT_FLAG, .dst = &t->resume},
        {.name = "--samples", .kind = OPT_INT, .dst = &t->samples, .lo = 0, .hi = 10000, .tasks = SAMPLING},
        {.name = "--temperature", .kind = OPT_DOUBLE, .dst = &t->temperature, .lo = 0, .hi = 100, .tasks = SAMPLING},
        {.name = "--top-k", .kind = OPT_INT, .dst = &t->top_k, .lo = 0, .hi = 256, .tasks = SAMPLING},
        {.name = "--quiet", .kind = OPT_FLAG, .dst = &t->quiet},
        {.name = NULL},
    };
    memcpy(opts + k, more, sizeof more);
    int rc = cmd_begin(CMD, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    t->corpus_given = opt_given(opts, "--corpus");
    t->precision_given = opt_given(opts, "--precision");
    t->data_given = opt_given(opts, "--data");
    char real[PATH_MAX];
    if (t->corpus_given && realpath(cli.corpus, real)) snprintf(cli.corpus, sizeof cli.corpus, "%s", real);
    if (t->data_given && realpath(cli.data, real)) snprintf(cli.data, sizeof cli.data, "%s", real);

    int task = opt_given(opts, "--task") ? cli.task : TASK_LM;
    if (!out) snprintf(t->out, sizeof t->out, "runs/%s", task_names[task]);
    else if (strlen(out) >= 4000) return tool_usage_error(CMD, "--out: path too long (%zu bytes)", strlen(out));
    else snprintf(t->out, sizeof t->out, "%s", out);
    snprintf(t->ckpt, sizeof t->ckpt, "%s/%s", t->out, CHECKPOINT_NAME);
    snprintf(t->svg, sizeof t->svg, "%s/loss.svg", t->out);
    snprintf(t->best, sizeof t->best, "%s/best.safetensors", t->out);
    snprintf(t->metrics, sizeof t->metrics, "%s/metrics.jsonl", t->out);
    t->best_loss = INFINITY;

    struct run ckr;
    if (t->resume) {
        struct stat sb;
        if (stat(t->ckpt, &sb) != 0) {
            fprintf(stderr, "recur %s: --resume: no checkpoint at %s: %s\n", CMD, t->ckpt, strerror(errno));
            return 1;
        }
        if (checkpoint_open(CMD, t->ckpt, &t->ck)) return 1;
        char err[512];
        if (run_from_file(t->ck, &ckr, err, sizeof err)) {
            fprintf(stderr, "recur %s: --resume: %s is not a checkpoint of recur train: %s\n", CMD, t->ckpt, err);
            return 1;
        }
        if (!opt_given(opts, "--task")) task = ckr.task;
        t->ck_precision = ckr.precision;
    }
    struct run *r = &t->run;
    run_defaults(r, task);
    for (size_t i = 0; i < n_run_settings; i++)
        if (opt_given(opts, run_settings[i].opt.name)) setting_copy(&run_settings[i], r, &cli);
    if (!t->corpus_given && task == TASK_LM && realpath(CORPUS_DEFAULT, real))
        snprintf(r->corpus, sizeof r->corpus, "%s", real);
    if (task == TASK_LM && t->corpus_given && !opt_given(opts, "--shuffle")) r->shuffle = 0;

    /* Options that do not belong to the task. */
    for (const struct opt *o = opts; o->name; o++)
        if ((rc = check_task_option(o, task))) return rc;

    if (t->resume && take_checkpoint_settings(t, opts, &ckr)) return 1;

    /* Combinations. */
    if ((r->task == TASK_SEQ2SEQ || r->task == TASK_GENERATE) && !run_has_data(r))
        return tool_usage_error(CMD, "--task %s learns from a file: give --data FILE (docs/tasks.md)", task_names[r->task]);
    static const char *const synthetic[] = {"--alphabet", "--min-len", "--max-len", "--val-size"};
    for (size_t i = 0; r->task == TASK_CLASSIFY && run_has_data(r) && i < 4; i++)
        if (opt_given(opts, synthetic[i]))
            return tool_usage_error(CMD, "%s is an option of the generated classify task, not of --data (whose "
                                         "held-out share is --val-frac)", synthetic[i]);
    if (r->task == TASK_CLASSIFY && !run_has_data(r) && opt_given(opts, "--val-frac"))
        return tool_usage_error(CMD, "--val-frac is for --task classify with --data; the generated task's held-out "
                                     "set is --val-size");
    if (r->task != TASK_CLASSIFY && r->dir != RECUR_DIR_FORWARD)
        return tool_usage_error(CMD, "--direction %s: --task %s needs forward", recur_direction_name(r->dir),
                                task_names[r->task]);
    if (r->task == TASK_CLASSIFY && r->min_len > r->max_len)
        return tool_usage_error(CMD, "--min-len %d is above --max-len %d", r->min_len, r->max_len);

    /* The cell (plugins load here), before anything is trained. */
    if ((rc = check_cell(r->cell, r->variant))) return rc;
    if (!r->variant[0]) snprintf(r->variant, sizeof r->variant, "%s", cell_default_variant(r->cell));
    return -1;
}

/* lm: the corpus, its columns, and (--resume) the check that it is the checkpoint's. -1 after printing. */
static int open_corpus(struct trainer *t) {
    const struct run *r = &t->run;
    if (run_corpus(r, CMD, &t->corp)) {
        if (!t->corpus_given)
            fprintf(stderr, "recur %s: (the default corpus is Debian's wamerican word list; give --corpus FILE "
                            "for another text)\n", CMD);
        return -1;
    }
    t->have_corpus = 1;
    t->hash = corpus_hash(&t->corp);
    int N = r->batch, T = r->bptt;
    t->cl = t->corp.n_train / (size_t)N;
    if (t->cl < (size_t)T + 1) {
        fprintf(stderr,
                "recur %s: corpus %s: its training text (%zu bytes) is too short for --batch %d --bptt %d "
                "(at least %zu bytes)\n", CMD, r->corpus, t->corp.n_train, N, T, (size_t)N * ((size_t)T + 1));
        return -1;
    }
    if (t->corp.n_val / (size_t)N < 2) {
        fprintf(stderr,
                "recur %s: corpus %s: its validation text (%zu bytes) is too short for --batch %d (at least %zu "
                "bytes); raise --val-frac or lower --batch\n", CMD, r->corpus, t->corp.n_val, N, 2 * (size_t)N);
        return -1;
    }
    t->chunks = (t->cl - 1) / (size_t)T;
    if (t->resume) {
        if (!meta_hash_is(t->ck, "recur.corpus_hash", t->hash)) {
            fprintf(stderr, "recur %s: checkpoint %s is a different model: the text of corpus %s is not the one "
                            "it was trained on\n", CMD, t->ckpt, r->corpus);
            return -1;
        }
    }
    return 0;
}

/* --data: the examples and their held-out split, and (--resume) the check that
 * they are the checkpoint's. -1 after printing. */
static int open_data(struct trainer *t) {
    const struct run *r = &t->run;
    char err[1200];
    if (dataset_load(r->data, r->task != TASK_SEQ2SEQ, run_seed(r, SEED_HELDOUT), r->val_frac, &t->ds, err,
                     sizeof err)) {
        fprintf(stderr, "recur %s: --data %s\n", CMD, err);
        return -1;
    }
    t->have_data = 1;
    if (t->resume) {
        if (!meta_hash_is(t->ck, "recur.data_hash", t->ds.hash)) {
            fprintf(stderr, "recur %s: checkpoint %s is a different model: data %s is not the file it was trained "
                            "on\n", CMD, t->ckpt, r->data);
            return -1;
        }
    }
    return 0;
}

/* --data: the held-out examples into t->held. -1 after printing. */
static int held_from_data(struct trainer *t) {
    size_t n = t->ds.n - t->ds.n_train;
    const struct example **p = calloc(n, sizeof *p);
    if (!p) {
        fprintf(stderr, "recur %s: out of memory for %zu held-out examples\n", CMD, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) p[i] = &t->ds.ex[t->ds.n_train + i];
    int rc = examples_from_data(&t->held, &t->m, p, (int)n, NULL);
    free(p);
    if (rc) fprintf(stderr, "recur %s: --data %s: the held-out examples do not fit the model\n", CMD, t->run.data);
    return rc;
}

/* The host buffers of a step and of the held-out set. -1 after printing. */
static int alloc_buffers(struct trainer *t) {
    const struct run *r = &t->m.r;
    int N = r->batch;
    size_t ns = state_count(t, 0), nsc = state_count(t, 1);
    t->h = calloc(ns, sizeof(float));
    t->hT = calloc(ns, sizeof(float));
    if (t->m.states == 2) t->c = calloc(nsc, sizeof(float)), t->cT = calloc(nsc, sizeof(float));
    int ok = t->h && t->hT && (t->m.states < 2 || (t->c && t->cT));
    if (r->task == TASK_LM) {
        t->tok = calloc2((size_t)r->bptt, (size_t)N, sizeof *t->tok);
        t->tgt = calloc2((size_t)r->bptt, (size_t)N, sizeof *t->tgt);
        ok = ok && t->tok && t->tgt;
        size_t TN = (size_t)r->bptt * (size_t)t->nb;
        recur_status st = recur_buffer_create(t->ctx, TN, &t->dev_tok);
        if (st == RECUR_OK) st = recur_buffer_create(t->ctx, TN, &t->dev_tgt);
        if (st == RECUR_OK) st = recur_buffer_create(t->ctx, ns, &t->dev_h);
        if (st == RECUR_OK && t->m.states == 2) st = recur_buffer_create(t->ctx, nsc, &t->dev_c);
        if (st != RECUR_OK) {
            fprintf(stderr, "recur %s: device buffers for --batch %d --bptt %d --hidden %d --layers %d: %s\n", CMD,
                    N, r->bptt, r->hidden, r->layers, recur_ctx_error(t->ctx));
            return -1;
        }
    } else {
        int held = t->have_data ? (int)(t->ds.n - t->ds.n_train) : r->val_size;
        ok = ok && !examples_alloc(&t->ex, &t->m, N) && !examples_alloc(&t->held, &t->m, held);
        if (t->have_data) ok = ok && (t->batch = calloc((size_t)N, sizeof *t->batch));
        if (task_encdec(r->task)) {
            t->dh = calloc(ns, sizeof(float));
            if (t->m.states == 2) t->dc = calloc(nsc, sizeof(float));
            ok = ok && t->dh && (t->m.states < 2 || t->dc);
        }
    }
    if (!ok)
        fprintf(stderr, "recur %s: out of host memory for --batch %d --hidden %d --layers %d%s%.0d\n", CMD, N,
                r->hidden, r->layers, r->task == TASK_LM ? " --bptt " : r->task == TASK_CLASSIFY ? " --max-len " : "",
                r->task == TASK_LM ? r->bptt : r->task == TASK_CLASSIFY ? r->max_len : 0);
    return ok ? 0 : -1;
}

/* A loss scale (a power of two) as a number, or as 2^k once it has more digits than a line wants. */
static void scale_text(double s, char *buf, size_t len) {
    int e = 0;
    frexp(s, &e);
    if (s < 1e9) snprintf(buf, len, "%.0f", s);
    else snprintf(buf, len, "2^%d", e - 1);
}

static void print_banner(const struct trainer *t) {
    const struct run *r = &t->m.r;
    recur_device_info dev;
    recur_ctx_device(t->ctx, &dev);
    char proj[24] = "", prec[112];
    if (r->proj) snprintf(proj, sizeof proj, " P=%d", r->proj);
    precision_text(&t->m, prec, sizeof prec);
    if (run_loss_scale(r) > 0) { /* the scale now: the checkpoint's when resumed */
        char s[48];
        scale_text(recur_optim_loss_scale(t->opt), s, sizeof s);
        snprintf(prec + strlen(prec), sizeof prec - strlen(prec), ", loss scale %s (dynamic)", s);
    }
    printf("recur train: %s on %s%s, %s%s%s H=%d%s L=%d E=%d %s, %lld parameters\n", task_names[r->task],
           dev.selector, prec, r->cell, r->variant[0] ? ":" : "", r->variant, r->hidden, proj, r->layers, r->embed,
           recur_direction_name(r->dir), param_total(&t->m));
    if (r->dropout > 0 || r->zoneout > 0) printf("  dropout %g, zoneout %g\n", r->dropout, r->zoneout);
    if (r->task == TASK_LM)
        printf("  corpus %s%s: %zu training and %zu validation bytes, %d symbols; %d x %d per step, %zu steps an epoch\n",
               r->corpus, r->shuffle ? " (lines shuffled)" : "", t->corp.n_train, t->corp.n_val, t->corp.v.size,
               r->batch, r->bptt, t->chunks);
    else if (t->have_data && r->task == TASK_SEQ2SEQ)
        printf("  data %s: %zu training and %zu held-out pairs, %d source and %d target symbols; batch %d\n", r->data,
               t->ds.n_train, t->ds.n - t->ds.n_train, t->ds.v.size, t->ds.vt.size, r->batch);
    else if (t->have_data)
        printf("  data %s: %zu training and %zu held-out examples, %d symbols, %d labels; batch %d\n", r->data,
               t->ds.n_train, t->ds.n - t->ds.n_train, t->ds.v.size, t->ds.labels.n, r->batch);
    else if (r->task == TASK_CLASSIFY)
        printf("  sequences of %d..%d symbols of %d, label: first == last; batch %d, held-out %d\n", r->min_len,
               r->max_len, r->alphabet, r->batch, r->val_size);
    else
        printf("  dates 1950..2049 in human formats -> ISO 8601; batch %d, held-out %d\n", r->batch, r->val_size);
    char sched[128] = "";
    if (r->warmup) snprintf(sched, sizeof sched, ", warm-up %lld steps", r->warmup);
    if (r->schedule == SCHEDULE_COSINE) snprintf(sched + strlen(sched), sizeof sched - strlen(sched), ", cosine");
    if (r->schedule == SCHEDULE_STEP)
        snprintf(sched + strlen(sched), sizeof sched - strlen(sched), ", x%g every %lld steps", r->gamma,
                 r->decay_every);
    if (r->accum > 1) snprintf(sched + strlen(sched), sizeof sched - strlen(sched), ", %d batches a step", r->accum);
    if (r->patience)
        snprintf(sched + strlen(sched), sizeof sched - strlen(sched), ", patience %d evaluations", r->patience);
    char resumed[64] = "";
    if (t->resume && t->ck_precision != r->precision)
        snprintf(resumed, sizeof resumed, " (resumed; the checkpoint's precision was %s)",
                 recur_dtype_name((recur_dtype)t->ck_precision));
    else if (t->resume)
        snprintf(resumed, sizeof resumed, " (resumed)");
    printf("  %s lr %g%s%s, clip %g; steps %lld -> %lld%s\n", optim_names[r->optim], r->lr,
           r->optim == RECUR_OPTIM_SGD && r->momentum > 0 ? " momentum" : "", sched, r->clip, t->step, r->steps,
           resumed);
    fflush(stdout);
}

/*
 * The output directory, a context, the data, the nets (new, or the
 * checkpoint's with the optimizer's state and histories), the buffers. -1:
 * go on to train; 0: nothing to train (--steps 0: the initial net saved; a
 * checkpoint at --steps already); 1 after a message.
 */
static int train_open(struct trainer *t) {
    struct run *r = &t->run;
    int rc;
    if (check_out_dir(t->out) || !(t->ctx = tool_ctx(CMD))) return 1;
    if (r->task == TASK_LM && open_corpus(t)) return 1;
    if (run_has_data(r) && open_data(t)) return 1;

    /* The nets: new, or the checkpoint's. */
    if (t->resume) {
        recur_file_free(t->ck);
        t->ck = NULL;
        if (model_load(&t->m, CMD, t->ctx, t->ckpt, &t->ck)) return 1;
        t->m.r = *r; /* the same model settings, the runtime ones of this invocation */
        if (r->task == TASK_LM && memcmp(&t->m.v, &t->corp.v, sizeof t->m.v)) {
            fprintf(stderr, "recur %s: checkpoint %s is a different model: its vocabulary is not corpus %s's\n", CMD,
                    t->ckpt, r->corpus);
            return 1;
        }
        const struct vocab *dv = r->task == TASK_SEQ2SEQ ? &t->ds.vt : &t->ds.v;
        if (t->have_data && (memcmp(&t->m.v, dv, sizeof *dv) || (r->task == TASK_SEQ2SEQ && memcmp(&t->m.vsrc, &t->ds.v, sizeof t->ds.v)) ||
                             (r->task != TASK_SEQ2SEQ && memcmp(&t->m.labels, &t->ds.labels, sizeof t->ds.labels)))) {
            fprintf(stderr, "recur %s: checkpoint %s is inconsistent: its vocabulary or labels are not those of data "
                            "%s\n", CMD, t->ckpt, r->data);
            return 1;
        }
    } else if (model_build(&t->m, CMD, t->ctx, r,
                           t->have_corpus ? &t->corp.v : r->task == TASK_SEQ2SEQ ? &t->ds.vt : &t->ds.v, &t->ds.v,
                           &t->ds.labels)) {
        return 1;
    }
    r = &t->m.r;
    if ((rc = model_set_precision(&t->m, CMD, t->precision_given))) return rc;
    t->nb = r->batch;
    if (dist_size() > 1) { /* data-parallel: each rank its columns of every batch (tools/dist.c) */
        if (r->task != TASK_LM) {
            fprintf(stderr, "recur %s: --task %s over %d MPI ranks: only --task lm trains data-parallel so far\n",
                    CMD, task_names[r->task], dist_size());
            return 1;
        }
        if (r->batch % dist_size()) {
            fprintf(stderr, "recur %s: --batch %d over %d MPI ranks: the batch must be a multiple of the ranks\n", CMD,
                    r->batch, dist_size());
            return 1;
        }
        t->nb = r->batch / dist_size();
        t->b0 = dist_rank() * t->nb;
    }
    if (t->have_data) { /* the examples' room: the data's longest */
        t->m.Ta = r->task == TASK_SEQ2SEQ ? t->ds.max_a : t->ds.max_b;
        t->m.Tb = t->ds.max_b + 1;
    }
    recur_optim_desc od = {.kind = (recur_optim_kind)r->optim, .lr = (float)r->lr, .momentum = (float)r->momentum,
                           .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .clip_norm = (float)(r->clip * r->accum) /* on the sum of accum batches' gradients */};
    recur_status st = recur_optim_create(t->m.net, t->m.n_nets, &od, &t->opt);
    if (st != RECUR_OK) return model_fail(&t->m, CMD, "creating the optimizer", st), 1;
    /* before the checkpoint's state is restored into it: an optimizer that scales takes the scale's */
    if (run_loss_scale(r) > 0 &&
        (st = recur_optim_set_loss_scale(t->opt, run_loss_scale(r), r->loss_scale_interval)) != RECUR_OK)
        return model_fail(&t->m, CMD, "the loss scale", st), 1;
    if (dist_size() > 1) { /* the ranks' gradients averaged, weighted by their tokens */
        st = recur_optim_set_comm(t->opt, dist_comm());
        if (st == RECUR_OK) st = recur_optim_set_grad_weight(t->opt, (double)t->nb * r->bptt * r->accum);
        if (st == RECUR_OK) st = recur_optim_set_accum(t->opt, r->accum); /* the buckets start in the last batch */
        if (st != RECUR_OK) return model_fail(&t->m, CMD, "joining the MPI ranks", st), 1;
    }
    if (alloc_buffers(t)) return 1;
    t->data.s = run_seed(r, SEED_DATA);
    if (t->resume && restore(t, t->ck)) return 1;
    if (r->task == TASK_LM && states_to_device(t)) return 1; /* zeros, or the checkpoint's */
    recur_file_free(t->ck);
    t->ck = NULL;
    if (t->have_data) {
        if (held_from_data(t)) return 1;
    } else if (r->task != TASK_LM) {
        struct rng hr = {run_seed(r, SEED_HELDOUT)};
        examples_draw(&t->held, &t->m, &hr);
    }
    /* The dropout masks follow each net's count of training forwards (recur.h);
     * recur_file_get_net restores the count with the net. */
    if (t->resume && t->step >= r->steps) {
        printf("recur %s: %s is at step %lld already (--steps %lld): nothing to do\n", CMD, t->ckpt, t->step, r->steps);
        return 0;
    }
    if (t->resume && r->patience && t->bad_evals >= r->patience) {
        printf("recur %s: %s stopped early at step %lld already (--patience %d; best: step %lld); a larger "
               "--patience goes on\n", CMD, t->ckpt, t->step, r->patience, t->best_step);
        return 0;
    }
    write_metrics(t, 1); /* a resumed run's: its checkpoint's evaluations */
    print_banner(t);
    if (r->steps == 0) {
        if (save_checkpoint(t, t->ckpt)) return 1;
        printf("checkpoint: %s (the initial net, step 0)\n", t->ckpt);
        return 0;
    }
    return -1;
}

/* One optimizer step: accum batches' gradients added, the schedule's rate, the
 * update. *loss: the batches' mean. 0, or 1 after a message. */
static int train_step(struct trainer *t, double *loss, double *tokens) {
    const struct run *r = &t->m.r;
    *loss = 0, *tokens = 0;
    /* One batch a step: its loss stays on the device and comes back with the
     * gradient norm (recur_optim_step), so the step waits for the device once. */
    int defer = r->accum == 1;
    for (int j = 0; j < r->accum; j++) {
        long long k = t->step * r->accum + j;
        recur_grad_mode gm = j ? RECUR_GRAD_ADD : RECUR_GRAD_OVERWRITE;
        double l = 0, n = 0, *lp = defer ? NULL : &l;
        recur_status st = r->task == TASK_LM ? lm_step(t, k, gm, lp, &n)
                        : task_encdec(r->task) ? dates_step(t, k, gm, lp, &n)
                                               : one_net_step(t, k, gm, lp, &n);
        if (st != RECUR_OK) return model_fail(&t->m, CMD, "training step", st), 1;
        *loss += l / r->accum;
        *tokens += n;
    }
    /* The gradients are the sum of accum batches' means: SGD takes lr / accum (the
     * mean's step); Adam is unchanged by the scale (up to its eps), and the
     * clipping norm was scaled by accum when the optimizer was made. */
    double lr = run_lr(r, t->step) / (r->optim == RECUR_OPTIM_SGD ? r->accum : 1), norm = 0;
    if (recur_optim_set_lr(t->opt, (float)lr) != RECUR_OK) return model_fail(&t->m, CMD, "the learning rate", 0), 1;
    recur_status ost = recur_optim_step(t->opt, &norm);
    /* RECUR_OK with a non-finite norm: an overflow at the loss scale, the step skipped (no update, not
     * counted by the optimizer: skipped_steps), the scale halved; not a divergence */
    /* the loss the step's read brought back (or, after an error, a read of its own) */
    if (defer && recur_net_loss(t->m.net[task_encdec(r->task) ? 1 : 0], loss, NULL) != RECUR_OK)
        return model_fail(&t->m, CMD, "the training loss", 0), 1;
    if (ost != RECUR_OK && isfinite(norm) && isfinite(*loss)) { /* not the norm: e.g. the MPI ranks' average */
        fprintf(stderr, "recur %s: step %lld: %s\n", CMD, t->step + 1, recur_ctx_error(t->ctx));
        return 1;
    }
    if (ost != RECUR_OK) {
        fprintf(stderr, "recur %s: step %lld: the loss diverged (loss %g, gradient norm %g); try a lower --lr "
                        "or --clip\n", CMD, t->step + 1, *loss, norm);
        return 1;
    }
    return 0;
}

/* After a scheduled evaluation: the best checkpoint and early stopping. 1: stop
 * (patience run out), 0: go on, -1 after a message. */
static int track_best(struct trainer *t, struct progress *pg) {
    const struct run *r = &t->m.r;
    if (t->vloss < t->best_loss) {
        t->best_loss = t->vloss;
        t->best_step = t->step;
        t->bad_evals = 0;
        return save_checkpoint(t, t->best) ? -1 : 0;
    }
    t->bad_evals++;
    if (!r->patience || t->bad_evals < r->patience) return 0;
    progress_note(pg, "early stop at step %lld: the validation loss has not gone below %.4f (step %lld) in %d "
                      "evaluations", t->step, t->best_loss, t->best_step, t->bad_evals);
    return 1;
}

/*
 * Steps to --steps, evaluating and saving on their schedules. -1: go on to
 * finish; 130: interrupted, the checkpoint saved; 1 after a message.
 */
static int train_loop(struct trainer *t) {
    const struct run *r = &t->m.r;
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    int own_stack = handler_stack_on();
    /* a second Ctrl-C stops at once */
    sa.sa_flags = SA_RESETHAND | (own_stack >= 0 ? SA_ONSTACK : 0);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_sa);

    /* --quiet: no progress line; the validation lines (progress_note) stay */
    struct progress pg;
    /* under mpirun rank 0 shows the progress and the validation lines */
    static FILE *devnull; /* the process's: kept open */
    if (dist_rank() != 0 && !devnull) devnull = fopen("/dev/null", "w");
    progress_begin(&pg, devnull ? devnull : stderr, r->steps, t->step);
    t->t_start = now_seconds();
    t->last_loss = t->vloss = t->vacc = NAN;
    t->first = t->step;
    char line[160];
    int rc = -1;
    /* Under mpirun the ranks stop together: a Ctrl-C seen by any rank counts at
     * the step's sum (below), never between two ranks' collectives. */
    int all_stop = 0;
#define STOPPED() (dist_size() > 1 ? all_stop : (int)interrupted)
    while (rc < 0 && t->step < r->steps && !STOPPED()) {
        double t0 = now_seconds(), loss = 0, tokens = 0;
        if (train_step(t, &loss, &tokens)) {
            progress_end(&pg);
            rc = 1;
            break;
        }
        if (dist_size() > 1) { /* the global mean loss, the tokens of all ranks */
            double v[3] = {loss * tokens, tokens, interrupted ? 1 : 0};
            if (dist_sum(v, 3)) {
                progress_end(&pg);
                fprintf(stderr, "recur %s: rank %d: step %lld: summing the loss over the ranks failed (MPI)\n", CMD,
                        dist_rank(), t->step + 1);
                rc = 1;
                break;
            }
            loss = v[1] > 0 ? v[0] / v[1] : 0, tokens = v[1], all_stop = v[2] > 0;
        }
        t->step++;
        t->train_s += now_seconds() - t0;
        t->tokens += tokens;
        t->last_loss = loss;
        if (curve_add(&t->loss, (double)t->step, (float)loss)) {
            fprintf(stderr, "recur %s: out of memory for the loss history (%lld steps)\n", CMD, t->step);
            rc = 1;
            break;
        }
        /* lm: epochs of the training text; classify and dates draw fresh examples and have none */
        int epoch = r->task == TASK_LM ? (int)((t->step - 1) * r->accum / (long long)t->chunks) + 1 : 0;
        if (!t->quiet) progress_update(&pg, epoch, t->step, loss, t->tokens / (t->train_s > 0 ? t->train_s : 1e-9));
        if (t->step % r->eval_every == 0) {
            long long since = t->val.n ? (long long)t->val.x[t->val.n - 1] : 0;
            if (evaluate(t, &t->vloss, &t->vacc)) {
                rc = 1;
                break;
            }
            t->val_final = 0;
            eval_text(t, t->vloss, t->vacc, line, sizeof line);
            char scaled[96] = ""; /* the loss scale now, and the steps it skipped so far */
            if (run_loss_scale(r) > 0) {
                char sc[48];
                scale_text(recur_optim_loss_scale(t->opt), sc, sizeof sc);
                snprintf(scaled, sizeof scaled, "; loss scale %s", sc);
                if (skipped_steps(t))
                    snprintf(scaled + strlen(scaled), sizeof scaled - strlen(scaled), ", %lld steps skipped",
                             skipped_steps(t));
            }
            progress_note(&pg, "step %lld: train loss %.4f (mean since step %lld), %s%s", t->step,
                          train_mean(&t->loss, since, t->step), since, line, scaled);
            write_svg(t);
            write_metrics(t, 0);
            int stop = track_best(t, &pg);
            if (stop < 0) rc = 1;
            if (stop > 0) break;
        }
        if (rc < 0 && t->step % r->checkpoint_every == 0 && t->step < r->steps && !STOPPED() &&
            save_checkpoint(t, t->ckpt))
            rc = 1;
    }
    if (rc < 0) progress_end(&pg);
    sigaction(SIGINT, &old_sa, NULL);
    handler_stack_off(own_stack);
    if (rc < 0 && STOPPED()) {
        write_svg(t);
        if (save_checkpoint(t, t->ckpt)) return 1;
        fprintf(stderr, "recur %s: interrupted at step %lld of %lld; checkpoint saved: %s\n", CMD, t->step, r->steps,
                t->ckpt);
        fprintf(stderr, "resume with: recur train --resume --out %s\n", t->out);
        return 130;
    }
    return rc;
#undef STOPPED
}

/* The end of a run: the last evaluation, the checkpoint, the summary and samples. 0, or 1 after a message. */
static int train_finish(struct trainer *t) {
    const struct run *r = &t->m.r;
    if (!(t->val.n && t->val.x[t->val.n - 1] == (double)t->step)) {
        /* an evaluation off the schedule: its line on stderr, as the run's were */
        if (evaluate(t, &t->vloss, &t->vacc)) return 1;
        t->val_final = 1;
        write_metrics(t, 0);
        char line[160];
        eval_text(t, t->vloss, t->vacc, line, sizeof line);
        long long since = t->val.n > 1 ? (long long)t->val.x[t->val.n - 2] : 0;
        if (dist_rank() == 0)
            fprintf(stderr, "step %lld: train loss %.4f (mean since step %lld), %s\n", t->step,
                    train_mean(&t->loss, since, t->step), since, line);
        fflush(stderr);
    }
    write_svg(t);
    if (save_checkpoint(t, t->ckpt)) return 1;
    char dur[64];
    fmt_duration(now_seconds() - t->t_start, dur, sizeof dur);
    /* the summary, the paths and the samples on stdout */
    printf("%lld steps in %s, %.0f tokens/s\n", t->step - t->first, dur,
           t->tokens / (t->train_s > 0 ? t->train_s : 1e-9));
    printf("loss curve: %s\nmetrics: %s\ncheckpoint: %s\n", t->svg, t->metrics, t->ckpt);
    if (skipped_steps(t)) { /* steps whose scaled gradients overflowed: no update, the scale halved */
        char s[48];
        scale_text(recur_optim_loss_scale(t->opt), s, sizeof s);
        printf("loss scale: %lld of the %lld steps skipped for an overflow of the scaled gradients%s%s\n",
               skipped_steps(t), t->step, run_loss_scale(r) > 0 ? "; the scale is now " : "",
               run_loss_scale(r) > 0 ? s : "");
    }
    if (isfinite(t->best_loss))
        printf("best: %s (step %lld, validation loss %.4f)\n", t->best, t->best_step, t->best_loss);
    if (r->task == TASK_LM && t->samples > 0) {
        printf("samples (temperature %g%s):\n", t->temperature, t->top_k ? ", top-k" : "");
        struct rng sr = {run_seed(r, SEED_SAMPLE)};
        fflush(stdout);
        if (lm_sample(&t->m, CMD, t->samples, SAMPLE_MAXLEN, t->temperature, t->top_k, &sr, "", stdout)) return 1;
    } else if (r->task == TASK_DATES) {
        char(*got)[DATE_ISO_LEN + 1] = calloc(5, sizeof *got);
        struct examples few;
        if (got && !examples_alloc(&few, &t->m, 5)) {
            struct rng fr = {run_seed(r, SEED_SAMPLE)};
            examples_draw(&few, &t->m, &fr);
            if (dates_greedy(&t->m, &few, got) == RECUR_OK)
                for (int b = 0; b < 5; b++)
                    printf("  %-28s -> %s%s\n", few.src[b], got[b], strcmp(got[b], few.iso[b]) ? "  (wrong)" : "");
            examples_free(&few);
        }
        free(got);
    } else if (r->task == TASK_SEQ2SEQ) { /* the first few held-out pairs */
        size_t n = t->ds.n - t->ds.n_train;
        printf("held-out examples (greedy):\n");
        fflush(stdout);
        if (data_decode_print(&t->m, CMD, t->ds.ex + t->ds.n_train, n < 5 ? (int)n : 5, t->m.Tb, 0, 0, NULL, stdout))
            return 1;
    } else if (r->task == TASK_GENERATE && t->samples > 0) { /* the labels in turn */
        struct example *ex = calloc((size_t)t->samples, sizeof *ex);
        if (!ex) return 1;
        for (int i = 0; i < t->samples; i++) ex[i].a = t->m.labels.name[i % t->m.labels.n];
        printf("samples (temperature %g%s):\n", t->temperature, t->top_k ? ", top-k" : "");
        fflush(stdout);
        struct rng sr = {run_seed(r, SEED_SAMPLE)};
        int rc = data_decode_print(&t->m, CMD, ex, t->samples, t->m.Tb, t->temperature, t->top_k, &sr, stdout);
        free(ex);
        if (rc) return 1;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    struct trainer *t = calloc(1, sizeof *t);
    if (!t) {
        fprintf(stderr, "recur %s: out of memory (%zu bytes)\n", CMD, sizeof *t);
        return 1;
    }
    /* under mpirun rank 0 prints the run (its messages stay on stderr) */
    if (dist_rank() != 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "recur %s: rank %d: cannot silence stdout: %s\n", CMD, dist_rank(), strerror(errno));
        free(t);
        return 1;
    }
    int rc = train_settings(t, argc, argv);
    if (rc < 0) rc = train_open(t);
    if (rc < 0) rc = train_loop(t);
    if (rc < 0) rc = train_finish(t);
    trainer_free(t);
    free(t);
    return rc;
}
