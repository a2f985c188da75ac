/*
 * leaky-rnn.c: an example cell plugin, built out of tree against the
 * installed headers (see Makefile). A leaky-integrator RNN:
 *
 *   a^{<t>} = (1 - α) a^{<t-1>} + α tanh(W_aa a^{<t-1>} + W_ax x^{<t>} + b_a),  α = 1/2
 *
 * One gate, one state, one stage; it saves nothing (tanh(pre) is recovered
 * from a^{<t>} and a^{<t-1>}). The mandatory scalar CPU kernels, and the
 * same math in OpenCL C (leaky-rnn.cl, embedded by the Makefile with
 * recur-embed as the string leaky_rnn_opencl), so it runs on any device.
 */
#include <math.h>
#include <recur/recur-cell.h>

#define ALPHA 0.5f

static void leaky_forward(const struct recur_cell_args *a) {
    for (int r = 0; r < a->n; r++) {
        const float *xw = a->xw + (size_t)r * a->H, *hw = a->hw + (size_t)r * a->H;
        const float *prev = a->prev[0] + (size_t)r * a->H;
        float *next = a->next[0] + (size_t)r * a->H;
        for (int j = 0; j < a->H; j++) next[j] = (1 - ALPHA) * prev[j] + ALPHA * tanhf(xw[j] + hw[j]);
    }
}

/* g = tanh(pre) = (a - (1-α) a_prev) / α;  dpre = da α (1 - g²);  da_prev = da (1-α) (+ product) */
static void leaky_backward(const struct recur_cell_args *a) {
    for (int r = 0; r < a->n; r++) {
        const float *prev = a->prev[0] + (size_t)r * a->H, *next = a->next[0] + (size_t)r * a->H;
        const float *da = a->dnext[0] + (size_t)r * a->H;
        float *dpre = a->dxw + (size_t)r * a->H, *dprev = a->dprev[0] + (size_t)r * a->H;
        for (int j = 0; j < a->H; j++) {
            float g = (next[j] - (1 - ALPHA) * prev[j]) / ALPHA;
            dpre[j] = da[j] * ALPHA * (1 - g * g);
            dprev[j] = da[j] * (1 - ALPHA);
        }
    }
}

/* leaky-rnn.cl's text (leaky-rnn-cl.c, written by recur-embed). */
extern const char leaky_rnn_opencl[];

static const struct recur_cell_gate gates[] = {{.name = "a", .torch_index = 0}};
static const struct recur_cell_stage stages[] = {{0, 1}};
static const struct recur_cell_cpu cpu[] = {
    {.isa = RECUR_ISA_SCALAR, .forward = {leaky_forward}, .backward = {leaky_backward}},
};

static const struct recur_cell_desc desc = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_cell_desc),
    .name = "leaky-rnn",
    .version = "0.1",
    .summary = "leaky-integrator RNN: a = a/2 + tanh(W_aa a + W_ax x + b)/2 (example plugin)",
    .n_gates = 1,
    .gates = gates,
    .n_states = 1,
    .n_save = 0,
    .n_stages = 1,
    .stages = stages,
    .n_cpu = 1,
    .cpu = cpu,
    RECUR_CELL_OPENCL(leaky_rnn_opencl),
};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
