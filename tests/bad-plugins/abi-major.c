/*
 * abi-major.c: a descriptor built for ABI 2.0: RECUR_ERR_PLUGIN_ABI.
 */
#include "echo-cell.h"

static struct recur_cell_desc desc = {ECHO_DESC("abi-major")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.abi_version = 2u << 16;
    *out = &desc;
    return 0;
}
