/* verbs_host: ferryctl's host and instance verbs (host list, show, disable, enable,
 * evacuate; instance list). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "util.h"
#include "verbs_priv.h"

/* ---- host ------------------------------------------------------------------------------------- */

static void used_cap(char *buf, size_t n, int64_t used, int64_t cap)
{
    snprintf(buf, n, "%lld/%lld", (long long)used, (long long)cap);
}

int cmd_host_list(ctl *c, int argc, char **argv)
{
    char *pos[1];
    if (verbs_parse_args("host list", argc, argv, NULL, 0, pos, 0) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *hosts = NULL;
    int rc;
    json_object *r = verbs_read_list(c, "host_list", json_object_new_object(), "hosts", &hosts, &rc);
    if (!r)
        return rc;
    printf("%-16s%-13s%-7s%-11s%-18s%-14s%-10s%s\n", "HOST", "STATE", "ALIVE", "cpu", "mem(mb)", "disk(gb)",
           "INSTANCES", "MIGRATIONS");
    for (size_t i = 0; hosts && i < json_object_array_length(hosts); i++) {
        json_object *h = json_object_array_get_idx(hosts, i);
        char cpu[32], mem[40], disk[40];
        used_cap(cpu, sizeof(cpu), ji(h, "used_vcpus"), ji(h, "capacity_vcpus"));
        used_cap(mem, sizeof(mem), ji(h, "used_memory_mb"), ji(h, "capacity_memory_mb"));
        used_cap(disk, sizeof(disk), ji(h, "used_disk_gb"), ji(h, "capacity_disk_gb"));
        printf("%-16s%-13s%-7s%-11s%-18s%-14s%-10lld%lld\n", jsd(h, "name", "?"), jsd(h, "state", "?"),
               jb(h, "alive") ? "yes" : "no", cpu, mem, disk, (long long)ji(h, "instances"),
               (long long)ji(h, "active_migrations"));
    }
    json_object_put(r);
    return 0;
}

int cmd_host_show(ctl *c, int argc, char **argv)
{
    char *pos[1];
    if (verbs_parse_args("host show", argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": host show needs exactly one HOST\n");
        return 2;
    }
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(pos[0]));
    json_object *h = verbs_sched_read(c, "host_show", b, NULL);
    if (!h)
        return 1;
    if (c->json) {
        verbs_print_json(h);
        json_object_put(h);
        return 0;
    }
    /* the seed's table: the host's totals, then the usage of each project */
    printf("%-16s%-16s%-8s%-8s%s\n", "HOST", "PROJECT", "cpu", "mem(mb)", "disk(gb)");
    const char *name = jsd(h, "name", pos[0]);
    printf("%-16s%-16s%-8lld%-8lld%lld\n", name, "", (long long)ji(h, "vcpus"), (long long)ji(h, "memory_mb"),
           (long long)ji(h, "disk_gb"));
    json_object *projects = NULL;
    json_object_object_get_ex(h, "projects", &projects);
    for (size_t i = 0; projects && i < json_object_array_length(projects); i++) {
        json_object *p = json_object_array_get_idx(projects, i);
        printf("%-16s%-16s%-8lld%-8lld%lld\n", name, jsd(p, "project", ""), (long long)ji(p, "vcpus"),
               (long long)ji(p, "memory_mb"), (long long)ji(p, "disk_gb"));
    }
    json_object_put(h);
    return 0;
}

static int set_state(ctl *c, const char *host, const char *state, const char *reason)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(host));
    json_object_object_add(b, "state", json_object_new_string(state));
    if (reason)
        json_object_object_add(b, "reason", json_object_new_string(reason));
    json_object *h = verbs_sched_read(c, "host_set_state", b, NULL);
    if (!h)
        return 1;
    if (c->json)
        verbs_print_json(h);
    else
        printf("%s: %s%s%s\n", jsd(h, "name", host), jsd(h, "state", state), js(h, "state_reason") ? " (" : "",
               js(h, "state_reason") ? js(h, "state_reason") : "");
    if (js(h, "state_reason") && !c->json)
        printf(")\n");
    json_object_put(h);
    return 0;
}

int cmd_host_disable(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--reason", 1, NULL}};
    if (verbs_parse_args("host disable", argc, argv, o, ARRAY_SIZE(o), pos, 1) != 1) {
        fprintf(stderr, PROG ": host disable needs exactly one HOST\n");
        return 2;
    }
    if (ctl_connect(c) < 0)
        return 1;
    return set_state(c, pos[0], "disabled", o[0].value ? o[0].value : "disabled by the operator");
}

int cmd_host_enable(ctl *c, int argc, char **argv)
{
    char *pos[1];
    if (verbs_parse_args("host enable", argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": host enable needs exactly one HOST\n");
        return 2;
    }
    if (ctl_connect(c) < 0)
        return 1;
    return set_state(c, pos[0], "enabled", NULL);
}

/* ---- instance --------------------------------------------------------------------------------- */

int cmd_instance_list(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--host", 1, NULL}};
    if (verbs_parse_args("instance list", argc, argv, o, ARRAY_SIZE(o), pos, 0) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    if (o[0].value)
        json_object_object_add(b, "host", json_object_new_string(o[0].value));
    json_object *list = NULL;
    int rc;
    json_object *r = verbs_read_list(c, "instance_list", b, "instances", &list, &rc);
    if (!r)
        return rc;
    /* euca-describe-instances' shape: one INSTANCE line each, the task state where it has one */
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *x = json_object_array_get_idx(list, i);
        printf("INSTANCE\t%s\t%s\t%s\t%s\t%s\t%s\n", jsd(x, "id", "?"), jsd(x, "name", "?"), jsd(x, "project", "-"),
               jsd(x, "vm_state", "?"), jsd(x, "task_state", "-"), jsd(x, "host", "-"));
    }
    json_object_put(r);
    return 0;
}

/* ---- host evacuate ------------------------------------------------------------------------------ */

int cmd_host_evacuate(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--dry-run", 0, NULL}, {"--wait", 0, NULL}};
    if (verbs_parse_args("host evacuate", argc, argv, o, ARRAY_SIZE(o), pos, 1) != 1) {
        fprintf(stderr, PROG ": host evacuate needs exactly one HOST\n");
        return 2;
    }
    const char *host = pos[0];
    int dry = o[0].value != NULL, wait = o[1].value != NULL;
    if (ctl_connect(c) < 0)
        return 1;
    /* the host must exist; its running instances that are not migrating yet */
    json_object *hb = json_object_new_object();
    json_object_object_add(hb, "host", json_object_new_string(host));
    json_object *h = verbs_sched_read(c, "host_show", hb, NULL);
    if (!h)
        return 1;
    json_object_put(h);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(host));
    json_object *r = verbs_sched_read(c, "instance_list", b, NULL);
    if (!r)
        return 1;
    json_object *list = NULL;
    json_object_object_get_ex(r, "instances", &list);
    size_t n = list ? json_object_array_length(list) : 0;
    if (!dry && set_state(c, host, "maintenance", "evacuating") != 0) {
        json_object_put(r);
        return 1;
    }
    int64_t *ids = xcalloc(n + 1, sizeof(*ids));
    size_t nids = 0, skipped = 0, refused = 0;
    /* with --wait, Ctrl-C from here on aborts what was requested (below) and requests no more */
    if (wait && !dry)
        verbs_catch_sigint();
    for (size_t i = 0; i < n; i++) {
        json_object *x = json_object_array_get_idx(list, i);
        const char *iid = jsd(x, "id", "?");
        if (verbs_interrupted()) {
            printf("%s (%s): not requested (interrupted), left where it is\n", iid, jsd(x, "name", "?"));
            skipped++;
            continue;
        }
        if (strcmp(jsd(x, "vm_state", ""), "running") != 0 || js(x, "task_state")) {
            printf("%s (%s): %s%s, left where it is\n", iid, jsd(x, "name", "?"), jsd(x, "vm_state", "?"),
                   js(x, "task_state") ? ", already migrating" : "");
            skipped++;
            continue;
        }
        if (dry) {
            printf("would migrate %s (%s) away from %s, to a host the scheduler chooses\n", iid, jsd(x, "name", "?"),
                   host);
            continue;
        }
        msg_request rq = {0};
        char id[37];
        uuid_new(id);
        rq.id = id;
        rq.instance = (char *)jsd(x, "uuid", iid);
        msg_request_defaults_init(&rq.options);
        _cleanup_free_ char *text = NULL;
        char *err = NULL;
        if (msg_build_request(&rq, &text, &err) < 0) {
            fprintf(stderr, PROG ": %s: %s\n", iid, err);
            free(err);
            refused++;
            continue;
        }
        msg_envelope *env = verbs_sched_request(c, text);
        msg_reply rep = {0};
        if (!env || msg_reply_parse(env, &rep, NULL) < 0) {
            refused++;
            msg_envelope_free(env);
            continue;
        }
        msg_envelope_free(env);
        if (rep.accepted) {
            printf("%s (%s): migration %lld to %s\n", iid, jsd(x, "name", "?"), (long long)rep.migration,
                   rep.dest ? rep.dest : "?");
            ids[nids++] = rep.migration;
        } else {
            fprintf(stderr, PROG ": %s (%s) refused: %s\n", iid, jsd(x, "name", "?"), rep.reason);
            refused++;
        }
        msg_reply_free(&rep);
    }
    json_object_put(r);
    if (dry || !wait) {
        if (!dry)
            printf("%s: %zu migrations requested, %zu refused, %zu left in place%s\n", host, nids, refused, skipped,
                   nids ? " (" PROG " migration list to follow them)" : "");
        free(ids);
        return refused ? 1 : 0;
    }
    /* follow them all; Ctrl-C aborts the unfinished ones (and still waits for their end) */
    int aborted = 0;
    size_t ok = 0, bad = 0;
    char *state = xcalloc(nids + 1, 1); /* 1 when ended */
    for (;;) {
        size_t open = 0;
        for (size_t i = 0; i < nids; i++) {
            if (state[i])
                continue;
            json_object *mb = json_object_new_object();
            json_object_object_add(mb, "migration", json_object_new_int64(ids[i]));
            json_object *m = verbs_sched_read(c, "migration_show", mb, NULL);
            const char *st = m ? jsd(m, "status", "") : "";
            if (m && verbs_terminal(st)) {
                state[i] = 1;
                if (strcmp(st, "completed") == 0) {
                    ok++;
                    printf("migration %lld: %s now on %s\n", (long long)ids[i], jsd(m, "instance_id", "?"),
                           jsd(m, "dest", "?"));
                } else {
                    bad++;
                    printf("migration %lld: %s %s: %s\n", (long long)ids[i], jsd(m, "instance_id", "?"), st,
                           jsd(m, "error", ""));
                }
            } else {
                open++;
                if (verbs_interrupted() && !aborted) {
                    json_object *ab = json_object_new_object();
                    json_object_object_add(ab, "migration", json_object_new_int64(ids[i]));
                    _cleanup_free_ char *text = msg_build("migration.abort", NULL, ab);
                    msg_envelope_free(verbs_sched_request(c, text));
                }
            }
            json_object_put(m);
        }
        if (verbs_interrupted() && !aborted) {
            aborted = 1;
            fprintf(stderr,
                    PROG ": interrupted: the unfinished migrations were asked to abort; waiting for their end\n");
        }
        fflush(stdout);
        if (!open)
            break;
        struct timeval tv = {1, 0};
        event_base_loopexit(c->base, &tv);
        event_base_dispatch(c->base);
    }
    printf("%s: %zu of %zu instances moved away, %zu failed or cancelled, %zu refused, %zu left in place\n", host, ok,
           nids + refused + skipped, bad, refused, skipped);
    free(state);
    free(ids);
    return bad || refused || aborted ? 1 : 0;
}
