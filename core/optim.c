/*
 * optim.c: SGD with momentum and Adam over the parameters of one or more
 * nets, with clipping by global norm (torch.nn.utils.clip_grad_norm_ then
 * torch.optim.SGD / Adam, step for step).
 *
 * The parameters are a few contiguous device buffers (groups): each net's
 * own [embedding | head] block and each layer's canonical weights. A step
 * sums the squares of every group's gradients on the device (partials read
 * back once and added in double, in a fixed order), then runs one update
 * kernel per group with the clipping factor folded in. That read is the
 * step's only wait for the device: it also brings back the loss that a
 * forward without a loss pointer left there, and the updates are not
 * waited for.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

static recur_status check_desc(recur_ctx *ctx, const recur_optim_desc *d) {
    RETURN_IF(d->kind != RECUR_OPTIM_SGD && d->kind != RECUR_OPTIM_ADAM, ctx, RECUR_ERR_ARG,
              "optimizer: kind %d: expected RECUR_OPTIM_SGD or RECUR_OPTIM_ADAM", (int)d->kind);
    RETURN_IF(!(d->lr > 0 && isfinite(d->lr)), ctx, RECUR_ERR_ARG, "optimizer: lr %g: must be positive",
              (double)d->lr);
    RETURN_IF(!(d->momentum >= 0 && d->momentum < 1), ctx, RECUR_ERR_ARG, "optimizer: momentum %g: must be in [0, 1)",
              (double)d->momentum);
    RETURN_IF(!(d->weight_decay >= 0 && isfinite(d->weight_decay)), ctx, RECUR_ERR_ARG,
              "optimizer: weight_decay %g: must be 0 or more", (double)d->weight_decay);
    RETURN_IF(!(d->clip_norm >= 0 && isfinite(d->clip_norm)), ctx, RECUR_ERR_ARG,
              "optimizer: clip_norm %g: must be 0 (off) or more", (double)d->clip_norm);
    if (d->kind == RECUR_OPTIM_ADAM) {
        RETURN_IF(!(d->beta1 >= 0 && d->beta1 < 1), ctx, RECUR_ERR_ARG, "optimizer: beta1 %g: must be in [0, 1)",
                  (double)d->beta1);
        RETURN_IF(!(d->beta2 >= 0 && d->beta2 < 1), ctx, RECUR_ERR_ARG, "optimizer: beta2 %g: must be in [0, 1)",
                  (double)d->beta2);
        RETURN_IF(!(d->eps > 0 && isfinite(d->eps)), ctx, RECUR_ERR_ARG, "optimizer: eps %g: must be positive",
                  (double)d->eps);
    }
    return RECUR_OK;
}

static recur_status add_group(recur_optim *o, int net, const char *name, struct recur_mem w, struct recur_mem g,
                              size_t count, recur_layer *layer) {
    struct optim_group *gr = &o->g[o->n_groups++];
    memset(gr, 0, sizeof *gr);
    snprintf(gr->name, sizeof gr->name, "%s", name);
    gr->w = w;
    gr->g = g;
    gr->count = count;
    gr->layer = layer;
    gr->net = net;
    struct recur_backend *be = &o->ctx->be;
    int two = o->d.kind == RECUR_OPTIM_ADAM;
    TRY(recur_be_alloc(be, count * sizeof(float), &gr->m));
    TRY(recur_be_fill(be, gr->m, 0.0f, count));
    if (two) {
        TRY(recur_be_alloc(be, count * sizeof(float), &gr->v));
        TRY(recur_be_fill(be, gr->v, 0.0f, count));
    }
    return RECUR_OK;
}

recur_optim_desc recur_optim_defaults(recur_optim_kind kind, float lr) {
    recur_optim_desc d = {.kind = kind, .lr = lr};
    if (kind == RECUR_OPTIM_ADAM) d.beta1 = 0.9f, d.beta2 = 0.999f, d.eps = 1e-8f;
    return d;
}

recur_status recur_optim_create(recur_net *const *nets, int n, const recur_optim_desc *desc, recur_optim **out) {
    RETURN_IF(!nets || !desc || !out, NULL, RECUR_ERR_NULL, "recur_optim_create: %s is NULL",
              !nets ? "nets" : !desc ? "desc" : "out");
    *out = NULL;
    RETURN_IF(n < 1 || n > 64, NULL, RECUR_ERR_ARG, "recur_optim_create: %d nets: must be 1..64", n);
    for (int i = 0; i < n; i++) RETURN_IF(!nets[i], NULL, RECUR_ERR_NULL, "recur_optim_create: nets[%d] is NULL", i);
    recur_ctx *ctx = nets[0]->ctx;
    recur_err_clear(ctx);
    for (int i = 1; i < n; i++) {
        RETURN_IF(nets[i]->ctx != ctx, ctx, RECUR_ERR_ARG, "recur_optim_create: nets[%d] is on another context", i);
        for (int j = 0; j < i; j++)
            RETURN_IF(nets[i] == nets[j], ctx, RECUR_ERR_ARG, "recur_optim_create: nets[%d] is nets[%d] again", i, j);
    }
    TRY(check_desc(ctx, desc));
    recur_optim *o = calloc(1, sizeof *o);
    RETURN_IF(!o, ctx, RECUR_ERR_NO_MEMORY, "recur_optim_create: out of memory");
    o->ctx = ctx;
    o->d = *desc;
    o->grad_weight = 1.0;
    o->bucket_bytes = RECUR_DIST_BUCKET_DEFAULT;
    o->accum = 1;
    size_t groups = 0;
    for (int i = 0; i < n; i++) groups += 1 + (size_t)nets[i]->L * nets[i]->D;
    o->nets = calloc((size_t)n, sizeof *o->nets);
    o->g = calloc(groups, sizeof *o->g);
    o->host_parts = malloc((groups + (size_t)n) * RECUR_SUM_PARTS * sizeof(float));
    recur_status st = RECUR_OK;
    GOTO_IF(!o->nets || !o->g || !o->host_parts, ctx, st, RECUR_ERR_NO_MEMORY, fail,
            "recur_optim_create: out of memory");
    memcpy(o->nets, nets, (size_t)n * sizeof *nets);
    o->n_nets = n;
    for (int i = 0; i < n; i++) {
        recur_net *net = nets[i];
        if (net->n_own && (st = add_group(o, i, "own", net->p, net->dp, net->n_own, NULL)) != RECUR_OK) goto fail;
        for (int l = 0; l < net->L; l++)
            for (int d = 0; d < net->D; d++) {
                recur_layer *y = net->model->layers[l * net->D + d];
                char name[32];
                snprintf(name, sizeof name, "rnn.l%d%s", l, d ? "_reverse" : "");
                if ((st = add_group(o, i, name, y->w, y->dw, y->n_weights, y)) != RECUR_OK) goto fail;
            }
    }
    if ((st = recur_be_alloc(&ctx->be, (o->n_groups + (size_t)n) * RECUR_SUM_PARTS * sizeof(float), &o->parts)) !=
        RECUR_OK)
        goto fail;
    o->next = ctx->optims;
    if (ctx->optims) ctx->optims->prev = o;
    ctx->optims = o;
    *out = o;
    return RECUR_OK;
fail:
    recur_optim_free(o);
    return st;
}

void recur_optim_free(recur_optim *o) {
    if (!o) return;
    if (o->scaling && o->nets)
        for (int i = 0; i < o->n_nets; i++) o->nets[i]->loss_scale = 1.0;
    struct recur_backend *be = &o->ctx->be;
    for (size_t i = 0; i < o->n_groups; i++) {
        recur_be_free(be, &o->g[i].m);
        recur_be_free(be, &o->g[i].v);
    }
    recur_be_free(be, &o->parts);
    recur_dist_free(o->dist);
    free(o->g);
    free(o->nets);
    free(o->host_parts);
    if (o->prev) o->prev->next = o->next;
    else if (o->ctx->optims == o) o->ctx->optims = o->next;
    if (o->next) o->next->prev = o->prev;
    free(o);
}

long long recur_optim_steps(const recur_optim *o) { return o ? o->steps : 0; }

recur_status recur_optim_set_lr(recur_optim *o, float lr) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_lr: optimizer is NULL");
    recur_err_clear(o->ctx);
    RETURN_IF(!(lr > 0 && isfinite(lr)), o->ctx, RECUR_ERR_ARG, "recur_optim_set_lr: lr %g: must be positive",
              (double)lr);
    o->d.lr = lr;
    return RECUR_OK;
}

/* ---- dynamic loss scaling ---- */

static double scale_of(const recur_optim *o) { return o->scaling ? ldexp(1.0, o->scale_log2) : 1.0; }

void recur_optim_tell_nets(recur_optim *o) {
    for (int i = 0; i < o->n_nets; i++) o->nets[i]->loss_scale = scale_of(o);
}

recur_status recur_optim_set_loss_scale(recur_optim *o, double init_scale, int growth_interval) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_set_loss_scale: optimizer is NULL");
    recur_err_clear(o->ctx);
    int e = 0;
    double m = isfinite(init_scale) && init_scale > 0 ? frexp(init_scale, &e) : 0.0;
    RETURN_IF(init_scale != 0.0 && !(m == 0.5 && e - 1 >= 0 && e - 1 <= RECUR_SCALE_LOG2_MAX), o->ctx, RECUR_ERR_ARG,
              "recur_optim_set_loss_scale: init_scale %g: must be 0 (off) or a power of two from 1 to 2^%d", init_scale,
              RECUR_SCALE_LOG2_MAX);
    RETURN_IF(init_scale != 0.0 && !(growth_interval >= 1 && growth_interval <= 1000000000), o->ctx, RECUR_ERR_ARG,
              "recur_optim_set_loss_scale: growth_interval %d: must be 1..1000000000", growth_interval);
    for (int i = 0; i < o->n_nets; i++)
        RETURN_IF(o->nets[i]->grad_scale != 0.0 && o->nets[i]->grad_scale != (init_scale ? init_scale : 1.0), o->ctx,
                  RECUR_ERR_STATE,
                  "recur_optim_set_loss_scale: net %d holds gradients of a loss scaled by %g; change the scale after "
                  "the step",
                  i, o->nets[i]->grad_scale);
    o->scaling = init_scale != 0.0;
    o->scale_log2 = o->scaling ? e - 1 : 0;
    o->growth_interval = o->scaling ? growth_interval : 0;
    o->scale_good = 0;
    recur_optim_tell_nets(o);
    return RECUR_OK;
}

double recur_optim_loss_scale(const recur_optim *o) { return o ? scale_of(o) : 1.0; }

long long recur_optim_skipped(const recur_optim *o) { return o ? o->skipped : 0; }

recur_status recur_optim_step(recur_optim *o, double *grad_norm) {
    RETURN_IF(!o, NULL, RECUR_ERR_NULL, "recur_optim_step: optimizer is NULL");
    recur_err_clear(o->ctx);
    struct recur_backend *be = &o->ctx->be;
    for (int i = 0; i < o->n_nets; i++)
        RETURN_IF(o->nets[i]->grad_scale != 0.0 && o->nets[i]->grad_scale != scale_of(o), o->ctx, RECUR_ERR_STATE,
                  "recur_optim_step: net %d's gradients are of a loss scaled by %g, the optimizer's scale is %g; no "
                  "weight was changed",
                  i, o->nets[i]->grad_scale, scale_of(o));
    TRY(recur_dist_average(o)); /* over MPI ranks, when set */
    for (size_t i = 0; i < o->n_groups; i++)
        TRY(recur_be_sum(be, o->g[i].g, o->g[i].count, 1, recur_mem_at(o->parts, i * RECUR_SUM_PARTS)));
    /* A loss that a forward left on the device comes back in the same read,
     * so that a training step waits for the device once. */
    size_t nets_at = o->n_groups * RECUR_SUM_PARTS, fetch = nets_at;
    for (int i = 0; i < o->n_nets; i++) {
        recur_net *n = o->nets[i];
        if (n->loss_state != NET_LOSS_DEVICE) continue;
        size_t to = nets_at + (size_t)i * RECUR_SUM_PARTS;
        TRY(recur_be_copy(be, recur_mem_at(o->parts, to), recur_mem_at(n->buf.mem, n->pl.parts),
                          RECUR_SUM_PARTS * sizeof(float)));
        fetch = to + RECUR_SUM_PARTS;
    }
    TRY(recur_be_read(be, o->host_parts, o->parts, fetch * sizeof(float)));
    for (int i = 0; i < o->n_nets; i++)
        if (o->nets[i]->loss_state == NET_LOSS_DEVICE)
            recur_net_loss_from_parts(o->nets[i], o->host_parts + nets_at + (size_t)i * RECUR_SUM_PARTS);
    double sq = 0;
    for (size_t i = 0; i < o->n_groups * RECUR_SUM_PARTS; i++) sq += o->host_parts[i];
    /* the gradients are the loss scale S times the true ones: S a power of
     * two, so dividing by it is exact */
    double S = scale_of(o), norm = sqrt(sq) / S;
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm) && o->scaling && o->scale_log2 > 0) {
        /* an overflow at this scale: skip the step, halve the scale */
        o->scale_log2--;
        o->scale_good = 0;
        o->skipped++;
        recur_optim_tell_nets(o);
        for (int i = 0; i < o->n_nets; i++) o->nets[i]->grad_scale = 0.0;
        recur_log(RECUR_LOG_INFO, "recur_optim_step: the gradient norm is %s at loss scale %g: step skipped, scale %g",
                  isnan(norm) ? "NaN" : "infinite", S, scale_of(o));
        return RECUR_OK;
    }
    RETURN_IF(!isfinite(norm), o->ctx, RECUR_ERR_ARG,
              "recur_optim_step: the gradient norm is %s%s; no weight was changed (lower the learning rate, or clip)",
              isnan(norm) ? "NaN" : "infinite", o->scaling ? " at loss scale 1" : "");
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1 */
    double coef = 1.0;
    if (o->d.clip_norm > 0) {
        coef = (double)o->d.clip_norm / (norm + 1e-6);
        if (coef > 1.0) coef = 1.0;
    }
    float gscale = (float)(coef / S);
    long long t = o->steps + 1;
    for (size_t i = 0; i < o->n_groups; i++) {
        struct optim_group *g = &o->g[i];
        if (o->d.kind == RECUR_OPTIM_SGD) {
            TRY(recur_be_sgd(be, g->w, g->g, g->m, g->count, o->d.lr, o->d.momentum, o->d.weight_decay, gscale));
        } else {
            double bc1 = 1.0 - pow((double)o->d.beta1, (double)t), bc2 = 1.0 - pow((double)o->d.beta2, (double)t);
            TRY(recur_be_adam(be, g->w, g->g, g->m, g->v, g->count, (float)(o->d.lr / bc1), o->d.beta1, o->d.beta2,
                              o->d.eps, (float)sqrt(bc2), o->d.weight_decay, gscale));
        }
        if (g->layer) recur_layer_touch(g->layer);
    }
    /* No sync: the updates stay queued (in order) until something waits. */
    o->steps = t;
    for (int i = 0; i < o->n_nets; i++) o->nets[i]->grad_scale = 0.0;
    if (o->scaling && ++o->scale_good >= o->growth_interval) {
        o->scale_good = 0;
        if (o->scale_log2 < RECUR_SCALE_LOG2_MAX) {
            o->scale_log2++;
            recur_optim_tell_nets(o);
        }
    }
    return RECUR_OK;
}
