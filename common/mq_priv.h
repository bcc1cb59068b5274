/* mq_priv: what the parts of the mq module share (mq.c: the connection object, topology and
 * consumers; mq_connect.c: connect, reconnect and housekeeping; mq_publish.c: publishes and
 * their confirms; mq_deliver.c: deliveries and the read path; mq_rpc.c: RPC calls and
 * replies). Internal to common/mq*.c: nothing outside includes it. */
#ifndef FERRY_MQ_PRIV_H
#define FERRY_MQ_PRIV_H

#include <stdint.h>

#include <amqp.h>

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
/* Declares d on the broker now. Returns 0, or -1 with *err (caller frees). */
int mq_apply_decl(mq_conn *c, const decl *d, char **err);
/* Starts consumer k on the broker (its tag stored in k). Returns 0, or -1 with *err (caller frees). */
int mq_start_consumer(mq_conn *c, consumer *k, int no_ack, char **err);

/* mq_connect.c */
/* Fails every publish waiting for its confirm and every RPC call in flight with why. */
void mq_fail_pending(mq_conn *c, const char *why);
/* Drops the connection, fails what was in flight and schedules a reconnect. */
void mq_reset(mq_conn *c, const char *why);

/* mq_publish.c */
/* Publishes body without tracking its confirm. Returns 0, or -1 with *err (caller frees). */
int mq_publish_raw(mq_conn *c, const char *exchange, const char *key, const mq_props *p, const void *body,
                   size_t len, char **err);
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
