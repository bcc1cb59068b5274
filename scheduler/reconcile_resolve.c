/* reconcile_resolve: the operator's `migration.resolve` (issue #17; ferryctl migration resolve ID
 * --to source|destination). Only for a migration in `error`: the scheduler asks both hosts'
 * agents (job_status, with the migration's epoch, answered only by each host's own agent user)
 * and settles the migration only when libvirt on the named host says the guest runs there and
 * libvirt on the other says it does not; otherwise refused with the reason, recorded as the
 * migration's event of kind `resolve` (origin operator), nothing changed. The settling is one
 * transaction that checks again that the migration is still in error (the reconciler, or another
 * operator, may have settled it meanwhile). */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "orchreply.h"
#include "reconcile.h"
#include "sched.h"

typedef struct resolve_job {
    sched *s;
    mq_conn *c;
    mq_delivery *d;
    msg_envelope *env;
    int64_t id;
    int to_dest;
    char ids[24];
    /* read from the database */
    int found;
    char status[16], source[256], dest[256], uuid[40], ec2[32];
    int64_t epoch;
    /* the hosts' answers: [0] the named host, [1] the other */
    int asked, answered;
    int ok[2], runs[2], exists[2];
    char *err[2];
    /* the outcome */
    char *refused; /* why, NULL when accepted */
    char *proof;   /* what the hosts said */
    int settled;   /* the transaction settled it */
} resolve_job;

static const char *named(const resolve_job *j, int k)
{
    return (k == 0) == j->to_dest ? j->dest : j->source;
}

static void job_free(resolve_job *j)
{
    msg_envelope_free(j->env);
    free(j->err[0]);
    free(j->err[1]);
    free(j->refused);
    free(j->proof);
    free(j);
}

/* Replies type with body (taken) to the request's reply_to, if any. */
static void send_reply(resolve_job *j, const char *type, json_object *body)
{
    intake_reply(j->s, j->d, type, msg_envelope_id(j->env), body);
}

/* The answer and the ack; the refusal recorded as the migration's event when it exists. */
static void finish(resolve_job *j)
{
    log_fields f = {.req = msg_envelope_id(j->env), .migration = j->ids, .instance = *j->ec2 ? j->ec2 : NULL};
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(j->id));
    if (j->refused) {
        log_warn(&f, "migration.resolve of migration %s to its %s refused: %s", j->ids,
                 j->to_dest ? "destination" : "source", j->refused);
        json_object_object_add(b, "reason", json_object_new_string(j->refused));
        if (j->found) {
            _cleanup_free_ char *msg =
                xasprintf("resolve to the %s refused: %s (request %s)", j->to_dest ? "destination" : "source",
                          j->refused, msg_envelope_id(j->env));
            ledger_record_later(j->s, &f, j->id, "operator", NULL, LEDGER_NO_STATUS, "resolve", msg,
                                "record the refused resolve");
        }
        send_reply(j, "migration.resolve.refused", b);
    } else {
        log_warn(&f, "migration %s resolved by the operator: settled %s: %s", j->ids,
                 j->to_dest ? "as completed on its destination" : "back to its source", j->proof);
        json_object_object_add(b, "status", json_object_new_string(j->to_dest ? "completed" : "failed"));
        json_object_object_add(b, "host", json_object_new_string(named(j, 0)));
        send_reply(j, "migration.resolve.accepted", b);
        outbox_flush(j->s);
    }
    mq_ack(j->c, j->d);
    job_free(j);
}

/* ---- the settling, on the database worker ------------------------------------------------------- */

static int settle_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    resolve_job *j = arg;
    j->settled = 0;
    const char *p[] = {j->ids};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(
            db, &r,
            "SELECT m.status, i.task_state IS NOT NULL FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid"
            " WHERE m.id = $1::bigint FOR UPDATE OF m, i",
            1, p) < 0)
        return -1;
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "error") != 0)
        return 0; /* settled meanwhile */
    mig_status st = j->to_dest ? MIG_COMPLETED : MIG_FAILED;
    const char *sp[] = {j->ids, mig_status_str(st)};
    _cleanup_free_ char *msg =
        xasprintf("resolved by the operator (request %s): %s", msg_envelope_id(j->env), j->proof);
    if (db_exec(db, NULL,
                "UPDATE migrations SET status = $2, updated_at = now(),"
                " error = CASE WHEN $2 = 'completed' THEN NULL ELSE error END WHERE id = $1::bigint",
                2, sp) < 0 ||
        ledger_settle(db, st, j->ids, j->uuid, j->dest) < 0 ||
        ledger_record(db, j->s->name, j->id, "operator", named(j, 0), LEDGER_NO_STATUS, "resolve", msg) < 0 ||
        ledger_record(db, j->s->name, j->id, "scheduler", NULL, st, "status", msg) < 0)
        return -1;
    j->settled = 1;
    return 0;
}

static int settle_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", settle_tx, arg, NULL, err);
}

static void settle_done(void *arg, int rc, char *err)
{
    resolve_job *j = arg;
    if (rc < 0)
        j->refused = xasprintf("could not settle it: %s", err ? err : "the database worker could not run it");
    else if (!j->settled)
        j->refused = xasprintf("migration %s is no longer in error (settled meanwhile)", j->ids);
    free(err);
    finish(j);
}

/* ---- the hosts' answers ----------------------------------------------------------------------- */

typedef struct resolve_call {
    resolve_job *j;
    int k; /* 0 the named host, 1 the other */
} resolve_call;

static void decide(resolve_job *j)
{
    const char *want = named(j, 0), *other = named(j, 1);
    if (!j->ok[0] || !j->ok[1]) {
        int k = !j->ok[0] ? 0 : 1;
        j->refused = xasprintf("no proof: could not ask %s (%s): %s", named(j, k),
                               k == 0 ? "the named host" : "the other host", j->err[k] ? j->err[k] : "no answer");
    } else if (!j->runs[0]) {
        j->refused = xasprintf("no proof: libvirt on %s says the guest does not run there (%s)", want,
                               j->exists[0] ? "defined, not running" : "no such domain");
    } else if (j->runs[1]) {
        j->refused = xasprintf("no proof: libvirt says the guest runs on both %s and %s", want, other);
    } else {
        j->proof = xasprintf("libvirt on %s says the guest runs there, libvirt on %s that it does not (%s)", want,
                             other, j->exists[1] ? "defined, not running" : "no such domain");
    }
    if (j->refused) {
        finish(j);
        return;
    }
    dbq_submit(j->s->dbq, settle_work, settle_done, j);
}

static void on_answer(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)c;
    resolve_call *rc = arg;
    resolve_job *j = rc->j;
    int k = rc->k;
    free(rc);
    msg_envelope *env = NULL;
    char *perr = NULL;
    orchreply r = {0};
    if (!ok) {
        j->err[k] = xstrdup(err ? err : "no reply");
    } else if (msg_parse(reply->body, reply->len, &env, &perr) < 0 ||
               orchreply_read(ORCHREPLY_JOB_STATUS, msg_envelope_body(env), &r, &perr) < 0) {
        j->err[k] = xasprintf("its reply to job_status is refused: %s", perr);
        free(perr);
    } else if (!r.ok) {
        j->err[k] = xasprintf("job_status: %s", r.error);
    } else {
        j->ok[k] = 1;
        j->runs[k] = r.job.dom_running;
        j->exists[k] = r.job.dom_exists;
    }
    orchreply_clear(&r);
    msg_envelope_free(env);
    if (++j->answered < j->asked)
        return;
    if (j->s->stopping) {
        job_free(j);
        return;
    }
    decide(j);
}

/* job_status to both hosts, each answer taken only from its own agent. */
static void ask_hosts(resolve_job *j)
{
    sched *s = j->s;
    j->asked = 2;
    for (int k = 0; k < 2; k++) {
        const char *host = named(j, k);
        json_object *b = json_object_new_object();
        json_object_object_add(b, "migration", json_object_new_int64(j->id));
        json_object_object_add(b, "instance", json_object_new_string(j->uuid));
        json_object_object_add(b, "epoch", json_object_new_int64(j->epoch));
        _cleanup_free_ char *text = msg_build("rpc.job_status", NULL, b);
        _cleanup_free_ char *key = xasprintf("compute.%s", host);
        char **from = trust_answer_senders(&s->cfg->trust, host);
        resolve_call *rc = xcalloc(1, sizeof(*rc));
        rc->j = j;
        rc->k = k;
        char *err = NULL;
        int r = mq_rpc_call(s->mq, MQ_EXCHANGE, key, text, strlen(text), (int)s->cfg->amqp.rpc_timeout_ms,
                            (const char *const *)from, on_answer, rc, &err);
        trust_list_free(from);
        if (r < 0) {
            /* answered at once as a failure (the call's callback is not run) */
            free(rc);
            j->err[k] = err ? err : xstrdup("could not send job_status");
            if (++j->answered == j->asked)
                decide(j);
        }
    }
}

/* ---- the migration read, on the database worker ------------------------------------------------ */

static int read_work(db_conn *db, void *arg, char **err)
{
    resolve_job *j = arg;
    const char *p[] = {j->ids};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT m.status, m.source_host, coalesce(m.dest_host, ''), m.instance_uuid::text, i.ec2_id, m.epoch"
                " FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid WHERE m.id = $1::bigint",
                1, p) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    if (PQntuples(r) == 1) {
        j->found = 1;
        strlcpy_f(j->status, PQgetvalue(r, 0, 0), sizeof(j->status));
        strlcpy_f(j->source, PQgetvalue(r, 0, 1), sizeof(j->source));
        strlcpy_f(j->dest, PQgetvalue(r, 0, 2), sizeof(j->dest));
        strlcpy_f(j->uuid, PQgetvalue(r, 0, 3), sizeof(j->uuid));
        strlcpy_f(j->ec2, PQgetvalue(r, 0, 4), sizeof(j->ec2));
        j->epoch = atoll(PQgetvalue(r, 0, 5));
    }
    return 0;
}

static void read_done(void *arg, int rc, char *err)
{
    resolve_job *j = arg;
    if (rc < 0)
        j->refused =
            xasprintf("could not read migration %s: %s", j->ids, err ? err : "the database worker could not run it");
    else if (!j->found)
        j->refused = xasprintf("no migration %s", j->ids);
    else if (strcmp(j->status, "error") != 0)
        j->refused = xasprintf("migration %s is %s: resolve applies to a migration in error", j->ids, j->status);
    else if (!*j->dest)
        j->refused = xasprintf("migration %s has no destination", j->ids);
    free(err);
    if (j->refused || j->s->stopping) {
        finish(j);
        return;
    }
    ask_hosts(j);
}

void reconcile_resolve(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env)
{
    json_object *b = msg_envelope_body(env), *v = NULL, *to = NULL;
    resolve_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->c = c;
    j->d = d;
    j->env = env;
    if (!json_object_object_get_ex(b, "migration", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) <= 0)
        j->refused = xstrdup("migration.resolve: body.migration must be a positive integer (the migration id)");
    else if (!json_object_object_get_ex(b, "to", &to) || !json_object_is_type(to, json_type_string) ||
             (strcmp(json_object_get_string(to), "source") != 0 &&
              strcmp(json_object_get_string(to), "destination") != 0))
        j->refused = xstrdup("migration.resolve: body.to must be \"source\" or \"destination\"");
    if (j->refused) {
        log_fields f = {.req = msg_envelope_id(env)};
        log_warn(&f, "request refused: %s", j->refused);
        json_object *rb = json_object_new_object();
        json_object_object_add(rb, "reason", json_object_new_string(j->refused));
        send_reply(j, "migration.resolve.refused", rb);
        mq_dead_letter(c, d, j->refused);
        job_free(j);
        return;
    }
    j->id = json_object_get_int64(v);
    j->to_dest = strcmp(json_object_get_string(to), "destination") == 0;
    snprintf(j->ids, sizeof(j->ids), "%lld", (long long)j->id);
    dbq_submit(s->dbq, read_work, read_done, j);
}
