/* unit tests of common/db.c's pure parts: the delay between attempts to reopen a lost
 * PostgreSQL connection (issue #17: while the primary was dead and the standby not yet
 * promoted, every call of every timer reconnected and logged, every ~60 ms) */
#include "testlib.h"

#include <stdint.h>

#include "db_priv.h"

static void test_retry_delay(void **state)
{
    (void)state;
    assert_int_equal(db_retry_delay_ms(0), 0);
    assert_int_equal(db_retry_delay_ms(-3), 0);
    assert_int_equal(db_retry_delay_ms(1), 50);
    assert_int_equal(db_retry_delay_ms(2), 100);
    assert_int_equal(db_retry_delay_ms(5), 800);
    assert_int_equal(db_retry_delay_ms(6), 1600);
    assert_int_equal(db_retry_delay_ms(7), DB_RETRY_MAX_MS);
    /* no overflow however long the outage */
    assert_int_equal(db_retry_delay_ms(40), DB_RETRY_MAX_MS);
    assert_int_equal(db_retry_delay_ms(INT32_MAX), DB_RETRY_MAX_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
