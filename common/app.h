/* app: what every ferry program does at start: load the config (file, then environment
 * overrides), set up the log, translate config sections into module options, and stop
 * cleanly on SIGINT/SIGTERM. */
#ifndef FERRY_APP_H
#define FERRY_APP_H

#include <event2/event.h>

#include "config.h"
#include "mq.h"

/* Loads the config at path (NULL = the default path, where a missing file means defaults),
 * then applies the environment overrides FERRY_AMQP_URL, FERRY_DB_DSN and FERRY_LOG_LEVEL.
 * On error prints "prog: <reason naming file, line and key>" to stderr and returns -1.
 * *cfg is owned by the caller (cfg_free). */
int app_load_config(const char *prog, const char *path, ferry_config *cfg) FERRY_WUR;
/* A command-line option that sets a config key (--log-level: [log] level); value NULL when
 * the option was not given. All borrowed. */
typedef struct app_override {
    const char *section, *key, *value;
} app_override;
/* A daemon's start: refuses an argument left after the options (argv[first_arg], getopt's optind), runs
 * app_load_config, then sets the n overrides given. Returns 0 with *cfg the caller's
 * (cfg_free), or 2, the exit status, after printing why (nothing to free). */
int app_start_config(const char *prog, int first_arg, int argc, char **argv, const char *path, const app_override *ov,
                     size_t n, ferry_config *cfg) FERRY_WUR;
/* The same without printing: -1 with *err (caller frees); for a reload. */
int app_read_config(const char *path, ferry_config *cfg, char **err) FERRY_WUR;
/* For a SIGHUP: reads the config at path into *n (level, if not NULL, overrides [log] level as
 * --log-level did), applies the log level and format to the logger and to *cfg, and returns 0
 * (the caller takes what else may change from *n, then cfg_free(n)); or logs why the file was
 * refused and returns -1 with *n freed and nothing changed. */
int app_reload_config(const char *path, const char *level, ferry_config *cfg, ferry_config *n) FERRY_WUR;
/* Sets the log's program name, level, format and file from cfg. Returns 0 or -1 (reported). */
int app_setup_log(const char *prog, const ferry_config *cfg) FERRY_WUR;
/* Fills o from cfg's [amqp] section; the strings stay owned by cfg. */
void app_mq_options(const ferry_config *cfg, const char *conn_name, mq_options *o);
/* Makes SIGINT and SIGTERM end base's loop (logged, and STOPPING=1 to systemd), ignores
 * SIGPIPE, and when systemd set a watchdog (WATCHDOG_USEC), pings it from the loop. The
 * returned events are owned by the caller: free them with app_signals_free. */
typedef struct app_signals app_signals;
app_signals *app_signals_new(struct event_base *base);
/* On SIGHUP, calls reload(arg) on the loop (between RELOADING=1 and READY=1 to systemd). */
void app_signals_on_reload(app_signals *s, void (*reload)(void *arg), void *arg);
/* Frees what app_signals_new made; NULL is accepted. */
void app_signals_free(app_signals *s);
/* Tells systemd (Type=notify; nothing without NOTIFY_SOCKET) that the daemon is ready, with
 * a status line (borrowed). */
void app_notify_ready(const char *status);
/* Tells systemd the daemon's status line (borrowed), e.g. after losing the broker. */
void app_notify_status(const char *status);
/* Returns this machine's short host name in a new string the caller frees. */
char *app_hostname(void);

#endif
