/*
 * dispatch.c: the backend registry and the only calls through the dispatch
 * table. Core reaches the backends through these functions alone; the
 * wrappers apply the defaults of optional slots, so no caller tests for NULL.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend-impl.h"

/* The backends compiled in, in order of preference. */
static const struct recur_backend_i *const backends[] = {
#ifdef RECUR_HAVE_OPENCL
    &recur_opencl_backend,
#endif
    &recur_cpu_backend,
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

void recur_be_devices(recur_device_info *out, size_t cap, size_t *count) {
    *count = 0;
    for (size_t b = 0; b < N_BACKENDS; b++) backends[b]->devices(out, cap, count);
}

const struct recur_backend_i *recur_be_find(const char *sel, const char **rest) {
    *rest = "";
    if (!sel || !*sel) {
        /* The default: a preferred device (an OpenCL GPU) if any, else the CPU. */
        for (size_t b = 0; b < N_BACKENDS; b++)
            if (backends[b]->preferred && backends[b]->preferred()) return backends[b];
        return &recur_cpu_backend;
    }
    size_t len = strcspn(sel, ":");
    *rest = sel[len] == ':' ? sel + len + 1 : sel + len;
    for (size_t b = 0; b < N_BACKENDS; b++) {
        const char *name = backends[b]->name;
        if (strlen(name) == len && strncasecmp(name, sel, len) == 0) return backends[b];
    }
    return NULL;
}

/* The first mandatory slot a backend left NULL, or NULL when none. */
static const char *missing_slot(const struct recur_backend_i *i) {
#define SLOT(s) if (!i->s) return #s
    SLOT(devices); SLOT(open); SLOT(close); SLOT(alloc); SLOT(free); SLOT(write); SLOT(read); SLOT(copy);
    SLOT(fill); SLOT(scale); SLOT(gemm); SLOT(rows_set); SLOT(colsum); SLOT(add); SLOT(to_bf16); SLOT(from_bf16);
    SLOT(transpose); SLOT(gather); SLOT(scatter); SLOT(dropout); SLOT(zoneout); SLOT(index_add); SLOT(xent);
    SLOT(mse); SLOT(sum); SLOT(sgd); SLOT(adam); SLOT(supports); SLOT(cell_run);
#undef SLOT
    return NULL;
}

recur_status recur_be_open(struct recur_backend *be, const struct recur_backend_i *iface, recur_ctx *ctx,
                           const char *spec) {
    const char *missing = missing_slot(iface);
    RETURN_IF(missing, ctx, RECUR_ERR_BACKEND, "backend '%s' lacks the mandatory slot '%s'", iface->name, missing);
    memset(be, 0, sizeof *be);
    be->iface = iface;
    be->ctx = ctx;
    return iface->open(be, spec);
}

/* The queue has drained: no write_async still reads a kept block. */
static void kept_release(struct recur_backend *be) {
    while (be->kept) {
        struct recur_be_kept *k = be->kept;
        be->kept = k->next;
        free(k->block);
        free(k);
    }
    be->kept_bytes = be->kept_count = 0;
}

/* close() waits for the queue (or drops it), so the blocks go after it. */
void recur_be_close(struct recur_backend *be) {
    be->iface->close(be);
    kept_release(be);
}

recur_status recur_be_alloc(struct recur_backend *be, size_t bytes, struct recur_mem *out) {
    out->off = 0;
    out->buf = NULL;
    if (bytes == 0) return RECUR_OK; /* an empty region needs no buffer */
    return be->iface->alloc(be, bytes, &out->buf);
}

void recur_be_free(struct recur_backend *be, struct recur_mem *m) {
    if (m->buf) be->iface->free(be, m->buf);
    m->buf = NULL;
    m->off = 0;
}

recur_status recur_be_write(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes) {
    return bytes ? be->iface->write(be, dst, src, bytes) : RECUR_OK;
}

recur_status recur_be_write_async(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes) {
    if (!bytes) return RECUR_OK;
    return be->iface->write_async ? be->iface->write_async(be, dst, src, bytes) : be->iface->write(be, dst, src, bytes);
}

recur_status recur_be_write_owned(struct recur_backend *be, struct recur_mem dst, void *block, size_t bytes) {
    if (!bytes || !be->iface->write_async) {
        recur_status st = recur_be_write(be, dst, block, bytes);
        free(block);
        return st;
    }
    struct recur_be_kept *k = malloc(sizeof *k);
    if (!k) { /* nothing to keep it on: a write that waits */
        recur_status st = be->iface->write(be, dst, block, bytes);
        free(block);
        return st;
    }
    recur_status st = RECUR_OK;
    if (be->kept_bytes + bytes > RECUR_BE_KEPT_MAX || be->kept_count >= RECUR_BE_KEPT_BLOCKS)
        st = recur_be_sync(be); /* frees what is held */
    if (st == RECUR_OK) st = be->iface->write_async(be, dst, block, bytes);
    if (st != RECUR_OK) {
        free(k);
        free(block);
        return st;
    }
    k->block = block;
    k->next = be->kept;
    be->kept = k;
    be->kept_bytes += bytes;
    be->kept_count++;
    return RECUR_OK;
}

recur_status recur_be_write_staged(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes) {
    if (!bytes || !be->iface->write_async) return recur_be_write(be, dst, src, bytes);
    void *block = malloc(bytes);
    if (!block) return be->iface->write(be, dst, src, bytes); /* no copy: a write that waits */
    memcpy(block, src, bytes);
    return recur_be_write_owned(be, dst, block, bytes);
}

recur_status recur_be_read(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes) {
    if (!bytes) return RECUR_OK;
    recur_status st = be->iface->read(be, dst, src, bytes);
    if (st == RECUR_OK) kept_release(be); /* reads wait for the whole (in-order) queue */
    return st;
}

recur_status recur_be_read_async(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes,
                                 void **ticket) {
    if (ticket) *ticket = NULL;
    if (!bytes) return RECUR_OK;
    if (!be->iface->read_async) return recur_be_read(be, dst, src, bytes);
    return be->iface->read_async(be, dst, src, bytes, ticket);
}

recur_status recur_be_read_done(struct recur_backend *be, void *ticket, int wait, int *done) {
    *done = 1;
    return ticket && be->iface->read_done ? be->iface->read_done(be, ticket, wait, done) : RECUR_OK;
}

recur_status recur_be_copy(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t bytes) {
    return bytes ? be->iface->copy(be, dst, src, bytes) : RECUR_OK;
}

recur_status recur_be_fill(struct recur_backend *be, struct recur_mem dst, float value, size_t count) {
    return count ? be->iface->fill(be, dst, value, count) : RECUR_OK;
}

recur_status recur_be_scale(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld, float beta) {
    return rows > 0 && width > 0 && beta != 1.0f ? be->iface->scale(be, dst, rows, width, ld, beta) : RECUR_OK;
}

/* prec is F32 or a type the backend lists (never a shift by an unknown value). */
static recur_status check_prec(struct recur_backend *be, recur_dtype prec) {
    if (prec == RECUR_DTYPE_F32) return RECUR_OK;
    const char *name = recur_dtype_name(prec);
    RETURN_IF(!name, be->ctx, RECUR_ERR_UNSUPPORTED, "%s: no products of type %d: not a recur_dtype", be->info.selector,
              (int)prec);
    RETURN_IF(!(recur_be_precisions(be, NULL) & (1u << prec)), be->ctx, RECUR_ERR_UNSUPPORTED,
              "%s: no %s products on this device", be->info.selector, name);
    return RECUR_OK;
}

recur_status recur_be_gemm_prec(struct recur_backend *be, recur_dtype prec, int trans_a, int trans_b, int M, int N,
                                int K, float alpha, struct recur_mem A, int lda, struct recur_mem B, int ldb,
                                float beta, struct recur_mem C, int ldc) {
    if (M <= 0 || N <= 0) return RECUR_OK;
    /* An empty sum: C = beta C, by the scale slot. Never a GEMM with A = B = C:
     * BLAS libraries declare the inputs restrict (CLBlast's kernels race on
     * such a call) and 0 * Inf or NaN in C would give NaN. */
    if (K <= 0) return recur_be_scale(be, C, M, N, ldc, beta);
    TRY(check_prec(be, prec));
    return be->iface->gemm(be, prec, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

recur_status recur_be_gemm(struct recur_backend *be, int trans_a, int trans_b, int M, int N, int K,
                           float alpha, struct recur_mem A, int lda, struct recur_mem B, int ldb,
                           float beta, struct recur_mem C, int ldc) {
    return recur_be_gemm_prec(be, RECUR_DTYPE_F32, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

unsigned recur_be_precisions(struct recur_backend *be, unsigned *native) {
    unsigned nat = 0, all = be->iface->precisions ? be->iface->precisions(be, &nat) : 0;
    if (native) *native = nat | 1u << RECUR_DTYPE_F32;
    return all | 1u << RECUR_DTYPE_F32;
}

int recur_be_packs(const struct recur_backend *be) {
    return be->iface->pack && be->iface->gemm_packed && be->iface->unpack;
}

recur_status recur_be_pack(struct recur_backend *be, recur_dtype prec, int trans_b, int K, int N, struct recur_mem B,
                           int ldb, void **packed) {
    *packed = NULL;
    TRY(check_prec(be, prec));
    return be->iface->pack(be, prec, trans_b, K, N, B, ldb, packed);
}

recur_status recur_be_gemm_packed(struct recur_backend *be, int M, struct recur_mem A, int lda, const void *packed,
                                  float beta, struct recur_mem C, int ldc) {
    return M > 0 ? be->iface->gemm_packed(be, M, A, lda, packed, beta, C, ldc) : RECUR_OK;
}

recur_status recur_be_repack(struct recur_backend *be, void *packed) {
    return be->iface->repack ? be->iface->repack(be, packed) : RECUR_ERR_UNSUPPORTED;
}

void recur_be_unpack(struct recur_backend *be, void *packed) {
    if (packed) be->iface->unpack(be, packed);
}

recur_status recur_be_rows_set(struct recur_backend *be, struct recur_mem dst, int rows, int width,
                               int ld, struct recur_mem row) {
    return rows > 0 && width > 0 ? be->iface->rows_set(be, dst, rows, width, ld, row) : RECUR_OK;
}

recur_status recur_be_colsum(struct recur_backend *be, struct recur_mem dst, float beta,
                             struct recur_mem src, int rows, int width, int ld) {
    if (width <= 0) return RECUR_OK;
    if (rows <= 0) return beta == 1.0f ? RECUR_OK : recur_be_fill(be, dst, 0.0f, (size_t)width);
    return be->iface->colsum(be, dst, beta, src, rows, width, ld);
}

recur_status recur_be_add(struct recur_backend *be, struct recur_mem y, struct recur_mem x, size_t count) {
    return count ? be->iface->add(be, y, x, count) : RECUR_OK;
}

recur_status recur_be_to_bf16(struct recur_backend *be, struct recur_mem dst16, struct recur_mem src, size_t count) {
    return count ? be->iface->to_bf16(be, dst16, src, count) : RECUR_OK;
}

recur_status recur_be_from_bf16(struct recur_backend *be, struct recur_mem dst, struct recur_mem src16, size_t count) {
    return count ? be->iface->from_bf16(be, dst, src16, count) : RECUR_OK;
}

recur_status recur_be_transpose(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                int ld_src, int rows, int cols) {
    return rows > 0 && cols > 0 ? be->iface->transpose(be, dst, ld_dst, src, ld_src, rows, cols) : RECUR_OK;
}

recur_status recur_be_gather(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                             int ld_src, struct recur_mem idx, int rows, int width) {
    return rows > 0 && width > 0 ? be->iface->gather(be, dst, ld_dst, src, ld_src, idx, rows, width) : RECUR_OK;
}

recur_status recur_be_scatter(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                              int ld_src, struct recur_mem idx, int rows, int width, int add) {
    return rows > 0 && width > 0 ? be->iface->scatter(be, dst, ld_dst, src, ld_src, idx, rows, width, add)
                                 : RECUR_OK;
}

recur_status recur_be_dropout(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t count,
                              float p, uint64_t seed, uint64_t stream) {
    return count ? be->iface->dropout(be, dst, src, count, p, seed, stream) : RECUR_OK;
}

recur_status recur_be_zoneout(struct recur_backend *be, int mode, struct recur_mem out, struct recur_mem a,
                              struct recur_mem b, int rows, int H, struct recur_mem idx, uint64_t base, float p,
                              uint64_t seed, uint64_t stream) {
    return rows > 0 && H > 0 ? be->iface->zoneout(be, mode, out, a, b, rows, H, idx, base, p, 1.0f - p, seed, stream)
                             : RECUR_OK;
}

recur_status recur_be_index_add(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                int ld_src, struct recur_mem idx, int rows, int width) {
    return rows > 0 && width > 0 ? be->iface->index_add(be, dst, ld_dst, src, ld_src, idx, rows, width) : RECUR_OK;
}

recur_status recur_be_xent(struct recur_backend *be, struct recur_mem z, int ld, struct recur_mem target, int rows, int K,
                           float scale, struct recur_mem dz, struct recur_mem loss) {
    return rows > 0 && K > 0 ? be->iface->xent(be, z, ld, target, rows, K, scale, dz, loss) : RECUR_OK;
}

recur_status recur_be_mse(struct recur_backend *be, struct recur_mem p, int ld_p, struct recur_mem v, int ld_v,
                          struct recur_mem sel, int rows, int K, float scale, struct recur_mem dp, struct recur_mem loss) {
    return rows > 0 && K > 0 ? be->iface->mse(be, p, ld_p, v, ld_v, sel, rows, K, scale, dp, loss) : RECUR_OK;
}

recur_status recur_be_sum(struct recur_backend *be, struct recur_mem x, size_t count, int square, struct recur_mem dst) {
    return count ? be->iface->sum(be, x, count, square, dst) : recur_be_fill(be, dst, 0.0f, RECUR_SUM_PARTS);
}

recur_status recur_be_sgd(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem v,
                          size_t count, float lr, float momentum, float wd, float gscale) {
    return count ? be->iface->sgd(be, w, g, v, count, lr, momentum, wd, gscale) : RECUR_OK;
}

recur_status recur_be_adam(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem m,
                           struct recur_mem v, size_t count, float step_size, float b1, float b2, float eps,
                           float bc2_sqrt, float wd, float gscale) {
    return count ? be->iface->adam(be, w, g, m, v, count, step_size, b1, b2, eps, bc2_sqrt, wd, gscale) : RECUR_OK;
}

recur_status recur_be_supports(struct recur_backend *be, const struct recur_cell *cell) {
    return be->iface->supports(be, cell);
}

recur_status recur_be_cell_open(struct recur_backend *be, const struct recur_cell *cell, void **handle) {
    if (!be->iface->cell_open) {
        *handle = (void *)cell;
        return RECUR_OK;
    }
    return be->iface->cell_open(be, cell, handle);
}

void recur_be_cell_close(struct recur_backend *be, void *handle) {
    if (be->iface->cell_close && handle) be->iface->cell_close(be, handle);
}

recur_status recur_be_cell_run(struct recur_backend *be, void *handle, int stage, int backward,
                               const struct recur_step *args) {
    return be->iface->cell_run(be, handle, stage, backward, args);
}

recur_status recur_be_sync(struct recur_backend *be) {
    recur_status st = be->iface->sync ? be->iface->sync(be) : RECUR_OK;
    if (st == RECUR_OK) kept_release(be);
    return st;
}
