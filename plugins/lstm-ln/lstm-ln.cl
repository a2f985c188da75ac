/*
 * lstm-ln.cl: the OpenCL C kernels of the layer-normalised LSTM, the same
 * math as lstm-ln-kernels.c (lstm-ln.c has the formulas). Built with
 * -DRECUR_G=4. Row kernels (RECUR_CELL_ROW_KERNELS): one work-group of L
 * work-items per row r; work-item lid owns the units j = lid, lid + L, ...
 * and, for each, the four gate entries k = g*H + j, so no work-item reads a
 * value of xw, hw or save that another one writes in the same call. The
 * row's means and variances come from recur_row_sum (recur_row_ln_stats,
 * recur_row_ln_back). Params: 0 gamma_x, 1 gamma_h, 2 bias [4H]; 3 gamma_c,
 * 4 beta_c [H].
 */
#if !defined(RECUR_G) || RECUR_G != 4
#error "lstm-ln.cl: build with -DRECUR_G=4"
#endif

#define EPS 1e-5f
/* save blocks of H, as on the CPU */
#define S_NX 0
#define S_NH 4
#define S_GATES 8
#define S_NC 12
#define S_TH 13
#define S_RX 14
#define S_RH 15
#define S_RC 16
#define NSAVE 17

RECUR_CELL_KERNEL(lstm_ln_forward_0) {
    RECUR_CELL_ROW_BIND;
    const int GH = 4 * H;
    __global const float *x = xw + (size_t)r * GH, *hp = hw + (size_t)r * GH, *cp = prev1 + (size_t)r * H;
    __global float *c = next1 + (size_t)r * H, *h = next0 + (size_t)r * H;
    __global float *s = training ? save + (size_t)r * NSAVE * H : 0;
    /* the means and 1/σ of the two products over 4H */
    float mx, mh;
    const float rx = recur_row_ln_stats(scratch, x, GH, EPS, &mx);
    const float rh = recur_row_ln_stats(scratch, hp, GH, EPS, &mh);
    /* per unit: v = γ_x nx + γ_h nh + b, the gates, c; Γ_o waits in a^{<t>} */
    float sc = 0.0f;
    for (int j = lid; j < H; j += L) {
        float gate[4];
        for (int g = 0; g < 4; g++) {
            const int k = g * H + j;
            const float nx = (x[k] - mx) * rx, nh = (hp[k] - mh) * rh;
            if (s) s[S_NX * H + k] = nx, s[S_NH * H + k] = nh;
            const float v = param0[k] * nx + param1[k] * nh + param2[k];
            gate[g] = g == 2 ? tanh(v) : recur_sigmoid(v);
            if (s) s[S_GATES * H + k] = gate[g];
        }
        const float cj = gate[1] * cp[j] + gate[0] * gate[2];
        c[j] = cj;
        h[j] = gate[3];
        sc += cj;
    }
    const float mc = recur_row_sum(scratch, sc) / (float)H;
    float vc = 0.0f;
    for (int j = lid; j < H; j += L) vc += (c[j] - mc) * (c[j] - mc);
    const float rc = 1.0f / sqrt(recur_row_sum(scratch, vc) / (float)H + EPS);
    /* a = Γ_o tanh(γ_c LN(c) + β_c) */
    for (int j = lid; j < H; j += L) {
        const float nc = (c[j] - mc) * rc, th = tanh(param3[j] * nc + param4[j]);
        if (s) {
            s[S_NC * H + j] = nc;
            s[S_TH * H + j] = th;
            s[S_RX * H + j] = rx;
            s[S_RH * H + j] = rh;
            s[S_RC * H + j] = rc;
        }
        h[j] = h[j] * th;
    }
}

RECUR_CELL_KERNEL(lstm_ln_backward_0) {
    RECUR_CELL_ROW_BIND;
    const int GH = 4 * H;
    __global const float *s = save + (size_t)r * NSAVE * H;
    __global const float *da = dnext0 + (size_t)r * H, *dci = dnext1 + (size_t)r * H, *cp = prev1 + (size_t)r * H;
    __global float *dx = dxw + (size_t)r * GH, *dh = dhw + (size_t)r * GH;
    __global float *dgx = dparam0 + (size_t)r * GH, *dgh = dparam1 + (size_t)r * GH, *db = dparam2 + (size_t)r * GH;
    __global float *dgc = dparam3 + (size_t)r * H, *dbc = dparam4 + (size_t)r * H;
    __global float *dap = dprev0 + (size_t)r * H, *dcp = dprev1 + (size_t)r * H;
    const float rx = s[S_RX * H], rh = s[S_RH * H], rc = s[S_RC * H];
    /* ds = da Γ_o (1 - th²); dnc = ds γ_c (waits in dprev1); the means of dnc and dnc nc */
    float m1 = 0.0f, m2 = 0.0f;
    for (int j = lid; j < H; j += L) {
        const float go = s[S_GATES * H + 3 * H + j], th = s[S_TH * H + j], nc = s[S_NC * H + j];
        const float ds = da[j] * go * (1.0f - th * th), dnc = ds * param3[j];
        dgc[j] += ds * nc;
        dbc[j] += ds;
        dcp[j] = dnc;
        m1 += dnc;
        m2 += dnc * nc;
    }
    m1 = recur_row_sum(scratch, m1) / (float)H;
    m2 = recur_row_sum(scratch, m2) / (float)H;
    /* dc, the gates' dv, the parameters', and d LN(x), d LN(h) (waiting in dxw, dhw) */
    float ax1 = 0.0f, ax2 = 0.0f, ah1 = 0.0f, ah2 = 0.0f;
    for (int j = lid; j < H; j += L) {
        __global const float *gt = s + S_GATES * H;
        const float gi = gt[j], gf = gt[H + j], gg = gt[2 * H + j], go = gt[3 * H + j];
        const float nc = s[S_NC * H + j], th = s[S_TH * H + j];
        const float dc = dci[j] + rc * (dcp[j] - m1 - nc * m2);
        float dv[4];
        dv[0] = dc * gg * gi * (1.0f - gi);
        dv[1] = dc * cp[j] * gf * (1.0f - gf);
        dv[2] = dc * gi * (1.0f - gg * gg);
        dv[3] = da[j] * th * go * (1.0f - go);
        for (int g = 0; g < 4; g++) {
            const int k = g * H + j;
            const float nx = s[S_NX * H + k], nh = s[S_NH * H + k];
            const float tx = dv[g] * param0[k], ty = dv[g] * param1[k];
            db[k] += dv[g];
            dgx[k] += dv[g] * nx;
            dgh[k] += dv[g] * nh;
            dx[k] = tx;
            dh[k] = ty;
            ax1 += tx, ax2 += tx * nx, ah1 += ty, ah2 += ty * nh;
        }
        dcp[j] = dc * gf;
        dap[j] = 0.0f;
    }
    recur_row_ln_back(scratch, dx, s + S_NX * H, rx, ax1, ax2, H, 4);
    recur_row_ln_back(scratch, dh, s + S_NH * H, rh, ah1, ah2, H, 4);
}
