/* inventory: what a compute host has and runs, as the JSON of the host heartbeat event
 * (compute-agent/RPC.md, `host.<name>.heartbeat`). */
#ifndef FERRY_INVENTORY_H
#define FERRY_INVENTORY_H

#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "util.h"

/* The ferry metadata a domain carries in its XML (<metadata><ferry:instance ...>): project
 * and instance id, NULL when absent. Caller frees both. */
typedef struct inv_meta {
    char *project;
    char *instance_id;
} inv_meta;

#define INV_METADATA_NS "https://ferry.invalid/xmlns/instance/1"

/* Reads the ferry metadata of dom into *out (members NULL when absent). Returns 0 (even when
 * there is none), -1 when libvirt fails (*err, caller frees). */
int inv_domain_meta(virDomainPtr dom, inv_meta *out, char **err) FERRY_WUR;
/* Frees the members of m. */
void inv_meta_free(inv_meta *m);

/* Builds the heartbeat body: host facts from conn (capabilities, node info, versions,
 * free memory), disk size/free of instances_path (statvfs), and every domain (active or
 * not) with uuid, name, vcpus, memory_mb, disk_gb (sum of its disk images' virtual sizes,
 * rounded up), state word, persistent, project, instance_id. memory_limit_mb > 0 caps the
 * reported memory_mb (lab hosts share one machine). Returns a new object the caller puts,
 * or NULL with *err (caller frees). */
json_object *inv_build(virConnectPtr conn, const char *host, const char *address, const char *instances_path,
                       long long memory_limit_mb, char **err);
/* The virtual size in bytes of the disk image at path without asking libvirt (which would
 * wait for the domain's job lock): the qcow2 header's size, else the file's or block
 * device's size; 0 when it cannot be read. */
unsigned long long inv_file_virtual_size(const char *path);
/* The state word of a virDomainState: "running", "paused", "shutoff", "crashed", ... */
const char *inv_state_name(int state);
/* Returns 1 when conn's libvirt (>= 1.3.3) and QEMU (>= 2.5.0) support post-copy, else 0. */
int inv_postcopy_supported(virConnectPtr conn);

#endif
