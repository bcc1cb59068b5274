/* mq_publish: publishing in publisher-confirm mode and the broker's confirms. */
#include <errno.h>
#include <string.h>

#include <amqp.h>

#include "log.h"
#include "mq_priv.h"

/* ---- publishing -------------------------------------------------------------------- */

int mq_publish_raw(mq_conn *c, const char *exchange, const char *key, const mq_props *p, const void *body, size_t len,
                   char **err)
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
    if (!c->guard)
        c->guard = mq_guard_new();
    mq_guard_arm(c->guard, amqp_get_sockfd(c->amqp), MQ_PUBLISH_GUARD_MS);
    errno = 0;
    int rc = amqp_basic_publish(c->amqp, MQ_CHANNEL, bytes(exchange), bytes(key), 0, 0, &props, b);
    int e = errno; /* rabbitmq-c says only "a socket error occurred": the system says which */
    int stalled = mq_guard_disarm(c->guard);
    free(h);
    if (stalled) {
        /* whatever the call returned, its socket is shut down now */
        *err = xasprintf("could not publish to %s/%s: the broker did not take it within %d ms (its heartbeat is "
                         "overdue or it does not read): connection given up",
                         exchange, key, MQ_PUBLISH_GUARD_MS);
        mq_reset(c, *err);
        return -1;
    }
    if (rc != AMQP_STATUS_OK) {
        if (rc == AMQP_STATUS_SOCKET_ERROR && e)
            *err = xasprintf("could not publish to %s/%s: %s (%s)", exchange, key, amqp_error_string2(rc), strerror(e));
        else
            *err = xasprintf("could not publish to %s/%s: %s", exchange, key, amqp_error_string2(rc));
        mq_reset(c, *err);
        return -1;
    }
    return 0;
}

void mq_track(mq_conn *c, mq_confirm_cb cb, void *arg)
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

int mq_publish(mq_conn *c, const char *exchange, const char *key, const mq_props *props, const void *body, size_t len,
               mq_confirm_cb cb, void *arg, char **err)
{
    if (mq_publish_raw(c, exchange, key, props, body, len, err) < 0)
        return -1;
    mq_track(c, cb, arg);
    return 0;
}

/* Completes the confirms up to tag (multiple) or of tag alone. */
void mq_confirm(mq_conn *c, uint64_t tag, int multiple, int ok)
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
