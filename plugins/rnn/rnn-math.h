/*
 * rnn-math.h: the pointwise math of the vanilla (Elman) RNN, written once for
 * the CPU (rnn-kernels.c) and OpenCL (the cell's source):
 *   a^{<t>} = g(W_aa a^{<t-1>} + W_ax x^{<t>} + b_a),  g = tanh (variant 0) or relu (1)
 * Nothing is saved: backward needs only a^{<t>}.
 */
RECUR_MATH_KERNEL(rnn_forward_0) {
    const recur_f v = recur_load(hw, 0) + recur_load(xw, 0);
    if (variant == 1)
        recur_store(next0, 0, recur_max(v, recur_splat(0.0f)));
    else
        recur_store(next0, 0, recur_tanh(v));
}

/*
 *   dpre = da^{<t>} * g'(pre):  tanh' = 1 - (a^{<t>})²,  relu' = [a^{<t>} > 0]
 *   dL/da^{<t-1>} = 0 here (it comes only from the engine's product)
 */
RECUR_MATH_KERNEL(rnn_backward_0) {
    const recur_f h = recur_load(next0, 0), da = recur_load(dnext0, 0);
    if (variant == 1)
        recur_store(dxw, 0, recur_select_lt(recur_splat(0.0f), h, da, recur_splat(0.0f)));
    else
        recur_store(dxw, 0, da * (1.0f - h * h));
    recur_store(dprev0, 0, recur_splat(0.0f));
}
