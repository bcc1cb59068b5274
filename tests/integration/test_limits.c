/* Integration tests of scheduler/limits and scheduler/ledger against the real PostgreSQL
 * started by the harness: the counts limits_load reads (every host, or the two of a request
 * with the queued ones before it; the caller's own migration left out) decided by limits_fit,
 * and ledger_cancel_queued (the one "cancel a queued migration" of intake and the queue). */
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

static void assert_fit(const cfg_scheduler *c, const limits_counts *k, const char *src, const char *dst,
                       const char *why)
{
    char *w = NULL;
    int fits = limits_fit(c, k, src, dst, &w);
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

static void test_counts_every_host(void **state)
{
    fixture *f = *state;
    limits_counts *k = NULL;
    assert_int_equal(limits_lock(f->db), 0);
    assert_int_equal(limits_load(f->db, NULL, NULL, NULL, &k), 0);
    cfg_scheduler c = limits(2, 2, 10);
    assert_fit(&c, k, "h1", "h4", "h1 already has 2 outgoing migrations (max_outgoing_per_source = 2)");
    assert_fit(&c, k, "h4", "h2", "h2 already has 2 incoming migrations (max_incoming_per_dest = 2)");
    assert_fit(&c, k, "h3", "h4", NULL); /* one outgoing, the queued one does not count */
    c = limits(5, 5, 3);
    assert_fit(&c, k, "h4", "h1", "3 migrations are running in the cluster (max_cluster = 3)");
    /* the dispatch adds what it starts */
    c = limits(2, 3, 10);
    assert_fit(&c, k, "h4", "h2", NULL);
    limits_add(k, "h4", "h2");
    assert_fit(&c, k, "h3", "h2", "h2 already has 3 incoming migrations (max_incoming_per_dest = 3)");
    limits_counts_free(k);
}

static void test_counts_of_a_request(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *m1 = one(f->db, "SELECT id FROM migrations WHERE status = 'running'");
    _cleanup_free_ char *m4 = one(f->db, "SELECT id FROM migrations WHERE status = 'queued'");
    cfg_scheduler c = limits(2, 5, 10);
    limits_counts *k = NULL;
    /* a new request from h4 to h2 waits behind the queued h4 -> h2 */
    assert_int_equal(limits_load(f->db, NULL, "h4", "h2", &k), 0);
    assert_fit(&c, k, "h4", "h2", "older migrations from h4 or to h2 are queued: first come, first served");
    limits_counts_free(k);
    /* ... but not behind itself */
    assert_int_equal(limits_load(f->db, m4, "h4", "h2", &k), 0);
    assert_fit(&c, k, "h4", "h2", NULL);
    limits_counts_free(k);
    /* the caller's own migration is not counted */
    assert_int_equal(limits_load(f->db, NULL, "h1", "h3", &k), 0);
    assert_fit(&c, k, "h1", "h3", "h1 already has 2 outgoing migrations (max_outgoing_per_source = 2)");
    limits_counts_free(k);
    assert_int_equal(limits_load(f->db, m1, "h1", "h3", &k), 0);
    assert_fit(&c, k, "h1", "h3", NULL);
    limits_counts_free(k);
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
        cmocka_unit_test_setup_teardown(test_counts_every_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_of_a_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
