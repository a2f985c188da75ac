/*
 * clblast-peer.h: the GEMM ceiling of recur's OpenCL rows: the matrix
 * products one layer's forward (and BPTT) runs, alone, through CLBlast on
 * the first OpenCL device (its own context and in-order queue), with one
 * clFinish at the end, as recur's time loop has.
 */
#ifndef RECUR_BENCH_CLBLAST_PEER_H
#define RECUR_BENCH_CLBLAST_PEER_H

/* Median ms of the products of a layer with G gates; -1 with a message in
 * err when there is no device or a call fails. */
int clblast_layer_gemms(int G, int T, int N, int I, int H, int training, int reps, double *ms, char *err,
                        unsigned errlen);

#endif
