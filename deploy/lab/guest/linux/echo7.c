/* echo7: UDP and TCP echo (RFC 862) on port 7, for the lab's Linux guest.
 * One process, one poll() loop, no forks: every UDP datagram is sent back to its
 * sender; every TCP connection gets back what it sends. Up to MAXCONN TCP
 * connections at a time (more wait in the listen backlog). Each connection has a
 * small buffer: while it holds unsent bytes the connection is not read, so a slow
 * reader only slows itself. Built with gcc -static by build.sh; runs as a child of
 * the guest's /init, which restarts it if it ever exits. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORT 7
#define MAXCONN 64
#define BUFSZ 4096

struct conn {
    int fd;
    size_t off, len;
    char buf[BUFSZ];
};

static struct conn conns[MAXCONN];

static int bound_socket(int type)
{
    struct sockaddr_in6 a;
    int one = 1, zero = 0;
    int fd = socket(AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("echo7: socket");
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero); /* IPv4 too */
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(PORT);
    a.sin6_addr = in6addr_any;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || (type == SOCK_STREAM && listen(fd, 16) < 0)) {
        perror("echo7: bind/listen");
        close(fd);
        return -1;
    }
    return fd;
}

static void drop(struct conn *c)
{
    close(c->fd);
    c->fd = -1;
}

int main(void)
{
    struct pollfd p[2 + MAXCONN];
    int map[2 + MAXCONN];
    char dgram[65536];
    int u = bound_socket(SOCK_DGRAM), t = bound_socket(SOCK_STREAM);
    if (u < 0 || t < 0)
        return 1;
    for (int i = 0; i < MAXCONN; i++)
        conns[i].fd = -1;
    printf("ferry-guest: echo7 listening on udp/7 and tcp/7\n");
    fflush(stdout);

    for (;;) {
        int n = 0, nconn = 0;
        p[n++] = (struct pollfd){.fd = u, .events = POLLIN};
        for (int i = 0; i < MAXCONN; i++) {
            struct conn *c = &conns[i];
            if (c->fd < 0)
                continue;
            nconn++;
            map[n] = i;
            p[n++] = (struct pollfd){.fd = c->fd, .events = c->len ? POLLOUT : POLLIN};
        }
        /* the listening socket is only polled while there is room for a connection */
        int tl = -1;
        if (nconn < MAXCONN) {
            tl = n;
            p[n++] = (struct pollfd){.fd = t, .events = POLLIN};
        }
        if (poll(p, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("echo7: poll");
            return 1;
        }

        if (p[0].revents & POLLIN) {
            /* a bounded batch per wake-up keeps TCP from starving under a UDP flood */
            for (int k = 0; k < 64; k++) {
                struct sockaddr_in6 from;
                socklen_t fl = sizeof from;
                ssize_t r = recvfrom(u, dgram, sizeof dgram, 0, (struct sockaddr *)&from, &fl);
                if (r < 0)
                    break;
                sendto(u, dgram, (size_t)r, 0, (struct sockaddr *)&from, fl);
            }
        }

        for (int j = 1; j < n; j++) {
            if (j == tl || !p[j].revents)
                continue;
            struct conn *c = &conns[map[j]];
            if (c->len == 0) {
                ssize_t r = read(c->fd, c->buf, BUFSZ);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    drop(c);
                    continue;
                }
                if (r > 0) {
                    c->off = 0;
                    c->len = (size_t)r;
                }
            }
            if (c->len) {
                ssize_t w = write(c->fd, c->buf + c->off, c->len);
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    drop(c);
                    continue;
                }
                if (w > 0) {
                    c->off += (size_t)w;
                    c->len -= (size_t)w;
                }
            }
        }

        if (tl >= 0 && (p[tl].revents & POLLIN)) {
            for (int i = 0; i < MAXCONN; i++) {
                if (conns[i].fd >= 0)
                    continue;
                int fd = accept4(t, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conns[i] = (struct conn){.fd = fd};
            }
        }
    }
}
