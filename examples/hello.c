/* hello.c: the README's example, built and run by the test suite. */
#include <recur/recur.h>
#include <stdio.h>

int main(void) {
    recur_ctx *ctx;
    if (recur_ctx_create(&ctx, NULL) != RECUR_OK) {        /* RECUR_DEVICE, or the best CPU ISA */
        fprintf(stderr, "%s\n", recur_last_error());
        return 1;
    }
    recur_layer *lstm;
    recur_layer_desc d = {.cell = "lstm", .input_size = 3, .hidden_size = 4};
    if (recur_layer_create(ctx, &d, &lstm) != RECUR_OK) {
        fprintf(stderr, "%s\n", recur_ctx_error(ctx));
        return 1;
    }
    float w[4 * 4 * (3 + 4 + 2)] = {0};                      /* a PyTorch state_dict, flattened */
    for (int i = 0; i < 144; i++) w[i] = 0.01f * (i % 17) - 0.08f;
    if (recur_layer_weights_set(lstm, RECUR_LAYOUT_TORCH, w, 144) != RECUR_OK) goto fail;

    enum { T = 5, N = 2 };
    float x[T * N * 3] = {0}, y[T * N * 4], hT[N * 4], cT[N * 4];
    x[0] = 1.0f;
    recur_io io = {.T = T, .N = N, .x = x, .y = y, .hT = hT, .cT = cT};   /* h0 = c0 = 0 */
    if (recur_layer_forward(lstm, RECUR_MODE_TRAINING, &io) != RECUR_OK) goto fail;

    float dy[T * N * 4], dx[T * N * 3], dw[144];
    for (int i = 0; i < T * N * 4; i++) dy[i] = y[i];        /* dL/dy of L = 0.5 sum(y^2) */
    recur_grad_io g = {.dy = dy, .dx = dx};
    if (recur_layer_backward(lstm, &io, &g, RECUR_GRAD_OVERWRITE) != RECUR_OK ||
        recur_layer_grads_get(lstm, RECUR_LAYOUT_TORCH, dw, 144) != RECUR_OK)
        goto fail;
    printf("y[0] = %f, dL/dW_ii[0] = %f\n", y[0], dw[0]);
    recur_ctx_free(ctx);                                      /* frees the layer too */
    return 0;
fail:
    fprintf(stderr, "%s\n", recur_ctx_error(ctx));          /* names what was wrong */
    recur_ctx_free(ctx);
    return 1;
}
