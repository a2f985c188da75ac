/*
 * test-threads.c: a context's thread count (recur_ctx_set_threads,
 * RECUR_THREADS, the affinity default, the info log), results that do
 * not depend on the threads beyond what recur.h documents, and signals
 * taken during CPU work the way recur.h says to take them.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "recur/recur.h"

static recur_ctx *cpu_ctx(void) {
    recur_ctx *ctx = NULL;
    recur_status st = recur_ctx_create(&ctx, "cpu");
    cr_assert_eq(st, RECUR_OK, "recur_ctx_create: %s", recur_last_error());
    return ctx;
}

static char logged[4096];

static void keep_log(recur_log_level level, const char *message, void *user) {
    (void)level;
    (void)user;
    size_t used = strlen(logged);
    snprintf(logged + used, sizeof logged - used, "%s\n", message);
}

Test(threads, default_is_the_affinity_mask) {
    cr_assert_eq(unsetenv("RECUR_THREADS"), 0);
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    int want = CPU_COUNT(&set) < RECUR_THREADS_MAX ? CPU_COUNT(&set) : RECUR_THREADS_MAX;
    logged[0] = 0;
    recur_log_set(keep_log, NULL, RECUR_LOG_INFO);
    recur_ctx *ctx = cpu_ctx();
    recur_log_set(NULL, NULL, RECUR_LOG_ERROR);
    cr_assert_eq(recur_ctx_threads(ctx), want);
    char line[128];
    snprintf(line, sizeof line, "threads: %d (the CPUs this process may run on)", want);
    cr_assert(strstr(logged, line), "info log lacks '%s':\n%s", line, logged);
    recur_ctx_free(ctx);
}

Test(threads, env_sets_the_count_and_is_logged) {
    cr_assert_eq(setenv("RECUR_THREADS", "3", 1), 0);
    logged[0] = 0;
    recur_log_set(keep_log, NULL, RECUR_LOG_INFO);
    recur_ctx *ctx = cpu_ctx();
    recur_log_set(NULL, NULL, RECUR_LOG_ERROR);
    cr_assert_eq(recur_ctx_threads(ctx), 3);
    cr_assert(strstr(logged, "threads: 3 (RECUR_THREADS)"), "%s", logged);
    recur_ctx_free(ctx);
    cr_assert_eq(setenv("RECUR_THREADS", "1024", 1), 0);
    ctx = cpu_ctx();
    cr_assert_eq(recur_ctx_threads(ctx), RECUR_THREADS_MAX);
    recur_ctx_free(ctx);
}

Test(threads, env_bad_values_are_refused_by_name) {
    static const char *bad[] = {"0", "abc", "100000", "-2", "3x", " ", "1025", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(setenv("RECUR_THREADS", bad[i], 1), 0);
        recur_ctx *ctx = (recur_ctx *)&ctx;
        recur_status st = recur_ctx_create(&ctx, "cpu");
        cr_assert_eq(st, RECUR_ERR_ARG, "RECUR_THREADS '%s': %s", bad[i], recur_status_str(st));
        cr_assert_null(ctx);
        char needle[64];
        snprintf(needle, sizeof needle, "RECUR_THREADS '%s'", bad[i]);
        cr_assert(strstr(recur_last_error(), needle), "'%s' not in: %s", needle, recur_last_error());
        cr_assert(strstr(recur_last_error(), "1 to 1024"), "%s", recur_last_error());
    }
    cr_assert_eq(unsetenv("RECUR_THREADS"), 0);
}

Test(threads, set_and_get) {
    cr_assert_eq(unsetenv("RECUR_THREADS"), 0);
    recur_ctx *ctx = cpu_ctx();
    cr_assert_eq(recur_ctx_set_threads(ctx, 5), RECUR_OK);
    cr_assert_eq(recur_ctx_threads(ctx), 5);
    static const int bad[] = {0, -1, RECUR_THREADS_MAX + 1, 100000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(recur_ctx_set_threads(ctx, bad[i]), RECUR_ERR_ARG, "%d threads", bad[i]);
        char needle[64];
        snprintf(needle, sizeof needle, "%d threads", bad[i]);
        cr_assert(strstr(recur_ctx_error(ctx), needle), "'%s' not in: %s", needle, recur_ctx_error(ctx));
        cr_assert_eq(recur_ctx_threads(ctx), 5, "a refused count changed the context");
    }
    cr_assert_eq(recur_ctx_set_threads(ctx, RECUR_THREADS_MAX), RECUR_OK);
    cr_assert_eq(recur_ctx_set_threads(ctx, 1), RECUR_OK);
    cr_assert_eq(recur_ctx_threads(ctx), 1);
    cr_assert_eq(recur_ctx_set_threads(NULL, 2), RECUR_ERR_NULL);
    cr_assert_eq(recur_ctx_threads(NULL), 0);
    recur_ctx_free(ctx);
}

/* ---- results and threads ---- */

/* Large enough that every parallel path runs on several threads: the GEMMs
 * (M*N*K >= 131072) and each step's cell kernel (N*H*4 >= 32768 values). */
enum { I = 48, H = 128, N = 72, T = 5 };

struct result {
    float *y, *hT, *cT, *dx, *dh0, *grads;
    size_t nw;
};

/* An LSTM layer's forward and backward on ctx with `threads` threads. */
static struct result lstm_run(recur_ctx *ctx, int threads) {
    cr_assert_eq(recur_ctx_set_threads(ctx, threads), RECUR_OK);
    recur_layer_desc d = {.cell = "lstm", .input_size = I, .hidden_size = H};
    recur_layer *l = NULL;
    cr_assert_eq(recur_layer_create(ctx, &d, &l), RECUR_OK, "%s", recur_ctx_error(ctx));
    struct result r = {.nw = recur_layer_weight_count(l)};
    test_rng rng = {42};
    float *w = test_floats(r.nw), *x = test_floats((size_t)T * N * I), *dy = test_floats((size_t)T * N * H);
    for (size_t i = 0; i < r.nw; i++) w[i] = (float)test_uniform(&rng, -0.2, 0.2);
    for (size_t i = 0; i < (size_t)T * N * I; i++) x[i] = (float)test_uniform(&rng, -1, 1);
    for (size_t i = 0; i < (size_t)T * N * H; i++) dy[i] = (float)test_uniform(&rng, -1, 1);
    cr_assert_eq(recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, w, r.nw), RECUR_OK);
    r.y = test_floats((size_t)T * N * H);
    r.hT = test_floats((size_t)N * H);
    r.cT = test_floats((size_t)N * H);
    r.dx = test_floats((size_t)T * N * I);
    r.dh0 = test_floats((size_t)N * H);
    r.grads = test_floats(r.nw);
    recur_io io = {.T = T, .N = N, .x = x, .y = r.y, .hT = r.hT, .cT = r.cT};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_grad_io g = {.dy = dy, .dx = r.dx, .dh0 = r.dh0};
    cr_assert_eq(recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, r.grads, r.nw), RECUR_OK);
    recur_layer_free(l);
    free(w);
    free(x);
    free(dy);
    return r;
}

static void result_free(struct result *r) {
    float *all[] = {r->y, r->hT, r->cT, r->dx, r->dh0, r->grads};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

#define SAME_BITS(what, a, b, n) \
    cr_assert(memcmp((a), (b), (n) * sizeof(float)) == 0, "%s differs between two runs on the same threads", what)

static void expect_same(const struct result *a, const struct result *b) {
    SAME_BITS("y", a->y, b->y, (size_t)T * N * H);
    SAME_BITS("hT", a->hT, b->hT, (size_t)N * H);
    SAME_BITS("cT", a->cT, b->cT, (size_t)N * H);
    SAME_BITS("dx", a->dx, b->dx, (size_t)T * N * I);
    SAME_BITS("dh0", a->dh0, b->dh0, (size_t)N * H);
    SAME_BITS("weight gradients", a->grads, b->grads, a->nw);
}

static void expect_close(const char *what, const float *a, const float *b, size_t n) {
    double *ref = test_doubles(n);
    for (size_t i = 0; i < n; i++) ref[i] = b[i];
    ASSERT_CLOSE(what, a, ref, n, 1e-5, 1e-6);
    free(ref);
}

Test(threads, same_bits_for_a_given_thread_count) {
    recur_ctx *ctx = cpu_ctx();
    struct result a = lstm_run(ctx, 3);
    struct result b = lstm_run(ctx, 3);
    expect_same(&a, &b);
    /* Another count in between (the pool is made again), then back. */
    struct result one = lstm_run(ctx, 1);
    struct result c = lstm_run(ctx, 3);
    expect_same(&a, &c);
    /* Between counts: the same within float rounding (recur.h). */
    expect_close("y (1 vs 3 threads)", one.y, a.y, (size_t)T * N * H);
    expect_close("dx (1 vs 3 threads)", one.dx, a.dx, (size_t)T * N * I);
    expect_close("weight gradients (1 vs 3 threads)", one.grads, a.grads, a.nw);
    result_free(&a);
    result_free(&b);
    result_free(&one);
    result_free(&c);
    recur_ctx_free(ctx);
}

/* ---- signals during CPU work (recur.h, "Signals") ---- */

static volatile sig_atomic_t handled;
static void count_signal(int sig) {
    (void)sig;
    handled = handled + 1;
}

static atomic_int sending;

/* Sends SIGUSR1 to the process (any thread that does not block it may take it) every 20 us. */
static void *send_signals(void *arg) {
    (void)arg;
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &m, NULL);
    const struct timespec gap = {0, 20 * 1000};
    while (atomic_load(&sending)) {
        kill(getpid(), SIGUSR1);
        nanosleep(&gap, NULL);
    }
    return NULL;
}

/* A program that takes signals while recur trains on the CPU, its handler on an alternate stack as recur.h asks:
 * the results stay the same bits and the heap whole. Without SA_ONSTACK this test crashed in 8 runs of 8 (oneDNN
 * 2.6.3, AVX-512); with workers that did not block signals, in 1 of 5. */
Test(threads, signals_with_the_handler_on_its_own_stack) {
    static _Alignas(64) char mem[256 * 1024];
    stack_t ss = {.ss_sp = mem, .ss_size = sizeof mem, .ss_flags = 0}, had;
    cr_assert_eq(sigaltstack(&ss, &had), 0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK | SA_RESTART;
    cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);
    recur_ctx *ctx = cpu_ctx();
    struct result want = lstm_run(ctx, 2);
    atomic_store(&sending, 1);
    pthread_t sender;
    cr_assert_eq(pthread_create(&sender, NULL, send_signals, NULL), 0);
    for (int i = 0; i < 40; i++) {
        struct result r = lstm_run(ctx, 2);
        expect_same(&want, &r);
        result_free(&r);
    }
    atomic_store(&sending, 0);
    pthread_join(sender, NULL);
    sigaction(SIGUSR1, &old, NULL);
    sigaltstack(&had, NULL);
    cr_assert_gt(handled, 100, "only %d signals were handled", (int)handled);
    result_free(&want);
    recur_ctx_free(ctx);
}
