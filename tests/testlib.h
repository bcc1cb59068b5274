/* testlib: what every ferry test includes (cmocka and small helpers). */
#ifndef FERRY_TESTLIB_H
#define FERRY_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util.h"

/* Returns the value of environment variable name; fails the test when it is unset. */
const char *test_env(const char *name);
/* Reads the whole file at path into a new NUL-terminated buffer; NULL if it cannot. Caller frees. */
char *test_read_file(const char *path, size_t *len_out);
/* Runs a shell command line and returns its exit status (or -1). */
int test_sh(const char *fmt, ...) FERRY_PRINTF(1, 2);

#endif
