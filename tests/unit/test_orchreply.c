/* Unit tests of orchreply: agents' RPC replies and migration events' stats, read strictly.
 * The good shapes are the ones compute-agent/rpcmig.c, rpc.c, job.c and jobstats.c send. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "orchreply.h"

/* Reads JSON text as the reply to m: 0 with *r filled or -1 with *why; *keep owns the body. */
static int rd(orchreply_method m, const char *text, orchreply *r, char **why, json_object **keep)
{
    *keep = json_tokener_parse(text);
    assert_non_null(*keep);
    *why = NULL;
    return orchreply_read(m, *keep, r, why);
}

/* text as the reply to m is accepted: *r filled; returns the body (release both with done()). */
static json_object *accepted(orchreply_method m, const char *text, orchreply *r)
{
    char *why;
    json_object *o;
    if (rd(m, text, r, &why, &o) != 0)
        fail_msg("%s reply '%.200s' refused: %s", orchreply_method_str(m), text, why);
    return o;
}

static void done(orchreply *r, json_object *o)
{
    orchreply_clear(r);
    json_object_put(o);
}

/* text as the reply to m is refused with a reason that holds reason. */
static void refused(orchreply_method m, const char *text, const char *reason)
{
    orchreply r;
    char *why = NULL;
    json_object *o;
    assert_int_equal(rd(m, text, &r, &why, &o), -1);
    assert_non_null(why);
    if (!strstr(why, reason))
        fail_msg("%s reply '%.200s': reason '%s' does not hold '%s'", orchreply_method_str(m), text, why, reason);
    /* a refusal leaves nothing to free and nothing believed */
    assert_null(r.error);
    assert_null(r.job.error);
    assert_null(r.src.disks);
    assert_null(r.ann.detail);
    assert_int_equal(r.ok, 0);
    free(why);
    json_object_put(o);
}

/* A string of n times c, JSON-quoted (caller frees). */
static char *long_string(size_t n, char c)
{
    char *s = malloc(n + 3);
    s[0] = '"';
    memset(s + 1, c, n);
    s[n + 1] = '"';
    s[n + 2] = 0;
    return s;
}

/* ---- replies of the agents as they are -------------------------------------------------------- */

static void test_check_source(void **state)
{
    (void)state;
    orchreply r;
    json_object *o;
    /* rpcmig.c check_source_dom, with two disks from domxml_disks */
    o = accepted(
        ORCHREPLY_CHECK_SOURCE,
        "{\"ok\":true,\"shared_probe\":\".ferry-probe-41-0a1b2c3d\",\"domain_xml\":\"<domain type='kvm'>\\n"
        "<name>vm1</name></domain>\",\"name\":\"vm1\",\"memory_mb\":2048,\"vcpus\":2,\"disks\":["
        "{\"path\":\"/var/lib/ferry/instances/vm1/disk\",\"format\":\"qcow2\",\"target\":\"vda\",\"shared\":true,"
        "\"virtual_size\":10737418240},{\"path\":\"/var/lib/ferry/local/vm1/data\",\"format\":\"raw\","
        "\"target\":\"vdb\",\"shared\":false}],\"disks_shared\":false,\"instances_path\":\"/var/lib/ferry/instances\"}",
        &r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.method, ORCHREPLY_CHECK_SOURCE);
    assert_string_equal(r.src.domain_xml, "<domain type='kvm'>\n<name>vm1</name></domain>");
    assert_int_equal(r.src.memory_mb, 2048);
    assert_string_equal(r.src.shared_probe, ".ferry-probe-41-0a1b2c3d");
    assert_non_null(r.src.disks);
    assert_string_equal(
        json_object_to_json_string_ext(r.src.disks, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        "[{\"path\":\"/var/lib/ferry/instances/vm1/disk\",\"format\":\"qcow2\",\"target\":\"vda\","
        "\"shared\":true,\"virtual_size\":10737418240},{\"path\":\"/var/lib/ferry/local/vm1/data\","
        "\"format\":\"raw\",\"target\":\"vdb\",\"shared\":false}]");
    orchreply_clear(&r);
    orchreply_clear(&r); /* twice is safe */
    json_object_put(o);

    /* no probe (it could not be written), no disks */
    o = accepted(ORCHREPLY_CHECK_SOURCE, "{\"ok\":true,\"domain_xml\":\"<domain/>\",\"memory_mb\":0}", &r);
    assert_null(r.src.shared_probe);
    assert_null(r.src.disks);
    assert_int_equal(r.src.memory_mb, 0);
    done(&r, o);

    /* junk in a disk is not passed on to the destination */
    o = accepted(ORCHREPLY_CHECK_SOURCE,
                 "{\"ok\":true,\"domain_xml\":\"<domain/>\",\"memory_mb\":1,\"disks\":[{\"path\":\"/p\","
                 "\"evil\":{\"deep\":[1,2,3]}}]}",
                 &r);
    assert_string_equal(
        json_object_to_json_string_ext(r.src.disks, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        "[{\"path\":\"/p\"}]");
    done(&r, o);
}

static void test_check_source_hostile(void **state)
{
    (void)state;
    const orchreply_method m = ORCHREPLY_CHECK_SOURCE;
    refused(m, "{\"ok\":true,\"memory_mb\":1}", "body.domain_xml: missing");
    refused(m, "{\"ok\":true,\"domain_xml\":null,\"memory_mb\":1}", "body.domain_xml: expected string, got null");
    refused(m, "{\"ok\":true,\"domain_xml\":\"\",\"memory_mb\":1}", "body.domain_xml: empty");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d>\\u0000</d>\",\"memory_mb\":1}",
            "body.domain_xml: holds a control byte (0x00 at 3)");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d>\\u0007</d>\",\"memory_mb\":1}",
            "body.domain_xml: holds a control byte (0x07 at 3)");
    refused(m, "{\"ok\":true,\"domain_xml\":{\"a\":1},\"memory_mb\":1}",
            "body.domain_xml: expected string, got object");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\"}", "body.memory_mb: missing");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":-1}", "body.memory_mb: -1 is outside 0..1073741824");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1073741825}",
            "body.memory_mb: 1073741825 is outside 0..1073741824");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":18446744073709551615}",
            "body.memory_mb: 18446744073709551615 is outside");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1.5}",
            "body.memory_mb: expected integer, got float");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":\"2048\"}",
            "body.memory_mb: expected integer, got string");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"shared_probe\":\"a\\nb\"}",
            "body.shared_probe: holds a control byte (0x0a at 1)");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":{}}",
            "body.disks: expected array, got object");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[7]}",
            "body.disks[0]: expected object, got integer");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[{\"path\":\"/a\"},{}]}",
            "body.disks[1].path: missing");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[{\"path\":\"\"}]}",
            "body.disks[0].path: empty");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[{\"path\":\"/a\\u0000b\"}]}",
            "body.disks[0].path: holds a control byte (0x00 at 2)");
    refused(m, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[{\"path\":\"/a\",\"shared\":1}]}",
            "body.disks[0].shared: expected boolean, got integer");
    refused(m,
            "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[{\"path\":\"/a\",\"virtual_size\":-5}]}",
            "body.disks[0].virtual_size: -5 is outside 0..72057594037927936");
    /* 65 disks */
    char *t = malloc(65 * 16 + 128);
    char *p = t + sprintf(t, "{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[");
    for (int i = 0; i < 65; i++)
        p += sprintf(p, "%s{\"path\":\"/%d\"}", i ? "," : "", i);
    strcpy(p, "]}");
    refused(m, t, "body.disks: 65 disks, at most 64");
    free(t);
    /* a path longer than 4096 bytes */
    _cleanup_free_ char *big = long_string(4097, 'a');
    _cleanup_free_ char *bt =
        xasprintf("{\"ok\":true,\"domain_xml\":\"<d/>\",\"memory_mb\":1,\"disks\":[{\"path\":%s}]}", big);
    refused(m, bt, "body.disks[0].path: 4097 bytes, at most 4096");
}

static void test_check_destination(void **state)
{
    (void)state;
    orchreply r;
    json_object *o;
    /* rpcmig.c check_destination_conn */
    o = accepted(ORCHREPLY_CHECK_DESTINATION,
                 "{\"ok\":true,\"free_memory_mb\":7000,\"cpu\":\"identical\",\"shared_storage\":true,"
                 "\"address\":\"169.254.77.12\"}",
                 &r);
    assert_int_equal(r.dst.shared_storage, 1);
    assert_string_equal(r.dst.address, "169.254.77.12");
    done(&r, o);
    o = accepted(ORCHREPLY_CHECK_DESTINATION, "{\"ok\":true,\"shared_storage\":false}", &r);
    assert_int_equal(r.dst.shared_storage, 0);
    assert_null(r.dst.address); /* absent: the address the database has stays */
    done(&r, o);
    o = accepted(ORCHREPLY_CHECK_DESTINATION, "{\"ok\":true,\"shared_storage\":false,\"address\":\"[fd00::2]:16509\"}",
                 &r);
    assert_string_equal(r.dst.address, "[fd00::2]:16509");
    done(&r, o);

    const orchreply_method m = ORCHREPLY_CHECK_DESTINATION;
    /* no silent "not shared" (it would switch block migration on) */
    refused(m, "{\"ok\":true}", "body.shared_storage: missing");
    refused(m, "{\"ok\":true,\"shared_storage\":null}", "body.shared_storage: expected boolean, got null");
    refused(m, "{\"ok\":true,\"shared_storage\":\"yes\"}", "body.shared_storage: expected boolean, got string");
    refused(m, "{\"ok\":true,\"shared_storage\":true,\"address\":\"x/system?command=id&\"}",
            "body.address: 'x/system?command=id&' is not a host name or IP address");
    refused(m, "{\"ok\":true,\"shared_storage\":true,\"address\":\"\"}", "body.address: '' is not a host name");
    refused(m, "{\"ok\":true,\"shared_storage\":true,\"address\":42}", "body.address: expected string, got integer");
    _cleanup_free_ char *big = long_string(256, 'a');
    _cleanup_free_ char *bt = xasprintf("{\"ok\":true,\"shared_storage\":true,\"address\":%s}", big);
    refused(m, bt, "body.address: 256 bytes, at most 255");
}

static void test_job_status(void **state)
{
    (void)state;
    orchreply r;
    json_object *o;
    /* a running job (job.c job_status_json merged into rpcmig.c's reply) */
    o = accepted(ORCHREPLY_JOB_STATUS,
                 "{\"ok\":true,\"migration\":41,\"instance\":\"11111111-2222-3333-4444-555555555555\","
                 "\"state\":\"running\",\"postcopy\":false,\"adopted\":false,\"dest\":\"compute2\","
                 "\"stats\":{\"time_elapsed_ms\":1200,\"memory_total\":1073741824,\"bandwidth_mib_s\":117.5},"
                 "\"domain\":{\"exists\":true,\"state\":\"running\",\"reason\":1,\"persistent\":true}}",
                 &r);
    assert_int_equal(r.job.state, JOB_RUNNING);
    assert_string_equal(r.job.word, "running");
    assert_int_equal(r.job.postcopy, 0);
    assert_null(r.job.error);
    assert_int_equal(r.job.dom_exists, 1);
    assert_int_equal(r.job.dom_running, 1);
    assert_int_equal(r.job.dom_persistent, 1);
    done(&r, o);
    /* failed with libvirt's text on two lines */
    o = accepted(ORCHREPLY_JOB_STATUS,
                 "{\"ok\":true,\"state\":\"failed\",\"postcopy\":true,\"error\":\"internal error: qemu "
                 "unexpectedly closed the monitor:\\n2026-01-01 load of migration failed\\t\","
                 "\"domain\":{\"exists\":true,\"state\":\"paused\",\"persistent\":true}}",
                 &r);
    assert_int_equal(r.job.state, JOB_FAILED);
    assert_int_equal(r.job.postcopy, 1);
    assert_string_equal(r.job.error,
                        "internal error: qemu unexpectedly closed the monitor: 2026-01-01 load of migration failed ");
    assert_int_equal(r.job.dom_running, 0);
    done(&r, o);
    /* no job, no domain (a source whose agent restarted; the guest left it) */
    o = accepted(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":false}}", &r);
    assert_int_equal(r.job.state, JOB_NONE);
    assert_int_equal(r.job.dom_exists, 0);
    assert_int_equal(r.job.dom_running, 0);
    done(&r, o);
    /* completed, cancelled; without domain */
    o = accepted(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"completed\"}", &r);
    assert_int_equal(r.job.state, JOB_COMPLETED);
    assert_int_equal(r.job.dom_exists, 0);
    done(&r, o);
    o = accepted(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"cancelled\"}", &r);
    assert_int_equal(r.job.state, JOB_CANCELLED);
    done(&r, o);
    /* a word this scheduler does not know: defined, JOB_STATE_COUNT (the job ended, failed) */
    o = accepted(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"migrating_v2\"}", &r);
    assert_int_equal(r.job.state, JOB_STATE_COUNT);
    assert_string_equal(r.job.word, "migrating_v2");
    done(&r, o);
    /* exists false but "running": not running */
    o = accepted(ORCHREPLY_JOB_STATUS,
                 "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":false,\"state\":\"running\"}}", &r);
    assert_int_equal(r.job.dom_running, 0);
    done(&r, o);
}

static void test_job_status_hostile(void **state)
{
    (void)state;
    const orchreply_method m = ORCHREPLY_JOB_STATUS;
    /* the crash of issue #13: a JSON null went to job_state_from_str and the log */
    refused(m, "{\"ok\":true,\"state\":null}", "body.state: expected string, got null");
    /* no silent "none" (it would restart or re-route the migration) */
    refused(m, "{\"ok\":true}", "body.state: missing");
    refused(m, "{\"ok\":true,\"state\":7}", "body.state: expected string, got integer");
    refused(m, "{\"ok\":true,\"state\":[\"running\"]}", "body.state: expected string, got array");
    refused(m, "{\"ok\":true,\"state\":\"\"}", "body.state: '' is not a word");
    refused(m, "{\"ok\":true,\"state\":\"Running\"}", "body.state: 'Running' is not a word");
    refused(m, "{\"ok\":true,\"state\":\"run\\u001bning\"}", "body.state: holds a control byte (0x1b at 3)");
    _cleanup_free_ char *big = long_string(100000, 'r');
    _cleanup_free_ char *bt = xasprintf("{\"ok\":true,\"state\":%s}", big);
    refused(m, bt, "body.state: 100000 bytes, at most 32");
    refused(m, "{\"ok\":true,\"state\":\"running\",\"postcopy\":\"true\"}",
            "body.postcopy: expected boolean, got string");
    refused(m, "{\"ok\":true,\"state\":\"running\",\"postcopy\":null}", "body.postcopy: expected boolean, got null");
    refused(m, "{\"ok\":true,\"state\":\"failed\",\"error\":null}", "body.error: expected string, got null");
    refused(m, "{\"ok\":true,\"state\":\"failed\",\"error\":{\"x\":1}}", "body.error: expected string, got object");
    refused(m, "{\"ok\":true,\"state\":\"none\",\"domain\":null}", "body.domain: expected object, got null");
    refused(m, "{\"ok\":true,\"state\":\"none\",\"domain\":true}", "body.domain: expected object, got boolean");
    /* the crash of issue #13: strcmp(NULL, "running") */
    refused(m, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":true,\"state\":null}}",
            "body.domain.state: expected string, got null");
    refused(m, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":\"yes\"}}",
            "body.domain.exists: expected boolean, got string");
    refused(m, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":true,\"state\":\"running\",\"persistent\":1}}",
            "body.domain.persistent: expected boolean, got integer");
    refused(m, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":true,\"state\":{\"running\":true}}}",
            "body.domain.state: expected string, got object");
}

static void test_long_error_is_cut(void **state)
{
    (void)state;
    orchreply r;
    json_object *o;
    _cleanup_free_ char *big = long_string(60000, 'e');
    _cleanup_free_ char *t = xasprintf("{\"ok\":true,\"state\":\"failed\",\"error\":%s}", big);
    o = accepted(ORCHREPLY_JOB_STATUS, t, &r);
    assert_int_equal(strlen(r.job.error), ORCHREPLY_MAX_TEXT + 3);
    assert_string_equal(r.job.error + ORCHREPLY_MAX_TEXT, "...");
    done(&r, o);
    /* cut on a character's boundary: 2047 ASCII bytes, then a 3-byte character */
    char *s = malloc(ORCHREPLY_MAX_TEXT + 16);
    memset(s, 'x', ORCHREPLY_MAX_TEXT - 1);
    strcpy(s + ORCHREPLY_MAX_TEXT - 1, "\xe2\x82\xac tail");
    char *p = orchreply_printable(s, strlen(s), ORCHREPLY_MAX_TEXT);
    assert_int_equal(strlen(p), ORCHREPLY_MAX_TEXT - 1 + 3);
    assert_string_equal(p + ORCHREPLY_MAX_TEXT - 1, "...");
    free(p);
    free(s);
    /* a NUL inside is a space, as every control byte */
    p = orchreply_printable("a\0b\x7f"
                            "c\r\n",
                            7, 100);
    assert_string_equal(p, "a b c  ");
    free(p);
}

static void test_error_replies(void **state)
{
    (void)state;
    orchreply r;
    json_object *o;
    /* rpc.c reply_error */
    o = accepted(ORCHREPLY_ROLLBACK,
                 "{\"ok\":false,\"error\":\"domain vm1 runs on compute2 (running): cannot roll back a migration "
                 "that landed here\",\"code\":\"landed\"}",
                 &r);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.code, RPC_LANDED);
    assert_string_equal(r.error,
                        "domain vm1 runs on compute2 (running): cannot roll back a migration that landed here");
    done(&r, o);
    o = accepted(ORCHREPLY_JOB_STATUS, "{\"ok\":false,\"error\":\"no libvirt\",\"code\":\"unavailable\"}", &r);
    assert_int_equal(r.code, RPC_UNAVAILABLE);
    done(&r, o);
    o = accepted(ORCHREPLY_CHECK_SOURCE, "{\"ok\":false,\"error\":\"stale epoch 4\",\"code\":\"stale_epoch\"}", &r);
    assert_int_equal(r.code, RPC_STALE_EPOCH);
    done(&r, o);
    /* an error reply's method fields are not read */
    o = accepted(ORCHREPLY_CHECK_DESTINATION, "{\"ok\":false,\"code\":\"refused\",\"shared_storage\":null}", &r);
    assert_int_equal(r.code, RPC_REFUSED);
    assert_string_equal(r.error, "failed"); /* no text: the default */
    done(&r, o);
    /* no code or a code this build does not know: RPC_UNKNOWN, a plain failure */
    o = accepted(ORCHREPLY_ABORT, "{\"ok\":false,\"error\":\"x\"}", &r);
    assert_int_equal(r.code, RPC_UNKNOWN);
    done(&r, o);
    o = accepted(ORCHREPLY_ABORT, "{\"ok\":false,\"error\":\"x\",\"code\":\"newer_code\"}", &r);
    assert_int_equal(r.code, RPC_UNKNOWN);
    done(&r, o);

    refused(ORCHREPLY_ABORT, "{}", "body.ok: missing");
    refused(ORCHREPLY_ABORT, "{\"ok\":null}", "body.ok: expected boolean, got null");
    refused(ORCHREPLY_ABORT, "{\"ok\":\"false\"}", "body.ok: expected boolean, got string");
    refused(ORCHREPLY_ABORT, "{\"ok\":1}", "body.ok: expected boolean, got integer");
    refused(ORCHREPLY_ROLLBACK, "{\"ok\":false,\"code\":null}", "body.code: expected string, got null");
    refused(ORCHREPLY_ROLLBACK, "{\"ok\":false,\"code\":[\"landed\"]}", "body.code: expected string, got array");
    refused(ORCHREPLY_ROLLBACK, "{\"ok\":false,\"code\":\"LANDED\"}", "body.code: 'LANDED' is not a word");
    refused(ORCHREPLY_ROLLBACK, "{\"ok\":false,\"code\":\"landed\",\"error\":5}",
            "body.error: expected string, got integer");
    refused(ORCHREPLY_ROLLBACK, "[]", "body: expected object, got array");
    refused(ORCHREPLY_METHOD_COUNT, "{\"ok\":true}", "no reply is known for method");
}

static void test_other_methods(void **state)
{
    (void)state;
    orchreply r;
    json_object *o;
    /* replies whose success is all the orchestration reads */
    static const struct {
        orchreply_method m;
        const char *body;
    } ok[] = {
        {ORCHREPLY_PRE_LIVE_MIGRATION, "{\"ok\":true,\"created\":[\"/var/lib/ferry/local/vm1/data\"]}"},
        {ORCHREPLY_LIVE_MIGRATION, "{\"ok\":true,\"started\":true,\"job\":{\"ok\":true,\"state\":\"running\"}}"},
        {ORCHREPLY_ABORT, "{\"ok\":true,\"aborted\":true}"},
        {ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"running\":true,\"persistent\":true}"},
        {ORCHREPLY_ROLLBACK, "{\"ok\":true,\"removed\":[],\"undefined\":false}"},
        {ORCHREPLY_ROLLBACK, "{\"ok\":true,\"removed\":null,\"undefined\":{\"deep\":[[[]]]}}"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        o = accepted(ok[i].m, ok[i].body, &r);
        assert_int_equal(r.ok, 1);
        assert_int_equal(r.method, ok[i].m);
        done(&r, o);
    }
    o = accepted(ORCHREPLY_FORCE_COMPLETE, "{\"ok\":true,\"action\":\"postcopy\"}", &r);
    assert_int_equal(r.fc_action, ORCHREPLY_FC_POSTCOPY);
    done(&r, o);
    o = accepted(ORCHREPLY_FORCE_COMPLETE, "{\"ok\":true,\"action\":\"paused\"}", &r);
    assert_int_equal(r.fc_action, ORCHREPLY_FC_PAUSED);
    done(&r, o);
    refused(ORCHREPLY_FORCE_COMPLETE, "{\"ok\":true}", "body.action: missing");
    refused(ORCHREPLY_FORCE_COMPLETE, "{\"ok\":true,\"action\":null}", "body.action: expected string, got null");
    refused(ORCHREPLY_FORCE_COMPLETE, "{\"ok\":true,\"action\":\"reboot\"}",
            "body.action: 'reboot' is neither postcopy nor paused");
    assert_string_equal(orchreply_method_str(ORCHREPLY_JOB_STATUS), "job_status");
    assert_string_equal(orchreply_method_str(ORCHREPLY_METHOD_COUNT), "?");
}

/* post_live_migration's announce (compute-agent/rpcmig.c, announce.c) */
static void test_post_announce(void **state)
{
    (void)state;
    orchreply r;
    json_object *o = accepted(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"running\":true}", &r);
    assert_int_equal(r.ann.state, ORCHREPLY_ANN_NOT_REPORTED);
    assert_null(r.ann.detail);
    done(&r, o);
    o = accepted(ORCHREPLY_POST_LIVE_MIGRATION,
                 "{\"ok\":true,\"running\":true,\"persistent\":true,\"announce\":{\"state\":\"seen\","
                 "\"detail\":\"52:54:00:fe:b1:01 on vnet0 of ferrybr0 (learned 0.00 s ago)\"}}",
                 &r);
    assert_int_equal(r.ann.state, ORCHREPLY_ANN_SEEN);
    assert_string_equal(r.ann.detail, "52:54:00:fe:b1:01 on vnet0 of ferrybr0 (learned 0.00 s ago)");
    assert_string_equal(orchreply_announce_str(r.ann.state), "seen");
    done(&r, o);
    /* a detail on several lines is made one line; no detail is NULL */
    o = accepted(ORCHREPLY_POST_LIVE_MIGRATION,
                 "{\"ok\":true,\"announce\":{\"state\":\"not_seen\",\"detail\":\"a\\nb\"}}", &r);
    assert_int_equal(r.ann.state, ORCHREPLY_ANN_NOT_SEEN);
    assert_string_equal(r.ann.detail, "a b");
    done(&r, o);
    o = accepted(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"announce\":{\"state\":\"unknown\"}}", &r);
    assert_int_equal(r.ann.state, ORCHREPLY_ANN_UNKNOWN);
    assert_null(r.ann.detail);
    done(&r, o);
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"announce\":null}",
            "body.announce: expected object, got null");
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"announce\":\"seen\"}",
            "body.announce: expected object, got string");
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"announce\":{}}", "body.announce.state: missing");
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"announce\":{\"state\":\"not_reported\"}}",
            "body.announce.state: 'not_reported' is none of seen, not_seen, unknown");
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"announce\":{\"state\":\"seen\",\"detail\":7}}",
            "body.announce.detail: expected string, got int");
    assert_string_equal(orchreply_announce_str((orchreply_announce)99), "?");
}

/* post_live_migration's stats (the destination's completed incoming job) and resume_postcopy's
 * answer (issue #17) */
static void test_post_stats_and_resume(void **state)
{
    (void)state;
    orchreply r;
    json_object *o = accepted(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"running\":true}", &r);
    assert_false(r.has_dest_stats);
    assert_int_equal(r.dest_stats.downtime_ms, -1);
    done(&r, o);
    o = accepted(ORCHREPLY_POST_LIVE_MIGRATION,
                 "{\"ok\":true,\"stats\":{\"memory_total\":134217728,\"memory_processed\":9000,"
                 "\"downtime_ms\":12,\"type\":\"completed\"}}",
                 &r);
    assert_true(r.has_dest_stats);
    assert_int_equal(r.dest_stats.memory_total, 134217728);
    assert_int_equal(r.dest_stats.memory_processed, 9000);
    assert_int_equal(r.dest_stats.downtime_ms, 12);
    assert_int_equal(r.dest_stats.memory_remaining, -1);
    done(&r, o);
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"stats\":[]}", "body.stats: expected object, got array");
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"stats\":{\"downtime_ms\":-1}}", "downtime_ms");
    refused(ORCHREPLY_POST_LIVE_MIGRATION, "{\"ok\":true,\"stats\":{\"memory_total\":\"1\"}}", "memory_total");

    o = accepted(ORCHREPLY_RESUME_POSTCOPY, "{\"ok\":true,\"resume\":\"started\"}", &r);
    assert_int_equal(r.resume, ORCHREPLY_RESUME_STARTED);
    done(&r, o);
    o = accepted(ORCHREPLY_RESUME_POSTCOPY, "{\"ok\":true,\"resume\":\"under_way\",\"job\":{}}", &r);
    assert_int_equal(r.resume, ORCHREPLY_RESUME_UNDER_WAY);
    done(&r, o);
    o = accepted(ORCHREPLY_RESUME_POSTCOPY, "{\"ok\":true,\"resume\":\"completed\"}", &r);
    assert_int_equal(r.resume, ORCHREPLY_RESUME_COMPLETED);
    done(&r, o);
    refused(ORCHREPLY_RESUME_POSTCOPY, "{\"ok\":true}", "body.resume: missing");
    refused(ORCHREPLY_RESUME_POSTCOPY, "{\"ok\":true,\"resume\":\"maybe\"}",
            "body.resume: 'maybe' is none of started, under_way, completed");
    refused(ORCHREPLY_RESUME_POSTCOPY, "{\"ok\":true,\"resume\":1}", "body.resume: expected string, got int");
    /* a refusal is read with its typed code */
    o = accepted(ORCHREPLY_RESUME_POSTCOPY, "{\"ok\":false,\"code\":\"not_paused\",\"error\":\"running\"}", &r);
    assert_int_equal(r.code, RPC_NOT_PAUSED);
    done(&r, o);
    /* job_status's new state */
    o = accepted(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"postcopy_paused\",\"postcopy\":true}", &r);
    assert_int_equal(r.job.state, JOB_POSTCOPY_PAUSED);
    done(&r, o);
    assert_string_equal(orchreply_method_str(ORCHREPLY_RESUME_POSTCOPY), "resume_postcopy");
    assert_string_equal(orchreply_method_str(ORCHREPLY_PAUSE_POSTCOPY), "pause_postcopy");
    /* the destination's post-copy, as job_status's domain says it */
    o = accepted(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":true,\"state\":\"running\"}}", &r);
    assert_int_equal(r.job.dom_postcopy, ORCHREPLY_DOM_POSTCOPY_NONE);
    done(&r, o);
    o = accepted(ORCHREPLY_JOB_STATUS,
                 "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":true,\"state\":\"running\",\"postcopy\":\"failed\"}}", &r);
    assert_int_equal(r.job.dom_postcopy, ORCHREPLY_DOM_POSTCOPY_FAILED);
    done(&r, o);
    o = accepted(ORCHREPLY_JOB_STATUS,
                 "{\"ok\":true,\"state\":\"none\",\"domain\":{\"exists\":true,\"postcopy\":\"active\"}}", &r);
    assert_int_equal(r.job.dom_postcopy, ORCHREPLY_DOM_POSTCOPY_ACTIVE);
    done(&r, o);
    refused(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"postcopy\":\"maybe\"}}",
            "body.domain.postcopy: 'maybe' is neither active nor failed");
    refused(ORCHREPLY_JOB_STATUS, "{\"ok\":true,\"state\":\"none\",\"domain\":{\"postcopy\":true}}",
            "body.domain.postcopy: expected string, got boolean");
}

/* ---- events --------------------------------------------------------------------------------- */

static int ev_rd(const char *what, const char *text, orchreply_event *ev, char **why, json_object **keep)
{
    *keep = json_tokener_parse(text);
    assert_non_null(*keep);
    *why = NULL;
    return orchreply_event_read(what, *keep, ev, why);
}

/* text as the event what is accepted: *ev filled; returns the body (release both with ev_done()). */
static void test_dirty_rate(void **state)
{
    (void)state;
    orchreply r;
    json_object *o = accepted(ORCHREPLY_DIRTY_RATE,
                              "{\"ok\":true,\"dirty_rate_mib_s\":56,\"memory_mib\":128,\"mode\":\"page-sampling\"}", &r);
    assert_int_equal(r.dirty.mib_s, 56);
    assert_int_equal(r.dirty.memory_mib, 128);
    orchreply_clear(&r);
    json_object_put(o);
    refused(ORCHREPLY_DIRTY_RATE, "{\"ok\":true,\"memory_mib\":128}", "body.dirty_rate_mib_s");
    refused(ORCHREPLY_DIRTY_RATE, "{\"ok\":true,\"dirty_rate_mib_s\":-5,\"memory_mib\":128}",
            "body.dirty_rate_mib_s");
    refused(ORCHREPLY_DIRTY_RATE, "{\"ok\":true,\"dirty_rate_mib_s\":5,\"memory_mib\":0}", "body.memory_mib");
    refused(ORCHREPLY_DIRTY_RATE, "{\"ok\":true,\"dirty_rate_mib_s\":null,\"memory_mib\":128}",
            "body.dirty_rate_mib_s");
    refused(ORCHREPLY_DIRTY_RATE, "{\"ok\":true,\"dirty_rate_mib_s\":5,\"memory_mib\":99999999999}",
            "body.memory_mib");
}

static json_object *ev_accepted(const char *what, const char *text, orchreply_event *ev)
{
    char *why;
    json_object *o;
    if (ev_rd(what, text, ev, &why, &o) != 0)
        fail_msg("%s event '%.200s' refused: %s", what, text, why);
    return o;
}

static void ev_done(orchreply_event *ev, json_object *o)
{
    orchreply_event_clear(ev);
    json_object_put(o);
}

static void ev_refused(const char *what, const char *text, const char *reason)
{
    orchreply_event ev;
    char *why;
    json_object *o;
    assert_int_equal(ev_rd(what, text, &ev, &why, &o), -1);
    assert_non_null(why);
    if (!strstr(why, reason))
        fail_msg("%s event '%.200s': reason '%s' does not hold '%s'", what, text, why, reason);
    assert_null(ev.error);
    free(why);
    json_object_put(o);
}

static void test_events(void **state)
{
    (void)state;
    orchreply_event ev;
    json_object *o;
    /* job.c's progress, with jobstats.c's keys */
    o = ev_accepted("progress",
                    "{\"at\":\"2026-01-01T00:00:00.000Z\",\"host\":\"compute1\",\"origin\":\"agent\","
                    "\"migration\":41,\"instance\":\"11111111-2222-3333-4444-555555555555\",\"stats\":{"
                    "\"time_elapsed_ms\":1500,\"memory_total\":2147483648,\"memory_processed\":1073741824,"
                    "\"memory_remaining\":1073741824,\"iteration\":2,\"dirty_rate\":12,\"bandwidth_mib_s\":"
                    "117.25,\"job_type\":2}}",
                    &ev);
    assert_int_equal(ev.kind, ORCHREPLY_EV_PROGRESS);
    assert_string_equal(ev.host, "compute1");
    assert_int_equal(ev.has_stats, 1);
    assert_int_equal(ev.stats.memory_total, 2147483648LL);
    assert_int_equal(ev.stats.memory_processed, 1073741824LL);
    assert_int_equal(ev.stats.memory_remaining, 1073741824LL);
    assert_int_equal(ev.stats.iteration, 2);
    assert_int_equal(ev.stats.downtime_ms, -1);
    assert_int_equal(ev.stats.dirty_pages_s, 12);
    assert_int_equal(ev.stats.memory_bps, -1); /* absent */
    ev_done(&ev, o);
    /* completed with final stats */
    o = ev_accepted("completed",
                    "{\"host\":\"compute1\",\"dest\":\"compute2\",\"stats\":{\"time_elapsed_ms\":5000,"
                    "\"downtime_ms\":48,\"memory_processed\":3221225472,\"memory_total\":2147483648}}",
                    &ev);
    assert_int_equal(ev.kind, ORCHREPLY_EV_ENDED);
    assert_int_equal(ev.ended, JOB_COMPLETED);
    assert_null(ev.error);
    assert_int_equal(ev.stats.downtime_ms, 48);
    assert_int_equal(ev.stats.iteration, -1);
    assert_int_equal(ev.stats.dirty_pages_s, -1);
    ev_done(&ev, o);
    /* failed with an error, no stats */
    o = ev_accepted("failed", "{\"host\":\"compute1\",\"error\":\"operation failed:\\njob cancelled\"}", &ev);
    assert_int_equal(ev.ended, JOB_FAILED);
    assert_string_equal(ev.error, "operation failed: job cancelled");
    assert_int_equal(ev.has_stats, 0);
    assert_int_equal(ev.stats.memory_total, -1);
    orchreply_event_clear(&ev);
    ev_done(&ev, o);
    o = ev_accepted("cancelled", "{}", &ev);
    assert_int_equal(ev.ended, JOB_CANCELLED);
    assert_null(ev.host);
    ev_done(&ev, o);
    o = ev_accepted("postcopy", "{\"host\":\"compute1\",\"iteration\":\"not read\"}", &ev);
    assert_int_equal(ev.kind, ORCHREPLY_EV_POSTCOPY);
    ev_done(&ev, o);
    /* kinds the scheduler does not act on are not read */
    o = ev_accepted("running", "{\"stats\":null,\"host\":7}", &ev);
    assert_int_equal(ev.kind, ORCHREPLY_EV_OTHER);
    json_object_put(o);
    o = ev_accepted("none", "{\"stats\":null}", &ev);
    assert_int_equal(ev.kind, ORCHREPLY_EV_OTHER);
    json_object_put(o);
}

static void test_events_hostile(void **state)
{
    (void)state;
    ev_refused("progress", "{\"stats\":{\"memory_total\":-1}}",
               "body.stats.memory_total: -1 is outside 0..72057594037927936");
    ev_refused("progress", "{\"stats\":{\"memory_processed\":72057594037927937}}",
               "body.stats.memory_processed: 72057594037927937 is outside");
    ev_refused("progress", "{\"stats\":{\"memory_remaining\":\"5\"}}",
               "body.stats.memory_remaining: expected integer, got string");
    ev_refused("progress", "{\"stats\":{\"iteration\":2147483648}}",
               "body.stats.iteration: 2147483648 is outside 0..2147483647");
    ev_refused("progress", "{\"stats\":{\"iteration\":null}}", "body.stats.iteration: expected integer, got null");
    ev_refused("progress", "{\"stats\":{\"iteration\":1e300}}", "body.stats.iteration: expected integer, got float");
    ev_refused("progress", "{\"stats\":null}", "body.stats: expected object, got null");
    ev_refused("progress", "{\"stats\":[1,2]}", "body.stats: expected object, got array");
    ev_refused("completed", "{\"stats\":{\"downtime_ms\":-48}}",
               "body.stats.downtime_ms: -48 is outside 0..2147483647");
    ev_refused("completed", "{\"stats\":{\"downtime_ms\":99999999999999999999999}}",
               "body.stats.downtime_ms: 18446744073709551615 is outside 0..2147483647");
    ev_refused("failed", "{\"error\":null}", "body.error: expected string, got null");
    ev_refused("failed", "{\"error\":[\"x\"]}", "body.error: expected string, got array");
    ev_refused("postcopy", "{\"host\":\"compute1;rm -rf\"}", "body.host: 'compute1;rm -rf' is not a host name");
    ev_refused("progress", "{\"host\":\"c1\\n\"}", "body.host: holds a control byte (0x0a at 2)");
    ev_refused("progress", "{\"host\":null}", "body.host: expected string, got null");
    ev_refused("completed", "[]", "body: expected object, got array");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_source),
        cmocka_unit_test(test_check_source_hostile),
        cmocka_unit_test(test_check_destination),
        cmocka_unit_test(test_job_status),
        cmocka_unit_test(test_job_status_hostile),
        cmocka_unit_test(test_long_error_is_cut),
        cmocka_unit_test(test_error_replies),
        cmocka_unit_test(test_other_methods),
        cmocka_unit_test(test_post_announce),
        cmocka_unit_test(test_post_stats_and_resume),
        cmocka_unit_test(test_dirty_rate),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_events_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
