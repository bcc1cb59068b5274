/* Unit tests of scheduler/samplecache: the last dirty-rate sample of each instance, reused by a
 * migration of it within forecast_reuse_s. */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#include "samplecache.h"

static samplecache_entry entry(int64_t migration, int64_t at_ms, int64_t dirty)
{
    samplecache_entry e = {.migration = migration, .at_ms = at_ms, .dirty_mib_s = dirty, .nonzero_mib = 5};
    strlcpy_f(e.host, "compute1", sizeof(e.host));
    return e;
}

static void test_recent_only(void **state)
{
    (void)state;
    samplecache *c = NULL;
    samplecache_entry out;
    /* none yet (and no cache at all) */
    assert_int_equal(samplecache_get(c, "u1", 1000, 300000, &out), -1);
    samplecache_entry e = entry(7, 1000, 12);
    samplecache_put(&c, "u1", &e);
    assert_non_null(c);
    assert_int_equal(samplecache_get(c, "u1", 1000 + 300000, 300000, &out), 0);
    assert_int_equal(out.migration, 7);
    assert_int_equal(out.dirty_mib_s, 12);
    assert_int_equal(out.nonzero_mib, 5);
    assert_string_equal(out.host, "compute1");
    /* older than the window: not taken */
    assert_int_equal(samplecache_get(c, "u1", 1000 + 300001, 300000, &out), -1);
    /* another instance's sample is not this one's */
    assert_int_equal(samplecache_get(c, "u2", 1000, 300000, &out), -1);
    assert_int_equal(samplecache_get(c, "", 1000, 300000, &out), -1);
    samplecache_free(c);
    samplecache_free(NULL);
}

static void test_newer_replaces(void **state)
{
    (void)state;
    samplecache *c = NULL;
    samplecache_entry out;
    samplecache_entry a = entry(1, 1000, 3), b = entry(2, 5000, 40);
    samplecache_put(&c, "u1", &a);
    samplecache_put(&c, "u1", &b);
    assert_int_equal(samplecache_get(c, "u1", 6000, 300000, &out), 0);
    assert_int_equal(out.migration, 2);
    assert_int_equal(out.dirty_mib_s, 40);
    samplecache_free(c);
}

static void test_full_evicts_oldest(void **state)
{
    (void)state;
    samplecache *c = NULL;
    samplecache_entry out;
    char id[40];
    for (int i = 0; i < SAMPLECACHE_MAX; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        samplecache_entry e = entry(i, 10000 + i, i);
        samplecache_put(&c, id, &e);
    }
    /* u0 is the oldest: a new instance takes its place, every other one stays */
    samplecache_entry e = entry(9999, 20000, 1);
    samplecache_put(&c, "new", &e);
    assert_int_equal(samplecache_get(c, "u0", 20000, 300000, &out), -1);
    assert_int_equal(samplecache_get(c, "new", 20000, 300000, &out), 0);
    assert_int_equal(out.migration, 9999);
    for (int i = 1; i < SAMPLECACHE_MAX; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        assert_int_equal(samplecache_get(c, id, 20000, 300000, &out), 0);
        assert_int_equal(out.migration, i);
    }
    samplecache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recent_only),
        cmocka_unit_test(test_newer_replaces),
        cmocka_unit_test(test_full_evicts_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
