/* job: outgoing live migrations (job.h). The blocking virDomainMigrateToURI3 runs on a worker
 * thread (migrate.c) and the job's statistics are read on a poller thread (jobstats.c);
 * everything else — the post-copy switch, the completion timeout, stall detection, how the job
 * ends — is decided here, on the loop thread. What the agent knows of a job is also written to
 * its state dir (statefile.c), so a restarted agent finds its jobs again and asks libvirt what
 * became of them. */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "events.h"
#include "guard.h"
#include "inventory.h"
#include "jobrule.h"
#include "jobstats.h"
#include "migrate.h"
#include "proto.h"
#include "statefile.h"
#include "streams.h"

/* where libvirt's system QEMU driver keeps its domains' pid files */
#define QEMU_RUN_DIR "/run/libvirt/qemu"

struct job {
    job *next;
    agent *a;
    int64_t migration;
    char mig_s[24];
    char uuid[VIR_UUID_STRING_BUFLEN];
    char *name;
    char *ec2_id;
    char *dest;
    char *dest_address;
    char *data_address; /* the destination's migration network address (NULL: none) */
    char *tls_name;     /* dest_address without a port: the destination's certificate name */
    char *uri;
    job_opts o;
    job_state state;
    int adopted;        /* found after a restart: no worker thread of ours */
    int worker_done;    /* the worker's result arrived */
    int resuming;       /* the worker runs a post-copy resume (resume_postcopy) */
    int downtime_step;  /* the step of the downtime ramp QEMU was given (0: the first) */
    int resumes;        /* resume calls started so far */
    jobrule_state rs;   /* post-copy, iteration, abort asked, start, best remaining (jobrule.h) */
    char *abort_reason; /* set when the agent itself aborted (timeout, stall) */
    int paused_to_finish;
    int verified;           /* the settings were read back from libvirt once QEMU's job began */
    int64_t verify_from_ms; /* when QEMU's job was first seen begun (the streams get 5 s to open) */
    char *error;
    migrate_outcome outcome; /* how the worker's libvirt call ended (once worker_done) */
    json_object *last_stats;
    json_object *final_stats;
    int64_t ended_ms; /* adopted: when libvirt first showed no job */
    jobstats_poller *poll;
    struct event *finish_ev;
    log_fields lf;
};

/* ---- helpers ----------------------------------------------------------------------------- */

const log_fields *job_fields(const job *j)
{
    return &j->lf;
}

job *job_find(agent *a, int64_t migration)
{
    for (job *j = a->jobs; j; j = j->next)
        if (j->migration == migration)
            return j;
    return NULL;
}

static job *job_by_uuid(agent *a, const char *uuid)
{
    for (job *j = a->jobs; j; j = j->next)
        if (j->state == JOB_RUNNING && strcmp(j->uuid, uuid) == 0)
            return j;
    return NULL;
}

static void poll_stop(job *j)
{
    jobstats_poll_stop(j->poll);
    j->poll = NULL;
}

static void job_free(job *j)
{
    if (!j)
        return;
    poll_stop(j);
    if (j->finish_ev)
        event_free(j->finish_ev);
    json_object_put(j->last_stats);
    json_object_put(j->final_stats);
    free(j->name);
    free(j->ec2_id);
    free(j->dest);
    free(j->dest_address);
    free(j->data_address);
    free(j->tls_name);
    free(j->uri);
    free(j->error);
    free(j->abort_reason);
    free(j);
}

int job_workers_running(const agent *a)
{
    int n = 0;
    for (const job *j = a->jobs; j; j = j->next)
        n += j->state == JOB_RUNNING && !j->adopted && !j->worker_done;
    return n;
}

void job_free_all(agent *a)
{
    job *j = a->jobs;
    a->jobs = NULL;
    while (j) {
        job *n = j->next;
        job_free(j);
        j = n;
    }
}

/* Writes the job's record to the state dir (a failure is logged there). */
static void persist(job *j)
{
    sf_job r = {
        .migration = j->migration,
        .instance = j->uuid,
        .name = j->name,
        .instance_id = j->ec2_id,
        .dest = j->dest,
        .uri = j->uri,
        .data_address = j->data_address,
        .tls_name = j->tls_name,
        .state = job_state_str(j->state),
        .post_copy = j->o.post_copy,
        .postcopy_active = j->rs.postcopy_active,
        .error = j->error,
        .stats = j->final_stats,
    };
    (void)sf_job_write(j->a->cfg->agent.state_dir, &r, &j->lf);
}

static int64_t stat_i64(json_object *stats, const char *key, int64_t def)
{
    json_object *v;
    if (stats && json_object_object_get_ex(stats, key, &v))
        return json_object_get_int64(v);
    return def;
}

json_object *job_status_json(const job *j)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "migration", json_object_new_int64(j->migration));
    json_object_object_add(o, "instance", json_object_new_string(j->uuid));
    json_object_object_add(o, "state", json_object_new_string(job_state_str(j->state)));
    json_object_object_add(o, "postcopy", json_object_new_boolean(j->rs.postcopy_active));
    json_object_object_add(o, "adopted", json_object_new_boolean(j->adopted));
    json_object_object_add(o, "resumes", json_object_new_int(j->resumes));
    if (j->dest)
        json_object_object_add(o, "dest", json_object_new_string(j->dest));
    json_object *st = j->final_stats ? j->final_stats : j->last_stats;
    if (st)
        json_object_object_add(o, "stats", json_object_get(st));
    if (j->error)
        json_object_object_add(o, "error", json_object_new_string(j->error));
    return o;
}

/* ---- finishing ------------------------------------------------------------------------- */

static void finish(job *j, job_state st, const char *error)
{
    if (j->state != JOB_RUNNING && j->state != JOB_POSTCOPY_PAUSED)
        return;
    j->resuming = 0;
    j->state = st;
    char *copy = error ? xstrdup(error) : NULL; /* error may be j->error itself */
    free(j->error);
    j->error = copy;
    error = copy;
    poll_stop(j);
    const char *who = j->ec2_id ? j->ec2_id : j->name ? j->name : j->uuid;
    json_object *fs = j->final_stats;
    switch (st) {
    case JOB_COMPLETED: {
        /* the seed's line, word for word */
        log_info(&j->lf, "Live migration %s to %s finishes successfully.", who, j->dest ? j->dest : "?");
        char xbz[160] = "";
        if (stat_i64(fs, "compression_cache", -1) >= 0)
            snprintf(xbz, sizeof(xbz),
                     "; xbzrle: %lld pages compressed into %lld bytes, %lld cache misses, cache %lld MiB",
                     (long long)stat_i64(fs, "compression_pages", 0), (long long)stat_i64(fs, "compression_bytes", 0),
                     (long long)stat_i64(fs, "compression_cache_misses", 0),
                     (long long)(stat_i64(fs, "compression_cache", 0) >> 20));
        log_info(&j->lf, "migration of %s to %s completed: %lld ms, downtime %lld ms, %lld bytes of memory sent%s%s",
                 who, j->dest ? j->dest : "?", (long long)stat_i64(fs, "time_elapsed_ms", -1),
                 (long long)stat_i64(fs, "downtime_ms", -1), (long long)stat_i64(fs, "memory_processed", -1),
                 j->rs.postcopy_active ? " (post-copy)" : "", xbz);
        break;
    }
    case JOB_CANCELLED:
        log_warn(&j->lf, "migration of %s to %s cancelled: %s", who, j->dest ? j->dest : "?",
                 error ? error : "aborted");
        break;
    case JOB_POSTCOPY_PAUSED:
        log_error(&j->lf,
                  "post-copy migration of %s to %s paused: the stream broke after the switch (%s); %s holds the "
                  "guest's CPU state and the pages it received, this host the rest: job kept for resume_postcopy",
                  who, j->dest ? j->dest : "?", error ? error : "unknown", j->dest ? j->dest : "the destination");
        break;
    default:
        log_error(&j->lf, "migration of %s to %s failed: %s", who, j->dest ? j->dest : "?", error ? error : "unknown");
        break;
    }
    persist(j);
    events_migration_ended(j->a, &j->lf, j->migration, j->uuid, job_state_str(j->state), j->dest, j->rs.postcopy_active,
                           j->error, j->final_stats);
}

static void finish_after_grace(evutil_socket_t fd, short what, void *arg);

/* The worker is done; wait briefly for libvirt's job-completed event (its final statistics
 * usually come first, but not always), then finish. */
static void worker_result(job *j)
{
    if (j->final_stats) {
        finish_after_grace(-1, 0, j);
        return;
    }
    if (!j->finish_ev)
        j->finish_ev = evtimer_new(j->a->base, finish_after_grace, j);
    struct timeval tv = {1, 0};
    evtimer_add(j->finish_ev, &tv);
}

/* ---- the worker's outcome ----------------------------------------------------------------- */

static void on_worker_done(void *owner, int64_t key, migrate_outcome out, const char *error)
{
    job *j = job_find(owner, key);
    if (j && j->state == JOB_RUNNING) {
        j->worker_done = 1;
        free(j->error);
        j->error = error ? xstrdup(error) : NULL;
        j->outcome = out;
        worker_result(j);
    }
}

/* ---- polling (loop thread) --------------------------------------------------------------- */

static virDomainPtr job_domain(job *j, virConnectPtr *conn_out)
{
    virConnectPtr conn = lv_ref(j->a->lv, NULL);
    if (!conn)
        return NULL;
    virDomainPtr dom = virDomainLookupByUUIDString(conn, j->uuid);
    if (!dom) {
        virConnectClose(conn);
        return NULL;
    }
    *conn_out = conn;
    return dom;
}

static void switch_postcopy(job *j, virDomainPtr dom, const char *why)
{
    if (j->rs.postcopy_active)
        return;
    if (virDomainMigrateStartPostCopy(dom, 0) < 0) {
        log_warn(&j->lf, "could not switch to post-copy (%s): %s", why, lv_errmsg());
        return;
    }
    j->rs.postcopy_active = 1;
    log_info(&j->lf, "switched to post-copy after memory iteration %d (%s)", j->rs.iteration, why);
    persist(j);
    events_migration_postcopy(j->a, &j->lf, j->migration, j->uuid, j->rs.iteration, why);
}

/* The post-copy rule of ORBIT: after N completed memory iterations, switch. Iteration k
 * running means k-1 are complete. */
static void maybe_postcopy(job *j, virDomainPtr dom)
{
    if (jobrule_postcopy_due(&j->o, &j->rs))
        switch_postcopy(j, dom, "iterations");
}

static void adopted_ended(job *j);

/* Pauses the guest of a pre-copy so that the rest of its memory is sent and the migration
 * completes (it resumes on the destination); why names the cause in the log. 0, or -1 with
 * libvirt's error left for lv_errmsg. */
static int pause_to_finish(job *j, virDomainPtr dom, const char *why)
{
    if (virDomainSuspend(dom) < 0) {
        log_warn(&j->lf, "could not pause the guest to finish the migration (%s): %s", why, lv_errmsg());
        return -1;
    }
    j->paused_to_finish = 1;
    log_info(&j->lf, "guest paused so that the migration completes (%s)", why);
    return 0;
}

/* Keeps libvirt's message of the failure just seen in *why (a copy: the next libvirt call
 * frees libvirt's own), replacing an earlier one. */
static void keep_lverr(char **why)
{
    free(*why);
    *why = xstrdup(lv_errmsg());
}

/* What libvirt holds of the job's settings now, into *ap (-1 where the job did not ask or
 * libvirt could not say: the last failure's message in *why, caller frees; NULL when none). */
static void read_applied(job *j, virDomainPtr dom, jobrule_applied *ap, streams_seen *seen, char **why)
{
    int want_downtime, want_pc_bw, want_cache, want_streams;
    jobrule_settings_wanted(&j->o, &want_downtime, &want_pc_bw, &want_cache, &want_streams);
    *ap = (jobrule_applied){-1, -1, -1, -1, -1, NULL, NULL};
    *why = NULL;
    unsigned long long dt, cache;
    unsigned long bw;
    if (want_cache) {
        if (virDomainMigrateGetCompressionCache(dom, &cache, 0) == 0)
            ap->compression_cache_mib = (long long)(cache >> 20);
        else
            keep_lverr(why);
    }
    /* QEMU's own connections (always named; required with parallel connections) */
    char *serr = NULL;
    int pid = streams_qemu_pid(QEMU_RUN_DIR, j->name, &serr);
    if (pid > 0 && streams_of_pid(pid, seen, &serr) == 0) {
        ap->streams = seen->count;
        ap->stream_remote = seen->remote;
        ap->stream_local = seen->local;
    } else if (want_streams) {
        log_warn(&j->lf, "cannot count QEMU's connections: %s", serr);
    }
    free(serr);
    if (want_downtime) {
        if (virDomainMigrateGetMaxDowntime(dom, &dt, 0) == 0)
            ap->downtime_ms = (long long)dt;
        else
            keep_lverr(why);
    }
    if (virDomainMigrateGetMaxSpeed(dom, &bw, 0) == 0)
        ap->bandwidth_mib_s = (long long)bw;
    else
        keep_lverr(why);
    if (want_pc_bw) {
        if (virDomainMigrateGetMaxSpeed(dom, &bw, VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY) == 0)
            ap->postcopy_bandwidth_mib_s = (long long)bw;
        else
            keep_lverr(why);
    }
}

/* Once QEMU's migration began (its memory figures came: libvirt applied the job's parameters
 * before), reads back what libvirt applied and compares it with what was asked: the same, it is
 * logged and recorded (settings_verified); different, the job is aborted and fails with the
 * difference as its reason. Once per job; an adopted job's options are not known. */
static void verify_settings(job *j, virDomainPtr dom)
{
    if (j->verified || j->adopted || j->rs.abort_requested || j->rs.postcopy_active ||
        stat_i64(j->last_stats, "memory_total", 0) <= 0)
        return;
    int64_t now = mono_ms();
    if (!j->verify_from_ms)
        j->verify_from_ms = now;
    jobrule_applied ap;
    streams_seen seen;
    _cleanup_free_ char *lverr = NULL;
    read_applied(j, dom, &ap, &seen, &lverr);
    char why[512];
    int rc = jobrule_settings_check(&j->o, j->downtime_step, &ap, why, sizeof(why));
    /* QEMU opens its parallel connections as its job begins: they get a few polls */
    if (rc < 0 && j->o.parallel_connections > 1 && ap.streams < j->o.parallel_connections + 1 &&
        now - j->verify_from_ms < 5000)
        return;
    j->verified = 1;
    if (rc == 0) {
        log_info(&j->lf, "settings verified in libvirt: %s", why);
        events_migration_note(j->a, &j->lf, j->migration, j->uuid, "settings_verified", why);
        return;
    }
    log_error(&j->lf, "the migration's settings were not applied: %s%s%s: aborting", why, lverr ? ": " : "",
              lverr ? lverr : "");
    free(j->abort_reason);
    j->abort_reason = lverr ? xasprintf("settings not applied: %s (libvirt: %s)", why, lverr)
                            : xasprintf("settings not applied: %s", why);
    j->rs.abort_requested = 1;
    if (virDomainAbortJob(dom) < 0)
        log_error(&j->lf, "could not abort the job: %s", lv_errmsg());
}

/* New statistics (stats taken) from the poller: publish, and decide (post-copy switch,
 * completion timeout, stall). */
static void poll_update(job *j, virDomainPtr dom, json_object *stats)
{
    json_object_put(j->last_stats);
    j->last_stats = stats;
    json_object_object_add(j->last_stats, "postcopy", json_object_new_boolean(j->rs.postcopy_active));
    int64_t now = mono_ms();
    jobrule_take_reading(&j->rs, (int)stat_i64(j->last_stats, "iteration", 0),
                         (unsigned long long)stat_i64(j->last_stats, "memory_remaining", 0), now);
    maybe_postcopy(j, dom);
    /* the downtime ramp: the next step's limit once its time came (a pre-copy's only) */
    int step, limit = jobrule_downtime_at(&j->o, now - j->rs.started_ms, &step);
    if (step > j->downtime_step && !j->rs.postcopy_active && !j->adopted) {
        if (virDomainMigrateSetMaxDowntime(dom, (unsigned long long)limit, 0) < 0) {
            log_warn(&j->lf, "could not raise the maximum downtime to %d ms: %s", limit, lv_errmsg());
        } else {
            log_info(&j->lf, "maximum downtime raised to %d ms (step %d of %d, every %d ms)", limit, step,
                     j->o.downtime_steps, j->o.downtime_delay_ms);
            j->downtime_step = step;
        }
    }
    /* the limit QEMU holds now (an adopted job's options are not known) */
    if (!j->adopted)
        json_object_object_add(
            j->last_stats, "downtime_limit_ms",
            json_object_new_int(jobrule_downtime_at(&j->o, (int64_t)j->downtime_step * j->o.downtime_delay_ms, &step)));
    events_migration_progress(j->a, &j->lf, j->migration, j->uuid, j->last_stats);
    verify_settings(j, dom);
    if (j->rs.abort_requested)
        return;

    /* completion timeout: abort, or switch to post-copy when that was asked */
    jobrule_timeout t = jobrule_completion(&j->o, &j->rs, j->paused_to_finish, now);
    if (t != JOBRULE_IN_TIME) {
        if (t == JOBRULE_TIMEOUT_POSTCOPY) {
            switch_postcopy(j, dom, "completion timeout");
        } else if (t == JOBRULE_TIMEOUT_PAUSE) {
            _cleanup_free_ char *why = xasprintf("completion timeout of %d s", j->o.completion_timeout_s);
            if (pause_to_finish(j, dom, why) == 0) {
                _cleanup_free_ char *note = xasprintf("guest paused so that the migration completes (%s)", why);
                events_migration_note(j->a, &j->lf, j->migration, j->uuid, "guest_paused", note);
            } else {
                /* the guest could not be paused: the timeout's other way out */
                free(j->abort_reason);
                j->abort_reason = xasprintf("completion timeout of %d s reached and the guest could not be paused: %s",
                                            j->o.completion_timeout_s, lv_errmsg());
                j->rs.abort_requested = 1;
                if (virDomainAbortJob(dom) < 0)
                    log_error(&j->lf, "could not abort the job: %s", lv_errmsg());
            }
        } else {
            log_warn(&j->lf, "completion timeout of %d s reached: aborting", j->o.completion_timeout_s);
            free(j->abort_reason);
            j->abort_reason = xasprintf("completion timeout of %d s reached", j->o.completion_timeout_s);
            j->rs.abort_requested = 1;
            if (virDomainAbortJob(dom) < 0)
                log_error(&j->lf, "could not abort the job: %s", lv_errmsg());
        }
    }
    /* stall: remaining memory has not reached a new low for stall_timeout_s */
    int64_t stall = j->a->cfg->agent.stall_timeout_s;
    if (jobrule_stalled(&j->rs, now, stall)) {
        log_warn(&j->lf, "migration stalled: remaining memory has not shrunk below %llu bytes for %lld s: aborting",
                 j->rs.best_remaining, (long long)stall);
        free(j->abort_reason);
        j->abort_reason = xasprintf("stalled: remaining memory did not shrink below %llu bytes for %lld s",
                                    j->rs.best_remaining, (long long)stall);
        j->rs.abort_requested = 1;
        if (virDomainAbortJob(dom) < 0)
            log_error(&j->lf, "could not abort the stalled job: %s", lv_errmsg());
    }
}

/* A reading of the poller of job `key` (owner is the agent). */
static void on_stats(void *owner, int64_t key, const jobstats_reading *r)
{
    job *j = job_find(owner, key);
    if (j && j->state == JOB_RUNNING) {
        if (r->gone || r->type == VIR_DOMAIN_JOB_NONE) {
            if (j->adopted)
                adopted_ended(j);
        } else {
            virConnectPtr conn = NULL;
            virDomainPtr dom = job_domain(j, &conn);
            if (dom) {
                poll_update(j, dom, json_object_get(r->stats));
                virDomainFree(dom);
                virConnectClose(conn);
            }
        }
    }
}

/* The migrate call failed after the post-copy switch: what libvirt shows of the domain here says
 * whether the job is paused (kept for resume_postcopy), landed after all (the domain left this
 * host: the destination finished it), or failed. */
static void postcopy_ended(job *j)
{
    const char *err = j->error ? j->error : "unknown libvirt error";
    virConnectPtr conn = lv_ref(j->a->lv, NULL);
    if (!conn) {
        /* cannot look: paused is the state that loses nothing (resume_postcopy looks again) */
        finish(j, JOB_POSTCOPY_PAUSED, err);
        return;
    }
    virDomainPtr dom = virDomainLookupByUUIDString(conn, j->uuid);
    int st = 0, reason = 0;
    if (dom)
        virDomainGetState(dom, &st, &reason, 0);
    if (!dom || (st == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_MIGRATED)) {
        log_warn(&j->lf,
                 "the migrate call failed after the post-copy switch (%s) but the domain left this host: "
                 "it completed on the destination",
                 err);
        finish(j, JOB_COMPLETED, NULL);
    } else if (jobrule_postcopy_end(st == VIR_DOMAIN_PAUSED && (reason == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED ||
                                                                reason == VIR_DOMAIN_PAUSED_POSTCOPY)) ==
               JOBRULE_END_POSTCOPY_PAUSED) {
        finish(j, JOB_POSTCOPY_PAUSED, err);
    } else {
        _cleanup_free_ char *e =
            xasprintf("%s (after the post-copy switch; the domain here is %s, reason %d: nothing to resume)", err,
                      inv_state_name(st), reason);
        finish(j, JOB_FAILED, e);
    }
    if (dom)
        virDomainFree(dom);
    virConnectClose(conn);
}

static void finish_after_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job *j = arg;
    if (j->state != JOB_RUNNING)
        return;
    if (!j->worker_done) {
        finish(j, JOB_FAILED, j->error ? j->error : "unknown libvirt error");
        return;
    }
    switch (jobrule_end_of(j->outcome == MIGRATE_OK, j->outcome == MIGRATE_ABORTED, &j->rs, j->abort_reason != NULL)) {
    case JOBRULE_END_COMPLETED:
        finish(j, JOB_COMPLETED, NULL);
        break;
    case JOBRULE_END_AGENT_ABORT: {
        _cleanup_free_ char *e = xasprintf("%s (libvirt: %s)", j->abort_reason, j->error ? j->error : "aborted");
        finish(j, JOB_FAILED, e);
        break;
    }
    case JOBRULE_END_CANCELLED:
        finish(j, JOB_CANCELLED, j->error ? j->error : "aborted");
        break;
    case JOBRULE_END_FAILED:
        finish(j, JOB_FAILED, j->error ? j->error : "unknown libvirt error");
        break;
    case JOBRULE_END_POSTCOPY_PAUSED:
        postcopy_ended(j);
        break;
    }
}

static job *job_new(agent *a, int64_t migration, const char *uuid)
{
    job *j = xcalloc(1, sizeof(*j));
    j->a = a;
    j->migration = migration;
    snprintf(j->mig_s, sizeof(j->mig_s), "%lld", (long long)migration);
    strlcpy_f(j->uuid, uuid, sizeof(j->uuid));
    j->rs.started_ms = j->rs.best_remaining_ms = mono_ms();
    j->next = a->jobs;
    a->jobs = j;
    return j;
}

static void job_set_fields(job *j)
{
    j->lf.migration = j->mig_s;
    j->lf.instance = j->ec2_id ? j->ec2_id : j->uuid;
    j->lf.host = j->a->host;
}

static void start_polling(job *j)
{
    if (j->poll)
        return;
    j->poll = jobstats_poll_start(j->a->lv, j->a->q, j->uuid, (int)j->a->cfg->agent.job_poll_ms, on_stats, j->a,
                                  j->migration, &j->lf);
}

int job_start(agent *a, int64_t migration, const char *uuid, const char *dest, const char *dest_address,
              const char *data_address, const job_opts *o, job **out, char **err, rpc_code *code)
{
    job *j = job_find(a, migration);
    if (j) {
        if (strcmp(j->uuid, uuid) != 0) {
            *err =
                xasprintf("migration %lld is already a job of domain %s, not %s", (long long)migration, j->uuid, uuid);
            *code = RPC_CONFLICT;
            return -1;
        }
        *out = j; /* the same request again: one job */
        return 0;
    }
    /* the address goes into the libvirt URI: checked here too, whoever the caller */
    char *bad = NULL;
    if (guard_address(dest_address, strlen(dest_address), &bad) < 0) {
        *err = xasprintf("cannot build the migration URI: %s", bad);
        *code = RPC_INVALID;
        free(bad);
        return -1;
    }
    job *other = job_by_uuid(a, uuid);
    if (other) {
        *err = xasprintf("domain %s is already being migrated (migration %lld)", uuid, (long long)other->migration);
        *code = RPC_CONFLICT;
        return -1;
    }
    const char *why = NULL;
    virConnectPtr conn = lv_ref(a->lv, &why);
    if (!conn) {
        *err = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        *code = RPC_UNAVAILABLE; /* as every RPC answers it: the scheduler asks again */
        return -1;
    }
    virDomainPtr dom = virDomainLookupByUUIDString(conn, uuid);
    if (!dom) {
        *err = xasprintf("cannot find domain %s: %s", uuid, lv_errmsg());
        *code = RPC_NOT_FOUND;
        virConnectClose(conn);
        return -1;
    }
    /* QEMU's multifd and post-copy combine from 10.1 on (the scheduler's intake checks it too) */
    unsigned long hv = 0;
    if (o->parallel_connections > 1 && o->post_copy && virConnectGetVersion(conn, &hv) == 0 && hv < 10001000UL) {
        *err = xasprintf("parallel connections cannot be combined with post-copy before QEMU 10.1 (this host has "
                         "QEMU %lu.%lu.%lu)",
                         hv / 1000000, hv / 1000 % 1000, hv % 1000);
        *code = RPC_INVALID;
        virDomainFree(dom);
        virConnectClose(conn);
        return -1;
    }
    int active = virDomainIsActive(dom);
    int jtype = VIR_DOMAIN_JOB_NONE;
    virDomainJobInfo ji;
    if (virDomainGetJobInfo(dom, &ji) == 0)
        jtype = ji.type;
    const char *dname = virDomainGetName(dom);
    if (active != 1 || jtype != VIR_DOMAIN_JOB_NONE) {
        *err = active != 1 ? xasprintf("domain %s is not running", dname)
                           : xasprintf("domain %s already has a job running (not ferry's migration %lld)", dname,
                                       (long long)migration);
        *code = RPC_CONFLICT;
        virDomainFree(dom);
        virConnectClose(conn);
        return -1;
    }
    j = job_new(a, migration, uuid);
    j->name = xstrdup(dname);
    inv_meta meta = {0};
    char *merr = NULL;
    if (inv_domain_meta(dom, &meta, &merr) == 0) {
        j->ec2_id = meta.instance_id;
        meta.instance_id = NULL;
        inv_meta_free(&meta);
    } else {
        free(merr);
    }
    virDomainFree(dom);
    virConnectClose(conn);
    j->dest = xstrdup(dest);
    j->dest_address = xstrdup(dest_address);
    j->data_address = data_address && *data_address ? xstrdup(data_address) : NULL;
    j->tls_name = xstrdup(dest_address);
    char *port = j->tls_name[0] == '[' ? strstr(j->tls_name, "]:") : strchr(j->tls_name, ':');
    if (port)
        port[j->tls_name[0] == '[' ? 1 : 0] = 0;
    j->uri = xasprintf(a->cfg->libvirt.live_migration_uri, dest_address);
    j->o = *o;
    job_set_fields(j);
    persist(j);

    migrate_req req = {.uuid = uuid,
                       .uri = j->uri,
                       .o = o,
                       .tls = a->cfg->libvirt.migrate_tls,
                       .data_address = j->data_address,
                       .tls_name = j->tls_name,
                       .lf = &j->lf};
    int rc = migrate_start(a->lv, a->q, &req, on_worker_done, a, migration);
    if (rc != 0) {
        *err = xasprintf("could not start the migration thread: %s", strerror(rc));
        *code = RPC_INTERNAL;
        finish(j, JOB_FAILED, *err);
        return -1;
    }
    char par[48] = "", xbz[48] = "", net[96] = "";
    if (j->data_address)
        snprintf(net, sizeof(net), ", stream to %s (migration network)", j->data_address);
    if (o->parallel_connections > 1)
        snprintf(par, sizeof(par), ", %d parallel connections", o->parallel_connections);
    if (o->xbzrle_cache_mib > 0)
        snprintf(xbz, sizeof(xbz), ", xbzrle with a %d MiB cache", o->xbzrle_cache_mib);
    log_info(&j->lf,
             "live migration of %s (%s) to %s started: uri %s%s, %s%s%s%s%s%s, bandwidth %d MiB/s, max downtime %d ms",
             j->ec2_id ? j->ec2_id : j->name, j->name, dest, j->uri, net,
             o->block_migration ? "block" : "shared storage", o->post_copy ? ", post-copy allowed" : "",
             o->auto_converge ? ", auto-converge" : "", a->cfg->libvirt.migrate_tls ? ", stream over TLS" : "", par,
             xbz, o->bandwidth_mib_s, o->max_downtime_ms);
    start_polling(j);
    events_migration_started(a, &j->lf, migration, uuid, dest);
    *out = j;
    return 0;
}

int job_abort(agent *a, job *j, char **err, rpc_code *code)
{
    (void)a;
    if (jobrule_may_abort(j->state == JOB_RUNNING, &j->rs) != RPC_OK) {
        *err = j->state != JOB_RUNNING
                   ? xasprintf("migration %lld is already %s", (long long)j->migration, job_state_str(j->state))
                   : xstrdup("cannot abort after the switch to post-copy: the guest already runs on the destination");
        *code = RPC_CONFLICT;
        return -1;
    }
    virConnectPtr conn = NULL;
    virDomainPtr dom = job_domain(j, &conn);
    if (!dom) {
        *err = xasprintf("cannot find domain %s: %s", j->uuid, lv_errmsg());
        *code = RPC_NOT_FOUND;
        return -1;
    }
    j->rs.abort_requested = 1;
    int rc = virDomainAbortJob(dom);
    if (rc < 0) {
        *err = xasprintf("could not abort the migration job: %s", lv_errmsg());
        *code = RPC_LIBVIRT;
    } else {
        log_info(&j->lf, "abort of the migration requested");
    }
    virDomainFree(dom);
    virConnectClose(conn);
    return rc < 0 ? -1 : 0;
}

int job_set_bandwidth(agent *a, job *j, int mib_s, char **err, rpc_code *code)
{
    (void)a;
    if (j->state != JOB_RUNNING) {
        *err = xasprintf("migration %lld is already %s", (long long)j->migration, job_state_str(j->state));
        *code = RPC_CONFLICT;
        return -1;
    }
    if (!j->verified && !j->adopted && !j->rs.postcopy_active) {
        /* libvirt applies the request's own cap as QEMU's job begins: a cap set before would be
         * overwritten (and the read-back would fail the migration); after the post-copy switch
         * the job has begun, verified or not */
        *err = xasprintf("migration %lld has not begun in QEMU yet: its settings are applied and verified first; "
                         "ask again",
                         (long long)j->migration);
        *code = RPC_UNAVAILABLE;
        return -1;
    }
    virConnectPtr conn = NULL;
    virDomainPtr dom = job_domain(j, &conn);
    if (!dom) {
        *err = xasprintf("cannot find domain %s: %s", j->uuid, lv_errmsg());
        *code = RPC_NOT_FOUND;
        return -1;
    }
    unsigned int flags = j->rs.postcopy_active ? VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY : 0;
    unsigned long now_bw = 0;
    int rc = virDomainMigrateSetMaxSpeed(dom, (unsigned long)mib_s, flags), got = 0;
    if (rc < 0) {
        *err = xasprintf("could not set the migration's bandwidth to %d MiB/s: %s", mib_s, lv_errmsg());
        *code = RPC_LIBVIRT;
    } else if ((got = virDomainMigrateGetMaxSpeed(dom, &now_bw, flags)) < 0 || now_bw != (unsigned long)mib_s) {
        /* read back, as at the job's start */
        *err = got == 0 ? xasprintf("the migration's bandwidth is %lu MiB/s in libvirt after setting it to %d MiB/s",
                                    now_bw, mib_s)
                        : xasprintf("could not read back the migration's bandwidth: %s", lv_errmsg());
        *code = RPC_LIBVIRT;
        rc = -1;
    } else {
        log_info(&j->lf, "bandwidth cap set from %d to %d MiB/s%s (read back from libvirt)", j->o.bandwidth_mib_s,
                 mib_s, j->rs.postcopy_active ? " (post-copy)" : "");
        j->o.bandwidth_mib_s = mib_s;
    }
    virDomainFree(dom);
    virConnectClose(conn);
    return rc < 0 ? -1 : 0;
}

int job_force_complete(agent *a, job *j, const char **action, char **err, rpc_code *code)
{
    (void)a;
    jobrule_finish how = jobrule_force_complete(&j->o, j->state == JOB_RUNNING, &j->rs);
    if (how == JOBRULE_FINISH_CONFLICT) {
        *err = xasprintf("migration %lld is already %s", (long long)j->migration, job_state_str(j->state));
        *code = RPC_CONFLICT;
        return -1;
    }
    virConnectPtr conn = NULL;
    virDomainPtr dom = job_domain(j, &conn);
    if (!dom) {
        *err = xasprintf("cannot find domain %s: %s", j->uuid, lv_errmsg());
        *code = RPC_NOT_FOUND;
        return -1;
    }
    int rc = 0;
    if (how == JOBRULE_FINISH_ALREADY_POSTCOPY) {
        *action = "postcopy";
    } else if (how == JOBRULE_FINISH_POSTCOPY) {
        switch_postcopy(j, dom, "force-complete");
        if (!j->rs.postcopy_active) {
            *err = xasprintf("could not switch to post-copy: %s", lv_errmsg());
            *code = RPC_LIBVIRT;
            rc = -1;
        }
        *action = "postcopy";
    } else {
        /* pre-copy only: pause the guest so the remaining memory can be sent */
        if (pause_to_finish(j, dom, "force-complete") < 0) {
            *err = xasprintf("could not pause the guest to finish the migration: %s", lv_errmsg());
            *code = RPC_LIBVIRT;
            rc = -1;
        }
        *action = "paused";
    }
    virDomainFree(dom);
    virConnectClose(conn);
    return rc;
}

int job_resume_postcopy(agent *a, job *j, const char **how, char **err, rpc_code *code)
{
    switch (jobrule_resume_of(j->state, j->resuming)) {
    case JOBRULE_RESUME_UNDER_WAY:
        *how = "under_way";
        return 0;
    case JOBRULE_RESUME_COMPLETED:
        *how = "completed";
        return 0;
    case JOBRULE_RESUME_NOT_PAUSED:
        *err = xasprintf("cannot resume migration %lld: its job is %s, not paused in post-copy",
                         (long long)j->migration, job_state_str(j->state));
        *code = RPC_NOT_PAUSED;
        return -1;
    case JOBRULE_RESUME_START:
        break;
    }
    if (!j->uri) {
        *err = xasprintf("cannot resume migration %lld: its record has no migration URI", (long long)j->migration);
        *code = RPC_INTERNAL;
        return -1;
    }
    const char *why = NULL;
    virConnectPtr conn = lv_ref(a->lv, &why);
    if (!conn) {
        *err = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        *code = RPC_UNAVAILABLE;
        return -1;
    }
    virConnectClose(conn);
    /* the same URI and options as the original call; the worker thread blocks, not the loop */
    j->state = JOB_RUNNING;
    j->resuming = 1;
    j->resumes++;
    j->adopted = 0;
    j->worker_done = 0;
    j->outcome = MIGRATE_FAILED;
    json_object_put(j->final_stats);
    j->final_stats = NULL;
    migrate_req req = {.uuid = j->uuid,
                       .uri = j->uri,
                       .o = &j->o,
                       .tls = a->cfg->libvirt.migrate_tls,
                       .data_address = j->data_address,
                       .tls_name = j->tls_name,
                       .resume = true,
                       .lf = &j->lf};
    int rc = migrate_start(a->lv, a->q, &req, on_worker_done, a, j->migration);
    if (rc != 0) {
        j->state = JOB_POSTCOPY_PAUSED;
        j->resuming = 0;
        *err = xasprintf("could not start the resume thread: %s", strerror(rc));
        *code = RPC_INTERNAL;
        return -1;
    }
    log_info(&j->lf, "resuming the paused post-copy migration to %s (attempt %d): uri %s", j->dest ? j->dest : "?",
             j->resumes, j->uri);
    persist(j);
    start_polling(j);
    *how = "started";
    return 0;
}

void job_on_iteration(agent *a, const char *uuid, int iteration)
{
    job *j = job_by_uuid(a, uuid);
    if (!j)
        return;
    if (iteration > j->rs.iteration)
        j->rs.iteration = iteration;
    log_debug(&j->lf, "memory iteration %d", iteration);
    virConnectPtr conn = NULL;
    virDomainPtr dom = job_domain(j, &conn);
    if (dom) {
        maybe_postcopy(j, dom);
        virDomainFree(dom);
        virConnectClose(conn);
    }
}

void job_on_completed(agent *a, const char *uuid, virTypedParameterPtr params, int n)
{
    job *j = job_by_uuid(a, uuid);
    if (!j)
        return;
    json_object_put(j->final_stats);
    j->final_stats = jobstats_json(params, n, VIR_DOMAIN_JOB_COMPLETED);
    if (j->worker_done && j->finish_ev && evtimer_pending(j->finish_ev, NULL)) {
        evtimer_del(j->finish_ev);
        finish_after_grace(-1, 0, j);
    } else if (j->adopted) {
        /* no worker of ours: the event is the end of the job */
        adopted_ended(j);
    }
}

/* ---- after a restart ----------------------------------------------------------------------- */

/* An adopted job's libvirt job is over: the domain's presence and state here tell how it
 * ended. A successful migration leaves the source domain running (paused at the switch-over)
 * for a moment after its job ends, before libvirt stops and undefines it: so "still here"
 * is only a failure once it has lasted a few seconds and no job-completed event came. */
#define ADOPTED_GRACE_MS 5000
static void adopted_ended(job *j)
{
    if (j->state != JOB_RUNNING)
        return;
    virConnectPtr conn = lv_ref(j->a->lv, NULL);
    if (!conn)
        return; /* ask again when libvirt is back */
    virDomainPtr dom = virDomainLookupByUUIDString(conn, j->uuid);
    if (!dom) {
        /* undefined from the source: that is what a successful migration does */
        finish(j, JOB_COMPLETED, NULL);
    } else {
        int st = 0, reason = 0;
        virDomainGetState(dom, &st, &reason, 0);
        int64_t now = mono_ms();
        if (!j->ended_ms)
            j->ended_ms = now;
        if ((st == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_MIGRATED) || j->final_stats) {
            finish(j, JOB_COMPLETED, NULL); /* stopped as migrated, or libvirt said job completed */
        } else if (now - j->ended_ms < ADOPTED_GRACE_MS) {
            /* not yet: the poller asks again */
        } else if (st == VIR_DOMAIN_PAUSED) {
            _cleanup_free_ char *e =
                xasprintf("the migration job ended while the agent was down and the guest is PAUSED here (reason %d): "
                          "it needs an operator",
                          reason);
            finish(j, JOB_FAILED, e);
        } else {
            finish(j, JOB_FAILED, "the migration job ended while the agent was down and the guest still runs here");
        }
        virDomainFree(dom);
    }
    virConnectClose(conn);
}

/* One job record of the state dir: adopted as a job unless one of that id exists. */
static int recover_one(void *arg, const sf_job *r)
{
    agent *a = arg;
    int64_t id = r->migration;
    job_state st = JOB_NONE;
    if (job_find(a, id) || !r->instance || job_state_from_str(r->state, &st) < 0 || st == JOB_NONE)
        return 0;
    job *j = job_new(a, id, r->instance);
    j->adopted = 1;
    j->name = xstrdup(r->name); /* xstrdup(NULL) is NULL */
    j->ec2_id = xstrdup(r->instance_id);
    j->dest = xstrdup(r->dest);
    j->uri = xstrdup(r->uri);
    /* a resume of a broken post-copy goes where the stream went (checked again: it goes into
     * the stream's URI) */
    char *bad = NULL;
    if (r->data_address && guard_data_address(r->data_address, strlen(r->data_address), &bad) == 0)
        j->data_address = xstrdup(r->data_address);
    free(bad);
    bad = NULL;
    if (r->tls_name && guard_address(r->tls_name, strlen(r->tls_name), &bad) == 0)
        j->tls_name = xstrdup(r->tls_name);
    free(bad);
    j->o.post_copy = r->post_copy;
    j->rs.postcopy_active = r->postcopy_active;
    j->error = xstrdup(r->error);
    j->final_stats = json_object_get(r->stats);
    job_set_fields(j);
    j->state = (job_state)st;
    if (j->state != JOB_RUNNING) {
        log_info(&j->lf, "recovered the record of migration %lld: %s", (long long)id, job_state_str(j->state));
        return 0;
    }
    /* it was running when the agent stopped: the poller asks libvirt (off this thread)
     * and the job ends here when libvirt says there is none */
    log_warn(&j->lf, "found migration %lld unfinished from before a restart: asking libvirt what became of it",
             (long long)id);
    start_polling(j);
    return 0;
}

void job_recover(agent *a)
{
    sf_job_each(a->cfg->agent.state_dir, recover_one, a);
}
