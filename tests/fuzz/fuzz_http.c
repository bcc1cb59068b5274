/* libFuzzer target: the scheduler's HTTP request checks (scheduler/httpcheck.c) on any bytes
 * as a request: the first line is the request target (path?query), then header lines
 * "name: value" up to an empty line, then the body. Whatever the bytes, a refusal must say
 * why, and what is accepted must be what the checks promise: path segments and query values
 * valid UTF-8 without control bytes, typed values in range, a body of UTF-8 text, a token
 * equal to itself and not to itself one bit off, the logged target printable ASCII. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless s is valid UTF-8 without control bytes. */
static void check_text(const char *s)
{
    if (!httpcheck_utf8(s, strlen(s), NULL))
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

/* A refusal must come with a reason. */
static void check_err(char *err)
{
    if (!err || !*err)
        abort();
    free(err);
}

static void one_target(const char *target)
{
    const char *qm = strchr(target, '?');
    char *path = qm ? strndup(target, (size_t)(qm - target)) : strdup(target);
    httpcheck_path p = {0};
    char *err = NULL;
    if (httpcheck_path_parse(path, &p, &err) < 0) {
        check_err(err);
    } else {
        if (p.n < 0 || p.n > HTTPCHECK_MAX_SEGMENTS || (p.too_many && p.n != HTTPCHECK_MAX_SEGMENTS))
            abort();
        for (int i = 0; i < p.n; i++)
            check_text(p.seg[i]);
    }
    httpcheck_path_free(&p);
    free(path);

    httpcheck_query q = {0};
    err = NULL;
    if (httpcheck_query_parse(qm ? qm + 1 : NULL, &q, &err) < 0) {
        check_err(err);
        return;
    }
    for (size_t i = 0; i < q.n; i++) {
        check_text(q.p[i].key);
        check_text(q.p[i].value);
    }
    int64_t v = 0;
    err = NULL;
    if (httpcheck_query_int(&q, "limit", 1, 10000, 100, &v, &err) < 0)
        check_err(err);
    else if (v < 1 || v > 10000)
        abort();
    static const char *const words[] = {"queued", "running", "completed", NULL};
    const char *w = NULL;
    err = NULL;
    if (httpcheck_query_enum(&q, "status", words, &w, &err) < 0)
        check_err(err);
    else if (w && w != words[0] && w != words[1] && w != words[2])
        abort();
    httpcheck_query_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the input as a C string (bytes after a NUL are the body's only) */
    char *all = malloc(size + 1);
    memcpy(all, data, size);
    all[size] = '\0';
    char *line = all, *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    one_target(line);
    /* the target as logged: printable ASCII only, bounded */
    char *pr = httpcheck_printable(line, 200);
    if (strlen(pr) > 4 * 200 + 3)
        abort();
    for (const char *c = pr; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            abort();
    free(pr);

    httpcheck_headers h = {0};
    char *p = nl ? nl + 1 : NULL;
    char *token = NULL;
    while (p && p < all + size) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (!*p) { /* the empty line: the body follows */
            p = nl ? nl + 1 : NULL;
            break;
        }
        char *colon = strchr(p, ':');
        const char *value = "";
        if (colon) {
            *colon = '\0';
            value = colon + 1 + strspn(colon + 1, " ");
        }
        char *err = NULL;
        if (httpcheck_header(&h, p, value, &err) < 0) {
            check_err(err);
            p = NULL;
            break;
        }
        if (!token)
            token = strdup(value);
        p = nl ? nl + 1 : NULL;
    }
    if (p && p <= all + size) {
        size_t len = size - (size_t)(p - all);
        char *err = NULL;
        if (httpcheck_body(p, len, &err) < 0)
            check_err(err);
        else if (!httpcheck_utf8(p, len, NULL) || memchr(p, '\0', len))
            abort();
    }
    /* the token comparison: equal to itself in a list, never to a different string */
    if (token && *token && !strchr(token, ',') && token[0] != ' ' && token[strlen(token) - 1] != ' ') {
        char *list = malloc(strlen(token) + 16);
        strcpy(list, "a,");
        strcat(list, token);
        if (!httpcheck_token_ok(token, list))
            abort();
        size_t tl = strlen(token);
        token[tl - 1] ^= 1; /* one bit off */
        if (token[tl - 1] && httpcheck_token_ok(token, list) && strcmp(token, "a") != 0)
            abort();
        free(list);
    }
    free(token);
    free(all);
    return 0;
}
