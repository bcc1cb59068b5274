/* verbs: ferryctl's scheduler verbs. Reads go to the scheduler's read RPCs
 * (ferry.scheduler.rpc, any replica answers); migrations, aborts and force-completes are
 * published as the request contract on ferry.scheduler; `--wait` follows ferry.events.
 * This file: their arguments and the RPCs they share; the verbs are in verbs_host.c and
 * verbs_migration.c, following a migration in verbs_follow.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "util.h"
#include "verbs_priv.h"

/* ---- arguments ------------------------------------------------------------------------------ */

/* Splits argv[1..] into the options of opts and positional arguments (at most max_pos).
 * Returns the number of positionals, or -1 after printing what is wrong. */
int verbs_parse_args(const char *verbname, int argc, char **argv, opt *opts, size_t nopts, char **pos, int max_pos)
{
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            const char *eq = strchr(a, '=');
            size_t k = eq ? (size_t)(eq - a) : strlen(a);
            opt *o = NULL;
            for (size_t j = 0; j < nopts; j++)
                if (strlen(opts[j].name) == k && strncmp(opts[j].name, a, k) == 0)
                    o = &opts[j];
            if (!o) {
                fprintf(stderr, PROG ": %s: unknown option '%.*s'\nTry '" PROG " %s --help'.\n", verbname, (int)k, a,
                        verbname);
                return -1;
            }
            if (!o->takes_value) {
                if (eq) {
                    fprintf(stderr, PROG ": %s: %s takes no value\n", verbname, o->name);
                    return -1;
                }
                o->value = "1";
            } else if (eq) {
                o->value = eq + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                fprintf(stderr, PROG ": %s: %s needs a value\n", verbname, o->name);
                return -1;
            }
            continue;
        }
        if (npos == max_pos) {
            fprintf(stderr, PROG ": %s: unexpected argument '%s'\nTry '" PROG " %s --help'.\n", verbname, a, verbname);
            return -1;
        }
        pos[npos++] = argv[i];
    }
    return npos;
}

int verbs_int_arg(const char *verbname, const char *what, const char *v, int64_t lo, int64_t hi, int *out)
{
    int64_t x;
    if (parse_i64(v, lo, hi, &x) < 0) {
        fprintf(stderr, PROG ": %s: %s must be a number in %lld..%lld, not '%s'\n", verbname, what, (long long)lo,
                (long long)hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int verbs_migration_id_arg(const char *verbname, const char *v, int64_t *out)
{
    if (parse_i64(v, 1, INT64_MAX, out) < 0) {
        fprintf(stderr, PROG ": %s: '%s' is not a migration id (a positive integer)\n", verbname, v);
        return -1;
    }
    return 0;
}

void verbs_print_json(json_object *o)
{
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Calls read RPC method of the scheduler; the reply body without "ok" (caller puts), or NULL
 * after printing the scheduler's reason (*notfound = 1 when it said not_found). */
json_object *verbs_sched_read(ctl *c, const char *method, json_object *body, int *notfound)
{
    if (notfound)
        *notfound = 0;
    _cleanup_free_ char *type = xasprintf("rpc.%s", method);
    msg_envelope *env = ctl_call(c, "scheduler.rpc", type, body, "the scheduler (is a ferry-scheduler running?)");
    if (!env)
        return NULL;
    json_object *b = msg_envelope_body(env);
    if (!jb(b, "ok")) {
        fprintf(stderr, PROG ": %s\n", jsd(b, "error", "the scheduler refused without a reason"));
        if (notfound)
            *notfound = strcmp(jsd(b, "code", ""), "not_found") == 0;
        msg_envelope_free(env);
        return NULL;
    }
    json_object *out = json_object_get(b);
    json_object_object_del(out, "ok");
    msg_envelope_free(env);
    return out;
}

/* Calls read RPC method with body (taken). With -o json it prints the answer and returns NULL
 * with *rc = 0; otherwise it returns the answer (caller puts) with *list its array `key`. NULL
 * with *rc = 1 when the call failed (printed). */
json_object *verbs_read_list(ctl *c, const char *method, json_object *body, const char *key, json_object **list,
                             int *rc)
{
    *rc = 1;
    *list = NULL;
    json_object *r = verbs_sched_read(c, method, body, NULL);
    if (!r)
        return NULL;
    if (c->json) {
        verbs_print_json(r);
        json_object_put(r);
        *rc = 0;
        return NULL;
    }
    json_object_object_get_ex(r, key, list);
    return r;
}

#define WHO_SCHED "the scheduler (is a ferry-scheduler running?)"

/* Publishes text (a message of the request contract) on ferry.scheduler and waits for the
 * scheduler's answer; returns the answer envelope or NULL (printed). */
msg_envelope *verbs_sched_request(ctl *c, const char *text)
{
    return ctl_call_raw(c, MQ_SCHEDULER_KEY, text, WHO_SCHED);
}

int verbs_sched_ask(ctl *c, const char *vn, const char *text, msg_envelope **env)
{
    *env = verbs_sched_request(c, text);
    if (!*env)
        return 1;
    const char *rt = msg_envelope_type(*env);
    size_t n = strlen(rt);
    if (n > 8 && strcmp(rt + n - 8, ".refused") == 0) {
        fprintf(stderr, PROG ": %s refused: %s\n", vn, jsd(msg_envelope_body(*env), "reason", "no reason given"));
        msg_envelope_free(*env);
        *env = NULL;
        return 1;
    }
    return 0;
}
