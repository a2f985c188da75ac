/*
 * dist.c: data-parallel training over MPI (recur_optim_set_comm in
 * recur-train.h): before each optimizer step, every rank's gradients become
 * the ranks' weighted mean.
 *
 * The gradients of all groups are read into one host buffer, scaled by the
 * rank's weight, summed to rank 0 (MPI_Ireduce) with the weights beside
 * them, and broadcast back (MPI_Ibcast): a reduction to one root and a
 * broadcast give every rank the same bits, which MPI_Allreduce does not
 * promise, so replicas cannot drift apart. Rank 0 divides by the weights'
 * sum before it broadcasts. Waits poll MPI_Test against a deadline
 * (RECUR_MPI_TIMEOUT), so a rank that never arrives fails the step with a
 * message instead of hanging; the caller aborts the job.
 *
 * The only file of the library that includes mpi.h. Built without MPI, the
 * calls return RECUR_ERR_UNSUPPORTED.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"

#ifndef RECUR_HAVE_MPI
#define RECUR_HAVE_MPI 0
#endif

#if RECUR_HAVE_MPI
#include <mpi.h>

struct recur_dist {
    MPI_Comm comm;
    int rank, size;
    double timeout_s;
    float *host; /* every group's gradients, one after the other */
    double wsum; /* the ranks' weights, summed */
    size_t total;
    long long steps; /* averages done, and their time, for the info log at the end */
    double seconds;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* RECUR_MPI_TIMEOUT in seconds (1..86400), default 300; -1 after an error. */
static double timeout_from_env(recur_ctx *ctx) {
    const char *v = getenv("RECUR_MPI_TIMEOUT");
    if (!v || !*v) return 300;
    char *end;
    errno = 0;
    double t = strtod(v, &end);
    if (*end || errno || !(t >= 1 && t <= 86400)) {
        recur_err(ctx, RECUR_ERR_ARG, "RECUR_MPI_TIMEOUT '%.40s': expected seconds from 1 to 86400", v);
        return -1;
    }
    return t;
}

/* Waits for req, polling, until the deadline. */
static recur_status wait_bounded(recur_optim *o, MPI_Request *req, const char *what) {
    struct recur_dist *d = o->dist;
    double start = now_s();
    for (long polls = 0;; polls++) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        RETURN_IF(rc != MPI_SUCCESS, o->ctx, RECUR_ERR_BACKEND, "rank %d: step %lld: %s failed (MPI error %d)",
                  d->rank, o->steps + 1, what, rc);
        if (done) return RECUR_OK;
        if (now_s() - start > d->timeout_s) {
            return recur_err(o->ctx, RECUR_ERR_BACKEND,
                             "rank %d: step %lld: %s did not complete in %g s (RECUR_MPI_TIMEOUT): another rank "
                             "stopped or hangs",
                             d->rank, o->steps + 1, what, d->timeout_s);
        }
        /* MPI progresses a non-blocking collective only inside MPI calls: poll
         * at full speed (as MPI_Wait would) while the others are about to
         * arrive; after a second of waiting (a rank far behind), give the core
         * away between polls. */
        if (polls > 1000 && now_s() - start > 1.0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

recur_status recur_optim_set_comm(recur_optim *o, void *mpi_comm) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_comm: optimizer is NULL");
    recur_err_clear(o->ctx);
    if (!mpi_comm) {
        recur_dist_free(o->dist);
        o->dist = NULL;
        return RECUR_OK;
    }
    int init = 0, fin = 0, level = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    RETURN_IF(!init || fin, o->ctx, RECUR_ERR_ARG, "recur_optim_set_comm: MPI is %s",
              fin ? "finalized" : "not initialised (MPI_Init_thread first)");
    MPI_Query_thread(&level);
    RETURN_IF(level < MPI_THREAD_FUNNELED, o->ctx, RECUR_ERR_ARG,
              "recur_optim_set_comm: MPI was initialised with thread level %d; recur needs MPI_THREAD_FUNNELED or more "
              "(the CPU backend runs threads of its own)",
              level);
    double timeout = timeout_from_env(o->ctx);
    if (timeout < 0) return RECUR_ERR_ARG;
    size_t total = 0;
    for (size_t i = 0; i < o->n_groups; i++) total += o->g[i].count;
    RETURN_IF(total > (size_t)INT32_MAX, o->ctx, RECUR_ERR_ARG,
              "recur_optim_set_comm: %zu parameters: more than one MPI message holds (%d)", total, INT32_MAX);
    struct recur_dist *d = calloc(1, sizeof *d);
    float *host = malloc((total ? total : 1) * sizeof *host);
    if (!d || !host) {
        free(d), free(host);
        return recur_err(o->ctx, RECUR_ERR_NO_MEMORY, "recur_optim_set_comm: out of memory for %zu gradients", total);
    }
    int rc = MPI_Comm_dup(*(MPI_Comm *)mpi_comm, &d->comm);
    if (rc != MPI_SUCCESS) {
        free(d), free(host);
        return recur_err(o->ctx, RECUR_ERR_ARG, "recur_optim_set_comm: MPI_Comm_dup failed (MPI error %d)", rc);
    }
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    d->timeout_s = timeout;
    d->host = host;
    d->total = total;
    recur_dist_free(o->dist);
    o->dist = d;
    recur_log(RECUR_LOG_INFO, "optimizer: gradients averaged over %d MPI ranks (this is rank %d), %zu floats a step",
              d->size, d->rank, total);
    return RECUR_OK;
}

recur_status recur_dist_average(recur_optim *o) {
    struct recur_dist *d = o->dist;
    if (!d) return RECUR_OK;
    struct recur_backend *be = &o->ctx->be;
    double t0 = now_s();
    size_t off = 0;
    for (size_t i = 0; i < o->n_groups; i++) {
        TRY(recur_be_read(be, d->host + off, o->g[i].g, o->g[i].count * sizeof(float)));
        off += o->g[i].count;
    }
    float w = (float)o->grad_weight;
    if (w != 1.0f)
        for (size_t i = 0; i < d->total; i++) d->host[i] *= w;
    double wl = o->grad_weight;
    MPI_Request req;
    /* the weights first (small), then the gradients */
    int rc = MPI_Iallreduce(&wl, &d->wsum, 1, MPI_DOUBLE, MPI_SUM, d->comm, &req);
    RETURN_IF(rc != MPI_SUCCESS, o->ctx, RECUR_ERR_BACKEND, "rank %d: MPI_Iallreduce failed (MPI error %d)", d->rank, rc);
    TRY(wait_bounded(o, &req, "the sum of the ranks' gradient weights"));
    RETURN_IF(!(d->wsum > 0), o->ctx, RECUR_ERR_ARG,
              "rank %d: step %lld: the ranks' gradient weights sum to %g; at least one must be positive", d->rank,
              o->steps + 1, d->wsum);
    rc = MPI_Ireduce(d->rank == 0 ? MPI_IN_PLACE : d->host, d->host, (int)d->total, MPI_FLOAT, MPI_SUM, 0, d->comm,
                     &req);
    RETURN_IF(rc != MPI_SUCCESS, o->ctx, RECUR_ERR_BACKEND, "rank %d: MPI_Ireduce failed (MPI error %d)", d->rank, rc);
    TRY(wait_bounded(o, &req, "the reduction of the gradients"));
    if (d->rank == 0) {
        float inv = (float)(1.0 / d->wsum);
        for (size_t i = 0; i < d->total; i++) d->host[i] *= inv;
    }
    rc = MPI_Ibcast(d->host, (int)d->total, MPI_FLOAT, 0, d->comm, &req);
    RETURN_IF(rc != MPI_SUCCESS, o->ctx, RECUR_ERR_BACKEND, "rank %d: MPI_Ibcast failed (MPI error %d)", d->rank, rc);
    TRY(wait_bounded(o, &req, "the broadcast of the mean gradients"));
    off = 0;
    for (size_t i = 0; i < o->n_groups; i++) {
        TRY(recur_be_write(be, o->g[i].g, d->host + off, o->g[i].count * sizeof(float)));
        off += o->g[i].count;
    }
    d->steps++;
    d->seconds += now_s() - t0;
    return RECUR_OK;
}

void recur_dist_free(struct recur_dist *d) {
    if (!d) return;
    if (d->steps)
        recur_log(RECUR_LOG_INFO,
                  "optimizer: rank %d of %d: %lld gradient averages, %.2f ms each (reading, waiting for the other "
                  "ranks, reducing, broadcasting, writing back)",
                  d->rank, d->size, d->steps, 1e3 * d->seconds / (double)d->steps);
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Comm_free(&d->comm);
    free(d->host);
    free(d);
}

#else /* !RECUR_HAVE_MPI */

struct recur_dist {
    int unused;
};

recur_status recur_optim_set_comm(recur_optim *o, void *mpi_comm) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_comm: optimizer is NULL");
    recur_err_clear(o->ctx);
    if (!mpi_comm) return RECUR_OK;
    return recur_err(o->ctx, RECUR_ERR_UNSUPPORTED,
                     "recur_optim_set_comm: this recur was built without MPI (meson option mpi; Debian: libopenmpi-dev)");
}

recur_status recur_dist_average(recur_optim *o) {
    (void)o;
    return RECUR_OK;
}

void recur_dist_free(struct recur_dist *d) { free(d); }

#endif

recur_status recur_optim_set_grad_weight(recur_optim *o, double weight) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_grad_weight: optimizer is NULL");
    recur_err_clear(o->ctx);
    RETURN_IF(!(weight >= 0 && weight <= 1e300), o->ctx, RECUR_ERR_ARG,
              "recur_optim_set_grad_weight: %g: must be finite and 0 or more", weight);
    o->grad_weight = weight;
    return RECUR_OK;
}
