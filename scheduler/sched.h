/* sched: the state of one ferry-scheduler replica and what its modules share. Everything runs
 * on the libevent loop's thread but the database: every statement is a job of the database
 * worker (common/dbq), submitted from the loop, whose continuation runs on the loop again and
 * finds what it acts on by id (a migration may have ended meanwhile). */
#ifndef FERRY_SCHED_H
#define FERRY_SCHED_H

#include <event2/event.h>
#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "dbq.h"
#include "log.h"
#include "mq.h"
#include "reconcile.h"
#include "msg.h"
#include "trust.h"

typedef struct sched {
    ferry_config *cfg;
    struct event_base *base;
    dbq *dbq;               /* the database worker: every statement of the loop goes through it... */
    dbq *claims_dbq;        /* ...but the requests' decisions (intake), which have a connection of their own:
                             * a claim never waits behind heartbeats, lease renewals or the outbox */
    int db_ready;           /* the database answered at the start and its schema is the expected one */
    char db_started_at[64]; /* the database's clock then: the first tick resumes only older migrations */
    int db_probe_busy;      /* the tick's health probe is queued or running */
    mq_conn *mq;
    struct event *db_retry;
    char *name;
    int exit_code;
    int consuming;
    struct event *tick; /* every second: leases, adoption, queued migrations, outbox */
    int ticks;
    int outbox_busy;     /* publishes of claimed outbox rows not yet confirmed */
    int dispatch_busy;   /* a queue dispatch is with the database worker */
    int dispatch_again;  /* ... and another was asked meanwhile */
    int lease_busy;      /* the tick's lease renewal and adoption are with the database worker */
    int outbox_claiming; /* an outbox claim is with the database worker */
    int outbox_again;    /* ... and another flush was asked meanwhile */
    int64_t *outbox_del; /* confirmed outbox rows waiting for their deletion */
    size_t outbox_ndel, outbox_capdel;
    int outbox_deleting;              /* a deletion of confirmed rows is with the database worker */
    struct event *dispatch;           /* activated for a queue_dispatch on the next loop turn (made by main.c) */
    int stopping;                     /* the loop has ended: calls cut short are not failures */
    struct evhttp *http;              /* NULL when [http] enabled = false */
    void *http_tls;                   /* the HTTPS server's SSL_CTX, NULL for plain HTTP */
    int http_port;                    /* --http-port, or -1 for [http] port */
    struct http_conns *http_conns;    /* the HTTP server's open connections (http.c) */
    struct orchcall_pending *resends; /* agent calls waiting to be sent again (orchcall.c) */
    struct samplecache *samples;      /* each instance's last dirty-rate sample (samplecache.h) */
    /* counters of this replica, for /metrics */
    int64_t claims, claim_us, accepted, refused, invalid;
    /* the reconciler (reconcile.c) */
    int reconcile_busy;                                       /* a pass is with the database worker */
    int reconcile_holder;                                     /* this replica held its lease in the last pass */
    int64_t reconcile_next_ms;                                /* monotonic time of the next pass */
    int64_t reconcile_repairs[RECONCILE_REPAIR_COUNT];        /* for ferry_reconciler_repairs_total */
    int64_t reconcile_unresolved[RECONCILE_UNRESOLVED_COUNT]; /* what the last pass could not prove */
    /* the drainer (drain.c) */
    int drain_busy;               /* a pass is with the database worker */
    int drain_again;              /* ... and another was asked meanwhile */
    int64_t drain_next_ms;        /* monotonic time of the next pass */
    json_object *config_policies; /* the configuration file's [policy NAME]s as policy.set bodies */
    /* heartbeats waiting for the next batch (hoststate.c) */
    struct ev_job **hb_pending;
    size_t hb_npending, hb_cap;
    int hb_batches; /* batches with the database worker */
} sched;

/* The queue of this scheduler's event consumer (all replicas share it: one of them records
 * each event). */
#define SCHED_EVENTS_QUEUE "ferry.scheduler.events"
/* The queue of the read RPCs (scheduler/API.md), shared by the replicas, and its key on the
 * ferry exchange. */
#define SCHED_RPC_QUEUE "ferry.scheduler.rpc"
#define SCHED_RPC_KEY "scheduler.rpc"
/* A database job running longer than this makes /healthz say the database is stalled. */
#define SCHED_DB_STALL_MS 2000
/* How long a stop lets the running database job finish before abandoning it. */
#define SCHED_DB_STOP_GRACE_MS 3000

/* ---- host state (hoststate.c) ---------------------------------------------------------------- */
/* Consumer of SCHED_EVENTS_QUEUE: heartbeats into hosts/instances/allocations, agent
 * migration events into migration_events and the orchestration. Owns d. */
void hoststate_on_event(mq_conn *c, mq_delivery *d, void *arg);
/* At the stop, after the loop: the heartbeats still waiting for a batch go to the database
 * worker (whose stop finishes their deliveries). */
void hoststate_stop(sched *s);

/* ---- intake (intake.c) ------------------------------------------------------------------------ */
/* Consumer of ferry.scheduler: one request, one transaction (on the database worker; the
 * answer and the ack after its commit, on the loop). Owns d. */
void intake_on_request(mq_conn *c, mq_delivery *d, void *arg);

/* ---- operator requests (intake.c) ------------------------------------------------------------ */
/* Handles a migration.abort or migration.force_complete request on ferry.scheduler (body
 * {"migration": id}): recorded on the migration for its owner, or a queued migration is
 * cancelled at once; replies <type>.accepted or <type>.refused with the reason, after its
 * transaction on the database worker. Owns d and env. */
void intake_operator(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env);
/* Answers request d (its reply_to, with its correlation id; nothing without a reply_to) with
 * a message of type and body (taken), in reply to request id. */
void intake_reply(sched *s, mq_delivery *d, const char *type, const char *id, json_object *body);
/* Refuses operator request d (its envelope env, of type, from sender) whose body is not valid:
 * logged with why, answered <type>.refused {"reason": why}, dead-lettered with why. Borrows
 * all; the caller still owns env. */
void intake_refuse_body(sched *s, mq_conn *c, mq_delivery *d, const msg_envelope *env, const char *sender,
                        const char *why);
/* Handles a migration.resolve request on ferry.scheduler (body {"migration": id, "to":
 * "source"|"destination"}; reconcile_resolve.c): for a migration in error, job_status asked of
 * both hosts, settled only when libvirt on the named host says the guest runs there and on the
 * other that it does not; replies migration.resolve.accepted or .refused with the reason (a
 * refusal recorded as the migration's event of kind resolve). Owns d and env. */
void reconcile_resolve(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env);
/* Handles an instance.forecast request on ferry.scheduler (body {"instance", and optional
 * "bandwidth_mib_s", "max_downtime_ms", "deadline_s", "seconds"}; forecastop.c): the instance's
 * host samples its dirty rate (dirty_rate), and each mode's forecast and the mode that meets the
 * objectives are answered as instance.forecast.result, or instance.forecast.refused with the
 * reason. Changes nothing. Owns d and env. */
void forecastop_on_request(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env);
/* Handles policy.set, policy.delete and policy.list on ferry.scheduler (policyop.c): a policy
 * upserted (policy.c reads it), deleted, or all of them answered; replies <type>.accepted
 * (policy.list.result) or <type>.refused with the reason. Owns d and env. */
void policyop_on_request(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env);
struct policy;
/* Upserts policy q (borrowed) in db's transaction, written by `by`, kept as the configuration
 * file's (from_config) or an operator's; *created says a new row. An operator's change to a
 * policy of the file is not made: 0 with *refused (caller frees). -1 on a database error. */
int policyop_upsert(db_conn *db, const struct policy *q, const char *by, int from_config, int *created, char **refused);
/* Writes the configuration file's policies (bodies: policy_config_bodies's, borrowed) in db's
 * transaction and removes those of the file no longer in it. 0, or -1 with *err (caller frees). */
int policyop_sync_config(db_conn *db, json_object *bodies, char **err);
/* The bandwidth a forecast assumes for migrations from src (to dest; NULL: to any host), and
 * where the figure comes from (static text): [scheduler] bandwidth_mib_s when set, else the
 * median rate of the last (at most 10, at least 3) completed migrations between them that no
 * bandwidth cap held back and that ran alone from src (one that overlapped another from src had
 * only a share of the link) — the memory they sent over their duration less the forecast's
 * fixed costs, those that lasted long enough to say — else forecast_bandwidth_mib_s. On the database worker: 0, or -1 (db_error). */
int forecastop_link(db_conn *db, const cfg_scheduler *cs, const char *src, const char *dest, int64_t *mib_s,
                    const char **from) FERRY_WUR;
/* The fixed cost of a migration learned from earlier ones: the median, over the last (at most
 * 10, at least 3) completed migrations that ran under a bandwidth cap, of their duration less
 * what they sent at their cap — the claim, checks, sample, prepare, libvirt's setup and the
 * switch-over, all that the transfer does not explain. When learned, cs (a caller's copy) gets
 * forecast_setup_ms such that forecast_setup_ms + forecast_sample_s + forecast_switch_ms is
 * that median, and *ms the median; 1 then, 0 (cs unchanged) when too few migrations say, -1 on
 * a database error (db_error). On the database worker. */
int forecastop_learn_fixed(db_conn *db, cfg_scheduler *cs, int64_t *ms) FERRY_WUR;
/* A migration request's plan for its objectives (issue #18), from a forecast taken before
 * anything is claimed. */
typedef struct forecastop_plan {
    int cancelled;    /* the scheduler is stopping: nothing was decided */
    int taken;        /* 0: no forecast (note says why): the request runs as it asked */
    int feasible;     /* taken: a mode meets the objectives (else note says why none does) */
    int mode;         /* feasible: the forecast_mode chosen */
    int64_t limit_ms; /* feasible: QEMU's downtime limit the forecast assumed */
    char *note;       /* what was decided, in words (the callback takes it) */
} forecastop_plan;
typedef void (*forecastop_plan_fn)(void *arg, forecastop_plan *plan);
/* Plans request rq (borrowed until done runs) against its objectives: the instance's host
 * samples its dirty rate, and the mode that meets the objectives and slows the guest least is
 * chosen among pre-copy, auto-converge and (when the request allows it) post-copy, at the
 * request's bandwidth (else the configured one). done(arg, plan) runs once on the loop. */
void forecastop_plan_request(sched *s, const msg_request *rq, forecastop_plan_fn done, void *arg);

/* ---- limits and the queue (queue.c) ---------------------------------------------------------- */
/* Starts the queued migrations the limits now allow (oldest first, as this replica's), and
 * cancels queued ones that were aborted or waited past deadline_queued_s: one transaction on
 * the database worker, the migrations started in its continuation (a dispatch asked while
 * one is on its way runs after it). */
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
/* One read of API.md (or the operator's host state change), run by the database worker. The
 * caller fills what and its arguments (owned by the api_read, freed with it); the worker fills
 * the answer. */
typedef enum api_what {
    API_HOSTS,
    API_HOST,
    API_HOST_SET_STATE,
    API_HOST_SET_GROUP,
    API_INSTANCES,
    API_MIGRATIONS,
    API_MIGRATION,
    API_RESOLVE_INSTANCE,
} api_what;
typedef struct api_read api_read;
typedef void (*api_done_fn)(sched *s, api_read *r, void *arg);
struct api_read {
    api_what what;
    char *name;           /* API_HOST, API_HOST_SET_*: the host; API_RESOLVE_INSTANCE: the reference */
    char *state, *reason; /* API_HOST_SET_STATE (reason may be NULL); API_HOST_SET_GROUP: state is the group
                           * (NULL: none) */
    char *filter;         /* API_INSTANCES: the host, API_MIGRATIONS: the status (NULL: all) */
    int limit;            /* API_MIGRATIONS */
    int64_t id;           /* API_MIGRATION */
    /* the answer */
    json_object *out; /* the object, NULL when the read failed or found nothing */
    int found;        /* 0: the thing named does not exist (as opposed to a database failure) */
    int resolved;     /* API_RESOLVE_INSTANCE: 1 found (uuid, ec2), 0 none, 2 an ambiguous name, -1 failed */
    char *uuid, *ec2;
    char *err; /* why there is no out (or why not resolved) */
    /* api.c's */
    int64_t max_age_s;
    sched *s;
    api_done_fn done;
    void *arg;
};
/* A new read of what, with no arguments yet (the caller sets them, as xstrdup'ed strings). */
api_read *api_read_new(api_what what);
/* Runs r on the database worker, then done(s, r, arg) on the loop's thread; r (and whatever
 * done leaves in it: it may take out, err, uuid and ec2 and set them NULL) is freed after done
 * returns. Takes r. */
void api_submit(sched *s, api_read *r, api_done_fn done, void *arg);
/* Consumer of SCHED_RPC_QUEUE: answers the read RPCs. Owns d. */
void api_on_rpc(mq_conn *c, mq_delivery *d, void *arg);
/* The instances table's condition for a reference of kind k given as $1: the uuid by its key,
 * the ec2 id or the name (static text). */
const char *api_instance_where(msg_instance_kind k);
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
/* The bandwidth cap the drainer wants for migration (migrations.bandwidth_target, read with
 * its lease): when this replica drives it, it runs, and the cap differs, the source is asked
 * (set_bandwidth) and the new cap recorded with an event. */
void orch_bandwidth(sched *s, int64_t migration, int target_mib_s);
/* How many migrations this replica drives now. */
int orch_count(void);
/* Acts now on the operator's requests recorded for migration id, if this replica drives it. */
void orch_poke(sched *s, int64_t migration);
/* An agent event about migration id (completed / failed / cancelled / postcopy / progress;
 * body borrowed), read by orchreply_event_read: 0 when it is recorded (or not one the
 * scheduler acts on), -1 with *why (caller frees) when it cannot be believed and changes
 * nothing. */
int orch_on_agent_event(sched *s, int64_t migration, const char *what, json_object *body, char **why) FERRY_WUR;

#endif
