/* novaver: the pure rules of ferry's Nova compute API (see novaver.h and scheduler/API.md,
 * "Nova compute API"). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "novaver.h"

/* The longest microversion text looked at: "2." and three digits, with room to spare. */
#define MAX_VERSION_TEXT 16

/* "2.N" or "latest" (len bytes of v, spaces around trimmed): NOVAVER_OK with *minor. */
static novaver_refusal parse_one(const char *v, size_t len, int *minor, char **err)
{
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 6 && strncasecmp(v, "latest", 6) == 0) {
        *minor = NOVAVER_MAX_MINOR;
        return NOVAVER_OK;
    }
    if (len == 0 || len > MAX_VERSION_TEXT) {
        *err = xasprintf("the API version is not of the form 2.N (%zu bytes)", len);
        return NOVAVER_MALFORMED;
    }
    char buf[MAX_VERSION_TEXT + 1];
    memcpy(buf, v, len);
    buf[len] = '\0';
    const char *dot = strchr(buf, '.');
    int ok = dot && dot > buf && dot[1];
    for (const char *p = buf; ok && *p; p++)
        ok = p == dot || isdigit((unsigned char)*p);
    if (!ok) {
        _cleanup_free_ char *shown = xstrdup(buf);
        for (char *p = shown; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        *err = xasprintf("API version string %s is of invalid format: it must be of the form 2.N or latest", shown);
        return NOVAVER_MALFORMED;
    }
    long major = strtol(buf, NULL, 10), mi = strtol(dot + 1, NULL, 10);
    if (major != 2 || dot - buf > 3 || strlen(dot + 1) > 3 || mi < NOVAVER_MIN_MINOR || mi > NOVAVER_MAX_MINOR) {
        *err = xasprintf("version %s is not supported by the API: minimum is 2.%d and maximum is 2.%d", buf,
                         NOVAVER_MIN_MINOR, NOVAVER_MAX_MINOR);
        return NOVAVER_UNSUPPORTED;
    }
    *minor = (int)mi;
    return NOVAVER_OK;
}

novaver_refusal novaver_parse(const char *nova_hdr, const char *os_hdr, int *minor, char **err)
{
    if (os_hdr) {
        /* comma-separated "service version" pairs: only compute's is ours */
        const char *p = os_hdr;
        while (*p) {
            size_t n = strcspn(p, ",");
            const char *q = p;
            size_t m = n;
            while (m && (*q == ' ' || *q == '\t'))
                q++, m--;
            if (m > 8 && strncasecmp(q, "compute", 7) == 0 && (q[7] == ' ' || q[7] == '\t'))
                return parse_one(q + 8, m - 8, minor, err);
            p += n;
            if (*p == ',')
                p++;
        }
    }
    if (nova_hdr)
        return parse_one(nova_hdr, strlen(nova_hdr), minor, err);
    *minor = NOVAVER_MIN_MINOR;
    return NOVAVER_OK;
}

/* ferry's migration statuses and Nova's names for them, in the order of their lives */
static const struct {
    const char *ferry, *nova;
    int in_progress;
} migration_statuses[] = {
    {"queued", "queued", 1},        {"scheduled", "preparing", 1}, {"preparing", "preparing", 1},
    {"running", "running", 1},      {"completing", "post-migrating", 1}, {"completed", "completed", 0},
    {"failed", "failed", 0},        {"error", "error", 0},         {"cancelled", "cancelled", 0},
};

const char *novaver_migration_status(const char *ferry_status)
{
    for (size_t i = 0; ferry_status && i < ARRAY_SIZE(migration_statuses); i++)
        if (strcmp(ferry_status, migration_statuses[i].ferry) == 0)
            return migration_statuses[i].nova;
    return "error";
}

int novaver_migration_in_progress(const char *ferry_status)
{
    for (size_t i = 0; ferry_status && i < ARRAY_SIZE(migration_statuses); i++)
        if (strcmp(ferry_status, migration_statuses[i].ferry) == 0)
            return migration_statuses[i].in_progress;
    return 0;
}

const char *novaver_server_status(const char *vm_state, const char *task_state)
{
    if (task_state && strcmp(task_state, "migrating") == 0)
        return "MIGRATING";
    if (!vm_state)
        return "UNKNOWN";
    if (strcmp(vm_state, "running") == 0)
        return "ACTIVE";
    if (strcmp(vm_state, "paused") == 0)
        return "PAUSED";
    if (strcmp(vm_state, "stopped") == 0)
        return "SHUTOFF";
    if (strcmp(vm_state, "building") == 0)
        return "BUILD";
    if (strcmp(vm_state, "error") == 0)
        return "ERROR";
    if (strcmp(vm_state, "deleted") == 0)
        return "DELETED";
    return "UNKNOWN";
}

const char *novaver_vm_state(const char *vm_state)
{
    if (!vm_state)
        return "error";
    if (strcmp(vm_state, "running") == 0)
        return "active";
    if (strcmp(vm_state, "paused") == 0)
        return "paused";
    if (strcmp(vm_state, "stopped") == 0)
        return "stopped";
    if (strcmp(vm_state, "building") == 0)
        return "building";
    if (strcmp(vm_state, "deleted") == 0)
        return "deleted";
    return "error";
}

/* Nova's boolean parameter: a JSON boolean (2.1's schema also takes the strings "true" and
 * "false" in any case; so does ferry). 0 with *out, or -1. */
static int get_bool(json_object *v, int *out)
{
    if (json_object_is_type(v, json_type_boolean)) {
        *out = json_object_get_boolean(v);
        return 0;
    }
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
            *out = strcasecmp(s, "true") == 0;
            return 0;
        }
    }
    return -1;
}

static const char *jtype(json_object *v)
{
    return v ? json_type_to_name(json_object_get_type(v)) : "null";
}

int novaver_migrate_live(json_object *action, int minor, json_object **contract, char **err)
{
    if (!json_object_is_type(action, json_type_object)) {
        *err = xasprintf("os-migrateLive must be an object, not %s", jtype(action));
        return -1;
    }
    int old = minor < 25, b = 0;
    json_object *host = NULL, *bm = NULL, *doc = NULL, *force = NULL, *pc = NULL;
    int has_host = json_object_object_get_ex(action, "host", &host);
    int has_bm = json_object_object_get_ex(action, "block_migration", &bm);
    int has_doc = json_object_object_get_ex(action, "disk_over_commit", &doc);
    int has_force = json_object_object_get_ex(action, "force", &force);
    int has_pc = json_object_object_get_ex(action, "post_copy", &pc);
    json_object_object_foreach(action, k, v)
    {
        (void)v;
        if (strcmp(k, "host") != 0 && strcmp(k, "block_migration") != 0 && strcmp(k, "disk_over_commit") != 0 &&
            strcmp(k, "force") != 0 && strcmp(k, "post_copy") != 0) {
            _cleanup_free_ char *shown = xstrndup(k, 64);
            for (char *p = shown; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                    *p = '?';
            *err = xasprintf("os-migrateLive: additional property %s is not allowed", shown);
            return -1;
        }
    }
    if (!has_host) {
        *err = xstrdup("os-migrateLive: host is a required property (a host name or null)");
        return -1;
    }
    if (host && !json_object_is_type(host, json_type_string)) {
        *err = xasprintf("os-migrateLive: host must be a string or null, not %s", jtype(host));
        return -1;
    }
    if (!has_bm) {
        *err = xstrdup("os-migrateLive: block_migration is a required property");
        return -1;
    }
    int auto_bm = !old && json_object_is_type(bm, json_type_string) &&
                  strcmp(json_object_get_string(bm), "auto") == 0;
    if (!auto_bm && get_bool(bm, &b) < 0) {
        *err = xasprintf("os-migrateLive: block_migration must be a boolean%s", old ? "" : " or \"auto\"");
        return -1;
    }
    int d = 0;
    if (old && !has_doc) {
        *err = xstrdup("os-migrateLive: disk_over_commit is a required property before microversion 2.25");
        return -1;
    }
    if (!old && has_doc) {
        *err = xstrdup("os-migrateLive: additional property disk_over_commit is not allowed from microversion 2.25");
        return -1;
    }
    if (has_doc && get_bool(doc, &d) < 0) {
        *err = xstrdup("os-migrateLive: disk_over_commit must be a boolean");
        return -1;
    }
    int f = 0;
    if (has_force && (minor < 30 || minor > 67)) {
        *err = xstrdup("os-migrateLive: additional property force is only allowed in microversions 2.30 to 2.67");
        return -1;
    }
    if (has_force && get_bool(force, &f) < 0) {
        *err = xstrdup("os-migrateLive: force must be a boolean");
        return -1;
    }
    int p = 0;
    if (has_pc && get_bool(pc, &p) < 0) {
        *err = xstrdup("os-migrateLive: post_copy must be a boolean");
        return -1;
    }
    json_object *c = json_object_new_object();
    json_object_object_add(c, "host", host ? json_object_new_string(json_object_get_string(host)) : NULL);
    json_object_object_add(c, "block_migration", auto_bm ? json_object_new_string("auto") : json_object_new_boolean(b));
    json_object_object_add(c, "disk_over_commit", json_object_new_boolean(d));
    json_object_object_add(c, "post_copy", json_object_new_boolean(p));
    *contract = c;
    return 0;
}

int novaver_name_regex(const char *pattern, regex_t *re, char **err)
{
    size_t len = strlen(pattern);
    if (len > NOVAVER_MAX_PATTERN) {
        *err = xasprintf("name: the pattern is %zu bytes, at most %d", len, NOVAVER_MAX_PATTERN);
        return -1;
    }
    /* glibc's regcomp takes memory and time exponential in stacked repetitions ("a++++..."
     * or "(a{30}){30}", found by fuzz.nova): at most NOVAVER_MAX_REPEATS operators, never
     * one right after another, and interval bounds of at most NOVAVER_MAX_INTERVAL */
    int repeats = 0, prev_op = 0;
    for (const char *p = pattern; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch == 0x7f) {
            *err = xstrdup("name: the pattern contains a control character");
            return -1;
        }
        if (ch == '\\' && p[1]) {
            p++;
            prev_op = 0;
            continue;
        }
        int op = ch == '*' || ch == '+' || ch == '?' || ch == '{';
        if (op && (prev_op || ++repeats > NOVAVER_MAX_REPEATS)) {
            *err = xasprintf("name: the pattern repeats too much (at most %d repetition operators, none stacked)",
                             NOVAVER_MAX_REPEATS);
            return -1;
        }
        if (ch == '{') {
            const char *q = p + 1;
            while (isdigit((unsigned char)*q) || *q == ',') {
                if (isdigit((unsigned char)*q) && strtol(q, NULL, 10) > NOVAVER_MAX_INTERVAL) {
                    *err = xasprintf("name: an interval bound is at most %d", NOVAVER_MAX_INTERVAL);
                    return -1;
                }
                while (isdigit((unsigned char)*q))
                    q++;
                if (*q == ',')
                    q++;
            }
            if (*q == '}')
                p = q;
        }
        prev_op = op;
    }
    int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, re, why, sizeof(why));
        *err = xasprintf("name: not a regular expression: %s", why);
        return -1;
    }
    return 0;
}

int novaver_is_uuid(const char *id)
{
    static const int dash[] = {8, 13, 18, 23};
    size_t n = strlen(id);
    if (n != 36)
        return 0;
    for (size_t i = 0, k = 0; i < n; i++) {
        if (k < 4 && (int)i == dash[k]) {
            if (id[i] != '-')
                return 0;
            k++;
        } else if (!isxdigit((unsigned char)id[i])) {
            return 0;
        }
    }
    return 1;
}
