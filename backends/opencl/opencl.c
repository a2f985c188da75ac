/*
 * opencl.c: the OpenCL backend. Through the ICD loader only (libOpenCL),
 * OpenCL 1.2, GEMM by CLBlast on recur's own queue (bf16 and f16 products emulated
 * on every device: operands rounded into scratch copies, then CLBlastSgemm).
 *
 * One cl_context and one in-order queue per recur context. Buffers are
 * cl_mem addressed by byte offsets (no sub-buffers): kernels take
 * (buffer, offset in floats) pairs. Everything is enqueued without waiting
 * except reads, write() (blocking: the engine's host pointers belong to the
 * caller, who may free them as soon as a call returns) and sync(), so there
 * is no host synchronisation inside the engine's time loop; write_async()
 * does not wait either (its host memory lives until the next sync).
 *
 * Launch shapes respect CL_DEVICE_MAX_WORK_GROUP_SIZE, CL_KERNEL_WORK_GROUP_SIZE
 * and CL_DEVICE_MAX_WORK_ITEM_SIZES; global sizes are rounded up (the
 * kernels test their bounds); rows beyond what one launch may hold (65535
 * work-groups in dimension 1, NVIDIA's limit) go into further launches with
 * advanced row offsets. Every clEnqueue* and clSetKernelArg is checked.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl-dev.h"

#include <clblast_c.h>

/* The embedded sources (kernels/embed.py, backends/opencl/meson.build). */
extern const char recur_cl_shared_source[];
extern const char recur_cl_cell_header[];

#define CL_STD "-cl-std=CL1.2"

/* snprintf for text that may be cut (names, details): cutting is intended. */
static void fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, len, f, ap);
    va_end(ap);
}

static void fmt_bytes(char *buf, size_t len, unsigned long long b) {
    if (b >= (1ull << 30))
        fmt(buf, len, "%.1f GiB", (double)b / (double)(1ull << 30));
    else
        fmt(buf, len, "%.0f MiB", (double)b / (double)(1ull << 20));
}

/* ---- counters ---- */

struct cl_counters recur_cl_counters;

void recur_cl_stats_get(struct recur_cl_stats *o) {
    struct cl_counters *c = &recur_cl_counters;
    o->contexts = atomic_load(&c->contexts);
    o->queues = atomic_load(&c->queues);
    o->programs = atomic_load(&c->programs);
    o->kernels = atomic_load(&c->kernels);
    o->buffers = atomic_load(&c->buffers);
    o->builds = atomic_load(&c->builds);
    o->cache_loads = atomic_load(&c->cache_loads);
    o->cache_stores = atomic_load(&c->cache_stores);
    o->cache_rejects = atomic_load(&c->cache_rejects);
    o->leaked_refs = atomic_load(&c->leaked_refs);
    o->launches_split = atomic_load(&c->launches_split);
    o->clblast_clears = atomic_load(&c->clblast_clears);
    o->host_waits = atomic_load(&c->host_waits);
}

/* Floats per launch of the 1-D kernels, far below any device's limit
 * (d->chunk: this, or less in a test build's RECUR_CL_TEST_LIMITS). */
#define ADD_CHUNK ((size_t)1 << 28)

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

#define DEFAULT_MAX_GROUPS 65535
static atomic_size_t max_groups_y = DEFAULT_MAX_GROUPS;

void recur_cl_debug_max_groups(size_t groups) {
    atomic_store(&max_groups_y, groups ? groups : (size_t)DEFAULT_MAX_GROUPS);
}

/* ---- errors ---- */

recur_status recur_cl_status(cl_int code) {
    switch (code) {
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_INVALID_BUFFER_SIZE:
        return RECUR_ERR_DEVICE_MEMORY;
    case CL_OUT_OF_HOST_MEMORY:
        return RECUR_ERR_NO_MEMORY;
    default:
        return RECUR_ERR_OPENCL;
    }
}

/*
 * The status and a hint for a failed call of an open context. Drivers that
 * allocate lazily (NVIDIA's) report a failed allocation not at
 * clCreateBuffer but as CL_OUT_OF_RESOURCES (or
 * CL_MEM_OBJECT_ALLOCATION_FAILURE) at the first enqueue or clFinish that
 * touches the memory; a kernel fault reads the same. What recur can know:
 * whether buffers were created since the queue last drained (a clFinish or
 * a blocking read that succeeded). If so, the error follows an allocation
 * and is RECUR_ERR_DEVICE_MEMORY, "most likely out of device memory"; if
 * not, RECUR_ERR_OPENCL that names both causes.
 */
static recur_status dev_status(const struct cl_dev *d, cl_int code, char *hint, size_t len) {
    hint[0] = 0;
    recur_status st = recur_cl_status(code);
    if (!d || (code != CL_OUT_OF_RESOURCES && code != CL_MEM_OBJECT_ALLOCATION_FAILURE)) return st;
    if (d->fresh_buffers) {
        char b[32];
        fmt_bytes(b, sizeof b, d->fresh_bytes);
        fmt(hint, len,
            "; most likely out of device memory: %ld buffer%s (%s) created since the queue last drained, "
            "which a driver may allocate only now (%s has %s in all)",
            d->fresh_buffers, d->fresh_buffers == 1 ? "" : "s", b, d->device_name, d->global_text);
        return RECUR_ERR_DEVICE_MEMORY;
    }
    if (code == CL_OUT_OF_RESOURCES)
        fmt(hint, len, "; the device ran out of resources (memory, or a kernel fault the driver reports so)");
    return st;
}

recur_status recur_cl_fail(struct recur_backend *be, cl_int code, const char *call, const char *what) {
    char buf[32], hint[320];
    recur_status st = dev_status(be->context, code, hint, sizeof hint);
    return recur_err(be->ctx, st, "%s(%s): %s%s", call, what, recur_cl_code_str(code, buf, sizeof buf), hint);
}

/* ---- device enumeration ---- */

struct enum_dev {
    cl_platform_id platform;
    cl_device_id device;
    char pname[128], dname[128];
};

struct enum_list {
    size_t n, n_platforms;
    struct enum_dev *devs;
    struct recur_cl_entry *entries;
    cl_int err; /* of clGetPlatformIDs, for messages */
};

/* Copy an info string, trimmed (some drivers pad names with spaces). */
static void trimmed(char *dst, size_t len, const char *src) {
    while (isspace((unsigned char)*src)) src++;
    fmt(dst, len, "%s", src);
    size_t n = strlen(dst);
    while (n && isspace((unsigned char)dst[n - 1])) dst[--n] = 0;
}

static void platform_str(cl_platform_id p, cl_platform_info what, char *dst, size_t len) {
    char raw[256] = "";
    if (clGetPlatformInfo(p, what, sizeof raw - 1, raw, NULL) != CL_SUCCESS) raw[0] = 0;
    raw[sizeof raw - 1] = 0;
    trimmed(dst, len, raw);
}

static void device_str(cl_device_id d, cl_device_info what, char *dst, size_t len) {
    char raw[256] = "";
    if (clGetDeviceInfo(d, what, sizeof raw - 1, raw, NULL) != CL_SUCCESS) raw[0] = 0;
    raw[sizeof raw - 1] = 0;
    trimmed(dst, len, raw);
}

static unsigned device_type(cl_device_id d) {
    cl_device_type t = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL) != CL_SUCCESS) t = 0;
    unsigned r = 0;
    if (t & CL_DEVICE_TYPE_CPU) r |= RECUR_CL_TYPE_CPU;
    if (t & CL_DEVICE_TYPE_GPU) r |= RECUR_CL_TYPE_GPU;
    if (t & CL_DEVICE_TYPE_ACCELERATOR) r |= RECUR_CL_TYPE_ACCELERATOR;
    return r ? r : RECUR_CL_TYPE_OTHER;
}

static void list_free(struct enum_list *l) {
    free(l->devs);
    free(l->entries);
    memset(l, 0, sizeof *l);
}

/* Every platform and device; an empty list when there is none. */
static int enumerate(struct enum_list *l) {
    memset(l, 0, sizeof *l);
    cl_uint np = 0;
    l->err = clGetPlatformIDs(0, NULL, &np);
    if (l->err != CL_SUCCESS || np == 0) return 0;
    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats) return -1;
    if ((l->err = clGetPlatformIDs(np, plats, &np)) != CL_SUCCESS) {
        free(plats);
        return 0;
    }
    l->n_platforms = np;
    size_t cap = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0) continue;
        cl_device_id *ids = calloc(nd, sizeof *ids);
        if (!ids || clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, &nd) != CL_SUCCESS) {
            free(ids);
            continue;
        }
        if (l->n + nd > cap) {
            size_t ncap = (l->n + nd) * 2;
            struct enum_dev *nd_ = realloc(l->devs, ncap * sizeof *nd_);
            struct recur_cl_entry *ne = realloc(l->entries, ncap * sizeof *ne);
            if (nd_) l->devs = nd_;
            if (ne) l->entries = ne;
            if (!nd_ || !ne) {
                free(ids);
                free(plats);
                list_free(l);
                return -1;
            }
            cap = ncap;
        }
        char pname[128];
        platform_str(plats[p], CL_PLATFORM_NAME, pname, sizeof pname);
        for (cl_uint i = 0; i < nd; i++) {
            struct enum_dev *e = &l->devs[l->n];
            e->platform = plats[p];
            e->device = ids[i];
            fmt(e->pname, sizeof e->pname, "%s", pname);
            device_str(ids[i], CL_DEVICE_NAME, e->dname, sizeof e->dname);
            l->entries[l->n] = (struct recur_cl_entry){p, i, NULL, NULL, device_type(ids[i])};
            l->n++;
        }
        free(ids);
    }
    free(plats);
    for (size_t i = 0; i < l->n; i++) {
        l->entries[i].platform_name = l->devs[i].pname;
        l->entries[i].device_name = l->devs[i].dname;
    }
    return 0;
}

/* "3.0" from "OpenCL 3.0 PoCL ..."; major.minor as numbers too. */
static void cl_version(const char *full, char *buf, size_t len, int *major, int *minor) {
    *major = *minor = 0;
    if (sscanf(full, "OpenCL %d.%d", major, minor) == 2)
        fmt(buf, len, "%d.%d", *major, *minor);
    else
        fmt(buf, len, "%s", full);
}

static void describe(const struct enum_dev *e, const struct recur_cl_entry *en, recur_device_info *out) {
    memset(out, 0, sizeof *out);
    recur_cl_selector(en, out->selector, sizeof out->selector);
    fmt(out->backend, sizeof out->backend, "opencl");
    fmt(out->name, sizeof out->name, "%s", e->dname);
    char full[128], clc[128], ver[64], driver[64], gm[32], ma[32];
    int major, minor, cmaj, cmin;
    device_str(e->device, CL_DEVICE_VERSION, full, sizeof full);
    device_str(e->device, CL_DEVICE_OPENCL_C_VERSION, clc, sizeof clc);
    device_str(e->device, CL_DRIVER_VERSION, driver, sizeof driver);
    cl_version(full, ver, sizeof ver, &major, &minor);
    if (sscanf(clc, "OpenCL C %d.%d", &cmaj, &cmin) == 2) fmt(clc, sizeof clc, "%d.%d", cmaj, cmin);
    cl_uint cu = 0;
    cl_ulong global = 0, alloc = 0;
    clGetDeviceInfo(e->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(e->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL);
    clGetDeviceInfo(e->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    fmt_bytes(gm, sizeof gm, global);
    fmt_bytes(ma, sizeof ma, alloc);
    fmt(out->detail, sizeof out->detail, "%s, OpenCL %s (C %s), driver %s, %u CUs, %s, max alloc %s, platform %s",
             recur_cl_type_name(en->type), ver, clc, driver, cu, gm, ma, e->pname);
}

static void cl_devices(recur_device_info *out, size_t cap, size_t *count) {
    struct enum_list l;
    if (enumerate(&l) != 0) return;
    for (size_t i = 0; i < l.n; i++) {
        if (*count < cap) describe(&l.devs[i], &l.entries[i], &out[*count]);
        ++*count;
    }
    list_free(&l);
}

static int cl_preferred(void) {
    struct enum_list l;
    int gpu = 0;
    if (enumerate(&l) != 0) return 0;
    for (size_t i = 0; i < l.n; i++) /* Oclgrind calls itself a GPU: never the default */
        gpu |= (l.entries[i].type & RECUR_CL_TYPE_GPU) && !recur_cl_simulator(l.entries[i].platform_name);
    list_free(&l);
    return gpu;
}

/* ---- test hooks (-Dtest_hooks=true: test builds only, never a release) ---- */

#ifdef RECUR_CL_TEST_HOOKS
int recur_cl_test_hooks(void) { return 1; }

/*
 * RECUR_CL_TEST_LIMITS="wg=64,items=64,alloc=BYTES,groups=G,chunk=FLOATS":
 * cap the device's limits to GPU-like values so that PoCL runs the paths a
 * GPU takes: the work-group size (CL_DEVICE_MAX_WORK_GROUP_SIZE), the
 * work-items per dimension, the largest allocation
 * (CL_DEVICE_MAX_MEM_ALLOC_SIZE), the work-groups per launch in dimension 1
 * (recur_cl_debug_max_groups) and the floats per 1-D launch. A bad entry is
 * logged and ignored (test builds only).
 */
static void test_limits(struct cl_dev *d) {
    const char *spec = getenv("RECUR_CL_TEST_LIMITS");
    if (!spec || !*spec) return;
    char buf[256];
    fmt(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end = NULL;
        unsigned long long v = eq ? strtoull(eq + 1, &end, 10) : 0;
        if (!eq || !end || *end || v == 0) {
            recur_log(RECUR_LOG_ERROR, "opencl: RECUR_CL_TEST_LIMITS: bad entry '%s' ignored", tok);
            continue;
        }
        *eq = 0;
        if (strcmp(tok, "wg") == 0) {
            d->max_wg = min_sz(d->max_wg, (size_t)v);
        } else if (strcmp(tok, "items") == 0) {
            for (int i = 0; i < 3; i++) d->max_items[i] = min_sz(d->max_items[i], (size_t)v);
        } else if (strcmp(tok, "alloc") == 0) {
            if (v < d->max_alloc) d->max_alloc = v;
        } else if (strcmp(tok, "groups") == 0) {
            recur_cl_debug_max_groups((size_t)v);
        } else if (strcmp(tok, "chunk") == 0) {
            d->chunk = v < 4 ? 4 : (size_t)v / 4 * 4; /* dropout draws 4 floats a work-item */
        } else {
            recur_log(RECUR_LOG_ERROR, "opencl: RECUR_CL_TEST_LIMITS: unknown limit '%s' ignored", tok);
        }
    }
    recur_log(RECUR_LOG_DEBUG, "opencl: test limits: work-group %zu, items %zu, alloc %llu, chunk %zu", d->max_wg,
              d->max_items[0], (unsigned long long)d->max_alloc, d->chunk);
}

/* RECUR_CL_TEST_POISON=1: every new buffer is filled with 0xff bytes (a NaN
 * in every float, -1 in every int32), so a kernel that reads memory nobody
 * wrote gives NaN and fails its test. */
static cl_int test_poison(cl_command_queue q, cl_mem m, size_t bytes) {
    const char *v = getenv("RECUR_CL_TEST_POISON");
    if (!v || strcmp(v, "1") != 0) return CL_SUCCESS;
    const unsigned char ff = 0xff;
    return clEnqueueFillBuffer(q, m, &ff, 1, 0, bytes, 0, NULL, NULL);
}
#else
int recur_cl_test_hooks(void) { return 0; }
#endif

/* ---- open / close ---- */

static void CL_CALLBACK notify(const char *errinfo, const void *private_info, size_t cb, void *user) {
    (void)private_info;
    (void)cb;
    (void)user;
    recur_log(RECUR_LOG_DEBUG, "opencl: driver: %s", errinfo);
}

/*
 * CLBlast keeps a compiled program per (context, device, routine) in a
 * process-wide cache, and each holds its context. Its only C entry point to
 * drop them, CLBlastClearCache(), empties the cache of every context, so
 * each context still open would compile CLBlast's kernels again at its next
 * GEMM (seconds on a GPU). The trade-off: the cache is cleared only when the
 * last recur context that used CLBlast closes. Until then a closed
 * context's CLBlast programs (and with them its cl_context, not its
 * buffers) stay alive: memory that grows with the contexts opened and
 * closed while another one lives, freed when the last one closes.
 */
static pthread_mutex_t clblast_lock = PTHREAD_MUTEX_INITIALIZER;
static long clblast_users; /* open contexts that ran a CLBlast GEMM */

static void clblast_acquire(struct cl_dev *d) {
    if (d->used_clblast) return;
    pthread_mutex_lock(&clblast_lock);
    clblast_users++;
    pthread_mutex_unlock(&clblast_lock);
    d->used_clblast = 1;
}

/* Drop d's claim; clear CLBlast's cache when it was the last. 1 if cleared. */
static int clblast_release(void) {
    pthread_mutex_lock(&clblast_lock);
    int last = --clblast_users == 0;
    if (last) {
        CLBlastClearCache();
        CL_COUNT(clblast_clears, 1);
    }
    pthread_mutex_unlock(&clblast_lock);
    return last;
}

static void release_dev(struct cl_dev *d) {
    if (!d) return;
    if (d->queue) clFinish(d->queue);
    recur_cl_prof_report(d->prof, d->device_name);
    d->prof = NULL;
    for (int i = 0; i < 2; i++)
        if (d->scratch[i]) {
            clReleaseMemObject(d->scratch[i]);
            CL_COUNT(buffers, -1);
        }
    for (int i = 0; i < N_SHARED; i++) recur_cl_release_kernel(d->k[i]);
    recur_cl_release_program(d->shared);
    int last_clblast = d->used_clblast && clblast_release();
    if (d->queue) {
        clReleaseCommandQueue(d->queue);
        CL_COUNT(queues, -1);
    }
    if (d->context) {
        /* Ours should be the last reference now. A driver may drop those of
         * its finished commands a little later (PoCL does, from its worker
         * threads), so a higher count is given 50 ms to settle before it is
         * counted as a reference someone kept (the leak test's check). */
        cl_uint refs = 0;
        for (int tries = 0; tries < 50 && (last_clblast || !d->used_clblast); tries++) {
            if (clGetContextInfo(d->context, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL) != CL_SUCCESS ||
                refs <= 1)
                break;
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
        if (refs > 1 && (last_clblast || !d->used_clblast)) {
            CL_COUNT(leaked_refs, 1);
            recur_log(RECUR_LOG_DEBUG, "opencl: closing a context that %u other references still hold", refs - 1);
        }
        clReleaseContext(d->context);
        CL_COUNT(contexts, -1);
    }
    free(d);
}

static recur_status cl_open(struct recur_backend *be, const char *spec) {
    struct enum_list l;
    RETURN_IF(enumerate(&l) != 0, be->ctx, RECUR_ERR_NO_MEMORY, "opencl: out of memory listing devices");
    char msg[RECUR_MSG_MAX];
    size_t pick = 0;
    recur_status st = recur_cl_select(l.entries, l.n, l.n_platforms, spec, &pick, msg, sizeof msg);
    if (st != RECUR_OK) {
        char buf[32];
        if (l.n == 0 && l.err != CL_SUCCESS)
            recur_err(be->ctx, st, "%s (clGetPlatformIDs: %s)", msg, recur_cl_code_str(l.err, buf, sizeof buf));
        else
            recur_err(be->ctx, st, "%s", msg);
        list_free(&l);
        return st;
    }
    struct enum_dev *e = &l.devs[pick];
    struct recur_cl_entry en = l.entries[pick];
    recur_device_info info;
    describe(e, &en, &info);

    struct cl_dev *d = calloc(1, sizeof *d);
    if (!d) {
        list_free(&l);
        return recur_err(be->ctx, RECUR_ERR_NO_MEMORY, "opencl: out of memory");
    }
    d->platform = e->platform;
    d->device = e->device;
    fmt(d->platform_name, sizeof d->platform_name, "%s", e->pname);
    fmt(d->device_name, sizeof d->device_name, "%s", e->dname);
    list_free(&l);
    device_str(d->device, CL_DRIVER_VERSION, d->driver, sizeof d->driver);
    device_str(d->device, CL_DEVICE_VERSION, d->version, sizeof d->version);
    platform_str(d->platform, CL_PLATFORM_VERSION, d->platform_version, sizeof d->platform_version);
    recur_cl_driver_library(d->platform, d->library, sizeof d->library);

    /* What recur needs: OpenCL 1.2, a compiler, an available device. */
    char ver[64];
    int major, minor;
    cl_version(d->version, ver, sizeof ver, &major, &minor);
    cl_bool avail = CL_FALSE, compiler = CL_FALSE;
    clGetDeviceInfo(d->device, CL_DEVICE_AVAILABLE, sizeof avail, &avail, NULL);
    clGetDeviceInfo(d->device, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
    GOTO_IF(major * 10 + minor < 12, be->ctx, st, RECUR_ERR_UNSUPPORTED, fail,
            "%s (%s): OpenCL %s; recur needs OpenCL 1.2", info.selector, d->device_name, ver);
    GOTO_IF(!avail, be->ctx, st, RECUR_ERR_UNSUPPORTED, fail, "%s (%s): the device is not available",
            info.selector, d->device_name);
    GOTO_IF(!compiler, be->ctx, st, RECUR_ERR_UNSUPPORTED, fail, "%s (%s): the driver has no OpenCL C compiler",
            info.selector, d->device_name);

    clGetDeviceInfo(d->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof d->max_alloc, &d->max_alloc, NULL);
    clGetDeviceInfo(d->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof d->global_mem, &d->global_mem, NULL);
    fmt_bytes(d->global_text, sizeof d->global_text, d->global_mem);
    clGetDeviceInfo(d->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof d->max_wg, &d->max_wg, NULL);
    d->max_items[0] = d->max_items[1] = d->max_items[2] = 1;
    cl_uint dims = 0;
    size_t items[64];
    if (clGetDeviceInfo(d->device, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS, sizeof dims, &dims, NULL) == CL_SUCCESS &&
        dims >= 2 && dims <= 64 &&
        clGetDeviceInfo(d->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, dims * sizeof(size_t), items, NULL) == CL_SUCCESS)
        for (cl_uint i = 0; i < 3 && i < dims; i++) d->max_items[i] = items[i] ? items[i] : 1;
    if (d->max_wg == 0) d->max_wg = 1;
    d->chunk = ADD_CHUNK;
#ifdef RECUR_CL_TEST_HOOKS
    test_limits(d);
#endif

    /* RECUR_CL_PROFILE before anything is made on the device: a bad value leaves nothing behind */
    int prof;
    char why[200];
    if ((st = recur_cl_prof_env(&prof, why, sizeof why)) != RECUR_OK) {
        recur_err(be->ctx, st, "%s", why);
        goto fail;
    }
    if (prof && !(d->prof = recur_cl_prof_new())) {
        st = recur_err(be->ctx, RECUR_ERR_NO_MEMORY, "RECUR_CL_PROFILE: out of memory for the profile");
        goto fail;
    }
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
    d->context = clCreateContext(props, 1, &d->device, notify, NULL, &err);
    if (err != CL_SUCCESS || !d->context) {
        d->context = NULL;
        st = recur_cl_fail(be, err, "clCreateContext", d->device_name);
        goto fail;
    }
    CL_COUNT(contexts, 1);
    d->queue = clCreateCommandQueue(d->context, d->device, prof ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    if (err != CL_SUCCESS || !d->queue) {
        d->queue = NULL;
        st = recur_cl_fail(be, err, "clCreateCommandQueue", d->device_name);
        goto fail;
    }
    CL_COUNT(queues, 1);

    static const char *const names[N_SHARED] = {"recur_rows_set", "recur_colsum",    "recur_add",  "recur_transpose",
                                                 "recur_gather",   "recur_scatter",   "recur_dropout",
                                                 "recur_index_add", "recur_xent",     "recur_mse",  "recur_sum",
                                                 "recur_sgd",      "recur_adam",      "recur_scale",
                                                 "recur_zoneout",  "recur_round",
                                                 "recur_to_bf16",  "recur_from_bf16"};
    st = recur_cl_build(be, d, "shared kernels", recur_cl_shared_source, CL_STD, names, N_SHARED, &d->shared, d->k);
    if (st != RECUR_OK) goto fail;
    for (int i = 0; i < N_SHARED; i++) {
        d->wg[i] = 0;
        err = clGetKernelWorkGroupInfo(d->k[i], d->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof(size_t), &d->wg[i], NULL);
        if (err != CL_SUCCESS) {
            st = recur_cl_fail(be, err, "clGetKernelWorkGroupInfo", names[i]);
            goto fail;
        }
    }

    be->context = d;
    be->info = info;
    return RECUR_OK;
fail:
    release_dev(d);
    return st;
}

static void cl_close(struct recur_backend *be) {
    release_dev(be->context);
    be->context = NULL;
}

int recur_cl_limits_get(const struct recur_backend *be, struct recur_cl_limits *out) {
    if (!be || be->iface != &recur_opencl_backend || !be->context) return -1;
    const struct cl_dev *d = be->context;
    out->max_alloc = d->max_alloc;
    out->global_mem = d->global_mem;
    out->max_work_group = d->max_wg;
    for (int i = 0; i < 3; i++) out->max_items[i] = d->max_items[i];
    return 0;
}

/* ---- buffers ---- */

#define DEV(be) ((struct cl_dev *)(be)->context)
#define MEM(m) ((cl_mem)(m).buf)

static recur_status cl_alloc(struct recur_backend *be, size_t bytes, void **buf) {
    struct cl_dev *d = DEV(be);
    if ((cl_ulong)bytes > d->max_alloc) {
        char want[32], lim[32];
        fmt_bytes(want, sizeof want, bytes);
        fmt_bytes(lim, sizeof lim, d->max_alloc);
        return recur_err(be->ctx, RECUR_ERR_DEVICE_MEMORY,
                         "clCreateBuffer: %zu bytes (%s) exceed the largest allocation of %s, "
                         "CL_DEVICE_MAX_MEM_ALLOC_SIZE %llu bytes (%s)",
                         bytes, want, d->device_name, (unsigned long long)d->max_alloc, lim);
    }
    cl_int err;
    cl_mem m = clCreateBuffer(d->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS || !m) {
        char what[64];
        fmt(what, sizeof what, "%zu bytes", bytes);
        return recur_cl_fail(be, err != CL_SUCCESS ? err : CL_MEM_OBJECT_ALLOCATION_FAILURE, "clCreateBuffer", what);
    }
    CL_COUNT(buffers, 1);
#ifdef RECUR_CL_TEST_HOOKS
    if ((err = test_poison(d->queue, m, bytes)) != CL_SUCCESS) {
        clReleaseMemObject(m);
        CL_COUNT(buffers, -1);
        return recur_cl_fail(be, err, "clEnqueueFillBuffer", "poison");
    }
#endif
    d->fresh_buffers++;
    d->fresh_bytes += bytes;
    *buf = m;
    return RECUR_OK;
}

/* Everything enqueued so far ran: the buffers made before it were usable. */
static void drained(struct cl_dev *d) {
    d->fresh_buffers = 0;
    d->fresh_bytes = 0;
    recur_cl_prof_drain(d->prof); /* every command before has ended: their times are there */
}

static void cl_free(struct recur_backend *be, void *buf) {
    (void)be;
    if (!buf) return;
    clReleaseMemObject((cl_mem)buf);
    CL_COUNT(buffers, -1);
}

static recur_status write_buffer(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes,
                                 cl_bool blocking) {
    char what[64];
    fmt(what, sizeof what, "%zu bytes at %zu", bytes, dst.off);
    if (blocking) CL_COUNT(host_waits, 1);
    CL_TRY(be, clEnqueueWriteBuffer(DEV(be)->queue, MEM(dst), blocking, dst.off, bytes, src, 0, NULL, NULL),
           "clEnqueueWriteBuffer", what);
    return RECUR_OK;
}

/* Blocking: the engine's host pointers belong to the caller. */
static recur_status cl_write(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes) {
    return write_buffer(be, dst, src, bytes, CL_TRUE);
}

/* Not blocking: src lives until the next sync or read (backend-impl.h). */
static recur_status cl_write_async(struct recur_backend *be, struct recur_mem dst, const void *src, size_t bytes) {
    return write_buffer(be, dst, src, bytes, CL_FALSE);
}

static recur_status cl_read(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes) {
    char what[64];
    fmt(what, sizeof what, "%zu bytes at %zu", bytes, src.off);
    CL_COUNT(host_waits, 1);
    CL_TRY(be, clEnqueueReadBuffer(DEV(be)->queue, MEM(src), CL_TRUE, src.off, bytes, dst, 0, NULL, NULL),
           "clEnqueueReadBuffer", what);
    drained(DEV(be));
    return RECUR_OK;
}

/* Not blocking: an event when asked for, and the queue flushed so that the
 * device runs what came before while the host goes on. */
static recur_status cl_read_async(struct recur_backend *be, void *dst, struct recur_mem src, size_t bytes,
                                  void **ticket) {
    char what[64];
    fmt(what, sizeof what, "%zu bytes at %zu", bytes, src.off);
    cl_event ev = NULL;
    CL_TRY(be, clEnqueueReadBuffer(DEV(be)->queue, MEM(src), CL_FALSE, src.off, bytes, dst, 0, NULL, ticket ? &ev : NULL),
           "clEnqueueReadBuffer", what);
    if (ticket) *ticket = ev;
    cl_int err = clFlush(DEV(be)->queue);
    if (err != CL_SUCCESS) {
        if (ev) clReleaseEvent(ev);
        if (ticket) *ticket = NULL;
        CL_TRY(be, err, "clFlush", DEV(be)->device_name);
    }
    return RECUR_OK;
}

static recur_status cl_read_done(struct recur_backend *be, void *ticket, int wait, int *done) {
    cl_event ev = ticket;
    cl_int status = CL_QUEUED, err;
    if (wait) {
        CL_COUNT(host_waits, 1);
        err = clWaitForEvents(1, &ev);
        if (err == CL_SUCCESS) err = clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
    } else {
        err = clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
    }
    if (err == CL_SUCCESS && status < 0) err = status; /* the read itself failed */
    *done = err != CL_SUCCESS || status == CL_COMPLETE;
    if (*done) clReleaseEvent(ev);
    CL_TRY(be, err, wait ? "clWaitForEvents (an asynchronous read)" : "clGetEventInfo (an asynchronous read)",
           DEV(be)->device_name);
    return RECUR_OK;
}

static recur_status cl_copy(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t bytes) {
    char what[96];
    fmt(what, sizeof what, "%zu bytes, %zu to %zu", bytes, src.off, dst.off);
    CL_TRY(be, clEnqueueCopyBuffer(DEV(be)->queue, MEM(src), MEM(dst), src.off, dst.off, bytes, 0, NULL, NULL),
           "clEnqueueCopyBuffer", what);
    return RECUR_OK;
}

static recur_status cl_fill(struct recur_backend *be, struct recur_mem dst, float value, size_t count) {
    RETURN_IF(dst.off % sizeof(float), be->ctx, RECUR_ERR_ARG, "opencl fill: byte offset %zu is not float-aligned",
              dst.off);
    char what[64];
    fmt(what, sizeof what, "%zu floats at %zu", count, dst.off);
    CL_TRY(be,
           clEnqueueFillBuffer(DEV(be)->queue, MEM(dst), &value, sizeof value, dst.off, count * sizeof(float), 0,
                               NULL, NULL),
           "clEnqueueFillBuffer", what);
    return RECUR_OK;
}

/* ---- GEMM (CLBlast) ---- */

/* CLBlastSgemm on (buffer, float offset) operands; its errors by name.
 * `how` follows the call in messages ("", " on bf16 copies", " on f16 copies"). */
static recur_status sgemm(struct recur_backend *be, int ta, int tb, int M, int N, int K, float alpha, cl_mem A,
                          size_t a_off, int lda, cl_mem B, size_t b_off, int ldb, float beta, struct recur_mem C,
                          int ldc, const char *how) {
    struct cl_dev *d = DEV(be);
    cl_event ev = NULL;
    clblast_acquire(d);
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                                       tb ? CLBlastTransposeYes : CLBlastTransposeNo, (size_t)M, (size_t)N, (size_t)K,
                                       alpha, A, a_off, (size_t)lda, B, b_off, (size_t)ldb, beta, MEM(C), C.off / 4,
                                       (size_t)ldc, &d->queue, d->prof ? &ev : NULL);
    if (s == CLBlastSuccess && d->prof) recur_cl_prof_add(d->prof, "CLBlastSgemm", ev);
    if (s != CLBlastSuccess) {
        const char *name = recur_clblast_code_name(s);
        char hint[320] = "";
        recur_status st = s == CLBlastTempBufferAllocFailure || s == CLBlastInsufficientMemoryTemp
                              ? RECUR_ERR_DEVICE_MEMORY
                              : RECUR_ERR_BACKEND;
        if ((cl_int)s == CL_OUT_OF_RESOURCES || (cl_int)s == CL_MEM_OBJECT_ALLOCATION_FAILURE) /* OpenCL's own codes */
            st = dev_status(d, (cl_int)s, hint, sizeof hint) == RECUR_ERR_DEVICE_MEMORY ? RECUR_ERR_DEVICE_MEMORY : st;
        return recur_err(be->ctx, st, "CLBlastSgemm(%c%c, M=%d, N=%d, K=%d, lda=%d, ldb=%d, ldc=%d)%s: %s%s%d%s%s",
                         ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, lda, ldb, ldc, how, name ? name : "CLBlast status ",
                         name ? " (" : "", (int)s, name ? ")" : "", hint);
    }
    return RECUR_OK;
}

/* Scratch buffer i (cl_dev.scratch) of at least `bytes`: the one it has,
 * or a new one (64 KiB multiples) in place of it. Releasing the old one is
 * safe with GEMMs that use it still queued: OpenCL frees a buffer only when
 * the commands that use it have finished. */
static recur_status scratch(struct recur_backend *be, int i, size_t bytes, cl_mem *out) {
    struct cl_dev *d = DEV(be);
    if (bytes > d->scratch_bytes[i]) {
        size_t want = (bytes + 65535) / 65536 * 65536;
        if ((cl_ulong)want > d->max_alloc && (cl_ulong)bytes <= d->max_alloc) want = bytes;
        void *buf = NULL;
        TRY(cl_alloc(be, want, &buf));
        cl_free(be, d->scratch[i]);
        d->scratch[i] = buf;
        d->scratch_bytes[i] = want;
    }
    *out = d->scratch[i];
    return RECUR_OK;
}

static recur_status round_to(struct recur_backend *be, recur_dtype prec, cl_mem dst, struct recur_mem src, int ld,
                             int rows, int cols);

/* The precisions of cl_gemm: bf16 and f16 emulated (rounded copies, float32
 * products: cl_gemm), so on every device, never natively. */
static unsigned cl_precisions(struct recur_backend *be, unsigned *native) {
    (void)be;
    *native = 1u << RECUR_DTYPE_F32;
    return 1u << RECUR_DTYPE_F32 | 1u << RECUR_DTYPE_BF16 | 1u << RECUR_DTYPE_F16;
}

/*
 * F32: CLBlastSgemm on the operands. BF16 and F16: op(A)'s and op(B)'s
 * stored regions (rows x cols with their leading dimension) are rounded to
 * the type into dense scratch copies (recur_round), then CLBlastSgemm on
 * those: a product of two bf16 values (8 significant bits) or two f16
 * values (11, exponents from -24) is exact in float32, so the result is
 * the type's products with float32 sums, as the contract asks
 * (backend-impl.h), on any device. Not CLBlastHgemm, which sums in half
 * precision: a different contract, and no device here has cl_khr_fp16.
 */
static recur_status cl_gemm(struct recur_backend *be, recur_dtype prec, int ta, int tb, int M, int N, int K,
                            float alpha, struct recur_mem A, int lda, struct recur_mem B, int ldb, float beta,
                            struct recur_mem C, int ldc) {
    struct cl_dev *d = DEV(be);
    RETURN_IF(!recur_dtype_name(prec), be->ctx, RECUR_ERR_UNSUPPORTED, "%s (%s): no products of type %d",
              be->info.selector, d->device_name, (int)prec);
    RETURN_IF(A.off % 4 || B.off % 4 || C.off % 4, be->ctx, RECUR_ERR_ARG,
              "CLBlastSgemm: byte offsets %zu, %zu, %zu must be float-aligned", A.off, B.off, C.off);
    if (prec == RECUR_DTYPE_F32)
        return sgemm(be, ta, tb, M, N, K, alpha, MEM(A), A.off / 4, lda, MEM(B), B.off / 4, ldb, beta, C, ldc, "");
    const int rows_a = ta ? K : M, cols_a = ta ? M : K, rows_b = tb ? N : K, cols_b = tb ? K : N;
    RETURN_IF(lda < cols_a || ldb < cols_b, be->ctx, RECUR_ERR_ARG,
              "%s gemm(%c%c, M=%d, N=%d, K=%d): lda=%d, ldb=%d; the rows of op(A) and op(B) as stored hold %d "
              "and %d floats",
              recur_dtype_name(prec), ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, lda, ldb, cols_a, cols_b);
    cl_mem a16, b16;
    TRY(scratch(be, 0, (size_t)rows_a * (size_t)cols_a * sizeof(float), &a16));
    TRY(scratch(be, 1, (size_t)rows_b * (size_t)cols_b * sizeof(float), &b16));
    TRY(round_to(be, prec, a16, A, lda, rows_a, cols_a));
    TRY(round_to(be, prec, b16, B, ldb, rows_b, cols_b));
    return sgemm(be, ta, tb, M, N, K, alpha, a16, 0, cols_a, b16, 0, cols_b, beta, C, ldc,
                 prec == RECUR_DTYPE_F16 ? " on f16 copies" : " on bf16 copies");
}

/* A weight operand for many products (the pack slots): float32, B itself
 * (CLBlast reads it as it is; the engine packs again when B changes); bf16
 * and f16, op(B)'s stored region rounded once into a buffer of its own, so
 * a time loop rounds only its per-step operand, not the weights at every
 * step. */
struct cl_pack {
    recur_dtype prec;
    int trans, K, N, ldb; /* ldb: of B, or of the rounded copy (its stored columns) */
    struct recur_mem B;   /* float32: the weights; bf16, f16: the rounded copy (offset 0) */
};

static recur_status cl_pack(struct recur_backend *be, recur_dtype prec, int trans_b, int K, int N, struct recur_mem B,
                            int ldb, void **packed) {
    RETURN_IF(!recur_dtype_name(prec), be->ctx, RECUR_ERR_UNSUPPORTED, "%s (%s): no products of type %d",
              be->info.selector, DEV(be)->device_name, (int)prec);
    struct cl_pack *pk = calloc(1, sizeof *pk);
    RETURN_IF(!pk, be->ctx, RECUR_ERR_NO_MEMORY, "opencl: out of memory packing a %d x %d weight", K, N);
    *pk = (struct cl_pack){prec, trans_b, K, N, ldb, B};
    if (prec != RECUR_DTYPE_F32) {
        int rows = trans_b ? N : K, cols = trans_b ? K : N;
        void *buf = NULL;
        recur_status st = cl_alloc(be, (size_t)rows * (size_t)cols * sizeof(float), &buf);
        if (st == RECUR_OK) st = round_to(be, prec, buf, B, ldb, rows, cols);
        if (st != RECUR_OK) {
            cl_free(be, buf);
            free(pk);
            return st;
        }
        pk->B = (struct recur_mem){buf, 0};
        pk->ldb = cols;
    }
    *packed = pk;
    return RECUR_OK;
}

static recur_status cl_gemm_packed(struct recur_backend *be, int M, struct recur_mem A, int lda, const void *packed,
                                   float beta, struct recur_mem C, int ldc) {
    const struct cl_pack *pk = packed;
    if (pk->prec == RECUR_DTYPE_F32)
        return cl_gemm(be, RECUR_DTYPE_F32, 0, pk->trans, M, pk->N, pk->K, 1.0f, A, lda, pk->B, pk->ldb, beta, C, ldc);
    RETURN_IF(A.off % 4 || C.off % 4, be->ctx, RECUR_ERR_ARG,
              "CLBlastSgemm: byte offsets %zu, %zu must be float-aligned", A.off, C.off);
    cl_mem a16;
    TRY(scratch(be, 0, (size_t)M * (size_t)pk->K * sizeof(float), &a16));
    TRY(round_to(be, pk->prec, a16, A, lda, M, pk->K));
    return sgemm(be, 0, pk->trans, M, pk->N, pk->K, 1.0f, a16, 0, pk->K, MEM(pk->B), 0, pk->ldb, beta, C, ldc,
                 pk->prec == RECUR_DTYPE_F16 ? " on f16 copies" : " on bf16 copies");
}

static void cl_unpack(struct recur_backend *be, void *packed) {
    struct cl_pack *pk = packed;
    if (pk->prec != RECUR_DTYPE_F32) cl_free(be, pk->B.buf);
    free(pk);
}

/* ---- launch shapes ---- */

static size_t pow2_floor(size_t v) {
    size_t p = 1;
    while (p <= v / 2) p *= 2;
    return p;
}
static size_t pow2_ceil(size_t v) {
    size_t p = 1;
    while (p < v && p <= SIZE_MAX / 2) p *= 2;
    return p;
}
static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

/* The work-group size a kernel may use on this device. */
static size_t wg_limit(const struct cl_dev *d, size_t kernel_wg) {
    size_t wg = kernel_wg ? min_sz(kernel_wg, d->max_wg) : d->max_wg;
    return wg ? wg : 1;
}

/* A local size for a (width, rows) NDRange: up to 64 wide and 256 in all,
 * powers of two within every limit. */
static void local_2d(const struct cl_dev *d, size_t kernel_wg, size_t width, size_t rows, size_t local[2]) {
    size_t wg = wg_limit(d, kernel_wg);
    size_t lx = pow2_floor(min_sz(min_sz(pow2_ceil(width), 64), min_sz(d->max_items[0], wg)));
    size_t ly = min_sz(pow2_ceil(rows), 256 / lx ? 256 / lx : 1);
    ly = pow2_floor(min_sz(min_sz(ly, d->max_items[1]), wg / lx ? wg / lx : 1));
    local[0] = lx;
    local[1] = ly ? ly : 1;
}

static recur_status enqueue(struct recur_backend *be, cl_kernel k, const char *name, cl_uint dims,
                            const size_t *global, const size_t *local) {
    struct cl_prof *prof = DEV(be)->prof;
    cl_event ev = NULL;
    cl_int err = clEnqueueNDRangeKernel(DEV(be)->queue, k, dims, NULL, global, local, 0, NULL, prof ? &ev : NULL);
    if (err == CL_SUCCESS && prof) recur_cl_prof_add(prof, name, ev);
    if (err != CL_SUCCESS) {
        char what[160];
        if (dims == 2)
            fmt(what, sizeof what, "%s, global %zu x %zu, local %zu x %zu", name, global[0], global[1], local[0],
                local[1]);
        else
            fmt(what, sizeof what, "%s, global %zu, local %zu", name, global[0], local[0]);
        return recur_cl_fail(be, err, "clEnqueueNDRangeKernel", what);
    }
    return RECUR_OK;
}

/* Set argument i of kernel k; a failure names the kernel and the index. */
static recur_status set_arg(struct recur_backend *be, cl_kernel k, const char *name, cl_uint i, size_t size,
                            const void *value) {
    cl_int err = clSetKernelArg(k, i, size, value);
    if (err != CL_SUCCESS) {
        char what[96];
        fmt(what, sizeof what, "%s, arg %u", name, i);
        return recur_cl_fail(be, err, "clSetKernelArg", what);
    }
    return RECUR_OK;
}

/* A (buffer, float offset) pair at args i, i+1; a NULL buffer passes NULL. */
static recur_status set_mem(struct recur_backend *be, cl_kernel k, const char *name, cl_uint i, struct recur_mem m,
                            size_t extra_floats) {
    RETURN_IF(m.off % sizeof(float), be->ctx, RECUR_ERR_ARG, "%s: byte offset %zu of argument %u is not float-aligned",
              name, m.off, i);
    cl_mem buf = MEM(m);
    cl_ulong off = buf ? (cl_ulong)(m.off / sizeof(float) + extra_floats) : 0;
    TRY(set_arg(be, k, name, i, sizeof(cl_mem), buf ? (const void *)&buf : NULL));
    return set_arg(be, k, name, i + 1, sizeof off, &off);
}

/* set_mem for a 16-bit buffer (bf16 storage): offsets in 2-byte elements. */
static recur_status set_mem16(struct recur_backend *be, cl_kernel k, const char *name, cl_uint i, struct recur_mem m,
                              size_t extra) {
    RETURN_IF(m.off % 2, be->ctx, RECUR_ERR_ARG, "%s: byte offset %zu of argument %u is odd", name, m.off, i);
    cl_mem buf = MEM(m);
    cl_ulong off = buf ? (cl_ulong)(m.off / 2 + extra) : 0;
    TRY(set_arg(be, k, name, i, sizeof(cl_mem), buf ? (const void *)&buf : NULL));
    return set_arg(be, k, name, i + 1, sizeof off, &off);
}

/* The most rows one launch may cover with ly rows per work-group. */
static size_t rows_per_launch(size_t ly) {
    size_t g = atomic_load(&max_groups_y);
    return g * ly;
}

/* ---- shared kernels ---- */

static recur_status cl_colsum(struct recur_backend *be, struct recur_mem dst, float beta, struct recur_mem src,
                              int rows, int width, int ld) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[K_COLSUM];
    const char *name = "recur_colsum";
    size_t wg = wg_limit(d, d->wg[K_COLSUM]);
    size_t lx = pow2_floor(min_sz(min_sz(pow2_ceil((size_t)width), 32), min_sz(d->max_items[0], wg)));
    size_t ly = pow2_floor(min_sz(min_sz(pow2_ceil((size_t)rows), 8), min_sz(d->max_items[1], wg / lx ? wg / lx : 1)));
    size_t local[2] = {lx, ly};
    size_t global[2] = {round_up((size_t)width, lx), ly};
    TRY(set_mem(be, k, name, 0, dst, 0));
    TRY(set_arg(be, k, name, 2, sizeof(float), &beta));
    TRY(set_mem(be, k, name, 3, src, 0));
    TRY(set_arg(be, k, name, 5, sizeof(int), &rows));
    TRY(set_arg(be, k, name, 6, sizeof(int), &width));
    TRY(set_arg(be, k, name, 7, sizeof(int), &ld));
    TRY(set_arg(be, k, name, 8, lx * ly * sizeof(float), NULL));
    return enqueue(be, k, name, 2, global, local);
}


/* A 1-D elementwise kernel over `count` elements whose buffer arguments are
 * mems[i] at argument 2i (buffer, then offset: in floats, or in 16-bit
 * elements where bit i of `half` is set) and whose count is argument
 * 2*n_mems, launched in chunks of d->chunk (the caller sets the rest). */
static recur_status launch_elementwise(struct recur_backend *be, enum cl_shared which, const char *name,
                                       const struct recur_mem *mems, cl_uint n_mems, unsigned half, size_t count) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[which];
    size_t local = pow2_floor(min_sz(min_sz(256, d->max_items[0]), wg_limit(d, d->wg[which])));
    if (count > d->chunk) CL_COUNT(launches_split, 1);
    for (size_t i0 = 0; i0 < count; i0 += d->chunk) {
        cl_ulong n = (cl_ulong)min_sz(d->chunk, count - i0);
        for (cl_uint i = 0; i < n_mems; i++)
            TRY((half >> i & 1u ? set_mem16 : set_mem)(be, k, name, 2 * i, mems[i], i0));
        TRY(set_arg(be, k, name, 2 * n_mems, sizeof n, &n));
        size_t global = round_up((size_t)n, local);
        TRY(enqueue(be, k, name, 1, &global, &local));
    }
    return RECUR_OK;
}

static recur_status cl_add(struct recur_backend *be, struct recur_mem y, struct recur_mem x, size_t count) {
    const struct recur_mem mems[2] = {y, x};
    return launch_elementwise(be, K_ADD, "recur_add", mems, 2, 0, count);
}

static recur_status cl_to_bf16(struct recur_backend *be, struct recur_mem dst16, struct recur_mem src, size_t count) {
    const struct recur_mem mems[2] = {dst16, src};
    return launch_elementwise(be, K_TO_BF16, "recur_to_bf16", mems, 2, 1u, count);
}

static recur_status cl_from_bf16(struct recur_backend *be, struct recur_mem dst, struct recur_mem src16,
                                 size_t count) {
    const struct recur_mem mems[2] = {dst, src16};
    return launch_elementwise(be, K_FROM_BF16, "recur_from_bf16", mems, 2, 2u, count);
}

/* A (width, rows) launch of a row kernel in chunks of rows; set_chunk sets
 * the arguments that move with the first row r0 and the chunk's rows n. */
typedef recur_status (*chunk_fn)(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                 const void *user);

static recur_status launch_rows(struct recur_backend *be, enum cl_shared which, const char *name, int width, int rows,
                                chunk_fn set_chunk, const void *user) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[which];
    size_t local[2];
    local_2d(d, d->wg[which], (size_t)width, (size_t)rows, local);
    size_t per = rows_per_launch(local[1]);
    if ((size_t)rows > per) CL_COUNT(launches_split, 1);
    for (size_t r0 = 0; r0 < (size_t)rows; r0 += per) {
        int n = (int)min_sz(per, (size_t)rows - r0);
        TRY(set_chunk(be, k, name, r0, n, user));
        size_t global[2] = {round_up((size_t)width, local[0]), round_up((size_t)n, local[1])};
        TRY(enqueue(be, k, name, 2, global, local));
    }
    return RECUR_OK;
}

struct scale_args {
    struct recur_mem dst;
    int ld, width;
    float beta;
};

struct rows_args {
    struct recur_mem dst, src, idx;
    int ld_dst, ld_src, width, add;
};

static recur_status transpose_chunk(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                    const void *user) {
    const struct rows_args *a = user;
    TRY(set_mem(be, k, name, 0, a->dst, r0)); /* rows of src are columns of dst */
    TRY(set_arg(be, k, name, 2, sizeof(int), &a->ld_dst));
    TRY(set_mem(be, k, name, 3, a->src, r0 * (size_t)a->ld_src));
    TRY(set_arg(be, k, name, 5, sizeof(int), &a->ld_src));
    TRY(set_arg(be, k, name, 6, sizeof(int), &n));
    return set_arg(be, k, name, 7, sizeof(int), &a->width);
}

static recur_status cl_transpose(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                 int ld_src, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return RECUR_OK;
    struct rows_args a = {dst, src, {0}, ld_dst, ld_src, cols, 0};
    return launch_rows(be, K_TRANSPOSE, "recur_transpose", cols, rows, transpose_chunk, &a);
}

struct round_args {
    cl_mem dst;
    struct recur_mem src;
    int ld, cols, f16;
};

static recur_status round_chunk(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                const void *user) {
    const struct round_args *a = user;
    TRY(set_mem(be, k, name, 0, (struct recur_mem){a->dst, 0}, r0 * (size_t)a->cols));
    TRY(set_mem(be, k, name, 2, a->src, r0 * (size_t)a->ld));
    TRY(set_arg(be, k, name, 4, sizeof(int), &a->ld));
    TRY(set_arg(be, k, name, 5, sizeof(int), &n));
    TRY(set_arg(be, k, name, 6, sizeof(int), &a->cols));
    return set_arg(be, k, name, 7, sizeof(int), &a->f16);
}

/* dst (dense, rows x cols) = src (rows x cols, leading dimension ld) rounded to prec (bf16 or f16). */
static recur_status round_to(struct recur_backend *be, recur_dtype prec, cl_mem dst, struct recur_mem src, int ld,
                             int rows, int cols) {
    struct round_args a = {dst, src, ld, cols, prec == RECUR_DTYPE_F16};
    return launch_rows(be, K_ROUND, "recur_round", cols, rows, round_chunk, &a);
}

static recur_status gather_chunk(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                 const void *user) {
    const struct rows_args *a = user;
    TRY(set_mem(be, k, name, 0, a->dst, r0 * (size_t)a->ld_dst));
    TRY(set_arg(be, k, name, 2, sizeof(int), &a->ld_dst));
    TRY(set_mem(be, k, name, 3, a->src, 0));
    TRY(set_arg(be, k, name, 5, sizeof(int), &a->ld_src));
    TRY(set_mem(be, k, name, 6, a->idx, r0));
    TRY(set_arg(be, k, name, 8, sizeof(int), &n));
    return set_arg(be, k, name, 9, sizeof(int), &a->width);
}

static recur_status cl_gather(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                              int ld_src, struct recur_mem idx, int rows, int width) {
    if (rows <= 0 || width <= 0) return RECUR_OK;
    struct rows_args a = {dst, src, idx, ld_dst, ld_src, width, 0};
    return launch_rows(be, K_GATHER, "recur_gather", width, rows, gather_chunk, &a);
}

static recur_status scatter_chunk(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                  const void *user) {
    const struct rows_args *a = user;
    TRY(set_mem(be, k, name, 0, a->dst, 0));
    TRY(set_arg(be, k, name, 2, sizeof(int), &a->ld_dst));
    TRY(set_mem(be, k, name, 3, a->src, r0 * (size_t)a->ld_src));
    TRY(set_arg(be, k, name, 5, sizeof(int), &a->ld_src));
    TRY(set_mem(be, k, name, 6, a->idx, r0));
    TRY(set_arg(be, k, name, 8, sizeof(int), &n));
    TRY(set_arg(be, k, name, 9, sizeof(int), &a->width));
    return set_arg(be, k, name, 10, sizeof(int), &a->add);
}

static recur_status cl_scatter(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                               int ld_src, struct recur_mem idx, int rows, int width, int add) {
    if (rows <= 0 || width <= 0) return RECUR_OK;
    struct rows_args a = {dst, src, idx, ld_dst, ld_src, width, add ? 1 : 0};
    return launch_rows(be, K_SCATTER, "recur_scatter", width, rows, scatter_chunk, &a);
}

static recur_status rows_set_chunk(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                   const void *user) {
    const struct rows_args *a = user;
    TRY(set_mem(be, k, name, 0, a->dst, r0 * (size_t)a->ld_dst));
    TRY(set_arg(be, k, name, 2, sizeof(int), &a->ld_dst));
    TRY(set_mem(be, k, name, 3, a->src, 0));
    TRY(set_arg(be, k, name, 5, sizeof(int), &a->width));
    return set_arg(be, k, name, 6, sizeof(int), &n);
}

static recur_status cl_rows_set(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld,
                                struct recur_mem row) {
    struct rows_args a = {dst, row, {0}, ld, 0, width, 0};
    return launch_rows(be, K_ROWS_SET, "recur_rows_set", width, rows, rows_set_chunk, &a);
}

static recur_status scale_chunk(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                const void *user) {
    const struct scale_args *a = user;
    TRY(set_mem(be, k, name, 0, a->dst, r0 * (size_t)a->ld));
    TRY(set_arg(be, k, name, 2, sizeof(int), &a->ld));
    TRY(set_arg(be, k, name, 3, sizeof(int), &a->width));
    TRY(set_arg(be, k, name, 4, sizeof(int), &n));
    return set_arg(be, k, name, 5, sizeof(float), &a->beta);
}

static recur_status cl_scale(struct recur_backend *be, struct recur_mem dst, int rows, int width, int ld, float beta) {
    struct scale_args a = {dst, ld, width, beta};
    return launch_rows(be, K_SCALE, "recur_scale", width, rows, scale_chunk, &a);
}

static recur_status cl_dropout(struct recur_backend *be, struct recur_mem dst, struct recur_mem src, size_t count,
                               float p, uint64_t seed, uint64_t stream) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[K_DROPOUT];
    const char *name = "recur_dropout";
    const float scale = 1.0f / (1.0f - p); /* as the CPU computes it, so the results are the same bits */
    const cl_uint words[4] = {(cl_uint)seed, (cl_uint)(seed >> 32), (cl_uint)stream, (cl_uint)(stream >> 32)};
    size_t local = pow2_floor(min_sz(min_sz(256, d->max_items[0]), wg_limit(d, d->wg[K_DROPOUT])));
    if (count > d->chunk) CL_COUNT(launches_split, 1);
    TRY(set_arg(be, k, name, 6, sizeof(float), &p));
    TRY(set_arg(be, k, name, 7, sizeof(float), &scale));
    for (cl_uint i = 0; i < 4; i++) TRY(set_arg(be, k, name, 8 + i, sizeof(cl_uint), &words[i]));
    for (size_t i0 = 0; i0 < count; i0 += d->chunk) { /* d->chunk is a multiple of 4 */
        cl_ulong n = (cl_ulong)min_sz(d->chunk, count - i0), first = (cl_ulong)i0;
        TRY(set_mem(be, k, name, 0, dst, i0));
        TRY(set_mem(be, k, name, 2, src, i0));
        TRY(set_arg(be, k, name, 4, sizeof n, &n));
        TRY(set_arg(be, k, name, 5, sizeof first, &first));
        size_t global = round_up(((size_t)n + 3) / 4, local);
        TRY(enqueue(be, k, name, 1, &global, &local));
    }
    return RECUR_OK;
}

struct zo_args {
    struct recur_mem out, a, b, idx;
    int H, mode;
    cl_ulong base;
    float p, q;
    cl_uint words[4];
};

static recur_status zoneout_chunk(struct recur_backend *be, cl_kernel k, const char *name, size_t r0, int n,
                                  const void *user) {
    const struct zo_args *z = user;
    size_t off = r0 * (size_t)z->H;
    TRY(set_mem(be, k, name, 0, z->out, off));
    TRY(set_mem(be, k, name, 2, z->a, off));
    TRY(set_mem(be, k, name, 4, z->b, off));
    TRY(set_mem(be, k, name, 6, z->idx, r0));
    TRY(set_arg(be, k, name, 8, sizeof(int), &n));
    TRY(set_arg(be, k, name, 9, sizeof(int), &z->H));
    TRY(set_arg(be, k, name, 10, sizeof z->base, &z->base));
    TRY(set_arg(be, k, name, 11, sizeof(float), &z->p));
    TRY(set_arg(be, k, name, 12, sizeof(float), &z->q));
    for (cl_uint i = 0; i < 4; i++) TRY(set_arg(be, k, name, 13 + i, sizeof(cl_uint), &z->words[i]));
    return set_arg(be, k, name, 17, sizeof(int), &z->mode);
}

static recur_status cl_zoneout(struct recur_backend *be, int mode, struct recur_mem out, struct recur_mem a,
                               struct recur_mem b, int rows, int H, struct recur_mem idx, uint64_t base, float p,
                               float q, uint64_t seed, uint64_t stream) {
    struct zo_args z = {out, a, b, idx, H, mode, (cl_ulong)base, p, q,
                        {(cl_uint)seed, (cl_uint)(seed >> 32), (cl_uint)stream, (cl_uint)(stream >> 32)}};
    return launch_rows(be, K_ZONEOUT, "recur_zoneout", H, rows, zoneout_chunk, &z);
}

/* ---- training (kernels/train.cl) ---- */

/* Lanes of index_add: destination rows are dealt to lanes by idx % lanes,
 * enough of them to give a device ~16K work-items, no more than rows. */
static int index_add_lanes(int rows, int width) {
    size_t want = min_sz(min_sz(16384 / (size_t)width, 256), pow2_ceil((size_t)rows));
    return (int)pow2_floor(want ? want : 1);
}

static recur_status cl_index_add(struct recur_backend *be, struct recur_mem dst, int ld_dst, struct recur_mem src,
                                 int ld_src, struct recur_mem idx, int rows, int width) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[K_INDEX_ADD];
    const char *name = "recur_index_add";
    const int lanes = index_add_lanes(rows, width);
    size_t local[2];
    local_2d(d, d->wg[K_INDEX_ADD], (size_t)width, (size_t)lanes, local);
    TRY(set_mem(be, k, name, 0, dst, 0));
    TRY(set_arg(be, k, name, 2, sizeof(int), &ld_dst));
    TRY(set_mem(be, k, name, 3, src, 0));
    TRY(set_arg(be, k, name, 5, sizeof(int), &ld_src));
    TRY(set_mem(be, k, name, 6, idx, 0));
    TRY(set_arg(be, k, name, 8, sizeof(int), &rows));
    TRY(set_arg(be, k, name, 9, sizeof(int), &width));
    TRY(set_arg(be, k, name, 10, sizeof(int), &lanes));
    size_t global[2] = {round_up((size_t)width, local[0]), round_up((size_t)lanes, local[1])};
    return enqueue(be, k, name, 2, global, local);
}

/* The local shape of a row reduction (xent, mse): LX lanes per row, a power
 * of two up to 256 and K, and LY rows per group, LX*LY <= 256. */
static void local_rows(const struct cl_dev *d, size_t kernel_wg, size_t K, size_t rows, size_t local[2]) {
    size_t wg = wg_limit(d, kernel_wg);
    size_t lx = pow2_floor(min_sz(min_sz(pow2_ceil(K), 256), min_sz(d->max_items[0], wg)));
    size_t ly = min_sz(pow2_ceil(rows), 256 / lx ? 256 / lx : 1);
    ly = pow2_floor(min_sz(min_sz(ly, d->max_items[1]), wg / lx ? wg / lx : 1));
    local[0] = lx;
    local[1] = ly ? ly : 1;
}

/* A per-row buffer argument of a row reduction: its (buffer, offset) pair at
 * args arg, arg+1, and its row stride in elements (floats or int32). */
struct row_mem {
    cl_uint arg;
    struct recur_mem m;
    size_t stride;
};

/* Launch a row reduction (NDRange (LX, rows rounded up), local_rows' shape)
 * in chunks of at most rows_per_launch rows: each chunk moves every mems[]
 * by r0 rows and sets the chunk's row count at rows_arg; the local scratch
 * (LX*LY floats) is at scratch_arg. */

static recur_status launch_reduce_rows(struct recur_backend *be, enum cl_shared which, const char *name, int K,
                                       int rows, const struct row_mem *mems, int n_mems, cl_uint rows_arg,
                                       cl_uint scratch_arg) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[which];
    size_t local[2];
    local_rows(d, d->wg[which], (size_t)K, (size_t)rows, local);
    TRY(set_arg(be, k, name, scratch_arg, local[0] * local[1] * sizeof(float), NULL));
    size_t per = rows_per_launch(local[1]);
    if ((size_t)rows > per) CL_COUNT(launches_split, 1);
    for (size_t r0 = 0; r0 < (size_t)rows; r0 += per) {
        int n = (int)min_sz(per, (size_t)rows - r0);
        for (int i = 0; i < n_mems; i++) TRY(set_mem(be, k, name, mems[i].arg, mems[i].m, r0 * mems[i].stride));
        TRY(set_arg(be, k, name, rows_arg, sizeof(int), &n));
        size_t global[2] = {local[0], round_up((size_t)n, local[1])};
        TRY(enqueue(be, k, name, 2, global, local));
    }
    return RECUR_OK;
}

static recur_status cl_xent(struct recur_backend *be, struct recur_mem z, int ld, struct recur_mem target, int rows,
                            int K, float scale, struct recur_mem dz, struct recur_mem loss) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[K_XENT];
    const char *name = "recur_xent";
    const struct row_mem mems[] = {{0, z, (size_t)ld}, {3, target, 1}, {8, dz, (size_t)ld}, {10, loss, 1}};
    TRY(set_arg(be, k, name, 2, sizeof(int), &ld));
    TRY(set_arg(be, k, name, 6, sizeof(int), &K));
    TRY(set_arg(be, k, name, 7, sizeof(float), &scale));
    return launch_reduce_rows(be, K_XENT, name, K, rows, mems, 4, 5, 12);
}

static recur_status cl_mse(struct recur_backend *be, struct recur_mem p, int ld_p, struct recur_mem v, int ld_v,
                           struct recur_mem sel, int rows, int K, float scale, struct recur_mem dp,
                           struct recur_mem loss) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[K_MSE];
    const char *name = "recur_mse";
    const float scale2 = 2.0f * scale; /* as the CPU computes it */
    const struct row_mem mems[] = {
        {0, p, (size_t)ld_p}, {3, v, (size_t)ld_v}, {6, sel, 1}, {11, dp, (size_t)ld_p}, {13, loss, 1}};
    TRY(set_arg(be, k, name, 2, sizeof(int), &ld_p));
    TRY(set_arg(be, k, name, 5, sizeof(int), &ld_v));
    TRY(set_arg(be, k, name, 9, sizeof(int), &K));
    TRY(set_arg(be, k, name, 10, sizeof(float), &scale2));
    return launch_reduce_rows(be, K_MSE, name, K, rows, mems, 5, 8, 15);
}

/* RECUR_SUM_PARTS work-groups of L lanes (256 or the device's limit: fixed
 * per device, so the tree and thus the bits are too). */
static recur_status cl_sum(struct recur_backend *be, struct recur_mem x, size_t count, int square,
                           struct recur_mem dst) {
    struct cl_dev *d = DEV(be);
    cl_kernel k = d->k[K_SUM];
    const char *name = "recur_sum";
    size_t local = pow2_floor(min_sz(min_sz(256, d->max_items[0]), wg_limit(d, d->wg[K_SUM])));
    const cl_ulong n = (cl_ulong)count, chunk = (cl_ulong)((count + RECUR_SUM_PARTS - 1) / RECUR_SUM_PARTS);
    const int sq = square ? 1 : 0;
    TRY(set_mem(be, k, name, 0, x, 0));
    TRY(set_arg(be, k, name, 2, sizeof n, &n));
    TRY(set_arg(be, k, name, 3, sizeof chunk, &chunk));
    TRY(set_arg(be, k, name, 4, sizeof(int), &sq));
    TRY(set_mem(be, k, name, 5, dst, 0));
    TRY(set_arg(be, k, name, 7, local * sizeof(float), NULL));
    size_t global = (size_t)RECUR_SUM_PARTS * local;
    return enqueue(be, k, name, 1, &global, &local);
}

static recur_status cl_sgd(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem v,
                           size_t count, float lr, float momentum, float wd, float gscale) {
    cl_kernel k = DEV(be)->k[K_SGD];
    const char *name = "recur_sgd";
    if (momentum == 0.0f) v.buf = NULL; /* not touched: the kernel gets NULL */
    const float args[4] = {lr, momentum, wd, gscale};
    for (cl_uint i = 0; i < 4; i++) TRY(set_arg(be, k, name, 7 + i, sizeof(float), &args[i]));
    const struct recur_mem mems[3] = {w, g, v};
    return launch_elementwise(be, K_SGD, name, mems, 3, 0, count);
}

static recur_status cl_adam(struct recur_backend *be, struct recur_mem w, struct recur_mem g, struct recur_mem m,
                            struct recur_mem v, size_t count, float step_size, float b1, float b2, float eps,
                            float bc2_sqrt, float wd, float gscale) {
    cl_kernel k = DEV(be)->k[K_ADAM];
    const char *name = "recur_adam";
    const float args[7] = {step_size, b1, b2, eps, bc2_sqrt, wd, gscale};
    for (cl_uint i = 0; i < 7; i++) TRY(set_arg(be, k, name, 9 + i, sizeof(float), &args[i]));
    const struct recur_mem mems[4] = {w, g, m, v};
    return launch_elementwise(be, K_ADAM, name, mems, 4, 0, count);
}

/* ---- cells ---- */

struct cl_cell {
    const struct recur_cell_desc *desc;
    cl_program program;
    int n_stages;
    cl_kernel k[2][RECUR_CELL_MAX_STAGES];   /* [backward][stage] */
    size_t wg[2][RECUR_CELL_MAX_STAGES];     /* CL_KERNEL_WORK_GROUP_SIZE */
    char name[2][RECUR_CELL_MAX_STAGES][80]; /* NAME_forward_S, NAME_backward_S */
};

/* The cell's OpenCL C, or NULL. */
static const char *cell_source(const struct recur_cell_desc *desc) {
    for (int i = 0; i < desc->n_sources; i++)
        if (desc->sources[i].backend && !strcmp(desc->sources[i].backend, "opencl")) return desc->sources[i].text;
    return NULL;
}

static recur_status cl_supports(struct recur_backend *be, const struct recur_cell *cell) {
    const struct recur_cell_desc *desc = cell->desc;
    RETURN_IF(!cell_source(desc), be->ctx, RECUR_ERR_UNSUPPORTED,
              "cell '%s' has no OpenCL kernels (no \"opencl\" source in %s); run it on the CPU (RECUR_DEVICE=cpu)",
              desc->name, cell->path ? cell->path : "its plugin");
    RETURN_IF(desc->n_stages < 1 || desc->n_stages > RECUR_CELL_MAX_STAGES, be->ctx, RECUR_ERR_UNSUPPORTED,
              "cell '%s': %d stages", desc->name, desc->n_stages);
    return RECUR_OK;
}

static void cell_free(struct cl_cell *c) {
    if (!c) return;
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < RECUR_CELL_MAX_STAGES; s++) recur_cl_release_kernel(c->k[b][s]);
    recur_cl_release_program(c->program);
    free(c);
}

static recur_status cl_cell_open(struct recur_backend *be, const struct recur_cell *cell, void **handle) {
    TRY(cl_supports(be, cell));
    struct cl_dev *d = DEV(be);
    const struct recur_cell_desc *desc = cell->desc;
    struct cl_cell *c = calloc(1, sizeof *c);
    RETURN_IF(!c, be->ctx, RECUR_ERR_NO_MEMORY, "opencl: out of memory");
    c->desc = desc;
    c->n_stages = desc->n_stages;

    char base[64];
    fmt(base, sizeof base, "%s", desc->name);
    for (char *p = base; *p; p++)
        if (*p == '-') *p = '_';
    const char *names[2 * RECUR_CELL_MAX_STAGES];
    for (int s = 0; s < c->n_stages; s++) {
        fmt(c->name[0][s], sizeof c->name[0][s], "%s_forward_%d", base, s);
        fmt(c->name[1][s], sizeof c->name[1][s], "%s_backward_%d", base, s);
        names[2 * s] = c->name[0][s];
        names[2 * s + 1] = c->name[1][s];
    }

    /* recur-cell-cl.h, then the cell's source from its own line 1. */
    const char *text = cell_source(desc);
    size_t hl = strlen(recur_cl_cell_header), sl = strlen(text);
    char *source = malloc(hl + sl + 128);
    if (!source) {
        free(c);
        return recur_err(be->ctx, RECUR_ERR_NO_MEMORY, "opencl: out of memory");
    }
    int used = snprintf(source, hl + 128, "%s\n#line 1 \"%.60s.cl\"\n", recur_cl_cell_header, desc->name);
    memcpy(source + used, text, sl + 1);
    /* The row widths recur-math.h's kernels need: gates, saved floats, each parameter's floats. */
    char options[512], label[96];
    int used_opt = snprintf(options, sizeof options, "%s -DRECUR_G=%d -DRECUR_NSAVE=%d", CL_STD, desc->n_gates,
                            desc->n_save);
    for (int k = 0; k < desc->n_params && used_opt > 0 && (size_t)used_opt < sizeof options; k++) {
        int rows = desc->params[k].rows;
        const char *cols = desc->params[k].cols == RECUR_CELL_DIM_GH ? "RECUR_G*H" : "H";
        used_opt += snprintf(options + used_opt, sizeof options - (size_t)used_opt, " -DRECUR_PW%d=(%d*%s)", k, rows,
                             cols);
    }
    fmt(label, sizeof label, "cell '%s'", desc->name);
    cl_kernel k[2 * RECUR_CELL_MAX_STAGES];
    recur_status st = recur_cl_build(be, d, label, source, options, names, 2 * c->n_stages, &c->program, k);
    free(source);
    if (st != RECUR_OK) {
        free(c);
        return st;
    }
    for (int s = 0; s < c->n_stages; s++) {
        c->k[0][s] = k[2 * s];
        c->k[1][s] = k[2 * s + 1];
    }
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < c->n_stages; s++) {
            cl_int err = clGetKernelWorkGroupInfo(c->k[b][s], d->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof(size_t),
                                                  &c->wg[b][s], NULL);
            if (err != CL_SUCCESS) {
                st = recur_cl_fail(be, err, "clGetKernelWorkGroupInfo", c->name[b][s]);
                cell_free(c);
                return st;
            }
        }
    *handle = c;
    return RECUR_OK;
}

static void cl_cell_close(struct recur_backend *be, void *handle) {
    (void)be;
    cell_free(handle);
}

static recur_status cl_cell_run(struct recur_backend *be, void *handle, int stage, int backward,
                                const struct recur_step *s) {
    struct cl_dev *d = DEV(be);
    struct cl_cell *c = handle;
    RETURN_IF(stage < 0 || stage >= c->n_stages, be->ctx, RECUR_ERR_ARG, "cell '%s': stage %d of %d", c->desc->name,
              stage, c->n_stages);
    int b = backward ? 1 : 0;
    cl_kernel k = c->k[b][stage];
    const char *name = c->name[b][stage];
    const struct recur_cell_desc *cd = c->desc;
    size_t H = (size_t)s->H, GH = (size_t)cd->n_gates * H, SH = (size_t)cd->n_save * H;
    /* The order of RECUR_CELL_KERNEL (recur-cell-cl.h), with each row's width. */
    enum { FIXED = 16, MEMS = FIXED + 2 * RECUR_CELL_MAX_PARAMS };
    struct recur_mem mems[MEMS] = {s->xw,       s->hw,  s->b_hh, s->prev[0],  s->prev[1],  s->next[0],
                                   s->next[1],  s->save, s->src, s->dnext[0], s->dnext[1], s->dprev[0],
                                   s->dprev[1], s->dxw, s->dhw, s->dsrc};
    size_t width[MEMS] = {GH, GH, 0, H, H, H, H, SH, H, H, H, H, H, GH, GH, H};
    for (int k = 0; k < cd->n_params; k++) {
        mems[FIXED + k] = s->param[k];
        mems[FIXED + RECUR_CELL_MAX_PARAMS + k] = s->dparam[k];
        width[FIXED + RECUR_CELL_MAX_PARAMS + k] = recur_cell_param_floats(cd, k, s->H);
    }
    /* Unit kernels: (units, rows) in 2-D groups. Row kernels: one group of
     * L work-items per row, L a power of two (recur-cell-cl.h). */
    int rows = (cd->flags & RECUR_CELL_ROW_KERNELS) != 0;
    size_t local[2];
    if (rows) {
        local[0] = pow2_floor(min_sz(min_sz(wg_limit(d, c->wg[b][stage]), d->max_items[0]), 256));
        local[1] = 1;
    } else {
        local_2d(d, c->wg[b][stage], H, (size_t)s->n, local);
    }
    TRY(set_arg(be, k, name, 4 + 2 * MEMS, local[0] * sizeof(float), NULL));
    size_t per = rows_per_launch(local[1]);
    if ((size_t)s->n > per) CL_COUNT(launches_split, 1);
    TRY(set_arg(be, k, name, 1, sizeof(int), &s->H));
    TRY(set_arg(be, k, name, 2, sizeof(int), &s->variant));
    TRY(set_arg(be, k, name, 3, sizeof(int), &s->training));
    for (size_t r0 = 0; r0 < (size_t)s->n; r0 += per) {
        int n = (int)min_sz(per, (size_t)s->n - r0);
        TRY(set_arg(be, k, name, 0, sizeof(int), &n));
        for (cl_uint i = 0; i < MEMS; i++) TRY(set_mem(be, k, name, 4 + 2 * i, mems[i], r0 * width[i]));
        size_t global[2] = {rows ? local[0] : round_up(H, local[0]), round_up((size_t)n, local[1])};
        TRY(enqueue(be, k, name, 2, global, local));
    }
    return RECUR_OK;
}

/* ---- ordering ---- */

static recur_status cl_sync(struct recur_backend *be) {
    CL_COUNT(host_waits, 1);
    CL_TRY(be, clFinish(DEV(be)->queue), "clFinish", DEV(be)->device_name);
    drained(DEV(be));
    return RECUR_OK;
}

const struct recur_backend_i recur_opencl_backend = {
    .name = "opencl",
    .host_memory = 0,
    .devices = cl_devices,
    .preferred = cl_preferred,
    .open = cl_open,
    .close = cl_close,
    .alloc = cl_alloc,
    .free = cl_free,
    .write = cl_write,
    .write_async = cl_write_async,
    .read = cl_read,
    .read_async = cl_read_async,
    .read_done = cl_read_done,
    .copy = cl_copy,
    .fill = cl_fill,
    .scale = cl_scale,
    .gemm = cl_gemm,
    .precisions = cl_precisions,
    .pack = cl_pack,
    .gemm_packed = cl_gemm_packed,
    .unpack = cl_unpack,
    .rows_set = cl_rows_set,
    .colsum = cl_colsum,
    .add = cl_add,
    .to_bf16 = cl_to_bf16,
    .from_bf16 = cl_from_bf16,
    .transpose = cl_transpose,
    .gather = cl_gather,
    .scatter = cl_scatter,
    .dropout = cl_dropout,
    .zoneout = cl_zoneout,
    .index_add = cl_index_add,
    .xent = cl_xent,
    .mse = cl_mse,
    .sum = cl_sum,
    .sgd = cl_sgd,
    .adam = cl_adam,
    .supports = cl_supports,
    .cell_open = cl_cell_open,
    .cell_close = cl_cell_close,
    .cell_run = cl_cell_run,
    .sync = cl_sync,
};
