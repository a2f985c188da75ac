/*
 * select.c: the OpenCL part of RECUR_DEVICE, a pure function over a device
 * list (platform name, device name, type), so that its every branch can be
 * tested without a device. The grammar is in opencl-impl.h.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "opencl-impl.h"

#define MAX_FIELDS 3

static const struct {
    const char *word;
    unsigned type;
} type_words[] = {
    {"gpu", RECUR_CL_TYPE_GPU},
    {"cpu", RECUR_CL_TYPE_CPU},
    {"accelerator", RECUR_CL_TYPE_ACCELERATOR},
};
#define N_TYPE_WORDS (sizeof type_words / sizeof type_words[0])

const char *recur_cl_type_name(unsigned type) {
    if (type & RECUR_CL_TYPE_GPU) return "GPU";
    if (type & RECUR_CL_TYPE_CPU) return "CPU";
    if (type & RECUR_CL_TYPE_ACCELERATOR) return "accelerator";
    return "other";
}

void recur_cl_selector(const struct recur_cl_entry *e, char *buf, size_t len) {
    snprintf(buf, len, "opencl:%u:%u", e->platform, e->device);
}

/* A field as given: its text (not NUL-terminated) and what it is. */
struct field {
    const char *s;
    size_t len;
};

static int field_eq(struct field f, const char *word) {
    size_t n = strlen(word);
    if (f.len != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)f.s[i]) != word[i]) return 0;
    return 1;
}

/* The type a field names exactly, or 0. */
static unsigned field_type(struct field f) {
    for (size_t i = 0; i < N_TYPE_WORDS; i++)
        if (field_eq(f, type_words[i].word)) return type_words[i].type;
    return 0;
}

/* 1 if the field is all digits; *value saturates at SIZE_MAX. */
static int field_index(struct field f, size_t *value) {
    if (f.len == 0) return 0;
    size_t v = 0;
    for (size_t i = 0; i < f.len; i++) {
        if (!isdigit((unsigned char)f.s[i])) return 0;
        unsigned dgt = (unsigned)(f.s[i] - '0');
        v = v > (SIZE_MAX - dgt) / 10 ? SIZE_MAX : v * 10 + dgt;
    }
    *value = v;
    return 1;
}

/* Case-insensitive: does `hay` contain the field's text? */
static int contains(const char *hay, struct field needle) {
    if (!hay) return 0;
    size_t n = strlen(hay);
    if (needle.len > n) return 0;
    for (size_t i = 0; i + needle.len <= n; i++) {
        size_t k = 0;
        while (k < needle.len && tolower((unsigned char)hay[i + k]) == tolower((unsigned char)needle.s[k])) k++;
        if (k == needle.len) return 1;
    }
    return 0;
}

int recur_cl_simulator(const char *platform_name) {
    static const struct field oclgrind = {"oclgrind", 8};
    return contains(platform_name, oclgrind);
}

/* Append to a message buffer, never past its end. */
struct out {
    char *buf;
    size_t len, used;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...) {
    if (!o->buf || o->len == 0 || o->used >= o->len - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (w < 0) return;
    o->used += (size_t)w;
    if (o->used >= o->len) o->used = o->len - 1;
}

static void put_device(struct out *o, const struct recur_cl_entry *e) {
    char sel[48];
    recur_cl_selector(e, sel, sizeof sel);
    put(o, "%s (%s, %s, %s)", sel, e->device_name ? e->device_name : "?", e->platform_name ? e->platform_name : "?",
        recur_cl_type_name(e->type));
}

/* ", "-separated devices whose mask bit is set (all when mask is NULL). */
static void put_devices(struct out *o, const struct recur_cl_entry *list, size_t n, const unsigned char *mask) {
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        if (!first) put(o, ", ");
        put_device(o, &list[i]);
        first = 0;
    }
}

static recur_status fail(struct out *o) {
    /* keep the message readable when the list was cut */
    if (o->buf && o->len > 4 && o->used >= o->len - 1) memcpy(o->buf + o->len - 4, "...", 4);
    return RECUR_ERR_DEVICE;
}

recur_status recur_cl_select(const struct recur_cl_entry *list, size_t n, size_t n_platforms, const char *spec,
                             size_t *chosen, char *msg, size_t len) {
    struct out o = {msg, len, 0};
    if (msg && len) msg[0] = 0;
    if (!spec) spec = "";
    /* messages name the whole selector */
    char sel[160];
    snprintf(sel, sizeof sel, "opencl%s%.150s", *spec ? ":" : "", spec);

    /* Split into fields. */
    struct field f[MAX_FIELDS];
    size_t nf = 0;
    if (*spec) {
        const char *p = spec;
        for (;;) {
            const char *colon = strchr(p, ':');
            size_t flen = colon ? (size_t)(colon - p) : strlen(p);
            if (nf == MAX_FIELDS) {
                size_t total = nf + 1;
                for (const char *q = p; (q = strchr(q, ':')) != NULL; q++) total++;
                put(&o, "'%s': %zu fields after 'opencl', at most 3: opencl[:platform[:type[:device]]]", sel, total);
                return fail(&o);
            }
            f[nf].s = p;
            f[nf].len = flen;
            nf++;
            if (!colon) break;
            p = colon + 1;
        }
    }

    /* What each field means. */
    struct field plat = {"", 0}, dev = {"", 0}, name = {"", 0};
    unsigned type = 0;
    if (nf == 1) {
        name = f[0];
    } else if (nf == 2) {
        plat = f[0];
        dev = f[1];
    } else if (nf == 3) {
        plat = f[0];
        dev = f[2];
        if (f[1].len) {
            type = field_type(f[1]);
            if (!type) {
                put(&o, "'%s': unknown device type '%.*s'; expected gpu, cpu, accelerator or an empty field", sel,
                    (int)f[1].len, f[1].s);
                return fail(&o);
            }
        }
    }
    /* A type word anywhere is a type. */
    struct field *typed[3] = {&name, &plat, &dev};
    for (int i = 0; i < 3; i++) {
        unsigned t = field_type(*typed[i]);
        if (!t) continue;
        if (type && type != t) {
            put(&o, "'%s': two device types", sel);
            return fail(&o);
        }
        type = t;
        typed[i]->len = 0;
    }

    if (n == 0) {
        put(&o, "no OpenCL device found (%zu platform%s); install an OpenCL driver (ICD), e.g. pocl-opencl-icd, "
                "or check OCL_ICD_VENDORS",
            n_platforms, n_platforms == 1 ? "" : "s");
        return fail(&o);
    }

    /* Filter. */
    unsigned char keep[256];
    size_t limit = n < sizeof keep ? n : sizeof keep;
    for (size_t i = 0; i < limit; i++) keep[i] = 1;
    int by_name = 0;
    size_t pi = 0;
    if (field_index(plat, &pi)) {
        if (pi >= n_platforms) {
            put(&o, "'%s': platform index %zu out of range: %zu OpenCL platform%s found; devices: ", sel, pi,
                n_platforms, n_platforms == 1 ? "" : "s");
            put_devices(&o, list, limit, NULL);
            return fail(&o);
        }
        for (size_t i = 0; i < limit; i++) keep[i] &= list[i].platform == pi;
    } else if (plat.len) {
        by_name = 1;
        for (size_t i = 0; i < limit; i++) keep[i] &= contains(list[i].platform_name, plat);
    }
    if (type)
        for (size_t i = 0; i < limit; i++) keep[i] &= (list[i].type & type) != 0;
    if (name.len) {
        size_t idx;
        if (field_index(name, &idx)) {
            /* a lone index is a platform */
            if (idx >= n_platforms) {
                put(&o, "'%s': platform index %zu out of range: %zu OpenCL platform%s found; devices: ", sel, idx,
                    n_platforms, n_platforms == 1 ? "" : "s");
                put_devices(&o, list, limit, NULL);
                return fail(&o);
            }
            for (size_t i = 0; i < limit; i++) keep[i] &= list[i].platform == idx;
        } else {
            by_name = 1;
            for (size_t i = 0; i < limit; i++)
                keep[i] &= contains(list[i].platform_name, name) || contains(list[i].device_name, name);
        }
    }
    size_t di = 0;
    int dev_index = field_index(dev, &di);
    if (!dev_index && dev.len) {
        by_name = 1;
        for (size_t i = 0; i < limit; i++) keep[i] &= contains(list[i].device_name, dev);
    }

    /* Without an index: the first GPU, else the first device, a simulator
     * (Oclgrind, which calls itself a GPU) only when nothing else is left. */
    size_t left = 0, first = 0, first_gpu = SIZE_MAX, first_real = SIZE_MAX;
    for (size_t i = limit; i-- > 0;)
        if (keep[i]) {
            left++;
            first = i;
            if (recur_cl_simulator(list[i].platform_name)) continue;
            first_real = i;
            if (list[i].type & RECUR_CL_TYPE_GPU) first_gpu = i;
        }

    if (dev_index) {
        if (di >= left) {
            put(&o, "'%s': device index %zu out of range: %zu device%s match", sel, di, left, left == 1 ? "" : "s");
            if (left) {
                put(&o, " (index 0..%zu): ", left - 1);
                put_devices(&o, list, limit, keep);
            } else {
                put(&o, "; devices: ");
                put_devices(&o, list, limit, NULL);
            }
            return fail(&o);
        }
        for (size_t i = 0; i < limit; i++)
            if (keep[i] && di-- == 0) {
                *chosen = i;
                return RECUR_OK;
            }
    }
    if (left == 0) {
        put(&o, "no OpenCL device matches '%s'; devices: ", sel);
        put_devices(&o, list, limit, NULL);
        return fail(&o);
    }
    if (left > 1 && by_name) {
        put(&o, "'%s' is ambiguous: it matches %zu devices: ", sel, left);
        put_devices(&o, list, limit, keep);
        put(&o, "; use one of these selectors");
        return fail(&o);
    }
    *chosen = first_gpu != SIZE_MAX ? first_gpu : first_real != SIZE_MAX ? first_real : first;
    return RECUR_OK;
}
