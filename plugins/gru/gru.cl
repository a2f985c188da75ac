/*
 * gru.cl: the OpenCL C kernels of the GRU of the course notes (reset before
 * the product), the same math as gru-kernels.c. The host prepends
 * recur-cell-cl.h and builds with -DRECUR_G=3. Gates u, r, c; rows of
 * xw/hw/dxw are 3*H wide, save rows 3*H (Γ_u, Γ_r, c̃). One work-item per
 * unit j of row r.
 */
#if !defined(RECUR_G) || RECUR_G != 3
#error "gru.cl: build with -DRECUR_G=3"
#endif

/* No fused multiply-add, as in the CPU kernels (C11 builds do not contract):
 * the arithmetic then rounds exactly as on the CPU, and only exp/tanh may
 * differ by their few ulp. */

/*
 * Stage 0, after the engine's product hw_{u,r} = W_{u,r} c^{<t-1>}:
 *   Γ_u = σ(W_u [c^{<t-1>}, x^{<t>}] + b_u)
 *   Γ_r = σ(W_r [c^{<t-1>}, x^{<t>}] + b_r)
 *   src = Γ_r * c^{<t-1>}           (the input of stage 1's product)
 * Γ_u (and Γ_r) stay in hw_u (hw_r): stage 1 reads Γ_u from hw_u. In
 * training Γ_u and Γ_r are saved (save[0..2H)).
 */
RECUR_CELL_KERNEL(gru_forward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(3 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float gu = recur_sigmoid(hw[g] + xw[g]);
    const float gr = recur_sigmoid(hw[g + H] + xw[g + H]);
    hw[g] = gu;
    hw[g + H] = gr;
    src[h] = gr * prev0[h];
    if (training) {
        const size_t s = (size_t)r * (size_t)(3 * H) + (size_t)j;
        save[s] = gu;
        save[s + H] = gr;
    }
}

/*
 * Stage 1, after hw_c = W_c src:
 *   c̃^{<t>} = tanh(W_c [Γ_r * c^{<t-1>}, x^{<t>}] + b_c)
 *   c^{<t>} = Γ_u * c̃^{<t>} + (1 - Γ_u) * c^{<t-1>}
 * Γ_u comes from hw_u (left there by stage 0); c̃ is left in hw_c and, in
 * training, saved (save[2H..3H)).
 */
RECUR_CELL_KERNEL(gru_forward_1) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(3 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float gu = hw[g];
    const float cand = tanh(hw[g + 2 * H] + xw[g + 2 * H]);
    hw[g + 2 * H] = cand;
    next0[h] = gu * cand + (1.0f - gu) * prev0[h];
    if (training) save[(size_t)r * (size_t)(3 * H) + (size_t)(2 * H) + (size_t)j] = cand;
}

/*
 * Backward of stage 1 (runs first), with dc = dL/dc^{<t>}:
 *   dc̃ = dc * Γ_u        dΓ_u = dc * (c̃ - c^{<t-1>})     dL/dc^{<t-1>} = dc * (1 - Γ_u)
 *   dpre_c = dc̃ * (1 - c̃²)        dpre_u = dΓ_u * Γ_u (1 - Γ_u)
 * Writes dxw_u and dxw_c (dhw == dxw) and overwrites dprev.
 */
RECUR_CELL_KERNEL(gru_backward_1) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(3 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float gu = save[g], cand = save[g + 2 * H];
    const float dc = dnext0[h], c_prev = prev0[h];
    dxw[g] = dc * (cand - c_prev) * gu * (1.0f - gu);
    dxw[g + 2 * H] = dc * gu * (1.0f - cand * cand);
    dprev0[h] = dc * (1.0f - gu);
}

/*
 * Backward of stage 0, with dsrc = dL/d(Γ_r * c^{<t-1>}) from the engine:
 *   dΓ_r = dsrc * c^{<t-1>}     dL/dc^{<t-1>} += dsrc * Γ_r
 *   dpre_r = dΓ_r * Γ_r (1 - Γ_r)
 * Writes dxw_r (dhw == dxw) and adds to dprev.
 */
RECUR_CELL_KERNEL(gru_backward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(3 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float gr = save[g + H];
    const float ds = dsrc[h], c_prev = prev0[h];
    dxw[g + H] = ds * c_prev * gr * (1.0f - gr);
    dprev0[h] += ds * gr;
}
