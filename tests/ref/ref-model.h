/*
 * ref-model.h: the double-precision reference of a model (stacked layers,
 * directions, variable lengths, dropout with given masks), composed from
 * the one-layer reference (ref-cell.h) one sequence at a time: a sequence of
 * length len is run as its own batch of one over its len steps, the reverse
 * direction on the sequence reversed. Test code only; simple, not fast.
 *
 * Weights: for each layer l, for each direction d (index l*D + d), the
 * one-layer canonical flat block of ref-cell.h, concatenated. Layer l > 0
 * has input size O = H*D (concat) or H (forward, reverse, sum).
 * x [T][N][I]; h0, c0, hT, cT [L*D][N][H]; y [T][N][O], zero past each
 * sequence's length; masks (NULL: none) [L][T][N][O]: layer l > 0's input is
 * mask[l] * (layer l-1's output), mask[0] unused.
 */
#ifndef REF_MODEL_H
#define REF_MODEL_H

#include <stddef.h>

enum { REF_FORWARD = 0, REF_REVERSE = 1, REF_BIDI_CONCAT = 2, REF_BIDI_SUM = 3 };

typedef struct ref_model {
    const char *cell;
    int variant;
    int I, H, L, dir;
} ref_model;

int ref_model_dirs(const ref_model *m);
int ref_model_out(const ref_model *m);
size_t ref_model_weight_count(const ref_model *m);
/* Offset of layer l, direction d's block in w. */
size_t ref_model_weight_offset(const ref_model *m, int l, int d);

void ref_model_forward(const ref_model *m, int T, int N, const int *lengths, const double *w, const double *x,
                       const double *h0, const double *c0, const double *masks, double *y, double *hT, double *cT);
/* Gradients of L = sum(y*dy) + sum(hT*dhT) + sum(cT*dcT); outputs overwritten. */
void ref_model_backward(const ref_model *m, int T, int N, const int *lengths, const double *w, const double *x,
                        const double *h0, const double *c0, const double *masks, const double *dy,
                        const double *dhT, const double *dcT, double *dx, double *dh0, double *dc0, double *dw);

#endif
