/*
 * indrnn-math.h: the pointwise math of IndRNN (Li et al. 2018), written once
 * for the CPU (indrnn-kernels.c) and OpenCL (the cell's source). param0 is u
 * (weight_hh, [H]); there is no recurrent product (hw is not computed):
 *   a^{<t>} = g(xw + u * a^{<t-1>}),  g = relu (variant 0) or tanh (1)
 * Nothing is saved: backward needs only a^{<t>}.
 */
RECUR_MATH_KERNEL(indrnn_forward_0) {
    const recur_f v = recur_load(xw, 0) + recur_load(param0, 0) * recur_load(prev0, 0);
    if (variant == 0)
        recur_store(next0, 0, recur_max(v, recur_splat(0.0f)));
    else
        recur_store(next0, 0, recur_tanh(v));
}

/*
 *   dpre = da * g'(pre): relu' = [a > 0], tanh' = 1 - a²
 *   dL/da^{<t-1>} = dpre * u   (the only part: there is no product)
 *   du += dpre * a^{<t-1>}
 */
RECUR_MATH_KERNEL(indrnn_backward_0) {
    const recur_f h = recur_load(next0, 0), da = recur_load(dnext0, 0);
    recur_f d;
    if (variant == 0)
        d = recur_select_lt(recur_splat(0.0f), h, da, recur_splat(0.0f));
    else
        d = da * (1.0f - h * h);
    recur_store(dxw, 0, d);
    recur_store(dprev0, 0, d * recur_load(param0, 0));
    recur_accum(dparam0, 0, d * recur_load(prev0, 0));
}
