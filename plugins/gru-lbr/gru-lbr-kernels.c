/*
 * gru-lbr-kernels.c: the cell's CPU kernels, from its one text of the math
 * (gru-lbr-math.h). Compiled once per ISA; RECUR_CELL_CPU_TABLE names this
 * build's table and RECUR_KERNEL_ISA its instruction set (plugins/meson.build).
 */
#include "recur/recur-math.h"

#include "gru-lbr-math.h"

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {gru_lbr_forward_0},
    .backward = {gru_lbr_backward_0},
};
