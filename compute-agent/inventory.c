/* inventory: what a compute host has and runs (see inventory.h).
 *
 * libvirt hands out XML (capabilities, domain XML, metadata) and libxml2 is not one of our
 * dependencies, so a small tolerant scanner below reads the few elements we need: it knows
 * tags, attributes (quoted either way), comments, CDATA, processing instructions, namespace
 * prefixes and entities, and assumes well-formed input (libvirt's).
 *
 * The XML helpers come first and need no libvirt library: tests/unit/test_inventory.c
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

#include "log.h"

#define GIB (1024ULL * 1024 * 1024)
#define MIB (1024ULL * 1024)

/* ---- a tolerant XML scanner ------------------------------------------------------------- */

typedef enum { TAG_NONE = 0, TAG_OPEN, TAG_CLOSE, TAG_EMPTY, TAG_OTHER } tag_kind;

typedef struct xtag {
    tag_kind kind;
    const char *start; /* '<' */
    const char *name;  /* qualified name */
    size_t name_len;
    const char *attrs; /* after the name */
    const char *attrs_end;
    const char *end; /* after '>' */
} xtag;

/* An element: start tag [tag, body), content [body, body_end), end tag [body_end, end).
 * For <x/>, body == body_end == end. */
typedef struct xel {
    const char *tag;
    const char *attrs;
    const char *attrs_end;
    const char *body;
    const char *body_end;
    const char *end;
} xel;

static const char *find_str(const char *p, const char *end, const char *s)
{
    size_t n = strlen(s);
    for (; p && (size_t)(end - p) >= n; p++)
        if (memcmp(p, s, n) == 0)
            return p;
    return NULL;
}

/* Reads the next tag at or after p; 0 and *t, or -1 at the end or on malformed input. */
static int tag_next(const char *p, const char *end, xtag *t)
{
    p = p < end ? memchr(p, '<', (size_t)(end - p)) : NULL;
    if (!p)
        return -1;
    memset(t, 0, sizeof(*t));
    t->start = p;
    const char *q = p + 1;
    if (q < end && (*q == '!' || *q == '?')) {
        const char *close;
        if ((size_t)(end - q) >= 3 && memcmp(q, "!--", 3) == 0)
            close = find_str(q + 3, end, "-->"), close = close ? close + 3 : NULL;
        else if ((size_t)(end - q) >= 8 && memcmp(q, "![CDATA[", 8) == 0)
            close = find_str(q + 8, end, "]]>"), close = close ? close + 3 : NULL;
        else if (*q == '?')
            close = find_str(q + 1, end, "?>"), close = close ? close + 2 : NULL;
        else
            close = memchr(q, '>', (size_t)(end - q)), close = close ? close + 1 : NULL;
        if (!close)
            return -1;
        t->kind = TAG_OTHER;
        t->end = close;
        return 0;
    }
    t->kind = TAG_OPEN;
    if (q < end && *q == '/') {
        t->kind = TAG_CLOSE;
        q++;
    }
    t->name = q;
    while (q < end && !isspace((unsigned char)*q) && *q != '>' && *q != '/')
        q++;
    t->name_len = (size_t)(q - t->name);
    if (t->name_len == 0)
        return -1;
    t->attrs = q;
    char quote = 0;
    for (; q < end; q++) {
        if (quote) {
            if (*q == quote)
                quote = 0;
        } else if (*q == '"' || *q == '\'') {
            quote = *q;
        } else if (*q == '>') {
            break;
        }
    }
    if (q >= end)
        return -1;
    t->attrs_end = q;
    if (t->kind == TAG_OPEN && q > t->attrs && q[-1] == '/') {
        t->kind = TAG_EMPTY;
        t->attrs_end = q - 1;
    }
    t->end = q + 1;
    return 0;
}

/* The local part of a qualified name equals local. */
static int name_is(const char *name, size_t n, const char *local)
{
    const char *colon = memchr(name, ':', n);
    if (colon) {
        n -= (size_t)(colon + 1 - name);
        name = colon + 1;
    }
    return strlen(local) == n && memcmp(name, local, n) == 0;
}

/* Fills e from the start tag t, finding the matching end tag; 0, or -1 when unbalanced. */
static int element_from(const xtag *t, const char *end, xel *e)
{
    e->tag = t->start;
    e->attrs = t->attrs;
    e->attrs_end = t->attrs_end;
    e->body = t->end;
    if (t->kind == TAG_EMPTY) {
        e->body_end = e->end = t->end;
        return 0;
    }
    int depth = 0;
    xtag u;
    for (const char *p = t->end; tag_next(p, end, &u) == 0; p = u.end) {
        if (u.kind == TAG_OPEN) {
            depth++;
        } else if (u.kind == TAG_CLOSE) {
            if (depth-- == 0) {
                e->body_end = u.start;
                e->end = u.end;
                return 0;
            }
        }
    }
    return -1;
}

/* The first element named local (any prefix, any depth) in [p, end); 0 or -1. */
static int xml_find(const char *p, const char *end, const char *local, xel *e)
{
    xtag t;
    for (; tag_next(p, end, &t) == 0; p = t.end)
        if ((t.kind == TAG_OPEN || t.kind == TAG_EMPTY) && name_is(t.name, t.name_len, local))
            return element_from(&t, end, e);
    return -1;
}

/* The first direct child of parent named local; 0 or -1. */
static int xml_child(const xel *parent, const char *local, xel *e)
{
    const char *p = parent->body, *end = parent->body_end;
    xtag t;
    while (tag_next(p, end, &t) == 0) {
        if (t.kind == TAG_OPEN || t.kind == TAG_EMPTY) {
            xel c;
            if (element_from(&t, end, &c) < 0)
                return -1;
            if (name_is(t.name, t.name_len, local)) {
                *e = c;
                return 0;
            }
            p = c.end;
        } else {
            p = t.end;
        }
    }
    return -1;
}

/* Decodes XML entities of [s, s+n) into a new string. Caller frees. */
static char *xml_unescape(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    const char *end = s + n;
    while (s < end) {
        if (*s != '&') {
            *o++ = *s++;
            continue;
        }
        const char *semi = memchr(s, ';', (size_t)(end - s));
        size_t len = semi ? (size_t)(semi - s) + 1 : 0;
        static const struct {
            const char *ent;
            char c;
        } named[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
        int done = 0;
        for (size_t i = 0; semi && i < ARRAY_SIZE(named) && !done; i++) {
            if (len == strlen(named[i].ent) && memcmp(s, named[i].ent, len) == 0) {
                *o++ = named[i].c;
                s += len;
                done = 1;
            }
        }
        if (!done && semi && len > 3 && s[1] == '#') {
            char *e = NULL;
            unsigned long cp = s[2] == 'x' || s[2] == 'X' ? strtoul(s + 3, &e, 16) : strtoul(s + 2, &e, 10);
            if (e == semi && cp > 0 && cp <= 0x10FFFF) {
                /* UTF-8; the output never grows: "&#N;" is at least as long as its encoding */
                if (cp < 0x80) {
                    *o++ = (char)cp;
                } else if (cp < 0x800) {
                    *o++ = (char)(0xC0 | (cp >> 6));
                    *o++ = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    *o++ = (char)(0xE0 | (cp >> 12));
                    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *o++ = (char)(0x80 | (cp & 0x3F));
                } else {
                    *o++ = (char)(0xF0 | (cp >> 18));
                    *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *o++ = (char)(0x80 | (cp & 0x3F));
                }
                s = semi + 1;
                done = 1;
            }
        }
        if (!done)
            *o++ = *s++; /* not an entity we know: keep the '&' as it is */
    }
    *o = '\0';
    return out;
}

/* The element's text content, trimmed and unescaped, or NULL when empty. Caller frees. */
static char *xml_text(const xel *e)
{
    const char *s = e->body, *end = e->body_end;
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (s == end || memchr(s, '<', (size_t)(end - s)))
        return NULL; /* empty, or not a text-only element */
    return xml_unescape(s, (size_t)(end - s));
}

/* The value of attribute name (local name match) of e, unescaped, or NULL. Caller frees. */
static char *xml_attr(const xel *e, const char *name)
{
    const char *p = e->attrs, *end = e->attrs_end;
    for (;;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        const char *n = p;
        while (p < end && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - n);
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (nlen == 0 || p >= end || *p != '=')
            return NULL;
        p++;
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p >= end || (*p != '"' && *p != '\''))
            return NULL;
        char q = *p++;
        const char *v = p;
        p = memchr(p, q, (size_t)(end - p));
        if (!p)
            return NULL;
        if (name_is(n, nlen, name))
            return xml_unescape(v, (size_t)(p - v));
        p++;
    }
}

/* The host part of the capabilities: arch, CPU model and the whole host <cpu> element.
 * 0 with the found members set (others NULL; caller frees), -1 when there is no host cpu. */
static int caps_parse(const char *caps, char **arch, char **model, char **cpu_xml)
{
    *arch = *model = *cpu_xml = NULL;
    const char *end = caps + strlen(caps);
    xel host, cpu, x;
    if (xml_find(caps, end, "host", &host) < 0 || xml_child(&host, "cpu", &cpu) < 0)
        return -1;
    if (xml_child(&cpu, "arch", &x) == 0)
        *arch = xml_text(&x);
    if (xml_child(&cpu, "model", &x) == 0)
        *model = xml_text(&x);
    *cpu_xml = xstrndup(cpu.tag, (size_t)(cpu.end - cpu.tag));
    return 0;
}

/* The ferry metadata element (as virDomainGetMetadata returns it): project and id, whatever
 * the prefix. Members NULL when absent. */
static void meta_parse(const char *xml, inv_meta *out)
{
    out->project = out->instance_id = NULL;
    const char *end = xml + strlen(xml);
    /* the element is <instance> (any prefix): its children first, else anywhere */
    xel root = {.body = xml, .body_end = end}, inst, x;
    if (xml_find(xml, end, "instance", &inst) == 0)
        root = inst;
    if (xml_child(&root, "project", &x) == 0 || xml_find(root.body, root.body_end, "project", &x) == 0)
        out->project = xml_text(&x);
    if (xml_child(&root, "id", &x) == 0 || xml_find(root.body, root.body_end, "id", &x) == 0)
        out->instance_id = xml_text(&x);
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

/* The disks (device "disk" or "lun"; not cdrom or floppy) of a domain XML. Caller frees
 * with disks_free. */
static inv_disk *disks_parse(const char *xml, size_t *n_out)
{
    const char *p = xml, *end = xml + strlen(xml);
    inv_disk *d = NULL;
    size_t n = 0;
    xel devices, disk, x;
    if (xml_find(p, end, "devices", &devices) == 0) {
        p = devices.body;
        end = devices.body_end;
    }
    while (xml_find(p, end, "disk", &disk) == 0) {
        p = disk.end;
        _cleanup_free_ char *device = xml_attr(&disk, "device");
        if (device && (strcmp(device, "cdrom") == 0 || strcmp(device, "floppy") == 0))
            continue;
        char *path = NULL, *target = NULL;
        /* the disk's own <source>, not one inside <backingStore> or <mirror> */
        if (xml_child(&disk, "source", &x) == 0) {
            path = xml_attr(&x, "file");
            if (!path)
                path = xml_attr(&x, "dev");
        }
        if (xml_child(&disk, "target", &x) == 0)
            target = xml_attr(&x, "dev");
        if (!path && !target)
            continue;
        d = xrealloc(d, (n + 1) * sizeof(*d));
        d[n].path = path;
        d[n].target = target;
        n++;
    }
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
    case VIR_DOMAIN_BLOCKED: return "running";
    case VIR_DOMAIN_PAUSED: return "paused";
    case VIR_DOMAIN_SHUTDOWN: return "shutdown";
    case VIR_DOMAIN_SHUTOFF: return "shutoff";
    case VIR_DOMAIN_CRASHED: return "crashed";
    case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
    case VIR_DOMAIN_NOSTATE:
    default: return "unknown";
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
        *err = xstrdup("could not read the host capabilities: no <host><cpu> element");
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
