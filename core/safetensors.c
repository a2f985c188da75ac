/*
 * safetensors.c: the safetensors format (safetensors.h): reading and
 * checking a file, whole documents, atomic writing.
 *
 * Reading never trusts the file. The whole file is read into memory, which is
 * also the callers' staging buffer; the header is parsed (recur_sf_parse),
 * the caller checks names and shapes against what it expects, then the data
 * is checked (recur_sf_check_data) before a single value is used.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADER_MAX 100000000u     /* bytes, the reference implementation's limit */
#define JSON_INT_MAX (1ull << 53) /* the largest integer a JSON double holds exactly */
#define STALE_IDLE_S 60           /* a dead writer's temporary, untouched this long, is stale */
#define STALE_MAX_S 86400         /* any temporary untouched this long is stale */

size_t (*recur_sf_fwrite)(const void *p, size_t size, size_t n, FILE *fp) = fwrite;

/* ------------------------------------------------------------------------ */
/* messages                                                                  */

const char *recur_sf_clean(const char *s, char buf[72]) {
    size_t k = 0;
    for (; s && s[k] && k < 64; k++) buf[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    if (s && s[k]) buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = 0;
    return buf;
}

static recur_status verr(recur_ctx *ctx, const char *what, const char *path, recur_status st, const char *fmt,
                         va_list ap) {
    char detail[RECUR_MSG_MAX];
    vsnprintf(detail, sizeof detail, fmt, ap);
    return recur_err(ctx, st, "%s '%s': %s", what, path, detail);
}

recur_status recur_sf_err(recur_ctx *ctx, const struct recur_sf_file *f, recur_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    st = verr(ctx, f->what, f->path, st, fmt, ap);
    va_end(ap);
    return st;
}

/* The same before a recur_sf_file exists. */
static recur_status perr(recur_ctx *ctx, const char *what, const char *path, recur_status st, const char *fmt, ...)
    RECUR_PRINTF(5, 6);
static recur_status perr(recur_ctx *ctx, const char *what, const char *path, recur_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    st = verr(ctx, what, path, st, fmt, ap);
    va_end(ap);
    return st;
}

/* ------------------------------------------------------------------------ */
/* bytes                                                                     */

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

/* The stored value types: F32, and BF16 and F16 (a PyTorch state_dict saved
 * in reduced precision), widened to float exactly on load. */
enum { SF_F32 = 4, SF_BF16 = 2 | 16, SF_F16 = 2 };
static int sf_kind(const char *dtype) {
    return !strcmp(dtype, "F32") ? SF_F32 : !strcmp(dtype, "BF16") ? SF_BF16 : !strcmp(dtype, "F16") ? SF_F16 : 0;
}

/* IEEE binary16 to binary32 by bits: every f16 value (subnormals included)
 * is a float; Inf stays Inf and a NaN keeps its sign and payload. */
float recur_sf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0x1f) u = sign | 0x7f800000u | m << 13;
    else if (e) u = sign | (e + 112) << 23 | m << 13;
    else if (!m) u = sign;
    else { /* subnormal: normalise */
        e = 113;
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        u = sign | e << 23 | (m & 0x3ffu) << 13;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int recur_sf_f32_to_f16(float f, uint16_t *out) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) { /* Inf, NaN (quiet, the payload's top bits) */
        *out = (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | (a >> 13 & 0x3ffu) : 0));
        return 0;
    }
    int e = (int)(a >> 23) - 127 + 15;
    uint32_t m = (a & 0x7fffffu) | 0x800000u; /* 24 significant bits */
    int shift = e >= 1 ? 13 : 13 + 1 - e;     /* to 11 bits (normal) or fewer (subnormal) */
    if (!(a >> 23)) m &= 0x7fffffu, shift = 13 + 1 - e; /* float subnormals: far below F16's */
    if (shift > 24 + 1) {
        *out = sign; /* below half the smallest subnormal: zero */
        return 0;
    }
    uint32_t q = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    q += rest > half || (rest == half && (q & 1u));
    /* q holds the significand with its leading bit; adding it to the exponent field carries on overflow */
    uint32_t h = e >= 1 ? ((uint32_t)(e - 1) << 10) + q : q;
    if (h >= 0x7c00u) return -1;
    *out = (uint16_t)(sign | h);
    return 0;
}

static float get_value(int kind, const uint8_t *p, uint64_t k) {
    if (kind == SF_F32) return get_f32(p + 4 * k);
    uint16_t h = (uint16_t)(p[2 * k] | p[2 * k + 1] << 8);
    return kind == SF_BF16 ? recur_bf16_to_f32(h) : recur_sf_f16_to_f32(h);
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

/* ------------------------------------------------------------------------ */
/* metadata                                                                  */

const char *recur_sf_meta_get(const struct recur_sf_meta *m, const char *key) {
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->k[i], key)) return m->v[i];
    return NULL;
}

recur_status recur_sf_meta_put(struct recur_sf_meta *m, const char *key, const char *value) {
    char *v = strdup(value);
    RETURN_IF(!v, NULL, RECUR_ERR_NO_MEMORY, "out of memory for metadata '%.40s'", key);
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->k[i], key)) {
            free(m->v[i]);
            m->v[i] = v;
            return RECUR_OK;
        }
    char *k = strdup(key);
    char **nk = realloc(m->k, (m->n + 1) * sizeof *nk);
    if (nk) m->k = nk;
    char **nv = nk ? realloc(m->v, (m->n + 1) * sizeof *nv) : NULL;
    if (nv) m->v = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return recur_err(NULL, RECUR_ERR_NO_MEMORY, "out of memory for metadata '%.40s'", key);
    }
    m->k[m->n] = k;
    m->v[m->n] = v;
    m->n++;
    return RECUR_OK;
}

void recur_sf_meta_free(struct recur_sf_meta *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->k[i]);
        free(m->v[i]);
    }
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------ */
/* the header                                                                */

void recur_sf_close(struct recur_sf_file *f) {
    cJSON_Delete(f->root);
    free(f->t);
    free(f->by_name);
    free(f->meta.k);
    free(f->meta.v);
    memset(f, 0, sizeof *f);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int by_name_cmp(const void *a, const void *b) {
    return strcmp((*(struct recur_sf_entry *const *)a)->name, (*(struct recur_sf_entry *const *)b)->name);
}

struct recur_sf_entry *recur_sf_find(const struct recur_sf_file *f, const char *name) {
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
static recur_status parse_tensor(recur_ctx *ctx, const struct recur_sf_file *f, const cJSON *e,
                                 struct recur_sf_entry *t) {
    char nb[72];
    const char *nm = recur_sf_clean(e->string, nb);
    if (!cJSON_IsObject(e)) return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "tensor '%s' is not a JSON object", nm);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = !strcmp(c->string, "dtype") ? &dtype
                             : !strcmp(c->string, "shape") ? &shape
                             : !strcmp(c->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) continue; /* unknown keys are ignored, as by the reference implementation */
        if (*slot) return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "tensor '%s' has '%s' twice", nm, c->string);
        *slot = c;
    }
    if (!dtype || !shape || !offs)
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "tensor '%s' has no '%s'", nm,
                            !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dtype))
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "tensor '%s': dtype is not a string", nm);
    if (!cJSON_IsArray(shape))
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "tensor '%s': shape is not an array", nm);
    t->name = e->string;
    t->dtype = dtype->valuestring;
    t->ndim = 0;
    int zero = 0, huge = 0;
    uint64_t count = 1;
    for (const cJSON *d = shape->child; d; d = d->next) {
        uint64_t v;
        if (!json_u64(d, &v))
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "tensor '%s': shape[%d] is not an integer in 0..2^53",
                                nm, t->ndim);
        if (t->ndim < 4) t->dims[t->ndim] = v;
        if (t->ndim == 1000)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "tensor '%s': over 1000 dimensions", nm);
        t->ndim++;
        zero |= v == 0;
        if (v && count > (JSON_INT_MAX / 4) / v) huge = 1;
        else count *= v;
    }
    t->count = zero ? 0 : huge || t->ndim > 4 ? UINT64_MAX : count;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_u64(offs->child, &t->begin) ||
        !json_u64(offs->child->next, &t->end))
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON,
                            "tensor '%s': data_offsets is not an array of two integers in 0..2^53", nm);
    return RECUR_OK;
}

/* __metadata__: an object of strings, no key twice. */
static recur_status parse_meta(recur_ctx *ctx, struct recur_sf_file *f, const cJSON *e) {
    char kb[72];
    if (f->has_meta) return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "__metadata__ appears twice");
    if (!cJSON_IsObject(e)) return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "__metadata__ is not a JSON object");
    f->has_meta = 1;
    size_t nm = 0;
    for (const cJSON *m = e->child; m; m = m->next, nm++)
        if (!cJSON_IsString(m))
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "__metadata__ value '%s' is not a string",
                                recur_sf_clean(m->string, kb));
    f->meta.k = malloc((nm ? nm : 1) * sizeof *f->meta.k);
    f->meta.v = malloc((nm ? nm : 1) * sizeof *f->meta.v);
    char **sorted = malloc((nm ? nm : 1) * sizeof *sorted);
    if (!f->meta.k || !f->meta.v || !sorted) {
        free(sorted);
        return recur_sf_err(ctx, f, RECUR_ERR_NO_MEMORY, "out of memory for %zu metadata keys", nm);
    }
    for (const cJSON *m = e->child; m; m = m->next, f->meta.n++) {
        f->meta.k[f->meta.n] = sorted[f->meta.n] = m->string;
        f->meta.v[f->meta.n] = m->valuestring;
    }
    /* duplicate keys, by sorting (a header may hold millions) */
    qsort(sorted, nm, sizeof *sorted, str_cmp);
    recur_status st = RECUR_OK;
    for (size_t i = 1; i < nm && st == RECUR_OK; i++)
        if (!strcmp(sorted[i - 1], sorted[i]))
            st = recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "__metadata__ has '%s' twice",
                              recur_sf_clean(sorted[i], kb));
    free(sorted);
    return st;
}

recur_status recur_sf_parse(recur_ctx *ctx, const char *what, const char *path, const void *bytes, size_t len,
                            struct recur_sf_file *f) {
    const uint8_t *buf = bytes;
    memset(f, 0, sizeof *f);
    f->what = what;
    f->path = path;
    if (len < 8)
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_TRUNCATED, "%zu bytes, shorter than the 8-byte header length",
                            len);
    uint64_t hl = get_le64(buf);
    if (hl > HEADER_MAX)
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_HEADER,
                            "not a safetensors file: its first 8 bytes give a header length of %" PRIu64
                            ", over the limit of %u", hl, HEADER_MAX);
    if (hl > len - 8)
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_HEADER,
                            "not a safetensors file, or a truncated one: its first 8 bytes give a header length of %"
                            PRIu64 ", past the end of the file (%zu bytes after the length)", hl, len - 8);
    const uint8_t *h = buf + 8;
    for (size_t i = 0; i < hl; i++)
        if (h[i] < 0x20 && h[i] != '\t' && h[i] != '\n' && h[i] != '\r')
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "control byte 0x%02x at header offset %zu", h[i], i);
    /* A NUL-terminated copy, so that the parser cannot read past the header. */
    char *json = malloc((size_t)hl + 1);
    if (!json) return recur_sf_err(ctx, f, RECUR_ERR_NO_MEMORY, "out of memory for a %" PRIu64 "-byte header", hl);
    memcpy(json, h, (size_t)hl);
    json[hl] = 0;
    const char *end = NULL;
    /* cJSON keeps its last error in a global, written by every parse. */
    static pthread_mutex_t cjson_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&cjson_lock);
    f->root = cJSON_ParseWithLengthOpts(json, (size_t)hl, &end, 0);
    pthread_mutex_unlock(&cjson_lock);
    size_t at = end ? (size_t)(end - json) : 0;
    recur_status st = RECUR_OK;
    if (!f->root)
        st = recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "the header is not valid JSON (at byte %zu of %" PRIu64 ")",
                          at, hl);
    for (size_t i = at; i < hl && st == RECUR_OK; i++)
        if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' && json[i] != '\r')
            st = recur_sf_err(ctx, f, RECUR_ERR_FILE_JSON, "the header has bytes after its JSON value (at byte %zu)",
                              i);
    free(json);
    if (st != RECUR_OK) goto fail;
    f->data = buf + 8 + hl;
    f->data_len = (uint64_t)(len - 8 - (size_t)hl);

    GOTO_IF(!cJSON_IsObject(f->root), ctx, st, RECUR_ERR_FILE_JSON, fail, "%s '%s': the header is not a JSON object",
            what, path);
    size_t n = 0;
    for (const cJSON *e = f->root->child; e; e = e->next) n++;
    f->t = calloc(n ? n : 1, sizeof *f->t);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    GOTO_IF(!f->t || !f->by_name, ctx, st, RECUR_ERR_NO_MEMORY, fail, "%s '%s': out of memory for %zu tensors", what,
            path, n);
    for (const cJSON *e = f->root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if ((st = parse_meta(ctx, f, e)) != RECUR_OK) goto fail;
            continue;
        }
        if ((st = parse_tensor(ctx, f, e, &f->t[f->n])) != RECUR_OK) goto fail;
        f->by_name[f->n] = &f->t[f->n];
        f->n++;
    }
    qsort(f->by_name, f->n, sizeof *f->by_name, by_name_cmp);
    for (size_t i = 1; i < f->n; i++) {
        char nb[72];
        GOTO_IF(!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name), ctx, st, RECUR_ERR_FILE_JSON, fail,
                "%s '%s': tensor '%s' appears twice", what, path, recur_sf_clean(f->by_name[i]->name, nb));
    }
    return RECUR_OK;
fail:
    recur_sf_close(f);
    return st;
}

/* ------------------------------------------------------------------------ */
/* the data                                                                  */

static int by_begin_cmp(const void *a, const void *b) {
    const struct recur_sf_entry *x = *(struct recur_sf_entry *const *)a, *y = *(struct recur_sf_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Offsets against the data section: every tensor in place, together tiling it. */
static recur_status check_offsets(recur_ctx *ctx, const struct recur_sf_file *f, struct recur_sf_entry **s) {
    for (size_t i = 0; i < f->n; i++) s[i] = &f->t[i];
    qsort(s, f->n, sizeof *s, by_begin_cmp);
    uint64_t at = 0, total = 0;
    int packed = 1;
    for (size_t i = 0; i < f->n; i++) {
        if (i && s[i]->begin < s[i - 1]->end)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_OFFSETS,
                                "tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64 "] overlap",
                                s[i - 1]->name, s[i - 1]->begin, s[i - 1]->end, s[i]->name, s[i]->begin, s[i]->end);
        if (s[i]->begin != at) packed = 0;
        at = s[i]->end;
        total += s[i]->end - s[i]->begin;
    }
    if (packed && total > f->data_len)
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_TRUNCATED,
                            "truncated: the tensors need %" PRIu64 " bytes of data, the file has %" PRIu64, total,
                            f->data_len);
    for (size_t i = 0; i < f->n; i++)
        if (s[i]->end > f->data_len)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_OFFSETS,
                                "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                                "] run past the end of the data (%" PRIu64 " bytes)",
                                s[i]->name, s[i]->begin, s[i]->end, f->data_len);
    at = 0;
    for (size_t i = 0; i < f->n; at = s[i]->end, i++)
        if (s[i]->begin != at)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_OFFSETS,
                                "data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (before '%s')", at,
                                s[i]->begin, s[i]->name);
    if (at != f->data_len)
        return recur_sf_err(ctx, f, RECUR_ERR_FILE_OFFSETS,
                            "the data has %" PRIu64 " bytes after the last tensor's end (%" PRIu64 ")",
                            f->data_len - at, at);
    return RECUR_OK;
}

recur_status recur_sf_check_data(recur_ctx *ctx, const struct recur_sf_file *f, uint32_t flags) {
    char nb[72];
    for (size_t i = 0; i < f->n; i++)
        if (!sf_kind(f->t[i].dtype))
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_DTYPE,
                                "tensor '%s' has dtype '%s'; recur reads F32, BF16 and F16",
                                f->t[i].name, recur_sf_clean(f->t[i].dtype, nb));
    for (size_t i = 0; i < f->n; i++) {
        const struct recur_sf_entry *t = &f->t[i];
        if (t->end < t->begin)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_OFFSETS,
                                "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed", t->name,
                                t->begin, t->end);
        if (t->count == UINT64_MAX)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_SHAPE, "tensor '%s' is absurdly large", t->name);
        uint64_t size = (uint64_t)(sf_kind(t->dtype) & 15); /* count < 2^51: no overflow */
        if (t->end - t->begin != t->count * size)
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_OFFSETS,
                                "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                                " bytes, its shape needs %" PRIu64 " (%" PRIu64 " %s values)",
                                t->name, t->begin, t->end, t->end - t->begin, t->count * size, t->count, t->dtype);
    }
    struct recur_sf_entry **s = malloc((f->n ? f->n : 1) * sizeof *s);
    if (!s) return recur_sf_err(ctx, f, RECUR_ERR_NO_MEMORY, "out of memory");
    recur_status st = check_offsets(ctx, f, s);
    free(s);
    if (st != RECUR_OK || !(flags & RECUR_LOAD_CHECK_FINITE)) return st;
    for (size_t i = 0; i < f->n; i++) {
        const struct recur_sf_entry *t = &f->t[i];
        const uint8_t *p = f->data + t->begin;
        int kind = sf_kind(t->dtype);
        for (uint64_t k = 0; k < t->count; k++) {
            float v = get_value(kind, p, k);
            if (isfinite(v)) continue;
            char at[64] = "";
            if (t->ndim == 2) snprintf(at, sizeof at, " ([%" PRIu64 "][%" PRIu64 "])", k / t->dims[1], k % t->dims[1]);
            return recur_sf_err(ctx, f, RECUR_ERR_FILE_NONFINITE, "tensor '%s' element %" PRIu64 "%s is %s", t->name,
                                k, at, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        }
    }
    return RECUR_OK;
}

void recur_sf_decode(const struct recur_sf_file *f, const struct recur_sf_entry *t, float *dst) {
    const uint8_t *p = f->data + t->begin;
    int kind = sf_kind(t->dtype);
    for (uint64_t k = 0; k < t->count; k++) dst[k] = get_value(kind, p, k);
}

recur_status recur_sf_read_all(recur_ctx *ctx, const char *what, const char *path, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO must not wait for a writer; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return perr(ctx, what, path, RECUR_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    recur_status st = RECUR_OK;
    uint8_t *buf = NULL;
    size_t size = 0, got = 0;
    if (fstat(fd, &sb) != 0) {
        st = perr(ctx, what, path, RECUR_ERR_IO, "cannot stat: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = perr(ctx, what, path, RECUR_ERR_IO, "not a regular file (%s)",
                  S_ISDIR(sb.st_mode)    ? "a directory"
                  : S_ISFIFO(sb.st_mode) ? "a FIFO"
                  : S_ISCHR(sb.st_mode)  ? "a character device"
                  : S_ISBLK(sb.st_mode)  ? "a block device"
                  : S_ISSOCK(sb.st_mode) ? "a socket"
                                         : "not a file");
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX - 1) {
        st = perr(ctx, what, path, RECUR_ERR_NO_MEMORY, "%lld bytes do not fit in memory", (long long)sb.st_size);
        goto fail;
    }
    size = (size_t)sb.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        st = perr(ctx, what, path, RECUR_ERR_NO_MEMORY, "out of memory reading %zu bytes", size);
        goto fail;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = perr(ctx, what, path, RECUR_ERR_IO, "read failed at byte %zu: %s", got, strerror(errno));
            goto fail;
        }
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

/* ------------------------------------------------------------------------ */
/* whole documents                                                           */

void recur_sf_doc_free(struct recur_sf_doc *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->t[i].name);
        free(d->t[i].data);
    }
    free(d->t);
    recur_sf_meta_free(&d->meta);
    memset(d, 0, sizeof *d);
}

recur_status recur_sf_doc_parse(recur_ctx *ctx, const char *what, const char *path, const void *buf, size_t len,
                                uint32_t flags, struct recur_sf_doc *out) {
    memset(out, 0, sizeof *out);
    struct recur_sf_file f;
    TRY(recur_sf_parse(ctx, what, path, buf, len, &f));
    recur_status st = RECUR_OK;
    char nb[72];
    for (size_t i = 0; i < f.n && st == RECUR_OK; i++) {
        const struct recur_sf_entry *t = &f.t[i];
        if (strlen(t->name) >= RECUR_SF_NAME_MAX)
            st = recur_sf_err(ctx, &f, RECUR_ERR_FILE_JSON, "tensor name '%s' is longer than %d bytes",
                              recur_sf_clean(t->name, nb), RECUR_SF_NAME_MAX - 1);
        else if (t->ndim < 1 || t->ndim > 4)
            st = recur_sf_err(ctx, &f, RECUR_ERR_FILE_SHAPE, "tensor '%s' has %d dimensions; training files hold 1 to 4",
                              recur_sf_clean(t->name, nb), t->ndim);
    }
    if (st == RECUR_OK) st = recur_sf_check_data(ctx, &f, flags);
    if (st != RECUR_OK) goto done;
    out->t = calloc(f.n ? f.n : 1, sizeof *out->t);
    GOTO_IF(!out->t, ctx, st, RECUR_ERR_NO_MEMORY, done, "%s '%s': out of memory", what, path);
    for (size_t i = 0; i < f.n; i++) {
        struct recur_sf_tensor *t = &out->t[out->n++]; /* counted first: freed on failure */
        t->name = strdup(f.t[i].name);
        t->ndim = f.t[i].ndim;
        for (int k = 0; k < t->ndim; k++) t->shape[k] = (int64_t)f.t[i].dims[k];
        t->count = (size_t)f.t[i].count;
        t->data = malloc(t->count ? t->count * sizeof(float) : 1);
        GOTO_IF(!t->name || !t->data, ctx, st, RECUR_ERR_NO_MEMORY, done, "%s '%s': out of memory for tensor '%s'",
                what, path, recur_sf_clean(f.t[i].name, nb));
        recur_sf_decode(&f, &f.t[i], t->data);
    }
    /* (the keys are distinct: copied as they are, not put one by one, which
     * would search the others each time) */
    out->meta.k = calloc(f.meta.n ? f.meta.n : 1, sizeof *out->meta.k);
    out->meta.v = calloc(f.meta.n ? f.meta.n : 1, sizeof *out->meta.v);
    GOTO_IF(!out->meta.k || !out->meta.v, ctx, st, RECUR_ERR_NO_MEMORY, done, "%s '%s': out of memory", what, path);
    while (out->meta.n < f.meta.n) {
        size_t i = out->meta.n++;
        out->meta.k[i] = strdup(f.meta.k[i]);
        out->meta.v[i] = strdup(f.meta.v[i]);
        GOTO_IF(!out->meta.k[i] || !out->meta.v[i], ctx, st, RECUR_ERR_NO_MEMORY, done, "%s '%s': out of memory", what,
                path);
    }
done:
    if (st != RECUR_OK) recur_sf_doc_free(out);
    recur_sf_close(&f);
    return st;
}

static recur_status doc_tensor(void *user, size_t i, int with_data, struct recur_sf_view *v) {
    const struct recur_sf_tensor *t = &((const struct recur_sf_doc *)user)->t[i];
    (void)with_data;
    *v = (struct recur_sf_view){t->name, t->ndim, {t->shape[0], t->shape[1], t->shape[2], t->shape[3]}, t->count,
                                t->data, 0};
    return RECUR_OK;
}

recur_status recur_sf_doc_write(recur_ctx *ctx, const char *fn, const char *path, const struct recur_sf_doc *d) {
    return recur_sf_write(ctx, fn, path, &d->meta, d->n, doc_tensor, (void *)d);
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
    if (n < 0 || (size_t)n >= sizeof buf) t->oom = 1; /* never: the callers print integers */
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
static recur_status build_header(recur_ctx *ctx, const char *fn, const struct recur_sf_meta *meta, size_t n,
                                 recur_sf_source src, void *user, struct text *t) {
    text_add(t, "{\"__metadata__\":{", 17);
    for (size_t i = 0; i < meta->n; i++) {
        if (i) text_add(t, ",", 1);
        text_json(t, meta->k[i]);
        text_add(t, ":", 1);
        text_json(t, meta->v[i]);
    }
    text_add(t, "}", 1);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        struct recur_sf_view v;
        TRY(src(user, i, 0, &v));
        text_add(t, ",", 1);
        text_json(t, v.name);
        static const char *const names[] = {"F32", "BF16", "F16"};
        text_printf(t, ":{\"dtype\":\"%s\",\"shape\":[", names[v.dtype]);
        for (int k = 0; k < v.ndim; k++) text_printf(t, "%s%" PRId64, k ? "," : "", v.shape[k]);
        uint64_t bytes = (uint64_t)v.count * (v.dtype ? 2 : 4);
        text_printf(t, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at, at + bytes);
        at += bytes;
    }
    text_add(t, "}", 1);
    while (!t->oom && t->len % 8) text_add(t, " ", 1);
    RETURN_IF(t->oom, ctx, RECUR_ERR_NO_MEMORY, "%s: out of memory for the header", fn);
    return RECUR_OK;
}

/* The output file and how many bytes went into it. */
struct out {
    FILE *fp;
    uint64_t written;
};

static int out_write(struct out *o, const void *p, size_t n) {
    size_t w = recur_sf_fwrite(p, 1, n, o->fp);
    o->written += w;
    return w == n ? 0 : -1;
}

/* The directory of path ("." when it has none) and the name in it. */
static char *split_path(const char *path, const char **base) {
    size_t n = strlen(path);
    char *dir = malloc(n + 2);
    if (!dir) return NULL;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    *base = slash ? path + (slash - dir) + 1 : path;
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    return dir;
}

/* The writer pid of a temporary of base ("<base>.tmp-<pid>-<6 of [A-Za-z0-9]>"), or 0. */
static long temp_writer(const char *name, const char *base) {
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) || strncmp(name + bl, ".tmp-", 5)) return 0;
    const char *s = name + bl + 5;
    long pid = 0;
    for (; *s >= '0' && *s <= '9' && pid < 1000000000L; s++) pid = pid * 10 + (*s - '0');
    if (*s++ != '-') return 0;
    for (int i = 0; i < 6; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return s[6] ? 0 : pid;
}

/* Remove the stale temporaries of path (see recur_sf_write); best effort, silent but for the log. */
static void remove_stale(const char *path) {
    const char *base;
    char *dir = split_path(path, &base);
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) {
        free(dir);
        return;
    }
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = temp_writer(e->d_name, base);
        struct stat sb;
        if (pid <= 0 || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) continue;
        double idle = difftime(now, sb.st_mtime);
        int gone = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        if (!(gone && idle >= STALE_IDLE_S) && idle < STALE_MAX_S) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            recur_log(RECUR_LOG_INFO, "removed the stale temporary file '%s/%s' (writer %ld %s, unchanged for %.0f s)",
                      dir, e->d_name, pid, gone ? "gone" : "still there", idle);
        else
            recur_log(RECUR_LOG_WARN, "cannot remove the stale temporary file '%s/%s': %s", dir, e->d_name,
                      strerror(errno));
    }
    closedir(d);
    free(dir);
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
        if ((size_t)snprintf(tmp, len, "%s.tmp-%ld-%s", path, (long)getpid(), suffix) >= len) {
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
    const char *base;
    char *dir = split_path(path, &base);
    if (!dir) return -1;
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

recur_status recur_sf_write(recur_ctx *ctx, const char *fn, const char *path, const struct recur_sf_meta *meta,
                            size_t n, recur_sf_source src, void *user) {
    struct text hdr = {0};
    recur_status st = build_header(ctx, fn, meta, n, src, user, &hdr);
    size_t cap = 0;
    uint8_t *bytes = NULL;
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    struct out o = {NULL, 0};
    int fd = -1;
    if (st != RECUR_OK) goto fail;
    GOTO_IF(!tmp, ctx, st, RECUR_ERR_NO_MEMORY, fail, "%s: out of memory", fn);
    remove_stale(path);
    fd = create_temp(path, tmp, tlen);
    GOTO_IF(fd < 0, ctx, st, RECUR_ERR_IO, fail, "%s '%s': cannot create the temporary file '%s': %s", fn, path, tmp,
            strerror(errno));
    o.fp = fdopen(fd, "wb");
    GOTO_IF(!o.fp, ctx, st, RECUR_ERR_IO, fail_unlink, "%s '%s': fdopen of '%s' failed: %s", fn, path, tmp,
            strerror(errno));
    fd = -1;
    uint8_t len8[8];
    put_le64(len8, (uint64_t)hdr.len);
    GOTO_IF(out_write(&o, len8, 8) || out_write(&o, hdr.p, hdr.len), ctx, st, RECUR_ERR_IO, fail_unlink,
            "%s '%s': write to '%s' failed after %" PRIu64 " bytes: %s", fn, path, tmp, o.written, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        struct recur_sf_view v;
        if ((st = src(user, i, 1, &v)) != RECUR_OK) goto fail_unlink;
        if (v.count * 4 > cap) {
            free(bytes);
            cap = v.count * 4;
            bytes = malloc(cap);
            GOTO_IF(!bytes, ctx, st, RECUR_ERR_NO_MEMORY, fail_unlink, "%s: out of memory", fn);
        }
        size_t size = v.dtype ? 2 : 4;
        for (size_t k = 0; k < v.count; k++) {
            uint16_t h = 0;
            if (v.dtype == 0) {
                put_f32(bytes + 4 * k, v.data[k]);
                continue;
            }
            if (v.dtype == 1) h = recur_f32_to_bf16(v.data[k]);
            else
                GOTO_IF(recur_sf_f32_to_f16(v.data[k], &h), ctx, st, RECUR_ERR_ARG, fail_unlink,
                        "%s '%s': tensor '%s' element %zu is %g, beyond F16's largest value 65504", fn, path, v.name,
                        k, (double)v.data[k]);
            bytes[2 * k] = (uint8_t)h, bytes[2 * k + 1] = (uint8_t)(h >> 8);
        }
        GOTO_IF(out_write(&o, bytes, v.count * size), ctx, st, RECUR_ERR_IO, fail_unlink,
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
    free(hdr.p);
    return st;
}
