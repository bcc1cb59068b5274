/* orchcall: the orchestration's RPCs to the agents, their retries and their replies
 * (orchcall.h). */
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "orchcall.h"

typedef struct orchcall_pending {
    int64_t id;
    orchcall_step_fn next;
    orchcall_fail_fn fail; /* NULL: soft, an error reply is logged and recorded, the migration goes on */
    int gen;
    orchreply_method m;
    const char *method; /* its word (static) */
    char host[256];
    char *text;       /* the request, sent again after a transport failure */
    int64_t first_ms; /* when it was first sent */
    int attempts;
    int once;       /* never sent again: a call whose failure the migration does without */
    int timeout_ms; /* 0: [amqp] rpc_timeout_ms */
    /* while waiting to be sent again: its timer, and its place in s->resends */
    sched *s;
    struct event *timer;
    struct orchcall_pending *next_resend;
} pending;

static void pending_free(pending *p)
{
    if (p) {
        free(p->text);
        free(p);
    }
}

/* Takes p out of s->resends and frees its timer (p is being sent again, or freed). */
static void resend_unlink(pending *p)
{
    for (pending **pp = &p->s->resends; *pp; pp = &(*pp)->next_resend) {
        if (*pp == p) {
            *pp = p->next_resend;
            break;
        }
    }
    event_free(p->timer);
    p->timer = NULL;
    p->next_resend = NULL;
}

void orchcall_stop(sched *s)
{
    while (s->resends) {
        pending *p = s->resends;
        resend_unlink(p);
        pending_free(p);
    }
}

static void send_pending(pending *p, orch *o);

static void resend(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pending *p = arg;
    resend_unlink(p);
    orch *o = orchcore_find(p->id);
    if (!o || o->finishing || (p->fail && p->gen != o->gen)) {
        pending_free(p);
        return;
    }
    send_pending(p, o);
}

/* The request did not reach the agent or its answer did not come back (timeout, broker away):
 * the agents' methods are idempotent per migration, so it is sent again, for up to
 * [scheduler] rpc_retry_s; then the step fails. Returns 1 when a retry is scheduled. */
static int retry_later(pending *p, orch *o, const char *err)
{
    if (p->once)
        return 0;
    int delay = orchcore_retry_in_s(p->attempts, mono_ms() - p->first_ms, o->s->cfg->scheduler.rpc_retry_s * 1000);
    if (delay < 0)
        return 0;
    log_warn(&o->lf, "%s to %s: %s; sending it again in %d s (attempt %d)", p->method, p->host, err, delay,
             p->attempts + 1);
    struct timeval tv = {delay, 0};
    /* a timer of its own (not event_base_once): orchcall_stop frees what still waits at exit */
    p->s = o->s;
    p->timer = evtimer_new(o->s->base, resend, p);
    evtimer_add(p->timer, &tv);
    p->next_resend = o->s->resends;
    o->s->resends = p;
    return 1;
}

static void on_reply(mq_conn *c, int ok, const char *err, const mq_message *reply, void *arg)
{
    (void)c;
    pending *p = arg;
    orch *o = orchcore_find(p->id);
    if (!o || o->finishing || o->s->stopping) {
        pending_free(p);
        return;
    }
    if (p->fail && p->gen != o->gen) {
        log_debug(&o->lf, "late reply to %s from %s dropped: the migration has turned to failure", p->method, p->host);
        pending_free(p);
        return;
    }
    if (!ok && retry_later(p, o, err))
        return;
    msg_envelope *env = NULL;
    char *perr = NULL;
    _cleanup_free_ char *why = NULL;
    orchreply r = {0};
    rpc_code code = RPC_OK; /* the agent's code of an error reply */
    if (!ok) {
        why = xasprintf("%s on %s: %s", p->method, p->host, err);
    } else if (msg_parse(reply->body, reply->len, &env, &perr) < 0) {
        why = xasprintf("%s on %s: invalid reply: %s", p->method, p->host, perr);
        free(perr);
    } else if (orchreply_read(p->m, msg_envelope_body(env), &r, &perr) < 0) {
        /* a reply that cannot be believed fails the call as an error reply does (code RPC_OK:
         * none of the agent's codes is taken from it) */
        const char *role = strcmp(p->host, o->source) == 0 ? "source"
                           : strcmp(p->host, o->dest) == 0 ? "destination"
                                                           : "agent";
        why = xasprintf("the %s's reply to %s is refused: %s", role, p->method, perr);
        log_fields f = o->lf;
        f.host = p->host;
        log_warn(&f, "migration %lld: %s", (long long)o->id, why);
        free(perr);
    } else if (!r.ok) {
        why = xasprintf("%s on %s: %s", p->method, p->host, r.error);
        code = r.code;
        /* an agent not connected to its libvirtd (yet: it was just restarted) is asked again,
         * as for an RPC lost in transit, within rpc_retry_s; the chaos test saw a migration
         * end in error on one such answer */
        if (code == RPC_UNAVAILABLE && retry_later(p, o, why)) {
            orchreply_clear(&r);
            msg_envelope_free(env);
            return;
        }
        if (code == RPC_STALE_EPOCH) {
            /* the agent has seen a newer owner of this migration: this replica lost it and
             * stops driving it (no rollback, no failure: the owner decides) */
            log_warn(&o->lf, "migration %lld is no longer this scheduler's (epoch %lld): %s; leaving it",
                     (long long)o->id, (long long)o->epoch, why);
            pending_free(p);
            orchreply_clear(&r);
            msg_envelope_free(env);
            o->finishing = 1;
            orchcore_done(o);
            return;
        }
    }
    orchcall_step_fn next = p->next;
    orchcall_fail_fn fail = p->fail;
    orchreply_method m = p->m;
    pending_free(p);
    if (why && !fail) {
        log_warn(&o->lf, "%s", why);
        ledger_record_later(o->s, &o->lf, o->id, "scheduler", NULL, o->status, orchreply_method_str(m), why,
                            "record it");
        /* an abort or force-complete that came before the source's job existed (the request
         * raced the live_migration call) is sent again from the next ticks, a few times */
        if (m == ORCHREPLY_ABORT && o->soft_tries++ < 30)
            o->abort_sent = 0;
        else if (m == ORCHREPLY_FORCE_COMPLETE && o->soft_tries++ < 30)
            o->fc_sent = 0;
    } else if (why) {
        fail(o, code, why);
    } else {
        next(o, &r);
    }
    orchreply_clear(&r);
    msg_envelope_free(env);
}

static void send_pending(pending *p, orch *o)
{
    if (!orchcore_lease_held(o)) {
        /* the lease may be another replica's by now: an RPC from here could undo its work */
        _cleanup_free_ char *why = xasprintf("its lease was not renewed for %lld s (lease_s): %s to %s not sent",
                                             (long long)o->s->cfg->scheduler.lease_s, p->method, p->host);
        pending_free(p);
        orchcore_lease_lost(o, why);
        return;
    }
    _cleanup_free_ char *key = xasprintf("compute.%s", p->host);
    char *err = NULL;
    p->attempts++;
    log_debug(&o->lf, "rpc %s to %s", p->method, p->host);
    /* the answer counts only when the host's own agent gives it (or a scheduler's user) */
    char **from = trust_answer_senders(&o->s->cfg->trust, p->host);
    int timeout = p->timeout_ms ? p->timeout_ms : (int)o->s->cfg->amqp.rpc_timeout_ms;
    int rc = mq_rpc_call(o->s->mq, MQ_EXCHANGE, key, p->text, strlen(p->text), timeout, (const char *const *)from,
                         on_reply, p, &err);
    trust_list_free(from);
    if (rc < 0) {
        if (retry_later(p, o, err)) {
            free(err);
            return;
        }
        _cleanup_free_ char *why = xasprintf("%s on %s: %s", p->method, p->host, err);
        free(err);
        orchcall_fail_fn fail = p->fail;
        pending_free(p);
        if (!fail)
            log_warn(&o->lf, "%s", why);
        else
            fail(o, RPC_OK, why);
    }
}

static void call_ex(orch *o, const char *host, orchreply_method method, json_object *body, orchcall_step_fn next,
                    orchcall_fail_fn fail, int once, int timeout_ms)
{
    json_object_object_add(body, "migration", json_object_new_int64(o->id));
    json_object_object_add(body, "instance", json_object_new_string(o->uuid));
    json_object_object_add(body, "instance_id", json_object_new_string(o->ec2));
    /* the owner's epoch: an agent refuses calls with a lower one than it has seen (fencing),
     * so a replica that lost this migration to another cannot act on it any more */
    json_object_object_add(body, "epoch", json_object_new_int64(o->epoch));
    _cleanup_free_ char *type = xasprintf("rpc.%s", orchreply_method_str(method));
    pending *p = xcalloc(1, sizeof(*p));
    p->text = msg_build(type, NULL, body);
    p->id = o->id;
    p->next = next;
    p->gen = o->gen;
    p->fail = fail;
    p->first_ms = mono_ms();
    p->once = once;
    p->timeout_ms = timeout_ms;
    p->m = method;
    p->method = orchreply_method_str(method);
    strlcpy_f(p->host, host, sizeof(p->host));
    send_pending(p, o);
}

void orchcall_call(orch *o, const char *host, orchreply_method method, json_object *body, orchcall_step_fn next,
                   orchcall_fail_fn fail)
{
    call_ex(o, host, method, body, next, fail, 0, 0);
}

void orchcall_once(orch *o, const char *host, orchreply_method method, json_object *body, int timeout_ms,
                   orchcall_step_fn next, orchcall_fail_fn fail)
{
    call_ex(o, host, method, body, next, fail, 1, timeout_ms);
}

void orchcall_soft(orch *o, const char *host, orchreply_method method, json_object *body, orchcall_step_fn next)
{
    call_ex(o, host, method, body, next, NULL, 0, 0);
}
