/* http_routes: every request's checks (connections, target, headers, path, query, tokens)
 * and its route; the read-only endpoints (/healthz, /metrics, the dashboard, /api reads). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "http_priv.h"
#include "nova.h"

extern const char dashboard_html[];
extern const unsigned long dashboard_html_len;

/* /healthz: what the replica knows without waiting on anything: the broker connection and
 * the database worker's health (its connection after its last job, a job running past
 * SCHED_DB_STALL_MS); it never runs a statement itself. */
static void healthz(sched *s, struct evhttp_request *req)
{
    dbq_health h = {0}, hc = {0};
    if (s->dbq)
        dbq_get_health(s->dbq, &h);
    if (s->claims_dbq) {
        /* the claims' worker: before its first job (no request yet) it has not connected */
        dbq_get_health(s->claims_dbq, &hc);
        if (hc.stalled && (!h.stalled || hc.running_ms > h.running_ms)) {
            h.stalled = 1;
            h.running_ms = hc.running_ms;
        }
        if (hc.tried && !hc.connected) {
            h.connected = 0;
            snprintf(h.error, sizeof(h.error), "%s", hc.error);
        }
        h.queued += hc.queued;
    }
    int db_ok = h.connected && !h.stalled;
    int mq_ok = s->mq && mq_is_up(s->mq);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(db_ok && mq_ok));
    json_object_object_add(o, "scheduler", json_object_new_string(s->name));
    json_object_object_add(o, "database", json_object_new_boolean(db_ok));
    json_object_object_add(o, "broker", json_object_new_boolean(mq_ok));
    json_object_object_add(o, "migrations_driven", json_object_new_int(orch_count()));
    json_object_object_add(o, "database_jobs_queued", json_object_new_int(h.queued));
    if (h.stalled)
        json_object_object_add(o, "database_stalled_ms", json_object_new_int64(h.running_ms));
    if (!h.connected && *h.error)
        json_object_object_add(o, "database_error", json_object_new_string(h.error));
    http_send_json(req, db_ok && mq_ok ? 200 : 503, o);
}

/* /metrics: the database's figures are read by the worker (metrics_work), this replica's
 * counters added on the loop (metrics_done). */
typedef struct metrics_job {
    sched *s;
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
    int64_t max_age_s;
    struct evbuffer *db; /* the database's part of the text (filled by the worker only) */
} metrics_job;

static int metrics_work(db_conn *db, void *arg, char **err)
{
    (void)err;
    metrics_job *j = arg;
    struct evbuffer *b = j->db;
    static const char *const statuses[] = {"queued",    "scheduled", "preparing", "running",  "completing",
                                           "completed", "failed",    "error",     "cancelled"};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, "SELECT status, count(*) FROM migrations GROUP BY status", 0, NULL) == 0) {
        evbuffer_add_printf(b, "# HELP ferry_migrations Migrations by status.\n# TYPE ferry_migrations gauge\n");
        for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
            const char *n = "0";
            for (int k = 0; k < PQntuples(r); k++)
                if (strcmp(PQgetvalue(r, k, 0), statuses[i]) == 0)
                    n = PQgetvalue(r, k, 1);
            evbuffer_add_printf(b, "ferry_migrations{status=\"%s\"} %s\n", statuses[i], n);
        }
    }
    _cleanup_pq_ PGresult *c = NULL;
    if (db_exec(
            db, &c,
            "SELECT count(*), round(coalesce(sum(extract(epoch FROM finished_at - started_at)), 0), 3),"
            " coalesce(sum(memory_processed_bytes), 0), round(coalesce(sum(downtime_ms), 0) / 1000.0, 3), count(downtime_ms)"
            " FROM migrations WHERE status = 'completed'",
            0, NULL) == 0 &&
        PQntuples(c) == 1) {
        evbuffer_add_printf(
            b,
            "# HELP ferry_migration_duration_seconds Time of completed migrations, accepted to completed.\n"
            "# TYPE ferry_migration_duration_seconds summary\n"
            "ferry_migration_duration_seconds_sum %s\nferry_migration_duration_seconds_count %s\n"
            "# HELP ferry_migration_memory_bytes Memory sent by completed migrations.\n"
            "# TYPE ferry_migration_memory_bytes counter\nferry_migration_memory_bytes_total %s\n"
            "# HELP ferry_migration_downtime_seconds Guest downtime of completed migrations.\n"
            "# TYPE ferry_migration_downtime_seconds summary\n"
            "ferry_migration_downtime_seconds_sum %s\nferry_migration_downtime_seconds_count %s\n",
            PQgetvalue(c, 0, 1), PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 2), PQgetvalue(c, 0, 3), PQgetvalue(c, 0, 4));
    }
    _cleanup_pq_ PGresult *o = NULL;
    if (db_exec(db, &o,
                "SELECT coalesce(round(extract(epoch FROM now() - min(created_at))::numeric, 3), 0) FROM migrations"
                " WHERE finished_at IS NULL",
                0, NULL) == 0 &&
        PQntuples(o) == 1)
        evbuffer_add_printf(b,
                            "# HELP ferry_oldest_active_migration_seconds Age of the oldest migration not in a final"
                            " status (0: none).\n# TYPE ferry_oldest_active_migration_seconds gauge\n"
                            "ferry_oldest_active_migration_seconds %s\n",
                            PQgetvalue(o, 0, 0));
    _cleanup_pq_ PGresult *h = NULL;
    char age[24];
    snprintf(age, sizeof(age), "%lld", (long long)j->max_age_s);
    const char *hp[] = {age};
    if (db_exec(db, &h,
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
    return 0;
}

static void metrics_done(void *arg, int rc, char *err)
{
    (void)rc;
    free(err); /* a figure the database did not give is left out, as before */
    metrics_job *j = arg;
    sched *s = j->s;
    struct evhttp_request *req = j->req;
    if (req) {
        evhttp_connection_set_closecb(j->conn, NULL, NULL);
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b,
                            "# HELP ferry_scheduler_info This replica.\n# TYPE ferry_scheduler_info gauge\n"
                            "ferry_scheduler_info{name=\"%s\",version=\"" FERRY_VERSION "\"} 1\n",
                            s->name);
        evbuffer_add_buffer(b, j->db);
        evbuffer_add_printf(
            b,
            "# HELP ferry_claim_seconds Request intake transactions of this replica (decision and claim).\n"
            "# TYPE ferry_claim_seconds summary\nferry_claim_seconds_sum %.6f\nferry_claim_seconds_count %lld\n"
            "# HELP ferry_requests Requests taken by this replica, by outcome.\n# TYPE ferry_requests counter\n"
            "ferry_requests_total{outcome=\"accepted\"} %lld\nferry_requests_total{outcome=\"refused\"} %lld\n"
            "ferry_requests_total{outcome=\"invalid\"} %lld\n",
            (double)s->claim_us / 1e6, (long long)s->claims, (long long)s->accepted, (long long)s->refused,
            (long long)s->invalid);
        evbuffer_add_printf(b,
                            "# HELP ferry_dead_lettered Messages this replica sent to ferry.dead, with the reason.\n"
                            "# TYPE ferry_dead_lettered counter\nferry_dead_lettered_total %llu\n",
                            (unsigned long long)mq_dead_lettered(s->mq));
        evbuffer_add_printf(b, "# HELP ferry_reconciler_repairs Repairs made by this replica's reconciler, by kind.\n"
                               "# TYPE ferry_reconciler_repairs counter\n");
        for (int k = 0; k < RECONCILE_REPAIR_COUNT; k++)
            evbuffer_add_printf(b, "ferry_reconciler_repairs_total{kind=\"%s\"} %lld\n", reconcile_repair_str(k),
                                (long long)s->reconcile_repairs[k]);
        evbuffer_add_printf(b, "# HELP ferry_reconciler_unresolved Instances the last reconciler pass of this replica"
                               " could not reconcile, by kind (0 on a replica not holding its lease).\n"
                               "# TYPE ferry_reconciler_unresolved gauge\n");
        for (int k = 0; k < RECONCILE_UNRESOLVED_COUNT; k++)
            evbuffer_add_printf(b, "ferry_reconciler_unresolved{kind=\"%s\"} %lld\n", reconcile_unresolved_str(k),
                                (long long)(s->reconcile_holder ? s->reconcile_unresolved[k] : 0));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Content-Type-Options", "nosniff");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    }
    evbuffer_free(j->db);
    free(j);
}

static void metrics_client_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    ((metrics_job *)arg)->req = NULL; /* libevent frees the request */
}

static void metrics(sched *s, struct evhttp_request *req)
{
    if (!s->db_ready) {
        http_send_error(req, 503, "no database connection yet");
        return;
    }
    metrics_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->req = req;
    j->conn = evhttp_request_get_connection(req);
    j->max_age_s = s->cfg->scheduler.heartbeat_max_age_s;
    j->db = evbuffer_new();
    evhttp_connection_set_closecb(j->conn, metrics_client_close, j);
    dbq_submit(s->dbq, metrics_work, metrics_done, j);
}

/* ---- the reads of api.c, answered when the database worker has them --------------------------- */

typedef struct read_wait {
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
} read_wait;

static void read_client_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    ((read_wait *)arg)->req = NULL; /* libevent frees the request: the answer has nowhere to go */
}

static void read_answer(sched *s, api_read *r, void *arg)
{
    (void)s;
    read_wait *w = arg;
    if (w->req) {
        evhttp_connection_set_closecb(w->conn, NULL, NULL);
        json_object *o = r->out;
        char *err = r->err;
        r->out = NULL;
        r->err = NULL;
        http_send_read(w->req, o, r->found, err);
    }
    free(w);
}

/* Submits the read r (taken) and answers req with it (http_send_read) when it is done. */
static void read_submit(sched *s, struct evhttp_request *req, api_read *r)
{
    read_wait *w = xcalloc(1, sizeof(*w));
    w->req = req;
    w->conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(w->conn, read_client_close, w);
    api_submit(s, r, read_answer, w);
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
            http_send_error(req, 404, "cannot read %s ([http] dashboard_dir): %s", path, strerror(errno));
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
    _cleanup_free_ char *csp = dashboard_csp((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
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
        http_send_error(req, 401, "the metrics token is not valid");
    else
        http_send_error(req, 401, "/metrics needs a token ([http] metrics_token): send Authorization: Bearer <token>");
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
    http_send_error(req, 503, "too many connections: %zu open, at most %lld ([http] max_connections); try again later",
                    c->n, (long long)s->cfg->http.max_connections);
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
            http_send_error(req, 431, "%s", err);
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

static const char *const migration_statuses[] = {"queued",    "scheduled", "preparing", "running",   "completing",
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

/* 1 when the client asks for JSON and not for HTML (a Nova client's version discovery, not a
 * browser opening the dashboard). */
static int wants_json(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    return a && strstr(a, "application/json") && !strstr(a, "text/html");
}

void http_on_request(struct evhttp_request *req, void *arg)
{
    sched *s = arg;
    http_conns_sweep(s->http_conns);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD, post = cmd == EVHTTP_REQ_POST;
    const char *target = evhttp_request_get_uri(req);
    if (!connections_ok(s, req))
        return;
    if (target && strlen(target) > MAX_URI) {
        http_send_error(req, 414, "the request target is %zu bytes: at most %d", strlen(target), MAX_URI);
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
        http_send_error(req, 400, "%s", cerr);
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
        http_send_error(req, 404, "no such resource: %s", path);
    } else if (n >= 1 && strcmp(seg[0], "v2.1") == 0) {
        nova_on_request(s, req, seg, n, &q);
    } else if (n == 0 && wants_json(req)) {
        nova_on_request(s, req, seg, 0, &q); /* Nova's version discovery */
    } else if (n == 0 || (n == 1 && strcmp(seg[0], "index.html") == 0)) {
        if (get)
            dashboard(s, req);
        else
            http_send_error(req, 405, "%s accepts GET only", path);
    } else if (n == 1 && strcmp(seg[0], "healthz") == 0) {
        healthz(s, req);
    } else if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        if (metrics_token_ok(s, req))
            metrics(s, req);
    } else if (!api && strcmp(seg[0], "v2") != 0 && strcmp(seg[0], "v2.1") != 0) {
        http_send_error(req, 404, "no such resource: %s", path);
    } else if (!token_ok(s, req)) {
        http_send_error(req, 401,
                        evhttp_find_header(evhttp_request_get_input_headers(req), "X-Auth-Token")
                            ? "the X-Auth-Token is not valid"
                            : "an X-Auth-Token header is required");
    } else if (api && n == 2 && strcmp(seg[1], "migrations") == 0 && get &&
               migrations_query(&q, &status, &limit, &cerr) < 0) {
        http_send_error(req, 400, "%s", cerr);
        free(cerr);
    } else if (!s->db_ready) {
        http_send_error(req, 503, "the scheduler has no database connection yet");
    } else if (!api) {
        /* /v2/{tenant}/servers/{server}/action */
        if (n == 5 && strcmp(seg[2], "servers") == 0 && strcmp(seg[4], "action") == 0) {
            if (post)
                http_action_migrate_live(s, req, seg[1], seg[3]);
            else
                http_send_error(req, 405, "a server action is a POST");
        } else {
            http_send_error(req, 404, "no such resource: %s (ferry serves POST /v2/{tenant}/servers/{server}/action)",
                            path);
        }
    } else {
        int64_t id = 0;
        if (n == 2 && strcmp(seg[1], "hosts") == 0 && get) {
            read_submit(s, req, api_read_new(API_HOSTS));
        } else if (n == 3 && strcmp(seg[1], "hosts") == 0 && get) {
            api_read *r = api_read_new(API_HOST);
            r->name = xstrdup(seg[2]);
            read_submit(s, req, r);
        } else if (n == 2 && strcmp(seg[1], "instances") == 0 && get) {
            api_read *r = api_read_new(API_INSTANCES);
            const char *h = httpcheck_query_get(&q, "host");
            r->filter = h && *h ? xstrdup(h) : NULL;
            read_submit(s, req, r);
        } else if (n == 2 && strcmp(seg[1], "migrations") == 0 && get) {
            api_read *r = api_read_new(API_MIGRATIONS);
            r->filter = status && *status ? xstrdup(status) : NULL;
            r->limit = limit;
            read_submit(s, req, r);
        } else if (n >= 3 && strcmp(seg[1], "migrations") == 0 && parse_id(seg[2], &id) < 0) {
            http_send_error(req, 404, "no migration %s: an id is a positive integer", seg[2]);
        } else if (n == 3 && strcmp(seg[1], "migrations") == 0 && get) {
            api_read *r = api_read_new(API_MIGRATION);
            r->id = id;
            read_submit(s, req, r);
        } else if (n == 4 && strcmp(seg[1], "migrations") == 0 &&
                   (strcmp(seg[3], "abort") == 0 || strcmp(seg[3], "force-complete") == 0)) {
            if (post)
                http_action_operator(s, req, id, seg[3], 0);
            else
                http_send_error(req, 405, "%s is a POST", seg[3]);
        } else if (n == 4 && strcmp(seg[1], "instances") == 0 && strcmp(seg[3], "forecast") == 0) {
            if (get)
                http_action_forecast(s, req, seg[2], &q);
            else
                http_send_error(req, 405, "a forecast is a GET");
        } else if (n == 4 && strcmp(seg[1], "hosts") == 0 && strcmp(seg[3], "drain") == 0) {
            if (post)
                http_action_drain(s, req, "drain.start", seg[2], 0);
            else
                http_send_error(req, 405, "drain is a POST");
        } else if (n == 2 && strcmp(seg[1], "drains") == 0 && get) {
            http_action_drain(s, req, "drain.list", NULL, 0);
        } else if (n >= 3 && strcmp(seg[1], "drains") == 0 && parse_id(seg[2], &id) < 0) {
            http_send_error(req, 404, "no drain %s: an id is a positive integer", seg[2]);
        } else if (n == 3 && strcmp(seg[1], "drains") == 0 && get) {
            http_action_drain(s, req, "drain.show", NULL, id);
        } else if (n == 4 && strcmp(seg[1], "drains") == 0 && strcmp(seg[3], "cancel") == 0) {
            if (post)
                http_action_drain(s, req, "drain.cancel", NULL, id);
            else
                http_send_error(req, 405, "cancel is a POST");
        } else if (n == 4 && strcmp(seg[1], "migrations") == 0 && strcmp(seg[3], "resolve") == 0) {
            if (post)
                http_action_resolve(s, req, id);
            else
                http_send_error(req, 405, "%s is a POST", seg[3]);
        } else {
            http_send_error(req, get || post ? 404 : 405, "no such resource: %s %s",
                            get    ? "GET"
                            : post ? "POST"
                                   : "method",
                            path);
        }
    }
    httpcheck_query_free(&q);
    httpcheck_path_free(&ps);
}
