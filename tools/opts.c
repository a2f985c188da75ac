/*
 * opts.c: the option tables of recur train, sample and eval.
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

static int choice_error(const char *cmd, const struct opt *o, const char *v) {
    char list[256] = "";
    size_t n = 0;
    for (int i = 0; o->choices[i]; i++)
        n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s", i ? ", " : "", o->choices[i]);
    return tool_usage_error(cmd, "%s '%s': expected one of %s", o->name, v, list);
}

static int range_text(const struct opt *o, char *buf, size_t len) {
    return snprintf(buf, len, "%s%g, %g%s", o->flags & OPT_LO_OPEN ? "(" : "[", o->lo, o->hi,
                    o->flags & OPT_HI_OPEN ? ")" : "]");
}

static int set_value(const char *cmd, struct opt *o, const char *v) {
    char *end;
    switch (o->kind) {
    case OPT_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case OPT_INT:
    case OPT_LLONG: {
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || (double)n < o->lo || (double)n > o->hi)
            return tool_usage_error(cmd, "%s '%s': expected an integer in %.0f..%.0f", o->name, v, o->lo, o->hi);
        if (o->kind == OPT_INT) *(int *)o->dst = (int)n;
        else *(long long *)o->dst = n;
        return 0;
    }
    case OPT_U64: {
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || errno || *v == '-')
            return tool_usage_error(cmd, "%s '%s': expected an unsigned 64-bit integer", o->name, v);
        *(uint64_t *)o->dst = (uint64_t)n;
        return 0;
    }
    case OPT_DOUBLE: {
        errno = 0;
        double d = strtod(v, &end);
        int ok = *v && !*end && !errno && isfinite(d);
        if (ok) ok = (o->flags & OPT_LO_OPEN) ? d > o->lo : d >= o->lo;
        if (ok) ok = (o->flags & OPT_HI_OPEN) ? d < o->hi : d <= o->hi;
        if (!ok) {
            char r[96];
            range_text(o, r, sizeof r);
            return tool_usage_error(cmd, "%s '%s': expected a number in %s", o->name, v, r);
        }
        *(double *)o->dst = d;
        return 0;
    }
    case OPT_STRING:
        if (!*v) return tool_usage_error(cmd, "%s: the value is empty", o->name);
        *(const char **)o->dst = v;
        return 0;
    case OPT_TEXT: /* may be empty */
        *(const char **)o->dst = v;
        return 0;
    case OPT_CHOICE:
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(o->choices[i], v)) {
                *(int *)o->dst = i;
                return 0;
            }
        return choice_error(cmd, o, v);
    }
    return tool_usage_error(cmd, "%s: internal error (option kind)", o->name);
}

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
        int rc = set_value(cmd, o, v);
        if (rc) return rc;
        o->given = 1;
    }
    return 0;
}
