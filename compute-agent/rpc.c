/* rpc: the methods of ferry.compute.<host> (compute-agent/RPC.md). Each validates its input,
 * is idempotent per migration id and answers with a clear error, libvirt's words included. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "agent.h"
#include "inventory.h"
#include "msg.h"

extern char **environ;

/* One call being answered. */
typedef struct call {
    agent *a;
    mq_delivery *d;
    const char *req;       /* request id (borrowed from the envelope) */
    json_object *body;     /* borrowed */
    int64_t migration;     /* 0 when the method takes none */
    char mig_s[24];
    const char *instance;  /* borrowed; NULL when the method takes none */
    log_fields lf;
} call;

typedef int (*handler)(call *c, json_object *out, char **err, const char **code);

/* A short id fit for a log field: 1-64 characters of [A-Za-z0-9._-]. */
static int log_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* ---- replies ----------------------------------------------------------------------------- */

static void send_reply(call *c, const char *type, json_object *body)
{
    _cleanup_free_ char *text = msg_build(type, c->req, body);
    char *err = NULL;
    if (mq_rpc_reply(c->a->mq, c->d, text, strlen(text), &err) < 0) {
        log_error(&c->lf, "could not send the reply: %s", err);
        free(err);
    }
    c->d = NULL;
}

static void reply_error(call *c, const char *code, const char *reason)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "ok", json_object_new_boolean(0));
    json_object_object_add(b, "error", json_object_new_string(reason));
    json_object_object_add(b, "code", json_object_new_string(code));
    send_reply(c, "rpc.error", b);
}

/* ---- input -------------------------------------------------------------------------------- */

/* Reads an optional field of type t; -1 with *err when present with the wrong type. */
static int field(json_object *body, const char *key, json_type t, int required, json_object **out, char **err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(body, key, &v) || !v) {
        if (required) {
            *err = xasprintf("body.%s: missing required field", key);
            return -1;
        }
        *out = NULL;
        return 0;
    }
    if (json_object_get_type(v) != t) {
        *err = xasprintf("body.%s: expected %s, got %s", key, json_type_to_name(t), json_type_to_name(json_object_get_type(v)));
        return -1;
    }
    *out = v;
    return 0;
}

static int get_bool(json_object *body, const char *key, int def, int *out, char **err)
{
    json_object *v;
    if (field(body, key, json_type_boolean, 0, &v, err) < 0)
        return -1;
    *out = v ? json_object_get_boolean(v) : def;
    return 0;
}

static int get_int(json_object *body, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out, char **err)
{
    json_object *v;
    if (field(body, key, json_type_int, 0, &v, err) < 0)
        return -1;
    int64_t x = v ? json_object_get_int64(v) : def;
    if (x < lo || x > hi) {
        *err = xasprintf("body.%s: %lld is out of range %lld..%lld", key, (long long)x, (long long)lo, (long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_str(json_object *body, const char *key, int required, const char **out, char **err)
{
    json_object *v;
    if (field(body, key, json_type_string, required, &v, err) < 0)
        return -1;
    *out = v ? json_object_get_string(v) : NULL;
    if (required && (!*out || !**out)) {
        *err = xasprintf("body.%s: must not be empty", key);
        return -1;
    }
    return 0;
}

/* block_migration: false, true or "auto" (2). */
static int get_block(json_object *body, int *out, char **err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(body, "block_migration", &v) || !v) {
        *out = 0;
        return 0;
    }
    if (json_object_is_type(v, json_type_boolean)) {
        *out = json_object_get_boolean(v);
        return 0;
    }
    if (json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), "auto") == 0) {
        *out = 2;
        return 0;
    }
    *err = xstrdup("body.block_migration: expected boolean or \"auto\"");
    return -1;
}

/* ---- libvirt helpers ---------------------------------------------------------------------- */

static virConnectPtr conn_or_error(call *c, char **err, const char **code)
{
    const char *why = NULL;
    virConnectPtr conn = lv_ref(c->a->lv, &why);
    if (!conn) {
        *err = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        *code = "libvirt";
    }
    return conn;
}

/* Looks the domain up; NULL and *err, *code set when it is not here. */
static virDomainPtr domain_or_error(call *c, virConnectPtr conn, char **err, const char **code)
{
    virDomainPtr dom = virDomainLookupByUUIDString(conn, c->instance);
    if (!dom) {
        virErrorPtr e = virGetLastError();
        int missing = e && e->code == VIR_ERR_NO_DOMAIN;
        *err = missing ? xasprintf("no domain %s on %s", c->instance, c->a->host)
                       : xasprintf("cannot look up domain %s: %s", c->instance, lv_errmsg());
        *code = missing ? "not_found" : "libvirt";
    }
    return dom;
}

/* The value of attribute attr inside the tag text [tag, end) (quoted with ' or "); NULL if absent. */
static char *xml_attr(const char *tag, const char *end, const char *attr)
{
    size_t al = strlen(attr);
    for (const char *p = tag; p && p < end; p++) {
        p = strstr(p, attr);
        if (!p || p >= end)
            return NULL;
        if ((p == tag || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') && p[al] == '=' &&
            (p[al + 1] == '\'' || p[al + 1] == '"')) {
            char q = p[al + 1];
            const char *s = p + al + 2;
            const char *e = memchr(s, q, (size_t)(end - s));
            if (!e)
                return NULL;
            return xstrndup(s, (size_t)(e - s));
        }
    }
    return NULL;
}

/* The end of element starting at p (after its closing tag or "/>"). */
static const char *element_end(const char *p, const char *name)
{
    const char *gt = strchr(p, '>');
    if (!gt)
        return NULL;
    if (gt[-1] == '/')
        return gt + 1;
    _cleanup_free_ char *close = xasprintf("</%s>", name);
    const char *e = strstr(gt, close);
    return e ? e + strlen(close) : NULL;
}

/* The disks of a domain XML that are files: [{path, format, target}]. */
static json_object *xml_disks(const char *xml)
{
    json_object *arr = json_object_new_array();
    for (const char *p = xml; (p = strstr(p, "<disk ")); p++) {
        const char *end = element_end(p, "disk");
        if (!end)
            break;
        const char *gt = strchr(p, '>');
        _cleanup_free_ char *type = xml_attr(p, gt, "type");
        _cleanup_free_ char *device = xml_attr(p, gt, "device");
        const char *src = strstr(p, "<source ");
        const char *drv = strstr(p, "<driver ");
        const char *tgt = strstr(p, "<target ");
        if (type && strcmp(type, "file") == 0 && (!device || strcmp(device, "disk") == 0) && src && src < end) {
            _cleanup_free_ char *path = xml_attr(src, strchr(src, '>'), "file");
            _cleanup_free_ char *fmt = drv && drv < end ? xml_attr(drv, strchr(drv, '>'), "type") : NULL;
            _cleanup_free_ char *dev = tgt && tgt < end ? xml_attr(tgt, strchr(tgt, '>'), "dev") : NULL;
            if (path) {
                json_object *d = json_object_new_object();
                json_object_object_add(d, "path", json_object_new_string(path));
                json_object_object_add(d, "format", json_object_new_string(fmt ? fmt : "raw"));
                if (dev)
                    json_object_object_add(d, "target", json_object_new_string(dev));
                json_object_array_add(arr, d);
            }
        }
        p = end - 1;
    }
    return arr;
}

static int under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* A path component without '/' or "..": safe to join under a directory. */
static int safe_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && strlen(s) < 200;
}

/* ---- methods --------------------------------------------------------------------------------- */

static int m_ping(call *c, json_object *out, char **err, const char **code)
{
    (void)err;
    (void)code;
    json_object_object_add(out, "host", json_object_new_string(c->a->host));
    json_object_object_add(out, "version", json_object_new_string(FERRY_VERSION));
    json_object_object_add(out, "address", json_object_new_string(c->a->address));
    unsigned long lv = 0;
    virGetVersion(&lv, NULL, NULL);
    _cleanup_free_ char *lvs = xasprintf("%lu.%lu.%lu", lv / 1000000, lv / 1000 % 1000, lv % 1000);
    json_object_object_add(out, "libvirt", json_object_new_string(lvs));
    json_object_object_add(out, "libvirt_connected", json_object_new_boolean(c->a->lv_up));
    return 0;
}

static int check_source_dom(call *c, virDomainPtr dom, int block, json_object *out, char **err, const char **code)
{
    if (virDomainIsActive(dom) != 1) {
        *err = xasprintf("domain %s is not running on %s", virDomainGetName(dom), c->a->host);
        *code = "refused";
        return -1;
    }
    char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_MIGRATABLE);
    if (!xml) {
        *err = xasprintf("cannot read the XML of domain %s: %s", c->instance, lv_errmsg());
        *code = "libvirt";
        return -1;
    }
    virDomainInfo info;
    if (virDomainGetInfo(dom, &info) < 0) {
        *err = xasprintf("cannot read domain %s: %s", c->instance, lv_errmsg());
        *code = "libvirt";
        free(xml);
        return -1;
    }
    json_object *disks = xml_disks(xml);
    int all_shared = 1;
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        json_object *pv;
        json_object_object_get_ex(d, "path", &pv);
        const char *path = json_object_get_string(pv);
        int shared = under(path, c->a->cfg->agent.instances_path);
        all_shared &= shared;
        json_object_object_add(d, "shared", json_object_new_boolean(shared));
        unsigned long long vsize = inv_file_virtual_size(path);
        if (vsize)
            json_object_object_add(d, "virtual_size", json_object_new_int64((int64_t)vsize));
    }
    if (!block && !all_shared) {
        *err = xasprintf("domain %s has disks outside the shared instances path %s: block migration is needed",
                         virDomainGetName(dom), c->a->cfg->agent.instances_path);
        *code = "refused";
        json_object_put(disks);
        free(xml);
        return -1;
    }
    /* the seed's shared-storage test: a file written here must be seen by the destination */
    char probe[64];
    snprintf(probe, sizeof(probe), ".ferry-probe-%lld-%08x", (long long)c->migration, (unsigned)(wall_ms() & 0xffffffff));
    _cleanup_free_ char *probe_path = xasprintf("%s/%s", c->a->cfg->agent.instances_path, probe);
    int fd = open(probe_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, c->a->host, strlen(c->a->host)) < 0)
            log_warn(&c->lf, "could not write the shared-storage probe %s: %s", probe_path, strerror(errno));
        close(fd);
        json_object_object_add(out, "shared_probe", json_object_new_string(probe));
    } else {
        log_warn(&c->lf, "could not create the shared-storage probe %s: %s", probe_path, strerror(errno));
    }
    json_object_object_add(out, "domain_xml", json_object_new_string(xml));
    json_object_object_add(out, "name", json_object_new_string(virDomainGetName(dom)));
    json_object_object_add(out, "memory_mb", json_object_new_int64((int64_t)(info.maxMem / 1024)));
    json_object_object_add(out, "vcpus", json_object_new_int(info.nrVirtCpu));
    json_object_object_add(out, "disks", disks);
    json_object_object_add(out, "disks_shared", json_object_new_boolean(all_shared));
    json_object_object_add(out, "instances_path", json_object_new_string(c->a->cfg->agent.instances_path));
    free(xml);
    return 0;
}

/* Looks up the call's domain and runs fn on it (arg passed through); the lookup's failure is
 * the call's error. */
typedef int (*dom_step)(call *c, virDomainPtr dom, int arg, json_object *out, char **err, const char **code);
static int with_domain(call *c, dom_step fn, int arg, json_object *out, char **err, const char **code)
{
    virConnectPtr conn = conn_or_error(c, err, code);
    if (!conn)
        return -1;
    int rc = -1;
    virDomainPtr dom = domain_or_error(c, conn, err, code);
    if (dom) {
        rc = fn(c, dom, arg, out, err, code);
        virDomainFree(dom);
    }
    virConnectClose(conn);
    return rc;
}

static int m_check_source(call *c, json_object *out, char **err, const char **code)
{
    int block;
    if (get_block(c->body, &block, err) < 0)
        return -1;
    return with_domain(c, check_source_dom, block, out, err, code);
}

/* Memory free for a new guest now, in MiB: the machine's, capped by [agent] memory_limit_mb
 * minus what running guests use. */
static long long free_memory_mb(agent *a, virConnectPtr conn)
{
    unsigned long long free_b = virNodeGetFreeMemory(conn);
    long long free_mb = (long long)(free_b / (1024 * 1024));
    if (a->cfg->agent.memory_limit_mb > 0) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        long long used = 0;
        for (int i = 0; i < n; i++) {
            virDomainInfo info;
            if (virDomainGetInfo(doms[i], &info) == 0)
                used += (long long)(info.maxMem / 1024);
            virDomainFree(doms[i]);
        }
        free(doms);
        long long cap = a->cfg->agent.memory_limit_mb - used;
        if (cap < free_mb)
            free_mb = cap < 0 ? 0 : cap;
    }
    return free_mb;
}

static int check_destination_conn(call *c, virConnectPtr conn, const char *xml, int64_t memory_mb, int post_copy,
                                  int block, const char *probe, json_object *out, char **err, const char **code)
{
    /* the domain must not be here already (unless it is this very migration arriving) */
    virDomainPtr here = virDomainLookupByUUIDString(conn, c->instance);
    if (here) {
        int active = virDomainIsActive(here);
        virDomainFree(here);
        if (active == 1) {
            *err = xasprintf("domain %s already runs on %s", c->instance, c->a->host);
            *code = "refused";
            return -1;
        }
    }
    /* memory */
    long long free_mb = free_memory_mb(c->a, conn);
    json_object_object_add(out, "free_memory_mb", json_object_new_int64(free_mb));
    if (memory_mb > free_mb) {
        *err = xasprintf("not enough free memory on %s: the guest needs %lld MiB, %lld MiB are free", c->a->host,
                         (long long)memory_mb, free_mb);
        *code = "refused";
        return -1;
    }
    /* CPU: can this hypervisor run the guest's CPU as defined? */
    const char *cpu = strstr(xml, "<cpu");
    if (cpu) {
        const char *end = element_end(cpu, "cpu");
        if (end) {
            _cleanup_free_ char *cpu_xml = xstrndup(cpu, (size_t)(end - cpu));
            int r = virConnectCompareHypervisorCPU(conn, NULL, NULL, NULL, "qemu", cpu_xml, 0);
            const char *word = r == VIR_CPU_COMPARE_INCOMPATIBLE ? "incompatible"
                               : r == VIR_CPU_COMPARE_IDENTICAL  ? "identical"
                               : r == VIR_CPU_COMPARE_SUPERSET   ? "superset"
                                                                 : "error";
            json_object_object_add(out, "cpu", json_object_new_string(word));
            if (r == VIR_CPU_COMPARE_INCOMPATIBLE || r == VIR_CPU_COMPARE_ERROR) {
                *err = r == VIR_CPU_COMPARE_INCOMPATIBLE
                           ? xasprintf("the guest's CPU is incompatible with %s: %s", c->a->host, lv_errmsg())
                           : xasprintf("cannot compare the guest's CPU with %s: %s", c->a->host, lv_errmsg());
                *code = r == VIR_CPU_COMPARE_INCOMPATIBLE ? "refused" : "libvirt";
                return -1;
            }
        }
    }
    /* post-copy */
    if (post_copy && !inv_postcopy_supported(conn)) {
        *err = xasprintf("%s cannot do post-copy: libvirt >= 1.3.3 and QEMU >= 2.5.0 are needed", c->a->host);
        *code = "refused";
        return -1;
    }
    /* bridges and networks the guest's interfaces use */
    for (const char *p = xml; (p = strstr(p, "<interface ")); p++) {
        const char *end = element_end(p, "interface");
        if (!end)
            break;
        const char *src = strstr(p, "<source ");
        if (src && src < end) {
            const char *gt = strchr(src, '>');
            _cleanup_free_ char *br = xml_attr(src, gt, "bridge");
            _cleanup_free_ char *net = xml_attr(src, gt, "network");
            if (br) {
                _cleanup_free_ char *sys = xasprintf("/sys/class/net/%s", br);
                if (!safe_name(br) || access(sys, F_OK) != 0) {
                    *err = xasprintf("bridge %s of the guest's network interface does not exist on %s", br, c->a->host);
                    *code = "refused";
                    return -1;
                }
            }
            if (net) {
                virNetworkPtr nw = virNetworkLookupByName(conn, net);
                if (!nw) {
                    *err = xasprintf("network %s of the guest's network interface does not exist on %s: %s", net,
                                     c->a->host, lv_errmsg());
                    *code = "refused";
                    return -1;
                }
                int act = virNetworkIsActive(nw);
                virNetworkFree(nw);
                if (act != 1) {
                    *err = xasprintf("network %s is not active on %s", net, c->a->host);
                    *code = "refused";
                    return -1;
                }
            }
        }
        p = end - 1;
    }
    /* shared storage: the source's probe file must be visible here */
    int shared = 0;
    if (probe) {
        _cleanup_free_ char *path = xasprintf("%s/%s", c->a->cfg->agent.instances_path, probe);
        shared = access(path, F_OK) == 0;
        if (shared)
            unlink(path);
    }
    json_object_object_add(out, "shared_storage", json_object_new_boolean(shared));
    if (!shared && block == 0) {
        *err = xasprintf("the instances path %s is not shared between the source and %s (the source's probe file "
                         "is not visible here): use block migration",
                         c->a->cfg->agent.instances_path, c->a->host);
        *code = "refused";
        return -1;
    }
    json_object_object_add(out, "address", json_object_new_string(c->a->address));
    return 0;
}

static int m_check_destination(call *c, json_object *out, char **err, const char **code)
{
    const char *xml = NULL, *probe = NULL;
    int64_t memory_mb;
    int post_copy, block;
    if (get_str(c->body, "domain_xml", 1, &xml, err) < 0 || get_int(c->body, "memory_mb", 0, 1, 1 << 30, &memory_mb, err) < 0 ||
        get_bool(c->body, "post_copy", 0, &post_copy, err) < 0 || get_block(c->body, &block, err) < 0 ||
        get_str(c->body, "shared_probe", 0, &probe, err) < 0)
        return -1;
    if (probe && !safe_name(probe)) {
        *err = xstrdup("body.shared_probe: not a plain file name");
        return -1;
    }
    virConnectPtr conn = conn_or_error(c, err, code);
    if (!conn)
        return -1;
    int rc = check_destination_conn(c, conn, xml, memory_mb, post_copy, block, probe, out, err, code);
    virConnectClose(conn);
    return rc;
}

/* Runs qemu-img create -f fmt path size; 0 or -1 with *err. */
static int qemu_img_create(const char *fmt, const char *path, long long size, char **err)
{
    char sz[32];
    snprintf(sz, sizeof(sz), "%lld", size);
    char *argv[] = {"qemu-img", "create", "-q", "-f", (char *)fmt, (char *)path, sz, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "qemu-img", NULL, NULL, argv, environ);
    if (rc != 0) {
        *err = xasprintf("could not run qemu-img: %s", strerror(rc));
        return -1;
    }
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        *err = xasprintf("qemu-img create -f %s %s %s failed", fmt, path, sz);
        return -1;
    }
    return 0;
}

static int m_pre_live_migration(call *c, json_object *out, char **err, const char **code)
{
    int block;
    json_object *disks;
    if (get_block(c->body, &block, err) < 0 || field(c->body, "disks", json_type_array, 0, &disks, err) < 0)
        return -1;
    _cleanup_free_ char *sname = xasprintf("dest-%lld", (long long)c->migration);
    json_object *st = state_read(c->a, sname);
    if (!st) {
        st = json_object_new_object();
        json_object_object_add(st, "migration", json_object_new_int64(c->migration));
        json_object_object_add(st, "instance", json_object_new_string(c->instance));
        if (c->lf.instance != c->instance)
            json_object_object_add(st, "instance_id", json_object_new_string(c->lf.instance));
        json_object_object_add(st, "created", json_object_new_array());
    }
    json_object *created;
    json_object_object_get_ex(st, "created", &created);
    int rc = 0;
    for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
        json_object *d = json_object_array_get_idx(disks, i), *v;
        if (!json_object_is_type(d, json_type_object) || !json_object_object_get_ex(d, "path", &v) ||
            !json_object_is_type(v, json_type_string)) {
            *err = xasprintf("body.disks[%zu].path: missing or not a string", i);
            rc = -1;
            break;
        }
        const char *path = json_object_get_string(v);
        if (path[0] != '/' || strstr(path, "/../")) {
            *err = xasprintf("body.disks[%zu].path: %s is not an absolute, plain path", i, path);
            rc = -1;
            break;
        }
        /* directories for every disk */
        _cleanup_free_ char *dir = xstrdup(path);
        *strrchr(dir, '/') = '\0';
        if (*dir && mkdir(dir, 0755) < 0 && errno != EEXIST) {
            *err = xasprintf("could not create %s on %s: %s", dir, c->a->host, strerror(errno));
            *code = "internal";
            rc = -1;
            break;
        }
        json_object *sh;
        int shared = json_object_object_get_ex(d, "shared", &sh) && json_object_get_boolean(sh);
        if (!block || (block == 2 && shared))
            continue; /* on shared storage the image is already here */
        if (access(path, F_OK) == 0)
            continue; /* idempotent: made by an earlier call */
        json_object *fv, *sv;
        const char *fmt = json_object_object_get_ex(d, "format", &fv) ? json_object_get_string(fv) : "qcow2";
        if (strcmp(fmt, "qcow2") != 0 && strcmp(fmt, "raw") != 0) {
            *err = xasprintf("body.disks[%zu].format: %s is not supported (qcow2, raw)", i, fmt);
            rc = -1;
            break;
        }
        if (!json_object_object_get_ex(d, "virtual_size", &sv) || !json_object_is_type(sv, json_type_int) ||
            json_object_get_int64(sv) <= 0) {
            *err = xasprintf("body.disks[%zu].virtual_size: needed (bytes) to create the image for block migration", i);
            rc = -1;
            break;
        }
        if (qemu_img_create(fmt, path, (long long)json_object_get_int64(sv), err) < 0) {
            *code = "internal";
            rc = -1;
            break;
        }
        log_info(&c->lf, "created %s (%s, %lld bytes) for the incoming block migration", path, fmt,
                 (long long)json_object_get_int64(sv));
        json_object_array_add(created, json_object_new_string(path));
    }
    /* what was made is recorded even on failure, so rollback removes it */
    (void)state_write(c->a, sname, st);
    if (rc == 0)
        json_object_object_add(out, "created", json_object_get(created));
    json_object_put(st);
    return rc;
}

static int m_live_migration(call *c, json_object *out, char **err, const char **code)
{
    const char *dest, *dest_address, *action = NULL;
    int64_t after, bw, downtime, timeout, aci, acinc;
    job_opts o = {0};
    if (get_str(c->body, "dest", 1, &dest, err) < 0 || get_str(c->body, "dest_address", 1, &dest_address, err) < 0 ||
        get_bool(c->body, "block_migration", 0, &o.block_migration, err) < 0 ||
        get_bool(c->body, "post_copy", 0, &o.post_copy, err) < 0 ||
        get_int(c->body, "postcopy_after_iterations", 1, 1, 1000, &after, err) < 0 ||
        get_bool(c->body, "auto_converge", 0, &o.auto_converge, err) < 0 ||
        get_int(c->body, "auto_converge_initial", 0, 0, 100, &aci, err) < 0 ||
        get_int(c->body, "auto_converge_increment", 0, 0, 100, &acinc, err) < 0 ||
        get_int(c->body, "bandwidth_mib_s", 0, 0, 100000, &bw, err) < 0 ||
        get_int(c->body, "max_downtime_ms", 300, 1, 600000, &downtime, err) < 0 ||
        get_int(c->body, "completion_timeout_s", 0, 0, 86400, &timeout, err) < 0 ||
        get_str(c->body, "completion_action", 0, &action, err) < 0)
        return -1;
    if (action && strcmp(action, "abort") != 0 && strcmp(action, "postcopy") != 0) {
        *err = xstrdup("body.completion_action: expected \"abort\" or \"postcopy\"");
        return -1;
    }
    if (strcmp(dest, c->a->host) == 0) {
        *err = xasprintf("cannot migrate to %s: it is this host", dest);
        *code = "invalid";
        return -1;
    }
    o.postcopy_after_iterations = (int)after;
    o.auto_converge_initial = (int)aci;
    o.auto_converge_increment = (int)acinc;
    o.bandwidth_mib_s = (int)bw;
    o.max_downtime_ms = (int)downtime;
    o.completion_timeout_s = (int)timeout;
    o.completion_postcopy = action && strcmp(action, "postcopy") == 0;
    job *j = NULL;
    if (job_start(c->a, c->migration, c->instance, dest, dest_address, &o, &j, err, code) < 0)
        return -1;
    json_object_object_add(out, "started", json_object_new_boolean(1));
    json_object_object_add(out, "job", job_status_json(j));
    return 0;
}

/* What libvirt says of the domain here: {exists, state, persistent}. */
static json_object *domain_json(call *c, virConnectPtr conn)
{
    json_object *o = json_object_new_object();
    virDomainPtr dom = virDomainLookupByUUIDString(conn, c->instance);
    json_object_object_add(o, "exists", json_object_new_boolean(dom != NULL));
    if (dom) {
        int st = 0, reason = 0;
        if (virDomainGetState(dom, &st, &reason, 0) == 0) {
            json_object_object_add(o, "state", json_object_new_string(inv_state_name(st)));
            json_object_object_add(o, "reason", json_object_new_int(reason));
        }
        json_object_object_add(o, "persistent", json_object_new_boolean(virDomainIsPersistent(dom) == 1));
        /* (no virDomainGetJobInfo here: it may wait for the job lock of a migration) */
        virDomainFree(dom);
    }
    return o;
}

static int m_job_status(call *c, json_object *out, char **err, const char **code)
{
    job *j = job_find(c->a, c->migration);
    if (j) {
        json_object *s = job_status_json(j);
        json_object_object_foreach(s, k, v) json_object_object_add(out, k, json_object_get(v));
        json_object_put(s);
    } else {
        json_object_object_add(out, "state", json_object_new_string("none"));
    }
    virConnectPtr conn = conn_or_error(c, err, code);
    if (!conn)
        return -1;
    json_object_object_add(out, "domain", domain_json(c, conn));
    virConnectClose(conn);
    return 0;
}

static int m_abort(call *c, json_object *out, char **err, const char **code)
{
    job *j = job_find(c->a, c->migration);
    if (!j) {
        *err = xasprintf("no migration %lld on %s", (long long)c->migration, c->a->host);
        *code = "not_found";
        return -1;
    }
    if (job_abort(c->a, j, err, code) < 0)
        return -1;
    json_object_object_add(out, "aborted", json_object_new_boolean(1));
    return 0;
}

static int m_force_complete(call *c, json_object *out, char **err, const char **code)
{
    job *j = job_find(c->a, c->migration);
    if (!j) {
        *err = xasprintf("no migration %lld on %s", (long long)c->migration, c->a->host);
        *code = "not_found";
        return -1;
    }
    const char *action = NULL;
    if (job_force_complete(c->a, j, &action, err, code) < 0)
        return -1;
    json_object_object_add(out, "action", json_object_new_string(action));
    return 0;
}

static int post_live_dom(call *c, virDomainPtr dom, int unused, json_object *out, char **err, const char **code)
{
    (void)unused;
    int active = virDomainIsActive(dom), persistent = virDomainIsPersistent(dom);
    int st = 0, reason = 0;
    virDomainGetState(dom, &st, &reason, 0);
    if (active == 1 && st == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_MIGRATION) {
        /* the guest was paused to finish the migration (force-complete) and arrived paused:
         * it ran before the migration, so it runs after it */
        if (virDomainResume(dom) < 0) {
            *err = xasprintf("domain %s arrived paused and could not be resumed: %s", virDomainGetName(dom), lv_errmsg());
            *code = "libvirt";
            return -1;
        }
        log_info(&c->lf, "domain %s arrived paused by the migration: resumed", virDomainGetName(dom));
        virDomainGetState(dom, &st, &reason, 0);
    }
    if (active != 1 || persistent != 1 || st != VIR_DOMAIN_RUNNING) {
        *err = xasprintf("domain %s is %s and %s on %s: the migration did not land here", virDomainGetName(dom),
                         inv_state_name(st), persistent == 1 ? "persistent" : "not persistent", c->a->host);
        *code = "conflict";
        return -1;
    }
    json_object_object_add(out, "running", json_object_new_boolean(1));
    json_object_object_add(out, "persistent", json_object_new_boolean(1));
    _cleanup_free_ char *sname = xasprintf("dest-%lld", (long long)c->migration);
    state_remove(c->a, sname);
    log_info(&c->lf, "domain %s runs here, persistent: migration landed", virDomainGetName(dom));
    return 0;
}

static int m_post_live_migration(call *c, json_object *out, char **err, const char **code)
{
    return with_domain(c, post_live_dom, 0, out, err, code);
}

static int m_rollback(call *c, json_object *out, char **err, const char **code)
{
    virConnectPtr conn = conn_or_error(c, err, code);
    if (!conn)
        return -1;
    int rc = -1, undefined = 0;
    json_object *removed = NULL, *created = NULL;
    _cleanup_free_ char *sname = xasprintf("dest-%lld", (long long)c->migration);
    json_object *st = state_read(c->a, sname);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, c->instance);
    if (dom && virDomainIsActive(dom) == 1) {
        /* an incoming domain that never resumed here is the migration's leftover: libvirt
         * usually removes it right after the source's job ends; give it a moment, then
         * destroy it. One that runs here is the guest itself: never touched. */
        int state = 0, reason = 0;
        for (int i = 0; i < 30 && virDomainIsActive(dom) == 1; i++) {
            virDomainGetState(dom, &state, &reason, 0);
            if (state != VIR_DOMAIN_PAUSED || (reason != VIR_DOMAIN_PAUSED_MIGRATION && reason != VIR_DOMAIN_PAUSED_STARTING_UP))
                break;
            usleep(100 * 1000);
        }
        if (virDomainIsActive(dom) == 1) {
            virDomainGetState(dom, &state, &reason, 0);
            if (state == VIR_DOMAIN_PAUSED && (reason == VIR_DOMAIN_PAUSED_MIGRATION || reason == VIR_DOMAIN_PAUSED_STARTING_UP)) {
                if (virDomainDestroy(dom) < 0) {
                    *err = xasprintf("could not destroy the incoming leftover of %s: %s", c->instance, lv_errmsg());
                    *code = "libvirt";
                    goto out;
                }
                log_info(&c->lf, "rollback destroyed the paused incoming domain %s", c->instance);
            } else {
                *err = xasprintf("domain %s runs on %s (%s): cannot roll back a migration that landed here",
                                 virDomainGetName(dom), c->a->host, inv_state_name(state));
                *code = "conflict";
                goto out;
            }
        }
    }
    if (dom) {
        virDomainFree(dom);
        /* destroying a transient leftover removes it altogether */
        dom = virDomainLookupByUUIDString(conn, c->instance);
    }
    if (dom) {
        /* an inactive definition left by this migration */
        if (st && virDomainIsPersistent(dom) == 1) {
            if (virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM) < 0) {
                *err = xasprintf("could not undefine the leftover domain %s: %s", c->instance, lv_errmsg());
                *code = "libvirt";
                goto out;
            }
            undefined = 1;
        }
    }
    removed = json_object_new_array();
    if (st && json_object_object_get_ex(st, "created", &created)) {
        for (size_t i = 0; i < json_object_array_length(created); i++) {
            const char *p = json_object_get_string(json_object_array_get_idx(created, i));
            if (unlink(p) == 0) {
                json_object_array_add(removed, json_object_new_string(p));
                log_info(&c->lf, "rollback removed %s", p);
            } else if (errno != ENOENT) {
                log_warn(&c->lf, "rollback could not remove %s: %s", p, strerror(errno));
            }
        }
    }
    state_remove(c->a, sname);
    json_object_object_add(out, "removed", removed);
    json_object_object_add(out, "undefined", json_object_new_boolean(undefined));
    rc = 0;
out:
    json_object_put(st);
    if (dom)
        virDomainFree(dom);
    virConnectClose(conn);
    return rc;
}

static const struct {
    const char *name;
    handler fn;
    int takes_migration;
} methods[] = {
    {"ping", m_ping, 0},
    {"check_source", m_check_source, 1},
    {"check_destination", m_check_destination, 1},
    {"pre_live_migration", m_pre_live_migration, 1},
    {"live_migration", m_live_migration, 1},
    {"job_status", m_job_status, 1},
    {"abort", m_abort, 1},
    {"force_complete", m_force_complete, 1},
    {"post_live_migration", m_post_live_migration, 1},
    {"rollback", m_rollback, 1},
};

/* Whether the sender of c's request may call method; if not, the request is dead-lettered
 * with the reason, logged with the sender, and 0 is returned (c->d is gone). */
static int sender_may_call(call *c, const mq_message *m, const char *method)
{
    char *why = NULL;
    if (trust_may_call_agent(&c->a->cfg->trust, m->user_id, method, &why))
        return 1;
    log_warn(&c->lf, "refused an RPC on %s: %s", c->a->queue, why);
    mq_dead_letter(c->a->mq, c->d, why);
    free(why);
    return 0;
}

void rpc_on_request(mq_conn *mc, mq_delivery *d, void *arg)
{
    agent *a = arg;
    const mq_message *m = mq_delivery_message(d);
    call c = {.a = a, .d = d};
    c.lf.host = a->host;
    c.lf.req = m->message_id;
    msg_envelope *env = NULL;
    char *err = NULL;
    /* who may call: the schedulers, and operators (ping only); checked once the method is
     * known, before anything is done. A malformed request is refused either way, and answered
     * only to a sender who may call at all */
    trust_role role = trust_role_of(&a->cfg->trust, m->user_id, NULL, 0);
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        _cleanup_free_ char *from = log_escape(m->user_id ? m->user_id : "(no user_id)");
        log_warn(&c.lf, "malformed RPC request on %s: %s (from %s)", a->queue, err, from);
        if (m->reply_to && (role == TRUST_SCHEDULER || role == TRUST_OPERATOR))
            reply_error(&c, "invalid", err);
        else
            mq_dead_letter(mc, d, err);
        free(err);
        return;
    }
    c.req = msg_envelope_id(env);
    c.lf.req = c.req;
    c.body = msg_envelope_body(env);
    const char *type = msg_envelope_type(env);
    /* "agent.ping" is the spelling of the first ferryctl */
    const char *method = strncmp(type, "rpc.", 4) == 0 ? type + 4 : strcmp(type, "agent.ping") == 0 ? "ping" : NULL;
    size_t i = 0;
    for (; method && i < ARRAY_SIZE(methods); i++)
        if (strcmp(methods[i].name, method) == 0)
            break;
    if (!sender_may_call(&c, m, method ? method : type)) {
        msg_envelope_free(env);
        return;
    }
    if (!method || i == ARRAY_SIZE(methods)) {
        _cleanup_free_ char *why = xasprintf("unknown method '%s'", type);
        log_warn(&c.lf, "%s", why);
        reply_error(&c, "invalid", why);
        msg_envelope_free(env);
        return;
    }
    if (methods[i].takes_migration) {
        json_object *mv = NULL;
        const char *inst = NULL;
        if (field(c.body, "migration", json_type_int, 1, &mv, &err) < 0 || get_str(c.body, "instance", 1, &inst, &err) < 0) {
            log_warn(&c.lf, "invalid %s request: %s", method, err);
            reply_error(&c, "invalid", err);
            free(err);
            msg_envelope_free(env);
            return;
        }
        int64_t mig = json_object_get_int64(mv);
        const char *bad = mig < 1 ? "body.migration: must be >= 1" : !uuid_valid(inst) ? "body.instance: not a UUID" : NULL;
        if (bad) {
            log_warn(&c.lf, "invalid %s request: %s", method, bad);
            reply_error(&c, "invalid", bad);
            msg_envelope_free(env);
            return;
        }
        c.migration = mig;
        snprintf(c.mig_s, sizeof(c.mig_s), "%lld", (long long)mig);
        c.lf.migration = c.mig_s;
        c.instance = inst;
        c.lf.instance = inst;
        /* the scheduler also sends the instance's i-xxxxxxxx id: the one operators grep for */
        json_object *iv;
        if (json_object_object_get_ex(c.body, "instance_id", &iv) && json_object_is_type(iv, json_type_string) &&
            log_id_ok(json_object_get_string(iv)))
            c.lf.instance = json_object_get_string(iv);
        job *j = job_find(a, mig);
        if (j)
            c.lf.instance = job_fields(j)->instance;
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "ok", json_object_new_boolean(1));
    const char *code = "invalid";
    log_debug(&c.lf, "rpc %s", method);
    if (methods[i].fn(&c, out, &err, &code) < 0) {
        if (strcmp(code, "invalid") == 0)
            log_warn(&c.lf, "invalid %s request: %s", method, err);
        else if (strcmp(code, "refused") == 0)
            log_info(&c.lf, "%s refused: %s", method, err);
        else
            log_error(&c.lf, "%s failed: %s", method, err);
        reply_error(&c, code, err);
        free(err);
        json_object_put(out);
    } else {
        send_reply(&c, "rpc.result", out);
    }
    msg_envelope_free(env);
}
