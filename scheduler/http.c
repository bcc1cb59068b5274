/* http: the scheduler's HTTP API (scheduler/API.md) on libevent's evhttp, in the loop thread.
 * POST .../action publishes the request contract on AMQP and answers when a replica accepted
 * or refused it; the reads come from api.c; the dashboard is one HTML file compiled in.
 * Every byte of a request is checked (httpcheck.c) before it is used: a refusal is answered
 * with its reason, logged once with the client's address, and changes nothing. */
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "httpcheck.h"
#include "sched.h"

extern const char dashboard_html[];
extern const unsigned long dashboard_html_len;

#define MAX_BODY 65536
/* What libevent itself reads at most. Beyond these it answers alone, without our JSON reason
 * and without calling us: headers (request line included) beyond MAX_READ_HEADERS get
 * libevent 2.1's "400 Bad Request" (its DATA_TOO_LONG is reported as an invalid header), a
 * body beyond MAX_READ_BODY "413 Request Entity Too Large" (read and discarded first, so the
 * client sees the answer). Below them, our own checks answer 431 / 413 in JSON. */
#define MAX_READ_HEADERS (4 * HTTPCHECK_MAX_HEADER_BYTES)
#define MAX_READ_BODY (64 * MAX_BODY)
/* A request target longer than this is refused (414) before it is parsed further. */
#define MAX_URI 8192

/* The connections open on the server. evhttp 2.1 has no connection limit nor a callback
 * when a connection it accepted goes away before a request: each bufferevent it uses comes
 * from new_bufferevent, which keeps a reference; once evhttp has freed the connection, its
 * bufferevent has no callbacks left (bufferevent_free clears them), and conns_sweep drops our
 * reference, which closes the socket. (In libevent 2.1.12 only evhttp_connection_reset_ also
 * clears them on a live connection, and it runs on outgoing connections only; were it to
 * run on ours, we would drop our reference early and count one connection too few, never
 * free what evhttp still uses.) */
struct http_conns {
    struct bufferevent **bev;
    size_t n, cap;
};
static void conns_sweep(struct http_conns *c);

/* ---- answers -------------------------------------------------------------------------------- */

static void send_json(struct evhttp_request *req, int code, json_object *o)
{
    struct evbuffer *b = evbuffer_new();
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    evbuffer_add(b, text, strlen(text));
    evbuffer_add(b, "\n", 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Content-Type-Options", "nosniff");
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
    case 414: return "uriTooLong";
    case 431: return "requestHeaderFieldsTooLarge";
    case 503: return "serviceUnavailable";
    case 504: return "gatewayTimeout";
    default: return code >= 500 ? "internalError" : "badRequest";
    }
}

static void send_error(struct evhttp_request *req, int code, const char *fmt, ...) FERRY_PRINTF(3, 4);

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "other";
    }
}

/* Answers code with a JSON reason, and logs it once with the client's address and the request
 * target made printable (it is untrusted and may not be text at all). */
static void send_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    /* the target as received, maybe not text at all: printable ASCII only, at most 200 bytes */
    _cleanup_free_ char *uri = httpcheck_printable(evhttp_request_get_uri(req), 200);
    if (code == 404 || code == 409)
        log_info(NULL, "HTTP: %s %s from %s port %u: %d %s", method_name(evhttp_request_get_command(req)), uri,
                 addr ? addr : "?", (unsigned)port, code, msg);
    else if (code == 500 || code == 502 || code == 504) /* ours or a replica's failure, not a refusal */
        log_warn(NULL, "HTTP: failed %s %s from %s port %u: %d %s", method_name(evhttp_request_get_command(req)), uri,
                 addr ? addr : "?", (unsigned)port, code, msg);
    else
        log_warn(NULL, "HTTP: refused %s %s from %s port %u: %d %s", method_name(evhttp_request_get_command(req)), uri,
                 addr ? addr : "?", (unsigned)port, code, msg);
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

/* The request's body as a NUL-terminated copy (caller frees), or NULL after answering 413
 * (its size is checked before anything is copied) or 400 (not UTF-8 text). */
static char *body_text(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > MAX_BODY) {
        send_error(req, 413, "the body is %zu bytes: at most %d", len, MAX_BODY);
        return NULL;
    }
    char *t = xcalloc(1, len + 1);
    evbuffer_copyout(in, t, len);
    char *err = NULL;
    if (httpcheck_body(t, len, &err) < 0) {
        send_error(req, 400, "%s", err);
        free(err);
        free(t);
        return NULL;
    }
    return t;
}

static void migrate_live(sched *s, struct evhttp_request *req, const char *tenant, const char *server)
{
    _cleanup_free_ char *text = body_text(req);
    if (!text)
        return;
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
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* The page's Content-Security-Policy: scripts only the page's own inline <script> blocks, by
 * their SHA-256 (computed from the page served, so a [http] dashboard_dir copy gets its own);
 * styles inline ('unsafe-inline': the page sets style attributes in the HTML it builds, e.g.
 * the usage bars' widths, which no hash can name); fetch() only to this origin; no frames
 * around it (frame-ancestors 'none'), no plugins, no base or form targets. Caller frees. */
static char *dashboard_csp(const char *html, size_t len)
{
    _cleanup_free_ char *hashes = xstrdup("");
    const char *p = html, *end = html + len;
    while ((p = memmem(p, (size_t)(end - p), "<script>", 8))) {
        p += 8;
        const char *q = memmem(p, (size_t)(end - p), "</script>", 9);
        if (!q)
            break;
        unsigned char md[32];
        unsigned int ml = 0;
        char b64[64];
        if (EVP_Digest(p, (size_t)(q - p), md, &ml, EVP_sha256(), NULL) != 1)
            abort();
        EVP_EncodeBlock((unsigned char *)b64, md, (int)ml);
        char *h = xasprintf("%s 'sha256-%s'", hashes, b64);
        free(hashes);
        hashes = h;
        p = q + 9;
    }
    return xasprintf("default-src 'none'; script-src%s; style-src 'unsafe-inline'; connect-src 'self'; "
                     "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                     *hashes ? hashes : " 'none'");
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
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    _cleanup_free_ char *csp =
        dashboard_csp((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evhttp_add_header(oh, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(oh, "Cache-Control", "no-store");
    evhttp_add_header(oh, "Content-Security-Policy", csp);
    evhttp_add_header(oh, "X-Frame-Options", "DENY");
    evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(oh, "Referrer-Policy", "no-referrer");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static int token_ok(sched *s, struct evhttp_request *req)
{
    return httpcheck_token_ok(evhttp_find_header(evhttp_request_get_input_headers(req), "X-Auth-Token"),
                              s->cfg->http.tokens);
}

/* /metrics with [http] metrics_token set: 1 when the request carries one of its tokens as
 * "Authorization: Bearer <token>" (what Prometheus sends) or as X-Auth-Token, else 0 after
 * answering 401 with the reason. */
static int metrics_token_ok(sched *s, struct evhttp_request *req)
{
    const char *want = s->cfg->http.metrics_token;
    if (!want || !*want)
        return 1;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(h, "Authorization"), *given = evhttp_find_header(h, "X-Auth-Token");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        given = auth + 7 + strspn(auth + 7, " ");
    if (httpcheck_token_ok(given, want))
        return 1;
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer realm=\"ferry metrics\"");
    if (given && *given)
        send_error(req, 401, "the metrics token is not valid");
    else
        send_error(req, 401, "/metrics needs a token ([http] metrics_token): send Authorization: Bearer <token>");
    return 0;
}

/* The connection-count limit: 1 when the request may be served, else 0 after answering 503
 * with the reason (and closing the connection, so the client makes room). */
static int connections_ok(sched *s, struct evhttp_request *req)
{
    struct http_conns *c = s->http_conns;
    if (!c || c->n <= (size_t)s->cfg->http.max_connections)
        return 1;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    send_error(req, 503, "too many connections: %zu open, at most %lld ([http] max_connections); try again later", c->n,
               (long long)s->cfg->http.max_connections);
    return 0;
}

/* The request's header fields within httpcheck's limits: 1, else 0 after answering 431. */
static int headers_ok(struct evhttp_request *req)
{
    httpcheck_headers acc = {0};
    struct evkeyval *h;
    for (h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next) {
        char *err = NULL;
        if (httpcheck_header(&acc, h->key, h->value, &err) < 0) {
            send_error(req, 431, "%s", err);
            free(err);
            return 0;
        }
    }
    return 1;
}

static int parse_id(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0 || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

static const char *const migration_statuses[] = {"queued",    "scheduled", "preparing", "running", "completing",
                                                  "completed", "failed",    "error",     "cancelled", NULL};

/* GET /api/migrations' query: status (one of migration_statuses) and limit (1 to 10000,
 * default 100). 0, or -1 with *err (caller frees). */
static int migrations_query(const httpcheck_query *q, const char **status, int *limit, char **err)
{
    int64_t l = 0;
    if (httpcheck_query_enum(q, "status", migration_statuses, status, err) < 0 ||
        httpcheck_query_int(q, "limit", 1, 10000, 100, &l, err) < 0)
        return -1;
    *limit = (int)l;
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sched *s = arg;
    conns_sweep(s->http_conns);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD, post = cmd == EVHTTP_REQ_POST;
    const char *target = evhttp_request_get_uri(req);
    if (!connections_ok(s, req))
        return;
    if (target && strlen(target) > MAX_URI) {
        send_error(req, 414, "the request target is %zu bytes: at most %d", strlen(target), MAX_URI);
        return;
    }
    if (!headers_ok(req))
        return;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    if (!path || !*path)
        path = "/";
    httpcheck_path ps = {0};
    httpcheck_query q = {0};
    char *cerr = NULL;
    if (httpcheck_path_parse(path, &ps, &cerr) < 0 || httpcheck_query_parse(evhttp_uri_get_query(uri), &q, &cerr) < 0) {
        send_error(req, 400, "%s", cerr);
        free(cerr);
        httpcheck_path_free(&ps);
        return;
    }
    /* path and query are valid text from here on: they may be echoed in answers */
    char **seg = ps.seg;
    int n = ps.too_many ? -1 : ps.n;
    const char *status = NULL;
    int limit = 100;
    int api = n >= 1 && strcmp(seg[0], "api") == 0;
    if (n < 0) {
        send_error(req, 404, "no such resource: %s", path);
    } else if (n == 0 || (n == 1 && strcmp(seg[0], "index.html") == 0)) {
        if (get)
            dashboard(s, req);
        else
            send_error(req, 405, "%s accepts GET only", path);
    } else if (n == 1 && strcmp(seg[0], "healthz") == 0) {
        healthz(s, req);
    } else if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        if (metrics_token_ok(s, req))
            metrics(s, req);
    } else if (!api && strcmp(seg[0], "v2") != 0 && strcmp(seg[0], "v2.1") != 0) {
        send_error(req, 404, "no such resource: %s", path);
    } else if (!token_ok(s, req)) {
        send_error(req, 401, evhttp_find_header(evhttp_request_get_input_headers(req), "X-Auth-Token")
                                 ? "the X-Auth-Token is not valid"
                                 : "an X-Auth-Token header is required");
    } else if (api && n == 2 && strcmp(seg[1], "migrations") == 0 && get && migrations_query(&q, &status, &limit, &cerr) < 0) {
        send_error(req, 400, "%s", cerr);
        free(cerr);
    } else if (!s->db) {
        send_error(req, 503, "the scheduler has no database connection yet");
    } else if (!api) {
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
            send_read(req, api_instances(s, httpcheck_query_get(&q, "host"), &err), 1, err);
        } else if (n == 2 && strcmp(seg[1], "migrations") == 0 && get) {
            send_read(req, api_migrations(s, status, limit, &err), 1, err);
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
    httpcheck_query_free(&q);
    httpcheck_path_free(&ps);
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

/* Drops our reference to every bufferevent whose connection evhttp has freed (its callbacks
 * are gone): the count left is the connections open. Accepts NULL. */
static void conns_sweep(struct http_conns *c)
{
    if (!c)
        return;
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        bufferevent_event_cb eventcb = NULL;
        void *cbarg = NULL;
        bufferevent_getcb(c->bev[i], NULL, NULL, &eventcb, &cbarg);
        if (!eventcb && !cbarg)
            bufferevent_decref(c->bev[i]);
        else
            c->bev[k++] = c->bev[i];
    }
    c->n = k;
}

/* evhttp's connection factory: each accepted socket gets a bufferevent (with a TLS session
 * for HTTPS) that we count until evhttp frees it (struct http_conns). */
static struct bufferevent *new_bufferevent(struct event_base *base, void *arg)
{
    sched *s = arg;
    struct http_conns *c = s->http_conns;
    conns_sweep(c);
    struct bufferevent *bev;
    if (s->http_tls) {
        /* evhttp 2.1 replaces a NULL from here with a plain socket bufferevent: HTTPS would
         * be served as plain HTTP. These fail only when memory is exhausted: abort, as
         * xmalloc does, rather than answer in clear text. */
        SSL *ssl = SSL_new(s->http_tls);
        bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
        if (!bev) {
            log_error(NULL, "HTTPS: cannot create a TLS session for a connection: %s", ssl_reason());
            abort();
        }
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev)
        return NULL;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->bev = xrealloc(c->bev, c->cap * sizeof(*c->bev));
    }
    bufferevent_incref(bev);
    c->bev[c->n++] = bev;
    return bev;
}

void http_tick(sched *s)
{
    conns_sweep(s->http_conns);
}

int http_start(sched *s, char **err)
{
    if (!s->cfg->http.enabled)
        return 0;
    if (*s->cfg->http.cert_file && !(s->http_tls = tls_context(&s->cfg->http, err)))
        return -1;
    s->http = evhttp_new(s->base);
    s->http_conns = xcalloc(1, sizeof(*s->http_conns));
    evhttp_set_bevcb(s->http, new_bufferevent, s);
    evhttp_set_gencb(s->http, on_request, s);
    /* read up to these, so that our own checks answer with the reason in JSON below them */
    evhttp_set_max_headers_size(s->http, MAX_READ_HEADERS);
    evhttp_set_max_body_size(s->http, MAX_READ_BODY);
    if (evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE) != 0)
        log_warn(NULL, "HTTP: cannot set lingering close: a body beyond %d bytes may see its connection reset", MAX_READ_BODY);
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
    if (s->http_conns) {
        /* evhttp_free freed every connection: what is left are our references */
        for (size_t i = 0; i < s->http_conns->n; i++)
            bufferevent_decref(s->http_conns->bev[i]);
        free(s->http_conns->bev);
        free(s->http_conns);
        s->http_conns = NULL;
    }
    SSL_CTX_free(s->http_tls);
    s->http_tls = NULL;
}
