/* streams: the outgoing TCP connections of a local process, read from /proc — how the agent
 * checks that QEMU opened the migration streams it was asked for (parallel connections) and
 * which addresses they use (the migration network). An outgoing connection is an established
 * one whose local port is none of the process's listening ports (a VNC or SPICE client's
 * connection to QEMU is incoming); they are grouped by remote address, and the largest group is
 * the destination's. Reads only /proc; no libvirt, no loop. */
#ifndef FERRY_STREAMS_H
#define FERRY_STREAMS_H

#include <stddef.h>

#include "util.h"

/* What a process holds to its busiest peer. */
typedef struct streams_seen {
    int count;       /* established outgoing connections to `remote` (0: none) */
    char remote[64]; /* that peer's address, numeric ("" when none) */
    char local[64];  /* the local address of one of them ("" when none) */
} streams_seen;

/* Established connections and listening ports of a process, gathered from its net/tcp files
 * (zeroed before the first streams_scan; at most 128 connections and 64 ports are kept). */
typedef struct streams_acc {
    struct {
        char remote[64], local[64];
        unsigned local_port;
    } conns[128];
    int nconns;
    unsigned listen_ports[64];
    int nlisten;
} streams_acc;
/* Reads the text of /proc/PID/net/tcp (v6 = 0) or tcp6 (v6 = 1): the lines whose socket inode
 * is one of inodes[0..n) (the process's own) go into *acc, established connections and
 * listening ports; lines it cannot read are skipped. */
void streams_scan(const char *text, int v6, const unsigned long *inodes, size_t n, streams_acc *acc);
/* The busiest peer of the outgoing connections in *acc (out all zero when none). */
void streams_result(const streams_acc *acc, streams_seen *out);

/* Reads the pid of QEMU running domain `name` from libvirt's pid file in run_dir (for the
 * system QEMU driver /run/libvirt/qemu). >0, or -1 with *err (caller frees). */
int streams_qemu_pid(const char *run_dir, const char *name, char **err) FERRY_WUR;
/* Counts process pid's outgoing connections (its fds in /proc/PID/fd, its namespace's
 * /proc/PID/net/tcp and tcp6) into *out. 0, or -1 with *err (caller frees). */
int streams_of_pid(int pid, streams_seen *out, char **err) FERRY_WUR;

#endif
