#define CL_TARGET_OPENCL_VERSION 120
#include "clblast-peer.h"

#include <CL/cl.h>
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define GEMM(ta, tb, M, Nn, K, A, ao, lda, B, bo, ldb, beta, C, co, ldc)                                     \
    do {                                                                                                     \
        CLBlastStatusCode s_ = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, M, Nn, K, 1.0f, A, ao, lda, B, bo, \
                                            ldb, beta, C, co, ldc, &q, NULL);                                 \
        if (s_ != CLBlastSuccess) {                                                                          \
            snprintf(err, errlen, "CLBlastSgemm(%d, %d, %d) failed: status %d", (int)(M), (int)(Nn), (int)(K), \
                     (int)s_);                                                                               \
            rc = -1;                                                                                         \
            goto done;                                                                                       \
        }                                                                                                    \
    } while (0)

int clblast_layer_gemms(int G, int T, int N, int I, int H, int training, int reps, double *ms, char *err,
                        unsigned errlen) {
    cl_platform_id plat;
    cl_device_id dev;
    cl_uint np = 0, nd = 0;
    if (clGetPlatformIDs(1, &plat, &np) != CL_SUCCESS || np == 0 ||
        clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, &nd) != CL_SUCCESS || nd == 0) {
        snprintf(err, errlen, "no OpenCL device");
        return -1;
    }
    cl_int e;
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
    if (!ctx) {
        snprintf(err, errlen, "clCreateContext: %d", e);
        return -1;
    }
    cl_command_queue q = clCreateCommandQueue(ctx, dev, 0, &e);
    size_t GH = (size_t)G * H, TN = (size_t)T * N;
    size_t sizes[6] = {TN * I, TN * GH, GH * (I + H), GH * (I + H), TN * H, (size_t)N * GH};
    cl_mem m[6] = {0};
    int rc = 0;
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < 6; i++) {
        m[i] = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizes[i] * sizeof(float), NULL, &e);
        if (!m[i]) {
            snprintf(err, errlen, "clCreateBuffer(%zu bytes): %d", sizes[i] * sizeof(float), e);
            rc = -1;
            goto done;
        }
        float zero = 0.0f;
        clEnqueueFillBuffer(q, m[i], &zero, sizeof zero, 0, sizes[i] * sizeof(float), 0, NULL, NULL);
    }
    cl_mem x = m[0], xw = m[1], w = m[2], dw = m[3], hs = m[4], hw = m[5];
    const CLBlastTranspose Nt = CLBlastTransposeNo, Tt = CLBlastTransposeYes;
    for (int r = -2; r < reps; r++) {
        clFinish(q);
        double t0 = now_ms();
        GEMM(Nt, Tt, TN, GH, I, x, 0, I, w, 0, I, 0.0f, xw, 0, GH);
        for (int s = 0; s < T; s++) GEMM(Nt, Nt, N, GH, H, hs, (size_t)s * N * H, H, w, GH * I, GH, 0.0f, hw, 0, GH);
        if (training) {
            for (int s = 0; s < T; s++)
                GEMM(Nt, Nt, N, H, GH, xw, (size_t)s * N * GH, GH, w, GH * I, H, 1.0f, hs, 0, H);
            GEMM(Tt, Nt, GH, I, TN, xw, 0, GH, x, 0, I, 0.0f, dw, 0, I);
            GEMM(Tt, Nt, GH, H, TN, xw, 0, GH, hs, 0, H, 0.0f, dw, GH * I, H);
            GEMM(Nt, Nt, TN, I, GH, xw, 0, GH, w, 0, I, 0.0f, x, 0, I);
        }
        clFinish(q);
        if (r >= 0) t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    *ms = t[reps / 2];
done:
    free(t);
    for (int i = 0; i < 6; i++)
        if (m[i]) clReleaseMemObject(m[i]);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return rc;
}
