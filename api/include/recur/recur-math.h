/*
 * recur-math.h: a cell's pointwise math written once, for every CPU ISA and
 * for OpenCL.
 *
 * A cell's kernels are written in one file, NAME-math.h, in a small subset
 * of C that is also OpenCL C: each kernel is
 *
 *     RECUR_MATH_KERNEL(lstm_forward_0) {
 *         const recur_f i = recur_sigmoid(recur_load(hw, 0 * H) + recur_load(xw, 0 * H));
 *         ...
 *         recur_store(next1, 0, c);
 *     }
 *
 * and computes ONE unit j of one row: recur_load(ARRAY, off) reads the
 * row's element off + j of ARRAY, recur_store(ARRAY, off, v) writes it,
 * recur_accum(ARRAY, off, v) adds to it. ARRAY is a field of struct
 * recur_cell_args by its OpenCL name: xw, hw, b_hh, prev0, prev1, next0,
 * next1, save, src, dnext0, dnext1, dprev0, dprev1, dxw, dhw, dsrc,
 * param0..param7, dparam0..dparam7 (b_hh and paramK are one row for all).
 * recur_has(ARRAY) says whether it is there (not NULL). H, variant and
 * training are in scope. Values are recur_f, with + - * / and float
 * constants, and the functions below.
 *
 * The kernels file of the cell (compiled once per ISA, as any NAME-kernels.c)
 * is then
 *
 *     #include <recur/recur-math.h>
 *     #include "lstm-math.h"
 *     const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
 *         .isa = RECUR_KERNEL_ISA, .forward = {lstm_forward_0}, .backward = {lstm_backward_0}};
 *
 * and the cell's OpenCL source is NAME-math.h itself (recur-embed it, as any
 * .cl file): recur-cell-cl.h, which the host prepends, defines the same
 * macros for OpenCL C, one work-item per unit. So the CPU and every OpenCL
 * device run the same text.
 *
 * On the CPU, recur_f is a vector of RECUR_VMATH_WIDTH floats (AVX-512,
 * AVX2, NEON; one float for scalar): a kernel runs on the units j, j+1, ...
 * of a row at once, the math of recur-vmath.h, and the last units of a row
 * through zero-padded copies, so a unit's result never depends on where it
 * sits in the row. The rules that follow from it: no branch on a recur_f
 * value (use recur_max, recur_positive, recur_select_lt); a choice between
 * two recur_f by a scalar (variant, training) is an if/else, not ?: (GCC's
 * vector types of a function result and of an expression differ); only element j of
 * each array (off + j with off the same for every unit, like g * H); no
 * reduction over units (use a row kernel, RECUR_CELL_ROW_KERNELS, written
 * per language). The OpenCL side uses OpenCL's exp and tanh, the CPU side
 * recur-vmath's (1-2 ulp): results agree to a few ulp, which `recur
 * gradcheck` checks on every device against cpu:scalar.
 */
#ifndef RECUR_MATH_H
#define RECUR_MATH_H

#include <string.h>

#include "recur-cell.h"
#include "recur-vmath.h"

typedef recur_vm_f recur_f;

/* One row of a call, and the units [j, j + tail) a kernel runs on. */
struct recur_math_row {
    const float *xw;
    float *hw;
    const float *b_hh;
    const float *prev0, *prev1;
    float *next0, *next1, *save, *src;
    const float *dnext0, *dnext1;
    float *dprev0, *dprev1, *dxw, *dhw;
    const float *dsrc;
    const float *param0, *param1, *param2, *param3, *param4, *param5, *param6, *param7;
    float *dparam0, *dparam1, *dparam2, *dparam3, *dparam4, *dparam5, *dparam6, *dparam7;
};

static inline recur_f recur_math_load_(const float *p, int tail) {
    if (tail == RECUR_VMATH_WIDTH) return recur_vm_load(p);
    float b[RECUR_VMATH_WIDTH] = {0};
    memcpy(b, p, (size_t)tail * sizeof(float));
    return recur_vm_load(b);
}

static inline void recur_math_store_(float *p, int tail, recur_f v) {
    if (tail == RECUR_VMATH_WIDTH) {
        recur_vm_store(p, v);
        return;
    }
    float b[RECUR_VMATH_WIDTH];
    recur_vm_store(b, v);
    memcpy(p, b, (size_t)tail * sizeof(float));
}

#define recur_load(array, off) recur_math_load_(m_->array + (off) + j_, tail_)
#define recur_store(array, off, v) recur_math_store_(m_->array + (off) + j_, tail_, (v))
#define recur_accum(array, off, v) recur_store(array, off, recur_load(array, off) + (v))
#define recur_has(array) (m_->array != NULL)

/* The functions of recur_f. */
#define recur_sigmoid(v) recur_vm_sigmoid(v)
#define recur_tanh(v) recur_vm_tanh(v)
#define recur_exp(v) recur_vm_exp(v)
#define recur_max(a, b) recur_vm_max((a), (b))
#define recur_min(a, b) recur_vm_min((a), (b))
#define recur_splat(c) recur_vm_set1(c)
/* 1 where v > 0, else 0 (the derivative of relu) */
#define recur_positive(v) recur_vm_sel(recur_vm_lt(recur_vm_set1(0.0f), (v)), recur_vm_set1(1.0f), recur_vm_set1(0.0f))
/* t where a < b, else f */
#define recur_select_lt(a, b, t, f) recur_vm_sel(recur_vm_lt((a), (b)), (t), (f))

#define RECUR_MATH_ROW_(p, w) ((p) ? (p) + (size_t)r_ * (size_t)(w) : NULL)

/* A kernel need not use every argument of its unit function. */
#if defined(__GNUC__)
#define RECUR_MATH_MAYBE_UNUSED_ __attribute__((unused))
#else
#define RECUR_MATH_MAYBE_UNUSED_
#endif

/* The CPU kernel `fn` (a recur_cell_fn) and the unit function its body is:
 * units [j_, j_ + tail_) of the row m_. The row's full vectors run with
 * tail_ the constant RECUR_VMATH_WIDTH (no tail test in the loads and
 * stores once inlined), its last units once more with the rest. */
#define RECUR_MATH_KERNEL(fn)                                                                      \
    static inline void fn##_unit_(const struct recur_math_row *m_, const int j_, const int tail_,  \
                                  const int H RECUR_MATH_MAYBE_UNUSED_,                            \
                                  const int variant RECUR_MATH_MAYBE_UNUSED_,                      \
                                  const int training RECUR_MATH_MAYBE_UNUSED_);                    \
    static void fn(const struct recur_cell_args *a) {                                             \
        const int H = a->H;                                                                        \
        const size_t GH = (size_t)a->n_gates * (size_t)H, SH = (size_t)a->n_save * (size_t)H;      \
        struct recur_math_row m;                                                                   \
        for (int r_ = 0; r_ < a->n; r_++) {                                                         \
            m.xw = RECUR_MATH_ROW_(a->xw, GH);                                                     \
            m.hw = RECUR_MATH_ROW_(a->hw, GH);                                                     \
            m.b_hh = a->b_hh;                                                                      \
            m.prev0 = RECUR_MATH_ROW_(a->prev[0], H);                                              \
            m.prev1 = RECUR_MATH_ROW_(a->prev[1], H);                                              \
            m.next0 = RECUR_MATH_ROW_(a->next[0], H);                                              \
            m.next1 = RECUR_MATH_ROW_(a->next[1], H);                                              \
            m.save = RECUR_MATH_ROW_(a->save, SH);                                                 \
            m.src = RECUR_MATH_ROW_(a->src, H);                                                    \
            m.dnext0 = RECUR_MATH_ROW_(a->dnext[0], H);                                            \
            m.dnext1 = RECUR_MATH_ROW_(a->dnext[1], H);                                            \
            m.dprev0 = RECUR_MATH_ROW_(a->dprev[0], H);                                            \
            m.dprev1 = RECUR_MATH_ROW_(a->dprev[1], H);                                            \
            m.dxw = RECUR_MATH_ROW_(a->dxw, GH);                                                   \
            m.dhw = RECUR_MATH_ROW_(a->dhw, GH);                                                   \
            m.dsrc = RECUR_MATH_ROW_(a->dsrc, H);                                                  \
            RECUR_MATH_PARAMS_(m, a, r_);                                                          \
            int j_ = 0;                                                                            \
            for (; j_ + RECUR_VMATH_WIDTH <= H; j_ += RECUR_VMATH_WIDTH)                           \
                fn##_unit_(&m, j_, RECUR_VMATH_WIDTH, H, a->variant, a->training);                 \
            if (j_ < H) fn##_unit_(&m, j_, H - j_, H, a->variant, a->training);                    \
        }                                                                                          \
    }                                                                                              \
    static inline void fn##_unit_(const struct recur_math_row *m_, const int j_, const int tail_,  \
                                  const int H RECUR_MATH_MAYBE_UNUSED_,                            \
                                  const int variant RECUR_MATH_MAYBE_UNUSED_,                      \
                                  const int training RECUR_MATH_MAYBE_UNUSED_)

#define RECUR_MATH_PARAMS_(m, a, r)                                                                \
    do {                                                                                           \
        const float *const *p_ = (a)->param;                                                       \
        float *const *d_ = (a)->dparam;                                                            \
        const int *w_ = (a)->param_floats;                                                         \
        (m).param0 = p_[0], (m).param1 = p_[1], (m).param2 = p_[2], (m).param3 = p_[3];            \
        (m).param4 = p_[4], (m).param5 = p_[5], (m).param6 = p_[6], (m).param7 = p_[7];            \
        (m).dparam0 = d_[0] ? d_[0] + (size_t)(r) * (size_t)w_[0] : NULL;                          \
        (m).dparam1 = d_[1] ? d_[1] + (size_t)(r) * (size_t)w_[1] : NULL;                          \
        (m).dparam2 = d_[2] ? d_[2] + (size_t)(r) * (size_t)w_[2] : NULL;                          \
        (m).dparam3 = d_[3] ? d_[3] + (size_t)(r) * (size_t)w_[3] : NULL;                          \
        (m).dparam4 = d_[4] ? d_[4] + (size_t)(r) * (size_t)w_[4] : NULL;                          \
        (m).dparam5 = d_[5] ? d_[5] + (size_t)(r) * (size_t)w_[5] : NULL;                          \
        (m).dparam6 = d_[6] ? d_[6] + (size_t)(r) * (size_t)w_[6] : NULL;                          \
        (m).dparam7 = d_[7] ? d_[7] + (size_t)(r) * (size_t)w_[7] : NULL;                          \
    } while (0)

#endif /* RECUR_MATH_H */
