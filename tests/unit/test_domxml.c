/* Unit tests of domxml: what the agent reads from a domain's XML for a migration — file disks,
 * the <cpu> element (never <cputune>, which libvirt writes before it), the interfaces' bridges
 * and networks — on a realistic migratable XML and on broken ones. */
#include "testlib.h"

#include <string.h>

#include "../../compute-agent/domxml.h"

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
    assert_string_equal(ifs[1].network, "default");
    assert_string_equal(ifs[1].bridge, "virbr0");
    domxml_ifaces_free(ifs, n);
}

static void test_broken(void **state)
{
    (void)state;
    const char *bad[] = {"", "<", "<disk", "<disk type='file'", "<disk type='file'><source file='/x",
                         "<disk type='file'><source file='/x'/>", "<interface ", "<interface><source bridge='b'",
                         "<cpu", "<cpu mode='", "<disk type='file' device='disk'/><source file='/x'/>",
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disks),
        cmocka_unit_test(test_cpu_not_cputune),
        cmocka_unit_test(test_ifaces),
        cmocka_unit_test(test_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
