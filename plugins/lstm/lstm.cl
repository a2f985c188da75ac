/*
 * lstm.cl: the OpenCL C kernels of the LSTM (PyTorch's nn.LSTM), the same
 * math as lstm-kernels.c. The host prepends recur-cell-cl.h and builds with
 * -DRECUR_G=4. Gates i, f, g, o; rows of xw/hw/dxw are 4*H wide, save rows
 * 5*H (Γ_i, Γ_f, c̃, Γ_o, tanh(c^{<t>})). States: 0 = a, 1 = c. One
 * work-item per unit j of row r.
 */
#if !defined(RECUR_G) || RECUR_G != 4
#error "lstm.cl: build with -DRECUR_G=4"
#endif

/* No fused multiply-add, as in the CPU kernels (C11 builds do not contract):
 * the arithmetic then rounds exactly as on the CPU, and only exp/tanh may
 * differ by their few ulp. */

/*
 * Gates in PyTorch's order i, f, g, o, each pre = xw + hw (biases included):
 *   Γ_i = σ(pre_i)   Γ_f = σ(pre_f)   c̃^{<t>} = tanh(pre_g)   Γ_o = σ(pre_o)
 *   c^{<t>} = Γ_f * c^{<t-1>} + Γ_i * c̃^{<t>}
 *   a^{<t>} = Γ_o * tanh(c^{<t>})
 * As on the CPU, hw is left holding the four activations. Saved for BPTT,
 * per unit: Γ_i, Γ_f, c̃, Γ_o, tanh(c^{<t>}).
 */
RECUR_CELL_KERNEL(lstm_forward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(4 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float gi = recur_sigmoid(hw[g] + xw[g]);
    const float gf = recur_sigmoid(hw[g + H] + xw[g + H]);
    const float gg = tanh(hw[g + 2 * H] + xw[g + 2 * H]);
    const float go = recur_sigmoid(hw[g + 3 * H] + xw[g + 3 * H]);
    hw[g] = gi;
    hw[g + H] = gf;
    hw[g + 2 * H] = gg;
    hw[g + 3 * H] = go;
    const float c = gf * prev1[h] + gi * gg;
    const float tc = tanh(c);
    next1[h] = c;
    next0[h] = go * tc;
    if (training) {
        const size_t s = (size_t)r * (size_t)(5 * H) + (size_t)j;
        save[s] = gi;
        save[s + H] = gf;
        save[s + 2 * H] = gg;
        save[s + 3 * H] = go;
        save[s + 4 * H] = tc;
    }
}

/*
 * Backward, with da = dL/da^{<t>} and dc_in = dL/dc^{<t>} from later steps:
 *   dΓ_o = da * tanh(c)          dc = dc_in + da * Γ_o * (1 - tanh²(c))
 *   dΓ_i = dc * c̃   dΓ_f = dc * c^{<t-1>}   dc̃ = dc * Γ_i
 *   dL/dc^{<t-1>} = dc * Γ_f     (dL/da^{<t-1>} comes only from the product)
 *   dpre = dΓ * σ' (σ' = σ(1-σ)) for i, f, o and dc̃ * (1 - c̃²) for g
 * Writes dxw (== dhw) for all four gates; the only stage, so both dprev
 * are overwritten (dprev0 with 0).
 */
RECUR_CELL_KERNEL(lstm_backward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(4 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const size_t s = (size_t)r * (size_t)(5 * H) + (size_t)j;
    const float gi = save[s], gf = save[s + H], gg = save[s + 2 * H], go = save[s + 3 * H];
    const float tc = save[s + 4 * H];
    const float da = dnext0[h], dc_in = dnext1[h], c_prev = prev1[h];
    const float dc = dc_in + da * go * (1.0f - tc * tc);
    dxw[g] = dc * gg * gi * (1.0f - gi);
    dxw[g + H] = dc * c_prev * gf * (1.0f - gf);
    dxw[g + 2 * H] = dc * gi * (1.0f - gg * gg);
    dxw[g + 3 * H] = da * tc * go * (1.0f - go);
    dprev1[h] = dc * gf;
    dprev0[h] = 0.0f;
}
