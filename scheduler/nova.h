/* nova: the subset of Nova's compute API v2.1 that openstackclient and novaclient use for
 * migration workflows (scheduler/API.md "Nova compute API"), served on the scheduler's HTTP
 * server: versions, servers, os-migrateLive, migrations, hypervisors and services. Requests
 * are checked by httpcheck/novaver, reads go through api.c's database worker reads, shapes
 * come from novaview, actions reuse http_action.c's intake path. */
#ifndef FERRY_NOVA_H
#define FERRY_NOVA_H

#include <event2/http.h>

#include "httpcheck.h"
#include "sched.h"

/* Answers one request under /v2.1 (seg[0] == "v2.1"; the path and query already checked by
 * http_routes.c), or GET / from a JSON client (n == 0): version headers, token, route.
 * Borrows seg and q for the call only. */
void nova_on_request(sched *s, struct evhttp_request *req, char **seg, int n, const httpcheck_query *q);

#endif
