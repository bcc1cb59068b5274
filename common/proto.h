/* proto: the words of ferry's protocol as enums — RPC error codes and migration statuses.
 *
 * Decisions are taken on these values, never on message text: the agent sends a code with
 * every rpc.error (compute-agent/RPC.md) and the scheduler branches on the code; a migration's
 * status is a mig_status in memory and its word (the same as in migrations.status) on the wire
 * and in the database. Pure functions: no I/O, no allocation. */
#ifndef FERRY_PROTO_H
#define FERRY_PROTO_H

#include "util.h"

/* The code of an rpc.error body (RPC.md "code"). */
typedef enum rpc_code {
    RPC_OK = 0,      /* no error (never sent as a code) */
    RPC_INVALID,     /* the request is wrong: never retry */
    RPC_REFUSED,     /* a check said no */
    RPC_LIBVIRT,     /* libvirt failed; the error carries libvirt's own message */
    RPC_UNAVAILABLE, /* the agent is not connected to its libvirtd: try again shortly */
    RPC_NOT_FOUND,   /* no such domain or migration */
    RPC_CONFLICT,    /* the state forbids it (abort after the post-copy switch, ...) */
    RPC_STALE_EPOCH, /* the call's epoch is below one seen for the migration: never retry */
    RPC_LANDED,      /* rollback refused: the migrated guest runs on this host */
    RPC_INTERNAL,    /* the agent's own failure */
    RPC_NOT_PAUSED,  /* resume_postcopy: the job is not paused in post-copy (still running, or ended) */
    RPC_UNKNOWN,     /* a code this build does not know (a newer peer): treated as a failure */
} rpc_code;

/* Returns the code's word ("invalid", "stale_epoch", ...; "" for RPC_OK); a static string. */
const char *rpc_code_str(rpc_code c);
/* Returns the code named by s; RPC_UNKNOWN for NULL, "" or a word not listed. */
rpc_code rpc_code_from_str(const char *s);

/* A migration's status (migrations.status, the migration.<id>.<status> events). */
typedef enum mig_status {
    MIG_QUEUED = 0, /* waits for the limits */
    MIG_SCHEDULED,  /* claimed; check_source and check_destination */
    MIG_PREPARING,  /* pre_live_migration on the destination */
    MIG_RUNNING,    /* the source's job runs */
    MIG_COMPLETING, /* the guest moved; post_live_migration */
    MIG_COMPLETED,  /* final: the guest runs on the destination */
    MIG_FAILED,     /* final: the guest runs on the source */
    MIG_ERROR,      /* final: an operator must look (the rollback failed, ...) */
    MIG_CANCELLED,  /* final: aborted by an operator, past deadline_queued_s while queued, or its
                      * job cancelled on the source by someone else; the guest on the source (a
                      * deadline past `queued` ends `failed`, or `error` when completing) */
    MIG_STATUS_COUNT
} mig_status;

/* Returns the status's word ("queued", ..., "cancelled"); "?" for a value out of range. */
const char *mig_status_str(mig_status st);
/* Parses a status word: 0 with *out, or -1 when s names none (NULL accepted). */
int mig_status_from_str(const char *s, mig_status *out) FERRY_WUR;
/* Returns 1 for the final statuses (completed, failed, error, cancelled), else 0. */
int mig_status_is_final(mig_status st);

/* The state of a migration's job on its source: job_status's "state" (compute-agent/RPC.md)
 * and the agent's job record. JOB_NONE: the source knows no job for the migration. */
typedef enum job_state {
    JOB_RUNNING = 0,
    JOB_COMPLETED, /* the guest runs on the destination */
    JOB_FAILED,
    JOB_CANCELLED, /* aborted */
    JOB_NONE,
    JOB_POSTCOPY_PAUSED, /* the post-copy stream broke after the switch: the guest's CPU state is on the
                          * destination, paused there; the source keeps the pages not yet sent and the
                          * job, which resume_postcopy can take up again */
    JOB_STATE_COUNT
} job_state;

/* Returns the state's word ("running", "completed", "failed", "cancelled", "none",
 * "postcopy_paused"); "?" for a
 * value out of range. */
const char *job_state_str(job_state st);
/* Parses a state word: 0 with *out, or -1 when s names none (NULL accepted). */
int job_state_from_str(const char *s, job_state *out) FERRY_WUR;

#endif
