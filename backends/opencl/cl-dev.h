/*
 * cl-dev.h: the OpenCL backend's device object and helpers shared by
 * opencl.c and program.c (they include OpenCL; opencl-impl.h does not).
 */
#ifndef RECUR_CL_DEV_H
#define RECUR_CL_DEV_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stdatomic.h>

#include "backend-impl.h"
#include "opencl-impl.h"

/* The shared kernels (kernels/philox.cl, kernels/shared.cl, kernels/train.cl), by slot. */
enum cl_shared {
    K_ROWS_SET,
    K_COLSUM,
    K_ADD,
    K_TRANSPOSE,
    K_GATHER,
    K_SCATTER,
    K_DROPOUT,
    K_INDEX_ADD,
    K_XENT,
    K_MSE,
    K_SUM,
    K_SGD,
    K_ADAM,
    K_SCALE,
    K_ZONEOUT,
    K_ROUND,
    K_TO_BF16,
    K_FROM_BF16,
    N_SHARED
};

/* Everything one recur context owns on its device (be->context). */
struct cl_dev {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;

    /* the shared kernels */
    cl_program shared;
    cl_kernel k[N_SHARED];
    size_t wg[N_SHARED]; /* CL_KERNEL_WORK_GROUP_SIZE of each */

    /* limits */
    cl_ulong max_alloc, global_mem;
    size_t max_wg, max_items[3];
    size_t chunk; /* floats per launch of the 1-D kernels */
    char global_text[32]; /* global_mem for messages: "80.0 GiB" */

    /* buffers created since the queue last drained (clFinish, a blocking
     * read): an out-of-resources error after them is most likely memory */
    long fresh_buffers;
    unsigned long long fresh_bytes;

    /* what the program cache key needs (program.c) */
    char platform_name[128], device_name[128], driver[64], version[128], platform_version[128];
    char library[512]; /* recur_cl_driver_library() */

    int used_clblast; /* ran a CLBlast GEMM: counted in opencl.c's clblast_users */

    /* bf16 GEMMs (opencl.c: cl_gemm): op(A)'s and op(B)'s stored regions
     * rounded to bf16, dense; grown as needed, never shrunk, freed at
     * close. One in-order queue, so each GEMM may reuse them. */
    cl_mem scratch[2];
    size_t scratch_bytes[2];

    struct cl_prof *prof; /* RECUR_CL_PROFILE=1 (profile.c), else NULL */
};

/* RECUR_CL_PROFILE (profile.c): *on 1 for "1", 0 unset, empty or "0";
 * anything else RECUR_ERR_ARG with the reason in why. */
recur_status recur_cl_prof_env(int *on, char *why, size_t len);
struct cl_prof *recur_cl_prof_new(void);
/* A command's event (the profile keeps it, and may wait for it). */
void recur_cl_prof_add(struct cl_prof *p, const char *what, cl_event ev);
/* After the queue drained: the waiting events' times into the totals. */
void recur_cl_prof_drain(struct cl_prof *p);
/* Drain, print the table to stderr, free. */
void recur_cl_prof_report(struct cl_prof *p, const char *device);

/* Process-wide counters (opencl.c). */
struct cl_counters {
    atomic_long contexts, queues, programs, kernels, buffers;
    atomic_long builds, cache_loads, cache_stores, cache_rejects, leaked_refs, launches_split, clblast_clears;
    atomic_long host_waits;
};
extern struct cl_counters recur_cl_counters;
#define CL_COUNT(field, delta) atomic_fetch_add(&recur_cl_counters.field, (delta))

/* The status a failed OpenCL call maps to, without a context: memory codes
 * are RECUR_ERR_DEVICE_MEMORY, the rest RECUR_ERR_OPENCL. */
recur_status recur_cl_status(cl_int code);

/* Record "CALL(WHAT): CL_NAME[; hint]" on be->ctx and return its status.
 * With be->context open, CL_OUT_OF_RESOURCES and
 * CL_MEM_OBJECT_ALLOCATION_FAILURE after buffers created since the queue
 * last drained are RECUR_ERR_DEVICE_MEMORY, "most likely out of device
 * memory" (lazy allocation, opencl.c: dev_status). */
recur_status recur_cl_fail(struct recur_backend *be, cl_int code, const char *call, const char *what);

/* Check one OpenCL call's result. */
#define CL_TRY(be, err, call, what)                                                            \
    do {                                                                                       \
        cl_int cl_try_err_ = (err);                                                            \
        if (cl_try_err_ != CL_SUCCESS) return recur_cl_fail((be), cl_try_err_, (call), (what)); \
    } while (0)

/* The driver's shared object as "path, N bytes, mtime S.NS" ("unknown"
 * when not found): the library that holds the platform's ICD dispatch
 * table, for the program cache's key (program.c). */
void recur_cl_driver_library(cl_platform_id platform, char *buf, size_t len);

/* Release helpers that keep the counters right; NULL is allowed. */
void recur_cl_release_kernel(cl_kernel k);
void recur_cl_release_program(cl_program p);

/*
 * Build `source` with `options` for d's device through the binary cache,
 * and create the n kernels named in names[] (out_kernels[0..n)). `label`
 * names the program in messages ("shared kernels", "cell 'lstm'"). On a
 * build failure: RECUR_ERR_OPENCL with the build log in the message.
 */
recur_status recur_cl_build(struct recur_backend *be, struct cl_dev *d, const char *label, const char *source,
                            const char *options, const char *const *names, int n, cl_program *out_program,
                            cl_kernel *out_kernels);

#endif /* RECUR_CL_DEV_H */
