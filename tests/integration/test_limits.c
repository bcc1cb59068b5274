/* Integration tests of scheduler/limits and scheduler/ledger against the real PostgreSQL
 * started by the harness: the hosts' limit counters the trigger of schema 15 keeps (through
 * every change of class: queued, active, ended), what limits_hosts and limits_cluster_total
 * read, decided by limits_fit, and ledger_cancel_queued (the one "cancel a queued migration"
 * of intake and the queue). */
#include "testlib.h"

#include <string.h>
#include <unistd.h>

#include "db.h"
#include "ledger.h"
#include "limits.h"
#include "schema.h"

typedef struct {
    db_conn *admin;
    db_conn *db;
    char dbname[64];
} fixture;

static db_conn *open_dsn(const char *dsn)
{
    db_options o = {.dsn = dsn,
                    .connect_timeout_s = 5,
                    .statement_timeout_ms = 20000,
                    .tx_retries = 5,
                    .application_name = "ferry-test"};
    db_conn *db = NULL;
    char *err = NULL;
    if (db_open(&o, &db, &err) < 0)
        fail_msg("db_open(%s): %s", dsn, err);
    return db;
}

static void exec_ok(db_conn *db, const char *sql)
{
    if (db_exec(db, NULL, sql, 0, NULL) < 0)
        fail_msg("%s: %s", sql, db_error(db));
}

static char *one(db_conn *db, const char *sql)
{
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, sql, 0, NULL) < 0 || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, db_error(db));
    return xstrdup(PQgetvalue(r, 0, 0));
}

/* A fresh database with hosts h1..h4, instances on them and migrations: h1->h2 running,
 * h1->h3 scheduled, h3->h2 completing, h4->h2 queued (with its allocations), h2->h1 failed. */
static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof(*f));
    f->admin = open_dsn(test_env("FERRY_TEST_PG_DSN"));
    snprintf(f->dbname, sizeof(f->dbname), "ferry_test_limits_%d_%lld", (int)getpid(), (long long)mono_ms());
    _cleanup_free_ char *create = xasprintf("CREATE DATABASE %s", f->dbname);
    assert_int_equal(db_exec(f->admin, NULL, create, 0, NULL), 0);
    _cleanup_free_ char *dsn = xasprintf("%s dbname=%s", test_env("FERRY_TEST_PG_DSN"), f->dbname);
    f->db = open_dsn(dsn);
    char *err = NULL;
    if (schema_upgrade(f->db, NULL, NULL, &err) < 0)
        fail_msg("schema_upgrade: %s", err);
    exec_ok(f->db,
            "INSERT INTO hosts (name, vcpus, memory_mb, disk_gb, capacity_vcpus, capacity_memory_mb, capacity_disk_gb)"
            " SELECT 'h' || n, 8, 8192, 100, 8, 8192, 100 FROM generate_series(1, 4) n");
    exec_ok(
        f->db,
        "INSERT INTO instances (uuid, name, host, vcpus, memory_mb)"
        " SELECT ('00000000-0000-0000-0000-00000000000' || n)::uuid, 'vm' || n, 'h' || (ARRAY[1, 1, 3, 4, 2])[n], 1, 128"
        " FROM generate_series(1, 5) n");
    exec_ok(
        f->db,
        "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status, finished_at, error)"
        " SELECT ('aaaaaaaa-0000-0000-0000-00000000000' || n)::uuid, ('00000000-0000-0000-0000-00000000000' || n)::uuid,"
        "  'h' || (ARRAY[1, 1, 3, 4, 2])[n], 'h' || (ARRAY[2, 3, 2, 2, 1])[n],"
        "  (ARRAY['running', 'scheduled', 'completing', 'queued', 'failed'])[n],"
        "  CASE WHEN n = 5 THEN now() END, CASE WHEN n = 5 THEN 'x' END"
        " FROM generate_series(1, 5) n ORDER BY n");
    exec_ok(
        f->db,
        "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, migration_id, host, vcpus, memory_mb, disk_gb)"
        " SELECT 'migration', m.id::text, m.instance_uuid, m.id, 'h4', 1, 128, 0 FROM migrations m WHERE m.status = 'queued'");
    exec_ok(
        f->db,
        "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)"
        " SELECT 'instance', m.instance_uuid::text, m.instance_uuid, 'h2', 1, 128, 0 FROM migrations m WHERE m.status = 'queued'");
    exec_ok(f->db, "UPDATE hosts SET used_vcpus = 1, used_memory_mb = 128 WHERE name IN ('h2', 'h4')");
    exec_ok(f->db, "UPDATE instances SET task_state = 'migrating' WHERE name = 'vm4'");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    db_close(f->db);
    _cleanup_free_ char *drop = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
    if (db_exec(f->admin, NULL, drop, 0, NULL) < 0)
        fprintf(stderr, "could not drop %s: %s\n", f->dbname, db_error(f->admin));
    db_close(f->admin);
    free(f);
    return 0;
}

static cfg_scheduler limits(int64_t out, int64_t in, int64_t cluster)
{
    cfg_scheduler c;
    memset(&c, 0, sizeof(c));
    c.max_outgoing_per_source = out;
    c.max_incoming_per_dest = in;
    c.max_cluster = cluster;
    return c;
}

static void assert_fit(const cfg_scheduler *c, const limits_view *v, const char *src, const char *dst, const char *why)
{
    char *w = NULL;
    int fits = limits_fit(c, v, src, dst, &w);
    if (!why) {
        if (fits != 1)
            fail_msg("%s -> %s does not fit: %s", src, dst, w);
        return;
    }
    if (fits != 0)
        fail_msg("%s -> %s fits, expected: %s", src, dst, why);
    assert_string_equal(w, why);
    free(w);
}

/* every host's counters: active (all unfinished) / out / in / queued out / queued in */
#define COUNTERS                                                                                                       \
    "SELECT string_agg(name || ':' || migrations_active || '/' || migrations_out || '/' || migrations_in || '/'"       \
    " || queued_out || '/' || queued_in, ' ' ORDER BY name) FROM hosts"

static void test_counters_follow_the_migrations(void **state)
{
    fixture *f = *state;
    /* h1 -> h2 running, h1 -> h3 scheduled, h3 -> h2 completing, h4 -> h2 queued, h2 -> h1 failed */
    _cleanup_free_ char *c0 = one(f->db, COUNTERS);
    assert_string_equal(c0, "h1:2/2/0/0/0 h2:3/0/2/0/1 h3:2/1/1/0/0 h4:1/0/0/1/0");
    /* within a class (scheduled -> preparing -> running) nothing moves */
    exec_ok(f->db, "UPDATE migrations SET status = 'preparing' WHERE status = 'scheduled'");
    _cleanup_free_ char *c1 = one(f->db, COUNTERS);
    assert_string_equal(c1, c0);
    /* queued -> scheduled: h4's queued out becomes an active out, h2's queued in an active in */
    exec_ok(f->db, "UPDATE migrations SET status = 'scheduled' WHERE status = 'queued'");
    _cleanup_free_ char *c2 = one(f->db, COUNTERS);
    assert_string_equal(c2, "h1:2/2/0/0/0 h2:3/0/3/0/0 h3:2/1/1/0/0 h4:1/1/0/0/0");
    /* an end: h1 -> h2 completed */
    exec_ok(f->db, "UPDATE migrations SET status = 'completed', finished_at = now() WHERE status = 'running'");
    _cleanup_free_ char *c3 = one(f->db, COUNTERS);
    assert_string_equal(c3, "h1:1/1/0/0/0 h2:2/0/2/0/0 h3:2/1/1/0/0 h4:1/1/0/0/0");
    /* a destination changed, and a row deleted */
    exec_ok(f->db, "UPDATE migrations SET dest_host = 'h1' WHERE status = 'completing'");
    exec_ok(f->db, "DELETE FROM allocations");
    exec_ok(f->db, "DELETE FROM migrations WHERE status = 'preparing'");
    _cleanup_free_ char *c4 = one(f->db, COUNTERS);
    assert_string_equal(c4, "h1:1/0/1/0/0 h2:1/0/1/0/0 h3:1/1/0/0/0 h4:1/1/0/0/0");
    /* and what counting the rows says */
    _cleanup_free_ char *diff =
        one(f->db, "SELECT count(*) FROM hosts h WHERE migrations_out <> (SELECT count(*) FROM migrations m"
                   " WHERE m.source_host = h.name AND ferry_limit_class(m.status) = 'a') OR migrations_in <> (SELECT"
                   " count(*) FROM migrations m WHERE m.dest_host = h.name AND ferry_limit_class(m.status) = 'a')");
    assert_string_equal(diff, "0");
}

static void test_decisions(void **state)
{
    fixture *f = *state;
    cfg_scheduler c = limits(2, 2, 10);
    limits_view v = {0};
    assert_int_equal(limits_hosts(f->db, "h1", "h4", &v), 1);
    assert_fit(&c, &v, "h1", "h4", "h1 already has 2 outgoing migrations (max_outgoing_per_source = 2)");
    assert_int_equal(limits_hosts(f->db, "h3", "h2", &v), 1);
    assert_fit(&c, &v, "h3", "h2", "h2 already has 2 incoming migrations (max_incoming_per_dest = 2)");
    assert_int_equal(limits_hosts(f->db, "h3", "h4", &v), 1);
    assert_fit(&c, &v, "h3", "h4", NULL); /* one outgoing; h4's queued one is outgoing, not to it */
    /* a new request from h4 waits behind the queued h4 -> h2, and so does one to h2 */
    c = limits(5, 5, 10);
    assert_int_equal(limits_hosts(f->db, "h4", "h1", &v), 1);
    assert_fit(&c, &v, "h4", "h1", "older migrations from h4 or to h1 are queued: first come, first served");
    assert_int_equal(limits_hosts(f->db, "h1", "h2", &v), 1);
    assert_fit(&c, &v, "h1", "h2", "older migrations from h1 or to h2 are queued: first come, first served");
    /* the cluster: counted (under its lock) only when max_cluster is set */
    c = limits(5, 5, 3);
    assert_int_equal(limits_cluster_total(&c, f->db, &v.total), 0);
    assert_int_equal(v.total, 3);
    assert_int_equal(limits_hosts(f->db, "h3", "h4", &v), 1);
    assert_fit(&c, &v, "h3", "h4", "3 migrations are running in the cluster (max_cluster = 3)");
    c = limits(5, 5, 0);
    assert_int_equal(limits_cluster_total(&c, f->db, &v.total), 0);
    assert_int_equal(v.total, 0);
    assert_fit(&c, &v, "h3", "h4", NULL);
    /* an unknown host */
    assert_int_equal(limits_hosts(f->db, "h3", "nowhere", &v), 0);
}

/* Two transactions deciding for the same destination: the second reads the first one's
 * migration in the counters once the first commits (it waits on the host's row lock). */
static void test_row_lock_orders_decisions(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *dsn = xasprintf("%s dbname=%s", test_env("FERRY_TEST_PG_DSN"), f->dbname);
    db_conn *other = open_dsn(dsn);
    exec_ok(f->db, "BEGIN");
    limits_view v = {0};
    assert_int_equal(limits_hosts(f->db, "h3", "h4", &v), 1);
    assert_int_equal(v.in, 0);
    exec_ok(f->db,
            "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status)"
            " VALUES ('aaaaaaaa-0000-0000-0000-000000000009', '00000000-0000-0000-0000-000000000005', 'h3', 'h4',"
            " 'scheduled')");
    /* the other session cannot take h4's row while this transaction holds it */
    exec_ok(other, "SET lock_timeout = '200ms'");
    assert_int_equal(limits_hosts(other, "h1", "h4", &v), -1);
    exec_ok(f->db, "COMMIT");
    assert_int_equal(limits_hosts(other, "h1", "h4", &v), 1);
    assert_int_equal(v.in, 1);
    db_close(other);
}

static void test_cancel_queued(void **state)
{
    fixture *f = *state;
    ferry_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    sched s = {.cfg = &cfg, .name = "limits-test"};
    _cleanup_free_ char *m4 = one(f->db, "SELECT id FROM migrations WHERE status = 'queued'");
    _cleanup_free_ char *uuid = one(f->db, "SELECT instance_uuid FROM migrations WHERE status = 'queued'");
    assert_int_equal(ledger_cancel_queued(&s, f->db, m4, uuid, "h2", "cancelled: aborted by the operator while queued"),
                     0);
    _cleanup_free_ char *st =
        one(f->db, "SELECT status || ' ' || error || ' ' || (finished_at IS NOT NULL) FROM migrations"
                   " WHERE status IN ('queued', 'cancelled')");
    assert_string_equal(st, "cancelled cancelled: aborted by the operator while queued true");
    /* the destination's allocation is gone, the source's is the instance's again */
    _cleanup_free_ char *al = one(f->db, "SELECT string_agg(consumer_type || '@' || host, ',') FROM allocations");
    assert_string_equal(al, "instance@h4");
    _cleanup_free_ char *used =
        one(f->db, "SELECT string_agg(name || '=' || used_vcpus, ',' ORDER BY name) FROM hosts");
    assert_string_equal(used, "h1=0,h2=0,h3=0,h4=1");
    _cleanup_free_ char *task = one(f->db, "SELECT coalesce(task_state, 'none') FROM instances WHERE name = 'vm4'");
    assert_string_equal(task, "none");
    /* its event and the outbox row of migration.<id>.cancelled */
    _cleanup_free_ char *ev = one(f->db, "SELECT origin || ' ' || status || ' ' || kind FROM migration_events");
    assert_string_equal(ev, "scheduler cancelled status");
    _cleanup_free_ char *key = one(f->db, "SELECT routing_key FROM outbox");
    _cleanup_free_ char *want = xasprintf("migration.%s.cancelled", m4);
    assert_string_equal(key, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counters_follow_the_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_lock_orders_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
