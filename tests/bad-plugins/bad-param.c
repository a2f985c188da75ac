/*
 * bad-param.c: a cell parameter of 0 rows (and an init rule no enum value
 * has): RECUR_ERR_PLUGIN_INVALID, naming the parameter and its values.
 */
#include "echo-cell.h"

static const struct recur_cell_param empty[] = {{.name = "gain", .rows = 0, .cols = RECUR_CELL_DIM_H, .init = 7}};

static struct recur_cell_desc desc = {ECHO_DESC("bad-param")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.n_params = 1;
    desc.params = empty;
    *out = &desc;
    return 0;
}
