/* http_answer: the HTTP API's answers: JSON objects, and refusals in JSON with their reason,
 * logged once. */
#include <stdarg.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "http_priv.h"

void http_send_json(struct evhttp_request *req, int code, json_object *o)
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
    case 400:
        return "badRequest";
    case 401:
        return "unauthorized";
    case 404:
        return "itemNotFound";
    case 405:
        return "methodNotAllowed";
    case 409:
        return "conflict";
    case 413:
        return "payloadTooLarge";
    case 414:
        return "uriTooLong";
    case 431:
        return "requestHeaderFieldsTooLarge";
    case 503:
        return "serviceUnavailable";
    case 504:
        return "gatewayTimeout";
    default:
        return code >= 500 ? "internalError" : "badRequest";
    }
}

/* Nova's name for a fault of this code (nova/api/openstack/wsgi.py's table). */
static const char *nova_fault_name(int code)
{
    switch (code) {
    case 400:
        return "badRequest";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "itemNotFound";
    case 405:
        return "badMethod";
    case 409:
        return "conflictingRequest";
    case 413:
        return "overLimit";
    case 501:
        return "notImplemented";
    case 503:
        return "serviceUnavailable";
    default:
        return "computeFault";
    }
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "other";
    }
}

/* Answers code with a JSON reason, and logs it once with the client's address and the request
 * target made printable (it is untrusted and may not be text at all). */
void http_send_error(struct evhttp_request *req, int code, const char *fmt, ...)
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
    const char *target = evhttp_request_get_uri(req);
    if (target && (strncmp(target, "/v2.1/", 6) == 0 || strcmp(target, "/v2.1") == 0)) {
        /* Nova's fault shape (nova.c): {"itemNotFound": {"code": 404, "message": "..."}} */
        json_object *f = json_object_new_object();
        json_object_object_add(f, "code", json_object_new_int(code));
        json_object_object_add(f, "message", json_object_new_string(msg));
        json_object *o = json_object_new_object();
        json_object_object_add(o, nova_fault_name(code), f);
        http_send_json(req, code, o);
        return;
    }
    json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_int(code));
    json_object_object_add(e, "title", json_object_new_string(title_of(code)));
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", e);
    http_send_json(req, code, o);
}

/* A read from api.c: the object, or 404 / 503 with the reason. */
void http_send_read(struct evhttp_request *req, json_object *o, int found, char *err)
{
    if (o)
        http_send_json(req, 200, o);
    else
        http_send_error(req, found ? 503 : 404, "%s", err ? err : "unknown error");
    free(err);
}
