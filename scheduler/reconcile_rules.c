/* reconcile_rules: the reconciler's decisions, pure (reconcile.h; unit.reconcile). Nothing is
 * proved by a stale heartbeat: a host whose domains were not reported within
 * heartbeat_max_age_s may run anything, so any decision that depends on it waits. */
#include <stdio.h>
#include <string.h>

#include "reconcile.h"

const char *reconcile_repair_str(reconcile_repair k)
{
    switch (k) {
    case RECONCILE_ALLOCATION_RELEASED:
        return "allocation_released";
    case RECONCILE_INSTANCE_HOST:
        return "instance_host";
    case RECONCILE_MIGRATION_SETTLED:
        return "migration_settled";
    default:
        return "unknown";
    }
}

const char *reconcile_unresolved_str(reconcile_unresolved k)
{
    switch (k) {
    case RECONCILE_TWO_HOSTS:
        return "two_hosts";
    case RECONCILE_NOWHERE:
        return "nowhere";
    case RECONCILE_ELSEWHERE:
        return "elsewhere";
    default:
        return "unknown";
    }
}

static int same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The fresh hosts running the guest, listed in out[n] as "a, b", their count returned; *one the
 * only one when there is one; *stale_runs whether a stale host lists it running. */
static size_t running_on(const reconcile_instance *in, const char **one, int *stale_runs, char *out, size_t n)
{
    size_t k = 0, len = 0;
    *one = NULL;
    *stale_runs = 0;
    if (n)
        out[0] = 0;
    for (size_t i = 0; i < in->n_seen; i++) {
        const reconcile_seen *s = &in->seen[i];
        if (!s->runs)
            continue;
        if (!s->fresh) {
            *stale_runs = 1;
            continue;
        }
        if (k++ == 0)
            *one = s->host;
        if (len < n) {
            int w = snprintf(out + len, n - len, "%s%s", len ? ", " : "", s->host);
            len += w > 0 ? (size_t)w : 0;
        }
    }
    return k;
}

reconcile_verdict reconcile_decide_instance(const reconcile_instance *in, const char **host,
                                            reconcile_unresolved *unresolved, char *why, size_t n)
{
    const char *one = NULL;
    int stale_runs = 0;
    char hosts[512];
    size_t k = running_on(in, &one, &stale_runs, hosts, sizeof(hosts));
    *host = NULL;
    if (n)
        why[0] = 0;
    if (in->active_migration)
        return RECONCILE_NOTHING; /* the orchestration's, and its lease's */
    if (in->migrating && in->error_migration) {
        if (!in->source_fresh || !in->dest_fresh || stale_runs) {
            snprintf(why, n, "waiting: a heartbeat of %s is stale",
                     !in->source_fresh ? in->source
                     : !in->dest_fresh ? in->dest
                                       : "a host listing it");
            return RECONCILE_WAIT;
        }
        if (k > 1) {
            *unresolved = RECONCILE_TWO_HOSTS;
            snprintf(why, n, "the guest runs on %zu hosts: %s", k, hosts);
            return RECONCILE_RAISE;
        }
        if (k == 0) {
            *unresolved = RECONCILE_NOWHERE;
            snprintf(why, n, "the guest runs on no host: neither %s (source) nor %s (destination) lists it running",
                     in->source, in->dest);
            return RECONCILE_RAISE;
        }
        *host = one;
        if (same(one, in->dest)) {
            snprintf(why, n, "the guest runs on %s (destination) only, by the heartbeats of both hosts", one);
            return RECONCILE_SETTLE_DEST;
        }
        if (same(one, in->source)) {
            snprintf(why, n, "the guest runs on %s (source) only, by the heartbeats of both hosts", one);
            return RECONCILE_SETTLE_SOURCE;
        }
        *unresolved = RECONCILE_ELSEWHERE;
        snprintf(why, n, "the guest runs on %s, neither the source %s nor the destination %s", one, in->source,
                 in->dest);
        return RECONCILE_RAISE;
    }
    if (in->migrating)
        return RECONCILE_NOTHING; /* between a claim and its migration's end: not the reconciler's */
    if (stale_runs) {
        snprintf(why, n, "waiting: a host listing it running has a stale heartbeat");
        return RECONCILE_WAIT;
    }
    if (k > 1) {
        *unresolved = RECONCILE_TWO_HOSTS;
        snprintf(why, n, "the guest runs on %zu hosts: %s", k, hosts);
        return RECONCILE_RAISE;
    }
    if (k == 1) {
        *host = one;
        if (same(one, in->db_host))
            return RECONCILE_NOTHING;
        if (in->db_host && !in->db_host_fresh) {
            snprintf(why, n, "waiting: it runs on %s, but %s (the database's host) has a stale heartbeat", one,
                     in->db_host);
            return RECONCILE_WAIT;
        }
        if (in->db_host)
            snprintf(why, n, "it runs on %s only; %s (the database's host) does not list it running", one, in->db_host);
        else
            snprintf(why, n, "it runs on %s only; the database had no host for it", one);
        return RECONCILE_SET_HOST;
    }
    /* running nowhere: a guest shut off on some host is not lost */
    for (size_t i = 0; i < in->n_seen; i++)
        if (in->seen[i].fresh || !in->db_host_fresh)
            return RECONCILE_NOTHING;
    if (in->db_host && in->db_host_fresh && in->n_seen == 0) {
        *unresolved = RECONCILE_NOWHERE;
        *host = in->db_host;
        snprintf(why, n, "the guest runs on no host: %s (the database's host) does not list it, nor does any other",
                 in->db_host);
        return RECONCILE_RAISE;
    }
    return RECONCILE_NOTHING;
}

int reconcile_decide_alloc(const reconcile_alloc *a, char *why, size_t n)
{
    if (n)
        why[0] = 0;
    if (a->age_s < a->grace_s)
        return 0;
    if (a->is_migration) {
        const char *st = a->mig_status ? a->mig_status : "";
        if (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0) {
            snprintf(why, n, "held for a migration that ended %s %lld s ago or more", st, (long long)a->grace_s);
            return 1;
        }
        return 0; /* active: the orchestration's; error: settled with its migration */
    }
    if (a->instance_migrating)
        return 0; /* a migration's destination claim, or in error: settled with it */
    if (!a->host_fresh) {
        snprintf(why, n, "waiting: %s has not reported its domains since (stale heartbeat)", a->host);
        return 0;
    }
    if (a->host_lists)
        return 0;
    snprintf(why, n, "%s does not list the instance (fresh heartbeat), for %lld s or more", a->host,
             (long long)a->grace_s);
    return 1;
}
