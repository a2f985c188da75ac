/*
 * gru-ln.cl: the OpenCL C kernels of the layer-normalised GRU, the same math
 * as gru-ln-kernels.c (gru-ln.c has the formulas). Built with -DRECUR_G=3.
 * Row kernels (RECUR_CELL_ROW_KERNELS): one work-group of L work-items per
 * row r; work-item lid owns the units j = lid, lid + L, ... and, for each,
 * the three gate entries k = g*H + j, so no work-item reads a value of hw,
 * dxw, dhw or save that another one writes in the same call. The row's means
 * and variances come from recur_row_sum (recur_row_ln_stats,
 * recur_row_ln_back). Params: 0 gamma_x, 1 gamma_h, 2 bias, 3 recurrent_bias
 * [3H].
 */
#if !defined(RECUR_G) || RECUR_G != 3
#error "gru-ln.cl: build with -DRECUR_G=3"
#endif

#define EPS 1e-5f
/* save blocks of H, as on the CPU */
#define S_NX 0
#define S_NH 3
#define S_GATES 6
#define S_HVN 9
#define S_RX 10
#define S_RH 11
#define NSAVE 12

RECUR_CELL_KERNEL(gru_ln_forward_0) {
    RECUR_CELL_ROW_BIND;
    const int GH = 3 * H;
    __global const float *x = xw + (size_t)r * GH, *hp = hw + (size_t)r * GH, *ap = prev0 + (size_t)r * H;
    __global float *a = next0 + (size_t)r * H;
    __global float *s = training ? save + (size_t)r * NSAVE * H : 0;
    /* the means and 1/σ of the two products over 3H */
    float mx, mh;
    const float rx = recur_row_ln_stats(scratch, x, GH, EPS, &mx);
    const float rh = recur_row_ln_stats(scratch, hp, GH, EPS, &mh);
    /* per unit: xv = γ_x nx + b, hv = γ_h nh + b_r; r, z = σ(xv + hv), n = tanh(xv_n + r hv_n) */
    for (int j = lid; j < H; j += L) {
        float xv[3], hv[3];
        for (int g = 0; g < 3; g++) {
            const int k = g * H + j;
            const float nx = (x[k] - mx) * rx, nh = (hp[k] - mh) * rh;
            if (s) s[S_NX * H + k] = nx, s[S_NH * H + k] = nh;
            xv[g] = param0[k] * nx + param2[k];
            hv[g] = param1[k] * nh + param3[k];
        }
        const float gr = recur_sigmoid(xv[0] + hv[0]), gz = recur_sigmoid(xv[1] + hv[1]);
        const float gn = tanh(xv[2] + gr * hv[2]);
        if (s) {
            s[S_GATES * H + j] = gr;
            s[S_GATES * H + H + j] = gz;
            s[S_GATES * H + 2 * H + j] = gn;
            s[S_HVN * H + j] = hv[2];
            s[S_RX * H + j] = rx;
            s[S_RH * H + j] = rh;
        }
        /* a = z a^{<t-1>} + (1 - z) n */
        a[j] = gz * ap[j] + (1.0f - gz) * gn;
    }
}

RECUR_CELL_KERNEL(gru_ln_backward_0) {
    RECUR_CELL_ROW_BIND;
    const int GH = 3 * H;
    __global const float *s = save + (size_t)r * NSAVE * H;
    __global const float *da = dnext0 + (size_t)r * H, *ap = prev0 + (size_t)r * H;
    __global float *dx = dxw + (size_t)r * GH, *dh = dhw + (size_t)r * GH;
    __global float *dgx = dparam0 + (size_t)r * GH, *dgh = dparam1 + (size_t)r * GH;
    __global float *db = dparam2 + (size_t)r * GH, *dbr = dparam3 + (size_t)r * GH;
    __global float *dap = dprev0 + (size_t)r * H;
    const float rx = s[S_RX * H], rh = s[S_RH * H];
    /* the gates' dxv, dhv, the parameters', and d LN(x), d LN(h) (waiting in dxw, dhw) */
    float ax1 = 0.0f, ax2 = 0.0f, ah1 = 0.0f, ah2 = 0.0f;
    for (int j = lid; j < H; j += L) {
        __global const float *gt = s + S_GATES * H;
        const float gr = gt[j], gz = gt[H + j], gn = gt[2 * H + j];
        const float dvn = da[j] * (1.0f - gz) * (1.0f - gn * gn);
        const float dvr = dvn * s[S_HVN * H + j] * gr * (1.0f - gr);
        const float dvz = da[j] * (ap[j] - gn) * gz * (1.0f - gz);
        const float dxv[3] = {dvr, dvz, dvn}, dhv[3] = {dvr, dvz, dvn * gr};
        for (int g = 0; g < 3; g++) {
            const int k = g * H + j;
            const float nx = s[S_NX * H + k], nh = s[S_NH * H + k];
            const float tx = dxv[g] * param0[k], ty = dhv[g] * param1[k];
            db[k] += dxv[g];
            dbr[k] += dhv[g];
            dgx[k] += dxv[g] * nx;
            dgh[k] += dhv[g] * nh;
            dx[k] = tx;
            dh[k] = ty;
            ax1 += tx, ax2 += tx * nx, ah1 += ty, ah2 += ty * nh;
        }
        dap[j] = da[j] * gz;
    }
    recur_row_ln_back(scratch, dx, s + S_NX * H, rx, ax1, ax2, H, 3);
    recur_row_ln_back(scratch, dh, s + S_NH * H, rh, ah1, ah2, H, 3);
}
