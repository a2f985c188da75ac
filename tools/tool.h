/* tool.h: what the recur tool's command files share. */
#ifndef RECUR_TOOL_H
#define RECUR_TOOL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Print "recur CMD: ..." to stderr and return the exit code of a usage error (2). */
static inline int tool_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "recur %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

#include "recur/recur.h"

/* A context on the device RECUR_DEVICE names (the default device when unset),
 * or NULL after printing "recur CMD: why" (a bad RECUR_DEVICE names the choices). */
static inline recur_ctx *tool_ctx(const char *cmd) {
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, NULL) == RECUR_OK) return ctx;
    fprintf(stderr, "recur %s: %s\n", cmd, recur_last_error());
    return NULL;
}

/* ---- data-parallel training under mpirun (dist.c) ---- */
/* Starts MPI when launched by mpirun (train only); 1 after a message. */
int dist_init(int *argc, char ***argv);
/* The end of the rank: rc != 0 with more ranks aborts the job naming this rank. */
void dist_finish(int rc);
int dist_rank(void), dist_size(void), dist_local_rank(void);
void *dist_comm(void); /* &MPI_COMM_WORLD for recur_optim_set_comm, or NULL */
/* RECUR_DEVICE "opencl:P:TYPE:" (device field empty): this rank's device by local rank. 1 after a message. */
int dist_pick_device(void);
/* Collectives over every rank (nothing with one): sum / rank 0's values; 1 on an MPI error. */
int dist_sum(double *v, int n);
int dist_bcast(double *v, int n);
/* [slabs, rows, width] of each rank into rank 0's [slabs, rows * size, width], ranks in order. */
int dist_gather_rows(float *full, const float *mine, int slabs, int rows, int width);
/* This rank's [slabs, rows, width] of a [slabs, rows * size, width]. */
void dist_slice_rows(float *mine, const float *full, int slabs, int rows, int width);

int cmd_demo(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);
int cmd_train(int argc, char **argv);  /* train.c */
int cmd_sample(int argc, char **argv); /* sample.c */
int cmd_eval(int argc, char **argv);   /* eval.c */
int cmd_bench(int argc, char **argv);  /* bench.c through benchcmd.c */

#include <stdint.h>

#include "recur/recur.h"

/* What gradcheck_run checks: a model of this cell and shape, seeded. */
struct gradcheck_opts {
    const char *cell, *variant; /* variant NULL: the cell's default */
    int L, I, H, T, N;
    recur_direction dir;
    int lengths;     /* 1: a fixed unsorted set of lengths in 1..T */
    uint64_t seed;
    double tol;
    double ref_tol;    /* outputs and gradients against cpu:scalar (not run there) */
    const double *eps; /* NULL: the default steps */
    int n_eps;
    int verbose;     /* 1: print the per-tensor table and the summary */
    double zoneout;  /* the model's zoneout: the loss is then that of the training forward
                      * with the analytic run's masks (a fresh model at the same call number) */
    int proj;        /* the model's proj_size (0: none) */
    recur_dtype precision; /* of the products; not f32: against the model in f32, no finite differences */
};

struct gradcheck_result {
    int n_checked, n_failed;
    double worst;      /* the worst error over every tensor */
    char worst_name[48];
    double loss;       /* L at the starting point */
    double forward_ms, backward_ms; /* of the training forward and BPTT */
    int ref_checked;   /* 1: compared with cpu:scalar */
    double ref_worst;  /* the worst relative difference from it (INFINITY: a NaN or Inf where it has a number) */
    char ref_worst_name[64]; /* its tensor */
    char ref_worst_at[96];   /* its worst element and both values */
    int stage_failed;  /* 1: a kernel on the device parts from its scalar C one, or writes outside
                        * an array (recur_ctx_cell_compare; run where the model is compared) */
};

/* Finite differences of every parameter tensor and input of a model on ctx,
 * and (on any device but cpu:scalar) its outputs and gradients against
 * cpu:scalar's (gradcheck.c). 0: all within tol and ref_tol; 1: some are
 * not; -1: a library error, already printed; -2: the device cannot compute
 * o->precision (printed). */
int gradcheck_run(recur_ctx *ctx, const struct gradcheck_opts *o, struct gradcheck_result *res);

/* ---- option tables (opts.c) ---- */

enum opt_kind {
    OPT_FLAG,   /* int *: set to 1 (a value, as in a checkpoint's metadata: 0 or 1) */
    OPT_INT,    /* int *, integer in [lo, hi] */
    OPT_LLONG,  /* long long *, integer in [lo, hi] */
    OPT_U64,    /* uint64_t * */
    OPT_DOUBLE, /* double *, in the range lo..hi (flags: open ends) */
    OPT_STRING, /* const char **, not empty */
    OPT_TEXT,   /* const char **, may be empty */
    OPT_CHOICE, /* int *: the index in choices (NULL-terminated) */
    OPT_DIRECTION, /* int *: a recur_direction, by recur_direction_parse (old spellings too) */
    OPT_BUF,    /* char[cap]: a copy, not empty, shorter than cap */
    OPT_DTYPE,  /* int *: a recur_dtype, by recur_dtype_parse ("f32", "bf16", "f16"; "fp32" etc. too) */
    OPT_LOSS_SCALE, /* double *: "auto" (LOSS_SCALE_AUTO), "off" (0) or a power of two in 1..2^100 */
};
enum { OPT_LO_OPEN = 1, OPT_HI_OPEN = 2 };

struct opt {
    const char *name; /* "--hidden"; NULL ends a table */
    enum opt_kind kind;
    void *dst;
    double lo, hi;
    int flags;
    const char *const *choices;
    size_t cap;      /* OPT_BUF */
    unsigned tasks;  /* train: the tasks it belongs to (TASK_BIT), 0: all */
    int given; /* set by opts_parse */
};

/* Parse argv[1..argc-1] ("--name VALUE", "--name=VALUE"). 0: parsed; 1: --help
 * was asked for; 2: a usage error, already printed (naming the option). */
int opts_parse(const char *cmd, int argc, char **argv, struct opt *opts);
/* Parse v as o's value into dst (not o->dst), in o's range; the one check of
 * flags and of the same settings read from a checkpoint. 0, or -1 with why
 * ("expected an integer in 1..65536"). An OPT_BUF may be empty when empty_ok. */
int opt_value(const struct opt *o, const char *v, void *dst, int empty_ok, char *why, size_t whylen);
struct opt *opts_find(struct opt *opts, const char *name);
int opt_given(const struct opt *opts, const char *name);
/* The start of a command: parse argv by opts; --help prints usage on stdout.
 * -1: go on; otherwise the exit code (0 after --help, 2 after a usage error). */
int cmd_begin(const char *cmd, int argc, char **argv, struct opt *opts, void (*usage)(FILE *));

/* calloc of a * b elements of size bytes; NULL when the sizes overflow or memory is short. */
static inline void *calloc2(size_t a, size_t b, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) return NULL;
    return calloc(n, size);
}

/* ---- the training tasks, shared by train.c, sample.c and eval.c (task.c) ---- */

#include "data.h"
#include "recur/recur-train.h"

enum task { TASK_LM, TASK_CLASSIFY, TASK_DATES, TASK_SEQ2SEQ, TASK_GENERATE };
#define TASK_BIT(t) (1u << (t))
extern const char *const task_names[];  /* lm, classify, dates, seq2seq, generate */
extern const char *const optim_names[]; /* sgd, adam: recur_optim_kind order */
extern const char *const init_names[];  /* uniform, orthogonal: recur_init order */
enum { SCHEDULE_CONSTANT, SCHEDULE_COSINE, SCHEDULE_STEP };
extern const char *const schedule_names[]; /* constant, cosine, step */

#define CHECKPOINT_NAME "checkpoint.safetensors"
#define CHECKPOINT_FORMAT "recur-train-1"

/* Every setting of a training run (what a checkpoint must hold to rebuild it). */
struct run {
    int task;
    char cell[64], variant[64]; /* variant: resolved to the cell's default when not given */
    int hidden, layers, embed, dir;
    double dropout;
    int batch, bptt;
    int optim;
    double lr, momentum, clip;
    int init;
    uint64_t seed;
    char corpus[4096]; /* lm: the corpus's real path */
    int shuffle;
    double val_frac;
    int alphabet, min_len, max_len; /* classify */
    int val_size;                   /* classify, dates: the held-out set */
    long long steps;                /* the target */
    int eval_every, checkpoint_every;
    /* (the settings from here on may be missing in an older checkpoint: their defaults stand) */
    int schedule;            /* the learning rate's schedule after warmup */
    long long warmup;        /* steps of linear warm-up from lr/warmup to lr */
    long long decay_every;   /* step: lr times gamma every this many steps */
    double gamma;
    int patience;            /* stop after this many evaluations without a better validation loss; 0: never */
    int accum;               /* batches of gradient accumulated per optimizer step */
    char data[4096];         /* classify (empty: the synthetic task), seq2seq, generate: --data's real path */
    double zoneout;          /* of every layer's states (recur_model_desc.zoneout) */
    int proj;                /* recur_model_desc.proj_size: 0, or each layer's output projected to it */
    int precision;           /* a recur_dtype: the matrix products' (recur_model_set_precision); the weights
                              * stay float32, so it may change on --resume */
    double loss_scale;       /* dynamic loss scaling's initial scale (recur_optim_set_loss_scale): 0 off,
                              * LOSS_SCALE_AUTO (run_loss_scale), or a power of two in 1..2^100 */
    int loss_scale_interval; /* its growth interval: the scale doubles after this many steps without a skip */
};
/* --loss-scale auto: LOSS_SCALE_F16 in f16 precision, off in the others. */
#define LOSS_SCALE_AUTO (-1.0)
#define LOSS_SCALE_F16 65536.0 /* 2^16, PyTorch's GradScaler's */
#define LOSS_SCALE_MAX 0x1p100
/* The initial loss scale of a run (auto resolved by its precision); 0: off. */
static inline double run_loss_scale(const struct run *r) {
    if (r->loss_scale != LOSS_SCALE_AUTO) return r->loss_scale;
    return r->precision == RECUR_DTYPE_F16 ? LOSS_SCALE_F16 : 0;
}
/* The run learns from a file of examples (--data). */
static inline int run_has_data(const struct run *r) { return r->data[0] != 0; }

/*
 * A setting: metadata "recur.<key>" and its option of recur train, with the
 * option's kind and range (opt.dst unused: off is the field in struct run).
 * The range holds for a flag and for a checkpoint's value alike. opt.tasks:
 * the tasks it belongs to; a checkpoint's value of another task's setting is
 * not read (the task's default stands). `runtime`: restored from a checkpoint
 * unless given, never a mismatch (steps, eval/checkpoint cadence).
 */
struct setting {
    const char *key;
    struct opt opt;
    size_t off;
    int runtime;
};
extern const struct setting run_settings[];
extern const size_t n_run_settings;
void run_defaults(struct run *r, int task);
void setting_format(const struct setting *s, const struct run *r, char *buf, size_t len);
int setting_equal(const struct setting *s, const struct run *a, const struct run *b);
/* Copy one setting's value from src to dst. */
void setting_copy(const struct setting *s, struct run *dst, const struct run *src);

/* The learning rate of step k (0-based: steps done before it): warm-up from
 * lr/warmup to lr over the first `warmup` steps, then constant, cosine down to
 * LR_FLOOR * lr at --steps, or times gamma every decay_every steps (never below
 * LR_FLOOR * lr: the optimizer takes only a positive rate). */
#define LR_FLOOR 0.01
double run_lr(const struct run *r, long long k);

/* Seeds derived from --seed, one per use. */
enum { SEED_INIT0, SEED_INIT1, SEED_DATA, SEED_HELDOUT, SEED_SAMPLE, SEED_SHUFFLE };
uint64_t run_seed(const struct run *r, int which);

/* The number of states (1 or 2) of a cell; 0 when no plugin has it. */
int cell_states(const char *cell);
/* The cell's default variant ("" when it has none). */
const char *cell_default_variant(const char *cell);

/* A model: its nets (lm, classify: one; dates: encoder and decoder), vocabularies and shapes. */
struct model {
    struct run r;
    recur_ctx *ctx;
    recur_net *net[2];
    int n_nets;
    int states, D, LD, H;
    int P; /* the width of a's carried states: proj, or H (c's are H wide) */
    struct vocab v;    /* lm: the corpus's bytes; classify: --data's sequences' (else unused);
                        * dates, seq2seq: the target side; generate: the sequences' */
    struct vocab vsrc; /* dates, seq2seq: the source side */
    struct labels labels; /* classify with --data, generate */
    int V;             /* lm: v.size; classify: alphabet or v.size; dates: v.size (decoder vocab V+1,
                        * start = V); seq2seq: v.size (decoder vocab V+1, start = V; outputs V+1, end = V);
                        * generate: v.size (vocab V + labels, label c = V + c; outputs V+1, end = V) */
    int K;             /* the head's outputs (classify: the classes) */
    int Ta, Tb;        /* --data: the longest source/sequence and decoder run examples hold (the
                        * target + 1); DATA_FIELD_MAX + 1 unless the caller knows the data */
};
extern const char *const prefixes_one[], *const prefixes_dates[];
/* Held-out accuracy (classify) or exact match (dates, seq2seq) besides the loss. */
static inline int task_has_accuracy(int task) { return task != TASK_LM && task != TASK_GENERATE; }
/* Two nets, an encoder and a decoder. */
static inline int task_encdec(int task) { return task == TASK_DATES || task == TASK_SEQ2SEQ; }
static inline const char *const *model_prefixes(const struct model *m) {
    return task_encdec(m->r.task) ? prefixes_dates : prefixes_one;
}
/* New nets for a run, initialised from its seed. v: lm's corpus's, or --data's
 * (the targets' for seq2seq), vsrc: seq2seq's sources', labels: --data's (NULL
 * where the task has none). -1 after printing "recur CMD: ...". */
int model_build(struct model *m, const char *cmd, recur_ctx *ctx, const struct run *r, const struct vocab *v,
                const struct vocab *vsrc, const struct labels *labels);
/* Open the file of a checkpoint: a regular file (a FIFO or a device is refused
 * before the library opens it). -1 after printing "recur CMD: ..." naming path. */
int checkpoint_open(const char *cmd, const char *path, recur_file **f);
/* Open a checkpoint of recur train and its nets (checked finite) on ctx.
 * *file (may be NULL) keeps the open file. -1 after printing a message naming path. */
int model_load(struct model *m, const char *cmd, recur_ctx *ctx, const char *path, recur_file **file);
/* The start of recur eval and sample: cmd_begin, then --model FILE (*model,
 * opts' destination) required, a context (tool_ctx) and the checkpoint's model
 * (model_load). -1: go on (free m, *file and *ctx); otherwise the exit code,
 * nothing left to free. */
int cmd_begin_model(const char *cmd, int argc, char **argv, struct opt *opts, void (*usage)(FILE *),
                    const char *const *model, recur_ctx **ctx, struct model *m, recur_file **file);
/* Only the settings of an open checkpoint (no nets), each checked against its
 * flag's range (run_settings); another task's settings are that task's defaults.
 * -1 with err set, naming the key, the value and the range. */
int run_from_file(const recur_file *f, struct run *r, char *err, size_t errlen);
/* Write the settings, the vocabularies and the format tag to f. */
recur_status run_to_file(recur_file *f, const struct model *m);
void model_free(struct model *m);
/* Every net of m computes its products in m->r.precision (recur_model_set_precision).
 * 0; otherwise the exit code after "recur CMD: --precision X: <the library's
 * reason>": 2 when `given` (the option's value, a usage error), 1 when it is
 * the checkpoint's (the message then says that --precision f32 computes in
 * float32). */
int model_set_precision(struct model *m, const char *cmd, int given);
/* " in bf16" (" in bf16, emulated" when the device has no bf16 hardware; "
 * in f32"): the precision of m's products as the banners say it. */
void precision_text(const struct model *m, char *buf, size_t len);
/* "recur CMD: what: <the context's message>" (without one, as from the tool's
 * own buffers: st's text and the run's sizes), returns -1. */
int model_fail(const struct model *m, const char *cmd, const char *what, recur_status st);

/* Whether f's metadata `key` is hash as 16 hex digits (how train writes a corpus's or data's hash). */
int meta_hash_is(const recur_file *f, const char *key, uint64_t hash);
/* FNV-1a over the text of a corpus's training then validation tokens (as bytes). */
uint64_t corpus_hash(const struct corpus *c);
/* Load the run's corpus (lm). -1 after printing. */
int run_corpus(const struct run *r, const char *cmd, struct corpus *c);

/* lm: mean cross-entropy over every target of stream s of n tokens in N
 * columns, chunks of T, state carried (the training's validation scheme). */
recur_status lm_stream_loss(struct model *m, const int32_t *s, size_t n, int N, int T, double *loss, long long *count);
/* lm: n samples, one per line, from '\n' + start; each ends at '\n' or maxlen bytes. */
int lm_sample(struct model *m, const char *cmd, int n, int maxlen, double temperature, int top_k, struct rng *r,
              const char *start, FILE *out);
/* Draw from logits[V], V <= 257, with a temperature (0: argmax) among the top_k (0: all). */
int sample_logits(const float *logits, int V, double temperature, int top_k, struct rng *r);

/* classify and dates: one batch of examples. */
struct examples {
    int n, T;          /* T: the longest source */
    int32_t *tok;      /* [T, n] time-major, padded with 0 */
    int *len;          /* [n] */
    int32_t *label;    /* classify: [n] */
    int32_t *row;      /* classify: [max_len], examples_draw's room for one sequence */
    int32_t *din, *dtgt; /* dates, seq2seq, generate: decoder inputs and targets [Td, n] (-1: none) */
    int Td;              /* the decoder's steps (dates: DATE_ISO_LEN) */
    char (*src)[DATE_SRC_MAX + 1]; /* dates: the text */
    char (*iso)[DATE_ISO_LEN + 1];
};
/* Room for n examples; -1 (nothing left allocated) when memory is short. */
int examples_alloc(struct examples *e, const struct model *m, int n);
void examples_free(struct examples *e);
/* Fill e with n fresh examples from r (the synthetic tasks). */
void examples_draw(struct examples *e, const struct model *m, struct rng *r);
/* --data: e gets n examples of d, ex[idx[0..n-1]] (n <= e's room; NULL idx: from
 * the first). -1 and *bad (the byte, or -1: too long) when one is outside the
 * model's vocabularies or labels. */
int examples_from_data(struct examples *e, const struct model *m, const struct example *const *ex, int n, int *bad);
/* seq2seq, generate: greedy decoding of e (at most maxT symbols) into out[n][maxT + 1] (text);
 * generate: sampled with temperature/top_k from r (NULL: greedy). */
recur_status decode(struct model *m, const struct examples *e, int maxT, double temperature, int top_k,
                    struct rng *r, char *out);
/* dates: put texts src (the human forms) into e; -1 and *bad the first byte not
 * in the source vocabulary. iso may be NULL (no targets). */
int examples_from_text(struct examples *e, const struct model *m, const char *const *src, int n, int *bad);
/* Mean loss (teacher-forced for dates, seq2seq and generate) and accuracy
 * (dates, seq2seq: exact match of the greedy decoding; generate: NaN, none)
 * over e, in inference mode, in batches of at most EVAL_BATCH. */
recur_status examples_eval(struct model *m, const struct examples *e, double *loss, double *accuracy);
/* seq2seq, generate: decode ex[0..n-1] (seq2seq: their sources, greedy; generate:
 * their labels, a = the label's name, drawn from r with a temperature among the
 * top_k, or greedy when r is NULL) to at most maxT symbols and print a line each
 * to out: seq2seq "TEXT" (or "  SOURCE -> TEXT", "  (wrong)" after it when the
 * example has a target it misses), generate "LABEL<TAB>TEXT". -1 after a message
 * ("recur CMD: --input ...": a byte outside the vocabulary, an unknown label). */
int data_decode_print(struct model *m, const char *cmd, const struct example *ex, int n, int maxT, double temperature,
                      int top_k, struct rng *r, FILE *out);
/* classify: the logits [n, K] of e. dates: the greedy translations of e. */
recur_status classify_logits(struct model *m, const struct examples *e, float *logits);
recur_status dates_greedy(struct model *m, const struct examples *e, char (*out)[DATE_ISO_LEN + 1]);

/* mkdir -p. 0, or -1 with errno set. */
int mkdir_p(const char *path);

#endif
