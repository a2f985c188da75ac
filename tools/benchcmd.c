/*
 * benchcmd.c: `recur bench`, bench/bench.c's benchmark inside the tool (the
 * same code as recur-bench, built in with -DRECUR_BENCH_NO_MAIN when meson's
 * bench option is on).
 */
#include <stdio.h>
#include <string.h>

#include "tool.h"

#ifdef RECUR_HAVE_BENCH
int recur_bench_main(int argc, char **argv);

int cmd_bench(int argc, char **argv) {
    return recur_bench_main(argc, argv);
}
#else
int cmd_bench(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: recur bench [--quick] [--cell NAME] [--reps N] [--config A,B,C] [--precision P] [--saved S]\n"
               "(this build has no benchmark: it was configured with -Dbench=false)\n");
        return 0;
    }
    fprintf(stderr, "recur bench: this build has no benchmark (configured with -Dbench=false); "
                    "reconfigure with meson configure -Dbench=true\n");
    return 1;
}
#endif
