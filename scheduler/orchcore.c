/* orchcore: the migrations this replica drives, their leases as known here, and the status
 * machine's pure rules (orchcore.h). */
#include <stdlib.h>
#include <string.h>

#include "orchcore.h"
#include "orchset.h"

/* the migrations this replica drives (created with the first one: the loop is known then) */
static orchset *all;

orch *orchcore_find(int64_t id)
{
    return all ? orchset_find(all, id) : NULL;
}

static void orch_free(void *arg)
{
    orch *o = arg;
    if (o->poll_ev)
        event_free(o->poll_ev);
    json_object_put(o->src_disks);
    json_object_put(o->dest_check);
    free(o->fail_reason);
    free(o->abort_reason);
    free(o->recover_last);
    free(o);
}

void orchcore_add(sched *s, orch *o)
{
    if (!all)
        all = orchset_new(s->base, orch_free);
    orchset_add(all, o->id, o);
}

int64_t *orchcore_ids(int *n)
{
    *n = 0;
    return all ? orchset_ids(all, n) : NULL;
}

int orchcore_count(void)
{
    int n = 0, nids = 0;
    _cleanup_free_ int64_t *idv = orchcore_ids(&nids);
    for (int k = 0; k < nids; k++) {
        orch *o = orchcore_find(idv[k]);
        n += o && !o->finishing;
    }
    return n;
}

void orchcore_done(orch *o)
{
    o->finishing = 1;
    if (o->poll_ev)
        event_del(o->poll_ev);
    orchset_retire(all, o);
}

int64_t orchcore_lease_from(const sched *s, int64_t t0_ms)
{
    return t0_ms + s->cfg->scheduler.lease_s * 1000 - 1000;
}

int orchcore_lease_held(const orch *o)
{
    return mono_ms() < o->lease_ms;
}

void orchcore_lease_lost(orch *o, const char *why)
{
    if (o->finishing)
        return;
    log_error(&o->lf,
              "migration %lld: %s: this replica stops driving it (no more RPCs; the replica that holds its"
              " lease, or adopts it, carries on)",
              (long long)o->id, why);
    orchcore_done(o);
}

mig_status orchcore_rollback_end(orch_cause cause)
{
    return cause == ORCH_CAUSE_FAILURE ? MIG_FAILED : MIG_CANCELLED;
}

orch_cause orchcore_job_end_cause(job_state st, int aborting, orch_cause abort_cause)
{
    if (aborting && (st == JOB_CANCELLED || st == JOB_FAILED))
        return abort_cause;
    return st == JOB_CANCELLED ? ORCH_CAUSE_JOB_CANCELLED : ORCH_CAUSE_FAILURE;
}

int orchcore_landed(mig_status st, int rolling_back, rpc_code code)
{
    return rolling_back && st == MIG_RUNNING && code == RPC_LANDED;
}

int orchcore_is_early(mig_status st)
{
    return st == MIG_SCHEDULED || st == MIG_PREPARING;
}

int orchcore_retry_in_s(int attempts, int64_t since_first_ms, int64_t window_ms)
{
    if (since_first_ms >= window_ms)
        return -1;
    return attempts < 3 ? 1 << attempts : 5;
}

int orchcore_recovers(mig_status st, int postcopy, job_state js)
{
    return st == MIG_RUNNING && postcopy && js == JOB_POSTCOPY_PAUSED;
}

int orchcore_recovery_goes_on(int64_t since_ms, int64_t now_ms, int64_t window_ms)
{
    return now_ms - since_ms < window_ms;
}

char *orchcore_recovery_error(const char *source, const char *dest, const char *instance, int64_t secs,
                              const char *last)
{
    return xasprintf("post-copy recovery failed: the migration could not be resumed within %lld s (postcopy_recovery_s)"
                     "%s%s. %s (destination) holds the guest's CPU state and the memory pages it received (its vCPUs "
                     "wait for the rest); %s (source) holds the rest of its memory, paused: neither copy alone is the "
                     "guest. What to do: when both hosts answer, resume it from the source (virsh -c <source> migrate "
                     "--live --p2p --persistent --undefinesource --postcopy --postcopy-resume %s <destination's "
                     "migration URI>); if %s is lost for good, the guest's memory is lost: destroy it on %s and start "
                     "it again from its disk",
                     (long long)secs, last ? "; last: " : "", last ? last : "", dest, source, instance, source, dest);
}

orch_recover_step orchcore_recovery_next(int dest_failed, int dest_active, int waits)
{
    if (dest_failed)
        return ORCH_RECOVER_RESUME;
    if (dest_active && waits >= ORCH_RECOVER_DEST_WAITS)
        return ORCH_RECOVER_PAUSE_DEST;
    return ORCH_RECOVER_WAIT;
}

int orchcore_deadline_at_risk(int64_t elapsed_ms, int64_t deadline_ms, int64_t remaining, int64_t bps,
                              int64_t dirty_bps, int64_t iteration, int64_t *left_ms)
{
    *left_ms = 0;
    if (deadline_ms <= 0 || iteration < 2 || bps <= 0 || remaining < 0)
        return 0;
    if (dirty_bps >= bps) {
        *left_ms = -1;
        return 1;
    }
    int64_t net = bps - (dirty_bps > 0 ? dirty_bps : 0);
    /* whole seconds first: remaining * 1000 may not fit in int64 (a byte count reaches 2^56) */
    int64_t secs = remaining / net;
    if (secs > INT64_MAX / 1000 - 1) {
        *left_ms = -1;
        return 1;
    }
    int64_t rest = remaining % net; /* < net <= bps <= 2^56: rest * 1000 may overflow too */
    *left_ms = secs * 1000 + (rest > INT64_MAX / 1000 ? rest / (net / 1000 + 1) : rest * 1000 / net);
    return elapsed_ms + *left_ms > deadline_ms;
}
