/*
 * demo.c: `recur demo`, the default job until training lands: for each
 * registered cell (and each variant), a model's forward pass and BPTT over a
 * default batch on the chosen device, with every gradient checked against
 * finite differences (gradcheck_run, the engine of `recur gradcheck`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recur/recur.h"
#include "tool.h"

static int run_cell(recur_ctx *ctx, const char *cell, const char *variant, const struct gradcheck_opts *shape) {
    struct gradcheck_opts o = *shape;
    o.cell = cell;
    o.variant = variant;
    struct gradcheck_result r;
    int rc = gradcheck_run(ctx, &o, &r);
    if (rc < 0) return 1;
    char name[48];
    snprintf(name, sizeof name, "%s%s%s", cell, variant ? ":" : "", variant ? variant : "");
    char ref[96] = "";
    if (r.ref_checked) snprintf(ref, sizeof ref, "  vs cpu:scalar %.1e (%s)", r.ref_worst, r.ref_worst_name);
    printf("%-10s L %11.5f  forward %7.3f ms  BPTT %7.3f ms  worst gradient error %.1e (%s)%s  %s\n", name, r.loss,
           r.forward_ms, r.backward_ms, r.worst, r.worst_name, ref, rc == 0 ? "ok" : "FAILED");
    fflush(stdout); /* a line as each cell is done, in a log too */
    return rc;
}

int cmd_demo(int argc, char **argv) {
    struct gradcheck_opts shape = {.L = 2, .I = 16, .H = 32, .T = 20, .N = 8, .dir = RECUR_DIR_BIDI_CONCAT,
                                   .lengths = 1, .seed = 1, .tol = 1e-2, .ref_tol = 1e-3};
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: recur demo [--cell NAME] [--steps T] [--batch N] [--input I] [--hidden H] [--layers L]\n"
                   "For each cell (or one): a bidirectional model over a batch of sequences of different\n"
                   "lengths, forward and BPTT on the RECUR_DEVICE device, every parameter's and input's\n"
                   "gradient checked against finite differences, and off cpu:scalar the outputs and\n"
                   "gradients against cpu:scalar's, the cells' C reference (as recur gradcheck does).\n"
                   "Defaults: L=2 T=20 N=8 I=16 H=32.\n");
            return 0;
        }
        int *dst = !strcmp(a, "--steps") ? &shape.T : !strcmp(a, "--batch") ? &shape.N
                 : !strcmp(a, "--input") ? &shape.I : !strcmp(a, "--hidden") ? &shape.H
                 : !strcmp(a, "--layers") ? &shape.L : NULL;
        if (!dst && strcmp(a, "--cell")) return tool_usage_error("demo", "unknown option '%s'", a);
        if (i + 1 >= argc) return tool_usage_error("demo", "option '%s' needs a value", a);
        const char *v = argv[++i];
        if (!dst) {
            only = v;
            continue;
        }
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 4096) return tool_usage_error("demo", "%s '%s': expected an integer 1..4096", a, v);
        *dst = (int)n;
    }
    recur_ctx *ctx = tool_ctx("demo");
    if (!ctx) return 1;
    recur_device_info info;
    recur_ctx_device(ctx, &info);
    printf("recur %s on %s (%s)\n%d-layer bidirectional models, T=%d N=%d (lengths 1..T, unsorted) I=%d H=%d;\n"
           "L = sum(y*dy) + sum(hT*dhT) (+ sum(cT*dcT)) with random dy, dhT, dcT\n",
           RECUR_VERSION_STRING, info.selector, info.detail, shape.L, shape.T, shape.N, shape.I, shape.H);
    int rc = 0;
    size_t n = recur_cell_count(), runs = 0;
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        recur_cell_get(i, &c);
        if (!only || !strcmp(only, c.name)) runs += c.n_variants ? (size_t)c.n_variants : 1;
    }
    printf("%zu cell%s and variants to check, a line each (times after a warm-up run)\n", runs, runs == 1 ? "" : "s");
    fflush(stdout);
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        recur_cell_get(i, &c);
        if (only && strcmp(only, c.name)) continue;
        if (c.n_variants == 0) rc |= run_cell(ctx, c.name, NULL, &shape);
        for (int v = 0; v < c.n_variants; v++) rc |= run_cell(ctx, c.name, c.variants[v], &shape);
        if (only) only = "";
    }
    if (only && *only) {
        fprintf(stderr, "recur demo: --cell '%s': no such cell\n", only);
        rc = 1;
    }
    if (n == 0) {
        fprintf(stderr, "recur demo: no cell plugins found; set RECUR_PLUGIN_PATH\n");
        rc = 1;
    }
    recur_ctx_free(ctx);
    return rc;
}
