/*
 * mgu-math.h: the minimal gated unit's pointwise math, written once: mgu.c
 * compiles it for the CPU (recur/recur-math.h) and the Makefile embeds it as
 * the cell's OpenCL source (the host prepends recur/recur-cell-cl.h, which
 * defines the same macros). Each kernel computes one unit of one row;
 * xw, hw, dxw rows hold gate f then gate a, save rows f then ã.
 */

/* Stage 0: f = σ(xw_f + hw_f), left in hw_f (scratch) for stage 1; src = f * a^{<t-1>}. */
RECUR_MATH_KERNEL(mgu_forward_0) {
    const recur_f f = recur_sigmoid(recur_load(xw, 0) + recur_load(hw, 0));
    recur_store(hw, 0, f);
    recur_store(src, 0, f * recur_load(prev0, 0));
    if (training) recur_store(save, 0, f);
}

/* Stage 1: ã = tanh(xw_a + hw_a) (hw_a = W_hh[a] src); a^{<t>} = (1 - f) a^{<t-1>} + f ã. */
RECUR_MATH_KERNEL(mgu_forward_1) {
    const recur_f f = recur_load(hw, 0), cand = recur_tanh(recur_load(xw, H) + recur_load(hw, H));
    recur_store(next0, 0, (1.0f - f) * recur_load(prev0, 0) + f * cand);
    if (training) recur_store(save, H, cand);
}

/* Backward of stage 1 (runs first), with da = dL/da^{<t>}:
 *   dpre_a = da * f * (1 - ã²);  dL/da^{<t-1>} = da * (1 - f)  (overwrites dprev) */
RECUR_MATH_KERNEL(mgu_backward_1) {
    const recur_f f = recur_load(save, 0), cand = recur_load(save, H), da = recur_load(dnext0, 0);
    recur_store(dxw, H, da * f * (1.0f - cand * cand));
    recur_store(dprev0, 0, da * (1.0f - f));
}

/* Backward of stage 0, with dsrc = dL/d src (the engine's product of stage 1):
 *   df = da * (ã - a^{<t-1>}) + dsrc * a^{<t-1>};  dpre_f = df * f (1 - f);  dL/da^{<t-1>} += dsrc * f */
RECUR_MATH_KERNEL(mgu_backward_0) {
    const recur_f f = recur_load(save, 0), cand = recur_load(save, H), p = recur_load(prev0, 0);
    const recur_f ds = recur_load(dsrc, 0);
    const recur_f df = recur_load(dnext0, 0) * (cand - p) + ds * p;
    recur_store(dxw, 0, df * f * (1.0f - f));
    recur_accum(dprev0, 0, ds * f);
}
