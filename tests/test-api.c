/*
 * test-api.c: bad arguments to every public function of recur.h.
 *
 * Each failing call must return the status the header names, leave a
 * non-empty detail message that names the offending value (on the context
 * when there is one, and the same text per thread for recur_last_error()),
 * write none of its outputs, and not crash. Free functions accept NULL, and
 * recur_ctx_free frees the layers still alive (run under ASan: no leak).
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "recur/recur-train.h"
#include "recur/recur.h"

/* ---- helpers ---- */

#define SENTINEL 12345.5f

static const char *msg_of(const recur_ctx *ctx) { return ctx ? recur_ctx_error(ctx) : recur_last_error(); }

/*
 * The call returned `want`; the message (the context's when ctx is given, the
 * thread's otherwise) is non-empty and contains every needle; with a context
 * the thread's message is the same text.
 */
static void expect_err_(const recur_ctx *ctx, recur_status got, recur_status want, const char *call, int line,
                        const char *const *needles) {
    const char *msg = msg_of(ctx);
    cr_assert_eq(got, want, "line %d: %s returned %s, expected %s (message: '%s')", line, call,
                 recur_status_str(got), recur_status_str(want), msg ? msg : "(NULL)");
    cr_assert(msg != NULL, "line %d: %s: the message is NULL", line, call);
    cr_assert(*msg, "line %d: %s: the %s message is empty (the thread's: '%s')", line, call,
              ctx ? "context's" : "thread's", recur_last_error());
    for (size_t i = 0; needles[i]; i++)
        cr_assert(strstr(msg, needles[i]), "line %d: %s: '%s' is not in the message '%s'", line, call, needles[i],
                  msg);
    if (ctx)
        cr_assert_str_eq(recur_last_error(), msg, "line %d: %s: the thread's message differs from the context's",
                         line, call);
}

/* EXPECT_ERR(ctx or NULL, call, status, needle, ...): at least one needle ("" for none). */
#define EXPECT_ERR(ctx, call, want, ...)                                                                    \
    do {                                                                                                    \
        recur_status got_ = (call);                                                                         \
        expect_err_((ctx), got_, (want), #call, __LINE__, (const char *const[]){__VA_ARGS__, NULL});       \
    } while (0)

#define EXPECT_OK TEST_OK

/* A message with printf formatting, for needles that hold numbers. */
static const char *fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static const char *fmt(char *buf, size_t len, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, len, f, ap);
    va_end(ap);
    return buf;
}

static recur_ctx *ctx_new(const char *device) {
    recur_ctx *ctx = NULL;
    recur_status st = recur_ctx_create(&ctx, device);
    cr_assert_eq(st, RECUR_OK, "recur_ctx_create('%s'): %s: %s", device ? device : "(NULL)", recur_status_str(st),
                 recur_last_error());
    cr_assert_not_null(ctx);
    return ctx;
}

static recur_layer *layer_new(recur_ctx *ctx, const char *cell, const char *variant, int I, int H) {
    recur_layer_desc d = {.cell = cell, .variant = variant, .input_size = I, .hidden_size = H};
    recur_layer *l = NULL;
    recur_status st = recur_layer_create(ctx, &d, &l);
    cr_assert_eq(st, RECUR_OK, "layer %s I %d H %d: %s: %s", cell, I, H, recur_status_str(st), recur_ctx_error(ctx));
    cr_assert_not_null(l);
    return l;
}

static float *sentinels(size_t n) {
    float *p = test_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = SENTINEL;
    return p;
}

/* Every element still holds the sentinel: a failed call wrote nothing. */
static void expect_untouched(const float *p, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(p[i] == SENTINEL, "%s[%zu] was written (%g) by a failed call", what, i, (double)p[i]);
}

static float *randoms(size_t n, uint64_t seed) {
    test_rng r = {seed};
    float *p = test_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = (float)test_uniform(&r, -0.5, 0.5);
    return p;
}

/* Whether `selector` is among the devices (so the CPU runs that ISA). */
static int have_device(const char *selector) {
    recur_device_info info[64];
    size_t n = 0;
    cr_assert_eq(recur_devices(info, 64, &n), RECUR_OK);
    for (size_t i = 0; i < n && i < 64; i++)
        if (strcmp(info[i].selector, selector) == 0) return 1;
    return 0;
}

/* ---- status names ---- */

Test(api, status_str_every_status) {
    static const struct {
        recur_status s;
        const char *name;
    } all[] = {
        {RECUR_OK, "RECUR_OK"},
        {RECUR_ERR_NULL, "RECUR_ERR_NULL"},
        {RECUR_ERR_ARG, "RECUR_ERR_ARG"},
        {RECUR_ERR_SHAPE, "RECUR_ERR_SHAPE"},
        {RECUR_ERR_BUFFER_SIZE, "RECUR_ERR_BUFFER_SIZE"},
        {RECUR_ERR_NO_MEMORY, "RECUR_ERR_NO_MEMORY"},
        {RECUR_ERR_STATE, "RECUR_ERR_STATE"},
        {RECUR_ERR_UNKNOWN_CELL, "RECUR_ERR_UNKNOWN_CELL"},
        {RECUR_ERR_UNKNOWN_NAME, "RECUR_ERR_UNKNOWN_NAME"},
        {RECUR_ERR_DEVICE, "RECUR_ERR_DEVICE"},
        {RECUR_ERR_UNSUPPORTED, "RECUR_ERR_UNSUPPORTED"},
        {RECUR_ERR_DEVICE_MEMORY, "RECUR_ERR_DEVICE_MEMORY"},
        {RECUR_ERR_OPENCL, "RECUR_ERR_OPENCL"},
        {RECUR_ERR_BACKEND, "RECUR_ERR_BACKEND"},
        {RECUR_ERR_PLUGIN_OPEN, "RECUR_ERR_PLUGIN_OPEN"},
        {RECUR_ERR_PLUGIN_SYMBOL, "RECUR_ERR_PLUGIN_SYMBOL"},
        {RECUR_ERR_PLUGIN_INIT, "RECUR_ERR_PLUGIN_INIT"},
        {RECUR_ERR_PLUGIN_ABI, "RECUR_ERR_PLUGIN_ABI"},
        {RECUR_ERR_PLUGIN_SIZE, "RECUR_ERR_PLUGIN_SIZE"},
        {RECUR_ERR_PLUGIN_INVALID, "RECUR_ERR_PLUGIN_INVALID"},
        {RECUR_ERR_PLUGIN_NO_CPU, "RECUR_ERR_PLUGIN_NO_CPU"},
        {RECUR_ERR_PLUGIN_DUPLICATE, "RECUR_ERR_PLUGIN_DUPLICATE"},
        {RECUR_ERR_PLUGIN_PATH, "RECUR_ERR_PLUGIN_PATH"},
        {RECUR_ERR_PLUGIN_UNTRUSTED, "RECUR_ERR_PLUGIN_UNTRUSTED"},
        {RECUR_ERR_IO, "RECUR_ERR_IO"},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = recur_status_str(all[i].s);
        cr_assert_not_null(s, "status %d: NULL name", (int)all[i].s);
        cr_assert_str_eq(s, all[i].name, "status %d", (int)all[i].s);
    }
    static const int unknown[] = {1, 7, -9, -99, -108, -250, -299, -301, 12345, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = recur_status_str((recur_status)unknown[i]);
        cr_assert_not_null(s, "unknown status %d gave NULL", unknown[i]);
        cr_assert(*s, "unknown status %d gave an empty string", unknown[i]);
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++)
            cr_assert(strcmp(s, all[j].name) != 0, "unknown status %d is named %s", unknown[i], s);
    }
}

Test(api, version_is_the_headers) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RECUR_VERSION_MAJOR, RECUR_VERSION_MINOR, RECUR_VERSION_PATCH);
    cr_assert_str_eq(recur_version(), want);
    cr_assert_str_eq(recur_version(), RECUR_VERSION_STRING);
}

Test(api, last_error_never_null) {
    cr_assert_not_null(recur_last_error());
    cr_assert_not_null(recur_ctx_error(NULL));
    recur_ctx *ctx = ctx_new("cpu:scalar");
    cr_assert_not_null(recur_ctx_error(ctx));
    cr_assert_str_eq(recur_ctx_error(ctx), "", "a fresh context has a message");
    recur_ctx_free(ctx);
}

/* ---- logging ---- */

struct log_capture {
    int n_info;
    char last[1024];
};

static void capture(recur_log_level level, const char *message, void *user) {
    struct log_capture *c = user;
    if (level == RECUR_LOG_INFO) {
        c->n_info++;
        snprintf(c->last, sizeof c->last, "%s", message ? message : "(NULL)");
    }
}

Test(api, log_set_routes_the_device_choice) {
    struct log_capture c = {0};
    recur_log_set(capture, &c, RECUR_LOG_INFO);
    recur_ctx *ctx = ctx_new("cpu:scalar");
    cr_assert_eq(c.n_info, 1, "the chosen device was logged %d times at info level", c.n_info);
    cr_assert(strstr(c.last, "cpu:scalar"), "the info message does not name the device: %s", c.last);
    /* Back to stderr, errors only: bad input prints nothing. */
    recur_log_set(NULL, NULL, RECUR_LOG_ERROR);
    recur_layer *l = NULL;
    recur_layer_desc d = {.cell = "rnn", .input_size = 0, .hidden_size = 1};
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_ARG, "input_size 0");
    recur_ctx_free(ctx);
}

/* ---- devices and contexts ---- */

Test(api, devices_bad_args) {
    recur_device_info info[2];
    size_t count = 777;
    EXPECT_ERR(NULL, recur_devices(info, 2, NULL), RECUR_ERR_NULL, "count");
    EXPECT_ERR(NULL, recur_devices(NULL, 2, &count), RECUR_ERR_NULL, "out");
    cr_assert_eq(count, 777, "a failed recur_devices wrote *count");

    EXPECT_OK(NULL, recur_devices(NULL, 0, &count));
    cr_assert_geq(count, 2, "%zu devices: expected at least cpu and cpu:scalar", count);
    /* cap 1 writes exactly one entry. */
    memset(info, 0x5a, sizeof info);
    recur_device_info untouched;
    memset(&untouched, 0x5a, sizeof untouched);
    size_t count1 = 0;
    EXPECT_OK(NULL, recur_devices(info, 1, &count1));
    cr_assert_eq(count1, count, "the total is %zu with cap 1 and %zu with cap 0", count1, count);
    cr_assert(memcmp(&info[1], &untouched, sizeof untouched) == 0, "cap 1 wrote a second entry");
    cr_assert(info[0].selector[0], "the first device has no selector");
    cr_assert(have_device("cpu:scalar"), "cpu:scalar is not listed");
}

Test(api, ctx_create_null_out) {
    EXPECT_ERR(NULL, recur_ctx_create(NULL, "cpu"), RECUR_ERR_NULL, "out");
    EXPECT_ERR(NULL, recur_ctx_create(NULL, NULL), RECUR_ERR_NULL, "out");
}

Test(api, ctx_create_bad_selectors) {
    static const struct {
        const char *sel;
        recur_status want;
        const char *needle;
    } bad[] = {
        {"bogus", RECUR_ERR_DEVICE, "bogus"},
        {"cpu:bogus", RECUR_ERR_DEVICE, "bogus"},
        {"cpu:avx2:extra", RECUR_ERR_DEVICE, "avx2:extra"},
        {"opencl-ish", RECUR_ERR_DEVICE, "opencl-ish"},
#if defined(__x86_64__)
        {"cpu:neon", RECUR_ERR_UNSUPPORTED, "neon"}, /* compiled out on x86-64 */
#elif defined(__aarch64__)
        {"cpu:avx2", RECUR_ERR_UNSUPPORTED, "avx2"},
#endif
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        recur_ctx *ctx = NULL;
        EXPECT_ERR(NULL, recur_ctx_create(&ctx, bad[i].sel), bad[i].want, bad[i].needle, "cpu:scalar");
        cr_assert_null(ctx, "'%s': a context came back from a failed create", bad[i].sel);
    }
    /* An ISA the build has but this CPU lacks is unsupported, with the choices. */
    if (!have_device("cpu:avx512")) {
        recur_ctx *ctx = NULL;
        recur_status st = recur_ctx_create(&ctx, "cpu:avx512");
        cr_assert(st == RECUR_ERR_UNSUPPORTED, "cpu:avx512 on a CPU without it: %s", recur_status_str(st));
        cr_assert(strstr(recur_last_error(), "cpu:scalar"), "%s", recur_last_error());
    }
}

Test(api, ctx_create_case_insensitive) {
    if (!have_device("cpu:avx2")) cr_skip_test("this CPU does not run AVX2");
    recur_ctx *ctx = ctx_new("CPU:AVX2");
    recur_device_info info;
    EXPECT_OK(ctx, recur_ctx_device(ctx, &info));
    cr_assert_str_eq(info.selector, "cpu:avx2");
    cr_assert_str_eq(info.backend, "cpu");
    recur_ctx_free(ctx);
    ctx = ctx_new("Cpu:Scalar");
    EXPECT_OK(ctx, recur_ctx_device(ctx, &info));
    cr_assert_str_eq(info.selector, "cpu:scalar");
    recur_ctx_free(ctx);
}

Test(api, recur_device_env_bad_values) {
    static const struct {
        const char *value;
        recur_status want;
    } bad[] = {
        {"bogus", RECUR_ERR_DEVICE},
        {"cpu:bogus", RECUR_ERR_DEVICE},
#if defined(__x86_64__)
        {"cpu:neon", RECUR_ERR_UNSUPPORTED},
#endif
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(setenv("RECUR_DEVICE", bad[i].value, 1), 0);
        recur_ctx *ctx = NULL;
        EXPECT_ERR(NULL, recur_ctx_create(&ctx, NULL), bad[i].want, "RECUR_DEVICE", bad[i].value, "cpu:scalar");
        cr_assert_null(ctx);
    }
}

Test(api, explicit_device_beats_env) {
    cr_assert_eq(setenv("RECUR_DEVICE", "bogus", 1), 0);
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_device_info info;
    EXPECT_OK(ctx, recur_ctx_device(ctx, &info));
    cr_assert_str_eq(info.selector, "cpu:scalar");
    recur_ctx_free(ctx);

    /* The env var applies when the argument is NULL; empty means the default. */
    cr_assert_eq(setenv("RECUR_DEVICE", "cpu:scalar", 1), 0);
    ctx = ctx_new(NULL);
    EXPECT_OK(ctx, recur_ctx_device(ctx, &info));
    cr_assert_str_eq(info.selector, "cpu:scalar");
    recur_ctx_free(ctx);
    cr_assert_eq(setenv("RECUR_DEVICE", "", 1), 0);
    ctx = ctx_new(NULL);
    recur_ctx_free(ctx);
}

Test(api, ctx_device_bad_args) {
    recur_device_info info, before;
    memset(&info, 0x5a, sizeof info);
    before = info;
    EXPECT_ERR(NULL, recur_ctx_device(NULL, &info), RECUR_ERR_NULL, "ctx");
    cr_assert(memcmp(&info, &before, sizeof info) == 0, "a failed recur_ctx_device wrote *out");
    recur_ctx *ctx = ctx_new("cpu:scalar");
    /* The thread's message (see ctx_device_message for the context's). */
    EXPECT_ERR(NULL, recur_ctx_device(ctx, NULL), RECUR_ERR_NULL, "out");
    recur_ctx_free(ctx);
}

Test(api, free_functions_accept_null) {
    recur_ctx_free(NULL);
    recur_layer_free(NULL);
    cr_assert_eq(recur_layer_weight_count(NULL), 0);
}

/* ---- cells and plugin errors ---- */

Test(api, cell_get_bad_args) {
    size_t n = recur_cell_count();
    cr_assert_geq(n, 4, "%zu cells: expected rnn, gru, gru-lbr, lstm", n);
    recur_cell_info info, before;
    memset(&info, 0x5a, sizeof info);
    before = info;
    char buf[64];
    EXPECT_ERR(NULL, recur_cell_get(n, &info), RECUR_ERR_ARG, fmt(buf, sizeof buf, "index %zu", n));
    EXPECT_ERR(NULL, recur_cell_get((size_t)-1, &info), RECUR_ERR_ARG, "index");
    cr_assert(memcmp(&info, &before, sizeof info) == 0, "a failed recur_cell_get wrote *out");
    EXPECT_ERR(NULL, recur_cell_get(0, NULL), RECUR_ERR_NULL, "out");
    EXPECT_OK(NULL, recur_cell_get(0, &info));
    cr_assert(info.name && info.path && info.version && info.summary && info.backends);
    cr_assert_eq(info.struct_size, sizeof info);
    /* A struct smaller than the first recur_cell_info is refused before anything is written. */
    memset(&info, 0x5a, sizeof info);
    EXPECT_ERR(NULL, recur_cell_get_sized(0, &info, sizeof(size_t)), RECUR_ERR_ARG, "bytes");
    cr_assert(memcmp(&info, &before, sizeof info) == 0, "a refused recur_cell_get wrote *out");
}

/*
 * The caller-allocated info structs (struct_size first, recur.h): a size
 * below the first version's is refused, naming it, before anything is
 * written; a caller's larger struct (a program built against a newer recur.h)
 * is filled up to this library's struct, whose size struct_size gives, and
 * the rest is left alone; recur_devices steps through the caller's array by
 * the caller's size.
 */
#define NEWER 24 /* bytes a newer header's struct might have added */
static void expect_filled_to(const unsigned char *p, size_t ours, const char *what) {
    size_t got;
    memcpy(&got, p, sizeof got);
    cr_assert_eq(got, ours, "%s: struct_size %zu, expected this library's %zu", what, got, ours);
    for (size_t i = ours; i < ours + NEWER; i++)
        cr_assert_eq(p[i], 0x5a, "%s: byte %zu, past this library's struct, was written", what, i);
}

Test(api, info_structs_sized) {
    unsigned char big[2][sizeof(recur_device_info) + NEWER], before[sizeof big];
    char buf[96];
    size_t count = 0, first = sizeof(recur_device_info);
    /* devices: each entry at the caller's stride */
    memset(big, 0x5a, sizeof big);
    memcpy(before, big, sizeof big);
    EXPECT_ERR(NULL, recur_devices_sized((recur_device_info *)big, 2, &count, first - 1), RECUR_ERR_ARG,
               fmt(buf, sizeof buf, "recur_device_info of %zu bytes, less than the %zu", first - 1, first));
    cr_assert(memcmp(big, before, sizeof big) == 0, "a refused recur_devices wrote *out");
    EXPECT_OK(NULL, recur_devices_sized((recur_device_info *)big, 2, &count, sizeof big[0]));
    cr_assert_geq(count, 2);
    recur_device_info d0, d1;
    for (int k = 0; k < 2; k++) expect_filled_to(big[k], sizeof(recur_device_info), "recur_devices");
    memcpy(&d0, big[0], sizeof d0), memcpy(&d1, big[1], sizeof d1);
    recur_device_info plain[2];
    EXPECT_OK(NULL, recur_devices(plain, 2, &count));
    cr_assert_str_eq(d0.selector, plain[0].selector);
    cr_assert_str_eq(d1.selector, plain[1].selector, "the second entry is not at the caller's stride");
    cr_assert_eq(plain[1].struct_size, sizeof plain[1]);

    /* the context's device */
    recur_ctx *ctx = ctx_new("cpu:scalar");
    memset(big, 0x5a, sizeof big);
    EXPECT_ERR(ctx, recur_ctx_device_sized(ctx, (recur_device_info *)big[0], 16), RECUR_ERR_ARG, "16 bytes");
    cr_assert(memcmp(big, before, sizeof big) == 0, "a refused recur_ctx_device wrote *out");
    EXPECT_OK(ctx, recur_ctx_device_sized(ctx, (recur_device_info *)big[0], sizeof big[0]));
    expect_filled_to(big[0], sizeof(recur_device_info), "recur_ctx_device");
    memcpy(&d0, big[0], sizeof d0);
    cr_assert_str_eq(d0.selector, "cpu:scalar");

    /* a model's and a net's parameters */
    unsigned char pbig[sizeof(recur_param_info) + NEWER], pbefore[sizeof pbig];
    recur_model_desc md = {.cell = "gru", .input_size = 3, .hidden_size = 4, .num_layers = 1};
    recur_model *m;
    EXPECT_OK(ctx, recur_model_create(ctx, &md, &m));
    memset(pbig, 0x5a, sizeof pbig);
    memcpy(pbefore, pbig, sizeof pbig);
    EXPECT_ERR(ctx, recur_model_param_info_sized(m, 0, (recur_param_info *)pbig, sizeof(size_t)), RECUR_ERR_ARG,
               "recur_param_info of 8 bytes");
    cr_assert(memcmp(pbig, pbefore, sizeof pbig) == 0, "a refused recur_model_param_info wrote *out");
    EXPECT_OK(ctx, recur_model_param_info_sized(m, 1, (recur_param_info *)pbig, sizeof pbig));
    expect_filled_to(pbig, sizeof(recur_param_info), "recur_model_param_info");
    recur_param_info pi;
    memcpy(&pi, pbig, sizeof pi);
    cr_assert_str_eq(pi.name, "weight_hh_l0");
    cr_assert_eq(pi.count, 3 * 4 * 4);
    recur_net_desc nd = {.model = md, .head = RECUR_HEAD_ALL, .output_size = 2};
    recur_net *net;
    EXPECT_OK(ctx, recur_net_create(ctx, &nd, &net));
    memset(pbig, 0x5a, sizeof pbig);
    EXPECT_ERR(ctx, recur_net_param_info_sized(net, 0, (recur_param_info *)pbig, sizeof(recur_param_info) - 1),
               RECUR_ERR_ARG, "less than the");
    cr_assert(memcmp(pbig, pbefore, sizeof pbig) == 0, "a refused recur_net_param_info wrote *out");
    for (size_t i = 0; i < recur_net_param_count(net); i++) {
        memset(pbig, 0x5a, sizeof pbig);
        EXPECT_OK(ctx, recur_net_param_info_sized(net, i, (recur_param_info *)pbig, sizeof pbig));
        expect_filled_to(pbig, sizeof(recur_param_info), "recur_net_param_info");
        memcpy(&pi, pbig, sizeof pi);
        cr_assert(pi.name[0] && pi.count > 0, "net parameter %zu: name '%s', count %zu", i, pi.name, pi.count);
    }
    recur_net_free(net);
    recur_model_free(m);
    recur_ctx_free(ctx);

    /* the cells: recur_cell_info has grown since its first version (projectable), so a
     * program built before that gets the first version's bytes and nothing past them */
    unsigned char cbig[sizeof(recur_cell_info) + NEWER];
    memset(cbig, 0x5a, sizeof cbig);
    EXPECT_OK(NULL, recur_cell_get_sized(0, (recur_cell_info *)cbig, sizeof cbig));
    expect_filled_to(cbig, sizeof(recur_cell_info), "recur_cell_get");
    const size_t older = offsetof(recur_cell_info, projectable);
    memset(cbig, 0x5a, sizeof cbig);
    EXPECT_OK(NULL, recur_cell_get_sized(0, (recur_cell_info *)cbig, older));
    size_t got;
    memcpy(&got, cbig, sizeof got);
    cr_assert_eq(got, older, "an older recur_cell_info of %zu bytes: struct_size %zu", older, got);
    for (size_t i = older; i < sizeof cbig; i++)
        cr_assert_eq(cbig[i], 0x5a, "an older recur_cell_info of %zu bytes: byte %zu was written", older, i);
    recur_cell_info ci;
    memcpy(&ci, cbig, older);
    cr_assert(ci.name && ci.name[0] && ci.n_gates > 0, "the older struct's fields were not filled");
}
#undef NEWER

Test(api, cell_supported) {
    recur_ctx *ctx;
    EXPECT_OK(NULL, recur_ctx_create(&ctx, "cpu"));
    EXPECT_OK(ctx, recur_ctx_cell_supported(ctx, "lstm"));
    EXPECT_ERR(ctx, recur_ctx_cell_supported(ctx, "no-such-cell"), RECUR_ERR_UNKNOWN_CELL, "no-such-cell");
    EXPECT_ERR(ctx, recur_ctx_cell_supported(ctx, NULL), RECUR_ERR_NULL, "cell");
    EXPECT_ERR(NULL, recur_ctx_cell_supported(NULL, "lstm"), RECUR_ERR_NULL, "ctx");
    recur_ctx_free(ctx);
}

Test(api, plugin_error_get_bad_args) {
    size_t n = recur_plugin_error_count();
    recur_status st = (recur_status)42;
    const char *msg = "untouched";
    char buf[64];
    EXPECT_ERR(NULL, recur_plugin_error_get(n, &st, &msg), RECUR_ERR_ARG, fmt(buf, sizeof buf, "index %zu", n));
    cr_assert_eq((int)st, 42, "a failed call wrote *status");
    cr_assert_str_eq(msg, "untouched", "a failed call wrote *message");
    EXPECT_ERR(NULL, recur_plugin_error_get(0, NULL, &msg), RECUR_ERR_NULL, "status");
    EXPECT_ERR(NULL, recur_plugin_error_get(0, &st, NULL), RECUR_ERR_NULL, "message");
    cr_assert_str_eq(msg, "untouched");
}

/* ---- layers ---- */

Test(api, layer_create_null_args) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_layer *l = NULL;
    recur_layer_desc d = {.cell = "rnn", .input_size = 3, .hidden_size = 4};
    EXPECT_ERR(NULL, recur_layer_create(NULL, &d, &l), RECUR_ERR_NULL, "ctx");
    EXPECT_ERR(ctx, recur_layer_create(ctx, NULL, &l), RECUR_ERR_NULL, "desc");
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, NULL), RECUR_ERR_NULL, "out");
    d.cell = NULL;
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_NULL, "cell");
    cr_assert_null(l);
    recur_ctx_free(ctx);
}

Test(api, layer_create_bad_sizes) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    static const char *const cells[] = {"rnn", "gru", "gru-lbr", "lstm"};
    static const int bad[] = {0, -1, -7, INT_MIN};
    char buf[64];
    for (size_t c = 0; c < 4; c++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            recur_layer *l = NULL;
            recur_layer_desc d = {.cell = cells[c], .input_size = bad[i], .hidden_size = 4};
            EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_ARG,
                       fmt(buf, sizeof buf, "input_size %d", bad[i]));
            cr_assert_null(l);
            d.input_size = 3;
            d.hidden_size = bad[i];
            EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_ARG,
                       fmt(buf, sizeof buf, "hidden_size %d", bad[i]));
            cr_assert_null(l);
        }
    /* Sizes whose weights overflow what the engine supports. */
    recur_layer *l = NULL;
    recur_layer_desc d = {.cell = "lstm", .input_size = 3, .hidden_size = INT_MAX};
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_ARG, "hidden_size");
    d.input_size = INT_MAX;
    d.hidden_size = 1;
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_ARG, "input_size");
    d.input_size = 40000;
    d.hidden_size = 40000;
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_ARG, "hidden_size");
    cr_assert_null(l);
    recur_ctx_free(ctx);
}

Test(api, layer_create_unknown_cell_and_variant) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_layer *l = NULL;
    recur_layer_desc d = {.cell = "transformer", .input_size = 3, .hidden_size = 4};
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_CELL, "transformer", "rnn", "gru", "gru-lbr",
               "lstm");
    d.cell = "LSTM"; /* names are exact */
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_CELL, "LSTM", "lstm");
    d.cell = "";
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_CELL, "rnn");

    d.cell = "rnn";
    d.variant = "sigmoid";
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_NAME, "sigmoid", "tanh", "relu");
    d.variant = "TANH";
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_NAME, "TANH", "tanh", "relu");
    d.cell = "lstm"; /* a cell without variants */
    d.variant = "tanh";
    EXPECT_ERR(ctx, recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_NAME, "tanh", "lstm");
    cr_assert_null(l);

    /* The good variants work. */
    static const char *const ok[] = {NULL, "tanh", "relu"};
    for (int i = 0; i < 3; i++) recur_layer_free(layer_new(ctx, "rnn", ok[i], 3, 4));
    recur_ctx_free(ctx);
}

Test(api, layer_sizes) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    static const struct {
        const char *cell;
        size_t G;
    } cells[] = {{"rnn", 1}, {"gru", 3}, {"gru-lbr", 3}, {"lstm", 4}};
    const int I = 5, H = 7;
    char buf[64];
    for (size_t c = 0; c < 4; c++) {
        recur_layer *l = layer_new(ctx, cells[c].cell, NULL, I, H);
        size_t n = cells[c].G * H * (I + H + 2);
        cr_assert_eq(recur_layer_weight_count(l), n, "%s: %zu weights, expected %zu", cells[c].cell,
                     recur_layer_weight_count(l), n);
        recur_sizes s1, s10, s10n;
        EXPECT_OK(ctx, recur_layer_sizes(l, 1, 1, &s1));
        EXPECT_OK(ctx, recur_layer_sizes(l, 10, 1, &s10));
        EXPECT_OK(ctx, recur_layer_sizes(l, 10, 4, &s10n));
        cr_assert_eq(s1.weights, n * sizeof(float), "%s", cells[c].cell);
        cr_assert_gt(s1.workspace, 0, "%s: workspace 0", cells[c].cell);
        cr_assert_gt(s1.reserve, 0, "%s: reserve 0", cells[c].cell);
        cr_assert_gt(s10.workspace, s1.workspace, "%s: workspace does not grow with T", cells[c].cell);
        cr_assert_gt(s10.reserve, s1.reserve, "%s: reserve does not grow with T", cells[c].cell);
        cr_assert_gt(s10n.workspace, s10.workspace, "%s: workspace does not grow with N", cells[c].cell);
        cr_assert_gt(s10n.reserve, s10.reserve, "%s: reserve does not grow with N", cells[c].cell);
        cr_assert_eq(s10.weights, s1.weights);

        recur_sizes s;
        memset(&s, 0x5a, sizeof s);
        recur_sizes before = s;
        static const int bad[] = {0, -1, INT_MIN};
        for (size_t i = 0; i < 3; i++) {
            EXPECT_ERR(ctx, recur_layer_sizes(l, bad[i], 1, &s), RECUR_ERR_ARG, fmt(buf, sizeof buf, "T %d", bad[i]));
            EXPECT_ERR(ctx, recur_layer_sizes(l, 1, bad[i], &s), RECUR_ERR_ARG, fmt(buf, sizeof buf, "N %d", bad[i]));
        }
        cr_assert(memcmp(&s, &before, sizeof s) == 0, "a failed recur_layer_sizes wrote *out");
        EXPECT_ERR(NULL, recur_layer_sizes(NULL, 1, 1, &s), RECUR_ERR_NULL, "layer");
        /* The thread's message (see layer_sizes_message for the context's). */
        EXPECT_ERR(NULL, recur_layer_sizes(l, 1, 1, NULL), RECUR_ERR_NULL, "out");
        recur_layer_free(l);
    }
    recur_ctx_free(ctx);
}

/* ---- weights, gradients ---- */

typedef recur_status (*get_fn)(const recur_layer *, recur_layout, float *, size_t);

Test(api, weights_bad_args) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_layer *l = layer_new(ctx, "gru", NULL, 3, 4);
    size_t n = recur_layer_weight_count(l);
    float *w = randoms(n, 1), *other = randoms(n + 1, 2), *back = test_floats(n);
    EXPECT_OK(ctx, recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, w, n));
    char buf[64];

    /* set */
    EXPECT_ERR(NULL, recur_layer_weights_set(NULL, RECUR_LAYOUT_CANONICAL, other, n), RECUR_ERR_NULL, "layer");
    EXPECT_ERR(ctx, recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, NULL, n), RECUR_ERR_NULL, "NULL");
    EXPECT_ERR(ctx, recur_layer_weights_set(l, (recur_layout)9, other, n), RECUR_ERR_ARG, "layout 9");
    EXPECT_ERR(ctx, recur_layer_weights_set(l, (recur_layout)-1, other, n), RECUR_ERR_ARG, "layout -1");
    EXPECT_ERR(ctx, recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, other, n - 1), RECUR_ERR_BUFFER_SIZE,
               fmt(buf, sizeof buf, "count %zu", n - 1));
    EXPECT_ERR(ctx, recur_layer_weights_set(l, RECUR_LAYOUT_TORCH, other, n + 1), RECUR_ERR_SHAPE,
               fmt(buf, sizeof buf, "count %zu", n + 1));
    EXPECT_ERR(ctx, recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, other, 0), RECUR_ERR_BUFFER_SIZE, "count 0");
    /* None of the failed sets changed the weights. */
    EXPECT_OK(ctx, recur_layer_weights_get(l, RECUR_LAYOUT_CANONICAL, back, n));
    cr_assert(memcmp(back, w, n * sizeof(float)) == 0, "a failed recur_layer_weights_set changed the weights");

    /* get and grads_get: the same checks, and the buffer stays untouched. */
    static const struct {
        get_fn fn;
        const char *name;
    } getters[] = {{recur_layer_weights_get, "weights_get"}, {recur_layer_grads_get, "grads_get"}};
    for (size_t k = 0; k < 2; k++) {
        get_fn get = getters[k].fn;
        float *dst = sentinels(n + 1);
        EXPECT_ERR(NULL, get(NULL, RECUR_LAYOUT_CANONICAL, dst, n), RECUR_ERR_NULL, "layer");
        EXPECT_ERR(ctx, get(l, RECUR_LAYOUT_CANONICAL, NULL, n), RECUR_ERR_NULL, "NULL");
        EXPECT_ERR(ctx, get(l, (recur_layout)9, dst, n), RECUR_ERR_ARG, "layout 9");
        EXPECT_ERR(ctx, get(l, RECUR_LAYOUT_TORCH, dst, n - 1), RECUR_ERR_BUFFER_SIZE,
                   fmt(buf, sizeof buf, "count %zu", n - 1));
        EXPECT_ERR(ctx, get(l, RECUR_LAYOUT_CANONICAL, dst, n + 1), RECUR_ERR_SHAPE,
                   fmt(buf, sizeof buf, "count %zu", n + 1));
        EXPECT_ERR(ctx, get(l, RECUR_LAYOUT_CANONICAL, dst, 1), RECUR_ERR_BUFFER_SIZE, "count 1");
        expect_untouched(dst, n + 1, getters[k].name);
        free(dst);
    }
    EXPECT_ERR(NULL, recur_layer_grads_zero(NULL), RECUR_ERR_NULL, "layer");
    EXPECT_OK(ctx, recur_layer_grads_zero(l));
    free(w);
    free(other);
    free(back);
    recur_ctx_free(ctx);
}

/* ---- the per-gate view ---- */

Test(api, gate_names) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    static const struct {
        const char *cell;
        int G;
        const char *names[4];
    } cells[] = {
        {"rnn", 1, {"a"}},
        {"gru", 3, {"u", "r", "c"}},
        {"gru-lbr", 3, {"r", "z", "n"}},
        {"lstm", 4, {"i", "f", "g", "o"}},
    };
    char buf[64];
    for (size_t c = 0; c < 4; c++) {
        recur_layer *l = layer_new(ctx, cells[c].cell, NULL, 2, 3);
        for (int g = 0; g < cells[c].G; g++) {
            const char *name = NULL;
            EXPECT_OK(ctx, recur_layer_gate_name(l, g, &name));
            cr_assert_str_eq(name, cells[c].names[g], "%s gate %d", cells[c].cell, g);
        }
        const char *name = "untouched";
        EXPECT_ERR(ctx, recur_layer_gate_name(l, -1, &name), RECUR_ERR_ARG, "gate -1");
        EXPECT_ERR(ctx, recur_layer_gate_name(l, cells[c].G, &name), RECUR_ERR_ARG,
                   fmt(buf, sizeof buf, "gate %d", cells[c].G));
        EXPECT_ERR(ctx, recur_layer_gate_name(l, INT_MAX, &name), RECUR_ERR_ARG, "gate");
        cr_assert_str_eq(name, "untouched", "a failed recur_layer_gate_name wrote *name");
        EXPECT_ERR(NULL, recur_layer_gate_name(NULL, 0, &name), RECUR_ERR_NULL, "layer");
        /* The thread's message (see gate_name_message for the context's). */
        EXPECT_ERR(NULL, recur_layer_gate_name(l, 0, NULL), RECUR_ERR_NULL, "name");
        recur_layer_free(l);
    }
    recur_ctx_free(ctx);
}

Test(api, gate_set_get_bad_args) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    const int I = 3, H = 4;
    recur_layer *l = layer_new(ctx, "lstm", NULL, I, H);
    size_t n = recur_layer_weight_count(l);
    float *w = randoms(n, 3), *back = test_floats(n), *src = randoms((size_t)H * H + 1, 4);
    EXPECT_OK(ctx, recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, w, n));
    static const struct {
        recur_param p;
        size_t size;
    } params[] = {{RECUR_PARAM_W_IH, 12}, {RECUR_PARAM_W_HH, 16}, {RECUR_PARAM_B_IH, 4}, {RECUR_PARAM_B_HH, 4}};
    char buf[64];
    for (size_t k = 0; k < 4; k++) {
        recur_param p = params[k].p;
        size_t size = params[k].size;
        float *dst = sentinels(size + 1);
        /* set */
        EXPECT_ERR(NULL, recur_layer_gate_set(NULL, p, "f", src, size), RECUR_ERR_NULL, "layer");
        EXPECT_ERR(ctx, recur_layer_gate_set(l, p, "f", NULL, size), RECUR_ERR_NULL, "src");
        EXPECT_ERR(ctx, recur_layer_gate_set(l, p, NULL, src, size), RECUR_ERR_NULL, "gate");
        EXPECT_ERR(ctx, recur_layer_gate_set(l, p, "q", src, size), RECUR_ERR_UNKNOWN_NAME, "'q'", "i", "f", "g",
                   "o");
        EXPECT_ERR(ctx, recur_layer_gate_set(l, p, "u", src, size), RECUR_ERR_UNKNOWN_NAME, "'u'", "i, f, g, o");
        EXPECT_ERR(ctx, recur_layer_gate_set(l, p, "f", src, size - 1), RECUR_ERR_BUFFER_SIZE,
                   fmt(buf, sizeof buf, "count %zu", size - 1));
        EXPECT_ERR(ctx, recur_layer_gate_set(l, p, "f", src, size + 1), RECUR_ERR_SHAPE,
                   fmt(buf, sizeof buf, "count %zu", size + 1));
        /* get */
        EXPECT_ERR(NULL, recur_layer_gate_get(NULL, p, "f", dst, size), RECUR_ERR_NULL, "layer");
        EXPECT_ERR(ctx, recur_layer_gate_get(l, p, "f", NULL, size), RECUR_ERR_NULL, "dst");
        EXPECT_ERR(ctx, recur_layer_gate_get(l, p, NULL, dst, size), RECUR_ERR_NULL, "gate");
        EXPECT_ERR(ctx, recur_layer_gate_get(l, p, "", dst, size), RECUR_ERR_UNKNOWN_NAME, "i, f, g, o");
        EXPECT_ERR(ctx, recur_layer_gate_get(l, p, "o", dst, size - 1), RECUR_ERR_BUFFER_SIZE,
                   fmt(buf, sizeof buf, "count %zu", size - 1));
        EXPECT_ERR(ctx, recur_layer_gate_get(l, p, "o", dst, size + 1), RECUR_ERR_SHAPE,
                   fmt(buf, sizeof buf, "count %zu", size + 1));
        expect_untouched(dst, size + 1, "gate_get dst");
        free(dst);
    }
    static const int bad_params[] = {9, -1, 4};
    for (size_t k = 0; k < 3; k++) {
        float *dst = sentinels(16);
        EXPECT_ERR(ctx, recur_layer_gate_set(l, (recur_param)bad_params[k], "i", src, 4), RECUR_ERR_ARG,
                   fmt(buf, sizeof buf, "param %d", bad_params[k]));
        EXPECT_ERR(ctx, recur_layer_gate_get(l, (recur_param)bad_params[k], "i", dst, 4), RECUR_ERR_ARG,
                   fmt(buf, sizeof buf, "param %d", bad_params[k]));
        expect_untouched(dst, 16, "gate_get dst");
        free(dst);
    }
    /* No failed gate_set changed a weight. */
    EXPECT_OK(ctx, recur_layer_weights_get(l, RECUR_LAYOUT_CANONICAL, back, n));
    cr_assert(memcmp(back, w, n * sizeof(float)) == 0, "a failed recur_layer_gate_set changed the weights");
    free(w);
    free(back);
    free(src);
    recur_ctx_free(ctx);
}

/* ---- forward ---- */

struct run {
    int T, N, I, H;
    float *x, *h0, *c0, *y, *hT, *cT;
    float *dy, *dx, *dh0, *dc0;
};

static void run_alloc(struct run *r, int T, int N, int I, int H) {
    r->T = T;
    r->N = N;
    r->I = I;
    r->H = H;
    size_t TN = (size_t)T * N, NH = (size_t)N * H;
    r->x = randoms(TN * I, 5);
    r->h0 = randoms(NH, 6);
    r->c0 = randoms(NH, 7);
    r->dy = randoms(TN * H, 8);
    r->y = sentinels(TN * H);
    r->hT = sentinels(NH);
    r->cT = sentinels(NH);
    r->dx = sentinels(TN * I);
    r->dh0 = sentinels(NH);
    r->dc0 = sentinels(NH);
}

static void run_free(struct run *r) {
    float *all[] = {r->x, r->h0, r->c0, r->y, r->hT, r->cT, r->dy, r->dx, r->dh0, r->dc0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static recur_io io_of(const struct run *r, int two_states) {
    recur_io io = {.T = r->T, .N = r->N, .x = r->x, .h0 = r->h0, .y = r->y, .hT = r->hT};
    if (two_states) {
        io.c0 = r->c0;
        io.cT = r->cT;
    }
    return io;
}

static void expect_outputs_untouched(const struct run *r) {
    size_t TN = (size_t)r->T * r->N, NH = (size_t)r->N * r->H;
    expect_untouched(r->y, TN * r->H, "y");
    expect_untouched(r->hT, NH, "hT");
    expect_untouched(r->cT, NH, "cT");
}

static void expect_grads_untouched(const struct run *r) {
    size_t TN = (size_t)r->T * r->N, NH = (size_t)r->N * r->H;
    expect_untouched(r->dx, TN * r->I, "dx");
    expect_untouched(r->dh0, NH, "dh0");
    expect_untouched(r->dc0, NH, "dc0");
}

Test(api, forward_bad_args) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    static const char *const cells[] = {"rnn", "gru", "gru-lbr", "lstm"};
    char buf[64];
    for (size_t c = 0; c < 4; c++) {
        int two = strcmp(cells[c], "lstm") == 0;
        struct run r;
        run_alloc(&r, 3, 2, 4, 5);
        recur_layer *l = layer_new(ctx, cells[c], NULL, r.I, r.H);
        float *w = randoms(recur_layer_weight_count(l), 9);
        EXPECT_OK(ctx, recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, w, recur_layer_weight_count(l)));
        recur_io io = io_of(&r, two);

        EXPECT_ERR(NULL, recur_layer_forward(NULL, RECUR_MODE_INFERENCE, &io), RECUR_ERR_NULL, "layer");
        EXPECT_ERR(ctx, recur_layer_forward(l, RECUR_MODE_INFERENCE, NULL), RECUR_ERR_NULL, "io");
        static const int bad_modes[] = {7, -1, 2};
        for (size_t i = 0; i < 3; i++)
            EXPECT_ERR(ctx, recur_layer_forward(l, (recur_mode)bad_modes[i], &io), RECUR_ERR_ARG,
                       fmt(buf, sizeof buf, "mode %d", bad_modes[i]));
        static const int bad_sizes[] = {0, -1, INT_MIN};
        for (size_t i = 0; i < 3; i++) {
            recur_io b = io;
            b.T = bad_sizes[i];
            EXPECT_ERR(ctx, recur_layer_forward(l, RECUR_MODE_TRAINING, &b), RECUR_ERR_ARG,
                       fmt(buf, sizeof buf, "T %d", bad_sizes[i]));
            b = io;
            b.N = bad_sizes[i];
            EXPECT_ERR(ctx, recur_layer_forward(l, RECUR_MODE_INFERENCE, &b), RECUR_ERR_ARG,
                       fmt(buf, sizeof buf, "N %d", bad_sizes[i]));
        }
        recur_io b = io;
        b.x = NULL;
        EXPECT_ERR(ctx, recur_layer_forward(l, RECUR_MODE_TRAINING, &b), RECUR_ERR_NULL, "x");
        b = io;
        b.y = NULL;
        EXPECT_ERR(ctx, recur_layer_forward(l, RECUR_MODE_INFERENCE, &b), RECUR_ERR_NULL, "y");
        if (!two) {
            /* A cell state given to a single-state cell. The header files
             * this under RECUR_ERR_SHAPE; the library says RECUR_ERR_ARG
             * (see c0_on_single_state_cell_status). */
            b = io;
            b.c0 = r.c0;
            recur_status st = recur_layer_forward(l, RECUR_MODE_INFERENCE, &b);
            cr_assert(st == RECUR_ERR_SHAPE || st == RECUR_ERR_ARG, "%s with c0: %s", cells[c], recur_status_str(st));
            cr_assert(strstr(recur_ctx_error(ctx), "c0"), "%s", recur_ctx_error(ctx));
            b = io;
            b.cT = r.cT;
            st = recur_layer_forward(l, RECUR_MODE_TRAINING, &b);
            cr_assert(st == RECUR_ERR_SHAPE || st == RECUR_ERR_ARG, "%s with cT: %s", cells[c], recur_status_str(st));
            cr_assert(strstr(recur_ctx_error(ctx), "cT"), "%s", recur_ctx_error(ctx));
        }
        expect_outputs_untouched(&r);

        /* None of that was a training forward. */
        recur_grad_io g = {.dy = r.dy, .dx = r.dx, .dh0 = r.dh0};
        EXPECT_ERR(ctx, recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE, "");
        expect_grads_untouched(&r);

        /* And the good call works, writing every output. */
        EXPECT_OK(ctx, recur_layer_forward(l, RECUR_MODE_INFERENCE, &io));
        cr_assert(r.y[0] != SENTINEL && r.hT[0] != SENTINEL);
        cr_assert(!two || r.cT[0] != SENTINEL);
        free(w);
        run_free(&r);
        recur_layer_free(l);
    }
    recur_ctx_free(ctx);
}

/* ---- backward ---- */

Test(api, backward_bad_args) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    static const char *const cells[] = {"rnn", "gru", "gru-lbr", "lstm"};
    for (size_t c = 0; c < 4; c++) {
        int two = strcmp(cells[c], "lstm") == 0;
        struct run r;
        run_alloc(&r, 3, 2, 4, 5);
        recur_layer *l = layer_new(ctx, cells[c], NULL, r.I, r.H);
        recur_io io = io_of(&r, two);
        recur_grad_io g = {.dy = r.dy, .dhT = r.h0, .dx = r.dx, .dh0 = r.dh0};
        if (two) {
            g.dcT = r.c0;
            g.dc0 = r.dc0;
        }

        /* Before any forward. */
        EXPECT_ERR(ctx, recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE, "training");
        /* After an inference-only forward. */
        EXPECT_OK(ctx, recur_layer_forward(l, RECUR_MODE_INFERENCE, &io));
        EXPECT_ERR(ctx, recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE, "training");
        /* Training then inference: a layer's inference run leaves the saved
         * activations alone, so the backward of the training run still works
         * (weight gradients only here, so dx, dh0, dc0 stay untouched). */
        EXPECT_OK(ctx, recur_layer_forward(l, RECUR_MODE_TRAINING, &io));
        EXPECT_OK(ctx, recur_layer_forward(l, RECUR_MODE_INFERENCE, &io));
        recur_grad_io weights_only = {.dy = r.dy};
        EXPECT_OK(ctx, recur_layer_backward(l, &io, &weights_only, RECUR_GRAD_ADD));
        expect_grads_untouched(&r);
        EXPECT_OK(ctx, recur_layer_grads_zero(l)); /* the failures below must leave these zeros */

        /* A training forward of T 3, N 2, then a backward of another shape. */
        EXPECT_OK(ctx, recur_layer_forward(l, RECUR_MODE_TRAINING, &io));
        recur_io b = io;
        b.T = 2;
        EXPECT_ERR(ctx, recur_layer_backward(l, &b, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE, "T 2", "T 3");
        b = io;
        b.N = 1;
        EXPECT_ERR(ctx, recur_layer_backward(l, &b, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE, "N 1", "N 2");
        b = io;
        b.T = 4; /* longer than the forward: must not read past the reserve */
        EXPECT_ERR(ctx, recur_layer_backward(l, &b, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_STATE, "T 4", "T 3");

        /* Bad arguments. */
        EXPECT_ERR(NULL, recur_layer_backward(NULL, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_NULL, "layer");
        EXPECT_ERR(ctx, recur_layer_backward(l, NULL, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_NULL, "io");
        EXPECT_ERR(ctx, recur_layer_backward(l, &io, NULL, RECUR_GRAD_OVERWRITE), RECUR_ERR_NULL, "grad");
        EXPECT_ERR(ctx, recur_layer_backward(l, &io, &g, (recur_grad_mode)7), RECUR_ERR_ARG, "mode 7");
        EXPECT_ERR(ctx, recur_layer_backward(l, &io, &g, (recur_grad_mode)-1), RECUR_ERR_ARG, "mode -1");
        b = io;
        b.T = 0;
        EXPECT_ERR(ctx, recur_layer_backward(l, &b, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_ARG, "T 0");
        b = io;
        b.N = -2;
        EXPECT_ERR(ctx, recur_layer_backward(l, &b, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_ARG, "N -2");
        b = io;
        b.x = NULL;
        EXPECT_ERR(ctx, recur_layer_backward(l, &b, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_NULL, "x");
        if (!two) {
            recur_grad_io bg = g;
            bg.dcT = r.c0;
            recur_status st = recur_layer_backward(l, &io, &bg, RECUR_GRAD_OVERWRITE);
            cr_assert(st == RECUR_ERR_SHAPE || st == RECUR_ERR_ARG, "%s with dcT: %s", cells[c], recur_status_str(st));
            cr_assert(strstr(recur_ctx_error(ctx), "dcT"), "%s", recur_ctx_error(ctx));
            bg = g;
            bg.dc0 = r.dc0;
            st = recur_layer_backward(l, &io, &bg, RECUR_GRAD_OVERWRITE);
            cr_assert(st == RECUR_ERR_SHAPE || st == RECUR_ERR_ARG, "%s with dc0: %s", cells[c], recur_status_str(st));
            cr_assert(strstr(recur_ctx_error(ctx), "dc0"), "%s", recur_ctx_error(ctx));
        }
        expect_grads_untouched(&r);
        /* The failures did not change the weight gradients (still zero). */
        size_t n = recur_layer_weight_count(l);
        float *dw = sentinels(n);
        EXPECT_OK(ctx, recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, dw, n));
        for (size_t i = 0; i < n; i++) cr_assert(dw[i] == 0.0f, "%s: dw[%zu] = %g after failed backwards", cells[c], i, (double)dw[i]);

        /* ... nor the saved activations: the right backward still works. */
        EXPECT_OK(ctx, recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE));
        cr_assert(r.dx[0] != SENTINEL && r.dh0[0] != SENTINEL, "%s: backward did not write dx, dh0", cells[c]);
        cr_assert(!two || r.dc0[0] != SENTINEL);
        free(dw);
        run_free(&r);
        recur_layer_free(l);
    }
    recur_ctx_free(ctx);
}

/* ---- lifetimes ---- */

Test(api, ctx_free_frees_live_layers) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_ctx *other = ctx_new("cpu");
    static const char *const cells[] = {"rnn", "gru", "gru-lbr", "lstm"};
    recur_layer *l[4], *keep = layer_new(other, "gru", NULL, 2, 3);
    for (int i = 0; i < 4; i++) {
        l[i] = layer_new(ctx, cells[i], NULL, 3, 4);
        /* Give them workspaces and reserves to free too. */
        struct run r;
        run_alloc(&r, 2, 3, 3, 4);
        recur_io io = io_of(&r, i == 3);
        EXPECT_OK(ctx, recur_layer_forward(l[i], RECUR_MODE_TRAINING, &io));
        run_free(&r);
    }
    recur_layer_free(l[1]); /* one from the middle of the list, one from each end */
    recur_layer_free(l[3]);
    recur_ctx_free(ctx);    /* frees l[0] and l[2] */

    /* The other context and its layer are unaffected. */
    struct run r;
    run_alloc(&r, 2, 1, 2, 3);
    recur_io io = io_of(&r, 0);
    EXPECT_OK(other, recur_layer_forward(keep, RECUR_MODE_INFERENCE, &io));
    run_free(&r);
    recur_ctx_free(other);
}

/* ---- the header's contract on messages and statuses of NULL outputs ---- */

/* core/context.c recur_ctx_device: the NULL check passes ctx = NULL to
 * recur_err, so a failure with a valid context leaves recur_ctx_error(ctx)
 * without the message. */
Test(api, ctx_device_message) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    EXPECT_ERR(ctx, recur_ctx_device(ctx, NULL), RECUR_ERR_NULL, "out");
    recur_ctx_free(ctx);
}

/* core/layer.c recur_layer_sizes: RETURN_IF(!l || !out, NULL, ...) records
 * "out is NULL" on the thread only; the context's message stays "". */
Test(api, layer_sizes_message) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_layer *l = layer_new(ctx, "rnn", NULL, 2, 3);
    EXPECT_ERR(ctx, recur_layer_sizes(l, 1, 1, NULL), RECUR_ERR_NULL, "out");
    recur_ctx_free(ctx);
}

/* core/weights.c recur_layer_gate_name: the NULL check runs before
 * recur_err_clear(l->ctx) and with ctx = NULL, so the context keeps the
 * message of an earlier, unrelated failure. */
Test(api, gate_name_message) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_layer *l = layer_new(ctx, "rnn", NULL, 2, 3);
    const char *name;
    EXPECT_ERR(ctx, recur_layer_gate_name(l, 5, &name), RECUR_ERR_ARG, "gate 5");
    EXPECT_ERR(ctx, recur_layer_gate_name(l, 0, NULL), RECUR_ERR_NULL, "name");
    recur_ctx_free(ctx);
}

/* core/layer.c check_io and recur_layer_backward: c0/cT (dcT/dc0) given to a
 * single-state cell is a mismatch of shapes (recur.h: forward errors are
 * NULL, ARG for T or N < 1, SHAPE), but the library returns RECUR_ERR_ARG. */
Test(api, c0_on_single_state_cell_status) {
    recur_ctx *ctx = ctx_new("cpu:scalar");
    recur_layer *l = layer_new(ctx, "gru", NULL, 2, 3);
    struct run r;
    run_alloc(&r, 2, 1, 2, 3);
    recur_io io = io_of(&r, 0);
    io.c0 = r.c0;
    EXPECT_ERR(ctx, recur_layer_forward(l, RECUR_MODE_INFERENCE, &io), RECUR_ERR_SHAPE, "c0");
    run_free(&r);
    recur_ctx_free(ctx);
}

/* One direction vocabulary: every name round-trips, the older spellings map, bad names are named. */
Test(api, direction_names) {
    for (int d = RECUR_DIR_FORWARD; d <= RECUR_DIR_BIDI_SUM; d++) {
        recur_direction back = (recur_direction)-1;
        const char *name = recur_direction_name((recur_direction)d);
        cr_assert(name);
        cr_assert_eq(recur_direction_parse(name, &back), RECUR_OK);
        cr_assert_eq((int)back, d);
    }
    cr_assert_null(recur_direction_name((recur_direction)4));
    cr_assert_null(recur_direction_name((recur_direction)-1));
    const struct {
        const char *name;
        recur_direction dir;
    } old[] = {{"bidi_concat", RECUR_DIR_BIDI_CONCAT}, {"bidi_sum", RECUR_DIR_BIDI_SUM},
               {"bidi", RECUR_DIR_BIDI_CONCAT},        {"concat", RECUR_DIR_BIDI_CONCAT},
               {"sum", RECUR_DIR_BIDI_SUM},            {"Forward", RECUR_DIR_FORWARD}};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
        recur_direction back = (recur_direction)-1;
        cr_assert_eq(recur_direction_parse(old[i].name, &back), RECUR_OK, "%s", old[i].name);
        cr_assert_eq(back, old[i].dir, "%s", old[i].name);
    }
    recur_direction keep = RECUR_DIR_REVERSE;
    cr_assert_eq(recur_direction_parse("sideways", &keep), RECUR_ERR_ARG);
    cr_assert(strstr(recur_last_error(), "'sideways'"));
    cr_assert_eq(keep, RECUR_DIR_REVERSE);
    cr_assert_eq(recur_direction_parse("", &keep), RECUR_ERR_ARG);
    cr_assert_eq(recur_direction_parse(NULL, &keep), RECUR_ERR_NULL);
}

/* batch_first is 0 or 1: another value is named and nothing runs (it was
 * once taken as true). */
Test(api, model_batch_first_is_0_or_1) {
    recur_ctx *ctx = ctx_new("cpu");
    recur_model_desc d = {.cell = "gru", .input_size = 2, .hidden_size = 3, .num_layers = 1};
    recur_model *m = NULL;
    EXPECT_OK(ctx, recur_model_create(ctx, &d, &m));
    enum { T = 2, N = 3, NX = T * N * 2, NY = T * N * 3 };
    float *x = randoms(NX, 1), *y = sentinels(NY), *dy = randoms(NY, 2), *dx = sentinels(NX);
    recur_model_io io = {.T = T, .N = N, .batch_first = 7, .x = x, .y = y};
    EXPECT_ERR(ctx, recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_ERR_ARG, "batch_first is 7");
    expect_untouched(y, NY, "y");
    io.batch_first = -1;
    EXPECT_ERR(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io), RECUR_ERR_ARG, "batch_first is -1");
    expect_untouched(y, NY, "y");
    io.batch_first = 1;
    EXPECT_OK(ctx, recur_model_forward(m, RECUR_MODE_TRAINING, &io));
    recur_model_grad_io g = {.dy = dy, .dx = dx};
    io.batch_first = 2;
    EXPECT_ERR(ctx, recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_ERR_ARG, "batch_first is 2");
    expect_untouched(dx, NX, "dx");
    io.batch_first = 1;
    EXPECT_OK(ctx, recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE));
    free(x), free(y), free(dy), free(dx);
    recur_ctx_free(ctx);
}
