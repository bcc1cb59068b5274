/* domxml: the few things the agent reads from a domain's XML for a migration — its file
 * disks, its <cpu> element, its interfaces' bridges and networks. The XML comes from libvirt
 * on the source, and from a peer (check_destination's domain_xml): any bytes, so every reader
 * stays inside the string and never trusts a name it finds (callers check them with guard).
 * No libvirt: tests/fuzz/fuzz_domxml.c links it alone. */
#ifndef FERRY_DOMXML_H
#define FERRY_DOMXML_H

#include <stddef.h>

#include <json-c/json.h>

/* The disks of type "file" and device "disk" (or no device) of xml, as a new array the caller
 * puts: [{path, format (the driver type, "raw" when absent), target (when present)}]. */
json_object *domxml_disks(const char *xml);

/* The domain's <cpu> element (not <cputune> or <vcpu>), whole, as a new string the caller
 * frees; NULL when there is none or it is not closed. */
char *domxml_cpu(const char *xml);

/* One <interface>'s <source>: bridge and network (NULL when absent; owned by the array). */
typedef struct domxml_iface {
    char *bridge;
    char *network;
} domxml_iface;

/* The interfaces of xml with a <source>: *out (caller frees with domxml_ifaces_free) and *n. */
void domxml_ifaces(const char *xml, domxml_iface **out, size_t *n);
/* Frees an array of n interfaces (NULL is fine). */
void domxml_ifaces_free(domxml_iface *ifs, size_t n);

#endif
