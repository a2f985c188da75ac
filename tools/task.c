/*
 * task.c: what recur train, sample and eval share: the settings of a run and
 * their metadata in a checkpoint, building or loading a task's nets, the
 * examples of the classify and dates tasks, the lm's validation loss over a
 * stream and its sampler, and dates' greedy decoding.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

const char *const task_names[] = {"lm", "classify", "dates", "seq2seq", "generate", NULL};
const char *const optim_names[] = {"sgd", "adam", NULL};
const char *const init_names[] = {"uniform", "orthogonal", NULL};
const char *const schedule_names[] = {"constant", "cosine", "step", NULL};
const char *const prefixes_one[] = {""};
const char *const prefixes_dates[] = {"encoder.", "decoder."};

#define LM TASK_BIT(TASK_LM)
#define CLASSIFY TASK_BIT(TASK_CLASSIFY)
#define DATES TASK_BIT(TASK_DATES)
#define DATA (TASK_BIT(TASK_CLASSIFY) | TASK_BIT(TASK_SEQ2SEQ) | TASK_BIT(TASK_GENERATE))
#define S(k, flag, kd, field, low, high, tk, rt, ...)                                                             \
    {.key = k, .opt = {.name = flag, .kind = kd, .lo = low, .hi = high, .tasks = tk, __VA_ARGS__},               \
     .off = offsetof(struct run, field), .runtime = rt}
#define BUF(field) .cap = sizeof ((struct run *)0)->field
/* The flags' ranges, and so the largest sizes a checkpoint may ask for. */
const struct setting run_settings[] = {
    S("recur.task", "--task", OPT_CHOICE, task, 0, 0, 0, 0, .choices = task_names),
    S("recur.cell", "--cell", OPT_BUF, cell, 0, 0, 0, 0, BUF(cell)),
    S("recur.variant", "--variant", OPT_BUF, variant, 0, 0, 0, 0, BUF(variant)),
    S("recur.hidden", "--hidden", OPT_INT, hidden, 1, 8192, 0, 0),
    S("recur.layers", "--layers", OPT_INT, layers, 1, 16, 0, 0),
    S("recur.embed", "--embed", OPT_INT, embed, 1, 8192, 0, 0),
    S("recur.direction", "--direction", OPT_DIRECTION, dir, 0, 0, 0, 0),
    S("recur.dropout", "--dropout", OPT_DOUBLE, dropout, 0, 1, 0, 0, .flags = OPT_HI_OPEN),
    S("recur.zoneout", "--zoneout", OPT_DOUBLE, zoneout, 0, 1, 0, 0, .flags = OPT_HI_OPEN),
    S("recur.batch", "--batch", OPT_INT, batch, 1, 65536, 0, 0),
    S("recur.bptt", "--bptt", OPT_INT, bptt, 1, 100000, LM, 0),
    S("recur.optim", "--optim", OPT_CHOICE, optim, 0, 0, 0, 0, .choices = optim_names),
    S("recur.lr", "--lr", OPT_DOUBLE, lr, 0, 100, 0, 0, .flags = OPT_LO_OPEN),
    S("recur.momentum", "--momentum", OPT_DOUBLE, momentum, 0, 1, 0, 0, .flags = OPT_HI_OPEN),
    S("recur.clip", "--clip", OPT_DOUBLE, clip, 0, 1e9, 0, 0),
    S("recur.init", "--init", OPT_CHOICE, init, 0, 0, 0, 0, .choices = init_names),
    S("recur.seed", "--seed", OPT_U64, seed, 0, 0, 0, 0),
    S("recur.corpus", "--corpus", OPT_BUF, corpus, 0, 0, LM, 0, BUF(corpus)),
    S("recur.shuffle", "--shuffle", OPT_FLAG, shuffle, 0, 0, LM, 0),
    S("recur.val_frac", "--val-frac", OPT_DOUBLE, val_frac, 0, 0.9, LM | DATA, 0, .flags = OPT_LO_OPEN),
    S("recur.alphabet", "--alphabet", OPT_INT, alphabet, 2, 256, CLASSIFY, 0),
    S("recur.min_len", "--min-len", OPT_INT, min_len, 2, 1000, CLASSIFY, 0),
    S("recur.max_len", "--max-len", OPT_INT, max_len, 2, 1000, CLASSIFY, 0),
    S("recur.val_size", "--val-size", OPT_INT, val_size, 1, 1000000, CLASSIFY | DATES, 0),
    S("recur.steps", "--steps", OPT_LLONG, steps, 0, 1e12, 0, 1),
    S("recur.eval_every", "--eval-every", OPT_INT, eval_every, 1, 1e9, 0, 1),
    S("recur.checkpoint_every", "--checkpoint-every", OPT_INT, checkpoint_every, 1, 1e9, 0, 1),
    S("recur.lr_schedule", "--lr-schedule", OPT_CHOICE, schedule, 0, 0, 0, 1, .choices = schedule_names),
    S("recur.warmup", "--warmup", OPT_LLONG, warmup, 0, 1e12, 0, 1),
    S("recur.lr_decay_every", "--lr-decay-every", OPT_LLONG, decay_every, 1, 1e12, 0, 1),
    S("recur.lr_gamma", "--lr-gamma", OPT_DOUBLE, gamma, 0, 1, 0, 1, .flags = OPT_LO_OPEN),
    S("recur.patience", "--patience", OPT_INT, patience, 0, 1e9, 0, 1),
    S("recur.accum", "--accum", OPT_INT, accum, 1, 1024, 0, 1),
    S("recur.data", "--data", OPT_BUF, data, 0, 0, DATA, 0, BUF(data)),
    S("recur.proj", "--proj", OPT_INT, proj, 0, 8191, 0, 0),
    /* runtime: the weights are float32 in every precision, so a run may resume in another one */
    S("recur.precision", "--precision", OPT_DTYPE, precision, 0, 0, 0, 1),
    /* runtime: the scale only changes how the gradients are computed, not what the model is */
    S("recur.loss_scale", "--loss-scale", OPT_LOSS_SCALE, loss_scale, 0, 0, 0, 1),
    S("recur.loss_scale_interval", "--loss-scale-interval", OPT_INT, loss_scale_interval, 1, 1e9, 0, 1),
};
#undef S
#undef BUF
#undef LM
#undef CLASSIFY
#undef DATES
#undef DATA
const size_t n_run_settings = sizeof run_settings / sizeof run_settings[0];

/*
 * The defaults of each task. lm: `recur train` with no arguments, about 2.5
 * minutes on 2 cores (docs/tasks.md has the measurements).
 */
void run_defaults(struct run *r, int task) {
    memset(r, 0, sizeof *r);
    r->task = task;
    snprintf(r->cell, sizeof r->cell, "lstm");
    r->layers = 1;
    r->dir = RECUR_DIR_FORWARD;
    r->optim = RECUR_OPTIM_ADAM;
    r->momentum = 0;
    r->clip = 5;
    r->init = RECUR_INIT_UNIFORM;
    r->seed = 1;
    r->val_frac = 0.05;
    r->alphabet = 8;
    r->min_len = 2;
    r->max_len = 30;
    r->val_size = 1000;
    r->schedule = SCHEDULE_CONSTANT;
    r->decay_every = 1000;
    r->gamma = 0.5;
    r->accum = 1;
    r->loss_scale = LOSS_SCALE_AUTO;
    r->loss_scale_interval = 2000;
    switch (task) {
    case TASK_LM:
        r->hidden = 256, r->embed = 32, r->batch = 32, r->bptt = 64, r->lr = 2e-3;
        r->steps = 7000, r->eval_every = 250, r->checkpoint_every = 1000;
        snprintf(r->corpus, sizeof r->corpus, "%s", CORPUS_DEFAULT);
        r->shuffle = 1;
        break;
    case TASK_CLASSIFY:
        r->hidden = 64, r->embed = 16, r->batch = 32, r->bptt = 0, r->lr = 3e-3;
        r->steps = 5000, r->eval_every = 500, r->checkpoint_every = 1000;
        break;
    case TASK_GENERATE:
        r->hidden = 128, r->embed = 32, r->batch = 32, r->bptt = 0, r->lr = 3e-3;
        r->steps = 2000, r->eval_every = 250, r->checkpoint_every = 1000;
        break;
    default: /* dates, seq2seq */
        r->hidden = 128, r->embed = 32, r->batch = 64, r->bptt = 0, r->lr = 3e-3;
        r->steps = 3000, r->eval_every = 250, r->checkpoint_every = 1000;
        break;
    }
}

void setting_format(const struct setting *s, const struct run *r, char *buf, size_t len) {
    const char *p = (const char *)r + s->off;
    switch (s->opt.kind) {
    case OPT_FLAG: case OPT_INT: snprintf(buf, len, "%d", *(const int *)p); break;
    case OPT_LLONG: snprintf(buf, len, "%lld", *(const long long *)p); break;
    case OPT_U64: snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p); break;
    case OPT_DOUBLE: snprintf(buf, len, "%.17g", *(const double *)p); break;
    case OPT_BUF: snprintf(buf, len, "%s", p); break;
    case OPT_CHOICE: snprintf(buf, len, "%s", s->opt.choices[*(const int *)p]); break;
    case OPT_DIRECTION: snprintf(buf, len, "%s", recur_direction_name((recur_direction) * (const int *)p)); break;
    case OPT_DTYPE: snprintf(buf, len, "%s", recur_dtype_name((recur_dtype) * (const int *)p)); break;
    case OPT_LOSS_SCALE: {
        double d = *(const double *)p;
        if (d == LOSS_SCALE_AUTO) snprintf(buf, len, "auto");
        else if (d == 0) snprintf(buf, len, "off");
        else snprintf(buf, len, "%.17g", d);
        break;
    }
    default: snprintf(buf, len, "?"); /* no setting has another kind */
    }
}

int setting_equal(const struct setting *s, const struct run *a, const struct run *b) {
    char x[4200], y[4200];
    setting_format(s, a, x, sizeof x);
    setting_format(s, b, y, sizeof y);
    return !strcmp(x, y);
}

static size_t setting_size(const struct setting *s) {
    switch (s->opt.kind) {
    case OPT_LLONG: return sizeof(long long);
    case OPT_U64: return sizeof(uint64_t);
    case OPT_DOUBLE: case OPT_LOSS_SCALE: return sizeof(double);
    case OPT_BUF: return s->opt.cap;
    default: return sizeof(int);
    }
}

void setting_copy(const struct setting *s, struct run *dst, const struct run *src) {
    memcpy((char *)dst + s->off, (const char *)src + s->off, setting_size(s));
}

double run_lr(const struct run *r, long long k) {
    double lr = r->lr;
    if (k < r->warmup) return lr * (double)(k + 1) / (double)r->warmup;
    long long k0 = k - r->warmup, span = r->steps - r->warmup;
    if (r->schedule == SCHEDULE_COSINE && span > 0) {
        double x = (double)(k0 < span ? k0 : span) / (double)span;
        return lr * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + cos(M_PI * x)));
    }
    if (r->schedule == SCHEDULE_STEP) {
        double f = pow(r->gamma, (double)(k0 / r->decay_every));
        return lr * (f > LR_FLOOR ? f : LR_FLOOR);
    }
    return lr;
}

uint64_t run_seed(const struct run *r, int which) {
    struct rng g = {r->seed};
    uint64_t x = 0;
    for (int i = 0; i <= which; i++) x = rng_next(&g);
    return x;
}

int cell_states(const char *cell) {
    size_t n = recur_cell_count();
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        if (recur_cell_get(i, &c) == RECUR_OK && !strcmp(c.name, cell)) return c.n_states;
    }
    return 0;
}

const char *cell_default_variant(const char *cell) {
    size_t n = recur_cell_count();
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        if (recur_cell_get(i, &c) == RECUR_OK && !strcmp(c.name, cell)) return c.n_variants ? c.variants[0] : "";
    }
    return "";
}

int mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        struct stat st;
        if (stat(buf, &st) != 0) return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        buf[i] = c;
    }
    return 0;
}

/* ---- models ---- */

int model_fail(const struct model *m, const char *cmd, const char *what, recur_status st) {
    const char *e = m->ctx ? recur_ctx_error(m->ctx) : "";
    if (!e || !*e) e = recur_last_error();
    if (e && *e) fprintf(stderr, "recur %s: %s: %s\n", cmd, what, e);
    else /* the tool's own buffers */
        fprintf(stderr, "recur %s: %s: %s (batch %d, hidden %d, layers %d)\n", cmd, what, recur_status_str(st),
                m->r.batch, m->r.hidden, m->r.layers);
    return -1;
}

static void model_shapes(struct model *m) {
    m->states = cell_states(m->r.cell);
    if (m->states < 1) m->states = 1;
    m->D = m->r.dir >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    m->LD = m->r.layers * m->D;
    m->H = m->r.hidden;
    m->P = m->r.proj ? m->r.proj : m->r.hidden;
}

static recur_net_desc net_desc(const struct model *m, int which) {
    const struct run *r = &m->r;
    recur_net_desc d = {
        .model = {.cell = r->cell, .variant = r->variant[0] ? r->variant : NULL, .input_size = r->embed,
                  .hidden_size = r->hidden, .num_layers = r->layers, .direction = (recur_direction)r->dir,
                  .dropout = (float)r->dropout, .seed = run_seed(r, SEED_INIT0 + which),
                  .zoneout = (float)r->zoneout, .proj_size = r->proj},
        .input = RECUR_INPUT_EMBEDDING,
        .loss = RECUR_LOSS_XENT,
    };
    switch (r->task) {
    case TASK_LM: d.vocab = m->V, d.head = RECUR_HEAD_ALL, d.output_size = m->V; break;
    case TASK_CLASSIFY: d.vocab = m->V, d.head = RECUR_HEAD_LAST, d.output_size = m->K; break;
    case TASK_GENERATE: d.vocab = m->V + m->labels.n, d.head = RECUR_HEAD_ALL, d.output_size = m->K; break;
    default: /* dates, seq2seq */
        if (which == 0) d.vocab = m->vsrc.size, d.head = RECUR_HEAD_NONE, d.output_size = 0;
        else d.vocab = m->V + 1, d.head = RECUR_HEAD_ALL, d.output_size = m->K;
    }
    return d;
}

static void model_vocabs(struct model *m, const struct vocab *v, const struct vocab *vsrc, const struct labels *labels) {
    int task = m->r.task;
    if (task == TASK_DATES) {
        date_vocab_src(&m->vsrc);
        date_vocab_iso(&m->v);
    } else if (task != TASK_CLASSIFY || run_has_data(&m->r)) {
        m->v = *v;
        if (task == TASK_SEQ2SEQ) m->vsrc = *vsrc;
        if (task == TASK_CLASSIFY || task == TASK_GENERATE) m->labels = *labels;
    }
    m->V = task == TASK_CLASSIFY && !run_has_data(&m->r) ? m->r.alphabet : m->v.size;
    m->K = task == TASK_CLASSIFY ? (run_has_data(&m->r) ? m->labels.n : 2)
         : task == TASK_SEQ2SEQ || task == TASK_GENERATE ? m->V + 1 /* and the end */ : m->V;
    m->Ta = m->Tb = DATA_FIELD_MAX + 1;
}

int model_build(struct model *m, const char *cmd, recur_ctx *ctx, const struct run *r, const struct vocab *v,
                const struct vocab *vsrc, const struct labels *labels) {
    memset(m, 0, sizeof *m);
    m->r = *r;
    m->ctx = ctx;
    model_shapes(m);
    model_vocabs(m, v, vsrc, labels);
    m->n_nets = task_encdec(r->task) ? 2 : 1;
    for (int i = 0; i < m->n_nets; i++) {
        recur_net_desc d = net_desc(m, i);
        recur_status st = recur_net_create(ctx, &d, &m->net[i]);
        if (st != RECUR_OK) return model_fail(m, cmd, "creating the net", st);
        if ((st = recur_net_init(m->net[i], (recur_init)r->init, run_seed(r, SEED_INIT0 + i))) != RECUR_OK)
            return model_fail(m, cmd, "initialising the net", st);
    }
    return 0;
}

void model_free(struct model *m) {
    for (int i = 0; i < 2; i++) recur_net_free(m->net[i]);
    m->net[0] = m->net[1] = NULL;
}

int model_set_precision(struct model *m, const char *cmd, int given) {
    recur_dtype p = (recur_dtype)m->r.precision;
    for (int i = 0; i < m->n_nets; i++) {
        /* bf16 keeps the saved values in bf16 too (half their memory), unless the cell needs them
         * exact (RECUR_CELL_SAVE_EXACT: refused, they stay f32, the banner says so); f32 and f16
         * keep them exact */
        recur_model *model = recur_net_model(m->net[i]);
        if (recur_model_set_saved_dtype(model, p == RECUR_DTYPE_BF16 ? RECUR_DTYPE_BF16 : RECUR_DTYPE_F32))
            recur_model_set_saved_dtype(model, RECUR_DTYPE_F32);
        if (recur_model_set_precision(model, p) == RECUR_OK) continue;
        if (given) {
            fprintf(stderr, "recur %s: --precision %s: %s\n", cmd, recur_dtype_name(p), recur_ctx_error(m->ctx));
            return 2;
        }
        fprintf(stderr, "recur %s: the checkpoint's precision %s: %s; --precision f32 computes in float32 (the "
                        "weights are float32)\n", cmd, recur_dtype_name(p), recur_ctx_error(m->ctx));
        return 1;
    }
    return 0;
}

void precision_text(const struct model *m, char *buf, size_t len) {
    unsigned native = 0;
    recur_ctx_precisions(m->ctx, &native);
    int emulated = m->r.precision != RECUR_DTYPE_F32 && !(native & (1u << m->r.precision));
    /* bf16 whose cell keeps its saved values exact (model_set_precision) */
    int exact = m->r.precision == RECUR_DTYPE_BF16 && m->n_nets &&
                recur_model_saved_dtype(recur_net_model(m->net[0])) != RECUR_DTYPE_BF16;
    snprintf(buf, len, " in %s%s%s", recur_dtype_name((recur_dtype)m->r.precision), emulated ? ", emulated" : "",
             exact ? ", saved values f32" : "");
}

recur_status run_to_file(recur_file *f, const struct model *m) {
    recur_status st = recur_file_put_meta(f, "recur.format", CHECKPOINT_FORMAT);
    for (size_t i = 0; st == RECUR_OK && i < n_run_settings; i++) {
        char buf[4200];
        setting_format(&run_settings[i], &m->r, buf, sizeof buf);
        st = recur_file_put_meta(f, run_settings[i].key, buf);
    }
    char hex[2 * 256 + 1];
    if (st == RECUR_OK && (m->r.task != TASK_CLASSIFY || run_has_data(&m->r))) {
        vocab_to_hex(&m->v, hex);
        st = recur_file_put_meta(f, "recur.vocab", hex);
    }
    if (st == RECUR_OK && task_encdec(m->r.task)) {
        vocab_to_hex(&m->vsrc, hex);
        st = recur_file_put_meta(f, "recur.vocab_src", hex);
    }
    if (st == RECUR_OK && m->labels.n) {
        char *lh = labels_to_hex(&m->labels);
        st = lh ? recur_file_put_meta(f, "recur.labels", lh) : RECUR_ERR_NO_MEMORY;
        free(lh);
    }
    return st;
}

int run_from_file(const recur_file *f, struct run *r, char *err, size_t errlen) {
    const char *fmt = recur_file_meta(f, "recur.format");
    if (!fmt) return snprintf(err, errlen, "no metadata 'recur.format' (a plain model file?)"), -1;
    if (strcmp(fmt, CHECKPOINT_FORMAT))
        return snprintf(err, errlen, "format '%.64s', this recur reads '%s'", fmt, CHECKPOINT_FORMAT), -1;
    /* The task first (run_settings[0]): its defaults stand for the settings of other tasks. */
    int task = 0;
    for (size_t i = 0; i < n_run_settings; i++) {
        const struct setting *s = &run_settings[i];
        if (i > 0 && s->opt.tasks && !(s->opt.tasks & TASK_BIT(task))) continue;
        const char *v = recur_file_meta(f, s->key);
        if (!v && s->off >= offsetof(struct run, schedule)) continue; /* an older checkpoint: the default */
        if (!v) return snprintf(err, errlen, "no metadata '%s'", s->key), -1;
        char why[300];
        int empty_ok = s->off == offsetof(struct run, variant) || s->off == offsetof(struct run, data);
        if (opt_value(&s->opt, v, (char *)r + s->off, empty_ok, why, sizeof why))
            return snprintf(err, errlen, "metadata '%s' = '%.64s%s': %s (as %s)", s->key, v,
                            strlen(v) > 64 ? "..." : "", why, s->opt.name), -1;
        if (i == 0) run_defaults(r, task = r->task);
    }
    if (r->task == TASK_CLASSIFY && r->min_len > r->max_len)
        return snprintf(err, errlen, "metadata 'recur.min_len' = '%d' is above 'recur.max_len' = '%d'", r->min_len,
                        r->max_len), -1;
    if ((r->task == TASK_SEQ2SEQ || r->task == TASK_GENERATE) && !run_has_data(r))
        return snprintf(err, errlen, "metadata 'recur.data' is empty; --task %s learns from a file", task_names[r->task]),
               -1;
    return 0;
}

int checkpoint_open(const char *cmd, const char *path, recur_file **f) {
    char err[4400];
    int fd = open_regular(path, SIZE_MAX, NULL, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "recur %s: cannot read checkpoint %s\n", cmd, err);
        return -1;
    }
    close(fd);
    if (recur_file_open(path, f) != RECUR_OK) {
        fprintf(stderr, "recur %s: cannot read checkpoint %s: %s\n", cmd, path, recur_last_error());
        return -1;
    }
    return 0;
}

int model_load(struct model *m, const char *cmd, recur_ctx *ctx, const char *path, recur_file **file) {
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    recur_file *f;
    if (checkpoint_open(cmd, path, &f)) return -1;
    char err[512];
    if (run_from_file(f, &m->r, err, sizeof err)) {
        fprintf(stderr, "recur %s: %s is not a checkpoint of recur train: %s\n", cmd, path, err);
        recur_file_free(f);
        return -1;
    }
    model_shapes(m);
    /* The vocabularies and labels the settings call for, each checked (data.h). */
    struct vocab v = {0}, vsrc = {0};
    struct labels *labels = calloc(1, sizeof *labels);
    int task = m->r.task, data = run_has_data(&m->r);
    const char *key = NULL, *hex = NULL;
    if (!labels) {
        fprintf(stderr, "recur %s: out of memory\n", cmd);
        recur_file_free(f);
        return -1;
    }
    if ((task == TASK_LM || data) && (!(hex = recur_file_meta(f, key = "recur.vocab")) || vocab_from_hex(hex, &v)))
        goto bad_meta;
    if (task == TASK_SEQ2SEQ && (!(hex = recur_file_meta(f, key = "recur.vocab_src")) || vocab_from_hex(hex, &vsrc)))
        goto bad_meta;
    if (((task == TASK_CLASSIFY && data) || task == TASK_GENERATE) &&
        (!(hex = recur_file_meta(f, key = "recur.labels")) || labels_from_hex(hex, labels)))
        goto bad_meta;
    model_vocabs(m, &v, &vsrc, labels);
    free(labels);
    labels = NULL;
    m->n_nets = task_encdec(m->r.task) ? 2 : 1;
    for (int i = 0; i < m->n_nets; i++) {
        recur_status st = recur_file_get_net(f, model_prefixes(m)[i], ctx, RECUR_LOAD_CHECK_FINITE, &m->net[i]);
        if (st != RECUR_OK) {
            char what[4200];
            snprintf(what, sizeof what, "checkpoint %s%s%s%s", path, m->n_nets > 1 ? " (" : "",
                     m->n_nets > 1 ? model_prefixes(m)[i] : "", m->n_nets > 1 ? "..)" : "");
            model_fail(m, cmd, what, st);
            model_free(m);
            recur_file_free(f);
            return -1;
        }
        /* The net must be the one the settings describe. */
        recur_net_desc got, want = net_desc(m, i);
        recur_net_desc_get(m->net[i], &got);
        if (got.vocab != want.vocab || got.head != want.head || got.output_size != want.output_size ||
            got.model.hidden_size != want.model.hidden_size || got.model.num_layers != want.model.num_layers ||
            got.model.input_size != want.model.input_size || got.model.direction != want.model.direction ||
            strcmp(got.model.cell, want.model.cell)) {
            fprintf(stderr, "recur %s: checkpoint %s is inconsistent: its net%s%s does not match its recur.* settings\n",
                    cmd, path, m->n_nets > 1 ? " " : "", m->n_nets > 1 ? model_prefixes(m)[i] : "");
            model_free(m);
            recur_file_free(f);
            return -1;
        }
    }
    if (file) *file = f;
    else recur_file_free(f);
    return 0;
bad_meta:
    fprintf(stderr, "recur %s: %s is not a checkpoint of recur train: metadata '%s' is %s\n", cmd, path, key,
            hex ? "malformed" : "missing");
    free(labels);
    recur_file_free(f);
    return -1;
}

int cmd_begin_model(const char *cmd, int argc, char **argv, struct opt *opts, void (*usage)(FILE *),
                    const char *const *model, recur_ctx **ctx, struct model *m, recur_file **file) {
    int rc = cmd_begin(cmd, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    if (!*model) return tool_usage_error(cmd, "--model FILE is required");
    if (!(*ctx = tool_ctx(cmd))) return 1;
    if (model_load(m, cmd, *ctx, *model, file)) {
        recur_ctx_free(*ctx);
        return 1;
    }
    /* The checkpoint's precision, so that eval says the number training said; --precision another. */
    const struct opt *p = opts_find(opts, "--precision");
    if (p && p->given) m->r.precision = *(const int *)p->dst;
    if ((rc = model_set_precision(m, cmd, p && p->given))) {
        if (file) recur_file_free(*file), *file = NULL;
        model_free(m);
        recur_ctx_free(*ctx);
        return rc;
    }
    return -1;
}

int meta_hash_is(const recur_file *f, const char *key, uint64_t hash) {
    char mine[32];
    snprintf(mine, sizeof mine, "%016" PRIx64, hash);
    const char *h = recur_file_meta(f, key);
    return h && !strcmp(h, mine);
}

/* ---- corpus ---- */

uint64_t corpus_hash(const struct corpus *c) {
    uint64_t h = 1469598103934665603ull;
    for (int part = 0; part < 2; part++) {
        const int32_t *s = part ? c->val : c->train;
        size_t n = part ? c->n_val : c->n_train;
        for (size_t i = 0; i < n; i++) h = (h ^ c->v.sym[s[i]]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

int run_corpus(const struct run *r, const char *cmd, struct corpus *c) {
    char err[1024];
    uint64_t shuffle = 0;
    if (r->shuffle) {
        shuffle = run_seed(r, SEED_SHUFFLE);
        if (!shuffle) shuffle = 1;
    }
    if (corpus_load(r->corpus, shuffle, r->val_frac, 2, c, err, sizeof err)) {
        fprintf(stderr, "recur %s: corpus %s\n", cmd, err);
        return -1;
    }
    return 0;
}

/* ---- lm ---- */

struct states {
    float *h, *c, *h2, *c2;
};
static int states_alloc(struct states *s, const struct model *m, int N) {
    size_t n = (size_t)m->LD * N * m->P, nc = (size_t)m->LD * N * m->H;
    memset(s, 0, sizeof *s);
    s->h = calloc(n, sizeof(float));
    s->h2 = calloc(n, sizeof(float));
    if (m->states == 2) {
        s->c = calloc(nc, sizeof(float));
        s->c2 = calloc(nc, sizeof(float));
    }
    return s->h && s->h2 && (m->states < 2 || (s->c && s->c2)) ? 0 : -1;
}
static void states_free(struct states *s) {
    free(s->h), free(s->c), free(s->h2), free(s->c2);
}
static void states_swap(struct states *s) {
    float *t = s->h;
    s->h = s->h2, s->h2 = t;
    t = s->c, s->c = s->c2, s->c2 = t;
}

/* The state is carried on the device, in place (recur_net_forward_dev), so
 * a chunk waits for the device once: for its loss. */
recur_status lm_stream_loss(struct model *m, const int32_t *s, size_t n, int N, int T, double *loss,
                            long long *count) {
    size_t cl = n / (size_t)N, ns = (size_t)m->LD * N * m->P, nsc = (size_t)m->LD * N * m->H;
    *loss = 0, *count = 0;
    if (cl < 2) return RECUR_ERR_ARG;
    int32_t *tok = calloc2((size_t)T, (size_t)N, sizeof *tok), *tgt = calloc2((size_t)T, (size_t)N, sizeof *tgt);
    float *zeros = calloc(nsc, sizeof *zeros); /* nsc >= ns */
    recur_buffer *dtok = NULL, *dtgt = NULL, *h = NULL, *c = NULL;
    recur_status rs = RECUR_ERR_NO_MEMORY;
    if (!tok || !tgt || !zeros) goto out;
    size_t TN = (size_t)T * N;
    if ((rs = recur_buffer_create(m->ctx, TN, &dtok)) != RECUR_OK ||
        (rs = recur_buffer_create(m->ctx, TN, &dtgt)) != RECUR_OK ||
        (rs = recur_buffer_create(m->ctx, ns, &h)) != RECUR_OK ||
        (rs = recur_buffer_write(h, 0, zeros, ns)) != RECUR_OK)
        goto out;
    if (m->states == 2 && ((rs = recur_buffer_create(m->ctx, nsc, &c)) != RECUR_OK ||
                           (rs = recur_buffer_write(c, 0, zeros, nsc)) != RECUR_OK))
        goto out;
    double sum = 0;
    long long total = 0;
    for (size_t p = 0; p < cl - 1 && rs == RECUR_OK; p += (size_t)T) {
        int t = (int)(cl - 1 - p < (size_t)T ? cl - 1 - p : (size_t)T);
        for (int i = 0; i < t; i++)
            for (int b = 0; b < N; b++) {
                tok[(size_t)i * N + b] = s[(size_t)b * cl + p + i];
                tgt[(size_t)i * N + b] = s[(size_t)b * cl + p + i + 1];
            }
        recur_net_batch_dev batch = {.T = t, .N = N, .tokens = dtok, .targets = dtgt, .h0 = h, .c0 = c, .hT = h,
                                     .cT = c};
        double l = 0;
        long long cnt = 0;
        rs = recur_buffer_write_ids(dtok, 0, tok, (size_t)t * N);
        if (rs == RECUR_OK) rs = recur_buffer_write_ids(dtgt, 0, tgt, (size_t)t * N);
        if (rs == RECUR_OK) rs = recur_net_forward_dev(m->net[0], RECUR_MODE_INFERENCE, &batch, NULL);
        if (rs == RECUR_OK) rs = recur_net_loss(m->net[0], &l, &cnt);
        sum += l * (double)cnt;
        total += cnt;
    }
    if (rs == RECUR_OK) {
        *loss = total ? sum / (double)total : 0;
        *count = total;
    }
out:
    recur_buffer_free(dtok), recur_buffer_free(dtgt), recur_buffer_free(h), recur_buffer_free(c);
    free(tok), free(tgt), free(zeros);
    return rs;
}

static int cmp_float_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

int sample_logits(const float *l, int V, double temperature, int top_k, struct rng *r) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > l[best]) best = i;
    if (temperature <= 0 || top_k == 1) return best;
    float thr = -INFINITY;
    if (top_k > 0 && top_k < V) {
        float sorted[257]; /* V: at most 256 bytes and an end symbol */
        memcpy(sorted, l, (size_t)V * sizeof *sorted);
        qsort(sorted, (size_t)V, sizeof *sorted, cmp_float_desc);
        thr = sorted[top_k - 1];
    }
    double w[257], sum = 0;
    for (int i = 0; i < V; i++) {
        w[i] = l[i] >= thr ? exp(((double)l[i] - l[best]) / temperature) : 0;
        sum += w[i];
    }
    double u = rng_unit(r) * sum;
    for (int i = 0; i < V; i++) {
        if (u < w[i]) return i;
        u -= w[i];
    }
    return best;
}

int lm_sample(struct model *m, const char *cmd, int n, int maxlen, double temperature, int top_k, struct rng *r,
              const char *start, FILE *out) {
    size_t P = 1 + strlen(start);
    int V = m->V, rc = -1;
    for (size_t i = 0; i < P; i++) {
        unsigned char ch = i ? (unsigned char)start[i - 1] : '\n';
        if (m->v.id[ch] < 0) {
            if (ch == '\n') fprintf(stderr, "recur %s: the model's vocabulary has no newline to start from\n", cmd);
            else fprintf(stderr, "recur %s: --start: byte 0x%02x ('%c') is not in the model's vocabulary\n", cmd, ch,
                         ch >= 32 && ch < 127 ? ch : '?');
            return -1;
        }
    }
    struct states st;
    int32_t *tok = calloc2(P, (size_t)n, sizeof *tok), *tgt = calloc2(P, (size_t)n, sizeof *tgt);
    float *logits = calloc2(P * (size_t)n, (size_t)V, sizeof *logits);
    char *text = calloc((size_t)n, (size_t)maxlen + 1);
    char *done = calloc((size_t)n, 1);
    if (states_alloc(&st, m, n) || !tok || !tgt || !logits || !text || !done) {
        fprintf(stderr, "recur %s: out of memory\n", cmd);
        goto out;
    }
    for (size_t i = 0; i < P; i++)
        for (int b = 0; b < n; b++) {
            tok[i * (size_t)n + b] = m->v.id[i ? (unsigned char)start[i - 1] : '\n'];
            tgt[i * (size_t)n + b] = -1;
        }
    recur_net_batch batch = {.T = (int)P, .N = n, .tokens = tok, .targets = tgt, .h0 = NULL, .c0 = NULL,
                             .hT = st.h2, .cT = st.c2, .logits = logits};
    recur_status fst = recur_net_forward(m->net[0], RECUR_MODE_INFERENCE, &batch, NULL, NULL);
    if (fst != RECUR_OK) {
        model_fail(m, cmd, "sampling", fst);
        goto out;
    }
    states_swap(&st);
    const float *last = logits + (P - 1) * n * V;
    int left = n;
    for (int i = 0; i < maxlen && left; i++) {
        for (int b = 0; b < n; b++) {
            int k = sample_logits(last + (size_t)b * V, V, temperature, top_k, r);
            tok[b] = k;
            if (done[b]) continue;
            if (m->v.sym[k] == '\n') {
                done[b] = 1;
                left--;
            } else {
                text[(size_t)b * (maxlen + 1) + i] = (char)m->v.sym[k];
            }
        }
        if (!left || i + 1 == maxlen) break;
        batch = (recur_net_batch){.T = 1, .N = n, .tokens = tok, .targets = tgt, .h0 = st.h, .c0 = st.c,
                                  .hT = st.h2, .cT = st.c2, .logits = logits};
        if ((fst = recur_net_forward(m->net[0], RECUR_MODE_INFERENCE, &batch, NULL, NULL)) != RECUR_OK) {
            model_fail(m, cmd, "sampling", fst);
            goto out;
        }
        states_swap(&st);
        last = logits;
    }
    for (int b = 0; b < n; b++) {
        const char *t = text + (size_t)b * (maxlen + 1);
        /* A sample may hold a NUL only if the vocabulary does, which corpus_load refuses. */
        fprintf(out, "%s%s\n", start, t);
    }
    rc = 0;
out:
    states_free(&st);
    free(tok), free(tgt), free(logits), free(text), free(done);
    return rc;
}

/* ---- classify and dates ---- */

int examples_alloc(struct examples *e, const struct model *m, int n) {
    memset(e, 0, sizeof *e);
    e->n = n;
    int task = m->r.task, data = run_has_data(&m->r);
    int T = data ? m->Ta : task == TASK_CLASSIFY ? m->r.max_len : DATE_SRC_MAX;
    int Td = task == TASK_DATES ? DATE_ISO_LEN : m->Tb;
    e->Td = Td;
    e->len = calloc((size_t)n, sizeof *e->len);
    if (task != TASK_GENERATE) e->tok = calloc2((size_t)T, (size_t)n, sizeof *e->tok);
    int ok = e->len && (task == TASK_GENERATE || e->tok);
    if (task == TASK_CLASSIFY || task == TASK_GENERATE) {
        e->label = calloc((size_t)n, sizeof *e->label);
        ok = ok && e->label;
    }
    if (task == TASK_CLASSIFY && !data) {
        e->row = calloc((size_t)T, sizeof *e->row);
        ok = ok && e->row;
    }
    if (task != TASK_CLASSIFY) {
        e->din = calloc2((size_t)Td, (size_t)n, sizeof *e->din);
        e->dtgt = calloc2((size_t)Td, (size_t)n, sizeof *e->dtgt);
        ok = ok && e->din && e->dtgt;
    }
    if (task == TASK_DATES) {
        e->src = calloc((size_t)n, sizeof *e->src);
        e->iso = calloc((size_t)n, sizeof *e->iso);
        ok = ok && e->src && e->iso;
    }
    if (ok) return 0;
    examples_free(e);
    return -1;
}

/* s[0..n-1] as ids of v into out[t * stride]; -1 and *bad the first byte not in v. */
static int text_ids(const struct vocab *v, const char *s, int n, int32_t *out, size_t stride, int *bad) {
    for (int t = 0; t < n; t++) {
        int id = v->id[(unsigned char)s[t]];
        if (id < 0) {
            if (bad) *bad = (unsigned char)s[t];
            return -1;
        }
        out[(size_t)t * stride] = id;
    }
    return 0;
}

int examples_from_data(struct examples *e, const struct model *m, const struct example *const *ex, int n, int *bad) {
    int task = m->r.task, T = 1, Td = 1;
    size_t N = (size_t)n;
    for (int b = 0; b < n; b++) {
        /* classify, generate: the sequence is b (a: the label); seq2seq: the source a, the target b */
        int la = task == TASK_CLASSIFY ? ex[b]->lb : task == TASK_SEQ2SEQ ? ex[b]->la : 0;
        int lb = task == TASK_CLASSIFY ? 0 : ex[b]->lb + 1;
        if (la > m->Ta || lb > m->Tb || (task != TASK_GENERATE && la < 1)) {
            if (bad) *bad = -1;
            return -1;
        }
        e->len[b] = task == TASK_GENERATE ? lb : la;
        if (la > T) T = la;
        if (lb > Td) Td = lb;
    }
    e->n = n, e->T = task == TASK_GENERATE ? Td : T, e->Td = Td;
    if (e->tok) memset(e->tok, 0, (size_t)T * N * sizeof *e->tok);
    if (e->din) {
        memset(e->din, 0, (size_t)Td * N * sizeof *e->din);
        for (size_t i = 0; i < (size_t)Td * N; i++) e->dtgt[i] = -1;
    }
    for (int b = 0; b < n; b++) {
        const struct example *x = ex[b];
        if (task == TASK_CLASSIFY || task == TASK_GENERATE) {
            e->label[b] = x->a ? labels_find(&m->labels, x->a) : x->label;
            if (e->label[b] < 0) {
                if (bad) *bad = -2;
                return -1;
            }
        }
        if (task == TASK_CLASSIFY) {
            if (text_ids(&m->v, x->b, x->lb, e->tok + b, N, bad)) return -1;
            continue;
        }
        if (task == TASK_SEQ2SEQ && text_ids(&m->vsrc, x->a, x->la, e->tok + b, N, bad)) return -1;
        /* the decoder (generate: the net) reads the start (the label) then the target; it
         * predicts the target then the end (V) */
        if (x->b && text_ids(&m->v, x->b, x->lb, e->dtgt + b, N, bad)) return -1;
        e->din[b] = task == TASK_GENERATE ? m->V + e->label[b] : m->V;
        for (int t = 0; t < x->lb; t++) e->din[(size_t)(t + 1) * N + b] = e->dtgt[(size_t)t * N + b];
        if (x->b) e->dtgt[(size_t)x->lb * N + b] = m->V;
    }
    return 0;
}

void examples_free(struct examples *e) {
    free(e->tok), free(e->len), free(e->label), free(e->row), free(e->din), free(e->dtgt), free(e->src), free(e->iso);
    memset(e, 0, sizeof *e);
}

/* dates: tokens of e->src[*] and, when iso is set, decoder inputs and targets. */
static int dates_tokens(struct examples *e, const struct model *m, int with_iso, int *bad) {
    int n = e->n, T = 1;
    for (int b = 0; b < n; b++) {
        e->len[b] = (int)strlen(e->src[b]);
        if (e->len[b] > T) T = e->len[b];
    }
    e->T = T;
    for (int b = 0; b < n; b++)
        for (int t = 0; t < T; t++) {
            int id = 0;
            if (t < e->len[b]) {
                id = m->vsrc.id[(unsigned char)e->src[b][t]];
                if (id < 0) {
                    if (bad) *bad = (unsigned char)e->src[b][t];
                    return -1;
                }
            }
            e->tok[(size_t)t * n + b] = id;
        }
    if (!with_iso) return 0;
    for (int b = 0; b < n; b++)
        for (int t = 0; t < DATE_ISO_LEN; t++) {
            e->dtgt[(size_t)t * n + b] = m->v.id[(unsigned char)e->iso[b][t]];
            e->din[(size_t)t * n + b] = t ? m->v.id[(unsigned char)e->iso[b][t - 1]] : m->V;
        }
    return 0;
}

void examples_draw(struct examples *e, const struct model *m, struct rng *r) {
    size_t n = (size_t)e->n;
    if (m->r.task == TASK_CLASSIFY) {
        struct memtask mt = {.alphabet = m->r.alphabet, .min_len = m->r.min_len, .max_len = m->r.max_len};
        /* Drawn in order into e->row (max_len long), laid out time-major, padded to the longest. */
        int T = 1;
        for (size_t b = 0; b < n; b++) {
            e->label[b] = memtask_draw(&mt, r, e->row, &e->len[b]);
            for (int t = 0; t < e->len[b]; t++) e->tok[(size_t)t * n + b] = e->row[t];
            if (e->len[b] > T) T = e->len[b];
        }
        for (size_t b = 0; b < n; b++)
            for (int t = e->len[b]; t < T; t++) e->tok[(size_t)t * n + b] = 0;
        e->T = T;
        return;
    }
    for (size_t b = 0; b < n; b++) date_draw(r, e->src[b], e->iso[b]);
    dates_tokens(e, m, 1, NULL);
}

int examples_from_text(struct examples *e, const struct model *m, const char *const *src, int n, int *bad) {
    if (n > e->n) return -1;
    e->n = n;
    for (int b = 0; b < n; b++) {
        if (strlen(src[b]) > DATE_SRC_MAX || !*src[b]) {
            if (bad) *bad = -1;
            return -1;
        }
        snprintf(e->src[b], sizeof e->src[b], "%s", src[b]);
        memset(e->iso[b], 0, sizeof e->iso[b]);
    }
    return dates_tokens(e, m, 0, bad);
}

/* Columns [i, i+k) of e into out (allocated for at least k). */
static void examples_slice(const struct examples *e, const struct model *m, int i, int k, struct examples *out) {
    out->n = k;
    out->T = 1;
    for (int b = 0; b < k; b++)
        if (e->len[i + b] > out->T) out->T = e->len[i + b];
    for (int t = 0; e->tok && t < out->T; t++)
        for (int b = 0; b < k; b++) out->tok[(size_t)t * k + b] = e->tok[(size_t)t * e->n + i + b];
    memcpy(out->len, e->len + i, (size_t)k * sizeof *out->len);
    if (e->label) memcpy(out->label, e->label + i, (size_t)k * sizeof *out->label);
    if (m->r.task == TASK_CLASSIFY) return;
    out->Td = e->Td;
    for (int t = 0; t < e->Td; t++)
        for (int b = 0; b < k; b++) {
            out->din[(size_t)t * k + b] = e->din[(size_t)t * e->n + i + b];
            out->dtgt[(size_t)t * k + b] = e->dtgt[(size_t)t * e->n + i + b];
        }
    if (m->r.task != TASK_DATES) return;
    memcpy(out->src, e->src + i, (size_t)k * sizeof *out->src);
    memcpy(out->iso, e->iso + i, (size_t)k * sizeof *out->iso);
}

recur_status classify_logits(struct model *m, const struct examples *e, float *logits) {
    int32_t *tgt = malloc((size_t)e->n * sizeof *tgt);
    if (!tgt) return RECUR_ERR_NO_MEMORY;
    for (int b = 0; b < e->n; b++) tgt[b] = -1;
    recur_net_batch batch = {.T = e->T, .N = e->n, .tokens = e->tok, .lengths = e->len, .targets = tgt,
                             .logits = logits};
    recur_status st = recur_net_forward(m->net[0], RECUR_MODE_INFERENCE, &batch, NULL, NULL);
    free(tgt);
    return st;
}

static recur_status dates_encode(struct model *m, const struct examples *e, struct states *s) {
    recur_net_batch enc = {.T = e->T, .N = e->n, .tokens = e->tok, .lengths = e->len, .hT = s->h, .cT = s->c};
    return recur_net_forward(m->net[0], RECUR_MODE_INFERENCE, &enc, NULL, NULL);
}

/* The first input of the decoder (generate: of the net) for example b: the start, or (generate) its label. */
static int32_t decode_start(const struct model *m, const struct examples *e, int b) {
    return m->r.task == TASK_GENERATE ? m->V + e->label[b] : m->V;
}

/* Decode e: ids[b * maxT + t], maxT steps (stopping early once every one has
 * made the end, seq2seq and generate), each the argmax (r NULL) or drawn with a
 * temperature among the top_k. */
static recur_status decode_ids(struct model *m, const struct examples *e, int maxT, double temperature, int top_k,
                               struct rng *r, int32_t *ids) {
    int n = e->n, K = m->K, ends = m->r.task != TASK_DATES, encdec = task_encdec(m->r.task);
    struct states s;
    int32_t *tok = malloc((size_t)n * sizeof *tok), *tgt = malloc((size_t)n * sizeof *tgt);
    float *logits = malloc((size_t)n * K * sizeof *logits);
    char *done = calloc((size_t)n, 1);
    recur_status st = RECUR_ERR_NO_MEMORY;
    if (states_alloc(&s, m, n) || !tok || !tgt || !logits || !done) goto out;
    st = encdec ? dates_encode(m, e, &s) : RECUR_OK;
    for (int b = 0; b < n; b++) tok[b] = decode_start(m, e, b), tgt[b] = -1;
    int left = n;
    for (int t = 0; t < maxT && st == RECUR_OK && left; t++) {
        recur_net_batch dec = {.T = 1, .N = n, .tokens = tok, .targets = tgt, .h0 = s.h, .c0 = s.c, .hT = s.h2,
                               .cT = s.c2, .logits = logits};
        st = recur_net_forward(m->net[encdec], RECUR_MODE_INFERENCE, &dec, NULL, NULL);
        states_swap(&s);
        for (int b = 0; b < n && st == RECUR_OK; b++) {
            int k = sample_logits(logits + (size_t)b * K, K, r ? temperature : 0, top_k, r);
            ids[(size_t)b * maxT + t] = k;
            tok[b] = k < m->V ? k : decode_start(m, e, b);
            if (ends && k == m->V && !done[b]) done[b] = 1, left--;
        }
    }
out:
    states_free(&s);
    free(tok), free(tgt), free(logits), free(done);
    return st;
}

recur_status dates_greedy(struct model *m, const struct examples *e, char (*out)[DATE_ISO_LEN + 1]) {
    int32_t *ids = calloc2((size_t)e->n, DATE_ISO_LEN, sizeof *ids);
    recur_status st = ids ? decode_ids(m, e, DATE_ISO_LEN, 0, 0, NULL, ids) : RECUR_ERR_NO_MEMORY;
    for (int b = 0; b < e->n && st == RECUR_OK; b++) {
        for (int t = 0; t < DATE_ISO_LEN; t++) out[b][t] = (char)m->v.sym[ids[(size_t)b * DATE_ISO_LEN + t]];
        out[b][DATE_ISO_LEN] = 0;
    }
    free(ids);
    return st;
}

recur_status decode(struct model *m, const struct examples *e, int maxT, double temperature, int top_k,
                    struct rng *r, char *out) {
    int32_t *ids = calloc2((size_t)e->n, (size_t)maxT, sizeof *ids);
    recur_status st = ids ? decode_ids(m, e, maxT, temperature, top_k, r, ids) : RECUR_ERR_NO_MEMORY;
    for (int b = 0; b < e->n && st == RECUR_OK; b++) {
        char *o = out + (size_t)b * (maxT + 1);
        int t = 0;
        for (; t < maxT && ids[(size_t)b * maxT + t] < m->V; t++) o[t] = (char)m->v.sym[ids[(size_t)b * maxT + t]];
        o[t] = 0;
    }
    free(ids);
    return st;
}

#define EVAL_BATCH 256

recur_status examples_eval(struct model *m, const struct examples *e, double *loss, double *accuracy) {
    int B = e->n < EVAL_BATCH ? e->n : EVAL_BATCH, task = m->r.task, K = m->K, Td = e->Td;
    struct examples s;
    struct states st;
    float *logits = malloc((size_t)B * K * sizeof *logits);
    int32_t *got = calloc2((size_t)B, (size_t)Td, sizeof *got);
    recur_status rs = RECUR_ERR_NO_MEMORY;
    memset(&st, 0, sizeof st);
    if (examples_alloc(&s, m, B) || !logits || !got || states_alloc(&st, m, B)) goto done;
    double sum = 0;
    long long count = 0, right = 0;
    rs = RECUR_OK;
    for (int i = 0; i < e->n && rs == RECUR_OK; i += B) {
        int k = e->n - i < B ? e->n - i : B;
        examples_slice(e, m, i, k, &s);
        double l = 0;
        long long c = 0;
        if (task == TASK_CLASSIFY) {
            recur_net_batch batch = {.T = s.T, .N = k, .tokens = s.tok, .lengths = s.len, .targets = s.label,
                                     .logits = logits};
            rs = recur_net_forward(m->net[0], RECUR_MODE_INFERENCE, &batch, &l, &c);
            for (int b = 0; b < k && rs == RECUR_OK; b++)
                right += sample_logits(logits + (size_t)b * K, K, 0, 0, NULL) == s.label[b];
        } else if (task == TASK_GENERATE) {
            recur_net_batch batch = {.T = s.Td, .N = k, .tokens = s.din, .targets = s.dtgt};
            rs = recur_net_forward(m->net[0], RECUR_MODE_INFERENCE, &batch, &l, &c);
        } else {
            /* teacher-forced loss, then the greedy decoding's exact match (to the end, seq2seq) */
            rs = dates_encode(m, &s, &st);
            recur_net_batch dec = {.T = s.Td, .N = k, .tokens = s.din, .targets = s.dtgt, .h0 = st.h, .c0 = st.c};
            if (rs == RECUR_OK) rs = recur_net_forward(m->net[1], RECUR_MODE_INFERENCE, &dec, &l, &c);
            if (rs == RECUR_OK) rs = decode_ids(m, &s, s.Td, 0, 0, NULL, got);
            for (int b = 0; b < k && rs == RECUR_OK; b++) {
                int same = 1;
                for (int t = 0; t < s.Td && same; t++) {
                    int32_t want = s.dtgt[(size_t)t * k + b];
                    if (want < 0) break;
                    same = got[(size_t)b * s.Td + t] == want;
                }
                right += same;
            }
        }
        sum += l * (double)c;
        count += c;
    }
    *loss = count ? sum / (double)count : 0;
    *accuracy = task == TASK_GENERATE ? NAN : (double)right / e->n;
done:
    examples_free(&s);
    states_free(&st);
    free(logits), free(got);
    return rs;
}

int data_decode_print(struct model *m, const char *cmd, const struct example *ex, int n, int maxT, double temperature,
                      int top_k, struct rng *r, FILE *out) {
    struct examples e;
    const struct example **p = calloc((size_t)n, sizeof *p);
    char *text = calloc2((size_t)n, (size_t)maxT + 1, 1);
    int rc = -1, bad = 0;
    if (!p || !text || examples_alloc(&e, m, n)) {
        fprintf(stderr, "recur %s: out of memory for %d sequences of %d symbols\n", cmd, n, maxT);
        free(p), free(text);
        return -1;
    }
    for (int b = 0; b < n; b++) p[b] = &ex[b];
    if (examples_from_data(&e, m, p, n, &bad)) {
        if (bad == -1) fprintf(stderr, "recur %s: --input: longer than %d bytes\n", cmd, DATA_FIELD_MAX);
        else if (bad == -2) fprintf(stderr, "recur %s: --input '%s': not a label of the model\n", cmd, ex[0].a);
        else fprintf(stderr, "recur %s: --input: the byte 0x%02x ('%c') is not in the model's vocabulary\n", cmd, bad,
                     bad >= 32 && bad < 127 ? bad : '?');
        goto out;
    }
    recur_status st = decode(m, &e, maxT, temperature, top_k, r, text);
    if (st != RECUR_OK) {
        model_fail(m, cmd, "decoding", st);
        goto out;
    }
    for (int b = 0; b < n; b++) {
        const char *got = text + (size_t)b * (maxT + 1);
        if (m->r.task == TASK_GENERATE) fprintf(out, "%s\t%s\n", ex[b].a, got);
        else if (!ex[b].b) fprintf(out, "%s\n", got);
        else fprintf(out, "  %s -> %s%s\n", ex[b].a, got,
                     (int)strlen(got) == ex[b].lb && !memcmp(got, ex[b].b, (size_t)ex[b].lb) ? "" : "  (wrong)");
    }
    rc = 0;
out:
    examples_free(&e);
    free(p), free(text);
    return rc;
}
