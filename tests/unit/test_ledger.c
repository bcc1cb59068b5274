/* Unit tests of scheduler/ledger's pure part: how long a migration may stay in each status.
 * Its writes (events, outbox, settling, cancelling a queued migration) run against PostgreSQL
 * in the integration tests. */
#include "testlib.h"

#include <string.h>

#include "ledger.h"

static void test_deadline_per_status(void **state)
{
    (void)state;
    ferry_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.scheduler.deadline_queued_s = 11;
    cfg.scheduler.deadline_preparing_s = 22;
    cfg.scheduler.deadline_running_s = 33;
    cfg.scheduler.deadline_completing_s = 44;
    sched s = {.cfg = &cfg};
    assert_int_equal(ledger_deadline_s(&s, MIG_QUEUED), 11);
    /* scheduled and preparing share deadline_preparing_s */
    assert_int_equal(ledger_deadline_s(&s, MIG_SCHEDULED), 22);
    assert_int_equal(ledger_deadline_s(&s, MIG_PREPARING), 22);
    assert_int_equal(ledger_deadline_s(&s, MIG_RUNNING), 33);
    assert_int_equal(ledger_deadline_s(&s, MIG_COMPLETING), 44);
    /* the final statuses have none of their own (a finished row's deadline is cleared) */
    assert_int_equal(ledger_deadline_s(&s, MIG_COMPLETED), 22);
    assert_int_equal(ledger_deadline_s(&s, MIG_CANCELLED), 22);
}

static void test_no_status_is_no_word(void **state)
{
    (void)state;
    /* an event recorded without a status: out of mig_status's range, never a word */
    assert_int_equal(LEDGER_NO_STATUS, MIG_STATUS_COUNT);
    mig_status st;
    assert_int_equal(mig_status_from_str(mig_status_str(LEDGER_NO_STATUS), &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_per_status),
        cmocka_unit_test(test_no_status_is_no_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
