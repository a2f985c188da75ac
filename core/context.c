/*
 * context.c: device listing, device choice (RECUR_DEVICE), contexts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "context.h"
#include "recur/recur-train.h"

recur_status recur_devices(recur_device_info *out, size_t cap, size_t *count) {
    recur_err_clear(NULL);
    RETURN_IF(!count, NULL, RECUR_ERR_NULL, "recur_devices: count is NULL");
    RETURN_IF(cap && !out, NULL, RECUR_ERR_NULL, "recur_devices: out is NULL with cap %zu", cap);
    *count = 0;
    for (size_t b = 0; b < recur_backend_count; b++) recur_backends[b]->devices(out, cap, count);
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

/* Split "backend:rest" and find the backend. */
static const struct recur_backend_i *find_backend(const char *sel, const char **rest) {
    size_t len = strcspn(sel, ":");
    *rest = sel[len] == ':' ? sel + len + 1 : sel + len;
    for (size_t b = 0; b < recur_backend_count; b++) {
        const char *name = recur_backends[b]->name;
        if (strlen(name) == len && strncasecmp(name, sel, len) == 0) return recur_backends[b];
    }
    return NULL;
}

recur_status recur_ctx_create(recur_ctx **out, const char *device) {
    recur_err_clear(NULL);
    RETURN_IF(!out, NULL, RECUR_ERR_NULL, "recur_ctx_create: out is NULL");
    *out = NULL;

    const char *source = "argument";
    const char *sel = device;
    if (!sel) {
        sel = getenv("RECUR_DEVICE");
        source = "RECUR_DEVICE";
    }
    const struct recur_backend_i *iface = NULL;
    const char *rest = "";
    if (!sel || !*sel) {
        /* Default: a preferred device (an OpenCL GPU) if any, else the CPU. */
        for (size_t b = 0; b < recur_backend_count && !iface; b++)
            if (recur_backends[b]->preferred && recur_backends[b]->preferred()) iface = recur_backends[b];
        if (!iface) iface = &recur_cpu_backend;
        sel = iface->name;
        source = "default";
    } else {
        iface = find_backend(sel, &rest);
        if (!iface) {
            char list[768];
            device_list(list, sizeof list);
            return recur_err(NULL, RECUR_ERR_DEVICE, "%s '%s': unknown backend; devices: %s",
                             source, sel, list);
        }
    }

    const char *missing = recur_be_missing_slot(iface);
    RETURN_IF(missing, NULL, RECUR_ERR_BACKEND, "%s '%s': backend '%s' lacks the mandatory slot '%s'", source, sel,
              iface->name, missing);
    recur_ctx *ctx = calloc(1, sizeof *ctx);
    RETURN_IF(!ctx, NULL, RECUR_ERR_NO_MEMORY, "recur_ctx_create: out of memory");
    ctx->be.iface = iface;
    ctx->be.ctx = ctx;
    recur_status st = iface->open(&ctx->be, rest);
    if (st != RECUR_OK) {
        /* Prefix the backend's message with where the selector came from. */
        char msg[RECUR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", ctx->msg);
        free(ctx);
        return recur_err(NULL, st, "%s '%s': %s", source, sel, msg);
    }
    recur_log(RECUR_LOG_INFO, "device %s: %s (%s)", ctx->be.info.selector, ctx->be.info.name,
              ctx->be.info.detail);
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
    ctx->be.iface->close(&ctx->be);
    free(ctx);
}

recur_status recur_ctx_device(const recur_ctx *ctx, recur_device_info *out) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_ctx_device: ctx is NULL");
    recur_err_clear((recur_ctx *)ctx);
    RETURN_IF(!out, (recur_ctx *)ctx, RECUR_ERR_NULL, "recur_ctx_device: out is NULL");
    *out = ctx->be.info;
    return RECUR_OK;
}
