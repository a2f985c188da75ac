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

#endif /* RECUR_BACKEND_HOST_H */
