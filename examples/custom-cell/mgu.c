/*
 * mgu.c: an example cell plugin, built out of tree against the installed
 * headers (see Makefile): the minimal gated unit of Zhou et al. (2016),
 *
 *   f       = σ(W_f [a^{<t-1>}, x^{<t>}] + b_f)
 *   ã       = tanh(W_a [f * a^{<t-1>}, x^{<t>}] + b_a)
 *   a^{<t>} = (1 - f) * a^{<t-1>} + f * ã
 *
 * Two gates (f, a) in two stages: stage 0's product is W_hh[f] a^{<t-1>};
 * its kernel makes f and src = f * a^{<t-1>}, the input of stage 1's product
 * W_hh[a] src. The mandatory scalar CPU kernels, and the same math in OpenCL
 * C (mgu.cl, embedded by the Makefile with recur-embed as the string
 * mgu_opencl), so it runs on any device; recur gradcheck checks both and
 * compares them.
 */
#include <math.h>
#include <recur/recur-cell.h>

static float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

/* Stage 0: f = σ(xw_f + hw_f), left in hw_f (scratch the cell may use) for
 * stage 1; src = f * a^{<t-1>}; save f. */
static void mgu_forward_0(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int r = 0; r < a->n; r++) {
        const float *xw = a->xw + (size_t)r * 2 * H, *prev = a->prev[0] + (size_t)r * H;
        float *hw = a->hw + (size_t)r * 2 * H, *src = a->src + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            hw[j] = sigmoid(xw[j] + hw[j]);
            src[j] = hw[j] * prev[j];
        }
        if (a->training)
            for (int j = 0; j < H; j++) a->save[(size_t)r * 2 * H + j] = hw[j];
    }
}

/* Stage 1: ã = tanh(xw_a + hw_a) (hw_a = W_hh[a] src); a^{<t>} = (1 - f) a^{<t-1>} + f ã; save ã. */
static void mgu_forward_1(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int r = 0; r < a->n; r++) {
        const float *xw = a->xw + (size_t)r * 2 * H, *hw = a->hw + (size_t)r * 2 * H;
        const float *prev = a->prev[0] + (size_t)r * H;
        float *next = a->next[0] + (size_t)r * H, *save = a->training ? a->save + (size_t)r * 2 * H : NULL;
        for (int j = 0; j < H; j++) {
            float f = hw[j], cand = tanhf(xw[H + j] + hw[H + j]);
            next[j] = (1.0f - f) * prev[j] + f * cand;
            if (save) save[H + j] = cand;
        }
    }
}

/* Backward of stage 1 (runs first), with da = dL/da^{<t>}:
 *   dpre_a = da * f * (1 - ã²)            (into dxw's gate a)
 *   dL/da^{<t-1>} = da * (1 - f)          (overwrites dprev: the first kernel to run) */
static void mgu_backward_1(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int r = 0; r < a->n; r++) {
        const float *save = a->save + (size_t)r * 2 * H, *da = a->dnext[0] + (size_t)r * H;
        float *d = a->dxw + (size_t)r * 2 * H, *dprev = a->dprev[0] + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            float f = save[j], cand = save[H + j];
            d[H + j] = da[j] * f * (1.0f - cand * cand);
            dprev[j] = da[j] * (1.0f - f);
        }
    }
}

/* Backward of stage 0, with dsrc = dL/d src (the engine's product of stage 1):
 *   df = da * (ã - a^{<t-1>}) + dsrc * a^{<t-1>}     dpre_f = df * f (1 - f)
 *   dL/da^{<t-1>} += dsrc * f             (the engine then adds stage 0's product) */
static void mgu_backward_0(const struct recur_cell_args *a) {
    const int H = a->H;
    for (int r = 0; r < a->n; r++) {
        const float *save = a->save + (size_t)r * 2 * H, *da = a->dnext[0] + (size_t)r * H;
        const float *prev = a->prev[0] + (size_t)r * H, *dsrc = a->dsrc + (size_t)r * H;
        float *d = a->dxw + (size_t)r * 2 * H, *dprev = a->dprev[0] + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            float f = save[j], cand = save[H + j];
            float df = da[j] * (cand - prev[j]) + dsrc[j] * prev[j];
            d[j] = df * f * (1.0f - f);
            dprev[j] += dsrc[j] * f;
        }
    }
}

/* mgu.cl's text (mgu-cl.c, written by recur-embed). */
extern const char mgu_opencl[];

static const struct recur_cell_gate gates[] = {{.name = "f", .torch_index = 0}, {.name = "a", .torch_index = 1}};
static const struct recur_cell_stage stages[] = {{0, 1}, {1, 2}};
static const struct recur_cell_cpu cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {mgu_forward_0, mgu_forward_1}, .backward = {mgu_backward_0, mgu_backward_1}},
};

static const struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "mgu",
    .version = "1.0",
    .summary = "minimal gated unit (Zhou et al. 2016): a = (1-f)*a + f*tanh(W_a[f*a, x] + b_a) (example plugin)",
    .n_gates = 2,
    .gates = gates,
    .n_states = 1,
    .n_save = 2,
    .n_stages = 2,
    .stages = stages,
    .n_cpu = 1,
    .cpu = cpu,
    RECUR_CELL_OPENCL(mgu_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
