/* http_action: the HTTP requests that a replica decides: each is published on ferry.scheduler
 * as the request contract and answered when a replica accepted or refused it (the
 * OpenStack-compatible os-migrateLive, the operator's abort, force-complete and resolve). */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "http_priv.h"

/* ---- requests waiting for a replica's answer over AMQP -------------------------------------- */

typedef struct waiting {
    sched *s;
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
    char kind[32]; /* "migrate", "abort", "force-complete", "resolve" */
    char request_id[40];
    char *uuid, *ec2;
    int nova;    /* Nova's API (nova.c): 202 with an empty body, the migration id in a header */
    int ok_code; /* the answer's code when not refused (0: 202) */
} waiting;

static void waiting_free(waiting *w)
{
    free(w->uuid);
    free(w->ec2);
    free(w);
}

static void on_client_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    waiting *w = arg;
    w->req = NULL; /* libevent frees the request: the answer has nowhere to go */
}

static void on_answer(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)c;
    waiting *w = arg;
    if (!w->req) {
        waiting_free(w);
        return;
    }
    evhttp_connection_set_closecb(w->conn, NULL, NULL);
    struct evhttp_request *req = w->req;
    if (!ok) {
        http_send_error(req, 504, "no scheduler answered the %s request %s: %s", w->kind, w->request_id, err);
        waiting_free(w);
        return;
    }
    msg_envelope *env = NULL;
    char *perr = NULL;
    if (msg_parse(reply->body, reply->len, &env, &perr) < 0) {
        http_send_error(req, 502, "the scheduler's answer is not valid: %s", perr);
        free(perr);
        waiting_free(w);
        return;
    }
    const char *type = msg_envelope_type(env);
    json_object *b = msg_envelope_body(env), *v;
    size_t tl = strlen(type);
    if (tl > 8 && strcmp(type + tl - 8, ".refused") == 0) {
        const char *why = json_object_object_get_ex(b, "reason", &v) ? json_object_get_string(v) : "refused";
        json_object *missing = NULL;
        int gone = json_object_object_get_ex(b, "missing", &missing) && json_object_get_boolean(missing);
        http_send_error(
            req, gone || strncmp(why, "no instance ", 12) == 0 || strncmp(why, "no migration ", 13) == 0 ? 404 : 409,
            "%s", why);
    } else if (w->nova) {
        json_object *mid = NULL;
        if (json_object_object_get_ex(b, "migration", &mid) && json_object_is_type(mid, json_type_int)) {
            char t[24];
            snprintf(t, sizeof(t), "%lld", (long long)json_object_get_int64(mid));
            evhttp_add_header(evhttp_request_get_output_headers(req), "X-Ferry-Migration-Id", t);
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Ferry-Request-Id", w->request_id);
        evhttp_send_reply(req, 202, "Accepted", NULL);
    } else {
        json_object *o = json_object_new_object();
        json_object_object_foreach(b, k, val) json_object_object_add(o, k, json_object_get(val));
        json_object_object_add(o, "request", json_object_new_string(w->request_id));
        if (w->uuid)
            json_object_object_add(o, "instance", json_object_new_string(w->uuid));
        if (w->ec2)
            json_object_object_add(o, "instance_id", json_object_new_string(w->ec2));
        http_send_json(req, w->ok_code ? w->ok_code : 202, o);
    }
    msg_envelope_free(env);
    waiting_free(w);
}

/* Publishes text on ferry.scheduler and answers req when a replica replies, within timeout_ms.
 * Takes w. */
static void ask_scheduler_within(sched *s, struct evhttp_request *req, waiting *w, const char *text, int timeout_ms)
{
    w->s = s;
    w->req = req;
    w->conn = evhttp_request_get_connection(req);
    char *err = NULL;
    char **from = trust_scheduler_users(&s->cfg->trust); /* only a replica answers */
    int rc = mq_rpc_call(s->mq, MQ_EXCHANGE, MQ_SCHEDULER_KEY, text, strlen(text), timeout_ms,
                         (const char *const *)from, on_answer, w, &err);
    trust_list_free(from);
    if (rc < 0) {
        http_send_error(req, 503, "cannot publish the request: %s", err);
        free(err);
        waiting_free(w);
        return;
    }
    evhttp_connection_set_closecb(w->conn, on_client_close, w);
}

/* Publishes text on ferry.scheduler and answers req when a replica replies. Takes w. */
static void ask_scheduler(sched *s, struct evhttp_request *req, waiting *w, const char *text)
{
    ask_scheduler_within(s, req, w, text, (int)s->cfg->amqp.rpc_timeout_ms);
}

/* The request's body as a NUL-terminated copy (caller frees), or NULL after answering 413
 * (its size is checked before anything is copied) or 400 (not UTF-8 text). */
char *http_body_text(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > MAX_BODY) {
        http_send_error(req, 413, "the body is %zu bytes: at most %d", len, MAX_BODY);
        return NULL;
    }
    char *t = xcalloc(1, len + 1);
    evbuffer_copyout(in, t, len);
    char *err = NULL;
    if (httpcheck_body(t, len, &err) < 0) {
        http_send_error(req, 400, "%s", err);
        free(err);
        free(t);
        return NULL;
    }
    return t;
}

/* An os-migrateLive waiting for its instance to be resolved by the database worker. */
typedef struct resolving {
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
    json_object *action, *opts, *objs; /* references of the body's parts (opts, objs may be NULL) */
    char *tenant, *dest;
    int nova;
} resolving;

static void resolving_free(resolving *v)
{
    json_object_put(v->action);
    json_object_put(v->opts);
    json_object_put(v->objs);
    free(v->tenant);
    free(v->dest);
    free(v);
}

static void resolving_client_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    ((resolving *)arg)->req = NULL; /* libevent frees the request */
}

/* The instance resolved (or not): the request contract published to a replica. */
static void migrate_live_resolved(sched *s, api_read *r, void *arg)
{
    resolving *v = arg;
    struct evhttp_request *req = v->req;
    if (!req) {
        resolving_free(v);
        return;
    }
    evhttp_connection_set_closecb(v->conn, NULL, NULL);
    if (r->resolved != 1) {
        http_send_error(req,
                        r->resolved == 0   ? 404
                        : r->resolved == 2 ? 409
                                           : 503,
                        "%s", r->err ? r->err : "unknown error");
        resolving_free(v);
        return;
    }
    char *uuid = r->uuid, *ec2 = r->ec2, *err = NULL;
    r->uuid = r->ec2 = NULL;
    /* the request contract, checked exactly as the scheduler's intake will check it */
    char id[37];
    uuid_new(id);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "instance", json_object_new_string(uuid));
    json_object_object_add(b, "os-migrateLive", json_object_get(v->action));
    if (v->opts)
        json_object_object_add(b, "options", json_object_get(v->opts));
    if (v->objs)
        json_object_object_add(b, "objectives", json_object_get(v->objs));
    _cleanup_free_ char *msg = msg_build(MSG_TYPE_REQUEST, id, b);
    msg_envelope *env = NULL;
    msg_request rq = {0};
    if (msg_parse(msg, strlen(msg), &env, &err) < 0 || msg_request_parse(env, NULL, &rq, &err) < 0) {
        msg_envelope_free(env);
        http_send_error(req, 400, "%s", err);
        free(err);
        free(uuid);
        free(ec2);
        resolving_free(v);
        return;
    }
    /* objectives: the replica samples the guest's dirty rate before it answers */
    int objectives = rq.objectives.max_downtime_ms || rq.objectives.deadline_s;
    msg_request_free(&rq);
    msg_envelope_free(env);
    log_fields f = {.req = id, .instance = ec2};
    log_info(&f, "HTTP: os-migrateLive of %s (tenant %s) to %s: request %s published", ec2, v->tenant, v->dest, id);
    waiting *w = xcalloc(1, sizeof(*w));
    strlcpy_f(w->kind, "os-migrateLive", sizeof(w->kind));
    strlcpy_f(w->request_id, id, sizeof(w->request_id));
    w->uuid = uuid;
    w->ec2 = ec2;
    w->nova = v->nova;
    resolving_free(v);
    if (objectives)
        ask_scheduler_within(s, req, w, msg,
                             (int)s->cfg->amqp.rpc_timeout_ms * 2 + (int)s->cfg->scheduler.forecast_sample_s * 1000 +
                                 7000);
    else
        ask_scheduler(s, req, w, msg);
}

void http_action_migrate_live(sched *s, struct evhttp_request *req, const char *tenant, const char *server)
{
    _cleanup_free_ char *text = http_body_text(req);
    if (!text)
        return;
    enum json_tokener_error jerr = json_tokener_success;
    json_object *in = json_tokener_parse_verbose(text, &jerr);
    if (!in) {
        http_send_error(req, 400, "the body is not JSON: %s", json_tokener_error_desc(jerr));
        return;
    }
    json_object *action = NULL, *opts = NULL, *objs = NULL;
    if (!json_object_is_type(in, json_type_object) || !json_object_object_get_ex(in, "os-migrateLive", &action)) {
        json_object_put(in);
        http_send_error(req, 400, "the body has no os-migrateLive action (the only server action ferry serves)");
        return;
    }
    json_object_object_get_ex(in, "options", &opts);
    json_object_object_get_ex(in, "objectives", &objs);
    http_action_migrate_live_start(s, req, tenant, server, action, opts, objs, 0);
    json_object_put(in);
}

void http_action_migrate_live_start(sched *s, struct evhttp_request *req, const char *tenant, const char *server,
                                    json_object *action, json_object *opts, json_object *objs, int nova)
{
    json_object *hv = NULL;
    resolving *v = xcalloc(1, sizeof(*v));
    v->dest = xstrdup(json_object_object_get_ex(action, "host", &hv) && json_object_is_type(hv, json_type_string)
                          ? json_object_get_string(hv)
                          : "a host the scheduler chooses");
    v->action = json_object_get(action);
    v->opts = opts ? json_object_get(opts) : NULL;
    v->objs = objs ? json_object_get(objs) : NULL;
    v->tenant = xstrdup(tenant);
    v->nova = nova;
    v->req = req;
    v->conn = evhttp_request_get_connection(req);
    api_read *r = api_read_new(API_RESOLVE_INSTANCE);
    r->name = xstrdup(server);
    evhttp_connection_set_closecb(v->conn, resolving_client_close, v);
    api_submit(s, r, migrate_live_resolved, v);
}

void http_action_operator(sched *s, struct evhttp_request *req, int64_t id, const char *what, int nova)
{
    char rid[37];
    uuid_new(rid);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    _cleanup_free_ char *type = xasprintf("migration.%s", strcmp(what, "abort") == 0 ? "abort" : "force_complete");
    _cleanup_free_ char *msg = msg_build(type, rid, b);
    waiting *w = xcalloc(1, sizeof(*w));
    strlcpy_f(w->kind, what, sizeof(w->kind));
    strlcpy_f(w->request_id, rid, sizeof(w->request_id));
    w->nova = nova;
    ask_scheduler(s, req, w, msg);
}

void http_action_resolve(sched *s, struct evhttp_request *req, int64_t id)
{
    _cleanup_free_ char *text = http_body_text(req);
    if (!text)
        return;
    enum json_tokener_error jerr = json_tokener_success;
    json_object *in = json_tokener_parse_verbose(text, &jerr), *to = NULL;
    if (!in) {
        http_send_error(req, 400, "the body is not JSON: %s", json_tokener_error_desc(jerr));
        return;
    }
    if (!json_object_is_type(in, json_type_object) || !json_object_object_get_ex(in, "to", &to) ||
        !json_object_is_type(to, json_type_string) ||
        (strcmp(json_object_get_string(to), "source") != 0 && strcmp(json_object_get_string(to), "destination") != 0)) {
        json_object_put(in);
        http_send_error(req, 400, "the body must be {\"to\": \"source\"} or {\"to\": \"destination\"}");
        return;
    }
    char rid[37];
    uuid_new(rid);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    json_object_object_add(b, "to", json_object_new_string(json_object_get_string(to)));
    json_object_put(in);
    _cleanup_free_ char *msg = msg_build("migration.resolve", rid, b);
    waiting *w = xcalloc(1, sizeof(*w));
    strlcpy_f(w->kind, "resolve", sizeof(w->kind));
    strlcpy_f(w->request_id, rid, sizeof(w->request_id));
    /* the replica asks both hosts first, each within rpc_timeout_ms */
    ask_scheduler_within(s, req, w, msg, (int)s->cfg->amqp.rpc_timeout_ms * 2 + 2000);
}

void http_action_forecast(sched *s, struct evhttp_request *req, const char *instance, const httpcheck_query *q)
{
    static const struct {
        const char *key;
        int64_t max;
    } ints[] = {{"bandwidth_mib_s", MSG_OPT_BANDWIDTH_MAX},
                {"max_downtime_ms", MSG_OPT_DOWNTIME_MAX},
                {"deadline_s", MSG_OBJ_DEADLINE_MAX}};
    json_object *b = json_object_new_object();
    json_object_object_add(b, "instance", json_object_new_string(instance));
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
        int64_t v = 0;
        char *err = NULL;
        if (httpcheck_query_int(q, ints[i].key, 1, ints[i].max, 0, &v, &err) < 0) {
            http_send_error(req, 400, "%s", err);
            free(err);
            json_object_put(b);
            return;
        }
        if (v > 0)
            json_object_object_add(b, ints[i].key, json_object_new_int64(v));
    }
    const char *dest = httpcheck_query_get(q, "dest");
    if (dest && *dest)
        json_object_object_add(b, "dest", json_object_new_string(dest));
    char rid[37];
    uuid_new(rid);
    _cleanup_free_ char *msg = msg_build("instance.forecast", rid, b);
    waiting *w = xcalloc(1, sizeof(*w));
    strlcpy_f(w->kind, "forecast", sizeof(w->kind));
    strlcpy_f(w->request_id, rid, sizeof(w->request_id));
    w->ok_code = 200;
    /* the source samples the guest for forecast_sample_s (1 s) first, and up to 5 s more */
    ask_scheduler_within(s, req, w, msg, (int)s->cfg->amqp.rpc_timeout_ms + 20000);
}

void http_action_drain(sched *s, struct evhttp_request *req, const char *type, const char *host, int64_t id)
{
    json_object *b = json_object_new_object();
    if (host) {
        /* drain.start: an optional body of the drain's settings, each checked here as the
         * replica will check it */
        _cleanup_free_ char *text = http_body_text(req);
        if (!text) {
            json_object_put(b);
            return;
        }
        if (*text) {
            enum json_tokener_error jerr = json_tokener_success;
            json_object *in = json_tokener_parse_verbose(text, &jerr);
            if (!in || !json_object_is_type(in, json_type_object)) {
                http_send_error(req, 400, "the body is not a JSON object%s%s", in ? "" : ": ",
                                in ? "" : json_tokener_error_desc(jerr));
                json_object_put(in);
                json_object_put(b);
                return;
            }
            json_object_object_foreach(in, k, v)
            {
                int isint = json_object_is_type(v, json_type_int);
                int64_t n = isint ? json_object_get_int64(v) : 0;
                const char *bad = NULL;
                if (strcmp(k, "deadline_s") == 0)
                    bad = isint && n >= 1 && n <= MSG_OBJ_DEADLINE_MAX ? NULL : "an integer of seconds, 1..604800";
                else if (strcmp(k, "bandwidth_budget_mib_s") == 0)
                    bad = isint && n >= 1 && n <= MSG_OPT_BANDWIDTH_MAX ? NULL : "an integer of MiB/s, 1..100000";
                else if (strcmp(k, "dry_run") == 0)
                    bad = json_object_is_type(v, json_type_boolean) ? NULL : "true or false";
                else {
                    _cleanup_free_ char *pk = httpcheck_printable(k, 64);
                    http_send_error(
                        req, 400, "unknown field %s: a drain takes deadline_s, bandwidth_budget_mib_s and dry_run", pk);
                    json_object_put(in);
                    json_object_put(b);
                    return;
                }
                if (bad) {
                    http_send_error(req, 400, "%s must be %s", k, bad);
                    json_object_put(in);
                    json_object_put(b);
                    return;
                }
                json_object_object_add(b, k, json_object_get(v));
            }
            json_object_put(in);
        }
        json_object_object_add(b, "host", json_object_new_string(host));
    } else if (id > 0) {
        json_object_object_add(b, "drain", json_object_new_int64(id));
    }
    char rid[37];
    uuid_new(rid);
    _cleanup_free_ char *msg = msg_build(type, rid, b);
    waiting *w = xcalloc(1, sizeof(*w));
    strlcpy_f(w->kind, type, sizeof(w->kind));
    strlcpy_f(w->request_id, rid, sizeof(w->request_id));
    w->ok_code = strcmp(type, "drain.list") == 0 || strcmp(type, "drain.show") == 0 ? 200 : 202;
    ask_scheduler(s, req, w, msg);
}
