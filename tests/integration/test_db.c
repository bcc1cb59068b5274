/* Integration tests of common/db and common/schema against the real PostgreSQL started by the
 * harness: upgrade of an empty database (twice), refusal of a newer one, the invariants the
 * schema enforces, db_tx's retry on a serialization failure, and prepared statements. */
#include "testlib.h"

#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
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

/* A fresh, empty database per test. */
static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof(*f));
    f->admin = open_dsn(test_env("FERRY_TEST_PG_DSN"));
    snprintf(f->dbname, sizeof(f->dbname), "ferry_test_%d_%lld", (int)getpid(), (long long)mono_ms());
    /* identifiers cannot be parameters; this name is made here from digits only */
    _cleanup_free_ char *create = xasprintf("CREATE DATABASE %s", f->dbname);
    assert_int_equal(db_exec(f->admin, NULL, create, 0, NULL), 0);
    _cleanup_free_ char *dsn = xasprintf("%s dbname=%s", test_env("FERRY_TEST_PG_DSN"), f->dbname);
    f->db = open_dsn(dsn);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    db_close(f->db);
    _cleanup_free_ char *drop = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
    /* after a server restart the first statement only finds the session dead */
    if (db_exec(f->admin, NULL, drop, 0, NULL) < 0 && db_exec(f->admin, NULL, drop, 0, NULL) < 0)
        fprintf(stderr, "could not drop %s: %s\n", f->dbname, db_error(f->admin));
    db_close(f->admin);
    free(f);
    return 0;
}

static void exec_ok(db_conn *db, const char *sql)
{
    if (db_exec(db, NULL, sql, 0, NULL) < 0)
        fail_msg("%s: %s", sql, db_error(db));
}

/* Asserts that sql fails with SQLSTATE state. */
static void exec_fails(db_conn *db, const char *sql, const char *state)
{
    int rc = db_exec(db, NULL, sql, 0, NULL);
    if (rc == 0)
        fail_msg("expected failure %s but succeeded: %s", state, sql);
    if (strcmp(db_sqlstate(db), state) != 0)
        fail_msg("expected SQLSTATE %s, got %s (%s) for: %s", state, db_sqlstate(db), db_error(db), sql);
}

/* The first column of sql's only row (caller frees). */
static char *scalar(db_conn *db, const char *sql)
{
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, sql, 0, NULL) < 0 || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, db_error(db));
    return xstrdup(PQgetvalue(r, 0, 0));
}

/* ferry_heartbeat's rows, "uuid-prefix outcome detail" joined by "; " ("" for none) */
#define HB(host, seq, domains, isolate)                                                                                  \
    "SELECT coalesce(string_agg(coalesce(left(domain::text, 8), '-') || ' ' || outcome || ' ' || coalesce(detail, '-')," \
    " '; '), '') FROM ferry_heartbeat('" host "', '10.0.0.1', 8, 8192, 100, 'x86_64', 'm', '<cpu/>', 'qemu', '9.0.0',"   \
    " '7.2.0', true, 'bbbbbbbb-0000-4000-8000-000000000000', " seq ", '', 2, 1.5, 1, 1, 512, 10, '" domains "',"         \
    " " isolate ")"
#define DOM(u, name, vm, state, ec2)                                                                                   \
    "{\"uuid\":\"" u "\",\"name\":\"" name "\",\"project\":\"p\",\"vcpus\":1,\"memory_mb\":256,\"disk_gb\":2,"         \
    "\"vm_state\":\"" vm "\",\"state\":\"" state "\",\"ec2_id\":" ec2 "}"

/* sql/016's ferry_heartbeat, the scheduler's one call per heartbeat: the host and its
 * capacity, its instances and their allocations, an older heartbeat ignored, a domain another
 * host still lists not moved, a domain the database refuses failing the batch's way and refused
 * alone the isolated way. */
static void test_heartbeat_function(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    if (schema_upgrade(f->db, NULL, NULL, &err) < 0)
        fail_msg("upgrade: %s", err);
    _cleanup_free_ char *r1 = scalar(
        f->db, HB("h1", "1",
                  "[" DOM("aaaaaaaa-0000-4000-8000-00000000000a", "va", "running", "running", "\"i-0000000a\"") "," DOM(
                      "aaaaaaaa-0000-4000-8000-00000000000b", "vb", "stopped", "shutoff", "null") "]",
                  "false"));
    assert_string_equal(r1, "");
    /* capacity: 8 x 2 - 1 vCPUs, 8192 x 1.5 - 512 MiB, 100 x 1 - 10 GiB; the running one allocated */
    _cleanup_free_ char *h =
        scalar(f->db, "SELECT capacity_vcpus || ' ' || capacity_memory_mb || ' ' || capacity_disk_gb"
                      " || ' ' || used_vcpus || ' ' || used_memory_mb FROM hosts WHERE name = 'h1'");
    assert_string_equal(h, "15 11776 90 1 256");
    _cleanup_free_ char *in =
        scalar(f->db, "SELECT string_agg(name || ':' || host || ':' || vm_state, ',' ORDER BY name)"
                      " FROM instances");
    assert_string_equal(in, "va:h1:running,vb:h1:stopped");
    _cleanup_free_ char *hd = scalar(f->db, "SELECT string_agg(state, ',' ORDER BY state) FROM host_domains");
    assert_string_equal(hd, "running,shutoff");
    /* the same number again: stale, nothing written */
    _cleanup_free_ char *r2 = scalar(f->db, HB("h1", "1", "[]", "false"));
    assert_string_equal(r2, "- stale -");
    _cleanup_free_ char *hd2 = scalar(f->db, "SELECT count(*) FROM host_domains");
    assert_string_equal(hd2, "2");
    /* h2 reports va running while h1 still lists it (h1 has sent no heartbeat since the one
     * that listed va): not moved, returned as claimed */
    _cleanup_free_ char *r3 = scalar(
        f->db, HB("h2", "1", "[" DOM("aaaaaaaa-0000-4000-8000-00000000000a", "va", "running", "running", "null") "]",
                  "false"));
    assert_string_equal(r3, "aaaaaaaa claimed h1");
    _cleanup_free_ char *va = scalar(f->db, "SELECT host FROM instances WHERE name = 'va'");
    assert_string_equal(va, "h1");
    /* a domain whose ec2 id is va's: the batch's way fails the call, the isolated way refuses
     * that domain alone and records the rest */
    const char *clash =
        HB("h2", "2",
           "[" DOM("aaaaaaaa-0000-4000-8000-00000000000c", "vc", "running", "running", "\"i-0000000a\"") "," DOM(
               "aaaaaaaa-0000-4000-8000-00000000000d", "vd", "running", "running", "null") "]",
           "false");
    exec_fails(f->db, clash, "23505");
    _cleanup_free_ char *r4 = scalar(
        f->db, HB("h2", "2",
                  "[" DOM("aaaaaaaa-0000-4000-8000-00000000000c", "vc", "running", "running", "\"i-0000000a\"") "," DOM(
                      "aaaaaaaa-0000-4000-8000-00000000000d", "vd", "running", "running", "null") "]",
                  "true"));
    assert_non_null(strstr(r4, "aaaaaaaa refused duplicate key value"));
    _cleanup_free_ char *h2 =
        scalar(f->db, "SELECT string_agg(name, ',' ORDER BY name) FROM instances WHERE host = 'h2'");
    assert_string_equal(h2, "vd");
    _cleanup_free_ char *u2 = scalar(f->db, "SELECT used_vcpus || ' ' || used_memory_mb FROM hosts WHERE name = 'h2'");
    assert_string_equal(u2, "1 256");
    /* the isolated way passes a claimed domain through as the batch's way does */
    _cleanup_free_ char *r5 = scalar(
        f->db,
        HB("h2", "3", "[" DOM("aaaaaaaa-0000-4000-8000-00000000000a", "va", "running", "running", "null") "]", "true"));
    assert_string_equal(r5, "aaaaaaaa claimed h1");
}

/* a ferry_claim call (request id ...n) with the arguments that change here */
#define CLAIM_CALL(n, inst, kind, host, pc, given, hasobj, planned, subset, maxc)                                      \
    " FROM ferry_claim(rq_id => 'cccccccc-0000-4000-8000-0000000000" n "', rq_instance => '" inst "',"                 \
    " rq_kind => '" kind "', rq_host => " host ", rq_post_copy => " pc ", rq_post_copy_given => " given ","            \
    " rq_disk_over_commit => false, rq_has_objectives => " hasobj ", rq_planned => " planned ","                       \
    " cfg_heartbeat_max_age_s => 60, cfg_subset => " subset ", cfg_max_cluster => " maxc ")"
/* its answer, "outcome dest matches src_out dest_in cluster_total policy" ("-" for NULL) */
#define FC(...)                                                                                                        \
    "SELECT claim_outcome || ' ' || coalesce(dest_host, '-') || ' ' || coalesce(matches::text, '-') || ' '"            \
    " || coalesce(src_out::text, '-') || ' ' || coalesce(dest_in::text, '-') || ' '"                                   \
    " || coalesce(cluster_total::text, '-') || ' ' || coalesce(pol_name, '-')" CLAIM_CALL(__VA_ARGS__)

/* sql/018's ferry_claim, a request's reads and claim in one call: each outcome the scheduler
 * words, the destination's resources taken (and only then), post-copy from the request or its
 * policy filtering the candidates, a named destination, the limits' counts. */
static void test_claim_function(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    if (schema_upgrade(f->db, NULL, NULL, &err) < 0)
        fail_msg("upgrade: %s", err);
    _cleanup_free_ char *hb1 =
        scalar(f->db, HB("h1", "1",
                         "[" DOM("aaaaaaaa-0000-4000-8000-00000000000a", "va", "running", "running", "null") "," DOM(
                             "aaaaaaaa-0000-4000-8000-00000000000b", "vb", "stopped", "shutoff", "null") "]",
                         "false"));
    _cleanup_free_ char *hb2 = scalar(f->db, HB("h2", "1", "[]", "false"));
    _cleanup_free_ char *hb3 = scalar(f->db, HB("h3", "1", "[]", "false"));
    exec_ok(f->db, "UPDATE hosts SET postcopy = false WHERE name = 'h3'");
    exec_ok(f->db,
            "INSERT INTO instances (uuid, name, host) VALUES ('aaaaaaaa-0000-4000-8000-0000000000d1', 'dup', 'h1'),"
            " ('aaaaaaaa-0000-4000-8000-0000000000d2', 'dup', 'h1'),"
            " ('aaaaaaaa-0000-4000-8000-0000000000e1', 'nohost', NULL)");
    static const struct {
        const char *before; /* a statement run first (NULL: none) */
        const char *call;
        const char *want;
    } steps[] = {
        {NULL, FC("01", "nosuch", "name", "NULL", "false", "false", "false", "false", "1", "0"),
         "no_instance - 0 - - - -"},
        {NULL, FC("02", "dup", "name", "NULL", "false", "false", "false", "false", "1", "0"), "ambiguous - 2 - - - -"},
        {NULL, FC("03", "vb", "name", "NULL", "false", "false", "false", "false", "1", "0"), "not_running - 1 0 - - -"},
        {NULL, FC("04", "nohost", "name", "NULL", "false", "false", "false", "false", "1", "0"), "no_host - 1 - - - -"},
        {NULL,
         FC("05", "aaaaaaaa-0000-4000-8000-0000000000e1", "uuid", "NULL", "false", "false", "false", "false", "1", "0"),
         "no_host - 1 - - - -"},
        {"UPDATE instances SET task_state = 'migrating' WHERE name = 'va'",
         FC("06", "va", "name", "NULL", "false", "false", "false", "false", "1", "0"), "migrating - 1 0 - - -"},
        /* claimed: the best (h2 and h3 alike: by name), its resources taken; the cluster counted */
        {"UPDATE instances SET task_state = NULL WHERE name = 'va'",
         FC("07", "va", "name", "NULL", "false", "false", "false", "false", "1", "5"), "claimed h2 1 0 0 0 -"},
        {NULL, "SELECT string_agg(name || ':' || used_vcpus || '/' || used_memory_mb, ' ' ORDER BY name) FROM hosts",
         "h1:1/256 h2:1/256 h3:0/0"},
        /* h3 has more room now but no post-copy: the request's post-copy, or its policy's when
         * the request leaves it, filters it out */
        {NULL, FC("08", "i-00000001", "ec2", "NULL", "true", "true", "false", "false", "1", "0"),
         "claimed h2 1 0 0 - -"},
        {NULL, FC("09", "va", "name", "NULL", "false", "false", "false", "false", "1", "0"), "claimed h3 1 0 0 - -"},
        {"INSERT INTO migration_policies (name, instance_glob, post_copy) VALUES ('pc', 'v?', true)",
         FC("10", "va", "name", "NULL", "false", "false", "false", "false", "1", "0"), "claimed h2 1 0 0 - pc"},
        {NULL, FC("11", "va", "name", "NULL", "false", "true", "false", "false", "1", "0"), "claimed h3 1 0 0 - pc"},
        /* a named destination: the source is not one; another is claimed when it fits */
        {NULL, FC("12", "va", "name", "'h1'", "false", "true", "false", "false", "1", "0"),
         "no_destination - 1 0 - - pc"},
        {NULL, FC("13", "va", "name", "'h2'", "false", "true", "false", "false", "3", "0"), "claimed h2 1 0 0 - pc"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        if (steps[i].before)
            exec_ok(f->db, steps[i].before);
        _cleanup_free_ char *got = scalar(f->db, steps[i].call);
        if (strcmp(got, steps[i].want) != 0)
            fail_msg("step %zu answered '%s', expected '%s' for: %s", i, got, steps[i].want, steps[i].call);
    }
    /* among the k best at random */
    _cleanup_free_ char *sub =
        scalar(f->db, FC("14", "va", "name", "NULL", "false", "true", "false", "false", "3", "0"));
    assert_true(strcmp(sub, "claimed h2 1 0 0 - pc") == 0 || strcmp(sub, "claimed h3 1 0 0 - pc") == 0);
    _cleanup_free_ char *u2 = scalar(f->db, "SELECT sum(used_vcpus) FROM hosts WHERE name IN ('h2', 'h3')");
    assert_string_equal(u2, "7");
    /* a policy's objectives send an unplanned request to its plan, nothing claimed */
    exec_ok(f->db, "UPDATE migration_policies SET post_copy = NULL, objective_deadline_s = 60");
    _cleanup_free_ char *plan =
        scalar(f->db, FC("15", "va", "name", "NULL", "false", "false", "false", "false", "1", "0"));
    assert_string_equal(plan, "needs_plan - 1 0 - - pc");
    _cleanup_free_ char *u3 = scalar(f->db, "SELECT sum(used_vcpus) FROM hosts WHERE name IN ('h2', 'h3')");
    assert_string_equal(u3, "7");
    _cleanup_free_ char *planned =
        scalar(f->db, FC("16", "va", "name", "NULL", "false", "false", "false", "true", "1", "0"));
    assert_string_equal(planned, "claimed h3 1 0 0 - pc");
    /* a request decided before: its outcome, nothing else read */
    exec_ok(f->db, "INSERT INTO processed_requests (request_id, outcome, reason)"
                   " VALUES ('cccccccc-0000-4000-8000-000000000017', 'refused', 'earlier')");
    _cleanup_free_ char *dup = scalar(
        f->db,
        "SELECT claim_outcome || ' ' || dup_outcome || ' ' || dup_reason || ' ' || coalesce(inst_uuid, '-')" CLAIM_CALL(
            "17", "va", "name", "NULL", "false", "false", "false", "false", "1", "0"));
    assert_string_equal(dup, "duplicate refused earlier -");
}

static void test_upgrade_empty_twice(void **state)
{
    fixture *f = *state;
    int from = -1, to = -1;
    char *err = NULL;
    assert_true(schema_latest() >= 1);
    char *check_err = NULL;
    assert_int_equal(schema_check(f->db, &check_err), -1);
    assert_non_null(strstr(check_err, "--db-upgrade"));
    free(check_err);

    if (schema_upgrade(f->db, &from, &to, &err) < 0)
        fail_msg("upgrade: %s", err);
    assert_int_equal(from, 0);
    assert_int_equal(to, schema_latest());
    assert_int_equal(schema_check(f->db, &err), 0);

    /* every table of docs/DESIGN.md "Data (PostgreSQL)" is there */
    const char *tables[] = {
        "hosts", "instances", "allocations", "migrations", "migration_events", "processed_requests", "schema_version"};
    for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
        _cleanup_pq_ PGresult *r = NULL;
        const char *p[] = {tables[i]};
        assert_int_equal(db_exec(f->db, &r, "SELECT to_regclass($1) IS NOT NULL", 1, p), 0);
        assert_string_equal(PQgetvalue(r, 0, 0), "t");
    }

    /* second run: nothing to do, nothing changed */
    _cleanup_pq_ PGresult *r1 = NULL;
    assert_int_equal(db_exec(f->db, &r1, "SELECT count(*), max(applied_at)::text FROM schema_version", 0, NULL), 0);
    assert_int_equal(schema_upgrade(f->db, &from, &to, &err), 0);
    assert_int_equal(from, schema_latest());
    assert_int_equal(to, schema_latest());
    _cleanup_pq_ PGresult *r2 = NULL;
    assert_int_equal(db_exec(f->db, &r2, "SELECT count(*), max(applied_at)::text FROM schema_version", 0, NULL), 0);
    assert_string_equal(PQgetvalue(r1, 0, 0), PQgetvalue(r2, 0, 0));
    assert_string_equal(PQgetvalue(r1, 0, 1), PQgetvalue(r2, 0, 1));
}

static void test_refuses_newer_database(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    assert_int_equal(schema_upgrade(f->db, NULL, NULL, &err), 0);
    char v[16];
    snprintf(v, sizeof(v), "%d", schema_latest() + 1);
    const char *p[] = {v};
    assert_int_equal(
        db_exec(f->db, NULL, "INSERT INTO schema_version (version, name) VALUES ($1::int, 'from the future')", 1, p),
        0);
    assert_int_equal(schema_upgrade(f->db, NULL, NULL, &err), -1);
    _cleanup_free_ char *want =
        xasprintf("version %d, newer than this ferry (which knows up to %d)", schema_latest() + 1, schema_latest());
    if (!strstr(err, want))
        fail_msg("unexpected error: %s", err);
    free(err);
    err = NULL;
    assert_int_equal(schema_check(f->db, &err), -1);
    assert_non_null(strstr(err, "newer than this ferry"));
    free(err);
}

static void test_invariants_enforced(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    assert_int_equal(schema_upgrade(f->db, NULL, NULL, &err), 0);
    exec_ok(f->db,
            "INSERT INTO hosts (name, vcpus, memory_mb, disk_gb, capacity_vcpus, capacity_memory_mb, capacity_disk_gb)"
            " VALUES ('compute1', 4, 8192, 100, 64, 8192, 100), ('compute2', 4, 8192, 100, 64, 8192, 100)");
    /* non-negative capacity and usage (that usage stays within capacity is the claim's
     * conditional update: schema 2 lets a host's capacity shrink below its usage) */
    exec_fails(f->db, "UPDATE hosts SET capacity_memory_mb = -1 WHERE name = 'compute1'", "23514");
    exec_fails(f->db, "UPDATE hosts SET used_memory_mb = -1 WHERE name = 'compute1'", "23514");
    exec_fails(f->db, "UPDATE hosts SET used_vcpus = -1 WHERE name = 'compute1'", "23514");
    exec_fails(f->db, "INSERT INTO hosts (name) VALUES ('bad name; drop')", "23514");

    exec_ok(f->db, "INSERT INTO instances (uuid, name, project, host, vcpus, memory_mb)"
                   " VALUES ('11111111-1111-1111-1111-111111111111', 'vm1', 'admin', 'compute1', 1, 128)");
    _cleanup_pq_ PGresult *r = NULL;
    assert_int_equal(db_exec(f->db, &r, "SELECT ec2_id FROM instances", 0, NULL), 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "i-00000001");
    /* an id the domain's metadata carries is kept */
    exec_ok(
        f->db,
        "INSERT INTO instances (uuid, name, host, ec2_id) VALUES ('22222222-2222-2222-2222-222222222222', 'vm2', 'compute1', 'i-0badcafe')");
    _cleanup_pq_ PGresult *r2 = NULL;
    assert_int_equal(db_exec(f->db, &r2, "SELECT ec2_id FROM instances WHERE name = 'vm2'", 0, NULL), 0);
    assert_string_equal(PQgetvalue(r2, 0, 0), "i-0badcafe");

    exec_ok(
        f->db,
        "INSERT INTO migrations (request_id, instance_uuid, source_host, status)"
        " VALUES ('aaaaaaaa-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'compute1', 'running')");
    /* the same request id twice */
    exec_fails(
        f->db,
        "INSERT INTO migrations (request_id, instance_uuid, source_host, status, finished_at, error)"
        " VALUES ('aaaaaaaa-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'compute1', 'failed', now(), 'x')",
        "23505");
    /* a second active migration of the same instance */
    exec_fails(
        f->db,
        "INSERT INTO migrations (request_id, instance_uuid, source_host, status)"
        " VALUES ('aaaaaaaa-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'compute1', 'queued')",
        "23505");
    /* a finished one beside it is fine */
    exec_ok(
        f->db,
        "INSERT INTO migrations (request_id, instance_uuid, source_host, status, finished_at, error)"
        " VALUES ('aaaaaaaa-0000-0000-0000-000000000003', '11111111-1111-1111-1111-111111111111', 'compute1', 'failed', now(), 'libvirt said no')");
    /* failed without a reason, terminal without finished_at */
    exec_fails(
        f->db,
        "INSERT INTO migrations (request_id, instance_uuid, source_host, status, finished_at)"
        " VALUES ('aaaaaaaa-0000-0000-0000-000000000004', '11111111-1111-1111-1111-111111111111', 'compute1', 'failed', now())",
        "23514");
    exec_fails(f->db,
               "UPDATE migrations SET status = 'completed' WHERE request_id = 'aaaaaaaa-0000-0000-0000-000000000001'",
               "23514");
    exec_fails(f->db,
               "UPDATE migrations SET status = 'migrating' WHERE request_id = 'aaaaaaaa-0000-0000-0000-000000000001'",
               "23514");
    /* processed request ids are unique */
    exec_ok(
        f->db,
        "INSERT INTO processed_requests (request_id, outcome, reason) VALUES ('bbbbbbbb-0000-0000-0000-000000000001', 'refused', 'no such instance')");
    exec_fails(
        f->db,
        "INSERT INTO processed_requests (request_id, outcome, reason) VALUES ('bbbbbbbb-0000-0000-0000-000000000001', 'refused', 'again')",
        "23505");
    /* the timeline is append-only */
    exec_ok(
        f->db,
        "INSERT INTO migration_events (migration_id, origin, kind, message) SELECT id, 'scheduler', 'status', 'queued' FROM migrations LIMIT 1");
    exec_fails(f->db, "UPDATE migration_events SET message = 'rewritten'", "P0001");
    exec_fails(f->db, "DELETE FROM migration_events", "P0001");
    /* allocations cannot be negative */
    exec_fails(
        f->db,
        "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)"
        " VALUES ('instance', '11111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111', 'compute1', 1, -128, 0)",
        "23514");
}

/* ---- db_tx retries a serialization failure ----------------------------------------- */

typedef struct {
    db_conn *other;
    int calls;
} race;

static int racing_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    race *r = arg;
    r->calls++;
    _cleanup_pq_ PGresult *res = NULL;
    if (db_exec(db, &res, "SELECT used_memory_mb FROM hosts WHERE name = 'compute1'", 0, NULL) < 0)
        return -1;
    if (r->calls == 1) {
        /* another replica commits a change to the same row after our snapshot */
        if (db_exec(r->other, NULL, "UPDATE hosts SET used_memory_mb = used_memory_mb + 100 WHERE name = 'compute1'", 0,
                    NULL) < 0)
            fail_msg("other: %s", db_error(r->other));
    }
    return db_exec(db, NULL, "UPDATE hosts SET used_memory_mb = used_memory_mb + 1 WHERE name = 'compute1'", 0, NULL);
}

static int failing_body(db_conn *db, void *arg, char **err)
{
    (void)db;
    (*(int *)arg)++;
    *err = xstrdup("no candidate host: all 2 hosts are full");
    return -1;
}

static void test_tx_retries_serialization_failure(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    assert_int_equal(schema_upgrade(f->db, NULL, NULL, &err), 0);
    exec_ok(f->db, "INSERT INTO hosts (name, capacity_memory_mb) VALUES ('compute1', 8192)");
    _cleanup_free_ char *dsn = xasprintf("%s dbname=%s", test_env("FERRY_TEST_PG_DSN"), f->dbname);
    race r = {.other = open_dsn(dsn)};
    int attempts = 0;
    if (db_tx(f->db, "REPEATABLE READ", racing_tx, &r, &attempts, &err) < 0)
        fail_msg("db_tx: %s", err);
    assert_int_equal(attempts, 2); /* 40001 the first time, committed the second */
    assert_int_equal(r.calls, 2);
    _cleanup_pq_ PGresult *res = NULL;
    assert_int_equal(db_exec(f->db, &res, "SELECT used_memory_mb FROM hosts WHERE name = 'compute1'", 0, NULL), 0);
    assert_string_equal(PQgetvalue(res, 0, 0), "101");
    db_close(r.other);

    /* the body's own refusal is not retried and its words reach the caller */
    int n = 0;
    assert_int_equal(db_tx(f->db, NULL, failing_body, &n, &attempts, &err), -1);
    assert_int_equal(n, 1);
    assert_string_equal(err, "no candidate host: all 2 hosts are full");
    free(err);
    err = NULL;

    /* an SQL error names the SQLSTATE */
    assert_int_equal(db_exec(f->db, NULL, "SELECT * FROM no_such_table", 0, NULL), -1);
    assert_string_equal(db_sqlstate(f->db), "42P01");
    assert_non_null(strstr(db_error(f->db), "no_such_table"));
}

/* Statements with parameters are prepared once per session: the same text runs again from
 * its prepared statement, and a statement the schema no longer fits fails once with
 * PostgreSQL's reason and is prepared afresh on the next call. */
static void test_prepared_statements(void **state)
{
    fixture *f = *state;
    exec_ok(f->db, "CREATE TABLE prep (id int PRIMARY KEY, a text)");
    exec_ok(f->db, "INSERT INTO prep VALUES (1, 'one'), (2, 'two')");
    const char *sql = "SELECT * FROM prep WHERE id = $1::int";
    for (int i = 1; i <= 2; i++) {
        char id[8];
        snprintf(id, sizeof(id), "%d", i);
        const char *p[] = {id};
        _cleanup_pq_ PGresult *r = NULL;
        assert_int_equal(db_exec(f->db, &r, sql, 1, p), 0);
        assert_string_equal(PQgetvalue(r, 0, 1), i == 1 ? "one" : "two");
    }
    _cleanup_pq_ PGresult *n = NULL;
    assert_int_equal(db_exec(f->db, &n, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE $1", 1,
                             (const char *[]){"SELECT * FROM prep%"}),
                     0);
    assert_string_equal(PQgetvalue(n, 0, 0), "1");
    /* the table changes shape under the prepared statement */
    exec_ok(f->db, "ALTER TABLE prep ADD COLUMN b int DEFAULT 7");
    const char *p1[] = {"1"};
    assert_int_equal(db_exec(f->db, NULL, sql, 1, p1), -1);
    assert_string_equal(db_sqlstate(f->db), "0A000");
    _cleanup_pq_ PGresult *r = NULL;
    assert_int_equal(db_exec(f->db, &r, sql, 1, p1), 0);
    assert_int_equal(PQnfields(r), 3);
    assert_string_equal(PQgetvalue(r, 0, 2), "7");
}

/* [database] prepared_statements = false: nothing is prepared on the session. */
static void test_unprepared(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *dsn = xasprintf("%s dbname=%s", test_env("FERRY_TEST_PG_DSN"), f->dbname);
    db_options o = {
        .dsn = dsn, .connect_timeout_s = 5, .tx_retries = 5, .unprepared = 1, .application_name = "ferry-test"};
    db_conn *db = NULL;
    char *err = NULL;
    if (db_open(&o, &db, &err) < 0)
        fail_msg("db_open(%s): %s", dsn, err);
    _cleanup_pq_ PGresult *r = NULL;
    assert_int_equal(db_exec(db, &r, "SELECT $1::int + 1", 1, (const char *[]){"41"}), 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    _cleanup_pq_ PGresult *n = NULL;
    assert_int_equal(db_exec(db, &n, "SELECT count(*) FROM pg_prepared_statements", 0, NULL), 0);
    assert_string_equal(PQgetvalue(n, 0, 0), "0");
    db_close(db);
}

static void test_reconnects_after_postgres_restart(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    assert_int_equal(schema_upgrade(f->db, NULL, NULL, &err), 0);
    assert_int_equal(test_sh("\"$FERRY_TEST_HARNESS\" restart-postgres >/dev/null"), 0);
    /* the first statement notices the dead session, the next reconnects */
    int ok = 0;
    for (int i = 0; i < 3 && !ok; i++)
        ok = db_exec(f->db, NULL, "SELECT 1", 0, NULL) == 0;
    assert_true(ok);
    assert_int_equal(schema_check(f->db, &err), 0);
}

/* ---- a connection lost inside a transaction fails that attempt ------------------------- */

typedef struct {
    db_conn *admin;
    int calls;
    char state_c[6]; /* SQLSTATE of the third statement of the first attempt */
} killed;

/* Inserts a, b, c tagged with the attempt. In the first attempt a second connection terminates
 * this one's backend after a; the body goes on past failed statements, as a best-effort
 * statement in a transaction body does (a log line, no return). */
static int killed_tx(db_conn *db, void *arg, char **err)
{
    (void)err;
    killed *k = arg;
    k->calls++;
    char n[16];
    snprintf(n, sizeof(n), "%d", k->calls);
    const char *pa[] = {"a", n}, *pb[] = {"b", n}, *pc[] = {"c", n};
    if (db_exec(db, NULL, "INSERT INTO txk (step, attempt) VALUES ($1, $2::int)", 2, pa) < 0)
        return -1;
    if (k->calls == 1) {
        char pid[16];
        snprintf(pid, sizeof(pid), "%d", PQbackendPID(db_pg(db)));
        const char *pp[] = {pid};
        _cleanup_pq_ PGresult *r = NULL;
        /* waits (up to 5 s) until the backend is gone */
        if (db_exec(k->admin, &r, "SELECT pg_terminate_backend($1::int, 5000)", 1, pp) < 0)
            fail_msg("pg_terminate_backend: %s", db_error(k->admin));
        assert_string_equal(PQgetvalue(r, 0, 0), "t");
    }
    if (db_exec(db, NULL, "INSERT INTO txk (step, attempt) VALUES ($1, $2::int)", 2, pb) < 0)
        log_warn(NULL, "b failed: %s", db_error(db));
    if (db_exec(db, NULL, "INSERT INTO txk (step, attempt) VALUES ($1, $2::int)", 2, pc) < 0) {
        log_warn(NULL, "c failed: %s", db_error(db));
        if (k->calls == 1)
            strlcpy_f(k->state_c, db_sqlstate(db), sizeof(k->state_c));
    }
    return 0;
}

static void test_tx_connection_lost_retries_whole(void **state)
{
    fixture *f = *state;
    exec_ok(f->db, "CREATE TABLE txk (step text, attempt int)");
    _cleanup_free_ char *dsn = xasprintf("%s dbname=%s", test_env("FERRY_TEST_PG_DSN"), f->dbname);
    killed k = {.admin = open_dsn(dsn)};
    int attempts = 0;
    char *err = NULL;
    if (db_tx(f->db, "READ COMMITTED", killed_tx, &k, &attempts, &err) < 0)
        fail_msg("db_tx: %s", err);
    /* the first attempt failed (not continued on a new session), the second ran whole */
    assert_int_equal(k.calls, 2);
    assert_int_equal(attempts, 2);
    assert_string_equal(k.state_c, "08003");
    _cleanup_pq_ PGresult *r = NULL;
    assert_int_equal(db_exec(f->db, &r, "SELECT string_agg(step || attempt, ',' ORDER BY step) FROM txk", 0, NULL), 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "a2,b2,c2");
    /* outside a transaction a lost connection is reopened by the next statement, as before */
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(db_pg(f->db)));
    const char *pp[] = {pid};
    assert_int_equal(db_exec(k.admin, NULL, "SELECT pg_terminate_backend($1::int, 5000)", 1, pp), 0);
    assert_int_equal(db_exec(f->db, NULL, "SELECT 1", 0, NULL), -1);
    assert_int_equal(db_exec(f->db, NULL, "SELECT 1", 0, NULL), 0);
    db_close(k.admin);
}

int main(void)
{
    log_set_proc("test-db");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upgrade_empty_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_newer_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invariants_enforced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_retries_serialization_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepared_statements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unprepared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnects_after_postgres_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_connection_lost_retries_whole, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
