/*
 * model.c: models, a stack of layers in one or two directions. Creation and
 * the parameters by PyTorch's names; the stack's forward and backward are in
 * stack.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static const char *const dir_names[] = {"forward", "reverse", "bidi_concat", "bidi_sum"};

const char *recur_direction_name(recur_direction dir) {
    return dir >= RECUR_DIR_FORWARD && dir <= RECUR_DIR_BIDI_SUM ? dir_names[dir] : NULL;
}

recur_status recur_direction_parse(const char *name, recur_direction *out) {
    recur_err_clear(NULL);
    RETURN_IF(!name || !out, NULL, RECUR_ERR_NULL, "recur_direction_parse: %s is NULL", name ? "out" : "name");
    static const struct {
        const char *name;
        recur_direction dir;
    } names[] = {
        {"forward", RECUR_DIR_FORWARD},          {"reverse", RECUR_DIR_REVERSE},
        {"bidi_concat", RECUR_DIR_BIDI_CONCAT},  {"bidi_sum", RECUR_DIR_BIDI_SUM},
        {"bidi", RECUR_DIR_BIDI_CONCAT},         {"bidirectional", RECUR_DIR_BIDI_CONCAT},
        {"concat", RECUR_DIR_BIDI_CONCAT},       {"sum", RECUR_DIR_BIDI_SUM},
    };
    char norm[32];
    size_t n = strlen(name);
    if (n < sizeof norm) {
        for (size_t i = 0; i <= n; i++) {
            char c = name[i];
            norm[i] = c == '-' ? '_' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(norm, names[i].name)) {
                *out = names[i].dir;
                return RECUR_OK;
            }
    }
    return recur_err(NULL, RECUR_ERR_ARG, "direction '%.40s%s': expected forward, reverse, bidi_concat or bidi_sum",
                     name, n > 40 ? "..." : "");
}

recur_status recur_model_create(recur_ctx *ctx, const recur_model_desc *desc, recur_model **out) {
    recur_err_clear(ctx);
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_model_create: ctx is NULL");
    RETURN_IF(!desc || !out, ctx, RECUR_ERR_NULL, "recur_model_create: %s is NULL", desc ? "out" : "desc");
    *out = NULL;
    RETURN_IF(desc->num_layers < 1 || desc->num_layers > RECUR_MAX_LAYERS, ctx, RECUR_ERR_ARG,
              "num_layers %d: must be 1..%d", desc->num_layers, RECUR_MAX_LAYERS);
    RETURN_IF(desc->direction < RECUR_DIR_FORWARD || desc->direction > RECUR_DIR_BIDI_SUM, ctx, RECUR_ERR_ARG,
              "direction %d: expected RECUR_DIR_FORWARD, _REVERSE, _BIDI_CONCAT or _BIDI_SUM", (int)desc->direction);
    RETURN_IF(!(desc->dropout >= 0.0f && desc->dropout < 1.0f), ctx, RECUR_ERR_ARG,
              "dropout %g: must be in [0, 1)", (double)desc->dropout);
    RETURN_IF(!(desc->zoneout >= 0.0f && desc->zoneout < 1.0f), ctx, RECUR_ERR_ARG,
              "zoneout %g: must be in [0, 1)", (double)desc->zoneout);
    recur_model *m = calloc(1, sizeof *m);
    RETURN_IF(!m, ctx, RECUR_ERR_NO_MEMORY, "recur_model_create: out of memory");
    m->ctx = ctx;
    m->L = desc->num_layers;
    m->D = desc->direction >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    m->P = desc->proj_size ? desc->proj_size : desc->hidden_size;
    m->O = desc->direction == RECUR_DIR_BIDI_CONCAT ? 2 * m->P : m->P;
    m->layers = calloc((size_t)(m->L * m->D), sizeof *m->layers);
    recur_status st = RECUR_OK;
    GOTO_IF(!m->layers, ctx, st, RECUR_ERR_NO_MEMORY, fail, "recur_model_create: out of memory");
    for (int l = 0; l < m->L; l++)
        for (int d = 0; d < m->D; d++) {
            recur_layer_desc ld = {.cell = desc->cell, .variant = desc->variant,
                                   .input_size = l == 0 ? desc->input_size : m->O, .hidden_size = desc->hidden_size,
                                   .proj_size = desc->proj_size};
            if ((st = recur_layer_create(ctx, &ld, &m->layers[l * m->D + d])) != RECUR_OK) goto fail;
            /* The model owns its layers: off the context's list. */
            recur_layer *y = m->layers[l * m->D + d];
            recur_layer_unlink(y);
            y->owned = 1;
            y->zoneout = desc->zoneout;
            y->zo_seed = desc->seed;
        }
    m->desc = *desc;
    const struct recur_cell_desc *cd = m->layers[0]->cell->desc;
    m->desc.cell = cd->name;
    m->desc.variant = cd->n_variants ? cd->variants[m->layers[0]->variant] : NULL;
    m->next = ctx->models;
    if (ctx->models) ctx->models->prev = m;
    ctx->models = m;
    *out = m;
    return RECUR_OK;
fail:
    /* Not yet on the context's list: recur_model_free only frees what was made. */
    recur_model_free(m);
    return st;
}

void recur_model_free(recur_model *m) {
    if (!m) return;
    if (m->owned) { /* a net's model: the net frees it */
        recur_log(RECUR_LOG_WARN, "recur_model_free: the model belongs to a net; free the net instead");
        return;
    }
    recur_model_destroy(m);
}

static void unlink_model(recur_model *m) {
    if (m->prev) m->prev->next = m->next;
    else if (m->ctx->models == m) m->ctx->models = m->next;
    if (m->next) m->next->prev = m->prev;
    m->prev = m->next = NULL;
}

void recur_model_adopt(recur_model *m) {
    unlink_model(m);
    m->owned = 1;
}

void recur_model_destroy(recur_model *m) {
    for (int i = 0; m->layers && i < m->L * m->D; i++)
        if (m->layers[i]) recur_layer_destroy(m->layers[i]);
    free(m->layers);
    recur_arena_free(m->ctx, &m->acts);
    recur_arena_free(m->ctx, &m->io);
    free(m->trained_len);
    unlink_model(m);
    free(m);
}

recur_status recur_model_desc_get(const recur_model *m, recur_model_desc *out) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_desc_get: model is NULL");
    recur_err_clear(m->ctx);
    RETURN_IF(!out, m->ctx, RECUR_ERR_NULL, "recur_model_desc_get: out is NULL");
    *out = m->desc;
    return RECUR_OK;
}

int recur_model_directions(const recur_model *m) { return m ? m->D : 0; }
int recur_model_output_size(const recur_model *m) { return m ? m->O : 0; }

recur_status recur_model_layer(const recur_model *m, int layer, int reverse, recur_layer **out) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_layer: model is NULL");
    recur_err_clear(m->ctx);
    RETURN_IF(!out, m->ctx, RECUR_ERR_NULL, "recur_model_layer: out is NULL");
    RETURN_IF(layer < 0 || layer >= m->L, m->ctx, RECUR_ERR_ARG, "recur_model_layer: layer %d: the model has %d",
              layer, m->L);
    RETURN_IF(reverse < 0 || reverse >= m->D, m->ctx, RECUR_ERR_ARG,
              "recur_model_layer: reverse %d: the model has %d direction%s", reverse, m->D, m->D > 1 ? "s" : "");
    *out = m->layers[layer * m->D + reverse];
    return RECUR_OK;
}

/* ---- parameters ---- */

/* Every layer has its cell's tensors (layer.h), the same list in each. */
size_t recur_model_param_count(const recur_model *m) { return m ? (size_t)m->L * m->D * m->layers[0]->n_tensors : 0; }

recur_status recur_model_param_at(const recur_model *m, size_t i, recur_param_info *info, recur_layer **layer,
                                  int *block) {
    size_t n = recur_model_param_count(m);
    RETURN_IF(i >= n, m->ctx, RECUR_ERR_ARG, "parameter index %zu: the model has %zu", i, n);
    size_t nt = (size_t)m->layers[0]->n_tensors;
    int b = (int)(i % nt), ld = (int)(i / nt), l = ld / m->D, d = ld % m->D;
    /* In a reverse-only model the one direction is still PyTorch's "forward" slot. */
    const char *suffix = d == 1 ? "_reverse" : "";
    recur_layer *y = m->layers[ld];
    const struct recur_tensor *t = &y->t[b];
    snprintf(info->name, sizeof info->name, "%s_l%d%s", t->name, l, suffix);
    info->rows = t->rows;
    info->cols = t->cols;
    info->ndim = t->ndim;
    info->count = t->count;
    if (layer) *layer = y;
    if (block) *block = b;
    return RECUR_OK;
}

recur_status recur_model_param_info_sized(const recur_model *m, size_t i, recur_param_info *out, size_t size) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_param_info: model is NULL");
    recur_err_clear(m->ctx);
    RETURN_IF(!out, m->ctx, RECUR_ERR_NULL, "recur_model_param_info: out is NULL");
    TRY(recur_info_size_ok(m->ctx, "recur_model_param_info", "recur_param_info", size, RECUR_PARAM_INFO_FIRST));
    recur_param_info info;
    TRY(recur_model_param_at(m, i, &info, NULL, NULL));
    recur_info_copy(out, size, &info, sizeof info);
    return RECUR_OK;
}

/* Find a tensor by name and check the caller's count against it. */
static recur_status find_param(const recur_model *m, const char *fn, const char *name, const void *buf, size_t count,
                               recur_layer **layer, int *block) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "%s: model is NULL", fn);
    recur_err_clear(m->ctx);
    RETURN_IF(!name || !buf, m->ctx, RECUR_ERR_NULL, "%s: %s is NULL", fn, name ? "the array" : "name");
    size_t n = recur_model_param_count(m);
    for (size_t i = 0; i < n; i++) {
        recur_param_info info;
        TRY(recur_model_param_at(m, i, &info, layer, block));
        if (strcmp(info.name, name) != 0) continue;
        RETURN_IF(count != info.count, m->ctx, count < info.count ? RECUR_ERR_BUFFER_SIZE : RECUR_ERR_SHAPE,
                  "%s: '%s' has %zu values ([%d, %d]), not %zu", fn, name, info.count, info.rows, info.cols, count);
        return RECUR_OK;
    }
    char stems[256];
    size_t used = 0;
    const recur_layer *y = m->layers[0];
    stems[0] = 0;
    for (int k = 0; k < y->n_tensors && used < sizeof stems; k++)
        used += (size_t)snprintf(stems + used, sizeof stems - used, "%s%s_l{k}", k ? ", " : "", y->t[k].name);
    return recur_err(m->ctx, RECUR_ERR_UNKNOWN_NAME, "%s: no parameter '%s'; names are %s for k < %d%s", fn, name,
                     stems, m->L, m->D > 1 ? ", and each with _reverse" : "");
}

recur_status recur_model_param_set(recur_model *m, const char *name, const float *src, size_t count) {
    recur_layer *y;
    int b;
    TRY(find_param(m, "recur_model_param_set", name, src, count, &y, &b));
    return recur_layer_block_set(y, b, RECUR_LAYOUT_TORCH, src);
}

recur_status recur_model_param_get(const recur_model *m, const char *name, float *dst, size_t count) {
    recur_layer *y;
    int b;
    TRY(find_param(m, "recur_model_param_get", name, dst, count, &y, &b));
    return recur_layer_block_get(y, b, RECUR_LAYOUT_TORCH, 0, dst);
}

recur_status recur_model_grad_get(const recur_model *m, const char *name, float *dst, size_t count) {
    recur_layer *y;
    int b;
    TRY(find_param(m, "recur_model_grad_get", name, dst, count, &y, &b));
    return recur_layer_block_get(y, b, RECUR_LAYOUT_TORCH, 1, dst);
}

recur_status recur_model_grads_zero(recur_model *m) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_grads_zero: model is NULL");
    recur_err_clear(m->ctx);
    for (int i = 0; i < m->L * m->D; i++) TRY(recur_layer_grads_zero(m->layers[i]));
    return RECUR_OK;
}
