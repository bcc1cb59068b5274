/* verbs_host: ferryctl's host and instance verbs (host list, show, disable, enable, group,
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

/* host group HOST GROUP | --none: the operator's group of a host, which policies select by */
int cmd_host_group(ctl *c, int argc, char **argv)
{
    char *pos[2];
    opt o[] = {{"--none", 0, NULL}};
    int n = verbs_parse_args("host group", argc, argv, o, ARRAY_SIZE(o), pos, 2);
    if (n < 1 || (n == 2) == (o[0].value != NULL)) {
        fprintf(stderr, PROG ": host group needs HOST and either GROUP or --none\n");
        return 2;
    }
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(pos[0]));
    json_object_object_add(b, "group", n == 2 ? json_object_new_string(pos[1]) : NULL);
    json_object *h = verbs_sched_read(c, "host_set_group", b, NULL);
    if (!h)
        return 1;
    if (c->json)
        verbs_print_json(h);
    else if (js(h, "host_group"))
        printf("%s: host group %s\n", jsd(h, "name", pos[0]), js(h, "host_group"));
    else
        printf("%s: no host group\n", jsd(h, "name", pos[0]));
    json_object_put(h);
    return 0;
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
