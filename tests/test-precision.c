/*
 * test-precision.c: the precision of the products on the CPU backend
 * (backends/cpu/matmul.c) and its public calls.
 *
 *   - recur_dtype_name / recur_dtype_parse, and bad values refused naming them;
 *   - recur_ctx_precisions: f32, bf16 (native exactly when oneDNN has a
 *     bf16 brgemm here; RECUR_CPU_BF16=emulate makes it emulated: the
 *     'precision-emulated' run) and f16 (always emulated);
 *   - the f16 rounding (backend-host.h: recur_round_f16) against the test's
 *     own at every tie between two f16 values and beside it, at the edges
 *     (65504, Inf, the subnormals, zero) and over a sweep of all floats;
 *   - recur_be_gemm_prec(BF16, F16) in the four transpositions, odd sizes,
 *     leading dimensions past the columns, alpha and beta, on 1 and 2
 *     threads, against a double loop over the rounded operands (ties to
 *     even: truncation is 2^-9 or 2^-12 off, past the tolerance); f16's
 *     overflow to Inf and its subnormals in a product;
 *   - packed weights (pack, gemm_packed) in f32 (oneDNN's packed sgemm, and
 *     B itself with RECUR_CPU_SGEMM=plain), bf16 and f16, one pack reused
 *     for several row counts, beta 0 (C's NaN overwritten) and 1, against
 *     the same loop; the bf16 and f16 packs are copies (B changed afterwards
 *     does not change their products); a pack made again in place (repack)
 *     takes B's new values; RECUR_CPU_SGEMM's bad values refused;
 *   - a type that is not a recur_dtype refused by recur_model_set_precision
 *     and by the dispatch (never a shift by it), the model left in its
 *     precision; bf16 and f16 near f32, f16 nearer; back to f32 gives
 *     f32's bits again; new weights reach the packs;
 *   - the plugin cells and the projection in bf16 and f16 (forward and
 *     backward, 2 layers, both directions, lengths) near f32's results, not
 *     equal.
 * Links a private copy of the library's objects to reach the backend.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "context.h"
#include "recur/recur-train.h"

#define OK TEST_OK

static recur_ctx *open_cpu(int threads) {
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    OK(ctx, recur_ctx_set_threads(ctx, threads));
    return ctx;
}

/* The host's rounding to prec, written apart from the backend's: to
 * nearest, ties to even, in double; f16 with subnormals (spacing 2^-24
 * below 2^-14) and Inf from 65520 (halfway to 2^16, a tie to the even
 * 2^16). F32: f itself. */
static double rounded(recur_dtype prec, float f) {
    if (prec == RECUR_DTYPE_F32 || f == 0.0f || !isfinite(f)) return f;
    int e;
    double m = frexp((double)f, &e); /* f = m 2^e, |m| in [0.5, 1) */
    if (prec == RECUR_DTYPE_BF16) return ldexp(nearbyint(ldexp(m, 8)), e - 8);
    if (fabs((double)f) >= 65520.0) return copysign(INFINITY, (double)f);
    int q = (e - 1 < -14 ? -14 : e - 1) - 10; /* the f16 spacing at f: 2^q */
    return ldexp(nearbyint(ldexp((double)f, -q)), q);
}

static struct recur_mem host(float *p) { return (struct recur_mem){p, 0}; }

Test(precision, names_and_parsing) {
    cr_assert_str_eq(recur_dtype_name(RECUR_DTYPE_F32), "f32");
    cr_assert_str_eq(recur_dtype_name(RECUR_DTYPE_BF16), "bf16");
    cr_assert_str_eq(recur_dtype_name(RECUR_DTYPE_F16), "f16");
    cr_assert_null(recur_dtype_name((recur_dtype)3));
    const char *ok[] = {"f32", "FP32", "float32", "bf16", "BFloat16", "f16", "fp16", "float16"};
    const recur_dtype want[] = {RECUR_DTYPE_F32,  RECUR_DTYPE_F32,  RECUR_DTYPE_F32, RECUR_DTYPE_BF16,
                                RECUR_DTYPE_BF16, RECUR_DTYPE_F16, RECUR_DTYPE_F16, RECUR_DTYPE_F16};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        recur_dtype d = (recur_dtype)-1;
        cr_assert_eq(recur_dtype_parse(ok[i], &d), RECUR_OK, "%s", ok[i]);
        cr_assert_eq(d, want[i], "%s", ok[i]);
    }
    recur_dtype d;
    cr_assert_eq(recur_dtype_parse("half", &d), RECUR_ERR_ARG);
    cr_assert(strstr(recur_last_error(), "'half'"), "%s", recur_last_error());
    cr_assert_eq(recur_dtype_parse(NULL, &d), RECUR_ERR_NULL);
}

/* The CPU backend's setting `var`: `bad` refused when a context is made, naming it; `good[]` accepted. */
static void cpu_setting_checked(const char *var, const char *bad, const char *const *good, int n_good) {
    const char *was = getenv(var);
    char *keep = was ? strdup(was) : NULL, want[96];
    setenv(var, bad, 1);
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_ERR_ARG);
    cr_assert_null(ctx);
    snprintf(want, sizeof want, "%s='%s'", var, bad);
    cr_assert(strstr(recur_last_error(), want), "%s", recur_last_error());
    for (int i = 0; i < n_good; i++) {
        setenv(var, good[i], 1);
        cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
        recur_ctx_free(ctx);
    }
    if (keep) setenv(var, keep, 1);
    else unsetenv(var);
    free(keep);
}

Test(precision, bad_cpu_bf16_setting_is_named) {
    const char *good[] = {"auto", "emulate", "matmul"};
    cpu_setting_checked("RECUR_CPU_BF16", "fast", good, 3);
}

Test(precision, bad_cpu_sgemm_setting_is_named) {
    const char *good[] = {"auto", "plain"};
    cpu_setting_checked("RECUR_CPU_SGEMM", "packed", good, 2);
}

Test(precision, cpu_lists_bf16_and_f16) {
    recur_ctx *ctx = open_cpu(1);
    unsigned native = 0, all = recur_ctx_precisions(ctx, &native);
    cr_assert_eq(all, 1u << RECUR_DTYPE_F32 | 1u << RECUR_DTYPE_BF16 | 1u << RECUR_DTYPE_F16, "precisions 0x%x", all);
    cr_assert(native & 1u << RECUR_DTYPE_F32);
    cr_assert(!(native & 1u << RECUR_DTYPE_F16), "f16 listed as native: 0x%x", native);
    const char *env = getenv("RECUR_CPU_BF16");
    if (env && !strcmp(env, "emulate")) cr_assert_eq(native, 1u << RECUR_DTYPE_F32, "native 0x%x", native);
    cr_log_info("bf16 on this CPU: %s", native & 1u << RECUR_DTYPE_BF16 ? "native" : "emulated");
    recur_ctx_free(ctx);
}

struct gcase {
    int ta, tb, M, N, K, pad;
    float alpha, beta;
};

/* C (M x N, ldc) against alpha op(A) op(B) + beta C0 over operands rounded to prec. */
static void expect(const char *what, const struct gcase *g, recur_dtype prec, const float *A, int lda, const float *B,
                   int ldb, const float *C0, const float *C, int ldc) {
    for (int r = 0; r < g->M; r++)
        for (int j = 0; j < ldc; j++) {
            size_t i = (size_t)r * ldc + j;
            if (j >= g->N) {
                cr_assert(memcmp(&C[i], &C0[i], sizeof(float)) == 0, "%s: C[%d][%d] past N was written", what, r, j);
                continue;
            }
            double s = 0, mag = 0;
            for (int k = 0; k < g->K; k++) {
                float a = g->ta ? A[(size_t)k * lda + r] : A[(size_t)r * lda + k];
                float b = g->tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                double p = rounded(prec, a) * rounded(prec, b);
                s += p;
                mag += fabs(p);
            }
            double old = g->beta != 0.0f ? g->beta * C0[i] : 0.0; /* beta 0: C0 is not read (NaN there) */
            double want = g->alpha * s + old, tol = 2e-6 * (fabs(g->alpha) * mag + fabs(old)) + 1e-7;
            cr_assert(fabs(C[i] - want) <= tol, "%s: C[%d][%d] = %.9g, expected %.9g (tolerance %.2g)", what, r, j,
                      C[i], want, tol);
        }
}

static const struct gcase cases[] = {
    /* ta tb  M    N    K  pad alpha  beta */
    {0, 0, 7, 13, 19, 3, 1.0f, 0.0f},   {0, 1, 13, 7, 5, 1, -0.75f, 0.5f},  {1, 0, 5, 11, 9, 2, 1.0f, 1.0f},
    {1, 1, 9, 6, 17, 5, 0.5f, -1.0f},   {0, 0, 1, 1, 1, 0, 1.0f, 0.0f},     {1, 1, 3, 2, 70, 1, 2.0f, 0.25f},
    {0, 1, 130, 70, 65, 3, 1.0f, 1.0f}, {1, 0, 66, 200, 33, 0, 1.0f, 0.0f}, {0, 1, 32, 160, 48, 2, 1.0f, 0.0f},
};

static void gemm_cases(recur_dtype prec, int threads) {
    recur_ctx *ctx = open_cpu(threads);
    test_rng rng = {7 + (uint64_t)threads + 10 * (uint64_t)prec};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct gcase *g = &cases[c];
        int ra = g->ta ? g->K : g->M, ca = g->ta ? g->M : g->K, rb = g->tb ? g->N : g->K, cb = g->tb ? g->K : g->N;
        int lda = ca + g->pad, ldb = cb + g->pad, ldc = g->N + g->pad;
        size_t na = (size_t)ra * lda, nb = (size_t)rb * ldb, nc = (size_t)g->M * ldc;
        float *A = test_floats(na), *B = test_floats(nb), *C0 = test_floats(nc), *C = test_floats(nc);
        float *A0 = test_floats(na), *B0 = test_floats(nb);
        for (size_t i = 0; i < na; i++) A0[i] = A[i] = (float)test_uniform(&rng, -2, 2);
        for (size_t i = 0; i < nb; i++) B0[i] = B[i] = (float)test_uniform(&rng, -2, 2);
        for (size_t i = 0; i < nc; i++) C[i] = C0[i] = (float)test_uniform(&rng, -1, 1);
        char what[128];
        snprintf(what, sizeof what, "%s gemm %c%c M=%d N=%d K=%d pad %d, %d threads", recur_dtype_name(prec),
                 g->ta ? 'T' : 'N', g->tb ? 'T' : 'N', g->M, g->N, g->K, g->pad, threads);
        OK(ctx, recur_be_gemm_prec(&ctx->be, prec, g->ta, g->tb, g->M, g->N, g->K, g->alpha, host(A), lda, host(B),
                                   ldb, g->beta, host(C), ldc));
        expect(what, g, prec, A, lda, B, ldb, C0, C, ldc);
        cr_assert(!memcmp(A, A0, na * sizeof(float)) && !memcmp(B, B0, nb * sizeof(float)),
                  "%s: an operand was changed", what);
        free(A), free(B), free(C0), free(C), free(A0), free(B0);
    }
    recur_ctx_free(ctx);
}

Test(precision, bf16_gemm_one_thread) { gemm_cases(RECUR_DTYPE_BF16, 1); }
Test(precision, bf16_gemm_two_threads) { gemm_cases(RECUR_DTYPE_BF16, 2); }
Test(precision, f16_gemm_one_thread) { gemm_cases(RECUR_DTYPE_F16, 1); }
Test(precision, f16_gemm_two_threads) { gemm_cases(RECUR_DTYPE_F16, 2); }

/* f16's range in a product: an operand from 65520 up is Inf (and Inf times
 * 0 NaN), one below 2^-25 is 0, one between counts in steps of 2^-24. */
Test(precision, f16_gemm_range) {
    recur_ctx *ctx = open_cpu(1);
    /* C (1 x 6) = A (1 x 2) B (2 x 6) */
    float A[2] = {1.0f, 1.0f};
    float B[12] = {65519.0f, 65520.0f, 1e-8f, 3e-7f, -70000.0f, 0x1p-14f,
                   0.0f,     0.0f,     0.0f,  0.0f,  0.0f,      0x1.002p-14f};
    float C[6];
    OK(ctx, recur_be_gemm_prec(&ctx->be, RECUR_DTYPE_F16, 0, 0, 1, 6, 2, 1.0f, host(A), 2, host(B), 6, 0.0f, host(C),
                               6));
    cr_assert_eq(C[0], 65504.0f, "65519 -> %g", C[0]);
    cr_assert(isinf(C[1]) && C[1] > 0, "65520 -> %g", C[1]);
    cr_assert(C[2] == 0.0f, "1e-8 -> %g", C[2]);
    cr_assert_eq(C[3], 5 * 0x1p-24f, "3e-7 -> %g", C[3]); /* 5.03 steps of 2^-24 */
    cr_assert(isinf(C[4]) && C[4] < 0, "-70000 -> %g", C[4]);
    /* 2^-14 + (2^-14 + 2^-25, a tie between 2^-14 and 2^-14 + 2^-24: to the even 2^-14) */
    cr_assert_eq(C[5], 0x1p-13f, "the tie above 2^-14 -> %a", C[5]);
    recur_ctx_free(ctx);
}

/* recur_round_f16 against the test's own rounding at every tie between two
 * neighbouring f16 values (to the even one), one float ulp either side of
 * it (to the nearer), at each f16 value itself, and over a sweep of every
 * 65537th float (NaN stays NaN). */
Test(precision, f16_rounding_at_every_tie) {
    long checked = 0;
    for (uint32_t h = 0; h < 0x7c00u; h++) { /* the finite non-negative f16 values, in order */
        /* h's value, and the next one's (0x7bff's next: 65536, where Inf begins) */
        double v0 = h < 0x400u ? ldexp(h, -24) : ldexp(1024 + (h & 0x3ffu), (int)(h >> 10) - 25);
        double v1 = h + 1 < 0x400u ? ldexp(h + 1, -24) : ldexp(1024 + ((h + 1) & 0x3ffu), (int)((h + 1) >> 10) - 25);
        float mid = (float)((v0 + v1) / 2); /* exact: 12 significant bits */
        double even = !(h & 1u) ? v0 : h == 0x7bffu ? INFINITY : v1; /* 65536 is f16's Inf */
        cr_assert_eq(rounded(RECUR_DTYPE_F16, mid), even, "the test's own rounding: the tie %a", (double)mid);
        float around[] = {(float)v0, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int k = 0; k < 4; k++)
            for (int sgn = 0; sgn < 2; sgn++) {
                float f = sgn ? -around[k] : around[k];
                double want = rounded(RECUR_DTYPE_F16, f);
                float got = recur_round_f16(f);
                cr_assert(got == want && signbit(got) == signbit(f), "recur_round_f16(%a) = %a, expected %a", (double)f,
                          (double)got, want);
                checked++;
            }
    }
    for (uint64_t u = 0; u < 0x100000000u; u += 65537) {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, sizeof f);
        float got = recur_round_f16(f);
        if (isnan(f)) {
            cr_assert(isnan(got), "NaN %08x rounded to %a", b, (double)got);
            continue;
        }
        double want = rounded(RECUR_DTYPE_F16, f);
        cr_assert(got == want && signbit(got) == signbit(f), "recur_round_f16(%a) = %a, expected %a", (double)f,
                  (double)got, want);
        checked++;
    }
    cr_log_info("%ld values checked", checked);
}

/* One pack of op(B), then products for several row counts (the per-step
 * product of a time loop whose batch shrinks), beta 0 over NaN and beta 1. */
static void pack_cases(recur_dtype prec, int threads) {
    recur_ctx *ctx = open_cpu(threads);
    test_rng rng = {99 + (uint64_t)prec};
    /* trans, K, N: the float32 pack multiplies products of 2^18 multiply-adds and more itself, smaller ones
     * read B (backends/cpu/matmul.c), so both kinds come up */
    const int shapes[][3] = {{0, 40, 200}, {1, 33, 70}, {0, 5, 3}, {1, 256, 96}, {1, 129, 300}, {0, 300, 130}};
    const int Ms[] = {32, 7, 1, 32, 20};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int tb = shapes[s][0], K = shapes[s][1], N = shapes[s][2], ldb = (tb ? K : N) + 3, lda = K + 2, ldc = N + 1;
        size_t nb = (size_t)(tb ? N : K) * ldb;
        float *B = test_floats(nb), *B0 = test_floats(nb);
        for (size_t i = 0; i < nb; i++) B0[i] = B[i] = (float)test_uniform(&rng, -1, 1);
        void *pk = NULL;
        OK(ctx, recur_be_pack(&ctx->be, prec, tb, K, N, host(B), ldb, &pk));
        cr_assert_not_null(pk);
        for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++) {
            int M = Ms[m];
            float beta = m % 2 ? 1.0f : 0.0f;
            float *A = test_floats((size_t)M * lda), *C = test_floats((size_t)M * ldc), *C0 = test_floats((size_t)M * ldc);
            for (size_t i = 0; i < (size_t)M * lda; i++) A[i] = (float)test_uniform(&rng, -2, 2);
            for (size_t i = 0; i < (size_t)M * ldc; i++)
                C[i] = C0[i] = beta == 0.0f && i % (size_t)ldc < (size_t)N ? NAN : (float)test_uniform(&rng, -1, 1);
            OK(ctx, recur_be_gemm_packed(&ctx->be, M, host(A), lda, pk, beta, host(C), ldc));
            struct gcase g = {0, tb, M, N, K, 0, 1.0f, beta};
            char what[128];
            snprintf(what, sizeof what, "%s pack %c K=%d N=%d, M=%d beta %g, %d threads", recur_dtype_name(prec),
                     tb ? 'T' : 'N', K, N, M, beta, threads);
            expect(what, &g, prec, A, lda, B0, ldb, C0, C, ldc);
            free(A), free(C), free(C0);
        }
        recur_be_unpack(&ctx->be, pk);
        free(B), free(B0);
    }
    recur_ctx_free(ctx);
}

Test(precision, packed_f32) {
    pack_cases(RECUR_DTYPE_F32, 1);
    pack_cases(RECUR_DTYPE_F32, 2);
}
Test(precision, packed_bf16) {
    pack_cases(RECUR_DTYPE_BF16, 1);
    pack_cases(RECUR_DTYPE_BF16, 2);
}
Test(precision, packed_f16) {
    pack_cases(RECUR_DTYPE_F16, 1);
    pack_cases(RECUR_DTYPE_F16, 2);
}

/* Float32 packs made with RECUR_CPU_SGEMM=plain: B itself, multiplied by
 * dnnl_sgemm (the default packs them with oneDNN's packed sgemm where the
 * library has it, as the test above). */
Test(precision, packed_f32_plain) {
    setenv("RECUR_CPU_SGEMM", "plain", 1);
    pack_cases(RECUR_DTYPE_F32, 1);
    pack_cases(RECUR_DTYPE_F32, 2);
    unsetenv("RECUR_CPU_SGEMM");
}

/* A pack made again in place (repack, a new weight version) multiplies by B's new values. */
static void repack_case(recur_dtype prec, int threads) {
    recur_ctx *ctx = open_cpu(threads);
    test_rng rng = {17 + (uint64_t)prec};
    enum { K = 70, N = 200, M = 33, LDB = N + 5 }; /* past 2^18 multiply-adds: the f32 pack multiplies itself */
    float *B = test_floats((size_t)K * LDB), *A = test_floats((size_t)M * K), *C = test_floats((size_t)M * N);
    float *C0 = test_floats((size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)test_uniform(&rng, -2, 2);
    void *pk = NULL;
    for (int version = 0; version < 3; version++) {
        for (size_t i = 0; i < (size_t)K * LDB; i++) B[i] = (float)test_uniform(&rng, -1, 1);
        if (version == 0) OK(ctx, recur_be_pack(&ctx->be, prec, 0, K, N, host(B), LDB, &pk));
        else OK(ctx, recur_be_repack(&ctx->be, pk));
        for (size_t i = 0; i < (size_t)M * N; i++) C[i] = C0[i] = NAN;
        OK(ctx, recur_be_gemm_packed(&ctx->be, M, host(A), K, pk, 0.0f, host(C), N));
        struct gcase g = {0, 0, M, N, K, 0, 1.0f, 0.0f};
        char what[96];
        snprintf(what, sizeof what, "%s pack, version %d, %d threads", recur_dtype_name(prec), version, threads);
        expect(what, &g, prec, A, K, B, LDB, C0, C, N);
    }
    recur_be_unpack(&ctx->be, pk);
    free(B), free(A), free(C), free(C0);
    recur_ctx_free(ctx);
}

Test(precision, repack_takes_the_new_values) {
    for (int threads = 1; threads <= 2; threads++) {
        repack_case(RECUR_DTYPE_F32, threads);
        repack_case(RECUR_DTYPE_BF16, threads);
        repack_case(RECUR_DTYPE_F16, threads);
    }
}

/* A bf16 or f16 pack is a copy: B rewritten after packing leaves its products alone. */
static void pack_is_a_copy(recur_dtype prec) {
    recur_ctx *ctx = open_cpu(2);
    enum { K = 24, N = 130, M = 5 };
    float B[K * N], A[M * K], C1[M * N], C2[M * N];
    test_rng rng = {5};
    for (int i = 0; i < K * N; i++) B[i] = (float)test_uniform(&rng, -1, 1);
    for (int i = 0; i < M * K; i++) A[i] = (float)test_uniform(&rng, -1, 1);
    void *pk = NULL;
    OK(ctx, recur_be_pack(&ctx->be, prec, 0, K, N, host(B), N, &pk));
    OK(ctx, recur_be_gemm_packed(&ctx->be, M, host(A), K, pk, 0.0f, host(C1), N));
    for (int i = 0; i < K * N; i++) B[i] = 100.0f;
    OK(ctx, recur_be_gemm_packed(&ctx->be, M, host(A), K, pk, 0.0f, host(C2), N));
    cr_assert(!memcmp(C1, C2, sizeof C1), "the %s pack read B after packing", recur_dtype_name(prec));
    recur_be_unpack(&ctx->be, pk);
    recur_ctx_free(ctx);
}

Test(precision, packs_are_copies) {
    pack_is_a_copy(RECUR_DTYPE_BF16);
    pack_is_a_copy(RECUR_DTYPE_F16);
}

/* Every parameter of m uniform in [-r, r]; returns their floats. */
static size_t fill_params(recur_ctx *ctx, recur_model *m, test_rng *rng, double r) {
    size_t n = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info pi;
        OK(ctx, recur_model_param_info(m, i, &pi));
        float *v = test_floats(pi.count);
        for (size_t k = 0; k < pi.count; k++) v[k] = (float)test_uniform(rng, -r, r);
        OK(ctx, recur_model_param_set(m, pi.name, v, pi.count));
        free(v);
        n += pi.count;
    }
    return n;
}

Test(precision, model_precisions_and_f32_restored) {
    recur_ctx *ctx = open_cpu(2);
    recur_model_desc d = {.cell = "lstm", .input_size = 6, .hidden_size = 40, .num_layers = 2,
                          .direction = RECUR_DIR_BIDI_CONCAT};
    recur_model *m;
    OK(ctx, recur_model_create(ctx, &d, &m));
    test_rng rng = {11};
    fill_params(ctx, m, &rng, 0.3);
    enum { T = 9, N = 3 };
    int O = recur_model_output_size(m);
    size_t ny = (size_t)T * N * O;
    float *x = test_floats((size_t)T * N * 6), *y32 = test_floats(ny), *y16 = test_floats(ny), *yh = test_floats(ny),
          *y = test_floats(ny);
    for (size_t i = 0; i < (size_t)T * N * 6; i++) x[i] = (float)test_uniform(&rng, -1, 1);
    recur_model_io io = {.T = T, .N = N, .x = x, .y = y32};
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));

    /* not a recur_dtype: refused by the model and by the dispatch, nothing changed */
    const recur_dtype bad[] = {(recur_dtype)3, (recur_dtype)7, (recur_dtype)-1, (recur_dtype)40};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(recur_model_set_precision(m, bad[i]), RECUR_ERR_ARG, "type %d", (int)bad[i]);
        cr_assert_eq(recur_model_precision(m), RECUR_DTYPE_F32);
        float a = 1, c = 0;
        cr_assert_eq(recur_be_gemm_prec(&ctx->be, bad[i], 0, 0, 1, 1, 1, 1.0f, host(&a), 1, host(&a), 1, 0.0f, host(&c),
                                        1),
                     RECUR_ERR_UNSUPPORTED, "type %d", (int)bad[i]);
        cr_assert(strstr(recur_ctx_error(ctx), "not a recur_dtype"), "%s", recur_ctx_error(ctx));
        void *pk = (void *)1;
        cr_assert_eq(recur_be_pack(&ctx->be, bad[i], 0, 1, 1, host(&a), 1, &pk), RECUR_ERR_UNSUPPORTED);
        cr_assert_null(pk);
    }

    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_F16));
    cr_assert_eq(recur_model_precision(m), RECUR_DTYPE_F16);
    io.y = yh;
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_BF16));
    io.y = y16;
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    double diff = 0, diffh = 0;
    for (size_t i = 0; i < ny; i++) {
        diff = fmax(diff, fabs(y16[i] - y32[i]));
        diffh = fmax(diffh, fabs(yh[i] - y32[i]));
    }
    cr_assert(diff > 1e-5 && diff < 3e-2, "bf16 outputs differ from f32's by %.3g", diff);
    /* f16 keeps 3 more bits than bf16: several times nearer f32 */
    cr_assert(diffh > 1e-6 && diffh < diff / 3, "f16 outputs differ from f32's by %.3g (bf16's by %.3g)", diffh, diff);

    /* weights changed while in bf16: the packs follow them */
    recur_param_info pi;
    OK(ctx, recur_model_param_info(m, 1, &pi)); /* weight_hh_l0 */
    float *w = test_floats(pi.count);
    OK(ctx, recur_model_param_get(m, pi.name, w, pi.count));
    for (size_t k = 0; k < pi.count; k++) w[k] *= 0.5f;
    OK(ctx, recur_model_param_set(m, pi.name, w, pi.count));
    io.y = y;
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    cr_assert(memcmp(y, y16, ny * sizeof(float)), "new weights, the old packs' outputs");
    for (size_t k = 0; k < pi.count; k++) w[k] *= 2.0f;
    OK(ctx, recur_model_param_set(m, pi.name, w, pi.count));
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    cr_assert(!memcmp(y, y16, ny * sizeof(float)), "the same weights, bf16 outputs not repeated");

    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_F32));
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    cr_assert(!memcmp(y, y32, ny * sizeof(float)), "back to f32: not f32's outputs bit for bit");
    free(x), free(y32), free(y16), free(yh), free(y), free(w);
    recur_ctx_free(ctx);
}

/* Every cell and projection in bf16 or f16 close to the same model in f32,
 * and not equal to it (the model tests check the built-in cells against a
 * rounded reference; this covers the plugin cells' paths and W_hr's
 * products). */
static void near_f32(recur_dtype prec, const char *cell, int proj) {
    recur_ctx *ctx = open_cpu(2);
    recur_model_desc d = {.cell = cell, .input_size = 5, .hidden_size = 24, .num_layers = 2,
                          .direction = RECUR_DIR_BIDI_CONCAT, .proj_size = proj};
    recur_model *m;
    OK(ctx, recur_model_create(ctx, &d, &m));
    test_rng rng = {31};
    size_t nparam = recur_model_param_count(m), nw = fill_params(ctx, m, &rng, 0.4);
    enum { T = 7, N = 4 };
    static const int lengths[N] = {7, 3, 6, 1};
    int O = recur_model_output_size(m);
    size_t nx = (size_t)T * N * 5, ny = (size_t)T * N * O;
    float *x = test_floats(nx), *dy = test_floats(ny), *y[2], *dx[2], *dw[2];
    for (size_t i = 0; i < nx; i++) x[i] = (float)test_uniform(&rng, -1, 1);
    for (size_t i = 0; i < ny; i++) dy[i] = (float)test_uniform(&rng, -1, 1);
    for (int p = 0; p < 2; p++) {
        y[p] = test_floats(ny), dx[p] = test_floats(nx), dw[p] = test_floats(nw);
        OK(ctx, recur_model_set_precision(m, p ? prec : RECUR_DTYPE_F32));
        recur_model_io io = {.T = T, .N = N, .lengths = lengths, .x = x, .y = y[p]};
        recur_model_grad_io g = {.dy = dy, .dx = dx[p]};
        OK(ctx, recur_model_forward(m, RECUR_MODE_TRAINING, &io));
        OK(ctx, recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE));
        for (size_t i = 0, at = 0; i < nparam; i++) {
            recur_param_info pi;
            OK(ctx, recur_model_param_info(m, i, &pi));
            OK(ctx, recur_model_grad_get(m, pi.name, dw[p] + at, pi.count));
            at += pi.count;
        }
    }
    const struct {
        const char *name;
        float **v;
        size_t n;
    } arrays[] = {{"y", y, ny}, {"dx", dx, nx}, {"dw", dw, nw}};
    for (size_t a = 0; a < 3; a++) {
        double scale = 0, diff = 0;
        for (size_t i = 0; i < arrays[a].n; i++) {
            scale = fmax(scale, fabs(arrays[a].v[0][i]));
            diff = fmax(diff, fabs(arrays[a].v[1][i] - arrays[a].v[0][i]));
        }
        /* bf16's operands are 2^-9 off each, f16's 2^-12; a few products
         * deep, 2^-5 (bf16) or 2^-8 (f16) of the scale is far */
        double far = prec == RECUR_DTYPE_F16 ? scale / 256 : scale / 32;
        cr_assert(diff <= far && diff > scale * 1e-7, "%s proj %d: %s %s differs from f32's by %.3g (scale %.3g)", cell,
                  proj, recur_dtype_name(prec), arrays[a].name, diff, scale);
    }
    for (int p = 0; p < 2; p++) free(y[p]), free(dx[p]), free(dw[p]);
    free(x), free(dy);
    recur_ctx_free(ctx);
}

static void cells_near_f32(recur_dtype prec) {
    near_f32(prec, "lstm", 7);
    near_f32(prec, "lstm-peephole", 5);
    near_f32(prec, "lstm-ln", 0);
    near_f32(prec, "gru-ln", 0);
    near_f32(prec, "gru-simple", 0);
    near_f32(prec, "indrnn", 0);
}

Test(precision, cells_and_projection_in_bf16) { cells_near_f32(RECUR_DTYPE_BF16); }
Test(precision, cells_and_projection_in_f16) { cells_near_f32(RECUR_DTYPE_F16); }

/* A net's head products follow its model's precision: the logits in bf16
 * and f16 are the bias plus the rounded model outputs times the rounded
 * head weights, summed in double here, and not the unrounded sum. */
static void head_in(recur_dtype prec) {
    recur_ctx *ctx = open_cpu(2);
    enum { T = 5, N = 3, I = 4, H = 6, K = 7 };
    recur_net_desc d = {.model = {.cell = "gru", .input_size = I, .hidden_size = H, .num_layers = 1},
                        .input = RECUR_INPUT_VECTOR,
                        .head = RECUR_HEAD_ALL, .output_size = K};
    recur_net *net;
    OK(ctx, recur_net_create(ctx, &d, &net));
    OK(ctx, recur_net_init(net, RECUR_INIT_UNIFORM, 3));
    recur_model *m = recur_net_model(net);
    OK(ctx, recur_model_set_precision(m, prec));
    test_rng rng = {21};
    float x[T * N * I], y[T * N * H], z[T * N * K], W[K * H], b[K];
    for (int i = 0; i < T * N * I; i++) x[i] = (float)test_uniform(&rng, -1, 1);
    recur_net_batch nb = {.T = T, .N = N, .x = x, .logits = z};
    OK(ctx, recur_net_forward(net, RECUR_MODE_INFERENCE, &nb, NULL, NULL));
    recur_model_io io = {.T = T, .N = N, .x = x, .y = y};
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io)); /* the same model: the head's input */
    OK(ctx, recur_net_param_get(net, "head.weight", W, K * H));
    OK(ctx, recur_net_param_get(net, "head.bias", b, K));
    double off_rounded = 0, off_exact = 0;
    for (int r = 0; r < T * N; r++)
        for (int k = 0; k < K; k++) {
            double sr = b[k], se = b[k];
            for (int j = 0; j < H; j++) {
                sr += rounded(prec, y[r * H + j]) * rounded(prec, W[k * H + j]);
                se += (double)y[r * H + j] * W[k * H + j];
            }
            off_rounded = fmax(off_rounded, fabs(z[r * K + k] - sr));
            off_exact = fmax(off_exact, fabs(z[r * K + k] - se));
        }
    cr_assert(off_rounded < 1e-6 && off_exact > 8 * off_rounded,
              "%s head: the logits are %.3g from the rounded product and %.3g from the exact one",
              recur_dtype_name(prec), off_rounded, off_exact);
    recur_ctx_free(ctx);
}

Test(precision, net_head_follows_the_model) {
    head_in(RECUR_DTYPE_BF16);
    head_in(RECUR_DTYPE_F16);
}
