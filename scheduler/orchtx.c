/* orchtx: the orchestration's transactions, on the database worker (orchtx.h): a status
 * transition guarded by owner, epoch and expected status, and a migration's end with its
 * settling. */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "orchtx.h"

/* ---- transitions --------------------------------------------------------------------------- */

/* One transition with the database worker: what it needs, copied (the worker never reads o). */
typedef struct tr {
    sched *s;
    int64_t id;
    char id_s[24], epoch_s[24];
    int64_t epoch;
    int gen;
    mig_status from, to;
    char *message;
    char dl[24];
    orchtx_next_fn next;
    int won;
} tr;

static int transition_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    tr *t = arg;
    const char *p[] = {t->id_s, mig_status_str(t->to), mig_status_str(t->from), t->s->name, t->epoch_s, t->dl};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(
            db, &r,
            "UPDATE migrations SET status = $2, updated_at = now(), deadline_at = now() + make_interval(secs => $6::int)"
            " WHERE id = $1::bigint AND status = $3 AND owner = $4 AND epoch = $5::bigint RETURNING id",
            6, p) < 0)
        return -1;
    t->won = PQntuples(r) == 1;
    if (!t->won)
        return 0;
    return ledger_record(db, t->s->name, t->id, "scheduler", NULL, t->to, "status", t->message);
}

static int transition_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", transition_tx, arg, NULL, err);
}

/* On the loop, after the transition's transaction: next, when it was committed and o is still
 * this replica's, at the same epoch and on the same path (no failure began meanwhile); the
 * orchestration stops when it could not be committed. */
static void transition_done(void *arg, int rc, char *err)
{
    tr *t = arg;
    orch *o = orchcore_find(t->id);
    if (o && o->epoch != t->epoch)
        o = NULL; /* another object for the same migration: not ours */
    log_fields none = {.migration = t->id_s};
    if (rc < 0 || !t->won) {
        if (rc < 0)
            log_error(o ? &o->lf : &none, "could not record status %s: %s", mig_status_str(t->to), err);
        else
            log_warn(o ? &o->lf : &none, "migration %lld is no longer %s under this scheduler (epoch %lld): leaving it",
                     (long long)t->id, mig_status_str(t->from), (long long)t->epoch);
        if (o)
            orchcore_done(o);
    } else {
        log_info(o ? &o->lf : &none, "migration %lld: %s -> %s%s%s", (long long)t->id, mig_status_str(t->from),
                 mig_status_str(t->to), t->message ? ": " : "", t->message ? t->message : "");
        outbox_flush(t->s);
        if (o && !o->finishing && o->gen == t->gen && t->next && !t->s->stopping)
            t->next(o);
    }
    free(err);
    free(t->message);
    free(t);
}

void orchtx_transition(orch *o, mig_status to, const char *message, orchtx_next_fn next)
{
    if (o->status == to) {
        next(o);
        return;
    }
    tr *t = xcalloc(1, sizeof(*t));
    t->s = o->s;
    t->id = o->id;
    strlcpy_f(t->id_s, o->id_s, sizeof(t->id_s));
    strlcpy_f(t->epoch_s, o->epoch_s, sizeof(t->epoch_s));
    t->epoch = o->epoch;
    t->gen = o->gen;
    t->from = o->status;
    t->to = to;
    t->message = message ? xstrdup(message) : NULL;
    snprintf(t->dl, sizeof(t->dl), "%lld", (long long)ledger_deadline_s(o->s, to));
    t->next = next;
    o->status = to;
    dbq_submit(o->s->dbq, transition_work, transition_done, t);
}

/* The end of a migration with the database worker, copied from o. */
typedef struct fin {
    sched *s;
    int64_t id, epoch;
    char id_s[24], epoch_s[24], uuid[40], dest[256];
    mig_status from, status;
    char *error;
    char dt[24];         /* the downtime of a completed one, "" when unknown; has_stats: it had stats */
    char mt[24], mp[24]; /* its memory total and processed, "" when unknown */
    int has_stats;
    /* for the log */
    char ec2[40], source[256];
} fin;

/* The receipt of a migration that had objectives (issue #18), at its end: each objective with
 * the measured figure and whether it was met (only a completed migration meets any), the
 * plan and what was done on the way (its events of kind objective); kept on the migration (the completion event carries it) and recorded as its event of
 * kind receipt. Nothing for a migration without objectives. */
static int receipt_tx(db_conn *db, fin *f)
{
    const char *p[] = {f->id_s};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(
            db, &r,
            "WITH x AS (SELECT id, status, objective_max_downtime_ms AS od, objective_deadline_s AS odl, downtime_ms,"
            "  (extract(epoch FROM finished_at - started_at) * 1000)::bigint AS took_ms, objective_plan"
            "  FROM migrations WHERE id = $1::bigint AND (objective_max_downtime_ms IS NOT NULL"
            "  OR objective_deadline_s IS NOT NULL)),"
            /* a completed migration whose downtime is not known yet (the source's figures come
             * later, orchevent.c completes the receipt then): met unknown, not missed */
            " y AS (SELECT x.*, CASE WHEN status = 'completed' AND downtime_ms IS NULL THEN NULL"
            "  ELSE status = 'completed' AND downtime_ms IS NOT NULL AND downtime_ms <= od END AS od_met,"
            "  status = 'completed' AND took_ms <= odl::bigint * 1000 AS odl_met FROM x),"
            " u AS (UPDATE migrations m SET receipt = json_strip_nulls(json_build_object("
            "   'max_downtime_ms', ferry_receipt_downtime(y.od, y.downtime_ms, y.status),"
            "   'deadline_s', CASE WHEN y.odl IS NOT NULL THEN json_build_object('objective', y.odl,"
            "     'measured_ms', y.took_ms, 'met', y.odl_met) END,"
            "   'status', y.status, 'plan', y.objective_plan, 'actions', (SELECT json_agg(e.message ORDER BY e.id)"
            "    FROM migration_events e WHERE e.migration_id = y.id AND e.kind = 'objective')))"
            "  FROM y WHERE m.id = y.id RETURNING m.id)"
            " SELECT concat_ws('; ',"
            "  CASE WHEN od IS NOT NULL THEN format('max downtime %s ms %s (paused %s)', od,"
            "   CASE WHEN od_met IS NULL THEN 'not known yet' WHEN od_met THEN 'met' ELSE 'missed' END,"
            "   coalesce(downtime_ms || ' ms', 'unknown')) END,"
            "  CASE WHEN odl IS NOT NULL THEN format('deadline %s s %s (took %s s)', odl,"
            "   CASE WHEN odl_met THEN 'met' ELSE 'missed' END, round(took_ms / 1000.0, 1)) END,"
            "  CASE WHEN status <> 'completed' THEN 'the migration ' || status END,"
            "  'plan: ' || coalesce(objective_plan, 'none'),"
            "  (SELECT 'then: ' || string_agg(e.message, '; ' ORDER BY e.id) FROM migration_events e"
            "   WHERE e.migration_id = y.id AND e.kind = 'objective')) FROM y, u",
            1, p) < 0)
        return -1;
    if (PQntuples(r) != 1)
        return 0;
    _cleanup_free_ char *msg = xasprintf("receipt: %s", PQgetvalue(r, 0, 0));
    return ledger_record(db, f->s->name, f->id, "scheduler", NULL, LEDGER_NO_STATUS, "receipt", msg);
}

static int finish_tx(db_conn *db, void *arg, char **err)
{
    fin *f = arg;
    const char *p[] = {f->id_s, mig_status_str(f->status), f->error, f->s->name, mig_status_str(f->from), f->epoch_s};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(
            db, &r,
            "UPDATE migrations SET status = $2, error = $3, finished_at = now(), updated_at = now(), lease_expires_at = NULL,"
            " deadline_at = NULL WHERE id = $1::bigint AND owner = $4 AND status = $5 AND epoch = $6::bigint RETURNING id",
            6, p) < 0)
        return -1;
    if (PQntuples(r) != 1) {
        *err = xasprintf("migration %lld is no longer %s under this scheduler (epoch %lld)", (long long)f->id,
                         mig_status_str(f->from), (long long)f->epoch);
        return -1;
    }
    if (ledger_settle(db, f->status, f->id_s, f->uuid, f->dest) < 0)
        return -1;
    if (f->status == MIG_COMPLETED && f->has_stats) {
        const char *sp[] = {f->id_s, *f->dt ? f->dt : NULL, *f->mt ? f->mt : NULL, *f->mp ? f->mp : NULL};
        if (db_exec(db, NULL,
                    "UPDATE migrations SET downtime_ms = coalesce($2::int, downtime_ms), memory_remaining_bytes = 0,"
                    " memory_total_bytes = coalesce($3::bigint, memory_total_bytes),"
                    " memory_processed_bytes = coalesce($4::bigint, memory_processed_bytes) WHERE id = $1::bigint",
                    4, sp) < 0)
            return -1;
    }
    if (mig_status_is_final(f->status)) {
        const char *rp[] = {f->id_s};
        if (db_exec(db, NULL, "UPDATE migrations SET recovering_since = NULL WHERE id = $1::bigint", 1, rp) < 0)
            return -1;
        if (receipt_tx(db, f) < 0)
            return -1;
    }
    return ledger_record(db, f->s->name, f->id, "scheduler", NULL, f->status, "status", f->error);
}

static int finish_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", finish_tx, arg, NULL, err);
}

/* On the loop, after the end's transaction: logged, o let go (found again by id), and a slot
 * of the limits freed. */
static void finish_done(void *arg, int rc, char *err)
{
    fin *f = arg;
    orch *o = orchcore_find(f->id);
    if (o && o->epoch != f->epoch)
        o = NULL;
    log_fields lf = {.migration = f->id_s, .instance = f->ec2};
    if (rc < 0) {
        log_error(&lf, "could not record the end of migration %lld (%s): %s", (long long)f->id,
                  mig_status_str(f->status), err);
    } else {
        if (f->status == MIG_COMPLETED)
            log_info(&lf, "migration %lld of %s from %s to %s completed", (long long)f->id, f->ec2, f->source, f->dest);
        else
            log_warn(&lf, "migration %lld of %s from %s to %s %s: %s", (long long)f->id, f->ec2, f->source, f->dest,
                     mig_status_str(f->status), f->error ? f->error : "");
        outbox_flush(f->s);
    }
    if (o)
        orchcore_done(o);
    /* a slot is free: a queued migration may start (queue.c's dispatch, on the next loop turn,
     * through the event main.c made for it) */
    if (rc == 0)
        event_active(f->s->dispatch, EV_TIMEOUT, 1);
    free(err);
    free(f->error);
    free(f);
}

void orchtx_finish(orch *o, mig_status status, const char *error, const orchreply_stats *stats)
{
    if (o->finishing)
        return;
    o->finishing = 1;
    event_del(o->poll_ev);
    fin *f = xcalloc(1, sizeof(*f));
    f->s = o->s;
    f->id = o->id;
    f->epoch = o->epoch;
    strlcpy_f(f->id_s, o->id_s, sizeof(f->id_s));
    strlcpy_f(f->epoch_s, o->epoch_s, sizeof(f->epoch_s));
    strlcpy_f(f->uuid, o->uuid, sizeof(f->uuid));
    strlcpy_f(f->dest, o->dest, sizeof(f->dest));
    strlcpy_f(f->ec2, o->ec2, sizeof(f->ec2));
    strlcpy_f(f->source, o->source, sizeof(f->source));
    f->from = o->status;
    f->status = status;
    f->error = error ? xstrdup(error) : NULL;
    if (stats) {
        f->has_stats = 1;
        if (stats->downtime_ms >= 0)
            snprintf(f->dt, sizeof(f->dt), "%lld", (long long)stats->downtime_ms);
        if (stats->memory_total >= 0)
            snprintf(f->mt, sizeof(f->mt), "%lld", (long long)stats->memory_total);
        if (stats->memory_processed >= 0)
            snprintf(f->mp, sizeof(f->mp), "%lld", (long long)stats->memory_processed);
    }
    dbq_submit(o->s->dbq, finish_work, finish_done, f);
}

/* ---- the post-copy recovery sub-state ------------------------------------------------------- */

/* The recovering mark with the database worker, copied from o. */
typedef struct recov {
    sched *s;
    int64_t id;
    char id_s[24], epoch_s[24];
    int on;
    char *message;
} recov;

static int recov_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    recov *r = arg;
    const char *p[] = {r->id_s, r->on ? "t" : "f", r->s->name, r->epoch_s};
    if (db_exec(db, NULL,
                "UPDATE migrations SET recovering_since = CASE WHEN $2::boolean THEN coalesce(recovering_since, now())"
                " ELSE NULL END, updated_at = now()"
                " WHERE id = $1::bigint AND owner = $3 AND epoch = $4::bigint AND status = 'running'",
                4, p) < 0)
        return -1;
    return ledger_record(db, r->s->name, r->id, "scheduler", NULL, LEDGER_NO_STATUS, r->on ? "recovering" : "recovered",
                         r->message);
}

static int recov_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", recov_tx, arg, NULL, err);
}

static void recov_done(void *arg, int rc, char *err)
{
    recov *r = arg;
    if (rc < 0) {
        log_fields lf = {.migration = r->id_s};
        log_error(&lf, "could not record migration %lld as %s: %s", (long long)r->id,
                  r->on ? "recovering" : "recovered", err);
    } else {
        log_fields lf = {.migration = r->id_s};
        orch *o = orchcore_find(r->id);
        log_info(o ? &o->lf : &lf, "migration %lld: %s", (long long)r->id, r->message);
        outbox_flush(r->s);
    }
    free(err);
    free(r->message);
    free(r);
}

typedef struct bwrec {
    sched *s;
    int64_t id;
    char id_s[24], epoch_s[24], mib_s[16];
    char *message;
} bwrec;

static int bwrec_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    bwrec *r = arg;
    const char *p[] = {r->id_s, r->s->name, r->epoch_s, r->mib_s};
    _cleanup_pq_ PGresult *u = NULL;
    if (db_exec(db, &u,
                "UPDATE migrations SET bandwidth_mib_s = $4::int, updated_at = now()"
                " WHERE id = $1::bigint AND owner = $2 AND epoch = $3::bigint RETURNING id",
                4, p) < 0)
        return -1;
    if (PQntuples(u) != 1)
        return 0; /* no longer this replica's: the new owner applies the target again */
    return ledger_record(db, r->s->name, r->id, "scheduler", NULL, LEDGER_NO_STATUS, "bandwidth", r->message);
}

static int bwrec_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", bwrec_tx, arg, NULL, err);
}

static void bwrec_done(void *arg, int rc, char *err)
{
    bwrec *r = arg;
    if (rc < 0) {
        log_fields lf = {.migration = r->id_s};
        log_warn(&lf, "could not record the bandwidth cap of migration %lld: %s", (long long)r->id, err);
    }
    free(err);
    free(r->message);
    free(r);
}

void orchtx_bandwidth(orch *o, int mib_s, const char *message)
{
    bwrec *r = xcalloc(1, sizeof(*r));
    r->s = o->s;
    r->id = o->id;
    strlcpy_f(r->id_s, o->id_s, sizeof(r->id_s));
    strlcpy_f(r->epoch_s, o->epoch_s, sizeof(r->epoch_s));
    snprintf(r->mib_s, sizeof(r->mib_s), "%d", mib_s);
    r->message = xstrdup(message);
    dbq_submit(o->s->dbq, bwrec_work, bwrec_done, r);
}

void orchtx_recovering(orch *o, int on, const char *message)
{
    recov *r = xcalloc(1, sizeof(*r));
    r->s = o->s;
    r->id = o->id;
    strlcpy_f(r->id_s, o->id_s, sizeof(r->id_s));
    strlcpy_f(r->epoch_s, o->epoch_s, sizeof(r->epoch_s));
    r->on = on;
    r->message = xstrdup(message);
    dbq_submit(o->s->dbq, recov_work, recov_done, r);
}

/* ---- the forecast taken before the migration moves (issue #18) --------------------------------- */

typedef struct fcrec {
    sched *s;
    int64_t id;
    char id_s[24], epoch_s[24];
    forecast_mode mode;
    forecast_in in;    /* the inputs; its fixed costs replaced by the learned ones when there are */
    cfg_scheduler cfg; /* a copy, for the learned fixed costs */
    int64_t dirty_mib_s, nonzero_mib, bw_mib_s;
    int sampled;       /* the sample was this migration's (its time is a fixed cost) */
    char *sample_note; /* else: whose sample it is, for the event (or NULL) */
    char *message;     /* what was recorded (the log line) */
} fcrec;

static int fcrec_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    fcrec *r = arg;
    /* the fixed costs of earlier migrations, as the forecast verb takes them */
    cfg_scheduler cs = r->cfg;
    int64_t fixed_ms = 0;
    int learned = forecastop_learn_fixed(db, &cs, &fixed_ms);
    if (learned < 0)
        return -1;
    forecast_in in = r->in;
    /* learned: the sample's wait is part of what was measured; configured: counted only when
     * this migration waited for a sample of its own */
    in.setup_ms = (uint64_t)(cs.forecast_setup_ms + (learned || r->sampled ? cs.forecast_sample_s * 1000 : 0));
    forecast_out f;
    forecast_run(&in, r->mode, &f);
    char conv[2], dur[24], down[24], bytes[24], dirty[24], bw[24], nz[24];
    snprintf(conv, sizeof(conv), "%s", f.converges ? "t" : "f");
    snprintf(dur, sizeof(dur), "%llu", (unsigned long long)f.duration_ms);
    snprintf(down, sizeof(down), "%llu", (unsigned long long)f.downtime_ms);
    snprintf(bytes, sizeof(bytes), "%lld", f.bytes > INT64_MAX ? (long long)INT64_MAX : (long long)f.bytes);
    snprintf(dirty, sizeof(dirty), "%lld", (long long)r->dirty_mib_s);
    snprintf(bw, sizeof(bw), "%lld", (long long)r->bw_mib_s);
    snprintf(nz, sizeof(nz), "%lld", (long long)r->nonzero_mib);
    const char *mode = forecast_mode_str(r->mode);
    free(r->message);
    _cleanup_free_ char *fixed =
        xasprintf("fixed costs %.1f s%s%s%s", (double)(in.setup_ms + in.switch_ms) / 1000.0, learned ? " learned" : "",
                  r->sample_note ? "; " : "", r->sample_note ? r->sample_note : "");
    if (f.converges)
        r->message =
            xasprintf("forecast: %s in %.1f s with a %llu ms pause, %llu MiB sent (dirty rate %lld MiB/s, "
                      "link %lld MiB/s, %s)",
                      mode, (double)f.duration_ms / 1000.0, (unsigned long long)f.downtime_ms,
                      (unsigned long long)(f.bytes >> 20), (long long)r->dirty_mib_s, (long long)r->bw_mib_s, fixed);
    else
        r->message = xasprintf("forecast: %s does not converge (dirty rate %lld MiB/s, link %lld MiB/s%s%s): it ends "
                               "only by its completion timeout, a force-complete or an abort",
                               mode, (long long)r->dirty_mib_s, (long long)r->bw_mib_s, r->sample_note ? "; " : "",
                               r->sample_note ? r->sample_note : "");
    const char *p[] = {
        r->id_s, r->s->name, r->epoch_s, mode, conv, dur, down, bytes, dirty, bw, r->nonzero_mib > 0 ? nz : NULL};
    if (db_exec(db, NULL,
                "UPDATE migrations SET forecast_mode = $4, forecast_converges = $5::boolean,"
                " forecast_duration_ms = $6::bigint, forecast_downtime_ms = $7::bigint, forecast_bytes = $8::bigint,"
                " forecast_dirty_mib_s = $9::bigint, forecast_bandwidth_mib_s = $10::bigint,"
                " forecast_nonzero_mib = $11::bigint, updated_at = now()"
                " WHERE id = $1::bigint AND owner = $2 AND epoch = $3::bigint",
                11, p) < 0)
        return -1;
    return ledger_record(db, r->s->name, r->id, "scheduler", NULL, LEDGER_NO_STATUS, "forecast", r->message);
}

static int fcrec_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", fcrec_tx, arg, NULL, err);
}

static void fcrec_done(void *arg, int rc, char *err)
{
    fcrec *r = arg;
    if (rc < 0) {
        log_fields lf = {.migration = r->id_s};
        log_warn(&lf, "could not record the forecast of migration %lld: %s", (long long)r->id, err);
    } else {
        log_fields lf = {.migration = r->id_s};
        orch *o = orchcore_find(r->id);
        log_info(o ? &o->lf : &lf, "migration %lld: %s", (long long)r->id, r->message);
        outbox_flush(r->s);
    }
    free(err);
    free(r->message);
    free(r->sample_note);
    free(r);
}

void orchtx_forecast(orch *o, forecast_mode mode, const forecast_in *in, int64_t dirty_mib_s, int64_t nonzero_mib,
                     int64_t bandwidth_mib_s, int sampled, const char *sample_note)
{
    fcrec *r = xcalloc(1, sizeof(*r));
    r->s = o->s;
    r->id = o->id;
    strlcpy_f(r->id_s, o->id_s, sizeof(r->id_s));
    strlcpy_f(r->epoch_s, o->epoch_s, sizeof(r->epoch_s));
    r->mode = mode;
    r->in = *in;
    r->cfg = o->s->cfg->scheduler;
    r->dirty_mib_s = dirty_mib_s;
    r->nonzero_mib = nonzero_mib;
    r->bw_mib_s = bandwidth_mib_s;
    r->sampled = sampled;
    r->sample_note = sample_note ? xstrdup(sample_note) : NULL;
    dbq_submit(o->s->dbq, fcrec_work, fcrec_done, r);
}
