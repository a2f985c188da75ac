/* tool.h: what the recur tool's command files share. */
#ifndef RECUR_TOOL_H
#define RECUR_TOOL_H

#include <stdarg.h>
#include <stdio.h>

/* Print "recur CMD: ..." to stderr and return the exit code of a usage error (2). */
static inline int tool_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "recur %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

int cmd_demo(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);

#include <stdint.h>

#include "recur/recur.h"

/* What gradcheck_run checks: a model of this cell and shape, seeded. */
struct gradcheck_opts {
    const char *cell, *variant; /* variant NULL: the cell's default */
    int L, I, H, T, N;
    recur_direction dir;
    int lengths;     /* 1: a fixed unsorted set of lengths in 1..T */
    uint64_t seed;
    double tol;
    const double *eps; /* NULL: the default steps */
    int n_eps;
    int verbose;     /* 1: print the per-tensor table and the summary */
};

struct gradcheck_result {
    int n_checked, n_failed;
    double worst;      /* the worst error over every tensor */
    char worst_name[48];
    double loss;       /* L at the starting point */
    double forward_ms, backward_ms; /* of the training forward and BPTT */
};

/* Finite differences of every parameter tensor and input of a model on ctx
 * (gradcheck.c). 0: all within tol; 1: some are not; -1: a library error,
 * already printed. */
int gradcheck_run(recur_ctx *ctx, const struct gradcheck_opts *o, struct gradcheck_result *res);

#endif
