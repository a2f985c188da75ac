/*
 * leaky-rnn.cl: the OpenCL C kernels of the example cell, the same math as
 * the C kernels in leaky-rnn.c (recur gradcheck compares the two). The host
 * prepends recur/recur-cell-cl.h, which defines RECUR_CELL_KERNEL and
 * RECUR_CELL_BIND; the Makefile embeds this file with recur-embed.
 * One work-item per unit j of row r; rows are G*H = H wide.
 */
#define ALPHA 0.5f

/* a^{<t>} = (1 - α) a^{<t-1>} + α tanh(xw + hw) */
RECUR_CELL_KERNEL(leaky_rnn_forward_0) {
    RECUR_CELL_BIND;
    const size_t i = (size_t)r * (size_t)H + (size_t)j;
    next0[i] = (1.0f - ALPHA) * prev0[i] + ALPHA * tanh(xw[i] + hw[i]);
}

/* g = (a - (1-α) a_prev) / α;  dpre = da α (1 - g²);  da_prev = da (1-α) (+ the engine's product) */
RECUR_CELL_KERNEL(leaky_rnn_backward_0) {
    RECUR_CELL_BIND;
    const size_t i = (size_t)r * (size_t)H + (size_t)j;
    const float g = (next0[i] - (1.0f - ALPHA) * prev0[i]) / ALPHA, da = dnext0[i];
    dxw[i] = da * ALPHA * (1.0f - g * g);
    dprev0[i] = da * (1.0f - ALPHA);
}
