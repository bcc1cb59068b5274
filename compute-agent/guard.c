/* guard: the rules the agent applies to what it is sent (see guard.h). */
#include "guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROBE_PREFIX ".ferry-probe-"

/* ---- strings -------------------------------------------------------------------------------- */

static int has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

/* root without its trailing slashes: its length ("/" gives 0) */
static size_t root_len(const char *root)
{
    size_t n = strlen(root);
    while (n > 0 && root[n - 1] == '/')
        n--;
    return n;
}

/* Every component of [s, s+len) separated by '/' is non-empty, not "." or "..", at most
 * GUARD_NAME_MAX bytes; -1 with *why (naming whole) otherwise. */
static int components_ok(const char *s, size_t len, const char *whole, char **why)
{
    const char *p = s, *end = s + len;
    while (p <= end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *ce = slash ? slash : end;
        size_t n = (size_t)(ce - p);
        if (n == 0) {
            *why = xasprintf("path %s has an empty component (\"//\" or a trailing '/')", whole);
            return -1;
        }
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            *why = xasprintf("path %s has a '%.*s' component", whole, (int)n, p);
            return -1;
        }
        if (n > GUARD_NAME_MAX) {
            *why = xasprintf("path %s has a component longer than %d bytes", whole, GUARD_NAME_MAX);
            return -1;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

int guard_path(const char *path, size_t len, const char *const *roots, size_t nroots, size_t *root, const char **rel,
               char **why)
{
    if (len == 0) {
        *why = xstrdup("path is empty");
        return -1;
    }
    if (len > GUARD_PATH_MAX) {
        *why = xasprintf("path of %zu bytes is longer than %d", len, GUARD_PATH_MAX);
        return -1;
    }
    if (memchr(path, '\0', len)) {
        *why = xasprintf("path %s... contains a NUL byte", path);
        return -1;
    }
    if (has_control(path, len)) {
        *why = xasprintf("path %s contains a control byte", path);
        return -1;
    }
    if (path[0] != '/') {
        *why = xasprintf("path %s is not absolute", path);
        return -1;
    }
    if (components_ok(path + 1, len - 1, path, why) < 0)
        return -1;
    for (size_t i = 0; i < nroots; i++) {
        size_t rl = root_len(roots[i]);
        if (rl + 1 < len && strncmp(path, roots[i], rl) == 0 && path[rl] == '/') {
            *root = i;
            *rel = path + rl + 1;
            return 0;
        }
    }
    size_t cap = 64;
    for (size_t i = 0; i < nroots; i++)
        cap += strlen(roots[i]) + 8;
    _cleanup_free_ char *list = xcalloc(1, cap);
    for (size_t i = 0; i < nroots; i++) {
        if (i)
            strcat(list, " or ");
        strcat(list, roots[i]);
    }
    *why = xasprintf("path %s is outside %s", path, nroots ? list : "every allowed directory");
    return -1;
}

/* ---- the file system under a trusted root --------------------------------------------------- */

/* "is a symlink" or "is not a directory" for the entry name of dirfd */
static const char *what_is(int dirfd, const char *name, int want_dir)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return strerror(errno);
    if (S_ISLNK(st.st_mode))
        return "is a symlink";
    if (want_dir && !S_ISDIR(st.st_mode))
        return "is not a directory";
    if (!want_dir && !S_ISREG(st.st_mode))
        return "is not a regular file";
    return "changed under us";
}

/* guard_open_parent; *missing is set when a directory on the way does not exist */
static int open_parent(const char *root, const char *rel, int create, int *dirfd, const char **leaf, int *missing,
                       char **why)
{
    *missing = 0;
    if (!*rel || rel[0] == '/') {
        *why = xasprintf("path '%s' is not relative to %s", rel, root);
        return -1;
    }
    if (components_ok(rel, strlen(rel), rel, why) < 0)
        return -1;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create && mkdir(root, 0755) == 0) /* the root itself: configuration */
        fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *why = xasprintf("cannot open %s: %s", root, strerror(errno));
        return -1;
    }
    _cleanup_free_ char *copy = xstrdup(rel);
    char *p = copy;
    for (char *slash; (slash = strchr(p, '/')); p = slash + 1) {
        *slash = '\0';
        int nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
                *why = xasprintf("could not create %s/%s: %s", root, copy, strerror(errno));
                close(fd);
                return -1;
            }
            nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (nfd < 0) {
            int e = errno;
            *missing = e == ENOENT;
            *why = e == ENOENT                  ? xasprintf("%s/%s does not exist", root, copy)
                   : e == ELOOP || e == ENOTDIR ? xasprintf("%s/%s %s%s", root, copy, what_is(fd, p, 1),
                                                            strcmp(what_is(fd, p, 1), "is a symlink") == 0
                                                                ? ": a path may not go through a symlink"
                                                                : "")
                                                : xasprintf("cannot open %s/%s: %s", root, copy, strerror(e));
            close(fd);
            return -1;
        }
        close(fd);
        fd = nfd;
        *slash = '/';
    }
    *dirfd = fd;
    *leaf = rel + (p - copy);
    return 0;
}

int guard_open_parent(const char *root, const char *rel, int create, int *dirfd, const char **leaf, char **why)
{
    int missing;
    return open_parent(root, rel, create, dirfd, leaf, &missing, why);
}

int guard_check_place(const char *root, const char *rel, char **why)
{
    int dfd, missing;
    const char *leaf;
    if (open_parent(root, rel, 0, &dfd, &leaf, &missing, why) < 0) {
        if (!missing)
            return -1;
        free(*why); /* what is missing will be made, as directories */
        *why = NULL;
        return 0;
    }
    struct stat st;
    int rc = 0;
    if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
        *why =
            xasprintf("%s/%s %s: refused", root, rel, S_ISLNK(st.st_mode) ? "is a symlink" : "is not a regular file");
        rc = -1;
    }
    close(dfd);
    return rc;
}

int guard_create_file(const char *root, const char *rel, int *fd, char **why)
{
    *fd = -1;
    int dfd;
    const char *leaf;
    if (guard_open_parent(root, rel, 1, &dfd, &leaf, why) < 0)
        return -1;
    struct stat st;
    if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        int reg = S_ISREG(st.st_mode);
        if (!reg)
            *why = xasprintf("%s/%s %s: refused", root, rel,
                             S_ISLNK(st.st_mode) ? "is a symlink" : "is not a regular file");
        close(dfd);
        return reg ? 0 : -1;
    }
    int f = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f < 0) {
        *why = xasprintf("could not create %s/%s: %s", root, rel, strerror(errno));
        close(dfd);
        return -1;
    }
    close(dfd);
    *fd = f;
    return 1;
}

int guard_unlink_file(const char *root, const char *rel, char **why)
{
    int dfd;
    const char *leaf;
    int missing;
    if (open_parent(root, rel, 0, &dfd, &leaf, &missing, why) < 0) {
        if (!missing)
            return -1;
        /* a missing directory means a missing file */
        free(*why);
        *why = NULL;
        return 0;
    }
    struct stat st;
    if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        int e = errno;
        close(dfd);
        if (e == ENOENT)
            return 0;
        *why = xasprintf("cannot read %s/%s: %s", root, rel, strerror(e));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = xasprintf("%s/%s %s: not removed", root, rel, what_is(dfd, leaf, 0));
        close(dfd);
        return -1;
    }
    int rc = unlinkat(dfd, leaf, 0);
    int e = errno;
    close(dfd);
    if (rc < 0) {
        if (e == ENOENT)
            return 0;
        *why = xasprintf("could not remove %s/%s: %s", root, rel, strerror(e));
        return -1;
    }
    return 1;
}

/* ---- the shared-storage probe ----------------------------------------------------------------- */

void guard_probe_name(char *buf, size_t n, int64_t migration, uint32_t salt)
{
    snprintf(buf, n, PROBE_PREFIX "%" PRId64 "-%08" PRIx32, migration, salt);
}

int guard_probe_check(const char *name, size_t len, int64_t migration, char **why)
{
    char want[48];
    guard_probe_name(want, sizeof(want), migration, 0);
    size_t plen = strlen(want) - 8; /* ".ferry-probe-<migration>-" */
    int ok = len == plen + 8 && !memchr(name, '\0', len) && memcmp(name, want, plen) == 0;
    for (size_t i = plen; ok && i < len; i++)
        ok = (name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f');
    if (!ok) {
        *why = xasprintf("probe name %s is not ferry's probe of migration %" PRId64 " (%.*sXXXXXXXX, X lowercase hex)",
                         name, migration, (int)plen, want);
        return -1;
    }
    return 0;
}

void guard_probe_memo_add(guard_probe_memo *m, const char *name)
{
    if (strlen(name) >= sizeof(m->name[0]) || guard_probe_memo_has(m, name))
        return;
    snprintf(m->name[m->next % GUARD_PROBE_MEMO], sizeof(m->name[0]), "%s", name);
    m->next = (m->next + 1) % GUARD_PROBE_MEMO;
}

int guard_probe_memo_has(const guard_probe_memo *m, const char *name)
{
    for (unsigned i = 0; i < GUARD_PROBE_MEMO; i++)
        if (m->name[i][0] && strcmp(m->name[i], name) == 0)
            return 1;
    return 0;
}

/* ---- names and addresses ---------------------------------------------------------------------- */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* the reason a host name [s, s+len) is refused, or NULL (borrowed static text) */
static const char *host_name_rule(const char *s, size_t len)
{
    if (len == 0)
        return "is empty";
    if (len > 253)
        return "is longer than 253 bytes";
    const char *p = s, *end = s + len, *last = s;
    while (p < end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *le = dot ? dot : end;
        size_t n = (size_t)(le - p);
        if (n == 0)
            return "has an empty label";
        if (n > 63)
            return "has a label longer than 63 bytes";
        for (const char *c = p; c < le; c++)
            if (!is_alnum(*c) && *c != '-')
                return "has a byte that is not a letter, digit, '-' or '.'";
        if (p[0] == '-' || le[-1] == '-')
            return "has a label starting or ending with '-'";
        last = p;
        if (!dot)
            break;
        p = dot + 1;
        if (p == end)
            return "ends with '.'";
    }
    int digits = 1;
    for (const char *c = last; c < end; c++)
        digits &= *c >= '0' && *c <= '9';
    if (digits)
        return "ends with an all-digit label (not a host name, and not a valid IPv4 address)";
    return NULL;
}

int guard_host_name(const char *s, size_t len, char **why)
{
    const char *rule = memchr(s, '\0', len) ? "contains a NUL byte" : host_name_rule(s, len);
    if (rule) {
        _cleanup_free_ char *shown = xstrndup(s, len > 300 ? 300 : len);
        *why = xasprintf("host name '%s' %s (RFC 1123)", shown, rule);
        return -1;
    }
    return 0;
}

int guard_address(const char *s, size_t len, char **why)
{
    _cleanup_free_ char *shown = xstrndup(s, len > 300 ? 300 : len);
    const char *rule = NULL;
    char host[300];
    const char *port = NULL;
    size_t port_len = 0;
    if (len == 0) {
        rule = "is empty";
    } else if (len > 260) {
        rule = "is longer than 260 bytes";
    } else if (memchr(s, '\0', len)) {
        rule = "contains a NUL byte";
    } else if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        size_t hl = close ? (size_t)(close - s - 1) : 0;
        if (!close || hl == 0 || hl >= 64) {
            rule = "has no closing ']' after a bracketed IPv6 address";
        } else {
            memcpy(host, s + 1, hl);
            host[hl] = '\0';
            struct in6_addr a6;
            if (inet_pton(AF_INET6, host, &a6) != 1)
                rule = "has no valid IPv6 address between its brackets (zones are not allowed)";
            else if (close + 1 < s + len && close[1] != ':')
                rule = "has something other than ':port' after its ']'";
            else if (close + 1 < s + len)
                port = close + 2, port_len = (size_t)(s + len - port);
        }
    } else {
        const char *colon = memchr(s, ':', len);
        size_t hl = colon ? (size_t)(colon - s) : len;
        if (colon) {
            port = colon + 1;
            port_len = (size_t)(s + len - port);
        }
        memcpy(host, s, hl);
        host[hl] = '\0';
        struct in_addr a4;
        int digits_and_dots = hl > 0 && strspn(host, "0123456789.") == hl;
        if (digits_and_dots) {
            if (inet_pton(AF_INET, host, &a4) != 1)
                rule = "is not a valid dotted IPv4 address";
        } else if ((rule = host_name_rule(host, hl)) == NULL) {
            /* a host name */
        } else {
            rule = "is not a host name, an IPv4 address or a bracketed IPv6 address";
        }
        if (colon && memchr(colon + 1, ':', (size_t)(s + len - colon - 1)))
            rule = "is not a host name or IPv4 address with a port (an IPv6 address needs brackets)";
    }
    if (!rule && port) {
        int ok = port_len >= 1 && port_len <= 5 && port[0] != '0';
        long v = 0;
        for (size_t i = 0; ok && i < port_len; i++) {
            ok = port[i] >= '0' && port[i] <= '9';
            v = v * 10 + (port[i] - '0');
        }
        if (!ok || v < 1 || v > 65535)
            rule = "has a port that is not a number in 1..65535";
    }
    if (rule) {
        *why = xasprintf("address '%s' %s", shown, rule);
        return -1;
    }
    return 0;
}

int guard_plain_name(const char *s, size_t len, size_t len_max, char **why)
{
    _cleanup_free_ char *shown = xstrndup(s, len > 300 ? 300 : len);
    const char *rule = NULL;
    if (len == 0)
        rule = "is empty";
    else if (len > len_max)
        rule = "is too long";
    else if (memchr(s, '\0', len))
        rule = "contains a NUL byte";
    else if (strspn(shown, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len)
        rule = "has a byte that is not a letter, digit, '.', '_' or '-'";
    else if (strcmp(shown, ".") == 0 || strcmp(shown, "..") == 0)
        rule = "is a relative directory name";
    if (rule) {
        *why = xasprintf("name '%s' %s", shown, rule);
        return -1;
    }
    return 0;
}

/* ---- fencing ------------------------------------------------------------------------------------ */

int guard_epoch(int64_t migration, int64_t seen, int64_t got, char **why)
{
    if (got < seen) {
        *why = xasprintf("stale epoch %" PRId64 " for migration %" PRId64 ": epoch %" PRId64
                         " was already seen here (another scheduler replica owns it now)",
                         got, migration, seen);
        return -1;
    }
    return 0;
}

int guard_data_address(const char *s, size_t len, char **why)
{
    if (guard_address(s, len, why) < 0)
        return -1;
    if (s[0] == '[' ? s[len - 1] != ']' : memchr(s, ':', len) != NULL) {
        *why = xstrdup("an address without a port");
        return -1;
    }
    return 0;
}
