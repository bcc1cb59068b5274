/* verbs_drain: ferryctl's host drains (issue #18): host drain, host evacuate (a drain without a
 * deadline, followed, Ctrl-C cancelling it), drain list, show and cancel; each a request on
 * ferry.scheduler answered by a replica (scheduler/drainop.c). The drain itself lives in the
 * scheduler: following it is only reading it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "ctl.h"
#include "util.h"
#include "verbs_priv.h"

/* Sends a drain.* request of type with body (taken) and waits: 0 and *env (caller frees) when
 * answered and not refused; 1 (the reason printed) otherwise. */
static int drain_ask(ctl *c, const char *vn, const char *type, json_object *body, msg_envelope **env)
{
    _cleanup_free_ char *text = msg_build(type, NULL, body);
    return verbs_sched_ask(c, vn, text, env);
}

/* A duration: N seconds, or N followed by s, m or h. Returns 0, or -1 after printing why. */
static int duration_arg(const char *vn, const char *what, const char *v, int64_t *out)
{
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    int64_t mul = !*end ? 1 : strcmp(end, "s") == 0 ? 1 : strcmp(end, "m") == 0 ? 60 : strcmp(end, "h") == 0 ? 3600 : 0;
    if (end == v || mul == 0 || n < 1 || n > MSG_OBJ_DEADLINE_MAX / mul) {
        fprintf(stderr, PROG ": %s: %s takes a duration (N seconds, or Ns, Nm, Nh; at most 7 days), not '%s'\n", vn,
                what, v);
        return -1;
    }
    *out = n * mul;
    return 0;
}

static void print_guests(json_object *d)
{
    json_object *g = NULL;
    if (!json_object_object_get_ex(d, "guests", &g) || !json_object_is_type(g, json_type_array))
        return;
    printf("  %3s %-14s %-12s %7s %8s %-13s %8s  %s\n", "#", "NAME", "ID", "MiB", "DIRTY/s", "MODE", "FORECAST",
           "STATE");
    for (size_t i = 0; i < json_object_array_length(g); i++) {
        json_object *x = json_object_array_get_idx(g, i);
        const char *st = jsd(x, "state", "planned");
        printf("  %3lld %-14s %-12s %7lld %8s %-13s %7.1fs  %s", (long long)ji(x, "position"), jsd(x, "name", "?"),
               jsd(x, "instance_id", "?"), (long long)ji(x, "memory_mib"), jsd(x, "dirty_mib_s", "?"),
               jsd(x, "mode", "?"), json_object_get_double(json_object_object_get(x, "predicted_s")), st);
        if (js(x, "migration"))
            printf(" (migration %s%s%s)", jsd(x, "migration", "?"), js(x, "dest") ? " to " : "", jsd(x, "dest", ""));
        if (js(x, "reason"))
            printf(": %s", jsd(x, "reason", ""));
        printf("\n");
    }
}

static void print_drain(json_object *d)
{
    printf("drain %lld of %s: %s (requested by %s at %s)\n", (long long)ji(d, "drain"), jsd(d, "host", "?"),
           jsd(d, "status", "?"), jsd(d, "requested_by", "?"), jsd(d, "created_at", "?"));
    printf("  deadline   %s%s%s\n", js(d, "deadline_s") ? jsd(d, "deadline_s", "") : "none",
           js(d, "deadline_s") ? " s, at " : "", js(d, "deadline_s") ? jsd(d, "deadline_at", "?") : "");
    printf("  link       %lld MiB/s (%s), %lld at a time\n", (long long)ji(d, "link_mib_s"), jsd(d, "link_from", "?"),
           (long long)ji(d, "parallel"));
    printf("  plan       %s\n", jsd(d, "plan", "-"));
    if (js(d, "replan"))
        printf("  left       %s\n", jsd(d, "replan", "-"));
    if (js(d, "predicted_finish_at"))
        printf("  finish     predicted at %s\n", jsd(d, "predicted_finish_at", "?"));
    if (js(d, "cancel_requested_by"))
        printf("  cancelled  by %s\n", jsd(d, "cancel_requested_by", "?"));
    json_object *r = NULL;
    if (json_object_object_get_ex(d, "receipt", &r) && r && json_object_is_type(r, json_type_object)) {
        const char *met = js(r, "deadline_met");
        printf("  receipt    %s in %s s (forecast %s s): %lld moved, %lld failed, %lld cancelled, %lld skipped; "
               "deadline %s\n",
               jsd(r, "outcome", "?"), jsd(r, "seconds", "?"), jsd(r, "predicted_s", "?"), (long long)ji(r, "moved"),
               (long long)ji(r, "failed"), (long long)ji(r, "cancelled"), (long long)ji(r, "skipped"),
               !met                    ? "none"
               : jb(r, "deadline_met") ? "met"
                                       : "missed");
    }
    print_guests(d);
}

/* drain.show of id: the answer (caller frees *env, the object borrowed from it), or NULL (printed). */
static json_object *show(ctl *c, const char *vn, int64_t id, msg_envelope **env)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "drain", json_object_new_int64(id));
    if (drain_ask(c, vn, "drain.show", b, env) != 0)
        return NULL;
    return msg_envelope_body(*env);
}

/* Follows drain id to its end, a line per guest whose state changed. Ctrl-C: with cancel, the drain
 * is cancelled and followed to its end; else following stops and the drain goes on. With
 * evacuate, the last line is evacuate's summary. Returns the exit status. */
static int follow_drain(ctl *c, const char *vn, int64_t id, int cancel, int evacuate)
{
    verbs_catch_sigint();
    json_object *seen = json_object_new_object(); /* instance -> last state printed */
    int cancelled = 0, rc = 1;
    for (;;) {
        msg_envelope *env = NULL;
        json_object *d = show(c, vn, id, &env);
        if (!d) {
            msg_envelope_free(env);
            break;
        }
        json_object *g = NULL;
        json_object_object_get_ex(d, "guests", &g);
        for (size_t i = 0; g && i < json_object_array_length(g); i++) {
            json_object *x = json_object_array_get_idx(g, i);
            const char *st = jsd(x, "state", "?"), *key = jsd(x, "instance", "?");
            json_object *was = NULL;
            if (json_object_object_get_ex(seen, key, &was) && strcmp(json_object_get_string(was), st) == 0)
                continue;
            json_object_object_add(seen, key, json_object_new_string(st));
            if (strcmp(st, "pending") == 0)
                continue;
            printf("%s (%s): %s", jsd(x, "instance_id", "?"), jsd(x, "name", "?"), st);
            if (js(x, "migration"))
                printf(", migration %s%s%s", jsd(x, "migration", "?"), js(x, "dest") ? " to " : "", jsd(x, "dest", ""));
            if (js(x, "reason"))
                printf(": %s", jsd(x, "reason", ""));
            printf("\n");
        }
        fflush(stdout);
        const char *st = jsd(d, "status", "?");
        if (strcmp(st, "running") != 0 && strcmp(st, "cancelling") != 0) {
            json_object *r = NULL;
            json_object_object_get_ex(d, "receipt", &r);
            long long moved = (long long)ji(r, "moved"), failed = (long long)ji(r, "failed"),
                      canc = (long long)ji(r, "cancelled"), skipped = (long long)ji(r, "skipped");
            const char *met = js(r, "deadline_met");
            if (evacuate)
                printf(
                    "%s: %lld of %lld instances moved away, %lld failed or cancelled, 0 refused, %lld left in place\n",
                    jsd(d, "host", "?"), moved, moved + failed + canc + skipped, failed + canc, skipped);
            else
                printf("drain %lld %s in %s s (forecast %s s): %lld moved, %lld failed, %lld cancelled, %lld skipped; "
                       "deadline %s\n",
                       (long long)id, st, jsd(r, "seconds", "?"), jsd(r, "predicted_s", "?"), moved, failed, canc,
                       skipped,
                       !met                    ? "none"
                       : jb(r, "deadline_met") ? "met"
                                               : "missed");
            rc = strcmp(st, "completed") == 0 && (!met || jb(r, "deadline_met")) ? 0 : 1;
            msg_envelope_free(env);
            break;
        }
        msg_envelope_free(env);
        if (verbs_interrupted() && !cancelled) {
            if (!cancel) {
                fprintf(stderr,
                        PROG ": interrupted: drain %lld goes on in the scheduler (" PROG " drain show %lld; " PROG
                             " drain cancel %lld)\n",
                        (long long)id, (long long)id, (long long)id);
                break;
            }
            cancelled = 1;
            json_object *b = json_object_new_object();
            json_object_object_add(b, "drain", json_object_new_int64(id));
            msg_envelope *ce = NULL;
            if (drain_ask(c, vn, "drain.cancel", b, &ce) == 0)
                fprintf(stderr,
                        PROG ": interrupted: the unfinished migrations were asked to abort; waiting for their end"
                             " (drain %lld cancelled)\n",
                        (long long)id);
            msg_envelope_free(ce);
        }
        struct timeval tv = {1, 0};
        event_base_loopexit(c->base, &tv);
        event_base_dispatch(c->base);
    }
    json_object_put(seen);
    return rc;
}

/* host drain and host evacuate: drain.start, then (--wait) followed. */
static int start(ctl *c, const char *vn, const char *host, int64_t deadline, int64_t budget, int dry, int wait,
                 int evacuate)
{
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(host));
    if (deadline)
        json_object_object_add(b, "deadline_s", json_object_new_int64(deadline));
    if (budget)
        json_object_object_add(b, "bandwidth_budget_mib_s", json_object_new_int64(budget));
    if (dry)
        json_object_object_add(b, "dry_run", json_object_new_boolean(1));
    msg_envelope *env = NULL;
    if (drain_ask(c, vn, "drain.start", b, &env) != 0)
        return 1;
    json_object *d = msg_envelope_body(env);
    if (c->json) {
        verbs_print_json(d);
    } else if (dry && evacuate) {
        json_object *g = NULL;
        json_object_object_get_ex(d, "guests", &g);
        for (size_t i = 0; g && i < json_object_array_length(g); i++) {
            json_object *x = json_object_array_get_idx(g, i);
            printf("would migrate %s (%s) away from %s, to a host the scheduler chooses (%s, forecast %.1f s)\n",
                   jsd(x, "instance_id", "?"), jsd(x, "name", "?"), host, jsd(x, "mode", "?"),
                   json_object_get_double(json_object_object_get(x, "predicted_s")));
        }
        printf("%s (dry run): %s\n", host, jsd(d, "plan", "?"));
    } else if (dry) {
        printf("drain of %s (dry run, nothing changed): %s\n", host, jsd(d, "plan", "?"));
        printf("  link %lld MiB/s (%s)\n", (long long)ji(d, "link_mib_s"), jsd(d, "link_from", "?"));
        print_guests(d);
    } else {
        printf("drain %lld of %s started: %s\n", (long long)ji(d, "drain"), host, jsd(d, "plan", "?"));
        if (!wait)
            print_guests(d);
    }
    int64_t id = ji(d, "drain");
    msg_envelope_free(env);
    if (dry || !wait)
        return 0;
    return follow_drain(c, vn, id, evacuate, evacuate);
}

int cmd_host_drain(ctl *c, int argc, char **argv)
{
    const char *vn = "host drain";
    opt o[] = {{"--deadline", 1, NULL}, {"--bandwidth-budget", 1, NULL}, {"--dry-run", 0, NULL}, {"--wait", 0, NULL}};
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, o, ARRAY_SIZE(o), pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs exactly one HOST\n", vn);
        return 2;
    }
    int64_t deadline = 0;
    int budget = 0;
    if ((o[0].value && duration_arg(vn, "--deadline", o[0].value, &deadline) < 0) ||
        (o[1].value && verbs_int_arg(vn, "--bandwidth-budget", o[1].value, 1, MSG_OPT_BANDWIDTH_MAX, &budget) < 0))
        return 2;
    return start(c, vn, pos[0], deadline, budget, o[2].value != NULL, o[3].value != NULL, 0);
}

int cmd_host_evacuate(ctl *c, int argc, char **argv)
{
    const char *vn = "host evacuate";
    opt o[] = {{"--dry-run", 0, NULL}, {"--wait", 0, NULL}};
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, o, ARRAY_SIZE(o), pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs exactly one HOST\n", vn);
        return 2;
    }
    return start(c, vn, pos[0], 0, 0, o[0].value != NULL, o[1].value != NULL, 1);
}

int cmd_drain_list(ctl *c, int argc, char **argv)
{
    const char *vn = "drain list";
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, NULL, 0, pos, 0) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    msg_envelope *env = NULL;
    if (drain_ask(c, vn, "drain.list", json_object_new_object(), &env) != 0)
        return 1;
    json_object *a = NULL;
    json_object_object_get_ex(msg_envelope_body(env), "drains", &a);
    if (c->json) {
        verbs_print_json(a);
    } else {
        printf("%6s %-14s %-11s %8s %6s %5s %-8s %s\n", "DRAIN", "HOST", "STATUS", "DEADLINE", "GUESTS", "MOVED", "MET",
               "STARTED");
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            json_object *d = json_object_array_get_idx(a, i);
            const char *met = js(d, "deadline_met");
            printf("%6lld %-14s %-11s %8s %6lld %5lld %-8s %s\n", (long long)ji(d, "drain"), jsd(d, "host", "?"),
                   jsd(d, "status", "?"), jsd(d, "deadline_s", "-"), (long long)ji(d, "guests"),
                   (long long)ji(d, "moved"),
                   !met                    ? "-"
                   : jb(d, "deadline_met") ? "yes"
                                           : "no",
                   jsd(d, "created_at", "?"));
        }
    }
    msg_envelope_free(env);
    return 0;
}

/* drain show ID / drain cancel ID: the id argument. */
static int drain_id(const char *vn, int argc, char **argv, int64_t *id)
{
    char *pos[1];
    if (verbs_parse_args(vn, argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs a drain ID\n", vn);
        return -1;
    }
    char *end = NULL;
    long long v = strtoll(pos[0], &end, 10);
    if (end == pos[0] || *end || v < 1) {
        fprintf(stderr, PROG ": %s: a drain ID is a positive integer, not '%s'\n", vn, pos[0]);
        return -1;
    }
    *id = v;
    return 0;
}

int cmd_drain_show(ctl *c, int argc, char **argv)
{
    const char *vn = "drain show";
    int64_t id;
    if (drain_id(vn, argc, argv, &id) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    msg_envelope *env = NULL;
    json_object *d = show(c, vn, id, &env);
    if (d) {
        if (c->json)
            verbs_print_json(d);
        else
            print_drain(d);
    }
    msg_envelope_free(env);
    return d ? 0 : 1;
}

int cmd_drain_cancel(ctl *c, int argc, char **argv)
{
    const char *vn = "drain cancel";
    int64_t id;
    if (drain_id(vn, argc, argv, &id) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "drain", json_object_new_int64(id));
    msg_envelope *env = NULL;
    if (drain_ask(c, vn, "drain.cancel", b, &env) != 0)
        return 1;
    json_object *r = msg_envelope_body(env);
    if (c->json) {
        verbs_print_json(r);
    } else {
        json_object *ab = NULL;
        json_object_object_get_ex(r, "aborting", &ab);
        printf("drain %lld: cancelling: %lld guests not requested stay where they are, %zu migrations asked to "
               "abort\n",
               (long long)id, (long long)ji(r, "not_requested"), ab ? json_object_array_length(ab) : (size_t)0);
    }
    msg_envelope_free(env);
    return 0;
}
