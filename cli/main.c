/* ferryctl: the operator's command line. It talks only AMQP (requests, RPC reads, events),
 * never PostgreSQL or libvirt: this file has the command table, the options and the agent
 * verbs (check, ping, rpc); verbs_host.c and verbs_migration.c have the scheduler's
 * (host, instance, migrate, migration), on verbs.c and verbs_follow.c (see verbs_priv.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <json-c/json.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "mq.h"
#include "msg.h"
#include "trust.h"
#include "ctl.h"

static int cmd_check(ctl *c, int argc, char **argv);
static int cmd_ping(ctl *c, int argc, char **argv);
static int cmd_rpc(ctl *c, int argc, char **argv);

static const verb verbs[] = {
    {"host list", "", "list the compute hosts: state, heartbeat, usage / capacity, migrations", cmd_host_list},
    {"host show", "HOST", "HOST's totals, then its usage per project (the seed's table)", cmd_host_show},
    {"host disable", "HOST [--reason TEXT]", "stop placing migrations on HOST", cmd_host_disable},
    {"host enable", "HOST", "place migrations on HOST again", cmd_host_enable},
    {"host group", "HOST GROUP | HOST --none",
     "put HOST in host group GROUP (or in none): migration policies select by it", cmd_host_group},
    {"host drain", "HOST [--deadline DURATION] [--bandwidth-budget MiB/s] [--dry-run] [--wait]",
     "drain HOST in the scheduler: HOST goes to maintenance and its running guests are\n"
     "        moved in the order, the number at a time and the mode a plan chooses from their\n"
     "        forecasts so that it ends earliest (by the deadline: 90, 90s, 15m, 2h), sharing\n"
     "        the bandwidth budget; it outlives " PROG " and a scheduler replica. --dry-run: the\n"
     "        plan alone; --wait: follow it to its receipt (Ctrl-C stops following, the drain\n"
     "        goes on)",
     cmd_host_drain},
    {"host evacuate", "HOST [--dry-run] [--wait]",
     "a drain of HOST without a deadline; with --wait, follow it to the end (Ctrl-C cancels\n"
     "        the drain: what has not finished is aborted, what was not requested stays)",
     cmd_host_evacuate},
    {"instance list", "[--host HOST]", "the instances: id, name, project, state, task state, host", cmd_instance_list},
    {"migrate",
     "INSTANCE [DEST] [--block-migrate] [--postcopy] [--auto-converge] [--bandwidth MiB/s]\n"
     "        [--max-downtime MS] [--postcopy-after N] [--completion-timeout S]\n"
     "        [--completion-action abort|postcopy|pause] [--parallel N] [--xbzrle MiB] [--wait]\n"
     "        [--objective-downtime MS] [--objective-deadline S] [--dry-run]",
     "live-migrate INSTANCE (name, uuid or i-xxxxxxxx) to DEST, or where the scheduler\n"
     "        chooses; --wait follows it to the end (exit 0 only when completed). Objectives:\n"
     "        the guest pauses at most MS, the move ends within S; a forecast chooses the mode\n"
     "        before anything is claimed (post-copy only with --postcopy), the request is refused\n"
     "        when no mode can meet them, and `migration show` gives the receipt. --dry-run: the\n"
     "        forecast of each mode with these options and objectives; nothing is requested.\n"
     "        At --completion-timeout S the migration is aborted, switched to post-copy (needs\n"
     "        --postcopy) or finished with the guest paused, as --completion-action says.\n"
     "        --parallel N: memory over N connections (not with --postcopy before QEMU 10.1);\n"
     "        --xbzrle MiB: xbzrle compression with a cache of MiB (a power of two; one stream)",
     cmd_migrate},
    {"instances live_migration", "INSTANCE DEST [OPTION]...", "the seed's spelling of migrate", cmd_migrate},
    {"migration list", "[--status STATUS] [--limit N]", "the migrations, newest first", cmd_migration_list},
    {"migration show", "ID", "one migration: hosts, status, progress, error", cmd_migration_show},
    {"migration events", "ID", "the timeline of a migration across scheduler, source, destination and operator",
     cmd_migration_events},
    {"migration abort", "ID", "abort a migration (before the guest moved and before a post-copy switch)",
     cmd_migration_abort},
    {"migration force-complete", "ID", "make a running migration finish now (post-copy, or pause the guest)",
     cmd_migration_force_complete},
    {"migration resolve", "ID --to source|destination",
     "settle a migration in error where its guest runs: refused unless libvirt on that host\n"
     "        says it runs there and libvirt on the other that it does not",
     cmd_migration_resolve},
    {"forecast", "INSTANCE [DEST] [--bandwidth MiB/s] [--max-downtime MS] [--deadline S] [--sample S]",
     "how long moving INSTANCE (to DEST) would take and pause it, by pre-copy, auto-converge\n"
     "        and post-copy (its host samples its dirty rate for --sample seconds, default 1), and\n"
     "        the mode that meets the objectives; without --bandwidth the link is the configured\n"
     "        one, else learned from earlier migrations from its host (to DEST); nothing moves",
     cmd_forecast},
    {"drain list", "", "the drains, newest first: host, status, deadline, guests moved", cmd_drain_list},
    {"drain show", "ID", "one drain: its plan, predicted finish, each guest's state and the receipt", cmd_drain_show},
    {"drain cancel", "ID",
     "cancel drain ID as a unit: guests not requested yet stay, migrations under way are\n"
     "        asked to abort (one in post-copy finishes)",
     cmd_drain_cancel},
    {"policy list", "", "the migration policies, highest priority first", cmd_policy_list},
    {"policy show", "NAME", "one migration policy: selectors, defaults, objectives", cmd_policy_show},
    {"policy set",
     "NAME [--priority N] [--project P] [--instance GLOB] [--host GLOB]\n"
     "        [--host-group GROUP] [--postcopy yes|no] [--auto-converge yes|no] [--postcopy-after N]\n"
     "        [--bandwidth MiB/s] [--max-downtime MS] [--completion-timeout S]\n"
     "        [--completion-action abort|postcopy|pause] [--parallel N] [--xbzrle MiB]\n"
     "        [--objective-downtime MS] [--objective-deadline S]",
     "create or replace policy NAME: the migrations of instances it selects (all the\n"
     "        selectors given must match; the highest priority wins) take its defaults for what\n"
     "        their request leaves out. A policy of the scheduler's configuration file\n"
     "        ([policy NAME]) cannot be changed here",
     cmd_policy_set},
    {"policy delete", "NAME", "delete policy NAME (migrations that used it keep its name)", cmd_policy_delete},
    {"check", "",
     "connect to the broker, declare ferry's topology (unless [amqp] declare_topology = false)\n"
     "        and report",
     cmd_check},
    {"ping", "HOST", "ask the agent of compute host HOST to answer over RPC", cmd_ping},
    {"rpc", "HOST METHOD [BODY]",
     "call METHOD of HOST's agent (compute-agent/RPC.md) with the JSON object BODY\n"
     "        (default {}, '-' reads standard input) and print the reply body; for debugging",
     cmd_rpc},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTION]... COMMAND [ARG]...\n"
               "Operate ferry, the live-migration control plane, over RabbitMQ.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        fprintf(f, "  %s %s\n        %s\n", verbs[i].name, verbs[i].args, verbs[i].summary);
    fprintf(f, "\n"
               "Options:\n"
               "  -c, --config FILE   configuration file (default " CFG_DEFAULT_PATH ")\n"
               "  -o, --output FMT    text (default) or json\n"
               "  -t, --timeout MS    how long to wait for the broker and for replies (default:\n"
               "                      [amqp] rpc_timeout_ms)\n"
               "  -V, --version       print the version and exit\n"
               "  -h, --help          show this help; '" PROG " COMMAND --help' for one command\n"
               "\n"
               "Environment: FERRY_AMQP_URL overrides [amqp] url.\n"
               "Exit status: 0 on success, 1 when the operation failed, 2 on bad usage.\n");
}

static void verb_usage(const verb *v, FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTION]... %s %s\n%s.\n", v->name, v->args, v->summary);
}

static int cmd_check(ctl *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, PROG ": check takes no arguments\n");
        return 2;
    }
    int64_t t0 = mono_ms();
    if (ctl_connect(c) < 0)
        return 1;
    long ms = (long)(mono_ms() - t0);
    bool declared = c->cfg.amqp.declare_topology;
    if (c->json)
        printf("{\"broker\":\"ok\",\"topology\":\"%s\",\"connect_ms\":%ld}\n", declared ? "declared" : "not declared",
               ms);
    else
        printf("broker: ok (connected%s in %ld ms)\n",
               declared ? " and topology declared" : "; topology not declared: [amqp] declare_topology = false", ms);
    return 0;
}

/* Sends body (taken) as type to host's agent and waits; the reply envelope or NULL (reported). */
static msg_envelope *call_agent(ctl *c, const char *host, const char *type, json_object *body)
{
    _cleanup_free_ char *key = xasprintf("compute.%s", host);
    _cleanup_free_ char *who = xasprintf("the agent of %s", host);
    return ctl_call(c, key, type, body, who);
}

static int cmd_rpc(ctl *c, int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, PROG ": rpc needs HOST METHOD [BODY]\n");
        return 2;
    }
    const char *text = argc == 4 ? argv[3] : "{}";
    _cleanup_free_ char *in = NULL;
    if (strcmp(text, "-") == 0) {
        size_t cap = 0;
        FILE *m = open_memstream(&in, &cap);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
            fwrite(buf, 1, n, m);
        fclose(m);
        text = in;
    }
    enum json_tokener_error jerr;
    json_object *body = json_tokener_parse_verbose(text, &jerr);
    if (!body || !json_object_is_type(body, json_type_object)) {
        fprintf(stderr, PROG ": BODY must be a JSON object: %s\n",
                body ? "not an object" : json_tokener_error_desc(jerr));
        json_object_put(body);
        return 2;
    }
    if (ctl_connect(c) < 0) {
        json_object_put(body);
        return 1;
    }
    _cleanup_free_ char *type = xasprintf("rpc.%s", argv[2]);
    msg_envelope *env = call_agent(c, argv[1], type, body);
    if (!env)
        return 1;
    json_object *b = msg_envelope_body(env), *ok = NULL;
    printf("%s\n", json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
    int rc = json_object_object_get_ex(b, "ok", &ok) && json_object_get_boolean(ok) ? 0 : 1;
    if (rc) {
        json_object *e = NULL;
        json_object_object_get_ex(b, "error", &e);
        fprintf(stderr, PROG ": %s on %s: %s\n", argv[2], argv[1], e ? json_object_get_string(e) : "failed");
    }
    msg_envelope_free(env);
    return rc;
}

static int cmd_ping(ctl *c, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, PROG ": ping needs exactly one HOST\n");
        return 2;
    }
    const char *host = argv[1];
    if (ctl_connect(c) < 0)
        return 1;
    int64_t t0 = mono_ms();
    msg_envelope *env = call_agent(c, host, "rpc.ping", json_object_new_object());
    if (!env)
        return 1;
    long ms = (long)(mono_ms() - t0);
    json_object *b = msg_envelope_body(env), *ok = NULL, *e = NULL, *v = NULL, *lv = NULL;
    int rc = 0;
    if (!json_object_object_get_ex(b, "ok", &ok) || !json_object_get_boolean(ok)) {
        json_object_object_get_ex(b, "error", &e);
        fprintf(stderr, PROG ": the agent of %s refused: %s\n", host, e ? json_object_get_string(e) : "unknown error");
        rc = 1;
    } else if (c->json) {
        json_object_object_add(b, "rtt_ms", json_object_new_int64(ms));
        printf("%s\n", json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
    } else {
        json_object_object_get_ex(b, "version", &v);
        json_object_object_get_ex(b, "libvirt", &lv);
        printf("%s: ferry-agent %s, libvirt %s, answered in %ld ms\n", host, v ? json_object_get_string(v) : "?",
               lv ? json_object_get_string(lv) : "?", ms);
    }
    msg_envelope_free(env);
    return rc;
}

/* The verb spelled by the first one or two words of argv (two-word verbs first); *words
 * says how many it took. */
static const verb *find_verb(int argc, char **argv, int *words)
{
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
        const char *sp = strchr(verbs[i].name, ' ');
        if (sp && argc >= 2 && strncmp(verbs[i].name, argv[0], (size_t)(sp - verbs[i].name)) == 0 &&
            argv[0][sp - verbs[i].name] == 0 && strcmp(sp + 1, argv[1]) == 0) {
            *words = 2;
            return &verbs[i];
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (!strchr(verbs[i].name, ' ') && argc >= 1 && strcmp(verbs[i].name, argv[0]) == 0) {
            *words = 1;
            return &verbs[i];
        }
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},  {"output", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *output = "text", *timeout = NULL;
    int opt;
    /* '+': options end at the command, whose own arguments follow */
    while ((opt = getopt_long(argc, argv, "+c:o:t:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 't':
            timeout = optarg;
            break;
        case 'V':
            printf(PROG " " FERRY_VERSION "\n");
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try '" PROG " --help' for more information.\n");
            return 2;
        }
    }
    if (strcmp(output, "text") != 0 && strcmp(output, "json") != 0) {
        fprintf(stderr, PROG ": --output must be text or json, not '%s'\n", output);
        return 2;
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const verb *v = NULL;
    int words = 0;
    if (strcmp(argv[optind], "help") == 0) {
        if (optind + 1 >= argc) {
            usage(stdout);
            return 0;
        }
        v = find_verb(argc - optind - 1, argv + optind + 1, &words);
        if (!v) {
            fprintf(stderr, PROG ": unknown command '%s'\nTry '" PROG " --help' for the list.\n", argv[optind + 1]);
            return 2;
        }
        verb_usage(v, stdout);
        return 0;
    }
    v = find_verb(argc - optind, argv + optind, &words);
    if (!v) {
        /* a known first word: say which second words it takes */
        int known = 0;
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
            size_t k = strlen(argv[optind]);
            if (strncmp(verbs[i].name, argv[optind], k) == 0 && verbs[i].name[k] == ' ') {
                if (!known++)
                    fprintf(stderr, PROG ": '%s' needs one of:", argv[optind]);
                fprintf(stderr, " %s", verbs[i].name + k + 1);
            }
        }
        if (known)
            fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
        else
            fprintf(stderr, PROG ": unknown command '%s'\nTry '" PROG " --help' for the list.\n", argv[optind]);
        return 2;
    }
    optind += words - 1; /* the verb's arguments follow its last word */
    for (int i = optind + 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            verb_usage(v, stdout);
            return 0;
        }
    ctl c = {0};
    c.json = strcmp(output, "json") == 0;
    if (app_load_config(PROG, config_path, &c.cfg) < 0) {
        cfg_free(&c.cfg);
        return 2;
    }
    c.timeout_ms = (int)c.cfg.amqp.rpc_timeout_ms;
    if (timeout) {
        int64_t t;
        if (parse_i64(timeout, 1, 3600000, &t) < 0) {
            fprintf(stderr, PROG ": --timeout must be a number of milliseconds in 1..3600000, not '%s'\n", timeout);
            cfg_free(&c.cfg);
            return 2;
        }
        c.timeout_ms = (int)t;
    }
    log_set_proc(PROG);
    evthread_use_pthreads(); /* mq's connect worker hands its result to the loop (evq) */
    c.base = event_base_new();
    int rc = v->run(&c, argc - optind, argv + optind);
    mq_free(c.mq);
    event_base_free(c.base);
    cfg_free(&c.cfg);
    return rc;
}
