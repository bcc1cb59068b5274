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
#include "trust.h"

typedef struct sched {
    ferry_config *cfg;
    struct event_base *base;
    db_conn *db;
    mq_conn *mq;
    struct event *db_retry;
    char *name;
    int exit_code;
    int consuming;
    struct event *tick;    /* every second: leases, adoption, queued migrations, outbox */
    int ticks;
    int outbox_busy;       /* publishes of claimed outbox rows not yet confirmed */
    struct event *dispatch; /* activated for a queue_dispatch on the next loop turn (made by main.c) */
    int stopping;          /* the loop has ended: calls cut short are not failures */
    struct evhttp *http;   /* NULL when [http] enabled = false */
    void *http_tls;        /* the HTTPS server's SSL_CTX, NULL for plain HTTP */
    int http_port;         /* --http-port, or -1 for [http] port */
    struct http_conns *http_conns; /* the HTTP server's open connections (http.c) */
    struct orchcall_pending *resends; /* agent calls waiting to be sent again (orchcall.c) */
    /* counters of this replica, for /metrics */
    int64_t claims, claim_us, accepted, refused, invalid;
} sched;

/* The queue of this scheduler's event consumer (all replicas share it: one of them records
 * each event). */
#define SCHED_EVENTS_QUEUE "ferry.scheduler.events"
/* The queue of the read RPCs (scheduler/API.md), shared by the replicas, and its key on the
 * ferry exchange. */
#define SCHED_RPC_QUEUE "ferry.scheduler.rpc"
#define SCHED_RPC_KEY "scheduler.rpc"

/* ---- host state (hoststate.c) ---------------------------------------------------------------- */
/* Consumer of SCHED_EVENTS_QUEUE: heartbeats into hosts/instances/allocations, agent
 * migration events into migration_events and the orchestration. Owns d. */
void hoststate_on_event(mq_conn *c, mq_delivery *d, void *arg);

/* ---- intake (intake.c) ------------------------------------------------------------------------ */
/* Consumer of ferry.scheduler: one request, one transaction. Owns d. */
void intake_on_request(mq_conn *c, mq_delivery *d, void *arg);

/* ---- operator requests (intake.c) ------------------------------------------------------------ */
/* Handles a migration.abort or migration.force_complete request on ferry.scheduler (body
 * {"migration": id}): recorded on the migration for its owner, or a queued migration is
 * cancelled at once; replies <type>.accepted or <type>.refused with the reason. Owns d; env is
 * the caller's. */
void intake_operator(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env);

/* ---- limits and the queue (queue.c) ---------------------------------------------------------- */
/* In the caller's transaction: serializes with every other replica's limit decisions (an
 * advisory lock held to the commit) and says whether one more migration from source to dest
 * fits max_outgoing_per_source, max_incoming_per_dest and max_cluster, not counting migration
 * `self` (the caller's own, already inserted; NULL for none). Returns 1 (fits), 0 (*why, caller
 * frees, says which limit) or -1 (database error). Take it as late as the transaction allows:
 * the lock is held to the commit and every replica's claims wait for it. */
int queue_limits_allow(sched *s, db_conn *db, const char *source, const char *dest, const char *self,
                       char **why) FERRY_WUR;
/* Starts the queued migrations the limits now allow (oldest first, as this replica's), and
 * cancels queued ones that were aborted or waited past deadline_queued_s. */
void queue_dispatch(sched *s);
/* queue_dispatch on the next loop turn (safe from inside any callback), through s->dispatch. */
void queue_dispatch_soon(sched *s);
/* The callback of s->dispatch (arg: the sched): queue_dispatch. */
void queue_on_dispatch(evutil_socket_t fd, short what, void *arg);

/* ---- events outbox (outbox.c) ---------------------------------------------------------------- */
/* Publishes the outbox's unclaimed rows on ferry.events (message id fixed in the row), each
 * deleted when the broker confirms it; a row whose publish failed, or whose replica died, is
 * published again later by any replica. */
void outbox_flush(sched *s);

/* ---- reads and the HTTP API (api.c, http.c; see scheduler/API.md) ------------------------------ */
/* Each read returns a new JSON object (caller puts it), or NULL with *err (caller frees);
 * *found = 0 means the thing named does not exist (as opposed to a database failure). */
json_object *api_hosts(sched *s, char **err);
json_object *api_host(sched *s, const char *name, int *found, char **err);
/* Sets host name's state (enabled / disabled / maintenance) and reason; returns the host. */
json_object *api_host_set_state(sched *s, const char *name, const char *state, const char *reason, int *found, char **err);
json_object *api_instances(sched *s, const char *host, char **err);
json_object *api_migrations(sched *s, const char *status, int limit, char **err);
json_object *api_migration(sched *s, int64_t id, int *found, char **err);
/* Finds the instance ref (uuid, name or i-xxxxxxxx): 1 with *uuid and *ec2 (caller frees),
 * 0 none, 2 an ambiguous name, -1 database error; *err says why when not 1. */
int api_resolve_instance(sched *s, const char *ref, char **uuid, char **ec2, char **err);
/* Consumer of SCHED_RPC_QUEUE: answers the read RPCs. Owns d. */
void api_on_rpc(mq_conn *c, mq_delivery *d, void *arg);
/* Starts the HTTP server when [http] enabled; 0, or -1 with *err (caller frees). */
int http_start(sched *s, char **err) FERRY_WUR;
/* Stops it; answers still waiting for a replica are dropped. */
void http_stop(sched *s);
/* Every second: closes the sockets of HTTP connections evhttp has finished with. */
void http_tick(sched *s);

/* ---- orchestration (orch.c) -------------------------------------------------------------------- */
/* Drives migration id, owned by this replica (owner and epoch in its row), from its recorded
 * status onwards; a migration found mid-way is resumed from what the agents say. */
void orch_start(sched *s, int64_t migration);
/* Acts on what the lease renewal read for migration id, if this replica drives it: the
 * operator's abort or force-complete request, a passed deadline. */
void orch_act(sched *s, int64_t migration, int abort_req, int fc_req, int past_deadline);
/* How many migrations this replica drives now. */
int orch_count(void);
/* Acts now on the operator's requests recorded for migration id, if this replica drives it. */
void orch_poke(sched *s, int64_t migration);
/* An agent event about migration id (completed / failed / cancelled / postcopy / progress). */
void orch_on_agent_event(sched *s, int64_t migration, const char *what, json_object *body);

#endif
