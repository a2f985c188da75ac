/*
 * indrnn.cl: the OpenCL C kernels of IndRNN, the same math as
 * indrnn-kernels.c. Built with -DRECUR_G=1; param0 is u (weight_hh, [H]),
 * dparam0 its per-row gradient. One work-item per unit j of row r.
 */
#if !defined(RECUR_G) || RECUR_G != 1
#error "indrnn.cl: build with -DRECUR_G=1"
#endif

RECUR_CELL_KERNEL(indrnn_forward_0) {
    RECUR_CELL_BIND;
    const size_t i = (size_t)r * (size_t)H + (size_t)j;
    const float v = xw[i] + param0[j] * prev0[i];
    hw[i] = v;
    next0[i] = variant == 0 ? (v > 0.0f ? v : 0.0f) : tanh(v);
}

RECUR_CELL_KERNEL(indrnn_backward_0) {
    RECUR_CELL_BIND;
    const size_t i = (size_t)r * (size_t)H + (size_t)j;
    const float h = next0[i], da = dnext0[i];
    const float d = variant == 0 ? (h > 0.0f ? da : 0.0f) : da * (1.0f - h * h);
    dxw[i] = d;
    dprev0[i] = d * param0[j];
    dparam0[i] += d * prev0[i];
}
