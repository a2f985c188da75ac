/*
 * gradcheck.c: `recur gradcheck`, a finite-difference check of the BPTT of
 * any cell, built-in or from a plugin, through a whole model (layers,
 * directions, variable lengths) on the device RECUR_DEVICE selects.
 *
 * The loss is linear in the outputs, with random cotangents:
 *
 *   L = sum(y * dy) + sum(hT * dhT) + sum(cT * dcT)        (in double)
 *
 * so one training forward and recur_model_backward with (dy, dhT, dcT) give
 * dL/dw for every parameter tensor and dL/dx, dL/dh0, dL/dc0. Each tensor g
 * is checked along 3 random directions v (uniform entries, scaled to unit
 * L2 norm over the tensor) by finite differences of inference forwards:
 *
 *   fd = (L(w + eps v) - L(w - eps v)) / (2 eps),   against g . v,
 *   error = |fd - g.v| / max(|fd|, |g.v|, tiny)
 *
 * Details that keep the check tight in float32, and steady for relu:
 *   - w +- eps v is rounded to float before the model sees it; g.v uses the
 *     perturbation actually applied, ((float)(w + eps v) - (float)(w - eps v))
 *     / (2 eps), so the rounding of the weights adds no error.
 *   - eps is the length of the step in the tensor's space (v has unit norm).
 *     Six are tried, 1e-1, 5e-2, 1e-2, 2e-3, 4e-4 and 1e-4, each with the
 *     central difference and the two one-sided ones, (L(w + eps v) - L(w))
 *     / eps and (L(w) - L(w - eps v)) / eps, plus the Richardson
 *     extrapolation of each pair of successive central differences
 *     ((r^2 D(e2) - D(e1)) / (r^2 - 1), r = e1/e2, error O(eps^4)); a
 *     direction's error is the smallest over these 23 estimates. Each is a
 *     valid estimate of the directional derivative, so a wrong gradient fails
 *     all of them (tests/wrong-plugin's cell, 10% off, fails every tensor
 *     by 7e-2 or more over 5 seeds; built 1% off, it failed on all of 10
 *     seeds, worst errors 2e-2 and more); what the choice removes is each
 *     estimate's own weakness: the float32 rounding of L dominates at small
 *     eps (and for tensors whose gradient is small next to L: Richardson at
 *     large eps), truncation (O(eps^2) central, O(eps) one-sided) at large
 *     eps, and a relu kink crossed inside a step upsets the central
 *     difference and the one-sided one on its side, not the other side nor
 *     a smaller step.
 *     Measured on the CPU, the worst error over 40 seeds of every built-in
 *     cell, alone and with --layers 2 --bidirectional --lengths: 3.3e-4
 *     (relu), 2.4e-4 (the others); over 10 seeds of reverse, sum, 3 layers,
 *     H=16, H=1 T=1 N=1 and H=32 T=20 N=8 stacks: 4.4e-3 (relu at H=32),
 *     2.1e-3 (gru at H=1). With central differences at 1e-2 and 2e-3 only,
 *     relu failed 1e-2 in 10-40% of the seeds.
 *   - A direction almost orthogonal to g (|g.v| below a quarter of its
 *     typical size |g|/sqrt(n)) tests nothing relative to the rounding noise
 *     and is drawn again (at most 8 times); the draw does not look at the
 *     finite differences, so a wrong gradient cannot hide behind it.
 * ReLU is not differentiable at 0, so its check is approximate (the output
 * says so); the tolerance stays the same.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recur/recur.h"
#include "tool.h"


#define CMD "gradcheck"
#define N_DIRECTIONS 3

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static const double default_eps[] = {1e-1, 5e-2, 1e-2, 2e-3, 4e-4, 1e-4};

/* splitmix64: a small, seedable, portable generator. */
static uint64_t rng_state;
static double uniform(double lo, double hi) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * ((double)(z >> 11) * (1.0 / 9007199254740992.0));
}
static void fill(float *a, size_t n, double k) {
    for (size_t i = 0; i < n; i++) a[i] = (float)uniform(-k, k);
}

typedef struct gc {
    recur_ctx *ctx;
    recur_model *model;
    recur_model_io io;
    float *x, *h0, *c0, *y, *hT, *cT; /* io's arrays, writable */
    float *dy, *dhT, *dcT;
    size_t nx, ny, ns, nc; /* floats in x, in y, in a's states ([L*D, N, P]) and in c's ([L*D, N, H]) */
    const recur_model_desc *md;
    size_t np;
    float *wbuf; /* room for the largest parameter tensor */
} gc;

/* Zoneout: training call number 1 of a model with g->model's weights, so
 * that the masks are those of the analytic gradients' forward (the second
 * training forward of g->model, after the warm-up); a training forward with
 * fixed masks is a smooth function of the weights and inputs. */
static recur_status zoneout_forward(gc *g, recur_ctx *ctx, const recur_model_io *io) {
    recur_model *m = NULL;
    recur_status st = recur_model_create(ctx, g->md, &m);
    for (size_t k = 0; st == RECUR_OK && k < g->np; k++) {
        recur_param_info pi;
        st = recur_model_param_info(g->model, k, &pi);
        if (st == RECUR_OK) st = recur_model_param_get(g->model, pi.name, g->wbuf, pi.count);
        if (st == RECUR_OK) st = recur_model_param_set(m, pi.name, g->wbuf, pi.count);
    }
    for (int call = 0; st == RECUR_OK && call < 2; call++) st = recur_model_forward(m, RECUR_MODE_TRAINING, io);
    recur_model_free(m);
    return st;
}

/* L at the current weights and inputs, by an inference forward (with
 * zoneout, the training forward of the analytic gradients). */
static recur_status loss_at(gc *g, double *out) {
    recur_status st = g->md->zoneout > 0 ? zoneout_forward(g, g->ctx, &g->io)
                                         : recur_model_forward(g->model, RECUR_MODE_INFERENCE, &g->io);
    if (st != RECUR_OK) return st;
    double s = 0;
    for (size_t i = 0; i < g->ny; i++) s += (double)g->y[i] * g->dy[i];
    for (size_t i = 0; i < g->ns; i++) s += (double)g->hT[i] * g->dhT[i];
    if (g->cT)
        for (size_t i = 0; i < g->nc; i++) s += (double)g->cT[i] * g->dcT[i];
    *out = s;
    return RECUR_OK;
}

/* One tensor under test: a parameter (by name) or an input array. */
typedef struct target {
    const char *name;
    int is_param;
    float *input; /* the io array for an input */
    size_t count;
} target;

static recur_status target_set(gc *g, const target *t, const float *vals) {
    if (t->is_param) return recur_model_param_set(g->model, t->name, vals, t->count);
    memcpy(t->input, vals, t->count * sizeof *vals);
    return RECUR_OK;
}

/*
 * The worst error over the directions for one tensor, with analytic
 * gradient grad; w holds its values, and is put back afterwards.
 */
static recur_status check_tensor(gc *g, const target *t, const float *w, const float *grad, double l0,
                                 const double *eps, int n_eps, double *worst_out) {
    size_t n = t->count;
    double *v = malloc(n * sizeof *v);
    float *wp = malloc(n * sizeof *wp), *wm = malloc(n * sizeof *wm);
    recur_status st = RECUR_OK;
    if (!v || !wp || !wm) {
        st = RECUR_ERR_NO_MEMORY;
        goto out;
    }
    double gnorm = 0;
    for (size_t i = 0; i < n; i++) gnorm += (double)grad[i] * grad[i];
    gnorm = sqrt(gnorm);
    double worst = 0;
    for (int d = 0; d < N_DIRECTIONS; d++) {
        for (int attempt = 0; attempt < 8; attempt++) {
            double norm = 0, gv = 0;
            for (size_t i = 0; i < n; i++) {
                v[i] = uniform(-1, 1);
                norm += v[i] * v[i];
            }
            norm = sqrt(norm);
            for (size_t i = 0; i < n; i++) {
                v[i] /= norm;
                gv += grad[i] * v[i];
            }
            if (fabs(gv) >= 0.25 * gnorm / sqrt((double)n)) break;
        }
        double best = INFINITY, prev_fd = 0, prev_gv = 0;
        for (int e = 0; e < n_eps; e++) {
            /* g.v over the perturbation actually applied, for each of the
             * central, forward and backward differences. */
            double gc = 0, gf = 0, gb = 0;
            for (size_t i = 0; i < n; i++) {
                wp[i] = (float)(w[i] + eps[e] * v[i]);
                wm[i] = (float)(w[i] - eps[e] * v[i]);
                gc += grad[i] * (((double)wp[i] - wm[i]) / (2 * eps[e]));
                gf += grad[i] * (((double)wp[i] - w[i]) / eps[e]);
                gb += grad[i] * (((double)w[i] - wm[i]) / eps[e]);
            }
            double lp, lm;
            if ((st = target_set(g, t, wp)) != RECUR_OK || (st = loss_at(g, &lp)) != RECUR_OK ||
                (st = target_set(g, t, wm)) != RECUR_OK || (st = loss_at(g, &lm)) != RECUR_OK)
                goto out;
            double fd[4] = {(lp - lm) / (2 * eps[e]), (lp - l0) / eps[e], (l0 - lm) / eps[e], 0};
            double gv[4] = {gc, gf, gb, 0};
            int kinds = 3;
            if (e > 0) { /* Richardson: the central differences of this eps and the one before */
                double r2 = (eps[e - 1] / eps[e]) * (eps[e - 1] / eps[e]);
                fd[3] = (r2 * fd[0] - prev_fd) / (r2 - 1);
                gv[3] = (r2 * gv[0] - prev_gv) / (r2 - 1);
                kinds = 4;
            }
            prev_fd = fd[0], prev_gv = gv[0];
            for (int k = 0; k < kinds; k++) {
                double err = fabs(fd[k] - gv[k]) / fmax(fmax(fabs(fd[k]), fabs(gv[k])), 1e-30);
                if (isnan(err)) err = INFINITY;
                if (err < best) best = err;
            }
        }
        if (!(best <= worst)) worst = best;
    }
    *worst_out = worst;
out:;
    recur_status put = target_set(g, t, w); /* always put the values back */
    if (st == RECUR_OK) st = put;
    free(v), free(wp), free(wm);
    return st;
}

/* max |a - b| / max |b| over the n floats where b, the reference, is a
 * number (0 when they agree; INFINITY when b is all 0 and a is not). A NaN
 * or Inf in a where b has a number is INFINITY, never "within tolerance":
 * *at is then its element, else the one that differs most. */
static double rel_diff(const float *a, const float *b, size_t n, size_t *at) {
    double d = 0, m = 0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i])) continue; /* the reference's own trouble: its finite differences fail */
        if (!isfinite(a[i])) {
            *at = i;
            return INFINITY;
        }
        double e = fabs((double)a[i] - b[i]), v = fabs((double)b[i]);
        if (e > d) d = e, *at = i;
        if (v > m) m = v;
    }
    return d == 0 ? 0 : m > 0 ? d / m : INFINITY;
}

/*
 * The cell's kernels on ctx's device against its scalar C kernels, one call
 * each on the same inputs (recur_ctx_cell_compare), at the check's H and N,
 * then at H = 19 (a whole AVX-512 vector and a tail): where the copies part,
 * named for the author (the stage, the kernel, forward or backward, and the
 * array), and any write outside an array (n_save too small, a write past a
 * row), which nothing else catches in an OpenCL kernel. 0: they agree;
 * 1: they do not (printed); -1: a library error (printed).
 */
static int stage_check(recur_ctx *ctx, const char *cell, const char *variant, int H, int N, double tol,
                       const char *selector, int verbose) {
    recur_cell_diff df;
    int shape[2][2] = {{H, N}, {19, 3}}, used = 0;
    for (int k = 0; k < 2; k++) {
        used = k;
        if (recur_ctx_cell_compare(ctx, cell, variant, shape[k][0], shape[k][1], tol, &df) != RECUR_OK) {
            fprintf(stderr, "recur %s: recur_ctx_cell_compare: %s\n", CMD, recur_ctx_error(ctx));
            return -1;
        }
        if (df.stage >= 0) break;
    }
    if (df.stage < 0) {
        if (verbose)
            printf("kernels one by one against the scalar C ones (H=%d and 19, the same inputs): agree, "
                   "each within its arrays\n", H);
        return 0;
    }
    int h = shape[used][0], n = shape[used][1];
    const char *kern = df.backward ? "backward" : "forward";
    if (df.read_only) {
        printf("cell '%s' on %s: stage %d's %s kernel wrote into %s, which it may only read (H=%d, %d rows): FAILED\n",
               cell, selector, df.stage, kern, df.tensor, h, n);
        return 1;
    }
    if (df.outside) {
        printf("cell '%s' on %s: stage %d's %s kernel wrote outside %s: up to %d float%s %s it (H=%d, %d rows%s): "
               "FAILED\n",
               cell, selector, df.stage, kern, df.tensor, abs(df.outside), abs(df.outside) > 1 ? "s" : "",
               df.outside > 0 ? "past the end of" : "before the start of", h, n,
               !strcmp(df.tensor, "save") ? "; save holds n_save * H floats a row: is n_save too small?" : "");
        return 1;
    }
    char where[64];
    if (!strncmp(df.tensor, "dxw", 3) || !strncmp(df.tensor, "dhw", 3))
        snprintf(where, sizeof where, "gate %d, unit %d", df.col / h, df.col % h);
    else if (!strcmp(df.tensor, "save"))
        snprintf(where, sizeof where, "saved float %d (unit %d)", df.col, df.col % h);
    else if (!strncmp(df.tensor, "dparam", 6))
        snprintf(where, sizeof where, "element %d", df.col);
    else
        snprintf(where, sizeof where, "unit %d", df.col);
    char how[96];
    if (isinf(df.diff))
        snprintf(how, sizeof how, "a %s where the reference has a number", isnan(df.value) ? "NaN" : "non-finite value");
    else
        snprintf(how, sizeof how, "relative difference %.2e, tolerance %.2e", df.diff, tol);
    printf("cell '%s' on %s parts from its scalar C kernels first in stage %d's %s kernel, in %s: row %d, %s is "
           "%.9g where the reference has %.9g (%s; H=%d, %d rows, one call on the same inputs): FAILED\n",
           cell, selector, df.stage, kern, df.tensor, df.row, where, df.value, df.reference, how, h, n);
    return 1;
}

/*
 * The same training forward and backward on "cpu:scalar" (ref), the cell's
 * scalar C kernels, which the ABI makes every cell's reference: every other
 * ISA variant and the OpenCL kernels must compute the same function. Finite
 * differences check that a device's gradients fit its own outputs; this
 * checks the outputs themselves (a gate's polarity swapped in one copy of
 * the math passes the first and fails this). ref NULL: the same device in
 * float32 (the reference of a model in bf16 or f16). The worst relative
 * difference over y, hT, cT and every gradient in res->ref_worst (INFINITY:
 * a NaN or Inf where the reference has a number), its tensor and element in
 * ref_worst_name and ref_worst_at; -1 after printing a library error.
 */
static int reference_check(gc *g, const recur_model_desc *md, const recur_model_grad_io *gio, size_t np,
                           float *pw, float *pg, const char *ref, struct gradcheck_result *res) {
    const char *label = ref ? ref : "f32";
    recur_ctx *rctx = NULL;
    recur_model *rm = NULL;
    int rc = -1;
    float *y = malloc(g->ny * sizeof *y), *hT = malloc(g->ns * sizeof *hT), *cT = NULL;
    float *dx = malloc(g->nx * sizeof *dx), *dh0 = malloc(g->ns * sizeof *dh0), *dc0 = NULL;
    float *rg = NULL;
    const char *call = "recur_ctx_create of the reference";
    res->ref_worst = 0;
    res->ref_worst_name[0] = res->ref_worst_at[0] = 0;
    if (g->c0) cT = malloc(g->nc * sizeof *cT), dc0 = malloc(g->nc * sizeof *dc0);
    if (!y || !hT || !dx || !dh0 || (g->c0 && (!cT || !dc0))) {
        fprintf(stderr, "recur %s: out of host memory\n", CMD);
        goto out;
    }
    if (ref && recur_ctx_create(&rctx, ref) != RECUR_OK) goto fail;
    call = "recur_model_create of the reference";
    if (recur_model_create(ref ? rctx : g->ctx, md, &rm) != RECUR_OK) goto fail;
    size_t maxp = 1; /* the largest parameter tensor, for its reference gradient */
    for (size_t k = 0; k < np; k++) {
        recur_param_info pi;
        call = "recur_model_param_info";
        if (recur_model_param_info(g->model, k, &pi) != RECUR_OK) goto fail;
        if (pi.count > maxp) maxp = pi.count;
        call = "recur_model_param_get / recur_model_param_set of the reference";
        if (recur_model_param_get(g->model, pi.name, pw, pi.count) != RECUR_OK ||
            recur_model_param_set(rm, pi.name, pw, pi.count) != RECUR_OK)
            goto fail;
    }
    rg = malloc(maxp * sizeof *rg);
    if (!rg) {
        fprintf(stderr, "recur %s: out of host memory\n", CMD);
        goto out;
    }
    recur_model_io io = g->io;
    io.y = y, io.hT = hT, io.cT = cT;
    recur_model_grad_io rgio = *gio;
    rgio.dx = dx, rgio.dh0 = dh0, rgio.dc0 = dc0;
    call = "recur_model_forward / recur_model_backward of the reference";
    /* The checked run is g->model's second training forward: the same call number (its zoneout masks). */
    if ((md->zoneout > 0 && recur_model_forward(rm, RECUR_MODE_TRAINING, &io) != RECUR_OK) ||
        recur_model_forward(rm, RECUR_MODE_TRAINING, &io) != RECUR_OK ||
        recur_model_backward(rm, &io, &rgio, RECUR_GRAD_OVERWRITE) != RECUR_OK)
        goto fail;
#define CMP(nm, a, b, n)                                                                                 \
    do {                                                                                                 \
        size_t at_;                                                                                      \
        double e_ = rel_diff(a, b, n, &at_);                                                             \
        if (e_ > res->ref_worst) {                                                                       \
            res->ref_worst = e_;                                                                         \
            snprintf(res->ref_worst_name, sizeof res->ref_worst_name, "%s", nm);                         \
            snprintf(res->ref_worst_at, sizeof res->ref_worst_at, "element %zu: %.7g, %s %.7g", at_,     \
                     (double)(a)[at_], label, (double)(b)[at_]);                                         \
        }                                                                                                \
    } while (0)
    CMP("y", g->y, y, g->ny);
    CMP("hT", g->hT, hT, g->ns);
    if (g->c0) CMP("cT", g->cT, cT, g->nc);
    CMP("dL/dx", gio->dx, dx, g->nx);
    CMP("dL/dh0", gio->dh0, dh0, g->ns);
    if (g->c0) CMP("dL/dc0", gio->dc0, dc0, g->nc);
    for (size_t k = 0; k < np; k++) {
        recur_param_info pi;
        recur_model_param_info(g->model, k, &pi);
        call = "recur_model_grad_get";
        if (recur_model_grad_get(g->model, pi.name, pg, pi.count) != RECUR_OK ||
            recur_model_grad_get(rm, pi.name, rg, pi.count) != RECUR_OK)
            goto fail;
        char nm[64];
        snprintf(nm, sizeof nm, "dL/d%s", pi.name);
        CMP(nm, pg, rg, pi.count);
    }
#undef CMP
    rc = 0;
    goto out;
fail:
    rctx = ref ? rctx : g->ctx;
    fprintf(stderr, "recur %s: %s (%s): %s\n", CMD, call, label,
            rctx && recur_ctx_error(rctx)[0] ? recur_ctx_error(rctx) : recur_last_error());
    if (!ref) rctx = NULL;
out:
    recur_model_free(rm);
    recur_ctx_free(rctx);
    free(y), free(hT), free(cT), free(dx), free(dh0), free(dc0), free(rg);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: recur gradcheck --cell NAME [--variant V] [--layers L]\n"
            "                       [--direction forward|reverse|bidi_concat|bidi_sum] [--bidirectional]\n"
            "                       [--input I] [--hidden H] [--steps T] [--batch N] [--lengths]\n"
            "                       [--seed S] [--tol X] [--eps E[,E...]] [--ref-tol X] [--zoneout P]\n"
            "                       [--proj P] [--precision f32|bf16|f16]\n\n"
            "Checks the BPTT of a cell (built-in or from a plugin), through a whole model, against\n"
            "central finite differences, on the device RECUR_DEVICE selects. With seeded random\n"
            "weights (uniform +-1/sqrt(H)), inputs x, h0 (and c0) and cotangents dy, dhT (and dcT),\n"
            "the loss is L = sum(y*dy) + sum(hT*dhT) + sum(cT*dcT). Every parameter tensor and every\n"
            "input is checked along %d random unit directions v: the finite difference\n"
            "fd = (L(w+eps v) - L(w-eps v)) / 2eps, and the one-sided ones, against the analytic\n"
            "g.v; error = |fd - g.v| / max(|fd|, |g.v|), the smallest over the differences and\n"
            "eps = 1e-1 .. 1e-4 (see tools/gradcheck.c). It prints the worst error per tensor\n"
            "On any device but cpu:scalar it also runs the same forward and backward on cpu:scalar,\n"
            "the cell's scalar C kernels (its reference), and compares y, hT, cT and every\n"
            "gradient: max|a - b| / max|b| per tensor (a NaN or Inf where cpu:scalar has a number\n"
            "always fails), and runs each kernel of the cell once on the device and once as the C\n"
            "kernel on the same inputs, between guard zones, naming the first stage, kernel and\n"
            "array that differ or are written outside (recur_ctx_cell_compare). It exits 0 when\n"
            "all are within the tolerances, 1 when one is not (or on a library error), 2 on a\n"
            "bad option (also a --precision the device cannot compute). ReLU's kinks make its\n"
            "finite-difference check approximate.\n\n"
            "  --cell NAME        the cell (see 'recur cells'); required\n"
            "  --variant V        the cell's variant (rnn: tanh, relu); default the cell's first\n"
            "  --layers L         stacked layers, 1..64 (default 1)\n"
            "  --direction D      forward, reverse, bidi_concat or bidi_sum (default forward;\n"
            "                     the older concat, sum and bidi are accepted too)\n"
            "  --bidirectional    the same as --direction bidi_concat\n"
            "  --input I          input size, 1..4096 (default 4)\n"
            "  --hidden H         hidden size, 1..4096 (default 6)\n"
            "  --steps T          time steps, 1..100000 (default 5)\n"
            "  --batch N          sequences, 1..4096 (default 3)\n"
            "  --lengths          sequences of a fixed, unsorted set of lengths in 1..T\n"
            "                     (default: every sequence T steps)\n"
            "  --seed S           seed of the weights, data and directions (default 1)\n"
            "  --zoneout P        the model's zoneout in [0, 1) (default 0); the finite differences\n"
            "                     are then of the training forward, with the masks of the checked one\n"
            "  --proj P           project each layer's output to P < H units (proj_size, W_hr);\n"
            "                     cells flagged projectable only (lstm, lstm-peephole, lstm-ln)\n"
            "  --tol X            the largest relative error that passes (default 1e-2)\n"
            "  --eps E[,E...]     up to 6 step lengths in (0, 1) instead of the default\n"
            "                     1e-1,5e-2,1e-2,2e-3,4e-4,1e-4\n"
            "  --ref-tol X        the largest relative difference from cpu:scalar that passes\n"
            "                     (default 1e-3)\n"
            "  --precision P      of the matrix products (default f32). bf16 or f16: no finite\n"
            "                     differences (the operands' rounding makes L a step function of\n"
            "                     small perturbations); instead y, hT, cT and every gradient against\n"
            "                     the same model in f32 on the same device, max|a - b| / max|b| per\n"
            "                     tensor within --ref-tol (default 8 units of the precision's\n"
            "                     rounding: bf16 3.1e-2, f16 3.9e-3)\n",
            N_DIRECTIONS);
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return tool_usage_error(CMD, "%s '%s': expected an integer in %ld..%ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int parse_real(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v > lo) || !(v < hi))
        return tool_usage_error(CMD, "%s '%s': expected a number above %g and below %g", opt, s, lo, hi);
    *out = v;
    return 0;
}

/* --eps E[,E...]: up to 6 step lengths in (0, 1). */
static int parse_eps_list(const char *s, double *eps, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == 6) return tool_usage_error(CMD, "--eps '%s': at most 6 step lengths", s);
        int rc = parse_real("--eps", tok, 0, 1, &eps[(*n)++]);
        if (rc) return rc;
    }
    if (*n == 0) return tool_usage_error(CMD, "--eps '%s': expected numbers above 0 and below 1", s);
    return 0;
}

/* --zoneout P: in [0, 1). */
static int parse_zoneout(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0 && v < 1))
        return tool_usage_error(CMD, "--zoneout '%s': expected a number in [0, 1)", s);
    *out = v;
    return 0;
}

/* The fixed, unsorted lengths of --lengths: fractions of T - 1 past 1. */
static void fixed_lengths(int *len, int N, int T) {
    static const double frac[] = {1.0, 0.25, 0.6, 0.0, 0.85, 0.4, 1.0, 0.1};
    for (int i = 0; i < N; i++) {
        int l = 1 + (int)lround(frac[i % 8] * (T - 1));
        len[i] = l < 1 ? 1 : l > T ? T : l;
    }
}

int cmd_gradcheck(int argc, char **argv) {
    const char *cell = NULL, *variant = NULL, *direction = NULL;
    long L = 1, I = 4, H = 6, T = 5, N = 3;
    int bidirectional = 0, use_lengths = 0;
    uint64_t seed = 1;
    double tol = 1e-2, ref_tol = 1e-3, user_eps[6], zoneout = 0;
    long proj = 0;
    recur_dtype precision = RECUR_DTYPE_F32;
    int ref_tol_given = 0;
    int n_user_eps = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--bidirectional")) {
            bidirectional = 1;
            continue;
        }
        if (!strcmp(a, "--lengths")) {
            use_lengths = 1;
            continue;
        }
        static const char *valued[] = {"--cell", "--variant", "--layers", "--direction", "--input", "--hidden",
                                       "--steps", "--batch", "--seed", "--tol", "--eps", "--ref-tol",
                                       "--zoneout", "--proj", "--precision"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= !strcmp(a, valued[k]);
        if (!known) return tool_usage_error(CMD, "unknown option '%s' (see 'recur gradcheck --help')", a);
        if (i + 1 >= argc) return tool_usage_error(CMD, "option '%s' needs a value", a);
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--cell")) cell = v;
        else if (!strcmp(a, "--variant")) variant = v;
        else if (!strcmp(a, "--direction")) direction = v;
        else if (!strcmp(a, "--layers")) rc = parse_long(a, v, 1, 64, &L);
        else if (!strcmp(a, "--input")) rc = parse_long(a, v, 1, 4096, &I);
        else if (!strcmp(a, "--hidden")) rc = parse_long(a, v, 1, 4096, &H);
        else if (!strcmp(a, "--steps")) rc = parse_long(a, v, 1, 100000, &T);
        else if (!strcmp(a, "--batch")) rc = parse_long(a, v, 1, 4096, &N);
        else if (!strcmp(a, "--tol")) rc = parse_real(a, v, 0, 1e30, &tol);
        else if (!strcmp(a, "--ref-tol")) rc = parse_real(a, v, 0, 1e30, &ref_tol), ref_tol_given = 1;
        else if (!strcmp(a, "--eps")) rc = parse_eps_list(v, user_eps, &n_user_eps);
        else if (!strcmp(a, "--zoneout")) rc = parse_zoneout(v, &zoneout);
        else if (!strcmp(a, "--proj")) rc = parse_long(a, v, 0, 4095, &proj);
        else if (!strcmp(a, "--precision")) {
            if (recur_dtype_parse(v, &precision) != RECUR_OK)
                return tool_usage_error(CMD, "--precision '%s': %s", v, recur_last_error());
        }
        else { /* --seed */
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || errno || v[0] == '-' || v[0] == '+')
                return tool_usage_error(CMD, "--seed '%s': expected an integer in 0..%llu", v, (unsigned long long)UINT64_MAX);
            seed = (uint64_t)s;
        }
        if (rc) return rc;
    }
    if (!cell) return tool_usage_error(CMD, "--cell NAME is required (see 'recur cells')");

    recur_direction dir = bidirectional ? RECUR_DIR_BIDI_CONCAT : RECUR_DIR_FORWARD;
    if (direction) {
        recur_direction d;
        if (recur_direction_parse(direction, &d) != RECUR_OK)
            return tool_usage_error(CMD, "--direction '%s': expected forward, reverse, bidi_concat or bidi_sum",
                                    direction);
        if (bidirectional && d != RECUR_DIR_BIDI_CONCAT)
            return tool_usage_error(CMD, "--bidirectional (bidi_concat) conflicts with --direction '%s'", direction);
        dir = d;
    }

    /* The cell and variant, by name, before anything runs. */
    recur_cell_info ci;
    int found = 0;
    size_t ncell = recur_cell_count();
    for (size_t k = 0; k < ncell && !found; k++)
        if (recur_cell_get(k, &ci) == RECUR_OK && !strcmp(ci.name, cell)) found = 1;
    if (!found) {
        char list[512] = "";
        for (size_t k = 0; k < ncell; k++) {
            recur_cell_info c;
            if (recur_cell_get(k, &c) != RECUR_OK) continue;
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", c.name);
        }
        return tool_usage_error(CMD, "--cell '%s': no such cell (loaded: %s)", cell,
                                ncell ? list : "none; set RECUR_PLUGIN_PATH");
    }
    if (variant) {
        int ok = 0;
        char list[256] = "";
        for (int k = 0; k < ci.n_variants; k++) {
            ok |= !strcmp(variant, ci.variants[k]);
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", ci.variants[k]);
        }
        if (!ok)
            return tool_usage_error(CMD, "--variant '%s': cell '%s' has %s%s", variant, cell,
                                    ci.n_variants ? "the variants " : "no variants", list);
    } else if (ci.n_variants > 0) {
        variant = ci.variants[0];
    }
    /* 8 units of the operands' rounding, 2^-8 (bf16) and 2^-11 (f16): a product of two rounded operands */
    if (!ref_tol_given && precision != RECUR_DTYPE_F32) ref_tol = precision == RECUR_DTYPE_BF16 ? 0x1p-5 : 0x1p-8;
    recur_ctx *ctx = tool_ctx(CMD);
    if (!ctx) return 1;
    struct gradcheck_opts o = {.cell = cell, .variant = variant, .L = (int)L, .I = (int)I, .H = (int)H, .T = (int)T,
                               .N = (int)N, .dir = dir, .lengths = use_lengths, .seed = seed, .tol = tol, .ref_tol = ref_tol,
                               .eps = n_user_eps ? user_eps : NULL, .n_eps = n_user_eps, .verbose = 1,
                               .zoneout = zoneout, .proj = (int)proj, .precision = precision};
    struct gradcheck_result res;
    int rc = gradcheck_run(ctx, &o, &res);
    recur_ctx_free(ctx);
    return rc == -2 ? 2 : rc < 0 ? 1 : rc;
}

int gradcheck_run(recur_ctx *ctx, const struct gradcheck_opts *o, struct gradcheck_result *res) {
    const char *cell = o->cell, *variant = o->variant;
    long L = o->L, I = o->I, H = o->H, T = o->T, N = o->N;
    recur_direction dir = o->dir;
    int use_lengths = o->lengths, verbose = o->verbose;
    uint64_t seed = o->seed;
    double tol = o->tol;
    memset(res, 0, sizeof *res);
    recur_cell_info ci = {0};
    for (size_t k = 0; k < recur_cell_count(); k++)
        if (recur_cell_get(k, &ci) == RECUR_OK && !strcmp(ci.name, cell)) break;
    if (!variant && ci.n_variants > 0 && ci.name && !strcmp(ci.name, cell)) variant = ci.variants[0];
    int two_state = ci.n_states == 2;
    int kinked = variant && !strcmp(variant, "relu");
    rng_state = seed ^ 0x6a09e667f3bcc908ull;
    gc g = {.ctx = ctx};
    int rc = -1, D = 0, O = 0;
    size_t np = 0;
    int *lengths = NULL;
    float *pw = NULL, *pg = NULL, *dx = NULL, *dh0 = NULL, *dc0 = NULL;
    const char *failed_call = NULL;
    recur_model_desc md = {.cell = cell, .variant = variant, .input_size = (int)I, .hidden_size = (int)H,
                           .num_layers = (int)L, .direction = dir, .dropout = 0, .seed = seed,
                           .zoneout = (float)o->zoneout, .proj_size = o->proj};
    g.md = &md;
    if (recur_model_create(ctx, &md, &g.model) != RECUR_OK) {
        failed_call = "recur_model_create";
        goto lib_fail;
    }
    if (recur_model_set_precision(g.model, o->precision) != RECUR_OK) { /* the device cannot: as a bad option */
        fprintf(stderr, "recur %s: --precision %s: %s\n", CMD, recur_dtype_name(o->precision), recur_ctx_error(ctx));
        rc = -2;
        goto out;
    }
    D = recur_model_directions(g.model);
    O = recur_model_output_size(g.model);
    g.nx = (size_t)T * N * I;
    g.ny = (size_t)T * N * O;
    g.ns = (size_t)L * D * N * (o->proj ? o->proj : H);
    g.nc = (size_t)L * D * N * H;
    g.x = malloc(g.nx * sizeof *g.x);
    g.y = malloc(g.ny * sizeof *g.y);
    g.dy = malloc(g.ny * sizeof *g.dy);
    g.h0 = malloc(g.ns * sizeof *g.h0);
    g.hT = malloc(g.ns * sizeof *g.hT);
    g.dhT = malloc(g.ns * sizeof *g.dhT);
    dx = malloc(g.nx * sizeof *dx);
    dh0 = malloc(g.ns * sizeof *dh0);
    lengths = malloc((size_t)N * sizeof *lengths);
    if (two_state) {
        g.c0 = malloc(g.nc * sizeof *g.c0);
        g.cT = malloc(g.nc * sizeof *g.cT);
        g.dcT = malloc(g.nc * sizeof *g.dcT);
        dc0 = malloc(g.nc * sizeof *dc0);
    }
    if (!g.x || !g.y || !g.dy || !g.h0 || !g.hT || !g.dhT || !dx || !dh0 || !lengths ||
        (two_state && (!g.c0 || !g.cT || !g.dcT || !dc0))) {
        fprintf(stderr, "recur %s: out of host memory for T=%ld N=%ld I=%ld H=%ld\n", CMD, T, N, I, H);
        goto out;
    }

    /* Weights: PyTorch's uniform +-1/sqrt(H), tensor by tensor. */
    np = recur_model_param_count(g.model);
    size_t maxp = g.nx > g.nc ? g.nx : g.nc; /* nc >= ns */
    for (size_t k = 0; k < np; k++) {
        recur_param_info pi;
        if (recur_model_param_info(g.model, k, &pi) != RECUR_OK) {
            failed_call = "recur_model_param_info";
            goto lib_fail;
        }
        if (pi.count > maxp) maxp = pi.count;
    }
    pw = malloc(maxp * sizeof *pw);
    pg = malloc(maxp * sizeof *pg);
    g.wbuf = malloc(maxp * sizeof *g.wbuf);
    g.np = np;
    if (!pw || !pg || !g.wbuf) {
        fprintf(stderr, "recur %s: out of host memory\n", CMD);
        goto out;
    }
    double k_init = 1.0 / sqrt((double)H);
    for (size_t k = 0; k < np; k++) {
        recur_param_info pi;
        recur_model_param_info(g.model, k, &pi);
        fill(pw, pi.count, k_init);
        if (recur_model_param_set(g.model, pi.name, pw, pi.count) != RECUR_OK) {
            failed_call = "recur_model_param_set";
            goto lib_fail;
        }
    }
    fill(g.x, g.nx, 1.0);
    fill(g.h0, g.ns, 0.5);
    fill(g.dy, g.ny, 1.0);
    fill(g.dhT, g.ns, 1.0);
    if (two_state) {
        fill(g.c0, g.nc, 0.5);
        fill(g.dcT, g.nc, 1.0);
    }
    if (use_lengths) fixed_lengths(lengths, (int)N, (int)T);
    g.io = (recur_model_io){.T = (int)T, .N = (int)N, .lengths = use_lengths ? lengths : NULL, .pad = 0,
                            .x = g.x, .h0 = g.h0, .c0 = g.c0, .y = g.y, .hT = g.hT, .cT = g.cT};

    /* The analytic gradients, timed after an untimed warm-up forward and backward
     * (the first call pays for one-time setup: the GEMM library's JIT, the
     * thread pool, OpenCL kernels). */
    recur_model_grad_io gio = {.dy = g.dy, .dhT = g.dhT, .dcT = g.dcT, .dx = dx, .dh0 = dh0, .dc0 = dc0};
    if (recur_model_forward(g.model, RECUR_MODE_TRAINING, &g.io) != RECUR_OK ||
        recur_model_backward(g.model, &g.io, &gio, RECUR_GRAD_OVERWRITE) != RECUR_OK) {
        failed_call = "the warm-up's recur_model_forward or recur_model_backward";
        goto lib_fail;
    }
    double t0 = now_ms();
    if (recur_model_forward(g.model, RECUR_MODE_TRAINING, &g.io) != RECUR_OK) {
        failed_call = "recur_model_forward";
        goto lib_fail;
    }
    double t1 = now_ms();
    double L0 = 0;
    for (size_t i = 0; i < g.ny; i++) L0 += (double)g.y[i] * g.dy[i];
    for (size_t i = 0; i < g.ns; i++) L0 += (double)g.hT[i] * g.dhT[i];
    if (two_state)
        for (size_t i = 0; i < g.nc; i++) L0 += (double)g.cT[i] * g.dcT[i];
    if (recur_model_backward(g.model, &g.io, &gio, RECUR_GRAD_OVERWRITE) != RECUR_OK) {
        failed_call = "recur_model_backward";
        goto lib_fail;
    }
    res->forward_ms = t1 - t0;
    res->backward_ms = now_ms() - t1;
    res->loss = L0;

    recur_device_info info;
    recur_ctx_device(ctx, &info);
    if (verbose)
        printf("recur gradcheck: %s%s%s on %s in %s, %ld layer%s, %s, I=%ld H=%ld T=%ld N=%ld, seed %llu\n", cell,
           variant ? ":" : "", variant ? variant : "", info.selector, recur_dtype_name(o->precision), L,
           L == 1 ? "" : "s", recur_direction_name(dir), I, H, T, N, (unsigned long long)seed);
    if (verbose && use_lengths) {
        printf("lengths");
        for (long k = 0; k < N; k++) printf("%s%d", k ? "," : " ", lengths[k]);
        printf("\n");
    }
    /* bf16, f16: the operands' rounding makes L a staircase at the steps that would test a
     * gradient, so instead of finite differences the same model in f32 on the same device is
     * the reference (the f32 gradcheck checks the gradients and kernels themselves). */
    if (o->precision != RECUR_DTYPE_F32) {
        res->ref_checked = 1;
        if (reference_check(&g, &md, &gio, np, pw, pg, NULL, res) < 0) goto out;
        rc = res->ref_worst <= o->ref_tol ? 0 : 1;
        if (verbose) {
            printf("against f32 on %s: worst relative difference %.2e (%s%s%s), tolerance %.2e: %s\n", info.selector,
                   res->ref_worst, res->ref_worst_name[0] ? res->ref_worst_name : "-",
                   res->ref_worst_name[0] ? ", " : "", res->ref_worst_at, o->ref_tol, rc ? "FAILED" : "ok");
            printf("(no finite differences in %s: its rounding makes them meaningless; the f32 gradcheck checks "
                   "the gradients)\n", recur_dtype_name(o->precision));
        }
        goto out;
    }
    /* Against the reference kernels, before the finite differences overwrite y, hT and cT. */
    res->ref_checked = strcmp(info.selector, "cpu:scalar") != 0;
    if (res->ref_checked) {
        if (reference_check(&g, &md, &gio, np, pw, pg, "cpu:scalar", res) < 0)
            goto out;
        if (verbose)
            printf("against cpu:scalar (the cell's C reference): worst relative difference %.2e (%s%s%s), tolerance "
                   "%.2e: %s\n",
                   res->ref_worst, res->ref_worst_name[0] ? res->ref_worst_name : "-",
                   res->ref_worst_name[0] ? ", " : "", res->ref_worst_at, o->ref_tol,
                   res->ref_worst <= o->ref_tol ? "ok" : "FAILED");
        int sc = stage_check(ctx, cell, variant, (int)H, (int)N, o->ref_tol, info.selector, verbose);
        if (sc < 0) goto out;
        res->stage_failed = sc;
        if (verbose && !sc && !(res->ref_worst <= o->ref_tol))
            printf("so the difference arises outside the cell's kernels (the engine or the backend)\n");
    }
    const double *eps = o->eps ? o->eps : default_eps;
    int n_eps = o->eps ? o->n_eps : (int)(sizeof default_eps / sizeof *default_eps);
    double l0;
    if (loss_at(&g, &l0) != RECUR_OK) {
        failed_call = "recur_model_forward";
        goto lib_fail;
    }
    if (verbose) {
    printf("L = sum(y*dy) + sum(hT*dhT)%s = %.6f\n", two_state ? " + sum(cT*dcT)" : "", L0);
    printf("%d random unit directions per tensor; central, one-sided and Richardson differences, eps", N_DIRECTIONS);
    for (int e = 0; e < n_eps; e++) printf("%s%g", e ? ", " : " ", eps[e]);
    printf(";\nerror = |fd - g.v| / max(|fd|, |g.v|), the smallest over these\n");
    if (kinked) printf("note: relu is not differentiable at 0; near a kink the check is approximate\n");
    printf("%-24s %9s %12s\n", "TENSOR", "ELEMENTS", "WORST ERROR");
    }

    int n_checked = 0, n_failed = 0;
    double worst_all = 0;
    char worst_name[48] = "";
    size_t n_inputs = two_state ? 3 : 2;
    for (size_t k = 0; k < np + n_inputs; k++) {
        target t = {0};
        const float *grad;
        float *w;
        recur_param_info pi;
        if (k < np) {
            recur_model_param_info(g.model, k, &pi);
            t = (target){.name = pi.name, .is_param = 1, .count = pi.count};
            if (recur_model_param_get(g.model, pi.name, pw, pi.count) != RECUR_OK) {
                failed_call = "recur_model_param_get";
                goto lib_fail;
            }
            if (recur_model_grad_get(g.model, pi.name, pg, pi.count) != RECUR_OK) {
                failed_call = "recur_model_grad_get";
                goto lib_fail;
            }
            w = pw, grad = pg;
        } else {
            size_t j = k - np;
            float *arr = j == 0 ? g.x : j == 1 ? g.h0 : g.c0;
            t = (target){.name = j == 0 ? "x" : j == 1 ? "h0" : "c0", .input = arr,
                         .count = j == 0 ? g.nx : j == 1 ? g.ns : g.nc};
            memcpy(pw, arr, t.count * sizeof *pw);
            w = pw, grad = j == 0 ? dx : j == 1 ? dh0 : dc0;
        }
        double worst;
        recur_status st = check_tensor(&g, &t, w, grad, l0, eps, n_eps, &worst);
        if (st != RECUR_OK) {
            failed_call = t.is_param ? "recur_model_param_set / recur_model_forward" : "recur_model_forward";
            goto lib_fail;
        }
        int ok = worst <= tol;
        n_checked++;
        n_failed += !ok;
        if (!(worst <= worst_all)) {
            worst_all = worst;
            snprintf(worst_name, sizeof worst_name, "%s", t.name);
        }
        if (verbose)
            printf("%-24s %9zu %12.2e  %s\n", t.name, t.count, worst, ok ? (kinked ? "ok (approximate)" : "ok") : "FAILED");
    }
    int ref_failed = res->ref_checked && (!(res->ref_worst <= o->ref_tol) || res->stage_failed);
    if (verbose)
        printf("summary: %d tensors checked, %d failed; worst error %.2e (%s), tolerance %.2e%s: %s\n", n_checked,
               n_failed, worst_all, worst_name, tol, !res->ref_checked     ? ""
               : res->stage_failed ? "; a kernel fails its check against the C one"
               : ref_failed        ? "; cpu:scalar disagrees"
                                   : "; cpu:scalar agrees",
               n_failed || ref_failed ? "FAILED" : "ok");
    res->n_checked = n_checked;
    res->n_failed = n_failed;
    res->worst = worst_all;
    snprintf(res->worst_name, sizeof res->worst_name, "%s", worst_name);
    rc = n_failed || ref_failed ? 1 : 0;
    goto out;

lib_fail:
    fprintf(stderr, "recur %s: %s: %s\n", CMD, failed_call, recur_ctx_error(ctx)[0] ? recur_ctx_error(ctx) : recur_last_error());
    rc = -1;
out:
    free(g.x), free(g.y), free(g.dy), free(g.h0), free(g.hT), free(g.dhT);
    free(g.c0), free(g.cT), free(g.dcT);
    free(dx), free(dh0), free(dc0), free(lengths), free(pw), free(pg), free(g.wbuf);
    recur_model_free(g.model);
    return rc;
}
