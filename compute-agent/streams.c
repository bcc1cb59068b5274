/* streams: a process's outgoing TCP connections from /proc (streams.h). */
#include "streams.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* TCP states of /proc/net/tcp (include/net/tcp_states.h) */
#define TCP_ESTABLISHED 0x01
#define TCP_LISTEN 0x0A

/* Reads "HEX:PORT" of a net/tcp line at *p into a numeric address text and a port; advances
 * *p. 0, or -1 when it is not one. */
static int read_endpoint(const char **p, int v6, char *addr, size_t n, unsigned *port)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    size_t hexlen = v6 ? 32 : 8;
    for (size_t i = 0; i < hexlen; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F') || (s[i] >= 'a' && s[i] <= 'f')))
            return -1;
    if (s[hexlen] != ':')
        return -1;
    /* the kernel prints each 32-bit word of the address as the host-order integer it holds */
    uint32_t w[4] = {0};
    for (size_t k = 0; k < hexlen / 8; k++) {
        char word[9];
        memcpy(word, s + 8 * k, 8);
        word[8] = 0;
        w[k] = (uint32_t)strtoul(word, NULL, 16);
    }
    char *end = NULL;
    unsigned long pt = strtoul(s + hexlen + 1, &end, 16);
    if (end == s + hexlen + 1 || pt > 65535)
        return -1;
    if (v6) {
        struct in6_addr a;
        memcpy(&a, w, sizeof(a));
        /* an IPv4 peer of a dual-stack socket: its IPv4 text */
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            struct in_addr a4;
            memcpy(&a4, (const char *)&a + 12, 4);
            if (!inet_ntop(AF_INET, &a4, addr, (socklen_t)n))
                return -1;
        } else if (!inet_ntop(AF_INET6, &a, addr, (socklen_t)n)) {
            return -1;
        }
    } else {
        struct in_addr a;
        a.s_addr = w[0];
        if (!inet_ntop(AF_INET, &a, addr, (socklen_t)n))
            return -1;
    }
    *port = (unsigned)pt;
    *p = end;
    return 0;
}

static int has_inode(const unsigned long *inodes, size_t n, unsigned long ino)
{
    for (size_t i = 0; i < n; i++)
        if (inodes[i] == ino)
            return 1;
    return 0;
}

void streams_scan(const char *text, int v6, const unsigned long *inodes, size_t n, streams_acc *acc)
{
    const char *line = text;
    while (line && *line) {
        const char *next = strchr(line, '\n');
        const char *p = strchr(line, ':'); /* after "sl" */
        char local[64], remote[64];
        unsigned lport, rport, st;
        if (p && (!next || p < next)) {
            p++;
            if (read_endpoint(&p, v6, local, sizeof(local), &lport) == 0 &&
                read_endpoint(&p, v6, remote, sizeof(remote), &rport) == 0) {
                /* st tx:rx tr:when retrnsmt uid timeout inode */
                unsigned long ino = 0;
                int uid = 0, timeout = 0;
                char txrx[32], trwhen[32], retr[16];
                if (sscanf(p, " %x %31s %31s %15s %d %d %lu", &st, txrx, trwhen, retr, &uid, &timeout, &ino) == 7 &&
                    ino && has_inode(inodes, n, ino)) {
                    if (st == TCP_LISTEN && acc->nlisten < (int)ARRAY_SIZE(acc->listen_ports)) {
                        acc->listen_ports[acc->nlisten++] = lport;
                    } else if (st == TCP_ESTABLISHED && acc->nconns < (int)ARRAY_SIZE(acc->conns)) {
                        strlcpy_f(acc->conns[acc->nconns].remote, remote, sizeof(acc->conns[0].remote));
                        strlcpy_f(acc->conns[acc->nconns].local, local, sizeof(acc->conns[0].local));
                        acc->conns[acc->nconns].local_port = lport;
                        acc->nconns++;
                    }
                }
            }
        }
        line = next ? next + 1 : NULL;
    }
}

void streams_result(const streams_acc *acc, streams_seen *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < acc->nconns; i++) {
        int incoming = 0;
        for (int k = 0; k < acc->nlisten; k++)
            incoming |= acc->listen_ports[k] == acc->conns[i].local_port;
        if (incoming)
            continue;
        int count = 0;
        for (int j = 0; j < acc->nconns; j++) {
            int in_j = 0;
            for (int k = 0; k < acc->nlisten; k++)
                in_j |= acc->listen_ports[k] == acc->conns[j].local_port;
            count += !in_j && strcmp(acc->conns[j].remote, acc->conns[i].remote) == 0;
        }
        if (count > out->count) {
            out->count = count;
            strlcpy_f(out->remote, acc->conns[i].remote, sizeof(out->remote));
            strlcpy_f(out->local, acc->conns[i].local, sizeof(out->local));
        }
    }
}

int streams_qemu_pid(const char *run_dir, const char *name, char **err)
{
    _cleanup_free_ char *path = xasprintf("%s/%s.pid", run_dir, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = xasprintf("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    long pid = 0;
    int ok = fscanf(f, "%ld", &pid) == 1 && pid > 0 && pid < (1L << 22);
    fclose(f);
    if (!ok) {
        *err = xasprintf("%s holds no pid", path);
        return -1;
    }
    return (int)pid;
}

/* The whole of a small /proc file (caller frees); NULL when it cannot be read. */
static char *read_proc(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 16384, len = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            if (cap >= (8u << 20))
                break; /* a few thousand sockets at most are read */
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = 0;
    return buf;
}

int streams_of_pid(int pid, streams_seen *out, char **err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_free_ char *fddir = xasprintf("/proc/%d/fd", pid);
    DIR *d = opendir(fddir);
    if (!d) {
        *err = xasprintf("cannot read %s: %s", fddir, strerror(errno));
        return -1;
    }
    size_t n = 0, cap = 64;
    unsigned long *inodes = xmalloc(cap * sizeof(*inodes));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[64], path[300];
        snprintf(path, sizeof(path), "%s/%s", fddir, e->d_name);
        ssize_t l = readlink(path, link, sizeof(link) - 1);
        if (l <= 0)
            continue;
        link[l] = 0;
        unsigned long ino;
        if (sscanf(link, "socket:[%lu]", &ino) != 1)
            continue;
        if (n == cap) {
            cap *= 2;
            inodes = xrealloc(inodes, cap * sizeof(*inodes));
        }
        inodes[n++] = ino;
    }
    closedir(d);
    streams_acc *acc = xcalloc(1, sizeof(*acc));
    for (int v6 = 0; v6 <= 1; v6++) {
        _cleanup_free_ char *p = xasprintf("/proc/%d/net/tcp%s", pid, v6 ? "6" : "");
        _cleanup_free_ char *text = read_proc(p);
        if (text)
            streams_scan(text, v6, inodes, n, acc);
    }
    streams_result(acc, out);
    free(acc);
    free(inodes);
    return 0;
}
