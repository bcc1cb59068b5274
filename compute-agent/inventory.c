/* inventory: what a compute host has and runs (see inventory.h).
 *
 * libvirt hands out XML (capabilities, domain XML, metadata): it is read with lvxml (libxml2)
 * and domxml. The readers come first and need no libvirt library: tests/unit/test_inventory.c
 * includes this file with INV_XML_ONLY defined to test them without linking libvirt. */
#include "inventory.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "domxml.h"
#include "log.h"
#include "lvxml.h"

#define GIB (1024ULL * 1024 * 1024)
#define MIB (1024ULL * 1024)

/* ---- the XML libvirt hands out -------------------------------------------------------------- */

/* The host part of the capabilities (/capabilities/host/cpu): arch, CPU model and the whole
 * host <cpu> element. 0 with the found members set (others NULL; caller frees), -1 when there
 * is no host cpu or the document is not well-formed. */
static int caps_parse(const char *caps, char **arch, char **model, char **cpu_xml)
{
    *arch = *model = *cpu_xml = NULL;
    _cleanup_(lvxml_freep) lvxml_doc *d = NULL;
    char *err = NULL;
    if (lvxml_parse(caps, strlen(caps), "the host capabilities", &d, &err) < 0) {
        free(err); /* libvirt's own output: inv_build says what it missed */
        return -1;
    }
    const lvxml_node *cpu = lvxml_child(lvxml_child(lvxml_root(d, "capabilities"), "host"), "cpu");
    if (!cpu)
        return -1;
    *arch = lvxml_text(lvxml_child(cpu, "arch"));
    *model = lvxml_text(lvxml_child(cpu, "model"));
    *cpu_xml = lvxml_format(cpu);
    return 0;
}

/* The ferry metadata element (as virDomainGetMetadata returns it: the root, <instance> in
 * ferry's namespace, whatever the prefix): its project and id children. Members NULL when
 * absent or when the element is not well-formed. */
static void meta_parse(const char *xml, inv_meta *out)
{
    out->project = out->instance_id = NULL;
    _cleanup_(lvxml_freep) lvxml_doc *d = NULL;
    char *err = NULL;
    if (lvxml_parse(xml, strlen(xml), "the ferry metadata", &d, &err) < 0) {
        log_debug(NULL, "%s", err);
        free(err);
        return;
    }
    const lvxml_node *inst = lvxml_root(d, "*:instance");
    out->project = lvxml_text(lvxml_child(inst, "*:project"));
    out->instance_id = lvxml_text(lvxml_child(inst, "*:id"));
}

/* One disk of a domain: the target device (vda) and the image path (file or block device). */
typedef struct inv_disk {
    char *target;
    char *path;
} inv_disk;

static void disks_free(inv_disk *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].target);
        free(d[i].path);
    }
    free(d);
}

/* The disks (device "disk" or "lun"; not cdrom or floppy) of a domain XML that have a path or
 * a target. Caller frees with disks_free. */
static inv_disk *disks_parse(const char *xml, size_t *n_out)
{
    domxml_disk *all;
    size_t nall, n = 0;
    domxml_disk_list(xml, &all, &nall);
    inv_disk *d = NULL;
    for (size_t i = 0; i < nall; i++) {
        domxml_disk *k = &all[i];
        if (k->device && (strcmp(k->device, "cdrom") == 0 || strcmp(k->device, "floppy") == 0))
            continue;
        if (!k->path && !k->target)
            continue;
        d = xrealloc(d, (n + 1) * sizeof(*d));
        d[n].path = TAKE_PTR(k->path);
        d[n].target = TAKE_PTR(k->target);
        n++;
    }
    domxml_disk_list_free(all, nall);
    *n_out = n;
    return d;
}

/* The virtual size of a disk image header: qcow2 (big-endian size at offset 24), else 0.
 * buf holds the first len bytes of the file. */
static unsigned long long qcow2_virtual_size(const unsigned char *buf, size_t len)
{
    if (len < 32 || memcmp(buf, "QFI\xfb", 4) != 0)
        return 0;
    unsigned long long v = 0;
    for (int i = 24; i < 32; i++)
        v = v << 8 | buf[i];
    return v;
}

static unsigned long long round_up_gib(unsigned long long bytes)
{
    return (bytes + GIB - 1) / GIB;
}

const char *inv_state_name(int state)
{
    switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
        return "running";
    case VIR_DOMAIN_PAUSED:
        return "paused";
    case VIR_DOMAIN_SHUTDOWN:
        return "shutdown";
    case VIR_DOMAIN_SHUTOFF:
        return "shutoff";
    case VIR_DOMAIN_CRASHED:
        return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
        return "pmsuspended";
    case VIR_DOMAIN_NOSTATE:
    default:
        return "unknown";
    }
}

void inv_meta_free(inv_meta *m)
{
    if (!m)
        return;
    free(m->project);
    free(m->instance_id);
    m->project = m->instance_id = NULL;
}

#ifndef INV_XML_ONLY
/* ---- libvirt ------------------------------------------------------------------------------ */

static char *version_string(unsigned long v)
{
    return xasprintf("%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
}

int inv_domain_meta(virDomainPtr dom, inv_meta *out, char **err)
{
    char *xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, INV_METADATA_NS, VIR_DOMAIN_AFFECT_CURRENT);
    if (!xml) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN_METADATA) {
            out->project = out->instance_id = NULL;
            return 0;
        }
        *err = xasprintf("could not read the metadata of domain %s: %s", virDomainGetName(dom),
                         e && e->message ? e->message : "unknown libvirt error");
        return -1;
    }
    meta_parse(xml, out);
    free(xml);
    return 0;
}

int inv_postcopy_supported(virConnectPtr conn)
{
    unsigned long lib = 0, hv = 0;
    const char *type = virConnectGetType(conn);
    if (!type || strcasecmp(type, "QEMU") != 0)
        return 0;
    if (virConnectGetLibVersion(conn, &lib) < 0 || virConnectGetVersion(conn, &hv) < 0)
        return 0;
    return lib >= 1003003 && hv >= 2005000;
}

unsigned long long inv_file_virtual_size(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    unsigned long long size = n > 0 ? qcow2_virtual_size(buf, (size_t)n) : 0;
    if (!size) {
        off_t end = lseek(fd, 0, SEEK_END); /* block devices too */
        size = end > 0 ? (unsigned long long)end : 0;
    }
    close(fd);
    return size;
}

/* Sum of the virtual sizes of dom's disks, in GiB rounded up (0 when unknown). */
static long long domain_disk_gb(virDomainPtr dom, const char *uuid)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml) {
        log_debug(&(log_fields){.instance = uuid}, "could not read the XML of domain %s: %s", virDomainGetName(dom),
                  virGetLastErrorMessage());
        return 0;
    }
    size_t n = 0;
    inv_disk *d = disks_parse(xml, &n);
    free(xml);
    unsigned long long total = 0;
    /* read from the image files, not virDomainGetBlockInfo: that one waits for the domain's
     * job lock, i.e. for a whole incoming migration, and the heartbeat runs on the loop thread */
    for (size_t i = 0; i < n; i++)
        if (d[i].path)
            total += inv_file_virtual_size(d[i].path);
    disks_free(d, n);
    return (long long)round_up_gib(total);
}

/* Adds dom's entry to arr; 1 when the domain vanished meanwhile (skipped), 0, or -1. */
static int add_domain(json_object *arr, virDomainPtr dom, long long *active_mb, char **err)
{
    char uuid[VIR_UUID_STRING_BUFLEN];
    const char *name = virDomainGetName(dom);
    virDomainInfo info;
    if (virDomainGetUUIDString(dom, uuid) < 0 || virDomainGetInfo(dom, &info) < 0) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN)
            return 1;
        *err = xasprintf("could not read domain %s: %s", name ? name : "?",
                         e && e->message ? e->message : "unknown libvirt error");
        return -1;
    }
    int persistent = virDomainIsPersistent(dom);
    inv_meta meta = {0};
    char *merr = NULL;
    if (inv_domain_meta(dom, &meta, &merr) < 0) {
        /* informative only: the domain is still listed */
        log_debug(&(log_fields){.instance = uuid}, "%s", merr);
        free(merr);
    }
    long long memory_mb = (long long)(info.maxMem / 1024);
    if (info.state == VIR_DOMAIN_RUNNING || info.state == VIR_DOMAIN_BLOCKED || info.state == VIR_DOMAIN_PAUSED ||
        info.state == VIR_DOMAIN_SHUTDOWN || info.state == VIR_DOMAIN_PMSUSPENDED)
        *active_mb += memory_mb;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "uuid", json_object_new_string(uuid));
    json_object_object_add(o, "name", json_object_new_string(name ? name : ""));
    json_object_object_add(o, "vcpus", json_object_new_int(info.nrVirtCpu));
    json_object_object_add(o, "memory_mb", json_object_new_int64(memory_mb));
    json_object_object_add(o, "disk_gb", json_object_new_int64(domain_disk_gb(dom, uuid)));
    json_object_object_add(o, "state", json_object_new_string(inv_state_name(info.state)));
    json_object_object_add(o, "persistent", json_object_new_boolean(persistent == 1));
    json_object_object_add(o, "project", meta.project ? json_object_new_string(meta.project) : NULL);
    json_object_object_add(o, "instance_id", meta.instance_id ? json_object_new_string(meta.instance_id) : NULL);
    inv_meta_free(&meta);
    json_object_array_add(arr, o);
    return 0;
}

json_object *inv_build(virConnectPtr conn, const char *host, const char *address, const char *instances_path,
                       long long memory_limit_mb, char **err)
{
    json_object *body = NULL, *domains = NULL;
    virDomainPtr *doms = NULL;
    int ndoms = -1;
    virNodeInfo ni;
    unsigned long long free_bytes = 0;
    unsigned long lib = 0, hvver = 0;
    const char *type = NULL;
    long long active_mb = 0, memory_mb = 0, free_mb = 0, disk_gb = 0, disk_free_gb = 0;
    struct statvfs sv;
    _cleanup_free_ char *caps = NULL, *arch = NULL, *model = NULL, *cpu_xml = NULL, *libv = NULL, *hvv = NULL,
                        *hv = NULL;

    caps = virConnectGetCapabilities(conn);
    if (!caps) {
        *err = xasprintf("could not read the host capabilities: %s", virGetLastErrorMessage());
        goto fail;
    }
    if (caps_parse(caps, &arch, &model, &cpu_xml) < 0) {
        *err = xstrdup("could not read the host capabilities: no <capabilities><host><cpu> element in well-formed XML");
        goto fail;
    }
    if (virNodeGetInfo(conn, &ni) < 0) {
        *err = xasprintf("could not read the node information: %s", virGetLastErrorMessage());
        goto fail;
    }
    virResetLastError();
    free_bytes = virNodeGetFreeMemory(conn);
    if (free_bytes == 0) {
        virErrorPtr e = virGetLastError();
        if (e && e->code != VIR_ERR_OK) {
            *err = xasprintf("could not read the free memory: %s", e->message ? e->message : "unknown libvirt error");
            goto fail;
        }
    }
    if (virConnectGetLibVersion(conn, &lib) < 0 || virConnectGetVersion(conn, &hvver) < 0) {
        *err = xasprintf("could not read the libvirt and hypervisor versions: %s", virGetLastErrorMessage());
        goto fail;
    }
    libv = version_string(lib);
    hvv = version_string(hvver);
    type = virConnectGetType(conn);
    if (!type) {
        *err = xasprintf("could not read the hypervisor type: %s", virGetLastErrorMessage());
        goto fail;
    }
    hv = xstrdup(type);
    for (char *s = hv; *s; s++)
        *s = (char)tolower((unsigned char)*s);

    ndoms = virConnectListAllDomains(conn, &doms, 0);
    if (ndoms < 0) {
        *err = xasprintf("could not list the domains: %s", virGetLastErrorMessage());
        goto fail;
    }
    domains = json_object_new_array();
    for (int i = 0; i < ndoms; i++)
        if (add_domain(domains, doms[i], &active_mb, err) < 0)
            goto fail;

    memory_mb = (long long)(ni.memory / 1024);
    free_mb = (long long)(free_bytes / MIB);
    if (memory_limit_mb > 0) {
        /* lab hosts share one machine: each has memory_limit_mb, less what its guests use */
        long long budget = memory_limit_mb - active_mb;
        if (memory_mb > memory_limit_mb)
            memory_mb = memory_limit_mb;
        if (budget < 0)
            budget = 0;
        if (free_mb > budget)
            free_mb = budget;
    }
    if (instances_path && statvfs(instances_path, &sv) == 0) {
        disk_gb = (long long)((unsigned long long)sv.f_blocks * sv.f_frsize / GIB);
        disk_free_gb = (long long)((unsigned long long)sv.f_bavail * sv.f_frsize / GIB);
    } else {
        log_debug(NULL, "cannot read the size of the instances path %s: %s", instances_path ? instances_path : "(none)",
                  strerror(errno));
    }

    body = json_object_new_object();
    json_object_object_add(body, "host", json_object_new_string(host ? host : ""));
    json_object_object_add(body, "address", json_object_new_string(address ? address : ""));
    json_object_object_add(body, "vcpus", json_object_new_int((int)ni.cpus));
    json_object_object_add(body, "memory_mb", json_object_new_int64(memory_mb));
    json_object_object_add(body, "free_memory_mb", json_object_new_int64(free_mb));
    json_object_object_add(body, "disk_gb", json_object_new_int64(disk_gb));
    json_object_object_add(body, "disk_free_gb", json_object_new_int64(disk_free_gb));
    json_object_object_add(body, "arch", json_object_new_string(arch ? arch : ni.model));
    json_object_object_add(body, "cpu_model", model ? json_object_new_string(model) : NULL);
    json_object_object_add(body, "cpu_xml", json_object_new_string(cpu_xml));
    json_object_object_add(body, "hypervisor", json_object_new_string(hv));
    json_object_object_add(body, "libvirt_version", json_object_new_string(libv));
    json_object_object_add(body, "qemu_version", json_object_new_string(hvv));
    json_object_object_add(body, "postcopy", json_object_new_boolean(inv_postcopy_supported(conn)));
    json_object_object_add(body, "instances_path", json_object_new_string(instances_path ? instances_path : ""));
    json_object_object_add(body, "domains", domains);
    domains = NULL;

fail:
    json_object_put(domains);
    for (int i = 0; i < ndoms; i++)
        virDomainFree(doms[i]);
    free(doms);
    return body;
}
#endif /* INV_XML_ONLY */
