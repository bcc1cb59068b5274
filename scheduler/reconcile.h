/* reconcile: the reconciler (issue #17). On one replica at a time (the lease of job
 * "reconciler", lease.c), every [scheduler] reconcile_interval_s, it compares the database with
 * what the hosts' fresh heartbeats list (host_domains) and repairs what it can prove, each repair
 * one transaction whose statements check again what the decision read (a concurrent migration or
 * claim wins): orphaned allocations released, an instance's host set to the one host that runs
 * it, an `error` migration settled once its guest runs on exactly one of its two hosts. What it
 * cannot prove (a guest on two hosts, on no host, on a third host) is logged as a warning and
 * counted in a gauge. The decisions are pure (reconcile_rules.c, unit.reconcile); the pass on the
 * database worker is reconcile.c. */
#ifndef FERRY_RECONCILE_H
#define FERRY_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

/* What a repair did, for ferry_reconciler_repairs_total{kind}. */
typedef enum reconcile_repair {
    RECONCILE_ALLOCATION_RELEASED,
    RECONCILE_INSTANCE_HOST,
    RECONCILE_MIGRATION_SETTLED,
    RECONCILE_REPAIR_COUNT
} reconcile_repair;

/* What could not be proved, for ferry_reconciler_unresolved{kind}. */
typedef enum reconcile_unresolved {
    RECONCILE_TWO_HOSTS, /* running (or paused) on two fresh hosts or more */
    RECONCILE_NOWHERE,   /* its hosts are fresh and none lists it */
    RECONCILE_ELSEWHERE, /* an `error` migration's guest runs on neither of its hosts but a third */
    RECONCILE_UNRESOLVED_COUNT
} reconcile_unresolved;

/* The kind's word in the metrics ("allocation_released", ...); static text. */
const char *reconcile_repair_str(reconcile_repair k);
/* The kind's word in the metrics and logs ("two_hosts", ...); static text. */
const char *reconcile_unresolved_str(reconcile_unresolved k);

/* One host's listing of a guest in its last heartbeat. Strings borrowed. */
typedef struct reconcile_seen {
    const char *host;
    int fresh; /* its domains were reported within heartbeat_max_age_s */
    int runs;  /* listed running or paused (not shut off) */
} reconcile_seen;

/* What the database and the heartbeats say of one instance. Strings borrowed. */
typedef struct reconcile_instance {
    const char *db_host;       /* instances.host, NULL when none */
    int db_host_fresh;         /* db_host's domains reported within heartbeat_max_age_s */
    int migrating;             /* task_state set */
    int active_migration;      /* a migration not in a final status */
    int64_t error_migration;   /* its latest migration, in `error` while migrating; 0 when none */
    const char *source, *dest; /* error_migration's hosts */
    int source_fresh, dest_fresh;
    const reconcile_seen *seen; /* every host that lists it */
    size_t n_seen;
} reconcile_instance;

/* What to do with one instance. */
typedef enum reconcile_verdict {
    RECONCILE_NOTHING,       /* the database agrees, or it is not the reconciler's */
    RECONCILE_WAIT,          /* a heartbeat that matters is stale: nothing is proved either way */
    RECONCILE_SET_HOST,      /* instances.host := *host */
    RECONCILE_SETTLE_DEST,   /* the error migration completed: settled to its destination */
    RECONCILE_SETTLE_SOURCE, /* the error migration's guest is on its source: settled back */
    RECONCILE_RAISE,         /* not provable: *unresolved says what was found */
} reconcile_verdict;

/* Decides for instance in: the verdict, *host (borrowed from in) the host it runs on when there
 * is one, *unresolved for RECONCILE_RAISE, and why (what was found, for the log and the event)
 * in why[n]. Pure. */
reconcile_verdict reconcile_decide_instance(const reconcile_instance *in, const char **host,
                                            reconcile_unresolved *unresolved, char *why, size_t n);

/* What the database and the heartbeats say of one allocation. Strings borrowed. */
typedef struct reconcile_alloc {
    const char *host;       /* the allocation's host */
    int is_migration;       /* consumer_type 'migration': the source's, held under a migration */
    const char *mig_status; /* is_migration: its migration's status word */
    int instance_migrating; /* the instance's task_state is set (a migration, active or in error) */
    int host_fresh;         /* host's domains reported within heartbeat_max_age_s, after the allocation was made */
    int host_lists;         /* host lists the instance (in any state) */
    int64_t age_s, grace_s; /* the allocation's age, and how old an orphan must be to go */
} reconcile_alloc;

/* 1 when allocation a is orphaned and is to be released (why[n] says why), 0 when it stays
 * (why says why, or is empty). Pure. */
int reconcile_decide_alloc(const reconcile_alloc *a, char *why, size_t n);

struct sched;
/* Every second, from the tick: starts a reconciler pass on the database worker when
 * reconcile_interval_s has passed since the last one (and none is running); the pass takes or
 * renews the lease of job "reconciler" first and does nothing unless this replica holds it. */
void reconcile_tick(struct sched *s);

#endif
