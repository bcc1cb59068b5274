/* announce: did a guest that just arrived announce itself on this host's network? (issue #15)
 *
 * After a live migration QEMU sends the guest's MAC in RARP frames from the destination (its
 * "announce"), and a virtio guest may send gratuitous ARP too; either teaches the network the
 * guest's new port. For an interface on a Linux bridge, the bridge's forwarding database tells
 * whether a frame with the guest's MAC came in through the guest's own tap, which is new with
 * the destination's QEMU: seen there means the guest announced itself (or sent anything) here.
 * Read from sysfs (/sys/class/net/<bridge>/brforward, .../<tap>/brport/port_no): no netlink,
 * no libvirt. Other kinds of interface (OVS, macvtap, a libvirt network) are not known here. */
#ifndef FERRY_ANNOUNCE_H
#define FERRY_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "domxml.h"
#include "util.h"

typedef enum announce_state {
    ANNOUNCE_SEEN,     /* the MAC was learned on the guest's own port */
    ANNOUNCE_NOT_SEEN, /* the bridge does not know the MAC on that port (yet) */
    ANNOUNCE_UNKNOWN,  /* cannot be told: not a bridge port, unreadable sysfs, bad names */
} announce_state;

/* The word for st: "seen", "not_seen", "unknown" (static). */
const char *announce_state_str(announce_state st);

/* Parses "52:54:00:ab:cd:ef" (any case) into mac. Returns 0, or -1 if s is not one. */
int announce_parse_mac(const char *s, uint8_t mac[6]) FERRY_WUR;

/* Looks for mac in buf (len bytes of a bridge's brforward: the kernel's struct __fdb_entry,
 * 16 bytes each; a trailing partial record is ignored). Returns 1 when a non-local entry for
 * mac is on port `port` (and sets *age_cs, its age in hundredths of a second, when age_cs is
 * not NULL), 0 otherwise. Pure. */
int announce_fdb_find(const uint8_t *buf, size_t len, const uint8_t mac[6], unsigned port, unsigned *age_cs);

/* Checks once whether bridge `bridge` has learned the MAC mac (text) on the port of tap `tap`,
 * reading sysfs under sysfs_root ("/sys" in production; tests give a directory of their own).
 * Returns the state; for ANNOUNCE_UNKNOWN, *why (newly allocated, caller frees) says why. */
announce_state announce_check(const char *sysfs_root, const char *bridge, const char *tap, const char *mac, char **why);

/* Checks every interface of ifs (a running domain's, from domxml_ifaces) that is on a bridge
 * and names its MAC and tap, again every 50 ms for up to wait_ms until all are seen (it
 * sleeps: call it off the loop thread). Returns ANNOUNCE_SEEN when all were seen,
 * ANNOUNCE_NOT_SEEN when one was not, ANNOUNCE_UNKNOWN when none could be checked. *detail
 * (newly allocated, caller frees) says what was found, per interface, for logs and events. */
announce_state announce_ifaces(const domxml_iface *ifs, size_t n, const char *sysfs_root, int wait_ms, char **detail);

#endif
