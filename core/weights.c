/*
 * weights.c: weight and gradient access in the canonical and PyTorch layouts,
 * and the canonical per-gate view.
 *
 * Both layouts are the layer's tensors (layer.h): W_ih, W_hh, b_ih, b_hh,
 * each of gate blocks of H rows (W_hh only of the Grec gates with a
 * recurrent product; no biases with raw products), then the cell's own
 * parameters. They differ in the order of the gates and, for gates that
 * PyTorch's layout stores as a complement (torch_negate: 1 - σ(a) = σ(-a)),
 * in sign; a cell's own parameters are the same in both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"

static void convert_block(const recur_layer *l, int block, const float *src, float *dst, int to_torch);

/* Copy the flat vector between layouts: to_torch 1 canonical -> torch, 0 back. */
static void convert(const recur_layer *l, const float *src, float *dst, int to_torch) {
    for (int b = 0; b < l->n_tensors; b++) convert_block(l, b, src + l->t[b].off, dst + l->t[b].off, to_torch);
}

static recur_status check_flat(const recur_layer *l, const void *p, size_t count, recur_layout layout,
                               const char *fn) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "%s: layer is NULL", fn);
    recur_err_clear(l->ctx);
    RETURN_IF(!p, l->ctx, RECUR_ERR_NULL, "%s: the array is NULL", fn);
    RETURN_IF(layout != RECUR_LAYOUT_CANONICAL && layout != RECUR_LAYOUT_TORCH, l->ctx, RECUR_ERR_ARG,
              "%s: layout %d: expected RECUR_LAYOUT_CANONICAL or RECUR_LAYOUT_TORCH", fn, (int)layout);
    RETURN_IF(count != l->n_weights, l->ctx, count < l->n_weights ? RECUR_ERR_BUFFER_SIZE : RECUR_ERR_SHAPE,
              "%s: count %zu: cell '%s' with I %d, H %d has %zu weights", fn, count, l->cell->desc->name, l->I,
              l->H, l->n_weights);
    return RECUR_OK;
}

recur_status recur_layer_weights_set(recur_layer *l, recur_layout layout, const float *src, size_t count) {
    TRY(check_flat(l, src, count, layout, "recur_layer_weights_set"));
    struct recur_backend *be = &l->ctx->be;
    recur_layer_touch(l);
    if (layout == RECUR_LAYOUT_CANONICAL) return recur_be_write(be, l->w, src, count * sizeof(float));
    float *tmp = malloc(count * sizeof(float));
    RETURN_IF(!tmp, l->ctx, RECUR_ERR_NO_MEMORY, "recur_layer_weights_set: out of memory");
    convert(l, src, tmp, 0);
    recur_status st = recur_be_write(be, l->w, tmp, count * sizeof(float));
    free(tmp);
    return st;
}

static recur_status get_flat(const recur_layer *l, struct recur_mem m, recur_layout layout, float *dst,
                             size_t count, const char *fn) {
    TRY(check_flat(l, dst, count, layout, fn));
    struct recur_backend *be = &l->ctx->be;
    if (layout == RECUR_LAYOUT_CANONICAL) return recur_be_read(be, dst, m, count * sizeof(float));
    float *tmp = malloc(count * sizeof(float));
    RETURN_IF(!tmp, l->ctx, RECUR_ERR_NO_MEMORY, "%s: out of memory", fn);
    recur_status st = recur_be_read(be, tmp, m, count * sizeof(float));
    if (st == RECUR_OK) convert(l, tmp, dst, 1);
    free(tmp);
    return st;
}

recur_status recur_layer_weights_get(const recur_layer *l, recur_layout layout, float *dst, size_t count) {
    return get_flat(l, l ? l->w : (struct recur_mem){0}, layout, dst, count, "recur_layer_weights_get");
}

recur_status recur_layer_grads_get(const recur_layer *l, recur_layout layout, float *dst, size_t count) {
    return get_flat(l, l ? l->dw : (struct recur_mem){0}, layout, dst, count, "recur_layer_grads_get");
}

recur_status recur_layer_grads_zero(recur_layer *l) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_grads_zero: layer is NULL");
    recur_err_clear(l->ctx);
    return recur_be_fill(&l->ctx->be, l->dw, 0.0f, l->n_weights);
}

/* Offset (floats) and size of one gate's block of one parameter. */
static recur_status gate_block(const recur_layer *l, recur_param param, const char *gate, size_t count,
                               size_t *off, const char *fn) {
    RETURN_IF(!gate, l->ctx, RECUR_ERR_NULL, "%s: gate is NULL", fn);
    const struct recur_cell_desc *d = l->cell->desc;
    int g = -1;
    for (int i = 0; i < d->n_gates; i++)
        if (strcmp(d->gates[i].name, gate) == 0) g = i;
    if (g < 0) {
        char names[128];
        size_t used = 0;
        names[0] = 0;
        for (int i = 0; i < d->n_gates && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", d->gates[i].name);
        return recur_err(l->ctx, RECUR_ERR_UNKNOWN_NAME, "%s: cell '%s' has no gate '%s'; gates: %s", fn, d->name,
                         gate, names);
    }
    static const int kinds[] = {RECUR_T_W_IH, RECUR_T_W_HH, RECUR_T_B_IH, RECUR_T_B_HH};
    RETURN_IF((int)param < 0 || (int)param > 3, l->ctx, RECUR_ERR_ARG,
              "%s: param %d: expected RECUR_PARAM_W_IH, _W_HH, _B_IH or _B_HH", fn, (int)param);
    int t = -1;
    for (int k = 0; k < l->n_tensors; k++)
        if (l->t[k].kind == kinds[param]) t = k;
    RETURN_IF(t < 0, l->ctx, RECUR_ERR_UNKNOWN_NAME, "%s: cell '%s' has no %s", fn, d->name,
              param == RECUR_PARAM_W_HH ? "recurrent weights (W_hh)" : "b_ih or b_hh (its biases are its own parameters)");
    RETURN_IF(g >= l->t[t].gates, l->ctx, RECUR_ERR_UNKNOWN_NAME, "%s: gate '%s' of cell '%s' has no recurrent product",
              fn, gate, d->name);
    size_t size = (size_t)l->H * (size_t)l->t[t].cols;
    *off = l->t[t].off + (size_t)g * size;
    RETURN_IF(count != size, l->ctx, count < size ? RECUR_ERR_BUFFER_SIZE : RECUR_ERR_SHAPE,
              "%s: count %zu: gate '%s' of this parameter has %zu values", fn, count, gate, size);
    return RECUR_OK;
}

recur_status recur_layer_gate_set(recur_layer *l, recur_param param, const char *gate, const float *src,
                                  size_t count) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_gate_set: layer is NULL");
    recur_err_clear(l->ctx);
    RETURN_IF(!src, l->ctx, RECUR_ERR_NULL, "recur_layer_gate_set: src is NULL");
    size_t off;
    TRY(gate_block(l, param, gate, count, &off, "recur_layer_gate_set"));
    recur_layer_touch(l);
    return recur_be_write(&l->ctx->be, recur_mem_at(l->w, off), src, count * sizeof(float));
}

recur_status recur_layer_gate_get(const recur_layer *l, recur_param param, const char *gate, float *dst,
                                  size_t count) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_gate_get: layer is NULL");
    recur_err_clear(l->ctx);
    RETURN_IF(!dst, l->ctx, RECUR_ERR_NULL, "recur_layer_gate_get: dst is NULL");
    size_t off;
    TRY(gate_block(l, param, gate, count, &off, "recur_layer_gate_get"));
    return recur_be_read(&l->ctx->be, dst, recur_mem_at(l->w, off), count * sizeof(float));
}

recur_status recur_layer_gate_name(const recur_layer *l, int gate, const char **name) {
    RETURN_IF(!l, NULL, RECUR_ERR_NULL, "recur_layer_gate_name: layer is NULL");
    recur_err_clear(l->ctx);
    RETURN_IF(!name, l->ctx, RECUR_ERR_NULL, "recur_layer_gate_name: name is NULL");
    RETURN_IF(gate < 0 || gate >= l->G, l->ctx, RECUR_ERR_ARG, "recur_layer_gate_name: gate %d: cell '%s' has %d",
              gate, l->cell->desc->name, l->G);
    *name = l->cell->desc->gates[gate].name;
    return RECUR_OK;
}

/* ---- one block at a time, for the model's per-tensor access ---- */

size_t recur_layer_block_count(const recur_layer *l, int block) { return l->t[block].count; }

/* The place of canonical gate g in PyTorch's order among a tensor's gates:
 * its torch_index's rank among those of gates 0..gates-1 (the index itself
 * when the tensor has every gate). */
static int torch_place(const struct recur_cell_gate *gates, int n, int g) {
    int rank = 0;
    for (int k = 0; k < n; k++) rank += gates[k].torch_index < gates[g].torch_index;
    return rank;
}

/* Reorder one tensor between layouts (to_torch 1: canonical -> torch). */
static void convert_block(const recur_layer *l, int block, const float *src, float *dst, int to_torch) {
    const struct recur_tensor *t = &l->t[block];
    if (!t->gates) { /* a cell's own parameter: the same in both */
        memcpy(dst, src, t->count * sizeof(float));
        return;
    }
    const struct recur_cell_gate *gates = l->cell->desc->gates;
    size_t size = (size_t)l->H * (size_t)t->cols;
    for (int g = 0; g < t->gates; g++) {
        size_t c = (size_t)g * size, p = (size_t)torch_place(gates, t->gates, g) * size;
        const float *from = src + (to_torch ? c : p);
        float *to = dst + (to_torch ? p : c);
        if (gates[g].torch_negate)
            for (size_t i = 0; i < size; i++) to[i] = -from[i];
        else
            memcpy(to, from, size * sizeof(float));
    }
}

recur_status recur_layer_block_set(recur_layer *l, int block, recur_layout layout, const float *src) {
    size_t n = recur_layer_block_count(l, block);
    struct recur_mem at = recur_mem_at(l->w, l->t[block].off);
    recur_layer_touch(l);
    if (layout == RECUR_LAYOUT_CANONICAL) return recur_be_write(&l->ctx->be, at, src, n * sizeof(float));
    float *tmp = malloc(n * sizeof(float));
    RETURN_IF(!tmp, l->ctx, RECUR_ERR_NO_MEMORY, "out of memory converting %zu weights", n);
    convert_block(l, block, src, tmp, 0);
    recur_status st = recur_be_write(&l->ctx->be, at, tmp, n * sizeof(float));
    free(tmp);
    return st;
}

recur_status recur_layer_block_get(const recur_layer *l, int block, recur_layout layout, int grads, float *dst) {
    size_t n = recur_layer_block_count(l, block);
    struct recur_mem at = recur_mem_at(grads ? l->dw : l->w, l->t[block].off);
    if (layout == RECUR_LAYOUT_CANONICAL) return recur_be_read(&l->ctx->be, dst, at, n * sizeof(float));
    float *tmp = malloc(n * sizeof(float));
    RETURN_IF(!tmp, l->ctx, RECUR_ERR_NO_MEMORY, "out of memory converting %zu weights", n);
    recur_status st = recur_be_read(&l->ctx->be, tmp, at, n * sizeof(float));
    if (st == RECUR_OK) convert_block(l, block, tmp, dst, 1);
    free(tmp);
    return st;
}
