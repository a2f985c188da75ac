/*
 * invalid.c: a cell parameter of its own named "bias_ih", the name of one of
 * the layer's own tensors, so the model's tensor names would clash:
 * RECUR_ERR_PLUGIN_INVALID. (Its scalar variant is complete, so the loader
 * gets past the CPU check.)
 */
#include "echo-cell.h"

static const struct recur_cell_param clash[] = {{.name = "bias_ih", .rows = 1, .cols = RECUR_CELL_DIM_H}};

static struct recur_cell_desc desc = {ECHO_DESC("invalid")};

RECUR_CELL_ENTRY {
    (void)host_abi;
    (void)host;
    desc.n_params = 1;
    desc.params = clash;
    *out = &desc;
    return 0;
}
