#include "ref-model.h"

#include <stdlib.h>
#include <string.h>

#include "ref-cell.h"

int ref_model_dirs(const ref_model *m) { return m->dir >= REF_BIDI_CONCAT ? 2 : 1; }
int ref_model_out(const ref_model *m) { return m->dir == REF_BIDI_CONCAT ? 2 * m->H : m->H; }

static ref_cell layer_cell(const ref_model *m, int l) {
    ref_cell c = {m->cell, m->variant, l == 0 ? m->I : ref_model_out(m), m->H};
    return c;
}

/* Whether the cell carries a second state c (lstm, lstm-peephole, lstm-ln). */
static int two_states(const ref_model *m) {
    ref_cell c = layer_cell(m, 0);
    return ref_states(&c) == 2;
}

size_t ref_model_weight_offset(const ref_model *m, int l, int d) {
    size_t off = 0;
    for (int k = 0; k < l * ref_model_dirs(m) + d; k++) {
        ref_cell c = layer_cell(m, k / ref_model_dirs(m));
        off += ref_weight_count(&c);
    }
    return off;
}

size_t ref_model_weight_count(const ref_model *m) { return ref_model_weight_offset(m, m->L, 0); }

static double *zeros(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static int is_rev(const ref_model *m, int d) { return m->dir == REF_REVERSE || d == 1; }

/* Step t of the sequence as direction d processes it. */
static int pos_of(const ref_model *m, int d, int len, int t) { return is_rev(m, d) ? len - 1 - t : t; }

/* The inputs of every layer ([L][T][N][maxI]) and the final output. */
static void run(const ref_model *m, int T, int N, const int *lengths, const double *w, const double *x,
                const double *h0, const double *c0, const double *masks, double *ins, size_t in_stride, double *y,
                double *hT, double *cT) {
    int D = ref_model_dirs(m), O = ref_model_out(m), H = m->H, two = two_states(m);
    size_t maxI = (size_t)(m->I > O ? m->I : O);
    double *out = zeros((size_t)T * N * O);
    for (int l = 0; l < m->L; l++) {
        ref_cell c = layer_cell(m, l);
        int I = c.I;
        double *in = ins + (size_t)l * in_stride;
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++)
                for (int i = 0; i < I; i++) {
                    double v = l == 0 ? x[((size_t)t * N + n) * I + i] : out[((size_t)t * N + n) * O + i];
                    if (l > 0 && masks) v *= masks[(((size_t)l * T + t) * N + n) * O + i];
                    in[((size_t)t * N + n) * maxI + i] = v;
                }
        memset(out, 0, (size_t)T * N * O * sizeof(double));
        for (int d = 0; d < D; d++) {
            const double *wl = w + ref_model_weight_offset(m, l, d);
            size_t sd = (size_t)(l * D + d) * N * H;
            for (int n = 0; n < N; n++) {
                int len = lengths ? lengths[n] : T;
                double *xs = zeros((size_t)len * I), *ys = zeros((size_t)len * H), *hs = zeros(H), *cs = zeros(H);
                for (int t = 0; t < len; t++)
                    memcpy(xs + (size_t)t * I, in + ((size_t)pos_of(m, d, len, t) * N + n) * maxI, I * sizeof(double));
                ref_forward(&c, len, 1, wl, xs, h0 ? h0 + sd + (size_t)n * H : NULL,
                            two && c0 ? c0 + sd + (size_t)n * H : NULL, ys, hs, cs);
                for (int t = 0; t < len; t++)
                    for (int j = 0; j < H; j++) {
                        int col = m->dir == REF_BIDI_CONCAT ? d * H + j : j;
                        out[((size_t)pos_of(m, d, len, t) * N + n) * O + col] += ys[(size_t)t * H + j];
                    }
                if (hT) memcpy(hT + sd + (size_t)n * H, hs, H * sizeof(double));
                if (cT && two) memcpy(cT + sd + (size_t)n * H, cs, H * sizeof(double));
                free(xs), free(ys), free(hs), free(cs);
            }
        }
    }
    if (y) memcpy(y, out, (size_t)T * N * O * sizeof(double));
    free(out);
}

void ref_model_forward(const ref_model *m, int T, int N, const int *lengths, const double *w, const double *x,
                       const double *h0, const double *c0, const double *masks, double *y, double *hT, double *cT) {
    int O = ref_model_out(m);
    size_t maxI = (size_t)(m->I > O ? m->I : O), stride = (size_t)T * N * maxI;
    double *ins = zeros(stride * m->L);
    run(m, T, N, lengths, w, x, h0, c0, masks, ins, stride, y, hT, cT);
    free(ins);
}

void ref_model_backward(const ref_model *m, int T, int N, const int *lengths, const double *w, const double *x,
                        const double *h0, const double *c0, const double *masks, const double *dy,
                        const double *dhT, const double *dcT, double *dx, double *dh0, double *dc0, double *dw) {
    int D = ref_model_dirs(m), O = ref_model_out(m), H = m->H, two = two_states(m);
    size_t maxI = (size_t)(m->I > O ? m->I : O), stride = (size_t)T * N * maxI;
    double *ins = zeros(stride * m->L);
    run(m, T, N, lengths, w, x, h0, c0, masks, ins, stride, NULL, NULL, NULL);
    double *dout = zeros((size_t)T * N * O), *din = zeros((size_t)T * N * maxI);
    for (size_t i = 0; i < (size_t)T * N * O; i++) dout[i] = dy ? dy[i] : 0;
    if (dw) memset(dw, 0, ref_model_weight_count(m) * sizeof(double));
    for (int l = m->L - 1; l >= 0; l--) {
        ref_cell c = layer_cell(m, l);
        int I = c.I;
        size_t nw = ref_weight_count(&c);
        double *in = ins + (size_t)l * stride, *dwl = zeros(nw);
        memset(din, 0, (size_t)T * N * maxI * sizeof(double));
        for (int d = 0; d < D; d++) {
            size_t sd = (size_t)(l * D + d) * N * H, woff = ref_model_weight_offset(m, l, d);
            for (int n = 0; n < N; n++) {
                int len = lengths ? lengths[n] : T;
                double *xs = zeros((size_t)len * I), *dys = zeros((size_t)len * H), *dxs = zeros((size_t)len * I);
                double *dh = zeros(H), *dc = zeros(H);
                for (int t = 0; t < len; t++) {
                    int p = pos_of(m, d, len, t);
                    memcpy(xs + (size_t)t * I, in + ((size_t)p * N + n) * maxI, I * sizeof(double));
                    for (int j = 0; j < H; j++) {
                        int col = m->dir == REF_BIDI_CONCAT ? d * H + j : j;
                        dys[(size_t)t * H + j] = dout[((size_t)p * N + n) * O + col];
                    }
                }
                ref_backward(&c, len, 1, w + woff, xs, h0 ? h0 + sd + (size_t)n * H : NULL,
                             two && c0 ? c0 + sd + (size_t)n * H : NULL, dys, dhT ? dhT + sd + (size_t)n * H : NULL,
                             two && dcT ? dcT + sd + (size_t)n * H : NULL, dxs, dh, dc, dwl);
                for (size_t i = 0; i < nw && dw; i++) dw[woff + i] += dwl[i];
                for (int t = 0; t < len; t++)
                    for (int i = 0; i < I; i++)
                        din[((size_t)pos_of(m, d, len, t) * N + n) * maxI + i] += dxs[(size_t)t * I + i];
                if (dh0) memcpy(dh0 + sd + (size_t)n * H, dh, H * sizeof(double));
                if (dc0 && two) memcpy(dc0 + sd + (size_t)n * H, dc, H * sizeof(double));
                free(xs), free(dys), free(dxs), free(dh), free(dc);
            }
        }
        free(dwl);
        if (l > 0) {
            for (int t = 0; t < T; t++)
                for (int n = 0; n < N; n++)
                    for (int i = 0; i < O; i++) {
                        double v = din[((size_t)t * N + n) * maxI + i];
                        if (masks) v *= masks[(((size_t)l * T + t) * N + n) * O + i];
                        dout[((size_t)t * N + n) * O + i] = v;
                    }
        } else if (dx) {
            for (int t = 0; t < T; t++)
                for (int n = 0; n < N; n++)
                    for (int i = 0; i < I; i++) dx[((size_t)t * N + n) * I + i] = din[((size_t)t * N + n) * maxI + i];
        }
    }
    free(ins), free(dout), free(din);
}
