/* httpcheck: pure checks of HTTP request bytes for the scheduler's API (see httpcheck.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "httpcheck.h"
#include "util.h"

int httpcheck_utf8(const char *s, size_t len, const char **why)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    const char *w = NULL;
    while (p < end) {
        unsigned c = *p;
        if (c == 0) {
            w = "a NUL byte";
            break;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            w = "a byte that starts no UTF-8 sequence";
            break;
        }
        if ((size_t)(end - p) <= n) {
            w = "a truncated UTF-8 sequence";
            break;
        }
        size_t i;
        for (i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                break;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (i <= n) {
            w = "a truncated UTF-8 sequence";
            break;
        }
        if (cp < min) {
            w = "an overlong UTF-8 sequence";
            break;
        }
        if (cp >= 0xd800 && cp <= 0xdfff) {
            w = "a UTF-16 surrogate encoded in UTF-8";
            break;
        }
        if (cp > 0x10ffff) {
            w = "a code point beyond U+10FFFF";
            break;
        }
        p += n + 1;
    }
    if (w && why)
        *why = w;
    return w == NULL;
}

int httpcheck_decode(const char *raw, size_t len, int plus, const char *what, char **out, char **err)
{
    char *d = xmalloc(len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (c == '%') {
            if (len - i < 3 || hex_digit(raw[i + 1]) < 0 || hex_digit(raw[i + 2]) < 0) {
                free(d);
                *err = xasprintf("%s has a '%%' not followed by two hexadecimal digits", what);
                return -1;
            }
            d[k++] = (char)(hex_digit(raw[i + 1]) << 4 | hex_digit(raw[i + 2]));
            i += 2;
        } else if (c == '+' && plus) {
            d[k++] = ' ';
        } else {
            d[k++] = c;
        }
    }
    d[k] = '\0';
    const char *why = NULL;
    if (!httpcheck_utf8(d, k, &why)) {
        free(d);
        if (strstr(why, "NUL"))
            *err = xasprintf("%s has a NUL byte once decoded", what);
        else
            *err = xasprintf("%s is not valid UTF-8 text once decoded: it has %s", what, why);
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c < 0x20 || c == 0x7f) {
            free(d);
            *err = xasprintf("%s has a control character (0x%02x) once decoded", what, c);
            return -1;
        }
    }
    *out = d;
    return 0;
}

void httpcheck_path_free(httpcheck_path *p)
{
    if (!p)
        return;
    for (int i = 0; i < HTTPCHECK_MAX_SEGMENTS; i++) {
        free(p->seg[i]);
        p->seg[i] = NULL;
    }
    p->n = 0;
    p->too_many = 0;
}

int httpcheck_path_parse(const char *path, httpcheck_path *out, char **err)
{
    httpcheck_path r = {0};
    const char *p = path ? path : "";
    int index = 0;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t k = strcspn(p, "/");
        index++;
        /* every segment is checked, also those beyond the ones kept */
        _cleanup_free_ char *what = xasprintf("the path's segment %d", index);
        char *seg = NULL;
        if (httpcheck_decode(p, k, 0, what, &seg, err) < 0) {
            httpcheck_path_free(&r);
            return -1;
        }
        if (r.n < HTTPCHECK_MAX_SEGMENTS)
            r.seg[r.n++] = seg;
        else {
            r.too_many = 1;
            free(seg);
        }
        p += k;
    }
    *out = r;
    return 0;
}

void httpcheck_query_free(httpcheck_query *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->p[i].key);
        free(q->p[i].value);
    }
    free(q->p);
    q->p = NULL;
    q->n = 0;
}

int httpcheck_query_parse(const char *query, httpcheck_query *out, char **err)
{
    httpcheck_query r = {0};
    const char *p = query ? query : "";
    while (*p) {
        size_t k = strcspn(p, "&");
        if (k > 0) {
            const char *eq = memchr(p, '=', k);
            size_t kl = eq ? (size_t)(eq - p) : k;
            char *key = NULL, *value = NULL;
            if (httpcheck_decode(p, kl, 1, "a query parameter's name", &key, err) < 0) {
                httpcheck_query_free(&r);
                return -1;
            }
            _cleanup_free_ char *what = xasprintf("query parameter %s", key);
            if (httpcheck_decode(eq ? eq + 1 : p + k, eq ? k - kl - 1 : 0, 1, what, &value, err) < 0) {
                free(key);
                httpcheck_query_free(&r);
                return -1;
            }
            if (httpcheck_query_get(&r, key)) {
                *err = xasprintf("query parameter %s is given more than once", key);
                free(key);
                free(value);
                httpcheck_query_free(&r);
                return -1;
            }
            r.p = xrealloc(r.p, (r.n + 1) * sizeof(*r.p));
            r.p[r.n].key = key;
            r.p[r.n].value = value;
            r.n++;
        }
        p += k;
        if (*p == '&')
            p++;
    }
    *out = r;
    return 0;
}

const char *httpcheck_query_get(const httpcheck_query *q, const char *key)
{
    for (size_t i = 0; q && i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0)
            return q->p[i].value;
    return NULL;
}

int httpcheck_query_int(const httpcheck_query *q, const char *key, int64_t min, int64_t max, int64_t dflt, int64_t *out,
                        char **err)
{
    const char *v = httpcheck_query_get(q, key);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    const char *d = v + (*v == '-');
    if (!*d || strspn(d, "0123456789") != strlen(d)) {
        *err = xasprintf("query parameter %s: '%s' is not an integer (%lld to %lld)", key, v, (long long)min,
                         (long long)max);
        return -1;
    }
    errno = 0;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (errno == ERANGE || n < min || n > max) {
        *err =
            xasprintf("query parameter %s: %s is out of range (%lld to %lld)", key, v, (long long)min, (long long)max);
        return -1;
    }
    *out = n;
    return 0;
}

int httpcheck_query_enum(const httpcheck_query *q, const char *key, const char *const *words, const char **out,
                         char **err)
{
    const char *v = httpcheck_query_get(q, key);
    if (!v || !*v) {
        *out = NULL;
        return 0;
    }
    size_t all = 0;
    for (size_t i = 0; words[i]; i++) {
        if (strcmp(v, words[i]) == 0) {
            *out = words[i];
            return 0;
        }
        all += strlen(words[i]) + 2;
    }
    _cleanup_free_ char *list = xcalloc(1, all + 1);
    for (size_t i = 0; words[i]; i++) {
        if (i)
            strcat(list, ", ");
        strcat(list, words[i]);
    }
    *err = xasprintf("query parameter %s: unknown value '%s' (one of %s)", key, v, list);
    return -1;
}

int httpcheck_header(httpcheck_headers *h, const char *name, const char *value, char **err)
{
    size_t nl = strlen(name), vl = strlen(value);
    h->count++;
    h->bytes += nl + vl + 4; /* "name: value\r\n" */
    if (h->count > HTTPCHECK_MAX_HEADERS) {
        *err = xasprintf("more than %d header fields", HTTPCHECK_MAX_HEADERS);
        return -1;
    }
    if (h->bytes > HTTPCHECK_MAX_HEADER_BYTES) {
        *err = xasprintf("the header fields are more than %d bytes", HTTPCHECK_MAX_HEADER_BYTES);
        return -1;
    }
    static const char tchar[] = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (nl == 0 || strspn(name, tchar) != nl) {
        *err = xasprintf("header field %d has a name that is not an HTTP token", (int)h->count);
        return -1;
    }
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *err = xasprintf("header field %s has a control character (0x%02x)", name, c);
            return -1;
        }
    }
    return 0;
}

int httpcheck_body(const char *body, size_t len, char **err)
{
    const char *why = NULL;
    if (!httpcheck_utf8(body, len, &why)) {
        if (strstr(why, "NUL"))
            *err = xstrdup("the body has a NUL byte");
        else
            *err = xasprintf("the body is not valid UTF-8 text: it has %s", why);
        return -1;
    }
    return 0;
}

char *httpcheck_printable(const char *s, size_t max)
{
    if (!s)
        return xstrdup("");
    size_t n = strnlen(s, max + 1), k = 0;
    char *out = xmalloc((n > max ? max : n) * 4 + 4);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '\\') {
            static const char hex[] = "0123456789abcdef";
            out[k++] = '\\';
            out[k++] = 'x';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        } else {
            out[k++] = (char)c;
        }
    }
    if (n > max) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
    return out;
}

/* SHA-256 of s[0..n) into md (32 bytes); aborts when OpenSSL cannot (it always can). */
static void sha256(const char *s, size_t n, unsigned char md[32])
{
    unsigned int ml = 0;
    if (EVP_Digest(s, n, md, &ml, EVP_sha256(), NULL) != 1 || ml != 32)
        abort();
}

int httpcheck_token_ok(const char *given, const char *list)
{
    if (!given || !*given || !list)
        return 0;
    unsigned char g[32], t[32];
    sha256(given, strlen(given), g);
    int ok = 0;
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t k = strcspn(p, ",");
        size_t e = k;
        while (e > 0 && p[e - 1] == ' ')
            e--;
        if (e > 0) {
            sha256(p, e, t);
            ok |= CRYPTO_memcmp(g, t, sizeof(g)) == 0;
        }
        p += k;
    }
    OPENSSL_cleanse(g, sizeof(g));
    OPENSSL_cleanse(t, sizeof(t));
    return ok;
}
