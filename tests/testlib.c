#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

const char *test_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("environment variable %s is not set: run this test through ctest", name);
    return v;
}

char *test_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            buf = xrealloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

int test_sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = xvasprintf(fmt, ap);
    va_end(ap);
    int st = system(cmd);
    free(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}
