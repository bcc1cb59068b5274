/* limits: the hosts' counters and the one decision against the limits (limits.h). */
#include <stdlib.h>
#include <string.h>

#include "limits.h"

int limits_cluster_total(const cfg_scheduler *c, db_conn *db, int64_t *total)
{
    *total = 0;
    if (c->max_cluster <= 0)
        return 0;
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, "SELECT ferry_cluster_active_locked()", 0, NULL) < 0)
        return -1;
    *total = atoll(PQgetvalue(r, 0, 0));
    return 0;
}

int limits_hosts(db_conn *db, const char *source, const char *dest, limits_view *v)
{
    const char *p[] = {source, dest};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT name = $1, migrations_out, migrations_in, queued_out, queued_in FROM hosts"
                " WHERE name IN ($1, $2) ORDER BY name FOR NO KEY UPDATE",
                2, p) < 0)
        return -1;
    if (PQntuples(r) != 2)
        return 0;
    v->queued = 0;
    for (int i = 0; i < 2; i++) {
        if (strcmp(PQgetvalue(r, i, 0), "t") == 0) {
            v->out = atoll(PQgetvalue(r, i, 1));
            v->queued += atoll(PQgetvalue(r, i, 3));
        } else {
            v->in = atoll(PQgetvalue(r, i, 2));
            v->queued += atoll(PQgetvalue(r, i, 4));
        }
    }
    return 1;
}

int limits_fit(const cfg_scheduler *c, const limits_view *v, const char *source, const char *dest, char **why)
{
    long long out = (long long)v->out, in = (long long)v->in, all = (long long)v->total;
    char *w = NULL;
    if (out >= c->max_outgoing_per_source)
        w = xasprintf("%s already has %lld outgoing migrations (max_outgoing_per_source = %lld)", source, out,
                      (long long)c->max_outgoing_per_source);
    else if (in >= c->max_incoming_per_dest)
        w = xasprintf("%s already has %lld incoming migrations (max_incoming_per_dest = %lld)", dest, in,
                      (long long)c->max_incoming_per_dest);
    else if (c->max_cluster > 0 && all >= c->max_cluster)
        w = xasprintf("%lld migrations are running in the cluster (max_cluster = %lld)", all,
                      (long long)c->max_cluster);
    else if (v->queued > 0)
        w = xasprintf("older migrations from %s or to %s are queued: first come, first served", source, dest);
    else
        return 1;
    if (why)
        *why = w;
    else
        free(w);
    return 0;
}
