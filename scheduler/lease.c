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

typedef struct adopt_ctx {
    sched *s;
    const char *active;
    int own_only;
    int64_t ids[16];
    int n;
} adopt_ctx;

static int adopt_tx(db_conn *db, void *arg, char **err)
{
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
        mig_status st; /* one of the four the statement selects */
        const char *from = PQgetvalue(r, i, 1);
        _cleanup_free_ char *msg =
            strcmp(from, a->s->name) == 0
                ? xasprintf("resumed by %s after its restart, epoch %s", a->s->name, PQgetvalue(r, i, 3))
                : xasprintf("adopted by %s from %s (lease expired %s s ago), epoch %s", a->s->name, *from ? from : "nobody",
                            PQgetvalue(r, i, 4), PQgetvalue(r, i, 3));
        if (mig_status_from_str(PQgetvalue(r, i, 2), &st) < 0) {
            *err = xasprintf("migration %lld has an unknown status '%s'", (long long)id, PQgetvalue(r, i, 2));
            return -1;
        }
        if (ledger_record(a->s, id, "scheduler", NULL, st, "adopted", msg) < 0)
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

/* Renews the leases of what this replica drives; with act, hands the operators' requests and
 * the deadlines read on the way to orch_act. */
static void renew(sched *s, int act)
{
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
                orch *o = orchcore_find(idv[k]);
                if (!o || o->finishing || orchcore_lease_held(o))
                    continue;
                _cleanup_free_ char *why = xasprintf("could not renew its lease for %lld s (lease_s): %s",
                                                     (long long)s->cfg->scheduler.lease_s, db_error(s->db));
                orchcore_lease_lost(o, why);
            }
        } else {
            for (int k = 0; k < nids; k++) {
                orch *o = orchcore_find(idv[k]);
                if (!o || o->finishing)
                    continue;
                int seen = 0;
                for (int i = 0; i < PQntuples(r) && !seen; i++) {
                    if (atoll(PQgetvalue(r, i, 0)) != o->id)
                        continue;
                    seen = 1;
                    o->lease_ms = orchcore_lease_from(s, t0);
                    if (strcmp(PQgetvalue(r, i, 4), "t") == 0)
                        o->postcopy = 1;
                    if (act)
                        orch_act(s, o->id, strcmp(PQgetvalue(r, i, 1), "t") == 0, strcmp(PQgetvalue(r, i, 2), "t") == 0,
                             strcmp(PQgetvalue(r, i, 3), "t") == 0);
                }
                if (!seen) {
                    _cleanup_free_ char *why = xasprintf("its lease could not be renewed: the row is no longer this"
                                                         " replica's at epoch %lld (adopted by another replica, or ended)",
                                                         (long long)o->epoch);
                    orchcore_lease_lost(o, why);
                }
            }
        }
        free(ids);
        free(eps);
    }
}

void lease_renew(sched *s)
{
    renew(s, 0);
}

void lease_tick(sched *s, int starting)
{
    renew(s, 1);
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
