/*
 * bad-flags.c: a flag bit no ABI 2 flag has: RECUR_ERR_PLUGIN_INVALID, naming
 * the bit (a plugin of a later minor version may not be run as if it were
 * this one's).
 */
#include "echo-cell.h"

static struct recur_cell_desc desc = {ECHO_DESC("bad-flags")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.flags = 1u << 9;
    *out = &desc;
    return 0;
}
