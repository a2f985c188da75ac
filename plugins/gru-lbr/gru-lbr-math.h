/*
 * gru-lbr-math.h: the pointwise math of the linear-before-reset GRU
 * (PyTorch's nn.GRU, cuDNN's GRU), written once for the CPU
 * (gru-lbr-kernels.c) and OpenCL (the cell's source). Gates r, z, n. xw holds
 * W_i x + b_i (+ b_h for r, z); hw holds W_h a^{<t-1>}; b_hn is added here
 * (n has bias_hh_in_hw):
 *   r = σ(xw_r + hw_r)     z = σ(xw_z + hw_z)
 *   n = tanh(xw_n + r * hw_n)            (hw_n = W_hn a^{<t-1>} + b_hn)
 *   a^{<t>} = (1 - z) * n + z * a^{<t-1>}
 * z weights the OLD state (PyTorch's polarity; the course notes' Γ_u = 1 - z).
 * Saved per unit: r, z, n, hw_n.
 */
RECUR_MATH_KERNEL(gru_lbr_forward_0) {
    const recur_f hwn = recur_load(hw, 2 * H) + recur_load(b_hh, 2 * H);
    const recur_f rg = recur_sigmoid(recur_load(hw, 0) + recur_load(xw, 0));
    const recur_f z = recur_sigmoid(recur_load(hw, H) + recur_load(xw, H));
    const recur_f n = recur_tanh(recur_load(xw, 2 * H) + rg * hwn);
    recur_store(next0, 0, (1.0f - z) * n + z * recur_load(prev0, 0));
    if (training) {
        recur_store(save, 0, rg);
        recur_store(save, H, z);
        recur_store(save, 2 * H, n);
        recur_store(save, 3 * H, hwn);
    }
}

/*
 * Backward, with da = dL/da^{<t>}:
 *   dn = da * (1 - z)    dz = da * (a^{<t-1>} - n)    dL/da^{<t-1>} = da * z (+ product)
 *   dpre_n = dn * (1 - n²)          -> dxw_n; dhw_n = dpre_n * r
 *   dr = dpre_n * hw_n; dpre_r = dr * r(1 - r); dpre_z = dz * z(1 - z)   (dxw = dhw for r, z)
 */
RECUR_MATH_KERNEL(gru_lbr_backward_0) {
    const recur_f rg = recur_load(save, 0), z = recur_load(save, H), n = recur_load(save, 2 * H);
    const recur_f hwn = recur_load(save, 3 * H), da = recur_load(dnext0, 0);
    const recur_f dpre_n = da * (1.0f - z) * (1.0f - n * n);
    const recur_f dpre_r = dpre_n * hwn * rg * (1.0f - rg);
    const recur_f dpre_z = da * (recur_load(prev0, 0) - n) * z * (1.0f - z);
    recur_store(dxw, 0, dpre_r);
    recur_store(dhw, 0, dpre_r);
    recur_store(dxw, H, dpre_z);
    recur_store(dhw, H, dpre_z);
    recur_store(dxw, 2 * H, dpre_n);
    recur_store(dhw, 2 * H, dpre_n * rg);
    recur_store(dprev0, 0, da * z);
}
