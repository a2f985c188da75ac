/*
 * trainfile.c: training files (recur-train.h): nets, optimizer state and
 * the caller's extra tensors in one safetensors document, read and written
 * by core/safetensors.c's checked reader and atomic writer.
 *
 *   metadata  "<prefix>cell", "<prefix>hidden_size", ... (a net's model, in
 *             the keys of core/schema.h, "<prefix>format" "recur-train"),
 *             "<prefix>dropout_calls", "<prefix>input", ... (the rest of it),
 *             "optim.kind", "optim.steps", ..., and the caller's keys
 *   tensors   "<prefix>embedding.weight", "<prefix>rnn.weight_ih_l0", ...,
 *             "optim.<prefix><group>.m" / ".v", and the caller's
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "schema.h"

#define WHAT "training file"

struct recur_file {
    struct recur_sf_doc doc;
    char *name; /* the file it was read from, for messages */
};

#define FERR(st, ...) recur_err(NULL, (st), __VA_ARGS__)

/* How messages name the file. */
static const char *name_of(const recur_file *f) { return f->name ? f->name : "(not saved)"; }

/* A message "training file '<name>': <detail>". */
static recur_status ferr(const recur_file *f, recur_status st, const char *fmt, ...) RECUR_PRINTF(3, 4);
static recur_status ferr(const recur_file *f, recur_status st, const char *fmt, ...) {
    char detail[RECUR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return recur_err(NULL, st, WHAT " '%s': %s", name_of(f), detail);
}

/* The metadata under prefix, for core/schema.h's readers. */
static struct recur_meta_in meta_in(const recur_file *f, const char *prefix) {
    return (struct recur_meta_in){NULL, &f->doc.meta, WHAT, name_of(f), prefix};
}

recur_status recur_file_create(recur_file **out) {
    RETURN_IF(!out, NULL, RECUR_ERR_NULL, "recur_file_create: out is NULL");
    *out = calloc(1, sizeof **out);
    RETURN_IF(!*out, NULL, RECUR_ERR_NO_MEMORY, "recur_file_create: out of memory");
    return RECUR_OK;
}

recur_status recur_file_open(const char *path, recur_file **out) {
    RETURN_IF(!path || !out, NULL, RECUR_ERR_NULL, "recur_file_open: %s is NULL", path ? "out" : "path");
    *out = NULL;
    uint8_t *buf;
    size_t len;
    TRY(recur_sf_read_all(NULL, WHAT, path, &buf, &len));
    recur_status st = recur_file_open_memory(path, buf, len, out);
    free(buf);
    return st;
}

recur_status recur_file_open_memory(const char *name, const void *buf, size_t len, recur_file **out) {
    *out = NULL;
    recur_file *f = calloc(1, sizeof *f);
    if (f) f->name = strdup(name);
    if (!f || !f->name) {
        free(f);
        return FERR(RECUR_ERR_NO_MEMORY, "recur_file_open: out of memory");
    }
    recur_status st = recur_sf_doc_parse(NULL, WHAT, name, buf, len, 0, &f->doc);
    if (st != RECUR_OK) {
        recur_file_free(f);
        return st;
    }
    *out = f;
    return RECUR_OK;
}

void recur_file_free(recur_file *f) {
    if (!f) return;
    recur_sf_doc_free(&f->doc);
    free(f->name);
    free(f);
}

recur_status recur_file_save(const recur_file *f, const char *path) {
    RETURN_IF(!f || !path, NULL, RECUR_ERR_NULL, "recur_file_save: %s is NULL", f ? "path" : "file");
    RETURN_IF(!*path, NULL, RECUR_ERR_ARG, "recur_file_save: path is empty");
    return recur_sf_doc_write(NULL, "recur_file_save", path, &f->doc);
}

/* ---- metadata ---- */

const char *recur_file_meta(const recur_file *f, const char *key) {
    return f && key ? recur_sf_meta_get(&f->doc.meta, key) : NULL;
}

recur_status recur_file_put_meta(recur_file *f, const char *key, const char *value) {
    RETURN_IF(!f || !key || !value, NULL, RECUR_ERR_NULL, "recur_file_put_meta: %s is NULL",
              !f ? "file" : !key ? "key" : "value");
    RETURN_IF(!*key, NULL, RECUR_ERR_ARG, "recur_file_put_meta: key is empty");
    return recur_sf_meta_put(&f->doc.meta, key, value);
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
    if (!t) return ferr(f, RECUR_ERR_FILE_MISSING, "no tensor '%s'", name);
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

static const char *const loss_names[] = {"xent", "mse"};

static const char *pfx(const char *prefix) { return prefix ? prefix : ""; }

recur_status recur_file_put_net(recur_file *f, const char *prefix, const recur_net *net) {
    RETURN_IF(!f || !net, NULL, RECUR_ERR_NULL, "recur_file_put_net: %s is NULL", f ? "net" : "file");
    prefix = pfx(prefix);
    RETURN_IF(strlen(prefix) > 40, NULL, RECUR_ERR_ARG, "recur_file_put_net: prefix '%s' is over 40 bytes", prefix);
    const recur_net_desc *d = &net->desc;
    struct recur_sf_meta *m = &f->doc.meta;
    TRY(recur_schema_put_model(m, prefix, "recur-train", &d->model));
    TRY(recur_meta_put_uint(m, prefix, "dropout_calls", net->model->calls));
    TRY(recur_meta_put(m, prefix, "input", recur_net_input_name(d->input)));
    TRY(recur_meta_put_uint(m, prefix, "vocab", (uint64_t)d->vocab));
    TRY(recur_meta_put(m, prefix, "head", recur_net_head_name(d->head)));
    TRY(recur_meta_put_uint(m, prefix, "output_size", (uint64_t)d->output_size));
    TRY(recur_meta_put(m, prefix, "loss", loss_names[d->loss]));
    size_t np = recur_net_param_count(net);
    float *v = recur_net_param_buffer(net);
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

/* NaN or Inf in a tensor, or (nonneg) a negative value: FILE_NONFINITE naming it. */
static recur_status check_values(const recur_file *f, const struct recur_sf_tensor *t, int nonneg) {
    for (size_t k = 0; k < t->count; k++) {
        float v = t->data[k];
        if (isfinite(v) && (!nonneg || v >= 0)) continue;
        return ferr(f, RECUR_ERR_FILE_NONFINITE, "tensor '%s' element %zu is %s%s", t->name, k,
                    isnan(v) ? "NaN" : isinf(v) ? (v > 0 ? "+Inf" : "-Inf") : "negative",
                    isfinite(v) ? " (Adam's second moment cannot be)" : "");
    }
    return RECUR_OK;
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
    if (!t) return ferr(f, RECUR_ERR_FILE_MISSING, "no tensor '%s' (the net's settings need it)", full);
    if (t->ndim == 2 && t->shape[1] == cols && (rows <= 0 || t->shape[0] == rows)) return RECUR_OK;
    if (rows > 0) snprintf(need, sizeof need, "[%" PRId64 ", %" PRId64 "]", rows, cols);
    else snprintf(need, sizeof need, "[*, %" PRId64 "]", cols);
    return ferr(f, RECUR_ERR_FILE_SHAPE, "tensor '%s' has %d dimensions ([%" PRId64 ", ...]), the settings need %s",
                full, t->ndim, t->shape[0], need);
}

static recur_status check_sizes(const recur_file *f, const char *prefix, const recur_net_desc *d) {
    if (d->input == RECUR_INPUT_EMBEDDING)
        TRY(want2(f, prefix, "embedding.weight", d->vocab, d->model.input_size));
    int P = d->model.proj_size ? d->model.proj_size : d->model.hidden_size;
    int F = P * (d->model.direction == RECUR_DIR_BIDI_CONCAT ? 2 : 1);
    if (d->head != RECUR_HEAD_NONE) TRY(want2(f, prefix, "head.weight", d->output_size, F));
    /* The layers' 2-D tensors, as the cell has them (an unknown cell fails in recur_net_create). */
    const struct recur_cell *cell = d->model.cell ? recur_cell_find(d->model.cell) : NULL;
    for (int l = 0; cell && l < d->model.num_layers; l++) {
        struct recur_tensor t[RECUR_MAX_TENSORS];
        int nt = recur_cell_tensors(cell->desc, l == 0 ? (size_t)d->model.input_size : (size_t)F,
                                    (size_t)d->model.hidden_size, (size_t)d->model.proj_size, t);
        for (int k = 0; k < nt; k++) {
            char name[64];
            snprintf(name, sizeof name, "rnn.%s_l%d", t[k].name, l);
            if (t[k].ndim == 2) TRY(want2(f, prefix, name, 0, t[k].cols));
        }
    }
    return RECUR_OK;
}

recur_status recur_file_get_net(const recur_file *f, const char *prefix, recur_ctx *ctx, uint32_t flags,
                                recur_net **out) {
    RETURN_IF(!f || !ctx || !out, NULL, RECUR_ERR_NULL, "recur_file_get_net: %s is NULL",
              !f ? "file" : !ctx ? "ctx" : "out");
    *out = NULL;
    prefix = pfx(prefix);
    struct recur_meta_in in = meta_in(f, prefix);
    const char *fmt;
    TRY(recur_meta_str(&in, "format", &fmt));
    RETURN_IF(strcmp(fmt, "recur-train"), NULL, RECUR_ERR_FILE_METADATA,
              WHAT " '%s': __metadata__ %sformat '%.40s' is not 'recur-train'", in.path, prefix, fmt);
    recur_net_desc d = {0};
    TRY(recur_schema_get_model(&in, &d.model));
    uint64_t calls, v;
    int e = 0;
    TRY(recur_meta_uint(&in, "dropout_calls", 0, UINT64_MAX, &calls));
    static const char *const inputs[] = {"vector", "embedding", "onehot"}, *const heads[] = {"all", "last", "none"};
    TRY(recur_meta_name(&in, "input", inputs, 3, &e));
    d.input = (recur_input)e;
    TRY(recur_meta_uint(&in, "vocab", 0, 1 << 24, &v));
    d.vocab = (int)v;
    TRY(recur_meta_name(&in, "head", heads, 3, &e));
    d.head = (recur_head)e;
    TRY(recur_meta_uint(&in, "output_size", 0, 1 << 24, &v));
    d.output_size = (int)v;
    TRY(recur_meta_name(&in, "loss", loss_names, 2, &e));
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
        return ferr(f, st, "the net under '%s' cannot be made: %s", prefix, msg);
    }
    size_t np = recur_net_param_count(net), matched = 0;
    for (size_t i = 0; i < np && st == RECUR_OK; i++) {
        recur_param_info info;
        char name[128];
        if ((st = recur_net_param_info(net, i, &info)) != RECUR_OK) break;
        snprintf(name, sizeof name, "%s%s", prefix, info.name);
        const struct recur_sf_tensor *t = find(f, name);
        if (!t) {
            st = ferr(f, RECUR_ERR_FILE_MISSING, "no tensor '%s' (the net needs it)", name);
            break;
        }
        int ok = t->ndim == info.ndim && t->shape[0] == info.rows && (info.ndim == 1 || t->shape[1] == info.cols);
        if (!ok) {
            st = ferr(f, RECUR_ERR_FILE_SHAPE, "tensor '%s' has shape [%" PRId64 "%s%" PRId64 "], the net's is [%d%s%d]",
                      name, t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? t->shape[1] : (int64_t)0, info.rows,
                      info.ndim > 1 ? ", " : "", info.ndim > 1 ? info.cols : 0);
            break;
        }
        if (flags & RECUR_LOAD_CHECK_FINITE) st = check_values(f, t, 0);
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
            st = ferr(f, RECUR_ERR_FILE_EXTRA, "tensor '%s' is not one of the net's", extra ? extra : "?");
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
    struct recur_sf_meta *m = &f->doc.meta;
    TRY(recur_meta_put(m, "optim.", "kind", optim_names[d->kind]));
    const char *const keys[] = {"lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "clip_norm"};
    const float vals[] = {d->lr, d->momentum, d->beta1, d->beta2, d->eps, d->weight_decay, d->clip_norm};
    for (int k = 0; k < 7; k++) TRY(recur_meta_put_f32(m, "optim.", keys[k], vals[k]));
    TRY(recur_meta_put_uint(m, "optim.", "steps", (uint64_t)o->steps));
    TRY(recur_meta_put_uint(m, "optim.", "groups", o->n_groups));
    if (o->scaling) { /* the loss scale's state (GradScaler's scale and growth tracker) */
        TRY(recur_meta_put_uint(m, "optim.", "loss_scale_log2", (uint64_t)o->scale_log2));
        TRY(recur_meta_put_uint(m, "optim.", "loss_scale_good", (uint64_t)o->scale_good));
        TRY(recur_meta_put_uint(m, "optim.", "skipped", (uint64_t)o->skipped));
    }
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
    struct recur_meta_in in = meta_in(f, "optim.");
    int kind = 0;
    uint64_t steps = 0, groups = 0;
    TRY(recur_meta_name(&in, "kind", optim_names, 2, &kind));
    if (kind != (int)o->d.kind)
        return ferr(f, RECUR_ERR_FILE_METADATA, "the optimizer state is %s's, this optimizer is %s", optim_names[kind],
                    optim_names[o->d.kind]);
    TRY(recur_meta_uint(&in, "steps", 0, INT64_MAX, &steps));
    TRY(recur_meta_uint(&in, "groups", 0, 1 << 20, &groups));
    if (groups != o->n_groups)
        return ferr(f, RECUR_ERR_FILE_METADATA, "the optimizer state has %" PRIu64 " parameter groups, this optimizer %zu",
                    groups, o->n_groups);
    /* the loss scale's state, into an optimizer that scales (its setting is the caller's) */
    uint64_t log2 = 0, good = 0, skipped = 0;
    int scale = o->scaling && recur_meta_get(&in, "loss_scale_log2");
    if (scale) {
        TRY(recur_meta_uint(&in, "loss_scale_log2", 0, RECUR_SCALE_LOG2_MAX, &log2));
        TRY(recur_meta_uint(&in, "loss_scale_good", 0, INT64_MAX, &good));
        TRY(recur_meta_uint(&in, "skipped", 0, INT64_MAX, &skipped));
    }
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
            if (!t[2 * i + k]) st = ferr(f, RECUR_ERR_FILE_MISSING, "no tensor '%s'", name);
            else if (t[2 * i + k]->count != g->count)
                st = ferr(f, RECUR_ERR_FILE_SHAPE, "tensor '%s' has %zu values, the optimizer's %zu", name,
                          t[2 * i + k]->count, g->count);
            /* a NaN moment would only show later, as a diverged loss */
            else st = check_values(f, t[2 * i + k], k == 1);
        }
    struct recur_backend *be = &o->ctx->be;
    for (size_t i = 0; i < o->n_groups && st == RECUR_OK; i++)
        for (int k = 0; k < 2 && st == RECUR_OK; k++)
            if (t[2 * i + k])
                st = recur_be_write(be, k ? o->g[i].v : o->g[i].m, t[2 * i + k]->data, o->g[i].count * sizeof(float));
    free(t);
    if (st == RECUR_OK) o->steps = (long long)steps;
    if (st == RECUR_OK && scale) {
        o->scale_log2 = (int)log2;
        o->scale_good = (long long)good < o->growth_interval ? (long long)good : 0;
        o->skipped = (long long)skipped;
        recur_optim_tell_nets(o);
    }
    return st;
}
