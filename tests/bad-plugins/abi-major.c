/*
 * abi-major.c: a plugin of cell ABI 1.0, as the built-in cells were before
 * ABI 2: it refuses a host of any other major and answers an ABI 1 host with
 * its descriptor. RECUR_ERR_PLUGIN_ABI, naming 1.0 and the host's version.
 */
#include "echo-cell.h"

static struct recur_cell_desc desc = {ECHO_DESC("abi-major")};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != 1) return -1;
    desc.abi_version = 1u << 16;
    *out = &desc;
    return 0;
}
