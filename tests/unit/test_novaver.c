/* Unit tests of scheduler/novaver: Nova microversion headers, ferry's statuses as Nova names
 * them, the os-migrateLive body per microversion, the name filter and server ids. */
#include "testlib.h"

#include <string.h>

#include "novaver.h"

#define assert_err(err, want)                                                                                          \
    do {                                                                                                               \
        assert_non_null(err);                                                                                          \
        if (!strstr((err), (want)))                                                                                    \
            fail_msg("error '%s' does not say '%s'", (err), (want));                                                   \
        free(err);                                                                                                     \
        (err) = NULL;                                                                                                  \
    } while (0)

static void test_microversions(void **state)
{
    (void)state;
    int m = 0;
    char *err = NULL;
    assert_int_equal(novaver_parse(NULL, NULL, &m, &err), NOVAVER_OK);
    assert_int_equal(m, 1);
    assert_int_equal(novaver_parse("2.25", NULL, &m, &err), NOVAVER_OK);
    assert_int_equal(m, 25);
    assert_int_equal(novaver_parse(" latest ", NULL, &m, &err), NOVAVER_OK);
    assert_int_equal(m, NOVAVER_MAX_MINOR);
    /* OpenStack-API-Version wins over the Nova header, and only its compute entry counts */
    assert_int_equal(novaver_parse("2.10", "volume 3.5, compute 2.60", &m, &err), NOVAVER_OK);
    assert_int_equal(m, 60);
    assert_int_equal(novaver_parse("2.10", "volume 3.5", &m, &err), NOVAVER_OK);
    assert_int_equal(m, 10);
    assert_int_equal(novaver_parse(NULL, "compute latest", &m, &err), NOVAVER_OK);
    assert_int_equal(m, NOVAVER_MAX_MINOR);
    assert_int_equal(novaver_parse("2.93", NULL, &m, &err), NOVAVER_OK);
    assert_int_equal(novaver_parse("2.94", NULL, &m, &err), NOVAVER_UNSUPPORTED);
    assert_err(err, "maximum is 2.93");
    assert_int_equal(novaver_parse("2.0", NULL, &m, &err), NOVAVER_UNSUPPORTED);
    assert_err(err, "minimum is 2.1");
    assert_int_equal(novaver_parse("3.1", NULL, &m, &err), NOVAVER_UNSUPPORTED);
    assert_err(err, "not supported");
    assert_int_equal(novaver_parse("2.00001", NULL, &m, &err), NOVAVER_UNSUPPORTED);
    assert_err(err, "not supported");
    assert_int_equal(novaver_parse("two", NULL, &m, &err), NOVAVER_MALFORMED);
    assert_err(err, "invalid format");
    assert_int_equal(novaver_parse("2.", NULL, &m, &err), NOVAVER_MALFORMED);
    assert_err(err, "invalid format");
    assert_int_equal(novaver_parse(".5", NULL, &m, &err), NOVAVER_MALFORMED);
    assert_err(err, "invalid format");
    assert_int_equal(novaver_parse("2.-1", NULL, &m, &err), NOVAVER_MALFORMED);
    assert_err(err, "invalid format");
    assert_int_equal(novaver_parse("", NULL, &m, &err), NOVAVER_MALFORMED);
    assert_err(err, "2.N");
    assert_int_equal(novaver_parse("2.1111111111111111111111", NULL, &m, &err), NOVAVER_MALFORMED);
    assert_err(err, "bytes");
    assert_int_equal(novaver_parse(NULL, "compute 2.x\x01", &m, &err), NOVAVER_MALFORMED);
    assert_err(err, "2.x?");
}

static void test_statuses(void **state)
{
    (void)state;
    static const char *const map[][2] = {
        {"queued", "queued"},       {"scheduled", "preparing"}, {"preparing", "preparing"},
        {"running", "running"},     {"completing", "post-migrating"}, {"completed", "completed"},
        {"failed", "failed"},       {"error", "error"},         {"cancelled", "cancelled"},
        {"something", "error"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        assert_string_equal(novaver_migration_status(map[i][0]), map[i][1]);
    assert_string_equal(novaver_migration_status(NULL), "error");
    assert_true(novaver_migration_in_progress("running"));
    assert_true(novaver_migration_in_progress("completing"));
    assert_false(novaver_migration_in_progress("completed"));
    assert_false(novaver_migration_in_progress("cancelled"));
    assert_false(novaver_migration_in_progress(NULL));
    assert_string_equal(novaver_server_status("running", NULL), "ACTIVE");
    assert_string_equal(novaver_server_status("running", "migrating"), "MIGRATING");
    assert_string_equal(novaver_server_status("error", NULL), "ERROR");
    assert_string_equal(novaver_server_status("stopped", NULL), "SHUTOFF");
    assert_string_equal(novaver_server_status("paused", NULL), "PAUSED");
    assert_string_equal(novaver_server_status("unknown", NULL), "UNKNOWN");
    assert_string_equal(novaver_vm_state("running"), "active");
    assert_string_equal(novaver_vm_state("unknown"), "error");
}

/* Runs novaver_migrate_live on text at 2.minor: the contract as text (caller frees), or NULL
 * with *err. */
static char *migrate(const char *text, int minor, char **err)
{
    json_object *a = json_tokener_parse(text), *c = NULL;
    assert_non_null(a);
    char *out = NULL;
    if (novaver_migrate_live(a, minor, &c, err) == 0) {
        out = strdup(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN));
        json_object_put(c);
    }
    json_object_put(a);
    return out;
}

static void test_migrate_live(void **state)
{
    (void)state;
    char *err = NULL, *c;
    /* 2.1: the three keys required */
    c = migrate("{\"host\": \"h2\", \"block_migration\": false, \"disk_over_commit\": false}", 1, &err);
    assert_string_equal(c, "{\"host\":\"h2\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}");
    free(c);
    c = migrate("{\"host\": null, \"block_migration\": \"True\", \"disk_over_commit\": \"false\", \"post_copy\": true}", 1,
                &err);
    assert_string_equal(c, "{\"host\":null,\"block_migration\":true,\"disk_over_commit\":false,\"post_copy\":true}");
    free(c);
    assert_null(migrate("{\"host\": null, \"block_migration\": false}", 1, &err));
    assert_err(err, "disk_over_commit is a required property");
    assert_null(migrate("{\"host\": null, \"block_migration\": \"auto\", \"disk_over_commit\": false}", 24, &err));
    assert_err(err, "block_migration must be a boolean");
    /* 2.25: "auto", no disk_over_commit */
    c = migrate("{\"host\": null, \"block_migration\": \"auto\"}", 25, &err);
    assert_string_equal(c, "{\"host\":null,\"block_migration\":\"auto\",\"disk_over_commit\":false,\"post_copy\":false}");
    free(c);
    assert_null(migrate("{\"host\": null, \"block_migration\": \"auto\", \"disk_over_commit\": false}", 25, &err));
    assert_err(err, "disk_over_commit is not allowed");
    assert_null(migrate("{\"block_migration\": \"auto\"}", 25, &err));
    assert_err(err, "host is a required property");
    assert_null(migrate("{\"host\": null}", 25, &err));
    assert_err(err, "block_migration is a required property");
    assert_null(migrate("{\"host\": 3, \"block_migration\": true}", 25, &err));
    assert_err(err, "host must be a string or null");
    /* force: 2.30 to 2.67 only, and dropped from the contract */
    c = migrate("{\"host\": \"h2\", \"block_migration\": \"auto\", \"force\": true}", 30, &err);
    assert_string_equal(c, "{\"host\":\"h2\",\"block_migration\":\"auto\",\"disk_over_commit\":false,\"post_copy\":false}");
    free(c);
    assert_null(migrate("{\"host\": \"h2\", \"block_migration\": \"auto\", \"force\": true}", 29, &err));
    assert_err(err, "force is only allowed");
    assert_null(migrate("{\"host\": \"h2\", \"block_migration\": \"auto\", \"force\": true}", 68, &err));
    assert_err(err, "force is only allowed");
    assert_null(migrate("{\"host\": \"h2\", \"block_migration\": \"auto\", \"force\": 1}", 30, &err));
    assert_err(err, "force must be a boolean");
    assert_null(migrate("{\"host\": \"h2\", \"block_migration\": \"auto\", \"evil\": 1}", 30, &err));
    assert_err(err, "additional property evil");
    assert_null(migrate("{\"host\": \"h2\", \"block_migration\": \"auto\", \"post_copy\": \"yes\"}", 30, &err));
    assert_err(err, "post_copy must be a boolean");
    assert_null(migrate("[]", 30, &err));
    assert_err(err, "must be an object");
}

static void test_name_regex(void **state)
{
    (void)state;
    regex_t re;
    char *err = NULL;
    assert_int_equal(novaver_name_regex("^web-[0-9]+$", &re, &err), 0);
    assert_int_equal(regexec(&re, "web-12", 0, NULL, 0), 0);
    assert_int_not_equal(regexec(&re, "xweb-12", 0, NULL, 0), 0);
    regfree(&re);
    assert_int_equal(novaver_name_regex("vm", &re, &err), 0);
    assert_int_equal(regexec(&re, "my-vm1", 0, NULL, 0), 0); /* anywhere in the name, as Nova */
    regfree(&re);
    assert_int_equal(novaver_name_regex("a++", &re, &err), -1);
    assert_err(err, "repeats too much");
    assert_int_equal(novaver_name_regex("a*b*c*d*e*f*g*h*i*", &re, &err), -1);
    assert_err(err, "repeats too much");
    assert_int_equal(novaver_name_regex("(a{30})", &re, &err), -1);
    assert_err(err, "interval bound");
    assert_int_equal(novaver_name_regex("a\\++", &re, &err), 0); /* an escaped + is no operator */
    regfree(&re);
    assert_int_equal(novaver_name_regex("a\x01", &re, &err), -1);
    assert_err(err, "control character");
    assert_int_equal(novaver_name_regex("(open", &re, &err), -1);
    assert_err(err, "not a regular expression");
    char big[NOVAVER_MAX_PATTERN + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(novaver_name_regex(big, &re, &err), -1);
    assert_err(err, "at most 255");
}

static void test_uuid(void **state)
{
    (void)state;
    assert_true(novaver_is_uuid("11111111-1111-1111-1111-11111111abcd"));
    assert_true(novaver_is_uuid("11111111-1111-1111-1111-11111111ABCD"));
    assert_false(novaver_is_uuid("42"));
    assert_false(novaver_is_uuid("vm1"));
    assert_false(novaver_is_uuid("11111111-1111-1111-1111-11111111abcg"));
    assert_false(novaver_is_uuid("11111111111111111111111111111111abcd"));
    assert_false(novaver_is_uuid("11111111-1111-1111-1111-11111111abcde"));
    assert_false(novaver_is_uuid(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_microversions), cmocka_unit_test(test_statuses), cmocka_unit_test(test_migrate_live),
        cmocka_unit_test(test_name_regex),    cmocka_unit_test(test_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
