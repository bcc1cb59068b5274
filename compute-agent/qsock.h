/* qsock: the TCP sockets of a domain's QEMU process that carry its migration stream, found
 * through /proc and shut down (issue #17, post-copy recovery).
 *
 * After a post-copy migration's stream broke, the destination's QEMU may not see it: its vCPU
 * waits on a page it asked for before the break, it sends nothing more, and its end of the
 * stream stays half-open (QEMU sets no keepalive on it). libvirt's Finish of the incoming
 * migration holds the domain's job meanwhile, so neither a resume nor
 * VIR_DOMAIN_ABORT_JOB_POSTCOPY gets through (both wait on that job). Shutting the socket down
 * from outside (a duplicate of QEMU's descriptor taken with pidfd_getfd(2); shutdown(2) acts on
 * the socket both descriptors share) makes QEMU see the end of its stream at once: it pauses the
 * post-copy, libvirt's Finish returns, and the source can resume the migration.
 *
 * The QEMU process is the one of this host (the caller's PID and network namespaces) whose
 * command line has `-uuid <uuid>`; its migration sockets are its established TCP connections
 * whose local or remote port is in libvirt's migration port range (qemu.conf's
 * migration_port_min/max, the agent's [libvirt] migration_port_min/max). Needs the right to
 * ptrace QEMU (root). Nothing here is reached by a remote sender's bytes except the UUID, which
 * the RPC layer checked (rpcin). */
#ifndef FERRY_QSOCK_H
#define FERRY_QSOCK_H

#include <stdint.h>

#include "util.h"

/* One line of /proc/net/tcp or tcp6, the fields qsock needs. */
typedef struct qsock_tcp {
    unsigned local_port, remote_port;
    unsigned state; /* the kernel's TCP state number: 1 = established */
    uint64_t inode;
} qsock_tcp;

/* Parses one line of /proc/net/tcp or /proc/net/tcp6 (not the header). Returns 0, or -1 when
 * the line is not one. Pure. */
int qsock_parse_tcp_line(const char *line, qsock_tcp *out) FERRY_WUR;

/* The inode of a descriptor's link text "socket:[N]". Returns 0 and *inode, or -1 when the
 * link is not a socket's. Pure. */
int qsock_parse_socket_link(const char *link, uint64_t *inode) FERRY_WUR;

/* Whether the NUL-separated command line cmd (len bytes, as /proc/PID/cmdline) has the
 * arguments "-uuid" and uuid (any case) one after the other. Pure. */
int qsock_cmdline_has_uuid(const char *cmd, size_t len, const char *uuid);

/* Shuts down (both directions) every established TCP socket of the QEMU process of the domain
 * with this uuid whose local or remote port is in [port_min, port_max]. proc is "/proc" (tests
 * may give another root for the search; the shutdown itself always goes through pidfd). Returns
 * the number of sockets shut (0: none found) and sets *pid to QEMU's PID, or -1 with *err
 * (newly allocated, caller frees) saying what failed. */
int qsock_shut_migration(const char *proc, const char *uuid, unsigned port_min, unsigned port_max, long *pid,
                         char **err) FERRY_WUR;

#endif
