/*
 * invalid.c: two gates but one stage that covers only the first, so the
 * second gate's recurrent product is never computed: RECUR_ERR_PLUGIN_INVALID.
 * (Its scalar variant is complete, so the loader gets past the CPU check.)
 */
#include "echo-cell.h"

static const struct recur_cell_gate two_gates[] = {{.name = "a", .torch_index = 0}, {.name = "b", .torch_index = 1}};

static struct recur_cell_desc desc = {ECHO_DESC("invalid")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.n_gates = 2;
    desc.gates = two_gates; /* echo_stages covers [0, 1) only */
    *out = &desc;
    return 0;
}
