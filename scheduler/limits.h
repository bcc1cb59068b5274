/* limits: the concurrency limits ([scheduler] max_outgoing_per_source, max_incoming_per_dest,
 * max_cluster), one decision for both its users: a new request (intake) and the queue's
 * dispatch. A host's counts are its own counters (schema 15: kept by a trigger on migrations,
 * changed only under the host's row lock), read while the caller holds both hosts' row locks,
 * so replicas deciding at once never pass a limit and never wait on each other unless they
 * share a host. Only the cluster's total (max_cluster, when set) is counted under one advisory
 * lock held to the commit. */
#ifndef FERRY_LIMITS_H
#define FERRY_LIMITS_H

#include "config.h"
#include "db.h"

/* What one decision weighs: a migration from a source to a destination. */
typedef struct limits_view {
    int64_t out;    /* the source's active migrations out of it */
    int64_t in;     /* the destination's active migrations into it */
    int64_t total;  /* the cluster's active migrations (not counted while max_cluster is 0) */
    int64_t queued; /* queued migrations from the source or to the destination that come first */
} limits_view;

/* Counts the cluster's active migrations into *total under the advisory lock of every
 * cluster-wide decision (held to the commit of db's open transaction) when c sets max_cluster;
 * 0 without taking anything when it does not. Returns 0, or -1 (see db_error). */
int limits_cluster_total(const cfg_scheduler *c, db_conn *db, int64_t *total) FERRY_WUR;
/* Locks source's and dest's host rows (FOR NO KEY UPDATE, in name order) in db's open
 * transaction and reads their counters into v: out, in, and queued as their queued migrations
 * (total is left as it is). Returns 1, 0 when either host is unknown, or -1 (see db_error). */
int limits_hosts(db_conn *db, const char *source, const char *dest, limits_view *v) FERRY_WUR;
/* Whether one more migration from source to dest fits c's limits given v: 1, or 0 with *why
 * (caller frees; why may be NULL when the reason is not wanted) saying which limit, checked in
 * order: the source's outgoing, the destination's incoming, the cluster (max_cluster 0: none),
 * older queued ones. */
int limits_fit(const cfg_scheduler *c, const limits_view *v, const char *source, const char *dest, char **why);

#endif
