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

/* bfloat16's bits back to the float they stand for, exactly: files' BF16
 * tensors (core/safetensors.c), bf16 values on the CPU (backends/cpu). */
static inline float recur_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float to the nearest IEEE binary16 value (ties to even), kept as a float:
 * what an f16 product's operand becomes (RECUR_DTYPE_F16). Values from
 * 65520 up round to Inf (65504 is the largest finite), those below 2^-14
 * to a multiple of 2^-24 (f16's subnormals), below 2^-25 to a signed zero;
 * a NaN stays a quiet NaN. On the bits and branch-free, as
 * recur_f32_to_bf16, so loops over it vectorize and a device that flushes
 * subnormal floats computes it the same (kernels/shared.cl: recur_round). */
static inline float recur_round_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
    /* normal f16 range: 23 fraction bits to 10 */
    uint32_t normal = (a + 0xfffu + ((a >> 13) & 1u)) & 0xffffe000u;
    /* below 2^-14: the significand (implicit bit set) to a multiple of
     * 2^-24, a shift of 126 - exponent (>= 14 there; at most 31, which
     * leaves 0 for everything below 2^-25). It is computed for every value
     * (no branch) and used only there, so it is kept in 1..31 for the
     * others (an exponent from 127 up wraps to a huge shift): a shift by 32
     * or more, or by 0 - 1, is undefined in C. */
    uint32_t shift = 126u - (a >> 23);
    shift = shift < 31u ? shift : 31u;
    shift = shift > 1u ? shift : 1u;
    uint32_t sig = (a & 0x7fffffu) | 0x800000u;
    uint32_t m = (sig + (1u << (shift - 1u)) - 1u + ((sig >> shift) & 1u)) >> shift; /* 0..1024 */
    float sub = (float)(int32_t)m * 0x1p-24f;
    uint32_t r;
    memcpy(&r, &sub, sizeof r);
    /* select by masks, not branches, so that the loop vectorizes */
    uint32_t is_normal = 0u - (uint32_t)(a >= 0x38800000u), is_inf = 0u - (uint32_t)(a >= 0x477ff000u),
             is_nan = 0u - (uint32_t)(a > 0x7f800000u);
    r = (r & ~is_normal) | (normal & is_normal);
    r = (r & ~is_inf) | (0x7f800000u & is_inf);                              /* 65520 and up, Inf: Inf */
    r = (r & ~is_nan) | (((a | 0x00400000u) & 0xffffe000u) & is_nan); /* NaN: quiet, f16's payload bits */
    r |= sign;
    memcpy(&f, &r, sizeof f);
    return f;
}

#endif /* RECUR_BACKEND_HOST_H */
