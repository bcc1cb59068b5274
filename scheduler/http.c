/* http: the scheduler's HTTP API (scheduler/API.md) on libevent's evhttp, in the loop thread.
 * POST .../action publishes the request contract on AMQP and answers when a replica accepted
 * or refused it; the reads come from api.c; the dashboard is one HTML file compiled in. */
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sched.h"

extern const char dashboard_html[];
extern const unsigned long dashboard_html_len;

#define MAX_BODY 65536

/* ---- answers -------------------------------------------------------------------------------- */

static void send_json(struct evhttp_request *req, int code, json_object *o)
{
    struct evbuffer *b = evbuffer_new();
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    evbuffer_add(b, text, strlen(text));
    evbuffer_add(b, "\n", 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, code, NULL, b);
    evbuffer_free(b);
    json_object_put(o);
}

static const char *title_of(int code)
{
    switch (code) {
    case 400: return "badRequest";
    case 401: return "unauthorized";
    case 404: return "itemNotFound";
    case 405: return "methodNotAllowed";
    case 409: return "conflict";
    case 413: return "payloadTooLarge";
    case 503: return "serviceUnavailable";
    case 504: return "gatewayTimeout";
    default: return code >= 500 ? "internalError" : "badRequest";
    }
}

static void send_error(struct evhttp_request *req, int code, const char *fmt, ...) FERRY_PRINTF(3, 4);

static void send_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_int(code));
    json_object_object_add(e, "title", json_object_new_string(title_of(code)));
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", e);
    send_json(req, code, o);
}

/* A read from api.c: the object, or 404 / 503 with the reason. */
static void send_read(struct evhttp_request *req, json_object *o, int found, char *err)
{
    if (o)
        send_json(req, 200, o);
    else
        send_error(req, found ? 503 : 404, "%s", err ? err : "unknown error");
    free(err);
}

/* ---- requests waiting for a replica's answer over AMQP -------------------------------------- */

typedef struct waiting {
    sched *s;
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
    char kind[32]; /* "migrate", "abort", "force-complete" */
    char request_id[40];
    char *uuid, *ec2;
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
        send_error(req, 504, "no scheduler answered the %s request %s: %s", w->kind, w->request_id, err);
        waiting_free(w);
        return;
    }
    msg_envelope *env = NULL;
    char *perr = NULL;
    if (msg_parse(reply->body, reply->len, &env, &perr) < 0) {
        send_error(req, 502, "the scheduler's answer is not valid: %s", perr);
        free(perr);
        waiting_free(w);
        return;
    }
    const char *type = msg_envelope_type(env);
    json_object *b = msg_envelope_body(env), *v;
    size_t tl = strlen(type);
    if (tl > 8 && strcmp(type + tl - 8, ".refused") == 0) {
        const char *why = json_object_object_get_ex(b, "reason", &v) ? json_object_get_string(v) : "refused";
        send_error(req, strncmp(why, "no instance ", 12) == 0 || strncmp(why, "no migration ", 13) == 0 ? 404 : 409, "%s",
                   why);
    } else {
        json_object *o = json_object_new_object();
        json_object_object_foreach(b, k, val) json_object_object_add(o, k, json_object_get(val));
        json_object_object_add(o, "request", json_object_new_string(w->request_id));
        if (w->uuid)
            json_object_object_add(o, "instance", json_object_new_string(w->uuid));
        if (w->ec2)
            json_object_object_add(o, "instance_id", json_object_new_string(w->ec2));
        send_json(req, 202, o);
    }
    msg_envelope_free(env);
    waiting_free(w);
}

/* Publishes text on ferry.scheduler and answers req when a replica replies. Takes w. */
static void ask_scheduler(sched *s, struct evhttp_request *req, waiting *w, const char *text)
{
    w->s = s;
    w->req = req;
    w->conn = evhttp_request_get_connection(req);
    char *err = NULL;
    char **from = trust_scheduler_users(&s->cfg->trust); /* only a replica answers */
    int rc = mq_rpc_call(s->mq, MQ_EXCHANGE, MQ_SCHEDULER_KEY, text, strlen(text), (int)s->cfg->amqp.rpc_timeout_ms,
                         (const char *const *)from, on_answer, w, &err);
    trust_list_free(from);
    if (rc < 0) {
        send_error(req, 503, "cannot publish the request: %s", err);
        free(err);
        waiting_free(w);
        return;
    }
    evhttp_connection_set_closecb(w->conn, on_client_close, w);
}

/* ---- the endpoints --------------------------------------------------------------------------- */

static char *body_text(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = evbuffer_get_length(in);
    char *t = xcalloc(1, *len + 1);
    evbuffer_copyout(in, t, *len);
    return t;
}

static void migrate_live(sched *s, struct evhttp_request *req, const char *tenant, const char *server)
{
    size_t len;
    _cleanup_free_ char *text = body_text(req, &len);
    if (len > MAX_BODY) {
        send_error(req, 413, "the body is %zu bytes: at most %d", len, MAX_BODY);
        return;
    }
    enum json_tokener_error jerr = json_tokener_success;
    json_object *in = json_tokener_parse_verbose(text, &jerr);
    if (!in) {
        send_error(req, 400, "the body is not JSON: %s", json_tokener_error_desc(jerr));
        return;
    }
    json_object *action = NULL, *opts = NULL;
    if (!json_object_is_type(in, json_type_object) || !json_object_object_get_ex(in, "os-migrateLive", &action)) {
        json_object_put(in);
        send_error(req, 400, "the body has no os-migrateLive action (the only server action ferry serves)");
        return;
    }
    json_object_object_get_ex(in, "options", &opts);
    json_object *hv = NULL;
    _cleanup_free_ char *dest = xstrdup(json_object_object_get_ex(action, "host", &hv) && json_object_is_type(hv, json_type_string)
                                            ? json_object_get_string(hv)
                                            : "a host the scheduler chooses");
    char *uuid = NULL, *ec2 = NULL, *err = NULL;
    int r = api_resolve_instance(s, server, &uuid, &ec2, &err);
    if (r != 1) {
        json_object_put(in);
        send_error(req, r == 0 ? 404 : r == 2 ? 409 : 503, "%s", err);
        free(err);
        return;
    }
    /* the request contract, checked exactly as the scheduler's intake will check it */
    char id[37];
    uuid_new(id);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "instance", json_object_new_string(uuid));
    json_object_object_add(b, "os-migrateLive", json_object_get(action));
    if (opts)
        json_object_object_add(b, "options", json_object_get(opts));
    json_object_put(in);
    _cleanup_free_ char *msg = msg_build(MSG_TYPE_REQUEST, id, b);
    msg_envelope *env = NULL;
    msg_request rq = {0};
    if (msg_parse(msg, strlen(msg), &env, &err) < 0 || msg_request_parse(env, NULL, &rq, &err) < 0) {
        msg_envelope_free(env);
        send_error(req, 400, "%s", err);
        free(err);
        free(uuid);
        free(ec2);
        return;
    }
    msg_request_free(&rq);
    msg_envelope_free(env);
    log_fields f = {.req = id, .instance = ec2};
    log_info(&f, "HTTP: os-migrateLive of %s (tenant %s) to %s: request %s published", ec2, tenant, dest, id);
    waiting *w = xcalloc(1, sizeof(*w));
    strlcpy_f(w->kind, "os-migrateLive", sizeof(w->kind));
    strlcpy_f(w->request_id, id, sizeof(w->request_id));
    w->uuid = uuid;
    w->ec2 = ec2;
    ask_scheduler(s, req, w, msg);
}

static void operator_request(sched *s, struct evhttp_request *req, int64_t id, const char *what)
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
    ask_scheduler(s, req, w, msg);
}

static void healthz(sched *s, struct evhttp_request *req)
{
    int db_ok = 0;
    if (s->db) {
        _cleanup_pq_ PGresult *r = NULL;
        db_ok = db_exec(s->db, &r, "SELECT 1", 0, NULL) == 0;
    }
    int mq_ok = s->mq && mq_is_up(s->mq);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(db_ok && mq_ok));
    json_object_object_add(o, "scheduler", json_object_new_string(s->name));
    json_object_object_add(o, "database", json_object_new_boolean(db_ok));
    json_object_object_add(o, "broker", json_object_new_boolean(mq_ok));
    json_object_object_add(o, "migrations_driven", json_object_new_int(orch_count()));
    send_json(req, db_ok && mq_ok ? 200 : 503, o);
}

static void metrics(sched *s, struct evhttp_request *req)
{
    if (!s->db) {
        send_error(req, 503, "no database connection yet");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "# HELP ferry_scheduler_info This replica.\n# TYPE ferry_scheduler_info gauge\n"
                           "ferry_scheduler_info{name=\"%s\",version=\"" FERRY_VERSION "\"} 1\n",
                        s->name);
    static const char *const statuses[] = {"queued", "scheduled", "preparing", "running", "completing",
                                           "completed", "failed", "error", "cancelled"};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(s->db, &r, "SELECT status, count(*) FROM migrations GROUP BY status", 0, NULL) == 0) {
        evbuffer_add_printf(b, "# HELP ferry_migrations Migrations by status.\n# TYPE ferry_migrations gauge\n");
        for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
            const char *n = "0";
            for (int j = 0; j < PQntuples(r); j++)
                if (strcmp(PQgetvalue(r, j, 0), statuses[i]) == 0)
                    n = PQgetvalue(r, j, 1);
            evbuffer_add_printf(b, "ferry_migrations{status=\"%s\"} %s\n", statuses[i], n);
        }
    }
    _cleanup_pq_ PGresult *c = NULL;
    if (db_exec(s->db, &c,
                "SELECT count(*), round(coalesce(sum(extract(epoch FROM finished_at - started_at)), 0), 3),"
                " coalesce(sum(memory_processed_bytes), 0), round(coalesce(sum(downtime_ms), 0) / 1000.0, 3), count(downtime_ms)"
                " FROM migrations WHERE status = 'completed'",
                0, NULL) == 0 &&
        PQntuples(c) == 1) {
        evbuffer_add_printf(b,
                            "# HELP ferry_migration_duration_seconds Time of completed migrations, accepted to completed.\n"
                            "# TYPE ferry_migration_duration_seconds summary\n"
                            "ferry_migration_duration_seconds_sum %s\nferry_migration_duration_seconds_count %s\n"
                            "# HELP ferry_migration_memory_bytes Memory sent by completed migrations.\n"
                            "# TYPE ferry_migration_memory_bytes counter\nferry_migration_memory_bytes_total %s\n"
                            "# HELP ferry_migration_downtime_seconds Guest downtime of completed migrations.\n"
                            "# TYPE ferry_migration_downtime_seconds summary\n"
                            "ferry_migration_downtime_seconds_sum %s\nferry_migration_downtime_seconds_count %s\n",
                            PQgetvalue(c, 0, 1), PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 2), PQgetvalue(c, 0, 3),
                            PQgetvalue(c, 0, 4));
    }
    _cleanup_pq_ PGresult *h = NULL;
    char age[24];
    snprintf(age, sizeof(age), "%lld", (long long)s->cfg->scheduler.heartbeat_max_age_s);
    const char *hp[] = {age};
    if (db_exec(s->db, &h,
                "SELECT count(*) FILTER (WHERE last_heartbeat > now() - make_interval(secs => $1::int)), count(*),"
                " (SELECT count(*) FROM outbox) FROM hosts",
                1, hp) == 0 &&
        PQntuples(h) == 1) {
        evbuffer_add_printf(b,
                            "# HELP ferry_hosts_up Compute hosts with a fresh heartbeat.\n# TYPE ferry_hosts_up gauge\n"
                            "ferry_hosts_up %s\n# HELP ferry_hosts Compute hosts known.\n# TYPE ferry_hosts gauge\n"
                            "ferry_hosts %s\n# HELP ferry_outbox_events Events written but not yet published.\n"
                            "# TYPE ferry_outbox_events gauge\nferry_outbox_events %s\n",
                            PQgetvalue(h, 0, 0), PQgetvalue(h, 0, 1), PQgetvalue(h, 0, 2));
    }
    evbuffer_add_printf(b,
                        "# HELP ferry_claim_seconds Request intake transactions of this replica (decision and claim).\n"
                        "# TYPE ferry_claim_seconds summary\nferry_claim_seconds_sum %.6f\nferry_claim_seconds_count %lld\n"
                        "# HELP ferry_requests Requests taken by this replica, by outcome.\n# TYPE ferry_requests counter\n"
                        "ferry_requests_total{outcome=\"accepted\"} %lld\nferry_requests_total{outcome=\"refused\"} %lld\n"
                        "ferry_requests_total{outcome=\"invalid\"} %lld\n",
                        (double)s->claim_us / 1e6, (long long)s->claims, (long long)s->accepted, (long long)s->refused,
                        (long long)s->invalid);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void dashboard(sched *s, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    const char *dir = s->cfg->http.dashboard_dir;
    if (dir && *dir) {
        /* a development copy, read at each request */
        _cleanup_free_ char *path = xasprintf("%s/index.html", dir);
        FILE *f = fopen(path, "r");
        if (!f) {
            evbuffer_free(b);
            send_error(req, 404, "cannot read %s ([http] dashboard_dir): %s", path, strerror(errno));
            return;
        }
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            evbuffer_add(b, buf, n);
        fclose(f);
    } else {
        evbuffer_add(b, dashboard_html, dashboard_html_len);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static int token_ok(sched *s, struct evhttp_request *req)
{
    const char *t = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Auth-Token");
    const char *list = s->cfg->http.tokens;
    if (!t || !*t || !list)
        return 0;
    size_t n = strlen(t);
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t k = strcspn(p, ",");
        size_t e = k;
        while (e > 0 && p[e - 1] == ' ')
            e--;
        if (e == n && e > 0 && memcmp(p, t, n) == 0)
            return 1;
        p += k;
    }
    return 0;
}

/* Splits path into at most max decoded segments; returns their number (or -1 if too many). */
static int split_path(const char *path, char **seg, int max)
{
    int n = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t k = strcspn(p, "/");
        if (n == max)
            return -1;
        _cleanup_free_ char *raw = xstrndup(p, k);
        seg[n] = evhttp_uridecode(raw, 0, NULL);
        if (!seg[n])
            seg[n] = xstrdup("");
        n++;
        p += k;
    }
    return n;
}

static int parse_id(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sched *s = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    if (!path)
        path = "/";
    char *seg[8] = {0};
    int n = split_path(path, seg, 8);
    struct evkeyvalq q = {0};
    const char *query = evhttp_uri_get_query(uri);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD, post = cmd == EVHTTP_REQ_POST;
    if (query && evhttp_parse_query_str(query, &q) < 0) {
        send_error(req, 400, "invalid query string");
    } else if (n < 0) {
        send_error(req, 404, "no such resource: %s", path);
    } else if (n == 0 || (n == 1 && strcmp(seg[0], "index.html") == 0)) {
        if (get)
            dashboard(s, req);
        else
            send_error(req, 405, "%s accepts GET only", path);
    } else if (n == 1 && strcmp(seg[0], "healthz") == 0) {
        healthz(s, req);
    } else if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        metrics(s, req);
    } else if (strcmp(seg[0], "api") != 0 && strcmp(seg[0], "v2") != 0 && strcmp(seg[0], "v2.1") != 0) {
        send_error(req, 404, "no such resource: %s", path);
    } else if (!token_ok(s, req)) {
        send_error(req, 401, evhttp_find_header(evhttp_request_get_input_headers(req), "X-Auth-Token")
                                 ? "the X-Auth-Token is not valid"
                                 : "an X-Auth-Token header is required");
    } else if (!s->db) {
        send_error(req, 503, "the scheduler has no database connection yet");
    } else if (strcmp(seg[0], "api") != 0) {
        /* /v2/{tenant}/servers/{server}/action */
        if (n == 5 && strcmp(seg[2], "servers") == 0 && strcmp(seg[4], "action") == 0) {
            if (post)
                migrate_live(s, req, seg[1], seg[3]);
            else
                send_error(req, 405, "a server action is a POST");
        } else {
            send_error(req, 404, "no such resource: %s (ferry serves POST /v2/{tenant}/servers/{server}/action)", path);
        }
    } else {
        char *err = NULL;
        int found = 1;
        int64_t id = 0;
        if (n == 2 && strcmp(seg[1], "hosts") == 0 && get) {
            send_read(req, api_hosts(s, &err), 1, err);
        } else if (n == 3 && strcmp(seg[1], "hosts") == 0 && get) {
            json_object *o = api_host(s, seg[2], &found, &err);
            send_read(req, o, found, err);
        } else if (n == 2 && strcmp(seg[1], "instances") == 0 && get) {
            send_read(req, api_instances(s, evhttp_find_header(&q, "host"), &err), 1, err);
        } else if (n == 2 && strcmp(seg[1], "migrations") == 0 && get) {
            const char *lim = evhttp_find_header(&q, "limit");
            send_read(req, api_migrations(s, evhttp_find_header(&q, "status"), lim ? atoi(lim) : 100, &err), 1, err);
        } else if (n >= 3 && strcmp(seg[1], "migrations") == 0 && parse_id(seg[2], &id) < 0) {
            send_error(req, 404, "no migration %s: an id is a positive integer", seg[2]);
        } else if (n == 3 && strcmp(seg[1], "migrations") == 0 && get) {
            json_object *o = api_migration(s, id, &found, &err);
            send_read(req, o, found, err);
        } else if (n == 4 && strcmp(seg[1], "migrations") == 0 &&
                   (strcmp(seg[3], "abort") == 0 || strcmp(seg[3], "force-complete") == 0)) {
            if (post)
                operator_request(s, req, id, seg[3]);
            else
                send_error(req, 405, "%s is a POST", seg[3]);
        } else {
            send_error(req, get || post ? 404 : 405, "no such resource: %s %s", get ? "GET" : post ? "POST" : "method", path);
        }
    }
    evhttp_clear_headers(&q);
    for (int i = 0; i < 8; i++)
        free(seg[i]);
}

/* What OpenSSL says about the last failure, for an error message. */
static const char *ssl_reason(void)
{
    static char buf[256];
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, sizeof(buf), "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* The HTTPS server's context from [http] cert_file and key_file, or NULL with *err. */
static SSL_CTX *tls_context(const cfg_http *h, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        *err = xasprintf("HTTPS: cannot create a TLS context: %s", ssl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (access(h->cert_file, R_OK) < 0)
        *err = xasprintf("HTTPS: cannot read the certificate %s ([http] cert_file): %s", h->cert_file, strerror(errno));
    else if (access(h->key_file, R_OK) < 0)
        *err = xasprintf("HTTPS: cannot read the key %s ([http] key_file): %s", h->key_file, strerror(errno));
    else if (SSL_CTX_use_certificate_chain_file(ctx, h->cert_file) != 1)
        *err = xasprintf("HTTPS: cannot load the certificate %s ([http] cert_file): %s", h->cert_file, ssl_reason());
    else if (SSL_CTX_use_PrivateKey_file(ctx, h->key_file, SSL_FILETYPE_PEM) != 1)
        *err = xasprintf("HTTPS: cannot load the key %s ([http] key_file): %s", h->key_file, ssl_reason());
    else if (SSL_CTX_check_private_key(ctx) != 1)
        *err = xasprintf("HTTPS: the key %s does not belong to the certificate %s: %s", h->key_file, h->cert_file,
                         ssl_reason());
    else
        return ctx;
    SSL_CTX_free(ctx);
    return NULL;
}

/* evhttp's connection factory for HTTPS: each accepted socket gets a TLS session. */
static struct bufferevent *tls_bufferevent(struct event_base *base, void *arg)
{
    SSL *ssl = SSL_new(arg);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        SSL_free(ssl);
    return bev;
}

int http_start(sched *s, char **err)
{
    if (!s->cfg->http.enabled)
        return 0;
    if (*s->cfg->http.cert_file && !(s->http_tls = tls_context(&s->cfg->http, err)))
        return -1;
    s->http = evhttp_new(s->base);
    if (s->http_tls)
        evhttp_set_bevcb(s->http, tls_bufferevent, s->http_tls);
    evhttp_set_gencb(s->http, on_request, s);
    evhttp_set_max_body_size(s->http, 128 * MAX_BODY); /* up to 8 MiB read, so a 413 says why in JSON */
    evhttp_set_timeout(s->http, 60);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
    int port = s->http_port >= 0 ? s->http_port : (int)s->cfg->http.port;
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, s->cfg->http.listen, (ev_uint16_t)port);
    if (!bs) {
        *err = xasprintf("cannot listen for HTTP on %s port %d: %s", s->cfg->http.listen, port, strerror(errno));
        http_stop(s);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char where[80] = "";
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
        int p = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(where, sizeof(where), "%s://%s:%d/", s->http_tls ? "https" : "http", s->cfg->http.listen, p);
    }
    log_info(NULL, "HTTP API and dashboard on %s", where);
    return 0;
}

void http_stop(sched *s)
{
    if (s->http)
        evhttp_free(s->http);
    s->http = NULL;
    SSL_CTX_free(s->http_tls);
    s->http_tls = NULL;
}
