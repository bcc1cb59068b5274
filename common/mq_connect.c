/* mq_connect: the loop's side of connecting to a broker of the list — an attempt runs on a
 * worker thread (mq_dial.c) and its result comes back here through the connection's evq — the
 * reconnect with backoff, the reset that fails what was in flight, and the housekeeping timer
 * (heartbeats, confirm and RPC deadlines). Nothing here waits on the broker. */
#include <string.h>
#include <sys/time.h>

#include <amqp.h>

#include "log.h"
#include "mq_priv.h"

static int schedule_connect(mq_conn *c);

/* ---- connect / reset --------------------------------------------------------------- */

static void on_readable(evutil_socket_t fd, short what, void *arg);

/* An attempt failed with err: say so (once for a run of the same error), try again later. */
static void connect_failed(mq_conn *c, const char *err)
{
    int again = strcmp(err, c->last_error) == 0;
    mq_set_last_error(c, err);
    int delay = schedule_connect(c);
    _cleanup_free_ char *next = c->n_brokers > 1
                                    ? xasprintf("trying broker %s:%d in %d ms", c->info.host, c->info.port, delay)
                                    : xasprintf("retrying in %d ms", delay);
    if (!again)
        log_warn(conn_fields(c), "%s; %s", err, next);
    else
        log_debug(conn_fields(c), "%s; %s", err, next);
}

/* Runs on the loop when the worker is done with attempt d (or inside mq_free's evq_free, when
 * abandoned): takes the connection over, or reports why there is none. */
static void on_dial_done(void *arg)
{
    mq_dial *d = arg;
    if (mq_dial_abandoned(d)) {
        /* mq_free joined the thread and is freeing c: only the attempt is left to free */
        mq_dial_free(d);
        return;
    }
    mq_conn *c = d->c;
    mq_dial_join(d); /* the worker posted d as its last act: this is its exit */
    c->dial = NULL;
    c->connecting = 0;
    if (d->err) {
        connect_failed(c, d->err);
        mq_dial_free(d);
        return;
    }
    if (d->n_decls != c->n_decls || d->n_consumers != c->n_consumers) {
        /* something was registered while the worker declared the rest: redo it all at once
         * rather than wait on the broker here */
        log_debug(conn_fields(c), "topology or consumers registered while connecting to %s:%d: connecting again",
                  d->info.host, d->info.port);
        mq_dial_free(d);
        struct timeval now = {0, 0};
        evtimer_add(c->ev_timer, &now);
        return;
    }
    c->amqp = d->amqp; /* the loop's from now on */
    d->amqp = NULL;
    for (int i = 0; i < d->n_consumers; i++) {
        free(d->ks[i]->tag);
        d->ks[i]->tag = d->tags[i];
        d->tags[i] = NULL;
    }
    free(c->reply_queue);
    c->reply_queue = d->reply_queue;
    d->reply_queue = NULL;
    mq_dial_free(d);
    c->next_tag = 1;
    c->tried = 0;
    c->up = 1;
    c->generation++;
    c->backoff_ms = c->opt.reconnect_min_ms;
    mq_set_last_error(c, "");
    c->ev_read = event_new(c->base, amqp_get_sockfd(c->amqp), EV_READ | EV_PERSIST, on_readable, c);
    event_add(c->ev_read, NULL);
    log_info(conn_fields(c), "connected to broker %s:%d vhost %s as %s (connection %llu)", c->info.host, c->info.port,
             c->info.vhost, c->info.user, (unsigned long long)c->generation);
    if (c->state_cb)
        c->state_cb(c, 1, NULL, c->state_arg);
    mq_drain(c); /* frames may already wait in rabbitmq-c's buffers */
}

/* The connect timer: starts an attempt on a worker thread (one at a time). */
static void on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mq_conn *c = arg;
    if (c->dial || c->up)
        return;
    char *err = NULL;
    c->connecting = 1;
    c->dial = mq_dial_start(c, on_dial_done, &err);
    if (!c->dial) {
        c->connecting = 0;
        connect_failed(c, err);
        free(err);
    }
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
