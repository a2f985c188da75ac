/*
 * test-locale.c: files under a decimal-comma locale. An application that
 * calls setlocale(LC_ALL, "de_DE.UTF-8") prints 0.25 as "0,25"; recur's
 * files must still hold "0.25" and read back the same bits, whatever locale
 * wrote them and whatever locale reads them (core/schema.c's numbers).
 *
 *   model     recur_model_save / recur_model_load
 *   training  a net and Adam state after a step (recur_file_put_net/_optim),
 *             saved, loaded into a new net and optimizer, saved again: the
 *             same tensors and metadata bit for bit; and a file written in
 *             the "C" locale read under de_DE
 *
 * de_DE.UTF-8 must be installed (.ci/run generates it): without it the tests
 * fail when CI=true and are skipped otherwise.
 */
#include <criterion/criterion.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recur/recur-train.h"

static void decimal_comma(void) {
    if (!setlocale(LC_ALL, "de_DE.UTF-8")) {
        const char *ci = getenv("CI");
        if (ci && !strcmp(ci, "true"))
            cr_assert_fail("the locale de_DE.UTF-8 is not installed: .ci/run must generate it (locale-gen)");
        cr_skip_test("the locale de_DE.UTF-8 is not installed (as root: sed -i 's/^# *de_DE.UTF-8/de_DE.UTF-8/' "
                     "/etc/locale.gen && locale-gen)");
    }
    char buf[16];
    snprintf(buf, sizeof buf, "%.2f", 0.25);
    cr_assert_str_eq(buf, "0,25", "de_DE.UTF-8 does not print a decimal comma: the test would prove nothing");
}

static char *tmp_file(void) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/recur-locale-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    return path;
}

/* The __metadata__ object of a safetensors file, as text. */
static char *metadata_of(const char *path) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "cannot open %s", path);
    unsigned char len8[8];
    cr_assert_eq(fread(len8, 1, 8, fp), 8u);
    size_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    char *h = calloc(n + 1, 1);
    cr_assert(h);
    cr_assert_eq(fread(h, 1, n, fp), n);
    fclose(fp);
    char *m = strstr(h, "\"__metadata__\":{");
    cr_assert(m, "%s has no __metadata__", path);
    char *end = strchr(m, '}');
    cr_assert(end);
    *end = 0;
    memmove(h, m, strlen(m) + 1);
    return h;
}

/* Every value of the metadata text: no ',' in any of them. */
static void no_commas(const char *path) {
    char *m = metadata_of(path);
    for (char *at = strstr(m, "\":\""); at; at = strstr(at, "\":\"")) {
        at += 3;
        char *q = strchr(at, '"');
        cr_assert(q);
        *q = 0;
        cr_assert(!strchr(at, ','), "%s: a metadata value is '%s'", path, at);
        at = q + 1;
    }
    free(m);
}

Test(model, saves_and_loads_with_points) {
    decimal_comma();
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    recur_model_desc d = {.cell = "lstm", .input_size = 3, .hidden_size = 4, .num_layers = 2,
                          .direction = RECUR_DIR_BIDI_CONCAT, .dropout = 0.3f, .seed = 9};
    recur_model *m, *l;
    cr_assert_eq(recur_model_create(ctx, &d, &m), RECUR_OK, "%s", recur_ctx_error(ctx));
    const char *path = tmp_file();
    cr_assert_eq(recur_model_save(m, path), RECUR_OK, "%s", recur_ctx_error(ctx));
    char *meta = metadata_of(path);
    cr_assert(strstr(meta, "\"dropout\":\"0.3\""), "%s", meta);
    free(meta);
    no_commas(path);
    cr_assert_eq(recur_model_load(ctx, path, RECUR_LOAD_CHECK_FINITE, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_model_desc got;
    cr_assert_eq(recur_model_desc_get(l, &got), RECUR_OK);
    cr_assert(!memcmp(&got.dropout, &d.dropout, sizeof d.dropout), "dropout %a came back as %a", (double)d.dropout,
              (double)got.dropout);
    unlink(path);
    recur_ctx_free(ctx);
}

struct trained {
    recur_ctx *ctx;
    recur_net *net;
    recur_optim *opt;
};

static const recur_optim_desc adam = {.kind = RECUR_OPTIM_ADAM, .lr = 0.003f, .beta1 = 0.9f, .beta2 = 0.999f,
                                      .eps = 1e-8f, .weight_decay = 0.01f, .clip_norm = 1.5f};

/* A net with dropout 0.3 and its Adam after one step. */
static void train_one_step(struct trained *t) {
    cr_assert_eq(recur_ctx_create(&t->ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    recur_net_desc d = {.model = {.cell = "gru", .input_size = 3, .hidden_size = 4, .num_layers = 2,
                                  .direction = RECUR_DIR_FORWARD, .dropout = 0.3f, .seed = 5},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = 6, .head = RECUR_HEAD_ALL, .output_size = 6};
    cr_assert_eq(recur_net_create(t->ctx, &d, &t->net), RECUR_OK, "%s", recur_ctx_error(t->ctx));
    cr_assert_eq(recur_net_init(t->net, RECUR_INIT_UNIFORM, 3), RECUR_OK);
    cr_assert_eq(recur_optim_create(&t->net, 1, &adam, &t->opt), RECUR_OK, "%s", recur_ctx_error(t->ctx));
    int32_t tokens[12] = {1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0}, targets[12] = {2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1};
    recur_net_batch b = {.T = 4, .N = 3, .tokens = tokens, .targets = targets};
    cr_assert_eq(recur_net_forward(t->net, RECUR_MODE_TRAINING, &b, NULL, NULL), RECUR_OK, "%s",
                 recur_ctx_error(t->ctx));
    cr_assert_eq(recur_net_backward(t->net, &b, NULL, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(t->ctx));
    cr_assert_eq(recur_optim_step(t->opt, NULL), RECUR_OK, "%s", recur_ctx_error(t->ctx));
}

static void save_checkpoint(recur_net *net, recur_optim *opt, const char *path) {
    recur_file *f;
    cr_assert_eq(recur_file_create(&f), RECUR_OK);
    cr_assert_eq(recur_file_put_net(f, "", net), RECUR_OK, "%s", recur_last_error());
    cr_assert_eq(recur_file_put_optim(f, opt, NULL), RECUR_OK, "%s", recur_last_error());
    cr_assert_eq(recur_file_save(f, path), RECUR_OK, "%s", recur_last_error());
    recur_file_free(f);
}

/* Open path, make a net and an Adam from it on t's context; the net's
 * dropout is 0.3 again, bit for bit. */
static void load_checkpoint(const struct trained *t, const char *path, struct trained *out) {
    out->ctx = t->ctx;
    recur_file *f;
    cr_assert_eq(recur_file_open(path, &f), RECUR_OK, "%s", recur_last_error());
    cr_assert_eq(recur_file_get_net(f, "", out->ctx, RECUR_LOAD_CHECK_FINITE, &out->net), RECUR_OK, "%s",
                 recur_last_error());
    cr_assert_eq(recur_optim_create(&out->net, 1, &adam, &out->opt), RECUR_OK, "%s", recur_ctx_error(out->ctx));
    cr_assert_eq(recur_file_get_optim(f, out->opt, NULL), RECUR_OK, "%s", recur_last_error());
    recur_file_free(f);
    recur_net_desc d;
    cr_assert_eq(recur_net_desc_get(out->net, &d), RECUR_OK);
    cr_assert(d.model.dropout == 0.3f, "dropout came back as %a", (double)d.model.dropout);
}

static void trained_free(struct trained *t, int with_ctx) {
    recur_optim_free(t->opt);
    recur_net_free(t->net);
    if (with_ctx) recur_ctx_free(t->ctx);
}

static size_t file_size(const char *path) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return (size_t)n;
}

static void *bytes_of(const char *path, size_t n) {
    void *b = malloc(n);
    FILE *fp = fopen(path, "rb");
    cr_assert(b && fp);
    cr_assert_eq(fread(b, 1, n, fp), n);
    fclose(fp);
    return b;
}

Test(training, checkpoint_round_trips_with_points) {
    decimal_comma();
    struct trained t;
    train_one_step(&t);
    char a[64], b[64];
    snprintf(a, sizeof a, "%s", tmp_file());
    snprintf(b, sizeof b, "%s", tmp_file());
    save_checkpoint(t.net, t.opt, a);
    no_commas(a);
    recur_file *f;
    cr_assert_eq(recur_file_open(a, &f), RECUR_OK, "%s", recur_last_error());
    const char *const want[][2] = {{"dropout", "0.3"},     {"optim.lr", "0.003"},           {"optim.beta2", "0.999"},
                                   {"optim.eps", "1e-08"}, {"optim.weight_decay", "0.01"}, {"optim.clip_norm", "1.5"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = recur_file_meta(f, want[i][0]);
        cr_assert(v && !strcmp(v, want[i][1]), "metadata %s is '%s', expected '%s'", want[i][0], v ? v : "(none)",
                  want[i][1]);
    }
    recur_file_free(f);

    /* load it into a new net and optimizer and save those: the same file */
    struct trained t2;
    load_checkpoint(&t, a, &t2);
    save_checkpoint(t2.net, t2.opt, b);
    size_t na = file_size(a), nb = file_size(b);
    void *ba = bytes_of(a, na), *bb = bytes_of(b, nb);
    cr_assert(na == nb && !memcmp(ba, bb, na), "a checkpoint saved, loaded and saved again differs (%zu, %zu bytes)",
              na, nb);
    free(ba);
    free(bb);
    unlink(a);
    unlink(b);
    trained_free(&t2, 0);
    trained_free(&t, 1);
}

/* Written where '.' is the point, read where ',' is. */
Test(training, c_locale_file_reads_under_decimal_comma) {
    struct trained t;
    train_one_step(&t);
    const char *path = tmp_file();
    save_checkpoint(t.net, t.opt, path);
    decimal_comma();
    struct trained t2;
    load_checkpoint(&t, path, &t2);
    unlink(path);
    trained_free(&t2, 0);
    trained_free(&t, 1);
}
