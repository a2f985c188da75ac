/*
 * backend-host.h: what a backend may use of the library around it (not
 * installed). The backends include this, backend-impl.h and api/ only;
 * core/error.c implements it.
 *
 * recur_err() records a detail message on the context (and on the calling
 * thread) and returns the status, so a failing path reads
 *     return recur_err(ctx, RECUR_ERR_ARG, "hidden_size %d: must be at least 1", h);
 * RETURN_IF and GOTO_IF are the two shapes every check takes. A backend
 * passes be->ctx, the context it was opened for (opaque here).
 */
#ifndef RECUR_BACKEND_HOST_H
#define RECUR_BACKEND_HOST_H

#include <stdint.h>
#include <string.h>

#include "recur/recur.h"

#define RECUR_MSG_MAX 1024

#if defined(__GNUC__)
#define RECUR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RECUR_PRINTF(a, b)
#endif

/* Record a message for `status` on ctx (may be NULL) and on this thread. */
recur_status recur_err(recur_ctx *ctx, recur_status status, const char *fmt, ...) RECUR_PRINTF(3, 4);

/* The library's logger: honours recur_log_set() and RECUR_LOG. */
void recur_log(recur_log_level level, const char *fmt, ...) RECUR_PRINTF(2, 3);
/* Whether a message at `level` would go anywhere (to skip building it). */
int recur_log_enabled(recur_log_level level);

#define RETURN_IF(cond, ctx, status, ...)                                                      \
    do {                                                                                       \
        if (cond) return recur_err((ctx), (status), __VA_ARGS__);                              \
    } while (0)

/* Record the message, set `st` and jump to the cleanup label `label`. */
#define GOTO_IF(cond, ctx, st, status, label, ...)                                             \
    do {                                                                                       \
        if (cond) {                                                                            \
            (st) = recur_err((ctx), (status), __VA_ARGS__);                                    \
            goto label;                                                                        \
        }                                                                                      \
    } while (0)

/* Propagate a failed status (the message is already set). */
#define TRY(expr)                                                                              \
    do {                                                                                       \
        recur_status try_st_ = (expr);                                                         \
        if (try_st_ != RECUR_OK) return try_st_;                                               \
    } while (0)

/* float to bfloat16's bits, to nearest even (torch's .bfloat16()): the
 * largest finite values round to Inf; a NaN stays a quiet NaN of the same
 * sign and top payload. Branch-free, so that loops over it vectorize: the
 * one rounding of the files (core/safetensors.c) and of bf16 products on
 * the CPU (backends/cpu/matmul.c). */
static inline uint16_t recur_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

#endif /* RECUR_BACKEND_HOST_H */
