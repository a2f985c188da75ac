/*
 * too-small.c: a descriptor that claims to be 16 bytes, smaller than ABI
 * 1.0's: RECUR_ERR_PLUGIN_SIZE.
 */
#include "echo-cell.h"

static struct recur_cell_desc desc = {ECHO_DESC("too-small")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.struct_size = 16;
    *out = &desc;
    return 0;
}
