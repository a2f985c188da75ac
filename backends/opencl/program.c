/*
 * program.c: building OpenCL programs through the on-disk binary cache.
 *
 * The key of a program is the text
 *     platform, platform version, device, driver version, OpenCL version,
 *     the driver library (path, size, modification time),
 *     SHA-256 and length of the source, build options
 * and its entry a file named after the key's hash (cache.c). The driver
 * library tells apart two builds of a driver that report the same version
 * strings: it is the shared object that holds the platform's ICD dispatch
 * table (the first field of every ICD object, by the Khronos ICD
 * convention), found with dladdr(); its size and mtime stand in for a hash
 * of its contents (hashing a 100 MB driver at every context would cost more
 * than the build the cache saves). Where dladdr() finds nothing (no ICD
 * loader, a static driver) the key says "unknown" and rests on the version
 * strings alone. A cached
 * binary that the file check passes is still only a candidate: if the
 * driver refuses it (clCreateProgramWithBinary, clBuildProgram or a kernel
 * missing), it is dropped and the source is built and stored again. A cache
 * that cannot be read or written is reported at debug level and never fails
 * the build.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cl-dev.h"

void recur_cl_release_kernel(cl_kernel k) {
    if (!k) return;
    clReleaseKernel(k);
    CL_COUNT(kernels, -1);
}

void recur_cl_release_program(cl_program p) {
    if (!p) return;
    clReleaseProgram(p);
    CL_COUNT(programs, -1);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

void recur_cl_driver_library(cl_platform_id platform, char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    if (!platform) return;
    void *const *dispatch = *(void *const *const *)platform; /* KHRicdVendorDispatch, first field */
    Dl_info info;
    struct stat sb;
    /* entry 1 of the table is the driver's clGetPlatformInfo */
    if (!dispatch || !dispatch[1] || !dladdr(dispatch[1], &info) || !info.dli_fname) return;
    if (stat(info.dli_fname, &sb) != 0) {
        snprintf(buf, len, "%s", info.dli_fname);
        return;
    }
    snprintf(buf, len, "%s, %lld bytes, mtime %lld.%09ld", info.dli_fname, (long long)sb.st_size,
             (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
}

static void make_key(const struct cl_dev *d, const char *source, const char *options, char *key, size_t len) {
    char hex[2 * RECUR_SHA256_LEN + 1];
    size_t slen = strlen(source);
    recur_sha256_hex(source, slen, hex);
    snprintf(key, len,
             "recur OpenCL program\nplatform: %s\nplatform version: %s\ndevice: %s\ndriver: %s\nversion: %s\n"
             "driver library: %s\nsource: sha256 %s, %zu bytes\noptions: %s\n",
             d->platform_name, d->platform_version, d->device_name, d->driver, d->version, d->library, hex, slen,
             options);
}

/* Create the kernels of a built program; on failure release those made. */
static cl_int make_kernels(cl_program p, const char *const *names, int n, cl_kernel *out, int *failed) {
    for (int i = 0; i < n; i++) {
        cl_int err;
        out[i] = clCreateKernel(p, names[i], &err);
        if (err != CL_SUCCESS || !out[i]) {
            if (out[i]) clReleaseKernel(out[i]);
            out[i] = NULL;
            for (int k = 0; k < i; k++) recur_cl_release_kernel(out[k]), out[k] = NULL;
            *failed = i;
            return err != CL_SUCCESS ? err : CL_INVALID_KERNEL;
        }
        CL_COUNT(kernels, 1);
    }
    return CL_SUCCESS;
}

/* Try the cached binary: 1 on success (program and kernels made). */
static int from_cache(struct cl_dev *d, const char *label, const char *dir, const char *key, const char *options,
                      const char *const *names, int n, cl_program *out_p, cl_kernel *out_k) {
    char why[4200];
    size_t size = 0;
    unsigned char *bin = recur_cl_cache_load(dir, key, &size, why, sizeof why);
    if (!bin) {
        if (!strstr(why, "no entry")) {
            CL_COUNT(cache_rejects, 1);
            recur_log(RECUR_LOG_DEBUG, "opencl: %s: cache entry ignored, rebuilding: %s", label, why);
        } else {
            recur_log(RECUR_LOG_DEBUG, "opencl: %s: not cached yet (%s)", label, why);
        }
        return 0;
    }
    double t0 = now_ms();
    cl_int err, bin_status = CL_SUCCESS;
    const unsigned char *bins[1] = {bin};
    cl_program p = clCreateProgramWithBinary(d->context, 1, &d->device, &size, bins, &bin_status, &err);
    free(bin);
    const char *stage = "clCreateProgramWithBinary";
    if (err == CL_SUCCESS && bin_status != CL_SUCCESS) err = bin_status;
    if (err == CL_SUCCESS) {
        CL_COUNT(programs, 1);
        stage = "clBuildProgram";
        err = clBuildProgram(p, 1, &d->device, options, NULL, NULL);
        if (err == CL_SUCCESS) {
            int failed = 0;
            stage = "clCreateKernel";
            err = make_kernels(p, names, n, out_k, &failed);
        }
    } else if (p) {
        clReleaseProgram(p);
        p = NULL;
    }
    if (err != CL_SUCCESS) {
        char buf[32];
        recur_cl_release_program(p);
        CL_COUNT(cache_rejects, 1);
        recur_log(RECUR_LOG_DEBUG, "opencl: %s: the driver refused the cached binary (%s: %s), rebuilding", label,
                  stage, recur_cl_code_str(err, buf, sizeof buf));
        return 0;
    }
    CL_COUNT(cache_loads, 1);
    recur_log(RECUR_LOG_DEBUG, "opencl: %s: loaded from the program cache (%s, %zu bytes, %.1f ms)", label, why, size,
              now_ms() - t0);
    *out_p = p;
    return 1;
}

/* Store the program's binary; failures are only logged. */
static void store(cl_program p, const char *label, const char *dir, const char *key) {
    size_t size = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0) {
        recur_log(RECUR_LOG_DEBUG, "opencl: %s: no program binary to cache", label);
        return;
    }
    unsigned char *bin = malloc(size);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    char why[4200];
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) != CL_SUCCESS) {
        recur_log(RECUR_LOG_DEBUG, "opencl: %s: clGetProgramInfo(CL_PROGRAM_BINARIES) failed; not cached", label);
    } else if (recur_cl_cache_store(dir, key, bin, size, why, sizeof why) != 0) {
        recur_log(RECUR_LOG_DEBUG, "opencl: %s: program cache not written: %s", label, why);
    } else {
        CL_COUNT(cache_stores, 1);
        recur_log(RECUR_LOG_DEBUG, "opencl: %s: cached %zu bytes in %s", label, size, why);
    }
    free(bin);
}

/* RECUR_ERR_OPENCL with as much of the build log as the message holds. */
static recur_status build_failed(struct recur_backend *be, struct cl_dev *d, cl_program p, cl_int err,
                                 const char *label, const char *options) {
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(p, d->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) == CL_SUCCESS && len) {
        log = malloc(len + 1);
        if (log && clGetProgramBuildInfo(p, d->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) != CL_SUCCESS) log[0] = 0;
        if (log) log[len] = 0;
    }
    /* drop leading blank lines and trailing whitespace */
    const char *text = log ? log : "";
    while (*text == '\n' || *text == '\r' || *text == ' ') text++;
    size_t tl = strlen(text);
    while (tl && (text[tl - 1] == '\n' || text[tl - 1] == ' ' || text[tl - 1] == '\r')) tl--;
    if (tl) recur_log(RECUR_LOG_DEBUG, "opencl: %s: build log:\n%.*s", label, (int)tl, text);
    char buf[32];
    const int room = 640; /* what fits in a message after the rest */
    recur_status st = recur_err(be->ctx, RECUR_ERR_OPENCL, "clBuildProgram(%s, \"%s\"): %s; build log: %.*s%s", label,
                                options, recur_cl_code_str(err, buf, sizeof buf), (int)(tl < (size_t)room ? tl : (size_t)room),
                                tl ? text : "(empty)", tl > (size_t)room ? " [...]" : "");
    free(log);
    return st;
}

recur_status recur_cl_build(struct recur_backend *be, struct cl_dev *d, const char *label, const char *source,
                            const char *options, const char *const *names, int n, cl_program *out_program,
                            cl_kernel *out_kernels) {
    *out_program = NULL;
    for (int i = 0; i < n; i++) out_kernels[i] = NULL;
    char key[2048], dir[4096];
    make_key(d, source, options, key, sizeof key);
    int have_dir = recur_cl_cache_dir(dir, sizeof dir);
    if (!have_dir) recur_log(RECUR_LOG_DEBUG, "opencl: %s: no cache directory (RECUR_CACHE_DIR, XDG_CACHE_HOME and HOME unset)", label);
    if (have_dir && from_cache(d, label, dir, key, options, names, n, out_program, out_kernels)) return RECUR_OK;

    double t0 = now_ms();
    cl_int err;
    cl_program p = clCreateProgramWithSource(d->context, 1, &source, NULL, &err);
    CL_TRY(be, err, "clCreateProgramWithSource", label);
    CL_COUNT(programs, 1);
    CL_COUNT(builds, 1);
    err = clBuildProgram(p, 1, &d->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        recur_status st = build_failed(be, d, p, err, label, options);
        recur_cl_release_program(p);
        return st;
    }
    int failed = 0;
    err = make_kernels(p, names, n, out_kernels, &failed);
    if (err != CL_SUCCESS) {
        recur_cl_release_program(p);
        return recur_cl_fail(be, err, "clCreateKernel", names[failed]);
    }
    recur_log(RECUR_LOG_DEBUG, "opencl: %s: built from source in %.1f ms", label, now_ms() - t0);
    if (have_dir) store(p, label, dir, key);
    *out_program = p;
    return RECUR_OK;
}
