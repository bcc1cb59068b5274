/* Unit tests of scheduler/httpcheck: UTF-8, percent-decoding, path segments, typed query
 * parameters, header limits, bodies and token comparison -- each refusal with its reason. */
#include "testlib.h"

#include <string.h>

#include "httpcheck.h"

/* Asserts that err is set and contains want, then frees it. */
#define assert_err(err, want)                                                                                          \
    do {                                                                                                               \
        assert_non_null(err);                                                                                          \
        if (!strstr((err), (want)))                                                                                    \
            fail_msg("error '%s' does not say '%s'", (err), (want));                                                   \
        free(err);                                                                                                     \
        (err) = NULL;                                                                                                  \
    } while (0)

static void test_utf8(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_true(httpcheck_utf8("", 0, &why));
    assert_true(httpcheck_utf8("compute1", 8, &why));
    assert_true(httpcheck_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xa2", 14, &why)); /* é € 🚢 */
    assert_true(httpcheck_utf8("\xf4\x8f\xbf\xbf", 4, &why));                           /* U+10FFFF */
    struct {
        const char *s;
        size_t n;
        const char *why;
    } bad[] = {
        {"a\0b", 3, "NUL"},
        {"\xff", 1, "starts no UTF-8"},
        {"\x80", 1, "starts no UTF-8"},
        {"\xc0\xaf", 2, "starts no UTF-8"},   /* overlong '/' (C0/C1 never valid) */
        {"\xe0\x80\xaf", 3, "overlong"},      /* overlong '/' in three bytes */
        {"\xf0\x80\x80\xaf", 4, "overlong"},  /* and in four */
        {"\xed\xa0\x80", 3, "surrogate"},     /* U+D800 */
        {"\xf4\x90\x80\x80", 4, "U+10FFFF"},  /* U+110000 */
        {"\xf5\x80\x80\x80", 4, "starts no"}, /* F5..FF never valid */
        {"\xc3", 1, "truncated"},
        {"\xe2\x82", 2, "truncated"},
        {"\xe2\x28\xa1", 3, "truncated"}, /* a continuation byte missing */
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        why = NULL;
        if (httpcheck_utf8(bad[i].s, bad[i].n, &why))
            fail_msg("case %zu accepted", i);
        assert_non_null(why);
        if (!strstr(why, bad[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, why, bad[i].why);
    }
}

static void test_decode(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(httpcheck_decode("h%2041%c3%A9", 12, 0, "x", &out, &err), 0);
    assert_string_equal(out, "h 41\xc3\xa9");
    free(out);
    assert_int_equal(httpcheck_decode("a+b", 3, 1, "x", &out, &err), 0);
    assert_string_equal(out, "a b");
    free(out);
    assert_int_equal(httpcheck_decode("a+b", 3, 0, "x", &out, &err), 0);
    assert_string_equal(out, "a+b");
    free(out);
    /* decoded once: %2541 is "%41", not "A" */
    assert_int_equal(httpcheck_decode("%2541", 5, 0, "x", &out, &err), 0);
    assert_string_equal(out, "%41");
    free(out);
    out = NULL;
    assert_int_equal(httpcheck_decode("%FF", 3, 0, "the thing", &out, &err), -1);
    assert_null(out);
    assert_err(err, "the thing is not valid UTF-8");
    assert_int_equal(httpcheck_decode("a%00b", 5, 0, "x", &out, &err), -1);
    assert_err(err, "NUL byte");
    assert_int_equal(httpcheck_decode("a%0Ab", 5, 0, "x", &out, &err), -1);
    assert_err(err, "control character (0x0a)");
    assert_int_equal(httpcheck_decode("a%7f", 4, 0, "x", &out, &err), -1);
    assert_err(err, "control character (0x7f)");
    assert_int_equal(httpcheck_decode("a%G1", 4, 0, "x", &out, &err), -1);
    assert_err(err, "two hexadecimal digits");
    assert_int_equal(httpcheck_decode("a%4", 3, 0, "x", &out, &err), -1);
    assert_err(err, "two hexadecimal digits");
    assert_int_equal(httpcheck_decode("a%", 2, 0, "x", &out, &err), -1);
    assert_err(err, "two hexadecimal digits");
    /* len bounds the input: the '%' after it is not read */
    assert_int_equal(httpcheck_decode("ab%", 2, 0, "x", &out, &err), 0);
    assert_string_equal(out, "ab");
    free(out);
}

static void test_path(void **state)
{
    (void)state;
    httpcheck_path p = {0};
    char *err = NULL;
    assert_int_equal(httpcheck_path_parse("/api//hosts/compute%201/", &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_false(p.too_many);
    assert_string_equal(p.seg[0], "api");
    assert_string_equal(p.seg[1], "hosts");
    assert_string_equal(p.seg[2], "compute 1");
    httpcheck_path_free(&p);
    assert_int_equal(httpcheck_path_parse("/", &p, &err), 0);
    assert_int_equal(p.n, 0);
    httpcheck_path_free(&p);
    assert_int_equal(httpcheck_path_parse("/a/b/c/d/e/f/g/h/i/j", &p, &err), 0);
    assert_int_equal(p.n, HTTPCHECK_MAX_SEGMENTS);
    assert_true(p.too_many);
    httpcheck_path_free(&p);
    assert_int_equal(httpcheck_path_parse("/api/hosts/%FF", &p, &err), -1);
    assert_err(err, "the path's segment 3 is not valid UTF-8");
    assert_int_equal(p.n, 0);
    assert_int_equal(httpcheck_path_parse("/api/hosts/\xff\xfe", &p, &err), -1); /* raw bytes too */
    assert_err(err, "segment 3");
    assert_int_equal(httpcheck_path_parse("/api/hosts/%00", &p, &err), -1);
    assert_err(err, "NUL byte");
    /* segments beyond those kept are checked too */
    assert_int_equal(httpcheck_path_parse("/a/b/c/d/e/f/g/h/i/%C0%80", &p, &err), -1);
    assert_err(err, "segment 10");
}

static void test_query(void **state)
{
    (void)state;
    httpcheck_query q = {0};
    char *err = NULL;
    assert_int_equal(httpcheck_query_parse(NULL, &q, &err), 0);
    assert_int_equal(q.n, 0);
    assert_null(httpcheck_query_get(&q, "limit"));
    httpcheck_query_free(&q);
    assert_int_equal(httpcheck_query_parse("status=running&limit=5&&host=h+1&flag&empty=", &q, &err), 0);
    assert_int_equal(q.n, 5);
    assert_string_equal(httpcheck_query_get(&q, "status"), "running");
    assert_string_equal(httpcheck_query_get(&q, "host"), "h 1");
    assert_string_equal(httpcheck_query_get(&q, "flag"), "");
    int64_t v = 0;
    assert_int_equal(httpcheck_query_int(&q, "limit", 1, 10000, 100, &v, &err), 0);
    assert_int_equal(v, 5);
    assert_int_equal(httpcheck_query_int(&q, "absent", 1, 10000, 100, &v, &err), 0);
    assert_int_equal(v, 100);
    assert_int_equal(httpcheck_query_int(&q, "empty", 1, 10000, 100, &v, &err), 0);
    assert_int_equal(v, 100);
    static const char *const st[] = {"queued", "running", NULL};
    const char *w = NULL;
    assert_int_equal(httpcheck_query_enum(&q, "status", st, &w, &err), 0);
    assert_string_equal(w, "running");
    assert_ptr_equal(w, st[1]);
    assert_int_equal(httpcheck_query_enum(&q, "empty", st, &w, &err), 0);
    assert_null(w);
    httpcheck_query_free(&q);

    struct {
        const char *query, *why;
    } bad_int[] = {
        {"limit=-5", "-5 is out of range (1 to 10000)"},
        {"limit=0", "0 is out of range"},
        {"limit=10001", "10001 is out of range"},
        {"limit=99999999999999999999", "99999999999999999999 is out of range"},
        {"limit=-99999999999999999999", "is out of range"},
        {"limit=abc", "'abc' is not an integer"},
        {"limit=5x", "'5x' is not an integer"},
        {"limit=%2B5", "'+5' is not an integer"},
        {"limit=+5", "' 5' is not an integer"}, /* + is a space in a query */
        {"limit=%205", "' 5' is not an integer"},
        {"limit=-", "'-' is not an integer"},
        {"limit=0x10", "'0x10' is not an integer"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_int); i++) {
        assert_int_equal(httpcheck_query_parse(bad_int[i].query, &q, &err), 0);
        v = 42;
        assert_int_equal(httpcheck_query_int(&q, "limit", 1, 10000, 100, &v, &err), -1);
        assert_int_equal(v, 42); /* untouched on failure */
        assert_err(err, bad_int[i].why);
        httpcheck_query_free(&q);
    }
    assert_int_equal(httpcheck_query_parse("status=bogus", &q, &err), 0);
    assert_int_equal(httpcheck_query_enum(&q, "status", st, &w, &err), -1);
    assert_err(err, "query parameter status: unknown value 'bogus' (one of queued, running)");
    httpcheck_query_free(&q);
    assert_int_equal(httpcheck_query_parse("status=RUNNING", &q, &err), 0);
    assert_int_equal(httpcheck_query_enum(&q, "status", st, &w, &err), -1);
    assert_err(err, "unknown value 'RUNNING'");
    httpcheck_query_free(&q);

    assert_int_equal(httpcheck_query_parse("host=%FF", &q, &err), -1);
    assert_err(err, "query parameter host is not valid UTF-8");
    assert_int_equal(q.n, 0);
    assert_int_equal(httpcheck_query_parse("a=1&%FE=2", &q, &err), -1);
    assert_err(err, "a query parameter's name is not valid UTF-8");
    assert_int_equal(httpcheck_query_parse("host=a%00b", &q, &err), -1);
    assert_err(err, "NUL byte");
    assert_int_equal(httpcheck_query_parse("status=running&status=failed", &q, &err), -1);
    assert_err(err, "query parameter status is given more than once");
    assert_int_equal(httpcheck_query_parse("limit=%", &q, &err), -1);
    assert_err(err, "two hexadecimal digits");
}

static void test_headers(void **state)
{
    (void)state;
    httpcheck_headers h = {0};
    char *err = NULL;
    assert_int_equal(httpcheck_header(&h, "Host", "127.0.0.1:8774", &err), 0);
    assert_int_equal(httpcheck_header(&h, "X-Auth-Token", "abc", &err), 0);
    assert_int_equal(httpcheck_header(&h, "User-Agent", "caf\xc3\xa9\tx", &err), 0); /* obs-text, tab */
    assert_int_equal(h.count, 3);
    assert_int_equal(httpcheck_header(&h, "Bad Name", "x", &err), -1);
    assert_err(err, "not an HTTP token");
    h = (httpcheck_headers){0};
    assert_int_equal(httpcheck_header(&h, "X", "a\x01", &err), -1);
    assert_err(err, "header field X has a control character (0x01)");
    h = (httpcheck_headers){0};
    for (int i = 0; i < HTTPCHECK_MAX_HEADERS; i++)
        assert_int_equal(httpcheck_header(&h, "X-A", "b", &err), 0);
    assert_int_equal(httpcheck_header(&h, "X-A", "b", &err), -1);
    assert_err(err, "more than 64 header fields");
    h = (httpcheck_headers){0};
    char big[HTTPCHECK_MAX_HEADER_BYTES];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(httpcheck_header(&h, "X-Big", big, &err), -1);
    assert_err(err, "more than 16384 bytes");
}

static void test_body(void **state)
{
    (void)state;
    char *err = NULL;
    const char ok[] = "{\"os-migrateLive\":{\"host\":\"compute2\"}}";
    assert_int_equal(httpcheck_body(ok, sizeof(ok) - 1, &err), 0);
    assert_int_equal(httpcheck_body("", 0, &err), 0);
    assert_int_equal(httpcheck_body("{\"host\":\"h\xff\xfe\"}", 14, &err), -1);
    assert_err(err, "the body is not valid UTF-8");
    assert_int_equal(httpcheck_body("{}\0{}", 5, &err), -1);
    assert_err(err, "NUL byte");
}

static void test_tokens(void **state)
{
    (void)state;
    assert_true(httpcheck_token_ok("secret", "secret"));
    assert_true(httpcheck_token_ok("two", "one, two ,three"));
    assert_true(httpcheck_token_ok("three", "one, two ,three"));
    assert_true(httpcheck_token_ok("one", ",one,"));
    assert_false(httpcheck_token_ok("secre", "secret"));   /* a prefix */
    assert_false(httpcheck_token_ok("secrets", "secret")); /* longer */
    assert_false(httpcheck_token_ok("Secret", "secret"));
    assert_false(httpcheck_token_ok("secret ", "secret")); /* spaces are not trimmed from what is sent */
    assert_false(httpcheck_token_ok("one,two", "one,two"));
    assert_false(httpcheck_token_ok("", "secret"));
    assert_false(httpcheck_token_ok(NULL, "secret"));
    assert_false(httpcheck_token_ok("secret", ""));
    assert_false(httpcheck_token_ok("secret", NULL));
    assert_false(httpcheck_token_ok("", ""));
    assert_false(httpcheck_token_ok(" ", " , "));
}

static void test_printable(void **state)
{
    (void)state;
    char *p = httpcheck_printable("/api/hosts/\xff\xfe\n\\x", 100);
    assert_string_equal(p, "/api/hosts/\\xff\\xfe\\x0a\\x5cx");
    free(p);
    p = httpcheck_printable("abcdef", 3);
    assert_string_equal(p, "abc...");
    free(p);
    p = httpcheck_printable("abc", 3);
    assert_string_equal(p, "abc");
    free(p);
    p = httpcheck_printable(NULL, 3);
    assert_string_equal(p, "");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),   cmocka_unit_test(test_decode),    cmocka_unit_test(test_path),
        cmocka_unit_test(test_query),  cmocka_unit_test(test_headers),   cmocka_unit_test(test_body),
        cmocka_unit_test(test_tokens), cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
