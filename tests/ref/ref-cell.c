/*
 * ref-cell.c - independent double-precision reference of recurrent cells
 * (forward and backpropagation through time).  See ref-cell.h.
 *
 * Deliberately simple: sequences are processed one at a time, every matrix
 * product is a plain scalar loop, and the backward pass recomputes each step's
 * forward from the stored states instead of caching anything clever.
 *
 * "lstm-ln" follows Haste (github.com/lmnt-com/haste, commit ceba32e):
 *  - frameworks/pytorch/layer_norm_lstm.py lines 52-61 (LayerNormLSTMScript,
 *    the reference formulas):
 *      Wx = layer_norm(x @ kernel, (4H,), weight=gamma[0])
 *      v  = layer_norm(h @ recurrent_kernel, (4H,), weight=gamma[1]) + Wx + bias
 *      i, g, f, o = chunk(v, 4);  c = f*c + i*g
 *      h  = o * tanh(layer_norm(c, (H,), weight=gamma_h, bias=beta_h))
 *  - lib/layer_norm_lstm_forward_gpu.cu.cc lines 50-58 (gate order i, g, f, o),
 *    71 (the carried c is the un-normalised one), 98 and 219-239 (h from the
 *    normalised c);  frameworks/pytorch/layer_norm_lstm.cc lines 80-99 (LN
 *    widths 4H, 4H, H; gamma[0], gamma[1] without beta; gamma_h with beta_h);
 *  - lib/layer_norm_forward_gpu.cu.cc lines 59, 65-66, 77, 81-83: mean and
 *    population variance over the row, 1/sqrt(var + 1e-5), then *gamma (+beta).
 * Our parameters: gamma_x = gamma[0], gamma_h = gamma[1], bias = bias, each
 * with the gate blocks reordered from Haste's i, g, f, o to i, f, g, o (the LN
 * over all 4H rows does not depend on the order); gamma_c = gamma_h and
 * beta_c = beta_h; W_ih and W_hh are Haste's kernel and recurrent_kernel
 * transposed ([C][4H] -> [4H][C]) with the same block reordering.
 *
 * "gru-ln" follows Haste's LayerNormGRU (same commit):
 *  - frameworks/pytorch/layer_norm_gru.py lines 49-59 (LayerNormGRUScript):
 *      Wx = layer_norm(x @ kernel, (3H,), weight=gamma[0]) + bias
 *      Rh = layer_norm(h @ recurrent_kernel, (3H,), weight=gamma[1]) + recurrent_bias
 *      z = sigma(Wx[z] + Rh[z]);  r = sigma(Wx[r] + Rh[r])
 *      g = tanh(Wx[g] + r * Rh[g])        (recurrent_bias inside the reset product)
 *      h = z*h + (1-z)*g
 *  - lib/layer_norm_gru_forward_gpu.cu.cc lines 50-52 (gate order z, r, g),
 *    59-61 (the same three pre-activations, br[g] inside r*(...)) and 72 (h);
 *    frameworks/pytorch/layer_norm_gru.cc lines 73-85 (both LNs over 3H, gains
 *    gamma[0], gamma[1], no beta); the LN is the same layer_norm_forward_gpu
 *    kernel as lstm-ln's (eps 1e-5, population variance).  Nothing else is
 *    normalised (the state h is carried as is).
 * Our parameters: gamma_x = gamma[0], gamma_h = gamma[1], bias = bias,
 * recurrent_bias = recurrent_bias, each [3H] with the blocks reordered from
 * Haste's z, r, g to PyTorch's r, z, n (n = Haste's g); W_ih and W_hh are
 * kernel and recurrent_kernel transposed with the same reordering.  Zoneout
 * and DropConnect (training-time regularisers) are not part of the cell.
 */
#include "ref-cell.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind {
    K_RNN_TANH,
    K_RNN_RELU,
    K_LSTM,
    K_GRU_LBR,
    K_GRU,
    K_GRU_SIMPLE,
    K_MGU,
    K_INDRNN_RELU,
    K_INDRNN_TANH,
    K_LSTM_PEEP,
    K_LSTM_LN,
    K_GRU_LN,
    K_UNKNOWN
};

/* k0 for variant 0, k1 for variant 1, else unknown */
static enum kind by_variant(int variant, enum kind k0, enum kind k1)
{
    return variant == 0 ? k0 : variant == 1 ? k1 : K_UNKNOWN;
}

static enum kind kind_of(const ref_cell *c)
{
    if (c == NULL || c->cell == NULL)
        return K_UNKNOWN;
    if (strcmp(c->cell, "rnn") == 0)
        return by_variant(c->variant, K_RNN_TANH, K_RNN_RELU);
    if (strcmp(c->cell, "lstm") == 0)
        return K_LSTM;
    if (strcmp(c->cell, "gru-lbr") == 0)
        return K_GRU_LBR;
    if (strcmp(c->cell, "gru") == 0)
        return K_GRU;
    if (strcmp(c->cell, "gru-simple") == 0)
        return K_GRU_SIMPLE;
    if (strcmp(c->cell, "mgu") == 0)
        return K_MGU;
    if (strcmp(c->cell, "indrnn") == 0)
        return by_variant(c->variant, K_INDRNN_RELU, K_INDRNN_TANH);
    if (strcmp(c->cell, "lstm-peephole") == 0)
        return K_LSTM_PEEP;
    if (strcmp(c->cell, "lstm-ln") == 0)
        return K_LSTM_LN;
    if (strcmp(c->cell, "gru-ln") == 0)
        return K_GRU_LN;
    return K_UNKNOWN;
}

int ref_gates(const ref_cell *c)
{
    switch (kind_of(c)) {
    case K_RNN_TANH:
    case K_RNN_RELU:
    case K_INDRNN_RELU:
    case K_INDRNN_TANH:
        return 1;
    case K_LSTM:
    case K_LSTM_PEEP:
    case K_LSTM_LN:
        return 4;
    case K_GRU_LBR:
    case K_GRU:
    case K_GRU_LN:
        return 3;
    case K_GRU_SIMPLE:
    case K_MGU:
        return 2;
    default:
        return -1;
    }
}

int ref_recurrent_gates(const ref_cell *c)
{
    switch (kind_of(c)) {
    case K_INDRNN_RELU:
    case K_INDRNN_TANH:
        return 0;
    default:
        return ref_gates(c);
    }
}

int ref_has_biases(const ref_cell *c)
{
    enum kind k = kind_of(c);
    return k != K_LSTM_LN && k != K_GRU_LN;
}

size_t ref_param_count(const ref_cell *c)
{
    size_t H = c ? (size_t)c->H : 0;
    switch (kind_of(c)) {
    case K_INDRNN_RELU:
    case K_INDRNN_TANH:
        return H; /* u */
    case K_LSTM_PEEP:
        return 3 * H; /* P rows i, f, o */
    case K_LSTM_LN:
        return 3 * 4 * H + 2 * H; /* gamma_x, gamma_h, bias; gamma_c, beta_c */
    case K_GRU_LN:
        return 4 * 3 * H; /* gamma_x, gamma_h, bias, recurrent_bias */
    default:
        return 0;
    }
}

static int two_states(enum kind k)
{
    return k == K_LSTM || k == K_LSTM_PEEP || k == K_LSTM_LN;
}

int ref_states(const ref_cell *c)
{
    return two_states(kind_of(c)) ? 2 : 1;
}

size_t ref_weight_count(const ref_cell *c)
{
    int G = ref_gates(c);
    if (G < 0)
        return 0;
    size_t GH = (size_t)G * (size_t)c->H;
    return GH * (size_t)c->I + (size_t)ref_recurrent_gates(c) * (size_t)c->H * (size_t)c->H +
           (ref_has_biases(c) ? 2 * GH : 0) + ref_param_count(c);
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
    double *Wih; /* [G*H][I]                                   */
    double *Whh; /* [Grec*H][H]; NULL when Grec = 0 (indrnn)    */
    double *bih; /* [G*H]; NULL without biases (lstm-ln, gru-ln) */
    double *bhh; /* [G*H]; NULL without biases                  */
    double *P;   /* own parameters [ref_param_count]; NULL if none */
} wparts;

static wparts split(const ref_cell *c, const double *w)
{
    size_t GH = (size_t)ref_gates(c) * (size_t)c->H;
    size_t RH = (size_t)ref_recurrent_gates(c) * (size_t)c->H;
    double *p = (double *)w; /* const is restored by how the parts are used */
    wparts s;
    s.Wih = p;
    p += GH * (size_t)c->I;
    s.Whh = RH ? p : NULL;
    p += RH * (size_t)c->H;
    s.bih = s.bhh = NULL;
    if (ref_has_biases(c)) {
        s.bih = p;
        s.bhh = p + GH;
        p += 2 * GH;
    }
    s.P = ref_param_count(c) ? p : NULL;
    return s;
}

/* Rounded products (ref_set_products): each operand of a matrix product
 * rounded to bfloat16 (8 significant bits) or binary16 (11, exponents down
 * to -14 then subnormals in steps of 2^-24, Inf from 65520), to nearest even. */
static int products = REF_EXACT;

void ref_set_products(int type) { products = type; }

static double op(double v)
{
    if (products == REF_EXACT || v == 0.0 || !isfinite(v))
        return v;
    int e;
    double m = frexp(v, &e); /* |m| in [0.5, 1), v = m 2^e */
    if (products == REF_BF16)
        return ldexp(nearbyint(ldexp(m, 8)), e - 8);
    if (fabs(v) >= 65520.0)
        return copysign(INFINITY, v);
    int q = (e - 1 < -14 ? -14 : e - 1) - 10; /* the f16 spacing at v: 2^q */
    return copysign(ldexp(nearbyint(ldexp(fabs(v), -q)), q), v);
}

/* b[row] + sum_k W[row][k] v[k]   (W row-major with `cols` columns) */
static double affine(const double *W, const double *b, int cols, int row, const double *v)
{
    double s = b[row];
    for (int k = 0; k < cols; k++)
        s += op(W[(size_t)row * cols + k]) * op(v[k]);
    return s;
}

/* sum_k W[row][k] v[k]   (no bias) */
static double dot(const double *W, int cols, int row, const double *v)
{
    double s = 0.0;
    for (int k = 0; k < cols; k++)
        s += op(W[(size_t)row * cols + k]) * op(v[k]);
    return s;
}

/* Layer normalisation without gain and shift, in place:
 * v <- (v - mean) / sqrt(var + LN_EPS) over the n entries, population
 * variance (divided by n); *rstd gets 1/sqrt(var + LN_EPS). */
#define LN_EPS 1e-5

static void ln_norm(double *v, int n, double *rstd)
{
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++)
        mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (v[i] - mean) * (v[i] - mean);
    var /= n;
    *rstd = 1.0 / sqrt(var + LN_EPS);
    for (int i = 0; i < n; i++)
        v[i] = (v[i] - mean) * *rstd;
}

/* Backward of hat = ln_norm(v): given hat, rstd and dL/dhat, writes dL/dv:
 * dv = rstd * (dhat - mean(dhat) - hat * mean(dhat*hat)). */
static void ln_back(const double *hat, double rstd, int n, const double *dhat, double *dv)
{
    double m1 = 0.0, m2 = 0.0;
    for (int i = 0; i < n; i++) {
        m1 += dhat[i];
        m2 += dhat[i] * hat[i];
    }
    m1 /= n;
    m2 /= n;
    for (int i = 0; i < n; i++)
        dv[i] = rstd * (dhat[i] - m1 - hat[i] * m2);
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
                dW[(size_t)r * cols + k] += op(d) * op(v[k]);
            if (dv != NULL)
                dv[k] += op(W[(size_t)r * cols + k]) * op(d);
        }
    }
}

/* Per-step intermediate values, for one sequence. */
typedef struct {
    double *pre;  /* rnn, indrnn: preactivation [H]               */
    double *gate; /* activated gate values [G*H], storage order     */
    double *hn;   /* gru-lbr: W_hn h_{t-1} + b_hn;
                     gru-ln: gamma_h*hhat + recurrent_bias, n rows  [H] */
    double *rh;   /* gru: Gr * c_{t-1};  mgu: f * h_{t-1}  [H]      */
    double *tc;   /* lstm, lstm-peephole: tanh(c_t);
                     lstm-ln: tanh(gamma_c*LN(c_t) + beta_c)  [H]   */
    double *xhat; /* lstm-ln, gru-ln: LN(W_ih x)  [4H, 3H]          */
    double *hhat; /* lstm-ln, gru-ln: LN(W_hh h_{t-1})  [4H, 3H]    */
    double *chat; /* lstm-ln: LN(c_t)  [H]                          */
    double rsx, rsh, rsc; /* lstm-ln: 1/sqrt(var + eps) of the three LNs
                             (gru-ln: the first two) */
} scratch;

static scratch scratch_new(int H)
{
    scratch s;
    s.pre = xcalloc((size_t)H, sizeof(double));
    s.gate = xcalloc((size_t)4 * H, sizeof(double));
    s.hn = xcalloc((size_t)H, sizeof(double));
    s.rh = xcalloc((size_t)H, sizeof(double));
    s.tc = xcalloc((size_t)H, sizeof(double));
    s.xhat = xcalloc((size_t)4 * H, sizeof(double));
    s.hhat = xcalloc((size_t)4 * H, sizeof(double));
    s.chat = xcalloc((size_t)H, sizeof(double));
    s.rsx = s.rsh = s.rsc = 0.0;
    return s;
}

static void scratch_free(scratch *s)
{
    free(s->pre);
    free(s->gate);
    free(s->hn);
    free(s->rh);
    free(s->tc);
    free(s->xhat);
    free(s->hhat);
    free(s->chat);
}

/* The activation of rnn and indrnn, and its derivative at the preactivation. */
static double act1(enum kind k, double p)
{
    if (k == K_RNN_TANH || k == K_INDRNN_TANH)
        return tanh(p);
    return p > 0.0 ? p : 0.0;
}

static double act1_prime(enum kind k, double p)
{
    if (k == K_RNN_TANH || k == K_INDRNN_TANH) {
        double a = tanh(p);
        return 1.0 - a * a;
    }
    return p > 0.0 ? 1.0 : 0.0;
}

/* lstm-peephole's term P[row][j]*v, or 0 without peepholes (P NULL). */
static double peep(const double *P, int H, int row, int j, double v)
{
    return P != NULL ? P[(size_t)row * H + j] * v : 0.0;
}

/* The candidate of gru and mgu, whose gate scales the state BEFORE the
 * matrix product: rh = gate*hp, then for the H rows from row0
 * cand = tanh(W_ih[row] x + b_ih[row] + W_hh[row] rh + b_hh[row]). */
static void scaled_candidate(const wparts *W, int I, int H, int row0, const double *x,
                             const double *gate, const double *hp, double *rh, double *cand)
{
    for (int j = 0; j < H; j++)
        rh[j] = gate[j] * hp[j];
    for (int j = 0; j < H; j++)
        cand[j] = tanh(affine(W->Wih, W->bih, I, row0 + j, x) +
                       affine(W->Whh, W->bhh, H, row0 + j, rh));
}

/* Backward of scaled_candidate given dL/d(pre-activation) dpc of its rows
 * (the same on both sides): adds the W_hh/b_hh gradients of those rows,
 * writes dgate = dL/dgate (before the gate's own activation) and adds
 * dL/dhp into dhp.  drh: [H] work space. */
static void scaled_candidate_back(const wparts *W, int H, int row0, const double *dpc,
                                  const double *gate, const double *hp, const double *rh,
                                  double *dWhh, double *dbhh, double *drh, double *dgate,
                                  double *dhp)
{
    for (int j = 0; j < H; j++)
        drh[j] = 0.0;
    affine_back(W->Whh, H, row0, H, dpc, rh, dWhh, dbhh, drh);
    for (int j = 0; j < H; j++) {
        dgate[j] = drh[j] * hp[j];
        dhp[j] += drh[j] * gate[j];
    }
}

/* ------------------------------------------------------------------------ */
/* One forward step of one sequence: (x, hp, cp) -> (h, cn).                 */
/* cp/cn are only used by the two-state cells (lstm, lstm-peephole, lstm-ln). */

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
            h[j] = act1(k, p);
        }
        break;

    case K_INDRNN_RELU:
    case K_INDRNN_TANH:
        for (int j = 0; j < H; j++) {
            /* a_t = g(W_ih x_t + b_ih + b_hh + u*a_{t-1}), u elementwise */
            double p = affine(W->Wih, W->bih, I, j, x) + W->bhh[j] + W->P[j] * hp[j];
            s->pre[j] = p;
            h[j] = act1(k, p);
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
        /* c~ = tanh(W_ih[c] x + b_ih[c] + W_hh[c] (Gr*c_{t-1}) + b_hh[c]) */
        scaled_candidate(W, I, H, 2 * H, x, s->gate + 1 * H, hp, s->rh, s->gate + 2 * H);
        for (int j = 0; j < H; j++) {
            double u = s->gate[0 * H + j], cand = s->gate[2 * H + j];
            /* c_t = Gu*c~ + (1-Gu)*c_{t-1} */
            h[j] = u * cand + (1.0 - u) * hp[j];
        }
        break;

    case K_GRU_SIMPLE:
        for (int j = 0; j < H; j++) {
            /* Gu = sigma(W_ih[u] x + b_ih[u] + W_hh[u] c_{t-1} + b_hh[u]) */
            double u = sigm(affine(W->Wih, W->bih, I, 0 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 0 * H + j, hp));
            /* c~ = tanh(W_ih[c] x + b_ih[c] + W_hh[c] c_{t-1} + b_hh[c]) */
            double cand = tanh(affine(W->Wih, W->bih, I, 1 * H + j, x) +
                               affine(W->Whh, W->bhh, H, 1 * H + j, hp));
            s->gate[0 * H + j] = u;
            s->gate[1 * H + j] = cand;
            /* c_t = Gu*c~ + (1-Gu)*c_{t-1} */
            h[j] = u * cand + (1.0 - u) * hp[j];
        }
        break;

    case K_MGU:
        for (int j = 0; j < H; j++)
            /* f = sigma(W_ih[f] x + b_ih[f] + W_hh[f] h_{t-1} + b_hh[f]) */
            s->gate[0 * H + j] = sigm(affine(W->Wih, W->bih, I, 0 * H + j, x) +
                                      affine(W->Whh, W->bhh, H, 0 * H + j, hp));
        /* h~ = tanh(W_ih[h] x + b_ih[h] + W_hh[h] (f*h_{t-1}) + b_hh[h]) */
        scaled_candidate(W, I, H, 1 * H, x, s->gate + 0 * H, hp, s->rh, s->gate + 1 * H);
        for (int j = 0; j < H; j++) {
            double f = s->gate[0 * H + j], cand = s->gate[1 * H + j];
            /* h_t = (1-f)*h_{t-1} + f*h~ */
            h[j] = (1.0 - f) * hp[j] + f * cand;
        }
        break;

    case K_LSTM:
    case K_LSTM_PEEP: {
        /* peepholes P [3][H] (rows i, f, o); plain lstm has none (terms 0) */
        const double *P = (k == K_LSTM_PEEP) ? W->P : NULL;
        for (int j = 0; j < H; j++) {
            /* i = sigma(W_ii x + b_ii + W_hi h + b_hi [+ P[0]*c_{t-1}]) */
            double i = sigm(affine(W->Wih, W->bih, I, 0 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 0 * H + j, hp) + peep(P, H, 0, j, cp[j]));
            /* f = sigma(W_if x + b_if + W_hf h + b_hf [+ P[1]*c_{t-1}]) */
            double f = sigm(affine(W->Wih, W->bih, I, 1 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 1 * H + j, hp) + peep(P, H, 1, j, cp[j]));
            /* g = tanh(W_ig x + b_ig + W_hg h + b_hg) */
            double g = tanh(affine(W->Wih, W->bih, I, 2 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 2 * H + j, hp));
            /* c_t = f*c_{t-1} + i*g */
            double ct = f * cp[j] + i * g;
            /* o = sigma(W_io x + b_io + W_ho h + b_ho [+ P[2]*c_t]), the NEW c */
            double o = sigm(affine(W->Wih, W->bih, I, 3 * H + j, x) +
                            affine(W->Whh, W->bhh, H, 3 * H + j, hp) + peep(P, H, 2, j, ct));
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
    }

    case K_LSTM_LN: {
        /* Haste's LayerNormLSTM (sources at the top of this file), in our
         * gate order i, f, g, o */
        const int GH = 4 * H;
        const double *gx = W->P, *gh = W->P + GH, *bias = W->P + 2 * GH;
        const double *gc = W->P + 3 * GH, *bc = gc + H;
        /* xhat = LN(W_ih x), hhat = LN(W_hh h_{t-1}), each over all 4H rows */
        for (int r = 0; r < GH; r++) {
            s->xhat[r] = dot(W->Wih, I, r, x);
            s->hhat[r] = dot(W->Whh, H, r, hp);
        }
        ln_norm(s->xhat, GH, &s->rsx);
        ln_norm(s->hhat, GH, &s->rsh);
        for (int r = 0; r < GH; r++) {
            /* v = gamma_x*xhat + gamma_h*hhat + bias */
            double v = gx[r] * s->xhat[r] + gh[r] * s->hhat[r] + bias[r];
            /* i, f, o = sigma(v);  g = tanh(v) */
            s->gate[r] = (r / H == 2) ? tanh(v) : sigm(v);
        }
        for (int j = 0; j < H; j++) {
            /* c_t = f*c_{t-1} + i*g  (the state carried, not normalised) */
            cn[j] = s->gate[1 * H + j] * cp[j] + s->gate[0 * H + j] * s->gate[2 * H + j];
            s->chat[j] = cn[j];
        }
        /* chat = LN(c_t) over H */
        ln_norm(s->chat, H, &s->rsc);
        for (int j = 0; j < H; j++) {
            /* h_t = o*tanh(gamma_c*chat + beta_c) */
            s->tc[j] = tanh(gc[j] * s->chat[j] + bc[j]);
            h[j] = s->gate[3 * H + j] * s->tc[j];
        }
        break;
    }

    case K_GRU_LN: {
        /* Haste's LayerNormGRU (sources at the top of this file), in our gate
         * order r, z, n */
        const int GH = 3 * H;
        const double *gx = W->P, *gh = W->P + GH, *bias = W->P + 2 * GH, *rb = W->P + 3 * GH;
        /* xhat = LN(W_ih x), hhat = LN(W_hh h_{t-1}), each over all 3H rows */
        for (int r = 0; r < GH; r++) {
            s->xhat[r] = dot(W->Wih, I, r, x);
            s->hhat[r] = dot(W->Whh, H, r, hp);
        }
        ln_norm(s->xhat, GH, &s->rsx);
        ln_norm(s->hhat, GH, &s->rsh);
        for (int j = 0; j < H; j++) {
            const int jr = 0 * H + j, jz = 1 * H + j, jn = 2 * H + j;
            /* r = sigma(gamma_x*xhat + bias + gamma_h*hhat + recurrent_bias), rows r */
            double r = sigm(gx[jr] * s->xhat[jr] + bias[jr] + gh[jr] * s->hhat[jr] + rb[jr]);
            /* z = the same, rows z */
            double z = sigm(gx[jz] * s->xhat[jz] + bias[jz] + gh[jz] * s->hhat[jz] + rb[jz]);
            /* n = tanh(gamma_x*xhat + bias + r*(gamma_h*hhat + recurrent_bias)), rows n */
            double hn = gh[jn] * s->hhat[jn] + rb[jn];
            double n = tanh(gx[jn] * s->xhat[jn] + bias[jn] + r * hn);
            s->gate[jr] = r;
            s->gate[jz] = z;
            s->gate[jn] = n;
            s->hn[j] = hn;
            /* h_t = z*h_{t-1} + (1-z)*n */
            h[j] = z * hp[j] + (1.0 - z) * n;
        }
        break;
    }

    default:
        abort();
    }
}

/* The gates of gru-lbr and gru-ln, r, z, n = tanh(xn + r*hn) with hn in
 * s->hn, and h = (1-z)*n + z*h_prev: adds dL/dh_prev's direct part into dhp
 * and writes dL/d(input-side pre-activation) dpx and dL/d(hidden side) dph,
 * which differ only in n's rows (hn is scaled by r). */
static void lbr_gates_back(int H, const scratch *s, const double *hp, const double *dh,
                           double *dhp, double *dpx, double *dph)
{
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
        dpx[2 * H + j] = dpn;     /* the input side of n  */
        dph[2 * H + j] = dpn * r; /* the hidden side, hn  */
    }
}

/* ------------------------------------------------------------------------ */
/* One backward step of one sequence.  `s` must hold the values computed by  */
/* step_forward for the same (x, hp, cp).  dh/dc are dL/dh_t, dL/dc_t (total,*/
/* including what flows back from later steps).  Writes dL/dh_{t-1} to dhp   */
/* (and dL/dc_{t-1} to dcp for the two-state cells), adds into dx (may be    */
/* NULL) and dW (parts NULL when not wanted).  tmp: work space of 3*4*H.     */

static void step_backward(enum kind k, const ref_cell *c, const wparts *W, const double *x,
                          const double *hp, const double *cp, const scratch *s,
                          const double *dh, const double *dc, double *dx, const wparts *dW,
                          double *dhp, double *dcp, double *dpx, double *dph, double *tmp)
{
    const int I = c->I, H = c->H, G = ref_gates(c);
    double *dWih = dW ? dW->Wih : NULL, *dWhh = dW ? dW->Whh : NULL;
    double *dbih = dW ? dW->bih : NULL, *dbhh = dW ? dW->bhh : NULL;
    double *dP = dW ? dW->P : NULL;

    /* dpx = dL/d(input-side preactivation rows), dph = same for the
     * hidden-side rows; they differ only for gru-lbr's n gate. */
    for (int j = 0; j < H; j++)
        dhp[j] = 0.0;

    switch (k) {
    case K_RNN_TANH:
    case K_RNN_RELU:
        for (int j = 0; j < H; j++)
            dpx[j] = dph[j] = dh[j] * act1_prime(k, s->pre[j]);
        break;

    case K_INDRNN_RELU:
    case K_INDRNN_TANH:
        for (int j = 0; j < H; j++) {
            /* p = W_ih x + b_ih + b_hh + u*a_prev */
            double dp = dh[j] * act1_prime(k, s->pre[j]);
            dpx[j] = dp;
            if (dbhh != NULL)
                dbhh[j] += dp;
            if (dP != NULL)
                dP[j] += dp * hp[j];
            dhp[j] += dp * W->P[j];
        }
        affine_back(W->Wih, I, 0, H, dpx, x, dWih, dbih, dx);
        return;

    case K_GRU_LBR:
        lbr_gates_back(H, s, hp, dh, dhp, dpx, dph);
        break;

    case K_GRU:
        for (int j = 0; j < H; j++) {
            double u = s->gate[0 * H + j], cand = s->gate[2 * H + j];
            /* c = u*cand + (1-u)*c_prev */
            double dcand = dh[j] * u;
            double du = dh[j] * (cand - hp[j]);
            dhp[j] += dh[j] * (1.0 - u);
            dpx[0 * H + j] = dph[0 * H + j] = du * u * (1.0 - u);
            dpx[2 * H + j] = dph[2 * H + j] = dcand * (1.0 - cand * cand);
        }
        /* candidate's hidden side acts on rh = Gr*c_prev; dr into dpx[r] */
        scaled_candidate_back(W, H, 2 * H, dph + 2 * H, s->gate + 1 * H, hp, s->rh, dWhh, dbhh,
                              tmp, dpx + 1 * H, dhp);
        for (int j = 0; j < H; j++) {
            double r = s->gate[1 * H + j];
            dpx[1 * H + j] = dph[1 * H + j] = dpx[1 * H + j] * r * (1.0 - r);
        }
        /* input side of all three gates */
        affine_back(W->Wih, I, 0, G * H, dpx, x, dWih, dbih, dx);
        /* hidden side of the u and r gates acts on c_prev */
        affine_back(W->Whh, H, 0, 2 * H, dph, hp, dWhh, dbhh, dhp);
        return;

    case K_GRU_SIMPLE:
        for (int j = 0; j < H; j++) {
            double u = s->gate[0 * H + j], cand = s->gate[1 * H + j];
            /* c = u*cand + (1-u)*c_prev */
            double du = dh[j] * (cand - hp[j]);
            double dcand = dh[j] * u;
            dhp[j] += dh[j] * (1.0 - u);
            dpx[0 * H + j] = dph[0 * H + j] = du * u * (1.0 - u);
            dpx[1 * H + j] = dph[1 * H + j] = dcand * (1.0 - cand * cand);
        }
        break;

    case K_MGU: {
        double *df = tmp + H; /* dL/df through the candidate's product [H] */
        for (int j = 0; j < H; j++) {
            double f = s->gate[0 * H + j], cand = s->gate[1 * H + j];
            /* h = (1-f)*h_prev + f*cand */
            double dcand = dh[j] * f;
            dhp[j] += dh[j] * (1.0 - f);
            dpx[1 * H + j] = dph[1 * H + j] = dcand * (1.0 - cand * cand);
        }
        /* candidate's hidden side acts on rh = f*h_prev */
        scaled_candidate_back(W, H, 1 * H, dph + 1 * H, s->gate + 0 * H, hp, s->rh, dWhh, dbhh,
                              tmp, df, dhp);
        for (int j = 0; j < H; j++) {
            double f = s->gate[0 * H + j], cand = s->gate[1 * H + j];
            /* f also weighs h_prev against cand directly */
            double dfj = dh[j] * (cand - hp[j]) + df[j];
            dpx[0 * H + j] = dph[0 * H + j] = dfj * f * (1.0 - f);
        }
        /* input side of both gates */
        affine_back(W->Wih, I, 0, G * H, dpx, x, dWih, dbih, dx);
        /* hidden side of the f gate acts on h_prev */
        affine_back(W->Whh, H, 0, 1 * H, dph, hp, dWhh, dbhh, dhp);
        return;
    }

    case K_LSTM:
    case K_LSTM_PEEP: {
        const double *P = (k == K_LSTM_PEEP) ? W->P : NULL;
        for (int j = 0; j < H; j++) {
            double i = s->gate[0 * H + j], f = s->gate[1 * H + j];
            double g = s->gate[2 * H + j], o = s->gate[3 * H + j];
            double tc = s->tc[j];
            double ct = f * cp[j] + i * g;
            /* h = o*tanh(c), o = sigma(. + P[2]*c): c gets both */
            double dpo = dh[j] * tc * o * (1.0 - o);
            double dct = dc[j] + dh[j] * o * (1.0 - tc * tc) + peep(P, H, 2, j, dpo);
            /* c = f*c_prev + i*g */
            double dpi = dct * g * i * (1.0 - i);
            double dpf = dct * cp[j] * f * (1.0 - f);
            /* i, f see c_prev through their peepholes */
            dcp[j] = dct * f + peep(P, H, 0, j, dpi) + peep(P, H, 1, j, dpf);
            if (P != NULL && dP != NULL) {
                dP[0 * H + j] += dpi * cp[j];
                dP[1 * H + j] += dpf * cp[j];
                dP[2 * H + j] += dpo * ct;
            }
            dpx[0 * H + j] = dpi;
            dpx[1 * H + j] = dpf;
            dpx[2 * H + j] = dct * i * (1.0 - g * g);
            dpx[3 * H + j] = dpo;
        }
        for (int r = 0; r < G * H; r++)
            dph[r] = dpx[r];
        break;
    }

    case K_LSTM_LN: {
        const int GH = 4 * H;
        const double *gx = W->P, *gh = W->P + GH, *gc = W->P + 3 * GH;
        double *dgx = dP, *dgh = dP ? dP + GH : NULL, *dbias = dP ? dP + 2 * GH : NULL;
        double *dgc = dP ? dP + 3 * GH : NULL, *dbc = dP ? dP + 3 * GH + H : NULL;
        double *t0 = tmp, *t1 = tmp + GH, *t2 = tmp + 2 * GH; /* [4H] each */
        /* h = o*tanh(cl), cl = gamma_c*chat + beta_c, chat = LN(c) */
        for (int j = 0; j < H; j++) {
            double o = s->gate[3 * H + j], tc = s->tc[j];
            double dcl = dh[j] * o * (1.0 - tc * tc);
            if (dgc != NULL) {
                dgc[j] += dcl * s->chat[j];
                dbc[j] += dcl;
            }
            t0[j] = dcl * gc[j]; /* dL/dchat */
        }
        ln_back(s->chat, s->rsc, H, t0, t1); /* t1 = dL/dc through the LN */
        for (int j = 0; j < H; j++) {
            double i = s->gate[0 * H + j], f = s->gate[1 * H + j];
            double g = s->gate[2 * H + j], o = s->gate[3 * H + j];
            double dct = dc[j] + t1[j];
            /* c = f*c_prev + i*g */
            dcp[j] = dct * f;
            dpx[0 * H + j] = dct * g * i * (1.0 - i);
            dpx[1 * H + j] = dct * cp[j] * f * (1.0 - f);
            dpx[2 * H + j] = dct * i * (1.0 - g * g);
            dpx[3 * H + j] = dh[j] * s->tc[j] * o * (1.0 - o);
        }
        /* v = gamma_x*xhat + gamma_h*hhat + bias;  dpx = dL/dv */
        for (int r = 0; r < GH; r++) {
            if (dgx != NULL) {
                dgx[r] += dpx[r] * s->xhat[r];
                dgh[r] += dpx[r] * s->hhat[r];
                dbias[r] += dpx[r];
            }
            t0[r] = dpx[r] * gx[r]; /* dL/dxhat */
            t1[r] = dpx[r] * gh[r]; /* dL/dhhat */
        }
        ln_back(s->xhat, s->rsx, GH, t0, t2); /* dL/d(W_ih x) */
        ln_back(s->hhat, s->rsh, GH, t1, dph); /* dL/d(W_hh h_prev) */
        affine_back(W->Wih, I, 0, GH, t2, x, dWih, NULL, dx);
        affine_back(W->Whh, H, 0, GH, dph, hp, dWhh, NULL, dhp);
        return;
    }

    case K_GRU_LN: {
        const int GH = 3 * H;
        const double *gx = W->P, *gh = W->P + GH;
        double *dgx = dP, *dgh = dP ? dP + GH : NULL, *dbias = dP ? dP + 2 * GH : NULL;
        double *drb = dP ? dP + 3 * GH : NULL;
        double *t0 = tmp, *t1 = tmp + GH, *t2 = tmp + 2 * GH; /* [3H] each */
        /* dpx = dL/d(gamma_x*xhat + bias), dph = dL/d(gamma_h*hhat + recurrent_bias) */
        lbr_gates_back(H, s, hp, dh, dhp, dpx, dph);
        for (int r = 0; r < GH; r++) {
            if (dgx != NULL) {
                dgx[r] += dpx[r] * s->xhat[r];
                dgh[r] += dph[r] * s->hhat[r];
                dbias[r] += dpx[r];
                drb[r] += dph[r];
            }
            t0[r] = dpx[r] * gx[r]; /* dL/dxhat */
            t1[r] = dph[r] * gh[r]; /* dL/dhhat */
        }
        ln_back(s->xhat, s->rsx, GH, t0, t2); /* dL/d(W_ih x) */
        ln_back(s->hhat, s->rsh, GH, t1, dph); /* dL/d(W_hh h_prev) */
        affine_back(W->Wih, I, 0, GH, t2, x, dWih, NULL, dx);
        affine_back(W->Whh, H, 0, GH, dph, hp, dWhh, NULL, dhp);
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
    const int two = two_states(k);
    wparts W = split(c, w);
    double *h = xcalloc((size_t)H, sizeof(double));
    double *cs = xcalloc((size_t)H, sizeof(double));
    double *hn = xcalloc((size_t)H, sizeof(double));
    double *cn = xcalloc((size_t)H, sizeof(double));
    scratch s = scratch_new(H);

    for (int n = 0; n < N; n++) {
        for (int j = 0; j < H; j++) {
            h[j] = h0 ? h0[(size_t)n * H + j] : 0.0;
            cs[j] = (two && c0) ? c0[(size_t)n * H + j] : 0.0;
        }
        for (int t = 0; t < T; t++) {
            step_forward(k, c, &W, x + ((size_t)t * N + n) * I, h, cs, hn, cn, &s);
            for (int j = 0; j < H; j++) {
                h[j] = hn[j];
                if (two)
                    cs[j] = cn[j];
                y[((size_t)t * N + n) * H + j] = hn[j];
            }
        }
        for (int j = 0; j < H; j++) {
            if (hT)
                hT[(size_t)n * H + j] = h[j];
            if (two && cT)
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
    const int two = two_states(k);
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
    double *tmp = xcalloc((size_t)3 * 4 * H, sizeof(double)); /* step_backward's */
    double *hn = xcalloc((size_t)H, sizeof(double));
    double *cn = xcalloc((size_t)H, sizeof(double));
    scratch s = scratch_new(H);

    for (int n = 0; n < N; n++) {
        /* forward, keeping every state */
        for (int j = 0; j < H; j++) {
            hs[j] = h0 ? h0[(size_t)n * H + j] : 0.0;
            cs[j] = (two && c0) ? c0[(size_t)n * H + j] : 0.0;
        }
        for (int t = 0; t < T; t++)
            step_forward(k, c, &W, x + ((size_t)t * N + n) * I, hs + (size_t)t * H,
                         cs + (size_t)t * H, hs + (size_t)(t + 1) * H,
                         cs + (size_t)(t + 1) * H, &s);

        /* backward through time */
        for (int j = 0; j < H; j++) {
            dh[j] = dhT ? dhT[(size_t)n * H + j] : 0.0;
            dc[j] = (two && dcT) ? dcT[(size_t)n * H + j] : 0.0;
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
            if (two && dc0)
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
