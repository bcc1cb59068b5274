/* Unit tests of msg: the envelope, the migration request contract and the replies. */
#include "testlib.h"

#include <string.h>

#include "msg.h"

#define REQ_ID "6f1c1e8a-3b7d-4c2e-9a51-0d2f7b9c4e10"

/* The ORBIT API payload exactly as the seed (004) writes it, trailing comma included. */
static const char orbit_body[] = "{\n"
                                 "    \"os-migrateLive\": {\n"
                                 "        \"host\": \"...\",\n"
                                 "        \"block_migration\": false,\n"
                                 "        \"disk_over_commit\": false,\n"
                                 "        \"post_copy\": false,\n"
                                 "    }\n"
                                 "  }";

/* The seed's os-migrateLive object on its own (same text, trailing comma included). */
static const char orbit_live[] = "{\n"
                                 "        \"host\": \"...\",\n"
                                 "        \"block_migration\": false,\n"
                                 "        \"disk_over_commit\": false,\n"
                                 "        \"post_copy\": false,\n"
                                 "    }";

static char *envelope_of(const char *type, const char *body)
{
    return xasprintf("{\"v\":1,\"type\":\"%s\",\"id\":\"" REQ_ID
                     "\",\"sent_at\":\"2024-05-01T10:00:00.000Z\",\"body\":%s}",
                     type, body);
}

/* A request envelope around body; caller frees. */
static char *req_json(const char *body)
{
    return envelope_of(MSG_TYPE_REQUEST, body);
}

/* A request body with instance vm1, the given os-migrateLive text and options text (NULL:
 * no options key); caller frees. */
static char *req_body(const char *live, const char *options)
{
    if (options)
        return xasprintf("{\"instance\":\"vm1\",\"os-migrateLive\":%s,\"options\":%s}", live, options);
    return xasprintf("{\"instance\":\"vm1\",\"os-migrateLive\":%s}", live);
}

static const char live_ok[] = "{\"host\":\"compute2\",\"block_migration\":false,"
                              "\"disk_over_commit\":false,\"post_copy\":false}";

static msg_envelope *parse_ok(const char *json)
{
    msg_envelope *env = NULL;
    char *err = NULL;
    int rc = msg_parse(json, strlen(json), &env, &err);
    if (rc != 0)
        fail_msg("msg_parse failed on %s: %s", json, err);
    assert_null(err);
    assert_non_null(env);
    return env;
}

/* msg_parse of json fails with exactly want. */
static void expect_parse_err_len(const char *json, size_t len, const char *want)
{
    msg_envelope *env = (msg_envelope *)0x1;
    char *err = NULL;
    assert_int_equal(msg_parse(json, len, &env, &err), -1);
    assert_ptr_equal(env, (msg_envelope *)0x1); /* untouched on failure */
    assert_non_null(err);
    if (strcmp(err, want) != 0)
        fail_msg("got reason \"%s\", want \"%s\"", err, want);
    free(err);
}

static void expect_parse_err(const char *json, const char *want)
{
    expect_parse_err_len(json, strlen(json), want);
}

/* msg_request_parse of a request envelope around body fails with exactly want. */
static void expect_req_err(const char *body, const char *want)
{
    _cleanup_free_ char *json = req_json(body);
    msg_envelope *env = parse_ok(json);
    msg_request req = {.instance = (char *)"untouched"};
    char *err = NULL;
    assert_int_equal(msg_request_parse(env, NULL, &req, &err), -1);
    assert_string_equal(req.instance, "untouched");
    assert_non_null(err);
    if (strcmp(err, want) != 0)
        fail_msg("body %s: got reason \"%s\", want \"%s\"", body, err, want);
    free(err);
    msg_envelope_free(env);
}

static void expect_opts_err(const char *options, const char *want)
{
    _cleanup_free_ char *body = req_body(live_ok, options);
    expect_req_err(body, want);
}

static void expect_live_err(const char *live, const char *want)
{
    _cleanup_free_ char *body = req_body(live, NULL);
    expect_req_err(body, want);
}

static void parse_req_ok(const char *body, const msg_request_defaults *defs, msg_request *req)
{
    _cleanup_free_ char *json = req_json(body);
    msg_envelope *env = parse_ok(json);
    char *err = NULL;
    if (msg_request_parse(env, defs, req, &err) != 0)
        fail_msg("msg_request_parse failed on %s: %s", body, err);
    assert_null(err);
    msg_envelope_free(env);
}

/* ---- the seed -------------------------------------------------------------------------- */

static void test_orbit_seed_body(void **state)
{
    (void)state;
    /* The seed payload verbatim as the body: the envelope parses, and the request check
     * asks for the one thing the API takes from its URL instead, the instance. */
    _cleanup_free_ char *json = req_json(orbit_body);
    msg_envelope *env = parse_ok(json);
    json_object *live = NULL;
    assert_true(json_object_object_get_ex(msg_envelope_body(env), "os-migrateLive", &live));
    json_object *pc = NULL;
    assert_true(json_object_object_get_ex(live, "post_copy", &pc));
    assert_true(json_object_is_type(pc, json_type_boolean));
    msg_request req;
    char *err = NULL;
    assert_int_equal(msg_request_parse(env, NULL, &req, &err), -1);
    assert_string_equal(err, "body.instance: missing required field");
    free(err);
    msg_envelope_free(env);

    /* With the instance added, the seed's os-migrateLive (trailing comma and all) is a
     * request. */
    _cleanup_free_ char *body = xasprintf("{\"instance\": \"i-0000002a\", \"os-migrateLive\": %s}", orbit_live);
    msg_request r;
    parse_req_ok(body, NULL, &r);
    assert_string_equal(r.instance, "i-0000002a");
    assert_int_equal(r.instance_kind, MSG_INSTANCE_EC2);
    assert_string_equal(r.host, "...");
    assert_int_equal(r.block_migration, MSG_BLOCK_NO);
    assert_false(r.disk_over_commit);
    assert_false(r.post_copy);
    assert_string_equal(r.id, REQ_ID);
    msg_request_free(&r);

    /* The same trailing comma in an array is accepted too; a lone comma is not. */
    _cleanup_free_ char *j2 = req_json("{\"x\":[1,2,],}");
    msg_envelope_free(parse_ok(j2));
    _cleanup_free_ char *j3 = req_json("{\"x\":[,]}");
    _cleanup_free_ char *want3 =
        xasprintf("invalid JSON at byte %td: unexpected character", strstr(j3, "[,]") - j3 + 1);
    expect_parse_err(j3, want3);
}

/* ---- valid requests ------------------------------------------------------------------- */

static void test_full_request(void **state)
{
    (void)state;
    const char *body = "{\"instance\": \"web-01\","
                       " \"os-migrateLive\": {\"host\": \"compute3\", \"block_migration\": true,"
                       "                      \"disk_over_commit\": true, \"post_copy\": true},"
                       " \"options\": {\"auto_converge\": true, \"postcopy_after_iterations\": 3,"
                       "               \"bandwidth_mib_s\": 500, \"max_downtime_ms\": 1000,"
                       "               \"completion_timeout_s\": 3600, \"completion_action\": \"pause\","
                       "               \"parallel_connections\": 4, \"xbzrle_cache_mib\": 0}}";
    msg_request r;
    parse_req_ok(body, NULL, &r);
    assert_int_equal(r.options.completion_action, MSG_COMPLETION_PAUSE);
    assert_int_equal(r.options.parallel_connections, 4);
    assert_int_equal(r.options.xbzrle_cache_mib, 0);
    assert_true(r.options_given & MSG_OPT_PARALLEL);
    assert_true(r.options_given & MSG_OPT_XBZRLE_CACHE);
    assert_string_equal(r.id, REQ_ID);
    assert_string_equal(r.instance, "web-01");
    assert_int_equal(r.instance_kind, MSG_INSTANCE_NAME);
    assert_string_equal(r.host, "compute3");
    assert_int_equal(r.block_migration, MSG_BLOCK_YES);
    assert_true(r.disk_over_commit);
    assert_true(r.post_copy);
    assert_true(r.options.auto_converge);
    assert_int_equal(r.options.postcopy_after_iterations, 3);
    assert_int_equal(r.options.bandwidth_mib_s, 500);
    assert_int_equal(r.options.max_downtime_ms, 1000);
    assert_int_equal(r.options.completion_timeout_s, 3600);
    assert_int_equal(r.options_given, MSG_OPT_AUTO_CONVERGE | MSG_OPT_POSTCOPY_AFTER | MSG_OPT_BANDWIDTH |
                                          MSG_OPT_MAX_DOWNTIME | MSG_OPT_COMPLETION_TIMEOUT |
                                          MSG_OPT_COMPLETION_ACTION | MSG_OPT_PARALLEL | MSG_OPT_XBZRLE_CACHE);
    msg_request_free(&r);
    assert_null(r.instance);
    msg_request_free(NULL);

    /* Range edges are inclusive. */
    msg_request e;
    _cleanup_free_ char *lo = req_body(live_ok, "{\"postcopy_after_iterations\":1,\"bandwidth_mib_s\":0,"
                                                "\"max_downtime_ms\":1,\"completion_timeout_s\":0}");
    parse_req_ok(lo, NULL, &e);
    assert_int_equal(e.options.max_downtime_ms, 1);
    msg_request_free(&e);
    _cleanup_free_ char *hi = req_body(live_ok, "{\"postcopy_after_iterations\":1000,\"bandwidth_mib_s\":100000,"
                                                "\"max_downtime_ms\":600000,\"completion_timeout_s\":86400}");
    parse_req_ok(hi, NULL, &e);
    assert_int_equal(e.options.postcopy_after_iterations, 1000);
    assert_int_equal(e.options.bandwidth_mib_s, 100000);
    assert_int_equal(e.options.max_downtime_ms, 600000);
    assert_int_equal(e.options.completion_timeout_s, 86400);
    msg_request_free(&e);
}

static void test_defaults(void **state)
{
    (void)state;
    msg_request_defaults builtin;
    msg_request_defaults_init(&builtin);
    assert_false(builtin.auto_converge);
    assert_int_equal(builtin.postcopy_after_iterations, 1);
    assert_int_equal(builtin.bandwidth_mib_s, 0);
    assert_int_equal(builtin.max_downtime_ms, 300);
    assert_int_equal(builtin.completion_timeout_s, 0);
    char *err = NULL;
    assert_int_equal(msg_options_check(&builtin, "defaults", &err), 0);
    assert_null(err);

    msg_request_defaults defs = {.auto_converge = true,
                                 .postcopy_after_iterations = 5,
                                 .bandwidth_mib_s = 250,
                                 .max_downtime_ms = 800,
                                 .completion_timeout_s = 60};
    /* No options at all, and only host in os-migrateLive. */
    msg_request r;
    parse_req_ok("{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":null}}", &defs, &r);
    assert_null(r.host);
    assert_int_equal(r.block_migration, MSG_BLOCK_NO);
    assert_false(r.disk_over_commit);
    assert_false(r.post_copy);
    assert_true(r.options.auto_converge);
    assert_int_equal(r.options.postcopy_after_iterations, 5);
    assert_int_equal(r.options.bandwidth_mib_s, 250);
    assert_int_equal(r.options.max_downtime_ms, 800);
    assert_int_equal(r.options.completion_timeout_s, 60);
    assert_int_equal(r.options_given, 0);
    msg_request_free(&r);

    /* defs NULL: the built-in defaults. */
    parse_req_ok("{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":null}}", NULL, &r);
    assert_false(r.options.auto_converge);
    assert_int_equal(r.options.postcopy_after_iterations, 1);
    assert_int_equal(r.options.max_downtime_ms, 300);
    msg_request_free(&r);

    /* Some options given, the rest from defs; "auto" block migration. */
    _cleanup_free_ char *body =
        req_body("{\"host\":\"compute2\",\"block_migration\":\"auto\"}", "{\"max_downtime_ms\":50}");
    parse_req_ok(body, &defs, &r);
    assert_int_equal(r.block_migration, MSG_BLOCK_AUTO);
    assert_int_equal(r.options.max_downtime_ms, 50);
    assert_int_equal(r.options.postcopy_after_iterations, 5);
    assert_true(r.options.auto_converge);
    assert_int_equal(r.options_given, MSG_OPT_MAX_DOWNTIME);
    msg_request_free(&r);

    /* An empty options object is fine. */
    _cleanup_free_ char *b2 = req_body(live_ok, "{}");
    parse_req_ok(b2, &defs, &r);
    assert_int_equal(r.options.bandwidth_mib_s, 250);
    msg_request_free(&r);

    /* Config defaults out of range are caught by msg_options_check. */
    defs.max_downtime_ms = 0;
    assert_int_equal(msg_options_check(&defs, "defaults", &err), -1);
    assert_string_equal(err, "defaults.max_downtime_ms: 0 is out of range 1..600000");
    free(err);
}

/* ---- missing and mistyped fields ------------------------------------------------------- */

static void test_missing_fields(void **state)
{
    (void)state;
    expect_req_err("{\"os-migrateLive\":{\"host\":null}}", "body.instance: missing required field");
    expect_req_err("{\"instance\":\"vm1\"}", "body.os-migrateLive: missing required field");
    expect_req_err("{\"instance\":\"vm1\",\"os-migrateLive\":{\"post_copy\":true}}",
                   "body.os-migrateLive.host: missing required field");

    expect_parse_err("{\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{}}", "v: missing required field");
    expect_parse_err("{\"v\":1,\"id\":\"" REQ_ID "\",\"body\":{}}", "type: missing required field");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"body\":{}}", "id: missing required field");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\"}", "body: missing required field");
    /* sent_at is optional. */
    msg_envelope *env = parse_ok("{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{}}");
    assert_null(msg_envelope_sent_at(env));
    assert_string_equal(msg_envelope_type(env), "t");
    msg_envelope_free(env);
}

static void test_mistyped_envelope(void **state)
{
    (void)state;
    expect_parse_err("{\"v\":2,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{}}", "unsupported message version 2");
    /* A newer version is refused for its version, not for the fields it may add. */
    expect_parse_err("{\"v\":2,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{},\"extra\":1}",
                     "unsupported message version 2");
    expect_parse_err("{\"v\":\"1\",\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{}}",
                     "v: expected integer, got string");
    expect_parse_err("{\"v\":1.0,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{}}", "v: expected integer, got float");
    expect_parse_err("{\"v\":true,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{}}",
                     "v: expected integer, got boolean");
    expect_parse_err("{\"v\":0,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{}}", "unsupported message version 0");
    expect_parse_err("{\"v\":1,\"type\":7,\"id\":\"" REQ_ID "\",\"body\":{}}", "type: expected string, got integer");
    expect_parse_err("{\"v\":1,\"type\":\"\",\"id\":\"" REQ_ID "\",\"body\":{}}", "type: must not be empty");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":42,\"body\":{}}", "id: expected string, got integer");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":\"req-1\",\"body\":{}}", "id: not a UUID");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\\u0000x\",\"body\":{}}", "id: not a UUID");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"sent_at\":5,\"body\":{}}",
                     "sent_at: expected string, got integer");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":[]}", "body: expected object, got array");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":null}", "body: expected object, got null");

    /* Upper-case ids are accepted and given back in lower case. */
    msg_envelope *env =
        parse_ok("{\"v\":1,\"type\":\"t\",\"id\":\"6F1C1E8A-3B7D-4C2E-9A51-0D2F7B9C4E10\",\"body\":{}}");
    assert_string_equal(msg_envelope_id(env), REQ_ID);
    msg_envelope_free(env);
}

static void test_mistyped_request(void **state)
{
    (void)state;
    static const char *const ints[] = {"postcopy_after_iterations", "bandwidth_mib_s", "max_downtime_ms",
                                       "completion_timeout_s"};
    static const struct {
        const char *value, *type;
    } bad_ints[] = {{"\"1\"", "string"}, {"1.5", "float"}, {"1.0", "float"}, {"true", "boolean"},
                    {"null", "null"},    {"[1]", "array"}, {"{}", "object"}, {"NaN", "float"}};
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
        for (size_t j = 0; j < ARRAY_SIZE(bad_ints); j++) {
            _cleanup_free_ char *opts = xasprintf("{\"%s\":%s}", ints[i], bad_ints[j].value);
            _cleanup_free_ char *want =
                xasprintf("body.options.%s: expected integer, got %s", ints[i], bad_ints[j].type);
            expect_opts_err(opts, want);
        }
    }
    expect_opts_err("{\"auto_converge\":\"true\"}", "body.options.auto_converge: expected boolean, got string");
    expect_opts_err("{\"auto_converge\":1.5}", "body.options.auto_converge: expected boolean, got float");
    expect_opts_err("{\"auto_converge\":1}", "body.options.auto_converge: expected boolean, got integer");
    expect_opts_err("{\"auto_converge\":null}", "body.options.auto_converge: expected boolean, got null");

    expect_live_err("{\"host\":null,\"post_copy\":\"true\"}",
                    "body.os-migrateLive.post_copy: expected boolean, got string");
    expect_live_err("{\"host\":null,\"post_copy\":1}", "body.os-migrateLive.post_copy: expected boolean, got integer");
    expect_live_err("{\"host\":null,\"disk_over_commit\":\"false\"}",
                    "body.os-migrateLive.disk_over_commit: expected boolean, got string");
    expect_live_err("{\"host\":5}", "body.os-migrateLive.host: expected string or null, got integer");
    expect_live_err("{\"host\":false}", "body.os-migrateLive.host: expected string or null, got boolean");
    expect_live_err("{\"host\":null,\"block_migration\":\"maybe\"}",
                    "body.os-migrateLive.block_migration: expected boolean or \"auto\", got \"maybe\"");
    expect_live_err("{\"host\":null,\"block_migration\":\"AUTO\"}",
                    "body.os-migrateLive.block_migration: expected boolean or \"auto\", got \"AUTO\"");
    expect_live_err("{\"host\":null,\"block_migration\":1}",
                    "body.os-migrateLive.block_migration: expected boolean or \"auto\", got integer");
    expect_live_err("{\"host\":null,\"block_migration\":\"auto\\u0000\"}",
                    "body.os-migrateLive.block_migration: expected boolean or \"auto\", got \"auto\\x00\"");

    expect_req_err("{\"instance\":42,\"os-migrateLive\":{\"host\":null}}",
                   "body.instance: expected string, got integer");
    expect_req_err("{\"instance\":null,\"os-migrateLive\":{\"host\":null}}",
                   "body.instance: expected string, got null");
    expect_req_err("{\"instance\":\"vm1\",\"os-migrateLive\":[]}", "body.os-migrateLive: expected object, got array");
    expect_req_err("{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":null},\"options\":null}",
                   "body.options: expected object, got null");
    expect_req_err("{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":null},\"options\":\"\"}",
                   "body.options: expected object, got string");
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_req_err("{\"instance\":\"\",\"os-migrateLive\":{\"host\":null}}", "body.instance: must not be empty");
    expect_req_err("{\"instance\":\"vm\\n1\",\"os-migrateLive\":{\"host\":null}}",
                   "body.instance: control character at byte 2");
    expect_req_err("{\"instance\":\"vm\\u00001\",\"os-migrateLive\":{\"host\":null}}",
                   "body.instance: control character at byte 2");
    expect_req_err("{\"instance\":\"vm\\u00851\",\"os-migrateLive\":{\"host\":null}}",
                   "body.instance: control character at byte 2");
    char name[300];
    memset(name, 'a', sizeof(name));
    name[256] = '\0';
    _cleanup_free_ char *long_body = xasprintf("{\"instance\":\"%s\",\"os-migrateLive\":{\"host\":null}}", name);
    expect_req_err(long_body, "body.instance: 256 bytes, limit 255");
    name[255] = '\0';
    _cleanup_free_ char *max_body = xasprintf("{\"instance\":\"%s\",\"os-migrateLive\":{\"host\":\"%s\"}}", name, name);
    msg_request r;
    parse_req_ok(max_body, NULL, &r);
    assert_int_equal(strlen(r.instance), 255);
    assert_int_equal(strlen(r.host), 255);
    msg_request_free(&r);
    /* Names may be any UTF-8 without control characters. */
    parse_req_ok("{\"instance\":\"caf\xc3\xa9 db\",\"os-migrateLive\":{\"host\":null}}", NULL, &r);
    assert_string_equal(r.instance, "caf\xc3\xa9 db");
    msg_request_free(&r);

    expect_live_err("{\"host\":\"\"}", "body.os-migrateLive.host: must not be empty (null lets the scheduler choose)");
    expect_live_err("{\"host\":\"bad host\"}",
                    "body.os-migrateLive.host: invalid character at byte 3 (allowed: letters, "
                    "digits, '-', '.', '_')");
    expect_live_err("{\"host\":\"h\\u00e9\"}",
                    "body.os-migrateLive.host: invalid character at byte 1 (allowed: letters, "
                    "digits, '-', '.', '_')");
    _cleanup_free_ char *long_host = xasprintf("{\"host\":\"%sa\"}", name);
    expect_live_err(long_host, "body.os-migrateLive.host: 256 bytes, limit 255");
}

static void test_out_of_range(void **state)
{
    (void)state;
    static const struct {
        const char *opts, *want;
    } cases[] = {
        {"{\"postcopy_after_iterations\":0}", "body.options.postcopy_after_iterations: 0 is out of range 1..1000"},
        {"{\"postcopy_after_iterations\":1001}",
         "body.options.postcopy_after_iterations: 1001 is out of range 1..1000"},
        {"{\"bandwidth_mib_s\":-1}", "body.options.bandwidth_mib_s: -1 is out of range 0..100000"},
        {"{\"bandwidth_mib_s\":100001}", "body.options.bandwidth_mib_s: 100001 is out of range 0..100000"},
        {"{\"max_downtime_ms\":0}", "body.options.max_downtime_ms: 0 is out of range 1..600000"},
        {"{\"max_downtime_ms\":600001}", "body.options.max_downtime_ms: 600001 is out of range 1..600000"},
        {"{\"completion_timeout_s\":-1}", "body.options.completion_timeout_s: -1 is out of range 0..86400"},
        {"{\"completion_timeout_s\":86401}", "body.options.completion_timeout_s: 86401 is out of range 0..86400"},
        {"{\"completion_action\":\"resume\"}",
         "body.options.completion_action: expected \"abort\", \"postcopy\" or \"pause\""},
        {"{\"completion_action\":\"pause\\u0000x\"}",
         "body.options.completion_action: expected \"abort\", \"postcopy\" or \"pause\""},
        {"{\"completion_action\":1}", "body.options.completion_action: expected string, got integer"},
        {"{\"parallel_connections\":0}", "body.options.parallel_connections: 0 is out of range 1..32"},
        {"{\"parallel_connections\":33}", "body.options.parallel_connections: 33 is out of range 1..32"},
        {"{\"xbzrle_cache_mib\":-1}", "body.options.xbzrle_cache_mib: -1 is out of range 0..65536"},
        {"{\"xbzrle_cache_mib\":65537}", "body.options.xbzrle_cache_mib: 65537 is out of range 0..65536"},
        {"{\"max_downtime_ms\":4294967596}", "body.options.max_downtime_ms: 4294967596 is out of range 1..600000"},
        {"{\"bandwidth_mib_s\":99999999999999999999}",
         "body.options.bandwidth_mib_s: 18446744073709551615 is out of range 0..100000"},
        {"{\"bandwidth_mib_s\":-9223372036854775808}",
         "body.options.bandwidth_mib_s: -9223372036854775808 is out of range 0..100000"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        expect_opts_err(cases[i].opts, cases[i].want);
}

/* "objectives" (issue #18): each one alone or both, in range, nothing else, not empty; a
 * request without them has none; they survive msg_build_request. */
static void test_objectives(void **state)
{
    (void)state;
    static const char pre[] = "{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":null},\"objectives\":";
    msg_request r;
    _cleanup_free_ char *both = xasprintf("%s{\"max_downtime_ms\":200,\"deadline_s\":120}}", pre);
    parse_req_ok(both, NULL, &r);
    assert_int_equal(r.objectives.max_downtime_ms, 200);
    assert_int_equal(r.objectives.deadline_s, 120);
    assert_int_equal(r.options_given, 0); /* an objective is not an option */
    char *json = NULL, *err = NULL;
    assert_int_equal(msg_build_request(&r, &json, &err), 0);
    assert_non_null(strstr(json, "\"objectives\":{\"max_downtime_ms\":200,\"deadline_s\":120}"));
    free(json);
    msg_request_free(&r);
    _cleanup_free_ char *one = xasprintf("%s{\"deadline_s\":604800}}", pre);
    parse_req_ok(one, NULL, &r);
    assert_int_equal(r.objectives.max_downtime_ms, 0);
    assert_int_equal(r.objectives.deadline_s, 604800);
    msg_request_free(&r);
    parse_req_ok("{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":null}}", NULL, &r);
    assert_int_equal(r.objectives.max_downtime_ms, 0);
    assert_int_equal(r.objectives.deadline_s, 0);
    assert_int_equal(msg_build_request(&r, &json, &err), 0);
    assert_null(strstr(json, "objectives"));
    free(json);
    msg_request_free(&r);

    static const struct {
        const char *objs, *want;
    } cases[] = {
        {"{}", "body.objectives: empty: name max_downtime_ms, deadline_s or both"},
        {"[]", "body.objectives: expected object, got array"},
        {"{\"max_downtime_ms\":0}", "body.objectives.max_downtime_ms: 0 is out of range 1..600000"},
        {"{\"deadline_s\":0}", "body.objectives.deadline_s: 0 is out of range 1..604800"},
        {"{\"deadline_s\":604801}", "body.objectives.deadline_s: 604801 is out of range 1..604800"},
        {"{\"deadline_s\":\"2m\"}", "body.objectives.deadline_s: expected integer, got string"},
        {"{\"downtime\":5}", "body.objectives.downtime: unknown field"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *body = xasprintf("%s%s}", pre, cases[i].objs);
        expect_req_err(body, cases[i].want);
    }
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_live_err("{\"host\":null,\"post_cpy\":true}", "body.os-migrateLive.post_cpy: unknown field");
    expect_opts_err("{\"bandwith_mib_s\":10}", "body.options.bandwith_mib_s: unknown field");
    expect_req_err("{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":null},\"option\":{}}",
                   "body.option: unknown field");
    expect_parse_err("{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{},\"extra\":1}", "extra: unknown field");
    /* Untrusted key text is escaped and cut in the reason. */
    expect_opts_err("{\"a\\n\\\"b\":1}", "body.options.a\\x0a\\x22b: unknown field");
    char key[100];
    memset(key, 'k', sizeof(key));
    key[99] = '\0';
    _cleanup_free_ char *opts = xasprintf("{\"%s\":1}", key);
    _cleanup_free_ char *want = xasprintf("body.options.%.64s...: unknown field", key);
    expect_opts_err(opts, want);
}

static void test_wrong_type_for_request(void **state)
{
    (void)state;
    _cleanup_free_ char *body = req_body(live_ok, NULL);
    _cleanup_free_ char *json = envelope_of("migration.accepted", body);
    msg_envelope *env = parse_ok(json);
    msg_request r;
    char *err = NULL;
    assert_int_equal(msg_request_parse(env, NULL, &r, &err), -1);
    assert_string_equal(err, "type: expected \"migration.request\", got \"migration.accepted\"");
    free(err);
    msg_envelope_free(env);
}

/* ---- syntax ------------------------------------------------------------------------------ */

static void test_syntax(void **state)
{
    (void)state;
    _cleanup_free_ char *body = req_body(live_ok, NULL);
    _cleanup_free_ char *json = req_json(body);
    size_t n = strlen(json);

    /* Trailing garbage, with its byte offset. */
    _cleanup_free_ char *garbage = xasprintf("%s x", json);
    _cleanup_free_ char *want = xasprintf("trailing data after JSON at byte %zu", n + 1);
    expect_parse_err(garbage, want);
    _cleanup_free_ char *two = xasprintf("%s{}", json);
    _cleanup_free_ char *want2 = xasprintf("trailing data after JSON at byte %zu", n);
    expect_parse_err(two, want2);
    /* A NUL after the value is trailing data too. */
    char *nul = xmalloc(n + 2);
    memcpy(nul, json, n);
    nul[n] = '\0';
    nul[n + 1] = 'x';
    expect_parse_err_len(nul, n + 2, want2);
    free(nul);

    /* Whitespace around the value is fine. */
    _cleanup_free_ char *ws = xasprintf(" \r\n\t%s \n\t\r ", json);
    msg_envelope_free(parse_ok(ws));

    /* Not an object. */
    expect_parse_err("[]", "message: expected object, got array");
    expect_parse_err("\"x\"", "message: expected object, got string");
    expect_parse_err("1", "message: expected object, got integer");
    expect_parse_err("  1.5 ", "message: expected object, got float");
    expect_parse_err("null", "message: expected object, got null");

    /* Empty and broken. */
    expect_parse_err_len("", 0, "empty message");
    expect_parse_err_len(NULL, 0, "empty message");
    expect_parse_err(" \n\t", "empty message");
    expect_parse_err("{\"v\":1,", "invalid JSON at byte 7: unexpected end of data");
    expect_parse_err("{\"v\":1", "invalid JSON at byte 6: unexpected end of data");
    expect_parse_err("{\"v\" 1}", "invalid JSON at byte 5: object property name separator ':' expected");
    expect_parse_err("{\"v\":1,,}", "invalid JSON at byte 7: quoted object property name expected");
    expect_parse_err("{\"v\":tru}", "invalid JSON at byte 8: boolean expected");
    expect_parse_err_len("{\"v\":\0 1}", 9, "invalid JSON at byte 5: unexpected end of data");

    /* Invalid UTF-8, at the byte where the bad sequence starts: a byte never used in UTF-8,
     * a cut sequence, a lone continuation byte, an overlong '/', a UTF-16 surrogate, a code
     * point above U+10FFFF, a sequence cut by the end of the input. */
    static const struct {
        const char *json;
        const char *want;
    } utf8[] = {
        {"{\"v\":1,\"type\":\"t\xff\"}", "invalid UTF-8 at byte 16"},
        {"{\"v\":1,\"type\":\"t\xc3\"}", "invalid UTF-8 at byte 16"},
        {"{\"v\":1,\"type\":\"\x80\"}", "invalid UTF-8 at byte 15"},
        {"{\"v\":1,\"type\":\"\xc0\xaf\"}", "invalid UTF-8 at byte 15"},
        {"{\"v\":1,\"type\":\"\xed\xa0\x80\"}", "invalid UTF-8 at byte 15"},
        {"{\"v\":1,\"type\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8 at byte 15"},
        {"{\"v\":1,\"type\":\"\xe2\x82", "invalid UTF-8 at byte 15"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(utf8); i++)
        expect_parse_err(utf8[i].json, utf8[i].want);
    /* Well-formed 2-, 3- and 4-byte sequences pass. */
    msg_envelope *u =
        parse_ok("{\"v\":1,\"type\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x9a\xa2\",\"id\":\"" REQ_ID "\",\"body\":{}}");
    assert_string_equal(msg_envelope_type(u), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x9a\xa2");
    msg_envelope_free(u);

    /* Nesting beyond json-c's depth limit is refused, not a crash. */
    char deep[200];
    memset(deep, '[', sizeof(deep));
    expect_parse_err_len(deep, sizeof(deep), "invalid JSON at byte 32: nesting too deep");
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    _cleanup_free_ char *body = req_body(live_ok, NULL);
    _cleanup_free_ char *json = req_json(body);
    size_t n = strlen(json);

    /* The message followed by junk that must not be read. */
    char *buf = xmalloc(n + 8);
    memcpy(buf, json, n);
    memcpy(buf + n, "}}}junk!", 8);
    msg_envelope *env = NULL;
    char *err = NULL;
    assert_int_equal(msg_parse(buf, n, &env, &err), 0);
    msg_request r;
    assert_int_equal(msg_request_parse(env, NULL, &r, &err), 0);
    assert_string_equal(r.host, "compute2");
    msg_request_free(&r);
    msg_envelope_free(env);
    free(buf);

    /* Exactly n bytes on the heap, no terminator: ASan catches any read past the end. */
    buf = xmalloc(n);
    memcpy(buf, json, n);
    assert_int_equal(msg_parse(buf, n, &env, &err), 0);
    msg_envelope_free(env);
    /* A prefix that stops inside the value. */
    _cleanup_free_ char *want = xasprintf("invalid JSON at byte %zu: unexpected end of data", n - 1);
    expect_parse_err_len(buf, n - 1, want);
    free(buf);

    /* A bare number ending at the last byte. */
    buf = xmalloc(2);
    memcpy(buf, "12", 2);
    expect_parse_err_len(buf, 2, "message: expected object, got integer");
    free(buf);
}

static void test_too_large(void **state)
{
    (void)state;
    /* 1 MiB of an otherwise valid message: refused by size, before parsing. */
    size_t big = 1024 * 1024;
    char *buf = xmalloc(big);
    const char *head = "{\"v\":1,\"type\":\"t\",\"id\":\"" REQ_ID "\",\"body\":{\"pad\":\"";
    size_t hl = strlen(head);
    memcpy(buf, head, hl);
    memset(buf + hl, 'a', big - hl - 3);
    memcpy(buf + big - 3, "\"}}", 3);
    expect_parse_err_len(buf, big, "message too large: 1048576 bytes, limit 65536");
    expect_parse_err_len(buf, MSG_MAX_BYTES + 1, "message too large: 65537 bytes, limit 65536");

    /* Exactly the limit is accepted. */
    memcpy(buf + MSG_MAX_BYTES - 3, "\"}}", 3);
    msg_envelope *env = NULL;
    char *err = NULL;
    assert_int_equal(msg_parse(buf, MSG_MAX_BYTES, &env, &err), 0);
    msg_envelope_free(env);
    free(buf);
}

/* ---- building --------------------------------------------------------------------------- */

static void test_build_request_round_trip(void **state)
{
    (void)state;
    msg_request in = {
        .id = (char *)REQ_ID,
        .instance = (char *)"i-0000002a",
        .host = (char *)"compute2",
        .block_migration = MSG_BLOCK_AUTO,
        .disk_over_commit = true,
        .post_copy = true,
        .options = {.auto_converge = true,
                    .postcopy_after_iterations = 2,
                    .bandwidth_mib_s = 100,
                    .max_downtime_ms = 500,
                    .completion_timeout_s = 900,
                    .completion_action = MSG_COMPLETION_POSTCOPY},
        .options_given = MSG_OPT_AUTO_CONVERGE | MSG_OPT_POSTCOPY_AFTER | MSG_OPT_BANDWIDTH | MSG_OPT_MAX_DOWNTIME |
                         MSG_OPT_COMPLETION_TIMEOUT | MSG_OPT_COMPLETION_ACTION,
    };
    char *json = NULL, *err = NULL;
    assert_int_equal(msg_build_request(&in, &json, &err), 0);
    assert_null(err);
    msg_envelope *env = parse_ok(json);
    assert_string_equal(msg_envelope_type(env), MSG_TYPE_REQUEST);
    assert_string_equal(msg_envelope_id(env), REQ_ID);
    assert_non_null(msg_envelope_sent_at(env));
    assert_int_equal(strlen(msg_envelope_sent_at(env)), 24); /* 2024-05-01T10:00:00.000Z */
    msg_request out;
    assert_int_equal(msg_request_parse(env, NULL, &out, &err), 0);
    assert_string_equal(out.id, REQ_ID);
    assert_string_equal(out.instance, "i-0000002a");
    assert_int_equal(out.instance_kind, MSG_INSTANCE_EC2);
    assert_string_equal(out.host, "compute2");
    assert_int_equal(out.block_migration, MSG_BLOCK_AUTO);
    assert_true(out.disk_over_commit);
    assert_true(out.post_copy);
    assert_true(out.options.auto_converge);
    assert_int_equal(out.options.postcopy_after_iterations, 2);
    assert_int_equal(out.options.bandwidth_mib_s, 100);
    assert_int_equal(out.options.max_downtime_ms, 500);
    assert_int_equal(out.options.completion_timeout_s, 900);
    assert_int_equal(out.options.completion_action, MSG_COMPLETION_POSTCOPY);
    assert_int_equal(out.options_given, in.options_given);
    msg_request_free(&out);
    msg_envelope_free(env);
    free(json);

    /* No id: a new UUID; no options given: no "options" key (the ORBIT shape), so the
     * scheduler's defaults apply; host NULL is sent as null. */
    msg_request bare = {
        .instance = (char *)"web-01", .block_migration = MSG_BLOCK_YES, .options = {.max_downtime_ms = 0}};
    assert_int_equal(msg_build_request(&bare, &json, &err), 0);
    env = parse_ok(json);
    assert_true(uuid_valid(msg_envelope_id(env)));
    json_object *tmp = NULL;
    assert_false(json_object_object_get_ex(msg_envelope_body(env), "options", &tmp));
    assert_non_null(strstr(json, "\"host\":null"));
    msg_request_defaults defs;
    msg_request_defaults_init(&defs);
    defs.max_downtime_ms = 700;
    assert_int_equal(msg_request_parse(env, &defs, &out, &err), 0);
    assert_null(out.host);
    assert_int_equal(out.block_migration, MSG_BLOCK_YES);
    assert_int_equal(out.options.max_downtime_ms, 700);
    assert_int_equal(out.options_given, 0);
    msg_request_free(&out);
    msg_envelope_free(env);
    free(json);

    /* Invalid input is refused with the reason the scheduler would give. */
    json = (char *)0x1;
    msg_request bad = {.instance = (char *)"vm1", .host = (char *)"bad host"};
    assert_int_equal(msg_build_request(&bad, &json, &err), -1);
    assert_ptr_equal(json, (char *)0x1);
    assert_string_equal(err, "body.os-migrateLive.host: invalid character at byte 3 (allowed: "
                             "letters, digits, '-', '.', '_')");
    free(err);
    msg_request noinst = {0};
    assert_int_equal(msg_build_request(&noinst, &json, &err), -1);
    assert_string_equal(err, "body.instance: missing required field");
    free(err);
    msg_request badopt = {
        .instance = (char *)"vm1", .options = {.max_downtime_ms = 0}, .options_given = MSG_OPT_MAX_DOWNTIME};
    assert_int_equal(msg_build_request(&badopt, &json, &err), -1);
    assert_string_equal(err, "body.options.max_downtime_ms: 0 is out of range 1..600000");
    free(err);
    msg_request badid = {.id = (char *)"nope", .instance = (char *)"vm1"};
    assert_int_equal(msg_build_request(&badid, &json, &err), -1);
    assert_string_equal(err, "id: not a UUID");
    free(err);
}

static void test_build_replies_round_trip(void **state)
{
    (void)state;
    char *json = msg_build_accepted(REQ_ID, 17, "compute2");
    msg_envelope *env = parse_ok(json);
    assert_string_equal(msg_envelope_type(env), MSG_TYPE_ACCEPTED);
    assert_string_equal(msg_envelope_id(env), REQ_ID);
    msg_reply r;
    char *err = NULL;
    assert_int_equal(msg_reply_parse(env, &r, &err), 0);
    assert_true(r.accepted);
    assert_int_equal(r.migration, 17);
    assert_string_equal(r.dest, "compute2");
    assert_null(r.reason);
    assert_string_equal(r.id, REQ_ID);
    msg_reply_free(&r);
    /* A reply is not a request. */
    msg_request req;
    assert_int_equal(msg_request_parse(env, NULL, &req, &err), -1);
    free(err);
    msg_envelope_free(env);
    free(json);

    json = msg_build_accepted(REQ_ID, INT64_MAX, NULL);
    env = parse_ok(json);
    assert_int_equal(msg_reply_parse(env, &r, &err), 0);
    assert_int_equal(r.migration, INT64_MAX);
    assert_null(r.dest);
    msg_reply_free(&r);
    msg_envelope_free(env);
    free(json);

    const char *reason = "instance i-0000002a is already migrating (migration 12) \"quoted\" \xc3\xa9";
    json = msg_build_refused(REQ_ID, reason);
    env = parse_ok(json);
    assert_string_equal(msg_envelope_type(env), MSG_TYPE_REFUSED);
    assert_int_equal(msg_reply_parse(env, &r, &err), 0);
    assert_false(r.accepted);
    assert_string_equal(r.reason, reason);
    assert_null(r.dest);
    msg_reply_free(&r);
    msg_reply_free(NULL);
    msg_envelope_free(env);
    free(json);

    /* msg_build with a generic body and a generated id. */
    json_object *body = json_object_new_object();
    json_object_object_add(body, "k", json_object_new_string("a/b"));
    json = msg_build("host.heartbeat", NULL, body);
    assert_non_null(strstr(json, "\"k\":\"a/b\""));
    env = parse_ok(json);
    assert_true(uuid_valid(msg_envelope_id(env)));
    assert_string_equal(msg_envelope_type(env), "host.heartbeat");
    assert_int_equal(msg_reply_parse(env, &r, &err), -1);
    assert_string_equal(err, "type: expected \"migration.accepted\" or \"migration.refused\", got "
                             "\"host.heartbeat\"");
    free(err);
    msg_envelope_free(env);
    free(json);

    /* Bad replies. */
    static const struct {
        const char *type, *body, *want;
    } bad[] = {
        {MSG_TYPE_ACCEPTED, "{\"dest\":\"c2\"}", "body.migration: missing required field"},
        {MSG_TYPE_ACCEPTED, "{\"migration\":\"17\",\"dest\":\"c2\"}", "body.migration: expected integer, got string"},
        {MSG_TYPE_ACCEPTED, "{\"migration\":0,\"dest\":\"c2\"}",
         "body.migration: 0 is out of range 1..9223372036854775807"},
        {MSG_TYPE_ACCEPTED, "{\"migration\":9223372036854775808,\"dest\":\"c2\"}",
         "body.migration: 9223372036854775808 is out of range 1..9223372036854775807"},
        {MSG_TYPE_ACCEPTED, "{\"migration\":1}", "body.dest: missing required field"},
        {MSG_TYPE_ACCEPTED, "{\"migration\":1,\"dest\":\"c2\",\"x\":1}", "body.x: unknown field"},
        {MSG_TYPE_REFUSED, "{}", "body.reason: missing required field"},
        {MSG_TYPE_REFUSED, "{\"reason\":\"\"}", "body.reason: must not be empty"},
        {MSG_TYPE_REFUSED, "{\"reason\":false}", "body.reason: expected string, got boolean"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_free_ char *j = envelope_of(bad[i].type, bad[i].body);
        env = parse_ok(j);
        r.id = (char *)"untouched";
        assert_int_equal(msg_reply_parse(env, &r, &err), -1);
        assert_string_equal(r.id, "untouched");
        if (strcmp(err, bad[i].want) != 0)
            fail_msg("got reason \"%s\", want \"%s\"", err, bad[i].want);
        free(err);
        msg_envelope_free(env);
    }
}

/* ---- message_id and instance kinds ------------------------------------------------------- */

static void test_message_id(void **state)
{
    (void)state;
    _cleanup_free_ char *body = req_body(live_ok, NULL);
    _cleanup_free_ char *json = req_json(body);
    msg_envelope *env = parse_ok(json);
    char *err = NULL;
    assert_int_equal(msg_check_message_id(env, REQ_ID, &err), 0);
    assert_int_equal(msg_check_message_id(env, "6F1C1E8A-3B7D-4C2E-9A51-0D2F7B9C4E10", &err), 0);
    assert_int_equal(msg_check_message_id(env, NULL, &err), 0);
    assert_int_equal(msg_check_message_id(env, "", &err), 0);
    assert_null(err);
    assert_int_equal(msg_check_message_id(env, "00000000-0000-4000-8000-000000000000", &err), -1);
    assert_string_equal(err, "amqp message_id \"00000000-0000-4000-8000-000000000000\" does not "
                             "match envelope id " REQ_ID);
    free(err);
    assert_int_equal(msg_check_message_id(env, "x\ny", &err), -1);
    assert_string_equal(err, "amqp message_id \"x\\x0ay\" does not match envelope id " REQ_ID);
    free(err);
    assert_int_equal(msg_check_message_id(env, "other", NULL), -1);
    msg_envelope_free(env);
    msg_envelope_free(NULL);
}

static void test_instance_kind(void **state)
{
    (void)state;
    static const struct {
        const char *ref;
        msg_instance_kind kind;
    } cases[] = {
        {"vm1", MSG_INSTANCE_NAME},
        {"web-01.example", MSG_INSTANCE_NAME},
        {"i-0000002a", MSG_INSTANCE_EC2},
        {"i-0000002A", MSG_INSTANCE_EC2},
        {"i-1", MSG_INSTANCE_EC2},
        {"i-0123456789abcdef", MSG_INSTANCE_EC2},
        {"i-0123456789abcdef0", MSG_INSTANCE_NAME},
        {"i-", MSG_INSTANCE_NAME},
        {"i-xyz", MSG_INSTANCE_NAME},
        {"i-0000002a-old", MSG_INSTANCE_NAME},
        {"I-0000002a", MSG_INSTANCE_NAME},
        {REQ_ID, MSG_INSTANCE_UUID},
        {"6F1C1E8A-3B7D-4C2E-9A51-0D2F7B9C4E10", MSG_INSTANCE_UUID},
        {"6f1c1e8a3b7d4c2e9a510d2f7b9c4e10", MSG_INSTANCE_NAME},
        {"6f1c1e8a-3b7d-4c2e-9a51-0d2f7b9c4e1", MSG_INSTANCE_NAME},
        {NULL, MSG_INSTANCE_NAME},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (msg_instance_classify(cases[i].ref) != cases[i].kind)
            fail_msg("%s: got %s, want %s", cases[i].ref ? cases[i].ref : "(null)",
                     msg_instance_kind_name(msg_instance_classify(cases[i].ref)),
                     msg_instance_kind_name(cases[i].kind));
    }
    assert_string_equal(msg_instance_kind_name(MSG_INSTANCE_UUID), "uuid");
    assert_string_equal(msg_instance_kind_name(MSG_INSTANCE_EC2), "ec2");
    assert_string_equal(msg_instance_kind_name(MSG_INSTANCE_NAME), "name");
    assert_string_equal(msg_block_mode_name(MSG_BLOCK_NO), "false");
    assert_string_equal(msg_block_mode_name(MSG_BLOCK_YES), "true");
    assert_string_equal(msg_block_mode_name(MSG_BLOCK_AUTO), "auto");

    /* The request carries the classification. */
    msg_request r;
    parse_req_ok("{\"instance\":\"" REQ_ID "\",\"os-migrateLive\":{\"host\":null}}", NULL, &r);
    assert_int_equal(r.instance_kind, MSG_INSTANCE_UUID);
    msg_request_free(&r);
}

/* The transport options combine or are refused with the reason (intake, policies, the
 * scheduler's defaults): xbzrle's cache a power of two, and one stream only. */
static void test_transport_check(void **state)
{
    (void)state;
    msg_options o;
    msg_request_defaults_init(&o);
    char *err = NULL;
    assert_int_equal(o.parallel_connections, 1);
    assert_int_equal(o.xbzrle_cache_mib, 0);
    assert_int_equal(msg_options_transport_check(&o, "options", &err), 0);
    o.xbzrle_cache_mib = 64;
    assert_int_equal(msg_options_transport_check(&o, "options", &err), 0);
    o.xbzrle_cache_mib = 48;
    assert_int_equal(msg_options_transport_check(&o, "options", &err), -1);
    assert_string_equal(err, "options.xbzrle_cache_mib: 48 is not a power of two (QEMU's xbzrle cache)");
    free(err);
    err = NULL;
    o.xbzrle_cache_mib = 64;
    o.parallel_connections = 2;
    assert_int_equal(msg_options_transport_check(&o, "options", &err), -1);
    assert_string_equal(err, "options.xbzrle_cache_mib: xbzrle compresses a single stream: not with "
                             "parallel_connections 2");
    free(err);
    err = NULL;
    o.xbzrle_cache_mib = 0;
    assert_int_equal(msg_options_transport_check(&o, "options", &err), 0);
    /* msg_options_check includes it, and the ranges */
    o.parallel_connections = 40;
    assert_int_equal(msg_options_check(&o, "defaults", &err), -1);
    assert_string_equal(err, "defaults.parallel_connections: 40 is out of range 1..32");
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_check),
        cmocka_unit_test(test_orbit_seed_body),
        cmocka_unit_test(test_full_request),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_mistyped_envelope),
        cmocka_unit_test(test_mistyped_request),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_objectives),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_type_for_request),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_build_request_round_trip),
        cmocka_unit_test(test_build_replies_round_trip),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_instance_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
