/*
 * cpuid.c: which instruction sets the CPU and the OS support, found once.
 *
 * On x86-64 a feature counts only when CPUID reports it AND the OS saves
 * its registers (XGETBV): AVX2 needs XMM|YMM state, AVX-512 also the opmask
 * and both ZMM halves. On arm64, NEON is architectural.
 *
 * Each ISA of RECUR_ISA_LIST (recur-cell.h) for the architecture compiled
 * has a condition DETECT_<ID> here; a new ISA without one does not compile.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "backend-impl.h"

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* The feature bits the ISAs need; all 0 when the CPU or the OS lacks AVX. */
struct features {
    int fma, avx2, avx512f, avx512dq, avx512bw, avx512vl;
    int os_avx;    /* XMM and YMM state */
    int os_avx512; /* plus opmask, ZMM_Hi256, Hi16_ZMM */
};

static struct features probe(void) {
    struct features x = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return x;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return x;
    x.fma = (c >> 12) & 1;
    uint64_t xcr0 = xgetbv0();
    x.os_avx = (xcr0 & 0x6) == 0x6;
    x.os_avx512 = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return x;
    x.avx2 = (b >> 5) & 1;
    x.avx512f = (b >> 16) & 1;
    x.avx512dq = (b >> 17) & 1;
    x.avx512bw = (b >> 30) & 1;
    x.avx512vl = (b >> 31) & 1;
    return x;
}

#define DETECT_AVX2(x) ((x).os_avx && (x).avx2 && (x).fma)
#define DETECT_AVX512(x) ((x).os_avx512 && DETECT_AVX2(x) && (x).avx512f && (x).avx512dq && (x).avx512bw && (x).avx512vl)
#else
struct features {
    int none;
};
static struct features probe(void) { return (struct features){0}; }
#define DETECT_NEON(x) 1 /* architectural on arm64 */
#endif
#define DETECT_SCALAR(x) 1

static uint32_t detect(void) {
    struct features x = probe();
    uint32_t isa = 0;
#define DETECT_ROW(u, ID, name, bit, arch, implies, flags) RECUR_ISA_IF(arch)(if (DETECT_##ID(x)) isa |= (bit);)
    RECUR_ISA_LIST(DETECT_ROW, )
#undef DETECT_ROW
    (void)x;
    return isa;
}

/* The CPU's half-precision arithmetic (CPUID and XCR0; the fp32 kernels use
 * none of it): what bf16 or fp16 GEMMs could run on here. */
static void half_probe(char *buf, size_t len) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    int f16c = 0, bf16 = 0, amx_bf16 = 0, amx_tile = 0, fp16 = 0;
    uint64_t xcr0 = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) && ((c >> 27) & 1)) {
        f16c = (c >> 29) & 1;
        xcr0 = xgetbv0();
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        int max_sub = (int)a;
        amx_bf16 = (d >> 22) & 1;
        fp16 = (d >> 23) & 1;
        amx_tile = (d >> 24) & 1;
        if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) bf16 = (a >> 5) & 1;
    }
    int os512 = (xcr0 & 0xe6) == 0xe6, os_amx = (xcr0 & 0x60000) == 0x60000;
    snprintf(buf, len, "bf16: %s%s%s; fp16: %s%s", amx_bf16 && amx_tile && os_amx ? "AMX-BF16, " : "",
             bf16 && os512 ? "AVX512-BF16" : "no dot products", f16c ? "" : ", no conversions",
             fp16 && os512 ? "AVX512-FP16" : "no arithmetic", f16c ? " (F16C conversions)" : "");
#else
    snprintf(buf, len, "bf16, fp16: %s", "the architecture's (not probed)");
#endif
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint32_t supported;
static char half[128];

static void init(void) {
    supported = detect();
    half_probe(half, sizeof half);
}

uint32_t recur_be_cpu_isa(void) {
    pthread_once(&once, init);
    return supported;
}

const char *recur_be_cpu_half(void) {
    pthread_once(&once, init);
    return half;
}
