/* sched: the state of one ferry-scheduler replica and what its modules share. Everything runs
 * on the libevent loop's thread; database calls are short synchronous transactions. */
#ifndef FERRY_SCHED_H
#define FERRY_SCHED_H

#include <event2/event.h>
#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "mq.h"
#include "msg.h"

typedef struct sched {
    ferry_config *cfg;
    struct event_base *base;
    db_conn *db;
    mq_conn *mq;
    struct event *db_retry;
    char *name;
    int exit_code;
    int consuming;
} sched;

/* The queue of this scheduler's event consumer (all replicas share it: one of them records
 * each event). */
#define SCHED_EVENTS_QUEUE "ferry.scheduler.events"

/* ---- host state (hoststate.c) ---------------------------------------------------------------- */
/* Consumer of SCHED_EVENTS_QUEUE: heartbeats into hosts/instances/allocations, agent
 * migration events into migration_events and the orchestration. Owns d. */
void hoststate_on_event(mq_conn *c, mq_delivery *d, void *arg);

/* ---- intake (intake.c) ------------------------------------------------------------------------ */
/* Consumer of ferry.scheduler: one request, one transaction. Owns d. */
void intake_on_request(mq_conn *c, mq_delivery *d, void *arg);

/* ---- orchestration (orch.c) -------------------------------------------------------------------- */
/* Drives migration id from its recorded status onwards. */
void orch_start(sched *s, int64_t migration);
/* An agent event about migration id (completed / failed / cancelled / postcopy / progress). */
void orch_on_agent_event(sched *s, int64_t migration, const char *what, json_object *body);
/* Appends a row to migration_events (in the caller's transaction when one is open); the
 * matching migration.<id>.<status> event is published by the orchestration after the commit.
 * Returns 0, or -1 (see db_error). */
int orch_record(sched *s, int64_t migration, const char *origin, const char *host, const char *status,
                const char *kind, const char *message) FERRY_WUR;

#endif
