/*
 * schema.c: recur's metadata keys (schema.h) and their locale-independent
 * numbers.
 */
#include "schema.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define SIZE_LIMIT (1 << 24) /* input_size and hidden_size read from a file */

/* ------------------------------------------------------------------------ */
/* numbers                                                                   */

/* The "C" locale, made once; printf and strtof run in it on this thread only
 * (uselocale), whatever the application's setlocale said. */
static locale_t c_locale;
static pthread_once_t c_once = PTHREAD_ONCE_INIT;
static void c_make(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static locale_t c_begin(void) {
    pthread_once(&c_once, c_make);
    return c_locale ? uselocale(c_locale) : (locale_t)0;
}

int recur_parse_u64(const char *s, uint64_t max, uint64_t *out) {
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

int recur_parse_f32(const char *s, float *out) {
    /* digits, a '.', an exponent and signs only: no space, comma, hex, inf or nan */
    if (!s || !*s || strspn(s, "0123456789.eE+-") != strlen(s)) return 0;
    locale_t old = c_begin();
    if (!old) return 0;
    char *end;
    float v = strtof(s, &end);
    uselocale(old);
    if (*end || !isfinite(v)) return 0; /* (an underflow to a subnormal or 0 is still that number) */
    *out = v;
    return 1;
}

int recur_format_f32(float v, char buf[32]) {
    locale_t old = c_begin();
    if (!old) return 0;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, 32, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    uselocale(old);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */

static recur_status bad(const struct recur_meta_in *in, const char *key, const char *v, const char *form) {
    char vb[72];
    return recur_err(in->ctx, RECUR_ERR_FILE_METADATA, "%s '%s': __metadata__ %s%s '%s' is not %s", in->what, in->path,
                     in->prefix, key, recur_sf_clean(v, vb), form);
}

const char *recur_meta_get(const struct recur_meta_in *in, const char *key) {
    char k[160];
    snprintf(k, sizeof k, "%s%s", in->prefix, key);
    return recur_sf_meta_get(in->meta, k);
}

recur_status recur_meta_str(const struct recur_meta_in *in, const char *key, const char **out) {
    *out = recur_meta_get(in, key);
    RETURN_IF(!*out, in->ctx, RECUR_ERR_FILE_METADATA, "%s '%s': __metadata__ has no '%s%s'", in->what, in->path,
              in->prefix, key);
    return RECUR_OK;
}

recur_status recur_meta_uint(const struct recur_meta_in *in, const char *key, uint64_t lo, uint64_t hi,
                             uint64_t *out) {
    const char *s;
    TRY(recur_meta_str(in, key, &s));
    if (!recur_parse_u64(s, hi, out) || *out < lo) {
        char form[64];
        snprintf(form, sizeof form, "an integer in %" PRIu64 "..%" PRIu64, lo, hi);
        return bad(in, key, s, form);
    }
    return RECUR_OK;
}

recur_status recur_meta_name(const struct recur_meta_in *in, const char *key, const char *const *names, int n,
                             int *out) {
    const char *s;
    TRY(recur_meta_str(in, key, &s));
    char form[160];
    size_t u = (size_t)snprintf(form, sizeof form, "one of");
    for (int i = 0; i < n; i++) {
        if (!strcmp(s, names[i])) {
            *out = i;
            return RECUR_OK;
        }
        if (u < sizeof form) u += (size_t)snprintf(form + u, sizeof form - u, "%s %s", i ? "," : "", names[i]);
    }
    return bad(in, key, s, form);
}

recur_status recur_schema_get_model(const struct recur_meta_in *in, recur_model_desc *d) {
    static const char *const required[] = {"cell", "input_size", "hidden_size", "num_layers", "direction"};
    memset(d, 0, sizeof *d);
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        RETURN_IF(!recur_meta_get(in, required[i]), in->ctx, RECUR_ERR_FILE_METADATA,
                  "%s '%s': __metadata__ has no '%s%s' (required: cell, input_size, hidden_size, num_layers, "
                  "direction)",
                  in->what, in->path, in->prefix, required[i]);
    TRY(recur_meta_str(in, "cell", &d->cell));
    const char *variant = recur_meta_get(in, "variant");
    d->variant = variant && *variant ? variant : NULL;
    static const char *const ints[] = {"input_size", "hidden_size", "num_layers"};
    const uint64_t max[] = {SIZE_LIMIT, SIZE_LIMIT, RECUR_MAX_LAYERS};
    int *dst[] = {&d->input_size, &d->hidden_size, &d->num_layers};
    for (int i = 0; i < 3; i++) {
        uint64_t v;
        TRY(recur_meta_uint(in, ints[i], 1, max[i], &v));
        *dst[i] = (int)v;
    }
    const char *dir = recur_meta_get(in, "direction");
    if (recur_direction_parse(dir, &d->direction) != RECUR_OK)
        return bad(in, "direction", dir, "forward, reverse, bidi_concat or bidi_sum");
    const char *p = recur_meta_get(in, "dropout");
    if (p && (!recur_parse_f32(p, &d->dropout) || !(d->dropout >= 0.0f && d->dropout < 1.0f)))
        return bad(in, "dropout", p, "a number in [0, 1)");
    const char *z = recur_meta_get(in, "zoneout");
    if (z && (!recur_parse_f32(z, &d->zoneout) || !(d->zoneout >= 0.0f && d->zoneout < 1.0f)))
        return bad(in, "zoneout", z, "a number in [0, 1)");
    const char *s = recur_meta_get(in, "seed");
    if (s && !recur_parse_u64(s, UINT64_MAX, &d->seed)) return bad(in, "seed", s, "an integer in 0..2^64-1");
    const char *pj = recur_meta_get(in, "proj_size");
    uint64_t proj = 0;
    if (pj && (!recur_parse_u64(pj, SIZE_LIMIT, &proj) || proj >= (uint64_t)d->hidden_size))
        return bad(in, "proj_size", pj, "0 or an integer below hidden_size");
    d->proj_size = (int)proj;
    return RECUR_OK;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */

recur_status recur_meta_put(struct recur_sf_meta *m, const char *prefix, const char *key, const char *value) {
    char k[160];
    snprintf(k, sizeof k, "%s%s", prefix, key);
    return recur_sf_meta_put(m, k, value);
}

recur_status recur_meta_put_uint(struct recur_sf_meta *m, const char *prefix, const char *key, uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return recur_meta_put(m, prefix, key, s);
}

recur_status recur_meta_put_f32(struct recur_sf_meta *m, const char *prefix, const char *key, float v) {
    char s[32];
    RETURN_IF(!recur_format_f32(v, s), NULL, RECUR_ERR_NO_MEMORY, "metadata '%s%s': out of memory for the C locale",
              prefix, key);
    return recur_meta_put(m, prefix, key, s);
}

recur_status recur_schema_put_model(struct recur_sf_meta *m, const char *prefix, const char *format,
                                    const recur_model_desc *d) {
    TRY(recur_meta_put(m, prefix, "format", format));
    TRY(recur_meta_put(m, prefix, "recur_version", RECUR_VERSION_STRING));
    TRY(recur_meta_put(m, prefix, "cell", d->cell));
    TRY(recur_meta_put(m, prefix, "variant", d->variant ? d->variant : ""));
    TRY(recur_meta_put_uint(m, prefix, "input_size", (uint64_t)d->input_size));
    TRY(recur_meta_put_uint(m, prefix, "hidden_size", (uint64_t)d->hidden_size));
    TRY(recur_meta_put_uint(m, prefix, "num_layers", (uint64_t)d->num_layers));
    TRY(recur_meta_put(m, prefix, "direction", recur_direction_name(d->direction)));
    TRY(recur_meta_put_f32(m, prefix, "dropout", d->dropout));
    if (d->zoneout != 0.0f) TRY(recur_meta_put_f32(m, prefix, "zoneout", d->zoneout));
    if (d->proj_size) TRY(recur_meta_put_uint(m, prefix, "proj_size", (uint64_t)d->proj_size));
    return recur_meta_put_uint(m, prefix, "seed", d->seed);
}
