/*
 * echo.c: a good third-party-style plugin from a directory of its own, the
 * one-gate identity cell "echo-test" (see echo-cell.h).
 */
#include "echo-cell.h"

static const struct recur_cell_desc desc = {ECHO_DESC("echo-test")};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
