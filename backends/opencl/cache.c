/*
 * cache.c: the on-disk cache of OpenCL program binaries (file I/O only).
 *
 * An entry is one file named after the SHA-256 of its key (device, driver,
 * OpenCL version, source hash, build options: see program.c). The file
 * repeats the whole key and carries the binary's size and checksum, so a
 * truncated, corrupt or colliding file is detected and ignored; the caller
 * then rebuilds and stores a fresh entry, written to a temporary file and
 * renamed over the old one so that readers never see half a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opencl-impl.h"

/* ---- SHA-256 (FIPS 180-4) ---- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void recur_sha256(const void *data, size_t len, unsigned char out[RECUR_SHA256_LEN]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t left = len;
    while (left >= 64) {
        sha256_block(h, p);
        p += 64;
        left -= 64;
    }
    unsigned char tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tlen = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha256_block(h, tail);
    if (tlen == 128) sha256_block(h, tail + 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

void recur_sha256_hex(const void *data, size_t len, char *buf) {
    unsigned char d[RECUR_SHA256_LEN];
    recur_sha256(data, len, d);
    for (int i = 0; i < RECUR_SHA256_LEN; i++) snprintf(buf + 2 * i, 3, "%02x", d[i]);
}

/* ---- the binary's checksum: 64 bits, 8 bytes a step (fast even unoptimised) ---- */

static uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint64_t recur_checksum64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)len * 0x100000001b3ull);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = (uint64_t)p[i] | (uint64_t)p[i + 1] << 8 | (uint64_t)p[i + 2] << 16 | (uint64_t)p[i + 3] << 24 |
                     (uint64_t)p[i + 4] << 32 | (uint64_t)p[i + 5] << 40 | (uint64_t)p[i + 6] << 48 |
                     (uint64_t)p[i + 7] << 56;
        h = (h ^ w) * 0x87c37b91114253d5ull;
        h ^= h >> 29;
    }
    uint64_t t = 0;
    for (int k = 0; i < len; i++, k += 8) t |= (uint64_t)p[i] << k;
    return mix64(h ^ t ^ 0x52dce729u);
}

/* ---- locations ---- */

int recur_cl_cache_dir(char *buf, size_t len) {
    const char *dir = getenv("RECUR_CACHE_DIR");
    if (dir && *dir) return snprintf(buf, len, "%s", dir) < (int)len;
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg == '/') return snprintf(buf, len, "%s/recur", xdg) < (int)len;
    const char *home = getenv("HOME");
    if (home && *home) return snprintf(buf, len, "%s/.cache/recur", home) < (int)len;
    return 0;
}

void recur_cl_cache_path(const char *dir, const char *key, char *buf, size_t len) {
    char hex[2 * RECUR_SHA256_LEN + 1];
    recur_sha256_hex(key, strlen(key), hex);
    hex[32] = 0;
    snprintf(buf, len, "%s/%s.bin", dir, hex);
}

/* ---- the file format ---- */

#define HEADER_SIZE (8 + 4 + 4 + 8 + 8)
#define KEY_MAX (64u * 1024u)

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Read exactly n bytes; 0 on success. */
static int read_all(int fd, void *buf, size_t n) {
    unsigned char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

unsigned char *recur_cl_cache_load(const char *dir, const char *key, size_t *size, char *why, size_t why_len) {
    char path[4096];
    recur_cl_cache_path(dir, key, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "%s: %s", path, errno == ENOENT ? "no entry" : strerror(errno));
        return NULL;
    }
    unsigned char *bin = NULL;
    char *stored = NULL;
    struct stat sb;
    unsigned char h[HEADER_SIZE];
    size_t klen = strlen(key);
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, why_len, "%s: not a readable file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size < HEADER_SIZE || read_all(fd, h, HEADER_SIZE) != 0) {
        snprintf(why, why_len, "%s: truncated header (%lld bytes)", path, (long long)sb.st_size);
        goto out;
    }
    if (memcmp(h, RECUR_CL_CACHE_MAGIC, 8) != 0) {
        snprintf(why, why_len, "%s: not a recur cache entry (bad magic)", path);
        goto out;
    }
    uint32_t format = get_u32(h + 8), stored_klen = get_u32(h + 12);
    uint64_t bsize = get_u64(h + 16);
    if (format != RECUR_CL_CACHE_FORMAT) {
        snprintf(why, why_len, "%s: format %u, expected %u", path, format, RECUR_CL_CACHE_FORMAT);
        goto out;
    }
    if (stored_klen > KEY_MAX || bsize == 0 || bsize > (uint64_t)sb.st_size ||
        (uint64_t)sb.st_size != HEADER_SIZE + (uint64_t)stored_klen + bsize) {
        snprintf(why, why_len, "%s: %lld bytes, the header says %llu (truncated or corrupt)", path,
                 (long long)sb.st_size, (unsigned long long)(HEADER_SIZE + (uint64_t)stored_klen + bsize));
        goto out;
    }
    stored = malloc(stored_klen + 1u);
    if (!stored || read_all(fd, stored, stored_klen) != 0) {
        snprintf(why, why_len, "%s: cannot read the key", path);
        goto out;
    }
    stored[stored_klen] = 0;
    if (stored_klen != klen || memcmp(stored, key, klen) != 0) {
        snprintf(why, why_len, "%s: another key (another device, driver, source or options)", path);
        goto out;
    }
    bin = malloc((size_t)bsize);
    if (!bin || read_all(fd, bin, (size_t)bsize) != 0) {
        snprintf(why, why_len, "%s: cannot read %llu bytes of binary", path, (unsigned long long)bsize);
        free(bin);
        bin = NULL;
        goto out;
    }
    if (recur_checksum64(bin, (size_t)bsize) != get_u64(h + 24)) {
        snprintf(why, why_len, "%s: checksum mismatch (corrupt binary)", path);
        free(bin);
        bin = NULL;
        goto out;
    }
    *size = (size_t)bsize;
    snprintf(why, why_len, "%s", path);
out:
    free(stored);
    close(fd);
    return bin;
}

/* mkdir -p, 0700 for what it creates. */
static int make_dirs(const char *dir) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST) return -1;
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

int recur_cl_cache_store(const char *dir, const char *key, const unsigned char *bin, size_t size, char *why,
                         size_t why_len) {
    static atomic_uint serial;
    size_t klen = strlen(key);
    if (klen > KEY_MAX || size == 0) {
        snprintf(why, why_len, "nothing to store (key %zu bytes, binary %zu bytes)", klen, size);
        return -1;
    }
    if (make_dirs(dir) != 0) {
        snprintf(why, why_len, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096], tmp[4200];
    recur_cl_cache_path(dir, key, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&serial, 1u));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, why_len, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    unsigned char h[HEADER_SIZE];
    memcpy(h, RECUR_CL_CACHE_MAGIC, 8);
    put_u32(h + 8, RECUR_CL_CACHE_FORMAT);
    put_u32(h + 12, (uint32_t)klen);
    put_u64(h + 16, (uint64_t)size);
    put_u64(h + 24, recur_checksum64(bin, size));
    int ok = write_all(fd, h, sizeof h) == 0 && write_all(fd, key, klen) == 0 && write_all(fd, bin, size) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        snprintf(why, why_len, "cannot write %s: %s", path, strerror(err));
        unlink(tmp);
        return -1;
    }
    snprintf(why, why_len, "%s", path);
    return 0;
}
