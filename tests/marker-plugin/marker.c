/*
 * marker.c: a valid cell, "marker-test", whose constructor appends a line to
 * the file RECUR_TEST_MARKER names. dlopen runs a constructor before the
 * loader can check anything, so the file's absence proves a plugin was never
 * opened. The plugin-path tests (tests/test-loader.c,
 * tests/tool/plugin-trust.sh) copy this file into places the loader must
 * refuse, and into one it must accept.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "../bad-plugins/echo-cell.h"

__attribute__((constructor)) static void mark(void) {
    const char *path = getenv("RECUR_TEST_MARKER");
    if (!path || !*path) return;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    static const char line[] = "marker.so ran\n";
    if (write(fd, line, sizeof line - 1) < 0) {
        /* nothing to do: the test then sees no marker and says so */
    }
    close(fd);
}

static const struct recur_cell_desc desc = {ECHO_DESC("marker-test")};

RECUR_CELL_ENTRY {
    (void)host;
    if ((host_abi >> 16) != RECUR_CELL_ABI_MAJOR) return -1;
    *out = &desc;
    return 0;
}
