/*
 * recur-vmath.h: header-only vectorised float math for recur's cell kernels.
 *
 *   recur_vexp(y, x, n)      y[i] = e^x[i]
 *   recur_vsigmoid(y, x, n)  y[i] = 1 / (1 + e^-x[i])
 *   recur_vtanh(y, x, n)     y[i] = tanh(x[i])
 *   recur_exp1(x), recur_sigmoid1(x), recur_tanh1(x): one element.
 *
 * Any n >= 0, any alignment, y == x (in place) allowed; the arrays must not
 * otherwise overlap. Tails and the *1 functions run the very same vector
 * kernel as the main loop (on a padded lane buffer / a broadcast), so an
 * element's result is bit-identical wherever it sits in an array.
 *
 * ISA, picked at compile time (RECUR_VMATH_ISA_NAME says which):
 *   __AVX512F__               "avx512"  16 lanes, AVX-512F intrinsics
 *   __AVX2__ && __FMA__       "avx2"     8 lanes, AVX2 + FMA
 *   __aarch64__ (+__ARM_NEON) "neon"     4 lanes, A64 Advanced SIMD
 *   otherwise                 "scalar"   plain C, the same algorithm
 * 32-bit ARM NEON has neither IEEE vector division nor (always) FMA, so it
 * takes the scalar path. No path calls libm.
 *
 * Measured maximum error, in ulp against the correctly rounded result (the
 * double libm result rounded to float), over ALL 2^32 float inputs (a
 * throwaway exhaustive run; tests/test-vmath.c re-checks every 509th bit
 * pattern, a dense grid of [-20, 20], the edges and special values), for
 * avx512, avx2 and scalar (x86-64, gcc 12 and clang 14):
 *   exp:     <= 1 ulp for all results >= FLT_MIN (x in [-87.34, 88.72]).
 *            Gradual underflow (no flush): denormal results, x in
 *            [-103.97, -87.34], are within 1 least denormal (2^-149) of the
 *            correctly rounded one; 0 below; +inf above ln(FLT_MAX).
 *   sigmoid: <= 2 ulp for all results >= FLT_MIN (<= 1 ulp for x >= 0);
 *            denormal results (x in [-103.97, -87.34]) within 1 least
 *            denormal, 0 below -103.97; exactly 1 for x >= 16.636.
 *   tanh:    <= 1 ulp everywhere, i.e. relative accuracy near 0 as well;
 *            exactly +-1 for |x| >= 9.011, tanh(x) = x for tiny x.
 * avx2 and avx512 agree bit for bit on every input (same operations, all
 * fused); scalar without FMA rounds differently on ~0.05% of inputs, within
 * the same bounds. neon performs the same fused operations (compile-checked
 * only). Exact specials: exp(-inf) = 0, exp(+inf) = +inf, sigmoid(+-inf) =
 * 1 / 0, tanh(+-0) = +-0, tanh(+-inf) = +-1; NaN in -> NaN out.
 * Needs IEEE semantics: do not build with -ffast-math / -ffinite-math-only.
 *
 * Speed: inputs whose result (or an intermediate) is denormal (exp below
 * -87.3, sigmoid beyond |x| > 87.3, tanh of |x| < 1e-19) take microcode
 * assists on x86, a few times slower per vector; ordinary inputs never
 * touch denormals.
 */
#ifndef RECUR_VMATH_H
#define RECUR_VMATH_H

#include <stdint.h>
#include <string.h>

/* Error bounds the test asserts (ulp, for results >= FLT_MIN). */
#define RECUR_VMATH_EXP_MAX_ULP 1
#define RECUR_VMATH_SIGMOID_MAX_ULP 2
#define RECUR_VMATH_TANH_MAX_ULP 1

/*
 * The ISA layer: a vector of floats (recur_vm_f), of int32 (recur_vm_i), a
 * lane mask (recur_vm_m) and the few operations the kernels need. The
 * kernels below are written once against it, so every ISA runs the same
 * algorithm; only fma differs (fused where the ISA has it).
 *
 * min(a, b) / max(a, b) follow x86 semantics: (a < b ? a : b), i.e. the
 * second operand comes back when either is NaN. The kernels pass the input
 * second so that NaN propagates (NEON's min/max propagate NaN anyway).
 */
#if defined(__AVX512F__)

#include <immintrin.h>
#define RECUR_VMATH_ISA_NAME "avx512"
#define RECUR_VMATH_WIDTH 16
typedef __m512 recur_vm_f;
typedef __m512i recur_vm_i;
typedef __mmask16 recur_vm_m;

static inline recur_vm_f recur_vm_set1(float a) { return _mm512_set1_ps(a); }
static inline recur_vm_f recur_vm_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void recur_vm_store(float *p, recur_vm_f v) { _mm512_storeu_ps(p, v); }
static inline float recur_vm_first(recur_vm_f v) { return _mm512_cvtss_f32(v); }
static inline recur_vm_f recur_vm_add(recur_vm_f a, recur_vm_f b) { return _mm512_add_ps(a, b); }
static inline recur_vm_f recur_vm_sub(recur_vm_f a, recur_vm_f b) { return _mm512_sub_ps(a, b); }
static inline recur_vm_f recur_vm_mul(recur_vm_f a, recur_vm_f b) { return _mm512_mul_ps(a, b); }
static inline recur_vm_f recur_vm_div(recur_vm_f a, recur_vm_f b) { return _mm512_div_ps(a, b); }
/* a*b + c and c - a*b, one rounding */
static inline recur_vm_f recur_vm_fma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return _mm512_fmadd_ps(a, b, c); }
static inline recur_vm_f recur_vm_fnma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return _mm512_fnmadd_ps(a, b, c); }
static inline recur_vm_f recur_vm_min(recur_vm_f a, recur_vm_f b) { return _mm512_min_ps(a, b); }
static inline recur_vm_f recur_vm_max(recur_vm_f a, recur_vm_f b) { return _mm512_max_ps(a, b); }
static inline recur_vm_f recur_vm_abs(recur_vm_f a)
{
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff)));
}
static inline recur_vm_f recur_vm_neg(recur_vm_f a)
{
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN)));
}
/* |m| with the sign of s (m has a clear sign bit) */
static inline recur_vm_f recur_vm_signof(recur_vm_f m, recur_vm_f s)
{
    __m512i sb = _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(INT32_MIN));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(m), sb));
}
static inline recur_vm_m recur_vm_lt(recur_vm_f a, recur_vm_f b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline recur_vm_f recur_vm_sel(recur_vm_m m, recur_vm_f t, recur_vm_f f) { return _mm512_mask_blend_ps(m, f, t); }
/* k (integral float, |k| < 2^31) to int32 */
static inline recur_vm_i recur_vm_toint(recur_vm_f k) { return _mm512_cvtps_epi32(k); }
static inline recur_vm_i recur_vm_half(recur_vm_i k) { return _mm512_srai_epi32(k, 1); }
static inline recur_vm_i recur_vm_isub(recur_vm_i a, recur_vm_i b) { return _mm512_sub_epi32(a, b); }
/* 2^k for k in [-126, 127]: k + 127 in the exponent field */
static inline recur_vm_f recur_vm_pow2i(recur_vm_i k)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23));
}

#elif defined(__AVX2__) && defined(__FMA__)

#include <immintrin.h>
#define RECUR_VMATH_ISA_NAME "avx2"
#define RECUR_VMATH_WIDTH 8
typedef __m256 recur_vm_f;
typedef __m256i recur_vm_i;
typedef __m256 recur_vm_m;

static inline recur_vm_f recur_vm_set1(float a) { return _mm256_set1_ps(a); }
static inline recur_vm_f recur_vm_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void recur_vm_store(float *p, recur_vm_f v) { _mm256_storeu_ps(p, v); }
static inline float recur_vm_first(recur_vm_f v) { return _mm256_cvtss_f32(v); }
static inline recur_vm_f recur_vm_add(recur_vm_f a, recur_vm_f b) { return _mm256_add_ps(a, b); }
static inline recur_vm_f recur_vm_sub(recur_vm_f a, recur_vm_f b) { return _mm256_sub_ps(a, b); }
static inline recur_vm_f recur_vm_mul(recur_vm_f a, recur_vm_f b) { return _mm256_mul_ps(a, b); }
static inline recur_vm_f recur_vm_div(recur_vm_f a, recur_vm_f b) { return _mm256_div_ps(a, b); }
static inline recur_vm_f recur_vm_fma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return _mm256_fmadd_ps(a, b, c); }
static inline recur_vm_f recur_vm_fnma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return _mm256_fnmadd_ps(a, b, c); }
static inline recur_vm_f recur_vm_min(recur_vm_f a, recur_vm_f b) { return _mm256_min_ps(a, b); }
static inline recur_vm_f recur_vm_max(recur_vm_f a, recur_vm_f b) { return _mm256_max_ps(a, b); }
static inline recur_vm_f recur_vm_abs(recur_vm_f a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline recur_vm_f recur_vm_neg(recur_vm_f a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
static inline recur_vm_f recur_vm_signof(recur_vm_f m, recur_vm_f s)
{
    return _mm256_or_ps(m, _mm256_and_ps(s, _mm256_set1_ps(-0.0f)));
}
static inline recur_vm_m recur_vm_lt(recur_vm_f a, recur_vm_f b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline recur_vm_f recur_vm_sel(recur_vm_m m, recur_vm_f t, recur_vm_f f) { return _mm256_blendv_ps(f, t, m); }
static inline recur_vm_i recur_vm_toint(recur_vm_f k) { return _mm256_cvtps_epi32(k); }
static inline recur_vm_i recur_vm_half(recur_vm_i k) { return _mm256_srai_epi32(k, 1); }
static inline recur_vm_i recur_vm_isub(recur_vm_i a, recur_vm_i b) { return _mm256_sub_epi32(a, b); }
static inline recur_vm_f recur_vm_pow2i(recur_vm_i k)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

#elif defined(__aarch64__) && defined(__ARM_NEON)

#include <arm_neon.h>
#define RECUR_VMATH_ISA_NAME "neon"
#define RECUR_VMATH_WIDTH 4
typedef float32x4_t recur_vm_f;
typedef int32x4_t recur_vm_i;
typedef uint32x4_t recur_vm_m;

static inline recur_vm_f recur_vm_set1(float a) { return vdupq_n_f32(a); }
static inline recur_vm_f recur_vm_load(const float *p) { return vld1q_f32(p); }
static inline void recur_vm_store(float *p, recur_vm_f v) { vst1q_f32(p, v); }
static inline float recur_vm_first(recur_vm_f v) { return vgetq_lane_f32(v, 0); }
static inline recur_vm_f recur_vm_add(recur_vm_f a, recur_vm_f b) { return vaddq_f32(a, b); }
static inline recur_vm_f recur_vm_sub(recur_vm_f a, recur_vm_f b) { return vsubq_f32(a, b); }
static inline recur_vm_f recur_vm_mul(recur_vm_f a, recur_vm_f b) { return vmulq_f32(a, b); }
static inline recur_vm_f recur_vm_div(recur_vm_f a, recur_vm_f b) { return vdivq_f32(a, b); }
static inline recur_vm_f recur_vm_fma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return vfmaq_f32(c, a, b); }
static inline recur_vm_f recur_vm_fnma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return vfmsq_f32(c, a, b); }
static inline recur_vm_f recur_vm_min(recur_vm_f a, recur_vm_f b) { return vminq_f32(a, b); }
static inline recur_vm_f recur_vm_max(recur_vm_f a, recur_vm_f b) { return vmaxq_f32(a, b); }
static inline recur_vm_f recur_vm_abs(recur_vm_f a) { return vabsq_f32(a); }
static inline recur_vm_f recur_vm_neg(recur_vm_f a) { return vnegq_f32(a); }
static inline recur_vm_f recur_vm_signof(recur_vm_f m, recur_vm_f s)
{
    return vbslq_f32(vdupq_n_u32(0x80000000u), s, m);
}
static inline recur_vm_m recur_vm_lt(recur_vm_f a, recur_vm_f b) { return vcltq_f32(a, b); }
static inline recur_vm_f recur_vm_sel(recur_vm_m m, recur_vm_f t, recur_vm_f f) { return vbslq_f32(m, t, f); }
static inline recur_vm_i recur_vm_toint(recur_vm_f k) { return vcvtq_s32_f32(k); }
static inline recur_vm_i recur_vm_half(recur_vm_i k) { return vshrq_n_s32(k, 1); }
static inline recur_vm_i recur_vm_isub(recur_vm_i a, recur_vm_i b) { return vsubq_s32(a, b); }
static inline recur_vm_f recur_vm_pow2i(recur_vm_i k)
{
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k, vdupq_n_s32(127)), 23));
}

#else /* scalar */

#define RECUR_VMATH_ISA_NAME "scalar"
#define RECUR_VMATH_WIDTH 1
typedef float recur_vm_f;
typedef int32_t recur_vm_i;
typedef int recur_vm_m;

static inline uint32_t recur_vm_bits_(float a)
{
    uint32_t u;
    memcpy(&u, &a, sizeof u);
    return u;
}
static inline float recur_vm_float_(uint32_t u)
{
    float a;
    memcpy(&a, &u, sizeof a);
    return a;
}
static inline recur_vm_f recur_vm_set1(float a) { return a; }
static inline recur_vm_f recur_vm_load(const float *p) { return *p; }
static inline void recur_vm_store(float *p, recur_vm_f v) { *p = v; }
static inline float recur_vm_first(recur_vm_f v) { return v; }
static inline recur_vm_f recur_vm_add(recur_vm_f a, recur_vm_f b) { return a + b; }
static inline recur_vm_f recur_vm_sub(recur_vm_f a, recur_vm_f b) { return a - b; }
static inline recur_vm_f recur_vm_mul(recur_vm_f a, recur_vm_f b) { return a * b; }
static inline recur_vm_f recur_vm_div(recur_vm_f a, recur_vm_f b) { return a / b; }
/* fused only where the compiler says it is a single instruction (no libm) */
#if defined(__GNUC__) && defined(__FP_FAST_FMAF)
static inline recur_vm_f recur_vm_fma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return __builtin_fmaf(a, b, c); }
static inline recur_vm_f recur_vm_fnma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return __builtin_fmaf(-a, b, c); }
#else
static inline recur_vm_f recur_vm_fma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return a * b + c; }
static inline recur_vm_f recur_vm_fnma(recur_vm_f a, recur_vm_f b, recur_vm_f c) { return c - a * b; }
#endif
static inline recur_vm_f recur_vm_min(recur_vm_f a, recur_vm_f b) { return a < b ? a : b; }
static inline recur_vm_f recur_vm_max(recur_vm_f a, recur_vm_f b) { return a > b ? a : b; }
static inline recur_vm_f recur_vm_abs(recur_vm_f a) { return recur_vm_float_(recur_vm_bits_(a) & 0x7fffffffu); }
static inline recur_vm_f recur_vm_neg(recur_vm_f a) { return recur_vm_float_(recur_vm_bits_(a) ^ 0x80000000u); }
static inline recur_vm_f recur_vm_signof(recur_vm_f m, recur_vm_f s)
{
    return recur_vm_float_(recur_vm_bits_(m) | (recur_vm_bits_(s) & 0x80000000u));
}
static inline recur_vm_m recur_vm_lt(recur_vm_f a, recur_vm_f b) { return a < b; }
static inline recur_vm_f recur_vm_sel(recur_vm_m m, recur_vm_f t, recur_vm_f f) { return m ? t : f; }
/* (int)NaN is undefined in C; any k works for NaN since the result is NaN */
static inline recur_vm_i recur_vm_toint(recur_vm_f k) { return k == k ? (int32_t)k : 0; }
/* any split with both halves in [-126, 127] gives the same product */
static inline recur_vm_i recur_vm_half(recur_vm_i k) { return k / 2; }
static inline recur_vm_i recur_vm_isub(recur_vm_i a, recur_vm_i b) { return a - b; }
static inline recur_vm_f recur_vm_pow2i(recur_vm_i k) { return recur_vm_float_((uint32_t)(k + 127) << 23); }

#endif

/*
 * e^x = 2^k * e^r,  k = round(x / ln2),  r = x - k ln2,  |r| <= ln2 / 2.
 *
 * x is first clamped to [-104, 89]: e^-104 < 2^-150 rounds to 0 and
 * e^89 > FLT_MAX overflows, so the clamp changes no result, but it keeps k in
 * [-150, 128] where the scaling below is safe. NaN passes the clamp (it is
 * the second operand) and poisons everything after it.
 *
 * k: round to nearest by the 1.5 * 2^23 trick (the sum's ulp is 1).
 * r: two-constant Cody-Waite: L1 has 9 significant bits, so k L1 is exact
 *    for |k| < 2^15 and x - k L1 is exact (with or without FMA); L2 =
 *    ln2 - L1 rounded to float carries the rest. What L1 + L2 misses of ln2
 *    costs |k| 2^-37 <= 2^-29.8 in r, a few hundredths of an ulp of e^r.
 * e^r = 1 + r + r^2 P(r), P the Cephes expf minimax polynomial (degree 5).
 * 2^k: built in the exponent bits, in two halves k = k1 + k2 (each in
 *    [-75, 64]) so that k = 128 (x just below ln FLT_MAX) does not overflow
 *    early and k < -126 gives a gradual (correctly rounded once) denormal:
 *    p 2^k1 is exact, the one rounding happens in the second product.
 */
static inline recur_vm_f recur_vm_exp(recur_vm_f x)
{
    const recur_vm_f magic = recur_vm_set1(12582912.0f); /* 1.5 * 2^23 */
    recur_vm_f t, k, r, p, y;
    recur_vm_i ki, k1, k2;

    x = recur_vm_max(recur_vm_set1(-104.0f), x);
    x = recur_vm_min(recur_vm_set1(89.0f), x);

    t = recur_vm_fma(x, recur_vm_set1(1.44269504088896341f), magic);
    k = recur_vm_sub(t, magic);
    r = recur_vm_fnma(k, recur_vm_set1(0.693359375f), x);   /* L1 = 355/512 */
    r = recur_vm_fnma(k, recur_vm_set1(-2.12194440e-4f), r); /* L2 */

    p = recur_vm_set1(1.9875691500e-4f);
    p = recur_vm_fma(p, r, recur_vm_set1(1.3981999507e-3f));
    p = recur_vm_fma(p, r, recur_vm_set1(8.3334519073e-3f));
    p = recur_vm_fma(p, r, recur_vm_set1(4.1665795894e-2f));
    p = recur_vm_fma(p, r, recur_vm_set1(1.6666665459e-1f));
    p = recur_vm_fma(p, r, recur_vm_set1(5.0000001201e-1f));
    y = recur_vm_fma(p, recur_vm_mul(r, r), r);
    y = recur_vm_add(y, recur_vm_set1(1.0f));

    ki = recur_vm_toint(k);
    k1 = recur_vm_half(ki);
    k2 = recur_vm_isub(ki, k1);
    return recur_vm_mul(recur_vm_mul(y, recur_vm_pow2i(k1)), recur_vm_pow2i(k2));
}

/*
 * sigmoid(x) = 1 / (1 + e^-x) = e^x / (1 + e^x),
 * computed as  e = e^-|x|,  s = (x < 0 ? e : 1) / (1 + e).
 *
 * e <= 1 never overflows, so both tails keep their relative accuracy: for
 * x >> 0 the sum rounds to 1 and s = 1; for x << 0, s = e / (1 + e) goes
 * gradually into the denormals with e^x itself and reaches 0 only below
 * ln(2^-150) = -103.97, like exp. NaN fails x < 0 and stays NaN through e.
 */
static inline recur_vm_f recur_vm_sigmoid(recur_vm_f x)
{
    const recur_vm_f one = recur_vm_set1(1.0f);
    recur_vm_f e, num;

    e = recur_vm_exp(recur_vm_neg(recur_vm_abs(x)));
    num = recur_vm_sel(recur_vm_lt(x, recur_vm_set1(0.0f)), e, one);
    return recur_vm_div(num, recur_vm_add(one, e));
}

/*
 * tanh(x) = sign(x) t(|x|), with, for a = |x|,
 *   t(a) = a + a^3 Q(a^2)          for a < 0.625 (Cephes tanhf minimax):
 *          relative accuracy near 0, where the formula below cancels;
 *   t(a) = 1 - 2 / (e^{2a} + 1)    otherwise: e^{2a} overflows to +inf for
 *          a > 44.4; t rounds to 1 exactly for a >= 9.011.
 * Both are computed and one picked per lane (no branches); the sign is
 * copied from x last, so tanh(-0) = -0 and the function is exactly odd.
 * NaN fails a < 0.625 and goes through the exp branch, staying NaN.
 */
static inline recur_vm_f recur_vm_tanh(recur_vm_f x)
{
    const recur_vm_f one = recur_vm_set1(1.0f);
    recur_vm_f a, z, q, small, e, large, t;

    a = recur_vm_abs(x);

    z = recur_vm_mul(a, a);
    q = recur_vm_set1(-5.70498872745e-3f);
    q = recur_vm_fma(q, z, recur_vm_set1(2.06390887954e-2f));
    q = recur_vm_fma(q, z, recur_vm_set1(-5.37397155531e-2f));
    q = recur_vm_fma(q, z, recur_vm_set1(1.33314422036e-1f));
    q = recur_vm_fma(q, z, recur_vm_set1(-3.33332819422e-1f));
    small = recur_vm_fma(recur_vm_mul(q, z), a, a);

    e = recur_vm_exp(recur_vm_add(a, a));
    large = recur_vm_sub(one, recur_vm_div(recur_vm_set1(2.0f), recur_vm_add(e, one)));

    t = recur_vm_sel(recur_vm_lt(a, recur_vm_set1(0.625f)), small, large);
    return recur_vm_signof(t, x);
}

/* y[i] = f(x[i]): full vectors, then the tail through a zero-padded buffer
 * (same kernel, so a result never depends on the element's position). */
#define RECUR_VMATH_ARRAY_(f, y, x, n)                                       \
    do {                                                                     \
        int i_ = 0;                                                          \
        for (; i_ + RECUR_VMATH_WIDTH <= (n); i_ += RECUR_VMATH_WIDTH)       \
            recur_vm_store((y) + i_, f(recur_vm_load((x) + i_)));            \
        if (i_ < (n)) {                                                      \
            float b_[RECUR_VMATH_WIDTH] = {0};                               \
            size_t m_ = (size_t)((n) - i_) * sizeof(float);                  \
            memcpy(b_, (x) + i_, m_);                                        \
            recur_vm_store(b_, f(recur_vm_load(b_)));                        \
            memcpy((y) + i_, b_, m_);                                        \
        }                                                                    \
    } while (0)

/* y[i] = e^x[i] */
static inline void recur_vexp(float *y, const float *x, int n) { RECUR_VMATH_ARRAY_(recur_vm_exp, y, x, n); }

/* y[i] = 1 / (1 + e^-x[i]) */
static inline void recur_vsigmoid(float *y, const float *x, int n) { RECUR_VMATH_ARRAY_(recur_vm_sigmoid, y, x, n); }

/* y[i] = tanh(x[i]) */
static inline void recur_vtanh(float *y, const float *x, int n) { RECUR_VMATH_ARRAY_(recur_vm_tanh, y, x, n); }

/* e^x, one element (lane 0 of the vector kernel) */
static inline float recur_exp1(float x) { return recur_vm_first(recur_vm_exp(recur_vm_set1(x))); }

/* 1 / (1 + e^-x), one element */
static inline float recur_sigmoid1(float x) { return recur_vm_first(recur_vm_sigmoid(recur_vm_set1(x))); }

/* tanh(x), one element */
static inline float recur_tanh1(float x) { return recur_vm_first(recur_vm_tanh(recur_vm_set1(x))); }

#endif /* RECUR_VMATH_H */
