/* rpcmig: the migration methods of ferry.compute.<host> (see rpcmig.h). */
#include "rpcmig.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "announce.h"
#include "domxml.h"
#include "guard.h"
#include "inventory.h"
#include "jobstats.h"
#include "qsock.h"
#include "rpcin.h"
#include "statefile.h"

extern char **environ;

/* ---- helpers -------------------------------------------------------------------------------- */

static virConnectPtr conn_or_error(rpcmig_call *c, char **err, rpc_code *code)
{
    const char *why = NULL;
    virConnectPtr conn = lv_ref(c->a->lv, &why);
    if (!conn) {
        *err = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        *code = RPC_UNAVAILABLE; /* a moment after a restart: the caller tries again */
    }
    return conn;
}

/* Looks the domain up; NULL and *err, *code set when it is not here. */
static virDomainPtr domain_or_error(rpcmig_call *c, virConnectPtr conn, char **err, rpc_code *code)
{
    virDomainPtr dom = virDomainLookupByUUIDString(conn, c->instance);
    if (!dom) {
        virErrorPtr e = virGetLastError();
        int missing = e && e->code == VIR_ERR_NO_DOMAIN;
        *err = missing ? xasprintf("no domain %s on %s", c->instance, c->a->host)
                       : xasprintf("cannot look up domain %s: %s", c->instance, lv_errmsg());
        *code = missing ? RPC_NOT_FOUND : RPC_LIBVIRT;
    }
    return dom;
}

static int under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static int check_source_dom(rpcmig_call *c, virDomainPtr dom, int block, json_object *out, char **err, rpc_code *code)
{
    if (virDomainIsActive(dom) != 1) {
        *err = xasprintf("domain %s is not running on %s", virDomainGetName(dom), c->a->host);
        *code = RPC_REFUSED;
        return -1;
    }
    char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_MIGRATABLE);
    if (!xml) {
        *err = xasprintf("cannot read the XML of domain %s: %s", c->instance, lv_errmsg());
        *code = RPC_LIBVIRT;
        return -1;
    }
    virDomainInfo info;
    if (virDomainGetInfo(dom, &info) < 0) {
        *err = xasprintf("cannot read domain %s: %s", c->instance, lv_errmsg());
        *code = RPC_LIBVIRT;
        free(xml);
        return -1;
    }
    json_object *disks = domxml_disks(xml);
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
        *code = RPC_REFUSED;
        json_object_put(disks);
        free(xml);
        return -1;
    }
    /* the seed's shared-storage test: a file written here must be seen by the destination */
    char probe[64];
    guard_probe_name(probe, sizeof(probe), c->migration, (uint32_t)(wall_ms() & 0xffffffff));
    int fd = -1;
    char *perr = NULL;
    /* a new regular file, never through a symlink another host planted in the shared path */
    int made = guard_create_file(c->a->cfg->agent.instances_path, probe, &fd, &perr);
    if (made >= 0) {
        if (fd >= 0 && write(fd, c->a->host, strlen(c->a->host)) < 0)
            log_warn(&c->lf, "could not write the shared-storage probe %s/%s: %s", c->a->cfg->agent.instances_path,
                     probe, strerror(errno));
        if (fd >= 0)
            close(fd);
        json_object_object_add(out, "shared_probe", json_object_new_string(probe));
    } else {
        log_warn(&c->lf, "could not create the shared-storage probe: %s", perr);
        free(perr);
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
typedef int (*dom_step)(rpcmig_call *c, virDomainPtr dom, int arg, json_object *out, char **err, rpc_code *code);
static int with_domain(rpcmig_call *c, dom_step fn, int arg, json_object *out, char **err, rpc_code *code)
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

int rpcmig_check_source(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    int block;
    if (rpcin_check_source(c->body, &block, err) < 0)
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

static int check_destination_conn(rpcmig_call *c, virConnectPtr conn, const char *xml, int64_t memory_mb, int post_copy,
                                  int block, const char *probe, json_object *out, char **err, rpc_code *code)
{
    /* the domain must not be here already (unless it is this very migration arriving) */
    virDomainPtr here = virDomainLookupByUUIDString(conn, c->instance);
    if (here) {
        int active = virDomainIsActive(here);
        virDomainFree(here);
        if (active == 1) {
            *err = xasprintf("domain %s already runs on %s", c->instance, c->a->host);
            *code = RPC_REFUSED;
            return -1;
        }
    }
    /* memory */
    long long free_mb = free_memory_mb(c->a, conn);
    json_object_object_add(out, "free_memory_mb", json_object_new_int64(free_mb));
    if (memory_mb > free_mb) {
        *err = xasprintf("not enough free memory on %s: the guest needs %lld MiB, %lld MiB are free", c->a->host,
                         (long long)memory_mb, free_mb);
        *code = RPC_REFUSED;
        return -1;
    }
    /* CPU: can this hypervisor run the guest's CPU as defined? */
    /* (its <cpu> element, not <cputune>, which libvirt writes before it) */
    _cleanup_free_ char *cpu_xml = domxml_cpu(xml);
    if (cpu_xml) {
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
            *code = r == VIR_CPU_COMPARE_INCOMPATIBLE ? RPC_REFUSED : RPC_LIBVIRT;
            return -1;
        }
    }
    /* post-copy */
    if (post_copy && !inv_postcopy_supported(conn)) {
        *err = xasprintf("%s cannot do post-copy: libvirt >= 1.3.3 and QEMU >= 2.5.0 are needed", c->a->host);
        *code = RPC_REFUSED;
        return -1;
    }
    /* bridges and networks the guest's interfaces use (their names were checked by rpcin) */
    domxml_iface *ifs = NULL;
    size_t nifs = 0;
    domxml_ifaces(xml, &ifs, &nifs);
    for (size_t i = 0; i < nifs; i++) {
        const char *br = ifs[i].bridge, *net = ifs[i].network;
        if (br) {
            _cleanup_free_ char *sys = xasprintf("/sys/class/net/%s", br);
            if (access(sys, F_OK) != 0) {
                *err = xasprintf("bridge %s of the guest's network interface does not exist on %s", br, c->a->host);
                *code = RPC_REFUSED;
                domxml_ifaces_free(ifs, nifs);
                return -1;
            }
        }
        if (net) {
            virNetworkPtr nw = virNetworkLookupByName(conn, net);
            int act = nw ? virNetworkIsActive(nw) : -1;
            if (!nw || act != 1) {
                *err = !nw ? xasprintf("network %s of the guest's network interface does not exist on %s: %s", net,
                                       c->a->host, lv_errmsg())
                           : xasprintf("network %s is not active on %s", net, c->a->host);
                *code = RPC_REFUSED;
                if (nw)
                    virNetworkFree(nw);
                domxml_ifaces_free(ifs, nifs);
                return -1;
            }
            virNetworkFree(nw);
        }
    }
    domxml_ifaces_free(ifs, nifs);
    /* shared storage: the source's probe file must be visible here */
    int shared = 0;
    if (probe) {
        /* only a regular file with ferry's probe name (checked by rpcin), removed relative to
         * the opened instances path: never a symlink's target */
        char *why = NULL;
        int r = guard_unlink_file(c->a->cfg->agent.instances_path, probe, &why);
        if (r < 0) {
            *err = xasprintf("body.shared_probe: %s", why);
            *code = RPC_INVALID;
            free(why);
            return -1;
        }
        shared = r == 1;
        /* a call sent again after its reply was lost: the first one removed the file */
        if (shared)
            guard_probe_memo_add(&c->a->probes, probe);
        else if (guard_probe_memo_has(&c->a->probes, probe)) {
            shared = 1;
            log_info(&c->lf, "shared-storage probe %s was found by an earlier check_destination of this migration",
                     probe);
        }
    }
    json_object_object_add(out, "shared_storage", json_object_new_boolean(shared));
    if (!shared && block == 0) {
        *err = xasprintf("the instances path %s is not shared between the source and %s (the source's probe file "
                         "is not visible here): use block migration",
                         c->a->cfg->agent.instances_path, c->a->host);
        *code = RPC_REFUSED;
        return -1;
    }
    json_object_object_add(out, "address", json_object_new_string(c->a->address));
    return 0;
}

int rpcmig_check_destination(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    rpcin_check_dest in;
    if (rpcin_check_destination(c->body, c->migration, &in, err) < 0)
        return -1;
    /* a document the checks below cannot read is refused, not waved through */
    char *why = NULL;
    if (domxml_check(in.domain_xml, &why) < 0) {
        *err = xasprintf("body.domain_xml: %s", why);
        *code = RPC_INVALID;
        free(why);
        return -1;
    }
    virConnectPtr conn = conn_or_error(c, err, code);
    if (!conn)
        return -1;
    int rc =
        check_destination_conn(c, conn, in.domain_xml, in.memory_mb, in.post_copy, in.block, in.probe, out, err, code);
    virConnectClose(conn);
    return rc;
}

/* Runs qemu-img create -f fmt on the file open as fd (through /proc/self/fd, so qemu-img
 * writes the very file guard_create_file made, whatever happens to its path meanwhile); path
 * is for messages only. 0 or -1 with *err. */
static int qemu_img_create(const char *fmt, int fd, const char *path, long long size, char **err)
{
    char sz[32], target[40];
    int child_fd = fd == 3 ? 4 : 3; /* dup2 in the child clears O_CLOEXEC */
    snprintf(sz, sizeof(sz), "%lld", size);
    snprintf(target, sizeof(target), "/proc/self/fd/%d", child_fd);
    char *argv[] = {"qemu-img", "create", "-q", "-f", (char *)fmt, target, sz, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, child_fd);
    pid_t pid;
    int rc = posix_spawnp(&pid, "qemu-img", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
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

/* The directories a peer may name disk paths in: the instances path and the local disks
 * path (configuration, trusted). */
static void disk_roots(agent *a, const char *roots[2])
{
    roots[0] = a->cfg->agent.instances_path;
    roots[1] = a->cfg->agent.local_disks_path;
}

int rpcmig_pre_live_migration(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    const char *roots[2];
    disk_roots(c->a, roots);
    _cleanup_(rpcin_pre_free) rpcin_pre in = {0};
    if (rpcin_pre_live_migration(c->body, roots, 2, &in, err) < 0)
        return -1;
    /* every place checked before anything is made: a refusal creates nothing */
    for (size_t i = 0; i < in.n; i++) {
        char *why = NULL;
        if (guard_check_place(roots[in.disks[i].root], in.disks[i].rel, &why) < 0) {
            *err = xasprintf("body.disks[%zu].path: %s", i, why);
            free(why);
            return -1;
        }
    }
    _cleanup_free_ char *sname = sf_name(SF_DEST, c->migration);
    json_object *st = sf_read(c->a->cfg->agent.state_dir, sname);
    if (!st) {
        st = json_object_new_object();
        json_object_object_add(st, "migration", json_object_new_int64(c->migration));
        json_object_object_add(st, "instance", json_object_new_string(c->instance));
        if (c->lf.instance != c->instance)
            json_object_object_add(st, "instance_id", json_object_new_string(c->lf.instance));
        json_object_object_add(st, "created", json_object_new_array());
    }
    json_object *created;
    if (!json_object_object_get_ex(st, "created", &created) || !json_object_is_type(created, json_type_array)) {
        created = json_object_new_array();
        json_object_object_add(st, "created", created);
    }
    int rc = 0;
    for (size_t i = 0; i < in.n; i++) {
        const rpcin_disk *k = &in.disks[i];
        const char *root = roots[k->root];
        char *why = NULL;
        if (!k->create) {
            /* directories for every disk (walked without following a symlink) */
            int dfd;
            const char *leaf;
            if (guard_open_parent(root, k->rel, 1, &dfd, &leaf, &why) < 0) {
                *err = xasprintf("body.disks[%zu].path: %s", i, why);
                *code = RPC_INVALID;
                free(why);
                rc = -1;
                break;
            }
            close(dfd);
            continue;
        }
        int fd = -1;
        int made = guard_create_file(root, k->rel, &fd, &why);
        if (made < 0) {
            *err = xasprintf("body.disks[%zu].path: %s", i, why);
            *code = RPC_INVALID;
            free(why);
            rc = -1;
            break;
        }
        if (made == 0)
            continue; /* idempotent: made by an earlier call */
        /* recorded at once, so rollback removes even a half-made image */
        json_object_array_add(created, json_object_new_string(k->path));
        int qrc = qemu_img_create(k->format, fd, k->path, (long long)k->virtual_size, err);
        close(fd);
        if (qrc < 0) {
            *code = RPC_INTERNAL;
            rc = -1;
            break;
        }
        log_info(&c->lf, "created %s (%s, %lld bytes) for the incoming block migration", k->path, k->format,
                 (long long)k->virtual_size);
    }
    /* what was made is recorded even on failure, so rollback removes it */
    (void)sf_write(c->a->cfg->agent.state_dir, sname, st, &c->lf);
    if (rc == 0)
        json_object_object_add(out, "created", json_object_get(created));
    json_object_put(st);
    return rc;
}

int rpcmig_live_migration(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    rpcin_live in;
    if (rpcin_live_migration(c->body, c->a->host, &in, err) < 0)
        return -1;
    job *j = NULL;
    if (job_start(c->a, c->migration, c->instance, in.dest, in.dest_address, in.dest_migration_address, &in.o, &j,
                  err, code) < 0)
        return -1;
    json_object_object_add(out, "started", json_object_new_boolean(1));
    json_object_object_add(out, "job", job_status_json(j));
    return 0;
}

/* What libvirt says of the domain here: {exists, state, persistent}. */
static json_object *domain_json(rpcmig_call *c, virConnectPtr conn)
{
    json_object *o = json_object_new_object();
    virDomainPtr dom = virDomainLookupByUUIDString(conn, c->instance);
    json_object_object_add(o, "exists", json_object_new_boolean(dom != NULL));
    if (dom) {
        int st = 0, reason = 0;
        if (virDomainGetState(dom, &st, &reason, 0) == 0) {
            json_object_object_add(o, "state", json_object_new_string(inv_state_name(st)));
            json_object_object_add(o, "reason", json_object_new_int(reason));
            /* where a post-copy migration of the domain stands here (post-copy recovery) */
            if ((st == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_POSTCOPY_FAILED) ||
                (st == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED))
                json_object_object_add(o, "postcopy", json_object_new_string("failed"));
            else if ((st == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_POSTCOPY) ||
                     (st == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_POSTCOPY))
                json_object_object_add(o, "postcopy", json_object_new_string("active"));
        }
        json_object_object_add(o, "persistent", json_object_new_boolean(virDomainIsPersistent(dom) == 1));
        /* (no virDomainGetJobInfo here: it may wait for the job lock of a migration) */
        virDomainFree(dom);
    }
    return o;
}

int rpcmig_job_status(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
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

/* The call's migration job here; NULL with *err and *code when there is none. */
static job *job_or_error(rpcmig_call *c, char **err, rpc_code *code)
{
    job *j = job_find(c->a, c->migration);
    if (!j) {
        *err = xasprintf("no migration %lld on %s", (long long)c->migration, c->a->host);
        *code = RPC_NOT_FOUND;
    }
    return j;
}

int rpcmig_abort(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    job *j = job_or_error(c, err, code);
    if (!j || job_abort(c->a, j, err, code) < 0)
        return -1;
    json_object_object_add(out, "aborted", json_object_new_boolean(1));
    return 0;
}

int rpcmig_force_complete(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    job *j = job_or_error(c, err, code);
    const char *action = NULL;
    if (!j || job_force_complete(c->a, j, &action, err, code) < 0)
        return -1;
    json_object_object_add(out, "action", json_object_new_string(action));
    return 0;
}

int rpcmig_set_bandwidth(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    int mib_s = 0;
    if (rpcin_set_bandwidth(c->body, &mib_s, err) < 0) {
        *code = RPC_INVALID;
        return -1;
    }
    job *j = job_or_error(c, err, code);
    if (!j || job_set_bandwidth(c->a, j, mib_s, err, code) < 0)
        return -1;
    json_object_object_add(out, "bandwidth_mib_s", json_object_new_int(mib_s));
    return 0;
}

int rpcmig_resume_postcopy(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    job *j = job_or_error(c, err, code);
    const char *how = NULL;
    if (!j || job_resume_postcopy(c->a, j, &how, err, code) < 0)
        return -1;
    json_object_object_add(out, "resume", json_object_new_string(how));
    json_object_object_add(out, "job", job_status_json(j));
    return 0;
}

static int pause_postcopy_dom(rpcmig_call *c, virDomainPtr dom, int unused, json_object *out, char **err,
                              rpc_code *code)
{
    (void)unused;
    int st = 0, reason = 0;
    virDomainGetState(dom, &st, &reason, 0);
    if ((st == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_POSTCOPY_FAILED) ||
        (st == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)) {
        json_object_object_add(out, "paused", json_object_new_string("already"));
        return 0;
    }
    if (!(st == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_POSTCOPY) &&
        !(st == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_POSTCOPY)) {
        *err = xasprintf("domain %s is %s (reason %d) on %s: not in post-copy", virDomainGetName(dom),
                         inv_state_name(st), reason, c->a->host);
        *code = RPC_NOT_PAUSED;
        return -1;
    }
    /* the stream is dead but this side has not seen it (nothing was sent on it, its end is
     * half-open): shut QEMU's migration socket down, so it sees the end at once (qsock.h) —
     * libvirt's own pause (below) waits on the domain's job, which libvirt's Finish of the
     * incoming migration holds until QEMU sees the break */
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(dom, uuid) == 0) {
        long qpid = 0;
        char *why = NULL;
        int n = qsock_shut_migration("/proc", uuid, (unsigned)c->a->cfg->libvirt.migration_port_min,
                                     (unsigned)c->a->cfg->libvirt.migration_port_max, &qpid, &why);
        if (n > 0) {
            log_warn(&c->lf,
                     "post-copy migration of %s: its stream was broken but QEMU %ld here had not seen it: %d "
                     "migration socket(s) shut down, the post-copy pauses here, ready for resume",
                     virDomainGetName(dom), qpid, n);
            json_object_object_add(out, "paused", json_object_new_string("stream_shut"));
            return 0;
        }
        log_info(&c->lf, "post-copy migration of %s: %s; asking libvirt to pause it", virDomainGetName(dom),
                 n == 0 ? "QEMU has no migration socket open here" : why);
        free(why);
    }
    if (virDomainAbortJobFlags(dom, VIR_DOMAIN_ABORT_JOB_POSTCOPY) < 0) {
        /* libvirt's message first: virDomainGetName resets the thread's last error */
        _cleanup_free_ char *why = xstrdup(lv_errmsg());
        *err = xasprintf("could not pause the post-copy migration of %s here: %s", virDomainGetName(dom), why);
        *code = RPC_LIBVIRT;
        return -1;
    }
    log_warn(&c->lf, "post-copy migration of %s paused here (its stream was broken): ready for resume",
             virDomainGetName(dom));
    json_object_object_add(out, "paused", json_object_new_string("now"));
    return 0;
}

int rpcmig_pause_postcopy(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    return with_domain(c, pause_postcopy_dom, 0, out, err, code);
}

static int post_live_dom(rpcmig_call *c, virDomainPtr dom, int unused, json_object *out, char **err, rpc_code *code)
{
    (void)unused;
    int active = virDomainIsActive(dom), persistent = virDomainIsPersistent(dom);
    int st = 0, reason = 0;
    virDomainGetState(dom, &st, &reason, 0);
    if (active == 1 && st == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_MIGRATION) {
        /* the guest was paused to finish the migration (force-complete) and arrived paused:
         * it ran before the migration, so it runs after it */
        if (virDomainResume(dom) < 0) {
            *err =
                xasprintf("domain %s arrived paused and could not be resumed: %s", virDomainGetName(dom), lv_errmsg());
            *code = RPC_LIBVIRT;
            return -1;
        }
        log_info(&c->lf, "domain %s arrived paused by the migration: resumed", virDomainGetName(dom));
        virDomainGetState(dom, &st, &reason, 0);
    }
    if (active == 1 && st == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_POSTCOPY_FAILED) {
        /* the post-copy stream broke: the vCPUs are here but part of the memory is still on the
         * source; the guest has not landed until resume_postcopy finishes it */
        *err = xasprintf("domain %s runs on %s in post-copy with its stream broken (post-copy failed): part of its "
                         "memory is still on the source; it has not landed",
                         virDomainGetName(dom), c->a->host);
        *code = RPC_CONFLICT;
        return -1;
    }
    if (active != 1 || persistent != 1 || st != VIR_DOMAIN_RUNNING) {
        *err = xasprintf("domain %s is %s and %s on %s: the migration did not land here", virDomainGetName(dom),
                         inv_state_name(st), persistent == 1 ? "persistent" : "not persistent", c->a->host);
        *code = RPC_CONFLICT;
        return -1;
    }
    json_object_object_add(out, "running", json_object_new_boolean(1));
    json_object_object_add(out, "persistent", json_object_new_boolean(1));
    /* the incoming job's final statistics (downtime, memory): the figures of record when the
     * source's job-completed event never came (its end learned indirectly) */
    int jtype = 0, nparams = 0;
    virTypedParameterPtr params = NULL;
    if (virDomainGetJobStats(dom, &jtype, &params, &nparams, VIR_DOMAIN_JOB_STATS_COMPLETED) == 0) {
        if (jtype == VIR_DOMAIN_JOB_COMPLETED && nparams > 0)
            json_object_object_add(out, "stats", jobstats_json(params, nparams, jtype));
        virTypedParamsFree(params, nparams);
    } else {
        log_debug(&c->lf, "no completed job statistics for %s here: %s", virDomainGetName(dom), lv_errmsg());
    }
    _cleanup_free_ char *sname = sf_name(SF_DEST, c->migration);
    sf_remove(c->a->cfg->agent.state_dir, sname);
    log_info(&c->lf, "domain %s runs here, persistent: migration landed", virDomainGetName(dom));
    /* did the guest announce itself here (QEMU's RARP, the guest's own frames)? Its bridges
     * tell, for up to a second; that is a finding for the record, never a failure */
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
    domxml_iface *ifs = NULL;
    size_t nifs = 0;
    if (xml)
        domxml_ifaces(xml, &ifs, &nifs);
    _cleanup_free_ char *detail = NULL;
    announce_state an = announce_ifaces(ifs, nifs, "/sys", 1000, &detail);
    domxml_ifaces_free(ifs, nifs);
    json_object *a = json_object_new_object();
    json_object_object_add(a, "state", json_object_new_string(announce_state_str(an)));
    json_object_object_add(a, "detail", json_object_new_string(detail));
    json_object_object_add(out, "announce", a);
    log_info(&c->lf, "domain %s announced here: %s (%s)", virDomainGetName(dom), announce_state_str(an), detail);
    return 0;
}

int rpcmig_post_live_migration(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    return with_domain(c, post_live_dom, 0, out, err, code);
}

int rpcmig_rollback(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    virConnectPtr conn = conn_or_error(c, err, code);
    if (!conn)
        return -1;
    int rc = -1, undefined = 0;
    json_object *removed = NULL, *created = NULL;
    _cleanup_free_ char *sname = sf_name(SF_DEST, c->migration);
    json_object *st = sf_read(c->a->cfg->agent.state_dir, sname);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, c->instance);
    if (dom && virDomainIsActive(dom) == 1) {
        /* an incoming domain that never resumed here is the migration's leftover: libvirt
         * usually removes it right after the source's job ends; give it a moment, then
         * destroy it. One that runs here is the guest itself: never touched. */
        int state = 0, reason = 0;
        for (int i = 0; i < 30 && virDomainIsActive(dom) == 1; i++) {
            virDomainGetState(dom, &state, &reason, 0);
            if (state != VIR_DOMAIN_PAUSED ||
                (reason != VIR_DOMAIN_PAUSED_MIGRATION && reason != VIR_DOMAIN_PAUSED_STARTING_UP))
                break;
            usleep(100 * 1000);
        }
        if (virDomainIsActive(dom) == 1) {
            virDomainGetState(dom, &state, &reason, 0);
            if (state == VIR_DOMAIN_PAUSED &&
                (reason == VIR_DOMAIN_PAUSED_MIGRATION || reason == VIR_DOMAIN_PAUSED_STARTING_UP)) {
                if (virDomainDestroy(dom) < 0) {
                    *err = xasprintf("could not destroy the incoming leftover of %s: %s", c->instance, lv_errmsg());
                    *code = RPC_LIBVIRT;
                    goto out;
                }
                log_info(&c->lf, "rollback destroyed the paused incoming domain %s", c->instance);
            } else {
                *err = xasprintf("domain %s runs on %s (%s): cannot roll back a migration that landed here",
                                 virDomainGetName(dom), c->a->host, inv_state_name(state));
                *code = RPC_LANDED; /* the scheduler ends the migration as landed on this code */
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
                *code = RPC_LIBVIRT;
                goto out;
            }
            undefined = 1;
        }
    }
    removed = json_object_new_array();
    if (st && json_object_object_get_ex(st, "created", &created)) {
        for (size_t i = 0; i < json_object_array_length(created); i++) {
            /* the agent's own record, made under the same rules; checked again all the same,
             * and removed relative to its opened directory, never through a symlink */
            json_object *pv = json_object_array_get_idx(created, i);
            const char *p = json_object_get_string(pv), *rel, *roots[2];
            size_t root;
            char *why = NULL;
            disk_roots(c->a, roots);
            int r = p && json_object_is_type(pv, json_type_string) &&
                            guard_path(p, strlen(p), roots, 2, &root, &rel, &why) == 0
                        ? guard_unlink_file(roots[root], rel, &why)
                        : -1;
            if (r == 1) {
                json_object_array_add(removed, json_object_new_string(p));
                log_info(&c->lf, "rollback removed %s", p);
            } else if (r < 0) {
                log_warn(&c->lf, "rollback did not remove %s: %s", p ? p : "(not a path)", why ? why : "not a string");
            }
            free(why);
        }
    }
    sf_remove(c->a->cfg->agent.state_dir, sname);
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
