/*
 * matmul.c: the CPU backend's products in bfloat16 and float16 (operands
 * rounded to nearest even, float32 sums), and weights packed once for the
 * many products of a time loop.
 *
 * bf16 is native where oneDNN has a bf16 brgemm matmul for this CPU
 * (AVX512-BF16 or AMX). Without AMX it runs oneDNN's packed bf16 gemm
 * (gemm_bf16bf16f32_pack and _compute, found as the float32 ones below):
 * each part of the weight rounded and packed once per weight version, the
 * other operand rounded into a dense bf16 copy per call, each part written
 * straight into C (B-row steps 1.38 -> 1.52x float32 for the RNN, against
 * the matmul below). With AMX, or RECUR_CPU_BF16=matmul, it runs oneDNN's
 * matmul primitive: a weight operand is packed by a reorder into the
 * layout that matmul chooses (format_tag_any), in bf16, once per weight
 * version; the other operand is rounded into a dense bf16 copy per call.
 * The columns of op(B) are split into one part per thread, each with its
 * own primitives, so every call runs on the backend's pool, one thread per
 * part, and each element of C is summed by one thread in a fixed order:
 * for a given thread count, the same bits from run to run. Primitives are
 * created once per part and shape (row count M, beta) and kept; each thread
 * has its own stream and scratchpad (oneDNN's user scratchpad mode: parts
 * run concurrently). oneDNN 2.6's brgemm takes only dense source and
 * destination rows (a leading dimension past the columns falls back to
 * gemm:jit, or to ref:any against packed weights, hundreds of times
 * slower), so a part whose columns are not whole rows of C is written to a
 * dense block of its thread and added into C.
 *
 * Elsewhere (no AVX512-BF16 or AMX, no oneDNN, or RECUR_CPU_BF16=emulate)
 * bf16 is emulated with the same results: both operands rounded to bf16
 * values held in floats, then the float32 GEMM (a product of two bf16
 * values is exact in float32). float16 is always emulated so: a product of
 * two f16 values (11 significant bits, exponents from -24) is exact in
 * float32 too; oneDNN 2.6 has f16 matmuls only for AVX512-FP16, which no
 * machine of ours had to test them on.
 *
 * float32 weights are packed by oneDNN's packed sgemm, the GEMM its own
 * float32 RNN primitives run (sgemm_pack and sgemm_compute): 0.85-0.95 of
 * dnnl_sgemm's time on the per-step shapes of configs B and C on Zen 5,
 * where dnnl_sgemm packs the weight again on every call, for a pack that
 * costs about one pass over the weight. oneDNN's library exports these
 * functions but its headers do not declare them (src/cpu/gemm/gemm_pack.hpp),
 * so they are looked up at run time by their C++ names, which spell out
 * their parameter types: a oneDNN without them, or with other parameters,
 * has no such names, and its float32 pack is B itself (dnnl_sgemm on every
 * product), as it is with RECUR_CPU_SGEMM=plain. A pack has one part per
 * thread, of whole 16-column blocks, each packed on its own, and a product
 * runs each part on one thread, straight into C. (oneDNN's packed float32
 * brgemm matmul, the public way, measured 0.98x to 1.13x dnnl_sgemm's time:
 * no lever.)
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef RECUR_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#include "cpu-impl.h"

/* ---- rounding to bfloat16 and float16 ---- */

static inline float bf16_float(float f) { return recur_bf16_to_f32(recur_f32_to_bf16(f)); }

/* A rows x cols region (row stride ld) rounded into a dense array, as bf16
 * bits (d16) or as bf16 or f16 values in floats (d32, per prec), split over
 * threads by rows. */
struct round_job {
    const float *src;
    int rows, cols, ld;
    recur_dtype prec;
    uint16_t *d16;
    float *d32;
};

/* Rounding an operand is a pass over it on every product (RECUR_CPU_CLONES). */
RECUR_CPU_CLONES static void round_part(void *arg, int t, int nt) {
    const struct round_job *j = arg;
    size_t lo, hi;
    recur_cpu_share((size_t)j->rows, t, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        const float *s = j->src + r * (size_t)j->ld;
        size_t o = r * (size_t)j->cols;
        if (j->d16)
            for (int c = 0; c < j->cols; c++) j->d16[o + (size_t)c] = recur_f32_to_bf16(s[c]);
        else if (j->prec == RECUR_DTYPE_F16)
            for (int c = 0; c < j->cols; c++) j->d32[o + (size_t)c] = recur_round_f16(s[c]);
        else
            for (int c = 0; c < j->cols; c++) j->d32[o + (size_t)c] = bf16_float(s[c]);
    }
}

/* Below this many values a rounding stays on one thread. The time loop's left operand (a step's batch x H, or
 * x G*H in backward) is rounded before every product; split over the threads, each mostly rounds the rows its
 * share of the cell kernel has just written. Zen 5, 2 threads, paired against 65536: 4096 gave the bf16 RNN at B
 * 0.99 of the time, the LSTM at B 0.98-0.99 and the default job in bf16 0.99; 16384 the same within the noise;
 * 8192 the RNN at B 0.98-0.99 (six pairs). */
#define ROUND_PARALLEL_MIN 8192

static void round_region(struct recur_backend *be, recur_dtype prec, const float *src, int rows, int cols, int ld,
                         uint16_t *d16, float *d32) {
    struct round_job j = {src, rows, cols, ld, prec, d16, d32};
    int nt = recur_cpu_team(be, (size_t)rows * (size_t)cols, ROUND_PARALLEL_MIN);
    recur_cpu_run(be, nt < rows ? nt : rows, round_part, &j);
}

/* The batch that packs are made for. A pack serves products of any row
 * count; oneDNN 2.6.3 crashed packing a transposed operand for 2 to 15 rows. */
#define SG_PACK_ROWS 64

/* ---- oneDNN's packed sgemm ---- */

#ifdef RECUR_HAVE_DNNL
/* dnnl::impl::cpu::sgemm_pack_get_size, sgemm_pack and sgemm_compute
 * (column-major, as BLAS): the names encode (const char *, const char *,
 * const char *, const dim_t * x 5, size_t *, bool *), (const char * x 3,
 * const dim_t * x 5, const float *, float *) and (const char * x 2,
 * const dim_t * x 3, const float *, const dim_t *, const float *,
 * const dim_t *, const float *, float *, const dim_t *). */
typedef dnnl_status_t (*sg_size_fn)(const char *, const char *, const char *, const dnnl_dim_t *,
                                    const dnnl_dim_t *, const dnnl_dim_t *, const dnnl_dim_t *, const dnnl_dim_t *,
                                    size_t *, bool *);
typedef dnnl_status_t (*sg_pack_fn)(const char *, const char *, const char *, const dnnl_dim_t *,
                                    const dnnl_dim_t *, const dnnl_dim_t *, const dnnl_dim_t *, const dnnl_dim_t *,
                                    const float *, float *);
typedef dnnl_status_t (*sg_compute_fn)(const char *, const char *, const dnnl_dim_t *, const dnnl_dim_t *,
                                       const dnnl_dim_t *, const float *, const dnnl_dim_t *, const float *,
                                       const dnnl_dim_t *, const float *, float *, const dnnl_dim_t *);
/* gemm_bf16bf16f32_pack_get_size, _pack and _compute: the same with bf16 (dnnl::impl::bfloat16_t, 16 bits) for the
 * packed source and for A and B. */
typedef dnnl_status_t (*sg_bpack_fn)(const char *, const char *, const char *, const dnnl_dim_t *,
                                     const dnnl_dim_t *, const dnnl_dim_t *, const dnnl_dim_t *, const dnnl_dim_t *,
                                     const uint16_t *, uint16_t *);
typedef dnnl_status_t (*sg_bcompute_fn)(const char *, const char *, const dnnl_dim_t *, const dnnl_dim_t *,
                                        const dnnl_dim_t *, const uint16_t *, const dnnl_dim_t *, const uint16_t *,
                                        const dnnl_dim_t *, const float *, float *, const dnnl_dim_t *);
static struct {
    sg_size_fn size, bsize;
    sg_pack_fn pack;
    sg_compute_fn compute;
    sg_bpack_fn bpack;
    sg_bcompute_fn bcompute;
} sg;
static pthread_once_t sg_once = PTHREAD_ONCE_INIT;

static void sg_find(void) {
    static const char *const names[6] = {
        "_ZN4dnnl4impl3cpu19sgemm_pack_get_sizeEPKcS3_S3_PKlS5_S5_S5_S5_PmPb",
        "_ZN4dnnl4impl3cpu10sgemm_packEPKcS3_S3_PKlS5_S5_S5_S5_PKfPf",
        "_ZN4dnnl4impl3cpu13sgemm_computeEPKcS3_PKlS5_S5_PKfS5_S7_S5_S7_PfS5_",
        "_ZN4dnnl4impl3cpu30gemm_bf16bf16f32_pack_get_sizeEPKcS3_S3_PKlS5_S5_S5_S5_PmPb",
        "_ZN4dnnl4impl3cpu21gemm_bf16bf16f32_packEPKcS3_S3_PKlS5_S5_S5_S5_PKNS0_10bfloat16_tEPS6_",
        "_ZN4dnnl4impl3cpu24gemm_bf16bf16f32_computeEPKcS3_PKlS5_S5_PKNS0_10bfloat16_tES5_S8_S5_PKfPfS5_",
    };
    /* from the library dnnl_sgemm comes from, whatever else the process has loaded */
    dnnl_status_t (*sgemm)(char, char, dnnl_dim_t, dnnl_dim_t, dnnl_dim_t, float, const float *, dnnl_dim_t,
                           const float *, dnnl_dim_t, float, float *, dnnl_dim_t) = dnnl_sgemm;
    void *addr, *lib = NULL;
    memcpy(&addr, &sgemm, sizeof addr);
    Dl_info info;
    if (dladdr(addr, &info) && info.dli_fname) lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return; /* kept open while the process lives, as oneDNN is */
    void *dst[6] = {&sg.size, &sg.pack, &sg.compute, &sg.bsize, &sg.bpack, &sg.bcompute};
    for (int set = 0; set < 2; set++) { /* the three of a type, or none */
        void *f[3];
        int all = 1;
        for (int i = 0; i < 3; i++) all &= (f[i] = dlsym(lib, names[3 * set + i])) != NULL;
        /* a function pointer from dlsym's void * (POSIX allows it; ISO C does not say) */
        for (int i = 0; all && i < 3; i++) memcpy(dst[3 * set + i], &f[i], sizeof f[i]);
    }
    /* A oneDNN that has the names but not the kernels for this CPU answers dnnl_unimplemented: then the
     * products stay with dnnl_sgemm (or the matmul primitive) instead of failing at every pack. */
    dnnl_dim_t m = 32, n = SG_PACK_ROWS, k = 32;
    size_t bytes = 0;
    bool packs = true;
    if (sg.size && sg.size("A", "N", "N", &m, &n, &k, &m, &k, &bytes, &packs) != dnnl_success) sg.compute = NULL;
    if (sg.bsize && sg.bsize("A", "N", "N", &m, &n, &k, &m, &k, &bytes, &packs) != dnnl_success) sg.bcompute = NULL;
}
#endif

int recur_cpu_sgemm_packs(void) {
#ifdef RECUR_HAVE_DNNL
    pthread_once(&sg_once, sg_find);
    const char *env = getenv("RECUR_CPU_SGEMM");
    return sg.compute && !(env && !strcmp(env, "plain"));
#else
    return 0;
#endif
}

/* ---- the device's state ---- */

struct mm_thread {
#ifdef RECUR_HAVE_DNNL
    dnnl_stream_t stream;
#endif
    void *pad; /* the scratchpad of this thread's primitives */
    size_t pad_cap;
    float *out; /* a dense destination, added into C afterwards */
    size_t out_cap;
};

struct recur_cpu_mm {
    int native_bf16; /* oneDNN has a bf16 brgemm matmul here */
    int bf16_gemm;   /* ... without AMX, and oneDNN's packed bf16 gemm was found: bf16 packs use that */
    void *scratch[2]; /* rounded operands A and B */
    size_t cap[2];
    int n_thr;
    struct mm_thread *thr; /* [n_thr] */
#ifdef RECUR_HAVE_DNNL
    dnnl_engine_t eng;
#endif
};

void *recur_cpu_grow(void **p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return *p;
    void *q = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || posix_memalign(&q, 64, rounded) != 0) return NULL;
    free(*p);
    *p = q;
    *cap = rounded;
    return q;
}

#ifdef RECUR_HAVE_DNNL
/* Whether oneDNN's matmul of type dt is a brgemm in hardware bf16 here: 2 with AMX, 1 with AVX512-BF16, else 0. */
static int brgemm_matmul(dnnl_engine_t eng, dnnl_data_type_t dt) {
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {64, 64}, dc = {64, 64};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_memory_desc_init_by_tag(&a, 2, da, dt, dnnl_ab) || dnnl_memory_desc_init_by_tag(&b, 2, da, dt, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&c, 2, dc, dnnl_f32, dnnl_ab) || dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL))
        return 0;
    const char *impl = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    int yes = strncmp(impl, "brg", 3) ? 0 : strstr(impl, "amx") ? 2 : strstr(impl, "bf16") ? 1 : 0;
    dnnl_primitive_desc_destroy(pd);
    return yes;
}
#endif

/* The device's state, made on first use (NULL when out of memory). */
static struct recur_cpu_mm *mm_get(struct recur_backend *be) {
    struct cpu_dev *d = be->context;
    if (d->mm) return d->mm;
    struct recur_cpu_mm *mm = calloc(1, sizeof *mm);
    if (!mm) return NULL;
#ifdef RECUR_HAVE_DNNL
    if (dnnl_engine_create(&mm->eng, dnnl_cpu, 0) == dnnl_success) {
        mm->native_bf16 = brgemm_matmul(mm->eng, dnnl_bf16);
        if (d->emulate_bf16) mm->native_bf16 = 0; /* RECUR_CPU_BF16=emulate (cpu_open) */
        pthread_once(&sg_once, sg_find);
        mm->bf16_gemm = mm->native_bf16 == 1 && sg.bcompute && !d->matmul_bf16;
    } else {
        mm->eng = NULL;
    }
#endif
    d->mm = mm;
    return mm;
}

/* Thread t's stream and scratchpad, for at least `threads` threads. */
static recur_status mm_threads(struct recur_backend *be, struct recur_cpu_mm *mm, int threads) {
    if (threads <= mm->n_thr) return RECUR_OK;
    struct mm_thread *thr = realloc(mm->thr, (size_t)threads * sizeof *thr);
    RETURN_IF(!thr, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory");
    mm->thr = thr;
    for (int t = mm->n_thr; t < threads; t++) {
        memset(&thr[t], 0, sizeof thr[t]);
#ifdef RECUR_HAVE_DNNL
        dnnl_status_t s = dnnl_stream_create(&thr[t].stream, mm->eng, dnnl_stream_default_flags);
        RETURN_IF(s != dnnl_success, be->ctx, RECUR_ERR_BACKEND, "oneDNN: cannot create a stream (status %d)", s);
#endif
        mm->n_thr = t + 1;
    }
    return RECUR_OK;
}

void recur_cpu_mm_free(struct recur_cpu_mm *mm) {
    if (!mm) return;
    for (int t = 0; t < mm->n_thr; t++) {
#ifdef RECUR_HAVE_DNNL
        dnnl_stream_destroy(mm->thr[t].stream);
#endif
        free(mm->thr[t].pad);
        free(mm->thr[t].out);
    }
    free(mm->thr);
    free(mm->scratch[0]);
    free(mm->scratch[1]);
#ifdef RECUR_HAVE_DNNL
    if (mm->eng) dnnl_engine_destroy(mm->eng);
#endif
    free(mm);
}

unsigned recur_cpu_precisions(struct recur_backend *be, unsigned *native) {
    struct recur_cpu_mm *mm = mm_get(be);
    *native = mm && mm->native_bf16 ? 1u << RECUR_DTYPE_BF16 : 0;
    return 1u << RECUR_DTYPE_BF16 | 1u << RECUR_DTYPE_F16;
}

/* ---- oneDNN's matmul, one part ---- */

#ifdef RECUR_HAVE_DNNL
/* A primitive for one shape of a part's products, with its memory objects. */
struct mm_prim {
    int M, direct; /* direct: into C itself (with beta as a sum post-op), else a dense block */
    float beta;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst, pad;
    size_t pad_bytes;
};

#define PART_PRIMS 8

/* Columns [n0, n1) of a packed op(B): its weights in the matmul's layout. */
struct mm_part {
    int n0, n1;
    void *w;
    dnnl_memory_desc_t wmd;
    struct mm_prim prims[PART_PRIMS];
    int next; /* the slot the next new shape takes */
};

static void prim_clear(struct mm_prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->src) dnnl_memory_destroy(p->src);
    if (p->wei) dnnl_memory_destroy(p->wei);
    if (p->dst) dnnl_memory_destroy(p->dst);
    if (p->pad) dnnl_memory_destroy(p->pad);
    memset(p, 0, sizeof *p);
}

/* The matmul of C (M x nn, ldc) [+]= A (M x K, lda, type dt) W with the
 * weights' descriptor wmd; beta 0 or a sum post-op; alpha as an output scale. */
static dnnl_status_t prim_make(dnnl_engine_t eng, dnnl_data_type_t dt, int M, int K, int nn, int64_t sa_m,
                               int64_t sa_k, const dnnl_memory_desc_t *wmd, int ldc, float alpha, float beta,
                               struct mm_prim *p) {
    dnnl_memory_desc_t a, c;
    dnnl_dims_t da = {M, K}, dc = {M, nn}, sa = {sa_m, sa_k}, sc = {ldc, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;
    memset(p, 0, sizeof *p);
    if ((s = dnnl_memory_desc_init_by_strides(&a, 2, da, dt, sa)) || (s = dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc)) ||
        (s = dnnl_matmul_desc_init(&md, &a, wmd, NULL, &c)) || (s = dnnl_primitive_attr_create(&attr)) ||
        (s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)))
        goto out;
    if (alpha != 1.0f && (s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha))) goto out;
    if (beta != 0.0f) {
        if ((s = dnnl_post_ops_create(&po)) || (s = dnnl_post_ops_append_sum(po, beta)) ||
            (s = dnnl_primitive_attr_set_post_ops(attr, po)))
            goto out;
    }
    if ((s = dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL)) || (s = dnnl_primitive_create(&p->prim, pd))) goto out;
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->pad_bytes = pad ? dnnl_memory_desc_get_size(pad) : 0;
    if ((s = dnnl_memory_create(&p->src, &a, eng, DNNL_MEMORY_NONE)) ||
        (s = dnnl_memory_create(&p->wei, wmd, eng, DNNL_MEMORY_NONE)) ||
        (s = dnnl_memory_create(&p->dst, &c, eng, DNNL_MEMORY_NONE)))
        goto out;
    if (p->pad_bytes && (s = dnnl_memory_create(&p->pad, pad, eng, DNNL_MEMORY_NONE))) goto out;
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) prim_clear(p);
    return s;
}

/* Run p on thread t's stream with oneDNN held to one thread (its OpenMP
 * team, which spins, never starts: the pool is the parallelism). */
static dnnl_status_t prim_run(struct recur_cpu_mm *mm, int t, struct mm_prim *p, const void *A, const void *W,
                              float *C) {
    struct mm_thread *th = &mm->thr[t];
    if (p->pad_bytes && !recur_cpu_grow(&th->pad, &th->pad_cap, p->pad_bytes)) return dnnl_out_of_memory;
    dnnl_status_t s;
    if ((s = dnnl_memory_set_data_handle(p->src, (void *)A)) || (s = dnnl_memory_set_data_handle(p->wei, (void *)W)) ||
        (s = dnnl_memory_set_data_handle(p->dst, C)) || (p->pad && (s = dnnl_memory_set_data_handle(p->pad, th->pad))))
        return s;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->wei}, {DNNL_ARG_DST, p->dst},
                               {DNNL_ARG_SCRATCHPAD, p->pad}};
#ifdef _OPENMP
    int omp_before = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    s = dnnl_primitive_execute(p->prim, th->stream, p->pad ? 4 : 3, args);
    if (s == dnnl_success) s = dnnl_stream_wait(th->stream);
#ifdef _OPENMP
    omp_set_num_threads(omp_before);
#endif
    return s;
}

static dnnl_data_type_t dnnl_type(recur_dtype prec) { return prec == RECUR_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32; }

/* Pack columns [n0, n1) of op(B) (float32, row-major ldb, transposed when
 * trans) into part: the layout oneDNN's matmul of type dt chooses, by a reorder. */
static dnnl_status_t part_pack(struct recur_cpu_mm *mm, int t, dnnl_data_type_t dt, int trans, int K, const float *B,
                               int ldb, struct mm_part *part) {
    int nn = part->n1 - part->n0;
    dnnl_memory_desc_t a, any, c, user;
    dnnl_dims_t da = {64, K}, db = {K, nn}, dc = {64, nn};
    dnnl_dims_t sb = {trans ? 1 : ldb, trans ? ldb : 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&a, 2, da, dt, dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_tag(&any, 2, db, dt, dnnl_format_tag_any)) ||
        (s = dnnl_memory_desc_init_by_tag(&c, 2, dc, dnnl_f32, dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_strides(&user, 2, db, dnnl_f32, sb)) ||
        (s = dnnl_matmul_desc_init(&md, &a, &any, NULL, &c)) || (s = dnnl_primitive_desc_create(&pd, &md, NULL, mm->eng, NULL)))
        goto out;
    part->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    size_t bytes = dnnl_memory_desc_get_size(&part->wmd);
    if (!part->w && posix_memalign(&part->w, 64, (bytes + 63) & ~(size_t)63) != 0) { /* else packed again in place */
        part->w = NULL;
        s = dnnl_out_of_memory;
        goto out;
    }
    const float *src = B + (trans ? (size_t)part->n0 * (size_t)ldb : (size_t)part->n0);
    if ((s = dnnl_memory_create(&from, &user, mm->eng, (void *)src)) ||
        (s = dnnl_memory_create(&to, &part->wmd, mm->eng, part->w)) ||
        (s = dnnl_reorder_primitive_desc_create(&rpd, &user, mm->eng, &part->wmd, mm->eng, NULL)) ||
        (s = dnnl_primitive_create(&reorder, rpd)))
        goto out;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
#ifdef _OPENMP
    int omp_before = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    s = dnnl_primitive_execute(reorder, mm->thr[t].stream, 2, args);
    if (s == dnnl_success) s = dnnl_stream_wait(mm->thr[t].stream);
#ifdef _OPENMP
    omp_set_num_threads(omp_before);
#endif
out:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    return s;
}
#endif

/* ---- packed weights ---- */

enum pack_kind {
    PACK_REF,     /* float32, B itself: the float32 GEMM */
    PACK_ROUNDED, /* emulated bf16 or f16: op(B)'s region rounded to the pack's type, in floats */
    PACK_DNNL,    /* oneDNN matmul parts, bf16 */
    PACK_SGEMM,   /* oneDNN packed sgemm parts, float32 */
    PACK_BGEMM,   /* oneDNN packed gemm_bf16bf16f32 parts (AVX512-BF16 without AMX) */
};

/* Below this many multiply-adds a product against a float32 pack reads B
 * itself (dnnl_sgemm): a batch-1 step of a small layer ran up to 1.5x slower
 * packed (M=1, K=256, N=256 to 512), and level from 2^18 (Zen 5). */
#define SG_MIN_WORK 262144

/* A part of a PACK_SGEMM or PACK_BGEMM pack: columns n0..n1 of op(B), packed
 * by sgemm_pack or gemm_bf16bf16f32_pack. */
struct sg_part {
    int n0, n1;
    int ldw;  /* the leading dimension it was packed with */
    void *w;  /* float32, or bf16 for PACK_BGEMM */
};

struct cpu_pack {
    enum pack_kind kind;
    recur_dtype prec;
    int trans, K, N, ldb;
    const float *B;     /* the operand as given (what PACK_REF multiplies, and the others pack again from) */
    float *rounded;     /* PACK_ROUNDED: the stored region of B (trans ? N x K : K x N), dense */
    int parts;          /* PACK_DNNL, PACK_SGEMM, PACK_BGEMM; else 1 */
    struct sg_part *sg; /* PACK_SGEMM, PACK_BGEMM: [parts] */
#ifdef RECUR_HAVE_DNNL
    struct mm_part part[]; /* PACK_DNNL */
#endif
};

/* Below this many columns per thread a pack is one part. */
#define PART_MIN_COLS 64

#ifdef RECUR_HAVE_DNNL
struct pack_job {
    struct recur_cpu_mm *mm;
    struct cpu_pack *pk;
    atomic_int status;
};

/* A part of a PACK_SGEMM or PACK_BGEMM pack from its columns of op(B): the
 * packed routines are column-major, so C^T = op(B)^T A^T with op(B)^T, the
 * part's nn x K, as their A ('N' from a K x N B, 'T' from an N x K one); for
 * bf16 the region is rounded first (thread t's scratch). */
static dnnl_status_t sg_part_pack(struct recur_cpu_mm *mm, int t, const struct cpu_pack *pk, struct sg_part *part) {
    int bf16 = pk->kind == PACK_BGEMM, nn = part->n1 - part->n0;
    dnnl_dim_t m = nn, n = SG_PACK_ROWS, k = pk->K, lda = pk->ldb, ldb = pk->K;
    const char *ta = pk->trans ? "T" : "N";
    const float *src = pk->B + (pk->trans ? (size_t)part->n0 * (size_t)pk->ldb : (size_t)part->n0);
    uint16_t *src16 = NULL;
    if (bf16) { /* the part's region of B rounded into the thread's scratch, dense */
        int rows = pk->trans ? nn : pk->K, cols = pk->trans ? pk->K : nn;
        struct mm_thread *th = &mm->thr[t];
        src16 = recur_cpu_grow((void **)&th->out, &th->out_cap, (size_t)rows * (size_t)cols * sizeof(uint16_t));
        if (!src16) return dnnl_out_of_memory;
        for (size_t r = 0; r < (size_t)rows; r++)
            for (size_t c = 0; c < (size_t)cols; c++)
                src16[r * (size_t)cols + c] = recur_f32_to_bf16(src[r * (size_t)pk->ldb + c]);
        lda = cols;
    }
    size_t bytes = 0;
    bool packs = true;
    dnnl_status_t s = (bf16 ? sg.bsize : sg.size)("A", ta, "N", &m, &n, &k, &lda, &ldb, &bytes, &packs);
    if (s != dnnl_success) return s;
    if (!part->w && posix_memalign(&part->w, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64) != 0) {
        part->w = NULL;
        return dnnl_out_of_memory;
    }
    part->ldw = (int)lda;
    return bf16 ? sg.bpack("A", ta, "N", &m, &n, &k, &lda, &ldb, src16, part->w)
                : sg.pack("A", ta, "N", &m, &n, &k, &lda, &ldb, src, part->w);
}

static void pack_part(void *arg, int t, int nt) {
    struct pack_job *j = arg;
    size_t lo, hi;
    recur_cpu_share((size_t)j->pk->parts, t, nt, &lo, &hi);
#ifdef _OPENMP
    int omp_before = omp_get_max_threads();
    omp_set_num_threads(1); /* oneDNN packs for, and sgemm_compute runs on, the caller's thread alone */
#endif
    for (size_t i = lo; i < hi; i++) {
        dnnl_status_t s = j->pk->kind != PACK_DNNL
                              ? sg_part_pack(j->mm, t, j->pk, &j->pk->sg[i])
                              : part_pack(j->mm, t, dnnl_type(j->pk->prec), j->pk->trans, j->pk->K, j->pk->B,
                                          j->pk->ldb, &j->pk->part[i]);
        int none = 0;
        if (s != dnnl_success) atomic_compare_exchange_strong(&j->status, &none, (int)s);
    }
#ifdef _OPENMP
    omp_set_num_threads(omp_before);
#endif
}
#endif

#ifdef RECUR_HAVE_DNNL
/* Every part of pk packed from pk->B (into the parts' buffers where they have them already). */
static recur_status parts_pack(struct recur_backend *be, struct recur_cpu_mm *mm, struct cpu_pack *pk) {
    TRY(mm_threads(be, mm, be->threads));
    struct pack_job j = {mm, pk, 0};
    atomic_init(&j.status, 0);
    recur_cpu_run(be, pk->parts, pack_part, &j);
    int s = atomic_load(&j.status);
    RETURN_IF(s, be->ctx, s == dnnl_out_of_memory ? RECUR_ERR_NO_MEMORY : RECUR_ERR_BACKEND,
              "oneDNN: packing a %d x %d %s weight failed with status %d", pk->K, pk->N, recur_dtype_name(pk->prec),
              s);
    return RECUR_OK;
}
#endif

recur_status recur_cpu_pack(struct recur_backend *be, recur_dtype prec, int trans, int K, int N, struct recur_mem B,
                            int ldb, void **packed) {
    struct recur_cpu_mm *mm = mm_get(be);
    RETURN_IF(!mm, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory");
    RETURN_IF(!recur_dtype_name(prec), be->ctx, RECUR_ERR_UNSUPPORTED, "%s: no products of type %d",
              be->info.selector, (int)prec);
    enum pack_kind kind = prec == RECUR_DTYPE_BF16 && mm->native_bf16 ? (mm->bf16_gemm ? PACK_BGEMM : PACK_DNNL)
                          : prec != RECUR_DTYPE_F32                   ? PACK_ROUNDED
                          : recur_cpu_sgemm_packs()                   ? PACK_SGEMM
                                                                      : PACK_REF;
    int parts = N / PART_MIN_COLS < be->threads ? N / PART_MIN_COLS : be->threads;
    if (parts < 1 || kind == PACK_REF || kind == PACK_ROUNDED) parts = 1;
    struct cpu_pack *pk = calloc(1, sizeof *pk
#ifdef RECUR_HAVE_DNNL
                                         + (kind == PACK_DNNL ? (size_t)parts * sizeof(struct mm_part) : 0)
#endif
    );
    RETURN_IF(!pk, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory packing a %d x %d weight", K, N);
    *pk = (struct cpu_pack){.kind = kind, .prec = prec, .trans = trans, .K = K, .N = N, .ldb = ldb, .B = HOSTF(B),
                            .parts = parts};
    if (kind == PACK_ROUNDED) {
        int rows = trans ? N : K, cols = trans ? K : N;
        pk->rounded = malloc((size_t)rows * (size_t)cols * sizeof(float));
        if (!pk->rounded) {
            free(pk);
            return recur_err(be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory packing a %d x %d weight", K, N);
        }
        round_region(be, prec, pk->B, rows, cols, ldb, NULL, pk->rounded);
    }
#ifdef RECUR_HAVE_DNNL
    if (kind == PACK_SGEMM || kind == PACK_BGEMM) {
        pk->sg = calloc((size_t)parts, sizeof *pk->sg);
        if (!pk->sg) {
            free(pk);
            return recur_err(be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory packing a %d x %d weight", K, N);
        }
    }
    if (kind == PACK_DNNL || kind == PACK_SGEMM || kind == PACK_BGEMM) {
        /* parts of whole 16-column blocks, in order */
        int blocks = (N + 15) / 16;
        for (int i = 0; i < parts; i++) {
            size_t lo, hi;
            recur_cpu_share((size_t)blocks, i, parts, &lo, &hi);
            int n0 = (int)lo * 16, n1 = (int)hi * 16 < N ? (int)hi * 16 : N;
            if (kind != PACK_DNNL) pk->sg[i].n0 = n0, pk->sg[i].n1 = n1;
            else pk->part[i].n0 = n0, pk->part[i].n1 = n1;
        }
        recur_status st = parts_pack(be, mm, pk);
        if (st != RECUR_OK) {
            recur_cpu_unpack(be, pk);
            return st;
        }
    }
#endif
    *packed = pk;
    return RECUR_OK;
}

recur_status recur_cpu_repack(struct recur_backend *be, void *packed) {
    struct cpu_pack *pk = packed;
    int rows = pk->trans ? pk->N : pk->K, cols = pk->trans ? pk->K : pk->N;
    if (pk->kind == PACK_ROUNDED) round_region(be, pk->prec, pk->B, rows, cols, pk->ldb, NULL, pk->rounded);
#ifdef RECUR_HAVE_DNNL
    if (pk->kind == PACK_DNNL || pk->kind == PACK_SGEMM || pk->kind == PACK_BGEMM)
        return parts_pack(be, mm_get(be), pk);
#endif
    return RECUR_OK;
}

#ifdef RECUR_HAVE_DNNL
/* C[:, part] = A op(B)[:, part] + beta C[:, part] for M rows, on this thread. */
static int sg_part_run(const struct cpu_pack *pk, const struct sg_part *part, int M, const void *A, int lda,
                       float beta, float *C, int ldc) {
    dnnl_dim_t m = part->n1 - part->n0, n = M, k = pk->K, ldw = part->ldw, la = lda, lc = ldc;
#ifdef _OPENMP
    int omp_before = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    dnnl_status_t s = pk->kind == PACK_BGEMM
                          ? sg.bcompute("P", "N", &m, &n, &k, part->w, &ldw, A, &la, &beta, C + part->n0, &lc)
                          : sg.compute("P", "N", &m, &n, &k, part->w, &ldw, A, &la, &beta, C + part->n0, &lc);
#ifdef _OPENMP
    omp_set_num_threads(omp_before);
#endif
    return s == dnnl_success ? 0 : (int)s;
}
#endif

void recur_cpu_unpack(struct recur_backend *be, void *packed) {
    (void)be;
    struct cpu_pack *pk = packed;
    if (!pk) return;
#ifdef RECUR_HAVE_DNNL
    for (int i = 0; pk->kind == PACK_DNNL && i < pk->parts; i++) {
        for (int k = 0; k < PART_PRIMS; k++) prim_clear(&pk->part[i].prims[k]);
        free(pk->part[i].w);
    }
#endif
    for (int i = 0; pk->sg && i < pk->parts; i++) free(pk->sg[i].w);
    free(pk->sg);
    free(pk->rounded);
    free(pk);
}

#ifdef RECUR_HAVE_DNNL
struct packed_job {
    struct recur_cpu_mm *mm;
    struct cpu_pack *pk;
    int M, ldc;
    float beta;
    const void *A; /* dense (M x K): float32 or bf16 bits, per the pack's precision */
    float *C;
    atomic_int status;
};

/* C[:, n0:n0+nn] (ldc) = beta C + the dense M x nn block `out`. */
static void add_block(float *C, int ldc, const float *out, int M, int nn, float beta) {
    for (int r = 0; r < M; r++) {
        float *c = C + (size_t)r * (size_t)ldc;
        const float *o = out + (size_t)r * (size_t)nn;
        if (beta == 0.0f)
            memcpy(c, o, (size_t)nn * sizeof(float));
        else
            for (int k = 0; k < nn; k++) c[k] = o[k] + beta * c[k];
    }
}

static void packed_part(void *arg, int t, int nt) {
    struct packed_job *j = arg;
    size_t lo, hi;
    recur_cpu_share((size_t)j->pk->parts, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        struct mm_part *part = &j->pk->part[i];
        int nn = part->n1 - part->n0, direct = j->ldc == nn;
        float beta = direct ? j->beta : 0.0f;
        struct mm_prim *p = NULL;
        for (int k = 0; k < PART_PRIMS && !p; k++)
            if (part->prims[k].prim && part->prims[k].M == j->M && part->prims[k].direct == direct &&
                part->prims[k].beta == beta)
                p = &part->prims[k];
        dnnl_status_t s = dnnl_success;
        if (!p) {
            p = &part->prims[part->next];
            part->next = (part->next + 1) % PART_PRIMS;
            prim_clear(p);
            s = prim_make(j->mm->eng, dnnl_type(j->pk->prec), j->M, j->pk->K, nn, j->pk->K, 1, &part->wmd, nn, 1.0f,
                          beta, p);
            p->M = j->M, p->direct = direct, p->beta = beta;
        }
        float *out = j->C + part->n0;
        if (!direct) {
            struct mm_thread *th = &j->mm->thr[t];
            out = recur_cpu_grow((void **)&th->out, &th->out_cap, (size_t)j->M * (size_t)nn * sizeof(float));
            if (!out) s = dnnl_out_of_memory;
        }
        if (s == dnnl_success) s = prim_run(j->mm, t, p, j->A, part->w, out);
        if (s == dnnl_success && !direct) add_block(j->C + part->n0, j->ldc, out, j->M, nn, j->beta);
        int none = 0;
        if (s != dnnl_success) atomic_compare_exchange_strong(&j->status, &none, (int)s);
    }
}
#endif

#ifdef RECUR_HAVE_DNNL
/* A product against a float32 pack, its parts split over the threads. */
struct sg_job {
    const struct cpu_pack *pk;
    int M, lda, ldc;
    float beta;
    const void *A; /* float32, or bf16 bits (PACK_BGEMM) */
    float *C;
    atomic_int status;
};

static void sg_job_part(void *arg, int t, int nt) {
    struct sg_job *j = arg;
    size_t lo, hi;
    recur_cpu_share((size_t)j->pk->parts, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        int s = sg_part_run(j->pk, &j->pk->sg[i], j->M, j->A, j->lda, j->beta, j->C, j->ldc), none = 0;
        if (s) atomic_compare_exchange_strong(&j->status, &none, s);
    }
}
#endif

/* Scratch for a rounded operand: slot 0 A, slot 1 B. */
static void *scratch(struct recur_cpu_mm *mm, int slot, size_t bytes) {
    return recur_cpu_grow(&mm->scratch[slot], &mm->cap[slot], bytes);
}

#ifdef RECUR_HAVE_DNNL
/* A's M x K region (row stride lda) rounded into a dense bf16 copy in A's
 * scratch: the left operand of the bf16 packed products. */
static recur_status dense_bf16(struct recur_backend *be, struct recur_cpu_mm *mm, const float *A, int M, int K,
                               int lda, const void **out) {
    uint16_t *a = scratch(mm, 0, (size_t)M * (size_t)K * sizeof(uint16_t));
    RETURN_IF(!a, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory rounding a %d x %d operand", M, K);
    round_region(be, RECUR_DTYPE_BF16, A, M, K, lda, a, NULL);
    *out = a;
    return RECUR_OK;
}
#endif

recur_status recur_cpu_gemm_packed(struct recur_backend *be, int M, struct recur_mem Am, int lda, const void *packed,
                                   float beta, struct recur_mem Cm, int ldc) {
    struct cpu_pack *pk = (struct cpu_pack *)packed;
    struct recur_cpu_mm *mm = mm_get(be);
    const float *A = HOSTF(Am);
    float *C = HOSTF(Cm);
    size_t elems = (size_t)M * (size_t)pk->K;
    if (pk->kind == PACK_REF || (pk->kind == PACK_SGEMM && (size_t)M * (size_t)pk->N * (size_t)pk->K < SG_MIN_WORK))
        return recur_cpu_sgemm(be, 0, pk->trans, M, pk->N, pk->K, 1.0f, A, lda, pk->B, pk->ldb, beta, C, ldc);
#ifdef RECUR_HAVE_DNNL
    if (pk->kind == PACK_SGEMM || pk->kind == PACK_BGEMM) {
        struct sg_job j = {pk, M, lda, ldc, beta, A, C, 0};
        if (pk->kind == PACK_BGEMM) {
            TRY(dense_bf16(be, mm, A, M, pk->K, lda, &j.A));
            j.lda = pk->K;
        }
        atomic_init(&j.status, 0);
        int nt = recur_cpu_team(be, (size_t)M * (size_t)pk->N * (size_t)pk->K, RECUR_CPU_GEMM_PARALLEL_MIN);
        recur_cpu_run(be, nt < pk->parts ? nt : pk->parts, sg_job_part, &j);
        int s = atomic_load(&j.status);
        RETURN_IF(s, be->ctx, RECUR_ERR_BACKEND, "oneDNN: a packed %s gemm (M=%d, N=%d, K=%d) failed with status %d",
                  recur_dtype_name(pk->prec), M, pk->N, pk->K, s);
        return RECUR_OK;
    }
#endif
    if (pk->kind == PACK_ROUNDED) {
        float *a = scratch(mm, 0, elems * sizeof(float));
        RETURN_IF(!a, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory rounding a %d x %d operand", M, pk->K);
        round_region(be, pk->prec, A, M, pk->K, lda, NULL, a);
        return recur_cpu_sgemm(be, 0, pk->trans, M, pk->N, pk->K, 1.0f, a, pk->K, pk->rounded,
                               pk->trans ? pk->K : pk->N, beta, C, ldc);
    }
#ifdef RECUR_HAVE_DNNL
    struct packed_job j = {mm, pk, M, ldc, beta, A, C, 0};
    atomic_init(&j.status, 0);
    if (pk->prec == RECUR_DTYPE_BF16) {
        TRY(dense_bf16(be, mm, A, M, pk->K, lda, &j.A));
    } else if (lda != pk->K) { /* a dense copy */
        float *a = scratch(mm, 0, elems * sizeof(float));
        RETURN_IF(!a, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory copying a %d x %d operand", M, pk->K);
        for (int r = 0; r < M; r++)
            memcpy(a + (size_t)r * (size_t)pk->K, A + (size_t)r * (size_t)lda, (size_t)pk->K * sizeof(float));
        j.A = a;
    }
    TRY(mm_threads(be, mm, be->threads));
    int nt = recur_cpu_team(be, (size_t)M * (size_t)pk->N * (size_t)pk->K, RECUR_CPU_GEMM_PARALLEL_MIN);
    recur_cpu_run(be, nt < pk->parts ? nt : pk->parts, packed_part, &j);
    int s = atomic_load(&j.status);
    RETURN_IF(s, be->ctx, s == dnnl_out_of_memory ? RECUR_ERR_NO_MEMORY : RECUR_ERR_BACKEND,
              "oneDNN: a %s matmul (M=%d, N=%d, K=%d) failed with status %d", recur_dtype_name(pk->prec), M, pk->N,
              pk->K, s);
#endif
    return RECUR_OK;
}

/* ---- one product in bf16 or f16 ---- */

#ifdef RECUR_HAVE_DNNL
/* C = alpha op(A) op(B) + beta C on bf16 operands a and b (dense copies of
 * A's and B's stored regions), split over threads by rows of C in 16-row
 * tiles (the whole of B dense for each: oneDNN's brgemm takes no column
 * slice of it); each part makes its primitive (oneDNN's primitive cache
 * keeps them) and writes C directly when its rows are dense, else a dense
 * block of its thread that is then added into C. */
struct half_job {
    struct recur_cpu_mm *mm;
    int ta, M, N, K, ldc, tiles;
    int64_t bk, bn; /* op(B)'s strides in b */
    float alpha, beta;
    const uint16_t *a, *b;
    float *C;
    atomic_int status;
};

static void half_part(void *arg, int t, int nt) {
    struct half_job *j = arg;
    size_t lo, hi;
    recur_cpu_share((size_t)j->tiles, t, nt, &lo, &hi);
    int i0 = (int)lo * 16, i1 = (int)hi * 16 < j->M ? (int)hi * 16 : j->M, M = i1 - i0, direct = j->ldc == j->N;
    if (M <= 0) return;
    /* op(A)'s rows i0..i1: strides in the dense copy */
    int64_t am = j->ta ? 1 : j->K, ak = j->ta ? j->M : 1;
    const uint16_t *a = j->a + (size_t)i0 * (size_t)am;
    float *C = j->C + (size_t)i0 * (size_t)j->ldc, *out = C;
    dnnl_status_t s = dnnl_success;
    if (!direct) {
        struct mm_thread *th = &j->mm->thr[t];
        out = recur_cpu_grow((void **)&th->out, &th->out_cap, (size_t)M * (size_t)j->N * sizeof(float));
        if (!out) s = dnnl_out_of_memory;
    }
    dnnl_memory_desc_t wmd;
    dnnl_dims_t db = {j->K, j->N}, sb = {j->bk, j->bn};
    struct mm_prim p;
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_strides(&wmd, 2, db, dnnl_bf16, sb);
    if (s == dnnl_success)
        s = prim_make(j->mm->eng, dnnl_bf16, M, j->K, j->N, am, ak, &wmd, j->N, j->alpha, direct ? j->beta : 0.0f, &p);
    if (s == dnnl_success) {
        s = prim_run(j->mm, t, &p, a, j->b, out);
        prim_clear(&p);
    }
    if (s == dnnl_success && !direct) add_block(C, j->ldc, out, M, j->N, j->beta);
    int none = 0;
    if (s != dnnl_success) atomic_compare_exchange_strong(&j->status, &none, (int)s);
}
#endif

recur_status recur_cpu_gemm_half(struct recur_backend *be, recur_dtype prec, int ta, int tb, int M, int N, int K,
                                 float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                                 int ldc) {
    struct recur_cpu_mm *mm = mm_get(be);
    RETURN_IF(!mm, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory");
    RETURN_IF(prec != RECUR_DTYPE_BF16 && prec != RECUR_DTYPE_F16, be->ctx, RECUR_ERR_UNSUPPORTED,
              "%s: no products of type %d", be->info.selector, (int)prec);
    /* the stored regions: A is (ta ? K x M : M x K), B (tb ? N x K : K x N) */
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    size_t an = (size_t)ar * (size_t)ac, bn = (size_t)br * (size_t)bc;
    int native = prec == RECUR_DTYPE_BF16 && mm->native_bf16;
    size_t esize = native ? sizeof(uint16_t) : sizeof(float);
    void *a = scratch(mm, 0, an * esize), *b = scratch(mm, 1, bn * esize);
    RETURN_IF(!a || !b, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory rounding the operands of a %d x %d x %d GEMM",
              M, N, K);
    if (!native) {
        round_region(be, prec, A, ar, ac, lda, NULL, a);
        round_region(be, prec, B, br, bc, ldb, NULL, b);
        return recur_cpu_sgemm(be, ta, tb, M, N, K, alpha, a, ac, b, bc, beta, C, ldc);
    }
#ifdef RECUR_HAVE_DNNL
    round_region(be, prec, A, ar, ac, lda, a, NULL);
    round_region(be, prec, B, br, bc, ldb, b, NULL);
    TRY(mm_threads(be, mm, be->threads));
    struct half_job j = {.mm = mm, .ta = ta, .M = M, .N = N, .K = K, .ldc = ldc, .bk = tb ? 1 : N, .bn = tb ? K : 1,
                         .alpha = alpha, .beta = beta, .a = a, .b = b, .C = C};
    atomic_init(&j.status, 0);
    j.tiles = (M + 15) / 16;
    int nt = recur_cpu_team(be, (size_t)M * (size_t)N * (size_t)K, RECUR_CPU_GEMM_PARALLEL_MIN);
    recur_cpu_run(be, nt < j.tiles ? nt : j.tiles, half_part, &j);
    int s = atomic_load(&j.status);
    RETURN_IF(s, be->ctx, s == dnnl_out_of_memory ? RECUR_ERR_NO_MEMORY : RECUR_ERR_BACKEND,
              "oneDNN: a bf16 matmul (M=%d, N=%d, K=%d) failed with status %d", M, N, K, s);
#endif
    return RECUR_OK;
}
