/*
 * trainfile.c: training files (recur-train.h): nets, optimizer state and
 * the caller's extra tensors in one safetensors document, read and written
 * by modelfile.c's checked reader and atomic writer.
 *
 *   metadata  "<prefix>cell", "<prefix>hidden_size", ... (a net's settings),
 *             "optim.kind", "optim.steps", ..., and the caller's keys
 *   tensors   "<prefix>embedding.weight", "<prefix>rnn.weight_ih_l0", ...,
 *             "optim.<prefix><group>.m" / ".v", and the caller's
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

struct recur_file {
    struct recur_sf_doc doc;
};

#define FERR(st, ...) recur_err(NULL, (st), __VA_ARGS__)

recur_status recur_file_create(recur_file **out) {
    RETURN_IF(!out, NULL, RECUR_ERR_NULL, "recur_file_create: out is NULL");
    *out = calloc(1, sizeof **out);
    RETURN_IF(!*out, NULL, RECUR_ERR_NO_MEMORY, "recur_file_create: out of memory");
    return RECUR_OK;
}

recur_status recur_file_open(const char *path, recur_file **out) {
    RETURN_IF(!path || !out, NULL, RECUR_ERR_NULL, "recur_file_open: %s is NULL", path ? "out" : "path");
    *out = NULL;
    recur_file *f = calloc(1, sizeof *f);
    RETURN_IF(!f, NULL, RECUR_ERR_NO_MEMORY, "recur_file_open: out of memory");
    recur_status st = recur_sf_doc_read(NULL, path, 0, &f->doc);
    if (st != RECUR_OK) {
        free(f);
        return st;
    }
    *out = f;
    return RECUR_OK;
}

recur_status recur_file_open_memory(const char *name, const void *buf, size_t len, recur_file **out) {
    *out = NULL;
    recur_file *f = calloc(1, sizeof *f);
    RETURN_IF(!f, NULL, RECUR_ERR_NO_MEMORY, "recur_file_open: out of memory");
    recur_status st = recur_sf_doc_parse(NULL, name, buf, len, 0, &f->doc);
    if (st != RECUR_OK) {
        free(f);
        return st;
    }
    *out = f;
    return RECUR_OK;
}

void recur_file_free(recur_file *f) {
    if (!f) return;
    recur_sf_doc_free(&f->doc);
    free(f);
}

recur_status recur_file_save(const recur_file *f, const char *path) {
    RETURN_IF(!f || !path, NULL, RECUR_ERR_NULL, "recur_file_save: %s is NULL", f ? "path" : "file");
    RETURN_IF(!*path, NULL, RECUR_ERR_ARG, "recur_file_save: path is empty");
    return recur_sf_doc_write(NULL, path, &f->doc);
}

/* ---- metadata ---- */

const char *recur_file_meta(const recur_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->doc.n_meta; i++)
        if (!strcmp(f->doc.meta_k[i], key)) return f->doc.meta_v[i];
    return NULL;
}

recur_status recur_file_put_meta(recur_file *f, const char *key, const char *value) {
    RETURN_IF(!f || !key || !value, NULL, RECUR_ERR_NULL, "recur_file_put_meta: %s is NULL",
              !f ? "file" : !key ? "key" : "value");
    RETURN_IF(!*key, NULL, RECUR_ERR_ARG, "recur_file_put_meta: key is empty");
    struct recur_sf_doc *d = &f->doc;
    char *v = strdup(value);
    RETURN_IF(!v, NULL, RECUR_ERR_NO_MEMORY, "recur_file_put_meta: out of memory");
    for (size_t i = 0; i < d->n_meta; i++)
        if (!strcmp(d->meta_k[i], key)) {
            free(d->meta_v[i]);
            d->meta_v[i] = v;
            return RECUR_OK;
        }
    char *k = strdup(key);
    char **nk = realloc(d->meta_k, (d->n_meta + 1) * sizeof *nk);
    if (nk) d->meta_k = nk;
    char **nv = nk ? realloc(d->meta_v, (d->n_meta + 1) * sizeof *nv) : NULL;
    if (nv) d->meta_v = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return FERR(RECUR_ERR_NO_MEMORY, "recur_file_put_meta: out of memory");
    }
    d->meta_k[d->n_meta] = k;
    d->meta_v[d->n_meta] = v;
    d->n_meta++;
    return RECUR_OK;
}

static recur_status put_metaf(recur_file *f, const char *prefix, const char *key, const char *fmt, ...)
    RECUR_PRINTF(4, 5);
static recur_status put_metaf(recur_file *f, const char *prefix, const char *key, const char *fmt, ...) {
    char k[160], v[160];
    snprintf(k, sizeof k, "%s%s", prefix, key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    return recur_file_put_meta(f, k, v);
}

/* ---- tensors ---- */

static struct recur_sf_tensor *find(const recur_file *f, const char *name) {
    for (size_t i = 0; i < f->doc.n; i++)
        if (!strcmp(f->doc.t[i].name, name)) return &f->doc.t[i];
    return NULL;
}

recur_status recur_file_put_tensor(recur_file *f, const char *name, int ndim, const int64_t *shape,
                                   const float *data) {
    RETURN_IF(!f || !name || !shape || !data, NULL, RECUR_ERR_NULL, "recur_file_put_tensor: %s is NULL",
              !f ? "file" : !name ? "name" : !shape ? "shape" : "data");
    RETURN_IF(!*name || !strcmp(name, "__metadata__"), NULL, RECUR_ERR_ARG, "recur_file_put_tensor: bad name '%s'",
              name);
    RETURN_IF(strlen(name) >= 95, NULL, RECUR_ERR_ARG, "recur_file_put_tensor: name '%.40s...' is over 94 bytes", name);
    RETURN_IF(ndim < 1 || ndim > 4, NULL, RECUR_ERR_ARG, "recur_file_put_tensor '%s': ndim %d: must be 1..4", name,
              ndim);
    size_t count = 1;
    for (int k = 0; k < ndim; k++) {
        RETURN_IF(shape[k] < 0 || (shape[k] && count > (SIZE_MAX / 8) / (size_t)shape[k]), NULL, RECUR_ERR_ARG,
                  "recur_file_put_tensor '%s': shape[%d] is %" PRId64, name, k, shape[k]);
        count *= (size_t)shape[k];
    }
    float *copy = malloc(count ? count * sizeof *copy : 1);
    RETURN_IF(!copy, NULL, RECUR_ERR_NO_MEMORY, "recur_file_put_tensor '%s': out of memory", name);
    memcpy(copy, data, count * sizeof *copy);
    struct recur_sf_tensor *t = find(f, name);
    if (!t) {
        struct recur_sf_tensor *nt = realloc(f->doc.t, (f->doc.n + 1) * sizeof *nt);
        char *nm = nt ? strdup(name) : NULL;
        if (nt) f->doc.t = nt;
        if (!nm) {
            free(copy);
            return FERR(RECUR_ERR_NO_MEMORY, "recur_file_put_tensor '%s': out of memory", name);
        }
        t = &f->doc.t[f->doc.n++];
        memset(t, 0, sizeof *t);
        t->name = nm;
    }
    free(t->data);
    t->data = copy;
    t->count = count;
    t->ndim = ndim;
    for (int k = 0; k < 4; k++) t->shape[k] = k < ndim ? shape[k] : 0;
    return RECUR_OK;
}

recur_status recur_file_tensor(const recur_file *f, const char *name, int *ndim, int64_t shape[4], float *data,
                               size_t count) {
    RETURN_IF(!f || !name, NULL, RECUR_ERR_NULL, "recur_file_tensor: %s is NULL", f ? "name" : "file");
    const struct recur_sf_tensor *t = find(f, name);
    RETURN_IF(!t, NULL, RECUR_ERR_FILE_MISSING, "training file: no tensor '%s'", name);
    if (ndim) *ndim = t->ndim;
    if (shape)
        for (int k = 0; k < 4; k++) shape[k] = t->shape[k];
    if (data) {
        RETURN_IF(count != t->count, NULL, RECUR_ERR_FILE_SHAPE,
                  "training file: tensor '%s' has %zu values, the caller expects %zu", name, t->count, count);
        memcpy(data, t->data, count * sizeof *data);
    }
    return RECUR_OK;
}

/* ---- nets ---- */

static const char *const dir_names[] = {"forward", "reverse", "bidi_concat", "bidi_sum"};
static const char *const loss_names[] = {"xent", "mse"};

static const char *pfx(const char *prefix) { return prefix ? prefix : ""; }

recur_status recur_file_put_net(recur_file *f, const char *prefix, const recur_net *net) {
    RETURN_IF(!f || !net, NULL, RECUR_ERR_NULL, "recur_file_put_net: %s is NULL", f ? "net" : "file");
    prefix = pfx(prefix);
    RETURN_IF(strlen(prefix) > 40, NULL, RECUR_ERR_ARG, "recur_file_put_net: prefix '%s' is over 40 bytes", prefix);
    const recur_net_desc *d = &net->desc;
    TRY(put_metaf(f, prefix, "format", "recur-train"));
    TRY(put_metaf(f, prefix, "recur_version", "%s", RECUR_VERSION_STRING));
    TRY(put_metaf(f, prefix, "cell", "%s", d->model.cell));
    TRY(put_metaf(f, prefix, "variant", "%s", d->model.variant ? d->model.variant : ""));
    TRY(put_metaf(f, prefix, "input_size", "%d", d->model.input_size));
    TRY(put_metaf(f, prefix, "hidden_size", "%d", d->model.hidden_size));
    TRY(put_metaf(f, prefix, "num_layers", "%d", d->model.num_layers));
    TRY(put_metaf(f, prefix, "direction", "%s", dir_names[d->model.direction]));
    TRY(put_metaf(f, prefix, "dropout", "%.9g", (double)d->model.dropout));
    TRY(put_metaf(f, prefix, "seed", "%" PRIu64, d->model.seed));
    TRY(put_metaf(f, prefix, "dropout_calls", "%" PRIu64, net->model->calls));
    TRY(put_metaf(f, prefix, "input", "%s", recur_net_input_name(d->input)));
    TRY(put_metaf(f, prefix, "vocab", "%d", d->vocab));
    TRY(put_metaf(f, prefix, "head", "%s", recur_net_head_name(d->head)));
    TRY(put_metaf(f, prefix, "output_size", "%d", d->output_size));
    TRY(put_metaf(f, prefix, "loss", "%s", loss_names[d->loss]));
    size_t np = recur_net_param_count(net), maxc = 1;
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        TRY(recur_net_param_info(net, i, &info));
        if (info.count > maxc) maxc = info.count;
    }
    float *v = malloc(maxc * sizeof *v);
    RETURN_IF(!v, NULL, RECUR_ERR_NO_MEMORY, "recur_file_put_net: out of memory");
    recur_status st = RECUR_OK;
    for (size_t i = 0; i < np && st == RECUR_OK; i++) {
        recur_param_info info;
        char name[128];
        if ((st = recur_net_param_info(net, i, &info)) != RECUR_OK) break;
        if ((st = recur_net_param_get(net, info.name, v, info.count)) != RECUR_OK) break;
        snprintf(name, sizeof name, "%s%s", prefix, info.name);
        int64_t shape[2] = {info.rows, info.cols};
        st = recur_file_put_tensor(f, name, info.ndim, shape, v);
    }
    free(v);
    return st;
}

/* A metadata value under the prefix, required. */
static recur_status need(const recur_file *f, const char *prefix, const char *key, const char **out) {
    char k[160];
    snprintf(k, sizeof k, "%s%s", prefix, key);
    *out = recur_file_meta(f, k);
    RETURN_IF(!*out, NULL, RECUR_ERR_FILE_METADATA, "training file: no __metadata__ key '%s'", k);
    return RECUR_OK;
}

static recur_status need_int(const recur_file *f, const char *prefix, const char *key, long long lo, long long hi,
                             long long *out) {
    const char *s;
    TRY(need(f, prefix, key, &s));
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    RETURN_IF(!*s || *end || errno || v < lo || v > hi, NULL, RECUR_ERR_FILE_METADATA,
              "training file: __metadata__ '%s%s' is '%.40s', not an integer in %lld..%lld", prefix, key, s, lo, hi);
    *out = v;
    return RECUR_OK;
}

static recur_status need_u64(const recur_file *f, const char *prefix, const char *key, uint64_t *out) {
    const char *s;
    TRY(need(f, prefix, key, &s));
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    RETURN_IF(!*s || *s == '-' || *end || errno, NULL, RECUR_ERR_FILE_METADATA,
              "training file: __metadata__ '%s%s' is '%.40s', not an unsigned integer", prefix, key, s);
    *out = v;
    return RECUR_OK;
}

static recur_status need_float(const recur_file *f, const char *prefix, const char *key, float *out) {
    const char *s;
    TRY(need(f, prefix, key, &s));
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    RETURN_IF(!*s || *end || errno || !isfinite(v), NULL, RECUR_ERR_FILE_METADATA,
              "training file: __metadata__ '%s%s' is '%.40s', not a finite number", prefix, key, s);
    *out = v;
    return RECUR_OK;
}

static recur_status need_name(const recur_file *f, const char *prefix, const char *key, const char *const *names,
                              int n, int *out) {
    const char *s;
    TRY(need(f, prefix, key, &s));
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return RECUR_OK;
        }
    return FERR(RECUR_ERR_FILE_METADATA, "training file: __metadata__ '%s%s' is '%.40s', not one recur knows", prefix,
                key, s);
}

/* Whether a tensor name, after the prefix, is a net's (embedding., rnn., head.). */
static int is_net_tensor(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n)) return 0;
    name += n;
    return !strncmp(name, "embedding.", 10) || !strncmp(name, "rnn.", 4) || !strncmp(name, "head.", 5);
}

/* Tensor prefix+name must exist, 2-D, with `cols` columns (and `rows` rows when rows > 0). */
static recur_status want2(const recur_file *f, const char *prefix, const char *name, int64_t rows, int64_t cols) {
    char full[160], need[48];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const struct recur_sf_tensor *t = find(f, full);
    RETURN_IF(!t, NULL, RECUR_ERR_FILE_MISSING, "training file: no tensor '%s' (the net's settings need it)", full);
    if (t->ndim == 2 && t->shape[1] == cols && (rows <= 0 || t->shape[0] == rows)) return RECUR_OK;
    if (rows > 0) snprintf(need, sizeof need, "[%" PRId64 ", %" PRId64 "]", rows, cols);
    else snprintf(need, sizeof need, "[*, %" PRId64 "]", cols);
    return FERR(RECUR_ERR_FILE_SHAPE, "training file: tensor '%s' has %d dimensions ([%" PRId64 ", ...]), the settings need %s",
                full, t->ndim, t->shape[0], need);
}

static recur_status check_sizes(const recur_file *f, const char *prefix, const recur_net_desc *d) {
    if (d->input == RECUR_INPUT_EMBEDDING)
        TRY(want2(f, prefix, "embedding.weight", d->vocab, d->model.input_size));
    int F = d->model.hidden_size * (d->model.direction == RECUR_DIR_BIDI_CONCAT ? 2 : 1);
    if (d->head != RECUR_HEAD_NONE) TRY(want2(f, prefix, "head.weight", d->output_size, F));
    for (int l = 0; l < d->model.num_layers; l++) {
        char name[48];
        snprintf(name, sizeof name, "rnn.weight_hh_l%d", l);
        TRY(want2(f, prefix, name, 0, d->model.hidden_size));
        snprintf(name, sizeof name, "rnn.weight_ih_l%d", l);
        TRY(want2(f, prefix, name, 0, l == 0 ? d->model.input_size : F));
    }
    return RECUR_OK;
}

recur_status recur_file_get_net(const recur_file *f, const char *prefix, recur_ctx *ctx, uint32_t flags,
                                recur_net **out) {
    RETURN_IF(!f || !ctx || !out, NULL, RECUR_ERR_NULL, "recur_file_get_net: %s is NULL",
              !f ? "file" : !ctx ? "ctx" : "out");
    *out = NULL;
    prefix = pfx(prefix);
    const char *fmt, *cell, *variant;
    TRY(need(f, prefix, "format", &fmt));
    RETURN_IF(strcmp(fmt, "recur-train"), NULL, RECUR_ERR_FILE_METADATA,
              "training file: '%sformat' is '%.40s', not 'recur-train'", prefix, fmt);
    TRY(need(f, prefix, "cell", &cell));
    TRY(need(f, prefix, "variant", &variant));
    recur_net_desc d = {0};
    long long v = 0;
    int e = 0;
    d.model.cell = cell;
    d.model.variant = *variant ? variant : NULL;
    TRY(need_int(f, prefix, "input_size", 1, 1 << 24, &v));
    d.model.input_size = (int)v;
    TRY(need_int(f, prefix, "hidden_size", 1, 1 << 24, &v));
    d.model.hidden_size = (int)v;
    TRY(need_int(f, prefix, "num_layers", 1, 64, &v));
    d.model.num_layers = (int)v;
    TRY(need_name(f, prefix, "direction", dir_names, 4, &e));
    d.model.direction = (recur_direction)e;
    TRY(need_float(f, prefix, "dropout", &d.model.dropout));
    TRY(need_u64(f, prefix, "seed", &d.model.seed));
    uint64_t calls;
    TRY(need_u64(f, prefix, "dropout_calls", &calls));
    static const char *const inputs[] = {"vector", "embedding", "onehot"}, *const heads[] = {"all", "last", "none"};
    TRY(need_name(f, prefix, "input", inputs, 3, &e));
    d.input = (recur_input)e;
    TRY(need_int(f, prefix, "vocab", 0, 1 << 24, &v));
    d.vocab = (int)v;
    TRY(need_name(f, prefix, "head", heads, 3, &e));
    d.head = (recur_head)e;
    TRY(need_int(f, prefix, "output_size", 0, 1 << 24, &v));
    d.output_size = (int)v;
    TRY(need_name(f, prefix, "loss", loss_names, 2, &e));
    d.loss = (recur_loss)e;

    /* The metadata decides how much the net allocates: before making it,
     * check that the file holds its big tensors, so a small file cannot
     * claim a huge net. */
    TRY(check_sizes(f, prefix, &d));
    recur_net *net;
    recur_status st = recur_net_create(ctx, &d, &net);
    if (st != RECUR_OK) {
        /* A missing plugin keeps its status; anything else is the file's settings. */
        if (st != RECUR_ERR_UNKNOWN_CELL && st != RECUR_ERR_UNKNOWN_NAME && st != RECUR_ERR_NO_MEMORY &&
            st != RECUR_ERR_DEVICE_MEMORY)
            st = RECUR_ERR_FILE_METADATA;
        char msg[RECUR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", recur_ctx_error(ctx));
        return FERR(st, "training file: the net under '%s' cannot be made: %s", prefix, msg);
    }
    size_t np = recur_net_param_count(net), matched = 0;
    for (size_t i = 0; i < np && st == RECUR_OK; i++) {
        recur_param_info info;
        char name[128];
        if ((st = recur_net_param_info(net, i, &info)) != RECUR_OK) break;
        snprintf(name, sizeof name, "%s%s", prefix, info.name);
        const struct recur_sf_tensor *t = find(f, name);
        if (!t) {
            st = FERR(RECUR_ERR_FILE_MISSING, "training file: no tensor '%s' (the net needs it)", name);
            break;
        }
        int ok = t->ndim == info.ndim && t->shape[0] == info.rows && (info.ndim == 1 || t->shape[1] == info.cols);
        if (!ok) {
            st = FERR(RECUR_ERR_FILE_SHAPE, "training file: tensor '%s' has shape [%" PRId64 "%s%" PRId64 "], the net's is [%d%s%d]",
                      name, t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? t->shape[1] : (int64_t)0, info.rows,
                      info.ndim > 1 ? ", " : "", info.ndim > 1 ? info.cols : 0);
            break;
        }
        if (flags & RECUR_LOAD_CHECK_FINITE)
            for (size_t k = 0; k < t->count; k++)
                if (!isfinite(t->data[k])) {
                    st = FERR(RECUR_ERR_FILE_NONFINITE, "training file: tensor '%s' element %zu is %s", name, k,
                              isnan(t->data[k]) ? "NaN" : "infinite");
                    break;
                }
        if (st == RECUR_OK) st = recur_net_param_set(net, info.name, t->data, t->count);
        matched++;
    }
    if (st == RECUR_OK) {
        size_t under = 0;
        const char *extra = NULL;
        for (size_t i = 0; i < f->doc.n; i++)
            if (is_net_tensor(f->doc.t[i].name, prefix)) {
                under++;
                char name[128];
                int known = 0;
                for (size_t j = 0; j < np && !known; j++) {
                    recur_param_info info;
                    recur_net_param_info(net, j, &info);
                    snprintf(name, sizeof name, "%s%s", prefix, info.name);
                    known = !strcmp(name, f->doc.t[i].name);
                }
                if (!known && !extra) extra = f->doc.t[i].name;
            }
        if (extra || under != matched)
            st = FERR(RECUR_ERR_FILE_EXTRA, "training file: tensor '%s' is not one of the net's", extra ? extra : "?");
    }
    if (st != RECUR_OK) {
        recur_net_free(net);
        return st;
    }
    net->model->calls = calls;
    *out = net;
    return RECUR_OK;
}

/* ---- optimizers ---- */

static const char *const optim_names[] = {"sgd", "adam"};

static const char *net_prefix(const char *const *prefixes, int i) { return prefixes ? pfx(prefixes[i]) : ""; }

recur_status recur_file_put_optim(recur_file *f, const recur_optim *o, const char *const *prefixes) {
    RETURN_IF(!f || !o, NULL, RECUR_ERR_NULL, "recur_file_put_optim: %s is NULL", f ? "optimizer" : "file");
    RETURN_IF(!prefixes && o->n_nets > 1, NULL, RECUR_ERR_NULL,
              "recur_file_put_optim: prefixes is NULL, but the optimizer has %d nets", o->n_nets);
    const recur_optim_desc *d = &o->d;
    TRY(put_metaf(f, "optim.", "kind", "%s", optim_names[d->kind]));
    TRY(put_metaf(f, "optim.", "lr", "%.9g", (double)d->lr));
    TRY(put_metaf(f, "optim.", "momentum", "%.9g", (double)d->momentum));
    TRY(put_metaf(f, "optim.", "beta1", "%.9g", (double)d->beta1));
    TRY(put_metaf(f, "optim.", "beta2", "%.9g", (double)d->beta2));
    TRY(put_metaf(f, "optim.", "eps", "%.9g", (double)d->eps));
    TRY(put_metaf(f, "optim.", "weight_decay", "%.9g", (double)d->weight_decay));
    TRY(put_metaf(f, "optim.", "clip_norm", "%.9g", (double)d->clip_norm));
    TRY(put_metaf(f, "optim.", "steps", "%lld", o->steps));
    TRY(put_metaf(f, "optim.", "groups", "%zu", o->n_groups));
    struct recur_backend *be = &o->ctx->be;
    recur_status st = RECUR_OK;
    for (size_t i = 0; i < o->n_groups && st == RECUR_OK; i++) {
        const struct optim_group *g = &o->g[i];
        float *v = malloc(g->count * sizeof *v);
        RETURN_IF(!v, NULL, RECUR_ERR_NO_MEMORY, "recur_file_put_optim: out of memory");
        for (int k = 0; k < 2 && st == RECUR_OK; k++) {
            if (k == 1 && d->kind != RECUR_OPTIM_ADAM) break;
            char name[160];
            snprintf(name, sizeof name, "optim.%s%s.%s", net_prefix(prefixes, g->net), g->name, k ? "v" : "m");
            int64_t shape[1] = {(int64_t)g->count};
            st = recur_be_read(be, v, k ? g->v : g->m, g->count * sizeof *v);
            if (st == RECUR_OK) st = recur_file_put_tensor(f, name, 1, shape, v);
        }
        free(v);
    }
    return st;
}

recur_status recur_file_get_optim(const recur_file *f, recur_optim *o, const char *const *prefixes) {
    RETURN_IF(!f || !o, NULL, RECUR_ERR_NULL, "recur_file_get_optim: %s is NULL", f ? "optimizer" : "file");
    RETURN_IF(!prefixes && o->n_nets > 1, NULL, RECUR_ERR_NULL,
              "recur_file_get_optim: prefixes is NULL, but the optimizer has %d nets", o->n_nets);
    int kind = 0;
    long long steps = 0, groups = 0;
    TRY(need_name(f, "optim.", "kind", optim_names, 2, &kind));
    RETURN_IF(kind != (int)o->d.kind, NULL, RECUR_ERR_FILE_METADATA,
              "training file: the optimizer state is %s's, this optimizer is %s", optim_names[kind],
              optim_names[o->d.kind]);
    TRY(need_int(f, "optim.", "steps", 0, INT64_MAX, &steps));
    TRY(need_int(f, "optim.", "groups", 0, 1 << 20, &groups));
    RETURN_IF((size_t)groups != o->n_groups, NULL, RECUR_ERR_FILE_METADATA,
              "training file: the optimizer state has %lld parameter groups, this optimizer %zu", groups, o->n_groups);
    /* Check everything before writing anything. */
    const struct recur_sf_tensor **t = calloc(o->n_groups * 2 + 1, sizeof *t);
    RETURN_IF(!t, NULL, RECUR_ERR_NO_MEMORY, "recur_file_get_optim: out of memory");
    recur_status st = RECUR_OK;
    for (size_t i = 0; i < o->n_groups && st == RECUR_OK; i++)
        for (int k = 0; k < (o->d.kind == RECUR_OPTIM_ADAM ? 2 : 1) && st == RECUR_OK; k++) {
            const struct optim_group *g = &o->g[i];
            char name[160];
            snprintf(name, sizeof name, "optim.%s%s.%s", net_prefix(prefixes, g->net), g->name, k ? "v" : "m");
            t[2 * i + k] = find(f, name);
            if (!t[2 * i + k]) st = FERR(RECUR_ERR_FILE_MISSING, "training file: no tensor '%s'", name);
            else if (t[2 * i + k]->count != g->count)
                st = FERR(RECUR_ERR_FILE_SHAPE, "training file: tensor '%s' has %zu values, the optimizer's %zu", name,
                          t[2 * i + k]->count, g->count);
        }
    struct recur_backend *be = &o->ctx->be;
    for (size_t i = 0; i < o->n_groups && st == RECUR_OK; i++)
        for (int k = 0; k < 2 && st == RECUR_OK; k++)
            if (t[2 * i + k])
                st = recur_be_write(be, k ? o->g[i].v : o->g[i].m, t[2 * i + k]->data, o->g[i].count * sizeof(float));
    free(t);
    if (st == RECUR_OK) o->steps = steps;
    return st;
}
