/*
 * modelfile.c: model files, safetensors (core/safetensors.c) holding one
 * model's tensors under its PyTorch names (see recur_model_param_info) and
 * its settings in __metadata__ (the keys of core/schema.h, with "format"
 * "recur").
 *
 * recur_model_load_weights needs no metadata (a plain state_dict file loads
 * into a model of the right shape); when the file has any of the required
 * keys it must have all of them, they must agree with the tensors, and cell,
 * variant and direction must be the model's (dropout and seed are training
 * settings of the model and are not compared).
 *
 * Everything is validated before a single weight is written, and a device
 * error while writing the weights restores the previous ones. The checks run
 * in this order, each with its own status:
 *   1. size < 8: FILE_TRUNCATED; N > 100 MB or past the end: FILE_HEADER
 *   2. JSON syntax, a non-object, wrong field types, duplicate keys: FILE_JSON
 *   3. __metadata__ missing keys or malformed values: FILE_METADATA
 *   4. the tensor names against the model: FILE_MISSING, then FILE_EXTRA;
 *      shapes: FILE_SHAPE. For recur_model_load, "the model" is the one the
 *      metadata describes; when the tensors are consistent with another
 *      model the metadata disagrees with them: FILE_METADATA.
 *   5. dtype: FILE_DTYPE
 *   6. offsets reversed, not shape times the dtype's size long, overlapping, leaving gaps or
 *      running past the end: FILE_OFFSETS; tensors packed from 0 that need
 *      more bytes than the file has: FILE_TRUNCATED
 *   7. (load_weights) metadata against the tensors and the model: FILE_METADATA
 *   8. NaN or Inf, with RECUR_LOAD_CHECK_FINITE: FILE_NONFINITE
 * Steps 1-2 are recur_sf_parse, 3 recur_schema_get_model, 5, 6 and 8
 * recur_sf_check_data. Saves are recur_sf_write's: atomic.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "schema.h"

#define WHAT "model file"
#define SIZE_LIMIT (1 << 24) /* input_size and hidden_size read from a file */

/* "[24, 6]" */
static void shape_str(char *buf, size_t len, int ndim, const uint64_t *dims) {
    size_t u = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && i < 4 && u < len; i++)
        u += (size_t)snprintf(buf + u, len - u, "%s%" PRIu64, i ? ", " : "", dims[i]);
    if (ndim > 4 && u < len) u += (size_t)snprintf(buf + u, len - u, ", ...");
    if (u < len) snprintf(buf + u, len - u, "]");
}

/* ------------------------------------------------------------------------ */
/* metadata                                                                  */

struct sf_meta {
    recur_model_desc desc;
    const struct recur_cell_desc *cd; /* the cell's descriptor */
    int G;                            /* its gates */
};

/* Whether the file has recur's settings at all (any of the required keys). */
static int meta_present(const struct recur_sf_file *f) {
    static const char *const required[] = {"cell", "input_size", "hidden_size", "num_layers", "direction"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (recur_sf_meta_get(&f->meta, required[i])) return 1;
    return 0;
}

/* Step 3: the settings, complete and well formed, of a registered cell. */
static recur_status meta_parse(recur_ctx *ctx, const struct recur_sf_file *f, struct sf_meta *m) {
    char vb[72];
    memset(m, 0, sizeof *m);
    if (!f->has_meta)
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_METADATA,
                            "no __metadata__; recur needs cell, input_size, hidden_size, num_layers and direction");
    struct recur_meta_in in = {ctx, &f->meta, f->what, f->path, ""};
    TRY(recur_schema_get_model(&in, &m->desc));
    const struct recur_cell *c = recur_cell_find(m->desc.cell);
    if (!c) {
        char names[512];
        recur_cell_names(names, sizeof names);
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_METADATA, "__metadata__ cell '%s' is not a registered cell (%s)",
                            recur_sf_clean(m->desc.cell, vb), names);
    }
    const struct recur_cell_desc *cd = c->desc;
    m->desc.cell = cd->name;
    m->cd = cd;
    m->G = cd->n_gates;
    const char *variant = m->desc.variant;
    m->desc.variant = NULL;
    if (variant) {
        for (int i = 0; i < cd->n_variants; i++)
            if (!strcmp(cd->variants[i], variant)) m->desc.variant = cd->variants[i];
        if (!m->desc.variant)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_METADATA, "__metadata__ variant '%s' is not one of cell %s's%s",
                                recur_sf_clean(variant, vb), cd->name, cd->n_variants ? "" : " (it has none)");
    }
    return RECUR_OK;
}

/* ------------------------------------------------------------------------ */
/* the tensors a model needs                                                 */

struct want {
    char name[RECUR_SF_NAME_MAX];
    int ndim;
    uint64_t dims[4];
    uint64_t count;
};

/* The model's own list (recur_model_load_weights). */
static recur_status wants_of_model(const recur_model *m, struct want **out, size_t *n) {
    *n = recur_model_param_count(m);
    struct want *w = calloc(*n ? *n : 1, sizeof *w);
    RETURN_IF(!w, m->ctx, RECUR_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        recur_param_info info;
        recur_status st = recur_model_param_at(m, i, &info, NULL, NULL);
        if (st != RECUR_OK) {
            free(w);
            return st;
        }
        snprintf(w[i].name, sizeof w[i].name, "%s", info.name);
        w[i].ndim = info.ndim;
        w[i].dims[0] = (uint64_t)info.rows;
        w[i].dims[1] = (uint64_t)info.cols;
        w[i].count = info.count;
    }
    *out = w;
    return RECUR_OK;
}

/* The list a model of these settings has, named and shaped as model.c does
 * (recur_model_param_at); w holds L*D*RECUR_MAX_TENSORS. */
static size_t wants_of_desc(const recur_model_desc *d, const struct recur_cell_desc *cd, struct want *w) {
    int D = d->direction >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    size_t H = (size_t)d->hidden_size, P = d->proj_size ? (size_t)d->proj_size : H;
    size_t O = d->direction == RECUR_DIR_BIDI_CONCAT ? 2 * P : P;
    size_t k = 0;
    for (int l = 0; l < d->num_layers; l++)
        for (int r = 0; r < D; r++) {
            struct recur_tensor t[RECUR_MAX_TENSORS];
            int nt = recur_cell_tensors(cd, l == 0 ? (size_t)d->input_size : O, H, (size_t)d->proj_size, t);
            for (int b = 0; b < nt; b++, k++) {
                snprintf(w[k].name, sizeof w[k].name, "%s_l%d%s", t[b].name, l, r ? "_reverse" : "");
                w[k].ndim = t[b].ndim;
                w[k].dims[0] = (uint64_t)t[b].rows;
                w[k].dims[1] = (uint64_t)t[b].cols;
                w[k].count = (uint64_t)t[b].count;
            }
        }
    return k;
}

static int shape_is(const struct recur_sf_entry *t, const struct want *w) {
    if (t->ndim != w->ndim) return 0;
    for (int k = 0; k < w->ndim && k < 4; k++)
        if (t->dims[k] != w->dims[k]) return 0;
    return 1;
}

/* Step 4: names (MISSING, then EXTRA) and shapes (SHAPE). With ctx NULL and
 * quiet set, only says whether they match (0 or a status). */
static recur_status match(recur_ctx *ctx, struct recur_sf_file *f, const struct want *w, size_t nw, int quiet) {
    char nb[72], s1[96], s2[96];
    for (size_t i = 0; i < f->n; i++) f->t[i].used = 0;
    for (size_t i = 0; i < nw; i++) {
        struct recur_sf_entry *t = recur_sf_find(f, w[i].name);
        if (!t) {
            if (quiet) return RECUR_ERR_FILE_MISSING;
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_MISSING, "no tensor '%s' (the model has %zu: %s ... %s)",
                        w[i].name, nw, w[0].name, w[nw - 1].name);
        }
        t->used = 1;
    }
    for (size_t i = 0; i < f->n; i++)
        if (!f->t[i].used) {
            if (quiet) return RECUR_ERR_FILE_EXTRA;
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_EXTRA, "tensor '%s' is not one of the model's %zu (%s ... %s)",
                        recur_sf_clean(f->t[i].name, nb), nw, w[0].name, w[nw - 1].name);
        }
    for (size_t i = 0; i < nw; i++) {
        const struct recur_sf_entry *t = recur_sf_find(f, w[i].name);
        if (shape_is(t, &w[i])) continue;
        if (quiet) return RECUR_ERR_FILE_SHAPE;
        shape_str(s1, sizeof s1, t->ndim, t->dims);
        shape_str(s2, sizeof s2, w[i].ndim, w[i].dims);
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_SHAPE, "tensor '%s' has shape %s, the model's is %s", w[i].name, s1,
                    s2);
    }
    return RECUR_OK;
}

/* The settings the tensors themselves describe, where they are consistent
 * with some model: sizes from weight_ih_l0 (and the projection from
 * weight_hr_l0, when there is one), layers and
 * directions from the names, concat or sum from weight_ih_l1. What the
 * tensors cannot tell (forward or reverse, which cell of G gates) is taken
 * from the metadata. Returns 0 when they describe no model. */
static int infer_as(struct recur_sf_file *f, const struct sf_meta *m, const struct recur_cell_desc *cd,
                    struct sf_meta *out);

static int infer(struct recur_sf_file *f, const struct sf_meta *m, struct sf_meta *out) {
    if (infer_as(f, m, m->cd, out)) return 1;
    /* some other registered cell, of the gates weight_ih_l0 has */
    for (size_t i = 0; i < recur_cells_loaded(); i++) {
        const struct recur_cell_desc *cd = recur_cell_at(i)->desc;
        if (cd != m->cd && infer_as(f, m, cd, out)) return 1;
    }
    return 0;
}

/* infer() for cell cd. */
static int infer_as(struct recur_sf_file *f, const struct sf_meta *m, const struct recur_cell_desc *cd,
                    struct sf_meta *out) {
    const struct recur_sf_entry *ih = recur_sf_find(f, "weight_ih_l0"), *hr = recur_sf_find(f, "weight_hr_l0");
    if (!ih || ih->ndim != 2 || (hr && (hr->ndim != 2 || !(cd->flags & RECUR_CELL_PROJECTABLE)))) return 0;
    uint64_t R = ih->dims[0], I = ih->dims[1], G = (uint64_t)cd->n_gates, H = R / G, P = hr ? hr->dims[0] : H;
    if (R % G || H < 1 || H > SIZE_LIMIT || I < 1 || I > SIZE_LIMIT || P < 1 || P > H || (hr && P == H)) return 0;
    *out = *m;
    out->G = cd->n_gates;
    out->cd = cd;
    if (cd != m->cd) {
        out->desc.cell = cd->name;
        out->desc.variant = NULL;
    }
    struct recur_tensor stems[RECUR_MAX_TENSORS];
    int ns = recur_cell_tensors(out->cd, 1, 2, hr ? 1 : 0, stems);
    int L = 0, D = 1;
    for (size_t i = 0; i < f->n; i++) {
        const char *s = f->t[i].name;
        int b = 0;
        /* the longest stem that starts the name, then "_l" */
        size_t best = 0;
        for (int k = 0; k < ns; k++) {
            size_t n = strlen(stems[k].name);
            if (n > best && !strncmp(s, stems[k].name, n) && !strncmp(s + n, "_l", 2)) best = n, b = 1;
        }
        if (!b) return 0;
        s += best;
        char *e;
        long l = strtol(s + 2, &e, 10);
        if (e == s + 2 || s[2] < '0' || s[2] > '9' || l < 0 || l >= RECUR_MAX_LAYERS) return 0;
        if (!strcmp(e, "_reverse")) D = 2;
        else if (*e) return 0;
        if (l + 1 > L) L = (int)l + 1;
    }
    out->desc.input_size = (int)I;
    out->desc.hidden_size = (int)H;
    out->desc.proj_size = hr ? (int)P : 0;
    out->desc.num_layers = L;
    recur_direction md = m->desc.direction;
    if (D == 1) {
        out->desc.direction = md == RECUR_DIR_REVERSE ? RECUR_DIR_REVERSE : RECUR_DIR_FORWARD;
    } else if (L == 1) {
        out->desc.direction = md == RECUR_DIR_BIDI_SUM ? RECUR_DIR_BIDI_SUM : RECUR_DIR_BIDI_CONCAT;
    } else {
        const struct recur_sf_entry *ih1 = recur_sf_find(f, "weight_ih_l1");
        if (!ih1 || ih1->ndim != 2) return 0;
        if (ih1->dims[1] == 2 * P) out->desc.direction = RECUR_DIR_BIDI_CONCAT;
        else if (ih1->dims[1] == P) out->desc.direction = RECUR_DIR_BIDI_SUM;
        else return 0;
    }
    struct want *w = calloc((size_t)L * D * RECUR_MAX_TENSORS, sizeof *w);
    if (!w) return 0;
    size_t nw = wants_of_desc(&out->desc, out->cd, w);
    int ok = match(NULL, f, w, nw, 1) == RECUR_OK;
    free(w);
    return ok;
}

/* The metadata disagrees with tensors that describe model `t`: say where. */
static recur_status meta_disagrees(recur_ctx *ctx, const struct recur_sf_file *f, const struct sf_meta *m,
                                   const struct sf_meta *t) {
    char buf[600];
    size_t u = 0;
    buf[0] = 0;
#define DIFF(...) (u += u < sizeof buf ? (size_t)snprintf(buf + u, sizeof buf - u, __VA_ARGS__) : 0)
    if (m->G != t->G) DIFF("%scell %s has %d gates, the tensors %d", u ? "; " : "", m->desc.cell, m->G, t->G);
    if (m->desc.input_size != t->desc.input_size)
        DIFF("%sinput_size is %d, the tensors' %d", u ? "; " : "", m->desc.input_size, t->desc.input_size);
    if (m->desc.hidden_size != t->desc.hidden_size)
        DIFF("%shidden_size is %d, the tensors' %d", u ? "; " : "", m->desc.hidden_size, t->desc.hidden_size);
    if (m->desc.proj_size != t->desc.proj_size)
        DIFF("%sproj_size is %d, the tensors' %d", u ? "; " : "", m->desc.proj_size, t->desc.proj_size);
    if (m->desc.num_layers != t->desc.num_layers)
        DIFF("%snum_layers is %d, the tensors have %d", u ? "; " : "", m->desc.num_layers, t->desc.num_layers);
    if (m->desc.direction != t->desc.direction)
        DIFF("%sdirection is %s, the tensors are %s", u ? "; " : "", recur_direction_name(m->desc.direction),
             recur_direction_name(t->desc.direction));
#undef DIFF
    return recur_sf_err(ctx, f, RECUR_ERR_FILE_METADATA, "__metadata__ disagrees with the tensors: %s", buf);
}

/* Step 4 for recur_model_load: the tensors against the metadata's model. */
static recur_status match_meta(recur_ctx *ctx, struct recur_sf_file *f, const struct sf_meta *m, int quiet_ok) {
    int D = m->desc.direction >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    struct want *w = calloc((size_t)m->desc.num_layers * D * RECUR_MAX_TENSORS, sizeof *w);
    if (!w) return recur_sf_err(ctx, f, RECUR_ERR_NO_MEMORY, "out of memory");
    size_t nw = wants_of_desc(&m->desc, m->cd, w);
    recur_status st = match(NULL, f, w, nw, 1);
    if (st != RECUR_OK) {
        struct sf_meta t;
        if (infer(f, m, &t)) st = meta_disagrees(ctx, f, m, &t);
        else if (quiet_ok) st = recur_sf_err(ctx, f, RECUR_ERR_FILE_METADATA, "__metadata__ disagrees with the tensors");
        else st = match(ctx, f, w, nw, 0);
    }
    free(w);
    return st;
}

/* ------------------------------------------------------------------------ */
/* loading                                                                   */

static uint64_t max_count(const struct want *w, size_t nw) {
    uint64_t m = 1;
    for (size_t i = 0; i < nw; i++)
        if (w[i].count > m) m = w[i].count;
    return m;
}

recur_status recur_model_load_memory(recur_ctx *ctx, const char *name, const void *buf, size_t len, uint32_t flags,
                                     recur_model **out) {
    recur_err_clear(ctx);
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_model_load: ctx is NULL");
    RETURN_IF(!out || !name || (!buf && len), ctx, RECUR_ERR_NULL, "recur_model_load: %s is NULL",
              !out ? "out" : !name ? "path" : "buf");
    *out = NULL;
    RETURN_IF(flags & ~(uint32_t)RECUR_LOAD_CHECK_FINITE, ctx, RECUR_ERR_ARG,
              "recur_model_load: unknown flags 0x%x (known: RECUR_LOAD_CHECK_FINITE)", (unsigned)flags);
    struct recur_sf_file f;
    struct sf_meta m;
    TRY(recur_sf_parse(ctx, WHAT, name, buf, len, &f));
    struct want *w = NULL;
    float *tmp = NULL;
    recur_model *model = NULL;
    recur_status st;
    if ((st = meta_parse(ctx, &f, &m)) != RECUR_OK) goto done;
    if ((st = match_meta(ctx, &f, &m, 0)) != RECUR_OK) goto done;
    int D = m.desc.direction >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    w = calloc((size_t)m.desc.num_layers * D * RECUR_MAX_TENSORS, sizeof *w);
    GOTO_IF(!w, ctx, st, RECUR_ERR_NO_MEMORY, done, WHAT " '%s': out of memory", name);
    size_t nw = wants_of_desc(&m.desc, m.cd, w);
    if ((st = recur_sf_check_data(ctx, &f, flags)) != RECUR_OK) goto done;
    tmp = malloc((size_t)max_count(w, nw) * sizeof *tmp);
    GOTO_IF(!tmp, ctx, st, RECUR_ERR_NO_MEMORY, done, WHAT " '%s': out of memory", name);
    if ((st = recur_model_create(ctx, &m.desc, &model)) != RECUR_OK) goto done;
    for (size_t i = 0; i < nw; i++) {
        recur_sf_decode(&f, recur_sf_find(&f, w[i].name), tmp);
        if ((st = recur_model_param_set(model, w[i].name, tmp, (size_t)w[i].count)) != RECUR_OK) {
            /* the message names the tensor; add the file */
            char msg[RECUR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", ctx->msg);
            st = recur_sf_err(ctx, &f, st, "%s", msg);
            goto done;
        }
    }
    *out = model;
    model = NULL;
done:
    recur_model_free(model);
    free(tmp);
    free(w);
    recur_sf_close(&f);
    return st;
}

recur_status recur_model_load(recur_ctx *ctx, const char *path, uint32_t flags, recur_model **out) {
    recur_err_clear(ctx);
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_model_load: ctx is NULL");
    RETURN_IF(!path || !out, ctx, RECUR_ERR_NULL, "recur_model_load: %s is NULL", !path ? "path" : "out");
    *out = NULL;
    RETURN_IF(flags & ~(uint32_t)RECUR_LOAD_CHECK_FINITE, ctx, RECUR_ERR_ARG,
              "recur_model_load: unknown flags 0x%x (known: RECUR_LOAD_CHECK_FINITE)", (unsigned)flags);
    uint8_t *buf;
    size_t len;
    TRY(recur_sf_read_all(ctx, WHAT, path, &buf, &len));
    recur_status st = recur_model_load_memory(ctx, path, buf, len, flags, out);
    free(buf);
    return st;
}

recur_status recur_model_load_weights_memory(recur_model *model, const char *name, const void *buf, size_t len,
                                             uint32_t flags) {
    RETURN_IF(!model, NULL, RECUR_ERR_NULL, "recur_model_load_weights: model is NULL");
    recur_ctx *ctx = model->ctx;
    recur_err_clear(ctx);
    RETURN_IF(!name || (!buf && len), ctx, RECUR_ERR_NULL, "recur_model_load_weights: %s is NULL",
              !name ? "path" : "buf");
    RETURN_IF(flags & ~(uint32_t)RECUR_LOAD_CHECK_FINITE, ctx, RECUR_ERR_ARG,
              "recur_model_load_weights: unknown flags 0x%x (known: RECUR_LOAD_CHECK_FINITE)", (unsigned)flags);
    struct recur_sf_file f;
    TRY(recur_sf_parse(ctx, WHAT, name, buf, len, &f));
    struct want *w = NULL;
    float *tmp = NULL, *old = NULL;
    size_t nw = 0;
    struct sf_meta m;
    int have_meta = meta_present(&f);
    recur_status st;
    if (have_meta && (st = meta_parse(ctx, &f, &m)) != RECUR_OK) goto done;
    if ((st = wants_of_model(model, &w, &nw)) != RECUR_OK) goto done;
    if ((st = match(ctx, &f, w, nw, 0)) != RECUR_OK) goto done;
    if ((st = recur_sf_check_data(ctx, &f, flags & ~(uint32_t)RECUR_LOAD_CHECK_FINITE)) != RECUR_OK) goto done;
    if (have_meta) {
        /* step 7: the metadata describes these tensors, and this model */
        if ((st = match_meta(ctx, &f, &m, 1)) != RECUR_OK) goto done;
        const recur_model_desc *md = &model->desc;
        const char *mv = md->variant ? md->variant : "", *fv = m.desc.variant ? m.desc.variant : "";
        if (m.desc.variant == NULL) {
            const struct recur_cell *c = recur_cell_find(m.desc.cell);
            if (c && c->desc->n_variants) fv = c->desc->variants[0];
        }
        GOTO_IF(strcmp(m.desc.cell, md->cell), ctx, st, RECUR_ERR_FILE_METADATA, done,
                WHAT " '%s': the file is for cell %s, the model is %s", name, m.desc.cell, md->cell);
        GOTO_IF(strcmp(fv, mv), ctx, st, RECUR_ERR_FILE_METADATA, done,
                WHAT " '%s': the file is for variant '%s' of %s, the model is '%s'", name, fv, md->cell, mv);
        GOTO_IF(m.desc.direction != md->direction, ctx, st, RECUR_ERR_FILE_METADATA, done,
                WHAT " '%s': the file's direction is %s, the model's %s", name, recur_direction_name(m.desc.direction),
                recur_direction_name(md->direction));
    }
    if ((st = recur_sf_check_data(ctx, &f, flags)) != RECUR_OK) goto done;

    /* Everything is valid: write the weights, keeping the old ones to put
     * back if the device fails half way. */
    size_t total = 0;
    for (size_t i = 0; i < nw; i++) total += (size_t)w[i].count;
    tmp = malloc((size_t)max_count(w, nw) * sizeof *tmp);
    old = malloc((total ? total : 1) * sizeof *old);
    GOTO_IF(!tmp || !old, ctx, st, RECUR_ERR_NO_MEMORY, done, WHAT " '%s': out of memory", name);
    for (size_t i = 0, at = 0; i < nw; at += (size_t)w[i].count, i++)
        if ((st = recur_model_param_get(model, w[i].name, old + at, (size_t)w[i].count)) != RECUR_OK) goto done;
    for (size_t i = 0; i < nw; i++) {
        recur_sf_decode(&f, recur_sf_find(&f, w[i].name), tmp);
        if ((st = recur_model_param_set(model, w[i].name, tmp, (size_t)w[i].count)) != RECUR_OK) {
            char msg[RECUR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", ctx->msg);
            for (size_t j = 0, at2 = 0; j <= i; at2 += (size_t)w[j].count, j++)
                recur_model_param_set(model, w[j].name, old + at2, (size_t)w[j].count);
            st = recur_sf_err(ctx, &f, st, "%s (the previous weights were put back)", msg);
            goto done;
        }
    }
done:
    free(old);
    free(tmp);
    free(w);
    recur_sf_close(&f);
    return st;
}

recur_status recur_model_load_weights(recur_model *model, const char *path, uint32_t flags) {
    RETURN_IF(!model, NULL, RECUR_ERR_NULL, "recur_model_load_weights: model is NULL");
    recur_err_clear(model->ctx);
    RETURN_IF(!path, model->ctx, RECUR_ERR_NULL, "recur_model_load_weights: path is NULL");
    RETURN_IF(flags & ~(uint32_t)RECUR_LOAD_CHECK_FINITE, model->ctx, RECUR_ERR_ARG,
              "recur_model_load_weights: unknown flags 0x%x (known: RECUR_LOAD_CHECK_FINITE)", (unsigned)flags);
    uint8_t *buf;
    size_t len;
    TRY(recur_sf_read_all(model->ctx, WHAT, path, &buf, &len));
    recur_status st = recur_model_load_weights_memory(model, path, buf, len, flags);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------------ */
/* saving                                                                    */

struct model_source {
    const recur_model *m;
    recur_param_info info;
    float *vals;
    int dtype; /* recur_dtype of every tensor */
};

static recur_status model_tensor(void *user, size_t i, int with_data, struct recur_sf_view *v) {
    struct model_source *s = user;
    TRY(recur_model_param_info(s->m, i, &s->info));
    if (with_data) TRY(recur_model_param_get(s->m, s->info.name, s->vals, s->info.count));
    *v = (struct recur_sf_view){s->info.name, s->info.ndim, {s->info.rows, s->info.cols}, s->info.count, s->vals,
                                s->dtype};
    return RECUR_OK;
}

recur_status recur_model_save(const recur_model *m, const char *path) {
    return recur_model_save_as(m, path, RECUR_DTYPE_F32);
}

recur_status recur_model_save_as(const recur_model *m, const char *path, recur_dtype dtype) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_save: model is NULL");
    recur_ctx *ctx = m->ctx;
    recur_err_clear(ctx);
    RETURN_IF(!path, ctx, RECUR_ERR_NULL, "recur_model_save: path is NULL");
    RETURN_IF(!*path, ctx, RECUR_ERR_ARG, "recur_model_save: path is empty");
    RETURN_IF(dtype != RECUR_DTYPE_F32 && dtype != RECUR_DTYPE_BF16 && dtype != RECUR_DTYPE_F16, ctx, RECUR_ERR_ARG,
              "recur_model_save_as: dtype %d: expected RECUR_DTYPE_F32, _BF16 or _F16", (int)dtype);
    size_t n = recur_model_param_count(m), maxc = 1;
    for (size_t i = 0; i < n; i++) {
        recur_param_info info;
        if (recur_model_param_info(m, i, &info) == RECUR_OK && info.count > maxc) maxc = info.count;
    }
    struct recur_sf_meta meta = {0};
    struct model_source src = {.m = m, .vals = malloc(maxc * sizeof(float)), .dtype = (int)dtype};
    recur_status st;
    if (!src.vals || recur_schema_put_model(&meta, "", "recur", &m->desc) != RECUR_OK)
        st = recur_err(ctx, RECUR_ERR_NO_MEMORY, "recur_model_save: out of memory");
    else
        st = recur_sf_write(ctx, "recur_model_save", path, &meta, n, model_tensor, &src);
    recur_sf_meta_free(&meta);
    free(src.vals);
    return st;
}
