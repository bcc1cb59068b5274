/* drain: the drainer (see drain.h). One pass: when a drain is active, the lease of DRAIN_JOB is
 * taken or renewed; its holder then steps each active drain in a transaction of its own that
 * checks the lease first (a replica that lost it changes nothing): requests answered become
 * migrating (or, refused, pending again once, then failed); migrations ended make their guest
 * moved (or pending again once, then failed; cancelled in a cancelled drain); guests that left
 * or stopped are skipped; a cancelled drain's migrations that started late are asked to abort;
 * a running drain re-plans what is pending (drainplan.c) and requests the next guests into its
 * free slots; a drain with nothing left ends with its receipt. The requests are published after
 * the commit, on the loop; one lost to a crash is published again, under the same id, by
 * whichever replica holds the lease next. */
#include <stdlib.h>
#include <string.h>

#include "drain.h"
#include "lease.h"

/* How often the drainer runs (ms): every tick while a drain is active (a slot freed is filled
 * within a second), else a look every few seconds for one started elsewhere; and how long a
 * published request may go unanswered before it is published again (s). */
#define DRAIN_PASS_MS 900
#define DRAIN_IDLE_MS 5000
#define DRAIN_REPUBLISH_S "20"

typedef struct dr_pub {
    char id[37];
    char *text;
    char *ec2;
    int64_t drain;
} dr_pub;

typedef struct dr_pass {
    sched *s;
    cfg_scheduler cfg;
    char *name;
    int64_t lease_s, epoch;
    int64_t drain; /* the drain being stepped */
    dr_pub *pubs;  /* requests to publish after the commits */
    size_t n_pubs, cap_pubs;
    int64_t *pokes; /* migrations asked to abort */
    size_t n_pokes, cap_pokes;
    size_t pubs_mark, pokes_mark; /* where the drain being stepped began its own */
    int active;                   /* some drain is running or cancelling */
} dr_pass;

/* Drops what the drain being stepped decided to publish and poke (its transaction did not commit,
 * or is tried again). */
static void drop_own(dr_pass *p)
{
    for (size_t k = p->pubs_mark; k < p->n_pubs; k++) {
        free(p->pubs[k].text);
        free(p->pubs[k].ec2);
    }
    p->n_pubs = p->pubs_mark;
    p->n_pokes = p->pokes_mark;
}

int drain_abort_migrations(db_conn *db, const char *drain_id, PGresult **out)
{
    const char *p[] = {drain_id};
    return db_exec(db, out,
                   "UPDATE migrations m SET abort_requested = true, updated_at = now() FROM drain_items i"
                   " WHERE i.drain_id = $1::bigint AND i.state = 'migrating' AND m.id = i.migration_id"
                   " AND NOT m.abort_requested AND m.status NOT IN ('completed', 'failed', 'cancelled', 'error')"
                   " RETURNING m.id",
                   1, p);
}

int drain_max_parallel(const cfg_scheduler *cs)
{
    return cs->max_outgoing_per_source > 0 && cs->max_outgoing_per_source < 64 ? (int)cs->max_outgoing_per_source : 4;
}

static void add_pub(dr_pass *p, const char *id, char *text, const char *ec2)
{
    if (p->n_pubs == p->cap_pubs) {
        p->cap_pubs = p->cap_pubs ? p->cap_pubs * 2 : 8;
        p->pubs = xrealloc(p->pubs, p->cap_pubs * sizeof(*p->pubs));
    }
    dr_pub *u = &p->pubs[p->n_pubs++];
    memset(u, 0, sizeof(*u));
    strlcpy_f(u->id, id, sizeof(u->id));
    u->text = text;
    u->ec2 = xstrdup(ec2);
    u->drain = p->drain;
}

static void add_poke(dr_pass *p, int64_t mig)
{
    if (p->n_pokes == p->cap_pokes) {
        p->cap_pokes = p->cap_pokes ? p->cap_pokes * 2 : 8;
        p->pokes = xrealloc(p->pokes, p->cap_pokes * sizeof(*p->pokes));
    }
    p->pokes[p->n_pokes++] = mig;
}

/* The migration request of one guest: the drain's share of the bandwidth when it has a budget,
 * the plan's mode, and (first attempt, with a deadline) the time left as its deadline objective,
 * post-copy allowed for it so that the objective's watch may switch (orchevent.c). */
static char *build_request(const char *id, const char *uuid, const char *mode, int attempts, int64_t share,
                           int64_t left_s, int postcopy_ok, char **err)
{
    msg_request rq = {0};
    rq.id = (char *)id;
    rq.instance = (char *)uuid;
    msg_request_defaults_init(&rq.options);
    if (share > 0) {
        rq.options.bandwidth_mib_s = (int)(share < MSG_OPT_BANDWIDTH_MAX ? share : MSG_OPT_BANDWIDTH_MAX);
        rq.options_given |= MSG_OPT_BANDWIDTH;
    }
    if (strcmp(mode, "auto-converge") == 0) {
        rq.options.auto_converge = true;
        rq.options_given |= MSG_OPT_AUTO_CONVERGE;
    }
    if (strcmp(mode, "post-copy") == 0) {
        rq.post_copy = true;
        rq.post_copy_given = true;
    } else if (left_s > 0 && postcopy_ok && attempts == 1) {
        /* pre-copy, with post-copy held back for the deadline's watch */
        rq.post_copy = true;
        rq.post_copy_given = true;
        rq.options.postcopy_after_iterations = MSG_OPT_POSTCOPY_AFTER_MAX;
        rq.options_given |= MSG_OPT_POSTCOPY_AFTER;
    }
    if (left_s > 0 && attempts == 1)
        rq.objectives.deadline_s = (int)(left_s < MSG_OBJ_DEADLINE_MAX ? left_s : MSG_OBJ_DEADLINE_MAX);
    char *text = NULL;
    if (msg_build_request(&rq, &text, err) < 0)
        return NULL;
    return text;
}

/* Requests answered, migrations ended, guests gone: the items brought up to date. */
static int follow(db_conn *db, dr_pass *p, const char *did, int running)
{
    const char *p1[] = {did};
    _cleanup_free_ char *max = xasprintf("%d", DRAIN_ATTEMPTS);
    const char *p3[] = {did, running ? "true" : "false", max};
    if (db_exec(db, NULL,
                "UPDATE drain_items i SET state = 'migrating', migration_id = r.migration_id"
                " FROM processed_requests r WHERE i.drain_id = $1::bigint AND i.state = 'requested'"
                " AND r.request_id = i.request_id AND r.outcome = 'accepted'",
                1, p1) < 0 ||
        db_exec(db, NULL,
                "UPDATE drain_items i SET"
                "  state = CASE WHEN $2::boolean AND i.attempts < $3::int THEN 'pending' ELSE 'failed' END,"
                "  reason = 'attempt ' || i.attempts || ' refused: ' || coalesce(r.reason, 'no reason'),"
                "  ended_at = CASE WHEN $2::boolean AND i.attempts < $3::int THEN NULL ELSE now() END"
                " FROM processed_requests r WHERE i.drain_id = $1::bigint AND i.state = 'requested'"
                " AND r.request_id = i.request_id AND r.outcome <> 'accepted'",
                3, p3) < 0 ||
        db_exec(db, NULL,
                "UPDATE drain_items i SET"
                "  state = CASE WHEN m.status = 'completed' THEN 'moved'"
                "   WHEN NOT $2::boolean THEN 'cancelled'"
                "   WHEN m.status <> 'error' AND i.attempts < $3::int THEN 'pending' ELSE 'failed' END,"
                "  reason = CASE WHEN m.status = 'completed' THEN i.reason"
                "   ELSE 'attempt ' || i.attempts || ': migration ' || m.id || ' ' || m.status"
                "    || coalesce(': ' || m.error, '') END,"
                "  ended_at = CASE WHEN m.status = 'completed' OR NOT $2::boolean OR m.status = 'error'"
                "   OR i.attempts >= $3::int THEN now() END"
                " FROM migrations m WHERE i.drain_id = $1::bigint AND i.state = 'migrating' AND m.id = i.migration_id"
                " AND m.status IN ('completed', 'failed', 'cancelled', 'error')",
                3, p3) < 0)
        return -1;
    /* guests that are no longer the drain's to move */
    if (db_exec(db, NULL,
                "UPDATE drain_items i SET state = 'skipped', ended_at = now(),"
                "  reason = CASE WHEN x.uuid IS NULL OR x.vm_state = 'deleted' THEN 'the instance is gone'"
                "   WHEN x.host IS DISTINCT FROM d.host THEN 'it left ' || d.host || ' by other means (now on '"
                "    || coalesce(x.host, 'no host') || ')'"
                "   ELSE x.vm_state || ' now: live migration moves running guests only' END"
                " FROM drains d, drain_items i2 LEFT JOIN instances x ON x.uuid = i2.instance_uuid"
                " WHERE d.id = $1::bigint AND i.drain_id = d.id AND i2.drain_id = i.drain_id"
                " AND i2.instance_uuid = i.instance_uuid AND i.state = 'pending'"
                " AND (x.uuid IS NULL OR x.host IS DISTINCT FROM d.host OR x.vm_state <> 'running')",
                1, p1) < 0)
        return -1;
    if (!running) {
        /* a cancelled drain's requests answered late: their migrations asked to abort */
        _cleanup_pq_ PGresult *a = NULL;
        if (drain_abort_migrations(db, p1[0], &a) < 0)
            return -1;
        for (int i = 0; i < PQntuples(a); i++)
            add_poke(p, atoll(PQgetvalue(a, i, 0)));
    }
    /* requests not answered for a while: published again under their id (one effect) */
    _cleanup_pq_ PGresult *st = NULL;
    if (db_exec(db, &st,
                "SELECT i.request_id::text, i.instance_uuid::text, i.mode, i.attempts, i.ec2_id,"
                " coalesce(d.bandwidth_budget_mib_s / d.parallel, 0),"
                " CASE WHEN d.deadline_at IS NULL THEN 0"
                "  ELSE greatest(1, extract(epoch FROM d.deadline_at - i.requested_at))::bigint END, h.postcopy"
                " FROM drain_items i JOIN drains d ON d.id = i.drain_id JOIN hosts h ON h.name = d.host"
                " WHERE i.drain_id = $1::bigint AND i.state = 'requested'"
                " AND i.requested_at < now() - interval '" DRAIN_REPUBLISH_S " seconds'"
                " AND NOT EXISTS (SELECT 1 FROM processed_requests r WHERE r.request_id = i.request_id)",
                1, p1) < 0)
        return -1;
    for (int i = 0; i < PQntuples(st); i++) {
        char *err = NULL;
        char *text = build_request(PQgetvalue(st, i, 0), PQgetvalue(st, i, 1), PQgetvalue(st, i, 2),
                                   atoi(PQgetvalue(st, i, 3)), atoll(PQgetvalue(st, i, 5)), atoll(PQgetvalue(st, i, 6)),
                                   strcmp(PQgetvalue(st, i, 7), "t") == 0, &err);
        if (!text) {
            log_warn(NULL, "drain %s: the request of %s cannot be built: %s", did, PQgetvalue(st, i, 4), err);
            free(err);
            continue;
        }
        add_pub(p, PQgetvalue(st, i, 0), text, PQgetvalue(st, i, 4));
    }
    return 0;
}

/* dispatch's plan of the pending guests (pend, n; items filled from them) beside the running
 * ones (bms, n_busy), its record, and the requests into the free slots. */
static int dispatch_plan(db_conn *db, dr_pass *p, const char *did, PGresult *d, PGresult *pend, int n,
                         drainplan_item *items, const int64_t *bms, int n_busy, int parallel)
{
    int has_deadline = !PQgetisnull(d, 0, 2);
    int64_t left_ms = has_deadline ? atoll(PQgetvalue(d, 0, 2)) : 0;
    drainplan_in in = {.cs = &p->cfg,
                       .link_mib_s = atoll(PQgetvalue(d, 0, 3)),
                       .max_parallel = parallel,
                       .deadline_ms = has_deadline ? (left_ms > 0 ? left_ms : 1) : 0,
                       .busy_ms = bms,
                       .n_busy = n_busy < parallel ? n_busy : parallel};
    drainplan_out po;
    drainplan_make(&in, items, (size_t)n, &po);
    _cleanup_free_ char *plan = drainplan_describe(&in, items, (size_t)n, &po);
    /* the pending ones follow those already requested (their positions kept) */
    int base = 0;
    _cleanup_pq_ PGresult *b = NULL;
    if (db_exec(db, &b,
                "SELECT count(*) FROM drain_items WHERE drain_id = $1::bigint AND state NOT IN ('pending', 'skipped')",
                1, (const char *[]){did}) < 0)
        return -1;
    base = atoi(PQgetvalue(b, 0, 0));
    for (int i = 0; i < n; i++) {
        char pos[16], ms[24];
        snprintf(pos, sizeof(pos), "%d", base + items[i].position);
        snprintf(ms, sizeof(ms), "%lld", (long long)items[i].predicted_ms);
        const char *ip[] = {did, PQgetvalue(pend, i, 0), pos, forecast_mode_str(items[i].mode), ms};
        if (db_exec(db, NULL,
                    "UPDATE drain_items SET position = $3::int, mode = $4, predicted_ms = $5::bigint"
                    " WHERE drain_id = $1::bigint AND instance_uuid = $2::uuid",
                    5, ip) < 0)
            return -1;
    }
    char fin[32];
    snprintf(fin, sizeof(fin), "%.3f", (double)po.finish_ms / 1000.0);
    const char *up[] = {did, fin, plan};
    if (db_exec(db, NULL,
                "UPDATE drains SET predicted_finish_at = now() + make_interval(secs => $2::float8), replan = $3"
                " WHERE id = $1::bigint",
                3, up) < 0)
        return -1;
    /* the free slots, in the plan's order */
    int share = PQgetisnull(d, 0, 5) ? 0 : atoi(PQgetvalue(d, 0, 5)) / parallel;
    int free_slots = po.parallel - n_busy; /* the re-plan may run fewer at once, never more */
    for (int pos = 0; pos < n && free_slots > 0; pos++)
        for (int i = 0; i < n; i++) {
            if (items[i].position != pos)
                continue;
            char id[37];
            uuid_new(id);
            int attempts = atoi(PQgetvalue(pend, i, 3)) + 1;
            char *err = NULL;
            char *text =
                build_request(id, PQgetvalue(pend, i, 0), forecast_mode_str(items[i].mode), attempts, share,
                              has_deadline ? (left_ms > 1000 ? left_ms / 1000 : 1) : 0, items[i].postcopy_ok, &err);
            if (!text) {
                _cleanup_free_ char *why = xasprintf("its request cannot be built: %s", err);
                free(err);
                const char *fp[] = {did, PQgetvalue(pend, i, 0), why};
                if (db_exec(db, NULL,
                            "UPDATE drain_items SET state = 'failed', reason = $3, ended_at = now()"
                            " WHERE drain_id = $1::bigint AND instance_uuid = $2::uuid",
                            3, fp) < 0)
                    return -1;
                break;
            }
            const char *rp[] = {did, PQgetvalue(pend, i, 0), id};
            if (db_exec(db, NULL,
                        "UPDATE drain_items SET state = 'requested', request_id = $3::uuid, requested_at = now(),"
                        " attempts = attempts + 1 WHERE drain_id = $1::bigint AND instance_uuid = $2::uuid",
                        3, rp) < 0) {
                free(text);
                return -1;
            }
            add_pub(p, id, text, PQgetvalue(pend, i, 4));
            free_slots--;
            break;
        }
    return 0;
}

/* A running drain: what is pending re-planned, and the next guests requested into free slots. */
static int dispatch(db_conn *db, dr_pass *p, const char *did, PGresult *d)
{
    const char *p1[] = {did};
    _cleanup_pq_ PGresult *busy = NULL, *pend = NULL;
    if (db_exec(db, &busy,
                "SELECT greatest(0, predicted_ms - extract(epoch FROM now() - requested_at) * 1000)::bigint"
                " FROM drain_items WHERE drain_id = $1::bigint AND state IN ('requested', 'migrating')",
                1, p1) < 0 ||
        db_exec(
            db, &pend,
            "SELECT i.instance_uuid::text, i.memory_mib, coalesce(i.dirty_mib_s, -1), i.attempts, i.ec2_id,"
            " h.postcopy, coalesce(i.nonzero_mib, 0) FROM drain_items i JOIN drains d ON d.id = i.drain_id JOIN hosts h ON h.name = d.host"
            " WHERE i.drain_id = $1::bigint AND i.state = 'pending' ORDER BY i.position, i.name",
            1, p1) < 0)
        return -1;
    int n_busy = PQntuples(busy), n = PQntuples(pend);
    int parallel = atoi(PQgetvalue(d, 0, 4));
    if (n == 0)
        return 0;
    int64_t *bms = xcalloc((size_t)n_busy + 1, sizeof(*bms));
    for (int i = 0; i < n_busy; i++)
        bms[i] = atoll(PQgetvalue(busy, i, 0));
    int64_t fixed_ms = 0;
    if (forecastop_learn_fixed(db, &p->cfg, &fixed_ms) < 0) { /* the fixed costs of earlier migrations */
        free(bms);
        return -1;
    }
    drainplan_item *items = xcalloc((size_t)n, sizeof(*items));
    for (int i = 0; i < n; i++) {
        items[i].memory_mib = atoll(PQgetvalue(pend, i, 1));
        items[i].dirty_mib_s = atoll(PQgetvalue(pend, i, 2));
        items[i].nonzero_mib = atoll(PQgetvalue(pend, i, 6));
        items[i].postcopy_ok = strcmp(PQgetvalue(pend, i, 5), "t") == 0;
    }
    int rc = dispatch_plan(db, p, did, d, pend, n, items, bms, n_busy, parallel);
    free(bms);
    free(items);
    return rc;
}

/* A drain with nothing left in flight or pending: its end and its receipt. */
static int finish(db_conn *db, dr_pass *p, const char *did, int running, const char *host)
{
    const char *p1[] = {did};
    _cleanup_pq_ PGresult *left = NULL;
    if (db_exec(db, &left,
                "SELECT count(*) FILTER (WHERE state IN ('pending', 'requested', 'migrating')),"
                " count(*) FILTER (WHERE state = 'failed') FROM drain_items WHERE drain_id = $1::bigint",
                1, p1) < 0)
        return -1;
    if (atoll(PQgetvalue(left, 0, 0)) > 0)
        return 0;
    const char *status = !running ? "cancelled" : atoll(PQgetvalue(left, 0, 1)) > 0 ? "failed" : "completed";
    const char *fp[] = {did, status};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(
            db, &r,
            "UPDATE drains d SET status = $2, finished_at = now(), predicted_finish_at = NULL,"
            " receipt = (SELECT json_build_object('outcome', $2::text, 'deadline_s', d.deadline_s,"
            "  'deadline_met', CASE WHEN d.deadline_at IS NULL THEN NULL ELSE now() <= d.deadline_at END,"
            "  'seconds', round(extract(epoch FROM now() - d.created_at)::numeric, 1),"
            "  'predicted_s', round(d.predicted_s::numeric, 1),"
            "  'moved', count(*) FILTER (WHERE i.state = 'moved'),"
            "  'failed', count(*) FILTER (WHERE i.state = 'failed'),"
            "  'cancelled', count(*) FILTER (WHERE i.state = 'cancelled'),"
            "  'skipped', count(*) FILTER (WHERE i.state = 'skipped'),"
            "  'guests', coalesce(json_agg(json_build_object('instance', i.instance_uuid, 'name', i.name,"
            "   'outcome', i.state, 'migration', i.migration_id, 'dest', m.dest_host, 'mode', i.mode,"
            "   'attempts', i.attempts, 'seconds', round(extract(epoch FROM m.finished_at - m.started_at)::numeric, 1),"
            "   'downtime_ms', m.downtime_ms, 'reason', i.reason) ORDER BY i.position, i.name), '[]'))"
            "  FROM drain_items i LEFT JOIN migrations m ON m.id = i.migration_id WHERE i.drain_id = d.id)"
            " WHERE d.id = $1::bigint RETURNING d.receipt->>'seconds', d.receipt->>'moved', d.receipt->>'failed',"
            " d.receipt->>'cancelled', d.receipt->>'skipped', coalesce(d.receipt->>'deadline_met', 'no deadline')",
            2, fp) < 0)
        return -1;
    log_fields f = {.host = host};
    log_info(&f, "drain %s of %s %s in %s s: %s moved, %s failed, %s cancelled, %s skipped; deadline met: %s", did,
             host, status, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
             PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5));
    (void)p;
    return 0;
}

/* A drain's bandwidth budget shared among its migrations under way (status running: the
 * source's job transferring), equally: the cap each owner is to apply (migrations.
 * bandwidth_target, read with its lease; orch_bandwidth). One that starts or ends changes the
 * share of the others at the next pass. */
static int share_budget(db_conn *db, const char *did, const char *budget)
{
    const char *p[] = {did, budget};
    return db_exec(db, NULL,
                   "UPDATE migrations m SET bandwidth_target = x.share FROM ("
                   " SELECT m2.id, greatest(1, $2::int / count(*) OVER ())::int AS share"
                   " FROM drain_items i JOIN migrations m2 ON m2.id = i.migration_id"
                   " WHERE i.drain_id = $1::bigint AND i.state = 'migrating' AND m2.status = 'running') x"
                   " WHERE m.id = x.id AND m.bandwidth_target IS DISTINCT FROM x.share",
                   2, p);
}

static int step_tx(db_conn *db, void *arg, char **err)
{
    dr_pass *p = arg;
    (void)err;
    drop_own(p); /* a transaction tried again publishes only what its last try decided */
    int held = lease_job_still_held(db, DRAIN_JOB, p->name, p->epoch);
    if (held <= 0)
        return held;
    char did[24];
    snprintf(did, sizeof(did), "%lld", (long long)p->drain);
    const char *p1[] = {did};
    _cleanup_pq_ PGresult *d = NULL;
    if (db_exec(db, &d,
                "SELECT status, host, (extract(epoch FROM deadline_at - now()) * 1000)::bigint, link_mib_s, parallel,"
                " bandwidth_budget_mib_s FROM drains WHERE id = $1::bigint AND status IN ('running', 'cancelling')"
                " FOR UPDATE",
                1, p1) < 0)
        return -1;
    if (PQntuples(d) != 1)
        return 0;
    int running = strcmp(PQgetvalue(d, 0, 0), "running") == 0;
    if (follow(db, p, did, running) < 0 || (running && dispatch(db, p, did, d) < 0) ||
        (running && !PQgetisnull(d, 0, 5) && share_budget(db, did, PQgetvalue(d, 0, 5)) < 0) ||
        finish(db, p, did, running, PQgetvalue(d, 0, 1)) < 0)
        return -1;
    return 0;
}

static void pass_free(dr_pass *p)
{
    for (size_t i = 0; i < p->n_pubs; i++) {
        free(p->pubs[i].text);
        free(p->pubs[i].ec2);
    }
    free(p->pubs);
    free(p->pokes);
    free(p->name);
    free(p);
}

static int pass_work(db_conn *db, void *arg, char **err)
{
    dr_pass *p = arg;
    _cleanup_pq_ PGresult *a = NULL;
    if (db_exec(db, &a, "SELECT id FROM drains WHERE status IN ('running', 'cancelling') ORDER BY id", 0, NULL) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    p->active = PQntuples(a) > 0;
    if (!p->active)
        return 0; /* no drain: no lease taken, nothing written */
    if (lease_hold_job(db, DRAIN_JOB, p->name, p->lease_s, &p->epoch) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    if (!p->epoch)
        return 0; /* another replica drives the drains */
    for (int i = 0; i < PQntuples(a); i++) {
        p->drain = atoll(PQgetvalue(a, i, 0));
        p->pubs_mark = p->n_pubs;
        p->pokes_mark = p->n_pokes;
        char *e = NULL;
        if (db_tx(db, "READ COMMITTED", step_tx, p, NULL, &e) < 0) {
            drop_own(p); /* that drain's decisions did not commit: nothing of them is published */
            log_warn(NULL, "drainer: drain %lld not stepped: %s", (long long)p->drain, e ? e : db_error(db));
            free(e);
        }
    }
    return 0;
}

static void pass_done(void *arg, int rc, char *err)
{
    dr_pass *p = arg;
    sched *s = p->s;
    s->drain_busy = 0;
    if (rc == 0 && !p->active)
        s->drain_next_ms = mono_ms() + DRAIN_IDLE_MS; /* no drain: look again later */
    if (rc < 0 && !s->stopping)
        log_warn(NULL, "drainer: could not run its pass: %s", err ? err : "the database worker could not run it");
    free(err);
    for (size_t i = 0; i < p->n_pubs && !s->stopping; i++) {
        dr_pub *u = &p->pubs[i];
        char drain[24];
        snprintf(drain, sizeof(drain), "%lld", (long long)u->drain);
        log_fields f = {.req = u->id, .instance = u->ec2};
        mq_props props = {.message_id = u->id, .type = MSG_TYPE_REQUEST};
        char *perr = NULL;
        if (mq_publish(s->mq, MQ_EXCHANGE, MQ_SCHEDULER_KEY, &props, u->text, strlen(u->text), NULL, NULL, &perr) < 0) {
            /* published again, under the same id, once it has gone unanswered a while */
            log_warn(&f, "drain %s: the request for %s could not be published: %s", drain, u->ec2, perr);
            free(perr);
        } else {
            log_info(&f, "drain %s: migration of %s requested", drain, u->ec2);
        }
    }
    for (size_t i = 0; i < p->n_pokes && !s->stopping; i++)
        orch_poke(s, p->pokes[i]);
    if (p->n_pokes && !s->stopping)
        queue_dispatch_soon(s);
    pass_free(p);
    if (s->drain_again && !s->stopping) {
        s->drain_again = 0;
        s->drain_next_ms = 0;
        drain_tick(s);
    }
}

void drain_tick(sched *s)
{
    if (s->drain_busy) {
        s->drain_again = 1;
        return;
    }
    int64_t now = mono_ms();
    if (s->drain_next_ms && now < s->drain_next_ms)
        return;
    s->drain_next_ms = now + DRAIN_PASS_MS;
    dr_pass *p = xcalloc(1, sizeof(*p));
    p->s = s;
    p->cfg = s->cfg->scheduler;
    p->name = xstrdup(s->name);
    p->lease_s = s->cfg->scheduler.lease_s;
    s->drain_busy = 1;
    dbq_submit(s->dbq, pass_work, pass_done, p);
}
