/* policy: a policy.set body read and checked (policy.h). */
#include "policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "orchreply.h"

/* name as a word of 1 to 63 of a-z 0-9 . _ - starting with a letter or digit; field names it */
static int word_check(const char *field, const char *what, const char *name, char **why)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n <= 63 && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
    for (size_t i = 1; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    }
    if (!ok) {
        *why = xasprintf("%s: a %s is 1 to 63 of a-z 0-9 . _ - starting with a letter or digit", field, what);
        return -1;
    }
    return 0;
}

int policy_name_check(const char *name, char **why)
{
    return word_check("body.name", "policy name", name, why);
}

int policy_group_check(const char *field, const char *group, char **why)
{
    return word_check(field, "host group", group, why);
}

/* The keys of o outside keys (NULL-terminated): -1 with *why naming the first. */
static int only_keys(json_object *o, const char *where, const char *const *keys, char **why)
{
    json_object_object_foreach(o, k, v)
    {
        (void)v;
        int known = 0;
        for (const char *const *p = keys; *p && !known; p++)
            known = strcmp(*p, k) == 0;
        if (!known) {
            _cleanup_free_ char *pk = orchreply_printable(k, strlen(k), 64);
            *why = xasprintf("%s%s: unknown field", where, pk);
            return -1;
        }
    }
    return 0;
}

/* Optional object key of o into *out (NULL when absent); -1 when present and not an object. */
static int get_obj(json_object *o, const char *where, const char *key, json_object **out, char **why)
{
    *out = NULL;
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_object)) {
        *why = xasprintf("%s%s: expected an object", where, key);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_int(json_object *o, const char *where, const char *key, int64_t lo, int64_t hi, int *out, char **why)
{
    int64_t v = *out;
    if (orchreply_get_int(o, where, key, 0, lo, hi, &v, why) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

int policy_read(json_object *body, policy *out, char **why)
{
    policy p = {.priority = 0,
                .post_copy = -1,
                .auto_converge = -1,
                .postcopy_after_iterations = -1,
                .bandwidth_mib_s = -1,
                .max_downtime_ms = -1,
                .completion_timeout_s = -1,
                .completion_action = -1,
                .parallel_connections = -1,
                .xbzrle_cache_mib = -1,
                .objective_max_downtime_ms = -1,
                .objective_deadline_s = -1};
    static const char *const keys[] = {"name",       "priority",  "project", "instance",   "host",
                                       "host_group", "post_copy", "options", "objectives", NULL};
    static const char *const obj_keys[] = {"max_downtime_ms", "deadline_s", NULL};
    const char *w = "body.";
    json_object *opts = NULL, *objs = NULL;
    if (!json_object_is_type(body, json_type_object)) {
        *why = xstrdup("body: expected an object");
        return -1;
    }
    if (only_keys(body, w, keys, why) < 0 || orchreply_get_text(body, w, "name", 1, 63, &p.name, why) < 0 ||
        policy_name_check(p.name, why) < 0 || get_int(body, w, "priority", -1000, 1000, &p.priority, why) < 0 ||
        orchreply_get_text(body, w, "project", 0, 255, &p.project, why) < 0 ||
        orchreply_get_text(body, w, "instance", 0, 255, &p.instance_glob, why) < 0 ||
        orchreply_get_text(body, w, "host", 0, 255, &p.host_glob, why) < 0 ||
        orchreply_get_text(body, w, "host_group", 0, 63, &p.host_group, why) < 0 ||
        (p.host_group && policy_group_check("body.host_group", p.host_group, why) < 0) ||
        get_obj(body, w, "options", &opts, why) < 0 || get_obj(body, w, "objectives", &objs, why) < 0)
        return -1;
    json_object *pc;
    if (json_object_object_get_ex(body, "post_copy", &pc) &&
        orchreply_get_bool(body, w, "post_copy", 1, &p.post_copy, why) < 0)
        return -1;
    if (opts) {
        const char *ow = "body.options.";
        json_object *ac;
        if (only_keys(opts, ow, msg_option_keys, why) < 0 ||
            (json_object_object_get_ex(opts, "auto_converge", &ac) &&
             orchreply_get_bool(opts, ow, "auto_converge", 1, &p.auto_converge, why) < 0) ||
            get_int(opts, ow, "postcopy_after_iterations", MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX,
                    &p.postcopy_after_iterations, why) < 0 ||
            get_int(opts, ow, "bandwidth_mib_s", 0, MSG_OPT_BANDWIDTH_MAX, &p.bandwidth_mib_s, why) < 0 ||
            get_int(opts, ow, "max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, &p.max_downtime_ms, why) <
                0 ||
            get_int(opts, ow, "completion_timeout_s", 0, MSG_OPT_COMPLETION_TIMEOUT_MAX, &p.completion_timeout_s, why) <
                0 ||
            get_int(opts, ow, "parallel_connections", 1, MSG_OPT_PARALLEL_MAX, &p.parallel_connections, why) < 0 ||
            get_int(opts, ow, "xbzrle_cache_mib", 0, MSG_OPT_XBZRLE_CACHE_MAX, &p.xbzrle_cache_mib, why) < 0)
            return -1;
        /* the two as the policy sets them must combine (a request's own may override either) */
        msg_options t = {.parallel_connections = p.parallel_connections > 0 ? p.parallel_connections : 1,
                         .xbzrle_cache_mib = p.xbzrle_cache_mib > 0 ? p.xbzrle_cache_mib : 0};
        if (msg_options_transport_check(&t, "body.options", why) < 0)
            return -1;
        const char *action = NULL;
        if (orchreply_get_text(opts, ow, "completion_action", 0, 16, &action, why) < 0)
            return -1;
        if (action && (p.completion_action = msg_completion_action_of(action)) < 0) {
            *why = xstrdup("body.options.completion_action: expected \"abort\", \"postcopy\" or \"pause\"");
            return -1;
        }
    }
    if (objs) {
        const char *bw = "body.objectives.";
        if (only_keys(objs, bw, obj_keys, why) < 0 ||
            get_int(objs, bw, "max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX,
                    &p.objective_max_downtime_ms, why) < 0 ||
            get_int(objs, bw, "deadline_s", 1, MSG_OBJ_DEADLINE_MAX, &p.objective_deadline_s, why) < 0)
            return -1;
    }
    *out = p;
    return 0;
}

/* ---- [policy NAME] sections ------------------------------------------------------------- */

/* where key goes in a policy.set body: 0 the top, 1 "options", 2 "objectives" (less its
 * "objective_" prefix); and whether its value is a boolean, an integer or text */
typedef enum { KV_TEXT, KV_INT, KV_BOOL } kv_kind;
static const struct {
    const char *key;
    int where;
    kv_kind kind;
} kv_map[] = {
    {"priority", 0, KV_INT},
    {"project", 0, KV_TEXT},
    {"instance", 0, KV_TEXT},
    {"host", 0, KV_TEXT},
    {"host_group", 0, KV_TEXT},
    {"post_copy", 0, KV_BOOL},
    {"auto_converge", 1, KV_BOOL},
    {"postcopy_after_iterations", 1, KV_INT},
    {"bandwidth_mib_s", 1, KV_INT},
    {"max_downtime_ms", 1, KV_INT},
    {"completion_timeout_s", 1, KV_INT},
    {"completion_action", 1, KV_TEXT},
    {"parallel_connections", 1, KV_INT},
    {"xbzrle_cache_mib", 1, KV_INT},
    {"objective_max_downtime_ms", 2, KV_INT},
    {"objective_deadline_s", 2, KV_INT},
};

/* the JSON value of a config text; NULL with *why when it is not a kind */
static json_object *kv_value(kv_kind kind, const char *v, char **why)
{
    if (kind == KV_TEXT)
        return json_object_new_string(v);
    if (kind == KV_BOOL) {
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
            return json_object_new_boolean(1);
        if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
            return json_object_new_boolean(0);
        *why = xasprintf("'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", v);
        return NULL;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) {
        *why = xasprintf("'%s' is not an integer", v);
        return NULL;
    }
    return json_object_new_int64(x);
}

/* policy_read's reason for a body read from a section, in the file's words: "body.", "body.options."
 * and "body.objectives." become the section's key names */
static char *config_words(const char *why)
{
    if (strncmp(why, "body.objectives.", 16) == 0)
        return xasprintf("objective_%s", why + 16);
    if (strncmp(why, "body.options.", 13) == 0)
        return xstrdup(why + 13);
    if (strncmp(why, "body.", 5) == 0)
        return xstrdup(why + 5);
    return xstrdup(why);
}

int policy_config_bodies(const ferry_config *c, json_object **out, char **why)
{
    json_object *all = json_object_new_array();
    for (size_t i = 0; i < c->n_policy_kv; i++) {
        const cfg_policy_kv *kv = &c->policy_kv[i];
        json_object *body = NULL;
        for (size_t k = 0; k < json_object_array_length(all) && !body; k++) {
            json_object *b = json_object_array_get_idx(all, k), *n;
            if (json_object_object_get_ex(b, "name", &n) && strcmp(json_object_get_string(n), kv->policy) == 0)
                body = b;
        }
        if (!body) {
            body = json_object_new_object();
            json_object_object_add(body, "name", json_object_new_string(kv->policy));
            json_object_array_add(all, body);
        }
        size_t m = 0;
        while (m < ARRAY_SIZE(kv_map) && strcmp(kv_map[m].key, kv->key) != 0)
            m++;
        char *bad = NULL;
        json_object *v = m < ARRAY_SIZE(kv_map) ? kv_value(kv_map[m].kind, kv->value, &bad) : NULL;
        if (!v) {
            *why = xasprintf("[policy %s] %s (line %d): %s", kv->policy, kv->key, kv->line,
                             bad ? bad : "not a key of a policy");
            free(bad);
            json_object_put(all);
            return -1;
        }
        json_object *into = body;
        if (kv_map[m].where) {
            const char *sub = kv_map[m].where == 1 ? "options" : "objectives";
            if (!json_object_object_get_ex(body, sub, &into)) {
                into = json_object_new_object();
                json_object_object_add(body, sub, into);
            }
        }
        json_object_object_add(into, kv_map[m].where == 2 ? kv->key + 10 : kv->key, v);
    }
    for (size_t k = 0; k < json_object_array_length(all); k++) {
        json_object *b = json_object_array_get_idx(all, k);
        policy p;
        char *bad = NULL;
        if (policy_read(b, &p, &bad) < 0) {
            _cleanup_free_ char *words = config_words(bad);
            json_object *n;
            json_object_object_get_ex(b, "name", &n);
            *why = xasprintf("[policy %s] %s", json_object_get_string(n), words);
            free(bad);
            json_object_put(all);
            return -1;
        }
    }
    *out = all;
    return 0;
}
