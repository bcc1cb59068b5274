/* domxml: what the agent reads from a domain's XML for a migration (see domxml.h). */
#include "domxml.h"

#include <string.h>

#include "util.h"

/* The value of attribute attr inside the tag text [tag, end) (quoted with ' or "); NULL if absent. */
static char *xml_attr(const char *tag, const char *end, const char *attr)
{
    if (!end)
        return NULL;
    size_t al = strlen(attr);
    for (const char *p = tag; p && p < end; p++) {
        p = strstr(p, attr);
        if (!p || p >= end)
            return NULL;
        if ((p == tag || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') && p[al] == '=' &&
            (p[al + 1] == '\'' || p[al + 1] == '"')) {
            char q = p[al + 1];
            const char *s = p + al + 2;
            if (s > end)
                return NULL;
            const char *e = memchr(s, q, (size_t)(end - s));
            if (!e)
                return NULL;
            return xstrndup(s, (size_t)(e - s));
        }
    }
    return NULL;
}

/* The end of element starting at p (after its closing tag or "/>"). */
static const char *element_end(const char *p, const char *name)
{
    const char *gt = strchr(p, '>');
    if (!gt)
        return NULL;
    if (gt > p && gt[-1] == '/')
        return gt + 1;
    _cleanup_free_ char *close = xasprintf("</%s>", name);
    const char *e = strstr(gt, close);
    return e ? e + strlen(close) : NULL;
}

/* The first start tag <name followed by a space, '>' or '/' at or after p (so "<cpu" does not
 * find "<cputune>"), or NULL. */
static const char *find_tag(const char *p, const char *name)
{
    size_t n = strlen(name);
    for (; (p = strstr(p, name)); p++) {
        char c = p[n];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '>' || c == '/')
            return p;
    }
    return NULL;
}

json_object *domxml_disks(const char *xml)
{
    json_object *arr = json_object_new_array();
    for (const char *p = xml; (p = find_tag(p, "<disk")); p++) {
        const char *end = element_end(p, "disk");
        if (!end)
            break;
        const char *gt = strchr(p, '>');
        _cleanup_free_ char *type = xml_attr(p, gt, "type");
        _cleanup_free_ char *device = xml_attr(p, gt, "device");
        const char *src = find_tag(p, "<source");
        const char *drv = find_tag(p, "<driver");
        const char *tgt = find_tag(p, "<target");
        if (type && strcmp(type, "file") == 0 && (!device || strcmp(device, "disk") == 0) && src && src < end) {
            _cleanup_free_ char *path = xml_attr(src, strchr(src, '>'), "file");
            _cleanup_free_ char *fmt = drv && drv < end ? xml_attr(drv, strchr(drv, '>'), "type") : NULL;
            _cleanup_free_ char *dev = tgt && tgt < end ? xml_attr(tgt, strchr(tgt, '>'), "dev") : NULL;
            if (path) {
                json_object *d = json_object_new_object();
                json_object_object_add(d, "path", json_object_new_string(path));
                json_object_object_add(d, "format", json_object_new_string(fmt ? fmt : "raw"));
                if (dev)
                    json_object_object_add(d, "target", json_object_new_string(dev));
                json_object_array_add(arr, d);
            }
        }
        p = end - 1;
    }
    return arr;
}

char *domxml_cpu(const char *xml)
{
    const char *cpu = find_tag(xml, "<cpu");
    if (!cpu)
        return NULL;
    const char *end = element_end(cpu, "cpu");
    return end ? xstrndup(cpu, (size_t)(end - cpu)) : NULL;
}

void domxml_ifaces(const char *xml, domxml_iface **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    for (const char *p = xml; (p = find_tag(p, "<interface")); p++) {
        const char *end = element_end(p, "interface");
        if (!end)
            break;
        const char *src = find_tag(p, "<source");
        if (src && src < end) {
            const char *gt = strchr(src, '>');
            char *br = xml_attr(src, gt, "bridge"), *net = xml_attr(src, gt, "network");
            if (br || net) {
                *out = xrealloc(*out, (*n + 1) * sizeof(**out));
                (*out)[*n].bridge = br;
                (*out)[*n].network = net;
                (*n)++;
            }
        }
        p = end - 1;
    }
}

void domxml_ifaces_free(domxml_iface *ifs, size_t n)
{
    for (size_t i = 0; ifs && i < n; i++) {
        free(ifs[i].bridge);
        free(ifs[i].network);
    }
    free(ifs);
}
