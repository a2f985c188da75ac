/*
 * bad-variants.c: n_variants = -1, which the loader once reported as
 * "variants missing": RECUR_ERR_PLUGIN_INVALID with the value named.
 */
#include "echo-cell.h"

static struct recur_cell_desc desc = {ECHO_DESC("bad-variants")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.n_variants = -1;
    *out = &desc;
    return 0;
}
