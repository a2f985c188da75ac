/*
 * common.h: what the library's tests share: a seeded generator, float/double
 * comparison with a report of the worst element, and array helpers.
 */
#ifndef RECUR_TEST_COMMON_H
#define RECUR_TEST_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64, so every run draws the same numbers. */
typedef struct test_rng { uint64_t s; } test_rng;
double test_uniform(test_rng *r, double lo, double hi);

/* Fill n doubles with U(lo, hi) and keep a float copy. */
void test_fill(test_rng *r, double *d, float *f, size_t n, double lo, double hi);

/* Worst |a - b| / (atol + rtol |b|) over n elements: <= 1 means within
 * tolerance. *at gets the index of the worst element. */
double test_worst(const float *a, const double *b, size_t n, double rtol, double atol, size_t *at);

/* Assert a float array matches a double reference within tolerance, naming
 * the array, the worst index and both values when it does not. */
#define ASSERT_CLOSE(what, a, b, n, rtol, atol)                                                        \
    do {                                                                                               \
        size_t at_ = 0;                                                                                \
        double w_ = test_worst((a), (b), (n), (rtol), (atol), &at_);                                   \
        cr_assert(w_ <= 1.0, "%s: element %zu is %.9g, reference %.9g (%.2fx the tolerance)", (what), \
                  at_, (double)(a)[at_], (b)[at_], w_);                                                \
    } while (0)

/* Assert that a recur call returned RECUR_OK, naming the line, the call, the
 * status and the message: the context's, or the thread's when ctx is NULL. */
#define TEST_OK(ctx, call)                                                                              \
    do {                                                                                                \
        recur_status st_ = (call);                                                                      \
        const struct recur_ctx *c_ = (ctx);                                                             \
        cr_assert_eq(st_, RECUR_OK, "line %d: %s: %s: %s", __LINE__, #call, recur_status_str(st_),     \
                     c_ ? recur_ctx_error(c_) : recur_last_error());                                    \
    } while (0)

/* Skip (never pass) the calling test when this CPU or build cannot open
 * device (no such ISA, no OpenCL backend or no OpenCL device:
 * RECUR_ERR_UNSUPPORTED, RECUR_ERR_DEVICE); assert on any other error. */
void test_need_device(const char *device);

/* RECUR_TEST_DEVICE, default "cpu"; a context on it (the test skipped when
 * this machine lacks it, as test_need_device). */
const char *test_device(void);
struct recur_ctx;
struct recur_ctx *test_open_ctx(void);

float *test_floats(size_t n);   /* calloc'd, asserts success */
double *test_doubles(size_t n); /* calloc'd, asserts success */

#endif
