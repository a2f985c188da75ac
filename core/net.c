/*
 * net.c: nets (recur-train.h): an input (embedding, one-hot or vectors), a
 * model and a dense head with a loss, all on the context's device.
 *
 *   forward:  x = E[tokens] (gather; one-hot reads an identity table)
 *             y, hT = model(x, h0)                          (stack.c)
 *             z = y W^T + b  (HEAD_ALL)  or  sum_d hT_top,d W_d^T + b  (HEAD_LAST)
 *             loss rows = xent(z, targets) or mse(z, values); dz with them
 *   backward: dW, db from dz; dy = dz W or dhT_top += dz W_d;
 *             dx, dh0 = model backward; dE = index_add(dx by token)
 *
 * The host sees tokens, targets and states (one write each per call, none
 * waiting: recur_be_write_staged) and the loss (RECUR_SUM_PARTS partial sums
 * read back and added in double: by forward when asked, else later by
 * recur_net_loss or, with the gradient norm's, by recur_optim_step's read).
 * A call waits for the device only when it reads something back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "net.h"
#include "philox.h"

#define VOCAB_MAX (1 << 24)
#define ONEHOT_MAX 4096 /* the identity table is V*V floats */
#define OUT_MAX (1 << 24)

static const char *const input_names[] = {"vector", "embedding", "onehot"};
static const char *const head_names[] = {"all", "last", "none"};

recur_status recur_net_desc_check(recur_ctx *ctx, const recur_net_desc *d) {
    RETURN_IF(d->input < RECUR_INPUT_VECTOR || d->input > RECUR_INPUT_ONEHOT, ctx, RECUR_ERR_ARG,
              "net: input %d: expected RECUR_INPUT_VECTOR, _EMBEDDING or _ONEHOT", (int)d->input);
    RETURN_IF(d->head < RECUR_HEAD_ALL || d->head > RECUR_HEAD_NONE, ctx, RECUR_ERR_ARG,
              "net: head %d: expected RECUR_HEAD_ALL, _LAST or _NONE", (int)d->head);
    RETURN_IF(d->loss != RECUR_LOSS_XENT && d->loss != RECUR_LOSS_MSE, ctx, RECUR_ERR_ARG,
              "net: loss %d: expected RECUR_LOSS_XENT or RECUR_LOSS_MSE", (int)d->loss);
    if (d->input == RECUR_INPUT_VECTOR)
        RETURN_IF(d->vocab != 0, ctx, RECUR_ERR_ARG, "net: vocab %d with vector input: must be 0", d->vocab);
    else
        RETURN_IF(d->vocab < 1 || d->vocab > VOCAB_MAX, ctx, RECUR_ERR_ARG, "net: vocab %d: must be 1..%d with %s input",
                  d->vocab, VOCAB_MAX, input_names[d->input]);
    RETURN_IF(d->input == RECUR_INPUT_ONEHOT && d->vocab > ONEHOT_MAX, ctx, RECUR_ERR_ARG,
              "net: vocab %d: one-hot input takes at most %d (use RECUR_INPUT_EMBEDDING)", d->vocab, ONEHOT_MAX);
    RETURN_IF(d->input == RECUR_INPUT_ONEHOT && d->model.input_size != d->vocab, ctx, RECUR_ERR_SHAPE,
              "net: one-hot input: model.input_size %d must equal vocab %d", d->model.input_size, d->vocab);
    if (d->head == RECUR_HEAD_NONE)
        RETURN_IF(d->output_size != 0, ctx, RECUR_ERR_ARG, "net: output_size %d with no head: must be 0",
                  d->output_size);
    else
        RETURN_IF(d->output_size < 1 || d->output_size > OUT_MAX, ctx, RECUR_ERR_ARG,
                  "net: output_size %d: must be 1..%d", d->output_size, OUT_MAX);
    return RECUR_OK;
}

recur_status recur_net_create(recur_ctx *ctx, const recur_net_desc *desc, recur_net **out) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_net_create: ctx is NULL");
    recur_err_clear(ctx);
    RETURN_IF(!desc || !out, ctx, RECUR_ERR_NULL, "recur_net_create: %s is NULL", desc ? "out" : "desc");
    *out = NULL;
    TRY(recur_net_desc_check(ctx, desc));
    recur_net *n = calloc(1, sizeof *n);
    RETURN_IF(!n, ctx, RECUR_ERR_NO_MEMORY, "recur_net_create: out of memory");
    n->ctx = ctx;
    n->loss_scale = 1.0;
    recur_status st = recur_model_create(ctx, &desc->model, &n->model);
    if (st != RECUR_OK) {
        free(n);
        return st;
    }
    recur_model_adopt(n->model); /* recur_model_free of it is ignored: the net frees it */
    n->desc = *desc;
    n->desc.model = n->model->desc;
    recur_model *m = n->model;
    n->V = desc->vocab;
    n->I = desc->model.input_size;
    n->O = m->O;
    n->F = m->O; /* HEAD_LAST reads the top layer's states: concat 2H, sum H, like y */
    n->K = desc->output_size;
    n->H = desc->model.hidden_size;
    n->P = m->P;
    n->L = m->L;
    n->D = m->D;
    n->S = m->layers[0]->n_states;
    n->n_emb = desc->input == RECUR_INPUT_EMBEDDING ? (size_t)n->V * n->I : 0;
    n->n_hw = (size_t)n->K * n->F;
    n->n_hb = (size_t)n->K;
    n->n_own = n->n_emb + n->n_hw + n->n_hb;
    struct recur_backend *be = &ctx->be;
    if (n->n_own) {
        GOTO_IF((st = recur_be_alloc(be, n->n_own * sizeof(float), &n->p)) != RECUR_OK, NULL, st, st, fail, "%s",
                ctx->msg);
        GOTO_IF((st = recur_be_alloc(be, n->n_own * sizeof(float), &n->dp)) != RECUR_OK, NULL, st, st, fail, "%s",
                ctx->msg);
        if ((st = recur_be_fill(be, n->p, 0.0f, n->n_own)) != RECUR_OK ||
            (st = recur_be_fill(be, n->dp, 0.0f, n->n_own)) != RECUR_OK)
            goto fail;
    }
    if (desc->input == RECUR_INPUT_ONEHOT) {
        size_t vv = (size_t)n->V * n->V;
        float *eye = calloc(vv, sizeof *eye);
        GOTO_IF(!eye, ctx, st, RECUR_ERR_NO_MEMORY, fail, "recur_net_create: out of memory");
        for (int i = 0; i < n->V; i++) eye[(size_t)i * n->V + i] = 1.0f;
        st = recur_be_alloc(be, vv * sizeof(float), &n->eye);
        if (st == RECUR_OK) st = recur_be_write(be, n->eye, eye, vv * sizeof(float));
        free(eye);
        if (st != RECUR_OK) goto fail;
    }
    n->next = ctx->nets;
    if (ctx->nets) ctx->nets->prev = n;
    ctx->nets = n;
    *out = n;
    return RECUR_OK;
fail:
    recur_net_free(n); /* not on the list yet: frees what was made */
    return st;
}

void recur_net_free(recur_net *n) {
    if (!n) return;
    struct recur_backend *be = &n->ctx->be;
    if (n->model) recur_model_destroy(n->model);
    recur_be_free(be, &n->p);
    recur_be_free(be, &n->dp);
    recur_be_free(be, &n->eye);
    recur_arena_free(n->ctx, &n->buf);
    free(n->host);
    free(n->trained_len);
    if (n->prev) n->prev->next = n->next;
    else if (n->ctx->nets == n) n->ctx->nets = n->next;
    if (n->next) n->next->prev = n->prev;
    free(n);
}

recur_status recur_net_desc_get(const recur_net *n, recur_net_desc *out) {
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "recur_net_desc_get: net is NULL");
    recur_err_clear(n->ctx);
    RETURN_IF(!out, n->ctx, RECUR_ERR_NULL, "recur_net_desc_get: out is NULL");
    *out = n->desc;
    return RECUR_OK;
}

recur_model *recur_net_model(const recur_net *n) { return n ? n->model : NULL; }

/* ------------------------------------------------------------------------ */
/* parameters                                                                */

/* The net's own tensors: 0 embedding, 1 head.weight, 2 head.bias (those it has). */
static int own_count(const recur_net *n) { return (n->n_emb ? 1 : 0) + (n->n_hw ? 2 : 0); }

static void own_info(const recur_net *n, int i, recur_param_info *info, size_t *offset) {
    int kind = n->n_emb ? i : i + 1;
    memset(info, 0, sizeof *info);
    if (kind == 0) {
        snprintf(info->name, sizeof info->name, "embedding.weight");
        info->rows = n->V, info->cols = n->I, info->ndim = 2, *offset = 0;
    } else if (kind == 1) {
        snprintf(info->name, sizeof info->name, "head.weight");
        info->rows = n->K, info->cols = n->F, info->ndim = 2, *offset = n->n_emb;
    } else {
        snprintf(info->name, sizeof info->name, "head.bias");
        info->rows = n->K, info->cols = 1, info->ndim = 1, *offset = n->n_emb + n->n_hw;
    }
    info->count = (size_t)info->rows * info->cols;
}

size_t recur_net_param_count(const recur_net *n) {
    return n ? (size_t)own_count(n) + recur_model_param_count(n->model) : 0;
}

recur_status recur_net_param_info_sized(const recur_net *n, size_t i, recur_param_info *out, size_t size) {
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "recur_net_param_info: net is NULL");
    recur_err_clear(n->ctx);
    RETURN_IF(!out, n->ctx, RECUR_ERR_NULL, "recur_net_param_info: out is NULL");
    TRY(recur_info_size_ok(n->ctx, "recur_net_param_info", "recur_param_info", size, RECUR_PARAM_INFO_FIRST));
    size_t own = (size_t)own_count(n), off;
    RETURN_IF(i >= recur_net_param_count(n), n->ctx, RECUR_ERR_ARG, "recur_net_param_info: index %zu: the net has %zu",
              i, recur_net_param_count(n));
    recur_param_info info;
    if (i < own) {
        own_info(n, (int)i, &info, &off);
    } else {
        recur_param_info m;
        TRY(recur_model_param_info(n->model, i - own, &m));
        info = m;
        /* model names are at most "weight_ih_l63_reverse" */
        char name[sizeof m.name + 8];
        snprintf(name, sizeof name, "rnn.%s", m.name);
        snprintf(info.name, sizeof info.name, "%.47s", name);
    }
    recur_info_copy(out, size, &info, sizeof info);
    return RECUR_OK;
}

/* op 0 set, 1 get, 2 grad get */
static recur_status param_io(const recur_net *n, const char *fn, const char *name, float *buf, size_t count, int op) {
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "%s: net is NULL", fn);
    recur_err_clear(n->ctx);
    RETURN_IF(!name || !buf, n->ctx, RECUR_ERR_NULL, "%s: %s is NULL", fn, name ? "the array" : "name");
    if (!strncmp(name, "rnn.", 4)) {
        recur_model *m = n->model;
        return op == 0 ? recur_model_param_set(m, name + 4, buf, count)
               : op == 1 ? recur_model_param_get(m, name + 4, buf, count)
                         : recur_model_grad_get(m, name + 4, buf, count);
    }
    struct recur_backend *be = &n->ctx->be;
    for (int i = 0; i < own_count(n); i++) {
        recur_param_info info;
        size_t off;
        own_info(n, i, &info, &off);
        if (strcmp(info.name, name)) continue;
        RETURN_IF(count != info.count, n->ctx, count < info.count ? RECUR_ERR_BUFFER_SIZE : RECUR_ERR_SHAPE,
                  "%s: '%s' has %zu values, not %zu", fn, name, info.count, count);
        if (op == 0) return recur_be_write(be, recur_mem_at(n->p, off), buf, count * sizeof(float));
        return recur_be_read(be, buf, recur_mem_at(op == 1 ? n->p : n->dp, off), count * sizeof(float));
    }
    return recur_err(n->ctx, RECUR_ERR_UNKNOWN_NAME, "%s: no parameter '%s'; the net has %s%s and rnn.<model names>",
                     fn, name, n->n_emb ? "embedding.weight, " : "", n->n_hw ? "head.weight, head.bias" : "");
}

recur_status recur_net_param_set(recur_net *n, const char *name, const float *src, size_t count) {
    return param_io(n, "recur_net_param_set", name, (float *)src, count, 0);
}
recur_status recur_net_param_get(const recur_net *n, const char *name, float *dst, size_t count) {
    return param_io(n, "recur_net_param_get", name, dst, count, 1);
}
recur_status recur_net_grad_get(const recur_net *n, const char *name, float *dst, size_t count) {
    return param_io(n, "recur_net_grad_get", name, dst, count, 2);
}

/* ------------------------------------------------------------------------ */
/* initialisation                                                            */

/* Uniform in (0, 1) and standard normal draws of tensor stream s. */
static double unit(uint64_t seed, uint64_t s, uint64_t k) {
    return ((double)recur_philox_uniform(seed, s, k) + 0.5 / 16777216.0);
}
static double normal(uint64_t seed, uint64_t s, uint64_t k) {
    double u1 = unit(seed, s, 2 * k), u2 = unit(seed, s, 2 * k + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A [h, c] block (h >= c) with orthonormal columns from Gaussian draws: Q
 * of A = QR by modified Gram-Schmidt over the columns, which leaves R's
 * diagonal positive, the sign convention of torch.nn.init.orthogonal_
 * (square for [H, H] blocks; [H, P] with a projection). */
static void orthogonal(float *dst, int ld, int h, int c, uint64_t seed, uint64_t s, uint64_t first, double *a) {
    for (int i = 0; i < h; i++)
        for (int j = 0; j < c; j++) a[(size_t)i * c + j] = normal(seed, s, first + (size_t)i * c + j);
    for (int j = 0; j < c; j++) {
        for (int k = 0; k < j; k++) {
            double dot = 0;
            for (int i = 0; i < h; i++) dot += a[(size_t)i * c + k] * a[(size_t)i * c + j];
            for (int i = 0; i < h; i++) a[(size_t)i * c + j] -= dot * a[(size_t)i * c + k];
        }
        double nrm = 0;
        for (int i = 0; i < h; i++) nrm += a[(size_t)i * c + j] * a[(size_t)i * c + j];
        nrm = sqrt(nrm);
        for (int i = 0; i < h; i++) a[(size_t)i * c + j] /= nrm > 0 ? nrm : 1.0;
    }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < c; j++) dst[(size_t)i * ld + j] = (float)a[(size_t)i * c + j];
}

float *recur_net_param_buffer(const recur_net *n) {
    size_t np = recur_net_param_count(n), maxc = 1;
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        if (recur_net_param_info(n, i, &info) == RECUR_OK && info.count > maxc) maxc = info.count;
    }
    return malloc(maxc * sizeof(float));
}

recur_status recur_net_init(recur_net *n, recur_init init, uint64_t seed) {
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "recur_net_init: net is NULL");
    recur_err_clear(n->ctx);
    RETURN_IF(init != RECUR_INIT_UNIFORM && init != RECUR_INIT_ORTHOGONAL, n->ctx, RECUR_ERR_ARG,
              "recur_net_init: init %d: expected RECUR_INIT_UNIFORM or RECUR_INIT_ORTHOGONAL", (int)init);
    size_t np = recur_net_param_count(n);
    float *v = recur_net_param_buffer(n);
    double *a = init == RECUR_INIT_ORTHOGONAL ? malloc((size_t)n->H * n->H * sizeof *a) : NULL;
    recur_status st = RECUR_OK;
    GOTO_IF(!v || (init == RECUR_INIT_ORTHOGONAL && !a), n->ctx, st, RECUR_ERR_NO_MEMORY, done,
            "recur_net_init: out of memory");
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        if ((st = recur_net_param_info(n, i, &info)) != RECUR_OK) goto done;
        uint64_t s = i; /* each tensor its own Philox stream */
        int rule = RECUR_CELL_INIT_UNIFORM; /* a cell's own parameter says how it starts */
        recur_layer *y;
        recur_param_info mi;
        int b;
        if (i >= (size_t)own_count(n)) {
            if ((st = recur_model_param_at(n->model, i - (size_t)own_count(n), &mi, &y, &b)) != RECUR_OK) goto done;
            if (y->t[b].kind == RECUR_T_PARAM) rule = y->cell->desc->params[y->t[b].param].init;
        }
        if (rule != RECUR_CELL_INIT_UNIFORM) {
            for (size_t k = 0; k < info.count; k++) v[k] = rule == RECUR_CELL_INIT_ONE ? 1.0f : 0.0f;
        } else if (!strcmp(info.name, "embedding.weight")) {
            for (size_t k = 0; k < info.count; k++) v[k] = (float)normal(seed, s, k);
        } else {
            double fan = !strncmp(info.name, "head.", 5) ? (double)n->F : (double)n->H;
            double b = 1.0 / sqrt(fan);
            for (size_t k = 0; k < info.count; k++) v[k] = (float)((2.0 * unit(seed, s, k) - 1.0) * b);
            if (init == RECUR_INIT_ORTHOGONAL && strstr(info.name, "rnn.weight_hh_"))
                for (int g = 0; g < info.rows / n->H; g++) {
                    size_t blk = (size_t)n->H * (size_t)info.cols; /* [H, P] */
                    orthogonal(v + g * blk, info.cols, n->H, info.cols, seed, s, (uint64_t)info.count + g * blk, a);
                }
        }
        if ((st = recur_net_param_set(n, info.name, v, info.count)) != RECUR_OK) goto done;
    }
done:
    free(v);
    free(a);
    return st;
}

/* ------------------------------------------------------------------------ */
/* forward and backward                                                      */

static size_t rows_of(const recur_net *n, int T, int N) {
    return n->desc.head == RECUR_HEAD_ALL ? (size_t)T * N : n->desc.head == RECUR_HEAD_LAST ? (size_t)N : 0;
}

static recur_status plan(const recur_net *n, int T, int N, int training, struct net_plan *p) {
    size_t TN = (size_t)T * N, R = rows_of(n, T, N), K = (size_t)n->K;
    size_t st = recur_model_states(n->model, N, 0), sc = recur_model_states(n->model, N, 1); /* a's, c's */
    size_t S2 = n->S > 1, tok = n->desc.input != RECUR_INPUT_VECTOR, emb = n->n_emb != 0;
    size_t mse = n->desc.loss == RECUR_LOSS_MSE, all = n->desc.head == RECUR_HEAD_ALL;
    struct recur_plan pl = recur_plan_start(n->ctx, "net scratch");
    memset(p, 0, sizeof *p);
    p->gidx = recur_plan_take(&pl, "token indices", tok, TN, 1);
    p->aidx = recur_plan_take(&pl, "embedding rows", emb, TN, 1);
    p->tgt = recur_plan_take(&pl, "targets", R, 1, 1);
    p->x = recur_plan_take(&pl, "x", TN, (size_t)n->I, 1);
    p->y = recur_plan_take(&pl, "y", TN, (size_t)n->O, 1);
    p->h0 = recur_plan_take(&pl, "h0", st, 1, 1);
    p->c0 = recur_plan_take(&pl, "c0", S2, sc, 1);
    p->hT = recur_plan_take(&pl, "hT", st, 1, 1);
    p->cT = recur_plan_take(&pl, "cT", S2, sc, 1);
    p->logits = recur_plan_take(&pl, "logits", R, K, 1);
    p->dz = recur_plan_take(&pl, "dz", R, K, 1);
    p->vals = recur_plan_take(&pl, "values", mse, R, K);
    p->loss = recur_plan_take(&pl, "loss rows", R, 1, 1);
    p->parts = recur_plan_take(&pl, "loss parts", RECUR_SUM_PARTS, 1, 1);
    if (training) {
        p->dy = recur_plan_take(&pl, "dy", all, TN, (size_t)n->O);
        p->dx = recur_plan_take(&pl, "dx", emb, TN, (size_t)n->I);
        p->dhT = recur_plan_take(&pl, "dhT", st, 1, 1);
        p->dcT = recur_plan_take(&pl, "dcT", S2, sc, 1);
        p->dh0 = recur_plan_take(&pl, "dh0", st, 1, 1);
        p->dc0 = recur_plan_take(&pl, "dc0", S2, sc, 1);
    }
    p->total = pl.top;
    return pl.st;
}

static struct recur_mem at_(const recur_net *n, size_t off) { return recur_mem_at(n->buf.mem, off); }
static const struct recur_mem none_mem;

/* The position of sequence n's step t is valid (inside its length). */
static int valid(const int *lengths, int t, int nn) { return !lengths || t < lengths[nn]; }

recur_status recur_net_check_batch(recur_net *n, const recur_net_batch *b, const char *fn, long long *count) {
    RETURN_IF(!b, n->ctx, RECUR_ERR_NULL, "%s: batch is NULL", fn);
    RETURN_IF(b->T < 1 || b->N < 1, n->ctx, RECUR_ERR_ARG, "%s: T %d, N %d: both must be at least 1", fn, b->T, b->N);
    int T = b->T, N = b->N;
    if (b->lengths)
        for (int i = 0; i < N; i++)
            RETURN_IF(b->lengths[i] < 1 || b->lengths[i] > T, n->ctx, RECUR_ERR_ARG,
                      "%s: lengths[%d] is %d: each length must be 1..T (T = %d)", fn, i, b->lengths[i], T);
    if (n->desc.input == RECUR_INPUT_VECTOR) {
        RETURN_IF(!b->x, n->ctx, RECUR_ERR_NULL, "%s: batch->x is NULL (the net takes vectors)", fn);
        RETURN_IF(b->tokens, n->ctx, RECUR_ERR_ARG, "%s: batch->tokens given, but the net takes vectors (x)", fn);
    } else {
        RETURN_IF(!b->tokens, n->ctx, RECUR_ERR_NULL, "%s: batch->tokens is NULL (the net takes tokens)", fn);
        RETURN_IF(b->x, n->ctx, RECUR_ERR_ARG, "%s: batch->x given, but the net takes tokens (%s input)", fn,
                  input_names[n->desc.input]);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < N; i++) {
                int32_t v = b->tokens[(size_t)t * N + i];
                RETURN_IF(valid(b->lengths, t, i) && (v < 0 || v >= n->V), n->ctx, RECUR_ERR_ARG,
                          "%s: tokens[%d][%d] is %d: must be 0..%d (the vocabulary)", fn, t, i, (int)v, n->V - 1);
            }
    }
    TRY(recur_layer_check_c(n->model->layers[0], fn, b->c0, "batch->c0", b->cT, "batch->cT"));
    *count = 0;
    if (n->desc.head == RECUR_HEAD_NONE) {
        RETURN_IF(b->targets || b->values || b->logits, n->ctx, RECUR_ERR_ARG,
                  "%s: batch->%s given, but the net has no head", fn,
                  b->targets ? "targets" : b->values ? "values" : "logits");
        return RECUR_OK;
    }
    int all = n->desc.head == RECUR_HEAD_ALL;
    if (n->desc.loss == RECUR_LOSS_XENT) {
        RETURN_IF(b->values, n->ctx, RECUR_ERR_ARG, "%s: batch->values given, but the loss is cross-entropy (targets)", fn);
        if (!b->targets) return RECUR_OK;
        for (int t = 0; t < (all ? T : 1); t++)
            for (int i = 0; i < N; i++) {
                int32_t v = b->targets[(size_t)t * N + i];
                if (all && !valid(b->lengths, t, i)) continue;
                if (v < -1 || v >= n->K) {
                    char at[32];
                    if (all) snprintf(at, sizeof at, "[%d][%d]", t, i);
                    else snprintf(at, sizeof at, "[%d]", i);
                    return recur_err(n->ctx, RECUR_ERR_ARG, "%s: targets%s is %d: must be -1..%d", fn, at, (int)v,
                                     n->K - 1);
                }
                *count += v >= 0;
            }
    } else {
        RETURN_IF(b->targets, n->ctx, RECUR_ERR_ARG, "%s: batch->targets given, but the loss is MSE (values)", fn);
        if (!b->values) return RECUR_OK;
        for (int t = 0; t < (all ? T : 1); t++)
            for (int i = 0; i < N; i++) *count += !all || valid(b->lengths, t, i);
    }
    return RECUR_OK;
}

static recur_status host_room(recur_net *n, size_t count) {
    if (n->host_cap >= count) return RECUR_OK;
    int32_t *h = realloc(n->host, count * sizeof *h);
    RETURN_IF(!h, n->ctx, RECUR_ERR_NO_MEMORY, "recur_net: out of memory for %zu indices", count);
    n->host = h;
    n->host_cap = count;
    return RECUR_OK;
}

/* The head's weight block that direction d of the top layer meets (HEAD_LAST). */
static size_t head_col(const recur_net *n, int d) {
    return n->desc.model.direction == RECUR_DIR_BIDI_CONCAT ? (size_t)d * n->P : 0;
}
static size_t top_state(const recur_net *n, int N, int d) { return (size_t)((n->L - 1) * n->D + d) * N * n->P; }

recur_status recur_net_begin(recur_net *n, int T, int N, int training) {
    n->trained_T = 0;
    n->loss_state = NET_LOSS_NONE; /* any forward replaces the last one's loss */
    struct net_plan p;
    TRY(plan(n, T, N, training, &p));
    /* Padded positions of y are never read; a new buffer starts as zeros so
     * they never hold garbage. */
    TRY(recur_arena_grow(n->ctx, &n->buf, p.total, 1));
    n->pl = p;
    return RECUR_OK;
}

recur_status recur_net_run_forward(recur_net *n, recur_mode mode, int T, int N, const int *lengths, int has_h0,
                                   int has_c0, int has_targets, long long cnt, int read_loss) {
    struct recur_backend *be = &n->ctx->be;
    const struct net_plan p = n->pl;
    int K = n->K, training = mode == RECUR_MODE_TRAINING;
    size_t TN = (size_t)T * N, R = rows_of(n, T, N);
    if (n->desc.input != RECUR_INPUT_VECTOR)
        TRY(recur_be_gather(be, at_(n, p.x), n->I, n->n_emb ? n->p : n->eye, n->I, at_(n, p.gidx), (int)TN, n->I));
    struct recur_stack_io io = {.T = T, .N = N, .lengths = lengths, .x = at_(n, p.x), .y = at_(n, p.y),
                                .h0 = has_h0 ? at_(n, p.h0) : none_mem, .c0 = has_c0 ? at_(n, p.c0) : none_mem,
                                .hT = at_(n, p.hT), .cT = n->S > 1 ? at_(n, p.cT) : none_mem};
    TRY(recur_stack_forward(n->model, mode, &io));

    if (R) {
        struct recur_mem W = recur_mem_at(n->p, n->n_emb), bias = recur_mem_at(n->p, n->n_emb + n->n_hw);
        struct recur_mem z = at_(n, p.logits);
        recur_dtype prec = recur_model_precision(n->model); /* the head's products follow the model's */
        TRY(recur_be_rows_set(be, z, (int)R, K, K, bias));
        if (n->desc.head == RECUR_HEAD_ALL)
            TRY(recur_be_gemm_prec(be, prec, 0, 1, (int)R, K, n->O, 1.0f, io.y, n->O, W, n->F, 1.0f, z, K));
        else
            for (int d = 0; d < n->D; d++)
                TRY(recur_be_gemm_prec(be, prec, 0, 1, N, K, n->P, 1.0f, at_(n, p.hT + top_state(n, N, d)),
                                       n->P, recur_mem_at(W, head_col(n, d)), n->F, 1.0f, z, K));
        if (has_targets) {
            struct recur_mem dz = at_(n, p.dz), lr = at_(n, p.loss);
            float scale = 0.0f;
            if (n->desc.loss == RECUR_LOSS_XENT) {
                scale = cnt ? (float)(n->loss_scale / (double)cnt) : 0.0f;
                TRY(recur_be_xent(be, z, K, at_(n, p.tgt), (int)R, K, scale, dz, lr));
            } else {
                scale = cnt ? (float)(n->loss_scale / ((double)cnt * K)) : 0.0f;
                TRY(recur_be_mse(be, z, K, at_(n, p.vals), K, at_(n, p.tgt), (int)R, K, scale, dz, lr));
            }
            TRY(recur_be_sum(be, lr, R, 0, at_(n, p.parts)));
            n->loss_count = cnt;
            n->loss_div = n->desc.loss == RECUR_LOSS_MSE ? (double)cnt * K : (double)cnt;
            n->loss_state = NET_LOSS_DEVICE;
            if (read_loss) { /* else it stays on the device: recur_net_loss, recur_optim_step */
                float parts[RECUR_SUM_PARTS];
                TRY(recur_be_read(be, parts, at_(n, p.parts), sizeof parts));
                recur_net_loss_from_parts(n, parts);
            }
        } else if (training) {
            TRY(recur_be_fill(be, at_(n, p.dz), 0.0f, R * K));
        }
    }
    if (training) {
        if (recur_lengths_keep(&n->trained_len, lengths, N) != 0)
            return recur_err(n->ctx, RECUR_ERR_NO_MEMORY, "net forward: out of memory keeping %d lengths", N);
        n->trained_T = T;
        n->trained_N = N;
        n->has_targets = has_targets;
        n->trained_scale = has_targets ? n->loss_scale : 0.0;
    }
    return RECUR_OK;
}

recur_status recur_net_forward(recur_net *n, recur_mode mode, const recur_net_batch *b, double *loss,
                               long long *count) {
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "recur_net_forward: net is NULL");
    recur_err_clear(n->ctx);
    TRY(recur_check_mode(n->ctx, "recur_net_forward", mode));
    long long cnt = 0;
    TRY(recur_net_check_batch(n, b, "recur_net_forward", &cnt));
    TRY(recur_layer_check_size(n->model->layers[0], b->T, b->N, "recur_net_forward"));
    struct recur_backend *be = &n->ctx->be;
    int T = b->T, N = b->N, K = n->K;
    size_t TN = (size_t)T * N, R = rows_of(n, T, N);
    size_t st = recur_model_states(n->model, N, 0), sc = recur_model_states(n->model, N, 1); /* a's, c's */
    TRY(recur_net_begin(n, T, N, mode == RECUR_MODE_TRAINING));
    const struct net_plan p = n->pl;

    /* indices and targets, through one host scratch; the host-pointer call
     * stages its arrays into the scratch, recur_net_forward_dev copies its
     * buffers there, and both run the same recur_net_run_forward */
    TRY(host_room(n, 2 * TN + R + 1));
    int32_t *gi = n->host, *ai = n->host + TN, *tg = n->host + 2 * TN;
    if (n->desc.input != RECUR_INPUT_VECTOR) {
        for (int t = 0; t < T; t++)
            for (int i = 0; i < N; i++) {
                size_t k = (size_t)t * N + i;
                int ok = valid(b->lengths, t, i);
                gi[k] = ok ? b->tokens[k] : 0;
                ai[k] = ok ? b->tokens[k] : -1;
            }
        TRY(recur_be_write_staged(be, at_(n, p.gidx), gi, TN * sizeof *gi));
        if (n->n_emb) TRY(recur_be_write_staged(be, at_(n, p.aidx), ai, TN * sizeof *ai));
    } else {
        TRY(recur_be_write_staged(be, at_(n, p.x), b->x, TN * n->I * sizeof(float)));
    }
    int has_targets = R && (b->targets || b->values);
    if (has_targets) {
        int all = n->desc.head == RECUR_HEAD_ALL;
        for (size_t r = 0; r < R; r++) {
            int t = all ? (int)(r / N) : 0, i = (int)(r % N);
            int ok = !all || valid(b->lengths, t, i);
            tg[r] = !ok ? -1 : b->targets ? b->targets[r] : 0;
        }
        TRY(recur_be_write_staged(be, at_(n, p.tgt), tg, R * sizeof *tg));
        if (b->values) TRY(recur_be_write_staged(be, at_(n, p.vals), b->values, R * K * sizeof(float)));
    }
    if (b->h0) TRY(recur_be_write_staged(be, at_(n, p.h0), b->h0, st * sizeof(float)));
    if (b->c0) TRY(recur_be_write_staged(be, at_(n, p.c0), b->c0, sc * sizeof(float)));
    TRY(recur_net_run_forward(n, mode, T, N, b->lengths, b->h0 != NULL, b->c0 != NULL, has_targets, cnt,
                              loss != NULL));
    /* No sync: the reads below wait; with none, the work stays queued. */
    if (b->hT) TRY(recur_be_read(be, b->hT, at_(n, p.hT), st * sizeof(float)));
    if (b->cT) TRY(recur_be_read(be, b->cT, at_(n, p.cT), sc * sizeof(float)));
    if (b->logits) TRY(recur_be_read(be, b->logits, at_(n, p.logits), R * K * sizeof(float)));
    if (loss) *loss = n->loss_state == NET_LOSS_HOST ? n->loss : 0.0;
    if (count) *count = cnt;
    return RECUR_OK;
}

recur_status recur_net_check_backward(recur_net *n, const char *fn, int T, int N, const int *lengths) {
    RETURN_IF(n->trained_T == 0, n->ctx, RECUR_ERR_STATE,
              "%s: no training forward to go back through (run recur_net_forward with "
              "RECUR_MODE_TRAINING first; any forward in between replaces it)", fn);
    RETURN_IF(T != n->trained_T || N != n->trained_N, n->ctx, RECUR_ERR_STATE,
              "%s: batch has T %d, N %d but the training forward had T %d, N %d", fn, T, N, n->trained_T,
              n->trained_N);
    int bad = recur_lengths_differ(lengths, n->trained_len, N, T);
    RETURN_IF(bad >= 0, n->ctx, RECUR_ERR_STATE, "%s: lengths[%d] differs from the training forward's", fn, bad);
    return RECUR_OK;
}

recur_status recur_net_run_backward(recur_net *n, int T, int N, const int *lengths, int has_h0, int has_c0,
                                    int want_dh0, int want_dc0, recur_grad_mode mode) {
    struct recur_backend *be = &n->ctx->be;
    const struct net_plan *p = &n->pl;
    int K = n->K, H = n->P; /* the width of a's states */
    size_t TN = (size_t)T * N, R = rows_of(n, T, N);
    float bw = mode == RECUR_GRAD_ADD ? 1.0f : 0.0f;
    struct recur_mem dhT = at_(n, p->dhT), dcT = n->S > 1 ? at_(n, p->dcT) : none_mem;
    struct recur_mem W = recur_mem_at(n->p, n->n_emb), dW = recur_mem_at(n->dp, n->n_emb);
    struct recur_mem db = recur_mem_at(n->dp, n->n_emb + n->n_hw), dz = at_(n, p->dz);
    struct recur_stack_grad sg = {.dhT = dhT, .dcT = dcT};
    recur_dtype prec = recur_model_precision(n->model); /* the head's products follow the model's */
    /* The loss's gradient came multiplied by the scale of its forward: one
     * scale in the gradients until the optimizer steps (recur_optim_step
     * divides by it). */
    if (n->has_targets) {
        RETURN_IF(mode == RECUR_GRAD_ADD && n->grad_scale != 0.0 && n->grad_scale != n->trained_scale, n->ctx,
                  RECUR_ERR_STATE,
                  "net backward: adding gradients of a loss scaled by %g to gradients scaled by %g (the loss scale "
                  "changed between the passes of one step)",
                  n->trained_scale, n->grad_scale);
        n->grad_scale = n->trained_scale;
    } else if (mode == RECUR_GRAD_OVERWRITE) {
        n->grad_scale = 0.0;
    }
    TRY(recur_grad_ready(n->model, RECUR_GRAD_PART_BEGIN, 0)); /* a reduction over MPI, if any (dist.c) */
    if (n->desc.head == RECUR_HEAD_ALL) {
        TRY(recur_be_gemm_prec(be, prec, 1, 0, K, n->O, (int)R, 1.0f, dz, K, at_(n, p->y), n->O, bw, dW, n->F));
        TRY(recur_be_colsum(be, db, bw, dz, (int)R, K, K));
        sg.dy = at_(n, p->dy);
        TRY(recur_be_gemm_prec(be, prec, 0, 0, (int)R, n->O, K, 1.0f, dz, K, W, n->F, 0.0f, sg.dy, n->O));
    } else if (n->desc.head == RECUR_HEAD_LAST) {
        for (int d = 0; d < n->D; d++) {
            float beta = n->desc.model.direction == RECUR_DIR_BIDI_SUM && d == 1 ? 1.0f : bw;
            struct recur_mem h = at_(n, p->hT + top_state(n, N, d));
            TRY(recur_be_gemm_prec(be, prec, 1, 0, K, H, N, 1.0f, dz, K, h, H, beta,
                                   recur_mem_at(dW, head_col(n, d)), n->F));
            TRY(recur_be_gemm_prec(be, prec, 0, 0, N, H, K, 1.0f, dz, K, recur_mem_at(W, head_col(n, d)), n->F,
                                   1.0f, recur_mem_at(dhT, top_state(n, N, d)), H));
        }
        TRY(recur_be_colsum(be, db, bw, dz, N, K, K));
    }
    TRY(recur_grad_ready(n->model, RECUR_GRAD_PART_HEAD, 0));
    if (n->n_emb) sg.dx = at_(n, p->dx);
    if (want_dh0) sg.dh0 = at_(n, p->dh0);
    if (want_dc0) sg.dc0 = at_(n, p->dc0);
    struct recur_stack_io io = {.T = T, .N = N, .lengths = lengths, .x = at_(n, p->x), .y = at_(n, p->y),
                                .h0 = has_h0 ? at_(n, p->h0) : none_mem, .c0 = has_c0 ? at_(n, p->c0) : none_mem};
    TRY(recur_stack_backward(n->model, &io, &sg, mode));
    if (n->n_emb) {
        if (mode == RECUR_GRAD_OVERWRITE) TRY(recur_be_fill(be, n->dp, 0.0f, n->n_emb));
        TRY(recur_be_index_add(be, n->dp, n->I, sg.dx, n->I, at_(n, p->aidx), (int)TN, n->I));
    }
    return recur_grad_ready(n->model, RECUR_GRAD_PART_INPUT, 0);
}

recur_status recur_net_backward(recur_net *n, const recur_net_batch *b, const recur_net_grad *g,
                                recur_grad_mode mode) {
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "recur_net_backward: net is NULL");
    recur_err_clear(n->ctx);
    RETURN_IF(!b, n->ctx, RECUR_ERR_NULL, "recur_net_backward: batch is NULL");
    recur_net_grad none_g = {0};
    if (!g) g = &none_g;
    TRY(recur_layer_check_grad(n->model->layers[0], "recur_net_backward", mode, g->dcT, g->dc0));
    TRY(recur_net_check_backward(n, "recur_net_backward", b->T, b->N, b->lengths));
    struct recur_backend *be = &n->ctx->be;
    const struct net_plan *p = &n->pl;
    size_t st = recur_model_states(n->model, b->N, 0), sc = recur_model_states(n->model, b->N, 1);
    struct recur_mem dhT = at_(n, p->dhT), dcT = n->S > 1 ? at_(n, p->dcT) : none_mem;
    if (g->dhT) TRY(recur_be_write_staged(be, dhT, g->dhT, st * sizeof(float)));
    else TRY(recur_be_fill(be, dhT, 0.0f, st));
    if (n->S > 1) {
        if (g->dcT) TRY(recur_be_write_staged(be, dcT, g->dcT, sc * sizeof(float)));
        else TRY(recur_be_fill(be, dcT, 0.0f, sc));
    }
    TRY(recur_net_run_backward(n, b->T, b->N, b->lengths, b->h0 != NULL, b->c0 != NULL, g->dh0 != NULL,
                               g->dc0 != NULL, mode));
    /* No sync: a read waits; without one the work stays queued. */
    if (g->dh0) TRY(recur_be_read(be, g->dh0, at_(n, p->dh0), st * sizeof(float)));
    if (g->dc0) TRY(recur_be_read(be, g->dc0, at_(n, p->dc0), sc * sizeof(float)));
    return RECUR_OK;
}

void recur_net_loss_from_parts(recur_net *n, const float *parts) {
    double total = 0;
    for (int i = 0; i < RECUR_SUM_PARTS; i++) total += parts[i];
    n->loss = n->loss_count ? total / n->loss_div : 0.0;
    n->loss_state = NET_LOSS_HOST;
}

recur_status recur_net_loss(recur_net *n, double *loss, long long *count) {
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "recur_net_loss: net is NULL");
    recur_err_clear(n->ctx);
    RETURN_IF(!loss, n->ctx, RECUR_ERR_NULL, "recur_net_loss: loss is NULL");
    RETURN_IF(n->loss_state == NET_LOSS_NONE, n->ctx, RECUR_ERR_STATE,
              "recur_net_loss: the last forward computed no loss (it had no targets or values, or none ran)");
    if (n->loss_state == NET_LOSS_DEVICE) {
        float parts[RECUR_SUM_PARTS];
        TRY(recur_be_read(&n->ctx->be, parts, at_(n, n->pl.parts), sizeof parts));
        recur_net_loss_from_parts(n, parts);
    }
    *loss = n->loss;
    if (count) *count = n->loss_count;
    return RECUR_OK;
}

const char *recur_net_input_name(recur_input i) { return i >= 0 && i <= RECUR_INPUT_ONEHOT ? input_names[i] : "?"; }
const char *recur_net_head_name(recur_head h) { return h >= 0 && h <= RECUR_HEAD_NONE ? head_names[h] : "?"; }
