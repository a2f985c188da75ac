/*
 * test-opencl.c: the OpenCL backend (backends/opencl).
 *
 * Without a device: the RECUR_DEVICE parser over fake device lists, the
 * status-code names, SHA-256 and the program cache's file format.
 * On a device (PoCL in CI): device listing and selection, buffers, GEMM
 * (CLBlast) against a double loop, the shared kernels against plain C,
 * the cell kernel ABI (argument order, NULL buffers, launches split by
 * rows), build errors, the allocation limit, every cell with OpenCL
 * kernels against the CPU backend, the program cache (cold, warm,
 * truncated, another key, garbage, refused by the driver, unwritable), and
 * 1000 context + layer cycles without growth in OpenCL objects or RSS.
 * Device tests are skipped (cr_skip_test), never passed, when no OpenCL
 * device exists.
 *
 * The test links a private copy of the library's objects, so it reaches
 * the backend's internals (opencl-impl.h, context.h) directly.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cl-dev.h"
#include "common.h"
#include "context.h"
#include "opencl-impl.h"
#include "philox.h"
#include "recur/recur-train.h"
#include "recur/recur.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    cr_assert_not_null(p);
    return p;
}

static void expect_contains(const char *msg, const char *needle, const char *what) {
    cr_assert(msg && strstr(msg, needle), "%s: '%s' is not in the message '%s'", what, needle, msg ? msg : "(NULL)");
}

/* Number of OpenCL devices recur lists (0: skip the device tests). */
static size_t opencl_devices(recur_device_info *first) {
    size_t n = 0;
    cr_assert_eq(recur_devices(NULL, 0, &n), RECUR_OK);
    recur_device_info *all = calloc(n ? n : 1, sizeof *all);
    cr_assert_not_null(all);
    cr_assert_eq(recur_devices(all, n, &n), RECUR_OK);
    size_t cl = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].backend, "opencl") == 0) {
            if (cl == 0 && first) *first = all[i];
            cl++;
        }
    free(all);
    return cl;
}

#define NEED_DEVICE()                                                                                     \
    do {                                                                                                  \
        if (opencl_devices(NULL) == 0) {                                                                  \
            const char *v_ = getenv("OCL_ICD_VENDORS");                                                   \
            cr_skip_test("no OpenCL device (OCL_ICD_VENDORS=%s): the OpenCL tests are skipped, not passed", \
                         v_ ? v_ : "unset");                                                              \
        }                                                                                                 \
    } while (0)

static recur_ctx *cl_ctx(const char *sel) {
    recur_ctx *ctx = NULL;
    recur_status st = recur_ctx_create(&ctx, sel);
    cr_assert_eq(st, RECUR_OK, "recur_ctx_create('%s'): %s: %s", sel, recur_status_str(st), recur_last_error());
    cr_assert_str_eq(ctx->be.iface->name, "opencl");
    return ctx;
}

#define BE(ctx) (&(ctx)->be)
#define OK TEST_OK

static struct recur_mem dev_alloc(recur_ctx *ctx, size_t floats_) {
    struct recur_mem m;
    OK(ctx, recur_be_alloc(BE(ctx), floats_ * sizeof(float), &m));
    return m;
}

static struct recur_mem at(struct recur_mem m, size_t floats_) { return recur_mem_at(m, floats_); }

static void put_floats(recur_ctx *ctx, struct recur_mem m, const float *src, size_t n) {
    OK(ctx, recur_be_write(BE(ctx), m, src, n * sizeof(float)));
}

static void get_floats(recur_ctx *ctx, float *dst, struct recur_mem m, size_t n) {
    OK(ctx, recur_be_sync(BE(ctx)));
    OK(ctx, recur_be_read(BE(ctx), dst, m, n * sizeof(float)));
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A fresh cache directory for one test: $RECUR_CACHE_DIR/<name>, emptied. */
static void cache_dir_for(const char *name, char *buf, size_t len) {
    const char *base = getenv("RECUR_CACHE_DIR");
    if (!base || !*base) base = "/tmp/recur-test-opencl-cache";
    snprintf(buf, len, "%s/%s", base, name);
    DIR *d = opendir(buf);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", buf, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    cr_assert_eq(setenv("RECUR_CACHE_DIR", buf, 1), 0);
}

/* The entries of a cache directory: how many, and the path of the first. */
static int cache_files(const char *dir, char *first, size_t len) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".bin") != 0) continue;
        if (n++ == 0 && first) snprintf(first, len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return n;
}

/* Debug log capture. */
static char log_text[1 << 16];
static size_t log_used;
static void log_capture(recur_log_level level, const char *message, void *user) {
    (void)level;
    (void)user;
    int w = snprintf(log_text + log_used, sizeof log_text - log_used, "%s\n", message);
    if (w > 0 && log_used + (size_t)w < sizeof log_text) log_used += (size_t)w;
}
static void log_start(void) {
    log_used = 0;
    log_text[0] = 0;
    recur_log_set(log_capture, NULL, RECUR_LOG_DEBUG);
}

/* ------------------------------------------------------------------------ */
/* the selector, over fake device lists                                     */

#define CPU RECUR_CL_TYPE_CPU
#define GPU RECUR_CL_TYPE_GPU
#define ACC RECUR_CL_TYPE_ACCELERATOR

static const struct recur_cl_entry pocl_only[] = {
    {0, 0, "Portable Computing Language", "pthread-skylake-avx512-AMD EPYC", CPU},
};

/* Platform 3 exists but has no device. */
static const struct recur_cl_entry mixed[] = {
    {0, 0, "NVIDIA CUDA", "NVIDIA GeForce RTX 4090", GPU},
    {0, 1, "NVIDIA CUDA", "NVIDIA GeForce RTX 3090", GPU},
    {1, 0, "Portable Computing Language", "pthread-skylake-avx512-AMD EPYC", CPU},
    {2, 0, "Intel(R) FPGA Emulation Platform for OpenCL(TM)", "Intel(R) FPGA Emulation Device", ACC},
};

static const struct recur_cl_entry cpu_then_gpu[] = {
    {0, 0, "Portable Computing Language", "pthread-haswell-Intel Xeon", CPU},
    {1, 0, "NVIDIA CUDA", "NVIDIA H200", GPU},
};

/* Oclgrind, a simulator that reports a GPU, registered before PoCL. */
static const struct recur_cl_entry grind_first[] = {
    {0, 0, "Oclgrind", "Oclgrind Simulator", GPU},
    {1, 0, "Portable Computing Language", "pthread-haswell-Intel Xeon", CPU},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void sel_ok(const struct recur_cl_entry *list, size_t n, size_t np, const char *spec, size_t want) {
    char msg[1024];
    size_t got = 999;
    recur_status st = recur_cl_select(list, n, np, spec, &got, msg, sizeof msg);
    cr_assert_eq(st, RECUR_OK, "spec '%s': %s: %s", spec, recur_status_str(st), msg);
    cr_assert_eq(got, want, "spec '%s': chose %zu (%s), expected %zu (%s)", spec, got,
                 got < n ? list[got].device_name : "?", want, list[want].device_name);
}

/* The spec fails with RECUR_ERR_DEVICE and a message holding every needle. */
static void sel_err(const struct recur_cl_entry *list, size_t n, size_t np, const char *spec, const char *const *needles,
                    const char *absent) {
    char msg[1024];
    size_t got = 999;
    recur_status st = recur_cl_select(list, n, np, spec, &got, msg, sizeof msg);
    cr_assert_eq(st, RECUR_ERR_DEVICE, "spec '%s': %s (chose %zu), expected RECUR_ERR_DEVICE", spec,
                 recur_status_str(st), got);
    cr_assert_eq(got, 999, "spec '%s': *chosen written on failure", spec);
    for (size_t i = 0; needles[i]; i++) {
        char what[96];
        snprintf(what, sizeof what, "spec '%s'", spec);
        expect_contains(msg, needles[i], what);
    }
    if (absent) cr_assert(!strstr(msg, absent), "spec '%s': '%s' should not be in '%s'", spec, absent, msg);
}
#define SEL_ERR(list, np, spec, absent, ...) sel_err(list, N_OF(list), np, spec, (const char *const[]){__VA_ARGS__, NULL}, absent)

Test(selector, valid_on_pocl) {
    const char *to_first[] = {"",        ":",     "0:0",   "portable", "PORTABLE", "::cpu", "0:cpu:0", "cpu",
                              ":cpu",    "0",     "0:",    "0::",      "::",       "0::0",  "skylake", "0:SKYLAKE",
                              "pthread", "::amd", ":cpu:0"};
    for (size_t i = 0; i < N_OF(to_first); i++) sel_ok(pocl_only, 1, 1, to_first[i], 0);
}

/* A simulator is never the default, but is chosen by name, index or type. */
Test(selector, simulator_never_the_default) {
    sel_ok(grind_first, 2, 2, "", 1);
    sel_ok(grind_first, 2, 2, ":", 1);
    sel_ok(grind_first, 2, 2, "oclgrind", 0);
    sel_ok(grind_first, 2, 2, "0", 0);
    sel_ok(grind_first, 2, 2, "::gpu", 0);
    sel_ok(grind_first, 1, 1, "", 0); /* alone */
    cr_assert(recur_cl_simulator("Oclgrind") && !recur_cl_simulator("NVIDIA CUDA") && !recur_cl_simulator(NULL));
}

Test(selector, valid_mixed) {
    sel_ok(mixed, 4, 4, "", 0);              /* first GPU */
    sel_ok(mixed, 4, 4, ":", 0);
    sel_ok(mixed, 4, 4, "::gpu", 0);         /* a type alone: the first of that type */
    sel_ok(mixed, 4, 4, ":gpu", 0);
    sel_ok(mixed, 4, 4, "gpu", 0);
    sel_ok(mixed, 4, 4, ":gpu:1", 1);        /* the second GPU */
    sel_ok(mixed, 4, 4, "0:gpu:1", 1);
    sel_ok(mixed, 4, 4, "0:1", 1);
    sel_ok(mixed, 4, 4, "0", 0);             /* platform 0: two GPUs, no name: the first */
    sel_ok(mixed, 4, 4, "1", 2);
    sel_ok(mixed, 4, 4, "1:0", 2);
    sel_ok(mixed, 4, 4, "rtx 4090", 0);
    sel_ok(mixed, 4, 4, "rtx 3090", 1);
    sel_ok(mixed, 4, 4, "nvidia::1", 1);     /* a name narrowed by an index */
    sel_ok(mixed, 4, 4, "nvidia:gpu:0", 0);
    sel_ok(mixed, 4, 4, "portable", 2);
    sel_ok(mixed, 4, 4, "::cpu", 2);
    sel_ok(mixed, 4, 4, "::accelerator", 3);
    sel_ok(mixed, 4, 4, "2:accelerator:0", 3);
    sel_ok(mixed, 4, 4, "fpga emulation device", 3);
    sel_ok(mixed, 4, 4, "intel::fpga", 3);
    sel_ok(cpu_then_gpu, 2, 2, "", 1);       /* the GPU even when it is not listed first */
    sel_ok(cpu_then_gpu, 2, 2, "::gpu", 1);
    sel_ok(cpu_then_gpu, 2, 2, "::cpu", 0);
    sel_ok(cpu_then_gpu, 2, 2, "h200", 1);
}

Test(selector, invalid) {
    SEL_ERR(pocl_only, 1, "x:y:z:w", NULL, "'opencl:x:y:z:w'", "4 fields", "at most 3", "opencl[:platform[:type[:device]]]");
    SEL_ERR(pocl_only, 1, "0:0:0:0:0", NULL, "5 fields");
    SEL_ERR(pocl_only, 1, "0:abc:1", NULL, "unknown device type 'abc'", "gpu, cpu, accelerator");
    SEL_ERR(pocl_only, 1, "gpu:cpu", NULL, "two device types");
}

Test(selector, out_of_range) {
    SEL_ERR(pocl_only, 1, "0:5", NULL, "device index 5 out of range", "1 device match", "opencl:0:0");
    SEL_ERR(pocl_only, 1, "7:0", NULL, "platform index 7 out of range", "1 OpenCL platform found",
            "opencl:0:0 (pthread-skylake-avx512-AMD EPYC");
    SEL_ERR(pocl_only, 1, "7", NULL, "platform index 7 out of range");
    SEL_ERR(pocl_only, 1, "99999999999999999999999:0", NULL, "platform index", "out of range");
    SEL_ERR(mixed, 4, "0:gpu:2", NULL, "device index 2 out of range", "2 devices match", "(index 0..1)",
            "opencl:0:0 (NVIDIA GeForce RTX 4090", "opencl:0:1 (NVIDIA GeForce RTX 3090");
    /* platform 3 has no device */
    SEL_ERR(mixed, 4, "3:0", NULL, "device index 0 out of range", "0 devices match", "opencl:1:0");
}

Test(selector, no_match_lists_every_device) {
    SEL_ERR(pocl_only, 1, "nomatch", NULL, "no OpenCL device matches 'opencl:nomatch'",
            "opencl:0:0 (pthread-skylake-avx512-AMD EPYC, Portable Computing Language, CPU)");
    SEL_ERR(pocl_only, 1, "::gpu", NULL, "no OpenCL device matches 'opencl:::gpu'", "opencl:0:0");
    SEL_ERR(mixed, 4, "amd:gpu", NULL, "no OpenCL device matches", "opencl:0:0 (NVIDIA GeForce RTX 4090",
            "opencl:0:1 (NVIDIA GeForce RTX 3090", "opencl:1:0 (pthread", "opencl:2:0 (Intel(R) FPGA Emulation Device");
    sel_err(pocl_only, 0, 0, "", (const char *const[]){"no OpenCL device found", "0 platforms", NULL}, NULL);
    sel_err(pocl_only, 0, 2, "0:0", (const char *const[]){"no OpenCL device found", "2 platforms", NULL}, NULL);
    size_t got;
    char msg[256];
    cr_assert_eq(recur_cl_select(NULL, 0, 0, "", &got, msg, sizeof msg), RECUR_ERR_DEVICE);
    expect_contains(msg, "no OpenCL device found", "empty list");
}

Test(selector, ambiguous_name) {
    SEL_ERR(mixed, 4, "geforce", "pthread", "'opencl:geforce' is ambiguous", "2 devices",
            "opencl:0:0 (NVIDIA GeForce RTX 4090", "opencl:0:1 (NVIDIA GeForce RTX 3090");
    SEL_ERR(mixed, 4, "nvidia", "FPGA", "ambiguous", "opencl:0:0", "opencl:0:1");
    SEL_ERR(mixed, 4, "nvidia::", "FPGA", "ambiguous");
    SEL_ERR(mixed, 4, "::rtx", "pthread", "ambiguous", "opencl:0:0", "opencl:0:1");
}

Test(selector, small_message_buffer) {
    char msg[24];
    memset(msg, 'x', sizeof msg);
    size_t got = 0;
    cr_assert_eq(recur_cl_select(mixed, 4, 4, "nomatch", &got, msg, sizeof msg), RECUR_ERR_DEVICE);
    cr_assert(memchr(msg, 0, sizeof msg) != NULL, "message not terminated");
    cr_assert_eq(recur_cl_select(mixed, 4, 4, "nomatch", &got, NULL, 0), RECUR_ERR_DEVICE);
    char sel[32];
    recur_cl_selector(&mixed[3], sel, sizeof sel);
    cr_assert_str_eq(sel, "opencl:2:0");
}

/* ------------------------------------------------------------------------ */
/* names, hashes, cache files                                               */

/* One floating-point contraction policy for every program: FP_CONTRACT OFF
 * before the first function of the shared program (philox.cl, shared.cl,
 * train.cl) and of the header every cell program starts with, so no driver
 * fuses a*b+c into an fma in one kernel and not in the CPU's code. */
extern const char recur_cl_shared_source[], recur_cl_cell_header[];
static void contract_off_first(const char *src, const char *what) {
    const char *pragma = strstr(src, "#pragma OPENCL FP_CONTRACT OFF");
    cr_assert_not_null(pragma, "%s: no #pragma OPENCL FP_CONTRACT OFF", what);
    cr_assert_null(strstr(src, "FP_CONTRACT ON"), "%s: FP_CONTRACT ON", what);
    const char *firsts[] = {"__kernel ", "static inline "};
    for (size_t i = 0; i < N_OF(firsts); i++) {
        const char *f = strstr(src, firsts[i]);
        cr_assert(!f || pragma < f, "%s: '%s' before FP_CONTRACT OFF", what, firsts[i]);
    }
}
Test(names, one_contraction_policy) {
    contract_off_first(recur_cl_shared_source, "the shared program");
    /* the header's kernels are a macro (RECUR_CELL_KERNEL), expanded in the
     * cell's source after the whole header: the pragma only has to be there */
    cr_assert_not_null(strstr(recur_cl_cell_header, "\n#pragma OPENCL FP_CONTRACT OFF"));
    cr_assert_null(strstr(recur_cl_cell_header, "FP_CONTRACT ON"));
}

Test(names, codes) {
    cr_assert_str_eq(recur_cl_code_name(-5), "CL_OUT_OF_RESOURCES");
    cr_assert_str_eq(recur_cl_code_name(-54), "CL_INVALID_WORK_GROUP_SIZE");
    cr_assert_str_eq(recur_cl_code_name(-11), "CL_BUILD_PROGRAM_FAILURE");
    cr_assert_str_eq(recur_cl_code_name(-4), "CL_MEM_OBJECT_ALLOCATION_FAILURE");
    cr_assert_str_eq(recur_cl_code_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR");
    cr_assert_null(recur_cl_code_name(-12345));
    char buf[32];
    cr_assert_str_eq(recur_cl_code_str(-12345, buf, sizeof buf), "OpenCL error -12345");
    cr_assert_str_eq(recur_clblast_code_name(-1016), "CLBlastInvalidLeadDimA");
    cr_assert_str_eq(recur_clblast_code_name(-2046), "CLBlastInvalidLocalMemUsage");
    cr_assert_str_eq(recur_clblast_code_name(-5), "CL_OUT_OF_RESOURCES");
}

Test(names, sha256) {
    char hex[65];
    recur_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    recur_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    recur_sha256_hex(two, strlen(two), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char million[1000];
    memset(million, 'a', sizeof million);
    recur_sha256_hex(million, 1000, hex); /* 1000 'a': crosses many blocks, tail of 40 bytes */
    cr_assert_str_eq(hex, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

Test(names, checksum64) {
    /* every length up to 40 and every flipped bit of a 40-byte message gives another value */
    unsigned char m[40];
    for (int i = 0; i < 40; i++) m[i] = (unsigned char)(i * 37 + 1);
    uint64_t seen[41 + 320];
    int n = 0;
    for (int len = 0; len <= 40; len++) seen[n++] = recur_checksum64(m, (size_t)len);
    for (int bit = 0; bit < 320; bit++) {
        m[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        seen[n++] = recur_checksum64(m, 40);
        m[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) cr_assert_neq(seen[i], seen[j], "checksum collision: %d and %d", i, j);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static size_t file_size(const char *path) {
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "%s: %s", path, strerror(errno));
    return (size_t)sb.st_size;
}

Test(cache_file, round_trip_and_rejects) {
    char dir[4096], why[4400], path[4400];
    cache_dir_for("file", dir, sizeof dir);
    unsigned char bin[3000];
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (unsigned char)(i * 31 + 7);
    const char *key = "recur OpenCL program\nplatform: test\n";
    size_t size = 0;
    cr_assert_null(recur_cl_cache_load(dir, key, &size, why, sizeof why));
    expect_contains(why, "no entry", "missing entry");

    cr_assert_eq(recur_cl_cache_store(dir, key, bin, sizeof bin, why, sizeof why), 0, "%s", why);
    recur_cl_cache_path(dir, key, path, sizeof path);
    cr_assert_eq(file_size(path), 8 + 4 + 4 + 8 + 8 + strlen(key) + sizeof bin);
    unsigned char *got = recur_cl_cache_load(dir, key, &size, why, sizeof why);
    cr_assert_not_null(got, "%s", why);
    cr_assert_eq(size, sizeof bin);
    cr_assert_eq(memcmp(got, bin, size), 0);
    free(got);
    cr_assert_eq(cache_files(dir, NULL, 0), 1, "a temporary file was left behind");

    /* another key hashing elsewhere is a miss; the same file under another key is a mismatch */
    cr_assert_null(recur_cl_cache_load(dir, "another key", &size, why, sizeof why));
    char other[4400];
    recur_cl_cache_path(dir, "another key", other, sizeof other);
    cr_assert_eq(rename(path, other), 0);
    cr_assert_null(recur_cl_cache_load(dir, "another key", &size, why, sizeof why));
    expect_contains(why, "another key", "key mismatch");
    cr_assert_eq(rename(other, path), 0);

    /* truncated */
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char whole[8192];
    size_t n = fread(whole, 1, sizeof whole, f);
    fclose(f);
    write_file(path, whole, n / 2);
    cr_assert_null(recur_cl_cache_load(dir, key, &size, why, sizeof why));
    expect_contains(why, "truncated", "truncated entry");
    write_file(path, whole, 10);
    cr_assert_null(recur_cl_cache_load(dir, key, &size, why, sizeof why));
    expect_contains(why, "truncated header", "truncated header");

    /* a flipped byte of the binary */
    whole[n - 5] ^= 0x40;
    write_file(path, whole, n);
    cr_assert_null(recur_cl_cache_load(dir, key, &size, why, sizeof why));
    expect_contains(why, "checksum", "corrupt binary");
    whole[n - 5] ^= 0x40;

    /* another format version, garbage */
    whole[8] = 9;
    write_file(path, whole, n);
    cr_assert_null(recur_cl_cache_load(dir, key, &size, why, sizeof why));
    expect_contains(why, "format 9", "format");
    write_file(path, "garbage garbage garbage garbage garbage garbage garbage garbage", 63);
    cr_assert_null(recur_cl_cache_load(dir, key, &size, why, sizeof why));
    expect_contains(why, "bad magic", "garbage");

    /* a store overwrites whatever is there */
    cr_assert_eq(recur_cl_cache_store(dir, key, bin, sizeof bin, why, sizeof why), 0, "%s", why);
    got = recur_cl_cache_load(dir, key, &size, why, sizeof why);
    cr_assert_not_null(got, "%s", why);
    free(got);

    /* an unusable directory fails softly */
    cr_assert_eq(recur_cl_cache_store("/proc/recur-no-such-dir/x", key, bin, sizeof bin, why, sizeof why), -1);
    expect_contains(why, "cannot create", "unwritable dir");
}

Test(cache_file, directory_choice) {
    char buf[4096];
    cr_assert_eq(setenv("RECUR_CACHE_DIR", "/x/y", 1), 0);
    cr_assert(recur_cl_cache_dir(buf, sizeof buf));
    cr_assert_str_eq(buf, "/x/y");
    unsetenv("RECUR_CACHE_DIR");
    cr_assert_eq(setenv("XDG_CACHE_HOME", "/xdg", 1), 0);
    cr_assert(recur_cl_cache_dir(buf, sizeof buf));
    cr_assert_str_eq(buf, "/xdg/recur");
    unsetenv("XDG_CACHE_HOME");
    cr_assert_eq(setenv("HOME", "/home/someone", 1), 0);
    cr_assert(recur_cl_cache_dir(buf, sizeof buf));
    cr_assert_str_eq(buf, "/home/someone/.cache/recur");
    unsetenv("HOME");
    cr_assert_eq(recur_cl_cache_dir(buf, sizeof buf), 0);
}

/* ------------------------------------------------------------------------ */
/* a device: listing, selection                                             */

Test(device, listed_and_opened) {
    NEED_DEVICE();
    recur_device_info first;
    size_t n = opencl_devices(&first);
    cr_log_info("OpenCL tests run on %s: %s (%s); %zu OpenCL device%s", first.selector, first.name, first.detail, n,
                n == 1 ? "" : "s");
    cr_assert_str_eq(first.selector, "opencl:0:0");
    expect_contains(first.detail, "OpenCL ", "detail");
    expect_contains(first.detail, "CUs", "detail");
    expect_contains(first.detail, "max alloc", "detail");
    expect_contains(first.detail, "driver", "detail");

    const char *sels[] = {"opencl", "opencl:", "opencl:0:0", "OPENCL:0", "opencl::"};
    for (size_t i = 0; i < N_OF(sels); i++) {
        recur_ctx *ctx = cl_ctx(sels[i]);
        recur_device_info info;
        cr_assert_eq(recur_ctx_device(ctx, &info), RECUR_OK);
        cr_assert_str_eq(info.backend, "opencl");
        cr_assert_str_eq(info.selector, first.selector, "'%s' opened %s", sels[i], info.selector);
        recur_ctx_free(ctx);
    }
    /* by name and by type, when the first device is PoCL's CPU device */
    if (strstr(first.detail, "Portable Computing Language") && strstr(first.detail, "CPU,")) {
        recur_ctx_free(cl_ctx("opencl:portable"));
        recur_ctx_free(cl_ctx("opencl:PORTABLE"));
        recur_ctx_free(cl_ctx("opencl::cpu"));
        recur_ctx_free(cl_ctx("opencl:0:cpu:0"));
    }
    /* the variable, and an explicit choice beating it */
    cr_assert_eq(setenv("RECUR_DEVICE", "opencl", 1), 0);
    recur_ctx *ctx = cl_ctx(NULL);
    recur_ctx_free(ctx);
    cr_assert_eq(setenv("RECUR_DEVICE", "opencl:nomatch", 1), 0);
    recur_ctx *cpu = NULL;
    cr_assert_eq(recur_ctx_create(&cpu, "cpu"), RECUR_OK, "%s", recur_last_error());
    recur_ctx_free(cpu);
    unsetenv("RECUR_DEVICE");
}

Test(device, bad_selectors) {
    NEED_DEVICE();
    recur_ctx *ctx = NULL;
    cr_assert_eq(setenv("RECUR_DEVICE", "opencl:nomatch", 1), 0);
    cr_assert_eq(recur_ctx_create(&ctx, NULL), RECUR_ERR_DEVICE);
    cr_assert_null(ctx);
    const char *msg = recur_last_error();
    cr_log_info("RECUR_DEVICE=opencl:nomatch: %s", msg);
    expect_contains(msg, "RECUR_DEVICE 'opencl:nomatch'", "nomatch");
    expect_contains(msg, "no OpenCL device matches 'opencl:nomatch'", "nomatch");
    expect_contains(msg, "opencl:0:0 (", "nomatch");
    unsetenv("RECUR_DEVICE");

    cr_assert_eq(recur_ctx_create(&ctx, "opencl:0:99"), RECUR_ERR_DEVICE);
    expect_contains(recur_last_error(), "device index 99 out of range", "0:99");
    cr_assert_eq(recur_ctx_create(&ctx, "opencl:99"), RECUR_ERR_DEVICE);
    expect_contains(recur_last_error(), "platform index 99 out of range", "99");
    cr_assert_eq(recur_ctx_create(&ctx, "opencl:0:bogus:0"), RECUR_ERR_DEVICE);
    expect_contains(recur_last_error(), "unknown device type 'bogus'", "bogus");
    cr_assert_eq(recur_ctx_create(&ctx, "opencl:a:b:c:d"), RECUR_ERR_DEVICE);
    expect_contains(recur_last_error(), "at most 3", "a:b:c:d");
}

/* ------------------------------------------------------------------------ */
/* buffers                                                                  */

Test(device, buffers_round_trip) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl");
    enum { N = 1000 };
    float src[N], back[N];
    for (int i = 0; i < N; i++) src[i] = (float)i * 0.5f - 7.0f;
    struct recur_mem a = dev_alloc(ctx, N), b = dev_alloc(ctx, N);
    put_floats(ctx, a, src, N);
    get_floats(ctx, back, a, N);
    cr_assert_eq(memcmp(src, back, sizeof src), 0);

    /* offsets: write 100 floats at 37, copy 50 of them from 60 to b at 3 */
    OK(ctx, recur_be_fill(BE(ctx), b, -1.0f, N));
    float mid[100];
    for (int i = 0; i < 100; i++) mid[i] = 1000.0f + (float)i;
    put_floats(ctx, at(a, 37), mid, 100);
    OK(ctx, recur_be_copy(BE(ctx), at(b, 3), at(a, 60), 50 * sizeof(float)));
    get_floats(ctx, back, b, N);
    for (int i = 0; i < N; i++) {
        float want = i >= 3 && i < 53 ? 1000.0f + (float)(i - 3 + 23) : -1.0f;
        cr_assert_eq(back[i], want, "b[%d] = %g, expected %g", i, back[i], want);
    }
    get_floats(ctx, back, a, N);
    for (int i = 0; i < N; i++) {
        float want = i >= 37 && i < 137 ? 1000.0f + (float)(i - 37) : src[i];
        cr_assert_eq(back[i], want, "a[%d] = %g, expected %g", i, back[i], want);
    }
    /* fill at an offset, then a partial read at an offset */
    OK(ctx, recur_be_fill(BE(ctx), at(a, 500), 2.5f, 7));
    float part[9];
    get_floats(ctx, part, at(a, 499), 9);
    cr_assert_eq(part[0], src[499]);
    for (int i = 1; i < 8; i++) cr_assert_eq(part[i], 2.5f);
    cr_assert_eq(part[8], src[507]);
    recur_be_free(BE(ctx), &a);
    recur_be_free(BE(ctx), &b);
    recur_ctx_free(ctx);
}

Test(device, allocation_beyond_the_limit) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl");
    struct recur_cl_limits lim;
    cr_assert_eq(recur_cl_limits_get(BE(ctx), &lim), 0);
    cr_assert(lim.max_alloc > 0 && lim.max_work_group > 0 && lim.max_items[0] > 0);
    size_t want = (size_t)lim.max_alloc + 4096;
    struct recur_mem m = {NULL, 0};
    recur_status st = recur_be_alloc(BE(ctx), want, &m);
    cr_assert_eq(st, RECUR_ERR_DEVICE_MEMORY, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    cr_assert_null(m.buf);
    char num[64];
    snprintf(num, sizeof num, "%zu bytes", want);
    expect_contains(recur_ctx_error(ctx), num, "too big");
    snprintf(num, sizeof num, "%llu bytes", (unsigned long long)lim.max_alloc);
    expect_contains(recur_ctx_error(ctx), num, "too big");
    expect_contains(recur_ctx_error(ctx), "CL_DEVICE_MAX_MEM_ALLOC_SIZE", "too big");
    cr_log_info("%s", recur_ctx_error(ctx));
    /* and the context still works */
    struct recur_mem ok = dev_alloc(ctx, 16);
    OK(ctx, recur_be_fill(BE(ctx), ok, 3.0f, 16));
    float v[16];
    get_floats(ctx, v, ok, 16);
    cr_assert_eq(v[15], 3.0f);
    recur_be_free(BE(ctx), &ok);
    recur_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* GEMM                                                                     */

struct gemm_case {
    int ta, tb, M, N, K, pad_a, pad_b, pad_c;
    size_t off_a, off_b, off_c;
    float alpha, beta;
};

static void gemm_check(recur_ctx *ctx, const struct gemm_case *g) {
    int rows_a = g->ta ? g->K : g->M, cols_a = g->ta ? g->M : g->K;
    int rows_b = g->tb ? g->N : g->K, cols_b = g->tb ? g->K : g->N;
    int lda = cols_a + g->pad_a, ldb = cols_b + g->pad_b, ldc = g->N + g->pad_c;
    size_t na = g->off_a + (size_t)rows_a * lda, nb = g->off_b + (size_t)rows_b * ldb,
           nc = g->off_c + (size_t)g->M * ldc;
    float *A = floats(na), *B = floats(nb), *C = floats(nc), *got = floats(nc);
    for (size_t i = 0; i < na; i++) A[i] = frand();
    for (size_t i = 0; i < nb; i++) B[i] = frand();
    for (size_t i = 0; i < nc; i++) C[i] = frand();
    struct recur_mem dA = dev_alloc(ctx, na), dB = dev_alloc(ctx, nb), dC = dev_alloc(ctx, nc);
    put_floats(ctx, dA, A, na);
    put_floats(ctx, dB, B, nb);
    put_floats(ctx, dC, C, nc);
    OK(ctx, recur_be_gemm(BE(ctx), g->ta, g->tb, g->M, g->N, g->K, g->alpha, at(dA, g->off_a), lda, at(dB, g->off_b),
                          ldb, g->beta, at(dC, g->off_c), ldc));
    get_floats(ctx, got, dC, nc);
    for (int i = 0; i < g->M; i++)
        for (int j = 0; j < ldc; j++) {
            size_t ci = g->off_c + (size_t)i * ldc + j;
            if (j >= g->N) {
                cr_assert_eq(got[ci], C[ci], "padding C[%d][%d] was written", i, j);
                continue;
            }
            double s = 0, mag = 0;
            for (int k = 0; k < g->K; k++) {
                double a = g->ta ? A[g->off_a + (size_t)k * lda + i] : A[g->off_a + (size_t)i * lda + k];
                double b = g->tb ? B[g->off_b + (size_t)j * ldb + k] : B[g->off_b + (size_t)k * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double want = g->alpha * s + g->beta * C[ci];
            double tol = 1e-5 * (fabs(g->alpha) * mag + fabs(g->beta * C[ci])) + 1e-6;
            cr_assert(fabs(got[ci] - want) <= tol,
                      "gemm %c%c M=%d N=%d K=%d: C[%d][%d] = %.8g, expected %.8g (tolerance %.2g)", g->ta ? 'T' : 'N',
                      g->tb ? 'T' : 'N', g->M, g->N, g->K, i, j, got[ci], want, tol);
        }
    for (size_t i = 0; i < g->off_c; i++) cr_assert_eq(got[i], C[i], "C before the offset was written");
    recur_be_free(BE(ctx), &dA);
    recur_be_free(BE(ctx), &dB);
    recur_be_free(BE(ctx), &dC);
    free(A);
    free(B);
    free(C);
    free(got);
}

/* A K = 0 GEMM is C = beta C on a 5 x 7 block of C with ldc 9: beta 0.5
 * scales, beta 0 gives 0 even where C holds Inf or NaN (a GEMM with alpha 0
 * would give NaN), and the padding columns are never touched. A GEMM that
 * passes C as A and B too (the old path) races in CLBlast (Oclgrind). */
static void k0_check(recur_ctx *ctx) {
    enum { M = 5, N = 7, LD = 9 };
    float c0[M * LD], c1[M * LD];
    for (int i = 0; i < M * LD; i++) c0[i] = frand();
    c0[3] = INFINITY;
    c0[LD + 4] = -INFINITY;
    c0[2 * LD + 6] = NAN;
    struct recur_mem dc;
    OK(ctx, recur_be_alloc(BE(ctx), sizeof c0, &dc));
    struct recur_mem none = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        const float beta = pass ? 0.0f : 0.5f;
        OK(ctx, recur_be_write(BE(ctx), dc, c0, sizeof c0));
        OK(ctx, recur_be_gemm(BE(ctx), 0, 0, M, N, 0, 1.0f, none, N, none, N, beta, dc, LD));
        OK(ctx, recur_be_sync(BE(ctx)));
        OK(ctx, recur_be_read(BE(ctx), c1, dc, sizeof c1));
        for (int i = 0; i < M * LD; i++) {
            const float want = i % LD >= N ? c0[i] : beta == 0.0f ? 0.0f : beta * c0[i];
            cr_assert(memcmp(&c1[i], &want, sizeof want) == 0 || (isnan(want) && isnan(c1[i])),
                      "%s: K=0, beta %g: C[%d] = %g, expected %g", ctx->be.iface->name, beta, i, c1[i], want);
        }
    }
    recur_be_free(BE(ctx), &dc);
}

Test(device, gemm_against_double_loop) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl");
    const struct gemm_case cases[] = {
        {0, 0, 17, 33, 9, 0, 0, 0, 0, 0, 0, 1.0f, 0.0f},
        {0, 1, 64, 48, 40, 3, 5, 1, 7, 2, 9, 1.0f, 1.0f},
        {1, 0, 5, 7, 130, 1, 0, 2, 0, 11, 4, -0.5f, 0.25f},
        {1, 1, 31, 1, 17, 2, 2, 0, 3, 3, 3, 2.0f, 0.0f},
        {0, 1, 1, 257, 65, 0, 1, 0, 1, 0, 1, 1.0f, 1.0f},
        {1, 0, 100, 60, 1, 0, 0, 0, 0, 0, 0, 1.0f, 1.0f},
        {0, 1, 130, 200, 150, 4, 0, 8, 16, 32, 64, 1.0f, 1.0f}, /* large enough for CLBlast's indirect kernel */
        {1, 1, 263, 257, 300, 1, 3, 5, 1, 2, 3, 0.75f, -1.0f},
    };
    double t0 = now_s();
    /* RECUR_TEST_TINY (the Oclgrind suite, where this case takes a minute): without the largest */
    const size_t n_cases = getenv("RECUR_TEST_TINY") ? N_OF(cases) - 1 : N_OF(cases);
    for (size_t i = 0; i < n_cases; i++) gemm_check(ctx, &cases[i]);
    cr_log_info("gemm: %zu cases in %.2f s (the first call compiles CLBlast's kernels)", n_cases, now_s() - t0);
    /* K = 0 through the dispatch wrapper: C = beta C by the scale slot, on both backends */
    k0_check(ctx);
    recur_ctx *cpu = NULL;
    cr_assert_eq(recur_ctx_create(&cpu, "cpu"), RECUR_OK, "%s", recur_last_error());
    k0_check(cpu);
    recur_ctx_free(cpu);
    /* a bad leading dimension is CLBlast's error, by name */
    struct recur_mem m = dev_alloc(ctx, 64);
    recur_status st = recur_be_gemm(BE(ctx), 0, 0, 4, 4, 4, 1.0f, m, 2, m, 4, 0.0f, m, 4);
    cr_assert_eq(st, RECUR_ERR_BACKEND, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    expect_contains(recur_ctx_error(ctx), "CLBlastSgemm(NN, M=4, N=4, K=4, lda=2", "bad lda");
    expect_contains(recur_ctx_error(ctx), "CLBlastInvalidLeadDimA", "bad lda");
    recur_be_free(BE(ctx), &m);
    recur_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* shared kernels                                                           */

/* transpose, gather, scatter, dropout, zoneout */
static void rows_kernels_check(recur_ctx *ctx) {
    /* transpose 70 x 45 (ld 50) into ld 75, both at offsets */
    enum { TR = 70, TC = 45, TLS = 50, TLD = 75, TO = 3 };
    size_t ns = TO + (size_t)TR * TLS, nd = TO + (size_t)TC * TLD;
    float *s = floats(ns), *d0 = floats(nd), *d = floats(nd);
    for (size_t i = 0; i < ns; i++) s[i] = frand();
    for (size_t i = 0; i < nd; i++) d0[i] = frand();
    struct recur_mem ds = dev_alloc(ctx, ns), dd = dev_alloc(ctx, nd);
    put_floats(ctx, ds, s, ns);
    put_floats(ctx, dd, d0, nd);
    OK(ctx, recur_be_transpose(BE(ctx), at(dd, TO), TLD, at(ds, TO), TLS, TR, TC));
    get_floats(ctx, d, dd, nd);
    for (size_t k = 0; k < nd; k++) {
        float want = d0[k];
        if (k >= TO) {
            size_t j = (k - TO) / TLD, i = (k - TO) % TLD;
            if (i < TR && j < TC) want = s[TO + i * TLS + j];
        }
        cr_assert_eq(d[k], want, "transpose: dst[%zu] = %g, expected %g", k, d[k], want);
    }
    recur_be_free(BE(ctx), &ds);
    recur_be_free(BE(ctx), &dd);
    free(s);
    free(d0);
    free(d);

    /* gather 60 of 100 rows (ld 20, width 17) into ld 19; scatter them back, set and add */
    enum { SR = 100, GR = 60, LS = 20, LD2 = 19, GW = 17 };
    int32_t perm[SR], idx[GR + 2];
    for (int i = 0; i < SR; i++) perm[i] = i;
    for (int i = SR - 1; i > 0; i--) {
        int j = (int)((frand() * 0.5f + 0.5f) * (float)(i + 1)) % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    idx[0] = idx[1] = -1; /* the indices start 2 ints into their buffer */
    memcpy(idx + 2, perm, GR * sizeof(int32_t));
    float *src = floats((size_t)SR * LS), *g0 = floats((size_t)GR * LD2), *g = floats((size_t)GR * LD2);
    float *back0 = floats((size_t)SR * LS), *back = floats((size_t)SR * LS);
    for (size_t i = 0; i < (size_t)SR * LS; i++) src[i] = frand(), back0[i] = frand();
    for (size_t i = 0; i < (size_t)GR * LD2; i++) g0[i] = frand();
    struct recur_mem dsrc = dev_alloc(ctx, (size_t)SR * LS), dg = dev_alloc(ctx, (size_t)GR * LD2),
                     dback = dev_alloc(ctx, (size_t)SR * LS), didx;
    OK(ctx, recur_be_alloc(BE(ctx), sizeof idx, &didx));
    OK(ctx, recur_be_write(BE(ctx), didx, idx, sizeof idx));
    struct recur_mem ix = {didx.buf, 2 * sizeof(int32_t)};
    put_floats(ctx, dsrc, src, (size_t)SR * LS);
    put_floats(ctx, dg, g0, (size_t)GR * LD2);
    OK(ctx, recur_be_gather(BE(ctx), dg, LD2, dsrc, LS, ix, GR, GW));
    get_floats(ctx, g, dg, (size_t)GR * LD2);
    for (int r = 0; r < GR; r++)
        for (int j = 0; j < LD2; j++) {
            float want = j < GW ? src[(size_t)perm[r] * LS + j] : g0[(size_t)r * LD2 + j];
            cr_assert_eq(g[(size_t)r * LD2 + j], want, "gather: [%d][%d]", r, j);
        }
    for (int add = 0; add <= 1; add++) {
        put_floats(ctx, dback, back0, (size_t)SR * LS);
        OK(ctx, recur_be_scatter(BE(ctx), dback, LS, dg, LD2, ix, GR, GW, add));
        get_floats(ctx, back, dback, (size_t)SR * LS);
        for (int r = 0; r < SR; r++)
            for (int j = 0; j < LS; j++) {
                float want = back0[(size_t)r * LS + j];
                for (int k = 0; k < GR; k++)
                    if (perm[k] == r && j < GW) want = (add ? want : 0.0f) + g[(size_t)k * LD2 + j];
                cr_assert_eq(back[(size_t)r * LS + j], want, "scatter (add %d): [%d][%d] = %g, expected %g", add, r,
                             j, back[(size_t)r * LS + j], want);
            }
    }
    recur_be_free(BE(ctx), &dsrc);
    recur_be_free(BE(ctx), &dg);
    recur_be_free(BE(ctx), &dback);
    recur_be_free(BE(ctx), &didx);
    free(src);
    free(g0);
    free(g);
    free(back0);
    free(back);

    /* dropout: the CPU's Philox mask, the same bits; out of place and in place */
    enum { DN = 10003 };
    const float ps[] = {0.3f, 0.5f, 0.9f};
    const uint64_t seed = 0x0123456789abcdefull, stream = 0x100000007ull;
    float *in = floats(DN + 1), *out = floats(DN + 1);
    for (int i = 0; i < DN + 1; i++) in[i] = frand();
    struct recur_mem din = dev_alloc(ctx, DN + 1), dout = dev_alloc(ctx, DN);
    for (size_t pi = 0; pi < N_OF(ps); pi++)
        for (int inplace = 0; inplace <= 1; inplace++) {
            float p = ps[pi], scale = 1.0f / (1.0f - p);
            put_floats(ctx, din, in, DN + 1);
            struct recur_mem to = inplace ? at(din, 1) : dout;
            OK(ctx, recur_be_dropout(BE(ctx), to, at(din, 1), DN, p, seed, stream));
            get_floats(ctx, out, to, DN);
            size_t kept = 0;
            for (size_t i = 0; i < DN; i++) {
                float want = recur_philox_uniform(seed, stream, i) >= p ? in[1 + i] * scale : 0.0f;
                kept += want != 0.0f;
                cr_assert(memcmp(&out[i], &want, sizeof want) == 0, "dropout p %g: [%zu] = %.9g, expected %.9g", p, i,
                          out[i], want);
            }
            cr_assert(fabs((double)kept / DN - (1.0 - p)) < 0.05, "dropout p %g kept %zu of %d", p, kept, DN);
        }
    recur_be_free(BE(ctx), &din);
    recur_be_free(BE(ctx), &dout);
    free(in);
    free(out);

    /* zoneout: rows of sequences idx[r], the CPU's Philox mask, the same bits in each mode */
    enum { ZR = 70, ZH = 37, ZSEQ = 90 };
    const uint64_t zbase = 3 * ZSEQ, zstream = (uint64_t)1 << 63 | 5;
    const float zp = 0.3f, zq = 1.0f - zp;
    int32_t zidx[ZR];
    for (int r = 0; r < ZR; r++) zidx[r] = (r * 37 + 11) % ZSEQ;
    size_t zn = (size_t)ZR * ZH;
    float *za = floats(zn), *zb = floats(zn), *zo = floats(zn), *zk = floats(zn);
    for (size_t i = 0; i < zn; i++) za[i] = frand(), zb[i] = frand();
    struct recur_mem dza = dev_alloc(ctx, zn), dzb = dev_alloc(ctx, zn), dzo = dev_alloc(ctx, zn), dzi;
    OK(ctx, recur_be_alloc(BE(ctx), sizeof zidx, &dzi));
    OK(ctx, recur_be_write(BE(ctx), dzi, zidx, sizeof zidx));
    size_t zkept = 0;
    for (int mode = RECUR_ZO_TRAIN; mode <= RECUR_ZO_BACK; mode++) {
        put_floats(ctx, dza, za, zn);
        put_floats(ctx, dzb, zb, zn);
        /* backward: in place on b, as the engine calls it */
        struct recur_mem to = mode == RECUR_ZO_BACK ? dzb : dzo;
        OK(ctx, recur_be_zoneout(BE(ctx), mode, to, dza, dzb, ZR, ZH, dzi, zbase, zp, 0x5eedull, zstream));
        get_floats(ctx, zo, to, zn);
        get_floats(ctx, zk, dza, zn);
        for (int r = 0; r < ZR; r++)
            for (int j = 0; j < ZH; j++) {
                size_t e = (size_t)r * ZH + j;
                uint64_t i = (zbase + (uint64_t)zidx[r]) * ZH + (uint64_t)j;
                int m = recur_philox_uniform(0x5eedull, zstream, i) < zp;
                float want = mode == RECUR_ZO_TRAIN ? (m ? za[e] : zb[e])
                             : mode == RECUR_ZO_INFER ? zp * za[e] + zq * zb[e]
                                                      : (m ? 0.0f : zb[e]);
                float want_a = mode == RECUR_ZO_BACK ? (m ? zb[e] : 0.0f) : za[e];
                zkept += mode == RECUR_ZO_TRAIN && m;
                cr_assert(memcmp(&zo[e], &want, sizeof want) == 0, "zoneout mode %d: [%d][%d] = %.9g, expected %.9g",
                          mode, r, j, zo[e], want);
                cr_assert(memcmp(&zk[e], &want_a, sizeof want) == 0, "zoneout mode %d: a[%d][%d] = %.9g, expected %.9g",
                          mode, r, j, zk[e], want_a);
            }
    }
    cr_assert(fabs((double)zkept / zn - zp) < 0.05, "zoneout p %g kept %zu of %zu", (double)zp, zkept, zn);
    recur_be_free(BE(ctx), &dza);
    recur_be_free(BE(ctx), &dzb);
    recur_be_free(BE(ctx), &dzo);
    recur_be_free(BE(ctx), &dzi);
    free(za), free(zb), free(zo), free(zk);
}

static void shared_kernels_check(recur_ctx *ctx) {
    /* rows_set: 1000 rows of 37 into a 40-wide matrix at an offset */
    enum { ROWS = 1000, W = 37, LD = 40, OFF = 13 };
    size_t n = OFF + (size_t)ROWS * LD;
    float *init = floats(n), *got = floats(n), row[W + 5];
    for (size_t i = 0; i < n; i++) init[i] = frand();
    for (int j = 0; j < W + 5; j++) row[j] = frand();
    struct recur_mem d = dev_alloc(ctx, n), r = dev_alloc(ctx, W + 5);
    put_floats(ctx, d, init, n);
    put_floats(ctx, r, row, W + 5);
    OK(ctx, recur_be_rows_set(BE(ctx), at(d, OFF), ROWS, W, LD, at(r, 5)));
    get_floats(ctx, got, d, n);
    for (size_t i = 0; i < n; i++) {
        float want = init[i];
        if (i >= OFF) {
            size_t j = (i - OFF) % LD;
            if (j < W) want = row[5 + j];
        }
        cr_assert_eq(got[i], want, "rows_set: element %zu = %g, expected %g", i, got[i], want);
    }

    /* colsum, beta 0 and 1, over the same matrix */
    put_floats(ctx, d, init, n);
    const int widths[] = {W, 1, 33};
    const int rowss[] = {ROWS, 1, 3};
    for (int c = 0; c < 3; c++)
        for (int beta = 0; beta <= 1; beta++) {
            int w = widths[c], rows = rowss[c];
            float dst0[64], dsum[64];
            for (int j = 0; j < 64; j++) dst0[j] = beta ? frand() : NAN; /* beta 0 must not read dst */
            struct recur_mem s = dev_alloc(ctx, 64);
            put_floats(ctx, s, dst0, 64);
            OK(ctx, recur_be_colsum(BE(ctx), at(s, 2), (float)beta, at(d, OFF), rows, w, LD));
            get_floats(ctx, dsum, s, 64);
            for (int j = 0; j < 64; j++) {
                if (j < 2 || j >= 2 + w) {
                    cr_assert(memcmp(&dsum[j], &dst0[j], sizeof(float)) == 0, "colsum wrote outside: %d", j);
                    continue;
                }
                double want = beta ? dst0[j] : 0.0, mag = fabs(want);
                for (int i = 0; i < rows; i++) {
                    want += init[OFF + (size_t)i * LD + (j - 2)];
                    mag += fabs(init[OFF + (size_t)i * LD + (j - 2)]);
                }
                cr_assert(fabs(dsum[j] - want) <= 1e-6 * mag + 1e-6,
                          "colsum rows %d width %d beta %d: [%d] = %.8g, expected %.8g", rows, w, beta, j - 2,
                          dsum[j], want);
            }
            recur_be_free(BE(ctx), &s);
        }

    /* add: 10001 floats at offsets */
    enum { NA = 10001 };
    float *x = floats(NA + 7), *y = floats(NA + 9), *sum = floats(NA + 9);
    for (int i = 0; i < NA + 7; i++) x[i] = frand();
    for (int i = 0; i < NA + 9; i++) y[i] = frand();
    struct recur_mem dx = dev_alloc(ctx, NA + 7), dy = dev_alloc(ctx, NA + 9);
    put_floats(ctx, dx, x, NA + 7);
    put_floats(ctx, dy, y, NA + 9);
    OK(ctx, recur_be_add(BE(ctx), at(dy, 9), at(dx, 7), NA));
    get_floats(ctx, sum, dy, NA + 9);
    for (int i = 0; i < NA + 9; i++) {
        float want = i < 9 ? y[i] : y[i] + x[i - 2];
        cr_assert_eq(sum[i], want, "add: y[%d] = %g, expected %g", i, sum[i], want);
    }
    recur_be_free(BE(ctx), &dx);
    recur_be_free(BE(ctx), &dy);
    recur_be_free(BE(ctx), &d);
    recur_be_free(BE(ctx), &r);
    free(x);
    free(y);
    free(sum);
    free(init);
    free(got);
    rows_kernels_check(ctx);
}

Test(device, shared_kernels_against_c) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl");
    shared_kernels_check(ctx);
    /* again with launches split every 2 work-groups of rows */
    struct recur_cl_stats s0, s1;
    recur_cl_stats_get(&s0);
    recur_cl_debug_max_groups(2);
    shared_kernels_check(ctx);
    recur_cl_debug_max_groups(0);
    recur_cl_stats_get(&s1);
    cr_assert_gt(s1.launches_split, s0.launches_split, "no launch was split");
    recur_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* the cell kernel ABI, through a probe cell                                */

/* Two gates, two stages, one saved float per unit. Each kernel writes
 * values that name the arguments it read, so a wrong order, offset or
 * NULL shows. */
static const char probe_source[] =
    "RECUR_CELL_KERNEL(probe_cell_forward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t g = (size_t)r * (RECUR_G * H) + j, h = (size_t)r * H + j;\n"
    "    next0[h] = xw[g] + 10.0f * hw[g] + 100.0f * b_hh[H + j] + 1000.0f * prev0[h]\n"
    "             + (save ? 0.5f : 0.0f) + (prev1 ? 0.25f : 0.0f) + (float)variant * 0.125f;\n"
    "    src[h] = -prev0[h];\n"
    "    if (training) save[h] = 3.0f * xw[g + H];\n"
    "    hw[g + H] = 7.0f;\n"
    "}\n"
    "RECUR_CELL_KERNEL(probe_cell_forward_1) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t g = (size_t)r * (RECUR_G * H) + j, h = (size_t)r * H + j;\n"
    "    next1[h] = src[h] + hw[g + H] + (src ? 0.0f : 1e6f);\n"
    "}\n"
    "RECUR_CELL_KERNEL(probe_cell_backward_1) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t g = (size_t)r * (RECUR_G * H) + j, h = (size_t)r * H + j;\n"
    "    dhw[g + H] = dnext1[h] + (dsrc ? 1e6f : 0.0f);\n"
    "    dxw[g + H] = 2.0f * dnext1[h];\n"
    "    dprev1[h] = next1[h];\n"
    "}\n"
    "RECUR_CELL_KERNEL(probe_cell_backward_0) {\n"
    "    RECUR_CELL_BIND;\n"
    "    const size_t g = (size_t)r * (RECUR_G * H) + j, h = (size_t)r * H + j;\n"
    "    dxw[g] = dnext0[h] + 2.0f * dsrc[h] + 4.0f * save[h];\n"
    "    dhw[g] = dxw[g] + 1.0f;\n"
    "    dprev0[h] = src[h] + 10.0f * next0[h] + 100.0f * prev1[h] + (xw ? 1e6f : 0.0f) + (hw ? 1e6f : 0.0f);\n"
    "}\n";

static const struct recur_cell_gate probe_gates[] = {{"p", 0, 0, 0}, {"q", 1, 0, 0}};
static const struct recur_cell_stage probe_stages[] = {{0, 1}, {1, 2}};

static struct recur_cell_desc probe_desc(const char *name, const char *source) {
    static struct recur_cell_source sources[16]; /* each descriptor its own, for the life of the test */
    static int used;
    struct recur_cell_source *src = &sources[used++ % 16];
    src->backend = "opencl";
    src->text = source;
    struct recur_cell_desc d;
    memset(&d, 0, sizeof d);
    d.abi_version = RECUR_CELL_ABI_VERSION;
    d.struct_size = sizeof d;
    d.name = name;
    d.version = "1";
    d.summary = "test probe";
    d.n_gates = 2;
    d.gates = probe_gates;
    d.n_states = 2;
    d.n_save = 1;
    d.n_stages = 2;
    d.stages = probe_stages;
    d.n_sources = source ? 1 : 0;
    d.sources = src;
    return d;
}

/* Fill buffers, run the four kernels on n rows, check against C. */
static void probe_run(recur_ctx *ctx, void *kern, int n, int H) {
    const int G = 2;
    size_t GH = (size_t)G * H, NH = (size_t)n * H, NG = (size_t)n * GH;
    const size_t pad = 5; /* every array starts 5 floats into its buffer */
    enum { XW, HW, BHH, P0, P1, N0, N1, SAVE, SRC, DN0, DN1, DP0, DP1, DXW, DHW, DSRC, NB };
    size_t len[NB] = {NG, NG, GH, NH, NH, NH, NH, NH, NH, NH, NH, NH, NH, NG, NG, NH};
    float *host[NB], *got = floats(NG + pad);
    struct recur_mem dev[NB];
    for (int b = 0; b < NB; b++) {
        host[b] = floats(len[b]);
        for (size_t i = 0; i < len[b]; i++) host[b][i] = (float)((int)(frand() * 8.0f)) * 0.25f;
        dev[b] = dev_alloc(ctx, len[b] + pad);
        put_floats(ctx, at(dev[b], pad), host[b], len[b]);
    }
    struct recur_step st;
    memset(&st, 0, sizeof st);
    st.n = n;
    st.H = H;
    st.variant = 1;
    st.training = 1;
    st.xw = at(dev[XW], pad);
    st.hw = at(dev[HW], pad);
    st.b_hh = at(dev[BHH], pad);
    st.prev[0] = at(dev[P0], pad);
    st.prev[1] = at(dev[P1], pad);
    st.next[0] = at(dev[N0], pad);
    st.next[1] = at(dev[N1], pad);
    st.save = at(dev[SAVE], pad);
    st.src = at(dev[SRC], pad);
    OK(ctx, recur_be_cell_run(BE(ctx), kern, 0, 0, &st));
    OK(ctx, recur_be_cell_run(BE(ctx), kern, 1, 0, &st));
    /* backward: the last stage first, without xw, hw, dsrc */
    struct recur_step bk = st;
    bk.xw = bk.hw = (struct recur_mem){0};
    bk.dnext[0] = at(dev[DN0], pad);
    bk.dnext[1] = at(dev[DN1], pad);
    bk.dprev[0] = at(dev[DP0], pad);
    bk.dprev[1] = at(dev[DP1], pad);
    bk.dxw = at(dev[DXW], pad);
    bk.dhw = at(dev[DHW], pad);
    bk.src = (struct recur_mem){0};
    OK(ctx, recur_be_cell_run(BE(ctx), kern, 1, 1, &bk));
    bk.src = st.src;
    bk.dsrc = at(dev[DSRC], pad);
    OK(ctx, recur_be_cell_run(BE(ctx), kern, 0, 1, &bk));

    float *const *hs = host;
    for (int r = 0; r < n; r++)
        for (int j = 0; j < H; j++) {
            size_t g = (size_t)r * GH + j, h = (size_t)r * H + j;
            float src = -hs[P0][h];
            float save = 3.0f * hs[XW][g + H];
            float n0 = hs[XW][g] + 10.0f * hs[HW][g] + 100.0f * hs[BHH][H + j] + 1000.0f * hs[P0][h] + 0.5f + 0.25f +
                       0.125f;
            float n1 = src + 7.0f;
            float dhw_q = hs[DN1][h], dxw_q = 2.0f * hs[DN1][h];
            float dxw_p = hs[DN0][h] + 2.0f * hs[DSRC][h] + 4.0f * save;
            float dp0 = src + 10.0f * n0 + 100.0f * hs[P1][h];
            hs[N0][h] = n0;
            hs[N1][h] = n1;
            hs[SAVE][h] = save;
            hs[SRC][h] = src;
            hs[HW][g + H] = 7.0f;
            hs[DXW][g] = dxw_p;
            hs[DXW][g + H] = dxw_q;
            hs[DHW][g] = dxw_p + 1.0f;
            hs[DHW][g + H] = dhw_q;
            hs[DP0][h] = dp0;
            hs[DP1][h] = n1;
        }
    static const char *const names[NB] = {"xw",   "hw",  "b_hh",   "prev0",  "prev1",  "next0", "next1", "save",
                                          "src",  "dnext0", "dnext1", "dprev0", "dprev1", "dxw",   "dhw",   "dsrc"};
    for (int b = 0; b < NB; b++) {
        get_floats(ctx, got, dev[b], len[b] + pad);
        for (size_t i = 0; i < len[b]; i++)
            cr_assert(fabsf(got[pad + i] - host[b][i]) <= 1e-3f * (1.0f + fabsf(host[b][i])),
                      "probe n=%d H=%d: %s[%zu] (row %zu) = %.7g, expected %.7g", n, H, names[b], i,
                      i / (b == BHH ? 1 : len[b] / (size_t)n), got[pad + i], host[b][i]);
        recur_be_free(BE(ctx), &dev[b]);
        free(host[b]);
    }
    free(got);
}

Test(device, cell_kernel_abi) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl");
    struct recur_cell_desc d = probe_desc("probe-cell", probe_source);
    struct recur_cell cell = {&d, "test-opencl.c", NULL};
    OK(ctx, recur_be_supports(BE(ctx), &cell));
    void *kern = NULL;
    OK(ctx, recur_be_cell_open(BE(ctx), &cell, &kern));
    probe_run(ctx, kern, 3, 5);
    probe_run(ctx, kern, 300, 70);
    /* the same, split into launches of 2 work-groups of rows */
    struct recur_cl_stats s0, s1;
    recur_cl_stats_get(&s0);
    recur_cl_debug_max_groups(2);
    probe_run(ctx, kern, 300, 70);
    probe_run(ctx, kern, 1000, 3);
    recur_cl_debug_max_groups(0);
    recur_cl_stats_get(&s1);
    cr_assert_gt(s1.launches_split, s0.launches_split, "no launch was split");
    recur_be_cell_close(BE(ctx), kern);
    recur_ctx_free(ctx);
}

Test(device, cell_errors) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl");
    void *kern = NULL;
    /* no OpenCL source */
    struct recur_cell_desc none = probe_desc("cpu-only", NULL);
    struct recur_cell c_none = {&none, "/x/cpu-only.so", NULL};
    cr_assert_eq(recur_be_supports(BE(ctx), &c_none), RECUR_ERR_UNSUPPORTED);
    expect_contains(recur_ctx_error(ctx), "cell 'cpu-only' has no OpenCL kernels", "no source");
    expect_contains(recur_ctx_error(ctx), "/x/cpu-only.so", "no source");
    cr_assert_eq(recur_be_cell_open(BE(ctx), &c_none, &kern), RECUR_ERR_UNSUPPORTED);

    /* a compile error: the build log is in the message */
    struct recur_cell_desc bad = probe_desc("broken", "__kernel void broken_forward_0(void) { this is not C; }\n");
    struct recur_cell c_bad = {&bad, "broken.so", NULL};
    recur_status st = recur_be_cell_open(BE(ctx), &c_bad, &kern);
    cr_assert_eq(st, RECUR_ERR_OPENCL, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    const char *msg = recur_ctx_error(ctx);
    cr_log_info("build failure: %.300s", msg);
    expect_contains(msg, "clBuildProgram(cell 'broken', \"-cl-std=CL1.2 -DRECUR_G=2 -DRECUR_NSAVE=1\")", "bad source");
    expect_contains(msg, "CL_BUILD_PROGRAM_FAILURE", "bad source");
    expect_contains(msg, "build log: ", "bad source");
    expect_contains(msg, "error", "bad source");
    /* Line numbers are the cell's own file's (#line 1 "broken.cl" after the
     * header): clang-based drivers say "broken.cl:1:40: error". Oclgrind
     * ignores #line and counts from the top of the whole source
     * ("input.cl:74:40"): there the error is on the line after the header
     * and the #line directive. Either is right; any other line is not. */
    size_t header_lines = 0;
    for (const char *p = recur_cl_cell_header; *p; p++) header_lines += *p == '\n';
    char whole_line[32];
    snprintf(whole_line, sizeof whole_line, ":%zu:", header_lines + 3);
    const char *blog = strstr(msg, "build log: ");
    cr_assert(blog && (strstr(blog, "broken.cl:1:") || strstr(blog, whole_line)),
              "bad source: the error is neither at broken.cl:1 nor at line %zu of the whole source: '%s'",
              header_lines + 3, msg);
    /* a kernel missing */
    struct recur_cell_desc half =
        probe_desc("half-done", "RECUR_CELL_KERNEL(half_done_forward_0) { RECUR_CELL_BIND; next0[r * H + j] = 1.0f; }\n");
    half.n_stages = 1;
    struct recur_cell c_half = {&half, "half.so", NULL};
    st = recur_be_cell_open(BE(ctx), &c_half, &kern);
    cr_assert_eq(st, RECUR_ERR_OPENCL, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    expect_contains(recur_ctx_error(ctx), "clCreateKernel(half_done_backward_0): CL_INVALID_KERNEL_NAME", "missing");

    /* nothing leaked by the failures */
    struct recur_cl_stats s;
    recur_ctx_free(ctx);
    recur_cl_stats_get(&s);
    cr_assert_eq(s.programs + s.kernels + s.buffers + s.contexts + s.queues, 0,
                 "live after close: %ld programs, %ld kernels, %ld buffers, %ld contexts, %ld queues", s.programs,
                 s.kernels, s.buffers, s.contexts, s.queues);
}

/* ------------------------------------------------------------------------ */
/* every cell with OpenCL kernels, against the CPU backend                  */

static void layer_run(recur_ctx *ctx, const recur_layer_desc *ld, int T, int N, const float *w, const float *x,
                      const float *h0, const float *c0, const float *dy, float *y, float *hT, float *cT, float *dx,
                      float *dh0, float *dg, int two_states) {
    recur_layer *l = NULL;
    recur_status st = recur_layer_create(ctx, ld, &l);
    cr_assert_eq(st, RECUR_OK, "%s on %s: %s", ld->cell, ctx->be.info.selector, recur_ctx_error(ctx));
    size_t nw = recur_layer_weight_count(l);
    cr_assert_eq(recur_layer_weights_set(l, RECUR_LAYOUT_CANONICAL, w, nw), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_io io = {.T = T, .N = N, .x = x, .h0 = h0, .c0 = two_states ? c0 : NULL, .y = y, .hT = hT,
                   .cT = two_states ? cT : NULL};
    cr_assert_eq(recur_layer_forward(l, RECUR_MODE_TRAINING, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_grad_io g = {.dy = dy, .dx = dx, .dh0 = dh0};
    cr_assert_eq(recur_layer_backward(l, &io, &g, RECUR_GRAD_OVERWRITE), RECUR_OK, "%s", recur_ctx_error(ctx));
    cr_assert_eq(recur_layer_grads_get(l, RECUR_LAYOUT_CANONICAL, dg, nw), RECUR_OK, "%s", recur_ctx_error(ctx));
    recur_layer_free(l);
}

static void compare(const char *what, const char *cell, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(a[i] - b[i]) <= 2e-5f + 2e-4f * fabsf(b[i]), "%s %s[%zu]: OpenCL %.8g, CPU %.8g", cell, what, i,
                  a[i], b[i]);
}

Test(device, cells_match_the_cpu) {
    NEED_DEVICE();
    recur_ctx *cl = cl_ctx("opencl"), *cpu = NULL;
    cr_assert_eq(recur_ctx_create(&cpu, "cpu:scalar"), RECUR_OK, "%s", recur_last_error());
    size_t ncell = recur_cell_count();
    int ran = 0;
    recur_cl_debug_max_groups(1); /* and every launch split by rows */
    for (size_t ci = 0; ci < ncell; ci++) {
        recur_cell_info info;
        cr_assert_eq(recur_cell_get(ci, &info), RECUR_OK);
        int nv = info.n_variants ? info.n_variants : 1;
        for (int v = 0; v < nv; v++) {
            recur_layer_desc ld = {info.name, info.n_variants ? info.variants[v] : NULL, 4, 9, 0};
            if (!strstr(info.backends, "opencl")) {
                recur_layer *l = NULL;
                cr_assert_eq(recur_ctx_cell_supported(cl, info.name), RECUR_ERR_UNSUPPORTED);
                cr_assert_eq(recur_layer_create(cl, &ld, &l), RECUR_ERR_UNSUPPORTED);
                cr_log_info("cell %s: no OpenCL kernels (RECUR_ERR_UNSUPPORTED, as it must)", info.name);
                continue;
            }
            const int T = 3, N = 70, I = 4, H = 9, two = info.n_states > 1;
            recur_layer *probe;
            cr_assert_eq(recur_layer_create(cpu, &ld, &probe), RECUR_OK, "%s", recur_ctx_error(cpu));
            size_t nw = recur_layer_weight_count(probe); /* the cell's own parameters too */
            recur_layer_free(probe);
            float *w = floats(nw), *x = floats((size_t)T * N * I), *h0 = floats((size_t)N * H),
                  *c0 = floats((size_t)N * H), *dy = floats((size_t)T * N * H);
            for (size_t i = 0; i < nw; i++) w[i] = 0.4f * frand();
            for (size_t i = 0; i < (size_t)T * N * I; i++) x[i] = frand();
            for (size_t i = 0; i < (size_t)N * H; i++) h0[i] = 0.5f * frand(), c0[i] = 0.5f * frand();
            for (size_t i = 0; i < (size_t)T * N * H; i++) dy[i] = frand();
            float *out[2][6];
            size_t sz[6] = {(size_t)T * N * H, (size_t)N * H, (size_t)N * H, (size_t)T * N * I, (size_t)N * H, nw};
            for (int d = 0; d < 2; d++) {
                for (int k = 0; k < 6; k++) out[d][k] = floats(sz[k]);
                layer_run(d ? cpu : cl, &ld, T, N, w, x, h0, c0, dy, out[d][0], out[d][1], out[d][2], out[d][3],
                          out[d][4], out[d][5], two);
            }
            char name[64];
            snprintf(name, sizeof name, "%s%s%s", info.name, ld.variant ? "/" : "", ld.variant ? ld.variant : "");
            static const char *const what[6] = {"y", "hT", "cT", "dx", "dh0", "dW"};
            for (int k = 0; k < 6; k++) {
                if (k == 2 && !two) continue;
                compare(what[k], name, out[0][k], out[1][k], sz[k]);
            }
            for (int d = 0; d < 2; d++)
                for (int k = 0; k < 6; k++) free(out[d][k]);
            free(w);
            free(x);
            free(h0);
            free(c0);
            free(dy);
            ran++;
        }
    }
    recur_cl_debug_max_groups(0);
    cr_log_info("%d cell variants match the CPU backend on OpenCL (forward, BPTT, weight gradients)", ran);
    recur_ctx_free(cl);
    recur_ctx_free(cpu);
}

/* ------------------------------------------------------------------------ */
/* the program cache                                                        */

/* A context on the first device, checked with one add. */
static void ctx_and_use(void) {
    recur_ctx *ctx = cl_ctx("opencl");
    struct recur_mem a = dev_alloc(ctx, 4), b = dev_alloc(ctx, 4);
    float one[4] = {1, 2, 3, 4}, got[4];
    put_floats(ctx, a, one, 4);
    put_floats(ctx, b, one, 4);
    OK(ctx, recur_be_add(BE(ctx), a, b, 4));
    get_floats(ctx, got, a, 4);
    cr_assert_eq(got[3], 8.0f);
    recur_be_free(BE(ctx), &a);
    recur_be_free(BE(ctx), &b);
    recur_ctx_free(ctx);
}

#define STATS_DIFF(field) (s1.field - s0.field)

Test(device, program_cache) {
    NEED_DEVICE();
    char dir[4096], entry[4400];
    cache_dir_for("program-cache", dir, sizeof dir);
    struct recur_cl_stats s0, s1;
    log_start();

    /* cold: built, stored */
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(builds), 1);
    cr_assert_eq(STATS_DIFF(cache_stores), 1);
    cr_assert_eq(STATS_DIFF(cache_loads), 0);
    cr_assert_eq(cache_files(dir, entry, sizeof entry), 1, "no cache entry in %s", dir);
    size_t full = file_size(entry);
    expect_contains(log_text, "shared kernels: built from source", "cold log");

    /* warm: loaded, no build */
    log_start();
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(builds), 0, "the warm context built from source");
    cr_assert_eq(STATS_DIFF(cache_loads), 1);
    expect_contains(log_text, "shared kernels: loaded from the program cache", "warm log");
    cr_assert(!strstr(log_text, "built from source"), "warm log: %s", log_text);

    /* truncated: ignored, rebuilt, overwritten */
    FILE *f = fopen(entry, "rb");
    cr_assert_not_null(f);
    unsigned char *whole = malloc(full);
    cr_assert_not_null(whole);
    cr_assert_eq(fread(whole, 1, full, f), full);
    fclose(f);
    cr_assert_eq(truncate(entry, (off_t)(full / 2)), 0);
    log_start();
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(cache_rejects), 1);
    cr_assert_eq(STATS_DIFF(builds), 1);
    cr_assert_eq(STATS_DIFF(cache_stores), 1);
    expect_contains(log_text, "cache entry ignored", "truncated log");
    /* Rewritten whole: the next context loads it. (Not "the same size as
     * before": PoCL's binary of one source can differ between builds.) */
    cr_assert_gt(file_size(entry), full / 2, "the entry was not rewritten");
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(cache_loads), 1, "the rewritten entry did not load");
    cr_assert_eq(STATS_DIFF(builds), 0, "the rewritten entry did not load");

    /* an entry of another key (another source hash) at this path: ignored */
    char key[2048];
    uint32_t klen = (uint32_t)whole[12] | (uint32_t)whole[13] << 8 | (uint32_t)whole[14] << 16 |
                    (uint32_t)whole[15] << 24;
    cr_assert(klen < sizeof key);
    memcpy(key, whole + 32, klen);
    key[klen] = 0;
    expect_contains(key, "source: sha256 ", "stored key");
    /* the driver's shared object, found through the ICD dispatch table */
    expect_contains(key, "driver library: /", "stored key");
    expect_contains(key, ".so", "stored key");
    expect_contains(key, " bytes, mtime ", "stored key");
    char other_key[2100], why[4400], other_dir[4200];
    snprintf(other_key, sizeof other_key, "%s", key);
    char *hash = strstr(other_key, "sha256 ") + 7;
    hash[0] = hash[0] == '0' ? '1' : '0'; /* another source */
    snprintf(other_dir, sizeof other_dir, "%s/other", dir);
    cr_assert_eq(recur_cl_cache_store(other_dir, other_key, whole + 32 + klen, full - 32 - klen, why, sizeof why), 0,
                 "%s", why);
    char other_path[4400];
    recur_cl_cache_path(other_dir, other_key, other_path, sizeof other_path);
    cr_assert_eq(rename(other_path, entry), 0);
    log_start();
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(cache_rejects), 1);
    cr_assert_eq(STATS_DIFF(builds), 1);
    expect_contains(log_text, "another key", "other-key log");

    /* garbage */
    write_file(entry, "not a cache entry at all, just text that happens to sit here", 61);
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(cache_rejects), 1);
    cr_assert_eq(STATS_DIFF(builds), 1);

    /* A well-formed entry whose binary the driver refuses. Mesa 22.3's
     * rusticl panics (aborts the process) on such a binary, a driver bug:
     * there recur's defences are the checksum and the driver-library key,
     * and this stage is skipped. */
    recur_device_info first;
    opencl_devices(&first);
    if (strstr(first.detail, "platform rusticl")) {
        cr_log_info("rusticl: the stage with a binary the driver refuses is skipped (the driver aborts on it)");
        free(whole);
        recur_log_set(NULL, NULL, RECUR_LOG_ERROR);
        return;
    }
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 13 + 5);
    cr_assert_eq(recur_cl_cache_store(dir, key, junk, sizeof junk, why, sizeof why), 0, "%s", why);
    log_start();
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(cache_rejects), 1, "log: %s", log_text);
    cr_assert_eq(STATS_DIFF(builds), 1);
    expect_contains(log_text, "refused the cached binary", "refused log");
    /* and it was replaced by a good one */
    recur_cl_stats_get(&s0);
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(cache_loads), 1);
    cr_assert_eq(STATS_DIFF(builds), 0);
    free(whole);
    recur_log_set(NULL, NULL, RECUR_LOG_ERROR);
}

Test(device, program_cache_unwritable) {
    NEED_DEVICE();
    cr_assert_eq(setenv("RECUR_CACHE_DIR", "/proc/recur-no-such-dir", 1), 0);
    struct recur_cl_stats s0, s1;
    log_start();
    recur_cl_stats_get(&s0);
    ctx_and_use();
    ctx_and_use();
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(builds), 2);
    cr_assert_eq(STATS_DIFF(cache_stores), 0);
    expect_contains(log_text, "program cache not written", "unwritable log");
    /* no cache directory at all */
    unsetenv("RECUR_CACHE_DIR");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    ctx_and_use();
    recur_log_set(NULL, NULL, RECUR_LOG_ERROR);
}

/* ------------------------------------------------------------------------ */
/* 1000 cycles                                                              */

/* CLBlast's process-wide program cache is cleared only when the last
 * context that ran a GEMM closes, never under another one that still uses
 * it (which would recompile CLBlast's kernels at its next GEMM). */
/* An out-of-resources error right after buffers were created (before the
 * queue drained) is what a lazily allocating driver (NVIDIA) reports for
 * out of memory: RECUR_ERR_DEVICE_MEMORY saying so; after a sync it is an
 * OpenCL error naming both causes. */
Test(device, out_of_resources_after_allocation) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl");
    struct recur_mem m = dev_alloc(ctx, 1024);
    recur_status st = recur_cl_fail(BE(ctx), CL_OUT_OF_RESOURCES, "clFinish", "test");
    cr_assert_eq(st, RECUR_ERR_DEVICE_MEMORY, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    expect_contains(recur_ctx_error(ctx), "CL_OUT_OF_RESOURCES; most likely out of device memory: 1 buffer (0 MiB)",
                    "after an allocation");
    OK(ctx, recur_be_sync(BE(ctx)));
    st = recur_cl_fail(BE(ctx), CL_OUT_OF_RESOURCES, "clFinish", "test");
    cr_assert_eq(st, RECUR_ERR_OPENCL, "%s: %s", recur_status_str(st), recur_ctx_error(ctx));
    expect_contains(recur_ctx_error(ctx), "ran out of resources (memory, or a kernel fault", "after a sync");
    cr_assert_eq(recur_cl_fail(BE(ctx), CL_INVALID_VALUE, "clFinish", "test"), RECUR_ERR_OPENCL);
    recur_be_free(BE(ctx), &m);
    recur_ctx_free(ctx);
}

/* write_async: enqueued without waiting, in order with what follows; the
 * data is there at the next sync, on OpenCL and through the CPU default. */
static void write_async_check(recur_ctx *ctx) {
    float src[300], dst[300];
    for (int i = 0; i < 300; i++) src[i] = frand();
    struct recur_mem m;
    OK(ctx, recur_be_alloc(BE(ctx), sizeof src, &m));
    OK(ctx, recur_be_fill(BE(ctx), m, 7.0f, 300));
    OK(ctx, recur_be_write_async(BE(ctx), at(m, 10), src + 10, 200 * sizeof(float)));
    OK(ctx, recur_be_scale(BE(ctx), at(m, 10), 1, 200, 200, 2.0f)); /* after the write, in queue order */
    OK(ctx, recur_be_sync(BE(ctx)));
    OK(ctx, recur_be_read(BE(ctx), dst, m, sizeof dst));
    for (int i = 0; i < 300; i++) {
        float want = i >= 10 && i < 210 ? 2.0f * src[i] : 7.0f;
        cr_assert_eq(dst[i], want, "%s: write_async: [%d] = %g, expected %g", ctx->be.iface->name, i, dst[i], want);
    }
    recur_be_free(BE(ctx), &m);
}

/* check on the OpenCL device, then on the CPU (the slots' defaults). */
static void on_opencl_and_cpu(void (*check)(recur_ctx *)) {
    recur_ctx *ctx = cl_ctx("opencl"), *cpu = NULL;
    check(ctx);
    recur_ctx_free(ctx);
    cr_assert_eq(recur_ctx_create(&cpu, "cpu"), RECUR_OK, "%s", recur_last_error());
    check(cpu);
    recur_ctx_free(cpu);
}

Test(device, write_async_in_queue_order) {
    NEED_DEVICE();
    on_opencl_and_cpu(write_async_check);
}

/* read_async: in queue order after the work before it (a scale here); a
 * read without a ticket is done when a later ticket's is; read_done polls
 * (wait 0) until done, or waits (wait 1), and counts a host wait only then.
 * On the CPU the default: done at once, no ticket. */
static void read_async_check(recur_ctx *ctx) {
    float src[300], a[100], b[200];
    for (int i = 0; i < 300; i++) src[i] = frand();
    struct recur_mem m;
    OK(ctx, recur_be_alloc(BE(ctx), sizeof src, &m));
    OK(ctx, recur_be_write(BE(ctx), m, src, sizeof src));
    OK(ctx, recur_be_scale(BE(ctx), m, 1, 300, 300, 3.0f));
    void *t1 = NULL, *t2 = NULL;
    OK(ctx, recur_be_read_async(BE(ctx), a, m, sizeof a, NULL));
    OK(ctx, recur_be_read_async(BE(ctx), b, at(m, 100), sizeof b, &t1));
    int done = 0;
    for (long polls = 0; !done; polls++) {
        OK(ctx, recur_be_read_done(BE(ctx), t1, 0, &done));
        cr_assert(polls < 100000000, "%s: read_async never finished", ctx->be.iface->name);
    }
    for (int i = 0; i < 300; i++) {
        float got = i < 100 ? a[i] : b[i - 100];
        cr_assert_eq(got, 3.0f * src[i], "%s: read_async: [%d] = %g, expected %g", ctx->be.iface->name, i, got,
                     3.0f * src[i]);
    }
    OK(ctx, recur_be_scale(BE(ctx), m, 1, 300, 300, 0.5f));
    OK(ctx, recur_be_read_async(BE(ctx), b, m, sizeof b, &t2));
    OK(ctx, recur_be_read_done(BE(ctx), t2, 1, &done));
    cr_assert(done);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(b[i], 1.5f * src[i], "%s: read_async after a wait: [%d] = %g, expected %g", ctx->be.iface->name,
                     i, b[i], 1.5f * src[i]);
    if (ctx->be.iface->host_memory) cr_assert(!t1 && !t2, "a host-memory backend gave a ticket");
    recur_be_free(BE(ctx), &m);
}

Test(device, read_async_in_queue_order) {
    NEED_DEVICE();
    on_opencl_and_cpu(read_async_check);
}

/* write_owned: the backend holds each block until its queue drains (a read
 * or sync), in order with the work around it; past RECUR_BE_KEPT_BLOCKS it
 * drains first, so what it holds stays bounded. Without write_async (the
 * CPU) a block is freed at once. Leaks and early frees show under ASan. */
static void write_owned_check(recur_ctx *ctx, int async) {
    struct recur_backend *be = BE(ctx);
    struct recur_mem m = dev_alloc(ctx, 300);
    for (int i = 0; i < 10; i++) {
        float *block = malloc(300 * sizeof *block);
        cr_assert(block);
        for (int k = 0; k < 300; k++) block[k] = (float)(i * 1000 + k);
        OK(ctx, recur_be_write_owned(be, m, block, 300 * sizeof *block));
        cr_assert_eq(be->kept_count, async ? (size_t)i + 1 : 0, "%s: %zu blocks held after %d writes",
                     be->iface->name, be->kept_count, i + 1);
    }
    float got[300];
    OK(ctx, recur_be_read(be, got, m, sizeof got)); /* no sync first */
    cr_assert_eq(be->kept_count, 0, "a read drains the queue: nothing held");
    cr_assert_eq(be->kept_bytes, 0);
    for (int k = 0; k < 300; k++) cr_assert_eq(got[k], (float)(9000 + k), "the last write wins, in queue order");
    float one = 1.0f;
    for (int i = 0; i < RECUR_BE_KEPT_BLOCKS + 5; i++) {
        OK(ctx, recur_be_write_staged(be, at(m, (size_t)(i % 300)), &one, sizeof one));
        cr_assert(be->kept_count <= RECUR_BE_KEPT_BLOCKS, "%zu blocks held", be->kept_count);
    }
    if (async) cr_assert_eq(be->kept_count, 5, "the bound drained the queue once: %zu held", be->kept_count);
    OK(ctx, recur_be_sync(be));
    cr_assert_eq(be->kept_count, 0);
    recur_be_free(be, &m);
}

Test(device, write_owned_blocks_live_until_the_queue_drains) {
    NEED_DEVICE();
    recur_ctx *ctx = cl_ctx("opencl"), *cpu = NULL;
    write_owned_check(ctx, 1);
    recur_ctx_free(ctx);
    cr_assert_eq(recur_ctx_create(&cpu, "cpu"), RECUR_OK, "%s", recur_last_error());
    write_owned_check(cpu, 0);
    recur_ctx_free(cpu);
}

/* Steps of a small net (embedding, 2-layer bidirectional LSTM, lengths,
 * the last step's head, Adam with clipping): forward with the loss left on
 * the device (defer) or read by forward, backward, the optimizer's step,
 * recur_net_loss. Each step's loss and norm into loss[], norm[]; the host
 * waits of each step into waits[]; the final recurrent weights into w. */
#define WAIT_STEPS 3
static void wait_steps(int defer, double *loss, double *norm, long *waits, float *w, size_t nw) {
    recur_ctx *ctx = cl_ctx("opencl");
    recur_net_desc d = {.model = {.cell = "lstm", .input_size = 6, .hidden_size = 7, .num_layers = 2,
                                  .direction = RECUR_DIR_BIDI_CONCAT},
                        .input = RECUR_INPUT_EMBEDDING, .vocab = 11, .head = RECUR_HEAD_LAST, .output_size = 5};
    recur_net *net;
    OK(ctx, recur_net_create(ctx, &d, &net));
    OK(ctx, recur_net_init(net, RECUR_INIT_UNIFORM, 7));
    recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f);
    od.clip_norm = 0.05f;
    recur_optim *opt;
    OK(ctx, recur_optim_create(&net, 1, &od, &opt));
    enum { T = 6, N = 4 };
    int32_t tokens[T * N], targets[N] = {1, 4, 0, 3};
    int lengths[N] = {6, 3, 5, 1};
    for (int i = 0; i < T * N; i++) tokens[i] = (int32_t)((i * 7 + 3) % 11);
    recur_net_batch b = {.T = T, .N = N, .tokens = tokens, .lengths = lengths, .targets = targets};
    for (int s = 0; s < WAIT_STEPS; s++) {
        struct recur_cl_stats before, after;
        recur_cl_stats_get(&before);
        OK(ctx, recur_net_forward(net, RECUR_MODE_TRAINING, &b, defer ? NULL : &loss[s], NULL));
        OK(ctx, recur_net_backward(net, &b, NULL, RECUR_GRAD_OVERWRITE));
        OK(ctx, recur_optim_step(opt, &norm[s]));
        double again;
        OK(ctx, recur_net_loss(net, &again, NULL));
        recur_cl_stats_get(&after);
        waits[s] = after.host_waits - before.host_waits;
        if (defer) loss[s] = again;
        else cr_assert_eq(again, loss[s], "step %d: recur_net_loss %.17g, forward's %.17g", s, again, loss[s]);
    }
    OK(ctx, recur_net_param_get(net, "rnn.weight_hh_l1_reverse", w, nw));
    recur_ctx_free(ctx);
}

/* A training step waits for the device once: the layers' index arrays and
 * the batch go without waiting, forward and backward read nothing back, and
 * the optimizer's one read brings the gradient norm and the loss. Reading
 * the loss in forward adds exactly that read; the numbers are the same bits. */
Test(device, one_host_wait_per_training_step) {
    NEED_DEVICE();
    double loss[2][WAIT_STEPS], norm[2][WAIT_STEPS];
    long waits[2][WAIT_STEPS];
    enum { NW = 4 * 7 * 7 };
    float w[2][NW];
    for (int defer = 0; defer < 2; defer++) wait_steps(defer, loss[defer], norm[defer], waits[defer], w[defer], NW);
    for (int s = 0; s < WAIT_STEPS; s++) {
        cr_log_info("step %d: loss %.9g, norm %.9g; host waits %ld (loss read by forward: %ld)", s, loss[1][s],
                    norm[1][s], waits[1][s], waits[0][s]);
        cr_assert_eq(waits[1][s], 1, "step %d: %ld host waits, expected 1", s, waits[1][s]);
        cr_assert_eq(waits[0][s], 2, "step %d with forward's loss read: %ld host waits, expected 2", s, waits[0][s]);
        cr_assert(isfinite(loss[1][s]) && loss[1][s] > 0, "step %d: loss %g", s, loss[1][s]);
        cr_assert_eq(loss[0][s], loss[1][s], "step %d: loss %.17g read by forward, %.17g with the norm", s,
                     loss[0][s], loss[1][s]);
        cr_assert_eq(norm[0][s], norm[1][s], "step %d: norm %.17g against %.17g", s, norm[0][s], norm[1][s]);
    }
    cr_assert(!memcmp(w[0], w[1], sizeof w[0]), "the weights differ between the two ways of reading the loss");
}

/* A training step that carries its states (an lm's truncated BPTT): through
 * buffers (recur_net_forward_dev, hT = h0 in place) it waits once, the
 * optimizer's read; through host pointers it also reads hT and cT back (3).
 * The same bits both ways. */
Test(device, one_host_wait_per_step_with_carried_states) {
    NEED_DEVICE();
    enum { T = 5, N = 3, V = 9, H = 6, STEPS = 3 };
    double loss[2][STEPS];
    long waits[2][STEPS];
    for (int dev = 0; dev < 2; dev++) {
        recur_ctx *ctx = cl_ctx("opencl");
        recur_net_desc d = {.model = {.cell = "lstm", .input_size = 4, .hidden_size = H, .num_layers = 2},
                            .input = RECUR_INPUT_EMBEDDING, .vocab = V, .head = RECUR_HEAD_ALL, .output_size = V};
        recur_net *net;
        recur_optim *opt;
        recur_optim_desc od = recur_optim_defaults(RECUR_OPTIM_ADAM, 0.01f);
        OK(ctx, recur_net_create(ctx, &d, &net));
        OK(ctx, recur_net_init(net, RECUR_INIT_UNIFORM, 3));
        OK(ctx, recur_optim_create(&net, 1, &od, &opt));
        static float h[2 * N * H], c[2 * N * H];
        memset(h, 0, sizeof h), memset(c, 0, sizeof c);
        recur_buffer *bt, *bg, *bh, *bc;
        OK(ctx, recur_buffer_create(ctx, T * N, &bt));
        OK(ctx, recur_buffer_create(ctx, T * N, &bg));
        OK(ctx, recur_buffer_create(ctx, 2 * N * H, &bh));
        OK(ctx, recur_buffer_create(ctx, 2 * N * H, &bc));
        OK(ctx, recur_buffer_write(bh, 0, h, 2 * N * H));
        OK(ctx, recur_buffer_write(bc, 0, c, 2 * N * H));
        for (int s = 0; s < STEPS; s++) {
            int32_t tok[T * N], tgt[T * N];
            for (int i = 0; i < T * N; i++) {
                tok[i] = (int32_t)((i * 5 + s * 3) % V);
                tgt[i] = (int32_t)((i * 7 + s) % V);
            }
            struct recur_cl_stats before, after;
            recur_cl_stats_get(&before);
            if (dev) {
                recur_net_batch_dev b = {.T = T, .N = N, .tokens = bt, .targets = bg, .h0 = bh, .c0 = bc, .hT = bh,
                                         .cT = bc};
                OK(ctx, recur_buffer_write_ids(bt, 0, tok, T * N));
                OK(ctx, recur_buffer_write_ids(bg, 0, tgt, T * N));
                OK(ctx, recur_net_forward_dev(net, RECUR_MODE_TRAINING, &b, NULL));
                OK(ctx, recur_net_backward_dev(net, &b, NULL, RECUR_GRAD_OVERWRITE));
            } else {
                recur_net_batch b = {.T = T, .N = N, .tokens = tok, .targets = tgt, .h0 = h, .c0 = c, .hT = h, .cT = c};
                OK(ctx, recur_net_forward(net, RECUR_MODE_TRAINING, &b, NULL, NULL));
                OK(ctx, recur_net_backward(net, &b, NULL, RECUR_GRAD_OVERWRITE));
            }
            OK(ctx, recur_optim_step(opt, NULL));
            OK(ctx, recur_net_loss(net, &loss[dev][s], NULL));
            recur_cl_stats_get(&after);
            waits[dev][s] = after.host_waits - before.host_waits;
        }
        recur_ctx_free(ctx);
    }
    for (int s = 0; s < STEPS; s++) {
        cr_log_info("step %d: host waits %ld with buffers, %ld with host pointers", s, waits[1][s], waits[0][s]);
        cr_assert_eq(waits[1][s], 1, "step %d: %ld host waits with the state on the device, expected 1", s,
                     waits[1][s]);
        cr_assert_eq(waits[0][s], 3, "step %d: %ld host waits reading hT and cT back, expected 3", s, waits[0][s]);
        cr_assert_eq(loss[0][s], loss[1][s], "step %d: loss %.17g with host pointers, %.17g with buffers", s,
                     loss[0][s], loss[1][s]);
    }
}

/* Test builds (-Dtest_hooks=true): RECUR_CL_TEST_POISON=1 fills every new
 * buffer with NaN; RECUR_CL_TEST_LIMITS caps the device's limits, and the
 * capped values are what the backend uses (launches split, allocations
 * refused). Skipped in other builds, where the variables mean nothing. */
Test(device, test_hooks) {
    NEED_DEVICE();
    if (!recur_cl_test_hooks()) cr_skip_test("not a -Dtest_hooks=true build");
    const char *old_poison = getenv("RECUR_CL_TEST_POISON"), *old_limits = getenv("RECUR_CL_TEST_LIMITS");
    char saved_poison[32] = "", saved_limits[256] = "";
    if (old_poison) snprintf(saved_poison, sizeof saved_poison, "%s", old_poison);
    if (old_limits) snprintf(saved_limits, sizeof saved_limits, "%s", old_limits);
    cr_assert_eq(setenv("RECUR_CL_TEST_POISON", "1", 1), 0);
    cr_assert_eq(setenv("RECUR_CL_TEST_LIMITS", "wg=16,items=8,alloc=1048576,chunk=1000", 1), 0);
    recur_ctx *ctx = cl_ctx("opencl");
    struct recur_cl_limits lim;
    cr_assert_eq(recur_cl_limits_get(BE(ctx), &lim), 0);
    cr_assert_leq(lim.max_work_group, 16);
    cr_assert_leq(lim.max_items[0], 8);
    cr_assert_eq(lim.max_alloc, 1048576);
    /* poison: NaN until written */
    float v[5000], y[5000];
    struct recur_mem m = dev_alloc(ctx, 5000), x = dev_alloc(ctx, 5000);
    get_floats(ctx, v, m, 5000);
    for (int i = 0; i < 5000; i++) cr_assert(isnan(v[i]), "poison: [%d] = %g", i, v[i]);
    /* a 1-D launch of 5000 floats in chunks of 1000 */
    for (int i = 0; i < 5000; i++) v[i] = (float)i, y[i] = 1.0f;
    put_floats(ctx, m, v, 5000);
    put_floats(ctx, x, y, 5000);
    struct recur_cl_stats s0, s1;
    recur_cl_stats_get(&s0);
    OK(ctx, recur_be_add(BE(ctx), m, x, 5000));
    recur_cl_stats_get(&s1);
    cr_assert_eq(STATS_DIFF(launches_split), 1);
    get_floats(ctx, y, m, 5000);
    for (int i = 0; i < 5000; i++) cr_assert_eq(y[i], (float)i + 1.0f, "chunked add: [%d] = %g", i, y[i]);
    /* the capped allocation limit */
    struct recur_mem big;
    cr_assert_eq(recur_be_alloc(BE(ctx), 2u << 20, &big), RECUR_ERR_DEVICE_MEMORY);
    expect_contains(recur_ctx_error(ctx), "CL_DEVICE_MAX_MEM_ALLOC_SIZE 1048576", "capped alloc");
    recur_be_free(BE(ctx), &m);
    recur_be_free(BE(ctx), &x);
    recur_ctx_free(ctx);
    if (old_poison) setenv("RECUR_CL_TEST_POISON", saved_poison, 1); else unsetenv("RECUR_CL_TEST_POISON");
    if (old_limits) setenv("RECUR_CL_TEST_LIMITS", saved_limits, 1); else unsetenv("RECUR_CL_TEST_LIMITS");
}

Test(device, clblast_cache_outlives_other_contexts) {
    NEED_DEVICE();
    recur_ctx *a = cl_ctx("opencl"), *b = cl_ctx("opencl");
    struct recur_mem ma = dev_alloc(a, 48), mb = dev_alloc(b, 48);
    OK(a, recur_be_fill(BE(a), ma, 1.0f, 48));
    OK(b, recur_be_fill(BE(b), mb, 1.0f, 48));
    OK(a, recur_be_gemm(BE(a), 0, 0, 4, 4, 4, 1.0f, ma, 4, at(ma, 16), 4, 0.0f, at(ma, 32), 4));
    OK(b, recur_be_gemm(BE(b), 0, 0, 4, 4, 4, 1.0f, mb, 4, at(mb, 16), 4, 0.0f, at(mb, 32), 4));
    struct recur_cl_stats s0, s1, s2;
    recur_cl_stats_get(&s0);
    recur_be_free(BE(a), &ma);
    recur_ctx_free(a);
    recur_cl_stats_get(&s1);
    cr_assert_eq(s1.clblast_clears, s0.clblast_clears, "CLBlast's cache was cleared while another context used it");
    recur_be_free(BE(b), &mb);
    recur_ctx_free(b);
    recur_cl_stats_get(&s2);
    cr_assert_eq(s2.clblast_clears, s0.clblast_clears + 1, "CLBlast's cache was not cleared by the last context");
}

Test(device, thousand_cycles_leak_nothing) {
    NEED_DEVICE();
    const char *cellname = NULL;
    for (size_t i = 0; i < recur_cell_count() && !cellname; i++) {
        recur_cell_info info;
        cr_assert_eq(recur_cell_get(i, &info), RECUR_OK);
        if (strstr(info.backends, "opencl") && strcmp(info.name, "lstm") == 0) cellname = info.name;
    }
    for (size_t i = 0; i < recur_cell_count() && !cellname; i++) {
        recur_cell_info info;
        cr_assert_eq(recur_cell_get(i, &info), RECUR_OK);
        if (strstr(info.backends, "opencl")) cellname = info.name;
    }
    struct recur_cl_stats s0, s1;
    recur_cl_stats_get(&s0);
    long rss0 = 0;
    double t0 = now_s();
    const int warm = 50, cycles = getenv("RECUR_TEST_CYCLES") ? atoi(getenv("RECUR_TEST_CYCLES")) : 1000;
    float x[2 * 3 * 4], y[2 * 3 * 8];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = 0.1f * (float)i;
    for (int c = 0; c < warm + cycles; c++) {
        if (c == warm) {
            rss0 = rss_kib();
            t0 = now_s();
        }
        recur_ctx *ctx = NULL;
        recur_status st = recur_ctx_create(&ctx, "opencl");
        cr_assert_eq(st, RECUR_OK, "cycle %d: %s", c, recur_last_error());
        if (cellname) {
            /* a layer (its program and kernels, its buffers); now and then a run (CLBlast's programs) */
            recur_layer_desc ld = {cellname, NULL, 4, 8, 0};
            recur_layer *l = NULL;
            cr_assert_eq(recur_layer_create(ctx, &ld, &l), RECUR_OK, "cycle %d: %s", c, recur_ctx_error(ctx));
            if (c % 100 == 7) {
                recur_io io = {.T = 2, .N = 3, .x = x, .y = y};
                cr_assert_eq(recur_layer_forward(l, RECUR_MODE_INFERENCE, &io), RECUR_OK, "%s", recur_ctx_error(ctx));
            }
            if (c % 2) recur_layer_free(l); /* else recur_ctx_free frees it */
        } else {
            struct recur_mem m = dev_alloc(ctx, 64);
            recur_be_free(BE(ctx), &m);
        }
        recur_ctx_free(ctx);
    }
    double dt = now_s() - t0;
    long rss1 = rss_kib();
    recur_cl_stats_get(&s1);
    cr_log_info("%d cycles of context%s in %.2f s (%.2f ms each); RSS %ld -> %ld KiB; programs built %ld, loaded %ld",
                cycles, cellname ? " + layer" : "", dt, dt * 1e3 / cycles, rss0, rss1, STATS_DIFF(builds),
                STATS_DIFF(cache_loads));
    cr_assert_eq(s1.contexts, s0.contexts, "contexts: %ld live, %ld before", s1.contexts, s0.contexts);
    cr_assert_eq(s1.queues, s0.queues, "queues: %ld live, %ld before", s1.queues, s0.queues);
    cr_assert_eq(s1.programs, s0.programs, "programs: %ld live, %ld before", s1.programs, s0.programs);
    cr_assert_eq(s1.kernels, s0.kernels, "kernels: %ld live, %ld before", s1.kernels, s0.kernels);
    cr_assert_eq(s1.buffers, s0.buffers, "buffers: %ld live, %ld before", s1.buffers, s0.buffers);
    cr_assert_eq(STATS_DIFF(leaked_refs), 0, "%ld contexts were still referenced at close (by CLBlast?)",
                 STATS_DIFF(leaked_refs));
    if (!UNDER_ASAN) /* ASan's quarantine holds freed memory; LSan checks leaks there instead */
        cr_assert_lt(rss1 - rss0, 16 * 1024, "RSS grew by %ld KiB over %d cycles", rss1 - rss0, cycles);
}
