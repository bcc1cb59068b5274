/* ledger: what the scheduler writes down about a migration's life, in the caller's
 * transaction — its events (migration_events, and for a status the outbox row of its
 * migration.<id>.<status> event), the allocations and instance state settled when it ends, the
 * cancellation of a queued migration, and how long each status may last. Used by intake, queue
 * and the orchestration; it calls only the database (and its worker) and the log, never them. */
#ifndef FERRY_LEDGER_H
#define FERRY_LEDGER_H

#include "proto.h"
#include "sched.h"

/* The status of an event recorded without one (an agent's report of its job). */
#define LEDGER_NO_STATUS MIG_STATUS_COUNT

/* How long a migration may stay in st, from s's config, in seconds (queued, running and
 * completing have their own deadline; every other status the preparing one). */
int64_t ledger_deadline_s(const sched *s, mig_status st);
/* The same from the [scheduler] numbers c (borrowed): for the database worker's copy. */
int64_t ledger_deadline_cfg(const cfg_scheduler *c, mig_status st);

/* Appends a row to migration_events on db (in the caller's transaction when one is open), by
 * replica `scheduler`,
 * with st's word or no status (LEDGER_NO_STATUS); for kind "status" also the matching
 * migration.<id>.<status> event to the outbox, which the caller flushes after the commit
 * (outbox_flush). The strings are borrowed; host and message may be NULL. Returns 0, or -1
 * (see db_error). */
int ledger_record(db_conn *db, const char *scheduler, int64_t migration, const char *origin, const char *host,
                  mig_status st, const char *kind, const char *message) FERRY_WUR;

/* In the caller's transaction: gives the resources of deleted allocation rows (columns host,
 * vcpus, memory_mb, disk_gb, as a DELETE ... RETURNING gives them; borrowed) back to their
 * hosts' usage. Returns 0 or -1. */
int ledger_give_back(db_conn *db, PGresult *rows) FERRY_WUR;

/* In the caller's transaction: moves allocations and the instance's host and task state for a
 * migration ending in st (completed: to dest; failed/cancelled: back to the source; error:
 * nothing moves). id_s, uuid and dest are the migration's (borrowed). Returns 0 or -1. */
int ledger_settle(db_conn *db, mig_status st, const char *id_s, const char *uuid, const char *dest) FERRY_WUR;

/* In the caller's transaction, the migration's row locked by the caller: ends queued
 * migration id_s (nobody drives it) as cancelled with reason why, gives its allocations back
 * (ledger_settle) and records the status (ledger_record). The strings are borrowed. Returns 0
 * or -1. */
int ledger_cancel_queued(sched *s, db_conn *db, const char *id_s, const char *uuid, const char *dest,
                         const char *why) FERRY_WUR;

/* ledger_record of a migration event outside any transaction, by the database worker after
 * the jobs already submitted (the strings are copied); a failure is logged with f's fields (or
 * migration= alone) as "could not <what>: <why>". */
void ledger_record_later(sched *s, const log_fields *f, int64_t migration, const char *origin, const char *host,
                         mig_status st, const char *kind, const char *message, const char *what);

#endif
