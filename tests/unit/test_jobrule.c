/* Unit tests of jobrule: an outgoing job's decisions without libvirt — the post-copy switch
 * after N passes, the completion timeout (abort, or post-copy when asked and allowed), the
 * stall rule, and what an operator's abort and force-complete may do in each state. */
#include <string.h>

#include "testlib.h"

#include "../../compute-agent/jobrule.h"

static jobrule_state fresh(int64_t now)
{
    jobrule_state st = {.started_ms = now, .best_remaining_ms = now};
    return st;
}

static void test_postcopy_after_iterations(void **state)
{
    (void)state;
    job_opts o = {.post_copy = 1, .postcopy_after_iterations = 2};
    jobrule_state st = fresh(0);
    jobrule_take_reading(&st, 1, 1000, 10);
    assert_false(jobrule_postcopy_due(&o, &st)); /* the first pass does not count */
    jobrule_take_reading(&st, 2, 900, 20);
    assert_false(jobrule_postcopy_due(&o, &st));
    jobrule_take_reading(&st, 3, 800, 30);
    assert_true(jobrule_postcopy_due(&o, &st)); /* two passes after the first */
    jobrule_take_reading(&st, 2, 800, 40);      /* a late reading does not move it back */
    assert_int_equal(st.iteration, 3);
    st.postcopy_active = 1;
    assert_false(jobrule_postcopy_due(&o, &st)); /* switched once only */
    o.post_copy = 0;
    st.postcopy_active = 0;
    assert_false(jobrule_postcopy_due(&o, &st)); /* never when not allowed */
    /* postcopy_after_iterations 0: as soon as the first pass is seen */
    job_opts z = {.post_copy = 1};
    jobrule_state s0 = fresh(0);
    assert_false(jobrule_postcopy_due(&z, &s0));
    jobrule_take_reading(&s0, 1, 5, 1);
    assert_true(jobrule_postcopy_due(&z, &s0));
}

static void test_best_remaining(void **state)
{
    (void)state;
    jobrule_state st = fresh(0);
    st.best_remaining_ms = 0;
    jobrule_take_reading(&st, 1, 500, 100);
    assert_int_equal(st.best_remaining, 500);
    assert_int_equal(st.best_remaining_ms, 100);
    jobrule_take_reading(&st, 1, 700, 200); /* higher: the low and its time stay */
    assert_int_equal(st.best_remaining, 500);
    assert_int_equal(st.best_remaining_ms, 100);
    jobrule_take_reading(&st, 1, 400, 300);
    assert_int_equal(st.best_remaining, 400);
    assert_int_equal(st.best_remaining_ms, 300);
}

static void test_completion_timeout(void **state)
{
    (void)state;
    job_opts o = {.completion_timeout_s = 10};
    jobrule_state st = fresh(1000);
    assert_int_equal(jobrule_completion(&o, &st, 0, 11000), JOBRULE_IN_TIME); /* exactly 10 s: not past */
    assert_int_equal(jobrule_completion(&o, &st, 0, 11001), JOBRULE_TIMEOUT_ABORT);
    o.completion_postcopy = 1; /* post-copy asked but not allowed for this migration: abort */
    assert_int_equal(jobrule_completion(&o, &st, 0, 11001), JOBRULE_TIMEOUT_ABORT);
    o.post_copy = 1;
    assert_int_equal(jobrule_completion(&o, &st, 0, 11001), JOBRULE_TIMEOUT_POSTCOPY);
    st.postcopy_active = 1; /* past the switch nothing is aborted */
    assert_int_equal(jobrule_completion(&o, &st, 0, 99000), JOBRULE_IN_TIME);
    st.postcopy_active = 0;
    st.abort_requested = 1; /* already ending */
    assert_int_equal(jobrule_completion(&o, &st, 0, 99000), JOBRULE_IN_TIME);
    /* pause: the guest paused at the timeout, once (then the job waits for the rest to go) */
    job_opts pz = {.completion_timeout_s = 10, .completion_pause = 1};
    jobrule_state s3 = fresh(1000);
    assert_int_equal(jobrule_completion(&pz, &s3, 0, 11000), JOBRULE_IN_TIME);
    assert_int_equal(jobrule_completion(&pz, &s3, 0, 11001), JOBRULE_TIMEOUT_PAUSE);
    assert_int_equal(jobrule_completion(&pz, &s3, 1, 11001), JOBRULE_IN_TIME);
    pz.post_copy = 1; /* post-copy allowed does not turn a pause into a switch */
    assert_int_equal(jobrule_completion(&pz, &s3, 0, 11001), JOBRULE_TIMEOUT_PAUSE);
    job_opts none = {0}; /* 0 s: no timeout */
    jobrule_state s2 = fresh(0);
    assert_int_equal(jobrule_completion(&none, &s2, 0, INT64_C(1) << 40), JOBRULE_IN_TIME);
}

static void test_stall(void **state)
{
    (void)state;
    jobrule_state st = fresh(0);
    jobrule_take_reading(&st, 1, 1000, 0);
    jobrule_take_reading(&st, 2, 1000, 29000); /* no new low */
    assert_false(jobrule_stalled(&st, 30000, 30));
    assert_true(jobrule_stalled(&st, 30001, 30));
    assert_false(jobrule_stalled(&st, 30001, 0)); /* 0: off */
    jobrule_take_reading(&st, 3, 999, 30001);     /* a new low resets it */
    assert_false(jobrule_stalled(&st, 40000, 30));
    st.postcopy_active = 1;
    assert_false(jobrule_stalled(&st, 999999, 30));
    st.postcopy_active = 0;
    st.abort_requested = 1;
    assert_false(jobrule_stalled(&st, 999999, 30));
}

static void test_operator_abort(void **state)
{
    (void)state;
    jobrule_state st = fresh(0);
    assert_int_equal(jobrule_may_abort(1, &st), RPC_OK);
    assert_int_equal(jobrule_may_abort(0, &st), RPC_CONFLICT); /* ended */
    st.postcopy_active = 1;
    assert_int_equal(jobrule_may_abort(1, &st), RPC_CONFLICT); /* the guest runs on the destination */
}

static void test_force_complete(void **state)
{
    (void)state;
    job_opts pre = {0}, post = {.post_copy = 1};
    jobrule_state st = fresh(0);
    assert_int_equal(jobrule_force_complete(&pre, 0, &st), JOBRULE_FINISH_CONFLICT);
    assert_int_equal(jobrule_force_complete(&pre, 1, &st), JOBRULE_FINISH_PAUSE);
    assert_int_equal(jobrule_force_complete(&post, 1, &st), JOBRULE_FINISH_POSTCOPY);
    st.postcopy_active = 1;
    assert_int_equal(jobrule_force_complete(&post, 1, &st), JOBRULE_FINISH_ALREADY_POSTCOPY);
    assert_int_equal(jobrule_force_complete(&post, 0, &st), JOBRULE_FINISH_CONFLICT);
}

/* How a job ends: an abort asked makes any failure the abort's doing (libvirt reported a
 * completion-timeout abort once as "Unable to write to socket: Broken pipe"). */
static void test_end_of(void **state)
{
    (void)state;
    jobrule_state st = fresh(0);
    assert_int_equal(jobrule_end_of(1, 0, &st, 0), JOBRULE_END_COMPLETED);
    assert_int_equal(jobrule_end_of(0, 0, &st, 0), JOBRULE_END_FAILED);
    assert_int_equal(jobrule_end_of(0, 1, &st, 0), JOBRULE_END_CANCELLED); /* aborted by someone else */
    st.abort_requested = 1;
    assert_int_equal(jobrule_end_of(0, 1, &st, 0), JOBRULE_END_CANCELLED);   /* the operator's abort */
    assert_int_equal(jobrule_end_of(0, 0, &st, 0), JOBRULE_END_CANCELLED);   /* ... ending as a failure */
    assert_int_equal(jobrule_end_of(0, 1, &st, 1), JOBRULE_END_AGENT_ABORT); /* the agent's timeout, stall */
    assert_int_equal(jobrule_end_of(0, 0, &st, 1), JOBRULE_END_AGENT_ABORT);
    assert_int_equal(jobrule_end_of(1, 0, &st, 1), JOBRULE_END_COMPLETED); /* it landed before the abort */
}

/* A failure after the post-copy switch keeps the job (issue #17): postcopy_paused when libvirt
 * shows the source paused in post-copy, failed when there is nothing to resume. */
static void test_postcopy_paused(void **state)
{
    (void)state;
    jobrule_state st = fresh(0);
    st.postcopy_active = 1;
    assert_int_equal(jobrule_end_of(0, 0, &st, 0), JOBRULE_END_POSTCOPY_PAUSED);
    assert_int_equal(jobrule_end_of(1, 0, &st, 0), JOBRULE_END_COMPLETED);
    assert_int_equal(jobrule_postcopy_end(1), JOBRULE_END_POSTCOPY_PAUSED);
    assert_int_equal(jobrule_postcopy_end(0), JOBRULE_END_FAILED);
}

/* resume_postcopy: started once per pause, idempotent while under way or once completed, refused
 * otherwise. */
static void test_resume_of(void **state)
{
    (void)state;
    assert_int_equal(jobrule_resume_of(JOB_POSTCOPY_PAUSED, 0), JOBRULE_RESUME_START);
    assert_int_equal(jobrule_resume_of(JOB_RUNNING, 1), JOBRULE_RESUME_UNDER_WAY);
    assert_int_equal(jobrule_resume_of(JOB_RUNNING, 0), JOBRULE_RESUME_NOT_PAUSED);
    assert_int_equal(jobrule_resume_of(JOB_COMPLETED, 1), JOBRULE_RESUME_COMPLETED);
    assert_int_equal(jobrule_resume_of(JOB_FAILED, 0), JOBRULE_RESUME_NOT_PAUSED);
    assert_int_equal(jobrule_resume_of(JOB_CANCELLED, 0), JOBRULE_RESUME_NOT_PAUSED);
}

/* The downtime ramp: Nova's schedule, max/steps first, max at the last step and after; none
 * without steps and delay. */
static void test_downtime_ramp(void **state)
{
    (void)state;
    job_opts o = {.max_downtime_ms = 2000};
    int step = 9;
    assert_int_equal(jobrule_downtime_at(&o, 0, &step), 2000);
    assert_int_equal(step, 0);
    assert_int_equal(jobrule_downtime_at(&o, 999999, &step), 2000);
    o.downtime_steps = 4;
    o.downtime_delay_ms = 1000;
    static const struct {
        int64_t at;
        int limit, step;
    } want[] = {{-5, 500, 0},    {0, 500, 0},     {999, 500, 0},   {1000, 875, 1},      {2000, 1250, 2},
                {3000, 1625, 3}, {4000, 2000, 4}, {4001, 2000, 4}, {INT64_MAX, 2000, 4}};
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        assert_int_equal(jobrule_downtime_at(&o, want[i].at, &step), want[i].limit);
        assert_int_equal(step, want[i].step);
    }
    /* steps above the limit's milliseconds: never below 1 ms */
    o.max_downtime_ms = 3;
    o.downtime_steps = 100;
    assert_int_equal(jobrule_downtime_at(&o, 0, &step), 1);
    assert_int_equal(jobrule_downtime_at(&o, 100000, &step), 3);
}

static void test_settings_check(void **state)
{
    (void)state;
    char why[256];
    job_opts o = {.max_downtime_ms = 300, .bandwidth_mib_s = 8};
    jobrule_applied ap = {300, 8, -1, -1, -1, NULL, NULL};
    /* what was asked, read back the same */
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), 0);
    assert_string_equal(why, "max downtime 300 ms, bandwidth 8 MiB/s");
    /* libvirt holds another cap: the difference, in libvirt's figure and the asked one */
    ap.bandwidth_mib_s = 32;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "bandwidth is 32 MiB/s in libvirt, 8 MiB/s asked");
    ap.bandwidth_mib_s = 8;
    ap.downtime_ms = 500;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "max downtime is 500 ms in libvirt, 300 ms asked");
    /* a setting that could not be read is not verified */
    ap.downtime_ms = -1;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "max downtime could not be read back from libvirt, 300 ms asked");
    /* the ramp: the step's limit is the one expected */
    o.max_downtime_ms = 2000;
    o.downtime_steps = 4;
    o.downtime_delay_ms = 1000;
    ap.downtime_ms = 875;
    assert_int_equal(jobrule_settings_check(&o, 1, &ap, why, sizeof(why)), 0);
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "max downtime is 875 ms in libvirt, 500 ms asked");
    /* no cap asked: libvirt's unlimited; a cap there is a difference */
    o = (job_opts){.bandwidth_mib_s = 0};
    ap = (jobrule_applied){-1, 8796093022207LL, -1, -1, -1, NULL, NULL};
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), 0);
    assert_string_equal(why, "bandwidth unlimited");
    ap.bandwidth_mib_s = 128;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "bandwidth is 128 MiB/s in libvirt, no cap asked");
    /* post-copy with a cap: post-copy's own cap is checked too */
    int want_dt, want_pc, want_cache, want_streams;
    o = (job_opts){.post_copy = 1, .bandwidth_mib_s = 16, .max_downtime_ms = 100};
    jobrule_settings_wanted(&o, &want_dt, &want_pc, &want_cache, &want_streams);
    assert_true(want_dt && want_pc && !want_cache && !want_streams);
    ap = (jobrule_applied){100, 16, 16, -1, -1, NULL, NULL};
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), 0);
    assert_string_equal(why, "max downtime 100 ms, bandwidth 16 MiB/s, post-copy bandwidth 16 MiB/s");
    ap.postcopy_bandwidth_mib_s = 0;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "post-copy bandwidth is 0 MiB/s in libvirt, 16 MiB/s asked");
    /* xbzrle: its cache read back */
    o = (job_opts){.max_downtime_ms = 300, .bandwidth_mib_s = 8, .xbzrle_cache_mib = 32, .parallel_connections = 1};
    ap = (jobrule_applied){300, 8, -1, 32, 1, "10.0.1.2", "10.0.1.1"};
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), 0);
    assert_string_equal(why, "max downtime 300 ms, bandwidth 8 MiB/s, xbzrle cache 32 MiB, 1 connection to 10.0.1.2 "
                             "from 10.0.1.1");
    ap.compression_cache_mib = 64;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "xbzrle cache is 64 MiB in libvirt, 32 MiB asked");
    /* parallel connections: that many streams besides QEMU's main one */
    o = (job_opts){.max_downtime_ms = 300, .bandwidth_mib_s = 8, .parallel_connections = 4};
    jobrule_settings_wanted(&o, &want_dt, &want_pc, &want_cache, &want_streams);
    assert_true(want_streams && !want_cache);
    ap = (jobrule_applied){300, 8, -1, -1, 5, "10.0.1.2", "10.0.1.1"};
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), 0);
    assert_string_equal(why, "max downtime 300 ms, bandwidth 8 MiB/s, 4 parallel connections (5 to 10.0.1.2 from "
                             "10.0.1.1)");
    ap.streams = 1;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "QEMU holds 1 connection to the destination, 4 parallel (and the main one) asked");
    ap.streams = -1;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), -1);
    assert_string_equal(why, "QEMU's connections could not be counted, 4 parallel asked");
    /* one stream: the connections are named when counted, never required */
    o.parallel_connections = 1;
    ap = (jobrule_applied){300, 8, -1, -1, 0, NULL, NULL};
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, why, sizeof(why)), 0);
    assert_string_equal(why, "max downtime 300 ms, bandwidth 8 MiB/s");
    /* a short buffer is cut, never overrun */
    o = (job_opts){.post_copy = 1, .bandwidth_mib_s = 16, .max_downtime_ms = 100};
    ap = (jobrule_applied){100, 16, 16, -1, -1, NULL, NULL};
    char small[12];
    ap.postcopy_bandwidth_mib_s = 16;
    assert_int_equal(jobrule_settings_check(&o, 0, &ap, small, sizeof(small)), 0);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postcopy_after_iterations),
        cmocka_unit_test(test_best_remaining),
        cmocka_unit_test(test_completion_timeout),
        cmocka_unit_test(test_downtime_ramp),
        cmocka_unit_test(test_stall),
        cmocka_unit_test(test_operator_abort),
        cmocka_unit_test(test_force_complete),
        cmocka_unit_test(test_end_of),
        cmocka_unit_test(test_postcopy_paused),
        cmocka_unit_test(test_resume_of),
        cmocka_unit_test(test_settings_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
