/*
 * no-cpu.c: a cell whose only CPU variant needs AVX2 (no scalar reference):
 * RECUR_ERR_PLUGIN_NO_CPU.
 */
#include "echo-cell.h"

static const struct recur_cell_cpu avx2_only[] = {
    {.isa = RECUR_ISA_AVX2, .forward = {echo_forward}, .backward = {echo_backward}},
};

static struct recur_cell_desc desc = {ECHO_DESC("no-cpu")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.cpu = avx2_only;
    desc.n_cpu = 1;
    *out = &desc;
    return 0;
}
