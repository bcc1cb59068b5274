/* mq: the connection object (options, creation, state, freeing), the topology declared on
 * every connect, the consumers restored on every connect. The rest of the module: see
 * mq_priv.h. */
#include "mq.h"

#include <string.h>

#include <amqp.h>

#include "log.h"
#include "mq_priv.h"

void mq_options_defaults(mq_options *o)
{
    memset(o, 0, sizeof(*o));
    o->heartbeat_s = 10;
    o->prefetch = 64;
    o->connect_timeout_ms = 5000;
    o->reconnect_min_ms = 200;
    o->reconnect_max_ms = 10000;
    o->confirm_timeout_ms = 10000;
    o->max_message_bytes = MQ_MAX_MESSAGE_BYTES;
}

char *mq_dup_bytes(amqp_bytes_t b)
{
    char *s = xmalloc(b.len + 1);
    if (b.len)
        memcpy(s, b.bytes, b.len);
    s[b.len] = '\0';
    return s;
}

/* Says what an amqp_rpc_reply_t means, in the broker's or the library's words. Caller frees. */
char *mq_reply_text(amqp_rpc_reply_t r, const char *what)
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
            return xasprintf("%s: broker closed the connection: %u %.*s", what, m->reply_code, (int)m->reply_text.len,
                             (const char *)m->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            return xasprintf("%s: broker closed the channel: %u %.*s", what, m->reply_code, (int)m->reply_text.len,
                             (const char *)m->reply_text.bytes);
        }
        return xasprintf("%s: unexpected broker method 0x%08x", what, r.reply.id);
    }
    return xasprintf("%s: unknown reply type", what);
}

void mq_set_last_error(mq_conn *c, const char *e)
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
    if (c->opt.max_message_bytes == 0)
        c->opt.max_message_bytes = MQ_MAX_MESSAGE_BYTES;
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
    c->evq = evq_new(base);
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
    c->n_decls++;
    if (c->decls_tail)
        c->decls_tail->next = d;
    else
        c->decls = d;
    c->decls_tail = d;
    return d;
}

static void decl_added(mq_conn *c, decl *d)
{
    if (!c->up)
        return;
    char *e = NULL;
    /* an RPC on the loop (up to the RPC timeout): registrations come before mq_start in the
     * daemons, so this is only a tool's late declaration */
    if (mq_apply_decl(c->amqp, d, &e) < 0) {
        log_error(conn_fields(c), "%s", e);
        mq_reset(c, e);
        free(e);
    } else {
        mq_drain(c);
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

int mq_apply_decl(amqp_connection_state_t amqp, const decl *d, char **err)
{
    amqp_rpc_reply_t r;
    switch (d->kind) {
    case DECL_EXCHANGE:
        amqp_exchange_declare(amqp, MQ_CHANNEL, bytes(d->name), bytes(d->type), 0, 1, 0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(amqp);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            _cleanup_free_ char *what = xasprintf("could not declare exchange %s", d->name);
            *err = mq_reply_text(r, what);
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
        amqp_queue_declare(amqp, MQ_CHANNEL, bytes(d->name), 0, !transient, transient, transient, args);
        r = amqp_get_rpc_reply(amqp);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            _cleanup_free_ char *what = xasprintf("could not declare queue %s", d->name);
            *err = mq_reply_text(r, what);
            return -1;
        }
        return 0;
    }
    case DECL_BIND:
        amqp_queue_bind(amqp, MQ_CHANNEL, bytes(d->name), bytes(d->other), bytes(d->key), amqp_empty_table);
        r = amqp_get_rpc_reply(amqp);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            _cleanup_free_ char *what =
                xasprintf("could not bind queue %s to %s with key %s", d->name, d->other, d->key);
            *err = mq_reply_text(r, what);
            return -1;
        }
        return 0;
    }
    return 0;
}

/* ---- consumers --------------------------------------------------------------------- */

int mq_consume_on(amqp_connection_state_t amqp, const char *queue, char **tag, char **err)
{
    amqp_basic_consume_ok_t *ok =
        amqp_basic_consume(amqp, MQ_CHANNEL, bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (!ok) {
        _cleanup_free_ char *what = xasprintf("could not consume from queue %s", queue);
        *err = mq_reply_text(amqp_get_rpc_reply(amqp), what);
        return -1;
    }
    *tag = mq_dup_bytes(ok->consumer_tag);
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
    c->n_consumers++;
    if (c->up) {
        char *e = NULL;
        /* an RPC on the loop, as in decl_added */
        if (mq_consume_on(c->amqp, k->queue, &k->tag, &e) < 0) {
            log_error(conn_fields(c), "%s", e);
            mq_reset(c, e);
            free(e);
        } else {
            mq_drain(c);
        }
    }
}

void mq_decls_free(decl *d)
{
    while (d) {
        decl *n = d->next;
        free(d->name);
        free(d->type);
        free(d->other);
        free(d->key);
        free(d);
        d = n;
    }
}

void mq_free(mq_conn *c)
{
    if (!c)
        return;
    if (c->dial) {
        /* a connect in progress: its socket is shut down so the worker stops waiting on the
         * broker (a TCP connect still in progress ends by its own timeout); evq_free below
         * then runs its hand-over, which frees it */
        log_info(conn_fields(c), "connect to broker %s:%d abandoned: the connection is being closed",
                 c->dial->info.host, c->dial->info.port);
        mq_dial_abandon(c->dial);
        mq_dial_join(c->dial);
        c->dial = NULL;
    }
    evq_free(c->evq);
    c->evq = NULL;
    mq_guard_free(c->guard);
    c->guard = NULL;
    if (c->amqp) {
        if (c->up) {
            /* a goodbye, not a wait: a stalled broker holds the exit up 1 s (the channel's
             * close is not answered, so the connection's is not tried) */
            struct timeval tv = {.tv_sec = 1};
            amqp_set_rpc_timeout(c->amqp, &tv);
            amqp_rpc_reply_t r = amqp_channel_close(c->amqp, MQ_CHANNEL, AMQP_REPLY_SUCCESS);
            if (r.reply_type == AMQP_RESPONSE_NORMAL)
                amqp_connection_close(c->amqp, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(c->amqp);
        c->amqp = NULL;
    }
    c->up = 0;
    mq_fail_pending(c, "connection closed");
    if (c->ev_read)
        event_free(c->ev_read);
    if (c->ev_timer)
        event_free(c->ev_timer);
    if (c->ev_house)
        event_free(c->ev_house);
    mq_decls_free(c->decls);
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
