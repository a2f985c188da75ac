/*
 * rnn.cl: the OpenCL C kernels of the vanilla (Elman) RNN, the same math as
 * rnn-kernels.c. The host prepends recur-cell-cl.h and builds with
 * -DRECUR_G=1. One work-item per unit j of row r; rows are G*H = H wide.
 */
#if !defined(RECUR_G) || RECUR_G != 1
#error "rnn.cl: build with -DRECUR_G=1"
#endif

/* No fused multiply-add, as in the CPU kernels (C11 builds do not contract):
 * the arithmetic then rounds exactly as on the CPU, and only exp/tanh may
 * differ by their few ulp. */

/*
 *   a^{<t>} = g(W_aa a^{<t-1>} + W_ax x^{<t>} + b_a),  g = tanh (variant 0) or relu (1)
 * hw = W_aa a^{<t-1>}, xw = W_ax x^{<t>} + b_a. Nothing is saved. As on the
 * CPU, tanh leaves the pre-activation in hw (scratch); relu leaves hw as is.
 */
RECUR_CELL_KERNEL(rnn_forward_0) {
    RECUR_CELL_BIND;
    const size_t i = (size_t)r * (size_t)H + (size_t)j;
    const float v = hw[i] + xw[i];
    if (variant == 1) {
        next0[i] = v > 0.0f ? v : 0.0f;
    } else {
        hw[i] = v;
        next0[i] = tanh(v);
    }
}

/*
 *   dpre = da^{<t>} * g'(pre):  tanh' = 1 - (a^{<t>})²,  relu' = [a^{<t>} > 0]
 *   dL/da^{<t-1>} = 0 here (it comes only from the engine's product)
 * dxw (== dhw) = dpre; the only stage, so dprev is overwritten.
 */
RECUR_CELL_KERNEL(rnn_backward_0) {
    RECUR_CELL_BIND;
    const size_t i = (size_t)r * (size_t)H + (size_t)j;
    const float h = next0[i], da = dnext0[i];
    if (variant == 1)
        dxw[i] = h > 0.0f ? da : 0.0f;
    else
        dxw[i] = da * (1.0f - h * h);
    dprev0[i] = 0.0f;
}
