/* verbs_policy: ferryctl's migration policies (policy list, show, set, delete; issue #18), each
 * a request on ferry.scheduler answered by a replica (scheduler/policyop.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"
#include "verbs_priv.h"

/* Sends text (a policy.* request) and waits: 0 and *env (caller frees) when answered and not
 * refused; 1 (the reason printed) otherwise. */
static int policy_ask(ctl *c, const char *vn, const char *text, msg_envelope **env)
{
    if (ctl_connect(c) < 0)
        return 1;
    return verbs_sched_ask(c, vn, text, env);
}

/* "-" for an absent or null field, else its text */
static const char *f(json_object *o, const char *k)
{
    return jsd(o, k, "-");
}

static void print_policy(json_object *p)
{
    printf("policy %s (priority %lld, %lld migrations so far)\n", f(p, "name"), (long long)ji(p, "priority"),
           (long long)ji(p, "migrations"));
    printf("  kept in    %s\n", strcmp(f(p, "source"), "config") == 0 ? "the scheduler's configuration file"
                                                                      : "the database (ferryctl policy set)");
    printf("  selects    project %s, instance %s, host %s, host group %s\n", f(p, "project"), f(p, "instance"),
           f(p, "host"), f(p, "host_group"));
    printf("  defaults   post-copy %s, auto-converge %s, post-copy after %s, bandwidth %s MiB/s, max downtime %s ms,"
           " completion timeout %s s, then %s\n",
           f(p, "post_copy"), f(p, "auto_converge"), f(p, "postcopy_after_iterations"), f(p, "bandwidth_mib_s"),
           f(p, "max_downtime_ms"), f(p, "completion_timeout_s"), f(p, "completion_action"));
    printf("  transport  parallel connections %s, xbzrle cache %s MiB\n", f(p, "parallel_connections"),
           f(p, "xbzrle_cache_mib"));
    printf("  objectives max downtime %s ms, deadline %s s\n", f(p, "objective_max_downtime_ms"),
           f(p, "objective_deadline_s"));
    printf("  updated    %s by %s\n", f(p, "updated_at"), f(p, "updated_by"));
}

/* policy.list's policies (borrowed from *env, which the caller frees), or NULL (printed). */
static json_object *list_policies(ctl *c, const char *vn, msg_envelope **env)
{
    _cleanup_free_ char *text = msg_build("policy.list", NULL, json_object_new_object());
    if (policy_ask(c, vn, text, env) != 0)
        return NULL;
    json_object *a = NULL;
    if (!json_object_object_get_ex(msg_envelope_body(*env), "policies", &a) ||
        !json_object_is_type(a, json_type_array)) {
        fprintf(stderr, PROG ": %s: the scheduler's answer has no policies\n", vn);
        return NULL;
    }
    return a;
}

int cmd_policy_list(ctl *c, int argc, char **argv)
{
    const char *vn = "policy list";
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, NULL, 0, pos, 0) < 0)
        return 2;
    msg_envelope *env = NULL;
    json_object *a = list_policies(c, vn, &env);
    if (!a) {
        msg_envelope_free(env);
        return 1;
    }
    if (c->json) {
        verbs_print_json(a);
    } else {
        printf("%-20s %5s %-12s %-16s %-16s %-12s %-8s %s\n", "POLICY", "PRIO", "PROJECT", "INSTANCE", "HOST",
               "HOST_GROUP", "SOURCE", "MIGRATIONS");
        for (size_t i = 0; i < json_object_array_length(a); i++) {
            json_object *p = json_object_array_get_idx(a, i);
            printf("%-20s %5lld %-12s %-16s %-16s %-12s %-8s %lld\n", f(p, "name"), (long long)ji(p, "priority"),
                   f(p, "project"), f(p, "instance"), f(p, "host"), f(p, "host_group"), f(p, "source"),
                   (long long)ji(p, "migrations"));
        }
    }
    msg_envelope_free(env);
    return 0;
}

int cmd_policy_show(ctl *c, int argc, char **argv)
{
    const char *vn = "policy show";
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs NAME\n", vn);
        return 2;
    }
    msg_envelope *env = NULL;
    json_object *a = list_policies(c, vn, &env);
    int rc = 1;
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *p = json_object_array_get_idx(a, i);
        if (strcmp(f(p, "name"), pos[0]) != 0)
            continue;
        if (c->json)
            verbs_print_json(p);
        else
            print_policy(p);
        rc = 0;
    }
    if (a && rc)
        fprintf(stderr, PROG ": %s: no policy %s\n", vn, pos[0]);
    msg_envelope_free(env);
    return rc;
}

/* value v of option name as a yes/no boolean into *out; -1 (printed) when neither */
static int yes_no(const char *vn, const char *name, const char *v, int *out)
{
    if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0) {
        *out = strcmp(v, "yes") == 0;
        return 0;
    }
    fprintf(stderr, PROG ": %s: %s takes yes or no, not '%s'\n", vn, name, v);
    return -1;
}

int cmd_policy_set(ctl *c, int argc, char **argv)
{
    const char *vn = "policy set";
    opt o[] = {{"--priority", 1, NULL},           {"--project", 1, NULL},
               {"--instance", 1, NULL},           {"--host", 1, NULL},
               {"--postcopy", 1, NULL},           {"--auto-converge", 1, NULL},
               {"--postcopy-after", 1, NULL},     {"--bandwidth", 1, NULL},
               {"--max-downtime", 1, NULL},       {"--completion-timeout", 1, NULL},
               {"--objective-downtime", 1, NULL}, {"--objective-deadline", 1, NULL},
               {"--host-group", 1, NULL},         {"--completion-action", 1, NULL},
               {"--parallel", 1, NULL},           {"--xbzrle", 1, NULL}};
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, o, ARRAY_SIZE(o), pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs NAME\n", vn);
        return 2;
    }
    json_object *b = json_object_new_object(), *opts = json_object_new_object(), *objs = json_object_new_object();
    json_object_object_add(b, "name", json_object_new_string(pos[0]));
    int v, rc = 2;
    char *text = NULL;
    msg_envelope *env = NULL;
    static const struct {
        int idx;
        const char *key;
        int64_t lo, hi;
        int where; /* 0 body, 1 options, 2 objectives */
    } ints[] = {
        {0, "priority", -1000, 1000, 0},
        {6, "postcopy_after_iterations", MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX, 1},
        {7, "bandwidth_mib_s", 0, MSG_OPT_BANDWIDTH_MAX, 1},
        {8, "max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, 1},
        {9, "completion_timeout_s", 0, MSG_OPT_COMPLETION_TIMEOUT_MAX, 1},
        {10, "max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, 2},
        {11, "deadline_s", 1, MSG_OBJ_DEADLINE_MAX, 2},
        {14, "parallel_connections", 1, MSG_OPT_PARALLEL_MAX, 1},
        {15, "xbzrle_cache_mib", 0, MSG_OPT_XBZRLE_CACHE_MAX, 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
        if (!o[ints[i].idx].value)
            continue;
        if (verbs_int_arg(vn, o[ints[i].idx].name, o[ints[i].idx].value, ints[i].lo, ints[i].hi, &v) < 0)
            goto out;
        json_object_object_add(ints[i].where == 0   ? b
                               : ints[i].where == 1 ? opts
                                                    : objs,
                               ints[i].key, json_object_new_int(v));
    }
    static const struct {
        int idx;
        const char *key;
    } texts[] = {{1, "project"}, {2, "instance"}, {3, "host"}, {12, "host_group"}};
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
        if (o[texts[i].idx].value)
            json_object_object_add(b, texts[i].key, json_object_new_string(o[texts[i].idx].value));
    if (o[4].value) {
        if (yes_no(vn, "--postcopy", o[4].value, &v) < 0)
            goto out;
        json_object_object_add(b, "post_copy", json_object_new_boolean(v));
    }
    if (o[5].value) {
        if (yes_no(vn, "--auto-converge", o[5].value, &v) < 0)
            goto out;
        json_object_object_add(opts, "auto_converge", json_object_new_boolean(v));
    }
    if (o[13].value) {
        if (msg_completion_action_of(o[13].value) < 0) {
            fprintf(stderr, PROG ": %s: --completion-action takes abort, postcopy or pause, not '%s'\n", vn,
                    o[13].value);
            goto out;
        }
        json_object_object_add(opts, "completion_action", json_object_new_string(o[13].value));
    }
    if (json_object_object_length(opts))
        json_object_object_add(b, "options", json_object_get(opts));
    if (json_object_object_length(objs))
        json_object_object_add(b, "objectives", json_object_get(objs));
    text = msg_build("policy.set", NULL, json_object_get(b));
    rc = policy_ask(c, vn, text, &env);
    if (rc == 0) {
        json_object *r = msg_envelope_body(env);
        if (c->json)
            verbs_print_json(r);
        else
            printf("policy %s %s\n", pos[0], jb(r, "created") ? "created" : "updated");
    }
out:
    msg_envelope_free(env);
    free(text);
    json_object_put(b);
    json_object_put(opts);
    json_object_put(objs);
    return rc;
}

int cmd_policy_delete(ctl *c, int argc, char **argv)
{
    const char *vn = "policy delete";
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs NAME\n", vn);
        return 2;
    }
    json_object *b = json_object_new_object();
    json_object_object_add(b, "name", json_object_new_string(pos[0]));
    _cleanup_free_ char *text = msg_build("policy.delete", NULL, b);
    msg_envelope *env = NULL;
    int rc = policy_ask(c, vn, text, &env);
    if (rc == 0 && !c->json)
        printf("policy %s deleted\n", pos[0]);
    else if (rc == 0)
        verbs_print_json(msg_envelope_body(env));
    msg_envelope_free(env);
    return rc;
}
