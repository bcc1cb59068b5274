/* Unit tests of drainplan: a drain's plan — how many at a time (the earliest finish among 1..max),
 * the order (longest first, onto the slot that frees first), each guest's mode (the cheapest that
 * ends; the fastest when a deadline needs it), the migrations already running holding slots. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#include "../../scheduler/drainplan.h"

static cfg_scheduler cs_base(void)
{
    cfg_scheduler cs;
    memset(&cs, 0, sizeof(cs));
    cs.forecast_setup_ms = 1000;
    cs.forecast_sample_s = 0;
    cs.forecast_switch_ms = 20;
    cs.max_downtime_ms = 300;
    cs.postcopy_after_iterations = 1;
    return cs;
}

static void test_empty(void **state)
{
    (void)state;
    cfg_scheduler cs = cs_base();
    drainplan_in in = {.cs = &cs, .link_mib_s = 100, .max_parallel = 4};
    drainplan_out out;
    drainplan_make(&in, NULL, 0, &out);
    assert_int_equal(out.parallel, 1);
    assert_int_equal(out.finish_ms, 0);
    assert_true(out.meets_deadline);
    _cleanup_free_ char *d = drainplan_describe(&in, NULL, 0, &out);
    assert_non_null(strstr(d, "0 guests"));
}

/* four idle guests of 100..400 MiB on a 100 MiB/s link: one at a time takes 10 s of transfer plus
 * four fixed costs of 1.02 s (14.08 s); two at a time at 50 MiB/s each hide two of them (12.04 s);
 * three or four at a time are slower (13.14 s, 17.02 s) */
static void test_idle_guests(void **state)
{
    (void)state;
    cfg_scheduler cs = cs_base();
    drainplan_item it[4];
    memset(it, 0, sizeof(it));
    for (int i = 0; i < 4; i++) {
        it[i].memory_mib = 100 * (i + 1);
        it[i].dirty_mib_s = -1;
    }
    drainplan_in in = {.cs = &cs, .link_mib_s = 100, .max_parallel = 4};
    drainplan_out out;
    drainplan_make(&in, it, 4, &out);
    assert_int_equal(out.parallel, 2);
    assert_int_equal(out.per_mib_s, 50);
    assert_int_equal(out.finish_ms, 12040);
    assert_true(out.meets_deadline);
    assert_int_equal(out.upgraded, 0);
    /* longest first: 400, 300, 200, 100 MiB; the 200 MiB guest follows the 300 MiB one (7.02 s),
     * the 100 MiB guest follows the 400 MiB one (9.02 s) */
    assert_int_equal(it[3].position, 0);
    assert_int_equal(it[2].position, 1);
    assert_int_equal(it[1].position, 2);
    assert_int_equal(it[0].position, 3);
    assert_int_equal(it[3].start_ms, 0);
    assert_int_equal(it[2].start_ms, 0);
    assert_int_equal(it[1].start_ms, 7020);
    assert_int_equal(it[0].start_ms, 9020);
    for (int i = 0; i < 4; i++)
        assert_int_equal(it[i].mode, FORECAST_PRECOPY);
    _cleanup_free_ char *d = drainplan_describe(&in, it, 4, &out);
    assert_non_null(strstr(d, "4 guests (1000 MiB) longest first, 2 at a time at 50 MiB/s each of 100 MiB/s"));
    assert_non_null(strstr(d, "predicted finish in 12.0 s; no deadline"));
    /* one at a time only: the sum */
    in.max_parallel = 1;
    drainplan_make(&in, it, 4, &out);
    assert_int_equal(out.parallel, 1);
    assert_int_equal(out.finish_ms, 14080);
}

/* a guest dirtying 60 MiB/s moves in pre-copy at 100 MiB/s, not at 50: two at a time would put
 * it in auto-converge or post-copy, so the plan weighs that against the hidden fixed costs */
static void test_dirty_guest_needs_bandwidth(void **state)
{
    (void)state;
    cfg_scheduler cs = cs_base();
    drainplan_item it[2];
    memset(it, 0, sizeof(it));
    it[0].memory_mib = 512;
    it[0].dirty_mib_s = 60;
    it[1].memory_mib = 64;
    it[1].dirty_mib_s = 0;
    drainplan_in in = {.cs = &cs, .link_mib_s = 100, .max_parallel = 1};
    drainplan_out one;
    drainplan_make(&in, it, 2, &one);
    assert_int_equal(it[0].mode, FORECAST_PRECOPY);
    assert_int_equal(it[0].position, 0); /* the longest first */
    in.max_parallel = 2;
    drainplan_out two;
    drainplan_make(&in, it, 2, &two);
    assert_true(two.finish_ms <= one.finish_ms); /* the better of the two is taken */
    if (two.parallel == 2)
        assert_int_not_equal(it[0].mode, FORECAST_PRECOPY); /* 50 MiB/s cannot outrun 60 MiB/s of writes */
}

/* a deadline the cheapest modes miss: the guest goes to post-copy where its host allows it, and
 * the plan says whether the deadline holds */
static void test_deadline_upgrades(void **state)
{
    (void)state;
    cfg_scheduler cs = cs_base();
    drainplan_item it;
    memset(&it, 0, sizeof(it));
    it.memory_mib = 1024;
    it.dirty_mib_s = 40;
    it.postcopy_ok = true;
    drainplan_in in = {.cs = &cs, .link_mib_s = 100, .max_parallel = 2};
    drainplan_out out;
    drainplan_make(&in, &it, 1, &out);
    assert_int_equal(it.mode, FORECAST_PRECOPY);
    int64_t precopy = out.finish_ms;
    /* post-copy after one pass: 10.24 s of memory, then what that pass dirtied follows */
    in.deadline_ms = precopy - 1;
    drainplan_make(&in, &it, 1, &out);
    assert_int_equal(it.mode, FORECAST_POSTCOPY);
    assert_int_equal(out.upgraded, 1);
    assert_true(out.finish_ms < precopy);
    assert_true(out.meets_deadline);
    _cleanup_free_ char *d = drainplan_describe(&in, &it, 1, &out);
    assert_non_null(strstr(d, "1 moved to a faster mode for the deadline"));
    assert_non_null(strstr(d, "holds"));
    /* a deadline nothing meets: said so, the plan still the fastest it has */
    in.deadline_ms = 2000;
    drainplan_make(&in, &it, 1, &out);
    assert_false(out.meets_deadline);
    assert_int_equal(it.mode, FORECAST_POSTCOPY);
    _cleanup_free_ char *d2 = drainplan_describe(&in, &it, 1, &out);
    assert_non_null(strstr(d2, "cannot hold even with every guest in its fastest mode"));
    /* post-copy not allowed: no upgrade to it */
    it.postcopy_ok = false;
    in.deadline_ms = precopy - 1;
    drainplan_make(&in, &it, 1, &out);
    assert_int_not_equal(it.mode, FORECAST_POSTCOPY);
}

/* migrations of the drain already running hold their slots until they end */
static void test_busy_slots(void **state)
{
    (void)state;
    cfg_scheduler cs = cs_base();
    drainplan_item it;
    memset(&it, 0, sizeof(it));
    it.memory_mib = 100;
    int64_t busy[] = {5000, 1000};
    drainplan_in in = {.cs = &cs, .link_mib_s = 100, .max_parallel = 2, .busy_ms = busy, .n_busy = 2};
    drainplan_out out;
    drainplan_make(&in, &it, 1, &out);
    assert_int_equal(out.parallel, 2);
    assert_int_equal(it.start_ms, 1000);     /* the slot that frees first */
    assert_int_equal(it.predicted_ms, 3020); /* 100 MiB at 50 MiB/s + 1.02 s */
    assert_int_equal(out.finish_ms, 5000);   /* the running one ends last */
    /* nothing left to plan: the running ones alone */
    drainplan_make(&in, NULL, 0, &out);
    assert_int_equal(out.finish_ms, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_idle_guests),
        cmocka_unit_test(test_dirty_guest_needs_bandwidth),
        cmocka_unit_test(test_deadline_upgrades),
        cmocka_unit_test(test_busy_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
