/*
 * test-saved.c: the saved values of a training forward kept in bf16
 * (recur_layer_set_saved_dtype; core/engine.c rounds a step's values into
 * the reserve after its forward and widens them before its backward, with
 * the backend's to_bf16 and from_bf16 slots). On the device
 * RECUR_TEST_DEVICE names (the CPU, or OpenCL: the 'saved-opencl' run).
 *
 *   - to_bf16 and from_bf16 bit for bit against the test's own rounding
 *     (never the library's): ties to even both ways, the largest finite
 *     floats to Inf, Inf, NaN kept quiet with its sign, float subnormals
 *     (bf16's spacing 2^-133), -0, at 16-bit offsets that are not
 *     float-aligned, the neighbours untouched; on OpenCL an odd byte
 *     offset refused by name;
 *   - per cell (the built-in and plugin cells with saved values; a
 *     projecting LSTM; zoneout), 2 layers, both directions, unsorted
 *     lengths: the forward's outputs bit for bit those of f32 saves; the
 *     reserve holds exactly the f32 run's saved values rounded; the
 *     gradients bit for bit those of an f32 run whose saved values were
 *     overwritten with the rounded ones before its backward (so the
 *     backward reads exactly the rounded values, and nothing else
 *     changed); near the f32 gradients, and not equal to them;
 *   - the setting: f16 and values out of range refused by name, the layer
 *     unchanged; a change between a forward and its backward leaves that
 *     backward as its forward saved; the reserve shrinks by the saved
 *     values' half.
 * RECUR_TEST_TINY (the Oclgrind run): two of the model cases.
 * Links a private copy of the library's objects to reach the layers'
 * reserve (engine.h: recur_engine_saved).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "context.h"
#include "engine.h"
#include "layer.h"
#include "model.h"

#define OK TEST_OK

union word {
    float f;
    uint32_t u;
};

/* bf16's bits for f, to nearest even, in double: 8 significant bits, or
 * bf16's subnormal spacing 2^-133 below 2^-126; Inf from halfway past the
 * largest finite bf16; a NaN quiet, with its sign and top payload. */
static uint16_t expect_bf16(float f) {
    uint32_t u = (union word){.f = f}.u;
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40u);
    if (f == 0.0f || isinf(f)) return (uint16_t)(u >> 16);
    int e;
    frexp((double)f, &e);
    int q = e - 8 < -133 ? -133 : e - 8;
    double r = ldexp(nearbyint(ldexp((double)f, -q)), q);
    if (fabs(r) >= 0x1p128) return (uint16_t)((u & 0x80000000u) >> 16 | 0x7f80u);
    uint32_t b = (union word){.f = (float)r}.u;
    cr_assert_eq(b & 0xffffu, 0, "%a rounds to %a, not a bf16 value", (double)f, r);
    return (uint16_t)(b >> 16);
}

static float from_bits(uint32_t u) { return (union word){.u = u}.f; }

Test(saved, conversion_bit_for_bit) {
    recur_ctx *ctx = test_open_ctx();
    struct recur_backend *be = &ctx->be;
    float v[] = {1.0f, -1.0f, 0.0f, -0.0f, INFINITY, -INFINITY, 3.14159265f, -2.71828183f, 1e-3f, 65504.0f,
                 from_bits(0x3f808000u), /* 1 + 2^-8: a tie, to the even 1 */
                 from_bits(0x3f818000u), /* 1 + 3*2^-8: a tie, to the even 1 + 2^-6 */
                 from_bits(0x3f808001u), /* past the tie: up */
                 from_bits(0x3f807fffu), /* below it: down */
                 from_bits(0x7f7fffffu), /* the largest float: to Inf */
                 from_bits(0xff7f8000u), /* halfway past the largest bf16: a tie to the even Inf */
                 from_bits(0x7f7f7fffu), /* below it: the largest bf16 */
                 from_bits(0x7fc00001u), /* quiet NaN with payload */
                 from_bits(0xff800001u), /* signalling NaN, negative: made quiet */
                 from_bits(0x7f800001u), /* signalling NaN whose payload sits in the low bits */
                 from_bits(0x00000001u), /* the smallest subnormal: to 0 */
                 from_bits(0x00008000u), /* a subnormal tie, to the even 0 */
                 from_bits(0x00018000u), /* a subnormal tie, to the even 2^-132 */
                 from_bits(0x007fffffu), /* the largest subnormal: to 2^-126 */
                 from_bits(0x80010001u), /* negative subnormal, up in magnitude */
                 1.17549435e-38f,        /* 2^-126 */
                 -123456.789f};
    enum { NV = sizeof v / sizeof v[0], OFF = 3 }; /* 16-bit elements: offset 3 is not float-aligned */
    float dev_in[NV + 2];
    uint16_t guard16 = 0xa5a5;
    size_t nb16 = (OFF + NV + 1) * 2;
    struct recur_mem f, h, g;
    OK(ctx, recur_be_alloc(be, (NV + 2) * sizeof(float), &f));
    OK(ctx, recur_be_alloc(be, nb16 + 2, &h));
    OK(ctx, recur_be_alloc(be, (NV + 3) * sizeof(float), &g));
    uint16_t *init16 = malloc(nb16 + 2);
    cr_assert(init16);
    for (size_t i = 0; i < nb16 / 2 + 1; i++) init16[i] = guard16;
    OK(ctx, recur_be_write(be, h, init16, nb16 + 2));
    memcpy(dev_in + 1, v, sizeof v);
    dev_in[0] = dev_in[NV + 1] = 7.0f;
    OK(ctx, recur_be_write(be, f, dev_in, sizeof dev_in));
    OK(ctx, recur_be_to_bf16(be, recur_mem_at16(h, OFF), recur_mem_at(f, 1), NV));
    uint16_t *got16 = malloc(nb16 + 2);
    cr_assert(got16);
    OK(ctx, recur_be_read(be, got16, h, nb16 + 2));
    for (int i = 0; i < OFF; i++) cr_assert_eq(got16[i], guard16, "to_bf16 wrote before its start (%d)", i);
    cr_assert_eq(got16[OFF + NV], guard16, "to_bf16 wrote past its end");
    for (int i = 0; i < NV; i++)
        cr_assert_eq(got16[OFF + i], expect_bf16(v[i]), "to_bf16(%a = 0x%08x) = 0x%04x, expected 0x%04x", (double)v[i],
                     (union word){.f = v[i]}.u, got16[OFF + i], expect_bf16(v[i]));

    /* back, from the same unaligned offset, into floats between two guards */
    float init32[NV + 3];
    for (int i = 0; i < NV + 3; i++) init32[i] = -5.0f;
    OK(ctx, recur_be_write(be, g, init32, sizeof init32));
    OK(ctx, recur_be_from_bf16(be, recur_mem_at(g, 1), recur_mem_at16(h, OFF), NV));
    float back[NV + 3];
    OK(ctx, recur_be_read(be, back, g, sizeof back));
    cr_assert(back[0] == -5.0f && back[NV + 1] == -5.0f, "from_bf16 wrote outside its range");
    for (int i = 0; i < NV; i++) {
        uint32_t want = (uint32_t)expect_bf16(v[i]) << 16, have = (union word){.f = back[1 + i]}.u;
        cr_assert_eq(have, want, "from_bf16(0x%04x) = 0x%08x, expected 0x%08x", expect_bf16(v[i]), have, want);
    }
    /* OpenCL addresses 16-bit elements: an odd byte offset is refused by name, nothing written */
    if (!strcmp(be->iface->name, "opencl")) {
        struct recur_mem odd = {h.buf, h.off + 1};
        cr_assert_eq(recur_be_to_bf16(be, odd, f, 1), RECUR_ERR_ARG);
        cr_assert(strstr(recur_ctx_error(ctx), "is odd"), "%s", recur_ctx_error(ctx));
        cr_assert_eq(recur_be_from_bf16(be, g, odd, 1), RECUR_ERR_ARG);
        OK(ctx, recur_be_read(be, got16, h, nb16 + 2));
        cr_assert_eq(got16[0], guard16, "a refused to_bf16 wrote");
    }
    free(init16), free(got16);
    recur_be_free(be, &f);
    recur_be_free(be, &h);
    recur_be_free(be, &g);
    recur_ctx_free(ctx);
}

/* ---- models ---- */

struct mcase {
    const char *cell;
    int proj;
    float zoneout;
};

enum { T = 7, N = 4, I = 5, H = 12 };
static const int lengths[N] = {5, 7, 1, 6};

static recur_model *make_model(recur_ctx *ctx, const struct mcase *c) {
    recur_model_desc d = {.cell = c->cell, .input_size = I, .hidden_size = H, .num_layers = 2,
                          .direction = RECUR_DIR_BIDI_CONCAT, .proj_size = c->proj, .zoneout = c->zoneout,
                          .seed = 77};
    recur_model *m;
    OK(ctx, recur_model_create(ctx, &d, &m));
    test_rng rng = {5};
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info pi;
        OK(ctx, recur_model_param_info(m, i, &pi));
        float *w = test_floats(pi.count);
        for (size_t k = 0; k < pi.count; k++) w[k] = (float)test_uniform(&rng, -0.5, 0.5);
        OK(ctx, recur_model_param_set(m, pi.name, w, pi.count));
        free(w);
    }
    return m;
}

static size_t grad_count(recur_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < recur_model_param_count(m); i++) {
        recur_param_info pi;
        recur_model_param_info(m, i, &pi);
        n += pi.count;
    }
    return n;
}

struct run {
    float *y, *dx, *dw;
};

static void run_free(struct run *r) { free(r->y), free(r->dx), free(r->dw); }

struct inputs {
    float *x, *dy;
    size_t nx, ny;
};

static struct inputs inputs_for(recur_model *m) {
    struct inputs in = {.nx = (size_t)T * N * I, .ny = (size_t)T * N * (size_t)recur_model_output_size(m)};
    in.x = test_floats(in.nx), in.dy = test_floats(in.ny);
    test_rng rng = {9};
    for (size_t i = 0; i < in.nx; i++) in.x[i] = (float)test_uniform(&rng, -1, 1);
    for (size_t i = 0; i < in.ny; i++) in.dy[i] = (float)test_uniform(&rng, -1, 1);
    return in;
}

static void forward(recur_ctx *ctx, recur_model *m, const struct inputs *in, struct run *r) {
    r->y = test_floats(in->ny);
    recur_model_io io = {.T = T, .N = N, .lengths = lengths, .x = in->x, .y = r->y};
    OK(ctx, recur_model_forward(m, RECUR_MODE_TRAINING, &io));
}

static void backward(recur_ctx *ctx, recur_model *m, const struct inputs *in, struct run *r) {
    recur_model_io io = {.T = T, .N = N, .lengths = lengths, .x = in->x, .y = r->y};
    r->dx = test_floats(in->nx);
    recur_model_grad_io g = {.dy = in->dy, .dx = r->dx};
    OK(ctx, recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE));
    r->dw = test_floats(grad_count(m));
    for (size_t i = 0, at = 0; i < recur_model_param_count(m); i++) {
        recur_param_info pi;
        OK(ctx, recur_model_param_info(m, i, &pi));
        OK(ctx, recur_model_grad_get(m, pi.name, r->dw + at, pi.count));
        at += pi.count;
    }
}

/* Layer k's saved values: as floats (f32 saves), or widened from bf16. */
static float *saved_of(recur_ctx *ctx, recur_layer *l, size_t *count, int want16) {
    struct recur_mem at;
    int is16;
    OK(ctx, recur_engine_saved(l, &at, count, &is16));
    cr_assert_eq(is16, want16, "the reserve's saved values are %s", is16 ? "bf16" : "f32");
    float *v = test_floats(*count);
    if (!is16) {
        OK(ctx, recur_be_read(&ctx->be, v, at, *count * sizeof(float)));
        return v;
    }
    uint16_t *b = malloc(*count * 2 + 1);
    cr_assert(b);
    OK(ctx, recur_be_read(&ctx->be, b, at, *count * 2));
    for (size_t i = 0; i < *count; i++) v[i] = from_bits((uint32_t)b[i] << 16);
    free(b);
    return v;
}

static void same_bits(const char *cell, const char *what, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        cr_assert(!memcmp(&a[i], &b[i], sizeof(float)), "%s: %s[%zu] %.9g, expected %.9g", cell, what, i,
                  (double)a[i], (double)b[i]);
}

static void check_cell(recur_ctx *ctx, const struct mcase *c) {
    /* f32 saves: the reference run, and its saved values */
    recur_model *m32 = make_model(ctx, c);
    struct inputs in = inputs_for(m32);
    int nl = m32->L * m32->D;
    struct run r32 = {0}, r16 = {0}, rr = {0};
    forward(ctx, m32, &in, &r32);
    float *s32[4];
    size_t cnt[4];
    for (int k = 0; k < nl; k++) s32[k] = saved_of(ctx, m32->layers[k], &cnt[k], 0);
    backward(ctx, m32, &in, &r32);

    /* bf16 saves: the same forward, the rounded values kept */
    recur_model *m16 = make_model(ctx, c);
    OK(ctx, recur_model_set_saved_dtype(m16, RECUR_DTYPE_BF16));
    cr_assert_eq(recur_model_saved_dtype(m16), RECUR_DTYPE_BF16);
    forward(ctx, m16, &in, &r16);
    same_bits(c->cell, "y", r16.y, r32.y, in.ny);
    size_t any = 0;
    for (int k = 0; k < nl; k++) {
        size_t n16;
        float *s16 = saved_of(ctx, m16->layers[k], &n16, 1);
        cr_assert_eq(n16, cnt[k]);
        for (size_t i = 0; i < n16; i++) {
            float want = from_bits((uint32_t)expect_bf16(s32[k][i]) << 16);
            cr_assert(!memcmp(&s16[i], &want, sizeof want), "%s layer %d: saved[%zu] %a, expected %a (from %a)",
                      c->cell, k, i, (double)s16[i], (double)want, (double)s32[k][i]);
            any += s16[i] != s32[k][i];
        }
        free(s16);
    }
    cr_assert(any > 0, "%s: no saved value changed in bf16", c->cell);
    backward(ctx, m16, &in, &r16);

    /* f32 saves overwritten with the rounded values: the same gradients */
    recur_model *mr = make_model(ctx, c);
    forward(ctx, mr, &in, &rr);
    for (int k = 0; k < nl; k++) {
        struct recur_mem at;
        size_t n;
        int is16;
        OK(ctx, recur_engine_saved(mr->layers[k], &at, &n, &is16));
        for (size_t i = 0; i < n; i++) s32[k][i] = from_bits((uint32_t)expect_bf16(s32[k][i]) << 16);
        OK(ctx, recur_be_write(&ctx->be, at, s32[k], n * sizeof(float)));
    }
    backward(ctx, mr, &in, &rr);
    size_t nw = grad_count(m16);
    same_bits(c->cell, "dx", r16.dx, rr.dx, in.nx);
    same_bits(c->cell, "dw", r16.dw, rr.dw, nw);

    /* and near f32's, not equal: bf16's 2^-9 per saved value, a few steps deep */
    const struct {
        const char *name;
        const float *a, *b;
        size_t n;
    } g[] = {{"dx", r16.dx, r32.dx, in.nx}, {"dw", r16.dw, r32.dw, nw}};
    for (int a = 0; a < 2; a++) {
        double scale = 0, diff = 0;
        for (size_t i = 0; i < g[a].n; i++) {
            scale = fmax(scale, fabs(g[a].b[i]));
            diff = fmax(diff, fabs(g[a].a[i] - g[a].b[i]));
        }
        cr_assert(diff > 0 && diff <= scale / 64, "%s: %s with bf16 saves is %.3g from f32's (scale %.3g)", c->cell,
                  g[a].name, diff, scale);
        cr_log_info("%s proj %d zoneout %.2g: %s with bf16 saves is %.3g of the scale from f32's", c->cell, c->proj,
                    (double)c->zoneout, g[a].name, diff / scale);
    }
    for (int k = 0; k < nl; k++) free(s32[k]);
    run_free(&r32), run_free(&r16), run_free(&rr);
    free(in.x), free(in.dy);
    recur_model_free(m32), recur_model_free(m16), recur_model_free(mr);
}

static const struct mcase cells[] = {
    {"lstm", 0, 0},      {"gru", 0, 0},         {"gru-lbr", 0, 0},           {"lstm", 5, 0},
    {"lstm-ln", 0, 0},   {"gru-ln", 0, 0},      {"lstm-peephole", 0, 0},     {"gru-simple", 0, 0},
    {"gru", 0, 0.25f},   {"lstm", 0, 0.3f},
};

Test(saved, bf16_saves_are_the_rounded_values) {
    recur_ctx *ctx = test_open_ctx();
    /* RECUR_TEST_TINY (Oclgrind): the projecting LSTM and the GRU with zoneout */
    int tiny = getenv("RECUR_TEST_TINY") != NULL;
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        if (!tiny || cells[i].proj || (cells[i].zoneout > 0 && !strcmp(cells[i].cell, "gru")))
            check_cell(ctx, &cells[i]);
    recur_ctx_free(ctx);
}

Test(saved, the_setting) {
    recur_ctx *ctx = test_open_ctx();
    const struct mcase c = {"lstm", 0, 0};
    recur_model *m = make_model(ctx, &c);
    cr_assert_eq(recur_model_saved_dtype(m), RECUR_DTYPE_F32);
    cr_assert_eq(recur_model_set_saved_dtype(m, RECUR_DTYPE_F16), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(ctx), "f16"), "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_set_saved_dtype(m, (recur_dtype)7), RECUR_ERR_ARG);
    cr_assert(strstr(recur_ctx_error(ctx), "7"), "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_model_saved_dtype(m), RECUR_DTYPE_F32);
    cr_assert_eq(recur_layer_saved_dtype(m->layers[1]), RECUR_DTYPE_F32);
    cr_assert_eq(recur_model_set_saved_dtype(NULL, RECUR_DTYPE_BF16), RECUR_ERR_NULL);

    /* the reserve: the saved values' half fewer bytes (R = T*N rows, 5H values each for the LSTM) */
    recur_sizes s32, s16;
    OK(ctx, recur_layer_sizes(m->layers[0], T, N, &s32));
    OK(ctx, recur_model_set_saved_dtype(m, RECUR_DTYPE_BF16));
    OK(ctx, recur_layer_sizes(m->layers[0], T, N, &s16));
    size_t half = (size_t)T * N * 5 * H * sizeof(float) / 2;
    cr_assert(s32.reserve - s16.reserve >= half - 64 && s32.reserve - s16.reserve <= half + 64,
              "reserve %zu bytes in f32 saves, %zu in bf16 (expected %zu fewer)", s32.reserve, s16.reserve, half);

    /* changed between a forward and its backward: the backward reads what its forward saved */
    struct inputs in = inputs_for(m);
    struct run a = {0}, b = {0};
    forward(ctx, m, &in, &a); /* bf16 saves */
    OK(ctx, recur_model_set_saved_dtype(m, RECUR_DTYPE_F32));
    backward(ctx, m, &in, &a);
    OK(ctx, recur_model_set_saved_dtype(m, RECUR_DTYPE_BF16));
    forward(ctx, m, &in, &b);
    backward(ctx, m, &in, &b);
    same_bits("lstm", "dx", a.dx, b.dx, in.nx);
    same_bits("lstm", "dw", a.dw, b.dw, grad_count(m));
    run_free(&a), run_free(&b);
    free(in.x), free(in.dy);
    recur_model_free(m);
    recur_ctx_free(ctx);
}
