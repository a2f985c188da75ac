/*
 * count-waits.c: an LD_PRELOAD shim that counts the OpenCL calls that make
 * the host wait for a queue: clFinish, clWaitForEvents, and blocking reads,
 * writes and maps. It sits between a process and the ICD loader, so it
 * counts every such call of the process, recur's and CLBlast's alike, with
 * no help from the library. At exit it writes the count to the file named
 * by RECUR_WAITS_FILE (tests/tool/tool-test.sh, case step-waits).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <CL/cl.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_long waits;

/* The next definition of name: the ICD loader's. */
static void *next(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "count-waits: no %s after the shim: %s\n", name, dlerror());
        abort();
    }
    return f;
}

#define REAL(name) static __typeof__(name) *real_; if (!real_) real_ = (__typeof__(name) *)next(#name)

cl_int clFinish(cl_command_queue q) {
    REAL(clFinish);
    atomic_fetch_add(&waits, 1);
    return real_(q);
}

cl_int clWaitForEvents(cl_uint n, const cl_event *list) {
    REAL(clWaitForEvents);
    atomic_fetch_add(&waits, 1);
    return real_(n, list);
}

cl_int clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool blocking, size_t off, size_t size, void *ptr,
                           cl_uint n, const cl_event *wait, cl_event *ev) {
    REAL(clEnqueueReadBuffer);
    if (blocking) atomic_fetch_add(&waits, 1);
    return real_(q, m, blocking, off, size, ptr, n, wait, ev);
}

cl_int clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool blocking, size_t off, size_t size,
                            const void *ptr, cl_uint n, const cl_event *wait, cl_event *ev) {
    REAL(clEnqueueWriteBuffer);
    if (blocking) atomic_fetch_add(&waits, 1);
    return real_(q, m, blocking, off, size, ptr, n, wait, ev);
}

void *clEnqueueMapBuffer(cl_command_queue q, cl_mem m, cl_bool blocking, cl_map_flags flags, size_t off,
                         size_t size, cl_uint n, const cl_event *wait, cl_event *ev, cl_int *err) {
    REAL(clEnqueueMapBuffer);
    if (blocking) atomic_fetch_add(&waits, 1);
    return real_(q, m, blocking, flags, off, size, n, wait, ev, err);
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("RECUR_WAITS_FILE");
    if (!path || !*path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%ld\n", atomic_load(&waits));
    fclose(f);
}
