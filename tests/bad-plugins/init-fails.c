/*
 * init-fails.c: the entry function refuses to load (returns non-zero):
 * RECUR_ERR_PLUGIN_INIT.
 */
#include "echo-cell.h"

static const struct recur_cell_desc desc = {ECHO_DESC("init-fails")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    *out = &desc; /* a descriptor, but the non-zero return must win */
    return 3;
}
