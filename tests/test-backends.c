/*
 * test-backends.c: the backend registry of backends/dispatch.c, what core
 * asks of the backends: selector lookup with its default, and the refusal
 * of a backend that lacks a mandatory slot. It links the library's objects
 * and sees api/ and backends/ only, as core's calls do. And the CPU
 * backend's data kernels, split over its threads, against plain loops; and
 * the signals its worker threads block.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "backend-impl.h"
#include "cpu/pool.h"
#include "recur/recur.h"

Test(registry, selector_names_a_backend_case_insensitively) {
    const char *rest = NULL;
    const struct recur_backend_i *be = recur_be_find("CPU:avx2", &rest);
    cr_assert_not_null(be);
    cr_assert_str_eq(be->name, "cpu");
    cr_assert_str_eq(rest, "avx2");
    be = recur_be_find("cpu", &rest);
    cr_assert(be && strcmp(be->name, "cpu") == 0);
    cr_assert_str_eq(rest, "");
    cr_assert_null(recur_be_find("cp", &rest), "a prefix of a name is not the name");
    cr_assert_null(recur_be_find("nosuch:1", &rest));
}

Test(registry, default_is_a_preferred_device_else_the_cpu) {
    const char *rest = "unset";
    const struct recur_backend_i *be = recur_be_find(NULL, &rest);
    cr_assert_not_null(be);
    cr_assert_str_eq(rest, "");
    cr_assert_eq(recur_be_find("", &rest), be);
    if (strcmp(be->name, "cpu") != 0)
        cr_assert(be->preferred && be->preferred(), "default '%s' has no preferred device", be->name);
}

Test(registry, devices_lists_the_cpu_first_among_its_own) {
    size_t n = 0;
    recur_be_devices(NULL, 0, &n);
    cr_assert_geq(n, 2, "%zu devices: expected cpu and at least cpu:scalar", n);
    recur_device_info info[64];
    size_t m = 0;
    recur_be_devices(info, 64, &m);
    cr_assert_eq(m, n);
    int cpu = 0, scalar = 0;
    for (size_t i = 0; i < m && i < 64; i++) {
        cpu += strcmp(info[i].selector, "cpu") == 0;
        scalar += strcmp(info[i].selector, "cpu:scalar") == 0;
    }
    cr_assert(cpu == 1 && scalar == 1, "cpu listed %d times, cpu:scalar %d times", cpu, scalar);
}

/* A backend that lacks a mandatory slot is refused before its open runs, naming the slot. */
static int opened;
static recur_status counting_open(struct recur_backend *be, const char *spec) {
    (void)be;
    (void)spec;
    opened++;
    return RECUR_OK;
}

Test(registry, missing_mandatory_slot_is_named) {
    const char *rest;
    struct recur_backend_i broken = *recur_be_find("cpu", &rest);
    broken.name = "broken";
    broken.open = counting_open;
    broken.gemm = NULL;
    struct recur_backend be;
    cr_assert_eq(recur_be_open(&be, &broken, NULL, ""), RECUR_ERR_BACKEND);
    cr_assert_str_eq(recur_last_error(), "backend 'broken' lacks the mandatory slot 'gemm'");
    cr_assert_eq(opened, 0);
    broken.gemm = recur_be_find("cpu", &rest)->gemm;
    broken.cell_run = NULL;
    cr_assert_eq(recur_be_open(&be, &broken, NULL, ""), RECUR_ERR_BACKEND);
    cr_assert(strstr(recur_last_error(), "'cell_run'"), "%s", recur_last_error());
    /* Optional slots may be missing: this one opens. */
    broken.cell_run = recur_be_find("cpu", &rest)->cell_run;
    broken.sync = NULL;
    broken.cell_open = NULL;
    cr_assert_eq(recur_be_open(&be, &broken, NULL, ""), RECUR_OK);
    cr_assert_eq(opened, 1);
    cr_assert_eq(be.iface, &broken);
}

/* Through the public API the message says where the selector came from. */
Test(registry, unknown_cpu_isa_through_the_context) {
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu:mmx"), RECUR_ERR_DEVICE);
    cr_assert_null(ctx);
    cr_assert(strstr(recur_last_error(), "argument 'cpu:mmx': unknown CPU ISA 'mmx'"), "%s", recur_last_error());
}

/* The CPU's data kernels (rows_set, colsum, add, transpose, gather, scatter) split over its threads from 65536
 * floats: on 1, 2 and 3 threads, at sizes that split and at offsets, each gives exactly what a plain loop gives
 * and writes nothing else. */
static float frand_at(size_t i) { return (float)((i * 2654435761u) % 20011u) / 20011.0f - 0.5f; }

static float *host(struct recur_mem m) { return (float *)((char *)m.buf + m.off); }

Test(cpu, data_kernels_split_over_threads) {
    enum { ROWS = 6001, W = 37, LD = 41, OFF = 3, GUARD = 64 };
    const size_t n = OFF + (size_t)ROWS * LD + GUARD;
    float *init = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    int32_t *perm = malloc(ROWS * sizeof(int32_t));
    cr_assert(init && want && perm);
    for (size_t i = 0; i < n; i++) init[i] = frand_at(i);
    for (int r = 0; r < ROWS; r++) perm[r] = (int32_t)(((size_t)r * 4099u) % ROWS); /* 4099 is prime to ROWS */
    const char *rest;
    for (int threads = 1; threads <= 3; threads++) {
        struct recur_backend be;
        cr_assert_eq(recur_be_open(&be, recur_be_find("cpu", &rest), NULL, ""), RECUR_OK, "%s", recur_last_error());
        be.threads = threads;
        struct recur_mem d, s, ix;
        cr_assert_eq(recur_be_alloc(&be, n * sizeof(float), &d), RECUR_OK);
        cr_assert_eq(recur_be_alloc(&be, n * sizeof(float), &s), RECUR_OK);
        cr_assert_eq(recur_be_alloc(&be, ROWS * sizeof(int32_t), &ix), RECUR_OK);
        memcpy(host(s), init, n * sizeof(float));
        memcpy((char *)ix.buf + ix.off, perm, ROWS * sizeof(int32_t));
        struct recur_mem d0 = recur_mem_at(d, OFF), s0 = recur_mem_at(s, OFF);

        /* rows_set: every row of d gets s's first W floats */
        memcpy(host(d), init, n * sizeof(float));
        memcpy(want, init, n * sizeof(float));
        for (int r = 0; r < ROWS; r++) memcpy(want + OFF + (size_t)r * LD, init + OFF, W * sizeof(float));
        cr_assert_eq(recur_be_rows_set(&be, d0, ROWS, W, LD, s0), RECUR_OK);
        cr_assert(!memcmp(host(d), want, n * sizeof(float)), "rows_set on %d threads", threads);

        /* colsum over ROWS x W, beta 0 and 1, into a row of d */
        for (int beta = 0; beta <= 1; beta++) {
            memcpy(host(d), init, n * sizeof(float));
            memcpy(want, init, n * sizeof(float));
            for (int j = 0; j < W; j++) {
                float acc = beta ? init[OFF + j] : 0.0f;
                for (int r = 0; r < ROWS; r++) acc += init[OFF + (size_t)r * LD + j];
                want[OFF + j] = acc;
            }
            cr_assert_eq(recur_be_colsum(&be, d0, (float)beta, s0, ROWS, W, LD), RECUR_OK);
            cr_assert(!memcmp(host(d), want, n * sizeof(float)), "colsum beta %d on %d threads", beta, threads);
        }

        /* add: ROWS x LD floats */
        memcpy(host(d), init, n * sizeof(float));
        memcpy(want, init, n * sizeof(float));
        for (size_t i = 0; i < (size_t)ROWS * LD; i++) want[OFF + i] += init[OFF + 1 + i];
        cr_assert_eq(recur_be_add(&be, d0, recur_mem_at(s, OFF + 1), (size_t)ROWS * LD), RECUR_OK);
        cr_assert(!memcmp(host(d), want, n * sizeof(float)), "add on %d threads", threads);

        /* transpose: ROWS x W of s (ld LD) into W x ROWS of d (ld ROWS + 1) */
        const size_t LT = ROWS + 1;
        memcpy(host(d), init, n * sizeof(float));
        memcpy(want, init, n * sizeof(float));
        for (int r = 0; r < ROWS; r++)
            for (int j = 0; j < W; j++) want[OFF + (size_t)j * LT + r] = init[OFF + (size_t)r * LD + j];
        cr_assert_eq(recur_be_transpose(&be, d0, (int)LT, s0, LD, ROWS, W), RECUR_OK);
        cr_assert(!memcmp(host(d), want, n * sizeof(float)), "transpose on %d threads", threads);

        /* gather and scatter (plain and adding) through a permutation */
        for (int k = 0; k < 3; k++) {
            memcpy(host(d), init + 1, (n - 1) * sizeof(float));
            memcpy(want, init + 1, (n - 1) * sizeof(float));
            for (int r = 0; r < ROWS; r++)
                for (int j = 0; j < W; j++) {
                    size_t g = OFF + (size_t)perm[r] * LD + j, l = OFF + (size_t)r * LD + j;
                    if (k == 0) want[l] = init[g];
                    else want[g] = k == 2 ? want[g] + init[l] : init[l];
                }
            cr_assert_eq(k ? recur_be_scatter(&be, d0, LD, s0, LD, ix, ROWS, W, k == 2)
                           : recur_be_gather(&be, d0, LD, s0, LD, ix, ROWS, W),
                         RECUR_OK);
            cr_assert(!memcmp(host(d), want, (n - 1) * sizeof(float)), "%s on %d threads",
                      k == 0 ? "gather" : k == 1 ? "scatter" : "scatter-add", threads);
        }
        recur_be_free(&be, &d);
        recur_be_free(&be, &s);
        recur_be_free(&be, &ix);
        recur_be_close(&be);
    }
    free(init), free(want), free(perm);
}

/* C = A^T B + beta C with A's row stride a multiple of 1024 floats: the CPU GEMM reads A through padded copies
 * (one per thread's part; PAD_A_* in backends/cpu/cpu.c), here against a double-precision loop, with a part
 * width of 1008 (1008 + 16 is itself 1024) among the shapes, on 1 to 3 threads. */
Test(cpu, gemm_transposed_a_with_an_aligned_stride) {
    static const struct {
        int M, N, K, lda;
    } cases[] = {{1000, 40, 300, 1024}, {1008, 16, 260, 2048}, {2016, 33, 256, 2048}};
    const char *rest;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int M = cases[c].M, N = cases[c].N, K = cases[c].K, lda = cases[c].lda;
        size_t na = (size_t)K * lda, nb = (size_t)K * N, nc = (size_t)M * N + 64; /* C: 64 guard floats */
        for (int threads = 1; threads <= 3; threads++) {
            struct recur_backend be;
            cr_assert_eq(recur_be_open(&be, recur_be_find("cpu", &rest), NULL, ""), RECUR_OK, "%s",
                         recur_last_error());
            be.threads = threads;
            struct recur_mem a, b, cm;
            cr_assert_eq(recur_be_alloc(&be, na * sizeof(float), &a), RECUR_OK);
            cr_assert_eq(recur_be_alloc(&be, nb * sizeof(float), &b), RECUR_OK);
            cr_assert_eq(recur_be_alloc(&be, nc * sizeof(float), &cm), RECUR_OK);
            for (size_t i = 0; i < na; i++) host(a)[i] = frand_at(i);
            for (size_t i = 0; i < nb; i++) host(b)[i] = frand_at(i + 7);
            for (size_t i = 0; i < nc; i++) host(cm)[i] = frand_at(i + 11);
            for (int beta = 0; beta <= 1; beta++) {
                float *was = malloc(nc * sizeof(float));
                cr_assert_not_null(was);
                memcpy(was, host(cm), nc * sizeof(float));
                cr_assert_eq(recur_be_gemm(&be, 1, 0, M, N, K, 1.0f, a, lda, b, N, (float)beta, cm, N), RECUR_OK);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double want = beta ? was[(size_t)i * N + j] : 0.0;
                        for (int k = 0; k < K; k++)
                            want += (double)host(a)[(size_t)k * lda + i] * host(b)[(size_t)k * N + j];
                        float got = host(cm)[(size_t)i * N + j];
                        cr_assert(fabs(got - want) <= 1e-4 * (1 + fabs(want)),
                                  "case %zu, %d threads, beta %d: C[%d][%d] = %g, want %g", c, threads, beta, i, j, got,
                                  want);
                    }
                cr_assert(!memcmp(host(cm) + (size_t)M * N, was + (size_t)M * N, 64 * sizeof(float)),
                          "case %zu: written past C", c);
                free(was);
            }
            recur_be_free(&be, &a);
            recur_be_free(&be, &b);
            recur_be_free(&be, &cm);
            recur_be_close(&be);
        }
    }
}

/* ---- the workers' signal mask ---- */

struct mask_job {
    pthread_t caller;
    atomic_int on_worker, wrong; /* shares run by a worker; of those, with a wrong mask */
};

static void record_mask(void *arg, int t, int nt) {
    (void)t, (void)nt;
    struct mask_job *j = arg;
    const struct timespec nap = {0, 2 * 1000000L}; /* long enough that a worker claims a share */
    nanosleep(&nap, NULL);
    if (pthread_equal(pthread_self(), j->caller)) return;
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    int ok = sigismember(&m, SIGINT) && sigismember(&m, SIGTERM) && sigismember(&m, SIGUSR1) &&
             sigismember(&m, SIGPROF) && !sigismember(&m, SIGSEGV) && !sigismember(&m, SIGBUS) &&
             !sigismember(&m, SIGFPE) && !sigismember(&m, SIGABRT);
    atomic_fetch_add(&j->on_worker, 1);
    if (!ok) atomic_fetch_add(&j->wrong, 1);
}

/* A handler never runs on a worker (oneDNN's JIT GEMMs point rsp into the heap, pool.c), a fault still
 * reaches one, and the caller's own mask is left as it was. */
Test(cpu, pool_workers_block_all_signals_but_the_faults) {
    sigset_t none, before, after;
    sigemptyset(&none);
    cr_assert_eq(pthread_sigmask(SIG_SETMASK, &none, &before), 0);
    struct recur_pool *p = recur_pool_create(4);
    cr_assert_not_null(p);
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    cr_assert(!sigismember(&after, SIGINT) && !sigismember(&after, SIGUSR1), "the caller's mask was changed");
    struct mask_job j = {.caller = pthread_self()};
    atomic_init(&j.on_worker, 0);
    atomic_init(&j.wrong, 0);
    for (int i = 0; i < 200 && atomic_load(&j.on_worker) < 8; i++) recur_pool_run(p, 4, record_mask, &j);
    recur_pool_free(p);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    cr_assert_geq(atomic_load(&j.on_worker), 1, "no share ran on a worker");
    cr_assert_eq(atomic_load(&j.wrong), 0, "%d of %d shares on a worker saw a wrong signal mask", atomic_load(&j.wrong),
                 atomic_load(&j.on_worker));
}
