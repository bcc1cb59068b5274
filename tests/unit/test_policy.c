/* unit.policy: policy.set bodies read by policy_read (scheduler/policy.c). */
#include "testlib.h"

#include <string.h>

#include "msg.h"
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

/* host group and completion action (issues #18, #19) */
static void test_group_and_action(void **state)
{
    (void)state;
    policy p;
    char *why = NULL;
    json_object *b = J("{\"name\":\"r1\",\"host_group\":\"rack-1\",\"options\":{\"completion_action\":\"pause\"}}");
    assert_int_equal(policy_read(b, &p, &why), 0);
    assert_string_equal(p.host_group, "rack-1");
    assert_int_equal(p.completion_action, MSG_COMPLETION_PAUSE);
    json_object_put(b);
    b = J("{\"name\":\"r1\"}");
    assert_int_equal(policy_read(b, &p, &why), 0);
    assert_null(p.host_group);
    assert_int_equal(p.completion_action, -1);
    json_object_put(b);
    b = J("{\"name\":\"r1\",\"host_group\":\"Rack 1\"}");
    assert_int_equal(policy_read(b, &p, &why), -1);
    assert_string_equal(why,
                        "body.host_group: a host group is 1 to 63 of a-z 0-9 . _ - starting with a letter or digit");
    free(why);
    json_object_put(b);
    b = J("{\"name\":\"r1\",\"options\":{\"completion_action\":\"resume\"}}");
    assert_int_equal(policy_read(b, &p, &why), -1);
    assert_string_equal(why, "body.options.completion_action: expected \"abort\", \"postcopy\" or \"pause\"");
    free(why);
    json_object_put(b);
    /* the transport's defaults, which must combine */
    b = J("{\"name\":\"t1\",\"options\":{\"parallel_connections\":4}}");
    assert_int_equal(policy_read(b, &p, &why), 0);
    assert_int_equal(p.parallel_connections, 4);
    assert_int_equal(p.xbzrle_cache_mib, -1);
    json_object_put(b);
    b = J("{\"name\":\"t1\",\"options\":{\"parallel_connections\":4,\"xbzrle_cache_mib\":64}}");
    assert_int_equal(policy_read(b, &p, &why), -1);
    assert_string_equal(why, "body.options.xbzrle_cache_mib: xbzrle compresses a single stream: not with "
                             "parallel_connections 4");
    free(why);
    json_object_put(b);
    b = J("{\"name\":\"t1\",\"options\":{\"xbzrle_cache_mib\":100}}");
    assert_int_equal(policy_read(b, &p, &why), -1);
    assert_string_equal(why, "body.options.xbzrle_cache_mib: 100 is not a power of two (QEMU's xbzrle cache)");
    free(why);
    json_object_put(b);
}

/* a config with the given [policy] keys (name, key, value triples) */
static void with_kv(ferry_config *c, const char *const *t, size_t n)
{
    memset(c, 0, sizeof(*c));
    c->policy_kv = xcalloc(n, sizeof(*c->policy_kv));
    for (size_t i = 0; i < n; i++)
        c->policy_kv[i] = (cfg_policy_kv){.policy = xstrdup(t[3 * i]),
                                          .key = xstrdup(t[3 * i + 1]),
                                          .value = xstrdup(t[3 * i + 2]),
                                          .line = (int)i + 2};
    c->n_policy_kv = n;
}

/* [policy NAME] sections as policy.set bodies */
static void test_config_bodies(void **state)
{
    (void)state;
    static const char *const good[] = {
        "gold",
        "priority",
        "5",
        "gold",
        "project",
        "admin",
        "gold",
        "post_copy",
        "yes",
        "gold",
        "bandwidth_mib_s",
        "64",
        "gold",
        "objective_deadline_s",
        "120",
        "rack1",
        "host_group",
        "rack1",
        "rack1",
        "completion_action",
        "pause",
    };
    ferry_config c;
    with_kv(&c, good, ARRAY_SIZE(good) / 3);
    json_object *all = NULL;
    char *why = NULL;
    assert_int_equal(policy_config_bodies(&c, &all, &why), 0);
    assert_int_equal(json_object_array_length(all), 2);
    assert_string_equal(json_object_to_json_string_ext(json_object_array_get_idx(all, 0), JSON_C_TO_STRING_PLAIN),
                        "{\"name\":\"gold\",\"priority\":5,\"project\":\"admin\",\"post_copy\":true,"
                        "\"options\":{\"bandwidth_mib_s\":64},\"objectives\":{\"deadline_s\":120}}");
    policy p;
    assert_int_equal(policy_read(json_object_array_get_idx(all, 1), &p, &why), 0);
    assert_string_equal(p.name, "rack1");
    assert_string_equal(p.host_group, "rack1");
    assert_int_equal(p.completion_action, MSG_COMPLETION_PAUSE);
    json_object_put(all);
    cfg_free(&c);
    static const struct {
        const char *kv[3], *want;
    } bad[] = {
        {{"gold", "post_copy", "maybe"}, "[policy gold] post_copy (line 2): 'maybe' is not a boolean"},
        {{"gold", "bandwidth_mib_s", "12x"}, "[policy gold] bandwidth_mib_s (line 2): '12x' is not an integer"},
        {{"gold", "bandwidth_mib_s", "100001"}, "[policy gold] bandwidth_mib_s: 100001 is outside 0..100000"},
        {{"gold", "objective_deadline_s", "0"}, "[policy gold] objective_deadline_s: 0 is outside"},
        {{"Gold", "project", "a"}, "[policy Gold] name: a policy name is"},
        {{"g", "completion_action", "stop"}, "[policy g] completion_action: expected"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        with_kv(&c, bad[i].kv, 1);
        all = NULL;
        why = NULL;
        assert_int_equal(policy_config_bodies(&c, &all, &why), -1);
        assert_null(all);
        if (strncmp(why, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("got \"%s\", want \"%s...\"", why, bad[i].want);
        free(why);
        cfg_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_and_minimal),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_group_and_action),
        cmocka_unit_test(test_config_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
