#include "config.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <strings.h>

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
        *reason =
            xasprintf("must contain exactly one %%s (the destination address), found %d", n_s);
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
_Static_assert(LOG_FMT_TEXT == 0 && LOG_FMT_JSON == 1 && LOG_FMT_JOURNAL == 2, "log_format_words must follow log_format");
_Static_assert(sizeof(log_level) == sizeof(int) && sizeof(log_format) == sizeof(int),
               "enum options are stored as int");

/* offsetof() of a field, which must have type T (compile error otherwise). */
#define FIELD(s_, k_, T) _Generic(((ferry_config *)0)->s_.k_, T : offsetof(ferry_config, s_.k_))

#define OPT_STR(s_, k_, def_, check_, help_)                                                       \
    {                                                                                              \
        .section = #s_, .key = #k_, .type = CFG_STRING, .def = def_,                               \
        .offset = FIELD(s_, k_, char *), .check = check_, .help = help_                            \
    }
#define OPT_INT(s_, k_, def_, lo, hi, help_)                                                       \
    {                                                                                              \
        .section = #s_, .key = #k_, .type = CFG_INT, .def = def_, .min = lo, .max = hi,            \
        .offset = FIELD(s_, k_, int64_t), .help = help_                                            \
    }
#define OPT_BOOL(s_, k_, def_, help_)                                                              \
    {                                                                                              \
        .section = #s_, .key = #k_, .type = CFG_BOOL, .def = def_, .offset = FIELD(s_, k_, bool),  \
        .help = help_                                                                              \
    }
#define OPT_DBL(s_, k_, def_, lo, hi, help_)                                                       \
    {                                                                                              \
        .section = #s_, .key = #k_, .type = CFG_DOUBLE, .def = def_, .dmin = lo, .dmax = hi,       \
        .offset = FIELD(s_, k_, double), .help = help_                                             \
    }
#define OPT_ENUM(s_, k_, T, def_, words_, help_)                                                   \
    {                                                                                              \
        .section = #s_, .key = #k_, .type = CFG_ENUM, .def = def_, .words = words_,                \
        .offset = FIELD(s_, k_, T), .help = help_                                                  \
    }

static const cfg_option cfg_table[] = {
    OPT_STR(amqp, url, "amqp://guest:guest@127.0.0.1:5672/", check_amqp_url,
            "broker URL, amqp://user:password@host:port/vhost (amqps:// for TLS); a cluster's nodes as "
            "several URLs separated by commas, tried in turn when one cannot be reached"),
    OPT_INT(amqp, heartbeat_s, "10", 0, 300,
            "AMQP heartbeat interval negotiated with the broker, in seconds (0 disables)"),
    OPT_INT(amqp, prefetch, "64", 1, 65535,
            "unacknowledged messages the broker may deliver to one consumer at once"),
    OPT_INT(amqp, connect_timeout_ms, "5000", 100, 600000,
            "timeout for connecting and logging in to the broker, in milliseconds"),
    OPT_INT(amqp, reconnect_min_ms, "200", 10, 60000,
            "first delay before reconnecting to the broker, in milliseconds"),
    OPT_INT(amqp, reconnect_max_ms, "10000", 100, 600000,
            "longest delay between reconnect attempts, in milliseconds"),
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

    OPT_STR(database, dsn, "dbname=ferry", NULL,
            "libpq connection string (key=value pairs or a postgresql:// URI)"),
    OPT_INT(database, connect_timeout_s, "5", 1, 300,
            "timeout for connecting to PostgreSQL, in seconds"),
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
    OPT_INT(scheduler, max_outgoing_per_source, "2", 1, 64,
            "live migrations running at once out of one source host"),
    OPT_INT(scheduler, max_incoming_per_dest, "2", 1, 64,
            "live migrations running at once into one destination host"),
    OPT_INT(scheduler, max_cluster, "16", 1, 10000,
            "live migrations running at once in the whole cluster"),
    OPT_INT(scheduler, postcopy_after_iterations, "1", 1, 1000,
            "pre-copy memory iterations after which a migration switches to post-copy"),
    OPT_INT(scheduler, max_downtime_ms, "300", 1, 600000,
            "longest guest pause allowed at switch-over, in milliseconds"),
    OPT_INT(scheduler, bandwidth_mib_s, "0", 0, 100000,
            "migration bandwidth limit, in MiB/s (0 = unlimited)"),
    OPT_INT(scheduler, completion_timeout_s, "0", 0, 86400,
            "abort a migration not completed after this long, in seconds (0 = never)"),
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
    OPT_INT(scheduler, reserved_host_disk_gb, "0", 0, 1048576,
            "disk of each host kept for the host itself, in GiB"),
    OPT_INT(scheduler, host_max_vcpus, "4096", 1, 1048576,
            "a heartbeat claiming more vCPUs is refused (a compromised host must not win every placement)"),
    OPT_INT(scheduler, host_max_memory_mb, "16777216", 1, INT64_C(1099511627776),
            "a heartbeat claiming more memory (MiB) is refused"),
    OPT_INT(scheduler, host_max_disk_gb, "1048576", 1, INT64_C(1099511627776),
            "a heartbeat claiming more disk (GiB) is refused"),
    OPT_INT(scheduler, reserved_host_cpus, "0", 0, 4096,
            "physical CPUs of each host kept for the host itself"),

    OPT_STR(agent, host, "", NULL,
            "name this compute host registers under (empty = the host name)"),
    OPT_STR(agent, address, "", NULL,
            "address other hosts use to reach this one for migrations (empty = resolve host)"),
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

    OPT_BOOL(http, enabled, "true", "serve the HTTP API and dashboard"),
    OPT_STR(http, listen, "127.0.0.1", check_nonempty, "address the HTTP server listens on"),
    OPT_INT(http, port, "8774", 0, 65535, "TCP port of the HTTP server (0 = any free port)"),
    OPT_STR(http, tokens, "", NULL, "comma-separated X-Auth-Token values the HTTP API accepts"),
    OPT_STR(http, metrics_token, "", NULL,
            "comma-separated tokens /metrics needs, sent as Authorization: Bearer <token> or "
            "X-Auth-Token (empty = /metrics needs none)"),
    OPT_INT(http, max_connections, "256", 1, 65536,
            "HTTP connections open at once; a request on any beyond is answered 503 and its connection closed"),
    OPT_STR(http, dashboard_dir, "", NULL, "serve index.html from this directory instead of the copy built in (for development)"),
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

#define N_OPTIONS ARRAY_SIZE(cfg_table)

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

static bool section_known(const char *section)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(cfg_table[i].section, section) == 0)
            return true;
    return false;
}

/* ---- parsing one value ----------------------------------------------------------------- */

static const struct {
    const char *word;
    bool value;
} bool_words[] = {
    {"true", true}, {"false", false}, {"yes", true}, {"no", false},
    {"on", true},   {"off", false},   {"1", true},   {"0", false},
};

/* [+-]digits, nothing else (parse_i64 alone would not tell "abc" from out of range). */
static bool looks_like_int(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Decimal or exponent notation only: no hex, inf or nan. */
static bool looks_like_number(const char *s)
{
    bool digit = false;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digit = true;
        else if (!strchr("+-.eE", *p))
            return false;
    }
    return digit;
}

static char *enum_words_text(const char *const *words)
{
    char *out = xstrdup("");
    for (size_t i = 0; words[i]; i++) {
        char *next = xasprintf("%s%s%s", out, i ? ", " : "", words[i]);
        free(out);
        out = next;
    }
    return out;
}

static void *field_ptr(ferry_config *c, const cfg_option *o)
{
    return (char *)c + o->offset;
}

static const void *field_cptr(const ferry_config *c, const cfg_option *o)
{
    return (const char *)c + o->offset;
}

/* Parses text as a value of option o and stores it in *c. On error *c is unchanged and
 * *reason receives the cause (caller frees). */
static int apply_value(ferry_config *c, const cfg_option *o, const char *text, char **reason)
{
    void *p = field_ptr(c, o);

    switch (o->type) {
    case CFG_STRING: {
        if (o->check && o->check(text, reason) < 0)
            return -1;
        char **sp = p;
        free(*sp);
        *sp = xstrdup(text);
        return 0;
    }
    case CFG_INT: {
        int64_t v;
        if (!*text) {
            *reason = xasprintf("empty value, expected an integer in %" PRId64 "..%" PRId64, o->min,
                                o->max);
            return -1;
        }
        if (!looks_like_int(text)) {
            *reason = xasprintf("'%s' is not an integer", text);
            return -1;
        }
        if (parse_i64(text, o->min, o->max, &v) < 0) {
            *reason =
                xasprintf("value %s is out of range %" PRId64 "..%" PRId64, text, o->min, o->max);
            return -1;
        }
        *(int64_t *)p = v;
        return 0;
    }
    case CFG_BOOL:
        for (size_t i = 0; i < ARRAY_SIZE(bool_words); i++) {
            if (strcasecmp(text, bool_words[i].word) == 0) {
                *(bool *)p = bool_words[i].value;
                return 0;
            }
        }
        *reason = xasprintf("'%s' is not a boolean (expected true, false, yes, no, on, off, 1 "
                            "or 0)",
                            text);
        return -1;
    case CFG_DOUBLE: {
        if (!*text) {
            *reason = xasprintf("empty value, expected a number in %g..%g", o->dmin, o->dmax);
            return -1;
        }
        char *end = NULL;
        errno = 0;
        double v = looks_like_number(text) ? strtod(text, &end) : 0;
        if (!end || end == text || *end) {
            *reason = xasprintf("'%s' is not a number", text);
            return -1;
        }
        if (errno == ERANGE || !isfinite(v) || v < o->dmin || v > o->dmax) {
            *reason = xasprintf("value %s is out of range %g..%g", text, o->dmin, o->dmax);
            return -1;
        }
        *(double *)p = v;
        return 0;
    }
    case CFG_ENUM: {
        for (int i = 0; o->words[i]; i++) {
            if (strcasecmp(text, o->words[i]) == 0) {
                *(int *)p = i;
                return 0;
            }
        }
        _cleanup_free_ char *allowed = enum_words_text(o->words);
        *reason = xasprintf("'%s' is not one of %s", text, allowed);
        return -1;
    }
    }
    *reason = xstrdup("unknown option type");
    return -1;
}

static void set_err(char **err, char *msg)
{
    if (err)
        *err = msg;
    else
        free(msg);
}

/* ---- public: defaults, set, get, check, free ------------------------------------------- */

void cfg_defaults(ferry_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char *reason = NULL;
        if (apply_value(c, &cfg_table[i], cfg_table[i].def, &reason) < 0) {
            /* A bad built-in default is a programming error; the unit test catches it. */
            fprintf(stderr, "ferry: built-in default of [%s] %s is invalid: %s\n",
                    cfg_table[i].section, cfg_table[i].key, reason);
            abort();
        }
    }
}

int cfg_set(ferry_config *c, const char *section, const char *key, const char *value, char **err)
{
    if (!section_known(section)) {
        set_err(err, xasprintf("unknown section [%s]", section));
        return -1;
    }
    const cfg_option *o = cfg_find(section, key);
    if (!o) {
        set_err(err, xasprintf("[%s] unknown key '%s'", section, key));
        return -1;
    }
    char *reason = NULL;
    if (apply_value(c, o, value ? value : "", &reason) < 0) {
        set_err(err, xasprintf("[%s] %s: %s", section, key, reason));
        free(reason);
        return -1;
    }
    return 0;
}

/* Index into cfg_table of an option known to exist. */
static size_t option_index(const char *section, const char *key)
{
    const cfg_option *o = cfg_find(section, key);
    if (!o)
        abort();
    return (size_t)(o - cfg_table);
}

/* The cross-option rules; on a violation *blame lists the options involved (for line
 * numbers) and *reason the cause. */
static int check_rules(const ferry_config *c, size_t blame[2], char **reason)
{
    if (c->amqp.reconnect_min_ms > c->amqp.reconnect_max_ms) {
        blame[0] = option_index("amqp", "reconnect_min_ms");
        blame[1] = option_index("amqp", "reconnect_max_ms");
        *reason = xasprintf("[amqp] reconnect_min_ms: value %" PRId64
                            " is greater than reconnect_max_ms %" PRId64,
                            c->amqp.reconnect_min_ms, c->amqp.reconnect_max_ms);
        return -1;
    }
    /* a certificate and its key: both or neither */
    const struct {
        const char *section, *cert, *key;
    } pairs[] = {{"amqp", c->amqp.cert_file, c->amqp.key_file}, {"http", c->http.cert_file, c->http.key_file}};
    for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
        if (!*pairs[i].cert != !*pairs[i].key) {
            blame[0] = option_index(pairs[i].section, "cert_file");
            blame[1] = option_index(pairs[i].section, "key_file");
            *reason = xasprintf(*pairs[i].cert ? "[%s] cert_file is set but key_file is not: a certificate needs its key"
                                               : "[%s] key_file is set but cert_file is not: a key needs its certificate",
                                pairs[i].section);
            return -1;
        }
    }
    return 0;
}

int cfg_check(const ferry_config *c, char **err)
{
    size_t blame[2];
    char *reason = NULL;
    if (check_rules(c, blame, &reason) < 0) {
        set_err(err, reason);
        return -1;
    }
    return 0;
}

static char *double_text(double v)
{
    /* Shortest of %.15g / %.17g that reads back as the same value. */
    char *s = xasprintf("%.15g", v);
    if (strtod(s, NULL) != v) {
        free(s);
        s = xasprintf("%.17g", v);
    }
    return s;
}

int cfg_get_text(const ferry_config *c, const char *section, const char *key, char **out)
{
    const cfg_option *o = cfg_find(section, key);
    if (!o)
        return -1;
    const void *p = field_cptr(c, o);
    switch (o->type) {
    case CFG_STRING: {
        const char *s = *(char *const *)p;
        *out = xstrdup(s ? s : "");
        return 0;
    }
    case CFG_INT:
        *out = xasprintf("%" PRId64, *(const int64_t *)p);
        return 0;
    case CFG_BOOL:
        *out = xstrdup(*(const bool *)p ? "true" : "false");
        return 0;
    case CFG_DOUBLE:
        *out = double_text(*(const double *)p);
        return 0;
    case CFG_ENUM: {
        int v = *(const int *)p;
        for (int i = 0; o->words[i]; i++) {
            if (i == v) {
                *out = xstrdup(o->words[i]);
                return 0;
            }
        }
        *out = xasprintf("%d", v);
        return 0;
    }
    }
    return -1;
}

void cfg_free(ferry_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (cfg_table[i].type != CFG_STRING)
            continue;
        char **sp = field_ptr(c, &cfg_table[i]);
        free(*sp);
        *sp = NULL;
    }
}

/* ---- loading a file -------------------------------------------------------------------- */

typedef struct load_ctx {
    ferry_config *c;
    const char *path;
    FILE *f;
    char *line; /* getline buffer */
    size_t cap;
    int lineno;              /* lines read so far = the line inih is working on */
    int set_line[N_OPTIONS]; /* line each option was set on, 0 = not set */
    char *err;               /* first error, with path and line */
    int err_line;
    int read_errno; /* reading the file failed */
} load_ctx;

static void ctx_fail(load_ctx *x, const char *fmt, ...) FERRY_PRINTF(2, 3);
static void ctx_fail(load_ctx *x, const char *fmt, ...)
{
    if (x->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    x->err = xasprintf("%s:%d: %s", x->path, x->lineno, msg);
    x->err_line = x->lineno;
}

/* fgets-like reader for ini_parse_stream: hands inih one physical line per call (so inih's
 * line numbers and ours agree), counts lines, drops leading blanks (so an indented line is
 * never taken as a continuation of the previous value), refuses lines that would not fit
 * inih's buffer instead of letting them be split, and catches unknown [section] headers,
 * which inih does not report when the section has no keys. Returns NULL to stop. */
static char *ctx_reader(char *str, int num, void *stream)
{
    load_ctx *x = stream;

    if (x->err || x->read_errno)
        return NULL;
    errno = 0;
    ssize_t n = getline(&x->line, &x->cap, x->f);
    if (n < 0) {
        if (ferror(x->f))
            x->read_errno = errno ? errno : EIO;
        return NULL;
    }
    x->lineno++;
    if (memchr(x->line, 0, (size_t)n)) {
        ctx_fail(x, "line contains a NUL byte");
        return NULL;
    }

    const char *s = x->line;
    if (x->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (*s == ' ' || *s == '\t')
        s++;

    size_t len = strlen(s);
    size_t content = len;
    while (content && (s[content - 1] == '\n' || s[content - 1] == '\r'))
        content--;
    if (num < 4 || content > (size_t)num - 3) {
        ctx_fail(x, "line is too long (more than %d characters)", num - 3);
        return NULL;
    }

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end) {
            _cleanup_free_ char *name = xstrndup(s + 1, (size_t)(end - s - 1));
            if (!section_known(name)) {
                ctx_fail(x, "unknown section [%s]", name);
                return NULL;
            }
        }
    }

    /* the content and one newline: a run of line ends (\r\r\r...\n) must not overflow
     * inih's buffer (found by fuzzing) */
    memcpy(str, s, content);
    str[content] = '\n';
    str[content + 1] = 0;
    return str;
}

/* inih handler: one key = value line. Returns 1 to go on, 0 on error. */
static int ctx_handler(void *user, const char *section, const char *key, const char *value)
{
    load_ctx *x = user;

    if (!*section) {
        ctx_fail(x, "key '%s' is outside any section", key);
        return 0;
    }
    if (!section_known(section)) {
        ctx_fail(x, "unknown section [%s]", section);
        return 0;
    }
    if (!*key) {
        ctx_fail(x, "[%s] missing key before '='", section);
        return 0;
    }
    const cfg_option *o = cfg_find(section, key);
    if (!o) {
        ctx_fail(x, "[%s] unknown key '%s'", section, key);
        return 0;
    }
    size_t idx = (size_t)(o - cfg_table);
    if (x->set_line[idx]) {
        ctx_fail(x, "[%s] %s: duplicate key, first set on line %d", section, key, x->set_line[idx]);
        return 0;
    }
    _cleanup_free_ char *reason = NULL;
    if (apply_value(x->c, o, value ? value : "", &reason) < 0) {
        ctx_fail(x, "[%s] %s: %s", section, key, reason);
        return 0;
    }
    x->set_line[idx] = x->lineno;
    return 1;
}

int cfg_load(ferry_config *c, const char *path, bool explicit_path, char **err)
{
    cfg_defaults(c);
    if (!path)
        path = CFG_DEFAULT_PATH;

    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT && !explicit_path)
            return 0;
        set_err(err, xasprintf("could not open config file %s: %s", path, strerror(errno)));
        return -1;
    }
    return cfg_load_stream(c, f, path, err);
}

int cfg_load_stream(ferry_config *c, FILE *f, const char *path, char **err)
{
    load_ctx x = {.c = c, .path = path, .f = f};
    int ret = ini_parse_stream(ctx_reader, &x, ctx_handler, &x);
    free(x.line);

    if (ret > 0 && (!x.err || ret < x.err_line)) {
        free(x.err);
        set_err(err,
                xasprintf("%s:%d: syntax error (expected [section] or key = value)", path, ret));
        return -1;
    }
    if (x.err) {
        set_err(err, x.err);
        return -1;
    }
    if (x.read_errno) {
        set_err(err, xasprintf("could not read config file %s: %s", path, strerror(x.read_errno)));
        return -1;
    }
    if (ret != 0) {
        set_err(err, xasprintf("could not parse config file %s", path));
        return -1;
    }

    size_t blame[2];
    char *reason = NULL;
    if (check_rules(c, blame, &reason) < 0) {
        int line = x.set_line[blame[0]] > x.set_line[blame[1]] ? x.set_line[blame[0]]
                                                               : x.set_line[blame[1]];
        if (line)
            set_err(err, xasprintf("%s:%d: %s", path, line, reason));
        else
            set_err(err, xasprintf("%s: %s", path, reason));
        free(reason);
        return -1;
    }
    return 0;
}

/* ---- example file ---------------------------------------------------------------------- */

static void write_kind(FILE *f, const cfg_option *o)
{
    switch (o->type) {
    case CFG_STRING:
        fputs("string", f);
        break;
    case CFG_INT:
        fprintf(f, "integer %" PRId64 "..%" PRId64, o->min, o->max);
        break;
    case CFG_BOOL:
        fputs("boolean: true or false (also yes/no, on/off, 1/0)", f);
        break;
    case CFG_DOUBLE:
        fprintf(f, "decimal number %g..%g", o->dmin, o->dmax);
        break;
    case CFG_ENUM:
        fputs("one of:", f);
        for (size_t i = 0; o->words[i]; i++)
            fprintf(f, "%s%s", i ? ", " : " ", o->words[i]);
        break;
    }
}

void cfg_write_example(FILE *f)
{
    fputs("; ferry configuration (" CFG_DEFAULT_PATH ")\n"
          ";\n"
          "; Every option is listed at its default value, commented out with '# '. To change\n"
          "; one, remove the '# ' and edit the value. The ';' lines above an option say what it\n"
          "; does and which values it takes. Each option may be set once per file. A comment\n"
          "; starts with ';' or '#' at the beginning of a line, or with ' ;' after a value.\n",
          f);
    const char *section = NULL;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option *o = &cfg_table[i];
        if (!section || strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(f, "\n[%s]\n", section);
        }
        fprintf(f, "\n; %s\n; ", o->help);
        write_kind(f, o);
        fprintf(f, "\n# %s =%s%s\n", o->key, *o->def ? " " : "", o->def);
    }
}
