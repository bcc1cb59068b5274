/* limits: the concurrency limits ([scheduler] max_outgoing_per_source, max_incoming_per_dest,
 * max_cluster), in one place for both their users: a new request (intake, through
 * queue_limits_allow) and the queue's dispatch. The active migrations are counted by one SQL
 * statement read under one advisory lock held to the commit (so replicas deciding at once
 * count each other's migrations), and one C function decides; the dispatch adds the
 * migrations it starts to the counts as it goes (any number of hosts). */
#ifndef FERRY_LIMITS_H
#define FERRY_LIMITS_H

#include "config.h"
#include "db.h"

/* The active migrations (scheduled to completing) by host, and the cluster's total. */
typedef struct limits_counts limits_counts;

/* Takes the advisory lock of every limit decision in db's open transaction (held to its
 * commit). Returns 0, or -1 (see db_error). */
int limits_lock(db_conn *db) FERRY_WUR;
/* Reads the active migrations' counts, not counting migration self (NULL for none), into a new
 * *out (caller frees with limits_counts_free). With source and dest (both NULL for every host),
 * only those two hosts are counted, and also the queued migrations from source or to dest
 * other than self (first come, first served). Call it under limits_lock. Returns 0, or -1 (see
 * db_error). */
int limits_load(db_conn *db, const char *self, const char *source, const char *dest, limits_counts **out) FERRY_WUR;
/* Returns new, empty counts (caller frees with limits_counts_free). */
limits_counts *limits_counts_new(void);
/* Frees counts; NULL is accepted. */
void limits_counts_free(limits_counts *k);
/* Counts one more active migration from source to dest (strings copied). */
void limits_add(limits_counts *k, const char *source, const char *dest);
/* Counts queued migrations that wait before a new one (first come, first served). */
void limits_add_queued(limits_counts *k, int64_t n);
/* Whether one more migration from source to dest fits c's limits given k: 1, or 0 with *why
 * (caller frees; why may be NULL when the reason is not wanted) saying which limit, checked in
 * order: the source's outgoing, the destination's incoming, the cluster, older queued ones. */
int limits_fit(const cfg_scheduler *c, const limits_counts *k, const char *source, const char *dest, char **why);

#endif
