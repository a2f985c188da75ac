/* onednn-peer.h - oneDNN (2.x C API) peer for recur's benchmark.
 *
 * Times oneDNN's own RNN primitives on the same problem recur's benchmark
 * runs, so the two can be compared: one layer, one direction
 * (unidirectional left-to-right), f32 or bf16,
 * time-major activations (tnc), user weights in ldigo (reordered once,
 * outside the timed region, into whatever layout oneDNN picks via
 * dnnl_format_tag_any), initial states given
 * (src_iter, plus src_iter_c for lstm) and final states produced.
 *
 * Build: link with -ldnnl (Debian's libdnnl-dev 2.6.x). oneDNN runs its
 * CPU primitives on OpenMP threads; set OMP_NUM_THREADS to choose how many.
 *
 * Engine and stream: a CPU engine and an in-order stream are created by the
 * first onednn_rnn_open and cached in file statics, so repeated layers do not
 * pay for (or perturb timings with) engine creation. They are released by
 * onednn_rnn_bench_release(), once no layer is open; the next open creates
 * new ones. The cache is not guarded: call these functions from one thread
 * at a time.
 */
#ifndef RECUR_BENCH_ONEDNN_PEER_H
#define RECUR_BENCH_ONEDNN_PEER_H

#include <stddef.h>

#include <oneapi/dnnl/dnnl_types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One layer of oneDNN's RNN primitives, opened once and timed one
 * repetition at a time, so that the benchmark can take turns between it and
 * recur (and the GEMM ceiling) within each round: their ratio is then of one
 * machine state even when other processes come and go.
 *
 * cell: "rnn" (tanh), "rnn-relu", "lstm", "gru" (dnnl_vanilla_gru, the
 * original GRU) or "gru-lbr" (dnnl_lbr_gru). P: lstm's projection width
 * (LSTMP, dnnl_lstm_*_desc_init_v3 with weights_projection [1, 1, H, P],
 * ldio; dst_layer, src_iter and dst_iter and their diffs are then P wide, c
 * stays H wide, weights_iter is [1, 1, P, 4, H]), 1..H-1, or 0 for none.
 * training: 0 = forward inference only; 1 = forward training + backward
 * (data and weights).
 * dt: dnnl_f32, or dnnl_bf16: src_layer, src_iter, the weights (reordered
 * from f32 user weights), dst_layer and dst_iter in bf16; the bias and
 * lstm's c-state (src_iter_c, dst_iter_c) in f32; in training every diff
 * (diff_src_*, diff_dst_*, the diff weights and bias) in f32, as oneDNN 2.x
 * requires of bf16 training. A CPU without bf16 support makes the primitive
 * descriptor fail.
 *
 * onednn_rnn_open does everything untimed once: descriptor and primitive
 * creation, allocation, input filling (a fixed LCG in [-0.1, 0.1]), the
 * weight reorders into the layouts oneDNN picks (format_tag_any). impl (may
 * be NULL): oneDNN's implementation string of the forward primitive, and
 * " / " and the backward's when it differs ("brgemm", "ref";
 * onednn_cpu_isa says which instructions). Returns NULL with a message in
 * err (size errlen; may be NULL or 0) naming the dnnl call and status that
 * failed.
 *
 * onednn_rnn_run: one repetition, returning its milliseconds, or -1 with a
 * message in err. Timed: dnnl_primitive_execute (forward; in training also
 * backward) followed by dnnl_stream_wait, with clock_gettime(CLOCK_MONOTONIC).
 * oneDNN 2.x accumulates into diff_weights_layer/iter/projection and
 * diff_bias, so those are zeroed before it, outside the timed region: each
 * repetition computes a fresh gradient.
 *
 * onednn_rnn_close: checks that every output is finite (-1 with a message in
 * err when one is not), then frees the layer (r may be NULL: 0). */
typedef struct onednn_rnn onednn_rnn;

onednn_rnn *onednn_rnn_open(const char *cell, int T, int N, int I, int H,
                            int P, int training, dnnl_data_type_t dt,
                            char *impl, size_t impllen, char *err,
                            size_t errlen);
double onednn_rnn_run(onednn_rnn *r, char *err, size_t errlen);
int onednn_rnn_close(onednn_rnn *r, char *err, size_t errlen);

/* oneDNN's effective CPU ISA (dnnl_get_effective_cpu_isa) by name, e.g.
 * "avx512_core_bf16" (AVX512-BF16) or "avx512_core_amx" (AMX). */
const char *onednn_cpu_isa(void);

/* Releases the cached engine and stream (no-op when none is cached). */
void onednn_rnn_bench_release(void);

#ifdef __cplusplus
}
#endif

#endif /* RECUR_BENCH_ONEDNN_PEER_H */
