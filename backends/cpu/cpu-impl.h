/*
 * cpu-impl.h: what the CPU backend's files share (cpu.c: the device, the
 * threads, the kernels; matmul.c: the products in oneDNN's matmul, packed
 * weights and bf16). Not installed.
 */
#ifndef RECUR_CPU_IMPL_H
#define RECUR_CPU_IMPL_H

#include "backend-impl.h"
#include "pool.h"

struct recur_cpu_mm;

struct cpu_dev {
    uint32_t isa;              /* the chosen ISA: kernels may use it and anything below */
    uint32_t allowed;          /* the set of ISA bits kernels may need */
    struct recur_pool *pool;   /* for be->threads threads; made on first use */
    struct recur_cpu_mm *mm;   /* matmul.c's state; made on first use */
    int emulate_bf16;          /* RECUR_CPU_BF16=emulate: bf16 emulated even where oneDNN has it */
    int matmul_bf16;           /* RECUR_CPU_BF16=matmul: native bf16 by oneDNN's matmul even without AMX */
    void *pad_a;               /* the GEMM's padded copies of a transposed A (cpu.c), pad_cap bytes */
    size_t pad_cap;
};

/* A loop over every element of an operand, run often (rounding to bf16):
 * also compiled for AVX-512 and AVX2, picked when the library loads (GCC's
 * ifunc; x86-64). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RECUR_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define RECUR_CPU_CLONES
#endif

#define HOST(m) ((void *)((char *)(m).buf + (m).off))
#define HOSTF(m) ((float *)HOST(m))

/* Below this many multiply-adds a product stays on one thread (every GEMM
 * path: cpu.c's dnnl_sgemm split and matmul.c's packed and bf16 products). */
#define RECUR_CPU_GEMM_PARALLEL_MIN 131072

/* The threads for `work` units of which `min` are worth one thread (at most
 * be->threads, at least 1). */
int recur_cpu_team(struct recur_backend *be, size_t work, size_t min);
/* fn(arg, t, nt) for t < nt on be's pool, made (again) when the context's
 * thread count changed; on one thread when nt is 1 or no pool can be made. */
void recur_cpu_run(struct recur_backend *be, int nt, recur_pool_fn fn, void *arg);
/* Thread t of nt's share [*lo, *hi) of n items: contiguous, in order. */
void recur_cpu_share(size_t n, int t, int nt, size_t *lo, size_t *hi);

/* 64-byte aligned memory of at least `bytes` at *p, kept when large enough
 * (*cap: its bytes); NULL, with *p as it was, when none can be had. */
void *recur_cpu_grow(void **p, size_t *cap, size_t bytes);

/* The float32 GEMM (cpu.c: dnnl_sgemm or CBLAS, split over the threads). */
recur_status recur_cpu_sgemm(struct recur_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* matmul.c: the precisions, pack, gemm_packed and unpack slots, the
 * products in bf16 or f16 (prec not F32: recur_cpu_gemm_half), and the device's
 * matmul state's release. */
unsigned recur_cpu_precisions(struct recur_backend *be, unsigned *native);
recur_status recur_cpu_gemm_half(struct recur_backend *be, recur_dtype prec, int ta, int tb, int M, int N, int K,
                                 float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                                 int ldc);
recur_status recur_cpu_pack(struct recur_backend *be, recur_dtype prec, int trans_b, int K, int N, struct recur_mem B,
                            int ldb, void **packed);
recur_status recur_cpu_gemm_packed(struct recur_backend *be, int M, struct recur_mem A, int lda, const void *packed,
                                   float beta, struct recur_mem C, int ldc);
recur_status recur_cpu_repack(struct recur_backend *be, void *packed);
void recur_cpu_unpack(struct recur_backend *be, void *packed);
/* Whether float32 weights are packed by oneDNN's packed sgemm (found in the
 * library, and RECUR_CPU_SGEMM is not "plain"). */
int recur_cpu_sgemm_packs(void);
void recur_cpu_mm_free(struct recur_cpu_mm *mm);

#endif
