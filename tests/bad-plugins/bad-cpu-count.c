/*
 * bad-cpu-count.c: n_cpu = 1000000 for a table of one variant. The loader
 * must refuse the count (RECUR_ERR_PLUGIN_INVALID, the value named) before it
 * reads a single variant: walking the table would read far past its end.
 */
#include "echo-cell.h"

static struct recur_cell_desc desc = {ECHO_DESC("bad-cpu-count")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.n_cpu = 1000000;
    *out = &desc;
    return 0;
}
