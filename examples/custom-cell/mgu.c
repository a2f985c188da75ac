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
 * W_hh[a] src. The math is written once, in mgu-math.h (recur/recur-math.h):
 * compiled here as the mandatory scalar CPU kernels, and embedded by the
 * Makefile (recur-embed, as the string mgu_opencl) as the cell's OpenCL
 * source, so it runs on any device; recur gradcheck checks both and
 * compares them.
 */
#include <recur/recur-math.h>

#include "mgu-math.h" /* the kernels: mgu_forward_0, _1, mgu_backward_0, _1 */

/* mgu-math.h's text (mgu-cl.c, written by recur-embed): the same kernels for OpenCL. */
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
