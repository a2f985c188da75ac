/*
 * backend-impl.h: the internal dispatch table (not installed).
 *
 * A backend is a vtable (struct recur_backend_i) plus an object
 * (struct recur_backend: iface, the backend's private context, the owning
 * recur context). The engine never asks which backend it runs on: core
 * reaches the backends only through the registry and the recur_be_*
 * wrappers below (backends/dispatch.c), the only code that calls through
 * these pointers. Optional slots say so and give the default that the
 * wrapper applies.
 *
 * Memory is addressed as (buffer, byte offset), struct recur_mem, so that a
 * host pointer and an OpenCL cl_mem look the same to the engine. All
 * matrices are row-major floats.
 *
 * Errors: a slot returns a recur_status and, on failure, sets the message on
 * be->ctx with recur_err() (backend-host.h) naming what failed.
 */
#ifndef RECUR_BACKEND_IMPL_H
#define RECUR_BACKEND_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "backend-host.h"
#include "recur/recur-cell.h"
#include "recur/recur.h"

/* A place in device memory: a buffer and a byte offset. buf NULL = no buffer. */
struct recur_mem {
    void *buf;
    size_t off;
};

static inline struct recur_mem recur_mem_at(struct recur_mem m, size_t float_offset) {
    struct recur_mem r = {m.buf, m.off + float_offset * sizeof(float)};
    return r;
}
/* The same for 16-bit elements (bf16 storage: to_bf16, from_bf16). */
static inline struct recur_mem recur_mem_at16(struct recur_mem m, size_t half_offset) {
    struct recur_mem r = {m.buf, m.off + half_offset * 2};
    return r;
}

/* The arguments of one cell kernel call (struct recur_cell_args with memory
 * handles instead of pointers; a mem with buf NULL stands for NULL). */
struct recur_step {
    int n, H, variant, training;
    struct recur_mem xw, hw, b_hh;
    struct recur_mem prev[RECUR_CELL_MAX_STATES], next[RECUR_CELL_MAX_STATES];
    struct recur_mem save, src;
    struct recur_mem dnext[RECUR_CELL_MAX_STATES], dprev[RECUR_CELL_MAX_STATES];
    struct recur_mem dxw, dhw, dsrc;
    struct recur_mem param[RECUR_CELL_MAX_PARAMS];  /* the parameters themselves */
    struct recur_mem dparam[RECUR_CELL_MAX_PARAMS]; /* per row: width = the parameter's size */
};

/* A registered cell (core/plugin.c). */
struct recur_cell {
    const struct recur_cell_desc *desc;
    char *path;   /* the shared object it came from */
    void *handle; /* dlopen handle, never closed while the process lives */
};

/* Number of partial sums the sum slot writes. */
#define RECUR_SUM_PARTS 256

struct recur_backend;

struct recur_backend_i {
    /* Backend name, the first field of a device selector: "cpu", "opencl". */
    const char *name;
    /* 1: device memory is host memory, so a host pointer is a valid buffer
     * and the engine reads inputs and writes outputs in place. 0: the engine
     * copies them through device buffers (once per call, never per step). */
    int host_memory;

    /* ---- devices ---- */

    /* Append this backend's devices to out[*count .. cap) and add their
     * number to *count (even those that did not fit). Never fails: a backend
     * with no device (no OpenCL platform) adds none. */
    void (*devices)(recur_device_info *out, size_t cap, size_t *count);
    /* (optional) Whether this backend has a device that should be the
     * default when RECUR_DEVICE is unset (an OpenCL GPU). Default: no. */
    int (*preferred)(void);
    /* Open the device that `spec` selects (the selector after "name", with
     * its leading ':' removed; "" for the backend's default). Fills
     * be->context and be->info. On a spec that matches nothing, fail with
     * RECUR_ERR_DEVICE or RECUR_ERR_UNSUPPORTED and list the valid choices. */
    recur_status (*open)(struct recur_backend *be, const char *spec);
    /* Release everything open() made. */
    void (*close)(struct recur_backend *be);

    /* ---- buffers ---- */

    /* Allocate `bytes` (> 0) of device memory. RECUR_ERR_DEVICE_MEMORY past
     * the device's limit or when allocation fails. */
    recur_status (*alloc)(struct recur_backend *be, size_t bytes, void **buf);
    /* Free a buffer from alloc (NULL allowed). */
    void (*free)(struct recur_backend *be, void *buf);
    /* Host to device, device to host, device to device (no overlap). The host
     * memory of write() may be reused as soon as the slot returns. */
    recur_status (*write)(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes);
    recur_status (*read)(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes);
    recur_status (*copy)(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t bytes);
    /* (optional) Host to device without waiting: the host memory at src must
     * stay alive and unchanged until the next sync() or read() of this
     * backend (both drain the queue, which is in order). Core calls it
     * through recur_be_write_owned/_staged below, which keep that memory
     * alive, or (core/dist.c) with memory it keeps until the queue has
     * drained. Default: write(). */
    recur_status (*write_async)(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes);
    /* (optional) Device to host without waiting: dst is written once the
     * work queued before it has run, and must stay alive until then. With
     * `ticket` non-NULL, *ticket is a handle for read_done (NULL when the
     * read already finished). Default: read(), and *ticket NULL. */
    recur_status (*read_async)(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes,
                               void **ticket);
    /* (optional with read_async) Whether the read of `ticket` has finished
     * (*done), waiting for it when `wait` is 1; a finished ticket (or one
     * that failed) is released. */
    recur_status (*read_done)(struct recur_backend *be, void *ticket, int wait, int *done);
    /* Set `count` floats to `value`. */
    recur_status (*fill)(struct recur_backend *be, struct recur_mem dst, float value, size_t count);
    /* dst[r*ld + j] = beta * dst[r*ld + j] for r < rows, j < width (both > 0).
     * beta 0 writes 0 without reading dst, so Inf and NaN in it become 0 (as
     * BLAS treats beta 0): the empty product of a K = 0 GEMM. */
    recur_status (*scale)(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld, float beta);

    /* ---- linear algebra ---- */

    /* C = alpha op(A) op(B) + beta C, row-major, op(X) = X or X^T
     * (trans_* nonzero); op(A) is M x K, op(B) K x N, C M x N. All three
     * are float arrays; `prec` is the precision of the products: F32, or a
     * type precisions() lists, for which each element of A and B is
     * rounded to that type (to nearest even) as it enters the product and
     * the sums are float32 (C stays float32). */
    recur_status (*gemm)(struct recur_backend *be, recur_dtype prec, int trans_a, int trans_b, int M, int N,
                         int K, float alpha, struct recur_mem A, int lda, struct recur_mem B, int ldb, float beta,
                         struct recur_mem C, int ldc);
    /* (optional) The precisions gemm takes: bit 1 << RECUR_DTYPE_x for
     * each, F32 always; *native the bits it computes faster than F32 (in
     * hardware), the others it emulates (rounding, then float32 products).
     * Default: F32 alone, natively. */
    unsigned (*precisions)(struct recur_backend *be, unsigned *native);
    /* (optional, with gemm_packed and unpack) A weight operand packed once
     * for many products: op(B) (K x N; B row-major with ldb, transposed
     * when trans_b) copied into the layout the backend multiplies fastest,
     * rounded to `prec`. *packed is the backend's, freed with unpack. It
     * may be B itself (a float32 pack on the CPU and OpenCL) or a copy, so
     * the caller packs again whenever B changes (core/precision.c: per
     * weight version) and keeps B alive while the pack lives. */
    recur_status (*pack)(struct recur_backend *be, recur_dtype prec, int trans_b, int K, int N, struct recur_mem B,
                         int ldb, void **packed);
    /* C = A op(B) + beta C (beta 0 or 1; 0 writes C without reading it)
     * with op(B) from pack: A M x K (row stride lda), C M x N (ldc), A
     * rounded to the pack's precision. */
    recur_status (*gemm_packed)(struct recur_backend *be, int M, struct recur_mem A, int lda, const void *packed,
                                float beta, struct recur_mem C, int ldc);
    /* (optional) A pack made again from the current values of the operand
     * it was packed from (a new weight version: the same B, shape and
     * precision), in place. Default: unpack, then pack. */
    recur_status (*repack)(struct recur_backend *be, void *packed);
    void (*unpack)(struct recur_backend *be, void *packed);

    /* ---- shared kernels ---- */

    /* Each of `rows` rows of dst (row stride ld floats) gets the `width`
     * floats at row: dst[r*ld + j] = row[j]. */
    recur_status (*rows_set)(struct recur_backend *be, struct recur_mem dst, int rows, int width,
                             int ld, struct recur_mem row);
    /* Column sums: dst[j] = beta*dst[j] + sum_r src[r*ld + j], j < width; beta 0 or 1. */
    recur_status (*colsum)(struct recur_backend *be, struct recur_mem dst, float beta,
                           struct recur_mem src, int rows, int width, int ld);
    /* y[i] += x[i] for `count` floats. */
    recur_status (*add)(struct recur_backend *be, struct recur_mem y, struct recur_mem x, size_t count);
    /* bfloat16 storage, 2 bytes an element (a 16-bit mem's byte offset is
     * even, recur_mem_at16): to_bf16 dst16[i] = src[i] rounded to nearest
     * even as recur_f32_to_bf16 rounds (a NaN stays a quiet NaN, the largest
     * finite values become Inf); from_bf16 dst[i] = src16[i], exactly. */
    recur_status (*to_bf16)(struct recur_backend *be, struct recur_mem dst16, struct recur_mem src, size_t count);
    recur_status (*from_bf16)(struct recur_backend *be, struct recur_mem dst, struct recur_mem src16, size_t count);
    /* dst[j*ld_dst + i] = src[i*ld_src + j] for i < rows, j < cols (out of place). */
    recur_status (*transpose)(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                              int ld_src, int rows, int cols);
    /* Row gather: dst[r*ld_dst + j] = src[idx[r]*ld_src + j], r < rows, j < width;
     * idx is a device array of int32 (written with write()). */
    recur_status (*gather)(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                           int ld_src, struct recur_mem idx, int rows, int width);
    /* Row scatter: dst[idx[r]*ld_dst + j] = (add ? dst[..] : 0) + src[r*ld_src + j].
     * The rows of idx are distinct (a device may run them in parallel). */
    recur_status (*scatter)(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                            int ld_src, struct recur_mem idx, int rows, int width, int add);
    /* Inverted dropout of `count` floats: dst[i] = src[i] * keep(i) / (1 - p),
     * keep(i) = (u(i) >= p) with u(i) the 24-bit uniform of Philox-4x32-10
     * (recur_philox_uniform in backends/philox.h) for key `seed` and stream
     * `stream`. dst may equal src. The same call on the gradient applies the
     * same mask, which is how backward works. */
    recur_status (*dropout)(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t count,
                            float p, uint64_t seed, uint64_t stream);
    /* Zoneout (Krueger et al. 2016) of `rows` rows of H states. m(r, j) is
     * u(i) < p for the uniform u of element i = (base + idx[r]) * H + j of
     * (seed, stream), as dropout draws it (idx: int32 on the device).
     *   RECUR_ZO_TRAIN: out = m ? a : b         (a: s_{t-1}, b: the kernel's s_t)
     *   RECUR_ZO_INFER: out = p * a + q * b     (q = 1 - p as the caller computed it; idx unused)
     *   RECUR_ZO_BACK:  a = m ? b : 0, then out = m ? 0 : b   (b: dL/ds_t; out may be b)
     * Rows are dense (ld H). */
    recur_status (*zoneout)(struct recur_backend *be, int mode, struct recur_mem out, struct recur_mem a,
                            struct recur_mem b, int rows, int H, struct recur_mem idx, uint64_t base, float p,
                            float q, uint64_t seed, uint64_t stream);

    /* ---- training (core/net.c, core/optim.c) ---- */

    /* Rows added with repeats, in order: for r = 0..rows-1 with idx[r] >= 0,
     * dst[idx[r]*ld_dst + j] += src[r*ld_src + j], j < width (an embedding's
     * gradient). Rows that share an index are added in increasing r, so the
     * result is the same on every run. */
    recur_status (*index_add)(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                              int ld_src, struct recur_mem idx, int rows, int width);
    /* Softmax cross-entropy of `rows` rows of K logits (row stride ld) against
     * int32 targets: for target[r] in 0..K-1, loss[r] = logsumexp(z_r) - z_r[t]
     * and dz[r*ld + j] = scale * (softmax(z_r)_j - [j == t]); for target[r] < 0,
     * loss[r] = 0 and dz's row is 0. Stable for any finite logits (the row's
     * maximum is subtracted first). dz may not alias z. */
    recur_status (*xent)(struct recur_backend *be, struct recur_mem z, int ld, struct recur_mem target, int rows,
                         int K, float scale, struct recur_mem dz, struct recur_mem loss);
    /* Squared error of `rows` rows of K values: for sel[r] >= 0 (int32),
     * loss[r] = sum_j (p - v)^2 and dp[r*ld_p + j] = scale * 2 * (p - v);
     * for sel[r] < 0, loss[r] = 0 and dp's row is 0. p at p[r*ld_p + j], v at v[r*ld_v + j]. */
    recur_status (*mse)(struct recur_backend *be, struct recur_mem p, int ld_p, struct recur_mem v, int ld_v,
                        struct recur_mem sel, int rows, int K, float scale, struct recur_mem dp, struct recur_mem loss);
    /* Partial sums of x[0..count) (square 1: of x[i]^2) into dst[0..RECUR_SUM_PARTS),
     * float partials in an order fixed by count alone, so the same input gives
     * the same bits on every run; the caller adds the parts in double. */
    recur_status (*sum)(struct recur_backend *be, struct recur_mem x, size_t count, int square, struct recur_mem dst);
    /* torch.optim.SGD on `count` floats: d = gscale*g + wd*w; v = momentum*v + d;
     * w -= lr * v (momentum 0: w -= lr * d, v untouched). */
    recur_status (*sgd)(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem v,
                        size_t count, float lr, float momentum, float wd, float gscale);
    /* torch.optim.Adam on `count` floats: d = gscale*g + wd*w;
     * m = b1*m + (1-b1)*d; v = b2*v + (1-b2)*d*d;
     * w -= step_size * m / (sqrt(v) / bc2_sqrt + eps), where the caller passes
     * step_size = lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t). */
    recur_status (*adam)(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem m,
                         struct recur_mem v, size_t count, float step_size, float b1, float b2, float eps,
                         float bc2_sqrt, float wd, float gscale);

    /* ---- cells ---- */

    /* Whether this device can run the cell. RECUR_ERR_UNSUPPORTED with a
     * message saying why (e.g. no OpenCL source). */
    recur_status (*supports)(struct recur_backend *be, const struct recur_cell *cell);
    /* (optional) Prepare what the cell needs on this device (compile its
     * kernels) and return a handle for cell_run. Default: the handle is
     * the cell itself. */
    recur_status (*cell_open)(struct recur_backend *be, const struct recur_cell *cell, void **handle);
    /* (optional) Release a handle from cell_open. Default: nothing. */
    void (*cell_close)(struct recur_backend *be, void *handle);
    /* Run the forward (backward = 0) or backward kernel of stage `stage`
     * over the rows of `args`. */
    recur_status (*cell_run)(struct recur_backend *be, void *handle, int stage, int backward,
                             const struct recur_step *args);

    /* ---- ordering ---- */

    /* (optional) Wait until all queued work is done. Default: nothing (the
     * backend runs synchronously). */
    recur_status (*sync)(struct recur_backend *be);
};

/* Host blocks that an unfinished write_async may still read (dispatch.c). */
struct recur_be_kept {
    struct recur_be_kept *next;
    void *block;
};

/* A device opened by a backend. */
struct recur_backend {
    const struct recur_backend_i *iface;
    void *context;          /* the backend's own state */
    recur_ctx *ctx;         /* the owning context, for error messages */
    recur_device_info info; /* what was opened */
    int threads;            /* the context's thread count (recur_ctx_set_threads), >= 1 */
    /* The host blocks of recur_be_write_owned that the queue may still read,
     * freed by the wrappers when it next drains (a read or sync that
     * succeeded) or when the device closes; their bytes and number. */
    struct recur_be_kept *kept;
    size_t kept_bytes, kept_count;
};

/* ---- the registry (backends/dispatch.c): what core asks of the backends ---- */

/* Append every device of every backend compiled in to out[0..cap) and set
 * *count to their number (even those that did not fit). */
void recur_be_devices(recur_device_info *out, size_t cap, size_t *count);
/* The backend that a device selector "name[:rest]" names (case-insensitive),
 * with *rest the part after its ':' ("" when none); NULL when no backend has
 * that name. sel NULL or "": the default, the first backend with a preferred
 * device (an OpenCL GPU), else the CPU; *rest is then "". */
const struct recur_backend_i *recur_be_find(const char *sel, const char **rest);
/* Open the device `spec` selects on backend `iface` into *be, for context
 * ctx. RECUR_ERR_BACKEND naming the slot when iface lacks a mandatory one;
 * else what the backend's open says. The message is on ctx. */
recur_status recur_be_open(struct recur_backend *be, const struct recur_backend_i *iface, recur_ctx *ctx,
                           const char *spec);
/* Release what recur_be_open made. */
void recur_be_close(struct recur_backend *be);
/* The instruction sets (enum recur_isa bits) this machine's CPU and OS run,
 * found once (backends/cpu/cpuid.c): what a cell plugin is told. */
uint32_t recur_be_cpu_isa(void);
/* The CPU's bf16 and fp16 arithmetic in words ("bf16: AMX-BF16, AVX512-BF16;
 * fp16: ..."), for recur devices. */
const char *recur_be_cpu_half(void);

/* The backends' own tables, for the registry only. */
extern const struct recur_backend_i recur_cpu_backend;
#ifdef RECUR_HAVE_OPENCL
extern const struct recur_backend_i recur_opencl_backend;
#endif

/* ---- wrappers: the only callers of the slots ---- */

recur_status recur_be_alloc(struct recur_backend *be, size_t bytes, struct recur_mem *out);
void recur_be_free(struct recur_backend *be, struct recur_mem *m);
recur_status recur_be_write(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes);
/* The write_async slot with its default (write()). The caller keeps src
 * alive until the queue drains; core mostly uses the two calls below. */
recur_status recur_be_write_async(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes);
/* Host to device without waiting, for host data that the caller gives up:
 * `block` (from malloc) becomes the backend's, which frees it once the
 * queue has drained (the next recur_be_read or recur_be_sync that succeeds)
 * or the device closes, so the transfer never reads freed memory. Freed at
 * once when the backend has no write_async (the write was synchronous) or
 * the write fails. Past RECUR_BE_KEPT_MAX bytes or blocks held, it drains
 * the queue first, so a caller that never waits holds a bounded amount. */
recur_status recur_be_write_owned(struct recur_backend *be, struct recur_mem dst, void *block, size_t bytes);
/* The same for host memory the caller keeps: copied into a block first
 * (with write_async; else written directly, without a copy). */
recur_status recur_be_write_staged(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes);
#define RECUR_BE_KEPT_MAX ((size_t)64 << 20)
#define RECUR_BE_KEPT_BLOCKS 4096
recur_status recur_be_read(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes);
/* The read_async slot with its default (read(), *ticket NULL), and
 * read_done's (a NULL ticket is done). A read without a ticket is waited
 * for by any later blocking read or sync, or by a later ticket's read_done
 * (the queue is in order). */
recur_status recur_be_read_async(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes,
                                 void **ticket);
recur_status recur_be_read_done(struct recur_backend *be, void *ticket, int wait, int *done);
recur_status recur_be_copy(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t bytes);
recur_status recur_be_fill(struct recur_backend *be, struct recur_mem dst, float value, size_t count);
recur_status recur_be_scale(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld, float beta);
/* gemm in float32. */
recur_status recur_be_gemm(struct recur_backend *be, int trans_a, int trans_b, int M, int N, int K,
                           float alpha, struct recur_mem A, int lda, struct recur_mem B, int ldb,
                           float beta, struct recur_mem C, int ldc);
/* gemm in precision prec (one that recur_be_precisions lists). */
recur_status recur_be_gemm_prec(struct recur_backend *be, recur_dtype prec, int trans_a, int trans_b, int M, int N,
                                int K, float alpha, struct recur_mem A, int lda, struct recur_mem B, int ldb,
                                float beta, struct recur_mem C, int ldc);
/* The precisions slot with its default (F32 always set in both). */
unsigned recur_be_precisions(struct recur_backend *be, unsigned *native);
/* Whether the backend packs weights (pack, gemm_packed, unpack). */
int recur_be_packs(const struct recur_backend *be);
recur_status recur_be_pack(struct recur_backend *be, recur_dtype prec, int trans_b, int K, int N, struct recur_mem B,
                           int ldb, void **packed);
recur_status recur_be_gemm_packed(struct recur_backend *be, int M, struct recur_mem A, int lda, const void *packed,
                                  float beta, struct recur_mem C, int ldc);
/* RECUR_ERR_UNSUPPORTED (nothing recorded) when the backend has no repack slot. */
recur_status recur_be_repack(struct recur_backend *be, void *packed);
void recur_be_unpack(struct recur_backend *be, void *packed);
recur_status recur_be_rows_set(struct recur_backend *be, struct recur_mem dst, int rows, int width,
                               int ld, struct recur_mem row);
recur_status recur_be_colsum(struct recur_backend *be, struct recur_mem dst, float beta,
                             struct recur_mem src, int rows, int width, int ld);
recur_status recur_be_add(struct recur_backend *be, struct recur_mem y, struct recur_mem x, size_t count);
recur_status recur_be_to_bf16(struct recur_backend *be, struct recur_mem dst16, struct recur_mem src, size_t count);
recur_status recur_be_from_bf16(struct recur_backend *be, struct recur_mem dst, struct recur_mem src16, size_t count);
recur_status recur_be_transpose(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                int ld_src, int rows, int cols);
recur_status recur_be_gather(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                             int ld_src, struct recur_mem idx, int rows, int width);
recur_status recur_be_scatter(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                              int ld_src, struct recur_mem idx, int rows, int width, int add);
recur_status recur_be_dropout(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t count,
                              float p, uint64_t seed, uint64_t stream);
enum { RECUR_ZO_TRAIN, RECUR_ZO_INFER, RECUR_ZO_BACK };
recur_status recur_be_zoneout(struct recur_backend *be, int mode, struct recur_mem out, struct recur_mem a,
                              struct recur_mem b, int rows, int H, struct recur_mem idx, uint64_t base, float p,
                              uint64_t seed, uint64_t stream);
recur_status recur_be_index_add(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                int ld_src, struct recur_mem idx, int rows, int width);
recur_status recur_be_xent(struct recur_backend *be, struct recur_mem z, int ld, struct recur_mem target, int rows, int K,
                           float scale, struct recur_mem dz, struct recur_mem loss);
recur_status recur_be_mse(struct recur_backend *be, struct recur_mem p, int ld_p, struct recur_mem v, int ld_v,
                          struct recur_mem sel, int rows, int K, float scale, struct recur_mem dp, struct recur_mem loss);
recur_status recur_be_sum(struct recur_backend *be, struct recur_mem x, size_t count, int square, struct recur_mem dst);
recur_status recur_be_sgd(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem v,
                          size_t count, float lr, float momentum, float wd, float gscale);
recur_status recur_be_adam(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem m,
                           struct recur_mem v, size_t count, float step_size, float b1, float b2, float eps,
                           float bc2_sqrt, float wd, float gscale);
recur_status recur_be_supports(struct recur_backend *be, const struct recur_cell *cell);
recur_status recur_be_cell_open(struct recur_backend *be, const struct recur_cell *cell, void **handle);
void recur_be_cell_close(struct recur_backend *be, void *handle);
recur_status recur_be_cell_run(struct recur_backend *be, void *handle, int stage, int backward,
                               const struct recur_step *args);
recur_status recur_be_sync(struct recur_backend *be);

#endif /* RECUR_BACKEND_IMPL_H */
