/*
 * recur.c: the recur command-line tool.
 *
 *   recur demo        forward and BPTT of every cell on a default batch,
 *                     checked against finite differences (demo.c)
 *   recur devices     every backend and device, with the string that selects it
 *   recur cells       the loaded cell plugins, and any that were rejected
 *   recur gradcheck   finite-difference check of a cell's BPTT (gradcheck.c)
 *   recur train       train a net: lm, classify, generate, seq2seq, dates (train.c,
 *                     docs/tasks.md)
 *   recur sample      generate from a checkpoint (sample.c)
 *   recur eval        the quality of a checkpoint (eval.c)
 *   recur bench       the benchmark of bench/ (benchcmd.c)
 *   recur version     the library's version (also --version)
 *
 * Without a command it prints its usage and exits 2.
 *
 * Run as <build>/tools/recur of a build tree (marked by <build>/recur-build-tree),
 * it searches the build's plugins/ too, after RECUR_PLUGIN_PATH.
 */
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recur/recur-cell.h"
#include "recur/recur.h"
#include "tool.h"


/* The whole of <build>/recur-build-tree, which meson.build writes from tools/build-tree.in. */
#define BUILD_TREE_MARK "recur " RECUR_VERSION_STRING " build tree: its tools/recur loads its plugins/ (written by meson.build)\n"

/* Whether `root` is a recur build tree: its recur-build-tree is a regular file that says so. */
static int is_build_tree(const char *root) {
    char path[PATH_MAX + 32], text[sizeof BUILD_TREE_MARK + 1];
    snprintf(path, sizeof path, "%s/recur-build-tree", root);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); /* O_NONBLOCK: a FIFO must not hang us */
    if (fd < 0) return 0;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, text, sizeof text) : -1;
    close(fd);
    return n == (ssize_t)strlen(BUILD_TREE_MARK) && memcmp(text, BUILD_TREE_MARK, (size_t)n) == 0;
}

/* Run as <build>/tools/recur of a build tree, search <build>/plugins too (after RECUR_PLUGIN_PATH, so that
 * setting it adds cells without hiding the build's own). */
static void find_build_plugins(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = 0; /* exe: the directory of this binary */
    slash = strrchr(exe, '/');
    if (!slash || strcmp(slash, "/tools") != 0) return;
    *slash = 0; /* exe: the build tree, if it is one */
    if (!is_build_tree(exe)) return;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/plugins", exe);
    if (recur_plugin_dir_add(dir) != RECUR_OK) fprintf(stderr, "recur: %s\n", recur_last_error());
}

/* The width of column `off` (a string field of each of n records of size sz) and its heading. */
static int col_width(const void *recs, size_t n, size_t sz, size_t off, const char *head) {
    size_t w = strlen(head);
    for (size_t i = 0; i < n; i++) {
        const char *s = (const char *)recs + i * sz + off;
        if (strlen(s) > w) w = strlen(s);
    }
    return (int)w;
}

static int cmd_devices(int argc, char **argv) {
    if (argc > 1) return tool_usage_error("devices", "takes no arguments, got '%s'", argv[1]);
    size_t n = 0;
    recur_devices(NULL, 0, &n);
    recur_device_info *d = calloc(n ? n : 1, sizeof *d);
    if (!d) return 1;
    recur_devices(d, n, &n);
    /* Each column as wide as its longest entry: device names run to 50 bytes and more. */
    int ws = col_width(d, n, sizeof *d, offsetof(recur_device_info, selector), "SELECTOR"),
        wb = col_width(d, n, sizeof *d, offsetof(recur_device_info, backend), "BACKEND"),
        wn = col_width(d, n, sizeof *d, offsetof(recur_device_info, name), "NAME");
    printf("%-*s  %-*s  %-*s  %s\n", ws, "SELECTOR", wb, "BACKEND", wn, "NAME", "DETAIL");
    for (size_t i = 0; i < n; i++)
        printf("%-*s  %-*s  %-*s  %s\n", ws, d[i].selector, wb, d[i].backend, wn, d[i].name, d[i].detail);
    free(d);
    recur_ctx *ctx;
    const char *env = getenv("RECUR_DEVICE");
    if (recur_ctx_create(&ctx, NULL) == RECUR_OK) {
        recur_device_info info;
        recur_ctx_device(ctx, &info);
        if (env) printf("\nchosen now (RECUR_DEVICE=%s): %s\n", env, info.selector);
        else printf("\nchosen now (RECUR_DEVICE unset): %s\n", info.selector);
        int threads = recur_ctx_threads(ctx);
        printf("threads: %d (%s)\n", threads,
               getenv("RECUR_THREADS") ? "RECUR_THREADS" : "the CPUs this process may run on");
        /* the precisions of the products it computes (recur train --precision): emulated ones gain no speed */
        unsigned native = 0, can = recur_ctx_precisions(ctx, &native);
        printf("precisions:");
        for (int p = 0; recur_dtype_name((recur_dtype)p); p++)
            if (can & (1u << p))
                printf("%s %s%s", p ? "," : "", recur_dtype_name((recur_dtype)p),
                       p && !(native & (1u << p)) ? " (emulated)" : "");
        printf("\n");
        recur_ctx_free(ctx);
    } else {
        fprintf(stderr, "recur devices: %s\n", recur_last_error()); /* names RECUR_DEVICE or RECUR_THREADS */
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
    printf("%-13s %-7s %-22s %-8s %s\n", "CELL", "VERSION", "CPU", "OPENCL", "FILE");
    for (size_t i = 0; i < n; i++) {
        recur_cell_info c;
        recur_cell_get(i, &c);
        char isa[64];
        isa_list(c.cpu_isa, isa, sizeof isa);
        printf("%-13s %-7s %-22s %-8s %s\n", c.name, c.version, isa, strstr(c.backends, "opencl") ? "yes" : "no",
               c.path);
        printf("              %s\n", c.summary);
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
               "  train      train a net: --task lm (language model), classify, generate, seq2seq, dates;\n"
               "             --data FILE for your own examples (docs/tasks.md)\n"
               "  sample     generate from a checkpoint of train (text, translations, classes)\n"
               "  eval       loss and accuracy of a checkpoint of train\n"
               "  demo       forward and BPTT of each cell on a default batch, checked by finite differences\n"
               "  devices    list every device and the RECUR_DEVICE string that selects it\n"
               "  cells      list the loaded cell plugins\n"
               "  gradcheck  check a cell's gradients (any cell, layers, directions) by finite differences\n"
               "  bench      the benchmark: recur against oneDNN and the GEMM ceiling\n"
               "  version    the version (also: recur --version)\n"
               "  help       this text\n\n"
               "'recur COMMAND --help' describes a command's options.\n"
               "environment: RECUR_DEVICE (device), RECUR_PLUGIN_PATH (absolute plugin dirs), RECUR_PLUGIN_TRUST_ANY=1\n"
               "(load plugins of any owner or mode), RECUR_LOG (error|warn|info|debug)\n");
}

int main(int argc, char **argv) {
    find_build_plugins();
    if (!getenv("RECUR_LOG")) recur_log_set(NULL, NULL, RECUR_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        if (argc > 2) return tool_usage_error(cmd, "takes no arguments, got '%s'", argv[2]);
        printf("recur %s\n", recur_version());
        return 0;
    }
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
    if (!strcmp(cmd, "train")) {
        /* under mpirun: one rank of a data-parallel run (tools/dist.c) */
        if (dist_init(&argc, &argv)) return 1;
        int rc = dist_pick_device() ? 1 : cmd_train(argc - 1, argv + 1);
        dist_finish(rc);
        return rc;
    }
    if (!strcmp(cmd, "sample")) return cmd_sample(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "recur: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
