/* tool.h: what the recur tool's command files share. */
#ifndef RECUR_TOOL_H
#define RECUR_TOOL_H

#include <stdarg.h>
#include <stdio.h>

/* Print "recur CMD: ..." to stderr and return the exit code of a usage error (2). */
static inline int tool_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "recur %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

int cmd_demo(int argc, char **argv);

#endif
