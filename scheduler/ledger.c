/* ledger: migration events and their outbox rows, the settling of an ended migration's
 * allocations, the cancellation of a queued migration, the deadlines (ledger.h). */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"

int64_t ledger_deadline_s(const sched *s, mig_status st)
{
    return ledger_deadline_cfg(&s->cfg->scheduler, st);
}

int64_t ledger_deadline_cfg(const cfg_scheduler *c, mig_status st)
{
    switch (st) {
    case MIG_QUEUED:
        return c->deadline_queued_s;
    case MIG_RUNNING:
        return c->deadline_running_s;
    case MIG_COMPLETING:
        return c->deadline_completing_s;
    default:
        return c->deadline_preparing_s;
    }
}

int ledger_record(db_conn *db, const char *scheduler, int64_t migration, const char *origin, const char *host,
                  mig_status st, const char *kind, const char *message)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)migration);
    const char *status = st == LEDGER_NO_STATUS ? NULL : mig_status_str(st);
    const char *p[] = {id, origin, host, status, kind, message ? message : "", scheduler};
    /* a status change is also an event for ferry.events, in the outbox of the same transaction */
    return db_exec(
        db, NULL,
        "WITH e AS (INSERT INTO migration_events (migration_id, origin, host, status, kind, message)"
        "           VALUES ($1::bigint, $2, $3, $4, $5, $6) RETURNING id, at)"
        " INSERT INTO outbox (routing_key, body)"
        " SELECT 'migration.' || m.id || '.' || $4, json_strip_nulls(json_build_object("
        "   'migration', m.id, 'status', $4::text, 'request', m.request_id, 'instance', m.instance_uuid,"
        "   'instance_id', i.ec2_id, 'source', m.source_host, 'dest', m.dest_host, 'message', nullif($6, ''),"
        "   'origin', 'scheduler', 'scheduler', $7::text, 'event', e.id, 'at', e.at, 'receipt', m.receipt))::text"
        " FROM e, migrations m JOIN instances i ON i.uuid = m.instance_uuid"
        " WHERE m.id = $1::bigint AND $5 = 'status'",
        7, p);
}

int ledger_give_back(db_conn *db, PGresult *rows)
{
    for (int i = 0; i < PQntuples(rows); i++) {
        const char *up[] = {PQgetvalue(rows, i, 0), PQgetvalue(rows, i, 1), PQgetvalue(rows, i, 2),
                            PQgetvalue(rows, i, 3)};
        if (db_exec(db, NULL,
                    "UPDATE hosts SET used_vcpus = greatest(0, used_vcpus - $2::int),"
                    " used_memory_mb = greatest(0, used_memory_mb - $3::bigint),"
                    " used_disk_gb = greatest(0, used_disk_gb - $4::bigint) WHERE name = $1",
                    4, up) < 0)
            return -1;
    }
    return 0;
}

/* Deletes the allocations where_sql ($1, $2: a and b) selects and gives their resources back
 * to their hosts. */
static int release(db_conn *db, const char *where_sql, const char *a, const char *b)
{
    const char *p[] = {a, b};
    _cleanup_pq_ PGresult *r = NULL;
    _cleanup_free_ char *sql =
        xasprintf("DELETE FROM allocations WHERE %s RETURNING host, vcpus, memory_mb, disk_gb", where_sql);
    if (db_exec(db, &r, sql, 2, p) < 0)
        return -1;
    return ledger_give_back(db, r);
}

int ledger_settle(db_conn *db, mig_status st, const char *id_s, const char *uuid, const char *dest)
{
    if (st == MIG_COMPLETED) {
        /* the instance lives on the destination now; the source's allocation goes. Its host
         * holds it as of now (reported_at): another host's heartbeat cannot claim it before the
         * destination's next one lists it (hoststate.c) */
        const char *ip[] = {uuid, dest};
        if (db_exec(db, NULL,
                    "UPDATE instances SET host = $2, task_state = NULL, vm_state = 'running', reported_at = now(),"
                    " updated_at = now() WHERE uuid = $1::uuid",
                    2, ip) < 0)
            return -1;
        return release(db, "consumer_type = 'migration' AND migration_id = $1::bigint AND $2::text IS NULL", id_s,
                       NULL);
    }
    if (st == MIG_FAILED || st == MIG_CANCELLED) {
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
        return db_exec(
            db, NULL,
            "UPDATE instances SET task_state = NULL, reported_at = now(), updated_at = now() WHERE uuid = $1::uuid", 1,
            ip);
    }
    /* error: both allocations stay and the instance stays migrating until an operator looks */
    return 0;
}

int ledger_cancel_queued(sched *s, db_conn *db, const char *id_s, const char *uuid, const char *dest, const char *why)
{
    const char *p[] = {id_s, why};
    if (db_exec(db, NULL,
                "UPDATE migrations SET status = 'cancelled', error = $2, finished_at = now(), updated_at = now(),"
                " deadline_at = NULL WHERE id = $1::bigint",
                2, p) < 0 ||
        ledger_settle(db, MIG_CANCELLED, id_s, uuid, dest) < 0)
        return -1;
    return ledger_record(db, s->name, atoll(id_s), "scheduler", NULL, MIG_CANCELLED, "status", why);
}

/* ---- one event recorded later, by the database worker ---------------------------------------- */

typedef struct later_rec {
    const char *name; /* the replica's (fixed) */
    int64_t migration;
    mig_status st;
    char *origin, *host, *kind, *message, *what;
    char f_mig[24], f_inst[40], f_host[256], f_req[40];
    int has_inst, has_host, has_req;
} later_rec;

static int later_work(db_conn *db, void *arg, char **err)
{
    later_rec *l = arg;
    if (ledger_record(db, l->name, l->migration, l->origin, l->host, l->st, l->kind, l->message) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    return 0;
}

static void later_done(void *arg, int rc, char *err)
{
    later_rec *l = arg;
    if (rc < 0) {
        log_fields f = {.migration = l->f_mig,
                        .instance = l->has_inst ? l->f_inst : NULL,
                        .host = l->has_host ? l->f_host : NULL,
                        .req = l->has_req ? l->f_req : NULL};
        log_warn(&f, "could not %s: %s", l->what, err);
    }
    free(err);
    free(l->origin);
    free(l->host);
    free(l->kind);
    free(l->message);
    free(l->what);
    free(l);
}

void ledger_record_later(sched *s, const log_fields *f, int64_t migration, const char *origin, const char *host,
                         mig_status st, const char *kind, const char *message, const char *what)
{
    later_rec *l = xcalloc(1, sizeof(*l));
    l->name = s->name;
    l->migration = migration;
    l->st = st;
    l->origin = xstrdup(origin);
    l->host = host ? xstrdup(host) : NULL;
    l->kind = xstrdup(kind);
    l->message = message ? xstrdup(message) : NULL;
    l->what = xstrdup(what);
    snprintf(l->f_mig, sizeof(l->f_mig), "%lld", (long long)migration);
    if (f && f->instance) {
        l->has_inst = 1;
        strlcpy_f(l->f_inst, f->instance, sizeof(l->f_inst));
    }
    if (f && f->host) {
        l->has_host = 1;
        strlcpy_f(l->f_host, f->host, sizeof(l->f_host));
    }
    if (f && f->req) {
        l->has_req = 1;
        strlcpy_f(l->f_req, f->req, sizeof(l->f_req));
    }
    dbq_submit(s->dbq, later_work, later_done, l);
}
