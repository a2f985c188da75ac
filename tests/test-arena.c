/*
 * test-arena.c: core/arena.c on the library's own objects: the region
 * planner's layout and its overflow errors, arenas that only grow, and host
 * I/O on a host-memory device (in place) and through an arena.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"

Test(arena, regions_are_aligned_and_counted) {
    struct recur_plan p = recur_plan_start(NULL, "test buffer");
    cr_assert_eq(recur_plan_take(&p, "a", 3, 1, 1), 0);
    cr_assert_eq(recur_plan_take(&p, "b", 2, 5, 1), 16);
    cr_assert_eq(recur_plan_take(&p, "empty", 0, 7, 9), 32);
    cr_assert_eq(recur_plan_take(&p, "c", 2, 2, 4), 32);
    cr_assert_eq(p.top, 48);
    cr_assert_eq(p.st, RECUR_OK);
    struct recur_plan q = p; /* a copy lays out a second use of the prefix */
    cr_assert_eq(recur_plan_take(&q, "d", 1, 1, 1), 48);
    cr_assert_eq(p.top, 48);
}

/* The first region whose size or end would wrap: RECUR_ERR_ARG naming the
 * buffer, the region and its sizes; later regions are not laid out. */
static void expect_overflow(size_t first, size_t a, size_t b, size_t c) {
    struct recur_plan p = recur_plan_start(NULL, "test buffer");
    recur_plan_take(&p, "first", first, 1, 1);
    size_t top = p.top;
    cr_assert_eq(recur_plan_take(&p, "huge", a, b, c), 0);
    cr_assert_eq(p.st, RECUR_ERR_ARG, "%zu + %zu x %zu x %zu floats: no error", first, a, b, c);
    char want[160];
    snprintf(want, sizeof want, "test buffer: region 'huge' of %zu x %zu x %zu floats after %zu floats", a, b, c, top);
    cr_assert(strstr(recur_last_error(), want), "'%s' is not in '%s'", want, recur_last_error());
    cr_assert_eq(p.top, top);
    cr_assert_eq(recur_plan_take(&p, "later", 1, 1, 1), 0);
    cr_assert_eq(p.top, top);
    cr_assert_eq(p.st, RECUR_ERR_ARG);
}

Test(arena, overflow_is_an_error_naming_the_sizes) {
    expect_overflow(0, SIZE_MAX / 2, 3, 1);                       /* a x b wraps */
    expect_overflow(0, (size_t)1 << 40, (size_t)1 << 20, 1 << 10); /* (a x b) x c wraps */
    expect_overflow(0, SIZE_MAX / 8, 3, 1);                       /* fits size_t, but not as bytes */
    expect_overflow(SIZE_MAX / 8, SIZE_MAX / 8, 1, 1);            /* each fits, the end does not */
    /* The largest layout that fits, to the float. */
    struct recur_plan p = recur_plan_start(NULL, "test buffer");
    size_t limit = (SIZE_MAX / sizeof(float)) & ~(size_t)15;
    recur_plan_take(&p, "all", limit - 16, 1, 1);
    recur_plan_take(&p, "rest", 16, 1, 1);
    cr_assert_eq(p.st, RECUR_OK);
    cr_assert_eq(p.top, limit);
    cr_assert_eq(recur_plan_take(&p, "empty", 0, 1, 1), limit);
    cr_assert_eq(p.st, RECUR_OK);
    recur_plan_take(&p, "one more", 1, 1, 1);
    cr_assert_eq(p.st, RECUR_ERR_ARG);
}

Test(arena, grows_only_and_zeroes_new_buffers) {
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    struct recur_arena a = {{0}, 0};
    cr_assert_eq(recur_arena_grow(ctx, &a, 0, 1), RECUR_OK);
    cr_assert_null(a.mem.buf);
    cr_assert_eq(recur_arena_grow(ctx, &a, 100, 1), RECUR_OK);
    cr_assert_eq(a.floats, 100);
    float v[100];
    cr_assert_eq(recur_be_read(&ctx->be, v, a.mem, sizeof v), RECUR_OK);
    for (int i = 0; i < 100; i++) cr_assert_eq(v[i], 0.0f);
    void *buf = a.mem.buf;
    cr_assert_eq(recur_arena_grow(ctx, &a, 50, 1), RECUR_OK);
    cr_assert_eq(a.mem.buf, buf, "a smaller need must keep the buffer");
    cr_assert_eq(a.floats, 100);
    cr_assert_eq(recur_arena_grow(ctx, &a, 300, 0), RECUR_OK);
    cr_assert_eq(a.floats, 300);
    recur_arena_free(ctx, &a);
    cr_assert_null(a.mem.buf);
    cr_assert_eq(a.floats, 0);
    recur_ctx_free(ctx);
}

/* On the CPU the arrays are used in place and the arena stays empty. */
Test(arena, hostio_in_place_on_host_memory) {
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    cr_assert(ctx->be.iface->host_memory);
    float in[6] = {1, 2, 3, 4, 5, 6}, out[4] = {0};
    struct recur_mem din = {(void *)1, 8}, dout, dnone = {(void *)1, 8};
    struct recur_arena a = {{0}, 0};
    const struct recur_hostio h[] = {{"in", in, NULL, 6, &din}, {"out", NULL, out, 4, &dout}, {"none", NULL, NULL, 9, &dnone}};
    cr_assert_eq(recur_hostio_in(ctx, &a, h, 3), RECUR_OK);
    cr_assert_eq(din.buf, (void *)in);
    cr_assert_eq(din.off, 0);
    cr_assert_eq(dout.buf, (void *)out);
    cr_assert_null(dnone.buf);
    cr_assert_eq(a.floats, 0);
    cr_assert_eq(recur_hostio_out(ctx, h, 3), RECUR_OK);
    recur_ctx_free(ctx);
}

/* On a device of its own memory (OpenCL; skipped without one) the inputs go
 * through the arena and the outputs come back from it. */
Test(arena, hostio_through_the_arena) {
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, "opencl") != RECUR_OK) cr_skip_test("no OpenCL device: %s", recur_last_error());
    cr_assert(!ctx->be.iface->host_memory);
    float in[6] = {1, 2, 3, 4, 5, 6}, out[6] = {0};
    struct recur_mem din, dout, dnone;
    struct recur_arena a = {{0}, 0};
    const struct recur_hostio h[] = {{"in", in, NULL, 6, &din}, {"none", NULL, NULL, 9, &dnone}, {"out", NULL, out, 6, &dout}};
    cr_assert_eq(recur_hostio_in(ctx, &a, h, 3), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(a.floats, 32, "two aligned regions, the absent one takes none");
    cr_assert_eq(din.buf, a.mem.buf);
    cr_assert_eq(dout.buf, a.mem.buf);
    cr_assert_eq(dout.off, 16 * sizeof(float));
    cr_assert_null(dnone.buf);
    cr_assert_eq(recur_be_copy(&ctx->be, dout, din, sizeof in), RECUR_OK);
    cr_assert_eq(recur_hostio_out(ctx, h, 3), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_arr_eq(out, in, sizeof in);
    recur_arena_free(ctx, &a);
    recur_ctx_free(ctx);
}
