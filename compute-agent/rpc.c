/* rpc: the consumer of ferry.compute.<host> (compute-agent/RPC.md): reads the envelope, checks
 * who may call what (trust) and the migration's epoch (fencing), answers ping, and dispatches
 * the migration methods to rpcmig.c; every answer goes out here, rpc.error with a code of
 * common/proto.h. */
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "guard.h"
#include "measure.h"
#include "msg.h"
#include "proto.h"
#include "rpcin.h"
#include "rpcmig.h"
#include "statefile.h"
#include "workq.h"

typedef rpcmig_call call;

/* ---- replies ----------------------------------------------------------------------------- */

static void send_reply(call *c, const char *type, json_object *body)
{
    _cleanup_free_ char *text = msg_build(type, c->req, body);
    char *err = NULL;
    if (mq_rpc_reply(c->a->mq, c->d, text, strlen(text), &err) < 0) {
        log_error(&c->lf, "could not send the reply: %s", err);
        free(err);
    }
    c->d = NULL;
}

static void reply_error(call *c, rpc_code code, const char *reason)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "ok", json_object_new_boolean(0));
    json_object_object_add(b, "error", json_object_new_string(reason));
    json_object_object_add(b, "code", json_object_new_string(rpc_code_str(code)));
    send_reply(c, "rpc.error", b);
}

/* ---- methods --------------------------------------------------------------------------------- */

static int m_ping(call *c, json_object *out, char **err, rpc_code *code)
{
    (void)err;
    (void)code;
    json_object_object_add(out, "host", json_object_new_string(c->a->host));
    json_object_object_add(out, "version", json_object_new_string(FERRY_VERSION));
    json_object_object_add(out, "address", json_object_new_string(c->a->address));
    unsigned long lv = 0;
    virGetVersion(&lv, NULL, NULL);
    _cleanup_free_ char *lvs = xasprintf("%lu.%lu.%lu", lv / 1000000, lv / 1000 % 1000, lv % 1000);
    json_object_object_add(out, "libvirt", json_object_new_string(lvs));
    json_object_object_add(out, "libvirt_connected", json_object_new_boolean(c->a->lv_up));
    return 0;
}

/* ---- who may act on a migration ----------------------------------------------------------- */

/* Reads the fields every migration method carries into c; on a refusal answers it (invalid)
 * and returns -1. */
static int call_migration(call *c, const char *method)
{
    rpcin_mig m;
    char *err = NULL;
    if (rpcin_migration(c->body, &m, &err) < 0) {
        log_warn(&c->lf, "invalid %s request: %s", method, err);
        reply_error(c, RPC_INVALID, err);
        free(err);
        return -1;
    }
    c->migration = m.migration;
    c->epoch = m.epoch;
    snprintf(c->mig_s, sizeof(c->mig_s), "%lld", (long long)m.migration);
    c->lf.migration = c->mig_s;
    c->instance = m.instance;
    c->lf.instance = m.instance_id ? m.instance_id : m.instance;
    job *j = job_find(c->a, m.migration);
    if (j)
        c->lf.instance = job_fields(j)->instance;
    return 0;
}

/* Fencing: the highest epoch of each migration seen here is kept in the state dir
 * (epoch-<id>.json, written atomically, so it survives a restart); a call with a lower one
 * comes from a scheduler replica that lost the migration to another and is refused
 * (stale_epoch). A higher one is recorded before the call acts. */
static int fence(call *c, char **err, rpc_code *code)
{
    _cleanup_free_ char *sname = sf_name(SF_EPOCH, c->migration);
    json_object *st = sf_read(c->a->cfg->agent.state_dir, sname), *v;
    int64_t seen = 0;
    /* a record of another instance is another migration under a reused id (a database
     * restored from a backup): it does not fence this one */
    if (st && json_object_object_get_ex(st, "epoch", &v) && json_object_is_type(v, json_type_int) &&
        json_object_object_get_ex(st, "instance", &v) && json_object_is_type(v, json_type_string) &&
        strcasecmp(json_object_get_string(v), c->instance) == 0) {
        json_object_object_get_ex(st, "epoch", &v);
        seen = json_object_get_int64(v);
    }
    json_object_put(st);
    if (guard_epoch(c->migration, seen, c->epoch, err) < 0) {
        *code = RPC_STALE_EPOCH;
        return -1;
    }
    if (c->epoch > seen) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "migration", json_object_new_int64(c->migration));
        json_object_object_add(o, "instance", json_object_new_string(c->instance));
        json_object_object_add(o, "epoch", json_object_new_int64(c->epoch));
        int rc = sf_write(c->a->cfg->agent.state_dir, sname, o, &c->lf);
        json_object_put(o);
        if (rc < 0) {
            *err = xasprintf("could not record epoch %lld of migration %lld in %s", (long long)c->epoch,
                             (long long)c->migration, c->a->cfg->agent.state_dir);
            *code = RPC_INTERNAL;
            return -1;
        }
        if (seen > 0)
            log_info(&c->lf, "migration %lld: epoch %lld replaces %lld (another scheduler replica drives it now)",
                     (long long)c->migration, (long long)c->epoch, (long long)seen);
    }
    return 0;
}

/* on_worker: the method waits (on libvirt, on qemu-img, on a leftover domain to go) and touches
 * nothing only the loop may (jobs, AMQP): it runs on the agent's RPC worker thread (a->rpcq),
 * one at a time in arrival order, and its answer is sent from the loop. */
static const struct {
    const char *name;
    rpcmig_fn fn;
    int takes_migration;
    int on_worker;
} methods[] = {
    {"ping", m_ping, 0, 0},
    {"check_source", rpcmig_check_source, 1, 1},
    {"check_destination", rpcmig_check_destination, 1, 1},
    {"pre_live_migration", rpcmig_pre_live_migration, 1, 1},
    {"live_migration", rpcmig_live_migration, 1, 0},
    {"job_status", rpcmig_job_status, 1, 0},
    {"abort", rpcmig_abort, 1, 0},
    {"force_complete", rpcmig_force_complete, 1, 0},
    {"set_bandwidth", rpcmig_set_bandwidth, 1, 0},
    {"resume_postcopy", rpcmig_resume_postcopy, 1, 0},
    {"pause_postcopy", rpcmig_pause_postcopy, 1, 1},
    {"post_live_migration", rpcmig_post_live_migration, 1, 1},
    {"rollback", rpcmig_rollback, 1, 1},
    {"dirty_rate", measure_dirty_rate, 0, 1},
};

/* Whether the sender of c's request may call method; if not, the request is dead-lettered
 * with the reason, logged with the sender, and 0 is returned (c->d is gone). */
static int sender_may_call(call *c, const mq_message *m, const char *method)
{
    char *why = NULL;
    if (trust_may_call_agent(&c->a->cfg->trust, m->user_id, method, &why))
        return 1;
    log_warn(&c->lf, "refused an RPC on %s: %s", c->a->queue, why);
    mq_dead_letter(c->a->mq, c->d, why);
    free(why);
    return 0;
}

/* The outcome of a method: the answer, logged in the words of its code. Owns out and err. */
static void answer(call *c, const char *method, int rc, json_object *out, char *err, rpc_code code)
{
    if (rc < 0) {
        switch (code) {
        case RPC_INVALID:
            log_warn(&c->lf, "invalid %s request: %s", method, err);
            break;
        case RPC_STALE_EPOCH:
            log_warn(&c->lf, "%s refused: %s", method, err);
            break;
        case RPC_REFUSED:
        case RPC_LANDED:
            log_info(&c->lf, "%s refused: %s", method, err);
            break;
        default:
            log_error(&c->lf, "%s failed: %s", method, err);
            break;
        }
        reply_error(c, code, err);
        free(err);
        json_object_put(out);
    } else {
        send_reply(c, "rpc.result", out);
    }
}

/* A call handed to the RPC worker: everything it reads lives here until it is answered. */
typedef struct work_call {
    call c;
    char *instance_id; /* the log's instance when it is not the body's (a job's: copied) */
    msg_envelope *env; /* the request (c's body and strings point into it) */
    rpcmig_fn fn;
    const char *method; /* a static name of methods[] */
    json_object *out;
    char *err;
    rpc_code code;
    int rc;
} work_call;

/* On the worker thread: the method's work. */
static void work_run(void *arg)
{
    work_call *w = arg;
    w->rc = w->fn(&w->c, w->out, &w->err, &w->code);
}

/* On the loop: the answer (cancelled: the agent stops; the request goes back to its queue). */
static void work_done(void *arg, int cancelled)
{
    work_call *w = arg;
    if (cancelled) {
        mq_reject(w->c.a->mq, w->c.d, 1);
        json_object_put(w->out);
    } else {
        answer(&w->c, w->method, w->rc, w->out, w->err, w->code);
    }
    msg_envelope_free(w->env);
    free(w->instance_id);
    free(w);
}

/* Hands c's method to the RPC worker; takes env and out. */
static void to_worker(call *c, const char *method, rpcmig_fn fn, msg_envelope *env, json_object *out)
{
    work_call *w = xcalloc(1, sizeof(*w));
    w->c = *c;
    w->c.lf.migration = w->c.mig_s; /* it pointed into the stack's copy */
    if (c->lf.instance && c->lf.instance != c->instance) {
        w->instance_id = xstrdup(c->lf.instance);
        w->c.lf.instance = w->instance_id;
    }
    w->env = env;
    w->fn = fn;
    w->method = method;
    w->out = out;
    w->code = RPC_INVALID;
    workq_submit(c->a->rpcq, work_run, work_done, w);
}

void rpc_on_request(mq_conn *mc, mq_delivery *d, void *arg)
{
    agent *a = arg;
    const mq_message *m = mq_delivery_message(d);
    call c = {.a = a, .d = d};
    c.lf.host = a->host;
    c.lf.req = m->message_id;
    msg_envelope *env = NULL;
    char *err = NULL;
    /* who may call: the schedulers, and operators (ping only); checked once the method is
     * known, before anything is done. A malformed request is refused either way, and answered
     * only to a sender who may call at all */
    trust_role role = trust_role_of(&a->cfg->trust, m->user_id, NULL, 0);
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        _cleanup_free_ char *from = log_escape(m->user_id ? m->user_id : "(no user_id)");
        log_warn(&c.lf, "malformed RPC request on %s: %s (from %s)", a->queue, err, from);
        if (m->reply_to && (role == TRUST_SCHEDULER || role == TRUST_OPERATOR))
            reply_error(&c, RPC_INVALID, err);
        else
            mq_dead_letter(mc, d, err);
        free(err);
        return;
    }
    c.req = msg_envelope_id(env);
    c.lf.req = c.req;
    c.body = msg_envelope_body(env);
    const char *type = msg_envelope_type(env);
    /* "agent.ping" is the spelling of the first ferryctl */
    const char *method = strncmp(type, "rpc.", 4) == 0 ? type + 4 : strcmp(type, "agent.ping") == 0 ? "ping" : NULL;
    size_t i = 0;
    for (; method && i < ARRAY_SIZE(methods); i++)
        if (strcmp(methods[i].name, method) == 0)
            break;
    if (!sender_may_call(&c, m, method ? method : type)) {
        msg_envelope_free(env);
        return;
    }
    if (!method || i == ARRAY_SIZE(methods)) {
        _cleanup_free_ char *why = xasprintf("unknown method '%s'", type);
        log_warn(&c.lf, "%s", why);
        reply_error(&c, RPC_INVALID, why);
        msg_envelope_free(env);
        return;
    }
    if (methods[i].takes_migration && call_migration(&c, method) < 0) {
        msg_envelope_free(env);
        return;
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "ok", json_object_new_boolean(1));
    rpc_code code = RPC_INVALID;
    log_debug(&c.lf, "rpc %s", method);
    if (methods[i].takes_migration && fence(&c, &err, &code) < 0) {
        answer(&c, method, -1, out, err, code);
    } else if (methods[i].on_worker) {
        to_worker(&c, methods[i].name, methods[i].fn, env, out);
        return;
    } else {
        int rc = methods[i].fn(&c, out, &err, &code);
        answer(&c, method, rc, out, err, code);
    }
    msg_envelope_free(env);
}
