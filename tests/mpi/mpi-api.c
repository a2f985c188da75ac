/*
 * mpi-api.c: recur_optim_set_comm and its buckets from C, under mpirun -np N
 * (N >= 2; tests/meson.build runs 3). Each rank trains the same net (an
 * embedding, a 2-layer LSTM, a head) on its own tokens:
 *
 *   - for bucket sizes 0 (one message at the step), 4 bytes (a bucket a
 *     tensor group, reduced in place) and 1 GiB (one packed bucket started
 *     during backward): after 3 Adam steps every rank holds the same bits
 *     in every parameter (the reduction is reduced to rank 0 and broadcast);
 *   - a backward pass more than recur_optim_set_accum says fails with
 *     RECUR_ERR_STATE naming the pass, and writes no gradient;
 *   - while a step's buckets are in flight, recur_optim_set_grad_weight,
 *     recur_optim_set_bucket_size and recur_optim_set_accum refuse
 *     (RECUR_ERR_STATE); after the step they work again;
 *   - f16 products with loss scaling from 2^40: the early steps overflow
 *     (on some rank: the average is then Inf on all), and every rank skips
 *     the same steps, ends at the same scale and holds the same bits.
 *
 * Prints "FAIL ..." and exits 1 on the first check that fails (every rank
 * runs the same checks, so all stop alike); "ok" from rank 0 at the end.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recur/recur-train.h"
#include "recur/recur.h"

enum { T = 6, N = 3, V = 9 };

static int rank, size;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL rank %d, line %d: ", rank, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            exit(1);                                                           \
        }                                                                      \
    } while (0)
#define OK(call, ctx) CHECK((call) == RECUR_OK, "%s: %s", #call, recur_ctx_error(ctx))

struct run {
    recur_ctx *ctx;
    recur_net *net;
    recur_optim *opt;
    int32_t tok[T * N], tgt[T * N];
};

static void run_open(struct run *r, size_t bucket) {
    CHECK(recur_ctx_create(&r->ctx, "cpu") == RECUR_OK, "recur_ctx_create: %s", recur_last_error());
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = 4, .hidden_size = 8, .num_layers = 2},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = V, .head = RECUR_HEAD_ALL, .output_size = V,
                        .loss = RECUR_LOSS_XENT};
    OK(recur_net_create(r->ctx, &d, &r->net), r->ctx);
    OK(recur_net_init(r->net, RECUR_INIT_UNIFORM, 7), r->ctx); /* the same weights on every rank */
    recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f);
    od.clip_norm = 1.0f;
    OK(recur_optim_create(&r->net, 1, &od, &r->opt), r->ctx);
    OK(recur_optim_set_bucket_size(r->opt, bucket), r->ctx);
    MPI_Comm world = MPI_COMM_WORLD;
    OK(recur_optim_set_comm(r->opt, &world), r->ctx);
    OK(recur_optim_set_grad_weight(r->opt, 1.0 + rank), r->ctx); /* unequal weights */
}

/* This rank's batch of step s: its own tokens. */
static recur_net_batch batch(struct run *r, int s) {
    uint64_t x = 0x9e3779b97f4a7c15u * (uint64_t)(1 + rank * 131 + s);
    for (int i = 0; i < T * N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        r->tok[i] = (int32_t)(x % V);
        r->tgt[i] = (int32_t)((x >> 20) % V);
    }
    return (recur_net_batch){.T = T, .N = N, .tokens = r->tok, .targets = r->tgt};
}

/* Every parameter of rank 0 and of this rank, bit for bit. */
static void same_on_every_rank(struct run *r, const char *when) {
    size_t np = recur_net_param_count(r->net);
    for (size_t i = 0; i < np; i++) {
        recur_param_info info;
        OK(recur_net_param_info(r->net, i, &info), r->ctx);
        float *mine = malloc(info.count * sizeof *mine), *root = malloc(info.count * sizeof *root);
        CHECK(mine && root, "out of memory");
        OK(recur_net_param_get(r->net, info.name, mine, info.count), r->ctx);
        memcpy(root, mine, info.count * sizeof *root);
        MPI_Bcast(root, (int)info.count, MPI_FLOAT, 0, MPI_COMM_WORLD);
        CHECK(!memcmp(root, mine, info.count * sizeof *root), "%s: %s differs from rank 0's", when, info.name);
        free(mine);
        free(root);
    }
}

int main(int argc, char **argv) {
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size >= 2, "run under mpirun -np 2 or more (size %d)", size);

    /* replicas identical, whatever the buckets */
    const size_t buckets[] = {0, 4, (size_t)1 << 30};
    for (int k = 0; k < 3; k++) {
        struct run r;
        run_open(&r, buckets[k]);
        for (int s = 0; s < 3; s++) {
            recur_net_batch b = batch(&r, s);
            OK(recur_net_forward(r.net, RECUR_MODE_TRAINING, &b, NULL, NULL), r.ctx);
            OK(recur_net_backward(r.net, &b, NULL, RECUR_GRAD_OVERWRITE), r.ctx);
            OK(recur_optim_step(r.opt, NULL), r.ctx);
        }
        char when[64];
        snprintf(when, sizeof when, "bucket size %zu, 3 steps", buckets[k]);
        same_on_every_rank(&r, when);
        recur_ctx_free(r.ctx);
    }

    /* one backward pass too many, and the settings while buckets are in flight */
    struct run r;
    run_open(&r, 4);
    recur_net_batch b = batch(&r, 0);
    OK(recur_net_forward(r.net, RECUR_MODE_TRAINING, &b, NULL, NULL), r.ctx);
    OK(recur_net_backward(r.net, &b, NULL, RECUR_GRAD_OVERWRITE), r.ctx);
    float before[V], after[V];
    OK(recur_net_grad_get(r.net, "head.bias", before, V), r.ctx);
    recur_status st = recur_net_backward(r.net, &b, NULL, RECUR_GRAD_ADD);
    CHECK(st == RECUR_ERR_STATE && strstr(recur_ctx_error(r.ctx), "backward pass 2 of nets[0]"),
          "a second backward pass with accum 1: status %d, '%s'", (int)st, recur_ctx_error(r.ctx));
    OK(recur_net_grad_get(r.net, "head.bias", after, V), r.ctx);
    CHECK(!memcmp(before, after, sizeof before), "the refused backward pass wrote head.bias's gradient");
    st = recur_optim_set_grad_weight(r.opt, 2.0);
    CHECK(st == RECUR_ERR_STATE && strstr(recur_ctx_error(r.ctx), "reduction has begun"),
          "recur_optim_set_grad_weight in flight: status %d, '%s'", (int)st, recur_ctx_error(r.ctx));
    CHECK(recur_optim_set_bucket_size(r.opt, 0) == RECUR_ERR_STATE, "recur_optim_set_bucket_size in flight");
    CHECK(recur_optim_set_accum(r.opt, 2) == RECUR_ERR_STATE, "recur_optim_set_accum in flight");
    OK(recur_optim_step(r.opt, NULL), r.ctx);
    same_on_every_rank(&r, "after the refusals");
    /* after the step: two passes a step, and both are added before the reduction */
    OK(recur_optim_set_accum(r.opt, 2), r.ctx);
    OK(recur_optim_set_bucket_size(r.opt, 1 << 20), r.ctx);
    OK(recur_optim_set_grad_weight(r.opt, 1.0), r.ctx);
    OK(recur_net_forward(r.net, RECUR_MODE_TRAINING, &b, NULL, NULL), r.ctx);
    OK(recur_net_backward(r.net, &b, NULL, RECUR_GRAD_OVERWRITE), r.ctx);
    OK(recur_net_forward(r.net, RECUR_MODE_TRAINING, &b, NULL, NULL), r.ctx);
    OK(recur_net_backward(r.net, &b, NULL, RECUR_GRAD_ADD), r.ctx);
    OK(recur_optim_step(r.opt, NULL), r.ctx);
    same_on_every_rank(&r, "2 passes a step");
    recur_ctx_free(r.ctx);

    /* loss scaling: the same skips on every rank, replicas alike */
    run_open(&r, 4);
    OK(recur_model_set_precision(recur_net_model(r.net), RECUR_DTYPE_F16), r.ctx);
    OK(recur_optim_set_loss_scale(r.opt, 0x1p40, 2000), r.ctx);
    for (int s = 0; s < 60 && recur_optim_steps(r.opt) < 3; s++) {
        recur_net_batch bs = batch(&r, s);
        OK(recur_net_forward(r.net, RECUR_MODE_TRAINING, &bs, NULL, NULL), r.ctx);
        OK(recur_net_backward(r.net, &bs, NULL, RECUR_GRAD_OVERWRITE), r.ctx);
        OK(recur_optim_step(r.opt, NULL), r.ctx);
    }
    long long mine[2] = {recur_optim_skipped(r.opt), recur_optim_steps(r.opt)}, lo[2], hi[2];
    MPI_Allreduce(mine, lo, 2, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(mine, hi, 2, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    CHECK(mine[0] > 0 && mine[1] == 3, "loss scaling from 2^40: %lld skipped, %lld steps", mine[0], mine[1]);
    CHECK(lo[0] == hi[0] && lo[1] == hi[1], "the ranks skipped %lld to %lld steps", lo[0], hi[0]);
    double scale = recur_optim_loss_scale(r.opt), root_scale = scale;
    MPI_Bcast(&root_scale, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    CHECK(scale == root_scale, "the scale is %g here, %g on rank 0", scale, root_scale);
    same_on_every_rank(&r, "loss scaling in f16");
    if (rank == 0) printf("loss scaling from 2^40 in f16: %lld steps skipped on every rank\n", mine[0]);
    recur_ctx_free(r.ctx);

    if (rank == 0) printf("ok: %d ranks\n", size);
    MPI_Finalize();
    return 0;
}
