/*
 * netdev.c: the net calls on device buffers (recur-train.h:
 * recur_net_forward_dev, recur_net_backward_dev).
 *
 * They share everything but the way in and out with the host-pointer calls
 * (net.c): the same checks (recur_net_check_batch, on the ids' host copies
 * that recur_buffer_write_ids keeps), the same scratch, the same
 * recur_net_run_forward/backward. Where the host-pointer calls stage their
 * arrays into the scratch and read the results back, these copy buffer to
 * scratch and scratch to buffer on the device, in queue order: nothing
 * waits, and the kernels see the same bytes, so the results are the same
 * bits.
 *
 * Why ids are checked from a host copy rather than on the device: a token
 * outside the vocabulary would make the lookup read outside the table, and
 * the loss's mean divides by the number of counted targets, which the
 * kernels take as a host scalar (the host-pointer call counts them on the
 * host). A device-side check would have to report at the next wait, after
 * the work ran, and a device-side count would change the kernels' scale and
 * so the bits. The copy costs one host memcpy per write and no wait.
 */
#include <stdlib.h>

#include "net.h"

static const float present_f;  /* a field present: never read */
static const int32_t present_i;

/* The ids of a buffer field, or RECUR_ERR_ARG naming it. */
static recur_status ids_of(recur_net *n, const char *fn, const char *name, const recur_buffer *b, size_t count,
                           const int32_t **out) {
    *out = NULL;
    if (!b) return RECUR_OK;
    if (!count) { /* the net reads none (no head): present, for the batch's own checks */
        *out = &present_i;
        return RECUR_OK;
    }
    *out = recur_buffer_ids(b, count);
    RETURN_IF(!*out, n->ctx, RECUR_ERR_ARG,
              "%s: %s: its first %zu elements were not all written with recur_buffer_write_ids (or were "
              "overwritten since), so the net cannot check them as ids",
              fn, name, count);
    return RECUR_OK;
}

/* What the device reads at padded positions must be safe there too: a token
 * in the vocabulary (the lookup reads it), a HEAD_ALL target -1 (the loss
 * would count it). The host-pointer call masks these on the host. */
static recur_status check_padding(recur_net *n, const char *fn, int T, int N, const int *lengths,
                                  const int32_t *tok, const int32_t *tgt) {
    if (!lengths) return RECUR_OK;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) {
            if (t < lengths[i]) continue;
            size_t k = (size_t)t * N + i;
            RETURN_IF(tok && (tok[k] < 0 || tok[k] >= n->V), n->ctx, RECUR_ERR_ARG,
                      "%s: tokens[%d][%d] is %d at a padded position (lengths[%d] = %d): a buffer's tokens are all "
                      "read, so each must be 0..%d",
                      fn, t, i, (int)tok[k], i, lengths[i], n->V - 1);
            RETURN_IF(tgt && tgt[k] != -1, n->ctx, RECUR_ERR_ARG,
                      "%s: targets[%d][%d] is %d at a padded position (lengths[%d] = %d): a buffer's padded "
                      "targets must be -1",
                      fn, t, i, (int)tgt[k], i, lengths[i]);
        }
    return RECUR_OK;
}

static struct recur_mem scratch(const recur_net *n, size_t off) { return recur_mem_at(n->buf.mem, off); }

recur_status recur_net_forward_dev(recur_net *n, recur_mode mode, const recur_net_batch_dev *b, long long *count) {
    const char *fn = "recur_net_forward_dev";
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "%s: net is NULL", fn);
    recur_err_clear(n->ctx);
    TRY(recur_check_mode(n->ctx, fn, mode));
    RETURN_IF(!b, n->ctx, RECUR_ERR_NULL, "%s: batch is NULL", fn);
    RETURN_IF(b->T < 1 || b->N < 1, n->ctx, RECUR_ERR_ARG, "%s: T %d, N %d: both must be at least 1", fn, b->T, b->N);
    int T = b->T, N = b->N, K = n->K;
    int all = n->desc.head == RECUR_HEAD_ALL;
    size_t TN = (size_t)T * N, R = all ? TN : n->desc.head == RECUR_HEAD_LAST ? (size_t)N : 0;
    size_t st = recur_model_states(n->model, N, 0), sc = recur_model_states(n->model, N, 1); /* a's, c's */
    struct recur_mem tok, x, tgt, vals, h0, c0, hT, cT, logits;
    const struct recur_dev_arg a[] = {
        {"batch->tokens", b->tokens, TN, 0, &tok},   {"batch->x", b->x, TN * n->I, 0, &x},
        {"batch->targets", b->targets, R, 0, &tgt},  {"batch->values", b->values, R * K, 0, &vals},
        {"batch->h0", b->h0, st, 0, &h0},            {"batch->c0", b->c0, sc, 0, &c0},
        {"batch->hT", b->hT, st, 1, &hT},            {"batch->cT", b->cT, sc, 1, &cT},
        {"batch->logits", b->logits, R * K, 1, &logits},
    };
    TRY(recur_dev_args(n->ctx, fn, a, RECUR_COUNT(a), 1));
    const int32_t *tok_ids, *tgt_ids;
    TRY(ids_of(n, fn, "batch->tokens", b->tokens, TN, &tok_ids));
    TRY(ids_of(n, fn, "batch->targets", b->targets, R, &tgt_ids));
    /* the host-pointer form for the shared checks: ids from their copies, other fields present */
    recur_net_batch h = {.T = T, .N = N, .tokens = tok_ids, .x = b->x ? &present_f : NULL, .lengths = b->lengths,
                         .targets = tgt_ids, .values = b->values ? &present_f : NULL,
                         .h0 = b->h0 ? &present_f : NULL, .c0 = b->c0 ? &present_f : NULL,
                         .hT = b->hT ? (float *)&present_f : NULL, .cT = b->cT ? (float *)&present_f : NULL,
                         .logits = b->logits ? (float *)&present_f : NULL};
    long long cnt = 0;
    TRY(recur_net_check_batch(n, &h, fn, &cnt));
    TRY(check_padding(n, fn, T, N, b->lengths, tok_ids, all && R ? tgt_ids : NULL));
    TRY(recur_layer_check_size(n->model->layers[0], T, N, fn));
    recur_dev_args_written(a, RECUR_COUNT(a));

    struct recur_backend *be = &n->ctx->be;
    TRY(recur_net_begin(n, T, N, mode == RECUR_MODE_TRAINING));
    const struct net_plan p = n->pl;
    if (b->tokens) { /* every position a token (checked): the lookup and the gradient's rows read them as they are */
        TRY(recur_be_copy(be, scratch(n, p.gidx), tok, TN * sizeof(int32_t)));
        if (n->n_emb) TRY(recur_be_copy(be, scratch(n, p.aidx), tok, TN * sizeof(int32_t)));
    } else {
        TRY(recur_be_copy(be, scratch(n, p.x), x, TN * n->I * sizeof(float)));
    }
    int has_targets = R && (b->targets || b->values);
    if (has_targets && b->targets) {
        TRY(recur_be_copy(be, scratch(n, p.tgt), tgt, R * sizeof(int32_t)));
    } else if (has_targets) { /* MSE: the rows that count, from the lengths */
        int32_t *sel = malloc(R * sizeof *sel);
        RETURN_IF(!sel, n->ctx, RECUR_ERR_NO_MEMORY, "%s: out of memory for %zu rows", fn, R);
        for (size_t r = 0; r < R; r++) {
            int t = all ? (int)(r / N) : 0, i = (int)(r % N);
            sel[r] = !all || !b->lengths || t < b->lengths[i] ? 0 : -1;
        }
        TRY(recur_be_write_owned(be, scratch(n, p.tgt), sel, R * sizeof *sel));
        TRY(recur_be_copy(be, scratch(n, p.vals), vals, R * K * sizeof(float)));
    }
    if (b->h0) TRY(recur_be_copy(be, scratch(n, p.h0), h0, st * sizeof(float)));
    if (b->c0) TRY(recur_be_copy(be, scratch(n, p.c0), c0, sc * sizeof(float)));
    TRY(recur_net_run_forward(n, mode, T, N, b->lengths, b->h0 != NULL, b->c0 != NULL, has_targets, cnt, 0));
    if (b->hT) TRY(recur_be_copy(be, hT, scratch(n, p.hT), st * sizeof(float)));
    if (b->cT) TRY(recur_be_copy(be, cT, scratch(n, p.cT), sc * sizeof(float)));
    if (b->logits) TRY(recur_be_copy(be, logits, scratch(n, p.logits), R * K * sizeof(float)));
    if (count) *count = cnt;
    return RECUR_OK;
}

recur_status recur_net_backward_dev(recur_net *n, const recur_net_batch_dev *b, const recur_net_grad_dev *g,
                                    recur_grad_mode mode) {
    const char *fn = "recur_net_backward_dev";
    RETURN_IF(!n, NULL, RECUR_ERR_NULL, "%s: net is NULL", fn);
    recur_err_clear(n->ctx);
    RETURN_IF(!b, n->ctx, RECUR_ERR_NULL, "%s: batch is NULL", fn);
    recur_net_grad_dev none_g = {0};
    if (!g) g = &none_g;
    TRY(recur_layer_check_grad(n->model->layers[0], fn, mode, g->dcT ? &present_f : NULL,
                               g->dc0 ? &present_f : NULL));
    TRY(recur_net_check_backward(n, fn, b->T, b->N, b->lengths));
    size_t st = recur_model_states(n->model, b->N, 0), sc = recur_model_states(n->model, b->N, 1);
    struct recur_mem dhT_in, dcT_in, dh0, dc0;
    const struct recur_dev_arg a[] = {
        {"grad->dhT", g->dhT, st, 0, &dhT_in}, {"grad->dcT", g->dcT, sc, 0, &dcT_in},
        {"grad->dh0", g->dh0, st, 1, &dh0},    {"grad->dc0", g->dc0, sc, 1, &dc0},
    };
    TRY(recur_dev_args(n->ctx, fn, a, RECUR_COUNT(a), 1));
    recur_dev_args_written(a, RECUR_COUNT(a));
    struct recur_backend *be = &n->ctx->be;
    const struct net_plan *p = &n->pl;
    /* into the scratch: the head adds its gradient to dhT there */
    if (g->dhT) TRY(recur_be_copy(be, scratch(n, p->dhT), dhT_in, st * sizeof(float)));
    else TRY(recur_be_fill(be, scratch(n, p->dhT), 0.0f, st));
    if (n->S > 1) {
        if (g->dcT) TRY(recur_be_copy(be, scratch(n, p->dcT), dcT_in, sc * sizeof(float)));
        else TRY(recur_be_fill(be, scratch(n, p->dcT), 0.0f, sc));
    }
    TRY(recur_net_run_backward(n, b->T, b->N, b->lengths, b->h0 != NULL, b->c0 != NULL, g->dh0 != NULL,
                               g->dc0 != NULL, mode));
    if (g->dh0) TRY(recur_be_copy(be, dh0, scratch(n, p->dh0), st * sizeof(float)));
    if (g->dc0) TRY(recur_be_copy(be, dc0, scratch(n, p->dc0), sc * sizeof(float)));
    return RECUR_OK;
}
