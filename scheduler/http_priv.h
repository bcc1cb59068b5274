/* http_priv: what the parts of the scheduler's HTTP server share (http.c: the server and its
 * connections; http_answer.c: answers and errors in JSON; http_routes.c: the routes, their
 * checks and the read-only endpoints; http_action.c: the requests published to a replica
 * over AMQP, the OpenStack-compatible os-migrateLive and the operator's abort and
 * force-complete). Internal to scheduler/http*.c. */
#ifndef FERRY_HTTP_PRIV_H
#define FERRY_HTTP_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <json-c/json.h>

#include "httpcheck.h"
#include "sched.h"

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
 * bufferevent has no callbacks left (bufferevent_free clears them), and http_conns_sweep drops our
 * reference, which closes the socket. (In libevent 2.1.12 only evhttp_connection_reset_ also
 * clears them on a live connection, and it runs on outgoing connections only; were it to
 * run on ours, we would drop our reference early and count one connection too few, never
 * free what evhttp still uses.) */
struct http_conns {
    struct bufferevent **bev;
    size_t n, cap;
};

/* http.c */
/* Drops our reference to every bufferevent whose connection evhttp has freed (its callbacks
 * are gone): the count left is the connections open. Accepts NULL. */
void http_conns_sweep(struct http_conns *c);

/* http_answer.c */
/* Answers req with code and the JSON object o (takes o). */
void http_send_json(struct evhttp_request *req, int code, json_object *o);
/* Answers req with code and {"error": ...} from fmt, and logs the refusal once with the
 * client's address. */
void http_send_error(struct evhttp_request *req, int code, const char *fmt, ...) FERRY_PRINTF(3, 4);
/* A read from api.c: the object, or 404 / 503 with the reason (takes o and err). */
void http_send_read(struct evhttp_request *req, json_object *o, int found, char *err);

/* http_routes.c */
/* evhttp's callback for every request: checks it and routes it to its handler (arg: the sched). */
void http_on_request(struct evhttp_request *req, void *arg);

/* http_action.c */
/* POST /v2/{tenant}/servers/{server}/action: the OpenStack-compatible os-migrateLive,
 * published as a request to a replica; answers req when one replies. */
void http_action_migrate_live(sched *s, struct evhttp_request *req, const char *tenant, const char *server);
/* The os-migrateLive object action (and the request contract's options and objectives, each
 * may be NULL) of a server: resolved, published and answered as above; nova: answered as Nova
 * does (202 with an empty body, ferry's migration id in X-Ferry-Migration-Id). Borrows action,
 * opts and objs (takes its own references), tenant and server. */
void http_action_migrate_live_start(sched *s, struct evhttp_request *req, const char *tenant, const char *server,
                                    json_object *action, json_object *opts, json_object *objs, int nova);
/* POST /api/migrations/{id}/{abort,force-complete}: published to a replica; answers req when
 * one replies (nova: 202 with an empty body). */
void http_action_operator(sched *s, struct evhttp_request *req, int64_t id, const char *what, int nova);
/* The request's body as a NUL-terminated copy (caller frees), or NULL after answering 413
 * or 400 (not UTF-8 text). */
char *http_body_text(struct evhttp_request *req);
/* POST /api/migrations/{id}/resolve with {"to": "source"|"destination"}: published as
 * migration.resolve to a replica; answers req when one replies (202, or 409 with the reason). */
void http_action_resolve(sched *s, struct evhttp_request *req, int64_t id);
/* A drain request (type drain.start with host and the body's settings, drain.cancel or
 * drain.show with id, drain.list) published to a replica; answers req when one replies (200 for
 * list and show, 202 for start and cancel; 404 when the host or drain does not exist, 409 with
 * the reason for another refusal). */
void http_action_drain(sched *s, struct evhttp_request *req, const char *type, const char *host, int64_t id);
/* GET /api/instances/{instance}/forecast[?dest=&bandwidth_mib_s=&max_downtime_ms=&deadline_s=]:
 * published as instance.forecast to a replica (its host samples the guest first); answers req
 * when one replies (200 with the forecast, 404 for no such instance, 409 with the reason for
 * another refusal, 400 for a bad query). */
void http_action_forecast(sched *s, struct evhttp_request *req, const char *instance, const httpcheck_query *q);

#endif
