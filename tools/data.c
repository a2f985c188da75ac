/*
 * data.c: the seeded generator's helpers, the text corpus, the vocabulary's
 * hex form, and the two synthetic tasks (memtask, dates) of data.h.
 */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the generator ---- */

uint64_t rng_below(struct rng *r, uint64_t n) {
    if (n <= 1) return 0;
    /* Reject the lowest 2^64 mod n values: the rest is a whole number of n's. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= threshold) return x % n;
    }
}

double rng_unit(struct rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }

/* ---- the corpus ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The offset of the first byte that is not part of valid UTF-8 (no overlong
 * forms, no surrogates, nothing above U+10FFFF), or n when all is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;      /* overlong */
            else if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;      /* overlong */
            else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else {
            return i; /* a continuation byte first, C0, C1 or F5..FF */
        }
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

int open_regular(const char *path, size_t max_bytes, size_t *size, char *err, size_t errlen) {
    /* O_NONBLOCK: opening a FIFO does not wait for a writer; a regular file ignores it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        set_err(err, errlen, "%s: %lld bytes, over the limit of %zu MiB", path, (long long)st.st_size, max_bytes >> 20);
        close(fd);
        return -1;
    }
    if (size) *size = (size_t)st.st_size;
    return fd;
}

/* The whole file (a regular file of at most max bytes) into *buf (with room
 * for one more byte), its length in *n. */
static int read_file(const char *path, size_t max, unsigned char **buf, size_t *n, char *err, size_t errlen) {
    *buf = NULL;
    *n = 0;
    size_t size;
    int fd = open_regular(path, max, &size, err, errlen);
    if (fd < 0) return -1;
    /* size + 2: a file that grew since fstat shows as one byte more than it had, and is refused */
    unsigned char *b = malloc(size + 2);
    size_t len = 0;
    if (!b) {
        set_err(err, errlen, "%s: out of memory reading the file (%zu bytes)", path, size);
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t got = read(fd, b + len, size + 1 - len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (got == 0) break;
        len += (size_t)got;
        if (len > size) {
            set_err(err, errlen, "%s: the file grew while it was read (past %zu bytes)", path, size);
            goto fail;
        }
    }
    close(fd);
    *buf = b;
    *n = len;
    return 0;
fail:
    free(b);
    close(fd);
    return -1;
}

struct line {
    size_t off, len; /* len includes the '\n' */
};

/* Fisher-Yates over n items of `size` bytes (at most 64), from the last down:
 * item i swaps with item rng_below(i + 1), the generator seeded {seed}. */
static void shuffle(void *items, size_t n, size_t size, uint64_t seed) {
    struct rng r = {seed};
    unsigned char *p = items, t[64];
    for (size_t i = n - 1; n > 1 && i >= 1; i--) {
        size_t j = (size_t)rng_below(&r, (uint64_t)i + 1);
        memcpy(t, p + i * size, size);
        memcpy(p + i * size, p + j * size, size);
        memcpy(p + j * size, t, size);
    }
}

/* The vocabulary of the bytes x with seen[x] set, in increasing order. */
static void vocab_build(const int seen[256], struct vocab *v) {
    v->size = 0;
    for (int x = 0; x < 256; x++) {
        v->id[x] = -1;
        if (seen[x]) {
            v->sym[v->size] = (unsigned char)x;
            v->id[x] = v->size++;
        }
    }
    for (int i = v->size; i < 256; i++) v->sym[i] = 0;
}

int corpus_load(const char *path, uint64_t shuffle_seed, double val_frac, size_t min_tokens, struct corpus *c,
                char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (err && errlen) err[0] = '\0';
    if (!path) path = CORPUS_DEFAULT;
    if (!(val_frac >= 0.0 && val_frac < 1.0)) {
        set_err(err, errlen, "%s: the validation fraction %g is not in [0, 1)", path, val_frac);
        return -1;
    }
    unsigned char *b;
    size_t n;
    if (read_file(path, CORPUS_MAX_BYTES, &b, &n, err, errlen) != 0) return -1;
    struct line *lines = NULL;
    int32_t *train = NULL, *val = NULL;

    if (n == 0) {
        set_err(err, errlen, "%s: empty file", path);
        goto fail;
    }
    const unsigned char *nul = memchr(b, 0, n);
    if (nul) {
        set_err(err, errlen, "%s: not a text file (a NUL byte at byte offset %zu)", path, (size_t)(nul - b));
        goto fail;
    }
    size_t bad = utf8_invalid_at(b, n);
    if (bad < n) {
        set_err(err, errlen, "%s: not a text file (invalid UTF-8 at byte offset %zu)", path, bad);
        goto fail;
    }
    if (b[n - 1] != '\n') b[n++] = '\n'; /* read_file left room for it */

    size_t n_lines = 0;
    for (const unsigned char *p = b; (p = memchr(p, '\n', n - (size_t)(p - b))) != NULL; p++) n_lines++;
    if (n_lines < 2) {
        set_err(err, errlen, "%s: only %zu line; at least 2 are needed to split training and validation text",
                path, n_lines);
        goto fail;
    }
    lines = malloc(n_lines * sizeof *lines);
    if (!lines) goto oom;
    size_t k = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\n') {
            lines[k].off = start;
            lines[k].len = i + 1 - start;
            k++;
            start = i + 1;
        }
    }
    if (shuffle_seed != 0) shuffle(lines, n_lines, sizeof *lines, shuffle_seed);
    size_t nv_lines = (size_t)((double)n_lines * val_frac);
    if (nv_lines < 1) nv_lines = 1;
    if (nv_lines >= n_lines) { /* not with val_frac < 1 and 2 lines or more, but cheap to say */
        set_err(err, errlen, "%s: %zu lines are too few to split training and validation text", path, n_lines);
        goto fail;
    }
    size_t nt_lines = n_lines - nv_lines;
    size_t n_train = 0, n_val = 0;
    for (size_t i = 0; i < nt_lines; i++) n_train += lines[i].len;
    n_val = n - n_train;
    if (n_train < min_tokens || n_val < min_tokens) {
        int is_train = n_train < min_tokens;
        set_err(err, errlen,
                "%s: too short to split: the %s text (%zu lines) has %zu tokens, fewer than the %zu needed", path,
                is_train ? "training" : "validation", is_train ? nt_lines : nv_lines, is_train ? n_train : n_val,
                min_tokens);
        goto fail;
    }

    struct vocab *v = &c->v;
    int seen[256] = {0};
    for (size_t i = 0; i < n; i++) seen[b[i]] = 1;
    vocab_build(seen, v);

    train = malloc(n_train * sizeof *train);
    val = malloc(n_val * sizeof *val);
    if (!train || !val) goto oom;
    size_t t = 0;
    for (size_t i = 0; i < nt_lines; i++)
        for (size_t q = 0; q < lines[i].len; q++) train[t++] = v->id[b[lines[i].off + q]];
    t = 0;
    for (size_t i = nt_lines; i < n_lines; i++)
        for (size_t q = 0; q < lines[i].len; q++) val[t++] = v->id[b[lines[i].off + q]];
    free(lines);
    free(b);
    c->train = train;
    c->val = val;
    c->n_train = n_train;
    c->n_val = n_val;
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", path);
fail:
    free(train);
    free(val);
    free(lines);
    free(b);
    memset(c, 0, sizeof *c);
    return -1;
}

void corpus_free(struct corpus *c) {
    if (!c) return;
    free(c->train);
    free(c->val);
    memset(c, 0, sizeof *c);
}

/* ---- the vocabulary as hex ---- */

void vocab_to_hex(const struct vocab *v, char *out) {
    static const char hex[] = "0123456789abcdef";
    int n = v->size < 0 ? 0 : v->size > 256 ? 256 : v->size;
    for (int i = 0; i < n; i++) {
        out[2 * i] = hex[v->sym[i] >> 4];
        out[2 * i + 1] = hex[v->sym[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int vocab_from_hex(const char *hex, struct vocab *v) {
    if (!hex || !v) return -1;
    size_t len = strnlen(hex, 2 * 256 + 1);
    if (len == 0 || len % 2 != 0 || len > 2 * 256) return -1;
    struct vocab w;
    w.size = (int)(len / 2);
    for (int x = 0; x < 256; x++) {
        w.id[x] = -1;
        w.sym[x] = 0;
    }
    for (int i = 0; i < w.size; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        int byte = hi * 16 + lo;
        if (i > 0 && byte <= w.sym[i - 1]) return -1; /* not in increasing order, or repeated */
        w.sym[i] = (unsigned char)byte;
        w.id[byte] = i;
    }
    *v = w;
    return 0;
}

/* ---- the memory task ---- */

int memtask_draw(const struct memtask *m, struct rng *r, int32_t *seq, int *len) {
    int label = (int)rng_below(r, 2);
    int lo = m->min_len < 1 ? 1 : m->min_len;
    int hi = m->max_len < lo ? lo : m->max_len;
    int n = lo + (int)rng_below(r, (uint64_t)(hi - lo) + 1);
    uint64_t a = m->alphabet < 1 ? 1 : (uint64_t)m->alphabet;
    for (int i = 0; i < n; i++) seq[i] = (int32_t)rng_below(r, a);
    *len = n;
    if (n < 2 || a < 2) return 1; /* the first symbol is the last, or all symbols are alike */
    if (label == 1) {
        seq[n - 1] = seq[0];
    } else if (seq[n - 1] == seq[0]) {
        /* uniform over the other alphabet-1 symbols (so the last one is uniform over them) */
        int32_t s = (int32_t)rng_below(r, a - 1);
        seq[n - 1] = s >= seq[0] ? s + 1 : s;
    }
    return label;
}

/* ---- dates ---- */

#define DATE_FIRST_DAY (-7305)  /* 1950-01-01, in days since 1970-01-01 */
#define DATE_N_DAYS 36525       /* to 2049-12-31 inclusive */

static const char *const month_full[12] = {"january", "february", "march",     "april",   "may",      "june",
                                           "july",    "august",   "september", "october", "november", "december"};
static const char *const month_abbr[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec"};
/* 0 = Monday */
static const char *const weekday_full[7] = {"monday", "tuesday", "wednesday", "thursday",
                                            "friday", "saturday", "sunday"};
static const char *const weekday_abbr[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
/* The other bytes the formats write besides digits and the names above. */
static const char date_literals[] = " ,./-" "stndrdth" "of" "the";

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days). */
static void civil_from_days(long z, int *y, int *m, int *d) {
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long yy = yoe + era * 400;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

enum { CASE_LOWER, CASE_TITLE, CASE_UPPER };

#define NAME_MAX_LEN 9 /* "wednesday", "september" */

/* name in one of three cases, chosen at random, into out. */
static const char *cased(struct rng *r, const char *name, char out[NAME_MAX_LEN + 1]) {
    int c = (int)rng_below(r, 3);
    size_t i = 0;
    for (; name[i] && i < NAME_MAX_LEN; i++) {
        char ch = name[i];
        if (c == CASE_UPPER || (c == CASE_TITLE && i == 0)) ch = (char)(ch - 'a' + 'A');
        out[i] = ch;
    }
    out[i] = '\0';
    return out;
}

static const char *ordinal(int d) {
    if (d >= 11 && d <= 13) return "th";
    switch (d % 10) {
    case 1: return "st";
    case 2: return "nd";
    case 3: return "rd";
    default: return "th";
    }
}

void date_draw(struct rng *r, char src[DATE_SRC_MAX + 1], char iso[DATE_ISO_LEN + 1]) {
    long z = DATE_FIRST_DAY + (long)rng_below(r, DATE_N_DAYS);
    int y, m, d;
    civil_from_days(z, &y, &m, &d);
    /* 1970-01-01 was a Thursday (3 with Monday = 0); z may be negative */
    int wd = (int)(((z % 7) + 7 + 3) % 7);
    int yy = y % 100;
    int fmt = (int)rng_below(r, DATE_N_FORMATS);
    char M[NAME_MAX_LEN + 1], Mb[NAME_MAX_LEN + 1], W[NAME_MAX_LEN + 1], Wb[NAME_MAX_LEN + 1];
    const size_t cap = DATE_SRC_MAX + 1;
    const char *o = ordinal(d);
    switch (fmt) {
    case 0: /* 3rd of March 1998 */
        snprintf(src, cap, "%d%s of %s %d", d, o, cased(r, month_full[m - 1], M), y);
        break;
    case 1: /* tue 3/3/98 (US: month/day/year) */
        snprintf(src, cap, "%s %d/%d/%02d", cased(r, weekday_abbr[wd], Wb), m, d, yy);
        break;
    case 2: /* March 3, 1998 */
        snprintf(src, cap, "%s %d, %d", cased(r, month_full[m - 1], M), d, y);
        break;
    case 3: /* 3 March 1998 */
        snprintf(src, cap, "%d %s %d", d, cased(r, month_full[m - 1], M), y);
        break;
    case 4: /* 03.03.1998 (day.month.year) */
        snprintf(src, cap, "%02d.%02d.%d", d, m, y);
        break;
    case 5: /* 3 mar 98 */
        snprintf(src, cap, "%d %s %02d", d, cased(r, month_abbr[m - 1], Mb), yy);
        break;
    case 6: /* Tuesday, March 3, 1998 */
        cased(r, weekday_full[wd], W);
        snprintf(src, cap, "%s, %s %d, %d", W, cased(r, month_full[m - 1], M), d, y);
        break;
    case 7: /* mar 3 1998 */
        snprintf(src, cap, "%s %d %d", cased(r, month_abbr[m - 1], Mb), d, y);
        break;
    case 8: /* 3-Mar-1998 */
        snprintf(src, cap, "%d-%s-%d", d, cased(r, month_abbr[m - 1], Mb), y);
        break;
    case 9: /* 03/03/1998 (US) */
        snprintf(src, cap, "%02d/%02d/%d", m, d, y);
        break;
    case 10: /* 3/3/1998 (US) */
        snprintf(src, cap, "%d/%d/%d", m, d, y);
        break;
    case 11: /* Tuesday 3 March 1998 */
        cased(r, weekday_full[wd], W);
        snprintf(src, cap, "%s %d %s %d", W, d, cased(r, month_full[m - 1], M), y);
        break;
    case 12: /* 3.3.98 (day.month.year) */
        snprintf(src, cap, "%d.%d.%02d", d, m, yy);
        break;
    case 13: /* March 3rd, 1998 */
        snprintf(src, cap, "%s %d%s, %d", cased(r, month_full[m - 1], M), d, o, y);
        break;
    case 14: /* tue, 3 mar 1998 */
        cased(r, weekday_abbr[wd], Wb);
        snprintf(src, cap, "%s, %d %s %d", Wb, d, cased(r, month_abbr[m - 1], Mb), y);
        break;
    case 15: /* Tue Mar 3 1998 */
        cased(r, weekday_abbr[wd], Wb);
        snprintf(src, cap, "%s %s %d %d", Wb, cased(r, month_abbr[m - 1], Mb), d, y);
        break;
    case 16: /* 03-Mar-98 */
        snprintf(src, cap, "%02d-%s-%02d", d, cased(r, month_abbr[m - 1], Mb), yy);
        break;
    case 17: /* the 3rd of March, 1998 */
        snprintf(src, cap, "the %d%s of %s, %d", d, o, cased(r, month_full[m - 1], M), y);
        break;
    case 18: /* 3rd March 1998 */
        snprintf(src, cap, "%d%s %s %d", d, o, cased(r, month_full[m - 1], M), y);
        break;
    default: /* Tuesday, 3.3.1998 (day.month.year) */
        snprintf(src, cap, "%s, %d.%d.%d", cased(r, weekday_full[wd], W), d, m, y);
        break;
    }
    const int parts[3] = {y, m, d}, widths[3] = {4, 2, 2};
    char *q = iso;
    for (int k = 0; k < 3; k++) {
        if (k) *q++ = '-';
        for (int w = widths[k] - 1, v = parts[k]; w >= 0; w--, v /= 10) q[w] = (char)('0' + v % 10);
        q += widths[k];
    }
    *q = '\0';
}

static void vocab_from_set(const int seen[256], struct vocab *v) {
    v->size = 0;
    for (int x = 0; x < 256; x++) {
        v->id[x] = -1;
        v->sym[x] = 0;
    }
    for (int x = 0; x < 256; x++)
        if (seen[x]) {
            v->sym[v->size] = (unsigned char)x;
            v->id[x] = v->size++;
        }
}

static void mark_cases(int seen[256], const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        seen[ch] = 1;
        if (ch >= 'a' && ch <= 'z') seen[ch - 'a' + 'A'] = 1;
    }
}

void date_vocab_src(struct vocab *v) {
    int seen[256] = {0};
    for (int c = '0'; c <= '9'; c++) seen[c] = 1;
    for (int i = 0; i < 12; i++) {
        mark_cases(seen, month_full[i]);
        mark_cases(seen, month_abbr[i]);
    }
    for (int i = 0; i < 7; i++) {
        mark_cases(seen, weekday_full[i]);
        mark_cases(seen, weekday_abbr[i]);
    }
    for (const char *s = date_literals; *s; s++) seen[(unsigned char)*s] = 1; /* as written: lower case */
    seen[' '] = 1;
    vocab_from_set(seen, v);
}

void date_vocab_iso(struct vocab *v) {
    int seen[256] = {0};
    for (const char *s = "0123456789-"; *s; s++) seen[(unsigned char)*s] = 1;
    vocab_from_set(seen, v);
}

/* ---- a file of examples: LEFT<TAB>RIGHT a line ---- */

static int cmp_label(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int dataset_load(const char *path, int labeled, uint64_t shuffle_seed, double val_frac, struct dataset *d, char *err,
                 size_t errlen) {
    memset(d, 0, sizeof *d);
    if (err && errlen) err[0] = '\0';
    if (!(val_frac > 0 && val_frac < 1)) {
        set_err(err, errlen, "%s: the held-out fraction %g is not in (0, 1)", path, val_frac);
        return -1;
    }
    unsigned char *b;
    size_t n;
    if (read_file(path, DATA_MAX_BYTES, &b, &n, err, errlen) != 0) return -1;
    if (n && b[n - 1] != '\n') b[n++] = '\n'; /* read_file left room for it */
    d->text = (char *)b;
    d->hash = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) d->hash = (d->hash ^ b[i]) * 1099511628211ull;
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += b[i] == '\n';
    d->ex = calloc(lines ? lines : 1, sizeof *d->ex);
    char **names = calloc(lines ? lines : 1, sizeof *names);
    if (!d->ex || !names) {
        set_err(err, errlen, "%s: out of memory for %zu lines", path, lines);
        goto fail;
    }
    int seen_a[256] = {0}, seen_b[256] = {0};
    size_t line = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != '\n') continue;
        line++;
        size_t end = i;
        b[i] = '\0';
        if (end > start && b[end - 1] == '\r') b[--end] = '\0'; /* a CRLF file */
        const char *what = NULL;
        char *s = (char *)b + start, *tab = memchr(s, '\t', end - start);
        size_t len = end - start;
        start = i + 1;
        if (len == 0) continue; /* a blank line */
        const char *left_name = labeled ? "label" : "source", *right_name = labeled ? "sequence" : "target";
        char why[96];
        if (memchr(s, '\0', len)) what = "a NUL byte (not a text file)";
        else if (utf8_invalid_at((const unsigned char *)s, len) < len) what = "not valid UTF-8";
        else if (!tab) what = labeled ? "no tab (expected LABEL<TAB>SEQUENCE)" : "no tab (expected SOURCE<TAB>TARGET)";
        else if (memchr(tab + 1, '\t', (size_t)(s + len - tab - 1))) what = "more than one tab";
        else if (tab == s) snprintf(why, sizeof why, "an empty %s", left_name), what = why;
        else if (tab + 1 == s + len) snprintf(why, sizeof why, "an empty %s", right_name), what = why;
        else if (labeled && tab - s > DATA_LABEL_MAX)
            snprintf(why, sizeof why, "a label of %zu bytes (at most %d)", (size_t)(tab - s), DATA_LABEL_MAX), what = why;
        else if (tab - s > DATA_FIELD_MAX || s + len - tab - 1 > DATA_FIELD_MAX)
            snprintf(why, sizeof why, "a %s of %zu bytes (at most %d)", tab - s > DATA_FIELD_MAX ? left_name : right_name,
                     (size_t)(tab - s > DATA_FIELD_MAX ? tab - s : s + len - tab - 1), DATA_FIELD_MAX), what = why;
        if (what) {
            set_err(err, errlen, "%s:%zu: %s", path, line, what);
            goto fail;
        }
        *tab = '\0';
        struct example *e = &d->ex[d->n++];
        e->a = s, e->b = tab + 1;
        e->la = (int)(tab - s), e->lb = (int)(s + len - tab - 1);
        e->line = line;
        if (labeled) names[d->n - 1] = s;
        /* labeled: the sequences' bytes into seen_a; pairs: the sources' and the targets' */
        for (int k = 0; !labeled && k < e->la; k++) seen_a[(unsigned char)e->a[k]] = 1;
        for (int k = 0; k < e->lb; k++) (labeled ? seen_a : seen_b)[(unsigned char)e->b[k]] = 1;
        if (e->la > d->max_a) d->max_a = e->la;
        if (e->lb > d->max_b) d->max_b = e->lb;
    }
    if (d->n < 2) {
        set_err(err, errlen, "%s: %zu example%s; at least 2 are needed (one to train on, one held out)", path, d->n,
                d->n == 1 ? "" : "s");
        goto fail;
    }
    vocab_build(seen_a, &d->v);
    vocab_build(seen_b, &d->vt);
    if (labeled) { /* the labels, sorted; each example's id */
        qsort(names, d->n, sizeof *names, cmp_label);
        for (size_t i = 0; i < d->n; i++) {
            if (i && !strcmp(names[i], names[i - 1])) continue;
            if (d->labels.n == DATA_LABELS_MAX) {
                set_err(err, errlen, "%s: more than %d distinct labels", path, DATA_LABELS_MAX);
                goto fail;
            }
            snprintf(d->labels.name[d->labels.n++], DATA_LABEL_MAX + 1, "%s", names[i]);
        }
        for (size_t i = 0; i < d->n; i++) d->ex[i].label = labels_find(&d->labels, d->ex[i].a);
        if (d->labels.n < 2) {
            set_err(err, errlen, "%s: every example has the label '%s'; at least 2 labels are needed", path,
                    d->labels.name[0]);
            goto fail;
        }
    }
    /* The held-out split: the last val_frac of the examples after a seeded shuffle. */
    _Static_assert(sizeof *d->ex <= 64, "shuffle's room");
    shuffle(d->ex, d->n, sizeof *d->ex, shuffle_seed);
    size_t held = (size_t)((double)d->n * val_frac);
    if (held < 1) held = 1;
    if (held >= d->n) held = d->n - 1;
    d->n_train = d->n - held;
    free(names);
    return 0;
fail:
    free(names);
    dataset_free(d);
    return -1;
}

void dataset_free(struct dataset *d) {
    free(d->text);
    free(d->ex);
    memset(d, 0, sizeof *d);
}

int labels_find(const struct labels *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->name[i], name)) return i;
    return -1;
}

char *labels_to_hex(const struct labels *l) {
    static const char hex[] = "0123456789abcdef";
    char *out = malloc((size_t)l->n * 2 * (DATA_LABEL_MAX + 1) + 1), *p = out;
    if (!out) return NULL;
    for (int i = 0; i < l->n; i++)
        for (const char *s = l->name[i];; s++) {
            unsigned char c = *s ? (unsigned char)*s : '\n'; /* each name ends with a newline */
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
            if (!*s) break;
        }
    *p = '\0';
    return out;
}

int labels_from_hex(const char *hex, struct labels *l) {
    memset(l, 0, sizeof *l);
    size_t len = strnlen(hex, (size_t)DATA_LABELS_MAX * 2 * (DATA_LABEL_MAX + 1) + 1), k = 0;
    if (len == 0 || len % 2 || len > (size_t)DATA_LABELS_MAX * 2 * (DATA_LABEL_MAX + 1)) return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        int c = hi * 16 + lo;
        if (c == '\n') { /* a name ends: not empty, in increasing order */
            if (k == 0 || l->n == DATA_LABELS_MAX) return -1;
            l->name[l->n][k] = '\0';
            if (l->n && strcmp(l->name[l->n - 1], l->name[l->n]) >= 0) return -1;
            l->n++, k = 0;
            continue;
        }
        if (c == 0 || c == '\t' || c == '\r' || k == DATA_LABEL_MAX || l->n == DATA_LABELS_MAX) return -1;
        l->name[l->n][k++] = (char)c;
    }
    return k == 0 && l->n >= 2 ? 0 : -1;
}
