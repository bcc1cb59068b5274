/* Integration tests of common/mq against the real RabbitMQ started by the harness:
 * publish -> confirm -> consume -> ack; a malformed message dead-lettered with its reason while
 * the consumer keeps going; RPC round trip and timeout; a broker restart loses nothing; a
 * "broker" that accepts TCP but never answers holds up the connect, never the loop; a publish
 * to a broker that stopped reading fails in bounded time. */
#include "testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include <event2/event.h>
#include <event2/thread.h>

#include "log.h"
#include "mq.h"
#include "msg.h"

typedef struct {
    struct event_base *base;
    mq_conn *c;
} fixture;

static mq_conn *connect_new(struct event_base *base, const char *name)
{
    mq_options o;
    mq_options_defaults(&o);
    o.url = test_env("FERRY_TEST_AMQP_URL");
    o.name = name;
    o.heartbeat_s = 2;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 1000;
    o.prefetch = 16;
    mq_conn *c = NULL;
    char *err = NULL;
    if (mq_new(base, &o, &c, &err) < 0)
        fail_msg("mq_new: %s", err);
    return c;
}

static int wait_up(fixture *f)
{
    int64_t end = mono_ms() + 30000;
    while (!mq_is_up(f->c) && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    return mq_is_up(f->c) ? 0 : -1;
}

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof(*f));
    f->base = event_base_new();
    f->c = connect_new(f->base, "test-mq");
    mq_declare_ferry_topology(f->c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mq_free(f->c);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* ---- publish / confirm / consume / ack ------------------------------------------- */

typedef struct {
    int confirmed, refused;
    int received;
    char ids[256][37];
    int n_ids;
    int seen[256];
    char *want_body;
} counters;

static void on_confirm(mq_conn *c, int ok, const char *err, void *arg)
{
    (void)c;
    (void)err;
    counters *k = arg;
    if (ok)
        k->confirmed++;
    else
        k->refused++;
}

static void on_msg_ack(mq_conn *c, mq_delivery *d, void *arg)
{
    counters *k = arg;
    const mq_message *m = mq_delivery_message(d);
    for (int i = 0; i < k->n_ids; i++) {
        if (m->message_id && strcmp(m->message_id, k->ids[i]) == 0) {
            if (!k->seen[i])
                k->received++;
            k->seen[i]++;
            if (k->want_body)
                assert_memory_equal(m->body, k->want_body, m->len);
        }
    }
    mq_ack(c, d); /* leftovers of earlier runs are acked away too */
}

static void test_publish_confirm_consume_ack(void **state)
{
    fixture *f = *state;
    const char *q = "ferry.test.pubsub";
    mq_declare_queue(f->c, q, MQ_Q_QUORUM);
    mq_bind(f->c, q, MQ_EXCHANGE, "test.pubsub");
    counters k = {0};
    mq_consume(f->c, q, on_msg_ack, &k);
    mq_start(f->c);
    assert_int_equal(wait_up(f), 0);

    char body[] = "{\"hello\":\"world\"}";
    k.want_body = body;
    k.n_ids = 20;
    for (int i = 0; i < k.n_ids; i++) {
        uuid_new(k.ids[i]);
        mq_props p = {.message_id = k.ids[i]};
        char *err = NULL;
        assert_int_equal(mq_publish(f->c, MQ_EXCHANGE, "test.pubsub", &p, body, strlen(body), on_confirm, &k, &err), 0);
    }
    int64_t end = mono_ms() + 20000;
    while ((k.confirmed < k.n_ids || k.received < k.n_ids) && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(k.refused, 0);
    assert_int_equal(k.confirmed, k.n_ids);
    assert_int_equal(k.received, k.n_ids);
}

/* ---- dead-lettering ------------------------------------------------------------------ */

typedef struct {
    int good_seen;
    int bad_dead_lettered;
    char good_id[37];
    char bad_id[37];
    char *dead_reason;
    char *dead_body;
    char *dead_queue;
} dlq_state;

/* The consumer a daemon would run: strict parse, dead-letter what fails, go on. */
static void on_request(mq_conn *c, mq_delivery *d, void *arg)
{
    dlq_state *s = arg;
    const mq_message *m = mq_delivery_message(d);
    msg_envelope *env = NULL;
    char *err = NULL;
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        mq_dead_letter(c, d, err);
        free(err);
        return;
    }
    if (m->message_id && strcmp(m->message_id, s->good_id) == 0)
        s->good_seen++;
    msg_envelope_free(env);
    mq_ack(c, d);
}

static void on_dead(mq_conn *c, mq_delivery *d, void *arg)
{
    dlq_state *s = arg;
    const mq_message *m = mq_delivery_message(d);
    if (m->message_id && strcmp(m->message_id, s->bad_id) == 0) {
        s->bad_dead_lettered++;
        free(s->dead_reason);
        free(s->dead_body);
        free(s->dead_queue);
        s->dead_reason = xstrdup(mq_message_header(m, MQ_REASON_HEADER));
        s->dead_queue = xstrdup(mq_message_header(m, "x-ferry-queue"));
        s->dead_body = xstrndup(m->body, m->len);
    }
    mq_ack(c, d);
}

static void test_malformed_goes_to_dead_letter_queue(void **state)
{
    fixture *f = *state;
    dlq_state s = {0};
    uuid_new(s.good_id);
    uuid_new(s.bad_id);
    mq_consume(f->c, MQ_SCHEDULER_QUEUE, on_request, &s);
    mq_consume(f->c, MQ_DEAD_QUEUE, on_dead, &s);
    mq_start(f->c);
    assert_int_equal(wait_up(f), 0);

    const char *bad = "{\"v\":1,\"type\":\"migration.request\", this is not json";
    _cleanup_free_ char *good = xasprintf("{\"v\":1,\"type\":\"ping\",\"id\":\"%s\",\"body\":{}}", s.good_id);
    counters k = {0};
    char *err = NULL;
    mq_props pb = {.message_id = s.bad_id};
    mq_props pg = {.message_id = s.good_id};
    assert_int_equal(mq_publish(f->c, MQ_EXCHANGE, MQ_SCHEDULER_KEY, &pb, bad, strlen(bad), on_confirm, &k, &err), 0);
    assert_int_equal(mq_publish(f->c, MQ_EXCHANGE, MQ_SCHEDULER_KEY, &pg, good, strlen(good), on_confirm, &k, &err), 0);
    int64_t end = mono_ms() + 20000;
    while ((s.good_seen < 1 || s.bad_dead_lettered < 1) && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(k.confirmed, 2);
    assert_int_equal(s.good_seen, 1);         /* the consumer kept going */
    assert_int_equal(s.bad_dead_lettered, 1); /* the bad one is kept, not lost */
    assert_non_null(s.dead_reason);
    assert_non_null(strstr(s.dead_reason, "invalid JSON"));
    assert_string_equal(s.dead_body, bad); /* byte for byte */
    assert_string_equal(s.dead_queue, MQ_SCHEDULER_QUEUE);
    free(s.dead_reason);
    free(s.dead_body);
    free(s.dead_queue);
}

/* ---- RPC --------------------------------------------------------------------------- */

typedef struct {
    int served;
    int replied, failed;
    char *reply;
    char *error;
    int64_t took_ms;
    int64_t started;
    char *sender; /* user_id of the last request served */
} rpc_state;

static void rpc_server(mq_conn *c, mq_delivery *d, void *arg)
{
    rpc_state *s = arg;
    const mq_message *m = mq_delivery_message(d);
    s->served++;
    free(s->sender);
    s->sender = m->user_id ? xstrdup(m->user_id) : NULL;
    _cleanup_free_ char *reply = xasprintf("{\"echo\":%.*s}", (int)m->len, m->body);
    char *err = NULL;
    if (mq_rpc_reply(c, d, reply, strlen(reply), &err) < 0) {
        fail_msg("mq_rpc_reply: %s", err);
    }
}

static void rpc_done(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)c;
    rpc_state *s = arg;
    s->took_ms = mono_ms() - s->started;
    if (ok) {
        s->replied++;
        s->reply = xstrndup(reply->body, reply->len);
    } else {
        s->failed++;
        s->error = xstrdup(err);
    }
}

static void test_rpc_round_trip_and_timeout(void **state)
{
    fixture *f = *state;
    rpc_state srv = {0};
    mq_declare_compute_queue(f->c, "rpctest");
    mq_declare_compute_queue(f->c, "nobody-listens");
    mq_consume(f->c, "ferry.compute.rpctest", rpc_server, &srv);
    mq_start(f->c);
    assert_int_equal(wait_up(f), 0);

    rpc_state call = {0};
    char *err = NULL;
    call.started = mono_ms();
    const char *from_guest[] = {"guest", NULL}; /* the harness's user, who also answers */
    assert_int_equal(
        mq_rpc_call(f->c, MQ_EXCHANGE, "compute.rpctest", "[1,2,3]", 7, 5000, from_guest, rpc_done, &call, &err), 0);
    int done = 0;
    int64_t end = mono_ms() + 10000;
    while (!(done = call.replied + call.failed) && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(call.replied, 1);
    assert_int_equal(srv.served, 1);
    assert_string_equal(call.reply, "{\"echo\":[1,2,3]}");
    /* the request carried its sender, as the broker vouched for it */
    assert_non_null(srv.sender);
    assert_string_equal(srv.sender, "guest");
    free(call.reply);

    /* an answer from a user the caller did not ask is dropped: the call times out waiting */
    rpc_state forged = {0};
    const char *from_other[] = {"ferry-agent-elsewhere", NULL};
    forged.started = mono_ms();
    assert_int_equal(
        mq_rpc_call(f->c, MQ_EXCHANGE, "compute.rpctest", "[4]", 3, 1000, from_other, rpc_done, &forged, &err), 0);
    end = mono_ms() + 10000;
    while (!(forged.replied + forged.failed) && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(srv.served, 2);
    assert_int_equal(forged.replied, 0);
    assert_int_equal(forged.failed, 1);
    assert_non_null(strstr(forged.error, "timeout"));
    free(forged.error);
    free(srv.sender);

    /* nobody consumes this queue: the caller gets a timeout at its deadline, not a hang */
    rpc_state lost = {0};
    lost.started = mono_ms();
    assert_int_equal(
        mq_rpc_call(f->c, MQ_EXCHANGE, "compute.nobody-listens", "{}", 2, 800, NULL, rpc_done, &lost, &err), 0);
    end = mono_ms() + 10000;
    while (!(lost.replied + lost.failed) && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(lost.failed, 1);
    assert_non_null(strstr(lost.error, "timeout"));
    assert_true(lost.took_ms >= 800);
    assert_true(lost.took_ms < 5000);
    free(lost.error);
}

/* ---- broker restart ----------------------------------------------------------------- */

typedef struct {
    int n;
    char ids[200][37];
    int seen[200];
    int distinct;
    int acked;
    int hold; /* leave this many deliveries unacked (held) */
    mq_delivery *held[64];
    int held_idx[64];
    int n_held;
    int total_held;
    int ups, downs;
} restart_state;

static void restart_consumer(mq_conn *c, mq_delivery *d, void *arg)
{
    restart_state *s = arg;
    const mq_message *m = mq_delivery_message(d);
    int mine = -1;
    for (int i = 0; i < s->n; i++) {
        if (m->message_id && strcmp(m->message_id, s->ids[i]) == 0) {
            mine = i;
            if (!s->seen[i]++)
                s->distinct++;
        }
    }
    if (mine >= 0 && s->n_held < s->hold) {
        s->held_idx[s->n_held] = mine;
        s->held[s->n_held++] = d; /* unacked when the broker goes down */
        s->total_held = s->n_held;
        return;
    }
    s->acked++;
    mq_ack(c, d);
}

static void on_state(mq_conn *c, int up, const char *err, void *arg)
{
    (void)c;
    (void)err;
    restart_state *s = arg;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static void test_broker_restart_loses_nothing(void **state)
{
    fixture *f = *state;
    const char *q = "ferry.test.restart";
    mq_declare_queue(f->c, q, MQ_Q_QUORUM);
    mq_bind(f->c, q, MQ_EXCHANGE, "test.restart");
    restart_state s = {0};
    s.n = 200;
    s.hold = 12; /* below the prefetch of 16 */
    mq_on_state(f->c, on_state, &s);
    mq_start(f->c);
    assert_int_equal(wait_up(f), 0);

    /* confirmed before the restart => must be delivered after it */
    counters k = {0};
    for (int i = 0; i < s.n; i++) {
        uuid_new(s.ids[i]);
        mq_props p = {.message_id = s.ids[i]};
        char *err = NULL;
        _cleanup_free_ char *body = xasprintf("{\"n\":%d}", i);
        assert_int_equal(mq_publish(f->c, MQ_EXCHANGE, "test.restart", &p, body, strlen(body), on_confirm, &k, &err),
                         0);
    }
    int64_t end = mono_ms() + 20000;
    while (k.confirmed + k.refused < s.n && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(k.confirmed, s.n);

    /* consume some, holding 12 unacked, then restart the broker under the consumer */
    mq_consume(f->c, q, restart_consumer, &s);
    end = mono_ms() + 20000;
    while (s.n_held < s.hold && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(s.n_held, s.hold);
    int before_ups = s.ups;

    assert_int_equal(test_sh("\"$FERRY_TEST_HARNESS\" stop-rabbitmq >/dev/null"), 0);

    /* the loss is noticed; a publish while the broker is away is refused loudly, never
     * dropped silently */
    end = mono_ms() + 60000;
    while (s.downs == 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(s.downs >= 1);
    assert_false(mq_is_up(f->c));
    char *perr = NULL;
    mq_props pp = {0};
    assert_int_equal(mq_publish(f->c, MQ_EXCHANGE, "test.restart", &pp, "{}", 2, NULL, NULL, &perr), -1);
    assert_non_null(strstr(perr, "not connected"));
    free(perr);
    /* it keeps trying while the broker is away, then comes back by itself */
    end = mono_ms() + 1500;
    while (mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_false(mq_is_up(f->c));
    /* the held deliveries belong to the dead connection: acking them is harmless */
    for (int i = 0; i < s.n_held; i++)
        mq_ack(f->c, s.held[i]);
    s.n_held = 0;
    s.hold = 0;
    assert_int_equal(test_sh("\"$FERRY_TEST_HARNESS\" start-rabbitmq >/dev/null"), 0);

    end = mono_ms() + 90000;
    while ((s.ups == before_ups || s.distinct < s.n) && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(s.ups > before_ups);   /* reconnected by itself */
    assert_int_equal(s.distinct, s.n); /* every confirmed message arrived */
    for (int i = 0; i < s.n; i++)
        assert_true(s.seen[i] >= 1);
    /* the ones unacked at the restart came again */
    end = mono_ms() + 30000;
    for (int i = 0; i < s.total_held; i++) {
        while (s.seen[s.held_idx[i]] < 2 && mono_ms() < end)
            event_base_loop(f->base, EVLOOP_ONCE);
        assert_true(s.seen[s.held_idx[i]] >= 2);
    }
}

static void count_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (*(int *)arg)++;
}

static mq_conn *silent_conn(struct event_base *base, int port, int connect_timeout_ms)
{
    char url[64];
    snprintf(url, sizeof(url), "amqp://guest:guest@127.0.0.1:%d", port);
    mq_options o;
    mq_options_defaults(&o);
    o.url = url;
    o.name = "test-mq-silent";
    o.heartbeat_s = 2;
    o.connect_timeout_ms = connect_timeout_ms;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 100;
    mq_conn *c = NULL;
    char *err = NULL;
    if (mq_new(base, &o, &c, &err) < 0)
        fail_msg("mq_new: %s", err);
    mq_declare_ferry_topology(c);
    return c;
}

/* A listener that never accept()s is a broker whose process is stopped: the kernel completes
 * TCP connects into its backlog, and no AMQP frame ever comes. The connect attempts wait on
 * their worker thread while the loop's 20 ms timer keeps running, each failed attempt says
 * why, and mq_free abandons an attempt in progress instead of waiting for its timeout. */
static void test_silent_broker_never_blocks_the_loop(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 64), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    int port = ntohs(sa.sin_port);

    struct event_base *base = event_base_new();
    int ticks = 0;
    struct event *tick = event_new(base, -1, EV_PERSIST, count_tick, &ticks);
    struct timeval tv = {0, 20 * 1000};
    event_add(tick, &tv);

    /* attempts of 1.5 s each, 100 ms apart: two fail within 3.5 s */
    mq_conn *c = silent_conn(base, port, 1500);
    mq_start(c);
    int64_t t0 = mono_ms(), last = t0, longest = 0;
    int seen = 0;
    while (mono_ms() - t0 < 3500) {
        event_base_loop(base, EVLOOP_ONCE);
        int64_t now = mono_ms();
        if (ticks != seen) {
            if (now - last > longest)
                longest = now - last;
            last = now;
            seen = ticks;
        }
    }
    assert_false(mq_is_up(c));
    print_message("longest time between two runs of the loop's timer: %lld ms\n", (long long)longest);
    assert_true(longest < 700);
    assert_non_null(strstr(mq_last_error(c), "could not log in to 127.0.0.1:"));
    assert_non_null(strstr(mq_last_error(c), "timed out"));
    mq_free(c);

    /* an attempt that would wait 10 s is abandoned at once by mq_free */
    c = silent_conn(base, port, 10000);
    mq_start(c);
    t0 = mono_ms();
    while (mono_ms() - t0 < 300)
        event_base_loop(base, EVLOOP_ONCE);
    assert_false(mq_is_up(c));
    t0 = mono_ms();
    mq_free(c);
    int64_t took = mono_ms() - t0;
    print_message("mq_free during a connect attempt took %lld ms\n", (long long)took);
    assert_true(took < 3000);

    event_free(tick);
    event_base_free(base);
    close(lfd);
}

/* A free loopback port (bound then released: socat takes it right after). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A connection to the harness's broker through a TCP relay (socat, started here; *relay its
 * pid) with heartbeat_s, up when this returns (the test fails otherwise). socat relays one
 * connection and exits when it ends: a first attempt that reached it but failed (CI saw "a
 * socket error occurred" once, then only refusals) leaves nothing listening; so does a port
 * taken by another socket between free_port and socat's bind. Either is seen (waitpid) and tried
 * again with a new relay on another port, up to three times. */
static mq_conn *relayed_conn(struct event_base *base, const char *name, int heartbeat_s, pid_t *relay)
{
    for (int attempt = 1;; attempt++) {
        int port = free_port();
        char listen_arg[96], to_arg[96];
        snprintf(listen_arg, sizeof(listen_arg), "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", port);
        snprintf(to_arg, sizeof(to_arg), "TCP:127.0.0.1:%s", test_env("FERRY_TEST_AMQP_PORT"));
        char *argv[] = {"socat", listen_arg, to_arg, NULL};
        assert_int_equal(posix_spawnp(relay, "socat", NULL, NULL, argv, environ), 0);
        /* (socat relays one connection, so nothing probes its port: the connect retries until it listens) */
        char url[64];
        snprintf(url, sizeof(url), "amqp://guest:guest@127.0.0.1:%d", port);
        mq_options o;
        mq_options_defaults(&o);
        o.url = url;
        o.name = name;
        o.heartbeat_s = heartbeat_s;
        o.connect_timeout_ms = 2000;
        mq_conn *c = NULL;
        char *err = NULL;
        if (mq_new(base, &o, &c, &err) < 0)
            fail_msg("mq_new: %s", err);
        mq_start(c);
        int64_t end = mono_ms() + 30000;
        int exited = 0, st = 0;
        while (!mq_is_up(c) && mono_ms() < end && !exited) {
            event_base_loop(base, EVLOOP_ONCE);
            exited = waitpid(*relay, &st, WNOHANG) == *relay;
        }
        if (mq_is_up(c))
            return c;
        if (exited && attempt < 3) {
            print_message("the relay on port %d exited (status %d) before the connection: another port\n", port, st);
            mq_free(c);
            continue;
        }
        if (!exited) {
            kill(*relay, SIGTERM);
            waitpid(*relay, NULL, 0);
        }
        fail_msg("no connection through the relay%s: %s", exited ? " (socat exited)" : "", mq_last_error(c));
    }
}

/* The broker stops reading while the loop publishes: the broker is behind a TCP relay (socat,
 * started here) that is SIGSTOPped, so the socket's buffers fill. rabbitmq-c waits for room
 * without a deadline; the publish guard (MQ_PUBLISH_GUARD_MS, 1 s) or the connection's
 * TCP_USER_TIMEOUT (twice the heartbeat), whichever comes first, ends the wait, so the publish
 * fails within seconds instead of holding the loop indefinitely. */
static void test_publish_to_stalled_broker_fails_in_time(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    pid_t relay;
    mq_conn *c = relayed_conn(base, "test-mq-stalled", 2, &relay);
    char *err = NULL;

    kill(relay, SIGSTOP);
    static char body[65536];
    int64_t t0 = mono_ms(), took = 0;
    int failed = 0, n = 0;
    while (!failed && mono_ms() - t0 < 60000) {
        int64_t t = mono_ms();
        if (mq_publish(c, "", "test-mq-nowhere", NULL, body, sizeof(body), NULL, NULL, &err) < 0) {
            failed = 1;
            print_message("publish %d failed after %lld ms: %s\n", n, (long long)(mono_ms() - t), err);
            free(err);
        }
        took = mono_ms() - t;
        n++;
    }
    kill(relay, SIGCONT);
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
    assert_true(failed);
    assert_true(took < 15000); /* TCP_USER_TIMEOUT of 4 s, with room for a loaded machine */
    assert_false(mq_is_up(c));
    mq_free(c);
    event_base_free(base);
}

/* The broker goes silent (behind a SIGSTOPped relay) and its heartbeat is overdue before the
 * loop has read anything: rabbitmq-c 0.11's amqp_basic_publish then reads first with no
 * deadline (amqp_time_s_from_now(0) is "infinite") and would hold the loop until the broker
 * spoke again; CI caught the scheduler so in integration.stalled_broker. The publish guard
 * shuts the socket down after MQ_PUBLISH_GUARD_MS: the publish fails in time, with why. */
static void test_publish_after_overdue_heartbeat_fails_in_time(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    pid_t relay;
    mq_conn *c = relayed_conn(base, "test-mq-overdue", 1, &relay);
    char *err = NULL;
    kill(relay, SIGSTOP);
    /* past twice the heartbeat without running the loop: nothing read, nothing noticed yet */
    usleep(2600 * 1000);
    int64_t t = mono_ms();
    int rc = mq_publish(c, "", "test-mq-nowhere", NULL, "x", 1, NULL, NULL, &err);
    int64_t took = mono_ms() - t;
    kill(relay, SIGCONT);
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
    print_message("publish with the heartbeat overdue: rc %d after %lld ms: %s\n", rc, (long long)took,
                  rc < 0 ? err : "ok");
    /* rabbitmq-c may notice the overdue heartbeat itself (a read that finds nothing at once):
     * either way the publish fails, and never later than the guard */
    assert_int_equal(rc, -1);
    assert_true(took < 4000); /* the guard's 1000 ms (MQ_PUBLISH_GUARD_MS), and room for a loaded machine */
    free(err);
    assert_false(mq_is_up(c));
    mq_free(c);
    event_base_free(base);
}

int main(void)
{
    log_set_proc("test-mq");
    evthread_use_pthreads(); /* mq's connect worker hands its result to the loop (evq) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_confirm_consume_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_goes_to_dead_letter_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_round_trip_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart_loses_nothing, setup, teardown),
        cmocka_unit_test(test_silent_broker_never_blocks_the_loop),
        cmocka_unit_test(test_publish_to_stalled_broker_fails_in_time),
        cmocka_unit_test(test_publish_after_overdue_heartbeat_fails_in_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
