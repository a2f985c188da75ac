/*
 * pool.c: worker threads that yield rather than spin (pool.h).
 *
 * A job is nt shares. The caller publishes it in one atomic word (its
 * generation, the next share to claim, nt) and then, like every worker,
 * claims shares one by one until none is left; so a worker that is not
 * running (its core given to another process) holds up nothing it has not
 * started. The caller then waits only for the shares still running. Between
 * jobs a waiting thread polls RELAX times with a pause instruction, then
 * with sched_yield() (handing its core to any runnable thread: on a shared
 * machine, often the worker it waits for) up to SPIN times, then sleeps on
 * a condition variable.
 *
 * Claiming is not enough when every core is busy: a worker descheduled in
 * the middle of its share finishes it only at the scheduler's next time
 * slice (milliseconds) while the job is microseconds.
 * So when the workers finished more than LATE_NS after the caller (and later
 * than the caller took for its own share) in LATE_OF of the last 16 jobs,
 * the caller runs the next jobs' shares t = 0..nt-1 itself, in order, for
 * SOLO_NS, then tries the workers again. One late job is no sign: an idle
 * machine (a virtual one especially) has a worker 1-2 ms late now and then,
 * and answering each with SOLO_NS alone cost 17% of the default training
 * job's speed. A share is fn(arg, t, nt) whichever thread runs it, so
 * results do not depend on which threads ran which shares.
 *
 * The workers block every signal but the faults': a program's handler never
 * runs on them. oneDNN's JIT GEMM kernels (oneDNN issue 4845, fixed in
 * March 2026, after Debian 12's 2.6.3) point rsp into the heap while they
 * run, and a handler taken there writes its signal frame over heap memory;
 * recur's tool lost its heap that way about one Ctrl-C in 30. The program's
 * own threads are its to guard (recur.h says how; tools/train.c does it).
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#include "backend-host.h"
#include "pool.h"

/* First a short busy poll (512 pauses, 5-40 microseconds by CPU): the
 * usual gap between two jobs of one step on an idle machine, where a system
 * call per poll would cost more than the wait... */
#define RELAX 512
/* ...then polls that yield the core, about 0.1-1 ms, long enough for the
 * serial work between two steps' jobs, then sleep. */
#define SPIN 2000
/* Workers this late behind the caller mean the machine is shared... */
#define LATE_NS 1000000
/* ...in this many of the last 16 jobs... */
#define LATE_OF 4
/* ...and the caller then works alone for this long. */
#define SOLO_NS 250000000
/* nt fits the state word's 16 bits. */
#define MAX_SHARES 4096

struct worker {
    struct recur_pool *pool;
    pthread_t tid;
};

/* The job's state in one word, so that a share is claimed by one
 * compare-and-swap that also checks which job it belongs to:
 * gen (bits 32-63, bumped per job), next share to claim (16-31), nt (0-15). */
#define STATE(gen, next, nt) ((uint64_t)(gen) << 32 | (uint64_t)(next) << 16 | (uint64_t)(nt))
#define GEN(s) ((unsigned)((s) >> 32))
#define NEXT(s) ((int)((s) >> 16 & 0xffff))
#define NT(s) ((int)((s)&0xffff))

struct recur_pool {
    int threads;
    struct worker *w;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new job, or quit */
    pthread_cond_t done; /* the last share of the job finished */
    recur_pool_fn fn;    /* the current job: stable while any share of it is unfinished */
    void *arg;
    _Atomic uint64_t state; /* STATE(gen, next, nt) */
    atomic_int finished;    /* shares of the current job done */
    int sleeping;           /* workers waiting on `wake` (under lock) */
    int caller_sleeping;    /* the caller waits on `done` (under lock) */
    int quit;
    uint64_t solo_until; /* CLOCK_MONOTONIC ns until which the caller works alone */
    uint16_t late;       /* bit i: the workers were late i jobs ago */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Claims and runs shares of the job `s` was read from until none is left
 * (caller: 1 for the thread that published the job, which needs no wake-up).
 * A claim succeeds only while that job still has unclaimed shares, and a
 * claimed share keeps the job (fn, arg) alive: the caller cannot publish
 * the next job before it finishes. */
static void run_shares(struct recur_pool *p, uint64_t s, int caller) {
    while (NEXT(s) < NT(s)) {
        if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + ((uint64_t)1 << 16), memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* s now holds the current state: maybe a newer job */
        p->fn(p->arg, NEXT(s), NT(s));
        /* the last share wakes a caller that sleeps (not the caller itself) */
        if (atomic_fetch_add_explicit(&p->finished, 1, memory_order_acq_rel) + 1 == NT(s) && !caller) {
            pthread_mutex_lock(&p->lock);
            if (p->caller_sleeping) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
        s = atomic_load_explicit(&p->state, memory_order_acquire);
    }
}

/* Polls until the job generation differs from `gen` (returns 1) or the polls
 * run out (0). */
static int wait_for_job(struct recur_pool *p, unsigned gen) {
    for (int i = 0; i < RELAX; i++) {
        if (GEN(atomic_load_explicit(&p->state, memory_order_acquire)) != gen) return 1;
        CPU_RELAX();
    }
    for (int i = 0; i < SPIN; i++) {
        if (GEN(atomic_load_explicit(&p->state, memory_order_acquire)) != gen) return 1;
        sched_yield();
    }
    return GEN(atomic_load_explicit(&p->state, memory_order_acquire)) != gen;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct recur_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        if (!wait_for_job(p, seen)) {
            pthread_mutex_lock(&p->lock);
            p->sleeping++;
            while (GEN(atomic_load_explicit(&p->state, memory_order_acquire)) == seen && !p->quit)
                pthread_cond_wait(&p->wake, &p->lock);
            p->sleeping--;
            int quit = p->quit;
            pthread_mutex_unlock(&p->lock);
            if (quit) return NULL;
        }
        uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
        seen = GEN(s);
        run_shares(p, s, 0);
    }
}

static void stop(struct recur_pool *p, int started) {
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < started; i++) pthread_join(p->w[i].tid, NULL);
}

struct recur_pool *recur_pool_create(int threads) {
    struct recur_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = threads < 1 ? 1 : threads > MAX_SHARES ? MAX_SHARES : threads;
    p->w = calloc((size_t)p->threads, sizeof *p->w);
    if (!p->w) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->state, STATE(0, 0, 0));
    atomic_init(&p->finished, 0);
    /* the workers start with every signal blocked but the faults (a crash in
     * one still reaches a sanitizer's or the program's handler) */
    sigset_t blocked, old;
    sigfillset(&blocked);
    const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) sigdelset(&blocked, faults[i]);
    pthread_sigmask(SIG_BLOCK, &blocked, &old);
    int started = 0;
    while (started + 1 < p->threads) {
        p->w[started].pool = p;
        if (pthread_create(&p->w[started].tid, NULL, worker_main, &p->w[started]) != 0) break;
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started + 1 < p->threads) {
        stop(p, started);
        p->threads = 0;
        recur_pool_free(p);
        return NULL;
    }
    return p;
}

void recur_pool_free(struct recur_pool *p) {
    if (!p) return;
    if (p->threads) stop(p, p->threads - 1);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->w);
    free(p);
}

int recur_pool_threads(const struct recur_pool *p) { return p->threads; }

void recur_pool_run(struct recur_pool *p, int nt, recur_pool_fn fn, void *arg) {
    if (nt > p->threads) nt = p->threads;
    if (nt <= 1) {
        fn(arg, 0, 1);
        return;
    }
    uint64_t t0 = now_ns();
    if (t0 < p->solo_until) {
        for (int t = 0; t < nt; t++) fn(arg, t, nt);
        return;
    }
    /* Every share of the previous job finished before it returned, so no
     * thread reads fn, arg or finished until the new state is published. */
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    uint64_t s = STATE(GEN(atomic_load_explicit(&p->state, memory_order_relaxed)) + 1u, 0, nt);
    atomic_store_explicit(&p->state, s, memory_order_release);
    pthread_mutex_lock(&p->lock);
    if (p->sleeping) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_shares(p, s, 1);
    /* What is left are shares a worker claimed and is running. */
    uint64_t t1 = now_ns();
    for (int i = 0; i < RELAX && atomic_load_explicit(&p->finished, memory_order_acquire) < nt; i++) CPU_RELAX();
    for (int i = 0; i < SPIN && atomic_load_explicit(&p->finished, memory_order_acquire) < nt; i++) sched_yield();
    if (atomic_load_explicit(&p->finished, memory_order_acquire) < nt) {
        pthread_mutex_lock(&p->lock);
        p->caller_sleeping = 1;
        while (atomic_load_explicit(&p->finished, memory_order_acquire) < nt) pthread_cond_wait(&p->done, &p->lock);
        p->caller_sleeping = 0;
        pthread_mutex_unlock(&p->lock);
    }
    uint64_t t2 = now_ns();
    p->late = (uint16_t)(p->late << 1 | (t2 - t1 > LATE_NS && t2 - t1 > t1 - t0));
    int late = 0;
    for (uint16_t m = p->late; m; m &= (uint16_t)(m - 1)) late++;
    if (late >= LATE_OF) {
        p->solo_until = t2 + SOLO_NS;
        p->late = 0;
        recur_log(RECUR_LOG_DEBUG, "cpu: workers %.1f ms late (the cores are shared); one thread for %d ms",
                  (double)(t2 - t1) / 1e6, SOLO_NS / 1000000);
    }
}
