/* agent: the state of one ferry-agent process and what its modules share.
 *
 * Everything here lives on the libevent loop's thread; libvirt's event thread and the
 * migration worker threads only post work to it through `q`. */
#ifndef FERRY_AGENT_H
#define FERRY_AGENT_H

#include <pthread.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "config.h"
#include "evq.h"
#include "log.h"
#include "lv.h"
#include "mq.h"
#include "rpcin.h"
#include "trust.h"

typedef struct job job;

typedef struct agent {
    ferry_config *cfg;
    struct event_base *base;
    evq *q;
    mq_conn *mq;
    lv_conn *lv;
    char *host;
    char *address; /* where other hosts reach this one for migrations */
    char *queue;
    job *jobs;
    struct event *heartbeat_ev;
    int lv_up;
    char boot[37];   /* this process's id: heartbeats are ordered by (boot, seq) */
    int64_t hb_seq;  /* the last heartbeat's number */
} agent;

typedef enum {
    JOB_RUNNING = 0,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELLED,
} job_state;

/* ---- events (main.c) ----------------------------------------------------------------- */
/* Publishes body (taken) on ferry.events with routing key key; adds "at" and "host". Logs and
 * drops it when the broker is away (events are informative; the scheduler asks job_status). */
void agent_publish(agent *a, const char *key, json_object *body);
/* The migration this host prepared to receive domain uuid (from pre_live_migration's state
 * file), or 0 when none; its i-xxxxxxxx id goes to instance_id (n bytes; "" when unknown). */
int64_t agent_incoming_migration(agent *a, const char *uuid, char *instance_id, size_t n);

/* ---- jobs (job.c) ------------------------------------------------------------------------ */
/* Starts the outgoing migration `migration` of domain uuid to dest (address dest_address, which
 * must pass guard_address: it goes into [libvirt] live_migration_uri; refused otherwise).
 * Idempotent: an existing job of that id is returned as it is. On success *out is the job
 * (owned by the agent). Returns -1 with *err and *code (borrowed word) on failure. */
int job_start(agent *a, int64_t migration, const char *uuid, const char *dest, const char *dest_address,
              const job_opts *o, job **out, char **err, const char **code) FERRY_WUR;
/* Finds the job of migration id (NULL when none). */
job *job_find(agent *a, int64_t migration);
/* The job's status as the body of a job_status reply (new object, caller puts). */
json_object *job_status_json(const job *j);
/* Aborts the job (refused after the post-copy switch). Returns 0, or -1 with *err, *code. */
int job_abort(agent *a, job *j, char **err, const char **code) FERRY_WUR;
/* Switches to post-copy (when allowed) or pauses the guest. *action gets "postcopy" or "paused". */
int job_force_complete(agent *a, job *j, const char **action, char **err, const char **code) FERRY_WUR;
/* Reloads the jobs recorded in the state dir and finds out from libvirt what became of them
 * (running on: adopted and watched; ended: outcome recorded). Called when libvirt is up. */
void job_recover(agent *a);
/* Event hooks from libvirt (loop thread). */
void job_on_iteration(agent *a, const char *uuid, int iteration);
void job_on_completed(agent *a, const char *uuid, virTypedParameterPtr params, int n);
/* Counts the jobs whose worker thread is still inside virDomainMigrateToURI3. */
int job_workers_running(const agent *a);
/* Frees every job (at exit, when no worker thread runs). */
void job_free_all(agent *a);
/* Converts libvirt job stats to the JSON of RPC.md (new object). */
json_object *job_stats_json(virTypedParameterPtr params, int n, int type);
/* The log fields of a job (borrowed from the job). */
const log_fields *job_fields(const job *j);

/* ---- RPC (rpc.c) -------------------------------------------------------------------------- */
/* The consumer of ferry.compute.<host>: dispatches one request (owns d). */
void rpc_on_request(mq_conn *c, mq_delivery *d, void *arg);

/* ---- state files (job.c) ------------------------------------------------------------------ */
/* Writes obj (borrowed) atomically as <state_dir>/<name>.json. Returns 0 or -1 (logged). */
int state_write(agent *a, const char *name, json_object *obj);
/* Reads <state_dir>/<name>.json (new object) or NULL when absent/invalid. */
json_object *state_read(agent *a, const char *name);
/* Removes <state_dir>/<name>.json; absent is fine. */
void state_remove(agent *a, const char *name);

#endif
