/* qsock: QEMU's migration stream sockets, found through /proc and shut down (see qsock.h). */
#include "qsock.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- pure readers ----------------------------------------------------------------------------- */

/* Reads "HEX:HEX" (an address and a port, as /proc/net/tcp writes them); *port set. Returns the
 * position after it, or NULL. */
static const char *addr_port(const char *p, unsigned *port)
{
    while (*p == ' ')
        p++;
    const char *colon = p;
    while (isxdigit((unsigned char)*colon))
        colon++;
    if (colon == p || *colon != ':')
        return NULL;
    p = colon + 1;
    unsigned v = 0;
    int n = 0;
    for (; isxdigit((unsigned char)*p); p++, n++) {
        if (n >= 4)
            return NULL;
        v = v * 16 + (unsigned)hex_digit(*p);
    }
    if (n == 0 || (*p != ' ' && *p != '\0'))
        return NULL;
    *port = v;
    return p;
}

/* Skips one space-separated field; NULL if there is none. */
static const char *skip_field(const char *p)
{
    while (*p == ' ')
        p++;
    if (!*p)
        return NULL;
    while (*p && *p != ' ')
        p++;
    return p;
}

int qsock_parse_tcp_line(const char *line, qsock_tcp *out)
{
    /* "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode ..." */
    const char *p = line;
    while (*p == ' ')
        p++;
    const char *sl = p;
    while (isdigit((unsigned char)*p))
        p++;
    if (p == sl || *p != ':')
        return -1;
    p++;
    qsock_tcp t = {0};
    if (!(p = addr_port(p, &t.local_port)) || !(p = addr_port(p, &t.remote_port)))
        return -1;
    while (*p == ' ')
        p++;
    unsigned st = 0;
    int n = 0;
    for (; isxdigit((unsigned char)*p); p++, n++)
        st = st * 16 + (unsigned)hex_digit(*p);
    if (n != 2 || *p != ' ')
        return -1;
    t.state = st;
    /* tx:rx, tr:when, retrnsmt, uid, timeout: then the inode */
    for (int i = 0; i < 5; i++)
        if (!(p = skip_field(p)))
            return -1;
    while (*p == ' ')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long ino = strtoull(p, &end, 10);
    if (errno || (*end != ' ' && *end != '\0' && *end != '\n'))
        return -1;
    t.inode = ino;
    *out = t;
    return 0;
}

int qsock_parse_socket_link(const char *link, uint64_t *inode)
{
    static const char pre[] = "socket:[";
    if (strncmp(link, pre, sizeof(pre) - 1) != 0)
        return -1;
    const char *p = link + sizeof(pre) - 1;
    if (!isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || strcmp(end, "]") != 0)
        return -1;
    *inode = v;
    return 0;
}

int qsock_cmdline_has_uuid(const char *cmd, size_t len, const char *uuid)
{
    size_t i = 0;
    int after_flag = 0;
    while (i < len) {
        const char *arg = cmd + i;
        size_t n = strnlen(arg, len - i);
        if (after_flag && n == strlen(uuid) && strncasecmp(arg, uuid, n) == 0)
            return 1;
        after_flag = n == 5 && memcmp(arg, "-uuid", 5) == 0;
        i += n + 1;
    }
    return 0;
}

/* ---- /proc ------------------------------------------------------------------------------------ */

/* Reads up to cap bytes of path into a new buffer (*len set). NULL on failure (errno set). */
static char *read_small(const char *path, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = xmalloc(cap + 1);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == cap)
            break;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* The PID of the QEMU process whose command line names uuid, or -1. */
static long find_qemu(const char *proc, const char *uuid)
{
    DIR *d = opendir(proc);
    if (!d)
        return -1;
    long found = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end = NULL;
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end)
            continue;
        _cleanup_free_ char *commp = xasprintf("%s/%ld/comm", proc, pid);
        size_t n = 0;
        _cleanup_free_ char *comm = read_small(commp, 64, &n);
        if (!comm || strncmp(comm, "qemu", 4) != 0)
            continue;
        _cleanup_free_ char *cmdp = xasprintf("%s/%ld/cmdline", proc, pid);
        _cleanup_free_ char *cmd = read_small(cmdp, 256 * 1024, &n);
        if (cmd && qsock_cmdline_has_uuid(cmd, n, uuid)) {
            found = pid;
            break;
        }
    }
    closedir(d);
    return found;
}

typedef struct fdsock {
    int fd;
    uint64_t inode;
} fdsock;

/* QEMU's descriptors that are sockets: a new array (*n entries). */
static fdsock *socket_fds(const char *proc, long pid, size_t *n)
{
    *n = 0;
    _cleanup_free_ char *dirp = xasprintf("%s/%ld/fd", proc, pid);
    DIR *d = opendir(dirp);
    if (!d)
        return NULL;
    fdsock *v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end = NULL;
        long fd = strtol(e->d_name, &end, 10);
        if (fd < 0 || *end || e->d_name[0] == '\0' || fd > 1 << 24)
            continue;
        char link[64];
        ssize_t r = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
        if (r <= 0)
            continue;
        link[r] = '\0';
        uint64_t ino = 0;
        if (qsock_parse_socket_link(link, &ino) < 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[(*n)++] = (fdsock){(int)fd, ino};
    }
    closedir(d);
    return v;
}

/* Shuts the socket behind QEMU's descriptor fd down through a duplicate; 0 or -1 (errno). */
static int shut_remote_fd(int pidfd, int fd)
{
    int dup = pidfd_getfd(pidfd, fd, 0);
    if (dup < 0)
        return -1;
    int rc = shutdown(dup, SHUT_RDWR);
    int e = errno;
    close(dup);
    errno = e;
    return rc;
}

int qsock_shut_migration(const char *proc, const char *uuid, unsigned port_min, unsigned port_max, long *pid,
                         char **err)
{
    long qpid = find_qemu(proc, uuid);
    if (qpid < 0) {
        *err = xasprintf("no QEMU process of domain %s found in %s", uuid, proc);
        return -1;
    }
    *pid = qpid;
    size_t nfd = 0;
    _cleanup_free_ fdsock *fds = socket_fds(proc, qpid, &nfd);
    int pidfd = -1, shut = 0;
    _cleanup_free_ char *failed = NULL;
    for (int v6 = 0; v6 < 2; v6++) {
        _cleanup_free_ char *path = xasprintf("%s/%ld/net/%s", proc, qpid, v6 ? "tcp6" : "tcp");
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            qsock_tcp t;
            if (qsock_parse_tcp_line(line, &t) < 0 || t.state != 1 || t.inode == 0)
                continue;
            int in_range = (t.local_port >= port_min && t.local_port <= port_max) ||
                           (t.remote_port >= port_min && t.remote_port <= port_max);
            if (!in_range)
                continue;
            for (size_t i = 0; i < nfd; i++) {
                if (fds[i].inode != t.inode)
                    continue;
                if (pidfd < 0 && (pidfd = pidfd_open((pid_t)qpid, 0)) < 0) {
                    int e = errno;
                    fclose(f);
                    *err = xasprintf("cannot open QEMU process %ld (pidfd_open): %s", qpid, strerror(e));
                    return -1;
                }
                if (shut_remote_fd(pidfd, fds[i].fd) < 0) {
                    free(failed);
                    failed = xasprintf("descriptor %d (port %u to %u): %s", fds[i].fd, t.local_port,
                                       t.remote_port, strerror(errno));
                } else {
                    shut++;
                }
            }
        }
        fclose(f);
    }
    if (pidfd >= 0)
        close(pidfd);
    if (!shut && failed) {
        *err = xasprintf("could not shut QEMU %ld's migration socket down: %s", qpid, failed);
        return -1;
    }
    return shut;
}
