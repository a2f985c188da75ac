/*
 * ref-cell.h - independent double-precision reference of four recurrent cells.
 *
 * Test code only.  It is written straight from the equations, one scalar loop
 * per matrix product, with no attempt at speed, so that the library's float
 * kernels can be checked against it.
 *
 * Cells (G = number of gates, H = hidden size, I = input size,
 * sigma = logistic sigmoid 1/(1+exp(-v))):
 *
 *   "rnn"     G=1.  variant 0 = tanh, variant 1 = relu.
 *             a_t = g(W_ih x_t + b_ih + W_hh a_{t-1} + b_hh)
 *
 *   "lstm"    G=4, PyTorch nn.LSTM, gate storage order i, f, g, o.
 *             i = sigma(.), f = sigma(.), g = tanh(.), o = sigma(.)
 *             with (.) = W_ih[gate] x + b_ih[gate] + W_hh[gate] h + b_hh[gate]
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
 * Weight layout ("canonical flat layout", a one-layer PyTorch state_dict
 * concatenated):
 *   w = [ W_ih (G*H rows x I cols, row-major, gate blocks of H rows in storage
 *         order), W_hh (G*H x H), b_ih (G*H), b_hh (G*H) ]
 *   total ref_weight_count() = G*H*(I+H+2) doubles.
 *
 * Data: x is [T][N][I] (time-major), h0 and c0 are [N][H], y is [T][N][H]
 * (the h of every step), hT and cT are the final states [N][H].
 * For cells with a single state (everything but lstm) c0 and dcT are ignored,
 * and cT and dc0 are never written.
 */
#ifndef REF_CELL_H
#define REF_CELL_H

#include <stddef.h>

typedef struct ref_cell {
    const char *cell; /* "rnn", "lstm", "gru-lbr" or "gru" */
    int variant;      /* rnn only: 0 = tanh, 1 = relu; ignored otherwise */
    int I, H;         /* input size, hidden size */
} ref_cell;

/* Number of gates G (1, 4, 3, 3), or -1 for an unknown cell name. */
int ref_gates(const ref_cell *c);

/* Number of state vectors: 2 for lstm (h, c), else 1. */
int ref_states(const ref_cell *c);

/* Number of doubles in w: G*H*(I+H+2) (0 for an unknown cell). */
size_t ref_weight_count(const ref_cell *c);

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
