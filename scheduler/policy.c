/* policy: a policy.set body read and checked (policy.h). */
#include "policy.h"

#include <string.h>

#include "msg.h"
#include "orchreply.h"

int policy_name_check(const char *name, char **why)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n <= 63 && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
    for (size_t i = 1; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    }
    if (!ok) {
        *why = xasprintf("body.name: a policy name is 1 to 63 of a-z 0-9 . _ - starting with a letter or digit");
        return -1;
    }
    return 0;
}

/* The keys of o outside keys (NULL-terminated): -1 with *why naming the first. */
static int only_keys(json_object *o, const char *where, const char *const *keys, char **why)
{
    json_object_object_foreach(o, k, v) {
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
                .objective_max_downtime_ms = -1,
                .objective_deadline_s = -1};
    static const char *const keys[] = {"name", "priority", "project", "instance", "host", "post_copy",
                                       "options", "objectives", NULL};
    static const char *const opt_keys[] = {"auto_converge", "postcopy_after_iterations", "bandwidth_mib_s",
                                           "max_downtime_ms", "completion_timeout_s", NULL};
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
        get_obj(body, w, "options", &opts, why) < 0 || get_obj(body, w, "objectives", &objs, why) < 0)
        return -1;
    json_object *pc;
    if (json_object_object_get_ex(body, "post_copy", &pc) &&
        orchreply_get_bool(body, w, "post_copy", 1, &p.post_copy, why) < 0)
        return -1;
    if (opts) {
        const char *ow = "body.options.";
        json_object *ac;
        if (only_keys(opts, ow, opt_keys, why) < 0 ||
            (json_object_object_get_ex(opts, "auto_converge", &ac) &&
             orchreply_get_bool(opts, ow, "auto_converge", 1, &p.auto_converge, why) < 0) ||
            get_int(opts, ow, "postcopy_after_iterations", MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX,
                    &p.postcopy_after_iterations, why) < 0 ||
            get_int(opts, ow, "bandwidth_mib_s", 0, MSG_OPT_BANDWIDTH_MAX, &p.bandwidth_mib_s, why) < 0 ||
            get_int(opts, ow, "max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, &p.max_downtime_ms, why) <
                0 ||
            get_int(opts, ow, "completion_timeout_s", 0, MSG_OPT_COMPLETION_TIMEOUT_MAX, &p.completion_timeout_s,
                    why) < 0)
            return -1;
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
