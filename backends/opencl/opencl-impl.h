/*
 * opencl-impl.h: the OpenCL backend's internal interface (not installed).
 *
 * What the backend's files share, and what tests/test-opencl.c reaches
 * without a device:
 *   select.c   the RECUR_DEVICE parser, a pure function over a device list;
 *   clerr.c    OpenCL and CLBlast status codes by name;
 *   cache.c    SHA-256 and the on-disk program binary cache (file I/O only);
 *   program.c  building a program through that cache;
 *   opencl.c   the dispatch table (recur_opencl_backend) and its counters.
 *
 * Only OpenCL 1.2 is used: every file is compiled with
 * CL_TARGET_OPENCL_VERSION=120 (see backends/opencl/meson.build).
 */
#ifndef RECUR_OPENCL_IMPL_H
#define RECUR_OPENCL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "recur/recur.h"

/* ------------------------------------------------------------------------ */
/* Device selection (select.c): no OpenCL call, so tests can feed fake lists. */

/* Device types as the selector sees them (a device may have several bits). */
enum recur_cl_type {
    RECUR_CL_TYPE_CPU = 1u << 0,
    RECUR_CL_TYPE_GPU = 1u << 1,
    RECUR_CL_TYPE_ACCELERATOR = 1u << 2,
    RECUR_CL_TYPE_OTHER = 1u << 3, /* custom or default-only devices */
};

/* One device of the list, in enumeration order (platform by platform). */
struct recur_cl_entry {
    unsigned platform;         /* platform index (clGetPlatformIDs order) */
    unsigned device;           /* index within its platform (clGetDeviceIDs, CL_DEVICE_TYPE_ALL) */
    const char *platform_name; /* CL_PLATFORM_NAME */
    const char *device_name;   /* CL_DEVICE_NAME */
    unsigned type;             /* enum recur_cl_type bits */
};

/*
 * Choose the device that `spec` selects: the RECUR_DEVICE value after
 * "opencl" and its ':' ("" for plain "opencl"). Grammar, each field an
 * index (digits) or a case-insensitive substring, empty fields matching all:
 *
 *   ""  or ":"       the first GPU, else the first device (a simulator,
 *                    Oclgrind, only when nothing else is left)
 *   "NAME"           the one device whose platform or device name contains NAME
 *   "P"              platform P (an index)
 *   "P:D"            device D of platform P ("0:1"; D may be a device-name substring)
 *   ":TYPE"          a type: gpu, cpu or accelerator ("opencl::gpu")
 *   "P:TYPE:D"       platform, type, device; "0:gpu:1", "nvidia::0", "::cpu"
 *
 * A field that is exactly a type word (gpu, cpu, accelerator) is a type in
 * any position; the middle one of three fields must be empty or a type. A
 * device index counts within the devices that the platform and type fields
 * leave (with P an index and no type: clGetDeviceIDs' index, as in the
 * selector "opencl:P:D" that devices() prints). Without a device index:
 * one device left is the choice; several left by index and type fields
 * alone give the first GPU among them, else the first, passing over
 * simulators (recur_cl_simulator) while another device is left; several left after
 * a name field is ambiguous.
 *
 * Returns RECUR_OK and sets *chosen (an index into list), or returns
 * RECUR_ERR_DEVICE, leaves *chosen alone and writes a message into msg
 * (msg may be NULL when len is 0) that names the whole selector
 * ('opencl:SPEC') and says what went wrong:
 * too many fields, an unknown type, an index out of range (naming the
 * index and the count), no match (listing every device with its selector),
 * an ambiguous name (listing the matches). The first 256 devices of the
 * list are considered.
 */
recur_status recur_cl_select(const struct recur_cl_entry *list, size_t n, size_t n_platforms, const char *spec,
                             size_t *chosen, char *msg, size_t len);

/* 1 if the platform is a simulator (Oclgrind, which reports itself as a
 * GPU): never a default, chosen only by name, index or when alone. */
int recur_cl_simulator(const char *platform_name);

/* "opencl:P:D", the exact selector of a device. */
void recur_cl_selector(const struct recur_cl_entry *e, char *buf, size_t len);

/* "GPU", "CPU", "accelerator", "other": the first bit set, for messages. */
const char *recur_cl_type_name(unsigned type);

/* ------------------------------------------------------------------------ */
/* Status codes by name (clerr.c).                                          */

/* "CL_OUT_OF_RESOURCES" for -5; NULL for a code it does not know. */
const char *recur_cl_code_name(int code);
/* "CLBlastInvalidLeadDimA" for -1016 (CLBlast's OpenCL-valued codes too); NULL if unknown. */
const char *recur_clblast_code_name(int code);
/* The name, or "OpenCL error <code>" written into buf. */
const char *recur_cl_code_str(int code, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* The program binary cache (cache.c): files only, no OpenCL call.          */

#define RECUR_SHA256_LEN 32

void recur_sha256(const void *data, size_t len, unsigned char out[RECUR_SHA256_LEN]);
/* The digest as 64 lowercase hex digits and a NUL (buf >= 65 bytes). */
void recur_sha256_hex(const void *data, size_t len, char *buf);

/*
 * The cache directory: $RECUR_CACHE_DIR, else $XDG_CACHE_HOME/recur, else
 * $HOME/.cache/recur. Returns 0 when none can be named (no HOME).
 */
int recur_cl_cache_dir(char *buf, size_t len);

/* The file of an entry: DIR/<first 32 hex digits of sha256(key)>.bin. */
void recur_cl_cache_path(const char *dir, const char *key, char *buf, size_t len);

/*
 * The file format (little-endian):
 *   8 bytes "RCLBIN\r\n", u32 format version, u32 key length, u64 binary
 *   size, u64 recur_checksum64 of the binary, the key, the binary; nothing
 *   more. (The key holds the source's SHA-256; the binary's checksum only
 *   has to catch truncation and corruption, and is cheap for large binaries.)
 */
#define RECUR_CL_CACHE_MAGIC "RCLBIN\r\n"
#define RECUR_CL_CACHE_FORMAT 2u

/* A 64-bit checksum (not cryptographic) of the binary in a cache entry. */
uint64_t recur_checksum64(const void *data, size_t len);

/*
 * The binary stored for `key`, malloc'd (the caller frees), or NULL with the
 * reason in why: no entry, unreadable, truncated, a bad magic or format,
 * another key (other device, driver, source or options), a bad checksum.
 */
unsigned char *recur_cl_cache_load(const char *dir, const char *key, size_t *size, char *why, size_t why_len);

/*
 * Store `bin` for `key`: creates the directory, writes a temporary file in
 * it and renames it over the entry (atomic). Returns 0, or -1 with the
 * reason in why. The caller logs a failure at debug level; it is never an
 * error of the run.
 */
int recur_cl_cache_store(const char *dir, const char *key, const unsigned char *bin, size_t size, char *why,
                         size_t why_len);

/* ------------------------------------------------------------------------ */
/* Counters (opencl.c), process-wide, for the leak and cache tests.         */

struct recur_cl_stats {
    /* live now: created and not yet released by recur */
    long contexts, queues, programs, kernels, buffers;
    /* totals since the process started */
    long builds;         /* programs built from source */
    long cache_loads;    /* programs created from a cached binary */
    long cache_stores;   /* entries written */
    long cache_rejects;  /* entries found but not used (corrupt, stale, refused by the driver) */
    long leaked_refs;    /* contexts that some other holder still referenced at close */
    long launches_split; /* kernel launches split because of work-group count limits */
    long clblast_clears; /* CLBlastClearCache calls: when the last context that used CLBlast closed */
    long host_waits;     /* calls that made the host wait for a queue: blocking reads and writes, clFinish
                          * (the per-step test of the training path counts them) */
};

void recur_cl_stats_get(struct recur_cl_stats *out);

/*
 * Tests: the most work-groups one launch may have in dimension 1 (rows).
 * Default 65535 (NVIDIA's grid limit, the strictest known); 0 restores it.
 */
void recur_cl_debug_max_groups(size_t groups);

/* 1 in a build with -Dtest_hooks=true, whose OpenCL backend honours
 * RECUR_CL_TEST_POISON=1 (new buffers filled with NaN) and
 * RECUR_CL_TEST_LIMITS (GPU-like caps on PoCL; opencl.c: test_limits). */
int recur_cl_test_hooks(void);

/* The limits of an open OpenCL context (be->iface must be the OpenCL backend). */
struct recur_backend;
struct recur_cl_limits {
    uint64_t max_alloc;       /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t global_mem;      /* CL_DEVICE_GLOBAL_MEM_SIZE */
    size_t max_work_group;    /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    size_t max_items[3];      /* CL_DEVICE_MAX_WORK_ITEM_SIZES */
};
int recur_cl_limits_get(const struct recur_backend *be, struct recur_cl_limits *out);

#endif /* RECUR_OPENCL_IMPL_H */
