/* orch: the migration status machine of DESIGN.md, driven over RPC to the agents. Each
 * transition is committed (guarded by owner, epoch and expected status) before the next RPC;
 * every transition is a migration_events row and, in the same transaction, an outbox row for
 * its migration.<id>.<status> event. Failure before the guest moved rolls the destination
 * back and releases its allocation (`failed`, or `cancelled` on an operator's abort); when the
 * truth cannot be established the status is `error`.
 *
 * Crash recovery: a replica holds a lease on each migration it drives and renews it every
 * tick; a migration whose lease expired (its replica died) is adopted by another with the
 * epoch bumped, and resumed from its recorded status by asking the agents (job_status), never
 * by guessing. A stale owner's writes carry the old epoch and change nothing. */
#include <stdlib.h>
#include <string.h>

#include "orchset.h"
#include "sched.h"

typedef struct orch orch;
typedef void (*step_fn)(orch *o, json_object *reply);

struct orch {
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
    int64_t epoch;
    char epoch_s[24];
    json_object *src_check;
    char *fail_reason;
    char *abort_reason; /* an abort was sent to the source: the reason the migration ends with */
    int gen;            /* bumped when the orchestration turns to failure: older replies are dropped */
    int prepared;
    int finishing;
    int polling;
    int postcopy;
    int abort_sent, fc_sent, deadline_hit;
    int soft_tries; /* abort / force-complete calls refused so far */
    int64_t last_progress_ms;
    int64_t lease_ms; /* monotonic time until which this replica surely holds the lease */
    struct event *poll_ev;
    log_fields lf;
};

/* the migrations this replica drives (created with the first one: the loop is known then) */
static orchset *all;

static orch *find(int64_t id)
{
    return all ? orchset_find(all, id) : NULL;
}

static void orch_free(void *arg)
{
    orch *o = arg;
    if (o->poll_ev)
        event_free(o->poll_ev);
    json_object_put(o->src_check);
    free(o->fail_reason);
    free(o->abort_reason);
    free(o);
}

/* Stops driving o: no later reply, resend or tick finds it; it is freed after the current
 * callback, once however many paths give it up in one loop pass (orchset_retire). */
static void orch_done(orch *o)
{
    o->finishing = 1;
    if (o->poll_ev)
        event_del(o->poll_ev);
    orchset_retire(all, o);
}

/* The lease as this replica knows it holds it: from before a renewal (or the transaction that
 * set it) that succeeded, lease_s less a second, on the monotonic clock. */
static int64_t lease_from(const sched *s, int64_t t0_ms)
{
    return t0_ms + s->cfg->scheduler.lease_s * 1000 - 1000;
}

/* Whether this replica may still act for o: its lease is not known lost. */
static int lease_held(const orch *o)
{
    return mono_ms() < o->lease_ms;
}

/* The lease of o is lost, or may be (another replica may adopt it now): no RPC is sent for it
 * any more, and it is neither rolled back nor completed here; it is forgotten. */
static void lease_lost(orch *o, const char *why)
{
    if (o->finishing)
        return;
    log_error(&o->lf, "migration %lld: %s: this replica stops driving it (no more RPCs; the replica that holds its"
              " lease, or adopts it, carries on)", (long long)o->id, why);
    orch_done(o);
}

/* ---- events -------------------------------------------------------------------------------- */

int orch_record(sched *s, int64_t migration, const char *origin, const char *host, const char *status, const char *kind,
                const char *message)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)migration);
    const char *p[] = {id, origin, host, status, kind, message ? message : "", s->name};
    /* a status change is also an event for ferry.events, in the outbox of the same transaction */
    return db_exec(s->db, NULL,
                   "WITH e AS (INSERT INTO migration_events (migration_id, origin, host, status, kind, message)"
                   "           VALUES ($1::bigint, $2, $3, $4, $5, $6) RETURNING id, at)"
                   " INSERT INTO outbox (routing_key, body)"
                   " SELECT 'migration.' || m.id || '.' || $4, json_strip_nulls(json_build_object("
                   "   'migration', m.id, 'status', $4::text, 'request', m.request_id, 'instance', m.instance_uuid,"
                   "   'instance_id', i.ec2_id, 'source', m.source_host, 'dest', m.dest_host, 'message', nullif($6, ''),"
                   "   'origin', 'scheduler', 'scheduler', $7::text, 'event', e.id, 'at', e.at))::text"
                   " FROM e, migrations m JOIN instances i ON i.uuid = m.instance_uuid"
                   " WHERE m.id = $1::bigint AND $5 = 'status'",
                   7, p);
}

/* ---- transitions --------------------------------------------------------------------------- */

typedef struct tr {
    orch *o;
    const char *from, *to, *message;
    int won;
} tr;

int64_t orch_deadline_s(const sched *s, const char *status)
{
    const cfg_scheduler *c = &s->cfg->scheduler;
    if (strcmp(status, "queued") == 0)
        return c->deadline_queued_s;
    if (strcmp(status, "running") == 0)
        return c->deadline_running_s;
    if (strcmp(status, "completing") == 0)
        return c->deadline_completing_s;
    return c->deadline_preparing_s;
}

static int transition_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    tr *t = arg;
    char dl[24];
    snprintf(dl, sizeof(dl), "%lld", (long long)orch_deadline_s(t->o->s, t->to));
    const char *p[] = {t->o->id_s, t->to, t->from, t->o->s->name, t->o->epoch_s, dl};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "UPDATE migrations SET status = $2, updated_at = now(), deadline_at = now() + make_interval(secs => $6::int)"
                " WHERE id = $1::bigint AND status = $3 AND owner = $4 AND epoch = $5::bigint RETURNING id",
                6, p) < 0)
        return -1;
    t->won = PQntuples(r) == 1;
    if (!t->won)
        return 0;
    return orch_record(t->o->s, t->o->id, "scheduler", NULL, t->to, "status", t->message);
}

/* Commits from -> to; 0 when done (or already there, on a resumed migration), -1 when it
 * could not (logged; the orchestration stops). */
static int transition(orch *o, const char *to, const char *message)
{
    if (strcmp(o->status, to) == 0)
        return 0;
    tr t = {.o = o, .from = o->status, .to = to, .message = message};
    char *err = NULL;
    if (db_tx(o->s->db, "READ COMMITTED", transition_tx, &t, NULL, &err) < 0) {
        log_error(&o->lf, "could not record status %s: %s", to, err);
        free(err);
        return -1;
    }
    if (!t.won) {
        log_warn(&o->lf, "migration %lld is no longer %s under this scheduler (epoch %lld): leaving it", (long long)o->id,
                 o->status, (long long)o->epoch);
        return -1;
    }
    log_info(&o->lf, "migration %lld: %s -> %s%s%s", (long long)o->id, o->status, to, message ? ": " : "", message ? message : "");
    strlcpy_f(o->status, to, sizeof(o->status));
    outbox_flush(o->s);
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

int orch_settle(db_conn *db, const char *status, const char *id_s, const char *uuid, const char *dest)
{
    if (strcmp(status, "completed") == 0) {
        /* the instance lives on the destination now; the source's allocation goes. Its host
         * holds it as of now (reported_at): another host's heartbeat cannot claim it before the
         * destination's next one lists it (hoststate.c) */
        const char *ip[] = {uuid, dest};
        if (db_exec(db, NULL,
                    "UPDATE instances SET host = $2, task_state = NULL, vm_state = 'running', reported_at = now(),"
                    " updated_at = now() WHERE uuid = $1::uuid",
                    2, ip) < 0)
            return -1;
        return release(db, "consumer_type = 'migration' AND migration_id = $1::bigint AND $2::text IS NULL", id_s, NULL);
    }
    if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0) {
        /* the guest stays on the source: the destination's allocation goes, the source's is the
         * instance's again */
        if (release(db, "consumer_type = 'instance' AND consumer_id = $1 AND host = $2", uuid, dest) < 0)
            return -1;
        const char *ap[] = {id_s, uuid};
        if (db_exec(db, NULL,
                    "UPDATE allocations SET consumer_type = 'instance', consumer_id = $2::text, migration_id = NULL"
                    " WHERE consumer_type = 'migration' AND migration_id = $1::bigint",
                    2, ap) < 0)
            return -1;
        const char *ip[] = {uuid};
        return db_exec(db, NULL,
                       "UPDATE instances SET task_state = NULL, reported_at = now(), updated_at = now() WHERE uuid = $1::uuid",
                       1, ip);
    }
    /* error: both allocations stay and the instance stays migrating until an operator looks */
    return 0;
}

static int finish_tx(db_conn *db, void *arg, char **err)
{
    fin *f = arg;
    orch *o = f->o;
    const char *p[] = {o->id_s, f->status, f->error, o->s->name, o->status, o->epoch_s};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "UPDATE migrations SET status = $2, error = $3, finished_at = now(), updated_at = now(), lease_expires_at = NULL,"
                " deadline_at = NULL WHERE id = $1::bigint AND owner = $4 AND status = $5 AND epoch = $6::bigint RETURNING id",
                6, p) < 0)
        return -1;
    if (PQntuples(r) != 1) {
        *err = xasprintf("migration %lld is no longer %s under this scheduler (epoch %lld)", (long long)o->id, o->status,
                         (long long)o->epoch);
        return -1;
    }
    if (orch_settle(db, f->status, o->id_s, o->uuid, o->dest) < 0)
        return -1;
    if (strcmp(f->status, "completed") == 0 && f->stats) {
        json_object *v;
        char dt[24] = "";
        if (json_object_object_get_ex(f->stats, "downtime_ms", &v))
            snprintf(dt, sizeof(dt), "%lld", (long long)json_object_get_int64(v));
        const char *sp[] = {o->id_s, *dt ? dt : NULL};
        if (db_exec(db, NULL, "UPDATE migrations SET downtime_ms = $2::int, memory_remaining_bytes = 0 WHERE id = $1::bigint",
                    2, sp) < 0)
            return -1;
    }
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
    outbox_flush(o->s);
    orch_done(o);
    queue_dispatch_soon(o->s); /* a slot is free: a queued migration may start */
}

/* ---- RPC ----------------------------------------------------------------------------------- */

typedef struct pending {
    int64_t id;
    step_fn next;
    int gen;
    int soft; /* an error reply is logged and recorded, the migration goes on */
    char method[32];
    char host[256];
    char *text;       /* the request, sent again after a transport failure */
    int64_t first_ms; /* when it was first sent */
    int attempts;
} pending;

static void pending_free(pending *p)
{
    if (p) {
        free(p->text);
        free(p);
    }
}

static void fail(orch *o, const char *why);
static void send_pending(pending *p, orch *o);
static void start_completing(orch *o, const char *why);

static void resend(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pending *p = arg;
    orch *o = find(p->id);
    if (!o || o->finishing || (!p->soft && p->gen != o->gen)) {
        pending_free(p);
        return;
    }
    send_pending(p, o);
}

/* The request did not reach the agent or its answer did not come back (timeout, broker away):
 * the agents' methods are idempotent per migration, so it is sent again, for up to
 * [scheduler] rpc_retry_s; then the step fails. Returns 1 when a retry is scheduled. */
static int retry_later(pending *p, orch *o, const char *err)
{
    int64_t window = o->s->cfg->scheduler.rpc_retry_s * 1000;
    if (mono_ms() - p->first_ms >= window)
        return 0;
    int delay = p->attempts < 3 ? 1 << p->attempts : 5; /* 1, 2, 4, 5, 5 ... s */
    log_warn(&o->lf, "%s to %s: %s; sending it again in %d s (attempt %d)", p->method, p->host, err, delay, p->attempts + 1);
    struct timeval tv = {delay, 0};
    event_base_once(o->s->base, -1, EV_TIMEOUT, resend, p, &tv);
    return 1;
}

static void on_reply(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)c;
    pending *p = arg;
    orch *o = find(p->id);
    if (!o || o->finishing || o->s->stopping) {
        pending_free(p);
        return;
    }
    if (!p->soft && p->gen != o->gen) {
        log_debug(&o->lf, "late reply to %s from %s dropped: the migration has turned to failure", p->method, p->host);
        pending_free(p);
        return;
    }
    if (!ok && retry_later(p, o, err))
        return;
    msg_envelope *env = NULL;
    char *perr = NULL;
    _cleanup_free_ char *why = NULL;
    json_object *b = NULL, *okv = NULL, *ev = NULL;
    if (!ok) {
        why = xasprintf("%s on %s: %s", p->method, p->host, err);
    } else if (msg_parse(reply->body, reply->len, &env, &perr) < 0) {
        why = xasprintf("%s on %s: invalid reply: %s", p->method, p->host, perr);
        free(perr);
    } else {
        b = msg_envelope_body(env);
        if (!json_object_object_get_ex(b, "ok", &okv) || !json_object_get_boolean(okv)) {
            json_object_object_get_ex(b, "error", &ev);
            why = xasprintf("%s on %s: %s", p->method, p->host, ev ? json_object_get_string(ev) : "failed");
            json_object *cv;
            const char *code = json_object_object_get_ex(b, "code", &cv) && json_object_is_type(cv, json_type_string)
                                   ? json_object_get_string(cv)
                                   : "";
            /* an agent not connected to its libvirtd (yet: it was just restarted) is asked again,
             * as for an RPC lost in transit, within rpc_retry_s; the chaos test saw a migration
             * end in error on one such answer */
            if (strcmp(code, "unavailable") == 0 && retry_later(p, o, why)) {
                msg_envelope_free(env);
                return;
            }
            if (strcmp(code, "stale_epoch") == 0) {
                /* the agent has seen a newer owner of this migration: this replica lost it and
                 * stops driving it (no rollback, no failure: the owner decides) */
                log_warn(&o->lf, "migration %lld is no longer this scheduler's (epoch %lld): %s; leaving it", (long long)o->id,
                         (long long)o->epoch, why);
                pending_free(p);
                msg_envelope_free(env);
                o->finishing = 1;
                orch_done(o);
                return;
            }
        }
    }
    step_fn next = p->next;
    int soft = p->soft;
    char method[32];
    strlcpy_f(method, p->method, sizeof(method));
    pending_free(p);
    if (why && soft) {
        log_warn(&o->lf, "%s", why);
        if (orch_record(o->s, o->id, "scheduler", NULL, o->status, method, why) < 0)
            log_warn(&o->lf, "could not record it: %s", db_error(o->s->db));
        /* an abort or force-complete that came before the source's job existed (the request
         * raced the live_migration call) is sent again from the next ticks, a few times */
        if (strcmp(method, "abort") == 0 && o->soft_tries++ < 30)
            o->abort_sent = 0;
        else if (strcmp(method, "force_complete") == 0 && o->soft_tries++ < 30)
            o->fc_sent = 0;
    } else if (why) {
        fail(o, why);
    } else {
        next(o, b);
    }
    msg_envelope_free(env);
}

static void send_pending(pending *p, orch *o)
{
    if (!lease_held(o)) {
        /* the lease may be another replica's by now: an RPC from here could undo its work */
        _cleanup_free_ char *why = xasprintf("its lease was not renewed for %lld s (lease_s): %s to %s not sent",
                                             (long long)o->s->cfg->scheduler.lease_s, p->method, p->host);
        pending_free(p);
        lease_lost(o, why);
        return;
    }
    _cleanup_free_ char *key = xasprintf("compute.%s", p->host);
    char *err = NULL;
    p->attempts++;
    log_debug(&o->lf, "rpc %s to %s", p->method, p->host);
    /* the answer counts only when the host's own agent gives it (or a scheduler's user) */
    char **from = trust_answer_senders(&o->s->cfg->trust, p->host);
    int rc = mq_rpc_call(o->s->mq, MQ_EXCHANGE, key, p->text, strlen(p->text), (int)o->s->cfg->amqp.rpc_timeout_ms,
                         (const char *const *)from, on_reply, p, &err);
    trust_list_free(from);
    if (rc < 0) {
        if (retry_later(p, o, err)) {
            free(err);
            return;
        }
        _cleanup_free_ char *why = xasprintf("%s on %s: %s", p->method, p->host, err);
        free(err);
        int soft = p->soft;
        pending_free(p);
        if (soft)
            log_warn(&o->lf, "%s", why);
        else
            fail(o, why);
    }
}

static void call_ex(orch *o, const char *host, const char *method, json_object *body, step_fn next, int soft)
{
    json_object_object_add(body, "migration", json_object_new_int64(o->id));
    json_object_object_add(body, "instance", json_object_new_string(o->uuid));
    json_object_object_add(body, "instance_id", json_object_new_string(o->ec2));
    /* the owner's epoch: an agent refuses calls with a lower one than it has seen (fencing),
     * so a replica that lost this migration to another cannot act on it any more */
    json_object_object_add(body, "epoch", json_object_new_int64(o->epoch));
    _cleanup_free_ char *type = xasprintf("rpc.%s", method);
    pending *p = xcalloc(1, sizeof(*p));
    p->text = msg_build(type, NULL, body);
    p->id = o->id;
    p->next = next;
    p->gen = o->gen;
    p->soft = soft;
    p->first_ms = mono_ms();
    strlcpy_f(p->method, method, sizeof(p->method));
    strlcpy_f(p->host, host, sizeof(p->host));
    send_pending(p, o);
}

/* Calls method on host with body (taken); next runs with the reply body on success, and the
 * migration fails on an error. */
static void call(orch *o, const char *host, const char *method, json_object *body, step_fn next)
{
    call_ex(o, host, method, body, next, 0);
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
    if (o->fail_reason && strcmp(o->status, "running") == 0 && strstr(why, "cannot roll back a migration that landed here")) {
        /* the destination says the guest runs there: it moved after all; finish the move */
        log_warn(&o->lf, "migration %lld: %s; the guest landed, completing it", (long long)o->id, why);
        free(o->fail_reason);
        o->fail_reason = NULL;
        o->gen++;
        start_completing(o, "the destination runs the guest (found by the rollback)");
        return;
    }
    if (o->fail_reason) {
        /* the rollback itself failed: the destination may hold the guest or its leftovers */
        _cleanup_free_ char *both = xasprintf("%s; then %s", o->fail_reason, why);
        log_error(&o->lf, "migration %lld: the rollback failed: %s", (long long)o->id, why);
        finish(o, "error", both, NULL);
        return;
    }
    o->gen++; /* replies to calls made before this are no longer steps */
    event_del(o->poll_ev);
    log_error(&o->lf, "migration %lld failed while %s: %s", (long long)o->id, o->status, why);
    if (strcmp(o->status, "completing") == 0) {
        /* the guest moved, or may have: only an operator can tell now */
        finish(o, "error", why, NULL);
        return;
    }
    /* the guest is still on the source: undo what the destination prepared */
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
    if (o->finishing || o->polling || o->fail_reason)
        return;
    o->polling = 1;
    call(o, o->source, "job_status", json_object_new_object(), job_polled);
}

static void post_done(orch *o, json_object *r)
{
    (void)r;
    finish(o, "completed", NULL, NULL);
}

static void start_completing(orch *o, const char *why)
{
    event_del(o->poll_ev);
    if (transition(o, "completing", why) < 0) {
        orch_done(o);
        return;
    }
    call(o, o->dest, "post_live_migration", json_object_new_object(), post_done);
}

static void resume_source_seen(orch *o, json_object *r);

static void job_polled(orch *o, json_object *r)
{
    o->polling = 0;
    json_object *v;
    const char *state = json_object_object_get_ex(r, "state", &v) ? json_object_get_string(v) : "none";
    if (strcmp(state, "none") == 0) {
        /* the source knows no job for this migration (its agent restarted without the record):
         * where the guest is tells what happened — on the source, the job is started again; gone
         * from it, the destination is asked (seen in the chaos test: a migration that had landed
         * was rolled back and ended in error) */
        event_del(o->poll_ev);
        log_warn(&o->lf, "the source knows no job for migration %lld: looking where the guest is", (long long)o->id);
        resume_source_seen(o, r);
        return;
    }
    if (json_object_object_get_ex(r, "postcopy", &v) && json_object_get_boolean(v))
        o->postcopy = 1;
    if (strcmp(state, "running") == 0)
        return;
    if (strcmp(state, "completed") == 0) {
        start_completing(o, "the source's job completed");
        return;
    }
    const char *err = json_object_object_get_ex(r, "error", &v) ? json_object_get_string(v) : "the job ended without a reason";
    _cleanup_free_ char *why = NULL;
    if (strcmp(state, "cancelled") == 0 && o->abort_reason) {
        why = xstrdup(o->abort_reason);
    } else if (o->abort_reason && strcmp(state, "failed") == 0) {
        /* asked to abort, the job may end failed rather than cancelled: the destination's QEMU
         * can see the cut stream first ("load of migration failed"), and libvirt reports that
         * (a clean-clone CI run's deadline test did). The migration ends for the abort's reason */
        log_warn(&o->lf, "migration %lld: the source's job, asked to abort, ended failed: %s", (long long)o->id, err);
        why = xstrdup(o->abort_reason);
    } else
        why = xasprintf("%s on %s: %s", strcmp(state, "cancelled") == 0 ? "cancelled" : "live migration", o->source, err);
    fail(o, why);
}

static void live_started(orch *o, json_object *r)
{
    (void)r;
    struct timeval tv = {1, 0};
    event_add(o->poll_ev, &tv);
}

static void start_live(orch *o)
{
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

static void prepared(orch *o, json_object *r)
{
    (void)r;
    o->prepared = 1;
    if (transition(o, "running", NULL) < 0) {
        orch_done(o);
        return;
    }
    start_live(o);
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

static void start_checks(orch *o)
{
    json_object *b = json_object_new_object();
    if (strcmp(o->block, "auto") == 0)
        json_object_object_add(b, "block_migration", json_object_new_string("auto"));
    else
        json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    call(o, o->source, "check_source", b, source_checked);
}

/* ---- resuming a migration this replica did not start (adopted, or after a restart) ----------- */

static int dom_running(json_object *r, int want_persistent)
{
    json_object *d, *v;
    if (!json_object_object_get_ex(r, "domain", &d))
        return 0;
    if (!json_object_object_get_ex(d, "exists", &v) || !json_object_get_boolean(v))
        return 0;
    if (!json_object_object_get_ex(d, "state", &v) || strcmp(json_object_get_string(v), "running") != 0)
        return 0;
    return !want_persistent || (json_object_object_get_ex(d, "persistent", &v) && json_object_get_boolean(v));
}

static void resume_dest_seen(orch *o, json_object *r)
{
    if (dom_running(r, 1)) {
        start_completing(o, "resumed: the source has neither job nor domain, the guest runs on the destination");
        return;
    }
    finish(o, "error", "resumed: the source knows no job and has no domain, and the guest does not run on the destination", NULL);
}

static void resume_source_seen(orch *o, json_object *r)
{
    json_object *v;
    const char *state = json_object_object_get_ex(r, "state", &v) ? json_object_get_string(v) : "none";
    log_info(&o->lf, "resumed migration %lld: the source's job is %s", (long long)o->id, state);
    if (strcmp(state, "none") != 0) {
        job_polled(o, r);
        if (strcmp(state, "running") == 0) {
            struct timeval tv = {1, 0};
            event_add(o->poll_ev, &tv);
        }
        return;
    }
    json_object *d, *ex;
    int exists = json_object_object_get_ex(r, "domain", &d) && json_object_object_get_ex(d, "exists", &ex) &&
                 json_object_get_boolean(ex);
    if (exists) {
        /* the guest is on the source and no job for this migration was ever known there: the
         * live_migration call was lost with the replica that made it */
        log_info(&o->lf, "the source has no job for migration %lld and still runs the guest: starting it", (long long)o->id);
        start_live(o);
        return;
    }
    call(o, o->dest, "job_status", json_object_new_object(), resume_dest_seen);
}

/* ---- start, adopt, renew ------------------------------------------------------------------ */

void orch_start(sched *s, int64_t id)
{
    if (find(id))
        return;
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    const char *p[] = {ids, s->name};
    _cleanup_pq_ PGresult *r = NULL;
    int64_t t0 = mono_ms();
    if (db_exec(s->db, &r,
                "SELECT m.request_id::text, m.instance_uuid::text, i.ec2_id, m.source_host, m.dest_host, m.status,"
                " m.block_migration, m.post_copy, m.auto_converge, m.postcopy_after_iterations, m.bandwidth_mib_s,"
                " m.max_downtime_ms, m.completion_timeout_s, coalesce(h.address, ''), m.epoch, m.postcopy_active"
                " FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid LEFT JOIN hosts h ON h.name = m.dest_host"
                " WHERE m.id = $1::bigint AND m.owner = $2 AND m.finished_at IS NULL",
                2, p) < 0 ||
        PQntuples(r) != 1) {
        log_error(NULL, "cannot drive migration %lld: %s", (long long)id,
                  r ? "it is not an unfinished migration of this scheduler" : db_error(s->db));
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
    o->epoch = atoll(PQgetvalue(r, 0, 14));
    strlcpy_f(o->epoch_s, PQgetvalue(r, 0, 14), sizeof(o->epoch_s));
    o->postcopy = strcmp(PQgetvalue(r, 0, 15), "t") == 0;
    o->lf.migration = o->id_s;
    o->lf.instance = o->ec2;
    o->lf.req = o->req;
    /* the lease was set (or renewed) by the transaction that gave it to this replica */
    o->lease_ms = lease_from(s, t0);
    o->poll_ev = event_new(s->base, -1, EV_PERSIST, poll_job, o);
    if (!all)
        all = orchset_new(s->base, orch_free);
    orchset_add(all, o->id, o);
    if (strcmp(o->status, "scheduled") == 0 || strcmp(o->status, "preparing") == 0) {
        /* nothing has moved yet: checks and preparation are idempotent, run them (again) */
        start_checks(o);
    } else if (strcmp(o->status, "running") == 0) {
        call(o, o->source, "job_status", json_object_new_object(), resume_source_seen);
    } else if (strcmp(o->status, "completing") == 0) {
        call(o, o->dest, "post_live_migration", json_object_new_object(), post_done);
    } else {
        log_warn(&o->lf, "migration %lld is %s: nothing for the orchestration to do", (long long)id, o->status);
        orch_done(o);
    }
}

typedef struct adopt_ctx {
    sched *s;
    const char *active;
    int own_only;
    int64_t ids[16];
    int n;
} adopt_ctx;

static int adopt_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    adopt_ctx *a = arg;
    a->n = 0;
    char lease[24];
    snprintf(lease, sizeof(lease), "%lld", (long long)a->s->cfg->scheduler.lease_s);
    const char *p[] = {a->s->name, a->active, lease, a->own_only ? "true" : "false"};
    _cleanup_pq_ PGresult *r = NULL;
    /* expired leases (their replica died or lost the database), and, at this replica's start,
     * its own migrations: it knows it is not driving them */
    if (db_exec(db, &r,
                "WITH c AS (SELECT id, owner, lease_expires_at FROM migrations"
                "   WHERE status IN ('scheduled', 'preparing', 'running', 'completing')"
                "   AND (($4::boolean AND owner = $1) OR (NOT $4::boolean AND (lease_expires_at IS NULL OR lease_expires_at < now())))"
                "   AND NOT (id = ANY ($2::bigint[]))"
                "   ORDER BY id LIMIT 16 FOR UPDATE SKIP LOCKED)"
                " UPDATE migrations m SET owner = $1, epoch = m.epoch + 1, updated_at = now(),"
                "   lease_expires_at = now() + make_interval(secs => $3::int)"
                " FROM c WHERE m.id = c.id"
                " RETURNING m.id, coalesce(c.owner, ''), m.status, m.epoch,"
                "   coalesce(extract(epoch FROM now() - c.lease_expires_at)::bigint, 0)",
                4, p) < 0)
        return -1;
    for (int i = 0; i < PQntuples(r) && a->n < 16; i++) {
        int64_t id = atoll(PQgetvalue(r, i, 0));
        const char *from = PQgetvalue(r, i, 1);
        _cleanup_free_ char *msg =
            strcmp(from, a->s->name) == 0
                ? xasprintf("resumed by %s after its restart, epoch %s", a->s->name, PQgetvalue(r, i, 3))
                : xasprintf("adopted by %s from %s (lease expired %s s ago), epoch %s", a->s->name, *from ? from : "nobody",
                            PQgetvalue(r, i, 4), PQgetvalue(r, i, 3));
        if (orch_record(a->s, id, "scheduler", NULL, PQgetvalue(r, i, 2), "adopted", msg) < 0)
            return -1;
        a->ids[a->n++] = id;
    }
    return 0;
}

/* The ids of the migrations this replica drives, as a PostgreSQL array literal. */
static char *active_ids(void)
{
    size_t cap = 64, len = 0;
    char *buf = xcalloc(1, cap);
    buf[len++] = '{';
    int nids = 0;
    _cleanup_free_ int64_t *idv = all ? orchset_ids(all, &nids) : NULL;
    for (int k = 0; k < nids; k++) {
        char one[32];
        int n = snprintf(one, sizeof(one), "%s%lld", len > 1 ? "," : "", (long long)idv[k]);
        if (len + (size_t)n + 2 > cap) {
            cap = cap * 2 + (size_t)n;
            buf = xrealloc(buf, cap);
        }
        memcpy(buf + len, one, (size_t)n);
        len += (size_t)n;
    }
    buf[len++] = '}';
    buf[len] = 0;
    return buf;
}

static void act_on_requests(orch *o, int abort_req, int fc_req, int past_deadline);

static void fc_done(orch *o, json_object *r)
{
    json_object *v;
    const char *action = json_object_object_get_ex(r, "action", &v) ? json_object_get_string(v) : "?";
    _cleanup_free_ char *msg = xasprintf("force-complete on %s: %s", o->source,
                                         strcmp(action, "postcopy") == 0 ? "switched to post-copy" : "guest paused to finish");
    log_info(&o->lf, "migration %lld: %s", (long long)o->id, msg);
    if (orch_record(o->s, o->id, "scheduler", NULL, o->status, "force_complete", msg) < 0)
        log_warn(&o->lf, "could not record it: %s", db_error(o->s->db));
}

static void abort_sent(orch *o, json_object *r)
{
    (void)r;
    log_info(&o->lf, "migration %lld: the source aborts its job (%s)", (long long)o->id, o->abort_reason);
}

static void act_on_requests(orch *o, int abort_req, int fc_req, int past_deadline)
{
    if (o->finishing || o->fail_reason)
        return;
    int early = strcmp(o->status, "scheduled") == 0 || strcmp(o->status, "preparing") == 0;
    int running = strcmp(o->status, "running") == 0;
    if (past_deadline && !o->deadline_hit) {
        o->deadline_hit = 1;
        int64_t secs = orch_deadline_s(o->s, o->status);
        if (strcmp(o->status, "completing") == 0) {
            _cleanup_free_ char *why = xasprintf("deadline: still completing after %lld s (deadline_completing_s)", (long long)secs);
            log_error(&o->lf, "migration %lld: %s", (long long)o->id, why);
            finish(o, "error", why, NULL);
            return;
        }
        if (early) {
            _cleanup_free_ char *why = xasprintf("deadline: still %s after %lld s (deadline_preparing_s)", o->status, (long long)secs);
            fail(o, why);
            return;
        }
        if (running && !o->postcopy && !o->abort_sent) {
            o->abort_sent = 1;
            free(o->abort_reason);
            o->abort_reason = xasprintf("deadline: still running after %lld s (deadline_running_s): aborted", (long long)secs);
            call_ex(o, o->source, "abort", json_object_new_object(), abort_sent, 1);
        } else if (running) {
            log_warn(&o->lf, "migration %lld is past its deadline but in post-copy: it can only go forward", (long long)o->id);
        }
    }
    if (abort_req && !o->abort_sent) {
        if (early) {
            o->abort_sent = 1;
            fail(o, "cancelled: aborted by the operator");
            return;
        }
        if (running && !o->postcopy) {
            o->abort_sent = 1;
            free(o->abort_reason);
            o->abort_reason = xstrdup("cancelled: aborted by the operator");
            call_ex(o, o->source, "abort", json_object_new_object(), abort_sent, 1);
        }
    }
    if (fc_req && !o->fc_sent && running) {
        o->fc_sent = 1;
        call_ex(o, o->source, "force_complete", json_object_new_object(), fc_done, 1);
    }
}

void orch_tick(sched *s, int starting)
{
    /* renew the leases of what this replica drives; read the operators' requests and the
     * deadlines on the way */
    int nids = 0;
    _cleanup_free_ int64_t *idv = all ? orchset_ids(all, &nids) : NULL;
    if (nids > 0) {
        size_t cap = 64, len = 1;
        char *ids = xcalloc(1, cap), *eps = xcalloc(1, cap);
        ids[0] = '{';
        size_t elen = 1;
        eps[0] = '{';
        for (int k = 0; k < nids; k++) {
            orch *o = find(idv[k]);
            if (!o || o->finishing)
                continue;
            char a[32], b[32];
            int na = snprintf(a, sizeof(a), "%s%lld", len > 1 ? "," : "", (long long)o->id);
            int nb = snprintf(b, sizeof(b), "%s%lld", elen > 1 ? "," : "", (long long)o->epoch);
            if (len + (size_t)na + 2 > cap || elen + (size_t)nb + 2 > cap) {
                cap = cap * 2 + 64;
                ids = xrealloc(ids, cap);
                eps = xrealloc(eps, cap);
            }
            memcpy(ids + len, a, (size_t)na);
            len += (size_t)na;
            memcpy(eps + elen, b, (size_t)nb);
            elen += (size_t)nb;
        }
        ids[len++] = '}';
        ids[len] = 0;
        eps[elen++] = '}';
        eps[elen] = 0;
        char lease[24];
        snprintf(lease, sizeof(lease), "%lld", (long long)s->cfg->scheduler.lease_s);
        const char *p[] = {ids, eps, lease, s->name};
        _cleanup_pq_ PGresult *r = NULL;
        int64_t t0 = mono_ms();
        if (db_exec(s->db, &r,
                    "UPDATE migrations m SET lease_expires_at = now() + make_interval(secs => $3::int)"
                    " FROM unnest($1::bigint[], $2::bigint[]) AS u(id, epoch)"
                    " WHERE m.id = u.id AND m.epoch = u.epoch AND m.owner = $4 AND m.finished_at IS NULL"
                    " RETURNING m.id, m.abort_requested, m.force_complete_requested, coalesce(m.deadline_at < now(), false),"
                    "   m.postcopy_active",
                    4, p) < 0) {
            log_warn(NULL, "could not renew the leases of this scheduler's migrations: %s", db_error(s->db));
            /* a lease not renewed in time may be adopted by another replica at any moment */
            for (int k = 0; k < nids; k++) {
                orch *o = find(idv[k]);
                if (!o || o->finishing || lease_held(o))
                    continue;
                _cleanup_free_ char *why = xasprintf("could not renew its lease for %lld s (lease_s): %s",
                                                     (long long)s->cfg->scheduler.lease_s, db_error(s->db));
                lease_lost(o, why);
            }
        } else {
            for (int k = 0; k < nids; k++) {
                orch *o = find(idv[k]);
                if (!o || o->finishing)
                    continue;
                int seen = 0;
                for (int i = 0; i < PQntuples(r) && !seen; i++) {
                    if (atoll(PQgetvalue(r, i, 0)) != o->id)
                        continue;
                    seen = 1;
                    o->lease_ms = lease_from(s, t0);
                    if (strcmp(PQgetvalue(r, i, 4), "t") == 0)
                        o->postcopy = 1;
                    act_on_requests(o, strcmp(PQgetvalue(r, i, 1), "t") == 0, strcmp(PQgetvalue(r, i, 2), "t") == 0,
                                    strcmp(PQgetvalue(r, i, 3), "t") == 0);
                }
                if (!seen) {
                    _cleanup_free_ char *why = xasprintf("its lease could not be renewed: the row is no longer this"
                                                         " replica's at epoch %lld (adopted by another replica, or ended)",
                                                         (long long)o->epoch);
                    lease_lost(o, why);
                }
            }
        }
        free(ids);
        free(eps);
    }
    /* adopt what nobody drives any more */
    _cleanup_free_ char *active = active_ids();
    adopt_ctx a = {.s = s, .active = active, .own_only = starting};
    char *err = NULL;
    if (db_tx(s->db, "READ COMMITTED", adopt_tx, &a, NULL, &err) < 0) {
        log_warn(NULL, "could not look for migrations to adopt: %s", err);
        free(err);
        return;
    }
    for (int i = 0; i < a.n; i++) {
        char ids[24];
        snprintf(ids, sizeof(ids), "%lld", (long long)a.ids[i]);
        log_fields f = {.migration = ids};
        log_warn(&f, "migration %lld adopted by %s%s: resuming it from what the agents say", (long long)a.ids[i], s->name,
                 starting ? " at its start" : " (the lease of its owner expired)");
        orch_start(s, a.ids[i]);
    }
}

int orch_count(void)
{
    int n = 0, nids = 0;
    _cleanup_free_ int64_t *idv = all ? orchset_ids(all, &nids) : NULL;
    for (int k = 0; k < nids; k++) {
        orch *o = find(idv[k]);
        n += o && !o->finishing;
    }
    return n;
}

void orch_poke(sched *s, int64_t id)
{
    (void)s;
    orch *o = find(id);
    if (!o)
        return;
    const char *p[] = {o->id_s};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(s->db, &r,
                "SELECT abort_requested, force_complete_requested, coalesce(deadline_at < now(), false) FROM migrations"
                " WHERE id = $1::bigint",
                1, p) < 0 ||
        PQntuples(r) != 1)
        return;
    act_on_requests(o, strcmp(PQgetvalue(r, 0, 0), "t") == 0, strcmp(PQgetvalue(r, 0, 1), "t") == 0,
                    strcmp(PQgetvalue(r, 0, 2), "t") == 0);
}

/* ---- what the agents report --------------------------------------------------------------- */

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

void orch_on_agent_event(sched *s, int64_t id, const char *what, json_object *body)
{
    /* any replica records what an agent says (each event reaches one of them); the owner, if it
     * is this one, acts on it */
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    log_fields f = {.migration = ids, .host = jstr(body, "host")};
    orch *o = find(id);
    if (o)
        f = o->lf;
    if (strcmp(what, "progress") == 0) {
        json_object *st = NULL, *v;
        json_object_object_get_ex(body, "stats", &st);
        char tot[24] = "0", proc[24] = "0", rem[24] = "0", it[16] = "0", ms[24];
        if (st && json_object_object_get_ex(st, "memory_total", &v))
            snprintf(tot, sizeof(tot), "%lld", (long long)json_object_get_int64(v));
        if (st && json_object_object_get_ex(st, "memory_processed", &v))
            snprintf(proc, sizeof(proc), "%lld", (long long)json_object_get_int64(v));
        if (st && json_object_object_get_ex(st, "memory_remaining", &v))
            snprintf(rem, sizeof(rem), "%lld", (long long)json_object_get_int64(v));
        if (st && json_object_object_get_ex(st, "iteration", &v))
            snprintf(it, sizeof(it), "%lld", (long long)json_object_get_int64(v));
        snprintf(ms, sizeof(ms), "%lld", (long long)s->cfg->scheduler.progress_interval_ms);
        const char *p[] = {ids, tot, proc, rem, it, ms};
        /* stored at most every progress_interval_ms (throttled in the row itself, whichever
         * replica gets the event) */
        if (db_exec(s->db, NULL,
                    "UPDATE migrations SET memory_total_bytes = $2::bigint, memory_processed_bytes = $3::bigint,"
                    " memory_remaining_bytes = $4::bigint, iteration = $5::int, updated_at = now()"
                    " WHERE id = $1::bigint AND status = 'running'"
                    " AND updated_at < now() - make_interval(secs => $6::int / 1000.0)",
                    6, p) < 0)
            log_warn(&f, "could not store progress: %s", db_error(s->db));
        return;
    }
    if (strcmp(what, "postcopy") == 0) {
        const char *p[] = {ids};
        if (db_exec(s->db, NULL, "UPDATE migrations SET postcopy_active = true WHERE id = $1::bigint", 1, p) < 0 ||
            orch_record(s, id, "source", jstr(body, "host"), "running", "postcopy", "switched to post-copy") < 0)
            log_warn(&f, "could not record the post-copy switch: %s", db_error(s->db));
        if (o)
            o->postcopy = 1;
        log_info(&f, "migration %lld switched to post-copy", (long long)id);
        return;
    }
    if (strcmp(what, "completed") == 0 || strcmp(what, "failed") == 0 || strcmp(what, "cancelled") == 0) {
        const char *e = jstr(body, "error");
        if (orch_record(s, id, "source", jstr(body, "host"), NULL, what, e ? e : what) < 0)
            log_warn(&f, "could not record the agent's event: %s", db_error(s->db));
        json_object *st = NULL, *v;
        if (strcmp(what, "completed") == 0 && json_object_object_get_ex(body, "stats", &st)) {
            /* the final figures of the source's job */
            char dt[24] = "", mem[24] = "", tot[24] = "", it[24] = "";
            if (json_object_object_get_ex(st, "downtime_ms", &v))
                snprintf(dt, sizeof(dt), "%lld", (long long)json_object_get_int64(v));
            if (json_object_object_get_ex(st, "memory_processed", &v))
                snprintf(mem, sizeof(mem), "%lld", (long long)json_object_get_int64(v));
            if (json_object_object_get_ex(st, "memory_total", &v))
                snprintf(tot, sizeof(tot), "%lld", (long long)json_object_get_int64(v));
            if (json_object_object_get_ex(st, "iteration", &v))
                snprintf(it, sizeof(it), "%lld", (long long)json_object_get_int64(v));
            const char *p[] = {ids, *dt ? dt : NULL, *mem ? mem : NULL, *tot ? tot : NULL, *it ? it : NULL};
            if (db_exec(s->db, NULL,
                        "UPDATE migrations SET downtime_ms = coalesce($2::int, downtime_ms),"
                        " memory_processed_bytes = coalesce($3::bigint, memory_processed_bytes),"
                        " memory_total_bytes = coalesce($4::bigint, memory_total_bytes),"
                        " iteration = greatest(iteration, coalesce($5::int, 0)), memory_remaining_bytes = 0"
                        " WHERE id = $1::bigint",
                        5, p) < 0)
                log_warn(&f, "could not store the final figures: %s", db_error(s->db));
        }
        /* the source says it ended: ask now rather than at the next poll */
        if (o && !o->finishing && strcmp(o->status, "running") == 0)
            poll_job(-1, 0, o);
    }
}
