/* Unit tests of inventory: the domain state words and the XML readers behind the heartbeat
 * (host capabilities, the ferry metadata element, a domain's disks, qcow2 headers), on small
 * documents and on what libvirtd 9.0 writes (xml_samples.h).
 *
 * The unit tests link no libvirt, so inventory.c is included with INV_XML_ONLY: only its pure
 * parts are built. When the build links libvirt into this test and defines
 * FERRY_UNIT_LIBVIRT, inv_build and inv_domain_meta are also run against libvirt's built-in
 * test driver (test:///default, no daemon; nothing is migrated). */
#include "testlib.h"

#include <string.h>

#ifndef FERRY_UNIT_LIBVIRT
#define INV_XML_ONLY
#endif
#include "../../compute-agent/inventory.c"
#include "xml_samples.h"

/* ---- state words --------------------------------------------------------------------------- */

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(inv_state_name(VIR_DOMAIN_RUNNING), "running");
    assert_string_equal(inv_state_name(VIR_DOMAIN_BLOCKED), "running");
    assert_string_equal(inv_state_name(VIR_DOMAIN_PAUSED), "paused");
    assert_string_equal(inv_state_name(VIR_DOMAIN_SHUTDOWN), "shutdown");
    assert_string_equal(inv_state_name(VIR_DOMAIN_SHUTOFF), "shutoff");
    assert_string_equal(inv_state_name(VIR_DOMAIN_CRASHED), "crashed");
    assert_string_equal(inv_state_name(VIR_DOMAIN_PMSUSPENDED), "pmsuspended");
    assert_string_equal(inv_state_name(VIR_DOMAIN_NOSTATE), "unknown");
    assert_string_equal(inv_state_name(-1), "unknown");
    assert_string_equal(inv_state_name(99), "unknown");
}

/* ---- metadata ------------------------------------------------------------------------------ */

static void check_meta(const char *xml, const char *project, const char *id)
{
    inv_meta m = {.project = (char *)"garbage", .instance_id = (char *)"garbage"};
    meta_parse(xml, &m);
    if (project)
        assert_non_null(m.project), assert_string_equal(m.project, project);
    else
        assert_null(m.project);
    if (id)
        assert_non_null(m.instance_id), assert_string_equal(m.instance_id, id);
    else
        assert_null(m.instance_id);
    inv_meta_free(&m);
    assert_null(m.project);
    assert_null(m.instance_id);
}

static void test_meta_prefixes(void **state)
{
    (void)state;
    /* as the lab writes it, and as libvirt returns it (one line) */
    check_meta("<ferry:instance xmlns:ferry=\"https://ferry.invalid/xmlns/instance/1\">\n"
               "  <ferry:project>admin</ferry:project>\n"
               "  <ferry:id>i-0000002a</ferry:id>\n"
               "</ferry:instance>",
               "admin", "i-0000002a");
    /* no prefix (default namespace) */
    check_meta("<instance xmlns='https://ferry.invalid/xmlns/instance/1'><project>p1</project><id>i-1</id></instance>",
               "p1", "i-1");
    /* another prefix, order swapped, attributes on the children */
    check_meta("<f:instance xmlns:f='https://ferry.invalid/xmlns/instance/1'><f:id kind='ec2'>i-2</f:id>"
               "<f:project a=\"x>y\">p2</f:project></f:instance>",
               "p2", "i-2");
}

static void test_meta_text(void **state)
{
    (void)state;
    /* whitespace is trimmed, entities decoded */
    check_meta("<ferry:instance xmlns:ferry='u'><ferry:project>\n  R&amp;D &lt;one&gt; &#233;&#x41;\n"
               "</ferry:project><ferry:id> i-3 </ferry:id></ferry:instance>",
               "R&D <one> \xc3\xa9"
               "A",
               "i-3");
    /* empty and self-closing elements count as absent */
    check_meta("<ferry:instance xmlns:ferry='u'><ferry:project/><ferry:id>   </ferry:id></ferry:instance>", NULL, NULL);
    /* only one of them */
    check_meta("<ferry:instance xmlns:ferry='u'><ferry:id>i-4</ferry:id></ferry:instance>", NULL, "i-4");
    /* an unknown entity or a bare '&' is not well-formed XML: nothing is read (libvirt escapes
     * what it writes; the scanner before libxml2 kept such text as it was) */
    check_meta("<instance><project>a&bogus;b &c</project><id>i-7</id></instance>", NULL, NULL);
}

static void test_meta_lookalikes(void **state)
{
    (void)state;
    /* instance_id, projects, ids are not project / id; comments, CDATA and PIs are skipped */
    check_meta("<?xml version='1.0'?><ferry:instance xmlns:ferry='u'>"
               "<!-- <ferry:project>commented</ferry:project> -->"
               "<ferry:instance_id>no</ferry:instance_id><ferry:projects>no</ferry:projects>"
               "<ferry:ids>no</ferry:ids><![CDATA[<ferry:id>cdata</ferry:id>]]>"
               "<ferry:project>yes</ferry:project></ferry:instance>",
               "yes", NULL);
    /* a nested element with a text-less body gives NULL, not markup */
    check_meta("<instance><project><x>y</x></project><id>i-5</id></instance>", NULL, "i-5");
    /* malformed or truncated input does not crash and gives nothing (the scanner before libxml2
     * found what it could: "i-6" from the second one) */
    check_meta("<instance><project>p", NULL, NULL);
    check_meta("<instance><id>i-6</id><project", NULL, NULL);
    check_meta("", NULL, NULL);
    check_meta("not xml at all", NULL, NULL);
    check_meta("<instance><!-- unterminated", NULL, NULL);
}

/* ---- capabilities -------------------------------------------------------------------------- */

static const char caps_xml[] = "<capabilities>\n"
                               "  <host>\n"
                               "    <uuid>5eed005a-f0e1-4a2b-8c3d-000000000001</uuid>\n"
                               "    <cpu>\n"
                               "      <arch>x86_64</arch>\n"
                               "      <model>Skylake-Client-IBRS</model>\n"
                               "      <vendor>Intel</vendor>\n"
                               "      <topology sockets='1' dies='1' cores='2' threads='1'/>\n"
                               "      <feature name='vme'/>\n"
                               "      <pages unit='KiB' size='4'/>\n"
                               "    </cpu>\n"
                               "    <power_management/>\n"
                               "    <topology>\n"
                               "      <cells num='1'>\n"
                               "        <cell id='0'>\n"
                               "          <cpus num='2'>\n"
                               "            <cpu id='0' socket_id='0' core_id='0' siblings='0'/>\n"
                               "            <cpu id='1' socket_id='0' core_id='1' siblings='1'/>\n"
                               "          </cpus>\n"
                               "        </cell>\n"
                               "      </cells>\n"
                               "    </topology>\n"
                               "  </host>\n"
                               "  <guest>\n"
                               "    <os_type>hvm</os_type>\n"
                               "    <arch name='i686'><wordsize>32</wordsize></arch>\n"
                               "  </guest>\n"
                               "</capabilities>\n";

static void test_caps(void **state)
{
    (void)state;
    char *arch, *model, *cpu_xml;
    assert_int_equal(caps_parse(caps_xml, &arch, &model, &cpu_xml), 0);
    assert_string_equal(arch, "x86_64");
    assert_string_equal(model, "Skylake-Client-IBRS");
    assert_true(strncmp(cpu_xml, "<cpu>\n      <arch>x86_64</arch>", 30) == 0);
    size_t n = strlen(cpu_xml);
    assert_true(n > 6 && strcmp(cpu_xml + n - 6, "</cpu>") == 0);
    assert_null(strstr(cpu_xml, "siblings")); /* not the topology's <cpu id=...> */
    assert_non_null(strstr(cpu_xml, "<feature name='vme'/>"));
    free(arch);
    free(model);
    free(cpu_xml);
}

static void test_caps_partial(void **state)
{
    (void)state;
    char *arch, *model, *cpu_xml;
    /* libvirt's test driver: arch, no model */
    assert_int_equal(caps_parse("<capabilities><host><cpu><arch>i686</arch><features><pae/></features></cpu>"
                                "</host></capabilities>",
                                &arch, &model, &cpu_xml),
                     0);
    assert_string_equal(arch, "i686");
    assert_null(model);
    assert_string_equal(cpu_xml, "<cpu><arch>i686</arch><features><pae/></features></cpu>");
    free(arch);
    free(cpu_xml);
    /* no host cpu: only the topology's self-closing ones, which are not direct children */
    assert_int_equal(caps_parse("<capabilities><host><topology><cpu id='0'/></topology></host></capabilities>", &arch,
                                &model, &cpu_xml),
                     -1);
    assert_null(arch);
    assert_null(model);
    assert_null(cpu_xml);
    /* a guest <cpu> outside <host> is not the host's */
    assert_int_equal(
        caps_parse("<capabilities><guest><cpu><arch>x</arch></cpu></guest></capabilities>", &arch, &model, &cpu_xml),
        -1);
    assert_int_equal(caps_parse("", &arch, &model, &cpu_xml), -1);
}

/* what libvirtd 9.0 writes: the host <cpu> comes back byte for byte */
static void test_caps_real(void **state)
{
    (void)state;
    char *arch, *model, *cpu_xml;
    assert_int_equal(caps_parse(sample_caps_xml, &arch, &model, &cpu_xml), 0);
    assert_string_equal(arch, "x86_64");
    assert_string_equal(model, "Skylake-Client-noTSX-IBRS");
    const char *a = strstr(sample_caps_xml, "<cpu>"), *b = strstr(a, "</cpu>") + 6;
    assert_int_equal(strlen(cpu_xml), (size_t)(b - a));
    assert_memory_equal(cpu_xml, a, (size_t)(b - a));
    free(arch);
    free(model);
    free(cpu_xml);
}

/* ---- disks --------------------------------------------------------------------------------- */

static const char domain_xml[] =
    "<domain type='qemu' id='1'>\n"
    "  <name>vm1</name>\n"
    "  <metadata><ferry:instance xmlns:ferry='u'><ferry:id>i-1</ferry:id></ferry:instance></metadata>\n"
    "  <devices>\n"
    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2'/>\n"
    "      <source file='/tmp/lab/instances/vm1/disk&apos;s.qcow2' index='2'/>\n"
    "      <backingStore type='file' index='3'>\n"
    "        <format type='raw'/>\n"
    "        <source file='/tmp/lab/instances/_base/base.raw'/>\n"
    "        <backingStore/>\n"
    "      </backingStore>\n"
    "      <target dev='vda' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type=\"block\" device=\"disk\">\n"
    "      <source dev=\"/dev/vg/vm1-data\"/>\n"
    "      <target dev=\"vdb\" bus=\"virtio\"/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <source file='/isos/install.iso'/>\n"
    "      <target dev='sda' bus='sata'/>\n"
    "    </disk>\n"
    "    <disk type='network' device='disk'>\n"
    "      <source protocol='rbd' name='pool/vm1-c'><host name='mon1'/></source>\n"
    "      <target dev='vdc' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <target dev='vdd' bus='virtio'/>\n"
    "      <source file='/late/source.img'/>\n"
    "    </disk>\n"
    "  </devices>\n"
    "</domain>\n";

static void test_disks(void **state)
{
    (void)state;
    size_t n = 0;
    inv_disk *d = disks_parse(domain_xml, &n);
    assert_int_equal(n, 4);
    assert_string_equal(d[0].path, "/tmp/lab/instances/vm1/disk's.qcow2");
    assert_string_equal(d[0].target, "vda");
    assert_string_equal(d[1].path, "/dev/vg/vm1-data");
    assert_string_equal(d[1].target, "vdb");
    assert_null(d[2].path); /* network disk: sized by its target */
    assert_string_equal(d[2].target, "vdc");
    assert_string_equal(d[3].path, "/late/source.img");
    assert_string_equal(d[3].target, "vdd");
    disks_free(d, n);

    d = disks_parse("<domain><devices><interface type='network'/></devices></domain>", &n);
    assert_int_equal(n, 0);
    disks_free(d, n);
    d = disks_parse("", &n);
    assert_int_equal(n, 0);
    disks_free(d, n);
}

/* what libvirtd 9.0 writes: every disk but the cdrom; paths of files and block devices only */
static void test_disks_real(void **state)
{
    (void)state;
    size_t n = 0;
    inv_disk *d = disks_parse(sample_domain_xml, &n);
    assert_int_equal(n, 5);
    const char *paths[] = {"/var/lib/ferry/instances/vm1/disk.qcow2", "/var/lib/ferry/local/vm1/o'brien & co.raw",
                           "/dev/vg0/vm1-data", NULL, NULL};
    const char *targets[] = {"vda", "vdb", "vdc", "vdd", "vde"};
    for (size_t i = 0; i < n; i++) {
        if (paths[i])
            assert_non_null(d[i].path), assert_string_equal(d[i].path, paths[i]);
        else
            assert_null(d[i].path);
        assert_string_equal(d[i].target, targets[i]);
    }
    disks_free(d, n);
}

/* the metadata element of the sample, as virDomainGetMetadata returns it */
static void test_meta_real(void **state)
{
    (void)state;
    const char *a = strstr(sample_domain_xml, "<ferry:instance"), *b = strstr(a, "</ferry:instance>");
    char *el = xstrndup(a, (size_t)(b - a) + strlen("</ferry:instance>"));
    check_meta(el, "admin", "i-0000002a");
    free(el);
}

static void test_qcow2_and_rounding(void **state)
{
    (void)state;
    unsigned char h[32] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
    /* 20 GiB + 1 byte, big-endian at offset 24 */
    unsigned long long size = 20ULL * GIB + 1;
    for (int i = 0; i < 8; i++)
        h[24 + i] = (unsigned char)(size >> (56 - 8 * i));
    assert_int_equal(qcow2_virtual_size(h, sizeof(h)), size);
    assert_int_equal(round_up_gib(size), 21);
    assert_int_equal(qcow2_virtual_size(h, 31), 0); /* short read */
    h[0] = 'X';
    assert_int_equal(qcow2_virtual_size(h, sizeof(h)), 0); /* not qcow2 */
    assert_int_equal(round_up_gib(0), 0);
    assert_int_equal(round_up_gib(1), 1);
    assert_int_equal(round_up_gib(GIB), 1);
    assert_int_equal(round_up_gib(16ULL * MIB), 1);
}

#ifdef FERRY_UNIT_LIBVIRT
/* ---- against libvirt's test driver ---------------------------------------------------------- */

static void quiet(void *arg, virErrorPtr e)
{
    (void)arg;
    (void)e;
}

static void test_build_test_driver(void **state)
{
    (void)state;
    virSetErrorFunc(NULL, quiet);
    virConnectPtr conn = virConnectOpen("test:///default");
    assert_non_null(conn);
    char *err = NULL;
    json_object *o = inv_build(conn, "h1", "10.0.0.1", "/", 0, &err), *v, *d;
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "host", &v));
    assert_string_equal(json_object_get_string(v), "h1");
    assert_true(json_object_object_get_ex(o, "vcpus", &v));
    assert_int_equal(json_object_get_int(v), 16); /* virsh -c test:///default nodeinfo */
    assert_true(json_object_object_get_ex(o, "memory_mb", &v));
    assert_int_equal(json_object_get_int64(v), 3072);
    assert_true(json_object_object_get_ex(o, "arch", &v));
    assert_string_equal(json_object_get_string(v), "i686");
    assert_true(json_object_object_get_ex(o, "cpu_model", &v));
    assert_null(v);
    assert_true(json_object_object_get_ex(o, "hypervisor", &v));
    assert_string_equal(json_object_get_string(v), "test");
    assert_true(json_object_object_get_ex(o, "postcopy", &v));
    assert_false(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(o, "disk_gb", &v));
    assert_true(json_object_get_int64(v) > 0);
    assert_true(json_object_object_get_ex(o, "domains", &v));
    assert_int_equal(json_object_array_length(v), 1);
    d = json_object_array_get_idx(v, 0);
    assert_true(json_object_object_get_ex(d, "uuid", &v));
    assert_string_equal(json_object_get_string(v), "6695eb01-f6a4-8304-79aa-97f2502e193f");
    assert_true(json_object_object_get_ex(d, "state", &v));
    assert_string_equal(json_object_get_string(v), "running");
    assert_true(json_object_object_get_ex(d, "memory_mb", &v));
    assert_int_equal(json_object_get_int64(v), 8192);
    assert_true(json_object_object_get_ex(o, "qemu_version", &v));
    assert_string_equal(json_object_get_string(v), "0.0.2");
    assert_true(json_object_object_get_ex(d, "persistent", &v));
    assert_true(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(d, "project", &v));
    assert_null(v);
    json_object_put(o);

    /* memory_limit_mb caps memory and free memory (less what running guests use) */
    o = inv_build(conn, "h1", "10.0.0.1", "/nonexistent", 1000, &err);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "memory_mb", &v));
    assert_int_equal(json_object_get_int64(v), 1000);
    assert_true(json_object_object_get_ex(o, "free_memory_mb", &v));
    assert_int_equal(json_object_get_int64(v), 0); /* the running "test" guest has 8192 MiB */
    assert_true(json_object_object_get_ex(o, "disk_gb", &v));
    assert_int_equal(json_object_get_int64(v), 0); /* statvfs failed: 0, no error */
    json_object_put(o);

    /* metadata: none, then the element as the lab writes it */
    virDomainPtr dom = virDomainLookupByName(conn, "test");
    assert_non_null(dom);
    inv_meta m = {0};
    assert_int_equal(inv_domain_meta(dom, &m, &err), 0);
    assert_null(m.project);
    assert_null(m.instance_id);
    assert_int_equal(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                          "<instance><project>admin</project><id>i-0000002a</id></instance>", "ferry",
                                          INV_METADATA_NS, VIR_DOMAIN_AFFECT_CURRENT),
                     0);
    assert_int_equal(inv_domain_meta(dom, &m, &err), 0);
    assert_string_equal(m.project, "admin");
    assert_string_equal(m.instance_id, "i-0000002a");
    inv_meta_free(&m);
    o = inv_build(conn, "h1", "10.0.0.1", "/", 0, &err);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "domains", &v));
    d = json_object_array_get_idx(v, 0);
    assert_true(json_object_object_get_ex(d, "instance_id", &v));
    assert_string_equal(json_object_get_string(v), "i-0000002a");
    json_object_put(o);
    virDomainFree(dom);
    virConnectClose(conn);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_meta_prefixes),
        cmocka_unit_test(test_meta_text),
        cmocka_unit_test(test_meta_lookalikes),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_caps_partial),
        cmocka_unit_test(test_disks),
        cmocka_unit_test(test_caps_real),
        cmocka_unit_test(test_disks_real),
        cmocka_unit_test(test_meta_real),
        cmocka_unit_test(test_qcow2_and_rounding),
#ifdef FERRY_UNIT_LIBVIRT
        cmocka_unit_test(test_build_test_driver),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
