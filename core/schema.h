/*
 * schema.h: what recur's __metadata__ strings mean (core/schema.c), for
 * model files (modelfile.c) and training files (trainfile.c) alike: a
 * model's settings, written and read in one place, and the typed values
 * every key is made of. Numbers are written and read the same whatever
 * locale the application runs in ('.' as the decimal point, always).
 *
 *   key            written   read
 *   format         "recur"   by the file's kind ("recur-train" for training files)
 *   recur_version  "0.1.0"   not read, informational
 *   cell           "lstm"    required: the cell's name (the caller looks it up)
 *   variant        "tanh"    optional: "" or absent is the cell's default
 *   input_size     "5"       required: decimal, 1..2^24
 *   hidden_size    "6"       required: decimal, 1..2^24
 *   num_layers     "2"       required: decimal, 1..RECUR_MAX_LAYERS
 *   direction      "bidi_concat"  required: any spelling recur_direction_parse takes
 *   dropout        "0.25"    optional (0): a decimal in [0, 1)
 *   zoneout        "0.1"     optional (0): a decimal in [0, 1); written only when not 0
 *   seed           "42"      optional (0): decimal u64
 *   proj_size      "64"      optional (0): decimal below hidden_size; written only when not 0
 *
 * Directions are written as recur_direction_name's words with '_' for '-'
 * ("bidi_concat", "bidi_sum"): the spelling every recur so far and the
 * PyTorch import code of docs/pytorch.md read.
 */
#ifndef RECUR_SCHEMA_H
#define RECUR_SCHEMA_H

#include "safetensors.h"

/* ---- numbers, independent of the locale ---- */

/* Decimal digits only (no sign, no space), 0..max. */
int recur_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* A whole string that is a finite decimal number with '.' as the point. */
int recur_parse_f32(const char *s, float *out);
/* The shortest decimal with '.' that reads back as exactly v (finite v);
 * 0 when the "C" locale cannot be made (out of memory). */
int recur_format_f32(float v, char buf[32]);

/* ---- reading: the metadata of one file, keys under a prefix ---- */

struct recur_meta_in {
    recur_ctx *ctx;                    /* where messages go (NULL: the thread's) */
    const struct recur_sf_meta *meta;
    const char *what, *path;           /* messages start "<what> '<path>': __metadata__ ..." */
    const char *prefix;                /* of every key: "" or "encoder." */
};

/* The value of prefix+key, or NULL. */
const char *recur_meta_get(const struct recur_meta_in *in, const char *key);
/* Each of these requires the key (FILE_METADATA "has no '<key>'") and a
 * value of its form (FILE_METADATA naming key and value). */
recur_status recur_meta_str(const struct recur_meta_in *in, const char *key, const char **out);
recur_status recur_meta_uint(const struct recur_meta_in *in, const char *key, uint64_t lo, uint64_t hi,
                             uint64_t *out);
/* One of names[0..n): *out is its index. */
recur_status recur_meta_name(const struct recur_meta_in *in, const char *key, const char *const *names, int n,
                             int *out);

/* A model's settings (the table above); *d's cell and variant point into
 * the metadata (variant NULL for the default). The cell is not looked up. */
recur_status recur_schema_get_model(const struct recur_meta_in *in, recur_model_desc *d);

/* ---- writing ---- */

/* prefix+key = value. */
recur_status recur_meta_put(struct recur_sf_meta *m, const char *prefix, const char *key, const char *value);
recur_status recur_meta_put_uint(struct recur_sf_meta *m, const char *prefix, const char *key, uint64_t v);
recur_status recur_meta_put_f32(struct recur_sf_meta *m, const char *prefix, const char *key, float v);
/* format, recur_version, then a model's settings, in the table's order. */
recur_status recur_schema_put_model(struct recur_sf_meta *m, const char *prefix, const char *format,
                                    const recur_model_desc *d);


#endif
