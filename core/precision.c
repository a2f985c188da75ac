/*
 * precision.c: the precision of a layer's matrix products (float32, or
 * bfloat16 operands with float32 sums) and its weight operands, packed once
 * per weight version on a backend that packs (recur.h, "Precision").
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "context.h"
#include "layer.h"
#include "model.h"

static const char *const dtype_names[] = {"f32", "bf16", "f16"};

const char *recur_dtype_name(recur_dtype dtype) {
    return (unsigned)dtype < sizeof dtype_names / sizeof dtype_names[0] ? dtype_names[dtype] : NULL;
}

recur_status recur_dtype_parse(const char *name, recur_dtype *out) {
    RETURN_IF(!name || !out, NULL, RECUR_ERR_NULL, "recur_dtype_parse: %s is NULL", name ? "out" : "name");
    static const struct {
        const char *name;
        recur_dtype dtype;
    } names[] = {{"f32", RECUR_DTYPE_F32},   {"fp32", RECUR_DTYPE_F32},     {"float32", RECUR_DTYPE_F32},
                 {"bf16", RECUR_DTYPE_BF16}, {"bfloat16", RECUR_DTYPE_BF16}, {"f16", RECUR_DTYPE_F16},
                 {"fp16", RECUR_DTYPE_F16},  {"float16", RECUR_DTYPE_F16}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i].name)) {
            *out = names[i].dtype;
            return RECUR_OK;
        }
    return recur_err(NULL, RECUR_ERR_ARG, "unknown precision '%.64s'; valid: f32 (fp32), bf16, f16 (fp16)", name);
}

unsigned recur_ctx_precisions(recur_ctx *ctx, unsigned *native) {
    if (!ctx) {
        if (native) *native = 0;
        return 0;
    }
    return recur_be_precisions(&ctx->be, native);
}

recur_status recur_layer_set_precision(recur_layer *l, recur_dtype precision) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_set_precision: layer is NULL");
    RETURN_IF(!recur_dtype_name(precision), l->ctx, RECUR_ERR_ARG,
              "precision %d: expected RECUR_DTYPE_F32, _BF16 or _F16", (int)precision);
    unsigned can = recur_be_precisions(&l->ctx->be, NULL);
    if (!(can & (1u << precision))) {
        char list[32] = "";
        for (int p = 0; recur_dtype_name((recur_dtype)p); p++)
            if (can & (1u << p))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? ", " : "",
                         recur_dtype_name((recur_dtype)p));
        return recur_err(l->ctx, RECUR_ERR_UNSUPPORTED, "device %s (%s) cannot compute %s products; it computes: %s",
                         l->ctx->be.info.selector, l->ctx->be.info.name, recur_dtype_name(precision), list);
    }
    l->prec = precision; /* the packs notice (their precision differs) */
    return RECUR_OK;
}

recur_dtype recur_layer_precision(const recur_layer *l) { return l ? l->prec : RECUR_DTYPE_F32; }

/* A model's setting is every layer's: all or none, since the first layer
 * refuses for all (one cell, one device). */
static recur_status model_set(recur_model *m, const char *fn, recur_status (*set)(recur_layer *, recur_dtype),
                              recur_dtype v) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "%s: model is NULL", fn);
    for (int i = 0; i < m->L * m->D; i++) TRY(set(m->layers[i], v));
    return RECUR_OK;
}

recur_status recur_model_set_precision(recur_model *m, recur_dtype precision) {
    return model_set(m, "recur_model_set_precision", recur_layer_set_precision, precision);
}

recur_dtype recur_model_precision(const recur_model *m) { return m ? m->layers[0]->prec : RECUR_DTYPE_F32; }

recur_status recur_layer_set_saved_dtype(recur_layer *l, recur_dtype dtype) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_set_saved_dtype: layer is NULL");
    const char *name = recur_dtype_name(dtype);
    RETURN_IF(dtype != RECUR_DTYPE_F32 && dtype != RECUR_DTYPE_BF16, l->ctx, RECUR_ERR_ARG,
              "saved values' type %d%s%s: expected RECUR_DTYPE_F32 or _BF16 (f16 cannot hold every cell's saved "
              "values: |x| <= 65504)", (int)dtype, name ? " = " : "", name ? name : "");
    RETURN_IF(dtype == RECUR_DTYPE_BF16 && (l->cell->desc->flags & RECUR_CELL_SAVE_EXACT), l->ctx,
              RECUR_ERR_UNSUPPORTED, "cell '%s' needs its saved values exact (RECUR_CELL_SAVE_EXACT): no bf16 saved "
              "values", l->cell->desc->name);
    l->saved = dtype; /* the next training forward; a pending backward reads what its forward saved */
    return RECUR_OK;
}

recur_dtype recur_layer_saved_dtype(const recur_layer *l) { return l ? l->saved : RECUR_DTYPE_F32; }

recur_status recur_model_set_saved_dtype(recur_model *m, recur_dtype dtype) {
    return model_set(m, "recur_model_set_saved_dtype", recur_layer_set_saved_dtype, dtype);
}

recur_dtype recur_model_saved_dtype(const recur_model *m) { return m ? m->layers[0]->saved : RECUR_DTYPE_F32; }

/* ---- weight operands ---- */

/* Whether w is a pack of this operand, at any weight version. */
static int pack_same(const recur_layer *l, const struct recur_wpack *w, int trans, int K, int N, struct recur_mem B,
                     int ldb) {
    return w->packed && w->prec == l->prec && w->threads == l->ctx->be.threads && w->B.buf == B.buf &&
           w->B.off == B.off && w->trans == trans && w->K == K && w->N == N && w->ldb == ldb;
}

static void recur_wpack_clear(struct recur_backend *be, struct recur_wpack *w) {
    recur_be_unpack(be, w->packed);
    memset(w, 0, sizeof *w);
}

static recur_status recur_wpack(recur_layer *l, int which, int trans, int K, int N, struct recur_mem B, int ldb,
                         const void **packed) {
    struct recur_backend *be = &l->ctx->be;
    *packed = NULL;
    if (K <= 0 || N <= 0 || !recur_be_packs(be)) return RECUR_OK;
    /* A float32 input weight serves one product per weight version (all steps at once): a pack costs about a
     * pass over the weight, which one product does not win back (docs/performance.md), so it is not packed. */
    if (l->prec == RECUR_DTYPE_F32 && (which == RECUR_WP_IH_T || which == RECUR_WP_IH)) return RECUR_OK;
    struct recur_wpack *w = &l->wp[which];
    int same = pack_same(l, w, trans, K, N, B, ldb);
    if (same && w->version == l->w_version) {
        *packed = w->packed;
        return RECUR_OK;
    }
    /* a new weight version of the same operand: packed again in place where the backend can */
    recur_status st = same ? recur_be_repack(be, w->packed) : RECUR_ERR_UNSUPPORTED;
    if (st != RECUR_ERR_UNSUPPORTED) {
        if (st == RECUR_OK) w->version = l->w_version;
        else recur_wpack_clear(be, w);
        *packed = w->packed;
        return st;
    }
    recur_wpack_clear(be, w);
    TRY(recur_be_pack(be, l->prec, trans, K, N, B, ldb, &w->packed));
    *w = (struct recur_wpack){w->packed, B, trans, K, N, ldb, be->threads, l->prec, l->w_version};
    *packed = w->packed;
    return RECUR_OK;
}

recur_status recur_wgemm(recur_layer *l, int which, int trans, int K, int N, struct recur_mem B, int ldb, int M,
                         struct recur_mem A, int lda, float beta, struct recur_mem C, int ldc) {
    struct recur_backend *be = &l->ctx->be;
    const void *packed;
    if (M <= 0 || N <= 0) return RECUR_OK;
    TRY(recur_wpack(l, which, trans, K, N, B, ldb, &packed));
    if (!packed) return recur_be_gemm_prec(be, l->prec, 0, trans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    return recur_be_gemm_packed(be, M, A, lda, packed, beta, C, ldc);
}

void recur_wpack_release(recur_layer *l) {
    for (int i = 0; i < RECUR_WP_COUNT; i++) {
        recur_be_unpack(&l->ctx->be, l->wp[i].packed);
        l->wp[i].packed = NULL;
    }
}
