/*
 * data.h: the data, pictures and progress of recur train/sample/eval
 * (data.c, svg.c, progress.c). Plain C, no recur types: the commands in
 * train.c, sample.c and eval.c put them together with recur-train.h.
 */
#ifndef RECUR_TOOL_DATA_H
#define RECUR_TOOL_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- a small seeded generator (splitmix64), the same in bench/torch_compare.py ---- */

struct rng {
    uint64_t s;
};
static inline uint64_t rng_next(struct rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [0, n), n >= 1 (rejection, no modulo bias): draws x = rng_next
 * until x >= (2^64 - n) % n, returns x % n (0 for n <= 1, drawing nothing). */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 bits: (rng_next >> 11) * 2^-53. */
double rng_unit(struct rng *r);

/* ---- a text corpus as byte tokens ---- */

/* The default corpus: Debian's wamerican word list. */
#define CORPUS_DEFAULT "/usr/share/dict/words"

/* The largest corpus: 256 MiB (training holds the text, 4 bytes a token and
 * 16 bytes a line besides: about 1.5 GB at most). */
#define CORPUS_MAX_BYTES ((size_t)256 << 20)

/* Open path read-only when it is a regular file of at most max_bytes, without
 * blocking on a FIFO: the descriptor and *size (may be NULL), or -1 with a
 * message in err naming path and why (its kind, its size and the limit). */
int open_regular(const char *path, size_t max_bytes, size_t *size, char *err, size_t errlen);

struct vocab {
    int size;           /* distinct bytes, at most 256 */
    unsigned char sym[256]; /* token id -> byte, increasing byte order */
    int id[256];        /* byte -> token id, -1 when absent */
};

struct corpus {
    struct vocab v;
    int32_t *train, *val; /* token ids */
    size_t n_train, n_val;
};

/*
 * Read a text file and split it: the file's lines, in order, shuffled when
 * shuffle_seed != 0 (Fisher-Yates with rng_below, from the last line down,
 * seeded {shuffle_seed}), joined with '\n' (each line ends with one); the
 * last val_frac of the lines (at least one) is the validation text, the rest
 * training text. The vocabulary is every byte that occurs in the file.
 * Fails, with a message in err naming the file and the reason, when the file
 * is missing or unreadable, not a regular file (a FIFO, a device, a
 * directory: refused before anything is read), over CORPUS_MAX_BYTES, empty,
 * not text (a NUL byte, or not valid UTF-8), or too short to split (fewer
 * than 2 lines or a part shorter than min_tokens). 0 on success, -1 on failure.
 */
int corpus_load(const char *path, uint64_t shuffle_seed, double val_frac, size_t min_tokens, struct corpus *c,
                char *err, size_t errlen);
void corpus_free(struct corpus *c);

/* The vocabulary as a string for a file's metadata (each byte as two hex
 * digits), and back (-1 when malformed: empty, an odd length, over 256
 * bytes, a non-hex digit, or bytes not in strictly increasing order; v is
 * left as it was then). */
void vocab_to_hex(const struct vocab *v, char *out /* 2*256+1 */);
int vocab_from_hex(const char *hex, struct vocab *v);

/* ---- a file of examples: LABEL<TAB>SEQUENCE or SOURCE<TAB>TARGET a line ---- */

#define DATA_MAX_BYTES ((size_t)64 << 20) /* the largest file */
#define DATA_FIELD_MAX 1000               /* bytes of a sequence, source or target */
#define DATA_LABEL_MAX 63                 /* bytes of a label */
#define DATA_LABELS_MAX 256               /* distinct labels */

struct labels {
    int n;
    char name[DATA_LABELS_MAX][DATA_LABEL_MAX + 1]; /* in strcmp order; the index is the label's id */
};
struct example {
    const char *a, *b; /* labeled: the label and the sequence; else the source and the target (in text) */
    int la, lb;        /* their lengths in bytes */
    int label;         /* labeled: the label's id */
    size_t line;       /* 1-based, in the file */
};
struct dataset {
    char *text;
    struct example *ex; /* the training examples [0, n_train), then the held-out ones */
    size_t n, n_train;
    struct vocab v;     /* labeled: the sequences' bytes; else the sources' */
    struct vocab vt;    /* pairs: the targets' bytes */
    struct labels labels;
    int max_a, max_b;   /* the longest left and right fields */
    uint64_t hash;      /* FNV-1a over the file's bytes */
};
/*
 * Read a file of examples, one a line: LABEL<TAB>SEQUENCE (labeled) or
 * SOURCE<TAB>TARGET, every byte a symbol (UTF-8 text; a CRLF line end and
 * blank lines are fine). The examples are shuffled (Fisher-Yates with
 * rng_below from the last down, seeded {shuffle_seed}); the last val_frac of
 * them (at least 1, at most all but 1) are held out. Fails, with a message
 * in err naming the file (and for a bad line "FILE:LINE: what is wrong"),
 * when the file is missing, not a regular file, over DATA_MAX_BYTES, has a
 * line without exactly one tab, an empty field, a NUL byte, invalid UTF-8, a
 * field over DATA_FIELD_MAX bytes or a label over DATA_LABEL_MAX, more than
 * DATA_LABELS_MAX labels or only one, or fewer than 2 examples. 0 or -1.
 */
int dataset_load(const char *path, int labeled, uint64_t shuffle_seed, double val_frac, struct dataset *d, char *err,
                 size_t errlen);
void dataset_free(struct dataset *d);
/* The id of a label, or -1. */
int labels_find(const struct labels *l, const char *name);
/* The labels as hex for a file's metadata (each name and a newline; malloc'd,
 * NULL when memory is short), and back: -1 when malformed (an odd length, a
 * non-hex digit, an empty name, a NUL, tab or CR, a name over DATA_LABEL_MAX,
 * names not in strictly increasing order, fewer than 2 or over DATA_LABELS_MAX). */
char *labels_to_hex(const struct labels *l);
int labels_from_hex(const char *hex, struct labels *l);

/* ---- the many-to-one task: classify by a rule over distant positions ---- */

/* A sequence of `len` symbols 0..alphabet-1 whose label is 1 when its first
 * symbol equals its last, else 0, half of each (a model must remember the
 * first symbol across the whole sequence). len in [min_len, max_len]. */
struct memtask {
    int alphabet, min_len, max_len;
};
/* Draw one example: writes len symbols to seq (room for max_len), returns the label.
 * Draws the label (rng_below(r, 2)), the length, the symbols, then sets the
 * last symbol equal to the first (label 1) or, when equal, to a uniform other
 * one (label 0). Needs alphabet >= 2 and min_len >= 2; otherwise the label
 * returned is 1, as the first symbol then always equals the last. */
int memtask_draw(const struct memtask *m, struct rng *r, int32_t *seq, int *len);

/* ---- the encoder-decoder task: dates in human formats to ISO 8601 ---- */

#define DATE_SRC_MAX 40 /* longest human-format date, bytes, without NUL */
#define DATE_ISO_LEN 10 /* "1998-03-03" */

/* A random date between 1950-01-01 and 2049-12-31 in one of many human
 * formats ("3rd of March 1998", "tue 3/3/98", "March 3, 1998", "03.03.1998",
 * "3 mar 98", ...), lower or mixed case; src gets the text (NUL-terminated),
 * iso its ISO form (NUL-terminated). */
void date_draw(struct rng *r, char src[DATE_SRC_MAX + 1], char iso[DATE_ISO_LEN + 1]);
/* date_draw's formats, one drawn uniformly for each date (for 1998-03-03,
 * a Tuesday): "3rd of March 1998", "tue 3/3/98", "March 3, 1998",
 * "3 March 1998", "03.03.1998", "3 mar 98", "Tuesday, March 3, 1998",
 * "mar 3 1998", "3-Mar-1998", "03/03/1998", "3/3/1998",
 * "Tuesday 3 March 1998", "3.3.98", "March 3rd, 1998", "tue, 3 mar 1998",
 * "Tue Mar 3 1998", "03-Mar-98", "the 3rd of March, 1998",
 * "3rd March 1998", "Tuesday, 3.3.1998". '/' is always month/day/year (US),
 * '.' always day.month.year; a two-digit year 50-99 is 19xx, 00-49 20xx.
 * Each month or weekday name is in lower, Title or UPPER case at random;
 * "the", "of" and the ordinal suffixes are lower case. At most 29 bytes. */
#define DATE_N_FORMATS 20
/* The byte vocabularies both sides can use: every byte date_draw can put in
 * src (plus ' '), and the ISO side's "0123456789-". */
void date_vocab_src(struct vocab *v);
void date_vocab_iso(struct vocab *v);

/* ---- the loss curve ---- */

struct curve {
    double *x, *y; /* step, loss */
    size_t n, cap;
};
int curve_add(struct curve *c, double x, double y); /* 0, or -1 out of memory */
void curve_free(struct curve *c);
/* A self-contained SVG (axes, ticks, grid, legend; training in one colour,
 * validation in another with markers; acc, when given, on its own axis 0..1
 * on the right) of the curves, written atomically (temporary file + rename).
 * The loss axis says its unit (nats per symbol) and, with 20 points or more
 * of training, spans the points after the first 5% of the steps (the spike
 * at the start is cut off, and the plot says so). 0, or -1 with errno set.
 * (train, val, acc or title may be NULL; NaN and Inf points are left out; at
 * most about 2000 points of a curve are drawn, evenly spaced, and its last
 * one; the temporary file is "<path>.tmp.<pid>".) */
int svg_loss_curve(const char *path, const char *title, const struct curve *train, const struct curve *val,
                   const struct curve *acc);

/* ---- progress on stderr ---- */

struct progress {
    FILE *f;
    int tty;          /* a terminal: one bar redrawn in place with '\r'; else plain lines */
    long long total;  /* steps */
    double t0, last;  /* seconds (monotonic) at start and at the last print */
    double every;     /* seconds between plain lines (default 5) */
    /* (progress.c's own state, set by progress_begin) */
    long long first;  /* the steps done before this run (a resumed run's start); the rate counts step - first */
    long long updates; /* progress_update calls so far */
    int shown;        /* a bar is on the terminal's current line */
    double loss_sum;  /* the step losses since the last print, and their count */
    long long loss_n;
};
void progress_begin(struct progress *p, FILE *f, long long total, long long first);
/* After each step: its loss, tokens/s, the epoch (0: a task without epochs).
 * Prints (at most every few seconds, or 0.1 s on a terminal) "epoch E  step
 * S/TOTAL" (or "step S/TOTAL"), the mean loss of the steps since the last
 * print, tokens/s and the ETA from the rate so far. */
void progress_update(struct progress *p, int epoch, long long step, double step_loss, double tokens_per_s);
/* A message on a line of its own (clears the bar first on a tty). */
void progress_note(struct progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_end(struct progress *p);
/* Monotonic seconds. */
double now_seconds(void);

#endif
