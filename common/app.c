#include "app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"

static const struct {
    const char *env, *section, *key;
} env_overrides[] = {
    {"FERRY_AMQP_URL", "amqp", "url"},     {"FERRY_AMQP_CA_FILE", "amqp", "ca_file"},
    {"FERRY_DB_DSN", "database", "dsn"},   {"FERRY_LOG_LEVEL", "log", "level"},
    {"FERRY_LOG_FORMAT", "log", "format"}, {"FERRY_SCHEDULER_USERS", "trust", "scheduler_users"},
};

int app_read_config(const char *path, ferry_config *cfg, char **err)
{
    if (cfg_load(cfg, path, path != NULL, err) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(env_overrides); i++) {
        const char *v = getenv(env_overrides[i].env);
        if (!v || !*v)
            continue;
        char *why = NULL;
        if (cfg_set(cfg, env_overrides[i].section, env_overrides[i].key, v, &why) < 0) {
            *err = xasprintf("environment variable %s: %s", env_overrides[i].env, why);
            free(why);
            return -1;
        }
    }
    return cfg_check(cfg, err);
}

int app_reload_config(const char *path, const char *level, ferry_config *cfg, ferry_config *n)
{
    char *err = NULL;
    if (app_read_config(path, n, &err) < 0 || (level && cfg_set(n, "log", "level", level, &err) < 0)) {
        log_error(NULL, "configuration not reloaded, nothing changed: %s", err);
        free(err);
        cfg_free(n);
        return -1;
    }
    log_set_level(n->log.level);
    log_set_format(n->log.format);
    cfg->log.level = n->log.level;
    cfg->log.format = n->log.format;
    return 0;
}

int app_load_config(const char *prog, const char *path, ferry_config *cfg)
{
    char *err = NULL;
    if (app_read_config(path, cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        free(err);
        return -1;
    }
    return 0;
}

int app_start_config(const char *prog, int first_arg, int argc, char **argv, const char *path, const app_override *ov,
                     size_t n, ferry_config *cfg)
{
    if (first_arg < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help' for more information.\n", prog, argv[first_arg],
                prog);
        return 2;
    }
    if (app_load_config(prog, path, cfg) < 0) {
        cfg_free(cfg);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        char *err = NULL;
        if (ov[i].value && cfg_set(cfg, ov[i].section, ov[i].key, ov[i].value, &err) < 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            free(err);
            cfg_free(cfg);
            return 2;
        }
    }
    return 0;
}

int app_setup_log(const char *prog, const ferry_config *cfg)
{
    log_set_proc(prog);
    log_set_level(cfg->log.level);
    log_set_format(cfg->log.format);
    log_route_libevent();
    return log_open(cfg->log.file);
}

void app_mq_options(const ferry_config *cfg, const char *conn_name, mq_options *o)
{
    mq_options_defaults(o);
    o->url = cfg->amqp.url;
    o->name = conn_name;
    o->heartbeat_s = (int)cfg->amqp.heartbeat_s;
    o->prefetch = (int)cfg->amqp.prefetch;
    o->connect_timeout_ms = (int)cfg->amqp.connect_timeout_ms;
    o->reconnect_min_ms = (int)cfg->amqp.reconnect_min_ms;
    o->reconnect_max_ms = (int)cfg->amqp.reconnect_max_ms;
    o->confirm_timeout_ms = (int)cfg->amqp.confirm_timeout_ms;
    o->max_message_bytes = (size_t)cfg->amqp.max_message_bytes;
    o->ca_file = cfg->amqp.ca_file;
    o->cert_file = cfg->amqp.cert_file;
    o->key_file = cfg->amqp.key_file;
}

struct app_signals {
    struct event *sigint, *sigterm, *sighup;
    void (*reload)(void *);
    void *reload_arg;
    struct event *watchdog; /* NULL when systemd asked for no watchdog */
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info(NULL, "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sd_notify(0, "STOPPING=1");
    event_base_loopexit(arg, NULL);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    app_signals *s = arg;
    if (!s->reload) {
        log_info(NULL, "received SIGHUP: nothing to reload");
        return;
    }
    log_info(NULL, "received SIGHUP: reloading the configuration");
    sd_notify(0, "RELOADING=1");
    s->reload(s->reload_arg);
    sd_notify(0, "READY=1");
}

void app_signals_on_reload(app_signals *s, void (*reload)(void *arg), void *arg)
{
    s->reload = reload;
    s->reload_arg = arg;
}

/* The loop turns: systemd's watchdog hears from it (a stuck loop stops the pings). */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

void app_notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void app_notify_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

app_signals *app_signals_new(struct event_base *base)
{
    signal(SIGPIPE, SIG_IGN);
    app_signals *s = xcalloc(1, sizeof(*s));
    s->sigint = evsignal_new(base, SIGINT, on_signal, base);
    s->sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    s->sighup = evsignal_new(base, SIGHUP, on_sighup, s);
    evsignal_add(s->sigint, NULL);
    evsignal_add(s->sigterm, NULL);
    evsignal_add(s->sighup, NULL);
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        /* pinged at a third of the period: two missed turns still leave time */
        struct timeval tv = {(time_t)(usec / 3 / 1000000), (suseconds_t)(usec / 3 % 1000000)};
        s->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
        event_add(s->watchdog, &tv);
        log_info(NULL, "systemd watchdog: %llu ms, pinged every %llu ms", (unsigned long long)(usec / 1000),
                 (unsigned long long)(usec / 3000));
    }
    return s;
}

void app_signals_free(app_signals *s)
{
    if (!s)
        return;
    event_free(s->sigint);
    event_free(s->sigterm);
    event_free(s->sighup);
    if (s->watchdog)
        event_free(s->watchdog);
    free(s);
}

char *app_hostname(void)
{
    char buf[256];
    if (gethostname(buf, sizeof(buf)) < 0)
        return xstrdup("localhost");
    buf[sizeof(buf) - 1] = '\0';
    char *dot = strchr(buf, '.');
    if (dot)
        *dot = '\0';
    return xstrdup(buf);
}
