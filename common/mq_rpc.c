/* mq_rpc: RPC calls (private reply queue, correlation id, deadline) and their replies. */
#include <string.h>

#include <amqp.h>

#include "log.h"
#include "mq_priv.h"

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
    if (mq_publish_raw(c, exchange, key, &p, body, len, err) < 0) {
        rpc_call_free(k);
        return -1;
    }
    mq_track(c, NULL, NULL);
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
        if (mq_publish_raw(c, MQ_REPLY_EXCHANGE, d->msg.reply_to, &p, body, len, err) < 0) {
            mq_delivery_free(d);
            return -1;
        }
        mq_track(c, NULL, NULL);
    }
    mq_ack(c, d);
    return 0;
}

void mq_on_reply(mq_conn *c, const amqp_envelope_t *env)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    if (!(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)) {
        log_warn(conn_fields(c), "RPC reply without correlation id dropped");
        return;
    }
    _cleanup_free_ char *corr = mq_dup_bytes(p->correlation_id);
    for (rpc_call **pp = &c->calls; *pp; pp = &(*pp)->next) {
        rpc_call *k = *pp;
        if (strcmp(k->corr, corr) == 0) {
            mq_delivery *d = mq_make_delivery(c, env, c->reply_queue);
            if (k->from) {
                int ok = 0;
                for (char **u = k->from; *u && !ok; u++)
                    ok = d->msg.user_id && strcmp(*u, d->msg.user_id) == 0;
                if (!ok) {
                    /* a forged answer: the call goes on waiting for the one it asked */
                    _cleanup_free_ char *u = log_escape(d->msg.user_id ? d->msg.user_id : "(no user_id)");
                    log_warn(conn_fields(c), "RPC reply %s from %s refused: not from %s%s", corr, u, k->from[0],
                             k->from[0] && k->from[1] ? " or the other users expected" : "");
                    mq_delivery_free(d);
                    return;
                }
            }
            *pp = k->next;
            k->cb(c, 1, NULL, &d->msg, k->arg);
            mq_delivery_free(d);
            rpc_call_free(k);
            return;
        }
    }
    log_debug(conn_fields(c), "late or unknown RPC reply %s dropped", corr);
}
