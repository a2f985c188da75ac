/*
 * context.c: device listing, device choice (RECUR_DEVICE), contexts and
 * their thread count (RECUR_THREADS).
 */
#include <errno.h>
#include <stddef.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "context.h"
#include "recur/recur-train.h"

/* The first recur_device_info, which every caller's must hold. */
#define DEVICE_INFO_FIRST (offsetof(recur_device_info, detail) + sizeof(((recur_device_info *)0)->detail))

recur_status recur_devices_sized(recur_device_info *out, size_t cap, size_t *count, size_t size) {
    recur_err_clear(NULL);
    RETURN_IF(!count, NULL, RECUR_ERR_NULL, "recur_devices: count is NULL");
    RETURN_IF(cap && !out, NULL, RECUR_ERR_NULL, "recur_devices: out is NULL with cap %zu", cap);
    TRY(recur_info_size_ok(NULL, "recur_devices", "recur_device_info", size, DEVICE_INFO_FIRST));
    if (size == sizeof *out || !cap) { /* the caller's struct is this header's: fill in place */
        recur_be_devices(out, cap, count);
        for (size_t i = 0; i < cap && i < *count; i++) out[i].struct_size = sizeof *out;
        return RECUR_OK;
    }
    recur_device_info *all = calloc(cap, sizeof *all);
    RETURN_IF(!all, NULL, RECUR_ERR_NO_MEMORY, "recur_devices: %zu entries", cap);
    recur_be_devices(all, cap, count);
    for (size_t i = 0; i < cap && i < *count; i++)
        recur_info_copy((unsigned char *)out + i * size, size, &all[i], sizeof all[i]);
    free(all);
    return RECUR_OK;
}

/* "a, b, c" of every device's selector, for messages. */
static void device_list(char *buf, size_t len) {
    recur_device_info info[32];
    size_t n = 0;
    recur_devices(info, 32, &n);
    buf[0] = 0;
    size_t used = 0;
    for (size_t i = 0; i < n && i < 32 && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s (%s)", i ? ", " : "",
                                 info[i].selector, info[i].name);
}

/* The CPUs this process may run on (its affinity mask), at least 1. */
static int affinity_cpus(void) {
    long n = 0;
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
    if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > RECUR_THREADS_MAX ? RECUR_THREADS_MAX : (int)n;
}

/* A new context's thread count: RECUR_THREADS, else the affinity mask's
 * CPUs; *source says which, for the log. */
static recur_status default_threads(int *out, const char **source) {
    const char *env = getenv("RECUR_THREADS");
    if (!env || !*env) {
        *out = affinity_cpus();
        *source = "the CPUs this process may run on";
        return RECUR_OK;
    }
    char *end;
    errno = 0;
    long n = strtol(env, &end, 10);
    RETURN_IF(end == env || *end || errno || n < 1 || n > RECUR_THREADS_MAX, NULL, RECUR_ERR_ARG,
              "RECUR_THREADS '%s': expected a whole number from 1 to %d", env, RECUR_THREADS_MAX);
    *out = (int)n;
    *source = "RECUR_THREADS";
    return RECUR_OK;
}

recur_status recur_ctx_create(recur_ctx **out, const char *device) {
    recur_err_clear(NULL);
    RETURN_IF(!out, NULL, RECUR_ERR_NULL, "recur_ctx_create: out is NULL");
    *out = NULL;
    int threads = 1;
    const char *threads_source = "";
    recur_status st = default_threads(&threads, &threads_source);
    if (st != RECUR_OK) return st;

    const char *source = "argument";
    const char *sel = device;
    if (!sel) {
        sel = getenv("RECUR_DEVICE");
        source = "RECUR_DEVICE";
    }
    const char *rest;
    const struct recur_backend_i *iface = recur_be_find(sel, &rest);
    if (!sel || !*sel) {
        sel = iface->name;
        source = "default";
    } else if (!iface) {
        char list[768];
        device_list(list, sizeof list);
        return recur_err(NULL, RECUR_ERR_DEVICE, "%s '%s': unknown backend; devices: %s", source, sel, list);
    }

    recur_ctx *ctx = calloc(1, sizeof *ctx);
    RETURN_IF(!ctx, NULL, RECUR_ERR_NO_MEMORY, "recur_ctx_create: out of memory");
    st = recur_be_open(&ctx->be, iface, ctx, rest);
    if (st != RECUR_OK) {
        /* Prefix the backend's message with where the selector came from. */
        char msg[RECUR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", ctx->msg);
        free(ctx);
        return recur_err(NULL, st, "%s '%s': %s", source, sel, msg);
    }
    ctx->be.threads = threads;
    recur_log(RECUR_LOG_INFO, "device %s: %s (%s); threads: %d (%s)", ctx->be.info.selector, ctx->be.info.name,
              ctx->be.info.detail, threads, threads_source);
    *out = ctx;
    return RECUR_OK;
}

void recur_ctx_free(recur_ctx *ctx) {
    if (!ctx) return;
    /* optimizers, nets, models and layers die with their context */
    while (ctx->optims) recur_optim_free(ctx->optims);
    while (ctx->nets) recur_net_free(ctx->nets);
    while (ctx->models) recur_model_free(ctx->models);
    while (ctx->layers) recur_layer_free(ctx->layers);
    recur_buffers_free(ctx);
    recur_be_close(&ctx->be);
    free(ctx);
}

recur_status recur_ctx_device_sized(const recur_ctx *ctx, recur_device_info *out, size_t size) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_ctx_device: ctx is NULL");
    recur_err_clear((recur_ctx *)ctx);
    RETURN_IF(!out, (recur_ctx *)ctx, RECUR_ERR_NULL, "recur_ctx_device: out is NULL");
    TRY(recur_info_size_ok((recur_ctx *)ctx, "recur_ctx_device", "recur_device_info", size, DEVICE_INFO_FIRST));
    recur_device_info info = ctx->be.info;
    recur_info_copy(out, size, &info, sizeof info);
    return RECUR_OK;
}

recur_status recur_ctx_set_threads(recur_ctx *ctx, int threads) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_ctx_set_threads: ctx is NULL");
    recur_err_clear(ctx);
    RETURN_IF(threads < 1 || threads > RECUR_THREADS_MAX, ctx, RECUR_ERR_ARG,
              "recur_ctx_set_threads: %d threads; expected 1 to %d", threads, RECUR_THREADS_MAX);
    ctx->be.threads = threads;
    recur_log(RECUR_LOG_INFO, "threads: %d (recur_ctx_set_threads)", threads);
    return RECUR_OK;
}

int recur_ctx_threads(const recur_ctx *ctx) { return ctx ? ctx->be.threads : 0; }
