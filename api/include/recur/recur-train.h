/*
 * recur-train.h: training blocks on top of recur.h's models.
 *
 * A net is an input stage, a model (recur.h) and an output head with a loss:
 *
 *   tokens --embedding or one-hot--> x --model--> y --dense head--> logits --loss
 *   vectors -------------------------^
 *
 *   head RECUR_HEAD_ALL:  the head reads y at every step (many-to-many: a
 *                         language model, tagging); targets [T, N]
 *   head RECUR_HEAD_LAST: the head reads the top layer's final state of each
 *                         sequence (many-to-one: classification); targets [N].
 *                         Bidirectional concat: [a->; a<-], sum: a-> + a<-.
 *   head RECUR_HEAD_NONE: no head, no loss (an encoder: its final states start
 *                         a decoder, whose dh0/dc0 come back as dhT/dcT).
 *
 * Everything runs on the net's device (the context's): embedding lookup and
 * its gradient, the dense head, softmax cross-entropy or MSE, the optimizers,
 * the gradient norm. The host sees only tokens, targets, states and the loss.
 *
 * Parameters and tensor names follow a PyTorch module with members
 * `embedding` (nn.Embedding), `rnn` (nn.LSTM/GRU/RNN) and `head` (nn.Linear):
 * "embedding.weight" [V, E], "rnn.weight_ih_l0" ..., "head.weight" [K, O],
 * "head.bias" [K]; a file can hold several nets under prefixes ("encoder.").
 *
 * Determinism: on the CPU backend a run with the same seed, data and thread
 * count is identical bit for bit; reductions (loss, norm) are summed in a
 * fixed order on every backend.
 */
#ifndef RECUR_TRAIN_H
#define RECUR_TRAIN_H

#include "recur.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum recur_input {
    RECUR_INPUT_VECTOR = 0,    /* float vectors [T, N, I], I = model.input_size */
    RECUR_INPUT_EMBEDDING = 1, /* tokens 0..vocab-1, looked up in a learned [vocab, I] table */
    RECUR_INPUT_ONEHOT = 2,    /* tokens as one-hot vectors (model.input_size must equal vocab) */
} recur_input;

typedef enum recur_head {
    RECUR_HEAD_ALL = 0,
    RECUR_HEAD_LAST = 1,
    RECUR_HEAD_NONE = 2,
} recur_head;

typedef enum recur_loss {
    RECUR_LOSS_XENT = 0, /* softmax cross-entropy, mean over the targets that are not -1 */
    RECUR_LOSS_MSE = 1,  /* mean squared error, mean over every element of every counted row */
} recur_loss;

typedef struct recur_net_desc {
    recur_model_desc model; /* the recurrent stack (recur.h) */
    recur_input input;
    int vocab;              /* tokens 0..vocab-1 (EMBEDDING, ONEHOT); 0 for VECTOR */
    recur_head head;
    int output_size;        /* K: classes (XENT) or values (MSE) per row; 0 for HEAD_NONE */
    recur_loss loss;
} recur_net_desc;

typedef struct recur_net recur_net;

/* Create a net on ctx (weights zero: call recur_net_init). Errors as
 * recur_model_create, plus RECUR_ERR_ARG naming a field out of range. The
 * net belongs to ctx: freeing the context frees it. */
RECUR_API recur_status recur_net_create(recur_ctx *ctx, const recur_net_desc *desc, recur_net **out);
RECUR_API void recur_net_free(recur_net *net);
RECUR_API recur_status recur_net_desc_get(const recur_net *net, recur_net_desc *out);
/* The recurrent stack, owned by the net: it lives as long as the net, and
 * recur_model_free ignores it (free the net instead). */
RECUR_API recur_model *recur_net_model(const recur_net *net);

typedef enum recur_init {
    /* PyTorch's defaults: rnn weights and biases U(-1/sqrt(H), 1/sqrt(H));
     * embedding N(0, 1); head weight and bias U(-1/sqrt(O), 1/sqrt(O)). */
    RECUR_INIT_UNIFORM = 0,
    /* As UNIFORM, but every gate's W_hh block a random orthogonal matrix
     * (QR of a Gaussian matrix, signs fixed by R's diagonal, as torch.nn.init.orthogonal_). */
    RECUR_INIT_ORTHOGONAL = 1,
} recur_init;

/* Initialise every parameter from `seed` (the same on every backend). */
RECUR_API recur_status recur_net_init(recur_net *net, recur_init init, uint64_t seed);

/* Parameters: the net's own ("embedding.weight", "head.weight", "head.bias")
 * and the model's, each with the prefix "rnn.", in that order. */
RECUR_API size_t recur_net_param_count(const recur_net *net);
RECUR_API recur_status recur_net_param_info_sized(const recur_net *net, size_t i, recur_param_info *out, size_t size);
#define recur_net_param_info(net, i, out) recur_net_param_info_sized((net), (i), (out), sizeof(recur_param_info))
RECUR_API recur_status recur_net_param_set(recur_net *net, const char *name, const float *src, size_t count);
RECUR_API recur_status recur_net_param_get(const recur_net *net, const char *name, float *dst, size_t count);
RECUR_API recur_status recur_net_grad_get(const recur_net *net, const char *name, float *dst, size_t count);

/*
 * One batch, time-major. L*D as for models (recur_model_io).
 *   tokens   [T, N] int32 (EMBEDDING, ONEHOT)     x [T, N, I] floats (VECTOR)
 *            (exactly the one the net takes; the other given: RECUR_ERR_ARG)
 *   lengths  [N] in 1..T, any order; NULL: all T
 *   targets  XENT: class ids, [T, N] (HEAD_ALL) or [N] (HEAD_LAST); -1 = no target;
 *            NULL (and values NULL): no loss, logits only; backward then
 *            carries only dhT/dcT
 *   values   MSE: [T, N, K] or [N, K]; with lengths, padded steps do not count
 *   h0, c0   [L*D, N, P] and [L*D, N, H] initial states (P: the model's proj_size, or
 *            H); NULL: zeros
 *   hT, cT   the same shapes, written: final states; NULL: not wanted; may be h0, c0
 *            themselves (a state carried from chunk to chunk in place)
 *   logits   [T, N, K] or [N, K] written: the head's output; NULL: not wanted
 */
typedef struct recur_net_batch {
    int T, N;
    const int32_t *tokens;
    const float *x;
    const int *lengths;
    const int32_t *targets;
    const float *values;
    const float *h0, *c0;
    float *hT, *cT;
    float *logits;
} recur_net_batch;

/*
 * Forward. *loss (may be NULL) gets the mean loss over the counted targets,
 * *count (may be NULL) their number (0: loss 0). In training mode the net
 * keeps what recur_net_backward needs; any forward, inference included,
 * replaces what an earlier training forward kept. A token outside 0..vocab-1 or a target
 * outside -1..K-1: RECUR_ERR_ARG naming the position; nothing runs.
 *
 * Waiting: a net call waits for the device only to read something back (the
 * loss when loss is not NULL, hT, cT, logits; backward's dh0, dc0); its host
 * inputs are copied, so the caller may reuse them at once. Without a read
 * the work stays queued, and an error of the device's (one that only
 * running the work reveals) is reported by the next call that waits. With
 * loss NULL the loss stays on the device for recur_net_loss, or for
 * recur_optim_step, which brings it back with the gradient norm in the
 * step's one read: forward(loss NULL), backward, recur_optim_step,
 * recur_net_loss is a training step that waits once (without hT, cT or
 * logits to read). To carry states from step to step without reading them
 * back, keep them on the device: recur_net_forward_dev below.
 */
RECUR_API recur_status recur_net_forward(recur_net *net, recur_mode mode, const recur_net_batch *batch, double *loss,
                                         long long *count);

/*
 * The mean loss of the net's last forward (what its *loss got) and, when
 * count is not NULL, the number of targets counted. Waits for the device
 * when that forward was given loss NULL and no recur_optim_step over this
 * net has brought the loss back since. RECUR_ERR_STATE when the last
 * forward computed no loss (no targets or values) or none ran.
 */
RECUR_API recur_status recur_net_loss(recur_net *net, double *loss, long long *count);

/* Gradients of the batch's loss (as forward reported it) plus dhT.dL/dhT +
 * dcT.dL/dcT. dhT, dcT ([L*D, N, P] and [L*D, N, H]) may be NULL (zeros); dh0, dc0 written when
 * not NULL. Weight gradients overwrite or add to the net's (recur_grad_mode). */
typedef struct recur_net_grad {
    const float *dhT, *dcT;
    float *dh0, *dc0;
} recur_net_grad;

RECUR_API recur_status recur_net_backward(recur_net *net, const recur_net_batch *batch, const recur_net_grad *grad,
                                          recur_grad_mode mode);

/* ------------------------------------------------------------------------ */
/* Net calls on device buffers (recur.h's recur_buffer), without waiting     */
/*
 * recur_net_batch with buffers of the net's context: the same shapes, in
 * floats (a buffer may be larger; its first floats are used). tokens and
 * targets are int32 ids written with recur_buffer_write_ids, which keeps a
 * host copy of them: the call checks them from that copy, as recur_net_forward
 * checks its arrays, before it enqueues anything, and never waits for the
 * device to do so. Because the device reads every position of such a
 * buffer, the ids at padded positions (past a sequence's length) count too:
 * a padded token must be 0..vocab-1 (any), a padded HEAD_ALL target -1.
 * lengths stay host memory (the batch is planned from them on the host).
 *
 * Inputs are copied on the device into the net's scratch before anything
 * runs (as the host-pointer calls copy their arrays), so an input may be
 * rewritten as soon as the call returns and an output may be an input's
 * buffer (hT = h0, cT = c0: a state carried from chunk to chunk in place);
 * two outputs may not share a buffer. A buffer of another context, or one
 * too small for the batch, is refused naming the field.
 */
typedef struct recur_net_batch_dev {
    int T, N;
    const int *lengths;             /* host [N] in 1..T, or NULL: all T */
    recur_buffer *tokens;           /* [T, N] ids (EMBEDDING, ONEHOT) */
    recur_buffer *x;                /* [T, N, I] floats (VECTOR) */
    recur_buffer *targets;          /* XENT: [T, N] or [N] ids in -1..K-1; NULL: no loss */
    recur_buffer *values;           /* MSE: [T, N, K] or [N, K]; NULL: no loss */
    recur_buffer *h0, *c0;          /* [L*D, N, P], [L*D, N, H]; NULL: zeros */
    recur_buffer *hT, *cT;          /* written: the same shapes; NULL: not wanted */
    recur_buffer *logits;           /* written: [T, N, K] or [N, K]; NULL: not wanted */
} recur_net_batch_dev;

typedef struct recur_net_grad_dev {
    recur_buffer *dhT, *dcT;        /* [L*D, N, P], [L*D, N, H]; NULL: zeros */
    recur_buffer *dh0, *dc0;        /* written: the same shapes; NULL: not wanted */
} recur_net_grad_dev;

/*
 * recur_net_forward and recur_net_backward on buffers: the same checks,
 * errors and results (the same bits as the host-pointer calls on every
 * device), and no wait: the loss stays on the device for recur_net_loss or
 * recur_optim_step, so forward_dev, backward_dev, recur_optim_step,
 * recur_net_loss is a training step that waits once, whatever states it
 * carries. *count (may be NULL) gets the number of targets counted, known
 * from the ids' host copy. Errors besides the host-pointer calls': a buffer
 * of another context (RECUR_ERR_ARG), too small (RECUR_ERR_BUFFER_SIZE), two
 * outputs in one buffer (RECUR_ERR_ARG), ids not written by
 * recur_buffer_write_ids or overwritten since (RECUR_ERR_ARG), each naming
 * the field ("batch->tokens"); batch NULL (RECUR_ERR_NULL). backward_dev
 * takes the batch of the training forward it goes back through (T, N,
 * lengths checked); it reads what that forward copied, not the buffers.
 */
RECUR_API recur_status recur_net_forward_dev(recur_net *net, recur_mode mode, const recur_net_batch_dev *batch,
                                             long long *count);
RECUR_API recur_status recur_net_backward_dev(recur_net *net, const recur_net_batch_dev *batch,
                                              const recur_net_grad_dev *grad, recur_grad_mode mode);

/* ------------------------------------------------------------------------ */
/* Optimizers: over the parameters of one or more nets                      */

typedef enum recur_optim_kind {
    RECUR_OPTIM_SGD = 0,  /* torch.optim.SGD: v = momentum v + g; w -= lr v (v = g on the first step) */
    RECUR_OPTIM_ADAM = 1, /* torch.optim.Adam (not AMSGrad) */
} recur_optim_kind;

typedef struct recur_optim_desc {
    recur_optim_kind kind;
    float lr;
    float momentum;       /* SGD, 0 for none */
    float beta1, beta2;   /* Adam, 0.9 and 0.999 in PyTorch */
    float eps;            /* Adam, 1e-8 in PyTorch */
    float weight_decay;   /* L2 added to the gradient (torch's weight_decay); 0 for none */
    float clip_norm;      /* scale all gradients down to this global L2 norm when above; 0: no clipping */
} recur_optim_desc;

typedef struct recur_optim recur_optim;

/* PyTorch's defaults for a kind with learning rate lr: SGD momentum 0; Adam
 * betas 0.9, 0.999, eps 1e-8; no weight decay, no clipping. */
RECUR_API recur_optim_desc recur_optim_defaults(recur_optim_kind kind, float lr);

/* An optimizer over every parameter of nets[0..n-1] (same context). The nets
 * must outlive it; freeing the context frees it. */
RECUR_API recur_status recur_optim_create(recur_net *const *nets, int n, const recur_optim_desc *desc,
                                          recur_optim **out);
RECUR_API void recur_optim_free(recur_optim *opt);
/* One update from the nets' current gradients: clip by global norm, then
 * step. *grad_norm (may be NULL) gets the norm before clipping. A NaN or Inf
 * norm: RECUR_ERR_ARG and no weight changes (with loss scaling, a skipped
 * step first: recur_optim_set_loss_scale). It waits for the device once
 * (the norm's read, which also brings back a loss that a net's forward left
 * there: recur_net_loss) and leaves the updates queued. */
RECUR_API recur_status recur_optim_step(recur_optim *opt, double *grad_norm);
/* Updates so far (Adam's bias correction counts them). */
RECUR_API long long recur_optim_steps(const recur_optim *opt);
RECUR_API recur_status recur_optim_set_lr(recur_optim *opt, float lr);

/*
 * Dynamic loss scaling (torch.cuda.amp.GradScaler's), for f16 products
 * (recur_model_set_precision): a gate's gradient below 2^-24 becomes 0 as
 * an f16 operand, and one below 2^-14 loses bits, so the loss is scaled up
 * by S before backward and the gradients are divided by S at the step.
 *
 * init_scale: 0 turns it off (the default, S = 1), or a power of two from
 * 1 to 2^100 turns it on with S = init_scale (PyTorch's default 65536 =
 * 2^16); a power of two, so that scaling and unscaling are exact: in f32
 * and bf16 precision a scaled run has the unscaled run's bits. Every net of
 * the optimizer then multiplies its loss's gradient by S (in its forward,
 * where the loss's gradient is made): the gradients recur_net_grad_get
 * reads and a backward's dh0/dc0 are S times the true ones; pass dh0/dc0
 * on to another net of the optimizer as its dhT/dcT as they are (they
 * are taken as scaled); a caller's own dhT/dcT must be multiplied by
 * recur_optim_loss_scale. The reported losses are unscaled.
 *
 * recur_optim_step then divides by S (the clipping and *grad_norm see the
 * true norm). A NaN or Inf norm with S > 1 is an overflow: the step is
 * skipped (no weight or moment changes, not counted by recur_optim_steps,
 * RECUR_OK, *grad_norm gets the NaN or Inf), S is halved and the skip
 * counted (recur_optim_skipped); at S = 1 it is RECUR_ERR_ARG as without
 * scaling. After growth_interval (1..10^9; PyTorch's 2000) steps in a row
 * without a skip S doubles, up to 2^100. A net's gradients made at one
 * scale and stepped at another (the scale changed between its forward and
 * the step) are RECUR_ERR_STATE, nothing changed. recur_file_put_optim
 * saves the scale's state, recur_file_get_optim restores it into an
 * optimizer that scales. Over MPI (recur_optim_set_comm) the norm is the
 * ranks' average's, so every rank skips the same steps and the replicas
 * stay alike; a rank's own gradients are of its own share of the batch,
 * so N ranks may overflow at a scale where one process at the whole batch
 * does not (the default job in f16 from 2^36: 11 skips on 2 ranks, 10 in
 * one process).
 */
RECUR_API recur_status recur_optim_set_loss_scale(recur_optim *opt, double init_scale, int growth_interval);
/* The loss scale S now (1 when off). */
RECUR_API double recur_optim_loss_scale(const recur_optim *opt);
/* Steps skipped so far for an overflow at the loss scale. */
RECUR_API long long recur_optim_skipped(const recur_optim *opt);

/*
 * Data-parallel training over MPI. `mpi_comm` points to an MPI_Comm (so this
 * header needs no mpi.h); recur duplicates it (MPI_Comm_dup, collective over
 * the communicator), so the caller's may be freed. NULL detaches. Each rank
 * holds a replica of the same nets and calls recur_optim_step in step with
 * the others; each step then first replaces every rank's gradients with
 *
 *   g = sum over ranks of w_r g_r / sum over ranks of w_r
 *
 * (w_r: recur_optim_set_grad_weight, default 1; give each rank its number of
 * counted targets and N ranks at a batch of B/N train as one process at B,
 * whose loss is the mean over all targets). It is reduced to rank 0 and
 * broadcast, so every rank gets the same bits and the replicas stay
 * identical.
 *
 * The reduction runs in buckets (recur_optim_set_bucket_size) that start
 * while the backward pass still runs: a net's gradients become final in the
 * order its backward writes them (the head, the layers from the top down,
 * the embedding), and each bucket is started as soon as its last gradient
 * is; recur_optim_step then only waits for what is still outstanding. From
 * recur_optim_set_comm until the step returns, the nets' gradients belong
 * to the reduction: read or write them only after the step (and free the
 * optimizer before its nets). On the CPU backend a bucket of one tensor
 * group is reduced in place on the gradients; a bucket of several, and
 * every bucket on OpenCL, goes through host memory (on OpenCL the reads are
 * queued without waiting when the bucket starts, and the means written back
 * queued too). A rank that does not join within
 * RECUR_MPI_TIMEOUT seconds (default 300; 1..86400) makes the step fail with
 * RECUR_ERR_BACKEND naming this rank and the step (the caller should then
 * MPI_Abort: a collective cannot be cancelled). Needs MPI initialised with
 * MPI_THREAD_FUNNELED or more, and recur built with MPI (meson option mpi):
 * otherwise RECUR_ERR_UNSUPPORTED.
 */
RECUR_API recur_status recur_optim_set_comm(recur_optim *opt, void *mpi_comm);
/* This rank's weight in the next steps' average: finite and >= 0, and the
 * ranks' sum must be positive at each step (else that step fails). The
 * weight is applied when a step's first bucket starts (during its backward
 * pass): changing it between the first backward of a step and the step is
 * RECUR_ERR_STATE. */
RECUR_API recur_status recur_optim_set_grad_weight(recur_optim *opt, double weight);
/* The largest message of the gradients' reduction, in bytes (the same on
 * every rank). A net's gradient tensors are taken in the order backward
 * finishes them and gathered into buckets of at most `bytes` (a tensor
 * group larger than that is a bucket of its own), each one MPI message
 * that starts when its last tensor is final. Default 1 MiB, or
 * RECUR_MPI_BUCKET (bytes, 0..2^31) when recur_optim_set_comm reads it
 * (and a bad value there is RECUR_ERR_ARG naming it). 0: no overlap, every
 * gradient in one message when the step begins. Any size gives 2 ranks the
 * same bits; beyond 2, MPI may add a long message in another order than a
 * short one (a rounding difference), and every rank still gets the same
 * bits as the others. RECUR_ERR_ARG above 2^31; RECUR_ERR_STATE while a
 * step's reduction has begun. */
RECUR_API recur_status recur_optim_set_bucket_size(recur_optim *opt, size_t bytes);
/* The number of backward passes whose gradients each net of the optimizer
 * adds up before a step (gradient accumulation, RECUR_GRAD_ADD after the
 * first; default 1): the buckets start during the last of them. One more
 * backward pass of a net before the step fails with RECUR_ERR_STATE before
 * it writes a gradient. 1..1000000; RECUR_ERR_STATE while a step's
 * reduction has begun. */
RECUR_API recur_status recur_optim_set_accum(recur_optim *opt, int passes);

/* ------------------------------------------------------------------------ */
/* Training files: nets, optimizer state and extra tensors in one           */
/* safetensors file (atomic save; every read checked as for model files)    */

typedef struct recur_file recur_file;

/* An empty file to fill and save. */
RECUR_API recur_status recur_file_create(recur_file **out);
/* Read and validate a file: header, offsets, dtypes (F32, BF16 and F16,
 * read into float32), sizes.
 * Errors: RECUR_ERR_IO and the RECUR_ERR_FILE_* statuses of recur.h. */
RECUR_API recur_status recur_file_open(const char *path, recur_file **out);
RECUR_API void recur_file_free(recur_file *f);

/* A net's settings (metadata "<prefix>cell", ...) and parameters
 * ("<prefix>embedding.weight", ...). */
RECUR_API recur_status recur_file_put_net(recur_file *f, const char *prefix, const recur_net *net);
/* Optimizer settings and state: metadata "optim.*" (kind, lr, ..., steps;
 * with loss scaling loss_scale_log2, loss_scale_good and skipped),
 * tensors "optim.<prefix><group>.m" and ".v" (Adam's exp_avg and exp_avg_sq;
 * SGD's momentum buffer is ".m"), one per parameter group: "own" (the net's
 * embedding and head, in that order) and "rnn.l<k>" / "rnn.l<k>_reverse" (a
 * layer's weights in recur's canonical layout). prefixes[i] is nets[i]'s
 * (NULL: the one net's is ""). */
RECUR_API recur_status recur_file_put_optim(recur_file *f, const recur_optim *opt, const char *const *prefixes);
/* A string in __metadata__ (replaces one of the same key). */
RECUR_API recur_status recur_file_put_meta(recur_file *f, const char *key, const char *value);
/* An F32 tensor (copied). ndim 1..4. */
RECUR_API recur_status recur_file_put_tensor(recur_file *f, const char *name, int ndim, const int64_t *shape,
                                             const float *data);
/* Write atomically (temporary file, fsync, rename). */
RECUR_API recur_status recur_file_save(const recur_file *f, const char *path);

/* A metadata value, or NULL. */
RECUR_API const char *recur_file_meta(const recur_file *f, const char *key);
/* A tensor: *ndim and shape[0..ndim) (each may be NULL); data (may be NULL,
 * to ask for the shape only) gets a copy of `count` floats, which must equal
 * the tensor's element count. RECUR_ERR_FILE_MISSING when absent,
 * RECUR_ERR_FILE_SHAPE when count differs. */
RECUR_API recur_status recur_file_tensor(const recur_file *f, const char *name, int *ndim, int64_t shape[4],
                                         float *data, size_t count);
/* Create a net on ctx from the settings and parameters under `prefix`
 * (NULL: ""). Every tensor under the prefix named embedding.*, rnn.* or
 * head.* must be the net's (RECUR_ERR_FILE_EXTRA otherwise), every one of the
 * net's must be there (RECUR_ERR_FILE_MISSING) with its shape
 * (RECUR_ERR_FILE_SHAPE); RECUR_LOAD_CHECK_FINITE refuses NaN/Inf. The
 * dropout call counter is restored, so dropout masks continue where they
 * stopped. *out is NULL on error. */
RECUR_API recur_status recur_file_get_net(const recur_file *f, const char *prefix, recur_ctx *ctx, uint32_t flags,
                                          recur_net **out);
/* Restore an optimizer's state (its step count and every group's tensors;
 * the loss scale, its growth count and skips into an optimizer that scales)
 * saved by recur_file_put_optim with the same prefixes over nets of the same
 * shapes. Its settings (lr, ..., whether it scales) stay the caller's. State that cannot be
 * (NaN, Inf, a negative Adam second moment) is RECUR_ERR_FILE_NONFINITE,
 * naming the tensor. On a file error the optimizer is untouched. */
RECUR_API recur_status recur_file_get_optim(const recur_file *f, recur_optim *opt, const char *const *prefixes);

#ifdef __cplusplus
}
#endif

#endif /* RECUR_TRAIN_H */
