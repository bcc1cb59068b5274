/* libFuzzer target: the domain-XML readers an attacker reaches — check_destination's
 * domain_xml comes from the source agent — in compute-agent/domxml.c (the check, disks, <cpu>,
 * interfaces; on lvxml.c, libxml2) and the heartbeat's readers in compute-agent/inventory.c
 * (capabilities, ferry metadata, disks, qcow2 header), which is included here with
 * INV_XML_ONLY (its pure part, as tests/unit/test_inventory.c does). Beyond not crashing: what
 * domxml_cpu returns is a <cpu> element, never <cputune>, and only from a document domxml_check
 * accepts; a refusal says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute-agent/domxml.h"

#define INV_XML_ONLY
#include "../../compute-agent/inventory.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = xstrndup((const char *)data, size); /* stops at a NUL, as libvirt's text would */

    char *why = NULL;
    int valid = domxml_check(xml, &why) == 0;
    if (!valid && (!why || !*why))
        abort();
    free(why);
    domxml_disk *all;
    size_t nall;
    domxml_disk_list(xml, &all, &nall);
    if (nall && !valid)
        abort();
    domxml_disk_list_free(all, nall);

    json_object *d = domxml_disks(xml);
    for (size_t i = 0; i < json_object_array_length(d); i++) {
        json_object *v;
        if (!json_object_object_get_ex(json_object_array_get_idx(d, i), "path", &v))
            abort(); /* every disk listed has a path */
    }
    json_object_put(d);
    char *cpu = domxml_cpu(xml);
    if (cpu && (strncmp(cpu, "<cpu", 4) != 0 || strncmp(cpu, "<cputune", 8) == 0 || !valid))
        abort();
    free(cpu);
    domxml_iface *ifs;
    size_t n;
    domxml_ifaces(xml, &ifs, &n);
    for (size_t i = 0; i < n; i++)
        if (!ifs[i].bridge && !ifs[i].network)
            abort();
    domxml_ifaces_free(ifs, n);

    char *arch, *model, *cpu_xml;
    if (caps_parse(xml, &arch, &model, &cpu_xml) == 0) {
        free(arch);
        free(model);
        free(cpu_xml);
    }
    inv_meta m;
    meta_parse(xml, &m);
    inv_meta_free(&m);
    size_t nd = 0;
    inv_disk *disks = disks_parse(xml, &nd);
    disks_free(disks, nd);
    (void)qcow2_virtual_size(data, size);
    (void)round_up_gib(size);
    free(xml);
    return 0;
}
