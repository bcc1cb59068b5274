/* Unit tests of trust: who a broker user is, and what each sender may say. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "trust.h"

static ferry_config cfg;

static int setup(void **state)
{
    (void)state;
    cfg_defaults(&cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cfg_free(&cfg);
    return 0;
}

/* 1 when allowed; the reason (when refused) must be there and name the sender */
static int allowed(int rc, char *why, const char *must_name)
{
    if (rc) {
        assert_null(why);
        return 1;
    }
    assert_non_null(why);
    if (must_name)
        assert_non_null(strstr(why, must_name));
    free(why);
    return 0;
}

static void test_roles(void **state)
{
    (void)state;
    const cfg_trust *t = &cfg.trust;
    char host[64] = "";
    assert_int_equal(trust_role_of(t, NULL, host, sizeof(host)), TRUST_NOBODY);
    assert_int_equal(trust_role_of(t, "", host, sizeof(host)), TRUST_NOBODY);
    assert_int_equal(trust_role_of(t, "ferry-scheduler", host, sizeof(host)), TRUST_SCHEDULER);
    assert_int_equal(trust_role_of(t, "ferry-agent-c1.example.com", host, sizeof(host)), TRUST_AGENT);
    assert_string_equal(host, "c1.example.com");
    /* the prefix alone, or a host name ferry cannot have, is nobody's agent */
    assert_int_equal(trust_role_of(t, "ferry-agent-", host, sizeof(host)), TRUST_OTHER);
    assert_int_equal(trust_role_of(t, "ferry-agent-.x", host, sizeof(host)), TRUST_OTHER);
    assert_int_equal(trust_role_of(t, "ferry-agent-a/b", host, sizeof(host)), TRUST_OTHER);
    /* a host name longer than the caller's buffer is not truncated into another host's */
    char small[4];
    assert_int_equal(trust_role_of(t, "ferry-agent-compute1", small, sizeof(small)), TRUST_OTHER);
    /* operator_users = * : anyone else */
    assert_int_equal(trust_role_of(t, "alice", NULL, 0), TRUST_OPERATOR);
    assert_int_equal(cfg_set(&cfg, "trust", "operator_users", "alice,bob", NULL), 0);
    assert_int_equal(trust_role_of(t, "bob", NULL, 0), TRUST_OPERATOR);
    assert_int_equal(trust_role_of(t, "mallory", NULL, 0), TRUST_OTHER);
    assert_int_equal(trust_role_of(t, "alic", NULL, 0), TRUST_OTHER);
    assert_int_equal(cfg_set(&cfg, "trust", "scheduler_users", "s1,s2", NULL), 0);
    assert_int_equal(trust_role_of(t, "s2", NULL, 0), TRUST_SCHEDULER);
    assert_int_equal(trust_role_of(t, "ferry-scheduler", NULL, 0), TRUST_OTHER);
}

static void test_config_lists(void **state)
{
    (void)state;
    char *err = NULL;
    assert_int_equal(cfg_set(&cfg, "trust", "scheduler_users", "a,,b", &err), -1);
    assert_non_null(strstr(err, "empty user name"));
    free(err);
    err = NULL;
    assert_int_equal(cfg_set(&cfg, "trust", "scheduler_users", "a b", &err), -1);
    free(err);
    err = NULL;
    /* a scheduler is always named: "*" would trust every user with everything */
    assert_int_equal(cfg_set(&cfg, "trust", "scheduler_users", "a,*", &err), -1);
    free(err);
    err = NULL;
    assert_int_equal(cfg_set(&cfg, "trust", "scheduler_users", "*", &err), -1);
    assert_non_null(strstr(err, "name the schedulers"));
    free(err);
    err = NULL;
    assert_int_equal(cfg_set(&cfg, "trust", "operator_users", "*", &err), 0);
}

static void test_requests(void **state)
{
    (void)state;
    const cfg_trust *t = &cfg.trust;
    char *why = NULL;
    int rc;
    assert_true((rc = trust_may_request(t, "ferry-scheduler", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_true((rc = trust_may_request(t, "alice", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_false((rc = trust_may_request(t, "ferry-agent-compute1", &why), allowed(rc, why, "the agent of compute1")));
    why = NULL;
    /* amqp-publish sets no user_id: an operator's by default, refused when configured so */
    assert_true((rc = trust_may_request(t, NULL, &why), allowed(rc, why, NULL)));
    cfg.trust.anonymous_requests = false;
    why = NULL;
    assert_false((rc = trust_may_request(t, NULL, &why), allowed(rc, why, "without user_id")));
}

static void test_agent_calls(void **state)
{
    (void)state;
    const cfg_trust *t = &cfg.trust;
    char *why = NULL;
    int rc;
    assert_true((rc = trust_may_call_agent(t, "ferry-scheduler", "live_migration", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_true((rc = trust_may_call_agent(t, "alice", "ping", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_false((rc = trust_may_call_agent(t, "alice", "rollback", &why), allowed(rc, why, "operators may ping")));
    why = NULL;
    assert_false(
        (rc = trust_may_call_agent(t, "ferry-agent-compute1", "ping", &why), allowed(rc, why, "ferry-agent-compute1")));
    why = NULL;
    assert_false((rc = trust_may_call_agent(t, NULL, "ping", &why), allowed(rc, why, "without user_id")));
}

static void test_hosts_and_migrations(void **state)
{
    (void)state;
    const cfg_trust *t = &cfg.trust;
    char *why = NULL;
    int rc;
    assert_true((rc = trust_may_speak_for_host(t, "ferry-agent-compute1", "compute1", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_false(
        (rc = trust_may_speak_for_host(t, "ferry-agent-compute1", "compute2", &why), allowed(rc, why, "compute2")));
    why = NULL;
    assert_false(
        (rc = trust_may_speak_for_host(t, "ferry-agent-compute1", "compute1.x", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_false((rc = trust_may_speak_for_host(t, "alice", "compute1", &why), allowed(rc, why, "operator")));
    why = NULL;
    assert_true((rc = trust_may_speak_for_host(t, "ferry-scheduler", "compute9", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_true((rc = trust_may_speak_for_migration(t, "ferry-agent-c2", "c2", "c3", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_true((rc = trust_may_speak_for_migration(t, "ferry-agent-c3", "c2", "c3", &why), allowed(rc, why, NULL)));
    why = NULL;
    assert_false(
        (rc = trust_may_speak_for_migration(t, "ferry-agent-c1", "c2", "c3", &why), allowed(rc, why, "from c2 to c3")));
    why = NULL;
    assert_false(
        (rc = trust_may_speak_for_migration(t, "ferry-agent-c1", NULL, NULL, &why), allowed(rc, why, "does not know")));
}

static void test_answer_senders(void **state)
{
    (void)state;
    assert_int_equal(cfg_set(&cfg, "trust", "scheduler_users", "s1,s2", NULL), 0);
    char **l = trust_answer_senders(&cfg.trust, "c1");
    assert_string_equal(l[0], "ferry-agent-c1");
    assert_string_equal(l[1], "s1");
    assert_string_equal(l[2], "s2");
    assert_null(l[3]);
    trust_list_free(l);
    l = trust_answer_senders(&cfg.trust, NULL);
    assert_string_equal(l[0], "s1");
    assert_string_equal(l[1], "s2");
    assert_null(l[2]);
    trust_list_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_and_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_senders, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
