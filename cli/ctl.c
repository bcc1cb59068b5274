/* ctl: ferryctl's connection to the broker and its RPC calls, which every verb uses (the
 * command table and the options are main.c's; the verbs are main.c's and verbs*.c's). */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "trust.h"

int ctl_connect(ctl *c)
{
    log_set_level(LOG_LVL_ERROR); /* the CLI reports errors itself */
    mq_options mo;
    app_mq_options(&c->cfg, PROG, &mo);
    mo.reconnect_min_ms = 100;
    mo.reconnect_max_ms = 1000;
    char *err = NULL;
    if (mq_new(c->base, &mo, &c->mq, &err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        free(err);
        return -1;
    }
    if (c->cfg.amqp.declare_topology) /* false for an operator's user (deploy/rabbitmq/add-operator-user) */
        mq_declare_ferry_topology(c->mq);
    mq_start(c->mq);
    /* connecting is bounded by the connect timeout, and by --timeout when that is shorter */
    int limit = (int)c->cfg.amqp.connect_timeout_ms;
    if (c->timeout_ms < limit)
        limit = c->timeout_ms;
    int64_t end = mono_ms() + limit;
    while (!mq_is_up(c->mq) && mono_ms() < end)
        event_base_loop(c->base, EVLOOP_ONCE);
    if (!mq_is_up(c->mq)) {
        fprintf(stderr, PROG ": could not connect to the broker within %d ms: %s\n", limit,
                *mq_last_error(c->mq) ? mq_last_error(c->mq) : "no answer");
        return -1;
    }
    return 0;
}

typedef struct ping_state {
    int done, ok;
    char *reply;
    char *err;
} ping_state;

static void ping_done(mq_conn *m, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)m;
    ping_state *p = arg;
    p->done = 1;
    p->ok = ok;
    if (ok)
        p->reply = xstrndup(reply->body, reply->len);
    else
        p->err = xstrdup(err);
}

msg_envelope *ctl_call(ctl *c, const char *key, const char *type, json_object *body, const char *who)
{
    _cleanup_free_ char *req = msg_build(type, NULL, body);
    return ctl_call_raw(c, key, req, who);
}

msg_envelope *ctl_call_raw(ctl *c, const char *key, const char *req, const char *who)
{
    ping_state p = {0};
    char *err = NULL;
    /* the answer is taken only from whom it was asked: the host's agent, or a scheduler */
    char **from = trust_answer_senders(&c->cfg.trust, strncmp(key, "compute.", 8) == 0 ? key + 8 : NULL);
    int rc = mq_rpc_call(c->mq, MQ_EXCHANGE, key, req, strlen(req), c->timeout_ms, (const char *const *)from, ping_done,
                         &p, &err);
    trust_list_free(from);
    if (rc < 0) {
        fprintf(stderr, PROG ": could not send the request to %s: %s\n", who, err);
        free(err);
        return NULL;
    }
    if (mq_loop_until(c->base, &p.done, c->timeout_ms + 1000) < 0 || !p.ok) {
        fprintf(stderr, PROG ": no answer from %s: %s\n", who, p.err ? p.err : "timeout");
        free(p.err);
        return NULL;
    }
    msg_envelope *env = NULL;
    if (msg_parse(p.reply, strlen(p.reply), &env, &err) < 0) {
        fprintf(stderr, PROG ": %s sent an invalid reply: %s\n", who, err);
        free(err);
    }
    free(p.reply);
    return env;
}
