#include "agentmsg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int agentmsg_host_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > AGENTMSG_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && (i == 0 || (s[i] != '.' && s[i] != '_' && s[i] != '-')))
            return 0;
    return 1;
}

static int port_ok(const char *p)
{
    if (!*p || strlen(p) > 5)
        return 0;
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535;
}

int agentmsg_address_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > AGENTMSG_MAX_NAME)
        return 0;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end == s + 1)
            return 0;
        for (const char *p = s + 1; p < end; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') || *p == ':' ||
                  *p == '.'))
                return 0;
        return end[1] == 0 || (end[1] == ':' && port_ok(end + 2));
    }
    const char *colon = strchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : n;
    if (hl == 0 || (colon && !port_ok(colon + 1)))
        return 0;
    /* a name of RFC 1123 labels (an IPv4 address is one too) */
    size_t label = 0;
    for (size_t i = 0; i < hl; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if (is_alnum(c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && s[hl - 1] != '-';
}

/* a short text without control bytes; multiline allows \n \r \t */
static int text_ok(const char *s, size_t max, int multiline)
{
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(multiline && (c == '\n' || c == '\r' || c == '\t'))) || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Reads optional string field key of o into *out (NULL when absent or null). -1 with *why
 * when present with another type or not a text within max. */
static int get_text(json_object *o, const char *key, size_t max, int multiline, const char **out, char **why,
                    const char *where)
{
    json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_string)) {
        *why = xasprintf("%s%s: not a string", where, key);
        return -1;
    }
    const char *s = json_object_get_string(v);
    if ((size_t)json_object_get_string_len(v) != strlen(s) || !text_ok(s, max, multiline)) {
        *why = xasprintf("%s%s: longer than %zu bytes or holding control characters", where, key, max);
        return -1;
    }
    *out = s;
    return 0;
}

/* Reads optional integer field key of o into *out (def when absent); -1 with *why when
 * present with another type or outside [0, max]. */
static int get_count(json_object *o, const char *key, int64_t max, int64_t def, int64_t *out, char **why,
                     const char *where)
{
    json_object *v;
    *out = def;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_int)) {
        *why = xasprintf("%s%s: not an integer", where, key);
        return -1;
    }
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno != 0 || x < 0 || x > max) {
        *why = xasprintf("%s%s: %lld is outside 0..%lld", where, key, (long long)x, (long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

static int instance_id_ok(const char *s)
{
    if (strlen(s) != 10 || s[0] != 'i' || s[1] != '-')
        return 0;
    for (int i = 2; i < 10; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Checks domain d of a heartbeat into *out; its refusal, if any, goes to out->bad. */
static void read_domain(json_object *d, const agentmsg_limits *l, const agentmsg_heartbeat *h, size_t idx,
                        agentmsg_domain *out)
{
    memset(out, 0, sizeof(*out));
    char *why = NULL;
    _cleanup_free_ char *where = xasprintf("domains[%zu].", idx);
    if (!json_object_is_type(d, json_type_object)) {
        out->bad = xasprintf("domains[%zu]: not an object", idx);
        return;
    }
    if (get_text(d, "uuid", 36, 0, &out->uuid, &why, where) < 0 ||
        get_text(d, "name", AGENTMSG_MAX_NAME, 0, &out->name, &why, where) < 0 ||
        get_text(d, "project", AGENTMSG_MAX_NAME, 0, &out->project, &why, where) < 0 ||
        get_text(d, "instance_id", 10, 0, &out->instance_id, &why, where) < 0 ||
        get_text(d, "state", 32, 0, &out->state, &why, where) < 0 ||
        get_count(d, "vcpus", l->max_vcpus, 0, &out->vcpus, &why, where) < 0 ||
        get_count(d, "memory_mb", l->max_memory_mb, 0, &out->memory_mb, &why, where) < 0 ||
        get_count(d, "disk_gb", l->max_disk_gb, 0, &out->disk_gb, &why, where) < 0) {
        out->bad = why;
        return;
    }
    if (!out->uuid || !uuid_valid(out->uuid))
        out->bad = xasprintf("%suuid: missing or not a UUID", where);
    else if (!out->name || !*out->name)
        out->bad = xasprintf("%sname: missing", where);
    else if (out->instance_id && !instance_id_ok(out->instance_id))
        out->bad = xasprintf("%sinstance_id: '%s' is not i- and 8 hex digits", where, out->instance_id);
    if (out->bad)
        return;
    /* the same guest twice in one report: the first stands */
    for (size_t i = 0; i < idx; i++) {
        const agentmsg_domain *o = &h->domains[i];
        if (o->bad)
            continue;
        if (strcmp(o->uuid, out->uuid) == 0) {
            out->bad = xasprintf("%suuid: %s listed twice", where, out->uuid);
            return;
        }
        if (out->instance_id && o->instance_id && strcmp(o->instance_id, out->instance_id) == 0) {
            out->bad = xasprintf("%sinstance_id: %s also names domain %s", where, out->instance_id, o->uuid);
            return;
        }
    }
}

int agentmsg_heartbeat_parse(json_object *b, const agentmsg_limits *l, agentmsg_heartbeat *out, char **why)
{
    memset(out, 0, sizeof(*out));
    out->seq = -1;
    if (!b || !json_object_is_type(b, json_type_object)) {
        *why = xstrdup("body: not an object");
        return -1;
    }
    const char *w = "body.";
    if (get_text(b, "address", AGENTMSG_MAX_NAME, 0, &out->address, why, w) < 0 ||
        get_text(b, "migration_address", AGENTMSG_MAX_NAME, 0, &out->migration_address, why, w) < 0 ||
        get_text(b, "arch", 32, 0, &out->arch, why, w) < 0 ||
        get_text(b, "cpu_model", 128, 0, &out->cpu_model, why, w) < 0 ||
        get_text(b, "cpu_xml", AGENTMSG_MAX_CPU_XML, 1, &out->cpu_xml, why, w) < 0 ||
        get_text(b, "hypervisor", 32, 0, &out->hypervisor, why, w) < 0 ||
        get_text(b, "libvirt_version", 64, 0, &out->libvirt_version, why, w) < 0 ||
        get_text(b, "qemu_version", 64, 0, &out->qemu_version, why, w) < 0 ||
        get_text(b, "boot", 36, 0, &out->boot, why, w) < 0 ||
        get_count(b, "seq", INT64_MAX, -1, &out->seq, why, w) < 0 ||
        get_count(b, "vcpus", l->max_vcpus, 0, &out->vcpus, why, w) < 0 ||
        get_count(b, "memory_mb", l->max_memory_mb, 0, &out->memory_mb, why, w) < 0 ||
        get_count(b, "disk_gb", l->max_disk_gb, 0, &out->disk_gb, why, w) < 0)
        return -1;
    if (out->address && *out->address && !agentmsg_address_ok(out->address)) {
        *why = xasprintf("body.address: '%s' is not a host name or IP address with an optional port", out->address);
        return -1;
    }
    const char *ma = out->migration_address;
    if (ma && (!*ma || !agentmsg_address_ok(ma) || (ma[0] == '[' ? ma[strlen(ma) - 1] != ']' : !!strchr(ma, ':')))) {
        *why = xasprintf("body.migration_address: '%s' is not a host name or IP address without a port", ma);
        return -1;
    }
    if (out->boot && !uuid_valid(out->boot)) {
        *why = xstrdup("body.boot: not a UUID");
        return -1;
    }
    json_object *v;
    if (json_object_object_get_ex(b, "postcopy", &v) && v) {
        if (!json_object_is_type(v, json_type_boolean)) {
            *why = xstrdup("body.postcopy: not a boolean");
            return -1;
        }
        out->postcopy = json_object_get_boolean(v);
    }
    json_object *doms = NULL;
    if (!json_object_object_get_ex(b, "domains", &doms) || !doms)
        return 0;
    if (!json_object_is_type(doms, json_type_array)) {
        *why = xstrdup("body.domains: not an array");
        return -1;
    }
    size_t n = json_object_array_length(doms);
    if (n > AGENTMSG_MAX_DOMAINS) {
        *why = xasprintf("body.domains: %zu domains, more than %d", n, AGENTMSG_MAX_DOMAINS);
        return -1;
    }
    out->domains = n ? xcalloc(n, sizeof(*out->domains)) : NULL;
    for (size_t i = 0; i < n; i++) {
        read_domain(json_object_array_get_idx(doms, i), l, out, i, &out->domains[i]);
        out->n_domains = i + 1;
    }
    return 0;
}

void agentmsg_heartbeat_clear(agentmsg_heartbeat *h)
{
    for (size_t i = 0; i < h->n_domains; i++)
        free(h->domains[i].bad);
    free(h->domains);
    h->domains = NULL;
    h->n_domains = 0;
}

agentmsg_key_kind agentmsg_parse_key(const char *key, char *host, size_t hostlen, int64_t *migration, char *what,
                                     size_t whatlen)
{
    size_t kl = strlen(key);
    /* host.<name>.heartbeat, where a name may hold dots (c1.example.com) */
    if (kl > 15 && strncmp(key, "host.", 5) == 0 && strcmp(key + kl - 10, ".heartbeat") == 0) {
        size_t hl = kl - 15;
        if (hl >= hostlen)
            return AGENTMSG_KEY_OTHER;
        memcpy(host, key + 5, hl);
        host[hl] = 0;
        return agentmsg_host_name_ok(host) ? AGENTMSG_KEY_HEARTBEAT : AGENTMSG_KEY_OTHER;
    }
    if (strncmp(key, "migration.", 10) == 0) {
        const char *p = key + 10;
        int64_t id = 0;
        int digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits >= 18)
                return AGENTMSG_KEY_OTHER;
            id = id * 10 + (*p - '0');
        }
        if (digits == 0 || id < 1 || *p != '.')
            return AGENTMSG_KEY_OTHER;
        p++;
        size_t wl = strlen(p);
        if (wl == 0 || wl >= whatlen)
            return AGENTMSG_KEY_OTHER;
        for (size_t i = 0; i < wl; i++)
            if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '_'))
                return AGENTMSG_KEY_OTHER;
        memcpy(what, p, wl + 1);
        *migration = id;
        return AGENTMSG_KEY_MIGRATION;
    }
    return AGENTMSG_KEY_OTHER;
}
