/*
 * bench.c: recur's benchmark. Times recur and a peer on the same shapes in
 * the same run and prints the ratio, never a bare number:
 *   - oneDNN's RNN primitives (dnnl_vanilla_rnn, _lstm, _gru, dnnl_lbr_gru),
 *     when built with libdnnl;
 *   - the GEMM ceiling: the same matrix products alone, through the same
 *     GEMM library recur's CPU backend uses, so (recur - ceiling) / recur is
 *     the share of time that is not matrix products.
 * Rows: training (forward + BPTT) at N=32, T=50, I=H=512 and N=64, T=50,
 * I=H=1024 on all threads; inference at N=1, T=100, I=H=256 on one thread;
 * the LSTM with projection (lstmp) on those two training shapes with
 * P = H/4 and H/2, against oneDNN's LSTMP and recur's plain LSTM.
 * GFLOP/s counts matrix FLOPs, backward as 2x forward.
 * Within a row, recur and its peers take turns, one repetition each per round (take_turns): the ratios are
 * then of one machine state, where timing each side's repetitions in a block gave ratios that moved by 15%
 * between runs on a shared VM. Untimed rounds come first, until each has run 10 times or for 3 s (WARM_REPS).
 *
 * The main rows run on the device RECUR_DEVICE selects (RECUR_DEVICE=opencl: PoCL or a GPU;
 * the GEMM ceiling is then left out, as it is the CPU's); --config picks some of them, for
 * devices on which C (or B) takes minutes.
 *
 * usage: recur-bench [--quick] [--cell NAME] [--reps N] [--config A,B,C], or recur bench ...
 * (the same code, built into the tool with -DRECUR_BENCH_NO_MAIN)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef RECUR_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "onednn-peer.h"
#endif

#include "recur/recur.h"
#ifdef RECUR_HAVE_CLBLAST
#include "clblast-peer.h"
#endif

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
}

struct cfg {
    const char *name;
    int T, N, I, H, training, threads;
};

struct cellspec {
    const char *label, *cell, *variant, *peer;
    int G, stages;
};

static const struct cellspec cells[] = {
    {"rnn", "rnn", "tanh", "rnn", 1, 1},
    {"lstm", "lstm", NULL, "lstm", 4, 1},
    {"gru", "gru", NULL, "gru", 3, 2},
    {"gru-lbr", "gru-lbr", NULL, "gru-lbr", 3, 1},
};

/* What one side of a timed pair runs: a cell with proj_size P (0: none) on a
 * device (NULL: RECUR_DEVICE's), its products in precision prec, its saved
 * values in `saved` (recur_layer_set_saved_dtype; 0: f32). */
struct side {
    const char *device;
    const struct cellspec *c;
    int P;
    recur_dtype prec, saved;
};

/* One layer of a side, with its data, ready to time. */
struct timed {
    recur_ctx *ctx;
    recur_layer *l;
    int training;
    float *w, *x, *y, *dy, *dx, *h0, *hT;
    recur_io io;
    recur_grad_io gio;
};

static void timed_close(struct timed *t) {
    free(t->w), free(t->x), free(t->y), free(t->dy), free(t->dx), free(t->h0), free(t->hT);
    recur_ctx_free(t->ctx); /* frees the layer */
    memset(t, 0, sizeof *t);
}

static int timed_open(const struct side *s, const struct cfg *g, struct timed *t) {
    const struct cellspec *c = s->c;
    int P = s->P;
    memset(t, 0, sizeof *t);
    if (recur_ctx_create(&t->ctx, s->device) != RECUR_OK) {
        fprintf(stderr, "recur-bench: %s\n", recur_last_error());
        return -1;
    }
    recur_ctx_set_threads(t->ctx, g->threads); /* the peers' count, which is OpenMP's */
    recur_layer_desc d = {
        .cell = c->cell, .variant = c->variant, .input_size = g->I, .hidden_size = g->H, .proj_size = P};
    if (recur_layer_create(t->ctx, &d, &t->l) != RECUR_OK || recur_layer_set_precision(t->l, s->prec) != RECUR_OK ||
        recur_layer_set_saved_dtype(t->l, s->saved) != RECUR_OK) {
        fprintf(stderr, "recur-bench: %s\n", recur_ctx_error(t->ctx));
        timed_close(t);
        return -1;
    }
    size_t Y = (size_t)(P ? P : g->H); /* the width of y and h */
    size_t nw = recur_layer_weight_count(t->l), nx = (size_t)g->T * g->N * g->I, ny = (size_t)g->T * g->N * Y;
    size_t nh = (size_t)g->N * Y;
    t->w = malloc(nw * 4), t->x = malloc(nx * 4), t->y = malloc(ny * 4), t->dy = malloc(ny * 4);
    t->dx = malloc(nx * 4), t->h0 = malloc(nh * 4), t->hT = malloc(nh * 4);
    if (!t->w || !t->x || !t->y || !t->dy || !t->dx || !t->h0 || !t->hT) {
        fprintf(stderr, "recur-bench: out of host memory\n");
        timed_close(t);
        return -1;
    }
    fill(t->w, nw, 1), fill(t->x, nx, 2), fill(t->dy, ny, 3), fill(t->h0, nh, 4);
    recur_layer_weights_set(t->l, RECUR_LAYOUT_CANONICAL, t->w, nw);
    t->io = (recur_io){.T = g->T, .N = g->N, .x = t->x, .h0 = t->h0, .y = t->y, .hT = t->hT};
    t->gio = (recur_grad_io){.dy = t->dy, .dx = t->dx};
    t->training = g->training;
    return 0;
}

/* One thing a row times, in turns with the others: run does one repetition and returns its ms, or -1 on an error
 * (printed); close frees arg. arg NULL: it could not be opened (the reason printed), and it has no time. */
struct turn {
    double (*run)(void *arg);
    void (*close)(void *arg);
    void *arg;
};

/* recur's turn: one forward (+ backward) of a side. */
static double recur_run(void *arg) {
    struct timed *t = arg;
    double t0 = now_ms();
    if (recur_layer_forward(t->l, t->training ? RECUR_MODE_TRAINING : RECUR_MODE_INFERENCE, &t->io) != RECUR_OK ||
        (t->training && recur_layer_backward(t->l, &t->io, &t->gio, RECUR_GRAD_OVERWRITE) != RECUR_OK)) {
        fprintf(stderr, "recur-bench: %s\n", recur_ctx_error(t->ctx));
        return -1;
    }
    return now_ms() - t0;
}

static void recur_close(void *arg) {
    if (arg) timed_close(arg);
    free(arg);
}

static struct turn recur_turn(const struct side *s, const struct cfg *g) {
    struct turn v = {recur_run, recur_close, malloc(sizeof(struct timed))};
    if (!v.arg) fprintf(stderr, "recur-bench: out of host memory\n");
    else if (timed_open(s, g, v.arg) != 0) free(v.arg), v.arg = NULL;
    return v;
}

#ifdef RECUR_HAVE_DNNL
/* oneDNN's turn: its RNN primitives on the same shape (onednn-peer.h). */
static double onednn_run(void *arg) {
    char err[256];
    double ms = onednn_rnn_run(arg, err, sizeof err);
    if (ms < 0) fprintf(stderr, "oneDNN: %s\n", err);
    return ms;
}

static void onednn_close(void *arg) {
    char err[256];
    if (onednn_rnn_close(arg, err, sizeof err)) fprintf(stderr, "oneDNN: %s\n", err);
}

/* impl (may be NULL): oneDNN's implementation names. */
static struct turn onednn_turn(const char *cell, const struct cfg *g, int P, dnnl_data_type_t dt, char *impl,
                               size_t impllen) {
    char err[256];
    struct turn v = {onednn_run, onednn_close,
                     onednn_rnn_open(cell, g->T, g->N, g->I, g->H, P, g->training, dt, impl, impllen, err, sizeof err)};
    if (!v.arg) {
        fprintf(stderr, "oneDNN %s %s: %s\n", cell, dnnl_dt2str(dt), err);
        if (impl && impllen) snprintf(impl, impllen, "-");
    }
    return v;
}

/* The GEMM ceiling's turn: recur's matrix products alone, through dnnl_sgemm. */
struct gemms {
    int T, N, I, H, GH, training;
    float *x, *xw, *w, *dw, *dx, *hs, *hw, *dh;
};

static double gemms_run(void *arg) {
    const struct gemms *m = arg;
    int T = m->T, N = m->N, I = m->I, H = m->H, GH = m->GH, TN = T * N;
    double t0 = now_ms();
    dnnl_sgemm('N', 'T', TN, GH, I, 1, m->x, I, m->w, I, 0, m->xw, GH);
    /* per step a W_hh^T, through a transposed copy as recur does: (N, N) */
    for (int s = 0; s < T; s++)
        dnnl_sgemm('N', 'N', N, GH, H, 1, m->hs + (size_t)s * N * H, H, m->w + (size_t)GH * I, GH, 0, m->hw, GH);
    if (m->training) {
        for (int s = 0; s < T; s++)
            dnnl_sgemm('N', 'N', N, H, GH, 1, m->xw + (size_t)s * N * GH, GH, m->w + (size_t)GH * I, H, 1, m->dh, H);
        dnnl_sgemm('T', 'N', GH, I, TN, 1, m->xw, GH, m->x, I, 0, m->dw, I);
        dnnl_sgemm('T', 'N', GH, H, TN, 1, m->xw, GH, m->hs, H, 0, m->dw + (size_t)GH * I, H);
        dnnl_sgemm('N', 'N', TN, I, GH, 1, m->xw, GH, m->w, I, 0, m->dx, I);
    }
    return now_ms() - t0;
}

static void gemms_close(void *arg) {
    struct gemms *m = arg;
    if (m) free(m->x), free(m->xw), free(m->w), free(m->dw), free(m->dx), free(m->hs), free(m->hw), free(m->dh);
    free(m);
}

static struct turn gemms_turn(const struct cellspec *c, const struct cfg *g) {
    struct turn v = {gemms_run, gemms_close, calloc(1, sizeof(struct gemms))};
    struct gemms *m = v.arg;
    if (m) {
        int TN = g->T * g->N, GH = c->G * g->H;
        *m = (struct gemms){.T = g->T, .N = g->N, .I = g->I, .H = g->H, .GH = GH, .training = g->training};
        m->x = calloc((size_t)TN * g->I, 4), m->xw = calloc((size_t)TN * GH, 4);
        m->w = calloc((size_t)GH * (g->I + g->H), 4), m->dw = calloc((size_t)GH * (g->I + g->H), 4);
        m->dx = calloc((size_t)TN * g->I, 4), m->hs = calloc((size_t)TN * g->H, 4);
        m->hw = calloc((size_t)g->N * GH, 4), m->dh = calloc((size_t)g->N * g->H, 4);
        if (m->x && m->xw && m->w && m->dw && m->dx && m->hs && m->hw && m->dh) {
            fill(m->x, (size_t)TN * g->I, 5), fill(m->w, (size_t)GH * (g->I + g->H), 6);
            return v;
        }
        gemms_close(m);
    }
    fprintf(stderr, "recur-bench: out of host memory for the GEMM ceiling\n");
    v.arg = NULL;
    return v;
}
#endif

/* One round: every turn that could be opened runs once, e[k] its ms (0 when it could not be opened, never read);
 * -1 when a run failed. */
static int round_of(struct turn *v, int n, const struct cfg *g, double *e) {
    const struct timespec settle = {0, 10 * 1000000L};
    for (int k = 0; k < n; k++) {
        e[k] = v[k].arg ? v[k].run(v[k].arg) : 0;
        if (v[k].arg && g->threads > 1) nanosleep(&settle, NULL);
        if (e[k] < 0) return -1;
    }
    return 0;
}

/* Untimed rounds before the timed ones: until every turn has run WARM_REPS times or for WARM_MS, at least 2.
 * In a new process recur's first 5 (C rows) to 9 (B rows) repetitions ran 5-12% slower, each with hundreds of page
 * faults (227 to 1830; about 9 us each in this VM) and none after: dnnl_sgemm mallocs its packing buffers on every
 * call, in each of recur's threads, and glibc's heaps keep handing out fresh pages until they settle. The GEMM
 * ceiling (dnnl_sgemm too) has the same start; oneDNN's RNN primitive, with its scratchpad made once, does not. With
 * the 2 untimed rounds of before, 7 of 9 timed repetitions of a B row fell in recur's start. */
#define WARM_REPS 10
#define WARM_MS 3000.0

/* Times the n turns of a row at shape g and closes them: ms[k] is turn k's median ms over reps rounds, after the
 * untimed ones above, or NaN when it could not be opened. Within a round every turn runs once, one after the other,
 * so that the ratios of their medians are of one machine state even when other processes come and go (this VM's
 * speed drifts by 15% within minutes). On more than one thread each turn is followed by an untimed pause, so that
 * the threads it leaves spinning are asleep before the next starts: OpenMP's (oneDNN's and the GEMM ceiling's) spin
 * for some milliseconds after a parallel region, and on 2 cores that took one core from recur's next turn (B rnn
 * 24.6 ms against 21.3 with the pause; 2 ms was too short, 5, 10 and 30 ms the same). On one thread there is no
 * other thread to wait for, and a pause only made the next turn start from an idle core. -1 when a run failed. */
static int take_turns(struct turn *v, int n, const struct cfg *g, int reps, double *ms) {
    /* reps rounds' times, then one round's (e) and the warm-up's sums (warm) */
    double *t = calloc((size_t)n * (size_t)(reps + 2), sizeof(double));
    double *e = t ? t + (size_t)n * reps : NULL, *warm = t ? e + n : NULL;
    int rc = t ? 0 : -1;
    for (int w = 0, more = 1; rc == 0 && more; w++) {
        rc = round_of(v, n, g, e);
        more = w + 1 < 2;
        for (int k = 0; k < n; k++) {
            warm[k] += e[k];
            more |= v[k].arg && w + 1 < WARM_REPS && warm[k] < WARM_MS;
        }
    }
    for (int r = 0; rc == 0 && r < reps; r++) {
        rc = round_of(v, n, g, e);
        for (int k = 0; k < n; k++) t[(size_t)k * reps + r] = e[k];
    }
    for (int k = 0; k < n; k++) {
        ms[k] = rc == 0 && v[k].arg ? median(t + (size_t)k * reps, reps) : NAN;
        if (v[k].arg) v[k].close(v[k].arg);
    }
    free(t);
    return rc;
}

/* recur: median ms of forward (+ backward) of side a and, when b is not NULL, of side b, in turns; -1 when either
 * failed. */
static int time_pair(const struct side *a, const struct side *b, const struct cfg *g, int reps, double *ms_a,
                     double *ms_b) {
    struct turn v[2] = {recur_turn(a, g)};
    double ms[2];
    int n = 1;
    if (b) v[n++] = recur_turn(b, g);
    if (take_turns(v, n, g, reps, ms) != 0 || isnan(ms[0]) || (b && isnan(ms[1]))) return -1;
    *ms_a = ms[0];
    if (b) *ms_b = ms[1];
    return 0;
}

/* Variable lengths: the same batch with every length T, then with lengths
 * spread over 1..T. The engine packs the batch, so the time should follow the
 * sum of the lengths, not N x T. */
static int bench_lengths(int reps, int quick) {
    int T = 50, N = 64, H = quick ? 128 : 512, I = H;
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, NULL) != RECUR_OK) return 1;
    recur_model_desc d = {.cell = "lstm", .input_size = I, .hidden_size = H, .num_layers = 1,
                          .direction = RECUR_DIR_BIDI_CONCAT};
    recur_model *m;
    if (recur_model_create(ctx, &d, &m) != RECUR_OK) {
        fprintf(stderr, "recur-bench: %s\n", recur_ctx_error(ctx));
        recur_ctx_free(ctx);
        return 1;
    }
    size_t nx = (size_t)T * N * I, ny = (size_t)T * N * 2 * H;
    float *x = malloc(nx * 4), *y = malloc(ny * 4), *dy = malloc(ny * 4), *dx = malloc(nx * 4);
    int *spread = malloc(sizeof(int) * N);
    fill(x, nx, 7), fill(dy, ny, 8);
    long sum = 0;
    for (int n = 0; n < N; n++) {
        spread[n] = 1 + (int)((long)(T - 1) * ((n * 37) % N) / (N - 1)); /* 1..T, shuffled */
        sum += spread[n];
    }
    double ms[2];
    for (int k = 0; k < 2; k++) {
        recur_model_io io = {.T = T, .N = N, .lengths = k ? spread : NULL, .x = x, .y = y};
        recur_model_grad_io g = {.dy = dy, .dx = dx};
        double *t = malloc(sizeof(double) * (size_t)reps);
        for (int r = -1; r < reps; r++) {
            double t0 = now_ms();
            recur_model_forward(m, RECUR_MODE_TRAINING, &io);
            recur_model_backward(m, &io, &g, RECUR_GRAD_OVERWRITE);
            if (r >= 0) t[r] = now_ms() - t0;
        }
        ms[k] = median(t, reps);
        free(t);
    }
    printf("\nvariable lengths (bidirectional LSTM, T=%d N=%d H=%d, forward + BPTT):\n", T, N, H);
    printf("  all lengths T: %8.3f ms   lengths 1..T (sum %ld = %.2f of N x T): %8.3f ms   time ratio %.2f\n", ms[0],
           sum, (double)sum / ((double)N * T), ms[1], ms[1] / ms[0]);
    free(x), free(y), free(dy), free(dx), free(spread);
    recur_ctx_free(ctx);
    return 0;
}

/* LSTM with projection (proj_size P): recur against oneDNN's LSTMP
 * primitive (dnnl_lstm_*_desc_init_v3 with weights_projection) on the same
 * shapes, training (forward + BPTT) and inference, on all threads; and
 * recur's plain LSTM at the same H, which shows what the projection saves.
 * GFLOP/s counts matrix FLOPs: 4H(I + P) per row and step, plus the
 * projection's PH, backward as 2x forward. */
static int bench_lstmp(int reps, int quick, int threads) {
    static const struct {
        const char *name;
        int T, N, I, H, P;
    } shapes[] = {
        {"B", 50, 32, 512, 512, 128},
        {"B", 50, 32, 512, 512, 256},
        {"C", 50, 64, 1024, 1024, 256},
        {"C", 50, 64, 1024, 1024, 512},
    };
    const struct cellspec *lstm = &cells[1];
    int n = quick ? 2 : (int)(sizeof shapes / sizeof shapes[0]);
    printf("\nLSTM with projection (proj_size P), %d threads; ratios below 1: recur is faster\n", threads);
    printf("%-6s %-5s %3s %3s %5s %4s | %9s %7s | %9s %7s | %9s %8s\n", "config", "mode", "T", "N", "H", "P",
           "recur ms", "GFLOP/s", "oneDNN ms", "ratio", "lstm ms", "P/plain");
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    int rc = 0;
    for (int k = 0; k < n; k++)
        for (int training = 1; training >= 0; training--) {
            struct cfg g = {shapes[k].name, quick ? 10 : shapes[k].T, shapes[k].N, shapes[k].I, shapes[k].H,
                            training, threads};
            int P = shapes[k].P;
            const struct side a = {NULL, lstm, P, RECUR_DTYPE_F32, RECUR_DTYPE_F32};
            const struct side b = {NULL, lstm, 0, RECUR_DTYPE_F32, RECUR_DTYPE_F32};
            struct turn v[3] = {recur_turn(&a, &g), recur_turn(&b, &g)};
            int nv = 2;
#ifdef RECUR_HAVE_DNNL
            v[nv++] = onednn_turn("lstm", &g, P, dnnl_f32, NULL, 0);
#endif
            double t[3] = {NAN, NAN, NAN};
            if (take_turns(v, nv, &g, reps, t) != 0 || isnan(t[0]) || isnan(t[1])) {
                rc = 1;
                continue;
            }
            double ms = t[0], full = t[1], peer = t[2];
            double flops = 2.0 * g.T * g.N * g.H * (4.0 * (g.I + P) + P) * (training ? 3 : 1);
            printf("%-6s %-5s %3d %3d %5d %4d | %9.3f %7.1f | %9.3f %7.2f | %9.3f %8.2f\n", g.name,
                   training ? "train" : "infer", g.T, g.N, g.H, P, ms, flops / ms * 1e-6, peer, ms / peer, full,
                   ms / full);
            fflush(stdout);
        }
    return rc;
}

/* OpenCL rows: recur on the first OpenCL device against CLBlast's time for
 * the same products there (the share that is not GEMM) and against recur's
 * CPU backend. Smaller than the CPU rows: PoCL runs GEMM at ~23 GFLOP/s. */
static int bench_opencl(int quick) {
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, "opencl") != RECUR_OK) {
        printf("\nOpenCL: %s (no OpenCL rows)\n", recur_last_error());
        return 0;
    }
    recur_device_info info;
    recur_ctx_device(ctx, &info);
    recur_ctx_free(ctx);
    struct cfg cfgs[] = {
        {"A infer", 100, 1, 256, 256, 0, 1},
        {"B train", quick ? 10 : 50, 32, 512, 512, 1, 2},
        {"B64 train", quick ? 10 : 50, 64, 512, 512, 1, 2},
    };
    int reps = quick ? 2 : 3;
    printf("\nOpenCL on %s (%s); median of %d\n", info.selector, info.name, reps);
    printf("%-9s %-8s %3s %3s %5s | %10s %10s %9s | %9s %7s\n", "config", "cell", "T", "N", "H", "recur ms",
           "CLBlast ms", "not GEMM", "CPU ms", "CL/CPU");
    int rc = 0;
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++)
        for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) {
            const struct cfg *g = &cfgs[k];
            double ms = NAN, cpu = NAN, gemm = NAN;
            const struct side a = {"opencl", &cells[c], 0, RECUR_DTYPE_F32, RECUR_DTYPE_F32};
            const struct side b = {"cpu", &cells[c], 0, RECUR_DTYPE_F32, RECUR_DTYPE_F32};
            if (time_pair(&a, &b, g, reps, &ms, &cpu) != 0) {
                rc = 1;
                continue;
            }
#ifdef RECUR_HAVE_CLBLAST
            char err[256];
            if (clblast_layer_gemms(cells[c].G, g->T, g->N, g->I, g->H, g->training, reps, &gemm, err, sizeof err))
                fprintf(stderr, "CLBlast: %s\n", err);
#endif
            printf("%-9s %-8s %3d %3d %5d | %10.3f %10.3f %8.0f%% | %9.3f %7.2f\n", g->name, cells[c].label, g->T, g->N,
                   g->H, ms, gemm, 100 * (1 - gemm / ms), cpu, ms / cpu);
            fflush(stdout);
        }
    return rc;
}

/* The reserve of side s at shape g in MiB (NaN when the layer cannot be made). */
static double reserve_mib(const struct side *s, const struct cfg *g) {
    recur_ctx *ctx;
    double mib = NAN;
    if (recur_ctx_create(&ctx, s->device) != RECUR_OK) return mib;
    recur_layer_desc d = {.cell = s->c->cell, .variant = s->c->variant, .input_size = g->I, .hidden_size = g->H};
    recur_layer *l;
    recur_sizes z;
    if (recur_layer_create(ctx, &d, &l) == RECUR_OK && recur_layer_set_saved_dtype(l, s->saved) == RECUR_OK &&
        recur_layer_sizes(l, g->T, g->N, &z) == RECUR_OK)
        mib = (double)z.reserve / (1 << 20);
    recur_ctx_free(ctx);
    return mib;
}

/* --precision P: each main row of recur in P (its saved values in `saved`)
 * against recur in f32 in the same run (the runs alternating, time_pair)
 * and against oneDNN's RNN primitives in P on the same shapes (bf16: bf16
 * data, h-states and weights; f32 bias, c-state and diffs, as oneDNN's bf16
 * training takes them), with oneDNN's implementation and ISA; and the
 * training rows' reserve, f32's and P's. A cell without a oneDNN peer
 * (--cell of a plugin) has no oneDNN columns. */
static int bench_precision(recur_dtype prec, recur_dtype saved, const struct cfg *cfgs, int ncfg,
                           const char *configs, const char *only, const struct cellspec *plugin, int reps) {
    const char *pn = recur_dtype_name(prec);
    printf("precision %s: recur in %s (saved values in %s) against recur in f32 (the same run, alternating; "
           "%s/f32 below 1 and speedup above 1: %s is faster)\n", pn, pn, recur_dtype_name(saved), pn, pn);
#ifdef RECUR_HAVE_DNNL
    if (prec == RECUR_DTYPE_BF16)
        printf("and against oneDNN's bf16 RNN primitives (bf16 data, h-states and weights; f32 bias, c-state and "
               "diffs); oneDNN's ISA: %s\n", onednn_cpu_isa());
    else
        printf("(no oneDNN peer in %s: the bench runs oneDNN's RNN primitives in f32 and bf16 only)\n", pn);
#endif
    char h1[16], h2[16];
    snprintf(h1, sizeof h1, "%s ms", pn);
    snprintf(h2, sizeof h2, "%s/f32", pn);
    printf("\n%-8s %-13s %3s %3s %5s %4s | %9s %7s | %9s %8s %7s | %13s | %9s %7s  %s\n", "config", "cell", "T", "N",
           "H", "thr", h1, "GFLOP/s", "f32 ms", h2, "speedup", "reserve MiB", "oneDNN ms", "ratio", "oneDNN impl");
    int rc = 0;
    for (int k = 0; k < ncfg; k++) {
        const struct cfg *g = &cfgs[k];
        if (configs && !strchr(configs, g->name[0])) continue;
#ifdef _OPENMP
        omp_set_num_threads(g->threads);
#endif
        size_t ncell = plugin->cell ? 1 : sizeof cells / sizeof cells[0];
        for (size_t c = 0; c < ncell; c++) {
            const struct cellspec *cs = plugin->cell ? plugin : &cells[c];
            if (only && strcmp(only, cs->label)) continue;
            const struct side a = {NULL, cs, 0, prec, saved}, b = {NULL, cs, 0, RECUR_DTYPE_F32, RECUR_DTYPE_F32};
            char impl[128] = "-";
            struct turn v[3] = {recur_turn(&a, g), recur_turn(&b, g)};
            int nv = 2;
#ifdef RECUR_HAVE_DNNL
            if (cs->peer && prec == RECUR_DTYPE_BF16)
                v[nv++] = onednn_turn(cs->peer, g, 0, dnnl_bf16, impl, sizeof impl);
#endif
            double t[3] = {NAN, NAN, NAN};
            if (take_turns(v, nv, g, reps, t) != 0 || isnan(t[0]) || isnan(t[1])) {
                rc = 1;
                continue;
            }
            double ms = t[0], f32 = t[1], peer = t[2];
            double flops = 2.0 * g->T * g->N * cs->G * g->H * (double)(g->I + g->H) * (g->training ? 3 : 1);
            char pc[40] = "        -       -"; /* no peer (f16) */
            if (!isnan(peer)) snprintf(pc, sizeof pc, "%9.3f %7.2f", peer, ms / peer);
            char rs[40] = "            -"; /* inference keeps no reserve */
            if (g->training) snprintf(rs, sizeof rs, "%6.1f %6.1f", reserve_mib(&b, g), reserve_mib(&a, g));
            printf("%-8s %-13s %3d %3d %5d %4d | %9.3f %7.1f | %9.3f %8.2f %7.2f | %s | %s  %s\n", g->name,
                   cs->label, g->T, g->N, g->H, g->threads, ms, flops / ms * 1e-6, f32, ms / f32, f32 / ms, rs, pc,
                   impl);
            fflush(stdout);
        }
    }
    return rc;
}

/* The benchmark's entry: recur-bench's main, and `recur bench` (tools/benchcmd.c). */
int recur_bench_main(int argc, char **argv);
int recur_bench_main(int argc, char **argv) {
    int quick = 0, reps = 7;
    const char *only = NULL, *configs = NULL;
    recur_dtype prec = RECUR_DTYPE_F32, saved = RECUR_DTYPE_F32;
    int saved_given = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: recur-bench [--quick] [--cell NAME] [--reps N] [--config A,B,C] [--precision P]\n"
                   "                   [--saved f32|bf16]\n"
                   "       (also: recur bench ...)\n"
                   "Times recur against oneDNN's RNN primitives and the GEMM ceiling on the same shapes;\n"
                   "--cell rnn|lstm|gru|gru-lbr|lstmp|lengths|opencl runs one part, --cell NAME of any other\n"
                   "loaded cell times it against recur's LSTM on the same shapes; --quick a short run;\n"
                   "--config the rows to run: A (inference, N=1 T=100 H=256), B (training, N=32 T=50\n"
                   "H=512), C (training, N=64 T=50 H=1024), e.g. A,B (default all). The rows run on\n"
                   "the device RECUR_DEVICE selects (the GEMM ceiling only on the CPU). --precision bf16\n"
                   "(or f16): the main rows in that precision against recur in f32 in the same run\n"
                   "(bf16/f32 time ratio and speedup) and against oneDNN's bf16 RNN primitives; the\n"
                   "other parts (lstmp, lengths, opencl) stay f32 and are left out. --saved: the type\n"
                   "of the values a training forward saves, on the P side (default: bf16 with\n"
                   "--precision bf16, as recur train's, else f32).\n");
            return 0;
        }
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--cell") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) configs = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            if (recur_dtype_parse(argv[++i], &prec) != RECUR_OK) {
                fprintf(stderr, "recur-bench: --precision '%s': %s\n", argv[i], recur_last_error());
                return 2;
            }
        } else if (!strcmp(argv[i], "--saved") && i + 1 < argc) {
            if (recur_dtype_parse(argv[++i], &saved) != RECUR_OK ||
                (saved != RECUR_DTYPE_F32 && saved != RECUR_DTYPE_BF16)) {
                fprintf(stderr, "recur-bench: --saved '%s': expected f32 or bf16\n", argv[i]);
                return 2;
            }
            saved_given = 1;
        } else {
            fprintf(stderr, "usage: recur-bench [--quick] [--cell NAME] [--reps N] [--config A,B,C] [--precision P] "
                            "[--saved f32|bf16]\n");
            return 2;
        }
    }
    if (configs && (!configs[0] || strspn(configs, "ABC,") != strlen(configs) || !strpbrk(configs, "ABC"))) {
        fprintf(stderr, "recur-bench: --config '%s': expected rows among A, B and C, e.g. A,B\n", configs);
        return 2;
    }
    if (reps < 1) reps = 1;
    if (saved_given && prec == RECUR_DTYPE_F32) {
        fprintf(stderr, "recur-bench: --saved goes with --precision bf16 or f16\n");
        return 2;
    }
    if (!saved_given) saved = prec == RECUR_DTYPE_BF16 ? RECUR_DTYPE_BF16 : RECUR_DTYPE_F32;
    if (prec != RECUR_DTYPE_F32 && only &&
        (!strcmp(only, "lstmp") || !strcmp(only, "lengths") || !strcmp(only, "opencl"))) {
        fprintf(stderr, "recur-bench: --precision %s times the main rows; --cell %s is f32 only\n",
                recur_dtype_name(prec), only);
        return 2;
    }
#ifdef RECUR_BENCH_PLUGIN_DIR
    /* recur-bench runs from the build tree: its plugins unless RECUR_PLUGIN_PATH says otherwise. */
    setenv("RECUR_PLUGIN_PATH", RECUR_BENCH_PLUGIN_DIR, 0);
#endif
    int known = only && (!strcmp(only, "lengths") || !strcmp(only, "opencl") || !strcmp(only, "lstmp"));
    for (size_t c = 0; only && c < sizeof cells / sizeof cells[0]; c++) known |= !strcmp(only, cells[c].label);
    /* Any other loaded cell: timed against recur's own LSTM on the same shapes (no oneDNN peer has it). */
    struct cellspec plugin = {0};
    for (size_t k = 0; only && !known && k < recur_cell_count(); k++) {
        recur_cell_info ci;
        if (recur_cell_get(k, &ci) != RECUR_OK || strcmp(ci.name, only)) continue;
        plugin = (struct cellspec){ci.name, ci.name, NULL, NULL, ci.n_gates, 1};
        known = 1;
    }
    if (only && !known) {
        char names[512] = "";
        size_t used = 0;
        for (size_t k = 0; k < recur_cell_count() && used < sizeof names; k++) {
            recur_cell_info ci;
            if (recur_cell_get(k, &ci) == RECUR_OK)
                used += (size_t)snprintf(names + used, sizeof names - used, ", %s", ci.name);
        }
        fprintf(stderr, "recur-bench: --cell '%s': no such part or cell; parts: lstmp, lengths, opencl%s\n", only,
                names);
        return 2;
    }
    /* Every cell the run needs, before any table: a missing plugin is one message, not empty rows. */
    for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) {
        if (only && strcmp(only, cells[c].label) && strcmp(only, "lengths") && strcmp(only, "opencl") &&
            !((plugin.cell || !strcmp(only, "lstmp")) && !strcmp(cells[c].label, "lstm")))
            continue;
        size_t k = 0, n = recur_cell_count();
        while (k < n) {
            recur_cell_info ci;
            if (recur_cell_get(k, &ci) == RECUR_OK && !strcmp(ci.name, cells[c].cell)) break;
            k++;
        }
        if (k == n) {
            fprintf(stderr, "recur-bench: cell '%s' is not registered (%zu cell plugins loaded%s)\n", cells[c].cell,
                    n, getenv("RECUR_PLUGIN_PATH") ? "" : "; set RECUR_PLUGIN_PATH to the plugins' directory");
            return 1;
        }
    }
    int all = 1;
#ifdef _OPENMP
    all = omp_get_max_threads();
#endif
    struct cfg cfgs[] = {
        {"A infer", 100, 1, 256, 256, 0, 1},
        {"B train", 50, 32, 512, 512, 1, all},
        {"C train", 50, 64, 1024, 1024, 1, all},
    };
    int ncfg = quick ? 2 : 3;
    if (quick) {
        cfgs[1].T = 10;
        reps = 3;
    }
    recur_device_info info;
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, NULL) != RECUR_OK) {
        fprintf(stderr, "recur-bench: %s\n", recur_last_error());
        return 1;
    }
    recur_ctx_device(ctx, &info);
    unsigned native = 0, can = recur_ctx_precisions(ctx, &native);
    recur_ctx_free(ctx);
    if (!(can & (1u << prec))) {
        fprintf(stderr, "recur-bench: --precision %s: device %s (%s) cannot compute %s products\n",
                recur_dtype_name(prec), info.selector, info.name, recur_dtype_name(prec));
        return 1;
    }
    int on_cpu = !strcmp(info.backend, "cpu"); /* the GEMM ceiling is the CPU's */
    printf("recur %s on %s (%s); median of %d\n", RECUR_VERSION_STRING, info.selector, info.detail, reps);
    if (prec != RECUR_DTYPE_F32) {
        if (!(native & (1u << prec)))
            printf("(%s is emulated on this device: the same results as its hardware would give, no speed gained)\n",
                   recur_dtype_name(prec));
        int rc = bench_precision(prec, saved, cfgs, ncfg, configs, only, &plugin, reps);
#ifdef RECUR_HAVE_DNNL
        onednn_rnn_bench_release();
#endif
        return rc;
    }
    printf("time ratios: recur/peer, below 1 means recur is faster. GEMM share: the matrix products alone / recur.\n");
    if (plugin.cell)
        printf("cell %s (G = %d) has no oneDNN peer: its peer is recur's own LSTM, on the same shapes.\n",
               plugin.cell, plugin.G);
    /* The main table only when it has rows: not for --cell lstmp, lengths or opencl alone. */
    int main_rows = !only || plugin.cell;
    for (size_t c = 0; only && c < sizeof cells / sizeof cells[0]; c++) main_rows |= !strcmp(only, cells[c].label);
    if (main_rows)
        printf("\n%-8s %-13s %3s %3s %5s %4s | %9s %7s | %9s %7s | %9s %6s\n", "config", "cell", "T", "N", "H", "thr",
               "recur ms", "GFLOP/s", plugin.cell ? "lstm ms" : "oneDNN ms", "ratio", "GEMM ms", "share");
    int rc = 0;
    for (int k = 0; main_rows && k < ncfg; k++) {
        const struct cfg *g = &cfgs[k];
        if (configs && !strchr(configs, g->name[0])) continue;
#ifdef _OPENMP
        omp_set_num_threads(g->threads);
#endif
        size_t ncell = plugin.cell ? 1 : sizeof cells / sizeof cells[0];
        for (size_t c = 0; c < ncell; c++) {
            const struct cellspec *cs = plugin.cell ? &plugin : &cells[c];
            if (only && strcmp(only, cs->label)) continue;
            const struct side a = {NULL, cs, 0, RECUR_DTYPE_F32, RECUR_DTYPE_F32};
            const struct side b = {NULL, &cells[1], 0, RECUR_DTYPE_F32, RECUR_DTYPE_F32};
            /* recur, its peer (oneDNN's primitive, or recur's LSTM for a plugin cell) and the GEMM ceiling */
            struct turn v[3] = {recur_turn(&a, g)};
            int nv = 1, ipeer = 0, igemm = 0;
            if (plugin.cell) ipeer = nv, v[nv++] = recur_turn(&b, g);
#ifdef RECUR_HAVE_DNNL
            if (cs->peer) ipeer = nv, v[nv++] = onednn_turn(cs->peer, g, 0, dnnl_f32, NULL, 0);
            if (on_cpu) igemm = nv, v[nv++] = gemms_turn(cs, g);
#else
            (void)on_cpu;
#endif
            double t[3] = {NAN, NAN, NAN};
            if (take_turns(v, nv, g, reps, t) != 0 || isnan(t[0])) {
                rc = 1;
                continue;
            }
            double ms = t[0], peer = ipeer ? t[ipeer] : NAN, gemm = igemm ? t[igemm] : NAN;
            double flops = 2.0 * g->T * g->N * cs->G * g->H * (double)(g->I + g->H) * (g->training ? 3 : 1);
            printf("%-8s %-13s %3d %3d %5d %4d | %9.3f %7.1f | %9.3f %7.2f | ", g->name, cs->label, g->T, g->N,
                   g->H, g->threads, ms, flops / ms * 1e-6, peer, ms / peer);
            if (isnan(gemm)) printf("%9s %6s\n", "-", "-"); /* no ceiling: no oneDNN, or not on the CPU */
            else printf("%9.3f %5.0f%%\n", gemm, 100 * gemm / ms);
            fflush(stdout);
        }
    }
    if (!only || !strcmp(only, "lstmp")) rc |= bench_lstmp(reps, quick, all);
    if (!only || !strcmp(only, "lengths")) rc |= bench_lengths(quick ? 2 : reps, quick);
    if (!only || !strcmp(only, "opencl")) rc |= bench_opencl(quick);
#ifdef RECUR_HAVE_DNNL
    onednn_rnn_bench_release();
#else
    printf("\n(built without libdnnl: no oneDNN peer and no GEMM ceiling)\n");
#endif
    return rc;
}

#ifndef RECUR_BENCH_NO_MAIN
int main(int argc, char **argv) {
    return recur_bench_main(argc, argv);
}
#endif
