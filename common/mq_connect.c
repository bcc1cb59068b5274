/* mq_connect: connecting to a broker of the list (TLS, login, channel, confirms, topology,
 * consumers, reply queue), the reconnect with backoff, the reset that fails what was in flight,
 * and the housekeeping timer (heartbeats, confirm and RPC deadlines). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <amqp_tcp_socket.h>

#include "log.h"
#include "mq_priv.h"

static int schedule_connect(mq_conn *c);

/* ---- connect / reset --------------------------------------------------------------- */

static void on_readable(evutil_socket_t fd, short what, void *arg);

/* Connects a plain TCP socket to host:port to learn why a connection failed; returns the
 * errno of the first address's failure (0 if it connected or could not be resolved). */
static int probe_connect_errno(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai)
        return 0;
    int e = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            e = errno;
            if (e == EINPROGRESS) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                int n = poll(&pfd, 1, timeout_ms);
                socklen_t len = sizeof(e);
                if (n == 0)
                    e = ETIMEDOUT;
                else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
                    e = errno;
            }
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return e;
}

/* Why a PEM file could not be used, in the words of the file system when it has some. */
static char *pem_problem(const char *path)
{
    if (access(path, R_OK) < 0)
        return xasprintf("%s: %s", path, strerror(errno));
    return xasprintf("%s: not usable PEM data", path);
}

/* What OpenSSL found wrong with the broker's certificate during the last handshake on this
 * thread (the loop's): rabbitmq-c reports only "verification failed". */
static _Thread_local char tls_verify_error[512];
static _Thread_local const char *tls_ca_file; /* the CA file of that handshake, for the message */

static int tls_verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok && !tls_verify_error[0]) {
        char subject[160] = "";
        X509 *cert = X509_STORE_CTX_get_current_cert(x);
        if (cert)
            X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
        int e = X509_STORE_CTX_get_error(x);
        bool unknown_ca = e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
                          e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT;
        snprintf(tls_verify_error, sizeof(tls_verify_error), "%s (certificate %s, depth %d)%s%s",
                 X509_verify_cert_error_string(e), subject[0] ? subject : "?", X509_STORE_CTX_get_error_depth(x),
                 unknown_ca ? ": not issued by a CA in " : "", unknown_ca && tls_ca_file ? tls_ca_file : "");
    }
    return ok;
}

/* amqps: the broker's certificate must chain to ca_file and name the host of the URL — a DNS
 * name or an IP address (rabbitmq-c 0.11's own check knows only DNS names, so OpenSSL's is
 * used); a client certificate goes along when configured. */
static int tls_setup(mq_conn *c, amqp_socket_t *sock, char **err)
{
    if (amqp_ssl_socket_set_cacert(sock, c->ca_file) != AMQP_STATUS_OK) {
        _cleanup_free_ char *why = pem_problem(c->ca_file);
        *err = xasprintf("TLS: cannot load the CA certificates ([amqp] ca_file) %s", why);
        return -1;
    }
    if (*c->cert_file && amqp_ssl_socket_set_key(sock, c->cert_file, c->key_file) != AMQP_STATUS_OK) {
        _cleanup_free_ char *why = pem_problem(access(c->cert_file, R_OK) < 0 ? c->cert_file : c->key_file);
        *err = xasprintf("TLS: cannot load the client certificate %s with key %s ([amqp] cert_file, key_file): %s",
                         c->cert_file, c->key_file, why);
        return -1;
    }
    SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);
    X509_VERIFY_PARAM *vp = ctx ? SSL_CTX_get0_param(ctx) : NULL;
    if (!vp) {
        *err = xstrdup("TLS: rabbitmq-c gave no OpenSSL context to verify the broker's name with");
        return -1;
    }
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, c->info.host) != 1 && X509_VERIFY_PARAM_set1_host(vp, c->info.host, 0) != 1) {
        *err = xasprintf("TLS: cannot verify the broker's certificate against the host name '%s'", c->info.host);
        return -1;
    }
    X509_STORE_set_verify_cb(SSL_CTX_get_cert_store(ctx), tls_verify_cb);
    tls_verify_error[0] = 0;
    tls_ca_file = c->ca_file;
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 0); /* OpenSSL checks the name, above */
    return 0;
}

/* Declares the private RPC reply queue (exclusive, server-named, gone with the connection),
 * binds it to ferry.reply by its own name and consumes it. 0, or -1 with *err. */
static int setup_reply_queue(mq_conn *c, char **err)
{
    amqp_queue_declare_ok_t *q = amqp_queue_declare(c->amqp, MQ_CHANNEL, amqp_empty_bytes, 0, 0, 1, 1,
                                                    amqp_empty_table);
    if (!q) {
        *err = mq_reply_text(amqp_get_rpc_reply(c->amqp), "could not declare the RPC reply queue");
        return -1;
    }
    free(c->reply_queue);
    c->reply_queue = mq_dup_bytes(q->queue);
    /* answers come through ferry.reply, bound by the queue's own name (the exchange is part of
     * ferry's topology: declared on connect, or by deploy/rabbitmq/setup.sh) */
    amqp_queue_bind(c->amqp, MQ_CHANNEL, bytes(c->reply_queue), amqp_cstring_bytes(MQ_REPLY_EXCHANGE),
                    bytes(c->reply_queue), amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not bind the RPC reply queue to " MQ_REPLY_EXCHANGE);
        return -1;
    }
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(c->amqp, MQ_CHANNEL, bytes(c->reply_queue),
                                                     amqp_cstring_bytes("rpc-replies"), 0, 1, 1, amqp_empty_table);
    if (!ok) {
        *err = mq_reply_text(amqp_get_rpc_reply(c->amqp), "could not consume the RPC reply queue");
        return -1;
    }
    return 0;
}

static int do_connect(mq_conn *c, char **err)
{
    c->amqp = amqp_new_connection();
    amqp_socket_t *sock;
    if (c->info.ssl) {
        sock = amqp_ssl_socket_new(c->amqp);
        if (sock && tls_setup(c, sock, err) < 0)
            return -1;
    } else {
        sock = amqp_tcp_socket_new(c->amqp);
    }
    if (!sock) {
        *err = xstrdup("could not create an AMQP socket");
        return -1;
    }
    struct timeval tv = {.tv_sec = c->opt.connect_timeout_ms / 1000,
                         .tv_usec = (c->opt.connect_timeout_ms % 1000) * 1000};
    errno = 0;
    int rc = amqp_socket_open_noblock(sock, c->info.host, c->info.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        /* rabbitmq-c says only "a socket error occurred": ask the system which */
        int e = rc == AMQP_STATUS_SOCKET_ERROR ? probe_connect_errno(c->info.host, c->info.port, c->opt.connect_timeout_ms) : 0;
        if (e)
            *err = xasprintf("could not connect to %s:%d: %s", c->info.host, c->info.port, strerror(e));
        else if (c->info.ssl && tls_verify_error[0])
            *err = xasprintf("could not connect to %s:%d: TLS: the broker's certificate is refused: %s",
                             c->info.host, c->info.port, tls_verify_error);
        else
            *err = xasprintf("could not connect to %s:%d: %s", c->info.host, c->info.port, amqp_error_string2(rc));
        return -1;
    }
    amqp_set_handshake_timeout(c->amqp, &tv);
    amqp_set_rpc_timeout(c->amqp, &tv);

    amqp_table_entry_t props[1];
    props[0].key = amqp_cstring_bytes("connection_name");
    props[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props[0].value.value.bytes = amqp_cstring_bytes(c->name);
    amqp_table_t ptable = {.num_entries = 1, .entries = props};
    amqp_rpc_reply_t r = amqp_login_with_properties(c->amqp, c->info.vhost, 0, MQ_FRAME_MAX, c->opt.heartbeat_s,
                                                    &ptable, AMQP_SASL_METHOD_PLAIN, c->info.user,
                                                    c->info.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        _cleanup_free_ char *what = xasprintf("could not log in to %s:%d as %s", c->info.host, c->info.port, c->info.user);
        *err = mq_reply_text(r, what);
        if (!c->info.ssl && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_SOCKET_ERROR) {
            /* a TLS listener hangs up on the plain AMQP greeting */
            char *more = xasprintf("%s (the broker hung up during the AMQP handshake: if this port speaks TLS, use amqps://)", *err);
            free(*err);
            *err = more;
        }
        return -1;
    }
    amqp_channel_open(c->amqp, MQ_CHANNEL);
    r = amqp_get_rpc_reply(c->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not open a channel");
        return -1;
    }
    amqp_confirm_select(c->amqp, MQ_CHANNEL);
    r = amqp_get_rpc_reply(c->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not enable publisher confirms");
        return -1;
    }
    c->next_tag = 1;
    amqp_basic_qos(c->amqp, MQ_CHANNEL, 0, (uint16_t)(c->opt.prefetch > 65535 ? 65535 : c->opt.prefetch), 0);
    r = amqp_get_rpc_reply(c->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not set the prefetch");
        return -1;
    }
    for (decl *d = c->decls; d; d = d->next)
        if (mq_apply_decl(c, d, err) < 0)
            return -1;
    if (!c->opt.no_rpc_replies && setup_reply_queue(c, err) < 0)
        return -1;
    for (consumer *k = c->consumers; k; k = k->next)
        if (mq_start_consumer(c, k, 0, err) < 0)
            return -1;
    return 0;
}

static void on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mq_conn *c = arg;
    char *err = NULL;
    c->connecting = 1;
    if (do_connect(c, &err) < 0) {
        c->connecting = 0;
        int again = strcmp(err, c->last_error) == 0;
        mq_set_last_error(c, err);
        if (c->amqp) {
            amqp_destroy_connection(c->amqp);
            c->amqp = NULL;
        }
        int delay = schedule_connect(c);
        _cleanup_free_ char *next = c->n_brokers > 1 ? xasprintf("trying broker %s:%d in %d ms", c->info.host, c->info.port, delay)
                                                     : xasprintf("retrying in %d ms", delay);
        if (!again)
            log_warn(conn_fields(c), "%s; %s", err, next);
        else
            log_debug(conn_fields(c), "%s; %s", err, next);
        free(err);
        return;
    }
    c->connecting = 0;
    c->tried = 0;
    c->up = 1;
    c->generation++;
    c->backoff_ms = c->opt.reconnect_min_ms;
    mq_set_last_error(c, "");
    c->ev_read = event_new(c->base, amqp_get_sockfd(c->amqp), EV_READ | EV_PERSIST, on_readable, c);
    event_add(c->ev_read, NULL);
    log_info(conn_fields(c), "connected to broker %s:%d vhost %s as %s (connection %llu)", c->info.host,
             c->info.port, c->info.vhost, c->info.user, (unsigned long long)c->generation);
    if (c->state_cb)
        c->state_cb(c, 1, NULL, c->state_arg);
    mq_drain(c); /* frames may already wait in rabbitmq-c's buffers */
}

/* The next attempt: with several brokers, the next one in the list at once (the shortest
 * delay), and the backoff only after a whole round failed; with one, that one after the backoff. */
static int schedule_connect(mq_conn *c)
{
    if (!c->ev_timer)
        c->ev_timer = evtimer_new(c->base, on_connect_timer, c);
    int delay = c->backoff_ms, backoff = 1;
    if (c->n_brokers > 1) {
        c->cur = (c->cur + 1) % c->n_brokers;
        c->info = c->brokers[c->cur].info;
        if (++c->tried < c->n_brokers) {
            delay = c->opt.reconnect_min_ms;
            backoff = 0;
        } else {
            c->tried = 0;
        }
    }
    struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
    evtimer_add(c->ev_timer, &tv);
    if (backoff) {
        c->backoff_ms *= 2;
        if (c->backoff_ms > c->opt.reconnect_max_ms)
            c->backoff_ms = c->opt.reconnect_max_ms;
    }
    return delay;
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg);

void mq_start(mq_conn *c)
{
    if (!c->ev_house) {
        c->ev_house = event_new(c->base, -1, EV_PERSIST, on_housekeeping, c);
        struct timeval tv = {.tv_sec = 0, .tv_usec = MQ_HOUSEKEEP_MS * 1000};
        event_add(c->ev_house, &tv);
    }
    if (c->up || c->connecting)
        return;
    if (!c->ev_timer)
        c->ev_timer = evtimer_new(c->base, on_connect_timer, c);
    struct timeval now = {0, 0};
    evtimer_add(c->ev_timer, &now);
}

void mq_fail_pending(mq_conn *c, const char *why)
{
    pending_pub *p = c->pubs;
    c->pubs = c->pubs_tail = NULL;
    while (p) {
        pending_pub *n = p->next;
        if (p->cb)
            p->cb(c, 0, why, p->arg);
        free(p);
        p = n;
    }
    rpc_call *k = c->calls;
    c->calls = NULL;
    while (k) {
        rpc_call *n = k->next;
        k->cb(c, 0, why, NULL, k->arg);
        rpc_call_free(k);
        k = n;
    }
}

/* Drops the connection, fails what was in flight and schedules a reconnect. */
void mq_reset(mq_conn *c, const char *why)
{
    if (c->in_dispatch) {
        /* a callback is running on this connection's data: finish it first */
        c->reset_pending = 1;
        mq_set_last_error(c, why);
        return;
    }
    int was_up = c->up;
    c->up = 0;
    if (c->ev_read) {
        event_free(c->ev_read);
        c->ev_read = NULL;
    }
    if (c->amqp) {
        amqp_destroy_connection(c->amqp);
        c->amqp = NULL;
    }
    mq_set_last_error(c, why);
    _cleanup_free_ char *msg = xasprintf("connection to broker %s:%d lost: %s", c->info.host, c->info.port, why);
    if (was_up)
        log_warn(conn_fields(c), "%s; reconnecting", msg);
    mq_fail_pending(c, msg);
    if (was_up && c->state_cb)
        c->state_cb(c, 0, msg, c->state_arg);
    schedule_connect(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mq_drain(arg);
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mq_conn *c = arg;
    /* heartbeats are sent and checked inside rabbitmq-c's calls: poll one */
    mq_drain(c);
    int64_t now = mono_ms();
    int outer = c->in_dispatch;
    c->in_dispatch = 1; /* a callback below may publish and fail: defer any reset */
    /* publishes the broker did not confirm in time */
    while (c->pubs && c->pubs->deadline <= now) {
        pending_pub *p = c->pubs;
        c->pubs = p->next;
        if (!c->pubs)
            c->pubs_tail = NULL;
        if (p->cb)
            p->cb(c, 0, "the broker did not confirm the message in time", p->arg);
        free(p);
    }
    for (;;) {
        rpc_call **pp = &c->calls;
        while (*pp && (*pp)->deadline > now)
            pp = &(*pp)->next;
        if (!*pp)
            break;
        rpc_call *k = *pp;
        *pp = k->next;
        k->cb(c, 0, "no reply before the deadline (timeout)", NULL, k->arg);
        rpc_call_free(k);
    }
    c->in_dispatch = outer;
    if (!outer && c->reset_pending) {
        c->reset_pending = 0;
        _cleanup_free_ char *why = xstrdup(c->last_error);
        mq_reset(c, why);
    }
}
