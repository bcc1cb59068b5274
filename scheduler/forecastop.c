/* forecastop: the operator's `instance.forecast` (issue #18; ferryctl forecast INSTANCE): the
 * instance is read from the database (where it runs), its host's agent samples its dirty rate
 * and reads its memory (dirty_rate, answered only by that host's own agent user), and the
 * forecast model (forecast.c) gives each mode's duration, pause and bytes at the bandwidth the
 * request names (else [scheduler] bandwidth_mib_s, else the rate of earlier migrations from its host
 * to the destination named, or to any, else forecast_bandwidth_mib_s), and the mode
 * that meets the request's objectives, or why none does. Nothing is changed anywhere. */
#include <stdlib.h>
#include <string.h>

#include "forecast.h"
#include "orchreply.h"
#include "sched.h"

typedef struct fc_job {
    sched *s;
    mq_conn *c;
    mq_delivery *d;
    msg_envelope *env;
    const char *ref;   /* borrowed from env */
    const char *dest;  /* where it would go (borrowed from env or the request), NULL: anywhere */
    cfg_scheduler cfg; /* a copy: the worker never reads the loop's config; its fixed costs learned */
    int fixed_learned; /* 1: cfg's fixed costs add up to fixed_ms, learned from earlier migrations */
    int64_t fixed_ms;
    int learn; /* no bandwidth given or configured: learned from earlier migrations */
    int64_t bandwidth_mib_s, max_downtime_ms, deadline_s, seconds;
    const char *bandwidth_from;
    /* read from the database */
    int found;
    char uuid[40], ec2[32], host[256], vm_state[32];
    /* the agent's answer */
    int64_t dirty_mib_s, memory_mib, nonzero_mib;
    char *refused; /* why, NULL when answered */
    /* a request's plan (forecastop_plan_request) instead of an answer to an operator */
    forecastop_plan_fn plan_done;
    void *plan_arg;
    char *ref_owned;
    int allow_postcopy;
    int64_t after;    /* the request's postcopy_after_iterations */
    int64_t limit_ms; /* QEMU's downtime limit: the request's own max_downtime_ms, else 0 (derived) */
} fc_job;

static void job_free(fc_job *j)
{
    msg_envelope_free(j->env);
    free(j->refused);
    free(j->ref_owned);
    free(j);
}

/* The plan of a request, from the forecast (or its absence); runs the request's callback. */
static void plan_finish(fc_job *j, int cancelled)
{
    forecastop_plan p = {.cancelled = cancelled};
    const cfg_scheduler *cs = &j->cfg;
    if (cancelled) {
        p.note = xstrdup("the scheduler is stopping");
    } else if (j->refused) {
        p.note = xasprintf("no forecast (%s): the request runs as it asked", j->refused);
    } else {
        int64_t limit = j->limit_ms > 0 ? j->limit_ms : forecast_limit_for(cs, j->max_downtime_ms);
        forecast_in in =
            forecast_in_for(cs, j->memory_mib, j->nonzero_mib, j->dirty_mib_s, j->bandwidth_mib_s, limit, j->after);
        forecast_objectives obj = {.max_downtime_ms = (uint64_t)j->max_downtime_ms,
                                   .deadline_ms = (uint64_t)j->deadline_s * 1000};
        bool allowed[FORECAST_MODES] = {true, true, j->allow_postcopy != 0};
        forecast_mode chosen;
        forecast_out co;
        char *why = NULL;
        p.taken = 1;
        p.limit_ms = limit;
        if (forecast_choose(&in, &obj, allowed, &chosen, &co, &why) == 0) {
            p.feasible = 1;
            p.mode = (int)chosen;
            p.note = xasprintf(
                "%s chosen by the forecast: %.1f s, pause %llu ms (%lld MiB of memory dirtied at %lld MiB/s, "
                "link %lld MiB/s, downtime limit %lld ms)",
                forecast_mode_str(chosen), (double)co.duration_ms / 1000.0, (unsigned long long)co.downtime_ms,
                (long long)j->memory_mib, (long long)j->dirty_mib_s, (long long)j->bandwidth_mib_s, (long long)limit);
        } else {
            p.note =
                xasprintf("the forecast says no mode meets the objectives (%lld MiB of memory dirtied at %lld MiB/s, "
                          "link %lld MiB/s%s): %s",
                          (long long)j->memory_mib, (long long)j->dirty_mib_s, (long long)j->bandwidth_mib_s,
                          j->allow_postcopy ? "" : ", post-copy not allowed by the request", why);
            free(why);
        }
    }
    forecastop_plan_fn done = j->plan_done;
    void *arg = j->plan_arg;
    job_free(j);
    done(arg, &p);
}

/* Replies type with body (taken) to the request's reply_to, if any. */
static void send_reply(fc_job *j, const char *type, json_object *body)
{
    intake_reply(j->s, j->d, type, msg_envelope_id(j->env), body);
}

static json_object *mode_json(forecast_mode m, const forecast_out *f, const forecast_objectives *obj)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "mode", json_object_new_string(forecast_mode_str(m)));
    json_object_object_add(o, "converges", json_object_new_boolean(f->converges));
    json_object_object_add(o, "duration_ms", json_object_new_int64((int64_t)f->duration_ms));
    json_object_object_add(o, "downtime_ms", json_object_new_int64((int64_t)f->downtime_ms));
    json_object_object_add(o, "bytes", json_object_new_int64(f->bytes > INT64_MAX ? INT64_MAX : (int64_t)f->bytes));
    json_object_object_add(o, "passes", json_object_new_int(f->passes));
    json_object_object_add(o, "throttle_pct", json_object_new_int(f->throttle_pct));
    json_object_object_add(o, "meets", json_object_new_boolean(forecast_meets(f, obj)));
    return o;
}

/* The forecast from the agent's figures, answered; or the refusal. Acks the request. */
static void finish(fc_job *j)
{
    if (j->plan_done) {
        plan_finish(j, 0);
        return;
    }
    log_fields f = {
        .req = msg_envelope_id(j->env), .instance = *j->ec2 ? j->ec2 : NULL, .host = *j->host ? j->host : NULL};
    if (j->refused) {
        log_warn(&f, "instance.forecast of %s refused: %s", j->ref, j->refused);
        json_object *b = json_object_new_object();
        json_object_object_add(b, "reason", json_object_new_string(j->refused));
        send_reply(j, "instance.forecast.refused", b);
        mq_ack(j->c, j->d);
        job_free(j);
        return;
    }
    const cfg_scheduler *cs = &j->cfg;
    int64_t limit = forecast_limit_for(cs, j->max_downtime_ms);
    forecast_in in = forecast_in_for(cs, j->memory_mib, j->nonzero_mib, j->dirty_mib_s, j->bandwidth_mib_s, limit,
                                     cs->postcopy_after_iterations);
    forecast_objectives obj = {.max_downtime_ms = (uint64_t)j->max_downtime_ms,
                               .deadline_ms = (uint64_t)j->deadline_s * 1000};
    json_object *b = json_object_new_object();
    json_object_object_add(b, "instance", json_object_new_string(j->ec2));
    json_object_object_add(b, "uuid", json_object_new_string(j->uuid));
    json_object_object_add(b, "host", json_object_new_string(j->host));
    json_object_object_add(b, "memory_mib", json_object_new_int64(j->memory_mib));
    json_object_object_add(b, "nonzero_mib", j->nonzero_mib > 0 ? json_object_new_int64(j->nonzero_mib) : NULL);
    json_object_object_add(b, "dirty_rate_mib_s", json_object_new_int64(j->dirty_mib_s));
    json_object_object_add(b, "bandwidth_mib_s", json_object_new_int64(j->bandwidth_mib_s));
    json_object_object_add(b, "bandwidth_from", json_object_new_string(j->bandwidth_from));
    json_object_object_add(
        b, "fixed_ms",
        json_object_new_int64(cs->forecast_setup_ms + cs->forecast_sample_s * 1000 + cs->forecast_switch_ms));
    json_object_object_add(b, "fixed_from", json_object_new_string(j->fixed_learned ? "learned" : "config"));
    json_object_object_add(b, "switch_ms", json_object_new_int64(cs->forecast_switch_ms));
    json_object_object_add(b, "max_downtime_ms", json_object_new_int64(j->max_downtime_ms));
    json_object_object_add(b, "deadline_s", json_object_new_int64(j->deadline_s));
    json_object *modes = json_object_new_array();
    for (int m = 0; m < FORECAST_MODES; m++) {
        forecast_out fo;
        forecast_run(&in, (forecast_mode)m, &fo);
        json_object_array_add(modes, mode_json((forecast_mode)m, &fo, &obj));
    }
    json_object_object_add(b, "modes", modes);
    bool all[FORECAST_MODES] = {true, true, true};
    forecast_mode chosen;
    forecast_out co;
    char *why = NULL;
    if (forecast_choose(&in, &obj, all, &chosen, &co, &why) == 0) {
        json_object_object_add(b, "choice", json_object_new_string(forecast_mode_str(chosen)));
        log_info(&f, "forecast for %s on %s: %lld MiB dirtying %lld MiB/s at %lld MiB/s: %s, %.1f s, pause %llu ms",
                 j->ec2, j->host, (long long)j->memory_mib, (long long)j->dirty_mib_s, (long long)j->bandwidth_mib_s,
                 forecast_mode_str(chosen), (double)co.duration_ms / 1000.0, (unsigned long long)co.downtime_ms);
    } else {
        json_object_object_add(b, "choice", NULL);
        json_object_object_add(b, "reason", json_object_new_string(why));
        log_info(&f, "forecast for %s on %s: %s", j->ec2, j->host, why);
        free(why);
    }
    send_reply(j, "instance.forecast.result", b);
    mq_ack(j->c, j->d);
    job_free(j);
}

static void on_answer(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)c;
    fc_job *j = arg;
    msg_envelope *env = NULL;
    char *perr = NULL;
    orchreply r = {0};
    if (!ok) {
        j->refused = xasprintf("the agent of %s did not answer dirty_rate: %s", j->host, err ? err : "no reply");
    } else if (msg_parse(reply->body, reply->len, &env, &perr) < 0 ||
               orchreply_read(ORCHREPLY_DIRTY_RATE, msg_envelope_body(env), &r, &perr) < 0) {
        j->refused = xasprintf("the reply of %s to dirty_rate is refused: %s", j->host, perr);
        free(perr);
    } else if (!r.ok) {
        j->refused = xasprintf("%s could not measure the dirty rate: %s", j->host, r.error);
    } else {
        j->dirty_mib_s = r.dirty.mib_s;
        j->memory_mib = r.dirty.memory_mib;
        j->nonzero_mib = r.dirty.nonzero_mib;
    }
    orchreply_clear(&r);
    msg_envelope_free(env);
    if (j->s->stopping) {
        if (j->plan_done)
            plan_finish(j, 1);
        else
            job_free(j);
        return;
    }
    finish(j);
}

/* dirty_rate to the instance's host, the answer taken only from its own agent. */
static void ask_host(fc_job *j)
{
    sched *s = j->s;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "instance", json_object_new_string(j->uuid));
    json_object_object_add(b, "seconds", json_object_new_int64(j->seconds));
    _cleanup_free_ char *text = msg_build("rpc.dirty_rate", NULL, b);
    _cleanup_free_ char *key = xasprintf("compute.%s", j->host);
    char **from = trust_answer_senders(&s->cfg->trust, j->host);
    char *err = NULL;
    /* the agent samples for `seconds` (and waits up to 5 s more for QEMU) */
    int timeout = (int)s->cfg->amqp.rpc_timeout_ms + (int)j->seconds * 1000 + 5000;
    int r = mq_rpc_call(s->mq, MQ_EXCHANGE, key, text, strlen(text), timeout, (const char *const *)from, on_answer, j,
                        &err);
    trust_list_free(from);
    if (r < 0) {
        /* answered at once as a failure (the call's callback is not run) */
        j->refused = xasprintf("could not ask %s for the dirty rate: %s", j->host, err ? err : "not sent");
        free(err);
        finish(j);
    }
}

/* ---- the instance read, on the database worker ------------------------------------------------- */

int forecastop_learn_fixed(db_conn *db, cfg_scheduler *cs, int64_t *ms)
{
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY f))::bigint, count(*) FROM ("
                " SELECT greatest(0, extract(epoch FROM finished_at - started_at) * 1000"
                "  - memory_processed_bytes / 1048576.0 / bandwidth_mib_s * 1000) AS f"
                " FROM migrations WHERE status = 'completed' AND bandwidth_mib_s > 0"
                "  AND memory_processed_bytes IS NOT NULL AND started_at IS NOT NULL AND finished_at IS NOT NULL"
                " ORDER BY id DESC LIMIT 10) x",
                0, NULL) < 0)
        return -1;
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0) || atoll(PQgetvalue(r, 0, 1)) < 3)
        return 0;
    *ms = atoll(PQgetvalue(r, 0, 0));
    int64_t rest = *ms - cs->forecast_sample_s * 1000 - cs->forecast_switch_ms;
    cs->forecast_setup_ms = rest > 0 ? rest : 0;
    return 1;
}

int forecastop_link(db_conn *db, const cfg_scheduler *cs, const char *src, const char *dest, int64_t *mib_s,
                    const char **from)
{
    if (cs->bandwidth_mib_s > 0) {
        *mib_s = cs->bandwidth_mib_s;
        *from = "config bandwidth_mib_s";
        return 0;
    }
    char fixed[24];
    snprintf(fixed, sizeof(fixed), "%.3f",
             (double)(cs->forecast_setup_ms + cs->forecast_sample_s * 1000 + cs->forecast_switch_ms) / 1000.0);
    const char *p[] = {src, dest, fixed};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY mib_s))::bigint, count(*) FROM ("
                " SELECT memory_processed_bytes / 1048576.0"
                "  / (extract(epoch FROM finished_at - started_at) - $3::float8) AS mib_s"
                " FROM migrations m WHERE source_host = $1 AND ($2::text IS NULL OR dest_host = $2)"
                "  AND status = 'completed' AND bandwidth_mib_s = 0 AND memory_processed_bytes >= 16777216"
                "  AND extract(epoch FROM finished_at - started_at) > $3::float8 + 1"
                /* alone on its source's link: migrations that overlapped shared it, and each says
                 * only its share (six at once from one host each see a sixth of the link) */
                "  AND NOT EXISTS (SELECT 1 FROM migrations o WHERE o.source_host = m.source_host AND o.id <> m.id"
                "   AND o.started_at < m.finished_at AND coalesce(o.finished_at, now()) > m.started_at)"
                " ORDER BY id DESC LIMIT 10) x",
                3, p) < 0)
        return -1;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) && atoll(PQgetvalue(r, 0, 1)) >= 3 &&
        atoll(PQgetvalue(r, 0, 0)) > 0) {
        *mib_s = atoll(PQgetvalue(r, 0, 0));
        *from = dest ? "learned: the median of the last completed migrations between the two hosts"
                     : "learned: the median of the host's last completed migrations";
        return 0;
    }
    *mib_s = cs->forecast_bandwidth_mib_s > 0 ? cs->forecast_bandwidth_mib_s : 1;
    *from = "config forecast_bandwidth_mib_s";
    return 0;
}

static int read_work(db_conn *db, void *arg, char **err)
{
    fc_job *j = arg;
    _cleanup_free_ char *sql = xasprintf(
        "SELECT uuid::text, ec2_id, coalesce(host, ''), vm_state FROM instances WHERE %s AND vm_state <> 'deleted'"
        " LIMIT 2",
        api_instance_where(msg_instance_classify(j->ref)));
    const char *p[] = {j->ref};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, sql, 1, p) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    j->found = PQntuples(r);
    if (j->found == 1) {
        strlcpy_f(j->uuid, PQgetvalue(r, 0, 0), sizeof(j->uuid));
        strlcpy_f(j->ec2, PQgetvalue(r, 0, 1), sizeof(j->ec2));
        strlcpy_f(j->host, PQgetvalue(r, 0, 2), sizeof(j->host));
        strlcpy_f(j->vm_state, PQgetvalue(r, 0, 3), sizeof(j->vm_state));
        /* the fixed costs first: the learned link is what is left of the duration */
        if ((j->fixed_learned = forecastop_learn_fixed(db, &j->cfg, &j->fixed_ms)) < 0 ||
            (j->learn && *j->host &&
             forecastop_link(db, &j->cfg, j->host, j->dest, &j->bandwidth_mib_s, &j->bandwidth_from) < 0)) {
            *err = xstrdup(db_error(db));
            return -1;
        }
    }
    return 0;
}

static void read_done(void *arg, int rc, char *err)
{
    fc_job *j = arg;
    if (rc < 0)
        j->refused =
            xasprintf("could not read instance %s: %s", j->ref, err ? err : "the database worker could not run it");
    else if (j->found == 0)
        j->refused = xasprintf("no instance %s", j->ref);
    else if (j->found > 1)
        j->refused = xasprintf("instance name %s is ambiguous: use its uuid or i-xxxxxxxx id", j->ref);
    else if (!*j->host)
        j->refused = xasprintf("instance %s has no host", j->ref);
    else if (strcmp(j->vm_state, "running") != 0)
        j->refused =
            xasprintf("instance %s is %s on %s: only a running guest has a dirty rate", j->ref, j->vm_state, j->host);
    free(err);
    if (j->refused || j->s->stopping) {
        if (j->s->stopping && j->plan_done) {
            plan_finish(j, 1);
            return;
        }
        if (j->s->stopping && !j->refused) {
            job_free(j);
            return;
        }
        finish(j);
        return;
    }
    ask_host(j);
}

/* Reads optional integer key of b within [lo, hi] into *out (left as is when absent); -1 with
 * j->refused when present and not such an integer. */
static int opt_int(fc_job *j, json_object *b, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    char *why = NULL;
    if (orchreply_get_int(b, "instance.forecast: body.", key, 0, lo, hi, out, &why) < 0) {
        j->refused = why;
        return -1;
    }
    return 0;
}

void forecastop_on_request(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env)
{
    json_object *b = msg_envelope_body(env);
    fc_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->c = c;
    j->d = d;
    j->env = env;
    j->cfg = s->cfg->scheduler;
    const cfg_scheduler *cs = &s->cfg->scheduler;
    j->bandwidth_mib_s = cs->bandwidth_mib_s > 0 ? cs->bandwidth_mib_s : cs->forecast_bandwidth_mib_s;
    j->bandwidth_from = cs->bandwidth_mib_s > 0 ? "config bandwidth_mib_s" : "config forecast_bandwidth_mib_s";
    j->max_downtime_ms = cs->max_downtime_ms;
    j->deadline_s = 0;
    j->seconds = 1;
    int64_t bw = 0;
    char *why = NULL;
    if (orchreply_get_text(b, "instance.forecast: body.", "instance", 1, ORCHREPLY_MAX_NAME, &j->ref, &why) < 0)
        j->refused = why;
    else if (orchreply_get_text(b, "instance.forecast: body.", "dest", 0, ORCHREPLY_MAX_NAME, &j->dest, &why) < 0)
        j->refused = why;
    else if (opt_int(j, b, "bandwidth_mib_s", 1, MSG_OPT_BANDWIDTH_MAX, &bw) < 0 ||
             opt_int(j, b, "max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, &j->max_downtime_ms) < 0 ||
             opt_int(j, b, "deadline_s", 0, 7 * 86400, &j->deadline_s) < 0 ||
             opt_int(j, b, "seconds", 1, 10, &j->seconds) < 0)
        ;
    else if (!*j->ref)
        j->refused = xstrdup("instance.forecast: body.instance: empty");
    if (bw > 0) {
        j->bandwidth_mib_s = bw;
        j->bandwidth_from = "request";
    }
    j->learn = bw == 0 && cs->bandwidth_mib_s == 0;
    if (j->refused) {
        const mq_message *m = mq_delivery_message(d);
        intake_refuse_body(s, c, d, env, m->user_id && *m->user_id ? m->user_id : "operator", j->refused);
        job_free(j);
        return;
    }
    dbq_submit(s->dbq, read_work, read_done, j);
}

void forecastop_plan_request(sched *s, const msg_request *rq, forecastop_plan_fn done, void *arg)
{
    fc_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->plan_done = done;
    j->plan_arg = arg;
    j->ref_owned = xstrdup(rq->instance);
    j->ref = j->ref_owned;
    j->dest = rq->host;
    j->cfg = s->cfg->scheduler;
    const cfg_scheduler *cs = &s->cfg->scheduler;
    /* the request's own cap is the link it will get; else the configured one */
    if (rq->options.bandwidth_mib_s > 0) {
        j->bandwidth_mib_s = rq->options.bandwidth_mib_s;
        j->bandwidth_from = "request";
    } else {
        j->bandwidth_mib_s = cs->forecast_bandwidth_mib_s;
        j->bandwidth_from = "config forecast_bandwidth_mib_s";
        j->learn = 1;
    }
    j->max_downtime_ms = rq->objectives.max_downtime_ms;
    j->deadline_s = rq->objectives.deadline_s;
    j->limit_ms = (rq->options_given & MSG_OPT_MAX_DOWNTIME) ? rq->options.max_downtime_ms : 0;
    j->allow_postcopy = rq->post_copy;
    j->after = rq->options.postcopy_after_iterations;
    j->seconds = cs->forecast_sample_s > 0 ? cs->forecast_sample_s : 1;
    dbq_submit(s->dbq, read_work, read_done, j);
}
