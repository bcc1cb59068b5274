/* Unit tests of agentmsg: heartbeats and event keys read strictly, as claims. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agentmsg.h"

static const agentmsg_limits lim = {.max_vcpus = 4096, .max_memory_mb = 16777216, .max_disk_gb = 1048576};

#define U1 "11111111-2222-3333-4444-555555555555"
#define U2 "66666666-7777-8888-9999-000000000000"

/* parses JSON text b as a heartbeat body: 0 (h filled) or -1 (*why set) */
static int parse(const char *text, agentmsg_heartbeat *h, char **why, json_object **keep)
{
    *keep = json_tokener_parse(text);
    assert_non_null(*keep);
    return agentmsg_heartbeat_parse(*keep, &lim, h, why);
}

static void refused(const char *text, const char *reason)
{
    agentmsg_heartbeat h;
    char *why = NULL;
    json_object *o;
    assert_int_equal(parse(text, &h, &why, &o), -1);
    assert_non_null(why);
    if (!strstr(why, reason))
        fail_msg("'%s': reason '%s' does not name '%s'", text, why, reason);
    free(why);
    agentmsg_heartbeat_clear(&h);
    json_object_put(o);
}

static void test_good_heartbeat(void **state)
{
    (void)state;
    agentmsg_heartbeat h;
    char *why = NULL;
    json_object *o;
    assert_int_equal(
        parse("{\"address\":\"169.254.77.11\",\"vcpus\":2,\"memory_mb\":2048,\"disk_gb\":10,\"arch\":\"x86_64\","
              "\"cpu_xml\":\"<cpu>\\n  <model>qemu64</model>\\n</cpu>\",\"postcopy\":true,"
              "\"boot\":\"" U1 "\",\"seq\":7,"
              "\"domains\":[{\"uuid\":\"" U1 "\",\"name\":\"vm1\",\"vcpus\":1,\"memory_mb\":128,"
              "\"state\":\"running\",\"instance_id\":\"i-0000abcd\",\"project\":null}]}",
              &h, &why, &o),
        0);
    assert_string_equal(h.address, "169.254.77.11");
    assert_int_equal(h.vcpus, 2);
    assert_int_equal(h.memory_mb, 2048);
    assert_int_equal(h.seq, 7);
    assert_string_equal(h.boot, U1);
    assert_true(h.postcopy);
    assert_int_equal(h.n_domains, 1);
    assert_null(h.domains[0].bad);
    assert_string_equal(h.domains[0].instance_id, "i-0000abcd");
    assert_null(h.domains[0].project);
    agentmsg_heartbeat_clear(&h);
    agentmsg_heartbeat_clear(&h); /* twice is safe */
    json_object_put(o);
    /* no numbers (an older agent): seq -1 */
    assert_int_equal(parse("{\"vcpus\":1}", &h, &why, &o), 0);
    assert_int_equal(h.seq, -1);
    assert_null(h.boot);
    agentmsg_heartbeat_clear(&h);
    json_object_put(o);
}

static void test_bounds(void **state)
{
    (void)state;
    refused("{\"memory_mb\":4294967296000}", "body.memory_mb: 4294967296000 is outside 0..16777216");
    refused("{\"vcpus\":-1}", "body.vcpus: -1 is outside");
    refused("{\"vcpus\":1e9}", "body.vcpus: not an integer");
    refused("{\"disk_gb\":\"10\"}", "body.disk_gb: not an integer");
    refused("{\"seq\":-5}", "body.seq");
    refused("{\"boot\":\"not-a-uuid\"}", "body.boot: not a UUID");
    refused("{\"postcopy\":1}", "body.postcopy: not a boolean");
    refused("[]", "not an object");
    refused("{\"domains\":{}}", "body.domains: not an array");
    refused("{\"arch\":\"x86_64\\u0000evil\"}", "body.arch");
    refused("{\"cpu_model\":\"a\\nb\"}", "body.cpu_model");
}

static void test_addresses(void **state)
{
    (void)state;
    const char *good[] = {"compute1", "169.254.77.11", "c1.example.com", "c1.example.com:16509",
                          "[::1]",    "[fe80::1]:22",  "a-b.c"};
    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        if (!agentmsg_address_ok(good[i]))
            fail_msg("'%s' refused", good[i]);
    const char *bad[] = {"",           "x/system?command=id&",
                         "host:0",     "host:65536",
                         "host:",      "-a.b",
                         "a-.b",       "a..b",
                         ".a",         "a b",
                         "user@host",  "[::1",
                         "[::1]x",     "[]",
                         "[::g]",      "host%00",
                         "host:22:22", "a;b"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (agentmsg_address_ok(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    char label[80];
    memset(label, 'a', 64);
    label[64] = 0;
    assert_false(agentmsg_address_ok(label)); /* a label of 64 */
    label[63] = 0;
    assert_true(agentmsg_address_ok(label));
    refused("{\"address\":\"x/system?command=touch /tmp/p&\"}", "is not a host name");
}

static void test_bad_domain_alone(void **state)
{
    (void)state;
    agentmsg_heartbeat h;
    char *why = NULL;
    json_object *o;
    assert_int_equal(parse("{\"domains\":["
                           "{\"uuid\":\"" U1 "\",\"name\":\"vm1\",\"instance_id\":\"i-00000001\"},"
                           "{\"uuid\":\"" U2 "\",\"name\":\"vm2\",\"instance_id\":\"i-00000001\"},"
                           "{\"uuid\":\"" U1 "\",\"name\":\"again\"},"
                           "{\"uuid\":\"nope\",\"name\":\"x\"},"
                           "{\"uuid\":\"" U2 "\",\"name\":\"\"},"
                           "{\"uuid\":\"" U2 "\",\"name\":\"big\",\"memory_mb\":99999999999},"
                           "{\"uuid\":\"" U2 "\",\"name\":\"vm2\",\"instance_id\":\"i-XYZ\"},"
                           "42,"
                           "{\"uuid\":\"" U2 "\",\"name\":\"vm2\"}]}",
                           &h, &why, &o),
                     0);
    assert_int_equal(h.n_domains, 9);
    assert_null(h.domains[0].bad);
    assert_non_null(strstr(h.domains[1].bad, "instance_id: i-00000001 also names domain " U1));
    assert_non_null(strstr(h.domains[2].bad, "listed twice"));
    assert_non_null(strstr(h.domains[3].bad, "not a UUID"));
    assert_non_null(strstr(h.domains[4].bad, "name: missing"));
    assert_non_null(strstr(h.domains[5].bad, "domains[5].memory_mb"));
    assert_non_null(strstr(h.domains[6].bad, "is not i- and 8 hex digits"));
    assert_non_null(strstr(h.domains[7].bad, "not an object"));
    assert_null(h.domains[8].bad); /* the bad ones before it do not count as its twins */
    agentmsg_heartbeat_clear(&h);
    json_object_put(o);
}

static void test_keys(void **state)
{
    (void)state;
    char host[64], what[32];
    int64_t id = 0;
    assert_int_equal(agentmsg_parse_key("host.c1.example.com.heartbeat", host, sizeof(host), &id, what, sizeof(what)),
                     AGENTMSG_KEY_HEARTBEAT);
    assert_string_equal(host, "c1.example.com");
    assert_int_equal(agentmsg_parse_key("migration.17.postcopy", host, sizeof(host), &id, what, sizeof(what)),
                     AGENTMSG_KEY_MIGRATION);
    assert_int_equal(id, 17);
    assert_string_equal(what, "postcopy");
    const char *other[] = {"host..heartbeat",        "host.heartbeat",
                           "host.-x.heartbeat",      "host.a b.heartbeat",
                           "migration.0.failed",     "migration.-1.failed",
                           "migration.x.failed",     "migration.17",
                           "migration.17.",          "migration.17.Failed",
                           "migration.17.a.b",       "migration.9999999999999999999.failed",
                           "instance.x.started",     "",
                           "migration.17.progress\n"};
    for (size_t i = 0; i < ARRAY_SIZE(other); i++)
        if (agentmsg_parse_key(other[i], host, sizeof(host), &id, what, sizeof(what)) != AGENTMSG_KEY_OTHER)
            fail_msg("key '%s' parsed", other[i]);
    /* a host name longer than the buffer is not cut into another one */
    char small[4];
    assert_int_equal(agentmsg_parse_key("host.compute1.heartbeat", small, sizeof(small), &id, what, sizeof(what)),
                     AGENTMSG_KEY_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_heartbeat),   cmocka_unit_test(test_bounds), cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_bad_domain_alone), cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
