/*
 * fuzz-load.c: libFuzzer target of the file readers (core/modelfile.c and
 * core/trainfile.c, on core/safetensors.c and core/schema.c).
 *
 * Each input is a whole file. It goes through the loader twice, from memory
 * (the same parser recur_model_load and recur_model_load_weights run on a
 * file's bytes), with and without RECUR_LOAD_CHECK_FINITE:
 *   - recur_model_load onto a context with the build's real plugins;
 *   - recur_model_load_weights into a fixed 2-layer bidirectional lstm.
 * Then as a training file (recur-train.h): recur_file_open from memory, and
 * when that succeeds, recur_file_get_net of the net under "" and under
 * "encoder.", which must fail with a file status (or a missing plugin's)
 * and make no net, or make one; for the net under "", an optimizer of the
 * kind "optim.kind" names (Adam unless "sgd") and recur_file_get_optim,
 * which must succeed or fail with a file status.
 * Besides the sanitizers' findings, it aborts when a call breaks the
 * contract: a status other than RECUR_OK, RECUR_ERR_NO_MEMORY or a
 * RECUR_ERR_FILE_* code (so a file the checks let through cannot fail
 * later in recur_model_create), a model or no model against the status, a
 * message that does not name the file, or weights changed by a failed
 * load_weights.
 *
 * Build (clang; see tests/fuzz/meson.build) and run:
 *   CC=clang meson setup build-fuzz -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
 *       -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link -Dopencl=disabled -Dbench=false
 *   ninja -C build-fuzz fuzz
 *   meson test -C build-fuzz --suite fuzz --no-rebuild    (every seed once)
 *   mkdir -p build-fuzz/corpus
 *   build-fuzz/tests/fuzz/fuzz-load -max_total_time=60 -timeout=10 -rss_limit_mb=4096 \
 *       -error_exitcode=1 build-fuzz/corpus tests/fuzz/corpus
 * New inputs go to the first directory (build-fuzz/corpus), never into the
 * committed seeds. RECUR_PLUGIN_PATH defaults to the build's plugins.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* core/model.h declares the loaders on a buffer: internal, reached by
 * linking the library's objects (they are hidden in librecur.so). */
#include "model.h"
#include "net.h"

#define NAME "fuzz-input.safetensors"

static recur_ctx *ctx;
static recur_model *target;
static float *before, *after;
static size_t n_weights;

static void die(const char *what, recur_status st) {
    fprintf(stderr, "fuzz-load: %s (%s): %s\n", what, recur_status_str(st), ctx ? recur_ctx_error(ctx) : "");
    abort();
}

static void get_weights(float *dst) {
    size_t at = 0;
    for (size_t i = 0; i < recur_model_param_count(target); i++) {
        recur_param_info info;
        recur_status st = recur_model_param_info(target, i, &info);
        if (st == RECUR_OK) st = recur_model_param_get(target, info.name, dst + at, info.count);
        if (st != RECUR_OK) die("reading the target's weights", st);
        at += info.count;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    setenv("RECUR_PLUGIN_PATH", FUZZ_PLUGIN_PATH, 0);
    recur_status st = recur_ctx_create(&ctx, "cpu:scalar");
    if (st != RECUR_OK) {
        fprintf(stderr, "fuzz-load: recur_ctx_create: %s\n", recur_last_error());
        abort();
    }
    if (recur_cell_count() < 4) {
        fprintf(stderr, "fuzz-load: only %zu cells from RECUR_PLUGIN_PATH=%s\n", recur_cell_count(),
                getenv("RECUR_PLUGIN_PATH"));
        abort();
    }
    recur_model_desc d = {.cell = "lstm", .input_size = 2, .hidden_size = 3, .num_layers = 2,
                          .direction = RECUR_DIR_BIDI_CONCAT};
    if ((st = recur_model_create(ctx, &d, &target)) != RECUR_OK) die("recur_model_create", st);
    for (size_t i = 0; i < recur_model_param_count(target); i++) {
        recur_param_info info;
        recur_model_param_info(target, i, &info);
        n_weights += info.count;
    }
    before = calloc(n_weights, sizeof *before);
    after = calloc(n_weights, sizeof *after);
    if (!before || !after) abort();
    for (size_t i = 0; i < n_weights; i++) before[i] = (float)i * 0.25f - 3.0f;
    size_t at = 0;
    for (size_t i = 0; i < recur_model_param_count(target); i++) {
        recur_param_info info;
        recur_model_param_info(target, i, &info);
        if ((st = recur_model_param_set(target, info.name, before + at, info.count)) != RECUR_OK)
            die("recur_model_param_set", st);
        at += info.count;
    }
    return 0;
}

static int file_status(recur_status st) {
    return st == RECUR_ERR_NO_MEMORY || (st <= RECUR_ERR_FILE_TRUNCATED && st >= RECUR_ERR_FILE_NONFINITE);
}

/* The optimizer state of a file whose net loaded. */
static void get_optim(const recur_file *tf, recur_net *net) {
    const char *kind = recur_file_meta(tf, "optim.kind");
    recur_optim_desc d = {.kind = kind && !strcmp(kind, "sgd") ? RECUR_OPTIM_SGD : RECUR_OPTIM_ADAM, .lr = 0.01f,
                          .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    recur_optim *o;
    recur_status st = recur_optim_create(&net, 1, &d, &o);
    if (st == RECUR_ERR_NO_MEMORY) return;
    if (st != RECUR_OK) die("recur_optim_create", st);
    /* a file with a loss scale's state: an optimizer that scales takes it */
    int scaling = recur_file_meta(tf, "optim.loss_scale_log2") != NULL;
    if (scaling && (st = recur_optim_set_loss_scale(o, 2.0, 10)) != RECUR_OK) die("recur_optim_set_loss_scale", st);
    st = recur_file_get_optim(tf, o, NULL);
    if (st != RECUR_OK && !file_status(st)) die("recur_file_get_optim: unexpected status", st);
    if (scaling) { /* taken or not, a power of two from 1 to 2^100 */
        int e = 0;
        double s = recur_optim_loss_scale(o), m = frexp(s, &e);
        if (m != 0.5 || e < 1 || e > 101) die("recur_file_get_optim: a loss scale out of its range", st);
    }
    recur_optim_free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (uint32_t flags = 0; flags <= RECUR_LOAD_CHECK_FINITE; flags += RECUR_LOAD_CHECK_FINITE) {
        recur_model *m = (recur_model *)&ctx; /* must be overwritten */
        recur_status st = recur_model_load_memory(ctx, NAME, data, size, flags, &m);
        if (st == RECUR_OK) {
            if (!m || m == (recur_model *)&ctx) die("RECUR_OK without a model", st);
            recur_model_desc d;
            if (recur_model_desc_get(m, &d) != RECUR_OK || recur_model_param_count(m) < 4)
                die("a loaded model without settings", st);
            recur_model_free(m);
        } else {
            if (m) die("a failed load left *out set", st);
            if (!file_status(st)) die("recur_model_load: unexpected status", st);
            if (!strstr(recur_ctx_error(ctx), NAME)) die("the message does not name the file", st);
        }

        recur_file *tf = (recur_file *)&ctx;
        st = recur_file_open_memory(NAME, data, size, &tf);
        if (st != RECUR_OK) {
            if (tf) die("a failed recur_file_open left *out set", st);
            if (!file_status(st)) die("recur_file_open: unexpected status", st);
            if (!strstr(recur_last_error(), NAME)) die("the message does not name the file", st);
        } else {
            for (int p = 0; p < 2; p++) {
                recur_net *net = (recur_net *)&ctx;
                st = recur_file_get_net(tf, p ? "encoder." : "", ctx, flags, &net);
                if (st == RECUR_OK) {
                    if (!net || net == (recur_net *)&ctx) die("RECUR_OK without a net", st);
                    if (p == 0) get_optim(tf, net);
                    recur_net_free(net);
                } else {
                    if (net) die("a failed recur_file_get_net left *out set", st);
                    if (!file_status(st) && st != RECUR_ERR_UNKNOWN_CELL && st != RECUR_ERR_UNKNOWN_NAME)
                        die("recur_file_get_net: unexpected status", st);
                }
            }
            recur_file_free(tf);
        }

        st = recur_model_load_weights_memory(target, NAME, data, size, flags);
        if (st != RECUR_OK) {
            if (!file_status(st)) die("recur_model_load_weights: unexpected status", st);
            if (!strstr(recur_ctx_error(ctx), NAME)) die("the message does not name the file", st);
        }
        get_weights(after);
        if (st == RECUR_OK) {
            memcpy(before, after, n_weights * sizeof *before);
        } else {
            if (memcmp(before, after, n_weights * sizeof *before))
                die("a failed recur_model_load_weights changed the weights", st);
        }
    }
    return 0;
}
