/*
 * lstm-math.h: the pointwise math of the LSTM (PyTorch's nn.LSTM), written
 * once: lstm-kernels.c compiles it for each CPU ISA (recur/recur-math.h) and
 * it is the cell's OpenCL source (recur/recur-cell-cl.h), one unit j of one
 * row per kernel. Gates i, f, g, o, each pre = xw + hw (biases included):
 *   Γ_i = σ(pre_i)   Γ_f = σ(pre_f)   c̃^{<t>} = tanh(pre_g)   Γ_o = σ(pre_o)
 *   c^{<t>} = Γ_f * c^{<t-1>} + Γ_i * c̃^{<t>}
 *   a^{<t>} = Γ_o * tanh(c^{<t>})
 * Saved for BPTT, per unit: Γ_i, Γ_f, c̃, Γ_o, tanh(c^{<t>}).
 */
RECUR_MATH_KERNEL(lstm_forward_0) {
    const recur_f gi = recur_sigmoid(recur_load(hw, 0) + recur_load(xw, 0));
    const recur_f gf = recur_sigmoid(recur_load(hw, H) + recur_load(xw, H));
    const recur_f gg = recur_tanh(recur_load(hw, 2 * H) + recur_load(xw, 2 * H));
    const recur_f go = recur_sigmoid(recur_load(hw, 3 * H) + recur_load(xw, 3 * H));
    const recur_f c = gf * recur_load(prev1, 0) + gi * gg;
    const recur_f tc = recur_tanh(c);
    recur_store(next1, 0, c);
    recur_store(next0, 0, go * tc);
    if (training) {
        recur_store(save, 0, gi);
        recur_store(save, H, gf);
        recur_store(save, 2 * H, gg);
        recur_store(save, 3 * H, go);
        recur_store(save, 4 * H, tc);
    }
}

/*
 * Backward, with da = dL/da^{<t>} and dc_in = dL/dc^{<t>} from later steps:
 *   dΓ_o = da * tanh(c)          dc = dc_in + da * Γ_o * (1 - tanh²(c))
 *   dΓ_i = dc * c̃   dΓ_f = dc * c^{<t-1>}   dc̃ = dc * Γ_i
 *   dL/dc^{<t-1>} = dc * Γ_f     (dL/da^{<t-1>} comes only from the product)
 *   dpre = dΓ * σ' (σ' = σ(1-σ)) for i, f, o and dc̃ * (1 - c̃²) for g
 * Writes dxw (== dhw) for all four gates; the only stage, so both dprev are
 * overwritten (dprev0 with 0).
 */
RECUR_MATH_KERNEL(lstm_backward_0) {
    const recur_f gi = recur_load(save, 0), gf = recur_load(save, H), gg = recur_load(save, 2 * H);
    const recur_f go = recur_load(save, 3 * H), tc = recur_load(save, 4 * H);
    const recur_f da = recur_load(dnext0, 0);
    const recur_f dc = recur_load(dnext1, 0) + da * go * (1.0f - tc * tc);
    recur_store(dxw, 0, dc * gg * gi * (1.0f - gi));
    recur_store(dxw, H, dc * recur_load(prev1, 0) * gf * (1.0f - gf));
    recur_store(dxw, 2 * H, dc * gi * (1.0f - gg * gg));
    recur_store(dxw, 3 * H, da * tc * go * (1.0f - go));
    recur_store(dprev1, 0, dc * gf);
    recur_store(dprev0, 0, recur_splat(0.0f));
}
