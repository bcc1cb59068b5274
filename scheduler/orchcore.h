/* orchcore: the object of one migration this replica drives (struct orch), the set of them,
 * the lease as this replica knows it holds it, and the pure rules of the status machine that
 * the orchestration's files share (orch.c the steps, orchcall.c the RPCs, lease.c the leases
 * and adoption). Below all of them: it calls only orchset, the log and the clock. */
#ifndef FERRY_ORCHCORE_H
#define FERRY_ORCHCORE_H

#include "proto.h"
#include "sched.h"

/* Why a migration turned to failure before its guest moved: how it ends once the destination
 * is rolled back (orchcore_rollback_end). Decided where the failure is known, never read back
 * from the reason's text. */
typedef enum orch_cause {
    ORCH_CAUSE_FAILURE = 0,    /* an RPC, the source's job or a deadline failed it: failed */
    ORCH_CAUSE_OPERATOR_ABORT, /* the operator aborted it: cancelled */
    ORCH_CAUSE_JOB_CANCELLED,  /* the source's job was cancelled, not by this scheduler: cancelled */
} orch_cause;

typedef struct orch orch;

struct orch {
    sched *s;
    int64_t id;
    char id_s[24];
    char req[40];
    char uuid[40];
    char ec2[40];
    char source[256];
    char dest[256];
    char dest_addr[256]; /* a host name or address (agentmsg_address_ok), up to 255 bytes */
    mig_status status;
    char block[8];
    int post_copy, auto_converge, after, bw, downtime, timeout;
    int completion_action; /* msg_completion_action: what the agent does at the timeout */
    int parallel;          /* memory over this many connections (1: one stream) */
    char dest_maddr[256];  /* the destination's migration network address ("" = none) */
    int xbzrle_cache_mib;  /* xbzrle compression with this cache (0: off) */
    int bw_sending;        /* a set_bandwidth to bw_target is with the source */
    int bw_target;
    int64_t epoch;
    char epoch_s[24];
    json_object *src_disks;  /* check_source's disks, as orchreply_read checked them, for pre_live_migration */
    json_object *dest_check; /* check_destination's body, made from check_source's answer */
    char *fail_reason;       /* the destination is being rolled back for this reason */
    orch_cause fail_cause;   /* ... and the migration then ends as this says */
    char *abort_reason;      /* an abort was sent to the source: the reason the migration ends with */
    orch_cause abort_cause;  /* ... and its cause */
    int gen;                 /* bumped when the orchestration turns to failure: older replies are dropped */
    int prepared;
    int sampling;      /* the forecast's dirty_rate is with the source (sent at sample_ms) */
    int live_waits;    /* prepared: the live migration waits for that sample's answer */
    int64_t sample_ms; /* monotonic: when the dirty_rate was sent */
    int finishing;
    int polling;
    int postcopy;
    int abort_sent, fc_sent, deadline_hit;
    int soft_tries;           /* abort / force-complete calls refused so far */
    int recovering;           /* sub-state of running: the post-copy stream broke, resume_postcopy is retried */
    int64_t recover_since_ms; /* monotonic: when this replica saw the recovery begin */
    int recover_tries;        /* resume_postcopy calls sent */
    int recover_dest_waits;   /* polls that found the destination's post-copy still active */
    int recover_paused;       /* the last word of the source: paused, or no answer (a resume running
                               * on the source is not cut short by the deadline) */
    char *recover_last;       /* the last failure of the recovery (for the final message), or NULL */
    int64_t last_progress_ms;
    int obj_deadline_s;      /* the request's deadline objective (0: none) */
    int64_t memory_mb;       /* the guest's memory as check_source read it (0: not read by this replica) */
    int64_t started_mono_ms; /* monotonic: when the migration was accepted, as the row says */
    int64_t lease_ms;        /* monotonic time until which this replica surely holds the lease */
    struct event *poll_ev;
    log_fields lf;
};

/* Whether a running pre-copy will miss its deadline (issue #18): elapsed_ms since acceptance,
 * deadline_ms, the progress's memory_remaining bytes, transfer rate bps and dirty rate
 * dirty_bps (bytes/s), and its iteration. Judged from the second pass on (the first sends all
 * memory and knows no dirty rate yet): a pass that dirties as fast as it sends never ends; else
 * the rest takes remaining / (bps - dirty_bps). Returns 1 with *left_ms (-1: never) when the end
 * would come after the deadline, else 0. Pure. */
int orchcore_deadline_at_risk(int64_t elapsed_ms, int64_t deadline_ms, int64_t remaining, int64_t bps,
                              int64_t dirty_bps, int64_t iteration, int64_t *left_ms);

/* Returns the migration id this replica drives (borrowed), or NULL. */
orch *orchcore_find(int64_t id);
/* Adds o (taken) to the migrations this replica drives; the set is made on s->base with the
 * first one. */
void orchcore_add(sched *s, orch *o);
/* Returns the ids driven now as a new array of *n (caller frees; NULL when *n is 0). */
int64_t *orchcore_ids(int *n);
/* Returns how many migrations this replica drives now (not counting those it gives up). */
int orchcore_count(void);
/* Stops driving o: no later reply, resend or tick finds it; it is freed after the current
 * callback, once however many paths give it up in one loop pass (orchset_retire). */
void orchcore_done(orch *o);

/* The lease as this replica knows it holds it: from t0_ms, the monotonic time before a renewal
 * (or the transaction that set it) that succeeded, lease_s less a second. */
int64_t orchcore_lease_from(const sched *s, int64_t t0_ms);
/* Whether this replica may still act for o: its lease is not known lost. */
int orchcore_lease_held(const orch *o);
/* The lease of o is lost, or may be (another replica may adopt it now): no RPC is sent for it
 * any more, and it is neither rolled back nor completed here; it is forgotten (why borrowed). */
void orchcore_lease_lost(orch *o, const char *why);

/* ---- the rules (pure) ---- */
/* The final status of a migration whose destination was rolled back for cause. */
mig_status orchcore_rollback_end(orch_cause cause);
/* The cause of a failure found when the source's job ended in st (job_status's state;
 * JOB_STATE_COUNT for a word this scheduler does not know): the abort's cause when this
 * scheduler had asked it to abort (aborting) and the job ended cancelled or failed, else a job
 * cancelled on the source or a plain failure. */
orch_cause orchcore_job_end_cause(job_state st, int aborting, orch_cause abort_cause);
/* Whether the rollback's error reply means the guest landed on the destination after all (the
 * migration completes instead): code RPC_LANDED to the rollback of a running migration. */
int orchcore_landed(mig_status st, int rolling_back, rpc_code code);
/* Whether nothing has moved yet in st (scheduled, preparing): checks and preparation may run
 * again, and an abort fails the migration at once. */
int orchcore_is_early(mig_status st);
/* When to send an agent call again that got no answer (lost in transit, timed out) or the
 * answer `unavailable` (its agent not yet connected to libvirtd): in 1, 2, 4, then 5 s after
 * attempts earlier tries, while since_first_ms is under window_ms (rpc_retry_s); -1: give up,
 * the call has failed. */
int orchcore_retry_in_s(int attempts, int64_t since_first_ms, int64_t window_ms);

/* Whether a migration in st (post-copy switched: postcopy) whose source reports its job in js
 * goes into (or stays in) the sub-state `recovering`: running, switched, and postcopy_paused. */
int orchcore_recovers(mig_status st, int postcopy, job_state js);
/* What a recovering migration does at now_ms, recovering since since_ms with window_ms
 * ([scheduler] postcopy_recovery_s): 1 keep resuming, 0 give up (ends in `error`). */
int orchcore_recovery_goes_on(int64_t since_ms, int64_t now_ms, int64_t window_ms);
/* The next step of a recovery round, from what the destination says of its domain. */
typedef enum orch_recover_step {
    ORCH_RECOVER_WAIT = 0,   /* the destination is not ready (away, or not yet seen the break): next poll */
    ORCH_RECOVER_RESUME,     /* its post-copy failed too: resume_postcopy on the source */
    ORCH_RECOVER_PAUSE_DEST, /* its post-copy still shows active after ORCH_RECOVER_DEST_WAITS polls: pause it */
} orch_recover_step;
#define ORCH_RECOVER_DEST_WAITS 3
/* What to do when the destination's post-copy is failed (dest_failed) or still active
 * (dest_active), after `waits` polls found it active. */
orch_recover_step orchcore_recovery_next(int dest_failed, int dest_active, int waits);
/* The error of a post-copy recovery given up after secs seconds: which host holds what and what
 * the operator can do (source, dest, instance, last borrowed; last may be NULL). Caller frees. */
char *orchcore_recovery_error(const char *source, const char *dest, const char *instance, int64_t secs,
                              const char *last);

#endif
