/*
 * train.cl: the OpenCL backend's training kernels (the "training" slots of
 * backends/backend-impl.h: index_add, xent, mse, sum, sgd, adam). Embedded
 * with shared.cl into one program (backends/opencl/meson.build), built with
 * -cl-std=CL1.2; OpenCL C 1.2 only, float only (no cl_khr_fp64), no atomics.
 *
 * Buffers come as (buffer, offset in floats); int32 index arrays as
 * (buffer, offset in ints). Every result is a function of the inputs and of
 * the launch shape alone, and the host derives the shape from the sizes and
 * the device's limits only, so the same call gives the same bits on every
 * run on one device. Reductions go through a fixed tree in local memory.
 */

/* Sum (max 0) or maximum (max 1) of the n floats of s[0..n), n a power of two,
 * in a fixed pairwise tree; every work-item of the group must call it, and s
 * is the work-item's own row of lanes. The result is left in s[0]. */
static inline void recur_tree(__local float *s, const int lane, const int n, const int max) {
    for (int step = n / 2; step > 0; step /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lane < step) {
            const float a = s[lane], b = s[lane + step];
            s[lane] = max ? (b > a ? b : a) : a + b;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

/*
 * Rows added with repeats, in order: for r = 0..rows-1 with idx[r] >= 0,
 * dst[idx[r]*ld_dst + j] += src[r*ld_src + j]. NDRange (width rounded up,
 * lanes), lanes a power of two: work-item (j, lane) owns the destination rows
 * i with i % lanes == lane and scans all rows for them, in increasing r, so
 * no two work-items write one element and each element adds its rows in the
 * order of the CPU's loop (the same bits).
 */
__kernel void recur_index_add(__global float *dst_b, const ulong dst_o, const int ld_dst, __global const float *src_b,
                              const ulong src_o, const int ld_src, __global const int *idx_b, const ulong idx_o,
                              const int rows, const int width, const int lanes) {
    const int j = (int)get_global_id(0), lane = (int)get_global_id(1);
    if (j >= width || lane >= lanes) return;
    __global const int *idx = idx_b + idx_o;
    for (int r = 0; r < rows; r++) {
        const int i = idx[r];
        if (i < 0 || (i & (lanes - 1)) != lane) continue;
        __global float *d = dst_b + dst_o + (size_t)i * (size_t)ld_dst + (size_t)j;
        *d += src_b[src_o + (size_t)r * (size_t)ld_src + (size_t)j];
    }
}

/*
 * Softmax cross-entropy of rows of K logits (row stride ld) against int32
 * targets; a target outside 0..K-1 (the contract's t < 0) gives loss 0 and
 * a zero row of dz. NDRange (LX, rows rounded up to LY), local (LX, LY), LX
 * a power of two: the LX lanes of one row take j = lane, lane + LX, ... in
 * order, then a tree over the lanes: the max first, then the sum of
 * exp(z - max); dz = scale * exp(z - max) / sum - scale [j == t],
 * loss = log(sum) - (z[t] - max). scratch: LX*LY floats.
 */
__kernel void recur_xent(__global const float *z_b, const ulong z_o, const int ld, __global const int *t_b,
                         const ulong t_o, const int rows, const int K, const float scale, __global float *dz_b,
                         const ulong dz_o, __global float *loss_b, const ulong loss_o, __local float *scratch) {
    const int lane = (int)get_local_id(0), LX = (int)get_local_size(0);
    const int r = (int)get_global_id(1);
    __local float *s = scratch + (size_t)get_local_id(1) * (size_t)LX;
    const int t = r < rows ? t_b[t_o + (size_t)r] : -1;
    const int live = t >= 0 && t < K;
    __global const float *z = z_b + z_o + (size_t)(r < rows ? r : 0) * (size_t)ld;
    float m = -INFINITY;
    if (live)
        for (int j = lane; j < K; j += LX) m = z[j] > m ? z[j] : m;
    s[lane] = m;
    recur_tree(s, lane, LX, 1);
    const float mx = s[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* everyone has read s[0] before it is reused */
    float sum = 0.0f;
    if (live)
        for (int j = lane; j < K; j += LX) sum += exp(z[j] - mx);
    s[lane] = sum;
    recur_tree(s, lane, LX, 0);
    if (r >= rows) return; /* no barrier follows */
    __global float *dz = dz_b + dz_o + (size_t)r * (size_t)ld;
    if (!live) {
        for (int j = lane; j < K; j += LX) dz[j] = 0.0f;
        if (lane == 0) loss_b[loss_o + (size_t)r] = 0.0f;
        return;
    }
    const float total = s[0], inv = 1.0f / total;
    for (int j = lane; j < K; j += LX) {
        float g = scale * (exp(z[j] - mx) * inv);
        if (j == t) g -= scale;
        dz[j] = g;
    }
    if (lane == 0) loss_b[loss_o + (size_t)r] = log(total) - (z[t] - mx);
}

/*
 * Squared error of rows of K values: for sel[r] >= 0, loss[r] = sum_j (p - v)^2
 * and dp = scale * 2 * (p - v); for sel[r] < 0 both are 0. The shape and the
 * order of xent: lanes j = lane, lane + LX, ..., then a tree. scratch: LX*LY floats.
 */
__kernel void recur_mse(__global const float *p_b, const ulong p_o, const int ld_p, __global const float *v_b,
                        const ulong v_o, const int ld_v, __global const int *sel_b, const ulong sel_o, const int rows,
                        const int K, const float scale2, __global float *dp_b, const ulong dp_o,
                        __global float *loss_b, const ulong loss_o, __local float *scratch) {
    const int lane = (int)get_local_id(0), LX = (int)get_local_size(0);
    const int r = (int)get_global_id(1);
    __local float *s = scratch + (size_t)get_local_id(1) * (size_t)LX;
    const int live = r < rows && sel_b[sel_o + (size_t)r] >= 0;
    const size_t rr = (size_t)(r < rows ? r : 0);
    __global const float *p = p_b + p_o + rr * (size_t)ld_p;
    __global const float *v = v_b + v_o + rr * (size_t)ld_v;
    __global float *dp = dp_b + dp_o + rr * (size_t)ld_p;
    float l = 0.0f;
    for (int j = lane; j < K && r < rows; j += LX) {
        const float e = live ? p[j] - v[j] : 0.0f;
        dp[j] = scale2 * e;
        l += e * e;
    }
    s[lane] = l;
    recur_tree(s, lane, LX, 0);
    if (r < rows && lane == 0) loss_b[loss_o + (size_t)r] = s[0];
}

/*
 * Partial sums (square: of squares) of x[0..count): work-group q of
 * RECUR_SUM_PARTS sums x[q*chunk .. min((q+1)*chunk, count)), chunk =
 * ceil(count / parts) from the host. NDRange (parts * L), local L, a power of
 * two: lane l adds the elements l, l + L, ... of its part in order, with
 * Kahan compensation, then a tree over the lanes; dst[q] = the part's sum.
 */
__kernel void recur_sum(__global const float *x_b, const ulong x_o, const ulong count, const ulong chunk,
                        const int square, __global float *dst_b, const ulong dst_o, __local float *scratch) {
    const int lane = (int)get_local_id(0), L = (int)get_local_size(0);
    const ulong q = (ulong)get_group_id(0);
    ulong i0 = q * chunk, i1 = i0 + chunk;
    if (i0 > count) i0 = count;
    if (i1 > count) i1 = count;
    __global const float *x = x_b + x_o;
    float s = 0.0f, c = 0.0f;
    for (ulong i = i0 + (ulong)lane; i < i1; i += (ulong)L) {
        const float a = x[i];
        const float y = (square ? a * a : a) - c;
        const float t = s + y;
        c = (t - s) - y;
        s = t;
    }
    scratch[lane] = s;
    recur_tree(scratch, lane, L, 0);
    if (lane == 0) dst_b[dst_o + q] = scratch[0];
}

/* torch.optim.SGD on elements [0, count): d = gscale*g + wd*w; momentum != 0:
 * v = momentum*v + d, w -= lr*v; momentum 0: w -= lr*d (v not touched, may
 * be NULL). NDRange (count rounded up). */
__kernel void recur_sgd(__global float *w_b, const ulong w_o, __global const float *g_b, const ulong g_o,
                        __global float *v_b, const ulong v_o, const ulong count, const float lr, const float momentum,
                        const float wd, const float gscale) {
    const size_t i = get_global_id(0);
    if (i >= count) return;
    __global float *w = w_b + w_o + i;
    const float d = gscale * g_b[g_o + i] + wd * *w;
    if (momentum == 0.0f) {
        *w -= lr * d;
        return;
    }
    __global float *v = v_b + v_o + i;
    const float nv = momentum * *v + d;
    *v = nv;
    *w -= lr * nv;
}

/* torch.optim.Adam on elements [0, count): d = gscale*g + wd*w;
 * m = b1*m + (1-b1)*d; v = b2*v + (1-b2)*d*d;
 * w -= step_size * m / (sqrt(v) / bc2_sqrt + eps). NDRange (count rounded up). */
__kernel void recur_adam(__global float *w_b, const ulong w_o, __global const float *g_b, const ulong g_o,
                         __global float *m_b, const ulong m_o, __global float *v_b, const ulong v_o,
                         const ulong count, const float step_size, const float b1, const float b2, const float eps,
                         const float bc2_sqrt, const float wd, const float gscale) {
    const size_t i = get_global_id(0);
    if (i >= count) return;
    __global float *w = w_b + w_o + i, *m = m_b + m_o + i, *v = v_b + v_o + i;
    const float d = gscale * g_b[g_o + i] + wd * *w;
    const float nm = b1 * *m + (1.0f - b1) * d;
    const float nv = b2 * *v + (1.0f - b2) * (d * d);
    *m = nm;
    *v = nv;
    *w -= step_size * nm / (sqrt(nv) / bc2_sqrt + eps);
}
