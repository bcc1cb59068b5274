/* ferry-scheduler: consumes migration requests, claims capacity in PostgreSQL and drives the
 * compute agents. This file wires the modules (docs/DESIGN.md "The modules": intake, hoststate,
 * orch, lease, queue, outbox, api, http) to the loop, the broker and the database. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "lease.h"
#include "log.h"
#include "mq.h"
#include "orchcall.h"
#include "policy.h"
#include "samplecache.h"
#include "drain.h"
#include "schema.h"
#include "sched.h"

#define PROG "ferry-scheduler"

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTION]...\n"
               "The ferry scheduler: takes live-migration requests from RabbitMQ (queue ferry.scheduler),\n"
               "claims capacity in PostgreSQL and drives the compute agents.\n"
               "\n"
               "  -c, --config FILE     configuration file (default " CFG_DEFAULT_PATH ")\n"
               "      --db-upgrade      apply pending database schema migrations and exit\n"
               "      --check-config    load and validate the configuration, print it, and exit\n"
               "      --print-example-config  print a commented configuration file and exit\n"
               "  -n, --name NAME       this replica's name, unique among replicas (overrides\n"
               "                        [scheduler] name; default: the host name)\n"
               "      --http-port PORT  port of the HTTP API and dashboard (overrides [http] port;\n"
               "                        0 = any free port)\n"
               "  -l, --log-level LEVEL error, warn, info or debug (overrides [log] level)\n"
               "  -V, --version         print the version and exit\n"
               "  -h, --help            show this help and exit\n"
               "\n"
               "Environment: FERRY_AMQP_URL, FERRY_DB_DSN, FERRY_LOG_LEVEL and FERRY_LOG_FORMAT override the file.\n"
               "Exit status: 0 on a clean stop or success, 1 on a runtime failure, 2 on bad usage\n"
               "or configuration.\n");
}

static void on_mq_state(mq_conn *c, int up, const char *err, void *arg)
{
    (void)c;
    sched *s = arg;
    if (up) {
        log_info(NULL, "scheduler %s ready: broker connected, topology declared", s->name);
        _cleanup_free_ char *st = xasprintf("scheduler %s: broker and database connected", s->name);
        app_notify_ready(st);
    } else {
        log_warn(NULL, "scheduler %s lost the broker: %s", s->name, err);
        _cleanup_free_ char *st = xasprintf("scheduler %s: broker lost (%s), reconnecting", s->name, err);
        app_notify_status(st);
    }
}

static int probe_work(db_conn *db, void *arg, char **err)
{
    (void)arg;
    if (db_exec(db, NULL, "SELECT 1", 0, NULL) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    return 0;
}

static void probe_done(void *arg, int rc, char *err)
{
    (void)rc;
    sched *s = arg;
    s->db_probe_busy = 0;
    free(err); /* the worker's health holds the reason */
}

/* Every second: leases, adoption, operators' requests, deadlines, the queue and the outbox.
 * Nothing is adopted, started or acted on while the broker is away (no agent could be asked),
 * but the leases are renewed: this replica lives and drives its migrations on once the broker
 * is back (its RPCs fail meanwhile and are sent again). The database worker's health is kept
 * fresh by a probe when nothing else asks the database. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sched *s = arg;
    http_tick(s);
    if (!s->db_probe_busy) {
        s->db_probe_busy = 1;
        dbq_submit(s->dbq, probe_work, probe_done, s);
    }
    if (!s->db_ready)
        return;
    if (!mq_is_up(s->mq)) {
        lease_renew(s);
        return;
    }
    lease_tick(s, s->ticks++ == 0);
    queue_dispatch(s);
    outbox_flush(s);
    reconcile_tick(s);
    drain_tick(s);
}

/* The start's database check, with the worker: connected, and the schema the expected one. */
typedef struct start_check {
    sched *s;
    int schema_bad;      /* connected, but the schema cannot be used: do not retry */
    char started_at[64]; /* the database's clock */
} start_check;

static int sync_policies(db_conn *db, void *arg, char **err)
{
    return policyop_sync_config(db, arg, err);
}

static int start_check_work(db_conn *db, void *arg, char **err)
{
    start_check *c = arg;
    if (schema_check(db, err) < 0) {
        c->schema_bad = 1;
        return -1;
    }
    _cleanup_pq_ PGresult *now = NULL;
    if (db_exec(db, &now, "SELECT now()::text", 0, NULL) < 0) {
        *err = xasprintf("could not read the database's clock: %s", db_error(db));
        return -1;
    }
    strlcpy_f(c->started_at, PQgetvalue(now, 0, 0), sizeof(c->started_at));
    /* the configuration file's policies, as they are in this replica's file */
    if (db_tx(db, "READ COMMITTED", sync_policies, c->s->config_policies, NULL, err) < 0) {
        char *e = *err;
        *err = xasprintf("could not write the configuration file's policies: %s", e);
        free(e);
        return -1;
    }
    return 0;
}

static void start_check_done(void *arg, int rc, char *err)
{
    start_check *c = arg;
    sched *s = c->s;
    int bad = c->schema_bad;
    strlcpy_f(s->db_started_at, c->started_at, sizeof(s->db_started_at));
    free(c);
    if (s->stopping) {
        free(err);
        return;
    }
    if (rc < 0 && bad) {
        log_error(NULL, "cannot start: %s", err);
        free(err);
        s->exit_code = 1;
        event_base_loopexit(s->base, NULL);
        return;
    }
    if (rc < 0) {
        log_warn(NULL, "%s; retrying in 2 s", err);
        free(err);
        struct timeval tv = {2, 0};
        evtimer_add(s->db_retry, &tv);
        return;
    }
    free(err);
    log_info(NULL, "database connected, schema at version %d", schema_latest());
    s->db_ready = 1;
    mq_start(s->mq);
    struct timeval tv = {1, 0};
    event_add(s->tick, &tv);
}

/* Asks the database worker to connect and check the schema (again after a failure). */
static void try_db(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sched *s = arg;
    start_check *c = xcalloc(1, sizeof(*c));
    c->s = s;
    dbq_submit(s->dbq, start_check_work, start_check_done, c);
}

static int db_upgrade(const ferry_config *cfg)
{
    db_options o;
    db_options_from_config(cfg, PROG, &o);
    db_conn *db = NULL;
    char *err = NULL;
    if (db_open(&o, &db, &err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        free(err);
        return 1;
    }
    int from = 0, to = 0;
    int rc = schema_upgrade(db, &from, &to, &err);
    db_close(db);
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        free(err);
        return 1;
    }
    if (from == to)
        printf("database schema already at version %d, nothing to do\n", to);
    else
        printf("database schema upgraded from version %d to %d\n", from, to);
    return 0;
}

static void print_config(const ferry_config *cfg)
{
    size_t n;
    const cfg_option *opts = cfg_options(&n);
    const char *section = "";
    for (size_t i = 0; i < n; i++) {
        if (strcmp(section, opts[i].section) != 0) {
            section = opts[i].section;
            printf("%s[%s]\n", i ? "\n" : "", section);
        }
        char *v = NULL;
        if (cfg_get_text(cfg, opts[i].section, opts[i].key, &v) == 0) {
            /* never print credentials */
            int secret = strcmp(opts[i].key, "tokens") == 0 || strcmp(opts[i].key, "metrics_token") == 0 ||
                         strcmp(opts[i].key, "dsn") == 0 || strcmp(opts[i].key, "url") == 0;
            printf("%s = %s\n", opts[i].key, secret && *v ? "(set)" : v);
            free(v);
        }
    }
}

typedef struct reload_ctx {
    sched *s;
    const char *path;  /* --config, or NULL for the default */
    const char *level; /* --log-level, which a reload keeps */
} reload_ctx;

/* SIGHUP: what can change at run time does — [log] level and format, and the numbers of
 * [scheduler] (limits, deadlines, lease, ratios, defaults); the rest (broker, database, HTTP,
 * the replica's name) needs a restart. A file with an error changes nothing. */
static void on_reload(void *arg)
{
    reload_ctx *r = arg;
    ferry_config n;
    ferry_config *c = r->s->cfg;
    if (app_reload_config(r->path, r->level, c, &n) < 0)
        return;
    char *name = c->scheduler.name; /* the replica keeps its name (n's copy goes with n) */
    c->scheduler = n.scheduler;
    c->scheduler.name = name;
    char cluster[48];
    if (c->scheduler.max_cluster > 0)
        snprintf(cluster, sizeof(cluster), "%lld in the cluster", (long long)c->scheduler.max_cluster);
    else
        snprintf(cluster, sizeof(cluster), "none for the cluster");
    log_info(NULL,
             "configuration reloaded: log level %s; limits %lld out per source, %lld in per destination, %s; "
             "deadlines queued %lld s, preparing %lld s, running %lld s, completing %lld s; lease %lld s",
             log_level_name(c->log.level), (long long)c->scheduler.max_outgoing_per_source,
             (long long)c->scheduler.max_incoming_per_dest, cluster, (long long)c->scheduler.deadline_queued_s,
             (long long)c->scheduler.deadline_preparing_s, (long long)c->scheduler.deadline_running_s,
             (long long)c->scheduler.deadline_completing_s, (long long)c->scheduler.lease_s);
    cfg_free(&n);
    queue_dispatch_soon(r->s); /* higher limits may let queued migrations start */
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"db-upgrade", no_argument, NULL, 'U'},
        {"check-config", no_argument, NULL, 'C'},
        {"print-example-config", no_argument, NULL, 'E'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"name", required_argument, NULL, 'n'},
        {"http-port", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *level_arg = NULL, *name_arg = NULL;
    int http_port = -1;
    int do_upgrade = 0, check_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:l:n:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'U':
            do_upgrade = 1;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'E':
            cfg_write_example(stdout);
            return 0;
        case 'l':
            level_arg = optarg;
            break;
        case 'n':
            name_arg = optarg;
            break;
        case 'P': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 65535) {
                fprintf(stderr, PROG ": --http-port: '%s' is not a port number (0-65535)\n", optarg);
                return 2;
            }
            http_port = (int)v;
            break;
        }
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
    ferry_config cfg;
    const app_override ov[] = {{"log", "level", level_arg}, {"scheduler", "name", name_arg}};
    if (app_start_config(PROG, optind, argc, argv, config_path, ov, ARRAY_SIZE(ov), &cfg) != 0)
        return 2;
    /* the file's [policy NAME]s, checked before anything starts (written at the database's check) */
    json_object *config_policies = NULL;
    char *perr = NULL;
    msg_options tdefs = {.parallel_connections = (int)cfg.scheduler.parallel_connections,
                         .xbzrle_cache_mib = (int)cfg.scheduler.xbzrle_cache_mib};
    int bad_defaults = msg_options_transport_check(&tdefs, "", &perr) < 0;
    if (bad_defaults || policy_config_bodies(&cfg, &config_policies, &perr) < 0) {
        fprintf(stderr, PROG ": %s%s\n", bad_defaults ? "[scheduler] " : "", perr);
        free(perr);
        cfg_free(&cfg);
        return 2;
    }
    if (check_only) {
        print_config(&cfg);
        json_object_put(config_policies);
        cfg_free(&cfg);
        return 0;
    }
    if (app_setup_log(PROG, &cfg) < 0) {
        json_object_put(config_policies);
        cfg_free(&cfg);
        return 2;
    }
    if (do_upgrade) {
        int rc = db_upgrade(&cfg);
        json_object_put(config_policies);
        cfg_free(&cfg);
        log_close();
        return rc;
    }

    sched s = {.cfg = &cfg, .http_port = http_port, .config_policies = config_policies};
    s.name = *cfg.scheduler.name ? xstrdup(cfg.scheduler.name) : app_hostname();
    log_set_host(s.name);
    evthread_use_pthreads(); /* the database worker and mq's connect worker post to the loop (evq) */
    s.base = event_base_new();
    db_options dbo;
    db_options_from_config(&cfg, PROG, &dbo);
    s.dbq = dbq_new(s.base, &dbo, SCHED_DB_STALL_MS);
    s.claims_dbq = dbq_new(s.base, &dbo, SCHED_DB_STALL_MS);
    s.dispatch = event_new(s.base, -1, 0, queue_on_dispatch, &s); /* queue_dispatch_soon */
    app_signals *sig = app_signals_new(s.base);
    reload_ctx reload = {.s = &s, .path = config_path, .level = level_arg};
    app_signals_on_reload(sig, on_reload, &reload);
    mq_options mo;
    _cleanup_free_ char *conn_name = xasprintf(PROG "@%s", s.name);
    app_mq_options(&cfg, conn_name, &mo);
    char *err = NULL;
    if (mq_new(s.base, &mo, &s.mq, &err) < 0) {
        log_error(NULL, "cannot start: %s", err);
        free(err);
        s.exit_code = 2;
        goto out;
    }
    mq_on_state(s.mq, on_mq_state, &s);
    mq_declare_ferry_topology(s.mq);
    /* what the agents report; one queue shared by all replicas */
    mq_declare_queue(s.mq, SCHED_EVENTS_QUEUE, MQ_Q_QUORUM);
    mq_bind(s.mq, SCHED_EVENTS_QUEUE, MQ_EVENTS_EXCHANGE, "host.#.heartbeat"); /* names may hold dots */
    mq_bind(s.mq, SCHED_EVENTS_QUEUE, MQ_EVENTS_EXCHANGE, "migration.#");
    mq_consume(s.mq, SCHED_EVENTS_QUEUE, hoststate_on_event, &s);
    mq_consume(s.mq, MQ_SCHEDULER_QUEUE, intake_on_request, &s);
    /* the reads of ferryctl, answered by any replica */
    mq_declare_queue(s.mq, SCHED_RPC_QUEUE, MQ_Q_QUORUM | MQ_Q_DEAD_LETTER);
    mq_bind(s.mq, SCHED_RPC_QUEUE, MQ_EXCHANGE, SCHED_RPC_KEY);
    mq_consume(s.mq, SCHED_RPC_QUEUE, api_on_rpc, &s);
    if (http_start(&s, &err) < 0) {
        log_error(NULL, "cannot start: %s", err);
        free(err);
        s.exit_code = 2;
        goto out;
    }
    log_info(NULL, PROG " " FERRY_VERSION " starting as %s", s.name);
    s.db_retry = evtimer_new(s.base, try_db, &s);
    s.tick = event_new(s.base, -1, EV_PERSIST, on_tick, &s);
    try_db(-1, 0, &s);
    event_base_dispatch(s.base);
    /* the agent calls still out end with the connection: not failures of their migrations,
     * which keep their status; the lease brings them back (to this replica or another) */
    s.stopping = 1;
    orchcall_stop(&s);
    hoststate_stop(&s);
    if (orch_count())
        log_info(NULL, "stopping with %d migrations in flight: they resume when their lease expires", orch_count());
    log_info(NULL, PROG " stopped");
out:
    /* the continuations still due answer their HTTP requests and finish their deliveries */
    dbq_free(s.claims_dbq, SCHED_DB_STOP_GRACE_MS); /* first: its continuations may hand work to s.dbq */
    dbq_free(s.dbq, SCHED_DB_STOP_GRACE_MS);
    free(s.outbox_del); /* confirmed and not deleted: published again, with the same ids */
    http_stop(&s);
    mq_free(s.mq);
    if (s.db_retry)
        event_free(s.db_retry);
    if (s.tick)
        event_free(s.tick);
    if (s.dispatch)
        event_free(s.dispatch);
    app_signals_free(sig);
    event_base_free(s.base);
    free(s.name);
    samplecache_free(s.samples);
    json_object_put(s.config_policies);
    cfg_free(&cfg);
    log_close();
    return s.exit_code;
}
