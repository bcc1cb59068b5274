/* drain: server-side host drains (issue #18; docs/DESIGN.md "Drain"). drainop.c answers the
 * operator's drain.start, drain.cancel, drain.list and drain.show on ferry.scheduler; drain.c is
 * the drainer: on the replica holding the lease of job DRAIN_JOB, every tick, it follows each
 * drain's migrations, re-plans what is left (drainplan.c) and publishes the next migration
 * requests, each under the request id its item recorded first (a request published again after
 * a failover has one effect), and writes the receipt at the end. */
#ifndef FERRY_DRAIN_H
#define FERRY_DRAIN_H

#include "db.h"
#include "drainplan.h"
#include "sched.h"

/* The job of replica_leases whose holder drives every drain. */
#define DRAIN_JOB "drainer"
/* A guest's attempts: a refused or failed migration is requested once more. */
#define DRAIN_ATTEMPTS 2

/* How many migrations a drain may run at once at most: max_outgoing_per_source when set, else 4. */
int drain_max_parallel(const cfg_scheduler *cs);

/* Handles drain.start, drain.cancel, drain.list and drain.show on ferry.scheduler (drainop.c):
 * answered <type>.accepted (list and show: <type>.result) or <type>.refused with the reason,
 * after its transaction on the database worker. Owns d and env. */
void drainop_on_request(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env);

/* In db's transaction: the unfinished migrations of drain drain_id's guests under way asked to
 * abort (those not asked yet); *out (caller clears) lists their ids. 0, or -1 on a database
 * error. One place for a cancel (drainop.c) and the drainer's late answers (drain.c). */
int drain_abort_migrations(db_conn *db, const char *drain_id, PGresult **out) FERRY_WUR;

/* Every tick (drain.c): when no pass is with the database worker, one pass of the drainer. */
void drain_tick(sched *s);

#endif
