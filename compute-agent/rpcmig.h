/* rpcmig: the migration methods of ferry.compute.<host> (compute-agent/RPC.md): check_source,
 * check_destination, pre_live_migration, live_migration, job_status, abort, force_complete,
 * resume_postcopy, post_live_migration, rollback. Each validates its input (rpcin), is idempotent per migration
 * id and answers with a clear error, libvirt's words included. rpc.c dispatches to them after
 * checking the sender and fencing the epoch; they call nothing in rpc.c. */
#ifndef FERRY_RPCMIG_H
#define FERRY_RPCMIG_H

#include <json-c/json.h>

#include "agent.h"
#include "proto.h"

/* One call being answered (filled by rpc.c; the handlers read it). */
typedef struct rpcmig_call {
    agent *a;
    mq_delivery *d;    /* the request until it is answered, then NULL */
    const char *req;   /* request id (borrowed from the envelope) */
    json_object *body; /* borrowed */
    int64_t migration; /* 0 when the method takes none */
    char mig_s[24];
    const char *instance; /* borrowed; NULL when the method takes none */
    int64_t epoch;        /* the owner's epoch the call carries (0 when absent) */
    log_fields lf;
} rpcmig_call;

/* A method: adds its result to out (borrowed) and returns 0, or returns -1 with *err (a new
 * string the caller frees) and *code (left as the caller set it when the method sets none). */
typedef int (*rpcmig_fn)(rpcmig_call *c, json_object *out, char **err, rpc_code *code);

/* Checks that the call's domain runs here and can leave (disks, shared storage probe). */
int rpcmig_check_source(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Checks that the guest the body describes can run here (memory, CPU, networks, storage). */
int rpcmig_check_destination(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Makes the directories and disk images an incoming block migration needs (recorded for
 * rollback in the dest-<id> state file). */
int rpcmig_pre_live_migration(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Starts the outgoing migration's job (job.c). */
int rpcmig_live_migration(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* The migration's job state here and what libvirt says of the domain. */
int rpcmig_job_status(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Aborts the migration's job. */
int rpcmig_abort(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Switches the job to post-copy or pauses the guest. */
int rpcmig_force_complete(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* set_bandwidth {bandwidth_mib_s}: the running job's cap changed; answers bandwidth_mib_s. */
int rpcmig_set_bandwidth(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Resumes the job's post-copy migration paused by a broken stream (VIR_MIGRATE_POSTCOPY_RESUME). */
int rpcmig_resume_postcopy(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Destination: pauses the incoming post-copy migration whose broken stream this side has not
 * seen (VIR_DOMAIN_ABORT_JOB_POSTCOPY), so the source can resume it; "already" when paused. */
int rpcmig_pause_postcopy(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Checks that the guest landed here (running, persistent; resumed when it arrived paused). */
int rpcmig_post_live_migration(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;
/* Removes what the migration left here; refused with RPC_LANDED when the guest runs here. */
int rpcmig_rollback(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;

#endif
