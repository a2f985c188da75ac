/*
 * dist.c: the tool under mpirun (`mpirun -np N recur train ...`): MPI is
 * started when the process was launched by an MPI launcher (Open MPI's
 * OMPI_COMM_WORLD_SIZE, or PMI_SIZE / PMIX_RANK) and only for `recur
 * train`; rank and size for train.c; the few collectives the tool needs
 * beyond the optimizer's (recur_optim_set_comm does the gradients): sums of
 * a step's loss and tokens, broadcasts of evaluation results, the carried
 * states gathered for a checkpoint; and the end of the job, MPI_Abort with
 * the failing rank named when any rank fails.
 *
 * Built without MPI, the process is always rank 0 of 1, and a launch by
 * mpirun is refused (each rank would train alone and write the same files).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#ifndef RECUR_TOOL_MPI
#define RECUR_TOOL_MPI 0
#endif

static int g_rank = 0, g_size = 1, g_local = 0, g_active = 0;

/* The launcher's word for the world size, or NULL when not launched by one. */
static const char *launcher_size(void) {
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v) v = getenv("PMI_SIZE");
    if (!v) v = getenv("PMIX_RANK") ? "?" : NULL;
    return v;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_rank(void) { return g_local; }

#if RECUR_TOOL_MPI
#include <mpi.h>

int dist_init(int *argc, char ***argv) {
    if (!launcher_size()) return 0;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "recur train: MPI_Init_thread failed\n");
        return 1;
    }
    g_active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    g_local = lr ? atoi(lr) : g_rank;
    if (provided < MPI_THREAD_FUNNELED) {
        fprintf(stderr, "recur train: rank %d: MPI gives thread level %d, recur needs MPI_THREAD_FUNNELED\n", g_rank,
                provided);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return 0;
}

void dist_finish(int rc) {
    if (!g_active) return;
    if (rc != 0 && g_size > 1) {
        fprintf(stderr, "recur train: rank %d of %d stopped (exit status %d, the reason above); ending the job\n",
                g_rank, g_size, rc);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
    g_active = 0;
}

void *dist_comm(void) {
    static MPI_Comm world;
    world = MPI_COMM_WORLD;
    return g_active ? &world : NULL;
}

int dist_sum(double *v, int n) {
    if (g_size < 2) return 0;
    return MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS;
}

int dist_bcast(double *v, int n) {
    if (g_size < 2) return 0;
    return MPI_Bcast(v, n, MPI_DOUBLE, 0, MPI_COMM_WORLD) != MPI_SUCCESS;
}

int dist_gather_rows(float *full, const float *mine, int slabs, int rows, int width) {
    if (g_size < 2) {
        memcpy(full, mine, (size_t)slabs * rows * width * sizeof *full);
        return 0;
    }
    size_t mine_n = (size_t)slabs * rows * width;
    float *all = g_rank == 0 ? malloc(mine_n * g_size * sizeof *all) : NULL;
    if (g_rank == 0 && !all) {
        fprintf(stderr, "recur train: rank 0: out of memory gathering the carried states\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rc = MPI_Gather(mine, (int)mine_n, MPI_FLOAT, all, (int)mine_n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    if (g_rank == 0 && rc == MPI_SUCCESS) /* all[rank][slab][row] -> full[slab][rank * rows + row] */
        for (int k = 0; k < g_size; k++)
            for (int s = 0; s < slabs; s++)
                memcpy(full + ((size_t)s * rows * g_size + (size_t)k * rows) * width,
                       all + ((size_t)k * slabs + s) * rows * width, (size_t)rows * width * sizeof *full);
    free(all);
    return rc != MPI_SUCCESS;
}

#else

int dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *n = launcher_size();
    if (n && strcmp(n, "1") != 0) {
        fprintf(stderr, "recur train: launched by mpirun (world size %s), but this recur was built without MPI: each "
                        "process would train alone and write the same files (rebuild with libopenmpi-dev installed; "
                        "meson option mpi)\n", n);
        return 1;
    }
    return 0;
}
void dist_finish(int rc) { (void)rc; }
void *dist_comm(void) { return NULL; }
int dist_sum(double *v, int n) { return (void)v, (void)n, 0; }
int dist_bcast(double *v, int n) { return (void)v, (void)n, 0; }
int dist_gather_rows(float *full, const float *mine, int slabs, int rows, int width) {
    memcpy(full, mine, (size_t)slabs * rows * width * sizeof *full);
    return 0;
}

#endif

/* Under mpirun, RECUR_DEVICE="opencl:PLATFORM:TYPE:" (the device field left
 * empty, e.g. "opencl::gpu:") gives rank r of a node the device
 * (r mod the number of such devices) among those that match: 8 ranks on a
 * machine with 8 GPUs get one GPU each. The count is found by opening each
 * match in turn. 1 after a message. */
int dist_pick_device(void) {
    const char *v = getenv("RECUR_DEVICE");
    if (g_size < 2 || !v || strncmp(v, "opencl:", 7) != 0) return 0;
    int colons = 0;
    for (const char *p = v; *p; p++) colons += *p == ':';
    size_t len = strlen(v);
    if (colons != 3 || v[len - 1] != ':') return 0;
    char sel[256];
    int count = 0;
    for (; count < 64; count++) {
        recur_ctx *ctx;
        snprintf(sel, sizeof sel, "%s%d", v, count);
        if (recur_ctx_create(&ctx, sel) != RECUR_OK) break;
        recur_ctx_free(ctx);
    }
    if (count == 0) {
        fprintf(stderr, "recur train: rank %d: RECUR_DEVICE '%s': no device matches (%s)\n", g_rank, v,
                recur_last_error());
        return 1;
    }
    snprintf(sel, sizeof sel, "%s%d", v, g_local % count);
    setenv("RECUR_DEVICE", sel, 1);
    return 0;
}

/* This rank's rows of a [slabs, rows * size, width] array. */
void dist_slice_rows(float *mine, const float *full, int slabs, int rows, int width) {
    for (int s = 0; s < slabs; s++)
        memcpy(mine + (size_t)s * rows * width, full + ((size_t)s * rows * g_size + (size_t)g_rank * rows) * width,
               (size_t)rows * width * sizeof *mine);
}
