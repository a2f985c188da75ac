/*
 * safetensors.h: the safetensors file format (core/safetensors.c), knowing
 * nothing of models: read a file and check its header, JSON, dtypes, offsets
 * and (on request) finiteness; hold a whole document in memory; write one
 * atomically. What the __metadata__ strings mean is core/schema.c's; model
 * files (modelfile.c) and training files (trainfile.c) build on both.
 *
 *   [8 bytes]  N, the header length, a little-endian u64
 *   [N bytes]  the header: a JSON object, padded with spaces to a multiple of 8
 *   [rest]     the data: every tensor's raw little-endian F32 values, C order
 *
 * The header maps each tensor name to {"dtype": "F32", "shape": [...],
 * "data_offsets": [begin, end]}, offsets relative to the start of the data,
 * and "__metadata__" to an object of strings.
 */
#ifndef RECUR_SAFETENSORS_H
#define RECUR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

/* __metadata__: string keys and values, in the file's order. Parsed from a
 * file (recur_sf_file) they point into its JSON; in a document they are
 * owned (recur_sf_meta_put, recur_sf_meta_free). */
struct recur_sf_meta {
    char **k, **v;
    size_t n;
};
/* The value of key, or NULL. */
const char *recur_sf_meta_get(const struct recur_sf_meta *m, const char *key);
/* Add key = value, or replace the value of key (copies both). */
recur_status recur_sf_meta_put(struct recur_sf_meta *m, const char *key, const char *value);
void recur_sf_meta_free(struct recur_sf_meta *m);

/* ---- reading ---- */

/* One tensor of a parsed header. */
struct recur_sf_entry {
    const char *name, *dtype; /* into the JSON */
    int ndim;
    uint64_t dims[4]; /* the first four */
    uint64_t count;   /* values; UINT64_MAX when over 4 dimensions or over 2^51 values */
    uint64_t begin, end;
    int used; /* for the caller's matching */
};

/* A file's bytes, parsed: the caller keeps the bytes while it is open. */
struct recur_sf_file {
    const char *what, *path; /* "model file", its path: every message starts "<what> '<path>': " */
    struct cJSON *root;
    int has_meta;              /* the header has __metadata__ (maybe empty) */
    struct recur_sf_meta meta; /* strings into root */
    struct recur_sf_entry *t;  /* the tensors in the header's order */
    struct recur_sf_entry **by_name;
    size_t n;
    const uint8_t *data; /* the data section */
    uint64_t data_len;
};

/* A message "<what> '<path>': <detail>" with status st. */
recur_status recur_sf_err(recur_ctx *ctx, const struct recur_sf_file *f, recur_status st, const char *fmt, ...)
    RECUR_PRINTF(4, 5);
/* A copy of untrusted text for a message: at most 64 bytes, non-printable
 * bytes as '?'. */
const char *recur_sf_clean(const char *s, char buf[72]);

/* The whole of a regular file, into a malloc'd buffer. */
recur_status recur_sf_read_all(recur_ctx *ctx, const char *what, const char *path, uint8_t **out, size_t *len);
/* The header length and the JSON: FILE_TRUNCATED, FILE_HEADER, FILE_JSON
 * (syntax, a non-object, wrong field types, duplicate tensors or keys). */
recur_status recur_sf_parse(recur_ctx *ctx, const char *what, const char *path, const void *buf, size_t len,
                            struct recur_sf_file *f);
void recur_sf_close(struct recur_sf_file *f);
struct recur_sf_entry *recur_sf_find(const struct recur_sf_file *f, const char *name);
/* Every tensor's dtype (FILE_DTYPE), then offsets: reversed, not count*4
 * bytes, overlapping, leaving gaps or running past the end (FILE_OFFSETS),
 * tensors packed from 0 that need more than the file has (FILE_TRUNCATED);
 * then, with RECUR_LOAD_CHECK_FINITE, NaN or Inf (FILE_NONFINITE). Call it
 * once the tensors' names and shapes are known to be right. */
recur_status recur_sf_check_data(recur_ctx *ctx, const struct recur_sf_file *f, uint32_t flags);
/* F16's bits widened exactly to a float (BF16's: recur_bf16_to_f32, backend-host.h). */
float recur_sf_f16_to_f32(uint16_t h);
/* float to F16, rounded to nearest even; NaN stays a (quiet) NaN of the
 * same sign, Inf stays Inf; -1 for a finite value that rounds beyond F16's
 * largest (65504), 0 otherwise. (BF16: recur_f32_to_bf16, backend-host.h.) */
int recur_sf_f32_to_f16(float f, uint16_t *out);
void recur_sf_decode(const struct recur_sf_file *f, const struct recur_sf_entry *t, float *dst);

/* ---- whole documents (training files) ---- */

struct recur_sf_tensor {
    char *name;
    int ndim;
    int64_t shape[4];
    size_t count;
    float *data;
};
struct recur_sf_doc {
    struct recur_sf_tensor *t;
    size_t n;
    struct recur_sf_meta meta;
};
/* Check a file's bytes as the model loaders do, whatever its tensors (each
 * F32 with 1..4 dimensions, names under RECUR_SF_NAME_MAX bytes), and copy
 * them out. */
#define RECUR_SF_NAME_MAX 96
recur_status recur_sf_doc_parse(recur_ctx *ctx, const char *what, const char *path, const void *buf, size_t len,
                                uint32_t flags, struct recur_sf_doc *out);
void recur_sf_doc_free(struct recur_sf_doc *d);

/* ---- writing ---- */

/* What the writer needs of tensor i: name, ndim, shape and count for the
 * header (with_data 0), then, in order, its values (with_data 1). Pointers
 * stay valid until the next call. */
struct recur_sf_view {
    const char *name;
    int ndim;
    int64_t shape[4];
    size_t count;
    const float *data;
    int dtype; /* how the file stores it: recur_dtype (0: F32) */
};
typedef recur_status (*recur_sf_source)(void *user, size_t i, int with_data, struct recur_sf_view *out);

/* Write meta and n tensors to path atomically: a temporary file next to it
 * ("<path>.tmp-<pid>-<6 random characters>", mode 0666 & ~umask), written,
 * flushed, fsynced and closed, renamed over path, then the directory
 * fsynced; any failure removes the temporary file and leaves path as it
 * was. First it removes this writer's stale temporaries of the same path:
 * regular files of the caller's user named so, whose process is gone and
 * which have not changed for a minute, or which have not changed for a day
 * (their pid may be another process's by now). `fn` names the caller in
 * messages. */
recur_status recur_sf_write(recur_ctx *ctx, const char *fn, const char *path, const struct recur_sf_meta *meta,
                            size_t n, recur_sf_source src, void *user);
recur_status recur_sf_doc_write(recur_ctx *ctx, const char *fn, const char *path, const struct recur_sf_doc *d);

/* The writer's one write call, fwrite. Only tests change it: they link a
 * private copy of the library's objects and put a write that fails part way
 * here (tests/test-modelfile.c); librecur.so hides it, so no application or
 * environment variable can. */
extern size_t (*recur_sf_fwrite)(const void *p, size_t size, size_t n, FILE *fp);

#endif
