/*
 * error.h: status messages and logging inside the library. recur_err(),
 * RETURN_IF, GOTO_IF, TRY and the logger are shared with the backends
 * (backends/backend-host.h); what only core uses is here.
 */
#ifndef RECUR_ERROR_H
#define RECUR_ERROR_H

#include "backend-host.h"

/* Clear the thread's and the context's message at the start of a call. */
void recur_err_clear(recur_ctx *ctx);

/*
 * The public info structs a caller allocates (recur_device_info,
 * recur_cell_info, recur_param_info: struct_size first, growing at the end).
 * recur_info_size_ok: RECUR_ERR_ARG, naming both sizes, when the caller's
 * `size` is below `first`, the first version's size. recur_info_copy: the
 * first `size` bytes (at most full_size) of the filled struct `full` to dst,
 * with struct_size set to the bytes copied.
 */
recur_status recur_info_size_ok(recur_ctx *ctx, const char *fn, const char *type, size_t size, size_t first);
void recur_info_copy(void *dst, size_t size, void *full, size_t full_size);

#endif /* RECUR_ERROR_H */
