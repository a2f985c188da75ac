/*
 * cpu.c: the CPU backend. Buffers are host memory; GEMM comes from a tuned
 * library (oneDNN's dnnl_sgemm when built with it, else CBLAS); cell
 * kernels are the plugin's best CPU variant for the chosen ISA, run over
 * the batch's rows on the machine's cores (OpenMP, the runtime oneDNN uses).
 */
#include <math.h>
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

#include "backend-impl.h"
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

struct cpu_dev {
    uint32_t isa;     /* the chosen ISA: kernels may use it and anything below */
    uint32_t allowed; /* the set of ISA bits kernels may need */
};

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

static int threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void fill_info(recur_device_info *d, uint32_t isa, int is_default) {
    memset(d, 0, sizeof *d);
    if (is_default)
        snprintf(d->selector, sizeof d->selector, "cpu");
    else
        snprintf(d->selector, sizeof d->selector, "cpu:%s", isa_name(isa));
    snprintf(d->backend, sizeof d->backend, "cpu");
    snprintf(d->name, sizeof d->name, "CPU (%s)", isa_name(isa));
    snprintf(d->detail, sizeof d->detail, "ISA %s%s, %d threads, GEMM %s", isa_name(isa),
             is_default ? " (best supported)" : "", threads(),
#ifdef RECUR_HAVE_DNNL
             "oneDNN dnnl_sgemm"
#else
             "CBLAS"
#endif
    );
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
    for (size_t i = 0; i < N_ISA; i++)
        if (isa_table[i].isa == isa) d->allowed = isa_table[i].allowed;
    be->context = d;
    fill_info(&be->info, isa, !*spec);
    return RECUR_OK;
}

static void cpu_close(struct recur_backend *be) {
    free(be->context);
    be->context = NULL;
}

/* ---- buffers ---- */

#define HOST(m) ((void *)((char *)(m).buf + (m).off))
#define HOSTF(m) ((float *)HOST(m))

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

static recur_status cpu_gemm(struct recur_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                             struct recur_mem A, int lda, struct recur_mem B, int ldb, float beta,
                             struct recur_mem C, int ldc) {
#ifdef RECUR_HAVE_DNNL
    dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, HOSTF(A), lda, HOSTF(B),
                                 ldb, beta, HOSTF(C), ldc);
    RETURN_IF(s != dnnl_success, be->ctx, RECUR_ERR_BACKEND,
              "dnnl_sgemm(M=%d, N=%d, K=%d) failed with status %d", M, N, K, (int)s);
#else
    (void)be;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                HOSTF(A), lda, HOSTF(B), ldb, beta, HOSTF(C), ldc);
#endif
    return RECUR_OK;
}

/* ---- shared kernels ---- */

static recur_status cpu_rows_set(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld,
                                 struct recur_mem row) {
    (void)be;
    float *d = HOSTF(dst);
    const float *r = HOSTF(row);
    for (int i = 0; i < rows; i++) memcpy(d + (size_t)i * ld, r, (size_t)width * sizeof(float));
    return RECUR_OK;
}

static recur_status cpu_colsum(struct recur_backend *be, struct recur_mem dst, float beta, struct recur_mem src,
                               int rows, int width, int ld) {
    (void)be;
    float *d = HOSTF(dst);
    const float *s = HOSTF(src);
    if (beta == 0.0f) memset(d, 0, (size_t)width * sizeof(float));
    for (int i = 0; i < rows; i++) {
        const float *r = s + (size_t)i * ld;
        for (int j = 0; j < width; j++) d[j] += r[j];
    }
    return RECUR_OK;
}

static recur_status cpu_add(struct recur_backend *be, struct recur_mem y, struct recur_mem x, size_t count) {
    (void)be;
    float *py = HOSTF(y);
    const float *px = HOSTF(x);
    for (size_t i = 0; i < count; i++) py[i] += px[i];
    return RECUR_OK;
}

static recur_status cpu_transpose(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                  int ld_src, int rows, int cols) {
    (void)be;
    float *d = HOSTF(dst);
    const float *s = HOSTF(src);
    enum { B = 32 }; /* tiles that stay in L1 both ways */
    for (int i0 = 0; i0 < rows; i0 += B)
        for (int j0 = 0; j0 < cols; j0 += B)
            for (int i = i0; i < rows && i < i0 + B; i++)
                for (int j = j0; j < cols && j < j0 + B; j++) d[(size_t)j * ld_dst + i] = s[(size_t)i * ld_src + j];
    return RECUR_OK;
}

static recur_status cpu_gather(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                               int ld_src, struct recur_mem idx, int rows, int width) {
    (void)be;
    float *d = HOSTF(dst);
    const float *s = HOSTF(src);
    const int32_t *ix = HOST(idx);
    for (int r = 0; r < rows; r++)
        memcpy(d + (size_t)r * ld_dst, s + (size_t)ix[r] * ld_src, (size_t)width * sizeof(float));
    return RECUR_OK;
}

static recur_status cpu_scatter(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                int ld_src, struct recur_mem idx, int rows, int width, int add) {
    (void)be;
    float *d = HOSTF(dst);
    const float *s = HOSTF(src);
    const int32_t *ix = HOST(idx);
    for (int r = 0; r < rows; r++) {
        float *to = d + (size_t)ix[r] * ld_dst;
        const float *from = s + (size_t)r * ld_src;
        if (add)
            for (int j = 0; j < width; j++) to[j] += from[j];
        else
            memcpy(to, from, (size_t)width * sizeof(float));
    }
    return RECUR_OK;
}

static recur_status cpu_dropout(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t count,
                                float p, uint64_t seed, uint64_t stream) {
    (void)be;
    float *d = HOSTF(dst);
    const float *s = HOSTF(src);
    const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) d[i] = recur_philox_uniform(seed, stream, i) >= p ? s[i] * scale : 0.0f;
    return RECUR_OK;
}

/* ---- training ---- */

/* Below this many floats an elementwise or row kernel stays on one thread. */
#define TRAIN_PARALLEL_MIN 65536

/* Each destination element gets its rows in increasing r whatever the
 * threads: thread t of nt owns the destination rows with idx % nt == t and
 * scans every row for them, so no two threads touch one row. */
static recur_status cpu_index_add(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                  int ld_src, struct recur_mem idx, int rows, int width) {
    (void)be;
    float *d = HOSTF(dst);
    const float *s = HOSTF(src);
    const int32_t *ix = HOST(idx);
    int nt = (size_t)rows * (size_t)width < TRAIN_PARALLEL_MIN ? 1 : threads();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < rows; r++) {
            const int32_t i = ix[r];
            if (i < 0 || i % nt != t) continue;
            float *to = d + (size_t)i * ld_dst;
            const float *from = s + (size_t)r * ld_src;
            for (int j = 0; j < width; j++) to[j] += from[j];
        }
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

static recur_status cpu_xent(struct recur_backend *be, struct recur_mem z, int ld, struct recur_mem target, int rows,
                             int K, float scale, struct recur_mem dz, struct recur_mem loss) {
    (void)be;
    const float *pz = HOSTF(z);
    const int32_t *tg = HOST(target);
    float *pd = HOSTF(dz), *pl = HOSTF(loss);
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)K >= TRAIN_PARALLEL_MIN)
    for (int r = 0; r < rows; r++)
        xent_row(pz + (size_t)r * ld, tg[r], K, scale, pd + (size_t)r * ld, pl + r);
    return RECUR_OK;
}

static recur_status cpu_mse(struct recur_backend *be, struct recur_mem p, int ld_p, struct recur_mem v, int ld_v,
                            struct recur_mem sel, int rows, int K, float scale, struct recur_mem dp,
                            struct recur_mem loss) {
    (void)be;
    const float *pp = HOSTF(p), *pv = HOSTF(v);
    const int32_t *ps = HOST(sel);
    float *pd = HOSTF(dp), *pl = HOSTF(loss);
    const float s2 = 2.0f * scale;
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)K >= TRAIN_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *a = pp + (size_t)r * ld_p, *b = pv + (size_t)r * ld_v;
        float *g = pd + (size_t)r * ld_p;
        if (ps[r] < 0) {
            memset(g, 0, (size_t)K * sizeof(float));
            pl[r] = 0.0f;
            continue;
        }
        double l = 0.0;
        for (int j = 0; j < K; j++) {
            const float e = a[j] - b[j];
            g[j] = s2 * e;
            l += (double)e * (double)e;
        }
        pl[r] = (float)l;
    }
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

static recur_status cpu_sum(struct recur_backend *be, struct recur_mem x, size_t count, int square,
                            struct recur_mem dst) {
    (void)be;
    const float *px = HOSTF(x);
    float *pd = HOSTF(dst);
    const size_t chunk = sum_chunk(count);
#pragma omp parallel for schedule(static) if (count >= TRAIN_PARALLEL_MIN)
    for (int q = 0; q < RECUR_SUM_PARTS; q++) {
        size_t i0 = (size_t)q * chunk, i1 = i0 + chunk;
        if (i0 > count) i0 = count;
        if (i1 > count) i1 = count;
        pd[q] = sum_part(px + i0, i1 - i0, square);
    }
    return RECUR_OK;
}

static recur_status cpu_sgd(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem v,
                            size_t count, float lr, float momentum, float wd, float gscale) {
    (void)be;
    float *pw = HOSTF(w);
    const float *pg = HOSTF(g);
    if (momentum == 0.0f) {
#pragma omp parallel for schedule(static) if (count >= TRAIN_PARALLEL_MIN)
        for (size_t i = 0; i < count; i++) pw[i] -= lr * (gscale * pg[i] + wd * pw[i]);
        return RECUR_OK;
    }
    float *pv = HOSTF(v);
#pragma omp parallel for schedule(static) if (count >= TRAIN_PARALLEL_MIN)
    for (size_t i = 0; i < count; i++) {
        const float nv = momentum * pv[i] + (gscale * pg[i] + wd * pw[i]);
        pv[i] = nv;
        pw[i] -= lr * nv;
    }
    return RECUR_OK;
}

static recur_status cpu_adam(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem m,
                             struct recur_mem v, size_t count, float step_size, float b1, float b2, float eps,
                             float bc2_sqrt, float wd, float gscale) {
    (void)be;
    float *pw = HOSTF(w), *pm = HOSTF(m), *pv = HOSTF(v);
    const float *pg = HOSTF(g);
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
#pragma omp parallel for schedule(static) if (count >= TRAIN_PARALLEL_MIN)
    for (size_t i = 0; i < count; i++) {
        const float d = gscale * pg[i] + wd * pw[i];
        const float nm = b1 * pm[i] + c1 * d;
        const float nv = b2 * pv[i] + c2 * (d * d);
        pm[i] = nm;
        pv[i] = nv;
        pw[i] -= step_size * nm / (sqrtf(nv) / bc2_sqrt + eps);
    }
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
}

/* Below this many gate values a step is not worth splitting across threads. */
#define PARALLEL_MIN 32768

static recur_status cpu_cell_run(struct recur_backend *be, void *handle, int stage, int backward,
                                 const struct recur_step *s) {
    (void)be;
    const struct cpu_cell *c = handle;
    recur_cell_fn fn = backward ? c->kern->backward[stage] : c->kern->forward[stage];
    size_t work = (size_t)s->n * (size_t)s->H * (size_t)c->desc->n_gates;
    int nt = threads();
    if (nt > s->n) nt = s->n;
    if (nt <= 1 || work < PARALLEL_MIN) {
        struct recur_cell_args a;
        rows_args(s, c->desc, 0, s->n, &a);
        fn(&a);
        return RECUR_OK;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        int r0 = (int)((long)s->n * t / nt), r1 = (int)((long)s->n * (t + 1) / nt);
        struct recur_cell_args a;
        rows_args(s, c->desc, r0, r1 - r0, &a);
        if (r1 > r0) fn(&a);
    }
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
    .rows_set = cpu_rows_set,
    .colsum = cpu_colsum,
    .add = cpu_add,
    .transpose = cpu_transpose,
    .gather = cpu_gather,
    .scatter = cpu_scatter,
    .dropout = cpu_dropout,
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
