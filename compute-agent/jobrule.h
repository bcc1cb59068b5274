/* jobrule: the decisions of an outgoing migration's job, as pure functions of what the job
 * knows (its options, its state, the clock, the statistics read): when to switch to post-copy,
 * when the agent aborts on its own (completion timeout, stall), whether an abort or a
 * force-complete may be done and how. job.c acts on them (libvirt, events, logs); unit.jobrule
 * tests them. No libvirt, no loop. */
#ifndef FERRY_JOBRULE_H
#define FERRY_JOBRULE_H

#include <stdint.h>

#include "proto.h"
#include "rpcin.h"

/* What a job knows of its progress, as far as the rules need (a member of job.c's job). */
typedef struct jobrule_state {
    int postcopy_active;               /* switched to post-copy */
    int abort_requested;               /* an abort was asked (by an operator or by the agent) */
    int iteration;                     /* the highest pre-copy iteration seen (1 = the first pass) */
    int64_t started_ms;                /* when the job started (monotonic ms) */
    unsigned long long best_remaining; /* the lowest memory_remaining seen; 0 = none yet */
    int64_t best_remaining_ms;         /* when it was seen */
} jobrule_state;

/* Takes a reading of the statistics into st: the iteration (kept when higher) and
 * memory_remaining at now_ms (a new low is remembered with its time). */
void jobrule_take_reading(jobrule_state *st, int iteration, unsigned long long remaining, int64_t now_ms);
/* Whether the switch to post-copy is due: allowed, not done, and postcopy_after_iterations
 * passes over memory done (the first pass is not counted). */
int jobrule_postcopy_due(const job_opts *o, const jobrule_state *st);

/* QEMU's downtime limit at elapsed_ms into the job, and its step into *step (0..steps): with a
 * ramp (downtime_steps and downtime_delay_ms), Nova's schedule — max/steps first, then
 * (max - max/steps)/steps more each downtime_delay_ms, max_downtime_ms from step `steps` on;
 * without one, max_downtime_ms (step 0). Never below 1 ms. */
int jobrule_downtime_at(const job_opts *o, int64_t elapsed_ms, int *step);

/* What libvirt says it applied to a running job; -1 where not read. */
typedef struct jobrule_applied {
    long long downtime_ms;              /* virDomainMigrateGetMaxDowntime */
    long long bandwidth_mib_s;          /* virDomainMigrateGetMaxSpeed */
    long long postcopy_bandwidth_mib_s; /* ... with VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY */
    long long compression_cache_mib;    /* virDomainMigrateGetCompressionCache, in MiB */
    int streams;                        /* QEMU's connections to the destination (streams.h) */
    const char *stream_remote, *stream_local; /* their addresses (NULL when streams <= 0) */
} jobrule_applied;

/* libvirt's "unlimited" bandwidth is INT64_MAX bytes/s in MiB/s; any figure at or above this
 * one counts as unlimited. */
#define JOBRULE_UNLIMITED_MIB_S 1048576LL

/* Which settings the job must read back (1 each): the downtime when the job set one, the
 * post-copy bandwidth when post-copy is allowed with a cap, the compression cache with xbzrle,
 * the streams (required) with parallel connections. */
void jobrule_settings_wanted(const job_opts *o, int *downtime, int *postcopy_bandwidth, int *cache, int *streams);
/* Compares what libvirt applied (ap) with what the job asked (o, at downtime ramp step `step`);
 * parallel connections need at least that many streams plus QEMU's main one; the streams seen
 * are named in the text whenever counted ("3 connections to 10.0.1.2 from 10.0.1.1"):
 * 0 when they agree, with what was verified in why ("max downtime 300 ms, bandwidth 8 MiB/s");
 * -1 with the first difference in why ("bandwidth is 32 MiB/s in libvirt, 8 MiB/s asked"). A
 * setting the job asks and ap does not hold (-1) is a difference. why: n bytes. */
int jobrule_settings_check(const job_opts *o, int step, const jobrule_applied *ap, char *why, size_t n);

/* What the completion timeout asks at now_ms. */
typedef enum jobrule_timeout {
    JOBRULE_IN_TIME = 0,
    JOBRULE_TIMEOUT_POSTCOPY, /* past completion_timeout_s, completion_action postcopy allowed */
    JOBRULE_TIMEOUT_ABORT,    /* past completion_timeout_s: abort */
    JOBRULE_TIMEOUT_PAUSE,    /* past completion_timeout_s, completion_action pause: pause the guest */
} jobrule_timeout;
/* Never once switched to post-copy, once the guest was paused to finish, or while an abort is
 * under way (paused_to_finish: the job paused it already); 0 s means no timeout. */
jobrule_timeout jobrule_completion(const job_opts *o, const jobrule_state *st, int paused_to_finish, int64_t now_ms);
/* Whether the job is stalled: memory_remaining reached no new low for stall_s (0: never),
 * never once switched to post-copy or while an abort is under way. */
int jobrule_stalled(const jobrule_state *st, int64_t now_ms, int64_t stall_s);

/* Whether an operator's abort may be done: RPC_OK, or RPC_CONFLICT (the job is not running, or
 * the guest already runs on the destination after the post-copy switch). */
rpc_code jobrule_may_abort(int running, const jobrule_state *st);

/* How a force-complete finishes the job. */
typedef enum jobrule_finish {
    JOBRULE_FINISH_CONFLICT = 0,     /* the job is not running: nothing to finish */
    JOBRULE_FINISH_ALREADY_POSTCOPY, /* already in post-copy: nothing more to do */
    JOBRULE_FINISH_POSTCOPY,         /* switch to post-copy (allowed for this migration) */
    JOBRULE_FINISH_PAUSE,            /* pre-copy only: pause the guest so the rest can be sent */
} jobrule_finish;
/* The way to finish a running job (JOBRULE_FINISH_CONFLICT when it is not running). */
jobrule_finish jobrule_force_complete(const job_opts *o, int running, const jobrule_state *st);

/* How a job whose migrate call returned ends. */
typedef enum jobrule_end {
    JOBRULE_END_COMPLETED = 0,   /* the guest runs on the destination */
    JOBRULE_END_AGENT_ABORT,     /* failed: the agent aborted it (timeout, stall); its reason first */
    JOBRULE_END_CANCELLED,       /* an operator's abort */
    JOBRULE_END_FAILED,          /* libvirt's failure */
    JOBRULE_END_POSTCOPY_PAUSED, /* failed after the post-copy switch: kept, resumable (postcopy_paused) */
} jobrule_end;
/* The end of a job from the migrate call's outcome: ok, or failed with libvirt saying aborted
 * (libvirt_aborted) or not; agent_aborted when the agent itself asked for the abort. After an
 * abort was asked, any failure counts as the abort's doing: the job may end as aborted, or as
 * libvirt's failure of what the abort cut short ("Unable to write to socket: Broken pipe"). */
jobrule_end jobrule_end_of(int ok, int libvirt_aborted, const jobrule_state *st, int agent_aborted);
/* How a job ends when the migrate call failed after the post-copy switch: paused_postcopy says
 * libvirt shows the source domain paused in post-copy (VIR_DOMAIN_PAUSED_POSTCOPY_FAILED or
 * still VIR_DOMAIN_PAUSED_POSTCOPY); JOBRULE_END_POSTCOPY_PAUSED then (the job is kept for
 * resume_postcopy), JOBRULE_END_FAILED otherwise (the domain is gone or runs: nothing to resume). */
jobrule_end jobrule_postcopy_end(int paused_postcopy);

/* What resume_postcopy does with a job in state st (resuming: a resume call of ours is under way). */
typedef enum jobrule_resume {
    JOBRULE_RESUME_START = 0,  /* paused in post-copy: start virDomainMigrateToURI3 with POSTCOPY_RESUME */
    JOBRULE_RESUME_UNDER_WAY,  /* a resume already runs: answered as started (idempotent) */
    JOBRULE_RESUME_COMPLETED,  /* the job completed: answered as done (idempotent) */
    JOBRULE_RESUME_NOT_PAUSED, /* running without a break, failed or cancelled: refused (RPC_NOT_PAUSED) */
} jobrule_resume;
/* The resume_postcopy decision for a job in state st. */
jobrule_resume jobrule_resume_of(job_state st, int resuming);

#endif
