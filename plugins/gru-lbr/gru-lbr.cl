/*
 * gru-lbr.cl: the OpenCL C kernels of the linear-before-reset GRU (PyTorch's
 * nn.GRU), the same math as gru-lbr-kernels.c. The host prepends
 * recur-cell-cl.h and builds with -DRECUR_G=3. Gates r, z, n; rows of
 * xw/hw/dxw/dhw are 3*H wide, save rows 4*H (r, z, n, hw_n). One work-item
 * per unit j of row r (the BIND's r is the row: the reset gate is `rg`, the
 * candidate `cand`).
 */
#if !defined(RECUR_G) || RECUR_G != 3
#error "gru-lbr.cl: build with -DRECUR_G=3"
#endif

/* No fused multiply-add, as in the CPU kernels (C11 builds do not contract):
 * the arithmetic then rounds exactly as on the CPU, and only exp/tanh may
 * differ by their few ulp. */

/*
 * xw holds W_i x + b_i (+ b_h for r, z); hw holds W_h a^{<t-1>}; b_hn is
 * added here (n has bias_hh_in_hw):
 *   r = σ(xw_r + hw_r)     z = σ(xw_z + hw_z)
 *   n = tanh(xw_n + r * hw_n)            (hw_n = W_hn a^{<t-1>} + b_hn)
 *   a^{<t>} = (1 - z) * n + z * a^{<t-1>}
 * z weights the OLD state (PyTorch's polarity; Γ_u = 1 - z). As on the
 * CPU, hw is left holding r, z, n. Saved per unit: r, z, n, hw_n.
 */
RECUR_CELL_KERNEL(gru_lbr_forward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(3 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float hwn = hw[g + 2 * H] + b_hh[2 * H + j];
    const float rg = recur_sigmoid(hw[g] + xw[g]);
    const float z = recur_sigmoid(hw[g + H] + xw[g + H]);
    const float cand = tanh(xw[g + 2 * H] + rg * hwn);
    hw[g] = rg;
    hw[g + H] = z;
    hw[g + 2 * H] = cand;
    next0[h] = (1.0f - z) * cand + z * prev0[h];
    if (training) {
        const size_t s = (size_t)r * (size_t)(4 * H) + (size_t)j;
        save[s] = rg;
        save[s + H] = z;
        save[s + 2 * H] = cand;
        save[s + 3 * H] = hwn;
    }
}

/*
 * Backward, with da = dL/da^{<t>}:
 *   dn = da * (1 - z)    dz = da * (a^{<t-1>} - n)    dL/da^{<t-1>} = da * z (+ product)
 *   dpre_n = dn * (1 - n²)          -> dxw_n; dhw_n = dpre_n * r
 *   dr = dpre_n * hw_n; dpre_r = dr * r(1 - r); dpre_z = dz * z(1 - z)   (dxw = dhw for r, z)
 * RECUR_CELL_SPLIT_RECURRENT_GRAD: dxw and dhw are two buffers, both
 * written for every gate. The only stage, so dprev is overwritten.
 */
RECUR_CELL_KERNEL(gru_lbr_backward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(3 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const size_t s = (size_t)r * (size_t)(4 * H) + (size_t)j;
    const float rg = save[s], z = save[s + H], cand = save[s + 2 * H], hwn = save[s + 3 * H];
    const float da = dnext0[h], h_prev = prev0[h];
    const float dpre_n = da * (1.0f - z) * (1.0f - cand * cand);
    const float dpre_r = dpre_n * hwn * rg * (1.0f - rg);
    const float dpre_z = da * (h_prev - cand) * z * (1.0f - z);
    dxw[g] = dpre_r;
    dhw[g] = dpre_r;
    dxw[g + H] = dpre_z;
    dhw[g + H] = dpre_z;
    dxw[g + 2 * H] = dpre_n;
    dhw[g + 2 * H] = dpre_n * rg;
    dprev0[h] = da * z;
}
