/* hoststate: what the agents report, recorded in PostgreSQL. Every event is a claim by its
 * sender: a heartbeat counts only from its own host's agent (the broker-validated user_id),
 * read strictly (agentmsg.c), and older than the one recorded changes nothing. It updates its
 * host (totals, capacity = totals x allocation ratio - reserved, per-host overrides first) and
 * the instances it runs (a domain the database refuses is refused alone); an instance not
 * migrating gets an allocation on the host that runs it, but an instance another host still
 * lists is not moved by a report. All of it is one call of the server-side ferry_heartbeat
 * (sql/016), and the heartbeats that arrive while a batch is with the database worker go
 * together in the next one: BEGIN, one call each, COMMIT. Agent events about a migration count
 * only from its source's or destination's agent and go to the orchestration (after the
 * heartbeats received before them). Refused events are dead-lettered with the reason. */
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
    PGresult *outcome; /* ferry_heartbeat's rows (stale, claimed, refused), once recorded */
    size_t arrival;    /* its place in its batch: two of one host are recorded in the order they came */
    int rc;            /* its recording: 0, or -1 with err */
    char *err;
    /* an agent's migration event */
    int64_t migration;
    char what[32];
    char *source, *dest; /* the migration's hosts, NULL when unknown */
} ev_job;

static void ev_job_free(ev_job *j)
{
    agentmsg_heartbeat_clear(&j->hb);
    msg_envelope_free(j->env);
    pq_clearp(&j->outcome);
    free(j->err);
    free(j->source);
    free(j->dest);
    free(j);
}

/* The heartbeat's domains as ferry_heartbeat reads them (caller frees): the bad ones left out
 * (logged when received). */
static char *domains_json(const agentmsg_heartbeat *b)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < b->n_domains; i++) {
        const agentmsg_domain *d = &b->domains[i];
        if (d->bad)
            continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "uuid", json_object_new_string(d->uuid));
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "project", json_object_new_string(d->project ? d->project : ""));
        json_object_object_add(o, "vcpus", json_object_new_int64(d->vcpus));
        json_object_object_add(o, "memory_mb", json_object_new_int64(d->memory_mb));
        json_object_object_add(o, "disk_gb", json_object_new_int64(d->disk_gb));
        json_object_object_add(o, "vm_state", json_object_new_string(vm_state(d->state)));
        json_object_object_add(o, "state", json_object_new_string(d->state ? d->state : "unknown"));
        json_object_object_add(o, "ec2_id", d->instance_id ? json_object_new_string(d->instance_id) : NULL);
        json_object_array_add(a, o);
    }
    char *text = xstrdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
    json_object_put(a);
    return text;
}

/* Records j's heartbeat with one call of ferry_heartbeat in db's open transaction; its rows
 * go to j->outcome. isolate: each domain under its own subtransaction (a refused one is a row,
 * not a failure). 0, or -1 (see db_error). */
static int heartbeat_call(db_conn *db, ev_job *j, int isolate)
{
    const agentmsg_heartbeat *b = &j->hb;
    char vcpus[24], mem[24], disk[24], seq[24], cr[32], rr[32], dr[32], rc[24], rm[24], rd[24];
    snprintf(vcpus, sizeof(vcpus), "%lld", (long long)b->vcpus);
    snprintf(mem, sizeof(mem), "%lld", (long long)b->memory_mb);
    snprintf(disk, sizeof(disk), "%lld", (long long)b->disk_gb);
    snprintf(seq, sizeof(seq), "%lld", (long long)b->seq);
    const cfg_scheduler *c = &j->cfg;
    snprintf(cr, sizeof(cr), "%g", c->cpu_allocation_ratio);
    snprintf(rr, sizeof(rr), "%g", c->ram_allocation_ratio);
    snprintf(dr, sizeof(dr), "%g", c->disk_allocation_ratio);
    snprintf(rc, sizeof(rc), "%lld", (long long)c->reserved_host_cpus);
    snprintf(rm, sizeof(rm), "%lld", (long long)c->reserved_host_memory_mb);
    snprintf(rd, sizeof(rd), "%lld", (long long)c->reserved_host_disk_gb);
    /* agents before schema 6 number no heartbeats; a new agent process starts its own numbering */
    int numbered = b->boot && b->seq >= 0;
    _cleanup_free_ char *domains = domains_json(b);
    const char *p[] = {j->host,
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
                       b->migration_address ? b->migration_address : "",
                       cr,
                       rr,
                       dr,
                       rc,
                       rm,
                       rd,
                       domains,
                       isolate ? "true" : "false"};
    pq_clearp(&j->outcome);
    return db_exec(db, &j->outcome,
                   "SELECT domain::text, outcome, detail FROM ferry_heartbeat($1, $2, $3::int, $4::bigint, $5::bigint,"
                   " $6, $7, $8, $9, $10, $11, $12::boolean, $13::uuid, $14::bigint, $15, $16::real, $17::real,"
                   " $18::real, $19::int, $20::bigint, $21::bigint, $22::jsonb, $23::boolean)",
                   23, p);
}

/* Heartbeats recorded together: jobs (owned) in host order. */
typedef struct hb_batch {
    sched *s;
    ev_job **jobs;
    size_t n;
} hb_batch;

static int batch_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    hb_batch *bt = arg;
    for (size_t i = 0; i < bt->n; i++)
        if (heartbeat_call(db, bt->jobs[i], 0) < 0)
            return -1;
    return 0;
}

static int one_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    return heartbeat_call(db, arg, 1);
}

static int by_host(const void *a, const void *b)
{
    const ev_job *x = *(ev_job *const *)a, *y = *(ev_job *const *)b;
    int c = strcmp(x->host, y->host);
    return c ? c : (x->arrival > y->arrival) - (x->arrival < y->arrival);
}

/* On the worker: the batch in one transaction (its hosts locked in name order, as every
 * replica's batches take them); when the database refuses it (a domain it will not take), each
 * heartbeat again in its own transaction, each domain under its own subtransaction, so only
 * that domain is refused. */
static int batch_work(db_conn *db, void *arg, char **err)
{
    (void)err;
    hb_batch *bt = arg;
    qsort(bt->jobs, bt->n, sizeof(*bt->jobs), by_host);
    char *why = NULL;
    int rc = db_tx(db, "READ COMMITTED", batch_tx, bt, NULL, &why);
    int alone = rc < 0 && !db_failure_retryable(db) && db_pg(db) && PQstatus(db_pg(db)) == CONNECTION_OK;
    for (size_t i = 0; i < bt->n; i++) {
        ev_job *j = bt->jobs[i];
        if (rc == 0) {
            j->rc = 0;
        } else if (alone) {
            free(j->err);
            j->err = NULL;
            j->rc = db_tx(db, "READ COMMITTED", one_tx, j, NULL, &j->err);
        } else {
            j->rc = -1;
            j->err = xstrdup(why ? why : "not recorded");
            pq_clearp(&j->outcome);
        }
    }
    free(why);
    return 0;
}

static void hb_flush(sched *s);

/* On the loop, after the batch: each heartbeat logged (what its call returned) and its
 * delivery acked (events are informative: recorded or not, they are not retried; the next
 * heartbeat carries the same truth). */
static void batch_done(void *arg, int rc, char *err)
{
    hb_batch *bt = arg;
    sched *s = bt->s;
    if (rc < 0 && s->stopping) {
        /* never started: back to the broker for another replica, nothing lost */
        log_info(NULL, "stopping: %zu heartbeats not recorded here go back to the broker", bt->n);
        for (size_t i = 0; i < bt->n; i++) {
            mq_reject(bt->jobs[i]->c, bt->jobs[i]->d, 1);
            ev_job_free(bt->jobs[i]);
        }
        bt->n = 0;
    }
    for (size_t i = 0; i < bt->n; i++) {
        ev_job *j = bt->jobs[i];
        log_fields f = {.host = j->host};
        if (rc < 0 || j->rc < 0) {
            log_error(&f, "could not record the heartbeat of %s: %s", j->host, rc < 0 ? err : j->err);
        } else {
            for (int k = 0; j->outcome && k < PQntuples(j->outcome); k++) {
                const char *uuid = PQgetvalue(j->outcome, k, 0), *what = PQgetvalue(j->outcome, k, 1),
                           *detail = PQgetvalue(j->outcome, k, 2);
                const agentmsg_domain *d = NULL;
                for (size_t x = 0; x < j->hb.n_domains && !d; x++)
                    if (strcmp(j->hb.domains[x].uuid, uuid) == 0)
                        d = &j->hb.domains[x];
                log_fields g = {.host = j->host, .instance = d && d->instance_id ? d->instance_id : uuid};
                if (strcmp(what, "stale") == 0)
                    log_debug(&f, "ignored a heartbeat of %s older than the one recorded (seq %lld)", j->host,
                              (long long)j->hb.seq);
                else if (strcmp(what, "claimed") == 0)
                    log_warn(&g,
                             "heartbeat of %s reports instance %s running, but %s still lists it: not moved (a "
                             "claim, not a fact)",
                             j->host, uuid, detail);
                else
                    log_warn(&g, "heartbeat of %s: domain %s refused: %s", j->host, uuid, detail);
            }
        }
        mq_ack(j->c, j->d);
        ev_job_free(j);
    }
    free(err);
    free(bt->jobs);
    free(bt);
    s->hb_batches--;
    if (s->hb_batches == 0)
        hb_flush(s);
}

/* The heartbeats waiting, to the database worker as one batch (none: nothing). */
static void hb_flush(sched *s)
{
    if (s->hb_npending == 0)
        return;
    hb_batch *bt = xcalloc(1, sizeof(*bt));
    bt->s = s;
    bt->jobs = s->hb_pending;
    bt->n = s->hb_npending;
    s->hb_pending = NULL;
    s->hb_npending = s->hb_cap = 0;
    s->hb_batches++;
    dbq_submit(s->dbq, batch_work, batch_done, bt);
}

/* Queues the heartbeat of j (parsed) for the next batch, sent at once when no batch is with
 * the database worker; takes j. */
static void on_heartbeat(sched *s, ev_job *j)
{
    log_fields f = {.host = j->host};
    for (size_t i = 0; i < j->hb.n_domains; i++)
        if (j->hb.domains[i].bad)
            log_warn(&f, "heartbeat of %s: a domain refused: %s", j->host, j->hb.domains[i].bad);
    j->cfg = s->cfg->scheduler;
    if (s->hb_npending == s->hb_cap) {
        s->hb_cap = s->hb_cap ? s->hb_cap * 2 : 16;
        s->hb_pending = xrealloc(s->hb_pending, s->hb_cap * sizeof(*s->hb_pending));
    }
    j->arrival = s->hb_npending;
    s->hb_pending[s->hb_npending++] = j;
    if (s->hb_batches == 0)
        hb_flush(s);
}

void hoststate_stop(sched *s)
{
    hb_flush(s);
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
        hb_flush(s); /* after the heartbeats received before it, as they came */
        dbq_submit(s->dbq, migration_hosts_work, migration_event_done, j);
        return;
    }
    ev_job_free(j);
    mq_ack(c, d);
}
