/*
 * test-loader.c: the plugin loader against the broken plugins of
 * tests/bad-plugins (each must be rejected with its own status and a message
 * naming the file), with the real cells still registered, and a good
 * third-party-style plugin (echo.so, cell "echo-test") from that other
 * directory that loads and computes the right numbers.
 *
 * RECUR_PLUGIN_PATH (set by tests/meson.build) is "<plugins>:<bad-plugins>":
 * the good directory first, so the real lstm wins over dup-lstm.so.
 *
 * Then where plugins load from (the "path_" tests): each copies
 * tests/marker-plugin's marker.so, whose constructor writes the file
 * RECUR_TEST_MARKER names, into a scratch directory, sets its own
 * RECUR_PLUGIN_PATH and loads (Criterion runs every test in a process of its
 * own, so each loads afresh). A refused place must leave no marker and a
 * rejection naming it; an accepted one must run the plugin.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recur/recur-cell.h"
#include "recur/recur.h"

/* The files of tests/bad-plugins the loader must refuse, with the status. */
static const struct {
    const char *file;
    recur_status status;
} broken[] = {
    {"no-entry.so", RECUR_ERR_PLUGIN_SYMBOL},  {"init-fails.so", RECUR_ERR_PLUGIN_INIT},
    {"abi-major.so", RECUR_ERR_PLUGIN_ABI},    {"too-small.so", RECUR_ERR_PLUGIN_SIZE},
    {"no-cpu.so", RECUR_ERR_PLUGIN_NO_CPU},    {"invalid.so", RECUR_ERR_PLUGIN_INVALID},
    {"bad-variants.so", RECUR_ERR_PLUGIN_INVALID}, {"bad-cpu-count.so", RECUR_ERR_PLUGIN_INVALID},
    {"dup-lstm.so", RECUR_ERR_PLUGIN_DUPLICATE}, {"garbage.so", RECUR_ERR_PLUGIN_OPEN},
    {"save-overrun.so", RECUR_ERR_PLUGIN_INVALID}, {"writes-input.so", RECUR_ERR_PLUGIN_INVALID},
    {"bad-param.so", RECUR_ERR_PLUGIN_INVALID},    {"bad-flags.so", RECUR_ERR_PLUGIN_INVALID},
    {"fake-projectable.so", RECUR_ERR_PLUGIN_INVALID}, {"proj-dprev.so", RECUR_ERR_PLUGIN_INVALID},
    {"row-overrun.so", RECUR_ERR_PLUGIN_INVALID},
};
#define N_BROKEN (sizeof broken / sizeof broken[0])

/* The k-th directory of RECUR_PLUGIN_PATH (0: the good plugins, 1: bad-plugins). */
static void path_dir(int k, char *buf, size_t len) {
    const char *env = getenv("RECUR_PLUGIN_PATH");
    cr_assert(env && *env, "RECUR_PLUGIN_PATH is not set: run this test through meson test");
    const char *p = env;
    for (int i = 0; i < k; i++) {
        p = strchr(p, ':');
        cr_assert(p, "RECUR_PLUGIN_PATH '%s' has fewer than %d directories", env, k + 1);
        p++;
    }
    size_t n = strcspn(p, ":");
    cr_assert(n > 0 && n < len, "RECUR_PLUGIN_PATH '%s': directory %d is empty or too long", env, k);
    memcpy(buf, p, n);
    buf[n] = 0;
}

/* The full path of a file of tests/bad-plugins, as the loader names it. */
static void bad_path(const char *file, char *buf, size_t len) {
    char dir[2048];
    path_dir(1, dir, sizeof dir);
    cr_assert(snprintf(buf, len, "%s/%s", dir, file) < (int)len);
    cr_assert(access(buf, R_OK) == 0, "%s does not exist: the bad plugins were not built", buf);
}

/* The reject entry whose message names `file` (by "/file:"); asserts there is exactly one. */
static void find_reject(const char *file, recur_status *status, const char **message) {
    char key[256];
    snprintf(key, sizeof key, "/%s:", file);
    int found = 0;
    size_t n = recur_plugin_error_count();
    for (size_t i = 0; i < n; i++) {
        recur_status st;
        const char *msg = NULL;
        cr_assert_eq(recur_plugin_error_get(i, &st, &msg), RECUR_OK, "recur_plugin_error_get(%zu): %s", i,
                     recur_last_error());
        cr_assert(msg, "reject %zu has a NULL message", i);
        if (strstr(msg, key)) {
            cr_assert_eq(found, 0, "two rejects name %s (second: %s)", file, msg);
            found = 1;
            *status = st;
            *message = msg;
        }
    }
    cr_assert(found, "no reject names %s (%zu rejects)", file, n);
}

/* The registered cell called `name`, or 0. */
static int cell_by_name(const char *name, recur_cell_info *out) {
    size_t n = recur_cell_count();
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        cr_assert_eq(recur_cell_get(i, &c), RECUR_OK, "recur_cell_get(%zu): %s", i, recur_last_error());
        if (strcmp(c.name, name) == 0) {
            *out = c;
            return 1;
        }
    }
    return 0;
}

/* ---- each broken plugin: its status and a message naming its full path ---- */

Test(loader, every_broken_plugin_has_its_status_and_path) {
    for (size_t b = 0; b < N_BROKEN; b++) {
        char path[4096];
        bad_path(broken[b].file, path, sizeof path);
        recur_status st;
        const char *msg;
        find_reject(broken[b].file, &st, &msg);
        cr_expect_eq(st, broken[b].status, "%s: status %s, expected %s (message: %s)", broken[b].file,
                     recur_status_str(st), recur_status_str(broken[b].status), msg);
        cr_expect(strstr(msg, path) != NULL, "%s: message does not name the full path %s: %s", broken[b].file,
                  path, msg);
    }
}

Test(loader, reject_count_is_the_number_of_broken_files) {
    size_t n = recur_plugin_error_count();
    if (n != N_BROKEN)
        for (size_t i = 0; i < n; i++) {
            recur_status st;
            const char *msg;
            recur_plugin_error_get(i, &st, &msg);
            cr_log_error("reject %zu: %s %s", i, recur_status_str(st), msg);
        }
    cr_assert_eq(n, N_BROKEN, "%zu plugins rejected, expected exactly %zu", n, N_BROKEN);
}

Test(loader, reject_index_out_of_range) {
    recur_status st = RECUR_OK;
    const char *msg = "untouched";
    size_t n = recur_plugin_error_count();
    cr_assert_eq(recur_plugin_error_get(n, &st, &msg), RECUR_ERR_ARG);
    cr_assert_eq(st, RECUR_OK, "a failed call wrote *status");
    cr_assert_str_eq(msg, "untouched", "a failed call wrote *message");
    cr_assert(strlen(recur_last_error()) > 0);
}

Test(loader, no_entry_names_the_symbol) {
    recur_status st;
    const char *msg;
    find_reject("no-entry.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_SYMBOL, "%s", msg);
    cr_assert(strstr(msg, RECUR_CELL_ENTRY_NAME), "the message does not name the symbol: %s", msg);
}

Test(loader, init_fails_gives_the_return_value) {
    recur_status st;
    const char *msg;
    find_reject("init-fails.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_INIT, "%s", msg);
    cr_assert(strstr(msg, "3"), "the message does not give the entry's return value 3: %s", msg);
}

Test(loader, abi_major_shows_both_versions) {
    recur_status st;
    const char *msg;
    find_reject("abi-major.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_ABI, "%s", msg);
    char host[32];
    snprintf(host, sizeof host, "%d.%d", RECUR_CELL_ABI_MAJOR, RECUR_CELL_ABI_MINOR);
    cr_assert(strstr(msg, "1.0"), "the plugin's version 1.0 is not in: %s", msg);
    cr_assert(strstr(msg, host), "the host's version %s is not in: %s", host, msg);
}

Test(loader, too_small_shows_the_size) {
    recur_status st;
    const char *msg;
    find_reject("too-small.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_SIZE, "%s", msg);
    cr_assert(strstr(msg, "16"), "the plugin's struct_size 16 is not in: %s", msg);
    /* ... and the least size the host accepts: ABI 2.0's descriptor. */
    char min[32];
    snprintf(min, sizeof min, "%zu", offsetof(struct recur_cell_desc, sources) + sizeof(void *));
    cr_assert(strstr(msg, min), "the minimum size %s is not in: %s", min, msg);
}

Test(loader, no_cpu_and_invalid_are_not_registered) {
    recur_status st;
    const char *msg;
    recur_cell_info c;
    find_reject("no-cpu.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_NO_CPU, "%s", msg);
    find_reject("invalid.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_INVALID, "%s", msg);
    cr_assert(strstr(msg, "bias_ih") && strstr(msg, "parameter"), "the message does not say what is invalid: %s", msg);
    find_reject("save-overrun.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_INVALID, "%s", msg);
    cr_assert(strstr(msg, "cell 'save-overrun'") && strstr(msg, "forward kernel of stage 0") &&
                  strstr(msg, "floats past the end of save") && strstr(msg, "n_save = 1"),
              "the message does not name the cell, the stage's forward kernel and save, overrun: %s", msg);
    find_reject("row-overrun.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_INVALID, "%s", msg);
    cr_assert(strstr(msg, "cell 'row-overrun'") && strstr(msg, "forward kernel of stage 0") &&
                  strstr(msg, "wrote up to 1 float past the end of next[0]"),
              "the message does not name the cell, the stage's forward kernel and next[0]: %s", msg);
    find_reject("writes-input.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_INVALID, "%s", msg);
    cr_assert(strstr(msg, "wrote into prev[0], which it may only read"), "the message does not name prev[0]: %s", msg);
    static const char *const refused[] = {"no-entry", "init-fails", "abi-major",    "too-small",     "no-cpu",
                                          "invalid",  "bad-variants", "bad-cpu-count", "save-overrun", "writes-input",
                                          "bad-param", "bad-flags", "fake-projectable", "proj-dprev", "row-overrun"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_assert(!cell_by_name(refused[i], &c), "cell '%s' of a rejected plugin is registered (from %s)",
                  refused[i], c.path);
}

/* A count out of range is named with its value, not reported as something missing. */
Test(loader, bad_counts_name_the_value) {
    static const struct {
        const char *file, *text;
    } cases[] = {{"bad-variants.so", "n_variants -1"}, {"bad-cpu-count.so", "n_cpu 1000000"},
                 {"bad-param.so", "parameter 'gain': rows 0"}, {"bad-flags.so", "unknown bits 0x200"},
                 {"fake-projectable.so", "RECUR_CELL_PROJECTABLE, but its kernels read prev[0]"},
                 {"proj-dprev.so", "RECUR_CELL_PROJECTABLE, but its backward kernels leave"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        recur_status st;
        const char *msg;
        find_reject(cases[i].file, &st, &msg);
        cr_expect_eq(st, RECUR_ERR_PLUGIN_INVALID, "%s", msg);
        cr_expect(strstr(msg, cases[i].text), "'%s' is not in: %s", cases[i].text, msg);
    }
}

Test(loader, duplicate_names_both_files) {
    recur_status st;
    const char *msg;
    find_reject("dup-lstm.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_DUPLICATE, "%s", msg);
    char dup[4096];
    bad_path("dup-lstm.so", dup, sizeof dup);
    recur_cell_info lstm;
    cr_assert(cell_by_name("lstm", &lstm), "the real lstm is not registered");
    cr_assert(strstr(msg, dup), "the duplicate's path %s is not in: %s", dup, msg);
    cr_assert(strstr(msg, lstm.path), "the first registrant's path %s is not in: %s", lstm.path, msg);
    cr_assert(strstr(msg, "lstm"), "the cell name is not in: %s", msg);
}

Test(loader, garbage_gives_dlerror_text) {
    char path[4096];
    bad_path("garbage.so", path, sizeof path);
    recur_status st;
    const char *msg;
    find_reject("garbage.so", &st, &msg);
    cr_assert_eq(st, RECUR_ERR_PLUGIN_OPEN, "%s", msg);
    /* What dlopen itself says about the file. */
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_null(h, "%s is loadable: it should be a text file", path);
    const char *e = dlerror();
    cr_assert(e && *e);
    cr_assert(strstr(msg, e), "dlerror's text '%s' is not in: %s", e, msg);
}

/* ---- the good cells survive the bad ones ---- */

Test(loader, real_cells_still_registered) {
    static const struct {
        const char *name;
        int gates, states, projectable;
    } real[] = {{"rnn", 1, 1, 0}, {"gru", 3, 1, 0}, {"gru-lbr", 3, 1, 0}, {"lstm", 4, 2, 1}, {"lstm-peephole", 4, 2, 1},
                {"lstm-ln", 4, 2, 1}};
    char good[2048];
    path_dir(0, good, sizeof good);
    size_t n = recur_cell_count();
    cr_assert_geq(n, 5, "%zu cells registered: expected the 4 real ones and echo-test", n);
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        recur_cell_info c;
        cr_assert(cell_by_name(real[i].name, &c), "cell '%s' is not registered", real[i].name);
        cr_expect_eq(c.n_gates, real[i].gates, "%s: n_gates %d", real[i].name, c.n_gates);
        cr_expect_eq(c.n_states, real[i].states, "%s: n_states %d", real[i].name, c.n_states);
        cr_expect_eq(c.projectable, real[i].projectable, "%s: projectable %d", real[i].name, c.projectable);
        cr_expect(strncmp(c.path, good, strlen(good)) == 0 && c.path[strlen(good)] == '/',
                  "%s comes from %s, not from the good plugin directory %s", real[i].name, c.path, good);
    }
    /* Names are unique, and recur_cell_get past the end fails cleanly. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            recur_cell_info a, b;
            recur_cell_get(i, &a);
            recur_cell_get(j, &b);
            cr_assert(strcmp(a.name, b.name) != 0, "cell '%s' is registered twice (%s, %s)", a.name, a.path,
                      b.path);
        }
    recur_cell_info c;
    cr_assert_eq(recur_cell_get(n, &c), RECUR_ERR_ARG);
}

/* RECUR_CELL_CPU_TABLES gives every built-in cell one CPU variant per ISA of
 * the architecture compiled: the bits RECUR_ISA_LIST lists for it. */
Test(loader, real_cells_have_every_isa_of_the_architecture) {
    uint32_t want = 0;
#define ISA_BIT(u, ID, name, bit, arch, implies, flags) RECUR_ISA_IF(arch)(want |= (bit);)
    RECUR_ISA_LIST(ISA_BIT, )
#undef ISA_BIT
#if defined(__x86_64__)
    cr_assert_eq(want, RECUR_ISA_AVX2 | RECUR_ISA_AVX512, "x86-64 ISAs 0x%x", want);
#endif
    static const char *const real[] = {"rnn", "gru", "gru-lbr", "lstm"};
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        recur_cell_info c;
        cr_assert(cell_by_name(real[i], &c), "cell '%s' is not registered", real[i]);
        cr_expect_eq(c.cpu_isa, want, "%s: CPU variants 0x%x, expected 0x%x", real[i], c.cpu_isa, want);
    }
}

/* The ISA bits are part of the cell ABI: plugins built against older headers store them. */
Test(loader, isa_bits_are_fixed) {
    cr_assert_eq(RECUR_ISA_SCALAR, 0);
    cr_assert_eq(RECUR_ISA_AVX2, 1u << 0);
    cr_assert_eq(RECUR_ISA_AVX512, 1u << 1);
    cr_assert_eq(RECUR_ISA_NEON, 1u << 2);
}

Test(loader, lstm_is_the_real_one) {
    recur_cell_info c;
    cr_assert(cell_by_name("lstm", &c));
    cr_assert(strstr(c.path, "dup-lstm") == NULL, "lstm comes from the duplicate %s", c.path);
    const char *base = strrchr(c.path, '/');
    cr_assert(base && strcmp(base, "/lstm.so") == 0, "lstm comes from %s", c.path);
    cr_assert_eq(c.n_gates, 4);
    cr_assert_eq(c.n_states, 2);
}

Test(loader, unknown_cell_lists_the_cells) {
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    recur_layer *l = NULL;
    recur_layer_desc d = {.cell = "no-such-cell", .input_size = 3, .hidden_size = 4};
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_CELL);
    cr_assert_null(l);
    const char *msg = recur_ctx_error(ctx);
    cr_assert(strstr(msg, "no-such-cell"), "the unknown name is not in: %s", msg);
    size_t n = recur_cell_count();
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        recur_cell_get(i, &c);
        cr_assert(strstr(msg, c.name), "registered cell '%s' is not listed in: %s", c.name, msg);
    }
    /* A rejected plugin's cell is unknown too. */
    d.cell = "no-cpu";
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_CELL);
    recur_ctx_free(ctx);
}

/* ---- a third-party plugin from another directory loads and runs ---- */

/* exact-save.so flags RECUR_CELL_SAVE_EXACT (ABI 2.2): it loads, and its
 * layers keep their saved values in float32 and refuse bf16 ones by name. */
Test(loader, save_exact_cell_keeps_f32_saves) {
    recur_cell_info c;
    cr_assert(cell_by_name("exact-save-test", &c), "exact-save.so did not register exact-save-test");
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    recur_model_desc d = {.cell = "exact-save-test", .input_size = 2, .hidden_size = 3, .num_layers = 2};
    recur_model *m;
    cr_assert_eq(recur_model_create(ctx, &d, &m), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_set_saved_dtype(m, RECUR_DTYPE_BF16), RECUR_ERR_UNSUPPORTED);
    cr_assert(strstr(recur_ctx_error(ctx), "'exact-save-test'") && strstr(recur_ctx_error(ctx), "SAVE_EXACT"), "%s",
              recur_ctx_error(ctx));
    cr_assert_eq(recur_model_saved_dtype(m), RECUR_DTYPE_F32);
    cr_assert_eq(recur_model_set_saved_dtype(m, RECUR_DTYPE_F32), RECUR_OK);
    /* with its saved value in float32, a training forward and backward run (zero weights) */
    float x[2 * 2 * 2] = {1, -1, 0.5f, 2, -0.25f, 1, 3, 0}, y[2 * 2 * 3], dy[2 * 2 * 3], dx[2 * 2 * 2];
    for (int i = 0; i < 12; i++) dy[i] = 0.1f * (float)(i - 5);
    recur_model_io io = {.T = 2, .N = 2, .x = x, .y = y};
    recur_model_grad_io g = {.dy = dy, .dx = dx};
    cr_assert_eq(recur_model_forward(m, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_ctx_free(ctx);
}

Test(loader, echo_plugin_registered) {
    recur_cell_info c;
    cr_assert(cell_by_name("echo-test", &c), "the good plugin echo.so did not register echo-test");
    char path[4096];
    bad_path("echo.so", path, sizeof path);
    cr_assert_str_eq(c.path, path);
    cr_assert_eq(c.n_gates, 1);
    cr_assert_eq(c.n_states, 1);
    cr_assert_eq(c.n_variants, 0);
    cr_assert_eq(c.cpu_isa, RECUR_ISA_SCALAR);
    cr_assert_str_eq(c.backends, "cpu");
    cr_assert_eq(c.n_params, 0);
    cr_assert_eq(c.projectable, 0);
    cr_assert_eq(c.struct_size, sizeof c);
    cr_assert_str_eq(c.version, "0.1");
}

/*
 * echo-test, I = 2, H = 2, T = 2, N = 2: a^{<t>} = W_ih x + b_ih + b_hh + W_hh a^{<t-1>}.
 *   W_ih = [[1, 2], [3, 4]], W_hh = [[0.5, 0], [0, -1]], b_ih = [0.25, -0.5], b_hh = [1, 0]
 *   so b = b_ih + b_hh = [1.25, -0.5]
 *   x^{<1>} = {n0: [1, 0], n1: [0, 1]}, x^{<2>} = {n0: [2, 1], n1: [-1, 1]}, h0 = {n0: [0, 0], n1: [2, -2]}
 * By hand:
 *   t1 n0: [1, 3] + b + [0, 0]            = [2.25, 2.5]
 *   t1 n1: [2, 4] + b + [1, 2]            = [4.25, 5.5]
 *   t2 n0: [4, 10] + b + [1.125, -2.5]    = [6.375, 7]
 *   t2 n1: [1, 1] + b + [2.125, -5.5]     = [4.375, -5]
 * Backward with dhT = {n0: [1, 0], n1: [0, 1]} and no dy: the identity cell
 * passes the gradient through, so dh0 = W_hh^T W_hh^T dhT = {[0.25, 0], [0, 1]}.
 */
Test(loader, echo_plugin_forward_and_backward) {
    static const float w[] = {
        1, 2, 3, 4,      /* W_ih */
        0.5f, 0, 0, -1,  /* W_hh */
        0.25f, -0.5f,    /* b_ih */
        1, 0,            /* b_hh */
    };
    static const float x[] = {1, 0, 0, 1, 2, 1, -1, 1};
    static const float h0[] = {0, 0, 2, -2};
    static const float want_y[] = {2.25f, 2.5f, 4.25f, 5.5f, 6.375f, 7.0f, 4.375f, -5.0f};
    static const float dhT[] = {1, 0, 0, 1};
    static const float want_dh0[] = {0.25f, 0, 0, 1};
    static const char *const devices[] = {"cpu", "cpu:scalar"};

    for (size_t dv = 0; dv < sizeof devices / sizeof devices[0]; dv++) {
        recur_ctx *ctx = NULL;
        cr_assert_eq(recur_ctx_create(&ctx, devices[dv]), RECUR_OK, "%s: %s", devices[dv], recur_last_error());
        recur_layer *l = NULL;
        recur_layer_desc d = {.cell = "echo-test", .input_size = 2, .hidden_size = 2};
        cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
        cr_assert_eq(recur_layer_weight_count(l), 12);
        const char *gate = NULL;
        cr_assert_eq(recur_layer_gate_name(l, 0, &gate), RECUR_OK);
        cr_assert_str_eq(gate, "a");
        cr_assert_eq(recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, w, 12), RECUR_OK, "%s",
                     recur_ctx_error(ctx));

        for (int mode = RECUR_MODE_INFERENCE; mode <= RECUR_MODE_TRAINING; mode++) {
            float y[8], hT[4];
            memset(y, 0xff, sizeof y);
            memset(hT, 0xff, sizeof hT);
            recur_io io = {.T = 2, .N = 2, .x = x, .h0 = h0, .y = y, .hT = hT};
            cr_assert_eq(recur_layer_forward(l, (recur_mode)mode, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
            for (int i = 0; i < 8; i++)
                cr_assert_float_eq(y[i], want_y[i], 1e-6, "%s mode %d: y[%d] = %g, by hand %g", devices[dv], mode,
                                   i, (double)y[i], (double)want_y[i]);
            for (int i = 0; i < 4; i++)
                cr_assert_float_eq(hT[i], want_y[4 + i], 1e-6, "%s mode %d: hT[%d] = %g", devices[dv], mode, i,
                                   (double)hT[i]);
            if (mode == RECUR_MODE_TRAINING) {
                float dh0[4], dx[8];
                recur_grad_io g = {.dhT = dhT, .dh0 = dh0, .dx = dx};
                cr_assert_eq(recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s",
                             recur_ctx_error(ctx));
                for (int i = 0; i < 4; i++)
                    cr_assert_float_eq(dh0[i], want_dh0[i], 1e-6, "%s: dh0[%d] = %g, by hand %g", devices[dv], i,
                                       (double)dh0[i], (double)want_dh0[i]);
                /* dx^{<2>} = W_ih^T dhT, dx^{<1>} = W_ih^T W_hh^T dhT */
                static const float want_dx[] = {0.5f, 1.0f, -3.0f, -4.0f, 1, 2, 3, 4};
                for (int i = 0; i < 8; i++)
                    cr_assert_float_eq(dx[i], want_dx[i], 1e-6, "%s: dx[%d] = %g, by hand %g", devices[dv], i,
                                       (double)dx[i], (double)want_dx[i]);
            }
        }
        recur_ctx_free(ctx); /* frees the layer */
    }
}

/* ---- where plugins load from: marker.so in places refused and allowed ---- */

/* A scratch directory (mode 0700, ours) under TMPDIR or /tmp, and its marker file's path. */
struct scratch {
    char dir[1024], marker[1100];
};

static void scratch_make(struct scratch *s) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/recur-loader-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(s->dir), "mkdtemp %s: %s", s->dir, strerror(errno));
    snprintf(s->marker, sizeof s->marker, "%s/marker-ran", s->dir);
    cr_assert_eq(setenv("RECUR_TEST_MARKER", s->marker, 1), 0);
    unsetenv("RECUR_PLUGIN_TRUST_ANY");
}

static void scratch_remove(const struct scratch *s) {
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    cr_expect_eq(system(cmd), 0, "%s failed", cmd);
}

/* `rel` under the scratch directory, as an absolute path. */
static const char *at(const struct scratch *s, const char *rel) {
    static char buf[4][2048];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", s->dir, rel);
    return p;
}

static void make_dir(const char *path, mode_t mode) {
    cr_assert_eq(mkdir(path, 0700), 0, "mkdir %s: %s", path, strerror(errno));
    cr_assert_eq(chmod(path, mode), 0, "chmod %s: %s", path, strerror(errno)); /* past the umask */
}

/* Copy tests/marker-plugin's marker.so to `path` with `mode`. */
static void copy_marker(const char *path, mode_t mode) {
    const char *from = getenv("RECUR_TEST_MARKER_PLUGIN");
    cr_assert(from && *from, "RECUR_TEST_MARKER_PLUGIN is not set: run this test through meson test");
    FILE *in = fopen(from, "rb");
    cr_assert(in, "%s: %s", from, strerror(errno));
    FILE *out = fopen(path, "wb");
    cr_assert(out, "%s: %s", path, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) cr_assert_eq(fwrite(buf, 1, n, out), n, "writing %s", path);
    fclose(in);
    cr_assert_eq(fclose(out), 0, "writing %s", path);
    cr_assert_eq(chmod(path, mode), 0, "chmod %s: %s", path, strerror(errno));
}

/* <scratch>/rel with `mode`, holding a copy of marker.so (0755); its path. */
static const char *marker_dir(const struct scratch *s, const char *rel, mode_t mode) {
    char file[1024];
    snprintf(file, sizeof file, "%s/marker.so", rel);
    make_dir(at(s, rel), mode);
    copy_marker(at(s, file), 0755);
    return at(s, rel);
}

/* Load the plugins with RECUR_PLUGIN_PATH = path (the first call of the process that loads them). */
static void load_with_path(const char *path) {
    cr_assert_eq(setenv("RECUR_PLUGIN_PATH", path, 1), 0);
    (void)recur_cell_count();
}

static int marker_ran(const struct scratch *s) {
    return access(s->marker, F_OK) == 0;
}

/* The message of the rejection with `status` whose message has `a` and `b` (b may be NULL); fails the test
 * listing every rejection when there is none. */
static const char *rejected(recur_status status, const char *a, const char *b) {
    size_t n = recur_plugin_error_count();
    for (size_t i = 0; i < n; i++) {
        recur_status st;
        const char *msg;
        cr_assert_eq(recur_plugin_error_get(i, &st, &msg), RECUR_OK);
        if (st == status && strstr(msg, a) && (!b || strstr(msg, b))) return msg;
    }
    for (size_t i = 0; i < n; i++) {
        recur_status st;
        const char *msg;
        recur_plugin_error_get(i, &st, &msg);
        cr_log_error("rejection %zu: %s %s", i, recur_status_str(st), msg);
    }
    cr_assert_fail("no %s rejection names '%s'%s%s (%zu rejections)", recur_status_str(status), a, b ? " and " : "",
                   b ? b : "", n);
    return NULL;
}

/* Relative and empty entries would mean the current directory: refused and named, though it holds plugins. */
Test(loader, path_relative_and_empty_entries_refused) {
    struct scratch s;
    scratch_make(&s);
    marker_dir(&s, "rel", 0755);
    copy_marker(at(&s, "marker.so"), 0755);
    cr_assert_eq(chdir(s.dir), 0);
    load_with_path("rel:.::");
    cr_expect(!marker_ran(&s), "a plugin of the current directory ran");
    rejected(RECUR_ERR_PLUGIN_PATH, "'rel'", "relative");
    rejected(RECUR_ERR_PLUGIN_PATH, "'.'", "relative");
    rejected(RECUR_ERR_PLUGIN_PATH, "'rel:.::': entry 3 is empty", NULL);
    rejected(RECUR_ERR_PLUGIN_PATH, "'rel:.::': entry 4 is empty", NULL);
    cr_assert_eq(chdir("/"), 0);
    scratch_remove(&s);
}

/* One search directory holding marker.so, and what the loader must make of it. Arrays, not pointers:
 * Criterion hands a test's parameters to a process of its own, where the addresses differ. */
struct place {
    char dir[16];         /* the search directory, under the scratch directory */
    mode_t parent_mode;   /* of its parent, when that is not the scratch directory itself (else 0) */
    mode_t dir_mode, file_mode;
    char nobody[8];       /* "dir" or "file": given to uid 65534 (root only), or "" */
    char trust[4];        /* RECUR_PLUGIN_TRUST_ANY, or "" for unset */
    char named[16];       /* "": marker.so must run; else a refusal names <scratch>/named ... */
    char why[48];         /* ... and says this */
};

ParameterizedTestParameters(loader, path_place) {
    static struct place places[] = {
        /* the controls: ours, not world-writable; a sticky ancestor (as /tmp); RECUR_PLUGIN_TRUST_ANY=1 */
        {"ok", 0, 0755, 0755, "", "", "", ""},
        {"tmp/plugins", 01777, 0755, 0755, "", "", "", ""},
        {"ww", 0, 0777, 0777, "", "1", "", ""},
        /* world-writable: the directory (the sticky bit does not help: anyone can add a file), the file, an
         * ancestor without the sticky bit (anyone can swap the directory) */
        {"ww", 0, 0777, 0755, "", "", "ww", "the directory is world-writable"},
        {"sticky", 0, 01777, 0755, "", "", "sticky", "the directory is world-writable"},
        {"d", 0, 0755, 0777, "", "", "d/marker.so", "the file is world-writable"},
        {"open/plugins", 0777, 0755, 0755, "", "", "open/plugins", "is world-writable without the sticky bit"},
        {"ww", 0, 0777, 0755, "", "0", "ww", "the directory is world-writable"},
        /* another user's */
        {"d", 0, 0755, 0755, "file", "", "d/marker.so", "the file is owned by uid 65534"},
        {"d", 0, 0755, 0755, "dir", "", "d", "the directory is owned by uid 65534"},
    };
    return cr_make_param_array(struct place, places, sizeof places / sizeof places[0]);
}

ParameterizedTest(struct place *p, loader, path_place) {
    struct scratch s;
    scratch_make(&s);
    if (p->parent_mode) {
        char parent[1024];
        snprintf(parent, sizeof parent, "%s", p->dir);
        *strrchr(parent, '/') = 0;
        make_dir(at(&s, parent), p->parent_mode);
    }
    make_dir(at(&s, p->dir), p->dir_mode);
    char file[1024];
    snprintf(file, sizeof file, "%s/marker.so", p->dir);
    copy_marker(at(&s, file), p->file_mode);
    if (*p->nobody) {
        const char *who = at(&s, strcmp(p->nobody, "dir") == 0 ? p->dir : file);
        if (geteuid() != 0) cr_skip_test("not root: cannot give %s to another user", who);
        cr_assert_eq(chown(who, 65534, 65534), 0, "chown %s: %s", who, strerror(errno));
    }
    if (*p->trust) cr_assert_eq(setenv("RECUR_PLUGIN_TRUST_ANY", p->trust, 1), 0);
    load_with_path(at(&s, p->dir));
    if (*p->named) {
        cr_expect(!marker_ran(&s), "%s (mode %o, file mode %o): marker.so ran", p->dir, (unsigned)p->dir_mode,
                  (unsigned)p->file_mode);
        rejected(RECUR_ERR_PLUGIN_UNTRUSTED, at(&s, p->named), p->why);
        /* asking for the refused cell says that something was refused */
        recur_ctx *ctx = NULL;
        cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
        recur_layer *l = NULL;
        recur_layer_desc d = {.cell = "marker-test", .input_size = 3, .hidden_size = 4};
        cr_expect_eq(recur_layer_create(ctx, &d, &l), RECUR_ERR_UNKNOWN_CELL);
        cr_expect(strstr(recur_ctx_error(ctx), "; refused: 1 ("), "%s", recur_ctx_error(ctx));
        recur_ctx_free(ctx);
    } else {
        recur_cell_info c;
        cr_expect(marker_ran(&s), "%s (mode %o, file mode %o): marker.so did not run", p->dir,
                  (unsigned)p->dir_mode, (unsigned)p->file_mode);
        cr_expect(cell_by_name("marker-test", &c), "%s: marker-test is not registered", p->dir);
        cr_expect_eq(recur_plugin_error_count(), 0, "%s: a trusted directory gave a rejection", p->dir);
    }
    scratch_remove(&s);
}

Test(loader, path_trust_any_other_value_named_and_checks_stay) {
    struct scratch s;
    scratch_make(&s);
    marker_dir(&s, "ww", 0777);
    cr_assert_eq(setenv("RECUR_PLUGIN_TRUST_ANY", "yes", 1), 0);
    load_with_path(at(&s, "ww"));
    cr_expect(!marker_ran(&s), "RECUR_PLUGIN_TRUST_ANY=yes turned the checks off");
    rejected(RECUR_ERR_PLUGIN_PATH, "RECUR_PLUGIN_TRUST_ANY 'yes'", NULL);
    rejected(RECUR_ERR_PLUGIN_UNTRUSTED, at(&s, "ww"), "world-writable");
    scratch_remove(&s);
}

/* x.so that is a directory (holding a plugin), a FIFO, a dangling link and a link loop: each is listed with
 * its reason and none is opened (a FIFO would block the open; the test's timeout catches that), and the good
 * plugin beside them still loads. */
Test(loader, path_names_that_are_not_plugins_listed, .timeout = 20) {
    struct scratch s;
    scratch_make(&s);
    make_dir(at(&s, "d"), 0755);
    marker_dir(&s, "d/x.so", 0755);
    cr_assert_eq(mkfifo(at(&s, "d/fifo.so"), 0644), 0, "mkfifo: %s", strerror(errno));
    cr_assert_eq(mkfifo(at(&s, "d/pipe"), 0644), 0, "mkfifo: %s", strerror(errno));
    cr_assert_eq(symlink(at(&s, "d/none"), at(&s, "d/dangling.so")), 0);
    cr_assert_eq(symlink("loop.so", at(&s, "d/loop.so")), 0);
    load_with_path(at(&s, "d"));
    cr_expect(!marker_ran(&s), "the marker.so inside the directory x.so ran: x.so was searched");
    rejected(RECUR_ERR_PLUGIN_OPEN, at(&s, "d/x.so"), "a directory, not a shared object");
    rejected(RECUR_ERR_PLUGIN_OPEN, at(&s, "d/fifo.so"), "a FIFO");
    rejected(RECUR_ERR_PLUGIN_OPEN, at(&s, "d/pipe"), "a FIFO");
    rejected(RECUR_ERR_PLUGIN_OPEN, at(&s, "d/dangling.so"), "dangling symbolic link");
    rejected(RECUR_ERR_PLUGIN_OPEN, at(&s, "d/loop.so"), "symbolic link loop");
    cr_expect_eq(recur_plugin_error_count(), 5);
    scratch_remove(&s);
}

/* A directory named twice (also through a link) is searched once: no duplicate of its own cells. */
Test(loader, path_directory_named_twice_searched_once) {
    struct scratch s;
    scratch_make(&s);
    marker_dir(&s, "d", 0755);
    cr_assert_eq(symlink(at(&s, "d"), at(&s, "link")), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s:%s:%s", at(&s, "d"), at(&s, "link"), at(&s, "d"));
    load_with_path(path);
    recur_cell_info c;
    cr_expect(cell_by_name("marker-test", &c), "marker-test is not registered");
    cr_expect_eq(recur_plugin_error_count(), 0, "searching a directory again gave a rejection");
    scratch_remove(&s);
}

/* recur_plugin_dir_add: searched after RECUR_PLUGIN_PATH (whose cells shadow its own, silently), before
 * the first load only. */
Test(loader, dir_add_searches_after_the_path) {
    struct scratch s;
    scratch_make(&s);
    marker_dir(&s, "added", 0755);
    marker_dir(&s, "path", 0755);
    cr_assert_eq(recur_plugin_dir_add(NULL), RECUR_ERR_NULL);
    cr_assert_eq(recur_plugin_dir_add("plugins"), RECUR_ERR_ARG);
    cr_assert(strstr(recur_last_error(), "'plugins'"), "the relative path is not named: %s", recur_last_error());
    cr_assert_eq(recur_plugin_dir_add(at(&s, "added")), RECUR_OK, "%s", recur_last_error());
    cr_assert_eq(recur_plugin_dir_add(at(&s, "missing")), RECUR_OK, "%s", recur_last_error());
    load_with_path(at(&s, "path"));
    recur_cell_info c;
    cr_assert(cell_by_name("marker-test", &c), "marker-test is not registered");
    cr_expect(strstr(c.path, "/path/marker.so"), "marker-test comes from %s, not RECUR_PLUGIN_PATH's copy", c.path);
    cr_expect_eq(recur_plugin_error_count(), 0, "the shadowed copy in the added directory gave a rejection");
    cr_assert_eq(recur_plugin_dir_add(at(&s, "later")), RECUR_ERR_STATE);
    cr_assert(strstr(recur_last_error(), "later"), "the directory is not named: %s", recur_last_error());
    scratch_remove(&s);
}

/* Setting RECUR_PLUGIN_PATH does not hide an added directory's cells (the tool adds a build tree's plugins). */
Test(loader, dir_add_cells_load_beside_the_path) {
    struct scratch s;
    scratch_make(&s);
    marker_dir(&s, "added", 0755);
    char good[2048];
    path_dir(0, good, sizeof good);
    cr_assert_eq(recur_plugin_dir_add(at(&s, "added")), RECUR_OK, "%s", recur_last_error());
    load_with_path(good);
    recur_cell_info c;
    cr_expect(marker_ran(&s), "marker.so of the added directory did not run");
    cr_expect(cell_by_name("marker-test", &c), "the added directory's cell is hidden by RECUR_PLUGIN_PATH");
    cr_expect(cell_by_name("lstm", &c), "RECUR_PLUGIN_PATH's lstm is missing");
    scratch_remove(&s);
}
