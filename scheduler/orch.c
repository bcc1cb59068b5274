/* orch: the migration status machine (docs/DESIGN.md "Migration status machine"), driven over
 * RPC to the agents: the steps, the transitions and the end of a migration, resuming one found
 * mid-way, the operators' requests and deadlines, what the agents report. Each transition is
 * committed (guarded by owner, epoch and expected status) before the next RPC; every transition
 * is a migration_events row and, in the same transaction, an outbox row for its
 * migration.<id>.<status> event (ledger.c). Failure before the guest moved rolls the
 * destination back and releases its allocation (`failed`, or `cancelled` on an operator's
 * abort: the orch_cause of the failure, orchcore.h); when the truth cannot be established the
 * status is `error`. The transactions are orchtx.c's, what the agents report orchevent.c's.
 *
 * Crash recovery: a replica holds a lease on each migration it drives and renews it every tick;
 * a migration whose lease expired (its replica died) is adopted by another with the epoch
 * bumped (lease.c), and resumed here from its recorded status by asking the agents
 * (job_status), never by guessing. A stale owner's writes carry the old epoch and change
 * nothing. The RPC plumbing is orchcall.c; the object and its lease as known here orchcore.c. */
#include <stdlib.h>
#include <string.h>

#include "forecast.h"
#include "ledger.h"
#include "orchcall.h"
#include "orchcore.h"
#include "orchtx.h"
#include "samplecache.h"

/* ---- the steps ----------------------------------------------------------------------------- */

static void fail(orch *o, rpc_code code, const char *why);

/* Calls method on host with body (taken); next runs with the reply body on success, and the
 * migration fails on an error. */
static void call(orch *o, const char *host, orchreply_method method, json_object *body, orchcall_step_fn next)
{
    orchcall_call(o, host, method, body, next, fail);
}

static void start_completing(orch *o, const char *why);

static void rollback_done(orch *o, const orchreply *r)
{
    (void)r;
    _cleanup_free_ char *why = o->fail_reason;
    o->fail_reason = NULL;
    orchtx_finish(o, orchcore_rollback_end(o->fail_cause), why, NULL);
}

/* The migration turns to failure for cause: why (borrowed) says what failed; code is the
 * agent's rpc.error code when an agent's reply failed it (RPC_OK otherwise). Before the guest
 * moved the destination is rolled back and the migration ends as cause says; once it may have
 * moved, or when the rollback fails, it ends in error. */
static void fail_for(orch *o, orch_cause cause, rpc_code code, const char *why)
{
    if (o->finishing)
        return;
    if (orchcore_landed(o->status, o->fail_reason != NULL, code)) {
        /* the destination says the guest runs there: it moved after all; finish the move */
        log_warn(&o->lf, "migration %lld: %s; the guest landed, completing it", (long long)o->id, why);
        free(o->fail_reason);
        o->fail_reason = NULL;
        o->gen++;
        start_completing(o, "the destination runs the guest (found by the rollback)");
        return;
    }
    if (o->fail_reason) {
        /* the rollback itself failed: the destination may hold the guest or its leftovers */
        _cleanup_free_ char *both = xasprintf("%s; then %s", o->fail_reason, why);
        log_error(&o->lf, "migration %lld: the rollback failed: %s", (long long)o->id, why);
        orchtx_finish(o, MIG_ERROR, both, NULL);
        return;
    }
    o->gen++; /* replies to calls made before this are no longer steps */
    event_del(o->poll_ev);
    log_error(&o->lf, "migration %lld failed while %s: %s", (long long)o->id, mig_status_str(o->status), why);
    if (o->status == MIG_COMPLETING) {
        /* the guest moved, or may have: only an operator can tell now */
        orchtx_finish(o, MIG_ERROR, why, NULL);
        return;
    }
    /* the guest is still on the source: undo what the destination prepared */
    o->fail_reason = xstrdup(why);
    o->fail_cause = cause;
    json_object *b = json_object_new_object();
    call(o, o->dest, ORCHREPLY_ROLLBACK, b, rollback_done);
}

/* A failure (ends failed after the rollback): the RPCs' failure handler. */
static void fail(orch *o, rpc_code code, const char *why)
{
    fail_for(o, ORCH_CAUSE_FAILURE, code, why);
}

static void job_polled(orch *o, const orchreply *r);
static int recovery_deadline(orch *o);
static void recover_call_failed(orch *o, rpc_code code, const char *why);

static void poll_job(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    orch *o = arg;
    if (o->finishing || o->fail_reason)
        return;
    if (o->recovering && o->recover_paused && recovery_deadline(o))
        return;
    if (o->polling)
        return;
    o->polling = 1;
    if (o->recovering)
        /* a host that does not answer while recovering is what the recovery waits out: not a
         * failure of the migration */
        orchcall_call(o, o->source, ORCHREPLY_JOB_STATUS, json_object_new_object(), job_polled, recover_call_failed);
    else
        call(o, o->source, ORCHREPLY_JOB_STATUS, json_object_new_object(), job_polled);
}

/* ---- post-copy recovery (issue #17) ---------------------------------------------------------- */

/* Past [scheduler] postcopy_recovery_s: the migration ends in error with what each host holds;
 * returns 1 then (o is finishing), else 0. */
static int recovery_deadline(orch *o)
{
    int64_t window = o->s->cfg->scheduler.postcopy_recovery_s * 1000;
    if (orchcore_recovery_goes_on(o->recover_since_ms, mono_ms(), window))
        return 0;
    _cleanup_free_ char *why =
        orchcore_recovery_error(o->source, o->dest, o->uuid, o->s->cfg->scheduler.postcopy_recovery_s, o->recover_last);
    log_error(&o->lf, "migration %lld: %s", (long long)o->id, why);
    orchtx_finish(o, MIG_ERROR, why, NULL);
    return 1;
}

/* A call of the recovery failed (a host away, the resume refused or failed): remembered for the
 * final message; the next tick tries again until the deadline. */
static void recover_call_failed(orch *o, rpc_code code, const char *why)
{
    o->polling = 0;
    o->recover_paused = 1;
    free(o->recover_last);
    o->recover_last = xstrdup(why);
    log_warn(&o->lf, "migration %lld: post-copy recovery: %s (code %s); trying again", (long long)o->id, why,
             *rpc_code_str(code) ? rpc_code_str(code) : "none");
}

static void resume_answered(orch *o, const orchreply *r)
{
    o->polling = 0;
    log_info(&o->lf, "migration %lld: resume_postcopy on %s: %s", (long long)o->id, o->source,
             r->resume == ORCHREPLY_RESUME_STARTED     ? "started"
             : r->resume == ORCHREPLY_RESUME_UNDER_WAY ? "under way"
                                                       : "the job completed");
}

static void dest_paused(orch *o, const orchreply *r)
{
    (void)r;
    o->polling = 0;
    log_info(&o->lf, "migration %lld: the destination %s paused its side of the post-copy migration", (long long)o->id,
             o->dest);
}

/* What the destination says while the source's job is paused: the resume is asked of the
 * source only once the destination also shows its post-copy failed (libvirt's resume prepares
 * the destination, which must be waiting in that state: asked earlier, the prepare hung there
 * holding the domain's lock, seen in the lab). A destination that still shows post-copy running
 * has not seen the break (nothing was sent on the dead stream): after a few polls it is asked to
 * pause its side (pause_postcopy). */
static void recover_dest_seen(orch *o, const orchreply *r)
{
    switch (orchcore_recovery_next(r->job.dom_postcopy == ORCHREPLY_DOM_POSTCOPY_FAILED,
                                   r->job.dom_postcopy == ORCHREPLY_DOM_POSTCOPY_ACTIVE, o->recover_dest_waits)) {
    case ORCH_RECOVER_RESUME:
        o->recover_dest_waits = 0;
        o->recover_tries++;
        orchcall_call(o, o->source, ORCHREPLY_RESUME_POSTCOPY, json_object_new_object(), resume_answered,
                      recover_call_failed);
        return;
    case ORCH_RECOVER_PAUSE_DEST:
        o->recover_dest_waits = 0;
        orchcall_call(o, o->dest, ORCHREPLY_PAUSE_POSTCOPY, json_object_new_object(), dest_paused, recover_call_failed);
        return;
    case ORCH_RECOVER_WAIT:
        o->recover_dest_waits++;
        o->polling = 0;
        if (r->job.dom_running && r->job.dom_persistent && r->job.dom_postcopy == ORCHREPLY_DOM_POSTCOPY_NONE) {
            /* QEMU finished the stream on its own (only libvirt's connection broke): the guest
             * landed; post_live_migration checks it */
            start_completing(o, "the destination runs the guest, persistent, out of post-copy");
            return;
        }
        if (!r->job.dom_exists) {
            free(o->recover_last);
            o->recover_last = xasprintf("the destination %s has no domain of the guest", o->dest);
        }
        return;
    }
}

/* The source reports its post-copy job paused (the stream broke): into `recovering` (once), and a
 * resume asked of the source — libvirt drives it peer to peer, so it needs both hosts. */
static void recover(orch *o, const orchreply *r)
{
    if (!o->recovering) {
        o->recovering = 1;
        o->recover_since_ms = mono_ms();
        _cleanup_free_ char *msg = xasprintf(
            "post-copy stream from %s to %s broke (%s): recovering, resumed for up to %lld s", o->source, o->dest,
            r->job.error ? r->job.error : "no reason given", (long long)o->s->cfg->scheduler.postcopy_recovery_s);
        log_warn(&o->lf, "migration %lld: %s", (long long)o->id, msg);
        orchtx_recovering(o, 1, msg);
    }
    o->recover_paused = 1;
    if (r->job.error) {
        free(o->recover_last);
        o->recover_last = xstrdup(r->job.error);
    }
    if (recovery_deadline(o))
        return;
    o->polling = 1; /* no job_status until this round is answered */
    orchcall_call(o, o->dest, ORCHREPLY_JOB_STATUS, json_object_new_object(), recover_dest_seen, recover_call_failed);
}

static void post_done(orch *o, const orchreply *r)
{
    /* what the destination saw of the guest's announce: one event of the migration, before its
     * end (the database worker keeps the order) */
    if (r->ann.state != ORCHREPLY_ANN_NOT_REPORTED) {
        _cleanup_free_ char *msg = xasprintf("guest announce %s: %s", orchreply_announce_str(r->ann.state),
                                             r->ann.detail ? r->ann.detail : "no detail");
        log_fields lf = o->lf;
        lf.host = o->dest;
        if (r->ann.state == ORCHREPLY_ANN_NOT_SEEN)
            log_warn(&lf, "migration %lld: %s on %s", (long long)o->id, msg, o->dest);
        else
            log_info(&lf, "migration %lld: %s on %s", (long long)o->id, msg, o->dest);
        ledger_record_later(o->s, &o->lf, o->id, "destination", o->dest, LEDGER_NO_STATUS, "announce", msg,
                            "record the guest's announce");
    }
    /* the destination's final figures of its incoming job (downtime, memory): the figures of
     * record, also when the source's job-completed event never came */
    orchtx_finish(o, MIG_COMPLETED, NULL, r->has_dest_stats ? &r->dest_stats : NULL);
}

static void completing(orch *o)
{
    call(o, o->dest, ORCHREPLY_POST_LIVE_MIGRATION, json_object_new_object(), post_done);
}

static void start_completing(orch *o, const char *why)
{
    event_del(o->poll_ev);
    if (o->recovering) {
        o->recovering = 0;
        _cleanup_free_ char *msg = xasprintf("post-copy resumed after %lld ms and %d resume call(s): %s",
                                             (long long)(mono_ms() - o->recover_since_ms), o->recover_tries, why);
        log_info(&o->lf, "migration %lld: %s", (long long)o->id, msg);
        orchtx_recovering(o, 0, msg);
    }
    orchtx_transition(o, MIG_COMPLETING, why, completing);
}

static void resume_source_seen(orch *o, const orchreply *r);

static void job_polled(orch *o, const orchreply *r)
{
    o->polling = 0;
    job_state st = r->job.state; /* JOB_STATE_COUNT: a word this scheduler does not know, the job ended, failed */
    if (st == JOB_NONE) {
        /* the source knows no job for this migration (its agent restarted without the record):
         * where the guest is tells what happened — on the source, the job is started again; gone
         * from it, the destination is asked (seen in the chaos test: a migration that had landed
         * was rolled back and ended in error) */
        event_del(o->poll_ev);
        log_warn(&o->lf, "the source knows no job for migration %lld: looking where the guest is", (long long)o->id);
        resume_source_seen(o, r);
        return;
    }
    if (r->job.postcopy)
        o->postcopy = 1;
    if (orchcore_recovers(o->status, o->postcopy, st)) {
        recover(o, r);
        return;
    }
    if (st == JOB_RUNNING) {
        o->recover_paused = 0; /* a resume runs: it goes on whatever the deadline */
        return;
    }
    if (st == JOB_COMPLETED) {
        start_completing(o, "the source's job completed");
        return;
    }
    const char *err = r->job.error ? r->job.error : "the job ended without a reason";
    if (o->recovering) {
        /* the resumed job failed for good: no rollback after the switch, the operator must look */
        free(o->recover_last);
        o->recover_last = xasprintf("the source's job is %s: %s", r->job.word, err);
        o->recover_since_ms = INT64_MIN / 2; /* the deadline is now */
        (void)recovery_deadline(o);
        return;
    }
    orch_cause cause = orchcore_job_end_cause(st, o->abort_reason != NULL, o->abort_cause);
    _cleanup_free_ char *why = NULL;
    if (st == JOB_CANCELLED && o->abort_reason) {
        why = xstrdup(o->abort_reason);
    } else if (o->abort_reason && st == JOB_FAILED) {
        /* asked to abort, the job may end failed rather than cancelled: the destination's QEMU
         * can see the cut stream first ("load of migration failed"), and libvirt reports that
         * (a clean-clone CI run's deadline test did). The migration ends for the abort's reason */
        log_warn(&o->lf, "migration %lld: the source's job, asked to abort, ended failed: %s", (long long)o->id, err);
        why = xstrdup(o->abort_reason);
    } else
        why = xasprintf("%s on %s: %s", st == JOB_CANCELLED ? "cancelled" : "live migration", o->source, err);
    fail_for(o, cause, RPC_OK, why);
}

static void live_started(orch *o, const orchreply *r)
{
    (void)r;
    struct timeval tv = {1, 0};
    event_add(o->poll_ev, &tv);
}

static void start_live(orch *o)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "dest", json_object_new_string(o->dest));
    json_object_object_add(b, "dest_address", json_object_new_string(o->dest_addr));
    if (o->dest_maddr[0])
        json_object_object_add(b, "dest_migration_address", json_object_new_string(o->dest_maddr));
    json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    json_object_object_add(b, "post_copy", json_object_new_boolean(o->post_copy));
    json_object_object_add(b, "postcopy_after_iterations", json_object_new_int(o->after));
    json_object_object_add(b, "auto_converge", json_object_new_boolean(o->auto_converge));
    json_object_object_add(b, "bandwidth_mib_s", json_object_new_int(o->bw));
    json_object_object_add(b, "max_downtime_ms", json_object_new_int(o->downtime));
    json_object_object_add(b, "completion_timeout_s", json_object_new_int(o->timeout));
    json_object_object_add(b, "completion_action",
                           json_object_new_string(msg_completion_action_str(o->completion_action)));
    if (o->parallel > 1)
        json_object_object_add(b, "parallel_connections", json_object_new_int(o->parallel));
    if (o->xbzrle_cache_mib > 0)
        json_object_object_add(b, "xbzrle_cache_mib", json_object_new_int(o->xbzrle_cache_mib));
    /* the downtime ramp ([scheduler] downtime_steps): up to max_downtime_ms, a step every
     * downtime_delay_s per GiB of the guest's memory (at least 100 ms) */
    const cfg_scheduler *cs = &o->s->cfg->scheduler;
    if (cs->downtime_steps > 0 && o->memory_mb > 0) {
        int64_t delay = cs->downtime_delay_s * 1000 * o->memory_mb / 1024;
        if (delay < 100)
            delay = 100;
        if (delay > 3600000)
            delay = 3600000;
        json_object_object_add(b, "downtime_steps", json_object_new_int((int)cs->downtime_steps));
        json_object_object_add(b, "downtime_delay_ms", json_object_new_int((int)delay));
    }
    call(o, o->source, ORCHREPLY_LIVE_MIGRATION, b, live_started);
}

static void go_live(orch *o)
{
    orchtx_transition(o, MIG_RUNNING, NULL, start_live);
}

static void prepared(orch *o, const orchreply *r)
{
    (void)r;
    o->prepared = 1;
    if (o->sampling) {
        /* the source still samples the guest: the migration would make that sample wrong (the
         * guest paused, throttled or gone before its end) and libvirt refuses to start one once
         * the migration's job holds the domain; the rest of the sample is waited for */
        o->live_waits = 1;
        log_debug(&o->lf, "migration %lld: prepared; the live migration waits for the dirty-rate sample on %s",
                  (long long)o->id, o->source);
        return;
    }
    go_live(o);
}

static void prepare(orch *o)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    if (o->src_disks)
        json_object_object_add(b, "disks", json_object_get(o->src_disks));
    call(o, o->dest, ORCHREPLY_PRE_LIVE_MIGRATION, b, prepared);
}

/* The path of the first disk of check_source's disks marked shared (on the instances path),
 * or NULL (borrowed from disks). */
static const char *orch_first_shared_disk(json_object *disks)
{
    for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
        json_object *d = json_object_array_get_idx(disks, i), *v = NULL, *p = NULL;
        if (json_object_object_get_ex(d, "shared", &v) && json_object_get_boolean(v) &&
            json_object_object_get_ex(d, "path", &p))
            return json_object_get_string(p);
    }
    return NULL;
}

static void dest_checked(orch *o, const orchreply *r)
{
    const char *shared_disk = r->dst.shared_storage ? orch_first_shared_disk(o->src_disks) : NULL;
    if (strcmp(o->block, "yes") == 0 && shared_disk) {
        /* block migration would copy a disk on storage both hosts share onto itself: QEMU
         * refuses it late ("Block node is read-only": the destination opens the shared image
         * read-only) and it could only harm the image; Nova refuses it too (InvalidSharedStorage).
         * libvirt copies every disk with VIR_MIGRATE_NON_SHARED_DISK: a guest with both kinds of
         * disk cannot be block-migrated until the agent names the disks to copy */
        _cleanup_free_ char *why = xasprintf(
            "block migration asked, but disk %s is on the instances path that %s and %s share (the shared-storage "
            "probe is visible on both): it would be copied onto itself; migrate without block migration (or with "
            "block_migration \"auto\")",
            shared_disk, o->source, o->dest);
        fail_for(o, ORCH_CAUSE_FAILURE, RPC_OK, why);
        return;
    }
    if (strcmp(o->block, "auto") == 0) {
        int shared = r->dst.shared_storage;
        strlcpy_f(o->block, shared ? "no" : "yes", sizeof(o->block));
        log_info(&o->lf, "block_migration auto: storage %s shared, %s", shared ? "is" : "is not",
                 shared ? "no block migration" : "block migration");
    }
    if (r->dst.address)
        strlcpy_f(o->dest_addr, r->dst.address, sizeof(o->dest_addr));
    orchtx_transition(o, MIG_PREPARING, NULL, prepare);
}

static void check_destination(orch *o)
{
    json_object *b = o->dest_check;
    o->dest_check = NULL;
    call(o, o->dest, ORCHREPLY_CHECK_DESTINATION, b, dest_checked);
}

/* ---- the forecast's dirty-rate sample (issue #18) -------------------------------------------- */

/* Stores the forecast of the mode o runs in from a sample of its guest: dirty_mib_s, nonzero_mib
 * and memory_mib; sampled says the sample is o's own, else sample_note (borrowed) says whose. */
static void forecast_store(orch *o, int64_t dirty_mib_s, int64_t nonzero_mib, int64_t memory_mib, int sampled,
                           const char *sample_note)
{
    const cfg_scheduler *cs = &o->s->cfg->scheduler;
    int64_t bw = o->bw > 0 ? o->bw : cs->forecast_bandwidth_mib_s;
    forecast_mode m = o->post_copy ? FORECAST_POSTCOPY : o->auto_converge ? FORECAST_AUTO_CONVERGE : FORECAST_PRECOPY;
    /* QEMU is given the migration's max_downtime_ms as its limit */
    forecast_in in = forecast_in_for(cs, memory_mib, nonzero_mib, dirty_mib_s, bw, o->downtime, o->after);
    orchtx_forecast(o, m, &in, dirty_mib_s, nonzero_mib, bw, sampled, sample_note);
}

/* The sample is answered (or given up): a prepared migration waiting for it starts now. */
static void sample_settled(orch *o)
{
    o->sampling = 0;
    if (!o->live_waits)
        return;
    o->live_waits = 0;
    log_info(&o->lf, "migration %lld: the dirty-rate sample on %s took %lld ms; the live migration starts",
             (long long)o->id, o->source, (long long)(mono_ms() - o->sample_ms));
    go_live(o);
}

/* The source's dirty-rate sample came: the forecast of the mode this migration runs in, stored
 * with it, and the sample remembered for the instance's next migrations (forecast_reuse_s). */
static void forecast_sampled(orch *o, const orchreply *r)
{
    forecast_store(o, r->dirty.mib_s, r->dirty.nonzero_mib, r->dirty.memory_mib, 1, NULL);
    samplecache_entry e = {
        .migration = o->id, .at_ms = mono_ms(), .dirty_mib_s = r->dirty.mib_s, .nonzero_mib = r->dirty.nonzero_mib};
    strlcpy_f(e.host, o->source, sizeof(e.host));
    samplecache_put(&o->s->samples, o->uuid, &e);
    sample_settled(o);
}

/* No sample (an older agent, a guest not running, no answer in time): no forecast, recorded
 * with why; the migration goes on. */
static void forecast_failed(orch *o, rpc_code code, const char *why)
{
    (void)code;
    _cleanup_free_ char *msg = xasprintf("no forecast: the dirty-rate sample failed: %s", why);
    log_info(&o->lf, "migration %lld: %s", (long long)o->id, msg);
    ledger_record_later(o->s, &o->lf, o->id, "scheduler", NULL, LEDGER_NO_STATUS, "forecast", msg,
                        "record the missing forecast");
    sample_settled(o);
}

/* The forecast's input, taken while the destination checks and prepares (it measures the
 * guest on the source, not the link): a sample of the instance that one of this replica's
 * migrations took within forecast_reuse_s is used at once; else the source samples the guest
 * now (sent once, never retried; the agent takes the period and up to 5 s more), and the live
 * migration waits only for what is left of it once the destination is prepared. */
static void sample_start(orch *o)
{
    const cfg_scheduler *cs = &o->s->cfg->scheduler;
    int64_t secs = cs->forecast_sample_s;
    o->sampling = 0;
    o->live_waits = 0;
    if (secs <= 0)
        return;
    samplecache_entry e;
    int64_t now = mono_ms();
    if (cs->forecast_reuse_s > 0 &&
        samplecache_get(o->s->samples, o->uuid, now, cs->forecast_reuse_s * 1000, &e) == 0) {
        _cleanup_free_ char *note = xasprintf("the dirty-rate sample of migration %lld on %s, %lld s old",
                                              (long long)e.migration, e.host, (long long)((now - e.at_ms) / 1000));
        log_info(&o->lf, "migration %lld: no new sample: the forecast takes %s (forecast_reuse_s %lld)",
                 (long long)o->id, note, (long long)cs->forecast_reuse_s);
        forecast_store(o, e.dirty_mib_s, e.nonzero_mib, o->memory_mb, 0, note);
        return;
    }
    o->sampling = 1;
    o->sample_ms = now;
    json_object *fb = json_object_new_object();
    json_object_object_add(fb, "seconds", json_object_new_int64(secs));
    orchcall_once(o, o->source, ORCHREPLY_DIRTY_RATE, fb, (int)o->s->cfg->amqp.rpc_timeout_ms + (int)secs * 1000 + 5000,
                  forecast_sampled, forecast_failed);
}

static void source_checked(orch *o, const orchreply *r)
{
    /* the disks, as checked, for pre_live_migration */
    json_object_put(o->src_disks);
    o->src_disks = json_object_get(r->src.disks);
    o->memory_mb = r->src.memory_mb;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "domain_xml", json_object_new_string(r->src.domain_xml));
    json_object_object_add(b, "memory_mb", json_object_new_int64(r->src.memory_mb));
    if (r->src.shared_probe)
        json_object_object_add(b, "shared_probe", json_object_new_string(r->src.shared_probe));
    json_object_object_add(b, "post_copy", json_object_new_boolean(o->post_copy));
    if (strcmp(o->block, "auto") == 0)
        json_object_object_add(b, "block_migration", json_object_new_string("auto"));
    else
        json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    json_object_put(o->dest_check);
    o->dest_check = b;
    /* the sample and the destination's checks and prepare at once: the guest's dirty rate is
     * the source's to measure, the checks are the destination's */
    sample_start(o);
    if (o->finishing || o->fail_reason)
        return; /* the sample could not be sent: the lease is lost */
    check_destination(o);
}

static void start_checks(orch *o)
{
    json_object *b = json_object_new_object();
    if (strcmp(o->block, "auto") == 0)
        json_object_object_add(b, "block_migration", json_object_new_string("auto"));
    else
        json_object_object_add(b, "block_migration", json_object_new_boolean(strcmp(o->block, "yes") == 0));
    call(o, o->source, ORCHREPLY_CHECK_SOURCE, b, source_checked);
}

/* ---- resuming a migration this replica did not start (adopted, or after a restart) ----------- */

static void resume_dest_seen(orch *o, const orchreply *r)
{
    if (r->job.dom_running && r->job.dom_persistent) {
        start_completing(o, "resumed: the source has neither job nor domain, the guest runs on the destination");
        return;
    }
    orchtx_finish(o, MIG_ERROR,
                  "resumed: the source knows no job and has no domain, and the guest does not run on the destination",
                  NULL);
}

static void resume_source_seen(orch *o, const orchreply *r)
{
    log_info(&o->lf, "resumed migration %lld: the source's job is %s", (long long)o->id, r->job.word);
    if (r->job.state != JOB_NONE) {
        job_polled(o, r);
        if (r->job.state == JOB_RUNNING) {
            struct timeval tv = {1, 0};
            event_add(o->poll_ev, &tv);
        }
        return;
    }
    if (r->job.dom_exists) {
        /* the guest is on the source and no job for this migration was ever known there: the
         * live_migration call was lost with the replica that made it */
        log_info(&o->lf, "the source has no job for migration %lld and still runs the guest: starting it",
                 (long long)o->id);
        start_live(o);
        return;
    }
    call(o, o->dest, ORCHREPLY_JOB_STATUS, json_object_new_object(), resume_dest_seen);
}

/* ---- start, adopt, renew ------------------------------------------------------------------ */

/* orch_start's read of the migration, with the database worker. */
typedef struct start_job {
    sched *s; /* the worker reads only name (fixed) through it */
    int64_t id;
    char ids[24];
    int64_t t0;
    PGresult *r;
} start_job;

static int start_work(db_conn *db, void *arg, char **err)
{
    start_job *j = arg;
    const char *p[] = {j->ids, j->s->name};
    j->t0 = mono_ms();
    if (db_exec(
            db, &j->r,
            "SELECT m.request_id::text, m.instance_uuid::text, i.ec2_id, m.source_host, m.dest_host, m.status,"
            " m.block_migration, m.post_copy, m.auto_converge, m.postcopy_after_iterations, m.bandwidth_mib_s,"
            " m.max_downtime_ms, m.completion_timeout_s, coalesce(h.address, ''), m.epoch, m.postcopy_active,"
            " coalesce(m.objective_deadline_s, 0),"
            " greatest(0, (extract(epoch FROM now() - coalesce(m.started_at, now())) * 1000)::bigint),"
            " m.completion_action, m.parallel_connections, m.xbzrle_cache_mib, coalesce(h.migration_address, '')"
            " FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid LEFT JOIN hosts h ON h.name = m.dest_host"
            " WHERE m.id = $1::bigint AND m.owner = $2 AND m.finished_at IS NULL",
            2, p) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    return 0;
}

/* On the loop: the orchestration of the migration read, unless this replica drives it already
 * (two starts of one migration may have been on their way). */
static void start_done(void *arg, int rc, char *err)
{
    start_job *j = arg;
    sched *s = j->s;
    int64_t id = j->id;
    _cleanup_pq_ PGresult *r = j->r;
    int64_t t0 = j->t0;
    char ids[24];
    strlcpy_f(ids, j->ids, sizeof(ids));
    free(j);
    log_fields f = {.migration = ids};
    mig_status st = MIG_QUEUED;
    if (rc < 0 || PQntuples(r) != 1) {
        log_error(&f, "cannot drive migration %lld: %s", (long long)id,
                  rc == 0 ? "it is not an unfinished migration of this scheduler" : err);
        free(err);
        return;
    }
    free(err);
    if (orchcore_find(id) || s->stopping)
        return;
    if (mig_status_from_str(PQgetvalue(r, 0, 5), &st) < 0) {
        _cleanup_free_ char *word = log_escape(PQgetvalue(r, 0, 5));
        log_error(&f, "cannot drive migration %lld: its status %s is not one this scheduler knows", (long long)id,
                  word);
        return;
    }
    orch *o = xcalloc(1, sizeof(*o));
    o->s = s;
    o->id = id;
    strlcpy_f(o->id_s, ids, sizeof(o->id_s));
    strlcpy_f(o->req, PQgetvalue(r, 0, 0), sizeof(o->req));
    strlcpy_f(o->uuid, PQgetvalue(r, 0, 1), sizeof(o->uuid));
    strlcpy_f(o->ec2, PQgetvalue(r, 0, 2), sizeof(o->ec2));
    strlcpy_f(o->source, PQgetvalue(r, 0, 3), sizeof(o->source));
    strlcpy_f(o->dest, PQgetvalue(r, 0, 4), sizeof(o->dest));
    o->status = st;
    strlcpy_f(o->block, PQgetvalue(r, 0, 6), sizeof(o->block));
    o->post_copy = strcmp(PQgetvalue(r, 0, 7), "t") == 0;
    o->auto_converge = strcmp(PQgetvalue(r, 0, 8), "t") == 0;
    o->after = atoi(PQgetvalue(r, 0, 9));
    o->bw = atoi(PQgetvalue(r, 0, 10));
    o->downtime = atoi(PQgetvalue(r, 0, 11));
    o->timeout = atoi(PQgetvalue(r, 0, 12));
    strlcpy_f(o->dest_addr, PQgetvalue(r, 0, 13), sizeof(o->dest_addr));
    o->epoch = atoll(PQgetvalue(r, 0, 14));
    strlcpy_f(o->epoch_s, PQgetvalue(r, 0, 14), sizeof(o->epoch_s));
    o->postcopy = strcmp(PQgetvalue(r, 0, 15), "t") == 0;
    o->obj_deadline_s = atoi(PQgetvalue(r, 0, 16));
    o->started_mono_ms = t0 - atoll(PQgetvalue(r, 0, 17));
    o->completion_action = msg_completion_action_of(PQgetvalue(r, 0, 18));
    if (o->completion_action < 0)
        o->completion_action = MSG_COMPLETION_ABORT;
    o->parallel = atoi(PQgetvalue(r, 0, 19));
    o->xbzrle_cache_mib = atoi(PQgetvalue(r, 0, 20));
    strlcpy_f(o->dest_maddr, PQgetvalue(r, 0, 21), sizeof(o->dest_maddr));
    o->lf.migration = o->id_s;
    o->lf.instance = o->ec2;
    o->lf.req = o->req;
    /* the lease was set (or renewed) by the transaction that gave it to this replica, before
     * this read (the worker runs them in that order) */
    o->lease_ms = orchcore_lease_from(s, t0);
    o->poll_ev = event_new(s->base, -1, EV_PERSIST, poll_job, o);
    orchcore_add(s, o);
    if (orchcore_is_early(o->status)) {
        /* nothing has moved yet: checks and preparation are idempotent, run them (again) */
        start_checks(o);
    } else if (o->status == MIG_RUNNING) {
        call(o, o->source, ORCHREPLY_JOB_STATUS, json_object_new_object(), resume_source_seen);
    } else if (o->status == MIG_COMPLETING) {
        call(o, o->dest, ORCHREPLY_POST_LIVE_MIGRATION, json_object_new_object(), post_done);
    } else {
        log_warn(&o->lf, "migration %lld is %s: nothing for the orchestration to do", (long long)id,
                 mig_status_str(o->status));
        orchcore_done(o);
    }
}

void orch_start(sched *s, int64_t id)
{
    if (orchcore_find(id))
        return;
    start_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->id = id;
    snprintf(j->ids, sizeof(j->ids), "%lld", (long long)id);
    dbq_submit(s->dbq, start_work, start_done, j);
}

static void fc_done(orch *o, const orchreply *r)
{
    _cleanup_free_ char *msg =
        xasprintf("force-complete on %s: %s", o->source,
                  r->fc_action == ORCHREPLY_FC_POSTCOPY ? "switched to post-copy" : "guest paused to finish");
    log_info(&o->lf, "migration %lld: %s", (long long)o->id, msg);
    ledger_record_later(o->s, &o->lf, o->id, "scheduler", NULL, o->status, "force_complete", msg, "record it");
}

static void abort_sent(orch *o, const orchreply *r)
{
    (void)r;
    log_info(&o->lf, "migration %lld: the source aborts its job (%s)", (long long)o->id, o->abort_reason);
}

static void act_on_requests(orch *o, int abort_req, int fc_req, int past_deadline)
{
    if (o->finishing || o->fail_reason)
        return;
    int early = orchcore_is_early(o->status);
    int running = o->status == MIG_RUNNING;
    if (past_deadline && !o->deadline_hit) {
        o->deadline_hit = 1;
        int64_t secs = ledger_deadline_s(o->s, o->status);
        if (o->status == MIG_COMPLETING) {
            _cleanup_free_ char *why =
                xasprintf("deadline: still completing after %lld s (deadline_completing_s)", (long long)secs);
            log_error(&o->lf, "migration %lld: %s", (long long)o->id, why);
            orchtx_finish(o, MIG_ERROR, why, NULL);
            return;
        }
        if (early) {
            _cleanup_free_ char *why = xasprintf("deadline: still %s after %lld s (deadline_preparing_s)",
                                                 mig_status_str(o->status), (long long)secs);
            fail(o, RPC_OK, why);
            return;
        }
        if (running && !o->postcopy && !o->abort_sent) {
            o->abort_sent = 1;
            free(o->abort_reason);
            o->abort_reason =
                xasprintf("deadline: still running after %lld s (deadline_running_s): aborted", (long long)secs);
            o->abort_cause = ORCH_CAUSE_FAILURE;
            orchcall_soft(o, o->source, ORCHREPLY_ABORT, json_object_new_object(), abort_sent);
        } else if (running) {
            log_warn(&o->lf, "migration %lld is past its deadline but in post-copy: it can only go forward",
                     (long long)o->id);
        }
    }
    if (abort_req && !o->abort_sent) {
        if (early) {
            o->abort_sent = 1;
            fail_for(o, ORCH_CAUSE_OPERATOR_ABORT, RPC_OK, "cancelled: aborted by the operator");
            return;
        }
        if (running && !o->postcopy) {
            o->abort_sent = 1;
            free(o->abort_reason);
            o->abort_reason = xstrdup("cancelled: aborted by the operator");
            o->abort_cause = ORCH_CAUSE_OPERATOR_ABORT;
            orchcall_soft(o, o->source, ORCHREPLY_ABORT, json_object_new_object(), abort_sent);
        }
    }
    if (fc_req && !o->fc_sent && running) {
        o->fc_sent = 1;
        orchcall_soft(o, o->source, ORCHREPLY_FORCE_COMPLETE, json_object_new_object(), fc_done);
    }
}

static void bw_set(orch *o, const orchreply *r)
{
    (void)r;
    o->bw_sending = 0;
    int from = o->bw;
    o->bw = o->bw_target;
    _cleanup_free_ char *msg =
        xasprintf("bandwidth cap set from %d to %d MiB/s on %s: its drain's budget shared anew among the "
                  "drain's migrations under way",
                  from, o->bw, o->source);
    log_info(&o->lf, "migration %lld: %s", (long long)o->id, msg);
    orchtx_bandwidth(o, o->bw, msg);
}

static void bw_failed(orch *o, rpc_code code, const char *why)
{
    o->bw_sending = 0;
    /* unavailable: not yet (the job's own settings are applied and verified first); asked
     * again with the next lease renewal */
    log_write(code == RPC_UNAVAILABLE ? LOG_LVL_DEBUG : LOG_LVL_WARN, &o->lf,
              "migration %lld: could not set its bandwidth cap to %d MiB/s on %s: %s", (long long)o->id, o->bw_target,
              o->source, why);
}

void orch_bandwidth(sched *s, int64_t id, int target)
{
    orch *o = orchcore_find(id);
    if (!o || target <= 0 || target == o->bw || o->bw_sending || o->finishing || o->fail_reason || o->abort_sent ||
        o->status != MIG_RUNNING)
        return;
    o->bw_sending = 1;
    o->bw_target = target;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "bandwidth_mib_s", json_object_new_int(target));
    orchcall_once(o, o->source, ORCHREPLY_SET_BANDWIDTH, b, (int)s->cfg->amqp.rpc_timeout_ms, bw_set, bw_failed);
}

void orch_act(sched *s, int64_t id, int abort_req, int fc_req, int past_deadline)
{
    (void)s;
    orch *o = orchcore_find(id);
    if (o)
        act_on_requests(o, abort_req, fc_req, past_deadline);
}

int orch_count(void)
{
    return orchcore_count();
}

/* orch_poke's read of the operator's requests, with the database worker. */
typedef struct poke_job {
    sched *s;
    int64_t id;
    char ids[24];
    int abort_req, fc_req, past_deadline;
} poke_job;

static int poke_work(db_conn *db, void *arg, char **err)
{
    poke_job *j = arg;
    const char *p[] = {j->ids};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT abort_requested, force_complete_requested, coalesce(deadline_at < now(), false) FROM migrations"
                " WHERE id = $1::bigint",
                1, p) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    if (PQntuples(r) != 1)
        return -1;
    j->abort_req = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    j->fc_req = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    j->past_deadline = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    return 0;
}

static void poke_done(void *arg, int rc, char *err)
{
    poke_job *j = arg;
    orch *o = rc == 0 && !j->s->stopping ? orchcore_find(j->id) : NULL;
    if (o)
        act_on_requests(o, j->abort_req, j->fc_req, j->past_deadline);
    free(err);
    free(j);
}

void orch_poke(sched *s, int64_t id)
{
    if (!orchcore_find(id))
        return;
    poke_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->id = id;
    snprintf(j->ids, sizeof(j->ids), "%lld", (long long)id);
    dbq_submit(s->dbq, poke_work, poke_done, j);
}
