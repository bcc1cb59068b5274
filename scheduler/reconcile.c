/* reconcile: the reconciler's pass on the database worker (reconcile.h). One pass: the lease of
 * job "reconciler" (lease.c) taken or renewed, or nothing; then the allocations and the
 * instances read with what the hosts' last heartbeats list (host_domains), each decided by
 * reconcile_rules.c, each repair one REPEATABLE READ transaction that checks the lease again,
 * locks the instance (as intake does before a claim) and checks again in its statements what
 * the decision read, so a concurrent claim, migration or heartbeat wins (the repair then changes
 * nothing, or is retried by db_tx on a serialization failure). Logs are written by the worker
 * (as hoststate's per-domain lines are); the counters are the loop's, set in the continuation. */
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "ledger.h"
#include "reconcile.h"
#include "sched.h"

#define RECONCILE_JOB "reconciler"
#define RECONCILE_MAX_ROWS "5000"

typedef struct rc_pass {
    sched *s;         /* for the continuation only */
    const char *name; /* the replica's (never changes) */
    char age[24];     /* heartbeat_max_age_s */
    char grace[24];   /* reconcile_grace_s */
    int64_t grace_s, lease_s;
    int64_t epoch; /* of the lease held, 0: another replica holds it */
    int64_t repairs[RECONCILE_REPAIR_COUNT];
    int64_t unresolved[RECONCILE_UNRESOLVED_COUNT];
} rc_pass;

/* One repair, for its transaction. */
typedef struct rc_repair {
    rc_pass *p;
    reconcile_verdict v;    /* RECONCILE_SET_HOST, _SETTLE_*, or RECONCILE_NOTHING for an allocation */
    const char *alloc_id;   /* an allocation's release */
    const char *uuid;       /* the instance */
    const char *host, *old; /* SET_HOST: the new host and the one the decision read (NULL: none) */
    const char *mig;        /* SETTLE_*: the migration */
    const char *why;
    int applied; /* the statements' checks held: it was done */
} rc_repair;

/* In the repair's transaction: 1 when instance uuid runs (running or paused) on host and on no
 * other host listing it, by fresh heartbeats only, and no stale host lists it running, and none
 * of its migrations is unfinished or finished within grace seconds (a heartbeat sent before a
 * migration's end, still fresh, lists the guest where it was: lab.db_failover saw a host
 * "corrected" back to the source that way); 0 when not; -1 on a database error. */
static int runs_only_on(db_conn *db, const char *uuid, const char *host, const char *age, const char *grace)
{
    const char *p[] = {uuid, host, age, grace};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT count(*) FILTER (WHERE d.state IN ('running', 'paused')) = 1"
                "   AND bool_or(d.host = $2 AND d.state IN ('running', 'paused')"
                "       AND h.domains_reported_at > now() - make_interval(secs => $3::int))"
                "   AND bool_and(h.domains_reported_at > now() - make_interval(secs => $3::int)"
                "       OR d.state NOT IN ('running', 'paused'))"
                "   AND NOT EXISTS (SELECT 1 FROM migrations m WHERE m.instance_uuid = $1::uuid"
                "       AND (m.finished_at IS NULL OR m.finished_at > now() - make_interval(secs => $4::int)))"
                " FROM host_domains d JOIN hosts h ON h.name = d.host WHERE d.uuid = $1::uuid",
                4, p) < 0)
        return -1;
    return PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
}

/* In the repair's transaction: 1 when host's domains were reported within heartbeat_max_age_s. */
static int fresh(db_conn *db, const char *host, const char *age)
{
    const char *p[] = {host, age};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT 1 FROM hosts WHERE name = $1 AND domains_reported_at > now() - make_interval(secs => $2::int)",
                2, p) < 0)
        return -1;
    return PQntuples(r) == 1;
}

static int repair_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    rc_repair *r = arg;
    rc_pass *p = r->p;
    r->applied = 0;
    int h = lease_job_still_held(db, RECONCILE_JOB, p->name, p->epoch);
    if (h <= 0)
        return h;
    /* the instance locked first, as intake locks it before a claim: a claim and a repair of the
     * same instance run one after the other */
    const char *ip[] = {r->uuid};
    _cleanup_pq_ PGresult *inst = NULL;
    if (db_exec(db, &inst, "SELECT host, task_state IS NOT NULL FROM instances WHERE uuid = $1::uuid FOR UPDATE", 1,
                ip) < 0)
        return -1;
    if (PQntuples(inst) != 1)
        return 0;
    int migrating = strcmp(PQgetvalue(inst, 0, 1), "t") == 0;
    if (r->alloc_id) {
        const char *ap[] = {r->alloc_id, p->age, p->grace};
        _cleanup_pq_ PGresult *d = NULL;
        if (db_exec(
                db, &d,
                "DELETE FROM allocations a WHERE a.id = $1::bigint"
                " AND a.created_at < now() - make_interval(secs => $3::int) AND ("
                "  (a.consumer_type = 'migration' AND EXISTS (SELECT 1 FROM migrations m WHERE m.id = a.migration_id"
                "     AND m.status IN ('completed', 'failed', 'cancelled')))"
                "  OR (a.consumer_type = 'instance'"
                "     AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.uuid = a.instance_uuid AND i.task_state IS NOT NULL)"
                "     AND EXISTS (SELECT 1 FROM hosts h WHERE h.name = a.host"
                "         AND h.domains_reported_at > now() - make_interval(secs => $2::int)"
                "         AND h.domains_reported_at > a.created_at)"
                "     AND NOT EXISTS (SELECT 1 FROM host_domains d WHERE d.host = a.host AND d.uuid = a.instance_uuid)))"
                " RETURNING host, vcpus, memory_mb, disk_gb",
                3, ap) < 0 ||
            ledger_give_back(db, d) < 0)
            return -1;
        r->applied = PQntuples(d) == 1;
        return 0;
    }
    if (r->v == RECONCILE_SET_HOST) {
        const char *now_host = PQgetisnull(inst, 0, 0) ? NULL : PQgetvalue(inst, 0, 0);
        if (migrating || (now_host == NULL) != (r->old == NULL) || (now_host && strcmp(now_host, r->old) != 0))
            return 0; /* changed since the decision */
        int ok = runs_only_on(db, r->uuid, r->host, p->age, p->grace);
        if (ok <= 0)
            return ok;
        if (r->old && (ok = fresh(db, r->old, p->age)) <= 0)
            return ok;
        const char *up[] = {r->uuid, r->host};
        _cleanup_pq_ PGresult *d = NULL;
        if (db_exec(db, NULL,
                    "UPDATE instances SET host = $2, reported_at = now(), updated_at = now() WHERE uuid = $1::uuid", 2,
                    up) < 0 ||
            db_exec(db, &d,
                    "DELETE FROM allocations WHERE consumer_type = 'instance' AND consumer_id = $1"
                    " RETURNING host, vcpus, memory_mb, disk_gb",
                    1, ip) < 0 ||
            ledger_give_back(db, d) < 0)
            return -1;
        _cleanup_pq_ PGresult *a = NULL;
        if (db_exec(
                db, &a,
                "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)"
                " SELECT 'instance', uuid::text, uuid, host, vcpus, memory_mb, disk_gb FROM instances"
                " WHERE uuid = $1::uuid RETURNING host, vcpus, memory_mb, disk_gb",
                1, ip) < 0)
            return -1;
        for (int i = 0; i < PQntuples(a); i++) {
            const char *hp[] = {PQgetvalue(a, i, 0), PQgetvalue(a, i, 1), PQgetvalue(a, i, 2), PQgetvalue(a, i, 3)};
            if (db_exec(
                    db, NULL,
                    "UPDATE hosts SET used_vcpus = used_vcpus + $2::int, used_memory_mb = used_memory_mb + $3::bigint,"
                    " used_disk_gb = used_disk_gb + $4::bigint WHERE name = $1",
                    4, hp) < 0)
                return -1;
        }
        r->applied = 1;
        return 0;
    }
    /* an error migration settled: still in error, still the instance's latest, its guest on the
     * one host the decision found, both of its hosts fresh */
    const char *mp[] = {r->mig, r->uuid};
    _cleanup_pq_ PGresult *m = NULL;
    if (db_exec(db, &m,
                "SELECT m.source_host, m.dest_host FROM migrations m WHERE m.id = $1::bigint AND m.status = 'error'"
                " AND m.instance_uuid = $2::uuid AND NOT EXISTS (SELECT 1 FROM migrations n"
                "   WHERE n.instance_uuid = m.instance_uuid AND n.id > m.id) FOR UPDATE",
                2, mp) < 0)
        return -1;
    if (PQntuples(m) != 1 || !migrating)
        return 0;
    const char *src = PQgetvalue(m, 0, 0), *dst = PQgetvalue(m, 0, 1);
    int to_dest = r->v == RECONCILE_SETTLE_DEST;
    int ok;
    if ((ok = runs_only_on(db, r->uuid, to_dest ? dst : src, p->age, p->grace)) <= 0 || (ok = fresh(db, src, p->age)) <= 0 ||
        (ok = fresh(db, dst, p->age)) <= 0)
        return ok;
    mig_status st = to_dest ? MIG_COMPLETED : MIG_FAILED;
    const char *sp[] = {r->mig, mig_status_str(st)};
    if (db_exec(
            db, NULL,
            "UPDATE migrations SET status = $2, updated_at = now(),"
            " error = CASE WHEN $2 = 'completed' THEN NULL ELSE error END WHERE id = $1::bigint AND status = 'error'",
            2, sp) < 0 ||
        ledger_settle(db, st, r->mig, r->uuid, dst) < 0 ||
        ledger_record(db, p->name, atoll(r->mig), "scheduler", to_dest ? dst : src, LEDGER_NO_STATUS, "reconcile",
                      r->why) < 0)
        return -1;
    _cleanup_free_ char *msg = xasprintf("settled by the reconciler from error: %s", r->why);
    if (ledger_record(db, p->name, atoll(r->mig), "scheduler", NULL, st, "status", msg) < 0)
        return -1;
    r->applied = 1;
    return 0;
}

/* Runs repair r in its own transaction; counts it as kind when done. */
static void repair(db_conn *db, rc_repair *r, reconcile_repair kind, const log_fields *f)
{
    _cleanup_free_ char *err = NULL;
    if (db_tx(db, "REPEATABLE READ", repair_tx, r, NULL, &err) < 0) {
        log_warn(f, "reconciler: could not repair (%s): %s: %s", reconcile_repair_str(kind), r->why,
                 err ? err : db_error(db));
        return;
    }
    if (!r->applied) {
        log_info(f, "reconciler: not repaired (%s), the database changed since: %s", reconcile_repair_str(kind),
                 r->why);
        return;
    }
    r->p->repairs[kind]++;
    log_warn(f, "reconciler repaired (%s): %s", reconcile_repair_str(kind), r->why);
}

static int is_t(const PGresult *r, int i, int c)
{
    return strcmp(PQgetvalue(r, i, c), "t") == 0;
}

/* The allocations: each orphan released. */
static int pass_allocations(db_conn *db, rc_pass *p)
{
    const char *q[] = {p->age};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT a.id, a.host, a.consumer_type = 'migration', coalesce(m.status, ''),"
                " coalesce(i.task_state IS NOT NULL, false),"
                " coalesce(h.domains_reported_at > now() - make_interval(secs => $1::int)"
                "   AND h.domains_reported_at > a.created_at, false),"
                " EXISTS (SELECT 1 FROM host_domains d WHERE d.host = a.host AND d.uuid = a.instance_uuid),"
                " extract(epoch FROM now() - a.created_at)::bigint, a.instance_uuid, coalesce(i.ec2_id, ''),"
                " coalesce(a.migration_id::text, '')"
                " FROM allocations a JOIN hosts h ON h.name = a.host LEFT JOIN migrations m ON m.id = a.migration_id"
                " LEFT JOIN instances i ON i.uuid = a.instance_uuid ORDER BY a.id LIMIT " RECONCILE_MAX_ROWS,
                1, q) < 0)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        reconcile_alloc a = {.host = PQgetvalue(r, i, 1),
                             .is_migration = is_t(r, i, 2),
                             .mig_status = PQgetvalue(r, i, 3),
                             .instance_migrating = is_t(r, i, 4),
                             .host_fresh = is_t(r, i, 5),
                             .host_lists = is_t(r, i, 6),
                             .age_s = atoll(PQgetvalue(r, i, 7)),
                             .grace_s = p->grace_s};
        char why[512];
        if (!reconcile_decide_alloc(&a, why, sizeof(why)))
            continue;
        const char *ec2 = PQgetvalue(r, i, 9), *mig = PQgetvalue(r, i, 10);
        _cleanup_free_ char *full = xasprintf("allocation %s of instance %s on %s released: %s", PQgetvalue(r, i, 0),
                                              *ec2 ? ec2 : PQgetvalue(r, i, 8), a.host, why);
        log_fields f = {.instance = *ec2 ? ec2 : PQgetvalue(r, i, 8), .host = a.host, .migration = *mig ? mig : NULL};
        rc_repair rp = {.p = p, .alloc_id = PQgetvalue(r, i, 0), .uuid = PQgetvalue(r, i, 8), .why = full};
        repair(db, &rp, RECONCILE_ALLOCATION_RELEASED, &f);
    }
    return 0;
}

/* The seen list "host:fresh:runs,..." of the instances' query into v (pointing into text). */
static size_t parse_seen(char *text, reconcile_seen *v, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(text, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(t, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = 0;
        v[n].host = t;
        v[n].fresh = c1[1] == '1';
        v[n].runs = c2[1] == '1';
        n++;
    }
    return n;
}

/* The instances: hosts corrected, error migrations settled, the rest raised. */
static int pass_instances(db_conn *db, rc_pass *p)
{
    const char *q[] = {p->age, p->grace};
    _cleanup_pq_ PGresult *r = NULL;
#define FRESH(h)                                                                                                       \
    "coalesce((SELECT x.domains_reported_at > now() - make_interval(secs => $1::int) FROM hosts x WHERE x.name = " h   \
    "), false)"
    if (db_exec(
            db, &r,
            "SELECT i.uuid, i.ec2_id, i.host, i.task_state IS NOT NULL, " FRESH(
                "i.host") ","
                          " EXISTS (SELECT 1 FROM migrations m WHERE m.instance_uuid = i.uuid AND m.finished_at IS NULL),"
                          " CASE WHEN em.status = 'error' AND i.task_state IS NOT NULL THEN em.id ELSE 0 END,"
                          " coalesce(em.source_host, ''), coalesce(em.dest_host, ''), " FRESH("em.source_host") ", " FRESH(
                              "em.dest_host") ","
                                              " coalesce((SELECT string_agg(d.host || ':' || (coalesce(h.domains_reported_at > now()"
                                              "   - make_interval(secs => $1::int), false))::int || ':' || (d.state IN ('running', 'paused'))::int,"
                                              "   ',' ORDER BY d.host) FROM host_domains d JOIN hosts h ON h.name = d.host WHERE d.uuid = i.uuid), '')"
                                              " FROM instances i LEFT JOIN LATERAL (SELECT m.id, m.status, m.source_host, m.dest_host FROM migrations m"
                                              "   WHERE m.instance_uuid = i.uuid ORDER BY m.id DESC LIMIT 1) em ON true"
                                              " WHERE i.vm_state <> 'deleted'"
                                              /* the heartbeats still fresh may predate a recent end */
                                              "   AND NOT EXISTS (SELECT 1 FROM migrations r WHERE r.instance_uuid = i.uuid"
                                              "       AND r.finished_at > now() - make_interval(secs => $2::int))"
                                              " ORDER BY i.seq LIMIT " RECONCILE_MAX_ROWS,
            2, q) < 0)
        return -1;
#undef FRESH
    for (int i = 0; i < PQntuples(r); i++) {
        _cleanup_free_ char *seen_text = xstrdup(PQgetvalue(r, i, 11));
        reconcile_seen seen[16];
        reconcile_instance in = {.db_host = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                                 .migrating = is_t(r, i, 3),
                                 .db_host_fresh = is_t(r, i, 4),
                                 .active_migration = is_t(r, i, 5),
                                 .error_migration = atoll(PQgetvalue(r, i, 6)),
                                 .source = PQgetvalue(r, i, 7),
                                 .dest = PQgetvalue(r, i, 8),
                                 .source_fresh = is_t(r, i, 9),
                                 .dest_fresh = is_t(r, i, 10),
                                 .seen = seen};
        in.n_seen = parse_seen(seen_text, seen, 16);
        const char *host = NULL;
        reconcile_unresolved u = RECONCILE_TWO_HOSTS;
        char why[768];
        reconcile_verdict v = reconcile_decide_instance(&in, &host, &u, why, sizeof(why));
        const char *uuid = PQgetvalue(r, i, 0), *ec2 = PQgetvalue(r, i, 1);
        char mig[24] = "";
        if (in.error_migration)
            snprintf(mig, sizeof(mig), "%lld", (long long)in.error_migration);
        log_fields f = {.instance = ec2, .host = host ? host : in.db_host, .migration = *mig ? mig : NULL};
        switch (v) {
        case RECONCILE_NOTHING:
            break;
        case RECONCILE_WAIT:
            log_debug(&f, "reconciler: instance %s %s", ec2, why);
            break;
        case RECONCILE_RAISE:
            p->unresolved[u]++;
            log_warn(&f, "reconciler: instance %s cannot be reconciled (%s)%s%s: %s", ec2, reconcile_unresolved_str(u),
                     *mig ? ", its migration " : "", mig, why);
            break;
        case RECONCILE_SET_HOST: {
            _cleanup_free_ char *full = xasprintf("instance %s's host set to %s: %s", ec2, host, why);
            rc_repair rp = {.p = p, .v = v, .uuid = uuid, .host = host, .old = in.db_host, .why = full};
            repair(db, &rp, RECONCILE_INSTANCE_HOST, &f);
            break;
        }
        case RECONCILE_SETTLE_DEST:
        case RECONCILE_SETTLE_SOURCE: {
            _cleanup_free_ char *full =
                xasprintf("migration %s in error settled %s: %s", mig,
                          v == RECONCILE_SETTLE_DEST ? "as completed (to its destination)" : "back to its source", why);
            rc_repair rp = {.p = p, .v = v, .uuid = uuid, .mig = mig, .why = full};
            repair(db, &rp, RECONCILE_MIGRATION_SETTLED, &f);
            break;
        }
        }
    }
    return 0;
}

static int pass_work(db_conn *db, void *arg, char **err)
{
    rc_pass *p = arg;
    if (lease_hold_job(db, RECONCILE_JOB, p->name, p->lease_s, &p->epoch) < 0 ||
        (p->epoch && (pass_allocations(db, p) < 0 || pass_instances(db, p) < 0))) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    return 0;
}

static void pass_done(void *arg, int rc, char *err)
{
    rc_pass *p = arg;
    sched *s = p->s;
    s->reconcile_busy = 0;
    if (rc < 0) {
        if (!s->stopping)
            log_warn(NULL, "reconciler: could not run its pass: %s",
                     err ? err : "the database worker could not run it");
    } else {
        s->reconcile_holder = p->epoch != 0;
        for (int k = 0; k < RECONCILE_REPAIR_COUNT; k++)
            s->reconcile_repairs[k] += p->repairs[k];
        int settled = p->repairs[RECONCILE_MIGRATION_SETTLED] > 0;
        /* the gauges say what this replica's last pass found; a replica not holding the lease says 0 */
        for (int k = 0; k < RECONCILE_UNRESOLVED_COUNT; k++)
            s->reconcile_unresolved[k] = p->unresolved[k];
        if (settled && !s->stopping)
            outbox_flush(s);
    }
    free(err);
    free(p);
}

void reconcile_tick(sched *s)
{
    int64_t every = s->cfg->scheduler.reconcile_interval_s;
    if (every <= 0 || s->reconcile_busy)
        return;
    int64_t now = mono_ms();
    if (s->reconcile_next_ms == 0)
        s->reconcile_next_ms = now + every * 1000;
    if (now < s->reconcile_next_ms)
        return;
    s->reconcile_next_ms = now + every * 1000;
    rc_pass *p = xcalloc(1, sizeof(*p));
    p->s = s;
    p->name = s->name;
    snprintf(p->age, sizeof(p->age), "%lld", (long long)s->cfg->scheduler.heartbeat_max_age_s);
    p->grace_s = s->cfg->scheduler.reconcile_grace_s;
    snprintf(p->grace, sizeof(p->grace), "%lld", (long long)p->grace_s);
    /* held across the passes of the holder (three intervals), taken over once it expired */
    p->lease_s = every * 3 > s->cfg->scheduler.lease_s ? every * 3 : s->cfg->scheduler.lease_s;
    s->reconcile_busy = 1;
    dbq_submit(s->dbq, pass_work, pass_done, p);
}
