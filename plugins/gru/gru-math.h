/*
 * gru-math.h: the pointwise math of the original GRU of the course notes
 * (Cho et al. 2014; ONNX linear_before_reset=0), written once for the CPU
 * (gru-kernels.c) and OpenCL (the cell's source). The reset gate multiplies
 * the state BEFORE the matrix product: two stages, two kernels each way.
 * Gates u, r, c; saved per unit: Γ_u, Γ_r, c̃.
 */

/*
 * Stage 0, after the engine's product hw_{u,r} = W_{u,r} c^{<t-1>}:
 *   Γ_u = σ(W_u [c^{<t-1>}, x^{<t>}] + b_u)
 *   Γ_r = σ(W_r [c^{<t-1>}, x^{<t>}] + b_r)
 *   src = Γ_r * c^{<t-1>}           (the input of stage 1's product)
 * Γ_u waits in hw_u (scratch) for stage 1.
 */
RECUR_MATH_KERNEL(gru_forward_0) {
    const recur_f u = recur_sigmoid(recur_load(hw, 0) + recur_load(xw, 0));
    const recur_f rg = recur_sigmoid(recur_load(hw, H) + recur_load(xw, H));
    recur_store(hw, 0, u);
    recur_store(src, 0, rg * recur_load(prev0, 0));
    if (training) {
        recur_store(save, 0, u);
        recur_store(save, H, rg);
    }
}

/*
 * Stage 1, after hw_c = W_c src:
 *   c̃^{<t>} = tanh(W_c [Γ_r * c^{<t-1>}, x^{<t>}] + b_c)
 *   c^{<t>} = Γ_u * c̃^{<t>} + (1 - Γ_u) * c^{<t-1>}
 * Γ_u weights the candidate (the notes' polarity; PyTorch's z = 1 - Γ_u).
 */
RECUR_MATH_KERNEL(gru_forward_1) {
    const recur_f u = recur_load(hw, 0);
    const recur_f cand = recur_tanh(recur_load(hw, 2 * H) + recur_load(xw, 2 * H));
    recur_store(next0, 0, u * cand + (1.0f - u) * recur_load(prev0, 0));
    if (training) recur_store(save, 2 * H, cand);
}

/*
 * Backward of stage 1 (runs first), with dc = dL/dc^{<t>}:
 *   dc̃ = dc * Γ_u        dΓ_u = dc * (c̃ - c^{<t-1>})     dL/dc^{<t-1>} = dc * (1 - Γ_u)
 *   dpre_c = dc̃ * (1 - c̃²)        dpre_u = dΓ_u * Γ_u (1 - Γ_u)
 */
RECUR_MATH_KERNEL(gru_backward_1) {
    const recur_f u = recur_load(save, 0), cand = recur_load(save, 2 * H), dc = recur_load(dnext0, 0);
    recur_store(dxw, 0, dc * (cand - recur_load(prev0, 0)) * u * (1.0f - u));
    recur_store(dxw, 2 * H, dc * u * (1.0f - cand * cand));
    recur_store(dprev0, 0, dc * (1.0f - u));
}

/*
 * Backward of stage 0, with dsrc = dL/d(Γ_r * c^{<t-1>}) from the engine:
 *   dΓ_r = dsrc * c^{<t-1>}     dL/dc^{<t-1>} += dsrc * Γ_r
 *   dpre_r = dΓ_r * Γ_r (1 - Γ_r)
 */
RECUR_MATH_KERNEL(gru_backward_0) {
    const recur_f rg = recur_load(save, H), dsrc = recur_load(dsrc, 0);
    recur_store(dxw, H, dsrc * recur_load(prev0, 0) * rg * (1.0f - rg));
    recur_accum(dprev0, 0, dsrc * rg);
}
