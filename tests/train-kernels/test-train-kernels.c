/*
 * test-train-kernels.c: the training slots of backends/backend-impl.h
 * (index_add, xent, mse, sum, sgd, adam) on every backend, each against an
 * independent double-precision reference written here.
 *
 * Every check runs on the CPU backend and on the first OpenCL device (PoCL
 * in CI; skipped with cr_skip_test, never passed, when there is none). On
 * OpenCL every row kernel runs a second time with launches split every two
 * work-groups (recur_cl_debug_max_groups), which moves the row offsets.
 *
 * Tolerances (|got - ref| <= tol):
 *   elementwise (sgd, adam, mse's dp, index_add):  1e-6 relative to the
 *     magnitude of the terms involved (plus the update's size for sgd/adam);
 *   xent (loss and dz): 1e-5 relative, dz also 1e-6 * |scale| absolute
 *     (softmax values below float's range round to 0);
 *   reductions (mse's loss, sum): 1e-5 relative to the sum of |terms|
 *     (2e-6 for sum, whose inputs are all positive in one case so that a
 *     dropped element, >= 0.5, is 25x the tolerance).
 * index_add must also equal, bit for bit, a float loop adding the rows in
 * increasing r (the contract's order); sum must give the same bits twice.
 * Padding columns (ld > width) must come back untouched.
 *
 * The test links the library's objects, to reach recur_be_* directly.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "context.h"
#include "recur/recur.h"
#ifdef RECUR_HAVE_OPENCL
#include "opencl-impl.h"
#endif

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static double urand(void) { /* [0, 1) */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}
static float frand(void) { return (float)(urand() * 2.0 - 1.0); } /* [-1, 1) */
static int irand(int lo, int hi) { return lo + (int)(urand() * (double)(hi - lo + 1)); } /* [lo, hi] */

static void *zalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    cr_assert_not_null(p);
    return p;
}
#define FLOATS(n) ((float *)zalloc((size_t)(n) * sizeof(float)))
#define DOUBLES(n) ((double *)zalloc((size_t)(n) * sizeof(double)))
#define INTS(n) ((int32_t *)zalloc((size_t)(n) * sizeof(int32_t)))

#define BE(ctx) (&(ctx)->be)
#define OK TEST_OK

/* Device buffers, each a (buffer, offset) with `pad` floats before the data
 * so that a kernel that ignores offsets reads the wrong floats. */
enum { PAD = 3 };

struct dbuf {
    struct recur_mem base, m;
};

static struct dbuf dev_alloc(recur_ctx *ctx, size_t n) {
    struct dbuf b;
    OK(ctx, recur_be_alloc(BE(ctx), (n + PAD) * sizeof(float), &b.base));
    OK(ctx, recur_be_fill(BE(ctx), b.base, -777.0f, n + PAD));
    b.m = recur_mem_at(b.base, PAD);
    return b;
}
static void dev_free(recur_ctx *ctx, struct dbuf *b) { recur_be_free(BE(ctx), &b->base); }
static void put(recur_ctx *ctx, struct dbuf b, const void *src, size_t n) {
    OK(ctx, recur_be_write(BE(ctx), b.m, src, n * 4));
}
static void get(recur_ctx *ctx, void *dst, struct dbuf b, size_t n) {
    OK(ctx, recur_be_sync(BE(ctx)));
    OK(ctx, recur_be_read(BE(ctx), dst, b.m, n * 4));
}
static struct dbuf dev_put(recur_ctx *ctx, const void *src, size_t n) {
    struct dbuf b = dev_alloc(ctx, n);
    put(ctx, b, src, n);
    return b;
}

static size_t opencl_devices(void) {
    size_t n = 0;
    cr_assert_eq(recur_devices(NULL, 0, &n), RECUR_OK);
    recur_device_info *all = zalloc((n ? n : 1) * sizeof *all);
    cr_assert_eq(recur_devices(all, n, &n), RECUR_OK);
    size_t cl = 0;
    for (size_t i = 0; i < n; i++) cl += strcmp(all[i].backend, "opencl") == 0;
    free(all);
    return cl;
}

static recur_ctx *open_ctx(const char *device) {
    if (strcmp(device, "opencl") == 0 && opencl_devices() == 0) {
        const char *v = getenv("OCL_ICD_VENDORS");
        cr_skip_test("no OpenCL device (OCL_ICD_VENDORS=%s): the OpenCL half is skipped, not passed", v ? v : "unset");
    }
    recur_ctx *ctx = NULL;
    recur_status st = recur_ctx_create(&ctx, device);
    cr_assert_eq(st, RECUR_OK, "recur_ctx_create('%s'): %s: %s", device, recur_status_str(st), recur_last_error());
    cr_assert_str_eq(ctx->be.iface->name, device);
    cr_log_info("%s: %s", ctx->be.info.selector, ctx->be.info.name);
    return ctx;
}

/* Launches split every `groups` work-groups on OpenCL (0: the default). */
static void split_launches(recur_ctx *ctx, size_t groups) {
#ifdef RECUR_HAVE_OPENCL
    if (strcmp(ctx->be.iface->name, "opencl") == 0) recur_cl_debug_max_groups(groups);
#else
    (void)ctx;
    (void)groups;
#endif
}
static int is_opencl(recur_ctx *ctx) { return strcmp(ctx->be.iface->name, "opencl") == 0; }

static void near(double got, double ref, double tol, const char *what, int i, int j) {
    cr_assert(fabs(got - ref) <= tol && got == got, "%s [%d, %d]: got %.9g, expected %.9g (|diff| %.3g > tol %.3g)",
              what, i, j, got, ref, fabs(got - ref), tol);
}

/* ------------------------------------------------------------------------ */
/* index_add                                                                */

static void index_add_case(recur_ctx *ctx, int V, int rows, int width, int ld_dst, int ld_src) {
    size_t nd = (size_t)V * ld_dst, ns = (size_t)rows * ld_src;
    float *dst0 = FLOATS(nd), *src = FLOATS(ns), *got = FLOATS(nd), *exact = FLOATS(nd);
    double *ref = DOUBLES(nd), *mag = DOUBLES(nd);
    int32_t *idx = INTS(rows);
    for (size_t i = 0; i < nd; i++) dst0[i] = frand();
    for (size_t i = 0; i < ns; i++) src[i] = frand();
    /* repeats (V much smaller than rows), and -1, -2 skipped */
    for (int r = 0; r < rows; r++) idx[r] = irand(-2, V - 1);
    idx[0] = V - 1; /* the last row, and a repeat at once */
    if (rows > 1) idx[rows - 1] = V - 1;
    memcpy(exact, dst0, nd * sizeof(float));
    for (size_t i = 0; i < nd; i++) ref[i] = dst0[i], mag[i] = fabs(dst0[i]);
    for (int r = 0; r < rows; r++) {
        if (idx[r] < 0) continue;
        for (int j = 0; j < width; j++) {
            size_t o = (size_t)idx[r] * ld_dst + j;
            const float s = src[(size_t)r * ld_src + j];
            exact[o] += s;
            ref[o] += s;
            mag[o] += fabs(s);
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        struct dbuf d = dev_put(ctx, dst0, nd), s = dev_put(ctx, src, ns), ix = dev_put(ctx, idx, rows);
        OK(ctx, recur_be_index_add(BE(ctx), d.m, ld_dst, s.m, ld_src, ix.m, rows, width));
        get(ctx, got, d, nd);
        for (int v = 0; v < V; v++)
            for (int j = 0; j < ld_dst; j++) {
                size_t o = (size_t)v * ld_dst + j;
                if (j >= width) {
                    cr_assert(got[o] == dst0[o], "index_add: padding [%d, %d] changed: %g, was %g", v, j, got[o],
                              dst0[o]);
                    continue;
                }
                near(got[o], ref[o], 1e-6 * mag[o], "index_add vs double", v, j);
                cr_assert(memcmp(&got[o], &exact[o], 4) == 0,
                          "index_add [%d, %d]: %.9g is not %.9g, the float sum in increasing r", v, j, got[o],
                          exact[o]);
            }
        dev_free(ctx, &d);
        dev_free(ctx, &s);
        dev_free(ctx, &ix);
    }
    free(dst0), free(src), free(got), free(exact), free(ref), free(mag), free(idx);
}

static void check_index_add(recur_ctx *ctx) {
    index_add_case(ctx, 6, 40, 7, 9, 8);       /* ld > width both sides */
    index_add_case(ctx, 1, 1, 1, 1, 1);        /* one row */
    index_add_case(ctx, 50, 3000, 64, 64, 70); /* the parallel paths, many repeats */
    index_add_case(ctx, 3, 257, 300, 301, 300); /* wide rows */
}

/* ------------------------------------------------------------------------ */
/* xent                                                                     */

enum { XENT_PLAIN, XENT_HUGE, XENT_NEAR_HUGE };

static void xent_case(recur_ctx *ctx, int rows, int K, int ld, int kind, float scale) {
    size_t n = (size_t)rows * ld;
    float *z = FLOATS(n), *dz0 = FLOATS(n), *dz = FLOATS(n), *loss = FLOATS(rows);
    int32_t *t = INTS(rows);
    for (size_t i = 0; i < n; i++) {
        const float u = frand();
        z[i] = kind == XENT_PLAIN ? 3.0f * u : kind == XENT_HUGE ? 1e4f * u : (u < 0 ? -1e4f : 1e4f) + u;
        dz0[i] = 555.0f; /* padding sentinel, and what ignored rows must overwrite */
    }
    for (int r = 0; r < rows; r++) t[r] = irand(0, K - 1);
    t[rows / 2] = -1; /* ignored rows */
    if (rows > 3) t[rows - 1] = -1;
    struct dbuf dz_d = dev_alloc(ctx, n), loss_d = dev_alloc(ctx, rows);
    struct dbuf z_d = dev_put(ctx, z, n), t_d = dev_put(ctx, t, rows);
    for (int split = 0; split < 1 + is_opencl(ctx); split++) {
        put(ctx, dz_d, dz0, n);
        split_launches(ctx, split ? 2 : 0);
        OK(ctx, recur_be_xent(BE(ctx), z_d.m, ld, t_d.m, rows, K, scale, dz_d.m, loss_d.m));
        split_launches(ctx, 0);
        get(ctx, dz, dz_d, n);
        get(ctx, loss, loss_d, rows);
        for (int r = 0; r < rows; r++) {
            const float *zr = z + (size_t)r * ld;
            const float *g = dz + (size_t)r * ld;
            for (int j = K; j < ld; j++)
                cr_assert(g[j] == 555.0f, "xent: padding [%d, %d] changed to %g", r, j, g[j]);
            if (t[r] < 0) {
                cr_assert(loss[r] == 0.0f, "xent: ignored row %d: loss %g", r, loss[r]);
                for (int j = 0; j < K; j++) cr_assert(g[j] == 0.0f, "xent: ignored row %d: dz[%d] = %g", r, j, g[j]);
                continue;
            }
            double mx = zr[0], sum = 0.0;
            for (int j = 1; j < K; j++) mx = fmax(mx, zr[j]);
            for (int j = 0; j < K; j++) sum += exp((double)zr[j] - mx);
            const double ref_loss = log(sum) + mx - (double)zr[t[r]];
            near(loss[r], ref_loss, 1e-5 * fmax(1.0, fabs(ref_loss)), "xent loss", r, t[r]);
            for (int j = 0; j < K; j++) {
                const double ref = scale * (exp((double)zr[j] - mx) / sum - (j == t[r] ? 1.0 : 0.0));
                near(g[j], ref, 1e-5 * fabs(ref) + 1e-6 * fabs(scale), "xent dz", r, j);
            }
        }
    }
    dev_free(ctx, &dz_d), dev_free(ctx, &loss_d), dev_free(ctx, &z_d), dev_free(ctx, &t_d);
    free(z), free(dz0), free(dz), free(loss), free(t);
}

static void check_xent(recur_ctx *ctx) {
    xent_case(ctx, 7, 10, 13, XENT_PLAIN, 0.37f);     /* ld > K */
    xent_case(ctx, 9, 1, 1, XENT_PLAIN, 1.0f);        /* K = 1: loss 0, dz 0 */
    xent_case(ctx, 5, 1, 4, XENT_PLAIN, 0.5f);        /* K = 1 with ld > K */
    xent_case(ctx, 6, 50, 50, XENT_HUGE, -0.25f);     /* logits of magnitude 1e4 */
    xent_case(ctx, 6, 40, 41, XENT_NEAR_HUGE, 0.125f); /* 1e4 + small: a real softmax that exp(z) overflows */
    xent_case(ctx, 3, 3001, 3001, XENT_PLAIN, 1.0f);  /* more logits than lanes */
    xent_case(ctx, 300, 37, 37, XENT_PLAIN, 0.01f);   /* many rows per work-group */
}

/* ------------------------------------------------------------------------ */
/* mse                                                                      */

static void mse_case(recur_ctx *ctx, int rows, int K, int ld_p, int ld_v, float scale) {
    size_t np = (size_t)rows * ld_p, nv = (size_t)rows * ld_v;
    float *p = FLOATS(np), *v = FLOATS(nv), *dp0 = FLOATS(np), *dp = FLOATS(np), *loss = FLOATS(rows);
    int32_t *sel = INTS(rows);
    for (size_t i = 0; i < np; i++) p[i] = frand() * 2.0f, dp0[i] = 444.0f;
    for (size_t i = 0; i < nv; i++) v[i] = frand();
    for (int r = 0; r < rows; r++) sel[r] = r % 3 == 1 ? -1 : r; /* skipped rows */
    struct dbuf p_d = dev_put(ctx, p, np), v_d = dev_put(ctx, v, nv), s_d = dev_put(ctx, sel, rows);
    struct dbuf dp_d = dev_alloc(ctx, np), l_d = dev_alloc(ctx, rows);
    for (int split = 0; split < 1 + is_opencl(ctx); split++) {
        put(ctx, dp_d, dp0, np);
        split_launches(ctx, split ? 2 : 0);
        OK(ctx, recur_be_mse(BE(ctx), p_d.m, ld_p, v_d.m, ld_v, s_d.m, rows, K, scale, dp_d.m, l_d.m));
        split_launches(ctx, 0);
        get(ctx, dp, dp_d, np);
        get(ctx, loss, l_d, rows);
        for (int r = 0; r < rows; r++) {
            const float *pr = p + (size_t)r * ld_p, *vr = v + (size_t)r * ld_v, *g = dp + (size_t)r * ld_p;
            for (int j = K; j < ld_p; j++) cr_assert(g[j] == 444.0f, "mse: padding [%d, %d] changed to %g", r, j, g[j]);
            if (sel[r] < 0) {
                cr_assert(loss[r] == 0.0f, "mse: skipped row %d: loss %g", r, loss[r]);
                for (int j = 0; j < K; j++) cr_assert(g[j] == 0.0f, "mse: skipped row %d: dp[%d] = %g", r, j, g[j]);
                continue;
            }
            double l = 0.0;
            for (int j = 0; j < K; j++) {
                const double e = (double)pr[j] - (double)vr[j];
                l += e * e;
                near(g[j], 2.0 * scale * e, 1e-6 * fabs(2.0 * scale * e) + 1e-12, "mse dp", r, j);
            }
            near(loss[r], l, 1e-5 * l + 1e-12, "mse loss", r, -1);
        }
    }
    dev_free(ctx, &p_d), dev_free(ctx, &v_d), dev_free(ctx, &s_d), dev_free(ctx, &dp_d), dev_free(ctx, &l_d);
    free(p), free(v), free(dp0), free(dp), free(loss), free(sel);
}

static void check_mse(recur_ctx *ctx) {
    mse_case(ctx, 9, 5, 7, 6, 0.3f);      /* both strides > K */
    mse_case(ctx, 4, 1, 1, 2, 1.0f);      /* K = 1 */
    mse_case(ctx, 5, 700, 700, 701, -2.0f); /* more values than lanes */
    mse_case(ctx, 400, 3, 3, 3, 0.01f);   /* many rows per work-group */
}

/* ------------------------------------------------------------------------ */
/* sum                                                                      */

static void sum_case(recur_ctx *ctx, size_t count, int positive) {
    float *x = FLOATS(count);
    for (size_t i = 0; i < count; i++) x[i] = positive ? (float)(1.0 + 0.5 * (double)frand()) : frand();
    double ref[2] = {0, 0}, mag[2] = {0, 0};
    for (size_t i = 0; i < count; i++) {
        ref[0] += x[i], mag[0] += fabs(x[i]);
        ref[1] += (double)x[i] * x[i], mag[1] += (double)x[i] * x[i];
    }
    struct dbuf x_d = dev_put(ctx, x, count), p_d = dev_alloc(ctx, RECUR_SUM_PARTS);
    float parts[2][RECUR_SUM_PARTS];
    for (int square = 0; square < 2; square++) {
        for (int run = 0; run < 2; run++) {
            OK(ctx, recur_be_fill(BE(ctx), p_d.m, 123.0f, RECUR_SUM_PARTS)); /* every part must be written */
            OK(ctx, recur_be_sum(BE(ctx), x_d.m, count, square, p_d.m));
            get(ctx, parts[run], p_d, RECUR_SUM_PARTS);
        }
        cr_assert(memcmp(parts[0], parts[1], sizeof parts[0]) == 0, "sum(count %zu, square %d): other bits the second time",
                  count, square);
        double total = 0.0;
        for (int q = 0; q < RECUR_SUM_PARTS; q++) total += parts[0][q];
        near(total, ref[square], 2e-6 * mag[square], square ? "sum of squares" : "sum", (int)count, positive);
    }
    dev_free(ctx, &x_d), dev_free(ctx, &p_d);
    free(x);
}

static void check_sum(recur_ctx *ctx) {
    static const size_t counts[] = {1, 255, 256, 257, 100003};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        sum_case(ctx, counts[i], 1);
        sum_case(ctx, counts[i], 0);
    }
}

/* ------------------------------------------------------------------------ */
/* sgd, adam                                                                */

static void sgd_case(recur_ctx *ctx, size_t n, float lr, float momentum, float wd, float gscale) {
    float *w = FLOATS(n), *v = FLOATS(n), *g = FLOATS(n), *got_w = FLOATS(n), *got_v = FLOATS(n);
    double *rw = DOUBLES(n), *rv = DOUBLES(n);
    for (size_t i = 0; i < n; i++) w[i] = frand(), rw[i] = w[i], v[i] = momentum != 0.0f ? 0.0f : 7.0f;
    struct dbuf w_d = dev_put(ctx, w, n), v_d = dev_put(ctx, v, n), g_d = dev_alloc(ctx, n);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = frand();
        put(ctx, g_d, g, n);
        OK(ctx, recur_be_sgd(BE(ctx), w_d.m, g_d.m, v_d.m, n, lr, momentum, wd, gscale));
        get(ctx, got_w, w_d, n);
        get(ctx, got_v, v_d, n);
        for (size_t i = 0; i < n; i++) {
            /* the reference from the device's own w, v of the step before, so errors do not compound */
            const double w0 = step ? (double)w[i] : rw[i], v0 = v[i];
            const double d = (double)gscale * g[i] + (double)wd * w0;
            /* the size of the terms: d may cancel, its float rounding may not */
            const double dmag = fabs((double)gscale * g[i]) + fabs((double)wd * w0);
            double upd = d, umag = dmag;
            if (momentum != 0.0f) {
                rv[i] = (double)momentum * v0 + d;
                upd = rv[i];
                umag = fabs((double)momentum * v0) + dmag;
                near(got_v[i], rv[i], 1e-6 * umag + 1e-30, "sgd v", step, (int)i);
            } else {
                cr_assert(got_v[i] == 7.0f, "sgd without momentum touched v[%zu]: %g", i, got_v[i]);
            }
            rw[i] = w0 - (double)lr * upd;
            near(got_w[i], rw[i], 1e-6 * (fabs(w0) + (double)lr * umag) + 1e-30, "sgd w", step, (int)i);
        }
        memcpy(w, got_w, n * sizeof(float));
        memcpy(v, got_v, n * sizeof(float));
    }
    dev_free(ctx, &w_d), dev_free(ctx, &v_d), dev_free(ctx, &g_d);
    free(w), free(v), free(g), free(got_w), free(got_v), free(rw), free(rv);
}

static void check_sgd(recur_ctx *ctx) {
    sgd_case(ctx, 1001, 0.1f, 0.0f, 0.0f, 1.0f);    /* plain */
    sgd_case(ctx, 1001, 0.05f, 0.0f, 0.01f, 0.5f);  /* weight decay, gradient scale */
    sgd_case(ctx, 70001, 0.1f, 0.9f, 0.0f, 1.0f);   /* momentum (the parallel path) */
    sgd_case(ctx, 1001, 0.02f, 0.9f, 0.1f, 0.25f);  /* momentum and weight decay */
}

static void adam_case(recur_ctx *ctx, size_t n, float lr, float b1, float b2, float eps, float wd, float gscale) {
    float *w = FLOATS(n), *g = FLOATS(n), *gw = FLOATS(n), *gm = FLOATS(n), *gv = FLOATS(n);
    double *rw = DOUBLES(n), *rm = DOUBLES(n), *rv = DOUBLES(n);
    for (size_t i = 0; i < n; i++) w[i] = frand(), rw[i] = w[i];
    struct dbuf w_d = dev_put(ctx, w, n), m_d = dev_alloc(ctx, n), v_d = dev_alloc(ctx, n), g_d = dev_alloc(ctx, n);
    OK(ctx, recur_be_fill(BE(ctx), m_d.m, 0.0f, n));
    OK(ctx, recur_be_fill(BE(ctx), v_d.m, 0.0f, n));
    for (int t = 1; t <= 3; t++) {
        for (size_t i = 0; i < n; i++) g[i] = frand() * (i % 7 == 0 ? 1e-3f : 1.0f);
        put(ctx, g_d, g, n);
        /* what core/optim.c passes: torch's bias corrections */
        const double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
        const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
        OK(ctx, recur_be_adam(BE(ctx), w_d.m, g_d.m, m_d.m, v_d.m, n, step_size, b1, b2, eps, bc2_sqrt, wd, gscale));
        get(ctx, gw, w_d, n);
        get(ctx, gm, m_d, n);
        get(ctx, gv, v_d, n);
        for (size_t i = 0; i < n; i++) {
            /* torch.optim.Adam in double, from this device's previous w, m, v */
            const double w0 = t > 1 ? (double)w[i] : rw[i], m0 = t > 1 ? rm[i] : 0.0, v0 = t > 1 ? rv[i] : 0.0;
            const double d = (double)gscale * g[i] + (double)wd * w0;
            const double dmag = fabs((double)gscale * g[i]) + fabs((double)wd * w0); /* d may cancel */
            const double m = b1 * m0 + (1.0 - b1) * d, v = b2 * v0 + (1.0 - b2) * d * d;
            near(gm[i], m, 1e-6 * (fabs(m0) + dmag) + 1e-30, "adam m", t, (int)i);
            near(gv[i], v, 1e-6 * (v0 + dmag * dmag) + 1e-30, "adam v", t, (int)i);
            /* the step from the device's own m and v, whose errors were checked above */
            const double upd = (lr / bc1) * gm[i] / (sqrt((double)gv[i]) / sqrt(bc2) + eps);
            near(gw[i], w0 - upd, 1e-6 * (fabs(w0) + fabs(upd)), "adam w", t, (int)i);
            rm[i] = gm[i], rv[i] = gv[i];
        }
        memcpy(w, gw, n * sizeof(float));
    }
    dev_free(ctx, &w_d), dev_free(ctx, &m_d), dev_free(ctx, &v_d), dev_free(ctx, &g_d);
    free(w), free(g), free(gw), free(gm), free(gv), free(rw), free(rm), free(rv);
}

static void check_adam(recur_ctx *ctx) {
    adam_case(ctx, 1001, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f);
    adam_case(ctx, 70001, 1e-2f, 0.8f, 0.99f, 1e-6f, 0.01f, 0.7f); /* decay, scale, the parallel path */
}

/* ------------------------------------------------------------------------ */
/* the tests: every slot on every backend                                   */

#define BOTH(slot)                                 \
    Test(cpu, slot) {                              \
        recur_ctx *ctx = open_ctx("cpu");          \
        check_##slot(ctx);                         \
        recur_ctx_free(ctx);                       \
    }                                              \
    Test(opencl, slot) {                           \
        recur_ctx *ctx = open_ctx("opencl");       \
        check_##slot(ctx);                         \
        recur_ctx_free(ctx);                       \
    }

BOTH(index_add)
BOTH(xent)
BOTH(mse)
BOTH(sum)
BOTH(sgd)
BOTH(adam)
