/* queue: the migrations that wait for the concurrency limits (limits.h). A request over a
 * limit is accepted and its capacity claimed, but it waits in `queued`; when a migration ends,
 * a replica promotes the oldest queued ones that fit to `scheduled` and drives them. The
 * decision reads the hosts' own counters under their row locks (and the cluster's total under
 * its lock when max_cluster is set), as a new request's does. */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "limits.h"
#include "sched.h"

/* One dispatch, run by the database worker. */
typedef struct disp {
    sched *s;          /* the worker reads only name (fixed) through it */
    cfg_scheduler cfg; /* a copy: the worker never reads the loop's config */
    char dl[24];       /* the deadline of scheduled, in seconds */
    int64_t start[64];
    int n;
    int ended;
} disp;

static int dispatch_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    disp *d = arg;
    sched *s = d->s;
    d->n = d->ended = 0;
    _cleanup_pq_ PGresult *q = NULL;
    if (db_exec(db, &q,
                "SELECT m.id, m.source_host, m.dest_host, m.abort_requested, coalesce(m.deadline_at < now(), false),"
                " m.instance_uuid::text"
                " FROM migrations m WHERE m.status = 'queued' ORDER BY m.id LIMIT 64 FOR UPDATE",
                0, NULL) < 0)
        return -1;
    if (PQntuples(q) == 0)
        return 0;
    /* every host these migrations name, locked at once in name order, before the cluster's
     * lock (a new request takes its hosts first too): each decision below then reads counters
     * no one else can change, and the ones this dispatch starts are in them (the trigger) */
    if (db_exec(db, NULL,
                "SELECT 1 FROM hosts WHERE name IN (SELECT source_host FROM migrations WHERE status = 'queued'"
                " AND id <= $1::bigint UNION SELECT dest_host FROM migrations WHERE status = 'queued'"
                " AND id <= $1::bigint) ORDER BY name FOR NO KEY UPDATE",
                1, (const char *[]){PQgetvalue(q, PQntuples(q) - 1, 0)}) < 0)
        return -1;
    int64_t total = 0;
    if (limits_cluster_total(&d->cfg, db, &total) < 0)
        return -1;
    const cfg_scheduler *c = &d->cfg;
    char lease[24];
    snprintf(lease, sizeof(lease), "%lld", (long long)c->lease_s);
    const char *dl = d->dl;
    int rc = 0;
    for (int i = 0; i < PQntuples(q) && rc == 0; i++) {
        const char *id = PQgetvalue(q, i, 0), *src = PQgetvalue(q, i, 1), *dst = PQgetvalue(q, i, 2);
        int aborted = strcmp(PQgetvalue(q, i, 3), "t") == 0, late = strcmp(PQgetvalue(q, i, 4), "t") == 0;
        if (aborted || late) {
            _cleanup_free_ char *why =
                aborted ? xstrdup("cancelled: aborted by the operator while queued")
                        : xasprintf("cancelled: waited in queued longer than %lld s (deadline_queued_s)",
                                    (long long)c->deadline_queued_s);
            if (ledger_cancel_queued(s, db, id, PQgetvalue(q, i, 5), dst, why) < 0)
                rc = -1;
            else
                d->ended++;
            continue;
        }
        /* the same decision as a new request's (limits_fit), oldest first; the queued ones do
         * not wait for each other here */
        limits_view v = {.total = total};
        int known = limits_hosts(db, src, dst, &v);
        if (known < 0) {
            rc = -1;
            continue;
        }
        v.queued = 0;
        if (!known || d->n == 64 || !limits_fit(c, &v, src, dst, NULL))
            continue;
        const char *p[] = {id, s->name, lease, dl};
        if (db_exec(db, NULL,
                    "UPDATE migrations SET status = 'scheduled', owner = $2, epoch = epoch + 1, updated_at = now(),"
                    " lease_expires_at = now() + make_interval(secs => $3::int),"
                    " deadline_at = now() + make_interval(secs => $4::int) WHERE id = $1::bigint",
                    4, p) < 0 ||
            ledger_record(db, s->name, atoll(id), "scheduler", NULL, MIG_SCHEDULED, "status",
                          "the limits allow it now") < 0) {
            rc = -1;
            continue;
        }
        total++;
        d->start[d->n++] = atoll(id);
    }
    return rc;
}

static int dispatch_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", dispatch_tx, arg, NULL, err);
}

static void dispatch_done(void *arg, int rc, char *err)
{
    disp *d = arg;
    sched *s = d->s;
    s->dispatch_busy = 0;
    if (rc < 0) {
        log_warn(NULL, "could not look at the queued migrations: %s", err);
    } else {
        if (d->n || d->ended)
            outbox_flush(s);
        for (int i = 0; i < d->n && !s->stopping; i++) {
            char ids[24];
            snprintf(ids, sizeof(ids), "%lld", (long long)d->start[i]);
            log_fields f = {.migration = ids};
            log_info(&f, "migration %lld leaves the queue: the limits allow it now", (long long)d->start[i]);
            orch_start(s, d->start[i]);
        }
    }
    free(err);
    free(d);
    if (s->dispatch_again && !s->stopping) {
        s->dispatch_again = 0;
        queue_dispatch(s);
    }
}

void queue_dispatch(sched *s)
{
    if (!s->db_ready)
        return;
    if (s->dispatch_busy) {
        /* the dispatch on its way may have counted before what asks now was committed */
        s->dispatch_again = 1;
        return;
    }
    disp *d = xcalloc(1, sizeof(*d));
    d->s = s;
    d->cfg = s->cfg->scheduler;
    snprintf(d->dl, sizeof(d->dl), "%lld", (long long)ledger_deadline_s(s, MIG_SCHEDULED));
    s->dispatch_busy = 1;
    dbq_submit(s->dbq, dispatch_work, dispatch_done, d);
}

void queue_on_dispatch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    queue_dispatch(arg);
}

void queue_dispatch_soon(sched *s)
{
    /* an active event is not activated twice: one dispatch however many ask before it runs */
    event_active(s->dispatch, EV_TIMEOUT, 1);
}
