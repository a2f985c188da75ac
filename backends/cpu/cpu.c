/*
 * cpu.c: the CPU backend. Buffers are host memory; GEMM comes from a tuned
 * library (oneDNN's dnnl_sgemm when built with it, else CBLAS); cell
 * kernels are the plugin's best CPU variant for the chosen ISA. Large work
 * (GEMM, a step's rows, elementwise training kernels) is split over the
 * context's threads (be->threads) on the backend's own pool (pool.c), whose
 * waiting threads yield instead of spinning. oneDNN is told to use one
 * thread per call, so its OpenMP team, which spins, never starts.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef RECUR_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#else
#include <cblas.h>
#endif

#include "cpu-impl.h"
#include "philox.h"

/* Every instruction set, most preferred first (RECUR_ISA_LIST, recur-cell.h):
 * name, bit, the bits the kernels it may run need (itself and what it
 * implies: an AVX-512 machine also runs AVX2 kernels), whether this build
 * targets its architecture. */
#define ISA_ROW(u, ID, name, bit, arch, implies, flags) {#name, (bit), (bit) | (implies), arch},
static const struct {
    const char *name;
    uint32_t isa, allowed;
    int compiled;
} isa_table[] = {RECUR_ISA_LIST(ISA_ROW, )};
#undef ISA_ROW
#define N_ISA (sizeof isa_table / sizeof isa_table[0])

/* The ISAs this machine runs and this build compiles. */
static uint32_t available(void) {
    uint32_t compiled = 0;
    for (size_t i = 0; i < N_ISA; i++)
        if (isa_table[i].compiled) compiled |= isa_table[i].isa;
    return recur_be_cpu_isa() & compiled;
}

static uint32_t best_isa(void) {
    uint32_t av = available();
    for (size_t i = 0; i < N_ISA; i++)
        if (isa_table[i].isa && (av & isa_table[i].isa)) return isa_table[i].isa;
    return RECUR_ISA_SCALAR;
}

static const char *isa_name(uint32_t isa) {
    for (size_t i = 0; i < N_ISA; i++)
        if (isa_table[i].isa == isa) return isa_table[i].name;
    return "?";
}

static void fill_info(recur_device_info *d, uint32_t isa, int is_default) {
    memset(d, 0, sizeof *d);
    if (is_default)
        snprintf(d->selector, sizeof d->selector, "cpu");
    else
        snprintf(d->selector, sizeof d->selector, "cpu:%s", isa_name(isa));
    snprintf(d->backend, sizeof d->backend, "cpu");
    snprintf(d->name, sizeof d->name, "CPU (%s)", isa_name(isa));
    snprintf(d->detail, sizeof d->detail, "ISA %s%s, GEMM %s; %s", isa_name(isa), is_default ? " (best supported)" : "",
#ifdef RECUR_HAVE_DNNL
             recur_cpu_sgemm_packs() ? "oneDNN sgemm, packed weights" : "oneDNN dnnl_sgemm",
#else
             "CBLAS",
#endif
             recur_be_cpu_half());
}

static void cpu_devices(recur_device_info *out, size_t cap, size_t *count) {
    if (*count < cap) fill_info(&out[*count], best_isa(), 1);
    ++*count;
    uint32_t av = available();
    for (size_t i = 0; i < N_ISA; i++) {
        if (isa_table[i].isa && !(av & isa_table[i].isa)) continue;
        if (*count < cap) fill_info(&out[*count], isa_table[i].isa, 0);
        ++*count;
    }
}

static void valid_choices(char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "cpu");
    uint32_t av = available();
    for (size_t i = 0; i < N_ISA && used < len; i++)
        if (!isa_table[i].isa || (av & isa_table[i].isa))
            used += (size_t)snprintf(buf + used, len - used, ", cpu:%s", isa_table[i].name);
}

static recur_status cpu_open(struct recur_backend *be, const char *spec) {
    char valid[256];
    valid_choices(valid, sizeof valid);
    /* RECUR_CPU_BF16: "auto" (the same as unset), "emulate" (bf16 emulated where it would be native) or
     * "matmul" (native bf16 through oneDNN's matmul primitive even without AMX) */
    const char *bf16 = getenv("RECUR_CPU_BF16");
    RETURN_IF(bf16 && strcmp(bf16, "auto") && strcmp(bf16, "emulate") && strcmp(bf16, "matmul"), be->ctx,
              RECUR_ERR_ARG, "RECUR_CPU_BF16='%.64s': expected 'auto', 'emulate' or 'matmul'", bf16);
    /* RECUR_CPU_SGEMM: "auto" (the same as unset) or "plain" (float32 weights not packed: dnnl_sgemm) */
    const char *sgemm = getenv("RECUR_CPU_SGEMM");
    RETURN_IF(sgemm && strcmp(sgemm, "auto") && strcmp(sgemm, "plain"), be->ctx, RECUR_ERR_ARG,
              "RECUR_CPU_SGEMM='%.64s': expected 'auto' or 'plain'", sgemm);
    uint32_t isa = best_isa();
    if (*spec) {
        size_t i = 0;
        while (i < N_ISA && strcasecmp(spec, isa_table[i].name) != 0) i++;
        RETURN_IF(i == N_ISA, be->ctx, RECUR_ERR_DEVICE, "unknown CPU ISA '%s'; valid choices: %s", spec, valid);
        RETURN_IF(!isa_table[i].compiled, be->ctx, RECUR_ERR_UNSUPPORTED,
                  "ISA '%s' is not compiled into this build; valid choices: %s", spec, valid);
        isa = isa_table[i].isa;
        RETURN_IF(isa && !(recur_be_cpu_isa() & isa), be->ctx, RECUR_ERR_UNSUPPORTED,
                  "this CPU does not support ISA '%s'; valid choices: %s", spec, valid);
    }
    struct cpu_dev *d = calloc(1, sizeof *d);
    RETURN_IF(!d, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory");
    d->isa = isa;
    d->emulate_bf16 = bf16 && !strcmp(bf16, "emulate");
    d->matmul_bf16 = bf16 && !strcmp(bf16, "matmul");
    for (size_t i = 0; i < N_ISA; i++)
        if (isa_table[i].isa == isa) d->allowed = isa_table[i].allowed;
    be->context = d;
    fill_info(&be->info, isa, !*spec);
    return RECUR_OK;
}

static void cpu_close(struct recur_backend *be) {
    struct cpu_dev *d = be->context;
    recur_pool_free(d->pool);
    recur_cpu_mm_free(d->mm);
    free(d->pad_a);
    free(d);
    be->context = NULL;
}

/* ---- threads ---- */

int recur_cpu_team(struct recur_backend *be, size_t work, size_t min) {
    size_t nt = work / min;
    return nt < 1 ? 1 : nt < (size_t)be->threads ? (int)nt : be->threads;
}

void recur_cpu_run(struct recur_backend *be, int nt, recur_pool_fn fn, void *arg) {
    struct cpu_dev *d = be->context;
    if (nt > 1 && (!d->pool || recur_pool_threads(d->pool) != be->threads)) {
        recur_pool_free(d->pool);
        d->pool = recur_pool_create(be->threads);
        if (!d->pool) recur_log(RECUR_LOG_WARN, "cpu: cannot start %d threads; running on one", be->threads);
    }
    if (nt <= 1 || !d->pool)
        fn(arg, 0, 1);
    else
        recur_pool_run(d->pool, nt, fn, arg);
}

void recur_cpu_share(size_t n, int t, int nt, size_t *lo, size_t *hi) {
    *lo = n / (size_t)nt * (size_t)t + (n % (size_t)nt < (size_t)t ? n % (size_t)nt : (size_t)t);
    *hi = *lo + n / (size_t)nt + ((size_t)t < n % (size_t)nt);
}

/* ---- buffers ---- */


static recur_status cpu_alloc(struct recur_backend *be, size_t bytes, void **buf) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    RETURN_IF(rounded < bytes || posix_memalign(&p, 64, rounded) != 0, be->ctx, RECUR_ERR_DEVICE_MEMORY,
              "cpu: cannot allocate %zu bytes", bytes);
    *buf = p;
    return RECUR_OK;
}

static void cpu_free(struct recur_backend *be, void *buf) {
    (void)be;
    free(buf);
}

static recur_status cpu_write(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes) {
    (void)be;
    memcpy(HOST(dst), src, bytes);
    return RECUR_OK;
}

static recur_status cpu_read(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes) {
    (void)be;
    memcpy(dst, HOST(src), bytes);
    return RECUR_OK;
}

static recur_status cpu_copy(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t bytes) {
    (void)be;
    memmove(HOST(dst), HOST(src), bytes);
    return RECUR_OK;
}

static recur_status cpu_fill(struct recur_backend *be, struct recur_mem dst, float value, size_t count) {
    (void)be;
    float *p = HOSTF(dst);
    for (size_t i = 0; i < count; i++) p[i] = value;
    return RECUR_OK;
}

static recur_status cpu_scale(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld, float beta) {
    (void)be;
    for (int r = 0; r < rows; r++) {
        float *p = HOSTF(dst) + (size_t)r * (size_t)ld;
        for (int j = 0; j < width; j++) p[j] = beta == 0.0f ? 0.0f : beta * p[j];
    }
    return RECUR_OK;
}

/* ---- linear algebra ---- */

/* A thread's part of a GEMM is at least GEMM_TILE rows or columns. */
#define GEMM_TILE 16

/* A transposed A (op(A) = A^T, A stored K x M) whose row stride is a whole
 * number of 4 KiB is read through a copy with a padded stride when N is at
 * most PAD_A_MAX_N and K at least PAD_A_MIN_K: dnnl_sgemm packs such an A
 * column by column, and at that stride every read falls in the same L1 sets.
 * That is the weight gradients dW = dG^T x of a cell whose G*H is a multiple
 * of 1024 (an LSTM with H = 256 or 512). Zen 5, oneDNN 2.6.3, 2 threads, per
 * thread a copy of its part of A, then the product: the LSTM's dW_ih + dW_hh
 * at N=32 T=50 H=512 took 0.89 of the time (18.0-21.7 ms against 16.2-19.0),
 * at N=128 H=512 0.90, at N=32 H=256 0.89; at H=1024 (N=1024 here) the copy
 * cost more than it saved (1.01-1.02), hence PAD_A_MAX_N. */
#define PAD_A_STRIDE 1024 /* floats: 4 KiB */
#define PAD_A_MAX_N 512
#define PAD_A_MIN_K 256
#define PAD_A_FLOATS 16

/* C = alpha op(A) op(B) + beta C (row-major), split over threads along the
 * longer of M and N into parts of whole tiles: each part is one
 * single-threaded library call, so for a given thread count the result is
 * the same bit for bit from run to run. */
struct gemm_job {
    int ta, tb, M, N, K, lda, ldb, ldc, by_cols, tiles;
    float alpha, beta;
    const float *A, *B;
    float *C;
    float *pad;          /* padded copies of A: part t's at t * pad_part floats; NULL for none */
    size_t pad_part;
    atomic_int status; /* the first failing part's library status, else 0 */
};

static void gemm_part(void *arg, int t, int nt) {
    struct gemm_job *j = arg;
    size_t lo, hi;
    recur_cpu_share((size_t)j->tiles, t, nt, &lo, &hi);
    int dim = j->by_cols ? j->N : j->M, i0 = (int)lo * GEMM_TILE, i1 = (int)hi * GEMM_TILE;
    if (i1 > dim) i1 = dim;
    if (i1 <= i0) return;
    const float *A = j->A, *B = j->B;
    float *C = j->C;
    int M = j->M, N = j->N;
    if (j->by_cols) { /* columns i0..i1 of op(B) and C */
        B += j->tb ? (size_t)i0 * j->ldb : (size_t)i0;
        C += i0;
        N = i1 - i0;
    } else { /* rows i0..i1 of op(A) and C */
        A += j->ta ? (size_t)i0 : (size_t)i0 * j->lda;
        C += (size_t)i0 * j->ldc;
        M = i1 - i0;
    }
    int lda = j->lda;
    /* columns i0..i1 of the stored A, at a padded stride (a part wider than planned, when the pool ran
     * fewer threads than asked, reads A as it is) */
    if (j->pad && (size_t)j->K * (size_t)(M + 2 * PAD_A_FLOATS) <= j->pad_part) {
        float *a = j->pad + (size_t)t * j->pad_part;
        lda = (M + PAD_A_FLOATS) % PAD_A_STRIDE ? M + PAD_A_FLOATS : M + 2 * PAD_A_FLOATS;
        for (int k = 0; k < j->K; k++) memcpy(a + (size_t)k * lda, A + (size_t)k * j->lda, (size_t)M * sizeof(float));
        A = a;
    }
#ifdef RECUR_HAVE_DNNL
#ifdef _OPENMP
    /* oneDNN sizes its OpenMP team by the calling thread's ICV: one thread,
     * this call only (the caller's own setting is put back). */
    int omp_before = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    dnnl_status_t s = dnnl_sgemm(j->ta ? 'T' : 'N', j->tb ? 'T' : 'N', M, N, j->K, j->alpha, A, lda, B, j->ldb,
                                 j->beta, C, j->ldc);
#ifdef _OPENMP
    omp_set_num_threads(omp_before);
#endif
    if (s != dnnl_success) {
        int none = 0;
        atomic_compare_exchange_strong(&j->status, &none, (int)s);
    }
#else
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, M, N, j->K,
                j->alpha, A, lda, B, j->ldb, j->beta, C, j->ldc);
#endif
}

recur_status recur_cpu_sgemm(struct recur_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    struct gemm_job j = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc,
                         .by_cols = N >= M, .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C};
    atomic_init(&j.status, 0);
    j.tiles = ((j.by_cols ? N : M) + GEMM_TILE - 1) / GEMM_TILE;
    int nt = recur_cpu_team(be, (size_t)M * (size_t)N * (size_t)K, RECUR_CPU_GEMM_PARALLEL_MIN);
    if (nt > j.tiles) nt = j.tiles;
    if (ta && !j.by_cols && lda % PAD_A_STRIDE == 0 && N <= PAD_A_MAX_N && K >= PAD_A_MIN_K) {
        struct cpu_dev *d = be->context;
        size_t widest = ((size_t)j.tiles + (size_t)nt - 1) / (size_t)nt * GEMM_TILE; /* recur_cpu_share's */
        j.pad_part = (size_t)K * (widest + 2 * PAD_A_FLOATS);
        /* no memory: the product reads A as it is */
        j.pad = recur_cpu_grow(&d->pad_a, &d->pad_cap, j.pad_part * (size_t)nt * sizeof(float));
    }
    recur_cpu_run(be, nt, gemm_part, &j);
    int s = atomic_load(&j.status);
    RETURN_IF(s, be->ctx, RECUR_ERR_BACKEND, "dnnl_sgemm(M=%d, N=%d, K=%d) failed with status %d", M, N, K, s);
    return RECUR_OK;
}

static recur_status cpu_gemm(struct recur_backend *be, recur_dtype prec, int ta, int tb, int M, int N, int K,
                             float alpha, struct recur_mem A, int lda, struct recur_mem B, int ldb, float beta,
                             struct recur_mem C, int ldc) {
    if (prec != RECUR_DTYPE_F32)
        return recur_cpu_gemm_half(be, prec, ta, tb, M, N, K, alpha, HOSTF(A), lda, HOSTF(B), ldb, beta, HOSTF(C),
                                   ldc);
    return recur_cpu_sgemm(be, ta, tb, M, N, K, alpha, HOSTF(A), lda, HOSTF(B), ldb, beta, HOSTF(C), ldc);
}

/* ---- shared kernels ---- */

/* Below this many floats an elementwise or row kernel stays on one thread. */
#define TRAIN_PARALLEL_MIN 65536

/* The data kernels below (rows_set, colsum, add, transpose, gather, scatter) split their rows (colsum: its
 * columns) over the threads from TRAIN_PARALLEL_MIN floats: on one thread the input projection's bias rows, the
 * bias gradients' column sums and the output scatter left the other threads idle (at the C shape each is a pass
 * over R x 4H floats). Every element is computed as on one thread, so the results do not depend on the count. */
struct rows_job {
    float *d;
    const float *s;
    const int32_t *ix;
    size_t ld_d, ld_s, rows, width;
    float beta;
    int add;
};

/* fn over n items (rows, column blocks, elements) on as many threads as `count` floats are worth: the data
 * kernels below and the training kernels further down. */
static void ew_run(struct recur_backend *be, size_t n, size_t count, recur_pool_fn fn, void *j) {
    int nt = recur_cpu_team(be, count, TRAIN_PARALLEL_MIN);
    recur_cpu_run(be, (size_t)nt < n ? nt : (int)n, fn, j);
}

static void rows_set_part(void *arg, int t, int nt) {
    const struct rows_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->rows, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) memcpy(j->d + i * j->ld_d, j->s, j->width * sizeof(float));
}

static recur_status cpu_rows_set(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld,
                                 struct recur_mem row) {
    struct rows_job j = {.d = HOSTF(dst), .s = HOSTF(row), .ld_d = (size_t)ld, .rows = (size_t)rows,
                         .width = (size_t)width};
    ew_run(be, j.rows, j.rows * j.width, rows_set_part, &j);
    return RECUR_OK;
}

/* Columns in blocks of 16 floats (a cache line), so that two threads never write one line of dst. */
static void colsum_part(void *arg, int t, int nt) {
    const struct rows_job *j = arg;
    size_t lo, hi;
    recur_cpu_share((j->width + 15) / 16, t, nt, &lo, &hi);
    lo *= 16, hi = hi * 16 < j->width ? hi * 16 : j->width;
    if (lo >= hi) return;
    float *d = j->d;
    if (j->beta == 0.0f) memset(d + lo, 0, (hi - lo) * sizeof(float));
    for (size_t i = 0; i < j->rows; i++) {
        const float *r = j->s + i * j->ld_s;
        for (size_t c = lo; c < hi; c++) d[c] += r[c];
    }
}

static recur_status cpu_colsum(struct recur_backend *be, struct recur_mem dst, float beta, struct recur_mem src,
                               int rows, int width, int ld) {
    struct rows_job j = {.d = HOSTF(dst), .s = HOSTF(src), .ld_s = (size_t)ld, .rows = (size_t)rows,
                         .width = (size_t)width, .beta = beta};
    ew_run(be, (j.width + 15) / 16, j.rows * j.width, colsum_part, &j);
    return RECUR_OK;
}

static void add_part(void *arg, int t, int nt) {
    const struct rows_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->width, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) j->d[i] += j->s[i];
}

static recur_status cpu_add(struct recur_backend *be, struct recur_mem y, struct recur_mem x, size_t count) {
    struct rows_job j = {.d = HOSTF(y), .s = HOSTF(x), .width = count};
    ew_run(be, count, count, add_part, &j);
    return RECUR_OK;
}

/* bf16 storage: the saved activations of a bf16 reserve, a step's rows at
 * a time (core/engine.c), split over the threads when large. */
struct bf16_job {
    float *f;
    uint16_t *h;
    size_t count;
};

RECUR_CPU_CLONES static void to_bf16_part(void *arg, int t, int nt) {
    const struct bf16_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->count, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) j->h[i] = recur_f32_to_bf16(j->f[i]);
}

RECUR_CPU_CLONES static void from_bf16_part(void *arg, int t, int nt) {
    const struct bf16_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->count, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) j->f[i] = recur_bf16_to_f32(j->h[i]);
}

#define BF16_PARALLEL_MIN 16384

static recur_status cpu_to_bf16(struct recur_backend *be, struct recur_mem dst16, struct recur_mem src, size_t count) {
    struct bf16_job j = {HOSTF(src), HOST(dst16), count};
    recur_cpu_run(be, recur_cpu_team(be, count, BF16_PARALLEL_MIN), to_bf16_part, &j);
    return RECUR_OK;
}

static recur_status cpu_from_bf16(struct recur_backend *be, struct recur_mem dst, struct recur_mem src16,
                                  size_t count) {
    struct bf16_job j = {HOSTF(dst), HOST(src16), count};
    recur_cpu_run(be, recur_cpu_team(be, count, BF16_PARALLEL_MIN), from_bf16_part, &j);
    return RECUR_OK;
}

/* transpose: blocks of TRANSPOSE_TILE x TRANSPOSE_TILE read into a local tile, then written a
 * destination row (a cache line of floats) at a time. Writing columns of a tile straight into the
 * destination put every write of a tile in the same L1 sets when ld_d is a multiple of 4 KiB (W_hh^T
 * of an LSTM with H = 256: 2.3 ms a weight version on Zen 5 against 0.14 ms this way). */
enum { TRANSPOSE_TILE = 16 };

static void transpose_part(void *arg, int t, int nt) {
    const struct rows_job *j = arg;
    const size_t B = TRANSPOSE_TILE;
    size_t lo, hi;
    recur_cpu_share((j->rows + B - 1) / B, t, nt, &lo, &hi);
    float tile[TRANSPOSE_TILE][TRANSPOSE_TILE];
    for (size_t i0 = lo * B; i0 < hi * B && i0 < j->rows; i0 += B) {
        size_t ni = j->rows - i0 < B ? j->rows - i0 : B;
        for (size_t c0 = 0; c0 < j->width; c0 += B) {
            size_t nc = j->width - c0 < B ? j->width - c0 : B;
            for (size_t i = 0; i < ni; i++)
                for (size_t c = 0; c < nc; c++) tile[c][i] = j->s[(i0 + i) * j->ld_s + c0 + c];
            for (size_t c = 0; c < nc; c++) memcpy(j->d + (c0 + c) * j->ld_d + i0, tile[c], ni * sizeof(float));
        }
    }
}

static recur_status cpu_transpose(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                  int ld_src, int rows, int cols) {
    struct rows_job j = {.d = HOSTF(dst), .s = HOSTF(src), .ld_d = (size_t)ld_dst, .ld_s = (size_t)ld_src,
                         .rows = (size_t)rows, .width = (size_t)cols};
    ew_run(be, (j.rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE, j.rows * j.width, transpose_part, &j);
    return RECUR_OK;
}

static void gather_part(void *arg, int t, int nt) {
    const struct rows_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->rows, t, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) memcpy(j->d + r * j->ld_d, j->s + (size_t)j->ix[r] * j->ld_s, j->width * 4);
}

static recur_status cpu_gather(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                               int ld_src, struct recur_mem idx, int rows, int width) {
    struct rows_job j = {.d = HOSTF(dst), .s = HOSTF(src), .ix = HOST(idx), .ld_d = (size_t)ld_dst,
                         .ld_s = (size_t)ld_src, .rows = (size_t)rows, .width = (size_t)width};
    ew_run(be, j.rows, j.rows * j.width, gather_part, &j);
    return RECUR_OK;
}

/* The destination rows are distinct (the slot's contract), so the rows split freely. */
static void scatter_part(void *arg, int t, int nt) {
    const struct rows_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->rows, t, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        float *to = j->d + (size_t)j->ix[r] * j->ld_d;
        const float *from = j->s + r * j->ld_s;
        if (j->add)
            for (size_t c = 0; c < j->width; c++) to[c] += from[c];
        else
            memcpy(to, from, j->width * sizeof(float));
    }
}

static recur_status cpu_scatter(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                int ld_src, struct recur_mem idx, int rows, int width, int add) {
    struct rows_job j = {.d = HOSTF(dst), .s = HOSTF(src), .ix = HOST(idx), .ld_d = (size_t)ld_dst,
                         .ld_s = (size_t)ld_src, .rows = (size_t)rows, .width = (size_t)width, .add = add};
    ew_run(be, j.rows, j.rows * j.width, scatter_part, &j);
    return RECUR_OK;
}

/* The arguments of the elementwise and row kernels below, each run as
 * fn(arg, t, nt) over its share of the elements or rows. */
struct ew_job {
    float *d, *d2, *d3;
    const float *s, *s2;
    const int32_t *ix;
    size_t count, ld, ld2;
    int K;
    float a, b, c, e, f, g, h;
    uint64_t seed, stream;
};


static void dropout_part(void *arg, int t, int nt) {
    const struct ew_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->count, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        j->d[i] = recur_philox_uniform(j->seed, j->stream, i) >= j->b ? j->s[i] * j->a : 0.0f;
}

static recur_status cpu_dropout(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t count,
                                float p, uint64_t seed, uint64_t stream) {
    struct ew_job j = {.d = HOSTF(dst), .s = HOSTF(src), .count = count, .a = 1.0f / (1.0f - p), .b = p,
                       .seed = seed, .stream = stream};
    ew_run(be, count, count, dropout_part, &j);
    return RECUR_OK;
}

struct zo_job {
    int mode, H;
    float *out, *a;
    const float *b;
    const int32_t *ix;
    size_t rows;
    uint64_t base, seed, stream;
    float p, q;
};

static void zoneout_part(void *arg, int t, int nt) {
    const struct zo_job *j = arg;
    size_t lo, hi, H = (size_t)j->H;
    recur_cpu_share(j->rows, t, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        float *out = j->out + r * H, *a = j->a + r * H;
        const float *b = j->b + r * H;
        if (j->mode == RECUR_ZO_INFER) {
            for (size_t c = 0; c < H; c++) out[c] = j->p * a[c] + j->q * b[c];
            continue;
        }
        uint64_t first = (j->base + (uint64_t)j->ix[r]) * H, q = UINT64_MAX;
        uint32_t w[4];
        for (size_t c = 0; c < H; c++) {
            uint64_t i = first + c;
            if (i >> 2 != q) recur_philox_words(j->seed, j->stream, q = i >> 2, w); /* one draw, four elements */
            int m = recur_philox_word_uniform(w[i & 3]) < j->p;
            if (j->mode == RECUR_ZO_TRAIN) {
                out[c] = m ? a[c] : b[c];
            } else {
                float g = b[c];
                a[c] = m ? g : 0.0f;
                out[c] = m ? 0.0f : g;
            }
        }
    }
}

static recur_status cpu_zoneout(struct recur_backend *be, int mode, struct recur_mem out, struct recur_mem a,
                                struct recur_mem b, int rows, int H, struct recur_mem idx, uint64_t base, float p,
                                float q, uint64_t seed, uint64_t stream) {
    struct zo_job j = {.mode = mode, .H = H, .out = HOSTF(out), .a = HOSTF(a), .b = HOSTF(b), .ix = HOST(idx),
                       .rows = (size_t)rows, .base = base, .seed = seed, .stream = stream, .p = p, .q = q};
    size_t count = (size_t)rows * (size_t)H;
    int nt = recur_cpu_team(be, count, TRAIN_PARALLEL_MIN);
    recur_cpu_run(be, nt < rows ? nt : rows, zoneout_part, &j);
    return RECUR_OK;
}

/* ---- training ---- */

/* Each destination element gets its rows in increasing r whatever the
 * threads: thread t of nt owns the destination rows with idx % nt == t and
 * scans every row for them, so no two threads touch one row. */
static void index_add_part(void *arg, int t, int nt) {
    const struct ew_job *j = arg;
    for (size_t r = 0; r < j->count; r++) {
        const int32_t i = j->ix[r];
        if (i < 0 || i % nt != t) continue;
        float *to = j->d + (size_t)i * j->ld;
        const float *from = j->s + r * j->ld2;
        for (int k = 0; k < j->K; k++) to[k] += from[k];
    }
}

static recur_status cpu_index_add(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                  int ld_src, struct recur_mem idx, int rows, int width) {
    struct ew_job j = {.d = HOSTF(dst), .s = HOSTF(src), .ix = HOST(idx), .count = (size_t)rows,
                       .ld = (size_t)ld_dst, .ld2 = (size_t)ld_src, .K = width};
    recur_cpu_run(be, recur_cpu_team(be, (size_t)rows * (size_t)width, TRAIN_PARALLEL_MIN), index_add_part, &j);
    return RECUR_OK;
}

/* One row: the max, then exp(z - max) in float summed in double, in order
 * (t outside 0..K-1 is an ignored row; the contract's ignored rows are t < 0,
 * a t >= K is treated the same rather than read out of bounds). */
static void xent_row(const float *z, int32_t t, int K, float scale, float *dz, float *loss) {
    if (t < 0 || t >= K) {
        memset(dz, 0, (size_t)K * sizeof(float));
        *loss = 0.0f;
        return;
    }
    float mx = z[0];
    for (int j = 1; j < K; j++) mx = z[j] > mx ? z[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < K; j++) {
        const float e = expf(z[j] - mx);
        dz[j] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j < K; j++) dz[j] = scale * (dz[j] * inv);
    dz[t] -= scale;
    *loss = (float)(log(sum) - ((double)z[t] - (double)mx));
}

static void xent_part(void *arg, int t, int nt) {
    const struct ew_job *j = arg;
    size_t lo, hi;
    recur_cpu_share(j->count, t, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) xent_row(j->s + r * j->ld, j->ix[r], j->K, j->a, j->d + r * j->ld, j->d2 + r);
}

static recur_status cpu_xent(struct recur_backend *be, struct recur_mem z, int ld, struct recur_mem target, int rows,
                             int K, float scale, struct recur_mem dz, struct recur_mem loss) {
    struct ew_job j = {.s = HOSTF(z), .ix = HOST(target), .d = HOSTF(dz), .d2 = HOSTF(loss), .count = (size_t)rows,
                       .ld = (size_t)ld, .K = K, .a = scale};
    ew_run(be, (size_t)rows, (size_t)rows * (size_t)K, xent_part, &j);
    return RECUR_OK;
}

static void mse_part(void *arg, int t, int nt) {
    const struct ew_job *j = arg;
    const int K = j->K;
    size_t lo, hi;
    recur_cpu_share(j->count, t, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        const float *a = j->s + r * j->ld, *b = j->s2 + r * j->ld2;
        float *g = j->d + r * j->ld;
        if (j->ix[r] < 0) {
            memset(g, 0, (size_t)K * sizeof(float));
            j->d2[r] = 0.0f;
            continue;
        }
        double l = 0.0;
        for (int k = 0; k < K; k++) {
            const float e = a[k] - b[k];
            g[k] = j->a * e;
            l += (double)e * (double)e;
        }
        j->d2[r] = (float)l;
    }
}

static recur_status cpu_mse(struct recur_backend *be, struct recur_mem p, int ld_p, struct recur_mem v, int ld_v,
                            struct recur_mem sel, int rows, int K, float scale, struct recur_mem dp,
                            struct recur_mem loss) {
    struct ew_job j = {.s = HOSTF(p), .s2 = HOSTF(v), .ix = HOST(sel), .d = HOSTF(dp), .d2 = HOSTF(loss),
                       .count = (size_t)rows, .ld = (size_t)ld_p, .ld2 = (size_t)ld_v, .K = K, .a = 2.0f * scale};
    ew_run(be, (size_t)rows, (size_t)rows * (size_t)K, mse_part, &j);
    return RECUR_OK;
}

/* The sum slot's parts: part q is x[q*chunk .. min((q+1)*chunk, count)) with
 * chunk = ceil(count / RECUR_SUM_PARTS), a function of count alone. The CPU
 * sums a part in 8 double lanes (element i into lane i % 8 in increasing i,
 * then the lanes pairwise), a fixed order the compiler vectorises. */
static size_t sum_chunk(size_t count) { return (count + RECUR_SUM_PARTS - 1) / RECUR_SUM_PARTS; }

static float sum_part(const float *x, size_t n, int square) {
    double acc[8] = {0};
    size_t i = 0;
    if (square)
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k] * (double)x[i + k];
    else
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += square ? (double)x[i] * (double)x[i] : (double)x[i];
    return (float)(((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])));
}

static void sum_parts(void *arg, int t, int nt) {
    const struct ew_job *j = arg;
    const size_t chunk = sum_chunk(j->count);
    size_t lo, hi;
    recur_cpu_share(RECUR_SUM_PARTS, t, nt, &lo, &hi);
    for (size_t q = lo; q < hi; q++) {
        size_t i0 = q * chunk, i1 = i0 + chunk;
        if (i0 > j->count) i0 = j->count;
        if (i1 > j->count) i1 = j->count;
        j->d[q] = sum_part(j->s + i0, i1 - i0, j->K);
    }
}

static recur_status cpu_sum(struct recur_backend *be, struct recur_mem x, size_t count, int square,
                            struct recur_mem dst) {
    struct ew_job j = {.s = HOSTF(x), .d = HOSTF(dst), .count = count, .K = square};
    ew_run(be, RECUR_SUM_PARTS, count, sum_parts, &j);
    return RECUR_OK;
}

/* d: w, d2: v, s: g; a: lr, b: momentum, c: wd, e: gscale. */
static void sgd_part(void *arg, int t, int nt) {
    const struct ew_job *j = arg;
    float *pw = j->d, *pv = j->d2;
    const float *pg = j->s;
    const float lr = j->a, momentum = j->b, wd = j->c, gscale = j->e;
    size_t lo, hi;
    recur_cpu_share(j->count, t, nt, &lo, &hi);
    if (momentum == 0.0f) {
        for (size_t i = lo; i < hi; i++) pw[i] -= lr * (gscale * pg[i] + wd * pw[i]);
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        const float nv = momentum * pv[i] + (gscale * pg[i] + wd * pw[i]);
        pv[i] = nv;
        pw[i] -= lr * nv;
    }
}

static recur_status cpu_sgd(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem v,
                            size_t count, float lr, float momentum, float wd, float gscale) {
    struct ew_job j = {.d = HOSTF(w), .d2 = momentum == 0.0f ? NULL : HOSTF(v), .s = HOSTF(g), .count = count,
                       .a = lr, .b = momentum, .c = wd, .e = gscale};
    ew_run(be, count, count, sgd_part, &j);
    return RECUR_OK;
}

/* d: w, d2: m, d3: v, s: g; a: step_size, b: b1, c: b2, e: eps, f: bc2_sqrt,
 * g: wd, h: gscale. */
static void adam_part(void *arg, int t, int nt) {
    const struct ew_job *j = arg;
    float *pw = j->d, *pm = j->d2, *pv = j->d3;
    const float *pg = j->s;
    const float step_size = j->a, b1 = j->b, b2 = j->c, eps = j->e, bc2_sqrt = j->f, wd = j->g, gscale = j->h;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    size_t lo, hi;
    recur_cpu_share(j->count, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        const float d = gscale * pg[i] + wd * pw[i];
        const float nm = b1 * pm[i] + c1 * d;
        const float nv = b2 * pv[i] + c2 * (d * d);
        pm[i] = nm;
        pv[i] = nv;
        pw[i] -= step_size * nm / (sqrtf(nv) / bc2_sqrt + eps);
    }
}

static recur_status cpu_adam(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem m,
                             struct recur_mem v, size_t count, float step_size, float b1, float b2, float eps,
                             float bc2_sqrt, float wd, float gscale) {
    struct ew_job j = {.d = HOSTF(w), .d2 = HOSTF(m), .d3 = HOSTF(v), .s = HOSTF(g), .count = count,
                       .a = step_size, .b = b1, .c = b2, .e = eps, .f = bc2_sqrt, .g = wd, .h = gscale};
    ew_run(be, count, count, adam_part, &j);
    return RECUR_OK;
}

/* ---- cells ---- */

struct cpu_cell {
    const struct recur_cell_desc *desc;
    const struct recur_cell_cpu *kern; /* the variant chosen for the device's ISA */
};

static recur_status cpu_supports(struct recur_backend *be, const struct recur_cell *cell) {
    (void)be;
    (void)cell; /* every registered cell has a scalar variant (the loader checks) */
    return RECUR_OK;
}

static recur_status cpu_cell_open(struct recur_backend *be, const struct recur_cell *cell, void **handle) {
    struct cpu_dev *d = be->context;
    const struct recur_cell_desc *desc = cell->desc;
    const struct recur_cell_cpu *pick = NULL;
    int pick_rank = (int)N_ISA;
    for (int v = 0; v < desc->n_cpu; v++) {
        uint32_t need = desc->cpu[v].isa;
        if (need & ~d->allowed) continue;
        int rank = 0;
        while (rank < (int)N_ISA && isa_table[rank].isa != need) rank++;
        if (rank < pick_rank) {
            pick_rank = rank;
            pick = &desc->cpu[v];
        }
    }
    RETURN_IF(!pick, be->ctx, RECUR_ERR_UNSUPPORTED, "cell '%s': no CPU variant runs on ISA %s", desc->name,
              isa_name(d->isa));
    struct cpu_cell *c = malloc(sizeof *c);
    RETURN_IF(!c, be->ctx, RECUR_ERR_NO_MEMORY, "cpu: out of memory");
    c->desc = desc;
    c->kern = pick;
    *handle = c;
    recur_log(RECUR_LOG_DEBUG, "cell '%s': CPU kernels for ISA %s", desc->name, isa_name(pick->isa));
    return RECUR_OK;
}

static void cpu_cell_close(struct recur_backend *be, void *handle) {
    (void)be;
    free(handle);
}

static float *ptr(struct recur_mem m, size_t row, size_t width) {
    return m.buf ? HOSTF(m) + row * width : NULL;
}

/* The kernel arguments for rows [r0, r0 + n) of a step. */
static void rows_args(const struct recur_step *s, const struct recur_cell_desc *d, int r0, int n,
                      struct recur_cell_args *a) {
    size_t H = (size_t)s->H, GH = (size_t)d->n_gates * H, SH = (size_t)d->n_save * H;
    memset(a, 0, sizeof *a);
    a->n = n;
    a->H = s->H;
    a->variant = s->variant;
    a->training = s->training;
    a->n_gates = d->n_gates;
    a->n_save = d->n_save;
    a->xw = ptr(s->xw, r0, GH);
    a->hw = ptr(s->hw, r0, GH);
    a->b_hh = ptr(s->b_hh, 0, 0);
    a->save = ptr(s->save, r0, SH);
    a->src = ptr(s->src, r0, H);
    for (int k = 0; k < RECUR_CELL_MAX_STATES; k++) {
        a->prev[k] = ptr(s->prev[k], r0, H);
        a->next[k] = ptr(s->next[k], r0, H);
        a->dnext[k] = ptr(s->dnext[k], r0, H);
        a->dprev[k] = ptr(s->dprev[k], r0, H);
    }
    a->dxw = ptr(s->dxw, r0, GH);
    a->dhw = ptr(s->dhw, r0, GH);
    a->dsrc = ptr(s->dsrc, r0, H);
    for (int k = 0; k < d->n_params; k++) {
        a->param[k] = ptr(s->param[k], 0, 0);
        a->param_floats[k] = (int)recur_cell_param_floats(d, k, s->H);
        a->dparam[k] = ptr(s->dparam[k], r0, (size_t)a->param_floats[k]);
    }
}

/* Below this many gate values a step is not worth splitting across threads. */
#define PARALLEL_MIN 32768

struct cell_job {
    const struct recur_step *s;
    const struct recur_cell_desc *desc;
    recur_cell_fn fn;
};

static void cell_part(void *arg, int t, int nt) {
    const struct cell_job *j = arg;
    size_t r0, r1;
    recur_cpu_share((size_t)j->s->n, t, nt, &r0, &r1);
    if (r1 == r0) return;
    struct recur_cell_args a;
    rows_args(j->s, j->desc, (int)r0, (int)(r1 - r0), &a);
    j->fn(&a);
}

static recur_status cpu_cell_run(struct recur_backend *be, void *handle, int stage, int backward,
                                 const struct recur_step *s) {
    const struct cpu_cell *c = handle;
    struct cell_job j = {s, c->desc, backward ? c->kern->backward[stage] : c->kern->forward[stage]};
    size_t work = (size_t)s->n * (size_t)s->H * (size_t)c->desc->n_gates;
    int nt = work < PARALLEL_MIN ? 1 : be->threads;
    recur_cpu_run(be, nt < s->n ? nt : s->n, cell_part, &j);
    return RECUR_OK;
}

const struct recur_backend_i recur_cpu_backend = {
    .name = "cpu",
    .host_memory = 1,
    .devices = cpu_devices,
    .preferred = NULL,
    .open = cpu_open,
    .close = cpu_close,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .write = cpu_write,
    .read = cpu_read,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .scale = cpu_scale,
    .gemm = cpu_gemm,
    .precisions = recur_cpu_precisions,
    .pack = recur_cpu_pack,
    .gemm_packed = recur_cpu_gemm_packed,
    .repack = recur_cpu_repack,
    .unpack = recur_cpu_unpack,
    .rows_set = cpu_rows_set,
    .colsum = cpu_colsum,
    .add = cpu_add,
    .to_bf16 = cpu_to_bf16,
    .from_bf16 = cpu_from_bf16,
    .transpose = cpu_transpose,
    .gather = cpu_gather,
    .scatter = cpu_scatter,
    .dropout = cpu_dropout,
    .zoneout = cpu_zoneout,
    .index_add = cpu_index_add,
    .xent = cpu_xent,
    .mse = cpu_mse,
    .sum = cpu_sum,
    .sgd = cpu_sgd,
    .adam = cpu_adam,
    .supports = cpu_supports,
    .cell_open = cpu_cell_open,
    .cell_close = cpu_cell_close,
    .cell_run = cpu_cell_run,
    .sync = NULL,
};
