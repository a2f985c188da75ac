/*
 * arena.c: device buffers that grow outside the time loop, the regions a
 * call lays out in them, and a call's host arrays on the device (arena.h).
 */
#include <stdint.h>

#include "arena.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

recur_status recur_arena_grow(recur_ctx *ctx, struct recur_arena *a, size_t floats, int zero) {
    if (a->floats >= floats) return RECUR_OK;
    recur_arena_free(ctx, a);
    TRY(recur_be_alloc(&ctx->be, floats * sizeof(float), &a->mem));
    a->floats = floats;
    return zero ? recur_be_fill(&ctx->be, a->mem, 0.0f, floats) : RECUR_OK;
}

void recur_arena_free(recur_ctx *ctx, struct recur_arena *a) {
    recur_be_free(&ctx->be, &a->mem);
    a->floats = 0;
}

struct recur_plan recur_plan_start(recur_ctx *ctx, const char *what) {
    struct recur_plan p = {ctx, what, 0, RECUR_OK};
    return p;
}

size_t recur_plan_take(struct recur_plan *p, const char *name, size_t a, size_t b, size_t c) {
    if (p->st != RECUR_OK) return 0;
    /* Every offset and total, in bytes, fits a size_t; the limit is aligned,
     * so rounding a region's end up never passes it. */
    const size_t limit = (SIZE_MAX / sizeof(float)) & ~(size_t)(ALIGN_FLOATS - 1);
    size_t at = p->top;
    if ((b && a > limit / b) || (c && a * b > limit / c) || a * b * c > limit - at) {
        p->st = recur_err(p->ctx, RECUR_ERR_ARG,
                          "%s: region '%s' of %zu x %zu x %zu floats after %zu floats does not fit the address space",
                          p->what, name, a, b, c, at);
        return 0;
    }
    p->top = (at + a * b * c + ALIGN_FLOATS - 1) & ~(size_t)(ALIGN_FLOATS - 1);
    return at;
}

/* Where host array h goes in an arena planned by p (0 when it is absent). */
static size_t place(struct recur_plan *p, const struct recur_hostio *h) {
    return h->in || h->out ? recur_plan_take(p, h->name, h->floats, 1, 1) : 0;
}

recur_status recur_hostio_in(recur_ctx *ctx, struct recur_arena *a, const struct recur_hostio *io, int n) {
    struct recur_backend *be = &ctx->be;
    int direct = be->iface->host_memory;
    if (!direct) {
        struct recur_plan total = recur_plan_start(ctx, "host arrays on the device");
        for (int i = 0; i < n; i++) place(&total, &io[i]);
        TRY(total.st);
        TRY(recur_arena_grow(ctx, a, total.top, 0));
    }
    struct recur_plan p = recur_plan_start(ctx, "host arrays on the device");
    for (int i = 0; i < n; i++) {
        struct recur_mem none = {0}, *dev = io[i].dev;
        const float *host = io[i].in ? io[i].in : io[i].out;
        size_t at = place(&p, &io[i]);
        *dev = none;
        if (!host) continue;
        if (direct) {
            dev->buf = (void *)host;
            continue;
        }
        *dev = recur_mem_at(a->mem, at);
        if (io[i].in) TRY(recur_be_write_staged(be, *dev, io[i].in, io[i].floats * sizeof(float)));
    }
    return RECUR_OK;
}

recur_status recur_hostio_out(recur_ctx *ctx, const struct recur_hostio *io, int n) {
    struct recur_backend *be = &ctx->be;
    int reads = 0;
    if (!be->iface->host_memory)
        for (int i = 0; i < n; i++)
            if (io[i].out) {
                TRY(recur_be_read(be, io[i].out, *io[i].dev, io[i].floats * sizeof(float)));
                reads++;
            }
    /* A read waits for the queue; a call without one waits here. */
    return reads ? RECUR_OK : recur_be_sync(be);
}
