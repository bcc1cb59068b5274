/* hoststate: what the agents report, recorded in PostgreSQL. A heartbeat updates its host
 * (totals, capacity = totals x allocation ratio - reserved, per-host overrides first) and the
 * instances it runs; an instance not migrating gets an allocation on the host that runs it.
 * Agent events about migrations go to the orchestration. */
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static int64_t jint(json_object *o, const char *key, int64_t def)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return def;
}

static int jbool(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
           json_object_get_boolean(v);
}

/* vm_state of the schema from libvirt's state word */
static const char *vm_state(const char *s)
{
    if (!s)
        return "unknown";
    if (strcmp(s, "running") == 0)
        return "running";
    if (strcmp(s, "paused") == 0 || strcmp(s, "pmsuspended") == 0)
        return "paused";
    if (strcmp(s, "shutoff") == 0 || strcmp(s, "shutdown") == 0)
        return "stopped";
    if (strcmp(s, "crashed") == 0)
        return "error";
    return "unknown";
}

typedef struct hb_ctx {
    sched *s;
    json_object *b;
    const char *host;
} hb_ctx;

static int heartbeat_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    hb_ctx *h = arg;
    json_object *b = h->b;
    char vcpus[24], mem[24], disk[24], cr[32], rr[32], dr[32], rc[24], rm[24], rd[24];
    snprintf(vcpus, sizeof(vcpus), "%lld", (long long)jint(b, "vcpus", 0));
    snprintf(mem, sizeof(mem), "%lld", (long long)jint(b, "memory_mb", 0));
    snprintf(disk, sizeof(disk), "%lld", (long long)jint(b, "disk_gb", 0));
    const cfg_scheduler *c = &h->s->cfg->scheduler;
    snprintf(cr, sizeof(cr), "%g", c->cpu_allocation_ratio);
    snprintf(rr, sizeof(rr), "%g", c->ram_allocation_ratio);
    snprintf(dr, sizeof(dr), "%g", c->disk_allocation_ratio);
    snprintf(rc, sizeof(rc), "%lld", (long long)c->reserved_host_cpus);
    snprintf(rm, sizeof(rm), "%lld", (long long)c->reserved_host_memory_mb);
    snprintf(rd, sizeof(rd), "%lld", (long long)c->reserved_host_disk_gb);
    const char *p[] = {h->host,
                       jstr(b, "address") ? jstr(b, "address") : "",
                       vcpus,
                       mem,
                       disk,
                       jstr(b, "arch") ? jstr(b, "arch") : "",
                       jstr(b, "cpu_model") ? jstr(b, "cpu_model") : "",
                       jstr(b, "cpu_xml") ? jstr(b, "cpu_xml") : "",
                       jstr(b, "hypervisor") ? jstr(b, "hypervisor") : "qemu",
                       jstr(b, "libvirt_version") ? jstr(b, "libvirt_version") : "",
                       jstr(b, "qemu_version") ? jstr(b, "qemu_version") : "",
                       jbool(b, "postcopy") ? "true" : "false",
                       cr, rr, dr, rc, rm, rd};
    if (db_exec(db, NULL,
                "INSERT INTO hosts AS h (name, address, vcpus, memory_mb, disk_gb, arch, cpu_model, cpu_xml, hypervisor,"
                " libvirt_version, qemu_version, postcopy, last_heartbeat)"
                " VALUES ($1, $2, $3::int, $4::bigint, $5::bigint, $6, $7, $8, $9, $10, $11, $12::boolean, now())"
                " ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, vcpus = EXCLUDED.vcpus,"
                " memory_mb = EXCLUDED.memory_mb, disk_gb = EXCLUDED.disk_gb, arch = EXCLUDED.arch,"
                " cpu_model = EXCLUDED.cpu_model, cpu_xml = EXCLUDED.cpu_xml, hypervisor = EXCLUDED.hypervisor,"
                " libvirt_version = EXCLUDED.libvirt_version, qemu_version = EXCLUDED.qemu_version,"
                " postcopy = EXCLUDED.postcopy, last_heartbeat = now(), updated_at = now()",
                12, p) < 0)
        return -1;
    const char *q[] = {h->host, cr, rr, dr, rc, rm, rd};
    if (db_exec(db, NULL,
                "UPDATE hosts SET"
                " capacity_vcpus = greatest(0, floor(vcpus * coalesce(cpu_allocation_ratio, $2::real))"
                "   - coalesce(reserved_vcpus, $5::int))::int,"
                " capacity_memory_mb = greatest(0, floor(memory_mb * coalesce(ram_allocation_ratio, $3::real))"
                "   - coalesce(reserved_memory_mb, $6::bigint))::bigint,"
                " capacity_disk_gb = greatest(0, floor(disk_gb * coalesce(disk_allocation_ratio, $4::real))"
                "   - coalesce(reserved_disk_gb, $7::bigint))::bigint"
                " WHERE name = $1",
                7, q) < 0)
        return -1;
    json_object *doms;
    if (!json_object_object_get_ex(b, "domains", &doms) || !json_object_is_type(doms, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(doms); i++) {
        json_object *d = json_object_array_get_idx(doms, i);
        const char *uuid = jstr(d, "uuid"), *name = jstr(d, "name");
        if (!uuid || !name || !uuid_valid(uuid))
            continue;
        char dv[24], dm[24], dd[24];
        snprintf(dv, sizeof(dv), "%lld", (long long)jint(d, "vcpus", 0));
        snprintf(dm, sizeof(dm), "%lld", (long long)jint(d, "memory_mb", 0));
        snprintf(dd, sizeof(dd), "%lld", (long long)jint(d, "disk_gb", 0));
        const char *st = vm_state(jstr(d, "state"));
        const char *iid = jstr(d, "instance_id");
        const char *ip[] = {uuid, name, jstr(d, "project") ? jstr(d, "project") : "", h->host, dv, dm, dd, st, iid};
        /* a migrating instance is the orchestration's: the heartbeats of both hosts leave it be */
        if (db_exec(db, NULL,
                    "INSERT INTO instances AS i (uuid, name, project, host, vcpus, memory_mb, disk_gb, vm_state, ec2_id)"
                    " VALUES ($1::uuid, $2, $3, $4, $5::int, $6::bigint, $7::bigint, $8, $9)"
                    " ON CONFLICT (uuid) DO UPDATE SET name = EXCLUDED.name, project = EXCLUDED.project,"
                    " host = EXCLUDED.host, vcpus = EXCLUDED.vcpus, memory_mb = EXCLUDED.memory_mb,"
                    " disk_gb = EXCLUDED.disk_gb, vm_state = EXCLUDED.vm_state, updated_at = now()"
                    " WHERE i.task_state IS NULL AND (EXCLUDED.vm_state IN ('running', 'paused') OR i.host = EXCLUDED.host)",
                    9, ip) < 0)
            return -1;
        if (strcmp(st, "running") != 0 && strcmp(st, "paused") != 0)
            continue;
        /* what runs here holds an allocation here (found running without one: discovered) */
        const char *ap[] = {uuid, h->host};
        _cleanup_pq_ PGresult *r = NULL;
        if (db_exec(db, &r,
                    "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)"
                    " SELECT 'instance', uuid::text, uuid, host, vcpus, memory_mb, disk_gb FROM instances"
                    " WHERE uuid = $1::uuid AND host = $2 AND task_state IS NULL"
                    " ON CONFLICT (consumer_type, consumer_id) DO NOTHING"
                    " RETURNING vcpus, memory_mb, disk_gb",
                    2, ap) < 0)
            return -1;
        if (PQntuples(r) == 1) {
            const char *up[] = {h->host, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)};
            if (db_exec(db, NULL,
                        "UPDATE hosts SET used_vcpus = used_vcpus + $2::int, used_memory_mb = used_memory_mb + $3::bigint,"
                        " used_disk_gb = used_disk_gb + $4::bigint WHERE name = $1",
                        4, up) < 0)
                return -1;
        }
    }
    return 0;
}

static void on_heartbeat(sched *s, const char *host, json_object *b)
{
    hb_ctx h = {.s = s, .b = b, .host = host};
    char *err = NULL;
    if (db_tx(s->db, "READ COMMITTED", heartbeat_tx, &h, NULL, &err) < 0) {
        log_fields f = {.host = host};
        log_error(&f, "could not record the heartbeat of %s: %s", host, err);
        free(err);
    }
}

void hoststate_on_event(mq_conn *c, mq_delivery *d, void *arg)
{
    sched *s = arg;
    const mq_message *m = mq_delivery_message(d);
    msg_envelope *env = NULL;
    char *err = NULL;
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        log_warn(NULL, "malformed event %s: %s", m->routing_key, err);
        mq_dead_letter(c, d, err);
        free(err);
        return;
    }
    json_object *b = msg_envelope_body(env);
    const char *origin = jstr(b, "origin");
    const char *key = m->routing_key;
    char host[256];
    long long mig;
    char what[32];
    size_t kl = strlen(key);
    /* host.<name>.heartbeat, where a name may hold dots (c1.example.com) */
    if (kl > 15 && kl - 15 < sizeof(host) && strncmp(key, "host.", 5) == 0 && strcmp(key + kl - 10, ".heartbeat") == 0) {
        memcpy(host, key + 5, kl - 15);
        host[kl - 15] = 0;
        on_heartbeat(s, host, b);
    } else if (origin && strcmp(origin, "agent") == 0 && sscanf(key, "migration.%lld.%31s", &mig, what) == 2) {
        orch_on_agent_event(s, mig, what, b);
    }
    msg_envelope_free(env);
    /* events are informative: recorded or not, they are not retried (the next heartbeat and
     * job_status carry the same truth) */
    mq_ack(c, d);
}
