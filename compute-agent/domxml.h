/* domxml: what the agent reads from a domain's XML — its disks, its <cpu> element, its
 * interfaces' bridges and networks. The XML comes from libvirt on this host, and from a peer
 * (check_destination's domain_xml): any bytes, so it is read with lvxml (well-formed or
 * nothing, no DTD, bounded) and no name found in it is trusted (callers check them with
 * guard). No libvirt: tests/fuzz/fuzz_domxml.c links it alone (with lvxml.c). */
#ifndef FERRY_DOMXML_H
#define FERRY_DOMXML_H

#include <stddef.h>

#include <json-c/json.h>

#include "util.h"

/* Checks that xml is a well-formed document whose root is <domain>: 0, or -1 with *err saying
 * why (caller frees). */
int domxml_check(const char *xml, char **err) FERRY_WUR;

/* One <disk> of /domain/devices; members NULL when absent (owned by the array). */
typedef struct domxml_disk {
    char *type;   /* file, block, network, volume, dir, ... */
    char *device; /* disk, cdrom, floppy, lun (absent means disk) */
    char *path;   /* the disk's own <source file=...> or <source dev=...> (not a backing file's) */
    char *format; /* <driver type=...>: raw, qcow2, ... */
    char *target; /* <target dev=...>: vda, sda, ... */
} domxml_disk;

/* Every disk of xml, in document order: *out (caller frees with domxml_disk_list_free) and *n;
 * none when xml is not a well-formed <domain>. */
void domxml_disk_list(const char *xml, domxml_disk **out, size_t *n);
/* Frees an array of n disks (NULL is fine). */
void domxml_disk_list_free(domxml_disk *d, size_t n);

/* The disks of type "file" and device "disk" (or no device) that have a source file, as a new
 * array the caller puts: [{path, format (the driver type, "raw" when absent), target (when
 * present)}]. */
json_object *domxml_disks(const char *xml);

/* The domain's <cpu> element (/domain/cpu: not <cputune>, not one in <metadata>), whole, as a
 * new string the caller frees; NULL when there is none or xml is not a well-formed <domain>. */
char *domxml_cpu(const char *xml);

/* One <interface>'s <source>: bridge and network (NULL when absent; owned by the array). */
typedef struct domxml_iface {
    char *bridge;  /* <source bridge=...>, or NULL */
    char *network; /* <source network=...>, or NULL */
    char *mac;     /* <mac address=...>, or NULL */
    char *target;  /* <target dev=...> (the tap of a running domain), or NULL */
} domxml_iface;

/* The interfaces of xml (libvirt's <interface> elements at any depth, whatever the root, so
 * a name checked by rpcin cannot hide) whose <source> names a bridge or a network: *out (caller
 * frees with domxml_ifaces_free) and *n; none when xml is not well-formed. */
void domxml_ifaces(const char *xml, domxml_iface **out, size_t *n);
/* Frees an array of n interfaces (NULL is fine). */
void domxml_ifaces_free(domxml_iface *ifs, size_t n);

#endif
