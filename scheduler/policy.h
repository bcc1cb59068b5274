/* policy: a migration policy as an operator's policy.set gives it (issue #18), checked field by
 * field with bounded readers: its name, priority and selectors (project, instance name glob,
 * source host glob, host group) and the defaults it gives a request that leaves them out (post-copy,
 * auto-converge, the options, the objectives). Pure; policyop.c stores it, intake.c applies
 * the one that matches (docs/DESIGN.md "Forecast"). */
#ifndef FERRY_POLICY_H
#define FERRY_POLICY_H

#include <json-c/json.h>

#include "config.h"
#include "util.h"

/* One policy. Strings borrowed from the body they were read from; an integer default of -1 and
 * a boolean of -1 mean "not set" (the scheduler's own default applies). */
typedef struct policy {
    const char *name;                                /* [a-z0-9][a-z0-9._-]{0,62} */
    int priority;                                    /* -1000..1000, default 0 */
    const char *project, *instance_glob, *host_glob; /* NULL: any; at most 255 bytes each */
    const char *host_group;                          /* the source host's group (host_set_group); NULL: any */
    int post_copy, auto_converge;                    /* -1, 0, 1 */
    int postcopy_after_iterations, bandwidth_mib_s, max_downtime_ms, completion_timeout_s;
    int completion_action; /* msg_completion_action, -1: not set */
    int parallel_connections, xbzrle_cache_mib; /* -1: not set */
    int objective_max_downtime_ms, objective_deadline_s;
} policy;

/* Reads body (borrowed; strings in *out point into it) as a policy.set body: {"name", and
 * optional "priority", "project", "instance", "host", "host_group", "post_copy", "options": {as a request's},
 * "objectives": {as a request's}}; no other key. Returns 0, or -1 with *why (caller frees)
 * naming the field. */
int policy_read(json_object *body, policy *out, char **why) FERRY_WUR;
/* Checks a policy name; 0, or -1 with *why (caller frees). */
int policy_name_check(const char *name, char **why) FERRY_WUR;
/* Checks a host group's name (the same words as a policy's); field names it in *why (caller
 * frees). 0 or -1. */
int policy_group_check(const char *field, const char *group, char **why) FERRY_WUR;

/* The [policy NAME] sections of c as policy.set bodies (a new array; caller puts it), each
 * checked by policy_read: integers and booleans as the file writes them, objective_* under
 * "objectives", the options under "options". Returns 0, or -1 with *why (caller frees) naming
 * the section, the line and the key. */
int policy_config_bodies(const ferry_config *c, json_object **out, char **why) FERRY_WUR;

#endif
