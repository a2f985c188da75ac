/*
 * recur-cell-cl.h: the OpenCL C side of the cell plugin ABI.
 *
 * The host prepends this text to a cell's opencl_source before it builds
 * the program, so a cell's .cl file uses these macros without including
 * anything. It is installed beside recur-cell.h for plugin authors to read.
 *
 * A cell with S stages defines 2*S kernels, named after the cell (dashes
 * as underscores): NAME_forward_0, NAME_backward_0, NAME_forward_1, ...
 * A cell written once for the CPU and OpenCL (recur-math.h) declares them
 * with RECUR_MATH_KERNEL, defined at the end of this file; a cell with
 * hand-written OpenCL C uses the rest of this header.
 * Each is declared with RECUR_CELL_KERNEL(kernel_name) and begins with
 * RECUR_CELL_BIND, which defines the work-item's unit j (0 <= j < H) and row
 * r (0 <= r < n), returns for padding work-items, and binds the arrays of
 * struct recur_cell_args (recur-cell.h) by the same names, as __global
 * pointers already offset to this call's first row: xw, hw, b_hh, prev0,
 * prev1, next0, next1, save, src, dnext0, dnext1, dprev0, dprev1, dxw, dhw,
 * dsrc, param0..param7 and dparam0..dparam7 (b_hh and paramK are not per
 * row: the bias and the parameters themselves). An array that the C side
 * would get as NULL is a null pointer here.
 * Offsets (the _o arguments) count floats. Names BIND takes: j, r, n, H,
 * variant, training, scratch and the arrays with their _b and _o forms.
 * Every work-item handles one unit of one row; rows and units are
 * independent, exactly as on the CPU. The host builds with -D RECUR_G=<G>
 * (the cell's gate count) and -cl-std=CL1.2; only OpenCL 1.2 is required.
 *
 * A cell with RECUR_CELL_ROW_KERNELS begins its kernels with
 * RECUR_CELL_ROW_BIND instead: one work-group of L work-items per row r
 * (L a power of two the host picks from the kernel's work-group size, at most
 * 256), the same arrays, lid (0 <= lid < L) and L. The units of the row are
 * then for (int j = lid; j < H; j += L), and recur_row_sum(scratch, v),
 * called by every work-item of the group alike (never under a condition
 * that differs between them), returns the sum of v over the group. No
 * work-item returns early, so barriers are safe. recur_row_ln_stats and
 * recur_row_ln_back, built on it, are a layer norm's row statistics and its
 * backward (lstm-ln, gru-ln).
 */
#ifndef RECUR_CELL_CL_H
#define RECUR_CELL_CL_H

#define RECUR_CELL_BUF(type, name) __global type *name##_b, const ulong name##_o

#define RECUR_CELL_KERNEL(fn)                                                                      \
    __kernel void fn(const int n, const int H, const int variant, const int training,              \
                     RECUR_CELL_BUF(const float, xw), RECUR_CELL_BUF(float, hw),                   \
                     RECUR_CELL_BUF(const float, b_hh), RECUR_CELL_BUF(const float, prev0),        \
                     RECUR_CELL_BUF(const float, prev1), RECUR_CELL_BUF(float, next0),             \
                     RECUR_CELL_BUF(float, next1), RECUR_CELL_BUF(float, save),                    \
                     RECUR_CELL_BUF(float, src), RECUR_CELL_BUF(const float, dnext0),              \
                     RECUR_CELL_BUF(const float, dnext1), RECUR_CELL_BUF(float, dprev0),           \
                     RECUR_CELL_BUF(float, dprev1), RECUR_CELL_BUF(float, dxw),                    \
                     RECUR_CELL_BUF(float, dhw), RECUR_CELL_BUF(const float, dsrc),                \
                     RECUR_CELL_BUF(const float, param0), RECUR_CELL_BUF(const float, param1),     \
                     RECUR_CELL_BUF(const float, param2), RECUR_CELL_BUF(const float, param3),     \
                     RECUR_CELL_BUF(const float, param4), RECUR_CELL_BUF(const float, param5),     \
                     RECUR_CELL_BUF(const float, param6), RECUR_CELL_BUF(const float, param7),     \
                     RECUR_CELL_BUF(float, dparam0), RECUR_CELL_BUF(float, dparam1),               \
                     RECUR_CELL_BUF(float, dparam2), RECUR_CELL_BUF(float, dparam3),               \
                     RECUR_CELL_BUF(float, dparam4), RECUR_CELL_BUF(float, dparam5),               \
                     RECUR_CELL_BUF(float, dparam6), RECUR_CELL_BUF(float, dparam7),               \
                     __local float *scratch)

#define RECUR_CELL_PTR(type, name) __global type *name = name##_b ? name##_b + name##_o : 0

#define RECUR_CELL_BIND                                                                            \
    const int j = (int)get_global_id(0), r = (int)get_global_id(1);                                \
    if (j >= H || r >= n) return;                                                                  \
    RECUR_CELL_ARRAYS

#define RECUR_CELL_ROW_BIND                                                                        \
    const int r = (int)get_group_id(1), lid = (int)get_local_id(0), L = (int)get_local_size(0);     \
    (void)L;                                                                                       \
    RECUR_CELL_ARRAYS

#define RECUR_CELL_ARRAYS                                                                          \
    RECUR_CELL_PTR(const float, xw);                                                               \
    RECUR_CELL_PTR(float, hw);                                                                     \
    RECUR_CELL_PTR(const float, b_hh);                                                             \
    RECUR_CELL_PTR(const float, prev0);                                                            \
    RECUR_CELL_PTR(const float, prev1);                                                            \
    RECUR_CELL_PTR(float, next0);                                                                  \
    RECUR_CELL_PTR(float, next1);                                                                  \
    RECUR_CELL_PTR(float, save);                                                                   \
    RECUR_CELL_PTR(float, src);                                                                    \
    RECUR_CELL_PTR(const float, dnext0);                                                           \
    RECUR_CELL_PTR(const float, dnext1);                                                           \
    RECUR_CELL_PTR(float, dprev0);                                                                 \
    RECUR_CELL_PTR(float, dprev1);                                                                 \
    RECUR_CELL_PTR(float, dxw);                                                                    \
    RECUR_CELL_PTR(float, dhw);                                                                    \
    RECUR_CELL_PTR(const float, dsrc);                                                             \
    RECUR_CELL_PTR(const float, param0);                                                           \
    RECUR_CELL_PTR(const float, param1);                                                           \
    RECUR_CELL_PTR(const float, param2);                                                           \
    RECUR_CELL_PTR(const float, param3);                                                           \
    RECUR_CELL_PTR(const float, param4);                                                           \
    RECUR_CELL_PTR(const float, param5);                                                           \
    RECUR_CELL_PTR(const float, param6);                                                           \
    RECUR_CELL_PTR(const float, param7);                                                           \
    RECUR_CELL_PTR(float, dparam0);                                                                \
    RECUR_CELL_PTR(float, dparam1);                                                                \
    RECUR_CELL_PTR(float, dparam2);                                                                \
    RECUR_CELL_PTR(float, dparam3);                                                                \
    RECUR_CELL_PTR(float, dparam4);                                                                \
    RECUR_CELL_PTR(float, dparam5);                                                                \
    RECUR_CELL_PTR(float, dparam6);                                                                \
    RECUR_CELL_PTR(float, dparam7);                                                                \
    (void)variant;                                                                                 \
    (void)training;                                                                                \
    (void)scratch

/* The sum of v over the work-group (row kernels): every work-item of the
 * group calls it alike and gets the sum. scratch holds the group's L floats;
 * L is a power of two. */
static float recur_row_sum(__local float *scratch, float v) {
    const int lid = (int)get_local_id(0), L = (int)get_local_size(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int width = L / 2; width > 0; width /= 2) {
        if (lid < width) scratch[lid] += scratch[lid + width];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float sum = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* scratch is free again for the next call */
    return sum;
}

/* Layer-norm statistics of a row's n values v[k] (row kernels; the
 * work-item reads k = lid, lid + L, ...): the mean into *mean, and returns
 * 1/sqrt(var + eps), population variance. Every work-item calls it alike. */
static float recur_row_ln_stats(__local float *scratch, __global const float *v, int n, float eps,
                                float *mean) {
    const int lid = (int)get_local_id(0), L = (int)get_local_size(0);
    float sum = 0.0f;
    for (int k = lid; k < n; k += L) sum += v[k];
    const float m = recur_row_sum(scratch, sum) / (float)n;
    float sq = 0.0f;
    for (int k = lid; k < n; k += L) sq += (v[k] - m) * (v[k] - m);
    *mean = m;
    return 1.0f / sqrt(recur_row_sum(scratch, sq) / (float)n + eps);
}

/* The backward of a row's layer norm out = LN(v) over G*H entries (row
 * kernels), entry k = g*H + j held by the work-item of unit j (j = lid,
 * lid + L, ...): d holds dL/d out and becomes dL/dv = rstd * (d - mean(d) -
 * out * mean(d * out)); s1 and s2 are this work-item's sums of d and of
 * d * out over its own entries. Every work-item calls it alike. */
static void recur_row_ln_back(__local float *scratch, __global float *d, __global const float *out,
                              float rstd, float s1, float s2, int H, int G) {
    const int lid = (int)get_local_id(0), L = (int)get_local_size(0);
    const float m1 = recur_row_sum(scratch, s1) / (float)(G * H);
    const float m2 = recur_row_sum(scratch, s2) / (float)(G * H);
    for (int j = lid; j < H; j += L)
        for (int g = 0; g < G; g++) {
            const int k = g * H + j;
            d[k] = rstd * (d[k] - m1 - out[k] * m2);
        }
}

/* The logistic sigmoid, stable for large |v|. */
static float recur_sigmoid(float v) { return 1.0f / (1.0f + exp(-v)); }

/* No implicit fused multiply-add: the kernels then round exactly as the
 * plugins' C kernels do, which the conformance tests rely on. */
#pragma OPENCL FP_CONTRACT OFF

/*
 * recur-math.h's single-source kernels in OpenCL C: RECUR_MATH_KERNEL(fn)
 * is a kernel of one work-item per unit whose body computes unit j of row r
 * through recur_load, recur_store, recur_accum and recur_has. The host
 * builds with -DRECUR_NSAVE=<n_save> and -DRECUR_PW0..7=<floats of
 * parameter k> (H-dependent expressions) besides -DRECUR_G.
 */
typedef float recur_f;

struct recur_math_row {
    __global const float *xw;
    __global float *hw;
    __global const float *b_hh;
    __global const float *prev0, *prev1;
    __global float *next0, *next1, *save, *src;
    __global const float *dnext0, *dnext1;
    __global float *dprev0, *dprev1, *dxw, *dhw;
    __global const float *dsrc;
    __global const float *param0, *param1, *param2, *param3, *param4, *param5, *param6, *param7;
    __global float *dparam0, *dparam1, *dparam2, *dparam3, *dparam4, *dparam5, *dparam6, *dparam7;
    int j;
};

#define recur_load(array, off) (m_->array[(off) + m_->j])
#define recur_store(array, off, v) (m_->array[(off) + m_->j] = (v))
#define recur_accum(array, off, v) (m_->array[(off) + m_->j] += (v))
#define recur_has(array) (m_->array != 0)
#define recur_tanh(v) tanh(v)
#define recur_exp(v) exp(v)
#define recur_max(a, b) fmax((a), (b))
#define recur_min(a, b) fmin((a), (b))
#define recur_splat(c) (c)
#define recur_positive(v) ((v) > 0.0f ? 1.0f : 0.0f)
#define recur_select_lt(a, b, t, f) ((a) < (b) ? (t) : (f))

#define RECUR_MATH_ROW_(p, w) ((p) ? (p) + (size_t)r * (size_t)(w) : 0)

/* The host always defines these; the defaults let a compiler check a file alone. */
#ifndef RECUR_NSAVE
#define RECUR_NSAVE 0
#endif
#ifndef RECUR_PW0
#define RECUR_PW0 0
#endif
#ifndef RECUR_PW1
#define RECUR_PW1 0
#endif
#ifndef RECUR_PW2
#define RECUR_PW2 0
#endif
#ifndef RECUR_PW3
#define RECUR_PW3 0
#endif
#ifndef RECUR_PW4
#define RECUR_PW4 0
#endif
#ifndef RECUR_PW5
#define RECUR_PW5 0
#endif
#ifndef RECUR_PW6
#define RECUR_PW6 0
#endif
#ifndef RECUR_PW7
#define RECUR_PW7 0
#endif

#define RECUR_MATH_KERNEL(fn)                                                                      \
    static void fn##_unit_(const struct recur_math_row *m_, const int H, const int variant,         \
                           const int training);                                                  \
    RECUR_CELL_KERNEL(fn) {                                                                        \
        RECUR_CELL_BIND;                                                                           \
        const size_t GH = (size_t)RECUR_G * (size_t)H, SH = (size_t)RECUR_NSAVE * (size_t)H;       \
        struct recur_math_row m;                                                                   \
        m.xw = RECUR_MATH_ROW_(xw, GH);                                                            \
        m.hw = RECUR_MATH_ROW_(hw, GH);                                                            \
        m.b_hh = b_hh;                                                                             \
        m.prev0 = RECUR_MATH_ROW_(prev0, H);                                                       \
        m.prev1 = RECUR_MATH_ROW_(prev1, H);                                                       \
        m.next0 = RECUR_MATH_ROW_(next0, H);                                                       \
        m.next1 = RECUR_MATH_ROW_(next1, H);                                                       \
        m.save = RECUR_MATH_ROW_(save, SH);                                                        \
        m.src = RECUR_MATH_ROW_(src, H);                                                           \
        m.dnext0 = RECUR_MATH_ROW_(dnext0, H);                                                     \
        m.dnext1 = RECUR_MATH_ROW_(dnext1, H);                                                     \
        m.dprev0 = RECUR_MATH_ROW_(dprev0, H);                                                     \
        m.dprev1 = RECUR_MATH_ROW_(dprev1, H);                                                     \
        m.dxw = RECUR_MATH_ROW_(dxw, GH);                                                          \
        m.dhw = RECUR_MATH_ROW_(dhw, GH);                                                          \
        m.dsrc = RECUR_MATH_ROW_(dsrc, H);                                                         \
        m.param0 = param0, m.param1 = param1, m.param2 = param2, m.param3 = param3;                \
        m.param4 = param4, m.param5 = param5, m.param6 = param6, m.param7 = param7;                \
        m.dparam0 = RECUR_MATH_ROW_(dparam0, RECUR_PW0);                                           \
        m.dparam1 = RECUR_MATH_ROW_(dparam1, RECUR_PW1);                                           \
        m.dparam2 = RECUR_MATH_ROW_(dparam2, RECUR_PW2);                                           \
        m.dparam3 = RECUR_MATH_ROW_(dparam3, RECUR_PW3);                                           \
        m.dparam4 = RECUR_MATH_ROW_(dparam4, RECUR_PW4);                                           \
        m.dparam5 = RECUR_MATH_ROW_(dparam5, RECUR_PW5);                                           \
        m.dparam6 = RECUR_MATH_ROW_(dparam6, RECUR_PW6);                                           \
        m.dparam7 = RECUR_MATH_ROW_(dparam7, RECUR_PW7);                                           \
        m.j = j;                                                                                   \
        fn##_unit_(&m, H, variant, training);                                                      \
    }                                                                                              \
    static void fn##_unit_(const struct recur_math_row *m_, const int H, const int variant,         \
                           const int training)

#endif /* RECUR_CELL_CL_H */
