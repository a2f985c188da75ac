/*
 * cellprobe.c: the loader's last check of a cell plugin (plugin.c): each CPU
 * kernel variant this CPU can run is called once, forward then backward, on
 * tiny arrays of exactly the sizes struct recur_cell_args promises, each
 * between guard zones, and must write nothing outside its output arrays.
 *
 * What it catches: a cell that writes more per unit than it declares (n_save
 * too small: in a model that overwrites the next row's saved values or the
 * workspace after it, which neither the engine nor ASan can see, as the
 * workspace is one allocation), a kernel that writes past a row or before
 * it, and one that writes into an array it must only read (xw, b_hh, prev,
 * param, and in backward next, save, src, dnext, dsrc). Reads out of bounds and
 * wrong values are not its business (recur gradcheck checks the math).
 *
 * The kernels run in training mode only (inference passes save as NULL),
 * for every variant of the cell, at H = 19 (a whole AVX-512 vector and a
 * tail) with n = 1 and n = 3 rows. A kernel that crashes here would crash in
 * the first model that used it; RECUR_LOG=debug names the cell first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"

#define GUARD 64          /* floats of canary before and after each array */
#define CANARY 0x7fc0dea1u /* a quiet NaN no kernel computes by chance */
#define PROBE_H 19

struct pbuf {
    const char *name; /* as in struct recur_cell_args, e.g. "next[0]" */
    float *mem;       /* GUARD + n + GUARD floats */
    float *copy;      /* the values before the call, for arrays the kernel only reads */
    size_t n;
    int read_only;
};

static float canary(void) {
    uint32_t u = CANARY;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int is_canary(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u == CANARY;
}

/* Values in [-0.9, 0.9], different per array and element (a fixed LCG). */
static void fill_values(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 16777216.0) * 1.8 - 0.9);
    }
}

static int pb_alloc(struct pbuf *b, const char *name, size_t n, int read_only, uint32_t seed) {
    b->name = name;
    b->n = n;
    b->read_only = read_only;
    b->mem = malloc((n + 2 * GUARD) * sizeof *b->mem);
    b->copy = malloc((n ? n : 1) * sizeof *b->copy);
    if (!b->mem || !b->copy) return -1;
    float c = canary();
    for (size_t i = 0; i < n + 2 * GUARD; i++) b->mem[i] = c;
    fill_values(b->mem + GUARD, n, seed);
    memcpy(b->copy, b->mem + GUARD, n * sizeof *b->copy);
    return 0;
}

static float *pb(struct pbuf *b) { return b->mem ? b->mem + GUARD : NULL; }

/* Take the current values as the ones a read-only array must keep. */
static void pb_freeze(struct pbuf *b) {
    if (b->mem) memcpy(b->copy, b->mem + GUARD, b->n * sizeof *b->copy);
    b->read_only = 1;
}

/* What the last call did wrong to b, or NULL. */
static const char *pb_check(const struct pbuf *b, char *why, size_t len) {
    if (!b->mem) return NULL;
    for (size_t i = 0; i < GUARD; i++) /* the farthest write first */
        if (!is_canary(b->mem[i])) {
            snprintf(why, len, "wrote up to %zu floats before the start of %s", GUARD - i, b->name);
            return why;
        }
    for (size_t i = b->n + 2 * GUARD; i-- > GUARD + b->n;) /* the farthest write first */
        if (!is_canary(b->mem[i])) {
            snprintf(why, len, "wrote up to %zu floats past the end of %s", i - GUARD - b->n + 1, b->name);
            return why;
        }
    if (b->read_only && memcmp(b->copy, b->mem + GUARD, b->n * sizeof *b->copy) != 0) {
        snprintf(why, len, "wrote into %s, which it may only read", b->name);
        return why;
    }
    return NULL;
}

enum {
    XW, HW, BHH, PREV0, PREV1, NEXT0, NEXT1, SAVE, SRC, DNEXT0, DNEXT1, DPREV0, DPREV1, DXW, DHW, DSRC,
    PARAM0, DPARAM0 = PARAM0 + RECUR_CELL_MAX_PARAMS, NBUF = DPARAM0 + RECUR_CELL_MAX_PARAMS
};

static const char *const buf_names[NBUF] = {
    "xw",       "hw",       "b_hh",     "prev[0]",   "prev[1]",   "next[0]",   "next[1]",   "save",
    "src",      "dnext[0]", "dnext[1]", "dprev[0]",  "dprev[1]",  "dxw",       "dhw",       "dsrc",
    "param[0]", "param[1]", "param[2]", "param[3]",  "param[4]",  "param[5]",  "param[6]",  "param[7]",
    "dparam[0]", "dparam[1]", "dparam[2]", "dparam[3]", "dparam[4]", "dparam[5]", "dparam[6]", "dparam[7]"};

/* The fields forward and backward share: a training call of n rows. */
static void args_common(const struct recur_cell_desc *d, struct recur_cell_args *a, int n, int variant, int S,
                        struct pbuf *b) {
    memset(a, 0, sizeof *a);
    a->n = n;
    a->H = PROBE_H;
    a->variant = variant;
    a->training = 1;
    a->n_gates = d->n_gates;
    a->n_save = d->n_save;
    for (int k = 0; k < d->n_params; k++) a->param_floats[k] = (int)recur_cell_param_floats(d, k, PROBE_H);
    a->b_hh = pb(&b[BHH]);
    for (int k = 0; k < S; k++) {
        a->prev[k] = pb(&b[PREV0 + k]);
        a->next[k] = pb(&b[NEXT0 + k]);
    }
    a->save = pb(&b[SAVE]);
    for (int k = 0; k < RECUR_CELL_MAX_PARAMS; k++) a->param[k] = pb(&b[PARAM0 + k]);
}

/* One variant at n rows. NULL when it kept to its arrays, else why (in why). */
static const char *probe_one(const struct recur_cell_desc *d, const struct recur_cell_cpu *v, int variant, int n,
                             char *why, size_t len) {
    const int H = PROBE_H, G = d->n_gates, S = d->n_states, NS = d->n_stages;
    const size_t nH = (size_t)n * H, nGH = nH * (size_t)G;
    const int split = (d->flags & RECUR_CELL_SPLIT_RECURRENT_GRAD) != 0;
    struct pbuf b[NBUF];
    memset(b, 0, sizeof b);
    const char *bad = NULL;
    char what[160];
    size_t sizes[NBUF] = {0};
    sizes[XW] = sizes[HW] = sizes[DXW] = nGH;
    sizes[DHW] = split ? nGH : 0;
    sizes[BHH] = d->flags & RECUR_CELL_RAW_PRODUCTS ? 0 : (size_t)G * H;
    for (int k = 0; k < d->n_params; k++) {
        sizes[PARAM0 + k] = recur_cell_param_floats(d, k, H);
        sizes[DPARAM0 + k] = (size_t)n * sizes[PARAM0 + k];
    }
    for (int k = 0; k < S; k++) sizes[PREV0 + k] = sizes[NEXT0 + k] = sizes[DNEXT0 + k] = sizes[DPREV0 + k] = nH;
    sizes[SAVE] = nH * (size_t)d->n_save;
    sizes[SRC] = sizes[DSRC] = NS > 1 ? nH : 0;
    int ro_fwd[NBUF] = {[XW] = 1, [BHH] = 1, [PREV0] = 1, [PREV1] = 1};
    for (int k = 0; k < RECUR_CELL_MAX_PARAMS; k++) ro_fwd[PARAM0 + k] = ro_fwd[DPARAM0 + k] = 1;
    for (int i = 0; i < NBUF; i++) {
        if (!sizes[i]) continue;
        if (pb_alloc(&b[i], buf_names[i], sizes[i], ro_fwd[i], (uint32_t)i + 1) != 0) {
            snprintf(why, len, "out of memory probing its kernels");
            bad = why;
            goto out;
        }
    }

    struct recur_cell_args a;
    args_common(d, &a, n, variant, S, b);
    a.xw = pb(&b[XW]);
    a.hw = pb(&b[HW]);
    for (int s = 0; s < NS && !bad; s++) {
        a.src = s + 1 < NS ? pb(&b[SRC]) : NULL;
        v->forward[s](&a);
        for (int i = 0; i < NBUF && !bad; i++)
            if ((bad = pb_check(&b[i], what, sizeof what)))
                snprintf(why, len, "forward kernel of stage %d %s", s, what);
    }
    if (bad) goto out;

    /* Backward: what forward left is read only now. */
    for (int i = PREV0; i <= SRC; i++) pb_freeze(&b[i]);
    for (int k = 0; k < S; k++) pb_freeze(&b[DNEXT0 + k]);
    pb_freeze(&b[DSRC]);
    pb_freeze(&b[BHH]);
    args_common(d, &a, n, variant, S, b);
    for (int k = 0; k < S; k++) {
        a.dnext[k] = pb(&b[DNEXT0 + k]);
        a.dprev[k] = pb(&b[DPREV0 + k]);
    }
    a.dxw = pb(&b[DXW]);
    a.dhw = split ? pb(&b[DHW]) : a.dxw;
    for (int k = 0; k < d->n_params; k++) {
        b[DPARAM0 + k].read_only = 0;
        a.dparam[k] = pb(&b[DPARAM0 + k]);
    }
    for (int s = NS - 1; s >= 0 && !bad; s--) {
        a.src = s + 1 < NS ? pb(&b[SRC]) : NULL;
        a.dsrc = s + 1 < NS && d->stages[s + 1].gate_end > d->stages[s + 1].gate_begin ? pb(&b[DSRC]) : NULL;
        v->backward[s](&a);
        for (int i = 0; i < NBUF && !bad; i++)
            if ((bad = pb_check(&b[i], what, sizeof what)))
                snprintf(why, len, "backward kernel of stage %d %s", s, what);
    }
out:
    for (int i = 0; i < NBUF; i++) free(b[i].mem), free(b[i].copy);
    return bad;
}

/* RECUR_CELL_PROJECTABLE's claim, on the scalar kernels (the reference):
 * with a^{<t-1>} (prev[0]) changed, forward and backward write the same
 * values, and backward leaves zeros in dprev[0]. A projecting layer hands
 * the kernels zeros for prev[0] and drops dprev[0], which is only right for
 * such a cell. NULL when the claim holds (or is not made). */
static const char *probe_projectable(const struct recur_cell_desc *d, char *why, size_t len) {
    if (!(d->flags & RECUR_CELL_PROJECTABLE)) return NULL;
    const struct recur_cell_cpu *v = NULL;
    for (int i = 0; i < d->n_cpu && !v; i++)
        if (d->cpu[i].isa == RECUR_ISA_SCALAR) v = &d->cpu[i];
    if (!v) return NULL; /* the loader refuses such a cell first */
    const int H = PROBE_H, G = d->n_gates, S = d->n_states, NS = d->n_stages, n = 2;
    const int split = (d->flags & RECUR_CELL_SPLIT_RECURRENT_GRAD) != 0;
    const size_t nH = (size_t)n * H, nGH = nH * (size_t)G, nsave = nH * (size_t)d->n_save;
    size_t npar = 0;
    for (int k = 0; k < d->n_params; k++) npar += recur_cell_param_floats(d, k, H);
    /* Per run: outputs [next0, next1, save, src, dxw, dhw, dprev0, dprev1, dparams]. */
    const size_t nout = 2 * nH + nsave + nH + 2 * nGH + 2 * nH + (size_t)n * npar;
    const size_t nin = 2 * nGH + (size_t)G * H + 4 * nH + nH + npar; /* xw, hw, b_hh, prev0/1, dnext0/1, dsrc, params */
    float *in = malloc(nin * sizeof *in), *out[2] = {calloc(nout, sizeof(float)), calloc(nout, sizeof(float))};
    float *hw = malloc(nGH * sizeof *hw);
    const char *bad = NULL;
    if (!in || !out[0] || !out[1] || !hw) {
        snprintf(why, len, "out of memory probing its kernels");
        bad = why;
        goto done;
    }
    fill_values(in, nin, 7);
    int nv = d->n_variants > 0 ? d->n_variants : 1;
    for (int var = 0; var < nv && !bad; var++) {
        for (int run = 0; run < 2; run++) {
            float *i = in, *o = out[run];
            struct recur_cell_args a;
            memset(&a, 0, sizeof a);
            a.n = n, a.H = H, a.variant = var, a.training = 1, a.n_gates = G, a.n_save = d->n_save;
            const float *xw = i;
            const float *hw0 = i + nGH;
            a.b_hh = i + 2 * nGH;
            float *prev0 = i + 2 * nGH + (size_t)G * H;
            a.prev[0] = prev0;
            a.prev[1] = prev0 + nH;
            a.dnext[0] = prev0 + 2 * nH;
            a.dnext[1] = prev0 + 3 * nH;
            const float *dsrc = prev0 + 4 * nH, *par = dsrc + nH;
            fill_values(prev0, nH, run ? 99u : 3u); /* a^{<t-1>}: the only difference between the runs */
            for (int k = 0, at = 0; k < d->n_params; at += (int)recur_cell_param_floats(d, k, H), k++) {
                a.param[k] = par + at;
                a.param_floats[k] = (int)recur_cell_param_floats(d, k, H);
            }
            a.next[0] = o, a.next[1] = o + nH;
            a.save = o + 2 * nH;
            float *src = o + 2 * nH + nsave, *dxw = src + nH, *dhw = dxw + nGH, *dprev = dhw + nGH;
            float *dpar = dprev + 2 * nH;
            if (S < 2) a.prev[1] = a.next[1] = NULL, a.dnext[1] = NULL;
            a.xw = xw;
            memcpy(hw, hw0, nGH * sizeof *hw);
            a.hw = hw;
            for (int s = 0; s < NS; s++) {
                a.src = s + 1 < NS ? src : NULL;
                v->forward[s](&a);
            }
            a.xw = NULL, a.hw = NULL;
            a.dxw = dxw;
            a.dhw = split ? dhw : dxw;
            for (size_t k = 0; k < 2 * nH; k++) dprev[k] = 7.0f; /* what backward must overwrite with zeros */
            a.dprev[0] = dprev;
            a.dprev[1] = S > 1 ? dprev + nH : NULL;
            for (int k = 0, at = 0; k < d->n_params; at += n * a.param_floats[k], k++) a.dparam[k] = dpar + at;
            for (size_t k = 0; k < (size_t)n * npar; k++) dpar[k] = 0.0f;
            for (int s = NS - 1; s >= 0; s--) {
                a.src = s + 1 < NS ? src : NULL;
                a.dsrc = NULL; /* later stages have no product (the loader checked) */
                (void)dsrc;
                v->backward[s](&a);
            }
            for (size_t k = 0; k < nH && !bad; k++)
                if (dprev[k] != 0.0f) {
                    snprintf(why, len, "sets RECUR_CELL_PROJECTABLE, but its backward kernels leave %g in dprev[0] "
                             "(element %zu; they must write zeros there)", (double)dprev[k], k);
                    bad = why;
                }
        }
        if (!bad && memcmp(out[0], out[1], nout * sizeof(float)) != 0) {
            snprintf(why, len, "sets RECUR_CELL_PROJECTABLE, but its kernels read prev[0] (a^{<t-1>}): changing it "
                     "changed what they wrote%s%s%s", d->n_variants ? " (variant '" : "",
                     d->n_variants ? d->variants[var] : "", d->n_variants ? "')" : "");
            bad = why;
        }
    }
done:
    free(in), free(out[0]), free(out[1]), free(hw);
    return bad;
}

const char *recur_cell_probe(const struct recur_cell_desc *d, uint32_t cpu_isa, char *why, size_t len) {
    char what[320];
    int nv = d->n_variants > 0 ? d->n_variants : 1;
    for (int i = 0; i < d->n_cpu; i++) {
        const struct recur_cell_cpu *v = &d->cpu[i];
        if ((v->isa & cpu_isa) != v->isa) continue; /* this CPU cannot run it */
        for (int var = 0; var < nv; var++)
            for (int n = 1; n <= 3; n += 2)
                if (probe_one(d, v, var, n, what, sizeof what)) {
                    const char *isa = "?";
#define RECUR_ISA_NAME_(u, ID, name, bit, arch, implies, flags) \
    if (v->isa == (uint32_t)(bit)) isa = #name;
                    RECUR_ISA_LIST(RECUR_ISA_NAME_, )
#undef RECUR_ISA_NAME_
                    char detail[96] = "";
                    if (strstr(what, " of save"))
                        snprintf(detail, sizeof detail, " (n_save = %d: each row's save holds n_save * H = %d floats)",
                                 d->n_save, d->n_save * PROBE_H);
                    snprintf(why, len, "its %s kernels (variant %s%s%s) at n = %d rows, H = %d: the %s%s", isa,
                             d->n_variants > 0 ? "'" : "", d->n_variants > 0 ? d->variants[var] : "none",
                             d->n_variants > 0 ? "'" : "", n, PROBE_H, what, detail);
                    return why;
                }
    }
    return probe_projectable(d, why, len);
}
