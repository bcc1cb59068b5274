/* mq_deliver: deliveries (their copies, ack, reject, dead-lettering) and the read path
 * (frames read without blocking, size-checked deliveries dispatched to their consumer). */
#include <string.h>
#include <sys/time.h>

#include <amqp.h>

#include "log.h"
#include "mq_priv.h"

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

static char *opt_str(mq_delivery *d, int slot, const amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t b)
{
    if (!(p->_flags & flag))
        return NULL;
    d->strs[slot] = mq_dup_bytes(b);
    return d->strs[slot];
}

mq_delivery *mq_make_delivery(mq_conn *c, const amqp_envelope_t *env, const char *queue)
{
    mq_delivery *d = xcalloc(1, sizeof(*d));
    const amqp_basic_properties_t *p = &env->message.properties;
    d->tag = env->delivery_tag;
    d->generation = c->generation;
    d->strs[0] = mq_dup_bytes(env->exchange);
    d->strs[1] = mq_dup_bytes(env->routing_key);
    d->strs[2] = xstrdup(queue ? queue : "");
    d->strs[3] = mq_dup_bytes(env->message.body);
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
            d->hkeys[d->n_headers] = mq_dup_bytes(e->key);
            d->hvals[d->n_headers] = mq_dup_bytes(e->value.value.bytes);
            d->n_headers++;
        }
    }
    return d;
}

void mq_delivery_free(mq_delivery *d)
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
            _cleanup_free_ char *e =
                xasprintf("could not ack delivery %llu: %s", (unsigned long long)d->tag, amqp_error_string2(rc));
            mq_reset(c, e);
        }
    } else {
        log_debug(conn_fields(c), "ack of a delivery from an earlier connection skipped: the broker redelivers it");
    }
    mq_delivery_free(d);
}

void mq_reject(mq_conn *c, mq_delivery *d, int requeue)
{
    if (delivery_current(c, d)) {
        int rc = amqp_basic_reject(c->amqp, MQ_CHANNEL, d->tag, requeue);
        if (rc != AMQP_STATUS_OK) {
            _cleanup_free_ char *e =
                xasprintf("could not reject delivery %llu: %s", (unsigned long long)d->tag, amqp_error_string2(rc));
            mq_reset(c, e);
        }
    }
    mq_delivery_free(d);
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
        log_error(conn_fields(c), "could not dead-letter a message from %s: %s; it stays in its queue", x->d->msg.queue,
                  err);
        if (delivery_current(c, x->d))
            mq_reject(c, x->d, 1);
        else
            mq_delivery_free(x->d);
    }
    free(x);
}

uint64_t mq_dead_lettered(const mq_conn *c)
{
    return c ? c->dead_lettered : 0;
}

void mq_dead_letter(mq_conn *c, mq_delivery *d, const char *reason)
{
    if (!delivery_current(c, d)) {
        /* the broker already put it back when the connection dropped */
        mq_delivery_free(d);
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
    int rc = mq_publish_raw(c, MQ_DEAD_EXCHANGE, d->msg.queue, &p, d->msg.body, d->msg.len, &err);
    free(h);
    if (rc < 0) {
        log_error(conn_fields(c), "could not dead-letter a message from %s: %s; it will be redelivered", d->msg.queue,
                  err);
        free(err);
        mq_delivery_free(d);
        return;
    }
    c->dead_lettered++;
    dead_ctx *x = xcalloc(1, sizeof(*x));
    x->d = d;
    mq_track(c, dead_confirmed, x);
}

/* ---- the read path ----------------------------------------------------------------- */

static void dispatch_delivery(mq_conn *c, const amqp_envelope_t *env)
{
    if (env->consumer_tag.len == strlen("rpc-replies") &&
        memcmp(env->consumer_tag.bytes, "rpc-replies", env->consumer_tag.len) == 0) {
        mq_on_reply(c, env);
        return;
    }
    for (consumer *k = c->consumers; k; k = k->next) {
        if (k->tag && env->consumer_tag.len == strlen(k->tag) &&
            memcmp(env->consumer_tag.bytes, k->tag, env->consumer_tag.len) == 0) {
            k->cb(c, mq_make_delivery(c, env, k->queue), k->arg);
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
        mq_confirm(c, a->delivery_tag, a->multiple, 1);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *a = f->payload.method.decoded;
        mq_confirm(c, a->delivery_tag, a->multiple, 0);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_message_t m;
        amqp_rpc_reply_t r = amqp_read_message(c->amqp, f->channel, &m, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            *why = mq_reply_text(r, "could not read a returned message");
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

/* Of a message over the size limit, the first bytes kept for ferry.dead. */
#define MQ_DEAD_HEAD_BYTES 4096

/* Reads the next frame of a delivery's content (header or body), waiting up to the connect
 * timeout for it. Returns 0, or -1 with *why (caller frees). */
static int content_frame(mq_conn *c, amqp_frame_t *f, uint8_t type, char **why)
{
    struct timeval tv = {c->opt.connect_timeout_ms / 1000, (c->opt.connect_timeout_ms % 1000) * 1000};
    int rc = amqp_simple_wait_frame_noblock(c->amqp, f, &tv);
    if (rc != AMQP_STATUS_OK) {
        *why = xasprintf("could not read a delivery's content: %s", amqp_error_string2(rc));
        return -1;
    }
    if (f->frame_type != type || f->channel != MQ_CHANNEL) {
        *why = xasprintf("unexpected AMQP frame (type %u, channel %u) inside a delivery", f->frame_type, f->channel);
        return -1;
    }
    return 0;
}

/* A delivery whose basic.deliver frame is mf: its content header gives the body's size before
 * any body frame is read. A body within [amqp] max_message_bytes is assembled and dispatched;
 * a larger one is never assembled: its frames are read and dropped one by one (the library's
 * buffers released after each), and the delivery goes to ferry.dead with the reason and only
 * its first MQ_DEAD_HEAD_BYTES (an RPC reply is dropped; its call times out). Returns 0, or -1
 * with *why (caller frees) when the connection must be reset. */
static int read_delivery(mq_conn *c, const amqp_frame_t *mf, char **why)
{
    const amqp_basic_deliver_t *m = mf->payload.method.decoded;
    amqp_envelope_t env;
    memset(&env, 0, sizeof(env));
    env.channel = mf->channel;
    env.consumer_tag = m->consumer_tag;
    env.delivery_tag = m->delivery_tag;
    env.redelivered = m->redelivered;
    env.exchange = m->exchange;
    env.routing_key = m->routing_key;
    amqp_frame_t f;
    if (content_frame(c, &f, AMQP_FRAME_HEADER, why) < 0)
        return -1;
    uint64_t size = f.payload.properties.body_size;
    env.message.properties = *(const amqp_basic_properties_t *)f.payload.properties.decoded;
    size_t max = c->opt.max_message_bytes;
    if (size <= max) {
        char *body = xmalloc(size ? (size_t)size : 1);
        uint64_t got = 0;
        while (got < size) {
            if (content_frame(c, &f, AMQP_FRAME_BODY, why) < 0) {
                free(body);
                return -1;
            }
            size_t n = f.payload.body_fragment.len;
            if (n > size - got) {
                free(body);
                *why = xasprintf("a delivery's body frames are longer than its header said (%llu bytes)",
                                 (unsigned long long)size);
                return -1;
            }
            memcpy(body + got, f.payload.body_fragment.bytes, n);
            got += n;
        }
        env.message.body = (amqp_bytes_t){.len = (size_t)size, .bytes = body};
        dispatch_delivery(c, &env);
        free(body);
        return 0;
    }

    /* too large: copy what identifies the delivery now, before the library's buffers go */
    _cleanup_free_ char *reason = xasprintf(
        "message of %llu bytes over the limit of %zu bytes ([amqp] max_message_bytes)", (unsigned long long)size, max);
    env.message.body = amqp_empty_bytes;
    mq_delivery *d = NULL;
    for (consumer *k = c->consumers; k && !d; k = k->next)
        if (k->tag && env.consumer_tag.len == strlen(k->tag) &&
            memcmp(env.consumer_tag.bytes, k->tag, env.consumer_tag.len) == 0)
            d = mq_make_delivery(c, &env, k->queue);
    _cleanup_free_ char *tag = mq_dup_bytes(env.consumer_tag);
    uint64_t dtag = env.delivery_tag;
    char *head = xmalloc(MQ_DEAD_HEAD_BYTES + 1);
    size_t hlen = 0;
    uint64_t got = 0;
    while (got < size) {
        amqp_maybe_release_buffers_on_channel(c->amqp, MQ_CHANNEL);
        if (content_frame(c, &f, AMQP_FRAME_BODY, why) < 0) {
            free(head);
            mq_delivery_free(d); /* the connection resets: the broker redelivers it */
            return -1;
        }
        size_t n = f.payload.body_fragment.len;
        if (hlen < MQ_DEAD_HEAD_BYTES) {
            size_t take = n < MQ_DEAD_HEAD_BYTES - hlen ? n : MQ_DEAD_HEAD_BYTES - hlen;
            memcpy(head + hlen, f.payload.body_fragment.bytes, take);
            hlen += take;
        }
        got += n;
    }
    head[hlen] = '\0';
    if (d) {
        log_warn(conn_fields(c), "delivery from %s refused: %s; dead-lettered with its first %zu bytes", d->msg.queue,
                 reason, hlen);
        free(d->strs[3]);
        d->strs[3] = head;
        d->msg.body = head;
        d->msg.len = hlen;
        mq_dead_letter(c, d, reason);
        return 0;
    }
    free(head);
    if (strcmp(tag, "rpc-replies") == 0) {
        log_warn(conn_fields(c), "RPC reply dropped: %s", reason);
        return 0;
    }
    log_warn(conn_fields(c), "delivery for unknown consumer dead-lettered: %s", reason);
    amqp_basic_reject(c->amqp, MQ_CHANNEL, dtag, 0);
    return 0;
}

/* Reads and dispatches every frame available now without blocking. */
void mq_drain(mq_conn *c)
{
    if (!c->up || c->in_dispatch)
        return;
    c->in_dispatch = 1;
    char *why = NULL;
    /* a bounded turn (32 frames or 20 ms): a consumer whose callbacks are slow must not keep
     * the loop's timers (lease renewals, heartbeats) from running */
    int64_t until = mono_ms() + 20;
    for (int budget = 0; budget < 32 && c->up && !c->reset_pending && (budget == 0 || mono_ms() < until); budget++) {
        struct timeval zero = {0, 0};
        amqp_maybe_release_buffers(c->amqp);
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(c->amqp, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            why = xasprintf("could not read from the broker: %s", amqp_error_string2(rc));
            break;
        }
        /* a delivery is read frame by frame (read_delivery): its size is checked before its
         * body is copied */
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            if (read_delivery(c, &f, &why) < 0)
                break;
            continue;
        }
        if (handle_frame(c, &f, &why) < 0)
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
