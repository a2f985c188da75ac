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
 *
 * Guards are GUARD floats plus a row of the array, so that at n = 1 a write
 * into the row before or after (a stride slip, which in a model lands in a
 * row another thread owns) is caught however wide the row.
 *
 * The same arrays serve recur_ctx_cell_compare (recur.h), which runs each
 * kernel of a cell on a context's device, OpenCL included, and as its scalar
 * C kernel, on the same inputs, with the device's arrays between the same
 * guards: `recur gradcheck` names with it the first stage, kernel and array
 * where the copies part or a kernel writes outside its arrays.
 */
#include <math.h>
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
    float *mem;       /* guard + n + guard floats */
    float *copy;      /* the values before the call, for arrays the kernel only reads */
    size_t n;
    size_t guard;     /* GUARD + a row of the array: a write into the row before or after is caught */
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

static int pb_alloc(struct pbuf *b, const char *name, size_t n, size_t row, int read_only, uint32_t seed) {
    b->name = name;
    b->n = n;
    b->guard = GUARD + row;
    b->read_only = read_only;
    b->mem = malloc((n + 2 * b->guard) * sizeof *b->mem);
    b->copy = malloc((n ? n : 1) * sizeof *b->copy);
    if (!b->mem || !b->copy) return -1;
    float c = canary();
    for (size_t i = 0; i < n + 2 * b->guard; i++) b->mem[i] = c;
    fill_values(b->mem + b->guard, n, seed);
    memcpy(b->copy, b->mem + b->guard, n * sizeof *b->copy);
    return 0;
}

static float *pb(struct pbuf *b) { return b->mem ? b->mem + b->guard : NULL; }

/* Take the current values as the ones a read-only array must keep. */
static void pb_freeze(struct pbuf *b) {
    if (b->mem) memcpy(b->copy, b->mem + b->guard, b->n * sizeof *b->copy);
    b->read_only = 1;
}

/* What the last call did wrong to b, or NULL. */
static const char *pb_check(const struct pbuf *b, char *why, size_t len) {
    if (!b->mem) return NULL;
    const size_t g = b->guard;
    for (size_t i = 0; i < g; i++) /* the farthest write first */
        if (!is_canary(b->mem[i])) {
            snprintf(why, len, "wrote up to %zu float%s before the start of %s", g - i, g - i > 1 ? "s" : "", b->name);
            return why;
        }
    for (size_t i = b->n + 2 * g; i-- > g + b->n;) /* the farthest write first */
        if (!is_canary(b->mem[i])) {
            snprintf(why, len, "wrote up to %zu float%s past the end of %s", i - g - b->n + 1,
                     i - g - b->n + 1 > 1 ? "s" : "", b->name);
            return why;
        }
    if (b->read_only && memcmp(b->copy, b->mem + g, b->n * sizeof *b->copy) != 0) {
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

/* The floats of each array of a training call of n rows of H units (0: the
 * call has no such array), and of one row of it (the whole array for those
 * the rows share: b_hh, param[]). src is one stage's. */
static void arg_sizes(const struct recur_cell_desc *d, int n, int H, size_t *sizes, size_t *rows) {
    const size_t G = (size_t)d->n_gates, nH = (size_t)n * H;
    const int split = (d->flags & RECUR_CELL_SPLIT_RECURRENT_GRAD) != 0;
    memset(sizes, 0, NBUF * sizeof *sizes);
    memset(rows, 0, NBUF * sizeof *rows);
    sizes[XW] = sizes[HW] = sizes[DXW] = nH * G;
    sizes[DHW] = split ? nH * G : 0;
    rows[XW] = rows[HW] = rows[DXW] = rows[DHW] = G * H;
    sizes[BHH] = rows[BHH] = d->flags & RECUR_CELL_RAW_PRODUCTS ? 0 : G * H;
    for (int k = 0; k < d->n_params; k++) {
        sizes[PARAM0 + k] = rows[PARAM0 + k] = rows[DPARAM0 + k] = recur_cell_param_floats(d, k, H);
        sizes[DPARAM0 + k] = (size_t)n * sizes[PARAM0 + k];
    }
    for (int k = 0; k < d->n_states; k++) {
        sizes[PREV0 + k] = sizes[NEXT0 + k] = sizes[DNEXT0 + k] = sizes[DPREV0 + k] = nH;
        rows[PREV0 + k] = rows[NEXT0 + k] = rows[DNEXT0 + k] = rows[DPREV0 + k] = (size_t)H;
    }
    sizes[SAVE] = nH * (size_t)d->n_save;
    rows[SAVE] = (size_t)H * (size_t)d->n_save;
    sizes[SRC] = sizes[DSRC] = d->n_stages > 1 ? nH : 0;
    rows[SRC] = rows[DSRC] = (size_t)H;
}

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

/* The arrays a training call writes, which the projection check compares. */
static const int written_arrays[] = {NEXT0, NEXT1, SAVE, SRC, DXW, DHW, DPREV1, DPARAM0, DPARAM0 + 1, DPARAM0 + 2,
                                     DPARAM0 + 3, DPARAM0 + 4, DPARAM0 + 5, DPARAM0 + 6, DPARAM0 + 7};
#define N_WRITTEN (sizeof written_arrays / sizeof written_arrays[0])

/* One variant at n rows, with prev[0] drawn from prev_seed. NULL when it
 * kept to its arrays (and, for a RECUR_CELL_PROJECTABLE cell, left zeros in
 * dprev[0]), else why (in why). With `written`, a malloc'd copy of what the
 * kernels wrote (written_arrays, in order) goes there. */
static const char *probe_one(const struct recur_cell_desc *d, const struct recur_cell_cpu *v, int variant, int n,
                             uint32_t prev_seed, float **written, char *why, size_t len) {
    const int S = d->n_states, NS = d->n_stages;
    const int split = (d->flags & RECUR_CELL_SPLIT_RECURRENT_GRAD) != 0;
    struct pbuf b[NBUF];
    memset(b, 0, sizeof b);
    const char *bad = NULL;
    char what[160];
    size_t sizes[NBUF], rows[NBUF];
    arg_sizes(d, n, PROBE_H, sizes, rows);
    int ro_fwd[NBUF] = {[XW] = 1, [BHH] = 1, [PREV0] = 1, [PREV1] = 1};
    for (int k = 0; k < RECUR_CELL_MAX_PARAMS; k++) ro_fwd[PARAM0 + k] = ro_fwd[DPARAM0 + k] = 1;
    for (int i = 0; i < NBUF; i++) {
        if (!sizes[i]) continue;
        if (pb_alloc(&b[i], buf_names[i], sizes[i], rows[i], ro_fwd[i], i == PREV0 ? prev_seed : (uint32_t)i + 1) !=
            0) {
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
    /* A projecting layer drops dprev[0] (filled with values before the call): it must be zeros. */
    for (size_t k = 0; !bad && (d->flags & RECUR_CELL_PROJECTABLE) && k < b[DPREV0].n; k++)
        if (pb(&b[DPREV0])[k] != 0.0f) {
            snprintf(why, len, "cell sets RECUR_CELL_PROJECTABLE, but its backward kernels leave %g in dprev[0] "
                     "(element %zu; they must write zeros there)", (double)pb(&b[DPREV0])[k], k);
            bad = why;
        }
    if (!bad && written) {
        size_t total = 0;
        for (size_t k = 0; k < N_WRITTEN; k++) total += b[written_arrays[k]].n;
        float *w = *written = malloc((total ? total : 1) * sizeof *w);
        if (!w) {
            snprintf(why, len, "out of memory probing its kernels");
            bad = why;
        }
        for (size_t k = 0; w && k < N_WRITTEN; w += b[written_arrays[k]].n, k++)
            if (b[written_arrays[k]].n) memcpy(w, pb(&b[written_arrays[k]]), b[written_arrays[k]].n * sizeof *w);
    }
out:
    for (int i = 0; i < NBUF; i++) free(b[i].mem), free(b[i].copy);
    return bad;
}

/* RECUR_CELL_PROJECTABLE's claim, for one variant at n rows: with a^{<t-1>}
 * (prev[0]) drawn differently, the kernels write the same values (a
 * projecting layer hands them zeros there). NULL when it holds. */
static const char *probe_prev0_unread(const struct recur_cell_desc *d, const struct recur_cell_cpu *v, int variant,
                                      int n, char *why, size_t len) {
    float *w[2] = {NULL, NULL};
    const char *bad = probe_one(d, v, variant, n, PREV0 + 1, &w[0], why, len);
    if (!bad) bad = probe_one(d, v, variant, n, 99u, &w[1], why, len);
    if (!bad) {
        size_t sizes[NBUF], rows[NBUF], total = 0;
        arg_sizes(d, n, PROBE_H, sizes, rows);
        for (size_t k = 0; k < N_WRITTEN; k++) total += sizes[written_arrays[k]];
        if (memcmp(w[0], w[1], total * sizeof(float)) != 0) {
            snprintf(why, len, "cell sets RECUR_CELL_PROJECTABLE, but its kernels read prev[0] (a^{<t-1>}): "
                     "changing it changed what they wrote");
            bad = why;
        }
    }
    free(w[0]), free(w[1]);
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
                if (probe_one(d, v, var, n, PREV0 + 1, NULL, what, sizeof what) ||
                    ((d->flags & RECUR_CELL_PROJECTABLE) && probe_prev0_unread(d, v, var, n, what, sizeof what))) {
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
    return NULL;
}

/* ---- recur_ctx_cell_compare: a device's kernels against the scalar C ones ---- */

struct cmp {
    struct recur_backend *be;
    const struct recur_cell_desc *d;
    const struct recur_cell_cpu *ref; /* the scalar kernels, the reference */
    void *kern;                       /* the device's (recur_be_cell_open) */
    int n, H, variant;
    size_t sizes[NBUF], rows[NBUF];   /* src: one stage's block per stage but the last */
    size_t guard[NBUF];               /* canaries before and after each device array: GUARD + a row */
    float *val[NBUF];                 /* the reference's arrays, on the host */
    float *got[NBUF];                 /* what the device's kernel left: guard + array + guard */
    struct recur_mem dev[NBUF];       /* the whole device buffer, guards included */
    struct recur_mem data[NBUF];      /* its array, past the first guard */
};

/* Array i for the kernels of stage s: src is that stage's own block. */
static float *cmp_host(struct cmp *c, int i, int s) {
    if (!c->sizes[i]) return NULL;
    return i == SRC ? c->val[i] + (size_t)s * c->n * c->H : c->val[i];
}
static struct recur_mem cmp_dev(struct cmp *c, int i, int s) {
    struct recur_mem none = {0};
    if (!c->sizes[i]) return none;
    return i == SRC ? recur_mem_at(c->data[i], (size_t)s * c->n * c->H) : c->data[i];
}

/* Whether a kernel of stage s gets src (it feeds stage s + 1's product) and dsrc. */
static int has_src(const struct recur_cell_desc *d, int s) { return s + 1 < d->n_stages; }
static int has_dsrc(const struct recur_cell_desc *d, int s) {
    return has_src(d, s) && d->stages[s + 1].gate_end > d->stages[s + 1].gate_begin;
}

/* The arrays of one call, as the engine passes them (core/engine.c): forward
 * with xw and hw, backward without them and with the gradients. */
static void cmp_args(struct cmp *c, int s, int backward, struct recur_cell_args *a, struct recur_step *st) {
    const struct recur_cell_desc *d = c->d;
    memset(a, 0, sizeof *a);
    memset(st, 0, sizeof *st);
    a->n = st->n = c->n;
    a->H = st->H = c->H;
    a->variant = st->variant = c->variant;
    a->training = st->training = 1;
    a->n_gates = d->n_gates;
    a->n_save = d->n_save;
#define BOTH(field, i) (a->field = cmp_host(c, i, s), st->field = cmp_dev(c, i, s))
    BOTH(b_hh, BHH);
    BOTH(save, SAVE);
    if (has_src(d, s)) BOTH(src, SRC);
    for (int k = 0; k < d->n_states; k++) BOTH(prev[k], PREV0 + k), BOTH(next[k], NEXT0 + k);
    for (int k = 0; k < d->n_params; k++) {
        BOTH(param[k], PARAM0 + k);
        a->param_floats[k] = (int)c->sizes[PARAM0 + k];
    }
    if (!backward) {
        BOTH(xw, XW);
        BOTH(hw, HW);
        return;
    }
    for (int k = 0; k < d->n_states; k++) BOTH(dnext[k], DNEXT0 + k), BOTH(dprev[k], DPREV0 + k);
    BOTH(dxw, DXW);
    if (c->sizes[DHW]) BOTH(dhw, DHW);
    else a->dhw = a->dxw, st->dhw = st->dxw;
    if (has_dsrc(d, s)) BOTH(dsrc, DSRC);
    for (int k = 0; k < d->n_params; k++) BOTH(dparam[k], DPARAM0 + k);
#undef BOTH
}

/* max|got - ref| / max|ref| over the finite reference values (0 when they
 * agree, INFINITY when ref is all 0 and got is not); INFINITY at the first
 * NaN or Inf in got where ref has a number. *at: that element, or the one
 * with the largest difference. */
static double array_diff(const float *got, const float *ref, size_t n, size_t *at) {
    double d = 0, m = 0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i])) continue;
        if (!isfinite(got[i])) {
            *at = i;
            return INFINITY;
        }
        double e = fabs((double)got[i] - ref[i]);
        if (e > d) d = e, *at = i;
        if (fabs((double)ref[i]) > m) m = fabs((double)ref[i]);
    }
    return d == 0 ? 0 : m > 0 ? d / m : INFINITY;
}

/* One kernel on the device and as the reference, from the same inputs, and
 * its outputs compared: *bad set and *out filled when it wrote outside an
 * array (any array, on any device: the OpenCL kernels are probed nowhere
 * else) or an output disagrees. The reference's outputs become the next
 * kernel's inputs. */
static recur_status cmp_kernel(struct cmp *c, int s, int backward, double tol, recur_cell_diff *diff, int *bad) {
    recur_cell_diff found, *out = &found; /* into *diff only when bad */
    struct recur_cell_args a;
    struct recur_step st;
    cmp_args(c, s, backward, &a, &st);
    for (int i = 0; i < NBUF; i++)
        if (c->sizes[i]) TRY(recur_be_write(c->be, c->data[i], c->val[i], c->sizes[i] * sizeof(float)));
    TRY(recur_be_cell_run(c->be, c->kern, s, backward, &st));
    for (int i = 0; i < NBUF; i++)
        if (c->sizes[i])
            TRY(recur_be_read(c->be, c->got[i], c->dev[i], (c->sizes[i] + 2 * c->guard[i]) * sizeof(float)));
    memset(out, 0, sizeof *out);
    out->stage = s;
    out->backward = backward;
    for (int i = 0; i < NBUF; i++) {
        const size_t g = c->guard[i], n = c->sizes[i];
        int far = 0; /* floats outside: the farthest write, before (< 0) or past (> 0) the array */
        for (size_t k = 0; n && k < g && !far; k++)
            if (!is_canary(c->got[i][k])) far = -(int)(g - k);
        for (size_t k = n + 2 * g; n && k-- > g + n && !far;)
            if (!is_canary(c->got[i][k])) far = (int)(k - g - n + 1);
        if (far) {
            snprintf(out->tensor, sizeof out->tensor, "%s", buf_names[i]);
            out->outside = far;
            *bad = 1;
            *diff = found;
            return RECUR_OK;
        }
    }
    int outs[NBUF], n_outs = 0, writes[NBUF] = {[HW] = 1}; /* hw: the forward's scratch, as the probe allows */
    if (!backward) {
        for (int k = 0; k < c->d->n_states; k++) outs[n_outs++] = NEXT0 + k;
        outs[n_outs++] = SAVE;
        if (has_src(c->d, s)) outs[n_outs++] = SRC;
    } else {
        for (int k = 0; k < c->d->n_states; k++) outs[n_outs++] = DPREV0 + k;
        outs[n_outs++] = DXW;
        outs[n_outs++] = DHW;
        for (int k = 0; k < c->d->n_params; k++) outs[n_outs++] = DPARAM0 + k;
    }
    for (int j = 0; j < n_outs; j++) writes[outs[j]] = 1;
    if (!backward && has_src(c->d, s)) writes[SRC] = 1;
    for (int i = 0; i < NBUF; i++) /* an array it may only read, as it was (bit for bit) */
        if (c->sizes[i] && !writes[i] && memcmp(c->got[i] + c->guard[i], c->val[i], c->sizes[i] * sizeof(float))) {
            snprintf(out->tensor, sizeof out->tensor, "%s", buf_names[i]);
            out->read_only = 1;
            *bad = 1;
            *diff = found;
            return RECUR_OK;
        }
    (backward ? c->ref->backward : c->ref->forward)[s](&a);
    double worst = -1;
    for (int j = 0; j < n_outs; j++) {
        int i = outs[j];
        if (!c->sizes[i]) continue;
        size_t at;
        const float *got = c->got[i] + c->guard[i];
        double e = array_diff(got, c->val[i], c->sizes[i], &at);
        if (!(e > tol) || !(e > worst)) continue; /* the kernel's worst array */
        worst = e;
        *bad = 1;
        snprintf(out->tensor, sizeof out->tensor, "%s", buf_names[i]);
        size_t w = c->rows[i] ? c->rows[i] : 1;
        out->row = (int)((at / w) % (size_t)c->n);
        out->col = (int)(at % w);
        out->value = got[at];
        out->reference = c->val[i][at];
        out->diff = e;
    }
    if (*bad) *diff = found;
    return RECUR_OK;
}

recur_status recur_ctx_cell_compare_sized(recur_ctx *ctx, const char *cell, const char *variant, int H, int n,
                                          double tol, recur_cell_diff *out, size_t size) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_ctx_cell_compare: ctx is NULL");
    recur_err_clear(ctx);
    RETURN_IF(!cell || !out, ctx, RECUR_ERR_NULL, "recur_ctx_cell_compare: %s is NULL", cell ? "out" : "cell");
    TRY(recur_info_size_ok(ctx, "recur_ctx_cell_compare", "recur_cell_diff", size, sizeof(recur_cell_diff)));
    RETURN_IF(H < 1 || H > 4096 || n < 1 || n > 4096, ctx, RECUR_ERR_ARG,
              "recur_ctx_cell_compare: H %d, n %d; each must be in 1..4096", H, n);
    RETURN_IF(!(tol > 0), ctx, RECUR_ERR_ARG, "recur_ctx_cell_compare: tolerance %g; expected a number above 0", tol);
    const struct recur_cell *rc = recur_cell_find(cell);
    if (!rc) {
        char names[512];
        recur_cell_names(names, sizeof names);
        return recur_err(ctx, RECUR_ERR_UNKNOWN_CELL, "recur_ctx_cell_compare: cell '%s': not registered; cells: %s",
                         cell, names);
    }
    const struct recur_cell_desc *d = rc->desc;
    struct cmp c = {.be = &ctx->be, .d = d, .n = n, .H = H};
    if (variant) {
        c.variant = -1;
        for (int v = 0; v < d->n_variants; v++)
            if (!strcmp(d->variants[v], variant)) c.variant = v;
        RETURN_IF(c.variant < 0, ctx, RECUR_ERR_UNKNOWN_NAME, "recur_ctx_cell_compare: cell '%s' has no variant '%s'",
                  cell, variant);
    }
    for (int i = 0; i < d->n_cpu && !c.ref; i++)
        if (d->cpu[i].isa == RECUR_ISA_SCALAR) c.ref = &d->cpu[i]; /* the loader made sure of one */
    TRY(recur_be_supports(c.be, rc));
    arg_sizes(d, n, H, c.sizes, c.rows);
    c.sizes[SRC] *= (size_t)(d->n_stages - 1 > 0 ? d->n_stages - 1 : 0); /* one block per stage */
    recur_status st = recur_be_cell_open(c.be, rc, &c.kern);
    if (st != RECUR_OK) {
        c.kern = NULL;
        goto out;
    }
    for (int i = 0; i < NBUF; i++) {
        if (!c.sizes[i]) continue;
        const size_t g = c.guard[i] = GUARD + c.rows[i], all = c.sizes[i] + 2 * g;
        c.val[i] = malloc(c.sizes[i] * sizeof(float));
        c.got[i] = malloc(all * sizeof(float));
        if (!c.val[i] || !c.got[i]) {
            st = recur_err(ctx, RECUR_ERR_NO_MEMORY, "recur_ctx_cell_compare: out of host memory");
            goto out;
        }
        fill_values(c.val[i], c.sizes[i], (uint32_t)i + 1);
        for (size_t k = 0; k < all; k++) c.got[i][k] = canary();
        if ((st = recur_be_alloc(c.be, all * sizeof(float), &c.dev[i])) != RECUR_OK ||
            (st = recur_be_write(c.be, c.dev[i], c.got[i], all * sizeof(float))) != RECUR_OK)
            goto out;
        c.data[i] = recur_mem_at(c.dev[i], g);
    }
    recur_cell_diff diff = {.stage = -1};
    int bad = 0;
    for (int s = 0; s < d->n_stages && !bad && st == RECUR_OK; s++) st = cmp_kernel(&c, s, 0, tol, &diff, &bad);
    for (int s = d->n_stages - 1; s >= 0 && !bad && st == RECUR_OK; s--) st = cmp_kernel(&c, s, 1, tol, &diff, &bad);
    if (st == RECUR_OK) recur_info_copy(out, size, &diff, sizeof diff);
out:
    for (int i = 0; i < NBUF; i++) {
        free(c.val[i]), free(c.got[i]);
        if (c.dev[i].buf) recur_be_free(c.be, &c.dev[i]);
    }
    if (c.kern) recur_be_cell_close(c.be, c.kern);
    return st;
}
