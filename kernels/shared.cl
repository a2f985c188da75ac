/*
 * shared.cl: the OpenCL backend's own kernels (the shared-kernel slots of
 * backends/backend-impl.h). Embedded into librecur by kernels/embed.py and
 * built once per context with -cl-std=CL1.2; OpenCL C 1.2 only.
 *
 * Every buffer comes as (buffer, offset in floats), like the cell kernels,
 * so the host never needs sub-buffers. Sizes are ints (the engine's GEMM
 * dimensions are ints too); index arithmetic is in size_t.
 */

/* dst[r*ld + j] = row[j] for r < rows, j < width. NDRange (width, rows). */
__kernel void recur_rows_set(__global float *dst_b, const ulong dst_o, const int ld, __global const float *row_b,
                             const ulong row_o, const int width, const int rows) {
    const int j = (int)get_global_id(0), r = (int)get_global_id(1);
    if (j >= width || r >= rows) return;
    dst_b[dst_o + (size_t)r * (size_t)ld + (size_t)j] = row_b[row_o + (size_t)j];
}

/* dst[r*ld + j] *= beta for r < rows, j < width; beta 0 writes 0 without
 * reading (Inf and NaN become 0). NDRange (width, rows). */
__kernel void recur_scale(__global float *dst_b, const ulong dst_o, const int ld, const int width, const int rows,
                          const float beta) {
    const int j = (int)get_global_id(0), r = (int)get_global_id(1);
    if (j >= width || r >= rows) return;
    __global float *d = dst_b + dst_o + (size_t)r * (size_t)ld + (size_t)j;
    *d = beta == 0.0f ? 0.0f : beta * *d;
}

/*
 * dst[j] = beta*dst[j] + sum_r src[r*ld + j], beta 0 (dst not read) or 1.
 * One work-group row: NDRange (width rounded up, LY), local (LX, LY), LY a
 * power of two; work-item (j, y) sums the rows y, y+LY, ..., then the LY
 * partial sums of column j are added in local memory (scratch: LX*LY floats).
 */
__kernel void recur_colsum(__global float *dst_b, const ulong dst_o, const float beta, __global const float *src_b,
                           const ulong src_o, const int rows, const int width, const int ld,
                           __local float *scratch) {
    const int j = (int)get_global_id(0);
    const int lx = (int)get_local_id(0), ly = (int)get_local_id(1);
    const int LX = (int)get_local_size(0), LY = (int)get_local_size(1);
    float s = 0.0f;
    if (j < width)
        for (int r = ly; r < rows; r += LY) s += src_b[src_o + (size_t)r * (size_t)ld + (size_t)j];
    scratch[ly * LX + lx] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int step = LY / 2; step > 0; step /= 2) {
        if (ly < step) scratch[ly * LX + lx] += scratch[(ly + step) * LX + lx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ly == 0 && j < width) {
        const float sum = scratch[lx];
        __global float *d = dst_b + dst_o + (size_t)j;
        *d = beta == 0.0f ? sum : beta * *d + sum;
    }
}

/* y[i] += x[i] for i < count. NDRange (count rounded up). */
__kernel void recur_add(__global float *y_b, const ulong y_o, __global const float *x_b, const ulong x_o,
                        const ulong count) {
    const size_t i = get_global_id(0);
    if (i >= count) return;
    y_b[y_o + i] += x_b[x_o + i];
}

/* dst[j*ld_dst + i] = src[i*ld_src + j] for i < rows, j < cols (out of
 * place). NDRange (cols, rows): reads coalesced; it runs once per weight
 * change, never in the time loop. */
__kernel void recur_transpose(__global float *dst_b, const ulong dst_o, const int ld_dst, __global const float *src_b,
                              const ulong src_o, const int ld_src, const int rows, const int cols) {
    const int j = (int)get_global_id(0), i = (int)get_global_id(1);
    if (j >= cols || i >= rows) return;
    dst_b[dst_o + (size_t)j * (size_t)ld_dst + (size_t)i] = src_b[src_o + (size_t)i * (size_t)ld_src + (size_t)j];
}

/* dst[i*cols + j] = src[i*ld_src + j] rounded to the nearest bfloat16
 * (f16 == 0) or IEEE binary16 (f16 != 0) value, ties to even, kept as a
 * float: a GEMM's operands in bf16 or f16 precision (opencl.c: cl_gemm),
 * dense in a scratch buffer. NDRange (cols, rows). bf16: the largest
 * finite values round to Inf, as torch's. f16: from 65520 up to Inf,
 * below 2^-14 to a multiple of 2^-24 (subnormals), below 2^-25 to a
 * signed zero. A NaN stays a quiet NaN. backend-host.h rounds the same
 * way on the host (recur_f32_to_bf16, recur_round_f16). On the bits
 * (uint): no float load, store or arithmetic that a device could flush to
 * zero or make quiet (the one float product, m * 2^-24, is normal). */
__kernel void recur_round(__global uint *dst_b, const ulong dst_o, __global const uint *src_b, const ulong src_o,
                          const int ld_src, const int rows, const int cols, const int f16) {
    const int j = (int)get_global_id(0), i = (int)get_global_id(1);
    if (j >= cols || i >= rows) return;
    const uint u = src_b[src_o + (size_t)i * (size_t)ld_src + (size_t)j], a = u & 0x7fffffffu;
    uint r;
    if (!f16) {
        r = a > 0x7f800000u ? (u & 0xffff0000u) | 0x00400000u : (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    } else if (a > 0x7f800000u) {
        r = (u | 0x00400000u) & 0xffffe000u;
    } else if (a >= 0x477ff000u) {
        r = (u & 0x80000000u) | 0x7f800000u;
    } else if (a >= 0x38800000u) {
        r = (u & 0x80000000u) | ((a + 0xfffu + ((a >> 13) & 1u)) & 0xffffe000u);
    } else {
        const uint e = a >> 23, shift = e < 95u ? 31u : 126u - e, sig = (a & 0x7fffffu) | 0x800000u;
        const uint m = (sig + (1u << (shift - 1u)) - 1u + ((sig >> shift) & 1u)) >> shift;
        r = (u & 0x80000000u) | (m ? as_uint((float)m * 0x1p-24f) : 0u);
    }
    dst_b[dst_o + (size_t)i * (size_t)cols + (size_t)j] = r;
}

/* bf16 storage (the saved activations of a bf16 reserve): dst16[i] =
 * src[i] rounded to nearest even, as recur_round rounds (a NaN stays a quiet
 * NaN; the largest finite values become Inf), and back, exactly. On the
 * bits, for the reason recur_round gives. NDRange (count rounded up). */
__kernel void recur_to_bf16(__global ushort *dst_b, const ulong dst_o, __global const uint *src_b, const ulong src_o,
                            const ulong count) {
    const size_t i = get_global_id(0);
    if (i >= count) return;
    const uint u = src_b[src_o + i];
    const uint r = (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    dst_b[dst_o + i] = (ushort)r;
}

__kernel void recur_from_bf16(__global uint *dst_b, const ulong dst_o, __global const ushort *src_b,
                              const ulong src_o, const ulong count) {
    const size_t i = get_global_id(0);
    if (i >= count) return;
    dst_b[dst_o + i] = (uint)src_b[src_o + i] << 16;
}

/* Row gather: dst[r*ld_dst + j] = src[idx[r]*ld_src + j]. NDRange (width, rows). */
__kernel void recur_gather(__global float *dst_b, const ulong dst_o, const int ld_dst, __global const float *src_b,
                           const ulong src_o, const int ld_src, __global const int *idx_b, const ulong idx_o,
                           const int rows, const int width) {
    const int j = (int)get_global_id(0), r = (int)get_global_id(1);
    if (j >= width || r >= rows) return;
    const size_t from = (size_t)idx_b[idx_o + (size_t)r];
    dst_b[dst_o + (size_t)r * (size_t)ld_dst + (size_t)j] = src_b[src_o + from * (size_t)ld_src + (size_t)j];
}

/* Row scatter: dst[idx[r]*ld_dst + j] = (add ? dst[..] : 0) + src[r*ld_src + j].
 * The rows of idx are distinct (the engine's permutations). NDRange (width, rows). */
__kernel void recur_scatter(__global float *dst_b, const ulong dst_o, const int ld_dst, __global const float *src_b,
                            const ulong src_o, const int ld_src, __global const int *idx_b, const ulong idx_o,
                            const int rows, const int width, const int add) {
    const int j = (int)get_global_id(0), r = (int)get_global_id(1);
    if (j >= width || r >= rows) return;
    const size_t to = (size_t)idx_b[idx_o + (size_t)r];
    __global float *d = dst_b + dst_o + to * (size_t)ld_dst + (size_t)j;
    const float v = src_b[src_o + (size_t)r * (size_t)ld_src + (size_t)j];
    *d = add ? *d + v : v;
}

/*
 * Zoneout of rows x H states (backend-impl.h, the zoneout slot): m(r, j) is
 * u(i) < p, u the 24-bit Philox uniform of element i = (base + idx[r])*H + j.
 * mode 0 (train): out = m ? a : b; 1 (inference): out = p*a + q*b;
 * 2 (backward): a = m ? b : 0, out = m ? 0 : b (out may be b).
 * NDRange (H, rows).
 */
__kernel void recur_zoneout(__global float *out_b, const ulong out_o, __global float *a_b, const ulong a_o,
                            __global const float *b_b, const ulong b_o, __global const int *idx_b, const ulong idx_o,
                            const int rows, const int H, const ulong base, const float p, const float q,
                            const uint seed_lo, const uint seed_hi, const uint stream_lo, const uint stream_hi,
                            const int mode) {
    const int j = (int)get_global_id(0), r = (int)get_global_id(1);
    if (j >= H || r >= rows) return;
    const size_t e = (size_t)r * (size_t)H + (size_t)j;
    const float b = b_b[b_o + e];
    if (mode == 1) {
        out_b[out_o + e] = p * a_b[a_o + e] + q * b;
        return;
    }
    const ulong i = (base + (ulong)idx_b[idx_o + (size_t)r]) * (ulong)H + (ulong)j;
    const int m = recur_philox_u(i, seed_lo, seed_hi, stream_lo, stream_hi) < p;
    if (mode == 0) {
        out_b[out_o + e] = m ? a_b[a_o + e] : b;
    } else {
        a_b[a_o + e] = m ? b : 0.0f;
        out_b[out_o + e] = m ? 0.0f : b;
    }
}
