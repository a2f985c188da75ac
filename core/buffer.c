/*
 * buffer.c: device buffers of the public API (recur_buffer) and the
 * context's one sync. A buffer is a device allocation of the context's
 * backend; writes are staged (recur_be_write_staged: the host copy lives
 * until the queue drains), reads and recur_ctx_sync wait.
 *
 * Ids (tokens, class targets) are written through recur_buffer_write_ids,
 * which keeps a host copy of them beside the device's: a net checks a
 * buffer's ids against its vocabulary and classes, and counts its targets,
 * from that copy, so a device-resident batch is validated before anything
 * runs and without waiting for the device. The copy covers one span of
 * elements; a float write over it, or a call that writes the buffer,
 * forgets it, so a net refuses ids it cannot vouch for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"

recur_status recur_buffer_create(recur_ctx *ctx, size_t count, recur_buffer **out) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_buffer_create: ctx is NULL");
    recur_err_clear(ctx);
    RETURN_IF(!out, ctx, RECUR_ERR_NULL, "recur_buffer_create: out is NULL");
    *out = NULL;
    RETURN_IF(count == 0 || count > SIZE_MAX / sizeof(float), ctx, RECUR_ERR_ARG,
              "recur_buffer_create: count %zu: must be 1..%zu floats", count, SIZE_MAX / sizeof(float));
    recur_buffer *b = calloc(1, sizeof *b);
    RETURN_IF(!b, ctx, RECUR_ERR_NO_MEMORY, "recur_buffer_create: out of memory");
    recur_status st = recur_be_alloc(&ctx->be, count * sizeof(float), &b->mem);
    if (st != RECUR_OK) {
        free(b);
        return st;
    }
    b->ctx = ctx;
    b->count = count;
    b->next = ctx->buffers;
    if (ctx->buffers) ctx->buffers->prev = b;
    ctx->buffers = b;
    *out = b;
    return RECUR_OK;
}

void recur_buffer_free(recur_buffer *b) {
    if (!b) return;
    recur_ctx *ctx = b->ctx;
    recur_be_free(&ctx->be, &b->mem);
    free(b->ids);
    if (b->prev) b->prev->next = b->next;
    else if (ctx->buffers == b) ctx->buffers = b->next;
    if (b->next) b->next->prev = b->prev;
    free(b);
}

void recur_buffers_free(recur_ctx *ctx) {
    while (ctx->buffers) recur_buffer_free(ctx->buffers);
}

size_t recur_buffer_count(const recur_buffer *b) { return b ? b->count : 0; }
size_t recur_buffer_bytes(const recur_buffer *b) { return b ? b->count * sizeof(float) : 0; }

/* The range [offset, offset + count) inside b, or RECUR_ERR_BUFFER_SIZE. */
static recur_status range(const recur_buffer *b, const char *fn, size_t offset, size_t count) {
    RETURN_IF(offset > b->count || count > b->count - offset, b->ctx, RECUR_ERR_BUFFER_SIZE,
              "%s: %zu floats at %zu pass the buffer's end (it holds %zu)", fn, count, offset, b->count);
    return RECUR_OK;
}

recur_status recur_buffer_write(recur_buffer *b, size_t offset, const float *src, size_t count) {
    RETURN_IF(!b, NULL, RECUR_ERR_NULL, "recur_buffer_write: buffer is NULL");
    recur_err_clear(b->ctx);
    RETURN_IF(!src, b->ctx, RECUR_ERR_NULL, "recur_buffer_write: src is NULL");
    TRY(range(b, "recur_buffer_write", offset, count));
    if (count && offset < b->ids_hi && offset + count > b->ids_lo) recur_buffer_forget_ids(b);
    return recur_be_write_staged(&b->ctx->be, recur_mem_at(b->mem, offset), src, count * sizeof(float));
}

recur_status recur_buffer_write_ids(recur_buffer *b, size_t offset, const int32_t *src, size_t count) {
    RETURN_IF(!b, NULL, RECUR_ERR_NULL, "recur_buffer_write_ids: buffer is NULL");
    recur_err_clear(b->ctx);
    RETURN_IF(!src, b->ctx, RECUR_ERR_NULL, "recur_buffer_write_ids: src is NULL");
    TRY(range(b, "recur_buffer_write_ids", offset, count));
    if (!b->ids) {
        b->ids = malloc(b->count * sizeof *b->ids);
        RETURN_IF(!b->ids, b->ctx, RECUR_ERR_NO_MEMORY, "recur_buffer_write_ids: out of memory for %zu ids",
                  b->count);
    }
    TRY(recur_be_write_staged(&b->ctx->be, recur_mem_at(b->mem, offset), src, count * sizeof *src));
    if (!count) return RECUR_OK;
    memcpy(b->ids + offset, src, count * sizeof *src);
    size_t end = offset + count;
    if (b->ids_lo == b->ids_hi || end < b->ids_lo || offset > b->ids_hi) { /* the span starts again */
        b->ids_lo = offset;
        b->ids_hi = end;
    } else { /* it touches the span: the union */
        if (offset < b->ids_lo) b->ids_lo = offset;
        if (end > b->ids_hi) b->ids_hi = end;
    }
    return RECUR_OK;
}

void recur_buffer_forget_ids(const recur_buffer *b) {
    recur_buffer *w = (recur_buffer *)b; /* the ids' bookkeeping, not the contents */
    w->ids_lo = w->ids_hi = 0;
}

const int32_t *recur_buffer_ids(const recur_buffer *b, size_t count) {
    return b->ids && b->ids_lo == 0 && b->ids_hi >= count ? b->ids : NULL;
}

recur_status recur_dev_args(recur_ctx *ctx, const char *fn, const struct recur_dev_arg *a, int n, int inputs_copied) {
    for (int i = 0; i < n; i++) {
        struct recur_mem none = {0};
        *a[i].dev = none;
        const recur_buffer *b = a[i].buf;
        if (!b) continue;
        RETURN_IF(b->ctx != ctx, ctx, RECUR_ERR_ARG, "%s: %s is a buffer of another context", fn, a[i].name);
        RETURN_IF(b->count < a[i].floats, ctx, RECUR_ERR_BUFFER_SIZE, "%s: %s holds %zu floats; the batch needs %zu",
                  fn, a[i].name, b->count, a[i].floats);
        for (int j = 0; j < i; j++) {
            int clash = inputs_copied ? a[i].out && a[j].out : a[i].out || a[j].out;
            RETURN_IF(a[j].buf == b && clash, ctx, RECUR_ERR_ARG, "%s: %s and %s are the same buffer (%s)", fn,
                      a[j].name, a[i].name,
                      inputs_copied ? "two outputs may not share one" : "an output may share it with no other argument");
        }
        *a[i].dev = b->mem;
    }
    return RECUR_OK;
}

void recur_dev_args_written(const struct recur_dev_arg *a, int n) {
    for (int i = 0; i < n; i++)
        if (a[i].buf && a[i].out) recur_buffer_forget_ids(a[i].buf);
}

recur_status recur_buffer_read(const recur_buffer *b, size_t offset, float *dst, size_t count) {
    RETURN_IF(!b, NULL, RECUR_ERR_NULL, "recur_buffer_read: buffer is NULL");
    recur_err_clear(b->ctx);
    RETURN_IF(!dst, b->ctx, RECUR_ERR_NULL, "recur_buffer_read: dst is NULL");
    TRY(range(b, "recur_buffer_read", offset, count));
    return recur_be_read(&b->ctx->be, dst, recur_mem_at(b->mem, offset), count * sizeof(float));
}

recur_status recur_ctx_sync(recur_ctx *ctx) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_ctx_sync: ctx is NULL");
    recur_err_clear(ctx);
    return recur_be_sync(&ctx->be);
}
