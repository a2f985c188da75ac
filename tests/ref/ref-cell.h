/*
 * ref-cell.h - independent double-precision reference of recurrent cells.
 *
 * Test code only.  It is written straight from the equations, one scalar loop
 * per matrix product, with no attempt at speed, so that the library's float
 * kernels can be checked against it.
 *
 * Cells (G = number of gates, H = hidden size, I = input size,
 * sigma = logistic sigmoid 1/(1+exp(-v))).  Unless said otherwise a gate's
 * pre-activation is (.) = W_ih[gate] x + b_ih[gate] + W_hh[gate] h + b_hh[gate]:
 *
 *   "rnn"     G=1.  variant 0 = tanh, variant 1 = relu.
 *             a_t = g(W_ih x_t + b_ih + W_hh a_{t-1} + b_hh)
 *
 *   "lstm"    G=4, PyTorch nn.LSTM, gate storage order i, f, g, o.
 *             i = sigma(.), f = sigma(.), g = tanh(.), o = sigma(.)
 *             c_t = f*c_{t-1} + i*g ;  h_t = o*tanh(c_t).   Two states h, c.
 *
 *   "gru-lbr" G=3, PyTorch nn.GRU ("linear before reset"), order r, z, n.
 *             r = sigma(W_ir x + b_ir + W_hr h + b_hr)
 *             z = sigma(W_iz x + b_iz + W_hz h + b_hz)
 *             n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
 *             h_t = (1-z)*n + z*h_{t-1}
 *
 *   "gru"     G=3, original GRU (reset BEFORE the matrix product),
 *             storage order u, r, c.
 *             Gu = sigma(W_ih[u] x + b_ih[u] + W_hh[u] c_{t-1} + b_hh[u])
 *             Gr = sigma(W_ih[r] x + b_ih[r] + W_hh[r] c_{t-1} + b_hh[r])
 *             c~ = tanh(W_ih[c] x + b_ih[c] + W_hh[c] (Gr*c_{t-1}) + b_hh[c])
 *             c_t = Gu*c~ + (1-Gu)*c_{t-1}
 *             (Gu weights the CANDIDATE; PyTorch's z weights the old state.)
 *
 *   "gru-simple" G=2, the simplified GRU (update gate only), order u, c.
 *             Gu = sigma(W_ih[u] x + b_ih[u] + W_hh[u] c_{t-1} + b_hh[u])
 *             c~ = tanh(W_ih[c] x + b_ih[c] + W_hh[c] c_{t-1} + b_hh[c])
 *             c_t = Gu*c~ + (1-Gu)*c_{t-1}
 *
 *   "mgu"     G=2, minimal gated unit (Zhou et al. 2016), order f, h.
 *             f  = sigma(W_ih[f] x + b_ih[f] + W_hh[f] h_{t-1} + b_hh[f])
 *             h~ = tanh(W_ih[h] x + b_ih[h] + W_hh[h] (f*h_{t-1}) + b_hh[h])
 *             h_t = (1-f)*h_{t-1} + f*h~
 *
 *   "indrnn"  G=1, IndRNN (Li et al. 2018); variant 0 = relu, variant 1 = tanh.
 *             No W_hh block (R = 0); own parameter u [H], elementwise:
 *             a_t = g(W_ih x_t + b_ih + b_hh + u*a_{t-1})
 *
 *   "lstm-peephole" G=4, oneDNN's vanilla LSTM with peepholes, order i, f, g, o;
 *             own parameter P [3][H], rows i, f, o.  Two states h, c.
 *             i = sigma(. + P[0]*c_{t-1}),  f = sigma(. + P[1]*c_{t-1}),
 *             g = tanh(.),  c_t = f*c_{t-1} + i*g,
 *             o = sigma(. + P[2]*c_t)   (the NEW cell state),  h_t = o*tanh(c_t)
 *
 *   "lstm-ln" G=4, Haste's LayerNormLSTM (lmnt-com/haste, ref-cell.c cites the
 *             lines), in our gate order i, f, g, o.  No b_ih/b_hh blocks; own
 *             parameters gamma_x [4H], gamma_h [4H], bias [4H], gamma_c [H],
 *             beta_c [H].  Two states h, c.  LN(v) over all n entries of one
 *             row: (v - mean) / sqrt(var + 1e-5), population variance.
 *             v   = gamma_x*LN(W_ih x) + gamma_h*LN(W_hh h_{t-1}) + bias
 *                   (both LNs over the whole 4H vector, no shift)
 *             i, f, o = sigma(v[i]), sigma(v[f]), sigma(v[o]); g = tanh(v[g])
 *             c_t = f*c_{t-1} + i*g          (the carried state: NOT normalised)
 *             h_t = o*tanh(gamma_c*LN(c_t) + beta_c)   (LN over H)
 *
 *   "gru-ln"  G=3, Haste's LayerNormGRU (ref-cell.c cites the lines), in
 *             our gate order r, z, n.  No b_ih/b_hh blocks; own parameters
 *             gamma_x [3H], gamma_h [3H], bias [3H], recurrent_bias [3H].
 *             xv = gamma_x*LN(W_ih x) + bias,
 *             hv = gamma_h*LN(W_hh h_{t-1}) + recurrent_bias  (LNs over 3H)
 *             r = sigma(xv[r] + hv[r]),  z = sigma(xv[z] + hv[z]),
 *             n = tanh(xv[n] + r*hv[n]),  h_t = (1-z)*n + z*h_{t-1}
 *
 * Weight layout ("canonical flat layout"; for the PyTorch cells a one-layer
 * state_dict concatenated):
 *   w = [ W_ih (G*H rows x I cols, row-major, gate blocks of H rows in storage
 *         order), W_hh (Grec*H x H), b_ih (G*H), b_hh (G*H), own parameters ]
 * Grec = ref_recurrent_gates() is the number of gates with a W_hh product
 * (G for every cell but indrnn, which has none: its W_hh block is absent).
 * b_ih and b_hh are present when ref_has_biases() (all but lstm-ln and
 * gru-ln); every gate's pre-activation includes b_ih[g] + b_hh[g], even
 * without W_hh.  The own parameters (ref_param_count() doubles) come last in
 * the order listed above: indrnn u; lstm-peephole P; lstm-ln gamma_x,
 * gamma_h, bias, gamma_c, beta_c; gru-ln gamma_x, gamma_h, bias,
 * recurrent_bias.  Total ref_weight_count() =
 *   G*H*I + Grec*H*H + (biases ? 2*G*H : 0) + ref_param_count().
 *
 * Data: x is [T][N][I] (time-major), h0 and c0 are [N][H], y is [T][N][H]
 * (the h of every step), hT and cT are the final states [N][H].
 * For cells with a single state (ref_states() == 1) c0 and dcT are ignored,
 * and cT and dc0 are never written.
 */
#ifndef REF_CELL_H
#define REF_CELL_H

#include <stddef.h>

typedef struct ref_cell {
    const char *cell; /* "rnn", "lstm", "gru-lbr", "gru", "gru-simple", "mgu",
                         "indrnn", "lstm-peephole", "lstm-ln" or "gru-ln" */
    int variant;      /* rnn: 0 = tanh, 1 = relu; indrnn: 0 = relu, 1 = tanh;
                         ignored otherwise */
    int I, H;         /* input size, hidden size */
} ref_cell;

/* Number of gates G (in the order listed above: 1, 4, 3, 3, 2, 2, 1, 4, 4, 3),
 * or -1 for an unknown cell name. */
int ref_gates(const ref_cell *c);

/* Number of gates with a recurrent matrix product, Grec: G, but 0 for indrnn
 * (-1 for an unknown cell). */
int ref_recurrent_gates(const ref_cell *c);

/* 1 if w holds the b_ih and b_hh blocks (every cell but lstm-ln and gru-ln),
 * else 0. */
int ref_has_biases(const ref_cell *c);

/* Number of doubles of the cell's own parameters at the end of w:
 * indrnn H, lstm-peephole 3*H, lstm-ln 3*4*H + 2*H, gru-ln 4*3*H, others 0. */
size_t ref_param_count(const ref_cell *c);

/* Number of state vectors: 2 for lstm, lstm-peephole and lstm-ln (h, c),
 * else 1. */
int ref_states(const ref_cell *c);

/* Number of doubles in w (see the layout above; 0 for an unknown cell). */
size_t ref_weight_count(const ref_cell *c);

/* REF_BF16 (1) or REF_F16 (2): every operand of a matrix product (a
 * weight, an input, a state, a gate's gradient) is rounded to bfloat16 or
 * to IEEE binary16 (to nearest even; f16: subnormals below 2^-14, Inf from
 * 65520) before it is multiplied, as recur's RECUR_DTYPE_BF16 and _F16
 * precisions do; biases, sums and pointwise math stay double. REF_EXACT
 * (0, the default): exact. For all cells. */
enum { REF_EXACT = 0, REF_BF16 = 1, REF_F16 = 2 };
void ref_set_products(int type);

/* Forward over T steps, N sequences. h0/c0 NULL means zeros; hT/cT may be NULL.
 * y [T][N][H] must not be NULL. */
void ref_forward(const ref_cell *c, int T, int N, const double *w, const double *x,
                 const double *h0, const double *c0, double *y, double *hT, double *cT);

/* BPTT of the loss L = sum(y*dy) + sum(hT*dhT) + sum(cT*dcT) (dy, dhT, dcT may be
 * NULL = zero).
 * Outputs (any may be NULL = not wanted): dx [T][N][I], dh0 [N][H], dc0 [N][H],
 * dw (same layout as w, overwritten). Every requested output is overwritten
 * (not accumulated into). The forward pass is recomputed internally. */
void ref_backward(const ref_cell *c, int T, int N, const double *w, const double *x,
                  const double *h0, const double *c0, const double *dy, const double *dhT,
                  const double *dcT, double *dx, double *dh0, double *dc0, double *dw);

#endif /* REF_CELL_H */
