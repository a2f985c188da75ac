/*
 * gru-simple.cl: the OpenCL C kernels of the simplified GRU, the same math as
 * gru-simple-kernels.c. Built with -DRECUR_G=2; gates u, c. One work-item
 * per unit j of row r.
 */
#if !defined(RECUR_G) || RECUR_G != 2
#error "gru-simple.cl: build with -DRECUR_G=2"
#endif

RECUR_CELL_KERNEL(gru_simple_forward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(2 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float gu = recur_sigmoid(hw[g] + xw[g]);
    const float cc = tanh(hw[g + H] + xw[g + H]);
    hw[g] = gu;
    hw[g + H] = cc;
    next0[h] = gu * cc + (1.0f - gu) * prev0[h];
    if (training) {
        save[g] = gu;
        save[g + H] = cc;
    }
}

RECUR_CELL_KERNEL(gru_simple_backward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(2 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float gu = save[g], cc = save[g + H], dc = dnext0[h];
    dxw[g] = dc * (cc - prev0[h]) * gu * (1.0f - gu);
    dxw[g + H] = dc * gu * (1.0f - cc * cc);
    dprev0[h] = dc * (1.0f - gu);
}
