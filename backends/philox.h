/*
 * philox.h: Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011), the counter-based generator behind dropout masks.
 * Element i of stream s under key k draws word i % 4 of
 * philox(counter = {i / 4, (i / 4) >> 32, s, s >> 32}, key = {k, k >> 32}),
 * so any element's value is computed on its own, in any order, on any
 * backend. kernels/philox.cl is the same function in OpenCL C; the tests
 * compare both with the published known-answer vectors.
 */
#ifndef RECUR_PHILOX_H
#define RECUR_PHILOX_H

#include <stdint.h>

static inline void recur_philox4x32(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0], p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0, c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[1] = (uint32_t)p1;
        ctr[3] = (uint32_t)p0;
        ctr[0] = c0;
        ctr[2] = c2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

/* The four words of draw q (elements 4q .. 4q+3) of stream `stream`. */
static inline void recur_philox_words(uint64_t seed, uint64_t stream, uint64_t q, uint32_t c[4]) {
    c[0] = (uint32_t)q, c[1] = (uint32_t)(q >> 32), c[2] = (uint32_t)stream, c[3] = (uint32_t)(stream >> 32);
    recur_philox4x32(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* The 24-bit uniform of one word. */
static inline float recur_philox_word_uniform(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

/* The uniform in [0, 1) with 24 bits of element i of stream `stream`. */
static inline float recur_philox_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
    uint32_t c[4];
    recur_philox_words(seed, stream, i >> 2, c);
    return recur_philox_word_uniform(c[i & 3]);
}

#endif
