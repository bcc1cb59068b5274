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
/* Every second while the broker is away: only renews this replica's leases (a migration
 * adopted by another is left). Requests and deadlines wait for the broker, when an agent can be
 * asked again; nothing is adopted. */
void lease_renew(sched *s);

#endif
