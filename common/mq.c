#include "mq.h"

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

#define MQ_CHANNEL 1
#define MQ_FRAME_MAX 131072
#define MQ_HOUSEKEEP_MS 250

typedef struct decl {
    struct decl *next;
    enum { DECL_EXCHANGE, DECL_QUEUE, DECL_BIND } kind;
    char *name;  /* exchange or queue */
    char *type;  /* exchange type */
    char *other; /* binding: exchange */
    char *key;   /* binding: routing key */
    unsigned flags;
} decl;

typedef struct consumer {
    struct consumer *next;
    char *queue;
    char *tag; /* broker-assigned, per connection */
    mq_deliver_cb cb;
    void *arg;
} consumer;

typedef struct pending_pub {
    struct pending_pub *next;
    uint64_t tag;
    int64_t deadline;
    mq_confirm_cb cb;
    void *arg;
} pending_pub;

typedef struct rpc_call {
    struct rpc_call *next;
    char corr[37];
    int64_t deadline;
    mq_rpc_cb cb;
    void *arg;
    int done;
    char **from; /* users whose reply is accepted (NULL-terminated; NULL = any) */
} rpc_call;

static void rpc_call_free(rpc_call *k)
{
    if (!k)
        return;
    for (char **p = k->from; p && *p; p++)
        free(*p);
    free(k->from);
    free(k);
}

struct mq_delivery {
    mq_message msg;
    uint64_t tag;
    uint64_t generation;
    int n_headers;         /* string-valued headers, copied */
    char **hkeys;
    char **hvals;
    char *strs[10];        /* owned copies backing msg's strings */
};

struct mq_conn {
    struct event_base *base;
    char *url;
    char *name;
    char *ca_file, *cert_file, *key_file;
    struct amqp_connection_info info; /* the broker in use: a copy of brokers[cur] */
    struct {
        char *parsed;                      /* amqp_parse_url's copy of this broker's URL */
        struct amqp_connection_info info; /* points into parsed */
    } brokers[MQ_MAX_BROKERS];
    int n_brokers, cur;
    int tried; /* brokers tried since the last success or the last full round */
    mq_options opt;

    amqp_connection_state_t amqp;
    struct event *ev_read;
    struct event *ev_timer; /* reconnect */
    struct event *ev_house; /* heartbeats, deadlines */
    int up;
    int connecting;
    int backoff_ms;
    uint64_t generation;
    char *last_error;
    int in_dispatch;
    int reset_pending;

    uint64_t next_tag; /* publisher confirm sequence */
    pending_pub *pubs, *pubs_tail;
    rpc_call *calls;
    char *reply_queue;

    decl *decls, *decls_tail;
    consumer *consumers;

    mq_state_cb state_cb;
    void *state_arg;
};

static void mq_reset(mq_conn *c, const char *why);
static int schedule_connect(mq_conn *c);
static void drain(mq_conn *c);

static const log_fields *conn_fields(const mq_conn *c)
{
    (void)c;
    return NULL;
}

void mq_options_defaults(mq_options *o)
{
    memset(o, 0, sizeof(*o));
    o->heartbeat_s = 10;
    o->prefetch = 64;
    o->connect_timeout_ms = 5000;
    o->reconnect_min_ms = 200;
    o->reconnect_max_ms = 10000;
    o->confirm_timeout_ms = 10000;
}

static amqp_bytes_t bytes(const char *s)
{
    return s ? amqp_cstring_bytes(s) : amqp_empty_bytes;
}

static char *dup_bytes(amqp_bytes_t b)
{
    char *s = xmalloc(b.len + 1);
    if (b.len)
        memcpy(s, b.bytes, b.len);
    s[b.len] = '\0';
    return s;
}

/* Says what an amqp_rpc_reply_t means, in the broker's or the library's words. Caller frees. */
static char *reply_text(amqp_rpc_reply_t r, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return xasprintf("%s: ok", what);
    case AMQP_RESPONSE_NONE:
        return xasprintf("%s: no reply from the broker", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return xasprintf("%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            return xasprintf("%s: broker closed the connection: %u %.*s", what, m->reply_code,
                             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            return xasprintf("%s: broker closed the channel: %u %.*s", what, m->reply_code,
                             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        }
        return xasprintf("%s: unexpected broker method 0x%08x", what, r.reply.id);
    }
    return xasprintf("%s: unknown reply type", what);
}

static void set_last_error(mq_conn *c, const char *e)
{
    char *copy = xstrdup(e ? e : "");
    free(c->last_error);
    c->last_error = copy;
}

int mq_new(struct event_base *base, const mq_options *opt, mq_conn **out, char **err)
{
    if (!opt->url || !*opt->url) {
        *err = xstrdup("no broker URL configured ([amqp] url or FERRY_AMQP_URL)");
        return -1;
    }
    mq_conn *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->opt = *opt;
    c->url = xstrdup(opt->url);
    c->name = xstrdup(opt->name ? opt->name : "ferry");
    c->ca_file = xstrdup(opt->ca_file && *opt->ca_file ? opt->ca_file : FERRY_SYSTEM_CA_FILE);
    c->cert_file = xstrdup(opt->cert_file ? opt->cert_file : "");
    c->key_file = xstrdup(opt->key_file ? opt->key_file : "");
    c->opt.url = c->url;
    c->opt.name = c->name;
    c->opt.ca_file = c->ca_file;
    c->opt.cert_file = c->cert_file;
    c->opt.key_file = c->key_file;
    if (c->opt.reconnect_min_ms <= 0)
        c->opt.reconnect_min_ms = 200;
    if (c->opt.reconnect_max_ms < c->opt.reconnect_min_ms)
        c->opt.reconnect_max_ms = c->opt.reconnect_min_ms;
    if (c->opt.connect_timeout_ms <= 0)
        c->opt.connect_timeout_ms = 5000;
    if (c->opt.confirm_timeout_ms <= 0)
        c->opt.confirm_timeout_ms = 10000;
    if (c->opt.prefetch <= 0)
        c->opt.prefetch = 64;
    /* one URL, or several separated by commas (a cluster's nodes, tried in turn) */
    _cleanup_free_ char *list = xstrdup(opt->url);
    char *save = NULL;
    for (char *u = strtok_r(list, ", \t", &save); u; u = strtok_r(NULL, ", \t", &save)) {
        if (c->n_brokers == MQ_MAX_BROKERS) {
            *err = xasprintf("invalid broker URL list: more than %d URLs", MQ_MAX_BROKERS);
            mq_free(c);
            return -1;
        }
        int i = c->n_brokers++;
        c->brokers[i].parsed = xstrdup(u);
        amqp_default_connection_info(&c->brokers[i].info);
        int rc = amqp_parse_url(c->brokers[i].parsed, &c->brokers[i].info);
        if (rc != AMQP_STATUS_OK) {
            *err = xasprintf("invalid broker URL%s: %s (expected amqp://user:password@host:port/vhost)",
                             c->n_brokers > 1 || (save && *save) ? " in the list" : "", amqp_error_string2(rc));
            mq_free(c);
            return -1;
        }
        /* "amqp://host:5672/" names the empty vhost, which nobody means: take the default "/" */
        if (!c->brokers[i].info.vhost || !*c->brokers[i].info.vhost)
            c->brokers[i].info.vhost = "/";
    }
    if (c->n_brokers == 0) {
        *err = xstrdup("no broker URL configured ([amqp] url or FERRY_AMQP_URL)");
        mq_free(c);
        return -1;
    }
    c->info = c->brokers[0].info;
    c->last_error = xstrdup("");
    c->backoff_ms = c->opt.reconnect_min_ms;
    *out = c;
    return 0;
}

void mq_on_state(mq_conn *c, mq_state_cb cb, void *arg)
{
    c->state_cb = cb;
    c->state_arg = arg;
}

int mq_is_up(const mq_conn *c)
{
    return c->up;
}

struct event_base *mq_base(mq_conn *c)
{
    return c->base;
}

uint64_t mq_generation(const mq_conn *c)
{
    return c->generation;
}

const char *mq_last_error(const mq_conn *c)
{
    return c->last_error ? c->last_error : "";
}

/* ---- topology ---------------------------------------------------------------------- */

static decl *add_decl(mq_conn *c)
{
    decl *d = xcalloc(1, sizeof(*d));
    if (c->decls_tail)
        c->decls_tail->next = d;
    else
        c->decls = d;
    c->decls_tail = d;
    return d;
}

static int apply_decl(mq_conn *c, const decl *d, char **err);

static void decl_added(mq_conn *c, decl *d)
{
    if (!c->up)
        return;
    char *e = NULL;
    if (apply_decl(c, d, &e) < 0) {
        log_error(conn_fields(c), "%s", e);
        mq_reset(c, e);
        free(e);
    } else {
        drain(c);
    }
}

void mq_declare_exchange(mq_conn *c, const char *name, const char *type)
{
    decl *d = add_decl(c);
    d->kind = DECL_EXCHANGE;
    d->name = xstrdup(name);
    d->type = xstrdup(type);
    decl_added(c, d);
}

void mq_declare_queue(mq_conn *c, const char *name, unsigned flags)
{
    decl *d = add_decl(c);
    d->kind = DECL_QUEUE;
    d->name = xstrdup(name);
    d->flags = flags;
    decl_added(c, d);
}

void mq_bind(mq_conn *c, const char *queue, const char *exchange, const char *key)
{
    decl *d = add_decl(c);
    d->kind = DECL_BIND;
    d->name = xstrdup(queue);
    d->other = xstrdup(exchange);
    d->key = xstrdup(key);
    decl_added(c, d);
}

void mq_declare_ferry_topology(mq_conn *c)
{
    mq_declare_exchange(c, MQ_EXCHANGE, "direct");
    mq_declare_exchange(c, MQ_EVENTS_EXCHANGE, "topic");
    mq_declare_exchange(c, MQ_DEAD_EXCHANGE, "fanout");
    mq_declare_exchange(c, MQ_REPLY_EXCHANGE, "direct");
    mq_declare_queue(c, MQ_DEAD_QUEUE, MQ_Q_QUORUM);
    mq_bind(c, MQ_DEAD_QUEUE, MQ_DEAD_EXCHANGE, "");
    mq_declare_queue(c, MQ_SCHEDULER_QUEUE, MQ_Q_QUORUM | MQ_Q_DEAD_LETTER);
    mq_bind(c, MQ_SCHEDULER_QUEUE, MQ_EXCHANGE, MQ_SCHEDULER_KEY);
}

void mq_declare_compute_queue(mq_conn *c, const char *host)
{
    _cleanup_free_ char *q = xasprintf("ferry.compute.%s", host);
    _cleanup_free_ char *k = xasprintf("compute.%s", host);
    mq_declare_queue(c, q, MQ_Q_QUORUM | MQ_Q_DEAD_LETTER);
    mq_bind(c, q, MQ_EXCHANGE, k);
}

static int apply_decl(mq_conn *c, const decl *d, char **err)
{
    amqp_rpc_reply_t r;
    switch (d->kind) {
    case DECL_EXCHANGE:
        amqp_exchange_declare(c->amqp, MQ_CHANNEL, bytes(d->name), bytes(d->type), 0, 1, 0, 0,
                              amqp_empty_table);
        r = amqp_get_rpc_reply(c->amqp);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            _cleanup_free_ char *what = xasprintf("could not declare exchange %s", d->name);
            *err = reply_text(r, what);
            return -1;
        }
        return 0;
    case DECL_QUEUE: {
        amqp_table_entry_t e[2];
        int n = 0;
        if (d->flags & MQ_Q_QUORUM) {
            e[n].key = amqp_cstring_bytes("x-queue-type");
            e[n].value.kind = AMQP_FIELD_KIND_UTF8;
            e[n].value.value.bytes = amqp_cstring_bytes("quorum");
            n++;
        }
        if (d->flags & MQ_Q_DEAD_LETTER) {
            e[n].key = amqp_cstring_bytes("x-dead-letter-exchange");
            e[n].value.kind = AMQP_FIELD_KIND_UTF8;
            e[n].value.value.bytes = amqp_cstring_bytes(MQ_DEAD_EXCHANGE);
            n++;
        }
        amqp_table_t args = {.num_entries = n, .entries = e};
        int transient = (d->flags & MQ_Q_TRANSIENT) != 0;
        amqp_queue_declare(c->amqp, MQ_CHANNEL, bytes(d->name), 0, !transient, transient, transient, args);
        r = amqp_get_rpc_reply(c->amqp);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            _cleanup_free_ char *what = xasprintf("could not declare queue %s", d->name);
            *err = reply_text(r, what);
            return -1;
        }
        return 0;
    }
    case DECL_BIND:
        amqp_queue_bind(c->amqp, MQ_CHANNEL, bytes(d->name), bytes(d->other), bytes(d->key),
                        amqp_empty_table);
        r = amqp_get_rpc_reply(c->amqp);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            _cleanup_free_ char *what =
                xasprintf("could not bind queue %s to %s with key %s", d->name, d->other, d->key);
            *err = reply_text(r, what);
            return -1;
        }
        return 0;
    }
    return 0;
}

/* ---- consumers --------------------------------------------------------------------- */

static int start_consumer(mq_conn *c, consumer *k, int no_ack, char **err)
{
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(c->amqp, MQ_CHANNEL, bytes(k->queue),
                                                     amqp_empty_bytes, 0, no_ack, 0, amqp_empty_table);
    if (!ok) {
        _cleanup_free_ char *what = xasprintf("could not consume from queue %s", k->queue);
        *err = reply_text(amqp_get_rpc_reply(c->amqp), what);
        return -1;
    }
    free(k->tag);
    k->tag = dup_bytes(ok->consumer_tag);
    return 0;
}

void mq_consume(mq_conn *c, const char *queue, mq_deliver_cb cb, void *arg)
{
    consumer *k = xcalloc(1, sizeof(*k));
    k->queue = xstrdup(queue);
    k->cb = cb;
    k->arg = arg;
    k->next = c->consumers;
    c->consumers = k;
    if (c->up) {
        char *e = NULL;
        if (start_consumer(c, k, 0, &e) < 0) {
            log_error(conn_fields(c), "%s", e);
            mq_reset(c, e);
            free(e);
        } else {
            drain(c);
        }
    }
}

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
        *err = reply_text(amqp_get_rpc_reply(c->amqp), "could not declare the RPC reply queue");
        return -1;
    }
    free(c->reply_queue);
    c->reply_queue = dup_bytes(q->queue);
    /* answers come through ferry.reply, bound by the queue's own name (the exchange is part of
     * ferry's topology: declared on connect, or by deploy/rabbitmq/setup.sh) */
    amqp_queue_bind(c->amqp, MQ_CHANNEL, bytes(c->reply_queue), amqp_cstring_bytes(MQ_REPLY_EXCHANGE),
                    bytes(c->reply_queue), amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = reply_text(r, "could not bind the RPC reply queue to " MQ_REPLY_EXCHANGE);
        return -1;
    }
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(c->amqp, MQ_CHANNEL, bytes(c->reply_queue),
                                                     amqp_cstring_bytes("rpc-replies"), 0, 1, 1, amqp_empty_table);
    if (!ok) {
        *err = reply_text(amqp_get_rpc_reply(c->amqp), "could not consume the RPC reply queue");
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
        *err = reply_text(r, what);
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
        *err = reply_text(r, "could not open a channel");
        return -1;
    }
    amqp_confirm_select(c->amqp, MQ_CHANNEL);
    r = amqp_get_rpc_reply(c->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = reply_text(r, "could not enable publisher confirms");
        return -1;
    }
    c->next_tag = 1;
    amqp_basic_qos(c->amqp, MQ_CHANNEL, 0, (uint16_t)(c->opt.prefetch > 65535 ? 65535 : c->opt.prefetch), 0);
    r = amqp_get_rpc_reply(c->amqp);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *err = reply_text(r, "could not set the prefetch");
        return -1;
    }
    for (decl *d = c->decls; d; d = d->next)
        if (apply_decl(c, d, err) < 0)
            return -1;
    if (!c->opt.no_rpc_replies && setup_reply_queue(c, err) < 0)
        return -1;
    for (consumer *k = c->consumers; k; k = k->next)
        if (start_consumer(c, k, 0, err) < 0)
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
        set_last_error(c, err);
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
    set_last_error(c, "");
    c->ev_read = event_new(c->base, amqp_get_sockfd(c->amqp), EV_READ | EV_PERSIST, on_readable, c);
    event_add(c->ev_read, NULL);
    log_info(conn_fields(c), "connected to broker %s:%d vhost %s as %s (connection %llu)", c->info.host,
             c->info.port, c->info.vhost, c->info.user, (unsigned long long)c->generation);
    if (c->state_cb)
        c->state_cb(c, 1, NULL, c->state_arg);
    drain(c); /* frames may already wait in rabbitmq-c's buffers */
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

static void fail_pending(mq_conn *c, const char *why)
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
static void mq_reset(mq_conn *c, const char *why)
{
    if (c->in_dispatch) {
        /* a callback is running on this connection's data: finish it first */
        c->reset_pending = 1;
        set_last_error(c, why);
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
    set_last_error(c, why);
    _cleanup_free_ char *msg = xasprintf("connection to broker %s:%d lost: %s", c->info.host, c->info.port, why);
    if (was_up)
        log_warn(conn_fields(c), "%s; reconnecting", msg);
    fail_pending(c, msg);
    if (was_up && c->state_cb)
        c->state_cb(c, 0, msg, c->state_arg);
    schedule_connect(c);
}

void mq_free(mq_conn *c)
{
    if (!c)
        return;
    if (c->amqp) {
        if (c->up) {
            amqp_channel_close(c->amqp, MQ_CHANNEL, AMQP_REPLY_SUCCESS);
            amqp_connection_close(c->amqp, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(c->amqp);
        c->amqp = NULL;
    }
    c->up = 0;
    fail_pending(c, "connection closed");
    if (c->ev_read)
        event_free(c->ev_read);
    if (c->ev_timer)
        event_free(c->ev_timer);
    if (c->ev_house)
        event_free(c->ev_house);
    for (decl *d = c->decls; d;) {
        decl *n = d->next;
        free(d->name);
        free(d->type);
        free(d->other);
        free(d->key);
        free(d);
        d = n;
    }
    for (consumer *k = c->consumers; k;) {
        consumer *n = k->next;
        free(k->queue);
        free(k->tag);
        free(k);
        k = n;
    }
    free(c->reply_queue);
    free(c->url);
    for (int i = 0; i < c->n_brokers; i++)
        free(c->brokers[i].parsed);
    free(c->name);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->last_error);
    free(c);
}

/* ---- publishing -------------------------------------------------------------------- */

static int publish_raw(mq_conn *c, const char *exchange, const char *key, const mq_props *p, const void *body,
                       size_t len, char **err)
{
    if (!c->up) {
        *err = xasprintf("not connected to the broker%s%s", *mq_last_error(c) ? ": " : "", mq_last_error(c));
        return -1;
    }
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    mq_props none = {0};
    if (!p)
        p = &none;
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    /* who sends it, vouched for by the broker (it refuses a user_id that is not the login's):
     * every consumer decides by it */
    if (c->info.user && *c->info.user) {
        props._flags |= AMQP_BASIC_USER_ID_FLAG;
        props.user_id = amqp_cstring_bytes(c->info.user);
    }
    props.content_type = amqp_cstring_bytes(p->content_type ? p->content_type : "application/json");
    props.delivery_mode = p->transient ? 1 : 2;
    props.timestamp = (uint64_t)(wall_ms() / 1000);
    if (p->message_id) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(p->message_id);
    }
    if (p->correlation_id) {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(p->correlation_id);
    }
    if (p->reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(p->reply_to);
    }
    if (p->type) {
        props._flags |= AMQP_BASIC_TYPE_FLAG;
        props.type = amqp_cstring_bytes(p->type);
    }
    char exp[24];
    if (p->expiration_ms > 0) {
        snprintf(exp, sizeof(exp), "%lld", (long long)p->expiration_ms);
        props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        props.expiration = amqp_cstring_bytes(exp);
    }
    int nh = p->n_headers;
    amqp_table_entry_t *h = NULL;
    if (nh > 0) {
        h = xcalloc((size_t)nh, sizeof(*h));
        for (int i = 0; i < nh; i++) {
            h[i].key = amqp_cstring_bytes(p->headers[i].key);
            h[i].value.kind = AMQP_FIELD_KIND_UTF8;
            h[i].value.value.bytes = amqp_cstring_bytes(p->headers[i].value ? p->headers[i].value : "");
        }
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers.num_entries = nh;
        props.headers.entries = h;
    }
    amqp_bytes_t b = {.len = len, .bytes = (void *)body};
    int rc = amqp_basic_publish(c->amqp, MQ_CHANNEL, bytes(exchange), bytes(key), 0, 0, &props, b);
    free(h);
    if (rc != AMQP_STATUS_OK) {
        *err = xasprintf("could not publish to %s/%s: %s", exchange, key, amqp_error_string2(rc));
        mq_reset(c, *err);
        return -1;
    }
    return 0;
}

static void track(mq_conn *c, mq_confirm_cb cb, void *arg)
{
    pending_pub *p = xcalloc(1, sizeof(*p));
    p->tag = c->next_tag++;
    p->deadline = mono_ms() + c->opt.confirm_timeout_ms;
    p->cb = cb;
    p->arg = arg;
    if (c->pubs_tail)
        c->pubs_tail->next = p;
    else
        c->pubs = p;
    c->pubs_tail = p;
}

int mq_publish(mq_conn *c, const char *exchange, const char *key, const mq_props *props, const void *body,
               size_t len, mq_confirm_cb cb, void *arg, char **err)
{
    if (publish_raw(c, exchange, key, props, body, len, err) < 0)
        return -1;
    track(c, cb, arg);
    return 0;
}

/* Completes the confirms up to tag (multiple) or of tag alone. */
static void confirm(mq_conn *c, uint64_t tag, int multiple, int ok)
{
    pending_pub **pp = &c->pubs, *prev = NULL;
    while (*pp) {
        pending_pub *p = *pp;
        if (p->tag == tag || (multiple && p->tag < tag)) {
            uint64_t t = p->tag;
            *pp = p->next;
            if (c->pubs_tail == p)
                c->pubs_tail = prev;
            if (p->cb)
                p->cb(c, ok, ok ? NULL : "the broker refused the message (basic.nack)", p->arg);
            free(p);
            if (t == tag)
                return;
            continue;
        }
        if (p->tag > tag)
            return;
        prev = p;
        pp = &p->next;
    }
}

/* ---- deliveries -------------------------------------------------------------------- */

const mq_message *mq_delivery_message(const mq_delivery *d)
{
    return &d->msg;
}

const char *mq_message_header(const mq_message *m, const char *key)
{
    const mq_delivery *d = (const mq_delivery *)m; /* msg is the first member */
    for (int i = 0; i < d->n_headers; i++)
        if (strcmp(d->hkeys[i], key) == 0)
            return d->hvals[i];
    return NULL;
}

static char *opt_str(mq_delivery *d, int slot, const amqp_basic_properties_t *p, amqp_flags_t flag,
                     amqp_bytes_t b)
{
    if (!(p->_flags & flag))
        return NULL;
    d->strs[slot] = dup_bytes(b);
    return d->strs[slot];
}

static mq_delivery *make_delivery(mq_conn *c, const amqp_envelope_t *env, const char *queue)
{
    mq_delivery *d = xcalloc(1, sizeof(*d));
    const amqp_basic_properties_t *p = &env->message.properties;
    d->tag = env->delivery_tag;
    d->generation = c->generation;
    d->strs[0] = dup_bytes(env->exchange);
    d->strs[1] = dup_bytes(env->routing_key);
    d->strs[2] = xstrdup(queue ? queue : "");
    d->strs[3] = dup_bytes(env->message.body);
    d->msg.exchange = d->strs[0];
    d->msg.routing_key = d->strs[1];
    d->msg.queue = d->strs[2];
    d->msg.body = d->strs[3];
    d->msg.len = env->message.body.len;
    d->msg.content_type = opt_str(d, 4, p, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type);
    d->msg.message_id = opt_str(d, 5, p, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id);
    d->msg.correlation_id = opt_str(d, 6, p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id);
    d->msg.reply_to = opt_str(d, 7, p, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to);
    d->msg.type = opt_str(d, 8, p, AMQP_BASIC_TYPE_FLAG, p->type);
    d->msg.user_id = opt_str(d, 9, p, AMQP_BASIC_USER_ID_FLAG, p->user_id);
    d->msg.redelivered = env->redelivered;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG && p->headers.num_entries > 0) {
        d->hkeys = xcalloc((size_t)p->headers.num_entries, sizeof(char *));
        d->hvals = xcalloc((size_t)p->headers.num_entries, sizeof(char *));
        for (int i = 0; i < p->headers.num_entries; i++) {
            const amqp_table_entry_t *e = &p->headers.entries[i];
            if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
                continue;
            d->hkeys[d->n_headers] = dup_bytes(e->key);
            d->hvals[d->n_headers] = dup_bytes(e->value.value.bytes);
            d->n_headers++;
        }
    }
    return d;
}

static void delivery_free(mq_delivery *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(d->strs); i++)
        free(d->strs[i]);
    for (int i = 0; i < d->n_headers; i++) {
        free(d->hkeys[i]);
        free(d->hvals[i]);
    }
    free(d->hkeys);
    free(d->hvals);
    free(d);
}

static int delivery_current(mq_conn *c, const mq_delivery *d)
{
    return c->up && d->generation == c->generation;
}

void mq_ack(mq_conn *c, mq_delivery *d)
{
    if (delivery_current(c, d)) {
        int rc = amqp_basic_ack(c->amqp, MQ_CHANNEL, d->tag, 0);
        if (rc != AMQP_STATUS_OK) {
            _cleanup_free_ char *e = xasprintf("could not ack delivery %llu: %s", (unsigned long long)d->tag,
                                               amqp_error_string2(rc));
            mq_reset(c, e);
        }
    } else {
        log_debug(conn_fields(c), "ack of a delivery from an earlier connection skipped: the broker redelivers it");
    }
    delivery_free(d);
}

void mq_reject(mq_conn *c, mq_delivery *d, int requeue)
{
    if (delivery_current(c, d)) {
        int rc = amqp_basic_reject(c->amqp, MQ_CHANNEL, d->tag, requeue);
        if (rc != AMQP_STATUS_OK) {
            _cleanup_free_ char *e = xasprintf("could not reject delivery %llu: %s", (unsigned long long)d->tag,
                                               amqp_error_string2(rc));
            mq_reset(c, e);
        }
    }
    delivery_free(d);
}

typedef struct dead_ctx {
    mq_delivery *d;
} dead_ctx;

static void dead_confirmed(mq_conn *c, int ok, const char *err, void *arg)
{
    dead_ctx *x = arg;
    if (ok) {
        mq_ack(c, x->d);
    } else {
        log_error(conn_fields(c), "could not dead-letter a message from %s: %s; it stays in its queue",
                  x->d->msg.queue, err);
        if (delivery_current(c, x->d))
            mq_reject(c, x->d, 1);
        else
            delivery_free(x->d);
    }
    free(x);
}

void mq_dead_letter(mq_conn *c, mq_delivery *d, const char *reason)
{
    if (!delivery_current(c, d)) {
        /* the broker already put it back when the connection dropped */
        delivery_free(d);
        return;
    }
    /* ours first, then the original string headers (but not an earlier reason of ours) */
    mq_header *h = xcalloc((size_t)d->n_headers + 4, sizeof(*h));
    int n = 0;
    h[n++] = (mq_header){MQ_REASON_HEADER, reason ? reason : "unspecified"};
    h[n++] = (mq_header){"x-ferry-queue", d->msg.queue};
    h[n++] = (mq_header){"x-ferry-exchange", d->msg.exchange};
    h[n++] = (mq_header){"x-ferry-routing-key", d->msg.routing_key};
    for (int i = 0; i < d->n_headers; i++)
        if (strncmp(d->hkeys[i], "x-ferry-", 8) != 0)
            h[n++] = (mq_header){d->hkeys[i], d->hvals[i]};
    mq_props p = {.content_type = d->msg.content_type,
                  .message_id = d->msg.message_id,
                  .correlation_id = d->msg.correlation_id,
                  .type = d->msg.type,
                  .headers = h,
                  .n_headers = n};
    char *err = NULL;
    int rc = publish_raw(c, MQ_DEAD_EXCHANGE, d->msg.queue, &p, d->msg.body, d->msg.len, &err);
    free(h);
    if (rc < 0) {
        log_error(conn_fields(c), "could not dead-letter a message from %s: %s; it will be redelivered",
                  d->msg.queue, err);
        free(err);
        delivery_free(d);
        return;
    }
    dead_ctx *x = xcalloc(1, sizeof(*x));
    x->d = d;
    track(c, dead_confirmed, x);
}

/* ---- RPC --------------------------------------------------------------------------- */

int mq_rpc_call(mq_conn *c, const char *exchange, const char *key, const void *body, size_t len, int timeout_ms,
                const char *const *from, mq_rpc_cb cb, void *arg, char **err)
{
    if (c->opt.no_rpc_replies) {
        *err = xstrdup("this connection takes no RPC replies (no_rpc_replies)");
        return -1;
    }
    if (!c->up || !c->reply_queue) {
        *err = xasprintf("not connected to the broker%s%s", *mq_last_error(c) ? ": " : "", mq_last_error(c));
        return -1;
    }
    rpc_call *k = xcalloc(1, sizeof(*k));
    uuid_new(k->corr);
    k->deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 30000);
    k->cb = cb;
    k->arg = arg;
    if (from) {
        size_t n = 0;
        while (from[n])
            n++;
        k->from = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            k->from[i] = xstrdup(from[i]);
    }
    mq_props p = {.correlation_id = k->corr,
                  .reply_to = c->reply_queue,
                  .transient = 1,
                  .expiration_ms = timeout_ms > 0 ? timeout_ms : 30000};
    if (publish_raw(c, exchange, key, &p, body, len, err) < 0) {
        rpc_call_free(k);
        return -1;
    }
    track(c, NULL, NULL);
    k->next = c->calls;
    c->calls = k;
    return 0;
}

int mq_rpc_reply(mq_conn *c, mq_delivery *d, const void *body, size_t len, char **err)
{
    if (d->msg.reply_to && *d->msg.reply_to) {
        mq_props p = {.correlation_id = d->msg.correlation_id, .transient = 1};
        /* ferry.reply reaches only the reply queues bound to it by their own name: an agent
         * needs no write on the default exchange, which reaches every queue */
        if (publish_raw(c, MQ_REPLY_EXCHANGE, d->msg.reply_to, &p, body, len, err) < 0) {
            delivery_free(d);
            return -1;
        }
        track(c, NULL, NULL);
    }
    mq_ack(c, d);
    return 0;
}

static void on_reply(mq_conn *c, const amqp_envelope_t *env)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    if (!(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)) {
        log_warn(conn_fields(c), "RPC reply without correlation id dropped");
        return;
    }
    _cleanup_free_ char *corr = dup_bytes(p->correlation_id);
    for (rpc_call **pp = &c->calls; *pp; pp = &(*pp)->next) {
        rpc_call *k = *pp;
        if (strcmp(k->corr, corr) == 0) {
            mq_delivery *d = make_delivery(c, env, c->reply_queue);
            if (k->from) {
                int ok = 0;
                for (char **u = k->from; *u && !ok; u++)
                    ok = d->msg.user_id && strcmp(*u, d->msg.user_id) == 0;
                if (!ok) {
                    /* a forged answer: the call goes on waiting for the one it asked */
                    _cleanup_free_ char *u = log_escape(d->msg.user_id ? d->msg.user_id : "(no user_id)");
                    log_warn(conn_fields(c), "RPC reply %s from %s refused: not from %s%s", corr, u, k->from[0],
                             k->from[0] && k->from[1] ? " or the other users expected" : "");
                    delivery_free(d);
                    return;
                }
            }
            *pp = k->next;
            k->cb(c, 1, NULL, &d->msg, k->arg);
            delivery_free(d);
            rpc_call_free(k);
            return;
        }
    }
    log_debug(conn_fields(c), "late or unknown RPC reply %s dropped", corr);
}

/* ---- the read path ----------------------------------------------------------------- */

static void dispatch_delivery(mq_conn *c, const amqp_envelope_t *env)
{
    if (env->consumer_tag.len == strlen("rpc-replies") &&
        memcmp(env->consumer_tag.bytes, "rpc-replies", env->consumer_tag.len) == 0) {
        on_reply(c, env);
        return;
    }
    for (consumer *k = c->consumers; k; k = k->next) {
        if (k->tag && env->consumer_tag.len == strlen(k->tag) &&
            memcmp(env->consumer_tag.bytes, k->tag, env->consumer_tag.len) == 0) {
            k->cb(c, make_delivery(c, env, k->queue), k->arg);
            return;
        }
    }
    log_warn(conn_fields(c), "delivery for unknown consumer requeued");
    amqp_basic_reject(c->amqp, MQ_CHANNEL, env->delivery_tag, 1);
}

/* Handles a frame that is not a delivery. Returns 0, or -1 with *why (caller frees). */
static int handle_frame(mq_conn *c, const amqp_frame_t *f, char **why)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        confirm(c, a->delivery_tag, a->multiple, 1);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *a = f->payload.method.decoded;
        confirm(c, a->delivery_tag, a->multiple, 0);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_message_t m;
        amqp_rpc_reply_t r = amqp_read_message(c->amqp, f->channel, &m, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            *why = reply_text(r, "could not read a returned message");
            return -1;
        }
        amqp_destroy_message(&m);
        return 0;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        *why = xstrdup("the broker cancelled a consumer (queue deleted?)");
        return -1;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f->payload.method.decoded;
        *why = xasprintf("broker closed the channel: %u %.*s", m->reply_code, (int)m->reply_text.len,
                         (const char *)m->reply_text.bytes);
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(c->amqp, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f->payload.method.decoded;
        *why = xasprintf("broker closed the connection: %u %.*s", m->reply_code, (int)m->reply_text.len,
                         (const char *)m->reply_text.bytes);
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(c->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    default:
        return 0;
    }
}

/* Reads and dispatches every frame available now without blocking. */
static void drain(mq_conn *c)
{
    if (!c->up || c->in_dispatch)
        return;
    c->in_dispatch = 1;
    char *why = NULL;
    /* a bounded turn (32 frames or 20 ms): a consumer whose callbacks are slow must not keep
     * the loop's timers (lease renewals, heartbeats) from running */
    int64_t until = mono_ms() + 20;
    for (int budget = 0; budget < 32 && c->up && !c->reset_pending && (budget == 0 || mono_ms() < until); budget++) {
        amqp_envelope_t env;
        struct timeval zero = {0, 0};
        amqp_maybe_release_buffers(c->amqp);
        amqp_rpc_reply_t r = amqp_consume_message(c->amqp, &env, &zero, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            dispatch_delivery(c, &env);
            amqp_destroy_envelope(&env);
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            amqp_frame_t f;
            int rc = amqp_simple_wait_frame_noblock(c->amqp, &f, &zero);
            if (rc == AMQP_STATUS_TIMEOUT)
                break;
            if (rc != AMQP_STATUS_OK) {
                why = xasprintf("could not read from the broker: %s", amqp_error_string2(rc));
                break;
            }
            if (handle_frame(c, &f, &why) < 0)
                break;
            continue;
        }
        why = reply_text(r, "could not read from the broker");
        break;
    }
    c->in_dispatch = 0;
    if (c->reset_pending) {
        c->reset_pending = 0;
        if (!why)
            why = xstrdup(c->last_error);
    }
    if (why) {
        mq_reset(c, why);
        free(why);
    } else if (c->up && (amqp_data_in_buffer(c->amqp) || amqp_frames_enqueued(c->amqp))) {
        /* budget spent: come back on the next loop iteration rather than starve timers */
        event_active(c->ev_read, EV_READ, 0);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mq_conn *c = arg;
    /* heartbeats are sent and checked inside rabbitmq-c's calls: poll one */
    drain(c);
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

/* ---- helpers for tools and tests --------------------------------------------------- */

static void loop_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

int mq_loop_until(struct event_base *base, const int *done, int timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : 0;
    struct event *tick = event_new(base, -1, EV_PERSIST, loop_tick, NULL);
    struct timeval tv = {0, 20 * 1000};
    event_add(tick, &tv);
    int rc = 0;
    while (!*done) {
        if (deadline && mono_ms() >= deadline) {
            rc = -1;
            break;
        }
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return rc;
}
