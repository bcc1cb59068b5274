/* lease: the leases of the migrations this replica drives, and the adoption of those whose
 * lease expired (lease.c). */
#ifndef FERRY_LEASE_H
#define FERRY_LEASE_H

#include "sched.h"

/* Every second: renews this replica's leases (a migration adopted by another is left), acts
 * on abort / force-complete requests and passed deadlines, and adopts migrations whose lease
 * expired; with starting=1 (the first tick) it resumes its own migrations instead. */
void lease_tick(sched *s, int starting);
/* Every second while the broker is away: only renews this replica's leases (a migration
 * adopted by another is left). Requests and deadlines wait for the broker, when an agent can be
 * asked again; nothing is adopted. */
void lease_renew(sched *s);

/* On the database worker (db borrowed): takes or renews the lease of replica job `job` (a row of
 * replica_leases, e.g. "reconciler") for owner, lasting lease_s; it changes hands only once
 * expired, its epoch raised then. Sets *epoch to the lease's epoch when owner holds it now, 0
 * when another replica does. Returns 0, or -1 (see db_error). */
int lease_hold_job(db_conn *db, const char *job, const char *owner, int64_t lease_s, int64_t *epoch) FERRY_WUR;
/* On the database worker, inside the caller's transaction: locks the lease row of job and says
 * whether owner still holds it at epoch (1), or not (0: the caller changes nothing); -1 on a
 * database error. */
int lease_job_still_held(db_conn *db, const char *job, const char *owner, int64_t epoch) FERRY_WUR;

#endif
