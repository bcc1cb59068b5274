/* ferry-agent: the compute agent of one host (docs/DESIGN.md "Processes", "Flows" 3-7). It
 * talks to RabbitMQ and to its own libvirtd, never to PostgreSQL: it publishes the host's
 * inventory and every domain lifecycle change, and serves the migration RPCs of
 * compute-agent/RPC.md on ferry.compute.<host>. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>

#include "agent.h"
#include "app.h"
#include "events.h"
#include "guard.h"
#include "job.h"
#include "workq.h"

#define PROG "ferry-agent"

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTION]...\n"
               "The ferry compute agent: reports this host and its domains, and runs its libvirt live\n"
               "migrations for the scheduler, over RPC on queue ferry.compute.HOST.\n"
               "\n"
               "  -c, --config FILE     configuration file (default " CFG_DEFAULT_PATH ")\n"
               "  -H, --host NAME       this compute host's name (overrides [agent] host; default:\n"
               "                        the machine's host name)\n"
               "  -a, --address ADDR    address other hosts reach this one at for migrations\n"
               "                        (overrides [agent] address; default: resolve the host name)\n"
               "  -l, --log-level LEVEL error, warn, info or debug (overrides [log] level)\n"
               "  -V, --version         print the version and exit\n"
               "  -h, --help            show this help and exit\n"
               "\n"
               "Environment: FERRY_AMQP_URL, FERRY_LOG_LEVEL and FERRY_LOG_FORMAT override the file.\n"
               "Exit status: 0 on a clean stop, 1 on a runtime failure, 2 on bad usage or configuration.\n");
}

/* ---- wiring: timers and callbacks (loop thread) ------------------------------------------ */

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    events_heartbeat(arg);
}

static void on_lifecycle(void *arg, const lv_lifecycle *ev)
{
    events_lifecycle(arg, ev);
}

static void on_iteration(void *arg, const char *uuid, int iteration)
{
    job_on_iteration(arg, uuid, iteration);
}

static void on_job_completed(void *arg, const char *uuid, virTypedParameterPtr params, int n)
{
    job_on_completed(arg, uuid, params, n);
}

static void on_lv_connection(void *arg, int up, const char *why)
{
    agent *a = arg;
    a->lv_up = up;
    if (up) {
        log_info(NULL, "libvirt connected (%s)", a->cfg->libvirt.uri);
        job_recover(a);
        events_heartbeat(a);
    } else {
        log_warn(NULL, "libvirt connection lost: %s", why ? why : "unknown");
    }
}

static void on_mq_state(mq_conn *c, int up, const char *err, void *arg)
{
    (void)c;
    agent *a = arg;
    if (up) {
        log_info(NULL, "agent ready: serving %s", a->queue);
        _cleanup_free_ char *st = xasprintf("serving %s", a->queue);
        app_notify_ready(st);
        events_heartbeat(a);
    } else {
        log_warn(NULL, "agent lost the broker: %s", err);
        _cleanup_free_ char *st = xasprintf("broker lost (%s), reconnecting", err);
        app_notify_status(st);
    }
}

/* The address others use for migrations: [agent] address, else the host name's. */
static char *resolve_address(const char *host)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai) {
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, buf, sizeof(buf));
        freeaddrinfo(ai);
        return xstrdup(buf);
    }
    return xstrdup(host);
}

typedef struct reload_ctx {
    ferry_config *cfg;
    const char *path;
    const char *level;
} reload_ctx;

/* SIGHUP: [log] level and format change at run time; the rest needs a restart. A file with an
 * error changes nothing. */
static void on_reload(void *arg)
{
    reload_ctx *r = arg;
    ferry_config n;
    if (app_reload_config(r->path, r->level, r->cfg, &n) < 0)
        return;
    log_info(NULL, "configuration reloaded: log level %s", log_level_name(n.log.level));
    cfg_free(&n);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"host", required_argument, NULL, 'H'},
        {"address", required_argument, NULL, 'a'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *host = NULL, *address = NULL, *level_arg = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:H:a:l:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'H':
            host = optarg;
            break;
        case 'a':
            address = optarg;
            break;
        case 'l':
            level_arg = optarg;
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
    ferry_config cfg;
    const app_override ov[] = {{"agent", "host", host}, {"agent", "address", address}, {"log", "level", level_arg}};
    if (app_start_config(PROG, optind, argc, argv, config_path, ov, ARRAY_SIZE(ov), &cfg) != 0)
        return 2;
    char *err = NULL;
    if (app_setup_log(PROG, &cfg) < 0) {
        cfg_free(&cfg);
        return 2;
    }
    evthread_use_pthreads(); /* evq's event_active comes from other threads (mq's connect worker too) */
    agent a = {.cfg = &cfg};
    uuid_new(a.boot);
    a.host = *cfg.agent.host ? xstrdup(cfg.agent.host) : app_hostname();
    a.address = *cfg.agent.address ? xstrdup(cfg.agent.address) : resolve_address(a.host);
    const char *ma = cfg.agent.migration_address;
    char *bad = NULL;
    if (*ma && guard_data_address(ma, strlen(ma), &bad) < 0) {
        fprintf(stderr, PROG ": [agent] migration_address '%s': %s\n", ma, bad);
        free(bad);
        free(a.host);
        free(a.address);
        cfg_free(&cfg);
        return 2;
    }
    a.queue = xasprintf("ferry.compute.%s", a.host);
    log_set_host(a.host);
    a.base = event_base_new();
    a.q = evq_new(a.base);
    a.rpcq = workq_new(a.q, "ferry-agent-rpc");
    app_signals *sig = app_signals_new(a.base);
    reload_ctx reload = {.cfg = &cfg, .path = config_path, .level = level_arg};
    app_signals_on_reload(sig, on_reload, &reload);
    int rc = 0;
    mq_options mo;
    lv_callbacks cb = {
        .lifecycle = on_lifecycle,
        .migration_iteration = on_iteration,
        .job_completed = on_job_completed,
        .connection = on_lv_connection,
        .arg = &a,
    };
    struct timeval hb = {.tv_sec = cfg.agent.heartbeat_interval_s, .tv_usec = 0};
    _cleanup_free_ char *conn_name = xasprintf(PROG "@%s", a.host);
    app_mq_options(&cfg, conn_name, &mo);
    mo.no_rpc_replies = 1; /* an agent answers RPCs and calls none */
    if (mq_new(a.base, &mo, &a.mq, &err) < 0) {
        log_error(NULL, "cannot start: %s", err);
        free(err);
        rc = 2;
        goto out;
    }
    mq_on_state(a.mq, on_mq_state, &a);
    if (cfg.amqp.declare_topology) {
        mq_declare_ferry_topology(a.mq);
        mq_declare_compute_queue(a.mq, a.host);
    } else {
        /* its queue and binding come from add-agent-user: an agent's user may not bind */
        _cleanup_free_ char *q = xasprintf("ferry.compute.%s", a.host);
        mq_declare_queue(a.mq, q, MQ_Q_QUORUM | MQ_Q_DEAD_LETTER);
    }
    mq_consume(a.mq, a.queue, rpc_on_request, &a);
    log_info(NULL, PROG " " FERRY_VERSION " starting: host %s, address %s, libvirt %s, instances %s", a.host, a.address,
             cfg.libvirt.uri, cfg.agent.instances_path);
    if (lv_open(a.q, cfg.libvirt.uri, (int)cfg.libvirt.keepalive_interval_s, (int)cfg.libvirt.keepalive_count, &cb,
                &a.lv, &err) < 0) {
        log_error(NULL, "cannot start: %s", err);
        free(err);
        rc = 1;
        goto out;
    }
    a.heartbeat_ev = event_new(a.base, -1, EV_PERSIST, on_heartbeat_timer, &a);
    event_add(a.heartbeat_ev, &hb);
    mq_start(a.mq);
    event_base_dispatch(a.base);
    log_info(NULL, PROG " stopped");
out:;
    /* an RPC still waiting (on libvirt, on a leftover domain) gets a few seconds; the ones
     * not started go back to the queue for the next agent */
    int rpc_stuck = workq_free(a.rpcq, 5000) < 0;
    if (rpc_stuck)
        log_warn(NULL,
                 "stopping while an RPC still waits on libvirt: its answer is not sent, the scheduler asks again");
    lv_close(a.lv);
    if (a.heartbeat_ev)
        event_free(a.heartbeat_ev);
    if (rpc_stuck) {
        /* its answer will be posted to the queue: leave the queue to the process's end */
    } else if (job_workers_running(&a)) {
        /* a worker still waits in libvirt and will post its result: leave the queue and the
         * jobs to the process's end rather than free them under it. The migration itself goes
         * on in libvirt; the next agent finds it (job_recover). */
        log_warn(NULL, "stopping with %d migration(s) in progress: libvirt carries on, the next agent adopts them",
                 job_workers_running(&a));
    } else {
        evq_free(a.q); /* runs what libvirt posted last; mq still exists */
        job_free_all(&a);
    }
    mq_free(a.mq);
    app_signals_free(sig);
    event_base_free(a.base);
    if (!rpc_stuck) { /* else the waiting RPC still reads them */
        free(a.host);
        free(a.address);
        free(a.queue);
        cfg_free(&cfg);
    }
    log_close();
    return rc;
}
