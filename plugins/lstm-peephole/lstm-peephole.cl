/*
 * lstm-peephole.cl: the OpenCL C kernels of the peephole LSTM, the same math
 * as lstm-peephole-kernels.c. Built with -DRECUR_G=4; param0 is
 * weight_peephole [3, H] (rows i, f, o), dparam0 its per-row gradient.
 * One work-item per unit j of row r.
 */
#if !defined(RECUR_G) || RECUR_G != 4
#error "lstm-peephole.cl: build with -DRECUR_G=4"
#endif

RECUR_CELL_KERNEL(lstm_peephole_forward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(4 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const float c_prev = prev1[h];
    const float gi = recur_sigmoid(hw[g] + xw[g] + param0[j] * c_prev);
    const float gf = recur_sigmoid(hw[g + H] + xw[g + H] + param0[H + j] * c_prev);
    const float gg = tanh(hw[g + 2 * H] + xw[g + 2 * H]);
    const float c = gf * c_prev + gi * gg;
    const float go = recur_sigmoid(hw[g + 3 * H] + xw[g + 3 * H] + param0[2 * H + j] * c);
    const float tc = tanh(c);
    hw[g] = gi;
    hw[g + H] = gf;
    hw[g + 2 * H] = gg;
    hw[g + 3 * H] = go;
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

RECUR_CELL_KERNEL(lstm_peephole_backward_0) {
    RECUR_CELL_BIND;
    const size_t g = (size_t)r * (size_t)(4 * H) + (size_t)j;
    const size_t h = (size_t)r * (size_t)H + (size_t)j;
    const size_t s = (size_t)r * (size_t)(5 * H) + (size_t)j;
    const size_t p = (size_t)r * (size_t)(3 * H) + (size_t)j;
    const float gi = save[s], gf = save[s + H], gg = save[s + 2 * H], go = save[s + 3 * H];
    const float tc = save[s + 4 * H];
    const float da = dnext0[h], dc_in = dnext1[h], c_prev = prev1[h], c = next1[h];
    const float d_o = da * tc * go * (1.0f - go);
    const float dc = dc_in + da * go * (1.0f - tc * tc) + d_o * param0[2 * H + j];
    const float d_i = dc * gg * gi * (1.0f - gi);
    const float d_f = dc * c_prev * gf * (1.0f - gf);
    dxw[g] = d_i;
    dxw[g + H] = d_f;
    dxw[g + 2 * H] = dc * gi * (1.0f - gg * gg);
    dxw[g + 3 * H] = d_o;
    dprev1[h] = dc * gf + d_i * param0[j] + d_f * param0[H + j];
    dprev0[h] = 0.0f;
    dparam0[p] += d_i * c_prev;
    dparam0[p + H] += d_f * c_prev;
    dparam0[p + 2 * H] += d_o * c;
}
