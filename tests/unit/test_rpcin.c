/* Unit tests of rpcin: the agent's RPC bodies read and checked before a handler acts — the
 * migration fields and the epoch, check_destination's probe name and interface names,
 * pre_live_migration's disk paths, live_migration's destination and address. */
#include "testlib.h"

#include <string.h>

#include "../../compute-agent/rpcin.h"

static const char *const roots[] = {"/var/lib/ferry/instances", "/var/lib/ferry/local"};

#define UUID "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

/* Parses json; fails the test when it is not JSON. Caller puts. */
static json_object *J(const char *json)
{
    json_object *o = json_tokener_parse(json);
    if (!o)
        fail_msg("test JSON does not parse: %s", json);
    return o;
}

/* rc and *err of a call made before (the call is an argument: evaluated before *err is read) */
static void expect_err(int rc, char **err, const char *want)
{
    assert_int_equal(rc, -1);
    assert_non_null(*err);
    if (!strstr(*err, want))
        fail_msg("error '%s' does not say '%s'", *err, want);
    free(*err);
    *err = NULL;
}

static void test_migration_fields(void **state)
{
    (void)state;
    rpcin_mig m;
    char *err = NULL;
    json_object *b = J("{\"migration\":7,\"instance\":\"" UUID "\",\"instance_id\":\"i-0000002a\",\"epoch\":3}");
    assert_int_equal(rpcin_migration(b, &m, &err), 0);
    assert_int_equal(m.migration, 7);
    assert_int_equal(m.epoch, 3);
    assert_string_equal(m.instance, UUID);
    assert_string_equal(m.instance_id, "i-0000002a");
    json_object_put(b);
    b = J("{\"migration\":7,\"instance\":\"" UUID "\",\"instance_id\":\"i-00 x\"}");
    assert_int_equal(rpcin_migration(b, &m, &err), 0);
    assert_int_equal(m.epoch, 0); /* no epoch: 0 */
    assert_null(m.instance_id);   /* not fit for a log field */
    json_object_put(b);

    static const struct {
        const char *body, *want;
    } bad[] = {
        {"{\"instance\":\"" UUID "\"}", "body.migration: missing required field"},
        {"{\"migration\":\"seven\",\"instance\":\"" UUID "\"}", "body.migration: expected int"},
        {"{\"migration\":0,\"instance\":\"" UUID "\"}", "body.migration: must be >= 1"},
        {"{\"migration\":7,\"instance\":\"$(reboot)\"}", "body.instance: not a UUID"},
        {"{\"migration\":7,\"instance\":\"../../etc/passwd\"}", "body.instance: not a UUID"},
        {"{\"migration\":7,\"instance\":\"" UUID "\\u0000x\"}", "body.instance: contains a NUL byte"},
        {"{\"migration\":7,\"instance\":\"" UUID "\",\"epoch\":-1}", "body.epoch: -1 is out of range"},
        {"{\"migration\":7,\"instance\":\"" UUID "\",\"epoch\":\"5\"}", "body.epoch: expected int"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        b = J(bad[i].body);
        err = NULL;
        expect_err(rpcin_migration(b, &m, &err), &err, bad[i].want);
        json_object_put(b);
    }
}

static void test_dirty_rate(void **state)
{
    (void)state;
    const char *inst = NULL;
    int secs = 0;
    char *err = NULL;
    json_object *b = J("{\"instance\":\"" UUID "\"}");
    assert_int_equal(rpcin_dirty_rate(b, &inst, &secs, &err), 0);
    assert_string_equal(inst, UUID);
    assert_int_equal(secs, 1); /* the default period */
    json_object_put(b);
    b = J("{\"instance\":\"" UUID "\",\"seconds\":10}");
    assert_int_equal(rpcin_dirty_rate(b, &inst, &secs, &err), 0);
    assert_int_equal(secs, 10);
    json_object_put(b);
    static const struct {
        const char *body, *want;
    } bad[] = {
        {"{}", "body.instance: missing required field"},
        {"{\"instance\":\"vm1\"}", "body.instance: not a UUID"},
        {"{\"instance\":\"" UUID "\",\"seconds\":0}", "body.seconds: 0 is out of range 1..10"},
        {"{\"instance\":\"" UUID "\",\"seconds\":3600}", "body.seconds: 3600 is out of range 1..10"},
        {"{\"instance\":\"" UUID "\",\"seconds\":\"1\"}", "body.seconds: expected int"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        b = J(bad[i].body);
        expect_err(rpcin_dirty_rate(b, &inst, &secs, &err), &err, bad[i].want);
        json_object_put(b);
    }
}

static void test_check_destination(void **state)
{
    (void)state;
    rpcin_check_dest in;
    char *err = NULL;
    json_object *b =
        J("{\"domain_xml\":\"<domain><devices><interface type='bridge'><source bridge='br-ex'/></interface>"
          "</devices></domain>\",\"memory_mb\":128,\"shared_probe\":\".ferry-probe-7-0a1b2c3d\"}");
    assert_int_equal(rpcin_check_destination(b, 7, &in, &err), 0);
    assert_string_equal(in.probe, ".ferry-probe-7-0a1b2c3d");
    assert_int_equal(in.memory_mb, 128);
    /* the same probe for another migration */
    expect_err(rpcin_check_destination(b, 8, &in, &err), &err,
               "body.shared_probe: probe name .ferry-probe-7-0a1b2c3d is not ferry's probe of migration 8");
    json_object_put(b);

    static const struct {
        const char *body, *want;
    } bad[] = {
        {"{\"domain_xml\":\"<domain/>\",\"memory_mb\":1,\"shared_probe\":\"vm1.qcow2\"}",
         "body.shared_probe: probe name vm1.qcow2 is not ferry's probe of migration 7"},
        {"{\"domain_xml\":\"<domain/>\",\"memory_mb\":1,\"shared_probe\":\"../../etc/passwd\"}",
         "is not ferry's probe"},
        {"{\"domain_xml\":\"<domain/>\",\"memory_mb\":1,\"shared_probe\":\"_base/debian.raw\"}",
         "is not ferry's probe"},
        {"{\"domain_xml\":\"<domain/>\",\"memory_mb\":1,\"shared_probe\":\".ferry-probe-7-0a1b2c3d\\u0000\"}",
         "body.shared_probe: contains a NUL byte"},
        {"{\"domain_xml\":\"<domain><interface><source bridge='../../x'/></interface></domain>\",\"memory_mb\":1}",
         "body.domain_xml: interface 0: bridge name '../../x'"},
        {"{\"domain_xml\":\"<domain><interface><source network='a/b'/></interface></domain>\",\"memory_mb\":1}",
         "body.domain_xml: interface 0: network name 'a/b'"},
        {"{\"domain_xml\":\"\",\"memory_mb\":1}", "body.domain_xml: must not be empty"},
        {"{\"domain_xml\":\"<domain/>\",\"memory_mb\":0}", "body.memory_mb: 0 is out of range"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        b = J(bad[i].body);
        err = NULL;
        expect_err(rpcin_check_destination(b, 7, &in, &err), &err, bad[i].want);
        json_object_put(b);
    }
}

static void test_pre_live_migration(void **state)
{
    (void)state;
    rpcin_pre in;
    char *err = NULL;
    json_object *b =
        J("{\"block_migration\":true,\"disks\":["
          "{\"path\":\"/var/lib/ferry/local/blk1.qcow2\",\"format\":\"qcow2\",\"virtual_size\":67108864},"
          "{\"path\":\"/var/lib/ferry/instances/d/vm1.raw\",\"format\":\"raw\",\"virtual_size\":1,\"shared\":true}]}");
    assert_int_equal(rpcin_pre_live_migration(b, roots, 2, &in, &err), 0);
    assert_int_equal(in.n, 2);
    assert_int_equal(in.disks[0].root, 1);
    assert_string_equal(in.disks[0].rel, "blk1.qcow2");
    assert_true(in.disks[0].create);
    assert_int_equal(in.disks[0].virtual_size, 67108864);
    assert_int_equal(in.disks[1].root, 0);
    assert_string_equal(in.disks[1].rel, "d/vm1.raw");
    assert_string_equal(in.disks[1].format, "raw");
    rpcin_pre_free(&in);
    json_object_put(b);
    /* auto: a shared disk is not made here */
    b = J(
        "{\"block_migration\":\"auto\",\"disks\":[{\"path\":\"/var/lib/ferry/instances/vm1.qcow2\",\"shared\":true}]}");
    assert_int_equal(rpcin_pre_live_migration(b, roots, 2, &in, &err), 0);
    assert_false(in.disks[0].create);
    rpcin_pre_free(&in);
    json_object_put(b);

    static const struct {
        const char *body, *want;
    } bad[] = {
        {"{\"disks\":[{\"path\":\"/etc/passwd\"}]}",
         "body.disks[0].path: path /etc/passwd is outside /var/lib/ferry/instances or /var/lib/ferry/local"},
        {"{\"disks\":[{\"path\":\"/var/lib/ferry/instances/ok\"},{\"path\":\"../x\"}]}",
         "body.disks[1].path: path ../x is not absolute"},
        {"{\"disks\":[{\"path\":\"a/../../x\"}]}", "is not absolute"},
        {"{\"disks\":[{\"path\":\"/var/lib/ferry/instances/../../../etc/cron.d/x\"}]}", "has a '..' component"},
        {"{\"disks\":[{\"path\":\"/var/lib/ferry/instances/a/..\"}]}", "has a '..' component"},
        {"{\"disks\":[{\"path\":\"/var/lib/ferry/instances/ok\\u0000/../../x\"}]}", "contains a NUL byte"},
        {"{\"disks\":[{\"path\":7}]}", "body.disks[0].path: missing or not a string"},
        {"{\"disks\":{}}", "body.disks: expected array"},
        {"{\"block_migration\":true,\"disks\":[{\"path\":\"/var/lib/ferry/local/x\",\"format\":\"vmdk\",\"virtual_size\":1}]}",
         "body.disks[0].format: vmdk is not supported"},
        {"{\"block_migration\":true,\"disks\":[{\"path\":\"/var/lib/ferry/local/x\",\"format\":\"raw\"}]}",
         "body.disks[0].virtual_size: needed"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        b = J(bad[i].body);
        err = NULL;
        expect_err(rpcin_pre_live_migration(b, roots, 2, &in, &err), &err, bad[i].want);
        assert_null(in.disks);
        json_object_put(b);
    }
    /* too many disks */
    json_object *many = json_object_new_array();
    for (int i = 0; i <= RPCIN_MAX_DISKS; i++) {
        json_object *d = json_object_new_object();
        json_object_object_add(d, "path", json_object_new_string("/var/lib/ferry/instances/x"));
        json_object_array_add(many, d);
    }
    b = json_object_new_object();
    json_object_object_add(b, "disks", many);
    err = NULL;
    expect_err(rpcin_pre_live_migration(b, roots, 2, &in, &err), &err, "body.disks: 65 disks, at most 64");
    json_object_put(b);
}

static void test_live_migration(void **state)
{
    (void)state;
    rpcin_live in;
    char *err = NULL;
    json_object *b = J("{\"dest\":\"compute2\",\"dest_address\":\"169.254.77.12\",\"post_copy\":true,"
                       "\"completion_action\":\"postcopy\",\"bandwidth_mib_s\":32}");
    assert_int_equal(rpcin_live_migration(b, "compute1", &in, &err), 0);
    assert_string_equal(in.dest, "compute2");
    assert_string_equal(in.dest_address, "169.254.77.12");
    assert_int_equal(in.o.post_copy, 1);
    assert_int_equal(in.o.completion_postcopy, 1);
    assert_int_equal(in.o.bandwidth_mib_s, 32);
    assert_int_equal(in.o.max_downtime_ms, 300);
    json_object_put(b);
    b = J("{\"dest\":\"compute2\",\"dest_address\":\"[fd00::12]:16509\"}");
    assert_int_equal(rpcin_live_migration(b, "compute1", &in, &err), 0);
    assert_int_equal(in.o.downtime_steps, 0);
    json_object_put(b);
    b = J("{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"downtime_steps\":4,\"downtime_delay_ms\":2000}");
    assert_int_equal(rpcin_live_migration(b, "compute1", &in, &err), 0);
    assert_int_equal(in.o.downtime_steps, 4);
    assert_int_equal(in.o.downtime_delay_ms, 2000);
    assert_int_equal(in.o.parallel_connections, 1);
    assert_int_equal(in.o.xbzrle_cache_mib, 0);
    assert_null(in.dest_migration_address);
    json_object_put(b);
    /* the transport and the migration network */
    b = J("{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"parallel_connections\":4,"
          "\"dest_migration_address\":\"10.9.0.12\"}");
    assert_int_equal(rpcin_live_migration(b, "compute1", &in, &err), 0);
    assert_int_equal(in.o.parallel_connections, 4);
    assert_string_equal(in.dest_migration_address, "10.9.0.12");
    json_object_put(b);
    b = J("{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"xbzrle_cache_mib\":32,"
          "\"dest_migration_address\":\"[fd00::12]\"}");
    assert_int_equal(rpcin_live_migration(b, "compute1", &in, &err), 0);
    assert_int_equal(in.o.xbzrle_cache_mib, 32);
    assert_string_equal(in.dest_migration_address, "[fd00::12]");
    json_object_put(b);

    static const struct {
        const char *body, *want;
    } bad[] = {
        {"{\"dest\":\"compute2\",\"dest_address\":\"x/system?command=id&\"}",
         "body.dest_address: address 'x/system?command=id&' is not a host name"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"compute2:0\"}",
         "body.dest_address: address 'compute2:0' has a port"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"root@compute2\"}", "body.dest_address: address 'root@compute2'"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"compute2\\u0000/x\"}", "body.dest_address: contains a NUL byte"},
        {"{\"dest\":\"compute2/../x\",\"dest_address\":\"compute2\"}", "body.dest: host name 'compute2/../x'"},
        {"{\"dest\":\"compute1\",\"dest_address\":\"compute1\"}", "cannot migrate to compute1: it is this host"},
        {"{\"dest\":\"compute2\"}", "body.dest_address: missing required field"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"completion_action\":\"reboot\"}", "body.completion_action"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"max_downtime_ms\":0}",
         "body.max_downtime_ms: 0 is out of range"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"downtime_steps\":101,\"downtime_delay_ms\":1}",
         "body.downtime_steps: 101 is out of range"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"downtime_steps\":3}",
         "body.downtime_steps and body.downtime_delay_ms: both or neither"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"downtime_delay_ms\":3600001}",
         "body.downtime_delay_ms: 3600001 is out of range"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"parallel_connections\":33}",
         "body.parallel_connections: 33 is out of range"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"xbzrle_cache_mib\":48}",
         "body.xbzrle_cache_mib: 48 is not a power of two"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"xbzrle_cache_mib\":64,\"parallel_connections\":2}",
         "body.xbzrle_cache_mib: xbzrle compresses a single stream, not 2 parallel connections"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"dest_migration_address\":\"10.9.0.12:49152\"}",
         "body.dest_migration_address: an address without a port"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"dest_migration_address\":\"x/system?a\"}",
         "body.dest_migration_address: address 'x/system?a' is not a host name"},
        {"{\"dest\":\"compute2\",\"dest_address\":\"c2\",\"dest_migration_address\":\"\"}",
         "body.dest_migration_address"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        b = J(bad[i].body);
        err = NULL;
        expect_err(rpcin_live_migration(b, "compute1", &in, &err), &err, bad[i].want);
        json_object_put(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migration_fields),  cmocka_unit_test(test_dirty_rate),
        cmocka_unit_test(test_check_destination), cmocka_unit_test(test_pre_live_migration),
        cmocka_unit_test(test_live_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
