/*
 * modelfile.c: model files in the safetensors format.
 *
 *   [8 bytes]  N, the header length, a little-endian u64
 *   [N bytes]  the header: a JSON object, padded with spaces to a multiple of 8
 *   [rest]     the data: every tensor's raw little-endian F32 values, C order
 *
 * The header maps each tensor name (the model's PyTorch names, see
 * recur_model_param_info) to {"dtype": "F32", "shape": [rows, cols] or [rows],
 * "data_offsets": [begin, end]}, offsets relative to the start of the data,
 * and "__metadata__" to an object of strings: recur's settings.
 *
 *   key            written   read by recur_model_load
 *   format         "recur"   optional, any value
 *   recur_version  "0.1.0"   optional, informational
 *   cell           "lstm"    required: a registered cell
 *   variant        "tanh"    optional: "" or absent is the cell's default
 *   input_size     "5"       required: decimal, 1..2^24
 *   hidden_size    "6"       required: decimal, 1..2^24
 *   num_layers     "2"       required: decimal, 1..RECUR_MAX_LAYERS
 *   direction      "bidi_concat"  required: forward, reverse, bidi_concat, bidi_sum
 *   dropout        "0.25"    optional (0): a decimal in [0, 1)
 *   seed           "42"      optional (0): decimal u64
 *
 * recur_model_load_weights needs no metadata (a plain state_dict file loads
 * into a model of the right shape); when the file has any of the required
 * keys it must have all of them, they must agree with the tensors, and cell,
 * variant and direction must be the model's (dropout and seed are training
 * settings of the model and are not compared).
 *
 * Reading never trusts the file. The whole file is read into memory, which is
 * also the host staging buffer: everything is validated (header, JSON, the
 * tensor list against the model, dtypes, offsets, size, finiteness) before a
 * single weight is written, and a device error while writing the weights
 * restores the previous ones. The checks run in this order, each with its
 * own status:
 *   1. size < 8: FILE_TRUNCATED; N > 100 MB or past the end: FILE_HEADER
 *   2. JSON syntax, a non-object, wrong field types, duplicate keys: FILE_JSON
 *   3. __metadata__ missing keys or malformed values: FILE_METADATA
 *   4. the tensor names against the model: FILE_MISSING, then FILE_EXTRA;
 *      shapes: FILE_SHAPE. For recur_model_load, "the model" is the one the
 *      metadata describes; when the tensors are consistent with another
 *      model the metadata disagrees with them: FILE_METADATA.
 *   5. dtype: FILE_DTYPE
 *   6. offsets reversed, not shape*4 bytes long, overlapping, leaving gaps or
 *      running past the end: FILE_OFFSETS; tensors packed from 0 that need
 *      more bytes than the file has: FILE_TRUNCATED
 *   7. (load_weights) metadata against the tensors and the model: FILE_METADATA
 *   8. NaN or Inf, with RECUR_LOAD_CHECK_FINITE: FILE_NONFINITE
 *
 * Writes are atomic: a temporary file next to the target, written, flushed,
 * fsynced and closed, then renamed over the target, then the directory
 * fsynced. Any failure removes the temporary file and leaves the target as
 * it was.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model.h"

#define HEADER_MAX 100000000u        /* bytes, the reference implementation's limit */
#define JSON_INT_MAX (1ull << 53)    /* the largest integer a JSON double holds exactly */
#define SIZE_LIMIT (1 << 24)         /* input_size and hidden_size read from a file */
#define NAME_MAX_LEN 48              /* recur_param_info.name */


static const char *const dir_names[] = {"forward", "reverse", "bidi_concat", "bidi_sum"};
static const char *const block_names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

/* ------------------------------------------------------------------------ */
/* messages                                                                  */

/* A copy of untrusted text for a message: at most 64 bytes, non-printable
 * bytes as '?'. */
static const char *clean(const char *s, char buf[72]) {
    size_t k = 0;
    for (; s && s[k] && k < 64; k++) buf[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    if (s && s[k]) buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = 0;
    return buf;
}

static recur_status ferr(recur_ctx *ctx, const char *path, recur_status st, const char *fmt, ...) RECUR_PRINTF(4, 5);
static recur_status ferr(recur_ctx *ctx, const char *path, recur_status st, const char *fmt, ...) {
    char detail[RECUR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return recur_err(ctx, st, "model file '%s': %s", path, detail);
}

/* "[24, 6]" */
static void shape_str(char *buf, size_t len, int ndim, const uint64_t *dims) {
    size_t u = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && i < 4 && u < len; i++)
        u += (size_t)snprintf(buf + u, len - u, "%s%" PRIu64, i ? ", " : "", dims[i]);
    if (ndim > 4 && u < len) u += (size_t)snprintf(buf + u, len - u, ", ...");
    if (u < len) snprintf(buf + u, len - u, "]");
}

/* ------------------------------------------------------------------------ */
/* numbers                                                                   */

static uint64_t get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static float get_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(u >> (8 * i));
}

/* A JSON number that must be an integer in 0..2^53. */
static int json_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!isfinite(v) || v < 0 || v > (double)JSON_INT_MAX || floor(v) != v) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* A decimal string of digits only, 0..max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    if (!s || !*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* Run strtof / snprintf in the "C" locale whatever the application set. */
struct c_numeric {
    locale_t loc, old;
};
static void c_numeric_begin(struct c_numeric *c) {
    c->loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    c->old = c->loc ? uselocale(c->loc) : (locale_t)0;
}
static void c_numeric_end(struct c_numeric *c) {
    if (!c->loc) return;
    uselocale(c->old);
    freelocale(c->loc);
}

/* A float in [0, 1) as a decimal string: the shortest that reads back as
 * exactly the same float. */
static void format_dropout(float p, char *buf, size_t len) {
    struct c_numeric c;
    c_numeric_begin(&c);
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)p);
        if (strtof(buf, NULL) == p) break;
    }
    c_numeric_end(&c);
}

static int parse_dropout(const char *s, float *out) {
    if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '.')) return 0;
    struct c_numeric c;
    c_numeric_begin(&c);
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    int ok = *end == 0 && errno == 0 && v >= 0.0f && v < 1.0f;
    c_numeric_end(&c);
    if (ok) *out = v;
    return ok;
}

/* ------------------------------------------------------------------------ */
/* the header                                                                */

struct sf_tensor {
    const char *name; /* into the cJSON tree */
    const char *dtype;
    int ndim;
    uint64_t dims[4]; /* the first four */
    uint64_t begin, end;
    int used; /* matched to a model tensor */
};

struct sf_file {
    const char *path;
    cJSON *root;
    const cJSON *meta; /* the __metadata__ object, or NULL */
    struct sf_tensor *t;
    struct sf_tensor **by_name; /* sorted by name */
    size_t n;
    const uint8_t *data;
    uint64_t data_len;
};

static void sf_free(struct sf_file *f) {
    cJSON_Delete(f->root);
    free(f->t);
    free(f->by_name);
    memset(f, 0, sizeof *f);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int by_name_cmp(const void *a, const void *b) {
    return strcmp((*(struct sf_tensor *const *)a)->name, (*(struct sf_tensor *const *)b)->name);
}

static struct sf_tensor *sf_find(const struct sf_file *f, const char *name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]->name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* One tensor entry: {"dtype": str, "shape": [int...], "data_offsets": [int, int]}. */
static recur_status parse_tensor(recur_ctx *ctx, const char *path, const cJSON *e, struct sf_tensor *t) {
    char nb[72];
    const char *nm = clean(e->string, nb);
    if (!cJSON_IsObject(e)) return ferr(ctx, path, RECUR_ERR_FILE_JSON, "tensor '%s' is not a JSON object", nm);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = !strcmp(c->string, "dtype") ? &dtype
                             : !strcmp(c->string, "shape") ? &shape
                             : !strcmp(c->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) continue; /* unknown keys are ignored, as by the reference implementation */
        if (*slot) return ferr(ctx, path, RECUR_ERR_FILE_JSON, "tensor '%s' has '%s' twice", nm, c->string);
        *slot = c;
    }
    if (!dtype || !shape || !offs)
        return ferr(ctx, path, RECUR_ERR_FILE_JSON, "tensor '%s' has no '%s'", nm,
                    !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dtype))
        return ferr(ctx, path, RECUR_ERR_FILE_JSON, "tensor '%s': dtype is not a string", nm);
    if (!cJSON_IsArray(shape))
        return ferr(ctx, path, RECUR_ERR_FILE_JSON, "tensor '%s': shape is not an array", nm);
    t->name = e->string;
    t->dtype = dtype->valuestring;
    t->ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        uint64_t v;
        if (!json_u64(d, &v))
            return ferr(ctx, path, RECUR_ERR_FILE_JSON,
                        "tensor '%s': shape[%d] is not an integer in 0..2^53", nm, t->ndim);
        if (t->ndim < 4) t->dims[t->ndim] = v;
        if (t->ndim == 1000) return ferr(ctx, path, RECUR_ERR_FILE_JSON, "tensor '%s': over 1000 dimensions", nm);
        t->ndim++;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_u64(offs->child, &t->begin) ||
        !json_u64(offs->child->next, &t->end))
        return ferr(ctx, path, RECUR_ERR_FILE_JSON,
                    "tensor '%s': data_offsets is not an array of two integers in 0..2^53", nm);
    return RECUR_OK;
}

/* Steps 1 and 2: the header length and the JSON. */
static recur_status sf_parse(recur_ctx *ctx, const char *path, const uint8_t *buf, size_t len, struct sf_file *f) {
    memset(f, 0, sizeof *f);
    f->path = path;
    if (len < 8)
        return ferr(ctx, path, RECUR_ERR_FILE_TRUNCATED, "%zu bytes, shorter than the 8-byte header length", len);
    uint64_t hl = get_le64(buf);
    if (hl > HEADER_MAX)
        return ferr(ctx, path, RECUR_ERR_FILE_HEADER, "header length %" PRIu64 " is absurdly large (the limit is %u)",
                    hl, HEADER_MAX);
    if (hl > len - 8)
        return ferr(ctx, path, RECUR_ERR_FILE_HEADER,
                    "header length %" PRIu64 " runs past the end of the file (%zu bytes after the length)", hl,
                    len - 8);
    const uint8_t *h = buf + 8;
    for (size_t i = 0; i < hl; i++)
        if (h[i] < 0x20 && h[i] != '\t' && h[i] != '\n' && h[i] != '\r')
            return ferr(ctx, path, RECUR_ERR_FILE_JSON, "control byte 0x%02x at header offset %zu", h[i], i);
    /* A NUL-terminated copy, so that the parser cannot read past the header. */
    char *json = malloc((size_t)hl + 1);
    RETURN_IF(!json, ctx, RECUR_ERR_NO_MEMORY, "model file '%s': out of memory for a %" PRIu64 "-byte header", path,
              hl);
    memcpy(json, h, (size_t)hl);
    json[hl] = 0;
    const char *end = NULL;
    /* cJSON keeps its last error in a global, written by every parse. */
    static pthread_mutex_t cjson_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&cjson_lock);
    f->root = cJSON_ParseWithLengthOpts(json, (size_t)hl, &end, 0);
    pthread_mutex_unlock(&cjson_lock);
    size_t at = end ? (size_t)(end - json) : 0;
    if (!f->root) {
        free(json);
        return ferr(ctx, path, RECUR_ERR_FILE_JSON, "the header is not valid JSON (at byte %zu of %" PRIu64 ")", at,
                    hl);
    }
    for (size_t i = at; i < hl; i++)
        if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' && json[i] != '\r') {
            free(json);
            sf_free(f);
            return ferr(ctx, path, RECUR_ERR_FILE_JSON, "the header has bytes after its JSON value (at byte %zu)", i);
        }
    free(json);
    f->data = buf + 8 + hl;
    f->data_len = (uint64_t)(len - 8 - (size_t)hl);

    recur_status st = RECUR_OK;
    GOTO_IF(!cJSON_IsObject(f->root), ctx, st, RECUR_ERR_FILE_JSON, fail,
            "model file '%s': the header is not a JSON object", path);
    size_t n = 0;
    for (const cJSON *e = f->root->child; e; e = e->next) n++;
    f->t = calloc(n ? n : 1, sizeof *f->t);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    GOTO_IF(!f->t || !f->by_name, ctx, st, RECUR_ERR_NO_MEMORY, fail, "model file '%s': out of memory for %zu tensors",
            path, n);
    for (const cJSON *e = f->root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            GOTO_IF(f->meta, ctx, st, RECUR_ERR_FILE_JSON, fail, "model file '%s': __metadata__ appears twice", path);
            GOTO_IF(!cJSON_IsObject(e), ctx, st, RECUR_ERR_FILE_JSON, fail,
                    "model file '%s': __metadata__ is not a JSON object", path);
            char kb[72];
            size_t nm = 0;
            for (const cJSON *m = e->child; m; m = m->next, nm++)
                GOTO_IF(!cJSON_IsString(m), ctx, st, RECUR_ERR_FILE_JSON, fail,
                        "model file '%s': __metadata__ value '%s' is not a string", path, clean(m->string, kb));
            /* duplicate keys, by sorting (a header may hold millions) */
            const char **keys = malloc((nm ? nm : 1) * sizeof *keys);
            GOTO_IF(!keys, ctx, st, RECUR_ERR_NO_MEMORY, fail, "model file '%s': out of memory", path);
            nm = 0;
            for (const cJSON *m = e->child; m; m = m->next) keys[nm++] = m->string;
            qsort(keys, nm, sizeof *keys, str_cmp);
            for (size_t i = 1; i < nm; i++)
                if (!strcmp(keys[i - 1], keys[i])) {
                    st = ferr(ctx, path, RECUR_ERR_FILE_JSON, "__metadata__ has '%s' twice", clean(keys[i], kb));
                    free(keys);
                    goto fail;
                }
            free(keys);
            f->meta = e;
            continue;
        }
        if ((st = parse_tensor(ctx, path, e, &f->t[f->n])) != RECUR_OK) goto fail;
        f->by_name[f->n] = &f->t[f->n];
        f->n++;
    }
    qsort(f->by_name, f->n, sizeof *f->by_name, by_name_cmp);
    for (size_t i = 1; i < f->n; i++) {
        char nb[72];
        GOTO_IF(!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name), ctx, st, RECUR_ERR_FILE_JSON, fail,
                "model file '%s': tensor '%s' appears twice", path, clean(f->by_name[i]->name, nb));
    }
    return RECUR_OK;
fail:
    sf_free(f);
    return st;
}

/* ------------------------------------------------------------------------ */
/* metadata                                                                  */

static const char *const meta_required[] = {"cell", "input_size", "hidden_size", "num_layers", "direction"};

struct sf_meta {
    recur_model_desc desc;
    int G; /* the cell's gates */
};

static const char *meta_str(const struct sf_file *f, const char *key) {
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive(f->meta, key) : NULL;
    return v ? v->valuestring : NULL; /* every value is a string (sf_parse) */
}

/* Whether the file has recur's settings at all (any of the required keys). */
static int meta_present(const struct sf_file *f) {
    for (size_t i = 0; i < sizeof meta_required / sizeof meta_required[0]; i++)
        if (meta_str(f, meta_required[i])) return 1;
    return 0;
}

/* Step 3: the settings, complete and well formed. */
static recur_status meta_parse(recur_ctx *ctx, const struct sf_file *f, struct sf_meta *m) {
    const char *path = f->path;
    char vb[72];
    memset(m, 0, sizeof *m);
    if (!f->meta)
        return ferr(ctx, path, RECUR_ERR_FILE_METADATA,
                    "no __metadata__; recur needs cell, input_size, hidden_size, num_layers and direction");
    for (size_t i = 0; i < sizeof meta_required / sizeof meta_required[0]; i++)
        if (!meta_str(f, meta_required[i]))
            return ferr(ctx, path, RECUR_ERR_FILE_METADATA,
                        "__metadata__ has no '%s' (required: cell, input_size, hidden_size, num_layers, direction)",
                        meta_required[i]);
    const char *cell = meta_str(f, "cell");
    const struct recur_cell *c = recur_cell_find(cell);
    if (!c) {
        char names[512];
        recur_cell_names(names, sizeof names);
        return ferr(ctx, path, RECUR_ERR_FILE_METADATA, "__metadata__ cell '%s' is not a registered cell (%s)",
                    clean(cell, vb), names);
    }
    const struct recur_cell_desc *cd = c->desc;
    m->desc.cell = cd->name;
    m->G = cd->n_gates;
    const char *variant = meta_str(f, "variant");
    m->desc.variant = NULL;
    if (variant && *variant) {
        for (int i = 0; i < cd->n_variants; i++)
            if (!strcmp(cd->variants[i], variant)) m->desc.variant = cd->variants[i];
        if (!m->desc.variant)
            return ferr(ctx, path, RECUR_ERR_FILE_METADATA, "__metadata__ variant '%s' is not one of cell %s's%s",
                        clean(variant, vb), cd->name, cd->n_variants ? "" : " (it has none)");
    }
    static const char *const ints[] = {"input_size", "hidden_size", "num_layers"};
    const uint64_t max[] = {SIZE_LIMIT, SIZE_LIMIT, RECUR_MAX_LAYERS};
    int *dst[] = {&m->desc.input_size, &m->desc.hidden_size, &m->desc.num_layers};
    for (int i = 0; i < 3; i++) {
        uint64_t v;
        const char *s = meta_str(f, ints[i]);
        if (!parse_u64(s, max[i], &v) || v < 1)
            return ferr(ctx, path, RECUR_ERR_FILE_METADATA, "__metadata__ %s '%s' is not an integer in 1..%" PRIu64,
                        ints[i], clean(s, vb), max[i]);
        *dst[i] = (int)v;
    }
    const char *dir = meta_str(f, "direction");
    int d = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(dir, dir_names[i])) d = i;
    if (d < 0)
        return ferr(ctx, path, RECUR_ERR_FILE_METADATA,
                    "__metadata__ direction '%s' is not forward, reverse, bidi_concat or bidi_sum", clean(dir, vb));
    m->desc.direction = (recur_direction)d;
    const char *p = meta_str(f, "dropout");
    if (p && !parse_dropout(p, &m->desc.dropout))
        return ferr(ctx, path, RECUR_ERR_FILE_METADATA, "__metadata__ dropout '%s' is not a number in [0, 1)",
                    clean(p, vb));
    const char *s = meta_str(f, "seed");
    if (s && !parse_u64(s, UINT64_MAX, &m->desc.seed))
        return ferr(ctx, path, RECUR_ERR_FILE_METADATA, "__metadata__ seed '%s' is not an integer in 0..2^64-1",
                    clean(s, vb));
    return RECUR_OK;
}

/* ------------------------------------------------------------------------ */
/* the tensors a model needs                                                 */

struct want {
    char name[NAME_MAX_LEN * 2];
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
 * (recur_model_param_at); w holds L*D*4. */
static size_t wants_of_desc(const recur_model_desc *d, int G, struct want *w) {
    int D = d->direction >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    uint64_t H = (uint64_t)d->hidden_size, O = d->direction == RECUR_DIR_BIDI_CONCAT ? 2 * H : H;
    size_t k = 0;
    for (int l = 0; l < d->num_layers; l++)
        for (int r = 0; r < D; r++)
            for (int b = 0; b < 4; b++, k++) {
                snprintf(w[k].name, sizeof w[k].name, "%s_l%d%s", block_names[b], l, r ? "_reverse" : "");
                w[k].ndim = b < 2 ? 2 : 1;
                w[k].dims[0] = (uint64_t)G * H;
                w[k].dims[1] = b == 0 ? (l == 0 ? (uint64_t)d->input_size : O) : b == 1 ? H : 1;
                w[k].count = w[k].dims[0] * w[k].dims[1];
            }
    return k;
}

static int shape_is(const struct sf_tensor *t, const struct want *w) {
    if (t->ndim != w->ndim) return 0;
    for (int k = 0; k < w->ndim && k < 4; k++)
        if (t->dims[k] != w->dims[k]) return 0;
    return 1;
}

/* Step 4: names (MISSING, then EXTRA) and shapes (SHAPE). With ctx NULL and
 * quiet set, only says whether they match (0 or a status). */
static recur_status match(recur_ctx *ctx, struct sf_file *f, const struct want *w, size_t nw, int quiet) {
    char nb[72], s1[96], s2[96];
    for (size_t i = 0; i < f->n; i++) f->t[i].used = 0;
    for (size_t i = 0; i < nw; i++) {
        struct sf_tensor *t = sf_find(f, w[i].name);
        if (!t) {
            if (quiet) return RECUR_ERR_FILE_MISSING;
            return ferr(ctx, f->path, RECUR_ERR_FILE_MISSING, "no tensor '%s' (the model has %zu: %s ... %s)",
                        w[i].name, nw, w[0].name, w[nw - 1].name);
        }
        t->used = 1;
    }
    for (size_t i = 0; i < f->n; i++)
        if (!f->t[i].used) {
            if (quiet) return RECUR_ERR_FILE_EXTRA;
            return ferr(ctx, f->path, RECUR_ERR_FILE_EXTRA, "tensor '%s' is not one of the model's %zu (%s ... %s)",
                        clean(f->t[i].name, nb), nw, w[0].name, w[nw - 1].name);
        }
    for (size_t i = 0; i < nw; i++) {
        const struct sf_tensor *t = sf_find(f, w[i].name);
        if (shape_is(t, &w[i])) continue;
        if (quiet) return RECUR_ERR_FILE_SHAPE;
        shape_str(s1, sizeof s1, t->ndim, t->dims);
        shape_str(s2, sizeof s2, w[i].ndim, w[i].dims);
        return ferr(ctx, f->path, RECUR_ERR_FILE_SHAPE, "tensor '%s' has shape %s, the model's is %s", w[i].name, s1,
                    s2);
    }
    return RECUR_OK;
}

/* The settings the tensors themselves describe, where they are consistent
 * with some model: sizes from weight_ih_l0 and weight_hh_l0, layers and
 * directions from the names, concat or sum from weight_ih_l1. What the
 * tensors cannot tell (forward or reverse, which cell of G gates) is taken
 * from the metadata. Returns 0 when they describe no model. */
static int infer(struct sf_file *f, const struct sf_meta *m, struct sf_meta *out) {
    const struct sf_tensor *ih = sf_find(f, "weight_ih_l0"), *hh = sf_find(f, "weight_hh_l0");
    if (!ih || !hh || ih->ndim != 2 || hh->ndim != 2) return 0;
    uint64_t H = hh->dims[1], R = hh->dims[0], I = ih->dims[1];
    if (H < 1 || H > SIZE_LIMIT || I < 1 || I > SIZE_LIMIT || R % H || ih->dims[0] != R) return 0;
    *out = *m;
    out->G = (int)(R / H);
    if (out->G != m->G) {
        /* some registered cell with that many gates */
        out->desc.cell = NULL;
        for (size_t i = 0; i < recur_cells_loaded() && !out->desc.cell; i++)
            if (recur_cell_at(i)->desc->n_gates == out->G) out->desc.cell = recur_cell_at(i)->desc->name;
        if (!out->desc.cell) return 0;
        out->desc.variant = NULL;
    }
    int L = 0, D = 1;
    for (size_t i = 0; i < f->n; i++) {
        const char *s = f->t[i].name;
        int b = 0;
        while (b < 4 && strncmp(s, block_names[b], strlen(block_names[b]))) b++;
        if (b == 4) return 0;
        s += strlen(block_names[b]);
        if (strncmp(s, "_l", 2)) return 0;
        char *e;
        long l = strtol(s + 2, &e, 10);
        if (e == s + 2 || s[2] < '0' || s[2] > '9' || l < 0 || l >= RECUR_MAX_LAYERS) return 0;
        if (!strcmp(e, "_reverse")) D = 2;
        else if (*e) return 0;
        if (l + 1 > L) L = (int)l + 1;
    }
    out->desc.input_size = (int)I;
    out->desc.hidden_size = (int)H;
    out->desc.num_layers = L;
    recur_direction md = m->desc.direction;
    if (D == 1) {
        out->desc.direction = md == RECUR_DIR_REVERSE ? RECUR_DIR_REVERSE : RECUR_DIR_FORWARD;
    } else if (L == 1) {
        out->desc.direction = md == RECUR_DIR_BIDI_SUM ? RECUR_DIR_BIDI_SUM : RECUR_DIR_BIDI_CONCAT;
    } else {
        const struct sf_tensor *ih1 = sf_find(f, "weight_ih_l1");
        if (!ih1 || ih1->ndim != 2) return 0;
        if (ih1->dims[1] == 2 * H) out->desc.direction = RECUR_DIR_BIDI_CONCAT;
        else if (ih1->dims[1] == H) out->desc.direction = RECUR_DIR_BIDI_SUM;
        else return 0;
    }
    struct want *w = calloc((size_t)L * D * 4, sizeof *w);
    if (!w) return 0;
    size_t nw = wants_of_desc(&out->desc, out->G, w);
    int ok = match(NULL, f, w, nw, 1) == RECUR_OK;
    free(w);
    return ok;
}

/* The metadata disagrees with tensors that describe model `t`: say where. */
static recur_status meta_disagrees(recur_ctx *ctx, const char *path, const struct sf_meta *m,
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
    if (m->desc.num_layers != t->desc.num_layers)
        DIFF("%snum_layers is %d, the tensors have %d", u ? "; " : "", m->desc.num_layers, t->desc.num_layers);
    if (m->desc.direction != t->desc.direction)
        DIFF("%sdirection is %s, the tensors are %s", u ? "; " : "", dir_names[m->desc.direction],
             dir_names[t->desc.direction]);
#undef DIFF
    return ferr(ctx, path, RECUR_ERR_FILE_METADATA, "__metadata__ disagrees with the tensors: %s", buf);
}

/* Step 4 for recur_model_load: the tensors against the metadata's model. */
static recur_status match_meta(recur_ctx *ctx, struct sf_file *f, const struct sf_meta *m, int quiet_ok) {
    int D = m->desc.direction >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    struct want *w = calloc((size_t)m->desc.num_layers * D * 4, sizeof *w);
    RETURN_IF(!w, ctx, RECUR_ERR_NO_MEMORY, "model file '%s': out of memory", f->path);
    size_t nw = wants_of_desc(&m->desc, m->G, w);
    recur_status st = match(NULL, f, w, nw, 1);
    if (st != RECUR_OK) {
        struct sf_meta t;
        if (infer(f, m, &t)) st = meta_disagrees(ctx, f->path, m, &t);
        else if (quiet_ok) st = ferr(ctx, f->path, RECUR_ERR_FILE_METADATA, "__metadata__ disagrees with the tensors");
        else st = match(ctx, f, w, nw, 0);
    }
    free(w);
    return st;
}

/* ------------------------------------------------------------------------ */
/* steps 5, 6 and 8                                                           */

static int by_begin_cmp(const void *a, const void *b) {
    const struct sf_tensor *x = *(struct sf_tensor *const *)a, *y = *(struct sf_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Every tensor matched a want of the same shape (step 4 passed). */
static recur_status check_data(recur_ctx *ctx, struct sf_file *f, const struct want *w, size_t nw, uint32_t flags) {
    const char *path = f->path;
    char nb[72];
    for (size_t i = 0; i < nw; i++) {
        const struct sf_tensor *t = sf_find(f, w[i].name);
        if (strcmp(t->dtype, "F32"))
            return ferr(ctx, path, RECUR_ERR_FILE_DTYPE, "tensor '%s' has dtype '%s'; recur reads only F32", t->name,
                        clean(t->dtype, nb));
    }
    for (size_t i = 0; i < nw; i++) {
        const struct sf_tensor *t = sf_find(f, w[i].name);
        if (t->end < t->begin)
            return ferr(ctx, path, RECUR_ERR_FILE_OFFSETS, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                        "] are reversed", t->name, t->begin, t->end);
        if (t->end - t->begin != w[i].count * 4)
            return ferr(ctx, path, RECUR_ERR_FILE_OFFSETS,
                        "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                        " bytes, its shape needs %" PRIu64 " (%" PRIu64 " F32 values)",
                        t->name, t->begin, t->end, t->end - t->begin, w[i].count * 4, w[i].count);
    }
    /* Sorted by offset, the tensors must tile the data from 0 to its end. */
    struct sf_tensor **s = malloc((f->n ? f->n : 1) * sizeof *s);
    RETURN_IF(!s, ctx, RECUR_ERR_NO_MEMORY, "model file '%s': out of memory", path);
    for (size_t i = 0; i < f->n; i++) s[i] = &f->t[i];
    qsort(s, f->n, sizeof *s, by_begin_cmp);
    uint64_t at = 0, total = 0;
    int packed = 1;
    recur_status st = RECUR_OK;
    for (size_t i = 0; i < f->n; i++) {
        if (i && s[i]->begin < s[i - 1]->end) {
            st = ferr(ctx, path, RECUR_ERR_FILE_OFFSETS,
                      "tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64 "] overlap",
                      s[i - 1]->name, s[i - 1]->begin, s[i - 1]->end, s[i]->name, s[i]->begin, s[i]->end);
            goto done;
        }
        if (s[i]->begin != at) packed = 0;
        at = s[i]->end;
        total += s[i]->end - s[i]->begin;
    }
    if (packed && total > f->data_len) {
        st = ferr(ctx, path, RECUR_ERR_FILE_TRUNCATED,
                  "truncated: the tensors need %" PRIu64 " bytes of data, the file has %" PRIu64, total, f->data_len);
        goto done;
    }
    for (size_t i = 0; i < f->n; i++)
        if (s[i]->end > f->data_len) {
            st = ferr(ctx, path, RECUR_ERR_FILE_OFFSETS,
                      "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data (%" PRIu64
                      " bytes)", s[i]->name, s[i]->begin, s[i]->end, f->data_len);
            goto done;
        }
    at = 0;
    for (size_t i = 0; i < f->n; at = s[i]->end, i++)
        if (s[i]->begin != at) {
            st = ferr(ctx, path, RECUR_ERR_FILE_OFFSETS,
                      "data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (before '%s')", at, s[i]->begin,
                      s[i]->name);
            goto done;
        }
    if (at != f->data_len) {
        st = ferr(ctx, path, RECUR_ERR_FILE_OFFSETS,
                  "the data has %" PRIu64 " bytes after the last tensor's end (%" PRIu64 ")", f->data_len - at, at);
        goto done;
    }
    if (flags & RECUR_LOAD_CHECK_FINITE)
        for (size_t i = 0; i < nw; i++) {
            const struct sf_tensor *t = sf_find(f, w[i].name);
            const uint8_t *p = f->data + t->begin;
            for (uint64_t k = 0; k < w[i].count; k++) {
                float v = get_f32(p + 4 * k);
                if (isfinite(v)) continue;
                uint64_t cols = w[i].ndim == 2 ? w[i].dims[1] : 1;
                st = ferr(ctx, path, RECUR_ERR_FILE_NONFINITE,
                          "tensor '%s' element %" PRIu64 " ([%" PRIu64 "][%" PRIu64 "]) is %s", t->name, k, k / cols,
                          k % cols, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
                goto done;
            }
        }
done:
    free(s);
    return st;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */

static recur_status read_all(recur_ctx *ctx, const char *path, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    RETURN_IF(fd < 0, ctx, RECUR_ERR_IO, "model file '%s': cannot open: %s", path, strerror(errno));
    struct stat sb;
    recur_status st = RECUR_OK;
    uint8_t *buf = NULL;
    GOTO_IF(fstat(fd, &sb) != 0, ctx, st, RECUR_ERR_IO, fail, "model file '%s': cannot stat: %s", path,
            strerror(errno));
    GOTO_IF(!S_ISREG(sb.st_mode), ctx, st, RECUR_ERR_IO, fail, "model file '%s': not a regular file%s", path,
            S_ISDIR(sb.st_mode) ? " (a directory)" : "");
    GOTO_IF((uint64_t)sb.st_size > SIZE_MAX - 1, ctx, st, RECUR_ERR_NO_MEMORY, fail,
            "model file '%s': %lld bytes do not fit in memory", path, (long long)sb.st_size);
    size_t size = (size_t)sb.st_size, got = 0;
    buf = malloc(size ? size : 1);
    GOTO_IF(!buf, ctx, st, RECUR_ERR_NO_MEMORY, fail, "model file '%s': out of memory reading %zu bytes", path, size);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        GOTO_IF(r < 0, ctx, st, RECUR_ERR_IO, fail, "model file '%s': read failed at byte %zu: %s", path, got,
                strerror(errno));
        if (r == 0) break; /* it shrank since fstat: parse what is there */
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = got;
    return RECUR_OK;
fail:
    free(buf);
    close(fd);
    return st;
}

/* Copy tensor t's values out of the file (the staging buffer). */
static void decode(const struct sf_file *f, const struct sf_tensor *t, uint64_t count, float *dst) {
    const uint8_t *p = f->data + t->begin;
    for (uint64_t k = 0; k < count; k++) dst[k] = get_f32(p + 4 * k);
}

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
    struct sf_file f;
    struct sf_meta m;
    TRY(sf_parse(ctx, name, buf, len, &f));
    struct want *w = NULL;
    float *tmp = NULL;
    recur_model *model = NULL;
    recur_status st;
    if ((st = meta_parse(ctx, &f, &m)) != RECUR_OK) goto done;
    if ((st = match_meta(ctx, &f, &m, 0)) != RECUR_OK) goto done;
    int D = m.desc.direction >= RECUR_DIR_BIDI_CONCAT ? 2 : 1;
    w = calloc((size_t)m.desc.num_layers * D * 4, sizeof *w);
    GOTO_IF(!w, ctx, st, RECUR_ERR_NO_MEMORY, done, "model file '%s': out of memory", name);
    size_t nw = wants_of_desc(&m.desc, m.G, w);
    if ((st = check_data(ctx, &f, w, nw, flags)) != RECUR_OK) goto done;
    tmp = malloc((size_t)max_count(w, nw) * sizeof *tmp);
    GOTO_IF(!tmp, ctx, st, RECUR_ERR_NO_MEMORY, done, "model file '%s': out of memory", name);
    if ((st = recur_model_create(ctx, &m.desc, &model)) != RECUR_OK) goto done;
    for (size_t i = 0; i < nw; i++) {
        decode(&f, sf_find(&f, w[i].name), w[i].count, tmp);
        if ((st = recur_model_param_set(model, w[i].name, tmp, (size_t)w[i].count)) != RECUR_OK) {
            /* the message names the tensor; add the file */
            char msg[RECUR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", ctx->msg);
            st = ferr(ctx, name, st, "%s", msg);
            goto done;
        }
    }
    *out = model;
    model = NULL;
done:
    recur_model_free(model);
    free(tmp);
    free(w);
    sf_free(&f);
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
    TRY(read_all(ctx, path, &buf, &len));
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
    struct sf_file f;
    TRY(sf_parse(ctx, name, buf, len, &f));
    struct want *w = NULL;
    float *tmp = NULL, *old = NULL;
    size_t nw = 0;
    struct sf_meta m;
    int have_meta = meta_present(&f);
    recur_status st;
    if (have_meta && (st = meta_parse(ctx, &f, &m)) != RECUR_OK) goto done;
    if ((st = wants_of_model(model, &w, &nw)) != RECUR_OK) goto done;
    if ((st = match(ctx, &f, w, nw, 0)) != RECUR_OK) goto done;
    if ((st = check_data(ctx, &f, w, nw, flags & ~(uint32_t)RECUR_LOAD_CHECK_FINITE)) != RECUR_OK) goto done;
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
                "model file '%s': the file is for cell %s, the model is %s", name, m.desc.cell, md->cell);
        GOTO_IF(strcmp(fv, mv), ctx, st, RECUR_ERR_FILE_METADATA, done,
                "model file '%s': the file is for variant '%s' of %s, the model is '%s'", name, fv, md->cell, mv);
        GOTO_IF(m.desc.direction != md->direction, ctx, st, RECUR_ERR_FILE_METADATA, done,
                "model file '%s': the file's direction is %s, the model's %s", name, dir_names[m.desc.direction],
                dir_names[md->direction]);
    }
    if ((st = check_data(ctx, &f, w, nw, flags)) != RECUR_OK) goto done;

    /* Everything is valid: write the weights, keeping the old ones to put
     * back if the device fails half way. */
    size_t total = 0;
    for (size_t i = 0; i < nw; i++) total += (size_t)w[i].count;
    tmp = malloc((size_t)max_count(w, nw) * sizeof *tmp);
    old = malloc((total ? total : 1) * sizeof *old);
    GOTO_IF(!tmp || !old, ctx, st, RECUR_ERR_NO_MEMORY, done, "model file '%s': out of memory", name);
    for (size_t i = 0, at = 0; i < nw; at += (size_t)w[i].count, i++)
        if ((st = recur_model_param_get(model, w[i].name, old + at, (size_t)w[i].count)) != RECUR_OK) goto done;
    for (size_t i = 0; i < nw; i++) {
        decode(&f, sf_find(&f, w[i].name), w[i].count, tmp);
        if ((st = recur_model_param_set(model, w[i].name, tmp, (size_t)w[i].count)) != RECUR_OK) {
            char msg[RECUR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", ctx->msg);
            for (size_t j = 0, at2 = 0; j <= i; at2 += (size_t)w[j].count, j++)
                recur_model_param_set(model, w[j].name, old + at2, (size_t)w[j].count);
            st = ferr(ctx, name, st, "%s (the previous weights were put back)", msg);
            goto done;
        }
    }
done:
    free(old);
    free(tmp);
    free(w);
    sf_free(&f);
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
    TRY(read_all(model->ctx, path, &buf, &len));
    recur_status st = recur_model_load_weights_memory(model, path, buf, len, flags);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */

struct text {
    char *p;
    size_t len, cap;
    int oom;
};

static void text_add(struct text *t, const char *s, size_t n) {
    if (t->oom) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = 0;
}

static void text_printf(struct text *t, const char *fmt, ...) RECUR_PRINTF(2, 3);
static void text_printf(struct text *t, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) t->oom = 1; /* never: the callers print numbers and short names */
    else text_add(t, buf, (size_t)n);
}

/* A JSON string literal. */
static void text_json(struct text *t, const char *s) {
    text_add(t, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            text_add(t, e, 2);
        } else if (c < 0x20) {
            text_printf(t, "\\u%04x", c);
        } else {
            text_add(t, (const char *)&c, 1);
        }
    }
    text_add(t, "\"", 1);
}

/* The header JSON (compact, like the reference implementation's), padded
 * with spaces to a multiple of 8. */
static recur_status build_header(const recur_model *m, struct text *t) {
    const recur_model_desc *d = &m->desc;
    char num[32];
    text_add(t, "{\"__metadata__\":{", 17);
    const char *keys[10] = {"format", "recur_version", "cell", "variant", "input_size", "hidden_size",
                            "num_layers", "direction", "dropout", "seed"};
    char vals[6][32];
    snprintf(vals[0], sizeof vals[0], "%d", d->input_size);
    snprintf(vals[1], sizeof vals[1], "%d", d->hidden_size);
    snprintf(vals[2], sizeof vals[2], "%d", d->num_layers);
    format_dropout(d->dropout, vals[3], sizeof vals[3]);
    snprintf(vals[4], sizeof vals[4], "%" PRIu64, d->seed);
    const char *v[10] = {"recur", RECUR_VERSION_STRING, d->cell, d->variant ? d->variant : "", vals[0], vals[1],
                         vals[2], dir_names[d->direction], vals[3], vals[4]};
    for (int i = 0; i < 10; i++) {
        if (i) text_add(t, ",", 1);
        text_json(t, keys[i]);
        text_add(t, ":", 1);
        text_json(t, v[i]);
    }
    text_add(t, "}", 1);
    uint64_t at = 0;
    size_t n = recur_model_param_count(m);
    for (size_t i = 0; i < n; i++) {
        recur_param_info info;
        TRY(recur_model_param_at(m, i, &info, NULL, NULL));
        text_add(t, ",", 1);
        text_json(t, info.name);
        if (info.ndim == 2) snprintf(num, sizeof num, "%d,%d", info.rows, info.cols);
        else snprintf(num, sizeof num, "%d", info.rows);
        uint64_t bytes = (uint64_t)info.count * 4;
        text_printf(t, ":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", num, at,
                    at + bytes);
        at += bytes;
    }
    text_add(t, "}", 1);
    while (!t->oom && t->len % 8) text_add(t, " ", 1);
    RETURN_IF(t->oom, m->ctx, RECUR_ERR_NO_MEMORY, "recur_model_save: out of memory for the header");
    return RECUR_OK;
}

/* The output file, with the test-only failure injection. */
struct out {
    FILE *fp;
    uint64_t written;
    uint64_t fail_after; /* UINT64_MAX: never */
};

static int out_write(struct out *o, const void *p, size_t n) {
    size_t allowed = n;
    if (o->fail_after != UINT64_MAX && o->written + n > o->fail_after) allowed = (size_t)(o->fail_after - o->written);
    if (allowed && fwrite(p, 1, allowed, o->fp) != allowed) return -1;
    o->written += allowed;
    if (allowed < n) {
        errno = ENOSPC; /* as a full disk would */
        return -1;
    }
    return 0;
}

/* A name next to path that does not exist yet, created with O_EXCL like
 * mkstemp does, but with mode 0666 & ~umask (mkstemp's 0600 would make every
 * saved model private whatever the umask says). */
static int create_temp(const char *path, char *tmp, size_t len) {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)getpid() << 16 ^ (uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t z = x + ++counter * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        char suffix[7];
        for (int i = 0; i < 6; i++, z /= 62) suffix[i] = chars[z % 62];
        suffix[6] = 0;
        if ((size_t)snprintf(tmp, len, "%s.tmp-%s", path, suffix) >= len) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

/* fsync the directory holding path, so that the rename is durable. */
static int sync_dir(const char *path) {
    size_t n = strlen(path);
    char *dir = malloc(n + 2);
    if (!dir) return -1;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int r = fsync(fd);
    /* some file systems cannot fsync a directory: nothing more to do there */
    if (r != 0 && (errno == EINVAL || errno == EROFS)) r = 0;
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* Where the data of tensor i comes from, for write_atomic: *vals gets
 * `count` floats valid until the next call. */
typedef recur_status (*tensor_source)(void *user, size_t i, const float **vals, size_t *count);

/* Write header + tensors to path atomically: a temporary file next to it,
 * fsync, rename, fsync of the directory. `fn` names the caller in messages. */
static recur_status write_atomic(recur_ctx *ctx, const char *fn, const char *path, const struct text *hdr, size_t n,
                                 tensor_source src, void *user) {
    recur_status st = RECUR_OK;
    size_t cap = 0;
    uint8_t *bytes = NULL;
    size_t tlen = strlen(path) + 16;
    char *tmp = malloc(tlen);
    struct out o = {NULL, 0, UINT64_MAX};
    int fd = -1;
    GOTO_IF(!tmp, ctx, st, RECUR_ERR_NO_MEMORY, fail, "%s: out of memory", fn);

    /* Test-only: RECUR_TEST_FAIL_WRITE_AFTER=<bytes> makes the write fail
     * (ENOSPC) after that many bytes of the temporary file, so the test suite
     * can show that a failed save leaves the previous file intact. */
    const char *fail_env = getenv("RECUR_TEST_FAIL_WRITE_AFTER");
    uint64_t fail_after;
    if (fail_env && parse_u64(fail_env, UINT64_MAX - 1, &fail_after)) o.fail_after = fail_after;

    fd = create_temp(path, tmp, tlen);
    GOTO_IF(fd < 0, ctx, st, RECUR_ERR_IO, fail, "%s '%s': cannot create the temporary file '%s': %s", fn, path, tmp,
            strerror(errno));
    o.fp = fdopen(fd, "wb");
    GOTO_IF(!o.fp, ctx, st, RECUR_ERR_IO, fail_unlink, "%s '%s': fdopen of '%s' failed: %s", fn, path, tmp,
            strerror(errno));
    fd = -1;
    uint8_t len8[8];
    put_le64(len8, (uint64_t)hdr->len);
    GOTO_IF(out_write(&o, len8, 8) || out_write(&o, hdr->p, hdr->len), ctx, st, RECUR_ERR_IO, fail_unlink,
            "%s '%s': write to '%s' failed after %" PRIu64 " bytes: %s", fn, path, tmp, o.written, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        const float *vals;
        size_t count;
        if ((st = src(user, i, &vals, &count)) != RECUR_OK) goto fail_unlink;
        if (count * 4 > cap) {
            free(bytes);
            cap = count * 4;
            bytes = malloc(cap);
            GOTO_IF(!bytes, ctx, st, RECUR_ERR_NO_MEMORY, fail_unlink, "%s: out of memory", fn);
        }
        for (size_t k = 0; k < count; k++) put_f32(bytes + 4 * k, vals[k]);
        GOTO_IF(out_write(&o, bytes, count * 4), ctx, st, RECUR_ERR_IO, fail_unlink,
                "%s '%s': write to '%s' failed after %" PRIu64 " bytes: %s", fn, path, tmp, o.written,
                strerror(errno));
    }
    GOTO_IF(fflush(o.fp) != 0, ctx, st, RECUR_ERR_IO, fail_unlink, "%s '%s': flush of '%s' failed: %s", fn, path, tmp,
            strerror(errno));
    GOTO_IF(fsync(fileno(o.fp)) != 0, ctx, st, RECUR_ERR_IO, fail_unlink, "%s '%s': fsync of '%s' failed: %s", fn,
            path, tmp, strerror(errno));
    {
        FILE *fp = o.fp;
        o.fp = NULL;
        GOTO_IF(fclose(fp) != 0, ctx, st, RECUR_ERR_IO, fail_unlink, "%s '%s': close of '%s' failed: %s", fn, path,
                tmp, strerror(errno));
    }
    GOTO_IF(rename(tmp, path) != 0, ctx, st, RECUR_ERR_IO, fail_unlink, "%s '%s': rename of '%s' over it failed: %s",
            fn, path, tmp, strerror(errno));
    if (sync_dir(path) != 0) {
        /* the new file is in place; only its durability is in doubt */
        st = recur_err(ctx, RECUR_ERR_IO, "%s '%s': fsync of its directory failed: %s", fn, path, strerror(errno));
        goto fail;
    }
    st = RECUR_OK;
    goto fail;
fail_unlink:
    if (o.fp) fclose(o.fp);
    o.fp = NULL;
    unlink(tmp);
fail:
    if (fd >= 0) close(fd);
    free(bytes);
    free(tmp);
    return st;
}

struct model_source {
    const recur_model *m;
    float *vals;
};

static recur_status model_tensor(void *user, size_t i, const float **vals, size_t *count) {
    struct model_source *s = user;
    recur_param_info info;
    TRY(recur_model_param_info(s->m, i, &info));
    TRY(recur_model_param_get(s->m, info.name, s->vals, info.count));
    *vals = s->vals;
    *count = info.count;
    return RECUR_OK;
}

recur_status recur_model_save(const recur_model *m, const char *path) {
    RETURN_IF(!m, NULL, RECUR_ERR_NULL, "recur_model_save: model is NULL");
    recur_ctx *ctx = m->ctx;
    recur_err_clear(ctx);
    RETURN_IF(!path, ctx, RECUR_ERR_NULL, "recur_model_save: path is NULL");
    RETURN_IF(!*path, ctx, RECUR_ERR_ARG, "recur_model_save: path is empty");
    struct text hdr = {0};
    recur_status st = build_header(m, &hdr);
    size_t n = recur_model_param_count(m), maxc = 1;
    for (size_t i = 0; i < n; i++) {
        recur_param_info info;
        if (recur_model_param_info(m, i, &info) == RECUR_OK && info.count > maxc) maxc = info.count;
    }
    struct model_source src = {m, malloc(maxc * sizeof(float))};
    if (st == RECUR_OK && !src.vals) st = recur_err(ctx, RECUR_ERR_NO_MEMORY, "recur_model_save: out of memory");
    if (st == RECUR_OK) st = write_atomic(ctx, "recur_model_save", path, &hdr, n, model_tensor, &src);
    free(src.vals);
    free(hdr.p);
    return st;
}

/* ------------------------------------------------------------------------ */
/* whole documents, for training files (core/trainfile.c)                    */

void recur_sf_doc_free(struct recur_sf_doc *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->t[i].name);
        free(d->t[i].data);
    }
    for (size_t i = 0; i < d->n_meta; i++) {
        free(d->meta_k[i]);
        free(d->meta_v[i]);
    }
    free(d->t);
    free(d->meta_k);
    free(d->meta_v);
    memset(d, 0, sizeof *d);
}

recur_status recur_sf_doc_parse(recur_ctx *ctx, const char *path, const void *buf, size_t len, uint32_t flags,
                                struct recur_sf_doc *out) {
    memset(out, 0, sizeof *out);
    struct sf_file f;
    TRY(sf_parse(ctx, path, buf, len, &f));
    recur_status st = RECUR_OK;
    char nb[72];
    struct want *w = calloc(f.n ? f.n : 1, sizeof *w);
    GOTO_IF(!w, ctx, st, RECUR_ERR_NO_MEMORY, done, "model file '%s': out of memory", path);
    for (size_t i = 0; i < f.n; i++) {
        const struct sf_tensor *t = &f.t[i];
        GOTO_IF(strlen(t->name) >= NAME_MAX_LEN * 2, ctx, st, RECUR_ERR_FILE_JSON, done,
                "model file '%s': tensor name '%s' is longer than %d bytes", path, clean(t->name, nb),
                NAME_MAX_LEN * 2 - 1);
        GOTO_IF(t->ndim < 1 || t->ndim > 4, ctx, st, RECUR_ERR_FILE_SHAPE, done,
                "model file '%s': tensor '%s' has %d dimensions; training files hold 1 to 4", path,
                clean(t->name, nb), t->ndim);
        snprintf(w[i].name, sizeof w[i].name, "%s", t->name);
        w[i].ndim = t->ndim;
        uint64_t count = 1;
        for (int k = 0; k < t->ndim; k++) {
            w[i].dims[k] = t->dims[k];
            GOTO_IF(t->dims[k] && count > (JSON_INT_MAX / 4) / t->dims[k], ctx, st, RECUR_ERR_FILE_SHAPE, done,
                    "model file '%s': tensor '%s' is absurdly large", path, clean(t->name, nb));
            count *= t->dims[k];
        }
        w[i].count = count;
    }
    if ((st = check_data(ctx, &f, w, f.n, flags)) != RECUR_OK) goto done;
    out->t = calloc(f.n ? f.n : 1, sizeof *out->t);
    size_t nm = 0;
    if (f.meta)
        for (const cJSON *m = f.meta->child; m; m = m->next) nm++;
    out->meta_k = calloc(nm ? nm : 1, sizeof *out->meta_k);
    out->meta_v = calloc(nm ? nm : 1, sizeof *out->meta_v);
    GOTO_IF(!out->t || !out->meta_k || !out->meta_v, ctx, st, RECUR_ERR_NO_MEMORY, done,
            "model file '%s': out of memory", path);
    for (size_t i = 0; i < f.n; i++, out->n++) {
        struct recur_sf_tensor *t = &out->t[i];
        t->name = strdup(f.t[i].name);
        t->ndim = f.t[i].ndim;
        for (int k = 0; k < t->ndim; k++) t->shape[k] = (int64_t)f.t[i].dims[k];
        t->count = (size_t)w[i].count;
        t->data = malloc(t->count ? t->count * sizeof(float) : 1);
        GOTO_IF(!t->name || !t->data, ctx, st, RECUR_ERR_NO_MEMORY, done,
                "model file '%s': out of memory for tensor '%s'", path, clean(f.t[i].name, nb));
        decode(&f, &f.t[i], t->count, t->data);
    }
    if (f.meta)
        for (const cJSON *m = f.meta->child; m; m = m->next, out->n_meta++) {
            out->meta_k[out->n_meta] = strdup(m->string);
            out->meta_v[out->n_meta] = strdup(m->valuestring);
            GOTO_IF(!out->meta_k[out->n_meta] || !out->meta_v[out->n_meta], ctx, st, RECUR_ERR_NO_MEMORY, done,
                    "model file '%s': out of memory", path);
        }
done:
    if (st != RECUR_OK) recur_sf_doc_free(out);
    free(w);
    sf_free(&f);
    return st;
}

recur_status recur_sf_doc_read(recur_ctx *ctx, const char *path, uint32_t flags, struct recur_sf_doc *out) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    TRY(read_all(ctx, path, &buf, &len));
    recur_status st = recur_sf_doc_parse(ctx, path, buf, len, flags, out);
    free(buf);
    return st;
}

static recur_status doc_tensor(void *user, size_t i, const float **vals, size_t *count) {
    const struct recur_sf_doc *d = user;
    *vals = d->t[i].data;
    *count = d->t[i].count;
    return RECUR_OK;
}

recur_status recur_sf_doc_write(recur_ctx *ctx, const char *path, const struct recur_sf_doc *d) {
    struct text t = {0};
    text_add(&t, "{\"__metadata__\":{", 17);
    for (size_t i = 0; i < d->n_meta; i++) {
        if (i) text_add(&t, ",", 1);
        text_json(&t, d->meta_k[i]);
        text_add(&t, ":", 1);
        text_json(&t, d->meta_v[i]);
    }
    text_add(&t, "}", 1);
    uint64_t at = 0;
    for (size_t i = 0; i < d->n; i++) {
        text_add(&t, ",", 1);
        text_json(&t, d->t[i].name);
        text_printf(&t, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < d->t[i].ndim; k++) text_printf(&t, "%s%" PRId64, k ? "," : "", d->t[i].shape[k]);
        uint64_t bytes = (uint64_t)d->t[i].count * 4;
        text_printf(&t, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at, at + bytes);
        at += bytes;
    }
    text_add(&t, "}", 1);
    while (!t.oom && t.len % 8) text_add(&t, " ", 1);
    recur_status st = t.oom ? recur_err(ctx, RECUR_ERR_NO_MEMORY, "recur_file_save: out of memory for the header")
                            : write_atomic(ctx, "recur_file_save", path, &t, d->n, doc_tensor, (void *)d);
    free(t.p);
    return st;
}
