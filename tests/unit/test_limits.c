/* Unit tests of scheduler/limits: the one decision against the concurrency limits, taken for a
 * new request (with the queued ones before it) and by the queue's dispatch (adding what it
 * starts), over any number of hosts. The counting SQL runs against PostgreSQL in the
 * integration tests (claims_race, the queue's). */
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
    limits_counts *k = limits_counts_new();
    char *why = NULL;
    assert_int_equal(limits_fit(&c, k, "a", "b", &why), 1);
    assert_null(why);
    limits_counts_free(k);
    limits_counts_free(NULL);
}

static void test_each_limit_in_order(void **state)
{
    (void)state;
    cfg_scheduler c = limits(2, 2, 3);
    limits_counts *k = limits_counts_new();
    char *why = NULL;
    limits_add(k, "a", "b");
    assert_int_equal(limits_fit(&c, k, "a", "b", NULL), 1);
    limits_add(k, "a", "c");
    /* a has two outgoing: the source's limit speaks first */
    assert_int_equal(limits_fit(&c, k, "a", "b", &why), 0);
    assert_string_equal(why, "a already has 2 outgoing migrations (max_outgoing_per_source = 2)");
    free(why);
    /* b has one incoming: another source fits */
    assert_int_equal(limits_fit(&c, k, "d", "b", NULL), 1);
    limits_add(k, "d", "b");
    assert_int_equal(limits_fit(&c, k, "e", "b", &why), 0);
    assert_string_equal(why, "b already has 2 incoming migrations (max_incoming_per_dest = 2)");
    free(why);
    /* three active: the cluster is full for hosts that have room */
    assert_int_equal(limits_fit(&c, k, "x", "y", &why), 0);
    assert_string_equal(why, "3 migrations are running in the cluster (max_cluster = 3)");
    free(why);
    /* why may be NULL (the dispatch does not want the reason) */
    assert_int_equal(limits_fit(&c, k, "x", "y", NULL), 0);
    limits_counts_free(k);
}

static void test_queued_before_waits(void **state)
{
    (void)state;
    cfg_scheduler c = limits(5, 5, 50);
    limits_counts *k = limits_counts_new();
    limits_add_queued(k, 1);
    char *why = NULL;
    assert_int_equal(limits_fit(&c, k, "a", "b", &why), 0);
    assert_string_equal(why, "older migrations from a or to b are queued: first come, first served");
    free(why);
    limits_counts_free(k);
}

/* the dispatch's counts used to stop at 256 hosts: a queued migration between hosts past that
 * was never started. Any number of hosts counts now. */
static void test_many_hosts(void **state)
{
    (void)state;
    cfg_scheduler c = limits(1, 1, 100000);
    limits_counts *k = limits_counts_new();
    char src[32], dst[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(src, sizeof(src), "src-%d", i);
        snprintf(dst, sizeof(dst), "dst-%d", i);
        assert_int_equal(limits_fit(&c, k, src, dst, NULL), 1);
        limits_add(k, src, dst);
        assert_int_equal(limits_fit(&c, k, src, "other", NULL), 0);
        assert_int_equal(limits_fit(&c, k, "other", dst, NULL), 0);
    }
    assert_int_equal(limits_fit(&c, k, "src-1000", "dst-1000", NULL), 1);
    assert_int_equal(limits_fit(&c, k, "src-999", "dst-1000", NULL), 0);
    limits_counts_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_fits),
        cmocka_unit_test(test_each_limit_in_order),
        cmocka_unit_test(test_queued_before_waits),
        cmocka_unit_test(test_many_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
