/* onednn-peer.h - oneDNN (2.x C API) peer for recur's benchmark.
 *
 * Times oneDNN's own RNN primitives on the same problem recur's benchmark
 * runs, so the two can be compared: one layer, one direction
 * (unidirectional left-to-right), f32 (or bf16: onednn_rnn_bench_dt),
 * time-major activations (tnc), user weights in ldigo (reordered once,
 * outside the timed region, into whatever layout oneDNN picks via
 * dnnl_format_tag_any), initial states given
 * (src_iter, plus src_iter_c for lstm) and final states produced.
 *
 * Build: link with -ldnnl (Debian's libdnnl-dev 2.6.x). oneDNN runs its
 * CPU primitives on OpenMP threads; set OMP_NUM_THREADS to choose how many.
 *
 * Engine and stream: a CPU engine and an in-order stream are created on the
 * first call and cached in file statics, so repeated calls do not pay for
 * (or perturb timings with) engine creation. They are released by
 * onednn_rnn_bench_release(), after which the next call creates new ones.
 * The cache is not guarded: call these functions from one thread at a time.
 */
#ifndef RECUR_BENCH_ONEDNN_PEER_H
#define RECUR_BENCH_ONEDNN_PEER_H

#include <stddef.h>

#include <oneapi/dnnl/dnnl_types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cell: "rnn" (tanh), "rnn-relu", "lstm", "gru" (dnnl_vanilla_gru, the
 * original GRU) or "gru-lbr" (dnnl_lbr_gru).
 * training: 0 = forward inference only; 1 = forward training + backward
 * (data and weights).
 * Times `reps` repetitions after `warmup` untimed ones, writes the median
 * milliseconds of one repetition (for training, forward+backward together)
 * to *ms. Returns 0, or -1 with a message in err (size errlen) naming the
 * dnnl call and status that failed. One layer, one direction, time-major
 * tnc / ldigo, f32, with initial states given (src_iter, and src_iter_c for
 * lstm) and final states produced.
 *
 * Timed region of one repetition: dnnl_primitive_execute (forward; in
 * training also backward) followed by dnnl_stream_wait, measured with
 * clock_gettime(CLOCK_MONOTONIC). Everything else (descriptor and primitive
 * creation, allocation, input filling, weight reorders) happens once before
 * the warmup. oneDNN 2.x accumulates into diff_weights_layer/iter and
 * diff_bias, so those are zeroed before every repetition, outside the timed
 * region; each repetition thus computes a fresh gradient.
 * Inputs (src, states, weights, bias, diff_dst*) are filled with a fixed
 * LCG in [-0.1, 0.1]; outputs are checked to be finite after the run.
 * err may be NULL or errlen 0 when no message is wanted. */
int onednn_rnn_bench(const char *cell, int T, int N, int I, int H,
                     int training, int warmup, int reps, double *ms,
                     char *err, size_t errlen);

/* onednn_rnn_bench in data type dt: dnnl_f32 (the same), or dnnl_bf16:
 * src_layer, src_iter, the weights (reordered from f32 user weights),
 * dst_layer and dst_iter in bf16; the bias and lstm's c-state (src_iter_c,
 * dst_iter_c) in f32; in training every diff (diff_src_*, diff_dst_*, the
 * diff weights and bias) in f32, as oneDNN 2.x requires of bf16 training.
 * impl (may be NULL): oneDNN's implementation string of the forward
 * primitive, and " / " and the backward's when it differs ("brgemm",
 * "ref"; onednn_cpu_isa says which instructions). A CPU without bf16
 * support makes the primitive descriptor fail: -1, naming the call. */
int onednn_rnn_bench_dt(const char *cell, int T, int N, int I, int H,
                        int training, dnnl_data_type_t dt, int warmup,
                        int reps, double *ms, char *impl, size_t impllen,
                        char *err, size_t errlen);

/* oneDNN's LSTM with projection ("LSTMP", dnnl_lstm_*_desc_init_v3 with
 * weights_projection [1, 1, H, P], ldio): as onednn_rnn_bench("lstm", ...)
 * but dst_layer, src_iter and dst_iter (and their diffs) are P wide, c stays
 * H wide, weights_iter is [1, 1, P, 4, H], and the projection weights are
 * reordered once like the others (and their gradient zeroed before every
 * training repetition). P in 1..H-1. */
int onednn_lstmp_bench(int T, int N, int I, int H, int P, int training,
                       int warmup, int reps, double *ms, char *err,
                       size_t errlen);

/* oneDNN's effective CPU ISA (dnnl_get_effective_cpu_isa) by name, e.g.
 * "avx512_core_bf16" (AVX512-BF16) or "avx512_core_amx" (AMX). */
const char *onednn_cpu_isa(void);

/* Releases the cached engine and stream (no-op when none is cached). */
void onednn_rnn_bench_release(void);

#ifdef __cplusplus
}
#endif

#endif /* RECUR_BENCH_ONEDNN_PEER_H */
