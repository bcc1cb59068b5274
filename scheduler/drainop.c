/* drainop: the operator's host drains on ferry.scheduler (issue #18; ferryctl host drain, drain
 * list|show|cancel; HTTP): drain.start plans the drain (drainplan.c) from the host's guests and
 * records it with its items, or answers the plan alone (dry_run), or refuses it with the reason
 * (no such host, a drain of it already running, a deadline the forecast says cannot hold);
 * drain.cancel cancels what has not been requested yet and asks the migrations already started
 * to abort, as one transaction; drain.list and drain.show answer them. The drainer (drain.c)
 * does the rest. */
#include <stdlib.h>
#include <string.h>

#include "drain.h"
#include "orchreply.h"

typedef enum { DR_START, DR_CANCEL, DR_LIST, DR_SHOW } dr_op;

static const char *const op_type[] = {"drain.start", "drain.cancel", "drain.list", "drain.show"};

typedef struct dr_job {
    sched *s;
    mq_conn *c;
    mq_delivery *d;
    msg_envelope *env;
    dr_op op;
    cfg_scheduler cfg;  /* a copy: the worker never reads the loop's config */
    const char *host;   /* DR_START (borrowed from env) */
    int64_t deadline_s; /* DR_START: 0 none */
    int64_t budget;     /* DR_START: bandwidth budget, 0 none */
    int dry_run;        /* DR_START */
    int64_t id;         /* DR_CANCEL, DR_SHOW; DR_START: the drain made */
    char sender[128];   /* who asked (the AMQP user_id, or "operator") */
    /* results */
    char *refused;    /* why not (the answer is <type>.refused) */
    int missing;      /* refused because the host or drain does not exist */
    json_object *out; /* the answer's body */
    int64_t *aborts;  /* DR_CANCEL: migrations asked to abort */
    size_t n_aborts;
} dr_job;

static void job_free(dr_job *j)
{
    msg_envelope_free(j->env);
    free(j->refused);
    free(j->aborts);
    json_object_put(j->out);
    free(j);
}

static int refuse(dr_job *j, int missing, const char *fmt, ...) FERRY_PRINTF(3, 4);

static int refuse(dr_job *j, int missing, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(j->refused);
    j->refused = xvasprintf(fmt, ap);
    va_end(ap);
    j->missing = missing;
    return 0;
}

/* A query's single JSON answer into *out (NULL when no row). */
static int json_row(db_conn *db, const char *sql, int n, const char *const *p, json_object **out)
{
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, sql, n, p) < 0)
        return -1;
    json_object_put(*out);
    *out = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? json_tokener_parse(PQgetvalue(r, 0, 0)) : NULL;
    return 0;
}

/* One drain, its items and its receipt, as drain.show answers it. */
#define DRAIN_JSON                                                                                                                    \
    "SELECT json_build_object('drain', d.id, 'host', d.host, 'status', d.status, 'deadline_s', d.deadline_s,"                         \
    " 'bandwidth_budget_mib_s', d.bandwidth_budget_mib_s, 'link_mib_s', d.link_mib_s, 'link_from', d.link_from,"                      \
    " 'parallel', d.parallel, 'requested_by', d.requested_by, 'created_at', d.created_at,"                                            \
    " 'deadline_at', d.deadline_at, 'predicted_s', d.predicted_s, 'predicted_finish_at', d.predicted_finish_at,"                      \
    " 'cancel_requested_by', d.cancel_requested_by, 'finished_at', d.finished_at, 'plan', d.plan, 'replan', d.replan,"                \
    " 'receipt', d.receipt, 'guests', (SELECT coalesce(json_agg(json_build_object('instance', i.instance_uuid,"                       \
    "  'name', i.name, 'instance_id', i.ec2_id, 'position', i.position + 1, 'memory_mib', i.memory_mib,"                              \
    "  'dirty_mib_s', i.dirty_mib_s, 'nonzero_mib', i.nonzero_mib, 'mode', i.mode, 'predicted_s', round(i.predicted_ms / 1000.0, 1)," \
    "  'state', i.state, 'attempts', i.attempts, 'migration', i.migration_id, 'migration_status', m.status,"                          \
    "  'dest', m.dest_host, 'reason', i.reason) ORDER BY i.position, i.name), '[]')"                                                  \
    "  FROM drain_items i LEFT JOIN migrations m ON m.id = i.migration_id WHERE i.drain_id = d.id))"                                  \
    " FROM drains d WHERE d.id = $1::bigint"

/* drain.start's plan of the guests in g (items[k] planned from row[k], np of them), recorded
 * unless dry_run; guests is the dry run's list to fill. */
static int start_plan(db_conn *db, dr_job *j, PGresult *g, int n, drainplan_item *items, const int *row, size_t np,
                      json_object *guests)
{
    const char *rid = msg_envelope_id(j->env);
    int64_t link = 0;
    const char *from = NULL;
    int64_t fixed_ms = 0;
    if (forecastop_learn_fixed(db, &j->cfg, &fixed_ms) < 0) /* the fixed costs of earlier migrations */
        return -1;
    if (j->budget > 0) {
        link = j->budget;
        from = "the drain's bandwidth budget";
    } else if (forecastop_link(db, &j->cfg, j->host, NULL, &link, &from) < 0) {
        return -1;
    }
    drainplan_in in = {.cs = &j->cfg,
                       .link_mib_s = link,
                       .max_parallel = drain_max_parallel(&j->cfg),
                       .deadline_ms = j->deadline_s * 1000};
    drainplan_out po;
    drainplan_make(&in, items, np, &po);
    _cleanup_free_ char *plan = drainplan_describe(&in, items, np, &po);
    if (!po.meets_deadline && !j->dry_run) {
        return refuse(j, 0, "the drain of %s cannot meet its deadline of %lld s: the forecast says %s", j->host,
                      (long long)j->deadline_s, plan);
        return -1;
    }
    char lk[24], par[16], dl[24], bud[24], pred[32];
    snprintf(lk, sizeof(lk), "%lld", (long long)link);
    snprintf(par, sizeof(par), "%d", po.parallel);
    snprintf(dl, sizeof(dl), "%lld", (long long)j->deadline_s);
    snprintf(bud, sizeof(bud), "%lld", (long long)j->budget);
    snprintf(pred, sizeof(pred), "%.3f", (double)po.finish_ms / 1000.0);
    if (j->dry_run) {
        /* the plan alone, in its order */
        for (size_t p = 0; p < np; p++)
            for (size_t k = 0; k < np; k++) {
                if (items[k].position != (int)p)
                    continue;
                int i = row[k];
                json_object *o = json_object_new_object();
                json_object_object_add(o, "instance", json_object_new_string(PQgetvalue(g, i, 0)));
                json_object_object_add(o, "name", json_object_new_string(PQgetvalue(g, i, 1)));
                json_object_object_add(o, "instance_id", json_object_new_string(PQgetvalue(g, i, 2)));
                json_object_object_add(o, "position", json_object_new_int((int)p + 1));
                json_object_object_add(o, "memory_mib", json_object_new_int64(items[k].memory_mib));
                if (items[k].dirty_mib_s >= 0)
                    json_object_object_add(o, "dirty_mib_s", json_object_new_int64(items[k].dirty_mib_s));
                if (items[k].nonzero_mib > 0)
                    json_object_object_add(o, "nonzero_mib", json_object_new_int64(items[k].nonzero_mib));
                json_object_object_add(o, "mode", json_object_new_string(forecast_mode_str(items[k].mode)));
                json_object_object_add(o, "predicted_s",
                                       json_object_new_double((double)(items[k].predicted_ms / 100) / 10.0));
                json_object_object_add(o, "start_s", json_object_new_double((double)(items[k].start_ms / 100) / 10.0));
                json_object_array_add(guests, o);
            }
        json_object_put(j->out);
        j->out = json_object_new_object();
        json_object_object_add(j->out, "dry_run", json_object_new_boolean(1));
        json_object_object_add(j->out, "host", json_object_new_string(j->host));
        json_object_object_add(j->out, "plan", json_object_new_string(plan));
        json_object_object_add(j->out, "predicted_s", json_object_new_double((double)(po.finish_ms / 100) / 10.0));
        json_object_object_add(j->out, "meets_deadline", json_object_new_boolean(po.meets_deadline));
        json_object_object_add(j->out, "parallel", json_object_new_int(po.parallel));
        json_object_object_add(j->out, "link_mib_s", json_object_new_int64(link));
        json_object_object_add(j->out, "link_from", json_object_new_string(from));
        json_object_object_add(j->out, "guests", json_object_get(guests));
        return 0;
    }
    const char *dp[] = {j->host, j->deadline_s ? dl : NULL, j->budget ? bud : NULL, lk, from, par, j->sender, rid, pred,
                        plan};
    _cleanup_pq_ PGresult *ins = NULL;
    if (db_exec(db, &ins,
                "INSERT INTO drains (host, deadline_s, bandwidth_budget_mib_s, link_mib_s, link_from, parallel,"
                " requested_by, request_id, deadline_at, predicted_s, predicted_finish_at, plan)"
                " VALUES ($1, $2::int, $3::int, $4::int, $5, $6::int, $7, $8::uuid,"
                "  now() + make_interval(secs => $2::int), $9::float8, now() + make_interval(secs => $9::float8), $10)"
                " RETURNING id",
                10, dp) < 0)
        return -1;
    const char *did = PQgetvalue(ins, 0, 0);
    j->id = atoll(did);
    /* every guest of the host is an item: the planned ones pending, the others skipped with why */
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        int planned = k < np && row[k] == i;
        char pos[16], mem[24], dirty[24], ms[24];
        snprintf(pos, sizeof(pos), "%d", planned ? items[k].position : (int)np + i);
        snprintf(mem, sizeof(mem), "%s", PQgetvalue(g, i, 3));
        snprintf(dirty, sizeof(dirty), "%s", PQgetvalue(g, i, 6));
        snprintf(ms, sizeof(ms), "%lld", planned ? (long long)items[k].predicted_ms : 0LL);
        _cleanup_free_ char *why =
            planned ? NULL
            : *PQgetvalue(g, i, 5)
                ? xasprintf("%s already when the drain started: left to that migration", PQgetvalue(g, i, 5))
                : xasprintf("%s when the drain started: live migration moves running guests only", PQgetvalue(g, i, 4));
        const char *ip[] = {did,
                            PQgetvalue(g, i, 0),
                            PQgetvalue(g, i, 1),
                            PQgetvalue(g, i, 2),
                            pos,
                            mem,
                            PQgetisnull(g, i, 6) ? NULL : dirty,
                            PQgetisnull(g, i, 7) ? NULL : PQgetvalue(g, i, 7),
                            forecast_mode_str(planned ? items[k].mode : FORECAST_PRECOPY),
                            ms,
                            planned ? "pending" : "skipped",
                            why};
        if (db_exec(
                db, NULL,
                "INSERT INTO drain_items (drain_id, instance_uuid, name, ec2_id, position, memory_mib, dirty_mib_s,"
                " nonzero_mib, mode, predicted_ms, state, reason, ended_at)"
                " VALUES ($1::bigint, $2::uuid, $3, $4, $5::int, $6::bigint, $7::bigint, $8::bigint, $9, $10::bigint,"
                "  $11, $12, CASE WHEN $11 = 'skipped' THEN now() END)",
                12, ip) < 0)
            return -1;
        if (planned)
            k++;
    }
    /* nothing new lands on a host being drained */
    _cleanup_free_ char *reason = xasprintf("drain %s", did);
    const char *sp[] = {j->host, reason};
    if (db_exec(db, NULL,
                "UPDATE hosts SET state = 'maintenance', state_reason = $2, updated_at = now() WHERE name = $1", 2,
                sp) < 0)
        return -1;
    return json_row(db, DRAIN_JSON, 1, (const char *[]){did}, &j->out);
}

/* The guests of a host as the plan sees them: running ones without a task first. */
static int start_tx(db_conn *db, dr_job *j)
{
    const char *rid = msg_envelope_id(j->env);
    const char *rp[] = {rid};
    _cleanup_pq_ PGresult *dup = NULL;
    if (db_exec(db, &dup, "SELECT id FROM drains WHERE request_id = $1::uuid", 1, rp) < 0)
        return -1;
    if (PQntuples(dup) == 1) { /* the same request again: the drain it made */
        j->id = atoll(PQgetvalue(dup, 0, 0));
        return json_row(db, DRAIN_JSON, 1, (const char *[]){PQgetvalue(dup, 0, 0)}, &j->out);
    }
    const char *hp[] = {j->host};
    _cleanup_pq_ PGresult *h = NULL;
    if (db_exec(db, &h, "SELECT postcopy FROM hosts WHERE name = $1 FOR NO KEY UPDATE", 1, hp) < 0)
        return -1;
    if (PQntuples(h) != 1)
        return refuse(j, 1, "no host %s", j->host);
    int postcopy = strcmp(PQgetvalue(h, 0, 0), "t") == 0;
    _cleanup_pq_ PGresult *busy = NULL;
    if (db_exec(db, &busy, "SELECT id, status FROM drains WHERE host = $1 AND status IN ('running', 'cancelling')", 1,
                hp) < 0)
        return -1;
    if (PQntuples(busy) > 0 && !j->dry_run)
        return refuse(j, 0, "host %s is being drained already (drain %s, %s)", j->host, PQgetvalue(busy, 0, 0),
                      PQgetvalue(busy, 0, 1));
    /* its guests: the last dirty rate and non-zero memory sampled by a migration of each, if any */
    _cleanup_pq_ PGresult *g = NULL;
    if (db_exec(db, &g,
                "SELECT i.uuid::text, i.name, i.ec2_id, i.memory_mb, i.vm_state, coalesce(i.task_state, ''),"
                " s.forecast_dirty_mib_s, s.forecast_nonzero_mib"
                " FROM instances i LEFT JOIN LATERAL (SELECT m.forecast_dirty_mib_s, m.forecast_nonzero_mib"
                "   FROM migrations m WHERE m.instance_uuid = i.uuid AND m.forecast_dirty_mib_s IS NOT NULL"
                "   ORDER BY m.id DESC LIMIT 1) s ON true"
                " WHERE i.host = $1 AND i.vm_state <> 'deleted' ORDER BY i.name, i.uuid",
                1, hp) < 0)
        return -1;
    int n = PQntuples(g);
    drainplan_item *items = xcalloc((size_t)n + 1, sizeof(*items));
    int *row = xcalloc((size_t)n + 1, sizeof(*row));
    size_t np = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(PQgetvalue(g, i, 4), "running") != 0 || *PQgetvalue(g, i, 5))
            continue;
        items[np].memory_mib = atoll(PQgetvalue(g, i, 3));
        items[np].dirty_mib_s = PQgetisnull(g, i, 6) ? -1 : atoll(PQgetvalue(g, i, 6));
        items[np].nonzero_mib = PQgetisnull(g, i, 7) ? 0 : atoll(PQgetvalue(g, i, 7));
        items[np].postcopy_ok = postcopy;
        row[np++] = i;
    }
    json_object *guests = json_object_new_array();
    int rc = start_plan(db, j, g, n, items, row, np, guests);
    json_object_put(guests);
    free(items);
    free(row);
    return rc;
}

static int cancel_tx(db_conn *db, dr_job *j)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)j->id);
    const char *p[] = {id};
    _cleanup_pq_ PGresult *d = NULL;
    if (db_exec(db, &d, "SELECT status FROM drains WHERE id = $1::bigint FOR UPDATE", 1, p) < 0)
        return -1;
    if (PQntuples(d) != 1)
        return refuse(j, 1, "no drain %s", id);
    if (strcmp(PQgetvalue(d, 0, 0), "running") != 0)
        return refuse(j, 0, "drain %s is %s: nothing to cancel", id, PQgetvalue(d, 0, 0));
    _cleanup_free_ char *why = xasprintf("cancelled by %s before it was requested", j->sender);
    const char *cp[] = {id, why};
    _cleanup_pq_ PGresult *c = NULL, *a = NULL;
    /* as a unit: what was not requested yet stays; what was started is asked to abort (a
     * request not answered yet is aborted by the drainer once it is) */
    if (db_exec(db, &c,
                "UPDATE drain_items SET state = 'cancelled', reason = $2, ended_at = now()"
                " WHERE drain_id = $1::bigint AND state = 'pending' RETURNING instance_uuid",
                2, cp) < 0 ||
        drain_abort_migrations(db, id, &a) < 0 ||
        db_exec(db, NULL, "UPDATE drains SET status = 'cancelling', cancel_requested_by = $2 WHERE id = $1::bigint", 2,
                (const char *[]){id, j->sender}) < 0)
        return -1;
    free(j->aborts);
    j->n_aborts = (size_t)PQntuples(a);
    j->aborts = xcalloc(j->n_aborts + 1, sizeof(*j->aborts));
    json_object *ab = json_object_new_array();
    for (size_t i = 0; i < j->n_aborts; i++) {
        j->aborts[i] = atoll(PQgetvalue(a, (int)i, 0));
        json_object_array_add(ab, json_object_new_int64(j->aborts[i]));
    }
    json_object_put(j->out);
    j->out = json_object_new_object();
    json_object_object_add(j->out, "drain", json_object_new_int64(j->id));
    json_object_object_add(j->out, "status", json_object_new_string("cancelling"));
    json_object_object_add(j->out, "not_requested", json_object_new_int(PQntuples(c)));
    json_object_object_add(j->out, "aborting", ab);
    return 0;
}

static int dr_tx(db_conn *db, void *arg, char **err)
{
    dr_job *j = arg;
    (void)err;
    free(j->refused);
    j->refused = NULL;
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)j->id);
    const char *p[] = {id};
    switch (j->op) {
    case DR_START:
        return start_tx(db, j);
    case DR_CANCEL:
        return cancel_tx(db, j);
    case DR_SHOW:
        if (json_row(db, DRAIN_JSON, 1, p, &j->out) < 0)
            return -1;
        return j->out ? 0 : refuse(j, 1, "no drain %s", id);
    case DR_LIST:
        return json_row(db,
                        "SELECT coalesce(json_agg(x ORDER BY x.drain DESC), '[]') FROM ("
                        " SELECT d.id AS drain, d.host, d.status, d.deadline_s, d.created_at, d.finished_at,"
                        "  d.predicted_finish_at, d.requested_by,"
                        "  (SELECT count(*) FROM drain_items i WHERE i.drain_id = d.id) AS guests,"
                        "  (SELECT count(*) FROM drain_items i WHERE i.drain_id = d.id AND i.state = 'moved') AS moved,"
                        "  (d.receipt->>'deadline_met')::boolean AS deadline_met"
                        " FROM drains d ORDER BY d.id DESC LIMIT 100) x",
                        0, NULL, &j->out);
    }
    return 0;
}

static int dr_work(db_conn *db, void *arg, char **err)
{
    int rc = db_tx(db, "READ COMMITTED", dr_tx, arg, NULL, err);
    if (rc < 0 && err && !*err)
        *err = xstrdup(db_error(db));
    return rc;
}

static void reply_and_free(dr_job *j, json_object *body, const char *outcome)
{
    _cleanup_free_ char *type = xasprintf("%s.%s", op_type[j->op], outcome);
    intake_reply(j->s, j->d, type, msg_envelope_id(j->env), body);
    mq_ack(j->c, j->d);
    job_free(j);
}

static void dr_done(void *arg, int rc, char *err)
{
    dr_job *j = arg;
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)j->id);
    log_fields f = {.req = msg_envelope_id(j->env), .host = j->host};
    json_object *b = json_object_new_object();
    if (rc < 0 || j->refused) {
        if (rc < 0)
            refuse(j, 0, "the database refused it: %s", err ? err : "no answer");
        log_warn(&f, "%s from %s refused: %s", op_type[j->op], j->sender, j->refused);
        json_object_object_add(b, "reason", json_object_new_string(j->refused));
        if (j->missing)
            json_object_object_add(b, "missing", json_object_new_boolean(1));
        free(err);
        reply_and_free(j, b, "refused");
        return;
    }
    free(err);
    json_object_put(b);
    b = j->out ? json_object_get(j->out) : json_object_new_object();
    if (j->op == DR_LIST) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "drains", b);
        reply_and_free(j, o, "result");
        return;
    }
    if (j->op == DR_SHOW) {
        reply_and_free(j, b, "result");
        return;
    }
    if (j->op == DR_START && !j->dry_run) {
        json_object *v = NULL;
        log_info(&f, "drain %s of %s started by %s: %s", id, j->host, j->sender,
                 json_object_object_get_ex(b, "plan", &v) ? json_object_get_string(v) : "?");
        j->s->drain_next_ms = 0; /* its first requests now rather than at the next pass */
        drain_tick(j->s);
    }
    if (j->op == DR_CANCEL) {
        log_info(&f, "drain %s cancelled by %s: %zu migrations asked to abort", id, j->sender, j->n_aborts);
        for (size_t i = 0; i < j->n_aborts; i++)
            orch_poke(j->s, j->aborts[i]);
        queue_dispatch_soon(j->s); /* queued ones are cancelled by the dispatch */
    }
    reply_and_free(j, b, "accepted");
}

void drainop_on_request(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env)
{
    dr_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->c = c;
    j->d = d;
    j->env = env;
    j->cfg = s->cfg->scheduler;
    const char *type = msg_envelope_type(env);
    j->op = strcmp(type, "drain.start") == 0    ? DR_START
            : strcmp(type, "drain.cancel") == 0 ? DR_CANCEL
            : strcmp(type, "drain.show") == 0   ? DR_SHOW
                                                : DR_LIST;
    const mq_message *m = mq_delivery_message(d);
    snprintf(j->sender, sizeof(j->sender), "%s", m->user_id && *m->user_id ? m->user_id : "operator");
    json_object *b = msg_envelope_body(env);
    char *why = NULL;
    int dry = 0;
    if (j->op == DR_START) {
        if (orchreply_get_text(b, "body.", "host", 1, 255, &j->host, &why) < 0 ||
            orchreply_get_int(b, "body.", "deadline_s", 0, 1, MSG_OBJ_DEADLINE_MAX, &j->deadline_s, &why) < 0 ||
            orchreply_get_int(b, "body.", "bandwidth_budget_mib_s", 0, 1, MSG_OPT_BANDWIDTH_MAX, &j->budget, &why) <
                0 ||
            orchreply_get_bool(b, "body.", "dry_run", 0, &dry, &why) < 0)
            j->refused = why;
        j->dry_run = dry;
    } else if (j->op != DR_LIST && orchreply_get_int(b, "body.", "drain", 1, 1, INT64_MAX, &j->id, &why) < 0) {
        j->refused = why;
    }
    if (j->refused) {
        intake_refuse_body(s, c, d, env, j->sender, j->refused);
        job_free(j);
        return;
    }
    dbq_submit(s->dbq, dr_work, dr_done, j);
}
