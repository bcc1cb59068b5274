/* Unit tests of domxml: what the agent reads from a domain's XML for a migration — file disks,
 * the <cpu> element (never <cputune>, which libvirt writes before it), the interfaces' bridges
 * and networks — on a realistic migratable XML, on what libvirtd 9.0 writes (xml_samples.h) and
 * on broken and hostile ones. */
#include "testlib.h"

#include <string.h>

#include "../../compute-agent/domxml.h"
#include "xml_samples.h"

static const char *xml_full =
    "<domain type='kvm' id='7'>\n"
    "  <name>vm1</name>\n"
    "  <vcpu placement='static'>2</vcpu>\n"
    "  <cputune>\n"
    "    <shares>2048</shares>\n"
    "    <vcpupin vcpu='0' cpuset='2'/>\n"
    "  </cputune>\n"
    "  <cpu mode='custom' match='exact' check='full'>\n"
    "    <model fallback='forbid'>Haswell-noTSX-IBRS</model>\n"
    "    <feature policy='require' name='vmx'/>\n"
    "  </cpu>\n"
    "  <devices>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2' cache='none'/>\n"
    "      <source file='/var/lib/ferry/instances/vm1.qcow2' index='2'/>\n"
    "      <target dev='vda' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <source file='/var/lib/ferry/instances/vm1.iso'/><target dev='sda'/>\n"
    "    </disk>\n"
    "    <disk type='file'>\n"
    "      <source file=\"/var/lib/ferry/local/data.raw\"/><target dev='vdb'/>\n"
    "    </disk>\n"
    "    <disk type='block' device='disk'><source dev='/dev/vg0/x'/><target dev='vdc'/></disk>\n"
    "    <interface type='bridge'><mac address='52:54:00:12:34:56'/><source bridge='br-ex'/></interface>\n"
    "    <interface type='network'><source network='default' bridge='virbr0'/></interface>\n"
    "    <interface type='user'><model type='virtio'/></interface>\n"
    "  </devices>\n"
    "</domain>\n";

static const char *str_of(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static void test_disks(void **state)
{
    (void)state;
    json_object *d = domxml_disks(xml_full);
    assert_int_equal(json_object_array_length(d), 2); /* not the cdrom, not the block device */
    json_object *d0 = json_object_array_get_idx(d, 0), *d1 = json_object_array_get_idx(d, 1);
    assert_string_equal(str_of(d0, "path"), "/var/lib/ferry/instances/vm1.qcow2");
    assert_string_equal(str_of(d0, "format"), "qcow2");
    assert_string_equal(str_of(d0, "target"), "vda");
    assert_string_equal(str_of(d1, "path"), "/var/lib/ferry/local/data.raw");
    assert_string_equal(str_of(d1, "format"), "raw"); /* no driver: raw */
    assert_string_equal(str_of(d1, "target"), "vdb");
    json_object_put(d);
}

static void test_cpu_not_cputune(void **state)
{
    (void)state;
    char *cpu = domxml_cpu(xml_full);
    assert_non_null(cpu);
    assert_true(strncmp(cpu, "<cpu mode='custom'", 18) == 0);
    assert_non_null(strstr(cpu, "Haswell-noTSX-IBRS"));
    assert_null(strstr(cpu, "cputune"));
    assert_null(strstr(cpu, "shares"));
    assert_true(strcmp(cpu + strlen(cpu) - 6, "</cpu>") == 0);
    free(cpu);
    cpu = domxml_cpu("<domain><cputune><shares>1</shares></cputune><cpu/></domain>");
    assert_string_equal(cpu, "<cpu/>");
    free(cpu);
    assert_null(domxml_cpu("<domain><vcpu>2</vcpu><cputune/></domain>"));
    assert_null(domxml_cpu("<domain><cpu mode='x'><model>qemu64</model>")); /* not closed */
}

static void test_ifaces(void **state)
{
    (void)state;
    domxml_iface *ifs;
    size_t n;
    domxml_ifaces(xml_full, &ifs, &n);
    assert_int_equal(n, 2);
    assert_string_equal(ifs[0].bridge, "br-ex");
    assert_null(ifs[0].network);
    assert_string_equal(ifs[0].mac, "52:54:00:12:34:56");
    assert_null(ifs[0].target); /* a defined, not running, domain has no tap */
    assert_string_equal(ifs[1].network, "default");
    assert_string_equal(ifs[1].bridge, "virbr0");
    assert_null(ifs[1].mac);
    domxml_ifaces_free(ifs, n);
}

static void test_broken(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "<",
                         "<disk",
                         "<disk type='file'",
                         "<disk type='file'><source file='/x",
                         "<disk type='file'><source file='/x'/>",
                         "<interface ",
                         "<interface><source bridge='b'",
                         "<cpu",
                         "<cpu mode='",
                         "<disk type='file' device='disk'/><source file='/x'/>",
                         "<disk type='file'><source file=/x/></disk>"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        json_object *d = domxml_disks(bad[i]);
        assert_non_null(d);
        assert_int_equal(json_object_array_length(d), 0);
        json_object_put(d);
        free(domxml_cpu(bad[i]));
        domxml_iface *ifs;
        size_t n;
        domxml_ifaces(bad[i], &ifs, &n);
        assert_int_equal(n, 0);
        domxml_ifaces_free(ifs, n);
    }
}

/* The slice of text from the first occurrence of from to the end of the first to after it. */
static char *slice(const char *text, const char *from, const char *to)
{
    const char *a = strstr(text, from);
    assert_non_null(a);
    const char *b = strstr(a, to);
    assert_non_null(b);
    return xstrndup(a, (size_t)(b + strlen(to) - a));
}

/* A pinned guest as libvirtd 9.0 writes it: <cputune> comes before <cpu>, and an application's
 * metadata element named cpu (its own default namespace) comes before both. The old readers
 * returned that metadata element as the guest's CPU, so check_destination compared the wrong
 * XML with the host's CPU. */
static void test_real_cpu_pinned(void **state)
{
    (void)state;
    char *cpu = domxml_cpu(sample_domain_xml);
    assert_non_null(cpu);
    char *want = slice(sample_domain_xml, "<cpu mode='custom'", "</cpu>");
    assert_string_equal(cpu, want); /* the element as libvirt wrote it, byte for byte */
    assert_null(strstr(cpu, "vcpupin"));
    assert_null(strstr(cpu, "capacity"));
    free(want);
    free(cpu);
}

/* File disks: the qcow2 overlay (not its backing files), and a file whose name libvirt escapes
 * (the old reader returned "o&apos;brien &amp; co.raw", a file that does not exist). */
static void test_real_disks(void **state)
{
    (void)state;
    json_object *d = domxml_disks(sample_domain_xml);
    assert_int_equal(json_object_array_length(d), 2); /* not block, rbd, volume or the cdrom */
    json_object *d0 = json_object_array_get_idx(d, 0), *d1 = json_object_array_get_idx(d, 1);
    assert_string_equal(str_of(d0, "path"), "/var/lib/ferry/instances/vm1/disk.qcow2");
    assert_string_equal(str_of(d0, "format"), "qcow2");
    assert_string_equal(str_of(d0, "target"), "vda");
    assert_string_equal(str_of(d1, "path"), "/var/lib/ferry/local/vm1/o'brien & co.raw");
    assert_string_equal(str_of(d1, "format"), "raw");
    assert_string_equal(str_of(d1, "target"), "vdb");
    json_object_put(d);
}

static void check_disk(const domxml_disk *k, const char *type, const char *device, const char *path, const char *format,
                       const char *target)
{
    const char *got[] = {k->type, k->device, k->path, k->format, k->target};
    const char *want[] = {type, device, path, format, target};
    for (size_t i = 0; i < ARRAY_SIZE(got); i++) {
        if (want[i])
            assert_non_null(got[i]), assert_string_equal(got[i], want[i]);
        else
            assert_null(got[i]);
    }
}

static void test_real_disk_list(void **state)
{
    (void)state;
    domxml_disk *d;
    size_t n;
    domxml_disk_list(sample_domain_xml, &d, &n);
    assert_int_equal(n, 6);
    check_disk(&d[0], "file", "disk", "/var/lib/ferry/instances/vm1/disk.qcow2", "qcow2", "vda");
    check_disk(&d[1], "file", "disk", "/var/lib/ferry/local/vm1/o'brien & co.raw", "raw", "vdb");
    check_disk(&d[2], "block", "disk", "/dev/vg0/vm1-data", "raw", "vdc");
    check_disk(&d[3], "network", "disk", NULL, "raw", "vdd"); /* rbd: no path here */
    check_disk(&d[4], "volume", "disk", NULL, "qcow2", "vde");
    check_disk(&d[5], "file", "cdrom", NULL, "raw", "sda"); /* no medium */
    domxml_disk_list_free(d, n);
    domxml_disk_list("<domain><devices/></domain>", &d, &n);
    assert_int_equal(n, 0);
    domxml_disk_list_free(d, n);
}

static void test_real_ifaces(void **state)
{
    (void)state;
    domxml_iface *ifs;
    size_t n;
    domxml_ifaces(sample_domain_xml, &ifs, &n);
    assert_int_equal(n, 2); /* the direct (macvtap) one names neither */
    assert_string_equal(ifs[0].network, "default");
    assert_string_equal(ifs[0].bridge, "virbr0");
    assert_string_equal(ifs[1].bridge, "br-ex");
    assert_null(ifs[1].network);
    /* a running domain's interfaces name their MAC and their tap */
    assert_string_equal(ifs[0].mac, "52:54:00:6b:3c:58");
    assert_string_equal(ifs[0].target, "vnet3");
    assert_string_equal(ifs[1].mac, "52:54:00:12:34:56");
    assert_string_equal(ifs[1].target, "vnet4");
    domxml_ifaces_free(ifs, n);
}

static void test_check(void **state)
{
    (void)state;
    char *err = NULL;
    assert_int_equal(domxml_check(sample_domain_xml, &err), 0);
    assert_int_equal(domxml_check("<domain/>", &err), 0);
    const struct {
        const char *xml, *why;
    } bad[] = {
        {"", "the domain XML is not well-formed XML: line 1: "},
        {"<domain><cpu></domain>", "the domain XML is not well-formed XML: line 1: "},
        {"<capabilities/>", "the domain XML has no <domain> root element"},
        {"<dom:domain xmlns:dom='urn:x'/>", "the domain XML has no <domain> root element"},
        {"<!DOCTYPE domain [<!ENTITY e 'br-ex'>]><domain/>", "a <!DOCTYPE> is not allowed"},
        {"<domain><name>&e;</name></domain>", "Entity 'e' not defined"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err = NULL;
        assert_int_equal(domxml_check(bad[i].xml, &err), -1);
        assert_non_null(err);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: got '%s', want '%s'", bad[i].xml, err, bad[i].why);
        free(err);
    }
}

/* Hostile documents give nothing: an entity would hide a bridge name from rpcin's check, a
 * DOCTYPE could pull a file in. */
static void test_hostile(void **state)
{
    (void)state;
    const char *bad[] = {
        ("<!DOCTYPE d [<!ENTITY b '../../etc'>]><domain><devices><interface type='bridge'>"
         "<source bridge='&b;'/></interface></devices></domain>"),
        "<!DOCTYPE d SYSTEM 'file:///etc/passwd'><domain><cpu mode='custom'/></domain>",
        "<?xml version='1.0' encoding='UTF-16'?><domain><cpu/></domain>\xff\xfe",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        domxml_iface *ifs;
        size_t n;
        domxml_ifaces(bad[i], &ifs, &n);
        assert_int_equal(n, 0);
        domxml_ifaces_free(ifs, n);
        assert_null(domxml_cpu(bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disks),           cmocka_unit_test(test_cpu_not_cputune),
        cmocka_unit_test(test_ifaces),          cmocka_unit_test(test_broken),
        cmocka_unit_test(test_real_cpu_pinned), cmocka_unit_test(test_real_disks),
        cmocka_unit_test(test_real_disk_list),  cmocka_unit_test(test_real_ifaces),
        cmocka_unit_test(test_check),           cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
