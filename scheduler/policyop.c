/* policyop: the operator's migration policies (issue #18; ferryctl policy list|show|set|delete):
 * policy.set (policy.c reads it) upserts one, policy.delete removes one, policy.list answers
 * them all, each a transaction on the database worker answered <type>.accepted (policy.list:
 * policy.list.result) or <type>.refused with the reason. Requests already in flight keep the
 * policy they matched; intake.c applies the matching one to each new request. */
#include <stdlib.h>
#include <string.h>

#include "orchreply.h"
#include "policy.h"
#include "sched.h"

typedef enum { POL_SET, POL_DELETE, POL_LIST } pol_op;

typedef struct pol_job {
    sched *s;
    mq_conn *c;
    mq_delivery *d;
    msg_envelope *env;
    pol_op op;
    policy p;         /* POL_SET: strings borrowed from env */
    const char *name; /* POL_DELETE */
    char sender[128]; /* who asked (the AMQP user_id, or "operator") */
    /* results */
    char *refused;
    json_object *list; /* POL_LIST */
    int found;         /* POL_DELETE: a row went; POL_SET: 1 new, 0 updated */
} pol_job;

static const char *const op_type[] = {"policy.set", "policy.delete", "policy.list"};

static void job_free(pol_job *j)
{
    msg_envelope_free(j->env);
    free(j->refused);
    json_object_put(j->list);
    free(j);
}

/* an int of the policy as a statement parameter: NULL when not set (-1) */
static const char *opt_int(char *buf, size_t n, int v)
{
    if (v < 0)
        return NULL;
    snprintf(buf, n, "%d", v);
    return buf;
}

static const char *opt_bool(int v)
{
    return v < 0 ? NULL : v ? "true" : "false";
}

/* the refusal of an operator's change to a policy the configuration file defines */
static char *config_owned(const char *name)
{
    return xasprintf("policy %s is defined in the scheduler's configuration file ([policy %s]): change it there", name,
                     name);
}

int policyop_upsert(db_conn *db, const policy *q, const char *by, int from_config, int *created, char **refused)
{
    char pr[16], a[16], b[16], c[16], d[16], e[16], f[16], g[16], h[16];
    snprintf(pr, sizeof(pr), "%d", q->priority);
    const char *source = from_config ? "config" : "operator";
    const char *p[] = {q->name,
                       pr,
                       q->project,
                       q->instance_glob,
                       q->host_glob,
                       opt_bool(q->post_copy),
                       opt_bool(q->auto_converge),
                       opt_int(a, sizeof(a), q->postcopy_after_iterations),
                       opt_int(b, sizeof(b), q->bandwidth_mib_s),
                       opt_int(c, sizeof(c), q->max_downtime_ms),
                       opt_int(d, sizeof(d), q->completion_timeout_s),
                       opt_int(e, sizeof(e), q->objective_max_downtime_ms),
                       opt_int(f, sizeof(f), q->objective_deadline_s),
                       by,
                       q->host_group,
                       q->completion_action < 0 ? NULL : msg_completion_action_str(q->completion_action),
                       source,
                       opt_int(g, sizeof(g), q->parallel_connections),
                       opt_int(h, sizeof(h), q->xbzrle_cache_mib)};
    _cleanup_pq_ PGresult *r = NULL;
    /* the whole policy is what the request says: a field it leaves out is unset. An operator's
     * set leaves a policy of the configuration file alone (no row back); the file's own
     * replaces any */
    if (db_exec(db, &r,
                "INSERT INTO migration_policies (name, priority, project, instance_glob, host_glob, post_copy,"
                " auto_converge, postcopy_after_iterations, bandwidth_mib_s, max_downtime_ms, completion_timeout_s,"
                " objective_max_downtime_ms, objective_deadline_s, updated_by, host_group, completion_action, source,"
                " parallel_connections, xbzrle_cache_mib)"
                " VALUES ($1, $2::int, $3, $4, $5, $6::boolean, $7::boolean, $8::int, $9::int, $10::int, $11::int,"
                "  $12::int, $13::int, $14, $15, $16, $17, $18::int, $19::int)"
                " ON CONFLICT (name) DO UPDATE SET priority = EXCLUDED.priority, project = EXCLUDED.project,"
                "  instance_glob = EXCLUDED.instance_glob, host_glob = EXCLUDED.host_glob,"
                "  host_group = EXCLUDED.host_group, post_copy = EXCLUDED.post_copy,"
                "  auto_converge = EXCLUDED.auto_converge,"
                "  postcopy_after_iterations = EXCLUDED.postcopy_after_iterations,"
                "  bandwidth_mib_s = EXCLUDED.bandwidth_mib_s, max_downtime_ms = EXCLUDED.max_downtime_ms,"
                "  completion_timeout_s = EXCLUDED.completion_timeout_s,"
                "  completion_action = EXCLUDED.completion_action,"
                "  parallel_connections = EXCLUDED.parallel_connections, xbzrle_cache_mib = EXCLUDED.xbzrle_cache_mib,"
                "  objective_max_downtime_ms = EXCLUDED.objective_max_downtime_ms,"
                "  objective_deadline_s = EXCLUDED.objective_deadline_s, updated_at = now(),"
                "  updated_by = EXCLUDED.updated_by, source = EXCLUDED.source"
                "  WHERE EXCLUDED.source = 'config' OR migration_policies.source = 'operator'"
                " RETURNING (xmax = 0)",
                19, p) < 0)
        return -1;
    if (PQntuples(r) != 1) {
        *refused = config_owned(q->name);
        return 0;
    }
    *created = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    return 0;
}

int policyop_sync_config(db_conn *db, json_object *bodies, char **err)
{
    size_t n = bodies ? json_object_array_length(bodies) : 0;
    json_object *names = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        policy q;
        char *why = NULL;
        int created = 0;
        if (policy_read(json_object_array_get_idx(bodies, i), &q, &why) < 0 ||
            policyop_upsert(db, &q, "configuration file", 1, &created, &why) < 0) {
            *err = why ? why : xasprintf("could not write policy %s: %s", q.name, db_error(db));
            json_object_put(names);
            return -1;
        }
        json_object_array_add(names, json_object_new_string(q.name));
    }
    /* a policy the file had and has no more goes */
    const char *p[] = {json_object_to_json_string_ext(names, JSON_C_TO_STRING_PLAIN)};
    _cleanup_pq_ PGresult *r = NULL;
    int rc = db_exec(db, &r,
                     "DELETE FROM migration_policies WHERE source = 'config'"
                     " AND name NOT IN (SELECT jsonb_array_elements_text($1::jsonb)) RETURNING name",
                     1, p);
    json_object_put(names);
    if (rc < 0) {
        *err = xasprintf("could not remove the configuration's old policies: %s", db_error(db));
        return -1;
    }
    if (n || PQntuples(r))
        log_info(NULL, "policies of the configuration file: %zu written, %d removed", n, PQntuples(r));
    return 0;
}

static int pol_tx(db_conn *db, void *arg, char **err)
{
    pol_job *j = arg;
    free(j->refused); /* a transaction tried again decides again */
    j->refused = NULL;
    if (j->op == POL_LIST) {
        _cleanup_pq_ PGresult *r = NULL;
        if (db_exec(
                db, &r,
                "SELECT coalesce(json_agg(p ORDER BY p.priority DESC, p.name), '[]') FROM ("
                " SELECT name, priority, project, instance_glob AS instance, host_glob AS host, host_group, post_copy,"
                "  auto_converge, postcopy_after_iterations, bandwidth_mib_s, max_downtime_ms, completion_timeout_s,"
                "  completion_action, parallel_connections, xbzrle_cache_mib, objective_max_downtime_ms,"
                "  objective_deadline_s, source, updated_at, updated_by,"
                "  (SELECT count(*) FROM migrations m WHERE m.policy = x.name) AS migrations"
                " FROM migration_policies x) p",
                0, NULL) < 0) {
            *err = xstrdup(db_error(db));
            return -1;
        }
        json_object_put(j->list);
        j->list = json_tokener_parse(PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "[]");
        return 0;
    }
    if (j->op == POL_DELETE) {
        const char *p[] = {j->name};
        _cleanup_pq_ PGresult *r = NULL;
        if (db_exec(db, &r,
                    "WITH d AS (DELETE FROM migration_policies WHERE name = $1 AND source = 'operator' RETURNING name)"
                    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM migration_policies"
                    "  WHERE name = $1 AND source = 'config')",
                    1, p) < 0) {
            *err = xstrdup(db_error(db));
            return -1;
        }
        j->found = atoi(PQgetvalue(r, 0, 0));
        if (atoi(PQgetvalue(r, 0, 1)))
            j->refused = config_owned(j->name);
        return 0;
    }
    int rc = policyop_upsert(db, &j->p, j->sender, 0, &j->found, &j->refused);
    if (rc < 0)
        *err = xstrdup(db_error(db));
    return rc;
}

static int pol_work(db_conn *db, void *arg, char **err)
{
    return db_tx(db, "READ COMMITTED", pol_tx, arg, NULL, err);
}

static void reply_and_free(pol_job *j, json_object *body, const char *outcome)
{
    _cleanup_free_ char *type = xasprintf("%s.%s", op_type[j->op], outcome);
    intake_reply(j->s, j->d, type, msg_envelope_id(j->env), body);
    mq_ack(j->c, j->d);
    job_free(j);
}

static void pol_done(void *arg, int rc, char *err)
{
    pol_job *j = arg;
    log_fields f = {.req = msg_envelope_id(j->env)};
    json_object *b = json_object_new_object();
    if (rc < 0) {
        j->refused = xasprintf("the database refused it: %s", err ? err : "no answer");
        log_warn(&f, "%s from %s refused: %s", op_type[j->op], j->sender, j->refused);
        json_object_object_add(b, "reason", json_object_new_string(j->refused));
        free(err);
        reply_and_free(j, b, "refused");
        return;
    }
    free(err);
    if (j->refused) {
        log_warn(&f, "%s from %s refused: %s", op_type[j->op], j->sender, j->refused);
        json_object_object_add(b, "reason", json_object_new_string(j->refused));
        reply_and_free(j, b, "refused");
        return;
    }
    if (j->op == POL_LIST) {
        json_object_object_add(b, "policies", json_object_get(j->list ? j->list : json_object_new_array()));
        reply_and_free(j, b, "result");
        return;
    }
    if (j->op == POL_DELETE && !j->found) {
        j->refused = xasprintf("no policy %s", j->name);
        json_object_object_add(b, "reason", json_object_new_string(j->refused));
        reply_and_free(j, b, "refused");
        return;
    }
    const char *name = j->op == POL_SET ? j->p.name : j->name;
    log_info(&f, "policy %s %s by %s", name,
             j->op == POL_DELETE ? "deleted"
             : j->found          ? "created"
                                 : "updated",
             j->sender);
    json_object_object_add(b, "name", json_object_new_string(name));
    if (j->op == POL_SET)
        json_object_object_add(b, "created", json_object_new_boolean(j->found));
    reply_and_free(j, b, "accepted");
}

void policyop_on_request(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env)
{
    pol_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->c = c;
    j->d = d;
    j->env = env;
    const char *type = msg_envelope_type(env);
    j->op = strcmp(type, "policy.set") == 0 ? POL_SET : strcmp(type, "policy.delete") == 0 ? POL_DELETE : POL_LIST;
    const mq_message *m = mq_delivery_message(d);
    snprintf(j->sender, sizeof(j->sender), "%s", m->user_id && *m->user_id ? m->user_id : "operator");
    json_object *b = msg_envelope_body(env);
    char *why = NULL;
    if (j->op == POL_SET && policy_read(b, &j->p, &why) < 0)
        j->refused = why;
    else if (j->op == POL_DELETE && (orchreply_get_text(b, "body.", "name", 1, 63, &j->name, &why) < 0 ||
                                     policy_name_check(j->name, &why) < 0))
        j->refused = why;
    if (j->refused) {
        intake_refuse_body(s, c, d, env, j->sender, j->refused);
        job_free(j);
        return;
    }
    dbq_submit(s->dbq, pol_work, pol_done, j);
}
