/* orch: the migration status machine of DESIGN.md, driven over RPC to the agents. Each
 * transition is committed (guarded by owner and expected status) before the next RPC; every
 * transition is a migration_events row and a migration.<id>.<status> event. Failure before
 * the guest moved rolls the destination back and releases its allocation (`failed`); when
 * the truth cannot be established the status is `error`. */
#include <stdlib.h>
#include <string.h>

#include "sched.h"

typedef struct orch orch;
typedef void (*step_fn)(orch *o, json_object *reply);

struct orch {
    orch *next;
    sched *s;
    int64_t id;
    char id_s[24];
    char req[40];
    char uuid[40];
    char ec2[40];
    char source[256];
    char dest[256];
    char dest_addr[64];
    char status[16];
    char block[8];
    int post_copy, auto_converge, after, bw, downtime, timeout;
    json_object *src_check;
    char *fail_reason;
    int prepared;
    int finishing;
    int polling;
    int64_t last_progress_ms;
    struct event *poll_ev;
    log_fields lf;
};

static orch *all;

static orch *find(int64_t id)
{
    for (orch *o = all; o; o = o->next)
        if (o->id == id)
            return o;
    return NULL;
}

static void orch_free_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    orch *o = arg;
    for (orch **pp = &all; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    if (o->poll_ev)
        event_free(o->poll_ev);
    json_object_put(o->src_check);
    free(o->fail_reason);
    free(o);
}

/* Never free an object inside its own callback: schedule it. */
static void orch_done(orch *o)
{
    if (o->poll_ev)
        event_del(o->poll_ev);
    event_base_once(o->s->base, -1, EV_TIMEOUT, orch_free_later, o, NULL);
}

/* ---- events -------------------------------------------------------------------------------- */

int orch_record(sched *s, int64_t migration, const char *origin, const char *host, const char *status, const char *kind,
                const char *message)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)migration);
    const char *p[] = {id, origin, host, status, kind, message ? message : ""};
    return db_exec(s->db, NULL,
                   "INSERT INTO migration_events (migration_id, origin, host, status, kind, message)"
                   " VALUES ($1::bigint, $2, $3, $4, $5, $6)",
                   6, p);
}

/* Publishes migration.<id>.<status> (after the commit). */
static void publish_status(sched *s, int64_t id, const char *req, const char *uuid, const char *ec2, const char *source,
                           const char *dest, const char *status, const char *message)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    json_object_object_add(b, "status", json_object_new_string(status));
    if (req)
        json_object_object_add(b, "request", json_object_new_string(req));
    if (uuid)
        json_object_object_add(b, "instance", json_object_new_string(uuid));
    if (ec2)
        json_object_object_add(b, "instance_id", json_object_new_string(ec2));
    if (source)
        json_object_object_add(b, "source", json_object_new_string(source));
    if (dest)
        json_object_object_add(b, "dest", json_object_new_string(dest));
    if (message)
        json_object_object_add(b, "message", json_object_new_string(message));
    json_object_object_add(b, "origin", json_object_new_string("scheduler"));
    json_object_object_add(b, "scheduler", json_object_new_string(s->name));
    _cleanup_free_ char *key = xasprintf("migration.%lld.%s", (long long)id, status);
    _cleanup_free_ char *text = msg_build(key, NULL, b);
    char *err = NULL;
    mq_props p = {.type = key};
    if (mq_publish(s->mq, MQ_EVENTS_EXCHANGE, key, &p, text, strlen(text), NULL, NULL, &err) < 0) {
        log_warn(NULL, "event %s not published: %s", key, err);
        free(err);
    }
}

/* ---- transitions --------------------------------------------------------------------------- */

typedef struct tr {
    orch *o;
    const char *from, *to, *message;
    int won;
} tr;

static int transition_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    tr *t = arg;
    const char *p[] = {t->o->id_s, t->to, t->from, t->o->s->name};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "UPDATE migrations SET status = $2, updated_at = now() WHERE id = $1::bigint AND status = $3 AND owner = $4"
                " RETURNING id",
                4, p) < 0)
        return -1;
    t->won = PQntuples(r) == 1;
    if (!t->won)
        return 0;
    return orch_record(t->o->s, t->o->id, "scheduler", NULL, t->to, "status", t->message);
}

/* Commits from -> to; 0 when done, -1 when it could not (logged; the orchestration stops). */
static int transition(orch *o, const char *to, const char *message)
{
    tr t = {.o = o, .from = o->status, .to = to, .message = message};
    char *err = NULL;
    if (db_tx(o->s->db, "READ COMMITTED", transition_tx, &t, NULL, &err) < 0) {
        log_error(&o->lf, "could not record status %s: %s", to, err);
        free(err);
        return -1;
    }
    if (!t.won) {
        log_warn(&o->lf, "migration %lld is no longer %s under this scheduler: leaving it", (long long)o->id, o->status);
        return -1;
    }
    log_info(&o->lf, "migration %lld: %s -> %s%s%s", (long long)o->id, o->status, to, message ? ": " : "", message ? message : "");
    strlcpy_f(o->status, to, sizeof(o->status));
    publish_status(o->s, o->id, o->req, o->uuid, o->ec2, o->source, o->dest, to, message);
    return 0;
}

typedef struct fin {
    orch *o;
    const char *status;
    const char *error;
    json_object *stats;
} fin;

static int release(db_conn *db, const char *where_sql, const char *a, const char *b)
{
    const char *p[] = {a, b};
    _cleanup_pq_ PGresult *r = NULL;
    _cleanup_free_ char *sql = xasprintf("DELETE FROM allocations WHERE %s RETURNING host, vcpus, memory_mb, disk_gb", where_sql);
    if (db_exec(db, &r, sql, 2, p) < 0)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *up[] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3)};
        if (db_exec(db, NULL,
                    "UPDATE hosts SET used_vcpus = greatest(0, used_vcpus - $2::int),"
                    " used_memory_mb = greatest(0, used_memory_mb - $3::bigint),"
                    " used_disk_gb = greatest(0, used_disk_gb - $4::bigint) WHERE name = $1",
                    4, up) < 0)
            return -1;
    }
    return 0;
}

static int finish_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    fin *f = arg;
    orch *o = f->o;
    const char *p[] = {o->id_s, f->status, f->error, o->s->name, o->status};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "UPDATE migrations SET status = $2, error = $3, finished_at = now(), updated_at = now(), lease_expires_at = NULL"
                " WHERE id = $1::bigint AND owner = $4 AND status = $5 RETURNING id",
                5, p) < 0)
        return -1;
    if (PQntuples(r) != 1) {
        *err = xasprintf("migration %lld is no longer %s under this scheduler", (long long)o->id, o->status);
        return -1;
    }
    if (strcmp(f->status, "completed") == 0) {
        /* the instance lives on the destination now; the source's allocation goes */
        const char *ip[] = {o->uuid, o->dest};
        if (db_exec(db, NULL, "UPDATE instances SET host = $2, task_state = NULL, vm_state = 'running', updated_at = now()"
                              " WHERE uuid = $1::uuid", 2, ip) < 0)
            return -1;
        if (release(db, "consumer_type = 'migration' AND migration_id = $1::bigint AND $2::text IS NULL", o->id_s, NULL) < 0)
            return -1;
        if (f->stats) {
            json_object *v;
            char dt[24] = "";
            if (json_object_object_get_ex(f->stats, "downtime_ms", &v))
                snprintf(dt, sizeof(dt), "%lld", (long long)json_object_get_int64(v));
            const char *sp[] = {o->id_s, *dt ? dt : NULL};
            if (db_exec(db, NULL, "UPDATE migrations SET downtime_ms = $2::int, memory_remaining_bytes = 0 WHERE id = $1::bigint",
                        2, sp) < 0)
                return -1;
        }
    } else if (strcmp(f->status, "failed") == 0 || strcmp(f->status, "cancelled") == 0) {
        /* the guest stays on the source: the destination's allocation goes, the source's is the
         * instance's again */
        if (release(db, "consumer_type = 'instance' AND consumer_id = $1 AND host = $2", o->uuid, o->dest) < 0)
            return -1;
        const char *ap[] = {o->id_s, o->uuid};
        if (db_exec(db, NULL,
                    "UPDATE allocations SET consumer_type = 'instance', consumer_id = $2::text, migration_id = NULL"
                    " WHERE consumer_type = 'migration' AND migration_id = $1::bigint",
                    2, ap) < 0)
            return -1;
        const char *ip[] = {o->uuid};
        if (db_exec(db, NULL, "UPDATE instances SET task_state = NULL, updated_at = now() WHERE uuid = $1::uuid", 1, ip) < 0)
            return -1;
    }
    /* error: both allocations stay and the instance stays migrating until an operator looks */
    return orch_record(o->s, o->id, "scheduler", NULL, f->status, "status", f->error);
}

static void finish(orch *o, const char *status, const char *error, json_object *stats)
{
    if (o->finishing)
        return;
    o->finishing = 1;
    fin f = {.o = o, .status = status, .error = error, .stats = stats};
    char *err = NULL;
    if (db_tx(o->s->db, "READ COMMITTED", finish_tx, &f, NULL, &err) < 0) {
        log_error(&o->lf, "could not record the end of migration %lld (%s): %s", (long long)o->id, status, err);
        free(err);
        orch_done(o);
        return;
    }
    if (strcmp(status, "completed") == 0)
        log_info(&o->lf, "migration %lld of %s from %s to %s completed", (long long)o->id, o->ec2, o->source, o->dest);
    else
        log_warn(&o->lf, "migration %lld of %s from %s to %s %s: %s", (long long)o->id, o->ec2, o->source, o->dest, status,
                 error ? error : "");
    publish_status(o->s, o->id, o->req, o->uuid, o->ec2, o->source, o->dest, status, error);
    orch_done(o);
}

/* ---- RPC ----------------------------------------------------------------------------------- */

typedef struct pending {
    int64_t id;
    step_fn next;
    char method[32];
    char host[256];
} pending;

static void fail(orch *o, const char *why);

static void on_reply(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)c;
    pending *p = arg;
    orch *o = find(p->id);
    if (!o || o->finishing) {
        free(p);
        return;
    }
    if (!ok) {
        _cleanup_free_ char *why = xasprintf("%s on %s: %s", p->method, p->host, err);
        free(p);
        fail(o, why);
        return;
    }
    msg_envelope *env = NULL;
    char *perr = NULL;
    if (msg_parse(reply->body, reply->len, &env, &perr) < 0) {
        _cleanup_free_ char *why = xasprintf("%s on %s: invalid reply: %s", p->method, p->host, perr);
        free(perr);
        free(p);
        fail(o, why);
        return;
    }
    json_object *b = msg_envelope_body(env), *okv = NULL, *ev = NULL;
    if (!json_object_object_get_ex(b, "ok", &okv) || !json_object_get_boolean(okv)) {
        json_object_object_get_ex(b, "error", &ev);
        _cleanup_free_ char *why = xasprintf("%s on %s: %s", p->method, p->host, ev ? json_object_get_string(ev) : "failed");
        msg_envelope_free(env);
        free(p);
        fail(o, why);
        return;
    }
    step_fn next = p->next;
    free(p);
    next(o, b);
    msg_envelope_free(env);
}

/* Calls method on host with body (taken); next runs with the reply body on success. */
static void call(orch *o, const char *host, const char *method, json_object *body, step_fn next)
{
    json_object_object_add(body, "migration", json_object_new_int64(o->id));
    json_object_object_add(body, "instance", json_object_new_string(o->uuid));
    _cleanup_free_ char *type = xasprintf("rpc.%s", method);
    _cleanup_free_ char *text = msg_build(type, NULL, body);
    _cleanup_free_ char *key = xasprintf("compute.%s", host);
    pending *p = xcalloc(1, sizeof(*p));
    p->id = o->id;
    p->next = next;
    strlcpy_f(p->method, method, sizeof(p->method));
    strlcpy_f(p->host, host, sizeof(p->host));
    char *err = NULL;
    log_debug(&o->lf, "rpc %s to %s", method, host);
    if (mq_rpc_call(o->s->mq, MQ_EXCHANGE, key, text, strlen(text), (int)o->s->cfg->amqp.rpc_timeout_ms, on_reply, p, &err) < 0) {
        _cleanup_free_ char *why = xasprintf("%s on %s: %s", method, host, err);
        free(err);
        free(p);
        fail(o, why);
    }
}

/* ---- the steps ----------------------------------------------------------------------------- */

static void rollback_done(orch *o, json_object *r)
{
    (void)r;
    _cleanup_free_ char *why = o->fail_reason;
    o->fail_reason = NULL;
    finish(o, strncmp(why ? why : "", "cancelled", 9) == 0 ? "cancelled" : "failed", why, NULL);
}

static void fail(orch *o, const char *why)
{
    if (o->finishing)
        return;
    log_error(&o->lf, "migration %lld failed while %s: %s", (long long)o->id, o->status, why);
    if (strcmp(o->status, "completing") == 0) {
        /* the guest moved, or may have: only an operator can tell now */
        finish(o, "error", why, NULL);
        return;
    }
    /* the guest is still on the source: undo what the destination prepared */
    free(o->fail_reason);
    o->fail_reason = xstrdup(why);
    json_object *b = json_object_new_object();
    call(o, o->dest, "rollback", b, rollback_done);
}

static void job_polled(orch *o, json_object *r);

static void poll_job(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    orch *o = arg;
    if (o->finishing || o->polling)
        return;
    o->polling = 1;
    call(o, o->source, "job_status", json_object_new_object(), job_polled);
}

static void post_done(orch *o, json_object *r)
{
    (void)r;
    finish(o, "completed", NULL, NULL);
}

static void job_polled(orch *o, json_object *r)
{
    o->polling = 0;
    json_object *v;
    const char *state = json_object_object_get_ex(r, "state", &v) ? json_object_get_string(v) : "none";
    if (strcmp(state, "running") == 0)
        return;
    event_del(o->poll_ev);
    if (strcmp(state, "completed") == 0) {
        if (transition(o, "completing", "the source's job completed") < 0) {
            orch_done(o);
            return;
        }
        call(o, o->dest, "post_live_migration", json_object_new_object(), post_done);
        return;
    }
    const char *err = json_object_object_get_ex(r, "error", &v) ? json_object_get_string(v) : "the job ended without a reason";
    _cleanup_free_ char *why = xasprintf("%s on %s: %s", strcmp(state, "cancelled") == 0 ? "cancelled" : "live migration",
                                         o->source, err);
    fail(o, why);
}

static void live_started(orch *o, json_object *r)
{
    (void)r;
    struct timeval tv = {1, 0};
    event_add(o->poll_ev, &tv);
}

static void prepared(orch *o, json_object *r)
{
    (void)r;
    o->prepared = 1;
    if (transition(o, "running", NULL) < 0) {
        orch_done(o);
        return;
    }
    json_object *b = json_object_new_object();
    json_object_object_add(b, "dest", json_object_new_string(o->dest));
    json_object_object_add(b, "dest_address", json_object_new_string(o->dest_addr));
    json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    json_object_object_add(b, "post_copy", json_object_new_boolean(o->post_copy));
    json_object_object_add(b, "postcopy_after_iterations", json_object_new_int(o->after));
    json_object_object_add(b, "auto_converge", json_object_new_boolean(o->auto_converge));
    json_object_object_add(b, "bandwidth_mib_s", json_object_new_int(o->bw));
    json_object_object_add(b, "max_downtime_ms", json_object_new_int(o->downtime));
    json_object_object_add(b, "completion_timeout_s", json_object_new_int(o->timeout));
    call(o, o->source, "live_migration", b, live_started);
}

static void dest_checked(orch *o, json_object *r)
{
    json_object *v;
    if (strcmp(o->block, "auto") == 0) {
        int shared = json_object_object_get_ex(r, "shared_storage", &v) && json_object_get_boolean(v);
        strlcpy_f(o->block, shared ? "no" : "yes", sizeof(o->block));
        log_info(&o->lf, "block_migration auto: storage %s shared, %s", shared ? "is" : "is not",
                 shared ? "no block migration" : "block migration");
    }
    if (json_object_object_get_ex(r, "address", &v) && json_object_is_type(v, json_type_string))
        strlcpy_f(o->dest_addr, json_object_get_string(v), sizeof(o->dest_addr));
    if (transition(o, "preparing", NULL) < 0) {
        orch_done(o);
        return;
    }
    json_object *b = json_object_new_object();
    json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    if (json_object_object_get_ex(o->src_check, "disks", &v))
        json_object_object_add(b, "disks", json_object_get(v));
    call(o, o->dest, "pre_live_migration", b, prepared);
}

static void source_checked(orch *o, json_object *r)
{
    json_object_put(o->src_check);
    o->src_check = json_object_get(r);
    json_object *v, *b = json_object_new_object();
    if (json_object_object_get_ex(r, "domain_xml", &v))
        json_object_object_add(b, "domain_xml", json_object_get(v));
    if (json_object_object_get_ex(r, "memory_mb", &v))
        json_object_object_add(b, "memory_mb", json_object_get(v));
    if (json_object_object_get_ex(r, "shared_probe", &v))
        json_object_object_add(b, "shared_probe", json_object_get(v));
    json_object_object_add(b, "post_copy", json_object_new_boolean(o->post_copy));
    if (strcmp(o->block, "auto") == 0)
        json_object_object_add(b, "block_migration", json_object_new_string("auto"));
    else
        json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    call(o, o->dest, "check_destination", b, dest_checked);
}

void orch_start(sched *s, int64_t id)
{
    if (find(id))
        return;
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    const char *p[] = {ids};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(s->db, &r,
                "SELECT m.request_id::text, m.instance_uuid::text, i.ec2_id, m.source_host, m.dest_host, m.status,"
                " m.block_migration, m.post_copy, m.auto_converge, m.postcopy_after_iterations, m.bandwidth_mib_s,"
                " m.max_downtime_ms, m.completion_timeout_s, coalesce(h.address, '')"
                " FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid LEFT JOIN hosts h ON h.name = m.dest_host"
                " WHERE m.id = $1::bigint",
                1, p) < 0 ||
        PQntuples(r) != 1) {
        log_error(NULL, "cannot start migration %lld: %s", (long long)id, PQntuples(r) ? db_error(s->db) : "no such row");
        return;
    }
    orch *o = xcalloc(1, sizeof(*o));
    o->s = s;
    o->id = id;
    strlcpy_f(o->id_s, ids, sizeof(o->id_s));
    strlcpy_f(o->req, PQgetvalue(r, 0, 0), sizeof(o->req));
    strlcpy_f(o->uuid, PQgetvalue(r, 0, 1), sizeof(o->uuid));
    strlcpy_f(o->ec2, PQgetvalue(r, 0, 2), sizeof(o->ec2));
    strlcpy_f(o->source, PQgetvalue(r, 0, 3), sizeof(o->source));
    strlcpy_f(o->dest, PQgetvalue(r, 0, 4), sizeof(o->dest));
    strlcpy_f(o->status, PQgetvalue(r, 0, 5), sizeof(o->status));
    strlcpy_f(o->block, PQgetvalue(r, 0, 6), sizeof(o->block));
    o->post_copy = strcmp(PQgetvalue(r, 0, 7), "t") == 0;
    o->auto_converge = strcmp(PQgetvalue(r, 0, 8), "t") == 0;
    o->after = atoi(PQgetvalue(r, 0, 9));
    o->bw = atoi(PQgetvalue(r, 0, 10));
    o->downtime = atoi(PQgetvalue(r, 0, 11));
    o->timeout = atoi(PQgetvalue(r, 0, 12));
    strlcpy_f(o->dest_addr, PQgetvalue(r, 0, 13), sizeof(o->dest_addr));
    o->lf.migration = o->id_s;
    o->lf.instance = o->ec2;
    o->lf.req = o->req;
    o->poll_ev = event_new(s->base, -1, EV_PERSIST, poll_job, o);
    o->next = all;
    all = o;
    publish_status(s, id, o->req, o->uuid, o->ec2, o->source, o->dest, o->status, NULL);
    if (strcmp(o->status, "scheduled") != 0) {
        log_warn(&o->lf, "migration %lld is %s: resuming it is not done by this scheduler yet", (long long)id, o->status);
        orch_done(o);
        return;
    }
    json_object *b = json_object_new_object();
    if (strcmp(o->block, "auto") == 0)
        json_object_object_add(b, "block_migration", json_object_new_string("auto"));
    else
        json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    call(o, o->source, "check_source", b, source_checked);
}

void orch_on_agent_event(sched *s, int64_t id, const char *what, json_object *body)
{
    orch *o = find(id);
    if (!o || o->finishing)
        return;
    if (strcmp(what, "progress") == 0) {
        int64_t now = mono_ms();
        if (now - o->last_progress_ms < s->cfg->scheduler.progress_interval_ms)
            return; /* throttled */
        o->last_progress_ms = now;
        json_object *st = NULL, *v;
        json_object_object_get_ex(body, "stats", &st);
        char tot[24] = "0", proc[24] = "0", rem[24] = "0", it[16] = "0";
        if (st && json_object_object_get_ex(st, "memory_total", &v))
            snprintf(tot, sizeof(tot), "%lld", (long long)json_object_get_int64(v));
        if (st && json_object_object_get_ex(st, "memory_processed", &v))
            snprintf(proc, sizeof(proc), "%lld", (long long)json_object_get_int64(v));
        if (st && json_object_object_get_ex(st, "memory_remaining", &v))
            snprintf(rem, sizeof(rem), "%lld", (long long)json_object_get_int64(v));
        if (st && json_object_object_get_ex(st, "iteration", &v))
            snprintf(it, sizeof(it), "%lld", (long long)json_object_get_int64(v));
        const char *p[] = {o->id_s, tot, proc, rem, it};
        if (db_exec(s->db, NULL,
                    "UPDATE migrations SET memory_total_bytes = $2::bigint, memory_processed_bytes = $3::bigint,"
                    " memory_remaining_bytes = $4::bigint, iteration = $5::int, updated_at = now() WHERE id = $1::bigint",
                    5, p) < 0)
            log_warn(&o->lf, "could not store progress: %s", db_error(s->db));
        return;
    }
    if (strcmp(what, "postcopy") == 0) {
        const char *p[] = {o->id_s};
        if (db_exec(s->db, NULL, "UPDATE migrations SET postcopy_active = true WHERE id = $1::bigint", 1, p) < 0 ||
            orch_record(s, id, "source", o->source, "running", "postcopy", "switched to post-copy") < 0)
            log_warn(&o->lf, "could not record the post-copy switch: %s", db_error(s->db));
        log_info(&o->lf, "migration %lld switched to post-copy", (long long)id);
        return;
    }
    if (strcmp(what, "completed") == 0 || strcmp(what, "failed") == 0 || strcmp(what, "cancelled") == 0) {
        /* the source says it ended: ask now rather than at the next poll */
        json_object *e = NULL;
        json_object_object_get_ex(body, "error", &e);
        if (orch_record(s, id, "source", o->source, o->status, what, e ? json_object_get_string(e) : what) < 0)
            log_warn(&o->lf, "could not record the agent's event: %s", db_error(s->db));
        poll_job(-1, 0, o);
    }
}
