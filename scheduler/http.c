/* http: the scheduler's HTTP API (scheduler/API.md) on libevent's evhttp, in the loop thread.
 * POST .../action publishes the request contract on AMQP and answers when a replica accepted
 * or refused it; the reads come from api.c; the dashboard is one HTML file compiled in.
 * Every byte of a request is checked (httpcheck.c) before it is used: a refusal is answered
 * with its reason, logged once with the client's address, and changes nothing.
 * This file: the server (HTTP or HTTPS) and its connections; the routes are in
 * http_routes.c, the answers in http_answer.c, the requests to a replica in http_action.c. */
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
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_priv.h"

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
void http_conns_sweep(struct http_conns *c)
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
    http_conns_sweep(c);
    struct bufferevent *bev;
    if (s->http_tls) {
        /* evhttp 2.1 replaces a NULL from here with a plain socket bufferevent: HTTPS would
         * be served as plain HTTP. These fail only when memory is exhausted: abort, as
         * xmalloc does, rather than answer in clear text. */
        SSL *ssl = SSL_new(s->http_tls);
        bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
                  : NULL;
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
    http_conns_sweep(s->http_conns);
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
    evhttp_set_gencb(s->http, http_on_request, s);
    /* read up to these, so that our own checks answer with the reason in JSON below them */
    evhttp_set_max_headers_size(s->http, MAX_READ_HEADERS);
    evhttp_set_max_body_size(s->http, MAX_READ_BODY);
    if (evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE) != 0)
        log_warn(NULL, "HTTP: cannot set lingering close: a body beyond %d bytes may see its connection reset",
                 MAX_READ_BODY);
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
