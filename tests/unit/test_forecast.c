/* Unit tests of forecast: the pass-by-pass model of a live migration (an idle guest, a
 * converging one, one that pre-copy cannot move and auto-converge or post-copy can) and the
 * choice of the mode that meets a request's objectives, or the refusal that says why. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#include "../../scheduler/forecast.h"

#define MIB (1024ull * 1024ull)

static forecast_in base(uint64_t mem_mib, uint64_t dirty_mib_s, uint64_t bw_mib_s)
{
    forecast_in in = {
        .memory_bytes = mem_mib * MIB,
        .dirty_bytes_s = dirty_mib_s * MIB,
        .bandwidth_bytes_s = bw_mib_s * MIB,
        .max_downtime_ms = 300,
        .setup_ms = 1000,
        .switch_ms = 20,
        .postcopy_after_passes = 1,
        .max_passes = 30,
    };
    return in;
}

static void test_idle_guest(void **state)
{
    (void)state;
    forecast_in in = base(128, 0, 8);
    for (int m = 0; m < FORECAST_MODES; m++) {
        forecast_out f;
        forecast_run(&in, (forecast_mode)m, &f);
        /* one pass of 16 s, nothing left for the pause but its fixed part */
        assert_true(f.converges);
        assert_int_equal(f.passes, 1);
        assert_int_equal(f.duration_ms, 1000 + 16000 + 20);
        assert_int_equal(f.downtime_ms, 20);
        assert_int_equal(f.bytes, 128 * MIB);
        assert_int_equal(f.throttle_pct, 0);
    }
}

/* The memory that is not zero pages (issue #18, bench/RESULTS.md): the first pass sends only
 * it, and the guest rewrites no more than it */
static void test_nonzero_memory(void **state)
{
    (void)state;
    /* 128 MiB of which 32 MiB written, dirtied at 8 MiB/s, at 16 MiB/s: pass 1 sends 32 MiB in
     * 2 s (16 MiB dirtied), pass 2 16 MiB in 1 s (8), pass 3 8 MiB in 0.5 s (4 MiB: they fit the
     * 4.8 MiB of a 300 ms pause) */
    forecast_in in = base(128, 8, 16);
    in.nonzero_bytes = 32 * MIB;
    forecast_out f;
    forecast_run(&in, FORECAST_PRECOPY, &f);
    assert_true(f.converges);
    assert_int_equal(f.passes, 3);
    assert_int_equal(f.duration_ms, 1000 + 3500 + 250 + 20);
    assert_int_equal(f.bytes, (32 + 16 + 8 + 4) * MIB);
    /* the working set is the non-zero memory: a fast dirtier rewrites at most those 32 MiB
     * (64 MiB/s for 2 s would be 128), and post-copy fetches no more than that */
    in.dirty_bytes_s = 64 * MIB;
    forecast_run(&in, FORECAST_POSTCOPY, &f);
    assert_int_equal(f.bytes, (32 + 32) * MIB);
    assert_int_equal(f.duration_ms, 1000 + 2000 + 20 + 2000);
    /* an explicit working set still wins; a non-zero figure of 0 or above the memory is unknown */
    in.working_set_bytes = 8 * MIB;
    forecast_run(&in, FORECAST_POSTCOPY, &f);
    assert_int_equal(f.bytes, (32 + 8) * MIB);
    in = base(128, 0, 16);
    in.nonzero_bytes = 256 * MIB;
    forecast_run(&in, FORECAST_PRECOPY, &f);
    assert_int_equal(f.bytes, 128 * MIB);
    /* from the inputs: nonzero_mib 0 or not below the memory is unknown */
    cfg_scheduler cs = {.forecast_setup_ms = 1000, .forecast_switch_ms = 100, .max_downtime_ms = 300};
    assert_int_equal(forecast_in_for(&cs, 128, 40, 0, 16, 300, 1).nonzero_bytes, 40 * MIB);
    assert_int_equal(forecast_in_for(&cs, 128, 128, 0, 16, 300, 1).nonzero_bytes, 0);
    assert_int_equal(forecast_in_for(&cs, 128, -5, 0, 16, 300, 1).nonzero_bytes, 0);
}

static void test_converging_guest(void **state)
{
    (void)state;
    /* 1 GiB at 100 MiB/s dirtying 10 MiB/s: pass 1 sends 1024 MiB in 10.24 s (102.4 MiB dirtied,
     * more than the 30 MiB that fit in 300 ms), pass 2 sends those in 1.024 s (10.24 MiB
     * dirtied: they fit), paused 102.4 ms + 20 */
    forecast_in in = base(1024, 10, 100);
    forecast_out f;
    forecast_run(&in, FORECAST_PRECOPY, &f);
    assert_true(f.converges);
    assert_int_equal(f.passes, 2);
    assert_int_equal(f.downtime_ms, 103 + 20);
    assert_int_equal(f.duration_ms, 1000 + 11367 + 20);
    uint64_t want = (uint64_t)(1024.0 * MIB + 102.4 * MIB + 10.24 * MIB);
    assert_true(f.bytes >= want - 2 && f.bytes <= want + 2);
    /* post-copy switches after pass 1: a pause of its fixed part, the 102.4 MiB follow */
    forecast_run(&in, FORECAST_POSTCOPY, &f);
    assert_true(f.converges);
    assert_int_equal(f.passes, 1);
    assert_int_equal(f.downtime_ms, 20);
    assert_int_equal(f.duration_ms, 1000 + 11264 + 20);
}

static void test_precopy_cannot_move_it(void **state)
{
    (void)state;
    /* 64 MiB rewritten at 48 MiB/s over 8 MiB/s (the lab's busy guest): every pass finds all of
     * it dirty again */
    forecast_in in = base(64, 48, 8);
    forecast_out pre, ac, pc;
    forecast_run(&in, FORECAST_PRECOPY, &pre);
    assert_false(pre.converges);
    assert_int_equal(pre.passes, 30);
    assert_int_equal(pre.downtime_ms, 8000 + 20);
    forecast_run(&in, FORECAST_AUTO_CONVERGE, &ac);
    assert_true(ac.converges);
    assert_true(ac.throttle_pct >= 90);
    assert_true(ac.downtime_ms <= 300 + 20);
    assert_true(ac.passes > 2 && ac.passes < 30);
    forecast_run(&in, FORECAST_POSTCOPY, &pc);
    assert_true(pc.converges);
    assert_int_equal(pc.downtime_ms, 20);
    assert_int_equal(pc.duration_ms, 1000 + 8000 + 8000 + 20);
    assert_int_equal(pc.bytes, 128 * MIB);
    /* a working set smaller than the memory caps what a pass leaves */
    in.working_set_bytes = 16 * MIB;
    forecast_run(&in, FORECAST_POSTCOPY, &pc);
    assert_int_equal(pc.duration_ms, 1000 + 8000 + 2000 + 20);
}

static void test_choose(void **state)
{
    (void)state;
    bool all[FORECAST_MODES] = {true, true, true};
    forecast_in in = base(1024, 10, 100);
    forecast_mode m;
    forecast_out f;
    char *why = NULL;
    /* no objectives: pre-copy */
    forecast_objectives none = {0};
    assert_int_equal(forecast_choose(&in, &none, all, &m, &f, &why), 0);
    assert_int_equal(m, FORECAST_PRECOPY);
    /* a 50 ms pause: pre-copy and auto-converge pause 123 ms; post-copy 20 */
    forecast_objectives fast = {.max_downtime_ms = 50};
    assert_int_equal(forecast_choose(&in, &fast, all, &m, &f, &why), 0);
    assert_int_equal(m, FORECAST_POSTCOPY);
    assert_int_equal(f.downtime_ms, 20);
    /* without post-copy: refused, each mode's forecast in the reason */
    bool no_pc[FORECAST_MODES] = {true, true, false};
    assert_int_equal(forecast_choose(&in, &fast, no_pc, &m, &f, &why), -1);
    assert_string_equal(why, "no allowed mode meets max_downtime_ms 50: pre-copy 12.4 s with a 123 ms pause; "
                             "auto-converge 12.4 s with a 123 ms pause");
    free(why);
    why = NULL;
    /* a deadline no mode can meet: 1 GiB at 100 MiB/s takes 10 s at least */
    forecast_objectives soon = {.max_downtime_ms = 500, .deadline_ms = 5000};
    assert_int_equal(forecast_choose(&in, &soon, all, &m, &f, &why), -1);
    assert_non_null(strstr(why, "no allowed mode meets max_downtime_ms 500 and deadline_s 5: pre-copy 12.4 s"));
    assert_non_null(strstr(why, "post-copy 12.3 s with a 20 ms pause"));
    free(why);
    why = NULL;
    /* the busy guest: pre-copy never converges; auto-converge does, throttled to 99 % after
     * 18 passes of 8 s and less (~144 s); post-copy in 17 s */
    forecast_in busy = base(64, 48, 8);
    forecast_objectives slow = {.deadline_ms = 200000};
    assert_int_equal(forecast_choose(&busy, &slow, all, &m, &f, &why), 0);
    assert_int_equal(m, FORECAST_AUTO_CONVERGE);
    assert_int_equal(f.throttle_pct, 99);
    assert_true(f.duration_ms > 140000 && f.duration_ms < 150000);
    forecast_objectives minute = {.deadline_ms = 60000};
    assert_int_equal(forecast_choose(&busy, &minute, all, &m, &f, &why), 0);
    assert_int_equal(m, FORECAST_POSTCOPY);
    bool pre_only[FORECAST_MODES] = {true, false, false};
    assert_int_equal(forecast_choose(&busy, &minute, pre_only, &m, &f, &why), -1);
    assert_string_equal(why, "no allowed mode meets deadline_s 60: pre-copy does not converge (30 passes, 8020 ms "
                             "left for the pause)");
    free(why);
}

static void test_inputs_from_config(void **state)
{
    (void)state;
    cfg_scheduler cs = {
        .forecast_setup_ms = 1500, .forecast_sample_s = 1, .forecast_switch_ms = 100, .max_downtime_ms = 300};
    forecast_in in = forecast_in_for(&cs, 128, 0, 48, 8, 300, 2);
    assert_int_equal(in.memory_bytes, 128 * MIB);
    assert_int_equal(in.dirty_bytes_s, 48 * MIB);
    assert_int_equal(in.bandwidth_bytes_s, 8 * MIB);
    assert_int_equal(in.max_downtime_ms, 300);
    assert_int_equal(in.setup_ms, 2500); /* the setup and the sample every migration takes first */
    assert_int_equal(in.switch_ms, 100);
    assert_int_equal(in.postcopy_after_passes, 2);
    assert_int_equal(in.max_passes, FORECAST_MAX_PASSES);
    /* QEMU's limit for a pause: less the switch-over cost, at least 1 ms, the configured one for none */
    assert_int_equal(forecast_limit_for(&cs, 200), 200 - cs.forecast_switch_ms);
    assert_int_equal(forecast_limit_for(&cs, 1), 1);
    assert_int_equal(forecast_limit_for(&cs, 0), 300);
    /* nothing the model would divide by zero or run forever on */
    in = forecast_in_for(&cs, 128, 0, -1, 0, 0, 0);
    assert_int_equal(in.dirty_bytes_s, 0);
    assert_true(in.bandwidth_bytes_s > 0);
    assert_int_equal(in.max_downtime_ms, 1);
    assert_int_equal(in.postcopy_after_passes, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_guest),     cmocka_unit_test(test_converging_guest),
        cmocka_unit_test(test_nonzero_memory), cmocka_unit_test(test_precopy_cannot_move_it),
        cmocka_unit_test(test_choose),         cmocka_unit_test(test_inputs_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
