/*
 * gru-simple-math.h: the pointwise math of the simplified GRU of the course
 * notes (update gate only), written once for the CPU (gru-simple-kernels.c)
 * and OpenCL (the cell's source). pre = xw + hw for gates u, c:
 *   Γ_u = σ(pre_u)   c̃ = tanh(pre_c)   c^{<t>} = Γ_u * c̃ + (1 - Γ_u) * c^{<t-1>}
 * Saved per unit: Γ_u, c̃.
 */
RECUR_MATH_KERNEL(gru_simple_forward_0) {
    const recur_f u = recur_sigmoid(recur_load(hw, 0) + recur_load(xw, 0));
    const recur_f cand = recur_tanh(recur_load(hw, H) + recur_load(xw, H));
    recur_store(next0, 0, u * cand + (1.0f - u) * recur_load(prev0, 0));
    if (training) {
        recur_store(save, 0, u);
        recur_store(save, H, cand);
    }
}

/*
 * With dc = dL/dc^{<t>}:
 *   dpre_u = dc * (c̃ - c^{<t-1>}) * Γ_u (1 - Γ_u)   dpre_c = dc * Γ_u * (1 - c̃²)
 *   dL/dc^{<t-1>} = dc * (1 - Γ_u)   (the engine adds the product's part)
 */
RECUR_MATH_KERNEL(gru_simple_backward_0) {
    const recur_f u = recur_load(save, 0), cand = recur_load(save, H), dc = recur_load(dnext0, 0);
    recur_store(dxw, 0, dc * (cand - recur_load(prev0, 0)) * u * (1.0f - u));
    recur_store(dxw, H, dc * u * (1.0f - cand * cand));
    recur_store(dprev0, 0, dc * (1.0f - u));
}
