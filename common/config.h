/* config: ferry's settings, read from one INI file (default /etc/ferry/ferry.conf).
 *
 * One table in config_table.c describes every option: section, key, type, default (as text),
 * bounds and a help line. Built-in defaults, values from the file and command-line or
 * environment overrides all go through the same parser, so a value is either valid or
 * rejected with a message that names the file, the line, the section and the key:
 *
 *     /etc/ferry/ferry.conf:12: [amqp] heartbeat_s: value 9999 is out of range 0..300
 *
 * The loaded config is read-only after start-up; strings in it are owned by the config
 * and freed by cfg_free. */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "util.h"

#define CFG_DEFAULT_PATH "/etc/ferry/ferry.conf"

typedef struct cfg_amqp {
    char *url;           /* amqp:// or amqps:// broker URL */
    int64_t heartbeat_s; /* 0 disables heartbeats */
    int64_t prefetch;    /* basic.qos prefetch count */
    int64_t connect_timeout_ms;
    int64_t reconnect_min_ms; /* first reconnect delay (<= reconnect_max_ms) */
    int64_t reconnect_max_ms; /* backoff ceiling */
    int64_t rpc_timeout_ms;
    int64_t confirm_timeout_ms; /* publisher confirm wait */
    int64_t max_message_bytes;  /* larger deliveries are dead-lettered unread */
    bool declare_topology;      /* false: the shared exchanges and queues exist (definitions) */
    char *ca_file;              /* amqps: CA bundle verifying the broker ("" = the system's) */
    char *cert_file;            /* amqps: client certificate ("" = none) */
    char *key_file;             /* amqps: its private key ("" = none) */
} cfg_amqp;

typedef struct cfg_database {
    char *dsn; /* libpq connection string */
    int64_t connect_timeout_s;
    int64_t statement_timeout_ms; /* 0 = no limit */
    int64_t tx_retries;
    bool prepared_statements; /* false: every statement parsed and planned each time */
} cfg_database;

typedef struct cfg_scheduler {
    char *name; /* "" = the host name */
    int64_t heartbeat_max_age_s;
    int64_t lease_s;
    int64_t max_outgoing_per_source;
    int64_t max_incoming_per_dest;
    int64_t max_cluster;
    int64_t host_subset_size; /* a destination is chosen at random among this many best candidates */
    int64_t postcopy_after_iterations;
    int64_t max_downtime_ms;
    int64_t bandwidth_mib_s;          /* 0 = unlimited */
    int64_t forecast_bandwidth_mib_s; /* the link a forecast assumes when nothing caps it */
    int64_t forecast_setup_ms;        /* a forecast's fixed cost before the first byte */
    int64_t forecast_switch_ms;       /* a forecast's fixed part of the pause */
    int64_t forecast_sample_s;        /* each migration's dirty-rate sample; 0 = no forecast */
    int64_t forecast_reuse_s;         /* an instance's sample this recent is reused (0 = never) */
    int64_t downtime_steps;           /* the downtime ramp's steps (0 = the limit from the start) */
    int64_t downtime_delay_s;         /* ... each this long per GiB of the guest's memory */
    int64_t completion_timeout_s;     /* 0 = never */
    int completion_action;            /* msg_completion_action: what the timeout does */
    int64_t parallel_connections;     /* memory over this many connections (1 = one stream) */
    int64_t xbzrle_cache_mib;         /* xbzrle compression with this cache (0 = off) */
    int64_t progress_interval_ms;
    int64_t deadline_queued_s;    /* how long a migration may wait in each status */
    int64_t deadline_preparing_s; /* scheduled + preparing */
    int64_t deadline_running_s;
    int64_t deadline_completing_s;
    int64_t postcopy_recovery_s; /* how long a paused post-copy migration is resumed before `error` */
    int64_t rpc_retry_s;         /* how long an agent RPC lost in transit is sent again */
    double cpu_allocation_ratio;
    double ram_allocation_ratio;
    double disk_allocation_ratio;
    int64_t reserved_host_memory_mb;
    int64_t reserved_host_disk_gb;
    int64_t reserved_host_cpus;
    int64_t host_max_vcpus;     /* a heartbeat claiming more is refused (a compromised host */
    int64_t host_max_memory_mb; /* must not win every placement) */
    int64_t host_max_disk_gb;
    int64_t reconcile_interval_s; /* 0 = the reconciler never runs on this replica */
    int64_t reconcile_grace_s;    /* age of an orphaned allocation before it is released */
} cfg_scheduler;

typedef struct cfg_agent {
    char *host;              /* "" = the host name */
    char *address;           /* "" = resolve host */
    char *migration_address; /* the migration network's address ("" = none: the address above) */
    int64_t heartbeat_interval_s;
    char *instances_path;   /* absolute */
    char *local_disks_path; /* absolute: where block migrations may create host-local images */
    int64_t job_poll_ms;
    char *state_dir;         /* absolute */
    int64_t memory_limit_mb; /* 0 = the machine's memory */
    int64_t stall_timeout_s; /* 0 = never */
} cfg_agent;

typedef struct cfg_libvirt {
    char *uri;
    char *live_migration_uri;     /* exactly one %s: the destination address */
    int64_t keepalive_interval_s; /* -1 disables keepalive */
    int64_t keepalive_count;
    bool migrate_tls;           /* QEMU's own TLS on the migration stream (VIR_MIGRATE_TLS) */
    int64_t migration_port_min; /* qemu.conf's range of QEMU's migration ports */
    int64_t migration_port_max;
} cfg_libvirt;

typedef struct cfg_http {
    bool enabled;
    char *listen;
    int64_t port;            /* 0 = any free port */
    char *tokens;            /* comma-separated accepted X-Auth-Token values */
    char *metrics_token;     /* comma-separated tokens /metrics needs; "" = /metrics open */
    int64_t max_connections; /* connections open at once; requests beyond get 503 */
    char *dashboard_dir;
    char *cert_file; /* HTTPS: certificate (with its chain); "" = plain HTTP */
    char *key_file;  /* HTTPS: its private key */
} cfg_http;

typedef struct cfg_trust {
    char *scheduler_users;   /* broker users of the scheduler replicas (comma-separated) */
    char *operator_users;    /* users that may send requests ("*" = any that is not an agent's) */
    char *agent_user_prefix; /* host H's agent logs in as <prefix>H */
    bool anonymous_requests; /* a request without user_id (amqp-publish) counts as an operator's */
} cfg_trust;

typedef struct cfg_log {
    log_level level;
    log_format format;
    char *file; /* "" = stderr */
} cfg_log;

/* One key of a [policy NAME] section as written (issue #18): the scheduler reads these into
 * migration policies at its start (policy.c); the loader checks only that the key is one a
 * policy has and is not repeated. */
typedef struct cfg_policy_kv {
    char *policy; /* NAME */
    char *key;
    char *value;
    int line;
} cfg_policy_kv;

/* The keys a [policy NAME] section may have (NULL-terminated, static). */
extern const char *const cfg_policy_keys[];

typedef struct ferry_config {
    cfg_amqp amqp;
    cfg_database database;
    cfg_scheduler scheduler;
    cfg_agent agent;
    cfg_libvirt libvirt;
    cfg_http http;
    cfg_trust trust;
    cfg_log log;
    cfg_policy_kv *policy_kv; /* the [policy NAME] sections' keys, in file order */
    size_t n_policy_kv;
} ferry_config;

typedef enum cfg_type {
    CFG_STRING = 0, /* char *, owned by the config */
    CFG_INT,        /* int64_t in [min, max] */
    CFG_BOOL,       /* bool: true/false, yes/no, on/off, 1/0 */
    CFG_DOUBLE,     /* double in [dmin, dmax] */
    CFG_ENUM,       /* an enum (int-sized) whose value is the index of the word in words */
} cfg_type;

/* Read-only description of one option: a row of the table that drives this module. */
typedef struct cfg_option {
    const char *section;
    const char *key;
    cfg_type type;
    const char *def;          /* default as text, parsed like a value read from the file */
    int64_t min, max;         /* CFG_INT bounds, inclusive */
    double dmin, dmax;        /* CFG_DOUBLE bounds, inclusive */
    const char *const *words; /* CFG_ENUM allowed words, NULL-terminated */
    size_t offset;            /* offsetof(ferry_config, <section>.<key>) */
    /* Extra check of a CFG_STRING value (NULL = none): 0, or -1 and *reason (caller frees). */
    int (*check)(const char *value, char **reason);
    /* CFG_STRING: may be repeated in a config file, each value appended after a comma (a list
     * longer than inih's 200-byte line, e.g. a broker cluster's URLs, one per line) */
    bool repeatable;
    const char *help; /* one line */
} cfg_option;

/* Fills *c with the built-in defaults; *c is treated as uninitialised (not freed first).
 * The strings are owned by *c: release them with cfg_free. */
void cfg_defaults(ferry_config *c);

/* Applies the defaults to *c (treated as uninitialised), then the INI file at path (NULL =
 * CFG_DEFAULT_PATH), then the cross-option checks of cfg_check. A missing file is an error
 * only when explicit_path is true; otherwise the defaults stand. On error *err (if err is
 * not NULL) receives a message naming file, line, section and key, which the caller frees;
 * *c is then partly loaded but always safe to pass to cfg_free. */
int cfg_load(ferry_config *c, const char *path, bool explicit_path, char **err) FERRY_WUR;
/* The same for INI text read from f (borrowed, not closed) on a *c that already holds the
 * defaults (cfg_defaults); path only names it in messages. */
int cfg_load_stream(ferry_config *c, FILE *f, const char *path, char **err) FERRY_WUR;

/* Sets one option from text (an environment or command-line override) with the same
 * validation as the file; value is copied. On error *c is unchanged and *err (if err is not
 * NULL) receives "[section] key: reason", which the caller frees. Call cfg_check after the
 * last override. */
int cfg_set(ferry_config *c, const char *section, const char *key, const char *value, char **err) FERRY_WUR;

/* Checks the rules that span options (amqp.reconnect_min_ms <= amqp.reconnect_max_ms). On
 * error *err (if err is not NULL) receives the reason, which the caller frees. */
int cfg_check(const ferry_config *c, char **err) FERRY_WUR;

/* Formats the current value of [section] key as it would be written in the file; *out is a
 * new string the caller frees. -1 (and *out untouched) when there is no such option. */
int cfg_get_text(const ferry_config *c, const char *section, const char *key, char **out) FERRY_WUR;

/* Writes a commented example config to f: every option as "# key = default" under its
 * section, preceded by "; " lines with its help, type and range. Removing the "# " from any
 * option lines gives a file that loads without error. f stays owned by the caller. */
void cfg_write_example(FILE *f);

/* Returns the option table (static, read-only) and stores its length in *n. */
const cfg_option *cfg_options(size_t *n);

/* Returns the table row of [section] key (static, read-only), or NULL if there is none. */
const cfg_option *cfg_find(const char *section, const char *key);

/* The NAME of a "[policy NAME]" section header's text, or NULL when section is not one
 * (borrowed from section). */
const char *cfg_policy_section(const char *section);

/* Frees the strings owned by *c and sets them to NULL; NULL-safe, safe to call twice. Does
 * not free c itself. */
void cfg_free(ferry_config *c);

#endif
