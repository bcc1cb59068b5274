/* queue: the concurrency limits ([scheduler] max_outgoing_per_source, max_incoming_per_dest,
 * max_cluster). A request over a limit is accepted and its capacity claimed, but it waits in
 * `queued`; when a migration ends, a replica promotes the oldest queued ones that fit to
 * `scheduled` and drives them. Every decision against the limits holds one advisory lock to
 * its commit, so replicas deciding at once count each other's migrations. */
#include <stdlib.h>
#include <string.h>

#include "sched.h"

/* the advisory lock of every limit decision (an arbitrary, fixed key) */
#define LIMITS_LOCK "SELECT pg_advisory_xact_lock(7262, 1)"
#define ACTIVE "status IN ('scheduled', 'preparing', 'running', 'completing')"

int queue_limits_allow(sched *s, db_conn *db, const char *source, const char *dest, const char *self, char **why)
{
    if (db_exec(db, NULL, LIMITS_LOCK, 0, NULL) < 0)
        return -1;
    const char *p[] = {source, dest, self};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT count(*) FILTER (WHERE source_host = $1), count(*) FILTER (WHERE dest_host = $2), count(*),"
                " (SELECT count(*) FROM migrations WHERE status = 'queued' AND (source_host = $1 OR dest_host = $2)"
                "   AND id IS DISTINCT FROM $3::bigint)"
                " FROM migrations WHERE " ACTIVE " AND id IS DISTINCT FROM $3::bigint",
                3, p) < 0)
        return -1;
    const cfg_scheduler *c = &s->cfg->scheduler;
    long long out = atoll(PQgetvalue(r, 0, 0)), in = atoll(PQgetvalue(r, 0, 1)), all = atoll(PQgetvalue(r, 0, 2));
    if (out >= c->max_outgoing_per_source)
        *why = xasprintf("%s already has %lld outgoing migrations (max_outgoing_per_source = %lld)", source, out,
                         (long long)c->max_outgoing_per_source);
    else if (in >= c->max_incoming_per_dest)
        *why = xasprintf("%s already has %lld incoming migrations (max_incoming_per_dest = %lld)", dest, in,
                         (long long)c->max_incoming_per_dest);
    else if (all >= c->max_cluster)
        *why = xasprintf("%lld migrations are running in the cluster (max_cluster = %lld)", all, (long long)c->max_cluster);
    else if (atoll(PQgetvalue(r, 0, 3)) > 0)
        *why = xasprintf("older migrations from %s or to %s are queued: first come, first served", source, dest);
    else
        return 1;
    return 0;
}

typedef struct disp {
    sched *s;
    int64_t start[64];
    int n;
    int ended;
} disp;

typedef struct count {
    char host[256];
    int out, in;
} count;

static count *count_of(count *cs, int *n, int cap, const char *host)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(cs[i].host, host) == 0)
            return &cs[i];
    if (*n == cap)
        return NULL;
    count *c = &cs[(*n)++];
    memset(c, 0, sizeof(*c));
    strlcpy_f(c->host, host, sizeof(c->host));
    return c;
}

static int dispatch_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    disp *d = arg;
    sched *s = d->s;
    d->n = d->ended = 0;
    if (db_exec(db, NULL, LIMITS_LOCK, 0, NULL) < 0)
        return -1;
    _cleanup_pq_ PGresult *q = NULL;
    if (db_exec(db, &q,
                "SELECT m.id, m.source_host, m.dest_host, m.abort_requested, coalesce(m.deadline_at < now(), false),"
                " m.instance_uuid::text"
                " FROM migrations m WHERE m.status = 'queued' ORDER BY m.id LIMIT 64 FOR UPDATE",
                0, NULL) < 0)
        return -1;
    if (PQntuples(q) == 0)
        return 0;
    _cleanup_pq_ PGresult *a = NULL;
    if (db_exec(db, &a, "SELECT source_host, dest_host FROM migrations WHERE " ACTIVE, 0, NULL) < 0)
        return -1;
    count cs[256];
    int nc = 0, total = PQntuples(a);
    for (int i = 0; i < PQntuples(a); i++) {
        count *c = count_of(cs, &nc, 256, PQgetvalue(a, i, 0));
        if (c)
            c->out++;
        c = count_of(cs, &nc, 256, PQgetvalue(a, i, 1));
        if (c)
            c->in++;
    }
    const cfg_scheduler *c = &s->cfg->scheduler;
    char lease[24], dl[24];
    snprintf(lease, sizeof(lease), "%lld", (long long)c->lease_s);
    snprintf(dl, sizeof(dl), "%lld", (long long)c->deadline_preparing_s);
    for (int i = 0; i < PQntuples(q); i++) {
        const char *id = PQgetvalue(q, i, 0), *src = PQgetvalue(q, i, 1), *dst = PQgetvalue(q, i, 2);
        int aborted = strcmp(PQgetvalue(q, i, 3), "t") == 0, late = strcmp(PQgetvalue(q, i, 4), "t") == 0;
        if (aborted || late) {
            _cleanup_free_ char *why =
                aborted ? xstrdup("cancelled: aborted by the operator while queued")
                        : xasprintf("cancelled: waited in queued longer than %lld s (deadline_queued_s)", (long long)c->deadline_queued_s);
            const char *p[] = {id, why};
            if (db_exec(db, NULL,
                        "UPDATE migrations SET status = 'cancelled', error = $2, finished_at = now(), updated_at = now(),"
                        " deadline_at = NULL WHERE id = $1::bigint",
                        2, p) < 0 ||
                orch_settle(db, "cancelled", id, PQgetvalue(q, i, 5), dst) < 0 ||
                orch_record(s, atoll(id), "scheduler", NULL, "cancelled", "status", why) < 0)
                return -1;
            d->ended++;
            continue;
        }
        count *cso = count_of(cs, &nc, 256, src), *cdi = count_of(cs, &nc, 256, dst);
        if (!cso || !cdi || cso->out >= c->max_outgoing_per_source || cdi->in >= c->max_incoming_per_dest ||
            total >= c->max_cluster || d->n == 64)
            continue;
        const char *p[] = {id, s->name, lease, dl};
        if (db_exec(db, NULL,
                    "UPDATE migrations SET status = 'scheduled', owner = $2, epoch = epoch + 1, updated_at = now(),"
                    " lease_expires_at = now() + make_interval(secs => $3::int),"
                    " deadline_at = now() + make_interval(secs => $4::int) WHERE id = $1::bigint",
                    4, p) < 0 ||
            orch_record(s, atoll(id), "scheduler", NULL, "scheduled", "status", "the limits allow it now") < 0)
            return -1;
        cso->out++;
        cdi->in++;
        total++;
        d->start[d->n++] = atoll(id);
    }
    return 0;
}

void queue_dispatch(sched *s)
{
    if (!s->db)
        return;
    disp d = {.s = s};
    char *err = NULL;
    if (db_tx(s->db, "READ COMMITTED", dispatch_tx, &d, NULL, &err) < 0) {
        log_warn(NULL, "could not look at the queued migrations: %s", err);
        free(err);
        return;
    }
    if (d.n || d.ended)
        outbox_flush(s);
    for (int i = 0; i < d.n; i++) {
        char ids[24];
        snprintf(ids, sizeof(ids), "%lld", (long long)d.start[i]);
        log_fields f = {.migration = ids};
        log_info(&f, "migration %lld leaves the queue: the limits allow it now", (long long)d.start[i]);
        orch_start(s, d.start[i]);
    }
}

static void dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sched *s = arg;
    s->dispatch_pending = 0;
    queue_dispatch(s);
}

void queue_dispatch_soon(sched *s)
{
    if (s->dispatch_pending)
        return;
    s->dispatch_pending = 1;
    event_base_once(s->base, -1, EV_TIMEOUT, dispatch_cb, s, NULL);
}
