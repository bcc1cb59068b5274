/* rpcin: the bodies of the agent's RPCs, read and checked (see rpcin.h). */
#include "rpcin.h"

#include <string.h>

#include "domxml.h"
#include "guard.h"

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
        *err = xasprintf("body.%s: expected %s, got %s", key, json_type_to_name(t),
                         json_type_to_name(json_object_get_type(v)));
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

int rpcin_str(json_object *body, const char *key, int required, const char **out, char **err)
{
    json_object *v;
    if (field(body, key, json_type_string, required, &v, err) < 0)
        return -1;
    *out = v ? json_object_get_string(v) : NULL;
    if (required && (!*out || !**out)) {
        *err = xasprintf("body.%s: must not be empty", key);
        return -1;
    }
    if (v && strlen(*out) != (size_t)json_object_get_string_len(v)) {
        *err = xasprintf("body.%s: contains a NUL byte", key);
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

/* A short id fit for a log field: 1-64 characters of [A-Za-z0-9._-]. */
static int log_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int rpcin_migration(json_object *body, rpcin_mig *out, char **err)
{
    json_object *mv = NULL, *iv;
    const char *inst = NULL;
    int64_t epoch;
    if (field(body, "migration", json_type_int, 1, &mv, err) < 0 || rpcin_str(body, "instance", 1, &inst, err) < 0)
        return -1;
    int64_t mig = json_object_get_int64(mv);
    if (mig < 1) {
        *err = xstrdup("body.migration: must be >= 1");
        return -1;
    }
    if (!uuid_valid(inst)) {
        *err = xstrdup("body.instance: not a UUID");
        return -1;
    }
    if (get_int(body, "epoch", 0, 0, INT64_MAX, &epoch, err) < 0)
        return -1;
    out->migration = mig;
    out->instance = inst;
    out->epoch = epoch;
    out->instance_id = NULL;
    /* the scheduler also sends the instance's i-xxxxxxxx id: the one operators grep for */
    if (json_object_object_get_ex(body, "instance_id", &iv) && json_object_is_type(iv, json_type_string) &&
        log_id_ok(json_object_get_string(iv)))
        out->instance_id = json_object_get_string(iv);
    return 0;
}

int rpcin_dirty_rate(json_object *body, const char **instance, int *seconds, char **err)
{
    const char *inst = NULL;
    int64_t secs = 0;
    if (rpcin_str(body, "instance", 1, &inst, err) < 0 || get_int(body, "seconds", 1, 1, 10, &secs, err) < 0)
        return -1;
    if (!uuid_valid(inst)) {
        *err = xstrdup("body.instance: not a UUID");
        return -1;
    }
    *instance = inst;
    *seconds = (int)secs;
    return 0;
}

int rpcin_set_bandwidth(json_object *body, int *mib_s, char **err)
{
    int64_t v = 0;
    if (get_int(body, "bandwidth_mib_s", 1, 1, 100000, &v, err) < 0)
        return -1;
    *mib_s = (int)v;
    return 0;
}

int rpcin_check_source(json_object *body, int *block, char **err)
{
    return get_block(body, block, err);
}

int rpcin_check_destination(json_object *body, int64_t migration, rpcin_check_dest *out, char **err)
{
    memset(out, 0, sizeof(*out));
    if (rpcin_str(body, "domain_xml", 1, &out->domain_xml, err) < 0 ||
        get_int(body, "memory_mb", 0, 1, 1 << 30, &out->memory_mb, err) < 0 ||
        get_bool(body, "post_copy", 0, &out->post_copy, err) < 0 || get_block(body, &out->block, err) < 0 ||
        rpcin_str(body, "shared_probe", 0, &out->probe, err) < 0)
        return -1;
    char *why = NULL;
    if (out->probe && guard_probe_check(out->probe, strlen(out->probe), migration, &why) < 0) {
        *err = xasprintf("body.shared_probe: %s", why);
        free(why);
        return -1;
    }
    /* the interfaces' bridges go into a /sys path, their networks into a libvirt lookup */
    domxml_iface *ifs = NULL;
    size_t n = 0;
    domxml_ifaces(out->domain_xml, &ifs, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ifs[i].bridge && guard_plain_name(ifs[i].bridge, strlen(ifs[i].bridge), 15, &why) < 0) {
            *err = xasprintf("body.domain_xml: interface %zu: bridge %s", i, why);
            rc = -1;
        } else if (ifs[i].network && guard_plain_name(ifs[i].network, strlen(ifs[i].network), 64, &why) < 0) {
            *err = xasprintf("body.domain_xml: interface %zu: network %s", i, why);
            rc = -1;
        }
        free(why);
        why = NULL;
    }
    domxml_ifaces_free(ifs, n);
    return rc;
}

void rpcin_pre_free(rpcin_pre *p)
{
    free(p->disks);
    p->disks = NULL;
    p->n = 0;
}

int rpcin_pre_live_migration(json_object *body, const char *const *roots, size_t nroots, rpcin_pre *out, char **err)
{
    memset(out, 0, sizeof(*out));
    json_object *disks;
    if (get_block(body, &out->block, err) < 0 || field(body, "disks", json_type_array, 0, &disks, err) < 0)
        return -1;
    size_t n = disks ? json_object_array_length(disks) : 0;
    if (n > RPCIN_MAX_DISKS) {
        *err = xasprintf("body.disks: %zu disks, at most %d", n, RPCIN_MAX_DISKS);
        return -1;
    }
    out->disks = n ? xcalloc(n, sizeof(*out->disks)) : NULL;
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(disks, i), *v, *sh, *fv, *sv;
        rpcin_disk *k = &out->disks[i];
        if (!json_object_is_type(d, json_type_object) || !json_object_object_get_ex(d, "path", &v) ||
            !json_object_is_type(v, json_type_string)) {
            *err = xasprintf("body.disks[%zu].path: missing or not a string", i);
            goto bad;
        }
        k->path = json_object_get_string(v);
        char *why = NULL;
        if (guard_path(k->path, (size_t)json_object_get_string_len(v), roots, nroots, &k->root, &k->rel, &why) < 0) {
            *err = xasprintf("body.disks[%zu].path: %s", i, why);
            free(why);
            goto bad;
        }
        int shared = json_object_object_get_ex(d, "shared", &sh) && json_object_is_type(sh, json_type_boolean) &&
                     json_object_get_boolean(sh);
        /* on shared storage the image is already here */
        k->create = out->block && !(out->block == 2 && shared);
        if (!k->create)
            continue;
        k->format = "qcow2";
        if (json_object_object_get_ex(d, "format", &fv)) {
            if (!json_object_is_type(fv, json_type_string) ||
                (strcmp(json_object_get_string(fv), "qcow2") != 0 && strcmp(json_object_get_string(fv), "raw") != 0)) {
                *err = xasprintf("body.disks[%zu].format: %s is not supported (qcow2, raw)", i,
                                 json_object_get_string(fv));
                goto bad;
            }
            k->format = json_object_get_string(fv);
        }
        if (!json_object_object_get_ex(d, "virtual_size", &sv) || !json_object_is_type(sv, json_type_int) ||
            json_object_get_int64(sv) <= 0) {
            *err = xasprintf("body.disks[%zu].virtual_size: needed (bytes) to create the image for block migration", i);
            goto bad;
        }
        k->virtual_size = json_object_get_int64(sv);
    }
    out->n = n;
    return 0;
bad:
    rpcin_pre_free(out);
    return -1;
}

int rpcin_live_migration(json_object *body, const char *self_host, rpcin_live *out, char **err)
{
    memset(out, 0, sizeof(*out));
    const char *action = NULL;
    int64_t after, bw, downtime, timeout, aci, acinc, steps, delay, par, xbz;
    job_opts *o = &out->o;
    if (rpcin_str(body, "dest", 1, &out->dest, err) < 0 ||
        rpcin_str(body, "dest_address", 1, &out->dest_address, err) < 0 ||
        get_bool(body, "block_migration", 0, &o->block_migration, err) < 0 ||
        get_bool(body, "post_copy", 0, &o->post_copy, err) < 0 ||
        get_int(body, "postcopy_after_iterations", 1, 1, 1000, &after, err) < 0 ||
        get_bool(body, "auto_converge", 0, &o->auto_converge, err) < 0 ||
        get_int(body, "auto_converge_initial", 0, 0, 100, &aci, err) < 0 ||
        get_int(body, "auto_converge_increment", 0, 0, 100, &acinc, err) < 0 ||
        get_int(body, "bandwidth_mib_s", 0, 0, 100000, &bw, err) < 0 ||
        get_int(body, "max_downtime_ms", 300, 1, 600000, &downtime, err) < 0 ||
        get_int(body, "completion_timeout_s", 0, 0, 86400, &timeout, err) < 0 ||
        get_int(body, "downtime_steps", 0, 0, 100, &steps, err) < 0 ||
        get_int(body, "downtime_delay_ms", 0, 0, 3600000, &delay, err) < 0 ||
        get_int(body, "parallel_connections", 1, 1, 32, &par, err) < 0 ||
        get_int(body, "xbzrle_cache_mib", 0, 0, 65536, &xbz, err) < 0 ||
        rpcin_str(body, "completion_action", 0, &action, err) < 0 ||
        rpcin_str(body, "dest_migration_address", 0, &out->dest_migration_address, err) < 0)
        return -1;
    if ((steps > 0) != (delay > 0)) {
        *err = xstrdup("body.downtime_steps and body.downtime_delay_ms: both or neither");
        return -1;
    }
    if (action && strcmp(action, "abort") != 0 && strcmp(action, "postcopy") != 0 && strcmp(action, "pause") != 0) {
        *err = xstrdup("body.completion_action: expected \"abort\", \"postcopy\" or \"pause\"");
        return -1;
    }
    if (xbz > 0 && (xbz & (xbz - 1)) != 0) {
        *err = xasprintf("body.xbzrle_cache_mib: %lld is not a power of two", (long long)xbz);
        return -1;
    }
    if (xbz > 0 && par > 1) {
        *err = xasprintf("body.xbzrle_cache_mib: xbzrle compresses a single stream, not %lld parallel connections",
                         (long long)par);
        return -1;
    }
    char *why = NULL;
    if (guard_host_name(out->dest, strlen(out->dest), &why) < 0) {
        *err = xasprintf("body.dest: %s", why);
        free(why);
        return -1;
    }
    /* it goes into the libvirt URI ([libvirt] live_migration_uri): nothing but an address */
    if (guard_address(out->dest_address, strlen(out->dest_address), &why) < 0) {
        *err = xasprintf("body.dest_address: %s", why);
        free(why);
        return -1;
    }
    /* it goes into the stream's URI and is the destination's listen address: no port */
    const char *ma = out->dest_migration_address;
    if (ma && guard_data_address(ma, strlen(ma), &why) < 0) {
        *err = xasprintf("body.dest_migration_address: %s", why);
        free(why);
        return -1;
    }
    if (self_host && strcmp(out->dest, self_host) == 0) {
        *err = xasprintf("cannot migrate to %s: it is this host", out->dest);
        return -1;
    }
    o->postcopy_after_iterations = (int)after;
    o->parallel_connections = (int)par;
    o->xbzrle_cache_mib = (int)xbz;
    o->auto_converge_initial = (int)aci;
    o->auto_converge_increment = (int)acinc;
    o->bandwidth_mib_s = (int)bw;
    o->max_downtime_ms = (int)downtime;
    o->completion_timeout_s = (int)timeout;
    o->completion_postcopy = action && strcmp(action, "postcopy") == 0;
    o->completion_pause = action && strcmp(action, "pause") == 0;
    o->downtime_steps = (int)steps;
    o->downtime_delay_ms = (int)delay;
    return 0;
}
