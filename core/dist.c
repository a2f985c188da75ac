/*
 * dist.c: data-parallel training over MPI (recur_optim_set_comm in
 * recur-train.h): before each optimizer step, every rank's gradients become
 * the ranks' weighted mean.
 *
 * Buckets. A net's gradients are ranges of its optimizer groups, taken in
 * the order its backward pass finishes them: the head ([head.weight |
 * head.bias], the tail of the net's own block), layer L-1 .. layer 0 (each
 * direction's canonical gradient buffer), the embedding (the head of the
 * own block). Consecutive ranges of a net are gathered into buckets of at
 * most o->bucket_bytes (a range larger than that is a bucket alone; 0: one
 * bucket of every range, started at the step: the path of before). The
 * backward pass tells when each part is final (the models' grad_hook,
 * model.h: net.c and stack.c call it); a bucket starts when its last range
 * is, so its messages travel while the layers below compute: the hook is
 * called at every step of a layer's backward time loop too (POLL), and
 * polls the outstanding requests (Open MPI moves a non-blocking collective
 * only inside MPI calls; polled only between layers, a bucket of a 4-layer
 * net was never done before the step here). recur_optim_step starts
 * what has not started and waits for the rest.
 *
 * A bucket of one range on a host-memory backend (the CPU) is reduced in
 * place on the gradients; a bucket of several ranges, and any bucket of a
 * device without host memory, is packed into host memory and unpacked
 * after. On such a device (OpenCL) the packing reads are queued without
 * waiting when the bucket starts (recur_be_read_async), the reduction
 * starts when a later poll finds them done, and the unpacking writes are
 * queued (recur_be_write_async: the stage lives until the step's read has
 * drained the queue). Each bucket is scaled by the rank's weight, summed to rank 0
 * (MPI_Ireduce) with the weights beside it (MPI_Iallreduce, once a step),
 * divided by the weights' sum on rank 0 and broadcast (MPI_Ibcast): a
 * reduction to one root and a broadcast give every rank the same bits,
 * which MPI_Allreduce does not promise, so replicas cannot drift apart. The
 * broadcast of a bucket can start only once its reduction has finished, and
 * ranks finish reductions at different times: so that every rank issues
 * its collectives of a communicator in the same order (MPI requires it),
 * the reductions (in the order the buckets start) and the broadcasts (in
 * the buckets' order) run on two duplicates of the caller's communicator.
 * Waits poll MPI_Test against a deadline (RECUR_MPI_TIMEOUT), so a rank
 * that never arrives fails the step with a message instead of hanging; the
 * caller aborts the job.
 *
 * The only file of the library that includes mpi.h. Built without MPI,
 * recur_optim_set_comm returns RECUR_ERR_UNSUPPORTED.
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

#define BUCKET_MAX ((size_t)1 << 31) /* bytes: MPI counts are int */

#if RECUR_HAVE_MPI
#include <mpi.h>

/* Floats [off, off+count) of group `group`'s gradients, final after event
 * `ev` of its net's backward pass (0 the head, 1 + L-1-l layer l, L+1 the
 * embedding). */
struct dist_range {
    size_t group, off, count;
    int ev;
};

enum bucket_state { B_IDLE, B_READING, B_REDUCING, B_REDUCED, B_BCASTING, B_DONE };

struct dist_bucket {
    size_t first, n; /* its ranges */
    size_t count;    /* floats */
    size_t stage;    /* staged: its floats in d->stage */
    int staged, net, ev;
    enum bucket_state state;
    MPI_Request req;
    void *ticket; /* B_READING on a device: its last range's read (recur_be_read_async) */
};

/* What a net's grad_hook points to. */
struct dist_net {
    struct recur_dist *d;
    int index, passes; /* its backward passes since the last step */
};

struct recur_dist {
    recur_optim *o;
    MPI_Comm comm, bcomm; /* the reductions (and the weights), the broadcasts */
    int rank, size;
    double timeout_s;
    int overlap; /* buckets start during backward (a bucket size, host memory) */
    struct dist_range *r;
    size_t n_r;
    struct dist_bucket *b;
    size_t n_b, next_bcast;
    size_t *order; /* the buckets in the order they started, the same on every rank */
    size_t n_started, next_reduce;
    float *stage; /* the staged buckets, one after the other */
    struct dist_net *nets;
    MPI_Request wreq; /* the weights' sum, once a step */
    int wstate;       /* 0 not started, 1 in flight, 2 done */
    double wl, wsum;
    /* for the info log at the end: steps; seconds in the step (starting
     * what is left, waiting, unpacking) and in the hook (during backward) */
    long long steps;
    double step_s, hook_s;
    double bytes_all, bytes_early; /* gradient bytes, and those whose bucket was done before its step began */
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

/* RECUR_MPI_BUCKET in bytes (0..2^31) into *bytes when set; RECUR_ERR_ARG naming it. */
static recur_status bucket_from_env(recur_ctx *ctx, size_t *bytes) {
    const char *v = getenv("RECUR_MPI_BUCKET");
    if (!v || !*v) return RECUR_OK;
    char *end;
    errno = 0;
    unsigned long long b = strtoull(v, &end, 10);
    RETURN_IF(*end || errno || *v == '-' || b > BUCKET_MAX, ctx, RECUR_ERR_ARG,
              "RECUR_MPI_BUCKET '%.40s': expected bytes from 0 to %zu (0: one message at the step)", v, BUCKET_MAX);
    *bytes = (size_t)b;
    return RECUR_OK;
}

/* The first float of a range on a host-memory backend. */
static float *host_at(const recur_optim *o, const struct dist_range *r) {
    struct recur_mem m = recur_mem_at(o->g[r->group].g, r->off);
    return (float *)((char *)m.buf + m.off);
}

/* Where bucket b's floats are reduced: the gradients themselves, or its stage. */
static float *bucket_buf(struct recur_dist *d, const struct dist_bucket *b) {
    return b->staged ? d->stage + b->stage : host_at(d->o, &d->r[b->first]);
}

/* The groups as ranges in backward's order, net by net, and the buckets. */
static recur_status plan(struct recur_dist *d) {
    recur_optim *o = d->o;
    struct recur_backend *be = &o->ctx->be;
    if (!be->iface->host_memory && d->stage) recur_be_sync(be); /* no unpacking write still reads it */
    free(d->r), free(d->b), free(d->stage);
    d->r = NULL, d->b = NULL, d->stage = NULL;
    d->n_r = d->n_b = 0;
    /* at most two ranges a group (the own block: head and embedding) */
    free(d->order);
    d->r = calloc(2 * o->n_groups + 1, sizeof *d->r);
    d->b = calloc(2 * o->n_groups + 1, sizeof *d->b);
    d->order = calloc(2 * o->n_groups + 1, sizeof *d->order);
    RETURN_IF(!d->r || !d->b || !d->order, o->ctx, RECUR_ERR_NO_MEMORY, "recur_optim_set_comm: out of memory");
    for (int i = 0; i < o->n_nets; i++) {
        recur_net *n = o->nets[i];
        size_t own = SIZE_MAX, layer0 = SIZE_MAX;
        for (size_t k = 0; k < o->n_groups; k++) {
            if (o->g[k].net != i) continue;
            if (!o->g[k].layer) own = k;
            else if (layer0 == SIZE_MAX) layer0 = k; /* then l * D + d after it */
        }
        if (own != SIZE_MAX && n->n_hw + n->n_hb)
            d->r[d->n_r++] = (struct dist_range){own, n->n_emb, n->n_hw + n->n_hb, 0};
        for (int l = n->L - 1; l >= 0; l--)
            for (int k = 0; k < n->D; k++) {
                size_t g = layer0 + (size_t)l * n->D + k;
                d->r[d->n_r++] = (struct dist_range){g, 0, o->g[g].count, 1 + (n->L - 1 - l)};
            }
        if (own != SIZE_MAX && n->n_emb) d->r[d->n_r++] = (struct dist_range){own, 0, n->n_emb, n->L + 1};
    }
    size_t staged = 0, cap = o->bucket_bytes / sizeof(float); /* floats; 0: one bucket */
    if (o->bucket_bytes && !cap) cap = 1;
    for (size_t k = 0; k < d->n_r; k++) {
        const struct dist_range *r = &d->r[k];
        int net = o->g[r->group].net;
        struct dist_bucket *b = d->n_b ? &d->b[d->n_b - 1] : NULL;
        /* a new bucket: the first, another net's (cap > 0), or past the cap */
        if (!b || (cap && (b->net != net || b->count + r->count > cap))) {
            b = &d->b[d->n_b++];
            *b = (struct dist_bucket){.first = k, .net = net};
        }
        b->n++;
        b->count += r->count;
        b->ev = r->ev;
        RETURN_IF(b->count > (size_t)INT32_MAX, o->ctx, RECUR_ERR_ARG,
                  "recur_optim_set_comm: a bucket of %zu gradients: more than one MPI message holds (%d)", b->count,
                  INT32_MAX);
    }
    for (size_t k = 0; k < d->n_b; k++) {
        struct dist_bucket *b = &d->b[k];
        b->staged = !be->iface->host_memory || b->n > 1;
        b->stage = staged;
        if (b->staged) staged += b->count;
    }
    d->stage = malloc((staged ? staged : 1) * sizeof(float));
    RETURN_IF(!d->stage, o->ctx, RECUR_ERR_NO_MEMORY, "recur_optim_set_comm: out of memory for %zu gradients", staged);
    d->overlap = cap > 0;
    recur_log(RECUR_LOG_INFO,
              "optimizer: rank %d of %d: the gradients in %zu buckets (at most %zu bytes each, or one tensor group; "
              "%zu floats packed in host memory), started %s",
              d->rank, d->size, d->n_b, o->bucket_bytes, staged,
              d->overlap ? "during the backward pass" : "at the step");
    return RECUR_OK;
}

static recur_status mpi_fail(struct recur_dist *d, const char *call, const char *what, int rc) {
    return recur_err(d->o->ctx, RECUR_ERR_BACKEND, "rank %d: step %lld: %s for %s failed (MPI error %d)", d->rank,
                     d->o->steps + 1, call, what, rc);
}

/* Starts the step's sum of the ranks' weights (once). */
static recur_status start_weights(struct recur_dist *d) {
    if (d->wstate) return RECUR_OK;
    d->wl = d->o->grad_weight;
    int rc = MPI_Iallreduce(&d->wl, &d->wsum, 1, MPI_DOUBLE, MPI_SUM, d->comm, &d->wreq);
    if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Iallreduce", "the sum of the ranks' gradient weights", rc);
    d->wstate = 1;
    return RECUR_OK;
}

/* Starts bucket b: packs it when staged (on a device, reads enqueued
 * without waiting). Its reduction follows in start_reductions. */
static recur_status start_bucket(struct recur_dist *d, struct dist_bucket *b) {
    recur_optim *o = d->o;
    struct recur_backend *be = &o->ctx->be;
    TRY(start_weights(d));
    float *buf = bucket_buf(d, b);
    b->ticket = NULL;
    if (b->staged)
        for (size_t k = b->first, at = 0; k < b->first + b->n; at += d->r[k].count, k++) {
            const struct dist_range *r = &d->r[k];
            if (be->iface->host_memory) memcpy(buf + at, host_at(o, r), r->count * sizeof(float));
            else
                TRY(recur_be_read_async(be, buf + at, recur_mem_at(o->g[r->group].g, r->off), r->count * sizeof(float),
                                        k + 1 == b->first + b->n ? &b->ticket : NULL));
        }
    b->state = B_READING;
    d->order[d->n_started++] = (size_t)(b - d->b);
    return RECUR_OK;
}

/* Starts the reductions of the started buckets, in the order they started
 * (the same on every rank), as far as their reads have finished (wait 1:
 * waiting for them): each scaled by this rank's weight, then MPI_Ireduce. */
static recur_status start_reductions(struct recur_dist *d, int wait) {
    struct recur_backend *be = &d->o->ctx->be;
    while (d->next_reduce < d->n_started) {
        struct dist_bucket *b = &d->b[d->order[d->next_reduce]];
        int done = 1;
        if (b->ticket) TRY(recur_be_read_done(be, b->ticket, wait, &done));
        if (!done) break;
        b->ticket = NULL;
        float *buf = bucket_buf(d, b);
        float w = (float)d->wl;
        if (w != 1.0f)
            for (size_t i = 0; i < b->count; i++) buf[i] *= w;
        int rc = MPI_Ireduce(d->rank == 0 ? MPI_IN_PLACE : buf, buf, (int)b->count, MPI_FLOAT, MPI_SUM, 0, d->comm,
                             &b->req);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Ireduce", "the reduction of the gradients", rc);
        b->state = B_REDUCING;
        d->next_reduce++;
    }
    return RECUR_OK;
}

/* The gradients of a staged bucket back where they came from. */
static recur_status unpack(struct recur_dist *d, const struct dist_bucket *b) {
    recur_optim *o = d->o;
    struct recur_backend *be = &o->ctx->be;
    const float *buf = bucket_buf(d, b);
    for (size_t k = b->first, at = 0; k < b->first + b->n; at += d->r[k].count, k++) {
        const struct dist_range *r = &d->r[k];
        if (be->iface->host_memory) memcpy(host_at(o, r), buf + at, r->count * sizeof(float));
        else /* queued: the stage lives until the step's read has drained the queue */
            TRY(recur_be_write_async(be, recur_mem_at(o->g[r->group].g, r->off), buf + at, r->count * sizeof(float)));
    }
    return RECUR_OK;
}

static recur_status check_wsum(struct recur_dist *d) {
    RETURN_IF(!(d->wsum > 0), d->o->ctx, RECUR_ERR_ARG,
              "rank %d: step %lld: the ranks' gradient weights sum to %g; at least one must be positive", d->rank,
              d->o->steps + 1, d->wsum);
    return RECUR_OK;
}

/* One pass over the outstanding requests, never waiting: reductions that
 * finished go on to their broadcast (in the buckets' order; rank 0 first
 * divides by the weights' sum), finished broadcasts are unpacked. */
static recur_status progress(struct recur_dist *d, int wait_reads) {
    int done, rc;
    TRY(start_reductions(d, wait_reads));
    if (d->wstate == 1) {
        rc = MPI_Test(&d->wreq, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Test", "the sum of the ranks' gradient weights", rc);
        if (done) d->wstate = 2;
    }
    for (size_t k = 0; k < d->n_b; k++) {
        struct dist_bucket *b = &d->b[k];
        if (b->state != B_REDUCING) continue;
        rc = MPI_Test(&b->req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Test", "the reduction of the gradients", rc);
        if (done) b->state = B_REDUCED;
    }
    while (d->next_bcast < d->n_b && d->b[d->next_bcast].state == B_REDUCED) {
        struct dist_bucket *b = &d->b[d->next_bcast];
        float *buf = bucket_buf(d, b);
        if (d->rank == 0) {
            if (d->wstate != 2) break;
            TRY(check_wsum(d));
            float inv = (float)(1.0 / d->wsum);
            for (size_t i = 0; i < b->count; i++) buf[i] *= inv;
        }
        rc = MPI_Ibcast(buf, (int)b->count, MPI_FLOAT, 0, d->bcomm, &b->req);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Ibcast", "the broadcast of the mean gradients", rc);
        b->state = B_BCASTING;
        d->next_bcast++;
    }
    for (size_t k = 0; k < d->n_b; k++) {
        struct dist_bucket *b = &d->b[k];
        if (b->state != B_BCASTING) continue;
        rc = MPI_Test(&b->req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(d, "MPI_Test", "the broadcast of the mean gradients", rc);
        if (!done) continue;
        if (b->staged) TRY(unpack(d, b));
        b->state = B_DONE;
    }
    return RECUR_OK;
}

/* Some bucket's broadcast is still in flight. */
static int in_bcast(const struct recur_dist *d) {
    for (size_t k = 0; k < d->next_bcast; k++)
        if (d->b[k].state == B_BCASTING) return 1;
    return 0;
}

/* A net's backward pass, as it goes (model.h): BEGIN counts the pass (and
 * refuses one more than the step adds while buckets may be in flight);
 * each later event of the step's last pass starts the net's buckets that
 * are now final, and every event polls (POLL, a step of a layer's time
 * loop, only while something is in flight). */
static recur_status on_grads(void *arg, enum recur_grad_part part, int layer) {
    struct dist_net *dn = arg;
    struct recur_dist *d = dn->d;
    recur_optim *o = d->o;
    if (part == RECUR_GRAD_PART_BEGIN) {
        RETURN_IF(d->overlap && dn->passes >= o->accum, o->ctx, RECUR_ERR_STATE,
                  "recur_net_backward: backward pass %d of nets[%d] before recur_optim_step, but the optimizer adds %d "
                  "a step (recur_optim_set_accum) and its gradients are being reduced over MPI: run the step first",
                  dn->passes + 1, dn->index, o->accum);
        dn->passes++;
        return RECUR_OK;
    }
    if (!d->overlap || dn->passes != o->accum) return RECUR_OK;
    if (part == RECUR_GRAD_PART_POLL && d->next_bcast == d->n_started && !in_bcast(d)) return RECUR_OK; /* idle */
    double t0 = now_s();
    recur_net *n = o->nets[dn->index];
    int ev = part == RECUR_GRAD_PART_POLL    ? -1 /* nothing new is final */
             : part == RECUR_GRAD_PART_HEAD  ? 0
             : part == RECUR_GRAD_PART_LAYER ? 1 + (n->L - 1 - layer)
                                             : n->L + 1;
    recur_status st = RECUR_OK;
    for (size_t k = 0; k < d->n_b && st == RECUR_OK; k++) {
        struct dist_bucket *b = &d->b[k];
        if (b->net == dn->index && b->state == B_IDLE && b->ev <= ev) st = start_bucket(d, b);
    }
    if (st == RECUR_OK) st = progress(d, 0);
    d->hook_s += now_s() - t0;
    return st;
}

/* Nets' models report to d (NULL: to nobody). */
static void hook_nets(recur_optim *o, struct recur_dist *d) {
    for (int i = 0; i < o->n_nets; i++) {
        struct recur_grad_hook h = {0};
        if (d) h = (struct recur_grad_hook){on_grads, &d->nets[i]};
        o->nets[i]->model->grad_hook = h;
    }
}

/* A step's reduction has begun (a bucket or the weights started, or a backward pass counted). */
static int in_flight(const struct recur_dist *d) {
    if (!d) return 0;
    if (d->wstate) return 1;
    for (int i = 0; i < d->o->n_nets; i++)
        if (d->nets[i].passes) return 1;
    return 0;
}

recur_status recur_optim_set_comm(recur_optim *o, void *mpi_comm) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_comm: optimizer is NULL");
    recur_err_clear(o->ctx);
    RETURN_IF(in_flight(o->dist), o->ctx, RECUR_ERR_STATE,
              "recur_optim_set_comm: a step's gradients are being reduced; run recur_optim_step first");
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
    if (!o->bucket_set) TRY(bucket_from_env(o->ctx, &o->bucket_bytes));
    size_t total = 0;
    for (size_t i = 0; i < o->n_groups; i++) total += o->g[i].count;
    struct recur_dist *d = calloc(1, sizeof *d);
    struct dist_net *nets = calloc((size_t)o->n_nets, sizeof *nets);
    if (!d || !nets) {
        free(d), free(nets);
        return recur_err(o->ctx, RECUR_ERR_NO_MEMORY, "recur_optim_set_comm: out of memory");
    }
    d->o = o;
    d->nets = nets;
    d->comm = d->bcomm = MPI_COMM_NULL;
    for (int i = 0; i < o->n_nets; i++) nets[i] = (struct dist_net){d, i, 0};
    int rc = MPI_Comm_dup(*(MPI_Comm *)mpi_comm, &d->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(d->comm, &d->bcomm);
    if (rc != MPI_SUCCESS) {
        recur_dist_free(d);
        return recur_err(o->ctx, RECUR_ERR_ARG, "recur_optim_set_comm: MPI_Comm_dup failed (MPI error %d)", rc);
    }
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    d->timeout_s = timeout;
    recur_status st = plan(d);
    if (st != RECUR_OK) {
        recur_dist_free(d);
        return st;
    }
    recur_dist_free(o->dist);
    o->dist = d;
    hook_nets(o, d);
    recur_log(RECUR_LOG_INFO, "optimizer: gradients averaged over %d MPI ranks (this is rank %d), %zu floats a step",
              d->size, d->rank, total);
    return RECUR_OK;
}

/* Buckets planned anew for o->bucket_bytes; on failure, the old size's again. */
static recur_status replan(recur_optim *o, size_t was) {
    if (!o->dist) return RECUR_OK;
    recur_status st = plan(o->dist);
    if (st != RECUR_OK) {
        o->bucket_bytes = was;
        if (plan(o->dist) != RECUR_OK) { /* out of memory twice: one process again */
            hook_nets(o, NULL);
            recur_dist_free(o->dist);
            o->dist = NULL;
        }
    }
    return st;
}

static int weights_taken(const recur_optim *o) { return o->dist && o->dist->wstate; }

/* Waits for every bucket (starting those left), polling at full speed for a
 * second (as MPI_Wait would) and then sleeping between polls, until the
 * deadline; then makes the optimizer ready for the next step. */
recur_status recur_dist_average(recur_optim *o) {
    struct recur_dist *d = o->dist;
    if (!d) return RECUR_OK;
    double t0 = now_s();
    for (size_t k = 0; k < d->n_b; k++) {
        d->bytes_all += (double)d->b[k].count * sizeof(float);
        if (d->b[k].state == B_DONE) d->bytes_early += (double)d->b[k].count * sizeof(float);
    }
    recur_status st = start_weights(d);
    for (size_t k = 0; k < d->n_b && st == RECUR_OK; k++)
        if (d->b[k].state == B_IDLE) st = start_bucket(d, &d->b[k]);
    for (long polls = 0; st == RECUR_OK; polls++) {
        st = progress(d, 1);
        size_t left = 0;
        while (left < d->n_b && d->b[left].state == B_DONE) left++;
        if (st != RECUR_OK || (left == d->n_b && d->wstate == 2)) break;
        double waited = now_s() - t0;
        if (waited > d->timeout_s) {
            const char *what = d->wstate != 2                   ? "the sum of the ranks' gradient weights"
                               : d->b[left].state <= B_REDUCED ? "the reduction of the gradients"
                                                               : "the broadcast of the mean gradients";
            st = recur_err(o->ctx, RECUR_ERR_BACKEND,
                           "rank %d: step %lld: %s (bucket %zu of %zu) did not complete in %g s (RECUR_MPI_TIMEOUT): "
                           "another rank stopped or hangs",
                           d->rank, o->steps + 1, what, left + 1, d->n_b, d->timeout_s);
            break;
        }
        /* MPI progresses a non-blocking collective only inside MPI calls:
         * poll at full speed while the others are about to arrive; after a
         * second (a rank far behind), give the core away between polls. */
        if (polls > 1000 && waited > 1.0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (st == RECUR_OK) st = check_wsum(d);
    if (st != RECUR_OK) return st; /* the job ends: requests may stay in flight */
    for (size_t k = 0; k < d->n_b; k++) d->b[k].state = B_IDLE;
    for (int i = 0; i < o->n_nets; i++) d->nets[i].passes = 0;
    d->next_bcast = d->next_reduce = d->n_started = 0;
    d->wstate = 0;
    d->steps++;
    d->step_s += now_s() - t0;
    return RECUR_OK;
}

/* Requests still in flight (after a failed step) may read or write the
 * stage and the gradients: they are left to MPI_Abort, and so is the stage. */
void recur_dist_free(struct recur_dist *d) {
    if (!d) return;
    if (d->steps)
        recur_log(RECUR_LOG_INFO,
                  "optimizer: rank %d of %d: %lld gradient averages in %zu buckets: %.2f ms a step in the backward "
                  "pass (starting buckets, polling), %.2f ms in the step (starting the rest, waiting for the other "
                  "ranks, reducing, broadcasting, unpacking); %.1f%% of the bytes were reduced before their step began",
                  d->rank, d->size, d->steps, d->n_b, 1e3 * d->hook_s / (double)d->steps,
                  1e3 * d->step_s / (double)d->steps, d->bytes_all > 0 ? 100 * d->bytes_early / d->bytes_all : 0.0);
    recur_optim *o = d->o;
    if (o && o->dist == d) hook_nets(o, NULL);
    int fin = 0, busy = d->wstate != 0;
    for (size_t k = 0; k < d->n_b; k++) busy |= d->b[k].state != B_IDLE && d->b[k].state != B_DONE;
    MPI_Finalized(&fin);
    if (!fin) {
        if (d->bcomm != MPI_COMM_NULL) MPI_Comm_free(&d->bcomm);
        if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    }
    if (!busy && d->stage && !o->ctx->be.iface->host_memory) recur_be_sync(&o->ctx->be); /* unpacking writes */
    if (!busy) free(d->stage);
    free(d->r);
    free(d->b);
    free(d->order);
    free(d->nets);
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

static int in_flight(const struct recur_dist *d) { return (void)d, 0; }
static recur_status replan(recur_optim *o, size_t was) { return (void)o, (void)was, RECUR_OK; }
static int weights_taken(const recur_optim *o) { return (void)o, 0; }

void recur_dist_free(struct recur_dist *d) { free(d); }

#endif

recur_status recur_optim_set_grad_weight(recur_optim *o, double weight) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_grad_weight: optimizer is NULL");
    recur_err_clear(o->ctx);
    RETURN_IF(!(weight >= 0 && weight <= 1e300), o->ctx, RECUR_ERR_ARG,
              "recur_optim_set_grad_weight: %g: must be finite and 0 or more", weight);
    RETURN_IF(weights_taken(o), o->ctx, RECUR_ERR_STATE,
              "recur_optim_set_grad_weight: this step's reduction has begun with weight %g; set it before the step's "
              "first backward pass", o->grad_weight);
    o->grad_weight = weight;
    return RECUR_OK;
}

recur_status recur_optim_set_bucket_size(recur_optim *o, size_t bytes) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_bucket_size: optimizer is NULL");
    recur_err_clear(o->ctx);
    RETURN_IF(bytes > BUCKET_MAX, o->ctx, RECUR_ERR_ARG, "recur_optim_set_bucket_size: %zu bytes: at most %zu", bytes,
              BUCKET_MAX);
    RETURN_IF(in_flight(o->dist), o->ctx, RECUR_ERR_STATE,
              "recur_optim_set_bucket_size: a step's gradients are being reduced; run recur_optim_step first");
    size_t was = o->bucket_bytes;
    o->bucket_bytes = bytes;
    o->bucket_set = 1;
    return replan(o, was);
}

recur_status recur_optim_set_accum(recur_optim *o, int passes) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_accum: optimizer is NULL");
    recur_err_clear(o->ctx);
    RETURN_IF(passes < 1 || passes > 1000000, o->ctx, RECUR_ERR_ARG,
              "recur_optim_set_accum: %d backward passes a step: must be 1..1000000", passes);
    RETURN_IF(in_flight(o->dist), o->ctx, RECUR_ERR_STATE,
              "recur_optim_set_accum: a step's gradients are being reduced; run recur_optim_step first");
    o->accum = passes;
    return RECUR_OK;
}
