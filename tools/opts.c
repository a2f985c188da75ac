/*
 * opts.c: the option tables of recur train, sample and eval, and the check
 * of a value against its option (also of the settings a checkpoint holds).
 *
 * Every option is "--name VALUE" or "--name=VALUE" (flags take no value).
 * A bad option or value prints "recur CMD: ..." naming the option and what
 * was expected, and the caller exits 2 (tool_usage_error).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

struct opt *opts_find(struct opt *opts, const char *name) {
    for (struct opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

int opt_given(const struct opt *opts, const char *name) {
    for (const struct opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o->given;
    return 0;
}

static void range_text(const struct opt *o, char *buf, size_t len) {
    snprintf(buf, len, "%s%g, %g%s", o->flags & OPT_LO_OPEN ? "(" : "[", o->lo, o->hi,
             o->flags & OPT_HI_OPEN ? ")" : "]");
}

#define WHY(...) return snprintf(why, whylen, __VA_ARGS__), -1

int opt_value(const struct opt *o, const char *v, void *dst, int empty_ok, char *why, size_t whylen) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_FLAG:
        if (!v) return *(int *)dst = 1, 0;
        if (strcmp(v, "0") && strcmp(v, "1")) WHY("expected 0 or 1");
        *(int *)dst = *v == '1';
        return 0;
    case OPT_INT:
    case OPT_LLONG: {
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || (double)n < o->lo || (double)n > o->hi)
            WHY("expected an integer in %.0f..%.0f", o->lo, o->hi);
        if (o->kind == OPT_INT) *(int *)dst = (int)n;
        else *(long long *)dst = n;
        return 0;
    }
    case OPT_U64: {
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || errno || *v == '-') WHY("expected an unsigned 64-bit integer");
        *(uint64_t *)dst = (uint64_t)n;
        return 0;
    }
    case OPT_DOUBLE: {
        double d = strtod(v, &end);
        int ok = *v && !*end && !errno && isfinite(d);
        if (ok) ok = (o->flags & OPT_LO_OPEN) ? d > o->lo : d >= o->lo;
        if (ok) ok = (o->flags & OPT_HI_OPEN) ? d < o->hi : d <= o->hi;
        if (!ok) {
            char r[96];
            range_text(o, r, sizeof r);
            WHY("expected a number in %s", r);
        }
        *(double *)dst = d;
        return 0;
    }
    case OPT_STRING:
    case OPT_TEXT:
        if (!*v && o->kind == OPT_STRING) WHY("the value is empty");
        *(const char **)dst = v;
        return 0;
    case OPT_BUF:
        if (!*v && !empty_ok) WHY("the value is empty");
        if (strlen(v) >= o->cap) WHY("longer than %zu bytes", o->cap - 1);
        memcpy(dst, v, strlen(v) + 1);
        return 0;
    case OPT_CHOICE: {
        char list[256] = "";
        size_t n = 0;
        for (int i = 0; o->choices[i]; i++) {
            if (!strcmp(o->choices[i], v)) return *(int *)dst = i, 0;
            n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s", i ? ", " : "",
                                  o->choices[i]);
        }
        WHY("expected one of %s", list);
    }
    case OPT_DIRECTION: {
        recur_direction d;
        if (recur_direction_parse(v, &d) != RECUR_OK) WHY("expected forward, reverse, bidi_concat or bidi_sum");
        *(int *)dst = (int)d;
        return 0;
    }
    case OPT_DTYPE: {
        recur_dtype d;
        if (recur_dtype_parse(v, &d) != RECUR_OK) WHY("%s", recur_last_error());
        *(int *)dst = (int)d;
        return 0;
    }
    case OPT_LOSS_SCALE: {
        if (!strcmp(v, "auto")) return *(double *)dst = LOSS_SCALE_AUTO, 0;
        if (!strcmp(v, "off")) return *(double *)dst = 0, 0;
        double d = strtod(v, &end);
        int e = 0;
        /* a power of two, so that scaling and unscaling the gradients are exact */
        if (!*v || *end || errno || !(d >= 1 && d <= LOSS_SCALE_MAX) || frexp(d, &e) != 0.5)
            WHY("expected auto, off or a power of two from 1 to 2^100 (65536, 1024, ...)");
        *(double *)dst = d;
        return 0;
    }
    }
    WHY("internal error (option kind %d)", (int)o->kind);
}

#undef WHY

int opts_parse(const char *cmd, int argc, char **argv, struct opt *opts) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        if (strncmp(a, "--", 2)) return tool_usage_error(cmd, "unexpected argument '%s' (options start with --)", a);
        char name[64];
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) return tool_usage_error(cmd, "unknown option '%.60s...'", a);
        memcpy(name, a, len);
        name[len] = 0;
        struct opt *o = opts_find(opts, name);
        if (!o) return tool_usage_error(cmd, "unknown option '%s' ('recur %s --help' lists them)", name, cmd);
        if (o->given) return tool_usage_error(cmd, "option '%s' given twice", name);
        const char *v = NULL;
        if (o->kind == OPT_FLAG) {
            if (eq) return tool_usage_error(cmd, "option '%s' takes no value", name);
        } else if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) return tool_usage_error(cmd, "option '%s' needs a value", name);
            v = argv[++i];
        }
        char why[300];
        if (opt_value(o, v, o->dst, 0, why, sizeof why)) {
            if (v) return tool_usage_error(cmd, "%s '%s': %s", name, v, why);
            return tool_usage_error(cmd, "%s: %s", name, why);
        }
        o->given = 1;
    }
    return 0;
}

int cmd_begin(const char *cmd, int argc, char **argv, struct opt *opts, void (*usage)(FILE *)) {
    int rc = opts_parse(cmd, argc, argv, opts);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    return rc ? rc : -1;
}
