/*
 * recur-cell-cl.h: the OpenCL C side of the cell plugin ABI.
 *
 * The host prepends this text to a cell's opencl_source before it builds
 * the program, so a cell's .cl file uses these macros without including
 * anything. It is installed beside recur-cell.h for plugin authors to read.
 *
 * A cell with S stages defines 2*S kernels, named after the cell (dashes
 * as underscores): NAME_forward_0, NAME_backward_0, NAME_forward_1, ...
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

#endif /* RECUR_CELL_CL_H */
