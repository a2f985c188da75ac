/*
 * error.c: status names, detail messages, logging.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "context.h"

/* One table: every status and its name. */
static const struct {
    recur_status status;
    const char *name;
} status_names[] = {
#define X(s) {s, #s}
    X(RECUR_OK),
    X(RECUR_ERR_NULL),
    X(RECUR_ERR_ARG),
    X(RECUR_ERR_SHAPE),
    X(RECUR_ERR_BUFFER_SIZE),
    X(RECUR_ERR_NO_MEMORY),
    X(RECUR_ERR_STATE),
    X(RECUR_ERR_UNKNOWN_CELL),
    X(RECUR_ERR_UNKNOWN_NAME),
    X(RECUR_ERR_DEVICE),
    X(RECUR_ERR_UNSUPPORTED),
    X(RECUR_ERR_DEVICE_MEMORY),
    X(RECUR_ERR_OPENCL),
    X(RECUR_ERR_BACKEND),
    X(RECUR_ERR_PLUGIN_OPEN),
    X(RECUR_ERR_PLUGIN_SYMBOL),
    X(RECUR_ERR_PLUGIN_INIT),
    X(RECUR_ERR_PLUGIN_ABI),
    X(RECUR_ERR_PLUGIN_SIZE),
    X(RECUR_ERR_PLUGIN_INVALID),
    X(RECUR_ERR_PLUGIN_NO_CPU),
    X(RECUR_ERR_PLUGIN_DUPLICATE),
    X(RECUR_ERR_PLUGIN_PATH),
    X(RECUR_ERR_PLUGIN_UNTRUSTED),
    X(RECUR_ERR_IO),
    X(RECUR_ERR_FILE_TRUNCATED),
    X(RECUR_ERR_FILE_HEADER),
    X(RECUR_ERR_FILE_JSON),
    X(RECUR_ERR_FILE_MISSING),
    X(RECUR_ERR_FILE_EXTRA),
    X(RECUR_ERR_FILE_SHAPE),
    X(RECUR_ERR_FILE_DTYPE),
    X(RECUR_ERR_FILE_OFFSETS),
    X(RECUR_ERR_FILE_METADATA),
    X(RECUR_ERR_FILE_NONFINITE),
#undef X
};

const char *recur_status_str(recur_status status) {
    for (size_t i = 0; i < sizeof status_names / sizeof status_names[0]; i++)
        if (status_names[i].status == status) return status_names[i].name;
    return "RECUR_ERR_UNKNOWN_STATUS";
}

static _Thread_local char thread_msg[RECUR_MSG_MAX];

const char *recur_last_error(void) { return thread_msg; }

recur_status recur_err(recur_ctx *ctx, recur_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(thread_msg, sizeof thread_msg, fmt, ap);
    va_end(ap);
    if (ctx) memcpy(ctx->msg, thread_msg, sizeof ctx->msg);
    recur_log(RECUR_LOG_DEBUG, "%s: %s", recur_status_str(status), thread_msg);
    return status;
}

void recur_err_clear(recur_ctx *ctx) {
    thread_msg[0] = 0;
    if (ctx) ctx->msg[0] = 0;
}

const char *recur_ctx_error(const recur_ctx *ctx) { return ctx ? ctx->msg : thread_msg; }

/* ---- logging ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static recur_log_fn log_fn;
static void *log_user;
static atomic_int log_level = -1; /* -1: silent; read without the lock */

static void log_init(void) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const char *env = getenv("RECUR_LOG");
    if (!env || !*env) return;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(env, names[i]) == 0) log_level = i;
    if (log_level < 0) {
        /* A bad value is itself worth a warning, where the user asked for output. */
        log_level = RECUR_LOG_WARN;
        fprintf(stderr, "recur [warn] RECUR_LOG '%s': expected error, warn, info or debug\n", env);
    }
}

void recur_log_set(recur_log_fn fn, void *user, recur_log_level max_level) {
    pthread_once(&log_once, log_init);
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_user = user;
    log_level = (int)max_level;
    pthread_mutex_unlock(&log_lock);
}

int recur_log_enabled(recur_log_level level) {
    pthread_once(&log_once, log_init);
    return (int)level <= log_level;
}

void recur_log(recur_log_level level, const char *fmt, ...) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (!recur_log_enabled(level)) return;
    char buf[RECUR_MSG_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    if (log_fn)
        log_fn(level, buf, log_user);
    else
        fprintf(stderr, "recur [%s] %s\n", names[level], buf);
    pthread_mutex_unlock(&log_lock);
}

recur_status recur_info_size_ok(recur_ctx *ctx, const char *fn, const char *type, size_t size, size_t first) {
    RETURN_IF(size < first, ctx, RECUR_ERR_ARG, "%s: a %s of %zu bytes, less than the %zu of the first version", fn,
              type, size, first);
    return RECUR_OK;
}

void recur_info_copy(void *dst, size_t size, void *full, size_t full_size) {
    size_t n = size < full_size ? size : full_size;
    memcpy(full, &n, sizeof n); /* struct_size, the first field of each */
    memcpy(dst, full, n);
}
