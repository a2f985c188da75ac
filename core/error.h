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

#endif /* RECUR_ERROR_H */
