/* Unit tests of scheduler/orchcore's rules: how a failure before the guest moved ends, decided
 * on the typed cause and the agent's code, never on the reason's text. */
#include "testlib.h"

#include <string.h>

#include "orchcore.h"

static void test_rollback_end_by_cause(void **state)
{
    (void)state;
    assert_int_equal(orchcore_rollback_end(ORCH_CAUSE_FAILURE), MIG_FAILED);
    assert_int_equal(orchcore_rollback_end(ORCH_CAUSE_OPERATOR_ABORT), MIG_CANCELLED);
    assert_int_equal(orchcore_rollback_end(ORCH_CAUSE_JOB_CANCELLED), MIG_CANCELLED);
}

static void test_job_end_cause(void **state)
{
    (void)state;
    /* asked to abort: a job that ends cancelled, or failed (the destination saw the cut stream
     * first), ends for the abort's cause */
    assert_int_equal(orchcore_job_end_cause(JOB_CANCELLED, 1, ORCH_CAUSE_OPERATOR_ABORT), ORCH_CAUSE_OPERATOR_ABORT);
    assert_int_equal(orchcore_job_end_cause(JOB_FAILED, 1, ORCH_CAUSE_OPERATOR_ABORT), ORCH_CAUSE_OPERATOR_ABORT);
    /* a deadline's abort ends failed, whatever the job says */
    assert_int_equal(orchcore_job_end_cause(JOB_CANCELLED, 1, ORCH_CAUSE_FAILURE), ORCH_CAUSE_FAILURE);
    assert_int_equal(orchcore_job_end_cause(JOB_FAILED, 1, ORCH_CAUSE_FAILURE), ORCH_CAUSE_FAILURE);
    /* not asked: a job cancelled on the source (not by ferry) cancels, any other end fails */
    assert_int_equal(orchcore_job_end_cause(JOB_CANCELLED, 0, ORCH_CAUSE_FAILURE), ORCH_CAUSE_JOB_CANCELLED);
    assert_int_equal(orchcore_job_end_cause(JOB_FAILED, 0, ORCH_CAUSE_OPERATOR_ABORT), ORCH_CAUSE_FAILURE);
    assert_int_equal(orchcore_job_end_cause(JOB_STATE_COUNT, 1, ORCH_CAUSE_OPERATOR_ABORT), ORCH_CAUSE_FAILURE);
}

static void test_landed_on_the_code_alone(void **state)
{
    (void)state;
    assert_true(orchcore_landed(MIG_RUNNING, 1, RPC_LANDED));
    /* not rolling back, not running, or another code: not landed */
    assert_false(orchcore_landed(MIG_RUNNING, 0, RPC_LANDED));
    assert_false(orchcore_landed(MIG_PREPARING, 1, RPC_LANDED));
    assert_false(orchcore_landed(MIG_RUNNING, 1, RPC_CONFLICT));
    assert_false(orchcore_landed(MIG_RUNNING, 1, RPC_OK));
    assert_false(orchcore_landed(MIG_RUNNING, 1, rpc_code_from_str("cannot roll back a migration that landed here")));
    assert_true(orchcore_landed(MIG_RUNNING, 1, rpc_code_from_str("landed")));
}

static void test_early_statuses(void **state)
{
    (void)state;
    for (int i = 0; i < MIG_STATUS_COUNT; i++)
        assert_int_equal(orchcore_is_early((mig_status)i), i == MIG_SCHEDULED || i == MIG_PREPARING);
}

/* An agent call without an answer is sent again in 1, 2, 4, 5, 5 ... s, within rpc_retry_s. */
static void test_retry_delays(void **state)
{
    (void)state;
    assert_int_equal(orchcore_retry_in_s(0, 0, 30000), 1);
    assert_int_equal(orchcore_retry_in_s(1, 1000, 30000), 2);
    assert_int_equal(orchcore_retry_in_s(2, 3000, 30000), 4);
    assert_int_equal(orchcore_retry_in_s(3, 7000, 30000), 5);
    assert_int_equal(orchcore_retry_in_s(9, 29999, 30000), 5);
    assert_int_equal(orchcore_retry_in_s(9, 30000, 30000), -1); /* the window is over: failed */
    assert_int_equal(orchcore_retry_in_s(0, 0, 0), -1);         /* rpc_retry_s 0: never again */
}

/* Post-copy recovery (issue #17): only a running migration switched to post-copy whose source
 * reports postcopy_paused recovers; it goes on until postcopy_recovery_s has passed. */
static void test_recovery(void **state)
{
    (void)state;
    assert_true(orchcore_recovers(MIG_RUNNING, 1, JOB_POSTCOPY_PAUSED));
    assert_false(orchcore_recovers(MIG_RUNNING, 0, JOB_POSTCOPY_PAUSED)); /* no switch seen */
    assert_false(orchcore_recovers(MIG_COMPLETING, 1, JOB_POSTCOPY_PAUSED));
    for (int js = 0; js < JOB_STATE_COUNT; js++)
        if (js != JOB_POSTCOPY_PAUSED)
            assert_false(orchcore_recovers(MIG_RUNNING, 1, (job_state)js));
    assert_true(orchcore_recovery_goes_on(1000, 1000, 300000));
    assert_true(orchcore_recovery_goes_on(1000, 300999, 300000));
    assert_false(orchcore_recovery_goes_on(1000, 301000, 300000));
    char *m = orchcore_recovery_error("compute1", "compute2", "i-12345678", 300, "connection refused");
    assert_non_null(strstr(m, "within 300 s"));
    assert_non_null(strstr(m, "last: connection refused"));
    assert_non_null(strstr(m, "compute2 (destination) holds the guest's CPU state and the memory pages it received"));
    assert_non_null(strstr(m, "compute1 (source) holds the rest of its memory"));
    assert_non_null(strstr(m, "--postcopy-resume i-12345678"));
    free(m);
    assert_int_equal(orchcore_recovery_next(1, 0, 0), ORCH_RECOVER_RESUME);
    assert_int_equal(orchcore_recovery_next(0, 1, 0), ORCH_RECOVER_WAIT); /* it may see the break itself */
    assert_int_equal(orchcore_recovery_next(0, 1, ORCH_RECOVER_DEST_WAITS), ORCH_RECOVER_PAUSE_DEST);
    assert_int_equal(orchcore_recovery_next(0, 0, 99), ORCH_RECOVER_WAIT); /* no domain, or not in post-copy */
    m = orchcore_recovery_error("a", "b", "c", 5, NULL);
    assert_null(strstr(m, "last:"));
    free(m);
}

/* The deadline objective's rule: from the second pass, the rest at the net rate against what is
 * left of the deadline; a pass that dirties as fast as it sends never ends. */
static void test_deadline_at_risk(void **state)
{
    (void)state;
    int64_t left = 7;
    const int64_t MiB = 1 << 20;
    /* not judged: no deadline, the first pass, no rate yet */
    assert_int_equal(orchcore_deadline_at_risk(1000, 0, 100 * MiB, 10 * MiB, 0, 3, &left), 0);
    assert_int_equal(orchcore_deadline_at_risk(1000, 60000, 100 * MiB, 10 * MiB, 0, 1, &left), 0);
    assert_int_equal(orchcore_deadline_at_risk(1000, 60000, 100 * MiB, 0, 0, 3, &left), 0);
    /* 64 MiB left at 16 - 8 MiB/s net: 8 s more; after 10 s that is 18 s */
    assert_int_equal(orchcore_deadline_at_risk(10000, 60000, 64 * MiB, 16 * MiB, 8 * MiB, 2, &left), 0);
    assert_int_equal(left, 8000);
    assert_int_equal(orchcore_deadline_at_risk(10000, 17999, 64 * MiB, 16 * MiB, 8 * MiB, 2, &left), 1);
    assert_int_equal(left, 8000);
    assert_int_equal(orchcore_deadline_at_risk(10000, 18000, 64 * MiB, 16 * MiB, 8 * MiB, 2, &left), 0);
    /* dirtying as fast as it sends: never, whatever the deadline */
    assert_int_equal(orchcore_deadline_at_risk(1000, 600000, 64 * MiB, 16 * MiB, 16 * MiB, 2, &left), 1);
    assert_int_equal(left, -1);
    /* the largest figures an agent may send do not overflow */
    assert_int_equal(orchcore_deadline_at_risk(0, INT64_MAX / 2, INT64_C(1) << 56, 1, 0, 2, &left), 1);
    assert_int_equal(left, -1);
    assert_int_equal(orchcore_deadline_at_risk(0, 1000, (INT64_C(1) << 56) - 1, INT64_C(1) << 56, 0, 2, &left), 0);
    assert_true(left >= 0 && left <= 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollback_end_by_cause),
        cmocka_unit_test(test_job_end_cause),
        cmocka_unit_test(test_landed_on_the_code_alone),
        cmocka_unit_test(test_deadline_at_risk),
        cmocka_unit_test(test_early_statuses),
        cmocka_unit_test(test_retry_delays),
        cmocka_unit_test(test_recovery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
