/* Unit tests of lvxml, the agent's XML reader on libxml2: the finders, attributes and text,
 * writing an element back as libvirt wrote it, and what it refuses (not well-formed, DOCTYPE
 * and entities, external references, too large, too deep). */
#include "testlib.h"

#include <string.h>

#include "../../compute-agent/lvxml.h"
#include "xml_samples.h"

static lvxml_doc *parse_ok(const char *xml)
{
    lvxml_doc *d = NULL;
    char *err = NULL;
    if (lvxml_parse(xml, strlen(xml), "the test XML", &d, &err) < 0)
        fail_msg("%s", err);
    assert_non_null(d);
    return d;
}

static void refused(const char *xml, size_t len, const char *why)
{
    lvxml_doc *d = NULL;
    char *err = NULL;
    assert_int_equal(lvxml_parse(xml, len, "the test XML", &d, &err), -1);
    assert_null(d);
    assert_non_null(err);
    if (!strstr(err, why))
        fail_msg("got '%s', want '%s'", err, why);
    free(err);
}

static void test_finders(void **state)
{
    (void)state;
    lvxml_doc *d = parse_ok("<r a='1'><x n='1'><x n='nested'/></x><y/><x n='2'/>"
                            "<m:x xmlns:m='urn:m' n='ns'/><z><x n='deep'/></z></r>");
    const lvxml_node *r = lvxml_root(d, "r");
    assert_non_null(r);
    assert_ptr_equal(lvxml_root(d, NULL), r);
    assert_null(lvxml_root(d, "x"));
    _cleanup_free_ char *a = lvxml_attr(r, "a");
    assert_string_equal(a, "1");
    /* children of one name, in order; the namespaced one is another element */
    const char *want[] = {"1", "2"};
    size_t i = 0;
    for (const lvxml_node *x = lvxml_child(r, "x"); x; x = lvxml_next(x), i++) {
        assert_true(i < ARRAY_SIZE(want));
        _cleanup_free_ char *n = lvxml_attr(x, "n");
        assert_string_equal(n, want[i]);
    }
    assert_int_equal(i, 2);
    const lvxml_node *mx = lvxml_child(r, "*:x");
    assert_ptr_equal(mx, lvxml_child(r, "x")); /* any namespace: the first x */
    /* descendants in document order, never inside the previous one */
    const char *want_find[] = {"1", "2", "deep"};
    i = 0;
    for (const lvxml_node *x = lvxml_find(r, NULL, "x"); x; x = lvxml_find(r, x, "x"), i++) {
        assert_true(i < ARRAY_SIZE(want_find));
        _cleanup_free_ char *n = lvxml_attr(x, "n");
        assert_string_equal(n, want_find[i]);
    }
    assert_int_equal(i, 3);
    assert_null(lvxml_child(NULL, "x"));
    assert_null(lvxml_find(NULL, NULL, "x"));
    assert_null(lvxml_attr(NULL, "x"));
    assert_null(lvxml_text(NULL));
    lvxml_free(d);
    lvxml_free(NULL);
}

static void test_text_and_attrs(void **state)
{
    (void)state;
    _cleanup_(lvxml_freep) lvxml_doc *d =
        parse_ok("<r><t>  R&amp;D &lt;one&gt; &#233;&#x41; </t><e/><b>  \n </b><c><![CDATA[a<b]]></c>"
                 "<m>x<!-- no -->y</m><n><k/>text</n><q v=\"it's &quot;q&quot; &amp; &lt;\"/></r>");
    const lvxml_node *r = lvxml_root(d, "r");
    const struct {
        const char *name, *text;
    } cases[] = {{"t", "R&D <one> \xc3\xa9"
                       "A"},
                 {"e", NULL},
                 {"b", NULL},
                 {"c", "a<b"},
                 {"m", "xy"},
                 {"n", NULL}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *t = lvxml_text(lvxml_child(r, cases[i].name));
        if (cases[i].text)
            assert_non_null(t), assert_string_equal(t, cases[i].text);
        else
            assert_null(t);
        free(t);
    }
    _cleanup_free_ char *v = lvxml_attr(lvxml_child(r, "q"), "v");
    assert_string_equal(v, "it's \"q\" & <");
    assert_null(lvxml_attr(lvxml_child(r, "q"), "w"));
}

/* What libvirt writes comes back byte for byte: the domain's devices and the whole
 * capabilities (not the domain's <metadata>, which libvirt writes with libxml2's double quotes). */
static void test_format_as_libvirt(void **state)
{
    (void)state;
    _cleanup_(lvxml_freep) lvxml_doc *d = parse_ok(sample_domain_xml);
    _cleanup_free_ char *devs = lvxml_format(lvxml_child(lvxml_root(d, "domain"), "devices"));
    const char *a = strstr(sample_domain_xml, "<devices>");
    assert_int_equal(strlen(devs), strstr(a, "</devices>") + strlen("</devices>") - a);
    assert_memory_equal(devs, a, strlen(devs));
    _cleanup_(lvxml_freep) lvxml_doc *c = parse_ok(sample_caps_xml);
    _cleanup_free_ char *caps = lvxml_format(lvxml_root(c, "capabilities"));
    assert_int_equal(strlen(caps) + 1, strlen(sample_caps_xml)); /* all but the final newline */
    assert_memory_equal(caps, sample_caps_xml, strlen(caps));
    /* escaping, namespaces declared on the element, comments and CDATA */
    _cleanup_(lvxml_freep) lvxml_doc *e =
        parse_ok("<a xmlns:f=\"urn:f\" v=\"x'y&quot;&lt;&#10;\"><f:b f:k='1'>1 &lt; 2 &amp;&amp; it&apos;s</f:b>"
                 "<!-- c --><![CDATA[<raw>]]><?pi data?></a>");
    _cleanup_free_ char *s = lvxml_format(lvxml_root(e, "a"));
    assert_string_equal(s, "<a xmlns:f='urn:f' v='x&apos;y&quot;&lt;&#10;'><f:b f:k='1'>1 &lt; 2 &amp;&amp; "
                           "it&apos;s</f:b><!-- c --><![CDATA[<raw>]]><?pi data?></a>");
    _cleanup_(lvxml_freep) lvxml_doc *again = parse_ok(s);
    _cleanup_free_ char *s2 = lvxml_format(lvxml_root(again, "a"));
    assert_string_equal(s, s2);
}

static void test_refused(void **state)
{
    (void)state;
    refused("", 0, "the test XML is not well-formed XML: line 1: ");
    refused("<a>", 3, "line 1: ");
    refused("<a></b>", 7, "line 1: ");
    refused("<a/><b/>", 8, "line 1: ");
    refused("not xml", 7, "line 1: ");
    refused("<a>\n\n<b c='1' c='2'/></a>", 24, "line 3: ");
    refused("<a>&bogus;</a>", 14, "Entity 'bogus' not defined");
    refused("<a>x & y</a>", 12, "line 1: ");
    /* DTDs: internal entities (billion laughs), external entities, external DTDs */
    const char *laughs = "<!DOCTYPE a [<!ENTITY l0 'ha'><!ENTITY l1 '&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;'>"
                         "<!ENTITY l2 '&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;'>]><a>&l2;</a>";
    refused(laughs, strlen(laughs), "a <!DOCTYPE> is not allowed");
    const char *xxe = "<!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><a>&x;</a>";
    refused(xxe, strlen(xxe), "a <!DOCTYPE> is not allowed");
    const char *ext = "<!DOCTYPE a SYSTEM 'http://127.0.0.1:9/a.dtd'><a/>";
    refused(ext, strlen(ext), "a <!DOCTYPE> is not allowed");
    /* a NUL inside the bytes given */
    refused("<a>x\0y</a>", 10, "line 1: ");
    /* too deep (libxml2's limit without XML_PARSE_HUGE) */
    size_t depth = 5000;
    char *deep = xmalloc(depth * 7 + 1), *p = deep;
    for (size_t i = 0; i < depth; i++)
        p = stpcpy(p, "<a>");
    for (size_t i = 0; i < depth; i++)
        p = stpcpy(p, "</a>");
    refused(deep, (size_t)(p - deep), "line 1: ");
    free(deep);
    /* too large, checked before parsing */
    refused("<a/>", LVXML_MAX_BYTES + 1, "the test XML is too large");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finders),
        cmocka_unit_test(test_text_and_attrs),
        cmocka_unit_test(test_format_as_libvirt),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
