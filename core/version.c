/* version.c: recur_version(), the version of the library that is loaded. */
#include "recur/recur.h"

const char *recur_version(void) {
    return RECUR_VERSION_STRING;
}
