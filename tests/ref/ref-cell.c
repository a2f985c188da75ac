/*
 * ref-cell.c - independent double-precision reference of four recurrent cells
 * (forward and backpropagation through time).  See ref-cell.h.
 *
 * Deliberately simple: sequences are processed one at a time, every matrix
 * product is a plain scalar loop, and the backward pass recomputes each step's
 * forward from the stored states instead of caching anything clever.
 */
#include "ref-cell.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_RNN_TANH, K_RNN_RELU, K_LSTM, K_GRU_LBR, K_GRU, K_UNKNOWN };

static enum kind kind_of(const ref_cell *c)
{
    if (c == NULL || c->cell == NULL)
        return K_UNKNOWN;
    if (strcmp(c->cell, "rnn") == 0) {
        if (c->variant == 0)
            return K_RNN_TANH;
        if (c->variant == 1)
            return K_RNN_RELU;
        return K_UNKNOWN;
    }
    if (strcmp(c->cell, "lstm") == 0)
        return K_LSTM;
    if (strcmp(c->cell, "gru-lbr") == 0)
        return K_GRU_LBR;
    if (strcmp(c->cell, "gru") == 0)
        return K_GRU;
    return K_UNKNOWN;
}

int ref_gates(const ref_cell *c)
{
    switch (kind_of(c)) {
    case K_RNN_TANH:
    case K_RNN_RELU:
        return 1;
    case K_LSTM:
        return 4;
    case K_GRU_LBR:
    case K_GRU:
        return 3;
    default:
        return -1;
    }
}

int ref_states(const ref_cell *c)
{
    return kind_of(c) == K_LSTM ? 2 : 1;
}

size_t ref_weight_count(const ref_cell *c)
{
    int G = ref_gates(c);
    if (G < 0)
        return 0;
    return (size_t)G * (size_t)c->H * ((size_t)c->I + (size_t)c->H + 2);
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "ref-cell: out of memory\n");
        abort();
    }
    return p;
}

static enum kind checked_kind(const ref_cell *c)
{
    enum kind k = kind_of(c);
    if (k == K_UNKNOWN || c->I < 1 || c->H < 1) {
        fprintf(stderr, "ref-cell: bad cell \"%s\" variant %d I %d H %d\n",
                c && c->cell ? c->cell : "(null)", c ? c->variant : 0, c ? c->I : 0,
                c ? c->H : 0);
        abort();
    }
    return k;
}

/* Pointers into a flat weight (or weight-gradient) vector. */
typedef struct {
    double *Wih; /* [G*H][I] */
    double *Whh; /* [G*H][H] */
    double *bih; /* [G*H]    */
    double *bhh; /* [G*H]    */
} wparts;

static wparts split(const ref_cell *c, const double *w)
{
    size_t GH = (size_t)ref_gates(c) * (size_t)c->H;
    double *p = (double *)w; /* const is restored by how the parts are used */
    wparts s;
    s.Wih = p;
    s.Whh = p + GH * (size_t)c->I;
    s.bih = p + GH * ((size_t)c->I + (size_t)c->H);
    s.bhh = s.bih + GH;
    return s;
}

/* b[row] + sum_k W[row][k] v[k]   (W row-major with `cols` columns) */
static double affine(const double *W, const double *b, int cols, int row, const double *v)
{
    double s = b[row];
    for (int k = 0; k < cols; k++)
        s += W[(size_t)row * cols + k] * v[k];
    return s;
}

/* Backward of out[r] = b[r] + sum_k W[r][k] v[k] for rows r0 .. r0+nrows-1,
 * given dout[r - r0]:  dW[r][k] += dout v[k],  db[r] += dout,
 * dv[k] += W[r][k] dout.  dW/db NULL or dv NULL skip that part. */
static void affine_back(const double *W, int cols, int r0, int nrows, const double *dout,
                        const double *v, double *dW, double *db, double *dv)
{
    for (int r = r0; r < r0 + nrows; r++) {
        double d = dout[r - r0];
        if (db != NULL)
            db[r] += d;
        for (int k = 0; k < cols; k++) {
            if (dW != NULL)
                dW[(size_t)r * cols + k] += d * v[k];
            if (dv != NULL)
                dv[k] += W[(size_t)r * cols + k] * d;
        }
    }
}

/* Per-step intermediate values, for one sequence. */
typedef struct {
    double *pre;  /* rnn: preactivation [H]                       */
    double *gate; /* activated gate values [G*H], storage order     */
    double *hn;   /* gru-lbr: W_hn h_{t-1} + b_hn  [H]              */
    double *rh;   /* gru: Gr * c_{t-1}  [H]                         */
    double *tc;   /* lstm: tanh(c_t)  [H]                           */
} scratch;

static scratch scratch_new(int H)
{
    scratch s;
    s.pre = xcalloc((size_t)H, sizeof(double));
    s.gate = xcalloc((size_t)4 * H, sizeof(double));
    s.hn = xcalloc((size_t)H, sizeof(double));
    s.rh = xcalloc((size_t)H, sizeof(double));
    s.tc = xcalloc((size_t)H, sizeof(double));
    return s;
}

static void scratch_free(scratch *s)
{
    free(s->pre);
    free(s->gate);
    free(s->hn);
    free(s->rh);
    free(s->tc);
}

/* ------------------------------------------------------------------------ */
/* One forward step of one sequence: (x, hp, cp) -> (h, cn).                 */
/* cp/cn are only used by lstm.                                              */

static void step_forward(enum kind k, const ref_cell *c, const wparts *W, const double *x,
                         const double *hp, const double *cp, double *h, double *cn,
                         scratch *s)
{
    const int I = c->I, H = c->H;

    switch (k) {
    case K_RNN_TANH:
    case K_RNN_RELU:
        for (int j = 0; j < H; j++) {
            /* a_t = g(W_ih x_t + b_ih + W_hh a_{t-1} + b_hh) */
            double p = affine(W->Wih, W->bih, I, j, x) + affine(W->Whh, W->bhh, H, j, hp);
            s->pre[j] = p;
            h[j] = (k == K_RNN_TANH) ? tanh(p) : (p > 0.0 ? p : 0.0);
        }
        break;

    case K_LSTM:
        for (int j = 0; j < H; j++) {
            /* i = sigma(W_ii x + b_ii + W_hi h + b_hi) */
            double i = sigm(affine(W->Wih, W->bih, I, 0 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 0 * H + j, hp));
            /* f = sigma(W_if x + b_if + W_hf h + b_hf) */
            double f = sigm(affine(W->Wih, W->bih, I, 1 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 1 * H + j, hp));
            /* g = tanh(W_ig x + b_ig + W_hg h + b_hg) */
            double g = tanh(affine(W->Wih, W->bih, I, 2 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 2 * H + j, hp));
            /* o = sigma(W_io x + b_io + W_ho h + b_ho) */
            double o = sigm(affine(W->Wih, W->bih, I, 3 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 3 * H + j, hp));
            /* c_t = f*c_{t-1} + i*g */
            double ct = f * cp[j] + i * g;
            /* h_t = o*tanh(c_t) */
            double tc = tanh(ct);
            s->gate[0 * H + j] = i;
            s->gate[1 * H + j] = f;
            s->gate[2 * H + j] = g;
            s->gate[3 * H + j] = o;
            s->tc[j] = tc;
            cn[j] = ct;
            h[j] = o * tc;
        }
        break;

    case K_GRU_LBR:
        for (int j = 0; j < H; j++) {
            /* r = sigma(W_ir x + b_ir + W_hr h + b_hr) */
            double r = sigm(affine(W->Wih, W->bih, I, 0 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 0 * H + j, hp));
            /* z = sigma(W_iz x + b_iz + W_hz h + b_hz) */
            double z = sigm(affine(W->Wih, W->bih, I, 1 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 1 * H + j, hp));
            /* n = tanh(W_in x + b_in + r*(W_hn h + b_hn)) */
            double hn = affine(W->Whh, W->bhh, H, 2 * H + j, hp);
            double n = tanh(affine(W->Wih, W->bih, I, 2 * H + j, x) + r * hn);
            s->gate[0 * H + j] = r;
            s->gate[1 * H + j] = z;
            s->gate[2 * H + j] = n;
            s->hn[j] = hn;
            /* h_t = (1-z)*n + z*h_{t-1} */
            h[j] = (1.0 - z) * n + z * hp[j];
        }
        break;

    case K_GRU:
        for (int j = 0; j < H; j++) {
            /* Gu = sigma(W_ih[u] x + b_ih[u] + W_hh[u] c_{t-1} + b_hh[u]) */
            s->gate[0 * H + j] = sigm(affine(W->Wih, W->bih, I, 0 * H + j, x) +
                                      affine(W->Whh, W->bhh, H, 0 * H + j, hp));
            /* Gr = sigma(W_ih[r] x + b_ih[r] + W_hh[r] c_{t-1} + b_hh[r]) */
            s->gate[1 * H + j] = sigm(affine(W->Wih, W->bih, I, 1 * H + j, x) +
                                      affine(W->Whh, W->bhh, H, 1 * H + j, hp));
        }
        /* the reset is applied to the state BEFORE the matrix product */
        for (int j = 0; j < H; j++)
            s->rh[j] = s->gate[1 * H + j] * hp[j];
        for (int j = 0; j < H; j++) {
            /* c~ = tanh(W_ih[c] x + b_ih[c] + W_hh[c] (Gr*c_{t-1}) + b_hh[c]) */
            double cand = tanh(affine(W->Wih, W->bih, I, 2 * H + j, x) +
                               affine(W->Whh, W->bhh, H, 2 * H + j, s->rh));
            double u = s->gate[0 * H + j];
            s->gate[2 * H + j] = cand;
            /* c_t = Gu*c~ + (1-Gu)*c_{t-1} */
            h[j] = u * cand + (1.0 - u) * hp[j];
        }
        break;

    default:
        abort();
    }
}

/* ------------------------------------------------------------------------ */
/* One backward step of one sequence.  `s` must hold the values computed by  */
/* step_forward for the same (x, hp, cp).  dh/dc are dL/dh_t, dL/dc_t (total,*/
/* including what flows back from later steps).  Writes dL/dh_{t-1} to dhp   */
/* (and dL/dc_{t-1} to dcp for lstm), adds into dx (may be NULL) and dW     */
/* (parts NULL when not wanted).                                             */

static void step_backward(enum kind k, const ref_cell *c, const wparts *W, const double *x,
                          const double *hp, const double *cp, const scratch *s,
                          const double *dh, const double *dc, double *dx, const wparts *dW,
                          double *dhp, double *dcp, double *dpx, double *dph, double *tmp)
{
    const int I = c->I, H = c->H, G = ref_gates(c);
    double *dWih = dW ? dW->Wih : NULL, *dWhh = dW ? dW->Whh : NULL;
    double *dbih = dW ? dW->bih : NULL, *dbhh = dW ? dW->bhh : NULL;

    /* dpx = dL/d(input-side preactivation rows), dph = same for the
     * hidden-side rows; they differ only for gru-lbr's n gate. */
    for (int j = 0; j < H; j++)
        dhp[j] = 0.0;

    switch (k) {
    case K_RNN_TANH:
    case K_RNN_RELU:
        for (int j = 0; j < H; j++) {
            double gprime;
            if (k == K_RNN_TANH) {
                double a = tanh(s->pre[j]);
                gprime = 1.0 - a * a;
            } else {
                gprime = s->pre[j] > 0.0 ? 1.0 : 0.0;
            }
            dpx[j] = dph[j] = dh[j] * gprime;
        }
        break;

    case K_LSTM:
        for (int j = 0; j < H; j++) {
            double i = s->gate[0 * H + j], f = s->gate[1 * H + j];
            double g = s->gate[2 * H + j], o = s->gate[3 * H + j];
            double tc = s->tc[j];
            /* h = o*tanh(c):  dc += dh*o*(1-tanh^2 c),  do = dh*tanh(c) */
            double dct = dc[j] + dh[j] * o * (1.0 - tc * tc);
            double d_o = dh[j] * tc;
            /* c = f*c_prev + i*g */
            double d_i = dct * g, d_f = dct * cp[j], d_g = dct * i;
            dcp[j] = dct * f;
            dpx[0 * H + j] = d_i * i * (1.0 - i);
            dpx[1 * H + j] = d_f * f * (1.0 - f);
            dpx[2 * H + j] = d_g * (1.0 - g * g);
            dpx[3 * H + j] = d_o * o * (1.0 - o);
        }
        for (int r = 0; r < G * H; r++)
            dph[r] = dpx[r];
        break;

    case K_GRU_LBR:
        for (int j = 0; j < H; j++) {
            double r = s->gate[0 * H + j], z = s->gate[1 * H + j], n = s->gate[2 * H + j];
            /* h = (1-z)*n + z*h_prev */
            double dn = dh[j] * (1.0 - z);
            double dz = dh[j] * (hp[j] - n);
            dhp[j] += dh[j] * z;
            /* n = tanh(xn + r*hn) */
            double dpn = dn * (1.0 - n * n);
            double dr = dpn * s->hn[j];
            dpx[0 * H + j] = dph[0 * H + j] = dr * r * (1.0 - r);
            dpx[1 * H + j] = dph[1 * H + j] = dz * z * (1.0 - z);
            dpx[2 * H + j] = dpn;     /* W_in x + b_in  */
            dph[2 * H + j] = dpn * r; /* W_hn h + b_hn  */
        }
        break;

    case K_GRU: {
        double *drh = tmp; /* dL/d(Gr*c_prev) [H] */
        for (int j = 0; j < H; j++) {
            double u = s->gate[0 * H + j], cand = s->gate[2 * H + j];
            /* c = u*cand + (1-u)*c_prev */
            double dcand = dh[j] * u;
            double du = dh[j] * (cand - hp[j]);
            dhp[j] += dh[j] * (1.0 - u);
            dpx[0 * H + j] = dph[0 * H + j] = du * u * (1.0 - u);
            dpx[2 * H + j] = dph[2 * H + j] = dcand * (1.0 - cand * cand);
            drh[j] = 0.0;
        }
        /* candidate's hidden side acts on rh = Gr*c_prev */
        affine_back(W->Whh, H, 2 * H, H, dph + 2 * H, s->rh, dWhh, dbhh, drh);
        for (int j = 0; j < H; j++) {
            double r = s->gate[1 * H + j];
            double dr = drh[j] * hp[j];
            dhp[j] += drh[j] * r;
            dpx[1 * H + j] = dph[1 * H + j] = dr * r * (1.0 - r);
        }
        /* input side of all three gates */
        affine_back(W->Wih, I, 0, G * H, dpx, x, dWih, dbih, dx);
        /* hidden side of the u and r gates acts on c_prev */
        affine_back(W->Whh, H, 0, 2 * H, dph, hp, dWhh, dbhh, dhp);
        return;
    }

    default:
        abort();
    }

    affine_back(W->Wih, I, 0, G * H, dpx, x, dWih, dbih, dx);
    affine_back(W->Whh, H, 0, G * H, dph, hp, dWhh, dbhh, dhp);
}

/* ------------------------------------------------------------------------ */

void ref_forward(const ref_cell *c, int T, int N, const double *w, const double *x,
                 const double *h0, const double *c0, double *y, double *hT, double *cT)
{
    enum kind k = checked_kind(c);
    const int I = c->I, H = c->H;
    const int lstm = (k == K_LSTM);
    wparts W = split(c, w);
    double *h = xcalloc((size_t)H, sizeof(double));
    double *cs = xcalloc((size_t)H, sizeof(double));
    double *hn = xcalloc((size_t)H, sizeof(double));
    double *cn = xcalloc((size_t)H, sizeof(double));
    scratch s = scratch_new(H);

    for (int n = 0; n < N; n++) {
        for (int j = 0; j < H; j++) {
            h[j] = h0 ? h0[(size_t)n * H + j] : 0.0;
            cs[j] = (lstm && c0) ? c0[(size_t)n * H + j] : 0.0;
        }
        for (int t = 0; t < T; t++) {
            step_forward(k, c, &W, x + ((size_t)t * N + n) * I, h, cs, hn, cn, &s);
            for (int j = 0; j < H; j++) {
                h[j] = hn[j];
                if (lstm)
                    cs[j] = cn[j];
                y[((size_t)t * N + n) * H + j] = hn[j];
            }
        }
        for (int j = 0; j < H; j++) {
            if (hT)
                hT[(size_t)n * H + j] = h[j];
            if (lstm && cT)
                cT[(size_t)n * H + j] = cs[j];
        }
    }

    scratch_free(&s);
    free(h);
    free(cs);
    free(hn);
    free(cn);
}

void ref_backward(const ref_cell *c, int T, int N, const double *w, const double *x,
                  const double *h0, const double *c0, const double *dy, const double *dhT,
                  const double *dcT, double *dx, double *dh0, double *dc0, double *dw)
{
    enum kind k = checked_kind(c);
    const int I = c->I, H = c->H, G = ref_gates(c);
    const int lstm = (k == K_LSTM);
    wparts W = split(c, w);
    wparts dWp;
    if (dw) {
        memset(dw, 0, ref_weight_count(c) * sizeof(double));
        dWp = split(c, dw);
    }
    if (dx)
        memset(dx, 0, (size_t)T * N * I * sizeof(double));

    /* states of one sequence: hs[t] = h_{t-1} fed into step t; hs[T] = h_T */
    double *hs = xcalloc((size_t)(T + 1) * H, sizeof(double));
    double *cs = xcalloc((size_t)(T + 1) * H, sizeof(double));
    double *dh = xcalloc((size_t)H, sizeof(double));
    double *dc = xcalloc((size_t)H, sizeof(double));
    double *dhp = xcalloc((size_t)H, sizeof(double));
    double *dcp = xcalloc((size_t)H, sizeof(double));
    double *dpx = xcalloc((size_t)G * H, sizeof(double));
    double *dph = xcalloc((size_t)G * H, sizeof(double));
    double *tmp = xcalloc((size_t)H, sizeof(double));
    double *hn = xcalloc((size_t)H, sizeof(double));
    double *cn = xcalloc((size_t)H, sizeof(double));
    scratch s = scratch_new(H);

    for (int n = 0; n < N; n++) {
        /* forward, keeping every state */
        for (int j = 0; j < H; j++) {
            hs[j] = h0 ? h0[(size_t)n * H + j] : 0.0;
            cs[j] = (lstm && c0) ? c0[(size_t)n * H + j] : 0.0;
        }
        for (int t = 0; t < T; t++)
            step_forward(k, c, &W, x + ((size_t)t * N + n) * I, hs + (size_t)t * H,
                         cs + (size_t)t * H, hs + (size_t)(t + 1) * H,
                         cs + (size_t)(t + 1) * H, &s);

        /* backward through time */
        for (int j = 0; j < H; j++) {
            dh[j] = dhT ? dhT[(size_t)n * H + j] : 0.0;
            dc[j] = (lstm && dcT) ? dcT[(size_t)n * H + j] : 0.0;
        }
        for (int t = T - 1; t >= 0; t--) {
            const double *xt = x + ((size_t)t * N + n) * I;
            if (dy)
                for (int j = 0; j < H; j++)
                    dh[j] += dy[((size_t)t * N + n) * H + j];
            /* recompute this step's intermediates */
            step_forward(k, c, &W, xt, hs + (size_t)t * H, cs + (size_t)t * H, hn, cn, &s);
            for (int j = 0; j < H; j++)
                dcp[j] = 0.0;
            step_backward(k, c, &W, xt, hs + (size_t)t * H, cs + (size_t)t * H, &s, dh, dc,
                          dx ? dx + ((size_t)t * N + n) * I : NULL, dw ? &dWp : NULL, dhp,
                          dcp, dpx, dph, tmp);
            for (int j = 0; j < H; j++) {
                dh[j] = dhp[j];
                dc[j] = dcp[j];
            }
        }
        for (int j = 0; j < H; j++) {
            if (dh0)
                dh0[(size_t)n * H + j] = dh[j];
            if (lstm && dc0)
                dc0[(size_t)n * H + j] = dc[j];
        }
    }

    scratch_free(&s);
    free(hs);
    free(cs);
    free(dh);
    free(dc);
    free(dhp);
    free(dcp);
    free(dpx);
    free(dph);
    free(tmp);
    free(hn);
    free(cn);
}
