/* Unit tests of proto: RPC codes and migration statuses round-trip through their words. */
#include "testlib.h"

#include <string.h>

#include "proto.h"

static void test_rpc_codes(void **state)
{
    (void)state;
    const char *words[] = {"invalid",  "refused",     "libvirt", "unavailable", "not_found",
                           "conflict", "stale_epoch", "landed",  "internal"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        rpc_code c = rpc_code_from_str(words[i]);
        assert_int_not_equal(c, RPC_UNKNOWN);
        assert_int_not_equal(c, RPC_OK);
        assert_string_equal(rpc_code_str(c), words[i]);
    }
    /* the words RPC.md lists are the ones the agents have always sent */
    assert_int_equal(rpc_code_from_str("stale_epoch"), RPC_STALE_EPOCH);
    assert_int_equal(rpc_code_from_str("unavailable"), RPC_UNAVAILABLE);
    /* nothing else is a code, not even a prefix or another case */
    assert_int_equal(rpc_code_from_str(NULL), RPC_UNKNOWN);
    assert_int_equal(rpc_code_from_str(""), RPC_UNKNOWN);
    assert_int_equal(rpc_code_from_str("Invalid"), RPC_UNKNOWN);
    assert_int_equal(rpc_code_from_str("stale"), RPC_UNKNOWN);
    assert_int_equal(rpc_code_from_str("unknown"), RPC_UNKNOWN);
    assert_string_equal(rpc_code_str(RPC_OK), "");
    assert_string_equal(rpc_code_str((rpc_code)999), "unknown");
}

static void test_statuses(void **state)
{
    (void)state;
    /* the words of migrations.status's CHECK constraint (sql/001_initial.sql) */
    const char *words[] = {"queued",    "scheduled", "preparing", "running",  "completing",
                           "completed", "failed",    "error",     "cancelled"};
    assert_int_equal(sizeof(words) / sizeof(words[0]), MIG_STATUS_COUNT);
    for (size_t i = 0; i < MIG_STATUS_COUNT; i++) {
        mig_status st;
        assert_int_equal(mig_status_from_str(words[i], &st), 0);
        assert_string_equal(mig_status_str(st), words[i]);
        int final = strcmp(words[i], "completed") == 0 || strcmp(words[i], "failed") == 0 ||
                    strcmp(words[i], "error") == 0 || strcmp(words[i], "cancelled") == 0;
        assert_int_equal(mig_status_is_final(st), final);
    }
    mig_status st = MIG_RUNNING;
    assert_int_equal(mig_status_from_str(NULL, &st), -1);
    assert_int_equal(mig_status_from_str("", &st), -1);
    assert_int_equal(mig_status_from_str("Running", &st), -1);
    assert_int_equal(mig_status_from_str("runnin", &st), -1);
    assert_int_equal(st, MIG_RUNNING); /* untouched on failure */
    assert_string_equal(mig_status_str(MIG_STATUS_COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpc_codes),
        cmocka_unit_test(test_statuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
