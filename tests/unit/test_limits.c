/* Unit tests of scheduler/limits: the one decision against the concurrency limits, taken for a
 * new request (with the queued ones before it) and by the queue's dispatch. The counters it
 * weighs are the hosts' own (schema 15), read and checked against PostgreSQL in
 * integration.limits. */
#include "testlib.h"

#include <string.h>

#include "limits.h"

static cfg_scheduler limits(int64_t out, int64_t in, int64_t cluster)
{
    cfg_scheduler c;
    memset(&c, 0, sizeof(c));
    c.max_outgoing_per_source = out;
    c.max_incoming_per_dest = in;
    c.max_cluster = cluster;
    return c;
}

static void test_empty_fits(void **state)
{
    (void)state;
    cfg_scheduler c = limits(1, 1, 1);
    limits_view v = {0};
    char *why = NULL;
    assert_int_equal(limits_fit(&c, &v, "a", "b", &why), 1);
    assert_null(why);
}

static void test_each_limit_in_order(void **state)
{
    (void)state;
    cfg_scheduler c = limits(2, 2, 3);
    char *why = NULL;
    limits_view v = {.out = 1, .in = 1, .total = 2};
    assert_int_equal(limits_fit(&c, &v, "a", "b", NULL), 1);
    /* every limit reached: the source's limit speaks first */
    v = (limits_view){.out = 2, .in = 2, .total = 3, .queued = 1};
    assert_int_equal(limits_fit(&c, &v, "a", "b", &why), 0);
    assert_string_equal(why, "a already has 2 outgoing migrations (max_outgoing_per_source = 2)");
    free(why);
    v.out = 1;
    assert_int_equal(limits_fit(&c, &v, "d", "b", &why), 0);
    assert_string_equal(why, "b already has 2 incoming migrations (max_incoming_per_dest = 2)");
    free(why);
    /* three active: the cluster is full for hosts that have room */
    v.in = 0;
    assert_int_equal(limits_fit(&c, &v, "x", "y", &why), 0);
    assert_string_equal(why, "3 migrations are running in the cluster (max_cluster = 3)");
    free(why);
    /* why may be NULL (the dispatch does not want the reason) */
    assert_int_equal(limits_fit(&c, &v, "x", "y", NULL), 0);
    /* max_cluster 0: no cluster-wide limit, whatever the total says */
    c.max_cluster = 0;
    v.queued = 0;
    assert_int_equal(limits_fit(&c, &v, "x", "y", NULL), 1);
}

static void test_queued_before_waits(void **state)
{
    (void)state;
    cfg_scheduler c = limits(5, 5, 50);
    limits_view v = {.queued = 1};
    char *why = NULL;
    assert_int_equal(limits_fit(&c, &v, "a", "b", &why), 0);
    assert_string_equal(why, "older migrations from a or to b are queued: first come, first served");
    free(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_fits),
        cmocka_unit_test(test_each_limit_in_order),
        cmocka_unit_test(test_queued_before_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
