/* Unit tests of common/log: logfmt and JSON formatting, fields, escaping, levels. */
#include "testlib.h"

#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "log.h"

static const int64_t TS = 1795000000123; /* 2026-11-18T... a fixed instant */

static void test_text_line_has_fields(void **state)
{
    (void)state;
    log_set_proc("ferry-test");
    log_set_format(LOG_FMT_TEXT);
    log_fields f = {.migration = "17", .instance = "i-0000002a", .host = "compute1", .req = "r1"};
    _cleanup_free_ char *l =
        log_format_line(LOG_LVL_INFO, &f, TS, "Live migration i-0000002a to compute2 finishes successfully.");
    assert_non_null(strstr(l, "ts=2026-11-18T"));
    assert_non_null(strstr(l, ".123Z level=info proc=ferry-test pid="));
    assert_non_null(strstr(
        l,
        " host=compute1 migration=17 instance=i-0000002a req=r1 msg=\"Live migration i-0000002a to compute2 finishes successfully.\"\n"));
    assert_int_equal(strchr(l, '\n') - l + 1, (long)strlen(l)); /* exactly one line */
}

static void test_missing_fields_left_out(void **state)
{
    (void)state;
    log_set_format(LOG_FMT_TEXT);
    log_fields f = {.migration = "5"};
    _cleanup_free_ char *l = log_format_line(LOG_LVL_WARN, &f, TS, "x");
    assert_non_null(strstr(l, "level=warn"));
    assert_non_null(strstr(l, "migration=5 msg=\"x\""));
    assert_null(strstr(l, "instance="));
    assert_null(strstr(l, "req="));
    assert_null(strstr(l, "host="));
}

static void test_default_host(void **state)
{
    (void)state;
    log_set_format(LOG_FMT_TEXT);
    log_set_host("ctl1");
    _cleanup_free_ char *a = log_format_line(LOG_LVL_INFO, NULL, TS, "a");
    assert_non_null(strstr(a, " host=ctl1 "));
    log_fields f = {.host = "compute9"};
    _cleanup_free_ char *b = log_format_line(LOG_LVL_INFO, &f, TS, "b");
    assert_non_null(strstr(b, " host=compute9 "));
    assert_null(strstr(b, "ctl1"));
    log_set_host(NULL);
    _cleanup_free_ char *c = log_format_line(LOG_LVL_INFO, NULL, TS, "c");
    assert_null(strstr(c, "host="));
}

static void test_escaping_cannot_forge_lines_or_fields(void **state)
{
    (void)state;
    log_set_format(LOG_FMT_TEXT);
    log_fields f = {.instance = "evil name\" migration=99", .req = "a\nb"};
    _cleanup_free_ char *l = log_format_line(LOG_LVL_ERROR, &f, TS, "bad \"quote\" back\\slash\nnew line\x01 bell\x7f");
    assert_non_null(strstr(l, "instance=\"evil name\\\" migration=99\""));
    assert_non_null(strstr(l, "req=\"a\\nb\""));
    assert_non_null(strstr(l, "msg=\"bad \\\"quote\\\" back\\\\slash\\nnew line\\x01 bell\\x7f\""));
    assert_int_equal(strchr(l, '\n') - l + 1, (long)strlen(l));
    _cleanup_free_ char *e = log_escape("tab\there");
    assert_string_equal(e, "tab\\there");
    _cleanup_free_ char *e2 = log_escape(NULL);
    assert_string_equal(e2, "");
}

static void test_json_lines_parse(void **state)
{
    (void)state;
    log_set_format(LOG_FMT_JSON);
    log_fields f = {.migration = "17", .instance = "i-1", .host = "h\"1", .req = "r"};
    _cleanup_free_ char *l = log_format_line(LOG_LVL_DEBUG, &f, TS, "ctl \x02 and \"q\"\n");
    log_set_format(LOG_FMT_TEXT);
    assert_int_equal(strchr(l, '\n') - l + 1, (long)strlen(l));
    json_object *o = json_tokener_parse(l);
    assert_non_null(o);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "level", &v));
    assert_string_equal(json_object_get_string(v), "debug");
    assert_true(json_object_object_get_ex(o, "host", &v));
    assert_string_equal(json_object_get_string(v), "h\"1");
    assert_true(json_object_object_get_ex(o, "migration", &v));
    assert_string_equal(json_object_get_string(v), "17");
    assert_true(json_object_object_get_ex(o, "msg", &v));
    assert_string_equal(json_object_get_string(v), "ctl \x02 and \"q\"\n");
    json_object_put(o);
}

static void test_levels_filter_and_parse(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    log_set_stream(mem);
    log_set_format(LOG_FMT_TEXT);
    log_set_level(LOG_LVL_WARN);
    int evaluated = 0;
    log_info(NULL, "hidden %d", ++evaluated);
    log_warn(NULL, "shown %d", 1);
    log_error(NULL, "shown %d", 2);
    log_set_level(LOG_LVL_INFO);
    log_set_stream(NULL);
    fclose(mem);
    assert_int_equal(evaluated, 0); /* arguments not evaluated below the level */
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "msg=\"shown 1\""));
    assert_non_null(strstr(buf, "msg=\"shown 2\""));
    free(buf);

    log_level lv;
    assert_int_equal(log_level_parse("debug", &lv), 0);
    assert_int_equal(lv, LOG_LVL_DEBUG);
    assert_int_equal(log_level_parse("verbose", &lv), -1);
    log_format fm;
    assert_int_equal(log_format_parse("json", &fm), 0);
    assert_int_equal(fm, LOG_FMT_JSON);
    assert_int_equal(log_format_parse("xml", &fm), -1);
}

static void test_log_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ferry-logtest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = xasprintf("%s/f.log", dir);
    assert_int_equal(log_open(path), 0);
    log_info(NULL, "to the file");
    log_close();
    _cleanup_free_ char *txt = test_read_file(path, NULL);
    assert_non_null(txt);
    assert_non_null(strstr(txt, "msg=\"to the file\""));
    unlink(path);
    rmdir(dir);
    assert_int_equal(log_open("/nonexistent-dir/x.log"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_line_has_fields),
        cmocka_unit_test(test_missing_fields_left_out),
        cmocka_unit_test(test_default_host),
        cmocka_unit_test(test_escaping_cannot_forge_lines_or_fields),
        cmocka_unit_test(test_json_lines_parse),
        cmocka_unit_test(test_levels_filter_and_parse),
        cmocka_unit_test(test_log_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
