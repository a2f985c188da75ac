/*
 * test-precision-opencl.c: bf16 products on the OpenCL backend, emulated
 * (backends/opencl/opencl.c: cl_gemm rounds op(A) and op(B) into scratch
 * copies, kernels/shared.cl: recur_round_bf16, then CLBlastSgemm).
 *
 *   - recur_ctx_precisions lists f32 and bf16, bf16 not as native;
 *   - the rounding kernel bit for bit (ties to even, Inf, NaN, overflow to
 *     Inf, subnormals), read from the backend's scratch buffer;
 *   - recur_be_gemm_prec(BF16) in all four transpositions, odd sizes,
 *     leading dimensions past the columns and offsets, against a double
 *     loop over the bf16-rounded operands (truncation or no rounding is
 *     2^-9 off, far past the 1e-5 tolerance); the operands unchanged, C's
 *     padding untouched;
 *   - operands that bf16 holds exactly: the F32 result bit for bit;
 *   - a 2-layer bidirectional LSTM over unsorted lengths, forward and
 *     backward, in bf16 against the same model in f32: within bf16's
 *     rounding bound, and not equal to it (the rounding happened);
 *   - f16 refused (RECUR_ERR_UNSUPPORTED, naming f16) by the dispatch
 *     wrapper, the gemm slot itself and recur_model_set_precision.
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

static void check(recur_ctx *ctx, recur_status st, const char *call, int line) {
    cr_assert_eq(st, RECUR_OK, "line %d: %s: %s: %s", line, call, recur_status_str(st), recur_ctx_error(ctx));
}
#define OK(ctx, call) check((ctx), (call), #call, __LINE__)

static recur_ctx *open_cl(void) {
    test_need_device("opencl");
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "opencl"), RECUR_OK, "%s", recur_last_error());
    cr_assert_str_eq(ctx->be.iface->name, "opencl");
    cr_log_info("on %s (%s)", ctx->be.info.selector, ctx->be.info.name);
    return ctx;
}

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

Test(precision, bf16_listed_as_emulated) {
    recur_ctx *ctx = open_cl();
    unsigned native = 0xffu, all = recur_ctx_precisions(ctx, &native);
    cr_assert_eq(all, 1u << RECUR_DTYPE_F32 | 1u << RECUR_DTYPE_BF16, "precisions 0x%x", all);
    cr_assert_eq(native, 1u << RECUR_DTYPE_F32, "native 0x%x: bf16 is emulated on OpenCL", native);
    recur_ctx_free(ctx);
}

/*
 * The rounding kernel: an M x 1 A (lda 3, at an offset) times B = [1]: the
 * backend's scratch copy of A is bf16(A) bit for bit, and so is C where
 * the product is a normal number or Inf (1 * x is exact; a device may
 * flush subnormal products and make NaN payloads its own).
 */
Test(precision, rounding_bit_for_bit) {
    recur_ctx *ctx = open_cl();
    static const uint32_t cases[][2] = {
        {0x3f800000u, 0x3f800000u}, /* 1 */
        {0x3f808000u, 0x3f800000u}, /* 1 + 2^-8: the tie between 1 and 1 + 2^-7 goes to even 1 */
        {0x3f818000u, 0x3f820000u}, /* 1 + 3*2^-8: the tie between 1 + 2^-7 and 1 + 2^-6 goes to even 1 + 2^-6 */
        {0x3f808001u, 0x3f810000u}, /* just past the tie: up, to 1 + 2^-7 */
        {0x3f817fffu, 0x3f810000u}, /* just below the next tie: down, to 1 + 2^-7 */
        {0xbf818000u, 0xbf820000u}, /* -(1 + 3*2^-8): the same, negative */
        {0xbf808000u, 0xbf800000u}, /* -(1 + 2^-8) */
        {0x3f7fffffu, 0x3f800000u}, /* 1 - 2^-24 rounds up into the next binade */
        {0x7f7fffffu, 0x7f800000u}, /* the largest float: past bf16's largest, Inf (as torch) */
        {0x7f7f7fffu, 0x7f7f0000u}, /* bf16's largest stays */
        {0x7f800000u, 0x7f800000u}, /* Inf */
        {0xff800000u, 0xff800000u}, /* -Inf */
        {0x00000000u, 0x00000000u}, /* 0 */
        {0x80000000u, 0x80000000u}, /* -0 */
        {0x00008000u, 0x00000000u}, /* a subnormal tie, to even 0 */
        {0x00018000u, 0x00020000u}, /* a subnormal tie, to even 2 */
        {0x7fc00000u, 0x7fc00000u}, /* quiet NaN */
        {0x7f800001u, 0x7fc00000u}, /* signalling NaN, payload in the low half: quiet, never Inf */
        {0xffa12345u, 0xffe10000u}, /* negative NaN: sign and top payload kept */
    };
    enum { M = sizeof cases / sizeof cases[0], LDA = 3, OFF = 2 };
    float a[OFF + M * LDA], one = 1.0f, c[M], copy[M];
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) a[i] = 1000.0f + (float)i; /* around the column */
    for (int i = 0; i < M; i++) a[OFF + i * LDA] = from_bits(cases[i][0]);
    for (int i = 0; i < M; i++) c[i] = 0.0f;
    struct recur_mem dA = put(ctx, a, sizeof a / sizeof a[0]), dB = put(ctx, &one, 1), dC = put(ctx, c, M);
    OK(ctx, recur_be_gemm_prec(&ctx->be, RECUR_DTYPE_BF16, 0, 0, M, 1, 1, 1.0f, recur_mem_at(dA, OFF), LDA, dB, 1,
                               0.0f, dC, 1));
    get(ctx, c, dC, M);
    struct cl_dev *d = ctx->be.context;
    cr_assert_not_null(d->scratch[0], "no scratch copy of A");
    cr_assert_geq(d->scratch_bytes[0], M * sizeof(float));
    get(ctx, copy, (struct recur_mem){d->scratch[0], 0}, M);
    for (int i = 0; i < M; i++) {
        uint32_t want = cases[i][1];
        cr_assert_eq(bits(copy[i]), want, "bf16(0x%08x) = 0x%08x in the scratch copy, expected 0x%08x", cases[i][0],
                     bits(copy[i]), want);
        cr_assert_eq(bits(bf16(from_bits(cases[i][0]))), want, "the test's own bf16(0x%08x)", cases[i][0]);
        float w = from_bits(want);
        if (isnan(w))
            cr_assert(isnan(c[i]), "C[%d] = %g for NaN", i, c[i]);
        else if (isinf(w) || fabsf(w) >= 0x1p-126f)
            cr_assert_eq(bits(c[i]), want, "C[%d] = 0x%08x for 0x%08x, expected 0x%08x", i, bits(c[i]), cases[i][0],
                         want);
    }
    recur_be_free(&ctx->be, &dA);
    recur_be_free(&ctx->be, &dB);
    recur_be_free(&ctx->be, &dC);
    recur_ctx_free(ctx);
}

struct gemm_case {
    int ta, tb, M, N, K, pad_a, pad_b, pad_c, off;
    float alpha, beta;
};

/* A GEMM operand: U(-2, 2), or exact, k / scale with an integer |k| <= 16. */
static float draw(test_rng *rng, int exact, int scale) {
    return exact ? (float)(int)test_uniform(rng, -16, 17) / (float)scale : (float)test_uniform(rng, -2, 2);
}

/* One BF16 GEMM against a double loop over bf16(A), bf16(B); exact: the
 * operands are bf16 values already (k/8, |k| <= 16), so every product and
 * sum is exact in float32, and C must equal the F32 GEMM's bit for bit. */
static void gemm_check(recur_ctx *ctx, const struct gemm_case *g, test_rng *rng, int exact) {
    struct recur_backend *be = &ctx->be;
    int rows_a = g->ta ? g->K : g->M, cols_a = g->ta ? g->M : g->K;
    int rows_b = g->tb ? g->N : g->K, cols_b = g->tb ? g->K : g->N;
    int lda = cols_a + g->pad_a, ldb = cols_b + g->pad_b, ldc = g->N + g->pad_c;
    size_t na = g->off + (size_t)rows_a * lda, nb = g->off + (size_t)rows_b * ldb, nc = g->off + (size_t)g->M * ldc;
    float *A = test_floats(na), *B = test_floats(nb), *C = test_floats(nc), *got = test_floats(nc),
          *back = test_floats(na + nb + nc);
    for (size_t i = 0; i < na; i++) A[i] = draw(rng, exact, 8);
    for (size_t i = 0; i < nb; i++) B[i] = draw(rng, exact, 8);
    for (size_t i = 0; i < nc; i++) C[i] = draw(rng, exact, 1);
    struct recur_mem dA = put(ctx, A, na), dB = put(ctx, B, nb), dC = put(ctx, C, nc);
    OK(ctx, recur_be_gemm_prec(be, RECUR_DTYPE_BF16, g->ta, g->tb, g->M, g->N, g->K, g->alpha,
                               recur_mem_at(dA, g->off), lda, recur_mem_at(dB, g->off), ldb, g->beta,
                               recur_mem_at(dC, g->off), ldc));
    get(ctx, got, dC, nc);
    char what[96];
    snprintf(what, sizeof what, "bf16 gemm %c%c M=%d N=%d K=%d lda=%d ldb=%d ldc=%d", g->ta ? 'T' : 'N',
             g->tb ? 'T' : 'N', g->M, g->N, g->K, lda, ldb, ldc);
    for (size_t i = 0; i < nc; i++) {
        size_t r = (i - g->off) / ldc, j = (i - g->off) % ldc;
        if (i < (size_t)g->off || j >= (size_t)g->N) {
            cr_assert_eq(bits(got[i]), bits(C[i]), "%s: C[%zu] outside op(A) op(B) was written", what, i);
            continue;
        }
        double s = 0, mag = 0;
        for (int k = 0; k < g->K; k++) {
            double a = bf16(g->ta ? A[g->off + (size_t)k * lda + r] : A[g->off + r * lda + k]);
            double b = bf16(g->tb ? B[g->off + j * ldb + k] : B[g->off + (size_t)k * ldb + j]);
            s += a * b;
            mag += fabs(a * b);
        }
        double want = g->alpha * s + g->beta * C[i];
        double tol = exact ? 0 : 1e-5 * (fabs(g->alpha) * mag + fabs(g->beta * C[i])) + 1e-7;
        cr_assert(fabs(got[i] - want) <= tol, "%s: C[%zu][%zu] = %.9g, expected %.9g (tolerance %.2g)", what, r, j,
                  got[i], want, tol);
    }
    /* the operands themselves are not rounded */
    get(ctx, back, dA, na);
    cr_assert(memcmp(back, A, na * sizeof(float)) == 0, "%s: A changed", what);
    get(ctx, back, dB, nb);
    cr_assert(memcmp(back, B, nb * sizeof(float)) == 0, "%s: B changed", what);
    if (exact) { /* the F32 GEMM's bits */
        OK(ctx, recur_be_write(be, dC, C, nc * sizeof(float)));
        OK(ctx, recur_be_gemm(be, g->ta, g->tb, g->M, g->N, g->K, g->alpha, recur_mem_at(dA, g->off), lda,
                              recur_mem_at(dB, g->off), ldb, g->beta, recur_mem_at(dC, g->off), ldc));
        get(ctx, back, dC, nc);
        cr_assert(memcmp(back, got, nc * sizeof(float)) == 0, "%s: bf16-exact operands, not the F32 result", what);
    }
    recur_be_free(be, &dA);
    recur_be_free(be, &dB);
    recur_be_free(be, &dC);
    free(A), free(B), free(C), free(got), free(back);
}

Test(precision, bf16_gemm_against_double_loop) {
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
    /* RECUR_TEST_TINY (Oclgrind): without the largest */
    const int tiny = getenv("RECUR_TEST_TINY") != NULL;
    test_rng rng = {42};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (tiny && cases[i].M > 100) continue;
        gemm_check(ctx, &cases[i], &rng, 0);
        gemm_check(ctx, &cases[i], &rng, 1);
    }
    recur_cl_stats_get(&s1);
    cr_assert_eq(s1.buffers, s0.buffers + 2, "live buffers %ld, expected %ld + the two scratch copies", s1.buffers,
                 s0.buffers);
    recur_ctx_free(ctx);
    recur_cl_stats_get(&s1);
    cr_assert_eq(s1.buffers, before.buffers, "the scratch copies outlive the context: %ld buffers, were %ld",
                 s1.buffers, before.buffers);
}

Test(precision, f16_refused) {
    recur_ctx *ctx = open_cl();
    struct recur_backend *be = &ctx->be;
    struct recur_mem m;
    OK(ctx, recur_be_alloc(be, 16 * sizeof(float), &m));
    OK(ctx, recur_be_fill(be, m, 1.0f, 16));
    recur_status st = recur_be_gemm_prec(be, RECUR_DTYPE_F16, 0, 0, 2, 2, 2, 1.0f, m, 2, m, 2, 0.0f,
                                         recur_mem_at(m, 8), 2);
    cr_assert_eq(st, RECUR_ERR_UNSUPPORTED, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    cr_assert(strstr(recur_ctx_error(ctx), "f16"), "%s", recur_ctx_error(ctx));
    /* the slot itself, past the wrapper: the device and the precision named */
    st = be->iface->gemm(be, RECUR_DTYPE_F16, 0, 0, 2, 2, 2, 1.0f, m, 2, m, 2, 0.0f, recur_mem_at(m, 8), 2);
    cr_assert_eq(st, RECUR_ERR_UNSUPPORTED, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    cr_assert(strstr(recur_ctx_error(ctx), "no f16 products") && strstr(recur_ctx_error(ctx), be->info.selector),
              "%s", recur_ctx_error(ctx));
    recur_be_free(be, &m);
    recur_model_desc desc = {.cell = "lstm", .input_size = 3, .hidden_size = 4, .num_layers = 1};
    recur_model *model = NULL;
    OK(ctx, recur_model_create(ctx, &desc, &model));
    st = recur_model_set_precision(model, RECUR_DTYPE_F16);
    cr_assert_eq(st, RECUR_ERR_UNSUPPORTED, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    cr_assert(strstr(recur_ctx_error(ctx), "f16"), "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_precision(model), RECUR_DTYPE_F32);
    OK(ctx, recur_model_set_precision(model, RECUR_DTYPE_BF16));
    cr_assert_eq(recur_model_precision(model), RECUR_DTYPE_BF16);
    recur_model_free(model);
    recur_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* a model in bf16 against the same model in f32                            */

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
 * bf16 against f32, array by array. One product sum y = sum_k a_k b_k with
 * operands rounded to bf16 (relative error at most u = 2^-9 each) is off by
 * at most (2u + u^2) sum_k |a_k b_k|; the cells' functions (sigmoid, tanh,
 * products of values below 1) do not enlarge errors much over 6 steps and 2
 * layers, so each array stays within 2^-5 of its largest magnitude (seen
 * on PoCL: 2^-10 to 2^-8). And it is not f32: rounding moves every array by
 * more than 2^-14 of its largest magnitude (f32 sums in another order move
 * it by ~2^-23), which an implementation that forgot to round fails.
 * (Truncation instead of rounding stays within the bound here; the GEMM
 * test above tells it apart, to 1e-5.)
 */
static void compare(const char *what, const float *b16, const float *f32, size_t n) {
    double big = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        big = fmax(big, fabs(f32[i]));
        cr_assert(isfinite(b16[i]), "%s[%zu] = %g in bf16", what, i, b16[i]);
        diff = fmax(diff, fabs((double)b16[i] - f32[i]));
    }
    cr_log_info("%s: bf16 - f32 at most %.3g of the largest |f32| %.3g (2^%.1f)", what, diff / big, big,
                log2(diff / big));
    cr_assert(big > 0, "%s: all zero", what);
    cr_assert(diff <= 0x1p-5 * big, "%s: bf16 is %.3g off f32 (largest |f32| %.3g): past bf16's bound", what, diff,
              big);
    cr_assert(diff > 0x1p-14 * big, "%s: bf16 is only %.3g off f32 (largest |f32| %.3g): no rounding happened", what,
              diff, big);
}

Test(precision, bf16_model_forward_backward) {
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
    static struct run f32, b16;
    run_model(ctx, m, &f32, n_grads);
    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_BF16));
    run_model(ctx, m, &b16, n_grads);
    /* padded steps of y: the pad (0) in both */
    compare("y", b16.y, f32.y, T * N * O);
    compare("hT", b16.hT, f32.hT, L * D * N * H);
    compare("cT", b16.cT, f32.cT, L * D * N * H);
    compare("dx", b16.dx, f32.dx, T * N * I);
    compare("dh0", b16.dh0, f32.dh0, L * D * N * H);
    compare("dc0", b16.dc0, f32.dc0, L * D * N * H);
    compare("weight gradients", b16.grads, f32.grads, n_grads);
    /* back to f32: the f32 results again, bit for bit (the weights were never rounded) */
    struct run again;
    OK(ctx, recur_model_set_precision(m, RECUR_DTYPE_F32));
    run_model(ctx, m, &again, n_grads);
    cr_assert(memcmp(again.y, f32.y, sizeof f32.y) == 0, "f32 after bf16: y differs");
    cr_assert(memcmp(again.grads, f32.grads, n_grads * sizeof(float)) == 0, "f32 after bf16: gradients differ");
    free(f32.grads), free(b16.grads), free(again.grads);
    recur_model_free(m);
    recur_ctx_free(ctx);
}

/* The pack slots: a bf16 pack (op(B) rounded once) gives the bits of the
 * unpacked bf16 GEMM for several row counts, and keeps them after B changes;
 * a float32 pack those of the float32 GEMM. */
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
    for (int prec = 0; prec < 2; prec++) {
        recur_dtype p = prec ? RECUR_DTYPE_BF16 : RECUR_DTYPE_F32;
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
        if (p == RECUR_DTYPE_BF16) { /* a copy: B changed afterwards does not reach it */
            OK(ctx, recur_be_write(be, dC, C, sizeof C));
            OK(ctx, recur_be_gemm_packed(be, MAXM, dA, LDA, pk, 1.0f, dC, LDC));
            get(ctx, want, dC, sizeof C / sizeof *C);
            float B2[N * LDB];
            for (size_t i = 0; i < sizeof B2 / sizeof *B2; i++) B2[i] = 100.0f;
            OK(ctx, recur_be_write(be, dB, B2, sizeof B2));
            OK(ctx, recur_be_write(be, dC, C, sizeof C));
            OK(ctx, recur_be_gemm_packed(be, MAXM, dA, LDA, pk, 1.0f, dC, LDC));
            get(ctx, got, dC, sizeof C / sizeof *C);
            cr_assert(!memcmp(got, want, sizeof got), "the bf16 pack read B after packing");
        }
        recur_be_unpack(be, pk);
    }
    recur_be_free(be, &dA);
    recur_be_free(be, &dB);
    recur_be_free(be, &dC);
    recur_ctx_free(ctx);
}
