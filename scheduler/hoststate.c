/* hoststate: what the agents report, recorded in PostgreSQL. Every event is a claim by its
 * sender: a heartbeat counts only from its own host's agent (the broker-validated user_id),
 * read strictly (agentmsg.c), and older than the one recorded changes nothing. It updates its
 * host (totals, capacity = totals x allocation ratio - reserved, per-host overrides first) and
 * the instances it runs, one domain at a time (a bad one is refused alone); an instance not
 * migrating gets an allocation on the host that runs it, but an instance another host still
 * lists is not moved by a report. Agent events about a migration count only from its source's or
 * destination's agent and go to the orchestration. Refused events are dead-lettered with the
 * reason. */
#include <stdlib.h>
#include <string.h>

#include "agentmsg.h"
#include "sched.h"

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
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

/* One event waiting for the database worker: the delivery, acked (or dead-lettered) in the
 * continuation, after the commit. */
typedef struct ev_job {
    sched *s;
    mq_conn *c;
    mq_delivery *d;
    msg_envelope *env; /* the event; the heartbeat's strings are borrowed from it */
    char host[AGENTMSG_MAX_NAME + 1];
    /* a heartbeat */
    agentmsg_heartbeat hb;
    cfg_scheduler cfg; /* a copy: the worker never reads the loop's config */
    int stale;         /* set when the heartbeat is older than the one recorded */
    /* an agent's migration event */
    int64_t migration;
    char what[32];
    char *source, *dest; /* the migration's hosts, NULL when unknown */
} ev_job;

static void ev_job_free(ev_job *j)
{
    agentmsg_heartbeat_clear(&j->hb);
    msg_envelope_free(j->env);
    free(j->source);
    free(j->dest);
    free(j);
}

typedef ev_job hb_ctx;

/* One domain of a heartbeat, in the caller's transaction under a savepoint: 0, or -1 when
 * the database refused it (the caller rolls back to the savepoint; the rest stands). A domain
 * reported running that another host still lists is not moved: that host's name goes into
 * *claimed (caller frees; NULL otherwise), for the caller to log once its pass is kept. */
static int domain_tx(db_conn *db, const hb_ctx *h, const agentmsg_domain *d, char **claimed)
{
    *claimed = NULL;
    char dv[24], dm[24], dd[24];
    snprintf(dv, sizeof(dv), "%lld", (long long)d->vcpus);
    snprintf(dm, sizeof(dm), "%lld", (long long)d->memory_mb);
    snprintf(dd, sizeof(dd), "%lld", (long long)d->disk_gb);
    const char *st = vm_state(d->state);
    const char *ip[] = {d->uuid, d->name, d->project ? d->project : "", h->host, dv, dm, dd, st, d->instance_id};
    /* a migrating instance is the orchestration's: the heartbeats of both hosts leave it be;
     * an instance its host still lists (in its last heartbeat) is that host's: a report from
     * here is a claim, not a fact, and does not move it (logged below for the operator). It
     * moves once its host has sent a heartbeat without it (a migration outside ferry). */
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "INSERT INTO instances AS i (uuid, name, project, host, vcpus, memory_mb, disk_gb, vm_state, ec2_id,"
                " reported_at)"
                " VALUES ($1::uuid, $2, $3, $4, $5::int, $6::bigint, $7::bigint, $8, $9, now())"
                " ON CONFLICT (uuid) DO UPDATE SET name = EXCLUDED.name, project = EXCLUDED.project,"
                " host = EXCLUDED.host, vcpus = EXCLUDED.vcpus, memory_mb = EXCLUDED.memory_mb,"
                " disk_gb = EXCLUDED.disk_gb, vm_state = EXCLUDED.vm_state, reported_at = now(), updated_at = now()"
                " WHERE i.task_state IS NULL AND (EXCLUDED.vm_state IN ('running', 'paused') OR i.host = EXCLUDED.host)"
                " AND (i.host IS NOT DISTINCT FROM EXCLUDED.host OR i.host IS NULL OR EXISTS (SELECT 1 FROM hosts h"
                "      WHERE h.name = i.host AND h.last_heartbeat > coalesce(i.reported_at, '-infinity')))"
                " RETURNING uuid",
                9, ip) < 0)
        return -1;
    if (PQntuples(r) == 0) {
        const char *qp[] = {d->uuid, h->host};
        _cleanup_pq_ PGresult *o = NULL;
        if (db_exec(db, &o,
                    "SELECT i.host FROM instances i WHERE i.uuid = $1::uuid"
                    " AND i.host IS DISTINCT FROM $2 AND i.task_state IS NULL",
                    2, qp) < 0)
            return -1;
        if (PQntuples(o) == 1 && strcmp(st, "running") == 0)
            *claimed = xstrdup(PQgetvalue(o, 0, 0));
        return 0;
    }
    if (strcmp(st, "running") != 0 && strcmp(st, "paused") != 0)
        return 0;
    /* what runs here holds an allocation here (found running without one: discovered) */
    const char *ap[] = {d->uuid, h->host};
    _cleanup_pq_ PGresult *a = NULL;
    if (db_exec(db, &a,
                "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)"
                " SELECT 'instance', uuid::text, uuid, host, vcpus, memory_mb, disk_gb FROM instances"
                " WHERE uuid = $1::uuid AND host = $2 AND task_state IS NULL"
                " ON CONFLICT (consumer_type, consumer_id) DO NOTHING"
                " RETURNING vcpus, memory_mb, disk_gb",
                2, ap) < 0)
        return -1;
    if (PQntuples(a) == 1) {
        const char *up[] = {h->host, PQgetvalue(a, 0, 0), PQgetvalue(a, 0, 1), PQgetvalue(a, 0, 2)};
        if (db_exec(db, NULL,
                    "UPDATE hosts SET used_vcpus = used_vcpus + $2::int, used_memory_mb = used_memory_mb + $3::bigint,"
                    " used_disk_gb = used_disk_gb + $4::bigint WHERE name = $1",
                    4, up) < 0)
            return -1;
    }
    return 0;
}

/* Logs that the heartbeat of h reports domain d running while host `other` still lists it. */
static void log_claimed(const hb_ctx *h, const agentmsg_domain *d, const char *other)
{
    log_fields f = {.host = h->host, .instance = d->instance_id ? d->instance_id : d->uuid};
    log_warn(&f, "heartbeat of %s reports instance %s running, but %s still lists it: not moved (a claim, not a fact)",
             h->host, d->uuid, other);
}

static void free_claimed(char **claimed, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(claimed[i]);
    free(claimed);
}

/* The host's domains as its heartbeat lists them (host_domains): those it no longer lists
 * deleted, the others written, in two statements. 0, or -1 (the database's error). */
static int host_domains_tx(db_conn *db, const hb_ctx *h)
{
    const agentmsg_heartbeat *b = &h->hb;
    json_object *uuids = json_object_new_array(), *states = json_object_new_array();
    for (size_t i = 0; i < b->n_domains; i++) {
        const agentmsg_domain *d = &b->domains[i];
        if (d->bad)
            continue;
        json_object_array_add(uuids, json_object_new_string(d->uuid));
        json_object_array_add(states, json_object_new_string(d->state ? d->state : "unknown"));
    }
    const char *p[] = {h->host, json_object_to_json_string_ext(uuids, JSON_C_TO_STRING_PLAIN),
                       json_object_to_json_string_ext(states, JSON_C_TO_STRING_PLAIN)};
    int rc = db_exec(db, NULL,
                     "DELETE FROM host_domains WHERE host = $1"
                     " AND uuid NOT IN (SELECT jsonb_array_elements_text($2::jsonb)::uuid)",
                     2, p) < 0 ||
                     (json_object_array_length(uuids) > 0 &&
                      db_exec(db, NULL,
                              "INSERT INTO host_domains (host, uuid, state)"
                              " SELECT DISTINCT ON (u::uuid) $1, u::uuid, s FROM ROWS FROM ("
                              "  jsonb_array_elements_text($2::jsonb), jsonb_array_elements_text($3::jsonb)) AS x(u, s)"
                              " ON CONFLICT (host, uuid) DO UPDATE SET state = EXCLUDED.state, reported_at = now()",
                              3, p) < 0)
                 ? -1
                 : 0;
    json_object_put(uuids);
    json_object_put(states);
    return rc;
}

static int heartbeat_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    hb_ctx *h = arg;
    const agentmsg_heartbeat *b = &h->hb;
    h->stale = 0;
    char vcpus[24], mem[24], disk[24], seq[24], cr[32], rr[32], dr[32], rc[24], rm[24], rd[24];
    snprintf(vcpus, sizeof(vcpus), "%lld", (long long)b->vcpus);
    snprintf(mem, sizeof(mem), "%lld", (long long)b->memory_mb);
    snprintf(disk, sizeof(disk), "%lld", (long long)b->disk_gb);
    snprintf(seq, sizeof(seq), "%lld", (long long)b->seq);
    const cfg_scheduler *c = &h->cfg;
    snprintf(cr, sizeof(cr), "%g", c->cpu_allocation_ratio);
    snprintf(rr, sizeof(rr), "%g", c->ram_allocation_ratio);
    snprintf(dr, sizeof(dr), "%g", c->disk_allocation_ratio);
    snprintf(rc, sizeof(rc), "%lld", (long long)c->reserved_host_cpus);
    snprintf(rm, sizeof(rm), "%lld", (long long)c->reserved_host_memory_mb);
    snprintf(rd, sizeof(rd), "%lld", (long long)c->reserved_host_disk_gb);
    int numbered = b->boot && b->seq >= 0;
    const char *p[] = {h->host,
                       b->address ? b->address : "",
                       vcpus,
                       mem,
                       disk,
                       b->arch ? b->arch : "",
                       b->cpu_model ? b->cpu_model : "",
                       b->cpu_xml ? b->cpu_xml : "",
                       b->hypervisor ? b->hypervisor : "qemu",
                       b->libvirt_version ? b->libvirt_version : "",
                       b->qemu_version ? b->qemu_version : "",
                       b->postcopy ? "true" : "false",
                       numbered ? b->boot : NULL,
                       numbered ? seq : NULL,
                       b->migration_address ? b->migration_address : ""};
    /* an older heartbeat of the same agent process (redelivered, reordered) changes nothing,
     * nor does an unnumbered one once the host's agent numbers them (agents before schema 6
     * send none; a new agent process starts its own numbering) */
    _cleanup_pq_ PGresult *up = NULL;
    if (db_exec(
            db, &up,
            "INSERT INTO hosts AS h (name, address, vcpus, memory_mb, disk_gb, arch, cpu_model, cpu_xml, hypervisor,"
            " libvirt_version, qemu_version, postcopy, heartbeat_boot, heartbeat_seq, last_heartbeat, migration_address)"
            " VALUES ($1, $2, $3::int, $4::bigint, $5::bigint, $6, $7, $8, $9, $10, $11, $12::boolean, $13::uuid,"
            " $14::bigint, now(), $15)"
            " ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, vcpus = EXCLUDED.vcpus,"
            " migration_address = EXCLUDED.migration_address,"
            " memory_mb = EXCLUDED.memory_mb, disk_gb = EXCLUDED.disk_gb, arch = EXCLUDED.arch,"
            " cpu_model = EXCLUDED.cpu_model, cpu_xml = EXCLUDED.cpu_xml, hypervisor = EXCLUDED.hypervisor,"
            " libvirt_version = EXCLUDED.libvirt_version, qemu_version = EXCLUDED.qemu_version,"
            " postcopy = EXCLUDED.postcopy, heartbeat_boot = EXCLUDED.heartbeat_boot,"
            " heartbeat_seq = EXCLUDED.heartbeat_seq, last_heartbeat = now(), updated_at = now()"
            " WHERE (EXCLUDED.heartbeat_seq IS NULL AND h.heartbeat_seq IS NULL)"
            " OR (EXCLUDED.heartbeat_seq IS NOT NULL AND (h.heartbeat_seq IS NULL"
            "     OR h.heartbeat_boot IS DISTINCT FROM EXCLUDED.heartbeat_boot OR h.heartbeat_seq < EXCLUDED.heartbeat_seq))"
            " RETURNING name",
            15, p) < 0)
        return -1;
    if (PQntuples(up) == 0) {
        h->stale = 1;
        return 0;
    }
    const char *q[] = {h->host, cr, rr, dr, rc, rm, rd};
    if (db_exec(db, NULL,
                "UPDATE hosts SET"
                " capacity_vcpus = greatest(0, floor(vcpus * coalesce(cpu_allocation_ratio, $2::real))"
                "   - coalesce(reserved_vcpus, $5::int))::int,"
                " capacity_memory_mb = greatest(0, floor(memory_mb * coalesce(ram_allocation_ratio, $3::real))"
                "   - coalesce(reserved_memory_mb, $6::bigint))::bigint,"
                " capacity_disk_gb = greatest(0, floor(disk_gb * coalesce(disk_allocation_ratio, $4::real))"
                "   - coalesce(reserved_disk_gb, $7::bigint))::bigint,"
                " domains_reported_at = now()"
                " WHERE name = $1",
                7, q) < 0)
        return -1;
    /* what this host lists, as it lists it, for the reconciler (reconcile.c): a guest two hosts
     * list is seen here even though instances.host names one of them. Two statements whatever
     * the count (the heartbeat's round trips are what bounds the scheduler, issue #20) */
    if (host_domains_tx(db, h) < 0)
        return -1;
    /* the domains in one savepoint; when the database refuses one, again one savepoint each, so
     * that only that one is refused (the rest of the heartbeat stands) */
    if (db_exec(db, NULL, "SAVEPOINT heartbeat_domains", 0, NULL) < 0)
        return -1;
    int all = 0;
    size_t n = b->n_domains;
    char **claimed = xcalloc(n ? n : 1, sizeof(*claimed));
    for (size_t i = 0; i < n && all == 0; i++)
        if (!b->domains[i].bad)
            all = domain_tx(db, h, &b->domains[i], &claimed[i]);
    if (all == 0) {
        all = db_exec(db, NULL, "RELEASE SAVEPOINT heartbeat_domains", 0, NULL) < 0 ? -1 : 0;
        for (size_t i = 0; i < n; i++)
            if (all == 0 && claimed[i])
                log_claimed(h, &b->domains[i], claimed[i]);
        free_claimed(claimed, n);
        return all;
    }
    free_claimed(claimed, n);
    if (db_exec(db, NULL, "ROLLBACK TO SAVEPOINT heartbeat_domains", 0, NULL) < 0)
        return -1;
    for (size_t i = 0; i < b->n_domains; i++) {
        const agentmsg_domain *d = &b->domains[i];
        if (d->bad)
            continue; /* logged once by the caller */
        if (db_exec(db, NULL, "SAVEPOINT heartbeat_domain", 0, NULL) < 0)
            return -1;
        _cleanup_free_ char *other = NULL;
        if (domain_tx(db, h, d, &other) < 0) {
            log_fields f = {.host = h->host, .instance = d->instance_id ? d->instance_id : d->uuid};
            _cleanup_free_ char *why = xstrdup(db_error(db));
            if (db_exec(db, NULL, "ROLLBACK TO SAVEPOINT heartbeat_domain", 0, NULL) < 0)
                return -1;
            log_warn(&f, "heartbeat of %s: domain %s refused: %s", h->host, d->uuid, why);
            continue;
        }
        if (db_exec(db, NULL, "RELEASE SAVEPOINT heartbeat_domain", 0, NULL) < 0)
            return -1;
        if (other)
            log_claimed(h, d, other);
    }
    return 0;
}

static int heartbeat_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", heartbeat_tx, arg, NULL, err);
}

/* On the loop, after the heartbeat's transaction: logged, and the delivery acked (events are
 * informative: recorded or not, they are not retried; the next heartbeat carries the same truth). */
static void heartbeat_done(void *arg, int rc, char *err)
{
    ev_job *j = arg;
    log_fields f = {.host = j->host};
    if (rc < 0)
        log_error(&f, "could not record the heartbeat of %s: %s", j->host, err);
    else if (j->stale)
        log_debug(&f, "ignored a heartbeat of %s older than the one recorded (seq %lld)", j->host,
                  (long long)j->hb.seq);
    free(err);
    mq_ack(j->c, j->d);
    ev_job_free(j);
}

/* Submits the heartbeat of j (parsed) to the database worker; takes j. */
static void on_heartbeat(sched *s, ev_job *j)
{
    log_fields f = {.host = j->host};
    for (size_t i = 0; i < j->hb.n_domains; i++)
        if (j->hb.domains[i].bad)
            log_warn(&f, "heartbeat of %s: a domain refused: %s", j->host, j->hb.domains[i].bad);
    j->cfg = s->cfg->scheduler;
    dbq_submit(s->dbq, heartbeat_work, heartbeat_done, j);
}

/* Dead-letters d, an event refused because of who sent it or what it says, with the reason,
 * logged with the sender. */
static void refuse(mq_conn *c, mq_delivery *d, const log_fields *f, const char *why)
{
    const mq_message *m = mq_delivery_message(d);
    _cleanup_free_ char *key = log_escape(m->routing_key);
    log_warn(f, "event %s refused: %s", key, why);
    mq_dead_letter(c, d, why);
}

/* On the worker: the source and dest of the event's migration (NULL ones when it is unknown). */
static int migration_hosts_work(db_conn *db, void *arg, char **err)
{
    ev_job *j = arg;
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)j->migration);
    const char *p[] = {ids};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, "SELECT source_host, dest_host FROM migrations WHERE id = $1::bigint", 1, p) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    if (PQntuples(r) == 1) {
        j->source = PQgetisnull(r, 0, 0) ? NULL : xstrdup(PQgetvalue(r, 0, 0));
        j->dest = PQgetisnull(r, 0, 1) ? NULL : xstrdup(PQgetvalue(r, 0, 1));
    }
    return 0;
}

/* On the loop, the migration's hosts read: the sender checked against them, the event handed
 * to the orchestration, the delivery acked (or dead-lettered when refused). */
static void migration_event_done(void *arg, int rc, char *err)
{
    ev_job *j = arg;
    sched *s = j->s;
    const mq_message *m = mq_delivery_message(j->d);
    const cfg_trust *t = &s->cfg->trust;
    json_object *b = msg_envelope_body(j->env);
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)j->migration);
    log_fields f = {.migration = ids};
    char *why = NULL;
    if (rc < 0) {
        /* who may say it cannot be checked now: the agent's job_status tells it again */
        log_warn(&f, "event of migration %s not recorded: could not read the migration: %s", ids, err);
    } else if (!trust_may_speak_for_migration(t, m->user_id, j->source, j->dest, &why)) {
        refuse(j->c, j->d, &f, why);
        free(why);
        free(err);
        ev_job_free(j);
        return;
    } else {
        /* the host an agent event is recorded under is its sender's, not the body's claim */
        char sender[AGENTMSG_MAX_NAME + 1];
        int from_agent = trust_role_of(t, m->user_id, sender, sizeof(sender)) == TRUST_AGENT;
        if (from_agent)
            json_object_object_add(b, "host", json_object_new_string(sender));
        if (orch_on_agent_event(s, j->migration, j->what, b, &why) < 0) {
            /* stats or texts that cannot be believed: dead-lettered with the reason, nothing recorded */
            f.host = from_agent ? sender : NULL;
            refuse(j->c, j->d, &f, why);
            free(why);
            free(err);
            ev_job_free(j);
            return;
        }
    }
    free(err);
    /* events are informative: recorded or not, they are not retried (the next heartbeat and
     * job_status carry the same truth) */
    mq_ack(j->c, j->d);
    ev_job_free(j);
}

void hoststate_on_event(mq_conn *c, mq_delivery *d, void *arg)
{
    sched *s = arg;
    const mq_message *m = mq_delivery_message(d);
    msg_envelope *env = NULL;
    char *err = NULL;
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        _cleanup_free_ char *key = log_escape(m->routing_key);
        log_warn(NULL, "malformed event %s: %s", key, err);
        mq_dead_letter(c, d, err);
        free(err);
        return;
    }
    ev_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->c = c;
    j->d = d;
    j->env = env;
    json_object *b = msg_envelope_body(env);
    const char *origin = jstr(b, "origin");
    agentmsg_key_kind kind =
        agentmsg_parse_key(m->routing_key, j->host, sizeof(j->host), &j->migration, j->what, sizeof(j->what));
    const cfg_trust *t = &s->cfg->trust;
    if (kind == AGENTMSG_KEY_HEARTBEAT) {
        log_fields f = {.host = j->host};
        agentmsg_limits l = {.max_vcpus = s->cfg->scheduler.host_max_vcpus,
                             .max_memory_mb = s->cfg->scheduler.host_max_memory_mb,
                             .max_disk_gb = s->cfg->scheduler.host_max_disk_gb};
        if (!trust_may_speak_for_host(t, m->user_id, j->host, &err) ||
            agentmsg_heartbeat_parse(b, &l, &j->hb, &err) < 0) {
            refuse(c, d, &f, err);
            free(err);
            ev_job_free(j);
            return;
        }
        on_heartbeat(s, j); /* acked after its commit */
        return;
    }
    if (kind == AGENTMSG_KEY_MIGRATION && origin && strcmp(origin, "agent") == 0) {
        dbq_submit(s->dbq, migration_hosts_work, migration_event_done, j);
        return;
    }
    ev_job_free(j);
    mq_ack(c, d);
}
