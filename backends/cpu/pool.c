/*
 * pool.c: worker threads that yield rather than spin (pool.h).
 *
 * A job is published by bumping `gen` under the lock; each worker runs its
 * share and decrements `pending`; the last one wakes the caller. Between
 * jobs a waiting thread polls RELAX times with a pause instruction, then
 * with sched_yield() (handing its core to any runnable thread: on a shared
 * machine, often the worker it waits for) up to SPIN times, then sleeps on
 * a condition variable. A worker that sees the new job while polling starts
 * it without taking the lock.
 *
 * Yielding is not enough when every core is busy: a step's job waits for
 * its slowest thread, and a thread that is not running waits for the
 * scheduler's next time slice (milliseconds) while the job is microseconds.
 * So when the workers finished more than LATE_NS after the caller (and later
 * than the caller took for its own share) in LATE_OF of the last 16 jobs,
 * the caller runs the next jobs' shares t = 0..nt-1 itself, in order, for
 * SOLO_NS, then tries the workers again. One late job is no sign: an idle
 * machine (a virtual one especially) has a worker 1-2 ms late now and then,
 * and answering each with SOLO_NS alone cost 17% of the default training
 * job's speed. The shares are the same either way, so results do not depend on
 * which threads ran them.
 */
#include <pthread.h>
#include <sched.h>
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

struct worker {
    struct recur_pool *pool;
    pthread_t tid;
    int id; /* 1..threads-1 */
};

struct recur_pool {
    int threads;
    struct worker *w;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* gen changed or quit */
    pthread_cond_t done; /* pending reached 0 */
    recur_pool_fn fn;    /* the current job */
    void *arg;
    int nt;
    atomic_uint gen; /* bumped (under lock) per job */
    atomic_int pending; /* workers yet to finish the current job */
    int quit;
    uint64_t solo_until; /* CLOCK_MONOTONIC ns until which the caller works alone */
    uint16_t late;       /* bit i: the workers were late i jobs ago */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Polls until *v differs from `old` (returns 1) or the polls run out (0). */
static int wait_while(atomic_uint *v, unsigned old) {
    for (int i = 0; i < RELAX; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old) return 1;
        CPU_RELAX();
    }
    for (int i = 0; i < SPIN; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old) return 1;
        sched_yield();
    }
    return atomic_load_explicit(v, memory_order_acquire) != old;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct recur_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        if (!wait_while(&p->gen, seen)) {
            pthread_mutex_lock(&p->lock);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !p->quit)
                pthread_cond_wait(&p->wake, &p->lock);
            int quit = p->quit;
            pthread_mutex_unlock(&p->lock);
            if (quit) return NULL;
        }
        /* The job's fields were written before gen was bumped (release),
         * and the acquire load of gen makes them visible here. */
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (w->id < p->nt) p->fn(p->arg, w->id, p->nt);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
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
    p->threads = threads < 1 ? 1 : threads;
    p->w = calloc((size_t)p->threads, sizeof *p->w);
    if (!p->w) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    for (int i = 0; i + 1 < p->threads; i++) {
        p->w[i].pool = p;
        p->w[i].id = i + 1;
        if (pthread_create(&p->w[i].tid, NULL, worker_main, &p->w[i]) != 0) {
            stop(p, i);
            p->threads = 0;
            recur_pool_free(p);
            return NULL;
        }
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
    /* Every worker takes part (those with id >= nt only count down), so
     * that none can still be reading the previous job's fields. */
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->nt = nt;
    atomic_store_explicit(&p->pending, p->threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    fn(arg, 0, nt);
    uint64_t t1 = now_ns();
    for (int i = 0; i < RELAX && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) CPU_RELAX();
    for (int i = 0; i < SPIN && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) sched_yield();
    pthread_mutex_lock(&p->lock);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
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
