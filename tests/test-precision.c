/*
 * test-precision.c: the precision of the products on the CPU backend
 * (backends/cpu/matmul.c) and its public calls.
 *
 *   - recur_dtype_name / recur_dtype_parse, and bad values refused naming them;
 *   - recur_ctx_precisions: f32 and bf16 (native exactly when oneDNN has a
 *     bf16 brgemm here; RECUR_CPU_BF16=emulate makes it emulated: the
 *     'precision-emulated' run);
 *   - recur_be_gemm_prec(BF16) in the four transpositions, odd sizes,
 *     leading dimensions past the columns, alpha and beta, on 1 and 2
 *     threads, against a double loop over the bf16-rounded operands (ties
 *     to even: truncation is 2^-9 off, far past the tolerance);
 *   - packed weights (pack, gemm_packed) in f32 and bf16, one pack reused
 *     for several row counts, beta 0 (C's NaN overwritten) and 1, against
 *     the same loop; the pack is a copy (B changed afterwards does not
 *     change its products);
 *   - f16 refused by recur_model_set_precision, naming it, the model left
 *     in its precision; back to f32 gives f32's bits again; new weights
 *     reach the packs;
 *   - the plugin cells and the projection in bf16 (forward and backward,
 *     2 layers, both directions, lengths) near f32's results, not equal.
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
#include "recur/recur.h"

static void check(recur_ctx *ctx, recur_status st, const char *call, int line) {
    cr_assert_eq(st, RECUR_OK, "line %d: %s: %s: %s", line, call, recur_status_str(st), recur_ctx_error(ctx));
}
#define OK(ctx, call) check((ctx), (call), #call, __LINE__)

static recur_ctx *open_cpu(int threads) {
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    OK(ctx, recur_ctx_set_threads(ctx, threads));
    return ctx;
}

/* The host's bf16 rounding, written apart from the backend's: to nearest, ties to even. */
static double bf16(float f) {
    if (f == 0.0f || !isfinite(f)) return f;
    int e;
    double m = frexp((double)f, &e);
    return ldexp(nearbyint(ldexp(m, 8)), e - 8);
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

Test(precision, bad_cpu_bf16_setting_is_named) {
    const char *was = getenv("RECUR_CPU_BF16");
    char *keep = was ? strdup(was) : NULL;
    setenv("RECUR_CPU_BF16", "fast", 1);
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_ERR_ARG);
    cr_assert_null(ctx);
    cr_assert(strstr(recur_last_error(), "RECUR_CPU_BF16='fast'"), "%s", recur_last_error());
    setenv("RECUR_CPU_BF16", "auto", 1);
    cr_assert_eq(recur_ctx_create(&ctx, "cpu"), RECUR_OK, "%s", recur_last_error());
    recur_ctx_free(ctx);
    if (keep) setenv("RECUR_CPU_BF16", keep, 1);
    else unsetenv("RECUR_CPU_BF16");
    free(keep);
}

Test(precision, cpu_lists_bf16) {
    recur_ctx *ctx = open_cpu(1);
    unsigned native = 0, all = recur_ctx_precisions(ctx, &native);
    cr_assert_eq(all, 1u << RECUR_DTYPE_F32 | 1u << RECUR_DTYPE_BF16, "precisions 0x%x", all);
    cr_assert(native & 1u << RECUR_DTYPE_F32);
    const char *env = getenv("RECUR_CPU_BF16");
    if (env && !strcmp(env, "emulate")) cr_assert_eq(native, 1u << RECUR_DTYPE_F32, "native 0x%x", native);
    cr_log_info("bf16 on this CPU: %s", native & 1u << RECUR_DTYPE_BF16 ? "native" : "emulated");
    recur_ctx_free(ctx);
}

struct gcase {
    int ta, tb, M, N, K, pad;
    float alpha, beta;
};

/* C (M x N, ldc) against alpha op(A) op(B) + beta C0 over bf16 (or exact) operands. */
static void expect(const char *what, const struct gcase *g, int round, const float *A, int lda, const float *B,
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
                double p = round ? bf16(a) * bf16(b) : (double)a * b;
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

static void gemm_cases(int threads) {
    recur_ctx *ctx = open_cpu(threads);
    test_rng rng = {7 + (uint64_t)threads};
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
        snprintf(what, sizeof what, "bf16 gemm %c%c M=%d N=%d K=%d pad %d, %d threads", g->ta ? 'T' : 'N',
                 g->tb ? 'T' : 'N', g->M, g->N, g->K, g->pad, threads);
        OK(ctx, recur_be_gemm_prec(&ctx->be, RECUR_DTYPE_BF16, g->ta, g->tb, g->M, g->N, g->K, g->alpha, host(A), lda,
                                   host(B), ldb, g->beta, host(C), ldc));
        expect(what, g, 1, A, lda, B, ldb, C0, C, ldc);
        cr_assert(!memcmp(A, A0, na * sizeof(float)) && !memcmp(B, B0, nb * sizeof(float)),
                  "%s: an operand was changed", what);
        free(A), free(B), free(C0), free(C), free(A0), free(B0);
    }
    recur_ctx_free(ctx);
}

Test(precision, bf16_gemm_one_thread) { gemm_cases(1); }
Test(precision, bf16_gemm_two_threads) { gemm_cases(2); }

/* One pack of op(B), then products for several row counts (the per-step
 * product of a time loop whose batch shrinks), beta 0 over NaN and beta 1. */
static void pack_cases(recur_dtype prec, int threads) {
    recur_ctx *ctx = open_cpu(threads);
    test_rng rng = {99 + (uint64_t)prec};
    const int shapes[][3] = {{0, 40, 200}, {1, 33, 70}, {0, 5, 3}, {1, 256, 96}}; /* trans, K, N */
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
            expect(what, &g, prec == RECUR_DTYPE_BF16, A, lda, B0, ldb, C0, C, ldc);
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

/* The bf16 pack is a copy: B rewritten after packing leaves its products alone. */
Test(precision, bf16_pack_is_a_copy) {
    recur_ctx *ctx = open_cpu(2);
    enum { K = 24, N = 130, M = 5 };
    float B[K * N], A[M * K], C1[M * N], C2[M * N];
    test_rng rng = {5};
    for (int i = 0; i < K * N; i++) B[i] = (float)test_uniform(&rng, -1, 1);
    for (int i = 0; i < M * K; i++) A[i] = (float)test_uniform(&rng, -1, 1);
    void *pk = NULL;
    OK(ctx, recur_be_pack(&ctx->be, RECUR_DTYPE_BF16, 0, K, N, host(B), N, &pk));
    OK(ctx, recur_be_gemm_packed(&ctx->be, M, host(A), K, pk, 0.0f, host(C1), N));
    for (int i = 0; i < K * N; i++) B[i] = 100.0f;
    OK(ctx, recur_be_gemm_packed(&ctx->be, M, host(A), K, pk, 0.0f, host(C2), N));
    cr_assert(!memcmp(C1, C2, sizeof C1), "the pack read B after packing");
    recur_be_unpack(&ctx->be, pk);
    recur_ctx_free(ctx);
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

Test(precision, model_f16_refused_and_f32_restored) {
    recur_ctx *ctx = open_cpu(2);
    recur_model_desc d = {.cell = "lstm", .input_size = 6, .hidden_size = 40, .num_layers = 2,
                          .direction = RECUR_DIR_BIDI_CONCAT};
    recur_model *m;
    OK(ctx, recur_model_create(ctx, &d, &m));
    test_rng rng = {11};
    fill_params(ctx, m, &rng, 0.3);
    enum { T = 9, N = 3 };
    int O = recur_model_output_size(m);
    float *x = test_floats((size_t)T * N * 6), *y32 = test_floats((size_t)T * N * O), *y16 = test_floats((size_t)T * N * O),
          *y = test_floats((size_t)T * N * O);
    for (size_t i = 0; i < (size_t)T * N * 6; i++) x[i] = (float)test_uniform(&rng, -1, 1);
    recur_model_io io = {.T = T, .N = N, .x = x, .y = y32};
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));

    cr_assert_eq(recur_model_set_precision(m, RECUR_DTYPE_F16), RECUR_ERR_UNSUPPORTED);
    cr_assert(strstr(recur_ctx_error(ctx), "f16"), "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_set_precision(m, (recur_dtype)7), RECUR_ERR_ARG);
    cr_assert_eq(recur_model_precision(m), RECUR_DTYPE_F32);

    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_BF16));
    io.y = y16;
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    double diff = 0;
    for (size_t i = 0; i < (size_t)T * N * O; i++) diff = fmax(diff, fabs(y16[i] - y32[i]));
    cr_assert(diff > 1e-5 && diff < 3e-2, "bf16 outputs differ from f32's by %.3g", diff);

    /* weights changed while in bf16: the packs follow them */
    recur_param_info pi;
    OK(ctx, recur_model_param_info(m, 1, &pi)); /* weight_hh_l0 */
    float *w = test_floats(pi.count);
    OK(ctx, recur_model_param_get(m, pi.name, w, pi.count));
    for (size_t k = 0; k < pi.count; k++) w[k] *= 0.5f;
    OK(ctx, recur_model_param_set(m, pi.name, w, pi.count));
    io.y = y;
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    cr_assert(memcmp(y, y16, (size_t)T * N * O * sizeof(float)), "new weights, the old packs' outputs");
    for (size_t k = 0; k < pi.count; k++) w[k] *= 2.0f;
    OK(ctx, recur_model_param_set(m, pi.name, w, pi.count));
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    cr_assert(!memcmp(y, y16, (size_t)T * N * O * sizeof(float)), "the same weights, bf16 outputs not repeated");

    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_F32));
    OK(ctx, recur_model_forward(m, RECUR_MODE_INFERENCE, &io));
    cr_assert(!memcmp(y, y32, (size_t)T * N * O * sizeof(float)), "back to f32: not f32's outputs bit for bit");
    free(x), free(y32), free(y16), free(y), free(w);
    recur_ctx_free(ctx);
}

/* Every cell and projection in bf16 close to the same model in f32, and not
 * equal to it (the model tests check the built-in cells against a bf16
 * reference; this covers the plugin cells' paths and W_hr's products). */
static void bf16_near_f32(const char *cell, int proj) {
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
        OK(ctx, recur_model_set_precision(m, p ? RECUR_DTYPE_BF16 : RECUR_DTYPE_F32));
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
        /* bf16's operands are 2^-9 off each; a few products deep, 2^-5 of the scale is far */
        cr_assert(diff <= scale / 32 && diff > scale * 1e-6, "%s proj %d: bf16 %s differs from f32's by %.3g (scale %.3g)",
                  cell, proj, arrays[a].name, diff, scale);
    }
    for (int p = 0; p < 2; p++) free(y[p]), free(dx[p]), free(dw[p]);
    free(x), free(dy);
    recur_ctx_free(ctx);
}

Test(precision, cells_and_projection_in_bf16) {
    bf16_near_f32("lstm", 7);
    bf16_near_f32("lstm-peephole", 5);
    bf16_near_f32("lstm-ln", 0);
    bf16_near_f32("gru-ln", 0);
    bf16_near_f32("gru-simple", 0);
    bf16_near_f32("indrnn", 0);
}
