/* onednn-peer.c - oneDNN (2.x C API) peer for recur's benchmark.
 * See onednn-peer.h for the contract. Link with -ldnnl. */
#define _POSIX_C_SOURCE 200809L

#include "onednn-peer.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- cached engine and stream ------------------------------------------ */

static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

void onednn_rnn_bench_release(void)
{
    if (g_stream) dnnl_stream_destroy(g_stream);
    if (g_engine) dnnl_engine_destroy(g_engine);
    g_stream = NULL;
    g_engine = NULL;
}

/* ---- errors -------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* CHECK(fn, (args)): calls fn args; on failure writes "fn: status" to err
 * and jumps to the enclosing function's `out` label (rc stays -1). */
#define CHECK(fn, args)                                                        \
    do {                                                                       \
        dnnl_status_t chk_st_ = fn args;                                       \
        if (chk_st_ != dnnl_success) {                                         \
            set_err(err, errlen, "%s: %s", #fn, dnnl_status2str(chk_st_));     \
            goto out;                                                          \
        }                                                                      \
    } while (0)

static int get_engine(char *err, size_t errlen)
{
    int rc = -1;
    if (!g_engine) CHECK(dnnl_engine_create, (&g_engine, dnnl_cpu, 0));
    if (!g_stream)
        CHECK(dnnl_stream_create,
              (&g_stream, g_engine, dnnl_stream_default_flags));
    rc = 0;
out:
    return rc;
}

/* ---- cells ---------------------------------------------------------------- */

enum cell_kind { CELL_RNN_TANH, CELL_RNN_RELU, CELL_LSTM, CELL_GRU, CELL_GRU_LBR };

struct cell_info {
    const char *name;
    enum cell_kind kind;
    int gates;      /* G of the ldigo weights */
    int bias_gates; /* gates of the ldgo bias (lbr gru has an extra one) */
};

static const struct cell_info cells[] = {
    {"rnn", CELL_RNN_TANH, 1, 1},
    {"rnn-relu", CELL_RNN_RELU, 1, 1},
    {"lstm", CELL_LSTM, 4, 4},
    {"gru", CELL_GRU, 3, 3},
    {"gru-lbr", CELL_GRU_LBR, 3, 4},
};

/* ---- helpers -------------------------------------------------------------- */

/* bf16 <-> f32: the top 16 bits, rounded to nearest even (no NaN here). */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Deterministic values in [-0.1, 0.1] from a 32-bit LCG, as n elements of
 * type dt (f32, or bf16 rounded from the same floats). */
static void fill_lcg(void *p, dnnl_data_type_t dt, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float v = (float)((double)(s >> 8) / 16777215.0 * 0.2 - 0.1);
        if (dt == dnnl_bf16)
            ((uint16_t *)p)[i] = to_bf16(v);
        else
            ((float *)p)[i] = v;
    }
}

static size_t dt_size(dnnl_data_type_t dt)
{
    return dt == dnnl_bf16 || dt == dnnl_f16 ? 2 : 4;
}

static int md_is_zero(const dnnl_memory_desc_t *md)
{
    return md == NULL || md->ndims == 0 || dnnl_memory_desc_get_size(md) == 0;
}

/* Creates a library-allocated memory for md. seed != 0 fills it with LCG
 * values (only meaningful for plain layouts); seed == 0 zeroes it. */
static int new_mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md,
                   uint32_t seed, char *err, size_t errlen)
{
    int rc = -1;
    void *h = NULL;
    CHECK(dnnl_memory_create, (m, md, g_engine, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_get_data_handle, (*m, &h));
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (seed)
        fill_lcg(h, md->data_type, bytes / dt_size(md->data_type), seed);
    else
        memset(h, 0, bytes);
    rc = 0;
out:
    return rc;
}

static int zero_mem(dnnl_memory_t m, char *err, size_t errlen)
{
    int rc = -1;
    void *h = NULL;
    const dnnl_memory_desc_t *md = NULL;
    CHECK(dnnl_memory_get_memory_desc, (m, &md));
    CHECK(dnnl_memory_get_data_handle, (m, &h));
    memset(h, 0, dnnl_memory_desc_get_size(md));
    rc = 0;
out:
    return rc;
}

/* Returns 1 when every element (f32 or bf16) of m is finite (m may be
 * NULL). */
static int mem_finite(dnnl_memory_t m)
{
    const dnnl_memory_desc_t *md = NULL;
    void *h = NULL;
    if (!m) return 1;
    if (dnnl_memory_get_memory_desc(m, &md) != dnnl_success) return 0;
    if (dnnl_memory_get_data_handle(m, &h) != dnnl_success) return 0;
    int bf16 = md->data_type == dnnl_bf16;
    size_t n = dnnl_memory_desc_get_size(md) / dt_size(md->data_type);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bf16 ? from_bf16(((const uint16_t *)h)[i])
                           : ((const float *)h)[i]))
            return 0;
    return 1;
}

/* Copies src into dst (layouts may differ) with a reorder primitive. */
static int reorder(dnnl_memory_t src, dnnl_memory_t dst, char *err,
                   size_t errlen)
{
    int rc = -1;
    const dnnl_memory_desc_t *smd = NULL, *dmd = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    CHECK(dnnl_memory_get_memory_desc, (src, &smd));
    CHECK(dnnl_memory_get_memory_desc, (dst, &dmd));
    CHECK(dnnl_reorder_primitive_desc_create,
          (&pd, smd, g_engine, dmd, g_engine, NULL));
    CHECK(dnnl_primitive_create, (&p, pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    CHECK(dnnl_primitive_execute, (p, g_stream, 2, args));
    CHECK(dnnl_stream_wait, (g_stream));
    rc = 0;
out:
    if (p) dnnl_primitive_destroy(p);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

static void add_arg(dnnl_exec_arg_t *args, int *n, int arg, dnnl_memory_t m)
{
    if (!m) return;
    args[*n].arg = arg;
    args[*n].memory = m;
    (*n)++;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- the benchmark -------------------------------------------------------- */

enum {
    M_SRC_LAYER, M_SRC_ITER, M_SRC_ITER_C,
    M_W_LAYER_USER, M_W_ITER_USER, M_W_PROJ_USER, M_BIAS,
    M_W_LAYER_FWD, M_W_ITER_FWD, M_W_PROJ_FWD,
    M_DST_LAYER, M_DST_ITER, M_DST_ITER_C, M_WORKSPACE,
    M_W_LAYER_BWD, M_W_ITER_BWD, M_W_PROJ_BWD,
    M_DIFF_SRC_LAYER, M_DIFF_SRC_ITER, M_DIFF_SRC_ITER_C,
    M_DIFF_W_LAYER, M_DIFF_W_ITER, M_DIFF_W_PROJ, M_DIFF_BIAS,
    M_DIFF_DST_LAYER, M_DIFF_DST_ITER, M_DIFF_DST_ITER_C,
    M_COUNT
};

/* The memory descriptors of an RNN primitive: its data (src_layer,
 * src_iter, src_iter_c, weights_layer, weights_iter, weights_projection,
 * bias, dst_layer, dst_iter, dst_iter_c), or their diffs. sic, dic: lstm's
 * c-state, else NULL; wp: lstm's projection weights (the _v3 init
 * functions), else NULL. */
struct rnn_mds {
    const dnnl_memory_desc_t *sl, *si, *sic, *wl, *wi, *wp, *b, *dl, *di,
            *dic;
};

/* Initialises the forward (bwd == 0) or backward op descriptor of cell c
 * with data descriptors m and (backward) diff descriptors g: the same
 * shapes and layouts; in f32 the same descriptors, in bf16 g is all f32
 * (oneDNN 2.x requires every diff in f32). Weights are format_tag_any both
 * for weights and diff weights. Sets *fn to the name of the init function
 * that was called. */
static dnnl_status_t init_rnn_desc(dnnl_rnn_desc_t *d, const struct cell_info *c,
                                   int bwd, dnnl_prop_kind_t prop,
                                   const struct rnn_mds *m,
                                   const struct rnn_mds *g, const char **fn)
{
    const dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;
    const unsigned flags = dnnl_rnn_flags_undef;
    switch (c->kind) {
    case CELL_RNN_TANH:
    case CELL_RNN_RELU: {
        /* alpha is relu's negative slope (0: plain relu); beta is unused. */
        dnnl_alg_kind_t act = c->kind == CELL_RNN_TANH ? dnnl_eltwise_tanh
                                                       : dnnl_eltwise_relu;
        if (!bwd) {
            *fn = "dnnl_vanilla_rnn_forward_desc_init";
            return dnnl_vanilla_rnn_forward_desc_init(d, prop, act, dir, m->sl,
                    m->si, m->wl, m->wi, m->b, m->dl, m->di, flags, 0.0f, 0.0f);
        }
        *fn = "dnnl_vanilla_rnn_backward_desc_init";
        return dnnl_vanilla_rnn_backward_desc_init(d, prop, act, dir, m->sl,
                m->si, m->wl, m->wi, m->b, m->dl, m->di, g->sl, g->si, g->wl,
                g->wi, g->b, g->dl, g->di, flags, 0.0f, 0.0f);
    }
    case CELL_LSTM:
        if (m->wp && !bwd) {
            *fn = "dnnl_lstm_forward_desc_init_v3";
            return dnnl_lstm_forward_desc_init_v3(d, prop, dir, m->sl, m->si,
                    m->sic, m->wl, m->wi, NULL, m->wp, m->b, m->dl, m->di,
                    m->dic, flags);
        }
        if (m->wp) {
            *fn = "dnnl_lstm_backward_desc_init_v3";
            return dnnl_lstm_backward_desc_init_v3(d, prop, dir, m->sl, m->si,
                    m->sic, m->wl, m->wi, NULL, m->wp, m->b, m->dl, m->di,
                    m->dic, g->sl, g->si, g->sic, g->wl, g->wi, NULL, g->wp,
                    g->b, g->dl, g->di, g->dic, flags);
        }
        if (!bwd) {
            *fn = "dnnl_lstm_forward_desc_init";
            return dnnl_lstm_forward_desc_init(d, prop, dir, m->sl, m->si,
                    m->sic, m->wl, m->wi, m->b, m->dl, m->di, m->dic, flags);
        }
        *fn = "dnnl_lstm_backward_desc_init";
        return dnnl_lstm_backward_desc_init(d, prop, dir, m->sl, m->si, m->sic,
                m->wl, m->wi, m->b, m->dl, m->di, m->dic, g->sl, g->si, g->sic,
                g->wl, g->wi, g->b, g->dl, g->di, g->dic, flags);
    case CELL_GRU:
        if (!bwd) {
            *fn = "dnnl_gru_forward_desc_init";
            return dnnl_gru_forward_desc_init(d, prop, dir, m->sl, m->si,
                    m->wl, m->wi, m->b, m->dl, m->di, flags);
        }
        *fn = "dnnl_gru_backward_desc_init";
        return dnnl_gru_backward_desc_init(d, prop, dir, m->sl, m->si, m->wl,
                m->wi, m->b, m->dl, m->di, g->sl, g->si, g->wl, g->wi, g->b,
                g->dl, g->di, flags);
    case CELL_GRU_LBR:
        if (!bwd) {
            *fn = "dnnl_lbr_gru_forward_desc_init";
            return dnnl_lbr_gru_forward_desc_init(d, prop, dir, m->sl, m->si,
                    m->wl, m->wi, m->b, m->dl, m->di, flags);
        }
        *fn = "dnnl_lbr_gru_backward_desc_init";
        return dnnl_lbr_gru_backward_desc_init(d, prop, dir, m->sl, m->si,
                m->wl, m->wi, m->b, m->dl, m->di, g->sl, g->si, g->wl, g->wi,
                g->b, g->dl, g->di, flags);
    }
    *fn = "init_rnn_desc";
    return dnnl_invalid_arguments;
}

/* Memory descriptor of execution argument `arg` of pd, or NULL. */
static const dnnl_memory_desc_t *arg_md(const_dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

/* *m = a new zeroed memory in the layout pd wants for argument arg. */
static int new_mem_for(const_dnnl_primitive_desc_t pd, int arg,
                       dnnl_memory_t *m, char *err, size_t errlen)
{
    const dnnl_memory_desc_t *md = arg_md(pd, arg);
    if (md_is_zero(md)) {
        set_err(err, errlen, "dnnl_primitive_desc_query_md: no descriptor "
                "for argument %d", arg);
        return -1;
    }
    return new_mem(m, md, 0, err, errlen);
}

/* *m = a new memory in the layout pd wants for weights argument arg,
 * holding user's values (reordered). */
static int reorder_for(const_dnnl_primitive_desc_t pd, int arg,
                       dnnl_memory_t user, dnnl_memory_t *m, char *err,
                       size_t errlen)
{
    if (new_mem_for(pd, arg, m, err, errlen)) return -1;
    return reorder(user, *m, err, errlen);
}

/* "fwd-impl" or "fwd-impl / bwd-impl": oneDNN's implementation strings. */
static void impl_names(const_dnnl_primitive_desc_t fwd,
                       const_dnnl_primitive_desc_t bwd, char *impl,
                       size_t impllen)
{
    const char *f = NULL, *b = NULL;
    if (!impl || !impllen) return;
    dnnl_primitive_desc_query(fwd, dnnl_query_impl_info_str, 0, &f);
    if (bwd) dnnl_primitive_desc_query(bwd, dnnl_query_impl_info_str, 0, &b);
    if (b && f && strcmp(f, b))
        snprintf(impl, impllen, "%s / %s", f, b);
    else
        snprintf(impl, impllen, "%s", f ? f : "?");
}

/* The descriptors of one data type: src_layer (sl), dst_layer (dl), the
 * h-states (s: src_iter and dst_iter alike) in plain layouts, and the
 * weights (wl, wi, wp: lstm's projection, when wpd is not NULL) in
 * format_tag_any. The data in dt, or (the same shapes) the diffs in f32. */
struct typed_mds {
    dnnl_memory_desc_t sl, dl, s, wl, wi, wp;
};

static int typed_mds_init(struct typed_mds *m, dnnl_data_type_t dt,
                          const dnnl_dims_t sld, const dnnl_dims_t dld,
                          const dnnl_dims_t sd, const dnnl_dims_t wld,
                          const dnnl_dims_t wid, const dnnl_dims_t wpd,
                          char *err, size_t errlen)
{
    int rc = -1;
    const dnnl_format_tag_t any = dnnl_format_tag_any;
    CHECK(dnnl_memory_desc_init_by_tag, (&m->sl, 3, sld, dt, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag, (&m->dl, 3, dld, dt, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag, (&m->s, 4, sd, dt, dnnl_ldnc));
    CHECK(dnnl_memory_desc_init_by_tag, (&m->wl, 5, wld, dt, any));
    CHECK(dnnl_memory_desc_init_by_tag, (&m->wi, 5, wid, dt, any));
    if (wpd) CHECK(dnnl_memory_desc_init_by_tag, (&m->wp, 4, wpd, dt, any));
    rc = 0;
out:
    return rc;
}

/* An opened layer: its primitives, memories and execution arguments. */
struct onednn_rnn {
    const struct cell_info *c;
    int training, P;
    dnnl_memory_t mem[M_COUNT];
    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    dnnl_primitive_t fwd, bwd;
    dnnl_exec_arg_t fargs[16], bargs[32];
    int nf, nb;
};

static void rnn_free(onednn_rnn *r)
{
    if (r->bwd) dnnl_primitive_destroy(r->bwd);
    if (r->fwd) dnnl_primitive_destroy(r->fwd);
    if (r->bwd_pd) dnnl_primitive_desc_destroy(r->bwd_pd);
    if (r->fwd_pd) dnnl_primitive_desc_destroy(r->fwd_pd);
    for (int k = 0; k < M_COUNT; k++)
        if (r->mem[k]) dnnl_memory_destroy(r->mem[k]);
    free(r);
}

onednn_rnn *onednn_rnn_open(const char *cell, int T, int N, int I, int H,
                            int P, int training, dnnl_data_type_t dt,
                            char *impl, size_t impllen, char *err,
                            size_t errlen)
{
    int rc = -1;
    const struct cell_info *c = NULL;
    onednn_rnn *r = NULL;
    const char *fn = "";
    dnnl_status_t st;

    if (err && errlen) err[0] = '\0';
    if (impl && impllen) impl[0] = '\0';
    if (cell)
        for (size_t k = 0; k < sizeof cells / sizeof cells[0]; k++)
            if (strcmp(cell, cells[k].name) == 0) c = &cells[k];
    if (!c) {
        set_err(err, errlen,
                "onednn_rnn_open: unknown cell \"%s\" (want rnn, rnn-relu, "
                "lstm, gru or gru-lbr)", cell ? cell : "(null)");
        return NULL;
    }
    if (T < 1 || N < 1 || I < 1 || H < 1 ||
        (training != 0 && training != 1) || P < 0 || P >= H ||
        (P && c->kind != CELL_LSTM) || (dt != dnnl_f32 && dt != dnnl_bf16)) {
        set_err(err, errlen,
                "onednn_rnn_open: invalid argument (cell %s T=%d N=%d I=%d "
                "H=%d P=%d training=%d dt=%s)",
                c->name, T, N, I, H, P, training, dnnl_dt2str(dt));
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        set_err(err, errlen, "onednn_rnn_open: out of memory");
        return NULL;
    }
    r->c = c, r->training = training, r->P = P;
    dnnl_memory_t *mem = r->mem;
    if (get_engine(err, errlen)) goto out;

    const int lstm = c->kind == CELL_LSTM;
    const dnnl_prop_kind_t fprop =
            training ? dnnl_forward_training : dnnl_forward_inference;

    /* ---- memory descriptors ----
     * With projection the output and h are P wide (R), c stays H wide.
     * dt: of the layer's data, h-states and weights; the bias, c-state
     * and every diff are f32 in every dt. The user's weights are f32,
     * converted by the reorders into the primitives'. */
    const int R = P ? P : H;
    dnnl_dims_t sl = {T, N, I}, dl = {T, N, R}, sdims = {1, 1, N, R};
    dnnl_dims_t cdims = {1, 1, N, H};
    dnnl_dims_t wl = {1, 1, I, c->gates, H}, wi = {1, 1, R, c->gates, H};
    dnnl_dims_t wp = {1, 1, H, P};
    dnnl_dims_t b = {1, 1, c->bias_gates, H};
    /* md: the data in dt; gd: the diffs (f32 in every dt) */
    struct typed_mds md, gd;
    dnnl_memory_desc_t md_sc, md_wl_user, md_wi_user, md_wp_user, md_b;
    if (typed_mds_init(&md, dt, sl, dl, sdims, wl, wi, P ? wp : NULL, err,
                       errlen) ||
        typed_mds_init(&gd, dnnl_f32, sl, dl, sdims, wl, wi, P ? wp : NULL,
                       err, errlen))
        goto out;
    CHECK(dnnl_memory_desc_init_by_tag, (&md_sc, 4, cdims, dnnl_f32, dnnl_ldnc));
    if (P)
        CHECK(dnnl_memory_desc_init_by_tag,
              (&md_wp_user, 4, wp, dnnl_f32, dnnl_ldio));
    CHECK(dnnl_memory_desc_init_by_tag,
          (&md_wl_user, 5, wl, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_init_by_tag,
          (&md_wi_user, 5, wi, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_init_by_tag, (&md_b, 4, b, dnnl_f32, dnnl_ldgo));
    const dnnl_memory_desc_t *md_sic = lstm ? &md_sc : NULL;
    const dnnl_memory_desc_t *md_dic = lstm ? &md_sc : NULL;
    const struct rnn_mds mds = {&md.sl, &md.s, md_sic, &md.wl, &md.wi,
                                P ? &md.wp : NULL, &md_b, &md.dl, &md.s,
                                md_dic};
    const struct rnn_mds gds = {&gd.sl, &gd.s, md_sic, &gd.wl, &gd.wi,
                                P ? &gd.wp : NULL, &md_b, &gd.dl, &gd.s,
                                md_dic};

    /* ---- forward primitive ---- */
    {
        dnnl_rnn_desc_t d;
        st = init_rnn_desc(&d, c, 0, fprop, &mds, NULL, &fn);
        if (st != dnnl_success) {
            set_err(err, errlen, "%s: %s", fn, dnnl_status2str(st));
            goto out;
        }
        CHECK(dnnl_primitive_desc_create, (&r->fwd_pd, &d, NULL, g_engine, NULL));
        CHECK(dnnl_primitive_create, (&r->fwd, r->fwd_pd));
    }
    if (training) {
        dnnl_rnn_desc_t d;
        st = init_rnn_desc(&d, c, 1, dnnl_backward, &mds, &gds, &fn);
        if (st != dnnl_success) {
            set_err(err, errlen, "%s: %s", fn, dnnl_status2str(st));
            goto out;
        }
        CHECK(dnnl_primitive_desc_create,
              (&r->bwd_pd, &d, NULL, g_engine, r->fwd_pd));
        CHECK(dnnl_primitive_create, (&r->bwd, r->bwd_pd));
    }

    const_dnnl_primitive_desc_t fwd_pd = r->fwd_pd, bwd_pd = r->bwd_pd;

    /* ---- memories: inputs (filled), weights (reordered), outputs ---- */
    if (new_mem(&mem[M_SRC_LAYER], &md.sl, 1, err, errlen)) goto out;
    if (new_mem(&mem[M_SRC_ITER], &md.s, 2, err, errlen)) goto out;
    if (lstm && new_mem(&mem[M_SRC_ITER_C], &md_sc, 3, err, errlen)) goto out;
    if (new_mem(&mem[M_W_LAYER_USER], &md_wl_user, 4, err, errlen)) goto out;
    if (new_mem(&mem[M_W_ITER_USER], &md_wi_user, 5, err, errlen)) goto out;
    if (P && new_mem(&mem[M_W_PROJ_USER], &md_wp_user, 10, err, errlen))
        goto out;
    if (new_mem(&mem[M_BIAS], &md_b, 6, err, errlen)) goto out;
    if (new_mem(&mem[M_DST_LAYER], &md.dl, 0, err, errlen)) goto out;
    if (new_mem(&mem[M_DST_ITER], &md.s, 0, err, errlen)) goto out;
    if (lstm && new_mem(&mem[M_DST_ITER_C], &md_sc, 0, err, errlen)) goto out;

    /* The weights, reordered into each primitive's own layout. */
    if (reorder_for(fwd_pd, DNNL_ARG_WEIGHTS_LAYER, mem[M_W_LAYER_USER],
                    &mem[M_W_LAYER_FWD], err, errlen) ||
        reorder_for(fwd_pd, DNNL_ARG_WEIGHTS_ITER, mem[M_W_ITER_USER],
                    &mem[M_W_ITER_FWD], err, errlen) ||
        (P && reorder_for(fwd_pd, DNNL_ARG_WEIGHTS_PROJECTION,
                          mem[M_W_PROJ_USER], &mem[M_W_PROJ_FWD], err, errlen)))
        goto out;
    if (training) {
        const dnnl_memory_desc_t *ws =
                dnnl_primitive_desc_query_md(fwd_pd, dnnl_query_workspace_md, 0);
        if (!md_is_zero(ws) && new_mem(&mem[M_WORKSPACE], ws, 0, err, errlen))
            goto out;

        if (reorder_for(bwd_pd, DNNL_ARG_WEIGHTS_LAYER, mem[M_W_LAYER_USER],
                        &mem[M_W_LAYER_BWD], err, errlen) ||
            reorder_for(bwd_pd, DNNL_ARG_WEIGHTS_ITER, mem[M_W_ITER_USER],
                        &mem[M_W_ITER_BWD], err, errlen) ||
            (P && reorder_for(bwd_pd, DNNL_ARG_WEIGHTS_PROJECTION,
                              mem[M_W_PROJ_USER], &mem[M_W_PROJ_BWD], err,
                              errlen)))
            goto out;
        if (new_mem_for(bwd_pd, DNNL_ARG_DIFF_WEIGHTS_LAYER,
                        &mem[M_DIFF_W_LAYER], err, errlen) ||
            new_mem_for(bwd_pd, DNNL_ARG_DIFF_WEIGHTS_ITER,
                        &mem[M_DIFF_W_ITER], err, errlen) ||
            (P && new_mem_for(bwd_pd, DNNL_ARG_DIFF_WEIGHTS_PROJECTION,
                              &mem[M_DIFF_W_PROJ], err, errlen)))
            goto out;
        if (new_mem(&mem[M_DIFF_BIAS], &md_b, 0, err, errlen)) goto out;
        if (new_mem(&mem[M_DIFF_SRC_LAYER], &gd.sl, 0, err, errlen)) goto out;
        if (new_mem(&mem[M_DIFF_SRC_ITER], &gd.s, 0, err, errlen)) goto out;
        if (lstm && new_mem(&mem[M_DIFF_SRC_ITER_C], &md_sc, 0, err, errlen))
            goto out;
        if (new_mem(&mem[M_DIFF_DST_LAYER], &gd.dl, 7, err, errlen)) goto out;
        if (new_mem(&mem[M_DIFF_DST_ITER], &gd.s, 8, err, errlen)) goto out;
        if (lstm && new_mem(&mem[M_DIFF_DST_ITER_C], &md_sc, 9, err, errlen))
            goto out;
    }
    /* The user-layout weights are only the reorders' source. */
    dnnl_memory_destroy(mem[M_W_LAYER_USER]);
    dnnl_memory_destroy(mem[M_W_ITER_USER]);
    if (mem[M_W_PROJ_USER]) dnnl_memory_destroy(mem[M_W_PROJ_USER]);
    mem[M_W_LAYER_USER] = mem[M_W_ITER_USER] = mem[M_W_PROJ_USER] = NULL;

    /* ---- execution arguments ---- */
    dnnl_exec_arg_t *fargs = r->fargs, *bargs = r->bargs;
    int *nf = &r->nf, *nb = &r->nb;
    add_arg(fargs, nf, DNNL_ARG_SRC_LAYER, mem[M_SRC_LAYER]);
    add_arg(fargs, nf, DNNL_ARG_SRC_ITER, mem[M_SRC_ITER]);
    add_arg(fargs, nf, DNNL_ARG_SRC_ITER_C, mem[M_SRC_ITER_C]);
    add_arg(fargs, nf, DNNL_ARG_WEIGHTS_LAYER, mem[M_W_LAYER_FWD]);
    add_arg(fargs, nf, DNNL_ARG_WEIGHTS_ITER, mem[M_W_ITER_FWD]);
    add_arg(fargs, nf, DNNL_ARG_WEIGHTS_PROJECTION, mem[M_W_PROJ_FWD]);
    add_arg(fargs, nf, DNNL_ARG_BIAS, mem[M_BIAS]);
    add_arg(fargs, nf, DNNL_ARG_DST_LAYER, mem[M_DST_LAYER]);
    add_arg(fargs, nf, DNNL_ARG_DST_ITER, mem[M_DST_ITER]);
    add_arg(fargs, nf, DNNL_ARG_DST_ITER_C, mem[M_DST_ITER_C]);
    add_arg(fargs, nf, DNNL_ARG_WORKSPACE, mem[M_WORKSPACE]);
    if (training) {
        add_arg(bargs, nb, DNNL_ARG_SRC_LAYER, mem[M_SRC_LAYER]);
        add_arg(bargs, nb, DNNL_ARG_SRC_ITER, mem[M_SRC_ITER]);
        add_arg(bargs, nb, DNNL_ARG_SRC_ITER_C, mem[M_SRC_ITER_C]);
        add_arg(bargs, nb, DNNL_ARG_WEIGHTS_LAYER, mem[M_W_LAYER_BWD]);
        add_arg(bargs, nb, DNNL_ARG_WEIGHTS_ITER, mem[M_W_ITER_BWD]);
        add_arg(bargs, nb, DNNL_ARG_WEIGHTS_PROJECTION, mem[M_W_PROJ_BWD]);
        add_arg(bargs, nb, DNNL_ARG_BIAS, mem[M_BIAS]);
        add_arg(bargs, nb, DNNL_ARG_DST_LAYER, mem[M_DST_LAYER]);
        add_arg(bargs, nb, DNNL_ARG_DST_ITER, mem[M_DST_ITER]);
        add_arg(bargs, nb, DNNL_ARG_DST_ITER_C, mem[M_DST_ITER_C]);
        add_arg(bargs, nb, DNNL_ARG_WORKSPACE, mem[M_WORKSPACE]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_DST_LAYER, mem[M_DIFF_DST_LAYER]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_DST_ITER, mem[M_DIFF_DST_ITER]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_DST_ITER_C, mem[M_DIFF_DST_ITER_C]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_SRC_LAYER, mem[M_DIFF_SRC_LAYER]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_SRC_ITER, mem[M_DIFF_SRC_ITER]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_SRC_ITER_C, mem[M_DIFF_SRC_ITER_C]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_WEIGHTS_LAYER, mem[M_DIFF_W_LAYER]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_WEIGHTS_ITER, mem[M_DIFF_W_ITER]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_WEIGHTS_PROJECTION,
                mem[M_DIFF_W_PROJ]);
        add_arg(bargs, nb, DNNL_ARG_DIFF_BIAS, mem[M_DIFF_BIAS]);
    }

    impl_names(fwd_pd, bwd_pd, impl, impllen);
    rc = 0;

out:
    if (rc) {
        rnn_free(r);
        r = NULL;
    }
    return r;
}

double onednn_rnn_run(onednn_rnn *r, char *err, size_t errlen)
{
    double ms = -1;
    if (r->training) { /* oneDNN 2.x accumulates weight gradients */
        if (zero_mem(r->mem[M_DIFF_W_LAYER], err, errlen) ||
            zero_mem(r->mem[M_DIFF_W_ITER], err, errlen) ||
            zero_mem(r->mem[M_DIFF_BIAS], err, errlen) ||
            (r->P && zero_mem(r->mem[M_DIFF_W_PROJ], err, errlen)))
            return -1;
    }
    double t0 = now_ms();
    CHECK(dnnl_primitive_execute, (r->fwd, g_stream, r->nf, r->fargs));
    if (r->training)
        CHECK(dnnl_primitive_execute, (r->bwd, g_stream, r->nb, r->bargs));
    CHECK(dnnl_stream_wait, (g_stream));
    ms = now_ms() - t0;
out:
    return ms;
}

int onednn_rnn_close(onednn_rnn *r, char *err, size_t errlen)
{
    static const int check[] = {M_DST_LAYER, M_DST_ITER, M_DST_ITER_C,
            M_DIFF_SRC_LAYER, M_DIFF_SRC_ITER, M_DIFF_SRC_ITER_C,
            M_DIFF_W_LAYER, M_DIFF_W_ITER, M_DIFF_W_PROJ, M_DIFF_BIAS};
    int rc = 0;
    if (!r) return 0;
    for (size_t k = 0; k < sizeof check / sizeof check[0] && !rc; k++)
        if (!mem_finite(r->mem[check[k]])) {
            set_err(err, errlen, "onednn_rnn_close: non-finite values in "
                    "output %d of cell %s", check[k], r->c->name);
            rc = -1;
        }
    rnn_free(r);
    return rc;
}

const char *onednn_cpu_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "all";
    }
}
