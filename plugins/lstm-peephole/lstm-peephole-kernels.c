/*
 * lstm-peephole-kernels.c: the cell's CPU kernels, from its one text of the math
 * (lstm-peephole-math.h). Compiled once per ISA; RECUR_CELL_CPU_TABLE names this
 * build's table and RECUR_KERNEL_ISA its instruction set (plugins/meson.build).
 */
#include "recur/recur-math.h"

#include "lstm-peephole-math.h"

const struct recur_cell_cpu RECUR_CELL_CPU_TABLE = {
    .isa = RECUR_KERNEL_ISA,
    .forward = {lstm_peephole_forward_0},
    .backward = {lstm_peephole_backward_0},
};
