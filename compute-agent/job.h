/* job: the outgoing live migrations of this host — one job per migration id, from
 * live_migration to its end (completed, failed, cancelled), and the jobs found again after a
 * restart (job_recover).
 *
 * The agent owns every job (agent.jobs); a job is never freed before the agent stops
 * (job_free_all). Everything here runs on the loop thread. */
#ifndef FERRY_JOB_H
#define FERRY_JOB_H

#include <stdint.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "log.h"
#include "proto.h"
#include "rpcin.h"
#include "util.h"

typedef struct agent agent;
typedef struct job job;

/* a job's state is common/proto.h's job_state (never JOB_NONE here) */

/* Starts the outgoing migration `migration` of domain uuid to dest (address dest_address, which
 * must pass guard_address: it goes into [libvirt] live_migration_uri; refused otherwise); the
 * stream goes to data_address, the destination's migration network address, when not NULL.
 * Idempotent: an existing job of that id is returned as it is. On success *out is the job
 * (owned by the agent). Returns -1 with *err (caller frees) and *code on failure. */
int job_start(agent *a, int64_t migration, const char *uuid, const char *dest, const char *dest_address,
              const char *data_address, const job_opts *o, job **out, char **err, rpc_code *code) FERRY_WUR;
/* Finds the job of migration id (NULL when none; owned by the agent). */
job *job_find(agent *a, int64_t migration);
/* The job's status as the body of a job_status reply (new object, caller puts). */
json_object *job_status_json(const job *j);
/* Aborts the job (refused after the post-copy switch). Returns 0, or -1 with *err (caller
 * frees), *code. */
int job_abort(agent *a, job *j, char **err, rpc_code *code) FERRY_WUR;
/* Switches to post-copy (when allowed) or pauses the guest. *action gets "postcopy" or "paused"
 * (static words). Returns 0, or -1 with *err (caller frees), *code. */
int job_force_complete(agent *a, job *j, const char **action, char **err, rpc_code *code) FERRY_WUR;
/* Sets the running job's bandwidth cap to mib_s MiB/s (virDomainMigrateSetMaxSpeed; after the
 * post-copy switch, post-copy's): a drain's budget shared anew among its migrations under way.
 * 0, or -1 with *err (caller frees) and *code (RPC_CONFLICT: not running). */
int job_set_bandwidth(agent *a, job *j, int mib_s, char **err, rpc_code *code) FERRY_WUR;
/* Resumes the post-copy migration of job j, paused by a broken stream (job_state
 * JOB_POSTCOPY_PAUSED): virDomainMigrateToURI3 with VIR_MIGRATE_POSTCOPY_RESUME, the same URI and
 * options, on a worker thread. Idempotent: *how is "started", "under_way" (a resume runs) or
 * "completed" (static words). Returns 0, or -1 with *err (caller frees) and *code
 * (RPC_NOT_PAUSED when the job is not paused in post-copy). */
int job_resume_postcopy(agent *a, job *j, const char **how, char **err, rpc_code *code) FERRY_WUR;
/* Reloads the jobs recorded in the state dir and finds out from libvirt what became of them
 * (running on: adopted and watched; ended: outcome recorded). Called when libvirt is up. */
void job_recover(agent *a);
/* libvirt's VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION for domain uuid (loop thread). */
void job_on_iteration(agent *a, const char *uuid, int iteration);
/* libvirt's VIR_DOMAIN_EVENT_ID_JOB_COMPLETED for domain uuid, its final stats borrowed. */
void job_on_completed(agent *a, const char *uuid, virTypedParameterPtr params, int n);
/* Counts the jobs whose worker thread is still inside virDomainMigrateToURI3. */
int job_workers_running(const agent *a);
/* Frees every job (at exit, when no worker thread runs). */
void job_free_all(agent *a);
/* The log fields of a job (borrowed from the job). */
const log_fields *job_fields(const job *j);

#endif
