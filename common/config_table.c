/* config_table: the schema of every option (section, key, type, default, bounds, check, help)
 * and the checks of string values; cfg_options and cfg_find read it. */
#include "config.h"

#include <string.h>

#include "config_priv.h"
#include "msg.h"

/* ---- value checks for strings ---------------------------------------------------------- */

/* One broker URL, or several separated by commas (each amqp:// or amqps://). */
static int check_amqp_url(const char *v, char **reason)
{
    int n = 0;
    for (const char *p = v;;) {
        p += strspn(p, ", \t");
        if (!*p)
            break;
        size_t len = strcspn(p, ", \t");
        if (!(len > 7 && strncmp(p, "amqp://", 7) == 0) && !(len > 8 && strncmp(p, "amqps://", 8) == 0)) {
            *reason = n ? xasprintf("URL %d of the list must start with amqp:// or amqps://", n + 1)
                        : xstrdup("must start with amqp:// or amqps://");
            return -1;
        }
        if (++n > 8) {
            *reason = xstrdup("more than 8 broker URLs");
            return -1;
        }
        p += len;
    }
    if (n)
        return 0;
    *reason = xstrdup("must start with amqp:// or amqps://");
    return -1;
}

/* The live migration URI is used as a printf format with one argument, the destination
 * address, so it must hold exactly one %s and no other conversion (%% is a literal %). */
static int check_migration_uri(const char *v, char **reason)
{
    int n_s = 0;
    for (const char *p = strchr(v, '%'); p; p = strchr(p, '%')) {
        if (p[1] == '%') {
            p += 2;
        } else if (p[1] == 's') {
            n_s++;
            p += 2;
        } else {
            *reason = p[1] ? xasprintf("unsupported conversion '%%%c', only %%s and %%%% are "
                                       "allowed",
                                       p[1])
                           : xstrdup("ends with a lone '%'");
            return -1;
        }
    }
    if (n_s != 1) {
        *reason = xasprintf("must contain exactly one %%s (the destination address), found %d", n_s);
        return -1;
    }
    return 0;
}

static int check_absolute_path(const char *v, char **reason)
{
    if (v[0] == '/')
        return 0;
    *reason = xstrdup("must be an absolute path");
    return -1;
}

static int check_optional_path(const char *v, char **reason)
{
    if (!*v || v[0] == '/')
        return 0;
    *reason = xstrdup("must be an absolute path (or empty)");
    return -1;
}

static int check_nonempty(const char *v, char **reason)
{
    if (*v)
        return 0;
    *reason = xstrdup("must not be empty");
    return -1;
}

/* A comma-separated list of broker user names (RabbitMQ's: printable, no comma), or "*". */
static int check_user_list(const char *v, char **reason)
{
    if (strcmp(v, "*") == 0)
        return 0;
    int n = 0;
    for (const char *p = v; *p;) {
        size_t len = strcspn(p, ",");
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f || p[i] == '*') {
                *reason = xasprintf("'%.*s' is not a user name (no spaces, control bytes or *)", (int)len, p);
                return -1;
            }
        if (len == 0) {
            *reason = xstrdup("an empty user name in the list");
            return -1;
        }
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        *reason = xstrdup("must name at least one user (or *)");
        return -1;
    }
    return 0;
}

/* The same, without "*": the schedulers are trusted with everything, so always named. */
static int check_named_user_list(const char *v, char **reason)
{
    if (strcmp(v, "*") == 0) {
        *reason = xstrdup("'*' would trust every broker user as a scheduler: name the schedulers' users");
        return -1;
    }
    return check_user_list(v, reason);
}

/* ---- the table ------------------------------------------------------------------------- */

/* The value of an enum option is the index of its word. */
static const char *const log_level_words[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_words[] = {"text", "json", "journal", NULL};
_Static_assert(LOG_LVL_ERROR == 0 && LOG_LVL_WARN == 1 && LOG_LVL_INFO == 2 && LOG_LVL_DEBUG == 3,
               "log_level_words must follow log_level");
_Static_assert(LOG_FMT_TEXT == 0 && LOG_FMT_JSON == 1 && LOG_FMT_JOURNAL == 2,
               "log_format_words must follow log_format");
/* msg_completion_action's words, in its order (msg.h) */
static const char *const completion_action_words[] = {"abort", "postcopy", "pause", NULL};
_Static_assert(MSG_COMPLETION_ABORT == 0 && MSG_COMPLETION_POSTCOPY == 1 && MSG_COMPLETION_PAUSE == 2,
               "completion_action_words must follow msg_completion_action");
_Static_assert(sizeof(log_level) == sizeof(int) && sizeof(log_format) == sizeof(int), "enum options are stored as int");

/* offsetof() of a field, which must have type T (compile error otherwise). */
#define FIELD(s_, k_, T) _Generic(((ferry_config *)0)->s_.k_, T : offsetof(ferry_config, s_.k_))

#define OPT_STR(s_, k_, def_, check_, help_)                                                                           \
    {                                                                                                                  \
        .section = #s_, .key = #k_, .type = CFG_STRING, .def = def_, .offset = FIELD(s_, k_, char *), .check = check_, \
        .help = help_                                                                                                  \
    }
#define OPT_INT(s_, k_, def_, lo, hi, help_)                                                                           \
    {                                                                                                                  \
        .section = #s_, .key = #k_, .type = CFG_INT, .def = def_, .min = lo, .max = hi,                                \
        .offset = FIELD(s_, k_, int64_t), .help = help_                                                                \
    }
#define OPT_BOOL(s_, k_, def_, help_)                                                                                  \
    {                                                                                                                  \
        .section = #s_, .key = #k_, .type = CFG_BOOL, .def = def_, .offset = FIELD(s_, k_, bool), .help = help_        \
    }
#define OPT_DBL(s_, k_, def_, lo, hi, help_)                                                                           \
    {                                                                                                                  \
        .section = #s_, .key = #k_, .type = CFG_DOUBLE, .def = def_, .dmin = lo, .dmax = hi,                           \
        .offset = FIELD(s_, k_, double), .help = help_                                                                 \
    }
#define OPT_ENUM(s_, k_, T, def_, words_, help_)                                                                       \
    {                                                                                                                  \
        .section = #s_, .key = #k_, .type = CFG_ENUM, .def = def_, .words = words_, .offset = FIELD(s_, k_, T),        \
        .help = help_                                                                                                  \
    }

const cfg_option cfg_table[] = {
    {.section = "amqp",
     .key = "url",
     .type = CFG_STRING,
     .def = "amqp://guest:guest@127.0.0.1:5672/",
     .offset = FIELD(amqp, url, char *),
     .check = check_amqp_url,
     .repeatable = true,
     .help = "broker URL, amqp://user:password@host:port/vhost (amqps:// for TLS); a cluster's nodes as "
             "several URLs separated by commas, or one url line each, tried in turn when one cannot be reached"},
    OPT_INT(amqp, heartbeat_s, "10", 0, 300,
            "AMQP heartbeat interval negotiated with the broker, in seconds (0 disables)"),
    OPT_INT(amqp, prefetch, "64", 1, 65535, "unacknowledged messages the broker may deliver to one consumer at once"),
    OPT_INT(amqp, connect_timeout_ms, "5000", 100, 600000,
            "timeout for connecting and logging in to the broker, in milliseconds"),
    OPT_INT(amqp, reconnect_min_ms, "200", 10, 60000, "first delay before reconnecting to the broker, in milliseconds"),
    OPT_INT(amqp, reconnect_max_ms, "10000", 100, 600000, "longest delay between reconnect attempts, in milliseconds"),
    OPT_INT(amqp, rpc_timeout_ms, "30000", 100, 3600000,
            "how long a request to another ferry service waits for its reply, in milliseconds"),
    OPT_INT(amqp, confirm_timeout_ms, "10000", 100, 600000,
            "how long a publish waits for the broker's publisher confirm, in milliseconds"),
    OPT_INT(amqp, max_message_bytes, "1048576", 4096, 268435456,
            "largest message body taken, in bytes: a larger one is not read into memory but dead-lettered to "
            "ferry.dead with the reason and its first 4 KiB"),
    OPT_BOOL(amqp, declare_topology, "true",
             "declare ferry's shared exchanges and queues at connect (false for a user without the right "
             "to: they come from deploy/rabbitmq/definitions.json)"),
    OPT_STR(amqp, ca_file, "", check_optional_path,
            "amqps: CA certificates (PEM) the broker's certificate must chain to (empty = the "
            "system's, " FERRY_SYSTEM_CA_FILE ")"),
    OPT_STR(amqp, cert_file, "", check_optional_path,
            "amqps: client certificate (PEM) for a broker that asks for one (empty = none)"),
    OPT_STR(amqp, key_file, "", check_optional_path, "amqps: the client certificate's private key (PEM)"),

    OPT_STR(database, dsn, "dbname=ferry", NULL, "libpq connection string (key=value pairs or a postgresql:// URI)"),
    OPT_INT(database, connect_timeout_s, "5", 1, 300, "timeout for connecting to PostgreSQL, in seconds"),
    OPT_INT(database, statement_timeout_ms, "10000", 0, 3600000,
            "statement_timeout of every database session, in milliseconds (0 = none)"),
    OPT_INT(database, tx_retries, "5", 0, 100,
            "times a transaction is retried after a serialization failure or deadlock"),
    OPT_BOOL(database, prepared_statements, "true",
             "prepare each statement once per session (false behind a pooler that does not keep "
             "prepared statements, e.g. PgBouncer in transaction mode before 1.21)"),

    OPT_STR(scheduler, name, "", NULL, "name of this scheduler replica (empty = the host name)"),
    OPT_INT(scheduler, heartbeat_max_age_s, "60", 1, 86400,
            "a compute host whose last heartbeat is older than this is down, in seconds"),
    OPT_INT(scheduler, lease_s, "30", 5, 3600,
            "how long a replica's lease on a migration lasts without renewal, in seconds"),
    OPT_INT(scheduler, max_outgoing_per_source, "2", 1, 64, "live migrations running at once out of one source host"),
    OPT_INT(scheduler, max_incoming_per_dest, "2", 1, 64, "live migrations running at once into one destination host"),
    OPT_INT(scheduler, max_cluster, "0", 0, 10000,
            "live migrations running at once in the whole cluster (0: no cluster-wide limit, only the per-host ones)"),
    OPT_INT(scheduler, host_subset_size, "1", 1, 100,
            "a destination is chosen at random among this many best candidates (1: always the best; more spreads "
            "replicas claiming at once over several hosts, as Nova's host_subset_size)"),
    OPT_INT(scheduler, postcopy_after_iterations, "1", 1, 1000,
            "pre-copy memory iterations after which a migration switches to post-copy"),
    OPT_INT(scheduler, max_downtime_ms, "300", 1, 600000,
            "longest guest pause allowed at switch-over, in milliseconds"),
    OPT_INT(scheduler, bandwidth_mib_s, "0", 0, 100000, "migration bandwidth limit, in MiB/s (0 = unlimited)"),
    OPT_INT(scheduler, forecast_bandwidth_mib_s, "1000", 1, 100000,
            "the migration link's bandwidth a forecast assumes when no limit is set, in MiB/s"),
    OPT_INT(scheduler, forecast_setup_ms, "500", 0, 600000,
            "a forecast's fixed cost before the first byte (checks, prepare, connect), in ms, until "
            "three capped migrations have completed (then learned from them)"),
    OPT_INT(scheduler, forecast_switch_ms, "100", 0, 600000,
            "a forecast's fixed part of the guest's pause (device state, handshake), in ms"),
    OPT_INT(scheduler, forecast_sample_s, "1", 0, 10,
            "seconds each migration's source samples its dirty rate for the forecast (0 = none)"),
    OPT_INT(scheduler, forecast_reuse_s, "300", 0, 86400,
            "a migration of an instance whose dirty rate a migration of this scheduler sampled at most "
            "this many seconds ago forecasts from that sample instead of sampling again (0 = always sample)"),
    OPT_INT(scheduler, downtime_steps, "0", 0, 100,
            "raise a pre-copy's allowed pause to max_downtime_ms in this many steps (Nova's "
            "live_migration_downtime_steps; 0 = the whole limit from the start)"),
    OPT_INT(scheduler, downtime_delay_s, "75", 1, 3600,
            "seconds between two steps of the downtime ramp per GiB of the guest's memory (Nova's "
            "live_migration_downtime_delay)"),
    OPT_INT(scheduler, completion_timeout_s, "0", 0, 86400,
            "a migration not completed after this long, in seconds, gets its completion_action (0 = never)"),
    OPT_ENUM(scheduler, completion_action, int, "abort", completion_action_words,
             "what the completion timeout does: abort (the guest stays), postcopy (switch when post-copy is "
             "allowed, else abort), pause (the rest sent with the guest paused)"),
    OPT_INT(scheduler, parallel_connections, "1", 1, 32,
            "send a migration's memory over this many connections (libvirt's parallel migration, QEMU's "
            "multifd; 1 = one stream; with post-copy only when both hosts run QEMU 10.1 or newer)"),
    OPT_INT(scheduler, xbzrle_cache_mib, "0", 0, 65536,
            "compress a pre-copy's re-sent pages with xbzrle and a cache of this many MiB (a power of two, "
            "smaller than the guest's memory; one stream only; 0 = off)"),
    OPT_INT(scheduler, progress_interval_ms, "1000", 100, 60000,
            "how often migration progress is sampled and reported, in milliseconds"),
    OPT_INT(scheduler, deadline_queued_s, "3600", 1, 604800,
            "a migration waiting in `queued` longer than this is cancelled, in seconds"),
    OPT_INT(scheduler, deadline_preparing_s, "300", 1, 86400,
            "checks and preparation (`scheduled`, `preparing`) longer than this fail, in seconds"),
    OPT_INT(scheduler, deadline_running_s, "3600", 1, 604800,
            "a migration `running` longer than this is aborted and fails, in seconds"),
    OPT_INT(scheduler, deadline_completing_s, "300", 1, 86400,
            "`completing` longer than this ends in `error`, in seconds"),
    OPT_INT(scheduler, postcopy_recovery_s, "300", 1, 86400,
            "a post-copy migration whose stream broke is resumed (sub-state `recovering`) for this long before it "
            "ends in `error`, in seconds"),
    OPT_INT(scheduler, rpc_retry_s, "60", 0, 3600,
            "an agent RPC that timed out or was lost with the broker is sent again for this long, in seconds"),
    OPT_DBL(scheduler, cpu_allocation_ratio, "16.0", 0.1, 1000,
            "virtual to physical CPU ratio allowed on a destination host"),
    OPT_DBL(scheduler, ram_allocation_ratio, "1.5", 0.1, 1000,
            "virtual to physical memory ratio allowed on a destination host"),
    OPT_DBL(scheduler, disk_allocation_ratio, "1.0", 0.1, 1000,
            "virtual to physical disk ratio allowed on a destination host"),
    OPT_INT(scheduler, reserved_host_memory_mb, "512", 0, 1048576,
            "memory of each host kept for the host itself, in MiB"),
    OPT_INT(scheduler, reserved_host_disk_gb, "0", 0, 1048576, "disk of each host kept for the host itself, in GiB"),
    OPT_INT(scheduler, host_max_vcpus, "4096", 1, 1048576,
            "a heartbeat claiming more vCPUs is refused (a compromised host must not win every placement)"),
    OPT_INT(scheduler, host_max_memory_mb, "16777216", 1, INT64_C(1099511627776),
            "a heartbeat claiming more memory (MiB) is refused"),
    OPT_INT(scheduler, host_max_disk_gb, "1048576", 1, INT64_C(1099511627776),
            "a heartbeat claiming more disk (GiB) is refused"),
    OPT_INT(scheduler, reserved_host_cpus, "0", 0, 4096, "physical CPUs of each host kept for the host itself"),
    OPT_INT(scheduler, reconcile_interval_s, "30", 0, 86400,
            "how often one replica (by lease) compares the database with what the hosts report and repairs what "
            "it can prove, in seconds (0 = never)"),
    OPT_INT(scheduler, reconcile_grace_s, "120", 0, 86400,
            "the reconciler releases an orphaned allocation older than this only, and leaves an instance "
            "alone this long after its last migration ended, in seconds"),

    OPT_STR(agent, host, "", NULL, "name this compute host registers under (empty = the host name)"),
    OPT_STR(agent, address, "", NULL,
            "address other hosts use to reach this one for migrations (empty = resolve host)"),
    OPT_STR(agent, migration_address, "", NULL,
            "this host's address on a dedicated migration network: migration streams to this host go "
            "there, the rest (libvirt, AMQP) to address (an IP address or name, no port; empty = address)"),
    OPT_INT(agent, heartbeat_interval_s, "10", 1, 3600,
            "how often the agent reports that its host is alive, in seconds"),
    OPT_STR(agent, instances_path, "/var/lib/ferry/instances", check_absolute_path,
            "directory holding the instances' disks and state"),
    OPT_STR(agent, local_disks_path, "/var/lib/ferry/local", check_absolute_path,
            "directory of host-local disk images: a block migration creates images only here or "
            "in instances_path"),
    OPT_INT(agent, job_poll_ms, "1000", 50, 60000,
            "how often the statistics of a running migration job are polled, in milliseconds"),
    OPT_STR(agent, state_dir, "/var/lib/ferry/agent", check_absolute_path,
            "where the agent keeps what it knows of its migrations across restarts"),
    OPT_INT(agent, memory_limit_mb, "0", 0, 1073741824,
            "report at most this much memory in MiB (0 = the machine's; lab hosts share one machine)"),
    OPT_INT(agent, stall_timeout_s, "60", 0, 86400,
            "abort a migration whose remaining memory has not shrunk for this long (0 = never)"),

    OPT_STR(libvirt, uri, "qemu:///system", NULL, "libvirt connection URI of the local hypervisor"),
    OPT_STR(libvirt, live_migration_uri, "qemu+tcp://%s/system", check_migration_uri,
            "URI of the destination libvirtd for migrations, %s = the destination address"),
    OPT_INT(libvirt, keepalive_interval_s, "5", -1, 600,
            "seconds between libvirt keepalive messages (-1 disables keepalive)"),
    OPT_INT(libvirt, keepalive_count, "5", 0, 100,
            "keepalive messages left unanswered before the libvirt connection is closed"),
    OPT_BOOL(libvirt, migrate_tls, "false",
             "encrypt the migration stream itself with QEMU's TLS (VIR_MIGRATE_TLS; needs "
             "migrate_tls_x509_cert_dir in qemu.conf on every host)"),
    OPT_INT(libvirt, migration_port_min, "49152", 1, 65535,
            "first port of qemu.conf's migration_port_min..max (QEMU's migration streams)"),
    OPT_INT(libvirt, migration_port_max, "49215", 1, 65535, "last port of that range"),

    OPT_BOOL(http, enabled, "true", "serve the HTTP API and dashboard"),
    OPT_STR(http, listen, "127.0.0.1", check_nonempty, "address the HTTP server listens on"),
    OPT_INT(http, port, "8774", 0, 65535, "TCP port of the HTTP server (0 = any free port)"),
    OPT_STR(http, tokens, "", NULL, "comma-separated X-Auth-Token values the HTTP API accepts"),
    OPT_STR(http, metrics_token, "", NULL,
            "comma-separated tokens /metrics needs, sent as Authorization: Bearer <token> or "
            "X-Auth-Token (empty = /metrics needs none)"),
    OPT_INT(http, max_connections, "256", 1, 65536,
            "HTTP connections open at once; a request on any beyond is answered 503 and its connection closed"),
    OPT_STR(http, dashboard_dir, "", NULL,
            "serve index.html from this directory instead of the copy built in (for development)"),
    OPT_STR(http, cert_file, "", check_optional_path,
            "HTTPS: the server's certificate (PEM, followed by its chain) for the API and dashboard "
            "(empty = plain HTTP)"),
    OPT_STR(http, key_file, "", check_optional_path, "HTTPS: the certificate's private key (PEM)"),

    OPT_STR(trust, scheduler_users, "ferry-scheduler", check_named_user_list,
            "comma-separated broker users of the scheduler replicas: the only senders of agent RPCs "
            "(the broker vouches for a message's user_id)"),
    OPT_STR(trust, operator_users, "*", check_user_list,
            "comma-separated broker users that may send migration requests and operator calls "
            "(* = any user that is not an agent's)"),
    OPT_STR(trust, agent_user_prefix, "ferry-agent-", check_nonempty,
            "host H's agent logs in as <prefix>H (deploy/rabbitmq/add-agent-user): only it may "
            "speak for H"),
    OPT_BOOL(trust, anonymous_requests, "true",
             "take a request without user_id (plain amqp-publish cannot set one) as an operator's; only "
             "users with write on the exchange ferry reach ferry.scheduler"),

    OPT_ENUM(log, level, log_level, "info", log_level_words, "most verbose level written"),
    OPT_ENUM(log, format, log_format, "text", log_format_words,
             "line format: text (logfmt), json (one object per line) or journal (systemd's journal, with "
             "fields MIGRATION_ID, INSTANCE, HOST, REQ)"),
    OPT_STR(log, file, "", NULL, "log file (empty = stderr)"),
};

const size_t cfg_table_n = ARRAY_SIZE(cfg_table);

const cfg_option *cfg_options(size_t *n)
{
    *n = N_OPTIONS;
    return cfg_table;
}

const cfg_option *cfg_find(const char *section, const char *key)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(cfg_table[i].section, section) == 0 && strcmp(cfg_table[i].key, key) == 0)
            return &cfg_table[i];
    return NULL;
}

bool cfg_section_known(const char *section)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(cfg_table[i].section, section) == 0)
            return true;
    return false;
}
