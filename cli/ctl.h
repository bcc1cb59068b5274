/* ctl: what ferryctl's verbs share: the options' state, the verb table's entry, and the broker
 * connection and RPC calls (ctl.c) every verb uses (main.c: options and agent verbs; verbs*.c:
 * the scheduler's verbs). */
#ifndef FERRY_CTL_H
#define FERRY_CTL_H

#include <event2/event.h>
#include <json-c/json.h>

#include "config.h"
#include "mq.h"
#include "msg.h"

#define PROG "ferryctl"

typedef struct ctl {
    ferry_config cfg;
    struct event_base *base;
    mq_conn *mq;
    int json;       /* -o json */
    int timeout_ms; /* --timeout, or [amqp] rpc_timeout_ms */
} ctl;

typedef struct verb {
    const char *name; /* one word, or two separated by a space ("host list") */
    const char *args;
    const char *summary;
    /* argv[0] is the verb's last word, its arguments follow; returns the exit status */
    int (*run)(ctl *c, int argc, char **argv);
} verb;

/* Connects c->mq (created here) and waits until it is up, within the connect timeout and
 * --timeout. Returns 0, or -1 after printing why. */
int ctl_connect(ctl *c);
/* Sends body (taken) as an RPC of envelope type to routing key `key` on the ferry exchange
 * and waits up to --timeout; returns the reply envelope (caller frees) or NULL after printing
 * why, naming `who` did not answer. */
msg_envelope *ctl_call(ctl *c, const char *key, const char *type, json_object *body, const char *who);
/* The same with a message already built (text, borrowed). */
msg_envelope *ctl_call_raw(ctl *c, const char *key, const char *text, const char *who);

/* verbs_host.c, verbs_migration.c: the scheduler's verbs (see their entries in main.c's table) */
int cmd_host_list(ctl *c, int argc, char **argv);
int cmd_host_show(ctl *c, int argc, char **argv);
int cmd_host_disable(ctl *c, int argc, char **argv);
int cmd_host_enable(ctl *c, int argc, char **argv);
int cmd_host_group(ctl *c, int argc, char **argv);
int cmd_host_evacuate(ctl *c, int argc, char **argv);
int cmd_host_drain(ctl *c, int argc, char **argv);
int cmd_drain_list(ctl *c, int argc, char **argv);
int cmd_drain_show(ctl *c, int argc, char **argv);
int cmd_drain_cancel(ctl *c, int argc, char **argv);
int cmd_instance_list(ctl *c, int argc, char **argv);
int cmd_migrate(ctl *c, int argc, char **argv);
int cmd_migration_list(ctl *c, int argc, char **argv);
int cmd_migration_show(ctl *c, int argc, char **argv);
int cmd_migration_events(ctl *c, int argc, char **argv);
int cmd_migration_abort(ctl *c, int argc, char **argv);
/* ferryctl migration resolve ID --to source|destination: the migration.resolve request. */
int cmd_migration_resolve(ctl *c, int argc, char **argv);
int cmd_migration_force_complete(ctl *c, int argc, char **argv);
/* ferryctl forecast INSTANCE [--bandwidth MiB/s] [--max-downtime MS] [--deadline S]: the
 * instance.forecast request, each mode's forecast as a table. */
int cmd_forecast(ctl *c, int argc, char **argv);
/* policy list|show|set|delete (verbs_policy.c) */
int cmd_policy_list(ctl *c, int argc, char **argv);
int cmd_policy_show(ctl *c, int argc, char **argv);
int cmd_policy_set(ctl *c, int argc, char **argv);
int cmd_policy_delete(ctl *c, int argc, char **argv);

#endif
