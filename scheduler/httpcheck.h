/* httpcheck: the checks every byte of an HTTP request passes before the scheduler's HTTP API
 * (scheduler/http*.c) uses it -- path segments decoded once and checked, query parameters
 * typed, header limits, the body's text, and constant-time token comparison. Pure functions: no
 * libevent, no database, so the unit test and the fuzz target link this file alone. */
#ifndef FERRY_HTTPCHECK_H
#define FERRY_HTTPCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* At most this many path segments are kept; a longer path is no resource of ours. */
#define HTTPCHECK_MAX_SEGMENTS 8
/* Header limits checked by httpcheck_header (what libevent reads beyond them: http_priv.h,
 * set in http.c). */
#define HTTPCHECK_MAX_HEADERS 64
#define HTTPCHECK_MAX_HEADER_BYTES 16384

/* A request path split at '/' into decoded segments (each valid UTF-8, no control bytes). */
typedef struct httpcheck_path {
    int n;        /* segments kept */
    int too_many; /* the path had more than HTTPCHECK_MAX_SEGMENTS segments */
    char *seg[HTTPCHECK_MAX_SEGMENTS];
} httpcheck_path;

/* One decoded query parameter. */
typedef struct httpcheck_param {
    char *key, *value;
} httpcheck_param;

/* A query string's parameters, decoded and checked, in their order. */
typedef struct httpcheck_query {
    size_t n;
    httpcheck_param *p;
} httpcheck_query;

/* Running totals of one request's headers for httpcheck_header. */
typedef struct httpcheck_headers {
    size_t count, bytes;
} httpcheck_headers;

/* 1 if s[0..len) is valid UTF-8 (shortest form, no surrogates, at most U+10FFFF) without NUL,
 * else 0; when 0 and why is not NULL, *why says what is wrong (a static string). */
int httpcheck_utf8(const char *s, size_t len, const char **why);

/* Percent-decodes raw[0..len) once ('+' is a space when plus is set) and checks the result:
 * valid UTF-8, no NUL or other control byte. 0 with *out (caller frees, NUL-terminated), or
 * -1 with *err (caller frees) naming what, the label the caller gives, is wrong. */
int httpcheck_decode(const char *raw, size_t len, int plus, const char *what, char **out, char **err) FERRY_WUR;

/* Splits path (as received, percent-encoded) into decoded segments in *out (free with
 * httpcheck_path_free). 0, or -1 with *err (caller frees) when a segment is not valid text. */
int httpcheck_path_parse(const char *path, httpcheck_path *out, char **err) FERRY_WUR;
/* Frees the segments of p (not p itself); accepts a zeroed p. */
void httpcheck_path_free(httpcheck_path *p);

/* Parses a query string (may be NULL or empty) into *out (free with httpcheck_query_free).
 * 0, or -1 with *err (caller frees): a key or value not valid text, a key given twice. */
int httpcheck_query_parse(const char *query, httpcheck_query *out, char **err) FERRY_WUR;
/* Frees the parameters of q (not q itself); accepts a zeroed q. */
void httpcheck_query_free(httpcheck_query *q);
/* The value of key in q (borrowed from q), or NULL when absent. */
const char *httpcheck_query_get(const httpcheck_query *q, const char *key);
/* The integer key in [min, max]: *out = dflt when absent or empty. 0, or -1 with *err (caller
 * frees) when it is not a decimal integer or out of range. */
int httpcheck_query_int(const httpcheck_query *q, const char *key, int64_t min, int64_t max, int64_t dflt, int64_t *out,
                        char **err) FERRY_WUR;
/* The value of key, which must be one of words (NULL-terminated): *out = the word (static,
 * from words), or NULL when absent or empty. 0, or -1 with *err (caller frees). */
int httpcheck_query_enum(const httpcheck_query *q, const char *key, const char *const *words, const char **out,
                         char **err) FERRY_WUR;

/* Counts one header into *h and checks it: a token name, a value without control bytes, at
 * most HTTPCHECK_MAX_HEADERS headers of HTTPCHECK_MAX_HEADER_BYTES in all. 0, or -1 with *err
 * (caller frees). */
int httpcheck_header(httpcheck_headers *h, const char *name, const char *value, char **err) FERRY_WUR;

/* Checks a request body of len bytes (len <= max checked by the caller before copying it):
 * valid UTF-8 without NUL. 0, or -1 with *err (caller frees). */
int httpcheck_body(const char *body, size_t len, char **err) FERRY_WUR;

/* A copy of s for a log line or an answer (caller frees): bytes outside printable ASCII, and
 * the backslash, written \xHH; cut after max bytes of s with "..." appended. NULL gives "". */
char *httpcheck_printable(const char *s, size_t max);

/* 1 if given equals one of the comma-separated tokens of list (spaces around a token are not
 * part of it), else 0. Compares SHA-256 digests with CRYPTO_memcmp against every listed token:
 * the time taken does not depend on where given and a token first differ, nor on which token
 * matched. NULL or empty given or list never match. */
int httpcheck_token_ok(const char *given, const char *list);

#endif
