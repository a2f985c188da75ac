/*
 * profile.c: RECUR_CL_PROFILE=1, the device time of every command the
 * backend enqueues (its kernels by name, CLBlast's GEMMs), and the share of
 * the time the device sat idle between them: launch overhead, which is what
 * a recurrent step at small sizes is made of on a GPU (docs/performance.md,
 * "On a GPU"). The queue is created with CL_QUEUE_PROFILING_ENABLE; each
 * command's event waits in a list until the queue drains (a clFinish or a
 * blocking read, when every command before it has ended), then its start
 * and end are added to its name's totals. A list of PROF_PENDING events
 * waits for the last of them first: a host wait that only a profiled run
 * has. When a context that ran commands closes, a table goes to stderr:
 * asked for by name, the one thing the library prints outside its log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl-dev.h"
#include "recur/recur.h"

#define PROF_PENDING 4096
#define PROF_NAMES 64

struct prof_name {
    char name[48]; /* a kernel's, or "CLBlastSgemm" (copied: a cell's kernel may go before the drain) */
    long count;
    cl_ulong ns;
};

struct cl_prof {
    cl_event ev[PROF_PENDING];
    short what[PROF_PENDING]; /* index in names, -1: the table was full */
    int n;
    struct prof_name names[PROF_NAMES];
    int n_names;
    long commands, lost; /* lost: events whose times the driver did not give */
    cl_ulong busy_ns, span_ns; /* device time; first start to last end of each drained batch */
};

recur_status recur_cl_prof_env(int *on, char *why, size_t len) {
    const char *v = getenv("RECUR_CL_PROFILE");
    *on = 0;
    if (!v || !*v || !strcmp(v, "0")) return RECUR_OK;
    if (strcmp(v, "1")) {
        snprintf(why, len,
                 "RECUR_CL_PROFILE '%.40s': expected 1 (time every OpenCL command; a table on stderr when the "
                 "context closes) or 0",
                 v);
        return RECUR_ERR_ARG;
    }
    *on = 1;
    return RECUR_OK;
}

struct cl_prof *recur_cl_prof_new(void) { return calloc(1, sizeof(struct cl_prof)); }

static int name_of(struct cl_prof *p, const char *name) {
    for (int i = 0; i < p->n_names; i++)
        if (!strncmp(p->names[i].name, name, sizeof p->names[i].name - 1)) return i;
    if (p->n_names == PROF_NAMES) return -1;
    snprintf(p->names[p->n_names].name, sizeof p->names[0].name, "%s", name);
    return p->n_names++;
}

void recur_cl_prof_drain(struct cl_prof *p) {
    if (!p || !p->n) return;
    cl_ulong first = 0, last = 0;
    int have = 0;
    for (int i = 0; i < p->n; i++) {
        cl_ulong t0 = 0, t1 = 0;
        struct prof_name *pn = p->what[i] < 0 ? NULL : &p->names[p->what[i]];
        if (clGetEventProfilingInfo(p->ev[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
            clGetEventProfilingInfo(p->ev[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS &&
            t1 >= t0 && pn) {
            pn->count++;
            pn->ns += t1 - t0;
            p->busy_ns += t1 - t0;
            if (!have || t0 < first) first = t0;
            if (!have || t1 > last) last = t1;
            have = 1;
        } else {
            p->lost++;
        }
        p->commands++;
        clReleaseEvent(p->ev[i]);
    }
    if (have) p->span_ns += last - first;
    p->n = 0;
}

void recur_cl_prof_add(struct cl_prof *p, const char *what, cl_event ev) {
    if (!p || !ev) return;
    p->ev[p->n] = ev;
    p->what[p->n++] = (short)name_of(p, what);
    if (p->n == PROF_PENDING) {
        clWaitForEvents(1, &p->ev[p->n - 1]); /* in order: every one before it has ended too */
        recur_cl_prof_drain(p);
    }
}

static int by_time(const void *a, const void *b) {
    const struct prof_name *x = a, *y = b;
    return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : strcmp(x->name, y->name);
}

void recur_cl_prof_report(struct cl_prof *p, const char *device) {
    if (!p) return;
    recur_cl_prof_drain(p);
    if (p->commands == 0) { /* a context that ran nothing (or never opened): no table */
        free(p);
        return;
    }
    qsort(p->names, (size_t)p->n_names, sizeof p->names[0], by_time);
    fprintf(stderr,
            "recur: OpenCL profile (RECUR_CL_PROFILE=1) on %s: %ld commands, the device busy %.3f ms of %.3f ms "
            "from the first start to the last end of each batch between host waits (%.0f%%; the rest is the "
            "gaps between commands)%s\n",
            device, p->commands, p->busy_ns / 1e6, p->span_ns / 1e6,
            p->span_ns ? 100.0 * (double)p->busy_ns / (double)p->span_ns : 0.0,
            p->lost ? "; some commands' times were not given by the driver" : "");
    fprintf(stderr, "  %-24s %9s %12s %10s %6s\n", "command", "count", "device ms", "mean us", "share");
    for (int i = 0; i < p->n_names; i++) {
        const struct prof_name *pn = &p->names[i];
        fprintf(stderr, "  %-24s %9ld %12.3f %10.2f %5.1f%%\n", pn->name, pn->count, pn->ns / 1e6,
                pn->count ? pn->ns / 1e3 / (double)pn->count : 0.0,
                p->busy_ns ? 100.0 * (double)pn->ns / (double)p->busy_ns : 0.0);
    }
    free(p);
}
