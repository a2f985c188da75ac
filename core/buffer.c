/*
 * buffer.c: device buffers of the public API (recur_buffer) and the
 * context's one sync. A buffer is a device allocation of the context's
 * backend; writes are staged (recur_be_write_staged: the host copy lives
 * until the queue drains), reads and recur_ctx_sync wait.
 */
#include <stdint.h>
#include <stdlib.h>

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
    return recur_be_write_staged(&b->ctx->be, recur_mem_at(b->mem, offset), src, count * sizeof(float));
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
