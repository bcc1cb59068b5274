/* lease: every second, this replica renews the lease of each migration it drives (one
 * statement for all of them; a migration whose row is no longer its own at its epoch is given
 * up), hands the operators' requests and passed deadlines read on the way to the status machine
 * (orch_act), and adopts the migrations whose lease expired — their replica died — with the
 * epoch bumped, resuming them from what the agents say (orch_start). At its start a replica
 * resumes its own migrations instead. Above orch.c; the lease as known in memory is orchcore's. */
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "ledger.h"
#include "orchcore.h"

/* One tick's leases and adoption, run by the database worker: what the loop knew when it
 * submitted (copied), and what the database said. */
typedef struct adopt_ctx {
    sched *s; /* for the continuation only: the worker reads name, which never changes */
    const char *name;
    char *ids, *eps; /* the migrations driven as an array literal, and a JSON object of their
                      * epochs by id; NULL: none */
    int64_t *asked;  /* the same ids, sorted */
    size_t nasked;
    char lease[24];
    char *active;
    int own_only;
    int renew_only;      /* the broker is away: renew, act on nothing, adopt nothing */
    char started_at[64]; /* own_only: only migrations made before this process met the database
                          * (a request taken since is driven already, or about to be) */
    /* renewal */
    int64_t t0;        /* mono_ms() before the renewal */
    PGresult *renewed; /* NULL when it failed (renew_err) */
    char *renew_err;
    /* adoption */
    int64_t adopt_ids[16];
    int n;
} adopt_ctx;

static int adopt_tx(db_conn *db, void *arg, char **err)
{
    adopt_ctx *a = arg;
    a->n = 0;
    const char *p[] = {a->name, a->active, a->lease, a->own_only ? "true" : "false", a->started_at};
    _cleanup_pq_ PGresult *r = NULL;
    /* expired leases (their replica died or lost the database), and, at this replica's start,
     * its own migrations from before it started: it knows it is not driving them (not one it
     * claimed since, which it drives or gave up: requests may be taken before the first tick) */
    if (db_exec(db, &r,
                "WITH c AS (SELECT id, owner, lease_expires_at FROM migrations"
                "   WHERE status IN ('scheduled', 'preparing', 'running', 'completing')"
                "   AND (($4::boolean AND owner = $1 AND created_at < $5::timestamptz)"
                "        OR (NOT $4::boolean AND (lease_expires_at IS NULL OR lease_expires_at < now())))"
                "   AND NOT (id = ANY ($2::bigint[]))"
                "   ORDER BY id LIMIT 16 FOR UPDATE SKIP LOCKED)"
                " UPDATE migrations m SET owner = $1, epoch = m.epoch + 1, updated_at = now(),"
                "   lease_expires_at = now() + make_interval(secs => $3::int)"
                " FROM c WHERE m.id = c.id"
                " RETURNING m.id, coalesce(c.owner, ''), m.status, m.epoch,"
                "   coalesce(extract(epoch FROM now() - c.lease_expires_at)::bigint, 0)",
                5, p) < 0)
        return -1;
    for (int i = 0; i < PQntuples(r) && a->n < 16; i++) {
        int64_t id = atoll(PQgetvalue(r, i, 0));
        mig_status st; /* one of the four the statement selects */
        const char *from = PQgetvalue(r, i, 1);
        _cleanup_free_ char *msg =
            strcmp(from, a->name) == 0
                ? xasprintf("resumed by %s after its restart, epoch %s", a->name, PQgetvalue(r, i, 3))
                : xasprintf("adopted by %s from %s (lease expired %s s ago), epoch %s", a->name,
                            *from ? from : "nobody", PQgetvalue(r, i, 4), PQgetvalue(r, i, 3));
        if (mig_status_from_str(PQgetvalue(r, i, 2), &st) < 0) {
            *err = xasprintf("migration %lld has an unknown status '%s'", (long long)id, PQgetvalue(r, i, 2));
            return -1;
        }
        if (ledger_record(db, a->name, id, "scheduler", NULL, st, "adopted", msg) < 0)
            return -1;
        a->adopt_ids[a->n++] = id;
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
    _cleanup_free_ int64_t *idv = orchcore_ids(&nids);
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

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The row of migration id among the renewal's rows r (ordered by id), or -1. */
static int renewed_row(PGresult *r, int64_t id)
{
    int lo = 0, hi = PQntuples(r) - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int64_t v = atoll(PQgetvalue(r, mid, 0));
        if (v == id)
            return mid;
        if (v < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* On the worker: the renewal of the leases driven (one statement: its rows found by id, each
 * one's epoch checked in a JSON object, so the plan does not hang on the table's statistics;
 * sql/017), then the adoption. */
static int lease_work(db_conn *db, void *arg, char **err)
{
    adopt_ctx *a = arg;
    if (a->ids) {
        const char *p[] = {a->ids, a->eps, a->lease, a->name};
        a->t0 = mono_ms();
        if (db_exec(
                db, &a->renewed,
                "WITH r AS (UPDATE migrations m SET lease_expires_at = now() + make_interval(secs => $3::int)"
                " WHERE m.id = ANY($1::bigint[]) AND m.epoch = ($2::jsonb ->> m.id::text)::bigint AND m.owner = $4"
                " AND m.finished_at IS NULL"
                " RETURNING m.id, m.abort_requested, m.force_complete_requested, coalesce(m.deadline_at < now(), false),"
                "   m.postcopy_active, coalesce(m.bandwidth_target, 0))"
                " SELECT * FROM r ORDER BY id",
                4, p) < 0)
            a->renew_err = xstrdup(db_error(db));
    }
    if (a->renew_only)
        return 0;
    return db_tx(db, "READ COMMITTED", adopt_tx, a, NULL, err);
}

static void adopt_ctx_free(adopt_ctx *a)
{
    free(a->ids);
    free(a->eps);
    free(a->asked);
    free(a->active);
    if (a->renewed)
        PQclear(a->renewed);
    free(a->renew_err);
    free(a);
}

/* On the loop: what the renewal returned, for each migration still driven here (looked up
 * again by id: one may have ended meanwhile), then the adopted ones started. */
static void lease_done(void *arg, int rc, char *err)
{
    adopt_ctx *a = arg;
    sched *s = a->s;
    s->lease_busy = 0;
    if (s->stopping) { /* run by the stop: nothing is driven any more */
        free(err);
        adopt_ctx_free(a);
        return;
    }
    if (a->ids && !a->renewed) {
        const char *why_db = a->renew_err ? a->renew_err : err ? err : "the database worker could not run it";
        log_warn(NULL, "could not renew the leases of this scheduler's migrations: %s", why_db);
        /* a lease not renewed in time may be adopted by another replica at any moment */
        int nids = 0;
        _cleanup_free_ int64_t *idv = orchcore_ids(&nids);
        for (int k = 0; k < nids; k++) {
            orch *o = orchcore_find(idv[k]);
            if (!o || o->finishing || orchcore_lease_held(o))
                continue;
            _cleanup_free_ char *why = xasprintf("could not renew its lease for %lld s (lease_s): %s",
                                                 (long long)s->cfg->scheduler.lease_s, why_db);
            orchcore_lease_lost(o, why);
        }
    } else if (a->ids) {
        PGresult *r = a->renewed;
        int nids = 0;
        _cleanup_free_ int64_t *idv = orchcore_ids(&nids);
        for (int k = 0; k < nids; k++) {
            orch *o = orchcore_find(idv[k]);
            if (!o || o->finishing)
                continue;
            /* only those this renewal asked for: one started since was not in it */
            if (!bsearch(&o->id, a->asked, a->nasked, sizeof(*a->asked), cmp_id))
                continue;
            int i = renewed_row(r, o->id), seen = i >= 0;
            if (seen) {
                o->lease_ms = orchcore_lease_from(s, a->t0);
                if (strcmp(PQgetvalue(r, i, 4), "t") == 0)
                    o->postcopy = 1;
                if (!a->renew_only) {
                    orch_act(s, o->id, strcmp(PQgetvalue(r, i, 1), "t") == 0, strcmp(PQgetvalue(r, i, 2), "t") == 0,
                             strcmp(PQgetvalue(r, i, 3), "t") == 0);
                    orch_bandwidth(s, o->id, atoi(PQgetvalue(r, i, 5)));
                }
            }
            if (!seen) {
                _cleanup_free_ char *why = xasprintf("its lease could not be renewed: the row is no longer this"
                                                     " replica's at epoch %lld (adopted by another replica, or ended)",
                                                     (long long)o->epoch);
                orchcore_lease_lost(o, why);
            }
        }
    }
    if (rc < 0) {
        log_warn(NULL, "could not look for migrations to adopt: %s", err);
        free(err);
        adopt_ctx_free(a);
        return;
    }
    free(err);
    for (int i = 0; i < a->n; i++) {
        char ids[24];
        snprintf(ids, sizeof(ids), "%lld", (long long)a->adopt_ids[i]);
        log_fields f = {.migration = ids};
        log_warn(&f, "migration %lld adopted by %s%s: resuming it from what the agents say", (long long)a->adopt_ids[i],
                 s->name, a->own_only ? " at its start" : " (the lease of its owner expired)");
        orch_start(s, a->adopt_ids[i]);
    }
    adopt_ctx_free(a);
}

/* Submits a renewal (and, unless renew_only, the adoption) to the database worker. */
static void submit(sched *s, int starting, int renew_only)
{
    if (s->lease_busy)
        return; /* the last tick's renewal is still with the database: one at a time */
    adopt_ctx *a = xcalloc(1, sizeof(*a));
    a->renew_only = renew_only;
    a->s = s;
    a->name = s->name;
    a->own_only = starting;
    strlcpy_f(a->started_at, s->db_started_at, sizeof(a->started_at));
    snprintf(a->lease, sizeof(a->lease), "%lld", (long long)s->cfg->scheduler.lease_s);
    /* renew the leases of what this replica drives; read the operators' requests and the
     * deadlines on the way */
    int nids = 0;
    _cleanup_free_ int64_t *idv = orchcore_ids(&nids);
    if (nids > 0) {
        size_t cap = 64, len = 1;
        char *ids = xcalloc(1, cap), *eps = xcalloc(1, cap);
        ids[0] = '{';
        size_t elen = 1;
        eps[0] = '{';
        for (int k = 0; k < nids; k++) {
            orch *o = orchcore_find(idv[k]);
            if (!o || o->finishing)
                continue;
            char x[32], y[64];
            int na = snprintf(x, sizeof(x), "%s%lld", len > 1 ? "," : "", (long long)o->id);
            int nb =
                snprintf(y, sizeof(y), "%s\"%lld\":%lld", elen > 1 ? "," : "", (long long)o->id, (long long)o->epoch);
            if (len + (size_t)na + 2 > cap || elen + (size_t)nb + 2 > cap) {
                cap = cap * 2 + 64;
                ids = xrealloc(ids, cap);
                eps = xrealloc(eps, cap);
            }
            memcpy(ids + len, x, (size_t)na);
            len += (size_t)na;
            memcpy(eps + elen, y, (size_t)nb);
            elen += (size_t)nb;
        }
        ids[len++] = '}';
        ids[len] = 0;
        eps[elen++] = '}';
        eps[elen] = 0;
        a->ids = ids;
        a->eps = eps;
        a->asked = xcalloc((size_t)nids, sizeof(*a->asked));
        for (int k = 0; k < nids; k++) {
            orch *o = orchcore_find(idv[k]);
            if (o && !o->finishing)
                a->asked[a->nasked++] = o->id;
        }
        qsort(a->asked, a->nasked, sizeof(*a->asked), cmp_id);
    }
    /* adopt what nobody drives any more */
    a->active = active_ids();
    s->lease_busy = 1;
    dbq_submit(s->dbq, lease_work, lease_done, a);
}

void lease_tick(sched *s, int starting)
{
    submit(s, starting, 0);
}

void lease_renew(sched *s)
{
    submit(s, 0, 1);
}

/* ---- the leases of jobs one replica runs at a time (replica_leases) ------------------------- */

int lease_hold_job(db_conn *db, const char *job, const char *owner, int64_t lease_s, int64_t *epoch)
{
    char secs[24];
    snprintf(secs, sizeof(secs), "%lld", (long long)lease_s);
    const char *p[] = {job, owner, secs};
    _cleanup_pq_ PGresult *r = NULL;
    /* like a migration's lease: renewed by its owner, taken by another only once expired, the
     * epoch raised when it changes hands */
    if (db_exec(db, &r,
                "INSERT INTO replica_leases AS l (job, owner, lease_expires_at)"
                " VALUES ($1, $2, now() + make_interval(secs => $3::int))"
                " ON CONFLICT (job) DO UPDATE SET owner = EXCLUDED.owner, lease_expires_at = EXCLUDED.lease_expires_at,"
                "   epoch = l.epoch + CASE WHEN l.owner = EXCLUDED.owner THEN 0 ELSE 1 END"
                " WHERE l.owner = EXCLUDED.owner OR l.lease_expires_at < now()"
                " RETURNING epoch",
                3, p) < 0)
        return -1;
    *epoch = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
    return 0;
}

int lease_job_still_held(db_conn *db, const char *job, const char *owner, int64_t epoch)
{
    char ep[24];
    snprintf(ep, sizeof(ep), "%lld", (long long)epoch);
    const char *p[] = {job, owner, ep};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT 1 FROM replica_leases WHERE job = $1 AND owner = $2 AND epoch = $3::bigint"
                " AND lease_expires_at > now() FOR SHARE",
                3, p) < 0)
        return -1;
    return PQntuples(r) == 1;
}
