/* Unit tests of scheduler/reconcile_rules: the reconciler's decisions, with the facts as the pass
 * reads them from the database (no database here: the rules are pure). Each case is one thing
 * the reconciler must prove before it repairs, or must raise instead. */
#include "testlib.h"

#include <string.h>

#include "reconcile.h"

static reconcile_verdict decide(const reconcile_instance *in, const char **host, reconcile_unresolved *u, char *why)
{
    return reconcile_decide_instance(in, host, u, why, 512);
}

/* an instance whose host is wrong: running on exactly one fresh host → set there */
static void test_host_set_where_it_runs(void **state)
{
    (void)state;
    reconcile_seen seen[] = {{"h2", 1, 1}};
    reconcile_instance in = {.db_host = "h1", .db_host_fresh = 1, .seen = seen, .n_seen = 1};
    const char *host;
    reconcile_unresolved u;
    char why[512];
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_SET_HOST);
    assert_string_equal(host, "h2");
    assert_non_null(strstr(why, "runs on h2 only"));
    /* the database's host is stale: it may still run it there, nothing is proved */
    in.db_host_fresh = 0;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_WAIT);
    /* no host in the database */
    in.db_host = NULL;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_SET_HOST);
    /* already right */
    in.db_host = "h2";
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_NOTHING);
}

/* a guest running on two hosts is raised, never repaired; a stale third listing makes it wait */
static void test_two_hosts_raised(void **state)
{
    (void)state;
    reconcile_seen seen[] = {{"h1", 1, 1}, {"h2", 1, 1}};
    reconcile_instance in = {.db_host = "h1", .db_host_fresh = 1, .seen = seen, .n_seen = 2};
    const char *host;
    reconcile_unresolved u = RECONCILE_NOWHERE;
    char why[512];
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_RAISE);
    assert_int_equal(u, RECONCILE_TWO_HOSTS);
    assert_string_equal(reconcile_unresolved_str(u), "two_hosts");
    assert_non_null(strstr(why, "h1, h2"));
    /* a stale host listing it running: nothing is proved */
    reconcile_seen stale[] = {{"h1", 1, 1}, {"h9", 0, 1}};
    in.seen = stale;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_WAIT);
    /* a shut-off copy elsewhere is not a second run */
    reconcile_seen off[] = {{"h1", 1, 1}, {"h2", 1, 0}};
    in.seen = off;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_NOTHING);
}

/* a guest no fresh host lists, its host fresh: raised as nowhere; its host stale: nothing */
static void test_nowhere(void **state)
{
    (void)state;
    reconcile_instance in = {.db_host = "h1", .db_host_fresh = 1};
    const char *host;
    reconcile_unresolved u = RECONCILE_TWO_HOSTS;
    char why[512];
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_RAISE);
    assert_int_equal(u, RECONCILE_NOWHERE);
    assert_string_equal(host, "h1");
    in.db_host_fresh = 0;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_NOTHING);
    /* shut off on its host: not lost */
    reconcile_seen off[] = {{"h1", 1, 0}};
    in.db_host_fresh = 1;
    in.seen = off;
    in.n_seen = 1;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_NOTHING);
}

/* an active migration is the orchestration's: never touched, whatever the hosts say */
static void test_active_migration_left(void **state)
{
    (void)state;
    reconcile_seen seen[] = {{"h1", 1, 1}, {"h2", 1, 1}};
    reconcile_instance in = {
        .db_host = "h1", .db_host_fresh = 1, .migrating = 1, .active_migration = 1, .seen = seen, .n_seen = 2};
    const char *host;
    reconcile_unresolved u;
    char why[512];
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_NOTHING);
    /* migrating without an active or error migration (a claim in flight): not the reconciler's */
    in.active_migration = 0;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_NOTHING);
}

/* an error migration: settled to the side where the guest runs alone, both hosts fresh */
static void test_error_migration_settled(void **state)
{
    (void)state;
    reconcile_seen on_dest[] = {{"dst", 1, 1}, {"src", 1, 0}};
    reconcile_instance in = {.db_host = "src",
                             .db_host_fresh = 1,
                             .migrating = 1,
                             .error_migration = 7,
                             .source = "src",
                             .dest = "dst",
                             .source_fresh = 1,
                             .dest_fresh = 1,
                             .seen = on_dest,
                             .n_seen = 2};
    const char *host;
    reconcile_unresolved u;
    char why[512];
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_SETTLE_DEST);
    assert_string_equal(host, "dst");
    assert_non_null(strstr(why, "(destination) only"));
    reconcile_seen on_src[] = {{"src", 1, 1}};
    in.seen = on_src;
    in.n_seen = 1;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_SETTLE_SOURCE);
    assert_string_equal(host, "src");
    /* a side stale: wait, whatever the other says */
    in.dest_fresh = 0;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_WAIT);
    assert_non_null(strstr(why, "dst"));
    in.dest_fresh = 1;
    /* on both: raised */
    reconcile_seen both[] = {{"dst", 1, 1}, {"src", 1, 1}};
    in.seen = both;
    in.n_seen = 2;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_RAISE);
    assert_int_equal(u, RECONCILE_TWO_HOSTS);
    /* on neither: raised */
    in.n_seen = 0;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_RAISE);
    assert_int_equal(u, RECONCILE_NOWHERE);
    /* on a third host only: raised, not settled */
    reconcile_seen third[] = {{"h3", 1, 1}};
    in.seen = third;
    in.n_seen = 1;
    assert_int_equal(decide(&in, &host, &u, why), RECONCILE_RAISE);
    assert_int_equal(u, RECONCILE_ELSEWHERE);
}

/* allocations: a final migration's after the grace; an instance's its fresh host does not list */
static void test_allocations(void **state)
{
    (void)state;
    char why[512];
    reconcile_alloc a = {.host = "h1", .is_migration = 1, .mig_status = "failed", .age_s = 600, .grace_s = 120};
    assert_int_equal(reconcile_decide_alloc(&a, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "ended failed"));
    a.age_s = 60; /* within the grace */
    assert_int_equal(reconcile_decide_alloc(&a, why, sizeof(why)), 0);
    a.age_s = 600;
    a.mig_status = "error"; /* settled with its migration, not alone */
    assert_int_equal(reconcile_decide_alloc(&a, why, sizeof(why)), 0);
    a.mig_status = "running";
    assert_int_equal(reconcile_decide_alloc(&a, why, sizeof(why)), 0);

    reconcile_alloc b = {.host = "h1", .host_fresh = 1, .host_lists = 0, .age_s = 600, .grace_s = 120};
    assert_int_equal(reconcile_decide_alloc(&b, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "h1 does not list the instance"));
    b.host_lists = 1;
    assert_int_equal(reconcile_decide_alloc(&b, why, sizeof(why)), 0);
    b.host_lists = 0;
    b.host_fresh = 0; /* a stale heartbeat proves nothing */
    assert_int_equal(reconcile_decide_alloc(&b, why, sizeof(why)), 0);
    b.host_fresh = 1;
    b.instance_migrating = 1; /* a migration's claim */
    assert_int_equal(reconcile_decide_alloc(&b, why, sizeof(why)), 0);
}

static void test_words(void **state)
{
    (void)state;
    assert_string_equal(reconcile_repair_str(RECONCILE_ALLOCATION_RELEASED), "allocation_released");
    assert_string_equal(reconcile_repair_str(RECONCILE_INSTANCE_HOST), "instance_host");
    assert_string_equal(reconcile_repair_str(RECONCILE_MIGRATION_SETTLED), "migration_settled");
    assert_string_equal(reconcile_unresolved_str(RECONCILE_NOWHERE), "nowhere");
    assert_string_equal(reconcile_unresolved_str(RECONCILE_ELSEWHERE), "elsewhere");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_set_where_it_runs),
        cmocka_unit_test(test_two_hosts_raised),
        cmocka_unit_test(test_nowhere),
        cmocka_unit_test(test_active_migration_left),
        cmocka_unit_test(test_error_migration_settled),
        cmocka_unit_test(test_allocations),
        cmocka_unit_test(test_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
