/*
 * test-data.c: the pieces of recur train/sample/eval that need no model
 * (tools/data.c, svg.c, progress.c): the seeded generator, the text corpus
 * and its checks, the vocabulary's hex form, the memory task, the dates
 * (every one parsed back here, with its own calendar), the loss curve's SVG,
 * and the progress lines in a log and on a terminal.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

/* ---- helpers ---- */

/* A fresh temporary folder, and a file of `len` bytes in it. */
static char tmpdir[64];
static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/recur-tool-data-XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}
static void remove_tmpdir(void) {
    if (!tmpdir[0]) return;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
            rmdir(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}
static const char *tmp_file(const char *name, const void *data, size_t len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return path;
}
static const char *tmp_text(const char *name, const char *s) { return tmp_file(name, s, strlen(s)); }

/* The tokens decoded back to text (NUL-terminated, malloc'd). */
static char *decode(const struct vocab *v, const int32_t *t, size_t n) {
    char *s = malloc(n + 1);
    cr_assert(s);
    for (size_t i = 0; i < n; i++) {
        cr_assert(t[i] >= 0 && t[i] < v->size, "token %zu is %d, outside the vocabulary of %d", i, t[i], v->size);
        s[i] = (char)v->sym[t[i]];
    }
    s[n] = '\0';
    return s;
}

static size_t count_char(const char *s, char c) {
    size_t n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

static size_t count_str(const char *s, const char *needle) {
    size_t n = 0, l = strlen(needle);
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += l) n++;
    return n;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t got;
    while ((got = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) b = realloc(b, cap *= 2);
        cr_assert(b);
    }
    fclose(f);
    b[n] = '\0';
    if (len) *len = n;
    return b;
}

/* ---- the generator ---- */

Test(rng, splitmix64_known_values) {
    /* the reference outputs of splitmix64 (Vigna's splitmix64.c) */
    struct rng r = {0};
    const uint64_t want0[] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull, 0x06c45d188009454full};
    for (int i = 0; i < 3; i++) {
        uint64_t got = rng_next(&r);
        cr_assert_eq(got, want0[i], "seed 0, output %d: %016llx, expected %016llx", i, (unsigned long long)got,
                     (unsigned long long)want0[i]);
    }
    r.s = 1234567;
    const uint64_t want1[] = {6457827717110365317ull, 3203168211198807973ull, 9817491932198370423ull,
                              4593380528125082431ull, 16408922859458223821ull};
    for (int i = 0; i < 5; i++) {
        uint64_t got = rng_next(&r);
        cr_assert_eq(got, want1[i], "seed 1234567, output %d: %llu, expected %llu", i, (unsigned long long)got,
                     (unsigned long long)want1[i]);
    }
}

Test(rng, below_bounds_and_balance) {
    struct rng r = {99};
    const uint64_t ns[] = {1, 2, 3, 7, 10, 1000, (1ull << 63) + 1, UINT64_MAX};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int i = 0; i < 2000; i++) {
            uint64_t x = rng_below(&r, ns[k]);
            cr_assert_lt(x, ns[k], "rng_below(%llu) gave %llu", (unsigned long long)ns[k], (unsigned long long)x);
        }
    /* 2^63+1: almost half of all values are rejected; results still cover both halves */
    int high = 0;
    for (int i = 0; i < 1000; i++) high += rng_below(&r, (1ull << 63) + 1) >= (1ull << 62);
    cr_assert(high > 350 && high < 650, "%d of 1000 in the upper half", high);
    int count[3] = {0};
    for (int i = 0; i < 30000; i++) count[rng_below(&r, 3)]++;
    for (int i = 0; i < 3; i++) cr_assert(count[i] > 9400 && count[i] < 10600, "value %d drawn %d times", i, count[i]);
    /* the rule in data.h: x = next until x >= (2^64 - n) % n, then x % n */
    struct rng a = {5}, b = {5};
    for (int i = 0; i < 100; i++) {
        uint64_t n = 2 + (uint64_t)i * 977 + (i % 2 ? (1ull << 63) : 0);
        uint64_t thr = (0 - n) % n, x;
        do x = rng_next(&b);
        while (x < thr);
        cr_assert_eq(rng_below(&a, n), x % n);
    }
}

Test(rng, unit_range) {
    struct rng r = {7};
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rng_unit(&r);
        cr_assert(u >= 0.0 && u < 1.0, "rng_unit gave %.17g", u);
        sum += u;
    }
    cr_assert(fabs(sum / 100000 - 0.5) < 0.01, "mean %g", sum / 100000);
    struct rng z = {0};
    cr_assert_eq(rng_unit(&z), (double)(0xe220a8397b1dcdafull >> 11) * 0x1p-53);
}

/* ---- the corpus ---- */

TestSuite(corpus, .init = make_tmpdir, .fini = remove_tmpdir);

static const char ten_lines[] = "apple\nbanana\ncherry\ndate\nelder\nfig\ngrape\nhoney\nice\njam\n";

Test(corpus, good_file_in_order) {
    const char *p = tmp_text("ten.txt", ten_lines);
    struct corpus c;
    char err[256] = "x";
    cr_assert_eq(corpus_load(p, 0, 0.2, 1, &c, err, sizeof err), 0, "%s", err);
    char *tr = decode(&c.v, c.train, c.n_train), *va = decode(&c.v, c.val, c.n_val);
    cr_assert_str_eq(tr, "apple\nbanana\ncherry\ndate\nelder\nfig\ngrape\nhoney\n");
    cr_assert_str_eq(va, "ice\njam\n");
    cr_assert_eq(c.n_train + c.n_val, strlen(ten_lines));
    /* the vocabulary: every byte of the file, in increasing order */
    int seen[256] = {0}, distinct = 0;
    for (const char *s = ten_lines; *s; s++) distinct += !seen[(unsigned char)*s]++;
    cr_assert_eq(c.v.size, distinct);
    for (int i = 0; i < c.v.size; i++) {
        if (i) cr_assert_lt(c.v.sym[i - 1], c.v.sym[i]);
        cr_assert_eq(c.v.id[c.v.sym[i]], i);
    }
    for (int b = 0; b < 256; b++)
        if (!seen[b]) cr_assert_eq(c.v.id[b], -1, "byte %d is not in the file, id %d", b, c.v.id[b]);
    free(tr);
    free(va);
    corpus_free(&c);
    cr_assert_null(c.train);
    corpus_free(&c); /* twice is harmless */
}

Test(corpus, last_line_gets_a_newline_and_crlf_is_kept) {
    struct corpus c;
    char err[256];
    cr_assert_eq(corpus_load(tmp_text("nonl.txt", "one\ntwo"), 0, 0.1, 1, &c, err, sizeof err), 0, "%s", err);
    char *tr = decode(&c.v, c.train, c.n_train), *va = decode(&c.v, c.val, c.n_val);
    cr_assert_str_eq(tr, "one\n");
    cr_assert_str_eq(va, "two\n");
    free(tr);
    free(va);
    corpus_free(&c);
    cr_assert_eq(corpus_load(tmp_text("crlf.txt", "a b\r\nc d\r\n"), 0, 0.5, 1, &c, err, sizeof err), 0, "%s", err);
    tr = decode(&c.v, c.train, c.n_train);
    cr_assert_str_eq(tr, "a b\r\n");
    cr_assert_neq(c.v.id['\r'], -1);
    free(tr);
    corpus_free(&c);
}

Test(corpus, utf8_text_is_accepted) {
    struct corpus c;
    char err[256];
    const char *s = "caf\xc3\xa9\nna\xc3\xafve\n\xe2\x82\xac 5\n\xf0\x9f\x98\x80\n";
    cr_assert_eq(corpus_load(tmp_text("utf8.txt", s), 0, 0.25, 1, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.n_train + c.n_val, strlen(s));
    corpus_free(&c);
}

/* corpus_load fails with -1 and a message naming the file and each needle. */
static void expect_fail(const char *path, double val_frac, size_t min_tokens, const char *n1, const char *n2) {
    struct corpus c;
    memset(&c, 0x5a, sizeof c);
    char err[512] = "";
    int rc = corpus_load(path, 0, val_frac, min_tokens, &c, err, sizeof err);
    cr_assert_eq(rc, -1, "%s: corpus_load returned %d", path, rc);
    cr_assert(strstr(err, path), "the message '%s' does not name %s", err, path);
    if (n1) cr_assert(strstr(err, n1), "'%s' is not in the message '%s'", n1, err);
    if (n2) cr_assert(strstr(err, n2), "'%s' is not in the message '%s'", n2, err);
    cr_assert(c.train == NULL && c.val == NULL, "outputs left set after a failure");
    corpus_free(&c);
}

Test(corpus, missing_file) {
    char p[600];
    snprintf(p, sizeof p, "%s/no-such-file.txt", tmpdir);
    expect_fail(p, 0.1, 1, strerror(ENOENT), NULL);
}

Test(corpus, unreadable) {
    if (geteuid() != 0) { /* root reads anything */
        const char *p = tmp_text("secret.txt", ten_lines);
        chmod(p, 0);
        expect_fail(p, 0.1, 1, strerror(EACCES), NULL);
    }
}

Test(corpus, not_a_regular_file) {
    /* refused before anything is read: a FIFO without a writer would block, /dev/zero never ends */
    expect_fail(tmpdir, 0.1, 1, "not a regular file (a directory)", NULL);
    expect_fail("/dev/zero", 0.1, 1, "/dev/zero: not a regular file (a character device)", NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/fifo", tmpdir);
    cr_assert_eq(mkfifo(p, 0600), 0, "mkfifo: %s", strerror(errno));
    expect_fail(p, 0.1, 1, "not a regular file (a FIFO)", NULL);
}

Test(corpus, over_the_limit) {
    /* a sparse file: the size is refused before anything is read */
    char p[600];
    snprintf(p, sizeof p, "%s/huge.txt", tmpdir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    if (ftruncate(fd, (off_t)CORPUS_MAX_BYTES + 1) != 0) {
        close(fd);
        cr_skip_test("ftruncate: %s", strerror(errno));
    }
    close(fd);
    expect_fail(p, 0.1, 1, "268435457 bytes", "over the limit of 256 MiB");
}

Test(corpus, empty_file) { expect_fail(tmp_text("empty.txt", ""), 0.1, 1, "empty", NULL); }

Test(corpus, nul_byte) {
    expect_fail(tmp_file("nul.txt", "ab\ncd\0ef\n", 9), 0.1, 1, "not a text file", "offset 5");
}

Test(corpus, invalid_utf8) {
    expect_fail(tmp_text("latin1.txt", "ok\ncaf\xe9\nmore\n"), 0.1, 1, "not a text file", "offset 6");
    expect_fail(tmp_text("lone.txt", "ok\n\x80x\nmore\n"), 0.1, 1, "not a text file", "offset 3");
    expect_fail(tmp_text("overlong.txt", "ok\n\xc0\xaf\nmore\n"), 0.1, 1, "not a text file", "offset 3");
    expect_fail(tmp_text("surrogate.txt", "ok\n\xed\xa0\x80\nmore\n"), 0.1, 1, "not a text file", "offset 3");
    expect_fail(tmp_text("big.txt", "ok\n\xf4\x90\x80\x80\nmore\n"), 0.1, 1, "not a text file", "offset 3");
    expect_fail(tmp_text("cut.txt", "ok\nmore\n\xe2\x82"), 0.1, 1, "not a text file", "offset 8");
}

Test(corpus, one_line) {
    expect_fail(tmp_text("one.txt", "hello world\n"), 0.1, 1, "line", NULL);
    expect_fail(tmp_text("one-nonl.txt", "hello world"), 0.1, 1, "line", NULL);
}

Test(corpus, part_shorter_than_min_tokens) {
    /* 10 lines, 55 bytes; 20% = "ice\njam\n", 8 tokens, and 47 of training */
    const char *p = tmp_text("ten.txt", ten_lines);
    expect_fail(p, 0.2, 9, "validation", "8");
    expect_fail(p, 0.2, 48, "training", "47");
    struct corpus c;
    char err[256];
    cr_assert_eq(corpus_load(p, 0, 0.2, 8, &c, err, sizeof err), 0, "%s", err);
    corpus_free(&c);
}

Test(corpus, bad_val_frac) {
    const char *p = tmp_text("ten.txt", ten_lines);
    expect_fail(p, 1.0, 1, NULL, NULL);
    expect_fail(p, -0.1, 1, NULL, NULL);
    expect_fail(p, NAN, 1, NULL, NULL);
}

#define N_SHUF 200
static const char *write_numbered(void) {
    static char text[N_SHUF * 16];
    size_t o = 0;
    for (int i = 0; i < N_SHUF; i++) o += (size_t)snprintf(text + o, sizeof text - o, "line %d\n", i);
    return tmp_text("numbered.txt", text);
}
/* The line numbers of a decoded text, in order. */
static int line_numbers(const char *s, int *out) {
    int n = 0;
    for (const char *p = s; *p;) {
        cr_assert(sscanf(p, "line %d", &out[n]) == 1, "bad line at '%.10s'", p);
        n++;
        p = strchr(p, '\n');
        cr_assert(p);
        p++;
    }
    return n;
}

Test(corpus, shuffle_is_a_reproducible_permutation) {
    const char *p = write_numbered();
    struct corpus a, b, z;
    char err[256];
    cr_assert_eq(corpus_load(p, 42, 0.1, 1, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(corpus_load(p, 42, 0.1, 1, &b, err, sizeof err), 0, "%s", err);
    cr_assert_eq(corpus_load(p, 0, 0.1, 1, &z, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.n_train, b.n_train);
    cr_assert_eq(memcmp(a.train, b.train, a.n_train * sizeof *a.train), 0, "the same seed, another order");
    cr_assert_eq(memcmp(a.val, b.val, a.n_val * sizeof *a.val), 0);
    cr_assert_eq(a.n_train + a.n_val, z.n_train + z.n_val);

    int order[N_SHUF], zorder[N_SHUF];
    char *tr = decode(&a.v, a.train, a.n_train), *va = decode(&a.v, a.val, a.n_val);
    int nt = line_numbers(tr, order);
    int nv = line_numbers(va, order + nt);
    cr_assert_eq(nt + nv, N_SHUF);
    cr_assert_eq(nv, N_SHUF / 10);
    /* a permutation */
    int seen[N_SHUF] = {0};
    for (int i = 0; i < N_SHUF; i++) {
        cr_assert(order[i] >= 0 && order[i] < N_SHUF);
        cr_assert_eq(seen[order[i]]++, 0, "line %d twice", order[i]);
    }
    /* unshuffled: the file's order; shuffled: not */
    char *zt = decode(&z.v, z.train, z.n_train), *zv = decode(&z.v, z.val, z.n_val);
    int zn = line_numbers(zt, zorder);
    zn += line_numbers(zv, zorder + zn);
    int moved = 0;
    for (int i = 0; i < N_SHUF; i++) {
        cr_assert_eq(zorder[i], i);
        moved += order[i] != i;
    }
    cr_assert_gt(moved, N_SHUF / 2, "only %d lines moved", moved);
    /* exactly data.h's Fisher-Yates: from the last line down, j = rng_below(i + 1) */
    int want[N_SHUF];
    for (int i = 0; i < N_SHUF; i++) want[i] = i;
    struct rng r = {42};
    for (int i = N_SHUF - 1; i >= 1; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1);
        int t = want[i];
        want[i] = want[j];
        want[j] = t;
    }
    for (int i = 0; i < N_SHUF; i++) cr_assert_eq(order[i], want[i], "position %d: line %d, expected %d", i, order[i], want[i]);
    /* another seed, another order */
    struct corpus c;
    cr_assert_eq(corpus_load(p, 43, 0.1, 1, &c, err, sizeof err), 0, "%s", err);
    cr_assert(c.n_train != a.n_train || memcmp(c.train, a.train, a.n_train * sizeof *a.train) != 0);
    free(tr);
    free(va);
    free(zt);
    free(zv);
    corpus_free(&a);
    corpus_free(&b);
    corpus_free(&z);
    corpus_free(&c);
}

Test(corpus, val_split_sizes) {
    const char *p = write_numbered();
    const struct {
        double frac;
        size_t lines;
    } cases[] = {{0.0, 1}, {0.001, 1}, {0.1, 20}, {0.25, 50}, {0.333, 66}, {0.5, 100}, {0.99, 198}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct corpus c;
        char err[256];
        cr_assert_eq(corpus_load(p, 7, cases[k].frac, 1, &c, err, sizeof err), 0, "%s", err);
        char *tr = decode(&c.v, c.train, c.n_train), *va = decode(&c.v, c.val, c.n_val);
        cr_assert_eq(count_char(va, '\n'), cases[k].lines, "val_frac %g: %zu validation lines, expected %zu",
                     cases[k].frac, count_char(va, '\n'), cases[k].lines);
        cr_assert_eq(count_char(tr, '\n'), N_SHUF - cases[k].lines);
        cr_assert_eq(tr[c.n_train - 1], '\n');
        free(tr);
        free(va);
        corpus_free(&c);
    }
}

/* ---- the vocabulary as hex ---- */

Test(vocab, hex_round_trip) {
    struct vocab v, w;
    memset(&v, 0, sizeof v);
    for (int b = 0; b < 256; b++) v.id[b] = -1;
    const unsigned char syms[] = {0x0a, 'a', 'b', 0xc3, 0xff};
    v.size = 5;
    for (int i = 0; i < 5; i++) {
        v.sym[i] = syms[i];
        v.id[syms[i]] = i;
    }
    char hex[2 * 256 + 1];
    vocab_to_hex(&v, hex);
    cr_assert_str_eq(hex, "0a6162c3ff");
    cr_assert_eq(vocab_from_hex(hex, &w), 0);
    cr_assert_eq(w.size, 5);
    cr_assert_eq(memcmp(w.sym, v.sym, 5), 0);
    cr_assert_eq(memcmp(w.id, v.id, sizeof v.id), 0);
    cr_assert_eq(vocab_from_hex("0A6162C3FF", &w), 0, "upper-case digits");
    cr_assert_eq(w.size, 5);
    /* all 256 bytes */
    v.size = 256;
    for (int b = 0; b < 256; b++) {
        v.sym[b] = (unsigned char)b;
        v.id[b] = b;
    }
    vocab_to_hex(&v, hex);
    cr_assert_eq(strlen(hex), 512);
    cr_assert_eq(vocab_from_hex(hex, &w), 0);
    cr_assert_eq(w.size, 256);
    cr_assert_eq(memcmp(w.id, v.id, sizeof v.id), 0);
    /* the vocabularies of the date task */
    date_vocab_src(&v);
    vocab_to_hex(&v, hex);
    cr_assert_eq(vocab_from_hex(hex, &w), 0);
    cr_assert_eq(memcmp(&w, &v, sizeof v), 0);
}

Test(vocab, malformed_hex) {
    struct vocab w;
    memset(&w, 0x33, sizeof w);
    struct vocab before = w;
    const char *bad[] = {"", "0", "616", "zz", "0g", "6261", "6161", "61 62", "-1", "0x61"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(vocab_from_hex(bad[i], &w), -1, "'%s' was accepted", bad[i]);
        cr_assert_eq(memcmp(&w, &before, sizeof w), 0, "'%s': v changed on failure", bad[i]);
    }
    char big[2 * 257 + 1];
    for (int i = 0; i < 257; i++) snprintf(big + 2 * i, 3, "%02x", i < 256 ? i : 0);
    cr_assert_eq(vocab_from_hex(big, &w), -1, "257 bytes");
    cr_assert_eq(vocab_from_hex(NULL, &w), -1);
}

Test(vocab, iso) {
    struct vocab v;
    date_vocab_iso(&v);
    cr_assert_eq(v.size, 11);
    cr_assert_eq(v.sym[0], '-');
    for (int i = 0; i < 10; i++) cr_assert_eq(v.sym[1 + i], '0' + i);
    cr_assert_eq(v.id['a'], -1);
    cr_assert_eq(v.id['5'], 6);
}

/* ---- the memory task ---- */

static void memtask_check(int alphabet, int min_len, int max_len) {
    struct memtask m = {alphabet, min_len, max_len};
    struct rng r = {2024};
    int32_t seq[256];
    int ones = 0, n = 20000;
    int len_seen[257] = {0};
    for (int i = 0; i < n; i++) {
        int len = -1;
        int label = memtask_draw(&m, &r, seq, &len);
        cr_assert(len >= min_len && len <= max_len, "length %d", len);
        len_seen[len] = 1;
        for (int k = 0; k < len; k++) cr_assert(seq[k] >= 0 && seq[k] < alphabet, "symbol %d", seq[k]);
        cr_assert(label == 0 || label == 1);
        cr_assert_eq(label, seq[0] == seq[len - 1], "label %d, first %d, last %d", label, seq[0], seq[len - 1]);
        ones += label;
    }
    cr_assert(ones > n * 0.47 && ones < n * 0.53, "alphabet %d: %d of %d labelled 1", alphabet, ones, n);
    for (int l = min_len; l <= max_len; l++) cr_assert(len_seen[l], "length %d never drawn", l);
}

Test(memtask, labels_balanced_and_the_rule_holds) {
    memtask_check(2, 2, 2);
    memtask_check(5, 3, 10);
    memtask_check(26, 20, 60);
    /* reproducible from the seed; the label is the first draw */
    struct memtask m = {8, 4, 12};
    struct rng a = {11}, b = {11}, c = {11};
    int32_t sa[12], sb[12];
    int la, lb;
    for (int i = 0; i < 100; i++) {
        int ya = memtask_draw(&m, &a, sa, &la), yb = memtask_draw(&m, &b, sb, &lb);
        cr_assert_eq(ya, yb);
        cr_assert_eq(la, lb);
        cr_assert_eq(memcmp(sa, sb, (size_t)la * sizeof *sa), 0);
    }
    cr_assert_eq(memtask_draw(&m, &c, sa, &la), (int)rng_below(&(struct rng){11}, 2));
}

Test(memtask, the_last_symbol_is_uniform) {
    /* label 0: the last symbol uniform over the other symbols; label 1: the first one */
    struct memtask m = {4, 5, 5};
    struct rng r = {3};
    int32_t s[5];
    int len, count[4][4] = {{0}};
    for (int i = 0; i < 40000; i++) {
        if (memtask_draw(&m, &r, s, &len) == 0) count[s[0]][s[4]]++;
    }
    for (int f = 0; f < 4; f++)
        for (int l = 0; l < 4; l++) {
            if (f == l) cr_assert_eq(count[f][l], 0);
            else cr_assert(count[f][l] > 1450 && count[f][l] < 1880, "first %d last %d: %d", f, l, count[f][l]);
        }
}

/* ---- dates ---- */

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
static int days_in(int y, int m) {
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}
/* Sakamoto's method, 0 = Sunday */
static int weekday_of(int y, int m, int d) {
    static const int t[12] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3) y -= 1;
    return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

static void parse_iso(const char *iso, int *y, int *m, int *d) {
    cr_assert_eq(strlen(iso), 10, "iso '%s'", iso);
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) cr_assert_eq(iso[i], '-', "iso '%s'", iso);
        else cr_assert(isdigit((unsigned char)iso[i]), "iso '%s'", iso);
    }
    cr_assert_eq(sscanf(iso, "%4d-%2d-%2d", y, m, d), 3);
    cr_assert(*y >= 1950 && *y <= 2049, "iso '%s': year out of range", iso);
    cr_assert(*m >= 1 && *m <= 12, "iso '%s': month", iso);
    cr_assert(*d >= 1 && *d <= days_in(*y, *m), "iso '%s': no such day", iso);
}

static const char *const months[12] = {"january", "february", "march",     "april",   "may",      "june",
                                       "july",    "august",   "september", "october", "november", "december"};
static const char *const weekdays[7] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};

/* A name's index by its full name or its first three letters, any case; -1 when it is none. */
static int name_index(const char *w, const char *const *names, int n) {
    char low[32];
    size_t l = strlen(w);
    if (l >= sizeof low) return -1;
    for (size_t i = 0; i <= l; i++) low[i] = (char)tolower((unsigned char)w[i]);
    for (int i = 0; i < n; i++)
        if (!strcmp(low, names[i]) || (l == 3 && !strncmp(low, names[i], 3))) return i;
    return -1;
}

/* lower, Title or UPPER: 0, 1, 2; -1 for anything else */
static int case_of(const char *w) {
    int up = 0, n = (int)strlen(w);
    for (int i = 0; i < n; i++) up += isupper((unsigned char)w[i]) != 0;
    if (up == 0) return 0;
    if (up == 1 && isupper((unsigned char)w[0])) return 1;
    if (up == n) return 2;
    return -1;
}

static const char *ord_suffix(int d) {
    if (d >= 11 && d <= 13) return "th";
    return d % 10 == 1 ? "st" : d % 10 == 2 ? "nd" : d % 10 == 3 ? "rd" : "th";
}

struct parsed {
    int y, m, d, wd; /* wd -1: none shown */
    int cases[3];    /* names seen in each case */
};

/* Parse a human date back, by its own rules: '/' is month/day/year, '.' is
 * day.month.year; with a month name, the numbers are the day then the year;
 * two-digit years 50-99 are 19xx, 00-49 20xx. */
static void parse_src(const char *src, struct parsed *out) {
    char buf[DATE_SRC_MAX + 2];
    cr_assert_lt(strlen(src), sizeof buf);
    strcpy(buf, src);
    int has_slash = strchr(src, '/') != NULL, has_dot = strchr(src, '.') != NULL;
    cr_assert(!(has_slash && has_dot), "'%s': both '/' and '.'", src);
    int nums[3], digits[3], n_nums = 0, month = -1, wd = -1, ord_day = -1;
    const char *ord = NULL;
    memset(out, 0, sizeof *out);
    for (char *save = NULL, *w = strtok_r(buf, " ,./-", &save); w; w = strtok_r(NULL, " ,./-", &save)) {
        if (isdigit((unsigned char)w[0])) {
            char *end;
            long v = strtol(w, &end, 10);
            cr_assert_lt(n_nums, 3, "'%s': too many numbers", src);
            digits[n_nums] = (int)(end - w);
            nums[n_nums++] = (int)v;
            if (*end) {
                cr_assert(!ord, "'%s': two ordinals", src);
                ord = end;
                ord_day = (int)v;
            }
            continue;
        }
        if (!strcmp(w, "the") || !strcmp(w, "of")) continue;
        int c = case_of(w);
        cr_assert(c >= 0, "'%s': '%s' is in no one case", src, w);
        int mi = name_index(w, months, 12), wi = name_index(w, weekdays, 7);
        cr_assert(mi >= 0 || wi >= 0, "'%s': unknown word '%s'", src, w);
        out->cases[c]++;
        if (mi >= 0) {
            cr_assert_eq(month, -1, "'%s': two months", src);
            month = mi + 1;
        } else {
            cr_assert_eq(wd, -1, "'%s': two weekdays", src);
            wd = wi;
        }
    }
    int y, m, d;
    if (month > 0) {
        cr_assert_eq(n_nums, 2, "'%s': %d numbers with a month name", src, n_nums);
        d = nums[0], m = month, y = nums[1];
        cr_assert(digits[1] == 2 || digits[1] == 4, "'%s': the year", src);
    } else {
        cr_assert_eq(n_nums, 3, "'%s': %d numbers", src, n_nums);
        cr_assert(has_slash || has_dot, "'%s': numbers without '/' or '.'", src);
        cr_assert(digits[2] == 2 || digits[2] == 4, "'%s': the year", src);
        if (has_slash) m = nums[0], d = nums[1];
        else d = nums[0], m = nums[1];
        y = nums[2];
    }
    if (y < 100) {
        cr_assert(month > 0 ? digits[1] == 2 : digits[2] == 2, "'%s'", src);
        y += y >= 50 ? 1900 : 2000;
    }
    if (ord) {
        cr_assert_eq(ord_day, d, "'%s': the ordinal is not the day", src);
        cr_assert_str_eq(ord, ord_suffix(d), "'%s': %d%s", src, d, ord);
    }
    out->y = y;
    out->m = m;
    out->d = d;
    out->wd = wd;
}

/* A rough shape of a text: runs of digits -> '9', runs of letters -> 'a'. */
static void shape_of(const char *s, char *out) {
    char prev = 0;
    for (; *s; s++) {
        char c = isdigit((unsigned char)*s) ? '9' : isalpha((unsigned char)*s) ? 'a' : *s;
        if ((c == '9' || c == 'a') && c == prev) continue;
        *out++ = prev = c;
    }
    *out = '\0';
}

Test(dates, draws_are_valid_and_denote_their_iso_date) {
    struct rng r = {1998};
    struct vocab vs, vi;
    date_vocab_src(&vs);
    date_vocab_iso(&vi);
    cr_assert_neq(vs.id[' '], -1);
    char shapes[64][DATE_SRC_MAX + 1];
    int n_shapes = 0, with_wd = 0, with_slash = 0, with_dot = 0, with_ord = 0, two_digit = 0;
    int cases[3] = {0};
    size_t min_len = 100, max_len = 0;
    for (int i = 0; i < 2000; i++) {
        char src[DATE_SRC_MAX + 1], iso[DATE_ISO_LEN + 1];
        memset(src, 0x7f, sizeof src);
        date_draw(&r, src, iso);
        size_t l = strnlen(src, sizeof src);
        cr_assert_lt(l, sizeof src, "draw %d: src not terminated", i);
        cr_assert(l >= 6 && l <= DATE_SRC_MAX, "'%s': %zu bytes", src, l);
        if (l < min_len) min_len = l;
        if (l > max_len) max_len = l;
        for (size_t k = 0; k < l; k++)
            cr_assert_neq(vs.id[(unsigned char)src[k]], -1, "'%s': byte '%c' not in date_vocab_src", src, src[k]);
        for (size_t k = 0; k < DATE_ISO_LEN; k++)
            cr_assert_neq(vi.id[(unsigned char)iso[k]], -1, "'%s': not in date_vocab_iso", iso);
        int y, m, d;
        parse_iso(iso, &y, &m, &d);
        struct parsed p;
        parse_src(src, &p);
        cr_assert(p.y == y && p.m == m && p.d == d, "'%s' reads as %04d-%02d-%02d, but iso is %s", src, p.y, p.m,
                  p.d, iso);
        if (p.wd >= 0) {
            cr_assert_eq(p.wd, weekday_of(y, m, d), "'%s': %s was a %s", src, iso, weekdays[weekday_of(y, m, d)]);
            with_wd++;
        }
        for (int c = 0; c < 3; c++) cases[c] += p.cases[c];
        with_slash += strchr(src, '/') != NULL;
        with_dot += strchr(src, '.') != NULL;
        with_ord += strstr(src, "st") || strstr(src, "nd") || strstr(src, "rd") || strstr(src, "th");
        char sh[DATE_SRC_MAX + 1];
        shape_of(src, sh);
        two_digit += sh[strlen(sh) - 1] == '9' && isdigit((unsigned char)src[l - 2]) && !isdigit((unsigned char)src[l - 3]);
        int k;
        for (k = 0; k < n_shapes; k++)
            if (!strcmp(shapes[k], sh)) break;
        if (k == n_shapes && n_shapes < 64) strcpy(shapes[n_shapes++], sh);
    }
    cr_assert_geq(n_shapes, 12, "only %d distinct shapes of dates", n_shapes);
    cr_assert(with_wd > 100 && with_slash > 100 && with_dot > 100 && with_ord > 100 && two_digit > 100,
              "weekday %d, slash %d, dot %d, ordinal %d, two-digit year %d", with_wd, with_slash, with_dot, with_ord,
              two_digit);
    cr_assert(cases[0] > 100 && cases[1] > 100 && cases[2] > 100, "lower %d, title %d, upper %d", cases[0], cases[1],
              cases[2]);
    cr_assert_leq(max_len, DATE_SRC_MAX);
    cr_log_info("dates: %d shapes, %zu..%zu bytes", n_shapes, min_len, max_len);
}

Test(dates, the_days_cover_the_range_uniformly) {
    struct rng r = {77};
    int first = 0, last = 0, feb29 = 0, per_decade[10] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        char src[DATE_SRC_MAX + 1], iso[DATE_ISO_LEN + 1];
        date_draw(&r, src, iso);
        int y, m, d;
        parse_iso(iso, &y, &m, &d);
        first += !strcmp(iso, "1950-01-01");
        last += !strcmp(iso, "2049-12-31");
        if (m == 2 && d == 29) {
            cr_assert(is_leap(y), "%s", iso);
            feb29++;
        }
        per_decade[(y - 1950) / 10]++;
    }
    cr_assert(first > 0 && last > 0, "first day %d times, last day %d times", first, last);
    cr_assert_gt(feb29, 50, "29 February %d times", feb29);
    for (int k = 0; k < 10; k++)
        cr_assert(per_decade[k] > n / 10 * 0.95 && per_decade[k] < n / 10 * 1.05, "decade %d: %d", k, per_decade[k]);
}

Test(dates, two_digit_years_and_the_vocabulary) {
    /* every byte in date_vocab_src can come from some draw; nothing is in it twice */
    struct vocab v;
    date_vocab_src(&v);
    int used[256] = {0};
    struct rng r = {5};
    for (int i = 0; i < 50000; i++) {
        char src[DATE_SRC_MAX + 1], iso[DATE_ISO_LEN + 1];
        date_draw(&r, src, iso);
        for (const char *s = src; *s; s++) used[(unsigned char)*s] = 1;
    }
    used[' '] = 1;
    for (int i = 0; i < v.size; i++) {
        if (i) cr_assert_lt(v.sym[i - 1], v.sym[i]);
        cr_assert_eq(v.id[v.sym[i]], i);
        cr_assert(used[v.sym[i]], "'%c' is in the vocabulary, but no draw of 50000 used it", v.sym[i]);
    }
}

/* ---- the loss curve ---- */

TestSuite(svg, .init = make_tmpdir, .fini = remove_tmpdir);

static char *svg_of(const struct curve *t, const struct curve *v, const char *title) {
    char path[600];
    snprintf(path, sizeof path, "%s/loss.svg", tmpdir);
    cr_assert_eq(svg_loss_curve(path, title, t, v, NULL), 0, "svg_loss_curve: %s", strerror(errno));
    char *s = read_all(path, NULL);
    cr_assert(strstr(s, "<svg"), "no <svg");
    cr_assert(strstr(s, "</svg>"), "no </svg>");
    cr_assert_eq(count_str(s, "<svg"), 1);
    cr_assert_null(strstr(s, "nan"), "a NaN in the picture");
    cr_assert_null(strstr(s, "inf"), "an Inf in the picture");
    /* nothing left besides the picture: the temporary file was renamed */
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 1, "%d files in the folder", files);
    return s;
}

/* The number of x,y pairs of the n-th polyline (0-based), or -1. */
static int polyline_points(const char *s, int n) {
    const char *p = s;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, "<polyline");
        if (!p) return -1;
        p++;
    }
    p = strstr(p, "points=\"");
    cr_assert(p);
    p += 8;
    const char *end = strchr(p, '"');
    int pairs = 0;
    for (const char *q = p; q < end; q++) pairs += *q == ',';
    return pairs;
}

Test(svg, no_points) {
    struct curve t = {0}, v = {0};
    char *s = svg_of(&t, &v, "empty");
    cr_assert(strstr(s, "step") && strstr(s, "loss"), "axis titles");
    free(s);
    s = svg_of(NULL, NULL, NULL);
    free(s);
}

Test(svg, one_point) {
    struct curve t = {0}, v = {0};
    cr_assert_eq(curve_add(&t, 1, 2.5), 0);
    char *s = svg_of(&t, &v, "one");
    cr_assert_eq(polyline_points(s, 0), 1);
    cr_assert(strstr(s, "<circle"), "a lone point needs a marker to be seen");
    free(s);
    cr_assert_eq(curve_add(&v, 1, 2.7), 0);
    s = svg_of(&t, &v, "one each");
    cr_assert_eq(polyline_points(s, 1), 1);
    free(s);
    curve_free(&t);
    curve_free(&v);
}

Test(svg, thousand_points_and_validation_markers) {
    struct curve t = {0}, v = {0};
    for (int i = 1; i <= 1000; i++) cr_assert_eq(curve_add(&t, i, 4.0 * exp(-i / 300.0) + 0.1 * sin(i)), 0);
    for (int i = 100; i <= 1000; i += 100) cr_assert_eq(curve_add(&v, i, 4.2 * exp(-i / 300.0) + 0.2), 0);
    char *s = svg_of(&t, &v, "lstm <h=64> & \"char\"");
    cr_assert_eq(polyline_points(s, 0), 1000);
    cr_assert_eq(polyline_points(s, 1), 10);
    cr_assert_geq(count_str(s, "<circle"), 10);
    cr_assert(strstr(s, "lstm &lt;h=64&gt; &amp; &quot;char&quot;"), "the title is not escaped");
    cr_assert_null(strstr(s, "<h=64>"));
    cr_assert(strstr(s, ">1000<"), "no tick label 1000 on the step axis");
    cr_assert(strstr(s, "training") && strstr(s, "validation"), "no legend");
    free(s);
    curve_free(&t);
    curve_free(&v);
}

/* The y tick labels ("<text ... text-anchor=\"end\">2.5</text>"): the largest. */
static double top_tick(const char *s) {
    double top = -INFINITY;
    for (const char *p = s; (p = strstr(p, "text-anchor=\"end\">")) != NULL; p++) {
        double y = strtod(p + 18, NULL);
        if (y > top) top = y;
    }
    return top;
}

Test(svg, the_unit_the_start_spike_and_accuracy) {
    struct curve t = {0}, v = {0}, a = {0};
    cr_assert_eq(curve_add(&t, 1, 40.0), 0); /* the first step's spike */
    for (int i = 2; i <= 400; i++) cr_assert_eq(curve_add(&t, i, 2.0 - i / 400.0), 0);
    for (int i = 100; i <= 400; i += 100) {
        cr_assert_eq(curve_add(&v, i, 2.1 - i / 400.0), 0);
        cr_assert_eq(curve_add(&a, i, i / 500.0), 0);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/loss.svg", tmpdir);
    cr_assert_eq(svg_loss_curve(path, "spike", &t, &v, &a), 0);
    char *s = read_all(path, NULL);
    cr_assert(strstr(s, "nats per symbol"), "the loss's unit is not stated");
    cr_assert_lt(top_tick(s), 3, "the spike sets the range: top tick %g", top_tick(s));
    cr_assert(strstr(s, "leaves out the first 5% of the steps"), "the cut is not said");
    cr_assert(strstr(s, "held-out accuracy"), "no accuracy axis");
    cr_assert_eq(polyline_points(s, 2), 4, "the accuracy curve");
    free(s);
    /* without a spike nothing is cut, and nothing said */
    cr_assert_eq(svg_loss_curve(path, "calm", &v, NULL, NULL), 0);
    s = read_all(path, NULL);
    cr_assert_null(strstr(s, "leaves out"));
    cr_assert_null(strstr(s, "accuracy"));
    free(s);
    curve_free(&t), curve_free(&v), curve_free(&a);
}

Test(svg, decimated) {
    struct curve t = {0};
    for (int i = 0; i < 100000; i++) cr_assert_eq(curve_add(&t, i, 1.0 / (1 + i)), 0);
    char *s = svg_of(&t, NULL, "long");
    int n = polyline_points(s, 0);
    cr_assert(n >= 1000 && n <= 2001, "%d points drawn", n);
    free(s);
    curve_free(&t);
}

Test(svg, nan_and_inf_skipped) {
    struct curve t = {0}, v = {0};
    int finite = 0;
    for (int i = 0; i < 100; i++) {
        double y = i % 10 == 3 ? NAN : i % 10 == 7 ? INFINITY : i == 50 ? -INFINITY : 2.0 - i * 0.01;
        double x = i == 20 ? NAN : i;
        finite += isfinite(x) && isfinite(y);
        cr_assert_eq(curve_add(&t, x, y), 0);
    }
    cr_assert_eq(curve_add(&v, 10, NAN), 0);
    cr_assert_eq(curve_add(&v, 20, 1.5), 0);
    char *s = svg_of(&t, &v, "non-finite");
    cr_assert_eq(polyline_points(s, 0), finite);
    cr_assert_eq(polyline_points(s, 1), 1);
    free(s);
    /* only non-finite points: drawn as no points at all */
    struct curve z = {0};
    cr_assert_eq(curve_add(&z, 1, NAN), 0);
    s = svg_of(&z, NULL, "all non-finite");
    free(s);
    curve_free(&t);
    curve_free(&v);
    curve_free(&z);
}

Test(svg, flat_and_negative) {
    struct curve t = {0};
    for (int i = 0; i < 10; i++) cr_assert_eq(curve_add(&t, 5, 0.0), 0); /* one x, one y */
    free(svg_of(&t, NULL, "flat"));
    curve_free(&t);
    for (int i = 0; i < 10; i++) cr_assert_eq(curve_add(&t, 1e6 + i, -3e-4 * i), 0);
    free(svg_of(&t, NULL, "negative"));
    curve_free(&t);
}

Test(svg, unwritable_path) {
    struct curve t = {0};
    cr_assert_eq(curve_add(&t, 1, 1), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/no-such-folder/loss.svg", tmpdir);
    errno = 0;
    cr_assert_eq(svg_loss_curve(path, "x", &t, NULL, NULL), -1);
    cr_assert_eq(errno, ENOENT);
    curve_free(&t);
}

/* ---- progress ---- */

static char *file_text(FILE *f) {
    fflush(f);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

Test(progress, plain_lines_in_a_log) {
    FILE *f = tmpfile();
    cr_assert(f);
    struct progress p;
    progress_begin(&p, f, 10, 0);
    cr_assert_eq(p.tty, 0);
    cr_assert_eq(p.every, 5.0);
    for (int s = 1; s <= 10; s++) progress_update(&p, 1, s, 2.0 - s * 0.1, 48200);
    progress_note(&p, "saved %s", "model.safetensors");
    progress_end(&p);
    char *t = file_text(f);
    fclose(f);
    f = tmpfile();
    progress_begin(&p, f, 10, 0);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    progress_note(&p, "%s\n", big);
    progress_note(&p, "%s", "");
    char *t2 = file_text(f);
    cr_assert_eq(strlen(t2), sizeof big + 1, "a long note: %zu bytes", strlen(t2));
    cr_assert_eq(count_char(t2, '\n'), 2, "each note on one line, ending in one newline");
    free(t2);
    /* the first and the last step only: the 5 s did not pass */
    cr_assert_eq(count_char(t, '\n'), 3, "output:\n%s", t);
    cr_assert(strstr(t, "epoch 1  step 1/10  loss 1.900  48.2k tok/s  ETA "), "output:\n%s", t);
    /* the mean of the steps since the last line (2..10: 1.8 down to 1.0), not the last step's 1.0 */
    cr_assert(strstr(t, "epoch 1  step 10/10  loss 1.400  48.2k tok/s  ETA 0s\n"), "output:\n%s", t);
    cr_assert(strstr(t, "saved model.safetensors\n"), "output:\n%s", t);
    cr_assert_null(strchr(t, '\r'));
    cr_assert_null(strchr(t, '\033'));
    free(t);
    fclose(f);
}

Test(progress, every_line_and_a_resumed_run) {
    FILE *f = tmpfile();
    struct progress p;
    progress_begin(&p, f, 20, 10);
    p.every = 0;
    for (int s = 11; s <= 20; s++) progress_update(&p, 3, s, 0.5, 1.5e6);
    progress_end(&p);
    char *t = file_text(f);
    cr_assert_eq(count_char(t, '\n'), 10, "output:\n%s", t);
    cr_assert(strstr(t, "epoch 3  step 11/20  loss 0.500  1.5M tok/s  ETA"), "output:\n%s", t);
    cr_assert_eq(count_str(t, "step"), 10);
    cr_assert_eq(count_str(t, "loss"), 10);
    free(t);
    fclose(f);
}

Test(progress, eta_from_the_rate) {
    FILE *f = tmpfile();
    struct progress p;
    progress_begin(&p, f, 1000, 100);
    p.t0 -= 30; /* 30 s ago */
    /* 100 steps in 30 s, 800 left: 240 s */
    progress_update(&p, 0, 200, 1.25, 900);
    char *t = file_text(f);
    /* epoch 0: a task without epochs (classify, dates) says only the step */
    cr_assert(strstr(t, "step 200/1000  loss 1.250  900 tok/s  ETA 4m00s\n"), "output:\n%s", t);
    cr_assert_null(strstr(t, "epoch"), "output:\n%s", t);
    free(t);
    fclose(f);
    cr_assert(now_seconds() > 0);
    double a = now_seconds(), b = now_seconds();
    cr_assert_geq(b, a);
}

Test(progress, a_bar_on_a_terminal) {
    int master, slave;
    struct winsize ws = {.ws_row = 24, .ws_col = 100};
    if (openpty(&master, &slave, NULL, NULL, &ws) != 0) cr_skip_test("no pseudo-terminal: %s", strerror(errno));
    FILE *f = fdopen(slave, "w");
    cr_assert(f);
    struct progress p;
    progress_begin(&p, f, 1500, 0);
    cr_assert_eq(p.tty, 1);
    for (int s = 1; s <= 1500; s++) progress_update(&p, 2, s, 1.734, 48200);
    progress_note(&p, "saved");
    progress_end(&p);
    fclose(f);
    char buf[65536];
    size_t n = 0;
    struct pollfd pf = {master, POLLIN, 0};
    while (n < sizeof buf - 1 && poll(&pf, 1, 200) > 0) {
        ssize_t got = read(master, buf + n, sizeof buf - 1 - n);
        if (got <= 0) break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    close(master);
    cr_assert(strstr(buf, "\repoch 2  step 1500/1500 [####################]  100%  loss 1.734  48.2k tok/s  ETA 0s\033[K"),
              "output: %s", buf);
    cr_assert(strstr(buf, "\r\033[Ksaved"), "the note does not clear the bar: %s", buf);
    /* at most every 0.1 s: far fewer redraws than steps */
    cr_assert_lt(count_char(buf, '\r'), 200, "%zu redraws", count_char(buf, '\r'));
    /* no line is wider than the terminal */
    size_t col = 0, widest = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r' || buf[i] == '\n') col = 0;
        else if (buf[i] == '\033') i += 2;
        else if (++col > widest) widest = col;
    }
    cr_assert_lt(widest, 100);
}

/* ---- a file of examples (--data) ---- */

TestSuite(dataset, .init = make_tmpdir, .fini = remove_tmpdir);

Test(dataset, labeled_split_labels_and_vocabulary) {
    const char *p = tmp_text("d.tsv", "odd\tone\r\neven\ttwo\n\nodd\tthree\neven\tfour\nodd\tfive\n");
    struct dataset d;
    char err[512];
    cr_assert_eq(dataset_load(p, 1, 7, 0.4, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 5, "the blank line is not an example");
    cr_assert_eq(d.n_train, 3, "0.4 of 5 held out");
    cr_assert_eq(d.labels.n, 2);
    cr_assert_str_eq(d.labels.name[0], "even");
    cr_assert_str_eq(d.labels.name[1], "odd");
    int seen[6] = {0};
    for (size_t i = 0; i < d.n; i++) {
        const struct example *e = &d.ex[i];
        cr_assert_eq(e->label, !strcmp(e->a, "odd"));
        cr_assert_eq((int)strlen(e->b), e->lb, "'%s' (a CR left at the end?)", e->b);
        cr_assert(e->line >= 1 && e->line <= 6 && e->line != 3);
        seen[e->line - 1]++;
    }
    cr_assert_eq(seen[0] + seen[1] + seen[3] + seen[4] + seen[5], 5, "each line once");
    cr_assert_eq(d.max_b, 5); /* three */
    /* the vocabulary: the sequences' bytes only, not the labels' */
    cr_assert_geq(d.v.id['w'], 0);
    cr_assert_eq(d.v.id['d'], -1, "a label's byte in the vocabulary");
    uint64_t h = d.hash;
    dataset_free(&d);
    /* the same seed splits alike; another does not (in general) */
    cr_assert_eq(dataset_load(p, 1, 7, 0.4, &d, err, sizeof err), 0);
    cr_assert_eq(d.hash, h);
    dataset_free(&d);
}

Test(dataset, pairs) {
    const char *p = tmp_text("p.tsv", "one\t1\ntwenty\t20\nthree\t3\n");
    struct dataset d;
    char err[512];
    cr_assert_eq(dataset_load(p, 0, 1, 0.1, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n_train, 2, "at least one held out");
    cr_assert_eq(d.labels.n, 0);
    cr_assert_eq(d.max_a, 6);
    cr_assert_eq(d.max_b, 2);
    cr_assert_eq(d.vt.size, 4, "the targets' bytes 0 1 2 3");
    cr_assert_eq(d.v.id['1'], -1, "a target's byte among the sources'");
    dataset_free(&d);
}

Test(dataset, bad_lines_named) {
    static const struct {
        const char *text, *want;
        int labeled;
    } bad[] = {
        {"a\tx\nb x\n", ":2: no tab (expected LABEL<TAB>SEQUENCE)", 1},
        {"a\tx\nb x\n", ":2: no tab (expected SOURCE<TAB>TARGET)", 0},
        {"a\tx\tz\n", ":1: more than one tab", 1},
        {"a\tx\n\tx\n", ":2: an empty label", 1},
        {"a\tx\nb\t\n", ":2: an empty sequence", 1},
        {"a\tx\n\tx\n", ":2: an empty source", 0},
        {"a\tx\n\xff\tx\n", ":2: not valid UTF-8", 1},
        {"a\tx\n", ": 1 example; at least 2", 1},
        {"a\tx\na\ty\n", ": every example has the label 'a'", 1},
        {"", ": 0 examples", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = tmp_text("bad.tsv", bad[i].text);
        struct dataset d;
        char err[512];
        cr_assert_eq(dataset_load(p, bad[i].labeled, 1, 0.1, &d, err, sizeof err), -1, "case %zu", i);
        cr_assert(strstr(err, p) && strstr(err, bad[i].want), "case %zu: '%s' lacks '%s'", i, err, bad[i].want);
        cr_assert_null(d.ex);
    }
    /* a NUL byte, a field too long, a label too long */
    const char *p = tmp_file("nul.tsv", "a\tx\nb\tx\0y\n", 11);
    struct dataset d;
    char err[512], line[2100];
    cr_assert_eq(dataset_load(p, 1, 1, 0.1, &d, err, sizeof err), -1);
    cr_assert(strstr(err, ":2: a NUL byte"), "%s", err);
    memset(line, 'x', sizeof line);
    memcpy(line, "a\tx\nb\t", 6);
    snprintf(line + 6 + DATA_FIELD_MAX + 1, 8, "\n");
    p = tmp_text("long.tsv", line);
    cr_assert_eq(dataset_load(p, 1, 1, 0.1, &d, err, sizeof err), -1);
    cr_assert(strstr(err, ":2: a sequence of 1001 bytes (at most 1000)"), "%s", err);
    memset(line, 'l', DATA_LABEL_MAX + 1);
    snprintf(line + DATA_LABEL_MAX + 1, 16, "\tx\nb\ty\n");
    p = tmp_text("label.tsv", line);
    cr_assert_eq(dataset_load(p, 1, 1, 0.1, &d, err, sizeof err), -1);
    cr_assert(strstr(err, ":1: a label of 64 bytes (at most 63)"), "%s", err);
    /* not a regular file */
    cr_assert_eq(dataset_load("/dev/null", 1, 1, 0.1, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "/dev/null: not a regular file"), "%s", err);
}

Test(dataset, too_many_labels) {
    size_t cap = (DATA_LABELS_MAX + 1) * 16;
    char *s = malloc(cap), *q = s;
    for (int i = 0; i <= DATA_LABELS_MAX; i++) q += sprintf(q, "l%d\tx\n", i);
    const char *p = tmp_text("many.tsv", s);
    struct dataset d;
    char err[512];
    cr_assert_eq(dataset_load(p, 1, 1, 0.1, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "more than 256 distinct labels"), "%s", err);
    free(s);
}

Test(dataset, labels_hex_round_trip_and_malformed) {
    struct labels *l = calloc(1, sizeof *l), *m = calloc(1, sizeof *m);
    l->n = 3;
    strcpy(l->name[0], "even");
    strcpy(l->name[1], "odd");
    strcpy(l->name[2], "\xc3\xa9t\xc3\xa9");
    char *hex = labels_to_hex(l);
    cr_assert_str_eq(hex, "6576656e0a6f64640a" "c3a974c3a90a");
    cr_assert_eq(labels_from_hex(hex, m), 0);
    cr_assert_eq(memcmp(l, m, sizeof *l), 0);
    free(hex);
    static const char *const bad[] = {
        "",                           /* empty */
        "6576656e0a",                 /* one label */
        "6576656e0a6f6464",           /* no newline at the end */
        "6576656e0a6576656e0a",       /* twice */
        "6f64640a6576656e0a",         /* out of order */
        "0a6576656e0a",               /* an empty name */
        "65760065",                   /* a NUL */
        "6576090a6f64640a",           /* a tab */
        "6576656e0a6f64640",          /* odd length */
        "6576656e0a6f64zz0a",         /* not hex */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(labels_from_hex(bad[i], m), -1, "'%s' accepted", bad[i]);
    /* a name over DATA_LABEL_MAX */
    char longhex[2 * (DATA_LABEL_MAX + 2) + 16] = "";
    for (int i = 0; i <= DATA_LABEL_MAX; i++) strcat(longhex, "61");
    strcat(longhex, "0a620a");
    cr_assert_eq(labels_from_hex(longhex, m), -1);
    free(l), free(m);
}
