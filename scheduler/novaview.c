/* novaview: ferry's reads in Nova's shapes (see novaview.h; field names from Nova's API
 * reference, scheduler/API.md "Nova compute API"). */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "novaver.h"
#include "novaview.h"

static const char *str(json_object *o, const char *k)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                          : NULL;
}

static int64_t num(json_object *o, const char *k)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && (json_object_is_type(v, json_type_int) ||
                                                  json_object_is_type(v, json_type_double))
               ? json_object_get_int64(v)
               : 0;
}

static json_object *jstr(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/* PostgreSQL's json timestamps ("2026-12-04T09:17:39.123+00:00") as Nova writes them
 * ("2026-12-04T09:17:39.000000"), or null. */
static json_object *jtime(const char *t)
{
    if (!t || strlen(t) < 19)
        return NULL;
    char buf[32];
    snprintf(buf, sizeof(buf), "%.19s.000000", t);
    return json_object_new_string(buf);
}

json_object *novaview_server(json_object *inst, int minor, int detail)
{
    const char *uuid = str(inst, "uuid"), *vm = str(inst, "vm_state"), *task = str(inst, "task_state");
    json_object *s = json_object_new_object();
    json_object_object_add(s, "id", jstr(uuid));
    json_object_object_add(s, "name", jstr(str(inst, "name")));
    json_object_object_add(s, "links", json_object_new_array());
    if (!detail)
        return s;
    const char *host = str(inst, "host");
    json_object_object_add(s, "status", json_object_new_string(novaver_server_status(vm, task)));
    json_object_object_add(s, "tenant_id", jstr(str(inst, "project")));
    json_object_object_add(s, "user_id", json_object_new_string(""));
    json_object_object_add(s, "metadata", json_object_new_object());
    json_object_object_add(s, "addresses", json_object_new_object());
    json_object_object_add(s, "image", json_object_new_string(""));
    json_object *f = json_object_new_object();
    char fid[96];
    snprintf(fid, sizeof(fid), "ferry-%lld-%lld-%lld", (long long)num(inst, "vcpus"), (long long)num(inst, "memory_mb"),
             (long long)num(inst, "disk_gb"));
    if (minor >= 47) {
        json_object_object_add(f, "original_name", json_object_new_string(fid));
        json_object_object_add(f, "vcpus", json_object_new_int64(num(inst, "vcpus")));
        json_object_object_add(f, "ram", json_object_new_int64(num(inst, "memory_mb")));
        json_object_object_add(f, "disk", json_object_new_int64(num(inst, "disk_gb")));
        json_object_object_add(f, "ephemeral", json_object_new_int(0));
        json_object_object_add(f, "swap", json_object_new_int(0));
        json_object_object_add(f, "extra_specs", json_object_new_object());
    } else {
        json_object_object_add(f, "id", json_object_new_string(fid));
        json_object_object_add(f, "links", json_object_new_array());
    }
    json_object_object_add(s, "flavor", f);
    json_object_object_add(s, "progress", json_object_new_int(0));
    json_object_object_add(s, "hostId", json_object_new_string(""));
    json_object_object_add(s, "created", jtime(str(inst, "created_at")));
    json_object_object_add(s, "updated", jtime(str(inst, "updated_at")));
    json_object_object_add(s, "accessIPv4", json_object_new_string(""));
    json_object_object_add(s, "accessIPv6", json_object_new_string(""));
    json_object_object_add(s, "OS-EXT-SRV-ATTR:host", jstr(host));
    json_object_object_add(s, "OS-EXT-SRV-ATTR:hypervisor_hostname", jstr(host));
    json_object_object_add(s, "OS-EXT-SRV-ATTR:instance_name", jstr(str(inst, "id")));
    json_object_object_add(s, "OS-EXT-STS:task_state", jstr(task));
    json_object_object_add(s, "OS-EXT-STS:vm_state", json_object_new_string(novaver_vm_state(vm)));
    json_object_object_add(s, "OS-EXT-STS:power_state",
                           json_object_new_int(vm && strcmp(vm, "running") == 0 ? 1
                                               : vm && strcmp(vm, "paused") == 0 ? 3
                                               : vm && strcmp(vm, "stopped") == 0 ? 4
                                                                                  : 0));
    json_object_object_add(s, "OS-EXT-AZ:availability_zone", json_object_new_string("nova"));
    json_object_object_add(s, "config_drive", json_object_new_string(""));
    json_object_object_add(s, "key_name", NULL);
    json_object_object_add(s, "security_groups", json_object_new_array());
    json_object_object_add(s, "os-extended-volumes:volumes_attached", json_object_new_array());
    if (minor >= 26)
        json_object_object_add(s, "tags", json_object_new_array());
    if (minor >= 9)
        json_object_object_add(s, "locked", json_object_new_boolean(0));
    return s;
}

json_object *novaview_migration(json_object *m, int minor, int server_view)
{
    json_object *o = json_object_new_object();
    const char *st = str(m, "status"), *src = str(m, "source"), *dst = str(m, "dest");
    const char *upd = str(m, "updated_at") ? str(m, "updated_at") : str(m, "created_at");
    json_object_object_add(o, "id", json_object_new_int64(num(m, "id")));
    if (minor >= 59 || server_view)
        json_object_object_add(o, "uuid", jstr(str(m, "request")));
    json_object_object_add(o, server_view ? "server_uuid" : "instance_uuid", jstr(str(m, "instance")));
    json_object_object_add(o, "source_compute", jstr(src));
    json_object_object_add(o, "dest_compute", jstr(dst));
    json_object_object_add(o, "source_node", jstr(src));
    json_object_object_add(o, "dest_node", jstr(dst));
    json_object_object_add(o, "dest_host", json_object_new_string(""));
    json_object_object_add(o, "status", json_object_new_string(novaver_migration_status(st)));
    json_object_object_add(o, "created_at", jtime(str(m, "created_at")));
    json_object_object_add(o, "updated_at", jtime(upd));
    if (server_view) {
        json_object_object_add(o, "memory_total_bytes", json_object_new_int64(num(m, "memory_total_bytes")));
        json_object_object_add(o, "memory_processed_bytes", json_object_new_int64(num(m, "memory_processed_bytes")));
        json_object_object_add(o, "memory_remaining_bytes", json_object_new_int64(num(m, "memory_remaining_bytes")));
        int64_t dt = num(m, "disk_total_bytes"), dr = num(m, "disk_remaining_bytes");
        json_object_object_add(o, "disk_total_bytes", json_object_new_int64(dt));
        json_object_object_add(o, "disk_processed_bytes", json_object_new_int64(dt > dr ? dt - dr : 0));
        json_object_object_add(o, "disk_remaining_bytes", json_object_new_int64(dr));
    } else {
        json_object_object_add(o, "migration_type", json_object_new_string("live-migration"));
        json_object_object_add(o, "old_instance_type_id", NULL);
        json_object_object_add(o, "new_instance_type_id", NULL);
    }
    if (minor >= 80) {
        json_object_object_add(o, "project_id", jstr(str(m, "project")));
        json_object_object_add(o, "user_id", json_object_new_string(""));
    }
    return o;
}

const char *novaview_host_id(const char *name, int index, int minor, char *buf)
{
    if (minor < 53) {
        snprintf(buf, 40, "%d", index);
        return buf;
    }
    unsigned char md[32];
    unsigned int ml = 0;
    _cleanup_free_ char *seed = xasprintf("ferry-host:%s", name);
    if (EVP_Digest(seed, strlen(seed), md, &ml, EVP_sha256(), NULL) != 1)
        abort();
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* a name-based uuid's version and variant */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    snprintf(buf, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3],
             md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
    return buf;
}

json_object *novaview_hypervisor(json_object *h, int index, int minor, int detail)
{
    char id[40];
    const char *name = str(h, "name"), *state = str(h, "state");
    json_object *alive = NULL;
    json_object_object_get_ex(h, "alive", &alive);
    novaview_host_id(name ? name : "", index, minor, id);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", minor >= 53 ? json_object_new_string(id) : json_object_new_int(index));
    json_object_object_add(o, "hypervisor_hostname", jstr(name));
    json_object_object_add(o, "state", json_object_new_string(json_object_get_boolean(alive) ? "up" : "down"));
    json_object_object_add(o, "status",
                           json_object_new_string(state && strcmp(state, "enabled") == 0 ? "enabled" : "disabled"));
    if (!detail)
        return o;
    json_object_object_add(o, "hypervisor_type", json_object_new_string("QEMU"));
    json_object_object_add(o, "hypervisor_version", json_object_new_int(0));
    json_object_object_add(o, "host_ip", jstr(str(h, "address")));
    json_object *svc = json_object_new_object();
    char sid[40];
    json_object_object_add(svc, "id", minor >= 53 ? json_object_new_string(novaview_host_id(name ? name : "", index,
                                                                                           minor, sid))
                                                   : json_object_new_int(index));
    json_object_object_add(svc, "host", jstr(name));
    json_object_object_add(svc, "disabled_reason", jstr(str(h, "state_reason")));
    json_object_object_add(o, "service", svc);
    if (minor < 88) {
        json_object_object_add(o, "vcpus", json_object_new_int64(num(h, "capacity_vcpus")));
        json_object_object_add(o, "memory_mb", json_object_new_int64(num(h, "capacity_memory_mb")));
        json_object_object_add(o, "local_gb", json_object_new_int64(num(h, "capacity_disk_gb")));
        json_object_object_add(o, "vcpus_used", json_object_new_int64(num(h, "used_vcpus")));
        json_object_object_add(o, "memory_mb_used", json_object_new_int64(num(h, "used_memory_mb")));
        json_object_object_add(o, "local_gb_used", json_object_new_int64(num(h, "used_disk_gb")));
        json_object_object_add(o, "free_ram_mb",
                               json_object_new_int64(num(h, "capacity_memory_mb") - num(h, "used_memory_mb")));
        json_object_object_add(o, "free_disk_gb",
                               json_object_new_int64(num(h, "capacity_disk_gb") - num(h, "used_disk_gb")));
        json_object_object_add(o, "running_vms", json_object_new_int64(num(h, "instances")));
        json_object_object_add(o, "current_workload", json_object_new_int64(num(h, "active_migrations")));
        json_object_object_add(o, "disk_available_least", NULL);
        json_object *cpu = json_object_new_object();
        json_object_object_add(cpu, "arch", jstr(str(h, "arch")));
        json_object_object_add(cpu, "model", jstr(str(h, "cpu_model")));
        if (minor >= 28) {
            json_object_object_add(o, "cpu_info", cpu);
        } else { /* a JSON text before 2.28 */
            json_object_object_add(o, "cpu_info", json_object_new_string(json_object_to_json_string_ext(
                                                      cpu, JSON_C_TO_STRING_PLAIN)));
            json_object_put(cpu);
        }
    } else {
        json_object_object_add(o, "uptime", NULL);
    }
    return o;
}

json_object *novaview_service(json_object *h, int index, int minor)
{
    char id[40];
    const char *name = str(h, "name"), *state = str(h, "state");
    json_object *alive = NULL;
    json_object_object_get_ex(h, "alive", &alive);
    novaview_host_id(name ? name : "", index, minor, id);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", minor >= 53 ? json_object_new_string(id) : json_object_new_int(index));
    json_object_object_add(o, "binary", json_object_new_string("nova-compute"));
    json_object_object_add(o, "host", jstr(name));
    json_object_object_add(o, "zone", json_object_new_string("nova"));
    json_object_object_add(o, "status",
                           json_object_new_string(state && strcmp(state, "enabled") == 0 ? "enabled" : "disabled"));
    json_object_object_add(o, "state", json_object_new_string(json_object_get_boolean(alive) ? "up" : "down"));
    json_object_object_add(o, "updated_at", NULL);
    json_object_object_add(o, "disabled_reason", jstr(str(h, "state_reason")));
    if (minor >= 11)
        json_object_object_add(o, "forced_down", json_object_new_boolean(0));
    return o;
}

json_object *novaview_version(const char *base)
{
    json_object *v = json_object_new_object();
    json_object_object_add(v, "id", json_object_new_string("v2.1"));
    json_object_object_add(v, "status", json_object_new_string("CURRENT"));
    char max[16];
    snprintf(max, sizeof(max), "2.%d", NOVAVER_MAX_MINOR);
    json_object_object_add(v, "version", json_object_new_string(max));
    json_object_object_add(v, "min_version", json_object_new_string("2.1"));
    json_object_object_add(v, "updated", json_object_new_string("2013-07-23T11:33:21Z"));
    json_object *links = json_object_new_array(), *self = json_object_new_object();
    json_object_object_add(self, "rel", json_object_new_string("self"));
    _cleanup_free_ char *href = xasprintf("%s/v2.1/", base);
    json_object_object_add(self, "href", json_object_new_string(href));
    json_object_array_add(links, self);
    json_object_object_add(v, "links", links);
    json_object *mt = json_object_new_array(), *t = json_object_new_object();
    json_object_object_add(t, "base", json_object_new_string("application/json"));
    json_object_object_add(t, "type", json_object_new_string("application/vnd.openstack.compute+json;version=2.1"));
    json_object_array_add(mt, t);
    json_object_object_add(v, "media-types", mt);
    return v;
}
