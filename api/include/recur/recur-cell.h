/*
 * recur-cell.h: the cell plugin ABI of recur.
 *
 * A cell plugin is a shared object with exactly one exported function,
 * RECUR_CELL_ENTRY (see the bottom of this file). The host calls it once with
 * its own ABI version and a table of host services; the plugin answers with a
 * pointer to a static, immutable descriptor (struct recur_cell_desc).
 *
 * Division of labour (cuDNN / oneDNN style):
 *   - the engine owns every matrix product: the input projection of all time
 *     steps, the recurrent product(s) of each step, the weight gradients and
 *     dX, and the biases (added before the cell sees a product);
 *   - the cell owns the pointwise math of a step, forward and backward.
 *
 * A step of a cell with G gates and hidden size H, for each row n of a batch:
 *
 *   xw = W_ih x^{<t>} + b_ih + b_hh               [G*H]  (engine, one GEMM for all t)
 *   stage 0:  hw[gates of stage 0] = W_hh[..] a^{<t-1>}    (engine)
 *             forward kernel 0 (cell)
 *   stage 1:  hw[gates of stage 1] = W_hh[..] src          (engine)
 *             forward kernel 1 (cell)
 *   ...       up to RECUR_CELL_MAX_STAGES stages
 *
 * (b_hh of a gate that sets bias_hh_in_hw is not in xw: its kernel adds it
 * to hw, for the linear-before-reset GRU whose b_hn sits inside r * (...).)
 *
 * where src is an H-wide vector that forward kernel s writes for the product
 * of stage s+1 (for the GRU of the course notes: src = Γ_r * c^{<t-1>}).
 * Backward runs the stages in reverse: backward kernel S-1 first, then the
 * engine's product of the recurrent-side gradient of stage S-1 with its
 * weights into dsrc, then backward kernel S-2, ..., and finally the engine
 * adds dhw[gates of stage 0] W_hh[..] to the gradient of a^{<t-1>}.
 *
 * Since ABI 2 a cell may also have:
 *   - gates without a recurrent product: stages cover the gates 0..Grec-1 in
 *     order, and gates Grec..G-1 have only their input projection (W_hh then
 *     has Grec*H rows; none when Grec is 0). hw of those gates is scratch;
 *   - stages without a product (gate_begin == gate_end): a pointwise stage,
 *     for elementwise recurrences such as IndRNN's u * a^{<t-1>};
 *   - its own parameters (struct recur_cell_param): peepholes, layer-norm
 *     gains and biases, IndRNN's u. Kernels read them through args->param
 *     and write this step's gradient of each row into args->dparam; the
 *     engine sums the rows and steps, and carries them through optimizers,
 *     files, weight access and the PyTorch layout like W_ih and W_hh;
 *   - raw products (RECUR_CELL_RAW_PRODUCTS): xw = W_ih x and hw = W_hh a
 *     exactly, with no b_ih and b_hh tensors at all; the cell adds whatever
 *     biases it declares as its own parameters (layer-normalised cells);
 *   - row kernels (RECUR_CELL_ROW_KERNELS): its OpenCL kernels run one
 *     work-group per row, so they may reduce over the H units of a row with
 *     barriers (recur-cell-cl.h); CPU kernels always see whole rows.
 *
 * The layer's weights, canonical layout, in floats:
 *   [W_ih (G*H x I), W_hh (Grec*H x H), b_ih (G*H), b_hh (G*H), params...]
 * (no b_ih, b_hh with RECUR_CELL_RAW_PRODUCTS); each parameter is
 * rows x (H or G*H) floats, in the order of recur_cell_desc.params.
 *
 * Memory: every array handed to a kernel is row-major with rows of exactly
 * the stated width (no padding), and n rows. A kernel may be called on any
 * subset of rows (the engine splits a batch across threads), so it must treat
 * rows independently. It never allocates and never keeps pointers.
 *
 * Trust: a plugin is not data. dlopen runs its constructors, and the host
 * then calls its entry and kernels, inside the host process with all of its
 * rights: a plugin can print, exit, read and write anything the process can,
 * and no check of the loader can stop it, as with SQLite's extensions. The
 * loader only decides where it loads from (recur.h, recur_cell_count: absolute
 * search directories, owned by the user or root, not world-writable; every
 * *.so a regular file); those checks are about who could have put a file
 * there, never about its code.
 *
 * Versioning: RECUR_CELL_ABI_VERSION is (major << 16) | minor. The host loads
 * a plugin whose major equals its own (an ABI 1 plugin is refused with a
 * message naming both versions: rebuild it against these headers), and whose
 * descriptor is at least as large as the one of ABI 2.0. Structs only ever
 * grow at the end; a minor version adds fields there, or flag bits (which an
 * older host refuses as unknown).
 */
#ifndef RECUR_CELL_H
#define RECUR_CELL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RECUR_CELL_ABI_MAJOR 2
#define RECUR_CELL_ABI_MINOR 2
#define RECUR_CELL_ABI_VERSION ((RECUR_CELL_ABI_MAJOR << 16) | RECUR_CELL_ABI_MINOR)

/* Limits of ABI 2. */
#define RECUR_CELL_MAX_STATES 2   /* a (the output, state 0) and optionally c */
#define RECUR_CELL_MAX_STAGES 4
#define RECUR_CELL_MAX_GATES 16
#define RECUR_CELL_MAX_PARAMS 8   /* a cell's own parameters */

/* The name of the one exported function, as a string, for dlsym. */
#define RECUR_CELL_ENTRY_NAME "recur_cell_entry"

#if defined(_WIN32)
#define RECUR_CELL_EXPORT __declspec(dllexport)
#else
#define RECUR_CELL_EXPORT __attribute__((visibility("default")))
#endif

/*
 * The instruction sets a CPU kernel variant may need: the one list of them,
 * most preferred first. Everything else follows from it: enum recur_isa,
 * the CPU backend's choice (RECUR_DEVICE=cpu:NAME), the kernel variants the
 * build compiles (meson.build reads the rows of the target architecture
 * through the preprocessor) and RECUR_CELL_CPU_TABLES below. A row is
 *   X(u, ID, name, bit, arch, implies, flags)
 *     ID, name  RECUR_ISA_<ID>; NAME in RECUR_DEVICE=cpu:NAME and in the
 *               names of kernel tables (<cell>_cpu_<name>)
 *     bit       its enum recur_isa value: one bit, 0 for scalar; never
 *               changed, as plugins store it
 *     arch      RECUR_ISA_ARCH_*: 1 when the compiler targets the
 *               architecture the ISA belongs to
 *     implies   the other ISAs a CPU with this one runs, so their kernels
 *               may be chosen on it
 *     flags     the GCC/Clang flags that compile kernels for it
 * and u is the caller's argument, passed through.
 */
#define RECUR_ISA_LIST(X, u)                                                                   \
    X(u, AVX512, avx512, 1u << 1, RECUR_ISA_ARCH_X86_64, RECUR_ISA_AVX2,                      \
      "-mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma") /* AVX-512 F, BW, DQ, VL */         \
    X(u, AVX2, avx2, 1u << 0, RECUR_ISA_ARCH_X86_64, 0, "-mavx2 -mfma") /* AVX2 + FMA */      \
    X(u, NEON, neon, 1u << 2, RECUR_ISA_ARCH_AARCH64, 0, "") /* Advanced SIMD */              \
    X(u, SCALAR, scalar, 0, RECUR_ISA_ARCH_ANY, 0, "") /* plain C: the reference */

#if defined(__x86_64__)
#define RECUR_ISA_ARCH_X86_64 1
#else
#define RECUR_ISA_ARCH_X86_64 0
#endif
#if defined(__aarch64__)
#define RECUR_ISA_ARCH_AARCH64 1
#else
#define RECUR_ISA_ARCH_AARCH64 0
#endif
#define RECUR_ISA_ARCH_ANY 1

/* RECUR_ISA_IF(arch)(tokens): the tokens when arch expands to 1, nothing when to 0. */
#define RECUR_ISA_IF(arch) RECUR_ISA_IF_(arch)
#define RECUR_ISA_IF_(arch) RECUR_ISA_IF_##arch
#define RECUR_ISA_IF_1(...) __VA_ARGS__
#define RECUR_ISA_IF_0(...)

/* Instruction sets a CPU kernel variant may need (bit flags, one per variant). */
#define RECUR_ISA_ENUM_(u, ID, name, bit, arch, implies, flags) RECUR_ISA_##ID = (bit),
enum recur_isa { RECUR_ISA_LIST(RECUR_ISA_ENUM_, ) };
#undef RECUR_ISA_ENUM_

/*
 * The arguments of one kernel call: n rows of one time step.
 * Forward kernels read the fields marked (f), backward kernels also (b).
 */
struct recur_cell_args {
    int n;        /* rows in this call, >= 1 */
    int H;        /* hidden size */
    int variant;  /* index into recur_cell_desc.variants (0 when the cell has none) */
    int training; /* (f) 1: fill save (and src); 0: inference, save is NULL */
    int n_gates;  /* G: rows of xw, hw, dxw and dhw are n_gates * H wide */
    int n_save;   /* rows of save are n_save * H wide */

    /* (f) xw: [n, G*H], W_ih x + b_ih + b_hh for this step, except that
     * b_hh of a gate with bias_hh_in_hw is left out (see b_hh). Read only.
     * NULL in backward. */
    const float *xw;
    /* (f) hw: [n, G*H], W_hh a, no bias, for the gates of every stage run so
     * far (the gates of later stages are not yet valid in forward kernel 0).
     * The cell may overwrite it as scratch. NULL in backward: save what
     * backward needs. */
    float *hw;
    /* (f) b_hh: [G*H], the recurrent bias, one row for all n rows. A kernel
     * adds it only for its gates with bias_hh_in_hw (the others have it in
     * xw already). */
    const float *b_hh;
    /* (f)(b) prev[k]: [n, H], state k at t-1 (prev[0] is a^{<t-1>}). Read only. */
    const float *prev[RECUR_CELL_MAX_STATES];
    /* (f) next[k]: [n, H], state k at t, written by the last forward stage.
     * (b) next[k]: the same values, read only. */
    float *next[RECUR_CELL_MAX_STATES];
    /* (f) save: [n, n_save*H], what backward needs; written in training only.
     * (b) the same values, read only; rounded to bfloat16 when the layer keeps
     * its saved values in bf16 (RECUR_CELL_SAVE_EXACT prevents it). */
    float *save;
    /* (f) src: [n, H], written by forward kernel s for the product of stage
     * s+1 (cells with two stages; NULL otherwise). (b) the same values. */
    float *src;

    /* (b) dnext[k]: [n, H], dL/d state k at t (already includes the output
     * gradient and the gradient flowing back from t+1). Read only. */
    const float *dnext[RECUR_CELL_MAX_STATES];
    /* (b) dprev[k]: [n, H], dL/d state k at t-1. The backward kernel of the
     * last stage (the first one to run) overwrites it; backward kernels of
     * earlier stages add to it. The engine then adds the product of stage 0. */
    float *dprev[RECUR_CELL_MAX_STATES];
    /* (b) dxw: [n, G*H], dL/d xw, written (every gate) by the kernels. */
    float *dxw;
    /* (b) dhw: [n, G*H], dL/d hw. Unless the cell sets
     * RECUR_CELL_SPLIT_RECURRENT_GRAD, dhw == dxw (one buffer): write dxw.
     * Between them, the backward kernels write every gate of dxw (and dhw);
     * a gate's values must be final before the engine's product of the stage
     * that owns the gate, which follows the kernel of that stage. */
    float *dhw;
    /* (b) dsrc: [n, H], dL/d src of this stage (NULL for the last stage,
     * and when the next stage has no product). */
    const float *dsrc;

    /* (f)(b) param[k]: the cell's own parameter k (recur_cell_desc.params),
     * rows x cols floats, one copy for all n rows. Read only. */
    const float *param[RECUR_CELL_MAX_PARAMS];
    /* (b) dparam[k]: [n, rows*cols], this step's dL/d param[k] of each row.
     * Zero when the step's first backward kernel runs; kernels add to it
     * (each row its own); the engine sums over rows and steps. */
    float *dparam[RECUR_CELL_MAX_PARAMS];
    /* rows of dparam[k] are param_floats[k] wide (recur_cell_param_floats) */
    int param_floats[RECUR_CELL_MAX_PARAMS];
};

typedef void (*recur_cell_fn)(const struct recur_cell_args *args);

/* One CPU variant of a cell's kernels. */
struct recur_cell_cpu {
    uint32_t isa;                                /* enum recur_isa: what it needs */
    recur_cell_fn forward[RECUR_CELL_MAX_STAGES];  /* one per stage, all non-NULL */
    recur_cell_fn backward[RECUR_CELL_MAX_STAGES]; /* one per stage, all non-NULL */
};

/*
 * A cell's CPU kernel tables, one per ISA of the architecture being compiled.
 * The cell's kernel file is compiled once per such ISA, with the ISA's flags,
 * and defines the table <p>_cpu_<name> (plugins/meson.build shows the
 * build). In the file with the descriptor,
 *     RECUR_CELL_CPU_TABLES(gru)
 * (no semicolon) declares those tables and defines
 *     static struct recur_cell_cpu gru_cpu[];  the variants: recur_cell_desc.cpu
 *     static int gru_cpu_fill(void);           copies the tables into gru_cpu and
 *                                              returns their number: recur_cell_desc.n_cpu
 * for the entry point to call (a static initialiser cannot copy an object).
 * A cell with only scalar kernels needs none of this.
 */
#define RECUR_CELL_CPU_TABLES(p)                                                               \
    RECUR_ISA_LIST(RECUR_CELL_CPU_EXTERN_, p)                                                  \
    static struct recur_cell_cpu p##_cpu[0 RECUR_ISA_LIST(RECUR_CELL_CPU_ONE_, p)];            \
    static int p##_cpu_fill(void) {                                                            \
        int n = 0;                                                                             \
        RECUR_ISA_LIST(RECUR_CELL_CPU_COPY_, p)                                                \
        return n;                                                                              \
    }
#define RECUR_CELL_CPU_EXTERN_(p, ID, name, bit, arch, implies, flags)                        \
    RECUR_ISA_IF(arch)(extern const struct recur_cell_cpu p##_cpu_##name;)
#define RECUR_CELL_CPU_ONE_(p, ID, name, bit, arch, implies, flags) RECUR_ISA_IF(arch)(+1)
#define RECUR_CELL_CPU_COPY_(p, ID, name, bit, arch, implies, flags)                          \
    RECUR_ISA_IF(arch)(p##_cpu[n++] = p##_cpu_##name;)

/* A gate: a block of H rows in W_ih, W_hh, b_ih and b_hh. */
struct recur_cell_gate {
    const char *name;  /* canonical name, in the notation of the course notes ("u", "f", ...) */
    int torch_index;   /* position of this gate in PyTorch's layout (0..G-1) */
    int torch_negate;  /* 1: PyTorch's gate is the complement, stored as -W, -b
                        * (1 - σ(a) = σ(-a); used for the update-gate polarity) */
    int bias_hh_in_hw; /* 1: b_hh of this gate is not folded into xw; the
                        * kernel adds args->b_hh to hw itself (the candidate
                        * of the linear-before-reset GRU, where b_hn sits
                        * inside the reset product) */
};

/* A stage: which gates its recurrent product fills. Stage 0 multiplies
 * a^{<t-1>}; a later stage multiplies the src of the stage before it. */
struct recur_cell_stage {
    int gate_begin; /* first gate, inclusive */
    int gate_end;   /* last gate, exclusive; stages cover 0..Grec-1 in order.
                     * gate_begin == gate_end: no product (a pointwise stage) */
};

/* The columns of a cell's own parameter: H, or G*H (one per gate unit). */
enum recur_cell_dim {
    RECUR_CELL_DIM_H = 0,
    RECUR_CELL_DIM_GH = 1,
};

/* How a cell's own parameter starts (recur_net_init, the tool's models). */
enum recur_cell_init {
    RECUR_CELL_INIT_UNIFORM = 0, /* U(-1/sqrt(H), 1/sqrt(H)), as PyTorch's RNN weights */
    RECUR_CELL_INIT_ZERO = 1,
    RECUR_CELL_INIT_ONE = 2,     /* layer-norm gains */
};

/* A parameter the cell owns, beyond W_ih, W_hh, b_ih and b_hh. */
struct recur_cell_param {
    const char *name;       /* [a-z0-9_]{1,31}; the model's tensor is NAME_l{k}[_reverse],
                             * so PyTorch-style names ("weight_peephole") fit state_dicts */
    int rows;               /* 1..RECUR_CELL_MAX_GATES */
    int cols;               /* enum recur_cell_dim */
    int init;               /* enum recur_cell_init */
};

/* Flags of recur_cell_desc.flags. */
enum recur_cell_flag {
    /* dL/d hw differs from dL/d xw for some gate (linear-before-reset GRU):
     * the engine gives the backward kernels two buffers. */
    RECUR_CELL_SPLIT_RECURRENT_GRAD = 1u << 0,
    /* xw = W_ih x and hw = W_hh a with no bias; the layer has no b_ih and
     * b_hh (the cell declares its biases as its own parameters). */
    RECUR_CELL_RAW_PRODUCTS = 1u << 1,
    /* OpenCL: one work-group per row, so kernels may reduce over a row
     * (RECUR_CELL_ROW_BIND and recur_row_sum in recur-cell-cl.h). */
    RECUR_CELL_ROW_KERNELS = 1u << 2,
    /* (ABI 2.1) a^{<t-1>} reaches step t only through stage 0's product:
     * the kernels never read prev[0] and write zeros to dprev[0], and no
     * stage after the first has a product. A layer of such a cell may then
     * project its output (LSTM with projection, PyTorch's proj_size):
     * h^{<t>} = W_hr a^{<t>}, P < H wide, is the layer's output and the
     * state stage 0 multiplies (W_hh is [Grec*H, P]); the kernels keep
     * seeing H-wide rows (next[0] is the unprojected a^{<t>}, dnext[0] its
     * gradient; prev[0] reads as zeros). The loader checks the claim by
     * running each CPU variant twice. */
    RECUR_CELL_PROJECTABLE = 1u << 3,
    /* (ABI 2.2) save must come back to backward exactly as forward wrote
     * it (indices, counts, bit patterns). Without the flag a layer may keep
     * the saved values in bfloat16 (recur_layer_set_saved_dtype, which
     * `recur train --precision bf16` sets): backward then reads each value
     * rounded to 8 significant bits. With it, such a layer keeps them in
     * float32 and refuses bf16 (RECUR_ERR_UNSUPPORTED). */
    RECUR_CELL_SAVE_EXACT = 1u << 4,
};

/* A cell's kernels for a backend that compiles source at run time, found by
 * the backend's name ("opencl": OpenCL C 1.2, see recur-cell-cl.h). */
struct recur_cell_source {
    const char *backend; /* the backend's name, the first field of RECUR_DEVICE */
    const char *text;    /* NUL-terminated source (recur-embed makes it from a file) */
};

/* In a descriptor's initialiser (C): the cell's OpenCL C, as its one source.
 *     static struct recur_cell_desc desc = { ..., RECUR_CELL_OPENCL(mgu_opencl) };  */
#define RECUR_CELL_OPENCL(text) \
    .n_sources = 1, .sources = (const struct recur_cell_source[]){{"opencl", (text)}}

/* The descriptor a plugin returns. Static and immutable for the life of the
 * process (the host never dlcloses a plugin while a context lives). */
struct recur_cell_desc {
    uint32_t abi_version; /* RECUR_CELL_ABI_VERSION the plugin was built with */
    uint32_t struct_size; /* sizeof(struct recur_cell_desc) at build time */

    const char *name;     /* lookup key, [a-z0-9_-]{1,31}, unique across plugins */
    const char *version;  /* the cell's own version, e.g. "1.0" */
    const char *summary;  /* one line */

    int n_gates;                          /* G, 1..RECUR_CELL_MAX_GATES */
    const struct recur_cell_gate *gates;  /* [n_gates], in the engine's storage order */
    int n_states;                         /* 1 (a) or 2 (a and c) */
    int n_save;                           /* floats per unit saved per step for BPTT */
    int n_stages;                         /* 1..RECUR_CELL_MAX_STAGES */
    const struct recur_cell_stage *stages;/* [n_stages] */
    int n_variants;                       /* 0, or the number of names in variants */
    const char *const *variants;          /* e.g. {"tanh", "relu"}; the first is the default */
    uint32_t flags;                       /* enum recur_cell_flag */
    int n_params;                         /* 0..RECUR_CELL_MAX_PARAMS */
    const struct recur_cell_param *params;/* [n_params], the cell's own parameters */

    int n_cpu;                            /* >= 1 */
    const struct recur_cell_cpu *cpu;     /* [n_cpu]; one with isa RECUR_ISA_SCALAR is mandatory */

    /* Kernels as source, one per backend that builds them at run time
     * (0 and NULL: the cell runs on the CPU only). Kernel names start with
     * the cell's name (dashes as underscores). */
    int n_sources;
    const struct recur_cell_source *sources;
};

/* Floats of parameter k of a cell at hidden size H: rows x (H or G*H). */
static inline size_t recur_cell_param_floats(const struct recur_cell_desc *d, int k, int H) {
    size_t cols = d->params[k].cols == RECUR_CELL_DIM_GH ? (size_t)d->n_gates * (size_t)H : (size_t)H;
    return (size_t)d->params[k].rows * cols;
}

/* Log levels, shared with the public API. */
enum recur_cell_log_level {
    RECUR_CELL_LOG_ERROR = 0,
    RECUR_CELL_LOG_WARN = 1,
    RECUR_CELL_LOG_INFO = 2,
    RECUR_CELL_LOG_DEBUG = 3,
};

/* Services the host hands to a plugin; a plugin never links against librecur. */
struct recur_host_i {
    uint32_t abi_version; /* the host's RECUR_CELL_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct recur_host_i) of the host */
    /* Log a message through the host's logger (printf-style). */
    void (*log)(int level, const char *fmt, ...);
    /* The CPU ISAs this process can run (enum recur_isa bits). */
    uint32_t cpu_isa;
};

/*
 * The entry point. Return 0 and set *out to the descriptor, or return a
 * non-zero value to refuse loading (for example when host_abi's major
 * differs from the one the plugin knows).
 */
typedef int (*recur_cell_entry_fn)(uint32_t host_abi, const struct recur_host_i *host,
                                   const struct recur_cell_desc **out);

#define RECUR_CELL_ENTRY                                                               \
    RECUR_CELL_EXPORT int recur_cell_entry(uint32_t host_abi,                          \
                                           const struct recur_host_i *host,            \
                                           const struct recur_cell_desc **out)

#ifdef __cplusplus
}
#endif

#endif /* RECUR_CELL_H */
