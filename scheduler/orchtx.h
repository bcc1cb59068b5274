/* orchtx: the orchestration's two transactions (orch.c's steps are above it): a status
 * transition and a migration's end, each submitted to the database worker with what it needs
 * copied from the orch, its continuation finding the orch again by id and epoch. Each
 * transition is a migration_events row and, in the same transaction, the outbox row of its
 * migration.<id>.<status> event (ledger.c), flushed after the commit. */
#ifndef FERRY_ORCHTX_H
#define FERRY_ORCHTX_H

#include "forecast.h"
#include "orchcore.h"
#include "orchreply.h"

/* A step that runs once a transition is committed, with o found again (still driven here, at
 * the same epoch, and no failure begun since the transition was asked). */
typedef void (*orchtx_next_fn)(orch *o);

/* Commits o's status from its current one to `to` (message borrowed) on the database worker,
 * then runs next(o); when it could not (logged) the orchestration of o stops. o->status says
 * `to` from now on: every later statement for o is submitted after this one and runs after its
 * commit. Already there (a resumed migration): next at once. */
void orchtx_transition(orch *o, mig_status to, const char *message, orchtx_next_fn next);
/* Ends o in final status (error and stats borrowed: what is needed is copied; stats, the
 * source's final figures as orchreply read them, or NULL), committed with its settling on the
 * database worker; then o is let go and a slot of the limits is freed. o is marked finishing
 * at once: nothing else is done for it. */
void orchtx_finish(orch *o, mig_status status, const char *error, const orchreply_stats *stats);

/* Marks o as in (on) or out of the sub-state `recovering` of `running` (migrations.recovering_since,
 * kept from the first mark of a recovery) with a migration event of kind recovering / recovered
 * (message borrowed), on the database worker; a failure is logged. */
void orchtx_recovering(orch *o, int on, const char *message);
/* Records o's new bandwidth cap (migrations.bandwidth_mib_s) with an event of kind `bandwidth`
 * saying message (borrowed), on the database worker (guarded by owner and epoch); a failure
 * is logged. */
void orchtx_bandwidth(orch *o, int mib_s, const char *message);
/* Forecasts o in mode from in (copied) with the fixed costs learned from earlier migrations
 * (forecastop_learn_fixed; in's own when too few say) and stores it before it moves (issue #18:
 * mode, converges, duration, pause, bytes, the dirty rate, non-zero memory and bandwidth it
 * assumed) on the migration, with an event of kind `forecast` saying it, on the database worker
 * (guarded by owner and epoch). sampled: o's source sampled the dirty rate for this migration
 * (its forecast_sample_s is part of the configured fixed costs); else the sample is an earlier
 * migration's, which sample_note (borrowed, or NULL) names in the event. */
void orchtx_forecast(orch *o, forecast_mode mode, const forecast_in *in, int64_t dirty_mib_s, int64_t nonzero_mib,
                     int64_t bandwidth_mib_s, int sampled, const char *sample_note);

#endif
