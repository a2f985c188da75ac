/*
 * test-precision-opencl.c: bf16 and f16 products on the OpenCL backend,
 * emulated on every device (backends/opencl/opencl.c: cl_gemm and the pack
 * slots round op(A) and op(B) into scratch copies with kernels/shared.cl's
 * recur_round, then CLBlastSgemm).
 *
 *   - recur_ctx_precisions lists f32, bf16 and f16, only f32 as native;
 *   - the rounding kernel bit for bit, read from the backend's scratch
 *     buffer, against the test's own rounding (never the library's):
 *     bf16, a table (ties to even, Inf, NaN, overflow to Inf,
 *     subnormals); f16, a table (65504, 65519.99, 65520 to Inf, Inf, NaN,
 *     2^-24, 2^-25 to 0, 3*2^-26 to 2^-24, float subnormals to 0, -0,
 *     negative values) and then every f16 value, the midpoint above it
 *     (ties to even) and the floats either side of that midpoint, both
 *     signs, from 0 to 65504 and its midpoint with 65536 (under
 *     RECUR_TEST_TINY, 10 values of each binade);
 *   - recur_be_gemm_prec(BF16) and (F16) in all four transpositions, odd
 *     sizes, leading dimensions past the columns and offsets, against a
 *     double loop over the rounded operands (truncation or no rounding is
 *     2^-9 (bf16) or 2^-12 (f16) off, far past the 1e-5 tolerance); the
 *     operands unchanged, C's padding untouched; operands that the type
 *     holds exactly: the F32 result bit for bit;
 *   - f16 past its range, the same four transpositions: operands that
 *     overflow to Inf among others (C Inf or NaN exactly where the double
 *     loop has it, 65519.99 counted as 65504) and operands of f16's
 *     subnormal range and below (rounded to multiples of 2^-24 or to 0);
 *   - the packs (op(B) rounded once): the unpacked GEMM's bits, f32, bf16
 *     and f16, and the rounded copies do not read B again;
 *   - a 2-layer bidirectional LSTM over unsorted lengths, forward and
 *     backward, in bf16 and in f16 against the same model in f32: within
 *     the type's rounding bound, not equal to f32 (the rounding happened),
 *     f16 nearer f32 than bf16; f32 again afterwards, bit for bit;
 *   - a recur_dtype out of range: RECUR_ERR_ARG from
 *     recur_model_set_precision (every layer keeps its precision),
 *     RECUR_ERR_UNSUPPORTED from the dispatch wrappers and the slots (gemm
 *     and pack), the type's number in the message, C unwritten.
 * Skipped, never passed, without an OpenCL device. Links a private copy of
 * the library's objects to reach the backend (backend-impl.h, cl-dev.h).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl-dev.h"
#include "common.h"
#include "context.h"
#include "opencl-impl.h"
#include "recur/recur.h"

#define OK TEST_OK

static recur_ctx *open_cl(void) {
    test_need_device("opencl");
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "opencl"), RECUR_OK, "%s", recur_last_error());
    cr_assert_str_eq(ctx->be.iface->name, "opencl");
    cr_log_info("on %s (%s)", ctx->be.info.selector, ctx->be.info.name);
    return ctx;
}

/* RECUR_TEST_TINY (Oclgrind, which checks every access and is slow): smaller cases. */
static int tiny(void) { return getenv("RECUR_TEST_TINY") != NULL; }

/* A float's bits and back (type punning through a union is C11). */
union word {
    float f;
    uint32_t u;
};
static uint32_t bits(float f) { return (union word){.f = f}.u; }
static float from_bits(uint32_t u) { return (union word){.u = u}.f; }

/* The host's bf16 rounding: to nearest, ties to even; NaN quiet. */
static float bf16(float f) {
    uint32_t u = bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return from_bits((u & 0xffff0000u) | 0x00400000u);
    return from_bits((u + 0x7fffu + (u >> 16 & 1u)) & 0xffff0000u);
}

/*
 * The test's own f16 rounding, in double arithmetic rather than on the bits
 * as the library's: |x| in [2^(e-1), 2^e) to the nearest multiple of
 * 2^(e-11) (11 significant bits), never of less than 2^-24 (the spacing of
 * f16's subnormals), ties to even (nearbyint in the default rounding mode);
 * a result past 65504, f16's largest, is Inf (so 65520, the tie between
 * 65504 and 65536, goes to the even 65536: Inf). Signed zeros and Inf stay.
 * A NaN: quiet, its sign and the top 10 bits of its payload (those f16
 * holds) kept.
 */
static float f16(float f) {
    if (isnan(f)) return from_bits((bits(f) | 0x00400000u) & 0xffffe000u);
    double a = fabs((double)f);
    if (a == 0 || isinf(a)) return f;
    int e;
    (void)frexp(a, &e);
    int q = e - 11 < -24 ? -24 : e - 11;
    double r = ldexp(nearbyint(ldexp(a, -q)), q);
    return (float)copysign(r > 65504 ? INFINITY : r, (double)f);
}

/* The value of the positive f16 with bits h, decoded by hand; h = 0x7c00
 * (Inf) decodes as 65536, the next step of the grid past 65504. */
static double f16_value(unsigned h) {
    unsigned e = h >> 10 & 31u, m = h & 1023u;
    return e ? ldexp(1024.0 + m, (int)e - 25) : ldexp(m, -24);
}

static float (*rounding(recur_dtype p))(float) { return p == RECUR_DTYPE_F16 ? f16 : bf16; }

static struct recur_mem put(recur_ctx *ctx, const float *src, size_t n) {
    struct recur_mem m;
    OK(ctx, recur_be_alloc(&ctx->be, n * sizeof(float), &m));
    OK(ctx, recur_be_write(&ctx->be, m, src, n * sizeof(float)));
    return m;
}

static void get(recur_ctx *ctx, float *dst, struct recur_mem m, size_t n) {
    OK(ctx, recur_be_sync(&ctx->be));
    OK(ctx, recur_be_read(&ctx->be, dst, m, n * sizeof(float)));
}

Test(precision, listed_as_emulated) {
    recur_ctx *ctx = open_cl();
    unsigned native = 0xffu, all = recur_ctx_precisions(ctx, &native);
    cr_assert_eq(all, 1u << RECUR_DTYPE_F32 | 1u << RECUR_DTYPE_BF16 | 1u << RECUR_DTYPE_F16, "precisions 0x%x", all);
    cr_assert_eq(native, 1u << RECUR_DTYPE_F32, "native 0x%x: bf16 and f16 are emulated on OpenCL", native);
    cr_assert_eq(recur_ctx_precisions(ctx, NULL), all);
    recur_ctx_free(ctx);
}

/*
 * The rounding kernel on n values: an M x K A (M = n / K rounded up, the
 * last row padded with 1; lda K + 3, at an offset of 2, the floats around
 * the matrix 1000 + i) times B = K ones. out: the backend's scratch copy of
 * A (dense, M x K), the kernel's output itself. c (K = 1 only): C, which is
 * the rounded value bit for bit where that is a nonzero number or Inf
 * (1 * x is exact; a device may flush subnormal products, make NaN
 * payloads its own, and beta 0 may turn -0 into +0).
 */
static void round_on_device(recur_ctx *ctx, recur_dtype prec, const float *vals, size_t n, int K, float *out,
                            float *c) {
    const size_t M = (n + (size_t)K - 1) / (size_t)K, lda = (size_t)K + 3, off = 2, na = off + M * lda;
    float *a = test_floats(na), *ones = test_floats((size_t)K), *c0 = test_floats(M);
    for (size_t i = 0; i < na; i++) a[i] = 1000.0f + (float)i;
    for (size_t i = 0; i < M * (size_t)K; i++) a[off + i / (size_t)K * lda + i % (size_t)K] = i < n ? vals[i] : 1.0f;
    for (int k = 0; k < K; k++) ones[k] = 1.0f;
    struct recur_mem dA = put(ctx, a, na), dB = put(ctx, ones, (size_t)K), dC = put(ctx, c0, M);
    OK(ctx, recur_be_gemm_prec(&ctx->be, prec, 0, 0, (int)M, 1, K, 1.0f, recur_mem_at(dA, off), (int)lda, dB, 1, 0.0f,
                               dC, 1));
    if (c) get(ctx, c, dC, M);
    struct cl_dev *d = ctx->be.context;
    cr_assert_not_null(d->scratch[0], "no scratch copy of A");
    cr_assert_geq(d->scratch_bytes[0], M * (size_t)K * sizeof(float));
    get(ctx, out, (struct recur_mem){d->scratch[0], 0}, n);
    /* A itself is not rounded */
    float *back = test_floats(na);
    get(ctx, back, dA, na);
    cr_assert(memcmp(back, a, na * sizeof(float)) == 0, "%s rounding: A changed", recur_dtype_name(prec));
    recur_be_free(&ctx->be, &dA);
    recur_be_free(&ctx->be, &dB);
    recur_be_free(&ctx->be, &dC);
    free(a), free(ones), free(c0), free(back);
}

/* Rounding cases: {type, input bits, expected bits}. */
static const struct round_case {
    const char *type;
    uint32_t in, want;
} round_cases[] = {
    {"bf16", 0x3f800000u, 0x3f800000u}, /* 1 */
    {"bf16", 0x3f808000u, 0x3f800000u}, /* 1 + 2^-8, the tie between 1 and 1 + 2^-7: even 1 */
    {"bf16", 0x3f818000u, 0x3f820000u}, /* 1 + 3*2^-8, the tie between 1 + 2^-7 and 1 + 2^-6: even 1 + 2^-6 */
    {"bf16", 0x3f808001u, 0x3f810000u}, /* just past the tie: up, to 1 + 2^-7 */
    {"bf16", 0x3f817fffu, 0x3f810000u}, /* just below the next tie: down, to 1 + 2^-7 */
    {"bf16", 0xbf818000u, 0xbf820000u}, /* -(1 + 3*2^-8): the same, negative */
    {"bf16", 0xbf808000u, 0xbf800000u}, /* -(1 + 2^-8) */
    {"bf16", 0x3f7fffffu, 0x3f800000u}, /* 1 - 2^-24 rounds up into the next binade */
    {"bf16", 0x7f7fffffu, 0x7f800000u}, /* the largest float: past bf16's largest, Inf (as torch) */
    {"bf16", 0x7f7f7fffu, 0x7f7f0000u}, /* bf16's largest stays */
    {"bf16", 0x7f800000u, 0x7f800000u}, /* Inf */
    {"bf16", 0xff800000u, 0xff800000u}, /* -Inf */
    {"bf16", 0x00000000u, 0x00000000u}, /* 0 */
    {"bf16", 0x80000000u, 0x80000000u}, /* -0 */
    {"bf16", 0x00008000u, 0x00000000u}, /* a subnormal tie, to even 0 */
    {"bf16", 0x00018000u, 0x00020000u}, /* a subnormal tie, to even 2 */
    {"bf16", 0x7fc00000u, 0x7fc00000u}, /* quiet NaN */
    {"bf16", 0x7f800001u, 0x7fc00000u}, /* signalling NaN, payload in the low half: quiet, never Inf */
    {"bf16", 0xffa12345u, 0xffe10000u}, /* negative NaN: sign and top payload kept */
    /* f16: every tie and the floats beside it are f16_rounding_every_midpoint's; here the edges, and C */
    {"f16", 0x3f803000u, 0x3f804000u}, /* 1 + 3*2^-11, the tie between 1 + 2^-10 and 1 + 2^-9: even 1 + 2^-9 */
    {"f16", 0x3f7fffffu, 0x3f800000u}, /* 1 - 2^-24 rounds up into the next binade */
    {"f16", 0x477fe000u, 0x477fe000u}, /* 65504, f16's largest, stays */
    {"f16", 0x477fefffu, 0x477fe000u}, /* 65519.996, the float below 65520: down, to 65504 */
    {"f16", 0x477ff000u, 0x7f800000u}, /* 65520, the tie between 65504 and 65536: even 65536, Inf */
    {"f16", 0xc77ff000u, 0xff800000u}, /* -65520: -Inf */
    {"f16", 0x477fe800u, 0x477fe000u}, /* 65512: 65504 */
    {"f16", 0x47800000u, 0x7f800000u}, /* 65536: Inf */
    {"f16", 0x7f7fffffu, 0x7f800000u}, /* the largest float: Inf */
    {"f16", 0x7f800000u, 0x7f800000u}, /* Inf */
    {"f16", 0xff800000u, 0xff800000u}, /* -Inf */
    {"f16", 0x00000000u, 0x00000000u}, /* 0 */
    {"f16", 0x80000000u, 0x80000000u}, /* -0 */
    {"f16", 0x38800000u, 0x38800000u}, /* 2^-14, f16's smallest normal */
    {"f16", 0x387fc000u, 0x387fc000u}, /* 2^-14 - 2^-24, its largest subnormal */
    {"f16", 0x387fe000u, 0x38800000u}, /* 2^-14 - 2^-25, a tie: to even 2^-14 */
    {"f16", 0x33800000u, 0x33800000u}, /* 2^-24, its smallest subnormal */
    {"f16", 0xb3800000u, 0xb3800000u}, /* -2^-24 */
    {"f16", 0x33000000u, 0x00000000u}, /* 2^-25, the tie between 0 and 2^-24: even 0 */
    {"f16", 0xb3000000u, 0x80000000u}, /* -2^-25: -0 */
    {"f16", 0x33000001u, 0x33800000u}, /* just past 2^-25: 2^-24 */
    {"f16", 0x32800000u, 0x00000000u}, /* 2^-26: 0 */
    {"f16", 0x33400000u, 0x33800000u}, /* 3*2^-26: 2^-24 */
    {"f16", 0x33c00000u, 0x34000000u}, /* 3*2^-25, the tie between 2^-24 and 2^-23: even 2^-23 */
    {"f16", 0x34200000u, 0x34000000u}, /* 5*2^-25, the tie between 2^-23 and 3*2^-24: even 2^-23 */
    {"f16", 0x34600000u, 0x34800000u}, /* 7*2^-25: even 4*2^-24 */
    {"f16", 0x3500cccdu, 0x35000000u}, /* 4.2*2^-24: 4*2^-24 */
    {"f16", 0x00000001u, 0x00000000u}, /* the smallest float subnormal: 0 */
    {"f16", 0x007fffffu, 0x00000000u}, /* the largest: 0 */
    {"f16", 0x80400000u, 0x80000000u}, /* a negative one: -0 */
    {"f16", 0x00800000u, 0x00000000u}, /* the smallest normal float: 0 */
    {"f16", 0x7fc00000u, 0x7fc00000u}, /* quiet NaN */
    {"f16", 0x7f800001u, 0x7fc00000u}, /* signalling NaN, payload below f16's bits: quiet, never Inf */
    {"f16", 0xffa12345u, 0xffe12000u}, /* negative NaN: sign and top 10 payload bits kept */
};

/* The table's cases of prec through the kernel (K = 1): the scratch copy
 * bit for bit, the test's own rounding agrees with the table, and C. */
static void round_table(recur_dtype prec) {
    const char *name = recur_dtype_name(prec);
    const struct round_case *cases[sizeof round_cases / sizeof round_cases[0]];
    int n = 0;
    for (size_t i = 0; i < sizeof round_cases / sizeof round_cases[0]; i++)
        if (!strcmp(round_cases[i].type, name)) cases[n++] = &round_cases[i];
    cr_assert(n > 0, "no %s cases", name);
    recur_ctx *ctx = open_cl();
    float *in = test_floats((size_t)n), *copy = test_floats((size_t)n), *c = test_floats((size_t)n);
    for (int i = 0; i < n; i++) in[i] = from_bits(cases[i]->in);
    round_on_device(ctx, prec, in, (size_t)n, 1, copy, c);
    for (int i = 0; i < n; i++) {
        uint32_t want = cases[i]->want;
        cr_assert_eq(bits(copy[i]), want, "%s(0x%08x) = 0x%08x in the scratch copy, expected 0x%08x", name,
                     cases[i]->in, bits(copy[i]), want);
        cr_assert_eq(bits(rounding(prec)(in[i])), want, "the test's own %s(0x%08x)", name, cases[i]->in);
        float w = from_bits(want);
        if (isnan(w))
            cr_assert(isnan(c[i]), "C[%d] = %g for NaN", i, c[i]);
        else if (isinf(w) || fabsf(w) >= 0x1p-126f)
            cr_assert_eq(bits(c[i]), want, "C[%d] = 0x%08x for 0x%08x, expected 0x%08x", i, bits(c[i]), cases[i]->in,
                         want);
    }
    free(in), free(copy), free(c);
    recur_ctx_free(ctx);
}

Test(precision, bf16_rounding_bit_for_bit) { round_table(RECUR_DTYPE_BF16); }

Test(precision, f16_rounding_bit_for_bit) { round_table(RECUR_DTYPE_F16); }

/*
 * Every f16 value v (bits h from 0 to 0x7bff) and the midpoint m between it
 * and the next (0x7bff's: 65520, with 65536): v stays, m goes to whichever
 * of the two is even, the floats just below and above m to v and to the
 * next; both signs. The expected value comes from the f16 grid (f16_value),
 * and the test's own rounding (f16) must agree with it; the kernel's scratch
 * copy (A as rows of 256) must be it bit for bit. RECUR_TEST_TINY: ten
 * values of each binade, its ends among them.
 */
Test(precision, f16_rounding_every_midpoint) {
    static const unsigned few[] = {0, 1, 2, 3, 511, 512, 513, 1021, 1022, 1023};
    const int small = tiny();
    const size_t per = small ? sizeof few / sizeof few[0] : 1024, n_h = 31 * per, n = n_h * 8;
    float *in = test_floats(n), *want = test_floats(n), *got = test_floats(n);
    size_t at = 0;
    for (unsigned e = 0; e < 31; e++)
        for (size_t k = 0; k < per; k++) {
            unsigned h = e << 10 | (small ? few[k] : (unsigned)k);
            double lo = f16_value(h), hi = f16_value(h + 1), mid = (lo + hi) / 2;
            cr_assert_eq((double)(float)mid, mid, "the midpoint above f16 0x%04x is no float", h);
            const float up = h + 1 == 0x7c00u ? INFINITY : (float)hi, m = (float)mid;
            const float vals[4][2] = {{(float)lo, (float)lo},
                                      {m, h & 1u ? up : (float)lo},
                                      {nextafterf(m, 0.0f), (float)lo},
                                      {nextafterf(m, INFINITY), up}};
            for (int v = 0; v < 4; v++)
                for (int s = 0; s < 2; s++) {
                    in[at] = s ? -vals[v][0] : vals[v][0];
                    want[at] = s ? -vals[v][1] : vals[v][1];
                    cr_assert_eq(bits(f16(in[at])), bits(want[at]),
                                 "the test's own f16(0x%08x) = 0x%08x, the grid says 0x%08x", bits(in[at]),
                                 bits(f16(in[at])), bits(want[at]));
                    at++;
                }
        }
    cr_assert_eq(at, n);
    recur_ctx *ctx = open_cl();
    round_on_device(ctx, RECUR_DTYPE_F16, in, n, 256, got, NULL);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (bits(got[i]) != bits(want[i]) && !bad++) first = i;
    cr_assert_eq(bad, 0, "%zu of %zu values rounded wrong, the first f16(0x%08x) = 0x%08x, expected 0x%08x", bad, n,
                 bits(in[first]), bits(got[first]), bits(want[first]));
    cr_log_info("%zu values through the f16 rounding kernel", n);
    free(in), free(want), free(got);
    recur_ctx_free(ctx);
}

struct gemm_case {
    int ta, tb, M, N, K, pad_a, pad_b, pad_c, off;
    float alpha, beta;
};

/* What a GEMM's operands are drawn from. RANDOM: U(-2, 2). EXACT: k / 8
 * with an integer |k| <= 16 (C: k), which bf16 and f16 hold, so every
 * product and sum is exact in float32. HUGE (f16): U(-2, 2), one A in 64
 * past f16's range (to Inf), one in 16 near its top (65504, 65519.99 and
 * 65512 to 65504). SMALL (f16): A of f16's subnormal range and below (one
 * in 8 a tie, a float subnormal or another edge: 0 or multiples of 2^-24,
 * which are off by up to 2^-5 of themselves), B up to 2^14, C up to 2^-6,
 * as large as one product. */
enum draw { RANDOM, EXACT, HUGE, SMALL };

static float pick(test_rng *rng, const float *v, size_t n) {
    size_t i = (size_t)test_uniform(rng, 0, (double)n);
    return v[i < n ? i : n - 1];
}

static float draw(test_rng *rng, enum draw how, char which) {
    static const float over[] = {70000.0f, -70000.0f, 65520.0f, -65520.0f, 1e6f, 3e38f};
    static const float top[] = {65504.0f, -65504.0f, 0x1.ffdffep+15f, -0x1.ffdffep+15f, 65512.0f};
    static const float under[] = {0x1p-25f, -0x1p-25f, 0x1.8p-25f, 0x1.8p-26f, 0x1p-26f, 1e-9f, 1e-40f,
                                  -0x1.4p-23f, 0x1.ff8p-15f, 0x1.ffcp-15f};
    const double u = test_uniform(rng, 0, 1);
    if (how == EXACT) return (float)(int)test_uniform(rng, -16, 17) / (which == 'C' ? 1.0f : 8.0f);
    if (how == HUGE && which == 'A' && u < 1.0 / 64) return pick(rng, over, sizeof over / sizeof *over);
    if (how == HUGE && which == 'A' && u < 1.0 / 64 + 1.0 / 16) return pick(rng, top, sizeof top / sizeof *top);
    if (how == SMALL && which == 'A' && u < 1.0 / 8) return pick(rng, under, sizeof under / sizeof *under);
    if (how == SMALL && which == 'A') return (float)test_uniform(rng, -1, 1) * 0x1p-20f;
    if (how == SMALL) return (float)test_uniform(rng, -2, 2) * (which == 'B' ? 0x1p13f : 0x1p-7f);
    return (float)test_uniform(rng, -2, 2);
}

/* What a GEMM's C held: Inf, NaN or finite elements. */
struct outcome {
    size_t inf, nan, finite;
};

/* One GEMM in precision prec against a double loop over the rounded
 * operands: C where the loop has Inf or NaN the same Inf or a NaN, elsewhere
 * within 1e-5 of the sum of |products| (EXACT: bit for bit, and the F32
 * GEMM's bits); C's padding and the operands unchanged. */
static struct outcome gemm_check(recur_ctx *ctx, recur_dtype prec, const struct gemm_case *g, test_rng *rng,
                                 enum draw how) {
    struct recur_backend *be = &ctx->be;
    float (*round)(float) = rounding(prec);
    int rows_a = g->ta ? g->K : g->M, cols_a = g->ta ? g->M : g->K;
    int rows_b = g->tb ? g->N : g->K, cols_b = g->tb ? g->K : g->N;
    int lda = cols_a + g->pad_a, ldb = cols_b + g->pad_b, ldc = g->N + g->pad_c;
    size_t na = g->off + (size_t)rows_a * lda, nb = g->off + (size_t)rows_b * ldb, nc = g->off + (size_t)g->M * ldc;
    float *A = test_floats(na), *B = test_floats(nb), *C = test_floats(nc), *got = test_floats(nc),
          *back = test_floats(na + nb + nc);
    for (size_t i = 0; i < na; i++) A[i] = draw(rng, how, 'A');
    for (size_t i = 0; i < nb; i++) B[i] = draw(rng, how, 'B');
    for (size_t i = 0; i < nc; i++) C[i] = draw(rng, how, 'C');
    struct recur_mem dA = put(ctx, A, na), dB = put(ctx, B, nb), dC = put(ctx, C, nc);
    OK(ctx, recur_be_gemm_prec(be, prec, g->ta, g->tb, g->M, g->N, g->K, g->alpha, recur_mem_at(dA, g->off), lda,
                               recur_mem_at(dB, g->off), ldb, g->beta, recur_mem_at(dC, g->off), ldc));
    get(ctx, got, dC, nc);
    char what[128];
    static const char *const draws[] = {"random", "exact", "huge", "small"};
    snprintf(what, sizeof what, "%s gemm %c%c M=%d N=%d K=%d lda=%d ldb=%d ldc=%d, %s operands",
             recur_dtype_name(prec), g->ta ? 'T' : 'N', g->tb ? 'T' : 'N', g->M, g->N, g->K, lda, ldb, ldc,
             draws[how]);
    struct outcome seen = {0, 0, 0};
    for (size_t i = 0; i < nc; i++) {
        size_t r = (i - g->off) / ldc, j = (i - g->off) % ldc;
        if (i < (size_t)g->off || j >= (size_t)g->N) {
            cr_assert_eq(bits(got[i]), bits(C[i]), "%s: C[%zu] outside op(A) op(B) was written", what, i);
            continue;
        }
        double s = 0, mag = 0;
        for (int k = 0; k < g->K; k++) {
            double a = round(g->ta ? A[g->off + (size_t)k * lda + r] : A[g->off + r * lda + k]);
            double b = round(g->tb ? B[g->off + j * ldb + k] : B[g->off + (size_t)k * ldb + j]);
            s += a * b;
            mag += fabs(a * b);
        }
        double want = g->alpha * s + g->beta * C[i];
        if (isnan(want)) {
            seen.nan++;
            cr_assert(isnan(got[i]), "%s: C[%zu][%zu] = %.9g, expected NaN", what, r, j, got[i]);
            continue;
        }
        if (isinf(want)) {
            seen.inf++;
            cr_assert(got[i] == want, "%s: C[%zu][%zu] = %.9g, expected %g", what, r, j, got[i], want);
            continue;
        }
        seen.finite++;
        double tol = how == EXACT ? 0 : 1e-5 * (fabs(g->alpha) * mag + fabs(g->beta * C[i])) + 1e-7;
        cr_assert(fabs(got[i] - want) <= tol, "%s: C[%zu][%zu] = %.9g, expected %.9g (tolerance %.2g)", what, r, j,
                  got[i], want, tol);
    }
    /* the operands themselves are not rounded */
    get(ctx, back, dA, na);
    cr_assert(memcmp(back, A, na * sizeof(float)) == 0, "%s: A changed", what);
    get(ctx, back, dB, nb);
    cr_assert(memcmp(back, B, nb * sizeof(float)) == 0, "%s: B changed", what);
    if (how == EXACT) { /* the F32 GEMM's bits */
        OK(ctx, recur_be_write(be, dC, C, nc * sizeof(float)));
        OK(ctx, recur_be_gemm(be, g->ta, g->tb, g->M, g->N, g->K, g->alpha, recur_mem_at(dA, g->off), lda,
                              recur_mem_at(dB, g->off), ldb, g->beta, recur_mem_at(dC, g->off), ldc));
        get(ctx, back, dC, nc);
        cr_assert(memcmp(back, got, nc * sizeof(float)) == 0, "%s: operands exact in the type, not the F32 result",
                  what);
    }
    recur_be_free(be, &dA);
    recur_be_free(be, &dB);
    recur_be_free(be, &dC);
    free(A), free(B), free(C), free(got), free(back);
    return seen;
}

/* The GEMMs of a precision: random and exact operands in every case; the
 * scratch copies are two buffers, kept from case to case, freed with the
 * context. */
static void gemm_against_double_loop(recur_dtype prec) {
    struct recur_cl_stats before, s0, s1;
    recur_cl_stats_get(&before);
    recur_ctx *ctx = open_cl();
    recur_cl_stats_get(&s0);
    const struct gemm_case cases[] = {
        /* ta tb  M   N   K  pads    off  alpha  beta */
        {0, 0, 7, 13, 19, 3, 5, 2, 3, 1.0f, 0.0f},
        {0, 1, 13, 7, 5, 1, 4, 3, 1, -0.75f, 0.5f},
        {1, 0, 5, 11, 9, 2, 1, 1, 5, 1.0f, 1.0f},
        {1, 1, 9, 6, 17, 5, 2, 4, 2, 0.5f, -1.0f},
        {0, 0, 1, 1, 1, 0, 0, 0, 0, 1.0f, 0.0f},
        {1, 1, 3, 2, 70, 1, 1, 1, 7, 2.0f, 0.25f},
        {0, 1, 130, 70, 65, 3, 1, 2, 1, 1.0f, 1.0f}, /* larger: CLBlast's indirect kernel, a larger scratch */
        {1, 0, 4, 3, 2, 0, 0, 0, 0, 1.0f, 0.0f},     /* then small again: the scratch kept, not shrunk */
    };
    const int small = tiny(); /* without the largest */
    test_rng rng = {42};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (small && cases[i].M > 100) continue;
        gemm_check(ctx, prec, &cases[i], &rng, RANDOM);
        gemm_check(ctx, prec, &cases[i], &rng, EXACT);
    }
    recur_cl_stats_get(&s1);
    cr_assert_eq(s1.buffers, s0.buffers + 2, "live buffers %ld, expected %ld + the two scratch copies", s1.buffers,
                 s0.buffers);
    recur_ctx_free(ctx);
    recur_cl_stats_get(&s1);
    cr_assert_eq(s1.buffers, before.buffers, "the scratch copies outlive the context: %ld buffers, were %ld",
                 s1.buffers, before.buffers);
}

Test(precision, bf16_gemm_against_double_loop) { gemm_against_double_loop(RECUR_DTYPE_BF16); }

Test(precision, f16_gemm_against_double_loop) { gemm_against_double_loop(RECUR_DTYPE_F16); }

/* f16 operands past its range, all four transpositions: some of C Inf,
 * some NaN (Inf and -Inf in one sum), the rest finite, each where the
 * double loop has it; and operands that f16 rounds to subnormals or 0. */
Test(precision, f16_gemm_overflow_and_underflow) {
    recur_ctx *ctx = open_cl();
    const struct gemm_case cases[] = {
        /* ta tb  M   N   K  pads    off  alpha  beta */
        {0, 0, 7, 9, 19, 3, 5, 2, 3, 1.0f, 0.0f},
        {0, 1, 11, 7, 13, 1, 4, 3, 1, -0.75f, 0.5f},
        {1, 0, 9, 5, 11, 2, 1, 1, 5, 1.0f, 1.0f},
        {1, 1, 6, 9, 17, 5, 2, 4, 2, 0.5f, -1.0f},
    };
    test_rng rng = {4242};
    struct outcome huge = {0, 0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct outcome o = gemm_check(ctx, RECUR_DTYPE_F16, &cases[i], &rng, HUGE);
        huge.inf += o.inf, huge.nan += o.nan, huge.finite += o.finite;
        o = gemm_check(ctx, RECUR_DTYPE_F16, &cases[i], &rng, SMALL);
        cr_assert_eq(o.inf + o.nan, 0, "SMALL operands gave Inf or NaN");
    }
    cr_log_info("operands past f16's range: %zu elements of C Inf, %zu NaN, %zu finite", huge.inf, huge.nan,
                huge.finite);
    cr_assert(huge.inf > 0 && huge.nan > 0 && huge.finite > 0, "the draws gave %zu Inf, %zu NaN, %zu finite", huge.inf,
              huge.nan, huge.finite);
    recur_ctx_free(ctx);
}

/* A recur_dtype out of range (3, 7, -1): the dispatch wrappers and the
 * backend's slots, gemm and pack, refuse it as unsupported, naming it and
 * writing nothing; the model refuses it as a bad argument and every layer
 * keeps the precision it had (f32, f16 or bf16). */
Test(precision, out_of_range_dtype_refused) {
    recur_ctx *ctx = open_cl();
    struct recur_backend *be = &ctx->be;
    float ones[16], c[4];
    for (int i = 0; i < 16; i++) ones[i] = 1.0f;
    struct recur_mem m = put(ctx, ones, 16);
    static const int bad[] = {3, 7, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const recur_dtype p = (recur_dtype)bad[i];
        char name[32];
        snprintf(name, sizeof name, "type %d", bad[i]);
        recur_status st = recur_be_gemm_prec(be, p, 0, 0, 2, 2, 2, 1.0f, m, 2, m, 2, 0.0f, recur_mem_at(m, 8), 2);
        cr_assert_eq(st, RECUR_ERR_UNSUPPORTED, "%s: %s: %s", name, recur_status_str(st), recur_ctx_error(ctx));
        cr_assert(strstr(recur_ctx_error(ctx), name), "%s", recur_ctx_error(ctx));
        /* the slot itself, past the wrapper: the device and the type named */
        st = be->iface->gemm(be, p, 0, 0, 2, 2, 2, 1.0f, m, 2, m, 2, 0.0f, recur_mem_at(m, 8), 2);
        cr_assert_eq(st, RECUR_ERR_UNSUPPORTED, "%s: %s: %s", name, recur_status_str(st), recur_ctx_error(ctx));
        cr_assert(strstr(recur_ctx_error(ctx), name) && strstr(recur_ctx_error(ctx), be->info.selector), "%s",
                  recur_ctx_error(ctx));
        void *pk = &pk;
        st = recur_be_pack(be, p, 0, 2, 2, m, 2, &pk);
        cr_assert_eq(st, RECUR_ERR_UNSUPPORTED, "%s: %s: %s", name, recur_status_str(st), recur_ctx_error(ctx));
        cr_assert(strstr(recur_ctx_error(ctx), name), "%s", recur_ctx_error(ctx));
        cr_assert_null(pk, "a refused pack returned %p", pk);
        pk = NULL;
        st = be->iface->pack(be, p, 0, 2, 2, m, 2, &pk);
        cr_assert_eq(st, RECUR_ERR_UNSUPPORTED, "%s: %s: %s", name, recur_status_str(st), recur_ctx_error(ctx));
        cr_assert(strstr(recur_ctx_error(ctx), name) && strstr(recur_ctx_error(ctx), be->info.selector), "%s",
                  recur_ctx_error(ctx));
        cr_assert_null(pk, "the pack slot returned %p", pk);
        get(ctx, c, recur_mem_at(m, 8), 4);
        for (int k = 0; k < 4; k++) cr_assert_eq(c[k], 1.0f, "%s: C written by a refused GEMM", name);
    }
    recur_be_free(be, &m);
    recur_model_desc desc = {.cell = "lstm", .input_size = 3, .hidden_size = 4, .num_layers = 2,
                             .direction = RECUR_DIR_BIDI_CONCAT};
    recur_model *model = NULL;
    OK(ctx, recur_model_create(ctx, &desc, &model));
    const recur_dtype had[] = {RECUR_DTYPE_F32, RECUR_DTYPE_F16, RECUR_DTYPE_BF16};
    for (size_t h = 0; h < sizeof had / sizeof had[0]; h++) {
        OK(ctx, recur_model_set_precision(model, had[h]));
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            recur_status st = recur_model_set_precision(model, (recur_dtype)bad[i]);
            cr_assert_eq(st, RECUR_ERR_ARG, "precision %d: %s: %s", bad[i], recur_status_str(st), recur_ctx_error(ctx));
            cr_assert_eq(recur_model_precision(model), had[h]);
            for (int l = 0; l < 2; l++)
                for (int rev = 0; rev < 2; rev++) {
                    recur_layer *layer = NULL;
                    OK(ctx, recur_model_layer(model, l, rev, &layer));
                    cr_assert_eq(recur_layer_precision(layer), had[h], "layer %d%s: %s after precision %d", l,
                                 rev ? " reverse" : "", recur_dtype_name(recur_layer_precision(layer)), bad[i]);
                }
        }
    }
    recur_model_free(model);
    recur_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* a model in bf16 and in f16 against the same model in f32                */

enum { T = 6, N = 4, I = 5, H = 7, L = 2, D = 2, O = D * H };

struct run {
    float y[T * N * O], hT[L * D * N * H], cT[L * D * N * H];
    float dx[T * N * I], dh0[L * D * N * H], dc0[L * D * N * H];
    float *grads; /* every parameter's gradient, in parameter order */
};

/* Forward (training) and backward of m on fixed inputs, into r. */
static void run_model(recur_ctx *ctx, recur_model *m, struct run *r, size_t n_grads) {
    static const int lengths[N] = {6, 3, 5, 1};
    test_rng rng = {7};
    static float x[T * N * I], h0[L * D * N * H], c0[L * D * N * H], dy[T * N * O], dhT[L * D * N * H],
        dcT[L * D * N * H];
    double scratch[T * N * O];
    test_fill(&rng, scratch, x, T * N * I, -1, 1);
    test_fill(&rng, scratch, h0, L * D * N * H, -0.5, 0.5);
    test_fill(&rng, scratch, c0, L * D * N * H, -0.5, 0.5);
    test_fill(&rng, scratch, dy, T * N * O, -1, 1);
    test_fill(&rng, scratch, dhT, L * D * N * H, -1, 1);
    test_fill(&rng, scratch, dcT, L * D * N * H, -1, 1);
    recur_model_io io = {.T = T, .N = N, .lengths = lengths, .x = x, .h0 = h0, .c0 = c0, .y = r->y, .hT = r->hT,
                         .cT = r->cT};
    recur_model_grad_io g = {.dy = dy, .dhT = dhT, .dcT = dcT, .dx = r->dx, .dh0 = r->dh0, .dc0 = r->dc0};
    OK(ctx, recur_model_forward(m, RECUR_MODE_TRAINING, &io));
    OK(ctx, recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE));
    r->grads = test_floats(n_grads);
    size_t at = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info p;
        OK(ctx, recur_model_param_info(m, i, &p));
        OK(ctx, recur_model_grad_get(m, p.name, r->grads + at, p.count));
        at += p.count;
    }
}

/*
 * A precision against f32, array by array. One product sum y = sum_k a_k
 * b_k with operands rounded to the type (relative error at most u each:
 * bf16 2^-9, f16 2^-11) is off by at most (2u + u^2) sum_k |a_k b_k|; the
 * cells' functions (sigmoid, tanh, products of values below 1) do not
 * enlarge errors much over 6 steps and 2 layers, so each array stays within
 * 2^4 u of its largest magnitude (seen on PoCL: bf16 2^-10 to 2^-8, f16
 * 2^-13 to 2^-11). And it is not f32: rounding moves every array by more
 * than 2^-5 u of its largest magnitude (f32 sums in another order move it
 * by ~2^-23), which an implementation that forgot to round fails.
 * (Truncation instead of rounding stays within the bound here; the GEMM
 * tests above tell it apart, to 1e-5.) Returns the largest difference
 * relative to the largest |f32|.
 */
static double compare(recur_dtype prec, const char *what, const float *got, const float *f32, size_t n) {
    const double u = prec == RECUR_DTYPE_F16 ? 0x1p-11 : 0x1p-9;
    const char *name = recur_dtype_name(prec);
    double big = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        big = fmax(big, fabs(f32[i]));
        cr_assert(isfinite(got[i]), "%s[%zu] = %g in %s", what, i, got[i], name);
        diff = fmax(diff, fabs((double)got[i] - f32[i]));
    }
    cr_log_info("%s: %s - f32 at most %.3g of the largest |f32| %.3g (2^%.1f)", what, name, diff / big, big,
                log2(diff / big));
    cr_assert(big > 0, "%s: all zero", what);
    cr_assert(diff <= 0x1p4 * u * big, "%s: %s is %.3g off f32 (largest |f32| %.3g): past %s's bound", what, name, diff,
              big, name);
    cr_assert(diff > 0x1p-5 * u * big, "%s: %s is only %.3g off f32 (largest |f32| %.3g): no rounding happened", what,
              name, diff, big);
    return diff / big;
}

/* Every array of a run in prec against f32's; the relative differences
 * into rel (7 arrays). */
static void compare_runs(recur_dtype prec, const struct run *got, const struct run *f32, size_t n_grads,
                         double rel[7]) {
    rel[0] = compare(prec, "y", got->y, f32->y, T * N * O); /* padded steps of y: the pad (0) in both */
    rel[1] = compare(prec, "hT", got->hT, f32->hT, L * D * N * H);
    rel[2] = compare(prec, "cT", got->cT, f32->cT, L * D * N * H);
    rel[3] = compare(prec, "dx", got->dx, f32->dx, T * N * I);
    rel[4] = compare(prec, "dh0", got->dh0, f32->dh0, L * D * N * H);
    rel[5] = compare(prec, "dc0", got->dc0, f32->dc0, L * D * N * H);
    rel[6] = compare(prec, "weight gradients", got->grads, f32->grads, n_grads);
}

Test(precision, model_forward_backward) {
    recur_ctx *ctx = open_cl();
    recur_model_desc desc = {.cell = "lstm", .input_size = I, .hidden_size = H, .num_layers = L,
                             .direction = RECUR_DIR_BIDI_CONCAT};
    recur_model *m = NULL;
    OK(ctx, recur_model_create(ctx, &desc, &m));
    test_rng rng = {3};
    size_t n_grads = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info p;
        OK(ctx, recur_model_param_info(m, i, &p));
        float *w = test_floats(p.count);
        double *wd = test_doubles(p.count);
        test_fill(&rng, wd, w, p.count, -0.6, 0.6);
        OK(ctx, recur_model_param_set(m, p.name, w, p.count));
        n_grads += p.count;
        free(w), free(wd);
    }
    static struct run f32, b16, h16, again;
    run_model(ctx, m, &f32, n_grads);
    double rel_bf16[7], rel_f16[7];
    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_BF16));
    run_model(ctx, m, &b16, n_grads);
    compare_runs(RECUR_DTYPE_BF16, &b16, &f32, n_grads, rel_bf16);
    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_F16));
    cr_assert_eq(recur_model_precision(m), RECUR_DTYPE_F16);
    run_model(ctx, m, &h16, n_grads);
    compare_runs(RECUR_DTYPE_F16, &h16, &f32, n_grads, rel_f16);
    /* f16's 11 significant bits against bf16's 8: nearer f32 in every array
     * (a bf16 rounding where f16 was asked for is caught here too) */
    for (int i = 0; i < 7; i++)
        cr_assert(rel_f16[i] < rel_bf16[i], "array %d: f16 %.3g off f32, bf16 only %.3g", i, rel_f16[i], rel_bf16[i]);
    /* back to f32: the f32 results again, bit for bit (the weights were never rounded) */
    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_F32));
    run_model(ctx, m, &again, n_grads);
    cr_assert(memcmp(again.y, f32.y, sizeof f32.y) == 0, "f32 after bf16 and f16: y differs");
    cr_assert(memcmp(again.grads, f32.grads, n_grads * sizeof(float)) == 0,
              "f32 after bf16 and f16: gradients differ");
    free(f32.grads), free(b16.grads), free(h16.grads), free(again.grads);
    recur_model_free(m);
    recur_ctx_free(ctx);
}

/* The pack slots: a bf16 or f16 pack (op(B) rounded once) gives the bits of
 * the unpacked GEMM in its precision for several row counts, and keeps them
 * after B changes; a float32 pack those of the float32 GEMM. */
Test(precision, packs_match_the_unpacked_gemm) {
    recur_ctx *ctx = open_cl();
    struct recur_backend *be = &ctx->be;
    enum { K = 19, N = 23, MAXM = 9, LDA = K + 2, LDB = K + 3, LDC = N + 1 };
    float A[MAXM * LDA], B[N * LDB], C[MAXM * LDC], want[MAXM * LDC], got[MAXM * LDC];
    test_rng rng = {77};
    for (size_t i = 0; i < sizeof A / sizeof *A; i++) A[i] = (float)test_uniform(&rng, -2, 2);
    for (size_t i = 0; i < sizeof B / sizeof *B; i++) B[i] = (float)test_uniform(&rng, -2, 2);
    for (size_t i = 0; i < sizeof C / sizeof *C; i++) C[i] = (float)test_uniform(&rng, -1, 1);
    struct recur_mem dA = put(ctx, A, sizeof A / sizeof *A), dB = put(ctx, B, sizeof B / sizeof *B);
    struct recur_mem dC = put(ctx, C, sizeof C / sizeof *C);
    const recur_dtype precs[] = {RECUR_DTYPE_F32, RECUR_DTYPE_BF16, RECUR_DTYPE_F16};
    for (size_t pi = 0; pi < sizeof precs / sizeof precs[0]; pi++) {
        recur_dtype p = precs[pi];
        void *pk = NULL;
        OK(ctx, recur_be_pack(be, p, 1, K, N, dB, LDB, &pk));
        const int Ms[] = {MAXM, 3, 1};
        for (size_t m = 0; m < 3; m++)
            for (int b = 0; b < 2; b++) {
                float beta = (float)b;
                OK(ctx, recur_be_write(be, dC, C, sizeof C));
                OK(ctx, recur_be_gemm_prec(be, p, 0, 1, Ms[m], N, K, 1.0f, dA, LDA, dB, LDB, beta, dC, LDC));
                get(ctx, want, dC, sizeof C / sizeof *C);
                OK(ctx, recur_be_write(be, dC, C, sizeof C));
                OK(ctx, recur_be_gemm_packed(be, Ms[m], dA, LDA, pk, beta, dC, LDC));
                get(ctx, got, dC, sizeof C / sizeof *C);
                cr_assert(!memcmp(got, want, sizeof got), "%s pack, M=%d, beta %g: not the unpacked GEMM's bits",
                          recur_dtype_name(p), Ms[m], beta);
            }
        if (p != RECUR_DTYPE_F32) { /* a copy: B changed afterwards does not reach it */
            OK(ctx, recur_be_write(be, dC, C, sizeof C));
            OK(ctx, recur_be_gemm_packed(be, MAXM, dA, LDA, pk, 1.0f, dC, LDC));
            get(ctx, want, dC, sizeof C / sizeof *C);
            float B2[N * LDB];
            for (size_t i = 0; i < sizeof B2 / sizeof *B2; i++) B2[i] = 100.0f;
            OK(ctx, recur_be_write(be, dB, B2, sizeof B2));
            OK(ctx, recur_be_write(be, dC, C, sizeof C));
            OK(ctx, recur_be_gemm_packed(be, MAXM, dA, LDA, pk, 1.0f, dC, LDC));
            get(ctx, got, dC, sizeof C / sizeof *C);
            cr_assert(!memcmp(got, want, sizeof got), "the %s pack read B after packing", recur_dtype_name(p));
            OK(ctx, recur_be_write(be, dB, B, sizeof B)); /* B again for the next precision */
        }
        recur_be_unpack(be, pk);
    }
    recur_be_free(be, &dA);
    recur_be_free(be, &dB);
    recur_be_free(be, &dC);
    recur_ctx_free(ctx);
}
