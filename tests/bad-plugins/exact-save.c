/*
 * exact-save.c: a good plugin, the echo cell with one saved value a unit
 * (its output, which backward does not need) and RECUR_CELL_SAVE_EXACT:
 * its layers keep their saved values in float32 and refuse bf16 ones.
 */
#include "echo-cell.h"

static void exact_forward(const struct recur_cell_args *a) {
    echo_forward(a);
    if (a->save)
        for (int row = 0; row < a->n; row++)
            for (int j = 0; j < a->H; j++)
                a->save[(size_t)row * a->H + j] = a->next[0][(size_t)row * a->H + j];
}

static const struct recur_cell_cpu exact_cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {exact_forward}, .backward = {echo_backward}},
};

static struct recur_cell_desc desc = {ECHO_DESC("exact-save-test")};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    desc.n_save = 1;
    desc.flags = RECUR_CELL_SAVE_EXACT;
    desc.cpu = exact_cpu;
    *out = &desc;
    return 0;
}
