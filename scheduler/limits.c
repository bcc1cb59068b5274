/* limits: counts of the active migrations and the one decision against the limits (limits.h). */
#include <stdlib.h>
#include <string.h>

#include "limits.h"

/* the advisory lock of every limit decision (an arbitrary, fixed key) */
#define LIMITS_LOCK "SELECT pg_advisory_xact_lock(7262, 1)"

typedef struct host_count {
    char *host;
    int64_t out, in;
} host_count;

struct limits_counts {
    host_count *hosts; /* a few dozen at most (the active migrations' hosts): searched in order */
    size_t n, cap;
    int64_t total;  /* active migrations in the cluster */
    int64_t queued; /* queued migrations before the new one (limits_load with hosts) */
};

int limits_lock(db_conn *db)
{
    return db_exec(db, NULL, LIMITS_LOCK, 0, NULL);
}

limits_counts *limits_counts_new(void)
{
    return xcalloc(1, sizeof(limits_counts));
}

void limits_counts_free(limits_counts *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++)
        free(k->hosts[i].host);
    free(k->hosts);
    free(k);
}

static host_count *find(const limits_counts *k, const char *host)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->hosts[i].host, host) == 0)
            return &k->hosts[i];
    return NULL;
}

static host_count *find_or_add(limits_counts *k, const char *host)
{
    host_count *h = find(k, host);
    if (h)
        return h;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->hosts = xrealloc(k->hosts, k->cap * sizeof(*k->hosts));
    }
    h = &k->hosts[k->n++];
    h->host = xstrdup(host);
    h->out = h->in = 0;
    return h;
}

void limits_add(limits_counts *k, const char *source, const char *dest)
{
    find_or_add(k, source)->out++;
    find_or_add(k, dest)->in++;
    k->total++;
}

void limits_add_queued(limits_counts *k, int64_t n)
{
    k->queued += n;
}

int limits_load(db_conn *db, const char *self, const char *source, const char *dest, limits_counts **out)
{
    const char *p[] = {self, source, dest};
    _cleanup_pq_ PGresult *r = NULL;
    /* the row without a host: the cluster's total and the queued ones before a new one; then
     * one row per host (only source and dest when named) with its outgoing and incoming counts */
    if (db_exec(
            db, &r,
            "SELECT NULL::text, 0::bigint, 0::bigint, count(*),"
            "  (SELECT count(*) FROM migrations WHERE status = 'queued' AND (source_host = $2 OR dest_host = $3)"
            "   AND id IS DISTINCT FROM $1::bigint)"
            " FROM migrations WHERE status IN ('scheduled', 'preparing', 'running', 'completing')"
            "  AND id IS DISTINCT FROM $1::bigint"
            " UNION ALL"
            " SELECT x.h, count(*) FILTER (WHERE x.outgoing), count(*) FILTER (WHERE NOT x.outgoing), 0, 0"
            " FROM migrations m CROSS JOIN LATERAL (VALUES (m.source_host, true), (m.dest_host, false)) AS x(h, outgoing)"
            " WHERE m.status IN ('scheduled', 'preparing', 'running', 'completing') AND m.id IS DISTINCT FROM $1::bigint"
            "  AND x.h IS NOT NULL AND ($2::text IS NULL OR x.h = $2 OR x.h = $3)"
            " GROUP BY x.h",
            3, p) < 0)
        return -1;
    limits_counts *k = limits_counts_new();
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, 0)) {
            k->total = atoll(PQgetvalue(r, i, 3));
            k->queued = atoll(PQgetvalue(r, i, 4));
            continue;
        }
        host_count *h = find_or_add(k, PQgetvalue(r, i, 0));
        h->out = atoll(PQgetvalue(r, i, 1));
        h->in = atoll(PQgetvalue(r, i, 2));
    }
    *out = k;
    return 0;
}

int limits_fit(const cfg_scheduler *c, const limits_counts *k, const char *source, const char *dest, char **why)
{
    const host_count *hs = find(k, source), *hd = find(k, dest);
    long long out = hs ? (long long)hs->out : 0, in = hd ? (long long)hd->in : 0, all = (long long)k->total;
    char *w = NULL;
    if (out >= c->max_outgoing_per_source)
        w = xasprintf("%s already has %lld outgoing migrations (max_outgoing_per_source = %lld)", source, out,
                      (long long)c->max_outgoing_per_source);
    else if (in >= c->max_incoming_per_dest)
        w = xasprintf("%s already has %lld incoming migrations (max_incoming_per_dest = %lld)", dest, in,
                      (long long)c->max_incoming_per_dest);
    else if (all >= c->max_cluster)
        w = xasprintf("%lld migrations are running in the cluster (max_cluster = %lld)", all,
                      (long long)c->max_cluster);
    else if (k->queued > 0)
        w = xasprintf("older migrations from %s or to %s are queued: first come, first served", source, dest);
    else
        return 1;
    if (why)
        *why = w;
    else
        free(w);
    return 0;
}
