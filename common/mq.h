/* mq: AMQP 0-9-1 over rabbitmq-c, driven by the process's libevent loop.
 *
 * One connection, one channel, in publisher-confirm mode. The connection is opened with
 * retry and exponential backoff; on (re)connect it declares the registered topology,
 * restores the consumers and the private RPC reply queue. When the broker goes away, every
 * publish that was not confirmed and every RPC in flight is failed through its callback
 * (the caller decides to retry), unacked deliveries are redelivered by the broker, and the
 * connection comes back by itself.
 *
 * Threads: everything here runs on the loop's thread, but for the connect itself (socket, TLS,
 * login, channel, topology, consumers), which runs on a worker thread of its own and hands the
 * ready connection (or why there is none) back to the loop through an evq: a broker that
 * accepts TCP but does not answer holds up that thread, never the loop. So the base must be made
 * after evthread_use_pthreads(). A declaration or consumer registered while already connected
 * is an RPC on the loop (bounded by connect_timeout_ms): register them before mq_start. */
#ifndef FERRY_MQ_H
#define FERRY_MQ_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "util.h"

typedef struct mq_conn mq_conn;
typedef struct mq_delivery mq_delivery;

/* The names of the topology of docs/DESIGN.md "AMQP topology". */
#define MQ_EXCHANGE "ferry"
#define MQ_EVENTS_EXCHANGE "ferry.events"
#define MQ_DEAD_EXCHANGE "ferry.dead"
#define MQ_SCHEDULER_QUEUE "ferry.scheduler"
#define MQ_SCHEDULER_KEY "scheduler"
#define MQ_DEAD_QUEUE "ferry.dead"
/* RPC answers: a direct exchange to which every private reply queue is bound by its own name,
 * so answering needs no write on the default exchange (which reaches every queue). */
#define MQ_REPLY_EXCHANGE "ferry.reply"
/* Header carrying the reason on a dead-lettered message. */
#define MQ_REASON_HEADER "x-ferry-reason"

/* Default of [amqp] max_message_bytes: a delivery's body over it is never assembled. */
#define MQ_MAX_MESSAGE_BYTES (1024 * 1024)

/* Brokers one connection may know (a cluster's nodes). */
#define MQ_MAX_BROKERS 8

typedef struct mq_options {
    const char *url;        /* amqp://user:pass@host:port/vhost or amqps://... (copied); several
                             * separated by commas are tried in turn when one cannot be reached */
    const char *name;       /* connection name shown by the broker and in logs (copied) */
    const char *ca_file;    /* amqps: CAs the broker must chain to (copied; NULL/"" = the system's) */
    const char *cert_file;  /* amqps: client certificate (copied; NULL/"" = none) */
    const char *key_file;   /* amqps: its private key (copied; required with cert_file) */
    int heartbeat_s;        /* 0 = none; else a write the broker does not take for twice this
                             * (at least connect_timeout_ms) fails: TCP_USER_TIMEOUT */
    int prefetch;           /* unacked deliveries at most (basic.qos) */
    int connect_timeout_ms; /* TCP connect, handshake and each declare */
    int reconnect_min_ms;   /* first retry delay, doubled up to reconnect_max_ms */
    int reconnect_max_ms;
    int confirm_timeout_ms;   /* a publish not confirmed by then fails */
    int no_rpc_replies;       /* 1: this connection calls no RPC (an agent): no reply queue, so its
                             * broker user needs no right to bind one to ferry.reply */
    size_t max_message_bytes; /* a delivery whose body is larger (known from its content header)
                               * is not assembled: a consumer's goes to ferry.dead with the
                               * reason and its first 4 KiB, an RPC reply is dropped (0 = 1 MiB) */
} mq_options;

/* Fills o with the defaults of the [amqp] section (url stays NULL). */
void mq_options_defaults(mq_options *o);

/* One string header of a published message. */
typedef struct mq_header {
    const char *key;
    const char *value;
} mq_header;

/* Properties of a message to publish; every pointer is borrowed for the call. */
typedef struct mq_props {
    const char *content_type; /* NULL = "application/json" */
    const char *message_id;
    const char *correlation_id;
    const char *reply_to;
    const char *type;
    int transient;         /* 0 = persistent (delivery mode 2) */
    int64_t expiration_ms; /* 0 = never expires */
    const mq_header *headers;
    int n_headers;
} mq_props;

/* A received message as the callback sees it. Every pointer is borrowed and valid until the
 * delivery is finished (acked, rejected, dead-lettered) or the callback returns for no-ack
 * and reply deliveries. body is NUL-terminated for convenience, but may hold NULs: use len. */
typedef struct mq_message {
    const char *exchange;
    const char *routing_key;
    const char *queue;
    const char *body;
    size_t len;
    const char *content_type; /* NULL when absent, like every property below */
    const char *message_id;
    const char *correlation_id;
    const char *reply_to;
    const char *type;
    const char *user_id; /* the sender's broker user: the broker refuses a forged one */
    int redelivered;
} mq_message;

/* Returns the value of string header key in m, or NULL (borrowed). */
const char *mq_message_header(const mq_message *m, const char *key);

/* Called when the broker confirms (ok=1) or refuses / loses (ok=0, err says why) a publish. */
typedef void (*mq_confirm_cb)(mq_conn *c, int ok, const char *err, void *arg);
/* Called for each delivery of a manual-ack consumer; the callee owns d and must finish it
 * with exactly one of mq_ack, mq_reject or mq_dead_letter (now or later). */
typedef void (*mq_deliver_cb)(mq_conn *c, mq_delivery *d, void *arg);
/* Called when the connection comes up (up=1, after topology and consumers are restored) or
 * goes down (up=0, err says why). */
typedef void (*mq_state_cb)(mq_conn *c, int up, const char *err, void *arg);
/* Called once per RPC call: ok=1 with the reply (borrowed for the call), or ok=0 with err
 * (timeout, connection lost, refused publish). */
typedef void (*mq_rpc_cb)(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg);

/* Creates a connection bound to base (borrowed; must outlive it; made after
 * evthread_use_pthreads()). Nothing happens until
 * mq_start. Returns -1 with *err (caller frees) when the URL is invalid. Caller frees with
 * mq_free. */
int mq_new(struct event_base *base, const mq_options *opt, mq_conn **out, char **err) FERRY_WUR;
/* Closes the connection gracefully (waiting 1 s at most for each answer of the broker) and frees
 * everything; pending publishes and RPC calls are failed first. A connect in progress is
 * abandoned: its socket is shut down and its thread joined (a TCP connect not yet through may
 * take up to connect_timeout_ms to give up). NULL is accepted. Not to be called from inside one
 * of c's callbacks. */
void mq_free(mq_conn *c);
/* Sets the state callback (arg borrowed). */
void mq_on_state(mq_conn *c, mq_state_cb cb, void *arg);
/* Starts connecting (now, then with backoff until it succeeds). */
void mq_start(mq_conn *c);
/* Returns 1 while connected and ready. */
int mq_is_up(const mq_conn *c);
/* Returns the base the connection runs on (borrowed). */
struct event_base *mq_base(mq_conn *c);
/* Returns how many times the connection came up (1 after the first connect). */
uint64_t mq_generation(const mq_conn *c);
/* Returns the last connection error text (borrowed; "" when none). */
const char *mq_last_error(const mq_conn *c);

/* Registers a durable exchange (type "direct", "topic", "fanout"), declared on every connect. */
void mq_declare_exchange(mq_conn *c, const char *name, const char *type);
/* Queue flags for mq_declare_queue. */
enum {
    MQ_Q_QUORUM = 1 << 0,      /* x-queue-type=quorum (else classic) */
    MQ_Q_DEAD_LETTER = 1 << 1, /* rejected/expired messages go to ferry.dead */
    MQ_Q_TRANSIENT = 1 << 2,   /* this connection's only: exclusive, auto-deleted, not durable */
};
/* Registers a queue (durable unless MQ_Q_TRANSIENT), declared on every connect. */
void mq_declare_queue(mq_conn *c, const char *name, unsigned flags);
/* Registers a binding of queue to exchange with key, declared on every connect. */
void mq_bind(mq_conn *c, const char *queue, const char *exchange, const char *key);
/* Registers the topology of docs/DESIGN.md "AMQP topology": exchanges ferry, ferry.events,
 * ferry.dead, ferry.reply; quorum queue ferry.scheduler (dead-lettering to ferry.dead) bound
 * with key "scheduler"; queue ferry.dead. */
void mq_declare_ferry_topology(mq_conn *c);
/* Registers the RPC queue of compute host `host` (ferry.compute.<host>, key compute.<host>). */
void mq_declare_compute_queue(mq_conn *c, const char *host);

/* Registers a manual-ack consumer of queue (restored on every connect). Deliveries beyond the
 * prefetch wait at the broker. */
void mq_consume(mq_conn *c, const char *queue, mq_deliver_cb cb, void *arg);

/* Publishes body to exchange/key, persistent unless props->transient, with user_id set to the
 * user this connection logged in as; cb (may be NULL) is
 * called when the broker confirms or refuses it, or the connection is lost first. Returns -1
 * with *err (caller frees) when not connected or the write failed; cb is then not called. */
int mq_publish(mq_conn *c, const char *exchange, const char *key, const mq_props *props, const void *body, size_t len,
               mq_confirm_cb cb, void *arg, char **err) FERRY_WUR;

/* The delivered message (borrowed; valid until d is finished). */
const mq_message *mq_delivery_message(const mq_delivery *d);
/* Acknowledges and frees d. If the connection was lost since d arrived, the broker will
 * redeliver it and this only frees d. */
void mq_ack(mq_conn *c, mq_delivery *d);
/* Rejects and frees d; requeue=1 puts it back in its queue, 0 dead-letters it (no reason). */
void mq_reject(mq_conn *c, mq_delivery *d, int requeue);
/* Publishes a copy of d to ferry.dead with `reason` in header x-ferry-reason (and the
 * original exchange, key and queue), waits for the broker's confirm, then acks d and frees
 * it. If that publish fails, d is left unacked for redelivery: nothing is lost. */
void mq_dead_letter(mq_conn *c, mq_delivery *d, const char *reason);
/* How many messages c has dead-lettered with mq_dead_letter since it was made (for /metrics);
 * 0 for NULL. */
uint64_t mq_dead_lettered(const mq_conn *c);

/* Sends an RPC request to exchange/key with a private reply queue and a correlation id; cb
 * gets the reply, or an error at the deadline (the request expires at the broker then too).
 * from (NULL-terminated, copied; NULL = anyone) names the broker users whose reply is taken:
 * a reply from anyone else is logged and dropped, and the call goes on waiting. */
int mq_rpc_call(mq_conn *c, const char *exchange, const char *key, const void *body, size_t len, int timeout_ms,
                const char *const *from, mq_rpc_cb cb, void *arg, char **err) FERRY_WUR;
/* Answers the RPC request d with body (through ferry.reply to its reply_to, same correlation id), then acks and
 * frees d. A request without reply_to is only acked. Returns -1 with *err when the reply
 * could not be sent (d is then left for redelivery and freed). */
int mq_rpc_reply(mq_conn *c, mq_delivery *d, const void *body, size_t len, char **err) FERRY_WUR;

/* Runs the loop until *done becomes non-zero or timeout_ms passes (0 = no limit).
 * Returns 0 when done, -1 on timeout. For tools and tests. */
int mq_loop_until(struct event_base *base, const int *done, int timeout_ms) FERRY_WUR;

#endif
