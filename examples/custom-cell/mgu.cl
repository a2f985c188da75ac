/*
 * mgu.cl: the OpenCL C kernels of the example cell, the same math as the C
 * kernels in mgu.c (recur gradcheck compares the two). The host prepends
 * recur/recur-cell-cl.h, which defines RECUR_CELL_KERNEL and RECUR_CELL_BIND,
 * and builds with -DRECUR_G=2; the Makefile embeds this file with
 * recur-embed. One work-item per unit j of row r; xw, hw, dxw rows are 2H
 * wide (gate f, then gate a), save rows 2H (f, ã).
 */
RECUR_CELL_KERNEL(mgu_forward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(2 * H) + (size_t)j, i = (size_t)r * (size_t)H + (size_t)j;
    const float f = recur_sigmoid(xw[g] + hw[g]);
    hw[g] = f; /* for stage 1 */
    src[i] = f * prev0[i];
    if (training) save[g] = f;
}

RECUR_CELL_KERNEL(mgu_forward_1) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(2 * H) + (size_t)j, i = (size_t)r * (size_t)H + (size_t)j;
    const float f = hw[g];
    const float cand = tanh(xw[g + H] + hw[g + H]);
    next0[i] = (1.0f - f) * prev0[i] + f * cand;
    if (training) save[g + H] = cand;
}

RECUR_CELL_KERNEL(mgu_backward_1) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(2 * H) + (size_t)j, i = (size_t)r * (size_t)H + (size_t)j;
    const float f = save[g], cand = save[g + H], da = dnext0[i];
    dxw[g + H] = da * f * (1.0f - cand * cand);
    dprev0[i] = da * (1.0f - f);
}

RECUR_CELL_KERNEL(mgu_backward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(2 * H) + (size_t)j, i = (size_t)r * (size_t)H + (size_t)j;
    const float f = save[g], cand = save[g + H], p = prev0[i];
    const float df = dnext0[i] * (cand - p) + dsrc[i] * p;
    dxw[g] = df * f * (1.0f - f);
    dprev0[i] += dsrc[i] * f;
}
