/* api: the reads of scheduler/API.md (hosts, instances, migrations, a migration's events),
 * built by PostgreSQL as JSON, shared by the HTTP API and the read RPCs that ferryctl calls
 * on ferry.scheduler.rpc. */
#include <stdlib.h>
#include <string.h>

#include "orchreply.h"
#include "policy.h"
#include "sched.h"

/* Runs sql (one row, one column of JSON) and parses it; NULL with *err when it fails. */
static json_object *json_query(db_conn *db, const char *sql, int n, const char *const *p, char **err)
{
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, sql, n, p) < 0) {
        *err = xasprintf("database: %s", db_error(db));
        return NULL;
    }
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        *err = xstrdup("database: no answer");
        return NULL;
    }
    json_object *o = json_tokener_parse(PQgetvalue(r, 0, 0));
    if (!o)
        *err = xstrdup("database: the answer is not JSON");
    return o;
}

#define HOSTS_SQL                                                                                                      \
    "SELECT coalesce(json_agg(x ORDER BY x.name), '[]') FROM ("                                                        \
    " SELECT h.name, h.state, h.state_reason, h.address, h.host_group,"                                                \
    "  coalesce(h.last_heartbeat > now() - make_interval(secs => $1::int), false) AS alive,"                           \
    "  extract(epoch FROM now() - h.last_heartbeat)::bigint AS heartbeat_age_s,"                                       \
    "  h.arch, h.cpu_model, h.hypervisor, h.postcopy, h.vcpus, h.memory_mb, h.disk_gb,"                                \
    "  h.capacity_vcpus, h.capacity_memory_mb, h.capacity_disk_gb, h.used_vcpus, h.used_memory_mb, h.used_disk_gb,"    \
    "  (SELECT count(*) FROM instances i WHERE i.host = h.name AND i.vm_state <> 'deleted') AS instances,"             \
    "  (SELECT count(*) FROM migrations m WHERE m.finished_at IS NULL AND m.status <> 'queued'"                        \
    "    AND (m.source_host = h.name OR m.dest_host = h.name)) AS active_migrations"                                   \
    " FROM hosts h WHERE ($2::text IS NULL OR h.name = $2)) x"

static json_object *read_hosts(db_conn *db, int64_t max_age_s, char **err)
{
    char age[24];
    snprintf(age, sizeof(age), "%lld", (long long)max_age_s);
    const char *p[] = {age, NULL};
    json_object *a = json_query(db, HOSTS_SQL, 2, p, err);
    if (!a)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "hosts", a);
    return o;
}

static json_object *read_host(db_conn *db, int64_t max_age_s, const char *name, int *found, char **err)
{
    char age[24];
    snprintf(age, sizeof(age), "%lld", (long long)max_age_s);
    const char *p[] = {age, name};
    json_object *a = json_query(db, HOSTS_SQL, 2, p, err);
    if (!a)
        return NULL;
    *found = json_object_array_length(a) == 1;
    if (!*found) {
        json_object_put(a);
        *err = xasprintf("no host %s", name);
        return NULL;
    }
    json_object *h = json_object_get(json_object_array_get_idx(a, 0));
    json_object_put(a);
    const char *q[] = {name};
    json_object *projects = json_query(db,
                                       "SELECT coalesce(json_agg(x ORDER BY x.project), '[]') FROM ("
                                       " SELECT i.project, sum(a.vcpus) AS vcpus, sum(a.memory_mb) AS memory_mb,"
                                       "  sum(a.disk_gb) AS disk_gb"
                                       " FROM allocations a JOIN instances i ON i.uuid = a.instance_uuid"
                                       " WHERE a.host = $1 GROUP BY i.project) x",
                                       1, q, err);
    if (!projects) {
        json_object_put(h);
        return NULL;
    }
    json_object_object_add(h, "projects", projects);
    return h;
}

static json_object *write_host_state(db_conn *db, int64_t max_age_s, const char *name, const char *state,
                                     const char *reason, int *found, char **err)
{
    const char *p[] = {name, state, reason && *reason ? reason : NULL};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "UPDATE hosts SET state = $2, state_reason = CASE WHEN $2 = 'enabled' THEN NULL ELSE $3 END,"
                " updated_at = now() WHERE name = $1 RETURNING name",
                3, p) < 0) {
        *err = xasprintf("database: %s", db_error(db));
        *found = 1;
        return NULL;
    }
    if (PQntuples(r) == 0) {
        *found = 0;
        *err = xasprintf("no host %s", name);
        return NULL;
    }
    log_fields f = {.host = name};
    log_warn(&f, "host %s is now %s%s%s (operator)", name, state, reason && *reason ? ": " : "", reason ? reason : "");
    return read_host(db, max_age_s, name, found, err);
}

/* An operator's host group for a host (NULL: none): the policies' host_group selector. */
static json_object *write_host_group(db_conn *db, int64_t max_age_s, const char *name, const char *group, int *found,
                                     char **err)
{
    const char *p[] = {name, group};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, "UPDATE hosts SET host_group = $2, updated_at = now() WHERE name = $1 RETURNING name", 2, p) <
        0) {
        *err = xasprintf("database: %s", db_error(db));
        *found = 1;
        return NULL;
    }
    if (PQntuples(r) == 0) {
        *found = 0;
        *err = xasprintf("no host %s", name);
        return NULL;
    }
    log_fields f = {.host = name};
    log_info(&f, "host %s is now in %s%s (operator)", name, group ? "host group " : "no host group",
             group ? group : "");
    return read_host(db, max_age_s, name, found, err);
}

static json_object *read_instances(db_conn *db, const char *host, char **err)
{
    const char *p[] = {host && *host ? host : NULL};
    json_object *a = json_query(
        db,
        "SELECT coalesce(json_agg(x ORDER BY x.name, x.id), '[]') FROM ("
        " SELECT uuid, ec2_id AS id, name, project, host, vm_state, task_state, vcpus, memory_mb,"
        "  disk_gb, created_at, updated_at FROM instances WHERE vm_state <> 'deleted' AND ($1::text IS NULL OR host = $1)) x",
        1, p, err);
    if (!a)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "instances", a);
    return o;
}

#define MIGRATIONS_SQL                                                                                                 \
    "SELECT coalesce(json_agg(x ORDER BY x.id DESC), '[]') FROM ("                                                     \
    " SELECT m.id, m.request_id AS request, m.instance_uuid AS instance, i.ec2_id AS instance_id, i.name,"             \
    "  m.source_host AS source, m.dest_host AS dest, m.status, m.post_copy, m.postcopy_active, m.auto_converge,"       \
    "  m.block_migration, m.bandwidth_mib_s, m.memory_total_bytes, m.memory_processed_bytes,"                          \
    "  m.memory_remaining_bytes, m.iteration, m.downtime_ms, m.error, m.owner, m.created_at, m.started_at,"            \
    "  m.finished_at, m.updated_at, m.disk_total_bytes, m.disk_processed_bytes, m.disk_remaining_bytes, i.project,"    \
    "  m.dirty_rate_bytes_s, m.transfer_bytes_s, m.cpu_throttle_pct, m.settings_verified, m.parallel_connections,"     \
    "  m.xbzrle_cache_mib,"                                                                                            \
    "  (extract(epoch FROM coalesce(m.finished_at, now()) - m.started_at) * 1000)::bigint AS duration_ms,"             \
    "  m.forecast_mode, m.forecast_converges, m.forecast_duration_ms, m.forecast_downtime_ms, m.forecast_bytes,"       \
    "  m.forecast_dirty_mib_s, m.forecast_bandwidth_mib_s, m.objective_max_downtime_ms, m.objective_deadline_s,"       \
    "  m.objective_plan, m.receipt, m.policy, m.completion_timeout_s, m.completion_action,"                            \
    "  CASE WHEN m.status = 'completed' AND m.forecast_duration_ms > 0 THEN round(100.0 * ((extract(epoch FROM"        \
    "   m.finished_at - m.started_at) * 1000) - m.forecast_duration_ms) / m.forecast_duration_ms, 1) END"              \
    "   AS forecast_error_pct"                                                                                         \
    " FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid"                                                  \
    " WHERE ($1::text IS NULL OR m.status = $1) AND ($3::bigint IS NULL OR m.id = $3)"                                 \
    " ORDER BY m.id DESC LIMIT $2::int) x"

static json_object *read_migrations(db_conn *db, const char *status, int limit, char **err)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit > 0 && limit <= 10000 ? limit : 100);
    const char *p[] = {status && *status ? status : NULL, lim, NULL};
    json_object *a = json_query(db, MIGRATIONS_SQL, 3, p, err);
    if (!a)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "migrations", a);
    return o;
}

static json_object *read_migration(db_conn *db, int64_t id, int *found, char **err)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    const char *p[] = {NULL, "1", ids};
    json_object *a = json_query(db, MIGRATIONS_SQL, 3, p, err);
    if (!a) {
        *found = 1;
        return NULL;
    }
    *found = json_object_array_length(a) == 1;
    if (!*found) {
        json_object_put(a);
        *err = xasprintf("no migration %lld", (long long)id);
        return NULL;
    }
    json_object *m = json_object_get(json_object_array_get_idx(a, 0));
    json_object_put(a);
    const char *q[] = {ids};
    json_object *ev = json_query(db,
                                 "SELECT coalesce(json_agg(x ORDER BY x.id), '[]') FROM ("
                                 " SELECT id, at, origin, host, status, kind, message FROM migration_events"
                                 " WHERE migration_id = $1::bigint) x",
                                 1, q, err);
    if (!ev) {
        json_object_put(m);
        return NULL;
    }
    json_object_object_add(m, "events", ev);
    return m;
}

const char *api_instance_where(msg_instance_kind k)
{
    return k == MSG_INSTANCE_UUID ? "uuid = $1::uuid" : k == MSG_INSTANCE_EC2 ? "ec2_id = $1" : "name = $1";
}

static int resolve_instance(db_conn *db, const char *ref, char **uuid, char **ec2, char **err)
{
    _cleanup_free_ char *sql =
        xasprintf("SELECT uuid::text, ec2_id FROM instances WHERE %s AND vm_state <> 'deleted' LIMIT 2",
                  api_instance_where(msg_instance_classify(ref)));
    const char *p[] = {ref};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, sql, 1, p) < 0) {
        *err = xasprintf("database: %s", db_error(db));
        return -1;
    }
    if (PQntuples(r) == 0) {
        *err = xasprintf("no instance %s", ref);
        return 0;
    }
    if (PQntuples(r) > 1) {
        *err = xasprintf("instance name %s is ambiguous: use its uuid or i-xxxxxxxx id", ref);
        return 2;
    }
    *uuid = xstrdup(PQgetvalue(r, 0, 0));
    *ec2 = xstrdup(PQgetvalue(r, 0, 1));
    return 1;
}

/* ---- the reads as database jobs ------------------------------------------------------------ */

api_read *api_read_new(api_what what)
{
    api_read *r = xcalloc(1, sizeof(*r));
    r->what = what;
    r->found = 1;
    return r;
}

static void api_read_free(api_read *r)
{
    free(r->name);
    free(r->state);
    free(r->reason);
    free(r->filter);
    json_object_put(r->out);
    free(r->uuid);
    free(r->ec2);
    free(r->err);
    free(r);
}

/* On the worker: the read itself. */
static int read_work(db_conn *db, void *arg, char **err)
{
    (void)err;
    api_read *r = arg;
    switch (r->what) {
    case API_HOSTS:
        r->out = read_hosts(db, r->max_age_s, &r->err);
        break;
    case API_HOST:
        r->out = read_host(db, r->max_age_s, r->name, &r->found, &r->err);
        break;
    case API_HOST_SET_STATE:
        r->out = write_host_state(db, r->max_age_s, r->name, r->state, r->reason, &r->found, &r->err);
        break;
    case API_HOST_SET_GROUP:
        r->out = write_host_group(db, r->max_age_s, r->name, r->state, &r->found, &r->err);
        break;
    case API_INSTANCES:
        r->out = read_instances(db, r->filter, &r->err);
        break;
    case API_MIGRATIONS:
        r->out = read_migrations(db, r->filter, r->limit, &r->err);
        break;
    case API_MIGRATION:
        r->out = read_migration(db, r->id, &r->found, &r->err);
        break;
    case API_RESOLVE_INSTANCE:
        r->resolved = resolve_instance(db, r->name, &r->uuid, &r->ec2, &r->err);
        break;
    }
    return 0;
}

/* On the loop: the caller's continuation; a job the worker could not run (no connection,
 * stopping) failed as a database error does. */
static void read_done(void *arg, int rc, char *err)
{
    api_read *r = arg;
    if (rc < 0) {
        free(r->err);
        r->err = xasprintf("database: %s", err ? err : "the database worker could not run the read");
        r->found = 1;
        r->resolved = -1;
    }
    free(err);
    r->done(r->s, r, r->arg);
    api_read_free(r);
}

void api_submit(sched *s, api_read *r, api_done_fn done, void *arg)
{
    r->max_age_s = s->cfg->scheduler.heartbeat_max_age_s; /* the config is the loop's */
    r->done = done;
    r->arg = arg;
    r->s = s;
    dbq_submit(s->dbq, read_work, read_done, r);
}

/* ---- the read RPCs on ferry.scheduler.rpc --------------------------------------------------- */

static void rpc_answer(mq_conn *c, mq_delivery *d, const char *req, json_object *body, const char *code,
                       const char *err)
{
    if (!body) {
        body = json_object_new_object();
        json_object_object_add(body, "ok", json_object_new_boolean(0));
        json_object_object_add(body, "code", json_object_new_string(code));
        json_object_object_add(body, "error", json_object_new_string(err));
    } else {
        json_object_object_add(body, "ok", json_object_new_boolean(1));
    }
    _cleanup_free_ char *text = msg_build(code ? "rpc.error" : "rpc.reply", req, body);
    char *e = NULL;
    if (mq_rpc_reply(c, d, text, strlen(text), &e) < 0) {
        log_warn(NULL, "could not answer a read RPC: %s", e);
        free(e);
    }
}

/* The fields of the read RPCs' bodies (orchreply's typed readers): strings without control
 * bytes and within bounds, integers within their ranges; a null or a wrong type is refused. */
#define API_MAX_NAME 255    /* a host name */
#define API_MAX_REASON 1024 /* a host's state reason (the database and the log) */
#define API_MAX_WORD 32     /* a state or status word */

/* A read RPC waiting for its read: the delivery to answer and the method. */
typedef struct rpc_wait {
    mq_conn *c;
    mq_delivery *d;
    char *req, *type;
} rpc_wait;

/* The answer of a read RPC (log and reply, and the delivery finished), from out or code/err. */
static void rpc_finish(mq_conn *c, mq_delivery *d, const char *req, const char *type, json_object *out,
                       const char *code, int found, const char *err)
{
    if (!out && !code)
        code = found ? "internal" : "not_found";
    if (code && strcmp(code, "not_found") != 0)
        log_warn(&(log_fields){.req = req}, "read RPC %s failed: %s", type, err);
    rpc_answer(c, d, req, out, code, err);
}

static void rpc_done(sched *s, api_read *r, void *arg)
{
    (void)s;
    rpc_wait *w = arg;
    json_object *out = r->out;
    r->out = NULL; /* rpc_answer takes it */
    rpc_finish(w->c, w->d, w->req, w->type, out, NULL, r->found, r->err);
    free(w->req);
    free(w->type);
    free(w);
}

void api_on_rpc(mq_conn *c, mq_delivery *d, void *arg)
{
    sched *s = arg;
    const mq_message *m = mq_delivery_message(d);
    msg_envelope *env = NULL;
    char *err = NULL;
    if (!trust_may_request(&s->cfg->trust, m->user_id, &err)) {
        log_warn(NULL, "refused a read RPC on " SCHED_RPC_QUEUE ": %s", err);
        mq_dead_letter(c, d, err);
        free(err);
        return;
    }
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        log_warn(NULL, "malformed read RPC on " SCHED_RPC_QUEUE ": %s", err);
        if (m->reply_to && *m->reply_to)
            rpc_answer(c, d, NULL, NULL, "invalid", err);
        else
            mq_dead_letter(c, d, err);
        free(err);
        return;
    }
    const char *type = msg_envelope_type(env), *req = msg_envelope_id(env);
    json_object *b = msg_envelope_body(env);
    const char *code = NULL;
    api_read *r = NULL;
    if (!s->db_ready) {
        code = "unavailable";
        err = xstrdup("the scheduler has no database connection yet");
    } else if (strcmp(type, "rpc.host_list") == 0) {
        r = api_read_new(API_HOSTS);
    } else if (strcmp(type, "rpc.host_show") == 0 || strcmp(type, "rpc.host_set_state") == 0) {
        const char *h = NULL, *st = NULL, *reason = NULL;
        int set = strcmp(type, "rpc.host_set_state") == 0;
        if (orchreply_get_text(b, "body.", "host", 1, API_MAX_NAME, &h, &err) < 0 ||
            (set && (orchreply_get_text(b, "body.", "state", 1, API_MAX_WORD, &st, &err) < 0 ||
                     orchreply_get_text(b, "body.", "reason", 0, API_MAX_REASON, &reason, &err) < 0))) {
            code = "invalid";
        } else if (!set) {
            r = api_read_new(API_HOST);
            r->name = xstrdup(h);
        } else if (strcmp(st, "enabled") != 0 && strcmp(st, "disabled") != 0 && strcmp(st, "maintenance") != 0) {
            code = "invalid";
            err = xstrdup("body.state: enabled, disabled or maintenance");
        } else {
            r = api_read_new(API_HOST_SET_STATE);
            r->name = xstrdup(h);
            r->state = xstrdup(st);
            r->reason = reason ? xstrdup(reason) : NULL;
        }
    } else if (strcmp(type, "rpc.host_set_group") == 0) {
        /* "group": a name, or null for none */
        const char *h = NULL, *g = NULL;
        json_object *gv = NULL;
        if (orchreply_get_text(b, "body.", "host", 1, API_MAX_NAME, &h, &err) < 0) {
            code = "invalid";
        } else if (!json_object_object_get_ex(b, "group", &gv)) {
            code = "invalid";
            err = xstrdup("body.group: missing (a host group's name, or null for none)");
        } else if (gv && (orchreply_get_text(b, "body.", "group", 1, 63, &g, &err) < 0 ||
                          policy_group_check("body.group", g, &err) < 0)) {
            code = "invalid";
        } else {
            r = api_read_new(API_HOST_SET_GROUP);
            r->name = xstrdup(h);
            r->state = g ? xstrdup(g) : NULL;
        }
    } else if (strcmp(type, "rpc.instance_list") == 0) {
        const char *h = NULL;
        if (orchreply_get_text(b, "body.", "host", 0, API_MAX_NAME, &h, &err) < 0) {
            code = "invalid";
        } else {
            r = api_read_new(API_INSTANCES);
            r->filter = h && *h ? xstrdup(h) : NULL;
        }
    } else if (strcmp(type, "rpc.migration_list") == 0) {
        const char *st = NULL;
        int64_t limit = 100;
        if (orchreply_get_int(b, "body.", "limit", 0, 1, 10000, &limit, &err) < 0 ||
            orchreply_get_text(b, "body.", "status", 0, API_MAX_WORD, &st, &err) < 0) {
            code = "invalid";
        } else {
            r = api_read_new(API_MIGRATIONS);
            r->limit = (int)limit;
            r->filter = st && *st ? xstrdup(st) : NULL;
        }
    } else if (strcmp(type, "rpc.migration_show") == 0) {
        int64_t id = 0;
        if (orchreply_get_int(b, "body.", "migration", 1, 1, INT64_MAX, &id, &err) < 0) {
            code = "invalid";
        } else {
            r = api_read_new(API_MIGRATION);
            r->id = id;
        }
    } else {
        code = "invalid";
        err = xasprintf("unknown method '%s'", type);
    }
    if (r) {
        /* answered when the database worker has read it; d waits until then */
        rpc_wait *w = xcalloc(1, sizeof(*w));
        w->c = c;
        w->d = d;
        w->req = req ? xstrdup(req) : NULL;
        w->type = xstrdup(type);
        api_submit(s, r, rpc_done, w);
    } else {
        rpc_finish(c, d, req, type, NULL, code, 1, err);
    }
    free(err);
    msg_envelope_free(env);
}
