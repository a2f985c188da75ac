/*
 * cpuid.c: which instruction sets the CPU and the OS support, found once.
 *
 * On x86-64 a feature counts only when CPUID reports it AND the OS saves
 * its registers (XGETBV): AVX2 needs XMM|YMM state, AVX-512 also the opmask
 * and both ZMM halves. On arm64, NEON is architectural.
 */
#include <pthread.h>
#include <stdint.h>

#include "context.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect(void) {
    unsigned a, b, c, d;
    uint32_t isa = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr0 = xgetbv0();
    int os_avx = (xcr0 & 0x6) == 0x6;       /* XMM and YMM state */
    int os_avx512 = (xcr0 & 0xe6) == 0xe6;  /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    if (os_avx && avx2 && fma) isa |= RECUR_ISA_AVX2;
    if (os_avx512 && (isa & RECUR_ISA_AVX2) && f && dq && bw && vl) isa |= RECUR_ISA_AVX512;
    return isa;
}
#elif defined(__aarch64__)
static uint32_t detect(void) { return RECUR_ISA_NEON; }
#else
static uint32_t detect(void) { return 0; }
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint32_t supported;

static void init(void) { supported = detect(); }

uint32_t recur_cpu_isa_supported(void) {
    pthread_once(&once, init);
    return supported;
}

uint32_t recur_cpu_isa_compiled(void) {
#if defined(__x86_64__)
    return RECUR_ISA_AVX2 | RECUR_ISA_AVX512;
#elif defined(__aarch64__)
    return RECUR_ISA_NEON;
#else
    return 0;
#endif
}
