/* orchevent: what the agents report about a migration (orch_on_agent_event, sched.h): progress,
 * the post-copy switch and the end of the source's job, read by orchreply_event_read (an event
 * it refuses changes nothing), recorded by the database worker by whichever replica gets the
 * event; the owner, if it is this one, polls the source at once when its job ended. */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "orchcall.h"
#include "orchcore.h"
#include "orchreply.h"

/* ---- what the agents report --------------------------------------------------------------- */

/* What an agent's event asks of the database, with the worker (strings copied). */
typedef enum ev_op { EV_PROGRESS, EV_POSTCOPY, EV_ENDED, EV_NOTE, EV_VERIFIED } ev_op;

typedef struct agent_ev {
    sched *s; /* the worker reads only name (fixed) through it */
    ev_op op;
    int64_t id;
    char ids[24];
    char *host, *what, *message;
    char a[24], b[24], c[24], d[24], e[24]; /* the statement's numbers ("" = NULL) */
    char x[6][24];                          /* EV_PROGRESS: disk, dirty rate, rate, throttle */
    int figures;                            /* EV_ENDED: final figures to store */
    char *fail_what;                        /* for the log: what could not be done */
} agent_ev;

static const char *nz(const char *v)
{
    return *v ? v : NULL;
}

static int agent_ev_work(db_conn *db, void *arg, char **err)
{
    agent_ev *j = arg;
    if (j->op == EV_PROGRESS) {
        const char *p[] = {j->ids,  j->a,    j->b,    j->c,        j->d,        j->e,
                           j->x[0], j->x[1], j->x[2], nz(j->x[3]), nz(j->x[4]), nz(j->x[5])};
        /* stored at most every progress_interval_ms (throttled in the row itself, whichever
         * replica gets the event) */
        if (db_exec(db, NULL,
                    "UPDATE migrations SET memory_total_bytes = $2::bigint, memory_processed_bytes = $3::bigint,"
                    " memory_remaining_bytes = $4::bigint, iteration = $5::int, disk_total_bytes = $7::bigint,"
                    " disk_processed_bytes = $8::bigint, disk_remaining_bytes = $9::bigint,"
                    " dirty_rate_bytes_s = $10::bigint, transfer_bytes_s = $11::bigint, cpu_throttle_pct = $12::int,"
                    " updated_at = now()"
                    " WHERE id = $1::bigint AND status = 'running'"
                    " AND updated_at < now() - make_interval(secs => $6::int / 1000.0)",
                    12, p) < 0)
            goto fail;
        return 0;
    }
    if (j->op == EV_POSTCOPY) {
        const char *p[] = {j->ids};
        if (db_exec(db, NULL, "UPDATE migrations SET postcopy_active = true WHERE id = $1::bigint", 1, p) < 0 ||
            ledger_record(db, j->s->name, j->id, "source", j->host, MIG_RUNNING, "postcopy", "switched to post-copy") <
                0)
            goto fail;
        return 0;
    }
    if (j->op == EV_VERIFIED) {
        /* kept with the migration only from its source (the sender, checked by hoststate) */
        const char *p[] = {j->ids, j->message, j->host};
        if (db_exec(db, NULL, "UPDATE migrations SET settings_verified = $2 WHERE id = $1::bigint AND source_host = $3",
                    3, p) < 0)
            goto fail;
    }
    if (ledger_record(db, j->s->name, j->id, "source", j->host, LEDGER_NO_STATUS, j->what, j->message) < 0) {
        *err = xstrdup(db_error(db));
        j->fail_what = xstrdup("record the agent's event");
        /* the figures are still stored */
    }
    if (j->figures) {
        const char *rp[] = {j->ids};
        const char *p[] = {j->ids, nz(j->a), nz(j->b), nz(j->c), nz(j->d), nz(j->x[0]), nz(j->x[1])};
        if (db_exec(db, NULL,
                    "UPDATE migrations SET downtime_ms = coalesce($2::int, downtime_ms),"
                    " memory_processed_bytes = coalesce($3::bigint, memory_processed_bytes),"
                    " memory_total_bytes = coalesce($4::bigint, memory_total_bytes),"
                    " iteration = greatest(iteration, coalesce($5::int, 0)), memory_remaining_bytes = 0,"
                    " disk_total_bytes = coalesce($6::bigint, disk_total_bytes),"
                    " disk_processed_bytes = coalesce($7::bigint, disk_processed_bytes), disk_remaining_bytes = 0"
                    " WHERE id = $1::bigint",
                    7, p) < 0) {
            if (*err) { /* the first failure is logged here, this one in the continuation */
                log_fields f = {.migration = j->ids, .host = j->host};
                log_warn(&f, "could not %s: %s", j->fail_what, *err);
                free(*err);
                free(j->fail_what);
            }
            *err = xstrdup(db_error(db));
            j->fail_what = xstrdup("store the final figures");
        }
        /* a receipt written at the end before these figures came gets its downtime now */
        _cleanup_pq_ PGresult *rr = NULL;
        int completed = 0;
        if (db_exec(db, &rr,
                    "UPDATE migrations SET receipt = jsonb_set(receipt::jsonb, '{max_downtime_ms}',"
                    " ferry_receipt_downtime(objective_max_downtime_ms, downtime_ms, status)::jsonb)::json"
                    " WHERE id = $1::bigint AND receipt IS NOT NULL AND objective_max_downtime_ms IS NOT NULL"
                    " AND downtime_ms IS NOT NULL AND receipt->'max_downtime_ms'->'measured_ms' IS NULL"
                    " RETURNING format('receipt: max downtime %s ms %s (paused %s ms; the figure came after the end)',"
                    "  objective_max_downtime_ms, CASE WHEN status = 'completed' AND downtime_ms <="
                    "  objective_max_downtime_ms THEN 'met' ELSE 'missed' END, downtime_ms)",
                    1, rp) == 0 &&
            PQntuples(rr) == 1)
            completed = ledger_record(db, j->s->name, j->id, "scheduler", NULL, LEDGER_NO_STATUS, "receipt",
                                      PQgetvalue(rr, 0, 0)) == 0;
        if (!completed && rr && PQntuples(rr) == 1) {
            log_fields f = {.migration = j->ids};
            log_warn(&f, "could not record the completed receipt of migration %s: %s", j->ids, db_error(db));
        }
    }
    return *err ? -1 : 0;
fail:
    *err = xstrdup(db_error(db));
    j->fail_what = xstrdup(j->op == EV_PROGRESS   ? "store progress"
                           : j->op == EV_VERIFIED ? "store the verified settings"
                                                  : "record the post-copy switch");
    return -1;
}

/* On the loop: a failure logged; after the source said its job ended, the owner (if this
 * replica, found again by id) asks it now rather than at the next poll. */
static void agent_ev_done(void *arg, int rc, char *err)
{
    agent_ev *j = arg;
    orch *o = orchcore_find(j->id);
    if (rc < 0) {
        log_fields f = {.migration = j->ids, .host = j->host};
        log_warn(o ? &o->lf : &f, "could not %s: %s", j->fail_what ? j->fail_what : "record the agent's event", err);
    }
    if (j->op == EV_ENDED && o && !o->finishing && o->status == MIG_RUNNING && !j->s->stopping)
        event_active(o->poll_ev, EV_TIMEOUT, 1); /* orch.c's poll, on this loop pass */
    free(err);
    free(j->host);
    free(j->what);
    free(j->message);
    free(j->fail_what);
    free(j);
}

/* A figure for the statement: v, or dflt when absent (-1). */
static void figure(char *buf, size_t n, int64_t v, const char *dflt)
{
    if (v < 0)
        strlcpy_f(buf, dflt, n);
    else
        snprintf(buf, n, "%lld", (long long)v);
}

/* ---- the deadline objective watched (issue #18) ------------------------------------------------ */

static void deadline_switched(orch *o, const orchreply *r)
{
    _cleanup_free_ char *msg = xasprintf(
        "deadline objective: the source %s",
        r->fc_action == ORCHREPLY_FC_POSTCOPY ? "switched to post-copy" : "paused the guest so that pre-copy finishes");
    log_info(&o->lf, "migration %lld: %s", (long long)o->id, msg);
    ledger_record_later(o->s, &o->lf, o->id, "scheduler", NULL, o->status, "objective", msg, "record it");
}

/* A running pre-copy with a deadline objective and post-copy allowed: when its progress says it
 * would end after the deadline, the source switches to post-copy (force_complete), once. */
static void watch_deadline(orch *o, const orchreply_stats *st)
{
    if (o->obj_deadline_s <= 0 || !o->post_copy || o->postcopy || o->fc_sent || o->finishing || o->fail_reason ||
        o->status != MIG_RUNNING || st->memory_bps < 0 || st->memory_remaining < 0 || st->iteration < 0)
        return;
    int64_t elapsed = mono_ms() - o->started_mono_ms, left = 0;
    /* libvirt gives the dirty rate in pages; QEMU's target pages are 4 KiB */
    int64_t dirty = st->dirty_pages_s > 0 ? st->dirty_pages_s * 4096 : 0;
    if (!orchcore_deadline_at_risk(elapsed, (int64_t)o->obj_deadline_s * 1000, st->memory_remaining, st->memory_bps,
                                   dirty, st->iteration, &left))
        return;
    o->fc_sent = 1;
    _cleanup_free_ char *msg =
        left < 0 ? xasprintf("deadline objective of %d s at risk after %.1f s: pass %lld dirties as fast as it sends "
                             "(%lld MiB/s): switching to post-copy",
                             o->obj_deadline_s, (double)elapsed / 1000.0, (long long)st->iteration,
                             (long long)(st->memory_bps >> 20))
                 : xasprintf("deadline objective of %d s at risk after %.1f s: pre-copy needs ~%.1f s more "
                             "(%lld MiB left at %lld MiB/s, dirtied at %lld MiB/s): switching to post-copy",
                             o->obj_deadline_s, (double)elapsed / 1000.0, (double)left / 1000.0,
                             (long long)(st->memory_remaining >> 20), (long long)(st->memory_bps >> 20),
                             (long long)(dirty >> 20));
    log_warn(&o->lf, "migration %lld: %s", (long long)o->id, msg);
    ledger_record_later(o->s, &o->lf, o->id, "scheduler", NULL, o->status, "objective", msg, "record it");
    orchcall_soft(o, o->source, ORCHREPLY_FORCE_COMPLETE, json_object_new_object(), deadline_switched);
}

int orch_on_agent_event(sched *s, int64_t id, const char *what, json_object *body, char **why)
{
    /* any replica records what an agent says (each event reaches one of them); the owner, if it
     * is this one, acts on it */
    orchreply_event ev;
    if (orchreply_event_read(what, body, &ev, why) < 0)
        return -1;
    if (ev.kind == ORCHREPLY_EV_OTHER)
        return 0;
    agent_ev *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->id = id;
    snprintf(j->ids, sizeof(j->ids), "%lld", (long long)id);
    j->host = ev.host ? xstrdup(ev.host) : NULL;
    j->what = xstrdup(what);
    const orchreply_stats *st = &ev.stats;
    if (ev.kind == ORCHREPLY_EV_PROGRESS) {
        j->op = EV_PROGRESS;
        /* a figure the progress does not give is stored as 0 */
        figure(j->a, sizeof(j->a), st->memory_total, "0");
        figure(j->b, sizeof(j->b), st->memory_processed, "0");
        figure(j->c, sizeof(j->c), st->memory_remaining, "0");
        figure(j->d, sizeof(j->d), st->iteration, "0");
        snprintf(j->e, sizeof(j->e), "%lld", (long long)s->cfg->scheduler.progress_interval_ms);
        figure(j->x[0], sizeof(j->x[0]), st->disk_total, "0");
        figure(j->x[1], sizeof(j->x[1]), st->disk_processed, "0");
        figure(j->x[2], sizeof(j->x[2]), st->disk_remaining, "0");
        /* libvirt gives the dirty rate in pages; QEMU's target pages are 4 KiB */
        figure(j->x[3], sizeof(j->x[3]), st->dirty_pages_s >= 0 ? st->dirty_pages_s * 4096 : -1, "");
        figure(j->x[4], sizeof(j->x[4]), st->memory_bps, "");
        figure(j->x[5], sizeof(j->x[5]), st->throttle_pct, "");
        /* only the source's own progress (the sender, set by hoststate) may move it to post-copy */
        orch *o = orchcore_find(id);
        if (o && o->epoch > 0 && ev.host && strcmp(ev.host, o->source) == 0)
            watch_deadline(o, st);
    } else if (ev.kind == ORCHREPLY_EV_POSTCOPY) {
        j->op = EV_POSTCOPY;
        orch *o = orchcore_find(id);
        if (o)
            o->postcopy = 1;
        log_fields f = {.migration = j->ids, .host = j->host};
        log_info(o ? &o->lf : &f, "migration %lld switched to post-copy", (long long)id);
    } else if (ev.kind == ORCHREPLY_EV_NOTE || ev.kind == ORCHREPLY_EV_VERIFIED) {
        /* recorded as the source said it (the sender is one of the migration's hosts) */
        j->op = ev.kind == ORCHREPLY_EV_VERIFIED ? EV_VERIFIED : EV_NOTE;
        j->message = xstrdup(ev.error ? ev.error : what);
        orch *o = orchcore_find(id);
        log_fields f = {.migration = j->ids, .host = j->host};
        log_info(o ? &o->lf : &f, "migration %lld: %s says: %s", (long long)id, j->host ? j->host : "its host",
                 j->message);
    } else {
        j->op = EV_ENDED;
        j->message = ev.error ? xstrdup(ev.error) : xstrdup(what);
        if (ev.ended == JOB_COMPLETED && ev.has_stats) {
            /* the final figures of the source's job; one it does not give keeps the row's */
            j->figures = 1;
            figure(j->a, sizeof(j->a), st->downtime_ms, "");
            figure(j->b, sizeof(j->b), st->memory_processed, "");
            figure(j->c, sizeof(j->c), st->memory_total, "");
            figure(j->d, sizeof(j->d), st->iteration, "");
            figure(j->x[0], sizeof(j->x[0]), st->disk_total, "");
            figure(j->x[1], sizeof(j->x[1]), st->disk_processed, "");
        }
    }
    orchreply_event_clear(&ev);
    dbq_submit(s->dbq, agent_ev_work, agent_ev_done, j);
    return 0;
}
