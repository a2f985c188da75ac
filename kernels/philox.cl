/*
 * philox.cl: Philox-4x32-10 in OpenCL C, the same function as
 * backends/philox.h (the CPU's), and the dropout kernel built on it. Element
 * i of stream s under key k draws word i % 4 of
 * philox(counter = {i / 4, (i / 4) >> 32, s, s >> 32}, key = {k, k >> 32}),
 * so every backend draws the same mask, element by element, in any order.
 *
 * This file opens the shared program (philox.cl + shared.cl + train.cl), so
 * the contraction policy of every shared kernel is set here, as
 * recur-cell-cl.h sets it for the cells: no a*b+c fused unless written as
 * fma()/mad(), so a GPU rounds as the CPU backend does.
 */
#pragma OPENCL FP_CONTRACT OFF

static inline uint4 recur_philox4x32(uint4 c, uint k0, uint k1) {
    for (int r = 0; r < 10; r++) {
        const uint hi0 = mul_hi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        const uint hi1 = mul_hi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = (uint4)(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/* The 24-bit uniform of element i of (seed, stream): recur_philox_uniform. */
static inline float recur_philox_u(const ulong i, const uint seed_lo, const uint seed_hi, const uint stream_lo,
                                   const uint stream_hi) {
    const ulong q = i >> 2;
    const uint4 w = recur_philox4x32((uint4)((uint)q, (uint)(q >> 32), stream_lo, stream_hi), seed_lo, seed_hi);
    /* an array, as the dropout kernel does: Oclgrind drew wrong masks from a chain of
     * selects over w's components (PoCL and rusticl did not) */
    const uint words[4] = {w.x, w.y, w.z, w.w};
    return (float)(words[i & 3] >> 8) * (1.0f / 16777216.0f);
}

/*
 * Inverted dropout of elements [first, first + count) of a call:
 * dst[i] = u(i) >= p ? src[i] * scale : 0, u(i) the 24-bit uniform of
 * element first + i, scale = 1 / (1 - p) as the host computed it. dst may
 * equal src. Each work-item does the four elements of one Philox draw
 * (first is a multiple of 4). NDRange (ceil(count / 4) rounded up).
 */
__kernel void recur_dropout(__global float *dst_b, const ulong dst_o, __global const float *src_b, const ulong src_o,
                            const ulong count, const ulong first, const float p, const float scale,
                            const uint seed_lo, const uint seed_hi, const uint stream_lo, const uint stream_hi) {
    const ulong i0 = (ulong)get_global_id(0) * 4;
    if (i0 >= count) return;
    const ulong q = (first + i0) >> 2;
    const uint4 w = recur_philox4x32((uint4)((uint)q, (uint)(q >> 32), stream_lo, stream_hi), seed_lo, seed_hi);
    const uint words[4] = {w.x, w.y, w.z, w.w};
    for (int k = 0; k < 4 && i0 + (ulong)k < count; k++) {
        const float u = (float)(words[k] >> 8) * (1.0f / 16777216.0f);
        const ulong i = i0 + (ulong)k;
        dst_b[dst_o + i] = u >= p ? src_b[src_o + i] * scale : 0.0f;
    }
}
