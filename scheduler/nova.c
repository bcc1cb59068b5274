/* nova: the routes of ferry's Nova compute API v2.1 (see nova.h, scheduler/API.md "Nova
 * compute API"). Every answer carries the microversion headers and x-compute-request-id;
 * errors come in Nova's fault shape (http_answer.c, for any /v2.1 target). The reads are
 * api.c's, run by the database worker, filtered and shaped here on the loop. */
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http_priv.h"
#include "nova.h"
#include "novaver.h"
#include "novaview.h"

typedef enum nova_kind {
    NW_SERVERS,
    NW_SERVER,
    NW_MIGRATIONS,
    NW_SERVER_MIGRATIONS,
    NW_SERVER_MIGRATION,
    NW_MIGRATION_ABORT,
    NW_MIGRATION_FORCE,
    NW_HYPERVISORS,
    NW_HYPERVISOR,
    NW_SERVICES,
    NW_SERVICE_SET,
} nova_kind;

/* One request waiting for its read, with what it asked (all owned here). */
typedef struct nova_wait {
    sched *s;
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
    nova_kind kind;
    int minor, detail, has_re, limit, with_servers, pattern;
    int again; /* set by an answer that submitted the next read instead of answering */
    json_object *hosts; /* with_servers: api.c's host list, while the instances are read */
    regex_t re;
    char *id, *host, *status, *instance, *since, *marker, *binary, *state, *reason;
    int64_t mid;
} nova_wait;

static void wait_free(nova_wait *w)
{
    if (w->has_re)
        regfree(&w->re);
    json_object_put(w->hosts);
    free(w->id);
    free(w->host);
    free(w->status);
    free(w->instance);
    free(w->since);
    free(w->marker);
    free(w->binary);
    free(w->state);
    free(w->reason);
    free(w);
}

static void wait_client_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    ((nova_wait *)arg)->req = NULL; /* libevent frees the request */
}

static const char *jstr_of(json_object *o, const char *k)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                          : NULL;
}

static json_object *array_of(json_object *o, const char *k)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_array) ? v : NULL;
}

static void submit(nova_wait *w, api_read *r);

/* ---- the answers, on the loop ------------------------------------------------------------- */

static void answer_servers(nova_wait *w, json_object *out)
{
    json_object *a = array_of(out, "instances"), *list = json_object_new_array();
    size_t n = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *inst = json_object_array_get_idx(a, i);
        const char *name = jstr_of(inst, "name"), *uuid = jstr_of(inst, "uuid");
        if (w->kind == NW_SERVER) {
            if (uuid && strcasecmp(uuid, w->id) == 0) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "server", novaview_server(inst, w->minor, 1));
                json_object_put(list);
                http_send_json(w->req, 200, o);
                return;
            }
            continue;
        }
        if (w->has_re && (!name || regexec(&w->re, name, 0, NULL, 0) != 0))
            continue;
        if (w->status &&
            strcasecmp(w->status, novaver_server_status(jstr_of(inst, "vm_state"), jstr_of(inst, "task_state"))) != 0)
            continue;
        json_object_array_add(list, novaview_server(inst, w->minor, w->detail));
    }
    if (w->kind == NW_SERVER) {
        json_object_put(list);
        http_send_error(w->req, 404, "Instance %s could not be found.", w->id);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "servers", list);
    http_send_json(w->req, 200, o);
}

static void answer_migrations(nova_wait *w, json_object *out)
{
    json_object *a = array_of(out, "migrations"), *list = json_object_new_array();
    size_t n = a ? json_object_array_length(a) : 0;
    int past_marker = w->marker == NULL, found_marker = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(a, i);
        const char *st = jstr_of(m, "status"), *inst = jstr_of(m, "instance");
        const char *src = jstr_of(m, "source"), *dst = jstr_of(m, "dest");
        if (!past_marker) {
            const char *u = jstr_of(m, "request");
            char id[24];
            json_object *idv = NULL;
            json_object_object_get_ex(m, "id", &idv);
            snprintf(id, sizeof(id), "%lld", (long long)json_object_get_int64(idv));
            if ((u && strcasecmp(u, w->marker) == 0) || strcmp(id, w->marker) == 0)
                past_marker = found_marker = 1;
            continue;
        }
        if (w->kind != NW_MIGRATIONS) {
            if (!inst || strcasecmp(inst, w->id) != 0)
                continue;
            if (w->kind == NW_SERVER_MIGRATIONS && !novaver_migration_in_progress(st))
                continue;
            if (w->kind == NW_SERVER_MIGRATION) {
                json_object *idv = NULL;
                json_object_object_get_ex(m, "id", &idv);
                if (json_object_get_int64(idv) != w->mid)
                    continue;
                json_object *o = json_object_new_object();
                json_object_object_add(o, "migration", novaview_migration(m, w->minor, 1));
                json_object_put(list);
                http_send_json(w->req, 200, o);
                return;
            }
        } else {
            if (w->host && !(src && strcmp(src, w->host) == 0) && !(dst && strcmp(dst, w->host) == 0))
                continue;
            if (w->status && strcasecmp(w->status, novaver_migration_status(st)) != 0 &&
                strcasecmp(w->status, st ? st : "") != 0)
                continue;
            if (w->instance && (!inst || strcasecmp(inst, w->instance) != 0))
                continue;
            const char *upd = jstr_of(m, "updated_at");
            if (w->since && (!upd || strncmp(upd, w->since, 19) < 0))
                continue;
        }
        if (w->limit > 0 && count >= w->limit)
            break;
        json_object_array_add(list, novaview_migration(m, w->minor, w->kind != NW_MIGRATIONS));
        count++;
    }
    if (w->marker && !found_marker) {
        json_object_put(list);
        http_send_error(w->req, 400, "Marker %s could not be found.", w->marker);
        return;
    }
    if (w->kind == NW_SERVER_MIGRATION) {
        json_object_put(list);
        http_send_error(w->req, 404, "Migration %lld for instance %s could not be found.", (long long)w->mid, w->id);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "migrations", list);
    http_send_json(w->req, 200, o);
}

/* The host of api.c's list whose Nova id (at minor) or name is id, and its index; NULL. */
static json_object *find_host(json_object *a, const char *id, int minor, int *index)
{
    size_t n = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *h = json_object_array_get_idx(a, i);
        const char *name = jstr_of(h, "name");
        char buf[40];
        if (name && (strcasecmp(novaview_host_id(name, (int)i + 1, minor, buf), id) == 0 || strcmp(name, id) == 0)) {
            *index = (int)i + 1;
            return h;
        }
    }
    return NULL;
}

static void answer_hosts(nova_wait *w, json_object *out)
{
    json_object *instances = NULL;
    if (w->hosts) {
        instances = out; /* the second read of a with_servers request */
        out = w->hosts;
    }
    json_object *a = array_of(out, "hosts");
    size_t n = a ? json_object_array_length(a) : 0;
    if (w->kind == NW_HYPERVISOR || w->kind == NW_SERVICE_SET) {
        int index = 0;
        json_object *h = w->id ? find_host(a, w->id, w->minor, &index) : NULL;
        for (size_t i = 0; !h && w->host && i < n; i++) {
            const char *name = jstr_of(json_object_array_get_idx(a, i), "name");
            if (name && strcmp(name, w->host) == 0) {
                h = json_object_array_get_idx(a, i);
                index = (int)i + 1;
            }
        }
        if (!h) {
            http_send_error(w->req, 404, "%s %s could not be found.",
                            w->kind == NW_HYPERVISOR ? "Hypervisor" : "Service", w->id ? w->id : w->host);
            return;
        }
        if (w->kind == NW_HYPERVISOR) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "hypervisor", novaview_hypervisor(h, index, w->minor, 1));
            http_send_json(w->req, 200, o);
            return;
        }
        /* the host's new state, then the service as it is now */
        api_read *r = api_read_new(API_HOST_SET_STATE);
        r->name = xstrdup(jstr_of(h, "name"));
        r->state = xstrdup(w->state);
        r->reason = w->reason ? xstrdup(w->reason) : NULL;
        free(w->host);
        w->host = xstrdup(r->name);
        free(w->id);
        w->id = NULL;
        w->mid = index;
        w->kind = NW_SERVICES;
        w->binary = xstrdup("set"); /* answer one service */
        log_fields f = {.host = r->name};
        log_info(&f, "Nova API: service of host %s set %s%s%s", r->name, w->state, w->reason ? ": " : "",
                 w->reason ? w->reason : "");
        submit(w, r);
        w->again = 1;
        return;
    }
    if (w->with_servers && !w->hosts) {
        /* the hosts first, then their servers */
        w->hosts = json_object_get(out);
        submit(w, api_read_new(API_INSTANCES));
        w->again = 1; /* answered by the next read */
        return;
    }
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *h = json_object_array_get_idx(a, i);
        const char *name = jstr_of(h, "name");
        if (w->has_re && (!name || regexec(&w->re, name, 0, NULL, 0) != 0))
            continue;
        if (w->host && (!name || strcmp(name, w->host) != 0))
            continue;
        if (w->kind == NW_SERVICES) {
            json_object_array_add(list, novaview_service(h, (int)i + 1, w->minor));
            continue;
        }
        json_object *hv = novaview_hypervisor(h, (int)i + 1, w->minor, w->detail);
        if (w->with_servers) {
            json_object *insts = array_of(instances, "instances"), *sv = json_object_new_array();
            for (size_t k = 0; insts && k < json_object_array_length(insts); k++) {
                json_object *inst = json_object_array_get_idx(insts, k);
                const char *ih = jstr_of(inst, "host");
                if (!ih || strcmp(ih, name) != 0)
                    continue;
                json_object *e = json_object_new_object();
                json_object_object_add(e, "uuid", json_object_new_string(jstr_of(inst, "uuid")));
                json_object_object_add(e, "name", json_object_new_string(jstr_of(inst, "name")));
                json_object_array_add(sv, e);
            }
            json_object_object_add(hv, "servers", sv);
        }
        json_object_array_add(list, hv);
    }
    if (w->pattern && json_object_array_length(list) == 0) {
        json_object_put(list);
        http_send_error(w->req, 404, "No hypervisor matching %s could be found.", "the pattern");
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, w->kind == NW_SERVICES ? "services" : "hypervisors", list);
    http_send_json(w->req, 200, o);
}

/* An abort or force-complete: the migration must be the server's and in progress. */
static void answer_operator(nova_wait *w, json_object *out)
{
    const char *inst = jstr_of(out, "instance"), *st = jstr_of(out, "status");
    if (!inst || strcasecmp(inst, w->id) != 0) {
        http_send_error(w->req, 404, "Migration %lld for instance %s could not be found.", (long long)w->mid, w->id);
        return;
    }
    if (!novaver_migration_in_progress(st)) {
        http_send_error(w->req, w->kind == NW_MIGRATION_ABORT ? 400 : 409,
                        "Migration %lld state of instance %s is %s. Cannot %s while the migration is in this state.",
                        (long long)w->mid, w->id, novaver_migration_status(st),
                        w->kind == NW_MIGRATION_ABORT ? "abort" : "force complete");
        return;
    }
    char mid[24];
    snprintf(mid, sizeof(mid), "%lld", (long long)w->mid);
    log_fields f = {.migration = mid, .instance = w->id};
    log_info(&f, "Nova API: %s of migration %s", w->kind == NW_MIGRATION_ABORT ? "abort" : "force-complete", mid);
    http_action_operator(w->s, w->req, w->mid, w->kind == NW_MIGRATION_ABORT ? "abort" : "force-complete", 1);
    w->req = NULL; /* http_action answers it */
}

static void read_answer(sched *s, api_read *r, void *arg)
{
    (void)s;
    nova_wait *w = arg;
    if (!w->req) {
        wait_free(w);
        return;
    }
    evhttp_connection_set_closecb(w->conn, NULL, NULL);
    if (!r->out) {
        if (r->found)
            http_send_error(w->req, 503, "%s", r->err ? r->err : "unknown error");
        else if (w->kind == NW_MIGRATION_ABORT || w->kind == NW_MIGRATION_FORCE)
            http_send_error(w->req, 404, "Migration %lld for instance %s could not be found.", (long long)w->mid,
                            w->id);
        else
            http_send_error(w->req, 404, "%s", r->err ? r->err : "not found");
        wait_free(w);
        return;
    }
    switch (w->kind) {
    case NW_SERVERS:
    case NW_SERVER:
        answer_servers(w, r->out);
        break;
    case NW_MIGRATIONS:
    case NW_SERVER_MIGRATIONS:
    case NW_SERVER_MIGRATION:
        answer_migrations(w, r->out);
        break;
    case NW_MIGRATION_ABORT:
    case NW_MIGRATION_FORCE:
        answer_operator(w, r->out);
        break;
    case NW_SERVICES:
        if (w->binary && strcmp(w->binary, "set") == 0) {
            /* the state change's answer: the host as it is now */
            json_object *o = json_object_new_object();
            json_object_object_add(o, "service", novaview_service(r->out, (int)w->mid, w->minor));
            http_send_json(w->req, 200, o);
            break;
        }
        /* fall through */
    case NW_HYPERVISORS:
    case NW_HYPERVISOR:
    case NW_SERVICE_SET:
        w->again = 0;
        answer_hosts(w, r->out);
        if (w->again)
            return; /* submitted again: the state change, or the servers of the hosts */
        break;
    }
    wait_free(w);
}

/* Runs r on the database worker and answers w's request with it (takes both). */
static void submit(nova_wait *w, api_read *r)
{
    w->conn = evhttp_request_get_connection(w->req);
    evhttp_connection_set_closecb(w->conn, wait_client_close, w);
    api_submit(w->s, r, read_answer, w);
}

/* ---- the requests --------------------------------------------------------------------------- */

static nova_wait *wait_new(sched *s, struct evhttp_request *req, nova_kind kind, int minor)
{
    nova_wait *w = xcalloc(1, sizeof(*w));
    w->s = s;
    w->req = req;
    w->kind = kind;
    w->minor = minor;
    return w;
}

/* A query value as an owned copy, NULL when absent or empty. */
static char *qdup(const httpcheck_query *q, const char *k)
{
    const char *v = httpcheck_query_get(q, k);
    return v && *v ? xstrdup(v) : NULL;
}

/* changes-since: an ISO 8601 time, compared in UTC at second precision. */
static int since_ok(const char *t)
{
    static const char form[] = "dddd-dd-ddTdd:dd:dd";
    if (strlen(t) < 19)
        return 0;
    for (int i = 0; i < 19; i++)
        if (form[i] == 'd' ? !isdigit((unsigned char)t[i]) : t[i] != form[i] && !(i == 10 && t[i] == ' '))
            return 0;
    return 1;
}

static void servers(sched *s, struct evhttp_request *req, int minor, const httpcheck_query *q, int detail)
{
    nova_wait *w = wait_new(s, req, NW_SERVERS, minor);
    w->detail = detail;
    const char *name = httpcheck_query_get(q, "name");
    char *err = NULL;
    if (name && *name) {
        if (novaver_name_regex(name, &w->re, &err) < 0) {
            http_send_error(req, 400, "%s", err);
            free(err);
            wait_free(w);
            return;
        }
        w->has_re = 1;
    }
    w->status = qdup(q, "status");
    api_read *r = api_read_new(API_INSTANCES);
    r->filter = qdup(q, "host");
    submit(w, r);
}

/* The body of a POST/PUT as a JSON object (caller puts), or NULL after answering 400. */
static json_object *body_object(struct evhttp_request *req)
{
    _cleanup_free_ char *text = http_body_text(req);
    if (!text)
        return NULL;
    enum json_tokener_error jerr = json_tokener_success;
    json_object *in = json_tokener_parse_verbose(text, &jerr);
    if (!in) {
        http_send_error(req, 400, "the body is not JSON: %s", json_tokener_error_desc(jerr));
        return NULL;
    }
    if (!json_object_is_type(in, json_type_object)) {
        json_object_put(in);
        http_send_error(req, 400, "the body must be a JSON object");
        return NULL;
    }
    return in;
}

static void server_action(sched *s, struct evhttp_request *req, int minor, const char *tenant, const char *id)
{
    json_object *in = body_object(req);
    if (!in)
        return;
    json_object *action = NULL, *opts = NULL, *contract = NULL;
    char *err = NULL;
    if (!json_object_object_get_ex(in, "os-migrateLive", &action)) {
        http_send_error(req, 400, "the body has no os-migrateLive action (the only server action ferry serves)");
    } else if (novaver_migrate_live(action, minor, &contract, &err) < 0) {
        http_send_error(req, 400, "Invalid input for field/attribute os-migrateLive: %s", err);
        free(err);
    } else {
        json_object *objs = NULL;
        json_object_object_get_ex(in, "options", &opts);
        json_object_object_get_ex(in, "objectives", &objs);
        log_fields f = {.instance = id};
        log_info(&f, "Nova API: os-migrateLive of %s at microversion 2.%d", id, minor);
        http_action_migrate_live_start(s, req, tenant ? tenant : "", id, contract, opts, objs, 1);
        json_object_put(contract);
    }
    json_object_put(in);
}

/* PUT /os-services/{id} (2.53: status, disabled_reason) or /os-services/{disable,enable,
 * disable-log-reason} before 2.53 (host, binary, disabled_reason). */
static void service_set(sched *s, struct evhttp_request *req, int minor, const char *id)
{
    json_object *in = body_object(req);
    if (!in)
        return;
    json_object *v = NULL;
    const char *reason = NULL, *status = NULL, *host = NULL;
    int legacy = strcmp(id, "disable") == 0 || strcmp(id, "enable") == 0 || strcmp(id, "disable-log-reason") == 0;
    const char *bad = NULL;
    json_object_object_foreach(in, k, val)
    {
        (void)val;
        if (strcmp(k, "status") != 0 && strcmp(k, "disabled_reason") != 0 && strcmp(k, "host") != 0 &&
            strcmp(k, "binary") != 0 && strcmp(k, "forced_down") != 0)
            bad = "an unknown property";
    }
    if (json_object_object_get_ex(in, "disabled_reason", &v)) {
        if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 255)
            bad = "disabled_reason must be a string of at most 255 bytes";
        else
            reason = json_object_get_string(v);
    }
    if (json_object_object_get_ex(in, "status", &v)) {
        if (!json_object_is_type(v, json_type_string) ||
            (strcmp(json_object_get_string(v), "enabled") != 0 && strcmp(json_object_get_string(v), "disabled") != 0))
            bad = "status must be enabled or disabled";
        else
            status = json_object_get_string(v);
    }
    if (json_object_object_get_ex(in, "host", &v)) {
        if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) < 1 ||
            json_object_get_string_len(v) > 255)
            bad = "host must be a string of 1 to 255 bytes";
        else
            host = json_object_get_string(v);
    }
    if (json_object_object_get_ex(in, "binary", &v) &&
        (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "nova-compute") != 0))
        bad = "binary must be nova-compute (ferry's compute agents are the only services)";
    if (json_object_object_get_ex(in, "forced_down", &v))
        bad = "forced_down is not served: ferry sees a host down from its heartbeats";
    if (!bad && legacy && (minor >= 53 || !host))
        bad = minor >= 53 ? "use PUT /os-services/{service_id} from microversion 2.53" : "host is required";
    if (!bad && !legacy && (minor < 53 || !status))
        bad = minor < 53 ? "use PUT /os-services/disable or /enable before microversion 2.53" : "status is required";
    if (!bad && reason && (legacy ? strcmp(id, "disable-log-reason") != 0 : strcmp(status, "disabled") != 0))
        bad = "disabled_reason is only allowed when disabling";
    if (!bad && reason)
        for (const unsigned char *p = (const unsigned char *)reason; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                bad = "disabled_reason must not contain control characters";
    if (bad) {
        http_send_error(req, 400, "Invalid input: %s", bad);
        json_object_put(in);
        return;
    }
    nova_wait *w = wait_new(s, req, NW_SERVICE_SET, minor);
    if (legacy) {
        w->host = xstrdup(host);
        w->state = xstrdup(strcmp(id, "enable") == 0 ? "enabled" : "disabled");
    } else {
        w->id = xstrdup(id);
        w->state = xstrdup(status);
    }
    w->reason = reason && *reason ? xstrdup(reason) : NULL;
    json_object_put(in);
    submit(w, api_read_new(API_HOSTS));
}

static int is_collection(const char *s)
{
    return strcmp(s, "servers") == 0 || strcmp(s, "os-migrations") == 0 || strcmp(s, "os-hypervisors") == 0 ||
           strcmp(s, "os-services") == 0 || strcmp(s, "os-aggregates") == 0 || strcmp(s, "flavors") == 0;
}

/* Sets the answer's microversion headers and a request id (x-compute-request-id). */
static void version_headers(struct evhttp_request *req, int minor, char rid[45])
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    char v[16], c[32], u[37];
    snprintf(v, sizeof(v), "2.%d", minor);
    snprintf(c, sizeof(c), "compute 2.%d", minor);
    uuid_new(u);
    snprintf(rid, 45, "req-%s", u);
    evhttp_add_header(oh, "X-OpenStack-Nova-API-Version", v);
    evhttp_add_header(oh, "OpenStack-API-Version", c);
    evhttp_add_header(oh, "Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version");
    evhttp_add_header(oh, "x-compute-request-id", rid);
    evhttp_add_header(oh, "x-openstack-request-id", rid);
}

static int parse_mid(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0 || errno == ERANGE || !isdigit((unsigned char)*s))
        return -1;
    *out = v;
    return 0;
}

void nova_on_request(sched *s, struct evhttp_request *req, char **seg, int n, const httpcheck_query *q)
{
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD, post = cmd == EVHTTP_REQ_POST;
    int put = cmd == EVHTTP_REQ_PUT, del = cmd == EVHTTP_REQ_DELETE;
    int minor = NOVAVER_MIN_MINOR;
    char *err = NULL, rid[45];
    novaver_refusal vr = novaver_parse(evhttp_find_header(ih, "X-OpenStack-Nova-API-Version"),
                                       evhttp_find_header(ih, "OpenStack-API-Version"), &minor, &err);
    version_headers(req, vr == NOVAVER_OK ? minor : NOVAVER_MIN_MINOR, rid);
    if (vr != NOVAVER_OK) {
        http_send_error(req, (int)vr, "%s", err);
        free(err);
        return;
    }
    const char *host_hdr = evhttp_find_header(ih, "Host");
    _cleanup_free_ char *base = xasprintf("%s://%s", s->http_tls ? "https" : "http",
                                          host_hdr && httpcheck_utf8(host_hdr, strlen(host_hdr), NULL) &&
                                                  strlen(host_hdr) < 256 && !strpbrk(host_hdr, "\"<> /\\")
                                              ? host_hdr
                                              : "localhost");
    if (n <= 1) {
        /* GET / (a JSON client) and GET /v2.1: the version documents, no token needed */
        if (!get) {
            http_send_error(req, 405, "the version document accepts GET only");
            return;
        }
        json_object *o = json_object_new_object();
        if (n == 0) {
            json_object *a = json_object_new_array();
            json_object_array_add(a, novaview_version(base));
            json_object_object_add(o, "versions", a);
        } else {
            json_object_object_add(o, "version", novaview_version(base));
        }
        http_send_json(req, 200, o);
        return;
    }
    const char *tok = evhttp_find_header(ih, "X-Auth-Token");
    if (!httpcheck_token_ok(tok, s->cfg->http.tokens)) {
        http_send_error(req, 401, tok ? "the X-Auth-Token is not valid" : "an X-Auth-Token header is required");
        return;
    }
    if (!s->db_ready) {
        http_send_error(req, 503, "the scheduler has no database connection yet");
        return;
    }
    /* /v2.1/{project}/...: the project prefix some clients add */
    const char *tenant = NULL;
    if (n >= 3 && !is_collection(seg[1])) {
        tenant = seg[1];
        seg++;
        n--;
    }
    const char *c = seg[1];
    log_fields f = {.req = rid};
    log_debug(&f, "Nova API: %s at 2.%d", c, minor);
    int64_t mid = 0;
    if (strcmp(c, "servers") == 0) {
        if (n == 2 && get) {
            servers(s, req, minor, q, 0);
        } else if (n == 3 && get && strcmp(seg[2], "detail") == 0) {
            servers(s, req, minor, q, 1);
        } else if (n >= 3 && !novaver_is_uuid(seg[2])) {
            http_send_error(req, 404, "Instance %s could not be found.", seg[2]);
        } else if (n == 3 && get) {
            nova_wait *w = wait_new(s, req, NW_SERVER, minor);
            w->id = xstrdup(seg[2]);
            submit(w, api_read_new(API_INSTANCES));
        } else if (n == 4 && post && strcmp(seg[3], "action") == 0) {
            server_action(s, req, minor, tenant, seg[2]);
        } else if (n == 4 && get && strcmp(seg[3], "migrations") == 0) {
            if (minor < 23) {
                http_send_error(req, 404, "GET /servers/{id}/migrations needs microversion 2.23");
                return;
            }
            nova_wait *w = wait_new(s, req, NW_SERVER_MIGRATIONS, minor);
            w->id = xstrdup(seg[2]);
            api_read *r = api_read_new(API_MIGRATIONS);
            r->limit = 10000;
            submit(w, r);
        } else if (n >= 5 && strcmp(seg[3], "migrations") == 0 && parse_mid(seg[4], &mid) < 0) {
            http_send_error(req, 404, "Migration %s could not be found.", seg[4]);
        } else if (n == 5 && strcmp(seg[3], "migrations") == 0 && (get || del)) {
            if (minor < (get ? 23 : 24)) {
                http_send_error(req, 404, "this needs microversion 2.%d", get ? 23 : 24);
                return;
            }
            nova_wait *w = wait_new(s, req, get ? NW_SERVER_MIGRATION : NW_MIGRATION_ABORT, minor);
            w->id = xstrdup(seg[2]);
            w->mid = mid;
            api_read *r = api_read_new(get ? API_MIGRATIONS : API_MIGRATION);
            r->limit = 10000;
            r->id = mid;
            submit(w, r);
        } else if (n == 6 && post && strcmp(seg[3], "migrations") == 0 && strcmp(seg[5], "action") == 0) {
            json_object *in = body_object(req);
            if (!in)
                return;
            json_object *fc = NULL;
            int ok = json_object_object_get_ex(in, "force_complete", &fc) && !fc && json_object_object_length(in) == 1;
            json_object_put(in);
            if (!ok) {
                http_send_error(req, 400, "the body must be {\"force_complete\": null}");
            } else if (minor < 22) {
                http_send_error(req, 404, "force_complete needs microversion 2.22");
            } else {
                nova_wait *w = wait_new(s, req, NW_MIGRATION_FORCE, minor);
                w->id = xstrdup(seg[2]);
                w->mid = mid;
                api_read *r = api_read_new(API_MIGRATION);
                r->id = mid;
                submit(w, r);
            }
        } else {
            http_send_error(req, 404, "no such resource: Nova servers path not served by ferry");
        }
    } else if (strcmp(c, "os-migrations") == 0 && n == 2 && get) {
        int64_t limit = 0;
        const char *mt = httpcheck_query_get(q, "migration_type");
        const char *since = httpcheck_query_get(q, "changes-since");
        const char *marker = httpcheck_query_get(q, "marker");
        if (httpcheck_query_int(q, "limit", 0, 10000, 0, &limit, &err) < 0) {
            http_send_error(req, 400, "%s", err);
            free(err);
            return;
        }
        if (since && *since && !since_ok(since)) {
            http_send_error(req, 400, "changes-since must be an ISO 8601 time (YYYY-MM-DDThh:mm:ss)");
            return;
        }
        if (marker && strlen(marker) > 64) {
            http_send_error(req, 400, "Marker %.64s... could not be found.", marker);
            return;
        }
        nova_wait *w = wait_new(s, req, NW_MIGRATIONS, minor);
        w->host = qdup(q, "host");
        w->status = qdup(q, "status");
        w->instance = qdup(q, "instance_uuid");
        w->since = since && *since ? xstrdup(since) : NULL;
        w->marker = qdup(q, "marker");
        w->limit = (int)limit;
        if (mt && *mt && strcmp(mt, "live-migration") != 0) {
            /* ferry runs live migrations only: any other type lists nothing */
            w->limit = -1;
            free(w->instance);
            w->instance = xstrdup("-");
        }
        api_read *r = api_read_new(API_MIGRATIONS);
        r->limit = 10000;
        submit(w, r);
    } else if (strcmp(c, "os-hypervisors") == 0 && get && n <= 4) {
        nova_wait *w = wait_new(s, req, NW_HYPERVISORS, minor);
        const char *pat = httpcheck_query_get(q, "hypervisor_hostname_pattern");
        if (n == 2 || (n == 3 && strcmp(seg[2], "detail") == 0)) {
            w->detail = n == 3;
        } else if (n == 4 && (strcmp(seg[3], "search") == 0 || strcmp(seg[3], "servers") == 0) && minor < 53) {
            pat = seg[2];
            w->with_servers = strcmp(seg[3], "servers") == 0;
        } else if (n == 4 && strcmp(seg[3], "uptime") == 0) {
            /* ferry does not know its hosts' uptime; openstackclient's hypervisor show expects 501 then */
            wait_free(w);
            http_send_error(req, 501, "ferry does not report a hypervisor's uptime");
            return;
        } else if (n == 3) {
            w->kind = NW_HYPERVISOR;
            w->id = xstrdup(seg[2]);
        } else {
            wait_free(w);
            http_send_error(req, 404, "no such resource: Nova hypervisors path not served by ferry");
            return;
        }
        if (pat && *pat) {
            /* Nova matches the pattern as a substring (SQL LIKE %pattern%) */
            _cleanup_free_ char *lit = xstrdup("");
            for (const char *p = pat; *p && strlen(lit) < NOVAVER_MAX_PATTERN; p++) {
                char *nl = strchr(".[]()*+?{}|^$\\", *p) ? xasprintf("%s\\%c", lit, *p) : xasprintf("%s%c", lit, *p);
                free(lit);
                lit = nl;
            }
            if (strlen(pat) > NOVAVER_MAX_PATTERN || novaver_name_regex(lit, &w->re, &err) < 0) {
                http_send_error(req, 400, "%s", err ? err : "hypervisor_hostname_pattern is too long");
                free(err);
                wait_free(w);
                return;
            }
            w->has_re = 1;
            w->pattern = 1;
        }
        const char *ws = httpcheck_query_get(q, "with_servers");
        if (ws && (strcasecmp(ws, "true") == 0 || strcmp(ws, "1") == 0))
            w->with_servers = 1;
        submit(w, api_read_new(API_HOSTS));
    } else if (strcmp(c, "os-services") == 0 && n == 2 && get) {
        const char *bin = httpcheck_query_get(q, "binary");
        nova_wait *w = wait_new(s, req, NW_SERVICES, minor);
        w->host = qdup(q, "host");
        if (bin && *bin && strcmp(bin, "nova-compute") != 0) {
            free(w->host);
            w->host = xstrdup("/"); /* no host has this name: only nova-compute services exist */
        }
        submit(w, api_read_new(API_HOSTS));
    } else if (strcmp(c, "os-aggregates") == 0 && n == 2 && get) {
        /* ferry has no aggregates: openstackclient's hypervisor show lists them */
        json_object *o = json_object_new_object();
        json_object_object_add(o, "aggregates", json_object_new_array());
        http_send_json(req, 200, o);
    } else if (strcmp(c, "os-services") == 0 && n == 3 && put) {
        service_set(s, req, minor, seg[2]);
    } else {
        http_send_error(req, get || post || put || del ? 404 : 405,
                        "no such resource: ferry serves Nova's versions, servers, os-migrateLive, migrations, "
                        "os-hypervisors and os-services (scheduler/API.md)");
    }
}
