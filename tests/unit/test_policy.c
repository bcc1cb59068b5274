/* unit.policy: policy.set bodies read by policy_read (scheduler/policy.c). */
#include "testlib.h"

#include <string.h>

#include "policy.h"

static json_object *J(const char *s)
{
    json_object *o = json_tokener_parse(s);
    assert_non_null(o);
    return o;
}

static void test_full_and_minimal(void **state)
{
    (void)state;
    policy p;
    char *why = NULL;
    json_object *b = J("{\"name\":\"gold.db-1\",\"priority\":10,\"project\":\"admin\",\"instance\":\"db-*\","
                       "\"host\":\"compute?\",\"post_copy\":true,\"options\":{\"auto_converge\":false,"
                       "\"postcopy_after_iterations\":3,\"bandwidth_mib_s\":64,\"max_downtime_ms\":500,"
                       "\"completion_timeout_s\":600},\"objectives\":{\"max_downtime_ms\":200,\"deadline_s\":120}}");
    assert_int_equal(policy_read(b, &p, &why), 0);
    assert_null(why);
    assert_string_equal(p.name, "gold.db-1");
    assert_int_equal(p.priority, 10);
    assert_string_equal(p.project, "admin");
    assert_string_equal(p.instance_glob, "db-*");
    assert_string_equal(p.host_glob, "compute?");
    assert_int_equal(p.post_copy, 1);
    assert_int_equal(p.auto_converge, 0);
    assert_int_equal(p.postcopy_after_iterations, 3);
    assert_int_equal(p.bandwidth_mib_s, 64);
    assert_int_equal(p.max_downtime_ms, 500);
    assert_int_equal(p.completion_timeout_s, 600);
    assert_int_equal(p.objective_max_downtime_ms, 200);
    assert_int_equal(p.objective_deadline_s, 120);
    json_object_put(b);
    /* only the name: every default unset, any instance */
    b = J("{\"name\":\"x\"}");
    assert_int_equal(policy_read(b, &p, &why), 0);
    assert_int_equal(p.priority, 0);
    assert_null(p.project);
    assert_null(p.instance_glob);
    assert_int_equal(p.post_copy, -1);
    assert_int_equal(p.auto_converge, -1);
    assert_int_equal(p.bandwidth_mib_s, -1);
    assert_int_equal(p.objective_deadline_s, -1);
    json_object_put(b);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want;
    } bad[] = {
        {"{}", "body.name"},
        {"[]", "body: expected an object"},
        {"{\"name\":\"Gold\"}", "body.name: a policy name is"},
        {"{\"name\":\"-x\"}", "body.name: a policy name is"},
        {"{\"name\":\"a/b\"}", "body.name: a policy name is"},
        {"{\"name\":\"x\",\"priority\":1001}", "body.priority"},
        {"{\"name\":\"x\",\"colour\":1}", "body.colour: unknown field"},
        {"{\"name\":\"x\",\"options\":{\"speed\":1}}", "body.options.speed: unknown field"},
        {"{\"name\":\"x\",\"options\":[]}", "body.options: expected an object"},
        {"{\"name\":\"x\",\"options\":{\"max_downtime_ms\":0}}", "body.options.max_downtime_ms"},
        {"{\"name\":\"x\",\"objectives\":{\"deadline_s\":0}}", "body.objectives.deadline_s"},
        {"{\"name\":\"x\",\"post_copy\":\"yes\"}", "body.post_copy"},
        {"{\"name\":\"x\",\"post_copy\":null}", "body.post_copy"},
        {"{\"name\":\"x\",\"project\":\"a\\u0001b\"}", "body.project"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        policy p;
        char *why = NULL;
        json_object *b = J(bad[i].body);
        if (policy_read(b, &p, &why) == 0)
            fail_msg("%s: accepted", bad[i].body);
        assert_non_null(why);
        if (strncmp(why, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("%s: got \"%s\", want \"%s...\"", bad[i].body, why, bad[i].want);
        free(why);
        json_object_put(b);
    }
    char long_name[80];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    char *why = NULL;
    assert_int_equal(policy_name_check(long_name, &why), -1);
    free(why);
    long_name[63] = '\0';
    assert_int_equal(policy_name_check(long_name, &why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_and_minimal),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
