/* ferry-agent: the compute agent of one host (see DESIGN.md). This build connects to the
 * broker, declares and serves its RPC queue ferry.compute.<host> with the `agent.ping` method;
 * the inventory, checks and the libvirt migration job come with the agent issue. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "mq.h"
#include "msg.h"

#define PROG "ferry-agent"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [OPTION]...\n"
            "The ferry compute agent: serves RPC on queue ferry.compute.HOST and runs this host's\n"
            "libvirt live migrations.\n"
            "\n"
            "  -c, --config FILE     configuration file (default " CFG_DEFAULT_PATH ")\n"
            "  -H, --host NAME       this compute host's name (overrides [agent] host; default:\n"
            "                        the machine's host name)\n"
            "  -l, --log-level LEVEL error, warn, info or debug (overrides [log] level)\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            show this help and exit\n"
            "\n"
            "Environment: FERRY_AMQP_URL and FERRY_LOG_LEVEL override the file.\n"
            "Exit status: 0 on a clean stop, 1 on a runtime failure, 2 on bad usage or configuration.\n");
}

typedef struct agent {
    ferry_config *cfg;
    struct event_base *base;
    mq_conn *mq;
    char *host;
    char *queue;
} agent;

static void reply_json(agent *a, mq_delivery *d, const char *type, const char *id, json_object *body)
{
    _cleanup_free_ char *out = msg_build(type, id, body);
    char *err = NULL;
    log_fields f = {.host = a->host, .req = id};
    if (mq_rpc_reply(a->mq, d, out, strlen(out), &err) < 0) {
        log_error(&f, "could not send the %s reply: %s", type, err);
        free(err);
    }
}

static void reply_error(agent *a, mq_delivery *d, const char *id, const char *reason)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "error", json_object_new_string(reason));
    reply_json(a, d, "rpc.error", id, b);
}

static void on_rpc(mq_conn *c, mq_delivery *d, void *arg)
{
    agent *a = arg;
    const mq_message *m = mq_delivery_message(d);
    msg_envelope *env = NULL;
    char *err = NULL;
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        log_fields f = {.host = a->host, .req = m->message_id};
        log_warn(&f, "malformed RPC request on %s: %s", a->queue, err);
        if (m->reply_to)
            reply_error(a, d, NULL, err);
        else
            mq_dead_letter(c, d, err);
        free(err);
        return;
    }
    const char *type = msg_envelope_type(env);
    const char *id = msg_envelope_id(env);
    log_fields f = {.host = a->host, .req = id};
    if (strcmp(type, "agent.ping") == 0) {
        log_debug(&f, "ping");
        json_object *b = json_object_new_object();
        json_object_object_add(b, "host", json_object_new_string(a->host));
        json_object_object_add(b, "version", json_object_new_string(FERRY_VERSION));
        unsigned long lv = 0;
        virGetVersion(&lv, NULL, NULL);
        _cleanup_free_ char *lvs = xasprintf("%lu.%lu.%lu", lv / 1000000, lv / 1000 % 1000, lv % 1000);
        json_object_object_add(b, "libvirt_library", json_object_new_string(lvs));
        reply_json(a, d, "agent.pong", id, b);
    } else {
        _cleanup_free_ char *why = xasprintf("unknown method '%s'", type);
        log_warn(&f, "%s", why);
        reply_error(a, d, id, why);
    }
    msg_envelope_free(env);
}

static void on_mq_state(mq_conn *c, int up, const char *err, void *arg)
{
    (void)c;
    agent *a = arg;
    if (up)
        log_info(NULL, "agent ready: serving %s", a->queue);
    else
        log_warn(NULL, "agent lost the broker: %s", err);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"host", required_argument, NULL, 'H'},
        {"log-level", required_argument, NULL, 'l'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *host = NULL, *level_arg = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:H:l:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'H': host = optarg; break;
        case 'l': level_arg = optarg; break;
        case 'V': printf(PROG " " FERRY_VERSION "\n"); return 0;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "Try '" PROG " --help' for more information.\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\nTry '" PROG " --help' for more information.\n", argv[optind]);
        return 2;
    }
    ferry_config cfg;
    if (app_load_config(PROG, config_path, &cfg) < 0) {
        cfg_free(&cfg);
        return 2;
    }
    char *err = NULL;
    if ((host && cfg_set(&cfg, "agent", "host", host, &err) < 0) ||
        (level_arg && cfg_set(&cfg, "log", "level", level_arg, &err) < 0)) {
        fprintf(stderr, PROG ": %s\n", err);
        free(err);
        cfg_free(&cfg);
        return 2;
    }
    if (app_setup_log(PROG, &cfg) < 0) {
        cfg_free(&cfg);
        return 2;
    }
    agent a = {.cfg = &cfg};
    a.host = *cfg.agent.host ? xstrdup(cfg.agent.host) : app_hostname();
    a.queue = xasprintf("ferry.compute.%s", a.host);
    log_set_host(a.host);
    a.base = event_base_new();
    app_signals *sig = app_signals_new(a.base);
    int rc = 0;
    mq_options mo;
    _cleanup_free_ char *conn_name = xasprintf(PROG "@%s", a.host);
    app_mq_options(&cfg, conn_name, &mo);
    if (mq_new(a.base, &mo, &a.mq, &err) < 0) {
        log_error(NULL, "cannot start: %s", err);
        free(err);
        rc = 2;
        goto out;
    }
    mq_on_state(a.mq, on_mq_state, &a);
    mq_declare_ferry_topology(a.mq);
    mq_declare_compute_queue(a.mq, a.host);
    mq_consume(a.mq, a.queue, on_rpc, &a);
    log_info(NULL, PROG " " FERRY_VERSION " starting");
    mq_start(a.mq);
    event_base_dispatch(a.base);
    log_info(NULL, PROG " stopped");
out:
    mq_free(a.mq);
    app_signals_free(sig);
    event_base_free(a.base);
    free(a.host);
    free(a.queue);
    cfg_free(&cfg);
    log_close();
    return rc;
}
