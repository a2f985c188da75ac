/*
 * test-modelfile.c: model files (core/modelfile.c on core/safetensors.c and
 * core/schema.c), and what training files share with them.
 *
 *   roundtrip   save -> load for every cell, direction and 1-3 layers: the
 *               same settings, bit-exact weights, byte-identical re-saves
 *   shape       load_weights into a model of another shape or cell
 *   bad         one test per bad-file case: each corrupt file is made from a
 *               good one here, and must give its own status, a message
 *               naming the file, no model, and untouched weights
 *   atomic      a save that fails (or is killed) part way leaves the previous
 *               file byte for byte; a missing directory is RECUR_ERR_IO; the
 *               next save removes a killed save's temporary file, nothing else
 *   trainfile   optimizer state with NaN, Inf or a negative Adam v is refused
 *   torch       files written by docs/pytorch.md's export_module (through
 *               tests/fixtures/gen_safetensors.py) load and reproduce
 *               PyTorch's outputs and gradients on a packed batch; recur still
 *               writes byte for byte the recur-*.safetensors files whose
 *               outputs gen_safetensors.py --check reproduced in PyTorch
 *   corpus      the fuzz target's seed corpus loads without a crash, each
 *               seed with its status; the crafted training checkpoints too
 *
 * Environment (meson test sets it): RECUR_PLUGIN_PATH, RECUR_MODELFILE_FIXTURES
 * (tests/fixtures/safetensors), RECUR_SOURCE_ROOT. RECUR_MODELFILE_REGEN=1
 * rewrites the recur-*.safetensors / .txt fixtures instead of comparing.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fixtures/fixture.h"
#include "recur/recur-train.h"
/* the writer's failure injection, in this test's private copy of the library */
#include "safetensors.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/recur-modelfile-XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            remove_tree(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void drop_tmpdir(void) {
    if (tmpdir[0]) remove_tree(tmpdir);
}

static const char *tmp_path(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 1024, "%s/%s", tmpdir, name);
    return p;
}

static uint8_t *read_bytes(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "cannot open %s: %s", path, strerror(errno));
    cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    cr_assert_geq(n, 0);
    rewind(fp);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n, "short read of %s", path);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void write_bytes(const char *path, const void *buf, size_t len) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp, "cannot create %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(buf, 1, len, fp), len);
    cr_assert_eq(fclose(fp), 0);
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *x = read_bytes(a, &na), *y = read_bytes(b, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Names in dir other than `keep`. */
static int count_others(const char *dir, const char *keep, char *first, size_t len) {
    DIR *d = opendir(dir);
    cr_assert(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep)) {
            if (!n && first) snprintf(first, len, "%s", e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static recur_ctx *new_ctx(void) {
    recur_ctx *ctx;
    recur_status st = recur_ctx_create(&ctx, NULL);
    cr_assert_eq(st, RECUR_OK, "recur_ctx_create: %s", recur_last_error());
    return ctx;
}

static const char *dir_name(recur_direction d) {
    static const char *const n[] = {"forward", "reverse", "bidi_concat", "bidi_sum"};
    return n[d];
}

/* A model with weights U(-0.5, 0.5) drawn from `seed`. */
/* A model of these settings with weights U(-0.5, 0.5) from wseed. */
static recur_model *make_model_desc(recur_ctx *ctx, const recur_model_desc *d, uint64_t wseed) {
    recur_model *m;
    recur_status st = recur_model_create(ctx, d, &m);
    cr_assert_eq(st, RECUR_OK, "recur_model_create %s: %s", d->cell, recur_ctx_error(ctx));
    test_rng r = {wseed};
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info info;
        cr_assert_eq(recur_model_param_info(m, i, &info), RECUR_OK);
        float *v = test_floats(info.count);
        for (size_t k = 0; k < info.count; k++) v[k] = (float)test_uniform(&r, -0.5, 0.5);
        cr_assert_eq(recur_model_param_set(m, info.name, v, info.count), RECUR_OK, "%s", recur_ctx_error(ctx));
        free(v);
    }
    return m;
}

static recur_model *make_model(recur_ctx *ctx, const char *cell, const char *variant, int I, int H, int L,
                               recur_direction dir, float dropout, uint64_t seed, uint64_t wseed) {
    recur_model_desc d = {.cell = cell, .variant = variant, .input_size = I, .hidden_size = H, .num_layers = L,
                          .direction = dir, .dropout = dropout, .seed = seed};
    return make_model_desc(ctx, &d, wseed);
}

/* Every parameter, concatenated in PyTorch order. */
static float *weights_of(const recur_model *m, size_t *n) {
    size_t total = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info info;
        cr_assert_eq(recur_model_param_info(m, i, &info), RECUR_OK);
        total += info.count;
    }
    float *w = test_floats(total);
    size_t at = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info info;
        cr_assert_eq(recur_model_param_info(m, i, &info), RECUR_OK);
        cr_assert_eq(recur_model_param_get(m, info.name, w + at, info.count), RECUR_OK);
        at += info.count;
    }
    *n = total;
    return w;
}

static void expect_weights(const recur_model *m, const float *want, size_t n, const char *what) {
    size_t got_n;
    float *got = weights_of(m, &got_n);
    cr_assert_eq(got_n, n, "%s: %zu weights, expected %zu", what, got_n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s: weight %zu is %.9g, expected %.9g (bits)", what,
                  i, (double)got[i], (double)want[i]);
    free(got);
}

static void expect_same_desc(const recur_model *a, const recur_model *b, const char *what) {
    recur_model_desc x, y;
    cr_assert_eq(recur_model_desc_get(a, &x), RECUR_OK);
    cr_assert_eq(recur_model_desc_get(b, &y), RECUR_OK);
    cr_assert_str_eq(x.cell, y.cell, "%s: cell", what);
    cr_assert_str_eq(x.variant ? x.variant : "", y.variant ? y.variant : "", "%s: variant", what);
    cr_assert_eq(x.input_size, y.input_size, "%s: input_size", what);
    cr_assert_eq(x.hidden_size, y.hidden_size, "%s: hidden_size", what);
    cr_assert_eq(x.num_layers, y.num_layers, "%s: num_layers", what);
    cr_assert_eq(x.direction, y.direction, "%s: direction", what);
    cr_assert(memcmp(&x.dropout, &y.dropout, sizeof x.dropout) == 0, "%s: dropout %.9g vs %.9g", what,
              (double)x.dropout, (double)y.dropout);
    cr_assert_eq(x.seed, y.seed, "%s: seed", what);
    cr_assert(memcmp(&x.zoneout, &y.zoneout, sizeof x.zoneout) == 0, "%s: zoneout %.9g vs %.9g", what,
              (double)x.zoneout, (double)y.zoneout);
    cr_assert_eq(x.proj_size, y.proj_size, "%s: proj_size", what);
}

/* ---- editing a file's header ---- */

/* The header JSON of a file (trailing padding removed), malloc'd. */
static char *header_of(const char *path) {
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    cr_assert_geq(n, 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    cr_assert_leq(hl, n - 8);
    char *h = malloc(hl + 1);
    memcpy(h, b + 8, hl);
    h[hl] = 0;
    for (size_t k = hl; k > 0 && h[k - 1] == ' '; k--) h[k - 1] = 0;
    free(b);
    return h;
}

/* dst = src with its header replaced by json (padded again to 8). */
static void with_header(const char *src, const char *dst, const char *json) {
    size_t n;
    uint8_t *b = read_bytes(src, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8, data = n - 8 - hl;
    uint8_t *o = malloc(8 + padded + data);
    for (int i = 0; i < 8; i++) o[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(o + 8, json, jl);
    memset(o + 8 + jl, ' ', padded - jl);
    memcpy(o + 8 + padded, b + 8 + hl, data);
    write_bytes(dst, o, 8 + padded + data);
    free(o);
    free(b);
}

/* The file src without its __metadata__ (a plain state_dict, as torch
 * writes one) into dst. */
static void without_metadata(const char *src, const char *dst) {
    char *h = header_of(src);
    char *end = strstr(h, "},\"weight_ih_l0\"");
    cr_assert(end, "%s: no weight_ih_l0 after the metadata", src);
    char *plain = malloc(strlen(h) + 1);
    sprintf(plain, "{%s", end + 2);
    with_header(src, dst, plain);
    free(plain);
    free(h);
}

/* s with the first `from` replaced by `to`, malloc'd; `from` must occur. */
static char *replace(const char *s, const char *from, const char *to) {
    const char *at = strstr(s, from);
    cr_assert(at, "'%s' is not in the header '%s'", from, s);
    size_t a = (size_t)(at - s), fl = strlen(from), tl = strlen(to), n = strlen(s);
    char *o = malloc(n - fl + tl + 1);
    memcpy(o, s, a);
    memcpy(o + a, to, tl);
    memcpy(o + a + tl, at + fl, n - a - fl + 1);
    return o;
}

/* The entry "name":{...} of a header, malloc'd. */
static char *entry_of(const char *json, const char *name) {
    char key[80];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *at = strstr(json, key);
    cr_assert(at, "no entry %s", name);
    const char *end = strchr(at, '}');
    size_t n = (size_t)(end - at) + 1;
    char *e = malloc(n + 1);
    memcpy(e, at, n);
    e[n] = 0;
    return e;
}

static void offsets_of(const char *json, const char *name, unsigned long long *b, unsigned long long *e) {
    char *en = entry_of(json, name);
    const char *o = strstr(en, "\"data_offsets\":[");
    cr_assert(o && sscanf(o, "\"data_offsets\":[%llu,%llu]", b, e) == 2, "offsets of %s in %s", name, en);
    free(en);
}

/* dst = good with `from` replaced by `to` in the header. */
static void patch(const char *good, const char *dst, const char *from, const char *to) {
    char *h = header_of(good);
    char *n = replace(h, from, to);
    with_header(good, dst, n);
    free(n);
    free(h);
}

/* dst = good with the entry of tensor `name` replaced by `to` ("" drops it,
 * with its comma). */
static void patch_entry(const char *good, const char *dst, const char *name, const char *to) {
    char *h = header_of(good), *e = entry_of(h, name), *n;
    if (*to) {
        n = replace(h, e, to);
    } else {
        char *with_comma = malloc(strlen(e) + 2);
        sprintf(with_comma, ",%s", e);
        n = replace(h, with_comma, "");
        free(with_comma);
    }
    with_header(good, dst, n);
    free(n);
    free(e);
    free(h);
}

/* ---- the bad-file harness ---- */

/* The good file: a 2-layer bidirectional lstm, I = 3, H = 4 (16 tensors). */
struct bad {
    recur_ctx *ctx;
    recur_model *good, *other; /* other: same shape, other weights, the load_weights target */
    float *other_w;
    size_t n_w;
    const char *path;     /* the good file */
    const char *bad_path; /* where each test writes its corrupt copy */
};

static struct bad B;

static void bad_setup(void) {
    make_tmpdir();
    B.ctx = new_ctx();
    B.good = make_model(B.ctx, "lstm", NULL, 3, 4, 2, RECUR_DIR_BIDI_CONCAT, 0.0f, 7, 1);
    B.other = make_model(B.ctx, "lstm", NULL, 3, 4, 2, RECUR_DIR_BIDI_CONCAT, 0.0f, 7, 2);
    B.other_w = weights_of(B.other, &B.n_w);
    B.path = strdup(tmp_path("good.safetensors"));
    B.bad_path = strdup(tmp_path("bad.safetensors"));
    cr_assert_eq(recur_model_save(B.good, B.path), RECUR_OK, "%s", recur_ctx_error(B.ctx));
}

static void bad_teardown(void) {
    free(B.other_w);
    free((char *)B.path);
    free((char *)B.bad_path);
    recur_ctx_free(B.ctx);
    drop_tmpdir();
}

static void expect_msg(const recur_ctx *ctx, const char *path, const char *needle, const char *what) {
    const char *msg = recur_ctx_error(ctx);
    cr_assert(strstr(msg, path), "%s: the message '%s' does not name the file %s", what, msg, path);
    if (needle) cr_assert(strstr(msg, needle), "%s: '%s' is not in the message '%s'", what, needle, msg);
    cr_assert_str_eq(recur_last_error(), msg, "%s: the thread's message differs", what);
}

/* recur_model_load gives want_load (no model), load_weights gives want_w
 * (weights untouched unless RECUR_OK), both with a message naming path. */
static void expect_bad_(const char *path, uint32_t flags, recur_status want_load, recur_status want_w,
                        const char *needle, int line) {
    char what[64];
    snprintf(what, sizeof what, "line %d: load", line);
    recur_model *m = (recur_model *)&B; /* not NULL: must be reset */
    recur_status st = recur_model_load(B.ctx, path, flags, &m);
    cr_assert_eq(st, want_load, "%s returned %s, expected %s: %s", what, recur_status_str(st),
                 recur_status_str(want_load), recur_ctx_error(B.ctx));
    if (st != RECUR_OK) {
        cr_assert_null(m, "%s: *out is not NULL on failure", what);
        expect_msg(B.ctx, path, needle, what);
    }
    recur_model_free(m);
    snprintf(what, sizeof what, "line %d: load_weights", line);
    st = recur_model_load_weights(B.other, path, flags);
    cr_assert_eq(st, want_w, "%s returned %s, expected %s: %s", what, recur_status_str(st), recur_status_str(want_w),
                 recur_ctx_error(B.ctx));
    if (st != RECUR_OK) {
        expect_msg(B.ctx, path, needle, what);
        expect_weights(B.other, B.other_w, B.n_w, what);
    } else {
        /* put the target's weights back for the next case */
        size_t n;
        float *g = weights_of(B.good, &n);
        expect_weights(B.other, g, n, what);
        free(g);
        size_t at = 0;
        for (size_t i = 0; i < recur_model_param_count(B.other); i++) {
            recur_param_info info;
            recur_model_param_info(B.other, i, &info);
            recur_model_param_set(B.other, info.name, B.other_w + at, info.count);
            at += info.count;
        }
    }
}
#define EXPECT_BAD(path, flags, want_load, want_w, needle) expect_bad_((path), (flags), (want_load), (want_w), (needle), __LINE__)

/* ------------------------------------------------------------------------ */
/* round trips                                                               */

Test(roundtrip, every_cell_direction_and_depth) {
    make_tmpdir();
    recur_ctx *ctx = new_ctx();
    static const struct {
        const char *cell, *variant;
    } cells[] = {{"rnn", "tanh"}, {"rnn", "relu"}, {"gru", NULL}, {"gru-lbr", NULL}, {"lstm", NULL}};
    int n = 0;
    for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++)
        for (int d = RECUR_DIR_FORWARD; d <= RECUR_DIR_BIDI_SUM; d++)
            for (int L = 1; L <= 3; L++, n++) {
                char what[128];
                snprintf(what, sizeof what, "%s%s%s %s L=%d", cells[c].cell, cells[c].variant ? "-" : "",
                         cells[c].variant ? cells[c].variant : "", dir_name((recur_direction)d), L);
                float dropout = L > 1 ? 0.125f * (float)(n % 7) + 0.1f : 0.0f;
                uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(n + 1);
                recur_model *a = make_model(ctx, cells[c].cell, cells[c].variant, 3 + n % 3, 2 + n % 4, L,
                                            (recur_direction)d, dropout, seed, (uint64_t)n);
                const char *p = tmp_path("a.safetensors"), *q = tmp_path("b.safetensors");
                cr_assert_eq(recur_model_save(a, p), RECUR_OK, "%s: save: %s", what, recur_ctx_error(ctx));
                recur_model *b;
                cr_assert_eq(recur_model_load(ctx, p, RECUR_LOAD_CHECK_FINITE, &b), RECUR_OK, "%s: load: %s", what,
                             recur_ctx_error(ctx));
                expect_same_desc(a, b, what);
                size_t nw;
                float *w = weights_of(a, &nw);
                expect_weights(b, w, nw, what);
                /* saving what was loaded writes the same bytes */
                cr_assert_eq(recur_model_save(b, q), RECUR_OK, "%s: %s", what, recur_ctx_error(ctx));
                cr_assert(same_file(p, q), "%s: the re-saved file differs", what);
                /* load_weights into a fresh model of the same settings */
                recur_model_desc d2;
                recur_model_desc_get(a, &d2);
                recur_model *c2;
                cr_assert_eq(recur_model_create(ctx, &d2, &c2), RECUR_OK);
                cr_assert_eq(recur_model_load_weights(c2, p, 0), RECUR_OK, "%s: load_weights: %s", what,
                             recur_ctx_error(ctx));
                expect_weights(c2, w, nw, what);
                free(w);
                recur_model_free(a);
                recur_model_free(b);
                recur_model_free(c2);
            }
    cr_assert_eq(n, 60);
    /* nothing but the two files was left in the directory */
    cr_assert_eq(count_others(tmpdir, "a.safetensors", NULL, 0), 1);
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* Zoneout is saved and loaded; a model without it writes no key (files as before). */
Test(roundtrip, zoneout) {
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK);
    make_tmpdir();
    const float ps[] = {0.3f, 0.0f};
    for (int i = 0; i < 2; i++) {
        recur_model_desc d = {.cell = "gru", .input_size = 3, .hidden_size = 4, .num_layers = 2,
                              .direction = RECUR_DIR_FORWARD, .seed = 9, .zoneout = ps[i]};
        recur_model *a, *b;
        cr_assert_eq(recur_model_create(ctx, &d, &a), RECUR_OK, "%s", recur_ctx_error(ctx));
        const char *p = tmp_path("z.safetensors");
        cr_assert_eq(recur_model_save(a, p), RECUR_OK, "%s", recur_ctx_error(ctx));
        cr_assert_eq(recur_model_load(ctx, p, 0, &b), RECUR_OK, "%s", recur_ctx_error(ctx));
        expect_same_desc(a, b, ps[i] > 0 ? "zoneout 0.3" : "zoneout 0");
        size_t n;
        uint8_t *bytes = read_bytes(p, &n);
        char *z = memmem(bytes, n, "\"zoneout\":\"0.3\"", 15);
        cr_assert(ps[i] > 0 ? z != NULL : memmem(bytes, n, "zoneout", 7) == NULL, "zoneout %g in the header: %s",
                  (double)ps[i], z ? "yes" : "no");
        free(bytes);
        recur_model_free(a);
        recur_model_free(b);
    }
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* An LSTM with projection (proj_size) keeps it through a file: "proj_size"
 * in the metadata, weight_hr_l{k} [P, H] and weight_hh [4H, P] among the
 * tensors; a plain state_dict of it loads into a model of the same shape;
 * metadata without proj_size is named as disagreeing with such tensors. */
Test(roundtrip, projection) {
    make_tmpdir();
    recur_ctx *ctx = new_ctx();
    recur_model_desc d = {.cell = "lstm", .input_size = 3, .hidden_size = 5, .num_layers = 2,
                          .direction = RECUR_DIR_BIDI_CONCAT, .proj_size = 2};
    recur_model *a = make_model_desc(ctx, &d, 21), *b = NULL, *c = NULL;
    recur_param_info hr, hh, ih1;
    cr_assert_eq(recur_model_param_info(a, 4, &hr), RECUR_OK);
    cr_assert_eq(recur_model_param_info(a, 1, &hh), RECUR_OK);
    cr_assert_eq(recur_model_param_info(a, 10, &ih1), RECUR_OK);
    cr_assert_str_eq(hr.name, "weight_hr_l0");
    cr_assert(hr.rows == 2 && hr.cols == 5 && hh.rows == 20 && hh.cols == 2, "weight_hr [%d, %d], weight_hh [%d, %d]",
              hr.rows, hr.cols, hh.rows, hh.cols);
    cr_assert(!strcmp(ih1.name, "weight_ih_l1") && ih1.cols == 4, "%s [%d, %d]: layer 1 reads 2 * proj_size", ih1.name,
              ih1.rows, ih1.cols);
    cr_assert_eq(recur_model_output_size(a), 4);
    const char *p = tmp_path("p.safetensors"), *q = tmp_path("plain.safetensors"), *r = tmp_path("noproj.safetensors");
    cr_assert_eq(recur_model_save(a, p), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_load(ctx, p, RECUR_LOAD_CHECK_FINITE, &b), RECUR_OK, "%s", recur_ctx_error(ctx));
    expect_same_desc(a, b, "proj_size 2");
    size_t n;
    float *w = weights_of(a, &n);
    expect_weights(b, w, n, "projection");
    char *h = header_of(p);
    cr_assert(strstr(h, "\"proj_size\":\"2\""), "%s", h);
    /* without the metadata: a state_dict, as torch.save of nn.LSTM(proj_size=2) */
    without_metadata(p, q);
    recur_model *e = make_model_desc(ctx, &d, 22);
    cr_assert_eq(recur_model_load_weights(e, q, RECUR_LOAD_CHECK_FINITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    expect_weights(e, w, n, "plain state_dict with projection");
    /* the metadata says no projection; the tensors have one */
    char *noproj = malloc(strlen(h) + 1);
    char *at = strstr(h, ",\"proj_size\":\"2\"");
    cr_assert(at);
    size_t k = (size_t)(at - h);
    memcpy(noproj, h, k);
    strcpy(noproj + k, at + strlen(",\"proj_size\":\"2\""));
    with_header(p, r, noproj);
    cr_assert_eq(recur_model_load(ctx, r, 0, &c), RECUR_ERR_FILE_METADATA);
    cr_assert(strstr(recur_ctx_error(ctx), "proj_size is 0, the tensors' 2"), "%s", recur_ctx_error(ctx));
    cr_assert_null(c);
    free(noproj);
    free(h);
    free(w);
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* The header, byte for byte, of a small model: the format as documented. */
Test(roundtrip, header_layout) {
    make_tmpdir();
    recur_ctx *ctx = new_ctx();
    recur_model *m = make_model(ctx, "rnn", "relu", 2, 3, 1, RECUR_DIR_REVERSE, 0.25f, 42, 3);
    const char *p = tmp_path("m.safetensors");
    cr_assert_eq(recur_model_save(m, p), RECUR_OK, "%s", recur_ctx_error(ctx));
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    cr_assert_eq(hl % 8, 0, "header length %llu is not a multiple of 8", (unsigned long long)hl);
    char *h = header_of(p);
    const char *want =
        "{\"__metadata__\":{\"format\":\"recur\",\"recur_version\":\"" RECUR_VERSION_STRING "\",\"cell\":\"rnn\","
        "\"variant\":\"relu\",\"input_size\":\"2\",\"hidden_size\":\"3\",\"num_layers\":\"1\","
        "\"direction\":\"reverse\",\"dropout\":\"0.25\",\"seed\":\"42\"},"
        "\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
        "\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[24,60]},"
        "\"bias_ih_l0\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"
        "\"bias_hh_l0\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]}}";
    cr_assert_str_eq(h, want);
    cr_assert_eq(n, 8 + hl + 84);
    /* the data: little-endian F32 of weight_ih_l0 first */
    float w[6];
    cr_assert_eq(recur_model_param_get(m, "weight_ih_l0", w, 6), RECUR_OK);
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &w[i], 4);
        const uint8_t *q = b + 8 + hl + 4 * i;
        cr_assert_eq((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24, u);
    }
    free(h);
    free(b);
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* A plain state_dict file (no __metadata__) loads into a model with
 * load_weights; recur_model_load needs the metadata. */
Test(roundtrip, plain_state_dict) {
    make_tmpdir();
    recur_ctx *ctx = new_ctx();
    recur_model *a = make_model(ctx, "gru-lbr", NULL, 3, 2, 2, RECUR_DIR_FORWARD, 0, 0, 9);
    const char *p = tmp_path("a.safetensors"), *q = tmp_path("plain.safetensors");
    cr_assert_eq(recur_model_save(a, p), RECUR_OK);
    without_metadata(p, q);
    recur_model *b = make_model(ctx, "gru-lbr", NULL, 3, 2, 2, RECUR_DIR_FORWARD, 0, 0, 10);
    cr_assert_eq(recur_model_load_weights(b, q, RECUR_LOAD_CHECK_FINITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    size_t n;
    float *w = weights_of(a, &n);
    expect_weights(b, w, n, "plain");
    recur_model *c = NULL;
    cr_assert_eq(recur_model_load(ctx, q, 0, &c), RECUR_ERR_FILE_METADATA);
    cr_assert(strstr(recur_ctx_error(ctx), "no __metadata__"), "%s", recur_ctx_error(ctx));
    free(w);
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* ------------------------------------------------------------------------ */
/* BF16 and F16 tensors (a state_dict saved by torch in half precision)     */

/* Independent references: the value of each format's bits, in double. */
static double f16_ref(uint16_t h) {
    int e = h >> 10 & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

static double bf16_ref(uint16_t h) {
    int e = h >> 7 & 0xff, m = h & 0x7f;
    double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(128 + m, e - 134);
    return h & 0x8000 ? -v : v;
}

static void expect_half(float got, double want, uint16_t h, int mant_bits, const char *what) {
    uint32_t u;
    memcpy(&u, &got, 4);
    if (isnan(want)) {
        /* a NaN keeps its sign and its payload, shifted to the top of float's */
        cr_assert(isnan(got), "%s 0x%04x: %.9g, expected NaN", what, h, (double)got);
        cr_assert_eq(u >> 31, (uint32_t)h >> 15, "%s 0x%04x: NaN sign", what, h);
        cr_assert_eq(u & 0x7fffffu, (uint32_t)(h & ((1u << mant_bits) - 1)) << (23 - mant_bits),
                     "%s 0x%04x: NaN payload 0x%06x", what, h, u & 0x7fffffu);
        return;
    }
    float w = (float)want;
    cr_assert_eq((double)w, want, "%s 0x%04x: the reference is not a float", what, h);
    cr_assert(memcmp(&got, &w, 4) == 0, "%s 0x%04x: %.9g, expected %.9g", what, h, (double)got, want);
}

Test(half, f16_every_pattern) {
    for (uint32_t h = 0; h < 65536; h++) expect_half(recur_sf_f16_to_f32((uint16_t)h), f16_ref((uint16_t)h), (uint16_t)h, 10, "F16");
}

Test(half, bf16_every_pattern) {
    for (uint32_t h = 0; h < 65536; h++)
        expect_half(recur_bf16_to_f32((uint16_t)h), bf16_ref((uint16_t)h), (uint16_t)h, 7, "BF16");
}

/* The nearest of a format's values to x in double, ties to the even pattern,
 * by search over the non-negative patterns below Inf (an independent
 * reference of the narrowing); -1 when x rounds beyond the largest finite one
 * (only asked for F16: BF16 goes to Inf as torch does, checked apart). */
static int nearest_ref(double x, double (*ref)(uint16_t), uint16_t inf, uint16_t *out) {
    double a = fabs(x);
    uint16_t lo = 0, hi = (uint16_t)(inf - 1);
    if (a > ref(hi)) {
        /* beyond the largest finite value: to it only below the halfway point to the next binade step */
        double next = ref(hi) + (ref(hi) - ref((uint16_t)(hi - 1)));
        if (a >= (ref(hi) + next) / 2) return -1;
        *out = (uint16_t)(hi | (x < 0 ? 0x8000 : 0));
        return 0;
    }
    while (hi - lo > 1) { /* ref(lo) <= a <= ref(hi) */
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        if (ref(mid) <= a) lo = mid;
        else hi = mid;
    }
    double dl = a - ref(lo), dh = ref(hi) - a;
    uint16_t r = dl < dh ? lo : dh < dl ? hi : (lo & 1) ? hi : lo;
    if (ref(lo) == a) r = lo;
    *out = (uint16_t)(r | (x < 0 ? 0x8000 : 0));
    return 0;
}

/* Narrowing is the inverse of widening on every pattern (NaN: a NaN of the
 * same sign), and rounds to nearest even: random floats of every binade
 * against the search above. */
Test(half, narrowing_every_pattern_and_rounding) {
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t back = 0;
        float f = recur_sf_f16_to_f32((uint16_t)h);
        cr_assert_eq(recur_sf_f32_to_f16(f, &back), 0, "F16 0x%04x", h);
        if (isnan(f)) cr_assert((back & 0x7c00) == 0x7c00 && (back & 0x3ff) && (back >> 15) == (h >> 15), "F16 NaN 0x%04x", h);
        else cr_assert_eq(back, h, "F16 0x%04x -> %.9g -> 0x%04x", h, (double)f, back);
        f = recur_bf16_to_f32((uint16_t)h);
        back = recur_f32_to_bf16(f);
        if (isnan(f)) cr_assert((back & 0x7f80) == 0x7f80 && (back & 0x7f) && (back >> 15) == (h >> 15), "BF16 NaN 0x%04x", h);
        else cr_assert_eq(back, h, "BF16 0x%04x -> %.9g -> 0x%04x", h, (double)f, back);
    }
    test_rng r = {2024};
    for (int i = 0; i < 200000; i++) {
        /* a random float32 pattern, NaN and Inf left out */
        uint32_t u = (uint32_t)(test_uniform(&r, 0, 4294967296.0));
        float f;
        memcpy(&f, &u, 4);
        if (!isfinite(f)) continue;
        uint16_t want, got;
        int rc = nearest_ref(f, f16_ref, 0x7c00, &want);
        int grc = recur_sf_f32_to_f16(f, &got);
        cr_assert_eq(grc, rc, "F16 of %.9g (0x%08x): %d, expected %d", (double)f, u, grc, rc);
        if (!rc) cr_assert_eq(got, want, "F16 of %.9g (0x%08x): 0x%04x, expected 0x%04x", (double)f, u, got, want);
        if (fabs(f) < 3.38e38) { /* below BF16's rounding to Inf */
            cr_assert_eq(nearest_ref(f, bf16_ref, 0x7f80, &want), 0);
            got = recur_f32_to_bf16(f);
            cr_assert_eq(got, want, "BF16 of %.9g (0x%08x): 0x%04x, expected 0x%04x", (double)f, u, got, want);
        }
    }
    /* the edges: F16's largest, the halfway point past it, ties to even */
    uint16_t h;
    cr_assert(recur_sf_f32_to_f16(65519.0f, &h) == 0 && h == 0x7bff);
    cr_assert_eq(recur_sf_f32_to_f16(65520.0f, &h), -1);
    cr_assert(recur_sf_f32_to_f16(INFINITY, &h) == 0 && h == 0x7c00);
    cr_assert(recur_sf_f32_to_f16(1.0f + 1.0f / 2048, &h) == 0 && h == 0x3c00, "0x%04x", h); /* tie: even */
    cr_assert(recur_sf_f32_to_f16(1.0f + 3.0f / 2048, &h) == 0 && h == 0x3c02, "0x%04x", h); /* tie: even */
    cr_assert(recur_sf_f32_to_f16(ldexpf(1.0f, -25), &h) == 0 && h == 0, "0x%04x", h);       /* tie: zero */
    cr_assert(recur_sf_f32_to_f16(-ldexpf(3.0f, -26), &h) == 0 && h == 0x8001, "0x%04x", h);
    cr_assert_eq(recur_f32_to_bf16(3.4e38f), 0x7f80); /* torch rounds there to Inf too */
}

/* recur_model_save_as: the header names the dtype, every value is the
 * nearest of that format, the file loads back exactly those; a finite
 * weight beyond F16's range is refused by name and the file at the path
 * stays as it was. */
Test(half, save_as_bf16_and_f16) {
    make_tmpdir();
    recur_ctx *ctx = new_ctx();
    recur_model *m = make_model(ctx, "lstm", NULL, 3, 4, 2, RECUR_DIR_BIDI_CONCAT, 0, 0, 31);
    size_t n;
    float *w = weights_of(m, &n);
    static const struct {
        recur_dtype dt;
        const char *name;
    } kinds[] = {{RECUR_DTYPE_BF16, "BF16"}, {RECUR_DTYPE_F16, "F16"}};
    for (int k = 0; k < 2; k++) {
        const char *p = tmp_path("h.safetensors");
        cr_assert_eq(recur_model_save_as(m, p, kinds[k].dt), RECUR_OK, "%s", recur_ctx_error(ctx));
        char *h = header_of(p);
        char needle[64];
        snprintf(needle, sizeof needle, "\"dtype\":\"%s\"", kinds[k].name);
        cr_assert(strstr(h, needle) && !strstr(h, "\"F32\""), "%s", h);
        recur_model *b;
        cr_assert_eq(recur_model_load(ctx, p, RECUR_LOAD_CHECK_FINITE, &b), RECUR_OK, "%s", recur_ctx_error(ctx));
        expect_same_desc(m, b, kinds[k].name);
        float *want = test_floats(n);
        for (size_t i = 0; i < n; i++) {
            uint16_t q = 0;
            if (kinds[k].dt == RECUR_DTYPE_BF16) q = recur_f32_to_bf16(w[i]);
            else cr_assert_eq(recur_sf_f32_to_f16(w[i], &q), 0);
            want[i] = kinds[k].dt == RECUR_DTYPE_BF16 ? recur_bf16_to_f32(q) : recur_sf_f16_to_f32(q);
            cr_assert(fabsf(want[i] - w[i]) <= fabsf(w[i]) * (kinds[k].dt == RECUR_DTYPE_BF16 ? 0x1p-8f : 0x1p-11f),
                      "%s: %g rounds to %g", kinds[k].name, (double)w[i], (double)want[i]);
        }
        expect_weights(b, want, n, kinds[k].name);
        free(want);
        free(h);
        recur_model_free(b);
    }
    /* beyond F16: refused, naming the tensor; the F32 file written before is untouched */
    const char *p = tmp_path("keep.safetensors");
    cr_assert_eq(recur_model_save(m, p), RECUR_OK);
    size_t n0, n1;
    uint8_t *before = read_bytes(p, &n0);
    float big = 1e5f;
    cr_assert_eq(recur_model_param_set(m, "bias_hh_l1", &big, 1) == RECUR_ERR_BUFFER_SIZE, 1);
    float bias[16];
    cr_assert_eq(recur_model_param_get(m, "bias_hh_l1", bias, 16), RECUR_OK);
    bias[5] = big;
    cr_assert_eq(recur_model_param_set(m, "bias_hh_l1", bias, 16), RECUR_OK);
    cr_assert_eq(recur_model_save_as(m, p, RECUR_DTYPE_F16), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(ctx), "'bias_hh_l1' element 5 is 100000, beyond F16"), "%s", recur_ctx_error(ctx));
    uint8_t *after = read_bytes(p, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "the refused save changed %s", p);
    cr_assert_eq(recur_model_save_as(m, p, RECUR_DTYPE_BF16), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_save_as(m, p, (recur_dtype)7), RECUR_ERR_ARG);
    free(before);
    free(after);
    free(w);
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* A plain state_dict of an rnn (2 inputs, 3 hidden, 1 layer) with every
 * tensor in dtype dt, two bytes a value, bits h[0..20]. */
static void write_half_file(const char *path, const char *dt, const uint16_t h[21]) {
    char json[1024];
    int n = snprintf(json, sizeof json,
                     "{\"weight_ih_l0\":{\"dtype\":\"%s\",\"shape\":[3,2],\"data_offsets\":[0,12]},"
                     "\"weight_hh_l0\":{\"dtype\":\"%s\",\"shape\":[3,3],\"data_offsets\":[12,30]},"
                     "\"bias_ih_l0\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[30,36]},"
                     "\"bias_hh_l0\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[36,42]}}",
                     dt, dt, dt, dt);
    while (n % 8) json[n++] = ' ';
    uint8_t buf[8 + sizeof json + 42];
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)n >> 8 * i);
    memcpy(buf + 8, json, (size_t)n);
    for (int i = 0; i < 21; i++) {
        buf[8 + n + 2 * i] = (uint8_t)h[i];
        buf[8 + n + 2 * i + 1] = (uint8_t)(h[i] >> 8);
    }
    write_bytes(path, buf, 8 + (size_t)n + 42);
}

Test(half, state_dict_loads_exactly) {
    make_tmpdir();
    recur_ctx *ctx = new_ctx();
    /* normals of both signs, zeros, the smallest and largest subnormals and
     * the largest finite value of each format */
    static const uint16_t f16[21] = {0x3c00, 0xbc00, 0x0000, 0x8000, 0x0001, 0x03ff, 0x8001, 0x7bff, 0xfbff, 0x3555, 0x2e66,
                                     0xb266, 0x0400, 0x1234, 0x4248, 0xc248, 0x3800, 0x3bff, 0x0200, 0x5640, 0xd640};
    static const uint16_t bf16[21] = {0x3f80, 0xbf80, 0x0000, 0x8000, 0x0001, 0x007f, 0x8001, 0x7f7f, 0xff7f, 0x3eaa, 0x3dcd,
                                      0xbe4d, 0x0080, 0x1234, 0x4049, 0xc049, 0x3f00, 0x3f7f, 0x0040, 0x42c8, 0xc2c8};
    for (int k = 0; k < 2; k++) {
        const char *dt = k ? "BF16" : "F16", *p = tmp_path(k ? "bf16.safetensors" : "f16.safetensors");
        const uint16_t *h = k ? bf16 : f16;
        write_half_file(p, dt, h);
        float want[21];
        for (int i = 0; i < 21; i++) want[i] = (float)(k ? bf16_ref(h[i]) : f16_ref(h[i]));
        recur_model *m = make_model(ctx, "rnn", "relu", 2, 3, 1, RECUR_DIR_FORWARD, 0, 0, 5);
        cr_assert_eq(recur_model_load_weights(m, p, RECUR_LOAD_CHECK_FINITE), RECUR_OK, "%s: %s", dt,
                     recur_ctx_error(ctx));
        expect_weights(m, want, 21, dt);
        recur_model_free(m);
    }
    /* an Inf in a half tensor is refused under RECUR_LOAD_CHECK_FINITE like an F32 one */
    uint16_t inf[21] = {0};
    inf[7] = 0x7c00;
    write_half_file(tmp_path("inf.safetensors"), "F16", inf);
    recur_model *m = make_model(ctx, "rnn", "relu", 2, 3, 1, RECUR_DIR_FORWARD, 0, 0, 5);
    cr_assert_eq(recur_model_load_weights(m, tmp_path("inf.safetensors"), RECUR_LOAD_CHECK_FINITE),
                 RECUR_ERR_FILE_NONFINITE);
    cr_assert(strstr(recur_ctx_error(ctx), "'weight_hh_l0' element 1 ([0][1]) is +Inf"), "%s", recur_ctx_error(ctx));
    recur_model_free(m);
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* ------------------------------------------------------------------------ */
/* load_weights into a model of another shape                                */

Test(shape, other_models_untouched) {
    make_tmpdir();
    recur_ctx *ctx = new_ctx();
    recur_model *a = make_model(ctx, "lstm", NULL, 3, 4, 2, RECUR_DIR_BIDI_CONCAT, 0, 0, 1);
    const char *p = tmp_path("a.safetensors");
    cr_assert_eq(recur_model_save(a, p), RECUR_OK);
    static const struct {
        const char *cell;
        int I, H, L;
        recur_direction dir;
        recur_status want;
        const char *needle;
    } cases[] = {
        {"lstm", 3, 5, 2, RECUR_DIR_BIDI_CONCAT, RECUR_ERR_FILE_SHAPE, "weight_ih_l0"}, /* H */
        {"lstm", 2, 4, 2, RECUR_DIR_BIDI_CONCAT, RECUR_ERR_FILE_SHAPE, "weight_ih_l0"}, /* I */
        {"lstm", 3, 4, 3, RECUR_DIR_BIDI_CONCAT, RECUR_ERR_FILE_MISSING, "weight_ih_l2"},
        {"lstm", 3, 4, 1, RECUR_DIR_BIDI_CONCAT, RECUR_ERR_FILE_EXTRA, "_l1"},
        {"lstm", 3, 4, 2, RECUR_DIR_FORWARD, RECUR_ERR_FILE_EXTRA, "_reverse"},
        {"lstm", 3, 4, 2, RECUR_DIR_BIDI_SUM, RECUR_ERR_FILE_SHAPE, "weight_ih_l1"},
        {"gru-lbr", 3, 4, 2, RECUR_DIR_BIDI_CONCAT, RECUR_ERR_FILE_SHAPE, "weight_ih_l0"}, /* G */
        {"rnn", 3, 16, 2, RECUR_DIR_BIDI_CONCAT, RECUR_ERR_FILE_SHAPE, "weight_hh_l0"}, /* G*H equal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        recur_model *b = make_model(ctx, cases[i].cell, NULL, cases[i].I, cases[i].H, cases[i].L, cases[i].dir, 0, 0,
                                    100 + i);
        size_t n;
        float *w = weights_of(b, &n);
        recur_status st = recur_model_load_weights(b, p, 0);
        cr_assert_eq(st, cases[i].want, "case %zu: %s, expected %s: %s", i, recur_status_str(st),
                     recur_status_str(cases[i].want), recur_ctx_error(ctx));
        expect_msg(ctx, p, cases[i].needle, "other shape");
        expect_weights(b, w, n, "other shape");
        free(w);
        recur_model_free(b);
    }
    /* Same shapes, another cell or variant or direction: the metadata says no. */
    recur_model *g = make_model(ctx, "gru", NULL, 3, 4, 1, RECUR_DIR_BIDI_CONCAT, 0, 0, 5);
    const char *q = tmp_path("g.safetensors");
    cr_assert_eq(recur_model_save(g, q), RECUR_OK);
    static const struct {
        const char *cell, *variant;
        recur_direction dir;
        const char *needle;
    } same[] = {{"gru-lbr", NULL, RECUR_DIR_BIDI_CONCAT, "cell gru"}, {"gru", NULL, RECUR_DIR_BIDI_SUM, "direction"}};
    for (size_t i = 0; i < 2; i++) {
        recur_model *b = make_model(ctx, same[i].cell, same[i].variant, 3, 4, 1, same[i].dir, 0, 0, 200 + i);
        size_t n;
        float *w = weights_of(b, &n);
        recur_status st = recur_model_load_weights(b, q, 0);
        cr_assert_eq(st, RECUR_ERR_FILE_METADATA, "same-shape case %zu: %s: %s", i, recur_status_str(st),
                     recur_ctx_error(ctx));
        expect_msg(ctx, q, same[i].needle, "same shape");
        expect_weights(b, w, n, "same shape");
        free(w);
        recur_model_free(b);
    }
    recur_model *r1 = make_model(ctx, "rnn", "tanh", 3, 4, 1, RECUR_DIR_FORWARD, 0, 0, 6);
    recur_model *r2 = make_model(ctx, "rnn", "relu", 3, 4, 1, RECUR_DIR_FORWARD, 0, 0, 7);
    cr_assert_eq(recur_model_save(r1, q), RECUR_OK);
    size_t n;
    float *w = weights_of(r2, &n);
    cr_assert_eq(recur_model_load_weights(r2, q, 0), RECUR_ERR_FILE_METADATA, "%s", recur_ctx_error(ctx));
    expect_msg(ctx, q, "variant", "variant");
    expect_weights(r2, w, n, "variant");
    free(w);
    recur_ctx_free(ctx);
    drop_tmpdir();
}

/* ------------------------------------------------------------------------ */
/* bad files: one test per case                                              */

TestSuite(bad, .init = bad_setup, .fini = bad_teardown);

Test(bad, truncated) {
    size_t n;
    uint8_t *b = read_bytes(B.path, &n);
    size_t cuts[] = {0, 1, 7, n - 1, n - 10, n - 64};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(B.bad_path, b, cuts[i]);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_TRUNCATED, RECUR_ERR_FILE_TRUNCATED,
                   cuts[i] < 8 ? "shorter than the 8-byte header length" : "truncated");
    }
    /* cut right after the header: no data at all */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    write_bytes(B.bad_path, b, 8 + hl);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_TRUNCATED, RECUR_ERR_FILE_TRUNCATED, "the file has 0");
    free(b);
}

Test(bad, header_length) {
    size_t n;
    uint8_t *b = read_bytes(B.path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    const uint64_t lens[] = {n - 7, n, 100000001ull, 1ull << 40, UINT64_MAX};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(lens[k] >> (8 * i));
        write_bytes(B.bad_path, b, n);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_HEADER, RECUR_ERR_FILE_HEADER,
                   lens[k] > 100000000 ? "not a safetensors file: its first 8 bytes give a header length of" : "past the end");
    }
    /* the file cut inside its header */
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hl >> (8 * i));
    write_bytes(B.bad_path, b, 8 + hl / 2);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_HEADER, RECUR_ERR_FILE_HEADER, "past the end");
    free(b);
}

Test(bad, json_syntax) {
    /* a byte of the JSON corrupted, in several places */
    static const char *const from[] = {"\"dtype\":\"F32\"", "{\"dtype\"", "[16,3]", "\"__metadata__\":{"};
    static const char *const to[] = {"\"dtype\":\"F32", "{\"dtype\"\"", "[16,3", "\"__metadata__\"{"};
    for (size_t i = 0; i < 4; i++) {
        patch(B.path, B.bad_path, from[i], to[i]);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, "not valid JSON");
    }
    /* an empty header, a header of spaces, garbage after the object, a NUL */
    with_header(B.path, B.bad_path, "");
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, "not valid JSON");
    with_header(B.path, B.bad_path, "        ");
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, "not valid JSON");
    char *h = header_of(B.path), *g = malloc(strlen(h) + 8);
    sprintf(g, "%s x", h);
    with_header(B.path, B.bad_path, g);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, "after its JSON value");
    free(g);
    size_t n;
    uint8_t *b = read_bytes(B.path, &n);
    b[8 + 20] = 0;
    write_bytes(B.bad_path, b, n);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, "control byte 0x00");
    free(b);
    free(h);
}

/* Valid JSON of the wrong form: a non-object, wrong field types. */
Test(bad, json_form) {
    static const struct {
        const char *from, *to, *needle;
    } c[] = {
        {"\"shape\":[16,3]", "\"shape\":\"16x3\"", "shape is not an array"},
        {"\"shape\":[16,3]", "\"shape\":[16,-3]", "shape[1] is not an integer"},
        {"\"shape\":[16,3]", "\"shape\":[16,3.5]", "shape[1] is not an integer"},
        {"\"shape\":[16,3]", "\"shape\":[16,1e300]", "shape[1] is not an integer"},
        {"\"shape\":[16,3]", "\"shape\":[16,9007199254740994]", "shape[1] is not an integer"},
        {"\"shape\":[16,3]", "\"shape\":[16,\"3\"]", "shape[1] is not an integer"},
        {"\"dtype\":\"F32\"", "\"dtype\":32", "dtype is not a string"},
        {"\"data_offsets\":[0,", "\"data_offsets\":[0,1,", "data_offsets is not an array of two"},
        {"\"data_offsets\":[0,", "\"data_offsets\":[-1,", "data_offsets is not an array of two"},
        {"\"data_offsets\":[0,192]", "\"data_offsets\":\"0:192\"", "data_offsets is not an array of two"},
        {"\"dtype\":\"F32\",", "", "has no 'dtype'"},
        {"\"num_layers\":\"2\"", "\"num_layers\":2", "__metadata__ value 'num_layers' is not a string"},
        {"\"seed\":\"7\"", "\"seed\":\"7\",\"seed\":\"7\"", "__metadata__ has 'seed' twice"},
        {"\"dtype\":\"F32\",", "\"dtype\":\"F32\",\"dtype\":\"F32\",", "has 'dtype' twice"},
        {"{\"__metadata__\":", "{\"__metadata__\":[],\"x\":", "__metadata__ is not a JSON object"},
        {"{\"__metadata__\":", "{\"__metadata__\":{},\"__metadata__\":", "__metadata__ appears twice"},
        {"\"weight_ih_l0\":{", "\"weight_ih_l0\":[{", "is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        if (c[i].to[0] == '\"' && strstr(c[i].to, "[{")) {
            /* a tensor entry that is an array: close it too */
            char *h = header_of(B.path), *e = entry_of(h, "weight_ih_l0");
            char *arr = malloc(strlen(e) + 4);
            sprintf(arr, "\"weight_ih_l0\":[%s]", strchr(e, '{'));
            char *n = replace(h, e, arr);
            with_header(B.path, B.bad_path, n);
            free(n);
            free(arr);
            free(e);
            free(h);
        } else {
            patch(B.path, B.bad_path, c[i].from, c[i].to);
        }
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, c[i].needle);
    }
    /* a tensor listed twice */
    char *h = header_of(B.path), *e = entry_of(h, "bias_ih_l0");
    char *twice = malloc(2 * strlen(e) + 2);
    sprintf(twice, "%s,%s", e, e);
    char *n = replace(h, e, twice);
    with_header(B.path, B.bad_path, n);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, "'bias_ih_l0' appears twice");
    /* not an object at all */
    static const char *const roots[] = {"[]", "42", "\"text\"", "null", "[{\"__metadata__\":{}}]"};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        with_header(B.path, B.bad_path, roots[i]);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON, "not a JSON object");
    }
    free(n);
    free(twice);
    free(e);
    free(h);
}

Test(bad, missing_tensor) {
    patch_entry(B.path, B.bad_path, "bias_hh_l1_reverse", "");
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_MISSING, RECUR_ERR_FILE_MISSING, "no tensor 'bias_hh_l1_reverse'");
    patch_entry(B.path, B.bad_path, "weight_ih_l0", "");
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_MISSING, RECUR_ERR_FILE_MISSING, "no tensor 'weight_ih_l0'");
}

Test(bad, renamed_tensor) {
    patch(B.path, B.bad_path, "\"weight_hh_l1\":", "\"weight_hh_l7\":");
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_MISSING, RECUR_ERR_FILE_MISSING, "no tensor 'weight_hh_l1'");
    patch(B.path, B.bad_path, "\"bias_ih_l0\":", "\"bias_ih_l0_reverse_2\":");
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_MISSING, RECUR_ERR_FILE_MISSING, "no tensor 'bias_ih_l0'");
}

Test(bad, extra_tensor) {
    char *h = header_of(B.path);
    char *e = entry_of(h, "bias_hh_l1_reverse");
    /* a well-formed extra tensor of its own bytes, appended to the data */
    unsigned long long b, en;
    offsets_of(h, "bias_hh_l1_reverse", &b, &en);
    char add[600];
    snprintf(add, sizeof add, "%s,\"weight_ih_l2\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%llu,%llu]}", e,
             en, en + 4);
    char *n = replace(h, e, add);
    with_header(B.path, B.bad_path, n);
    size_t len;
    uint8_t *bytes = read_bytes(B.bad_path, &len);
    uint8_t *more = malloc(len + 4);
    memcpy(more, bytes, len);
    memset(more + len, 0, 4);
    write_bytes(B.bad_path, more, len + 4);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_EXTRA, RECUR_ERR_FILE_EXTRA, "'weight_ih_l2'");
    /* and one with a name no model has */
    char *n2 = replace(n, "weight_ih_l2", "embedding.weight");
    with_header(B.bad_path, B.bad_path, n2);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_EXTRA, RECUR_ERR_FILE_EXTRA, "'embedding.weight'");
    free(n2);
    free(more);
    free(bytes);
    free(n);
    free(e);
    free(h);
}

Test(bad, wrong_shape) {
    static const struct {
        const char *name, *from, *to;
    } c[] = {
        {"bias_ih_l1", "\"shape\":[16]", "\"shape\":[15]"},
        {"weight_hh_l0", "\"shape\":[16,4]", "\"shape\":[4,16]"},
        {"weight_hh_l1_reverse", "\"shape\":[16,4]", "\"shape\":[16,4,1]"},
        {"bias_hh_l0", "\"shape\":[16]", "\"shape\":[16,1]"},
        {"weight_ih_l1", "\"shape\":[16,8]", "\"shape\":[128]"},
        {"bias_ih_l0", "\"shape\":[16]", "\"shape\":[]"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *h = header_of(B.path), *e = entry_of(h, c[i].name), *e2 = replace(e, c[i].from, c[i].to);
        patch_entry(B.path, B.bad_path, c[i].name, e2);
        char needle[96];
        snprintf(needle, sizeof needle, "tensor '%s' has shape", c[i].name);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_SHAPE, RECUR_ERR_FILE_SHAPE, needle);
        free(e2);
        free(e);
        free(h);
    }
}

/* F16 and BF16 are read, but two bytes a value: an F32 tensor's bytes
 * relabelled are twice what its shape needs. */
Test(bad, reduced_dtype_length) {
    static const char *const dt[] = {"F16", "BF16"};
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        char *h = header_of(B.path), *e = entry_of(h, "weight_hh_l1");
        char to[32], needle[32];
        snprintf(to, sizeof to, "\"dtype\":\"%s\"", dt[i]);
        snprintf(needle, sizeof needle, " %s values)", dt[i]);
        char *e2 = replace(e, "\"dtype\":\"F32\"", to);
        patch_entry(B.path, B.bad_path, "weight_hh_l1", e2);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, needle);
        free(e2);
        free(e);
        free(h);
    }
}

Test(bad, wrong_dtype) {
    static const char *const dt[] = {"F64", "I32", "f32", "f16", "bf16", ""};
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        char *h = header_of(B.path), *e = entry_of(h, "weight_hh_l1");
        char to[32];
        snprintf(to, sizeof to, "\"dtype\":\"%s\"", dt[i]);
        char *e2 = replace(e, "\"dtype\":\"F32\"", to);
        patch_entry(B.path, B.bad_path, "weight_hh_l1", e2);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_DTYPE, RECUR_ERR_FILE_DTYPE, "'weight_hh_l1' has dtype");
        free(e2);
        free(e);
        free(h);
    }
}

static void set_offsets(const char *name, unsigned long long b, unsigned long long e) {
    char *h = header_of(B.path), *en = entry_of(h, name);
    unsigned long long ob, oe;
    offsets_of(h, name, &ob, &oe);
    char from[64], to[64];
    snprintf(from, sizeof from, "\"data_offsets\":[%llu,%llu]", ob, oe);
    snprintf(to, sizeof to, "\"data_offsets\":[%llu,%llu]", b, e);
    char *en2 = replace(en, from, to);
    patch_entry(B.path, B.bad_path, name, en2);
    free(en2);
    free(en);
    free(h);
}

Test(bad, offsets) {
    char *h = header_of(B.path);
    unsigned long long b, e, b0, e0, bl, el;
    offsets_of(h, "weight_hh_l0", &b, &e);        /* the second tensor */
    offsets_of(h, "weight_ih_l0", &b0, &e0);      /* the first */
    offsets_of(h, "bias_hh_l1_reverse", &bl, &el); /* the last */
    cr_assert_eq(b, e0);
    /* reversed */
    set_offsets("weight_hh_l0", e, b);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "are reversed");
    /* not shape * 4 bytes */
    set_offsets("weight_hh_l0", b, e - 4);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "its shape needs");
    set_offsets("weight_hh_l0", b, e + 4);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "its shape needs");
    /* overlapping the first tensor */
    set_offsets("weight_hh_l0", b - 4, e - 4);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "overlap");
    /* two tensors on the same bytes */
    set_offsets("weight_hh_l0", b0, b0 + (e - b));
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "overlap");
    /* past the end of the data */
    set_offsets("bias_hh_l1_reverse", bl + 4096, el + 4096);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "run past the end");
    set_offsets("bias_hh_l1_reverse", 9007199254740000ull, 9007199254740000ull + (el - bl));
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "run past the end");
    /* a gap: the first tensor moved to where the last one was, the last to 0 */
    {
        char *en = entry_of(h, "weight_ih_l0");
        char from[64], to[64];
        snprintf(from, sizeof from, "[%llu,%llu]", b0, e0);
        snprintf(to, sizeof to, "[%llu,%llu]", el, el + (e0 - b0));
        char *en2 = replace(en, from, to);
        char *h2 = replace(h, en, en2);
        with_header(B.path, B.bad_path, h2);
        size_t n0;
        uint8_t *b2 = read_bytes(B.bad_path, &n0);
        uint8_t *m2 = calloc(n0 + (e0 - b0), 1);
        memcpy(m2, b2, n0);
        write_bytes(B.bad_path, m2, n0 + (e0 - b0));
        free(m2);
        free(b2);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "belong to no tensor");
        free(h2);
        free(en2);
        free(en);
    }
    /* bytes after the last tensor */
    size_t n;
    uint8_t *bytes = read_bytes(B.path, &n);
    uint8_t *more = calloc(n + 8, 1);
    memcpy(more, bytes, n);
    write_bytes(B.bad_path, more, n + 8);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS, "after the last tensor");
    free(more);
    free(bytes);
    free(h);
}

/* Metadata missing or malformed. */
Test(bad, metadata_malformed) {
    static const struct {
        const char *from, *to, *needle;
        recur_status want_w; /* load_weights: the keys it needs are there */
    } c[] = {
        {"\"cell\":\"lstm\",", "", "no 'cell'", RECUR_ERR_FILE_METADATA},
        {"\"direction\":\"bidi_concat\",", "", "no 'direction'", RECUR_ERR_FILE_METADATA},
        {"\"cell\":\"lstm\"", "\"cell\":\"nosuchcell\"", "'nosuchcell' is not a registered cell", RECUR_ERR_FILE_METADATA},
        {"\"cell\":\"lstm\"", "\"cell\":\"\"", "is not a registered cell", RECUR_ERR_FILE_METADATA},
        {"\"variant\":\"\"", "\"variant\":\"relu\"", "variant 'relu'", RECUR_ERR_FILE_METADATA},
        {"\"hidden_size\":\"4\"", "\"hidden_size\":\"four\"", "hidden_size 'four'", RECUR_ERR_FILE_METADATA},
        {"\"hidden_size\":\"4\"", "\"hidden_size\":\"-4\"", "hidden_size '-4'", RECUR_ERR_FILE_METADATA},
        {"\"hidden_size\":\"4\"", "\"hidden_size\":\"4.0\"", "hidden_size '4.0'", RECUR_ERR_FILE_METADATA},
        {"\"hidden_size\":\"4\"", "\"hidden_size\":\" 4\"", "hidden_size ' 4'", RECUR_ERR_FILE_METADATA},
        {"\"hidden_size\":\"4\"", "\"hidden_size\":\"\"", "hidden_size ''", RECUR_ERR_FILE_METADATA},
        {"\"hidden_size\":\"4\"", "\"hidden_size\":\"99999999999999999999\"", "hidden_size", RECUR_ERR_FILE_METADATA},
        {"\"input_size\":\"3\"", "\"input_size\":\"0\"", "input_size '0'", RECUR_ERR_FILE_METADATA},
        {"\"num_layers\":\"2\"", "\"num_layers\":\"65\"", "num_layers '65'", RECUR_ERR_FILE_METADATA},
        {"\"direction\":\"bidi_concat\"", "\"direction\":\"sideways\"", "direction 'sideways'",
         RECUR_ERR_FILE_METADATA},
        {"\"dropout\":\"0\"", "\"dropout\":\"1.5\"", "dropout '1.5'", RECUR_ERR_FILE_METADATA},
        {"\"dropout\":\"0\"", "\"dropout\":\"nan\"", "dropout 'nan'", RECUR_ERR_FILE_METADATA},
        {"\"dropout\":\"0\"", "\"dropout\":\"-0.1\"", "dropout '-0.1'", RECUR_ERR_FILE_METADATA},
        {"\"dropout\":\"0\"", "\"dropout\":\"0\",\"zoneout\":\"1\"", "zoneout '1'", RECUR_ERR_FILE_METADATA},
        {"\"dropout\":\"0\"", "\"dropout\":\"0\",\"zoneout\":\"x\"", "zoneout 'x'", RECUR_ERR_FILE_METADATA},
        {"\"seed\":\"7\"", "\"seed\":\"-1\"", "seed '-1'", RECUR_ERR_FILE_METADATA},
        {"\"seed\":\"7\"", "\"seed\":\"18446744073709551616\"", "seed '18446744073709551616'",
         RECUR_ERR_FILE_METADATA},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        patch(B.path, B.bad_path, c[i].from, c[i].to);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_METADATA, c[i].want_w, c[i].needle);
    }
    /* no __metadata__ at all: load cannot know the model, load_weights can */
    char *h = header_of(B.path);
    char *end = strstr(h, "},\"weight_ih_l0\"");
    char *plain = malloc(strlen(h) + 1);
    sprintf(plain, "{%s", end + 2);
    with_header(B.path, B.bad_path, plain);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_METADATA, RECUR_OK, "no __metadata__");
    /* __metadata__ with none of recur's keys (safetensors' own "format":"pt") */
    char *pt = malloc(strlen(h) + 64);
    sprintf(pt, "{\"__metadata__\":{\"format\":\"pt\"},%s", end + 2);
    with_header(B.path, B.bad_path, pt);
    EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_METADATA, RECUR_OK, "no 'cell'");
    free(pt);
    free(plain);
    free(h);
}

/* Well-formed metadata that disagrees with the tensors. */
Test(bad, metadata_disagrees) {
    static const struct {
        const char *from, *to, *needle;
    } c[] = {
        {"\"hidden_size\":\"4\"", "\"hidden_size\":\"5\"", "hidden_size is 5, the tensors' 4"},
        {"\"input_size\":\"3\"", "\"input_size\":\"2\"", "input_size is 2, the tensors' 3"},
        {"\"num_layers\":\"2\"", "\"num_layers\":\"3\"", "num_layers is 3, the tensors have 2"},
        {"\"num_layers\":\"2\"", "\"num_layers\":\"1\"", "num_layers is 1, the tensors have 2"},
        {"\"direction\":\"bidi_concat\"", "\"direction\":\"bidi_sum\"", "direction is bidi_sum, the tensors are bidi_concat"},
        {"\"direction\":\"bidi_concat\"", "\"direction\":\"forward\"", "direction is forward, the tensors are bidi_concat"},
        {"\"cell\":\"lstm\"", "\"cell\":\"gru\"", "cell gru has 3 gates, the tensors 4"},
        {"\"cell\":\"lstm\"", "\"cell\":\"rnn\"", "cell rnn has 1 gates, the tensors 4"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        patch(B.path, B.bad_path, c[i].from, c[i].to);
        EXPECT_BAD(B.bad_path, 0, RECUR_ERR_FILE_METADATA, RECUR_ERR_FILE_METADATA, c[i].needle);
    }
}

Test(bad, nonfinite) {
    size_t n;
    uint8_t *b = read_bytes(B.path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    char *h = header_of(B.path);
    unsigned long long wb, we;
    offsets_of(h, "weight_hh_l1", &wb, &we);
    const uint32_t bits[] = {0x7fc00000u, 0xffc00001u, 0x7f800000u, 0xff800000u, 0x7f800001u};
    const char *const names[] = {"NaN", "NaN", "+Inf", "-Inf", "NaN"};
    for (size_t k = 0; k < sizeof bits / sizeof bits[0]; k++) {
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        size_t at = 8 + hl + wb + 4 * 6; /* element 6: row 1, col 2 of [16, 4] */
        for (int i = 0; i < 4; i++) c[at + i] = (uint8_t)(bits[k] >> (8 * i));
        write_bytes(B.bad_path, c, n);
        char needle[96];
        snprintf(needle, sizeof needle, "'weight_hh_l1' element 6 ([1][2]) is %s", names[k]);
        EXPECT_BAD(B.bad_path, RECUR_LOAD_CHECK_FINITE, RECUR_ERR_FILE_NONFINITE, RECUR_ERR_FILE_NONFINITE, needle);
        /* without the check the value loads as it is, bit for bit */
        recur_model *m;
        cr_assert_eq(recur_model_load(B.ctx, B.bad_path, 0, &m), RECUR_OK, "%s", recur_ctx_error(B.ctx));
        float w[64];
        cr_assert_eq(recur_model_param_get(m, "weight_hh_l1", w, 64), RECUR_OK);
        uint32_t got;
        memcpy(&got, &w[6], 4);
        /* (a signalling NaN may come back quieted: weights.c converts
         * layouts by multiplying by +-1) */
        cr_assert(got == bits[k] || (k == 4 && got == (bits[k] | 0x00400000u)), "0x%08x loaded as 0x%08x", bits[k],
                  got);
        recur_model_free(m);
        free(c);
    }
    free(h);
    free(b);
}

/* I/O: no file, a directory, and arguments. */
Test(bad, io_and_arguments) {
    const char *none = tmp_path("no-such-file.safetensors");
    EXPECT_BAD(none, 0, RECUR_ERR_IO, RECUR_ERR_IO, "No such file or directory");
    EXPECT_BAD(tmpdir, 0, RECUR_ERR_IO, RECUR_ERR_IO, "not a regular file (a directory)");
    /* a FIFO with no writer: refused at once, never waited on */
    const char *fifo = tmp_path("fifo.safetensors");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    EXPECT_BAD(fifo, 0, RECUR_ERR_IO, RECUR_ERR_IO, "not a regular file (a FIFO)");
    recur_file *tf = NULL;
    cr_assert_eq(recur_file_open(fifo, &tf), RECUR_ERR_IO);
    cr_assert(strstr(recur_last_error(), "a FIFO"), "%s", recur_last_error());
    cr_assert_null(tf);
    unlink(fifo);
    EXPECT_BAD("/dev/zero", 0, RECUR_ERR_IO, RECUR_ERR_IO, "not a regular file (a character device)");
    recur_model *m = NULL;
    cr_assert_eq(recur_model_load(NULL, B.path, 0, &m), RECUR_ERR_NULL);
    cr_assert_eq(recur_model_load(B.ctx, NULL, 0, &m), RECUR_ERR_NULL);
    cr_assert_eq(recur_model_load(B.ctx, B.path, 0, NULL), RECUR_ERR_NULL);
    cr_assert_eq(recur_model_load(B.ctx, B.path, 0x80, &m), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(B.ctx), "0x80"), "%s", recur_ctx_error(B.ctx));
    cr_assert_null(m);
    cr_assert_eq(recur_model_load_weights(NULL, B.path, 0), RECUR_ERR_NULL);
    cr_assert_eq(recur_model_load_weights(B.other, NULL, 0), RECUR_ERR_NULL);
    cr_assert_eq(recur_model_load_weights(B.other, B.path, 2), RECUR_ERR_ARG);
    expect_weights(B.other, B.other_w, B.n_w, "arguments");
    cr_assert_eq(recur_model_save(NULL, B.bad_path), RECUR_ERR_NULL);
    cr_assert_eq(recur_model_save(B.good, NULL), RECUR_ERR_NULL);
    cr_assert_eq(recur_model_save(B.good, ""), RECUR_ERR_ARG);
}

/* ------------------------------------------------------------------------ */
/* atomic saves                                                              */

TestSuite(atomic, .init = make_tmpdir, .fini = drop_tmpdir);

/* The writer's write (recur_sf_fwrite) as on a full disk: ENOSPC once the
 * file (new, so its position is what was written) reaches fail_after bytes. */
static long fail_after;
static size_t full_disk_fwrite(const void *p, size_t size, size_t n, FILE *fp) {
    long at = ftell(fp);
    size_t bytes = size * n, allowed = at + (long)bytes > fail_after ? (size_t)(fail_after - at) : bytes;
    size_t w = fwrite(p, 1, allowed, fp);
    if (w < bytes) errno = ENOSPC;
    return w / size;
}

Test(atomic, failed_write_keeps_previous_file) {
    recur_ctx *ctx = new_ctx();
    recur_model *a = make_model(ctx, "lstm", NULL, 3, 4, 2, RECUR_DIR_BIDI_CONCAT, 0, 0, 1);
    recur_model *b = make_model(ctx, "lstm", NULL, 3, 4, 2, RECUR_DIR_BIDI_CONCAT, 0, 0, 2);
    const char *p = tmp_path("m.safetensors"), *ref = tmp_path("ref");
    cr_assert_eq(recur_model_save(a, p), RECUR_OK);
    size_t n;
    uint8_t *before = read_bytes(p, &n);
    write_bytes(ref, before, n);
    recur_sf_fwrite = full_disk_fwrite;
    /* fail at the length, inside it, in the header, at the data, at the last byte */
    const size_t at[] = {0, 1, 7, 8, 9, 100, n / 2, n - 4, n - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        fail_after = (long)at[i];
        recur_status st = recur_model_save(b, p);
        cr_assert_eq(st, RECUR_ERR_IO, "failing after %zu bytes: %s", at[i], recur_status_str(st));
        expect_msg(ctx, p, "No space left on device", "failed save");
        cr_assert(strstr(recur_ctx_error(ctx), "write"), "%s", recur_ctx_error(ctx));
        cr_assert(same_file(p, ref), "after a save failing at byte %zu the previous file changed", at[i]);
        char other[256];
        cr_assert_eq(count_others(tmpdir, "m.safetensors", other, sizeof other), 1,
                     "a failed save left '%s' behind", other);
        /* the previous model still loads */
        recur_model *c;
        cr_assert_eq(recur_model_load(ctx, p, 0, &c), RECUR_OK);
        recur_model_free(c);
    }
    /* exactly as many bytes as the file: it succeeds */
    fail_after = (long)n;
    cr_assert_eq(recur_model_save(b, p), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_sf_fwrite = fwrite;
    cr_assert(!same_file(p, ref));
    recur_model *c;
    cr_assert_eq(recur_model_load(ctx, p, 0, &c), RECUR_OK);
    size_t nw;
    float *w = weights_of(b, &nw);
    expect_weights(c, w, nw, "after the successful save");
    free(w);
    free(before);
    recur_ctx_free(ctx);
}

Test(atomic, missing_directory) {
    recur_ctx *ctx = new_ctx();
    recur_model *a = make_model(ctx, "gru", NULL, 2, 3, 1, RECUR_DIR_FORWARD, 0, 0, 1);
    const char *p = tmp_path("no/such/dir/m.safetensors");
    cr_assert_eq(recur_model_save(a, p), RECUR_ERR_IO);
    expect_msg(ctx, p, "No such file or directory", "missing directory");
    cr_assert(strstr(recur_ctx_error(ctx), "temporary file"), "%s", recur_ctx_error(ctx));
    recur_ctx_free(ctx);
}

/* The target is a directory: the rename step fails, the temporary file goes. */
Test(atomic, rename_fails) {
    recur_ctx *ctx = new_ctx();
    recur_model *a = make_model(ctx, "gru", NULL, 2, 3, 1, RECUR_DIR_FORWARD, 0, 0, 1);
    const char *p = tmp_path("target");
    cr_assert_eq(mkdir(p, 0755), 0);
    write_bytes(tmp_path("target/inside"), "x", 1);
    cr_assert_eq(recur_model_save(a, p), RECUR_ERR_IO);
    expect_msg(ctx, p, "rename", "rename");
    char other[256];
    cr_assert_eq(count_others(tmpdir, "target", other, sizeof other), 0, "left '%s' behind", other);
    struct stat sb;
    cr_assert(stat(tmp_path("target/inside"), &sb) == 0 && S_ISREG(sb.st_mode));
    recur_ctx_free(ctx);
}

/* A process killed at a random point of a save: the file is the old one or
 * the new one, whole; a temporary file may stay behind (too fresh for the next
 * save to remove: stale_temporaries_removed). */
Test(atomic, killed_save, .timeout = 120) {
    recur_ctx *ctx = new_ctx();
    recur_model *a = make_model(ctx, "lstm", NULL, 16, 8, 1, RECUR_DIR_FORWARD, 0, 0, 1);
    recur_model *b = make_model(ctx, "lstm", NULL, 64, 384, 2, RECUR_DIR_BIDI_CONCAT, 0, 0, 2);
    char p[512], ra[512], rb[512];
    snprintf(p, sizeof p, "%s", tmp_path("m.safetensors"));
    snprintf(ra, sizeof ra, "%s", tmp_path("a.ref"));
    snprintf(rb, sizeof rb, "%s", tmp_path("b.ref"));
    cr_assert_eq(recur_model_save(a, ra), RECUR_OK);
    cr_assert_eq(recur_model_save(b, rb), RECUR_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(recur_model_save(b, p), RECUR_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long save_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
    int saw_old = 0, saw_new = 0;
    for (int round = 0; round < 12; round++) {
        cr_assert_eq(recur_model_save(a, p), RECUR_OK);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            for (;;) recur_model_save(b, p);
        }
        /* kill it somewhere inside its first save or two */
        usleep((useconds_t)(save_us * round / 6 + 1));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (same_file(p, ra)) saw_old++;
        else if (same_file(p, rb)) saw_new++;
        else cr_assert_fail("round %d: the file is neither the old nor the new model", round);
        /* remove what the killed process left */
        DIR *d = opendir(tmpdir);
        struct dirent *e;
        while ((e = readdir(d)))
            if (strstr(e->d_name, "m.safetensors.tmp-")) unlink(tmp_path(e->d_name));
        closedir(d);
    }
    cr_log_info("killed saves (one save %ld us): %d left the old file, %d the new one", save_us, saw_old, saw_new);
    recur_ctx_free(ctx);
}

/* A file (or with dir set, a directory) in tmpdir, last changed age_s ago. */
static void make_old(const char *name, long age_s, int dir) {
    if (dir) cr_assert_eq(mkdir(tmp_path(name), 0755), 0);
    else write_bytes(tmp_path(name), "x", 1);
    struct timespec ts[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, tmp_path(name), ts, AT_SYMLINK_NOFOLLOW), 0, "%s", strerror(errno));
}

static int exists(const char *name) {
    struct stat sb;
    return lstat(tmp_path(name), &sb) == 0;
}

/* A pid no process has (one that just exited). */
static pid_t dead_pid(void) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

/* What a save killed by SIGKILL leaves ("<path>.tmp-<pid>-<6 characters>")
 * goes at the next save of that path when its writer is gone and it has not
 * changed for a minute, or when it has not changed for a day; nothing else
 * does: a live writer's, a fresh one (maybe a writer on another machine of a
 * shared disk), other names, other targets, directories and symlinks. */
Test(atomic, stale_temporaries_removed) {
    recur_ctx *ctx = new_ctx();
    recur_model *a = make_model(ctx, "gru", NULL, 2, 3, 1, RECUR_DIR_FORWARD, 0, 0, 1);
    long dead = (long)dead_pid(), live = (long)getpid();
    static const struct {
        const char *fmt;
        int use_dead;
        long age;
        int dir, gone;
    } c[] = {
        {"m.safetensors.tmp-%ld-aB3dE9", 1, 120, 0, 1},         /* killed: gone */
        {"m.safetensors.tmp-%ld-Zz0000", 0, 2 * 86400, 0, 1},   /* a day old, its pid reused: gone */
        {"m.safetensors.tmp-%ld-qwerty", 0, 120, 0, 0},         /* its writer still runs */
        {"m.safetensors.tmp-%ld-fresh1", 1, 0, 0, 0},           /* just written */
        {"m.safetensors.tmp-backup", 1, 2 * 86400, 0, 0},       /* not a name the writer makes */
        {"m.safetensors.tmp-%ld-aB3dE9x", 1, 2 * 86400, 0, 0},  /* nor this */
        {"other.safetensors.tmp-%ld-aB3dE9", 1, 120, 0, 0},     /* another target's */
        {"m.safetensors.tmp-%ld-dir000", 1, 2 * 86400, 1, 0},   /* a directory */
    };
    char names[8][96];
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        snprintf(names[i], sizeof names[i], c[i].fmt, c[i].use_dead ? dead : live);
        make_old(names[i], c[i].age, c[i].dir);
    }
    /* a symlink of the writer's name to a file of the user's */
    char link[96];
    snprintf(link, sizeof link, "m.safetensors.tmp-%ld-sym000", dead);
    write_bytes(tmp_path("precious"), "y", 1);
    cr_assert_eq(symlink(tmp_path("precious"), tmp_path(link)), 0);
    struct timespec ts[2] = {{time(NULL) - 2 * 86400, 0}, {time(NULL) - 2 * 86400, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, tmp_path(link), ts, AT_SYMLINK_NOFOLLOW), 0);

    cr_assert_eq(recur_model_save(a, tmp_path("m.safetensors")), RECUR_OK, "%s", recur_ctx_error(ctx));
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        cr_assert_eq(!exists(names[i]), c[i].gone, "after the save '%s' is %s", names[i],
                     c[i].gone ? "still there" : "gone");
    cr_assert(exists(link) && exists("precious"), "the save removed a symlink or what it points to");

    /* training files save through the same writer */
    char stale[96];
    snprintf(stale, sizeof stale, "t.safetensors.tmp-%ld-aB3dE9", dead);
    make_old(stale, 120, 0);
    recur_file *f;
    cr_assert_eq(recur_file_create(&f), RECUR_OK);
    cr_assert_eq(recur_file_put_meta(f, "app.note", "x"), RECUR_OK);
    cr_assert_eq(recur_file_save(f, tmp_path("t.safetensors")), RECUR_OK, "%s", recur_last_error());
    recur_file_free(f);
    cr_assert(!exists(stale), "recur_file_save left '%s'", stale);
    recur_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* training files: optimizer state                                           */

TestSuite(trainfile, .init = make_tmpdir, .fini = drop_tmpdir);

/* NaN or Inf in optimizer state (or a negative Adam second moment) is
 * refused when loaded, naming the tensor, and the optimizer is untouched;
 * before, it loaded and the next steps made the loss NaN. */
Test(trainfile, bad_optimizer_state_refused) {
    recur_ctx *ctx = new_ctx();
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = 3, .hidden_size = 4, .num_layers = 1},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = 5, .head = RECUR_HEAD_ALL, .output_size = 5};
    recur_net *net;
    cr_assert_eq(recur_net_create(ctx, &d, &net), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_optim_desc od = {.kind = RECUR_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    recur_optim *opt;
    cr_assert_eq(recur_optim_create(&net, 1, &od, &opt), RECUR_OK, "%s", recur_ctx_error(ctx));
    static const struct {
        const char *tensor;
        size_t at;
        float v;
        const char *needle;
    } c[] = {
        {"optim.rnn.l0.m", 2, NAN, "tensor 'optim.rnn.l0.m' element 2 is NaN"},
        {"optim.own.v", 0, INFINITY, "tensor 'optim.own.v' element 0 is +Inf"},
        {"optim.own.m", 7, -INFINITY, "tensor 'optim.own.m' element 7 is -Inf"},
        {"optim.rnn.l0.v", 5, -1.0f, "tensor 'optim.rnn.l0.v' element 5 is negative"},
    };
    const char *path = tmp_path("t.safetensors");
    for (size_t i = 0; i <= sizeof c / sizeof c[0]; i++) {
        recur_file *f;
        cr_assert_eq(recur_file_create(&f), RECUR_OK);
        cr_assert_eq(recur_file_put_optim(f, opt, NULL), RECUR_OK, "%s", recur_last_error());
        cr_assert_eq(recur_file_put_meta(f, "optim.steps", "3"), RECUR_OK);
        if (i < sizeof c / sizeof c[0]) {
            int64_t shape[4];
            cr_assert_eq(recur_file_tensor(f, c[i].tensor, NULL, shape, NULL, 0), RECUR_OK, "%s", c[i].tensor);
            float *v = test_floats((size_t)shape[0]);
            cr_assert_eq(recur_file_tensor(f, c[i].tensor, NULL, NULL, v, (size_t)shape[0]), RECUR_OK);
            v[c[i].at] = c[i].v;
            cr_assert_eq(recur_file_put_tensor(f, c[i].tensor, 1, shape, v), RECUR_OK);
            free(v);
        }
        cr_assert_eq(recur_file_save(f, path), RECUR_OK, "%s", recur_last_error());
        recur_file_free(f);
        cr_assert_eq(recur_file_open(path, &f), RECUR_OK, "%s", recur_last_error());
        recur_status st = recur_file_get_optim(f, opt, NULL);
        recur_file_free(f);
        if (i == sizeof c / sizeof c[0]) { /* the same file unharmed loads */
            cr_assert_eq(st, RECUR_OK, "%s", recur_last_error());
            cr_assert_eq(recur_optim_steps(opt), 3);
            break;
        }
        cr_assert_eq(st, RECUR_ERR_FILE_NONFINITE, "%s: %s: %s", c[i].tensor, recur_status_str(st), recur_last_error());
        cr_assert(strstr(recur_last_error(), c[i].needle) && strstr(recur_last_error(), path),
                  "the message does not say '%s' and the file: %s", c[i].needle, recur_last_error());
        cr_assert_eq(recur_optim_steps(opt), 0, "a refused state changed the optimizer");
    }
    recur_optim_free(opt);
    recur_net_free(net);
    recur_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* PyTorch, both ways                                                        */

static const char *fixture_dir(void) {
    const char *d = getenv("RECUR_MODELFILE_FIXTURES");
    cr_assert(d, "RECUR_MODELFILE_FIXTURES is not set (meson test sets it)");
    return d;
}

static float *floats_of(const fixture *f, const char *name, size_t want) {
    size_t n;
    const double *d = fixture_array(f, name, &n);
    cr_assert(d, "no array '%s'", name);
    cr_assert_eq(n, want, "array %s has %zu values, expected %zu", name, n, want);
    float *v = test_floats(n);
    for (size_t i = 0; i < n; i++) v[i] = (float)d[i];
    return v;
}

/* 1e-5 relative, with a floor of 1e-5 of the array's largest value (float32
 * against float64, as test-torch.c). */
static void check_close(const char *what, const char *name, const float *got, const fixture *f) {
    size_t n;
    const double *want = fixture_array(f, name, &n);
    cr_assert(want, "%s: no array '%s'", what, name);
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(want[i]));
    char label[256];
    snprintf(label, sizeof label, "%s: %s", what, name);
    ASSERT_CLOSE(label, got, want, n, 1e-5, 1e-5 * m + 1e-7);
}

struct run_out {
    float *y, *hT, *cT, *dx, *dh0, *dc0, *dw;
};

/* Forward (training) and backward of m on the fixture's batch. */
static void run_fixture(recur_model *m, recur_ctx *ctx, const fixture *f, struct run_out *o) {
    int T = f->T, N = f->N, I = f->I, H = f->H, L = f->L, D = f->D, two = !strcmp(f->cell, "lstm");
    size_t S = (size_t)L * D * N * H, O = (size_t)D * H;
    int *lengths = calloc((size_t)N, sizeof *lengths);
    const double *ld = fixture_array(f, "lengths", NULL);
    cr_assert(ld);
    for (int n = 0; n < N; n++) lengths[n] = (int)ld[n];
    float *x = floats_of(f, "x", (size_t)T * N * I), *h0 = floats_of(f, "h0", S);
    float *c0 = two ? floats_of(f, "c0", S) : NULL, *dy = floats_of(f, "dy", (size_t)T * N * O);
    float *dhT = floats_of(f, "dhT", S), *dcT = two ? floats_of(f, "dcT", S) : NULL;
    o->y = test_floats((size_t)T * N * O);
    o->hT = test_floats(S);
    o->cT = two ? test_floats(S) : NULL;
    o->dx = test_floats((size_t)T * N * I);
    o->dh0 = test_floats(S);
    o->dc0 = two ? test_floats(S) : NULL;
    recur_model_io io = {.T = T, .N = N, .lengths = lengths, .x = x, .h0 = h0, .c0 = c0, .y = o->y, .hT = o->hT,
                         .cT = o->cT};
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK, "forward: %s", recur_ctx_error(ctx));
    recur_model_grad_io g = {.dy = dy, .dhT = dhT, .dcT = dcT, .dx = o->dx, .dh0 = o->dh0, .dc0 = o->dc0};
    cr_assert_eq(recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "backward: %s",
                 recur_ctx_error(ctx));
    size_t nw;
    float *w = weights_of(m, &nw);
    free(w);
    o->dw = test_floats(nw);
    size_t at = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info info;
        recur_model_param_info(m, i, &info);
        cr_assert_eq(recur_model_grad_get(m, info.name, o->dw + at, info.count), RECUR_OK);
        at += info.count;
    }
    free(lengths);
    free(x);
    free(h0);
    free(c0);
    free(dy);
    free(dhT);
    free(dcT);
}

static void free_out(struct run_out *o) {
    free(o->y);
    free(o->hT);
    free(o->cT);
    free(o->dx);
    free(o->dh0);
    free(o->dc0);
    free(o->dw);
}

static void check_out(const char *what, const fixture *f, const struct run_out *o) {
    check_close(what, "y", o->y, f);
    check_close(what, "hT", o->hT, f);
    check_close(what, "dx", o->dx, f);
    check_close(what, "dh0", o->dh0, f);
    check_close(what, "dw", o->dw, f);
    if (o->cT) {
        check_close(what, "cT", o->cT, f);
        check_close(what, "dc0", o->dc0, f);
    }
}

/* recur_model_load of a file PyTorch wrote through docs/pytorch.md's
 * export_module reproduces PyTorch's outputs and gradients. */
static void torch_case(const char *name, const char *cell, const char *variant) {
    char sf[1024], txt[1024];
    snprintf(sf, sizeof sf, "%s/torch-%s.safetensors", fixture_dir(), name);
    snprintf(txt, sizeof txt, "%s/torch-%s.txt", fixture_dir(), name);
    fixture f;
    cr_assert_eq(fixture_load(txt, &f), 0, "cannot load %s", txt);
    cr_assert_str_eq(f.cell, cell);
    recur_ctx *ctx = new_ctx();
    recur_model *m;
    cr_assert_eq(recur_model_load(ctx, sf, RECUR_LOAD_CHECK_FINITE, &m), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_model_desc d;
    recur_model_desc_get(m, &d);
    cr_assert_str_eq(d.cell, cell);
    cr_assert_str_eq(d.variant ? d.variant : "-", variant);
    cr_assert(d.input_size == f.I && d.hidden_size == f.H && d.num_layers == f.L);
    cr_assert_eq(d.direction, RECUR_DIR_BIDI_CONCAT);
    cr_assert_eq(d.dropout, 0.0f);
    /* the weights are exactly the module's */
    size_t nw, nf;
    float *w = weights_of(m, &nw);
    const double *fw = fixture_array(&f, "w", &nf);
    cr_assert_eq(nw, nf);
    for (size_t i = 0; i < nw; i++) cr_assert_eq((double)w[i], fw[i], "%s: weight %zu", sf, i);
    free(w);
    struct run_out o;
    run_fixture(m, ctx, &f, &o);
    check_out(sf, &f, &o);
    free_out(&o);
    recur_ctx_free(ctx);
    fixture_free(&f);
}

Test(torch, lstm) { torch_case("lstm", "lstm", "-"); }
Test(torch, gru) { torch_case("gru", "gru-lbr", "-"); }
Test(torch, rnn_tanh) { torch_case("rnn-tanh", "rnn", "tanh"); }
Test(torch, rnn_relu) { torch_case("rnn-relu", "rnn", "relu"); }
/* modules converted with .bfloat16() / .half() and saved in BF16 / F16: the
 * weights load exactly, the outputs and gradients match torch's (float64
 * from the same weights widened) within the same 1e-5 relative */
Test(torch, lstm_bf16) { torch_case("lstm-bf16", "lstm", "-"); }
Test(torch, gru_f16) { torch_case("gru-f16", "gru-lbr", "-"); }

/* ---- recur-written files that PyTorch loads ---- */

static void put_array(FILE *fp, const char *name, const float *v, size_t n) {
    fprintf(fp, "%s %zu", name, n);
    for (size_t i = 0; i < n; i++) fprintf(fp, " %.17g", (double)v[i]);
    fputc('\n', fp);
}

/* Writes the fixture the recur-<name>.txt way: the batch drawn from the seed,
 * recur's outputs and gradients. */
static void write_recur_fixture(const char *path, recur_model *m, recur_ctx *ctx, const char *cell,
                                const char *variant, uint64_t seed) {
    const int T = 6, N = 4, I = 5, H = 6, L = 2, D = 2, two = !strcmp(cell, "lstm");
    const size_t S = (size_t)L * D * N * H, TNO = (size_t)T * N * D * H;
    const int lengths[4] = {6, 3, 5, 1};
    test_rng r = {seed};
    float *x = test_floats((size_t)T * N * I), *h0 = test_floats(S), *c0 = test_floats(S), *dy = test_floats(TNO);
    float *dhT = test_floats(S), *dcT = test_floats(S);
    for (size_t i = 0; i < (size_t)T * N * I; i++) x[i] = (float)test_uniform(&r, -1, 1);
    for (size_t i = 0; i < S; i++) h0[i] = (float)test_uniform(&r, -1, 1);
    for (size_t i = 0; i < S; i++) c0[i] = (float)test_uniform(&r, -1, 1);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < D * H; k++)
                dy[((size_t)t * N + n) * D * H + k] = t < lengths[n] ? (float)test_uniform(&r, -1, 1) : 0.0f;
    for (size_t i = 0; i < S; i++) dhT[i] = (float)test_uniform(&r, -1, 1);
    for (size_t i = 0; i < S; i++) dcT[i] = (float)test_uniform(&r, -1, 1);
    /* outputs through the same code the test then checks */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    cr_assert(fp);
    fprintf(fp, "# generated by tests/test-modelfile.c (RECUR_MODELFILE_REGEN=1, recur %s); do not edit\n",
            RECUR_VERSION_STRING);
    fprintf(fp, "# recur's outputs and gradients for the model of the .safetensors of the same name; "
                "lengths 6 3 5 1; checked in PyTorch by gen_safetensors.py --check\n");
    fprintf(fp, "cell %s\nvariant %s\nT %d\nN %d\nI %d\nH %d\nL %d\nD %d\n", cell, variant, T, N, I, H, L, D);
    float lf[4] = {6, 3, 5, 1};
    put_array(fp, "lengths", lf, 4);
    size_t nw;
    float *w = weights_of(m, &nw);
    put_array(fp, "w", w, nw);
    put_array(fp, "x", x, (size_t)T * N * I);
    put_array(fp, "h0", h0, S);
    if (two) put_array(fp, "c0", c0, S);
    put_array(fp, "dy", dy, TNO);
    put_array(fp, "dhT", dhT, S);
    if (two) put_array(fp, "dcT", dcT, S);
    float *y = test_floats(TNO), *hT = test_floats(S), *cT = test_floats(S), *dx = test_floats((size_t)T * N * I);
    float *dh0 = test_floats(S), *dc0 = test_floats(S), *dw = test_floats(nw);
    recur_model_io io = {.T = T, .N = N, .lengths = lengths, .x = x, .h0 = h0, .c0 = two ? c0 : NULL, .y = y,
                         .hT = hT, .cT = two ? cT : NULL};
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_model_grad_io g = {.dy = dy, .dhT = dhT, .dcT = two ? dcT : NULL, .dx = dx, .dh0 = dh0,
                             .dc0 = two ? dc0 : NULL};
    cr_assert_eq(recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    size_t at = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info info;
        recur_model_param_info(m, i, &info);
        recur_model_grad_get(m, info.name, dw + at, info.count);
        at += info.count;
    }
    put_array(fp, "y", y, TNO);
    put_array(fp, "hT", hT, S);
    if (two) put_array(fp, "cT", cT, S);
    put_array(fp, "dx", dx, (size_t)T * N * I);
    put_array(fp, "dh0", dh0, S);
    if (two) put_array(fp, "dc0", dc0, S);
    put_array(fp, "dw", dw, nw);
    cr_assert_eq(fclose(fp), 0);
    cr_assert_eq(rename(tmp, path), 0);
    float *all[] = {x, h0, c0, dy, dhT, dcT, w, y, hT, cT, dx, dh0, dc0, dw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* The recur model of a recur-<name> fixture: 2 layers, bidirectional concat,
 * I = 5, H = 6, weights drawn from the seed. */
static void recur_case(const char *name, const char *cell, const char *variant, uint64_t seed) {
    char sf[1024], txt[1024];
    snprintf(sf, sizeof sf, "%s/recur-%s.safetensors", fixture_dir(), name);
    snprintf(txt, sizeof txt, "%s/recur-%s.txt", fixture_dir(), name);
    recur_ctx *ctx = new_ctx();
    recur_model *m = make_model(ctx, cell, strcmp(variant, "-") ? variant : NULL, 5, 6, 2, RECUR_DIR_BIDI_CONCAT,
                                0.0f, seed, seed);
    const char *regen = getenv("RECUR_MODELFILE_REGEN");
    if (regen && !strcmp(regen, "1")) {
        cr_assert_eq(recur_model_save(m, sf), RECUR_OK, "%s", recur_ctx_error(ctx));
        write_recur_fixture(txt, m, ctx, cell, variant, seed + 1);
        cr_log_warn("wrote %s and %s: now run /usr/bin/python3 tests/fixtures/gen_safetensors.py --check %s %s", sf,
                    txt, sf, txt);
    }
    /* recur still writes these bytes, so PyTorch's check of them holds */
    make_tmpdir();
    const char *p = tmp_path("m.safetensors");
    cr_assert_eq(recur_model_save(m, p), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert(same_file(p, sf),
              "recur no longer writes %s byte for byte: if the format changed on purpose, regenerate with "
              "RECUR_MODELFILE_REGEN=1 and rerun gen_safetensors.py --check",
              sf);
    drop_tmpdir();
    /* the committed file loads and still gives the outputs PyTorch checked */
    fixture f;
    cr_assert_eq(fixture_load(txt, &f), 0, "cannot load %s", txt);
    recur_model *l;
    cr_assert_eq(recur_model_load(ctx, sf, RECUR_LOAD_CHECK_FINITE, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    expect_same_desc(m, l, sf);
    struct run_out o;
    run_fixture(l, ctx, &f, &o);
    check_out(txt, &f, &o);
    free_out(&o);
    fixture_free(&f);
    recur_ctx_free(ctx);
}

Test(torch, recur_lstm) { recur_case("lstm", "lstm", "-", 201); }
Test(torch, recur_gru_lbr) { recur_case("gru-lbr", "gru-lbr", "-", 202); }
Test(torch, recur_rnn_tanh) { recur_case("rnn-tanh", "rnn", "tanh", 203); }

/* docs/pytorch.md shows tests/fixtures/recur_safetensors.py, verbatim. */
Test(torch, docs_show_the_module) {
    const char *root = getenv("RECUR_SOURCE_ROOT");
    cr_assert(root, "RECUR_SOURCE_ROOT is not set (meson test sets it)");
    char doc[1024], mod[1024];
    snprintf(doc, sizeof doc, "%s/docs/pytorch.md", root);
    snprintf(mod, sizeof mod, "%s/tests/fixtures/recur_safetensors.py", root);
    size_t nd, nm;
    char *d = (char *)read_bytes(doc, &nd), *m = (char *)read_bytes(mod, &nm);
    d[nd] = 0;
    m[nm] = 0;
    int found = 0;
    for (char *at = strstr(d, "```python\n"); at && !found; at = strstr(at + 1, "```python\n")) {
        char *body = at + 10, *end = strstr(body, "```");
        if (end && (size_t)(end - body) == nm && !memcmp(body, m, nm)) found = 1;
    }
    cr_assert(found, "no ```python block of %s is %s byte for byte", doc, mod);
    free(d);
    free(m);
}

/* ------------------------------------------------------------------------ */
/* the fuzz target's seed corpus                                             */

/* What recur_model_load must say of each committed seed (with and without
 * RECUR_LOAD_CHECK_FINITE); files not listed (say, a crash the fuzzer found,
 * added later) must only load or fail cleanly. */
static const struct {
    const char *name;
    recur_status plain, finite;
} seeds[] = {
    {"valid-lstm-forward", RECUR_OK, RECUR_OK},
    {"valid-lstm-bidi-target", RECUR_OK, RECUR_OK},
    {"valid-gru-bidi-sum", RECUR_OK, RECUR_OK},
    {"valid-rnn-relu-reverse", RECUR_OK, RECUR_OK},
    {"valid-gru-lbr-minimal-metadata", RECUR_OK, RECUR_OK},
    {"plain-state-dict", RECUR_ERR_FILE_METADATA, RECUR_ERR_FILE_METADATA},
    {"bad-truncated", RECUR_ERR_FILE_TRUNCATED, RECUR_ERR_FILE_TRUNCATED},
    {"bad-short", RECUR_ERR_FILE_TRUNCATED, RECUR_ERR_FILE_TRUNCATED},
    {"bad-header-length", RECUR_ERR_FILE_HEADER, RECUR_ERR_FILE_HEADER},
    {"bad-json", RECUR_ERR_FILE_JSON, RECUR_ERR_FILE_JSON},
    {"bad-dtype", RECUR_ERR_FILE_DTYPE, RECUR_ERR_FILE_DTYPE},
    {"bad-shape", RECUR_ERR_FILE_SHAPE, RECUR_ERR_FILE_SHAPE},
    {"bad-offsets-overlap", RECUR_ERR_FILE_OFFSETS, RECUR_ERR_FILE_OFFSETS},
    {"bad-metadata", RECUR_ERR_FILE_METADATA, RECUR_ERR_FILE_METADATA},
    {"bad-nan", RECUR_OK, RECUR_ERR_FILE_NONFINITE},
    {"bad-metadata-decimal-comma", RECUR_ERR_FILE_METADATA, RECUR_ERR_FILE_METADATA},
    {"valid-lstm-bidi-dash", RECUR_OK, RECUR_OK},
    {"valid-lstm-bf16", RECUR_OK, RECUR_OK},
    {"valid-gru-lbr-f16", RECUR_OK, RECUR_OK},
    {"valid-lstm-proj", RECUR_OK, RECUR_OK},
    {"bad-proj-size", RECUR_ERR_FILE_METADATA, RECUR_ERR_FILE_METADATA},
};

/* The crafted training checkpoints of the corpus (make_corpus.py's
 * training()): what recur_file_get_net and then recur_file_get_optim (Adam)
 * say of each. */
static const struct {
    const char *name;
    recur_status net, optim;
    const char *needle;
} train_seeds[] = {
    {"train-adam-state.safetensors", RECUR_OK, RECUR_OK, NULL},
    {"train-nan-optim-state.safetensors", RECUR_OK, RECUR_ERR_FILE_NONFINITE, "'optim.rnn.l0.m' element 3 is NaN"},
    {"train-negative-adam-v.safetensors", RECUR_OK, RECUR_ERR_FILE_NONFINITE, "'optim.own.v' element 0 is negative"},
    {"train-decimal-comma.safetensors", RECUR_ERR_FILE_METADATA, RECUR_OK, "dropout '0,25'"},
};

Test(corpus, training_checkpoints) {
    const char *root = getenv("RECUR_SOURCE_ROOT");
    cr_assert(root, "RECUR_SOURCE_ROOT is not set (meson test sets it)");
    recur_ctx *ctx = new_ctx();
    recur_optim_desc od = {.kind = RECUR_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    for (size_t i = 0; i < sizeof train_seeds / sizeof train_seeds[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/tests/fuzz/corpus/%s", root, train_seeds[i].name);
        recur_file *f;
        cr_assert_eq(recur_file_open(p, &f), RECUR_OK, "%s", recur_last_error());
        recur_net *net = NULL;
        recur_status st = recur_file_get_net(f, "", ctx, RECUR_LOAD_CHECK_FINITE, &net);
        cr_assert_eq(st, train_seeds[i].net, "%s: recur_file_get_net: %s: %s", p, recur_status_str(st),
                     recur_last_error());
        if (st == RECUR_OK) {
            recur_optim *o;
            cr_assert_eq(recur_optim_create(&net, 1, &od, &o), RECUR_OK, "%s", recur_ctx_error(ctx));
            st = recur_file_get_optim(f, o, NULL);
            cr_assert_eq(st, train_seeds[i].optim, "%s: recur_file_get_optim: %s: %s", p, recur_status_str(st),
                         recur_last_error());
            cr_assert_eq(recur_optim_steps(o), st == RECUR_OK ? 4 : 0);
            recur_optim_free(o);
            recur_net_free(net);
        }
        if (train_seeds[i].needle)
            cr_assert(strstr(recur_last_error(), train_seeds[i].needle) && strstr(recur_last_error(), p),
                      "the message does not name '%s' and the file: %s", train_seeds[i].needle, recur_last_error());
        recur_file_free(f);
    }
    recur_ctx_free(ctx);
}

Test(corpus, loads_without_crash) {
    const char *root = getenv("RECUR_SOURCE_ROOT");
    cr_assert(root, "RECUR_SOURCE_ROOT is not set (meson test sets it)");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", root);
    DIR *dp = opendir(dir);
    cr_assert(dp, "cannot open %s", dir);
    recur_ctx *ctx = new_ctx();
    /* fuzz-load's load_weights target */
    recur_model *target = make_model(ctx, "lstm", NULL, 2, 3, 2, RECUR_DIR_BIDI_CONCAT, 0, 0, 1);
    size_t nw;
    float *w = weights_of(target, &nw);
    int n = 0, listed = 0, weights_ok = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int k = -1;
        for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
            if (!strcmp(seeds[i].name, e->d_name)) k = (int)i;
        listed += k >= 0;
        for (uint32_t flags = 0; flags < 2; flags++) {
            recur_model *m = NULL;
            recur_status st = recur_model_load(ctx, p, flags, &m);
            cr_assert(st == RECUR_OK || (st <= RECUR_ERR_FILE_TRUNCATED && st >= RECUR_ERR_FILE_NONFINITE),
                      "%s: %s: %s", p, recur_status_str(st), recur_ctx_error(ctx));
            if (k >= 0) {
                recur_status want = flags ? seeds[k].finite : seeds[k].plain;
                cr_assert_eq(st, want, "%s (flags %u): %s, expected %s: %s", e->d_name, flags, recur_status_str(st),
                             recur_status_str(want), recur_ctx_error(ctx));
            }
            if (st == RECUR_OK) {
                cr_assert(m);
                recur_model_free(m);
            } else {
                cr_assert_null(m);
                expect_msg(ctx, p, NULL, e->d_name);
            }
            st = recur_model_load_weights(target, p, flags);
            if (st != RECUR_OK) {
                expect_weights(target, w, nw, e->d_name);
            } else {
                weights_ok++;
                free(w);
                w = weights_of(target, &nw);
            }
        }
        n++;
    }
    closedir(dp);
    cr_assert_eq(listed, (int)(sizeof seeds / sizeof seeds[0]), "only %d of the listed seeds are in %s", listed, dir);
    /* valid-lstm-bidi-target and plain-state-dict, each with and without the check */
    cr_assert_geq(weights_ok, 4, "load_weights took only %d seeds", weights_ok);
    cr_log_info("%d files in %s", n, dir);
    free(w);
    recur_ctx_free(ctx);
}
