/*
 * recur.h: the public API of recur, a library for recurrent neural networks.
 *
 * This header is the manual. Conventions that hold for every function:
 *
 *   - Every function that can fail returns a recur_status: RECUR_OK (0) or a
 *     negative code. On failure the context (when there is one) holds a
 *     detail message naming the offending value, read with recur_ctx_error();
 *     the same message is also kept per thread for recur_last_error(), which
 *     is the only place for failures that have no context (recur_ctx_create).
 *   - On failure nothing was changed: no output, weight or state was written,
 *     unless the function says otherwise.
 *   - The library never aborts, exits or prints on bad input. It logs through
 *     recur_log_set() (default: silent unless RECUR_LOG is set).
 *   - Objects are created with recur_<object>_create and freed with
 *     recur_<object>_free; free functions accept NULL.
 *   - A context is used by one thread at a time; separate contexts may run in
 *     parallel threads.
 *   - All data arrays are float32, row-major, passed as host pointers. Weights
 *     and gradients live on the context's device for the life of a layer.
 *
 * Notation (course notes): a^{<t>} the hidden state (output) at step t,
 * c^{<t>} the LSTM cell state, x^{<t>} the input, Γ_u, Γ_r, Γ_f, Γ_o gates.
 * Shapes: T steps, N sequences in a batch, I input size, H hidden size,
 * G gates of the cell. Sequences are time-major: x is [T, N, I].
 */
#ifndef RECUR_H
#define RECUR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported functions (everything else is hidden). */
#if defined(_WIN32)
#define RECUR_API __declspec(dllexport)
#elif defined(__GNUC__)
#define RECUR_API __attribute__((visibility("default")))
#else
#define RECUR_API
#endif

#define RECUR_VERSION_MAJOR 0
#define RECUR_VERSION_MINOR 1
#define RECUR_VERSION_PATCH 0
#define RECUR_VERSION_STRING "0.1.0"

/* The version of the library loaded at run time ("0.1.0"): RECUR_VERSION_STRING
 * of the build that made it, which may differ from the header a program was
 * compiled with. Never NULL. */
RECUR_API const char *recur_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes: grouped by range so a code tells where it came from.        */

typedef enum recur_status {
    RECUR_OK = 0,

    /* arguments and state: -1 .. -99 */
    RECUR_ERR_NULL = -1,          /* a required pointer argument is NULL */
    RECUR_ERR_ARG = -2,           /* an argument value is out of range */
    RECUR_ERR_SHAPE = -3,         /* sizes that must agree do not */
    RECUR_ERR_BUFFER_SIZE = -4,   /* a caller's buffer is too small */
    RECUR_ERR_NO_MEMORY = -5,     /* host allocation failed */
    RECUR_ERR_STATE = -6,         /* call out of order (e.g. backward without a training forward) */
    RECUR_ERR_UNKNOWN_CELL = -7,  /* no plugin registers that cell name */
    RECUR_ERR_UNKNOWN_NAME = -8,  /* unknown variant, gate or parameter name */

    /* devices: -100 .. -199 */
    RECUR_ERR_DEVICE = -100,      /* RECUR_DEVICE or a device string matches nothing or is malformed */
    RECUR_ERR_UNSUPPORTED = -101, /* the device (or CPU) cannot run this (ISA, cell, feature) */
    RECUR_ERR_DEVICE_MEMORY = -102, /* device allocation failed or exceeds the device's limit */
    RECUR_ERR_OPENCL = -103,      /* an OpenCL call failed; the message names the call and code */
    RECUR_ERR_BACKEND = -104,     /* a backend library (BLAS, CLBlast) failed */

    /* plugins: -200 .. -299, in the order the loader checks them */
    RECUR_ERR_PLUGIN_OPEN = -200,      /* dlopen failed, or a *.so is no regular file (a directory, FIFO, bad link) */
    RECUR_ERR_PLUGIN_SYMBOL = -201,    /* no RECUR_CELL_ENTRY symbol */
    RECUR_ERR_PLUGIN_INIT = -202,      /* the entry function returned an error or no descriptor */
    RECUR_ERR_PLUGIN_ABI = -203,       /* ABI major version differs from the host's */
    RECUR_ERR_PLUGIN_SIZE = -204,      /* descriptor smaller than ABI 1.0's */
    RECUR_ERR_PLUGIN_INVALID = -205,   /* descriptor fields are inconsistent */
    RECUR_ERR_PLUGIN_NO_CPU = -206,    /* no scalar CPU implementation */
    RECUR_ERR_PLUGIN_DUPLICATE = -207, /* another plugin already registered the name */
    /* ... and the search before any of them: nothing of these is opened */
    RECUR_ERR_PLUGIN_PATH = -208,      /* a search directory that is relative, empty or unreadable */
    RECUR_ERR_PLUGIN_UNTRUSTED = -209, /* a directory or file that is world-writable or another user's */

    /* files: -300 .. -399 (model files); reading never trusts the file */
    RECUR_ERR_IO = -300,              /* open, read, write, fsync or rename failed */
    RECUR_ERR_FILE_TRUNCATED = -301,  /* shorter than its 8-byte header length, or than a tensor needs */
    RECUR_ERR_FILE_HEADER = -302,     /* header length past the end of the file, or absurdly large */
    RECUR_ERR_FILE_JSON = -303,       /* the header is not valid JSON of the expected form */
    RECUR_ERR_FILE_MISSING = -304,    /* a tensor the model needs is not in the file */
    RECUR_ERR_FILE_EXTRA = -305,      /* the file has a tensor the model does not */
    RECUR_ERR_FILE_SHAPE = -306,      /* a tensor's shape is not the model's */
    RECUR_ERR_FILE_DTYPE = -307,      /* a tensor's dtype is not F32, BF16 or F16 */
    RECUR_ERR_FILE_OFFSETS = -308,    /* data offsets overlap, are reversed, are not shape x 4 bytes,
                                       * leave bytes that belong to no tensor, or run past the end */
    RECUR_ERR_FILE_METADATA = -309,   /* __metadata__ is missing, malformed or disagrees with the shapes,
                                       * or (load_weights) names another cell, variant or direction */
    RECUR_ERR_FILE_NONFINITE = -310,  /* NaN or Inf in a weight (when the caller asks for the check) or
                                       * in optimizer state (always) */
} recur_status;

/* The name of a status code ("RECUR_ERR_SHAPE"); never NULL. */
RECUR_API const char *recur_status_str(recur_status status);

/* The detail message of the last failure on this thread ("" if none). The
 * pointer stays valid until the next recur call on this thread. */
RECUR_API const char *recur_last_error(void);

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */

typedef enum recur_log_level {
    RECUR_LOG_ERROR = 0,
    RECUR_LOG_WARN = 1,
    RECUR_LOG_INFO = 2,
    RECUR_LOG_DEBUG = 3,
} recur_log_level;

typedef void (*recur_log_fn)(recur_log_level level, const char *message, void *user);

/*
 * Route the library's messages at or below `max_level` to `fn` (NULL: to
 * stderr). Without a call, the level comes from RECUR_LOG
 * (error|warn|info|debug) and messages go to stderr; when RECUR_LOG is unset
 * nothing is printed. Global, thread-safe.
 */
RECUR_API void recur_log_set(recur_log_fn fn, void *user, recur_log_level max_level);

/* ------------------------------------------------------------------------ */
/* Devices and contexts                                                     */

/*
 * The info structs a caller allocates (recur_device_info, recur_cell_info,
 * recur_param_info) start with struct_size and only grow at the end. Each
 * function that fills one takes the caller's sizeof through a macro of the
 * old name (recur_devices calls recur_devices_sized(..., sizeof(recur_device_info)))
 * and fills only that many bytes, so a program built against an older recur.h
 * keeps working with a newer library: it gets the fields it knows, and
 * struct_size says how many bytes were filled. A size below the first
 * version's: RECUR_ERR_ARG naming both sizes, nothing written.
 */
typedef struct recur_device_info {
    size_t struct_size; /* set by the call: the bytes of this struct it filled */
    char selector[64];  /* the exact string that selects it: "cpu:avx512", "opencl:0:1" */
    char backend[16];   /* "cpu" or "opencl" */
    char name[128];     /* human-readable device name */
    char detail[256];   /* ISA, driver and OpenCL version, compute units, memory, ... */
} recur_device_info;

/*
 * List every device of every backend compiled in. Writes up to `cap` entries
 * to `out` (which may be NULL when cap is 0) and the total number to *count.
 * recur_devices_sized: entry k at byte k * size of out (the caller's
 * recur_device_info); errors RECUR_ERR_NULL, RECUR_ERR_ARG (size too small).
 */
RECUR_API recur_status recur_devices_sized(recur_device_info *out, size_t cap, size_t *count, size_t size);
#define recur_devices(out, cap, count) recur_devices_sized((out), (cap), (count), sizeof(recur_device_info))

typedef struct recur_ctx recur_ctx;

/*
 * Create a context on a device (*out is set to NULL on failure). `device` is
 * a selector string; NULL means the
 * value of RECUR_DEVICE, and when that is unset or empty the default device
 * (the first OpenCL GPU if one exists, else the native CPU backend with the
 * best ISA the CPU supports). Grammar: backend[:field...], for example
 *   "cpu"            the CPU backend, best ISA
 *   "cpu:scalar", "cpu:avx2", "cpu:avx512", "cpu:neon"   force an ISA variant
 * An explicit `device` beats RECUR_DEVICE. A selector that names nothing,
 * an ISA not compiled in or not supported by the CPU: RECUR_ERR_DEVICE or
 * RECUR_ERR_UNSUPPORTED, and a message (recur_last_error) listing the valid
 * choices. The chosen device is logged once at info level.
 */
RECUR_API recur_status recur_ctx_create(recur_ctx **out, const char *device);
RECUR_API void recur_ctx_free(recur_ctx *ctx);

/* The detail message of the last failure on this context ("" if none). */
RECUR_API const char *recur_ctx_error(const recur_ctx *ctx);

/* The chosen device (recur_ctx_device_sized: `size` bytes of the caller's struct). */
RECUR_API recur_status recur_ctx_device_sized(const recur_ctx *ctx, recur_device_info *out, size_t size);
#define recur_ctx_device(ctx, out) recur_ctx_device_sized((ctx), (out), sizeof(recur_device_info))

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */

/* The most threads a context may use. */
#define RECUR_THREADS_MAX 1024

/*
 * The threads a context's CPU work may use (the CPU backend's GEMM, cell
 * kernels and training kernels; OpenCL contexts use the host little). A new
 * context takes RECUR_THREADS when it is set, else the number of CPUs in the
 * process's affinity mask (sched_getaffinity: what taskset or a container
 * allows, not every CPU of the machine), and logs the count at info level.
 * RECUR_THREADS must be a whole number from 1 to RECUR_THREADS_MAX;
 * anything else makes recur_ctx_create fail with RECUR_ERR_ARG and a
 * message naming the value.
 *
 * The threads are the context's own, started on first use and ended by
 * recur_ctx_free. A waiting thread polls for a few microseconds (the gap
 * between two parts of a step), then yields its core (sched_yield) for a
 * short while, then sleeps; none spins longer. The threads claim a job's parts
 * one at a time, so a thread that is not running holds up only a part it has
 * started. When other processes keep every core
 * busy, the threads run late (each waits for a time slice) and the context
 * then does the work on the calling thread alone for a quarter second at a
 * time, so it slows down, rather than collapses, on a machine that other
 * processes share (it runs the same parts either way). Results on the CPU
 * backend are the same bit for bit from run to run for a given thread
 * count, busy machine or not; between thread counts a GEMM may differ in
 * the last bits (its parts are split by thread), everything else is the
 * same. OpenMP's settings (OMP_NUM_THREADS, OMP_WAIT_POLICY) no longer
 * apply to recur.
 *
 * Signals: the context's threads block every signal but the faults
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS), so a
 * program's handler runs on its own threads only. A thread that calls recur
 * on the CPU and may take a signal with a handler (a Ctrl-C handler, a
 * profiler's timer) must run that handler on an alternate stack
 * (sigaltstack, and SA_ONSTACK in sigaction): oneDNN's JIT GEMM kernels
 * point the stack pointer into the heap while they run, and a handler taken
 * there writes its frame over heap memory (oneDNN's issue 4845, fixed in
 * March 2026; Debian 12's oneDNN 2.6.3 has it). recur train does so for its
 * Ctrl-C.
 *
 * recur_ctx_set_threads: threads from 1 to RECUR_THREADS_MAX, else
 * RECUR_ERR_ARG; takes effect at the next call that runs on the context.
 */
RECUR_API recur_status recur_ctx_set_threads(recur_ctx *ctx, int threads);
/* The context's thread count; 0 when ctx is NULL. */
RECUR_API int recur_ctx_threads(const recur_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Cells (plugins)                                                          */

typedef struct recur_cell_info {
    size_t struct_size;   /* set by recur_cell_get: the bytes of this struct it filled (see
                           * recur_device_info on how these structs grow) */
    const char *name;     /* "lstm" */
    const char *version;  /* the plugin's own version */
    const char *summary;  /* one line */
    const char *path;     /* the shared object it came from */
    int n_gates;          /* G */
    int n_states;         /* 1 (a) or 2 (a and c) */
    int n_variants;       /* 0 or the number of variant names */
    const char *const *variants; /* e.g. {"tanh", "relu"}; the first is the default */
    uint32_t cpu_isa;     /* ISAs with their own kernels (recur_isa bits of recur-cell.h) */
    const char *backends; /* the backends it has kernels for: "cpu", "cpu,opencl"; whether a
                           * device runs it: recur_ctx_cell_supported */
    int n_params;         /* its own parameters beyond W_ih, W_hh, b_ih, b_hh (their tensors:
                           * recur_model_param_info) */
    int projectable;      /* 1: its layers take proj_size (RECUR_CELL_PROJECTABLE: lstm, ...) */
} recur_cell_info;

/*
 * The cells the plugin loader registered, loading plugins on first use from
 * RECUR_PLUGIN_PATH (colon-separated absolute directories), then the
 * directories of recur_plugin_dir_add(), then the installed plugin directory;
 * in each, every *.so and every *.so one subdirectory down. A cell found
 * earlier shadows one of the same name from a later kind of directory.
 * Strings stay valid for the life of the process. `i` counts from 0;
 * RECUR_ERR_ARG when i >= recur_cell_count().
 *
 * Trust: a plugin is code that runs inside this process from the moment it
 * is dlopened (its constructors run before recur can check anything), with
 * all of the process's rights. The loader cannot make a plugin safe; it only
 * loads from where you meant: it refuses relative and empty
 * RECUR_PLUGIN_PATH entries, directories and files that are world-writable or
 * owned by neither this user nor root, directories with such an ancestor
 * (a world-writable one with the sticky bit, like /tmp, is fine), and every
 * *.so that is not a regular file. RECUR_PLUGIN_TRUST_ANY=1 turns the owner
 * and mode checks off. These checks are about who could have put the file
 * there, never about what its code does: load only plugins you would run as
 * programs. docs/plugins.md has the details.
 */
RECUR_API size_t recur_cell_count(void);
RECUR_API recur_status recur_cell_get_sized(size_t i, recur_cell_info *out, size_t size);
#define recur_cell_get(i, out) recur_cell_get_sized((i), (out), sizeof(recur_cell_info))

/*
 * Whether the context's device runs `cell`: RECUR_OK, RECUR_ERR_UNKNOWN_CELL,
 * or RECUR_ERR_UNSUPPORTED with the reason (recur_ctx_error), e.g. a cell
 * with no OpenCL kernels on an OpenCL device. recur_layer_create fails the
 * same way.
 */
RECUR_API recur_status recur_ctx_cell_supported(recur_ctx *ctx, const char *cell);

/*
 * Where a device's kernels of a cell part from the cell's scalar C kernels,
 * its reference: what `recur gradcheck` runs on every device but cpu:scalar,
 * beside its whole-model comparison, to name the stage an author must look at.
 *
 * Each stage's forward kernel (first to last), then each backward kernel
 * (last to first, as BPTT runs them), runs once on ctx's device and once as
 * the scalar C kernel, on n rows of H units in training mode, both from the
 * same inputs: seeded values in [-0.9, 0.9] for xw, hw, b_hh, the previous
 * states, the cell's parameters and the incoming gradients (dnext, dsrc),
 * and for everything else what the reference's earlier kernels left (save,
 * src, next, dxw between backward stages). So each kernel is judged on its
 * own, never on a difference carried in from an earlier one. Compared per
 * array, max|device - reference| / max|reference|, are what the kernels
 * write: next[], save and src forward; dprev[], dxw, dhw and dparam[]
 * backward. Every device array lies between guard zones at least a row
 * wide, so a kernel that writes outside an array (past its row, or a save
 * larger than n_save * H floats a row) is caught on every device, OpenCL
 * included, which the loader's probe of the CPU kernels cannot reach, and
 * so is one that writes into an array it may only read (any but those it
 * writes, and hw, the forward's scratch). The first kernel
 * that writes where it may not, or whose output differs by more
 * than `tol` or holds a NaN or an Inf where the reference has a number, is
 * reported in *out (with the array's worst element); stage -1 when every
 * kernel agrees.
 * On "cpu:scalar" itself both runs are the reference.
 */
typedef struct recur_cell_diff {
    size_t struct_size; /* set by the call (see recur_device_info) */
    int stage;          /* the first kernel's stage that disagrees, 0-based; -1: none does */
    int backward;       /* 0: that stage's forward kernel, 1: its backward kernel */
    char tensor[16];    /* the array, named as in struct recur_cell_args: "next[0]", "save",
                         * "src", "dprev[1]", "dxw", "dhw", "dparam[0]" */
    int row, col;       /* its worst element: row (0..n-1) and place in the row (a unit for
                         * next and dprev, 0..n_save*H-1 for save, 0..G*H-1 for dxw) */
    float value;        /* that element on ctx's device */
    float reference;    /* ... and in the reference */
    double diff;        /* max|device - reference| / max|reference| over the array; INFINITY
                         * when the device has a NaN or Inf where the reference has a number */
    int outside;        /* nonzero: the kernel wrote outside `tensor` (row, col, value,
                         * reference and diff are then 0): up to this many floats past its
                         * end (> 0) or before its start (< 0), e.g. save with n_save too small */
    int read_only;      /* 1: the kernel wrote into `tensor`, an array it may only read (the
                         * other fields as for outside) */
} recur_cell_diff;

/*
 * Errors: RECUR_ERR_NULL, RECUR_ERR_UNKNOWN_CELL, RECUR_ERR_UNKNOWN_NAME (the
 * variant; NULL: the cell's first), RECUR_ERR_ARG (H or n below 1 or above
 * 4096, tol not above 0, size below the first recur_cell_diff's),
 * RECUR_ERR_UNSUPPORTED (the device does not run the cell), the device's own.
 */
RECUR_API recur_status recur_ctx_cell_compare_sized(recur_ctx *ctx, const char *cell, const char *variant, int H,
                                                    int n, double tol, recur_cell_diff *out, size_t size);
#define recur_ctx_cell_compare(ctx, cell, variant, H, n, tol, out) \
    recur_ctx_cell_compare_sized((ctx), (cell), (variant), (H), (n), (tol), (out), sizeof(recur_cell_diff))

/*
 * Plugins and directories the loader rejected, with the reason (status and a
 * message naming the file, directory or RECUR_PLUGIN_PATH entry). The loader
 * skips each and loads the others.
 */
RECUR_API size_t recur_plugin_error_count(void);
RECUR_API recur_status recur_plugin_error_get(size_t i, recur_status *status, const char **message);

/*
 * Search the absolute directory `dir` for plugins too, after RECUR_PLUGIN_PATH
 * and before the installed directory, with the same checks (a missing one is
 * skipped). Only before the plugins are loaded, that is before the first call
 * that needs a cell (recur_cell_count, a layer's creation, ...):
 * RECUR_ERR_STATE afterwards. RECUR_ERR_ARG for a relative path.
 */
RECUR_API recur_status recur_plugin_dir_add(const char *dir);

/* ------------------------------------------------------------------------ */
/* Layers: one recurrent layer, one direction                               */

typedef struct recur_layer recur_layer;

typedef struct recur_layer_desc {
    const char *cell;    /* "rnn", "gru", "gru-lbr", "lstm", or a plugin's name */
    const char *variant; /* NULL for the default; "tanh" or "relu" for rnn */
    int input_size;      /* I >= 1 */
    int hidden_size;     /* H >= 1 */
    int proj_size;       /* 0: none. 1..H-1: project each output, h^{<t>} = W_hr a^{<t>}
                          * (PyTorch's LSTM proj_size): the layer's output, h0 and hT are
                          * proj_size wide, and W_hh is [G*H, proj_size]; c keeps H. Only
                          * cells flagged RECUR_CELL_PROJECTABLE (lstm, lstm-peephole,
                          * lstm-ln): RECUR_ERR_UNSUPPORTED for the others */
} recur_layer_desc;

/*
 * Create a layer on ctx (*out is NULL on failure). Its weights are zero until set (or initialised by
 * the caller). Errors: RECUR_ERR_UNKNOWN_CELL (the message lists the cells),
 * RECUR_ERR_UNKNOWN_NAME (bad variant, lists the variants), RECUR_ERR_ARG
 * (sizes), RECUR_ERR_UNSUPPORTED (the device cannot run the cell).
 * The layer belongs to ctx: recur_ctx_free frees the layers still live.
 */
RECUR_API recur_status recur_layer_create(recur_ctx *ctx, const recur_layer_desc *desc, recur_layer **out);
RECUR_API void recur_layer_free(recur_layer *layer);

/* Sizes in bytes of what a layer needs; all queryable before any run. Not
 * counted: with bf16 or f16 products (recur_layer_set_precision), the copies
 * of the weight matrices, rounded once per weight version, that the device
 * keeps for the products: in bf16 (2 bytes an element, in the layout oneDNN
 * chooses) where the products are native, in floats (as large as the
 * matrices) where they are emulated. */
typedef struct recur_sizes {
    size_t weights;   /* the parameters (recur_layer_weight_count floats); the gradients take as much */
    size_t workspace; /* scratch the layer allocates for a run of this T and N */
    size_t reserve;   /* what a training forward saves for backward (recur_layer_set_saved_dtype) */
} recur_sizes;

RECUR_API recur_status recur_layer_sizes(const recur_layer *layer, int T, int N, recur_sizes *out);

/* Number of weight floats: G*H*(I+H+2) for the cells of PyTorch; in general
 * G*H*I + Grec*H*P + 2*G*H (none with raw products) + P*H (W_hr, with
 * proj_size P; else P = H and no W_hr) + the cell's own parameters (see
 * the layout below). */
RECUR_API size_t recur_layer_weight_count(const recur_layer *layer);

/*
 * Weight layouts. Both are one flat float array of recur_layer_weight_count()
 * floats: [W_ih (G*H x I), W_hh (G*H x H), b_ih (G*H), b_hh (G*H)], row-major,
 * each a stack of G gate blocks of H rows, then W_hr (P x H) when the layer
 * projects (W_hh is then G*H x P), then the cell's own parameters
 * (recur-cell.h, struct recur_cell_param: lstm-peephole's weight_peephole
 * [3, H], ...) in the cell's order, the same in both layouts. A cell whose
 * stages leave gates without a recurrent product has W_hh for the Grec gates
 * they cover only (none for indrnn, whose weight_hh [H] is its own
 * parameter); a cell with raw products (lstm-ln) has no b_ih and b_hh.
 *
 * RECUR_LAYOUT_CANONICAL: the gates in the cell's own order and polarity
 *   (lstm i,f,g,o; gru-lbr r,z,n; gru u,r,c in the course notes' polarity).
 * RECUR_LAYOUT_TORCH: PyTorch's state_dict of a one-layer module,
 *   weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 concatenated.
 *   For lstm, gru-lbr and rnn it equals the canonical one. For gru (which
 *   PyTorch does not have) it is the documented ONNX/Keras-style layout
 *   with gates r,z,n and z = 1 - Γ_u, stored negated (W_z = -W_u, since
 *   1 - σ(a) = σ(-a)).
 */
typedef enum recur_layout {
    RECUR_LAYOUT_CANONICAL = 0,
    RECUR_LAYOUT_TORCH = 1,
} recur_layout;

RECUR_API recur_status recur_layer_weights_set(recur_layer *layer, recur_layout layout, const float *src,
                                     size_t count);
RECUR_API recur_status recur_layer_weights_get(const recur_layer *layer, recur_layout layout, float *dst,
                                     size_t count);
/* The weight gradients accumulated by recur_layer_backward, in a layout. */
RECUR_API recur_status recur_layer_grads_get(const recur_layer *layer, recur_layout layout, float *dst,
                                   size_t count);
/* Set every weight gradient to zero. */
RECUR_API recur_status recur_layer_grads_zero(recur_layer *layer);

/* The four parameter blocks of the canonical per-gate view. */
typedef enum recur_param {
    RECUR_PARAM_W_IH = 0, /* [H, I] per gate */
    RECUR_PARAM_W_HH = 1, /* [H, H] per gate */
    RECUR_PARAM_B_IH = 2, /* [H] per gate */
    RECUR_PARAM_B_HH = 3, /* [H] per gate */
} recur_param;

/*
 * The canonical per-gate view: one gate's block of one parameter, by gate
 * name in the cell's notation ("i", "f", "g", "o" for lstm; "u", "r", "c" for
 * gru; "r", "z", "n" for gru-lbr; "a" for rnn). `count` must be the block's
 * size (H*I, H*H or H). RECUR_ERR_UNKNOWN_NAME lists the gate names.
 */
RECUR_API recur_status recur_layer_gate_set(recur_layer *layer, recur_param param, const char *gate,
                                  const float *src, size_t count);
RECUR_API recur_status recur_layer_gate_get(const recur_layer *layer, recur_param param, const char *gate,
                                  float *dst, size_t count);

/* The cell's gate names in canonical order (valid for the layer's life). */
RECUR_API recur_status recur_layer_gate_name(const recur_layer *layer, int gate, const char **name);

/*
 * One batch of sequences. Pointers are host arrays of floats:
 *   x   [T, N, I]  input (required)
 *   h0  [N, P]     initial a^{<0>}; NULL means zeros
 *   c0  [N, H]     initial c^{<0>} (cells with two states); NULL means zeros
 *   y   [T, N, P]  output a^{<t>} for every t (required)
 *   hT  [N, P]     final a^{<T>}; NULL if not wanted
 *   cT  [N, H]     final c^{<T>}; NULL if not wanted
 * c0 and cT must be NULL for cells with one state. P is the layer's
 * proj_size, or H without projection (then a^{<t>} is the projected h^{<t>}).
 */
typedef struct recur_io {
    int T, N;
    const float *x;
    const float *h0, *c0;
    float *y;
    float *hT, *cT;
} recur_io;

typedef enum recur_mode {
    RECUR_MODE_INFERENCE = 0, /* no activations saved */
    RECUR_MODE_TRAINING = 1,  /* saves what recur_layer_backward needs, in the layer */
} recur_mode;

/*
 * Forward over io->T steps. In training mode the layer keeps the activations
 * (recur_layer_sizes().reserve bytes) for the backward that follows, which
 * must use the same io (x, h0, c0 must still hold the same values). An
 * inference forward in between leaves them alone; the next training forward
 * replaces them.
 * Errors: RECUR_ERR_NULL, RECUR_ERR_ARG (T or N < 1), RECUR_ERR_SHAPE.
 */
RECUR_API recur_status recur_layer_forward(recur_layer *layer, recur_mode mode, const recur_io *io);

/*
 * Gradients of a loss L, given dL/dy and dL/d of the final states:
 *   dy   [T, N, P]  dL/d a^{<t>}; NULL means zeros
 *   dhT  [N, P]     dL/d a^{<T>} beyond what dy holds; NULL means zeros
 *   dcT  [N, H]     dL/d c^{<T>}; NULL means zeros (two-state cells only)
 *   dx   [T, N, I]  written: dL/dx; NULL if not wanted
 *   dh0  [N, P]     written: dL/d a^{<0>}; NULL if not wanted
 *   dc0  [N, H]     written: dL/d c^{<0>}; NULL if not wanted
 */
typedef struct recur_grad_io {
    const float *dy;
    const float *dhT, *dcT;
    float *dx;
    float *dh0, *dc0;
} recur_grad_io;

typedef enum recur_grad_mode {
    RECUR_GRAD_OVERWRITE = 0, /* the layer's weight gradients become this batch's */
    RECUR_GRAD_ADD = 1,       /* this batch's gradients are added to them */
} recur_grad_mode;

/*
 * Backpropagation through time over the last training forward (io must be
 * the one given to it). Computes dx, dh0, dc0 and every weight and bias
 * gradient, stored in the layer (read them with recur_layer_grads_get).
 * RECUR_ERR_STATE when no training forward preceded it or io differs in T,N.
 */
RECUR_API recur_status recur_layer_backward(recur_layer *layer, const recur_io *io,
                                  const recur_grad_io *grad, recur_grad_mode mode);


/* ------------------------------------------------------------------------ */
/* Models: a stack of layers, one or two directions                         */

typedef enum recur_direction {
    RECUR_DIR_FORWARD = 0,     /* left to right */
    RECUR_DIR_REVERSE = 1,     /* right to left (each sequence from its own last step) */
    RECUR_DIR_BIDI_CONCAT = 2, /* both; outputs [a->; a<-], 2H wide (PyTorch's bidirectional) */
    RECUR_DIR_BIDI_SUM = 3,    /* both; outputs a-> + a<-, H wide (oneDNN's bidirectional_sum) */
} recur_direction;

/* A direction's name, the one vocabulary of files, the tool's flags and messages:
 * "forward", "reverse", "bidi_concat", "bidi_sum"; NULL for a value out of range. */
RECUR_API const char *recur_direction_name(recur_direction dir);
/* The direction a name stands for: the names above, case-insensitive, with '-' and '_'
 * alike ("bidi-concat" too); the older spellings "bidi", "bidirectional" and "concat"
 * (= bidi_concat) and "sum" (= bidi_sum) are accepted too.
 * RECUR_ERR_ARG (message naming the name) for anything else. */
RECUR_API recur_status recur_direction_parse(const char *name, recur_direction *out);

typedef struct recur_model_desc {
    const char *cell;    /* as for a layer */
    const char *variant; /* NULL for the cell's default */
    int input_size;      /* I of the first layer */
    int hidden_size;     /* H of every layer */
    int num_layers;      /* >= 1; layer l > 0 takes the outputs of layer l-1 */
    recur_direction direction;
    float dropout;       /* probability in [0, 1) of zeroing an input of layers 1..L-1 in
                          * training (inverted dropout: kept values scale by 1/(1-p)); never
                          * after the last layer; none in inference */
    uint64_t seed;       /* the dropout masks' seed: a counter-based RNG (Philox-4x32-10)
                          * keyed by (seed, call number, layer, element), the same on every backend;
                          * also the zoneout masks' */
    float zoneout;       /* zoneout (Krueger et al. 2016) of every layer's states, in [0, 1): in
                          * training each unit of a (and c) keeps its previous value with this
                          * probability at each step, s_t = m s_{t-1} + (1 - m) s~_t (m drawn like
                          * dropout's masks, on a stream of its own); in inference
                          * s_t = p s_{t-1} + (1 - p) s~_t. The outputs are the zoned-out a. 0: none */
    int proj_size;       /* 0: none; else every layer projects its output to this width
                          * (recur_layer_desc.proj_size): y is D*proj_size wide (concat),
                          * h0/hT [L*D, N, proj_size], c0/cT [L*D, N, H], and layer l > 0
                          * takes D*proj_size inputs, as PyTorch's nn.LSTM(proj_size=...) */
} recur_model_desc;

typedef struct recur_model recur_model;

/* Create a model (weights zero). The model belongs to ctx, like a layer.
 * recur_model_free ignores a net's model (recur_net_model): the net frees it.
 * Errors as recur_layer_create, plus RECUR_ERR_ARG for num_layers < 1, an
 * unknown direction, or dropout or zoneout outside [0, 1). *out is NULL on failure. */
RECUR_API recur_status recur_model_create(recur_ctx *ctx, const recur_model_desc *desc, recur_model **out);
RECUR_API void recur_model_free(recur_model *model);

/* The model's settings (desc->cell and ->variant stay valid for its life). */
RECUR_API recur_status recur_model_desc_get(const recur_model *model, recur_model_desc *out);

/* Number of directions (1 or 2) and the width of one output row (H, or 2H for concat). */
RECUR_API int recur_model_directions(const recur_model *model);
RECUR_API int recur_model_output_size(const recur_model *model);

/* Bytes a model needs for a dense batch of T steps and N sequences:
 * weights (all layers; the gradients take as much), workspace (the largest
 * layer's scratch plus the activations between layers) and reserve (what a
 * training forward keeps for backward, all layers). RECUR_ERR_ARG for T or N
 * below 1 or a shape no call could take. */
RECUR_API recur_status recur_model_sizes(const recur_model *model, int T, int N, recur_sizes *out);

/* The layer of one stack position and direction (reverse 0 or 1), for the
 * canonical per-gate view (recur_layer_gate_get/set). Owned by the model:
 * recur_layer_free ignores it. */
RECUR_API recur_status recur_model_layer(const recur_model *model, int layer, int reverse, recur_layer **out);

/*
 * Parameters, by PyTorch's names and in PyTorch's order: for each layer l,
 * for each direction, weight_ih_l{l}, weight_hh_l{l}, bias_ih_l{l},
 * bias_hh_l{l}, then the cell's own parameters as NAME_l{l} (those the cell
 * has: see recur_layout), the reverse direction with the suffix _reverse.
 * Shapes [G*H, I_l], [G*H, H], [G*H], [G*H], where I_0 = input_size and
 * I_l = recur_model_output_size() for l > 0. Values are in
 * RECUR_LAYOUT_TORCH (for the original gru: gates r, z, n with z = 1 - Γ_u
 * stored negated; see recur_layout).
 */
typedef struct recur_param_info {
    size_t struct_size; /* set by the call: the bytes of this struct it filled (see recur_device_info) */
    char name[48]; /* "weight_ih_l0_reverse" */
    int rows, cols; /* cols is 1 for a bias (a 1-D tensor) */
    int ndim;      /* 2 for weights, 1 for biases and one-row cell parameters */
    size_t count;  /* rows * cols */
} recur_param_info;

RECUR_API size_t recur_model_param_count(const recur_model *model);
/* Tensor i in 0..recur_model_param_count()-1 (RECUR_ERR_ARG past it; recur_model_param_info_sized:
 * `size` bytes of the caller's struct, RECUR_ERR_ARG below the first version's). */
RECUR_API recur_status recur_model_param_info_sized(const recur_model *model, size_t i, recur_param_info *out,
                                                    size_t size);
#define recur_model_param_info(model, i, out) recur_model_param_info_sized((model), (i), (out), sizeof(recur_param_info))
/* One tensor by name; count must equal its size (smaller: RECUR_ERR_BUFFER_SIZE,
 * larger: RECUR_ERR_SHAPE; unknown name: RECUR_ERR_UNKNOWN_NAME). */
RECUR_API recur_status recur_model_param_set(recur_model *model, const char *name, const float *src, size_t count);
RECUR_API recur_status recur_model_param_get(const recur_model *model, const char *name, float *dst, size_t count);
/* The gradient of one tensor, accumulated by recur_model_backward. */
RECUR_API recur_status recur_model_grad_get(const recur_model *model, const char *name, float *dst, size_t count);
RECUR_API recur_status recur_model_grads_zero(recur_model *model);

/*
 * One batch. L = num_layers, D = directions, O = output size (P or 2P).
 *   batch_first  0: time-major arrays; 1: [N, T, ...]; any other value: RECUR_ERR_ARG
 *   x    [T, N, I]  ([N, T, I] when batch_first)
 *   lengths  [N]    each sequence's length T_x in 1..T, in any order; NULL: all T
 *   h0   [L*D, N, P] initial a per layer and direction (index l*D + d); NULL: zeros
 *                    (P: proj_size, or H without projection)
 *   c0   [L*D, N, H] initial c (two-state cells); NULL: zeros
 *   y    [T, N, O]  ([N, T, O] when batch_first); past a sequence's end: pad
 *   hT   [L*D, N, P] each sequence's state at its own last step; NULL: not wanted
 *   cT   [L*D, N, H]
 * T or N below 1, or a length of 0 or above T: RECUR_ERR_ARG naming it; nothing runs.
 */
typedef struct recur_model_io {
    int T, N;
    int batch_first;
    const int *lengths;
    float pad;
    const float *x;
    const float *h0, *c0;
    float *y;
    float *hT, *cT;
} recur_model_io;

typedef struct recur_model_grad_io {
    const float *dy;         /* [T, N, O] (batch_first: [N, T, O]); padded positions ignored */
    const float *dhT, *dcT;  /* [L*D, N, P] and [L*D, N, H] */
    float *dx;               /* [T, N, I]; zero at padded positions */
    float *dh0, *dc0;        /* [L*D, N, P] and [L*D, N, H] */
} recur_model_grad_io;

/* Forward through every layer and direction. In training mode the model
 * keeps what backward needs (and draws new dropout masks: the k-th training
 * forward of a model uses call number k). Any forward of a model, inference
 * included, replaces what a previous training forward kept. */
RECUR_API recur_status recur_model_forward(recur_model *model, recur_mode mode, const recur_model_io *io);
/* BPTT through the whole stack over the last training forward, with the same
 * io (T, N, batch_first and lengths are checked: RECUR_ERR_STATE). On a
 * device error part of the weight gradients may already be written. */
RECUR_API recur_status recur_model_backward(recur_model *model, const recur_model_io *io,
                                            const recur_model_grad_io *grad, recur_grad_mode mode);

/* ------------------------------------------------------------------------ */
/* Device-resident data: buffers on a context's device, and model calls     */
/* that take them, enqueued without waiting for the device                  */
/*
 * The host-pointer calls above copy their arrays to the device, run, copy
 * the results back and so wait for the device on every call. The calls
 * below keep inputs, outputs, states and gradients on the device: they
 * enqueue work and return, and only recur_buffer_read and recur_ctx_sync
 * wait. On the CPU a buffer is host memory and every call runs at once;
 * the results are the same bits as the host-pointer calls' on each device.
 * An error that only running the work reveals (a device fault) is reported
 * by the next call that waits. Nets take buffers too (recur-train.h:
 * recur_net_forward_dev, with ids written by recur_buffer_write_ids).
 */
typedef struct recur_buffer recur_buffer;

/* A buffer of `count` floats (count >= 1) on ctx's device; its contents are
 * undefined until written. It belongs to ctx: recur_ctx_free frees the
 * buffers still live. Errors: RECUR_ERR_NULL, RECUR_ERR_ARG (count 0, or
 * bytes past SIZE_MAX), RECUR_ERR_DEVICE_MEMORY (past the device's largest
 * allocation, or allocation failed). */
RECUR_API recur_status recur_buffer_create(recur_ctx *ctx, size_t count, recur_buffer **out);
/* Free a buffer (NULL allowed). Work already queued on it still completes. */
RECUR_API void recur_buffer_free(recur_buffer *buf);
/* Its size in floats and in bytes (0 for NULL). */
RECUR_API size_t recur_buffer_count(const recur_buffer *buf);
RECUR_API size_t recur_buffer_bytes(const recur_buffer *buf);
/* Copy count floats from src into the buffer at element `offset`, in queue
 * order with the calls around it, without waiting: src is copied first and
 * may be reused as soon as the call returns. RECUR_ERR_BUFFER_SIZE when
 * offset + count passes the buffer's count. Floats written over ids
 * (recur_buffer_write_ids) make the buffer forget them. */
RECUR_API recur_status recur_buffer_write(recur_buffer *buf, size_t offset, const float *src, size_t count);
/* Copy count int32 ids (tokens, class targets: recur-train.h's net calls)
 * into the buffer at element `offset`, one id in each float's room, without
 * waiting, as recur_buffer_write does. The buffer also keeps a host copy of
 * the ids, so that a net call that reads them checks them (against its
 * vocabulary or classes, naming the position) and counts its targets before
 * it enqueues anything, without waiting for the device. The copy covers one
 * span of elements (a write that touches or overlaps it widens it, one apart
 * from it starts it again); recur_buffer_write over the span, or a call that
 * writes the buffer as an output, forgets it, and a net call then refuses the
 * buffer as ids. RECUR_ERR_BUFFER_SIZE as for write; RECUR_ERR_NO_MEMORY. */
RECUR_API recur_status recur_buffer_write_ids(recur_buffer *buf, size_t offset, const int32_t *src, size_t count);
/* Copy count floats at element `offset` into dst; waits for the work queued
 * before it. RECUR_ERR_BUFFER_SIZE as for write. */
RECUR_API recur_status recur_buffer_read(const recur_buffer *buf, size_t offset, float *dst, size_t count);
/* Wait until every call enqueued on ctx has run; the errors they met. */
RECUR_API recur_status recur_ctx_sync(recur_ctx *ctx);

/* recur_model_io with buffers of the model's context: the same shapes, in
 * floats (x, y: T*N*I and T*N*O; states L*D*N*H). A buffer may be larger
 * than the batch needs (the first floats are used). lengths stay host
 * memory (the engine plans the batch from them on the host). */
typedef struct recur_model_io_dev {
    int T, N;
    int batch_first;
    const int *lengths;
    float pad;
    recur_buffer *x;       /* required */
    recur_buffer *h0, *c0; /* NULL: zeros */
    recur_buffer *y;       /* required */
    recur_buffer *hT, *cT; /* NULL: not wanted */
} recur_model_io_dev;

typedef struct recur_model_grad_dev {
    recur_buffer *dy, *dhT, *dcT; /* NULL: zeros */
    recur_buffer *dx, *dh0, *dc0; /* NULL: not wanted */
} recur_model_grad_dev;

/* recur_model_forward and recur_model_backward on buffers, without waiting.
 * Errors as the host-pointer calls', and: a buffer of another context
 * (RECUR_ERR_ARG naming the field), one smaller than the batch needs
 * (RECUR_ERR_BUFFER_SIZE naming the field and both sizes), x or y NULL
 * (RECUR_ERR_NULL). A buffer must not be both an input and an output of
 * one call (RECUR_ERR_ARG). */
RECUR_API recur_status recur_model_forward_dev(recur_model *model, recur_mode mode, const recur_model_io_dev *io);
RECUR_API recur_status recur_model_backward_dev(recur_model *model, const recur_model_io_dev *io,
                                                const recur_model_grad_dev *grad, recur_grad_mode mode);

/* ------------------------------------------------------------------------ */
/* Model files (safetensors: 8-byte little-endian header length, a JSON     */
/* header, raw little-endian F32, BF16 or F16 tensors, read into float32;   */
/* recur's settings in __metadata__)                                        */

/* Save atomically: a temporary file in the same directory, fsync, rename.
 * A failure leaves any previous file at path as it was. */
RECUR_API recur_status recur_model_save(const recur_model *model, const char *path);

/* The element type of a saved tensor. */
typedef enum recur_dtype {
    RECUR_DTYPE_F32 = 0,  /* float32, exact (recur_model_save) */
    RECUR_DTYPE_BF16 = 1, /* bfloat16: float32's range, 8 significant bits */
    RECUR_DTYPE_F16 = 2,  /* IEEE binary16: 11 significant bits, |x| <= 65504 */
} recur_dtype;

/* A type's name, the one vocabulary of files, flags and messages: "f32",
 * "bf16", "f16"; NULL for a value out of range. recur_dtype_parse takes
 * them case-insensitively ("fp32", "fp16", "float32", "bfloat16" and
 * "float16" too); RECUR_ERR_ARG naming the text for anything else. */
RECUR_API const char *recur_dtype_name(recur_dtype dtype);
RECUR_API recur_status recur_dtype_parse(const char *name, recur_dtype *out);

/*
 * Precision of the matrix products (mixed precision). RECUR_DTYPE_F32, the
 * default, changes nothing. RECUR_DTYPE_BF16: every operand of a layer's
 * matrix products (weights, inputs, states, gate gradients) is rounded to
 * bfloat16 (to nearest even) as it enters the product and the products are
 * summed in float32, as oneDNN's and PyTorch's bf16 GEMMs do; the states,
 * the cells' pointwise math, the gradients and the weights themselves (the
 * optimizer's master copy, what files hold) stay float32, so no loss
 * scaling is needed. A result differs from F32 by bf16's rounding of the
 * operands, 2^-9 relative per element (docs/performance.md, "bf16").
 * RECUR_DTYPE_F16: the same with IEEE binary16 operands (2^-12 relative,
 * to nearest even; from 65520 up Inf, below 2^-14 subnormal steps of
 * 2^-24, below 2^-25 zero), as cuDNN's and PyTorch's f16 GEMMs with f32
 * accumulation: small gate gradients vanish, so train with loss scaling
 * (recur-train.h: recur_optim_set_loss_scale).
 *
 * recur_ctx_precisions: which precisions the context's device computes, as
 * bits 1 << RECUR_DTYPE_x (F32 always); *native (may be NULL) those it
 * computes in hardware, faster than F32 (bf16: AMX or AVX512-BF16 on the
 * CPU); the others it emulates, with the same results and no speed gain
 * (f16 on every device today; bf16 on OpenCL).
 * recur_model_set_precision / recur_layer_set_precision: RECUR_ERR_ARG for
 * a value outside recur_dtype, RECUR_ERR_UNSUPPORTED naming the device and
 * precision when the device cannot (never a silent float32). A net's
 * model (recur_net_model) takes it like any other, and the net's head
 * (its output layer's products, forward and backward) follows it, as
 * torch.autocast puts nn.Linear in the low precision; the embedding is a
 * lookup, and the loss and the optimizers stay float32.
 */
RECUR_API unsigned recur_ctx_precisions(recur_ctx *ctx, unsigned *native);
RECUR_API recur_status recur_layer_set_precision(recur_layer *layer, recur_dtype precision);
RECUR_API recur_dtype recur_layer_precision(const recur_layer *layer);
RECUR_API recur_status recur_model_set_precision(recur_model *model, recur_dtype precision);
RECUR_API recur_dtype recur_model_precision(const recur_model *model);

/*
 * The type the reserve keeps the cells' saved values in: what a training
 * forward saves for BPTT, recur_cell_desc.n_save values a row and step
 * (the gates, for the built-in cells). RECUR_DTYPE_F32, the default, is
 * exact. RECUR_DTYPE_BF16 halves their memory (recur_sizes.reserve): the
 * kernels still write and read float32, and the engine rounds a step's
 * values into bf16 (to nearest even) after its forward and widens them
 * before its backward. The forward's results are unchanged; the gradients
 * use the rounded values, 2^-9 relative per value (docs/performance.md,
 * "bf16 saved values"). The states, the products' outputs and the
 * gradients stay float32. Independent of the products' precision (either
 * may be used without the other); the tool's --precision bf16 sets both.
 * Any device. F16 is RECUR_ERR_ARG (a cell may save values beyond f16's
 * 65504), as is a value outside recur_dtype; BF16 is RECUR_ERR_UNSUPPORTED
 * for a cell that needs its saved values exact (RECUR_CELL_SAVE_EXACT). A change applies from the
 * next training forward: a pending backward reads what its forward saved.
 */
RECUR_API recur_status recur_layer_set_saved_dtype(recur_layer *layer, recur_dtype dtype);
RECUR_API recur_dtype recur_layer_saved_dtype(const recur_layer *layer);
RECUR_API recur_status recur_model_set_saved_dtype(recur_model *model, recur_dtype dtype);
RECUR_API recur_dtype recur_model_saved_dtype(const recur_model *model);

/* recur_model_save with every tensor stored as dtype, rounded to nearest even
 * (the file PyTorch's module.to(torch.bfloat16 or .float16).state_dict()
 * would hold). NaN stays NaN, Inf stays Inf; a finite weight beyond F16's
 * range is RECUR_ERR_ARG naming the tensor and element, and nothing is
 * written. Loading widens BF16 and F16 back exactly. */
RECUR_API recur_status recur_model_save_as(const recur_model *model, const char *path, recur_dtype dtype);

enum recur_load_flag {
    RECUR_LOAD_CHECK_FINITE = 1u << 0, /* refuse NaN or Inf weights (RECUR_ERR_FILE_NONFINITE) */
};

/* Create a model on ctx from a file, settings from its __metadata__. */
RECUR_API recur_status recur_model_load(recur_ctx *ctx, const char *path, uint32_t flags, recur_model **out);
/* Load a file's weights into an existing model of the same shape. The file
 * needs no __metadata__ (a plain PyTorch state_dict file works); recur's keys,
 * when present, must agree. On any error the model's weights are untouched. */
RECUR_API recur_status recur_model_load_weights(recur_model *model, const char *path, uint32_t flags);

#ifdef __cplusplus
}
#endif

#endif /* RECUR_H */
