/*
 * dup-lstm.c: a complete, valid cell that claims the name "lstm", which the
 * real lstm plugin (found first on RECUR_PLUGIN_PATH) already registered:
 * RECUR_ERR_PLUGIN_DUPLICATE.
 */
#include "echo-cell.h"

static const struct recur_cell_desc desc = {ECHO_DESC("lstm")};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
