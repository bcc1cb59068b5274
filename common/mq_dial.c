/* mq_dial: one connect attempt, on a worker thread of its own: the socket (TCP, or TLS with
 * the broker's certificate checked), the AMQP login, the channel, publisher confirms, the
 * prefetch, the topology, the RPC reply queue and the consumers — every call of rabbitmq-c that
 * waits on the broker while connecting — so that a broker that accepts TCP but never answers
 * (stopped, overloaded) holds up this thread and not the loop. The worker owns the new
 * connection until it posts the attempt to the loop (mq_connect.c takes it over there). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
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
 * thread (the worker's): rabbitmq-c reports only "verification failed". */
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
                          e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                          e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT;
        snprintf(tls_verify_error, sizeof(tls_verify_error), "%s (certificate %s, depth %d)%s%s",
                 X509_verify_cert_error_string(e), subject[0] ? subject : "?", X509_STORE_CTX_get_error_depth(x),
                 unknown_ca ? ": not issued by a CA in " : "", unknown_ca && tls_ca_file ? tls_ca_file : "");
    }
    return ok;
}

/* amqps: the broker's certificate must chain to ca_file and name the host of the URL — a DNS
 * name or an IP address (rabbitmq-c 0.11's own check knows only DNS names, so OpenSSL's is
 * used); a client certificate goes along when configured. */
static int tls_setup(mq_dial *d, amqp_socket_t *sock, char **err)
{
    if (amqp_ssl_socket_set_cacert(sock, d->opt.ca_file) != AMQP_STATUS_OK) {
        _cleanup_free_ char *why = pem_problem(d->opt.ca_file);
        *err = xasprintf("TLS: cannot load the CA certificates ([amqp] ca_file) %s", why);
        return -1;
    }
    if (*d->opt.cert_file && amqp_ssl_socket_set_key(sock, d->opt.cert_file, d->opt.key_file) != AMQP_STATUS_OK) {
        _cleanup_free_ char *why = pem_problem(access(d->opt.cert_file, R_OK) < 0 ? d->opt.cert_file : d->opt.key_file);
        *err = xasprintf("TLS: cannot load the client certificate %s with key %s ([amqp] cert_file, key_file): %s",
                         d->opt.cert_file, d->opt.key_file, why);
        return -1;
    }
    SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);
    X509_VERIFY_PARAM *vp = ctx ? SSL_CTX_get0_param(ctx) : NULL;
    if (!vp) {
        *err = xstrdup("TLS: rabbitmq-c gave no OpenSSL context to verify the broker's name with");
        return -1;
    }
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, d->info.host) != 1 && X509_VERIFY_PARAM_set1_host(vp, d->info.host, 0) != 1) {
        *err = xasprintf("TLS: cannot verify the broker's certificate against the host name '%s'", d->info.host);
        return -1;
    }
    X509_STORE_set_verify_cb(SSL_CTX_get_cert_store(ctx), tls_verify_cb);
    tls_verify_error[0] = 0;
    tls_ca_file = d->opt.ca_file;
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 0); /* OpenSSL checks the name, above */
    return 0;
}

/* Declares the private RPC reply queue (exclusive, server-named, gone with the connection),
 * binds it to ferry.reply by its own name and consumes it. 0, or -1 with *err. */
static int setup_reply_queue(mq_dial *d, char **err)
{
    amqp_queue_declare_ok_t *q =
        amqp_queue_declare(d->amqp, MQ_CHANNEL, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (!q) {
        *err = mq_reply_text(amqp_get_rpc_reply(d->amqp), "could not declare the RPC reply queue");
        return -1;
    }
    free(d->reply_queue);
    d->reply_queue = mq_dup_bytes(q->queue);
    /* answers come through ferry.reply, bound by the queue's own name (the exchange is part of
     * ferry's topology: declared on connect, or by deploy/rabbitmq/setup.sh) */
    amqp_queue_bind(d->amqp, MQ_CHANNEL, bytes(d->reply_queue), amqp_cstring_bytes(MQ_REPLY_EXCHANGE),
                    bytes(d->reply_queue), amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(d->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not bind the RPC reply queue to " MQ_REPLY_EXCHANGE);
        return -1;
    }
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(d->amqp, MQ_CHANNEL, bytes(d->reply_queue),
                                                     amqp_cstring_bytes("rpc-replies"), 0, 1, 1, amqp_empty_table);
    if (!ok) {
        *err = mq_reply_text(amqp_get_rpc_reply(d->amqp), "could not consume the RPC reply queue");
        return -1;
    }
    return 0;
}

static int do_connect(mq_dial *d, char **err)
{
    d->amqp = amqp_new_connection();
    amqp_socket_t *sock;
    if (d->info.ssl) {
        sock = amqp_ssl_socket_new(d->amqp);
        if (sock && tls_setup(d, sock, err) < 0)
            return -1;
    } else {
        sock = amqp_tcp_socket_new(d->amqp);
    }
    if (!sock) {
        *err = xstrdup("could not create an AMQP socket");
        return -1;
    }
    struct timeval tv = {.tv_sec = d->opt.connect_timeout_ms / 1000,
                         .tv_usec = (d->opt.connect_timeout_ms % 1000) * 1000};
    errno = 0;
    int rc = amqp_socket_open_noblock(sock, d->info.host, d->info.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        /* rabbitmq-c says only "a socket error occurred": ask the system which */
        int e = rc == AMQP_STATUS_SOCKET_ERROR
                    ? probe_connect_errno(d->info.host, d->info.port, d->opt.connect_timeout_ms)
                    : 0;
        if (e)
            *err = xasprintf("could not connect to %s:%d: %s", d->info.host, d->info.port, strerror(e));
        else if (d->info.ssl && tls_verify_error[0])
            *err = xasprintf("could not connect to %s:%d: TLS: the broker's certificate is refused: %s", d->info.host,
                             d->info.port, tls_verify_error);
        else
            *err = xasprintf("could not connect to %s:%d: %s", d->info.host, d->info.port, amqp_error_string2(rc));
        return -1;
    }
    /* from here on mq_dial_abandon may shut the socket down to end a wait on the broker */
    pthread_mutex_lock(&d->lock);
    d->fd = amqp_get_sockfd(d->amqp);
    int abandoned = d->abandoned;
    pthread_mutex_unlock(&d->lock);
    if (abandoned) {
        *err = xstrdup("connect abandoned: the connection is being closed");
        return -1;
    }
    if (d->opt.heartbeat_s > 0) {
        /* rabbitmq-c writes (publish, ack, heartbeat) wait for room in the socket without a
         * deadline: a broker that stops reading would hold the loop for as long as the kernel
         * keeps the connection. The kernel gives up on bytes left unacknowledged (or a zero
         * window) for as long as a missed heartbeat takes to notice, and the write fails. */
        unsigned int ms = (unsigned int)d->opt.heartbeat_s * 2000u;
        if (ms < (unsigned int)d->opt.connect_timeout_ms)
            ms = (unsigned int)d->opt.connect_timeout_ms;
        if (setsockopt(d->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
            log_debug(NULL, "could not set TCP_USER_TIMEOUT on the AMQP socket: %s", strerror(errno));
    }
    amqp_set_handshake_timeout(d->amqp, &tv);
    amqp_set_rpc_timeout(d->amqp, &tv);

    amqp_table_entry_t props[1];
    props[0].key = amqp_cstring_bytes("connection_name");
    props[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props[0].value.value.bytes = amqp_cstring_bytes(d->opt.name);
    amqp_table_t ptable = {.num_entries = 1, .entries = props};
    amqp_rpc_reply_t r = amqp_login_with_properties(d->amqp, d->info.vhost, 0, MQ_FRAME_MAX, d->opt.heartbeat_s,
                                                    &ptable, AMQP_SASL_METHOD_PLAIN, d->info.user, d->info.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        _cleanup_free_ char *what =
            xasprintf("could not log in to %s:%d as %s", d->info.host, d->info.port, d->info.user);
        *err = mq_reply_text(r, what);
        if (!d->info.ssl && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_SOCKET_ERROR) {
            /* a TLS listener hangs up on the plain AMQP greeting */
            char *more = xasprintf(
                "%s (the broker hung up during the AMQP handshake: if this port speaks TLS, use amqps://)", *err);
            free(*err);
            *err = more;
        }
        return -1;
    }
    amqp_channel_open(d->amqp, MQ_CHANNEL);
    r = amqp_get_rpc_reply(d->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not open a channel");
        return -1;
    }
    amqp_confirm_select(d->amqp, MQ_CHANNEL);
    r = amqp_get_rpc_reply(d->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not enable publisher confirms");
        return -1;
    }
    amqp_basic_qos(d->amqp, MQ_CHANNEL, 0, (uint16_t)(d->opt.prefetch > 65535 ? 65535 : d->opt.prefetch), 0);
    r = amqp_get_rpc_reply(d->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = mq_reply_text(r, "could not set the prefetch");
        return -1;
    }
    for (const decl *x = d->decls; x; x = x->next)
        if (mq_apply_decl(d->amqp, x, err) < 0)
            return -1;
    if (!d->opt.no_rpc_replies && setup_reply_queue(d, err) < 0)
        return -1;
    for (int i = 0; i < d->n_consumers; i++)
        if (mq_consume_on(d->amqp, d->queues[i], &d->tags[i], err) < 0)
            return -1;
    return 0;
}

/* The worker: connects, keeps the connection on success or destroys it on failure, and posts
 * the attempt to the loop as its last act (the loop may free it at once). */
static void *dial_main(void *arg)
{
    mq_dial *d = arg;
    char *err = NULL;
    if (do_connect(d, &err) < 0) {
        d->err = err ? err : xstrdup("could not connect (no reason given)");
        pthread_mutex_lock(&d->lock);
        d->fd = -1; /* closed below: mq_dial_abandon must not shut down a reused number */
        pthread_mutex_unlock(&d->lock);
        if (d->amqp) {
            amqp_destroy_connection(d->amqp);
            d->amqp = NULL;
        }
    }
    evq_fn done = d->done;
    evq_post(d->q, done, d);
    return NULL;
}

static decl *decls_copy(const decl *from, int *n)
{
    decl *head = NULL, **tail = &head;
    *n = 0;
    for (const decl *x = from; x; x = x->next) {
        decl *y = xcalloc(1, sizeof(*y));
        y->kind = x->kind;
        y->name = x->name ? xstrdup(x->name) : NULL;
        y->type = x->type ? xstrdup(x->type) : NULL;
        y->other = x->other ? xstrdup(x->other) : NULL;
        y->key = x->key ? xstrdup(x->key) : NULL;
        y->flags = x->flags;
        *tail = y;
        tail = &y->next;
        (*n)++;
    }
    return head;
}

mq_dial *mq_dial_start(mq_conn *c, evq_fn done, char **err)
{
    mq_dial *d = xcalloc(1, sizeof(*d));
    d->info = c->info;
    d->opt = c->opt;
    d->decls = decls_copy(c->decls, &d->n_decls);
    for (consumer *k = c->consumers; k; k = k->next)
        d->n_consumers++;
    d->ks = xcalloc((size_t)d->n_consumers + 1, sizeof(*d->ks));
    d->queues = xcalloc((size_t)d->n_consumers + 1, sizeof(*d->queues));
    d->tags = xcalloc((size_t)d->n_consumers + 1, sizeof(*d->tags));
    int i = 0;
    for (consumer *k = c->consumers; k; k = k->next, i++) {
        d->ks[i] = k;
        d->queues[i] = xstrdup(k->queue);
    }
    d->c = c;
    d->q = c->evq;
    d->done = done;
    d->fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    int e = pthread_create(&d->thread, NULL, dial_main, d);
    if (e != 0) {
        *err = xasprintf("could not connect to %s:%d: cannot start the connect thread: %s", d->info.host, d->info.port,
                         strerror(e));
        d->joined = 1;
        mq_dial_free(d);
        return NULL;
    }
    return d;
}

void mq_dial_abandon(mq_dial *d)
{
    pthread_mutex_lock(&d->lock);
    d->abandoned = 1;
    if (d->fd >= 0)
        shutdown(d->fd, SHUT_RDWR);
    pthread_mutex_unlock(&d->lock);
}

int mq_dial_abandoned(mq_dial *d)
{
    pthread_mutex_lock(&d->lock);
    int a = d->abandoned;
    pthread_mutex_unlock(&d->lock);
    return a;
}

void mq_dial_join(mq_dial *d)
{
    if (d->joined)
        return;
    pthread_join(d->thread, NULL);
    d->joined = 1;
}

void mq_dial_free(mq_dial *d)
{
    if (!d)
        return;
    if (d->amqp)
        amqp_destroy_connection(d->amqp);
    mq_decls_free(d->decls);
    for (int i = 0; i < d->n_consumers; i++) {
        free(d->queues[i]);
        free(d->tags[i]);
    }
    free(d->ks);
    free(d->queues);
    free(d->tags);
    free(d->reply_queue);
    free(d->err);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
