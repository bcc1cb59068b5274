/* util: allocation that aborts on exhaustion, scope-cleanup helpers, clocks, ids. */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

/* Debian's bundle of the system's trusted CAs (package ca-certificates): what TLS clients
 * verify a server against when no CA file is configured. */
#define FERRY_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FERRY_WUR __attribute__((warn_unused_result))
#define FERRY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocates n bytes; aborts the process on exhaustion, never returns NULL. Caller frees. */
void *xmalloc(size_t n);
/* Allocates n zeroed elements of size sz; aborts on exhaustion or overflow. Caller frees. */
void *xcalloc(size_t n, size_t sz);
/* Resizes p to n bytes; aborts on exhaustion. Caller owns the result (p is consumed). */
void *xrealloc(void *p, size_t n);
/* Duplicates s (NULL gives NULL); aborts on exhaustion. Caller frees. */
char *xstrdup(const char *s);
/* Duplicates at most n bytes of s and NUL-terminates; aborts on exhaustion. Caller frees. */
char *xstrndup(const char *s, size_t n);
/* Formats into a newly allocated string; aborts on exhaustion. Caller frees. */
char *xasprintf(const char *fmt, ...) FERRY_PRINTF(1, 2);
/* va_list form of xasprintf. Caller frees. */
char *xvasprintf(const char *fmt, va_list ap) FERRY_PRINTF(1, 0);

/* Copies src into dst of size n, always NUL-terminating; returns strlen(src). */
size_t strlcpy_f(char *dst, const char *src, size_t n);

/* Frees *p; for use with __attribute__((cleanup)). */
void freep(void *p);
/* Closes *f if not NULL; for use with __attribute__((cleanup)). */
void fclosep(FILE **f);

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Takes ownership away from a cleanup-scoped pointer: returns *pp and sets it NULL. */
#define TAKE_PTR(p)                                                                                                    \
    ({                                                                                                                 \
        __typeof__(p) _t = (p);                                                                                        \
        (p) = NULL;                                                                                                    \
        _t;                                                                                                            \
    })

/* Monotonic clock in milliseconds (for timeouts, leases, backoff). */
int64_t mono_ms(void);
/* Monotonic clock in microseconds. */
int64_t mono_us(void);
/* Wall clock in milliseconds since the epoch (for timestamps shown to people). */
int64_t wall_ms(void);
/* Formats a wall-clock time in ms as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
void rfc3339_ms(int64_t ms, char *buf, size_t n);

/* Writes a new random UUID (36 chars + NUL) into out. */
void uuid_new(char out[37]);
/* Returns 1 when s is a canonical textual UUID (8-4-4-4-12 hex), else 0. */
int uuid_valid(const char *s);

/* Returns the value of hexadecimal digit c (0-9, a-f, A-F), or -1 when c is none. */
int hex_digit(char c);

/* Parses a base-10 integer in [min,max] from the whole of s; 0 on success, -1 otherwise. */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) FERRY_WUR;

#endif
