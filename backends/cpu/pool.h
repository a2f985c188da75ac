/*
 * pool.h: the CPU backend's worker threads, one pool per context.
 *
 * A job is fn(arg, t, nt) for t = 0..nt-1: the caller and the pool's
 * workers claim the shares t one at a time, and recur_pool_run returns when
 * all are done. A share must depend on t only, never on the thread that
 * runs it (one thread may run several).
 * Waiting threads poll with sched_yield() for a short while, then sleep on a
 * condition variable: they never hold a core that another process could
 * use (GNU OpenMP's default spin-wait does, and collapses on a busy machine).
 * When the workers keep running late (every core busy), the caller runs the
 * jobs' shares alone for a while (pool.c); the shares, and so the results,
 * are the same.
 */
#ifndef RECUR_POOL_H
#define RECUR_POOL_H

typedef void (*recur_pool_fn)(void *arg, int t, int nt);

struct recur_pool;

/* A pool for jobs of up to `threads` threads (threads - 1 workers); NULL
 * when out of memory or threads cannot be started. */
struct recur_pool *recur_pool_create(int threads);
void recur_pool_free(struct recur_pool *p);
/* The most threads a job on p may use. */
int recur_pool_threads(const struct recur_pool *p);
/* Run fn(arg, t, nt) for t < nt (1 <= nt <= recur_pool_threads(p)). */
void recur_pool_run(struct recur_pool *p, int nt, recur_pool_fn fn, void *arg);

#endif /* RECUR_POOL_H */
