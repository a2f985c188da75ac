/*
 * cell-kernels.c: a cell plugin's CPU kernels alone, without the engine:
 * forward then backward of every stage on n rows of H units, in training
 * mode, the fastest of `reps` calls. For comparing two builds of a cell's
 * kernels (single-source against hand-written, a change to vmath) where a
 * whole training step would bury them under the GEMMs.
 *
 *   recur-cell-kernels PLUGIN.so [ISA [ROWS [H [REPS]]]]     (ISA: avx512, avx2, neon, scalar)
 *
 * The plugin is loaded as the library's loader would (its entry, asked as
 * this recur's ABI); the arrays are filled with values in [-0.5, 0.5).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recur/recur-cell.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static float *filled(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "recur-cell-kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return p;
}

static void quiet(int level, const char *fmt, ...) {
    (void)level;
    (void)fmt;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: recur-cell-kernels PLUGIN.so [ISA [ROWS [H [REPS]]]]\n");
        return 2;
    }
    const char *isa = argc > 2 ? argv[2] : "scalar";
    int n = argc > 3 ? atoi(argv[3]) : 64, H = argc > 4 ? atoi(argv[4]) : 1024, reps = argc > 5 ? atoi(argv[5]) : 50;
    uint32_t bit = (uint32_t)-1;
#define ISA_BIT_(u, ID, name, b, arch, implies, flags) \
    if (!strcmp(isa, #name)) bit = (b);
    RECUR_ISA_LIST(ISA_BIT_, )
#undef ISA_BIT_
    if (bit == (uint32_t)-1 || n < 1 || H < 1 || reps < 1) {
        fprintf(stderr, "recur-cell-kernels: bad ISA '%s', rows %d, H %d or reps %d\n", isa, n, H, reps);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    union {
        void *p;
        recur_cell_entry_fn fn;
    } entry = {h ? dlsym(h, RECUR_CELL_ENTRY_NAME) : NULL};
    struct recur_host_i host = {RECUR_CELL_ABI_VERSION, sizeof host, quiet, 0xffffffffu};
    const struct recur_cell_desc *d = NULL;
    if (!entry.p || entry.fn(RECUR_CELL_ABI_VERSION, &host, &d) != 0 || !d) {
        fprintf(stderr, "recur-cell-kernels: %s: %s\n", argv[1], h ? "its entry refused or is missing" : dlerror());
        return 1;
    }
    const struct recur_cell_cpu *v = NULL;
    for (int i = 0; i < d->n_cpu; i++)
        if (d->cpu[i].isa == bit) v = &d->cpu[i];
    if (!v) {
        fprintf(stderr, "recur-cell-kernels: cell '%s' has no %s kernels\n", d->name, isa);
        return 1;
    }
    size_t nh = (size_t)n * H, ng = nh * (size_t)d->n_gates;
    struct recur_cell_args a;
    memset(&a, 0, sizeof a);
    a.n = n;
    a.H = H;
    a.training = 1;
    a.n_gates = d->n_gates;
    a.n_save = d->n_save;
    a.xw = filled(ng);
    a.hw = filled(ng);
    a.b_hh = filled((size_t)d->n_gates * H);
    for (int k = 0; k < d->n_states; k++) {
        a.prev[k] = filled(nh);
        a.next[k] = filled(nh);
        a.dnext[k] = filled(nh);
        a.dprev[k] = filled(nh);
    }
    a.save = filled(nh * (size_t)d->n_save);
    a.src = filled(nh);
    a.dsrc = filled(nh);
    a.dxw = filled(ng);
    a.dhw = d->flags & RECUR_CELL_SPLIT_RECURRENT_GRAD ? filled(ng) : a.dxw;
    for (int k = 0; k < d->n_params; k++) {
        size_t w = recur_cell_param_floats(d, k, H);
        a.param[k] = filled(w);
        a.dparam[k] = filled(w * (size_t)n);
        a.param_floats[k] = (int)w;
    }
    double fwd = 1e30, bwd = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        for (int s = 0; s < d->n_stages; s++) v->forward[s](&a);
        double t1 = now_ms();
        for (int s = d->n_stages - 1; s >= 0; s--) v->backward[s](&a);
        double t2 = now_ms();
        if (t1 - t0 < fwd) fwd = t1 - t0;
        if (t2 - t1 < bwd) bwd = t2 - t1;
    }
    printf("%-14s %-7s rows %d H %d: forward %.3f ms, backward %.3f ms (fastest of %d)\n", d->name, isa, n, H, fwd,
           bwd, reps);
    return 0;
}
