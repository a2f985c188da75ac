/*
 * recur.c: the recur command-line tool.
 *
 *   recur demo        forward and BPTT of every cell on a default batch,
 *                     checked against finite differences (demo.c)
 *   recur devices     every backend and device, with the string that selects it
 *   recur cells       the loaded cell plugins, and any that were rejected
 *   recur gradcheck   finite-difference check of a cell's BPTT (gradcheck.c)
 *   recur train       train a net: lm, classify, dates (train.c, docs/tasks.md)
 *   recur sample      generate from a checkpoint (sample.c)
 *   recur eval        the quality of a checkpoint (eval.c)
 *   recur bench       the benchmark of bench/ (benchcmd.c)
 *
 * Without a command it prints its usage and exits 2.
 *
 * Run from a build tree, it finds the build's plugins by itself.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recur/recur-cell.h"
#include "recur/recur.h"
#include "tool.h"


/* From a build tree (this binary in build/tools/), use build/plugins. */
static void find_build_plugins(void) {
    if (getenv("RECUR_PLUGIN_PATH")) return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = 0;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/../plugins", exe);
    if (access(dir, R_OK) == 0 && strstr(exe, "/tools")) setenv("RECUR_PLUGIN_PATH", dir, 0);
}

static int cmd_devices(int argc, char **argv) {
    if (argc > 1) return tool_usage_error("devices", "takes no arguments, got '%s'", argv[1]);
    size_t n = 0;
    recur_devices(NULL, 0, &n);
    recur_device_info *d = calloc(n ? n : 1, sizeof *d);
    if (!d) return 1;
    recur_devices(d, n, &n);
    printf("%-20s %-8s %-32s %s\n", "SELECTOR", "BACKEND", "NAME", "DETAIL");
    for (size_t i = 0; i < n; i++) printf("%-20s %-8s %-32s %s\n", d[i].selector, d[i].backend, d[i].name, d[i].detail);
    free(d);
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, NULL) == RECUR_OK) {
        recur_device_info info;
        recur_ctx_device(ctx, &info);
        printf("\nchosen now (RECUR_DEVICE=%s): %s\n", getenv("RECUR_DEVICE") ? getenv("RECUR_DEVICE") : "", info.selector);
        printf("threads: %d\n", recur_ctx_threads(ctx));
        recur_ctx_free(ctx);
    } else {
        printf("\nRECUR_DEVICE: %s\n", recur_last_error());
        return 1;
    }
    return 0;
}

/* The names of the ISA bits `isa` and scalar, as "avx2,scalar" (RECUR_ISA_LIST's order). */
static void isa_list(uint32_t isa, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = 0;
#define ISA_NAME(u, ID, name, bit, arch, implies, flags)                                   \
    {                                                                                      \
        uint32_t b_ = (bit);                                                               \
        if ((b_ == 0 || (isa & b_)) && used < len)                                         \
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", #name); \
    }
    RECUR_ISA_LIST(ISA_NAME, )
#undef ISA_NAME
}

static int cmd_cells(int argc, char **argv) {
    if (argc > 1) return tool_usage_error("cells", "takes no arguments, got '%s'", argv[1]);
    size_t n = recur_cell_count();
    printf("%-10s %-7s %-22s %-8s %s\n", "CELL", "VERSION", "CPU", "OPENCL", "FILE");
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        recur_cell_get(i, &c);
        char isa[64];
        isa_list(c.cpu_isa, isa, sizeof isa);
        printf("%-10s %-7s %-22s %-8s %s\n", c.name, c.version, isa, c.has_opencl ? "yes" : "no", c.path);
        printf("           %s\n", c.summary);
    }
    size_t bad = recur_plugin_error_count();
    for (size_t i = 0; i < bad; i++) {
        recur_status st;
        const char *msg;
        recur_plugin_error_get(i, &st, &msg);
        printf("rejected: %s: %s\n", recur_status_str(st), msg);
    }
    if (n == 0) fprintf(stderr, "recur: no cell plugins found; set RECUR_PLUGIN_PATH\n");
    return n == 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: recur COMMAND [OPTIONS]\n\n"
               "commands:\n"
               "  train      train a net: --task lm (language model), classify, dates (encoder-decoder)\n"
               "  sample     generate from a checkpoint of train (text, translations, classes)\n"
               "  eval       loss and accuracy of a checkpoint of train\n"
               "  demo       forward and BPTT of each cell on a default batch, checked by finite differences\n"
               "  devices    list every device and the RECUR_DEVICE string that selects it\n"
               "  cells      list the loaded cell plugins\n"
               "  gradcheck  check a cell's gradients (any cell, layers, directions) by finite differences\n"
               "  bench      the benchmark: recur against oneDNN and the GEMM ceiling\n"
               "  help       this text\n\n"
               "'recur COMMAND --help' describes a command's options.\n"
               "environment: RECUR_DEVICE (device), RECUR_PLUGIN_PATH (plugin dirs), RECUR_LOG (error|warn|info|debug)\n");
}

int main(int argc, char **argv) {
    find_build_plugins();
    if (!getenv("RECUR_LOG")) recur_log_set(NULL, NULL, RECUR_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
        if (!strcmp(cmd, "demo")) return cmd_demo(argc - 1, argv + 1);
        if (!strcmp(cmd, "devices") || !strcmp(cmd, "cells")) {
            printf("usage: recur %s\n", cmd);
            return 0;
        }
    }
    if (!strcmp(cmd, "demo")) return cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "cells")) return cmd_cells(argc - 1, argv + 1);
    if (!strcmp(cmd, "gradcheck")) return cmd_gradcheck(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "sample")) return cmd_sample(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "recur: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
