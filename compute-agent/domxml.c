/* domxml: what the agent reads from a domain's XML (see domxml.h), on lvxml. */
#include "domxml.h"

#include <string.h>

#include "lvxml.h"

#define WHAT "the domain XML"

/* Parses xml; NULL when it is not well-formed (what the readers then find: nothing). */
static lvxml_doc *parse(const char *xml)
{
    lvxml_doc *d = NULL;
    char *err = NULL;
    if (!xml || lvxml_parse(xml, strlen(xml), WHAT, &d, &err) < 0) {
        free(err);
        return NULL;
    }
    return d;
}

int domxml_check(const char *xml, char **err)
{
    _cleanup_(lvxml_freep) lvxml_doc *d = NULL;
    if (lvxml_parse(xml, strlen(xml), WHAT, &d, err) < 0)
        return -1;
    if (!lvxml_root(d, "domain")) {
        *err = xstrdup(WHAT " has no <domain> root element");
        return -1;
    }
    return 0;
}

void domxml_disk_list(const char *xml, domxml_disk **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    _cleanup_(lvxml_freep) lvxml_doc *d = parse(xml);
    const lvxml_node *devices = lvxml_child(lvxml_root(d, "domain"), "devices");
    for (const lvxml_node *k = lvxml_child(devices, "disk"); k; k = lvxml_next(k)) {
        /* the disk's own <source> and <driver>, not those inside <backingStore> or <mirror> */
        const lvxml_node *src = lvxml_child(k, "source");
        char *path = lvxml_attr(src, "file");
        if (!path)
            path = lvxml_attr(src, "dev");
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[*n] = (domxml_disk){
            .type = lvxml_attr(k, "type"),
            .device = lvxml_attr(k, "device"),
            .path = path,
            .format = lvxml_attr(lvxml_child(k, "driver"), "type"),
            .target = lvxml_attr(lvxml_child(k, "target"), "dev"),
        };
        (*n)++;
    }
}

void domxml_disk_list_free(domxml_disk *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++) {
        free(d[i].type);
        free(d[i].device);
        free(d[i].path);
        free(d[i].format);
        free(d[i].target);
    }
    free(d);
}

json_object *domxml_disks(const char *xml)
{
    json_object *arr = json_object_new_array();
    domxml_disk *d;
    size_t n;
    domxml_disk_list(xml, &d, &n);
    for (size_t i = 0; i < n; i++) {
        const domxml_disk *k = &d[i];
        if (!k->type || strcmp(k->type, "file") != 0 || (k->device && strcmp(k->device, "disk") != 0) || !k->path)
            continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(k->path));
        json_object_object_add(o, "format", json_object_new_string(k->format ? k->format : "raw"));
        if (k->target)
            json_object_object_add(o, "target", json_object_new_string(k->target));
        json_object_array_add(arr, o);
    }
    domxml_disk_list_free(d, n);
    return arr;
}

char *domxml_cpu(const char *xml)
{
    _cleanup_(lvxml_freep) lvxml_doc *d = parse(xml);
    const lvxml_node *cpu = lvxml_child(lvxml_root(d, "domain"), "cpu");
    return cpu ? lvxml_format(cpu) : NULL;
}

void domxml_ifaces(const char *xml, domxml_iface **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    _cleanup_(lvxml_freep) lvxml_doc *d = parse(xml);
    const lvxml_node *root = lvxml_root(d, NULL), *top = lvxml_root(d, "interface");
    for (const lvxml_node *i = top ? top : lvxml_find(root, NULL, "interface"); i;
         i = lvxml_find(root, i, "interface")) {
        const lvxml_node *src = lvxml_child(i, "source");
        char *br = lvxml_attr(src, "bridge"), *net = lvxml_attr(src, "network");
        if (br || net) {
            *out = xrealloc(*out, (*n + 1) * sizeof(**out));
            (*out)[*n] = (domxml_iface){.bridge = br,
                                        .network = net,
                                        .mac = lvxml_attr(lvxml_child(i, "mac"), "address"),
                                        .target = lvxml_attr(lvxml_child(i, "target"), "dev")};
            (*n)++;
        }
    }
}

void domxml_ifaces_free(domxml_iface *ifs, size_t n)
{
    for (size_t i = 0; ifs && i < n; i++) {
        free(ifs[i].bridge);
        free(ifs[i].network);
        free(ifs[i].mac);
        free(ifs[i].target);
    }
    free(ifs);
}
