/*
 * arena.h: the device memory of one call (core/arena.c), for the engine,
 * the stack and nets.
 *
 * A call plans its scratch as named regions (struct recur_plan), grows an
 * arena to the plan's total, and addresses each region as
 * recur_mem_at(arena.mem, offset). An arena only grows, and only before a
 * call's time loop; nothing is allocated inside it.
 *
 * Host I/O (struct recur_hostio) takes a call's host arrays to the device
 * and back: in place on a host-memory device, else through an arena, one
 * copy in before the call and one out after it.
 */
#ifndef RECUR_ARENA_H
#define RECUR_ARENA_H

#include "context.h"

/* A device buffer that only grows; `floats` is its capacity (0: none yet). */
struct recur_arena {
    struct recur_mem mem;
    size_t floats;
};

/* Make `a` hold at least `floats` floats. Growing drops the contents; with
 * zero 1 a new buffer starts as zeros. */
recur_status recur_arena_grow(recur_ctx *ctx, struct recur_arena *a, size_t floats, int zero);
void recur_arena_free(recur_ctx *ctx, struct recur_arena *a);

/* Regions laid out one after another, each 64-byte aligned (int32 arrays
 * take one float's room per entry). The arithmetic is checked: the first
 * region that would not fit a size_t of bytes sets st to RECUR_ERR_ARG with
 * a message on ctx naming the buffer, the region and its sizes; later takes
 * do nothing. A plan is a value: copy it to lay out two uses of one prefix. */
struct recur_plan {
    recur_ctx *ctx;
    const char *what; /* the buffer, for messages */
    size_t top;       /* floats laid out so far: the total */
    recur_status st;
};
struct recur_plan recur_plan_start(recur_ctx *ctx, const char *what);
/* Lay out a region of a x b x c floats; its offset in floats. */
size_t recur_plan_take(struct recur_plan *p, const char *name, size_t a, size_t b, size_t c);

/* One host array of a call: `in` to copy to the device before it or `out`
 * to read back after it (at most one; neither: absent). *dev receives where
 * the call finds it (buf NULL when absent). */
struct recur_hostio {
    const char *name; /* for messages */
    const float *in;
    float *out;
    size_t floats;
    struct recur_mem *dev;
};
/* Place n arrays on the device (through `a`, grown to their total, unless
 * device memory is host memory) and copy the inputs there without waiting
 * (recur_be_write_staged). */
recur_status recur_hostio_in(recur_ctx *ctx, struct recur_arena *a, const struct recur_hostio *io, int n);
/* Read the outputs back (the first read waits for the device's queue), or
 * wait for it when there are none. */
recur_status recur_hostio_out(recur_ctx *ctx, const struct recur_hostio *io, int n);
/* The entries of a table of them (any array). */
#define RECUR_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif /* RECUR_ARENA_H */
