/* mq_priv: what the parts of the mq module share (mq.c: the connection object, topology and
 * consumers; mq_connect.c: reconnect, the hand-over of a new connection to the loop, reset and
 * housekeeping; mq_dial.c: the connect itself, on a worker thread; mq_publish.c: publishes and
 * their confirms; mq_guard.c: the publish watchdog; mq_deliver.c: deliveries and the read
 * path; mq_rpc.c: RPC calls and replies). Internal to common/mq*.c: nothing outside includes it. */
#ifndef FERRY_MQ_PRIV_H
#define FERRY_MQ_PRIV_H

#include <pthread.h>
#include <stdint.h>

#include <amqp.h>

#include "evq.h"
#include "log.h"
#include "mq.h"

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

static inline void rpc_call_free(rpc_call *k)
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
    int n_headers; /* string-valued headers, copied */
    char **hkeys;
    char **hvals;
    char *strs[10]; /* owned copies backing msg's strings */
};

/* One connect attempt (mq_dial.c), run by a worker thread so that the loop never waits on the
 * broker: socket (TLS), login, channel, confirms, prefetch, topology, reply queue, consumers.
 * The loop fills the inputs and starts the thread; from then on the worker alone touches the
 * attempt (but for `lock`ed fields) until it posts the attempt to the connection's evq as its
 * last act; the loop then owns it again, with the results. */
typedef struct mq_dial {
    /* inputs, copied by the loop before the thread starts; strings of info and opt are
     * borrowed from the mq_conn, which joins the thread before freeing them */
    struct amqp_connection_info info;
    mq_options opt;
    decl *decls;     /* owned copy of the topology */
    int n_decls;     /* how many the mq_conn had then */
    int n_consumers; /* consumers to start, in the mq_conn's list order */
    consumer **ks;   /* the mq_conn's consumers (identity only: the worker never reads them) */
    char **queues;   /* their queues (owned copies) */
    mq_conn *c;      /* the loop's: never dereferenced by the worker */
    evq *q;          /* where the worker posts the attempt when done (borrowed) */
    evq_fn done;     /* what runs on the loop then, with the attempt */
    pthread_t thread;
    int joined;

    pthread_mutex_t lock; /* guards fd and abandoned */
    int fd;               /* the socket once open, -1 before and after (for mq_dial_abandon) */
    int abandoned;        /* the mq_conn is being freed: nobody takes the result */

    /* results, written by the worker before it posts the attempt */
    amqp_connection_state_t amqp; /* the ready connection (NULL on failure) */
    char *err;                    /* why it failed, in librabbitmq's, OpenSSL's or the OS's words */
    char **tags;                  /* consumer tags, as ks */
    char *reply_queue;            /* the RPC reply queue's name (NULL with no_rpc_replies) */
} mq_dial;

/* mq_guard.c: a watchdog over one call into rabbitmq-c at a time that may wait on the broker
 * with no deadline. rabbitmq-c 0.11 (Debian 12) does in amqp_basic_publish: once the broker's
 * heartbeat is overdue it reads first, and that read's timeout is amqp_time_s_from_now(0),
 * which is "infinite", so a broker that went silent (stopped, a partition without resets) held
 * the scheduler's loop in poll() until it spoke again (integration.stalled_broker caught it, a
 * gdb backtrace named the call; upstream reads with a zero timeout since). Armed around the
 * call; when the call outlasts its time the guard shuts the socket down, the call fails, and
 * the caller resets the connection. */
typedef struct mq_guard mq_guard;
/* A new guard with its thread, or NULL if no thread could be started (calls go unguarded). */
mq_guard *mq_guard_new(void);
/* Stops and frees g (NULL is fine). */
void mq_guard_free(mq_guard *g);
/* Starts watching: socket fd is shut down if not disarmed within ms. */
void mq_guard_arm(mq_guard *g, int fd, int ms);
/* Stops watching; returns 1 when the guard fired (fd was shut down) since it was armed. */
int mq_guard_disarm(mq_guard *g);
/* How long a publish may take before its connection is given up. */
#define MQ_PUBLISH_GUARD_MS 1000

struct mq_conn {
    struct event_base *base;
    char *url;
    char *name;
    char *ca_file, *cert_file, *key_file;
    struct amqp_connection_info info; /* the broker in use: a copy of brokers[cur] */
    struct {
        char *parsed;                     /* amqp_parse_url's copy of this broker's URL */
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

    int n_decls, n_consumers; /* registered so far: a connect that copied fewer is redone */
    evq *evq;                 /* where the connect worker hands its result to the loop */
    mq_dial *dial;            /* the connect attempt in flight (at most one), or NULL */
    mq_guard *guard;          /* over amqp_basic_publish (made at the first publish) */

    mq_state_cb state_cb;
    void *state_arg;
    uint64_t dead_lettered; /* messages this connection sent to ferry.dead (mq_dead_letter) */
};

static inline const log_fields *conn_fields(const mq_conn *c)
{
    (void)c;
    return NULL;
}

static inline amqp_bytes_t bytes(const char *s)
{
    return s ? amqp_cstring_bytes(s) : amqp_empty_bytes;
}

/* mq.c */
/* Returns a NUL-terminated copy of b (caller frees). */
char *mq_dup_bytes(amqp_bytes_t b);
/* Says what an amqp_rpc_reply_t means, in the broker's or the library's words. Caller frees. */
char *mq_reply_text(amqp_rpc_reply_t r, const char *what);
/* Replaces c's last error text with a copy of e (NULL = ""). */
void mq_set_last_error(mq_conn *c, const char *e);
/* Declares d on the broker through amqp (blocks up to its RPC timeout). Returns 0, or -1 with
 * *err (caller frees). */
int mq_apply_decl(amqp_connection_state_t amqp, const decl *d, char **err);
/* Starts a manual-ack consumer of queue through amqp (blocks up to its RPC timeout); *tag gets
 * the broker's consumer tag (caller frees). Returns 0, or -1 with *err (caller frees). */
int mq_consume_on(amqp_connection_state_t amqp, const char *queue, char **tag, char **err);
/* Frees a list of decls; NULL is accepted. */
void mq_decls_free(decl *d);

/* mq_dial.c */
/* Starts a connect attempt to c's current broker on a worker thread, with copies of c's
 * topology and consumers; the worker posts the attempt to c->evq, to done, when it is over.
 * Returns the attempt (owned by the worker until then), or NULL with *err (caller frees) when
 * no thread could be started. */
mq_dial *mq_dial_start(mq_conn *c, evq_fn done, char **err);
/* Tells a running attempt that nobody will take its result and shuts its socket down so that
 * the worker's wait on the broker ends now (the worker still posts it: free it then). */
void mq_dial_abandon(mq_dial *d);
/* Waits for the attempt's thread to end (once; the worker has posted it or is about to). */
void mq_dial_join(mq_dial *d);
/* Returns 1 when mq_dial_abandon was called on d. */
int mq_dial_abandoned(mq_dial *d);
/* Frees an attempt whose thread ended, with the connection it holds, if any. NULL is accepted. */
void mq_dial_free(mq_dial *d);

/* mq_connect.c */
/* Fails every publish waiting for its confirm and every RPC call in flight with why. */
void mq_fail_pending(mq_conn *c, const char *why);
/* Drops the connection, fails what was in flight and schedules a reconnect. */
void mq_reset(mq_conn *c, const char *why);

/* mq_publish.c */
/* Publishes body without tracking its confirm. Returns 0, or -1 with *err (caller frees). */
int mq_publish_raw(mq_conn *c, const char *exchange, const char *key, const mq_props *p, const void *body, size_t len,
                   char **err);
/* Waits for the confirm of the publish just made: cb (may be NULL) gets it. */
void mq_track(mq_conn *c, mq_confirm_cb cb, void *arg);
/* Completes the confirms up to tag (multiple) or of tag alone. */
void mq_confirm(mq_conn *c, uint64_t tag, int multiple, int ok);

/* mq_deliver.c */
/* Returns a new delivery copying env's message, received from queue (caller frees). */
mq_delivery *mq_make_delivery(mq_conn *c, const amqp_envelope_t *env, const char *queue);
/* Frees d without acking it; NULL is accepted. */
void mq_delivery_free(mq_delivery *d);
/* Reads and dispatches every frame available now without blocking. */
void mq_drain(mq_conn *c);

/* mq_rpc.c */
/* Hands the reply env to the RPC call it answers (or drops it). */
void mq_on_reply(mq_conn *c, const amqp_envelope_t *env);

#endif
