/* Unit tests of common/config: the option table and its defaults, loading INI files, every
 * kind of error (each naming file, line and key), overrides and the example config. */
#include "testlib.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *fx = xcalloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof(fx->dir), "%s/ferry-cfg-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    int rc = test_sh("rm -rf -- '%s'", fx->dir);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/* Writes text to dir/name and returns the path (caller frees). */
static char *write_file(const fixture *fx, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Loads text as an explicit config file and expects exactly "PATH:LINE: rest". */
static void expect_load_error(const fixture *fx, const char *text, int line, const char *rest)
{
    _cleanup_free_ char *path = write_file(fx, "ferry.conf", text);
    ferry_config c;
    char *err = NULL;
    assert_int_equal(cfg_load(&c, path, true, &err), -1);
    assert_non_null(err);
    _cleanup_free_ char *want = xasprintf("%s:%d: %s", path, line, rest);
    if (strcmp(err, want) != 0)
        fail_msg("error\n  got:  %s\n  want: %s", err, want);
    /* file name, line and (when there is one) key all appear */
    assert_non_null(strstr(err, path));
    _cleanup_free_ char *linetag = xasprintf(":%d: ", line);
    assert_non_null(strstr(err, linetag));
    free(err);
    cfg_free(&c);
}

/* Loads text as an explicit config file and expects success. */
static void load_ok(const fixture *fx, const char *text, ferry_config *c)
{
    _cleanup_free_ char *path = write_file(fx, "ferry.conf", text);
    char *err = NULL;
    int rc = cfg_load(c, path, true, &err);
    if (rc != 0)
        fail_msg("cfg_load failed: %s", err ? err : "(no message)");
    assert_null(err);
}

/* ---- the table and defaults ------------------------------------------------------------ */

static bool in_list(const char *w, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcasecmp(w, list[i]) == 0)
            return true;
    return false;
}

static void test_every_default_parses_and_is_in_range(void **state)
{
    (void)state;
    static const char *const bools[] = {"true", "false", "yes", "no", "on", "off", "1", "0", NULL};
    size_t n = 0;
    const cfg_option *opts = cfg_options(&n);
    assert_true(n >= 45);

    ferry_config c;
    cfg_defaults(&c);
    for (size_t i = 0; i < n; i++) {
        const cfg_option *o = &opts[i];
        assert_non_null(o->section);
        assert_non_null(o->key);
        assert_non_null(o->def);
        assert_non_null(o->help);
        assert_true(strlen(o->help) > 5);
        assert_null(strchr(o->help, '\n'));
        assert_true(cfg_find(o->section, o->key) == o); /* (section, key) is unique */
        assert_true(o->offset < sizeof(ferry_config));

        switch (o->type) {
        case CFG_INT: {
            assert_true(o->min <= o->max);
            int64_t v;
            if (parse_i64(o->def, o->min, o->max, &v) != 0)
                fail_msg("[%s] %s: default '%s' not in %lld..%lld", o->section, o->key, o->def, (long long)o->min,
                         (long long)o->max);
            break;
        }
        case CFG_DOUBLE: {
            assert_true(o->dmin <= o->dmax);
            char *end = NULL;
            double v = strtod(o->def, &end);
            assert_true(end != o->def && *end == '\0');
            assert_true(isfinite(v) && v >= o->dmin && v <= o->dmax);
            break;
        }
        case CFG_BOOL:
            assert_true(in_list(o->def, bools));
            break;
        case CFG_ENUM:
            assert_non_null(o->words);
            assert_true(in_list(o->def, o->words));
            break;
        case CFG_STRING:
            break;
        }

        /* the default goes through the same parser as a file value */
        char *err = NULL;
        if (cfg_set(&c, o->section, o->key, o->def, &err) != 0)
            fail_msg("default of [%s] %s rejected: %s", o->section, o->key, err);
        assert_null(err);

        /* and what cfg_get_text prints parses back */
        char *text = NULL;
        assert_int_equal(cfg_get_text(&c, o->section, o->key, &text), 0);
        if (cfg_set(&c, o->section, o->key, text, &err) != 0)
            fail_msg("[%s] %s: printed value '%s' rejected: %s", o->section, o->key, text, err);
        free(text);
    }
    assert_int_equal(cfg_check(&c, NULL), 0);
    cfg_free(&c);
}

static void test_default_values(void **state)
{
    (void)state;
    ferry_config c;
    cfg_defaults(&c);
    assert_string_equal(c.amqp.url, "amqp://guest:guest@127.0.0.1:5672/");
    assert_int_equal(c.amqp.heartbeat_s, 10);
    assert_int_equal(c.amqp.prefetch, 64);
    assert_int_equal(c.amqp.rpc_timeout_ms, 30000);
    assert_string_equal(c.database.dsn, "dbname=ferry");
    assert_int_equal(c.database.tx_retries, 5);
    assert_true(c.database.prepared_statements);
    assert_string_equal(c.scheduler.name, "");
    assert_int_equal(c.scheduler.lease_s, 30);
    assert_int_equal(c.scheduler.max_cluster, 0);
    assert_true(c.scheduler.cpu_allocation_ratio == 16.0);
    assert_true(c.scheduler.ram_allocation_ratio == 1.5);
    assert_int_equal(c.scheduler.reserved_host_memory_mb, 512);
    assert_string_equal(c.agent.instances_path, "/var/lib/ferry/instances");
    assert_int_equal(c.agent.job_poll_ms, 1000);
    assert_string_equal(c.libvirt.uri, "qemu:///system");
    assert_string_equal(c.libvirt.live_migration_uri, "qemu+tcp://%s/system");
    assert_int_equal(c.libvirt.keepalive_interval_s, 5);
    assert_true(c.http.enabled);
    assert_string_equal(c.http.listen, "127.0.0.1");
    assert_int_equal(c.http.port, 8774);
    assert_string_equal(c.http.tokens, "");
    assert_string_equal(c.http.metrics_token, ""); /* /metrics open unless set */
    assert_int_equal(c.http.max_connections, 256);
    assert_int_equal(c.log.level, LOG_LVL_INFO);
    assert_int_equal(c.log.format, LOG_FMT_TEXT);
    assert_string_equal(c.log.file, "");
    cfg_free(&c);
    cfg_free(&c); /* safe twice */
    cfg_free(NULL);
}

/* ---- loading --------------------------------------------------------------------------- */

static void test_valid_file_sets_values(void **state)
{
    fixture *fx = *state;
    ferry_config c;
    load_ok(fx,
            "# ferry test config\n"
            "; another comment\n"
            "\n"
            "[amqp]\n"
            "url = amqps://u:p@broker.example:5671/ferry\n"
            "heartbeat_s = 0\n"
            "  prefetch = 65535   ; inline comment\n"
            "\n"
            "[database]\r\n"
            "dsn = host=/run/postgresql dbname=ferry_test\r\n"
            "statement_timeout_ms=0\n"
            "prepared_statements = no\n"
            "[scheduler]\n"
            "    # indented comment\n"
            "name = sched-a\n"
            "cpu_allocation_ratio = 2.5\n"
            "disk_allocation_ratio = 1000\n"
            "reserved_host_cpus = +4\n"
            "[libvirt]\n"
            "keepalive_interval_s = -1\n"
            "live_migration_uri = qemu+tls://%s/system?x=100%%\n"
            "[http]\n"
            "enabled = Off\n"
            "tokens = abc,def\n"
            "metrics_token = m3trics\n"
            "max_connections = 8\n"
            "[log]\n"
            "level = debug\n"
            "format = JSON\n"
            "file = /var/log/ferry/scheduler.log\n"
            "[amqp]\n" /* a section may appear again */
            "reconnect_max_ms = 20000\n",
            &c);
    assert_string_equal(c.amqp.url, "amqps://u:p@broker.example:5671/ferry");
    assert_int_equal(c.amqp.heartbeat_s, 0);
    assert_int_equal(c.amqp.prefetch, 65535);
    assert_int_equal(c.amqp.reconnect_max_ms, 20000);
    assert_string_equal(c.database.dsn, "host=/run/postgresql dbname=ferry_test");
    assert_int_equal(c.database.statement_timeout_ms, 0);
    assert_false(c.database.prepared_statements);
    assert_string_equal(c.scheduler.name, "sched-a");
    assert_true(c.scheduler.cpu_allocation_ratio == 2.5);
    assert_true(c.scheduler.disk_allocation_ratio == 1000.0);
    assert_int_equal(c.scheduler.reserved_host_cpus, 4);
    assert_int_equal(c.libvirt.keepalive_interval_s, -1);
    assert_string_equal(c.libvirt.live_migration_uri, "qemu+tls://%s/system?x=100%%");
    assert_false(c.http.enabled);
    assert_string_equal(c.http.tokens, "abc,def");
    assert_string_equal(c.http.metrics_token, "m3trics");
    assert_int_equal(c.http.max_connections, 8);
    assert_int_equal(c.log.level, LOG_LVL_DEBUG);
    assert_int_equal(c.log.format, LOG_FMT_JSON);
    assert_string_equal(c.log.file, "/var/log/ferry/scheduler.log");
    /* untouched options keep their defaults */
    assert_int_equal(c.amqp.connect_timeout_ms, 5000);
    assert_int_equal(c.scheduler.lease_s, 30);
    assert_true(c.scheduler.ram_allocation_ratio == 1.5);
    assert_int_equal(c.http.port, 8774);
    cfg_free(&c);
}

static void test_empty_file_gives_defaults(void **state)
{
    fixture *fx = *state;
    ferry_config c;
    load_ok(fx, "", &c);
    assert_int_equal(c.amqp.prefetch, 64);
    assert_string_equal(c.database.dsn, "dbname=ferry");
    cfg_free(&c);
}

static void test_int_bounds(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[amqp]\nheartbeat_s = 301\n", 2, "[amqp] heartbeat_s: value 301 is out of range 0..300");
    expect_load_error(fx, "[amqp]\n\n\nheartbeat_s = 9999\n", 4,
                      "[amqp] heartbeat_s: value 9999 is out of range 0..300");
    expect_load_error(fx, "[amqp]\nheartbeat_s = -1\n", 2, "[amqp] heartbeat_s: value -1 is out of range 0..300");
    expect_load_error(fx, "[amqp]\nprefetch = 0\n", 2, "[amqp] prefetch: value 0 is out of range 1..65535");
    expect_load_error(fx, "[amqp]\nprefetch = 65536\n", 2, "[amqp] prefetch: value 65536 is out of range 1..65535");
    expect_load_error(fx, "[libvirt]\nkeepalive_interval_s = -2\n", 2,
                      "[libvirt] keepalive_interval_s: value -2 is out of range -1..600");
    expect_load_error(fx, "[http]\nport = 99999999999999999999999\n", 2,
                      "[http] port: value 99999999999999999999999 is out of range 0..65535");
}

static void test_int_not_a_number(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[amqp]\nprefetch = abc\n", 2, "[amqp] prefetch: 'abc' is not an integer");
    expect_load_error(fx, "[amqp]\nprefetch = 10x\n", 2, "[amqp] prefetch: '10x' is not an integer");
    expect_load_error(fx, "[amqp]\nprefetch = 0x10\n", 2, "[amqp] prefetch: '0x10' is not an integer");
    expect_load_error(fx, "[amqp]\nprefetch = 1.5\n", 2, "[amqp] prefetch: '1.5' is not an integer");
    expect_load_error(fx, "[amqp]\nprefetch = -\n", 2, "[amqp] prefetch: '-' is not an integer");
    expect_load_error(fx, "[amqp]\nprefetch =\n", 2, "[amqp] prefetch: empty value, expected an integer in 1..65535");
}

static void test_bool_enum_double(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[http]\nenabled = maybe\n", 2,
                      "[http] enabled: 'maybe' is not a boolean (expected true, false, yes, no, "
                      "on, off, 1 or 0)");
    expect_load_error(fx, "[http]\nenabled =\n", 2,
                      "[http] enabled: '' is not a boolean (expected true, false, yes, no, on, "
                      "off, 1 or 0)");
    expect_load_error(fx, "[log]\nlevel = loud\n", 2, "[log] level: 'loud' is not one of error, warn, info, debug");
    expect_load_error(fx, "[log]\nformat = xml\n", 2, "[log] format: 'xml' is not one of text, json, journal");
    expect_load_error(fx, "[scheduler]\ncpu_allocation_ratio = 0.05\n", 2,
                      "[scheduler] cpu_allocation_ratio: value 0.05 is out of range 0.1..1000");
    expect_load_error(fx, "[scheduler]\nram_allocation_ratio = 1000.5\n", 2,
                      "[scheduler] ram_allocation_ratio: value 1000.5 is out of range 0.1..1000");
    expect_load_error(fx, "[scheduler]\nram_allocation_ratio = 1e999\n", 2,
                      "[scheduler] ram_allocation_ratio: value 1e999 is out of range 0.1..1000");
    expect_load_error(fx, "[scheduler]\ndisk_allocation_ratio = lots\n", 2,
                      "[scheduler] disk_allocation_ratio: 'lots' is not a number");
    expect_load_error(fx, "[scheduler]\ndisk_allocation_ratio = 1.5x\n", 2,
                      "[scheduler] disk_allocation_ratio: '1.5x' is not a number");
    expect_load_error(fx, "[scheduler]\ndisk_allocation_ratio = nan\n", 2,
                      "[scheduler] disk_allocation_ratio: 'nan' is not a number");
    expect_load_error(fx, "[scheduler]\ndisk_allocation_ratio = \n", 2,
                      "[scheduler] disk_allocation_ratio: empty value, expected a number in "
                      "0.1..1000");

    /* every accepted boolean spelling */
    static const struct {
        const char *w;
        bool v;
    } ok[] = {{"true", true}, {"FALSE", false}, {"yes", true}, {"no", false},
              {"on", true},   {"off", false},   {"1", true},   {"0", false}};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        _cleanup_free_ char *text = xasprintf("[http]\nenabled = %s\n", ok[i].w);
        ferry_config c;
        load_ok(fx, text, &c);
        assert_int_equal(c.http.enabled, ok[i].v);
        cfg_free(&c);
    }
}

static void test_string_checks(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[amqp]\nurl = http://broker/\n", 2, "[amqp] url: must start with amqp:// or amqps://");
    expect_load_error(fx, "[amqp]\nurl = amqp://mq1/, mq2:5672\n", 2,
                      "[amqp] url: URL 2 of the list must start with amqp:// or amqps://");
    expect_load_error(fx, "[amqp]\nurl = ,\n", 2, "[amqp] url: must start with amqp:// or amqps://");
    ferry_config c;
    load_ok(fx, "[amqp]\nurl = amqps://u:p@mq1:5671/, amqps://u:p@mq2:5671/,amqp://u:p@mq3/\n", &c);
    assert_string_equal(c.amqp.url, "amqps://u:p@mq1:5671/, amqps://u:p@mq2:5671/,amqp://u:p@mq3/");
    cfg_free(&c);
    expect_load_error(fx, "[libvirt]\nlive_migration_uri = qemu+tcp://dest/system\n", 2,
                      "[libvirt] live_migration_uri: must contain exactly one %s (the "
                      "destination address), found 0");
    expect_load_error(fx, "[libvirt]\nlive_migration_uri = qemu+tcp://%s%s/system\n", 2,
                      "[libvirt] live_migration_uri: must contain exactly one %s (the "
                      "destination address), found 2");
    expect_load_error(fx, "[libvirt]\nlive_migration_uri = qemu+tcp://%s:%d/system\n", 2,
                      "[libvirt] live_migration_uri: unsupported conversion '%d', only %s and "
                      "%% are allowed");
    expect_load_error(fx, "[libvirt]\nlive_migration_uri = qemu+tcp://%s/system%\n", 2,
                      "[libvirt] live_migration_uri: ends with a lone '%'");
    expect_load_error(fx, "[agent]\ninstances_path = var/lib/ferry\n", 2,
                      "[agent] instances_path: must be an absolute path");
    expect_load_error(fx, "[http]\nlisten =\n", 2, "[http] listen: must not be empty");
}

static void test_structure_errors(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[amqp]\n\nprot = amqp\n", 3, "[amqp] unknown key 'prot'");
    /* an unknown section is reported even when it holds no keys */
    expect_load_error(fx, "[amqp]\nprefetch = 5\n\n\n\n\n[foo]\n", 7, "unknown section [foo]");
    expect_load_error(fx, "[foo]\nbar = 1\n", 1, "unknown section [foo]");
    expect_load_error(fx, "[AMQP]\n", 1, "unknown section [AMQP]");
    expect_load_error(fx, "# top\nurl = amqp://x/\n[amqp]\n", 2, "key 'url' is outside any section");
    expect_load_error(fx, "[amqp]\n= 5\n", 2, "[amqp] missing key before '='");
    expect_load_error(fx, "[amqp]\nprefetch = 1\n\nprefetch = 2\n", 4,
                      "[amqp] prefetch: duplicate key, first set on line 2");
    expect_load_error(fx, "[amqp]\nprefetch = 1\n[http]\nport = 1\n[amqp]\nprefetch = 1\n", 6,
                      "[amqp] prefetch: duplicate key, first set on line 2");
}

/* [amqp] url may be repeated, one broker per line: a cluster's URLs with passwords do not fit
 * in one of inih's 200-byte lines (ferry-lab up --brokers 3 hit it, issue #17) */
static void test_repeated_url(void **state)
{
    fixture *fx = *state;
    ferry_config c;
    load_ok(fx, "[amqp]\nurl = amqp://a:b@h1:1\nprefetch = 3\nurl = amqp://a:b@h2:2\nurl = amqps://a:b@h3:3\n", &c);
    assert_string_equal(c.amqp.url, "amqp://a:b@h1:1,amqp://a:b@h2:2,amqps://a:b@h3:3");
    cfg_free(&c);
    /* each line is checked as part of the list: a bad one names its place */
    expect_load_error(fx, "[amqp]\nurl = amqp://h1\nurl = http://h2\n", 3,
                      "[amqp] url: URL 2 of the list must start with amqp:// or amqps://");
    /* other keys stay single */
    expect_load_error(fx, "[database]\ndsn = a=1\ndsn = b=2\n", 3,
                      "[database] dsn: duplicate key, first set on line 2");
}

/* [policy NAME] sections (issue #18): their keys kept as written, in file order, for the
 * scheduler; unknown keys, repeated keys and a nameless [policy] refused with the line */
static void test_policy_sections(void **state)
{
    fixture *fx = *state;
    ferry_config c;
    load_ok(fx,
            "[scheduler]\ncompletion_action = pause\n[policy gold]\nproject = admin\npost_copy = yes\n"
            "[policy  rack1]\nhost_group = rack1\n[policy gold]\npriority = 5\n",
            &c);
    assert_int_equal(c.scheduler.completion_action, 2);
    assert_int_equal(c.n_policy_kv, 4);
    assert_string_equal(c.policy_kv[0].policy, "gold");
    assert_string_equal(c.policy_kv[0].key, "project");
    assert_string_equal(c.policy_kv[0].value, "admin");
    assert_int_equal(c.policy_kv[0].line, 4);
    assert_string_equal(c.policy_kv[2].policy, "rack1");
    assert_string_equal(c.policy_kv[3].key, "priority");
    cfg_free(&c);
    assert_int_equal(c.n_policy_kv, 0);
    expect_load_error(fx, "[policy gold]\ncolour = red\n", 2, "[policy gold] unknown key 'colour'");
    expect_load_error(fx, "[policy gold]\nproject = a\n[policy x]\nproject = b\n[policy gold]\nproject = c\n", 6,
                      "[policy gold] project: duplicate key, first set on line 2");
    expect_load_error(fx, "[policy]\nproject = a\n", 1, "unknown section [policy]");
    expect_load_error(fx, "[scheduler]\ncompletion_action = resume\n", 2,
                      "[scheduler] completion_action: 'resume' is not one of abort, postcopy, pause");
}

static void test_syntax_errors(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[amqp]\nprefetch 5\n", 2, "syntax error (expected [section] or key = value)");
    expect_load_error(fx, "[amqp\nprefetch = 5\n", 1, "syntax error (expected [section] or key = value)");
    /* the first error wins: a syntax error on line 2 before a bad value on line 3 */
    expect_load_error(fx, "[amqp]\noops\nprefetch = 0\n", 2, "syntax error (expected [section] or key = value)");
    /* and a bad value on line 2 before a syntax error on line 3 */
    expect_load_error(fx, "[amqp]\nprefetch = 0\noops\n", 2, "[amqp] prefetch: value 0 is out of range 1..65535");

    /* an indented line is a line of its own, never a continuation of the value above */
    expect_load_error(fx, "[database]\ndsn = dbname=a\n  port=5433\n", 3, "[database] unknown key 'port'");

    /* a line too long for inih's buffer is refused, not split */
    _cleanup_free_ char *big = xmalloc(400);
    memset(big, 'a', 399);
    big[399] = '\0';
    _cleanup_free_ char *text = xasprintf("[http]\ntokens = %s\n", big);
    expect_load_error(fx, text, 2, "line is too long (more than 197 characters)");

    /* a short line ending in a long run of carriage returns is one short line (it used to
     * overflow inih's buffer: found by fuzzing, kept in tests/fuzz/regressions/config) */
    _cleanup_free_ char *crs = xmalloc(600);
    memset(crs, '\r', 599);
    crs[599] = '\0';
    _cleanup_free_ char *crtext = xasprintf("[log]\nlevel = debug%s\n[amqp]\nprefetch = 7\n", crs);
    ferry_config c;
    load_ok(fx, crtext, &c);
    assert_int_equal(c.amqp.prefetch, 7);
    cfg_free(&c);
}

static void test_nul_byte_refused(void **state)
{
    fixture *fx = *state;
    _cleanup_free_ char *path = xasprintf("%s/nul.conf", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite("[log]\nlevel = de\0bug\n", 1, 21, f);
    fclose(f);
    ferry_config c;
    char *err = NULL;
    assert_int_equal(cfg_load(&c, path, true, &err), -1);
    _cleanup_free_ char *want = xasprintf("%s:2: line contains a NUL byte", path);
    assert_string_equal(err, want);
    free(err);
    cfg_free(&c);
}

static void test_reconnect_min_not_above_max(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[amqp]\nreconnect_min_ms = 20000\nreconnect_max_ms = 1000\n", 3,
                      "[amqp] reconnect_min_ms: value 20000 is greater than reconnect_max_ms "
                      "1000");
    expect_load_error(fx, "[amqp]\nreconnect_min_ms = 20000\n", 2,
                      "[amqp] reconnect_min_ms: value 20000 is greater than reconnect_max_ms "
                      "10000");
}

static void test_migration_port_range(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[libvirt]\nmigration_port_max = 40000\n", 2,
                      "[libvirt] migration_port_min: value 49152 is greater than migration_port_max 40000");
}

static void test_tls_client_certificate_needs_its_key(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx, "[amqp]\nurl = amqps://b:5671/\ncert_file = /etc/ferry/tls/agent.pem\n", 3,
                      "[amqp] cert_file is set but key_file is not: a certificate needs its key");
    expect_load_error(fx, "[amqp]\nkey_file = /etc/ferry/tls/agent-key.pem\n", 2,
                      "[amqp] key_file is set but cert_file is not: a key needs its certificate");
    expect_load_error(fx, "[http]\ncert_file = /etc/ferry/tls/ctl1.pem\n", 2,
                      "[http] cert_file is set but key_file is not: a certificate needs its key");
    expect_load_error(fx, "[amqp]\nca_file = tls/ca.pem\n", 2, "[amqp] ca_file: must be an absolute path (or empty)");
}

static void test_missing_files(void **state)
{
    fixture *fx = *state;
    _cleanup_free_ char *path = xasprintf("%s/nope.conf", fx->dir);
    ferry_config c;
    char *err = NULL;

    /* explicit --config: an error naming the file and the reason */
    assert_int_equal(cfg_load(&c, path, true, &err), -1);
    _cleanup_free_ char *want = xasprintf("could not open config file %s: %s", path, strerror(ENOENT));
    assert_non_null(err);
    assert_string_equal(err, want);
    free(err);
    err = NULL;
    cfg_free(&c);

    /* the default path missing: defaults, silently */
    assert_int_equal(cfg_load(&c, path, false, &err), 0);
    assert_null(err);
    assert_int_equal(c.amqp.prefetch, 64);
    cfg_free(&c);

    /* a directory opens but cannot be read */
    assert_int_equal(cfg_load(&c, fx->dir, true, &err), -1);
    _cleanup_free_ char *want_dir = xasprintf("could not read config file %s: %s", fx->dir, strerror(EISDIR));
    assert_non_null(err);
    assert_string_equal(err, want_dir);
    free(err);
    cfg_free(&c);

    /* err may be NULL */
    assert_int_equal(cfg_load(&c, path, true, NULL), -1);
    cfg_free(&c);
}

/* ---- overrides ------------------------------------------------------------------------- */

static void test_cfg_set(void **state)
{
    (void)state;
    ferry_config c;
    cfg_defaults(&c);
    char *err = NULL;

    assert_int_equal(cfg_set(&c, "amqp", "url", "amqp://a:b@mq1:5672/", &err), 0);
    assert_int_equal(cfg_set(&c, "amqp", "url", "amqp://a:b@mq2:5672/", &err), 0); /* old freed */
    assert_string_equal(c.amqp.url, "amqp://a:b@mq2:5672/");
    assert_int_equal(cfg_set(&c, "scheduler", "lease_s", "5", &err), 0);
    assert_int_equal(c.scheduler.lease_s, 5);
    assert_int_equal(cfg_set(&c, "log", "level", "warn", &err), 0);
    assert_int_equal(c.log.level, LOG_LVL_WARN);
    assert_int_equal(cfg_set(&c, "http", "enabled", "no", &err), 0);
    assert_false(c.http.enabled);
    assert_int_equal(cfg_set(&c, "scheduler", "ram_allocation_ratio", "0.1", &err), 0);
    assert_true(c.scheduler.ram_allocation_ratio == 0.1);
    assert_null(err);

    static const struct {
        const char *section, *key, *value, *want;
    } bad[] = {
        {"amqp", "heartbeat_s", "301", "[amqp] heartbeat_s: value 301 is out of range 0..300"},
        {"scheduler", "lease_s", "4", "[scheduler] lease_s: value 4 is out of range 5..3600"},
        {"scheduler", "lease_s", "10x", "[scheduler] lease_s: '10x' is not an integer"},
        {"amqp", "prot", "1", "[amqp] unknown key 'prot'"},
        {"foo", "bar", "1", "unknown section [foo]"},
        {"log", "level", "loud", "[log] level: 'loud' is not one of error, warn, info, debug"},
        {"http", "enabled", "maybe",
         "[http] enabled: 'maybe' is not a boolean (expected true, false, yes, no, on, off, 1 or "
         "0)"},
        {"amqp", "url", "mqtt://x/", "[amqp] url: must start with amqp:// or amqps://"},
        {"amqp", "prefetch", NULL, "[amqp] prefetch: empty value, expected an integer in 1..65535"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(cfg_set(&c, bad[i].section, bad[i].key, bad[i].value, &err), -1);
        assert_non_null(err);
        assert_string_equal(err, bad[i].want);
        free(err);
        err = NULL;
    }
    /* failed sets left the values alone */
    assert_string_equal(c.amqp.url, "amqp://a:b@mq2:5672/");
    assert_int_equal(c.scheduler.lease_s, 5);
    assert_int_equal(c.log.level, LOG_LVL_WARN);
    assert_int_equal(cfg_set(&c, "amqp", "heartbeat_s", "nope", NULL), -1);

    /* cross-option check after overrides */
    assert_int_equal(cfg_set(&c, "amqp", "reconnect_min_ms", "60000", &err), 0);
    assert_int_equal(cfg_check(&c, &err), -1);
    assert_string_equal(err, "[amqp] reconnect_min_ms: value 60000 is greater than "
                             "reconnect_max_ms 10000");
    free(err);
    cfg_free(&c);
}

static void test_get_text(void **state)
{
    (void)state;
    ferry_config c;
    cfg_defaults(&c);
    char *s = NULL;
    assert_int_equal(cfg_get_text(&c, "amqp", "prefetch", &s), 0);
    assert_string_equal(s, "64");
    free(s);
    assert_int_equal(cfg_get_text(&c, "scheduler", "ram_allocation_ratio", &s), 0);
    assert_string_equal(s, "1.5");
    free(s);
    assert_int_equal(cfg_get_text(&c, "http", "enabled", &s), 0);
    assert_string_equal(s, "true");
    free(s);
    assert_int_equal(cfg_get_text(&c, "log", "format", &s), 0);
    assert_string_equal(s, "text");
    free(s);
    assert_int_equal(cfg_get_text(&c, "libvirt", "live_migration_uri", &s), 0);
    assert_string_equal(s, "qemu+tcp://%s/system");
    free(s);
    s = NULL;
    assert_int_equal(cfg_get_text(&c, "amqp", "nope", &s), -1);
    assert_null(s);
    cfg_free(&c);
}

/* ---- the example config ---------------------------------------------------------------- */

static void test_example_loads_back(void **state)
{
    fixture *fx = *state;
    _cleanup_free_ char *path = xasprintf("%s/example.conf", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    cfg_write_example(f);
    assert_int_equal(fclose(f), 0);
    _cleanup_free_ char *text = test_read_file(path, NULL);
    assert_non_null(text);

    /* as written (all commented out) it loads, to the defaults */
    ferry_config c;
    char *err = NULL;
    assert_int_equal(cfg_load(&c, path, true, &err), 0);
    cfg_free(&c);

    /* every option appears once in its section, with its default and its help (keys such as
     * cert_file exist in several sections) */
    size_t n = 0;
    const cfg_option *opts = cfg_options(&n);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *sect = xasprintf("\n[%s]\n", opts[i].section);
        const char *start = strstr(text, sect);
        assert_non_null(start);
        assert_null(strstr(start + 1, sect));
        const char *end = strstr(start + 1, "\n[");
        size_t span = end ? (size_t)(end - start) : strlen(start);
        _cleanup_free_ char *block = strndup(start, span);
        _cleanup_free_ char *line = xasprintf("\n# %s =%s%s\n", opts[i].key, *opts[i].def ? " " : "", opts[i].def);
        const char *hit = strstr(block, line);
        if (!hit)
            fail_msg("example's [%s] lacks line '%s'", opts[i].section, line + 1);
        assert_null(strstr(hit + 1, line));
        assert_non_null(strstr(block, opts[i].help));
    }

    /* uncommenting every option line gives a file that loads, again to the defaults */
    size_t len = strlen(text), j = 0;
    _cleanup_free_ char *un = xmalloc(len + 1);
    int options = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t l = eol ? (size_t)(eol - p + 1) : strlen(p);
        if (strncmp(p, "# ", 2) == 0) {
            p += 2;
            l -= 2;
            options++;
        }
        memcpy(un + j, p, l);
        j += l;
        p += l;
    }
    un[j] = '\0';
    assert_int_equal(options, (int)n);
    _cleanup_free_ char *upath = write_file(fx, "uncommented.conf", un);
    if (cfg_load(&c, upath, true, &err) != 0)
        fail_msg("uncommented example does not load: %s", err);
    ferry_config d;
    cfg_defaults(&d);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        assert_int_equal(cfg_get_text(&c, opts[i].section, opts[i].key, &a), 0);
        assert_int_equal(cfg_get_text(&d, opts[i].section, opts[i].key, &b), 0);
        assert_string_equal(a, b);
    }
    cfg_free(&c);
    cfg_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_default_parses_and_is_in_range),
        cmocka_unit_test(test_default_values),
        cmocka_unit_test_setup_teardown(test_valid_file_sets_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_gives_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_not_a_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_enum_double, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structure_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_byte_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_min_not_above_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_port_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_certificate_needs_its_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
        cmocka_unit_test(test_cfg_set),
        cmocka_unit_test(test_get_text),
        cmocka_unit_test_setup_teardown(test_example_loads_back, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
