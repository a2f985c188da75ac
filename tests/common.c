#include "common.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "recur/recur.h"

double test_uniform(test_rng *r, double lo, double hi) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * ((double)(z >> 11) * 0x1.0p-53);
}

void test_fill(test_rng *r, double *d, float *f, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)test_uniform(r, lo, hi);
        d[i] = f[i]; /* the reference sees exactly the float inputs */
    }
}

double test_worst(const float *a, const double *b, size_t n, double rtol, double atol, size_t *at) {
    double worst = 0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (!(e <= worst)) { /* NaN counts as the worst */
            worst = isnan(e) ? INFINITY : e;
            *at = i;
            if (isnan(e)) break;
        }
    }
    return worst;
}

void test_need_device(const char *device) {
    recur_ctx *ctx;
    recur_status st = recur_ctx_create(&ctx, device);
    if (st == RECUR_ERR_UNSUPPORTED || st == RECUR_ERR_DEVICE) cr_skip_test("%s: %s", device, recur_last_error());
    cr_assert_eq(st, RECUR_OK, "%s", recur_last_error());
    recur_ctx_free(ctx);
}

const char *test_device(void) {
    const char *d = getenv("RECUR_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

recur_ctx *test_open_ctx(void) {
    test_need_device(test_device());
    recur_ctx *ctx;
    cr_assert_eq(recur_ctx_create(&ctx, test_device()), RECUR_OK, "%s", recur_last_error());
    return ctx;
}

float *test_floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    cr_assert(p, "out of memory");
    return p;
}

double *test_doubles(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    cr_assert(p, "out of memory");
    return p;
}
