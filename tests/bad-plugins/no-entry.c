/*
 * no-entry.c: a loadable shared object with a whole cell in it, whose entry
 * function is not exported (hidden visibility) and whose only exported
 * function has a near-miss name. The loader must say RECUR_ERR_PLUGIN_SYMBOL.
 */
#include "echo-cell.h"

static const struct recur_cell_desc desc = {ECHO_DESC("no-entry")};

__attribute__((visibility("hidden"))) int recur_cell_entry(uint32_t host_abi, const struct recur_host_i *host,
                                                           const struct recur_cell_desc **out);
int recur_cell_entry(uint32_t host_abi, const struct recur_host_i *host, const struct recur_cell_desc **out) {
    (void)host_abi;
    (void)host;
    *out = &desc;
    return 0;
}

RECUR_CELL_EXPORT int recur_cell_entry_v0(uint32_t host_abi, const struct recur_host_i *host,
                                          const struct recur_cell_desc **out);
int recur_cell_entry_v0(uint32_t host_abi, const struct recur_host_i *host, const struct recur_cell_desc **out) {
    return recur_cell_entry(host_abi, host, out);
}
