/* announce: a bridge's forwarding database read from sysfs (see announce.h) */
#include "announce.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "util.h"

/* the kernel's struct __fdb_entry (linux/if_bridge.h), as brforward gives it */
enum { FDB_RECORD = 16, FDB_PORT_NO = 6, FDB_IS_LOCAL = 7, FDB_AGE = 8, FDB_PORT_HI = 12 };
/* brforward of a bridge with this many entries is read whole; more are not looked at */
#define FDB_MAX_BYTES (FDB_RECORD * 65536)

const char *announce_state_str(announce_state st)
{
    switch (st) {
    case ANNOUNCE_SEEN:
        return "seen";
    case ANNOUNCE_NOT_SEEN:
        return "not_seen";
    case ANNOUNCE_UNKNOWN:
        break;
    }
    return "unknown";
}

int announce_parse_mac(const char *s, uint8_t mac[6])
{
    if (!s || strlen(s) != 17)
        return -1;
    for (int i = 0; i < 6; i++) {
        int hi = hex_digit(s[i * 3]), lo = hex_digit(s[i * 3 + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':'))
            return -1;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int announce_fdb_find(const uint8_t *buf, size_t len, const uint8_t mac[6], unsigned port, unsigned *age_cs)
{
    for (size_t off = 0; off + FDB_RECORD <= len; off += FDB_RECORD) {
        const uint8_t *e = buf + off;
        unsigned p = (unsigned)e[FDB_PORT_HI] << 8 | e[FDB_PORT_NO];
        if (memcmp(e, mac, 6) != 0 || e[FDB_IS_LOCAL] || p != port)
            continue;
        if (age_cs) {
            uint32_t age;
            memcpy(&age, e + FDB_AGE, sizeof(age)); /* host byte order, as the kernel wrote it */
            *age_cs = age;
        }
        return 1;
    }
    return 0;
}

/* reads at most max bytes of path into a new buffer; -1 with errno on failure */
static ssize_t read_small(const char *path, uint8_t **out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    uint8_t *buf = xmalloc(max);
    size_t n = 0;
    while (n < max) {
        ssize_t r = read(fd, buf + n, max - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *out = buf;
    return (ssize_t)n;
}

announce_state announce_check(const char *sysfs_root, const char *bridge, const char *tap, const char *mac_s,
                              char **why)
{
    uint8_t mac[6];
    char *w = NULL;
    /* the names come from the domain's live XML: plain interface names only, into a path */
    if (guard_plain_name(bridge, strlen(bridge), 15, &w) < 0 || guard_plain_name(tap, strlen(tap), 15, &w) < 0) {
        *why = xasprintf("interface name %s", w);
        free(w);
        return ANNOUNCE_UNKNOWN;
    }
    if (announce_parse_mac(mac_s, mac) < 0) {
        *why = xasprintf("'%s' is not a MAC address", mac_s);
        return ANNOUNCE_UNKNOWN;
    }
    _cleanup_free_ char *port_path = xasprintf("%s/class/net/%s/brport/port_no", sysfs_root, tap);
    _cleanup_free_ char *fdb_path = xasprintf("%s/class/net/%s/brforward", sysfs_root, bridge);
    _cleanup_free_ uint8_t *pbuf = NULL;
    ssize_t n = read_small(port_path, &pbuf, 32);
    if (n <= 0) {
        *why = xasprintf("%s is not a port of a Linux bridge here (%s: %s)", tap, port_path,
                         n < 0 ? strerror(errno) : "empty");
        return ANNOUNCE_UNKNOWN;
    }
    char text[33];
    memcpy(text, pbuf, (size_t)n);
    text[n] = 0;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(text, &end, 0); /* "0x2\n" */
    if (errno || end == text || (*end && *end != '\n') || port > 0xffff) {
        *why = xasprintf("%s: not a port number", port_path);
        return ANNOUNCE_UNKNOWN;
    }
    _cleanup_free_ uint8_t *fdb = NULL;
    n = read_small(fdb_path, &fdb, FDB_MAX_BYTES);
    if (n < 0) {
        *why = xasprintf("%s: %s", fdb_path, strerror(errno));
        return ANNOUNCE_UNKNOWN;
    }
    return announce_fdb_find(fdb, (size_t)n, mac, (unsigned)port, NULL) ? ANNOUNCE_SEEN : ANNOUNCE_NOT_SEEN;
}

announce_state announce_ifaces(const domxml_iface *ifs, size_t n, const char *sysfs_root, int wait_ms, char **detail)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        size_t checked = 0, seen = 0;
        char *text = xstrdup("");
        for (size_t i = 0; i < n; i++) {
            const domxml_iface *f = &ifs[i];
            if (!f->bridge || !f->mac || !f->target)
                continue;
            char *why = NULL, *line;
            announce_state st = announce_check(sysfs_root, f->bridge, f->target, f->mac, &why);
            if (st == ANNOUNCE_SEEN)
                line =
                    xasprintf("%s%s%s seen on %s of bridge %s", text, *text ? "; " : "", f->mac, f->target, f->bridge);
            else if (st == ANNOUNCE_NOT_SEEN)
                line = xasprintf("%s%s%s not seen on %s of bridge %s", text, *text ? "; " : "", f->mac, f->target,
                                 f->bridge);
            else
                line = xasprintf("%s%s%s on %s: cannot tell: %s", text, *text ? "; " : "", f->mac, f->target, why);
            free(why);
            free(text);
            text = line;
            if (st != ANNOUNCE_UNKNOWN)
                checked++;
            if (st == ANNOUNCE_SEEN)
                seen++;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (checked == 0 || seen == checked || waited >= wait_ms) {
            if (!*text) {
                free(text);
                text = xstrdup("no interface on a bridge");
            }
            *detail = text;
            return checked == 0 ? ANNOUNCE_UNKNOWN : seen == checked ? ANNOUNCE_SEEN : ANNOUNCE_NOT_SEEN;
        }
        free(text);
        struct timespec step = {0, 50 * 1000000L};
        nanosleep(&step, NULL);
    }
}
