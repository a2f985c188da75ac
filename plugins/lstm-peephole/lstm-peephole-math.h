/*
 * lstm-peephole-math.h: the pointwise math of the peephole LSTM (oneDNN's
 * vanilla_lstm with weights_peephole), written once for the CPU
 * (lstm-peephole-kernels.c) and OpenCL (the cell's source). Gates i, f, g,
 * o, each pre = xw + hw (biases included); param0 = weight_peephole [3, H]
 * with rows p_i, p_f, p_o:
 *   Γ_i = σ(pre_i + p_i * c^{<t-1>})   Γ_f = σ(pre_f + p_f * c^{<t-1>})
 *   c̃ = tanh(pre_g)                    c^{<t>} = Γ_f * c^{<t-1>} + Γ_i * c̃
 *   Γ_o = σ(pre_o + p_o * c^{<t>})      a^{<t>} = Γ_o * tanh(c^{<t>})
 * Saved per unit: Γ_i, Γ_f, c̃, Γ_o, tanh(c^{<t>}).
 */
RECUR_MATH_KERNEL(lstm_peephole_forward_0) {
    const recur_f c_prev = recur_load(prev1, 0);
    const recur_f gi = recur_sigmoid(recur_load(hw, 0) + recur_load(xw, 0) + recur_load(param0, 0) * c_prev);
    const recur_f gf = recur_sigmoid(recur_load(hw, H) + recur_load(xw, H) + recur_load(param0, H) * c_prev);
    const recur_f gg = recur_tanh(recur_load(hw, 2 * H) + recur_load(xw, 2 * H));
    const recur_f c = gf * c_prev + gi * gg;
    const recur_f go = recur_sigmoid(recur_load(hw, 3 * H) + recur_load(xw, 3 * H) + recur_load(param0, 2 * H) * c);
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
 *   dpre_o = da * tanh(c) * σ'(o)
 *   dc = dc_in + da * Γ_o * (1 - tanh²(c)) + dpre_o * p_o
 *   dpre_i = dc * c̃ * σ'(i)   dpre_f = dc * c^{<t-1>} * σ'(f)   dpre_g = dc * Γ_i * (1 - c̃²)
 *   dL/dc^{<t-1>} = dc * Γ_f + dpre_i * p_i + dpre_f * p_f
 *   dp_i += dpre_i * c^{<t-1>}   dp_f += dpre_f * c^{<t-1>}   dp_o += dpre_o * c^{<t>}
 */
RECUR_MATH_KERNEL(lstm_peephole_backward_0) {
    const recur_f gi = recur_load(save, 0), gf = recur_load(save, H), gg = recur_load(save, 2 * H);
    const recur_f go = recur_load(save, 3 * H), tc = recur_load(save, 4 * H);
    const recur_f da = recur_load(dnext0, 0), c_prev = recur_load(prev1, 0), c = recur_load(next1, 0);
    const recur_f d_o = da * tc * go * (1.0f - go);
    const recur_f dc = recur_load(dnext1, 0) + da * go * (1.0f - tc * tc) + d_o * recur_load(param0, 2 * H);
    const recur_f d_i = dc * gg * gi * (1.0f - gi);
    const recur_f d_f = dc * c_prev * gf * (1.0f - gf);
    recur_store(dxw, 0, d_i);
    recur_store(dxw, H, d_f);
    recur_store(dxw, 2 * H, dc * gi * (1.0f - gg * gg));
    recur_store(dxw, 3 * H, d_o);
    recur_store(dprev1, 0, dc * gf + d_i * recur_load(param0, 0) + d_f * recur_load(param0, H));
    recur_store(dprev0, 0, recur_splat(0.0f));
    recur_accum(dparam0, 0, d_i * c_prev);
    recur_accum(dparam0, H, d_f * c_prev);
    recur_accum(dparam0, 2 * H, d_o * c);
}
